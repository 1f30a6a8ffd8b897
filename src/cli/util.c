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

bool mv_cli_parse(const char *name, const char *params, const char *summary, GOptionEntry *entries,
                  int *argc, char ***argv)
{
	char *usage = g_strdup_printf("%s %s", name, params);
	GOptionContext *ctx = g_option_context_new(usage);
	g_free(usage);
	g_option_context_set_summary(ctx, summary);
	g_option_context_set_description(ctx, "Global options: --data-dir DIR (else $MAILVAULT_DATA_DIR, else ./var), --debug");
	g_option_context_add_main_entries(ctx, entries, NULL);
	GError *err = NULL;
	bool ok = g_option_context_parse(ctx, argc, argv, &err);
	if (!ok) {
		fprintf(stderr, "mailvault %s: %s\n", name, err->message);
		g_error_free(err);
	}
	g_option_context_free(ctx);
	return ok;
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
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
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
