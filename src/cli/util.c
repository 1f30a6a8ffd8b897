/* cli/util: what every subcommand shares — option parsing with GLib's
 * GOptionContext, opening the instance, and turning an error into a line on
 * stderr and an exit status. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>

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
