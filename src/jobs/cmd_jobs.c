/* jobs/cmd_jobs: the job functions of the reference — GetJobs, CreateJob,
 * DeleteJob, RenameJob, SetJobEnabled, SetJobSchedule, RunJobAsync,
 * CancelJobAsync, GetJobResults — with its argument names and values.
 *
 * A job's action is checked when it is saved as it will be run: split as
 * the shell splits it, its function found and its arguments parsed by the
 * registry, so a typo is an error now rather than a failed run at night.
 * An action that holds a secret argument is refused: it would be stored
 * and listed in clear.
 * Its owner must be an administrator, as the reference says; the run
 * itself (jobs/scheduler.c) uses the owner's privileges as they are then.
 * A schedule is checked by jobs/schedule.c and stored as given.  Lives
 * above commands/ beside the scheduler: RunJobAsync and CancelJobAsync act
 * on the running server's runs; main registers the table. */
#include "jobs/cmd_jobs.h"
#include "jobs/schedule.h"
#include "jobs/scheduler.h"
#include "base/time_zone.h"

#include <string.h>

static json_t *failed(const char *fn, GError **error)
{
	g_prefix_error(error, "%s: ", fn);
	return NULL;
}

static json_t *time_or_null(int64_t epoch, GTimeZone *tz)
{
	if (epoch <= 0)
		return json_null();
	char *text = mv_time_format_local(epoch, tz);
	json_t *v = json_string(text);
	g_free(text);
	return v;
}

static json_t *text_or_null(const char *v)
{
	return v ? json_string(v) : json_null();
}

/* lastRun and nextRun in the job's own zone (the interval test mode aside:
 * nextRun is the clock slot a production server would use). */
static json_t *job_json(const mv_job *j)
{
	mv_schedule *sched = mv_scheduler_job_schedule(j, NULL);
	int64_t next = 0;
	if (sched && !mv_schedule_next_run(sched, j->last_run ? j->last_run : j->created_at, &next))
		next = 0;
	GTimeZone *tz = sched ? g_time_zone_ref(sched->zone) : g_time_zone_new_utc();
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o}", "id",
	                      (json_int_t)j->id, "name", j->name, "action", j->action, "owner", j->owner, "timeZoneId",
	                      text_or_null(j->time_zone_id ? j->time_zone_id : "$Local"), "date", text_or_null(j->date),
	                      "interval", j->has_interval ? json_integer(j->interval) : json_null(), "time",
	                      text_or_null(j->time), "dayOfWeek", text_or_null(j->day_of_week), "dayOfMonth",
	                      text_or_null(j->day_of_month), "enabled", j->enabled, "running",
	                      mv_scheduler_job_running(j->id), "lastRun", time_or_null(j->last_run, tz), "nextRun",
	                      time_or_null(j->enabled ? next : 0, tz));
	g_time_zone_unref(tz);
	mv_schedule_free(sched);
	return o;
}

static json_t *get_jobs(mv_command_ctx *ctx, json_t *args, GError **error)
{
	(void)args;
	GPtrArray *jobs = mv_jobs_list(ctx->inst, error);
	if (!jobs)
		return failed("GetJobs", error);
	json_t *out = json_array();
	for (guint i = 0; i < jobs->len; i++)
		json_array_append_new(out, job_json(jobs->pdata[i]));
	g_ptr_array_unref(jobs);
	return out;
}

/* The schedule arguments into j, checked. */
static int take_schedule(const char *fn, json_t *args, mv_job *j, GError **error)
{
	j->time_zone_id = g_strdup(mv_arg_string(args, "timeZoneId"));
	j->date = g_strdup(mv_arg_string(args, "date"));
	j->has_interval = mv_arg_present(args, "interval");
	j->interval = mv_arg_number(args, "interval", 0);
	j->time = g_strdup(mv_arg_string(args, "time"));
	j->day_of_week = g_strdup(mv_arg_string(args, "dayOfWeek"));
	j->day_of_month = g_strdup(mv_arg_string(args, "dayOfMonth"));
	mv_schedule *sched = mv_scheduler_job_schedule(j, error);
	if (!sched) {
		g_prefix_error(error, "%s: ", fn);
		return -1;
	}
	mv_schedule_free(sched);
	return 0;
}

static int check_action(const char *fn, const char *action, GError **error)
{
	char *function = NULL;
	GHashTable *text = NULL;
	json_t *args = NULL;
	int rc = -1;
	if (!action || !*action) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: action may not be empty: a function call as the "
		            "management shell takes it, e.g. VerifyStores or RunProfile --id=3", fn);
		return -1;
	}
	if (mv_command_line_split(action, &function, &text, error) < 0)
		goto out;
	const mv_command *cmd = mv_command_find(function);
	if (!cmd) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "action: there is no function '%.100s' (GetJobs' actions are "
		            "Administration API functions)", function);
		goto out;
	}
	if (!(args = mv_command_parse_args(cmd, text, error)))
		goto out;
	/* A job's action is stored as written and shown by GetJobs: a secret
	 * in it would sit in clear in master.sqlite and in every listing. */
	for (const mv_command_arg *a = cmd->args; a && a->name; a++) {
		if (a->type == MV_ARG_SECRET && json_object_get(args, a->name)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "action: %s's argument '%s' is a secret, and a job's "
			            "action is stored and shown as written (use a credential, or run it by hand)",
			            cmd->name, a->name);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		g_prefix_error(error, "%s: ", fn);
	json_decref(args);
	if (text)
		g_hash_table_destroy(text);
	g_free(function);
	return rc;
}

/* The owner as stored (its spelling), an administrator. */
static char *check_owner(mv_command_ctx *ctx, const char *fn, const char *asked, GError **error)
{
	const char *name = asked ? asked : ctx->user;
	mv_user *u = mv_user_get(ctx->inst, name, error);
	if (!u) {
		g_prefix_error(error, "%s: owner: ", fn);
		return NULL;
	}
	char *owner = NULL;
	if (u->privileges & MV_PRIV_ADMIN)
		owner = g_strdup(u->name);
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: owner: '%s' is not an administrator (a job's owner must "
		            "be one)", fn, u->name);
	mv_user_free(u);
	return owner;
}

static json_t *create_job(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "CreateJob";
	const char *action = mv_arg_string(args, "action");
	mv_job *j = g_new0(mv_job, 1);
	json_t *out = NULL;
	if (check_action(fn, action, error) < 0 || take_schedule(fn, args, j, error) < 0 ||
	    !(j->owner = check_owner(ctx, fn, mv_arg_string(args, "owner"), error)))
		goto out;
	const char *name = mv_arg_string(args, "name");
	j->name = g_strdup(name && *name ? name : action);
	j->action = g_strdup(action);
	j->enabled = true;
	j->created_at = mv_now();
	if (mv_job_create(ctx->inst, j, &j->id, error) < 0) {
		failed(fn, error);
		goto out;
	}
	mv_command_audit_note(ctx, "job %" G_GINT64_FORMAT " '%s': %s", j->id, j->name, j->action);
	out = job_json(j);
out:
	mv_job_free(j);
	return out;
}

/* DeleteJob's id is a string in the reference; the others' a number. */
static bool job_id_arg(const char *fn, json_t *args, int64_t *id_r, GError **error)
{
	json_t *v = json_object_get(args, "id");
	if (json_is_integer(v)) {
		*id_r = json_integer_value(v);
		return true;
	}
	const char *text = json_string_value(v);
	if (text && g_ascii_string_to_signed(text, 10, 1, G_MAXINT64, id_r, NULL))
		return true;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: id is required: the job's number (GetJobs lists them)", fn);
	return false;
}

static json_t *delete_job(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id;
	if (!job_id_arg("DeleteJob", args, &id, error))
		return NULL;
	if (mv_scheduler_job_running(id)) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "DeleteJob: job %" G_GINT64_FORMAT " is running (CancelJobAsync "
		            "stops it)", id);
		return NULL;
	}
	if (mv_job_delete(ctx->inst, id, error) < 0)
		return failed("DeleteJob", error);
	return json_null();
}

static json_t *rename_job(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id;
	const char *name = mv_arg_string(args, "name");
	if (!job_id_arg("RenameJob", args, &id, error))
		return NULL;
	if (!name || !*name) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "RenameJob: name is required and may not be empty");
		return NULL;
	}
	if (mv_job_rename(ctx->inst, id, name, error) < 0)
		return failed("RenameJob", error);
	return json_null();
}

static json_t *set_job_enabled(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id;
	if (!job_id_arg("SetJobEnabled", args, &id, error))
		return NULL;
	if (mv_job_set_enabled(ctx->inst, id, mv_arg_bool(args, "enabled", true), error) < 0)
		return failed("SetJobEnabled", error);
	return json_null();
}

static json_t *set_job_schedule(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_job *j = g_new0(mv_job, 1);
	json_t *out = NULL;
	if (job_id_arg("SetJobSchedule", args, &j->id, error) && take_schedule("SetJobSchedule", args, j, error) == 0) {
		if (mv_job_set_schedule(ctx->inst, j, mv_now(), error) < 0)
			failed("SetJobSchedule", error);
		else
			out = json_null();
	}
	mv_job_free(j);
	return out;
}

static json_t *run_job_async(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id;
	if (!job_id_arg("RunJobAsync", args, &id, error))
		return NULL;
	mv_job *j = mv_job_get(ctx->inst, id, error);
	if (!j)
		return failed("RunJobAsync", error);
	mv_job_free(j);
	return mv_scheduler_run_job(id, error) < 0 ? NULL : json_null();
}

static json_t *cancel_job_async(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t id;
	if (!job_id_arg("CancelJobAsync", args, &id, error))
		return NULL;
	mv_job *j = mv_job_get(ctx->inst, id, error);
	if (!j)
		return failed("CancelJobAsync", error);
	mv_job_free(j);
	return mv_scheduler_cancel_job(id, error) < 0 ? NULL : json_null();
}

static json_t *get_job_results(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "GetJobResults";
	GTimeZone *tz = mv_time_zone(mv_arg_string(args, "timeZoneId"), "timeZoneId", error);
	if (!tz)
		return failed(fn, error);
	int64_t from = 0, to = 0;
	json_t *out = NULL;
	if (mv_time_parse_local(mv_arg_string(args, "fromIncluding"), tz, "fromIncluding", &from, error) == 0 &&
	    mv_time_parse_local(mv_arg_string(args, "toExcluding"), tz, "toExcluding", &to, error) == 0)
		out = mv_job_results_list(ctx->inst, from, to, mv_arg_number(args, "jobId", 0), tz, error);
	g_time_zone_unref(tz);
	return out ? out : failed(fn, error);
}

static const mv_command_arg no_args[] = { { .name = NULL } };

#define SCHEDULE_ARGS                                                                                         \
	{ "timeZoneId", MV_ARG_STRING, true, NULL }, { "date", MV_ARG_STRING, true, NULL },                       \
	{ "interval", MV_ARG_NUMBER, true, NULL }, { "time", MV_ARG_STRING, true, NULL },                         \
	{ "dayOfWeek", MV_ARG_STRING, true, NULL }, { "dayOfMonth", MV_ARG_STRING, true, NULL }

static const mv_command_arg create_args[] = {
	{ "name", MV_ARG_STRING, true, NULL }, { "action", MV_ARG_STRING, false, NULL },
	{ "owner", MV_ARG_STRING, true, NULL }, SCHEDULE_ARGS, { .name = NULL },
};
static const mv_command_arg id_string_arg[] = { { "id", MV_ARG_STRING, false, NULL }, { .name = NULL } };
static const mv_command_arg id_arg[] = { { "id", MV_ARG_NUMBER, false, NULL }, { .name = NULL } };
/* The reference calls these optional; a rename or switch without them
 * means nothing, so get-metadata says they are required. */
static const mv_command_arg rename_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "name", MV_ARG_STRING, false, NULL }, { .name = NULL },
};
static const mv_command_arg enabled_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "enabled", MV_ARG_BOOL, false, NULL }, { .name = NULL },
};
static const mv_command_arg schedule_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL }, { "timeZoneId", MV_ARG_STRING, false, NULL },
	{ "date", MV_ARG_STRING, true, NULL }, { "interval", MV_ARG_NUMBER, true, NULL },
	{ "time", MV_ARG_STRING, true, NULL }, { "dayOfWeek", MV_ARG_STRING, true, NULL },
	{ "dayOfMonth", MV_ARG_STRING, true, NULL }, { .name = NULL },
};
static const mv_command_arg results_args[] = {
	{ "fromIncluding", MV_ARG_STRING, false, NULL }, { "toExcluding", MV_ARG_STRING, false, NULL },
	{ "timeZoneId", MV_ARG_STRING, false, NULL }, { "jobId", MV_ARG_NUMBER, true, NULL }, { .name = NULL },
};

const mv_command mv_commands_jobs[] = {
	{ "GetJobs", no_args, "admin", false, get_jobs, "jobs with their schedules, last and next runs", NULL },
	{ "CreateJob", create_args, "admin", false, create_job,
	  "a job running an API call (action, as the shell takes it) on a schedule, as owner", NULL },
	{ "DeleteJob", id_string_arg, "admin", false, delete_job, "deletes a job (not while it runs)", NULL },
	{ "RenameJob", rename_args, "admin", false, rename_job, "renames a job", NULL },
	{ "SetJobEnabled", enabled_args, "admin", false, set_job_enabled, "enables or disables a job's schedule", NULL },
	{ "SetJobSchedule", schedule_args, "admin", false, set_job_schedule, "changes a job's schedule", NULL },
	{ "RunJobAsync", id_arg, "admin", false, run_job_async, "runs a job now, in the server, unless it runs", NULL },
	{ "CancelJobAsync", id_arg, "admin", false, cancel_job_async, "asks a job's run to stop", NULL },
	{ "GetJobResults", results_args, "admin", false, get_job_results, "finished job runs in a time range", NULL },
	{ .name = NULL },
};
