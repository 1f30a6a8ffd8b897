/* search/fts5_leaf: the terms of an FTS5 leaf page, read from its bytes.
 *
 * prefix_terms.c needs the words a prefix stands for, and only the words:
 * FTS5's fts5vocab walks every doclist of them to count documents (~7 ms
 * for `cerk*` at a million messages, more than the query it serves).  A
 * word begins on exactly one leaf of each segment, and its term is written
 * there, so the leaves where words begin, read as bytes, give the words
 * without their doclists.
 *
 * The layout (SQLite's ext/fts5/fts5_index.c, stable since FTS5 format 4):
 * a leaf starts with two big-endian 16-bit offsets, the first rowid's and
 * the footer's (szLeaf); the footer is a varint per term beginning on the
 * page, each the term's offset less the previous one's.  At a term's offset:
 * the first term of the page is a varint length and its bytes, every later
 * one a varint of bytes kept from the term before it, a varint of new bytes
 * and those bytes.  Varints are SQLite's (big-endian groups of 7 bits, the
 * ninth byte whole).
 *
 * The page comes from disk, so nothing is trusted: every offset and length
 * is checked against the page before use, the walk always moves forward,
 * and a term never outgrows the page. */
#include "search/fts5_leaf.h"

/* No term of a well-formed leaf is longer than the leaf's body can be
 * (szLeaf is 16 bits): a bound on what a damaged page can make us build. */
#define MAX_TERM_BYTES 65535

bool mv_fts5_get_varint(const uint8_t *p, size_t limit, size_t *at, uint64_t *v_r)
{
	uint64_t v = 0;
	for (int i = 0; i < 9; i++) {
		if (*at >= limit)
			return false;
		uint8_t b = p[(*at)++];
		if (i == 8) {
			v = (v << 8) | b;
			break;
		}
		v = (v << 7) | (b & 0x7f);
		if (!(b & 0x80))
			break;
	}
	*v_r = v;
	return true;
}

/* A varint that must fit 32 bits (FTS5 writes none larger in a leaf's
 * terms and footer). */
static bool get_varint32(const uint8_t *p, size_t limit, size_t *at, uint32_t *v_r)
{
	uint64_t v;
	if (!mv_fts5_get_varint(p, limit, at, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

bool mv_fts5_leaf_header(const uint8_t *leaf, size_t n, size_t *first_rowid_r, size_t *sz_leaf_r)
{
	if (n < 4)
		return false;
	size_t first_rowid = ((size_t)leaf[0] << 8) | leaf[1];
	size_t sz_leaf = ((size_t)leaf[2] << 8) | leaf[3];
	if (sz_leaf < 4 || sz_leaf > n || (first_rowid && (first_rowid < 4 || first_rowid >= sz_leaf)))
		return false;
	*first_rowid_r = first_rowid;
	*sz_leaf_r = sz_leaf;
	return true;
}

/* The offset of the term after the one at term_off, from the footer's next
 * varint (without moving past it), or sz_leaf when there is none. */
static bool next_term_offset(const uint8_t *leaf, size_t n, size_t footer, size_t term_off, size_t sz_leaf,
                             size_t *next_r)
{
	uint32_t delta;
	if (footer >= n) {
		*next_r = sz_leaf;
		return true;
	}
	if (!get_varint32(leaf, n, &footer, &delta) || delta == 0 || delta > sz_leaf - term_off)
		return false;
	*next_r = term_off + delta;
	return true;
}

int mv_fts5_leaf_walk(const uint8_t *leaf, size_t n, mv_fts5_leaf_term_fn fn, void *opaque)
{
	size_t first_rowid, sz_leaf;
	if (!mv_fts5_leaf_header(leaf, n, &first_rowid, &sz_leaf))
		return -1;
	if (sz_leaf == n)
		return 0;   /* no term begins here: the page continues a doclist */
	GByteArray *term = g_byte_array_sized_new(64);
	size_t footer = sz_leaf, term_off = 0;
	int rc = 0;
	for (bool first = true; footer < n; first = false) {
		uint32_t delta, keep = 0, fresh;
		if (!get_varint32(leaf, n, &footer, &delta) || (!first && delta == 0) || delta > sz_leaf - term_off) {
			rc = -1;
			break;
		}
		term_off += delta;
		size_t at = term_off, end;
		if (term_off < 4 || (first_rowid && first_rowid >= term_off) ||
		    (!first && !get_varint32(leaf, sz_leaf, &at, &keep)) ||
		    !get_varint32(leaf, sz_leaf, &at, &fresh) || keep > term->len || fresh == 0 ||
		    fresh > sz_leaf - at || (size_t)keep + fresh > MAX_TERM_BYTES ||
		    !next_term_offset(leaf, n, footer, term_off, sz_leaf, &end) || end < at + fresh) {
			rc = -1;
			break;
		}
		g_byte_array_set_size(term, keep);
		g_byte_array_append(term, leaf + at, fresh);
		mv_fts5_leaf_term t = { term->data, term->len, at + fresh, end };
		if (!fn(opaque, &t))
			break;
	}
	g_byte_array_free(term, TRUE);
	return rc;
}

typedef struct terms_only {
	mv_fts5_term_fn fn;
	void *opaque;
} terms_only;

static bool term_only(void *opaque, const mv_fts5_leaf_term *t)
{
	terms_only *o = opaque;
	return o->fn(o->opaque, t->term, t->len);
}

int mv_fts5_leaf_terms(const uint8_t *leaf, size_t n, mv_fts5_term_fn fn, void *opaque)
{
	terms_only o = { fn, opaque };
	return mv_fts5_leaf_walk(leaf, n, term_only, &o);
}
