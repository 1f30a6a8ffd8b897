/* The words a prefix stands for in one index (prefix_terms.c). */
#ifndef MV_SEARCH_PREFIX_TERMS_H
#define MV_SEARCH_PREFIX_TERMS_H

#include "base/base.h"

#include <sqlite3.h>

/* The terms of the fts table of `schema` ("ix." or "") that begin with
 * `key` (a folded token, mv_prefix_key), in term order, as a new array of
 * strings; NULL in *terms_r when there are more than max_terms. */
int mv_prefix_terms(sqlite3 *db, const char *schema, const GString *key, guint max_terms, GPtrArray **terms_r,
                    GError **error);

#endif
