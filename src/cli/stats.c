/* cli/stats: `mailvault stats` — message counts and disk use per store,
 * and their total.  Stores are opened read-only, so it runs beside an
 * import; one that cannot be read is named with its reason and left out of
 * the total instead of hiding the others. */
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>

static json_t *store_stats_json(const mv_archive_store *info, const mv_store_stats *st)
{
	return json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}}",
	                 "id", info->id, "name", info->name, "state", info->state,
	                 "messages", (json_int_t)st->messages, "contents", (json_int_t)st->contents,
	                 "rawBytes", (json_int_t)st->raw_bytes,
	                 "disk", "content", (json_int_t)st->disk_content, "db", (json_int_t)st->disk_db,
	                 "index", (json_int_t)st->disk_index);
}

static void print_stats_line(const mv_archive_store *info, const mv_store_stats *st)
{
	uint64_t disk = st->disk_content + st->disk_db + st->disk_index;
	printf("store %d %s (%s): %lld messages, %lld distinct, %.1f MB raw; on disk %.1f MB"
	       " (content %.1f, db %.1f, index %.1f)%s\n",
	       info->id, info->name, info->state, (long long)st->messages, (long long)st->contents,
	       st->raw_bytes / 1e6, disk / 1e6, st->disk_content / 1e6, st->disk_db / 1e6, st->disk_index / 1e6,
	       st->raw_bytes > 0 ? "" : "");
}

int mv_cli_stats(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("stats", "", "Message counts and disk use per store.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	GPtrArray *infos = mv_instance_stores(inst, &err);
	if (!infos) {
		mv_instance_close(&inst);
		return mv_cli_fail(err);
	}
	json_t *stores = json_array();
	mv_store_stats total = { 0 };
	int status = MV_EXIT_OK;
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		mv_store *s = mv_instance_open_store(inst, info->id, MV_STORE_READ, &err);
		mv_store_stats st = { 0 };
		if (!s || mv_store_get_stats(s, &st, &err) < 0) {
			/* One store that cannot be read (locked, in error, files
			 * missing) must not hide the others: it is named with its
			 * reason, left out of the total, and the exit status is 1. */
			if (json)
				json_array_append_new(stores, json_pack("{s:i, s:s, s:s, s:s}", "id", info->id, "name", info->name,
				                                        "state", info->state, "error", err->message));
			else
				printf("store %d %s (%s): not read: %s\n", info->id, info->name, info->state, err->message);
			mv_log_warn("store %d (%s) left out: %s", info->id, info->name, err->message);
			g_clear_error(&err);
			mv_store_close(&s);
			status = MV_EXIT_FAIL;
			continue;
		}
		mv_store_close(&s);
		total.messages += st.messages;
		total.contents += st.contents;
		total.raw_bytes += st.raw_bytes;
		total.disk_content += st.disk_content + st.disk_db + st.disk_index;
		if (json)
			json_array_append_new(stores, store_stats_json(info, &st));
		else
			print_stats_line(info, &st);
	}
	if (json) {
		json_t *o = json_pack("{s:o, s:{s:I, s:I, s:I, s:I}}", "stores", json_incref(stores), "total",
		                      "messages", (json_int_t)total.messages, "contents", (json_int_t)total.contents,
		                      "rawBytes", (json_int_t)total.raw_bytes, "diskBytes", (json_int_t)total.disk_content);
		mv_cli_print_json(o);
	} else {
		printf("total%s: %lld messages, %.1f MB raw, %.1f MB on disk (%.0f%% of raw)\n",
		       status == MV_EXIT_OK ? "" : " (of the stores read)", (long long)total.messages, total.raw_bytes / 1e6,
		       total.disk_content / 1e6,
		       total.raw_bytes ? 100.0 * (double)total.disk_content / (double)total.raw_bytes : 0.0);
	}
	json_decref(stores);
	g_ptr_array_free(infos, TRUE);
	mv_instance_close(&inst);
	return status;
}
