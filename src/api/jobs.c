/* api/jobs: long-running Administration API functions in the background.
 *
 * MailStore's protocol answers a long-running call at once with a token
 * and status "running"; the client then long-polls get-status (the server
 * blocks until the status version moves past what the client knows, or
 * the client's timeout passes) and may cancel-async.  A running job has
 * its own thread with its own mv_instance (SQLite connections are not
 * shared between threads), so several run at once and none waits for a
 * client: a client that disappears neither stops the work nor keeps it in
 * memory for longer than the retention time after it finished.
 *
 * At most max_running_jobs run at once: each holds a thread, an instance
 * with its databases and files, and disk bandwidth, and sixty started at
 * once held 66 threads and 407 descriptors while each went slower.  Later
 * ones wait in a FIFO queue of at most max_queued_jobs, past which a start
 * is refused as busy.  A waiting job answers statusCode "running"
 * with statusText "queued: N ahead": MailStore's protocol knows no other
 * unfinished status, and its clients poll for as long as they read
 * "running", so a queued job must look like one that runs.  Cancelled
 * while it waits, or when the server stops, it never starts.  The limits
 * come from the running configuration at each start, so a SIGHUP that
 * changes them applies from the next start (or the next finish).
 *
 * One mutex guards the table, the queue and every job's status; one
 * condition variable wakes waiting get-status calls on any change (they
 * are bounded by the connections, so a broadcast costs nothing worth a
 * finer scheme).
 *
 * Shutdown (mv_jobs_wake_all): every waiting get-status returns at once
 * with the job's current status, later ones do not wait, queued jobs are
 * cancelled and no new job starts — its client could not follow it to the
 * end. */
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
	bool queued;            /* waiting in owner->queue for a free slot */
	json_t *final;          /* the finished envelope, or NULL while queued or running */
	double finished_at;
} job;

struct mv_jobs {
	GMutex lock;
	GCond changed;
	GHashTable *by_token;   /* token -> job* (owned) */
	GQueue queue;           /* job* waiting to start, oldest first (owned by by_token) */
	int64_t retention;
	unsigned max_running;
	unsigned max_queued;
	unsigned running;       /* threads started and not finished */
	bool stopping;          /* shutdown: get-status no longer waits, no job starts */
	/* Threads that finished their job, to be joined: a thread still ending
	 * when the process exits leaves its thread-local state (OpenSSL's,
	 * through SQLCipher) behind, which the leak checker reports. */
	GPtrArray *ended;
};

static void job_free(gpointer p)
{
	job *j = p;
	g_free(j->token);
	g_free(j->user);
	g_free(j->remote);
	g_free(j->data_dir);
	json_decref(j->args);
	mv_access_free(&j->access);
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
	g_queue_init(&jobs->queue);
	jobs->ended = g_ptr_array_new();
	jobs->retention = retention_seconds;
	/* Until the first start reads the running configuration. */
	jobs->max_running = MV_DEFAULT_MAX_RUNNING_JOBS;
	jobs->max_queued = MV_DEFAULT_MAX_QUEUED_JOBS;
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

static void finish_locked(job *j, json_t *env)
{
	j->final = env;
	j->finished_at = mv_monotonic();
	j->version++;
}

/* Takes j out of the queue; every job behind it moves up, which its
 * statusText shows, so its version moves too.  Caller holds the lock and
 * broadcasts. */
static void dequeue_locked(mv_jobs *jobs, job *j)
{
	GList *link = g_queue_find(&jobs->queue, j);
	if (!link)
		return;
	for (GList *l = link->next; l; l = l->next)
		((job *)l->data)->version++;
	g_queue_delete_link(&jobs->queue, link);
	j->queued = false;
}

/* The final envelope of a job that never started: "cancelled", so that a
 * client tells it from a failure of the function itself. */
static void finish_unstarted_locked(mv_jobs *jobs, job *j, const char *why)
{
	dequeue_locked(jobs, j);
	char *msg = g_strdup_printf("%s: %s; the function was not started", j->cmd->name, why);
	json_t *env = mv_command_error_envelope(msg, NULL);
	g_free(msg);
	json_object_set_new(env, "statusCode", json_string("cancelled"));
	finish_locked(j, env);
	mv_log_debug("job %.8s (%s): %s before it started", j->token, j->cmd->name, why);
}

/* Shutdown: whatever waits is answered as cancelled and never starts.
 * Caller holds the lock. */
static void stop_locked(mv_jobs *jobs)
{
	jobs->stopping = true;
	while (!g_queue_is_empty(&jobs->queue))
		finish_unstarted_locked(jobs, g_queue_peek_head(&jobs->queue), "the server is stopping");
	g_cond_broadcast(&jobs->changed);
}

static void join_ended_locked(mv_jobs *jobs);

void mv_jobs_free(mv_jobs **jp)
{
	mv_jobs *jobs = *jp;
	if (!jobs)
		return;
	*jp = NULL;
	g_mutex_lock(&jobs->lock);
	stop_locked(jobs);
	g_hash_table_foreach(jobs->by_token, cancel_one, NULL);
	while (jobs->running > 0)
		g_cond_wait(&jobs->changed, &jobs->lock);
	join_ended_locked(jobs);
	g_mutex_unlock(&jobs->lock);
	g_ptr_array_free(jobs->ended, TRUE);
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
	stop_locked(jobs);
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

static json_t *running_envelope_locked(mv_jobs *jobs, job *j)
{
	json_t *text = j->text ? json_string(j->text) : json_null();
	if (j->queued) {
		int ahead = g_queue_index(&jobs->queue, j);
		json_decref(text);
		text = json_sprintf("queued: %d ahead", MAX(ahead, 0));
	}
	return json_pack("{s:n, s:s, s:I, s:s, s:o, s:o, s:n, s:n}", "error", "token", j->token, "statusVersion",
	                 (json_int_t)j->version, "statusCode", "running", "percentProgress",
	                 j->percent >= 0 ? json_integer(j->percent) : json_null(), "statusText", text, "result",
	                 "logOutput");
}

static json_t *envelope_locked(mv_jobs *jobs, job *j)
{
	if (!j->final)
		return running_envelope_locked(jobs, j);
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

static void pump_locked(mv_jobs *jobs);

static gpointer job_thread(gpointer p)
{
	job *j = p;
	mv_jobs *jobs = j->owner;
	json_t *env = run_job(j);
	g_mutex_lock(&jobs->lock);
	finish_locked(j, env);
	jobs->running--;
	pump_locked(jobs);
	/* Joined by the next launch or at shutdown — after the pump, which may
	 * launch (and so join) from this very thread: after this it takes no lock. */
	g_ptr_array_add(jobs->ended, g_thread_self());
	g_cond_broadcast(&jobs->changed);
	g_mutex_unlock(&jobs->lock);
	return NULL;
}

/* Threads in `ended` have left their last locked section: joining them
 * under the lock waits only for their return. */
static void join_ended_locked(mv_jobs *jobs)
{
	for (guint i = 0; i < jobs->ended->len; i++)
		g_thread_join(jobs->ended->pdata[i]);
	g_ptr_array_set_size(jobs->ended, 0);
}

/* A thread for j, which has left the queue.  Caller holds the lock (the
 * thread takes it only when it reports or ends). */
static void launch_locked(mv_jobs *jobs, job *j)
{
	GError *err = NULL;
	join_ended_locked(jobs);
	jobs->running++;
	GThread *t = g_thread_try_new("mv-job", job_thread, j, &err);
	if (t) {
		mv_log_debug("job %.8s (%s) started; %u running", j->token, j->cmd->name, jobs->running);
		return;
	}
	jobs->running--;
	char *msg = g_strdup_printf("%s: cannot start a thread for the function", j->cmd->name);
	finish_locked(j, mv_command_error_envelope(msg, err->message));
	g_free(msg);
	g_error_free(err);
}

/* Starts the oldest queued jobs while fewer than max_running run.  Caller
 * holds the lock and broadcasts. */
static void pump_locked(mv_jobs *jobs)
{
	while (!jobs->stopping && jobs->running < jobs->max_running && !g_queue_is_empty(&jobs->queue)) {
		job *j = g_queue_peek_head(&jobs->queue);
		dequeue_locked(jobs, j);
		j->version++;   /* no longer "queued" */
		launch_locked(jobs, j);
	}
}

/* The limits of the running configuration (a SIGHUP may have changed
 * them since the last start); false when the server has none to give. */
static bool read_limits(const mv_service_hooks *service, unsigned *running_r, unsigned *queued_r)
{
	if (!service || !service->running)
		return false;
	mv_service_config c;
	service->running(service->opaque, &c);
	*running_r = (unsigned)CLAMP(c.max_running_jobs, 1, G_MAXINT);
	*queued_r = (unsigned)CLAMP(c.max_queued_jobs, 0, G_MAXINT);
	mv_service_config_clear(&c);
	return true;
}

static json_t *refusal(const mv_command *cmd, const char *why)
{
	char *msg = g_strdup_printf("%s: %s", cmd->name, why);
	json_t *env = mv_command_error_envelope(msg, NULL);
	g_free(msg);
	return env;
}

json_t *mv_jobs_start(mv_jobs *jobs, const mv_command *cmd, json_t *args, const char *data_dir, const char *user,
                      const char *remote, mv_access *access, const mv_service_hooks *service)
{
	/* Read before taking our lock: the hook takes the server's. */
	unsigned max_running = 0, max_queued = 0;
	bool have_limits = read_limits(service, &max_running, &max_queued);
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
	if (have_limits) {
		jobs->max_running = max_running;
		jobs->max_queued = max_queued;
	}
	json_t *env = NULL;
	unsigned waiting = g_queue_get_length(&jobs->queue);
	if (jobs->stopping) {
		env = refusal(cmd, "the server is stopping; the function was not started");
	} else if ((jobs->running >= jobs->max_running || waiting > 0) && waiting >= jobs->max_queued) {
		char *why = g_strdup_printf("the server is busy: %u long-running functions run and %u wait, the most "
		                            "it queues (max_queued_jobs); the function was not started, try again later",
		                            jobs->running, waiting);
		env = refusal(cmd, why);
		g_free(why);
		mv_log_warn("%s from %s refused: %u long-running functions run and %u wait", cmd->name, remote,
		            jobs->running, waiting);
	}
	if (env) {
		g_mutex_unlock(&jobs->lock);
		job_free(j);
		return env;
	}
	expire_locked(jobs);
	g_hash_table_insert(jobs->by_token, j->token, j);
	if (g_queue_is_empty(&jobs->queue) && jobs->running < jobs->max_running) {
		launch_locked(jobs, j);
	} else {
		/* Behind whatever waits already: first come, first started (the
		 * limit may have grown since the last start). */
		g_queue_push_tail(&jobs->queue, j);
		j->queued = true;
		pump_locked(jobs);
	}
	if (j->queued)
		mv_log_debug("job %.8s (%s) queued: %u running, %d ahead", j->token, cmd->name, jobs->running,
		             g_queue_index(&jobs->queue, j));
	g_cond_broadcast(&jobs->changed);
	env = envelope_locked(jobs, j);
	g_mutex_unlock(&jobs->lock);
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
	json_t *env = j ? envelope_locked(jobs, j) : NULL;
	g_mutex_unlock(&jobs->lock);
	return env;
}

bool mv_jobs_cancel(mv_jobs *jobs, const char *token, const char *user)
{
	g_mutex_lock(&jobs->lock);
	job *j = find_locked(jobs, token, user);
	if (j && j->queued) {
		/* Nothing to stop at a safe point: it simply never starts. */
		finish_unstarted_locked(jobs, j, "cancelled while it waited to start");
		g_cond_broadcast(&jobs->changed);
	} else if (j) {
		g_atomic_int_set(&j->cancel, 1);
	}
	g_mutex_unlock(&jobs->lock);
	return j != NULL;
}
