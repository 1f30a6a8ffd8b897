/* cli/show: `mailvault show` — a message exactly as archived (the store
 * checks its hash on reading), its decoded headers and text for a person,
 * or the SHA-256 of many messages at once for comparing an archive with its
 * sources.  Stores are opened read-only, so it runs beside an import. */
#include "cli/cli.h"
#include "mime/mime.h"
#include "search/search.h"

#include <stdio.h>
#include <string.h>

/* A header on one line of its own: a line break inside the value (left by
 * folding, or an encoded-word that decodes to one) becomes a space. */
static void print_header(const char *name, const char *value)
{
	char *line = mv_utf8_sanitize(value ? value : "", -1);
	g_strdelimit(line, "\r\n", ' ');
	printf("%s: %s\n", name, line);
	g_free(line);
}

static const char *view_header(const mv_message_view *v, const char *name)
{
	for (guint i = 0; i + 1 < v->headers->len; i += 2)
		if (g_ascii_strcasecmp(v->headers->pdata[i], name) == 0)
			return v->headers->pdata[i + 1];
	return NULL;
}

/* The Date header when it is a date; else the date the archive gave the
 * message (from Received, or the archive time), said to be that. */
static void print_date(const mv_message_view *v, int64_t archive_date)
{
	const char *header = view_header(v, "Date");
	int64_t t = archive_date;
	bool from_header = header && mv_date_parse(header, &t);
	char *date = mv_format_time_utc(t);
	char *line = g_strconcat(date, from_header ? "" : " (no valid Date header)", NULL);
	print_header("Date", line);
	g_free(line);
	g_free(date);
}

/* The text line by line: each line is sanitised (mv_utf8_sanitize takes
 * control characters, the line feed among them, so it is never given the
 * whole text). */
static void print_text(const GString *text)
{
	putchar('\n');
	const char *end = text->str + text->len;
	for (const char *line = text->str; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
		char *clean = mv_utf8_sanitize(line, (gssize)n);
		printf("%s\n", clean);
		g_free(clean);
		line += n + 1;
	}
}

/* Decoded headers one per line, attachments one per line, and with
 * with_text the body text with its own lines and paragraphs: the reader's
 * view of the message (mime/view.c), not the index's one-stream text. */
static void print_readable(const GByteArray *raw, int64_t archive_date, bool with_text)
{
	mv_message_view *v = mv_message_view_new(raw->data, raw->len);
	print_header("From", v->from);
	print_header("To", v->to);
	if (*v->cc)
		print_header("Cc", v->cc);
	print_date(v, archive_date);
	print_header("Subject", v->subject);
	print_header("Message-ID", v->message_id);
	for (guint i = 0; i < v->attachments->len; i++) {
		const mv_view_part *a = v->attachments->pdata[i];
		char *desc = g_strdup_printf("%s (%s, %lld bytes)", *a->name ? a->name : "unnamed", a->content_type,
		                             (long long)a->size);
		print_header("Attachment", desc);
		g_free(desc);
	}
	if (with_text)
		print_text(v->text);
	mv_message_view_free(&v);
}

/* One line per message, as sha256sum prints them: "HASH  ID".  A message
 * that cannot be read is named on stderr with the reason, and the others
 * go on; so one process fingerprints thousands of messages (to compare an
 * archive with its source files) instead of one `show` each. */
static int show_sha256(const mv_cli_globals *g, int n, char **ids)
{
	for (int i = 0; i < n; i++) {
		int store_id;
		int64_t num;
		if (!mv_message_id_parse(ids[i], &store_id, &num)) {
			fprintf(stderr, "mailvault: '%.100s' is not a message ID of the form STORE:NUMBER\n", ids[i]);
			return MV_EXIT_USAGE;
		}
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	int status = MV_EXIT_OK;
	for (int i = 0; i < n; i++) {
		int store_id;
		int64_t num;
		mv_message_id_parse(ids[i], &store_id, &num);
		GError *err = NULL;
		GByteArray *raw = NULL;
		mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
		if (!s || mv_store_read_message(s, num, &raw, &err) < 0) {
			fprintf(stderr, "mailvault: %s: %s\n", ids[i], err->message);
			g_error_free(err);
			status = MV_EXIT_FAIL;
		} else {
			char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, raw->data, raw->len);
			printf("%s  %s\n", hex, ids[i]);
			g_free(hex);
		}
		if (raw)
			g_byte_array_unref(raw);
		mv_store_close(&s);
	}
	mv_instance_close(&inst);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "mailvault: writing to stdout failed\n");
		status = MV_EXIT_FAIL;
	}
	return status;
}

int mv_cli_show(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean headers = FALSE, text = FALSE, sha256 = FALSE;
	GOptionEntry entries[] = {
		{ "headers", 0, 0, G_OPTION_ARG_NONE, &headers, "decoded main headers instead of the raw bytes", NULL },
		{ "text", 0, 0, G_OPTION_ARG_NONE, &text, "decoded headers and the body text", NULL },
		{ "sha256", 0, 0, G_OPTION_ARG_NONE, &sha256,
		  "the SHA-256 of each message's bytes instead (one line per ID, as sha256sum prints)", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("show", "ID...", "Print a message exactly as archived (its hash is checked first).",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (sha256 && argc >= 2 && !headers && !text)
		return show_sha256(g, argc - 1, argv + 1);
	int store_id;
	int64_t num;
	if (argc != 2 || sha256 || !mv_message_id_parse(argv[1], &store_id, &num)) {
		fprintf(stderr, "mailvault: show needs one message ID of the form STORE:NUMBER (as search prints); "
		        "--sha256 takes several, and neither --headers nor --text\n");
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	GByteArray *raw = NULL;
	mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
	mv_store_message m = { 0 };
	int status = MV_EXIT_OK;
	if (!s || mv_store_read_message(s, num, &raw, &err) < 0 ||
	    ((headers || text) && mv_store_message_get(s, num, &m, &err) < 0)) {
		status = mv_cli_fail(err);
	} else if (headers || text) {
		print_readable(raw, m.date, text);
	} else if (fwrite(raw->data, 1, raw->len, stdout) != raw->len || fflush(stdout) != 0) {
		fprintf(stderr, "mailvault: writing to stdout failed\n");
		status = MV_EXIT_FAIL;
	}
	if (raw)
		g_byte_array_unref(raw);
	mv_store_message_clear(&m);
	mv_store_close(&s);
	mv_instance_close(&inst);
	return status;
}
