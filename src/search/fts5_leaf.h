/* Reading FTS5's own segments: the terms of a leaf page (fts5_leaf.c). */
#ifndef MV_SEARCH_FTS5_LEAF_H
#define MV_SEARCH_FTS5_LEAF_H

#include "base/base.h"

/* Every segment id of the fts table of schema %s (both %s are the schema:
 * "ix." or ""), one b-tree seek each on its %_idx. */
#define MV_FTS5_SEGMENTS_SQL                                                                              \
	"WITH RECURSIVE seg(id) AS (SELECT min(segid) FROM %sfts_idx"                                      \
	" UNION ALL SELECT (SELECT min(segid) FROM %sfts_idx WHERE segid > seg.id) FROM seg WHERE seg.id IS NOT NULL)" \
	" SELECT id FROM seg WHERE id IS NOT NULL"

/* The byte FTS5 puts before the main index's terms (prefix indexes have
 * others; the store's index has none). */
#define MV_FTS5_MAIN_PREFIX '0'

/* A segment's leaf page is the %_data row (segid << 37) + page. */
#define MV_FTS5_LEAF_ROWID(segid, page) (((int64_t)(segid) << 37) + (int64_t)(page))

/* Called with each term that begins on a leaf page, whole (the index's
 * prefix byte first), in order; returns false to stop. */
typedef bool (*mv_fts5_term_fn)(void *opaque, const uint8_t *term, size_t len);

/* Walks the terms that begin on the leaf page `leaf` of n bytes: 0 when
 * done (or stopped), -1 when the page is not a well-formed leaf. */
int mv_fts5_leaf_terms(const uint8_t *leaf, size_t n, mv_fts5_term_fn fn, void *opaque);

#endif
