/* What a prefix query costs the index before it runs (prefix_cost.c). */
#ifndef MV_SEARCH_PREFIX_COST_H
#define MV_SEARCH_PREFIX_COST_H

#include "base/base.h"

#include <sqlite3.h>

/* An upper bound on the bytes of term lists FTS5 merges in memory to answer
 * `text*` on the fts table of `schema` ("ix." or ""): the leaf pages that
 * hold the terms beginning with text's last token, folded as the index
 * folds it.  0 when text has no token. */
int mv_prefix_index_bytes(sqlite3 *db, const char *schema, const char *text, int64_t *bytes_r, GError **error);

/* The key FTS5 expands for `text*`: the last token of text as the index's
 * tokenizer folds it ("" when text has none); *tokens_r (when not NULL) is
 * how many tokens text makes, more than one being a phrase. */
int mv_prefix_key(sqlite3 *db, const char *text, GString *key, int *tokens_r, GError **error);

/* The smallest key greater than every key beginning with `lo`, or an
 * empty string when none is (lo is all 0xff bytes, which UTF-8 never is). */
GString *mv_prefix_past(const GString *lo);

#endif
