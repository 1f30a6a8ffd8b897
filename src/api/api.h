/* api: the Administration API over HTTPS — design.md §9, wire-compatible
 * with MailStore's: POST /api/invoke/<Function>, /api/get-status,
 * /api/cancel-async, /api/get-metadata; form-encoded arguments, HTTP Basic
 * authentication on every request, the JSON envelope of the command
 * registry.  Every function is reached through the registry (commands/),
 * the one path for all callers. */
#ifndef MV_API_H
#define MV_API_H

#include "commands/commands.h"
#include "net/https.h"

/* ---- jobs.c: long-running functions in the background ---------------------- */

typedef struct mv_jobs mv_jobs;

mv_jobs *mv_jobs_new(int64_t retention_seconds);
/* Cancels what still runs, waits for it to stop at a safe point, frees. */
void mv_jobs_free(mv_jobs **jobs);
void mv_jobs_set_retention(mv_jobs *jobs, int64_t retention_seconds);
/* Starts cmd on its own thread with its own instance of data_dir, or
 * queues it (FIFO) while max_running_jobs of the running configuration
 * (service->running) run, and returns the first "running" envelope with
 * the token (statusText "queued: N ahead" while it waits).  Takes args and
 * access.  A "failed" envelope, nothing started: after mv_jobs_wake_all,
 * or when max_queued_jobs already wait (the server is busy). */
json_t *mv_jobs_start(mv_jobs *jobs, const mv_command *cmd, json_t *args, const char *data_dir, const char *user,
                      const char *remote, mv_access *access, const mv_service_hooks *service);
/* The job's envelope once its statusVersion exceeds last_known, it
 * finished, timeout_ms passed or the server stops (whichever first); NULL
 * when the token is unknown, expired or belongs to another user. */
json_t *mv_jobs_status(mv_jobs *jobs, const char *token, int64_t last_known, int64_t timeout_ms, const char *user);
/* Asks the job to stop at its next safe point, or ends a queued one at
 * once as "cancelled" (it never starts); false when unknown. */
bool mv_jobs_cancel(mv_jobs *jobs, const char *token, const char *user);
/* Shutdown: queued jobs end as "cancelled" without starting, every waiting
 * get-status returns the job's current status at once, later ones do not
 * wait, and mv_jobs_start starts nothing more. */
void mv_jobs_wake_all(mv_jobs *jobs);
/* Number of jobs still running (queued ones not counted). */
unsigned mv_jobs_running(mv_jobs *jobs);

/* ---- answer.c: a function's envelope, sent as it is written ---------------- */

/* Runs cmd for the caller `who` (inst, user, remote, service; copied) and
 * queues its envelope as a 200 response whose body is written as the
 * client reads it (commands/stream.c): a listing's rows go out as they are
 * read.  Takes args and access. */
enum MHD_Result mv_api_send_answer(struct MHD_Connection *conn, const mv_command *cmd, const mv_command_ctx *who,
                                   json_t *args, mv_access *access);

/* ---- server.c: the HTTPS listeners ---------------------------------------- */

typedef struct mv_api_server mv_api_server;

/* Starts listening on every address of cfg with its certificate; logons go
 * through the process's guard (borrowed: it outlives the server). */
mv_api_server *mv_api_server_start(const mv_service_config *cfg, mv_logon *logon, GError **error);
/* Applies a re-read configuration: log level, safe mode, retention at
 * once; a new certificate or new listen addresses by starting new
 * listeners (on the same sockets when the addresses did not change) while
 * the old ones finish what they serve. */
int mv_api_server_reload(mv_api_server *srv, const mv_service_config *cfg, GError **error);
/* The first step of stopping, at once on SIGTERM: no new connections, and
 * every waiting get-status is answered with its job's current status.
 * NULL is fine. */
void mv_api_server_quiesce(mv_api_server *srv);
/* What the server lends the functions it runs (the configuration in use,
 * reload, sessions), for others that run functions in the same process:
 * the scheduler.  Valid until mv_api_server_stop. */
const mv_service_hooks *mv_api_server_hooks(mv_api_server *srv);
/* Quiesces, waits for the requests in flight (up to 60 s), stops the
 * listeners, cancels running jobs and waits for them, frees. */
void mv_api_server_stop(mv_api_server **srv);

#endif
