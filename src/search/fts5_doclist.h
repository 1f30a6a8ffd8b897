/* Reading FTS5's own records: the structure (which segments there are, in
 * what age), the averages (rows and tokens) and one term's doclist in one
 * segment (fts5_doclist.c). */
#ifndef MV_SEARCH_FTS5_DOCLIST_H
#define MV_SEARCH_FTS5_DOCLIST_H

#include "base/base.h"

/* The %_data rows of the averages and the structure records. */
#define MV_FTS5_AVERAGES_ROWID 1
#define MV_FTS5_STRUCTURE_ROWID 10

typedef struct mv_fts5_segment {
	int segid;
	int64_t first_page, last_page;
} mv_fts5_segment;

/* The segments of a structure record appended to `segments` (of
 * mv_fts5_segment), newest first: FTS5 answers a rowid from the newest
 * segment that holds it.  0 when read, 1 for a V2 record (contentless_delete
 * tables, whose tombstones this reader does not know), -1 when damaged. */
int mv_fts5_structure_read(const uint8_t *rec, size_t n, GArray *segments);

/* The averages record of a table of `columns` columns: its rows and the
 * tokens of every column together.  False when damaged. */
bool mv_fts5_averages_read(const uint8_t *rec, size_t n, int columns, int64_t *rows_r, int64_t *tokens_r);

/* Hands out page `page` of the segment being read: 1 with its bytes (valid
 * until the next call), 0 when there is no such page, -1 on a read error. */
typedef int (*mv_fts5_page_fn)(void *opaque, int64_t page, const uint8_t **bytes_r, size_t *n_r);

/* One document of a doclist: its position list, or none with `deleted`
 * for a delete marker (a newer segment's entry hides an older one's). */
typedef void (*mv_fts5_entry_fn)(void *opaque, int64_t rowid, bool deleted, const uint8_t *poslist, size_t n);

/* Walks the doclist of `term` (the index's prefix byte first) from leaf
 * `page`, where %_idx says it would begin, through the following leaves, up
 * to last_page.  1 when walked, 0 when the term is not on that leaf, -1
 * when a page is not what FTS5 writes, -2 when page_fn failed. */
int mv_fts5_doclist_read(const uint8_t *term, size_t len, int64_t page, int64_t last_page, mv_fts5_page_fn page_fn,
                         mv_fts5_entry_fn entry_fn, void *opaque);

/* A position list's positions in the columns of count_cols (bit i = column
 * i) and whether any lies in those of match_cols.  False when damaged. */
bool mv_fts5_poslist_count(const uint8_t *p, size_t n, uint64_t match_cols, uint64_t count_cols, uint32_t *count_r,
                           bool *match_r);

#endif
