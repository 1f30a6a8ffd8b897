/* store/query: what readers ask of a store beyond one message (message.c):
 * its statistics, its folders (with their counts, or just their names), a
 * folder's page of messages and a walk over all live messages.  The SQL on
 * the store's schema stays inside store/, so callers above see rows, not
 * tables. */
#include "store/internal.h"

static int64_t scalar(mv_store *s, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return v;
}

int mv_store_get_stats(mv_store *s, mv_store_stats *st, GError **error)
{
	st->messages = scalar(s, "SELECT count(*) FROM messages WHERE deleted=0");
	st->contents = scalar(s, "SELECT count(*) FROM contents");
	st->raw_bytes = scalar(s, "SELECT coalesce(sum(size),0) FROM contents");
	if (st->messages < 0 || st->contents < 0 || st->raw_bytes < 0) {
		mv_sql_set_error(error, s->db, "statistics");
		return -1;
	}
	st->disk_content = mv_disk_usage(s->paths.content_dir);
	st->disk_db = mv_disk_usage(s->paths.db_dir);
	st->disk_index = mv_disk_usage(s->paths.index_dir);
	return 0;
}

int64_t mv_store_message_count(mv_store *s)
{
	return scalar(s, "SELECT coalesce(max(num), 0) FROM messages");
}

void mv_folder_stats_free(mv_folder_stats *f)
{
	if (!f)
		return;
	g_free(f->archive);
	g_free(f->path);
	g_free(f);
}

int mv_store_list_folders(mv_store *s, const char *archive, GPtrArray **folders_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT f.archive, f.path, count(m.num), coalesce(sum(m.size),0) FROM folders f"
	                " LEFT JOIN messages m ON m.folder_id = f.id AND m.deleted = 0"
	                " WHERE ?1 IS NULL OR f.archive = ?1 GROUP BY f.id ORDER BY f.archive, f.path", &st, error) < 0)
		return -1;
	if (archive)
		sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_folder_stats_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		mv_folder_stats *f = g_new0(mv_folder_stats, 1);
		f->archive = g_strdup((const char *)sqlite3_column_text(st, 0));
		f->path = g_strdup((const char *)sqlite3_column_text(st, 1));
		f->messages = sqlite3_column_int64(st, 2);
		f->bytes = sqlite3_column_int64(st, 3);
		g_ptr_array_add(list, f);
	}
	sqlite3_finalize(st);
	*folders_r = list;
	return 0;
}

/* ---- messages and folders, for the commands above ------------------------- */

/* sql prepared on the store's db, a failure reported as `what` (the texts
 * callers above have always shown). */
static int prepare(mv_store *s, const char *sql, const char *what, sqlite3_stmt **st_r, GError **error)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st_r, NULL) == SQLITE_OK)
		return 0;
	mv_sql_set_error(error, s->db, what);
	return -1;
}

#define EACH_BATCH 256

/* The next live messages numbered from *from on into batch, *from moved
 * past them; the statement is reset after, which ends its read
 * transaction.  *done when no more follow. */
static int fetch_messages(mv_store *s, sqlite3_stmt *st, int64_t *from, GArray *batch, bool *done, GError **error)
{
	sqlite3_bind_int64(st, 1, *from);
	sqlite3_bind_int64(st, 2, EACH_BATCH);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_store_message m;
		mv_store_message_from_row(st, &m);
		g_array_append_val(batch, m);
		*from = m.number + 1;
	}
	*done = batch->len < EACH_BATCH;
	/* after SQLITE_DONE, reset reports no error of its own */
	if (sqlite3_reset(st) == SQLITE_OK && rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, s->db, "list messages");
	return -1;
}

static void message_clear(gpointer m) { mv_store_message_clear(m); }

int mv_store_each_message(mv_store *s, int64_t from, mv_store_message_fn fn, void *opaque, GError **error)
{
	sqlite3_stmt *st;
	if (prepare(s, "SELECT " MV_STORE_MESSAGE_COLUMNS " WHERE m.deleted = 0 AND m.num >= ?1 ORDER BY m.num LIMIT ?2",
	            "list messages", &st, error) < 0)
		return -1;
	GArray *batch = g_array_new(FALSE, TRUE, sizeof(mv_store_message));
	g_array_set_clear_func(batch, message_clear);
	bool done = false;
	int rc = 0;
	while (rc == 0 && !done) {
		rc = fetch_messages(s, st, &from, batch, &done, error);
		for (guint i = 0; rc == 0 && i < batch->len; i++)
			rc = fn(&g_array_index(batch, mv_store_message, i), opaque) != 0 ? 1 : 0;
		g_array_set_size(batch, 0);
	}
	g_array_free(batch, TRUE);
	sqlite3_finalize(st);
	return rc;
}

int mv_store_folder_messages(mv_store *s, const char *archive, const char *path, int64_t before_date,
                             int64_t before_num, int64_t limit, mv_store_message_fn fn, void *opaque, GError **error)
{
	sqlite3_stmt *st;
	if (prepare(s, "SELECT " MV_STORE_MESSAGE_COLUMNS " WHERE f.archive = ?1 AND f.path = ?2 AND m.deleted = 0"
	            " AND m.date <= ?3 AND (m.date < ?3 OR m.num < ?4) ORDER BY m.date DESC, m.num DESC LIMIT ?5",
	            "list messages", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, before_date);
	sqlite3_bind_int64(st, 4, before_num);
	sqlite3_bind_int64(st, 5, limit);
	int rc, stopped = 0;
	while (!stopped && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_store_message m;
		mv_store_message_from_row(st, &m);
		stopped = fn(&m, opaque) != 0;
		mv_store_message_clear(&m);
	}
	int result = stopped ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (result < 0)
		mv_sql_set_error(error, s->db, "list messages");
	sqlite3_finalize(st);
	return result;
}

int mv_store_folder_count(mv_store *s, const char *archive, const char *path, int64_t before_date,
                          int64_t before_num, int64_t at_most, int64_t *count_r, GError **error)
{
	sqlite3_stmt *st;
	/* Counting stops at at_most: the cost stays a bounded index walk
	 * however large the folder is. */
	if (prepare(s, "SELECT count(*) FROM (SELECT 1 FROM messages m JOIN folders f ON f.id = m.folder_id"
	            " WHERE f.archive = ?1 AND f.path = ?2 AND m.deleted = 0 AND m.date <= ?3 AND (m.date < ?3 OR m.num < ?4)"
	            " LIMIT ?5)", "count messages", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, before_date);
	sqlite3_bind_int64(st, 4, before_num);
	sqlite3_bind_int64(st, 5, at_most);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*count_r = sqlite3_column_int64(st, 0);
	else
		mv_sql_set_error(error, s->db, "count messages");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int mv_store_folder_message_date(mv_store *s, int64_t number, const char *archive, const char *path,
                                 int64_t *date_r, GError **error)
{
	sqlite3_stmt *st;
	if (prepare(s, "SELECT m.date FROM messages m JOIN folders f ON f.id = m.folder_id"
	            " WHERE m.num = ? AND f.archive = ? AND f.path = ?", "find message", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, number);
	sqlite3_bind_text(st, 2, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*date_r = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		mv_sql_set_error(error, s->db, "find message");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int mv_store_has_folder(mv_store *s, const char *archive, const char *path, GError **error)
{
	sqlite3_stmt *st;
	if (prepare(s, "SELECT 1 FROM folders WHERE archive = ?1 AND (?2 = '' OR path = ?2 OR (path >= ?3 AND path < ?4))"
	            " LIMIT 1", "find folder", &st, error) < 0)
		return -1;
	/* "p/" <= below < "p0": '0' follows '/', and paths compare bytewise. */
	char *lo = g_strconcat(path, "/", NULL), *hi = g_strconcat(path, "0", NULL);
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, hi, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		mv_sql_set_error(error, s->db, "find folder");
	sqlite3_finalize(st);
	g_free(lo);
	g_free(hi);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int mv_store_each_folder(mv_store *s, mv_store_folder_fn fn, void *opaque, GError **error)
{
	sqlite3_stmt *st;
	if (prepare(s, "SELECT archive, path FROM folders", "list folders", &st, error) < 0)
		return -1;
	int rc, stopped = 0;
	while (!stopped && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *archive = sqlite3_column_text(st, 0), *path = sqlite3_column_text(st, 1);
		stopped = fn(archive ? (const char *)archive : "", path ? (const char *)path : "", opaque) != 0;
	}
	int result = stopped ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (result < 0)
		mv_sql_set_error(error, s->db, "list folders");
	sqlite3_finalize(st);
	return result;
}

/* Through the store's cached statement: ingest asks once per message. */
int mv_store_read_hold(mv_store *s)
{
	if (s->read_held)
		return 0;
	GError *err = NULL;
	if (mv_sql_exec(s->db, "BEGIN", &err) < 0) {
		mv_log_debug("store %d: %s", s->id, err->message);
		g_error_free(err);
		return -1;
	}
	s->read_held = true;
	return 0;
}

bool mv_store_read_holding(const mv_store *s)
{
	return s->read_held;
}

void mv_store_read_release(mv_store *s)
{
	if (!s || !s->read_held)
		return;
	s->read_held = false;
	GError *err = NULL;
	if (mv_sql_exec(s->db, "COMMIT", &err) < 0) {
		mv_log_debug("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
}

int mv_store_folder_has_content(mv_store *s, const char *archive, const char *path,
                                const uint8_t hash[MV_HASH_BYTES], bool *has_r, GError **error)
{
	static const char sql[] = "SELECT 1 FROM contents c JOIN messages m ON m.content_id = c.id"
	                          " JOIN folders f ON f.id = m.folder_id"
	                          " WHERE c.hash = ? AND f.archive = ? AND f.path = ? LIMIT 1";
	sqlite3_stmt *st = mv_store_stmt_get(s, sql, error);
	if (!st)
		return -1;
	sqlite3_bind_blob(st, 1, hash, MV_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*has_r = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		mv_sql_set_error(error, s->db, "look up a message by content");
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}
