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
 * touched.  A folder named that does not exist and one the caller may not
 * read get the one same error from every function (folder_not_found), so
 * the answers do not reveal other users' folders.
 *
 * Listings are bounded: one answer holds at most MAX_ANSWER_MESSAGES
 * messages; GetMessages pages a folder of any size with `after`. */
#include "commands/commands.h"
#include "mime/mime.h"
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FOLDER_NAME 4096
/* What one answer of GetMessages or SearchMessages holds at most: "all"
 * (limit 0) beyond it is refused, never cut short without a word. */
#define MAX_ANSWER_MESSAGES 10000
#define DEFAULT_SEARCH_LIMIT 50
#define SNIPPET_CHARS 200
#define SNIPPET_TEXT_BYTES (64 * 1024)
#define SNIPPET_THREADS 4

/* Splits "archive/path" (no leading or trailing slash, no empty component). */
static bool split_folder(const char *name, const char *arg, char **archive_r, char **path_r, GError **error)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len > MAX_FOLDER_NAME || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%.200s' is not a folder name of the form archive/folder/...",
		            arg, name ? name : "");
		return false;
	}
	/* Names are stored in NFC: a folder typed decomposed (as macOS
	 * writes it) is the same folder. */
	char *canonical = mv_name_canonical(name);
	const char *slash = strchr(canonical, '/');
	*archive_r = slash ? g_strndup(canonical, (gsize)(slash - canonical)) : g_strdup(canonical);
	*path_r = g_strdup(slash ? slash + 1 : "");
	g_free(canonical);
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

/* The one answer for a folder the caller may not see, whether it does not
 * exist or the caller may not read it, from every folder function: the
 * two cannot be told apart, so other users' folders cannot be probed. */
static void folder_not_found(const char *function, const char *name, GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: folder '%.200s' does not exist", function, name);
}

/* Whether a store in use has the folder, or a folder below it (a parent
 * exists as the prefix of a deeper folder; an archive while it has one):
 * the folders a listing shows.  1, 0, or -1 with *error. */
static int folder_exists(mv_command_ctx *ctx, const char *archive, const char *path, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return -1;
	int found = 0;
	for (guint i = 0; i < infos->len && found == 0; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		found = s ? mv_store_has_folder(s, archive, path, error) : -1;
		mv_store_close(&s);
	}
	g_ptr_array_free(infos, TRUE);
	return found;
}

/* A folder named as an argument: it exists and the caller may read it,
 * else the one "does not exist" answer. */
static bool readable_folder(mv_command_ctx *ctx, const char *function, const char *archive, const char *path,
                            const char *name, GError **error)
{
	int found = (rights_on(ctx, archive, path) & MV_FOLDER_READ) ? folder_exists(ctx, archive, path, error) : 0;
	if (found == 0)
		folder_not_found(function, name, error);
	return found == 1;
}

/* The same for a folder's full name "archive/path". */
static bool readable_folder_name(mv_command_ctx *ctx, const char *function, const char *name, GError **error)
{
	char *archive = NULL, *path = NULL;
	bool ok = split_folder(name, "folder", &archive, &path, error) &&
	          readable_folder(ctx, function, archive, path, name, error);
	g_free(archive);
	g_free(path);
	return ok;
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
		const mv_archive_store *info = infos->pdata[i];
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
		folder_not_found("GetChildFolders", parent, error);
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

/* ---- GetMessages: one folder, in pages ------------------------------------------------------ */

/* The order of a listing, newest first, total and the same on every call:
 * date, then store (higher first), then message number (higher first).
 * `after` continues it from a message, so a page costs one page in each
 * store however deep it lies, and mail archived or deleted meanwhile moves
 * no other message from its page. */
typedef struct listed {
	int store_id;
	bool has_attachment;
	int64_t num, date, archived_at, size;
	char *subject, *from, *to, *message_id;
} listed;

typedef struct list_cursor {
	bool set;
	int store_id;
	int64_t date, num;
} list_cursor;

static void listed_clear(gpointer p)
{
	listed *l = p;
	g_free(l->subject);
	g_free(l->from);
	g_free(l->to);
	g_free(l->message_id);
}


static json_t *listed_json(const listed *l)
{
	char *id = mv_message_id_format(l->store_id, l->num);
	char *date = mv_format_time_utc(l->date), *archived = mv_format_time_utc(l->archived_at);
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:b}", "id", id, "date", date, "archivedAt",
	                      archived, "size", (json_int_t)l->size, "subject", l->subject, "from", l->from, "to", l->to,
	                      "messageId", l->message_id, "hasAttachment", l->has_attachment);
	g_free(id);
	g_free(date);
	g_free(archived);
	return o;
}

static gint by_listing_order(gconstpointer a, gconstpointer b)
{
	const listed *x = a, *y = b;
	if (x->date != y->date)
		return x->date > y->date ? -1 : 1;
	if (x->store_id != y->store_id)
		return x->store_id > y->store_id ? -1 : 1;
	return x->num > y->num ? -1 : (x->num < y->num);
}

/* The rows of one store that follow the cursor in the listing order: in
 * the cursor's own store those after it, in a higher store (listed first
 * among equal dates) the older dates only, in a lower one its date too. */
static void cursor_bounds(const list_cursor *c, int store_id, int64_t *date_r, int64_t *num_r)
{
	*date_r = c->set ? c->date : INT64_MAX;
	*num_r = !c->set || store_id < c->store_id ? INT64_MAX : store_id == c->store_id ? c->num : 0;
}

/* Where list_store's rows go: the listing and the store they come from. */
typedef struct list_sink {
	GArray *out;
	int store_id;
} list_sink;

static int add_listed(const mv_store_message *m, void *opaque)
{
	list_sink *sink = opaque;
	listed l = { .store_id = sink->store_id, .num = m->number, .date = m->date, .archived_at = m->archived_at,
		     .size = m->size, .subject = g_strdup(m->subject), .from = g_strdup(m->sender),
		     .to = g_strdup(m->recipients), .message_id = g_strdup(m->message_id),
		     .has_attachment = m->has_attachment };
	g_array_append_val(sink->out, l);
	return 0;
}

/* One store's messages of a folder after the cursor, in order, at most want. */
static int list_store(mv_store *s, const char *archive, const char *path, const list_cursor *c, int64_t want,
                      GArray *out, GError **error)
{
	int64_t date, num;
	cursor_bounds(c, mv_store_id(s), &date, &num);
	list_sink sink = { .out = out, .store_id = mv_store_id(s) };
	return mv_store_folder_messages(s, archive, path, date, num, want, add_listed, &sink, error) < 0 ? -1 : 0;
}

/* Where `after` stands: the message must be of this folder (deleted since
 * is fine — its row keeps its date), else the answer would not continue
 * the listing the caller was reading. */
static int cursor_of(mv_command_ctx *ctx, const char *after, const char *archive, const char *path,
                     const char *folder, list_cursor *c, GError **error)
{
	memset(c, 0, sizeof *c);
	if (!after || !*after)
		return 0;
	int64_t num = 0;
	GError *err = NULL;
	mv_store *s = NULL;
	if (mv_message_id_parse(after, &c->store_id, &num) &&
	    (s = mv_instance_open_store(ctx->inst, c->store_id, MV_STORE_READ, &err)) &&
	    mv_store_folder_message_date(s, num, archive, path, &c->date, &err) == 1) {
		c->set = true;
		c->num = num;
	}
	mv_store_close(&s);
	g_clear_error(&err);
	if (!c->set)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetMessages: after: '%.64s' is not a message of folder "
		            "'%.200s' (list it again from the start)", after, folder);
	return c->set ? 0 : -1;
}

/* The listing after the cursor, every store merged, at most `want`. */
static GArray *list_folder(mv_command_ctx *ctx, const char *archive, const char *path, const list_cursor *c,
                           int64_t want, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GArray *rows = g_array_new(FALSE, FALSE, sizeof(listed));
	g_array_set_clear_func(rows, listed_clear);
	for (guint i = 0; i < infos->len && rows; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		if (!s || list_store(s, archive, path, c, want, rows, error) < 0)
			g_array_free(rows, TRUE), rows = NULL;
		mv_store_close(&s);
		/* Each store gave at most `want`: sorting and cutting as we go
		 * keeps at most twice that, however many stores there are. */
		if (rows && (int64_t)rows->len > want) {
			g_array_sort(rows, by_listing_order);
			g_array_remove_range(rows, (guint)want, rows->len - (guint)want);
		}
	}
	g_ptr_array_free(infos, TRUE);
	if (rows)
		g_array_sort(rows, by_listing_order);
	return rows;
}

static bool paging_args(const char *function, int64_t offset, int64_t limit, GError **error)
{
	if (limit < 0 || limit > MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: limit must be 1 to %d, or 0 for all (got %" G_GINT64_FORMAT
		            ")", function, MAX_ANSWER_MESSAGES, limit);
		return false;
	}
	if (offset < 0 || offset > MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: offset must be 0 to %d (got %" G_GINT64_FORMAT "); "
		            "deeper pages go by after, newest first", function, MAX_ANSWER_MESSAGES, offset);
		return false;
	}
	return true;
}

static json_t *get_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	int64_t offset = mv_arg_number(args, "offset", 0), limit = mv_arg_number(args, "limit", 0);
	if (!paging_args("GetMessages", offset, limit, error))
		return NULL;
	char *archive = NULL, *path = NULL;
	list_cursor c;
	GArray *rows = NULL;
	json_t *page = NULL;
	if (!split_folder(folder, "folder", &archive, &path, error) ||
	    !readable_folder(ctx, "GetMessages", archive, path, folder, error) ||
	    cursor_of(ctx, mv_arg_string(args, "after"), archive, path, folder, &c, error) < 0)
		goto out;
	/* "All" is one more than an answer may hold, to tell when it is more. */
	int64_t wanted = limit ? limit : MAX_ANSWER_MESSAGES + 1;
	if (!(rows = list_folder(ctx, archive, path, &c, offset + wanted, error)))
		goto out;
	if (!limit && rows->len > offset + MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "GetMessages: folder '%.200s' holds more than %d messages, more "
		            "than one answer holds: page through it with limit and after", folder, MAX_ANSWER_MESSAGES);
		goto out;
	}
	page = json_array();
	for (guint i = (guint)MIN((int64_t)rows->len, offset); i < rows->len; i++)
		json_array_append_new(page, listed_json(&g_array_index(rows, listed, i)));
out:
	if (rows)
		g_array_free(rows, TRUE);
	g_free(archive);
	g_free(path);
	return page;
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
	if (!readable_folder_name(ctx, "MoveFolder", from, error))
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
		folder_not_found("MoveFolder", mv_arg_string(args, "fromFolder"), error);
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
	if (archive && !readable_folder(ctx, "DeleteEmptyFolders", archive, path, folder, error))
		return false;
	return !restricted || require_rights(ctx, "DeleteEmptyFolders", folder, MV_FOLDER_DELETE, "delete", error);
}

static bool may_delete_folder(const char *archive, const char *path, void *opaque)
{
	return rights_on(opaque, archive, path) & MV_FOLDER_DELETE;
}

static json_t *delete_empty_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	char *archive = NULL, *path = NULL;
	if (folder && *folder && !split_folder(folder, "folder", &archive, &path, error))
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
			char *id = mv_message_id_format(h->store_id, h->number);
			mv_command_log(ctx, "no snippet for %s: %s", id, err ? err->message : "store not open");
			g_free(id);
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
	mv_query_free(&q);
}

/* Whether the caller may read the folder archive/path or one above it. */
static bool readable_at_or_above(mv_command_ctx *ctx, const char *archive, const char *path)
{
	if (rights_on(ctx, archive, "") & MV_FOLDER_READ)
		return true;
	bool readable = false;
	char *prefix = g_strdup(path);
	for (char *cut = prefix + strlen(prefix); cut && !readable; cut = g_strrstr_len(prefix, cut - prefix, "/")) {
		*cut = '\0';
		readable = *prefix && (rights_on(ctx, archive, prefix) & MV_FOLDER_READ);
	}
	g_free(prefix);
	return readable;
}

/* What store_has_readable looks for: the archive lower-cased, and for whom. */
typedef struct readable_probe {
	mv_command_ctx *ctx;
	const char *want;
} readable_probe;

/* Stops the walk (1) at a folder of the archive the caller may read. */
static int folder_readable(const char *archive, const char *path, void *opaque)
{
	readable_probe *p = opaque;
	char *lower = g_utf8_strdown(archive, -1);
	int found = strcmp(lower, p->want) == 0 && readable_at_or_above(p->ctx, archive, path);
	g_free(lower);
	return found;
}

/* One store's folders: does one belong to the archive (named as the
 * archive: term names it, lower-cased whole) and may the caller read it? */
static int store_has_readable(mv_command_ctx *ctx, mv_store *s, const char *want, GError **error)
{
	readable_probe p = { .ctx = ctx, .want = want };
	return mv_store_each_folder(s, folder_readable, &p, error);
}

/* An archive to search in: it has a folder the caller may read (or its
 * root), else the one answer for a missing folder. */
static bool searchable_archive(mv_command_ctx *ctx, const char *archive, GError **error)
{
	if (!archive || !*archive)
		return true;
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return false;
	char *want = g_utf8_strdown(archive, -1);
	int found = 0;
	for (guint i = 0; i < infos->len && found == 0; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error)
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		found = s ? store_has_readable(ctx, s, want, error) : -1;
		mv_store_close(&s);
	}
	g_free(want);
	g_ptr_array_free(infos, TRUE);
	if (found == 0)
		folder_not_found("SearchMessages", archive, error);
	return found == 1;
}

/* Our own addition to the reference's functions: full-text search through
 * the registry, so that the API, Web Access and IMAP search with the
 * caller's folder privileges applied inside the query. */
static json_t *search_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *sort = mv_arg_string(args, "sort");
	int64_t limit = mv_arg_number(args, "limit", DEFAULT_SEARCH_LIMIT);
	mv_search_options opts = {
		.archive = mv_arg_string(args, "archive"), .limit = limit ? limit : MAX_ANSWER_MESSAGES + 1,
		.sort = sort && strcmp(sort, "relevance") == 0 ? MV_SORT_RELEVANCE : MV_SORT_DATE, .access = ctx->access,
		.after = mv_arg_string(args, "after"), .offset = mv_arg_number(args, "offset", 0),
	};
	if (!paging_args("SearchMessages", opts.offset, limit, error) ||
	    !searchable_archive(ctx, opts.archive, error))
		return NULL;
	mv_searcher *searcher = mv_searcher_open(ctx->inst, error);
	if (!searcher)
		return NULL;
	GPtrArray *hits = NULL;
	json_t *out = NULL;
	if (mv_searcher_run(searcher, mv_arg_string(args, "query"), &opts, &hits, error) == 0 && !limit &&
	    hits->len > MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "SearchMessages: more than %d hits, more than one answer "
		            "holds: page through them with limit and after (or narrow the query)", MAX_ANSWER_MESSAGES);
	} else if (hits) {
		out = json_array();
		for (guint i = 0; i < hits->len; i++)
			json_array_append_new(out, mv_search_hit_json(hits->pdata[i]));
		if (mv_arg_bool(args, "snippets", false))
			add_snippets(ctx, searcher, mv_arg_string(args, "query"), out, hits);
	}
	if (hits)
		g_ptr_array_free(hits, TRUE);
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
	{ "folder", MV_ARG_STRING, false, NULL }, { "limit", MV_ARG_NUMBER, true, NULL },
	{ "after", MV_ARG_STRING, true, NULL }, { "offset", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };
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
	  "the messages of one folder, newest first (limit and after page them)" },
	{ "MoveFolder", args_move, "login", false, move_folder, "rename or move a folder (and its subfolders)" },
	{ "DeleteEmptyFolders", args_folder_opt, "login", false, delete_empty_folders, "remove folders without messages" },
	{ "SearchMessages", args_search, "login", false, search_messages,
	  "full-text search (query language of README.md) within the caller's folder privileges" },
	{ "DeleteMessage", args_delete, "login", false, delete_message, "delete one message, with the reason" },
	{ .name = NULL },
};
