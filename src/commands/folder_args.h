/* commands/folder_args.h: the rules the folder and message functions share
 * (folder_args.c).  Internal to commands/. */
#ifndef MV_COMMANDS_FOLDER_ARGS_H
#define MV_COMMANDS_FOLDER_ARGS_H

#include "commands/commands.h"

/* What one answer of GetMessages or SearchMessages holds at most when the
 * caller asks for "all" (limit 0): beyond it the call is refused, never cut
 * short without a word. */
#define MV_MAX_ANSWER_MESSAGES 10000

/* Splits "archive/path" (no leading or trailing slash, no empty
 * component), in NFC; arg names the argument in the error. */
bool mv_folder_split(const char *name, const char *arg, char **archive_r, char **path_r, GError **error);
/* "archive/path", or "archive" for the root (g_free). */
char *mv_folder_full_name(const char *archive, const char *path);
/* The caller's rights (MV_FOLDER_* bits) on archive/path, or on a full name. */
unsigned mv_folder_rights(mv_command_ctx *ctx, const char *archive, const char *path);
unsigned mv_folder_rights_by_name(mv_command_ctx *ctx, const char *name);
/* Whether the caller has every right in needed on name; else MV_ERR_DENIED
 * naming the function, the user and what (e.g. "write"). */
bool mv_folder_require_rights(mv_command_ctx *ctx, const char *function, const char *name, unsigned needed,
                              const char *what, GError **error);
/* The one answer for a folder the caller may not see (MV_ERR_NOT_FOUND). */
void mv_folder_not_found(const char *function, const char *name, GError **error);
/* Whether a store in use has the folder or one below it: 1, 0, -1. */
int mv_folder_exists(mv_command_ctx *ctx, const char *archive, const char *path, GError **error);
/* A folder named as an argument that exists and the caller may read, else
 * the "does not exist" answer; by parts or by its full name. */
bool mv_folder_readable(mv_command_ctx *ctx, const char *function, const char *archive, const char *path,
                        const char *name, GError **error);
bool mv_folder_readable_by_name(mv_command_ctx *ctx, const char *function, const char *name, GError **error);
/* limit 0 (all) to MV_MAX_ANSWER_MESSAGES and offset 0 to the same, else
 * MV_ERR_INVALID naming the function and the value. */
bool mv_answer_paging_check(const char *function, int64_t offset, int64_t limit, GError **error);

#endif
