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

typedef struct mv_store_info {
	int id;
	char *name;
	char *state;          /* current | normal | writeProtected | disabled */
	mv_store_paths paths; /* absolute */
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
/* The store in state current. */
int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error);

/* Resolves the data directory: explicit, else $MAILVAULT_DATA_DIR, else ./var. */
char *mv_data_dir_resolve(const char *explicit_dir);

#endif
