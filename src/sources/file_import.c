/* sources/file_import: the file-import loop (see file_import.h).
 *
 * Moved here from cli/import.c so that a profile run and `mailvault import`
 * archive a directory the same way: the folder each message lands in, the
 * archive MailStore headers name, items that are not mail counted by kind,
 * damaged Outlook items listed.  What a terminal adds (the progress line,
 * Ctrl-C, the summary) stays in cli/import.c; what a registry job adds
 * (the status envelope) in sources/profiles.c.
 *
 * Two layouts: one source (a file or a tree) into one archive, or "multiple
 * users", a directory whose first-level directories are user names, each
 * read by a reader of its own into that user's archive, so a directory of
 * no user is passed over unread.  Each message of a file the options let go
 * of after archiving carries a token of source_files.c, which deletes or
 * moves the file once ingest says the message is durable.
 *
 * A third layout comes from the mbox format on a directory: a tree of mbox
 * files, each read by a reader of its own into the folder its path names,
 * as mail clients keep them ("Archive/2019.mbox" -> "Archive/2019"). */
#include "sources/file_import.h"
#include "sources/prefetch.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* A damaged PST can hold a million damaged items: the run lists the first
 * ones and counts them all. */
#define MAX_DAMAGED_LISTED 1000
#define PROGRESS_INTERVAL 0.25

struct mv_file_import {
	char *path;
	char *archive;
	char *folder;
	mv_reader *reader;     /* the one source, or the user directory being read */
	mv_reader_options reader_opts;   /* extensions owned: a reader per user directory */
	bool multiple_users;
	mv_user_archive_fn user_archive;
	void *user_opaque;
	GPtrArray *users;      /* multiple users: first-level names, sorted */
	GPtrArray *mboxes;     /* an mbox directory: the files' paths below it, sorted */
	uint64_t not_mbox;     /* its files that are not mbox files */
	guint units_done;      /* users or mbox files read */
	char *unit_path;       /* the file or directory being read */
	char **include_folders, **exclude_folders;
	mv_source_files *sf;   /* NULL: files are kept */
	uint64_t container;    /* the mbox's token, 0 for none */
	GHashTable *skipped;   /* kind -> count */
	GPtrArray *damaged;    /* mv_refusal * */
	uint64_t damaged_items;
};

static void refusal_free(gpointer p)
{
	mv_refusal *r = p;
	g_free(r->origin);
	g_free(r->reason);
	g_free(r);
}

/* A comma-separated list, each item trimmed and handed to make, which
 * returns the entry (new) or NULL to drop it; NULL-terminated, NULL for
 * NULL. */
static char **comma_list(const char *list, char *(*make)(char *item))
{
	if (!list)
		return NULL;
	char **parts = g_strsplit(list, ",", -1);
	GPtrArray *out = g_ptr_array_new();
	for (char **p = parts; *p; p++) {
		char *entry = make(g_strstrip(*p));
		if (entry)
			g_ptr_array_add(out, entry);
	}
	g_strfreev(parts);
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static char *extension_entry(char *item)
{
	while (*item == '.')
		item++;
	return *item ? g_ascii_strdown(item, -1) : NULL;
}

static char *folder_entry(char *item)
{
	while (*item == '/')
		item++;
	size_t n = strlen(item);
	while (n && item[n - 1] == '/')
		item[--n] = '\0';
	return *item ? g_strdup(item) : NULL;
}

char **mv_file_import_parse_extensions(const char *list)
{
	return comma_list(list, extension_entry);
}

char **mv_file_import_parse_folders(const char *list)
{
	char **folders = comma_list(list, folder_entry);
	if (folders && !folders[0])
		g_clear_pointer(&folders, g_strfreev);
	return folders;
}

/* folder is entry or below it, letter case aside. */
static bool folder_within(const char *folder, const char *entry)
{
	char *f = g_utf8_casefold(folder, -1), *e = g_utf8_casefold(entry, -1);
	size_t n = strlen(e);
	bool within = strncmp(f, e, n) == 0 && (f[n] == '\0' || f[n] == '/');
	g_free(f);
	g_free(e);
	return within;
}

static bool folder_in_list(const char *folder, char **list)
{
	for (char **e = list; e && *e; e++)
		if (folder_within(folder, *e))
			return true;
	return false;
}

static bool folder_passes(const mv_file_import *fi, const char *folder)
{
	if (fi->include_folders && !folder_in_list(folder, fi->include_folders))
		return false;
	return !folder_in_list(folder, fi->exclude_folders);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's entries, hidden ones left out as every directory reader
 * does, sorted. */
static GPtrArray *visible_names(const char *dir, GError **error)
{
	GDir *d = g_dir_open(dir, 0, error);
	if (!d)
		return NULL;
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *name;
	while ((name = g_dir_read_name(d)) != NULL)
		if (name[0] != '.')
			g_ptr_array_add(names, g_strdup(name));
	g_dir_close(d);
	g_ptr_array_sort(names, cmp_names);
	return names;
}

/* The first-level entries of a multiple-users directory. */
static GPtrArray *list_users(const char *path, GError **error)
{
	GPtrArray *names = visible_names(path, error);
	if (!names)
		g_prefix_error(error, "multiple users: ");
	return names;
}

#define MAX_MBOX_DIR_DEPTH 64

/* Whether a file begins as an mbox does ("From "): a mail client's
 * directory also holds its index files (.msf), which are not mail. */
static bool starts_as_mbox(const char *path)
{
	char head[5];
	FILE *f = fopen(path, "rbe");
	bool yes = f && fread(head, 1, sizeof head, f) == sizeof head && memcmp(head, "From ", 5) == 0;
	if (f)
		fclose(f);
	return yes;
}

/* The mbox files of a directory tree, relative, sorted, depth-bounded as
 * every directory walk is; subfolders only when the options ask.  Files
 * that do not begin as an mbox are counted in *others. */
static int list_mboxes(const char *root, const char *rel, int depth, const mv_reader_options *ro, GPtrArray *out,
                       uint64_t *others, GError **error)
{
	char *dir = rel ? g_build_filename(root, rel, NULL) : g_strdup(root);
	GPtrArray *names = visible_names(dir, error);
	g_free(dir);
	if (!names)
		return -1;
	int rc = 0;
	for (guint i = 0; rc == 0 && i < names->len; i++) {
		char *child = rel ? g_build_filename(rel, names->pdata[i], NULL) : g_strdup(names->pdata[i]);
		char *full = g_build_filename(root, child, NULL);
		struct stat st;
		bool known = lstat(full, &st) == 0;
		if (known && S_ISDIR(st.st_mode) && ro->recursive) {
			if (depth + 1 > MAX_MBOX_DIR_DEPTH)
				g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: nested deeper than %d directories", full,
				            MAX_MBOX_DIR_DEPTH);
			rc = depth + 1 > MAX_MBOX_DIR_DEPTH ? -1 : list_mboxes(root, child, depth + 1, ro, out, others, error);
		} else if (known && S_ISREG(st.st_mode)) {
			if (starts_as_mbox(full))
				g_ptr_array_add(out, g_steal_pointer(&child));
			else
				(*others)++;
		}
		g_free(child);
		g_free(full);
	}
	g_ptr_array_unref(names);
	return rc;
}

static bool mbox_directory(const char *path, const mv_reader_options *ro)
{
	return (ro->format == MV_FORMAT_MBOX || ro->format == MV_FORMAT_MBOXO) && g_file_test(path, G_FILE_TEST_IS_DIR);
}

static GPtrArray *open_mboxes(const char *path, const mv_reader_options *ro, uint64_t *others, GError **error)
{
	GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
	if (list_mboxes(path, NULL, 0, ro, files, others, error) == 0 && files->len)
		return files;
	if (files->len == 0 && !(error && *error))
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: no mbox files found in the directory", path);
	g_ptr_array_unref(files);
	return NULL;
}

mv_file_import *mv_file_import_open(const char *path, const mv_file_import_options *opts, GError **error)
{
	mv_reader *r = NULL;
	GPtrArray *users = NULL, *mboxes = NULL;
	uint64_t not_mbox = 0;
	if (opts->multiple_users) {
		if (!(users = list_users(path, error)))
			return NULL;
	} else if (mbox_directory(path, &opts->reader)) {
		if (!(mboxes = open_mboxes(path, &opts->reader, &not_mbox, error)))
			return NULL;
	} else if (!(r = mv_reader_open(path, &opts->reader, error))) {
		return NULL;
	}
	mv_file_import *fi = g_new0(mv_file_import, 1);
	fi->path = g_strdup(path);
	fi->archive = g_strdup(opts->archive);
	fi->folder = g_strdup(opts->folder);
	fi->reader = r;
	fi->reader_opts = opts->reader;
	fi->reader_opts.extensions = g_strdupv(opts->reader.extensions);
	fi->multiple_users = opts->multiple_users;
	fi->user_archive = opts->user_archive;
	fi->user_opaque = opts->user_opaque;
	fi->users = users;
	fi->mboxes = mboxes;
	fi->not_mbox = not_mbox;
	fi->unit_path = g_strdup(path);
	fi->include_folders = g_strdupv(opts->include_folders);
	fi->exclude_folders = g_strdupv(opts->exclude_folders);
	if (opts->after != MV_AFTER_KEEP)
		fi->sf = mv_source_files_new(opts->after, opts->move_to);
	fi->skipped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	fi->damaged = g_ptr_array_new_with_free_func(refusal_free);
	return fi;
}

void mv_file_import_close(mv_file_import **fi_r)
{
	mv_file_import *fi = *fi_r;
	if (!fi)
		return;
	*fi_r = NULL;
	mv_reader_close(&fi->reader);
	g_strfreev(fi->reader_opts.extensions);
	if (fi->users)
		g_ptr_array_unref(fi->users);
	if (fi->mboxes)
		g_ptr_array_unref(fi->mboxes);
	g_free(fi->unit_path);
	g_strfreev(fi->include_folders);
	g_strfreev(fi->exclude_folders);
	mv_source_files_free(&fi->sf);
	g_hash_table_unref(fi->skipped);
	g_ptr_array_unref(fi->damaged);
	g_free(fi->path);
	g_free(fi->archive);
	g_free(fi->folder);
	g_free(fi);
}

mv_reader *mv_file_import_reader(mv_file_import *fi)
{
	return fi->reader;
}

GHashTable *mv_file_import_skipped(mv_file_import *fi)
{
	return fi->skipped;
}

const GPtrArray *mv_file_import_damaged(mv_file_import *fi)
{
	return fi->damaged;
}

uint64_t mv_file_import_damaged_items(mv_file_import *fi)
{
	return fi->damaged_items;
}

/* An mbox file's folder: its name without the extension, or in an mbox
 * directory its whole relative path so ("Archive/2019.mbox" ->
 * "Archive/2019"). */
static char *mbox_folder(const char *path, bool relative)
{
	char *name = relative ? g_strdup(path) : g_path_get_basename(path);
	char *slash = strrchr(name, '/');
	char *dot = strrchr(slash ? slash + 1 : name, '.');
	if (dot && dot != (slash ? slash + 1 : name))
		*dot = '\0';
	return name;
}

static char *default_root(const mv_file_import *fi, mv_format fmt)
{
	if (fi->folder && fi->mboxes) {
		char *sub = mbox_folder(fi->mboxes->pdata[fi->units_done], true);
		char *joined = g_strconcat(fi->folder, *fi->folder ? "/" : "", sub, NULL);
		g_free(sub);
		return joined;
	}
	if (fi->folder)
		return g_strdup(fi->folder);
	if (fmt == MV_FORMAT_MAILDIR)
		return g_strdup("Inbox");
	if (fmt == MV_FORMAT_MBOX || fmt == MV_FORMAT_MBOXO)
		return mbox_folder(fi->mboxes ? fi->mboxes->pdata[fi->units_done] : fi->unit_path, fi->mboxes != NULL);
	return g_strdup("");
}

/* Folder of a message: root, then the source's subfolder.  A Maildir without
 * a folder given keeps its Maildir++ subfolders beside Inbox, as IMAP shows them. */
static char *message_folder(const char *root, const char *sub, mv_format fmt, bool explicit_root)
{
	if (!sub || !*sub)
		return g_strdup(root);
	if (!*root || (fmt == MV_FORMAT_MAILDIR && !explicit_root))
		return g_strdup(sub);
	return g_strconcat(root, "/", sub, NULL);
}

static void note_damaged(mv_file_import *fi, const char *origin, const char *reason)
{
	if (fi->damaged_items++ >= MAX_DAMAGED_LISTED)
		return;
	mv_refusal *r = g_new0(mv_refusal, 1);
	r->origin = g_strdup(origin);
	r->reason = g_strdup(reason);
	g_ptr_array_add(fi->damaged, r);
}

static void note_ignored(mv_file_import *fi, mv_ingest *ing, const char *kind)
{
	guint n = GPOINTER_TO_UINT(g_hash_table_lookup(fi->skipped, kind));
	g_hash_table_replace(fi->skipped, g_strdup(kind), GUINT_TO_POINTER(n + 1));
	mv_ingest_note_skipped(ing, 1);
}

/* How far the reader is, in percent; -1 when it cannot tell. */
static int reader_percent(mv_reader *r)
{
	uint64_t done = 0, total = 0, items = 0, items_total = 0;
	const char *folder = NULL;
	if (!r)
		return -1;
	if (mv_reader_items(r, &items, &items_total, &folder))
		return items_total ? (int)(items * 100 / items_total) : -1;
	mv_reader_progress(r, &done, &total);
	return total ? (int)(done * 100 / total) : -1;
}

static void report_progress(mv_file_import *fi, mv_ingest *ing, const mv_task *task, int percent)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	/* Multiple users, an mbox directory: each user or file an equal share. */
	GPtrArray *units = fi->users ? fi->users : fi->mboxes;
	if (units && units->len)
		percent = (int)((fi->units_done * 100 + (guint)MAX(percent, 0)) / units->len);
	char *text = g_strdup_printf("%" G_GUINT64_FORMAT " archived, %" G_GUINT64_FORMAT " already archived, %"
	                             G_GUINT64_FORMAT " refused", c.imported, c.duplicates, c.refused);
	task->progress(task->opaque, percent > 100 ? 100 : percent, text);
	g_free(text);
}

static bool cancelled(const mv_task *task)
{
	return task && task->cancel && g_atomic_int_get(task->cancel);
}

/* Formats of one message per file: each file is let go of on its own. */
static bool file_per_message(mv_format fmt)
{
	return fmt == MV_FORMAT_EML || fmt == MV_FORMAT_MSG || fmt == MV_FORMAT_EMLDIR || fmt == MV_FORMAT_MAILDIR;
}

/* The token a message is handed in with: its file's, the mbox's, or 0
 * (kept: not a file of its own, or not all of it was read). */
static uint64_t source_token(mv_file_import *fi, mv_ingest *ing, mv_format fmt, const mv_source_message *msg)
{
	if (!fi->sf)
		return 0;
	if (fi->container) {
		mv_source_files_handed(fi->sf, fi->container);
		return fi->container;
	}
	if (!file_per_message(fmt))
		return 0;
	if (msg->damage) {
		mv_ingest_warn(ing, msg->origin, "kept: not all of it could be read");
		return 0;
	}
	char *relative = mv_source_files_relative(fi->path, msg->origin);
	uint64_t token = mv_source_files_track(fi->sf, msg->origin, relative);
	g_free(relative);
	return token;
}

/* One item the reader gave: handed to ing (a message), refused or counted.
 * Returns -1 only on ingest's fatal error. */
static int take_message(mv_file_import *fi, mv_ingest *ing, const char *root, const char *archive_given,
                        mv_source_message *msg, GError **error)
{
	mv_format fmt = mv_reader_format(fi->reader);
	if (msg->damage)
		note_damaged(fi, msg->origin, msg->damage);
	char *folder = msg->mailstore ? g_strdup(msg->folder) : message_folder(root, msg->folder, fmt, fi->folder != NULL);
	if (!folder_passes(fi, folder)) {
		note_ignored(fi, ing, "excluded folder");
		if (fi->container)
			mv_source_files_keep(fi->sf, fi->container, "some of its messages are in a folder the filters leave out");
		g_free(folder);
		return 0;
	}
	uint64_t token = source_token(fi, ing, fmt, msg);
	/* MailStore headers name the folder itself, and the archive unless
	 * they come from MailStore (then the given one). */
	const char *archive = msg->archive ? msg->archive : archive_given;
	if (!archive) {
		mv_ingest_refuse(ing, msg->origin, "no MailStore headers name its archive, and no --archive was given");
		g_free(folder);
		return 0;
	}
	mv_ingest_message m = {
		.archive = archive, .folder = folder, .data = msg->data->data, .len = msg->data->len,
		.shared = msg->shared ? msg->data : NULL,
		.source = mv_format_name(fmt), .origin = msg->origin, .mail_flags = msg->mail_flags,
		.origin_sha256 = msg->origin_sha256, .archived_at = msg->archived_at, .token = token,
	};
	int rc = mv_ingest_add(ing, &m, error);
	g_free(folder);
	return rc;
}

/* Reads fi->reader to its end into archive. */
static int read_source(mv_file_import *fi, mv_ingest *ing, const mv_task *task, const char *archive,
                       double *last, GError **error)
{
	mv_prefetch *ahead = mv_prefetch_start(fi->reader, reader_percent, error);
	if (!ahead)
		return -1;
	char *root = default_root(fi, mv_reader_format(fi->reader));
	int rc = 0;
	while (rc == 0) {
		if (cancelled(task)) {
			g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "the import of '%s' was cancelled", fi->path);
			rc = -1;
			break;
		}
		mv_source_message msg = { 0 };
		GError *item_err = NULL;
		int percent = -1;
		mv_read_result res = mv_prefetch_next(ahead, &msg, &percent, &item_err);
		if (res == MV_READ_END) {
			if (fi->container)
				mv_source_files_read_whole(fi->sf, fi->container);
			break;
		}
		if (res == MV_READ_FATAL) {
			g_propagate_error(error, item_err);
			rc = -1;
			break;
		}
		if (res == MV_READ_SKIPPED) {
			const char *why = item_err ? item_err->message : "unreadable";
			mv_ingest_refuse(ing, msg.origin ? msg.origin : fi->path, why);
			if (fi->container)
				mv_source_files_keep(fi->sf, fi->container, "a part of it could not be read as mail");
		} else if (res == MV_READ_IGNORED) {
			note_ignored(fi, ing, item_err ? item_err->message : "item of another kind");
		} else {
			rc = take_message(fi, ing, root, archive, &msg, error);
		}
		g_clear_error(&item_err);
		if (fi->sf)
			mv_source_files_settle(fi->sf, ing, false);
		if (task && task->progress && mv_monotonic() - *last > PROGRESS_INTERVAL) {
			*last = mv_monotonic();
			report_progress(fi, ing, task, percent);
		}
	}
	mv_prefetch_stop(&ahead);
	g_free(root);
	return rc;
}

/* What a source that is let go of as a whole, or not at all, needs first. */
static void prepare_single(mv_file_import *fi, mv_ingest *ing)
{
	mv_format fmt = mv_reader_format(fi->reader);
	if (!fi->sf || file_per_message(fmt))
		return;
	if (fmt == MV_FORMAT_MBOX || fmt == MV_FORMAT_MBOXO) {
		char *relative = fi->mboxes ? g_strdup(fi->mboxes->pdata[fi->units_done]) : g_path_get_basename(fi->path);
		fi->container = mv_source_files_track_container(fi->sf, fi->unit_path, relative);
		g_free(relative);
		return;
	}
	mv_ingest_warn(ing, fi->path, "kept: a PST or OST file is not deleted or moved after archiving");
}

/* One first-level entry of a multiple-users directory. */
static int read_user(mv_file_import *fi, mv_ingest *ing, const mv_task *task, const char *name, double *last,
                     GError **error)
{
	char *dir = g_build_filename(fi->path, name, NULL);
	char *archive = NULL;
	GError *err = NULL;
	int rc = 0;
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		mv_ingest_warn(ing, dir, "not archived: at the top level of a multiple-users directory, a file belongs to "
		               "no user (each user's mail is in a directory named after the user)");
		goto out;
	}
	if (!(archive = fi->user_archive(fi->user_opaque, name, &err))) {
		char *why = g_strdup_printf("directory skipped: '%s' is not a user (%s)", name, err->message);
		mv_ingest_warn(ing, dir, why);
		g_free(why);
		goto out;
	}
	mv_reader_options ro = fi->reader_opts;
	ro.format = MV_FORMAT_EMLDIR;
	mv_reader_close(&fi->reader);
	if (!(fi->reader = mv_reader_open(dir, &ro, &err))) {
		mv_ingest_refuse(ing, dir, err->message);
		goto out;
	}
	rc = read_source(fi, ing, task, archive, last, error);
out:
	g_clear_error(&err);
	g_free(archive);
	g_free(dir);
	return rc;
}

/* The next file of an mbox directory, read whole into its folder. */
static int read_mbox_file(mv_file_import *fi, mv_ingest *ing, const mv_task *task, double *last, GError **error)
{
	g_free(fi->unit_path);
	fi->unit_path = g_build_filename(fi->path, fi->mboxes->pdata[fi->units_done], NULL);
	fi->container = 0;
	mv_reader_close(&fi->reader);
	GError *err = NULL;
	if (!(fi->reader = mv_reader_open(fi->unit_path, &fi->reader_opts, &err))) {
		mv_ingest_refuse(ing, fi->unit_path, err->message);
		g_error_free(err);
		return 0;
	}
	prepare_single(fi, ing);
	return read_source(fi, ing, task, fi->archive, last, error);
}

int mv_file_import_run(mv_file_import *fi, mv_ingest *ing, const mv_task *task, GError **error)
{
	double last = 0;
	if (fi->sf)
		mv_source_files_attach(fi->sf, ing);
	if (fi->mboxes) {
		int rc = 0;
		for (uint64_t i = 0; i < fi->not_mbox; i++)
			note_ignored(fi, ing, "not an mbox file");
		for (; rc == 0 && fi->units_done < fi->mboxes->len; fi->units_done++)
			rc = read_mbox_file(fi, ing, task, &last, error);
		return rc;
	}
	if (!fi->multiple_users) {
		prepare_single(fi, ing);
		return read_source(fi, ing, task, fi->archive, &last, error);
	}
	int rc = 0;
	for (; rc == 0 && fi->units_done < fi->users->len; fi->units_done++)
		rc = read_user(fi, ing, task, fi->users->pdata[fi->units_done], &last, error);
	return rc;
}

void mv_file_import_settle(mv_file_import *fi, mv_ingest *ing)
{
	if (fi->sf)
		mv_source_files_settle(fi->sf, ing, true);
}

void mv_file_import_let_go(mv_file_import *fi, uint64_t *deleted_r, uint64_t *moved_r)
{
	*deleted_r = *moved_r = 0;
	if (fi->sf)
		mv_source_files_counts(fi->sf, deleted_r, moved_r);
}
