/* store/maint: RepairStoreDatabase and MaintainFileSystemDatabases, the
 * index generation and rebuild, and the small helpers the maintenance
 * operations of store/ share (declared in internal.h).
 *
 * All of maintenance rests on one idea: content/ is the journal of the store
 * (see journal.c, which walks it).  verify.c compares the journal with the
 * db, recover.c replays it into a new db, changes.c appends to it
 * (tombstones, folder-move records) before the db change commits, so that a
 * replay gives the same store, and compact.c rewrites it. */
#include "store/journal.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------ */

char *mv_store_new_generation(void)
{
	uint8_t b[16];
	randombytes_buf(b, sizeof b);
	return mv_hex(b, sizeof b);
}

int mv_st_require_writer(mv_store *s, GError **error)
{
	if (s->mode == MV_STORE_WRITE)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d is open read-only", s->id);
	return -1;
}

int mv_st_finish_locked(mv_store *s, int rc, GError **error)
{
	GError *err = NULL;
	if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
		rc = -1;
	g_clear_error(&err);
	return rc;
}

int mv_st_cancelled_error(GError **error, const char *what)
{
	g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "%s cancelled; nothing was left half-done", what);
	return -1;
}

char *text_query(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	char *v = NULL;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

int64_t mv_st_int_query(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return v;
}

/* ---- index generation ------------------------------------------------------------------ */

int mv_st_index_generation_check(mv_store *s, bool *stale_r, GError **error)
{
	char *db_gen = text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", NULL);
	char *ix_gen = text_query(s->index_db, "SELECT value FROM index_state WHERE key='generation'", NULL);
	*stale_r = g_strcmp0(db_gen, ix_gen) != 0;
	g_free(db_gen);
	g_free(ix_gen);
	return 0;
}

int mv_st_index_reset(mv_store *s, GError **error)
{
	char *gen = text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", NULL);
	if (!gen) {
		gen = mv_store_new_generation();
		char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('index_generation', %Q)", gen);
		int rc = mv_sql_exec(s->db, sql, error);
		sqlite3_free(sql);
		if (rc < 0) {
			g_free(gen);
			return -1;
		}
	}
	g_ptr_array_set_size(s->index_queue, 0);
	char *sql = sqlite3_mprintf("BEGIN; INSERT INTO fts(fts) VALUES('delete-all');"
	                            " DELETE FROM index_state WHERE key='indexed_upto';"
	                            " INSERT OR REPLACE INTO index_state VALUES('generation', %Q); COMMIT;", gen);
	int rc = mv_sql_exec(s->index_db, sql, error);
	sqlite3_free(sql);
	g_free(gen);
	if (rc < 0)
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mv_store_refresh_index(mv_store *s, GError **error)
{
	if (mv_st_write_lock(s, error) < 0)
		return -1;
	return mv_store_sync(s, error);
}

int mv_store_rebuild_index(mv_store *s, const mv_store_task *task, GError **error)
{
	if (s->mode != MV_STORE_WRITE) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d is open read-only", s->id);
		return -1;
	}
	if (mv_st_flock(s, error) < 0)
		return -1;
	if (mv_st_task_cancelled(task))
		return mv_st_cancelled_error(error, "RebuildStoreIndex");
	mv_st_task_progress(task, 0, "store %d: emptying the index", s->id);
	int rc = mv_st_index_reset(s, error);
	if (rc == 0) {
		mv_st_task_progress(task, -1, "store %d: indexing every message from content", s->id);
		rc = mv_st_index_catch_up_task(s, task, error);
	}
	GError *err = NULL;
	if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
		rc = -1;
	g_clear_error(&err);
	if (rc == 0)
		mv_st_task_progress(task, 100, "store %d: index rebuilt", s->id);
	return rc;
}

/* ---- RepairStoreDatabase, MaintainFileSystemDatabases ---------------------------------------------- */

int mv_store_repair_db(mv_store *s, json_t **report_r, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_flock(s, error) < 0)
		return -1;
	json_t *findings = json_array();
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(s->db, "PRAGMA integrity_check", &st, error);
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (strcmp(line, "ok") != 0)
			json_array_append_new(findings, json_string(line));
	}
	if (rc == 0)
		sqlite3_finalize(st);
	/* What RepairStoreDatabase is for: missing or broken db indexes. */
	if (rc == 0)
		rc = mv_sql_exec(s->db, mv_st_schema(), error);
	if (rc == 0)
		rc = mv_sql_exec(s->db, "REINDEX", error);
	int64_t orphans = rc == 0 ? mv_st_int_query(s->db, "SELECT count(*) FROM messages m WHERE m.deleted = 0 AND NOT EXISTS"
	                                      " (SELECT 1 FROM contents c WHERE c.id = m.content_id)") : 0;
	if (rc == 0)
		*report_r = json_pack("{s:i, s:o, s:b, s:I}", "storeId", s->id, "integrityFindings", findings,
		                      "indexesRebuilt", true, "rowsWithoutContent", (json_int_t)orphans);
	else
		json_decref(findings);
	return mv_st_finish_locked(s, rc, error);
}

int mv_store_maintain_db(mv_store *s, GError **error)
{
	if (mv_st_require_writer(s, error) < 0 || mv_st_write_lock(s, error) < 0)
		return -1;
	int rc = mv_sql_exec(s->db, "ANALYZE; PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);", error);
	if (rc == 0)
		rc = mv_sql_exec(s->index_db, "INSERT INTO fts(fts) VALUES('optimize'); PRAGMA wal_checkpoint(TRUNCATE);", error);
	return mv_st_finish_locked(s, rc, error);
}
