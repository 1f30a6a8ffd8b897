/* store/backup: a consistent copy of a running store — the index first,
 * then the db by SQLite's online backup, then each segment up to the
 * committed length the copied db records, so the copy never names bytes
 * it lacks and its index is never ahead of its db. */
#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- backup --------------------------------------------------------------------------------------- */

static int sqlite_copy(sqlite3 *src, const char *schema, const char *dest_file, GError **error)
{
	sqlite3 *dst = NULL;
	mv_store_remove_db_files(dest_file);
	if (mv_sql_open(dest_file, true, false, &dst, error) < 0)
		return -1;
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, schema);
	int rc = -1;
	if (b) {
		int step;
		while ((step = sqlite3_backup_step(b, 4096)) == SQLITE_OK || step == SQLITE_BUSY || step == SQLITE_LOCKED)
			if (step != SQLITE_OK)
				g_usleep(10000);
		rc = sqlite3_backup_finish(b) == SQLITE_OK && step == SQLITE_DONE ? 0 : -1;
	}
	if (rc < 0)
		mv_sql_set_error(error, dst, "online backup");
	if (rc == 0)
		rc = mv_sql_exec(dst, "PRAGMA journal_mode=DELETE", error);
	sqlite3_close(dst);
	if (rc == 0) {
		int fd = open(dest_file, O_RDONLY | O_CLOEXEC);
		rc = fd >= 0 && mv_fsync_fd(fd, dest_file, error) == 0 ? 0 : -1;
		if (fd < 0)
			mv_set_errno_error(error, errno, "open", dest_file);
		else
			close(fd);
	}
	return rc;
}

int mv_store_backup(mv_store *s, const mv_store_paths *dest, bool with_index, GError **error)
{
	if (mv_mkdir_p(dest->db_dir, error) < 0 || mv_mkdir_p(dest->content_dir, error) < 0 ||
	    mv_mkdir_p(dest->index_dir, error) < 0)
		return -1;
	char *dbp = mv_store_db_file(dest), *ixp = mv_store_index_file(dest);
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	int rc = 0;
	/* Index before db: the copy's index may lack the newest messages (the
	 * first writer indexes them) but never names one its db lacks. */
	if (with_index) {
		rc = sqlite_copy(ix, *prefix ? "ix" : "main", ixp, error);
	} else {
		sqlite3 *empty = NULL;
		rc = mv_sql_open(ixp, true, false, &empty, error) == 0 && mv_index_init_schema(empty, "main", error) == 0 ? 0 : -1;
		sqlite3_close(empty);
	}
	if (rc == 0)
		rc = sqlite_copy(s->db, "main", dbp, error);
	sqlite3 *copy = NULL;
	GArray *segs = NULL;
	if (rc == 0 && (rc = mv_sql_open(dbp, false, true, &copy, error)) == 0 &&
	    !(segs = mv_journal_segments_from_db(copy, error)))
		rc = -1;
	sqlite3_close(copy);
	for (guint i = 0; rc == 0 && i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		char *src = mv_store_segment_file(s, sg->id);
		char *name = g_path_get_basename(src);
		char *dst = g_build_filename(dest->content_dir, name, NULL);
		/* Only the committed length the copied db records: bytes past it
		 * belong to a batch the copy does not know. */
		rc = mv_copy_file(src, dst, sg->end, 0600, 0, error);
		g_free(src);
		g_free(name);
		g_free(dst);
	}
	if (rc == 0)
		rc = mv_fsync_dir(dest->db_dir, error) == 0 && mv_fsync_dir(dest->content_dir, error) == 0 &&
		     mv_fsync_dir(dest->index_dir, error) == 0 ? 0 : -1;
	if (segs)
		g_array_free(segs, TRUE);
	g_free(dbp);
	g_free(ixp);
	return rc;
}
