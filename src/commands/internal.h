/* commands/internal.h: what the registry's invocation (registry.c) lends
 * the streamed invocation (stream.c), so that both write the same envelope
 * and the same audit entry.  Internal to commands/. */
#ifndef MV_COMMANDS_INTERNAL_H
#define MV_COMMANDS_INTERNAL_H

#include "commands/commands.h"

/* A JSON string of text that may not be UTF-8 (made valid, never lost). */
json_t *mv_command_text_value(const char *s);
/* The envelope of design.md §9; takes error and result. */
json_t *mv_command_envelope(const char *status, json_t *error, json_t *result, const char *log);
/* "cancelled" for a cancelled call, else "failed". */
const char *mv_command_failed_status(const GError *err);
/* The envelope's error member {"message","details"} for err. */
json_t *mv_command_error_value(const GError *err);
/* The audit entry of a call whose outcome is known (err NULL: succeeded). */
void mv_command_audit_outcome(const mv_command *cmd, mv_command_ctx *ctx, json_t *args, const GError *err);

#endif
