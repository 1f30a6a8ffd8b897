/* store/upgrade: UpgradeStore, which brings a store's files from an older
 * format version to this build's, in place and under the write lock.  Each
 * step is ordered so that a crash at any instant leaves either the old
 * format or the new one, never a mix the store cannot open. */
#include "store/journal.h"

#include <errno.h>
#include <stdio.h>
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

/* 1 -> 2 on the plain db: the index generation stamped first, then the db. */
static int upgrade_1_to_2(const mv_store_paths *paths, sqlite3 *db, GError **error)
{
	char *gen = mv_store_new_generation();
	int rc = -1;
	if (stamp_index_generation(paths, gen, error) == 0)
		rc = upgrade_db_1_to_2(db, gen, error);
	g_free(gen);
	return rc;
}

/* ---- 2 -> 3: the db and the index encrypted --------------------------------------------- */

/* Everything the plain db's WAL holds goes into the db file first: the
 * swap removes the WAL, which must by then hold nothing. */
static int checkpoint_fully(sqlite3 *db, const char *dbp, GError **error)
{
	int log = -1, done = -1;
	if (sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, &log, &done) != SQLITE_OK) {
		mv_sql_set_error(error, db, "checkpoint before encrypting");
		return -1;
	}
	if (log != done) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "%s is being read by another process: UpgradeStore needs it to "
		            "itself for a moment; try again", dbp);
		return -1;
	}
	return 0;
}

/* The exported copy made what a store's encrypted db is: format 3 (4 is the next step's), WAL
 * (set while the file is private, as RecoverStore does), no own values
 * (they are in the keys file now), and durable. */
static int finish_encrypted_db(const char *tmp, const uint8_t key[MV_KEY_BYTES], GError **error)
{
	sqlite3 *db = NULL;
	char *sql = g_strdup_printf("BEGIN IMMEDIATE;"
	                            "DELETE FROM meta WHERE key NOT IN ('format_version', 'index_generation');"
	                            "INSERT OR REPLACE INTO meta VALUES('format_version', '3');"
	                            "COMMIT; PRAGMA journal_mode=WAL;");
	int rc = -1;
	if (mv_store_sql_open(tmp, key, MV_STORE_SQL_DB, true, false, false, &db, error) < 0 ||
	    mv_sql_exec(db, sql, error) < 0)
		goto out;
	sqlite3_close(db);
	db = NULL;
	rc = mv_fsync_file(tmp, error);
out:
	sqlite3_close(db);
	g_free(sql);
	return rc;
}

/* The plain index exported to tmp.  Not having one is no failure: a store
 * without an index rebuilds it from content, so an index that is missing
 * or unreadable is left to that (with a warning for the latter). */
static int encrypt_index(const char *ixp, const char *tmp, const uint8_t key[MV_KEY_BYTES], GError **error)
{
	/* Encrypted already (an earlier UpgradeStore got as far as its rename)
	 * or absent: nothing to copy, and the swap leaves it as it is. */
	if (mv_sql_file_kind_of(ixp) != MV_SQL_FILE_PLAIN)
		return 0;
	sqlite3 *ix = NULL, *enc = NULL;
	GError *err = NULL;
	int rc = 0;
	if (mv_sql_open(ixp, false, false, &ix, &err) < 0 || mv_store_sql_export(ix, tmp, key, MV_STORE_SQL_INDEX, &err) < 0 ||
	    mv_store_sql_open(tmp, key, MV_STORE_SQL_INDEX, true, false, false, &enc, &err) < 0 ||
	    mv_index_init_schema(enc, "main", &err) < 0 || mv_sql_exec(enc, "PRAGMA journal_mode=WAL", &err) < 0) {
		mv_log_warn("%s: not encrypted but left to be rebuilt from content: %s", ixp, err->message);
		g_clear_error(&err);
		mv_store_remove_db_files(tmp);
	}
	sqlite3_close(enc);
	sqlite3_close(ix);
	if (g_file_test(tmp, G_FILE_TEST_EXISTS))
		rc = mv_fsync_file(tmp, error);
	return rc;
}

/* The index first, the db last: the db's rename is the upgrade's commit
 * point.  Cut short between the two, the plain db opens the encrypted index
 * (mv_store_index_file_encrypted), and the next UpgradeStore starts over. */
static int swap_encrypted_files(const mv_store_paths *paths, const char *dbp, const char *dbtmp, const char *ixp,
                                const char *ixtmp, GError **error)
{
	if (g_file_test(ixtmp, G_FILE_TEST_EXISTS)) {
		mv_store_remove_db_files(ixp);
		if (rename(ixtmp, ixp) < 0) {
			mv_set_errno_error(error, errno, "rename", ixtmp);
			return -1;
		}
	}
	if (mv_fsync_dir(paths->index_dir, error) < 0)
		return -1;
	mv_fault_point("upgrade-store", 3);
	char *wal = g_strconcat(dbp, "-wal", NULL), *shm = g_strconcat(dbp, "-shm", NULL);
	unlink(wal);
	unlink(shm);
	g_free(wal);
	g_free(shm);
	if (rename(dbtmp, dbp) < 0) {
		mv_set_errno_error(error, errno, "rename", dbtmp);
		return -1;
	}
	return mv_fsync_dir(paths->db_dir, error);
}

/* The store's own values move to the keys file, which names format 3
 * before any encrypted file exists; then encrypted copies of the db and
 * index are made beside them and swapped in.  db is closed on return. */
static int encrypt_2_to_3(const mv_store_paths *paths, const uint8_t key[MV_KEY_BYTES], sqlite3 **db, GError **error)
{
	char *dbp = mv_store_db_file(paths), *ixp = mv_store_index_file(paths);
	char *dbtmp = g_strconcat(dbp, ".encrypting", NULL), *ixtmp = g_strconcat(ixp, ".encrypting", NULL);
	GPtrArray *rows = mv_store_legacy_meta_read(dbp);
	int rc = -1;
	mv_store_remove_db_files(dbtmp);
	mv_store_remove_db_files(ixtmp);
	if (mv_store_keys_file_adopt(paths, rows, error) < 0 || mv_store_keys_file_set_format(paths, 3, error) < 0)
		goto out;
	mv_fault_point("upgrade-store", 1);
	if (checkpoint_fully(*db, dbp, error) < 0 || mv_store_sql_export(*db, dbtmp, key, MV_STORE_SQL_DB, error) < 0 ||
	    finish_encrypted_db(dbtmp, key, error) < 0 || encrypt_index(ixp, ixtmp, key, error) < 0)
		goto out;
	sqlite3_close(*db);
	*db = NULL;
	mv_fault_point("upgrade-store", 2);
	rc = swap_encrypted_files(paths, dbp, dbtmp, ixp, ixtmp, error);
out:
	if (rc < 0) {
		mv_store_remove_db_files(dbtmp);
		mv_store_remove_db_files(ixtmp);
	}
	if (rows)
		g_ptr_array_free(rows, TRUE);
	g_free(dbp);
	g_free(ixp);
	g_free(dbtmp);
	g_free(ixtmp);
	return rc;
}

/* ---- 3 -> 4: zstd dictionaries -------------------------------------------------------------- */

/* Format 3 records all decode as they are: the step only gives the db its
 * dictionaries table and names format 4, the db first (its commit is the
 * step's), then the keys file, which the store list reads.  Cut between
 * the two, the store opens as format 4 and UpgradeStore run again (the
 * keys file still saying 3) repeats the step harmlessly; the other order
 * would leave a keys file saying 4 over a db UpgradeStore never touches. */
static int upgrade_3_to_4(const mv_store_paths *paths, const uint8_t key[MV_KEY_BYTES], GError **error)
{
	char *dbp = mv_store_db_file(paths);
	sqlite3 *db = NULL;
	int rc = -1;
	if (mv_store_sql_open(dbp, key, MV_STORE_SQL_DB, true, false, false, &db, error) < 0 ||
	    mv_store_setup_db(db, true, error) < 0 ||
	    mv_sql_exec(db, "BEGIN IMMEDIATE;"
	                "CREATE TABLE IF NOT EXISTS dictionaries(seq INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE,"
	                " dict BLOB NOT NULL, created_at INTEGER NOT NULL);"
	                "INSERT OR REPLACE INTO meta VALUES('format_version', '4');"
	                "COMMIT;", error) < 0) {
		if (db)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	mv_fault_point("upgrade-store", 4);
	rc = mv_store_keys_file_set_format(paths, 4, error);
out:
	sqlite3_close(db);
	g_free(dbp);
	return rc;
}

int mv_store_upgrade(const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES], int *from_version_r,
                     GError **error)
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
	mv_store *shell = mv_store_new(0, paths, data_key, MV_STORE_WRITE);
	sqlite3 *db = NULL;
	int rc = -1;
	if (mv_store_flock(shell, error) < 0)
		goto out;
	if (version < 3) {
		if (mv_store_open_db_at(paths, false, &db, error) < 0 || mv_store_setup_db(db, true, error) < 0)
			goto out;
		if (version < 2 && upgrade_1_to_2(paths, db, error) < 0)
			goto out;
		if (encrypt_2_to_3(paths, data_key, &db, error) < 0)
			goto out;
	}
	rc = upgrade_3_to_4(paths, data_key, error);
out:
	/* Whatever the outcome: handles and format versions read before this
	 * point are not to be trusted any more (mv_store_format_epoch). */
	mv_store_format_changed();
	sqlite3_close(db);
	mv_store_close(&shell);
	return rc;
}
