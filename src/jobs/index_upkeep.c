/* jobs/index_upkeep: the index work the server does by itself.
 *
 * A build with a newer index format, or an index of another generation
 * than its db, leaves a store's index to be rebuilt by the store's next
 * writer; a rebuild stopped part way (the server stopped) leaves it to be
 * caught up.  A writer that answers someone who can come back later (SMTP)
 * does neither inline — minutes at a million messages, with every sender
 * waiting — but fails as if the store were locked (store.h,
 * mv_store_set_lock_wait): so the scheduler looks for such stores and does
 * it in the background, and SMTP answers 451 until then.  It is what every
 * writer's lock does, not an administrator's function: it re-checks under
 * the lock, so after a RebuildStoreIndex or UpgradeStores of the same store
 * it does nothing.  Only current stores: the server's own sources write
 * nothing else, and an older store's index is read as it is until
 * UpgradeStores. */
#include "jobs/index_upkeep.h"

#include <string.h>

static bool upkeep_needed(mv_instance *inst, int store_id)
{
	GError *err = NULL;
	bool needed = false;
	mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
	if (!s || mv_store_index_needs_upkeep(s, &needed, &err) < 0) {
		mv_log_debug("store %d: its index was not looked at: %s", store_id, err->message);
		g_error_free(err);
		needed = false;
	}
	mv_store_close(&s);
	return needed;
}

GArray *mv_index_upkeep_stores(mv_instance *inst, GError **error)
{
	GPtrArray *stores = mv_instance_stores(inst, error);
	if (!stores)
		return NULL;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(int));
	for (guint i = 0; i < stores->len; i++) {
		const mv_archive_store *info = stores->pdata[i];
		if (!info->error && !info->locked && strcmp(info->state, "current") == 0 && upkeep_needed(inst, info->id))
			g_array_append_val(ids, info->id);
	}
	g_ptr_array_unref(stores);
	return ids;
}

int mv_index_upkeep_run(mv_instance *inst, int store_id, volatile gint *cancel, GError **error)
{
	mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_WRITE, error);
	if (!s)
		return -1;
	mv_task task = { .cancel = cancel };
	int rc = mv_store_index_bring_up(s, &task, error);
	mv_store_close(&s);
	return rc;
}
