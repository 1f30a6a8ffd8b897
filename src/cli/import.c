/* cli/import: `mailvault import`.
 *
 * import is a thin front end: sources/file_import's loop reads the path
 * (a reader of mime/, each message's archive and folder) into the one
 * ingest pipeline.  What this file adds is what a person at a terminal
 * needs — the arguments checked, a live progress line,
 * Ctrl-C that stops cleanly after making everything read so far durable,
 * and a summary whose exit status says whether anything was refused.
 * While a server holds the data directory (or with --server) the same
 * options go to that server instead (import_server.c). */
#include "cli/cli.h"
#include "sources/file_import.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The loop's cancel flag (mv_task), set from the signal handler. */
static volatile gint interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
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
static void print_other_files(const mv_cli_import_args *a, uint64_t others)
{
	if (!others)
		return;
	char **exts = mv_file_import_parse_extensions(a->ext ? a->ext : "eml,msg");
	GString *wanted = g_string_new(NULL);
	for (char **e = exts; *e; e++)
		g_string_append_printf(wanted, "%s.%s", e == exts ? "" : e[1] ? ", " : " or ", *e);
	printf("skipped %" G_GUINT64_FORMAT " file%s without the extension %s (--ext '*' imports every file)\n", others,
	       others == 1 ? "" : "s", wanted->str);
	g_string_free(wanted, TRUE);
	g_strfreev(exts);
}

static void print_summary(mv_ingest *ing, mv_file_import *fi, const mv_cli_import_args *a, double secs)
{
	uint64_t others = mv_reader_other_files(mv_file_import_reader(fi));
	GHashTable *skipped = mv_file_import_skipped(fi);
	const GPtrArray *damaged = mv_file_import_damaged(fi);
	uint64_t damaged_items = mv_file_import_damaged_items(fi);
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	const GPtrArray *refusals = mv_ingest_refusals(ing);
	const GPtrArray *unreadable = mv_ingest_unreadable_attachments(ing);
	if (a->json) {
		json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o, s:I, s:I, s:o}",
		                      "imported", (json_int_t)c.imported, "duplicates", (json_int_t)c.duplicates,
		                      "malformed", (json_int_t)c.malformed, "refused", (json_int_t)c.refused,
		                      "bytes", (json_int_t)c.bytes, "seconds", (double)(int64_t)(secs * 1000.0 + 0.5) / 1000.0, "refusals", refusal_list(refusals),
		                      "skipped", skipped_object(skipped), "damaged", refusal_list(damaged),
		                      "damagedItems", (json_int_t)damaged_items, "unreadableAttachments", (json_int_t)c.unreadable_attachments,
		                      "attachmentErrors", refusal_list(unreadable));
		json_object_set_new(o, "skippedFiles", json_integer((json_int_t)others));
		mv_cli_print_json(o);
		return;
	}
	printf("imported %llu, already archived %llu, archived but malformed %llu, refused %llu (%.1f MB in %.1f s)\n",
	       (unsigned long long)c.imported, (unsigned long long)c.duplicates, (unsigned long long)c.malformed,
	       (unsigned long long)c.refused, c.bytes / 1e6, secs);
	print_skipped(skipped);
	print_other_files(a, others);
	if (c.unreadable_attachments)
		printf("archived, but an attachment's text could not be read for search: %llu\n",
		       (unsigned long long)c.unreadable_attachments);
	if (damaged_items)
		printf("archived with parts unreadable: %llu\n", (unsigned long long)damaged_items);
	print_list("refused", refusals);
	print_list("damaged", damaged);
	print_list("attachment not searchable", unreadable);
}

/* The terminal's sink for the loop's progress: its own line, from the
 * ingest's counts and the reader's position rather than the loop's text. */
typedef struct live_progress {
	mv_ingest *ing;
	mv_reader *reader;
	double started;
} live_progress;

static void on_progress(void *opaque, int percent, const char *text)
{
	(void)percent;
	(void)text;
	live_progress *lp = opaque;
	progress_line(lp->ing, lp->reader, lp->started);
}

static bool check_import_args(const mv_cli_import_args *a, mv_reader_options *ro, int argc)
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
	char **exts = a->ext ? mv_file_import_parse_extensions(a->ext) : NULL;
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
static bool check_headers_format(const mv_cli_import_args *a, mv_reader *r)
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
	mv_cli_import_args a = { 0 };
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
		{ "server", 0, 0, G_OPTION_ARG_STRING, &a.server,
		  "import through this server (default: the server holding the data directory, if one runs)", "URL" },
		{ "user", 0, 0, G_OPTION_ARG_STRING, &a.user, "through a server: the user to log on as (default admin)", "NAME" },
		{ "password-file", 0, 0, G_OPTION_ARG_FILENAME, &a.password_file,
		  "through a server: the password is this file's first line (else $MAILVAULT_PASSWORD, else asked)", "FILE" },
		{ "cacert", 0, 0, G_OPTION_ARG_FILENAME, &a.cacert,
		  "through a server: trust this certificate (default: the holding server's own)", "FILE" },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("import", "PATH", "Archive messages from an EML or Outlook .msg file or a directory of them, an mbox file, a Maildir, or an Outlook PST/OST file.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	mv_reader_options ro = { .format = MV_FORMAT_AUTO, .recursive = true };
	int status = MV_EXIT_USAGE;
	mv_instance *inst = NULL;
	mv_file_import *fi = NULL;
	mv_ingest *ing = NULL;
	GError *err = NULL, *end_err = NULL;
	int lock_fd = -1;
	if (!check_import_args(&a, &ro, argc))
		goto out;
	ro.recursive = !a.no_subfolders;
	ro.extensions = mv_file_import_parse_extensions(a.ext);
	status = MV_EXIT_FAIL;
	/* A running server owns the directory: an import goes through it
	 * (a temporary archiving profile), not beside it. */
	char *dir = mv_data_dir_resolve(g->data_dir);
	int lock_rc = a.server ? -1 : mv_server_lock_local(dir, &lock_fd, &err);
	if (lock_rc < 0 && (a.server || g_error_matches(err, MV_ERROR, MV_ERR_STATE))) {
		g_clear_error(&err);
		status = mv_cli_import_via_server(dir, &a, argv[1]);
		g_free(dir);
		goto out;
	}
	g_free(dir);
	if (lock_rc < 0) {
		status = mv_cli_fail(err);
		goto out;
	}
	if (!(inst = mv_cli_open_instance(g)))
		goto out;
	mv_ingest_run run = { .user = "admin", .remote = "local", .source = argv[1] };
	mv_file_import_options fo = { .reader = ro, .archive = a.archive, .folder = a.folder };
	if (!(fi = mv_file_import_open(argv[1], &fo, &err))) {
		mv_ingest_audit_refused(inst, &run, a.archive, err->message);
		status = mv_cli_fail(err);
		goto out;
	}
	if (!check_headers_format(&a, mv_file_import_reader(fi))) {
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
	bool live = !a.quiet && !a.json && isatty(STDERR_FILENO);
	live_progress lp = { .ing = ing, .reader = mv_file_import_reader(fi), .started = started };
	mv_task task = { .progress = live ? on_progress : NULL, .opaque = &lp, .cancel = &interrupted };
	int rc = mv_file_import_run(fi, ing, &task, &err);
	if (live)
		fprintf(stderr, "\n");
	/* Ctrl-C is not a failure: what was read is archived, said below. */
	if (rc < 0 && g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED)) {
		g_clear_error(&err);
		rc = 0;
	}
	GError *flush_err = NULL;
	int flushed = mv_ingest_flush(ing, &flush_err);
	print_summary(ing, fi, &a, mv_monotonic() - started);
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
	mv_file_import_close(&fi);
	mv_instance_close(&inst);
	mv_server_lock_local_release(lock_fd);
	g_strfreev(ro.extensions);
	g_free(a.archive);
	g_free(a.folder);
	g_free(a.format);
	g_free(a.ext);
	g_free(a.server);
	g_free(a.user);
	g_free(a.password_file);
	g_free(a.cacert);
	return status;
}
