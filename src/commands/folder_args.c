/* commands/folder_args: what the folder and message functions share —
 * a folder named as an argument ("archive/path/to/folder", NFC), the
 * caller's rights on it, the one "does not exist" answer that keeps other
 * users' folders unprobeable, and the bounds of one answer that lists
 * messages.  Kept apart so that cmd_folders.c (folders and changes),
 * cmd_folder_listing.c (GetMessages) and cmd_search.c (SearchMessages)
 * apply the same rules in the same words. */
#include "commands/folder_args.h"
#include "commands/stores_in_use.h"

#include <string.h>

#define MAX_FOLDER_NAME 4096

/* Splits "archive/path" (no leading or trailing slash, no empty component). */
bool mv_folder_split(const char *name, const char *arg, char **archive_r, char **path_r, GError **error)
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

char *mv_folder_full_name(const char *archive, const char *path)
{
	return *path ? g_strconcat(archive, "/", path, NULL) : g_strdup(archive);
}

unsigned mv_folder_rights(mv_command_ctx *ctx, const char *archive, const char *path)
{
	return mv_access_folder(ctx->access, archive, path);
}

/* Rights on a full folder name "archive/path". */
unsigned mv_folder_rights_by_name(mv_command_ctx *ctx, const char *name)
{
	const char *slash = strchr(name, '/');
	char *archive = slash ? g_strndup(name, (gsize)(slash - name)) : g_strdup(name);
	unsigned r = mv_folder_rights(ctx, archive, slash ? slash + 1 : "");
	g_free(archive);
	return r;
}

bool mv_folder_require_rights(mv_command_ctx *ctx, const char *function, const char *name, unsigned needed,
                              const char *what, GError **error)
{
	if ((mv_folder_rights_by_name(ctx, name) & needed) == needed)
		return true;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: user %s has no %s privilege on folder '%.200s'", function,
	            mv_access_user(ctx->access), what, name);
	return false;
}

/* The one answer for a folder the caller may not see, whether it does not
 * exist or the caller may not read it, from every folder function: the
 * two cannot be told apart, so other users' folders cannot be probed. */
void mv_folder_not_found(const char *function, const char *name, GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: folder '%.200s' does not exist", function, name);
}

typedef struct folder_ref {
	const char *archive, *path;
} folder_ref;

static int store_has_folder(mv_command_ctx *ctx, mv_store *s, void *opaque, GError **error)
{
	const folder_ref *f = opaque;
	return mv_store_has_folder(s, f->archive, f->path, error);
}

/* Whether a store in use has the folder, or a folder below it (a parent
 * exists as the prefix of a deeper folder; an archive while it has one):
 * the folders a listing shows.  1, 0, or -1 with *error. */
int mv_folder_exists(mv_command_ctx *ctx, const char *archive, const char *path, GError **error)
{
	folder_ref f = { archive, path };
	return mv_each_store_in_use(ctx, store_has_folder, &f, error);
}

/* A folder named as an argument: it exists and the caller may read it,
 * else the one "does not exist" answer. */
bool mv_folder_readable(mv_command_ctx *ctx, const char *function, const char *archive, const char *path,
                        const char *name, GError **error)
{
	int found = (mv_folder_rights(ctx, archive, path) & MV_FOLDER_READ) ? mv_folder_exists(ctx, archive, path, error) : 0;
	if (found == 0)
		mv_folder_not_found(function, name, error);
	return found == 1;
}

/* The same for a folder's full name "archive/path". */
bool mv_folder_readable_by_name(mv_command_ctx *ctx, const char *function, const char *name, GError **error)
{
	char *archive = NULL, *path = NULL;
	bool ok = mv_folder_split(name, "folder", &archive, &path, error) &&
	          mv_folder_readable(ctx, function, archive, path, name, error);
	g_free(archive);
	g_free(path);
	return ok;
}

bool mv_answer_paging_check(const char *function, int64_t offset, int64_t limit, GError **error)
{
	if (limit < 0 || limit > MV_MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: limit must be 1 to %d, or 0 for all (got %" G_GINT64_FORMAT
		            ")", function, MV_MAX_ANSWER_MESSAGES, limit);
		return false;
	}
	if (offset < 0 || offset > MV_MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: offset must be 0 to %d (got %" G_GINT64_FORMAT "); "
		            "deeper pages go by after, newest first", function, MV_MAX_ANSWER_MESSAGES, offset);
		return false;
	}
	return true;
}
