/* jobs/scheduler: what runs by itself inside `mailvault serve` — the
 * scheduled jobs (archive/jobs.c, their times from jobs/schedule.c) and the
 * archiving profiles set to run automatically.  Every run goes through the
 * one command registry with its owner's privileges, exactly as the same
 * line typed into the management shell by that user would, and leaves a
 * worker result.
 *
 * One scheduler per server process, started after the Administration API
 * and stopped before it; RunJobAsync and CancelJobAsync reach it through
 * the process-wide functions below, and fail saying a server is needed
 * when called on a data directory with none running. */
#ifndef MV_JOBS_SCHEDULER_H
#define MV_JOBS_SCHEDULER_H

#include "commands/commands.h"
#include "jobs/schedule.h"

typedef struct mv_scheduler mv_scheduler;

typedef struct mv_scheduler_options {
	const char *data_dir;
	/* Safe mode: no job and no automatic profile starts by itself;
	 * RunJobAsync still runs one on an administrator's word. */
	bool safe_mode;
	const mv_service_hooks *service;   /* lent to the functions jobs run */
} mv_scheduler_options;

/* Starts the scheduler's thread.  Jobs a stopped server missed run once,
 * at its first look. */
mv_scheduler *mv_scheduler_start(const mv_scheduler_options *opts, GError **error);
/* Asks every run to stop (as CancelJobAsync does), waits for them and for
 * the scheduler's thread, and frees it.  NULL is fine. */
void mv_scheduler_stop(mv_scheduler **s);

/* Safe mode on or off from the next look on (SIGHUP's reload). */
void mv_scheduler_set_safe_mode(mv_scheduler *s, bool safe_mode);

/* For the registry functions: the running server's scheduler.
 * Runs job id now, unless it is running (MV_ERR_STATE); MV_ERR_NOT_FOUND
 * for no such job; MV_ERR_STATE when no server runs in this process. */
int mv_scheduler_run_job(int64_t id, GError **error);
/* Asks job id's run to stop; MV_ERR_STATE when it is not running. */
int mv_scheduler_cancel_job(int64_t id, GError **error);
/* Whether job id runs now (false without a scheduler). */
bool mv_scheduler_job_running(int64_t id);

/* A saved job's schedule, checked again from its stored arguments. */
mv_schedule *mv_scheduler_job_schedule(const mv_job *j, GError **error);

/* The length of a "minute" of an interval job's schedule: 60 seconds, or
 * the test-only MAILVAULT_TEST_MINUTE_SECONDS, with which an interval job
 * runs every interval × that many seconds after its last run instead of
 * on the clock's slots (system tests cannot wait five minutes). */
int64_t mv_scheduler_minute_seconds(void);

#endif
