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

/* A term that begins on a leaf, and where its doclist lies on the page:
 * [doclist, end), end being the next term's offset or the footer's. */
typedef struct mv_fts5_leaf_term {
	const uint8_t *term;
	size_t len;
	size_t doclist, end;
} mv_fts5_leaf_term;

typedef bool (*mv_fts5_leaf_term_fn)(void *opaque, const mv_fts5_leaf_term *t);

/* mv_fts5_leaf_terms with each term's doclist span. */
int mv_fts5_leaf_walk(const uint8_t *leaf, size_t n, mv_fts5_leaf_term_fn fn, void *opaque);

/* A leaf's header: the offset of its first rowid when one comes before any
 * term (else 0) and of its footer (szLeaf); false when they cannot be. */
bool mv_fts5_leaf_header(const uint8_t *leaf, size_t n, size_t *first_rowid_r, size_t *sz_leaf_r);

/* SQLite's varint at p[*at], ending before p[limit]; false when it runs past. */
bool mv_fts5_get_varint(const uint8_t *p, size_t limit, size_t *at, uint64_t *v_r);

#endif
