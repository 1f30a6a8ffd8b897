/* archive/worker_results: what every archiving run leaves for the admin to
 * read the next morning — MailStore's worker results.  Who ran what, when,
 * how it ended (succeeded, completedWithWarnings, completedWithErrors,
 * cancelled, failed) with the counts, and a report naming each item that
 * failed and why.  Ingest writes one when a run ends, at the moment it
 * writes the run's ArchiveRun audit entry, so every source (a command-line
 * import, TransferStores, the profiles to come) leaves one the same way.
 * Results older than the retention (settings key
 * worker_results_retention_days, default 90) go when a new one is written.
 * The table is made on first use, as the IMAP server's UID table is. */
#include "archive/internal.h"
#include "base/time_zone.h"

#include <string.h>

#define SCHEMA                                                                                                  \
	"CREATE TABLE IF NOT EXISTS worker_results(id INTEGER PRIMARY KEY AUTOINCREMENT,"                       \
	" profile_id INTEGER NOT NULL, profile_name TEXT NOT NULL, user_name TEXT NOT NULL,"                     \
	" start_ms INTEGER NOT NULL, complete_ms INTEGER NOT NULL, result TEXT NOT NULL,"                         \
	" archived INTEGER NOT NULL, already_archived INTEGER NOT NULL, skipped INTEGER NOT NULL,"                \
	" failed INTEGER NOT NULL, report TEXT NOT NULL);"                                                       \
	"CREATE INDEX IF NOT EXISTS worker_results_complete ON worker_results(complete_ms)"

/* Runs in progress: written when a run starts and deleted in the
 * transaction that writes its result, so a run whose process was killed
 * leaves its row — the next server start turns it into a failed result
 * (mv_worker_runs_settle).  Without it a killed run would leave no trace
 * for the admin reading results in the morning. */
#define RUNNING_SCHEMA                                                                                          \
	"CREATE TABLE IF NOT EXISTS worker_runs(id INTEGER PRIMARY KEY AUTOINCREMENT, profile_id INTEGER NOT NULL," \
	" profile_name TEXT NOT NULL, user_name TEXT NOT NULL, start_ms INTEGER NOT NULL, report TEXT NOT NULL)"

#define RETENTION_KEY "worker_results_retention_days"
#define RETENTION_DEFAULT_DAYS 90
#define MAX_RETENTION_DAYS 100000

static const char *const results[] = { "succeeded", "completedWithWarnings", "completedWithErrors", "cancelled",
	                               "failed", NULL };

static int ensure_table(mv_instance *inst, GError **error)
{
	return mv_sql_exec(mv_archive_db(inst), SCHEMA ";" RUNNING_SCHEMA, error);
}

static int64_t retention_days(mv_instance *inst)
{
	char *v = NULL;
	GError *err = NULL;
	int64_t days = RETENTION_DEFAULT_DAYS;
	if (mv_archive_setting_get(inst, RETENTION_KEY, &v, &err) == 0 && v && g_ascii_string_to_signed(
	            v, 10, 1, MAX_RETENTION_DAYS, &days, NULL) == FALSE)
		days = RETENTION_DEFAULT_DAYS;
	g_clear_error(&err);
	g_free(v);
	return days;
}

int64_t mv_worker_results_retention_days(mv_instance *inst)
{
	return retention_days(inst);
}

int mv_worker_results_set_retention_days(mv_instance *inst, int64_t days, GError **error)
{
	if (days < 1 || days > MAX_RETENTION_DAYS) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "days: %" G_GINT64_FORMAT " is not between 1 and %d", days,
		            MAX_RETENTION_DAYS);
		return -1;
	}
	char *v = g_strdup_printf("%" G_GINT64_FORMAT, days);
	int rc = mv_archive_setting_put(inst, RETENTION_KEY, v, error);
	g_free(v);
	return rc;
}

static int expire_old(mv_instance *inst, int64_t now_ms, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM worker_results WHERE complete_ms < ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms - retention_days(inst) * 86400 * 1000);
	return mv_sql_step_done(mv_archive_db(inst), st, "expire worker results", error);
}

/* Columns 1-4 of both tables: profile_id, profile_name, user_name, start_ms. */
static void bind_who_and_when(sqlite3_stmt *st, const mv_worker_result *r)
{
	sqlite3_bind_int64(st, 1, r->profile_id);
	sqlite3_bind_text(st, 2, r->profile_name ? r->profile_name : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->user ? r->user : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->start_ms);
}

static int insert_result(mv_instance *inst, const mv_worker_result *r, int64_t *id_r, GError **error)
{
	g_assert(g_strv_contains(results, r->result));
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT INTO worker_results(profile_id, profile_name, user_name, start_ms, complete_ms,"
	                   " result, archived, already_archived, skipped, failed, report)"
	                   " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, error) < 0)
		return -1;
	char *report = json_dumps(r->report ? r->report : json_object(), JSON_COMPACT);
	bind_who_and_when(st, r);
	sqlite3_bind_int64(st, 5, r->complete_ms);
	sqlite3_bind_text(st, 6, r->result, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)r->archived);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)r->already_archived);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)r->skipped);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)r->failed);
	sqlite3_bind_text(st, 11, report ? report : "{}", -1, SQLITE_TRANSIENT);
	free(report);
	if (mv_sql_step_done(db, st, "record the worker result", error) < 0)
		return -1;
	if (id_r)
		*id_r = sqlite3_last_insert_rowid(db);
	return 0;
}

typedef struct add_args {
	const mv_worker_result *r;
	int64_t *id_r;
} add_args;

static int delete_run(mv_instance *inst, int64_t marker, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM worker_runs WHERE id = ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, marker);
	return mv_sql_step_done(mv_archive_db(inst), st, "settle the run in progress", error);
}

static int add_txn(mv_instance *inst, void *opaque, GError **error)
{
	add_args *a = opaque;
	if (insert_result(inst, a->r, a->id_r, error) < 0)
		return -1;
	if (a->r->marker && delete_run(inst, a->r->marker, error) < 0)
		return -1;
	return expire_old(inst, a->r->complete_ms, error);
}

int mv_worker_result_add(mv_instance *inst, const mv_worker_result *r, int64_t *id_r, GError **error)
{
	add_args a = { .r = r, .id_r = id_r };
	if (ensure_table(inst, error) < 0)
		return -1;
	return mv_archive_in_transaction(inst, add_txn, &a, error);
}

int mv_worker_run_begin(mv_instance *inst, const mv_worker_result *r, int64_t *marker_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	*marker_r = 0;
	if (ensure_table(inst, error) < 0 ||
	    mv_sql_prepare(db, "INSERT INTO worker_runs(profile_id, profile_name, user_name, start_ms, report)"
	                   " VALUES(?, ?, ?, ?, ?)", &st, error) < 0)
		return -1;
	char *report = json_dumps(r->report ? r->report : json_object(), JSON_COMPACT);
	bind_who_and_when(st, r);
	sqlite3_bind_text(st, 5, report ? report : "{}", -1, SQLITE_TRANSIENT);
	free(report);
	if (mv_sql_step_done(db, st, "record the run in progress", error) < 0)
		return -1;
	*marker_r = sqlite3_last_insert_rowid(db);
	return 0;
}

/* One interrupted run's row as a failed result, and the row gone. */
static int settle_one(mv_instance *inst, sqlite3_stmt *row, int64_t now_ms, GError **error)
{
	json_t *report = json_loads((const char *)sqlite3_column_text(row, 5), 0, NULL);
	if (!json_is_object(report)) {
		json_decref(report);
		report = json_object();
	}
	json_object_set_new(report, "error", json_string("interrupted: the process running it stopped before the run "
	                                                  "ended (a crash, a kill or a power loss); what it had committed "
	                                                  "is archived, and the next run counts it as already archived"));
	mv_worker_result r = { .profile_id = sqlite3_column_int64(row, 1),
		               .profile_name = (const char *)sqlite3_column_text(row, 2),
		               .user = (const char *)sqlite3_column_text(row, 3), .start_ms = sqlite3_column_int64(row, 4),
		               .complete_ms = now_ms, .result = "failed", .report = report,
		               .marker = sqlite3_column_int64(row, 0) };
	add_args a = { .r = &r };
	int rc = add_txn(inst, &a, error);
	json_decref(report);
	return rc;
}

static int settle_txn(mv_instance *inst, void *opaque, GError **error)
{
	int *settled = opaque;
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "SELECT id, profile_id, profile_name, user_name, start_ms, report FROM worker_runs"
	                   " ORDER BY id LIMIT 1", &st, error) < 0)
		return -1;
	int rc = sqlite3_step(st);
	int out = 0;
	if (rc == SQLITE_ROW) {
		out = settle_one(inst, st, g_get_real_time() / 1000, error);
		if (out == 0)
			(*settled)++;
	} else if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "read the runs in progress");
		out = -1;
	}
	sqlite3_finalize(st);
	return out;
}

int mv_worker_runs_settle(mv_instance *inst, int *settled_r, GError **error)
{
	*settled_r = 0;
	if (ensure_table(inst, error) < 0)
		return -1;
	for (;;) {
		int before = *settled_r;
		if (mv_archive_in_transaction(inst, settle_txn, settled_r, error) < 0)
			return -1;
		if (*settled_r == before)
			return 0;
	}
}

static json_t *row_json(sqlite3_stmt *st, GTimeZone *tz)
{
	char *start = mv_time_format_local(sqlite3_column_int64(st, 4) / 1000, tz);
	char *complete = mv_time_format_local(sqlite3_column_int64(st, 5) / 1000, tz);
	int64_t profile = sqlite3_column_int64(st, 1);
	json_t *o = json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id",
	                      (json_int_t)sqlite3_column_int64(st, 0), "profileID",
	                      profile ? json_integer(profile) : json_null(), "profileName",
	                      (const char *)sqlite3_column_text(st, 2), "userName", (const char *)sqlite3_column_text(st, 3),
	                      "startTime", start, "completeTime", complete, "result",
	                      (const char *)sqlite3_column_text(st, 6), "archived", (json_int_t)sqlite3_column_int64(st, 7),
	                      "alreadyArchived", (json_int_t)sqlite3_column_int64(st, 8), "skipped",
	                      (json_int_t)sqlite3_column_int64(st, 9), "failed", (json_int_t)sqlite3_column_int64(st, 10));
	g_free(start);
	g_free(complete);
	return o;
}

#define RESULT_COLUMNS "id, profile_id, profile_name, user_name, start_ms, complete_ms, result, archived," \
                       " already_archived, skipped, failed, report"

json_t *mv_worker_results_list(mv_instance *inst, const mv_worker_results_filter *f, GTimeZone *tz, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (ensure_table(inst, error) < 0 ||
	    mv_sql_prepare(db, "SELECT " RESULT_COLUMNS " FROM worker_results WHERE start_ms >= ? AND start_ms < ?"
	                   " AND (? = 0 OR profile_id = ?) AND (? IS NULL OR user_name = ? COLLATE NOCASE)"
	                   " ORDER BY start_ms, id", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, f->from * 1000);
	sqlite3_bind_int64(st, 2, f->to * 1000);
	sqlite3_bind_int64(st, 3, f->profile_id);
	sqlite3_bind_int64(st, 4, f->profile_id);
	sqlite3_bind_text(st, 5, f->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, f->user, -1, SQLITE_STATIC);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, row_json(st, tz));
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "read worker results");
		json_decref(list);
		list = NULL;
	}
	sqlite3_finalize(st);
	return list;
}

json_t *mv_worker_result_report(mv_instance *inst, int64_t id, char **user_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	*user_r = NULL;
	if (ensure_table(inst, error) < 0 ||
	    mv_sql_prepare(db, "SELECT " RESULT_COLUMNS " FROM worker_results WHERE id = ?", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	json_t *out = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		GTimeZone *utc = g_time_zone_new_utc();
		out = row_json(st, utc);
		g_time_zone_unref(utc);
		json_t *report = json_loads((const char *)sqlite3_column_text(st, 11), 0, NULL);
		json_object_set_new(out, "report", report ? report : json_object());
		*user_r = g_strdup((const char *)sqlite3_column_text(st, 3));
	} else if (rc == SQLITE_DONE) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "worker result %lld does not exist", (long long)id);
	} else {
		mv_sql_set_error(error, db, "read the worker result");
	}
	sqlite3_finalize(st);
	return out;
}

/* A scheduled job's runs are worker results like any other run's (the
 * morning's reading has them all in one place); what marks one is the job
 * id in its report, which GetJobResults selects by. */
json_t *mv_job_results_list(mv_instance *inst, int64_t from, int64_t to, int64_t job_id, GTimeZone *tz, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (ensure_table(inst, error) < 0 ||
	    mv_sql_prepare(db, "SELECT " RESULT_COLUMNS " FROM worker_results WHERE start_ms >= ? AND start_ms < ?"
	                   " AND profile_id = 0 AND json_valid(report) AND json_extract(report, '$.jobId') IS NOT NULL"
	                   " AND (?3 = 0 OR json_extract(report, '$.jobId') = ?3) ORDER BY start_ms, id", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, from * 1000);
	sqlite3_bind_int64(st, 2, to * 1000);
	sqlite3_bind_int64(st, 3, job_id);
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = row_json(st, tz);
		json_t *report = json_loads((const char *)sqlite3_column_text(st, 11), 0, NULL);
		static const char *const fields[] = { "jobId", "jobName", "action", "statusText", "logOutput", NULL };
		for (const char *const *f = fields; *f; f++) {
			json_t *v = json_object_get(report, *f);
			json_object_set_new(o, *f, v ? json_incref(v) : json_null());
		}
		json_decref(report);
		json_array_append_new(list, o);
	}
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "read job results");
		json_decref(list);
		list = NULL;
	}
	sqlite3_finalize(st);
	return list;
}
