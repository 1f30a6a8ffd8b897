/* store/meta: a store's own small values — its wrapped keys, owning
 * instance and identity, which archive/ keeps there so that a store can be
 * detached and attached elsewhere — and its format version, both read while
 * the store is closed and before its key is known.  Since format 3 (db and
 * index encrypted) they live in db/store-keys.sqlite, a plain SQLite file of
 * one table beside the encrypted db: they are the means to the key, so they
 * cannot be inside what it encrypts, and the wrapped keys are ciphertext
 * already.  Stores from before keep them in their plain db's meta table,
 * read from there until UpgradeStore moves them. */
#include "store/journal.h"

#include <string.h>
#include <unistd.h>

static const char keys_schema[] = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL);";

char *mv_store_keys_file(const mv_store_paths *p) { return g_build_filename(p->db_dir, "store-keys.sqlite", NULL); }

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

/* The keys file; create makes it (and makes its creation durable). */
static int open_keys_file(const mv_store_paths *paths, bool create, sqlite3 **db_r, GError **error)
{
	char *kp = mv_store_keys_file(paths);
	bool is_new = !g_file_test(kp, G_FILE_TEST_EXISTS);
	int rc = -1;
	if (is_new && !create) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "the store's keys file %s is missing", kp);
		goto out;
	}
	if (mv_sql_open(kp, create, !create, db_r, error) < 0)
		goto out;
	/* A rollback journal, not WAL: a read-only open then leaves no side
	 * files; EXTRA syncs the directory after the journal's removal, which
	 * is the commit in this mode. */
	if (create && (mv_sql_exec(*db_r, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=EXTRA", error) < 0 ||
	               mv_sql_exec(*db_r, keys_schema, error) < 0 ||
	               (is_new && mv_fsync_dir(paths->db_dir, error) < 0))) {
		sqlite3_close(*db_r);
		*db_r = NULL;
		goto out;
	}
	rc = 0;
out:
	g_free(kp);
	return rc;
}

static int meta_value(sqlite3 *db, const char *key, GBytes **value_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "SELECT value FROM meta WHERE key=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*value_r = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		mv_sql_set_error(error, db, "read store meta");
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
}

/* A plain db (a store from before format 3) may still hold the value. */
static int legacy_meta_get(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error)
{
	char *dbp = mv_store_db_file(paths);
	bool plain = mv_sql_file_kind_of(dbp) == MV_SQL_FILE_PLAIN;
	g_free(dbp);
	if (!plain)
		return 0;
	sqlite3 *db = NULL;
	if (mv_store_open_db_at(paths, true, &db, error) < 0)
		return -1;
	int rc = meta_value(db, key, value_r, error);
	sqlite3_close(db);
	return rc;
}

int mv_store_meta_get(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error)
{
	*value_r = NULL;
	char *kp = mv_store_keys_file(paths);
	bool have_keys_file = g_file_test(kp, G_FILE_TEST_EXISTS);
	g_free(kp);
	if (have_keys_file) {
		sqlite3 *db = NULL;
		if (open_keys_file(paths, false, &db, error) < 0)
			return -1;
		int rc = meta_value(db, key, value_r, error);
		sqlite3_close(db);
		if (rc < 0 || *value_r)
			return rc;
	}
	char *dbp = mv_store_db_file(paths);
	bool have_db = g_file_test(dbp, G_FILE_TEST_EXISTS);
	g_free(dbp);
	if (!have_keys_file && !have_db) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s holds no store (no store-keys.sqlite, no store.sqlite)",
		            paths->db_dir);
		return -1;
	}
	return legacy_meta_get(paths, key, value_r, error);
}

int mv_store_meta_set(const mv_store_paths *paths, const char *key, const void *data, size_t len, GError **error)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	int rc = -1;
	if (open_keys_file(paths, true, &db, error) < 0 ||
	    mv_sql_prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, error) < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, len ? data : "", (int)len, SQLITE_STATIC);
	rc = mv_sql_step_done(db, st, "write store meta", error);
out:
	sqlite3_close(db);
	return rc;
}

int mv_store_keys_file_set_format(const mv_store_paths *paths, int version, GError **error)
{
	char v[16];
	g_snprintf(v, sizeof v, "%d", version);
	return mv_store_meta_set(paths, "format_version", v, strlen(v), error);
}

int mv_store_keys_file_adopt(const mv_store_paths *paths, GPtrArray *rows, GError **error)
{
	if (!rows || rows->len == 0)
		return 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (open_keys_file(paths, true, &db, error) < 0 || mv_sql_exec(db, "BEGIN IMMEDIATE", error) < 0)
		goto out;
	if (mv_sql_prepare(db, "INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)", &st, error) < 0)
		goto out;
	for (guint i = 0; i + 1 < rows->len; i += 2) {
		sqlite3_bind_value(st, 1, rows->pdata[i]);
		sqlite3_bind_value(st, 2, rows->pdata[i + 1]);
		if (sqlite3_step(st) != SQLITE_DONE) {
			mv_sql_set_error(error, db, "write store meta");
			goto out;
		}
		sqlite3_reset(st);
	}
	rc = mv_sql_exec(db, "COMMIT", error);
out:
	sqlite3_finalize(st);
	if (rc < 0 && db)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* An encrypted db names its format only to its key; the keys file says it
 * to whoever has not unwrapped the key yet (AttachStore, the store list). */
static int keys_file_format(const mv_store_paths *paths, int *version_r, GError **error)
{
	GBytes *v = NULL;
	sqlite3 *db = NULL;
	if (open_keys_file(paths, false, &db, error) < 0) {
		g_prefix_error(error, "store.sqlite is encrypted and cannot name its format: ");
		return -1;
	}
	int rc = meta_value(db, "format_version", &v, error);
	sqlite3_close(db);
	if (rc < 0)
		return -1;
	if (v) {
		char *text = g_strndup(g_bytes_get_data(v, NULL), g_bytes_get_size(v));
		*version_r = atoi(text);
		g_free(text);
		g_bytes_unref(v);
	}
	if (*version_r < 3) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: store.sqlite is not a plain SQLite file and its keys file "
		            "names no encrypted format: not a mailvault store, or a damaged one", paths->db_dir);
		return -1;
	}
	return 0;
}

int mv_store_format_version(const mv_store_paths *paths, int *version_r, GError **error)
{
	*version_r = 0;
	char *dbp = mv_store_db_file(paths);
	mv_sql_file_kind kind = mv_sql_file_kind_of(dbp);
	g_free(dbp);
	if (kind == MV_SQL_FILE_ENCRYPTED)
		return keys_file_format(paths, version_r, error);
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

/* ---- values of a plain db from before format 3 ---------------------------------------------- */

static int legacy_meta_rows(sqlite3 *old, GPtrArray *rows)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, step;
	if (sqlite3_prepare_v2(old, "SELECT key, value FROM meta WHERE key NOT IN ('format_version', 'index_generation')",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_value *k = sqlite3_value_dup(sqlite3_column_value(st, 0));
		sqlite3_value *v = sqlite3_value_dup(sqlite3_column_value(st, 1));
		if (k)
			g_ptr_array_add(rows, k);
		if (v)
			g_ptr_array_add(rows, v);
		if (!k || !v)
			goto out;
	}
	if (step != SQLITE_DONE)
		goto out;
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

GPtrArray *mv_store_legacy_meta_read(const char *dbp)
{
	if (mv_sql_file_kind_of(dbp) != MV_SQL_FILE_PLAIN)
		return NULL;
	GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)sqlite3_value_free);
	sqlite3 *old = NULL;
	int rc = -1;
	if (mv_sql_open(dbp, false, true, &old, NULL) < 0)
		goto out;
	rc = legacy_meta_rows(old, rows);
out:
	sqlite3_close(old);
	if (rc == 0)
		return rows;
	mv_log_warn("the old store database %s is unreadable; the store's own key copies are re-created by the instance",
	            dbp);
	g_ptr_array_free(rows, TRUE);
	return NULL;
}
