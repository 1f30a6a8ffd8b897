/* export/complete: an export by query holds every message archived before
 * it began.
 *
 * A query reads the index, and the index can hold fewer messages than its
 * store: a rebuild part way (RebuildStoreIndex, UpgradeStores, a server
 * stopped during one), or a writer's hand-off in flight.  A search answers
 * at once and says what it could not see (search.h, the coverage); an
 * export is a long-running job that eDiscovery hands on as the answer, so
 * it does what every writer's lock does first: each store whose index lags
 * or describes another generation of its db is brought up to date
 * (mv_store_index_bring_up), under the store's write lock, with the
 * export's progress and cancellation.  A store up to date costs one count
 * on its read handle and no lock.
 *
 * A store that cannot be brought up (its files read-only, a fault) is
 * searched as it is: the call's log says why, and the search's coverage
 * then counts what the export could not see (messagesNotInIndex). */
#include "export/internal.h"

#include <string.h>

/* What the store's index lacks, said for the call's log, or NULL when it
 * is up to date.  A failure to tell counts as lacking: the bring-up, under
 * the lock, looks again. */
static char *index_behind(mv_instance *inst, int store_id)
{
	GError *err = NULL;
	bool other_generation = false, other_format = false;
	int64_t lag = 0;
	mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
	if (!s || mv_store_index_staleness(s, &other_generation, &other_format, &err) < 0 ||
	    mv_store_index_lag_in(s, NULL, &lag, &err) < 0) {
		char *why = g_strdup_printf("whether its index lacks messages is unknown (%s)", err->message);
		g_error_free(err);
		mv_store_close(&s);
		return why;
	}
	mv_store_close(&s);
	/* An index of an older format alone is read rightly as it is: the
	 * bring-up would rebuild it whole (minutes at a million messages),
	 * which UpgradeStores is for.  One of another generation answers with
	 * other messages. */
	if (other_generation)
		return g_strdup("its index describes another state of the store");
	return lag > 0 ? g_strdup_printf("its index lacks %lld messages", (long long)lag) : NULL;
}

static int bring_up(mv_command_ctx *ctx, const mv_archive_store *info, const char *why, GError **error)
{
	mv_command_log(ctx, "store %d (%s): %s, so the export brings it up to date before it searches", info->id,
	               info->name, why);
	mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_WRITE, error);
	if (!s)
		return -1;
	mv_task task = { .progress = ctx->progress, .opaque = ctx->progress_opaque, .cancel = ctx->cancel };
	int rc = mv_store_index_bring_up(s, &task, error);
	mv_store_close(&s);
	return rc;
}

int export_index_everything(mv_command_ctx *ctx, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return -1;
	int rc = 0;
	for (guint i = 0; i < infos->len && rc == 0; i++) {
		const mv_archive_store *info = infos->pdata[i];
		/* The stores a search reads (search.c, mv_searcher_open). */
		if (strcmp(info->state, "disabled") == 0 || info->error || info->locked)
			continue;
		char *why = index_behind(ctx->inst, info->id);
		GError *err = NULL;
		int brought = why ? bring_up(ctx, info, why, &err) : 0;
		g_free(why);
		if (brought == 0)
			continue;
		if (g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED)) {
			g_propagate_error(error, err);
			rc = -1;
			break;
		}
		mv_command_log(ctx, "store %d (%s): its index could not be brought up to date, so the export searches "
		               "it as it is: %s", info->id, info->name, err->message);
		g_error_free(err);
	}
	g_ptr_array_free(infos, TRUE);
	return rc;
}
