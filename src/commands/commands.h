/* commands: the one registry of administrative actions — the Administration
 * API functions of ../shared/reference/administration-api-function-reference.md,
 * with their exact names and arguments.  The management shell (`mailvault
 * cmd`, `mailvault shell`), the HTTP API and the job scheduler all reach an
 * action only through this table; there is no second path.
 *
 * A call goes: text arguments (form fields or --name=value) ->
 * mv_command_parse_args (types, nullability, allowed values; errors name the
 * function, the argument and what was expected) -> the handler with a typed
 * JSON object -> the JSON envelope of design.md §9. */
#ifndef MV_COMMANDS_H
#define MV_COMMANDS_H

#include "archive/archive.h"

#include <jansson.h>

typedef enum {
	MV_ARG_STRING,
	MV_ARG_NUMBER,   /* an integer (int64) */
	MV_ARG_BOOL,     /* "true" / "false" */
	MV_ARG_JSON,     /* a JSON text in the field */
	MV_ARG_SECRET,   /* a string never written anywhere: audit log, history,
	                  * refusal reasons.  A type, not a list of names, so that
	                  * a new function declares it where it declares the argument. */
} mv_arg_type;

typedef struct mv_command_arg {
	const char *name;
	mv_arg_type type;
	bool nullable;                 /* optional: may be absent */
	const char *const *allowed;    /* NULL-terminated allowed strings, or NULL */
} mv_command_arg;

typedef struct mv_command_ctx mv_command_ctx;

/* A handler gets validated arguments (a JSON object: strings, integers,
 * booleans, parsed JSON; optional arguments absent when not given) and
 * returns its result (a new reference; json_null() for none), or NULL with
 * *error set.  Long-running handlers report progress and poll for
 * cancellation through the context. */
typedef json_t *(*mv_command_fn)(mv_command_ctx *ctx, json_t *args, GError **error);

/* A result that is a list, produced a row at a time (rows.c), so that a
 * caller that streams (the HTTP API) writes each row as it is read and no
 * answer is ever whole in memory, however long. */
typedef struct mv_rows mv_rows;
/* The next row appended to out as JSON text: 1, 0 after the last (out
 * untouched), -1 with *error.  Text, not a json_t, so that a listing of
 * many rows writes each straight from its columns (mv_json_append_string)
 * instead of building and dumping an object per row. */
typedef int (*mv_rows_next_fn)(void *state, GString *out, GError **error);
/* A list function's handler: checks its arguments and opens its listing
 * (failing there, before any row, like any handler), then hands out rows. */
typedef mv_rows *(*mv_command_rows_fn)(mv_command_ctx *ctx, json_t *args, GError **error);

typedef struct mv_command {
	const char *name;
	const mv_command_arg *args;    /* terminated by an entry with name NULL */
	const char *privilege;         /* a privilege of design.md §9, e.g. "admin" */
	bool long_running;
	mv_command_fn run;             /* NULL for a list function (rows) */
	const char *summary;           /* one line, for help and get-metadata users */
	mv_command_rows_fn rows;       /* a list function's handler, else NULL */
} mv_command;

/* A row source over state (freed with free_state when the rows are). */
mv_rows *mv_rows_new(mv_rows_next_fn next, void *state, GDestroyNotify free_state);
/* The next row's text appended to out: as mv_rows_next_fn; once it said 0
 * or -1 it is not asked again. */
int mv_rows_next(mv_rows *rows, GString *out, GError **error);
void mv_rows_free(mv_rows **rows);
/* Every row into one array, for callers that answer whole (the shell,
 * jobs, Web Access); takes rows.  NULL with *error when a row fails. */
json_t *mv_rows_collect(mv_rows *rows, GError **error);
/* JSON text appended to out: a value in one piece (compact, members in
 * order), and a string quoted and escaped as jansson would (text that is
 * not UTF-8 is made valid first, never dropped). */
void mv_json_append(GString *out, json_t *value);
void mv_json_append_string(GString *out, const char *s);


/* What the server lends to the functions that concern the service itself
 * (GetServiceConfiguration, SetServiceCertificate, GetActiveSessions).
 * NULL when no server runs (the command line on a data directory). */
typedef struct mv_service_hooks {
	/* Path of the service configuration file in use. */
	const char *config_path;
	/* Asks the server to re-read its configuration (as SIGHUP does). */
	void (*reload)(void *opaque);
	/* The configuration the server runs with now, into *out (the caller
	 * clears it): the file may differ (`serve --listen`, `--safe-mode`, a
	 * change not reloaded yet). */
	void (*running)(void *opaque, mv_service_config *out);
	/* The sessions the server knows (array of JSON objects, new reference). */
	json_t *(*sessions)(void *opaque);
	void *opaque;
} mv_service_hooks;

struct mv_command_ctx {
	mv_instance *inst;
	const char *user;              /* who is calling (audit; "admin" for the local shell) */
	const char *remote;            /* caller's address for the audit log; "local" on the command line */
	const mv_access *access;       /* the caller's folder rights; NULL = unrestricted */
	const mv_service_hooks *service; /* NULL outside the server */
	mv_progress_fn progress;       /* may be NULL */
	void *progress_opaque;
	volatile gint *cancel;         /* set non-zero to ask the handler to stop; may be NULL */
	GString *log;                  /* logOutput: lines the handler wants the caller to see */
	char *audit_note;              /* set by a handler (mv_command_audit_note); the registry
	                                * writes it into the call's audit entry, then frees it */
};

/* Reports progress (rate-limited by the sink, not here). */
void mv_command_progress(mv_command_ctx *ctx, int percent, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Appends one line to the call's logOutput (and logs it at info level). */
void mv_command_log(mv_command_ctx *ctx, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* A sentence for the call's audit entry ("note"), for what an auditor
 * reading the log later must know (never a secret). */
void mv_command_audit_note(mv_command_ctx *ctx, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* True once cancellation was requested; a handler that sees it stops at a
 * safe point and fails with MV_ERR_CANCELLED. */
bool mv_command_cancelled(mv_command_ctx *ctx);

/* ---- the registry -------------------------------------------------------- */

const mv_command *mv_command_find(const char *name);
/* Adds a table of functions from a module above commands/ (terminated by
 * {NULL}); called once per table from main, before the first lookup. */
void mv_commands_register(const mv_command *table);
/* All functions, sorted by name. */
const mv_command *const *mv_command_list(size_t *n_r);
/* The get-metadata answer: [{"name":F,"args":[{"name","type","nullable"}]}]. */
json_t *mv_command_metadata(void);
/* A function described for people (`help F` in the shell, `cmd F --help`):
 * its summary, privilege, and each argument with its type, whether it is
 * required and the values it takes.  g_free() it. */
char *mv_command_help_text(const mv_command *cmd);
/* The functions of a get-metadata answer (this build's, or a server's) as
 * a table of name, privilege and summary, one line each, with a header
 * line; what this build does not know is marked so.  g_free() it. */
char *mv_command_table_text(json_t *meta);

/* Turns text arguments (name -> value; values as a form or --name=value
 * gives them) into the typed object a handler takes.  Unknown argument,
 * missing required argument, ill-typed value or a value outside the allowed
 * set fail with MV_ERR_INVALID and a message naming function and argument. */
json_t *mv_command_parse_args(const mv_command *cmd, GHashTable *text_args, GError **error);
/* Whether text (a command line typed into the shell) may hold the value of a
 * secret argument of any function: it names one.  Such lines stay out of the
 * shell's history. */
bool mv_command_text_may_hold_secret(const char *text);

/* The one way into a function from text (HTTP API, Web Access, `cmd`, the
 * shell): finds it, checks the caller's privileges and parses its text
 * arguments.  Every refusal — unknown function (MV_ERR_NOT_FOUND), missing
 * privilege (MV_ERR_DENIED, audited as AccessDenied), bad argument
 * (MV_ERR_INVALID) — is written to the audit log with the function, user,
 * address, the names of the arguments given and the reason, never their
 * values.  Returns the function and *args_r, or NULL with *error. */
const mv_command *mv_command_prepare(mv_command_ctx *ctx, const char *name, unsigned privileges,
                                     GHashTable *text_args, json_t **args_r, GError **error);

/* Whether a caller with these privileges (mv_privilege bits) may call cmd:
 * functions marked "admin" need MV_PRIV_ADMIN; functions marked "login"
 * (the folder and message functions, which check folder privileges
 * themselves) need MV_PRIV_LOGIN (or admin). */
bool mv_command_allowed(const mv_command *cmd, unsigned privileges);
/* Whether cmd changes nothing (its name starts with Get, List, Verify or Search):
 * the command line may run it while a server holds the data directory, and
 * a successful call of it is not an administrative action for the audit log. */
bool mv_command_read_only(const mv_command *cmd);
/* The audit event type of a function (MailStore's names where it has one,
 * e.g. CreateUser -> UserAdd), never NULL. */
const char *mv_command_audit_event(const mv_command *cmd);

/* Runs a handler and wraps the outcome in the envelope of design.md §9:
 * {"error","token","statusVersion","statusCode","percentProgress",
 *  "statusText","result","logOutput"}.  Never NULL. */
json_t *mv_command_invoke(const mv_command *cmd, mv_command_ctx *ctx, json_t *args);
/* The same call without the envelope, for callers that answer in their own
 * form (Web Access): the result, or NULL with *error (its code kept).  The
 * audit entry is written the same way. */
json_t *mv_command_call(const mv_command *cmd, mv_command_ctx *ctx, json_t *args, GError **error);
/* An error envelope (unknown function, bad arguments, ...). */
json_t *mv_command_error_envelope(const char *message, const char *details);

/* ---- streamed calls (stream.c) ------------------------------------------------- */

/* A call answered as text written a part at a time: a list function's rows
 * go out as they are read, so memory stays bounded by a part, whatever the
 * answer's length.  The envelope holds the same members as
 * mv_command_invoke's; a list function's puts "error", "statusCode" and
 * "logOutput" after "result", since whether the call succeeded is known
 * only after the last row: a failure after some rows were written ends the
 * result there and says "failed" with the error.  Functions without rows
 * are run whole by the open and their envelope is written as one part.  The
 * audit entry is written as mv_command_call writes it, when the outcome is
 * known.  ctx and args must outlive the stream. */
typedef struct mv_command_stream mv_command_stream;
mv_command_stream *mv_command_stream_open(const mv_command *cmd, mv_command_ctx *ctx, json_t *args);
/* Appends the next part of the envelope text to out, `want` bytes or a
 * little more unless the end comes first.  False once all was written. */
bool mv_command_stream_read(mv_command_stream *s, GString *out, size_t want);
void mv_command_stream_free(mv_command_stream **s);

/* ---- the shell's syntax (command_line.c) ------------------------------------ */

/* "--name=value", "--name value" and "--flag" (= true) into name -> value;
 * anything else, or a name given twice, fails naming function and word. */
GHashTable *mv_command_words_to_args(const char *function, int argc, char **argv, GError **error);
/* A whole line, `Function --arg=value ...`, split into words the way a
 * POSIX shell would: *name_r (g_free) and *args_r as above.  An empty line
 * or one that does not split fails naming the line. */
int mv_command_line_split(const char *line, char **name_r, GHashTable **args_r, GError **error);

/* ---- argument accessors for handlers (arguments already validated) ---------- */

const char *mv_arg_string(json_t *args, const char *name);          /* NULL if absent */
int64_t mv_arg_number(json_t *args, const char *name, int64_t absent);
bool mv_arg_bool(json_t *args, const char *name, bool absent);
bool mv_arg_present(json_t *args, const char *name);

/* Handler tables of the command files, joined by the registry. */
extern const mv_command mv_commands_server[];   /* cmd_server.c, terminated by {NULL} */
extern const mv_command mv_commands_stores[];   /* cmd_stores.c */
extern const mv_command mv_commands_maint[];    /* cmd_maint.c */
extern const mv_command mv_commands_folders[];  /* cmd_folders.c */
extern const mv_command mv_commands_folder_listing[]; /* cmd_folder_listing.c: GetMessages */
extern const mv_command mv_commands_search[];   /* cmd_search.c: SearchMessages */
extern const mv_command mv_commands_users[];    /* cmd_users.c: users, privileges, compliance */
extern const mv_command mv_commands_audit[];    /* cmd_audit.c: GetAuditLog, VerifyAuditLog */
extern const mv_command mv_commands_service[];  /* cmd_service.c: service configuration, certificate, sessions */
extern const mv_command mv_commands_logon[];    /* cmd_logon.c: MFA, app passwords, a user's own password */
extern const mv_command mv_commands_message[];  /* cmd_message.c: GetMessage */
extern const mv_command mv_commands_worker_results[]; /* cmd_worker_results.c: GetWorkerResults, ...Report */
extern const mv_command mv_commands_credentials[]; /* cmd_credentials.c: credentials for profiles */

#endif
