/* archive/recovery_key: RenewRecoveryKey, replacing the instance's recovery
 * key (see master_key.c for what it wraps).
 *
 * A recovery key can leak — typed into a ticket, a chat, or an audit log
 * of a version that wrote UnlockStore's argument in clear — and an
 * append-only log cannot forget it.  Rotating it is the remedy: a new key,
 * a new salt, the key-encryption key Argon2id derives from both, and every
 * store key this instance opens wrapped by it.  All of master.sqlite's
 * changes happen in one transaction under the instance key lock, so a crash
 * leaves either the old key working everywhere or the new one; the copies
 * inside each store's own db follow (meta_synced), as after UnlockStore.
 * The new key is shown only once the transaction is committed: a crash
 * before the answer loses the new key, not the archive (master.key still
 * opens every store, and the rotation can simply be run again). */
#include "archive/internal.h"

#include <sodium.h>

/* The new values: a recovery key, its salt and KEK, the KEK wrapped by the
 * master key. */
typedef struct recovery_values {
	char *key;
	GBytes *salt;
	uint8_t kek[MV_KEY_BYTES];
	GBytes *kek_wrapped;
} recovery_values;

static int recovery_values_make(mv_instance *inst, recovery_values *v, GError **error)
{
	uint8_t salt[RECOVERY_SALT_BYTES];
	randombytes_buf(salt, sizeof salt);
	v->key = mv_recovery_key_new();
	if (mv_key_from_recovery(v->key, salt, v->kek, error) < 0)
		return -1;
	v->salt = g_bytes_new(salt, sizeof salt);
	v->kek_wrapped = mv_archive_wrap_with(inst->master_key, v->kek);
	return 0;
}

static void recovery_values_clear(recovery_values *v)
{
	mv_archive_free_secret(v->key);
	v->key = NULL;
	sodium_memzero(v->kek, sizeof v->kek);
	g_clear_pointer(&v->salt, g_bytes_unref);
	g_clear_pointer(&v->kek_wrapped, g_bytes_unref);
}

/* A store whose key the master key opens gets the new recovery wrapping;
 * a locked one (another instance's, waiting for UnlockStore) is not ours. */
static int rewrap_row(mv_instance *inst, const mv_archive_row *r, const recovery_values *v, int *count_r,
                      GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (!mv_archive_row_key(inst, r, key))
		return 0;
	GBytes *wrapped = mv_archive_wrap_with(v->kek, key);
	sodium_memzero(key, sizeof key);
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (mv_sql_prepare(inst->db, "UPDATE stores SET key_recovery=?, recovery_salt=?, meta_synced=0 WHERE id=?", &st,
	                   error) < 0)
		goto out;
	mv_sql_bind_bytes(st, 1, wrapped);
	mv_sql_bind_bytes(st, 2, v->salt);
	sqlite3_bind_int(st, 3, r->id);
	if (mv_sql_step_done(inst->db, st, "renew recovery wrapping", error) < 0)
		goto out;
	(*count_r)++;
	rc = 0;
out:
	g_bytes_unref(wrapped);
	return rc;
}

typedef struct renewal {
	const recovery_values *values;
	int stores;
} renewal;

static int renew_txn(mv_instance *inst, void *opaque, GError **error)
{
	renewal *rn = opaque;
	GPtrArray *rows = mv_archive_rows_load(inst, -1, error);
	if (!rows)
		return -1;
	int rc = -1;
	for (guint i = 0; i < rows->len; i++)
		if (rewrap_row(inst, rows->pdata[i], rn->values, &rn->stores, error) < 0)
			goto out;
	if (mv_archive_setting_put_bytes(inst, SETTING_RECOVERY_SALT, rn->values->salt, error) < 0 ||
	    mv_archive_setting_put_bytes(inst, SETTING_RECOVERY_KEK, rn->values->kek_wrapped, error) < 0)
		goto out;
	rc = 0;
out:
	g_ptr_array_free(rows, TRUE);
	return rc;
}

/* Under the key lock: a master key renewal a crash interrupted settled
 * first (its _next values would otherwise promote the old KEK over the new
 * one; settling reads master.key again), then the new values made and
 * written. */
static int renew_locked(mv_instance *inst, recovery_values *v, int *stores_r, GError **error)
{
	if (mv_archive_settle_master_key_locked(inst, error) < 0 || recovery_values_make(inst, v, error) < 0)
		return -1;
	renewal rn = { v, 0 };
	if (mv_archive_in_transaction(inst, renew_txn, &rn, error) < 0)
		return -1;
	*stores_r = rn.stores;
	return 0;
}

int mv_instance_renew_recovery_key(mv_instance *inst, char **recovery_key_r, GError **error)
{
	recovery_values v = { 0 };
	int stores = 0;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = renew_locked(inst, &v, &stores, error);
	mv_archive_key_unlock(lock);
	if (rc == 0) {
		mv_log_info("%s: recovery key renewed; %d store key(s) rewrapped", inst->data_dir, stores);
		mv_archive_sync_pending_meta(inst);
		*recovery_key_r = v.key;
		v.key = NULL;
	}
	recovery_values_clear(&v);
	return rc;
}
