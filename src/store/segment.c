/* store/segment: the files of content/ as the writer sees them — the
 * header a new segment starts with, one open descriptor per segment kept
 * on the handle, the choice of the segment a batch appends to, and the
 * append itself, fsynced and cut back on failure so that no reader meets
 * half a record.  The committed length in the db stays the truth; these
 * helpers never move it. */
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int mv_store_segment_write_header(int fd, const char *path, GError **error)
{
	uint8_t hdr[SEGMENT_HEADER_BYTES] = { 0 };
	memcpy(hdr, SEGMENT_MAGIC, 8);
	hdr[8] = 1; /* segment layout version, unchanged since format 1 */
	return mv_pwrite_all(fd, hdr, sizeof hdr, 0, path, error);
}

int mv_store_segment_fd(mv_store *s, int64_t seg, bool create, GError **error)
{
	gpointer v = g_hash_table_lookup(s->segment_fds, &seg);
	if (v)
		return GPOINTER_TO_INT(v) - 1;
	char *path = mv_store_segment_file(s, seg);
	int flags = (s->mode == MV_STORE_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	int fd = open(path, flags | (create ? O_CREAT | O_EXCL : 0), 0600);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open segment", path);
		g_free(path);
		return -1;
	}
	if (create) {
		if (mv_store_segment_write_header(fd, path, error) < 0 ||
		    mv_fsync_fd(fd, path, error) < 0 || mv_fsync_dir(s->paths.content_dir, error) < 0) {
			close(fd);
			unlink(path);
			g_free(path);
			return -1;
		}
	}
	g_free(path);
	int64_t *k = g_new(int64_t, 1);
	*k = seg;
	g_hash_table_insert(s->segment_fds, k, GINT_TO_POINTER(fd + 1));
	return fd;
}

/* Picks the segment to append `need` bytes to, creating one when the current
 * is full or none exists; returns its id and committed length. */
int mv_store_segment_for_append(mv_store *s, size_t need, int64_t *seg_r, int64_t *len_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT id, committed_len FROM segments ORDER BY id DESC LIMIT 1", &st, error) < 0)
		return -1;
	int64_t seg = 0, len = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		seg = sqlite3_column_int64(st, 0);
		len = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	bool fresh = seg == 0 || (len > SEGMENT_HEADER_BYTES && (uint64_t)len + need > MV_SEGMENT_MAX_BYTES);
	if (fresh) {
		seg++;
		char *path = mv_store_segment_file(s, seg);
		/* A file without a segments row is debris from a crash between its
		 * creation and the commit that would have recorded it. */
		if (g_file_test(path, G_FILE_TEST_EXISTS))
			unlink(path);
		g_free(path);
		if (mv_store_segment_fd(s, seg, true, error) < 0)
			return -1;
		len = SEGMENT_HEADER_BYTES;
	}
	*seg_r = seg;
	*len_r = len;
	return 0;
}

int mv_store_segment_append(mv_store *s, int64_t seg, int64_t at, const GByteArray *bytes, GError **error)
{
	int fd = mv_store_segment_fd(s, seg, false, error);
	if (fd < 0)
		return -1;
	char *path = mv_store_segment_file(s, seg);
	int rc = -1;
	if (ftruncate(fd, at) < 0) {
		mv_set_errno_error(error, errno, "truncate", path);
		goto out;
	}
	if (mv_pwrite_all(fd, bytes->data, bytes->len, at, path, error) < 0 ||
	    mv_fsync_fd(fd, path, error) < 0) {
		/* Leave nothing half-written for readers to trip on. */
		if (ftruncate(fd, at) < 0)
			mv_log_warn("could not cut %s back after a failed write", path);
		goto out;
	}
	rc = 0;
out:
	g_free(path);
	return rc;
}
