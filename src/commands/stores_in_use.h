/* commands/stores_in_use.h: the stores a reading function reads — not
 * disabled, their files readable now (stores_in_use.c).  Internal to
 * commands/. */
#ifndef MV_COMMANDS_STORES_IN_USE_H
#define MV_COMMANDS_STORES_IN_USE_H

#include "commands/commands.h"

/* The ids of the stores in use, in the registry's order; with log_skipped
 * each store left out for an error says so in the call's logOutput. */
GArray *mv_store_ids_in_use(mv_command_ctx *ctx, bool log_skipped, GError **error);
/* Hands fn each store in use, opened for reading, until fn returns
 * nonzero: that value (-1 with *error when fn failed), or -1 when a store
 * cannot be opened, or 0 when every store said 0. */
typedef int (*mv_store_visit_fn)(mv_command_ctx *ctx, mv_store *s, void *opaque, GError **error);
int mv_each_store_in_use(mv_command_ctx *ctx, mv_store_visit_fn fn, void *opaque, GError **error);

#endif
