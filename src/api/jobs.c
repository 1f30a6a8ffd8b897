/* api/jobs: long-running Administration API functions in the background.
 *
 * MailStore's protocol answers a long-running call at once with a token
 * and status "running"; the client then long-polls get-status (the server
 * blocks until the status version moves past what the client knows, or
 * the client's timeout passes) and may cancel-async.  Each job runs on its
 * own thread with its own mv_instance (SQLite connections are not shared
 * between threads), so several run at once and none waits for a client: a
 * client that disappears neither stops the work nor keeps it in memory
 * for longer than the retention time after it finished.
 *
 * One mutex guards the table and every job's status; one condition
 * variable wakes waiting get-status calls on any change (jobs are few, so
 * a broadcast costs nothing worth a finer scheme).
 *
 * Shutdown (mv_jobs_wake_all): every waiting get-status returns at once
 * with the job's current status, later ones do not wait, and no new job
 * starts — its client could not follow it to the end. */
#include "api/api.h"

#include <sodium.h>
#include <string.h>

#define TOKEN_BYTES 16
/* A progress report bumps statusVersion (and wakes pollers) at most this
 * often unless the percentage changed: long imports report per message. */
#define PROGRESS_BUMP_SECONDS 0.25

typedef struct job {
	mv_jobs *owner;
	char *token;
	char *user;
	char *remote;
	char *data_dir;
	const mv_command *cmd;
	json_t *args;
	mv_access *access;
	const mv_service_hooks *service;
	volatile gint cancel;
	/* guarded by owner->lock */
	int64_t version;
	int percent;
	char *text;
	double last_bump;
	json_t *final;          /* the finished envelope, or NULL while running */
	double finished_at;
} job;

struct mv_jobs {
	GMutex lock;
	GCond changed;
	GHashTable *by_token;   /* token -> job* (owned) */
	int64_t retention;
	unsigned running;
	bool stopping;          /* shutdown: get-status no longer waits, no job starts */
};

static void job_free(gpointer p)
{
	job *j = p;
	g_free(j->token);
	g_free(j->user);
	g_free(j->remote);
	g_free(j->data_dir);
	json_decref(j->args);
	mv_access_free(j->access);
	g_free(j->text);
	json_decref(j->final);
	g_free(j);
}

mv_jobs *mv_jobs_new(int64_t retention_seconds)
{
	mv_jobs *jobs = g_new0(mv_jobs, 1);
	g_mutex_init(&jobs->lock);
	g_cond_init(&jobs->changed);
	jobs->by_token = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, job_free);
	jobs->retention = retention_seconds;
	return jobs;
}

void mv_jobs_set_retention(mv_jobs *jobs, int64_t retention_seconds)
{
	g_mutex_lock(&jobs->lock);
	jobs->retention = retention_seconds;
	g_mutex_unlock(&jobs->lock);
}

static void cancel_one(gpointer key, gpointer value, gpointer unused)
{
	job *j = value;
	g_atomic_int_set(&j->cancel, 1);
}

void mv_jobs_free(mv_jobs **jp)
{
	mv_jobs *jobs = *jp;
	if (!jobs)
		return;
	*jp = NULL;
	g_mutex_lock(&jobs->lock);
	g_hash_table_foreach(jobs->by_token, cancel_one, NULL);
	while (jobs->running > 0)
		g_cond_wait(&jobs->changed, &jobs->lock);
	g_mutex_unlock(&jobs->lock);
	g_hash_table_destroy(jobs->by_token);
	g_cond_clear(&jobs->changed);
	g_mutex_clear(&jobs->lock);
	g_free(jobs);
}

unsigned mv_jobs_running(mv_jobs *jobs)
{
	g_mutex_lock(&jobs->lock);
	unsigned n = jobs->running;
	g_mutex_unlock(&jobs->lock);
	return n;
}

void mv_jobs_wake_all(mv_jobs *jobs)
{
	g_mutex_lock(&jobs->lock);
	jobs->stopping = true;
	g_cond_broadcast(&jobs->changed);
	g_mutex_unlock(&jobs->lock);
}

/* Drops finished jobs past the retention time.  Caller holds the lock. */
static void expire_locked(mv_jobs *jobs)
{
	double now = mv_monotonic();
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, jobs->by_token);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		job *j = value;
		if (j->final && now - j->finished_at > (double)jobs->retention)
			g_hash_table_iter_remove(&it);
	}
}

static json_t *running_envelope_locked(job *j)
{
	return json_pack("{s:n, s:s, s:I, s:s, s:o, s:o, s:n, s:n}", "error", "token", j->token, "statusVersion",
	                 (json_int_t)j->version, "statusCode", "running", "percentProgress",
	                 j->percent >= 0 ? json_integer(j->percent) : json_null(), "statusText",
	                 j->text ? json_string(j->text) : json_null(), "result", "logOutput");
}

static json_t *envelope_locked(job *j)
{
	if (!j->final)
		return running_envelope_locked(j);
	json_t *env = json_deep_copy(j->final);
	json_object_set_new(env, "token", json_string(j->token));
	json_object_set_new(env, "statusVersion", json_integer(j->version));
	return env;
}

static void job_progress(void *opaque, int percent, const char *text)
{
	job *j = opaque;
	mv_jobs *jobs = j->owner;
	char *valid = mv_utf8_sanitize(text, -1);
	g_mutex_lock(&jobs->lock);
	double now = mv_monotonic();
	bool bump = percent != j->percent || now - j->last_bump >= PROGRESS_BUMP_SECONDS;
	j->percent = percent;
	g_free(j->text);
	j->text = valid;
	if (bump) {
		j->version++;
		j->last_bump = now;
		g_cond_broadcast(&jobs->changed);
	}
	g_mutex_unlock(&jobs->lock);
}

static json_t *run_job(job *j)
{
	GError *err = NULL;
	mv_instance *inst = mv_instance_open(j->data_dir, &err);
	if (!inst) {
		json_t *env = mv_command_error_envelope(err->message, NULL);
		g_error_free(err);
		return env;
	}
	mv_command_ctx ctx = {
		.inst = inst, .user = j->user, .remote = j->remote, .access = j->access, .service = j->service,
		.progress = job_progress, .progress_opaque = j, .cancel = &j->cancel,
	};
	json_t *env = mv_command_invoke(j->cmd, &ctx, j->args);
	mv_instance_close(&inst);
	return env;
}

static gpointer job_thread(gpointer p)
{
	job *j = p;
	mv_jobs *jobs = j->owner;
	json_t *env = run_job(j);
	g_mutex_lock(&jobs->lock);
	j->final = env;
	j->finished_at = mv_monotonic();
	j->version++;
	jobs->running--;
	g_cond_broadcast(&jobs->changed);
	g_mutex_unlock(&jobs->lock);
	return NULL;
}

json_t *mv_jobs_start(mv_jobs *jobs, const mv_command *cmd, json_t *args, const char *data_dir, const char *user,
                      const char *remote, mv_access *access, const mv_service_hooks *service)
{
	uint8_t raw[TOKEN_BYTES];
	randombytes_buf(raw, sizeof raw);
	job *j = g_new0(job, 1);
	j->owner = jobs;
	j->token = mv_hex(raw, sizeof raw);
	j->user = g_strdup(user);
	j->remote = g_strdup(remote);
	j->data_dir = g_strdup(data_dir);
	j->cmd = cmd;
	j->args = args;
	j->access = access;
	j->service = service;
	j->percent = -1;
	j->version = 1;
	g_mutex_lock(&jobs->lock);
	if (jobs->stopping) {
		g_mutex_unlock(&jobs->lock);
		char *msg = g_strdup_printf("%s: the server is stopping; the function was not started", cmd->name);
		json_t *env = mv_command_error_envelope(msg, NULL);
		g_free(msg);
		job_free(j);
		return env;
	}
	expire_locked(jobs);
	g_hash_table_insert(jobs->by_token, j->token, j);
	jobs->running++;
	json_t *env = running_envelope_locked(j);
	g_mutex_unlock(&jobs->lock);
	GError *err = NULL;
	GThread *t = g_thread_try_new("mv-job", job_thread, j, &err);
	if (!t) {
		g_mutex_lock(&jobs->lock);
		j->final = mv_command_error_envelope("cannot start a thread for the function", err->message);
		j->finished_at = mv_monotonic();
		j->version++;
		jobs->running--;
		g_mutex_unlock(&jobs->lock);
		g_error_free(err);
		return env;
	}
	g_thread_unref(t);
	return env;
}

/* The job of token if user may see it.  Caller holds the lock. */
static job *find_locked(mv_jobs *jobs, const char *token, const char *user)
{
	job *j = g_hash_table_lookup(jobs->by_token, token);
	if (!j || g_utf8_collate(j->user, user) != 0)
		return NULL;
	return j;
}

json_t *mv_jobs_status(mv_jobs *jobs, const char *token, int64_t last_known, int64_t timeout_ms, const char *user)
{
	gint64 deadline = g_get_monotonic_time() + MAX(timeout_ms, 0) * G_TIME_SPAN_MILLISECOND;
	g_mutex_lock(&jobs->lock);
	expire_locked(jobs);
	job *j = find_locked(jobs, token, user);
	while (j && !jobs->stopping && j->version <= last_known && !j->final) {
		if (!g_cond_wait_until(&jobs->changed, &jobs->lock, deadline))
			break;
		/* The table may have changed while we slept; the job itself
		 * stays (only finished jobs expire, and not while polled). */
		j = find_locked(jobs, token, user);
	}
	json_t *env = j ? envelope_locked(j) : NULL;
	g_mutex_unlock(&jobs->lock);
	return env;
}

bool mv_jobs_cancel(mv_jobs *jobs, const char *token, const char *user)
{
	g_mutex_lock(&jobs->lock);
	job *j = find_locked(jobs, token, user);
	if (j)
		g_atomic_int_set(&j->cancel, 1);
	g_mutex_unlock(&jobs->lock);
	return j != NULL;
}
