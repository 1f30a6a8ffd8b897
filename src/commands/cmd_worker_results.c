/* commands/cmd_worker_results: GetWorkerResults and GetWorkerResultReport —
 * what each archiving run left (archive/worker_results.c), in the shape
 * monitoring scripts read: result, profileName, completeTime and the
 * counts.  An administrator sees every run; any other user only runs made
 * under its own name (the reference: userName "must be equal to the
 * current username").  GetWorkerResults takes `timeZoneID` with a capital
 * D, as MailStore's own wrapper spells it and as its reference warns;
 * `timeZoneId` is accepted too.  Get/SetWorkerResultsRetention are ours:
 * MailStore sets the retention in its client, which has no API function. */
#include "commands/commands.h"
#include "base/time_zone.h"

#include <string.h>

static json_t *failed(const char *function, GError **error)
{
	g_prefix_error(error, "%s: ", function);
	return NULL;
}

/* The user whose runs the caller may read: itself, unless an administrator. */
static bool allowed_user(mv_command_ctx *ctx, const char *function, const char *asked, const char **user_r,
                         GError **error)
{
	if (mv_access_unrestricted(ctx->access)) {
		*user_r = asked;
		return true;
	}
	if (asked && g_ascii_strcasecmp(asked, ctx->user) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: userName must be your own user name (%s)", function,
		            ctx->user);
		return false;
	}
	*user_r = ctx->user;
	return true;
}

static json_t *get_worker_results(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *zone_id = mv_arg_string(args, "timeZoneID");
	if (!zone_id)
		zone_id = mv_arg_string(args, "timeZoneId");
	if (!zone_id) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetWorkerResults: timeZoneID is missing (e.g. $Local; "
		            "GetTimeZones lists the ids)");
		return NULL;
	}
	mv_worker_results_filter f = { .profile_id = mv_arg_number(args, "profileID", 0) };
	if (!allowed_user(ctx, "GetWorkerResults", mv_arg_string(args, "userName"), &f.user, error))
		return NULL;
	GTimeZone *tz = mv_time_zone(zone_id, "timeZoneID", error);
	if (!tz)
		return failed("GetWorkerResults", error);
	json_t *out = NULL;
	if (mv_time_parse_local(mv_arg_string(args, "fromIncluding"), tz, "fromIncluding", &f.from, error) == 0 &&
	    mv_time_parse_local(mv_arg_string(args, "toExcluding"), tz, "toExcluding", &f.to, error) == 0)
		out = mv_worker_results_list(ctx->inst, &f, tz, error);
	g_time_zone_unref(tz);
	return out ? out : failed("GetWorkerResults", error);
}

static json_t *get_worker_result_report(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id = mv_arg_number(args, "id", 0);
	char *user = NULL;
	json_t *report = mv_worker_result_report(ctx->inst, id, &user, error);
	if (!report)
		return failed("GetWorkerResultReport", error);
	const char *allowed = NULL;
	bool ok = allowed_user(ctx, "GetWorkerResultReport", user, &allowed, error);
	g_free(user);
	if (!ok) {
		/* Another user's run reads as one that does not exist. */
		g_clear_error(error);
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "GetWorkerResultReport: worker result %lld does not exist",
		            (long long)id);
		json_decref(report);
		return NULL;
	}
	return report;
}

static json_t *get_retention(mv_command_ctx *ctx, json_t *args, GError **error)
{
	(void)args;
	(void)error;
	return json_pack("{s:I}", "days", (json_int_t)mv_worker_results_retention_days(ctx->inst));
}

static json_t *set_retention(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t days = mv_arg_number(args, "days", 0);
	if (mv_worker_results_set_retention_days(ctx->inst, days, error) < 0)
		return failed("SetWorkerResultsRetention", error);
	mv_command_audit_note(ctx, "worker results kept %" G_GINT64_FORMAT " days", days);
	return json_null();
}

static const mv_command_arg no_args[] = { { .name = NULL } };
static const mv_command_arg retention_args[] = {
	{ "days", MV_ARG_NUMBER, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg results_args[] = {
	{ "fromIncluding", MV_ARG_STRING, false, NULL },
	{ "toExcluding", MV_ARG_STRING, false, NULL },
	{ "timeZoneID", MV_ARG_STRING, true, NULL },
	{ "timeZoneId", MV_ARG_STRING, true, NULL },
	{ "profileID", MV_ARG_NUMBER, true, NULL },
	{ "userName", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};

static const mv_command_arg report_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ .name = NULL },
};

const mv_command mv_commands_worker_results[] = {
	{ "GetWorkerResults", results_args, "login", false, get_worker_results,
	  "the results of archiving runs started in a time range (users: their own)", NULL },
	{ "GetWorkerResultReport", report_args, "login", false, get_worker_result_report,
	  "one run's result with the items that failed and why (users: their own)", NULL },
	{ "GetWorkerResultsRetention", no_args, "admin", false, get_retention,
	  "how many days worker results (and job results) are kept", NULL },
	{ "SetWorkerResultsRetention", retention_args, "admin", false, set_retention,
	  "keep worker results (and job results) this many days (1 to 100000; older ones go at the next run's end)", NULL },
	{ .name = NULL },
};
