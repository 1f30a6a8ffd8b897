/* archive/lock: the running server's hold on a data directory.
 *
 * `mailvault serve` keeps an exclusive flock on <data>/server.lock for as
 * long as it runs, and writes into it who it is ("pid 123, https://..."),
 * so that a command run on the same directory can say which server to go
 * through instead (and `import` can go through it: mv_server_lock_holder).  Local commands that write take a shared flock on the
 * same file for their whole run: a server cannot start underneath them,
 * and they cannot start underneath a server.  Readers take no lock; the
 * stores' own locks keep concurrent reads safe.  The kernel drops a flock
 * when its process dies, so a crashed server never leaves the directory
 * held. */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <string.h>
#include <unistd.h>

#define HOLDER_TEXT_MAX 4096

static char *lock_path(const char *data_dir) { return g_build_filename(data_dir, "server.lock", NULL); }

static int open_lock_file(const char *path, GError **error)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		mv_set_errno_error(error, errno, "open", path);
	return fd;
}

/* What the holder wrote, or a generic description when it is unreadable. */
static char *holder_text(int fd)
{
	char buf[HOLDER_TEXT_MAX + 1];
	ssize_t n = pread(fd, buf, HOLDER_TEXT_MAX, 0);
	if (n <= 0)
		return g_strdup("a mailvault server");
	buf[n] = 0;
	char *text = g_utf8_make_valid(g_strchomp(buf), -1);
	return text;
}

/* Takes the flock without waiting: exclusive for the server, shared for a
 * local command.  A refusal names the holder (what it wrote into the file)
 * so that the user learns who has the directory and what to do instead;
 * fd is closed on any failure. */
static int lock_or_refuse(int fd, bool exclusive, const char *data_dir, const char *path, GError **error)
{
	if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK) {
		char *who = holder_text(fd);
		if (exclusive)
			g_set_error(error, MV_ERROR, MV_ERR_STATE,
			            "%s is in use (by %s, or by a command writing to it); one server per data directory",
			            data_dir, who);
		else
			g_set_error(error, MV_ERROR, MV_ERR_STATE,
			            "%s is held by a running server (%s): it refuses local changes; use "
			            "'mailvault cmd --server URL --user NAME ...' to go through the server",
			            data_dir, who);
		g_free(who);
	} else {
		mv_set_errno_error(error, errno, "lock", path);
	}
	close(fd);
	return -1;
}

int mv_server_lock_acquire(const char *data_dir, const char *description, int *fd_r, GError **error)
{
	char *path = lock_path(data_dir);
	int fd = open_lock_file(path, error), rc = -1;
	if (fd < 0)
		goto out;
	if (lock_or_refuse(fd, true, data_dir, path, error) < 0)
		goto out;
	if (ftruncate(fd, 0) < 0 || mv_pwrite_all(fd, description, strlen(description), 0, path, error) < 0) {
		if (error && !*error)
			mv_set_errno_error(error, errno, "truncate", path);
		close(fd);
		goto out;
	}
	*fd_r = fd;
	rc = 0;
out:
	g_free(path);
	return rc;
}

void mv_server_lock_release(int fd)
{
	if (fd < 0)
		return;
	/* Emptied so that a stale description never names a server gone. */
	if (ftruncate(fd, 0) < 0)
		mv_log_debug("server.lock: cannot empty it: %s", g_strerror(errno));
	close(fd);
}

void mv_server_lock_local_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

int mv_server_lock_local(const char *data_dir, int *fd_r, GError **error)
{
	char *path = lock_path(data_dir);
	int fd = -1, rc = -1;
	if (!g_file_test(data_dir, G_FILE_TEST_IS_DIR)) {
		*fd_r = -1; /* nothing to guard: the command itself reports the missing directory */
		rc = 0;
		goto out;
	}
	fd = open_lock_file(path, error);
	if (fd < 0)
		goto out;
	if (lock_or_refuse(fd, false, data_dir, path, error) < 0)
		goto out;
	*fd_r = fd;
	rc = 0;
out:
	g_free(path);
	return rc;
}

char *mv_server_lock_holder(const char *data_dir)
{
	char *path = lock_path(data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	g_free(path);
	if (fd < 0)
		return NULL;
	char buf[HOLDER_TEXT_MAX + 1];
	ssize_t n = pread(fd, buf, HOLDER_TEXT_MAX, 0);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	return g_utf8_make_valid(g_strchomp(buf), -1);
}
