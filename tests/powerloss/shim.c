/* tests/powerloss/shim.c: an LD_PRELOAD recorder for power-loss tests.
 *
 * kill -9 never loses the page cache, so a crash test run that way cannot
 * notice a missing fsync.  This shim records, for every file a process
 * writes below one directory, what the disk would hold if the power failed
 * at any moment; tests/powerloss/powerloss.py rebuilds that directory as of
 * any chosen moment, and tests/system/test_power_loss.py checks what the
 * product promises about it.
 *
 * The model: snapshot on fsync.
 *   - A regular file's durable contents (bytes and length) are its bytes at
 *     its last completed fsync or fdatasync.  Every such call copies the
 *     whole file into a blob of the journal directory.  A file never synced
 *     is empty on the rebuilt disk, whatever was written to it.
 *   - A directory's durable entries (creations, renames, unlinks) are its
 *     entries at its last fsync: the call lists it (name, type, mode,
 *     device and inode of each) into a blob.  A name never made durable
 *     does not exist on the rebuilt disk; an unlinked or renamed-away name
 *     whose directory was not synced since is still there, pointing at the
 *     durable contents of its old file.
 *   - Files are identified by incarnation, not by inode number: a file
 *     created by open(O_CREAT) or mkdir gets an `N` record, so a reused inode
 *     number does not inherit an earlier file's durable bytes.
 *   - Everything below the directory when the journal began (the baseline,
 *     written by powerloss.py before the first traced process) is durable.
 * This is the pessimistic POSIX model (ALICE and CrashMonkey test against
 * it): ext4 with data=ordered often keeps more, never less.
 *
 * Limits (what the model does not see; none is used by mailvault or by
 * SQLite in its default configuration):
 *   - sync(), syncfs(), sync_file_range(), msync() and O_SYNC/O_DSYNC
 *     writes are recorded as nothing durable: a program relying on them
 *     would fail here although it is correct.
 *   - A file's bytes are copied at fsync, not at the moment the kernel would
 *     have written them: a torn or reordered write inside one fsync interval
 *     is not modelled (the rebuilt file is never a mix of old and new
 *     blocks); nor are writes that reach the disk early without an fsync.
 *   - Paths are compared as strings: the directory must be given by its
 *     real path and the program must reach it without symlinks; a relative
 *     path is resolved against the working directory at start (and after
 *     chdir), an openat() directory fd only when it was opened by path here.
 *   - Symbolic links and special files are left out of the rebuilt tree.
 *   - Processes sharing a journal must not run concurrently with powerloss.py
 *     writing a baseline or an ack; traced processes themselves may overlap
 *     (the sequence number is taken under flock).
 *
 * Environment:
 *   MV_POWERLOSS_DIR   the directory watched (absolute, real path).  Unset:
 *                      the shim does nothing.
 *   MV_POWERLOSS_LOG   the journal directory: `journal` (one line a record),
 *                      `seq` (the last sequence number given out), `blobs/`.
 *   MV_POWERLOSS_CUT=N "cut the power" after the Nth fsync (counted over
 *                      every process of the journal): once its snapshot is
 *                      written, the process kills itself with SIGKILL.
 *   MV_POWERLOSS_CUT_SIGNAL=1  SIGUSR2 cuts the power at once (a `X` record,
 *                      then SIGKILL).
 *   MV_POWERLOSS_FAKE_FSYNC=1  every fsync is recorded but snapshots
 *                      nothing: the model of an fsync that is a no-op.  Any
 *                      other value is a ':'-separated list of fnmatch
 *                      patterns: only fsyncs of matching paths are no-ops.
 *   MV_POWERLOSS_REAL_FSYNC=1  also call the real fsync (by default a
 *                      watched file's fsync only snapshots: the machine
 *                      running the test does not lose power).
 *
 * Journal records (space-separated; paths last, as written by the program):
 *   F SEQ PID DEV INO BLOB PATH   fsync/fdatasync of a file (BLOB "-": faked)
 *   D SEQ PID DEV INO BLOB PATH   fsync of a directory (blob: one line per
 *                                 entry "TYPE MODE DEV INO HEXNAME")
 *   N - PID DEV INO PATH          a new file or directory (an incarnation)
 *   X SEQ PID                     the cut
 *   W/T/A/R/U/S/Y/K - PID ...     writes, truncations, allocations, renames,
 *                                 unlinks, sync_file_range, sync, mkdir and
 *                                 rmdir: for the reader of a failure, not
 *                                 used by the rebuild. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* The shim defines the plain and the 64 names itself (Meson's default
 * _FILE_OFFSET_BITS=64 would rename the plain ones onto the 64 ones). */
#undef _FILE_OFFSET_BITS
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 8192
#define RECORD_MAX (3 * PATH_MAX + 256)

/* ---- the real functions --------------------------------------------------------- */

#define REAL(name) static __typeof__(name) *real_##name
REAL(open);
REAL(openat);
REAL(close);
REAL(write);
REAL(pwrite);
REAL(writev);
REAL(pwritev);
REAL(ftruncate);
REAL(truncate);
REAL(fallocate);
REAL(rename);
REAL(renameat);
REAL(renameat2);
REAL(unlink);
REAL(unlinkat);
REAL(mkdir);
REAL(mkdirat);
REAL(rmdir);
REAL(fsync);
REAL(fdatasync);
REAL(sync_file_range);
REAL(sync);
REAL(syncfs);
REAL(chdir);
REAL(copy_file_range);
REAL(read);

static void *next_symbol(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		static const char msg[] = "mvpowerloss: a libc function is missing\n";
		(void)!syscall(1, 2, msg, sizeof msg - 1);
		abort();
	}
	return p;
}

#define RESOLVE(name) do { if (!real_##name) real_##name = (__typeof__(real_##name))next_symbol(#name); } while (0)

static void resolve_all(void)
{
	RESOLVE(open); RESOLVE(openat); RESOLVE(close); RESOLVE(write); RESOLVE(pwrite); RESOLVE(writev);
	RESOLVE(pwritev); RESOLVE(ftruncate); RESOLVE(truncate); RESOLVE(fallocate); RESOLVE(rename);
	RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(unlink); RESOLVE(unlinkat); RESOLVE(mkdir);
	RESOLVE(mkdirat); RESOLVE(rmdir); RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(sync_file_range);
	RESOLVE(sync); RESOLVE(syncfs); RESOLVE(chdir); RESOLVE(copy_file_range); RESOLVE(read);
}

/* ---- state ------------------------------------------------------------------------- */

static bool active;
static char watch[PATH_MAX];
static size_t watch_len;
static char logdir[PATH_MAX - 64];   /* room for "/blobs/<seq>" */
static char cwd[PATH_MAX];
static int journal_fd = -1, seq_fd = -1;
static long cut_at = -1;
static bool fake_all, call_real_fsync;
static char *fake_patterns;          /* ':'-separated; owned for the process's life */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *fd_paths[MAX_FDS];      /* watched fds: their absolute path */
static __thread int inside;          /* our own calls are not recorded */

static void die(const char *what)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "mvpowerloss: %s: %s\n", what, strerror(errno));
	(void)!real_write(2, msg, (size_t)(n > 0 && n < (int)sizeof msg ? n : 0));
	abort();
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = real_write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("writing the journal");
		p += w;
		n -= (size_t)w;
	}
}

/* One record, one write(2) on an O_APPEND descriptor: records of threads and
 * processes never interleave. */
static void record(const char *fmt, ...)
{
	char buf[RECORD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	write_all(journal_fd, buf, (size_t)n);
}

static bool under_watch(const char *abs)
{
	return strncmp(abs, watch, watch_len) == 0 && (abs[watch_len] == '/' || abs[watch_len] == '\0');
}

/* The absolute path of PATH opened relative to DIRFD, or false when it
 * cannot be known without a system call (then it is not watched). */
static bool absolute(int dirfd, const char *path, char *out)
{
	const char *base;
	if (!path)
		return false;
	if (path[0] == '/')
		base = "";
	else if (dirfd == AT_FDCWD)
		base = cwd;
	else if (dirfd >= 0 && dirfd < MAX_FDS && fd_paths[dirfd])
		base = fd_paths[dirfd];
	else
		return false;
	int n = snprintf(out, PATH_MAX, "%s%s%s", base, *base ? "/" : "", path);
	return n > 0 && n < PATH_MAX;
}

static bool watched_path(int dirfd, const char *path, char *abs)
{
	return active && !inside && absolute(dirfd, path, abs) && under_watch(abs);
}

static const char *fd_path(int fd)
{
	return active && !inside && fd >= 0 && fd < MAX_FDS ? fd_paths[fd] : NULL;
}

static void track(int fd, const char *abs)
{
	if (fd < 0 || fd >= MAX_FDS)
		return;
	free(fd_paths[fd]);
	fd_paths[fd] = abs ? strdup(abs) : NULL;
}

/* The next sequence number of the journal, under flock: processes sharing it
 * count fsyncs together. */
static long next_seq(void)
{
	char buf[32] = { 0 };
	ssize_t n = pread(seq_fd, buf, sizeof buf - 1, 0);
	if (n < 0)
		die("reading seq");
	long seq = strtol(buf, NULL, 10) + 1;
	int len = snprintf(buf, sizeof buf, "%ld\n", seq);
	if (real_pwrite(seq_fd, buf, (size_t)len, 0) != len || real_ftruncate(seq_fd, len) < 0)
		die("writing seq");
	return seq;
}

static void blob_path(char *out, long seq)
{
	snprintf(out, PATH_MAX, "%s/blobs/%ld", logdir, seq);
}

static void copy_file(int src, const char *dst)
{
	int out = real_open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		die(dst);
	off_t in_off = 0;
	for (;;) {
		ssize_t n = real_copy_file_range(src, &in_off, out, NULL, 1 << 24, 0);
		if (n == 0)
			break;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			die("copy_file_range");
		static char buf[1 << 16];    /* under mu */
		for (;;) {
			ssize_t r = pread(src, buf, sizeof buf, in_off);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("reading a file to snapshot");
			if (r == 0)
				break;
			write_all(out, buf, (size_t)r);
			in_off += r;
		}
		break;
	}
	real_close(out);
}

static void hexname(const char *name, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (; *name; name++) {
		*out++ = hex[(unsigned char)*name >> 4];
		*out++ = hex[(unsigned char)*name & 15];
	}
	*out = '\0';
}

static void list_dir(int fd, const char *dst)
{
	int dfd = real_openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die("opening a directory to list");
	DIR *d = fdopendir(dfd);
	if (!d)
		die("fdopendir");
	int out = real_open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		die(dst);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;      /* gone since readdir */
		char type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
		char line[2 * NAME_MAX + 128], hn[2 * NAME_MAX + 2];
		hexname(e->d_name, hn);
		int n = snprintf(line, sizeof line, "%c %o %llu %llu %s\n", type, (unsigned)(st.st_mode & 07777),
		                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, hn);
		write_all(out, line, (size_t)n);
	}
	closedir(d);
	real_close(out);
}

static bool faked(const char *path)
{
	if (fake_all)
		return true;
	if (!fake_patterns)
		return false;
	char *list = strdup(fake_patterns), *save = NULL;
	bool hit = false;
	for (char *p = strtok_r(list, ":", &save); p && !hit; p = strtok_r(NULL, ":", &save))
		hit = fnmatch(p, path, 0) == 0;
	free(list);
	return hit;
}

static void cut(long seq)
{
	record("X %ld %d", seq, (int)getpid());
	raise(SIGKILL);
	_exit(137);
}

/* fsync and fdatasync of a watched descriptor: the snapshot. */
static int on_sync(int fd, int (*real)(int))
{
	char linkpath[64], target[PATH_MAX];
	const char *path = fd_path(fd);
	if (!path && active && !inside) {
		/* Opened where we did not see it (glibc-internal opens): ask /proc. */
		snprintf(linkpath, sizeof linkpath, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(linkpath, target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			if (under_watch(target))
				path = target;
		}
	}
	if (!path)
		return real(fd);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	inside++;
	pthread_mutex_lock(&mu);
	if (flock(journal_fd, LOCK_EX) < 0)
		die("flock");
	long seq = next_seq();
	char blob[PATH_MAX];
	const char *name = "-";
	if (!faked(path)) {
		blob_path(blob, seq);
		if (S_ISDIR(st.st_mode)) {
			list_dir(fd, blob);
		} else {
			snprintf(linkpath, sizeof linkpath, "/proc/self/fd/%d", fd);
			int rfd = real_open(linkpath, O_RDONLY | O_CLOEXEC);
			if (rfd < 0)
				die("reopening a file to snapshot");
			copy_file(rfd, blob);
			real_close(rfd);
		}
		name = strrchr(blob, '/') + 1;
	}
	record("%c %ld %d %llu %llu %s %s", S_ISDIR(st.st_mode) ? 'D' : 'F', seq, (int)getpid(),
	       (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, name, path);
	if (seq == cut_at)
		cut(seq);
	flock(journal_fd, LOCK_UN);
	pthread_mutex_unlock(&mu);
	inside--;
	return call_real_fsync ? real(fd) : 0;
}

static void on_sigusr2(int sig)
{
	(void)sig;
	static const char x[] = "X - signal\n";
	(void)!real_write(journal_fd, x, sizeof x - 1);
	raise(SIGKILL);
}

__attribute__((constructor)) static void init(void)
{
	resolve_all();
	const char *dir = getenv("MV_POWERLOSS_DIR"), *log = getenv("MV_POWERLOSS_LOG");
	if (!dir || !*dir || !log || !*log)
		return;
	if (strlen(dir) >= sizeof watch || strlen(log) >= sizeof logdir)
		return;
	strcpy(watch, dir);
	watch_len = strlen(watch);
	while (watch_len > 1 && watch[watch_len - 1] == '/')
		watch[--watch_len] = '\0';
	strcpy(logdir, log);
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = '\0';
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/journal", logdir);
	journal_fd = real_open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	snprintf(p, sizeof p, "%s/seq", logdir);
	seq_fd = real_open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	snprintf(p, sizeof p, "%s/blobs", logdir);
	if (journal_fd < 0 || seq_fd < 0 || (real_mkdir(p, 0700) < 0 && errno != EEXIST))
		die("opening the journal (MV_POWERLOSS_LOG)");
	const char *c = getenv("MV_POWERLOSS_CUT");
	if (c && *c)
		cut_at = strtol(c, NULL, 10);
	const char *f = getenv("MV_POWERLOSS_FAKE_FSYNC");
	if (f && !strcmp(f, "1"))
		fake_all = true;
	else if (f && *f)
		fake_patterns = strdup(f);
	const char *r = getenv("MV_POWERLOSS_REAL_FSYNC");
	call_real_fsync = r && !strcmp(r, "1");
	const char *s = getenv("MV_POWERLOSS_CUT_SIGNAL");
	if (s && !strcmp(s, "1"))
		signal(SIGUSR2, on_sigusr2);
	active = true;
}

/* ---- creating and opening -------------------------------------------------------- */

static int open_common(int dirfd, const char *path, int flags, mode_t mode)
{
	char abs[PATH_MAX];
	if (!real_openat)
		resolve_all();
	if (!watched_path(dirfd, path, abs))
		return real_openat(dirfd, path, flags, mode);
	inside++;
	pthread_mutex_lock(&mu);
	struct stat before;
	bool existed = fstatat(dirfd, path, &before, AT_SYMLINK_NOFOLLOW) == 0;
	int fd = real_openat(dirfd, path, flags, mode);
	int saved = errno;
	if (fd >= 0) {
		track(fd, abs);
		struct stat st;
		if (!existed && (flags & O_CREAT) && fstat(fd, &st) == 0)
			record("N - %d %llu %llu %s", (int)getpid(), (unsigned long long)st.st_dev,
			       (unsigned long long)st.st_ino, abs);
		if (existed && (flags & O_TRUNC) && S_ISREG(before.st_mode) && (flags & O_ACCMODE) != O_RDONLY)
			record("T - %d 0 %s (O_TRUNC)", (int)getpid(), abs);
	}
	pthread_mutex_unlock(&mu);
	inside--;
	errno = saved;
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags, m);
}

int __open_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return open_common(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return open_common(dirfd, path, flags, 0); }
int creat(const char *path, mode_t mode) { return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

int close(int fd)
{
	if (!real_close)
		resolve_all();
	if (fd >= 0 && fd < MAX_FDS && fd_paths[fd]) {
		pthread_mutex_lock(&mu);
		track(fd, NULL);
		pthread_mutex_unlock(&mu);
	}
	return real_close(fd);
}

static int mkdir_common(int dirfd, const char *path, mode_t mode)
{
	char abs[PATH_MAX];
	if (!real_mkdirat)
		resolve_all();
	if (!watched_path(dirfd, path, abs))
		return real_mkdirat(dirfd, path, mode);
	inside++;
	pthread_mutex_lock(&mu);
	int rc = real_mkdirat(dirfd, path, mode);
	int saved = errno;
	struct stat st;
	if (rc == 0 && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
		record("N - %d %llu %llu %s", (int)getpid(), (unsigned long long)st.st_dev,
		       (unsigned long long)st.st_ino, abs);
	pthread_mutex_unlock(&mu);
	inside--;
	errno = saved;
	return rc;
}

int mkdir(const char *path, mode_t mode) { return mkdir_common(AT_FDCWD, path, mode); }
int mkdirat(int dirfd, const char *path, mode_t mode) { return mkdir_common(dirfd, path, mode); }

int chdir(const char *path)
{
	if (!real_chdir)
		resolve_all();
	int rc = real_chdir(path);
	int saved = errno;
	if (rc == 0 && active && !getcwd(cwd, sizeof cwd))
		cwd[0] = '\0';
	errno = saved;
	return rc;
}

/* ---- writes (recorded for the reader; the snapshot reads the file) ---------- */

#define NOTE(fd, fmt, ...) do { const char *p_ = fd_path(fd); \
	if (p_) record(fmt " %s", __VA_ARGS__, p_); } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
	if (!real_write)
		resolve_all();
	ssize_t rc = real_write(fd, buf, n);
	int saved = errno;
	NOTE(fd, "W - %d %zd @cur", (int)getpid(), rc);
	errno = saved;
	return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (!real_pwrite)
		resolve_all();
	ssize_t rc = real_pwrite(fd, buf, n, off);
	int saved = errno;
	NOTE(fd, "W - %d %zd @%lld", (int)getpid(), rc, (long long)off);
	errno = saved;
	return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (!real_writev)
		resolve_all();
	ssize_t rc = real_writev(fd, iov, cnt);
	int saved = errno;
	NOTE(fd, "W - %d %zd @cur", (int)getpid(), rc);
	errno = saved;
	return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (!real_pwritev)
		resolve_all();
	ssize_t rc = real_pwritev(fd, iov, cnt, off);
	int saved = errno;
	NOTE(fd, "W - %d %zd @%lld", (int)getpid(), rc, (long long)off);
	errno = saved;
	return rc;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) { return pwritev(fd, iov, cnt, off); }

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned flags)
{
	if (!real_copy_file_range)
		resolve_all();
	ssize_t rc = real_copy_file_range(in, in_off, out, out_off, len, flags);
	int saved = errno;
	NOTE(out, "W - %d %zd (copy_file_range)", (int)getpid(), rc);
	errno = saved;
	return rc;
}

int ftruncate(int fd, off_t len)
{
	if (!real_ftruncate)
		resolve_all();
	int rc = real_ftruncate(fd, len);
	int saved = errno;
	NOTE(fd, "T - %d %lld rc=%d", (int)getpid(), (long long)len, rc);
	errno = saved;
	return rc;
}

int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }

int truncate(const char *path, off_t len)
{
	char abs[PATH_MAX];
	if (!real_truncate)
		resolve_all();
	int rc = real_truncate(path, len);
	int saved = errno;
	if (watched_path(AT_FDCWD, path, abs))
		record("T - %d %lld rc=%d %s", (int)getpid(), (long long)len, rc, abs);
	errno = saved;
	return rc;
}

int truncate64(const char *path, off_t len) { return truncate(path, len); }

int fallocate(int fd, int mode, off_t off, off_t len)
{
	if (!real_fallocate)
		resolve_all();
	int rc = real_fallocate(fd, mode, off, len);
	int saved = errno;
	NOTE(fd, "A - %d %d %lld+%lld rc=%d", (int)getpid(), mode, (long long)off, (long long)len, rc);
	errno = saved;
	return rc;
}

int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }

/* ---- names ---------------------------------------------------------------------- */

static void note_two(char kind, int rc, int d1, const char *p1, int d2, const char *p2)
{
	char a[PATH_MAX], b[PATH_MAX];
	bool w1 = watched_path(d1, p1, a), w2 = p2 && watched_path(d2, p2, b);
	if (w1 || w2)
		record("%c - %d rc=%d %s -> %s", kind, (int)getpid(), rc, w1 ? a : p1, p2 ? (w2 ? b : p2) : "");
}

int rename(const char *from, const char *to)
{
	if (!real_rename)
		resolve_all();
	int rc = real_rename(from, to);
	int saved = errno;
	note_two('R', rc, AT_FDCWD, from, AT_FDCWD, to);
	errno = saved;
	return rc;
}

int renameat(int d1, const char *from, int d2, const char *to)
{
	if (!real_renameat)
		resolve_all();
	int rc = real_renameat(d1, from, d2, to);
	int saved = errno;
	note_two('R', rc, d1, from, d2, to);
	errno = saved;
	return rc;
}

int renameat2(int d1, const char *from, int d2, const char *to, unsigned flags)
{
	if (!real_renameat2)
		resolve_all();
	int rc = real_renameat2(d1, from, d2, to, flags);
	int saved = errno;
	note_two('R', rc, d1, from, d2, to);
	errno = saved;
	return rc;
}

int unlink(const char *path)
{
	if (!real_unlink)
		resolve_all();
	int rc = real_unlink(path);
	int saved = errno;
	note_two('U', rc, AT_FDCWD, path, AT_FDCWD, NULL);
	errno = saved;
	return rc;
}

int unlinkat(int dirfd, const char *path, int flags)
{
	if (!real_unlinkat)
		resolve_all();
	int rc = real_unlinkat(dirfd, path, flags);
	int saved = errno;
	note_two('U', rc, dirfd, path, AT_FDCWD, NULL);
	errno = saved;
	return rc;
}

int rmdir(const char *path)
{
	if (!real_rmdir)
		resolve_all();
	int rc = real_rmdir(path);
	int saved = errno;
	note_two('K', rc, AT_FDCWD, path, AT_FDCWD, NULL);
	errno = saved;
	return rc;
}

/* ---- syncs ---------------------------------------------------------------------- */

int fsync(int fd)
{
	if (!real_fsync)
		resolve_all();
	return on_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
	if (!real_fdatasync)
		resolve_all();
	return on_sync(fd, real_fdatasync);
}

int sync_file_range(int fd, off_t off, off_t n, unsigned flags)
{
	if (!real_sync_file_range)
		resolve_all();
	int rc = real_sync_file_range(fd, off, n, flags);
	int saved = errno;
	NOTE(fd, "S - %d %lld+%lld (not durable in this model)", (int)getpid(), (long long)off, (long long)n);
	errno = saved;
	return rc;
}

void sync(void)
{
	if (!real_sync)
		resolve_all();
	if (active && !inside)
		record("Y - %d sync() (not durable in this model)", (int)getpid());
	real_sync();
}

int syncfs(int fd)
{
	if (!real_syncfs)
		resolve_all();
	if (active && !inside)
		record("Y - %d syncfs() (not durable in this model)", (int)getpid());
	return real_syncfs(fd);
}
