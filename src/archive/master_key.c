/* archive/master_key: the master key (master.key), what it wraps, and the
 * two operations that change wrappings: UnlockStore and RenewMasterKey.
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
 * Renewing the master key is crash-safe by construction: the new key goes
 * to master.key.new, every store key is rewrapped into key_master_next in one
 * transaction, then master.key.new is renamed over master.key (the commit
 * point), then the *_next values are promoted.  A settings row
 * master_key_check (a value wrapped by the master key) tells, on open, which
 * side of the rename a crash happened: before it the leftovers are dropped,
 * after it the promotion is finished.  The recovery KEK and the audit log's
 * key (see audit.c) are settings wrapped by the master key, and each
 * credential's own key (credentials.c) a column beside its sealed secret;
 * they go through the same _next/promote steps.  Whatever writes wrapped
 * keys holds the instance key lock (flock on master.lock), so it cannot
 * interleave with a renewal in another process. */
#include "archive/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

char *mv_archive_master_key_path(const char *dir) { return g_build_filename(dir, "master.key", NULL); }
static char *next_key_path(const char *dir) { return g_build_filename(dir, "master.key.new", NULL); }

/* master.key = 8-byte magic and format version, then the 32-byte key. */
#define MASTER_KEY_MAGIC "MVKEY001"
#define MASTER_KEY_FILE_BYTES (8 + MV_KEY_BYTES)

static GBytes *bytes_of(const GByteArray *a)
{
	return g_bytes_new(a->data, a->len);
}

/* ---- the master key ------------------------------------------------------------ */

int mv_archive_read_key_file(const char *path, uint8_t key_r[MV_KEY_BYTES], GError **error)
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

int mv_archive_write_key_file(const char *path, const uint8_t key[MV_KEY_BYTES], GError **error)
{
	uint8_t file[MASTER_KEY_FILE_BYTES];
	memcpy(file, MASTER_KEY_MAGIC, 8);
	memcpy(file + 8, key, MV_KEY_BYTES);
	int rc = mv_write_file_atomic(path, file, sizeof file, 0600, error);
	sodium_memzero(file, sizeof file);
	return rc;
}

bool mv_archive_unwrap_with(const uint8_t kek[MV_KEY_BYTES], GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES])
{
	if (!wrapped)
		return false;
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(wrapped, &len);
	return mv_key_unwrap(kek, data, len, key_r, NULL) == 0;
}

GBytes *mv_archive_wrap_with(const uint8_t kek[MV_KEY_BYTES], const uint8_t key[MV_KEY_BYTES])
{
	GByteArray *w = mv_key_wrap(kek, key);
	GBytes *b = bytes_of(w);
	g_byte_array_unref(w);
	return b;
}

/* A new random key, wrapped by master (the key check's probe, the audit
 * log's key). */
GBytes *mv_archive_new_wrapped_key(const uint8_t master[MV_KEY_BYTES])
{
	uint8_t key[MV_KEY_BYTES];
	randombytes_buf(key, sizeof key);
	GBytes *w = mv_archive_wrap_with(master, key);
	sodium_memzero(key, sizeof key);
	return w;
}

GBytes *mv_archive_new_key_check(const uint8_t master[MV_KEY_BYTES])
{
	return mv_archive_new_wrapped_key(master);
}

static bool key_opens_setting(mv_instance *inst, const uint8_t key[MV_KEY_BYTES], const char *setting)
{
	GBytes *check = NULL;
	if (mv_archive_setting_get_bytes(inst, setting, &check, NULL) < 0 || !check)
		return false;
	uint8_t probe[MV_KEY_BYTES];
	bool ok = mv_archive_unwrap_with(key, check, probe);
	sodium_memzero(probe, sizeof probe);
	g_bytes_unref(check);
	return ok;
}

/* Another process may have renewed the master key since this one read it:
 * adopt the key file's key if it is the instance's current one. */
static bool reload_master_key(mv_instance *inst)
{
	char *path = mv_archive_master_key_path(inst->data_dir);
	uint8_t key[MV_KEY_BYTES];
	bool adopted = false;
	if (mv_archive_read_key_file(path, key, NULL) == 0 && sodium_memcmp(key, inst->master_key, MV_KEY_BYTES) != 0 &&
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
	if (mv_archive_unwrap_with(inst->master_key, wrapped, key_r))
		return true;
	return reload_master_key(inst) && mv_archive_unwrap_with(inst->master_key, wrapped, key_r);
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

/* The instance recovery KEK, or false when this instance keeps none (made
 * before the KEK was stored). */
static int recovery_kek(mv_instance *inst, uint8_t kek_r[MV_KEY_BYTES], GBytes **salt_r, bool *have_r,
                        GError **error)
{
	GBytes *wrapped = NULL;
	*have_r = false;
	*salt_r = NULL;
	if (mv_archive_setting_get_bytes(inst, SETTING_RECOVERY_KEK, &wrapped, error) < 0 ||
	    mv_archive_setting_get_bytes(inst, SETTING_RECOVERY_SALT, salt_r, error) < 0) {
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
	*key_master_r = mv_archive_wrap_with(inst->master_key, data_key);
	if (have) {
		*key_recovery_r = mv_archive_wrap_with(kek, data_key);
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
	if (mv_archive_setting_get_bytes(inst, SETTING_AUDIT_KEY, &wrapped, error) < 0)
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

/* ---- on open: an interrupted renewal ------------------------------------------------- */

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
	if (mv_archive_count(inst, "SELECT (SELECT count(*) FROM stores WHERE key_master_next IS NOT NULL) +"
	                     " (SELECT count(*) FROM credentials WHERE key_master_next IS NOT NULL)", NULL, &n, error) < 0 ||
	    mv_archive_setting_get(inst, SETTING_KEY_CHECK_NEXT, &next_check, error) < 0)
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

static int drop_next_values(mv_instance *inst, void *opaque, GError **error)
{
	if (mv_sql_exec(inst->db, "UPDATE stores SET key_master_next=NULL WHERE key_master_next IS NOT NULL;"
	                " UPDATE credentials SET key_master_next=NULL WHERE key_master_next IS NOT NULL", error) < 0 ||
	    mv_archive_setting_delete(inst, SETTING_KEY_CHECK_NEXT, error) < 0 ||
	    mv_archive_setting_delete(inst, SETTING_RECOVERY_KEK_NEXT, error) < 0 ||
	    mv_archive_setting_delete(inst, SETTING_AUDIT_KEY_NEXT, error) < 0)
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
	if (mv_archive_in_transaction(inst, drop_next_values, NULL, error) < 0)
		return -1;
	char *next_file = next_key_path(inst->data_dir);
	char *next_tmp = g_strdup_printf("%s.tmp", next_file);
	int rc = -1;
	if (remove_if_present(next_file, error) < 0 || remove_if_present(next_tmp, error) < 0)
		goto out;
	mv_log_warn("%s: an interrupted master key renewal was rolled back; the previous key stays", inst->data_dir);
	rc = 0;
out:
	g_free(next_file);
	g_free(next_tmp);
	return rc;
}

static int promote_setting(mv_instance *inst, const char *next, const char *current, GError **error)
{
	char *value = NULL;
	if (mv_archive_setting_get(inst, next, &value, error) < 0)
		return -1;
	int rc = -1;
	if (value && mv_archive_setting_put(inst, current, value, error) < 0)
		goto out;
	rc = mv_archive_setting_delete(inst, next, error);
out:
	g_free(value);
	return rc;
}

static int promote_next_values(mv_instance *inst, void *opaque, GError **error)
{
	if (mv_sql_exec(inst->db, "UPDATE stores SET key_master=key_master_next, key_master_next=NULL,"
	                " meta_synced=0 WHERE key_master_next IS NOT NULL;"
	                " UPDATE credentials SET key_master=key_master_next, key_master_next=NULL"
	                " WHERE key_master_next IS NOT NULL", error) < 0 ||
	    promote_setting(inst, SETTING_KEY_CHECK_NEXT, SETTING_KEY_CHECK, error) < 0 ||
	    promote_setting(inst, SETTING_RECOVERY_KEK_NEXT, SETTING_RECOVERY_KEK, error) < 0 ||
	    promote_setting(inst, SETTING_AUDIT_KEY_NEXT, SETTING_AUDIT_KEY, error) < 0)
		return -1;
	return 0;
}

int mv_archive_settle_master_key_locked(mv_instance *inst, GError **error)
{
	/* Read again under the lock: another process may have renewed it. */
	char *path = mv_archive_master_key_path(inst->data_dir);
	int read = mv_archive_read_key_file(path, inst->master_key, error);
	g_free(path);
	if (read < 0)
		return -1;
	key_status status;
	if (key_status_of(inst, &status, error) < 0)
		return -1;
	switch (status) {
	case KEY_CLEAN:
		return 0;
	case KEY_LEFTOVERS:
		return abandon_renewal(inst, error);
	case KEY_NEXT:
		if (mv_archive_in_transaction(inst, promote_next_values, NULL, error) < 0)
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
int mv_archive_settle_master_key(mv_instance *inst, GError **error)
{
	key_status status;
	if (key_status_of(inst, &status, error) < 0)
		return -1;
	if (status == KEY_CLEAN)
		return 0;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = mv_archive_settle_master_key_locked(inst, error);
	mv_archive_key_unlock(lock);
	return rc;
}

/* ---- UnlockStore ----------------------------------------------------------------- */

static int recovery_unwrap(const mv_archive_row *r, const char *recovery_key, uint8_t key_r[MV_KEY_BYTES],
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
	bool ok = mv_archive_unwrap_with(kek, r->key_recovery, key_r);
	sodium_memzero(kek, sizeof kek);
	if (!ok) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "wrong recovery key for store %d (%s)", r->id, r->name);
		return -1;
	}
	return 0;
}

static int write_unlocked_row(mv_instance *inst, const mv_archive_row *r, GBytes *key_master, GBytes *key_recovery,
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

static int take_over_store(mv_instance *inst, const mv_archive_row *r, const uint8_t data_key[MV_KEY_BYTES],
                           GError **error)
{
	uint8_t kek[MV_KEY_BYTES];
	bool have = false;
	GBytes *salt = NULL;
	if (recovery_kek(inst, kek, &salt, &have, error) < 0)
		return -1;
	GBytes *key_master = mv_archive_wrap_with(inst->master_key, data_key);
	GBytes *key_recovery;
	if (have) {
		key_recovery = mv_archive_wrap_with(kek, data_key);
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
	mv_archive_row *r = mv_archive_row_load(inst, store_id, error);
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
	mv_archive_row_free(r);
	return rc;
}

/* ---- RenewMasterKey ---------------------------------------------------------------- */

static int rewrap_store_key(mv_instance *inst, const mv_archive_row *r, const uint8_t next[MV_KEY_BYTES],
                            GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (!mv_archive_row_key(inst, r, key))
		return 0; /* a locked store: not ours to rewrap */
	GBytes *w = mv_archive_wrap_with(next, key);
	sodium_memzero(key, sizeof key);
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_sql_prepare(inst->db, "UPDATE stores SET key_master_next=? WHERE id=?", &st, error) < 0)
		goto out;
	mv_sql_bind_bytes(st, 1, w);
	sqlite3_bind_int(st, 2, r->id);
	rc = mv_sql_step_done(inst->db, st, "rewrap store key", error);
out:
	g_bytes_unref(w);
	return rc;
}

static int rewrap_store_keys(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	GPtrArray *rows = mv_archive_rows_load(inst, -1, error);
	if (!rows)
		return -1;
	int rc = -1;
	for (guint i = 0; i < rows->len; i++)
		if (rewrap_store_key(inst, rows->pdata[i], next, error) < 0)
			goto out;
	rc = 0;
out:
	g_ptr_array_free(rows, TRUE);
	return rc;
}

/* One credential's key, read with its id. */
typedef struct credential_key {
	int64_t id;
	GBytes *wrapped;
} credential_key;

static void credential_key_clear(gpointer p)
{
	g_bytes_unref(((credential_key *)p)->wrapped);
}

static GArray *credential_keys(mv_instance *inst, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "SELECT id, key_master FROM credentials WHERE key_master IS NOT NULL ORDER BY id",
	                   &st, error) < 0)
		return NULL;
	GArray *keys = g_array_new(FALSE, FALSE, sizeof(credential_key));
	g_array_set_clear_func(keys, credential_key_clear);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		credential_key k = { sqlite3_column_int64(st, 0), mv_sql_column_bytes(st, 1) };
		g_array_append_val(keys, k);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return keys;
	mv_sql_set_error(error, inst->db, "read credential keys");
	g_array_unref(keys);
	return NULL;
}

/* A key that does not open stops the renewal: renewing past it would leave
 * a secret that nothing opens any more, without a word. */
static int rewrap_credential_key(mv_instance *inst, const credential_key *k, const uint8_t next[MV_KEY_BYTES],
                                 GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (!mv_archive_unwrap(inst, k->wrapped, key)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the key of credential %" G_GINT64_FORMAT
		            " does not open with master.key (delete that credential and make it again)", k->id);
		return -1;
	}
	GBytes *w = mv_archive_wrap_with(next, key);
	sodium_memzero(key, sizeof key);
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_sql_prepare(inst->db, "UPDATE credentials SET key_master_next=? WHERE id=?", &st, error) == 0) {
		mv_sql_bind_bytes(st, 1, w);
		sqlite3_bind_int64(st, 2, k->id);
		rc = mv_sql_step_done(inst->db, st, "rewrap credential key", error);
	}
	g_bytes_unref(w);
	return rc;
}

static int rewrap_credential_keys(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	GArray *keys = credential_keys(inst, error);
	if (!keys)
		return -1;
	int rc = 0;
	for (guint i = 0; i < keys->len && rc == 0; i++)
		rc = rewrap_credential_key(inst, &g_array_index(keys, credential_key, i), next, error);
	g_array_unref(keys);
	return rc;
}

/* A key the instance keeps in a setting, wrapped by the master key (the
 * recovery KEK, the audit log key): wrapped by the new key into its _next
 * setting.  Absent (an instance made before it kept one): nothing to do. */
static int rewrap_setting(mv_instance *inst, const char *setting, const char *next_setting, const char *what,
                          const uint8_t next[MV_KEY_BYTES], GError **error)
{
	GBytes *wrapped = NULL;
	if (mv_archive_setting_get_bytes(inst, setting, &wrapped, error) < 0)
		return -1;
	if (!wrapped)
		return 0;
	uint8_t key[MV_KEY_BYTES];
	int rc = -1;
	if (!mv_archive_unwrap(inst, wrapped, key)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the %s does not open with master.key", what);
	} else {
		GBytes *w = mv_archive_wrap_with(next, key);
		rc = mv_archive_setting_put_bytes(inst, next_setting, w, error);
		g_bytes_unref(w);
	}
	sodium_memzero(key, sizeof key);
	g_bytes_unref(wrapped);
	return rc;
}

/* Step 2 of a renewal: every store key this instance opens, every
 * credential's key, the key check, the recovery KEK and the audit log key,
 * wrapped by the new key into the *_next places. */
static int wrap_next_values(mv_instance *inst, const uint8_t next[MV_KEY_BYTES], GError **error)
{
	if (rewrap_store_keys(inst, next, error) < 0 || rewrap_credential_keys(inst, next, error) < 0 ||
	    rewrap_setting(inst, SETTING_RECOVERY_KEK, SETTING_RECOVERY_KEK_NEXT, "recovery key-encryption key", next,
	                   error) < 0 ||
	    rewrap_setting(inst, SETTING_AUDIT_KEY, SETTING_AUDIT_KEY_NEXT, "audit log key", next, error) < 0)
		return -1;
	GBytes *check = mv_archive_new_key_check(next);
	int rc = mv_archive_setting_put_bytes(inst, SETTING_KEY_CHECK_NEXT, check, error);
	g_bytes_unref(check);
	return rc;
}

/* opaque: the new key. */
static int rewrap_txn(mv_instance *inst, void *opaque, GError **error)
{
	if (drop_next_values(inst, NULL, error) < 0)
		return -1;
	return wrap_next_values(inst, opaque, error);
}

static int renew_locked(mv_instance *inst, GError **error)
{
	if (mv_archive_settle_master_key_locked(inst, error) < 0)
		return -1;
	uint8_t next[MV_KEY_BYTES];
	randombytes_buf(next, sizeof next);
	char *keyp = mv_archive_master_key_path(inst->data_dir), *nextp = next_key_path(inst->data_dir);
	int rc = -1;
	if (mv_archive_write_key_file(nextp, next, error) < 0)
		goto out;
	mv_fault_point("renew-master-key", 1);
	if (mv_archive_in_transaction(inst, rewrap_txn, next, error) < 0)
		goto out;
	mv_fault_point("renew-master-key", 2);
	/* The commit point: from here master.key is the new key. */
	if (rename(nextp, keyp) < 0) {
		mv_set_errno_error(error, errno, "rename", nextp);
		goto out;
	}
	if (mv_fsync_dir(inst->data_dir, error) < 0)
		goto out;
	mv_fault_point("renew-master-key", 3);
	memcpy(inst->master_key, next, MV_KEY_BYTES);
	if (mv_archive_in_transaction(inst, promote_next_values, NULL, error) < 0)
		goto out;
	mv_fault_point("renew-master-key", 4);
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
	if (rc < 0)
		return -1;
	mv_archive_sync_pending_meta(inst);
	return 0;
}

int mv_instance_store_key(mv_instance *inst, int store_id, uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	mv_archive_row *r = mv_archive_row_load(inst, store_id, error);
	if (!r)
		return -1;
	int rc = 0;
	if (!mv_archive_row_key(inst, r, key_r)) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: run UnlockStore with the recovery key"
		            " of the instance it came from", r->id, r->name);
		rc = -1;
	}
	mv_archive_row_free(r);
	return rc;
}
