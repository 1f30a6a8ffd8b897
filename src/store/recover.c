/* store/recover: RecoverStore — db/ (and then the index) rebuilt from
 * content/ alone.  The journal (journal.c) is replayed into a new db in
 * temporary files, records parsed a chunk at a time on all cores and
 * applied strictly in journal order; records whose number was lost get new
 * numbers after every known one; the files are renamed into place at the
 * end, so an interrupted recovery leaves the old db as it was.  The zstd
 * dictionaries are met by the walk before the records that use them and
 * go into the new db's dictionaries table; a record whose dictionary is
 * lost is reported by its message id, like any damaged record. */
#include "store/journal.h"
#include "store/dictionary.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

/* ---- RecoverStore ----------------------------------------------------------------------------- */

typedef struct recover_ctx {
	mv_store *s;               /* segments and key only: no db */
	sqlite3 *db;               /* the db being rebuilt */
	bool recover_deleted;
	GHashTable *folders;       /* "archive\x1fpath" -> id */
	mv_journal_report rep;
	int64_t messages, deleted, restored_deleted, damaged, max_number;
	GArray *unnumbered;        /* mv_journal_rec places (segment, offset, length) to add at the end */
	GArray *restored;          /* int64 numbers whose tombstones recover_deleted ignored */
	GPtrArray *pending;        /* pending_rec*: records waiting for the parallel parse */
	GHashTable *dicts;         /* zstd dictionaries the walk met (the unnumbered records need them after) */
	mv_parsed *cur_parsed;     /* the record being applied, parsed ahead (or NULL) */
	int cur_hash_ok;           /* its body checked ahead: 1/0, or -1 = check now */
} recover_ctx;

/* A record copied out of the scan so that a chunk of them can be parsed on
 * all cores, then applied strictly in journal order. */
typedef struct pending_rec {
	mv_journal_rec r;
	GByteArray *body;
	mv_parsed *parsed;
	int hash_ok;
} pending_rec;

static void pending_rec_free(gpointer p)
{
	pending_rec *q = p;
	json_decref(q->r.meta);
	if (q->body)
		g_byte_array_unref(q->body);
	mv_parsed_free(q->parsed);
	g_free(q);
}

#define RECOVER_CHUNK 256

static int exec_stmt(sqlite3 *db, sqlite3_stmt *st, const char *what, GError **error)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	mv_sql_set_error(error, db, what);
	return -1;
}

static int recover_folder(recover_ctx *c, const char *archive, const char *path, int64_t *id_r, GError **error)
{
	char *key = g_strdup_printf("%s\x1f%s", archive, path);
	gpointer v = g_hash_table_lookup(c->folders, key);
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (v) {
		*id_r = GPOINTER_TO_SIZE(v);
		rc = 0;
		goto out;
	}
	if (mv_sql_prepare(c->db, "INSERT INTO folders(archive, path) VALUES(?1, ?2) ON CONFLICT(archive, path)"
	                   " DO UPDATE SET path = excluded.path RETURNING id", &st, error) < 0)
		goto out;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		mv_sql_set_error(error, c->db, "recreate folder");
		goto out;
	}
	*id_r = sqlite3_column_int64(st, 0);
	g_hash_table_insert(c->folders, g_steal_pointer(&key), GSIZE_TO_POINTER((gsize)*id_r));
	rc = 0;
out:
	sqlite3_finalize(st);
	g_free(key);
	return rc;
}

/* The content row for a hash (inserting it for a message record); a later
 * record of the same content wins, so that segments a compaction left
 * behind by a crash lose to the ones it wrote. */
static int recover_content(recover_ctx *c, const mv_journal_rec *r, const uint8_t hash[MV_HASH_BYTES], int64_t *id_r,
                           GError **error)
{
	sqlite3_stmt *st;
	int rc;
	if (r->type == MV_RECORD_MESSAGE) {
		rc = mv_sql_prepare(c->db, "INSERT INTO contents(hash, segment, offset, length, size) VALUES(?,?,?,?,?)"
		                       " ON CONFLICT(hash) DO UPDATE SET segment=excluded.segment, offset=excluded.offset,"
		                       " length=excluded.length RETURNING id", &st, error);
		if (rc < 0)
			return -1;
		sqlite3_bind_blob(st, 1, hash, MV_HASH_BYTES, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->segment);
		sqlite3_bind_int64(st, 3, r->offset);
		sqlite3_bind_int64(st, 4, r->length);
		sqlite3_bind_int64(st, 5, (int64_t)r->body_len);
	} else {
		rc = mv_sql_prepare(c->db, "SELECT id FROM contents WHERE hash = ?", &st, error);
		if (rc < 0)
			return -1;
		sqlite3_bind_blob(st, 1, hash, MV_HASH_BYTES, SQLITE_STATIC);
	}
	*id_r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

static const char *meta_str(json_t *meta, const char *key)
{
	const char *v = json_string_value(json_object_get(meta, key));
	return v ? v : "";
}

static int64_t meta_int(json_t *meta, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(meta, key));
}

/* Subject, sender, ... of a message: parsed from its body, or for a
 * reference copied from the message that stored the content. */
static int recover_message_row(recover_ctx *c, const mv_journal_rec *r, int64_t num, int64_t folder, int64_t content,
                               GError **error)
{
	json_t *m = r->meta;
	sqlite3_stmt *st;
	const char *sql = r->type == MV_RECORD_MESSAGE ?
		"INSERT OR REPLACE INTO messages(num, content_id, folder_id, date, date_source, archived_at, size, parse_flags,"
		" has_attachment, mail_flags, subject, sender, recipients, message_id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)" :
		"INSERT OR REPLACE INTO messages(num, content_id, folder_id, date, date_source, archived_at, size, parse_flags,"
		" has_attachment, mail_flags, subject, sender, recipients, message_id) SELECT ?,?,?,?,?,?, size, parse_flags,"
		" has_attachment, ?, subject, sender, recipients, message_id FROM messages WHERE content_id = ?2 LIMIT 1";
	if (mv_sql_prepare(c->db, sql, &st, error) < 0)
		return -1;
	if (num > 0)
		sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_int64(st, 2, content);
	sqlite3_bind_int64(st, 3, folder);
	sqlite3_bind_int64(st, 4, meta_int(m, "date"));
	sqlite3_bind_int64(st, 5, meta_int(m, "date_source"));
	sqlite3_bind_int64(st, 6, meta_int(m, "archived_at"));
	mv_parsed *p = NULL;
	if (r->type == MV_RECORD_MESSAGE) {
		p = c->cur_parsed ? c->cur_parsed : mv_parse_message(r->body, r->body_len, meta_int(m, "date"));
		sqlite3_bind_int64(st, 7, (int64_t)r->body_len);
		sqlite3_bind_int(st, 8, (int)p->flags);
		sqlite3_bind_int(st, 9, p->has_attachment);
		sqlite3_bind_text(st, 10, meta_str(m, "mail_flags"), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, p->subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 12, p->from ? p->from : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 13, p->to ? p->to : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 14, p->message_id ? p->message_id : "", -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_text(st, 7, meta_str(m, "mail_flags"), -1, SQLITE_STATIC);
	}
	int rc = exec_stmt(c->db, st, "recreate message", error);
	sqlite3_finalize(st);
	if (p != c->cur_parsed)
		mv_parsed_free(p);
	if (rc < 0)
		return -1;
	int64_t n = sqlite3_last_insert_rowid(c->db);
	c->max_number = MAX(c->max_number, n);
	c->messages++;
	/* The SMTP envelope the record kept (store/envelope.c). */
	json_t *env = json_object_get(m, "envelope");
	if (json_is_object(env) && sqlite3_changes(c->db) > 0 &&
	    mv_store_envelope_put_db(c->db, n, meta_str(env, "from"), meta_str(env, "to"), error) < 0)
		return -1;
	return 0;
}

static int recover_numbered(recover_ctx *c, const mv_journal_rec *r, int64_t num, GError **error)
{
	uint8_t hash[MV_HASH_BYTES];
	int64_t folder = 0, content = 0;
	bool body_ok = r->type != MV_RECORD_MESSAGE ||
	               (c->cur_hash_ok >= 0 ? c->cur_hash_ok == 1 : mv_journal_body_matches(r));
	if (!mv_journal_meta_hash(r->meta, hash) || !body_ok) {
		mv_journal_problem(&c->rep, "recordDamaged", NULL, "segment %lld offset %lld: content does not match its hash",
		               (long long)r->segment, (long long)r->offset);
		c->damaged++;
		return 0;
	}
	if (recover_folder(c, meta_str(r->meta, "archive"), meta_str(r->meta, "folder"), &folder, error) < 0 ||
	    recover_content(c, r, hash, &content, error) < 0)
		return -1;
	if (!content) {
		mv_journal_problem(&c->rep, "contentMissing", NULL, "segment %lld offset %lld: reference to content never stored",
		               (long long)r->segment, (long long)r->offset);
		c->damaged++;
		return 0;
	}
	return recover_message_row(c, r, num, folder, content, error);
}

static int recover_tombstone(recover_ctx *c, const mv_journal_rec *r, GError **error)
{
	if (c->recover_deleted) {
		c->restored_deleted++;
		g_array_append_val(c->restored, r->number);
		return 0;
	}
	sqlite3_stmt *st;
	if (mv_sql_prepare(c->db, "UPDATE messages SET deleted=1, deleted_at=?, deleted_reason=? WHERE num=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, meta_int(r->meta, "at"));
	sqlite3_bind_text(st, 2, meta_str(r->meta, "reason"), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->number);
	int rc = exec_stmt(c->db, st, "replay deletion", error);
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	if (sqlite3_changes(c->db) > 0)
		c->deleted++;
	return 0;
}

static bool forget_restored(recover_ctx *c, int64_t number)
{
	for (guint i = 0; i < c->restored->len; i++) {
		if (g_array_index(c->restored, int64_t, i) == number) {
			g_array_remove_index(c->restored, i);
			c->restored_deleted--;
			return true;
		}
	}
	return false;
}

/* An earlier recovery brought these back: their tombstones no longer count. */
static int recover_restore(recover_ctx *c, const mv_journal_rec *r, GError **error)
{
	sqlite3_stmt *st;
	/* Only a deleted one is brought back: a restore replayed over a
	 * message that is not deleted (a second recovery) changes nothing. */
	if (mv_sql_prepare(c->db, "UPDATE messages SET deleted=0, deleted_at=NULL, deleted_reason=NULL"
	                      " WHERE num=? AND deleted=1", &st, error) < 0)
		return -1;
	json_t *n;
	size_t i;
	int rc = -1;
	json_array_foreach(json_object_get(r->meta, "numbers"), i, n) {
		/* Recovering deleted messages again: one an earlier recovery
		 * brought back is not brought back (nor counted) twice. */
		if (c->recover_deleted && forget_restored(c, json_integer_value(n)))
			continue;
		sqlite3_bind_int64(st, 1, json_integer_value(n));
		if (exec_stmt(c->db, st, "replay restore", error) < 0)
			goto out;
		if (sqlite3_changes(c->db) > 0)
			c->deleted--;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/* A move live found its target free, but the replay may not: the target
 * can have been emptied of its deleted messages and removed by
 * DeleteEmptyFolders, which writes no record, and replaying those
 * messages' records made it again.  Each such folder is merged into the
 * one moving onto its name (a message whose content is in both is kept
 * once, the moving folder's), so the rename finds the name free, as the
 * move live did. */
static const char merge_targets_sql[] =
	"WITH moving(id, to_path) AS (SELECT id, CASE WHEN ?2 = '' AND path <> '' THEN"
	"  (CASE WHEN ?4 = '' THEN path ELSE ?4 || '/' || path END) ELSE ?4 || substr(path, length(?2) + 1) END"
	"  FROM folders WHERE archive = ?1 AND (?2 = '' OR path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/'))"
	" SELECT m.id, t.id FROM moving m JOIN folders t ON t.archive = ?3 AND t.path = m.to_path AND t.id <> m.id";

static int merge_folder_into(sqlite3 *db, int64_t into, int64_t merged, GError **error)
{
	char *sql = sqlite3_mprintf("DELETE FROM messages WHERE folder_id = %lld AND content_id IN"
	                            " (SELECT content_id FROM messages WHERE folder_id = %lld);"
	                            "UPDATE messages SET folder_id = %lld WHERE folder_id = %lld;"
	                            "DELETE FROM folders WHERE id = %lld;", (long long)merged, (long long)into,
	                            (long long)into, (long long)merged, (long long)merged);
	int rc = mv_sql_exec(db, sql, error);
	sqlite3_free(sql);
	return rc;
}

static int replay_folder_move(sqlite3 *db, const char *from_archive, const char *from, const char *to_archive,
                              const char *to, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, merge_targets_sql, &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, from_archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, to_archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, to, -1, SQLITE_STATIC);
	GArray *pairs = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t pair[2] = { sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1) };
		g_array_append_vals(pairs, pair, 2);
	}
	int rc = step == SQLITE_DONE ? 0 : -1;
	if (rc < 0)
		mv_sql_set_error(error, db, "replay a folder move");
	sqlite3_finalize(st);
	for (guint i = 0; rc == 0 && i + 1 < pairs->len; i += 2)
		rc = merge_folder_into(db, g_array_index(pairs, int64_t, i), g_array_index(pairs, int64_t, i + 1), error);
	g_array_free(pairs, TRUE);
	return rc < 0 ? -1 : mv_store_rename_folders(db, from_archive, from, to_archive, to, error);
}

static int recover_dictionary(recover_ctx *c, const mv_journal_rec *r, GError **error)
{
	return mv_store_dict_insert(c->db, mv_dict_meta_id(r->meta), meta_int(r->meta, "at"), r->body, r->body_len, error);
}

static int apply_record(recover_ctx *c, mv_journal_rec *r, GError **error)
{
	if (!r->ok && r->dict_missing) {
		c->damaged++;
		json_t *ids = NULL;
		if (r->number > 0) {
			char *id = mv_message_id_format(c->s->id, r->number);
			ids = json_pack("[s]", id);
			g_free(id);
		}
		mv_journal_problem(&c->rep, "dictionaryMissing", ids, "segment %lld offset %lld: the record is compressed "
		                   "with zstd dictionary %u, which no readable dictionary record before it holds; its "
		                   "message cannot be recovered", (long long)r->segment, (long long)r->offset, r->dict_missing);
		return 0;
	}
	if (!r->ok) {
		c->damaged++;
		mv_journal_problem(&c->rep, "recordDamaged", NULL, "segment %lld offset %lld (%lld bytes): %s",
		               (long long)r->segment, (long long)r->offset, (long long)r->length, r->problem);
		return 0;
	}
	switch (r->type) {
	case MV_RECORD_MESSAGE:
	case MV_RECORD_REFERENCE:
		if (r->number <= 0) {
			mv_journal_segment place = { .id = r->segment, .end = r->offset, .valid_end = r->length };
			g_array_append_val(c->unnumbered, place);
			return 0;
		}
		return recover_numbered(c, r, r->number, error);
	case MV_RECORD_TOMBSTONE:
		return recover_tombstone(c, r, error);
	case MV_RECORD_RESTORE:
		return recover_restore(c, r, error);
	case MV_RECORD_DICTIONARY:
		return recover_dictionary(c, r, error);
	case MV_RECORD_FOLDER_MOVE:
		g_hash_table_remove_all(c->folders);
		return replay_folder_move(c->db, meta_str(r->meta, "from_archive"), meta_str(r->meta, "from"),
		                          meta_str(r->meta, "to_archive"), meta_str(r->meta, "to"), error);
	default:
		return 0;
	}
}

static void pending_parse(gpointer data, gpointer user)
{
	pending_rec *q = data;
	if (!q->r.ok || q->r.type != MV_RECORD_MESSAGE)
		return;
	q->r.body = q->body->data;
	q->r.body_len = q->body->len;
	q->hash_ok = mv_journal_body_matches(&q->r);
	if (q->hash_ok)
		q->parsed = mv_parse_message(q->r.body, q->r.body_len, meta_int(q->r.meta, "date"));
}

static int flush_pending(recover_ctx *c, GError **error)
{
	mv_store_parallel(c->pending, pending_parse, NULL);
	int rc = -1;
	for (guint i = 0; i < c->pending->len; i++) {
		pending_rec *q = c->pending->pdata[i];
		c->cur_parsed = q->parsed;
		c->cur_hash_ok = q->r.type == MV_RECORD_MESSAGE && q->r.ok ? q->hash_ok : -1;
		if (apply_record(c, &q->r, error) < 0)
			goto out;
	}
	rc = 0;
out:
	c->cur_parsed = NULL;
	c->cur_hash_ok = -1;
	g_ptr_array_set_size(c->pending, 0);
	return rc;
}

static int recover_record(void *opaque, mv_journal_rec *r, GError **error)
{
	recover_ctx *c = opaque;
	pending_rec *q = g_new0(pending_rec, 1);
	q->r = *r;
	q->r.meta = json_incref(r->meta);
	q->r.body = NULL;
	q->r.body_len = 0;
	q->hash_ok = -1;
	if (r->ok && (r->type == MV_RECORD_MESSAGE || r->type == MV_RECORD_DICTIONARY)) {
		q->body = g_byte_array_sized_new((guint)r->body_len);
		g_byte_array_append(q->body, r->body, (guint)r->body_len);
	}
	if (q->body && r->type == MV_RECORD_DICTIONARY) {
		q->r.body = q->body->data;
		q->r.body_len = q->body->len;
	}
	g_ptr_array_add(c->pending, q);
	return c->pending->len >= RECOVER_CHUNK ? flush_pending(c, error) : 0;
}

/* Records whose number was lost with the bytes before them get new
 * numbers after every known one. */
static int recover_one_unnumbered(recover_ctx *c, const mv_journal_segment *p, GError **error)
{
	GByteArray *rec = NULL, *plain = NULL;
	mv_record_header h;
	const uint8_t *meta;
	size_t meta_len;
	mv_journal_rec r = { .segment = p->id, .offset = p->end, .length = p->valid_end };
	int rc = -1;
	if (mv_store_read_record(c->s, r.segment, r.offset, r.length, &rec, error) < 0 ||
	    mv_record_decode_dict(c->s->key, mv_dict_table_lookup, c->dicts, rec->data, rec->len, &h, &plain, &meta,
	                          &meta_len, &r.body, &r.body_len, NULL, error) < 0)
		goto out;
	r.type = h.type;
	r.ok = true;
	r.meta = json_loadb((const char *)meta, meta_len, 0, NULL);
	rc = r.meta ? recover_numbered(c, &r, ++c->max_number, error) : 0;
	json_decref(r.meta);
out:
	if (rec)
		g_byte_array_unref(rec);
	if (plain)
		g_byte_array_unref(plain);
	return rc;
}

static int recover_unnumbered(recover_ctx *c, GError **error)
{
	for (guint i = 0; i < c->unnumbered->len; i++)
		if (recover_one_unnumbered(c, &g_array_index(c->unnumbered, mv_journal_segment, i), error) < 0)
			return -1;
	return 0;
}

static char *sibling(const char *file, const char *suffix)
{
	return g_strconcat(file, suffix, NULL);
}

void mv_store_remove_db_files(const char *file)
{
	const char *suffixes[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		char *p = sibling(file, suffixes[i]);
		unlink(p);
		g_free(p);
	}
}

static int record_segments(recover_ctx *c, GArray *segs, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(c->db, "INSERT INTO segments(id, committed_len) VALUES(?, ?)", &st, error) < 0)
		return -1;
	int rc = -1;
	for (guint i = 0; i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		sqlite3_bind_int64(st, 1, sg->id);
		sqlite3_bind_int64(st, 2, sg->valid_end);
		if (exec_stmt(c->db, st, "record segment", error) < 0)
			goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int recover_finish_db(recover_ctx *c, GArray *segs, const char *gen, GError **error)
{
	if (record_segments(c, segs, error) < 0)
		return -1;
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('format_version', '%d');"
	                            "INSERT OR REPLACE INTO meta VALUES('index_generation', %Q);"
	                            "DELETE FROM sqlite_sequence WHERE name='messages';"
	                            "INSERT INTO sqlite_sequence(name, seq) VALUES('messages', %lld);",
	                            MV_STORE_FORMAT_VERSION, gen, (long long)c->max_number);
	int rc = mv_sql_exec(c->db, sql, error);
	sqlite3_free(sql);
	return rc;
}

/* Cuts torn tails: bytes after the last whole record of each segment. */
static int cut_torn_tail(recover_ctx *c, const mv_journal_segment *sg, GError **error)
{
	char *path = mv_store_segment_file(c->s, sg->id);
	int rc = truncate(path, sg->valid_end);
	if (rc < 0)
		mv_set_errno_error(error, errno, "cut torn tail of", path);
	g_free(path);
	return rc;
}

static int cut_torn_tails(recover_ctx *c, GArray *segs, int64_t *cut_r, GError **error)
{
	for (guint i = 0; i < segs->len; i++) {
		mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		if (sg->valid_end >= sg->end)
			continue;
		if (cut_torn_tail(c, sg, error) < 0)
			return -1;
		(*cut_r)++;
	}
	return 0;
}

/* Messages brought back despite their tombstones get a restore record, so
 * that content/ — and any later recovery or verification — agrees with the
 * db that they are live. */
typedef struct restore_txn {
	mv_store *s;
	const char *record;
} restore_txn;

static int append_restore_record(void *opaque, GError **error)
{
	restore_txn *t = opaque;
	return mv_store_append_record(t->s, MV_RECORD_RESTORE, t->record, error);
}

static int append_restore(mv_store *s, GArray *numbers, GError **error)
{
	if (numbers->len == 0)
		return 0;
	json_t *list = json_array();
	for (guint i = 0; i < numbers->len; i++)
		json_array_append_new(list, json_integer(g_array_index(numbers, int64_t, i)));
	json_t *meta = json_pack("{s:i, s:o, s:I}", "v", 1, "numbers", list, "at", (json_int_t)mv_now());
	char *text = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	restore_txn t = { s, text };
	int rc = -1;
	/* The write lock, not just the flock: taking it brings the index up to
	 * the recovered db, which the refresh after this would otherwise skip
	 * (the lock being held already), leaving a recovery that brought
	 * deleted messages back with an empty index. */
	if (mv_store_write_lock(s, error) < 0)
		goto out;
	rc = mv_sql_in_transaction(s->db, append_restore_record, &t, error);
out:
	free(text);
	return rc;
}

/* Every record of content/ into the new db: the scan in chunks, the last
 * partial chunk, then the records that lost their numbers. */
static int replay_journal(recover_ctx *c, GArray *segs, const mv_task *task, GError **error)
{
	if (mv_journal_scan_dicts(c->s, segs, c->dicts, task, recover_record, c, error) < 0 || flush_pending(c, error) < 0)
		return -1;
	return recover_unnumbered(c, error);
}

static int carry_own_values(const mv_store_paths *paths, const char *old_db, GError **error)
{
	GPtrArray *rows = mv_store_legacy_meta_read(old_db);
	int rc = mv_store_keys_file_adopt(paths, rows, error);
	if (rows)
		g_ptr_array_free(rows, TRUE);
	if (rc < 0)
		return -1;
	return mv_store_keys_file_set_format(paths, MV_STORE_FORMAT_VERSION, error);
}

/* The new db in a temporary file: content/ replayed into the schema, the
 * segments' valid lengths. */
static int build_db(recover_ctx *c, const char *tmp, GArray *segs, const char *gen, const mv_task *task,
                    int64_t *folders_r, GError **error)
{
	int rc = -1;
	mv_store_remove_db_files(tmp);
	if (mv_store_sql_open(tmp, c->s->key, MV_STORE_SQL_DB, true, true, false, &c->db, error) < 0 ||
	    mv_sql_exec(c->db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;", error) < 0 ||
	    mv_sql_exec(c->db, mv_store_schema(), error) < 0)
		goto out;
	mv_store_task_progress(task, 0, "store %d: replaying %u segments", c->s->id, segs->len);
	if (replay_journal(c, segs, task, error) < 0 || recover_finish_db(c, segs, gen, error) < 0)
		goto out;
	if (mv_store_int_query(c->db, "SELECT count(*) FROM folders", "count recovered folders", folders_r, error) < 0)
		goto out;
	/* WAL, as every store db runs, set here while the file is still
	 * private: switching a renamed-in db to WAL on its first open would
	 * go through a rollback journal whose removal no fsync covers, and a
	 * power cut would leave a hot journal a read-only open cannot undo. */
	rc = mv_sql_exec(c->db, "COMMIT; PRAGMA journal_mode=WAL;", error);
out:
	return rc;
}

/* A fresh, empty index with the new generation; the catch-up fills it. */
static int build_index(const char *ixtmp, const uint8_t key[MV_KEY_BYTES], const char *gen, GError **error)
{
	sqlite3 *ix = NULL;
	mv_store_remove_db_files(ixtmp);
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO index_state VALUES('generation', %Q)", gen);
	int rc = -1;
	if (mv_store_sql_open(ixtmp, key, MV_STORE_SQL_INDEX, true, true, false, &ix, error) < 0 || mv_store_setup_db(ix, false, error) < 0 ||
	    mv_index_init_schema(ix, "main", error) < 0 || mv_sql_exec(ix, sql, error) < 0)
		goto out;
	rc = 0;
out:
	sqlite3_free(sql);
	sqlite3_close(ix);
	return rc;
}

/* The swap: the old db's WAL must go before the new file takes its name,
 * or SQLite would replay it onto the new db. */
static int swap_into_place(const char *tmp, const char *file, GError **error)
{
	char *wal = sibling(file, "-wal"), *shm = sibling(file, "-shm");
	unlink(wal);
	unlink(shm);
	g_free(wal);
	g_free(shm);
	if (rename(tmp, file) == 0)
		return 0;
	mv_set_errno_error(error, errno, "rename", tmp);
	return -1;
}

/* Replays content/ into new db and index files and renames them into
 * place, under the write lock of a handle without db. */
static int rebuild_files(recover_ctx *c, const mv_store_paths *paths, const mv_task *task, int64_t *folders_r,
                         int64_t *cut_r, GError **error)
{
	char *dbp = mv_store_db_file(paths), *ixp = mv_store_index_file(paths);
	char *tmp = sibling(dbp, ".recovering"), *ixtmp = sibling(ixp, ".recovering");
	char *gen = mv_store_new_generation();
	GArray *segs = NULL;
	int rc = -1;
	if (mv_mkdir_p(paths->db_dir, error) < 0 || mv_mkdir_p(paths->index_dir, error) < 0 ||
	    mv_store_flock_for(c->s, task, error) < 0)
		goto out;
	mv_store_remove_db_files(ixtmp);
	if (!(segs = mv_journal_segments_from_dir(paths->content_dir, error)))
		goto out;
	int built = build_db(c, tmp, segs, gen, task, folders_r, error);
	sqlite3_close(c->db);
	c->db = NULL;
	if (built < 0 || build_index(ixtmp, c->s->key, gen, error) < 0)
		goto out;
	if (mv_fsync_file(tmp, error) < 0 || cut_torn_tails(c, segs, cut_r, error) < 0)
		goto out;
	/* The rebuilt db is encrypted (format 3): the keys file must hold the
	 * store's own values and name the format before the db takes its
	 * place — a plain old db's values are carried there first. */
	if (carry_own_values(paths, dbp, error) < 0)
		goto out;
	if (swap_into_place(ixtmp, ixp, error) < 0 || swap_into_place(tmp, dbp, error) < 0)
		goto out;
	if (mv_fsync_dir(paths->db_dir, error) < 0 || mv_fsync_dir(paths->index_dir, error) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		mv_store_remove_db_files(tmp);
		mv_store_remove_db_files(ixtmp);
	}
	if (segs)
		g_array_free(segs, TRUE);
	g_free(gen);
	g_free(tmp);
	g_free(ixtmp);
	g_free(dbp);
	g_free(ixp);
	return rc;
}

int mv_store_recover(int store_id, const mv_store_paths *paths, const uint8_t key[MV_KEY_BYTES],
                     bool recover_deleted, const mv_task *task, json_t **report_r, GError **error)
{
	mv_store *shell = mv_store_new(store_id, paths, key, MV_STORE_WRITE);
	recover_ctx c = { .s = shell, .recover_deleted = recover_deleted, .rep.problems = json_array(),
	                  .folders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
	                  .unnumbered = g_array_new(FALSE, TRUE, sizeof(mv_journal_segment)),
	                  .restored = g_array_new(FALSE, FALSE, sizeof(int64_t)),
	                  .pending = g_ptr_array_new_with_free_func(pending_rec_free), .cur_hash_ok = -1,
	                  .dicts = mv_dict_table_new() };
	int64_t folders = 0, cut = 0;
	mv_store *s = NULL;
	int rc = rebuild_files(&c, paths, task, &folders, &cut, error);
	mv_store_close(&shell);   /* releases the lock before the store opens for real */
	if (rc < 0)
		goto out;
	/* The index: built from the recovered db by the ordinary catch-up. */
	mv_store_task_progress(task, 99, "store %d: indexing the recovered messages", store_id);
	rc = -1;
	s = mv_store_open(store_id, paths, key, MV_STORE_WRITE, error);
	if (!s || append_restore(s, c.restored, error) < 0 || mv_store_refresh_index(s, error) < 0)
		goto out;
	*report_r = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O}", "storeId", store_id,
	                      "messagesRecovered", (json_int_t)c.messages, "deletedMessages", (json_int_t)c.deleted,
	                      "deletedMessagesRestored", (json_int_t)c.restored_deleted,
	                      "foldersRecovered", (json_int_t)folders,
	                      "damagedRecords", (json_int_t)c.damaged, "tornTailsCut", (json_int_t)cut,
	                      "problemCount", (json_int_t)c.rep.count, "problems", c.rep.problems);
	rc = 0;
out:
	mv_store_close(&s);
	json_decref(c.rep.problems);
	g_array_free(c.unnumbered, TRUE);
	g_array_free(c.restored, TRUE);
	g_ptr_array_free(c.pending, TRUE);
	g_hash_table_destroy(c.folders);
	g_hash_table_destroy(c.dicts);
	return rc;
}
