/* commands/command_line: the management shell's syntax, `Function
 * --arg=value ...`, turned into a function name and the text arguments the
 * registry parses.  Shared by `mailvault cmd`, the shell, `cmd --server` and
 * the job scheduler, whose actions are lines in this syntax: a job's action
 * means exactly what the same line typed into the shell means. */
#include "commands/commands.h"

#include <string.h>

GHashTable *mv_command_words_to_args(const char *function, int argc, char **argv, GError **error)
{
	GHashTable *args = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		if (!g_str_has_prefix(w, "--") || !w[2]) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: expected --argument=value, got '%.100s'",
			            function, w);
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
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%.100s' given twice", function, name);
			g_free(name);
			g_free(value);
			g_hash_table_destroy(args);
			return NULL;
		}
		g_hash_table_insert(args, name, value);
	}
	return args;
}

int mv_command_line_split(const char *line, char **name_r, GHashTable **args_r, GError **error)
{
	int argc = 0;
	char **argv = NULL;
	GError *err = NULL;
	if (!g_shell_parse_argv(line, &argc, &argv, &err)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "cannot split '%.200s' into words: %s", line, err->message);
		g_error_free(err);
		return -1;
	}
	GHashTable *args = mv_command_words_to_args(argv[0], argc - 1, argv + 1, error);
	if (!args) {
		g_strfreev(argv);
		return -1;
	}
	*name_r = g_strdup(argv[0]);
	*args_r = args;
	g_strfreev(argv);
	return 0;
}
