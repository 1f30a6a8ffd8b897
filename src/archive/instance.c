/* instance: master.sqlite, the master key, and the keys of the stores.
 *
 * Paths of stores inside the data directory are stored relative to it, so
 * moving the data directory moves the whole archive.  The master key lives
 * in master.key (0600) so that the server runs unattended.
 *
 * Each store's random data key is kept wrapped twice: by the master key and
 * by a recovery KEK, derived once at init with Argon2id from the recovery
 * key (shown once, stored nowhere) and the instance's recovery salt.  The
 * instance keeps that KEK wrapped by the master key, so that stores created
 * later get a recovery wrapping without anyone typing the recovery key.
 * Instances made before this scheme derived a KEK per store and kept none:
 * their existing stores keep their own recovery wrapping, but stores they
 * create now have none (a warning says so).
 *
 * The stores table of master.sqlite is the instance's copy of the wrapped
 * keys; each store also carries them, with its owner's instance id and its
 * own uid, in its own db (store meta), so that a detached store can be
 * attached to another instance and unlocked there with the recovery key.
 * meta_synced = 0 marks a row whose copy in the store still has to be
 * written (done on open, after crashes and master key renewals).
 *
 * Renewing the master key is crash-safe by construction: the new key goes
 * to master.key.new, every store key is rewrapped into key_master_next in one
 * transaction, then master.key.new is renamed over master.key (the commit
 * point), then the *_next values are promoted.  A settings row
 * master_key_check (a value wrapped by the master key) tells, on open, which
 * side of the rename a crash happened: before it the leftovers are dropped,
 * after it the promotion is finished.  The recovery KEK and the audit log's
 * key (see audit.c) are settings wrapped by the master key and go through
 * the same _next/promote steps.  Whatever writes wrapped keys holds
 * the instance key lock (flock on master.lock), so it cannot interleave
 * with a renewal in another process. */
#include "archive/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct mv_instance {
	char *data_dir;
	sqlite3 *db;
	uint8_t master_key[MV_KEY_BYTES];
	char *instance_id;
	/* db file path -> format_seen: the format version last read from each
	 * store's db, with what its files looked like then. */
	GHashTable *format_seen;
	/* Readers' store handles kept open for reuse: store id -> kept_store
	 * (one per store), and the handles lent out: mv_store* -> kept_store. */
	GHashTable *kept, *lent;
};


#define SETTING_FORMAT "format_version"
#define SETTING_INSTANCE_ID "instance_id"
#define SETTING_RECOVERY_SALT "recovery_salt"
#define SETTING_RECOVERY_KEK "recovery_kek_wrapped"
#define SETTING_RECOVERY_KEK_NEXT "recovery_kek_wrapped_next"
#define SETTING_KEY_CHECK "master_key_check"
#define SETTING_KEY_CHECK_NEXT "master_key_check_next"
#define SETTING_AUDIT_KEY "audit_key_wrapped"
#define SETTING_AUDIT_KEY_NEXT "audit_key_wrapped_next"

#define RECOVERY_SALT_BYTES 16
#define INSTANCE_ID_BYTES 16

/* Test hook: MAILVAULT_FAULT=renew-master-key:N ends the process at step N
 * of a renewal, as a crash would, so the system tests can prove that every
 * intermediate state opens. */
#define FAULT_EXIT_STATUS 86

/* Users, their folder privileges and app passwords (users.c) and the audit
 * log (audit.c).  Part of a new instance's schema, and added on open to an
 * instance made before them (every statement is idempotent). */
#define USERS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY COLLATE NOCASE, full_name TEXT," \
	" distinguished_name TEXT, authentication TEXT NOT NULL DEFAULT 'integrated'," \
	" privileges INTEGER NOT NULL DEFAULT 0, login_privileges INTEGER NOT NULL DEFAULT 0," \
	" email_addresses TEXT NOT NULL DEFAULT '[]', pop3_user_names TEXT NOT NULL DEFAULT '[]'," \
	" password_hash TEXT, auth_generation INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);" \
	"CREATE TABLE IF NOT EXISTS folder_privileges(user TEXT NOT NULL COLLATE NOCASE," \
	" folder TEXT NOT NULL COLLATE NOCASE, privileges INTEGER NOT NULL, PRIMARY KEY(user, folder));" \
	"CREATE TABLE IF NOT EXISTS app_passwords(id INTEGER PRIMARY KEY, user TEXT NOT NULL COLLATE NOCASE," \
	" description TEXT, hash TEXT NOT NULL, created_at INTEGER NOT NULL);" \
	"CREATE INDEX IF NOT EXISTS app_passwords_user ON app_passwords(user);" \
	"CREATE TABLE IF NOT EXISTS user_mfa(user TEXT PRIMARY KEY COLLATE NOCASE, state INTEGER NOT NULL," \
	" secret BLOB, pending BLOB, last_step INTEGER NOT NULL DEFAULT 0);" \
	"CREATE TABLE IF NOT EXISTS audit_log(seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL," \
	" user TEXT NOT NULL, remote TEXT NOT NULL, event TEXT NOT NULL, success INTEGER NOT NULL," \
	" details TEXT NOT NULL, hash TEXT NOT NULL);"

static const char master_schema[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS stores(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" state TEXT NOT NULL CHECK(state IN ('current','normal','writeProtected','disabled')),"
	" db_path TEXT NOT NULL, content_path TEXT NOT NULL, index_path TEXT NOT NULL,"
	" key_master BLOB NOT NULL, key_recovery BLOB NOT NULL, recovery_salt BLOB NOT NULL,"
	" created_at INTEGER NOT NULL, key_master_next BLOB, owner_instance TEXT, store_uid TEXT,"
	" meta_synced INTEGER NOT NULL DEFAULT 0);"
	USERS_SCHEMA;

/* Columns added after format 1's first release; added on open when missing. */
static const struct {
	const char *name, *decl;
} added_columns[] = {
	{ "key_master_next", "key_master_next BLOB" },
	{ "owner_instance", "owner_instance TEXT" },
	{ "store_uid", "store_uid TEXT" },
	{ "meta_synced", "meta_synced INTEGER NOT NULL DEFAULT 0" },
};

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
static char *next_key_path(const char *dir) { return g_build_filename(dir, "master.key.new", NULL); }

/* master.key = 8-byte magic and format version, then the 32-byte key. */
#define MASTER_KEY_MAGIC "MVKEY001"
#define MASTER_KEY_FILE_BYTES (8 + MV_KEY_BYTES)

static void fault_point(const char *action, int step)
{
	const char *want = g_getenv("MAILVAULT_FAULT");
	if (!want)
		return;
	char here[64];
	g_snprintf(here, sizeof here, "%s:%d", action, step);
	if (strcmp(want, here) == 0)
		_exit(FAULT_EXIT_STATUS);
}


static GBytes *bytes_of(const GByteArray *a)
{
	return g_bytes_new(a->data, a->len);
}

/* ---- settings: text values; binary ones hex-encoded --------------------------- */

static int setting_get(sqlite3 *db, const char *key, char **value_r, GError **error)
{
	sqlite3_stmt *st;
	*value_r = NULL;
	if (mv_sql_prepare(db, "SELECT value FROM settings WHERE key=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*value_r = mv_sql_column_text(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "read setting");
	return -1;
}

static int setting_put(sqlite3 *db, const char *key, const char *value, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT OR REPLACE INTO settings(key, value) VALUES(?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return mv_sql_step_done(db, st, "write setting", error);
}

static int setting_delete(sqlite3 *db, const char *key, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "DELETE FROM settings WHERE key=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	return mv_sql_step_done(db, st, "delete setting", error);
}

static GBytes *bytes_from_hex(const char *hex)
{
	size_t len = strlen(hex);
	if (len % 2 != 0)
		return NULL;
	uint8_t *buf = g_malloc(len / 2 + 1);
	if (!mv_unhex(hex, buf, len / 2)) {
		g_free(buf);
		return NULL;
	}
	return g_bytes_new_take(buf, len / 2);
}

static char *hex_of(GBytes *b)
{
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(b, &len);
	return mv_hex(data, len);
}

/* A binary setting, or NULL (no error) when absent. */
static int setting_get_bytes(sqlite3 *db, const char *key, GBytes **value_r, GError **error)
{
	char *hex = NULL;
	*value_r = NULL;
	if (setting_get(db, key, &hex, error) < 0)
		return -1;
	if (!hex)
		return 0;
	*value_r = bytes_from_hex(hex);
	g_free(hex);
	if (*value_r)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: setting %s is not valid hex", key);
	return -1;
}

static int setting_put_bytes(sqlite3 *db, const char *key, GBytes *value, GError **error)
{
	char *hex = hex_of(value);
	int rc = setting_put(db, key, hex, error);
	g_free(hex);
	return rc;
}

int mv_archive_setting_get(mv_instance *inst, const char *key, char **value_r, GError **error)
{
	return setting_get(inst->db, key, value_r, error);
}

int mv_archive_setting_put(mv_instance *inst, const char *key, const char *value, GError **error)
{
	return setting_put(inst->db, key, value, error);
}

char *mv_archive_random_hex(size_t bytes)
{
	uint8_t buf[32];
	g_assert(bytes <= sizeof buf);
	randombytes_buf(buf, bytes);
	return mv_hex(buf, bytes);
}

/* ---- paths --------------------------------------------------------------------- */

char *mv_archive_absolute_path(mv_instance *inst, const char *stored)
{
	return g_path_is_absolute(stored) ? g_strdup(stored) : g_build_filename(inst->data_dir, stored, NULL);
}

/* Relative to the data directory when inside it (so moving the directory
 * moves the store with it), else absolute. */
char *mv_archive_stored_path(mv_instance *inst, const char *absolute)
{
	char *canon = g_canonicalize_filename(absolute, NULL);
	size_t n = strlen(inst->data_dir);
	if (strncmp(canon, inst->data_dir, n) == 0 && canon[n] == '/' && canon[n + 1]) {
		char *rel = g_strdup(canon + n + 1);
		g_free(canon);
		return rel;
	}
	return canon;
}

/* ---- the master key ------------------------------------------------------------ */

static int read_key_file(const char *path, uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	GByteArray *data = NULL;
	if (mv_read_file(path, 4096, &data, error) < 0)
		return -1;
	int rc = -1;
	if (data->len != MASTER_KEY_FILE_BYTES || memcmp(data->data, MASTER_KEY_MAGIC, 8) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: not a mailvault master key file of format %s",
		            path, MASTER_KEY_MAGIC);
	} else {
		memcpy(key_r, data->data + 8, MV_KEY_BYTES);
		rc = 0;
	}
	sodium_memzero(data->data, data->len);
	g_byte_array_unref(data);
	return rc;
}

static int write_key_file(const char *path, const uint8_t key[MV_KEY_BYTES], GError **error)
{
	uint8_t file[MASTER_KEY_FILE_BYTES];
	memcpy(file, MASTER_KEY_MAGIC, 8);
	memcpy(file + 8, key, MV_KEY_BYTES);
	int rc = mv_write_file_atomic(path, file, sizeof file, 0600, error);
	sodium_memzero(file, sizeof file);
	return rc;
}

static bool unwrap_with(const uint8_t kek[MV_KEY_BYTES], GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES])
{
	if (!wrapped)
		return false;
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(wrapped, &len);
	return mv_key_unwrap(kek, data, len, key_r, NULL) == 0;
}

static GBytes *wrap_with(const uint8_t kek[MV_KEY_BYTES], const uint8_t key[MV_KEY_BYTES])
{
	GByteArray *w = mv_key_wrap(kek, key);
	GBytes *b = bytes_of(w);
	g_byte_array_unref(w);
	return b;
}

/* A new random key, wrapped by master (the key check's probe, the audit
 * log's key). */
static GBytes *new_wrapped_key(const uint8_t master[MV_KEY_BYTES])
{
	uint8_t key[MV_KEY_BYTES];
	randombytes_buf(key, sizeof key);
	GBytes *w = wrap_with(master, key);
	sodium_memzero(key, sizeof key);
	return w;
}

static GBytes *new_key_check(const uint8_t master[MV_KEY_BYTES])
{
	return new_wrapped_key(master);
}

static bool key_opens_setting(mv_instance *inst, const uint8_t key[MV_KEY_BYTES], const char *setting)
{
	GBytes *check = NULL;
	if (setting_get_bytes(inst->db, setting, &check, NULL) < 0 || !check)
		return false;
	uint8_t probe[MV_KEY_BYTES];
	bool ok = unwrap_with(key, check, probe);
	sodium_memzero(probe, sizeof probe);
	g_bytes_unref(check);
	return ok;
}

/* Another process may have renewed the master key since this one read it:
 * adopt the key file's key if it is the instance's current one. */
static bool reload_master_key(mv_instance *inst)
{
	char *path = master_key_path(inst->data_dir);
	uint8_t key[MV_KEY_BYTES];
	bool adopted = false;
	if (read_key_file(path, key, NULL) == 0 && sodium_memcmp(key, inst->master_key, MV_KEY_BYTES) != 0 &&
	    key_opens_setting(inst, key, SETTING_KEY_CHECK)) {
		memcpy(inst->master_key, key, MV_KEY_BYTES);
		adopted = true;
	}
	sodium_memzero(key, sizeof key);
	g_free(path);
	return adopted;
}

bool mv_archive_unwrap(mv_instance *inst, GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES])
{
	if (unwrap_with(inst->master_key, wrapped, key_r))
		return true;
	return reload_master_key(inst) && unwrap_with(inst->master_key, wrapped, key_r);
}

/* The instance key lock: held by whatever writes wrapped keys, and by the
 * renewal from its first to its last step.  Returns the lock's fd. */
int mv_archive_key_lock(mv_instance *inst, GError **error)
{
	char *path = g_build_filename(inst->data_dir, "master.lock", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		g_free(path);
		return -1;
	}
	int rc;
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		mv_set_errno_error(error, errno, "lock", path);
		close(fd);
		fd = -1;
	}
	g_free(path);
	if (fd >= 0)
		reload_master_key(inst);
	return fd;
}

void mv_archive_key_unlock(int lock_fd)
{
	if (lock_fd >= 0)
		close(lock_fd); /* releases the flock */
}

sqlite3 *mv_archive_db(mv_instance *inst) { return inst->db; }
const char *mv_archive_instance_id(mv_instance *inst) { return inst->instance_id; }

/* The instance recovery KEK, or false when this instance keeps none (made
 * before the KEK was stored). */
static int recovery_kek(mv_instance *inst, uint8_t kek_r[MV_KEY_BYTES], GBytes **salt_r, bool *have_r,
                        GError **error)
{
	GBytes *wrapped = NULL;
	*have_r = false;
	*salt_r = NULL;
	if (setting_get_bytes(inst->db, SETTING_RECOVERY_KEK, &wrapped, error) < 0 ||
	    setting_get_bytes(inst->db, SETTING_RECOVERY_SALT, salt_r, error) < 0) {
		if (wrapped)
			g_bytes_unref(wrapped);
		return -1;
	}
	int rc = 0;
	if (wrapped && *salt_r) {
		if (mv_archive_unwrap(inst, wrapped, kek_r)) {
			*have_r = true;
		} else {
			g_set_error(error, MV_ERROR, MV_ERR_CORRUPT,
			            "master.sqlite: the recovery key-encryption key does not open with master.key");
			rc = -1;
		}
	}
	if (wrapped)
		g_bytes_unref(wrapped);
	if (!*have_r && *salt_r) {
		g_bytes_unref(*salt_r);
		*salt_r = NULL;
	}
	return rc;
}

int mv_archive_wrap_new_key(mv_instance *inst, const uint8_t data_key[MV_KEY_BYTES], GBytes **key_master_r,
                            GBytes **key_recovery_r, GBytes **recovery_salt_r, GError **error)
{
	uint8_t kek[MV_KEY_BYTES];
	bool have = false;
	GBytes *salt = NULL;
	if (recovery_kek(inst, kek, &salt, &have, error) < 0)
		return -1;
	*key_master_r = wrap_with(inst->master_key, data_key);
	if (have) {
		*key_recovery_r = wrap_with(kek, data_key);
		*recovery_salt_r = salt;
	} else {
		mv_log_warn("this instance was created before it kept a recovery key-encryption key: the new "
		            "store's key has no recovery-key wrapping, so only this instance's master.key opens it");
		*key_recovery_r = g_bytes_new(NULL, 0);
		*recovery_salt_r = g_bytes_new(NULL, 0);
	}
	sodium_memzero(kek, sizeof kek);
	return 0;
}

/* ---- the audit log's key ------------------------------------------------------------ */

int mv_archive_audit_key(mv_instance *inst, uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	GBytes *wrapped = NULL;
	if (setting_get_bytes(inst->db, SETTING_AUDIT_KEY, &wrapped, error) < 0)
		return -1;
	if (!wrapped) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the audit log key is missing");
		return -1;
	}
	bool ok = mv_archive_unwrap(inst, wrapped, key_r);
	g_bytes_unref(wrapped);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the audit log key does not open with master.key");
	return -1;
}

/* ---- store meta: the store's own copy of its keys -------------------------------- */

static int meta_put_hex(const mv_store_paths *paths, const char *key, GBytes *value, GError **error)
{
	if (!value || g_bytes_get_size(value) == 0)
		return 0;
	char *hex = hex_of(value);
	int rc = mv_store_meta_set(paths, key, hex, strlen(hex), error);
	g_free(hex);
	return rc;
}

int mv_archive_write_store_meta(const mv_store_paths *paths, const char *owner, GBytes *key_master,
                                GBytes *key_recovery, GBytes *recovery_salt, const char *uid, GError **error)
{
	/* The keys first, the owner last: a store whose write was cut short
	 * still names its previous owner, whose wrapping it may still hold. */
	if (meta_put_hex(paths, "key_master", key_master, error) < 0 ||
	    meta_put_hex(paths, "key_recovery", key_recovery, error) < 0 ||
	    meta_put_hex(paths, "recovery_salt", recovery_salt, error) < 0)
		return -1;
	if (uid && mv_store_meta_set(paths, "store_uid", uid, strlen(uid), error) < 0)
		return -1;
	return owner ? mv_store_meta_set(paths, "instance_id", owner, strlen(owner), error) : 0;
}

/* One meta value as text, NULL when the store does not have it. */
static int meta_text(const mv_store_paths *paths, const char *key, char **value_r, GError **error)
{
	GBytes *value = NULL;
	GError *err = NULL;
	*value_r = NULL;
	if (mv_store_meta_get(paths, key, &value, &err) < 0) {
		if (g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND)) {
			g_error_free(err);
			return 0;
		}
		g_propagate_error(error, err);
		return -1;
	}
	if (value) {
		gsize len = 0;
		const char *data = g_bytes_get_data(value, &len);
		*value_r = g_strndup(data, len);
		g_bytes_unref(value);
	}
	return 0;
}

static int meta_bytes(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error)
{
	char *hex = NULL;
	*value_r = NULL;
	if (meta_text(paths, key, &hex, error) < 0)
		return -1;
	if (!hex)
		return 0;
	*value_r = bytes_from_hex(hex);
	g_free(hex);
	if (*value_r)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s/store.sqlite: meta value %s is not valid hex",
	            paths->db_dir, key);
	return -1;
}

int mv_archive_read_store_meta(const mv_store_paths *paths, char **owner_r, GBytes **key_master_r,
                               GBytes **key_recovery_r, GBytes **recovery_salt_r, char **uid_r, GError **error)
{
	*owner_r = *uid_r = NULL;
	*key_master_r = *key_recovery_r = *recovery_salt_r = NULL;
	if (meta_text(paths, "instance_id", owner_r, error) == 0 && meta_text(paths, "store_uid", uid_r, error) == 0 &&
	    meta_bytes(paths, "key_master", key_master_r, error) == 0 &&
	    meta_bytes(paths, "key_recovery", key_recovery_r, error) == 0 &&
	    meta_bytes(paths, "recovery_salt", recovery_salt_r, error) == 0)
		return 0;
	g_clear_pointer(owner_r, g_free);
	g_clear_pointer(uid_r, g_free);
	g_clear_pointer(key_master_r, g_bytes_unref);
	g_clear_pointer(key_recovery_r, g_bytes_unref);
	g_clear_pointer(recovery_salt_r, g_bytes_unref);
	return -1;
}

/* ---- rows of the stores table ------------------------------------------------------ */

typedef struct store_row {
	int id;
	char *name, *state;
	char *db_path, *content_path, *index_path;     /* as stored */
	GBytes *key_master, *key_master_next, *key_recovery, *recovery_salt;
	char *owner, *uid;
	bool meta_synced;
} store_row;

#define ROW_COLUMNS "id, name, state, db_path, content_path, index_path, key_master, key_master_next," \
                    " key_recovery, recovery_salt, owner_instance, store_uid, meta_synced"

static void store_row_free(store_row *r)
{
	if (!r)
		return;
	g_free(r->name);
	g_free(r->state);
	g_free(r->db_path);
	g_free(r->content_path);
	g_free(r->index_path);
	g_clear_pointer(&r->key_master, g_bytes_unref);
	g_clear_pointer(&r->key_master_next, g_bytes_unref);
	g_clear_pointer(&r->key_recovery, g_bytes_unref);
	g_clear_pointer(&r->recovery_salt, g_bytes_unref);
	g_free(r->owner);
	g_free(r->uid);
	g_free(r);
}

static store_row *row_from(sqlite3_stmt *st)
{
	store_row *r = g_new0(store_row, 1);
	r->id = sqlite3_column_int(st, 0);
	r->name = mv_sql_column_text(st, 1);
	r->state = mv_sql_column_text(st, 2);
	r->db_path = mv_sql_column_text(st, 3);
	r->content_path = mv_sql_column_text(st, 4);
	r->index_path = mv_sql_column_text(st, 5);
	r->key_master = mv_sql_column_bytes(st, 6);
	r->key_master_next = mv_sql_column_bytes(st, 7);
	r->key_recovery = mv_sql_column_bytes(st, 8);
	r->recovery_salt = mv_sql_column_bytes(st, 9);
	r->owner = mv_sql_column_text(st, 10);
	r->uid = mv_sql_column_text(st, 11);
	r->meta_synced = sqlite3_column_int(st, 12) != 0;
	return r;
}

/* All rows (store_id < 0) or one; an empty array when it does not exist. */
static GPtrArray *load_rows(mv_instance *inst, int store_id, GError **error)
{
	sqlite3_stmt *st;
	const char *sql = store_id < 0 ? "SELECT " ROW_COLUMNS " FROM stores ORDER BY id"
	                               : "SELECT " ROW_COLUMNS " FROM stores WHERE id=?";
	if (mv_sql_prepare(inst->db, sql, &st, error) < 0)
		return NULL;
	if (store_id >= 0)
		sqlite3_bind_int(st, 1, store_id);
	GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)store_row_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(rows, row_from(st));
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, inst->db, "list stores");
		g_ptr_array_free(rows, TRUE);
		rows = NULL;
	}
	sqlite3_finalize(st);
	return rows;
}

static store_row *load_row(mv_instance *inst, int store_id, GError **error)
{
	GPtrArray *rows = load_rows(inst, store_id, error);
	if (!rows)
		return NULL;
	store_row *r = NULL;
	if (rows->len == 1)
		r = g_ptr_array_steal_index(rows, 0);
	else
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d does not exist", store_id);
	g_ptr_array_free(rows, TRUE);
	return r;
}

static void row_paths(mv_instance *inst, const store_row *r, mv_store_paths *paths_r)
{
	paths_r->db_dir = mv_archive_absolute_path(inst, r->db_path);
	paths_r->content_dir = mv_archive_absolute_path(inst, r->content_path);
	paths_r->index_dir = mv_archive_absolute_path(inst, r->index_path);
}

static void paths_clear(mv_store_paths *p)
{
	g_clear_pointer(&p->db_dir, g_free);
	g_clear_pointer(&p->content_dir, g_free);
	g_clear_pointer(&p->index_dir, g_free);
}

static bool row_key(mv_instance *inst, const store_row *r, uint8_t key_r[MV_KEY_BYTES])
{
	return mv_archive_unwrap(inst, r->key_master, key_r);
}

/* What a file looked like: any write to it changes one of these. */
typedef struct {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
} file_look;

/* The WAL's look cannot be part of this: it appears and vanishes as
 * readers open and close the db. A committed change of the version that
 * sits in the WAL comes only from an upgrade, and this process makes all
 * of them while it holds the data directory (mv_store_format_epoch). */
typedef struct {
	file_look db;
	unsigned epoch;
	int version;
} format_seen;

static void look_at(const char *path, file_look *look_r)
{
	struct stat st;
	*look_r = (file_look){ 0 };
	if (stat(path, &st) < 0)
		return;
	*look_r = (file_look){ .exists = true, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
	                       .mtime = st.st_mtim, .ctime = st.st_ctim };
}

static bool same_look(const file_look *a, const file_look *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The store's format version. Every API request lists the stores, and
 * opening each db to read one number cost more than the request's own
 * work; the number is read again only when the db file changed or this
 * process upgraded a store.  (An upgrade by another process, committed in
 * the WAL, shows once a checkpoint writes the db: a server refuses local
 * writers, and a stale format 1 or 2 flags nothing either way.) */
static int format_version(mv_instance *inst, const mv_store_paths *p, const char *dbf, int *version_r,
                          GError **error)
{
	format_seen now = { .epoch = mv_store_format_epoch() };
	look_at(dbf, &now.db);    /* before the read: a change during it shows next time */
	if (!inst->format_seen)
		inst->format_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	format_seen *seen = g_hash_table_lookup(inst->format_seen, dbf);
	if (seen && seen->epoch == now.epoch && same_look(&seen->db, &now.db)) {
		*version_r = seen->version;
		return 0;
	}
	g_hash_table_remove(inst->format_seen, dbf);
	if (mv_store_format_version(p, &now.version, error) < 0)
		return -1;
	g_hash_table_insert(inst->format_seen, g_strdup(dbf), g_memdup2(&now, sizeof now));
	*version_r = now.version;
	return 0;
}

/* Why the store's files cannot be used now, or NULL.  Cheap: stat calls,
 * and a read of the db's format version when the db changed. */
static char *format_problem(mv_instance *inst, const mv_store_paths *p, const char *dbf)
{
	int version = 0;
	GError *err = NULL;
	char *why = NULL;
	if (format_version(inst, p, dbf, &version, &err) < 0) {
		why = g_strdup_printf("cannot read %s: %s", dbf, err->message);
		g_error_free(err);
	} else if (version > MV_STORE_FORMAT_VERSION) {
		why = g_strdup_printf("%s has format version %d, newer than this build reads (1 to %d)", dbf, version,
		                      MV_STORE_FORMAT_VERSION);
	}
	return why;
}

static char *files_problem(mv_instance *inst, const mv_store_paths *p)
{
	char *dbf = g_build_filename(p->db_dir, "store.sqlite", NULL);
	char *why = NULL;
	if (!g_file_test(p->db_dir, G_FILE_TEST_IS_DIR))
		why = g_strdup_printf("database directory %s is missing", p->db_dir);
	else if (!g_file_test(dbf, G_FILE_TEST_IS_REGULAR))
		why = g_strdup_printf("store database %s is missing", dbf);
	else if (!g_file_test(p->content_dir, G_FILE_TEST_IS_DIR))
		why = g_strdup_printf("content directory %s is missing", p->content_dir);
	else
		why = format_problem(inst, p, dbf);
	/* A missing index is not an error state: the store opens, searches
	 * find nothing there until RebuildStoreIndex (or the next writer)
	 * rebuilds it from content. */
	g_free(dbf);
	return why;
}

static char *locked_reason(mv_instance *inst, const store_row *r)
{
	if (r->owner && *r->owner && strcmp(r->owner, inst->instance_id) != 0)
		return g_strdup_printf("belongs to another instance (%s): run UnlockStore with that instance's "
		                       "recovery key", r->owner);
	return g_strdup("its key does not open with this instance's master key: run UnlockStore with the "
	                "recovery key of the instance that created it");
}

static mv_store_info *info_from_row(mv_instance *inst, const store_row *r)
{
	mv_store_info *info = g_new0(mv_store_info, 1);
	info->id = r->id;
	info->name = g_strdup(r->name);
	info->state = g_strdup(r->state);
	info->type = g_strdup("FileSystemInternal");
	row_paths(inst, r, &info->paths);
	info->error = files_problem(inst, &info->paths);
	uint8_t key[MV_KEY_BYTES];
	info->locked = !row_key(inst, r, key);
	sodium_memzero(key, sizeof key);
	if (info->locked && !info->error)
		info->error = locked_reason(inst, r);
	return info;
}

void mv_store_info_free(mv_store_info *info)
{
	if (!info)
		return;
	g_free(info->name);
	g_free(info->state);
	g_free(info->type);
	paths_clear(&info->paths);
	g_free(info->error);
	g_free(info);
}

GPtrArray *mv_instance_stores(mv_instance *inst, GError **error)
{
	GPtrArray *rows = load_rows(inst, -1, error);
	if (!rows)
		return NULL;
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_store_info_free);
	for (guint i = 0; i < rows->len; i++)
		g_ptr_array_add(list, info_from_row(inst, rows->pdata[i]));
	g_ptr_array_free(rows, TRUE);
	return list;
}

mv_store_info *mv_instance_store_info(mv_instance *inst, int store_id, GError **error)
{
	store_row *r = load_row(inst, store_id, error);
	if (!r)
		return NULL;
	mv_store_info *info = info_from_row(inst, r);
	store_row_free(r);
	return info;
}

int mv_instance_require_modifiable(mv_instance *inst, int store_id, GError **error)
{
	mv_store_info *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	int rc = -1;
	if (info->locked)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: %s", info->id, info->name,
		            info->error);
	else if (info->error)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is in error: %s", info->id, info->name,
		            info->error);
	else if (strcmp(info->state, "writeProtected") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_STATE,
		            "store %d (%s) is write-protected: its content cannot be modified", info->id, info->name);
	else if (strcmp(info->state, "disabled") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is disabled", info->id, info->name);
	else
		rc = 0;
	mv_store_info_free(info);
	return rc;
}

/* ---- readers' store handles, kept for reuse ----------------------------------------- */

/* A kept handle and the files it was opened on: reused only while the
 * paths are the same and the same files (device, inode) are at them. */
typedef struct {
	mv_store *store;
	int store_id;
	mv_store_paths paths;
	file_look db, index;
	unsigned epoch;
} kept_store;

static void kept_store_free(gpointer p)
{
	kept_store *k = p;
	if (k->store) {
		mv_store_set_keeper(k->store, NULL, NULL);
		mv_store_close(&k->store);
	}
	paths_clear(&k->paths);
	g_free(k);
}

/* A lent handle outliving its instance is closed by its user for real. */
static void lent_store_forget(gpointer p)
{
	kept_store *k = p;
	mv_store_set_keeper(k->store, NULL, NULL);
	k->store = NULL;
	kept_store_free(k);
}

static void look_at_store(const mv_store_paths *p, file_look *db_r, file_look *index_r)
{
	char *dbf = g_build_filename(p->db_dir, "store.sqlite", NULL);
	char *ixf = g_build_filename(p->index_dir, "index.sqlite", NULL);
	look_at(dbf, db_r);
	look_at(ixf, index_r);
	g_free(dbf);
	g_free(ixf);
}

static bool same_file(const file_look *a, const file_look *b)
{
	return a->exists && b->exists && a->dev == b->dev && a->ino == b->ino;
}

static bool same_paths(const mv_store_paths *a, const mv_store_paths *b)
{
	return strcmp(a->db_dir, b->db_dir) == 0 && strcmp(a->content_dir, b->content_dir) == 0 &&
	       strcmp(a->index_dir, b->index_dir) == 0;
}

static bool keep_store(mv_store *s, bool reusable, void *opaque)
{
	mv_instance *inst = opaque;
	kept_store *k = g_hash_table_lookup(inst->lent, s);
	if (!k)
		return false;
	g_hash_table_steal(inst->lent, s);
	if (!reusable || g_hash_table_contains(inst->kept, GINT_TO_POINTER(k->store_id))) {
		k->store = NULL;   /* its user closes it */
		kept_store_free(k);
		return false;
	}
	g_hash_table_insert(inst->kept, GINT_TO_POINTER(k->store_id), k);
	return true;
}

static mv_store *lend(mv_instance *inst, kept_store *k)
{
	mv_store_set_keeper(k->store, keep_store, inst);
	g_hash_table_insert(inst->lent, k->store, k);
	return k->store;
}

/* The kept handle of the store, if it still opens the files at paths. */
static mv_store *reuse_kept(mv_instance *inst, int store_id, const mv_store_paths *paths)
{
	kept_store *k = inst->kept ? g_hash_table_lookup(inst->kept, GINT_TO_POINTER(store_id)) : NULL;
	if (!k)
		return NULL;
	g_hash_table_steal(inst->kept, GINT_TO_POINTER(store_id));
	file_look db, index;
	look_at_store(paths, &db, &index);
	if (k->epoch != mv_store_format_epoch() || !same_paths(&k->paths, paths) || !same_file(&k->db, &db) ||
	    !same_file(&k->index, &index)) {
		kept_store_free(k);
		return NULL;
	}
	return lend(inst, k);
}

static mv_store *open_reader(mv_instance *inst, int store_id, const mv_store_paths *paths, const uint8_t *key,
                             GError **error)
{
	mv_store *s = reuse_kept(inst, store_id, paths);
	if (s)
		return s;
	kept_store *k = g_new0(kept_store, 1);
	k->store_id = store_id;
	k->epoch = mv_store_format_epoch();
	/* Looked at before the open: files replaced in between differ next time. */
	look_at_store(paths, &k->db, &k->index);
	k->store = mv_store_open(store_id, paths, key, MV_STORE_READ, error);
	if (!k->store) {
		g_free(k);
		return NULL;
	}
	k->paths.db_dir = g_strdup(paths->db_dir);
	k->paths.content_dir = g_strdup(paths->content_dir);
	k->paths.index_dir = g_strdup(paths->index_dir);
	if (!inst->kept) {
		inst->kept = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, kept_store_free);
		inst->lent = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, lent_store_forget);
	}
	return lend(inst, k);
}

mv_store *mv_instance_open_store(mv_instance *inst, int store_id, mv_store_mode mode, GError **error)
{
	store_row *r = load_row(inst, store_id, error);
	if (!r)
		return NULL;
	mv_store *s = NULL;
	uint8_t key[MV_KEY_BYTES];
	if (!row_key(inst, r, key)) {
		char *why = locked_reason(inst, r);
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: %s", r->id, r->name, why);
		g_free(why);
	} else {
		mv_store_paths paths = { 0 };
		row_paths(inst, r, &paths);
		s = mode == MV_STORE_READ ? open_reader(inst, store_id, &paths, key, error) :
		                            mv_store_open(store_id, &paths, key, mode, error);
		paths_clear(&paths);
	}
	sodium_memzero(key, sizeof key);
	store_row_free(r);
	return s;
}

int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "SELECT id FROM stores WHERE state='current'", &st, error) < 0)
		return -1;
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

/* Writes the row's keys, owner and uid into the store's own db.  Stores
 * whose key this instance cannot open are left alone (their meta is their
 * owner's); so are stores whose files are absent. */
static int sync_store_meta(mv_instance *inst, const store_row *r, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	bool ours = row_key(inst, r, key);
	sodium_memzero(key, sizeof key);
	if (!ours)
		return 0;
	mv_store_paths paths = { 0 };
	row_paths(inst, r, &paths);
	char *dbf = g_build_filename(paths.db_dir, "store.sqlite", NULL);
	int rc = -1;
	if (!g_file_test(dbf, G_FILE_TEST_IS_REGULAR)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d (%s): %s is missing", r->id, r->name, dbf);
		goto out;
	}
	if (mv_archive_write_store_meta(&paths, r->owner ? r->owner : inst->instance_id, r->key_master,
	                                r->key_recovery, r->recovery_salt, r->uid, error) < 0)
		goto out;
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "UPDATE stores SET meta_synced=1 WHERE id=?", &st, error) < 0)
		goto out;
	sqlite3_bind_int(st, 1, r->id);
	rc = mv_sql_step_done(inst->db, st, "mark store meta written", error);
out:
	g_free(dbf);
	paths_clear(&paths);
	return rc;
}

int mv_archive_sync_store_meta(mv_instance *inst, int store_id, GError **error)
{
	store_row *r = load_row(inst, store_id, error);
	if (!r)
		return -1;
	int rc = sync_store_meta(inst, r, error);
	store_row_free(r);
	return rc;
}

static void sync_pending_meta(mv_instance *inst)
{
	GError *err = NULL;
	GPtrArray *rows = load_rows(inst, -1, &err);
	for (guint i = 0; rows && i < rows->len; i++) {
		const store_row *r = rows->pdata[i];
		if (r->meta_synced)
			continue;
		if (sync_store_meta(inst, r, &err) < 0) {
			/* Retried at the next open; the store works meanwhile. */
			mv_log_debug("store %d (%s): key records not yet written into the store: %s", r->id, r->name,
			             err->message);
			g_clear_error(&err);
		}
	}
	if (!rows) {
		mv_log_warn("%s", err->message);
		g_error_free(err);
	} else {
		g_ptr_array_free(rows, TRUE);
	}
}

/* ---- opening: migrations and an interrupted key renewal ------------------------- */

static int has_column(sqlite3 *db, const char *column, bool *has_r, GError **error)
{
	sqlite3_stmt *st;
	*has_r = false;
	if (mv_sql_prepare(db, "SELECT 1 FROM pragma_table_info('stores') WHERE name=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, column, -1, SQLITE_STATIC);
	*has_r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

static int count_rows(sqlite3 *db, const char *sql, int64_t *n_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, sql, &st, error) < 0)
		return -1;
	int rc = sqlite3_step(st);
	*n_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	mv_sql_set_error(error, db, "count");
	return -1;
}

static int needs_migration(mv_instance *inst, bool *needs_r, GError **error)
{
	*needs_r = true;
	for (size_t i = 0; i < G_N_ELEMENTS(added_columns); i++) {
		bool has;
		if (has_column(inst->db, added_columns[i].name, &has, error) < 0)
			return -1;
		if (!has)
			return 0;
	}
	char *id = NULL, *check = NULL;
	if (setting_get(inst->db, SETTING_INSTANCE_ID, &id, error) < 0 ||
	    setting_get(inst->db, SETTING_KEY_CHECK, &check, error) < 0) {
		g_free(id);
		return -1;
	}
	bool settings_ok = id && check;
	g_free(id);
	g_free(check);
	if (!settings_ok)
		return 0;
	int64_t n = 0;
	if (count_rows(inst->db, "SELECT count(*) FROM stores WHERE store_uid IS NULL OR owner_instance IS NULL",
	               &n, error) < 0)
		return -1;
	*needs_r = n > 0;
	return 0;
}

/* An instance made before the key check existed: the key file is right if
 * it opens the stores' keys (or there are none). */
static int create_key_check(mv_instance *inst, GError **error)
{
	GPtrArray *rows = load_rows(inst, -1, error);
	if (!rows)
		return -1;
	bool opens = rows->len == 0;
	for (guint i = 0; i < rows->len && !opens; i++) {
		uint8_t key[MV_KEY_BYTES];
		opens = unwrap_with(inst->master_key, ((store_row *)rows->pdata[i])->key_master, key);
		sodium_memzero(key, sizeof key);
	}
	g_ptr_array_free(rows, TRUE);
	if (!opens) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT,
		            "%s/master.key does not open any store of this instance (wrong or replaced key file?)",
		            inst->data_dir);
		return -1;
	}
	GBytes *check = new_key_check(inst->master_key);
	int rc = setting_put_bytes(inst->db, SETTING_KEY_CHECK, check, error);
	g_bytes_unref(check);
	return rc;
}

static int backfill_rows(mv_instance *inst, GError **error)
{
	GPtrArray *rows = load_rows(inst, -1, error);
	if (!rows)
		return -1;
	int rc = 0;
	for (guint i = 0; i < rows->len && rc == 0; i++) {
		const store_row *r = rows->pdata[i];
		if (r->uid && r->owner)
			continue;
		sqlite3_stmt *st;
		if (mv_sql_prepare(inst->db, "UPDATE stores SET store_uid=coalesce(store_uid, ?),"
		            " owner_instance=coalesce(owner_instance, ?), meta_synced=0 WHERE id=?", &st, error) < 0) {
			rc = -1;
			break;
		}
		sqlite3_bind_text(st, 1, mv_archive_random_hex(16), -1, g_free);
		sqlite3_bind_text(st, 2, inst->instance_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, r->id);
		rc = mv_sql_step_done(inst->db, st, "backfill store row", error);
	}
	g_ptr_array_free(rows, TRUE);
	return rc;
}

static int migrate_in_transaction(mv_instance *inst, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(added_columns); i++) {
		bool has;
		if (has_column(inst->db, added_columns[i].name, &has, error) < 0)
			return -1;
		if (has)
			continue;
		char *sql = g_strdup_printf("ALTER TABLE stores ADD COLUMN %s", added_columns[i].decl);
		int rc = mv_sql_exec(inst->db, sql, error);
		g_free(sql);
		if (rc < 0)
			return -1;
	}
	char *id = NULL, *check = NULL;
	if (setting_get(inst->db, SETTING_INSTANCE_ID, &id, error) < 0 ||
	    setting_get(inst->db, SETTING_KEY_CHECK, &check, error) < 0) {
		g_free(id);
		return -1;
	}
	bool have_check = check != NULL;
	g_free(check);
	if (!id) {
		id = mv_archive_random_hex(INSTANCE_ID_BYTES);
		if (setting_put(inst->db, SETTING_INSTANCE_ID, id, error) < 0) {
			g_free(id);
			return -1;
		}
	}
	g_free(inst->instance_id);
	inst->instance_id = id;
	if (!have_check && create_key_check(inst, error) < 0)
		return -1;
	return backfill_rows(inst, error);
}

static int migrate(mv_instance *inst, GError **error)
{
	bool needed;
	if (needs_migration(inst, &needed, error) < 0)
		return -1;
	if (needed) {
		if (mv_sql_exec(inst->db, "BEGIN IMMEDIATE", error) < 0)
			return -1;
		if (migrate_in_transaction(inst, error) < 0 || mv_sql_exec(inst->db, "COMMIT", error) < 0) {
			mv_sql_exec(inst->db, "ROLLBACK", NULL);
			return -1;
		}
		return 0;
	}
	g_free(inst->instance_id);
	return setting_get(inst->db, SETTING_INSTANCE_ID, &inst->instance_id, error);
}

typedef enum {
	KEY_CLEAN,        /* master.key is the instance's key, no renewal under way */
	KEY_LEFTOVERS,    /* master.key is current; a renewal stopped before its commit point */
	KEY_NEXT,         /* master.key is the renewed key; the promotion has to be finished */
	KEY_WRONG,
} key_status;

static int renewal_leftovers(mv_instance *inst, bool *any_r, GError **error)
{
	int64_t n = 0;
	char *next_check = NULL;
	if (count_rows(inst->db, "SELECT count(*) FROM stores WHERE key_master_next IS NOT NULL", &n, error) < 0 ||
	    setting_get(inst->db, SETTING_KEY_CHECK_NEXT, &next_check, error) < 0)
		return -1;
	char *next_file = next_key_path(inst->data_dir);
	*any_r = n > 0 || next_check || g_file_test(next_file, G_FILE_TEST_EXISTS);
	g_free(next_file);
	g_free(next_check);
	return 0;
}

static int key_status_of(mv_instance *inst, key_status *status_r, GError **error)
{
	if (key_opens_setting(inst, inst->master_key, SETTING_KEY_CHECK)) {
		bool leftovers;
		if (renewal_leftovers(inst, &leftovers, error) < 0)
			return -1;
		*status_r = leftovers ? KEY_LEFTOVERS : KEY_CLEAN;
	} else if (key_opens_setting(inst, inst->master_key, SETTING_KEY_CHECK_NEXT)) {
		*status_r = KEY_NEXT;
	} else {
		*status_r = KEY_WRONG;
	}
	return 0;
}

static int in_transaction(mv_instance *inst, int (*fn)(mv_instance *, GError **), GError **error)
{
	if (mv_sql_exec(inst->db, "BEGIN IMMEDIATE", error) < 0)
		return -1;
	if (fn(inst, error) < 0 || mv_sql_exec(inst->db, "COMMIT", error) < 0) {
		mv_sql_exec(inst->db, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}

static int drop_next_values(mv_instance *inst, GError **error)
{
	if (mv_sql_exec(inst->db, "UPDATE stores SET key_master_next=NULL WHERE key_master_next IS NOT NULL",
	                error) < 0 ||
	    setting_delete(inst->db, SETTING_KEY_CHECK_NEXT, error) < 0 ||
	    setting_delete(inst->db, SETTING_RECOVERY_KEK_NEXT, error) < 0 ||
	    setting_delete(inst->db, SETTING_AUDIT_KEY_NEXT, error) < 0)
		return -1;
	return 0;
}

static int remove_if_present(const char *path, GError **error)
{
	if (unlink(path) == 0 || errno == ENOENT)
		return 0;
	mv_set_errno_error(error, errno, "remove", path);
	return -1;
}

/* A renewal that stopped before renaming master.key.new: the old key is
 * still the key; forget the new one. */
static int abandon_renewal(mv_instance *inst, GError **error)
{
	if (in_transaction(inst, drop_next_values, error) < 0)
		return -1;
	char *next_file = next_key_path(inst->data_dir);
	char *next_tmp = g_strdup_printf("%s.tmp", next_file);
	int rc = remove_if_present(next_file, error) == 0 && remove_if_present(next_tmp, error) == 0 ? 0 : -1;
	g_free(next_file);
	g_free(next_tmp);
	if (rc == 0)
		mv_log_warn("%s: an interrupted master key renewal was rolled back; the previous key stays",
		            inst->data_dir);
	return rc;
}

static int promote_setting(mv_instance *inst, const char *next, const char *current, GError **error)
{
	char *value = NULL;
	if (setting_get(inst->db, next, &value, error) < 0)
		return -1;
	int rc = 0;
	if (value)
		rc = setting_put(inst->db, current, value, error);
	g_free(value);
	return rc == 0 ? setting_delete(inst->db, next, error) : -1;
}

static int promote_next_values(mv_instance *inst, GError **error)
{
	if (mv_sql_exec(inst->db, "UPDATE stores SET key_master=key_master_next, key_master_next=NULL,"
	                " meta_synced=0 WHERE key_master_next IS NOT NULL", error) < 0 ||
	    promote_setting(inst, SETTING_KEY_CHECK_NEXT, SETTING_KEY_CHECK, error) < 0 ||
	    promote_setting(inst, SETTING_RECOVERY_KEK_NEXT, SETTING_RECOVERY_KEK, error) < 0 ||
	    promote_setting(inst, SETTING_AUDIT_KEY_NEXT, SETTING_AUDIT_KEY, error) < 0)
		return -1;
	return 0;
}

static int settle_master_key_locked(mv_instance *inst, GError **error)
{
	key_status status;
	if (key_status_of(inst, &status, error) < 0)
		return -1;
	switch (status) {
	case KEY_CLEAN:
		return 0;
	case KEY_LEFTOVERS:
		return abandon_renewal(inst, error);
	case KEY_NEXT:
		if (in_transaction(inst, promote_next_values, error) < 0)
			return -1;
		mv_log_warn("%s: an interrupted master key renewal was completed", inst->data_dir);
		return 0;
	case KEY_WRONG:
		break;
	}
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT,
	            "%s/master.key does not belong to this instance's master.sqlite (wrong or replaced key file?)",
	            inst->data_dir);
	return -1;
}

/* Makes master.key and master.sqlite agree, finishing or rolling back a
 * renewal a crash interrupted.  The lock is taken only when something looks
 * unfinished, and everything is looked at again under it: the renewal may
 * simply be running in another process. */
static int settle_master_key(mv_instance *inst, GError **error)
{
	key_status status;
	if (key_status_of(inst, &status, error) < 0)
		return -1;
	if (status == KEY_CLEAN)
		return 0;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	char *path = master_key_path(inst->data_dir);
	int rc = read_key_file(path, inst->master_key, error);
	g_free(path);
	if (rc == 0)
		rc = settle_master_key_locked(inst, error);
	mv_archive_key_unlock(lock);
	return rc;
}

/* The users tables and the audit key, added to an instance made before
 * them.  Looked at without a lock first: present, they are never removed. */
static int users_schema_present(mv_instance *inst, bool *present_r, GError **error)
{
	int64_t tables = 0;
	char *key = NULL;
	if (count_rows(inst->db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN"
	               " ('users','folder_privileges','app_passwords','audit_log','user_mfa')", &tables, error) < 0 ||
	    setting_get(inst->db, SETTING_AUDIT_KEY, &key, error) < 0)
		return -1;
	*present_r = tables == 5 && key != NULL;
	g_free(key);
	return 0;
}

static int add_users_schema(mv_instance *inst, GError **error)
{
	char *key = NULL;
	if (mv_sql_exec(inst->db, USERS_SCHEMA, error) < 0 || setting_get(inst->db, SETTING_AUDIT_KEY, &key, error) < 0)
		return -1;
	bool have_key = key != NULL;
	g_free(key);
	if (have_key)
		return 0;
	GBytes *wrapped = new_wrapped_key(inst->master_key);
	int rc = setting_put_bytes(inst->db, SETTING_AUDIT_KEY, wrapped, error);
	g_bytes_unref(wrapped);
	return rc;
}

static int ensure_users_schema(mv_instance *inst, GError **error)
{
	bool present;
	if (users_schema_present(inst, &present, error) < 0)
		return -1;
	if (present)
		return 0;
	/* The audit key is a wrapped key: written under the key lock, so that a
	 * renewal in another process cannot miss it. */
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = in_transaction(inst, add_users_schema, error);
	mv_archive_key_unlock(lock);
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
	if (!g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND,
		            "%s is not a mailvault data directory (run 'mailvault init' first)", data_dir);
		goto out;
	}
	inst = g_new0(mv_instance, 1);
	inst->data_dir = g_canonicalize_filename(data_dir, NULL);
	if (read_key_file(keyp, inst->master_key, error) < 0 || mv_sql_open(dbp, false, false, &inst->db, error) < 0 ||
	    mv_sql_exec(inst->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", error) < 0 ||
	    migrate(inst, error) < 0 || settle_master_key(inst, error) < 0 || ensure_users_schema(inst, error) < 0) {
		mv_instance_close(&inst);
		goto out;
	}
	sync_pending_meta(inst);
out:
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
	g_free(inst->instance_id);
	g_free(inst->data_dir);
	if (inst->format_seen)
		g_hash_table_destroy(inst->format_seen);
	if (inst->lent)
		g_hash_table_destroy(inst->lent);
	if (inst->kept)
		g_hash_table_destroy(inst->kept);
	g_free(inst);
}

const char *mv_instance_data_dir(const mv_instance *inst) { return inst->data_dir; }

/* ---- init ------------------------------------------------------------------------ */

static int write_initial_settings(sqlite3 *db, const uint8_t master[MV_KEY_BYTES], const char *recovery,
                                  GError **error)
{
	uint8_t salt[RECOVERY_SALT_BYTES], kek[MV_KEY_BYTES];
	randombytes_buf(salt, sizeof salt);
	if (mv_key_from_recovery(recovery, salt, kek, error) < 0)
		return -1;
	GBytes *kek_wrapped = wrap_with(master, kek);
	sodium_memzero(kek, sizeof kek);
	GBytes *salt_bytes = g_bytes_new(salt, sizeof salt);
	GBytes *check = new_key_check(master);
	GBytes *audit_key = new_wrapped_key(master);
	char *version = g_strdup_printf("%d", MV_INSTANCE_FORMAT_VERSION);
	char *id = mv_archive_random_hex(INSTANCE_ID_BYTES);
	int rc = -1;
	if (setting_put(db, SETTING_FORMAT, version, error) == 0 && setting_put(db, SETTING_INSTANCE_ID, id, error) == 0 &&
	    setting_put_bytes(db, SETTING_RECOVERY_SALT, salt_bytes, error) == 0 &&
	    setting_put_bytes(db, SETTING_RECOVERY_KEK, kek_wrapped, error) == 0 &&
	    setting_put_bytes(db, SETTING_KEY_CHECK, check, error) == 0 &&
	    setting_put_bytes(db, SETTING_AUDIT_KEY, audit_key, error) == 0)
		rc = 0;
	g_bytes_unref(audit_key);
	g_free(version);
	g_free(id);
	g_bytes_unref(check);
	g_bytes_unref(salt_bytes);
	g_bytes_unref(kek_wrapped);
	return rc;
}

static int create_master_db(const char *dbp, const uint8_t master[MV_KEY_BYTES], const char *recovery,
                            GError **error)
{
	sqlite3 *db = NULL;
	int rc = -1;
	if (mv_sql_open(dbp, true, false, &db, error) == 0 && mv_sql_exec(db, master_schema, error) == 0 &&
	    mv_sql_exec(db, "BEGIN", error) == 0) {
		if (write_initial_settings(db, master, recovery, error) == 0 && mv_sql_exec(db, "COMMIT", error) == 0)
			rc = 0;
		else
			mv_sql_exec(db, "ROLLBACK", NULL);
	}
	sqlite3_close(db);
	return rc;
}

/* Removes what a failed init wrote, so that init can be run again. */
static void undo_init(const char *data_dir)
{
	static const char *const files[] = { "master.sqlite", "master.sqlite-wal", "master.sqlite-shm",
	                                     "master.key", "master.lock" };
	for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
		char *p = g_build_filename(data_dir, files[i], NULL);
		if (unlink(p) < 0 && errno != ENOENT)
			mv_log_warn("cannot remove %s after a failed init: %s", p, g_strerror(errno));
		g_free(p);
	}
}

int mv_instance_init(const char *data_dir, char **recovery_key_r, GError **error)
{
	if (sodium_init() < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "libsodium failed to initialise");
		return -1;
	}
	char *dbp = master_db_path(data_dir), *keyp = master_key_path(data_dir);
	char *recovery = NULL;
	uint8_t master[MV_KEY_BYTES];
	int rc = -1;
	if (g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s already holds a mailvault instance", data_dir);
		goto out;
	}
	if (mv_mkdir_p(data_dir, error) < 0)
		goto out;
	randombytes_buf(master, sizeof master);
	recovery = mv_recovery_key_new();
	if (write_key_file(keyp, master, error) < 0)
		goto out;
	mv_instance *inst = NULL;
	int store_id = 0;
	if (create_master_db(dbp, master, recovery, error) == 0 && (inst = mv_instance_open(data_dir, error)) &&
	    mv_instance_create_store(inst, "store1", NULL, "current", &store_id, error) == 0)
		rc = 0;
	mv_instance_close(&inst);
	if (rc < 0)
		undo_init(data_dir);
out:
	sodium_memzero(master, sizeof master);
	if (rc == 0)
		*recovery_key_r = recovery;
	else
		g_free(recovery);
	g_free(dbp);
	g_free(keyp);
	return rc;
}

/* ---- UnlockStore ----------------------------------------------------------------- */

static int recovery_unwrap(const store_row *r, const char *recovery_key, uint8_t key_r[MV_KEY_BYTES],
                           GError **error)
{
	gsize salt_len = r->recovery_salt ? g_bytes_get_size(r->recovery_salt) : 0;
	if (!r->key_recovery || g_bytes_get_size(r->key_recovery) == 0 || salt_len != RECOVERY_SALT_BYTES) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE,
		            "store %d (%s) carries no recovery-key wrapping of its data key: only the master.key of "
		            "the instance that created it opens it", r->id, r->name);
		return -1;
	}
	char *canon = mv_recovery_key_normalize(recovery_key);
	bool empty = canon[0] == '\0';
	g_free(canon);
	if (empty) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "passphrase: empty (expected a recovery key)");
		return -1;
	}
	uint8_t kek[MV_KEY_BYTES];
	if (mv_key_from_recovery(recovery_key, g_bytes_get_data(r->recovery_salt, NULL), kek, error) < 0)
		return -1;
	bool ok = unwrap_with(kek, r->key_recovery, key_r);
	sodium_memzero(kek, sizeof kek);
	if (!ok) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "wrong recovery key for store %d (%s)", r->id, r->name);
		return -1;
	}
	return 0;
}

static int write_unlocked_row(mv_instance *inst, const store_row *r, GBytes *key_master, GBytes *key_recovery,
                              GBytes *salt, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "UPDATE stores SET key_master=?, key_recovery=?, recovery_salt=?, owner_instance=?,"
	            " key_master_next=NULL, meta_synced=0 WHERE id=?", &st, error) < 0)
		return -1;
	mv_sql_bind_bytes(st, 1, key_master);
	mv_sql_bind_bytes(st, 2, key_recovery);
	mv_sql_bind_bytes(st, 3, salt);
	sqlite3_bind_text(st, 4, inst->instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, r->id);
	return mv_sql_step_done(inst->db, st, "unlock store", error);
}

static int take_over_store(mv_instance *inst, const store_row *r, const uint8_t data_key[MV_KEY_BYTES],
                           GError **error)
{
	uint8_t kek[MV_KEY_BYTES];
	bool have = false;
	GBytes *salt = NULL;
	if (recovery_kek(inst, kek, &salt, &have, error) < 0)
		return -1;
	GBytes *key_master = wrap_with(inst->master_key, data_key);
	GBytes *key_recovery;
	if (have) {
		key_recovery = wrap_with(kek, data_key);
	} else {
		/* Without a KEK of our own the other instance's recovery key stays
		 * the one that opens this store elsewhere. */
		mv_log_warn("store %d (%s) keeps the recovery-key wrapping of its previous instance: this instance "
		            "keeps no recovery key-encryption key", r->id, r->name);
		key_recovery = g_bytes_ref(r->key_recovery);
		salt = g_bytes_ref(r->recovery_salt);
	}
	sodium_memzero(kek, sizeof kek);
	int rc = write_unlocked_row(inst, r, key_master, key_recovery, salt, error);
	g_bytes_unref(key_master);
	g_bytes_unref(key_recovery);
	g_bytes_unref(salt);
	return rc;
}

int mv_instance_unlock_store(mv_instance *inst, int store_id, const char *recovery_key, GError **error)
{
	store_row *r = load_row(inst, store_id, error);
	if (!r)
		return -1;
	uint8_t data_key[MV_KEY_BYTES];
	int rc = -1;
	if (recovery_unwrap(r, recovery_key, data_key, error) < 0)
		goto out;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		goto out;
	rc = take_over_store(inst, r, data_key, error);
	mv_archive_key_unlock(lock);
	if (rc < 0)
		goto out;
	GError *err = NULL;
	if (mv_archive_sync_store_meta(inst, store_id, &err) < 0) {
		mv_log_warn("store %d (%s) unlocked; writing its key records into the store failed (retried at the "
		            "next open): %s", r->id, r->name, err->message);
		g_error_free(err);
	}
out:
	sodium_memzero(data_key, sizeof data_key);
	store_row_free(r);
	return rc;
}

/* ---- RenewMasterKey ---------------------------------------------------------------- */

static int rewrap_store_keys(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	GPtrArray *rows = load_rows(inst, -1, error);
	if (!rows)
		return -1;
	int rc = 0;
	for (guint i = 0; i < rows->len && rc == 0; i++) {
		const store_row *r = rows->pdata[i];
		uint8_t key[MV_KEY_BYTES];
		if (!row_key(inst, r, key))
			continue; /* a locked store: not ours to rewrap */
		GBytes *w = wrap_with(next, key);
		sodium_memzero(key, sizeof key);
		sqlite3_stmt *st;
		rc = mv_sql_prepare(inst->db, "UPDATE stores SET key_master_next=? WHERE id=?", &st, error);
		if (rc == 0) {
			mv_sql_bind_bytes(st, 1, w);
			sqlite3_bind_int(st, 2, r->id);
			rc = mv_sql_step_done(inst->db, st, "rewrap store key", error);
		}
		g_bytes_unref(w);
	}
	g_ptr_array_free(rows, TRUE);
	return rc;
}

/* A key the instance keeps in a setting, wrapped by the master key (the
 * recovery KEK, the audit log key): wrapped by the new key into its _next
 * setting.  Absent (an instance made before it kept one): nothing to do. */
static int rewrap_setting(mv_instance *inst, const char *setting, const char *next_setting, const char *what,
                          const uint8_t next[MV_KEY_BYTES], GError **error)
{
	GBytes *wrapped = NULL;
	if (setting_get_bytes(inst->db, setting, &wrapped, error) < 0)
		return -1;
	if (!wrapped)
		return 0;
	uint8_t key[MV_KEY_BYTES];
	int rc = -1;
	if (!mv_archive_unwrap(inst, wrapped, key)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the %s does not open with master.key", what);
	} else {
		GBytes *w = wrap_with(next, key);
		rc = setting_put_bytes(inst->db, next_setting, w, error);
		g_bytes_unref(w);
	}
	sodium_memzero(key, sizeof key);
	g_bytes_unref(wrapped);
	return rc;
}

/* Step 2 of a renewal: every store key this instance opens, the key check,
 * the recovery KEK and the audit log key, wrapped by the new key into the
 * *_next places. */
static int wrap_next_values(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	if (rewrap_store_keys(inst, next, error) < 0 ||
	    rewrap_setting(inst, SETTING_RECOVERY_KEK, SETTING_RECOVERY_KEK_NEXT, "recovery key-encryption key", next,
	                   error) < 0 ||
	    rewrap_setting(inst, SETTING_AUDIT_KEY, SETTING_AUDIT_KEY_NEXT, "audit log key", next, error) < 0)
		return -1;
	GBytes *check = new_key_check(next);
	int rc = setting_put_bytes(inst->db, SETTING_KEY_CHECK_NEXT, check, error);
	g_bytes_unref(check);
	return rc;
}

static int rewrap_in_transaction(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	if (mv_sql_exec(inst->db, "BEGIN IMMEDIATE", error) < 0)
		return -1;
	if (drop_next_values(inst, error) < 0 || wrap_next_values(inst, next, error) < 0 ||
	    mv_sql_exec(inst->db, "COMMIT", error) < 0) {
		mv_sql_exec(inst->db, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}

static int renew_locked(mv_instance *inst, GError **error)
{
	if (settle_master_key_locked(inst, error) < 0)
		return -1;
	uint8_t next[MV_KEY_BYTES];
	randombytes_buf(next, sizeof next);
	char *keyp = master_key_path(inst->data_dir), *nextp = next_key_path(inst->data_dir);
	int rc = -1;
	if (write_key_file(nextp, next, error) < 0)
		goto out;
	fault_point("renew-master-key", 1);
	if (rewrap_in_transaction(inst, next, error) < 0)
		goto out;
	fault_point("renew-master-key", 2);
	/* The commit point: from here master.key is the new key. */
	if (rename(nextp, keyp) < 0) {
		mv_set_errno_error(error, errno, "rename", nextp);
		goto out;
	}
	if (mv_fsync_dir(inst->data_dir, error) < 0)
		goto out;
	fault_point("renew-master-key", 3);
	memcpy(inst->master_key, next, MV_KEY_BYTES);
	if (in_transaction(inst, promote_next_values, error) < 0)
		goto out;
	fault_point("renew-master-key", 4);
	rc = 0;
out:
	sodium_memzero(next, sizeof next);
	g_free(keyp);
	g_free(nextp);
	return rc;
}

int mv_instance_renew_master_key(mv_instance *inst, GError **error)
{
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = renew_locked(inst, error);
	mv_archive_key_unlock(lock);
	if (rc == 0)
		sync_pending_meta(inst);
	return rc;
}

/* ---- CompactMasterDatabase ------------------------------------------------------------ */

int mv_instance_compact_master(mv_instance *inst, GError **error)
{
	return mv_sql_exec(inst->db, "VACUUM; PRAGMA wal_checkpoint(TRUNCATE);", error);
}

int mv_instance_store_key(mv_instance *inst, int store_id, uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	store_row *r = load_row(inst, store_id, error);
	if (!r)
		return -1;
	int rc = 0;
	if (!row_key(inst, r, key_r)) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: run UnlockStore with the recovery key"
		            " of the instance it came from", r->id, r->name);
		rc = -1;
	}
	store_row_free(r);
	return rc;
}

int mv_instance_get_setting(mv_instance *inst, const char *key, char **value_r, GError **error)
{
	return mv_archive_setting_get(inst, key, value_r, error);
}

int mv_instance_set_setting(mv_instance *inst, const char *key, const char *value, GError **error)
{
	return mv_archive_setting_put(inst, key, value, error);
}
