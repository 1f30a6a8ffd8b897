/* cli/import: `mailvault import`.
 *
 * import is a thin loop: a reader (mime/) yields messages, the one ingest
 * pipeline archives them.  What this file adds is what a person at a
 * terminal needs — the folder each message lands in, a live progress line,
 * Ctrl-C that stops cleanly after making everything read so far durable,
 * and a summary whose exit status says whether anything was refused. */
#include "cli/cli.h"
#include "ingest/ingest.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

typedef struct import_args {
	char *archive;
	char *folder;
	char *format;
	char *ext;
	gboolean no_subfolders;
	gboolean json;
	gboolean quiet;
	gboolean read_mailstore_headers;
	gboolean verify_signature;
	/* what the source held besides mail, and what of it was damaged */
	GHashTable *skipped;   /* kind -> count (GUINT_TO_POINTER) */
	GPtrArray *damaged;    /* mv_refusal *: archived, but part of the item was unreadable (the first 1000) */
	uint64_t damaged_items;
} import_args;

static char *default_root(const char *path, mv_format fmt, const import_args *a)
{
	if (a->folder)
		return g_strdup(a->folder);
	if (fmt == MV_FORMAT_MAILDIR)
		return g_strdup("Inbox");
	if (fmt == MV_FORMAT_MBOX || fmt == MV_FORMAT_MBOXO) {
		char *base = g_path_get_basename(path);
		char *dot = strrchr(base, '.');
		if (dot && dot != base)
			*dot = '\0';
		return base;
	}
	return g_strdup("");
}

/* Folder of a message: root, then the source's subfolder.  A Maildir without
 * --folder keeps its Maildir++ subfolders beside Inbox, as IMAP shows them. */
static char *message_folder(const char *root, const char *sub, mv_format fmt, bool explicit_root)
{
	if (!sub || !*sub)
		return g_strdup(root);
	if (!*root || (fmt == MV_FORMAT_MAILDIR && !explicit_root))
		return g_strdup(sub);
	return g_strconcat(root, "/", sub, NULL);
}

static char **parse_extensions(const char *ext)
{
	if (!ext)
		return NULL;
	char **parts = g_strsplit(ext, ",", -1);
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

static void progress_line(mv_ingest *ing, mv_reader *r, double started)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	uint64_t done = 0, total = 0;
	mv_reader_progress(r, &done, &total);
	double secs = mv_monotonic() - started;
	double rate = secs > 0 ? (double)(c.imported + c.duplicates) / secs : 0;
	double mbs = secs > 0 ? (double)done / secs / 1e6 : 0;
	char eta[32] = "--";
	if (total > done && mbs > 0)
		g_snprintf(eta, sizeof eta, "%.0fs", (double)(total - done) / 1e6 / mbs);
	uint64_t items = 0, items_total = 0;
	const char *folder = NULL;
	if (mv_reader_items(r, &items, &items_total, &folder)) {
		/* A PST is read item by item, not front to back: bytes say nothing. */
		double mbs_in = secs > 0 ? (double)c.bytes / secs / 1e6 : 0;
		fprintf(stderr, "\r%s: item %llu of %llu, %.0f msg/s, %.1f MB/s\033[K", *folder ? folder : "(top)",
		        (unsigned long long)items, (unsigned long long)items_total, rate, mbs_in);
	} else {
		fprintf(stderr, "\r%llu messages, %.1f MB of %.1f MB, %.0f msg/s, %.1f MB/s, ETA %s   ",
		        (unsigned long long)(c.imported + c.duplicates), done / 1e6, total / 1e6, rate, mbs, eta);
	}
	fflush(stderr);
}

static json_t *refusal_list(const GPtrArray *list)
{
	json_t *a = json_array();
	for (guint i = 0; i < list->len; i++) {
		const mv_refusal *r = list->pdata[i];
		json_array_append_new(a, json_pack("{s:s, s:s}", "origin", r->origin, "reason", r->reason));
	}
	return a;
}

static json_t *skipped_object(GHashTable *skipped)
{
	json_t *o = json_object();
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, skipped);
	while (g_hash_table_iter_next(&it, &k, &v))
		json_object_set_new(o, k, json_integer((json_int_t)GPOINTER_TO_UINT(v)));
	return o;
}

static void print_list(const char *what, const GPtrArray *list)
{
	for (guint i = 0; i < list->len; i++) {
		const mv_refusal *r = list->pdata[i];
		printf("%s: %s: %s\n", what, r->origin, r->reason);
	}
}

/* "skipped 7 items that are not mail: 5 appointment, 2 contact" */
static void print_skipped(GHashTable *skipped)
{
	if (!g_hash_table_size(skipped))
		return;
	GList *kinds = g_list_sort(g_hash_table_get_keys(skipped), (GCompareFunc)strcmp);
	GString *line = g_string_new(NULL);
	unsigned total = 0;
	for (GList *l = kinds; l; l = l->next) {
		unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(skipped, l->data));
		total += n;
		g_string_append_printf(line, "%s%u %s", line->len ? ", " : "", n, (const char *)l->data);
	}
	printf("skipped %u items that are not mail: %s\n", total, line->str);
	g_string_free(line, TRUE);
	g_list_free(kinds);
}

/* An EML directory's files without a wanted extension are not mail to
 * us, but a user who typed the directory expects to hear of them. */
static void print_other_files(const import_args *a, uint64_t others)
{
	if (!others)
		return;
	char **exts = parse_extensions(a->ext ? a->ext : "eml,msg");
	GString *wanted = g_string_new(NULL);
	for (char **e = exts; *e; e++)
		g_string_append_printf(wanted, "%s.%s", e == exts ? "" : e[1] ? ", " : " or ", *e);
	printf("skipped %" G_GUINT64_FORMAT " file%s without the extension %s (--ext '*' imports every file)\n", others,
	       others == 1 ? "" : "s", wanted->str);
	g_string_free(wanted, TRUE);
	g_strfreev(exts);
}

static void print_summary(mv_ingest *ing, mv_reader *r, const import_args *a, double secs)
{
	uint64_t others = mv_reader_other_files(r);
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	const GPtrArray *refusals = mv_ingest_refusals(ing);
	const GPtrArray *unreadable = mv_ingest_unreadable_attachments(ing);
	if (a->json) {
		json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o, s:I, s:I, s:o}",
		                      "imported", (json_int_t)c.imported, "duplicates", (json_int_t)c.duplicates,
		                      "malformed", (json_int_t)c.malformed, "refused", (json_int_t)c.refused,
		                      "bytes", (json_int_t)c.bytes, "seconds", (double)(int64_t)(secs * 1000.0 + 0.5) / 1000.0, "refusals", refusal_list(refusals),
		                      "skipped", skipped_object(a->skipped), "damaged", refusal_list(a->damaged),
		                      "damagedItems", (json_int_t)a->damaged_items, "unreadableAttachments", (json_int_t)c.unreadable_attachments,
		                      "attachmentErrors", refusal_list(unreadable));
		json_object_set_new(o, "skippedFiles", json_integer((json_int_t)others));
		mv_cli_print_json(o);
		return;
	}
	printf("imported %llu, already archived %llu, archived but malformed %llu, refused %llu (%.1f MB in %.1f s)\n",
	       (unsigned long long)c.imported, (unsigned long long)c.duplicates, (unsigned long long)c.malformed,
	       (unsigned long long)c.refused, c.bytes / 1e6, secs);
	print_skipped(a->skipped);
	print_other_files(a, others);
	if (c.unreadable_attachments)
		printf("archived, but an attachment's text could not be read for search: %llu\n",
		       (unsigned long long)c.unreadable_attachments);
	if (a->damaged_items)
		printf("archived with parts unreadable: %llu\n", (unsigned long long)a->damaged_items);
	print_list("refused", refusals);
	print_list("damaged", a->damaged);
	print_list("attachment not searchable", unreadable);
}

/* A damaged PST can hold a million damaged items: the summary lists the
 * first ones and counts them all. */
#define MAX_DAMAGED_LISTED 1000

static void note_item(GPtrArray *list, const char *origin, const char *reason)
{
	mv_refusal *r = g_new0(mv_refusal, 1);
	r->origin = g_strdup(origin);
	r->reason = g_strdup(reason);
	g_ptr_array_add(list, r);
}

static void refusal_free(gpointer p)
{
	mv_refusal *r = p;
	g_free(r->origin);
	g_free(r->reason);
	g_free(r);
}

/* Reads every message of r into ing.  Returns -1 on a fatal error. */
static int import_loop(mv_reader *r, mv_ingest *ing, const char *path, import_args *a, GError **error)
{
	mv_format fmt = mv_reader_format(r);
	char *root = default_root(path, fmt, a);
	const char *source = mv_format_name(fmt);
	bool live = !a->quiet && !a->json && isatty(STDERR_FILENO);
	double started = mv_monotonic(), last = 0;
	int rc = 0;
	while (rc == 0 && !interrupted) {
		mv_source_message msg = { 0 };
		GError *item_err = NULL;
		mv_read_result res = mv_reader_next(r, &msg, &item_err);
		if (res == MV_READ_END)
			break;
		if (res == MV_READ_FATAL) {
			g_propagate_error(error, item_err);
			rc = -1;
			break;
		}
		if (res == MV_READ_SKIPPED) {
			mv_ingest_refuse(ing, msg.origin ? msg.origin : path, item_err ? item_err->message : "unreadable");
			g_clear_error(&item_err);
			continue;
		}
		if (res == MV_READ_IGNORED) {
			const char *kind = item_err ? item_err->message : "item of another kind";
			guint n = GPOINTER_TO_UINT(g_hash_table_lookup(a->skipped, kind));
			g_hash_table_replace(a->skipped, g_strdup(kind), GUINT_TO_POINTER(n + 1));
			mv_ingest_note_skipped(ing, 1);
			g_clear_error(&item_err);
			continue;
		}
		if (msg.damage && a->damaged_items++ < MAX_DAMAGED_LISTED)
			note_item(a->damaged, msg.origin, msg.damage);
		/* MailStore headers name the folder itself, and the archive
		 * unless they come from MailStore (then --archive's). */
		const char *archive = msg.archive ? msg.archive : a->archive;
		if (!archive) {
			mv_ingest_refuse(ing, msg.origin, "no MailStore headers name its archive, and no --archive was given");
			continue;
		}
		char *folder = msg.mailstore ? g_strdup(msg.folder) : message_folder(root, msg.folder, fmt, a->folder != NULL);
		mv_ingest_message m = {
			.archive = archive, .folder = folder, .data = msg.data->data, .len = msg.data->len,
			.source = source, .origin = msg.origin, .mail_flags = msg.mail_flags,
			.origin_sha256 = msg.origin_sha256, .archived_at = msg.archived_at,
		};
		rc = mv_ingest_add(ing, &m, error);
		g_free(folder);
		if (live && mv_monotonic() - last > 0.25) {
			last = mv_monotonic();
			progress_line(ing, r, started);
		}
	}
	if (live)
		fprintf(stderr, "\n");
	g_free(root);
	return rc;
}

static bool check_import_args(const import_args *a, mv_reader_options *ro, int argc)
{
	if (argc != 2) {
		fprintf(stderr, "mailvault: import needs exactly one PATH (see 'mailvault import --help')\n");
		return false;
	}
	/* With MailStore headers the archive comes from each file; --archive
	 * is then only for files without them. */
	bool headers = a->read_mailstore_headers || a->verify_signature;
	if ((!a->archive && !headers) || (a->archive && !*a->archive)) {
		fprintf(stderr, "mailvault: import needs --archive NAME (the user archive to import into)\n");
		return false;
	}
	char **exts = a->ext ? parse_extensions(a->ext) : NULL;
	bool no_ext = exts && !exts[0];
	g_strfreev(exts);
	if (no_ext) {
		fprintf(stderr, "mailvault: --ext '%s' names no extension: give one or more (--ext eml,txt), or '*' for "
		        "every file\n", a->ext);
		return false;
	}
	GError *bad = NULL;
	if (a->archive && mv_archive_name_check(a->archive, &bad) < 0) {
		fprintf(stderr, "mailvault: --archive: %s\n", bad->message);
		g_error_free(bad);
		return false;
	}
	if (a->format && !mv_format_from_name(a->format, &ro->format)) {
		fprintf(stderr, "mailvault: unknown --format '%s' (expected eml, emldir, mbox, mboxrd, mboxo, maildir, pst or msg)\n",
		        a->format);
		return false;
	}
	ro->read_mailstore_headers = a->read_mailstore_headers;
	ro->verify_signature = a->verify_signature;
	return true;
}

/* MailStore headers and signatures belong to exported EML files. */
static bool check_headers_format(const import_args *a, mv_reader *r)
{
	mv_format fmt = mv_reader_format(r);
	if (!(a->read_mailstore_headers || a->verify_signature) || fmt == MV_FORMAT_EML || fmt == MV_FORMAT_EMLDIR)
		return true;
	fprintf(stderr, "mailvault: --read-mailstore-headers and --verify-signature read EML files, not %s\n",
	        mv_format_name(fmt));
	return false;
}

int mv_cli_import(const mv_cli_globals *g, int argc, char **argv)
{
	import_args a = { 0 };
	a.skipped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	a.damaged = g_ptr_array_new_with_free_func(refusal_free);
	GOptionEntry entries[] = {
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &a.archive, "user archive to import into (required)", "NAME" },
		{ "folder", 0, 0, G_OPTION_ARG_STRING, &a.folder, "folder inside the archive", "F" },
		{ "format", 0, 0, G_OPTION_ARG_STRING, &a.format, "eml, emldir, mbox, mboxrd, mboxo, maildir, pst or msg (default: detect)", "FMT" },
		{ "ext", 0, 0, G_OPTION_ARG_STRING, &a.ext, "EML directories: file extensions to import (default eml,msg; '*' for every file)", "eml,txt" },
		{ "no-subfolders", 0, 0, G_OPTION_ARG_NONE, &a.no_subfolders, "EML directories: do not descend", NULL },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &a.json, "print the summary as JSON", NULL },
		{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &a.quiet, "no progress line", NULL },
		{ "read-mailstore-headers", 0, 0, G_OPTION_ARG_NONE, &a.read_mailstore_headers,
		  "EML files of an export: archive, folder, archive date and flags from their MailStore headers", NULL },
		{ "verify-signature", 0, 0, G_OPTION_ARG_NONE, &a.verify_signature,
		  "EML files of a signed export: check each X.eml.sig against publickey.pem (implies --read-mailstore-headers)", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("import", "PATH", "Archive messages from an EML or Outlook .msg file or a directory of them, an mbox file, a Maildir, or an Outlook PST/OST file.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	mv_reader_options ro = { .format = MV_FORMAT_AUTO, .recursive = true };
	int status = MV_EXIT_USAGE;
	mv_instance *inst = NULL;
	mv_reader *r = NULL;
	mv_ingest *ing = NULL;
	GError *err = NULL, *end_err = NULL;
	int lock_fd = -1;
	if (!check_import_args(&a, &ro, argc))
		goto out;
	ro.recursive = !a.no_subfolders;
	ro.extensions = parse_extensions(a.ext);
	status = MV_EXIT_FAIL;
	/* A running server owns the directory: an import goes through it
	 * (archiving profiles), not beside it. */
	char *dir = mv_data_dir_resolve(g->data_dir);
	int lock_rc = mv_server_lock_local(dir, &lock_fd, &err);
	g_free(dir);
	if (lock_rc < 0) {
		status = mv_cli_fail(err);
		goto out;
	}
	if (!(inst = mv_cli_open_instance(g)))
		goto out;
	mv_ingest_run run = { .user = "admin", .remote = "local", .source = argv[1] };
	if (!(r = mv_reader_open(argv[1], &ro, &err))) {
		mv_ingest_audit_refused(inst, &run, a.archive, err->message);
		status = mv_cli_fail(err);
		goto out;
	}
	if (!check_headers_format(&a, r)) {
		status = MV_EXIT_USAGE;
		goto out;
	}
	if (!(ing = mv_ingest_begin(inst, &run, &err))) {
		status = mv_cli_fail(err);
		goto out;
	}
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	double started = mv_monotonic();
	int rc = import_loop(r, ing, argv[1], &a, &err);
	GError *flush_err = NULL;
	int flushed = mv_ingest_flush(ing, &flush_err);
	print_summary(ing, r, &a, mv_monotonic() - started);
	if (rc < 0 || flushed < 0) {
		mv_ingest_note_outcome(ing, (rc < 0 ? err : flush_err)->message);
		status = mv_cli_fail(rc < 0 ? err : flush_err);
		if (rc < 0)
			g_clear_error(&flush_err);
		goto out;
	}
	if (interrupted) {
		mv_ingest_note_outcome(ing, "interrupted");
		fprintf(stderr, "mailvault: interrupted; everything counted above is archived — run the same import again to continue\n");
		status = MV_EXIT_FAIL;
		goto out;
	}
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	status = c.refused ? MV_EXIT_REFUSED : MV_EXIT_OK;
out:
	/* err may already have been reported and freed: a fresh one here. */
	if (ing && mv_ingest_end(&ing, &end_err) < 0)
		g_clear_error(&end_err);
	mv_reader_close(&r);
	mv_instance_close(&inst);
	mv_server_lock_local_release(lock_fd);
	g_strfreev(ro.extensions);
	g_free(a.archive);
	g_free(a.folder);
	g_free(a.format);
	g_free(a.ext);
	g_hash_table_unref(a.skipped);
	g_ptr_array_unref(a.damaged);
	return status;
}
