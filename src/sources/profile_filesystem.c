/* sources/profile_filesystem: the FileSystem connector — its details and
 * their rules, and a run: one file import (sources/file_import.c) into one
 * mv_ingest named after the profile, so its worker result and audit entry
 * say which profile ran; it goes into the running server's stores while
 * searches go on, and a re-run costs a hash and a lookup per message
 * already archived.
 *
 * The server reads files as its own user, so the privilege to archive must
 * not become a privilege to read anywhere: a user other than an
 * administrator names paths below <data>/imports/<user>/ only, and
 * archives only into their own archive. */
#include "sources/profile_internal.h"
#include "sources/file_import.h"

#include <string.h>

static const char *const file_formats[] = { "auto", "eml", "mbox", "maildir", NULL };
static const char *const layouts[] = { "single", "multipleUsers", NULL };
static const char *const after_archiving[] = { "keep", "delete", "move", NULL };

static const mv_detail_spec filesystem_details[] = {
	{ "path", true, NULL, "", "what to archive: an EML or .msg file or a directory of them, an mbox file, a "
	  "directory of mbox files (format mbox: each file into the folder of its path), or a Maildir; administrators give an absolute path, other users a relative path below <data>/imports/<user>/" },
	{ "format", false, file_formats, "auto", "how to read path: eml (a file or a directory tree of EML/.msg files), "
	  "mbox, maildir, or auto (detected from what path is)" },
	{ "includeSubfolders", false, mv_detail_flags, "1", "EML directories: \"1\" reads subdirectories too (each one a folder), "
	  "\"0\" only the files in path itself" },
	{ "extensions", false, NULL, "eml,msg", "EML directories: comma-separated file extensions read as mail, "
	  "\"*\" for every file" },
	{ "targetArchive", false, NULL, NULL, "the user archive messages go to; default and, for users other than "
	  "administrators, the only value: the profile owner's own archive" },
	{ "targetFolder", false, NULL, "", "the folder the source's tree lands under; empty: the format's default "
	  "(EML: the archive's root, mbox: the file's name, Maildir: Inbox)" },
	{ "layout", false, layouts, "single", "single: path is one source for targetArchive; multipleUsers "
	  "(administrators only): path is an EML directory whose first-level directories are user names, each read into "
	  "that user's archive (targetArchive empty); a directory of no user and files at the top level are skipped with "
	  "a warning" },
	{ "afterArchiving", false, after_archiving, "keep", "what becomes of a source file once every message in it is "
	  "durably archived (as new or already archived): keep, delete, or move below moveTo; EML/.msg and Maildir "
	  "files go one by one, an mbox file only when all its messages are archived, PST/OST files are kept; a file "
	  "that cannot be deleted or moved is a warning" },
	{ "moveTo", false, NULL, "", "afterArchiving \"move\": the directory files are moved to, keeping their path "
	  "below path and never overwriting (a numbered name instead); given like path, and not inside it" },
	{ "includeFolders", false, NULL, "", "comma-separated folders, as archived (targetFolder included), each with its "
	  "subfolders, letter case aside: only messages in one of them are archived; empty: every folder" },
	{ "excludeFolders", false, NULL, "", "comma-separated folders, as archived, each with its subfolders, letter "
	  "case aside: messages in them are not archived (counted as skipped, their files kept)" },
	{ .name = NULL },
};


/* A relative path without "..": what a user other than an administrator
 * names below their own imports directory. */
static bool confined_path(const char *path)
{
	if (g_path_is_absolute(path))
		return false;
	char **parts = g_strsplit(path, "/", -1);
	bool ok = true;
	for (char **p = parts; ok && *p; p++)
		ok = strcmp(*p, "..") != 0;
	g_strfreev(parts);
	return ok;
}

/* path's directories, ".", ".." and repeated slashes resolved without
 * looking at the disk, under a root for a relative path. */
static char *lexical_path(const char *path)
{
	return g_canonicalize_filename(path, "/imports");
}

/* Whether inner is outer or below it. */
static bool path_within(const char *inner, const char *outer)
{
	char *i = lexical_path(inner), *o = lexical_path(outer);
	size_t n = strlen(o);
	bool within = strcmp(i, o) == 0 || (strncmp(i, o, n) == 0 && (i[n] == '/' || strcmp(o, "/") == 0));
	g_free(i);
	g_free(o);
	return within;
}

/* A path detail as the caller may give it: absolute from an administrator,
 * else relative below their own imports directory. */
static int check_path_detail(mv_command_ctx *ctx, const char *fn, const char *name, const char *path, GError **error)
{
	if (mv_profile_caller_is_admin(ctx)) {
		if (g_path_is_absolute(path))
			return 0;
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: '%s' is not an absolute path", fn, name, path);
		return -1;
	}
	if (confined_path(path))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.%s: '%s': users other than administrators name a"
	            " relative path below their own imports directory (<data>/imports/<user>/)", fn, name, path);
	return -1;
}

/* afterArchiving and moveTo together. */
static int check_after_archiving(mv_command_ctx *ctx, const char *fn, json_t *details, GError **error)
{
	const char *after = json_string_value(json_object_get(details, "afterArchiving"));
	const char *move_to = json_string_value(json_object_get(details, "moveTo"));
	const char *path = json_string_value(json_object_get(details, "path"));
	if (strcmp(after, "move") != 0) {
		if (!*move_to)
			return 0;
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo: given with afterArchiving '%s': a directory"
		            " to move to goes only with afterArchiving \"move\"", fn, after);
		return -1;
	}
	if (!*move_to) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo is required with afterArchiving \"move\" (the "
		            "directory archived files are moved to)", fn);
		return -1;
	}
	if (check_path_detail(ctx, fn, "moveTo", move_to, error) < 0)
		return -1;
	if (path_within(move_to, path)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo: '%s' is inside path '%s': the next run would"
		            " read the moved files again", fn, move_to, path);
		return -1;
	}
	return 0;
}

/* layout "multipleUsers": administrators only, EML directories, the
 * archive taken from each directory's name (targetArchive left empty). */
static int check_multiple_users(mv_command_ctx *ctx, const char *fn, json_t *given, json_t *details, GError **error)
{
	const char *format = json_string_value(json_object_get(details, "format"));
	const char *archive = json_string_value(json_object_get(given, "targetArchive"));
	if (!mv_profile_caller_is_admin(ctx)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.layout: 'multipleUsers' archives into other users' "
		            "archives: only administrators may use it", fn);
		return -1;
	}
	if (strcmp(format, "auto") != 0 && strcmp(format, "eml") != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.format: '%s' with layout 'multipleUsers', which "
		            "reads EML directories (format auto or eml)", fn, format);
		return -1;
	}
	if (archive && *archive) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.targetArchive: '%s' with layout 'multipleUsers', "
		            "where each user directory goes to that user's archive: leave it out or empty", fn, archive);
		return -1;
	}
	json_object_set_new(details, "targetArchive", json_string(""));
	return 0;
}

/* Connector-specific rules beyond the table: where path may point, which
 * archive a user may fill, what may become of the files. */
static int check_filesystem(mv_command_ctx *ctx, const char *fn, const char *owner, json_t *given, json_t *details,
                            GError **error)
{
	const char *path = json_string_value(json_object_get(details, "path"));
	const char *exts = json_string_value(json_object_get(details, "extensions"));
	char **list = mv_file_import_parse_extensions(exts);
	bool no_ext = !list || !list[0];
	g_strfreev(list);
	if (no_ext) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.extensions: '%s' names no extension (give one or "
		            "more, e.g. \"eml,txt\", or \"*\")", fn, exts);
		return -1;
	}
	if (check_path_detail(ctx, fn, "path", path, error) < 0 || check_after_archiving(ctx, fn, details, error) < 0)
		return -1;
	if (strcmp(json_string_value(json_object_get(details, "layout")), "multipleUsers") == 0)
		return check_multiple_users(ctx, fn, given, details, error);
	const char *archive = json_string_value(json_object_get(details, "targetArchive"));
	if (mv_archive_name_check(archive, error) < 0) {
		g_prefix_error(error, "%s: details.targetArchive: ", fn);
		return -1;
	}
	if (!mv_profile_caller_is_admin(ctx) && !mv_profile_same_user(archive, owner)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.targetArchive: '%s' is not your own archive ('%s'):"
		            " only administrators archive into another user's archive", fn, archive, owner);
		return -1;
	}
	return 0;
}

/* details.path as the server reads it: an administrator's as given, another
 * user's below their own imports directory. */
static char *source_path(mv_command_ctx *ctx, const mv_profile *p, const char *path)
{
	if (g_path_is_absolute(path))
		return g_strdup(path);
	return g_build_filename(mv_instance_data_dir(ctx->inst), "imports", p->owner, path, NULL);
}

/* The archive of the user a multiple-users directory is named after. */
static char *user_archive(void *opaque, const char *name, GError **error)
{
	mv_user *u = mv_user_get(opaque, name, error);
	if (!u)
		return NULL;
	char *archive = g_strdup(u->name);
	mv_user_free(u);
	return archive;
}

/* The file-import options of a profile's details; move_to_r is the path
 * moveTo names, read as path is (g_free() it). */
static void file_options(mv_command_ctx *ctx, const mv_profile *p, json_t *details, const char *path,
                         mv_file_import_options *o, char **move_to_r)
{
	const char *format = mv_profile_detail(details, "format");
	mv_format f = MV_FORMAT_AUTO;
	if (strcmp(format, "eml") == 0)
		f = g_file_test(path, G_FILE_TEST_IS_DIR) ? MV_FORMAT_EMLDIR : MV_FORMAT_EML;
	else if (strcmp(format, "mbox") == 0)
		f = MV_FORMAT_MBOX;
	else if (strcmp(format, "maildir") == 0)
		f = MV_FORMAT_MAILDIR;
	const char *folder = mv_profile_detail(details, "targetFolder");
	mv_after_archiving after = MV_AFTER_KEEP;
	/* A profile saved before afterArchiving existed keeps its files. */
	mv_after_archiving_from_name(mv_profile_detail(details, "afterArchiving"), &after);
	const char *move_to = mv_profile_detail(details, "moveTo");
	*move_to_r = NULL;
	if (after == MV_AFTER_MOVE && *move_to)
		*move_to_r = source_path(ctx, p, move_to);
	else if (after == MV_AFTER_MOVE)
		after = MV_AFTER_KEEP;   /* nowhere to move to: the check refuses it, a hand-edited row keeps */
	*o = (mv_file_import_options){
		.reader = { .format = f, .recursive = strcmp(mv_profile_detail(details, "includeSubfolders"), "1") == 0,
		            .extensions = mv_file_import_parse_extensions(mv_profile_detail(details, "extensions")) },
		.archive = mv_profile_detail(details, "targetArchive"),
		.folder = *folder ? folder : NULL,
		.after = after,
		.move_to = *move_to_r,
		.multiple_users = strcmp(mv_profile_detail(details, "layout"), "multipleUsers") == 0,
		.user_archive = user_archive,
		.user_opaque = ctx->inst,
		.include_folders = mv_file_import_parse_folders(mv_profile_detail(details, "includeFolders")),
		.exclude_folders = mv_file_import_parse_folders(mv_profile_detail(details, "excludeFolders")),
	};
}

static uint64_t count_skipped(mv_file_import *fi)
{
	uint64_t skipped = 0;
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, mv_file_import_skipped(fi));
	while (g_hash_table_iter_next(&it, &k, &v))
		skipped += GPOINTER_TO_UINT(v);
	return skipped;
}

static json_t *run_summary(mv_command_ctx *ctx, mv_ingest *ing, mv_file_import *fi)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	uint64_t skipped = count_skipped(fi), deleted = 0, moved = 0;
	mv_file_import_let_go(fi, &deleted, &moved);
	mv_profile_log_items(ctx, "refused", mv_ingest_refusals(ing));
	mv_profile_log_items(ctx, "warning", mv_ingest_warnings(ing));
	mv_command_log(ctx, "archived %" G_GUINT64_FORMAT ", already archived %" G_GUINT64_FORMAT ", archived but "
	               "malformed %" G_GUINT64_FORMAT ", refused %" G_GUINT64_FORMAT ", not mail %" G_GUINT64_FORMAT
	               ", source files deleted %" G_GUINT64_FORMAT ", moved %" G_GUINT64_FORMAT ", warnings %"
	               G_GUINT64_FORMAT, c.imported, c.duplicates, c.malformed, c.refused, skipped, deleted, moved,
	               c.warnings);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "archived", (json_int_t)c.imported,
	                 "alreadyArchived", (json_int_t)c.duplicates, "malformed", (json_int_t)c.malformed, "refused",
	                 (json_int_t)c.refused, "skipped", (json_int_t)skipped, "bytes", (json_int_t)c.bytes, "deleted",
	                 (json_int_t)deleted, "moved", (json_int_t)moved, "warnings", (json_int_t)c.warnings);
}

typedef struct files_run {
	mv_command_ctx *ctx;
	mv_file_import *fi;
} files_run;

/* Whatever was committed before a failure is durable: its files go too. */
static void settle_files(void *opaque, mv_ingest *ing)
{
	files_run *fr = opaque;
	mv_file_import_settle(fr->fi, ing);
}

static json_t *files_summary(void *opaque, mv_ingest *ing)
{
	files_run *fr = opaque;
	return run_summary(fr->ctx, ing, fr->fi);
}

/* Runs p (saved, or temporary with id 0) once. */
static json_t *run_files(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error)
{
	char *path = source_path(ctx, p, mv_profile_detail(details, "path"));
	char *move_to = NULL;
	mv_file_import_options fo;
	file_options(ctx, p, details, path, &fo, &move_to);
	mv_ingest_run run = { .user = ctx->user, .remote = ctx->remote, .source = path, .profile_id = p->id,
	                      .profile_name = p->name };
	mv_file_import *fi = NULL;
	mv_ingest *ing = NULL;
	json_t *out = NULL;
	GError *end_err = NULL;
	if (fo.multiple_users && !mv_profile_caller_is_admin(ctx)) {
		/* checked when it was saved; the owner may have lost the right since */
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "profile '%s': layout 'multipleUsers' archives into other users' "
		            "archives: only administrators may run it", p->name);
		mv_ingest_audit_refused(ctx->inst, &run, NULL, (*error)->message);
		goto out;
	}
	if (fo.multiple_users)
		mv_command_log(ctx, "profile '%s': archiving %s, each user directory into that user's archive", p->name, path);
	else
		mv_command_log(ctx, "profile '%s': archiving %s into '%s'", p->name, path, fo.archive);
	if (!(fi = mv_file_import_open(path, &fo, error))) {
		mv_ingest_audit_refused(ctx->inst, &run, fo.archive, (*error)->message);
		goto out;
	}
	if (!(ing = mv_ingest_begin(ctx->inst, &run, error)))
		goto out;
	mv_task task = { .progress = mv_profile_on_progress, .opaque = ctx, .cancel = ctx->cancel };
	int rc = mv_file_import_run(fi, ing, &task, error);
	files_run fr = { ctx, fi };
	mv_profile_run_end how = { .after_flush = settle_files, .summary = files_summary, .opaque = &fr };
	out = mv_profile_end_run(ctx, &ing, rc, &how, error);
out:
	if (ing && mv_ingest_end(&ing, &end_err) < 0)
		g_clear_error(&end_err);
	mv_file_import_close(&fi);
	g_strfreev(fo.reader.extensions);
	g_strfreev(fo.include_folders);
	g_strfreev(fo.exclude_folders);
	g_free(move_to);
	g_free(path);
	return out;
}

const mv_connector mv_connector_filesystem = {
	.name = "FileSystem",
	.details = filesystem_details,
	.check = check_filesystem,
	.run = run_files,
};
