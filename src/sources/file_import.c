/* sources/file_import: the file-import loop (see file_import.h).
 *
 * Moved here from cli/import.c so that a profile run and `mailvault import`
 * archive a directory the same way: the folder each message lands in, the
 * archive MailStore headers name, items that are not mail counted by kind,
 * damaged Outlook items listed.  What a terminal adds (the progress line,
 * Ctrl-C, the summary) stays in cli/import.c; what a registry job adds
 * (the status envelope) in sources/profiles.c. */
#include "sources/file_import.h"

#include <string.h>

/* A damaged PST can hold a million damaged items: the run lists the first
 * ones and counts them all. */
#define MAX_DAMAGED_LISTED 1000
#define PROGRESS_INTERVAL 0.25

struct mv_file_import {
	char *path;
	char *archive;
	char *folder;
	mv_reader *reader;
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

mv_file_import *mv_file_import_open(const char *path, const mv_file_import_options *opts, GError **error)
{
	mv_reader *r = mv_reader_open(path, &opts->reader, error);
	if (!r)
		return NULL;
	mv_file_import *fi = g_new0(mv_file_import, 1);
	fi->path = g_strdup(path);
	fi->archive = g_strdup(opts->archive);
	fi->folder = g_strdup(opts->folder);
	fi->reader = r;
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

static void report_progress(mv_file_import *fi, mv_ingest *ing, const mv_task *task)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	uint64_t done = 0, total = 0, items = 0, items_total = 0;
	const char *folder = NULL;
	int percent = -1;
	if (mv_reader_items(fi->reader, &items, &items_total, &folder)) {
		if (items_total)
			percent = (int)(items * 100 / items_total);
	} else {
		mv_reader_progress(fi->reader, &done, &total);
		if (total)
			percent = (int)(done * 100 / total);
	}
	char *text = g_strdup_printf("%" G_GUINT64_FORMAT " archived, %" G_GUINT64_FORMAT " already archived, %"
	                             G_GUINT64_FORMAT " refused", c.imported, c.duplicates, c.refused);
	task->progress(task->opaque, percent > 100 ? 100 : percent, text);
	g_free(text);
}

static bool cancelled(const mv_task *task)
{
	return task && task->cancel && g_atomic_int_get(task->cancel);
}

/* One item the reader gave: handed to ing (a message), refused or counted.
 * Returns -1 only on ingest's fatal error. */
static int take_message(mv_file_import *fi, mv_ingest *ing, const char *root, mv_source_message *msg, GError **error)
{
	mv_format fmt = mv_reader_format(fi->reader);
	if (msg->damage)
		note_damaged(fi, msg->origin, msg->damage);
	/* MailStore headers name the folder itself, and the archive unless
	 * they come from MailStore (then the given one). */
	const char *archive = msg->archive ? msg->archive : fi->archive;
	if (!archive) {
		mv_ingest_refuse(ing, msg->origin, "no MailStore headers name its archive, and no --archive was given");
		return 0;
	}
	char *folder = msg->mailstore ? g_strdup(msg->folder) : message_folder(root, msg->folder, fmt, fi->folder != NULL);
	mv_ingest_message m = {
		.archive = archive, .folder = folder, .data = msg->data->data, .len = msg->data->len,
		.source = mv_format_name(fmt), .origin = msg->origin, .mail_flags = msg->mail_flags,
		.origin_sha256 = msg->origin_sha256, .archived_at = msg->archived_at,
	};
	int rc = mv_ingest_add(ing, &m, error);
	g_free(folder);
	return rc;
}

int mv_file_import_run(mv_file_import *fi, mv_ingest *ing, const mv_task *task, GError **error)
{
	char *root = default_root(fi, mv_reader_format(fi->reader));
	double last = 0;
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
		if (res == MV_READ_END)
			break;
		if (res == MV_READ_FATAL) {
			g_propagate_error(error, item_err);
			rc = -1;
			break;
		}
		if (res == MV_READ_SKIPPED)
			mv_ingest_refuse(ing, msg.origin ? msg.origin : fi->path, item_err ? item_err->message : "unreadable");
		else if (res == MV_READ_IGNORED)
			note_ignored(fi, ing, item_err ? item_err->message : "item of another kind");
		else
			rc = take_message(fi, ing, root, &msg, error);
		g_clear_error(&item_err);
		if (task && task->progress && mv_monotonic() - last > PROGRESS_INTERVAL) {
			last = mv_monotonic();
			report_progress(fi, ing, task);
		}
	}
	g_free(root);
	return rc;
}
