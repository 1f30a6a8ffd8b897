/* cli: the subcommands of `mailvault`, one function each. */
#ifndef MV_CLI_H
#define MV_CLI_H

#include "archive/archive.h"

#include <jansson.h>
#include <signal.h>

enum {
	MV_EXIT_OK = 0,
	MV_EXIT_FAIL = 1,
	MV_EXIT_USAGE = 2,     /* bad arguments or a malformed query */
	MV_EXIT_REFUSED = 3,   /* import finished but refused some items */
};

typedef struct mv_cli_globals {
	const char *data_dir;  /* as given, or NULL */
	bool debug;
} mv_cli_globals;

/* One subcommand, named mv_cli_<subcommand> and defined in
 * cli/<subcommand>.c unless said otherwise (mv_command_* is the registry's,
 * commands/).  argv[0] is the subcommand name. */
typedef int (*mv_cli_subcommand)(const mv_cli_globals *g, int argc, char **argv);

int mv_cli_init(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_import(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_search(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_search_bench(const mv_cli_globals *g, int argc, char **argv); /* search.c */
int mv_cli_show(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_stats(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_folders(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_cmd(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_restore(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_shell(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_audit(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_serve(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_export(const mv_cli_globals *g, int argc, char **argv);
int mv_cli_verify_export(const mv_cli_globals *g, int argc, char **argv); /* export.c */

/* Runs one registry function from words "Function --arg=value ..." (the
 * shell syntax; "--arg value" also accepted): prints the JSON envelope on
 * stdout, progress on stderr when it is a terminal, and cancels the function
 * safely on Ctrl-C.  Returns the exit status (0 succeeded, 1 failed or
 * cancelled, 2 unknown function or bad arguments). */
int mv_cli_run_function(mv_instance *inst, int argc, char **argv);

/* What the local and the remote `cmd` share (cmd.c), so that both accept
 * the same words and show the same output. */
/* An envelope on stdout, indented, keys in order. */
void mv_cli_print_envelope(json_t *env);
/* Progress on stderr: one self-overwriting line on a terminal, a line every
 * few seconds (or every ten percent) otherwise.  The opaque argument is an
 * mv_cli_progress initialised as MV_CLI_PROGRESS_INIT(is_a_tty). */
typedef struct mv_cli_progress {
	bool tty;
	double last;           /* mv_monotonic() of the last line; 0 = none yet */
	int last_percent;
} mv_cli_progress;
#define MV_CLI_PROGRESS_INIT(is_tty) { .tty = (is_tty), .last = 0, .last_percent = -100 }
void mv_cli_print_progress(void *opaque, int percent, const char *text);

/* `mailvault cmd --server URL ...` (remote.c): the options given before
 * the function name. */
typedef struct mv_cli_remote_opts {
	const char *server;         /* https://host:port (http:// only to this machine) */
	const char *user;
	const char *password_file;  /* first line is the password; NULL: $MAILVAULT_PASSWORD, else a prompt */
	const char *cacert;         /* trust this certificate instead of the system store */
	bool insecure;              /* verify no certificate (warned about) */
} mv_cli_remote_opts;
/* Calls argv[0] with the words after it (the syntax of mv_cli_run_function)
 * through the server's Administration API, following a long-running call to
 * its end, or lists the server's functions when list is set (argc == 0).
 * Prints the envelope on stdout; returns the exit status (0 succeeded, 1
 * failed, cancelled or no answer, 2 bad arguments or unknown function). */
int mv_cli_remote_run(const mv_cli_remote_opts *opts, bool list, int argc, char **argv);
/* One call through the server for a subcommand that goes through it
 * (import_server.c): function with args (name -> value) invoked and
 * followed to its end, on_status(opaque, envelope) told of each running
 * status, Ctrl-C sent as cancel-async.  *env_r is the final envelope (the
 * caller's reference) when the return is 0; else the return is the exit
 * status after printing why no final envelope came. */
typedef void (*mv_cli_remote_status)(void *opaque, json_t *envelope);
int mv_cli_remote_call(const mv_cli_remote_opts *opts, const char *function, GHashTable *args,
                       mv_cli_remote_status on_status, void *opaque, json_t **env_r);

/* `mailvault import` while a server holds the data directory, or with
 * --server (import_server.c): the options as import.c parsed them. */
typedef struct mv_cli_import_args {
	char *archive;
	char *folder;
	char *format;
	char *ext;
	gboolean no_subfolders;
	gboolean json;
	gboolean quiet;
	gboolean read_mailstore_headers;
	gboolean verify_signature;
	char *server;           /* --server URL; NULL: the URL the holder wrote into server.lock */
	char *user;             /* --user; NULL: admin */
	char *password_file;
	char *cacert;           /* NULL: the server's own certificate as its configuration names it */
} mv_cli_import_args;
/* Runs the import as RunTemporaryProfile on the server (its URL from
 * --server or from data_dir's server.lock), printing progress, summary and
 * exit status as the local import does. */
int mv_cli_import_via_server(const char *data_dir, const mv_cli_import_args *a, const char *path);

/* Shared helpers (util.c). */
/* Parses options with GOptionContext; prints the error and returns false.
 * On success argv is the command's name followed by its other arguments in
 * order: every argument after "--" among them (even one beginning with
 * '-'), the "--" itself not.  params names those arguments in --help. */
bool mv_cli_parse(const char *name, const char *params, const char *summary, GOptionEntry *entries,
                  int *argc, char ***argv);
/* Opens the instance of the resolved data directory, printing any error. */
mv_instance *mv_cli_open_instance(const mv_cli_globals *g);
int mv_cli_fail(GError *err);
/* Prints a JSON value on one line of stdout and releases the reference. */
void mv_cli_print_json(json_t *value);
/* Ctrl-C while a function runs (util.c), for the local and the remote
 * `cmd`: the first sets the returned flag (for mv_command_ctx.cancel, or
 * polled with mv_cli_sigint_seen) and writes message to stderr (it must
 * outlive the handler: a literal); a second ends the program by SIGINT's
 * default action.  lost completes "Ctrl-C will not ..." in the warning when
 * the handler cannot be installed.  The previous handler goes into *old for
 * mv_cli_sigint_release. */
volatile gint *mv_cli_sigint_catch(const char *message, const char *lost, struct sigaction *old);
void mv_cli_sigint_release(const struct sigaction *old);
bool mv_cli_sigint_seen(void);

#endif
