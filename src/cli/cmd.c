/* cli/cmd: `mailvault cmd` — one Administration API function from the
 * command line, through the command registry like every other caller.
 *
 * The words after `cmd` are the management shell's syntax (`Function
 * --arg=value`); mv_cli_run_function is shared with the interactive shell so
 * that both accept and refuse exactly the same input. */
#include "cli/cli.h"
#include "commands/commands.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void mv_cli_print_progress(void *opaque, int percent, const char *text)
{
	mv_cli_progress *p = opaque;
	double now = mv_monotonic();
	/* On a terminal one self-overwriting line; in a log, a line every few
	 * seconds or whenever the percentage moves by ten. */
	if (p->tty) {
		if (now - p->last < 0.2 && percent != 100)
			return;
		if (percent >= 0)
			fprintf(stderr, "\r\033[K%3d%% %s", percent, text);
		else
			fprintf(stderr, "\r\033[K%s", text);
	} else {
		if (now - p->last < 5.0 && (percent < 0 || percent - p->last_percent < 10) && percent != 100)
			return;
		if (percent >= 0)
			fprintf(stderr, "progress: %d%% %s\n", percent, text);
		else
			fprintf(stderr, "progress: %s\n", text);
	}
	fflush(stderr);
	p->last = now;
	p->last_percent = percent;
}

void mv_cli_print_envelope(json_t *env)
{
	char *text = json_dumps(env, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	fflush(stdout);
}

/* "--help" among a function's words asks for its description instead of
 * a call (a value is never the word "--help": "--name --help" reads as
 * two flags). */
static bool asks_for_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/* The function as this build describes it (the shell's `help Function`). */
static int print_function_help(const char *name)
{
	const mv_command *cmd = mv_command_find(name);
	if (!cmd) {
		fprintf(stderr, "mailvault: unknown function '%.100s' ('mailvault cmd --list' lists them)\n", name);
		return MV_EXIT_USAGE;
	}
	char *text = mv_command_help_text(cmd);
	fputs(text, stdout);
	fflush(stdout);
	g_free(text);
	return MV_EXIT_OK;
}

int mv_cli_run_function(mv_instance *inst, int argc, char **argv)
{
	if (argc < 1)
		return MV_EXIT_USAGE;
	if (asks_for_help(argc, argv))
		return print_function_help(argv[0]);
	GError *err = NULL;
	GHashTable *text = mv_command_words_to_args(argv[0], argc - 1, argv + 1, &err);
	mv_command_ctx who = { .inst = inst, .user = "admin" };
	json_t *args = NULL;
	const mv_command *cmd = text ? mv_command_prepare(&who, argv[0], MV_PRIV_ADMIN, text, &args, &err) : NULL;
	if (text)
		g_hash_table_destroy(text);
	if (!cmd) {
		bool unknown = g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND);
		char *msg = unknown ? g_strdup_printf("%s ('mailvault cmd --list' lists them)", err->message)
		                    : g_strdup(err->message);
		json_t *env = mv_command_error_envelope(msg, NULL);
		mv_cli_print_envelope(env);
		json_decref(env);
		g_free(msg);
		g_error_free(err);
		return MV_EXIT_USAGE;
	}
	/* A function that may write holds the directory against a server for
	 * its whole run (archive/lock.c): a server running on it refuses
	 * local changes, and the message says to go through it with --server. */
	int lock_fd = -1;
	if (!mv_command_read_only(cmd) && mv_server_lock_local(mv_instance_data_dir(inst), &lock_fd, &err) < 0) {
		json_t *env = mv_command_error_envelope(err->message, NULL);
		mv_cli_print_envelope(env);
		json_decref(env);
		json_decref(args);
		g_error_free(err);
		return MV_EXIT_FAIL;
	}
	mv_cli_progress ps = { .tty = isatty(STDERR_FILENO) != 0, .last_percent = -100 };
	struct sigaction old;
	/* The function stops at its next safe point; a second Ctrl-C kills,
	 * which is safe too since every store write is crash-safe. */
	volatile gint *cancel = mv_cli_sigint_catch(
		"\nmailvault: cancelling at the next safe point (Ctrl-C again to kill)\n", "cancel safely", &old);
	mv_command_ctx ctx = {
		.inst = inst, .user = "admin", .progress = mv_cli_print_progress, .progress_opaque = &ps,
		.cancel = cancel,
	};
	json_t *env = mv_command_invoke(cmd, &ctx, args);
	mv_cli_sigint_release(&old);
	if (ps.tty && ps.last > 0)
		fprintf(stderr, "\n");
	mv_cli_print_envelope(env);
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	int rc = status && strcmp(status, "succeeded") == 0 ? MV_EXIT_OK : MV_EXIT_FAIL;
	json_decref(env);
	json_decref(args);
	mv_server_lock_local_release(lock_fd);
	return rc;
}

static int cmd_usage(FILE *out, int rc)
{
	fprintf(out,
	        "usage: mailvault cmd Function [--arg=value ...]\n"
	        "       mailvault cmd Function --help  what the function does, its arguments and their values\n"
	        "       mailvault cmd --list [--json]  the functions: a table of name, privilege and summary;\n"
	        "                                      --json: the get-metadata answer\n"
	        "       mailvault cmd --server URL --user NAME [--password-file FILE] [--cacert FILE | --insecure]\n"
	        "                     (Function [--arg=value ...] | --list [--json])\n"
	        "Runs one Administration API function and prints its JSON envelope: on the data\n"
	        "directory, or with --server through a running server (https://host:port). The\n"
	        "password is the first line of --password-file, else $MAILVAULT_PASSWORD, else asked\n"
	        "for on the terminal. --cacert trusts the server's (self-signed) certificate;\n"
	        "without it the system's certificate authorities decide. Function --help describes\n"
	        "the function as this build of mailvault has it, without asking a server.\n");
	return rc;
}

/* The options standing before the function name. */
typedef struct cmd_opts {
	bool list, json, help;
	mv_cli_remote_opts remote;
} cmd_opts;

/* "--name VALUE" or "--name=VALUE" at argv[*i]: stores VALUE, steps past it.
 * Returns 1 when argv[*i] is that option, 0 when it is not, -1 when its
 * value is missing. */
static int take_value_option(const char *name, int argc, char **argv, int *i, const char **value_r)
{
	const char *w = argv[*i];
	size_t n = strlen(name);
	if (strncmp(w, name, n) != 0)
		return 0;
	if (w[n] == '=') {
		*value_r = w + n + 1;
		return 1;
	}
	if (w[n] != 0)
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "mailvault cmd: %s needs a value\n", name);
		return -1;
	}
	*value_r = argv[++*i];
	return 1;
}

/* Parses argv[1..] up to the function name; returns the index of the
 * function name (argc when none), or -1 after printing a usage error. */
static int parse_cmd_opts(int argc, char **argv, cmd_opts *o)
{
	static const char *const names[] = { "--server", "--user", "--password-file", "--cacert" };
	const char **values[] = { &o->remote.server, &o->remote.user, &o->remote.password_file, &o->remote.cacert };
	int i = 1;
	for (; i < argc && g_str_has_prefix(argv[i], "-"); i++) {
		const char *w = argv[i];
		if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
			o->help = true;
			continue;
		}
		if (strcmp(w, "--list") == 0) {
			o->list = true;
			continue;
		}
		if (strcmp(w, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(w, "--insecure") == 0) {
			o->remote.insecure = true;
			continue;
		}
		int found = 0;
		for (size_t k = 0; k < G_N_ELEMENTS(names) && !found; k++)
			found = take_value_option(names[k], argc, argv, &i, values[k]);
		if (found < 0)
			return -1;
		if (!found) {
			fprintf(stderr, "mailvault cmd: unknown option '%s' before the function name\n", w);
			return -1;
		}
	}
	return i;
}

/* Options that only make sense together. */
static bool check_cmd_opts(const cmd_opts *o, int n_words)
{
	const mv_cli_remote_opts *r = &o->remote;
	if (!r->server && (r->user || r->password_file || r->cacert || r->insecure)) {
		fprintf(stderr, "mailvault cmd: --user, --password-file, --cacert and --insecure go with --server URL\n");
		return false;
	}
	if (r->server && !r->user) {
		fprintf(stderr, "mailvault cmd: --server needs --user NAME\n");
		return false;
	}
	if (r->cacert && r->insecure) {
		fprintf(stderr, "mailvault cmd: --cacert and --insecure exclude each other\n");
		return false;
	}
	if (o->json && !o->list) {
		fprintf(stderr, "mailvault cmd: --json goes with --list (a function's answer is JSON anyway)\n");
		return false;
	}
	if (o->list ? n_words != 0 : n_words == 0) {
		fprintf(stderr, o->list ? "mailvault cmd: --list takes no function\n"
		                        : "mailvault cmd: which function? (--list lists them)\n");
		return false;
	}
	return true;
}

/* The get-metadata answer as it is, or the table made from it. */
static void print_list(bool json)
{
	json_t *meta = mv_command_metadata();
	char *text = json ? json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : mv_command_table_text(meta);
	if (text)
		printf("%s%s", text, json ? "\n" : "");
	if (json)
		free(text);   /* jansson's */
	else
		g_free(text);
	json_decref(meta);
}

/* One function on the data directory (mv_cli_run_function takes the
 * server lock for functions that write). */
static int run_local(const mv_cli_globals *g, int argc, char **argv)
{
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	int rc = mv_cli_run_function(inst, argc, argv);
	mv_instance_close(&inst);
	return rc;
}

int mv_cli_cmd(const mv_cli_globals *g, int argc, char **argv)
{
	if (argc < 2)
		return cmd_usage(stderr, MV_EXIT_USAGE);
	cmd_opts o = { 0 };
	int first = parse_cmd_opts(argc, argv, &o);
	if (first < 0)
		return MV_EXIT_USAGE;
	if (o.help)
		return cmd_usage(stdout, MV_EXIT_OK);
	if (!check_cmd_opts(&o, argc - first))
		return MV_EXIT_USAGE;
	/* Described from this build's registry: no server needs asking. */
	if (!o.list && asks_for_help(argc - first, argv + first))
		return print_function_help(argv[first]);
	if (o.remote.server) {
		/* The remote list is told to print JSON by the one word "--json"
		 * (remote.c, list_functions). */
		char *json_word[] = { (char *)"--json", NULL };
		return o.list ? mv_cli_remote_run(&o.remote, true, o.json ? 1 : 0, json_word)
		              : mv_cli_remote_run(&o.remote, false, argc - first, argv + first);
	}
	if (o.list) {
		print_list(o.json);
		return MV_EXIT_OK;
	}
	return run_local(g, argc - first, argv + first);
}
