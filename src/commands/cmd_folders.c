/* commands/cmd_folders: archives, folders and single messages —
 * GetChildFolders, GetFolderStatistics, GetMessages, MoveFolder,
 * DeleteEmptyFolders, DeleteMessage.
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
 * touched.  A folder one may not read is reported exactly like one that
 * does not exist, so the answers do not reveal other users' folders. */
#include "commands/commands.h"
#include "mime/mime.h"
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FOLDER_NAME 4096
#define SNIPPET_CHARS 200
#define SNIPPET_TEXT_BYTES (64 * 1024)
#define SNIPPET_THREADS 4

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

static unsigned rights_on(mv_command_ctx *ctx, const char *archive, const char *path)
{
	return mv_access_folder(ctx->access, archive, path);
}

/* Rights on a full folder name "archive/path". */
static unsigned rights_on_name(mv_command_ctx *ctx, const char *name)
{
	const char *slash = strchr(name, '/');
	char *archive = slash ? g_strndup(name, (gsize)(slash - name)) : g_strdup(name);
	unsigned r = rights_on(ctx, archive, slash ? slash + 1 : "");
	g_free(archive);
	return r;
}

static bool require_rights(mv_command_ctx *ctx, const char *function, const char *name, unsigned needed,
                           const char *what, GError **error)
{
	if ((rights_on_name(ctx, name) & needed) == needed)
		return true;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: user %s has no %s privilege on folder '%.200s'", function,
	            mv_access_user(ctx->access), what, name);
	return false;
}

/* Drops the folders the caller may not read. */
static void keep_readable(mv_command_ctx *ctx, GHashTable *all)
{
	if (mv_access_unrestricted(ctx->access))
		return;
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, all);
	while (g_hash_table_iter_next(&it, &key, NULL))
		if (!(rights_on_name(ctx, key) & MV_FOLDER_READ))
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
	keep_readable(ctx, all);
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

/* One store's messages of a folder, newest first, at most `want` (0 = all). */
static int list_messages(mv_store *s, const char *archive, const char *path, int64_t want, json_t *out,
                         GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mv_store_db(s), "SELECT m.num, m.date, m.archived_at, m.size, m.subject, m.sender,"
	                       " m.recipients, m.message_id, m.has_attachment FROM messages m JOIN folders f"
	                       " ON f.id = m.folder_id WHERE f.archive = ? AND f.path = ? AND m.deleted = 0"
	                       " ORDER BY m.date DESC, m.num DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, mv_store_db(s), "list messages");
		return -1;
	}
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, want > 0 ? want : -1);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *id = g_strdup_printf("%d:%lld", mv_store_id(s), (long long)sqlite3_column_int64(st, 0));
		char *date = mv_format_time_utc(sqlite3_column_int64(st, 1));
		char *archived = mv_format_time_utc(sqlite3_column_int64(st, 2));
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:I}", "id", id,
		                                     "date", date, "archivedAt", archived,
		                                     "size", (json_int_t)sqlite3_column_int64(st, 3),
		                                     "subject", (const char *)sqlite3_column_text(st, 4),
		                                     "from", (const char *)sqlite3_column_text(st, 5),
		                                     "to", (const char *)sqlite3_column_text(st, 6),
		                                     "messageId", (const char *)sqlite3_column_text(st, 7),
		                                     "hasAttachment", sqlite3_column_int(st, 8) != 0,
		                                     "_date", (json_int_t)sqlite3_column_int64(st, 1)));
		g_free(id);
		g_free(date);
		g_free(archived);
	}
	sqlite3_finalize(st);
	return 0;
}

/* Newest first across stores (each store's part is already in order). */
static int by_listed_date(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t dx = json_integer_value(json_object_get(x, "_date")), dy = json_integer_value(json_object_get(y, "_date"));
	return dx > dy ? -1 : dx < dy;
}

/* Sorts the merged rows, cuts [offset, offset + limit) and drops the sort key. */
static json_t *page_of(json_t *all, int64_t offset, int64_t limit)
{
	size_t n = json_array_size(all);
	json_t **items = g_new(json_t *, n ? n : 1);
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(all, i);
	qsort(items, n, sizeof *items, by_listed_date);
	json_t *page = json_array();
	for (size_t i = (size_t)MIN((int64_t)n, offset); i < n && (limit == 0 || (int64_t)json_array_size(page) < limit);
	     i++) {
		json_object_del(items[i], "_date");
		json_array_append(page, items[i]);
	}
	g_free(items);
	json_decref(all);
	return page;
}

static json_t *get_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	int64_t offset = mv_arg_number(args, "offset", 0), limit = mv_arg_number(args, "limit", 0);
	char *archive = NULL, *path = NULL;
	if (!folder || !*folder) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetMessages: give the folder to list (archive/folder)");
		return NULL;
	}
	if (offset < 0 || limit < 0 || limit > 100000) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetMessages: offset must not be negative and limit must be "
		            "0 (all) to 100000");
		return NULL;
	}
	if (!split_folder(folder, "folder", &archive, &path, error))
		return NULL;
	if (!(rights_on(ctx, archive, path) & MV_FOLDER_READ)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "GetMessages: user %s has no read privilege on folder '%.200s'",
		            mv_access_user(ctx->access), folder);
		g_free(archive);
		g_free(path);
		return NULL;
	}
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	json_t *list = infos ? json_array() : NULL;
	int64_t want = limit > 0 ? offset + limit : 0;
	for (guint i = 0; infos && i < infos->len && list; i++) {
		const mv_store_info *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		if (!s || list_messages(s, archive, path, want, list, error) < 0)
			json_decref(list), list = NULL;
		mv_store_close(&s);
	}
	if (infos)
		g_ptr_array_free(infos, TRUE);
	g_free(archive);
	g_free(path);
	return list ? page_of(list, offset, limit) : NULL;
}

/* ---- changes ------------------------------------------------------------------------------- */

/* For a restricted caller: the folder exists and it may read it; both
 * failures give the one answer "does not exist". */
static bool visible_folder(mv_command_ctx *ctx, const char *function, const char *name, GError **error)
{
	if (mv_access_unrestricted(ctx->access))
		return true;
	GHashTable *all = all_folders(ctx, error);
	if (!all)
		return false;
	bool ok = g_hash_table_contains(all, name) && (rights_on_name(ctx, name) & MV_FOLDER_READ);
	g_hash_table_destroy(all);
	if (!ok)
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: folder '%.200s' does not exist", function, name);
	return ok;
}

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
		if (!(rights_on_name(ctx, f) & MV_FOLDER_READ)) {
			/* Not named: the caller may not know it exists. */
			g_set_error(error, MV_ERROR, MV_ERR_DENIED,
			            "%s: user %s lacks the %s privilege on a folder below '%.200s'", function,
			            mv_access_user(ctx->access), what, name);
			ok = false;
		} else {
			ok = require_rights(ctx, function, f, needed, what, error);
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

/* Write on the folder and everything below it, and on the destination;
 * leaving the archive also takes delete on the source. */
static bool move_allowed(mv_command_ctx *ctx, const char *from, const char *to, bool across, GError **error)
{
	unsigned needed = MV_FOLDER_WRITE | (across ? MV_FOLDER_DELETE : 0);
	if (!visible_folder(ctx, "MoveFolder", from, error))
		return false;
	if (!require_rights(ctx, "MoveFolder", from, needed, across ? "write and delete" : "write", error) ||
	    !require_rights(ctx, "MoveFolder", to, MV_FOLDER_WRITE, "write", error))
		return false;
	return subtree_allowed(ctx, "MoveFolder", from, needed, across ? "write and delete" : "write", error);
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
	if (!move_allowed(ctx, mv_arg_string(args, "fromFolder"), mv_arg_string(args, "toFolder"), strcmp(fa, ta) != 0,
	                  error))
		goto out;
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

/* A restricted caller names a folder that exists, that it can read (else
 * the same answer as for a missing one) and that it may delete in, with
 * everything below it. */
static bool restricted_delete_allowed(mv_command_ctx *ctx, const char *folder, GError **error)
{
	if (!folder || !*folder) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED,
		            "DeleteEmptyFolders: user %s must name a folder it has the delete privilege on",
		            mv_access_user(ctx->access));
		return false;
	}
	if (!visible_folder(ctx, "DeleteEmptyFolders", folder, error))
		return false;
	return require_rights(ctx, "DeleteEmptyFolders", folder, MV_FOLDER_DELETE, "delete", error) &&
	       subtree_allowed(ctx, "DeleteEmptyFolders", folder, MV_FOLDER_DELETE, "delete", error);
}

static json_t *delete_empty_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	char *archive = NULL, *path = NULL;
	if (folder && *folder && !split_folder(folder, "folder", &archive, &path, error))
		return NULL;
	if ((!mv_access_unrestricted(ctx->access) && !restricted_delete_allowed(ctx, folder, error)) ||
	    mv_legal_hold_check(ctx->inst, "DeleteEmptyFolders", error) < 0) {
		g_free(archive);
		g_free(path);
		return NULL;
	}
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

/* The folder of a live message: 1 found, 0 not, -1 error. */
static int message_folder(mv_store *s, int64_t num, char **archive_r, char **path_r, GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mv_store_db(s), "SELECT f.archive, f.path FROM messages m JOIN folders f ON"
	                       " f.id = m.folder_id WHERE m.num = ? AND m.deleted = 0", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, mv_store_db(s), "message folder");
		return -1;
	}
	sqlite3_bind_int64(st, 1, num);
	int rc = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*archive_r = g_strdup((const char *)sqlite3_column_text(st, 0));
		*path_r = g_strdup((const char *)sqlite3_column_text(st, 1));
		rc = 1;
	}
	sqlite3_finalize(st);
	return rc;
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
	unsigned r = found == 1 ? rights_on(ctx, archive, path) : 0;
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

/* The passage of each hit that shows why it matched (the index keeps no
 * text: it is cut from the message, read from the store the hit came
 * from).  Reading is one store connection's work; cutting the passages
 * (a MIME parse each) runs on the cores, so a page costs what its largest
 * messages cost, not their sum. */
typedef struct snippet_work {
	const mv_query *q;
	GPtrArray *raws;       /* GByteArray* or NULL (unreadable), by hit */
	json_t **out;          /* by hit */
	char **attachment;     /* by hit: the attachment the snippet is from, or NULL */
	gint next;
} snippet_work;

static gpointer snippet_worker(gpointer p)
{
	snippet_work *w = p;
	for (guint i; (i = (guint)g_atomic_int_add(&w->next, 1)) < w->raws->len;) {
		GByteArray *raw = w->raws->pdata[i];
		if (!raw)
			continue;
		w->out[i] = mv_snippet_for_message(w->q, raw->data, raw->len, SNIPPET_TEXT_BYTES, SNIPPET_CHARS,
		                                   &w->attachment[i]);
	}
	return NULL;
}

static void unref_bytes(gpointer p)
{
	if (p)
		g_byte_array_unref(p);
}

static void add_snippets(mv_command_ctx *ctx, mv_searcher *searcher, const char *query, json_t *out,
                         GPtrArray *hits)
{
	mv_query *q = mv_query_parse(query, NULL);
	if (!q)
		return;
	snippet_work w = { .q = q, .raws = g_ptr_array_new_with_free_func(unref_bytes),
		           .out = g_new0(json_t *, hits->len ? hits->len : 1),
		           .attachment = g_new0(char *, hits->len ? hits->len : 1) };
	for (guint i = 0; i < hits->len; i++) {
		const mv_search_hit *h = hits->pdata[i];
		mv_store *st = mv_searcher_store(searcher, h->store_id);
		GByteArray *raw = NULL;
		GError *err = NULL;
		if (!st || mv_store_read_message(st, h->number, &raw, &err) < 0) {
			mv_command_log(ctx, "no snippet for %d:%lld: %s", h->store_id, (long long)h->number,
			               err ? err->message : "store not open");
			g_clear_error(&err);
		}
		g_ptr_array_add(w.raws, raw);
	}
	guint n = MIN((guint)g_get_num_processors(), SNIPPET_THREADS);
	GThread *threads[SNIPPET_THREADS] = { NULL };
	for (guint t = 1; t < n && hits->len > 1; t++)
		threads[t] = g_thread_try_new("mv-snippet", snippet_worker, &w, NULL);
	snippet_worker(&w);
	for (guint t = 1; t < n; t++)
		if (threads[t])
			g_thread_join(threads[t]);
	for (guint i = 0; i < hits->len; i++) {
		if (w.out[i])
			json_object_set_new(json_array_get(out, i), "snippet", w.out[i]);
		if (w.attachment[i])
			json_object_set_new(json_array_get(out, i), "snippetAttachment", json_string(w.attachment[i]));
		g_free(w.attachment[i]);
	}
	g_free(w.out);
	g_free(w.attachment);
	g_ptr_array_free(w.raws, TRUE);
	mv_query_free(q);
}

/* Our own addition to the reference's functions: full-text search through
 * the registry, so that the API, and later Web Access and IMAP, search
 * with the caller's folder privileges applied inside the query. */
static json_t *search_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *sort = mv_arg_string(args, "sort");
	mv_search_options opts = {
		.archive = mv_arg_string(args, "archive"), .limit = mv_arg_number(args, "limit", 50),
		.sort = sort && strcmp(sort, "relevance") == 0 ? MV_SORT_RELEVANCE : MV_SORT_DATE, .access = ctx->access,
		.after = mv_arg_string(args, "after"), .offset = mv_arg_number(args, "offset", 0),
	};
	if (opts.limit < 1 || opts.limit > 10000) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "SearchMessages: limit must be 1..10000");
		return NULL;
	}
	mv_searcher *searcher = mv_searcher_open(ctx->inst, error);
	if (!searcher)
		return NULL;
	GPtrArray *hits = NULL;
	json_t *out = NULL;
	if (mv_searcher_run(searcher, mv_arg_string(args, "query"), &opts, &hits, error) == 0) {
		out = json_array();
		for (guint i = 0; i < hits->len; i++)
			json_array_append_new(out, mv_search_hit_json(hits->pdata[i]));
		if (mv_arg_bool(args, "snippets", false))
			add_snippets(ctx, searcher, mv_arg_string(args, "query"), out, hits);
		g_ptr_array_free(hits, TRUE);
	}
	mv_searcher_close(&searcher);
	return out;
}

static const char *const sort_values[] = { "date", "relevance", NULL };
static const mv_command_arg args_search[] = {
	{ "query", MV_ARG_STRING, false, NULL }, { "archive", MV_ARG_STRING, true, NULL },
	{ "limit", MV_ARG_NUMBER, true, NULL }, { "sort", MV_ARG_STRING, true, sort_values },
	{ "after", MV_ARG_STRING, true, NULL }, { "offset", MV_ARG_NUMBER, true, NULL },
	{ "snippets", MV_ARG_BOOL, true, NULL }, { .name = NULL } };
static const mv_command_arg args_list[] = {
	{ "folder", MV_ARG_STRING, true, NULL }, { "offset", MV_ARG_NUMBER, true, NULL },
	{ "limit", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };
static const mv_command_arg args_children[] = {
	{ "folder", MV_ARG_STRING, true, NULL }, { "maxLevels", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };
static const mv_command_arg args_none[] = { { .name = NULL } };
static const mv_command_arg args_folder_opt[] = { { "folder", MV_ARG_STRING, true, NULL }, { .name = NULL } };
static const mv_command_arg args_move[] = {
	{ "fromFolder", MV_ARG_STRING, false, NULL }, { "toFolder", MV_ARG_STRING, false, NULL }, { .name = NULL } };
static const mv_command_arg args_delete[] = {
	{ "id", MV_ARG_STRING, false, NULL }, { "reason", MV_ARG_STRING, false, NULL }, { .name = NULL } };

const mv_command mv_commands_folders[] = {
	{ "GetChildFolders", args_children, "login", false, get_child_folders, "archives and folders below a folder" },
	{ "GetFolderStatistics", args_none, "login", false, get_folder_statistics, "message count and size per folder" },
	{ "GetMessages", args_list, "login", false, get_messages,
	  "the messages of one folder, newest first (offset and limit page them)" },
	{ "MoveFolder", args_move, "login", false, move_folder, "rename or move a folder (and its subfolders)" },
	{ "DeleteEmptyFolders", args_folder_opt, "login", false, delete_empty_folders, "remove folders without messages" },
	{ "SearchMessages", args_search, "login", false, search_messages,
	  "full-text search (query language of README.md) within the caller's folder privileges" },
	{ "DeleteMessage", args_delete, "login", false, delete_message, "delete one message, with the reason" },
	{ .name = NULL },
};
