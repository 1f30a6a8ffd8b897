/* worker: documents are parsed in a child process, one per extracting
 * thread, sandboxed, watched and replaced when it misbehaves.
 *
 * The parent side keeps, per thread (GPrivate), one `mailvault
 * extract-worker` started with posix_spawn: stdin and stdout are pipes, the
 * rest of the fds closed, stderr /dev/null (poppler talks there; set
 * MAILVAULT_EXTRACT_STDERR=1 to keep it, e.g. to see a sanitizer's report),
 * a minimal environment, its own process group (so a legacy tool it runs
 * dies with it) and default signal handling.  One request at a time: a
 * header and the document's bytes, then a header, the text and an error
 * message back.  While it waits the parent polls with the document's
 * deadline (MV_EXTRACT_TIMEOUT_MS, or MAILVAULT_EXTRACT_TIMEOUT_MS read
 * once at mv_extract_init) and every 100 ms reads the worker's resident
 * memory from /proc/PID/statm — that works under AddressSanitizer too,
 * where RLIMIT_AS cannot be set.  Past either bound, or when the worker
 * dies, its process group is killed and reaped, the reason reported, and
 * the next document gets a fresh worker.  Only a worker that cannot even
 * start backs off (1 s doubling to a minute) instead of being respawned in
 * a loop.  Writes to a dead worker raise SIGPIPE, which the server ignores
 * but the importer does not: the calling thread blocks it around the write
 * and takes a pending one back with sigtimedwait.
 *
 * The worker's own side — its limits, filter and request loop — is
 * sandbox.c. */
#include "extract/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEMORY_CHECK_US (100 * G_TIME_SPAN_MILLISECOND)
/* How long a worker that closed its pipes gets to tell how it ended. */
#define EXIT_GRACE_US (500 * G_TIME_SPAN_MILLISECOND)
#define MAX_BACKOFF_US (60 * G_TIME_SPAN_SECOND)

/* ---- configuration ------------------------------------------------------------ */

static char *worker_exe; /* set once by mv_extract_init, read by every thread after */
static atomic_int timeout_ms = MV_EXTRACT_TIMEOUT_MS;
static _Atomic uint64_t memory_limit = MV_EXTRACT_MAX_MEMORY;
static atomic_bool keep_stderr;

/* Called once, by mv_extract_init (tests: with no extraction running). */
void mv_extract_worker_set_exe(const char *path)
{
	g_free(g_atomic_pointer_exchange(&worker_exe, g_strdup(path)));
}

void mv_extract_worker_read_env(void)
{
	const char *t = g_getenv("MAILVAULT_EXTRACT_TIMEOUT_MS");
	if (t) {
		char *end = NULL;
		guint64 v = g_ascii_strtoull(t, &end, 10);
		if (end != t && *end == '\0' && v > 0 && v <= 3600000)
			timeout_ms = (int)v;
		else
			mv_log_warn("MAILVAULT_EXTRACT_TIMEOUT_MS=%s is not a number of milliseconds; ignored", t);
	}
	keep_stderr = g_getenv("MAILVAULT_EXTRACT_STDERR") != NULL;
}

void mv_extract_set_timeout_ms(int ms)
{
	timeout_ms = ms;
}

void mv_extract_set_memory_limit(uint64_t bytes)
{
	memory_limit = bytes;
}

/* ---- the parent's side ------------------------------------------------------------ */

typedef struct worker {
	pid_t pid;        /* 0: none running */
	int to, from;     /* its stdin and stdout */
	int failures;     /* starts that failed in a row */
	gint64 retry_at;  /* monotonic µs before which no start is tried */
} worker;

/* Kills the worker's process group while its pid is still held (zombie or
 * alive, so the group id cannot have been reused), then reaps it. */
static int worker_end(worker *w)
{
	int status = 0;
	if (w->pid <= 0)
		return 0;
	close(w->to);
	close(w->from);
	kill(-w->pid, SIGKILL);
	kill(w->pid, SIGKILL);
	while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	return status;
}

/* Every thread's worker, so that the process can end them all at exit:
 * a thread pool's threads outlive an import, and their workers would be
 * left for init to reap. */
static GMutex live_lock;
static GPtrArray *live;

static void worker_free(gpointer p)
{
	g_mutex_lock(&live_lock);
	if (live)
		g_ptr_array_remove_fast(live, p);
	g_mutex_unlock(&live_lock);
	worker_end(p);
	g_free(p);
}

void mv_extract_shutdown(void)
{
	g_mutex_lock(&live_lock);
	for (guint i = 0; live && i < live->len; i++)
		worker_end(live->pdata[i]);
	g_mutex_unlock(&live_lock);
}

static GPrivate current = G_PRIVATE_INIT(worker_free);

void mv_extract_thread_done(void)
{
	worker *w = g_private_get(&current);
	if (w)
		worker_end(w);
}

pid_t mv_extract_worker_pid(void)
{
	worker *w = g_private_get(&current);
	return w ? w->pid : 0;
}

/* The worker's environment: what the sanitizers and the loader need, no
 * more (the parent's may hold what a hostile document should not see). */
static GPtrArray *worker_env(void)
{
	static const char *const keep[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_LIBRARY_PATH" };
	GPtrArray *env = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(env, g_strdup("PATH=/usr/bin:/bin"));
	for (size_t i = 0; i < G_N_ELEMENTS(keep); i++) {
		const char *v = g_getenv(keep[i]);
		if (v)
			g_ptr_array_add(env, g_strdup_printf("%s=%s", keep[i], v));
	}
	g_ptr_array_add(env, NULL);
	return env;
}

static void note_start_failure(worker *w)
{
	w->failures++;
	gint64 wait = G_TIME_SPAN_SECOND << MIN(w->failures - 1, 6);
	w->retry_at = g_get_monotonic_time() + MIN(wait, MAX_BACKOFF_US);
}

static int spawn_actions(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int in, int out)
{
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	if (posix_spawn_file_actions_init(fa) != 0)
		return -1;
	if (posix_spawnattr_init(attr) != 0) {
		posix_spawn_file_actions_destroy(fa);
		return -1;
	}
	/* The caller's thread may block signals (the server's signal thread
	 * setup) or ignore them (SIGPIPE): the worker starts clean. */
	int rc = posix_spawn_file_actions_adddup2(fa, in, 0) | posix_spawn_file_actions_adddup2(fa, out, 1) |
	         (keep_stderr ? 0 : posix_spawn_file_actions_addopen(fa, 2, "/dev/null", O_WRONLY, 0)) |
	         posix_spawn_file_actions_addclosefrom_np(fa, 3) |
	         posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) |
	         posix_spawnattr_setpgroup(attr, 0) | posix_spawnattr_setsigmask(attr, &none) |
	         posix_spawnattr_setsigdefault(attr, &all);
	if (rc != 0) {
		posix_spawn_file_actions_destroy(fa);
		posix_spawnattr_destroy(attr);
		return -1;
	}
	return 0;
}

static int spawn_failed(worker *w, int errnum, const char *what, GError **error)
{
	note_start_failure(w);
	g_set_error(error, MV_ERROR, MV_ERR_IO, "could not start the document worker (%s: %s)", what,
	            g_strerror(errnum));
	return -1;
}

static int worker_start(worker *w, GError **error)
{
	const char *exe = g_atomic_pointer_get(&worker_exe);
	if (!exe) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "document extraction is not set up (no worker program)");
		return -1;
	}
	gint64 now = g_get_monotonic_time();
	if (now < w->retry_at) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "the document worker did not start (%d times); next try in %d s",
		            w->failures, (int)((w->retry_at - now) / G_TIME_SPAN_SECOND) + 1);
		return -1;
	}
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return spawn_failed(w, errno, "pipe", error);
	if (pipe2(out, O_CLOEXEC) < 0) {
		int e = errno;
		close(in[0]);
		close(in[1]);
		return spawn_failed(w, e, "pipe", error);
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc = ENOMEM;
	pid_t pid = 0;
	if (spawn_actions(&fa, &attr, in[0], out[1]) == 0) {
		char *argv[] = { (char *)exe, "extract-worker", NULL };
		GPtrArray *env = worker_env();
		rc = posix_spawn(&pid, exe, &fa, &attr, argv, (char **)env->pdata);
		g_ptr_array_unref(env);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
	}
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		close(in[1]);
		close(out[0]);
		return spawn_failed(w, rc, exe, error);
	}
	w->pid = pid;
	w->to = in[1];
	w->from = out[0];
	/* Non-blocking: every wait goes through poll and the deadline. */
	if (fcntl(w->to, F_SETFL, O_NONBLOCK) < 0 || fcntl(w->from, F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;
		worker_end(w);
		return spawn_failed(w, e, "fcntl", error);
	}
	return 0;
}

typedef enum {
	XFER_OK,
	XFER_DEAD,    /* the worker closed its end: it exited or crashed */
	XFER_TIMEOUT,
	XFER_MEMORY,
	XFER_ERROR,   /* poll, read or write failed otherwise (errno kept) */
} xfer;

typedef struct exchange {
	worker *w;
	gint64 deadline;
	gint64 next_check;
	uint64_t memory_limit;
	int error_errno;
} exchange;

static uint64_t resident_bytes(pid_t pid)
{
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long long size = 0, resident = 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Waits until fd is ready for events, checking memory on the way. */
static xfer wait_ready(exchange *x, int fd, short events)
{
	for (;;) {
		gint64 now = g_get_monotonic_time();
		if (now >= x->next_check) {
			if (resident_bytes(x->w->pid) > x->memory_limit)
				return XFER_MEMORY;
			x->next_check = now + MEMORY_CHECK_US;
		}
		if (now >= x->deadline)
			return XFER_TIMEOUT;
		gint64 until = MIN(x->deadline, x->next_check);
		struct pollfd p = { fd, events, 0 };
		int r = poll(&p, 1, (int)((until - now + 999) / 1000));
		if (r > 0)
			return XFER_OK; /* ready, or hung up: the read or write says which */
		if (r < 0 && errno != EINTR) {
			x->error_errno = errno;
			return XFER_ERROR;
		}
	}
}

static xfer send_bytes(exchange *x, const uint8_t *p, size_t len, bool *broken_pipe)
{
	while (len > 0) {
		xfer r = wait_ready(x, x->w->to, POLLOUT);
		if (r != XFER_OK)
			return r;
		ssize_t n = write(x->w->to, p, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0 && errno == EPIPE) {
			*broken_pipe = true;
			return XFER_DEAD;
		}
		if (n <= 0) {
			x->error_errno = errno;
			return XFER_ERROR;
		}
		p += n;
		len -= (size_t)n;
	}
	return XFER_OK;
}

/* The request, with SIGPIPE blocked in this thread: a worker that died
 * must not kill the importer. */
static xfer send_request(exchange *x, const request_header *h, const uint8_t *data, size_t len)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	bool broken = false;
	xfer r = send_bytes(x, (const uint8_t *)h, sizeof *h, &broken);
	if (r == XFER_OK)
		r = send_bytes(x, data, len, &broken);
	if (broken) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

static xfer receive_bytes(exchange *x, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		xfer r = wait_ready(x, x->w->from, POLLIN);
		if (r != XFER_OK)
			return r;
		ssize_t n = read(x->w->from, p, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n == 0)
			return XFER_DEAD;
		if (n < 0) {
			x->error_errno = errno;
			return XFER_ERROR;
		}
		p += n;
		len -= (size_t)n;
	}
	return XFER_OK;
}

/* A worker that hung up: give it a moment to finish dying, so that a crash
 * is reported by its signal rather than by our SIGKILL. */
static void await_exit(pid_t pid)
{
	gint64 until = g_get_monotonic_time() + EXIT_GRACE_US;
	siginfo_t info;
	do {
		memset(&info, 0, sizeof info);
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
			return;
		g_usleep(5 * 1000);
	} while (g_get_monotonic_time() < until);
}

static char *seconds_text(int ms)
{
	if (ms % 1000 == 0)
		return g_strdup_printf("%d s", ms / 1000);
	return g_strdup_printf("%.1f s", ms / 1000.0);
}

/* Ends the worker after a failed exchange and says why. */
static int fail(exchange *x, xfer why, int ms, GError **error)
{
	worker *w = x->w;
	if (why == XFER_DEAD)
		await_exit(w->pid);
	int status = worker_end(w);
	char *t = NULL;
	switch (why) {
	case XFER_TIMEOUT:
		t = seconds_text(ms);
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "timed out after %s", t);
		g_free(t);
		break;
	case XFER_MEMORY:
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "worker exceeded the memory limit (%llu MB)",
		            (unsigned long long)(x->memory_limit / (1024 * 1024)));
		break;
	case XFER_DEAD:
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SETUP_FAILED) {
			note_start_failure(w);
			g_set_error(error, MV_ERROR, MV_ERR_IO, "the document worker could not set up its sandbox");
		} else if (WIFSIGNALED(status)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "worker crashed (signal %d)", WTERMSIG(status));
		} else {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "worker exited with status %d", WEXITSTATUS(status));
		}
		break;
	default:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "lost the document worker: %s", g_strerror(x->error_errno));
		break;
	}
	return -1;
}

/* Reads the answer: text into out (valid UTF-8, within the limit whatever
 * the worker claims), or the worker's error. */
static int receive_answer(exchange *x, size_t limit, GString *out, size_t cap, xfer *why, GError **error)
{
	response_header h;
	*why = receive_bytes(x, &h, sizeof h);
	if (*why != XFER_OK)
		return -1;
	if (h.magic != RESPONSE_MAGIC || h.text_len > limit || h.message_len > MAX_MESSAGE) {
		x->error_errno = EPROTO;
		*why = XFER_ERROR;
		return -1;
	}
	char *text = g_malloc(h.text_len + 1);
	char *message = g_malloc(h.message_len + 1);
	*why = receive_bytes(x, text, h.text_len);
	if (*why == XFER_OK)
		*why = receive_bytes(x, message, h.message_len);
	int rc = -1;
	if (*why == XFER_OK) {
		mv_doc_append(out, cap, text, h.text_len);
		rc = 0;
		if (h.code != 0) {
			message[h.message_len] = '\0';
			char *clean = mv_utf8_sanitize(message, (gssize)h.message_len);
			int code = h.code >= MV_ERR_IO && h.code <= MV_ERR_DENIED ? h.code : MV_ERR_INVALID;
			g_set_error(error, MV_ERROR, code, "%s", *clean ? clean : "unreadable");
			g_free(clean);
			rc = 1; /* answered, with an error */
		}
	}
	g_free(text);
	g_free(message);
	return rc;
}

int mv_extract_document(mv_doc_kind kind, const uint8_t *data, size_t len, GString *out, size_t limit,
                        GError **error)
{
	if (len > MV_EXTRACT_MAX_INPUT) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "larger than %u MB: not read",
		            MV_EXTRACT_MAX_INPUT / (1024u * 1024u));
		return -1;
	}
	if (kind == MV_DOC_NONE) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not a document this build reads");
		return -1;
	}
	limit = MIN(limit, (size_t)MV_EXTRACT_MAX_TEXT);
	worker *w = g_private_get(&current);
	if (!w) {
		w = g_new0(worker, 1);
		g_private_set(&current, w);
		g_mutex_lock(&live_lock);
		if (!live)
			live = g_ptr_array_new();
		g_ptr_array_add(live, w);
		g_mutex_unlock(&live_lock);
	}
	if (w->pid == 0 && worker_start(w, error) < 0)
		return -1;
	int ms = timeout_ms;
	gint64 now = g_get_monotonic_time();
	exchange x = { w, now + (gint64)ms * G_TIME_SPAN_MILLISECOND, now, memory_limit, 0 };
	request_header h = { REQUEST_MAGIC, (uint32_t)kind, len, limit, (uint32_t)ms, 0 };
	xfer why = send_request(&x, &h, data, len);
	if (why != XFER_OK)
		return fail(&x, why, ms, error);
	int rc = receive_answer(&x, limit, out, out->len + limit, &why, error);
	if (rc < 0)
		return fail(&x, why, ms, error);
	/* It answered: it starts fine, whatever the document did. */
	w->failures = 0;
	w->retry_at = 0;
	return rc == 0 ? 0 : -1;
}
