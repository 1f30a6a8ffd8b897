/* store/backup: a consistent copy of a running store — the index first,
 * then the db by SQLite's online backup, then each segment up to the
 * committed length the copied db records, so the copy never names bytes
 * it lacks and its index is never ahead of its db. */
#include "store/journal.h"

/* ---- backup --------------------------------------------------------------------------------------- */

/* SQLite's online backup of src's schema into dst, waiting out a busy source. */
static int online_backup(sqlite3 *dst, sqlite3 *src, const char *schema, GError **error)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, schema);
	if (b) {
		int step;
		while ((step = sqlite3_backup_step(b, 4096)) == SQLITE_OK || step == SQLITE_BUSY || step == SQLITE_LOCKED)
			if (step != SQLITE_OK)
				g_usleep(10000);
		if (sqlite3_backup_finish(b) == SQLITE_OK && step == SQLITE_DONE)
			return 0;
	}
	mv_sql_set_error(error, dst, "online backup");
	return -1;
}

/* The copy is made durable before it counts: journal mode back to DELETE
 * so it stands alone, then an fsync of the file itself. */
static int sqlite_copy(mv_store *s, sqlite3 *src, const char *schema, mv_store_sql_file which, bool encrypted,
                       const char *dest_file, GError **error)
{
	sqlite3 *dst = NULL;
	mv_store_remove_db_files(dest_file);
	/* Page by page: SQLite's backup copies encrypted pages only into a
	 * file under the same key, so the copy is encrypted as its source is. */
	if (mv_store_sql_open(dest_file, s->key, which, encrypted, true, false, &dst, error) < 0)
		return -1;
	int rc = -1;
	if (online_backup(dst, src, schema, error) < 0 || mv_sql_exec(dst, "PRAGMA journal_mode=DELETE", error) < 0)
		goto out;
	sqlite3_close(dst);
	dst = NULL;
	rc = mv_fsync_file(dest_file, error);
out:
	sqlite3_close(dst);
	return rc;
}

/* The keys file travels with the copy, which then opens, is attached
 * or is recovered elsewhere as its store would be.  A store from before
 * format 3 may have none: its values are in the db the copy holds. */
static int copy_keys_file(const mv_store_paths *src, const mv_store_paths *dest, GError **error)
{
	char *from = mv_store_keys_file(src), *to = mv_store_keys_file(dest);
	sqlite3 *db = NULL, *dst = NULL;
	int rc = 0;
	mv_store_remove_db_files(to);
	if (!g_file_test(from, G_FILE_TEST_EXISTS))
		goto out;
	rc = -1;
	if (mv_sql_open(from, false, true, &db, error) < 0 || mv_sql_open(to, true, false, &dst, error) < 0)
		goto out;
	rc = online_backup(dst, db, "main", error);
	if (rc == 0)
		rc = mv_sql_exec(dst, "PRAGMA journal_mode=DELETE", error);
	sqlite3_close(dst);
	dst = NULL;
	if (rc == 0)
		rc = mv_fsync_file(to, error);
out:
	sqlite3_close(dst);
	sqlite3_close(db);
	g_free(from);
	g_free(to);
	return rc;
}

/* A fresh empty index, for a copy made without one. */
static int empty_index(mv_store *s, const char *ixp, GError **error)
{
	sqlite3 *empty = NULL;
	int rc = -1;
	if (mv_store_sql_open(ixp, s->key, MV_STORE_SQL_INDEX, s->encrypted, true, false, &empty, error) < 0 || mv_index_init_schema(empty, "main", error) < 0)
		goto out;
	rc = 0;
out:
	sqlite3_close(empty);
	return rc;
}

/* The segment list as the copied db records it, with each committed length. */
static GArray *copied_segments(mv_store *s, const char *dbp, GError **error)
{
	sqlite3 *copy = NULL;
	GArray *segs = NULL;
	if (mv_store_sql_open(dbp, s->key, MV_STORE_SQL_DB, s->encrypted, false, true, &copy, error) < 0)
		goto out;
	segs = mv_journal_segments_from_db(copy, error);
out:
	sqlite3_close(copy);
	return segs;
}

static int copy_segment(mv_store *s, const mv_journal_segment *sg, const char *content_dir, GError **error)
{
	char *src = mv_store_segment_file(s, sg->id);
	char *name = g_path_get_basename(src);
	char *dst = g_build_filename(content_dir, name, NULL);
	/* Only the committed length the copied db records: bytes past it
	 * belong to a batch the copy does not know. */
	int rc = mv_copy_file(src, dst, sg->end, 0600, 0, error);
	g_free(src);
	g_free(name);
	g_free(dst);
	return rc;
}

static int fsync_dirs(const mv_store_paths *dest, GError **error)
{
	if (mv_fsync_dir(dest->db_dir, error) < 0 || mv_fsync_dir(dest->content_dir, error) < 0 ||
	    mv_fsync_dir(dest->index_dir, error) < 0)
		return -1;
	return 0;
}

int mv_store_backup(mv_store *s, const mv_store_paths *dest, bool with_index, GError **error)
{
	if (mv_mkdir_p(dest->db_dir, error) < 0 || mv_mkdir_p(dest->content_dir, error) < 0 ||
	    mv_mkdir_p(dest->index_dir, error) < 0)
		return -1;
	char *dbp = mv_store_db_file(dest), *ixp = mv_store_index_file(dest);
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	GArray *segs = NULL;
	int rc = -1;
	/* Index before db: the copy's index may lack the newest messages (the
	 * first writer indexes them) but never names one its db lacks. */
	int index_rc = with_index ? sqlite_copy(s, ix, *prefix ? "ix" : "main", MV_STORE_SQL_INDEX, s->index_encrypted, ixp, error) :
	                            empty_index(s, ixp, error);
	if (index_rc < 0 || copy_keys_file(&s->paths, dest, error) < 0 ||
	    sqlite_copy(s, s->db, "main", MV_STORE_SQL_DB, s->encrypted, dbp, error) < 0)
		goto out;
	segs = copied_segments(s, dbp, error);
	if (!segs)
		goto out;
	for (guint i = 0; i < segs->len; i++)
		if (copy_segment(s, &g_array_index(segs, mv_journal_segment, i), dest->content_dir, error) < 0)
			goto out;
	rc = fsync_dirs(dest, error);
out:
	if (segs)
		g_array_free(segs, TRUE);
	g_free(dbp);
	g_free(ixp);
	return rc;
}
