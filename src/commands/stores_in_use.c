/* commands/stores_in_use: which stores a reading function reads.  An
 * archive spans every store it has mail in; a disabled store, or one whose
 * files cannot be opened now (GetStores shows it in an error state), is
 * left out rather than failing the call, so that one missing disk does not
 * stop every listing.  One place for the rule, so that every function
 * leaves out the same stores. */
#include "commands/stores_in_use.h"

#include <string.h>

static bool in_use(const mv_archive_store *info)
{
	return strcmp(info->state, "disabled") != 0 && !info->error;
}

GArray *mv_store_ids_in_use(mv_command_ctx *ctx, bool log_skipped, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(int));
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (in_use(info))
			g_array_append_val(ids, info->id);
		else if (log_skipped && info->error && strcmp(info->state, "disabled") != 0)
			mv_command_log(ctx, "store %d (%s) skipped: %s", info->id, info->name, info->error);
	}
	g_ptr_array_free(infos, TRUE);
	return ids;
}

int mv_each_store_in_use(mv_command_ctx *ctx, mv_store_visit_fn fn, void *opaque, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return -1;
	int rc = 0;
	for (guint i = 0; i < infos->len && rc == 0; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (!in_use(info))
			continue;
		mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, error);
		rc = s ? fn(ctx, s, opaque, error) : -1;
		mv_store_close(&s);
	}
	g_ptr_array_free(infos, TRUE);
	return rc;
}
