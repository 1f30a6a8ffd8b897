/* store/query: what readers ask of a store beyond one message (message.c):
 * its statistics and its folders with their counts.  The SQL on the
 * store's schema stays inside store/, so callers above see rows, not
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
