/* store/meta: a store's db opened by path while the store is closed — its
 * own small values (wrapped keys, owning instance: table meta), its format
 * version, and UpgradeStore, which changes that version in place. */
#include "store/journal.h"

#include <string.h>
#include <unistd.h>

/* ---- a store's own values, by path ----------------------------------------------- */

static int open_db_at(const mv_store_paths *paths, bool readonly, sqlite3 **db_r, GError **error)
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
	if (open_db_at(paths, true, &db, error) < 0)
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
	if (open_db_at(paths, false, &db, error) < 0 || mv_store_setup_db(db, true, error) < 0 ||
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
	if (open_db_at(paths, true, &db, error) < 0)
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

/* ---- UpgradeStore ------------------------------------------------------------------------------ */

/* 1 -> 2, first step: the index (if there is one) gets the generation the
 * db is about to name, so a crash before the db commits only costs a
 * rebuild. */
static int stamp_index_generation(const mv_store_paths *paths, const char *gen, GError **error)
{
	char *ixp = mv_store_index_file(paths);
	sqlite3 *ix = NULL;
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO index_state VALUES('generation', %Q)", gen);
	int rc = 0;
	if (!g_file_test(ixp, G_FILE_TEST_EXISTS))
		goto out;
	rc = -1;
	if (mv_sql_open(ixp, false, false, &ix, error) < 0)
		goto out;
	rc = mv_sql_exec(ix, sql, error);
out:
	sqlite3_free(sql);
	sqlite3_close(ix);
	g_free(ixp);
	return rc;
}

/* 1 -> 2 in the db: columns for deletions, the index generation, the
 * version.  Format 1 content has no batch markers, which the scan reads as
 * numbering from 1 without gaps — exactly what format 1 wrote. */
static int upgrade_db_1_to_2(sqlite3 *db, const char *gen, GError **error)
{
	char *sql = sqlite3_mprintf("BEGIN IMMEDIATE;"
	                            "ALTER TABLE messages ADD COLUMN deleted_at INTEGER;"
	                            "ALTER TABLE messages ADD COLUMN deleted_reason TEXT;"
	                            "INSERT OR REPLACE INTO meta VALUES('index_generation', %Q);"
	                            "INSERT OR REPLACE INTO meta VALUES('format_version', '2');"
	                            "COMMIT;", gen);
	int rc = mv_sql_exec(db, sql, error);
	sqlite3_free(sql);
	if (rc < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

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
	mv_store *shell = mv_store_new(0, paths, NULL, MV_STORE_WRITE);
	sqlite3 *db = NULL;
	char *gen = mv_store_new_generation();
	int rc = -1;
	if (mv_store_flock(shell, error) < 0 || open_db_at(paths, false, &db, error) < 0 ||
	    mv_store_setup_db(db, true, error) < 0)
		goto out;
	if (stamp_index_generation(paths, gen, error) < 0)
		goto out;
	rc = upgrade_db_1_to_2(db, gen, error);
out:
	/* Whatever the outcome: handles and format versions read before this
	 * point are not to be trusted any more (mv_store_format_epoch). */
	mv_store_format_changed();
	sqlite3_close(db);
	mv_store_close(&shell);
	g_free(gen);
	return rc;
}
