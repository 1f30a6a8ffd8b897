/* cli/cmd_audit: `mailvault audit` — the audit log for a person at a
 * terminal or a script: entries one per line (or JSON lines with --json),
 * and --verify, which walks the hash chain and exits 1 naming the first
 * entry that was changed or removed, so that a cron job can watch it.
 *
 * Only reads, so it runs beside a server holding the data directory.  The
 * entries come from archive/audit.c directly: a listing of the whole log is
 * not an Administration API call and is not itself audited. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static void print_entry(const mv_audit_entry *e, bool json)
{
	if (json) {
		mv_cli_print_json(mv_audit_entry_json(e));
		return;
	}
	char *time = mv_audit_format_time(e->time_ms);
	printf("%s  %s  %s  %s  %s  %s\n", time, *e->user ? e->user : "-", *e->remote ? e->remote : "-", e->event,
	       e->success ? "ok" : "FAILED", e->details);
	g_free(time);
}

static int list_entries(mv_instance *inst, int64_t since_ms, bool json)
{
	GError *err = NULL;
	GPtrArray *entries = mv_audit_read(inst, since_ms, 0, &err);
	if (!entries)
		return mv_cli_fail(err);
	for (guint i = 0; i < entries->len; i++)
		print_entry(entries->pdata[i], json);
	g_ptr_array_free(entries, TRUE);
	return fflush(stdout) == 0 ? MV_EXIT_OK : MV_EXIT_FAIL;
}

static int verify_chain(mv_instance *inst, bool json)
{
	int64_t checked = 0, broken = 0;
	char *reason = NULL;
	GError *err = NULL;
	if (mv_audit_verify(inst, &checked, &broken, &reason, &err) < 0)
		return mv_cli_fail(err);
	if (json)
		mv_cli_print_json(json_pack("{s:I, s:b, s:o, s:o}", "entries", (json_int_t)checked, "intact", broken == 0,
		                            "firstBrokenEntry", broken ? json_integer(broken) : json_null(), "reason",
		                            reason ? json_string(reason) : json_null()));
	else if (broken)
		printf("audit log BROKEN at entry %" G_GINT64_FORMAT ": %s\n", broken, reason);
	else
		printf("audit log intact: %" G_GINT64_FORMAT " entries\n", checked);
	g_free(reason);
	return broken ? MV_EXIT_FAIL : MV_EXIT_OK;
}

int mv_cmd_audit(const mv_cli_globals *g, int argc, char **argv)
{
	char *since = NULL;
	gboolean json = FALSE, verify = FALSE;
	GOptionEntry entries[] = {
		{ "since", 0, 0, G_OPTION_ARG_STRING, &since, "only entries from then on (ISO 8601 or Unix seconds)",
		  "TIME" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "one JSON object per line", NULL },
		{ "verify", 0, 0, G_OPTION_ARG_NONE, &verify,
		  "check the hash chain instead; exit status 1 when an entry was changed or removed", NULL },
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
	status = verify ? verify_chain(inst, json) : list_entries(inst, since_ms, json);
	mv_instance_close(&inst);
out:
	g_free(since);
	return status;
}
