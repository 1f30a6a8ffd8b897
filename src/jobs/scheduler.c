/* jobs/scheduler: jobs and automatic profiles run by the server itself.
 *
 * One thread looks once a second (and at once when RunJobAsync asks): it
 * reads the jobs and profiles from master.sqlite on each look rather than
 * keeping a copy, so a change made through any API connection applies at
 * the next look with nothing to invalidate.  A due job first has its
 * last_run written (durably: master.sqlite syncs), then gets a thread of
 * its own with its own mv_instance (SQLite connections are per thread), so
 * a long RunProfile holds no other job back.  A job or profile with a run
 * in progress is never started again: a slot that comes while it runs is
 * passed over, not queued.
 *
 * Runs go through mv_command_prepare/mv_command_invoke as the owner, with
 * the owner's privileges and folder rights as they are at that moment, and
 * remote "scheduler" in the audit log.  A job's run leaves a worker result
 * whose report carries the job's id (GetJobResults selects by it) and the
 * call's status and logOutput; an automatic profile's run leaves the worker
 * result ingest writes for every archiving run.
 *
 * Once a minute (and at the first look) it also asks which current stores'
 * indexes must be rebuilt or caught up, which SMTP does not do inline, and
 * does it on a run of its own (index_upkeep.c).  Held in safe mode like
 * the rest. */
#include "jobs/scheduler.h"
#include "jobs/index_upkeep.h"
#include "jobs/schedule.h"

#include <stdlib.h>
#include <string.h>

#define LOOK_SECONDS 1
#define INDEX_LOOK_SECONDS 60
#define MAX_LOG_OUTPUT (64 * 1024)

typedef enum { RUN_JOB, RUN_PROFILE, RUN_INDEX } run_kind;

typedef struct run {
	mv_scheduler *owner_scheduler;
	run_kind kind;
	int64_t id;
	char *name;                /* the job's or profile's */
	char *owner;               /* the user it runs as */
	char *action;              /* the line it runs */
	volatile gint cancel;
	GThread *thread;
	bool done;                 /* guarded by the scheduler's lock */
} run;

struct mv_scheduler {
	char *data_dir;
	bool safe_mode;
	const mv_service_hooks *service;
	GMutex lock;
	GCond wake;
	bool stopping;
	GHashTable *runs;          /* "j<id>" / "p<id>" -> run * */
	GArray *run_now;           /* job ids RunJobAsync asked for */
	GHashTable *profile_ended; /* profile id -> when its last automatic run ended (int64 *) */
	double indexes_looked_at;  /* monotonic; 0: not yet */
	GThread *thread;
};

static GMutex current_lock;
static mv_scheduler *current;

int64_t mv_scheduler_minute_seconds(void)
{
	const char *v = g_getenv("MAILVAULT_TEST_MINUTE_SECONDS");
	gint64 n = 0;
	if (v && g_ascii_string_to_signed(v, 10, 1, 60, &n, NULL))
		return n;
	return 60;
}

static char *run_key(run_kind kind, int64_t id)
{
	return g_strdup_printf("%c%" G_GINT64_FORMAT, kind == RUN_JOB ? 'j' : kind == RUN_PROFILE ? 'p' : 'i', id);
}

static void run_free(run *r)
{
	g_free(r->name);
	g_free(r->owner);
	g_free(r->action);
	g_free(r);
}

/* ---- one run, on its own thread --------------------------------------------- */

/* The call the line names, as its owner would make it in the shell. */
static json_t *invoke_as_owner(run *r, mv_instance *inst, GError **error)
{
	mv_user *u = mv_user_get(inst, r->owner, error);
	if (!u) {
		g_prefix_error(error, "the owner '%s' of %s: ", r->owner, r->kind == RUN_JOB ? "the job" : "the profile");
		return NULL;
	}
	char *function = NULL;
	GHashTable *text = NULL;
	json_t *args = NULL, *env = NULL;
	mv_access *access = NULL;
	mv_command_ctx ctx = { .inst = inst, .user = u->name, .remote = "scheduler",
		               .service = r->owner_scheduler->service, .cancel = &r->cancel };
	const mv_command *cmd = NULL;
	if (mv_command_line_split(r->action, &function, &text, error) < 0 ||
	    !(cmd = mv_command_prepare(&ctx, function, u->privileges, text, &args, error)) ||
	    !(access = mv_access_for_user(inst, u, error)))
		goto out;
	ctx.access = access;
	env = mv_command_invoke(cmd, &ctx, args);
out:
	mv_access_free(&access);
	json_decref(args);
	if (text)
		g_hash_table_destroy(text);
	g_free(function);
	mv_user_free(u);
	return env;
}

/* A RUN_INDEX: the index work itself, not a registry call (it is what a
 * writer's lock does, no administrator's function); its outcome in the
 * envelope's terms, so that outcome() reads it like the others'. */
static json_t *index_upkeep(run *r, mv_instance *inst, GError **error)
{
	if (mv_index_upkeep_run(inst, (int)r->id, &r->cancel, error) < 0)
		return NULL;
	return json_pack("{s:s}", "statusCode", "succeeded");
}

static const char *outcome(const run *r, json_t *env)
{
	if (env && g_strcmp0(json_string_value(json_object_get(env, "statusCode")), "succeeded") == 0)
		return "succeeded";
	return g_atomic_int_get(&r->cancel) ? "cancelled" : "failed";
}

static char *status_text(json_t *env, const GError *err)
{
	if (err)
		return g_strdup(err->message);
	json_t *e = json_object_get(env, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (!msg)
		msg = json_string_value(e);
	return g_strdup(msg ? msg : json_string_value(json_object_get(env, "statusText")));
}

static json_t *bounded_log(json_t *env)
{
	const char *log = json_string_value(json_object_get(env, "logOutput"));
	if (!log)
		return json_string("");
	size_t len = strlen(log);
	if (len <= MAX_LOG_OUTPUT)
		return json_string(log);
	char *cut = mv_utf8_sanitize(log, MAX_LOG_OUTPUT);
	json_t *v = json_sprintf("%s\n(log output cut at %d bytes)", cut, MAX_LOG_OUTPUT);
	g_free(cut);
	return v;
}

static json_t *job_report(const run *r)
{
	return json_pack("{s:I, s:s, s:s}", "jobId", (json_int_t)r->id, "jobName", r->name, "action", r->action);
}

/* The job's row in progress: a kill before its end is reported at the next
 * start as an interrupted run (mv_worker_runs_settle). */
static int64_t note_job_in_progress(run *r, mv_instance *inst, int64_t start_ms)
{
	json_t *report = job_report(r);
	mv_worker_result wr = { .profile_name = r->name, .user = r->owner, .start_ms = start_ms, .report = report };
	int64_t marker = 0;
	GError *err = NULL;
	if (mv_worker_run_begin(inst, &wr, &marker, &err) < 0) {
		mv_log_info("job %" G_GINT64_FORMAT ": its run in progress was not recorded: %s", r->id, err->message);
		g_error_free(err);
	}
	json_decref(report);
	return marker;
}

static void record_job_result(run *r, mv_instance *inst, json_t *env, const GError *err, int64_t start_ms,
                              int64_t marker)
{
	char *status = status_text(env, err);
	json_t *report = job_report(r);
	json_object_set_new(report, "statusText", status ? json_string(status) : json_null());
	json_object_set_new(report, "logOutput", bounded_log(env));
	mv_worker_result wr = { .profile_name = r->name, .user = r->owner, .start_ms = start_ms,
		                .complete_ms = g_get_real_time() / 1000, .result = outcome(r, env), .report = report,
		                .marker = marker };
	GError *rec_err = NULL;
	if (!inst || mv_worker_result_add(inst, &wr, NULL, &rec_err) < 0)
		mv_log_info("job %" G_GINT64_FORMAT " '%s' %s, but its result was not recorded: %s", r->id, r->name,
		            wr.result, rec_err ? rec_err->message : "no instance");
	mv_log_info("job %" G_GINT64_FORMAT " '%s' (%s) %s%s%s", r->id, r->name, r->action, wr.result,
	            status ? ": " : "", status ? status : "");
	g_clear_error(&rec_err);
	json_decref(report);
	g_free(status);
}

static gpointer run_thread(gpointer p)
{
	run *r = p;
	mv_scheduler *s = r->owner_scheduler;
	int64_t start_ms = g_get_real_time() / 1000;
	GError *err = NULL;
	json_t *env = NULL;
	mv_instance *inst = mv_instance_open(s->data_dir, &err);
	int64_t marker = inst && r->kind == RUN_JOB ? note_job_in_progress(r, inst, start_ms) : 0;
	if (inst)
		env = r->kind == RUN_INDEX ? index_upkeep(r, inst, &err) : invoke_as_owner(r, inst, &err);
	if (r->kind == RUN_JOB) {
		record_job_result(r, inst, env, err, start_ms, marker);
	} else if (r->kind == RUN_INDEX) {
		mv_log_info("%s: %s%s%s", r->name, outcome(r, env), err ? ": " : "", err ? err->message : "");
	} else if (err || g_strcmp0(outcome(r, env), "succeeded") != 0)
		mv_log_info("automatic run of profile %" G_GINT64_FORMAT " '%s' %s: %s", r->id, r->name, outcome(r, env),
		            err ? err->message : "see its worker result");
	g_clear_error(&err);
	json_decref(env);
	mv_instance_close(&inst);
	g_mutex_lock(&s->lock);
	if (r->kind == RUN_PROFILE) {
		int64_t *ended = g_new(int64_t, 1);
		*ended = mv_now();
		g_hash_table_insert(s->profile_ended, g_memdup2(&r->id, sizeof r->id), ended);
	}
	r->done = true;
	g_cond_broadcast(&s->wake);
	g_mutex_unlock(&s->lock);
	return NULL;
}

/* Starts r unless a run with its key goes on.  Caller holds the lock. */
static bool launch_locked(mv_scheduler *s, run *r)
{
	char *key = run_key(r->kind, r->id);
	run *before = g_hash_table_lookup(s->runs, key);
	if (s->stopping || (before && !before->done)) {
		g_free(key);
		run_free(r);
		return false;
	}
	if (before) {   /* ended, not reaped yet: its thread has left its last locked section */
		g_thread_join(before->thread);
		g_hash_table_remove(s->runs, key);
		run_free(before);
	}
	GError *err = NULL;
	r->owner_scheduler = s;
	r->thread = g_thread_try_new("mv-scheduled", run_thread, r, &err);
	if (!r->thread) {
		mv_log_info("cannot start a thread for '%s': %s", r->action, err->message);
		g_error_free(err);
		g_free(key);
		run_free(r);
		return false;
	}
	g_hash_table_insert(s->runs, key, r);
	return true;
}

static run *job_run(const mv_job *j)
{
	run *r = g_new0(run, 1);
	r->kind = RUN_JOB;
	r->id = j->id;
	r->name = g_strdup(j->name);
	r->owner = g_strdup(j->owner);
	r->action = g_strdup(j->action);
	return r;
}

static run *index_run(int store_id)
{
	run *r = g_new0(run, 1);
	r->kind = RUN_INDEX;
	r->id = store_id;
	r->name = g_strdup_printf("store %d: bringing its index up to date in the background", store_id);
	r->owner = g_strdup("");
	r->action = g_strdup("");
	return r;
}

/* ---- what is due -------------------------------------------------------------- */

mv_schedule *mv_scheduler_job_schedule(const mv_job *j, GError **error)
{
	mv_schedule_args a = { .time_zone_id = j->time_zone_id, .date = j->date, .has_interval = j->has_interval,
		               .interval = j->interval, .time = j->time, .day_of_week = j->day_of_week,
		               .day_of_month = j->day_of_month };
	return mv_schedule_parse(&a, error);
}

static bool job_due(const mv_job *j, int64_t now)
{
	GError *err = NULL;
	mv_schedule *sched = mv_scheduler_job_schedule(j, &err);
	if (!sched) {
		mv_log_debug("job %" G_GINT64_FORMAT ": %s", j->id, err->message);
		g_error_free(err);
		return false;
	}
	int64_t since = j->last_run ? j->last_run : j->created_at, next = 0;
	int64_t minute = mv_scheduler_minute_seconds();
	bool due;
	if (sched->kind == MV_SCHEDULE_INTERVAL && minute != 60)
		due = now >= since + sched->interval_minutes * minute;
	else
		due = mv_schedule_next_run(sched, since, &next) && next <= now;
	mv_schedule_free(sched);
	return due;
}

/* A run that has ended but is not reaped yet does not count. */
static bool running_locked(mv_scheduler *s, run_kind kind, int64_t id)
{
	char *key = run_key(kind, id);
	const run *r = g_hash_table_lookup(s->runs, key);
	g_free(key);
	return r && !r->done;
}

/* A due job's last_run is written before it starts: a slot is taken once,
 * whether the run then goes on, or is passed over because one still runs. */
static void look_at_job(mv_scheduler *s, mv_instance *inst, const mv_job *j, int64_t now)
{
	if (!j->enabled || !job_due(j, now))
		return;
	GError *err = NULL;
	if (mv_job_set_last_run(inst, j->id, now, &err) < 0) {
		mv_log_info("job %" G_GINT64_FORMAT " is due but cannot be started: %s", j->id, err->message);
		g_error_free(err);
		return;
	}
	g_mutex_lock(&s->lock);
	if (running_locked(s, RUN_JOB, j->id))
		mv_log_info("job %" G_GINT64_FORMAT " '%s' is due but its last run goes on: this run is passed over",
		            j->id, j->name);
	else
		launch_locked(s, job_run(j));
	g_mutex_unlock(&s->lock);
}

static bool profile_due_locked(mv_scheduler *s, const mv_profile *p, int64_t now)
{
	if (!p->automatic || running_locked(s, RUN_PROFILE, p->id))
		return false;
	/* At least a minute between runs whatever the pause: a pause of 0 would
	 * otherwise start a run every second, each with its worker result and
	 * audit entry, while the source has nothing new. */
	int64_t pause = MAX(p->pause_seconds, mv_scheduler_minute_seconds());
	const int64_t *ended = g_hash_table_lookup(s->profile_ended, &p->id);
	if (ended && now < *ended + pause)
		return false;
	GTimeZone *local = g_time_zone_new_local();
	bool held = mv_schedule_in_windows(p->maintenance_windows, now, local);
	g_time_zone_unref(local);
	return !held;
}

static void look_at_profile(mv_scheduler *s, const mv_profile *p, int64_t now)
{
	g_mutex_lock(&s->lock);
	if (profile_due_locked(s, p, now)) {
		run *r = g_new0(run, 1);
		r->kind = RUN_PROFILE;
		r->id = p->id;
		r->name = g_strdup(p->name);
		r->owner = g_strdup(p->owner);
		r->action = g_strdup_printf("RunProfile --id=%" G_GINT64_FORMAT, p->id);
		launch_locked(s, r);
	}
	g_mutex_unlock(&s->lock);
}

/* The last end of a profile that is gone is forgotten: ids are never
 * reused (AUTOINCREMENT), so the entry could only grow the table. */
static void forget_deleted_profiles(mv_scheduler *s, const GPtrArray *profiles)
{
	GHashTable *present = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint i = 0; i < profiles->len; i++)
		g_hash_table_add(present, &((mv_profile *)profiles->pdata[i])->id);
	g_mutex_lock(&s->lock);
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, s->profile_ended);
	while (g_hash_table_iter_next(&it, &key, NULL))
		if (!g_hash_table_contains(present, key))
			g_hash_table_iter_remove(&it);
	g_mutex_unlock(&s->lock);
	g_hash_table_destroy(present);
}

static void look_at_requests(mv_scheduler *s, mv_instance *inst)
{
	g_mutex_lock(&s->lock);
	GArray *ids = s->run_now;
	s->run_now = g_array_new(FALSE, FALSE, sizeof(int64_t));
	g_mutex_unlock(&s->lock);
	for (guint i = 0; i < ids->len; i++) {
		GError *err = NULL;
		mv_job *j = mv_job_get(inst, g_array_index(ids, int64_t, i), &err);
		if (!j) {
			mv_log_info("RunJobAsync: %s", err->message);
			g_error_free(err);
			continue;
		}
		g_mutex_lock(&s->lock);
		launch_locked(s, job_run(j));
		g_mutex_unlock(&s->lock);
		mv_job_free(j);
	}
	g_array_unref(ids);
}

static void look_at_indexes(mv_scheduler *s, mv_instance *inst)
{
	double now = mv_monotonic();
	if (s->indexes_looked_at > 0 && now - s->indexes_looked_at < INDEX_LOOK_SECONDS)
		return;
	s->indexes_looked_at = now;
	GError *err = NULL;
	GArray *ids = mv_index_upkeep_stores(inst, &err);
	if (!ids) {
		mv_log_info("the scheduler cannot look at the stores' indexes: %s", err->message);
		g_error_free(err);
		return;
	}
	g_mutex_lock(&s->lock);
	for (guint i = 0; i < ids->len; i++) {
		int id = g_array_index(ids, int, i);
		if (running_locked(s, RUN_INDEX, id))
			continue;
		run *r = index_run(id);
		mv_log_info("%s (made by another version of mailvault or for another state of the store, or its rebuild "
		            "was stopped)", r->name);
		launch_locked(s, r);
	}
	g_mutex_unlock(&s->lock);
	g_array_unref(ids);
}

static void look(mv_scheduler *s, mv_instance *inst)
{
	look_at_requests(s, inst);
	g_mutex_lock(&s->lock);
	bool held = s->safe_mode;
	g_mutex_unlock(&s->lock);
	if (held)
		return;
	look_at_indexes(s, inst);
	int64_t now = mv_now();
	GError *err = NULL;
	GPtrArray *jobs = mv_jobs_list(inst, &err);
	for (guint i = 0; jobs && i < jobs->len; i++)
		look_at_job(s, inst, jobs->pdata[i], now);
	GPtrArray *profiles = jobs ? mv_profiles_list(inst, NULL, &err) : NULL;
	for (guint i = 0; profiles && i < profiles->len; i++)
		look_at_profile(s, profiles->pdata[i], now);
	if (profiles)
		forget_deleted_profiles(s, profiles);
	if (err) {
		mv_log_info("the scheduler cannot read its jobs and profiles: %s", err->message);
		g_error_free(err);
	}
	if (jobs)
		g_ptr_array_unref(jobs);
	if (profiles)
		g_ptr_array_unref(profiles);
}

/* Finished runs' threads joined and freed.  Caller holds the lock; the
 * threads have left their last locked section, so the joins only wait for
 * their return. */
static void reap_locked(mv_scheduler *s)
{
	GHashTableIter it;
	gpointer key, value;
	g_hash_table_iter_init(&it, s->runs);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		run *r = value;
		if (!r->done)
			continue;
		g_thread_join(r->thread);
		run_free(r);
		g_hash_table_iter_remove(&it);
	}
}

static gpointer scheduler_thread(gpointer p)
{
	mv_scheduler *s = p;
	mv_instance *inst = NULL;
	g_mutex_lock(&s->lock);
	while (!s->stopping) {
		reap_locked(s);
		g_mutex_unlock(&s->lock);
		GError *err = NULL;
		if (!inst && !(inst = mv_instance_open(s->data_dir, &err))) {
			mv_log_info("the scheduler cannot open the instance: %s", err->message);
			g_error_free(err);
		}
		if (inst)
			look(s, inst);
		g_mutex_lock(&s->lock);
		if (!s->stopping && s->run_now->len == 0)
			g_cond_wait_until(&s->wake, &s->lock, g_get_monotonic_time() + LOOK_SECONDS * G_TIME_SPAN_SECOND);
	}
	g_mutex_unlock(&s->lock);
	mv_instance_close(&inst);
	return NULL;
}

/* ---- start, stop, and the registry's way in ---------------------------------- */

mv_scheduler *mv_scheduler_start(const mv_scheduler_options *opts, GError **error)
{
	mv_scheduler *s = g_new0(mv_scheduler, 1);
	s->data_dir = g_strdup(opts->data_dir);
	s->safe_mode = opts->safe_mode;
	s->service = opts->service;
	g_mutex_init(&s->lock);
	g_cond_init(&s->wake);
	s->runs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	s->run_now = g_array_new(FALSE, FALSE, sizeof(int64_t));
	s->profile_ended = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	g_mutex_lock(&current_lock);
	if (current) {
		g_mutex_unlock(&current_lock);
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "a scheduler already runs in this process");
		mv_scheduler_stop(&s);
		return NULL;
	}
	s->thread = g_thread_try_new("mv-scheduler", scheduler_thread, s, error);
	if (s->thread)
		current = s;
	g_mutex_unlock(&current_lock);
	if (!s->thread) {
		mv_scheduler_stop(&s);
		return NULL;
	}
	mv_log_info("scheduler started%s", s->safe_mode ? " in safe mode: jobs and automatic profiles are held" : "");
	return s;
}

void mv_scheduler_stop(mv_scheduler **sp)
{
	mv_scheduler *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	g_mutex_lock(&current_lock);
	if (current == s)
		current = NULL;
	g_mutex_unlock(&current_lock);
	g_mutex_lock(&s->lock);
	s->stopping = true;
	GHashTableIter it;
	gpointer key, value;
	g_hash_table_iter_init(&it, s->runs);
	while (g_hash_table_iter_next(&it, &key, &value))
		g_atomic_int_set(&((run *)value)->cancel, 1);
	g_cond_broadcast(&s->wake);
	g_mutex_unlock(&s->lock);
	if (s->thread)
		g_thread_join(s->thread);
	/* No run starts any more: every one left is joined here. */
	g_hash_table_iter_init(&it, s->runs);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		g_thread_join(((run *)value)->thread);
		run_free(value);
	}
	g_hash_table_destroy(s->runs);
	g_hash_table_destroy(s->profile_ended);
	g_array_unref(s->run_now);
	g_cond_clear(&s->wake);
	g_mutex_clear(&s->lock);
	g_free(s->data_dir);
	g_free(s);
}

void mv_scheduler_set_safe_mode(mv_scheduler *s, bool safe_mode)
{
	g_mutex_lock(&s->lock);
	if (s->safe_mode != safe_mode)
		mv_log_info("scheduler: safe mode %s", safe_mode ? "on: jobs and automatic profiles are held" : "off");
	s->safe_mode = safe_mode;
	g_mutex_unlock(&s->lock);
}

static mv_scheduler *current_locked(const char *fn, GError **error)
{
	if (!current)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "%s needs the running server: jobs run inside `mailvault serve`",
		            fn);
	return current;
}

int mv_scheduler_run_job(int64_t id, GError **error)
{
	g_mutex_lock(&current_lock);
	mv_scheduler *s = current_locked("RunJobAsync", error);
	int rc = -1;
	if (s) {
		g_mutex_lock(&s->lock);
		bool asked = false;
		for (guint i = 0; i < s->run_now->len; i++)
			asked = asked || g_array_index(s->run_now, int64_t, i) == id;
		if (running_locked(s, RUN_JOB, id) || asked) {
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "RunJobAsync: job %" G_GINT64_FORMAT " is running", id);
		} else {
			g_array_append_val(s->run_now, id);
			g_cond_broadcast(&s->wake);
			rc = 0;
		}
		g_mutex_unlock(&s->lock);
	}
	g_mutex_unlock(&current_lock);
	return rc;
}

int mv_scheduler_cancel_job(int64_t id, GError **error)
{
	g_mutex_lock(&current_lock);
	mv_scheduler *s = current_locked("CancelJobAsync", error);
	int rc = -1;
	if (s) {
		g_mutex_lock(&s->lock);
		char *key = run_key(RUN_JOB, id);
		run *r = g_hash_table_lookup(s->runs, key);
		g_free(key);
		if (r && !r->done) {
			g_atomic_int_set(&r->cancel, 1);
			rc = 0;
		} else {
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "CancelJobAsync: job %" G_GINT64_FORMAT " is not running", id);
		}
		g_mutex_unlock(&s->lock);
	}
	g_mutex_unlock(&current_lock);
	return rc;
}

bool mv_scheduler_job_running(int64_t id)
{
	g_mutex_lock(&current_lock);
	bool running = false;
	if (current) {
		g_mutex_lock(&current->lock);
		char *key = run_key(RUN_JOB, id);
		run *r = g_hash_table_lookup(current->runs, key);
		running = r && !r->done;
		g_free(key);
		g_mutex_unlock(&current->lock);
	}
	g_mutex_unlock(&current_lock);
	return running;
}
