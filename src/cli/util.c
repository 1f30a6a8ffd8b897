/* cli/util: what every subcommand shares — option parsing with GLib's
 * GOptionContext, opening the instance, turning an error into a line on
 * stderr and an exit status, and Ctrl-C as a cancel request while a
 * function runs (local `cmd`/shell and `cmd --server`). */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What mv_cli_parse hands back as argv: reachable from here for the life of
 * the process, like the argv it replaces (a process parses once). */
static GPtrArray *parsed_argvs;

/* An unknown option may be a positional argument that begins with '-' (a
 * query "-spam razor"): the way to give one is after "--". */
static void report_parse_error(const char *name, const char *params, const GError *err)
{
	if (!g_error_matches(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION) || !*params) {
		fprintf(stderr, "mailvault %s: %s\n", name, err->message);
		return;
	}
	fprintf(stderr, "mailvault %s: %s (see 'mailvault %s --help'; an argument that begins with '-' goes after "
	        "'--': mailvault %s [OPTION...] -- %s)\n", name, err->message, name, name, params);
}

/* GOptionContext prints "Usage: PRGNAME [OPTION...] PARAMETERS": the
 * program name comes from g_get_prgname(), which GLib would otherwise take
 * from argv[0] — here the subcommand — so it is set to "mailvault NAME",
 * and the context is given the parameters alone.  Non-option arguments are
 * collected through G_OPTION_REMAINING because GLib leaves a "--" in argv
 * when an argument after it begins with '-': collected, every argument
 * after "--" is positional and the "--" itself is gone, for every command. */
bool mv_cli_parse(const char *name, const char *params, const char *summary, GOptionEntry *entries,
                  int *argc, char ***argv)
{
	char *prgname = g_strdup_printf("mailvault %s", name);
	g_set_prgname(prgname);
	g_free(prgname);
	GOptionContext *ctx = g_option_context_new(params);
	g_option_context_set_summary(ctx, summary);
	g_option_context_set_description(ctx, "Global options: --data-dir DIR (else $MAILVAULT_DATA_DIR, else ./var), --debug");
	g_option_context_add_main_entries(ctx, entries, NULL);
	char **rest = NULL;
	GOptionEntry remaining[] = {
		{ G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, NULL },
		G_OPTION_ENTRY_NULL,
	};
	g_option_context_add_main_entries(ctx, remaining, NULL);
	GError *err = NULL;
	bool ok = g_option_context_parse(ctx, argc, argv, &err);
	g_option_context_free(ctx);
	if (!ok) {
		report_parse_error(name, params, err);
		g_error_free(err);
		g_strfreev(rest);
		return false;
	}
	guint n = rest ? g_strv_length(rest) : 0;
	char **args = g_new0(char *, n + 2);
	args[0] = g_strdup(*argc > 0 ? (*argv)[0] : name);
	for (guint i = 0; i < n; i++)
		args[i + 1] = rest[i];
	g_free(rest); /* the strings moved to args */
	if (!parsed_argvs)
		parsed_argvs = g_ptr_array_new();
	g_ptr_array_add(parsed_argvs, args);
	*argc = (int)n + 1;
	*argv = args;
	return true;
}

int mv_cli_fail(GError *err)
{
	fprintf(stderr, "mailvault: %s\n", err ? err->message : "failed");
	if (err)
		g_error_free(err);
	return MV_EXIT_FAIL;
}

mv_instance *mv_cli_open_instance(const mv_cli_globals *g)
{
	char *dir = mv_data_dir_resolve(g->data_dir);
	GError *err = NULL;
	mv_instance *inst = mv_instance_open(dir, &err);
	g_free(dir);
	if (!inst)
		mv_cli_fail(err);
	return inst;
}

void mv_cli_print_json(json_t *value)
{
	/* jansson writes a double with 17 digits ("3.0000000037944119e-05"):
	 * nine say everything a person or a script needs. */
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(value);
}

/* ---- Ctrl-C while a function runs ------------------------------------------------ */

/* One flag for the process: only one function runs at a time.  The message
 * is set before the handler is installed and only read by it; the handler
 * does nothing but atomic flag operations, write(2), signal and raise, all
 * async-signal-safe. */
static volatile gint cancel_requested;
static const char *volatile sigint_message;
static volatile size_t sigint_message_len;

static void on_sigint(int sig)
{
	(void)sig;
	if (g_atomic_int_get(&cancel_requested)) {
		/* A second Ctrl-C: the user insists.  The default action is safe
		 * for either caller (store writes are crash-safe; a server goes on
		 * cancelling by itself). */
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
		return;
	}
	g_atomic_int_set(&cancel_requested, 1);
	ssize_t w = write(STDERR_FILENO, sigint_message, sigint_message_len);
	(void)w;
}

volatile gint *mv_cli_sigint_catch(const char *message, const char *lost, struct sigaction *old)
{
	g_atomic_int_set(&cancel_requested, 0);
	sigint_message = message;
	sigint_message_len = strlen(message);
	struct sigaction sa = { .sa_handler = on_sigint };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, old) < 0)
		mv_log_warn("Ctrl-C will not %s: %s", lost, g_strerror(errno));
	return &cancel_requested;
}

void mv_cli_sigint_release(const struct sigaction *old)
{
	if (sigaction(SIGINT, old, NULL) < 0)
		mv_log_warn("could not restore the Ctrl-C handler: %s", g_strerror(errno));
}

bool mv_cli_sigint_seen(void)
{
	return g_atomic_int_get(&cancel_requested) != 0;
}
