/* commands/cmd_audit: two functions of ours on the audit log —
 * GetAuditLog (entries since a time, in order: [{seq, time, user, remote,
 * event, success, details, hash}], time ISO 8601 UTC) and VerifyAuditLog
 * (the hash chain: {entries, intact, firstBrokenEntry, reason, lastEntry,
 * lastHash}).  The log itself and its rules are archive/audit.c. */
#include "commands/commands.h"

#define AUDIT_DEFAULT_LIMIT 10000
#define AUDIT_MAX_LIMIT 100000

static void *failed(const char *function, GError **error)
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

/* A GetAuditLog listing being read, a batch of entries at a time. */
typedef struct audit_rows {
	mv_command_ctx *ctx;
	mv_audit_listing *listing;
	GPtrArray *batch;            /* of mv_audit_entry */
	guint next;
	int64_t limit, handed;       /* limit 0: all */
} audit_rows;

static void audit_rows_free(gpointer p)
{
	audit_rows *r = p;
	mv_audit_listing_free(&r->listing);
	if (r->batch)
		g_ptr_array_free(r->batch, TRUE);
	g_free(r);
}

static int audit_rows_next(void *state, GString *out, GError **error)
{
	audit_rows *r = state;
	if (r->next >= r->batch->len) {
		r->next = 0;
		if (mv_audit_listing_next(r->listing, r->batch, error) < 0)
			return -1;
	}
	if (r->batch->len == 0) {
		if (r->limit && r->handed == r->limit)
			mv_command_log(r->ctx, "the first %" G_GINT64_FORMAT " entries are shown; more may follow (use since, "
			               "or a larger limit up to %d)", r->limit, AUDIT_MAX_LIMIT);
		return 0;
	}
	json_t *row = mv_audit_entry_json(r->batch->pdata[r->next++]);
	mv_json_append(out, row);
	json_decref(row);
	r->handed++;
	return 1;
}

static mv_rows *get_audit_log(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "GetAuditLog";
	int64_t since = 0, count = 0;
	int64_t limit = mv_arg_number(args, "limit", AUDIT_DEFAULT_LIMIT);
	if (limit < 0 || limit > AUDIT_MAX_LIMIT) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "limit: must be 1 to %d, or 0 for all (got %" G_GINT64_FORMAT ")",
		            AUDIT_MAX_LIMIT, limit);
		return failed(function, error);
	}
	const char *since_text = opt_string(args, "since");
	if (since_text && mv_audit_parse_time("since", since_text, &since, error) < 0)
		return failed(function, error);
	/* "All" is refused up front when it is more than an answer holds:
	 * counting one past the bound says so without reading the entries. */
	if (!limit && mv_audit_count(ctx->inst, since, AUDIT_MAX_LIMIT + 1, &count, error) < 0)
		return failed(function, error);
	if (!limit && count > AUDIT_MAX_LIMIT) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "more than %d entries, more than one answer holds: read them "
		            "in parts with limit and since", AUDIT_MAX_LIMIT);
		return failed(function, error);
	}
	audit_rows *r = g_new0(audit_rows, 1);
	r->ctx = ctx;
	r->limit = limit;
	r->batch = g_ptr_array_new_with_free_func((GDestroyNotify)mv_audit_entry_free);
	if (!(r->listing = mv_audit_listing_open(ctx->inst, since, limit ? limit : AUDIT_MAX_LIMIT, error))) {
		audit_rows_free(r);
		return failed(function, error);
	}
	return mv_rows_new(audit_rows_next, r, audit_rows_free);
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
	{ .name = "GetAuditLog", .args = audit_log_args, .privilege = "admin", .rows = get_audit_log,
	  .summary = "Get audit log entries (since: ISO 8601 or Unix seconds; limit: default 10000, 0 = all up to 100000)." },
	{ "VerifyAuditLog", verify_audit_args, "admin", false, verify_audit_log,
	  "Check the audit log's hash chain: intact, or the first entry that was changed or removed; with anchor "
	  "(lastEntry:lastHash of an earlier check) also entries removed from its end.", NULL },
	{ .name = NULL },
};
