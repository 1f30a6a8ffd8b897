/* base: error domain, stderr logging, and file helpers.
 *
 * The file helpers exist so that no caller can forget a short write, an
 * EINTR or a failed fsync: each loops or fails with a GError that names the
 * path and the operation, and maps ENOSPC/EDQUOT to MV_ERR_NO_SPACE so that
 * a full disk is reported as such all the way up. */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

G_DEFINE_QUARK(mailvault-error-quark, mv_error)

static bool log_debug_on;
static bool log_quiet_on;

void mv_set_errno_error(GError **error, int errnum, const char *op, const char *path)
{
	int code = (errnum == ENOSPC || errnum == EDQUOT) ? MV_ERR_NO_SPACE : MV_ERR_IO;
	g_set_error(error, MV_ERROR, code, "%s %s: %s", op, path, g_strerror(errnum));
}

void mv_log_set_debug(bool on) { log_debug_on = on; }
void mv_log_set_quiet(bool on) { log_quiet_on = on; }

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char *msg = g_strdup_vprintf(fmt, ap);
	fprintf(stderr, "mailvault: %s%s\n", level, msg);
	g_free(msg);
}

void mv_log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}

void mv_log_info(const char *fmt, ...)
{
	if (log_quiet_on)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void mv_log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

void mv_log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("error: ", fmt, ap);
	va_end(ap);
}

int mv_pwrite_all(int fd, const void *buf, size_t len, off_t offset, const char *path, GError **error)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mv_set_errno_error(error, errno, "write", path);
			return -1;
		}
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int mv_pread_exact(int fd, void *buf, size_t len, off_t offset, const char *path, GError **error)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mv_set_errno_error(error, errno, "read", path);
			return -1;
		}
		if (n == 0) {
			g_set_error(error, MV_ERROR, MV_ERR_CORRUPT,
			            "read %s: unexpected end of file at offset %lld", path, (long long)offset);
			return -1;
		}
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int mv_fsync_fd(int fd, const char *path, GError **error)
{
	if (fsync(fd) == 0)
		return 0;
	mv_set_errno_error(error, errno, "fsync", path);
	return -1;
}

int mv_fsync_file(const char *path, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	int rc = mv_fsync_fd(fd, path, error);
	close(fd);
	return rc;
}

int mv_base64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int mv_fsync_dir(const char *dir, GError **error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", dir);
		return -1;
	}
	int rc = mv_fsync_fd(fd, dir, error);
	close(fd);
	return rc;
}

int mv_mkdir_p(const char *path, GError **error)
{
	if (g_mkdir_with_parents(path, 0700) == 0)
		return 0;
	mv_set_errno_error(error, errno, "mkdir", path);
	return -1;
}

int mv_read_file(const char *path, size_t max_len, GByteArray **data_r, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", path);
		close(fd);
		return -1;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max_len) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: %lld bytes is larger than the limit of %zu bytes",
		            path, (long long)st.st_size, max_len);
		close(fd);
		return -1;
	}
	GByteArray *data = g_byte_array_sized_new((guint)st.st_size + 1);
	g_byte_array_set_size(data, (guint)st.st_size);
	int rc = mv_pread_exact(fd, data->data, (size_t)st.st_size, 0, path, error);
	close(fd);
	if (rc < 0) {
		g_byte_array_unref(data);
		return -1;
	}
	*data_r = data;
	return 0;
}

int mv_write_file_atomic(const char *path, const void *data, size_t len, int mode, GError **error)
{
	char *tmp = g_strdup_printf("%s.tmp", path);
	char *dir = g_path_get_dirname(path);
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "create", tmp);
		goto out;
	}
	if (mv_pwrite_all(fd, data, len, 0, tmp, error) < 0 || mv_fsync_fd(fd, tmp, error) < 0) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		mv_set_errno_error(error, errno, "rename", tmp);
		unlink(tmp);
		goto out;
	}
	rc = mv_fsync_dir(dir, error);
out:
	g_free(tmp);
	g_free(dir);
	return rc;
}

#define COPY_CHUNK ((size_t)1 << 20)

int mv_copy_file(const char *src, const char *dst, int64_t len, int mode, unsigned flags, GError **error)
{
	int in = open(src, O_RDONLY | O_CLOEXEC | ((flags & MV_COPY_NOFOLLOW) ? O_NOFOLLOW : 0));
	if (in < 0) {
		mv_set_errno_error(error, errno, "open", src);
		return -1;
	}
	if (mode < 0) {
		struct stat st;
		if (fstat(in, &st) < 0) {
			mv_set_errno_error(error, errno, "stat", src);
			close(in);
			return -1;
		}
		mode = (int)(st.st_mode & 0777);
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | ((flags & MV_COPY_EXCL) ? O_EXCL : O_TRUNC), mode);
	if (out < 0) {
		mv_set_errno_error(error, errno, "create", dst);
		close(in);
		return -1;
	}
	uint8_t *buf = g_malloc(COPY_CHUNK);
	int rc = 0;
	for (int64_t at = 0; rc == 0 && (len < 0 || at < len);) {
		size_t n;
		if (len >= 0) {
			/* A prefix the caller knows to be there: a short file is damage. */
			n = (size_t)MIN((int64_t)COPY_CHUNK, len - at);
			rc = mv_pread_exact(in, buf, n, at, src, error);
		} else {
			ssize_t got = pread(in, buf, COPY_CHUNK, at);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				mv_set_errno_error(error, errno, "read", src);
				rc = -1;
			}
			if (got <= 0)
				break;
			n = (size_t)got;
		}
		if (rc == 0)
			rc = mv_pwrite_all(out, buf, n, at, dst, error);
		at += (int64_t)n;
	}
	if (rc == 0)
		rc = mv_fsync_fd(out, dst, error);
	g_free(buf);
	close(in);
	close(out);
	return rc;
}

static uint64_t usage_walk(const char *path, int depth)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	uint64_t total = (uint64_t)st.st_blocks * 512u;
	if (!S_ISDIR(st.st_mode) || depth > 32)
		return total;
	DIR *d = opendir(path);
	if (!d)
		return total;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *child = g_build_filename(path, e->d_name, NULL);
		total += usage_walk(child, depth + 1);
		g_free(child);
	}
	closedir(d);
	return total;
}

uint64_t mv_disk_usage(const char *path)
{
	return usage_walk(path, 0);
}

char *mv_hex(const uint8_t *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *out = g_malloc(len * 2 + 1);
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[len * 2] = '\0';
	return out;
}

bool mv_unhex(const char *hex, uint8_t *out, size_t out_len)
{
	if (!hex || strlen(hex) != out_len * 2)
		return false;
	for (size_t i = 0; i < out_len; i++) {
		int hi = g_ascii_xdigit_value(hex[2 * i]);
		int lo = g_ascii_xdigit_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int64_t mv_now(void)
{
	return (int64_t)time(NULL);
}

double mv_monotonic(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

/* GDateTime's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define FIRST_TIME INT64_C(-62135596800)
#define LAST_TIME INT64_C(253402300799)

/* gmtime_r instead of GDateTime: the same text and range at a fraction of
 * the cost (GetMessages formats two dates per message of a folder).  Years
 * before 1000 stay unpadded, as GDateTime wrote them and as search results
 * have always shown them. */
void mv_append_imap_date(GString *out, int64_t t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (!dt)
		dt = g_date_time_new_from_unix_utc(0);
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	g_string_append_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", g_date_time_get_day_of_month(dt),
	                       months[g_date_time_get_month(dt) - 1], g_date_time_get_year(dt), g_date_time_get_hour(dt),
	                       g_date_time_get_minute(dt), g_date_time_get_second(dt));
	g_date_time_unref(dt);
}

void mv_format_time_utc_into(int64_t t, char text[MV_TIME_TEXT_BYTES])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t < FIRST_TIME || t > LAST_TIME || !gmtime_r(&tt, &tm)) {
		g_strlcpy(text, "invalid-date", MV_TIME_TEXT_BYTES);
		return;
	}
	/* By hand, not snprintf: listings write two per row, and printf's
	 * machinery cost more than the rest of the row.  The year (1 to 9999
	 * within the bounds above) is unpadded, as "%d" wrote it. */
	char *p = text;
	int year = tm.tm_year + 1900;
	for (int div = 1000; div > 0; div /= 10)
		if (year >= div || div == 1)
			*p++ = (char)('0' + year / div % 10);
	const int parts[] = { tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec };
	const char before[] = "--T::";
	for (int i = 0; i < 5; i++) {
		*p++ = before[i];
		*p++ = (char)('0' + parts[i] / 10 % 10);
		*p++ = (char)('0' + parts[i] % 10);
	}
	*p++ = 'Z';
	*p = '\0';
}

char *mv_format_time_utc(int64_t t)
{
	char text[MV_TIME_TEXT_BYTES];
	mv_format_time_utc_into(t, text);
	return g_strdup(text);
}

char *mv_utf8_sanitize(const char *s, gssize len)
{
	if (!s)
		return g_strdup("");
	char *valid = g_utf8_make_valid(s, len);
	for (char *p = valid; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			*p = ' ';
	}
	return valid;
}

void mv_fault_point(const char *action, int step)
{
	const char *want = g_getenv("MAILVAULT_FAULT");
	if (!want)
		return;
	char here[64];
	g_snprintf(here, sizeof here, "%s:%d", action, step);
	if (strcmp(want, here) == 0)
		_exit(86);
}

bool mv_fault_fails(const char *action, int step)
{
	const char *want = g_getenv("MAILVAULT_FAULT");
	if (!want || strncmp(want, "fail:", 5) != 0)
		return false;
	char here[64];
	g_snprintf(here, sizeof here, "%s:%d", action, step);
	return strcmp(want + 5, here) == 0;
}
