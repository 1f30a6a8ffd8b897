/* store/upgrade: UpgradeStore, which brings a store's files from an older
 * format version to this build's, in place and under the write lock.  Each
 * step is ordered so that a crash at any instant leaves either the old
 * format or the new one, never a mix the store cannot open. */
#include "store/journal.h"

#include <string.h>
#include <unistd.h>

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
	if (mv_store_flock(shell, error) < 0 || mv_store_open_db_at(paths, false, &db, error) < 0 ||
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
