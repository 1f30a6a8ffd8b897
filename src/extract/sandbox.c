/* sandbox: the worker process's own side — how `mailvault extract-worker`
 * shuts itself in before it reads a single document, and its request loop.
 *
 * Order matters: started by root it becomes nobody (the data directory's
 * keys and databases are root's, 0600), then no-new-privs, rlimits, a
 * warm-up of poppler and libxml2 (what they load lazily is loaded before
 * the filter is in place), then a seccomp filter — default allow, so that
 * what the libraries load lazily still loads; denied: every socket call,
 * opening files for writing and every call that changes the file system,
 * file locks, signals to other processes, ptrace and the other ways into
 * another process, kernel keyrings, BPF, io_uring, namespaces and mounts,
 * and execve of anything but the legacy tools' paths (see internal.h) —
 * and it answers requests until stdin closes.  RLIMIT_FSIZE is not 0: a
 * memfd holding a legacy document for catdoc counts against it, and files
 * cannot be opened for writing anyway.  No RLIMIT_CPU on the worker (it
 * is long-lived and the limit counts its whole life): an alarm per request
 * is the backstop behind the parent's deadline (worker.c). */
#include "extract/internal.h"

#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libxml/parser.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

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
