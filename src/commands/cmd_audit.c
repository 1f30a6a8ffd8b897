/* commands/cmd_audit: two functions of ours on the audit log —
 * GetAuditLog (entries since a time, in order: [{seq, time, user, remote,
 * event, success, details, hash}], time ISO 8601 UTC) and VerifyAuditLog
 * (the hash chain: {entries, intact, firstBrokenEntry, reason, lastEntry,
 * lastHash}).  The log itself and its rules are archive/audit.c. */
#include "commands/commands.h"

#define AUDIT_DEFAULT_LIMIT 10000
#define AUDIT_MAX_LIMIT 100000

static json_t *failed(const char *function, GError **error)
{
	g_prefix_error(error, "%s: ", function);
	return NULL;
}

/* An optional string argument; an empty one counts as absent. */
static const char *opt_string(json_t *args, const char *name)
{
	const char *s = mv_arg_string(args, name);
	return s && *s ? s : NULL;
}

static json_t *get_audit_log(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "GetAuditLog";
	int64_t since = 0;
	int64_t limit = mv_arg_number(args, "limit", AUDIT_DEFAULT_LIMIT);
	if (limit < 0 || limit > AUDIT_MAX_LIMIT) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "limit: must be 1 to %d, or 0 for all (got %" G_GINT64_FORMAT ")",
		            AUDIT_MAX_LIMIT, limit);
		return failed(function, error);
	}
	const char *since_text = opt_string(args, "since");
	if (since_text && mv_audit_parse_time("since", since_text, &since, error) < 0)
		return failed(function, error);
	/* "All" reads one more than an answer holds, to tell when it is more. */
	GPtrArray *entries = mv_audit_read(ctx->inst, since, limit ? limit : AUDIT_MAX_LIMIT + 1, error);
	if (!entries)
		return failed(function, error);
	if (!limit && entries->len > AUDIT_MAX_LIMIT) {
		g_ptr_array_free(entries, TRUE);
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "more than %d entries, more than one answer holds: read them "
		            "in parts with limit and since", AUDIT_MAX_LIMIT);
		return failed(function, error);
	}
	json_t *list = json_array();
	for (guint i = 0; i < entries->len; i++)
		json_array_append_new(list, mv_audit_entry_json(entries->pdata[i]));
	if (limit && (int64_t)entries->len == limit)
		mv_command_log(ctx, "the first %" G_GINT64_FORMAT " entries are shown; more may follow (use since, or a "
		               "larger limit up to %d)", limit, AUDIT_MAX_LIMIT);
	g_ptr_array_free(entries, TRUE);
	return list;
}

static json_t *verify_audit_log(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_audit_report r;
	if (mv_audit_verify(ctx->inst, opt_string(args, "anchor"), &r, error) < 0)
		return failed("VerifyAuditLog", error);
	if (r.first_broken)
		mv_command_log(ctx, "the audit log is broken at entry %" G_GINT64_FORMAT ": %s", r.first_broken, r.reason);
	json_t *o = mv_audit_report_json(&r);
	mv_audit_report_clear(&r);
	return o;
}

static const mv_command_arg audit_log_args[] = {
	{ "since", MV_ARG_STRING, true, NULL },
	{ "limit", MV_ARG_NUMBER, true, NULL },
	{ .name = NULL },
};

static const mv_command_arg verify_audit_args[] = {
	{ "anchor", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};

const mv_command mv_commands_audit[] = {
	{ "GetAuditLog", audit_log_args, "admin", false, get_audit_log,
	  "Get audit log entries (since: ISO 8601 or Unix seconds; limit: default 10000, 0 = all up to 100000)." },
	{ "VerifyAuditLog", verify_audit_args, "admin", false, verify_audit_log,
	  "Check the audit log's hash chain: intact, or the first entry that was changed or removed; with anchor "
	  "(lastEntry:lastHash of an earlier check) also entries removed from its end." },
	{ .name = NULL },
};
