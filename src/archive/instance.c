/* instance: master.sqlite, the master key and the stores registry.
 *
 * Paths of stores inside the data directory are stored relative to it, so
 * moving the data directory moves the whole archive.  The master key lives
 * in master.key (0600) so that the server runs unattended; the recovery key
 * is shown once at init and only its Argon2id-derived wrapping of each store
 * key is kept, which is what lets a store be opened on another instance. */
#include "archive/archive.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

struct mv_instance {
	char *data_dir;
	sqlite3 *db;
	uint8_t master_key[MV_KEY_BYTES];
};

static const char master_schema[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS stores(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" state TEXT NOT NULL CHECK(state IN ('current','normal','writeProtected','disabled')),"
	" db_path TEXT NOT NULL, content_path TEXT NOT NULL, index_path TEXT NOT NULL,"
	" key_master BLOB NOT NULL, key_recovery BLOB NOT NULL, recovery_salt BLOB NOT NULL,"
	" created_at INTEGER NOT NULL);";

char *mv_data_dir_resolve(const char *explicit_dir)
{
	const char *dir = explicit_dir;
	if (!dir || !*dir)
		dir = g_getenv("MAILVAULT_DATA_DIR");
	if (!dir || !*dir)
		dir = "var";
	return g_canonicalize_filename(dir, NULL);
}

static char *master_db_path(const char *dir) { return g_build_filename(dir, "master.sqlite", NULL); }
static char *master_key_path(const char *dir) { return g_build_filename(dir, "master.key", NULL); }

/* master.key = 8-byte magic and format version, then the 32-byte key. */
#define MASTER_KEY_MAGIC "MVKEY001"
#define MASTER_KEY_FILE_BYTES (8 + MV_KEY_BYTES)

static char *absolute_in(const char *data_dir, const char *stored)
{
	return g_path_is_absolute(stored) ? g_strdup(stored) : g_build_filename(data_dir, stored, NULL);
}

static int insert_store(sqlite3 *db, const char *name, const char *rel_base,
                        const uint8_t master[MV_KEY_BYTES], const char *recovery_key, GError **error)
{
	uint8_t data_key[MV_KEY_BYTES], salt[16], kek[MV_KEY_BYTES];
	randombytes_buf(data_key, sizeof data_key);
	randombytes_buf(salt, sizeof salt);
	if (mv_key_from_recovery(recovery_key, salt, kek, error) < 0)
		return -1;
	GByteArray *by_master = mv_key_wrap(master, data_key);
	GByteArray *by_recovery = mv_key_wrap(kek, data_key);
	sodium_memzero(kek, sizeof kek);
	sodium_memzero(data_key, sizeof data_key);

	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db, "INSERT INTO stores(name, state, db_path, content_path, index_path,"
	                       " key_master, key_recovery, recovery_salt, created_at) VALUES(?,?,?,?,?,?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "prepare");
		goto out;
	}
	char *dbp = g_build_filename(rel_base, "db", NULL);
	char *cp = g_build_filename(rel_base, "content", NULL);
	char *ip = g_build_filename(rel_base, "index", NULL);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, "current", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dbp, -1, g_free);
	sqlite3_bind_text(st, 4, cp, -1, g_free);
	sqlite3_bind_text(st, 5, ip, -1, g_free);
	sqlite3_bind_blob(st, 6, by_master->data, (int)by_master->len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, by_recovery->data, (int)by_recovery->len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, salt, sizeof salt, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, mv_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		mv_sql_set_error(error, db, "create store");
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	g_byte_array_unref(by_master);
	g_byte_array_unref(by_recovery);
	return rc;
}

int mv_instance_init(const char *data_dir, char **recovery_key_r, GError **error)
{
	if (sodium_init() < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "libsodium failed to initialise");
		return -1;
	}
	char *dbp = master_db_path(data_dir), *keyp = master_key_path(data_dir);
	char *recovery = NULL;
	sqlite3 *db = NULL;
	int rc = -1;
	if (g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s already holds a mailvault instance", data_dir);
		goto out;
	}
	if (mv_mkdir_p(data_dir, error) < 0)
		goto out;
	uint8_t master[MV_KEY_BYTES], key_file[MASTER_KEY_FILE_BYTES];
	randombytes_buf(master, sizeof master);
	memcpy(key_file, MASTER_KEY_MAGIC, 8);
	memcpy(key_file + 8, master, MV_KEY_BYTES);
	rc = mv_write_file_atomic(keyp, key_file, sizeof key_file, 0600, error);
	sodium_memzero(key_file, sizeof key_file);
	if (rc < 0)
		goto out;
	rc = -1;
	recovery = mv_recovery_key_new();
	char *store_dir = g_build_filename(data_dir, "stores", "store1", NULL);
	mv_store_paths paths = {
		.db_dir = g_build_filename(store_dir, "db", NULL),
		.content_dir = g_build_filename(store_dir, "content", NULL),
		.index_dir = g_build_filename(store_dir, "index", NULL),
	};
	rc = mv_store_create(&paths, error);
	g_free(paths.db_dir);
	g_free(paths.content_dir);
	g_free(paths.index_dir);
	g_free(store_dir);
	if (rc < 0)
		goto out;
	rc = -1;
	if (mv_sql_open(dbp, true, false, &db, error) < 0 || mv_sql_exec(db, master_schema, error) < 0 ||
	    mv_sql_exec(db, "BEGIN", error) < 0)
		goto out;
	char *settings = g_strdup_printf("INSERT INTO settings VALUES('format_version','%d');",
	                                 MV_INSTANCE_FORMAT_VERSION);
	rc = mv_sql_exec(db, settings, error);
	g_free(settings);
	if (rc == 0)
		rc = insert_store(db, "store1", "stores/store1", master, recovery, error);
	if (rc == 0)
		rc = mv_sql_exec(db, "COMMIT", error);
	sodium_memzero(master, sizeof master);
out:
	sqlite3_close(db);
	if (rc == 0)
		*recovery_key_r = recovery;
	else
		g_free(recovery);
	g_free(dbp);
	g_free(keyp);
	return rc;
}

mv_instance *mv_instance_open(const char *data_dir, GError **error)
{
	if (sodium_init() < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "libsodium failed to initialise");
		return NULL;
	}
	char *dbp = master_db_path(data_dir), *keyp = master_key_path(data_dir);
	mv_instance *inst = NULL;
	GByteArray *key = NULL;
	if (!g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND,
		            "%s is not a mailvault data directory (run 'mailvault init' first)", data_dir);
		goto out;
	}
	if (mv_read_file(keyp, 4096, &key, error) < 0)
		goto out;
	if (key->len != MASTER_KEY_FILE_BYTES || memcmp(key->data, MASTER_KEY_MAGIC, 8) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: not a mailvault master key file of format %s",
		            keyp, MASTER_KEY_MAGIC);
		goto out;
	}
	inst = g_new0(mv_instance, 1);
	inst->data_dir = g_strdup(data_dir);
	memcpy(inst->master_key, key->data + 8, MV_KEY_BYTES);
	if (mv_sql_open(dbp, false, false, &inst->db, error) < 0 ||
	    mv_sql_exec(inst->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", error) < 0)
		mv_instance_close(&inst);
out:
	if (key) {
		sodium_memzero(key->data, key->len);
		g_byte_array_unref(key);
	}
	g_free(dbp);
	g_free(keyp);
	return inst;
}

void mv_instance_close(mv_instance **ip)
{
	mv_instance *inst = *ip;
	if (!inst)
		return;
	*ip = NULL;
	sqlite3_close(inst->db);
	sodium_memzero(inst->master_key, sizeof inst->master_key);
	g_free(inst->data_dir);
	g_free(inst);
}

const char *mv_instance_data_dir(const mv_instance *inst) { return inst->data_dir; }

void mv_store_info_free(mv_store_info *info)
{
	if (!info)
		return;
	g_free(info->name);
	g_free(info->state);
	g_free(info->paths.db_dir);
	g_free(info->paths.content_dir);
	g_free(info->paths.index_dir);
	g_free(info);
}

GPtrArray *mv_instance_stores(mv_instance *inst, GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(inst->db, "SELECT id, name, state, db_path, content_path, index_path"
	                       " FROM stores ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, inst->db, "list stores");
		return NULL;
	}
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_store_info_free);
	while (sqlite3_step(st) == SQLITE_ROW) {
		mv_store_info *info = g_new0(mv_store_info, 1);
		info->id = sqlite3_column_int(st, 0);
		info->name = g_strdup((const char *)sqlite3_column_text(st, 1));
		info->state = g_strdup((const char *)sqlite3_column_text(st, 2));
		info->paths.db_dir = absolute_in(inst->data_dir, (const char *)sqlite3_column_text(st, 3));
		info->paths.content_dir = absolute_in(inst->data_dir, (const char *)sqlite3_column_text(st, 4));
		info->paths.index_dir = absolute_in(inst->data_dir, (const char *)sqlite3_column_text(st, 5));
		g_ptr_array_add(list, info);
	}
	sqlite3_finalize(st);
	return list;
}

static int store_key(mv_instance *inst, int store_id, uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(inst->db, "SELECT key_master FROM stores WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, inst->db, "read store key");
		return -1;
	}
	sqlite3_bind_int(st, 1, store_id);
	int rc = -1;
	if (sqlite3_step(st) != SQLITE_ROW)
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d does not exist", store_id);
	else
		rc = mv_key_unwrap(inst->master_key, sqlite3_column_blob(st, 0),
		                   (size_t)sqlite3_column_bytes(st, 0), key_r, error);
	sqlite3_finalize(st);
	return rc;
}

mv_store *mv_instance_open_store(mv_instance *inst, int store_id, mv_store_mode mode, GError **error)
{
	GPtrArray *stores = mv_instance_stores(inst, error);
	if (!stores)
		return NULL;
	mv_store *s = NULL;
	const mv_store_info *found = NULL;
	for (guint i = 0; i < stores->len && !found; i++)
		if (((mv_store_info *)stores->pdata[i])->id == store_id)
			found = stores->pdata[i];
	uint8_t key[MV_KEY_BYTES];
	if (!found)
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d does not exist", store_id);
	else if (store_key(inst, store_id, key, error) == 0)
		s = mv_store_open(store_id, &found->paths, key, mode, error);
	sodium_memzero(key, sizeof key);
	g_ptr_array_free(stores, TRUE);
	return s;
}

int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(inst->db, "SELECT id FROM stores WHERE state='current'", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, inst->db, "find current store");
		return -1;
	}
	int rc = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*store_id_r = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "no store is in state current");
	}
	sqlite3_finalize(st);
	return rc;
}
