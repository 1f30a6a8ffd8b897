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
 * The worker side (mv_extract_worker_main) sets rlimits, warms up poppler
 * and libxml2, then installs a seccomp filter — default allow, so that
 * what the libraries load lazily still loads; denied: every socket call,
 * opening files for writing and every call that changes the file system,
 * file locks, signals to other processes, ptrace and the other ways into
 * another process, kernel keyrings, BPF, io_uring, namespaces and mounts,
 * and execve of anything but the legacy tools' paths (see internal.h) —
 * and answers requests until stdin closes.  RLIMIT_FSIZE is not 0: a
 * memfd holding a legacy document for catdoc counts against it, and files
 * cannot be opened for writing anyway.  No RLIMIT_CPU on the worker (it
 * is long-lived and the limit counts its whole life): an alarm per request
 * is the backstop behind the parent's deadline. */
#include "extract/internal.h"

#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <poll.h>
#include <poppler.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define REQUEST_MAGIC 0x3151584DU  /* "MXQ1" */
#define RESPONSE_MAGIC 0x3152584DU /* "MXR1" */
#define MAX_MESSAGE 1024u
#define MEMORY_CHECK_US (100 * G_TIME_SPAN_MILLISECOND)
/* How long a worker that closed its pipes gets to tell how it ended. */
#define EXIT_GRACE_US (500 * G_TIME_SPAN_MILLISECOND)
/* The worker's exit status when it could not set up its sandbox. */
#define EXIT_SETUP_FAILED 70
#define MAX_BACKOFF_US (60 * G_TIME_SPAN_SECOND)

typedef struct request_header {
	uint32_t magic;
	uint32_t kind;
	uint64_t len;
	uint64_t limit;
	uint32_t timeout_ms;
	uint32_t reserved;
} request_header;

typedef struct response_header {
	uint32_t magic;
	int32_t code; /* 0: success, else an mv_error_code */
	uint64_t text_len;
	uint32_t message_len;
	uint32_t reserved;
} response_header;

G_STATIC_ASSERT(sizeof(request_header) == 32);
G_STATIC_ASSERT(sizeof(response_header) == 24);

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

static void worker_free(gpointer p)
{
	worker_end(p);
	g_free(p);
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

/* ---- the worker's side ------------------------------------------------------------ */

static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

static int write_exact(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int set_limit(int resource, rlim_t value)
{
	struct rlimit r = { value, value };
	return setrlimit(resource, &r);
}

static int set_rlimits(void)
{
	int rc = set_limit(RLIMIT_CORE, 0) | set_limit(RLIMIT_NOFILE, 64) |
	         set_limit(RLIMIT_FSIZE, MV_EXTRACT_MAX_INPUT);
#ifndef UNDER_ASAN
	/* AddressSanitizer reserves terabytes of shadow address space. */
	rc |= set_limit(RLIMIT_AS, MV_EXTRACT_MAX_MEMORY);
#endif
	return rc;
}

/* Loads what poppler and libxml2 set up on first use (poppler's global
 * parameters and unicode tables) before the filter is in place. */
static void warm_up(void)
{
	static const char pdf[] = "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
	                          "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
	                          "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]"
	                          "/Resources<</Font<</F1 4 0 R>>>>/Contents 5 0 R>>endobj\n"
	                          "4 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
	                          "5 0 obj<</Length 35>>stream\nBT /F1 12 Tf 20 100 Td (warm) Tj ET\nendstream endobj\n"
	                          "trailer<</Root 1 0 R>>\n%%EOF\n";
	xmlInitParser();
	mv_mime_init(); /* text files inside archives go through mime's readers */
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	mv_extract_pdf((const uint8_t *)pdf, sizeof pdf - 1, out, 1024, &err);
	g_clear_error(&err);
	g_string_free(out, TRUE);
}

typedef struct rule {
	const char *name;
	int errnum;
} rule;

/* Denied outright.  EPERM/EACCES rather than a kill: a library probing
 * for a feature gets an answer it handles. */
static const rule denied[] = {
	/* network */
	{ "socket", EACCES }, { "socketpair", EACCES }, { "connect", EACCES }, { "bind", EACCES },
	{ "listen", EACCES }, { "accept", EACCES }, { "accept4", EACCES }, { "sendto", EACCES },
	{ "sendmsg", EACCES }, { "sendmmsg", EACCES }, { "recvfrom", EACCES }, { "recvmsg", EACCES },
	{ "recvmmsg", EACCES }, { "setsockopt", EACCES },
	/* other processes */
	{ "ptrace", EPERM }, { "process_vm_readv", EPERM }, { "process_vm_writev", EPERM }, { "kcmp", EPERM },
	{ "pidfd_open", EPERM }, { "pidfd_getfd", EPERM }, { "pidfd_send_signal", EPERM }, { "tkill", EPERM },
	/* the kernel's bigger doors */
	{ "bpf", EPERM }, { "perf_event_open", EPERM }, { "keyctl", EPERM }, { "add_key", EPERM },
	{ "request_key", EPERM }, { "userfaultfd", EPERM }, { "io_uring_setup", EPERM }, { "io_uring_enter", EPERM },
	{ "io_uring_register", EPERM }, { "mount", EPERM }, { "umount2", EPERM }, { "pivot_root", EPERM },
	{ "chroot", EPERM }, { "unshare", EPERM }, { "setns", EPERM }, { "swapon", EPERM }, { "swapoff", EPERM },
	{ "reboot", EPERM }, { "kexec_load", EPERM }, { "kexec_file_load", EPERM }, { "init_module", EPERM },
	{ "finit_module", EPERM }, { "delete_module", EPERM }, { "acct", EPERM }, { "quotactl", EPERM },
	{ "sethostname", EPERM }, { "setdomainname", EPERM }, { "settimeofday", EPERM }, { "clock_settime", EPERM },
	{ "clock_adjtime", EPERM }, { "adjtimex", EPERM }, { "iopl", EPERM }, { "ioperm", EPERM },
	{ "syslog", EPERM }, { "personality", EPERM }, { "fanotify_init", EPERM }, { "open_by_handle_at", EPERM },
	{ "name_to_handle_at", EPERM }, { "open_tree", EPERM }, { "move_mount", EPERM }, { "fsopen", EPERM },
	{ "fsconfig", EPERM }, { "fsmount", EPERM }, { "fspick", EPERM }, { "mount_setattr", EPERM },
	{ "execveat", EACCES },
	/* the file system: nothing created, changed or removed */
	{ "creat", EACCES }, { "openat2", ENOSYS }, { "unlink", EACCES }, { "unlinkat", EACCES },
	{ "rename", EACCES }, { "renameat", EACCES }, { "renameat2", EACCES }, { "rmdir", EACCES },
	{ "mkdir", EACCES }, { "mkdirat", EACCES }, { "link", EACCES }, { "linkat", EACCES },
	{ "symlink", EACCES }, { "symlinkat", EACCES }, { "chmod", EACCES }, { "fchmod", EACCES },
	{ "fchmodat", EACCES }, { "chown", EACCES }, { "fchown", EACCES }, { "lchown", EACCES },
	{ "fchownat", EACCES }, { "truncate", EACCES }, { "ftruncate", EACCES }, { "fallocate", EACCES },
	{ "utime", EACCES }, { "utimes", EACCES }, { "utimensat", EACCES }, { "futimesat", EACCES },
	{ "mknod", EACCES }, { "mknodat", EACCES }, { "setxattr", EACCES }, { "lsetxattr", EACCES },
	{ "fsetxattr", EACCES }, { "removexattr", EACCES }, { "lremovexattr", EACCES }, { "fremovexattr", EACCES },
	/* a read-only fd still takes a lock the archive would wait for */
	{ "flock", EACCES },
};

static int add_rule(scmp_filter_ctx ctx, int errnum, const char *name, unsigned n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0; /* not a system call on this architecture */
	return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(errnum), nr, n, cmp);
}

/* (libseccomp's SCMP_A* macros leave datum_b to the compiler's mercy.) */
static struct scmp_arg_cmp compare(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	struct scmp_arg_cmp c = { .arg = arg, .op = op, .datum_a = a, .datum_b = b };
	return c;
}

static int add_arg_rules(scmp_filter_ctx ctx)
{
	const scmp_datum_t write_flags[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC };
	int rc = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(write_flags); i++) {
		struct scmp_arg_cmp open_cmp = compare(1, SCMP_CMP_MASKED_EQ, write_flags[i], write_flags[i]);
		struct scmp_arg_cmp openat_cmp = compare(2, SCMP_CMP_MASKED_EQ, write_flags[i], write_flags[i]);
		rc |= add_rule(ctx, EACCES, "open", 1, &open_cmp);
		rc |= add_rule(ctx, EACCES, "openat", 1, &openat_cmp);
	}
	const scmp_datum_t lock_cmds[] = { F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW };
	for (size_t i = 0; i < G_N_ELEMENTS(lock_cmds); i++) {
		struct scmp_arg_cmp cmd = compare(1, SCMP_CMP_EQ, lock_cmds[i], 0);
		rc |= add_rule(ctx, EACCES, "fcntl", 1, &cmd);
	}
	/* Signals only to itself (abort, sanitizers); its tools it never
	 * signals (see legacy.c). */
	struct scmp_arg_cmp other = compare(0, SCMP_CMP_NE, (scmp_datum_t)getpid(), 0);
	rc |= add_rule(ctx, EPERM, "kill", 1, &other);
	rc |= add_rule(ctx, EPERM, "tgkill", 1, &other);
	rc |= add_rule(ctx, EPERM, "rt_sigqueueinfo", 1, &other);
	rc |= add_rule(ctx, EPERM, "rt_tgsigqueueinfo", 1, &other);
	/* execve only with a path pointer into the legacy tools' table. */
	scmp_datum_t lo = (scmp_datum_t)(uintptr_t)mv_legacy_tool_paths;
	scmp_datum_t hi = lo + mv_legacy_tool_paths_size() - 1;
	struct scmp_arg_cmp below = compare(0, SCMP_CMP_LT, lo, 0), above = compare(0, SCMP_CMP_GT, hi, 0);
	rc |= add_rule(ctx, EACCES, "execve", 1, &below);
	rc |= add_rule(ctx, EACCES, "execve", 1, &above);
	return rc;
}

static int install_filter(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(denied); i++)
		rc |= add_rule(ctx, denied[i].errnum, denied[i].name, 0, NULL);
	rc |= add_arg_rules(ctx);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc;
}

/* A worker started by root runs as nobody: the data directory's keys and
 * database (0600, root's) are then out of its reach even through a read a
 * compromised parser might make. */
#define NOBODY_ID 65534

static int drop_root(void)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(0, NULL) != 0 || setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) != 0 ||
	    setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) != 0)
		return -1;
	return geteuid() == 0 ? -1 : 0;
}

int mv_extract_sandbox_enter(void)
{
	if (drop_root() != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	/* The thread that started it ending ends it, whatever else happens. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	if (chdir("/") != 0 || set_rlimits() != 0)
		return -1;
	warm_up();
	return install_filter();
}

/* Reads and drops len bytes (a request too large to hold). */
static int skip_input(uint64_t len)
{
	uint8_t buf[4096];
	while (len > 0) {
		size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
		if (read_exact(0, buf, n) != 1)
			return -1;
		len -= n;
	}
	return 0;
}

static int respond(int code, const GString *text, const char *message)
{
	size_t mlen = strlen(message);
	if (mlen > MAX_MESSAGE)
		mlen = MAX_MESSAGE;
	response_header h = { RESPONSE_MAGIC, code, text->len, (uint32_t)mlen, 0 };
	if (write_exact(1, &h, sizeof h) < 0 || write_exact(1, text->str, text->len) < 0 ||
	    write_exact(1, message, mlen) < 0)
		return -1;
	return 0;
}

static int serve_one(const request_header *h)
{
	GString *out = g_string_new(NULL);
	uint8_t *data = g_try_malloc(h->len ? h->len : 1);
	if (!data) {
		int rc = skip_input(h->len) < 0 ? -1 : respond(MV_ERR_LIMIT, out, "out of memory for the document");
		g_string_free(out, TRUE);
		return rc;
	}
	int rc = -1;
	if (read_exact(0, data, h->len) == 1) {
		/* The backstop behind the parent's deadline, should the parent
		 * stop watching. */
		alarm(h->timeout_ms / 1000 + 5);
		GError *err = NULL;
		int x = mv_extract_direct((mv_doc_kind)h->kind, data, h->len, 0, out, h->limit, &err);
		alarm(0);
		if (x < 0 && !err)
			g_set_error(&err, MV_ERROR, MV_ERR_INVALID, "unreadable");
		rc = respond(x < 0 ? err->code : 0, out, x < 0 ? err->message : "");
		g_clear_error(&err);
	}
	g_free(data);
	g_string_free(out, TRUE);
	return rc;
}

int mv_extract_worker_main(void)
{
	if (mv_extract_sandbox_enter() != 0) {
		fprintf(stderr, "mailvault extract-worker: could not set up the sandbox: %s\n", g_strerror(errno));
		return EXIT_SETUP_FAILED;
	}
	for (;;) {
		request_header h;
		int r = read_exact(0, &h, sizeof h);
		if (r == 0)
			break;
		if (r < 0 || h.magic != REQUEST_MAGIC || h.kind > MV_DOC_ZIP || h.kind == MV_DOC_NONE ||
		    h.len > MV_EXTRACT_MAX_INPUT || h.limit > MV_EXTRACT_MAX_TEXT)
			_exit(2);
		if (serve_one(&h) < 0)
			_exit(3);
	}
	/* _exit: no atexit handlers — under LeakSanitizer its leak check would
	 * ptrace, which the filter refuses, and the libraries' caches are not
	 * leaks worth a report. */
	_exit(0);
}
