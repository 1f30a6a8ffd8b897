/* store/db_files: a store's two SQLite files — db/store.sqlite (folders,
 * messages: subjects, senders, recipients) and index/index.sqlite (every
 * body's words) — encrypted at rest since format 3, each under its own key
 * derived from the store's data key.  The derivation is a keyed BLAKE2b of a
 * fixed label, so the files' keys are as random as the data key and nothing
 * new has to be kept: whoever can unwrap the data key (the master key, or the
 * recovery key on another instance) opens the files.  A store from before
 * format 3 has plain files; they are read as they are until UpgradeStore
 * encrypts them, and a file is plain exactly when its first bytes are
 * SQLite's magic. */
#include "store/internal.h"

#include <sodium.h>
#include <string.h>

static const char *const file_labels[] = {
	[MV_STORE_SQL_DB] = "mailvault store.sqlite key, format 3",
	[MV_STORE_SQL_INDEX] = "mailvault index.sqlite key, format 3",
};

void mv_store_sql_key(const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which, uint8_t key_r[MV_SQL_KEY_BYTES])
{
	const char *label = file_labels[which];
	crypto_generichash(key_r, MV_SQL_KEY_BYTES, (const unsigned char *)label, strlen(label), data_key, MV_KEY_BYTES);
}

bool mv_store_db_file_encrypted(const char *dbp)
{
	/* Absent or empty: about to be made, and made encrypted. */
	return mv_sql_file_kind_of(dbp) != MV_SQL_FILE_PLAIN;
}

int mv_store_sql_open(const char *path, const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which, bool encrypted,
                      bool create, bool readonly, sqlite3 **db_r, GError **error)
{
	if (!encrypted)
		return mv_sql_open(path, create, readonly, db_r, error);
	if (!data_key) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "%s is encrypted and was opened without its store's key", path);
		return -1;
	}
	uint8_t key[MV_SQL_KEY_BYTES];
	mv_store_sql_key(data_key, which, key);
	int rc = mv_sql_open_encrypted(path, key, create, readonly, db_r, error);
	sodium_memzero(key, sizeof key);
	return rc;
}

int mv_store_sql_attach_index(sqlite3 *db, const char *ixp, const uint8_t data_key[MV_KEY_BYTES], bool encrypted,
                              GError **error)
{
	if (!encrypted) {
		char *attach = sqlite3_mprintf("ATTACH DATABASE %Q AS ix", ixp);
		int rc = mv_sql_exec(db, attach, error);
		sqlite3_free(attach);
		return rc;
	}
	uint8_t key[MV_SQL_KEY_BYTES];
	mv_store_sql_key(data_key, MV_STORE_SQL_INDEX, key);
	int rc = mv_sql_attach_encrypted(db, ixp, "ix", key, error);
	sodium_memzero(key, sizeof key);
	return rc;
}

int mv_store_sql_export(sqlite3 *plain, const char *dest, const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which,
                        GError **error)
{
	uint8_t key[MV_SQL_KEY_BYTES];
	mv_store_sql_key(data_key, which, key);
	int rc = mv_sql_export_encrypted(plain, dest, key, error);
	sodium_memzero(key, sizeof key);
	return rc;
}

bool mv_store_index_file_encrypted(const char *ixp, bool db_encrypted)
{
	mv_sql_file_kind kind = mv_sql_file_kind_of(ixp);
	if (!db_encrypted)
		return kind == MV_SQL_FILE_ENCRYPTED;
	if (kind == MV_SQL_FILE_PLAIN) {
		/* An encrypted store's words must not go on into a plain file:
		 * the index is derived data, rebuilt from content by the next
		 * writer.  (Not a state this build leaves: a file put there.) */
		mv_log_warn("%s is a plain SQLite file but its store is encrypted: removed, to be rebuilt from content",
		            ixp);
		mv_store_remove_db_files(ixp);
	}
	return true;
}
