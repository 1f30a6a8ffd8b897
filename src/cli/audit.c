/* cli/audit: `mailvault audit` — the audit log for a person at a
 * terminal or a script: entries one per line (or JSON lines with --json),
 * each printed as it is read, so that a log of millions of entries lists in
 * bounded memory; and --verify, which walks the hash chain and exits 1
 * naming the first entry that was changed or removed, so that a cron job
 * can watch it.
 *
 * Only reads, so it runs beside a server holding the data directory.  The
 * entries come from archive/audit.c directly: a listing of the whole log is
 * not an Administration API call and is not itself audited. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a listing has done so far, for the callback of mv_audit_each. */
typedef struct listing {
	bool json;
	int write_errno;               /* why stdout failed; 0 while it works */
	int64_t unprintable;           /* entries whose texts JSON cannot carry */
} listing;

/* One JSON object per line, exactly as mv_cli_print_json writes it; 1 when
 * the entry cannot be JSON (its stored texts are not valid UTF-8, which
 * only a damaged or tampered database holds), -1 when writing failed. */
static int print_json_entry(const mv_audit_entry *e)
{
	json_t *o = mv_audit_entry_json(e);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(o);
	if (!text)
		return 1;
	int rc = fputs(text, stdout) < 0 || putchar('\n') == EOF ? -1 : 0;
	free(text);
	return rc;
}

static int print_text_entry(const mv_audit_entry *e)
{
	char *time = mv_audit_format_time(e->time_ms);
	int n = printf("%s  %s  %s  %s  %s  %s\n", time, *e->user ? e->user : "-", *e->remote ? e->remote : "-",
	               e->event, e->success ? "ok" : "FAILED", e->details);
	g_free(time);
	return n < 0 ? -1 : 0;
}

/* mv_audit_fn: prints one entry as it comes, so that the listing needs no
 * more memory for a million entries than for one; stops when stdout fails
 * (a full disk, a closed pipe) rather than run through the rest. */
static int print_entry(const mv_audit_entry *e, void *opaque)
{
	listing *l = opaque;
	int rc = l->json ? print_json_entry(e) : print_text_entry(e);
	if (rc > 0) {
		/* Skipped on stdout as before, but not silently: a lost audit
		 * entry must show, and the exit status says so. */
		fprintf(stderr, "mailvault audit: entry %" G_GINT64_FORMAT " cannot be shown as JSON (its texts are "
		        "not valid UTF-8; mailvault audit --verify checks it)\n", e->seq);
		l->unprintable++;
	}
	if (rc < 0)
		l->write_errno = errno ? errno : EIO;
	return rc < 0 ? 1 : 0;
}

static int list_entries(mv_instance *inst, int64_t since_ms, bool json)
{
	GError *err = NULL;
	listing l = { .json = json };
	if (mv_audit_each(inst, since_ms, 0, print_entry, &l, &err) < 0)
		return mv_cli_fail(err);
	if (!l.write_errno && fflush(stdout) != 0)
		l.write_errno = errno ? errno : EIO;
	if (l.write_errno) {
		fprintf(stderr, "mailvault audit: cannot write the listing: %s\n", g_strerror(l.write_errno));
		return MV_EXIT_FAIL;
	}
	return l.unprintable ? MV_EXIT_FAIL : MV_EXIT_OK;
}

static int verify_chain(mv_instance *inst, const char *anchor, bool json)
{
	mv_audit_report r;
	GError *err = NULL;
	if (mv_audit_verify(inst, anchor, &r, &err) < 0)
		return mv_cli_fail(err);
	if (json)
		mv_cli_print_json(mv_audit_report_json(&r));
	else if (r.reason)
		printf("audit log BROKEN at entry %" G_GINT64_FORMAT ": %s\n", r.first_broken, r.reason);
	else
		printf("audit log intact: %" G_GINT64_FORMAT " entries; head (--anchor next time): %" G_GINT64_FORMAT
		       ":%s\n", r.entries, r.last_seq, r.last_hash ? r.last_hash : "-");
	int rc = r.reason ? MV_EXIT_FAIL : MV_EXIT_OK;
	mv_audit_report_clear(&r);
	return rc;
}

int mv_cli_audit(const mv_cli_globals *g, int argc, char **argv)
{
	char *since = NULL, *anchor = NULL;
	gboolean json = FALSE, verify = FALSE;
	GOptionEntry entries[] = {
		{ "since", 0, 0, G_OPTION_ARG_STRING, &since, "only entries from then on (ISO 8601 or Unix seconds)",
		  "TIME" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "one JSON object per line", NULL },
		{ "verify", 0, 0, G_OPTION_ARG_NONE, &verify,
		  "check the hash chain instead; exit status 1 when an entry was changed or removed", NULL },
		{ "anchor", 0, 0, G_OPTION_ARG_STRING, &anchor,
		  "with --verify: the head an earlier --verify printed; entries removed from the end since show too",
		  "ENTRY:HASH" },
		G_OPTION_ENTRY_NULL,
	};
	int status = MV_EXIT_USAGE;
	int64_t since_ms = 0;
	GError *err = NULL;
	if (!mv_cli_parse("audit", "", "Print the audit log, or verify its hash chain.", entries, &argc, &argv))
		goto out;
	if (argc > 1) {
		fprintf(stderr, "mailvault audit: unexpected argument '%s'\n", argv[1]);
		goto out;
	}
	if (verify && since) {
		fprintf(stderr, "mailvault audit: --verify checks the whole log; --since does not apply to it\n");
		goto out;
	}
	if (anchor && !verify) {
		fprintf(stderr, "mailvault audit: --anchor goes with --verify\n");
		goto out;
	}
	if (since && mv_audit_parse_time("--since", since, &since_ms, &err) < 0) {
		fprintf(stderr, "mailvault audit: %s\n", err->message);
		g_error_free(err);
		goto out;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst) {
		status = MV_EXIT_FAIL;
		goto out;
	}
	status = verify ? verify_chain(inst, anchor, json) : list_entries(inst, since_ms, json);
	mv_instance_close(&inst);
out:
	g_free(since);
	g_free(anchor);
	return status;
}
