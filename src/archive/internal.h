/* archive/internal: what instance.c lends to stores.c, backup.c, users.c and
 * audit.c — the master db, the key wrapping, the store meta key records and
 * the audit log key.  Not a public header: archive.h is the module's face. */
#ifndef MV_ARCHIVE_INTERNAL_H
#define MV_ARCHIVE_INTERNAL_H

#include "archive/archive.h"

sqlite3 *mv_archive_db(mv_instance *inst);
const char *mv_archive_instance_id(mv_instance *inst);
int mv_archive_key_lock(mv_instance *inst, GError **error);
void mv_archive_key_unlock(int lock_fd);
bool mv_archive_unwrap(mv_instance *inst, GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES]);
int mv_archive_wrap_new_key(mv_instance *inst, const uint8_t data_key[MV_KEY_BYTES], GBytes **key_master_r,
                            GBytes **key_recovery_r, GBytes **recovery_salt_r, GError **error);
int mv_archive_write_store_meta(const mv_store_paths *paths, const char *owner, GBytes *key_master,
                                GBytes *key_recovery, GBytes *recovery_salt, const char *uid, GError **error);
int mv_archive_read_store_meta(const mv_store_paths *paths, char **owner_r, GBytes **key_master_r,
                               GBytes **key_recovery_r, GBytes **recovery_salt_r, char **uid_r, GError **error);
int mv_archive_sync_store_meta(mv_instance *inst, int store_id, GError **error);
char *mv_archive_stored_path(mv_instance *inst, const char *absolute);
char *mv_archive_absolute_path(mv_instance *inst, const char *stored);
int mv_archive_setting_get(mv_instance *inst, const char *key, char **value_r, GError **error);
int mv_archive_setting_put(mv_instance *inst, const char *key, const char *value, GError **error);
char *mv_archive_random_hex(size_t bytes);
/* The audit log's key (random per instance, kept in master.sqlite wrapped
 * by the master key and rewrapped with it by RenewMasterKey). */
int mv_archive_audit_key(mv_instance *inst, uint8_t key_r[MV_KEY_BYTES], GError **error);

/* secrets.c: a key for one purpose (context: up to 8 characters, e.g.
 * "mvtotp"), derived from the instance key; the caller wipes it. */
int mv_archive_secret_key(mv_instance *inst, const char *context, uint64_t id, uint8_t key_r[MV_KEY_BYTES],
                          GError **error);
/* XChaCha20-Poly1305 with a random nonce (nonce || ciphertext); purpose is
 * the associated data, so a sealed value cannot be moved to another use.
 * open returns NULL for anything that does not authenticate.  The caller
 * wipes what open returns. */
GBytes *mv_archive_seal(const uint8_t key[MV_KEY_BYTES], const char *purpose, const uint8_t *plain, size_t len);
GBytes *mv_archive_open_sealed(const uint8_t key[MV_KEY_BYTES], const char *purpose, GBytes *sealed);

/* SQL helpers of users.c, shared with audit.c, mfa.c, app_passwords.c. */
int mv_archive_prepare(mv_instance *inst, const char *sql, sqlite3_stmt **st_r, GError **error);
/* The one integer a query gives (count(*) ...), its one text parameter
 * bound when text_arg is not NULL. */
int mv_archive_count(mv_instance *inst, const char *sql, const char *text_arg, int64_t *n_r, GError **error);
/* Gives the user (its stored name) a fresh auth generation, which ends its
 * sessions and cached logons; call inside a transaction. */
int mv_archive_new_auth_generation(mv_instance *inst, const char *stored_name, GError **error);
/* Runs fn inside BEGIN IMMEDIATE ... COMMIT on the master db (rolled back
 * when fn or the commit fails). */
typedef int (*mv_archive_txn_fn)(mv_instance *inst, void *opaque, GError **error);
int mv_archive_in_transaction(mv_instance *inst, mv_archive_txn_fn fn, void *opaque, GError **error);

/* users.c: a user's folder grants (mv_folder_grant*, ordered by folder),
 * for access.c. */
GPtrArray *mv_archive_folder_grants(mv_instance *inst, const char *name, GError **error);

#define SETTING_NEXT_STORE_ID "next_store_id"

#endif
