/* cli/cmd_cmd: `mailvault cmd` — one Administration API function from the
 * command line, through the command registry like every other caller —
 * and `mailvault restore`, which brings back a CreateBackup copy.
 *
 * The words after `cmd` are the management shell's syntax (`Function
 * --arg=value`); mv_cli_run_function is shared with the interactive shell so
 * that both accept and refuse exactly the same input. */
#include "cli/cli.h"
#include "commands/commands.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile gint cancel_requested;

static void on_sigint(int sig)
{
	(void)sig;
	if (g_atomic_int_get(&cancel_requested)) {
		/* A second Ctrl-C: the user insists; the default action is safe
		 * too, since every store write is crash-safe. */
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
		return;
	}
	g_atomic_int_set(&cancel_requested, 1);
	static const char msg[] = "\nmailvault: cancelling at the next safe point (Ctrl-C again to kill)\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
	(void)w;
}

typedef struct progress_state {
	bool tty;
	double last;
	int last_percent;
} progress_state;

static void print_progress(void *opaque, int percent, const char *text)
{
	progress_state *p = opaque;
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

/* "--name=value", "--name value" and "--flag" (= true) into name -> value. */
static GHashTable *words_to_args(const mv_command *cmd, int argc, char **argv, GError **error)
{
	GHashTable *args = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		if (!g_str_has_prefix(w, "--") || !w[2]) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: expected --argument=value, got '%.100s'",
			            cmd->name, w);
			g_hash_table_destroy(args);
			return NULL;
		}
		const char *eq = strchr(w, '=');
		char *name, *value;
		if (eq) {
			name = g_strndup(w + 2, (gsize)(eq - w - 2));
			value = g_strdup(eq + 1);
		} else if (i + 1 < argc && !g_str_has_prefix(argv[i + 1], "--")) {
			name = g_strdup(w + 2);
			value = g_strdup(argv[++i]);
		} else {
			name = g_strdup(w + 2);
			value = g_strdup("true");
		}
		if (g_hash_table_contains(args, name)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%.100s' given twice", cmd->name, name);
			g_free(name);
			g_free(value);
			g_hash_table_destroy(args);
			return NULL;
		}
		g_hash_table_insert(args, name, value);
	}
	return args;
}

static void print_envelope(json_t *env)
{
	char *text = json_dumps(env, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	fflush(stdout);
}

int mv_cli_run_function(mv_instance *inst, int argc, char **argv)
{
	if (argc < 1)
		return MV_EXIT_USAGE;
	const mv_command *cmd = mv_command_find(argv[0]);
	if (!cmd) {
		char *msg = g_strdup_printf("unknown function '%.100s' ('mailvault cmd --list' lists them)", argv[0]);
		json_t *env = mv_command_error_envelope(msg, NULL);
		print_envelope(env);
		json_decref(env);
		g_free(msg);
		return MV_EXIT_USAGE;
	}
	GError *err = NULL;
	GHashTable *text = words_to_args(cmd, argc - 1, argv + 1, &err);
	json_t *args = text ? mv_command_parse_args(cmd, text, &err) : NULL;
	if (text)
		g_hash_table_destroy(text);
	if (!args) {
		json_t *env = mv_command_error_envelope(err->message, NULL);
		print_envelope(env);
		json_decref(env);
		g_error_free(err);
		return MV_EXIT_USAGE;
	}
	progress_state ps = { .tty = isatty(STDERR_FILENO) != 0, .last_percent = -100 };
	g_atomic_int_set(&cancel_requested, 0);
	struct sigaction sa = { .sa_handler = on_sigint }, old;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, &old) < 0)
		mv_log_warn("Ctrl-C will not cancel safely: %s", g_strerror(errno));
	mv_command_ctx ctx = {
		.inst = inst, .user = "admin", .progress = print_progress, .progress_opaque = &ps,
		.cancel = &cancel_requested,
	};
	json_t *env = mv_command_invoke(cmd, &ctx, args);
	if (sigaction(SIGINT, &old, NULL) < 0)
		mv_log_warn("could not restore the Ctrl-C handler: %s", g_strerror(errno));
	if (ps.tty && ps.last > 0)
		fprintf(stderr, "\n");
	print_envelope(env);
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	int rc = status && strcmp(status, "succeeded") == 0 ? MV_EXIT_OK : MV_EXIT_FAIL;
	json_decref(env);
	json_decref(args);
	return rc;
}

static void print_list(void)
{
	json_t *meta = mv_command_metadata();
	char *text = json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(meta);
}

int mv_cmd_cmd(const mv_cli_globals *g, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
		        "usage: mailvault cmd Function [--arg=value ...]\n"
		        "       mailvault cmd --list       the functions and their arguments (get-metadata)\n"
		        "Runs one Administration API function and prints its JSON envelope.\n");
		return argc < 2 ? MV_EXIT_USAGE : MV_EXIT_OK;
	}
	if (strcmp(argv[1], "--list") == 0) {
		print_list();
		return MV_EXIT_OK;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	int rc = mv_cli_run_function(inst, argc - 1, argv + 1);
	mv_instance_close(&inst);
	return rc;
}

int mv_cmd_restore(const mv_cli_globals *g, int argc, char **argv)
{
	GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
	if (!mv_cli_parse("restore", "BACKUP", "Restore a CreateBackup copy into the data directory, which must not "
	                  "hold an instance yet.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc != 2) {
		fprintf(stderr, "usage: mailvault restore BACKUP [--data-dir DIR]\n");
		return MV_EXIT_USAGE;
	}
	char *dir = mv_data_dir_resolve(g->data_dir);
	GError *err = NULL;
	int rc = mv_instance_restore(argv[1], dir, &err);
	if (rc == 0)
		printf("restored %s into %s\n", argv[1], dir);
	g_free(dir);
	return rc == 0 ? MV_EXIT_OK : mv_cli_fail(err);
}
