/* commands/cmd_stores: the Administration API functions about archive
 * stores and the instance's keys — GetStores, CreateStore, AttachStore,
 * DetachStore, RenameStore, SetStoreProperties, SetStoreRequestedState,
 * Get/SetStoreAutoCreateConfiguration, RetryOpenStores, UnlockStore,
 * RenewMasterKey, CompactMasterDatabase and CreateBackup.
 *
 * The handlers only translate between API arguments and archive/ calls; the
 * rules live in archive/.  Only FileSystemInternal stores exist: the other
 * types of the reference are refused, and so are their server arguments
 * (databaseName, serverName, userName, password), because accepting and
 * ignoring them would leave a caller believing they took effect.
 *
 * GetStores' fields are not documented by the reference; ours are
 *   {id, name, type, requestedState, state, error, databasePath, contentPath,
 *    indexPath, size: {messages, contentBytes, databaseBytes, indexBytes} | null}
 * where state is requestedState, or "locked" (a store of another instance
 * awaiting UnlockStore) or "error" (error says why), and size is present
 * only with includeSize (null for a store that cannot be opened).
 * CreateStore and AttachStore answer with the new store's entry. */
#include "commands/commands.h"

#include <limits.h>
#include <sodium.h>
#include <string.h>

static const char *const store_types[] = { "FileSystemInternal", "SQLServer", "PostgreSQL", NULL };
static const char *const requested_states[] = { "current", "normal", "writeProtected", "disabled", NULL };
static const char *const server_args[] = { "databaseName", "serverName", "userName", "password", NULL };

/* ---- argument helpers ------------------------------------------------------------------ */

/* An optional string argument; an empty one counts as absent. */
static const char *opt_string(json_t *args, const char *name)
{
	const char *s = mv_arg_string(args, name);
	return s && *s ? s : NULL;
}

static int check_store_type(json_t *args, GError **error)
{
	const char *type = opt_string(args, "type");
	if (type && strcmp(type, "FileSystemInternal") != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED,
		            "store type %s is not supported (FileSystemInternal only; PostgreSQL comes later)", type);
		return -1;
	}
	for (size_t i = 0; server_args[i]; i++) {
		if (opt_string(args, server_args[i])) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID,
			            "%s: applies only to SQLServer and PostgreSQL stores; a FileSystemInternal store takes "
			            "databasePath, contentPath and indexPath", server_args[i]);
			return -1;
		}
	}
	return 0;
}

static int store_id_arg(mv_command_ctx *ctx, json_t *args, int *id_r, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0);
	mv_archive_store *info = NULL;
	if (id >= 1 && id <= INT_MAX)
		info = mv_instance_store_info(ctx->inst, (int)id, NULL);
	if (!info) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "id %" G_GINT64_FORMAT ": no such store", id);
		return -1;
	}
	mv_archive_store_free(info);
	*id_r = (int)id;
	return 0;
}

static mv_store_paths paths_arg(json_t *args)
{
	mv_store_paths p = {
		.db_dir = (char *)opt_string(args, "databasePath"),
		.content_dir = (char *)opt_string(args, "contentPath"),
		.index_dir = (char *)opt_string(args, "indexPath"),
	};
	return p;
}

/* ---- GetStores ------------------------------------------------------------------------- */

static json_t *store_size(mv_instance *inst, const mv_archive_store *info)
{
	if (info->error)
		return json_null();
	GError *err = NULL;
	mv_store_stats st = { 0 };
	mv_store *s = mv_instance_open_store(inst, info->id, MV_STORE_READ, &err);
	json_t *size = NULL;
	if (s && mv_store_get_stats(s, &st, &err) == 0)
		size = json_pack("{s:I, s:I, s:I, s:I}", "messages", (json_int_t)st.messages, "contentBytes",
		                 (json_int_t)st.disk_content, "databaseBytes", (json_int_t)st.disk_db, "indexBytes",
		                 (json_int_t)st.disk_index);
	if (err) {
		mv_log_warn("store %d (%s): size not available: %s", info->id, info->name, err->message);
		g_error_free(err);
	}
	mv_store_close(&s);
	return size ? size : json_null();
}

static json_t *store_json(mv_instance *inst, const mv_archive_store *info, bool include_size)
{
	const char *state = info->locked ? "locked" : info->error ? "error" : info->state;
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "id", info->id, "name", info->name,
	                      "type", info->type, "requestedState", info->state, "state", state, "error",
	                      info->error ? json_string(info->error) : json_null(), "databasePath", info->paths.db_dir,
	                      "contentPath", info->paths.content_dir, "indexPath", info->paths.index_dir);
	if (o && include_size)
		json_object_set_new(o, "size", store_size(inst, info));
	return o;
}

static json_t *one_store_json(mv_instance *inst, int id, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(inst, id, error);
	if (!info)
		return NULL;
	json_t *o = store_json(inst, info, false);
	mv_archive_store_free(info);
	return o;
}

static json_t *get_stores(mv_command_ctx *ctx, json_t *args, GError **error)
{
	bool include_size = mv_arg_bool(args, "includeSize", true);
	GPtrArray *stores = mv_instance_stores(ctx->inst, error);
	if (!stores)
		return NULL;
	json_t *list = json_array();
	for (guint i = 0; i < stores->len; i++)
		json_array_append_new(list, store_json(ctx->inst, stores->pdata[i], include_size));
	g_ptr_array_free(stores, TRUE);
	return list;
}

/* ---- CreateStore, AttachStore, DetachStore, RenameStore --------------------------------------- */

static json_t *create_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (check_store_type(args, error) < 0)
		return NULL;
	mv_store_paths paths = paths_arg(args);
	int id = 0;
	if (mv_instance_create_store(ctx->inst, mv_arg_string(args, "name"), &paths,
	                             opt_string(args, "requestedState"), &id, error) < 0)
		return NULL;
	mv_command_log(ctx, "store %d (%s) created", id, mv_arg_string(args, "name"));
	return one_store_json(ctx->inst, id, error);
}

static json_t *attach_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (check_store_type(args, error) < 0)
		return NULL;
	mv_store_paths paths = paths_arg(args);
	int id = 0;
	if (mv_instance_attach_store(ctx->inst, mv_arg_string(args, "name"), &paths,
	                             opt_string(args, "requestedState"), &id, error) < 0)
		return NULL;
	json_t *o = one_store_json(ctx->inst, id, error);
	if (o && strcmp(json_string_value(json_object_get(o, "state")), "locked") == 0)
		mv_command_log(ctx, "store %d (%s) is locked: it belongs to another instance; UnlockStore with that "
		               "instance's recovery key opens it", id, mv_arg_string(args, "name"));
	else if (o)
		mv_command_log(ctx, "store %d (%s) attached", id, mv_arg_string(args, "name"));
	return o;
}

static json_t *detach_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int id;
	if (store_id_arg(ctx, args, &id, error) < 0 || mv_instance_detach_store(ctx->inst, id, error) < 0)
		return NULL;
	mv_command_log(ctx, "store %d detached; its files are left where they are", id);
	return json_null();
}

static json_t *rename_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int id;
	if (store_id_arg(ctx, args, &id, error) < 0 ||
	    mv_instance_rename_store(ctx->inst, id, mv_arg_string(args, "name"), error) < 0)
		return NULL;
	return json_null();
}

/* ---- SetStoreProperties, SetStoreRequestedState ------------------------------------------ */

/* Paths not given keep their current value. */
static json_t *set_store_properties(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int id;
	if (store_id_arg(ctx, args, &id, error) < 0 || check_store_type(args, error) < 0)
		return NULL;
	mv_store_paths given = paths_arg(args);
	if (!given.db_dir && !given.content_dir && !given.index_dir)
		return json_null();
	mv_archive_store *info = mv_instance_store_info(ctx->inst, id, error);
	if (!info)
		return NULL;
	mv_store_paths paths = {
		.db_dir = given.db_dir ? given.db_dir : info->paths.db_dir,
		.content_dir = given.content_dir ? given.content_dir : info->paths.content_dir,
		.index_dir = given.index_dir ? given.index_dir : info->paths.index_dir,
	};
	int rc = mv_instance_set_store_paths(ctx->inst, id, &paths, error);
	mv_archive_store_free(info);
	return rc == 0 ? json_null() : NULL;
}

static json_t *set_store_requested_state(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int id;
	if (store_id_arg(ctx, args, &id, error) < 0)
		return NULL;
	/* Required by the table (the reference marks it optional, but a state
	 * change without a state means nothing). */
	if (mv_instance_set_store_state(ctx->inst, id, mv_arg_string(args, "requestedState"), error) < 0)
		return NULL;
	return json_null();
}

/* ---- automatic store creation ---------------------------------------------------------------- */

static const char *const autocreate_dirs[] = { "databaseBaseDirectory", "contentBaseDirectory",
	                                           "indexBaseDirectory", NULL };

static json_t *get_autocreate(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_autocreate_config c = { 0 };
	if (mv_instance_get_autocreate(ctx->inst, &c, error) < 0)
		return NULL;
	json_t *o = json_pack("{s:o, s:s, s:s, s:s}", "sizeThreshold",
	                      c.size_threshold > 0 ? json_integer(c.size_threshold) : json_null(),
	                      "databaseBaseDirectory", c.database_base ? c.database_base : "",
	                      "contentBaseDirectory", c.content_base ? c.content_base : "",
	                      "indexBaseDirectory", c.index_base ? c.index_base : "");
	mv_autocreate_config_clear(&c);
	return o;
}

static int config_dir(json_t *config, const char *field, char **dir_r, GError **error)
{
	json_t *v = json_object_get(config, field);
	*dir_r = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.%s: expected a string or null", field);
		return -1;
	}
	if (*json_string_value(v))
		*dir_r = g_strdup(json_string_value(v));
	return 0;
}

static int parse_autocreate(json_t *config, mv_autocreate_config *c, GError **error)
{
	if (!json_is_object(config)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config: expected a JSON object {\"sizeThreshold\", "
		            "\"databaseBaseDirectory\", \"contentBaseDirectory\", \"indexBaseDirectory\"}");
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(config, key, v) {
		bool known = strcmp(key, "sizeThreshold") == 0 || g_strv_contains(autocreate_dirs, key);
		if (!known) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.%.100s: unknown field (fields: sizeThreshold, "
			            "databaseBaseDirectory, contentBaseDirectory, indexBaseDirectory)", key);
			return -1;
		}
	}
	json_t *threshold = json_object_get(config, "sizeThreshold");
	if (threshold && !json_is_null(threshold) && !json_is_integer(threshold)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.sizeThreshold: expected an integer or null");
		return -1;
	}
	c->size_threshold = json_is_integer(threshold) ? json_integer_value(threshold) : 0;
	if (c->size_threshold < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.sizeThreshold %" G_GINT64_FORMAT
		            ": must not be negative", c->size_threshold);
		return -1;
	}
	if (config_dir(config, "databaseBaseDirectory", &c->database_base, error) < 0 ||
	    config_dir(config, "contentBaseDirectory", &c->content_base, error) < 0 ||
	    config_dir(config, "indexBaseDirectory", &c->index_base, error) < 0)
		return -1;
	return 0;
}

static json_t *set_autocreate(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_autocreate_config c = { 0 };
	int rc = parse_autocreate(json_object_get(args, "config"), &c, error);
	if (rc == 0)
		rc = mv_instance_set_autocreate(ctx->inst, &c, error);
	if (rc < 0)
		g_prefix_error(error, "SetStoreAutoCreateConfiguration: ");
	mv_autocreate_config_clear(&c);
	return rc == 0 ? json_null() : NULL;
}

/* ---- RetryOpenStores, UnlockStore, RenewMasterKey, CompactMasterDatabase -------------------------- */

/* Stores are looked at afresh on every use, so retrying is looking again
 * and saying what is still wrong. */
static json_t *retry_open_stores(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *stores = mv_instance_stores(ctx->inst, error);
	if (!stores)
		return NULL;
	for (guint i = 0; i < stores->len; i++) {
		const mv_archive_store *info = stores->pdata[i];
		if (info->error)
			mv_command_log(ctx, "store %d (%s) cannot be opened: %s", info->id, info->name, info->error);
	}
	g_ptr_array_free(stores, TRUE);
	return json_null();
}

static json_t *unlock_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int id;
	if (store_id_arg(ctx, args, &id, error) < 0 ||
	    mv_instance_unlock_store(ctx->inst, id, mv_arg_string(args, "passphrase"), error) < 0)
		return NULL;
	mv_command_log(ctx, "store %d unlocked: its key is now wrapped by this instance's keys", id);
	return json_null();
}

static json_t *renew_master_key(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (mv_instance_renew_master_key(ctx->inst, error) < 0)
		return NULL;
	mv_command_log(ctx, "master key renewed; every store key was rewrapped");
	return json_null();
}

/* The answer holds the new key: shown once, like init's.  The audit entry
 * says what it means for the keys older entries may hold. */
static json_t *renew_recovery_key(mv_command_ctx *ctx, json_t *args, GError **error)
{
	char *key = NULL;
	if (mv_instance_renew_recovery_key(ctx->inst, &key, error) < 0)
		return NULL;
	mv_command_audit_note(ctx, "recovery key renewed: a recovery key typed into any earlier entry no longer opens "
	                      "this instance's stores (backups and store copies made before still do)");
	mv_command_log(ctx, "recovery key renewed; write the new one down now, it is shown only once. Backups made "
	               "before this keep needing the previous recovery key.");
	json_t *result = json_pack("{s:s}", "recoveryKey", key);
	sodium_memzero(key, strlen(key));
	g_free(key);
	return result;
}

static json_t *compact_master(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return mv_instance_compact_master(ctx->inst, error) < 0 ? NULL : json_null();
}

/* ---- CreateBackup ---------------------------------------------------------------------------------- */

static json_t *create_backup(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *path = mv_arg_string(args, "path");
	mv_task task = { .progress = ctx->progress, .opaque = ctx->progress_opaque, .cancel = ctx->cancel };
	if (mv_instance_backup(ctx->inst, path, mv_arg_bool(args, "excludeSearchIndexes", false), &task, error) < 0)
		return NULL;
	mv_command_log(ctx, "backup written to %s", path);
	return json_null();
}

/* ---- the table ------------------------------------------------------------------------------------------ */

#define NO_ARGS ((const mv_command_arg[]){ { .name = NULL } })

#define LOCATION_ARGS \
	{ "databaseName", MV_ARG_STRING, true, NULL }, \
	{ "databasePath", MV_ARG_STRING, true, NULL }, \
	{ "contentPath", MV_ARG_STRING, true, NULL }, \
	{ "indexPath", MV_ARG_STRING, true, NULL }, \
	{ "serverName", MV_ARG_STRING, true, NULL }, \
	{ "userName", MV_ARG_STRING, true, NULL }, \
	{ "password", MV_ARG_SECRET, true, NULL }

static const mv_command_arg get_stores_args[] = {
	{ "includeSize", MV_ARG_BOOL, true, NULL },
	{ .name = NULL },
};

static const mv_command_arg create_store_args[] = {
	{ "name", MV_ARG_STRING, false, NULL },
	{ "type", MV_ARG_STRING, true, store_types },
	LOCATION_ARGS,
	{ "requestedState", MV_ARG_STRING, true, requested_states },
	{ .name = NULL },
};

static const mv_command_arg attach_store_args[] = {
	{ "name", MV_ARG_STRING, false, NULL },
	{ "type", MV_ARG_STRING, false, store_types },
	LOCATION_ARGS,
	{ "requestedState", MV_ARG_STRING, true, requested_states },
	{ .name = NULL },
};

static const mv_command_arg id_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg rename_store_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "name", MV_ARG_STRING, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg set_store_properties_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "type", MV_ARG_STRING, true, store_types },
	LOCATION_ARGS,
	{ .name = NULL },
};

static const mv_command_arg set_store_requested_state_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "requestedState", MV_ARG_STRING, false, requested_states },
	{ .name = NULL },
};

static const mv_command_arg set_autocreate_args[] = {
	{ "config", MV_ARG_JSON, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg unlock_store_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "passphrase", MV_ARG_SECRET, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg create_backup_args[] = {
	{ "path", MV_ARG_STRING, false, NULL },
	{ "excludeSearchIndexes", MV_ARG_BOOL, true, NULL },
	{ .name = NULL },
};

const mv_command mv_commands_stores[] = {
	{ "AttachStore", attach_store_args, "admin", false, attach_store, "Attach existing archive store.", NULL },
	{ "CompactMasterDatabase", NO_ARGS, "admin", false, compact_master, "Compact master database.", NULL },
	{ "CreateBackup", create_backup_args, "admin", true, create_backup, "Create a backup of the entire archive.", NULL },
	{ "CreateStore", create_store_args, "admin", false, create_store, "Create and attach a new archive store.", NULL },
	{ "DetachStore", id_args, "admin", false, detach_store, "Detach an archive store.", NULL },
	{ "GetStoreAutoCreateConfiguration", NO_ARGS, "admin", false, get_autocreate,
	  "Get automatic archive store creation settings.", NULL },
	{ "GetStores", get_stores_args, "admin", false, get_stores, "Get list of archive stores.", NULL },
	{ "RenameStore", rename_store_args, "admin", false, rename_store, "Rename archive store.", NULL },
	{ "RenewMasterKey", NO_ARGS, "admin", false, renew_master_key,
	  "Renews the master key which is used to encrypt the encryption keys.", NULL },
	{ "RenewRecoveryKey", NO_ARGS, "admin", false, renew_recovery_key,
	  "Replaces the recovery key (the new one is in the answer, shown once); the previous one no longer opens this "
	  "instance's stores.", NULL },
	{ "RetryOpenStores", NO_ARGS, "admin", false, retry_open_stores, "Retry opening stores that failed previously.", NULL },
	{ "SetStoreAutoCreateConfiguration", set_autocreate_args, "admin", false, set_autocreate,
	  "Set configuration for automatic archive store creation.", NULL },
	{ "SetStoreProperties", set_store_properties_args, "admin", false, set_store_properties,
	  "Set properties of archive store.", NULL },
	{ "SetStoreRequestedState", set_store_requested_state_args, "admin", false, set_store_requested_state,
	  "Set state of archive store.", NULL },
	{ "UnlockStore", unlock_store_args, "admin", false, unlock_store, "Unlock a foreign archive store.", NULL },
	{ .name = NULL },
};
