/* store/maint: RepairStoreDatabase and MaintainFileSystemDatabases, and the
 * small helpers the maintenance operations of store/ share (progress and
 * cancellation, the writer and lock checks; declared in internal.h).
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

bool mv_store_task_cancelled(const mv_task *t)
{
	return t && t->cancel && g_atomic_int_get(t->cancel) != 0;
}

void mv_store_task_progress(const mv_task *t, int percent, const char *fmt, ...)
{
	if (!t || !t->progress)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	t->progress(t->opaque, percent, text);
	g_free(text);
}

int mv_store_finish_locked(mv_store *s, int rc, GError **error)
{
	GError *err = NULL;
	if (mv_store_sync(s, rc == 0 ? error : &err) < 0)
		rc = -1;
	g_clear_error(&err);
	return rc;
}

int mv_store_cancelled_error(GError **error, const char *what)
{
	g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "%s cancelled; nothing was left half-done", what);
	return -1;
}

/* Steps st for its first row's first column; SQLITE_ROW, SQLITE_DONE (no
 * row) or an error code, whose message is set as `what` failing. */
static int first_row(sqlite3 *db, const char *sql, const char *what, sqlite3_stmt **st_r, GError **error)
{
	if (sqlite3_prepare_v2(db, sql, -1, st_r, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, what);
		return SQLITE_ERROR;
	}
	int step = sqlite3_step(*st_r);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		mv_sql_set_error(error, db, what);
	return step;
}

int mv_store_text_query(sqlite3 *db, const char *sql, const char *what, char **value_r, GError **error)
{
	sqlite3_stmt *st = NULL;
	*value_r = NULL;
	int step = first_row(db, sql, what, &st, error);
	if (step == SQLITE_ROW)
		*value_r = mv_sql_column_text(st, 0);
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
}

int mv_store_int_query(sqlite3 *db, const char *sql, const char *what, int64_t *value_r, GError **error)
{
	sqlite3_stmt *st = NULL;
	*value_r = 0;
	int step = first_row(db, sql, what, &st, error);
	if (step == SQLITE_ROW)
		*value_r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
}

/* ---- RepairStoreDatabase, MaintainFileSystemDatabases ---------------------------------------------- */

/* PRAGMA integrity_check's lines other than "ok", appended to findings. */
static int integrity_findings(sqlite3 *db, json_t *findings, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "PRAGMA integrity_check", &st, error) < 0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (strcmp(line, "ok") != 0)
			json_array_append_new(findings, json_string(line));
	}
	sqlite3_finalize(st);
	return 0;
}

int mv_store_repair_db(mv_store *s, json_t **report_r, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_flock(s, error) < 0)
		return -1;
	json_t *findings = json_array();
	int64_t orphans = 0;
	int rc = -1;
	if (integrity_findings(s->db, findings, error) < 0)
		goto out;
	/* What RepairStoreDatabase is for: missing or broken db indexes. */
	if (mv_sql_exec(s->db, mv_store_schema(), error) < 0 || mv_sql_exec(s->db, "REINDEX", error) < 0)
		goto out;
	if (mv_store_int_query(s->db, "SELECT count(*) FROM messages m WHERE m.deleted = 0 AND NOT EXISTS"
	                       " (SELECT 1 FROM contents c WHERE c.id = m.content_id)", "count rows without content",
	                       &orphans, error) < 0)
		goto out;
	*report_r = json_pack("{s:i, s:o, s:b, s:I}", "storeId", s->id, "integrityFindings", findings,
	                      "indexesRebuilt", true, "rowsWithoutContent", (json_int_t)orphans);
	findings = NULL;   /* the report owns it ("o") */
	rc = 0;
out:
	json_decref(findings);
	return mv_store_finish_locked(s, rc, error);
}

int mv_store_maintain_db(mv_store *s, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	int rc = -1;
	if (mv_sql_exec(s->db, "ANALYZE; PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);", error) < 0 ||
	    mv_sql_exec(s->index_db, "INSERT INTO fts(fts) VALUES('optimize'); PRAGMA wal_checkpoint(TRUNCATE);", error) < 0)
		goto out;
	rc = 0;
out:
	return mv_store_finish_locked(s, rc, error);
}
