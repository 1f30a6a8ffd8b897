/* commands/cmd_folders: archives, folders and single messages —
 * GetChildFolders, GetFolderStatistics, GetMessages, MoveFolder,
 * DeleteEmptyFolders, DeleteMessage.
 *
 * A folder is named as the reference names it, "archive/path/to/folder";
 * the archive (user) name is its first component and "archive" alone is the
 * archive's root.  An archive spans every store it has mail in, so reading
 * functions merge over the stores in use and changing ones apply to each
 * store holding the folder — refusing up front if any of those is not
 * modifiable, so that a change is never half applied. */
#include "commands/commands.h"
#include "search/search.h"

#include <string.h>

#define MAX_FOLDER_NAME 4096

/* Splits "archive/path" (no leading or trailing slash, no empty component). */
static bool split_folder(const char *name, const char *arg, char **archive_r, char **path_r, GError **error)
{
	size_t len = strlen(name);
	if (len == 0 || len > MAX_FOLDER_NAME || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%.200s' is not a folder name of the form archive/folder/...",
		            arg, name);
		return false;
	}
	const char *slash = strchr(name, '/');
	*archive_r = slash ? g_strndup(name, (gsize)(slash - name)) : g_strdup(name);
	*path_r = g_strdup(slash ? slash + 1 : "");
	return true;
}

static char *full_name(const char *archive, const char *path)
{
	return *path ? g_strconcat(archive, "/", path, NULL) : g_strdup(archive);
}

typedef struct folder_total {
	int64_t messages, bytes;
} folder_total;

/* Every folder in use, as full name -> totals, including the parents that
 * exist only as a prefix of a deeper folder. */
static GHashTable *all_folders(mv_command_ctx *ctx, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GHashTable *all = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (guint i = 0; i < infos->len; i++) {
		const mv_store_info *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		GError *err = NULL;
		GPtrArray *folders = NULL;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, &err);
		if (s && mv_store_list_folders(s, NULL, &folders, &err) == 0) {
			for (guint j = 0; j < folders->len; j++) {
				const mv_folder_stats *f = folders->pdata[j];
				char *name = full_name(f->archive, f->path);
				/* the folder and each of its parents */
				for (char *cut = name + strlen(name); cut; cut = g_strrstr_len(name, cut - name, "/")) {
					char *key = g_strndup(name, (gsize)(cut - name));
					folder_total *t = g_hash_table_lookup(all, key);
					if (!t) {
						t = g_new0(folder_total, 1);
						g_hash_table_insert(all, g_strdup(key), t);
					}
					if (!*cut) {
						t->messages += f->messages;
						t->bytes += f->bytes;
					}
					g_free(key);
				}
				g_free(name);
			}
			g_ptr_array_free(folders, TRUE);
		}
		if (err) {
			mv_command_log(ctx, "store %d (%s) not read: %s", info->id, info->name, err->message);
			g_error_free(err);
		}
		mv_store_close(&s);
	}
	g_ptr_array_free(infos, TRUE);
	return all;
}

static int count_slashes(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '/';
	return n;
}

static json_t *get_child_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *parent = mv_arg_string(args, "folder");
	int64_t max_levels = mv_arg_number(args, "maxLevels", 0);
	if (parent && !*parent)
		parent = NULL;
	if (max_levels < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetChildFolders: maxLevels must not be negative");
		return NULL;
	}
	GHashTable *all = all_folders(ctx, error);
	if (!all)
		return NULL;
	if (parent && !g_hash_table_contains(all, parent)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "GetChildFolders: folder '%.200s' does not exist", parent);
		g_hash_table_destroy(all);
		return NULL;
	}
	int base = parent ? count_slashes(parent) + 1 : 0;
	GList *names = g_list_sort(g_hash_table_get_keys(all), (GCompareFunc)strcmp);
	json_t *list = json_array();
	for (GList *l = names; l; l = l->next) {
		const char *name = l->data;
		if (parent && !(g_str_has_prefix(name, parent) && name[strlen(parent)] == '/'))
			continue;
		int level = count_slashes(name) + 1 - base;
		if (max_levels > 0 && level > max_levels)
			continue;
		const folder_total *t = g_hash_table_lookup(all, name);
		const char *last = strrchr(name, '/');
		json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:I}", "folder", name, "name", last ? last + 1 : name,
		                                      "level", level, "messages", (json_int_t)t->messages));
	}
	g_list_free(names);
	g_hash_table_destroy(all);
	return list;
}

static json_t *get_folder_statistics(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GHashTable *all = all_folders(ctx, error);
	if (!all)
		return NULL;
	GList *names = g_list_sort(g_hash_table_get_keys(all), (GCompareFunc)strcmp);
	json_t *list = json_array();
	for (GList *l = names; l; l = l->next) {
		const folder_total *t = g_hash_table_lookup(all, l->data);
		json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "folder", (const char *)l->data,
		                                      "count", (json_int_t)t->messages, "size", (json_int_t)t->bytes));
	}
	g_list_free(names);
	g_hash_table_destroy(all);
	return list;
}

static int list_messages(mv_store *s, const char *archive, const char *path, json_t *out, GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mv_store_db(s), "SELECT m.num, m.date, m.archived_at, m.size, m.subject, m.sender,"
	                       " m.recipients, m.message_id FROM messages m JOIN folders f ON f.id = m.folder_id"
	                       " WHERE f.archive = ? AND f.path = ? AND m.deleted = 0 ORDER BY m.date DESC, m.num DESC",
	                       -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, mv_store_db(s), "list messages");
		return -1;
	}
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *id = g_strdup_printf("%d:%lld", mv_store_id(s), (long long)sqlite3_column_int64(st, 0));
		char *date = mv_format_time_utc(sqlite3_column_int64(st, 1));
		char *archived = mv_format_time_utc(sqlite3_column_int64(st, 2));
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id", id, "date", date,
		                                     "archivedAt", archived, "size", (json_int_t)sqlite3_column_int64(st, 3),
		                                     "subject", (const char *)sqlite3_column_text(st, 4),
		                                     "from", (const char *)sqlite3_column_text(st, 5),
		                                     "to", (const char *)sqlite3_column_text(st, 6),
		                                     "messageId", (const char *)sqlite3_column_text(st, 7)));
		g_free(id);
		g_free(date);
		g_free(archived);
	}
	sqlite3_finalize(st);
	return 0;
}

static json_t *get_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	char *archive = NULL, *path = NULL;
	if (!folder || !*folder) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetMessages: give the folder to list (archive/folder)");
		return NULL;
	}
	if (!split_folder(folder, "folder", &archive, &path, error))
		return NULL;
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	json_t *list = infos ? json_array() : NULL;
	for (guint i = 0; infos && i < infos->len && list; i++) {
		const mv_store_info *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		if (!s || list_messages(s, archive, path, list, error) < 0)
			json_decref(list), list = NULL;
		mv_store_close(&s);
	}
	if (infos)
		g_ptr_array_free(infos, TRUE);
	g_free(archive);
	g_free(path);
	return list;
}

/* ---- changes ------------------------------------------------------------------------------- */

/* Stores holding a folder (or anything below it), refusing if one of them
 * may not be modified. */
static GArray *stores_holding(mv_command_ctx *ctx, const char *archive, const char *path, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(int));
	for (guint i = 0; i < infos->len && ids; i++) {
		const mv_store_info *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		GPtrArray *folders = NULL;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		bool holds = false;
		if (s && mv_store_list_folders(s, archive, &folders, error) == 0) {
			for (guint j = 0; j < folders->len && !holds; j++) {
				const char *p = ((mv_folder_stats *)folders->pdata[j])->path;
				holds = !*path || strcmp(p, path) == 0 || (g_str_has_prefix(p, path) && p[strlen(path)] == '/');
			}
			g_ptr_array_free(folders, TRUE);
		} else {
			g_array_free(ids, TRUE), ids = NULL;
		}
		mv_store_close(&s);
		if (ids && holds && mv_instance_require_modifiable(ctx->inst, info->id, error) < 0)
			g_array_free(ids, TRUE), ids = NULL;
		if (ids && holds)
			g_array_append_val(ids, info->id);
	}
	g_ptr_array_free(infos, TRUE);
	return ids;
}

static json_t *move_folder(mv_command_ctx *ctx, json_t *args, GError **error)
{
	char *fa = NULL, *fp = NULL, *ta = NULL, *tp = NULL;
	json_t *result = NULL;
	GArray *ids = NULL;
	if (!split_folder(mv_arg_string(args, "fromFolder"), "fromFolder", &fa, &fp, error) ||
	    !split_folder(mv_arg_string(args, "toFolder"), "toFolder", &ta, &tp, error))
		goto out;
	if (strcmp(fa, ta) == 0 && (strcmp(fp, tp) == 0 || !*fp || (g_str_has_prefix(tp, fp) && tp[strlen(fp)] == '/'))) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "MoveFolder: cannot move %s into itself", mv_arg_string(args, "fromFolder"));
		goto out;
	}
	if (!*fp != !*tp) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "MoveFolder: an archive root moves only to another archive root");
		goto out;
	}
	if (!(ids = stores_holding(ctx, fa, fp, error)))
		goto out;
	if (ids->len == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "MoveFolder: folder '%.200s' does not exist",
		            mv_arg_string(args, "fromFolder"));
		goto out;
	}
	int total = 0, rc = 0;
	for (guint i = 0; i < ids->len && rc == 0; i++) {
		int moved = 0;
		mv_store *s = mv_instance_open_store(ctx->inst, g_array_index(ids, int, i), MV_STORE_WRITE, error);
		rc = s ? mv_store_move_folder(s, fa, fp, ta, tp, &moved, error) : -1;
		mv_store_close(&s);
		total += moved;
	}
	if (rc == 0) {
		mv_command_log(ctx, "moved %d folders from %s to %s", total, mv_arg_string(args, "fromFolder"),
		               mv_arg_string(args, "toFolder"));
		result = json_null();
	}
out:
	if (ids)
		g_array_free(ids, TRUE);
	g_free(fa), g_free(fp), g_free(ta), g_free(tp);
	return result;
}

static json_t *delete_empty_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	char *archive = NULL, *path = NULL;
	if (folder && *folder && !split_folder(folder, "folder", &archive, &path, error))
		return NULL;
	GArray *ids = archive ? stores_holding(ctx, archive, path, error) : NULL;
	if (!archive) {
		GPtrArray *infos = mv_instance_stores(ctx->inst, error);
		if (infos) {
			ids = g_array_new(FALSE, FALSE, sizeof(int));
			for (guint i = 0; i < infos->len; i++) {
				const mv_store_info *info = infos->pdata[i];
				if (mv_instance_require_modifiable(ctx->inst, info->id, NULL) == 0)
					g_array_append_val(ids, info->id);
			}
			g_ptr_array_free(infos, TRUE);
		}
	}
	json_t *result = NULL;
	int total = 0, rc = ids ? 0 : -1;
	for (guint i = 0; ids && i < ids->len && rc == 0; i++) {
		int n = 0;
		mv_store *s = mv_instance_open_store(ctx->inst, g_array_index(ids, int, i), MV_STORE_WRITE, error);
		rc = s ? mv_store_delete_empty_folders(s, archive, path, &n, error) : -1;
		mv_store_close(&s);
		total += n;
	}
	if (rc == 0) {
		mv_command_log(ctx, "deleted %d empty folders", total);
		result = json_pack("{s:i}", "deletedFolders", total);
	}
	if (ids)
		g_array_free(ids, TRUE);
	g_free(archive);
	g_free(path);
	return result;
}

static json_t *delete_message(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *id = mv_arg_string(args, "id");
	const char *reason = mv_arg_string(args, "reason");
	int store_id;
	int64_t num;
	if (!mv_message_id_parse(id, &store_id, &num)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "DeleteMessage: id '%.100s' is not of the form store:number", id);
		return NULL;
	}
	bool blank = true;
	for (const char *c = reason ? reason : ""; *c && blank; c++)
		blank = g_ascii_isspace(*c);
	if (blank) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "DeleteMessage: a reason is required (it goes into the audit trail)");
		return NULL;
	}
	if (mv_instance_require_modifiable(ctx->inst, store_id, error) < 0)
		return NULL;
	mv_store *s = mv_instance_open_store(ctx->inst, store_id, MV_STORE_WRITE, error);
	int rc = s ? mv_store_delete_message(s, num, reason, error) : -1;
	mv_store_close(&s);
	if (rc < 0)
		return NULL;
	mv_command_log(ctx, "message %s deleted: %s", id, reason);
	return json_null();
}

static const mv_command_arg args_children[] = {
	{ "folder", MV_ARG_STRING, true, NULL }, { "maxLevels", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };
static const mv_command_arg args_none[] = { { .name = NULL } };
static const mv_command_arg args_folder_opt[] = { { "folder", MV_ARG_STRING, true, NULL }, { .name = NULL } };
static const mv_command_arg args_move[] = {
	{ "fromFolder", MV_ARG_STRING, false, NULL }, { "toFolder", MV_ARG_STRING, false, NULL }, { .name = NULL } };
static const mv_command_arg args_delete[] = {
	{ "id", MV_ARG_STRING, false, NULL }, { "reason", MV_ARG_STRING, false, NULL }, { .name = NULL } };

const mv_command mv_commands_folders[] = {
	{ "GetChildFolders", args_children, "admin", false, get_child_folders, "archives and folders below a folder" },
	{ "GetFolderStatistics", args_none, "admin", false, get_folder_statistics, "message count and size per folder" },
	{ "GetMessages", args_folder_opt, "admin", false, get_messages, "the messages of one folder, newest first" },
	{ "MoveFolder", args_move, "admin", false, move_folder, "rename or move a folder (and its subfolders)" },
	{ "DeleteEmptyFolders", args_folder_opt, "admin", false, delete_empty_folders, "remove folders without messages" },
	{ "DeleteMessage", args_delete, "admin", false, delete_message, "delete one message, with the reason" },
	{ .name = NULL },
};
