/* store/changes: the changes to a store's messages and folders that must
 * leave a trace in content/ — DeleteMessage (a tombstone), MoveFolder (a
 * folder-move record) — and DeleteEmptyFolders.  The record is appended
 * inside the db transaction, fsync'd before the commit, so that a replay of
 * content/ (RecoverStore) gives the same store; the index follows after the
 * commit, and what it misses VerifyStore reports and a rebuild fixes. */
#include "store/journal.h"
#include "mime/mime.h"

#include <string.h>

/* ---- control records ---------------------------------------------------------------------- */

int mv_store_append_records(mv_store *s, const GByteArray *records, GError **error)
{
	g_assert(s->lock_fd >= 0 && !sqlite3_get_autocommit(s->db));
	int64_t seg = 0, base = 0;
	if (mv_store_segment_for_append(s, records->len, &seg, &base, error) < 0 ||
	    mv_store_segment_append(s, seg, base, records, error) < 0)
		return -1;
	return mv_store_set_committed_len(s, seg, base + (int64_t)records->len, error);
}

int mv_store_append_record(mv_store *s, mv_record_type type, const char *meta_json, GError **error)
{
	GByteArray *out = g_byte_array_new();
	int rc = -1;
	if (mv_record_encode(s->key, type, (const uint8_t *)meta_json, strlen(meta_json), NULL, 0, 1, out, error) < 0)
		goto out;
	rc = mv_store_append_records(s, out, error);
out:
	g_byte_array_unref(out);
	return rc;
}

/* ---- DeleteMessage ------------------------------------------------------------------------- */

typedef struct message_place {
	int64_t num, folder_id, date, archived_at;
	char *archive, *folder;
	uint8_t hash[MV_HASH_BYTES];
	bool deleted;
} message_place;

static void message_place_clear(message_place *m)
{
	g_free(m->archive);
	g_free(m->folder);
	memset(m, 0, sizeof *m);
}

static int message_place_get(mv_store *s, int64_t num, message_place *m, GError **error)
{
	sqlite3_stmt *st;
	memset(m, 0, sizeof *m);
	if (mv_sql_prepare(s->db, "SELECT m.folder_id, m.date, m.archived_at, f.archive, f.path, c.hash, m.deleted"
	                      " FROM messages m JOIN folders f ON f.id = m.folder_id"
	                      " LEFT JOIN contents c ON c.id = m.content_id WHERE m.num = ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, num);
	int rc = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		m->num = num;
		m->folder_id = sqlite3_column_int64(st, 0);
		m->date = sqlite3_column_int64(st, 1);
		m->archived_at = sqlite3_column_int64(st, 2);
		m->archive = g_strdup((const char *)sqlite3_column_text(st, 3));
		m->folder = g_strdup((const char *)sqlite3_column_text(st, 4));
		if (sqlite3_column_bytes(st, 5) == MV_HASH_BYTES)
			memcpy(m->hash, sqlite3_column_blob(st, 5), MV_HASH_BYTES);
		m->deleted = sqlite3_column_int(st, 6) != 0;
		rc = 0;
	} else {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %d:%lld does not exist", s->id, (long long)num);
	}
	sqlite3_finalize(st);
	return rc;
}

/* The document removed and its note dropped in one index transaction. */
static int index_remove(mv_store *s, mv_store_doc *h, GError **error)
{
	GPtrArray one = { .pdata = (gpointer *)&h, .len = 1 };
	if (mv_store_flush_index(s, error) < 0 || mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	if (mv_index_delete(s->index_db, &h->doc, error) < 0 || mv_index_notes_drop(s, &one, error) < 0 ||
	    mv_sql_exec(s->index_db, "COMMIT", error) < 0) {
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* The row hidden and the tombstone appended, in one db transaction. */
typedef struct tombstone_txn {
	mv_store *s;
	int64_t number, at;
	const char *reason;
	const char *record;   /* the tombstone's metadata */
} tombstone_txn;

static int hide_and_tombstone(void *opaque, GError **error)
{
	tombstone_txn *t = opaque;
	sqlite3_stmt *st;
	if (mv_sql_prepare(t->s->db, "UPDATE messages SET deleted=1, deleted_at=?, deleted_reason=? WHERE num=?", &st,
	                   error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, t->at);
	sqlite3_bind_text(st, 2, t->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, t->number);
	if (mv_sql_step_done(t->s->db, st, "delete message", error) < 0)
		return -1;
	return mv_store_append_record(t->s, MV_RECORD_TOMBSTONE, t->record, error);
}

static char *tombstone_meta(int64_t number, const uint8_t hash[MV_HASH_BYTES], const char *reason, int64_t at)
{
	char *hex = mv_hex(hash, MV_HASH_BYTES);
	json_t *meta = json_pack("{s:i, s:I, s:s, s:s, s:I}", "v", 1, "number", (json_int_t)number, "hash", hex,
	                         "reason", reason, "at", (json_int_t)at);
	char *text = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	g_free(hex);
	return text;
}

int mv_store_delete_message(mv_store *s, int64_t number, const char *reason, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	message_place m;
	mv_store_doc h = { 0 };
	tombstone_txn t = { .s = s, .number = number, .reason = reason ? reason : "", .at = mv_now() };
	char *record = NULL;
	bool have_doc = false;
	int rc = -1;
	if (message_place_get(s, number, &m, error) < 0)
		goto out;
	if (m.deleted) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %d:%lld is already deleted", s->id, (long long)number);
		goto out;
	}
	/* The document must be rebuilt before the row is hidden: reads skip
	 * deleted messages. */
	have_doc = mv_store_doc_for(s, number, m.archive, m.folder, m.folder_id, m.date, &h, NULL) == 0;
	mv_store_doc *hp = &h;
	GPtrArray one = { .pdata = (gpointer *)&hp, .len = 1 };
	if (have_doc && mv_index_notes_add(s, &one, error) < 0)
		goto out;
	t.record = record = tombstone_meta(number, m.hash, t.reason, t.at);
	if (mv_sql_in_transaction(s->db, hide_and_tombstone, &t, error) < 0)
		goto out;
	mv_fault_point("delete-message", 1);   /* committed, the index not yet told */
	rc = 0;
	GError *err = NULL;
	if (have_doc && index_remove(s, &h, &err) < 0) {
		mv_log_warn("store %d: message %lld deleted but still in the index (hidden from results): %s", s->id,
		            (long long)number, err->message);
		g_error_free(err);
	}
out:
	free(record);
	mv_store_doc_clear(&h);
	message_place_clear(&m);
	return mv_store_finish_locked(s, rc, error);
}

/* ---- MoveFolder and DeleteEmptyFolders -------------------------------------------------------- */

/* Renames archive/from (and everything under it) to to_archive/to in db. */
int mv_store_rename_folders(sqlite3 *db, const char *from_archive, const char *from, const char *to_archive,
                          const char *to, GError **error)
{
	sqlite3_stmt *st;
	/* path = to || substr(path, len(from)+1) keeps each subfolder's tail. */
	if (mv_sql_prepare(db, "UPDATE folders SET archive = ?3, path = CASE WHEN ?2 = '' AND path <> '' THEN"
	                      " (CASE WHEN ?4 = '' THEN path ELSE ?4 || '/' || path END)"
	                      " ELSE ?4 || substr(path, length(?2) + 1) END"
	                      " WHERE archive = ?1 AND (?2 = '' OR path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
	                      &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, from_archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, to_archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	return mv_sql_step_done(db, st, "rename folders", error);
}

static const char folder_scope_sql[] =
	" archive = ?1 AND (?2 = '' OR path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')";

static int count_folders(sqlite3 *db, const char *archive, const char *path, int *n_r, GError **error)
{
	char *sql = g_strconcat("SELECT count(*) FROM folders WHERE", folder_scope_sql, NULL);
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(db, sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	*n_r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Live messages under a folder, for re-indexing after a move between archives. */
static GArray *messages_under(mv_store *s, const char *archive, const char *path, GError **error)
{
	char *sql = g_strconcat("SELECT m.num FROM messages m WHERE m.deleted = 0 AND m.folder_id IN"
	                        " (SELECT id FROM folders WHERE", folder_scope_sql, ") ORDER BY m.num", NULL);
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(s->db, sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return NULL;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	GArray *nums = g_array_new(FALSE, FALSE, sizeof(int64_t));
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t n = sqlite3_column_int64(st, 0);
		g_array_append_val(nums, n);
	}
	sqlite3_finalize(st);
	return nums;
}

static void docs_free(GPtrArray *docs)
{
	if (!docs)
		return;
	for (guint j = 0; j < docs->len; j++) {
		mv_store_doc_clear(docs->pdata[j]);
		g_free(docs->pdata[j]);
	}
	g_ptr_array_free(docs, TRUE);
}

/* The index document of message num as it stands now. */
static int doc_now(mv_store *s, int64_t num, mv_store_doc *h, GError **error)
{
	message_place m;
	int rc = -1;
	if (message_place_get(s, num, &m, error) < 0)
		goto out;
	rc = mv_store_doc_for(s, num, m.archive, m.folder, m.folder_id, m.date, h, error);
out:
	message_place_clear(&m);
	return rc;
}

static GPtrArray *docs_for(mv_store *s, GArray *nums, GError **error)
{
	GPtrArray *docs = g_ptr_array_new();
	for (guint i = 0; i < nums->len; i++) {
		mv_store_doc *h = g_new0(mv_store_doc, 1);
		g_ptr_array_add(docs, h);
		if (doc_now(s, g_array_index(nums, int64_t, i), h, error) < 0) {
			docs_free(docs);
			return NULL;
		}
	}
	return docs;
}

/* Replaces old documents by new ones, and drops the old ones' notes, in one
 * index transaction. */
static int index_replace(mv_store *s, GPtrArray *old_docs, GPtrArray *new_docs, GError **error)
{
	if (mv_store_flush_index(s, error) < 0 || mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	int rc = -1;
	for (guint i = 0; i < old_docs->len; i++)
		if (mv_index_delete(s->index_db, &((mv_store_doc *)old_docs->pdata[i])->doc, error) < 0)
			goto out;
	for (guint i = 0; i < new_docs->len; i++)
		if (mv_index_insert(s->index_db, &s->index_insert, &((mv_store_doc *)new_docs->pdata[i])->doc, error) < 0)
			goto out;
	if (mv_index_notes_drop(s, old_docs, error) < 0)
		goto out;
	rc = mv_sql_exec(s->index_db, "COMMIT", error);
out:
	if (rc < 0)
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

typedef struct move_txn {
	mv_store *s;
	const char *from_archive, *from, *to_archive, *to;
} move_txn;

/* The rename and its folder-move record, in one db transaction. */
static int rename_and_record(void *opaque, GError **error)
{
	move_txn *t = opaque;
	if (mv_store_rename_folders(t->s->db, t->from_archive, t->from, t->to_archive, t->to, error) < 0)
		return -1;
	json_t *meta = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I}", "v", 1, "from_archive", t->from_archive, "from", t->from,
	                         "to_archive", t->to_archive, "to", t->to, "at", (json_int_t)mv_now());
	char *text = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	int rc = mv_store_append_record(t->s, MV_RECORD_FOLDER_MOVE, text, error);
	free(text);
	return rc;
}

/* The archive is part of every document (its scope token): re-index what
 * moved to another archive.  The move itself is already durable; a failure
 * here leaves documents VerifyStore reports and a rebuild fixes. */
static void reindex_moved(mv_store *s, GArray *nums, GPtrArray *old_docs, const char *from_archive)
{
	GError *err = NULL;
	GPtrArray *new_docs = docs_for(s, nums, &err);
	if (!new_docs || index_replace(s, old_docs, new_docs, &err) < 0) {
		mv_log_warn("store %d: folder moved but the index still files %u messages under %s: %s (run RebuildStoreIndex)",
		            s->id, nums->len, from_archive, err ? err->message : "?");
		g_clear_error(&err);
	}
	docs_free(new_docs);
}

int mv_store_move_folder(mv_store *s, const char *from_archive, const char *from_path,
                         const char *to_archive, const char *to_path, int *moved_r, GError **error)
{
	*moved_r = 0;
	mv_store_assert_writer(s);
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	int n = 0, clash = 0, rc = -1;
	GArray *nums = NULL;
	GPtrArray *old_docs = NULL;
	move_txn t = { s, from_archive, from_path, to_archive, to_path };
	if (count_folders(s->db, from_archive, from_path, &n, error) < 0)
		goto out;
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if (count_folders(s->db, to_archive, to_path, &clash, error) < 0)
		goto out;
	if (clash > 0) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "store %d: folder %s/%s already exists", s->id, to_archive, to_path);
		goto out;
	}
	if (strcmp(from_archive, to_archive) != 0 && (!(nums = messages_under(s, from_archive, from_path, error)) ||
	                                              !(old_docs = docs_for(s, nums, error)) ||
	                                              mv_index_notes_add(s, old_docs, error) < 0))
		goto out;
	rc = mv_sql_in_transaction(s->db, rename_and_record, &t, error);
	g_hash_table_remove_all(s->folder_ids);
	if (rc < 0)
		goto out;
	mv_fault_point("move-folder", 1);   /* committed, the index not yet told */
	if (old_docs && old_docs->len)
		reindex_moved(s, nums, old_docs, from_archive);
	*moved_r = n;
out:
	if (nums)
		g_array_free(nums, TRUE);
	docs_free(old_docs);
	return mv_store_finish_locked(s, rc, error);
}

/* The empty folders picked into a temporary table, then their rows and
 * their deleted messages' rows deleted, in one db transaction. */
typedef struct empty_txn {
	mv_store *s;
	const char *archive, *prefix;
	mv_store_folder_filter may_delete;
	void *opaque;
	int deleted;
} empty_txn;

/* The picked folders the filter refuses leave the set; then every folder
 * with a remaining folder below it (kept, or never empty) leaves it too,
 * so that no folder is left without the folders above it. */
/* The picked folders may_delete refuses, by id. */
static GArray *refused_folders(empty_txn *t, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(t->s->db, "SELECT f.id, f.archive, f.path FROM empty_folders e JOIN folders f ON f.id = e.id",
	                   &st, error) < 0)
		return NULL;
	GArray *refused = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (!t->may_delete((const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
		                   t->opaque))
			g_array_append_val(refused, id);
	}
	if (step != SQLITE_DONE) {
		mv_sql_set_error(error, t->s->db, "read empty folders");
		g_array_free(refused, TRUE);
		refused = NULL;
	}
	sqlite3_finalize(st);
	return refused;
}

static int keep_refused(empty_txn *t, GError **error)
{
	static const char above_kept_sql[] =
		"DELETE FROM empty_folders WHERE id IN (SELECT f.id FROM empty_folders e JOIN folders f ON f.id = e.id"
		" WHERE EXISTS (SELECT 1 FROM folders g WHERE g.archive = f.archive AND g.id NOT IN (SELECT id FROM"
		" empty_folders) AND (f.path = '' OR substr(g.path, 1, length(f.path) + 1) = f.path || '/')))";
	if (!t->may_delete)
		return 0;
	GArray *refused = refused_folders(t, error);
	if (!refused)
		return -1;
	sqlite3_stmt *del = NULL;
	int rc = -1;
	if (mv_sql_prepare(t->s->db, "DELETE FROM empty_folders WHERE id = ?", &del, error) < 0)
		goto out;
	for (guint i = 0; i < refused->len; i++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, g_array_index(refused, int64_t, i));
		if (sqlite3_step(del) != SQLITE_DONE) {
			mv_sql_set_error(error, t->s->db, "keep a refused folder");
			goto out;
		}
	}
	rc = mv_sql_exec(t->s->db, above_kept_sql, error);
out:
	sqlite3_finalize(del);
	g_array_free(refused, TRUE);
	return rc;
}

static int delete_empty(void *opaque, GError **error)
{
	empty_txn *t = opaque;
	mv_store *s = t->s;
	static const char empty_sql[] =
		"CREATE TEMP TABLE IF NOT EXISTS empty_folders(id INTEGER PRIMARY KEY);"
		"DELETE FROM empty_folders;";
	static const char pick_sql[] =
		"INSERT INTO empty_folders SELECT f.id FROM folders f WHERE (?1 IS NULL OR (f.archive = ?1 AND (?2 IS NULL OR"
		" f.path = ?2 OR substr(f.path, 1, length(?2) + 1) = ?2 || '/'))) AND NOT EXISTS (SELECT 1 FROM messages m"
		" JOIN folders g ON g.id = m.folder_id WHERE m.deleted = 0 AND g.archive = f.archive AND (f.path = '' OR"
		" g.path = f.path OR substr(g.path, 1, length(f.path) + 1) = f.path || '/'))";
	sqlite3_stmt *st;
	if (mv_sql_exec(s->db, empty_sql, error) < 0 || mv_sql_prepare(s->db, pick_sql, &st, error) < 0)
		return -1;
	if (t->archive)
		sqlite3_bind_text(st, 1, t->archive, -1, SQLITE_STATIC);
	if (t->prefix && *t->prefix)
		sqlite3_bind_text(st, 2, t->prefix, -1, SQLITE_STATIC);
	int64_t n = 0;
	if (mv_sql_step_done(s->db, st, "find empty folders", error) < 0 || keep_refused(t, error) < 0 ||
	    mv_store_int_query(s->db, "SELECT count(*) FROM empty_folders", "count empty folders", &n, error) < 0)
		return -1;
	t->deleted = (int)n;
	return mv_sql_exec(s->db, "DELETE FROM messages WHERE folder_id IN (SELECT id FROM empty_folders);"
	                   "DELETE FROM folders WHERE id IN (SELECT id FROM empty_folders);", error);
}

int mv_store_delete_empty_folders(mv_store *s, const char *archive, const char *prefix,
                                  mv_store_folder_filter may_delete, void *opaque, int *deleted_r, GError **error)
{
	*deleted_r = 0;
	mv_store_assert_writer(s);
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	/* Empty = no live message in it or below it.  The rows of its deleted
	 * messages go too (their tombstones stay in content/), so that no row
	 * points at a folder id SQLite could hand out again. */
	empty_txn t = { .s = s, .archive = archive, .prefix = prefix, .may_delete = may_delete, .opaque = opaque };
	int rc = mv_sql_in_transaction(s->db, delete_empty, &t, error);
	if (rc == 0)
		*deleted_r = t.deleted;
	g_hash_table_remove_all(s->folder_ids);
	return mv_store_finish_locked(s, rc, error);
}
