/* archive: the instance — one data directory holding master.sqlite (the list
 * of stores and their wrapped keys, settings; users and the audit log come in
 * later issues), the master key file, and the archive stores.
 *
 * Archives (one per user, e.g. "john.doe") and their folders live inside
 * stores; an archive spans every store it has mail in. */
#ifndef MV_ARCHIVE_H
#define MV_ARCHIVE_H

#include "base/base.h"
#include "store/store.h"

#define MV_INSTANCE_FORMAT_VERSION 1

typedef struct mv_instance mv_instance;

/* Progress sink of long-running actions: percent 0..100 or -1 if unknown. */
typedef void (*mv_progress_cb)(void *opaque, int percent, const char *text);

typedef struct mv_store_info {
	int id;
	char *name;
	char *state;          /* requested state: current | normal | writeProtected | disabled */
	char *type;           /* "FileSystemInternal" */
	mv_store_paths paths; /* absolute */
	char *error;          /* NULL, or why the store cannot be opened now (GetStores
	                         then shows it in an error state with this reason) */
	bool locked;          /* belongs to another instance: needs UnlockStore */
} mv_store_info;

/* Creates a new instance in data_dir (created if missing; refused if it
 * already holds one).  *recovery_key_r receives the recovery key, which is
 * not stored anywhere: the caller shows it once. */
int mv_instance_init(const char *data_dir, char **recovery_key_r, GError **error);
mv_instance *mv_instance_open(const char *data_dir, GError **error);
void mv_instance_close(mv_instance **inst);
const char *mv_instance_data_dir(const mv_instance *inst);

/* Stores known to the instance, in id order (array of mv_store_info*). */
GPtrArray *mv_instance_stores(mv_instance *inst, GError **error);
void mv_store_info_free(mv_store_info *info);
/* Opens a store by id with its data key unwrapped by the master key. */
mv_store *mv_instance_open_store(mv_instance *inst, int store_id, mv_store_mode mode, GError **error);
/* A store's data key (for work on a store that cannot be opened, such as
 * RecoverStore without a db).  The caller wipes it. */
int mv_instance_store_key(mv_instance *inst, int store_id, uint8_t key_r[MV_KEY_BYTES], GError **error);
/* Instance settings (master.sqlite), text values; *value_r NULL if unset. */
int mv_instance_get_setting(mv_instance *inst, const char *key, char **value_r, GError **error);
int mv_instance_set_setting(mv_instance *inst, const char *key, const char *value, GError **error);
/* The store in state current. */
int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error);

/* One store's entry, or NULL with MV_ERR_NOT_FOUND. */
mv_store_info *mv_instance_store_info(mv_instance *inst, int store_id, GError **error);
/* Fails with MV_ERR_STATE unless the store exists and its state allows
 * modifying its content (current or normal, not locked, no error). */
int mv_instance_require_modifiable(mv_instance *inst, int store_id, GError **error);

/* ---- store registry (AttachStore, CreateStore, ...) ------------------------
 * paths members may be NULL: all NULL = <data>/stores/<name>/{db,content,index};
 * content or index NULL = the database directory.  Paths inside the data
 * directory are kept relative to it.  state NULL = "normal".  Making a store
 * current makes the previous current one normal (exactly one is current). */
int mv_instance_create_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error);
/* Registers an existing store's directories.  A store of another instance
 * is registered locked until mv_instance_unlock_store. */
int mv_instance_attach_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error);
/* Forgets a store; its files stay where they are, openable elsewhere with
 * the recovery key.  The current store cannot be detached. */
int mv_instance_detach_store(mv_instance *inst, int store_id, GError **error);
int mv_instance_rename_store(mv_instance *inst, int store_id, const char *name, GError **error);
/* New directories for a store whose files the admin has moved there. */
int mv_instance_set_store_paths(mv_instance *inst, int store_id, const mv_store_paths *paths, GError **error);
int mv_instance_set_store_state(mv_instance *inst, int store_id, const char *state, GError **error);
/* Opens a foreign store's key with the other instance's recovery key and
 * takes it over (rewrapped with this instance's keys).  A wrong key changes
 * nothing and fails with MV_ERR_INVALID. */
int mv_instance_unlock_store(mv_instance *inst, int store_id, const char *recovery_key, GError **error);
/* Replaces the master key and rewraps every store key; no content is rewritten.
 * Crash-safe: either key opens every store at every instant. */
int mv_instance_renew_master_key(mv_instance *inst, GError **error);
/* VACUUM of master.sqlite. */
int mv_instance_compact_master(mv_instance *inst, GError **error);

/* Automatic store creation (Get/SetStoreAutoCreateConfiguration). */
typedef struct mv_autocreate_config {
	int64_t size_threshold;  /* messages; 0 = off */
	char *database_base;     /* directories under which new stores are made */
	char *content_base;
	char *index_base;
} mv_autocreate_config;
void mv_autocreate_config_clear(mv_autocreate_config *c);
int mv_instance_get_autocreate(mv_instance *inst, mv_autocreate_config *c_r, GError **error);
int mv_instance_set_autocreate(mv_instance *inst, const mv_autocreate_config *c, GError **error);
/* Creates a store under the configured base directories (data directory's
 * stores/ when unset), named after the date, and makes it current. */
int mv_instance_auto_create_store(mv_instance *inst, int *id_r, GError **error);

/* CreateBackup: a consistent copy of master.sqlite, master.key and every
 * store (db and index via SQLite's online backup, index before db; segments
 * up to their committed length) into dir, usable while imports run.
 * mv_instance_restore copies a backup into an empty data directory. */
int mv_instance_backup(mv_instance *inst, const char *dir, bool exclude_index,
                       mv_progress_cb progress, void *opaque, volatile gint *cancel, GError **error);
int mv_instance_restore(const char *backup_dir, const char *data_dir, GError **error);

/* Resolves the data directory: explicit, else $MAILVAULT_DATA_DIR, else ./var. */
char *mv_data_dir_resolve(const char *explicit_dir);

#endif
