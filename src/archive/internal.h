/* archive/internal: what the files of archive/ share and nothing outside
 * sees — the instance struct, master.sqlite's settings and store rows
 * (instance.c), the master key and its wrappings (master_key.c), the schema
 * and its migrations (migrations.c), and the helpers users.c, audit.c and
 * secrets.c lend the others.  Not a public header: archive.h is the
 * module's face. */
#ifndef MV_ARCHIVE_INTERNAL_H
#define MV_ARCHIVE_INTERNAL_H

#include "archive/archive.h"

#include <sys/types.h>
#include <time.h>

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
#define SETTING_NEXT_STORE_ID "next_store_id"

#define RECOVERY_SALT_BYTES 16
#define INSTANCE_ID_BYTES 16

/* ---- instance.c ---- */

/* The instance's master.sqlite connection. */
sqlite3 *mv_archive_db(mv_instance *inst);
/* The random id naming this instance as the owner of its stores. */
const char *mv_archive_instance_id(mv_instance *inst);
/* A setting's text value, *value_r NULL (no error) when unset. */
int mv_archive_setting_get(mv_instance *inst, const char *key, char **value_r, GError **error);
int mv_archive_setting_put(mv_instance *inst, const char *key, const char *value, GError **error);
/* Removes a setting; absent is not an error. */
int mv_archive_setting_delete(mv_instance *inst, const char *key, GError **error);
/* A binary setting (stored hex), *value_r NULL (no error) when unset. */
int mv_archive_setting_get_bytes(mv_instance *inst, const char *key, GBytes **value_r, GError **error);
int mv_archive_setting_put_bytes(mv_instance *inst, const char *key, GBytes *value, GError **error);
/* bytes random bytes (at most 32) as lower-case hex; the caller frees. */
char *mv_archive_random_hex(size_t bytes);
/* A path as the stores table keeps it: relative when inside the data
 * directory (so that moving the directory moves the store), else absolute. */
char *mv_archive_stored_path(mv_instance *inst, const char *absolute);
/* A stored path made absolute again. */
char *mv_archive_absolute_path(mv_instance *inst, const char *stored);
/* Writes a store's copy of its wrapped keys, uid and owner into its own db
 * (NULL or empty values are left out; the owner goes last). */
int mv_archive_write_store_meta(const mv_store_paths *paths, const char *owner, GBytes *key_master,
                                GBytes *key_recovery, GBytes *recovery_salt, const char *uid, GError **error);
/* Reads them back; absent values come back NULL, all or nothing. */
int mv_archive_read_store_meta(const mv_store_paths *paths, char **owner_r, GBytes **key_master_r,
                               GBytes **key_recovery_r, GBytes **recovery_salt_r, char **uid_r, GError **error);
/* Writes the store row's keys into the store and marks the row synced
 * (a store whose key this instance cannot open is left alone). */
int mv_archive_sync_store_meta(mv_instance *inst, int store_id, GError **error);
/* The same for every row not yet synced; failures are logged and retried
 * at the next open. */
void mv_archive_sync_pending_meta(mv_instance *inst);

/* One row of the stores table, paths as stored. */
typedef struct mv_archive_row {
	int id;
	char *name, *state;
	char *db_path, *content_path, *index_path;     /* as stored */
	GBytes *key_master, *key_master_next, *key_recovery, *recovery_salt;
	char *owner, *uid;
	bool meta_synced;
} mv_archive_row;

void mv_archive_row_free(mv_archive_row *r);
/* All rows in id order (store_id < 0) or one; an empty array when it does
 * not exist. */
GPtrArray *mv_archive_rows_load(mv_instance *inst, int store_id, GError **error);
/* One row, or NULL with MV_ERR_NOT_FOUND. */
mv_archive_row *mv_archive_row_load(mv_instance *inst, int store_id, GError **error);
/* The row's paths made absolute; mv_archive_paths_clear frees them. */
void mv_archive_row_paths(mv_instance *inst, const mv_archive_row *r, mv_store_paths *paths_r);
void mv_archive_paths_clear(mv_store_paths *p);
/* The row's data key, false when the master key does not open it (a
 * locked store).  The caller wipes it. */
bool mv_archive_row_key(mv_instance *inst, const mv_archive_row *r, uint8_t key_r[MV_KEY_BYTES]);
/* Why a locked store is locked, for its error text; the caller frees. */
char *mv_archive_locked_reason(mv_instance *inst, const mv_archive_row *r);

/* What a file looked like: any write to it changes one of these. */
typedef struct {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
} mv_archive_file_look;

/* Fills *look_r from stat(path); exists false when there is none. */
void mv_archive_look_at(const char *path, mv_archive_file_look *look_r);

/* ---- master_key.c ---- */

/* <dir>/master.key; the caller frees. */
char *mv_archive_master_key_path(const char *dir);
/* Reads/writes (atomically, 0600) a master key file. */
int mv_archive_read_key_file(const char *path, uint8_t key_r[MV_KEY_BYTES], GError **error);
int mv_archive_write_key_file(const char *path, const uint8_t key[MV_KEY_BYTES], GError **error);
/* key wrapped by kek. */
GBytes *mv_archive_wrap_with(const uint8_t kek[MV_KEY_BYTES], const uint8_t key[MV_KEY_BYTES]);
/* false when wrapped is NULL or does not open with kek. */
bool mv_archive_unwrap_with(const uint8_t kek[MV_KEY_BYTES], GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES]);
/* A new random key wrapped by master (the audit log's key). */
GBytes *mv_archive_new_wrapped_key(const uint8_t master[MV_KEY_BYTES]);
/* A new master_key_check value: what tells which key master.sqlite is on. */
GBytes *mv_archive_new_key_check(const uint8_t master[MV_KEY_BYTES]);
/* Unwraps with the master key, adopting a key another process renewed to
 * when the one in memory does not open it. */
bool mv_archive_unwrap(mv_instance *inst, GBytes *wrapped, uint8_t key_r[MV_KEY_BYTES]);
/* The instance key lock (flock on master.lock), held by whatever writes
 * wrapped keys; returns its fd for mv_archive_key_unlock. */
int mv_archive_key_lock(mv_instance *inst, GError **error);
void mv_archive_key_unlock(int lock_fd);
/* A new store's data key wrapped by the master key and by the recovery KEK
 * (empty recovery values, with a warning, when the instance keeps none). */
int mv_archive_wrap_new_key(mv_instance *inst, const uint8_t data_key[MV_KEY_BYTES], GBytes **key_master_r,
                            GBytes **key_recovery_r, GBytes **recovery_salt_r, GError **error);
/* The audit log's key (random per instance, kept in master.sqlite wrapped
 * by the master key and rewrapped with it by RenewMasterKey). */
int mv_archive_audit_key(mv_instance *inst, uint8_t key_r[MV_KEY_BYTES], GError **error);
/* On open: makes master.key and master.sqlite agree, finishing or rolling
 * back a renewal a crash interrupted; fails when the key is not theirs. */
int mv_archive_settle_master_key(mv_instance *inst, GError **error);
/* The same with the key lock held by the caller; master.key is read again
 * first, so what follows wraps with the key on disk now. */
int mv_archive_settle_master_key_locked(mv_instance *inst, GError **error);

/* ---- migrations.c ---- */

/* master.sqlite's schema (several statements, idempotent). */
const char *mv_archive_schema(void);
/* Brings the stores table, the instance id, the key check and the
 * credentials tables of an older instance up to date, and reads the
 * instance id into inst. */
int mv_archive_migrate(mv_instance *inst, GError **error);
/* Adds the users tables and the audit key to an instance made before them. */
int mv_archive_ensure_users_schema(mv_instance *inst, GError **error);

/* ---- secrets.c ---- */

/* A key for one purpose (context: up to 8 characters, e.g. "mvtotp"),
 * derived from the instance key (the audit log's); the caller wipes it. */
int mv_archive_secret_key(mv_instance *inst, const char *context, uint64_t id, uint8_t key_r[MV_KEY_BYTES],
                          GError **error);
/* XChaCha20-Poly1305 with a random nonce (nonce || ciphertext); purpose is
 * the associated data, so a sealed value cannot be moved to another use.
 * open returns NULL for anything that does not authenticate.  The caller
 * wipes what open returns. */
GBytes *mv_archive_seal(const uint8_t key[MV_KEY_BYTES], const char *purpose, const uint8_t *plain, size_t len);
GBytes *mv_archive_open_sealed(const uint8_t key[MV_KEY_BYTES], const char *purpose, GBytes *sealed);

/* ---- users.c ---- */

/* SQL helpers of archive/ (prepare, step, columns, transactions on any db:
 * base/sql.h). */
/* The one integer a query gives (count(*) ...), its one text parameter
 * bound when text_arg is not NULL. */
int mv_archive_count(mv_instance *inst, const char *sql, const char *text_arg, int64_t *n_r, GError **error);
/* Gives the user (its stored name) a fresh auth generation, which ends its
 * sessions and cached logons; call inside a transaction. */
int mv_archive_new_auth_generation(mv_instance *inst, const char *stored_name, GError **error);
/* mv_sql_in_transaction on the master db, with fn given the instance:
 * BEGIN IMMEDIATE, fn, COMMIT, rolled back when fn or the commit fails. */
typedef int (*mv_archive_txn_fn)(mv_instance *inst, void *opaque, GError **error);
int mv_archive_in_transaction(mv_instance *inst, mv_archive_txn_fn fn, void *opaque, GError **error);

/* Runs sql with its one text parameter bound to name (a stored user name);
 * what names the statement in errors. */
int mv_archive_exec_for_user(mv_instance *inst, const char *sql, const char *name, const char *what,
                             GError **error);
/* true when s (valid UTF-8) holds a control character. */
bool mv_archive_has_control(const char *s);
/* Fails with MV_ERR_INVALID when bits holds a bit no privilege of kind has. */
int mv_archive_check_bits(mv_privset_kind kind, const char *arg_name, unsigned bits, GError **error);

/* ---- user_names.c ---- */

/* The stored name of the user name means, or NULL (no error) when there is
 * none; cheap index probes first, a scan only as the last resort. */
int mv_archive_resolve_name(mv_instance *inst, const char *name, char **stored_r, GError **error);

/* ---- passwords.c ---- */

/* Fails with MV_ERR_INVALID unless password is 1 to 4096 bytes of UTF-8;
 * the message never names the password. */
int mv_archive_password_check(const char *password, GError **error);
/* An Argon2id hash of password (at most one hash per CPU at a time). */
int mv_archive_password_hash(const char *password, char **hash_r, GError **error);
/* Whether password matches hash; a NULL or unusable hash costs the same
 * work against a dummy hash and gives false. */
bool mv_archive_password_verify(const char *hash, const char *password);
/* Checks password (and the password policy when compliance turns it on)
 * and hashes it. */
int mv_archive_new_password_hash(mv_instance *inst, const char *user_name, const char *password, char **hash_r,
                                 GError **error);
/* A random password for the first administrator; free with
 * mv_archive_free_secret. */
char *mv_archive_random_password(void);
/* Wipes and frees a password or hash (NULL allowed). */
void mv_archive_free_secret(char *secret);

/* ---- grants.c ---- */

/* A user's folder grants (mv_folder_grant*, ordered by folder), for
 * access.c; name is the stored name. */
GPtrArray *mv_archive_folder_grants(mv_instance *inst, const char *name, GError **error);


#endif
