/* cli/folders: `mailvault folders` — archives and folders with message
 * counts and sizes, merged over every store (a folder's messages may lie
 * in several), in the names GetFolderStatistics answers with under --json.
 * Stores are opened read-only through the searcher, so it runs beside an
 * import. */
#include "cli/cli.h"
#include "search/search.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void merge_folders(GHashTable *acc, GPtrArray *order, GPtrArray *folders)
{
	for (guint i = 0; i < folders->len; i++) {
		mv_folder_stats *f = folders->pdata[i];
		char *key = g_strdup_printf("%s\x1f%s", f->archive, f->path);
		mv_folder_stats *have = g_hash_table_lookup(acc, key);
		if (have) {
			have->messages += f->messages;
			have->bytes += f->bytes;
			g_free(key);
			continue;
		}
		have = g_new0(mv_folder_stats, 1);
		have->archive = g_strdup(f->archive);
		have->path = g_strdup(f->path);
		have->messages = f->messages;
		have->bytes = f->bytes;
		g_hash_table_insert(acc, key, have);
		g_ptr_array_add(order, have);
	}
}

static gint folder_order(gconstpointer a, gconstpointer b)
{
	const mv_folder_stats *x = *(mv_folder_stats *const *)a, *y = *(mv_folder_stats *const *)b;
	int c = strcmp(x->archive, y->archive);
	return c ? c : strcmp(x->path, y->path);
}

static void print_folders(GPtrArray *order, bool json)
{
	g_ptr_array_sort(order, folder_order);
	json_t *arr = json_array();
	for (guint i = 0; i < order->len; i++) {
		const mv_folder_stats *f = order->pdata[i];
		if (json)
			/* the names GetFolderStatistics answers with */
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "archive", f->archive, "folder", f->path,
			                                     "count", (json_int_t)f->messages, "size", (json_int_t)f->bytes));
		else
			printf("%s%s%s  %lld  %lld\n", f->archive, *f->path ? "/" : "", f->path,
			       (long long)f->messages, (long long)f->bytes);
	}
	if (json)
		mv_cli_print_json(arr);
	else
		json_decref(arr);
}

int mv_cli_folders(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("folders", "[ARCHIVE]", "Archives and folders with message counts and sizes.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc > 2) {
		fprintf(stderr, "mailvault: folders takes at most one ARCHIVE\n");
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	mv_searcher *searcher = mv_searcher_open(inst, &err);
	if (!searcher) {
		mv_instance_close(&inst);
		return mv_cli_fail(err);
	}
	GHashTable *acc = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)mv_folder_stats_free);
	GPtrArray *order = g_ptr_array_new();
	int status = MV_EXIT_OK;
	GPtrArray *infos = mv_instance_stores(inst, &err);
	for (guint i = 0; infos && i < infos->len && status == MV_EXIT_OK; i++) {
		mv_store *s = mv_searcher_store(searcher, ((mv_archive_store *)infos->pdata[i])->id);
		GPtrArray *folders = NULL;
		if (!s)
			continue;
		if (mv_store_list_folders(s, argc == 2 ? argv[1] : NULL, &folders, &err) < 0) {
			status = mv_cli_fail(err);
			break;
		}
		merge_folders(acc, order, folders);
		g_ptr_array_free(folders, TRUE);
	}
	if (!infos)
		status = mv_cli_fail(err);
	if (status == MV_EXIT_OK)
		print_folders(order, json);
	if (infos)
		g_ptr_array_free(infos, TRUE);
	g_ptr_array_free(order, TRUE);
	g_hash_table_destroy(acc);
	mv_searcher_close(&searcher);
	mv_instance_close(&inst);
	return status;
}
