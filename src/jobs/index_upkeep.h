/* The index work the server does in the background (index_upkeep.c). */
#ifndef MV_JOBS_INDEX_UPKEEP_H
#define MV_JOBS_INDEX_UPKEEP_H

#include "archive/archive.h"

/* Ids (int) of the current stores whose index a writer with a bounded
 * wait would leave to the background (mv_store_index_needs_upkeep); NULL
 * with *error when the stores cannot be listed.  A store that cannot be
 * opened is left out. */
GArray *mv_index_upkeep_stores(mv_instance *inst, GError **error);
/* The store's index rebuilt or caught up (mv_store_index_bring_up), on the
 * caller's thread and instance; *cancel stops it between chunks with
 * MV_ERR_CANCELLED, what is indexed kept. */
int mv_index_upkeep_run(mv_instance *inst, int store_id, volatile gint *cancel, GError **error);

#endif
