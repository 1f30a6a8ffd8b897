/* search/fts5_doclist: FTS5's structure and averages records and a term's
 * doclist, read from their bytes.
 *
 * A relevance search of one word scores every document holding it, and
 * FTS5 costs ~0.6 us a hit just to hand each row through its cursor, before
 * bm25 (106 ms for the 180,000 hits of a common word at a million
 * messages).  term_rank.c scores from the doclists themselves; this file
 * reads them.  The layout is SQLite's ext/fts5/fts5_index.c (stable since
 * FTS5 format 4; fts5_leaf.c has the leaf's header, footer and terms):
 *
 * - the structure record: a 4-byte cookie, then varints: levels, segments,
 *   write counter, and per level its merge inputs, its segment count and
 *   per segment (oldest first) id, first and last leaf.  A V2 record (after
 *   the cookie, FF 00 00 01) belongs to a contentless_delete table, whose
 *   tombstones are not read here: the caller leaves such a table to FTS5.
 * - the averages record: varints, rows and then each column's tokens.
 * - a doclist: after its term, the first rowid, then per document a varint
 *   of the position list's bytes times two plus a delete flag, the list,
 *   and the next rowid as a delta.  It may run on over the following
 *   leaves: a page's first rowid before any term is written whole and its
 *   offset is in the page's header; the bytes before it finish the position
 *   list the previous page began.  The doclist ends where a term begins.
 * - a position list: varints of position + 2 (delta coded) for column 0,
 *   then for each further column the byte 0x01, the column's number and its
 *   positions.
 *
 * The index is a file on disk: every offset and length is checked against
 * its page, the walk only moves forward and ends at the segment's last leaf,
 * and anything FTS5 would not have written makes the reader give up (-1),
 * so that the caller can leave the query to FTS5. */
#include "search/fts5_doclist.h"
#include "search/fts5_leaf.h"

#include <string.h>

/* FTS5's own bounds (fts5_index.c): levels and segments of a structure. */
#define MAX_LEVELS 64
#define MAX_SEGMENTS 2000
#define MAX_SEGID 65535
/* No position list FTS5 writes comes near this: a bound on what a damaged
 * size can make the reader gather across pages. */
#define MAX_POSLIST_BYTES (64u << 20)

static const uint8_t structure_v2[4] = { 0xff, 0x00, 0x00, 0x01 };

int mv_fts5_structure_read(const uint8_t *rec, size_t n, GArray *segments)
{
	if (n >= 8 && memcmp(rec + 4, structure_v2, 4) == 0)
		return 1;
	size_t at = 4;
	uint64_t levels, total, counter;
	if (n < 4 || !mv_fts5_get_varint(rec, n, &at, &levels) || !mv_fts5_get_varint(rec, n, &at, &total) ||
	    !mv_fts5_get_varint(rec, n, &at, &counter) || levels > MAX_LEVELS || total > MAX_SEGMENTS)
		return -1;
	guint first = segments->len;
	uint64_t seen = 0;
	for (uint64_t level = 0; level < levels; level++) {
		uint64_t merging, count;
		if (!mv_fts5_get_varint(rec, n, &at, &merging) || !mv_fts5_get_varint(rec, n, &at, &count) ||
		    merging > count || count > total - seen)
			goto damaged;
		guint level_start = segments->len;
		for (uint64_t i = 0; i < count; i++) {
			uint64_t id, first_page, last_page;
			if (!mv_fts5_get_varint(rec, n, &at, &id) || !mv_fts5_get_varint(rec, n, &at, &first_page) ||
			    !mv_fts5_get_varint(rec, n, &at, &last_page) || id == 0 || id > MAX_SEGID ||
			    first_page > INT32_MAX || last_page > INT32_MAX)
				goto damaged;
			mv_fts5_segment seg = { (int)id, (int64_t)first_page, (int64_t)last_page };
			/* oldest first in the record, newest first out */
			g_array_insert_val(segments, level_start, seg);
		}
		seen += count;
	}
	if (seen != total)
		goto damaged;
	return 0;
damaged:
	g_array_set_size(segments, first);
	return -1;
}

bool mv_fts5_averages_read(const uint8_t *rec, size_t n, int columns, int64_t *rows_r, int64_t *tokens_r)
{
	size_t at = 0;
	uint64_t rows, tokens = 0;
	if (!mv_fts5_get_varint(rec, n, &at, &rows) || rows > INT64_MAX)
		return false;
	for (int c = 0; c < columns; c++) {
		uint64_t col;
		if (!mv_fts5_get_varint(rec, n, &at, &col) || col > (uint64_t)INT64_MAX - tokens)
			return false;
		tokens += col;
	}
	*rows_r = (int64_t)rows;
	*tokens_r = (int64_t)tokens;
	return true;
}

bool mv_fts5_poslist_count(const uint8_t *p, size_t n, uint64_t match_cols, uint64_t count_cols, uint32_t *count_r,
                           bool *match_r)
{
	uint64_t col = 0;
	uint32_t count = 0;
	bool match = false;
	for (size_t at = 0; at < n;) {
		uint64_t v;
		if (!mv_fts5_get_varint(p, n, &at, &v) || v == 0)
			return false;
		if (v == 1) {
			if (!mv_fts5_get_varint(p, n, &at, &col) || col >= 64)
				return false;
			continue;
		}
		uint64_t bit = UINT64_C(1) << col;
		match = match || (match_cols & bit);
		count += (count_cols & bit) != 0;
	}
	*count_r = count;
	*match_r = match;
	return true;
}

/* ---- a doclist across pages ----------------------------------------------------- */

typedef struct doclist_walk {
	mv_fts5_page_fn page_fn;
	mv_fts5_entry_fn entry_fn;
	void *opaque;
	int64_t rowid;
	bool any;           /* a rowid was read: the next must be greater */
	bool deleted;
	uint64_t owed;      /* bytes of the current position list still on later pages */
	GByteArray *spill;  /* what earlier pages had of it */
} doclist_walk;

/* The entries in [at, end) of a page; the first rowid is written whole
 * when `whole`.  -1 when damaged. */
static int read_entries(doclist_walk *w, const uint8_t *p, size_t at, size_t end, bool whole)
{
	while (at < end) {
		uint64_t v, size;
		if (!mv_fts5_get_varint(p, end, &at, &v))
			return -1;
		if (whole) {
			/* the store's rowids are never negative; a page's first is
			 * written whole, and still follows the page before */
			if (v > INT64_MAX || (w->any && (int64_t)v <= w->rowid))
				return -1;
			w->rowid = (int64_t)v;
			w->any = true;
			whole = false;
		} else {
			if (v == 0 || v > (uint64_t)(INT64_MAX - w->rowid))
				return -1;
			w->rowid += (int64_t)v;
		}
		if (!mv_fts5_get_varint(p, end, &at, &size) || (size >> 1) > MAX_POSLIST_BYTES)
			return -1;
		uint64_t bytes = size >> 1;
		w->deleted = size & 1;
		if (bytes <= end - at) {
			w->entry_fn(w->opaque, w->rowid, w->deleted, p + at, (size_t)bytes);
			at += (size_t)bytes;
			continue;
		}
		g_byte_array_set_size(w->spill, 0);
		g_byte_array_append(w->spill, p + at, (guint)(end - at));
		w->owed = bytes - (end - at);
		at = end;
	}
	return 0;
}

/* The offset of the first term on a page, or 0 when none begins there. */
static bool first_term(const uint8_t *p, size_t n, size_t sz_leaf, size_t *term_r)
{
	size_t at = sz_leaf;
	uint64_t off = 0;
	if (at < n && (!mv_fts5_get_varint(p, n, &at, &off) || off < 4 || off > sz_leaf))
		return false;
	*term_r = (size_t)off;
	return true;
}

/* A page after the first: the rest of a position list, then rowids up to
 * the first term.  1 when the doclist goes on to the next page, 0 when it
 * ended here, -1 when damaged. */
static int read_next_page(doclist_walk *w, const uint8_t *p, size_t n)
{
	size_t rowid_at, sz_leaf, term_at;
	if (!mv_fts5_leaf_header(p, n, &rowid_at, &sz_leaf) || !first_term(p, n, sz_leaf, &term_at))
		return -1;
	size_t end = term_at ? term_at : sz_leaf;
	size_t rest = (rowid_at ? rowid_at : end) - 4;   /* bytes before the first rowid or term */
	if (w->owed) {
		if (rest > w->owed || (rest < w->owed && (rowid_at || term_at)))
			return -1;
		g_byte_array_append(w->spill, p + 4, (guint)rest);
		w->owed -= rest;
		if (w->owed == 0)
			w->entry_fn(w->opaque, w->rowid, w->deleted, w->spill->data, w->spill->len);
	} else if (rest) {
		return -1;   /* bytes that are neither a position list's end nor a rowid */
	}
	if (rowid_at && read_entries(w, p, rowid_at, end, true) < 0)
		return -1;
	if (term_at)
		return w->owed ? -1 : 0;
	return 1;
}

typedef struct find_term {
	const uint8_t *term;
	size_t len;
	bool found;
	size_t doclist, end;
} find_term;

static bool match_term(void *opaque, const mv_fts5_leaf_term *t)
{
	find_term *f = opaque;
	int cmp = memcmp(t->term, f->term, MIN(t->len, f->len));
	if (cmp == 0)
		cmp = t->len < f->len ? -1 : t->len > f->len;
	if (cmp == 0) {
		f->found = true;
		f->doclist = t->doclist;
		f->end = t->end;
	}
	return cmp < 0;   /* terms are in order: past it, it is not here */
}

int mv_fts5_doclist_read(const uint8_t *term, size_t len, int64_t page, int64_t last_page, mv_fts5_page_fn page_fn,
                         mv_fts5_entry_fn entry_fn, void *opaque)
{
	const uint8_t *p;
	size_t n, rowid_at, sz_leaf;
	int got = page_fn(opaque, page, &p, &n);
	if (got <= 0)
		return got < 0 ? -2 : 0;
	find_term f = { term, len, false, 0, 0 };
	if (!mv_fts5_leaf_header(p, n, &rowid_at, &sz_leaf) || mv_fts5_leaf_walk(p, n, match_term, &f) < 0)
		return -1;
	if (!f.found)
		return 0;
	doclist_walk w = { page_fn, entry_fn, opaque, 0, false, false, 0, g_byte_array_new() };
	int rc = read_entries(&w, p, f.doclist, f.end, true) < 0 ? -1 : f.end < sz_leaf ? 0 : 1;
	while (rc == 1) {
		if (++page > last_page) {
			rc = w.owed ? -1 : 0;
			break;
		}
		got = page_fn(opaque, page, &p, &n);
		if (got <= 0) {
			rc = got < 0 ? -2 : w.owed ? -1 : 0;
			break;
		}
		rc = read_next_page(&w, p, n);
	}
	if (rc == 0 && w.owed)
		rc = -1;
	g_byte_array_free(w.spill, TRUE);
	return rc < 0 ? rc : 1;
}
