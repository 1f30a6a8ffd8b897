/* store/meta: a store's db opened by path while the store is closed — its
 * own small values (wrapped keys, owning instance: table meta) and its
 * format version. */
#include "store/journal.h"

#include <string.h>
#include <unistd.h>

/* ---- a store's own values, by path ----------------------------------------------- */

int mv_store_open_db_at(const mv_store_paths *paths, bool readonly, sqlite3 **db_r, GError **error)
{
	char *dbp = mv_store_db_file(paths);
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
	if (mv_store_open_db_at(paths, true, &db, error) < 0)
		return -1;
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_sql_prepare(db, "SELECT value FROM meta WHERE key=?", &st, error) < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*value_r = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}

int mv_store_meta_set(const mv_store_paths *paths, const char *key, const void *data, size_t len, GError **error)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_store_open_db_at(paths, false, &db, error) < 0 || mv_store_setup_db(db, true, error) < 0 ||
	    mv_sql_prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, error) < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
	rc = mv_sql_step_done(db, st, "write store meta", error);
out:
	sqlite3_close(db);
	return rc;
}

int mv_store_format_version(const mv_store_paths *paths, int *version_r, GError **error)
{
	sqlite3 *db = NULL;
	if (mv_store_open_db_at(paths, true, &db, error) < 0)
		return -1;
	char *v = NULL;
	int rc = mv_store_text_query(db, "SELECT value FROM meta WHERE key='format_version'", "read format version", &v, error);
	sqlite3_close(db);
	*version_r = v ? atoi(v) : 0;
	g_free(v);
	if (rc < 0)
		return -1;
	if (*version_r < 1) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: not a mailvault store (no format version)", paths->db_dir);
		return -1;
	}
	return 0;
}
