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
 * moves the file once ingest says the message is durable. */
#include "sources/file_import.h"

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
	guint users_done;
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

char **mv_file_import_parse_extensions(const char *list)
{
	if (!list)
		return NULL;
	char **parts = g_strsplit(list, ",", -1);
	GPtrArray *out = g_ptr_array_new();
	for (char **p = parts; *p; p++) {
		char *e = g_strstrip(*p);
		while (*e == '.')
			e++;
		if (*e)
			g_ptr_array_add(out, g_ascii_strdown(e, -1));
	}
	g_strfreev(parts);
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first-level entries of a multiple-users directory, hidden ones left
 * out as every directory reader does, sorted. */
static GPtrArray *list_users(const char *path, GError **error)
{
	GDir *d = g_dir_open(path, 0, error);
	if (!d) {
		g_prefix_error(error, "multiple users: ");
		return NULL;
	}
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *name;
	while ((name = g_dir_read_name(d)) != NULL)
		if (name[0] != '.')
			g_ptr_array_add(names, g_strdup(name));
	g_dir_close(d);
	g_ptr_array_sort(names, cmp_names);
	return names;
}

mv_file_import *mv_file_import_open(const char *path, const mv_file_import_options *opts, GError **error)
{
	mv_reader *r = NULL;
	GPtrArray *users = NULL;
	if (opts->multiple_users ? !(users = list_users(path, error)) : !(r = mv_reader_open(path, &opts->reader, error)))
		return NULL;
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

static char *default_root(const mv_file_import *fi, mv_format fmt)
{
	if (fi->folder)
		return g_strdup(fi->folder);
	if (fmt == MV_FORMAT_MAILDIR)
		return g_strdup("Inbox");
	if (fmt == MV_FORMAT_MBOX || fmt == MV_FORMAT_MBOXO) {
		char *base = g_path_get_basename(fi->path);
		char *dot = strrchr(base, '.');
		if (dot && dot != base)
			*dot = '\0';
		return base;
	}
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

static void report_progress(mv_file_import *fi, mv_ingest *ing, const mv_task *task)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	int percent = reader_percent(fi->reader);
	/* Multiple users: each user directory an equal share. */
	if (fi->users && fi->users->len)
		percent = (int)((fi->users_done * 100 + (guint)MAX(percent, 0)) / fi->users->len);
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
	uint64_t token = source_token(fi, ing, fmt, msg);
	/* MailStore headers name the folder itself, and the archive unless
	 * they come from MailStore (then the given one). */
	const char *archive = msg->archive ? msg->archive : archive_given;
	if (!archive) {
		mv_ingest_refuse(ing, msg->origin, "no MailStore headers name its archive, and no --archive was given");
		return 0;
	}
	char *folder = msg->mailstore ? g_strdup(msg->folder) : message_folder(root, msg->folder, fmt, fi->folder != NULL);
	mv_ingest_message m = {
		.archive = archive, .folder = folder, .data = msg->data->data, .len = msg->data->len,
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
		mv_read_result res = mv_reader_next(fi->reader, &msg, &item_err);
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
			report_progress(fi, ing, task);
		}
	}
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
		char *relative = g_path_get_basename(fi->path);
		fi->container = mv_source_files_track_container(fi->sf, fi->path, relative);
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

int mv_file_import_run(mv_file_import *fi, mv_ingest *ing, const mv_task *task, GError **error)
{
	double last = 0;
	if (fi->sf)
		mv_source_files_attach(fi->sf, ing);
	if (!fi->multiple_users) {
		prepare_single(fi, ing);
		return read_source(fi, ing, task, fi->archive, &last, error);
	}
	int rc = 0;
	for (; rc == 0 && fi->users_done < fi->users->len; fi->users_done++)
		rc = read_user(fi, ing, task, fi->users->pdata[fi->users_done], &last, error);
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
