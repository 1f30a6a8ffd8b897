/* store/maint: the maintenance of a store that is not compaction —
 * verification, index rebuild, recovery from content/ alone, recreating
 * recovery records, format upgrade, repair, backup — and the content
 * changes that must leave a trace in content/ (deletion, folder moves);
 * also the store's own meta values and the small helpers these share with
 * compact.c (declared in internal.h).
 *
 * All of it rests on one idea: content/ is the journal of the store (see
 * journal.c, which walks it).  Verify compares the journal with the db,
 * recover replays it into a new db, and deletions and folder moves append
 * to it (tombstones, folder-move records) before the db change commits, so
 * that a replay gives the same store.  CompactStore, which rewrites the journal,
 * is compact.c. */
#include "store/journal.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PROBLEMS 1000   /* listed in a report; the counts stay exact */

/* ---- small helpers ------------------------------------------------------------ */

char *mv_store_new_generation(void)
{
	uint8_t b[16];
	randombytes_buf(b, sizeof b);
	return mv_hex(b, sizeof b);
}

int mv_st_require_writer(mv_store *s, GError **error)
{
	if (s->mode == MV_STORE_WRITE)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d is open read-only", s->id);
	return -1;
}

int mv_st_finish_locked(mv_store *s, int rc, GError **error)
{
	GError *err = NULL;
	if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
		rc = -1;
	g_clear_error(&err);
	return rc;
}

int mv_st_cancelled_error(GError **error, const char *what)
{
	g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "%s cancelled; nothing was left half-done", what);
	return -1;
}

static char *text_query(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	char *v = NULL;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

int64_t mv_st_int_query(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return v;
}

static char *message_id_text(int store_id, int64_t num)
{
	return g_strdup_printf("%d:%lld", store_id, (long long)num);
}

static json_t *message_id_json(int store_id, int64_t num)
{
	char *text = message_id_text(store_id, num);
	json_t *v = json_string(text);
	g_free(text);
	return v;
}

/* Problems go into a report as {"kind","detail","messageIds"?}, at most
 * MAX_PROBLEMS of them; "problemCount" stays exact. */
typedef struct report {
	json_t *problems;
	int64_t count;
} report;

static void report_problem(report *r, const char *kind, json_t *ids, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static void report_problem(report *r, const char *kind, json_t *ids, const char *fmt, ...)
{
	r->count++;
	if (json_array_size(r->problems) >= MAX_PROBLEMS) {
		json_decref(ids);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	char *detail = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	json_t *p = json_pack("{s:s, s:s}", "kind", kind, "detail", detail);
	if (ids)
		json_object_set_new(p, "messageIds", ids);
	json_array_append_new(r->problems, p);
	g_free(detail);
}

/* ---- a store's own values, by path ----------------------------------------------- */

static int open_db_at(const mv_store_paths *paths, bool readonly, sqlite3 **db_r, GError **error)
{
	char *dbp = mv_st_db_file(paths);
	int rc = -1;
	if (!g_file_test(dbp, G_FILE_TEST_EXISTS))
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store database %s is missing", dbp);
	else
		rc = mv_sql_open(dbp, false, readonly, db_r, error);
	g_free(dbp);
	return rc;
}

int mv_store_meta_get(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error)
{
	sqlite3 *db = NULL;
	*value_r = NULL;
	if (open_db_at(paths, true, &db, error) < 0)
		return -1;
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(db, "SELECT value FROM meta WHERE key=?", &st, error);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			*value_r = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return rc;
}

int mv_store_meta_set(const mv_store_paths *paths, const char *key, const void *data, size_t len, GError **error)
{
	sqlite3 *db = NULL;
	if (open_db_at(paths, false, &db, error) < 0 || mv_st_setup_db(db, true, error) < 0) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, error);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			mv_sql_set_error(error, db, "write store meta");
			rc = -1;
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return rc;
}

int mv_store_format_version(const mv_store_paths *paths, int *version_r, GError **error)
{
	sqlite3 *db = NULL;
	if (open_db_at(paths, true, &db, error) < 0)
		return -1;
	char *v = text_query(db, "SELECT value FROM meta WHERE key='format_version'", NULL);
	sqlite3_close(db);
	*version_r = v ? atoi(v) : 0;
	g_free(v);
	if (*version_r < 1) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: not a mailvault store (no format version)", paths->db_dir);
		return -1;
	}
	return 0;
}

/* ---- index generation ------------------------------------------------------------------ */

int mv_st_index_generation_check(mv_store *s, bool *stale_r, GError **error)
{
	char *db_gen = text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", NULL);
	char *ix_gen = text_query(s->index_db, "SELECT value FROM index_state WHERE key='generation'", NULL);
	*stale_r = g_strcmp0(db_gen, ix_gen) != 0;
	g_free(db_gen);
	g_free(ix_gen);
	return 0;
}

int mv_st_index_reset(mv_store *s, GError **error)
{
	char *gen = text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", NULL);
	if (!gen) {
		gen = mv_store_new_generation();
		char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('index_generation', %Q)", gen);
		int rc = mv_sql_exec(s->db, sql, error);
		sqlite3_free(sql);
		if (rc < 0) {
			g_free(gen);
			return -1;
		}
	}
	g_ptr_array_set_size(s->index_queue, 0);
	char *sql = sqlite3_mprintf("BEGIN; INSERT INTO fts(fts) VALUES('delete-all');"
	                            " DELETE FROM index_state WHERE key='indexed_upto';"
	                            " INSERT OR REPLACE INTO index_state VALUES('generation', %Q); COMMIT;", gen);
	int rc = mv_sql_exec(s->index_db, sql, error);
	sqlite3_free(sql);
	g_free(gen);
	if (rc < 0)
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mv_store_refresh_index(mv_store *s, GError **error)
{
	if (mv_st_write_lock(s, error) < 0)
		return -1;
	return mv_store_sync(s, error);
}

int mv_store_rebuild_index(mv_store *s, const mv_store_task *task, GError **error)
{
	if (s->mode != MV_STORE_WRITE) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d is open read-only", s->id);
		return -1;
	}
	if (mv_st_flock(s, error) < 0)
		return -1;
	if (mv_st_task_cancelled(task))
		return mv_st_cancelled_error(error, "RebuildStoreIndex");
	mv_st_task_progress(task, 0, "store %d: emptying the index", s->id);
	int rc = mv_st_index_reset(s, error);
	if (rc == 0) {
		mv_st_task_progress(task, -1, "store %d: indexing every message from content", s->id);
		rc = mv_st_index_catch_up_task(s, task, error);
	}
	GError *err = NULL;
	if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
		rc = -1;
	g_clear_error(&err);
	if (rc == 0)
		mv_st_task_progress(task, 100, "store %d: index rebuilt", s->id);
	return rc;
}

/* ---- control records ---------------------------------------------------------------------- */

int mv_st_append_record(mv_store *s, mv_record_type type, const char *meta_json, GError **error)
{
	GByteArray *out = g_byte_array_new();
	int64_t seg = 0, base = 0;
	int rc = mv_record_encode(s->key, type, (const uint8_t *)meta_json, strlen(meta_json), NULL, 0, 1, out, error);
	if (rc == 0)
		rc = mv_st_segment_for_append(s, out->len, &seg, &base, error);
	if (rc == 0)
		rc = mv_st_segment_append(s, seg, base, out, error);
	if (rc == 0)
		rc = mv_st_set_committed_len(s, seg, base + (int64_t)out->len, error);
	g_byte_array_unref(out);
	return rc;
}

/* ---- VerifyStore ---------------------------------------------------------------------------- */

enum { NUM_NONE = 0, NUM_MESSAGE, NUM_REFERENCE, NUM_DAMAGED };

typedef struct numrec {
	uint8_t state;
	uint8_t tombstone;
	uint8_t seen;         /* a db row claimed it */
	uint8_t hash[MV_HASH_BYTES];
} numrec;

typedef struct verify_ctx {
	mv_store *s;
	const mv_store_task *task;
	report rep;
	GArray *nums;         /* numrec by message number */
	sqlite3_stmt *contents; /* cursor: id, segment, offset, length, hash ordered by place */
	bool have_content;
	GArray *damaged_contents; /* content ids */
	int64_t records, damaged_records;
} verify_ctx;

static numrec *num_slot(GArray *nums, int64_t n)
{
	if (n <= 0 || n > MV_STORE_MAX_MESSAGE_NUMBER)
		return NULL;
	if ((guint)n >= nums->len)
		g_array_set_size(nums, (guint)n + 1 + nums->len / 2);
	return &g_array_index(nums, numrec, n);
}

static void contents_advance(verify_ctx *v)
{
	v->have_content = sqlite3_step(v->contents) == SQLITE_ROW;
}

/* A contents row that points at no record start. */
static void content_lost(verify_ctx *v, const char *why)
{
	int64_t id = sqlite3_column_int64(v->contents, 0);
	g_array_append_val(v->damaged_contents, id);
	report_problem(&v->rep, "contentMissing", NULL, "content %lld (segment %lld offset %lld): %s", (long long)id,
	               (long long)sqlite3_column_int64(v->contents, 1), (long long)sqlite3_column_int64(v->contents, 2), why);
}

static bool content_before(verify_ctx *v, const mv_journal_rec *r)
{
	int64_t seg = sqlite3_column_int64(v->contents, 1), off = sqlite3_column_int64(v->contents, 2);
	return seg < r->segment || (seg == r->segment && off < r->offset);
}

static void check_content_at(verify_ctx *v, const mv_journal_rec *r)
{
	while (v->have_content && content_before(v, r)) {
		content_lost(v, "no record starts there");
		contents_advance(v);
	}
	if (!v->have_content || sqlite3_column_int64(v->contents, 1) != r->segment ||
	    sqlite3_column_int64(v->contents, 2) != r->offset)
		return;
	int64_t id = sqlite3_column_int64(v->contents, 0);
	bool same_hash = sqlite3_column_bytes(v->contents, 4) == MV_HASH_BYTES;
	uint8_t want[MV_HASH_BYTES];
	if (same_hash && r->ok && mv_journal_meta_hash(r->meta, want))
		same_hash = sodium_memcmp(want, sqlite3_column_blob(v->contents, 4), MV_HASH_BYTES) == 0;
	if (!r->ok || r->type != MV_RECORD_MESSAGE || !mv_journal_body_matches(r) || !same_hash ||
	    sqlite3_column_int64(v->contents, 3) != r->length)
		g_array_append_val(v->damaged_contents, id);
	contents_advance(v);
}

static int verify_record(void *opaque, mv_journal_rec *r, GError **error)
{
	verify_ctx *v = opaque;
	v->records++;
	check_content_at(v, r);
	if (!r->ok) {
		v->damaged_records++;
		json_t *ids = NULL;
		if (r->number > 0)
			ids = json_pack("[o]", message_id_json(v->s->id, r->number));
		report_problem(&v->rep, "recordDamaged", ids, "segment %lld offset %lld (%lld bytes): %s",
		               (long long)r->segment, (long long)r->offset, (long long)r->length, r->problem);
		numrec *slot = num_slot(v->nums, r->number);
		if (slot)
			slot->state = NUM_DAMAGED;
		return 0;
	}
	numrec *slot = num_slot(v->nums, r->number);
	if ((r->type == MV_RECORD_MESSAGE || r->type == MV_RECORD_REFERENCE) && slot) {
		slot->state = r->type == MV_RECORD_MESSAGE ? NUM_MESSAGE : NUM_REFERENCE;
		if (!mv_journal_meta_hash(r->meta, slot->hash) ||
		    (r->type == MV_RECORD_MESSAGE && !mv_journal_body_matches(r)))
			slot->state = NUM_DAMAGED;
	} else if (r->type == MV_RECORD_TOMBSTONE && slot) {
		slot->tombstone = 1;
	} else if (r->type == MV_RECORD_RESTORE) {
		json_t *n;
		size_t i;
		json_array_foreach(json_object_get(r->meta, "numbers"), i, n) {
			numrec *restored = num_slot(v->nums, json_integer_value(n));
			if (restored)
				restored->tombstone = 0;
		}
	}
	return 0;
}

static json_t *id_list(int store_id, GArray *numbers)
{
	json_t *ids = json_array();
	for (guint i = 0; i < numbers->len; i++)
		json_array_append_new(ids, message_id_json(store_id, g_array_index(numbers, int64_t, i)));
	return ids;
}

static gint cmp_i64(gconstpointer a, gconstpointer b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every db row against what content/ says about its number. */
static int verify_rows(verify_ctx *v, GHashTable *damaged_ids, GError **error)
{
	GHashTable *bad_content = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint i = 0; i < v->damaged_contents->len; i++)
		g_hash_table_add(bad_content, &g_array_index(v->damaged_contents, int64_t, i));
	sqlite3_stmt *st;
	if (mv_sql_prepare(v->s->db, "SELECT m.num, m.deleted, m.content_id, c.hash FROM messages m"
	                      " LEFT JOIN contents c ON c.id = m.content_id ORDER BY m.num", &st, error) < 0) {
		g_hash_table_destroy(bad_content);
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t num = sqlite3_column_int64(st, 0), content = sqlite3_column_int64(st, 2);
		bool deleted = sqlite3_column_int(st, 1) != 0;
		numrec *slot = num_slot(v->nums, num);
		char *id = message_id_text(v->s->id, num);
		if (!slot) {
			report_problem(&v->rep, "badNumber", json_pack("[s]", id), "message number out of range");
		} else {
			slot->seen = 1;
			if (deleted) {
				if (!slot->tombstone && slot->state != NUM_NONE)
					report_problem(&v->rep, "tombstoneMissing", json_pack("[s]", id),
					               "deleted in the db but content/ holds no tombstone for it");
			} else if (slot->state == NUM_NONE) {
				report_problem(&v->rep, "recordMissing", json_pack("[s]", id), "no recovery record in content/");
			} else if (slot->state == NUM_DAMAGED) {
				g_hash_table_add(damaged_ids, g_strdup(id));
			} else if (slot->tombstone) {
				report_problem(&v->rep, "deletedInContent", json_pack("[s]", id),
				               "content/ holds a tombstone but the db shows it live");
			} else if (sqlite3_column_bytes(st, 3) != MV_HASH_BYTES ||
			           sodium_memcmp(slot->hash, sqlite3_column_blob(st, 3), MV_HASH_BYTES) != 0) {
				report_problem(&v->rep, "contentMismatch", json_pack("[s]", id),
				               "the db row and the recovery record name different content");
			}
			if (!deleted && g_hash_table_contains(bad_content, &content))
				g_hash_table_add(damaged_ids, g_strdup(id));
		}
		g_free(id);
	}
	sqlite3_finalize(st);
	g_hash_table_destroy(bad_content);
	/* Records that no row claims (and no tombstone explains). */
	GArray *orphans = g_array_new(FALSE, FALSE, sizeof(int64_t));
	for (guint n = 1; n < v->nums->len; n++) {
		const numrec *r = &g_array_index(v->nums, numrec, n);
		if ((r->state == NUM_MESSAGE || r->state == NUM_REFERENCE) && !r->seen && !r->tombstone) {
			int64_t num = n;
			g_array_append_val(orphans, num);
		}
	}
	if (orphans->len)
		report_problem(&v->rep, "rowMissing", id_list(v->s->id, orphans),
		               "%u recovery records have no db row (RecoverStore brings them back)", orphans->len);
	g_array_free(orphans, TRUE);
	return 0;
}

/* The index connection and the schema prefix its tables need. */
static sqlite3 *index_conn(mv_store *s, const char **prefix_r)
{
	*prefix_r = s->index_db ? "" : "ix.";
	return s->index_db ? s->index_db : s->db;
}

static int index_rowids(mv_store *s, const char *archive, GArray *out, GError **error)
{
	const char *prefix;
	sqlite3 *ix = index_conn(s, &prefix);
	char *tok = mv_scope_archive_token(archive);
	char *match = g_strdup_printf("scope : %s", tok);
	char *sql = g_strdup_printf("SELECT rowid FROM %sfts WHERE fts MATCH ? ORDER BY rowid", prefix);
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(ix, sql, &st, error);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
		int step;
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(st, 0);
			g_array_append_val(out, id);
		}
		if (step != SQLITE_DONE) {
			mv_sql_set_error(error, ix, "read index");
			rc = -1;
		}
		sqlite3_finalize(st);
	}
	g_free(sql);
	g_free(match);
	g_free(tok);
	return rc;
}

static int db_docids(mv_store *s, const char *archive, GArray *out, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT m.num, m.date FROM messages m JOIN folders f ON f.id = m.folder_id"
	                      " WHERE f.archive = ? AND m.deleted = 0", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = mv_index_docid(sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 0));
		g_array_append_val(out, id);
	}
	sqlite3_finalize(st);
	g_array_sort(out, cmp_i64);
	return 0;
}

static int verify_index_archive(verify_ctx *v, const char *archive, GError **error)
{
	GArray *want = g_array_new(FALSE, FALSE, sizeof(int64_t)), *have = g_array_new(FALSE, FALSE, sizeof(int64_t));
	GArray *missing = g_array_new(FALSE, FALSE, sizeof(int64_t)), *extra = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int rc = db_docids(v->s, archive, want, error);
	if (rc == 0)
		rc = index_rowids(v->s, archive, have, error);
	guint i = 0, j = 0;
	while (rc == 0 && (i < want->len || j < have->len)) {
		int64_t a = i < want->len ? g_array_index(want, int64_t, i) : INT64_MAX;
		int64_t b = j < have->len ? g_array_index(have, int64_t, j) : INT64_MAX;
		int64_t num;
		if (a == b) {
			i++, j++;
		} else if (a < b) {
			num = mv_index_docid_number(a);
			g_array_append_val(missing, num);
			i++;
		} else {
			num = mv_index_docid_number(b);
			g_array_append_val(extra, num);
			j++;
		}
	}
	if (missing->len)
		report_problem(&v->rep, "notIndexed", id_list(v->s->id, missing), "archive %s: %u messages are not in the index",
		               archive, missing->len);
	if (extra->len)
		report_problem(&v->rep, "indexedNotLive", id_list(v->s->id, extra),
		               "archive %s: %u index entries name no live message", archive, extra->len);
	g_array_free(want, TRUE);
	g_array_free(have, TRUE);
	g_array_free(missing, TRUE);
	g_array_free(extra, TRUE);
	return rc;
}

static int verify_index(verify_ctx *v, GError **error)
{
	const char *prefix;
	sqlite3 *ix = index_conn(v->s, &prefix);
	char *sql = g_strdup_printf("INSERT INTO %sfts(fts) VALUES('integrity-check')", prefix);
	char *msg = NULL;
	if (sqlite3_exec(ix, sql, NULL, NULL, &msg) != SQLITE_OK)
		report_problem(&v->rep, "indexDamaged", NULL, "FTS5 integrity check: %s", msg ? msg : "failed");
	sqlite3_free(msg);
	g_free(sql);
	sqlite3_stmt *st;
	if (mv_sql_prepare(v->s->db, "SELECT DISTINCT archive FROM folders ORDER BY archive", &st, error) < 0)
		return -1;
	GPtrArray *archives = g_ptr_array_new_with_free_func(g_free);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_ptr_array_add(archives, g_strdup((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	int rc = 0;
	for (guint i = 0; i < archives->len && rc == 0; i++) {
		if (v->task && mv_st_task_cancelled(v->task))
			rc = mv_st_cancelled_error(error, "VerifyStore");
		else
			rc = verify_index_archive(v, archives->pdata[i], error);
	}
	g_ptr_array_free(archives, TRUE);
	return rc;
}

static json_t *damaged_list(GHashTable *ids)
{
	GList *keys = g_list_sort(g_hash_table_get_keys(ids), (GCompareFunc)g_strcmp0);
	json_t *list = json_array();
	for (GList *l = keys; l; l = l->next)
		json_array_append_new(list, json_string(l->data));
	g_list_free(keys);
	return list;
}

int mv_store_verify(mv_store *s, bool include_index, const mv_store_task *task, json_t **report_r, GError **error)
{
	/* The lock keeps writers out so that content, db and index are compared
	 * at one instant; verification itself writes nothing. */
	bool locked = s->mode == MV_STORE_WRITE;
	if (locked && mv_st_write_lock(s, error) < 0)
		return -1;
	verify_ctx v = { .s = s, .task = task, .rep.problems = json_array(), .nums = g_array_new(FALSE, TRUE, sizeof(numrec)),
	                 .damaged_contents = g_array_new(FALSE, FALSE, sizeof(int64_t)) };
	GHashTable *damaged_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GArray *segs = mv_journal_segments_from_db(s->db, error);
	int rc = segs ? 0 : -1;
	if (rc == 0)
		rc = mv_sql_prepare(s->db, "SELECT id, segment, offset, length, hash FROM contents ORDER BY segment, offset",
		                       &v.contents, error);
	if (rc == 0) {
		contents_advance(&v);
		mv_st_task_progress(task, 0, "store %d: checking every record", s->id);
		rc = mv_journal_scan(s, segs, task, verify_record, &v, error);
	}
	while (rc == 0 && v.have_content) {
		content_lost(&v, "past the end of its segment's committed data");
		contents_advance(&v);
	}
	sqlite3_finalize(v.contents);
	if (rc == 0) {
		mv_st_task_progress(task, 99, "store %d: checking the db against content", s->id);
		rc = verify_rows(&v, damaged_ids, error);
	}
	if (rc == 0 && include_index) {
		mv_st_task_progress(task, 99, "store %d: checking the index against the db", s->id);
		rc = verify_index(&v, error);
	}
	if (rc == 0) {
		int64_t messages = mv_st_int_query(s->db, "SELECT count(*) FROM messages WHERE deleted=0");
		json_t *r = json_pack("{s:i, s:b, s:I, s:I, s:I, s:I, s:b, s:o, s:I, s:o}", "storeId", s->id,
		                      "clean", v.rep.count == 0 && g_hash_table_size(damaged_ids) == 0,
		                      "recordsScanned", (json_int_t)v.records, "damagedRecords", (json_int_t)v.damaged_records,
		                      "messagesChecked", (json_int_t)messages,
		                      "contentsDamaged", (json_int_t)v.damaged_contents->len, "indexChecked", include_index,
		                      "damagedMessageIds", damaged_list(damaged_ids), "problemCount", (json_int_t)v.rep.count,
		                      "problems", v.rep.problems);
		v.rep.problems = NULL;
		*report_r = r;
	}
	json_decref(v.rep.problems);
	g_hash_table_destroy(damaged_ids);
	g_array_free(v.nums, TRUE);
	g_array_free(v.damaged_contents, TRUE);
	if (segs)
		g_array_free(segs, TRUE);
	if (locked) {
		GError *err = NULL;
		if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
			rc = -1;
		g_clear_error(&err);
	}
	return rc;
}

/* ---- documents for the index, rebuilt from content ------------------------------------------ */

/* An index document with everything it points into. */
typedef struct doc_holder {
	mv_index_doc doc;
	char *archive, *folder;  /* owned: the caller's strings may go first */
	mv_parsed *parsed;
	GString *scope;
	GByteArray *raw;
} doc_holder;

static void doc_holder_clear(doc_holder *h)
{
	mv_parsed_free(h->parsed);
	g_free(h->archive);
	g_free(h->folder);
	if (h->scope)
		g_string_free(h->scope, TRUE);
	if (h->raw)
		g_byte_array_unref(h->raw);
	memset(h, 0, sizeof *h);
}

/* The exact document the index holds (or would hold) for a message — what
 * FTS5's contentless 'delete' needs. */
static int doc_for(mv_store *s, int64_t num, const char *archive, const char *folder, int64_t folder_id,
                   int64_t date, doc_holder *h, GError **error)
{
	memset(h, 0, sizeof *h);
	if (mv_store_read_message(s, num, &h->raw, error) < 0)
		return -1;
	h->parsed = mv_parse_message(h->raw->data, h->raw->len, date);
	h->archive = g_strdup(archive);
	h->folder = g_strdup(folder);
	archive = h->archive;
	folder = h->folder;
	h->scope = g_string_new(NULL);
	mv_st_fill_scope(h->scope, archive, folder_id, h->parsed->has_attachment);
	mv_parsed *p = h->parsed;
	h->doc = (mv_index_doc){
		.number = num, .date = date, .subject = p->subject, .body = p->text->str,
		.from = p->from, .to = p->to, .from_addrs = p->from_addrs, .to_addrs = p->to_addrs,
		.cc_addrs = p->cc_addrs, .bcc_addrs = p->bcc_addrs, .attachments = p->attachment_names->str,
		.folder = folder, .archive = archive, .message_id = p->message_id, .scope = h->scope->str,
	};
	return 0;
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

static int index_remove(mv_store *s, const mv_index_doc *doc, GError **error)
{
	if (mv_st_flush_index(s, error) < 0)
		return -1;
	if (mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	if (mv_index_delete(s->index_db, doc, error) < 0 || mv_sql_exec(s->index_db, "COMMIT", error) < 0) {
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int mv_store_delete_message(mv_store *s, int64_t number, const char *reason, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	message_place m;
	doc_holder h = { 0 };
	int rc = message_place_get(s, number, &m, error);
	if (rc == 0 && m.deleted) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %d:%lld is already deleted", s->id, (long long)number);
		rc = -1;
	}
	/* The document must be rebuilt before the row is hidden: reads skip
	 * deleted messages. */
	bool have_doc = rc == 0 && doc_for(s, number, m.archive, m.folder, m.folder_id, m.date, &h, NULL) == 0;
	if (rc == 0)
		rc = mv_sql_exec(s->db, "BEGIN IMMEDIATE", error);
	if (rc == 0) {
		int64_t now = mv_now();
		char *hash = mv_hex(m.hash, MV_HASH_BYTES);
		json_t *meta = json_pack("{s:i, s:I, s:s, s:s, s:I}", "v", 1, "number", (json_int_t)number, "hash", hash,
		                         "reason", reason ? reason : "", "at", (json_int_t)now);
		char *text = json_dumps(meta, JSON_COMPACT);
		json_decref(meta);
		g_free(hash);
		sqlite3_stmt *st = NULL;
		rc = mv_sql_prepare(s->db, "UPDATE messages SET deleted=1, deleted_at=?, deleted_reason=? WHERE num=?",
		                       &st, error);
		if (rc == 0) {
			sqlite3_bind_int64(st, 1, now);
			sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, number);
			if (sqlite3_step(st) != SQLITE_DONE) {
				mv_sql_set_error(error, s->db, "delete message");
				rc = -1;
			}
		}
		sqlite3_finalize(st);
		if (rc == 0)
			rc = mv_st_append_record(s, MV_RECORD_TOMBSTONE, text, error);
		free(text);
		if (rc == 0)
			rc = mv_sql_exec(s->db, "COMMIT", error);
		if (rc < 0)
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == 0 && have_doc) {
		GError *err = NULL;
		if (index_remove(s, &h.doc, &err) < 0) {
			mv_log_warn("store %d: message %lld deleted but still in the index (hidden from results): %s", s->id,
			            (long long)number, err->message);
			g_error_free(err);
		}
	}
	doc_holder_clear(&h);
	message_place_clear(&m);
	return mv_st_finish_locked(s, rc, error);
}

/* ---- MoveFolder and DeleteEmptyFolders -------------------------------------------------------- */

/* Renames archive/from (and everything under it) to to_archive/to in db. */
static int rename_folders(sqlite3 *db, const char *from_archive, const char *from, const char *to_archive,
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
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	if (rc < 0)
		mv_sql_set_error(error, db, "rename folders");
	sqlite3_finalize(st);
	return rc;
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

static GPtrArray *docs_for(mv_store *s, GArray *nums, GError **error)
{
	GPtrArray *docs = g_ptr_array_new();
	for (guint i = 0; i < nums->len; i++) {
		message_place m;
		doc_holder *h = g_new0(doc_holder, 1);
		int64_t num = g_array_index(nums, int64_t, i);
		if (message_place_get(s, num, &m, error) < 0 || doc_for(s, num, m.archive, m.folder, m.folder_id, m.date, h, error) < 0) {
			message_place_clear(&m);
			g_free(h);
			for (guint j = 0; j < docs->len; j++) {
				doc_holder_clear(docs->pdata[j]);
				g_free(docs->pdata[j]);
			}
			g_ptr_array_free(docs, TRUE);
			return NULL;
		}
		message_place_clear(&m);
		g_ptr_array_add(docs, h);
	}
	return docs;
}

static void docs_free(GPtrArray *docs)
{
	if (!docs)
		return;
	for (guint j = 0; j < docs->len; j++) {
		doc_holder_clear(docs->pdata[j]);
		g_free(docs->pdata[j]);
	}
	g_ptr_array_free(docs, TRUE);
}

/* Replaces old documents by new ones in one index transaction. */
static int index_replace(mv_store *s, GPtrArray *old_docs, GPtrArray *new_docs, GError **error)
{
	if (mv_st_flush_index(s, error) < 0 || mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	int rc = 0;
	for (guint i = 0; i < old_docs->len && rc == 0; i++)
		rc = mv_index_delete(s->index_db, &((doc_holder *)old_docs->pdata[i])->doc, error);
	for (guint i = 0; i < new_docs->len && rc == 0; i++)
		rc = mv_index_insert(s->index_db, &s->index_insert, &((doc_holder *)new_docs->pdata[i])->doc, error);
	if (rc == 0)
		rc = mv_sql_exec(s->index_db, "COMMIT", error);
	if (rc < 0)
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int append_move_record(mv_store *s, const char *from_archive, const char *from, const char *to_archive,
                              const char *to, GError **error)
{
	json_t *meta = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I}", "v", 1, "from_archive", from_archive, "from", from,
	                         "to_archive", to_archive, "to", to, "at", (json_int_t)mv_now());
	char *text = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	int rc = mv_st_append_record(s, MV_RECORD_FOLDER_MOVE, text, error);
	free(text);
	return rc;
}

int mv_store_move_folder(mv_store *s, const char *from_archive, const char *from_path,
                         const char *to_archive, const char *to_path, int *moved_r, GError **error)
{
	*moved_r = 0;
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	int n = 0, clash = 0;
	bool cross = strcmp(from_archive, to_archive) != 0;
	GArray *nums = NULL;
	GPtrArray *old_docs = NULL, *new_docs = NULL;
	int rc = count_folders(s->db, from_archive, from_path, &n, error);
	if (rc == 0 && n > 0)
		rc = count_folders(s->db, to_archive, to_path, &clash, error);
	if (rc == 0 && n > 0 && clash > 0) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "store %d: folder %s/%s already exists", s->id, to_archive, to_path);
		rc = -1;
	}
	if (rc == 0 && n > 0 && cross && (!(nums = messages_under(s, from_archive, from_path, error)) ||
	                                  !(old_docs = docs_for(s, nums, error))))
		rc = -1;
	if (rc == 0 && n > 0) {
		rc = mv_sql_exec(s->db, "BEGIN IMMEDIATE", error);
		if (rc == 0)
			rc = rename_folders(s->db, from_archive, from_path, to_archive, to_path, error);
		if (rc == 0)
			rc = append_move_record(s, from_archive, from_path, to_archive, to_path, error);
		if (rc == 0)
			rc = mv_sql_exec(s->db, "COMMIT", error);
		if (rc < 0)
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		g_hash_table_remove_all(s->folder_ids);
	}
	/* The archive is part of every document (its scope token): re-index
	 * what moved to another archive.  The move itself is already durable; a
	 * failure here leaves documents VerifyStore reports and a rebuild fixes. */
	if (rc == 0 && old_docs && old_docs->len) {
		GError *err = NULL;
		if (!(new_docs = docs_for(s, nums, &err)) || index_replace(s, old_docs, new_docs, &err) < 0) {
			mv_log_warn("store %d: folder moved but the index still files %u messages under %s: %s (run RebuildStoreIndex)",
			            s->id, nums->len, from_archive, err ? err->message : "?");
			g_clear_error(&err);
		}
	}
	if (rc == 0)
		*moved_r = n;
	if (nums)
		g_array_free(nums, TRUE);
	docs_free(old_docs);
	docs_free(new_docs);
	return mv_st_finish_locked(s, rc, error);
}

int mv_store_delete_empty_folders(mv_store *s, const char *archive, const char *prefix, int *deleted_r, GError **error)
{
	*deleted_r = 0;
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	/* Empty = no live message in it or below it.  The rows of its deleted
	 * messages go too (their tombstones stay in content/), so that no row
	 * points at a folder id SQLite could hand out again. */
	static const char empty_sql[] =
		"CREATE TEMP TABLE IF NOT EXISTS empty_folders(id INTEGER PRIMARY KEY);"
		"DELETE FROM empty_folders;";
	static const char pick_sql[] =
		"INSERT INTO empty_folders SELECT f.id FROM folders f WHERE (?1 IS NULL OR (f.archive = ?1 AND (?2 IS NULL OR"
		" f.path = ?2 OR substr(f.path, 1, length(?2) + 1) = ?2 || '/'))) AND NOT EXISTS (SELECT 1 FROM messages m"
		" JOIN folders g ON g.id = m.folder_id WHERE m.deleted = 0 AND g.archive = f.archive AND (f.path = '' OR"
		" g.path = f.path OR substr(g.path, 1, length(f.path) + 1) = f.path || '/'))";
	int rc = mv_sql_exec(s->db, "BEGIN IMMEDIATE", error);
	if (rc == 0)
		rc = mv_sql_exec(s->db, empty_sql, error);
	sqlite3_stmt *st = NULL;
	if (rc == 0 && (rc = mv_sql_prepare(s->db, pick_sql, &st, error)) == 0) {
		if (archive)
			sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
		if (prefix && *prefix)
			sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			mv_sql_set_error(error, s->db, "find empty folders");
			rc = -1;
		}
		sqlite3_finalize(st);
	}
	if (rc == 0) {
		*deleted_r = (int)mv_st_int_query(s->db, "SELECT count(*) FROM empty_folders");
		rc = mv_sql_exec(s->db, "DELETE FROM messages WHERE folder_id IN (SELECT id FROM empty_folders);"
		                 "DELETE FROM folders WHERE id IN (SELECT id FROM empty_folders); COMMIT;", error);
	}
	if (rc < 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		*deleted_r = 0;
	}
	g_hash_table_remove_all(s->folder_ids);
	return mv_st_finish_locked(s, rc, error);
}

/* ---- RecoverStore ----------------------------------------------------------------------------- */

typedef struct recover_ctx {
	mv_store *s;               /* segments and key only: no db */
	sqlite3 *db;               /* the db being rebuilt */
	bool recover_deleted;
	GHashTable *folders;       /* "archive\x1fpath" -> id */
	report rep;
	int64_t messages, deleted, restored_deleted, damaged, max_number;
	GArray *unnumbered;        /* mv_journal_rec places (segment, offset, length) to add at the end */
	GArray *restored;          /* int64 numbers whose tombstones recover_deleted ignored */
	GPtrArray *pending;        /* pending_rec*: records waiting for the parallel parse */
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
	if (v) {
		*id_r = GPOINTER_TO_SIZE(v);
		g_free(key);
		return 0;
	}
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(c->db, "INSERT INTO folders(archive, path) VALUES(?1, ?2) ON CONFLICT(archive, path)"
	                           " DO UPDATE SET path = excluded.path RETURNING id", &st, error);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			*id_r = sqlite3_column_int64(st, 0);
		else
			rc = -1, mv_sql_set_error(error, c->db, "recreate folder");
		sqlite3_finalize(st);
	}
	if (rc == 0)
		g_hash_table_insert(c->folders, key, GSIZE_TO_POINTER((gsize)*id_r));
	else
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
	if (rc == 0) {
		int64_t n = sqlite3_last_insert_rowid(c->db);
		c->max_number = MAX(c->max_number, n);
		c->messages++;
	}
	return rc;
}

static int recover_numbered(recover_ctx *c, const mv_journal_rec *r, int64_t num, GError **error)
{
	uint8_t hash[MV_HASH_BYTES];
	int64_t folder = 0, content = 0;
	bool body_ok = r->type != MV_RECORD_MESSAGE ||
	               (c->cur_hash_ok >= 0 ? c->cur_hash_ok == 1 : mv_journal_body_matches(r));
	if (!mv_journal_meta_hash(r->meta, hash) || !body_ok) {
		report_problem(&c->rep, "recordDamaged", NULL, "segment %lld offset %lld: content does not match its hash",
		               (long long)r->segment, (long long)r->offset);
		c->damaged++;
		return 0;
	}
	if (recover_folder(c, meta_str(r->meta, "archive"), meta_str(r->meta, "folder"), &folder, error) < 0 ||
	    recover_content(c, r, hash, &content, error) < 0)
		return -1;
	if (!content) {
		report_problem(&c->rep, "contentMissing", NULL, "segment %lld offset %lld: reference to content never stored",
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
	if (rc == 0 && sqlite3_changes(c->db) > 0)
		c->deleted++;
	return rc;
}

/* An earlier recovery brought these back: their tombstones no longer count. */
static int recover_restore(recover_ctx *c, const mv_journal_rec *r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(c->db, "UPDATE messages SET deleted=0, deleted_at=NULL, deleted_reason=NULL WHERE num=?",
	                      &st, error) < 0)
		return -1;
	json_t *n;
	size_t i;
	int rc = 0;
	json_array_foreach(json_object_get(r->meta, "numbers"), i, n) {
		if (rc < 0)
			break;
		sqlite3_bind_int64(st, 1, json_integer_value(n));
		if ((rc = exec_stmt(c->db, st, "replay restore", error)) == 0 && sqlite3_changes(c->db) > 0)
			c->deleted--;
	}
	sqlite3_finalize(st);
	return rc;
}

static int apply_record(recover_ctx *c, mv_journal_rec *r, GError **error)
{
	if (!r->ok) {
		c->damaged++;
		report_problem(&c->rep, "recordDamaged", NULL, "segment %lld offset %lld (%lld bytes): %s",
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
	case MV_RECORD_FOLDER_MOVE:
		g_hash_table_remove_all(c->folders);
		return rename_folders(c->db, meta_str(r->meta, "from_archive"), meta_str(r->meta, "from"),
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
	mv_st_parallel(c->pending, pending_parse, NULL);
	int rc = 0;
	for (guint i = 0; i < c->pending->len && rc == 0; i++) {
		pending_rec *q = c->pending->pdata[i];
		c->cur_parsed = q->parsed;
		c->cur_hash_ok = q->r.type == MV_RECORD_MESSAGE && q->r.ok ? q->hash_ok : -1;
		rc = apply_record(c, &q->r, error);
	}
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
	if (r->ok && r->type == MV_RECORD_MESSAGE) {
		q->body = g_byte_array_sized_new((guint)r->body_len);
		g_byte_array_append(q->body, r->body, (guint)r->body_len);
	}
	g_ptr_array_add(c->pending, q);
	return c->pending->len >= RECOVER_CHUNK ? flush_pending(c, error) : 0;
}

/* Records whose number was lost with the bytes before them get new
 * numbers after every known one. */
static int recover_unnumbered(recover_ctx *c, GError **error)
{
	for (guint i = 0; i < c->unnumbered->len; i++) {
		const mv_journal_segment *p = &g_array_index(c->unnumbered, mv_journal_segment, i);
		GByteArray *rec = NULL, *plain = NULL;
		mv_record_header h;
		const uint8_t *meta;
		size_t meta_len;
		mv_journal_rec r = { .segment = p->id, .offset = p->end, .length = p->valid_end };
		if (mv_st_read_record(c->s, r.segment, r.offset, r.length, &rec, error) < 0)
			return -1;
		int rc = mv_record_decode(c->s->key, rec->data, rec->len, &h, &plain, &meta, &meta_len, &r.body, &r.body_len, error);
		g_byte_array_unref(rec);
		if (rc < 0)
			return -1;
		r.type = h.type;
		r.ok = true;
		r.meta = json_loadb((const char *)meta, meta_len, 0, NULL);
		rc = r.meta ? recover_numbered(c, &r, ++c->max_number, error) : 0;
		json_decref(r.meta);
		g_byte_array_unref(plain);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static char *sibling(const char *file, const char *suffix)
{
	return g_strconcat(file, suffix, NULL);
}

static void remove_db_files(const char *file)
{
	const char *suffixes[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		char *p = sibling(file, suffixes[i]);
		unlink(p);
		g_free(p);
	}
}

/* Copies meta rows other than the format's own from the old db, if it can
 * still be read: they carry the store's wrapped keys. */
static void carry_meta(sqlite3 *newdb, const char *old_file)
{
	if (!g_file_test(old_file, G_FILE_TEST_EXISTS))
		return;
	char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS old; INSERT OR IGNORE INTO meta SELECT key, value FROM old.meta"
	                            " WHERE key NOT IN ('format_version', 'index_generation'); DETACH DATABASE old;", old_file);
	if (sqlite3_exec(newdb, sql, NULL, NULL, NULL) != SQLITE_OK)
		mv_log_warn("the old store database %s is unreadable; the store's own key copies are re-created by the instance",
		            old_file);
	sqlite3_free(sql);
}

static int recover_finish_db(recover_ctx *c, GArray *segs, const char *gen, GError **error)
{
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(c->db, "INSERT INTO segments(id, committed_len) VALUES(?, ?)", &st, error);
	for (guint i = 0; rc == 0 && i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		sqlite3_bind_int64(st, 1, sg->id);
		sqlite3_bind_int64(st, 2, sg->valid_end);
		rc = exec_stmt(c->db, st, "record segment", error);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('format_version', '%d');"
	                            "INSERT OR REPLACE INTO meta VALUES('index_generation', %Q);"
	                            "DELETE FROM sqlite_sequence WHERE name='messages';"
	                            "INSERT INTO sqlite_sequence(name, seq) VALUES('messages', %lld);",
	                            MV_STORE_FORMAT_VERSION, gen, (long long)c->max_number);
	rc = mv_sql_exec(c->db, sql, error);
	sqlite3_free(sql);
	return rc;
}

/* Cuts torn tails: bytes after the last whole record of each segment. */
static int cut_torn_tails(recover_ctx *c, GArray *segs, int64_t *cut_r, GError **error)
{
	for (guint i = 0; i < segs->len; i++) {
		mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		if (sg->valid_end >= sg->end)
			continue;
		char *path = mv_st_segment_file(c->s, sg->id);
		int rc = truncate(path, sg->valid_end);
		if (rc < 0)
			mv_set_errno_error(error, errno, "cut torn tail of", path);
		g_free(path);
		if (rc < 0)
			return -1;
		(*cut_r)++;
	}
	return 0;
}

/* Messages brought back despite their tombstones get a restore record, so
 * that content/ — and any later recovery or verification — agrees with the
 * db that they are live. */
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
	int rc = mv_st_flock(s, error) == 0 && mv_sql_exec(s->db, "BEGIN IMMEDIATE", error) == 0 ? 0 : -1;
	if (rc == 0) {
		rc = mv_st_append_record(s, MV_RECORD_RESTORE, text, error);
		if (rc == 0)
			rc = mv_sql_exec(s->db, "COMMIT", error);
		if (rc < 0)
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	free(text);
	return rc;
}

int mv_store_recover(int store_id, const mv_store_paths *paths, const uint8_t key[MV_KEY_BYTES],
                     bool recover_deleted, const mv_store_task *task, json_t **report_r, GError **error)
{
	mv_store shell = { .id = store_id, .mode = MV_STORE_WRITE, .paths = *paths, .lock_fd = -1 };
	memcpy(shell.key, key, MV_KEY_BYTES);
	shell.segment_fds = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	recover_ctx c = { .s = &shell, .recover_deleted = recover_deleted, .rep.problems = json_array(),
	                  .folders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
	                  .unnumbered = g_array_new(FALSE, TRUE, sizeof(mv_journal_segment)),
	                  .restored = g_array_new(FALSE, FALSE, sizeof(int64_t)),
	                  .pending = g_ptr_array_new_with_free_func(pending_rec_free), .cur_hash_ok = -1 };
	char *dbp = mv_st_db_file(paths), *ixp = mv_st_index_file(paths);
	char *tmp = sibling(dbp, ".recovering"), *ixtmp = sibling(ixp, ".recovering");
	char *gen = mv_store_new_generation();
	GArray *segs = NULL;
	int64_t cut = 0;
	int rc = mv_mkdir_p(paths->db_dir, error) == 0 && mv_mkdir_p(paths->index_dir, error) == 0 ? mv_st_flock(&shell, error) : -1;
	if (rc == 0) {
		remove_db_files(tmp);
		remove_db_files(ixtmp);
		rc = mv_sql_open(tmp, true, false, &c.db, error) == 0 &&
		     mv_sql_exec(c.db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;", error) == 0 &&
		     mv_sql_exec(c.db, mv_st_schema(), error) == 0 ? 0 : -1;
	}
	if (rc == 0 && !(segs = mv_journal_segments_from_dir(paths->content_dir, error)))
		rc = -1;
	if (rc == 0) {
		mv_st_task_progress(task, 0, "store %d: replaying %u segments", store_id, segs->len);
		rc = mv_journal_scan(&shell, segs, task, recover_record, &c, error);
	}
	if (rc == 0)
		rc = flush_pending(&c, error);
	if (rc == 0)
		rc = recover_unnumbered(&c, error);
	if (rc == 0)
		rc = recover_finish_db(&c, segs, gen, error);
	int64_t folders = 0;
	if (rc == 0) {
		carry_meta(c.db, dbp);
		folders = mv_st_int_query(c.db, "SELECT count(*) FROM folders");
		rc = mv_sql_exec(c.db, "COMMIT", error);
	}
	sqlite3_close(c.db);
	c.db = NULL;
	/* A fresh, empty index with the new generation; filled below. */
	sqlite3 *ix = NULL;
	if (rc == 0) {
		char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO index_state VALUES('generation', %Q)", gen);
		rc = mv_sql_open(ixtmp, true, false, &ix, error) == 0 && mv_st_setup_db(ix, false, error) == 0 &&
		     mv_index_init_schema(ix, "main", error) == 0 && mv_sql_exec(ix, sql, error) == 0 ? 0 : -1;
		sqlite3_free(sql);
		sqlite3_close(ix);
	}
	int fd = rc == 0 ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
	if (rc == 0 && (fd < 0 || mv_fsync_fd(fd, tmp, error) < 0))
		rc = -1;
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		rc = cut_torn_tails(&c, segs, &cut, error);
	/* The swap: the old db's WAL must go before the new file takes its name,
	 * or SQLite would replay it onto the new db. */
	if (rc == 0) {
		char *ixwal = sibling(ixp, "-wal"), *ixshm = sibling(ixp, "-shm");
		unlink(ixwal), unlink(ixshm);
		g_free(ixwal), g_free(ixshm);
		if (rename(ixtmp, ixp) < 0)
			rc = -1, mv_set_errno_error(error, errno, "rename", ixtmp);
	}
	if (rc == 0) {
		char *wal = sibling(dbp, "-wal"), *shm = sibling(dbp, "-shm");
		unlink(wal), unlink(shm);
		g_free(wal), g_free(shm);
		if (rename(tmp, dbp) < 0)
			rc = -1, mv_set_errno_error(error, errno, "rename", tmp);
	}
	if (rc == 0)
		rc = mv_fsync_dir(paths->db_dir, error) == 0 && mv_fsync_dir(paths->index_dir, error) == 0 ? 0 : -1;
	if (shell.lock_fd >= 0)
		close(shell.lock_fd);
	if (rc < 0) {
		remove_db_files(tmp);
		remove_db_files(ixtmp);
	}
	/* The index: built from the recovered db by the ordinary catch-up. */
	if (rc == 0) {
		mv_st_task_progress(task, 99, "store %d: indexing the recovered messages", store_id);
		mv_store *s = mv_store_open(store_id, paths, key, MV_STORE_WRITE, error);
		rc = s ? append_restore(s, c.restored, error) : -1;
		if (rc == 0)
			rc = mv_store_refresh_index(s, error);
		mv_store_close(&s);
	}
	if (rc == 0)
		*report_r = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "storeId", store_id,
		                      "messagesRecovered", (json_int_t)c.messages, "deletedMessages", (json_int_t)c.deleted,
		                      "deletedMessagesRestored", (json_int_t)c.restored_deleted,
		                      "foldersRecovered", (json_int_t)folders,
		                      "damagedRecords", (json_int_t)c.damaged, "tornTailsCut", (json_int_t)cut,
		                      "problemCount", (json_int_t)c.rep.count, "problems", c.rep.problems);
	else
		json_decref(c.rep.problems);
	if (segs)
		g_array_free(segs, TRUE);
	g_array_free(c.unnumbered, TRUE);
	g_array_free(c.restored, TRUE);
	g_ptr_array_free(c.pending, TRUE);
	g_hash_table_destroy(c.folders);
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, shell.segment_fds);
	while (g_hash_table_iter_next(&it, &k, &v))
		close(GPOINTER_TO_INT(v) - 1);
	g_hash_table_destroy(shell.segment_fds);
	sodium_memzero(shell.key, sizeof shell.key);
	g_free(gen);
	g_free(tmp);
	g_free(ixtmp);
	g_free(dbp);
	g_free(ixp);
	return rc;
}

/* ---- UpgradeStore ------------------------------------------------------------------------------ */

int mv_store_upgrade(const mv_store_paths *paths, int *from_version_r, GError **error)
{
	int version = 0;
	if (mv_store_format_version(paths, &version, error) < 0)
		return -1;
	*from_version_r = version;
	if (version == MV_STORE_FORMAT_VERSION)
		return 0;
	if (version > MV_STORE_FORMAT_VERSION) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "%s has format version %d, newer than this build's %d",
		            paths->db_dir, version, MV_STORE_FORMAT_VERSION);
		return -1;
	}
	mv_store shell = { .paths = *paths, .lock_fd = -1 };
	sqlite3 *db = NULL, *ix = NULL;
	char *ixp = mv_st_index_file(paths);
	char *gen = mv_store_new_generation();
	int rc = mv_st_flock(&shell, error) == 0 && open_db_at(paths, false, &db, error) == 0 &&
	         mv_st_setup_db(db, true, error) == 0 ? 0 : -1;
	/* 1 -> 2: columns for deletions and the index generation.  Format 1
	 * content has no batch markers, which the scan reads as numbering from
	 * 1 without gaps — exactly what format 1 wrote.  The index is kept: its
	 * generation is set first, so a crash before the db commit only costs a
	 * rebuild. */
	if (rc == 0 && g_file_test(ixp, G_FILE_TEST_EXISTS)) {
		char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO index_state VALUES('generation', %Q)", gen);
		rc = mv_sql_open(ixp, false, false, &ix, error) == 0 && mv_sql_exec(ix, sql, error) == 0 ? 0 : -1;
		sqlite3_free(sql);
	}
	if (rc == 0) {
		char *sql = sqlite3_mprintf("BEGIN IMMEDIATE;"
		                            "ALTER TABLE messages ADD COLUMN deleted_at INTEGER;"
		                            "ALTER TABLE messages ADD COLUMN deleted_reason TEXT;"
		                            "INSERT OR REPLACE INTO meta VALUES('index_generation', %Q);"
		                            "INSERT OR REPLACE INTO meta VALUES('format_version', '2');"
		                            "COMMIT;", gen);
		rc = mv_sql_exec(db, sql, error);
		sqlite3_free(sql);
		if (rc < 0)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	/* Whatever the outcome: handles and format versions read before this
	 * point are not to be trusted any more (mv_store_format_epoch). */
	mv_store_format_changed();
	sqlite3_close(ix);
	sqlite3_close(db);
	if (shell.lock_fd >= 0)
		close(shell.lock_fd);
	g_free(ixp);
	g_free(gen);
	return rc;
}

/* ---- RepairStoreDatabase, MaintainFileSystemDatabases ---------------------------------------------- */

int mv_store_repair_db(mv_store *s, json_t **report_r, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_flock(s, error) < 0)
		return -1;
	json_t *findings = json_array();
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(s->db, "PRAGMA integrity_check", &st, error);
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (strcmp(line, "ok") != 0)
			json_array_append_new(findings, json_string(line));
	}
	if (rc == 0)
		sqlite3_finalize(st);
	/* What RepairStoreDatabase is for: missing or broken db indexes. */
	if (rc == 0)
		rc = mv_sql_exec(s->db, mv_st_schema(), error);
	if (rc == 0)
		rc = mv_sql_exec(s->db, "REINDEX", error);
	int64_t orphans = rc == 0 ? mv_st_int_query(s->db, "SELECT count(*) FROM messages m WHERE m.deleted = 0 AND NOT EXISTS"
	                                      " (SELECT 1 FROM contents c WHERE c.id = m.content_id)") : 0;
	if (rc == 0)
		*report_r = json_pack("{s:i, s:o, s:b, s:I}", "storeId", s->id, "integrityFindings", findings,
		                      "indexesRebuilt", true, "rowsWithoutContent", (json_int_t)orphans);
	else
		json_decref(findings);
	return mv_st_finish_locked(s, rc, error);
}

int mv_store_maintain_db(mv_store *s, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	int rc = mv_sql_exec(s->db, "ANALYZE; PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);", error);
	if (rc == 0)
		rc = mv_sql_exec(s->index_db, "INSERT INTO fts(fts) VALUES('optimize'); PRAGMA wal_checkpoint(TRUNCATE);", error);
	return mv_st_finish_locked(s, rc, error);
}

/* ---- RecreateRecoveryRecords ---------------------------------------------------------------------- */

typedef struct recreate_ctx {
	verify_ctx v;
} recreate_ctx;

static int append_reference_for(mv_store *s, int64_t num, int64_t *written, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT f.archive, f.path, m.archived_at, m.mail_flags, m.date, m.date_source, c.hash"
	                      " FROM messages m JOIN folders f ON f.id = m.folder_id JOIN contents c ON c.id = m.content_id"
	                      " WHERE m.num = ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, num);
	int rc = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		char *hash = mv_hex(sqlite3_column_blob(st, 6), MV_HASH_BYTES);
		json_t *meta = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i}", "v", 1, "hash", hash,
		                         "archive", (const char *)sqlite3_column_text(st, 0),
		                         "folder", (const char *)sqlite3_column_text(st, 1),
		                         "archived_at", (json_int_t)sqlite3_column_int64(st, 2), "source", "recreated",
		                         "origin", "", "mail_flags", (const char *)sqlite3_column_text(st, 3),
		                         "date", (json_int_t)sqlite3_column_int64(st, 4), "date_source", sqlite3_column_int(st, 5));
		char *text = json_dumps(meta, JSON_COMPACT);
		char *marker = g_strdup_printf("{\"v\":1,\"first\":%lld}", (long long)num);
		json_decref(meta);
		g_free(hash);
		GByteArray *out = g_byte_array_new();
		int64_t seg = 0, base = 0;
		rc = mv_record_encode(s->key, MV_RECORD_BATCH, (const uint8_t *)marker, strlen(marker), NULL, 0, 1, out, error);
		if (rc == 0)
			rc = mv_record_encode(s->key, MV_RECORD_REFERENCE, (const uint8_t *)text, strlen(text), NULL, 0, 1, out, error);
		if (rc == 0)
			rc = mv_sql_exec(s->db, "BEGIN IMMEDIATE", error);
		if (rc == 0) {
			rc = mv_st_segment_for_append(s, out->len, &seg, &base, error) == 0 &&
			     mv_st_segment_append(s, seg, base, out, error) == 0 &&
			     mv_st_set_committed_len(s, seg, base + (int64_t)out->len, error) == 0 &&
			     mv_sql_exec(s->db, "COMMIT", error) == 0 ? 0 : -1;
			if (rc < 0)
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		}
		g_byte_array_unref(out);
		free(text);
		g_free(marker);
		if (rc == 0)
			(*written)++;
	}
	sqlite3_finalize(st);
	return rc;
}

int mv_store_recreate_records(mv_store *s, const mv_store_task *task, json_t **report_r, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	verify_ctx v = { .s = s, .rep.problems = json_array(), .nums = g_array_new(FALSE, TRUE, sizeof(numrec)),
	                 .damaged_contents = g_array_new(FALSE, FALSE, sizeof(int64_t)) };
	GArray *segs = mv_journal_segments_from_db(s->db, error);
	int rc = segs ? mv_sql_prepare(s->db, "SELECT id, segment, offset, length, hash FROM contents"
	                                  " ORDER BY segment, offset", &v.contents, error) : -1;
	if (rc == 0) {
		contents_advance(&v);
		rc = mv_journal_scan(s, segs, task, verify_record, &v, error);
	}
	while (rc == 0 && v.have_content) {
		content_lost(&v, "past the committed end");
		contents_advance(&v);
	}
	sqlite3_finalize(v.contents);
	GHashTable *bad = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint i = 0; i < v.damaged_contents->len; i++)
		g_hash_table_add(bad, &g_array_index(v.damaged_contents, int64_t, i));
	int64_t written = 0;
	GArray *lost = g_array_new(FALSE, FALSE, sizeof(int64_t));
	sqlite3_stmt *st = NULL;
	if (rc == 0)
		rc = mv_sql_prepare(s->db, "SELECT num, content_id FROM messages WHERE deleted = 0 ORDER BY num", &st, error);
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		int64_t num = sqlite3_column_int64(st, 0), content = sqlite3_column_int64(st, 1);
		numrec *slot = num_slot(v.nums, num);
		bool own_ok = slot && (slot->state == NUM_MESSAGE || slot->state == NUM_REFERENCE);
		if (g_hash_table_contains(bad, &content))
			g_array_append_val(lost, num);
		else if (!own_ok)
			rc = append_reference_for(s, num, &written, error);
	}
	sqlite3_finalize(st);
	if (rc == 0)
		*report_r = json_pack("{s:i, s:I, s:o}", "storeId", s->id, "recordsRecreated", (json_int_t)written,
		                      "unrecoverableMessageIds", id_list(s->id, lost));
	g_array_free(lost, TRUE);
	g_hash_table_destroy(bad);
	json_decref(v.rep.problems);
	g_array_free(v.nums, TRUE);
	g_array_free(v.damaged_contents, TRUE);
	if (segs)
		g_array_free(segs, TRUE);
	return mv_st_finish_locked(s, rc, error);
}

/* ---- backup --------------------------------------------------------------------------------------- */

static int sqlite_copy(sqlite3 *src, const char *schema, const char *dest_file, GError **error)
{
	sqlite3 *dst = NULL;
	remove_db_files(dest_file);
	if (mv_sql_open(dest_file, true, false, &dst, error) < 0)
		return -1;
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, schema);
	int rc = -1;
	if (b) {
		int step;
		while ((step = sqlite3_backup_step(b, 4096)) == SQLITE_OK || step == SQLITE_BUSY || step == SQLITE_LOCKED)
			if (step != SQLITE_OK)
				g_usleep(10000);
		rc = sqlite3_backup_finish(b) == SQLITE_OK && step == SQLITE_DONE ? 0 : -1;
	}
	if (rc < 0)
		mv_sql_set_error(error, dst, "online backup");
	if (rc == 0)
		rc = mv_sql_exec(dst, "PRAGMA journal_mode=DELETE", error);
	sqlite3_close(dst);
	if (rc == 0) {
		int fd = open(dest_file, O_RDONLY | O_CLOEXEC);
		rc = fd >= 0 && mv_fsync_fd(fd, dest_file, error) == 0 ? 0 : -1;
		if (fd < 0)
			mv_set_errno_error(error, errno, "open", dest_file);
		else
			close(fd);
	}
	return rc;
}

int mv_store_backup(mv_store *s, const mv_store_paths *dest, bool with_index, GError **error)
{
	if (mv_mkdir_p(dest->db_dir, error) < 0 || mv_mkdir_p(dest->content_dir, error) < 0 ||
	    mv_mkdir_p(dest->index_dir, error) < 0)
		return -1;
	char *dbp = mv_st_db_file(dest), *ixp = mv_st_index_file(dest);
	const char *prefix;
	sqlite3 *ix = index_conn(s, &prefix);
	int rc = 0;
	/* Index before db: the copy's index may lack the newest messages (the
	 * first writer indexes them) but never names one its db lacks. */
	if (with_index) {
		rc = sqlite_copy(ix, *prefix ? "ix" : "main", ixp, error);
	} else {
		sqlite3 *empty = NULL;
		rc = mv_sql_open(ixp, true, false, &empty, error) == 0 && mv_index_init_schema(empty, "main", error) == 0 ? 0 : -1;
		sqlite3_close(empty);
	}
	if (rc == 0)
		rc = sqlite_copy(s->db, "main", dbp, error);
	sqlite3 *copy = NULL;
	GArray *segs = NULL;
	if (rc == 0 && (rc = mv_sql_open(dbp, false, true, &copy, error)) == 0 &&
	    !(segs = mv_journal_segments_from_db(copy, error)))
		rc = -1;
	sqlite3_close(copy);
	for (guint i = 0; rc == 0 && i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		char *src = mv_st_segment_file(s, sg->id);
		char *name = g_path_get_basename(src);
		char *dst = g_build_filename(dest->content_dir, name, NULL);
		/* Only the committed length the copied db records: bytes past it
		 * belong to a batch the copy does not know. */
		rc = mv_copy_file(src, dst, sg->end, 0600, 0, error);
		g_free(src);
		g_free(name);
		g_free(dst);
	}
	if (rc == 0)
		rc = mv_fsync_dir(dest->db_dir, error) == 0 && mv_fsync_dir(dest->content_dir, error) == 0 &&
		     mv_fsync_dir(dest->index_dir, error) == 0 ? 0 : -1;
	if (segs)
		g_array_free(segs, TRUE);
	g_free(dbp);
	g_free(ixp);
	return rc;
}
