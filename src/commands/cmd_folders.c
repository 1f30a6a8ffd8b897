/* commands/cmd_folders: archives, folders and single messages —
 * GetChildFolders, GetFolderStatistics, MoveFolder, DeleteEmptyFolders,
 * DeleteMessage.  (GetMessages is cmd_folder_listing.c, SearchMessages
 * cmd_search.c; the rules they all share are folder_args.c.)
 *
 * A folder is named as the reference names it, "archive/path/to/folder";
 * the archive (user) name is its first component and "archive" alone is the
 * archive's root.  An archive spans every store it has mail in, so reading
 * functions merge over the stores in use and changing ones apply to each
 * store holding the folder — refusing up front if any of those is not
 * modifiable, so that a change is never half applied.
 *
 * These are the functions a user who is not an administrator may call
 * (privilege "login"), so each checks the caller's folder privileges
 * (ctx->access; NULL or an administrator's = everything): reading needs
 * read, moving needs write on both ends (and delete on the source when
 * the folder leaves its archive), deleting needs delete on every folder
 * touched.  A folder named that does not exist and one the caller may not
 * read get the one same error from every function (mv_folder_not_found),
 * so the answers do not reveal other users' folders. */
#include "commands/folder_args.h"

#include <stdlib.h>
#include <string.h>

/* Drops the folders the caller may not read. */
static void keep_readable(mv_command_ctx *ctx, GHashTable *all)
{
	if (mv_access_unrestricted(ctx->access))
		return;
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, all);
	while (g_hash_table_iter_next(&it, &key, NULL))
		if (!(mv_folder_rights_by_name(ctx, key) & MV_FOLDER_READ))
			g_hash_table_iter_remove(&it);
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
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		GError *err = NULL;
		GPtrArray *folders = NULL;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, &err);
		if (s && mv_store_list_folders(s, NULL, &folders, &err) == 0) {
			for (guint j = 0; j < folders->len; j++) {
				const mv_folder_stats *f = folders->pdata[j];
				char *name = mv_folder_full_name(f->archive, f->path);
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
	keep_readable(ctx, all);
	if (parent && !g_hash_table_contains(all, parent)) {
		mv_folder_not_found("GetChildFolders", parent, error);
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
		                                      "level", level, "count", (json_int_t)t->messages));
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
	keep_readable(ctx, all);
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

/* ---- changes ------------------------------------------------------------------------------- */

/* The rights needed on every existing folder at or below name (a grant
 * below may deny what the grant above allows). */
static bool subtree_allowed(mv_command_ctx *ctx, const char *function, const char *name, unsigned needed,
                            const char *what, GError **error)
{
	if (mv_access_unrestricted(ctx->access))
		return true;
	GHashTable *all = all_folders(ctx, error);
	if (!all)
		return false;
	bool ok = true;
	size_t n = strlen(name);
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, all);
	while (ok && g_hash_table_iter_next(&it, &key, NULL)) {
		const char *f = key;
		if (strncmp(f, name, n) != 0 || (f[n] != 0 && f[n] != '/'))
			continue;
		if (!(mv_folder_rights_by_name(ctx, f) & MV_FOLDER_READ)) {
			/* Not named: the caller may not know it exists. */
			g_set_error(error, MV_ERROR, MV_ERR_DENIED,
			            "%s: user %s lacks the %s privilege on a folder below '%.200s'", function,
			            mv_access_user(ctx->access), what, name);
			ok = false;
		} else {
			ok = mv_folder_require_rights(ctx, function, f, needed, what, error);
		}
	}
	g_hash_table_destroy(all);
	return ok;
}

/* Stores holding a folder (or anything below it), refusing if one of them
 * may not be modified. */
static GArray *stores_holding(mv_command_ctx *ctx, const char *archive, const char *path, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(int));
	for (guint i = 0; i < infos->len && ids; i++) {
		const mv_archive_store *info = infos->pdata[i];
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

/* Write on the folder and everything below it, and on the destination;
 * leaving the archive also takes delete on the source. */
static bool move_allowed(mv_command_ctx *ctx, const char *from, const char *to, bool across, GError **error)
{
	unsigned needed = MV_FOLDER_WRITE | (across ? MV_FOLDER_DELETE : 0);
	if (!mv_folder_readable_by_name(ctx, "MoveFolder", from, error))
		return false;
	if (!mv_folder_require_rights(ctx, "MoveFolder", from, needed, across ? "write and delete" : "write", error) ||
	    !mv_folder_require_rights(ctx, "MoveFolder", to, MV_FOLDER_WRITE, "write", error))
		return false;
	return subtree_allowed(ctx, "MoveFolder", from, needed, across ? "write and delete" : "write", error);
}

static json_t *move_folder(mv_command_ctx *ctx, json_t *args, GError **error)
{
	char *fa = NULL, *fp = NULL, *ta = NULL, *tp = NULL;
	json_t *result = NULL;
	GArray *ids = NULL;
	if (!mv_folder_split(mv_arg_string(args, "fromFolder"), "fromFolder", &fa, &fp, error) ||
	    !mv_folder_split(mv_arg_string(args, "toFolder"), "toFolder", &ta, &tp, error))
		goto out;
	if (strcmp(fa, ta) == 0 && (strcmp(fp, tp) == 0 || !*fp || (g_str_has_prefix(tp, fp) && tp[strlen(fp)] == '/'))) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "MoveFolder: cannot move %s into itself", mv_arg_string(args, "fromFolder"));
		goto out;
	}
	if (!*fp != !*tp) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "MoveFolder: an archive root moves only to another archive root");
		goto out;
	}
	if (!move_allowed(ctx, mv_arg_string(args, "fromFolder"), mv_arg_string(args, "toFolder"), strcmp(fa, ta) != 0,
	                  error))
		goto out;
	if (!(ids = stores_holding(ctx, fa, fp, error)))
		goto out;
	if (ids->len == 0) {
		mv_folder_not_found("MoveFolder", mv_arg_string(args, "fromFolder"), error);
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

/* A folder named must exist and be readable (else the one answer for a
 * missing folder); a restricted caller must name one it may delete.  What
 * it may not delete below it simply stays (may_delete_folder): refusing
 * would tell it that a folder it cannot see exists. */
static bool delete_allowed(mv_command_ctx *ctx, const char *archive, const char *path, const char *folder,
                           GError **error)
{
	bool restricted = !mv_access_unrestricted(ctx->access);
	if (!archive && restricted) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED,
		            "DeleteEmptyFolders: user %s must name a folder it has the delete privilege on",
		            mv_access_user(ctx->access));
		return false;
	}
	if (archive && !mv_folder_readable(ctx, "DeleteEmptyFolders", archive, path, folder, error))
		return false;
	return !restricted || mv_folder_require_rights(ctx, "DeleteEmptyFolders", folder, MV_FOLDER_DELETE, "delete", error);
}

static bool may_delete_folder(const char *archive, const char *path, void *opaque)
{
	return mv_folder_rights(opaque, archive, path) & MV_FOLDER_DELETE;
}

static json_t *delete_empty_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	char *archive = NULL, *path = NULL;
	if (folder && *folder && !mv_folder_split(folder, "folder", &archive, &path, error))
		return NULL;
	if (!delete_allowed(ctx, archive, path, folder, error) ||
	    mv_legal_hold_check(ctx->inst, "DeleteEmptyFolders", error) < 0) {
		g_free(archive);
		g_free(path);
		return NULL;
	}
	bool restricted = !mv_access_unrestricted(ctx->access);
	GArray *ids = archive ? stores_holding(ctx, archive, path, error) : NULL;
	if (!archive) {
		GPtrArray *infos = mv_instance_stores(ctx->inst, error);
		if (infos) {
			ids = g_array_new(FALSE, FALSE, sizeof(int));
			for (guint i = 0; i < infos->len; i++) {
				const mv_archive_store *info = infos->pdata[i];
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
		rc = s ? mv_store_delete_empty_folders(s, archive, path, restricted ? may_delete_folder : NULL, ctx, &n,
		                                       error) : -1;
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

/* The folder of a live message: 1 found; -1 with *error, MV_ERR_NOT_FOUND
 * when it is not a live message. */
static int message_folder(mv_store *s, int64_t num, char **archive_r, char **path_r, GError **error)
{
	mv_store_message m;
	if (mv_store_message_get(s, num, &m, error) < 0)
		return -1;
	*archive_r = g_steal_pointer(&m.archive);
	*path_r = g_steal_pointer(&m.path);
	mv_store_message_clear(&m);
	return 1;
}

/* A restricted caller needs delete on the message's folder; a message that
 * does not exist and one in a folder the caller cannot read get the same
 * answer, so ids cannot be probed. */
static bool message_deletable(mv_command_ctx *ctx, const char *id, int store_id, int64_t num, GError **error)
{
	char *archive = NULL, *path = NULL;
	GError *err = NULL;
	mv_store *s = mv_instance_open_store(ctx->inst, store_id, MV_STORE_READ, &err);
	int found = s ? message_folder(s, num, &archive, &path, &err) : -1;
	mv_store_close(&s);
	unsigned r = found == 1 ? mv_folder_rights(ctx, archive, path) : 0;
	bool ok = false;
	if (found < 0 && err->code != MV_ERR_NOT_FOUND) {
		g_propagate_error(error, err);
		err = NULL;
	} else if (!(r & MV_FOLDER_READ)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "DeleteMessage: message %s does not exist", id);
	} else if (!(r & MV_FOLDER_DELETE)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "DeleteMessage: user %s has no delete privilege on folder '%s%s%s'",
		            mv_access_user(ctx->access), archive, *path ? "/" : "", path);
	} else {
		ok = true;
	}
	g_clear_error(&err);
	g_free(archive);
	g_free(path);
	return ok;
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
	if (!mv_access_unrestricted(ctx->access) && !message_deletable(ctx, id, store_id, num, error))
		return NULL;
	if (mv_legal_hold_check(ctx->inst, "DeleteMessage", error) < 0)
		return NULL;
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
	{ "GetChildFolders", args_children, "login", false, get_child_folders, "archives and folders below a folder", NULL },
	{ "GetFolderStatistics", args_none, "login", false, get_folder_statistics, "message count and size per folder", NULL },
	{ "MoveFolder", args_move, "login", false, move_folder, "rename or move a folder (and its subfolders)", NULL },
	{ "DeleteEmptyFolders", args_folder_opt, "login", false, delete_empty_folders, "remove folders without messages", NULL },
	{ "DeleteMessage", args_delete, "login", false, delete_message, "delete one message, with the reason", NULL },
	{ .name = NULL },
};
