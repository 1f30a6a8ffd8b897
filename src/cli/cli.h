/* cli: the subcommands of `mailvault`, one function each. */
#ifndef MV_CLI_H
#define MV_CLI_H

#include "archive/archive.h"

#include <jansson.h>

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

/* argv[0] is the subcommand name. */
typedef int (*mv_cli_cmd)(const mv_cli_globals *g, int argc, char **argv);

int mv_cmd_init(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_import(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_search(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_show(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_stats(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_folders(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_search_bench(const mv_cli_globals *g, int argc, char **argv);
int mv_cmd_cmd(const mv_cli_globals *g, int argc, char **argv);       /* cmd_cmd.c */
int mv_cmd_restore(const mv_cli_globals *g, int argc, char **argv);   /* cmd_cmd.c */
int mv_cmd_shell(const mv_cli_globals *g, int argc, char **argv);     /* shell.c */

/* Runs one registry function from words "Function --arg=value ..." (the
 * shell syntax; "--arg value" also accepted): prints the JSON envelope on
 * stdout, progress on stderr when it is a terminal, and cancels the function
 * safely on Ctrl-C.  Returns the exit status (0 succeeded, 1 failed or
 * cancelled, 2 unknown function or bad arguments). */
int mv_cli_run_function(mv_instance *inst, int argc, char **argv);

/* Shared helpers (cli_util in cmd_query.c). */
/* Parses options with GOptionContext; prints the error and returns false. */
bool mv_cli_parse(const char *name, const char *params, const char *summary, GOptionEntry *entries,
                  int *argc, char ***argv);
/* Opens the instance of the resolved data directory, printing any error. */
mv_instance *mv_cli_open_instance(const mv_cli_globals *g);
int mv_cli_fail(GError *err);
/* Prints a JSON value on one line of stdout and releases the reference. */
void mv_cli_print_json(json_t *value);

#endif
