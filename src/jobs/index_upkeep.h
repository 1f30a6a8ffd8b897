/* The stores whose index the server rebuilds in the background (index_upkeep.c). */
#ifndef MV_JOBS_INDEX_UPKEEP_H
#define MV_JOBS_INDEX_UPKEEP_H

#include "archive/archive.h"

/* Ids (int) of the current stores whose index must be rebuilt before they
 * are written again (mv_store_index_stale); NULL with *error when the
 * stores cannot be listed.  A store that cannot be opened is left out. */
GArray *mv_index_upkeep_stores(mv_instance *inst, GError **error);

#endif
