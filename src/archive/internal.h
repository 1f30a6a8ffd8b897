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

/* SQL helpers of users.c, shared with audit.c. */
int mv_archive_prepare(mv_instance *inst, const char *sql, sqlite3_stmt **st_r, GError **error);
/* Runs fn inside BEGIN IMMEDIATE ... COMMIT on the master db (rolled back
 * when fn or the commit fails). */
typedef int (*mv_archive_txn_fn)(mv_instance *inst, void *opaque, GError **error);
int mv_archive_in_transaction(mv_instance *inst, mv_archive_txn_fn fn, void *opaque, GError **error);

#define SETTING_NEXT_STORE_ID "next_store_id"

#endif
