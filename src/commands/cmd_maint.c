/* commands/cmd_maint: the Administration API functions that check, repair
 * and rewrite stores — VerifyStore(s), CompactStore, RecoverStore,
 * RecreateRecoveryRecords, RepairStoreDatabase, MaintainFileSystemDatabases,
 * UpgradeStore(s), GetStoreIndexes, RebuildStoreIndex and the
 * select-then-rebuild pair, RefreshAllStoreStatistics.
 *
 * Each handler resolves the store through the instance (state, lock, key)
 * and hands the work to store/ (maint.c, compact.c); progress and cancellation pass
 * through mv_task so the same code serves the shell, the HTTP API and
 * jobs. */
#include "commands/stores_in_use.h"
#include "ingest/ingest.h"
#include "search/search.h"

#include <sodium.h>
#include <string.h>

static void task_progress(void *opaque, int percent, const char *text)
{
	mv_command_ctx *ctx = opaque;
	mv_command_progress(ctx, percent, "%s", text);
}

static mv_task task_of(mv_command_ctx *ctx)
{
	return (mv_task){ .progress = task_progress, .opaque = ctx, .cancel = ctx->cancel };
}

/* A store open for maintenance: it must exist and not be disabled. */
static mv_store *open_for_maintenance(mv_command_ctx *ctx, int64_t id, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(ctx->inst, (int)id, error);
	if (!info)
		return NULL;
	mv_store *s = NULL;
	if (info->error)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) cannot be opened: %s", info->id, info->name, info->error);
	else if (strcmp(info->state, "disabled") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is disabled", info->id, info->name);
	else
		s = mv_instance_open_store(ctx->inst, (int)id, MV_STORE_WRITE, error);
	mv_archive_store_free(info);
	return s;
}

static bool id_in_range(int64_t id, GError **error)
{
	if (id > 0 && id <= INT32_MAX)
		return true;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store id %lld is out of range", (long long)id);
	return false;
}

/* ---- verify ---------------------------------------------------------------------------- */

/* Names a store holds that the rules refuse now — an archive name with a
 * '/' that reads as a folder path or a control character, an archive or
 * folder name not in NFC (one spelling per name): stores written before
 * the rules came in.  They join the report's problems; renaming is the
 * admin's call, with MoveFolder. */
typedef struct name_report {
	json_t *report;
	GHashTable *seen;
	int64_t found;
} name_report;

static void name_problem(name_report *nr, const char *kind, const char *key, const char *detail)
{
	if (g_hash_table_contains(nr->seen, key))
		return;
	g_hash_table_add(nr->seen, g_strdup(key));
	nr->found++;
	json_t *problems = json_object_get(nr->report, "problems");
	if (json_array_size(problems) < 1000)   /* the count stays exact, as the store's own problems' */
		json_array_append_new(problems, json_pack("{s:s, s:s}", "kind", kind, "detail", detail));
}

static void check_folder_names(name_report *nr, const mv_folder_stats *f)
{
	GError *why = NULL;
	if (mv_archive_name_check(f->archive, &why) < 0) {
		name_problem(nr, "archiveName", f->archive, why->message);
		g_error_free(why);
		return;
	}
	const char *which = !mv_name_is_canonical(f->archive) ? f->archive
	                    : !mv_name_is_canonical(f->path) ? f->path : NULL;
	if (!which)
		return;
	char *shown = mv_utf8_sanitize(which, -1);
	char *detail = g_strdup_printf("%s '%s' (archive '%s') is not in Unicode NFC: a folder privilege on another "
	                               "spelling of it would not match", which == f->archive ? "archive" : "folder",
	                               shown, f->archive);
	char *key = which == f->archive ? g_strdup(f->archive) : g_strconcat(f->archive, "\x1f", f->path, NULL);
	name_problem(nr, "nameNotNfc", key, detail);
	g_free(key);
	g_free(detail);
	g_free(shown);
}

static int report_names(mv_store *s, json_t *report, GError **error)
{
	GPtrArray *folders = NULL;
	if (mv_store_list_folders(s, NULL, &folders, error) < 0)
		return -1;
	name_report nr = { .report = report, .seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL) };
	for (guint i = 0; i < folders->len; i++)
		check_folder_names(&nr, folders->pdata[i]);
	g_hash_table_destroy(nr.seen);
	g_ptr_array_free(folders, TRUE);
	if (nr.found) {
		json_object_set_new(report, "problemCount",
		                    json_integer(json_integer_value(json_object_get(report, "problemCount")) + nr.found));
		json_object_set_new(report, "clean", json_false());
	}
	return 0;
}

static json_t *verify_one(mv_command_ctx *ctx, int64_t id, bool with_index, GError **error)
{
	if (!id_in_range(id, error))
		return NULL;
	mv_store *s = open_for_maintenance(ctx, id, error);
	if (!s)
		return NULL;
	mv_task t = task_of(ctx);
	json_t *report = NULL;
	int rc = mv_store_verify(s, with_index, &t, &report, error);
	if (rc == 0 && report_names(s, report, error) < 0) {
		json_decref(report);
		rc = -1;
	}
	mv_store_close(&s);
	if (rc < 0)
		return NULL;
	json_t *clean = json_object_get(report, "clean");
	mv_command_log(ctx, "store %lld: %s (%lld records, %lld problems, %zu damaged messages)", (long long)id,
	               json_is_true(clean) ? "clean" : "PROBLEMS FOUND",
	               (long long)json_integer_value(json_object_get(report, "recordsScanned")),
	               (long long)json_integer_value(json_object_get(report, "problemCount")),
	               json_array_size(json_object_get(report, "damagedMessageIds")));
	return report;
}

static json_t *verify_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return verify_one(ctx, mv_arg_number(args, "id", 0), mv_arg_bool(args, "includeIndexes", true), error);
}

static json_t *verify_stores(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GArray *ids = mv_store_ids_in_use(ctx, true, error);
	if (!ids)
		return NULL;
	json_t *list = json_array();
	for (guint i = 0; i < ids->len && list; i++) {
		json_t *r = verify_one(ctx, g_array_index(ids, int, i), mv_arg_bool(args, "includeIndexes", true), error);
		if (r)
			json_array_append_new(list, r);
		else
			json_decref(list), list = NULL;
	}
	g_array_free(ids, TRUE);
	return list;
}

/* ---- the rewriting ones ------------------------------------------------------------------- */

typedef int (*store_op)(mv_store *s, const mv_task *t, json_t **report_r, GError **error);

static json_t *run_on_store(mv_command_ctx *ctx, json_t *args, store_op op, const char *what, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0);
	if (!id_in_range(id, error))
		return NULL;
	mv_store *s = open_for_maintenance(ctx, id, error);
	if (!s)
		return NULL;
	mv_task t = task_of(ctx);
	json_t *report = NULL;
	int rc = op(s, &t, &report, error);
	mv_store_close(&s);
	if (rc < 0)
		return NULL;
	mv_command_log(ctx, "store %lld: %s done", (long long)id, what);
	return report ? report : json_null();
}

static json_t *compact_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	/* Compaction drops what deleted messages left in content/: under a
	 * legal hold even that must stay. */
	if (mv_legal_hold_check(ctx->inst, "CompactStore", error) < 0)
		return NULL;
	return run_on_store(ctx, args, mv_store_compact, "compaction", error);
}

static json_t *recreate_records(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return run_on_store(ctx, args, mv_store_recreate_records, "recreating recovery records", error);
}

static int repair_op(mv_store *s, const mv_task *t, json_t **report_r, GError **error)
{
	/* Names not in NFC (a store written before names were stored so)
	 * cannot be named in an argument any more: repaired here too. */
	json_t *names = NULL;
	if (mv_store_repair_db(s, report_r, error) < 0)
		return -1;
	if (mv_store_normalize_names(s, &names, error) < 0) {
		json_decref(*report_r);
		*report_r = NULL;
		return -1;
	}
	json_object_update(*report_r, names);
	json_decref(names);
	return 0;
}

static json_t *repair_store_database(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return run_on_store(ctx, args, repair_op, "database repair", error);
}

static int rebuild_op(mv_store *s, const mv_task *t, json_t **report_r, GError **error)
{
	return mv_store_rebuild_index(s, t, error);
}

static json_t *rebuild_store_index(mv_command_ctx *ctx, json_t *args, GError **error)
{
	/* One index per store: a folder's entries are rebuilt with all of them. */
	const char *folder = mv_arg_string(args, "folder");
	if (folder && *folder)
		mv_command_log(ctx, "the index is kept per store, so rebuilding for %s rebuilds the whole store's index", folder);
	return run_on_store(ctx, args, rebuild_op, "index rebuild", error);
}

static json_t *recover_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0);
	if (!id_in_range(id, error))
		return NULL;
	mv_archive_store *info = mv_instance_store_info(ctx->inst, (int)id, error);
	if (!info)
		return NULL;
	json_t *report = NULL;
	uint8_t key[MV_KEY_BYTES];
	if (!info->error && strcmp(info->state, "disabled") != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is %s: RecoverStore needs it disabled"
		            " (SetStoreRequestedState --id=%d --requestedState=disabled) or in an error state",
		            info->id, info->name, info->state, info->id);
	} else if (mv_arg_present(args, "encryptionKey")) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "encryptionKey: store keys are kept wrapped by the instance;"
		            " for a store of another instance use UnlockStore with that instance's recovery key");
	} else if (mv_instance_store_key(ctx->inst, info->id, key, error) == 0) {
		mv_task t = task_of(ctx);
		if (mv_store_recover(info->id, &info->paths, key, mv_arg_bool(args, "recoverDeletedMessages", false), &t,
		                     &report, error) == 0)
			mv_command_log(ctx, "store %d: %lld messages recovered from content", info->id,
			               (long long)json_integer_value(json_object_get(report, "messagesRecovered")));
		/* The rebuilt store carries its keys as it did, even if its keys
		 * file was among what was lost. */
		if (report && mv_instance_store_rewrite_own_values(ctx->inst, info->id, error) < 0)
			g_clear_pointer(&report, json_decref);
	}
	sodium_memzero(key, sizeof key);
	mv_archive_store_free(info);
	return report;
}

static json_t *maintain_databases(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GArray *ids = mv_store_ids_in_use(ctx, true, error);
	if (!ids)
		return NULL;
	int rc = 0;
	for (guint i = 0; i < ids->len && rc == 0; i++) {
		mv_store *s = mv_instance_open_store(ctx->inst, g_array_index(ids, int, i), MV_STORE_WRITE, error);
		rc = s ? mv_store_maintain_db(s, error) : -1;
		mv_store_close(&s);
		if (rc == 0)
			mv_command_log(ctx, "store %d: database maintenance done", g_array_index(ids, int, i));
	}
	g_array_free(ids, TRUE);
	return rc == 0 ? json_null() : NULL;
}

/* ---- upgrade ---------------------------------------------------------------------------------- */

/* An index of an older format is rebuilt here rather than by the store's
 * next writer, which may never come (a full store that is no longer
 * current keeps its index as it is); readers get the new format's answers
 * from now on.  A disabled store's waits until it is enabled and written. */
static int upgrade_index(mv_command_ctx *ctx, const mv_archive_store *info, GError **error)
{
	if (info->error || strcmp(info->state, "disabled") == 0) {
		mv_command_log(ctx, "store %d (%s): %s, its index is left as it is", info->id, info->name,
		               info->error ? "cannot be opened" : "disabled");
		return 0;
	}
	mv_store *s = open_for_maintenance(ctx, info->id, error);
	if (!s)
		return -1;
	int64_t format = 0;
	int rc = mv_store_index_format(s, &format, error);
	if (rc == 0 && format != MV_INDEX_FORMAT) {
		mv_task t = task_of(ctx);
		rc = mv_store_rebuild_index(s, &t, error);
		if (rc == 0)
			mv_command_log(ctx, "store %d (%s): index rebuilt from format %lld to %d", info->id, info->name,
			               (long long)format, MV_INDEX_FORMAT);
	}
	mv_store_close(&s);
	return rc;
}

static int upgrade_one(mv_command_ctx *ctx, int id, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(ctx->inst, id, error);
	if (!info)
		return -1;
	int from = 0;
	uint8_t key[MV_KEY_BYTES];
	int rc = mv_instance_store_key(ctx->inst, id, key, error);
	if (rc == 0)
		rc = mv_store_upgrade(&info->paths, key, &from, error);
	sodium_memzero(key, sizeof key);
	if (rc == 0 && from != MV_STORE_FORMAT_VERSION)
		mv_command_log(ctx, "store %d (%s): upgraded from format %d to %d", id, info->name, from, MV_STORE_FORMAT_VERSION);
	else if (rc == 0)
		mv_command_log(ctx, "store %d (%s): already at format %d", id, info->name, from);
	if (rc == 0)
		rc = upgrade_index(ctx, info, error);
	mv_archive_store_free(info);
	return rc;
}

static json_t *upgrade_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0);
	if (!id_in_range(id, error) || upgrade_one(ctx, (int)id, error) < 0)
		return NULL;
	return json_null();
}

static json_t *upgrade_stores(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	int rc = 0;
	for (guint i = 0; i < infos->len && rc == 0; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (info->locked)
			continue;
		rc = upgrade_one(ctx, info->id, error);
	}
	g_ptr_array_free(infos, TRUE);
	return rc == 0 ? json_null() : NULL;
}

/* ---- indexes ------------------------------------------------------------------------------------ */

/* Stores selected for rebuild live in the instance settings, so that the
 * selection survives between the two calls (and a restart). */
#define REBUILD_SETTING "stores_selected_for_index_rebuild"

static json_t *get_store_indexes(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	int64_t only = mv_arg_number(args, "id", 0);
	json_t *list = json_array();
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (only && info->id != only)
			continue;
		char *file = mv_store_index_file(&info->paths);
		json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:I, s:b}", "storeId", info->id, "name", "full text",
		                                      "path", file, "size", (json_int_t)mv_disk_usage(info->paths.index_dir),
		                                      "available", info->error == NULL));
		g_free(file);
	}
	g_ptr_array_free(infos, TRUE);
	return list;
}

static json_t *select_all_for_rebuild(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GArray *ids = mv_store_ids_in_use(ctx, true, error);
	if (!ids)
		return NULL;
	GString *text = g_string_new(NULL);
	for (guint i = 0; i < ids->len; i++)
		g_string_append_printf(text, "%s%d", i ? "," : "", g_array_index(ids, int, i));
	int rc = mv_instance_set_setting(ctx->inst, REBUILD_SETTING, text->str, error);
	mv_command_log(ctx, "selected for rebuild: stores %s", text->str);
	g_string_free(text, TRUE);
	g_array_free(ids, TRUE);
	return rc == 0 ? json_null() : NULL;
}

static json_t *rebuild_selected(mv_command_ctx *ctx, json_t *args, GError **error)
{
	char *selected = NULL;
	if (mv_instance_get_setting(ctx->inst, REBUILD_SETTING, &selected, error) < 0)
		return NULL;
	char **ids = g_strsplit(selected ? selected : "", ",", -1);
	int rc = 0;
	for (char **p = ids; *p && rc == 0; p++) {
		if (!**p)
			continue;
		int id = atoi(*p);
		mv_store *s = open_for_maintenance(ctx, id, error);
		mv_task t = task_of(ctx);
		rc = s ? mv_store_rebuild_index(s, &t, error) : -1;
		mv_store_close(&s);
		if (rc == 0)
			mv_command_log(ctx, "store %d: index rebuilt", id);
	}
	g_strfreev(ids);
	g_free(selected);
	if (rc == 0)
		rc = mv_instance_set_setting(ctx->inst, REBUILD_SETTING, "", error);
	return rc == 0 ? json_null() : NULL;
}

static json_t *refresh_statistics(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GArray *ids = mv_store_ids_in_use(ctx, true, error);
	if (!ids)
		return NULL;
	json_t *list = json_array();
	for (guint i = 0; i < ids->len; i++) {
		int id = g_array_index(ids, int, i);
		GError *err = NULL;
		mv_store *s = mv_instance_open_store(ctx->inst, id, MV_STORE_READ, &err);
		mv_store_stats st;
		if (s && mv_store_get_stats(s, &st, &err) == 0)
			json_array_append_new(list, json_pack("{s:i, s:I, s:I, s:I, s:I}", "storeId", id,
			                                      "messages", (json_int_t)st.messages,
			                                      "contentBytes", (json_int_t)st.disk_content,
			                                      "databaseBytes", (json_int_t)st.disk_db,
			                                      "indexBytes", (json_int_t)st.disk_index));
		if (err) {
			mv_command_log(ctx, "store %d: %s", id, err->message);
			g_error_free(err);
		}
		mv_store_close(&s);
	}
	g_array_free(ids, TRUE);
	return list;
}

/* ---- TransferStores and MergeStore ---------------------------------------------------------- */

#define TRANSFER_LIMIT INT64_C(30000000)      /* messages per store (the reference) */
#define TRANSFER_CHECKPOINT 10000             /* messages between durable checkpoints */

typedef struct transfer {
	mv_command_ctx *ctx;
	GArray *sources;          /* int store ids, in the given order */
	int target;               /* 0 = current, with auto-creation */
	int start_store;          /* startIndex */
	int64_t start_number;
	mv_ingest *ing;
	int64_t total, handed, checkpoint_store, checkpoint_number;
} transfer;

static char *resume_command(const transfer *t)
{
	GString *s = g_string_new("TransferStores --sourceStores=");
	for (guint i = 0; i < t->sources->len; i++)
		g_string_append_printf(s, "%s%d", i ? "," : "", g_array_index(t->sources, int, i));
	if (t->target)
		g_string_append_printf(s, " --targetStore=%d", t->target);
	char *id = mv_message_id_format((int)t->checkpoint_store, t->checkpoint_number);
	g_string_append_printf(s, " --startIndex=%s", id);
	g_free(id);
	return g_string_free(s, FALSE);
}

static int64_t live_count(mv_command_ctx *ctx, int id)
{
	mv_store *s = mv_instance_open_store(ctx->inst, id, MV_STORE_READ, NULL);
	mv_store_stats st = { 0 };
	int64_t n = s && mv_store_get_stats(s, &st, NULL) == 0 ? st.messages : 0;
	mv_store_close(&s);
	return n;
}

static bool parse_sources(const char *text, GArray *ids, GError **error)
{
	char **parts = g_strsplit(text, ",", -1);
	bool ok = parts[0] != NULL;
	for (char **p = parts; *p && ok; p++) {
		char *end = NULL;
		long long v = strtoll(g_strstrip(*p), &end, 10);
		ok = **p && end && !*end && v > 0 && v <= INT32_MAX;
		int id = (int)v;
		for (guint i = 0; ok && i < ids->len; i++)
			ok = g_array_index(ids, int, i) != id;
		if (ok)
			g_array_append_val(ids, id);
	}
	g_strfreev(parts);
	if (!ok)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "sourceStores: '%.100s' is not a comma-separated list of distinct store ids", text);
	return ok;
}

static int check_transfer(transfer *t, bool require_write_protected, GError **error)
{
	int64_t sum = 0;
	for (guint i = 0; i < t->sources->len; i++) {
		int id = g_array_index(t->sources, int, i);
		mv_archive_store *info = mv_instance_store_info(t->ctx->inst, id, error);
		if (!info)
			return -1;
		int rc = 0;
		if (info->error)
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "source store %d (%s) is in an error state: %s", id, info->name, info->error), rc = -1;
		else if (id == t->target)
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d cannot be both source and target", id), rc = -1;
		else if (strcmp(info->state, "current") == 0)
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "source store %d (%s) is current: make another store current first", id, info->name), rc = -1;
		else if (require_write_protected && strcmp(info->state, "writeProtected") != 0)
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "source store %d (%s) is %s; set it writeProtected first"
			            " (SetStoreRequestedState --id=%d --requestedState=writeProtected)", id, info->name, info->state, id), rc = -1;
		mv_archive_store_free(info);
		if (rc < 0)
			return -1;
		sum += live_count(t->ctx, id);
	}
	t->total = sum;
	if (t->target && mv_instance_require_modifiable(t->ctx->inst, t->target, error) < 0)
		return -1;
	if (t->target && live_count(t->ctx, t->target) + sum > TRANSFER_LIMIT) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "target store %d would hold more than %lld messages; leave out"
		            " --targetStore to let new stores be created as needed", t->target, (long long)TRANSFER_LIMIT);
		return -1;
	}
	return 0;
}

/* One source store being walked: the transfer, the store, and where the
 * first failure goes (the walk stops at it). */
typedef struct transfer_walk {
	transfer *t;
	mv_store *src;
	int id;
	GError **error;
	bool failed;
} transfer_walk;

/* Hands one message of the source to the ingest run; first, at every
 * checkpoint and on cancellation, makes what was handed in so far durable. */
static int transfer_one(const mv_store_message *m, void *opaque)
{
	transfer_walk *w = opaque;
	transfer *t = w->t;
	if (mv_command_cancelled(t->ctx) || t->handed % TRANSFER_CHECKPOINT == TRANSFER_CHECKPOINT - 1) {
		/* Everything handed in so far becomes durable: the resume point. */
		if (mv_ingest_flush(t->ing, w->error) < 0)
			return w->failed = true;
		t->checkpoint_store = w->id;
		t->checkpoint_number = m->number;
		if (mv_command_cancelled(t->ctx)) {
			g_set_error(w->error, MV_ERROR, MV_ERR_CANCELLED, "transfer cancelled");
			return w->failed = true;
		}
	}
	GByteArray *raw = NULL;
	GError *err = NULL;
	if (mv_store_read_message(w->src, m->number, &raw, &err) < 0) {
		char *id = mv_message_id_format(w->id, m->number);
		mv_command_log(t->ctx, "message %s not transferred: %s", id, err->message);
		g_free(id);
		g_error_free(err);
		return 0;
	}
	/* The envelope goes along: without it, the Bcc recipients of a
	 * journaled message would no longer be found by to: in the target. */
	char *envelope_from = NULL, *envelope_to = NULL;
	if (mv_store_message_envelope(w->src, m->number, &envelope_from, &envelope_to, w->error) < 0) {
		g_byte_array_unref(raw);
		return w->failed = true;
	}
	char *origin = mv_message_id_format(w->id, m->number);
	mv_ingest_message im = {
		.archive = m->archive, .folder = m->path, .data = raw->data, .len = raw->len, .source = "transfer",
		.origin = origin, .mail_flags = m->mail_flags, .archived_at = m->archived_at,
		.envelope_from = envelope_from, .envelope_to = envelope_to,
	};
	w->failed = mv_ingest_add(t->ing, &im, w->error) < 0;
	g_free(origin);
	g_free(envelope_from);
	g_free(envelope_to);
	g_byte_array_unref(raw);
	t->handed++;
	if (t->handed % 500 == 0)
		mv_command_progress(t->ctx, t->total ? (int)(t->handed * 100 / t->total) : -1,
		                    "%lld of %lld messages (store %d)", (long long)t->handed, (long long)t->total, w->id);
	return w->failed;
}

static int transfer_store(transfer *t, int id, int64_t from, GError **error)
{
	transfer_walk w = { .t = t, .id = id, .error = error };
	w.src = mv_instance_open_store(t->ctx->inst, id, MV_STORE_READ, error);
	if (!w.src)
		return -1;
	t->checkpoint_store = id;
	t->checkpoint_number = from;
	int rc = mv_store_each_message(w.src, from, transfer_one, &w, error);
	mv_store_close(&w.src);
	return rc < 0 || w.failed ? -1 : 0;
}

static json_t *run_transfer(transfer *t, GError **error)
{
	mv_ingest_run run = { .user = t->ctx->user, .remote = t->ctx->remote, .source = "TransferStores" };
	t->ing = t->target ? mv_ingest_begin_to(t->ctx->inst, t->target, &run, error)
	                   : mv_ingest_begin(t->ctx->inst, &run, error);
	if (!t->ing)
		return NULL;
	int rc = 0;
	bool started = t->start_store == 0;
	for (guint i = 0; i < t->sources->len && rc == 0; i++) {
		int id = g_array_index(t->sources, int, i);
		started = started || id == t->start_store;
		if (started)
			rc = transfer_store(t, id, id == t->start_store ? t->start_number : 1, error);
	}
	if (rc == 0 && !started) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "startIndex: store %d is not among the source stores", t->start_store);
		rc = -1;
	}
	GError *end_err = NULL;
	if (mv_ingest_end(&t->ing, rc == 0 ? error : &end_err) < 0)
		rc = -1;
	g_clear_error(&end_err);
	if (rc < 0) {
		char *resume = resume_command(t);
		mv_command_log(t->ctx, "the transfer stopped; messages up to the resume point are archived. Resume with: %s", resume);
		g_prefix_error(error, "resume with: %s — ", resume);
		g_free(resume);
		return NULL;
	}
	mv_command_progress(t->ctx, 100, "%lld messages transferred", (long long)t->handed);
	return json_pack("{s:I, s:I}", "messagesTransferred", (json_int_t)t->handed, "messagesInSources", (json_int_t)t->total);
}

static json_t *transfer_stores(mv_command_ctx *ctx, json_t *args, GError **error)
{
	transfer t = { .ctx = ctx, .sources = g_array_new(FALSE, FALSE, sizeof(int)),
	               .target = (int)mv_arg_number(args, "targetStore", 0) };
	json_t *result = NULL;
	const char *start = mv_arg_string(args, "startIndex");
	if (!parse_sources(mv_arg_string(args, "sourceStores"), t.sources, error))
		goto out;
	if (start && *start && !mv_message_id_parse(start, &t.start_store, &t.start_number)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "startIndex: '%.100s' is not of the form store:message", start);
		goto out;
	}
	if (check_transfer(&t, true, error) == 0)
		result = run_transfer(&t, error);
out:
	g_array_free(t.sources, TRUE);
	return result;
}

static json_t *merge_store(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0), source = mv_arg_number(args, "sourceId", 0);
	if (!id_in_range(id, error) || !id_in_range(source, error))
		return NULL;
	transfer t = { .ctx = ctx, .sources = g_array_new(FALSE, FALSE, sizeof(int)), .target = (int)id };
	int src = (int)source;
	g_array_append_val(t.sources, src);
	json_t *result = NULL;
	if (check_transfer(&t, false, error) == 0 && (result = run_transfer(&t, error))) {
		/* Merged: the source is no longer needed by this instance; its files
		 * stay for the admin to remove after checking. */
		if (mv_instance_detach_store(ctx->inst, src, error) < 0) {
			json_decref(result);
			result = NULL;
		} else {
			mv_command_log(ctx, "store %d merged into store %lld and detached; its files were left in place", src, (long long)id);
		}
	}
	g_array_free(t.sources, TRUE);
	return result;
}

static const mv_command_arg args_none[] = { { .name = NULL } };
static const mv_command_arg args_id[] = { { "id", MV_ARG_NUMBER, false, NULL }, { .name = NULL } };
static const mv_command_arg args_verify[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "includeIndexes", MV_ARG_BOOL, true, NULL }, { .name = NULL } };
static const mv_command_arg args_verify_all[] = { { "includeIndexes", MV_ARG_BOOL, true, NULL }, { .name = NULL } };
static const mv_command_arg args_recover[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "encryptionKey", MV_ARG_SECRET, true, NULL },
	{ "recoverDeletedMessages", MV_ARG_BOOL, true, NULL }, { .name = NULL } };
static const mv_command_arg args_rebuild[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "folder", MV_ARG_STRING, false, NULL }, { .name = NULL } };
static const mv_command_arg args_transfer[] = {
	{ "sourceStores", MV_ARG_STRING, false, NULL }, { "targetStore", MV_ARG_NUMBER, true, NULL },
	{ "startIndex", MV_ARG_STRING, true, NULL }, { .name = NULL } };
static const mv_command_arg args_merge[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "sourceId", MV_ARG_NUMBER, false, NULL }, { .name = NULL } };
static const mv_command_arg args_indexes[] = { { "id", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };

const mv_command mv_commands_maint[] = {
	{ "VerifyStore", args_verify, "admin", true, verify_store, "check records, db and index of a store; changes nothing", NULL },
	{ "VerifyStores", args_verify_all, "admin", true, verify_stores, "VerifyStore for every store in use", NULL },
	{ "CompactStore", args_id, "admin", true, compact_store, "rewrite segments without what deleted messages left", NULL },
	{ "RecoverStore", args_recover, "admin", true, recover_store, "rebuild a store's db and index from its content", NULL },
	{ "RecreateRecoveryRecords", args_id, "admin", true, recreate_records, "rewrite missing or damaged recovery records", NULL },
	{ "RepairStoreDatabase", args_id, "admin", true, repair_store_database, "integrity check and index rebuild of a store db", NULL },
	{ "MaintainFileSystemDatabases", args_none, "admin", true, maintain_databases, "analyze, checkpoint and optimize every store", NULL },
	{ "UpgradeStore", args_id, "admin", true, upgrade_store, "upgrade a store to the current format", NULL },
	{ "UpgradeStores", args_none, "admin", true, upgrade_stores, "upgrade every store to the current format", NULL },
	{ "GetStoreIndexes", args_indexes, "admin", false, get_store_indexes, "the full-text indexes of the stores", NULL },
	{ "RebuildStoreIndex", args_rebuild, "admin", true, rebuild_store_index, "rebuild a store's full-text index from content", NULL },
	{ "SelectAllStoreIndexesForRebuild", args_none, "admin", false, select_all_for_rebuild, "mark every index for rebuild", NULL },
	{ "RebuildSelectedStoreIndexes", args_none, "admin", true, rebuild_selected, "rebuild the indexes marked for rebuild", NULL },
	{ "TransferStores", args_transfer, "admin", true, transfer_stores, "copy the messages of stores into another (resumable)", NULL },
	{ "MergeStore", args_merge, "admin", true, merge_store, "copy a store into another, then detach it", NULL },
	{ "RefreshAllStoreStatistics", args_none, "admin", false, refresh_statistics, "recount messages and sizes of every store", NULL },
	{ .name = NULL },
};
