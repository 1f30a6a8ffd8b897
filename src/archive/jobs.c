/* archive/jobs: the scheduled jobs' rows in master.sqlite.
 *
 * A job is an Administration API call in the management shell's syntax
 * (its action), the user whose privileges it runs with (its owner), and a
 * schedule kept as the arguments CreateJob or SetJobSchedule were given —
 * GetJobs shows them back as given, and jobs/schedule.c, which checks them
 * before they are saved, turns them into instants.  last_run is the instant
 * the scheduler last started the job: the next run is the schedule's first
 * due instant after it, so a server that was down runs a missed job once
 * at start-up, not once per missed slot.  AUTOINCREMENT: a worker result
 * naming a deleted job's id never names another job. */
#include "archive/internal.h"

#define JOB_COLUMNS "id, name, action, owner, time_zone_id, date, interval, time, day_of_week, day_of_month," \
                    " enabled, created_at, last_run"

void mv_job_free(mv_job *j)
{
	if (!j)
		return;
	g_free(j->name);
	g_free(j->action);
	g_free(j->owner);
	g_free(j->time_zone_id);
	g_free(j->date);
	g_free(j->time);
	g_free(j->day_of_week);
	g_free(j->day_of_month);
	g_free(j);
}

static mv_job *job_from_row(sqlite3_stmt *st)
{
	mv_job *j = g_new0(mv_job, 1);
	j->id = sqlite3_column_int64(st, 0);
	j->name = mv_sql_column_text(st, 1);
	j->action = mv_sql_column_text(st, 2);
	j->owner = mv_sql_column_text(st, 3);
	j->time_zone_id = mv_sql_column_text(st, 4);
	j->date = mv_sql_column_text(st, 5);
	j->has_interval = sqlite3_column_type(st, 6) != SQLITE_NULL;
	j->interval = sqlite3_column_int64(st, 6);
	j->time = mv_sql_column_text(st, 7);
	j->day_of_week = mv_sql_column_text(st, 8);
	j->day_of_month = mv_sql_column_text(st, 9);
	j->enabled = sqlite3_column_int(st, 10) != 0;
	j->created_at = sqlite3_column_int64(st, 11);
	j->last_run = sqlite3_column_int64(st, 12);
	return j;
}

static void bind_text_or_null(sqlite3_stmt *st, int col, const char *v)
{
	if (v)
		sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, col);
}

/* The schedule columns 1..6 of an INSERT or UPDATE, from j. */
static void bind_schedule(sqlite3_stmt *st, int first, const mv_job *j)
{
	bind_text_or_null(st, first, j->time_zone_id);
	bind_text_or_null(st, first + 1, j->date);
	if (j->has_interval)
		sqlite3_bind_int64(st, first + 2, j->interval);
	else
		sqlite3_bind_null(st, first + 2);
	bind_text_or_null(st, first + 3, j->time);
	bind_text_or_null(st, first + 4, j->day_of_week);
	bind_text_or_null(st, first + 5, j->day_of_month);
}

int mv_job_create(mv_instance *inst, const mv_job *j, int64_t *id_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT INTO jobs(name, action, owner, time_zone_id, date, interval, time, day_of_week,"
	                   " day_of_month, enabled, created_at, last_run) VALUES(?,?,?,?,?,?,?,?,?,?,?,0)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, j->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, j->action, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, j->owner, -1, SQLITE_TRANSIENT);
	bind_schedule(st, 4, j);
	sqlite3_bind_int(st, 10, j->enabled);
	sqlite3_bind_int64(st, 11, j->created_at);
	if (mv_sql_step_done(db, st, "save the job", error) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(db);
	return 0;
}

mv_job *mv_job_get(mv_instance *inst, int64_t id, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " JOB_COLUMNS " FROM jobs WHERE id=?", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	mv_job *j = rc == SQLITE_ROW ? job_from_row(st) : NULL;
	if (rc == SQLITE_DONE)
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "there is no job %" G_GINT64_FORMAT, id);
	else if (rc != SQLITE_ROW)
		mv_sql_set_error(error, mv_archive_db(inst), "read a job");
	sqlite3_finalize(st);
	return j;
}

GPtrArray *mv_jobs_list(mv_instance *inst, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " JOB_COLUMNS " FROM jobs ORDER BY id", &st, error) < 0)
		return NULL;
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_job_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(list, job_from_row(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "list the jobs");
		g_ptr_array_unref(list);
		return NULL;
	}
	return list;
}

/* One UPDATE of an existing job: MV_ERR_NOT_FOUND when no row changed. */
static int update_job(mv_instance *inst, sqlite3_stmt *st, int64_t id, const char *what, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	if (mv_sql_step_done(db, st, what, error) < 0)
		return -1;
	if (sqlite3_changes(db) == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "there is no job %" G_GINT64_FORMAT, id);
		return -1;
	}
	return 0;
}

int mv_job_delete(mv_instance *inst, int64_t id, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM jobs WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return update_job(inst, st, id, "delete the job", error);
}

int mv_job_rename(mv_instance *inst, int64_t id, const char *name, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE jobs SET name=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, id);
	return update_job(inst, st, id, "rename the job", error);
}

int mv_job_set_enabled(mv_instance *inst, int64_t id, bool enabled, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE jobs SET enabled=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int(st, 1, enabled);
	sqlite3_bind_int64(st, 2, id);
	return update_job(inst, st, id, "enable or disable the job", error);
}

/* A new schedule starts counting afresh from now: a slot of the old one
 * that passed is not a missed run of the new one. */
int mv_job_set_schedule(mv_instance *inst, const mv_job *j, int64_t now, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE jobs SET time_zone_id=?, date=?, interval=?, time=?,"
	                   " day_of_week=?, day_of_month=?, created_at=?, last_run=0 WHERE id=?", &st, error) < 0)
		return -1;
	bind_schedule(st, 1, j);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, j->id);
	return update_job(inst, st, j->id, "change the job's schedule", error);
}

int mv_job_set_last_run(mv_instance *inst, int64_t id, int64_t when, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE jobs SET last_run=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_int64(st, 2, id);
	return update_job(inst, st, id, "record the job's run", error);
}
