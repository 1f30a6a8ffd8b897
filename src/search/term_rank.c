/* search/term_rank: the best bm25 scores of a query of phrases — words,
 * addresses' tokens, the words a one-word prefix stands for — alone or
 * joined by AND or OR (within a restricted caller's scope tokens, if any),
 * read from the index's own doclists.
 *
 * Relevance must score every document holding the words before it knows
 * the best ten.  Through FTS5 each hit costs a pass through its cursor and a
 * b-tree lookup of the document's length: 270 ms for a word in 180,000 of a
 * million messages, against a target of 50 ms at p95 (bench/RESULTS.md,
 * issue 17).  Here the word's doclist is read from each segment's leaves
 * (fts5_doclist.c), newest segment first as FTS5 resolves a document held
 * by several, and the documents' lengths come from a copy of fts_docsize
 * kept with the reader's handle between searches.
 *
 * The scores are FTS5's own, to the bit: the same formula in the same order
 * of operations over the same integers (fts5_aux.c, fts5Bm25Function; k1 =
 * 1.2, b = 0.75), with the averages record's rows and tokens, the word's
 * document count over the whole table for the IDF, and each document's
 * tokens over all columns.  tests/unit/test_term_rank.c holds it to FTS5's
 * bm25 over many segments, merges, deletes and rewrites.
 *
 * Everything is read inside one read transaction: a merge committed
 * between two reads could reuse a segment id.  The copy of the lengths is
 * keyed by the structure and averages records, which every committed write
 * to the index changes (FTS5 flushes its pending terms at each commit); a
 * stale copy is read again only when the query's hits would cost more in
 * single lookups than the whole table in one scan. */
#include "search/term_rank.h"
#include "search/fts5_doclist.h"
#include "search/fts5_leaf.h"

#include <math.h>
#include <string.h>

/* FTS5's bm25 constants (fts5_aux.c). */
static const double K1 = 1.2;
static const double B = 0.75;

/* A copy of the lengths costs 12 bytes a document: up to 48 MB. */
#define MAX_CACHED_DOCS (4 * 1000 * 1000)
/* A length read alone costs about what eight read in a scan of them all. */
#define LOOKUP_VS_SCAN 8
/* Below this many documents the whole scan is a few ms: always cached. */
#define SMALL_INDEX 20000
/* Entries read (16 bytes each, held twice while merged), over all of a
 * query's lists, past which the query goes to FTS5, which walks them in
 * constant memory: 64 MB at most, whatever the number of phrases (a word in
 * every message of a 2-million-message store, or eight words in a quarter
 * of them each). */
#define MAX_ENTRIES (2u * 1000 * 1000)
static guint max_entries = MAX_ENTRIES;

void mv_term_rank_set_max_entries(guint entries)
{
	max_entries = entries ? entries : MAX_ENTRIES;
}

/* ---- the documents' lengths ------------------------------------------------------- */

typedef struct doc_lengths {
	GBytes *key;      /* the structure and averages records they were read under */
	GArray *ids;      /* int64_t, ascending */
	GArray *lens;     /* uint32_t, tokens over all columns */
} doc_lengths;

static void doc_lengths_free(doc_lengths *l)
{
	if (!l)
		return;
	if (l->key)
		g_bytes_unref(l->key);
	if (l->ids)
		g_array_free(l->ids, TRUE);
	if (l->lens)
		g_array_free(l->lens, TRUE);
	g_free(l);
}

/* A document's tokens over all columns, from its fts_docsize blob: a
 * varint per column, as FTS5's xColumnSize(-1) sums them. */
static bool length_of_blob(const uint8_t *sz, size_t n, int columns, uint32_t *len_r)
{
	size_t at = 0;
	uint64_t sum = 0;
	for (int c = 0; c < columns; c++) {
		uint64_t v;
		if (!mv_fts5_get_varint(sz, n, &at, &v) || v > INT32_MAX || (sum += v) > INT32_MAX)
			return false;
	}
	*len_r = (uint32_t)sum;
	return true;
}

/* -1 on an SQL error, 0 when read, 1 when a row is not what FTS5 writes. */
static int lengths_load(sqlite3 *db, int columns, int64_t rows, doc_lengths *l)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT id, sz FROM ix.fts_docsize", -1, &st, NULL) != SQLITE_OK)
		return -1;
	guint hint = (guint)MIN(rows, MAX_CACHED_DOCS);
	l->ids = g_array_sized_new(FALSE, FALSE, sizeof(int64_t), hint);
	l->lens = g_array_sized_new(FALSE, FALSE, sizeof(uint32_t), hint);
	int rc, bad = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		uint32_t len;
		const uint8_t *sz = sqlite3_column_blob(st, 1);
		if ((l->ids->len && id <= g_array_index(l->ids, int64_t, l->ids->len - 1)) ||
		    !length_of_blob(sz, (size_t)sqlite3_column_bytes(st, 1), columns, &len)) {
			bad = 1;
			break;
		}
		g_array_append_val(l->ids, id);
		g_array_append_val(l->lens, len);
	}
	sqlite3_finalize(st);
	if (bad)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The length of document id, the cursor moving forward through the
 * ascending ids by doubling steps: the hits come in rowid order too. */
static bool cached_length(const doc_lengths *l, guint *cursor, int64_t id, uint32_t *len_r)
{
	const int64_t *ids = (const int64_t *)(void *)l->ids->data;
	guint n = l->ids->len, lo = *cursor, step = 1, hi = lo;
	while (hi < n && ids[hi] < id) {
		lo = hi + 1;
		hi = lo + step - 1;
		step *= 2;
	}
	hi = hi < n ? hi + 1 : n;   /* ids[hi] >= id: the answer is in [lo, hi] */
	while (lo < hi) {   /* the first id >= id in [lo, hi) */
		guint mid = lo + (hi - lo) / 2;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*cursor = lo;
	if (lo >= n || ids[lo] != id)
		return false;
	*len_r = g_array_index(l->lens, uint32_t, lo);
	return true;
}

/* ---- the word's hits ---------------------------------------------------------------- */

typedef struct hit {
	int64_t rowid;
	uint32_t count;   /* positions in the weighed columns */
	uint16_t age;     /* the segment's place, newest 0 */
	uint8_t match;    /* a position in the asked columns: a hit */
	uint8_t pad;
} hit;

typedef struct reader {
	sqlite3_stmt *seek, *page;
	int64_t segid;
	uint16_t age;
	uint64_t match_cols, count_cols;
	GArray *run;      /* hit: this segment's entries */
	bool damaged;
	guint entries;    /* read so far: every list, word and segment of the query */
} reader;

static int fetch_page(void *opaque, int64_t page, const uint8_t **bytes_r, size_t *n_r)
{
	reader *r = opaque;
	sqlite3_reset(r->page);
	sqlite3_bind_int64(r->page, 1, MV_FTS5_LEAF_ROWID(r->segid, page));
	int rc = sqlite3_step(r->page);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return -1;
	*bytes_r = sqlite3_column_blob(r->page, 0);
	*n_r = *bytes_r ? (size_t)sqlite3_column_bytes(r->page, 0) : 0;
	return 1;
}

/* A delete marker has no positions: it hides the older segments' entry
 * and matches nothing.  A rewrite's entry has both the flag and positions. */
static void take_entry(void *opaque, int64_t rowid, bool deleted, const uint8_t *poslist, size_t n)
{
	reader *r = opaque;
	(void)deleted;
	if (++r->entries > max_entries)
		return;   /* word_hits gives up */
	hit h = { rowid, 0, r->age, 0, 0 };
	bool match = false;
	if (n && !mv_fts5_poslist_count(poslist, n, r->match_cols, r->count_cols, &h.count, &match))
		r->damaged = true;
	h.match = match;
	g_array_append_val(r->run, h);
}

/* a and b in rowid order into one; a document in both is taken from the
 * newer segment (`sum` false) or counted for both (`sum`: two words). */
static GArray *merge_runs(GArray *a, GArray *b, bool sum)
{
	GArray *out = g_array_sized_new(FALSE, FALSE, sizeof(hit), a->len + b->len);
	const hit *x = (const hit *)(void *)a->data, *y = (const hit *)(void *)b->data;
	guint i = 0, j = 0;
	while (i < a->len || j < b->len) {
		if (j >= b->len || (i < a->len && x[i].rowid < y[j].rowid)) {
			g_array_append_val(out, x[i]);
			i++;
		} else if (i >= a->len || y[j].rowid < x[i].rowid) {
			g_array_append_val(out, y[j]);
			j++;
		} else {
			hit h = x[i].age <= y[j].age ? x[i] : y[j];
			if (sum) {
				h.count = x[i].count + y[j].count;
				h.match = x[i].match || y[j].match;
			}
			g_array_append_val(out, h);
			i++;
			j++;
		}
	}
	g_array_free(a, TRUE);
	g_array_free(b, TRUE);
	return out;
}

/* The runs merged pairwise, as a merge sort's passes: each entry moves
 * log2(runs) times, not once per run. */
static GArray *merge_all(GPtrArray *runs, bool sum)
{
	if (runs->len == 0)
		return g_array_new(FALSE, FALSE, sizeof(hit));
	while (runs->len > 1) {
		guint k = 0;
		for (guint i = 0; i < runs->len; i += 2) {
			GArray *a = runs->pdata[i], *b = i + 1 < runs->len ? runs->pdata[i + 1] : NULL;
			runs->pdata[i] = NULL;
			if (b)
				runs->pdata[i + 1] = NULL;
			runs->pdata[k++] = b ? merge_runs(a, b, sum) : a;
		}
		g_ptr_array_set_size(runs, k);   /* the rest are NULL: merged into the first k */
	}
	return g_ptr_array_steal_index(runs, 0);
}

static void drop_misses(GArray *hits)
{
	hit *h = (hit *)(void *)hits->data;
	guint k = 0;
	for (guint i = 0; i < hits->len; i++)
		if (h[i].match)
			h[k++] = h[i];
	g_array_set_size(hits, k);
}

static void free_run(gpointer p)
{
	if (p)
		g_array_free(p, TRUE);
}

/* One word's live hits over all segments; -1 on an SQL error, 1 damaged,
 * 2 past MAX_ENTRIES. */
static int word_hits(reader *r, const GArray *segments, const char *word, GArray **hits_r)
{
	GByteArray *term = g_byte_array_new();
	const uint8_t prefix = MV_FTS5_MAIN_PREFIX;
	g_byte_array_append(term, &prefix, 1);
	g_byte_array_append(term, (const uint8_t *)word, (guint)strlen(word));
	GPtrArray *runs = g_ptr_array_new_with_free_func(free_run);
	int rc = 0;
	for (guint i = 0; i < segments->len && rc == 0; i++) {
		const mv_fts5_segment *seg = &g_array_index(segments, mv_fts5_segment, i);
		if (seg->first_page == 0)
			continue;   /* emptied by a merge in progress */
		sqlite3_reset(r->seek);
		sqlite3_bind_int64(r->seek, 1, seg->segid);
		sqlite3_bind_blob(r->seek, 2, term->data, (int)term->len, SQLITE_STATIC);
		int step = sqlite3_step(r->seek);
		int64_t page = step == SQLITE_ROW ? sqlite3_column_int64(r->seek, 0) : 0;
		sqlite3_reset(r->seek);
		if (step != SQLITE_ROW && step != SQLITE_DONE) {
			rc = -1;
			break;
		}
		/* A leaf before the first was consumed by a merge: its terms are
		 * in the merge's output. */
		if (step == SQLITE_DONE || page < seg->first_page)
			continue;
		r->segid = seg->segid;
		r->age = (uint16_t)i;
		r->run = g_array_new(FALSE, FALSE, sizeof(hit));
		int walked = mv_fts5_doclist_read(term->data, term->len, page, seg->last_page, fetch_page, take_entry, r);
		g_ptr_array_add(runs, r->run);
		r->run = NULL;
		if (walked == -2)
			rc = -1;
		else if (walked == -1 || r->damaged)
			rc = 1;
		else if (r->entries > max_entries)
			rc = 2;
	}
	sqlite3_reset(r->page);
	g_byte_array_free(term, TRUE);
	if (rc == 0) {
		*hits_r = merge_all(runs, false);
		drop_misses(*hits_r);
	}
	g_ptr_array_free(runs, TRUE);
	return rc;
}

/* ---- scores ------------------------------------------------------------------------- */

static bool worse(const mv_scored *a, const mv_scored *b)
{
	return a->rank > b->rank || (a->rank == b->rank && a->rowid > b->rowid);
}

/* A bounded heap, the worst kept on top, of the best `want` so far. */
static void offer(GArray *heap, guint want, mv_scored s)
{
	mv_scored *h = (mv_scored *)(void *)heap->data;
	if (heap->len == want) {
		if (!worse(&h[0], &s))
			return;
		h[0] = s;
	} else {
		g_array_append_val(heap, s);
		h = (mv_scored *)(void *)heap->data;
		for (guint i = heap->len - 1; i > 0 && worse(&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2) {
			mv_scored t = h[i];
			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
		}
		return;
	}
	for (guint i = 0;;) {
		guint l = 2 * i + 1, r = l + 1, m = i;
		if (l < heap->len && worse(&h[l], &h[m]))
			m = l;
		if (r < heap->len && worse(&h[r], &h[m]))
			m = r;
		if (m == i)
			break;
		mv_scored t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static gint by_score(gconstpointer a, gconstpointer b)
{
	const mv_scored *x = a, *y = b;
	return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

/* FTS5's bm25 of a document, operation for operation: each phrase's term
 * added in the MATCH's order, a phrase without hits in the document adding
 * 0.0 as FTS5's does. */
static double bm25(const double *idf, guint phrases, double avgdl, const uint32_t *counts, uint32_t length)
{
	double D = (double)length, score = 0.0;
	for (guint i = 0; i < phrases; i++) {
		double freq = (double)counts[i];
		score += idf[i] * ((freq * (K1 + 1.0)) / (freq + K1 * (1 - B + B * D / avgdl)));
	}
	return -1.0 * score;
}

typedef struct scoring {
	sqlite3 *db;
	int columns;
	int64_t rows, tokens;
	const doc_lengths *cached;  /* or NULL: each length looked up */
	sqlite3_stmt *lookup;
} scoring;

/* The phrases' hit lists walked together in rowid order: every document
 * of one of them (OR) or of all (AND), within the scope list if any. */
typedef struct combine {
	GArray *const *lists;
	guint n;
	bool any;
	guint pos[MV_TERM_RANK_MAX_PHRASES];
	const GArray *within;
	guint within_pos;
} combine;

static int64_t rowid_at(const combine *c, guint i)
{
	return g_array_index(c->lists[i], hit, c->pos[i]).rowid;
}

static bool at_end(const combine *c, guint i)
{
	return c->pos[i] >= c->lists[i]->len;
}

/* The first rowid every list has at or past its position: the lists are
 * moved up to it.  False when one runs out. */
static bool all_reach(combine *c, int64_t *rowid_r)
{
	for (;;) {
		int64_t target = INT64_MIN;
		for (guint i = 0; i < c->n; i++) {
			if (at_end(c, i))
				return false;
			target = MAX(target, rowid_at(c, i));
		}
		bool same = true;
		for (guint i = 0; i < c->n; i++) {
			while (!at_end(c, i) && rowid_at(c, i) < target)
				c->pos[i]++;
			if (at_end(c, i))
				return false;
			same = same && rowid_at(c, i) == target;
		}
		if (same) {
			*rowid_r = target;
			return true;
		}
	}
}

/* The smallest rowid any list is at; false when all ran out. */
static bool any_reach(const combine *c, int64_t *rowid_r)
{
	bool found = false;
	for (guint i = 0; i < c->n; i++)
		if (!at_end(c, i) && (!found || rowid_at(c, i) < *rowid_r)) {
			*rowid_r = rowid_at(c, i);
			found = true;
		}
	return found;
}

static bool in_scope(combine *c, int64_t rowid)
{
	if (!c->within)
		return true;
	const hit *w = (const hit *)(void *)c->within->data;
	while (c->within_pos < c->within->len && w[c->within_pos].rowid < rowid)
		c->within_pos++;
	return c->within_pos < c->within->len && w[c->within_pos].rowid == rowid;
}

/* The next document with each phrase's count in it; false at the end. */
static bool next_doc(combine *c, int64_t *rowid_r, uint32_t *counts)
{
	int64_t rowid = 0;
	while (c->any ? any_reach(c, &rowid) : all_reach(c, &rowid)) {
		for (guint i = 0; i < c->n; i++) {
			counts[i] = 0;
			if (!at_end(c, i) && rowid_at(c, i) == rowid)
				counts[i] = g_array_index(c->lists[i], hit, c->pos[i]++).count;
		}
		if (in_scope(c, rowid)) {
			*rowid_r = rowid;
			return true;
		}
	}
	return false;
}

/* A document's tokens over all columns: kept, or looked up.  -1 on an SQL
 * error, 1 when it has none (not what FTS5 keeps). */
static int length_of(scoring *sc, guint *cursor, int64_t rowid, uint32_t *len_r)
{
	if (sc->cached)
		return cached_length(sc->cached, cursor, rowid, len_r) ? 0 : 1;
	sqlite3_reset(sc->lookup);
	sqlite3_bind_int64(sc->lookup, 1, rowid);
	int step = sqlite3_step(sc->lookup);
	if (step == SQLITE_ROW)
		return length_of_blob(sqlite3_column_blob(sc->lookup, 0), (size_t)sqlite3_column_bytes(sc->lookup, 0),
		                      sc->columns, len_r) ? 0 : 1;
	return step == SQLITE_DONE ? 1 : -1;
}

/* -1 on an SQL error, 1 when a hit has no length. */
static int score_hits(scoring *sc, combine *c, const guint *documents, const mv_term_rank_request *rq, GArray *top)
{
	double idf[MV_TERM_RANK_MAX_PHRASES];
	for (guint i = 0; i < c->n; i++) {
		/* the phrase's documents over the whole table, as FTS5's xQueryPhrase counts them */
		idf[i] = log((sc->rows - (int64_t)documents[i] + 0.5) / ((int64_t)documents[i] + 0.5));
		if (idf[i] <= 0.0)
			idf[i] = 1e-6;
	}
	double avgdl = (double)sc->tokens / (double)sc->rows;
	GArray *heap = g_array_sized_new(FALSE, FALSE, sizeof(mv_scored), rq->want);
	guint cursor = 0;
	uint32_t counts[MV_TERM_RANK_MAX_PHRASES];
	int64_t rowid;
	int rc = 0;
	while (rc == 0 && next_doc(c, &rowid, counts)) {
		if (rowid < rq->docid_lo || rowid >= rq->docid_hi)
			continue;
		uint32_t len = 0;
		rc = length_of(sc, &cursor, rowid, &len);
		if (rc == 0 && rq->want)
			offer(heap, rq->want, (mv_scored){ rowid, bm25(idf, c->n, avgdl, counts, len) });
	}
	if (sc->lookup)
		sqlite3_reset(sc->lookup);
	if (rc == 0) {
		g_array_sort(heap, by_score);
		g_array_append_vals(top, heap->data, heap->len);
	}
	g_array_free(heap, TRUE);
	return rc;
}

/* ---- the whole ---------------------------------------------------------------------- */

/* A %_data record, copied; NULL in *rec_r when there is none. */
static int read_record(sqlite3 *db, int64_t id, GBytes **rec_r)
{
	sqlite3_stmt *st;
	*rec_r = NULL;
	if (sqlite3_prepare_v2(db, "SELECT block FROM ix.fts_data WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*rec_r = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The fts table's columns in order, into names; 1 when there are fewer than
 * two (no scope column) or more than 64 (no bit for each). */
static int table_columns(sqlite3 *db, GPtrArray *names)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA ix.table_info(fts)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(names, g_strdup((const char *)sqlite3_column_text(st, 1)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	return names->len < 2 || names->len > 64 ? 1 : 0;
}

/* The asked columns as bits, every one for NULL; false when one is not the
 * table's. */
static bool column_bits(const GPtrArray *names, const char *const *asked, uint64_t *bits_r)
{
	if (!asked) {
		*bits_r = names->len >= 64 ? UINT64_MAX : (UINT64_C(1) << names->len) - 1;
		return true;
	}
	uint64_t bits = 0;
	for (const char *const *a = asked; *a; a++) {
		guint i = 0;
		while (i < names->len && g_strcmp0(names->pdata[i], *a) != 0)
			i++;
		if (i == names->len)
			return false;
		bits |= UINT64_C(1) << i;
	}
	*bits_r = bits;
	return true;
}

static GBytes *records_key(GBytes *structure, GBytes *averages)
{
	GByteArray *k = g_byte_array_new();
	gsize n;
	const uint8_t *p = g_bytes_get_data(structure, &n);
	guint32 len = (guint32)n;
	g_byte_array_append(k, (const uint8_t *)&len, sizeof len);
	g_byte_array_append(k, p, (guint)n);
	p = g_bytes_get_data(averages, &n);
	g_byte_array_append(k, p, (guint)n);
	return g_byte_array_free_to_bytes(k);
}

/* About how many documents the query scores: what choosing how to read
 * their lengths weighs. */
static guint scored_estimate(GArray *const *lists, guint n, bool any)
{
	guint64 sum = 0, least = G_MAXUINT;
	for (guint i = 0; i < n; i++) {
		sum += lists[i]->len;
		least = MIN(least, lists[i]->len);
	}
	return (guint)MIN(any ? sum : least, G_MAXUINT);
}

struct mv_term_rank_cache {
	doc_lengths *lengths;   /* or NULL */
};

mv_term_rank_cache *mv_term_rank_cache_new(void)
{
	return g_new0(mv_term_rank_cache, 1);
}

void mv_term_rank_cache_free(gpointer cache)
{
	mv_term_rank_cache *c = cache;
	if (!c)
		return;
	doc_lengths_free(c->lengths);
	g_free(c);
}

guint mv_term_rank_cache_docs(const mv_term_rank_cache *cache)
{
	return cache->lengths ? cache->lengths->ids->len : 0;
}

/* The copy of the lengths to score with: the kept one if current, else a
 * new one when that costs less than looking each hit up; NULL when the
 * hits are looked up.  -1 on an SQL error, 1 when damaged. */
static int choose_lengths(mv_term_rank_cache *cache, scoring *sc, GBytes *key, guint in_range,
                          const doc_lengths **lengths_r)
{
	*lengths_r = NULL;
	if (!cache)
		return 0;
	if (cache->lengths && g_bytes_equal(cache->lengths->key, key)) {
		*lengths_r = cache->lengths;
		return 0;
	}
	bool load = sc->rows <= MAX_CACHED_DOCS &&
	            (sc->rows <= SMALL_INDEX || (int64_t)in_range * LOOKUP_VS_SCAN >= sc->rows);
	if (!load)
		return 0;
	doc_lengths *l = g_new0(doc_lengths, 1);
	int rc = lengths_load(sc->db, sc->columns, sc->rows, l);
	if (rc != 0) {
		doc_lengths_free(l);
		return rc;
	}
	l->key = g_bytes_ref(key);
	doc_lengths_free(cache->lengths);
	cache->lengths = l;
	*lengths_r = l;
	return 0;
}

typedef struct rank_run {
	GBytes *structure, *averages, *key;
	GArray *segments;
	GArray *lists[MV_TERM_RANK_MAX_PHRASES];  /* each phrase's hits */
	guint n_lists;
	GArray *within;   /* the scope tokens' hits, or NULL */
	GPtrArray *columns; /* the fts table's, in order */
	reader r;
	scoring sc;
} rank_run;

static void rank_run_clear(rank_run *x)
{
	if (x->structure)
		g_bytes_unref(x->structure);
	if (x->averages)
		g_bytes_unref(x->averages);
	if (x->key)
		g_bytes_unref(x->key);
	g_array_free(x->segments, TRUE);
	g_ptr_array_free(x->columns, TRUE);
	for (guint i = 0; i < x->n_lists; i++)
		g_array_free(x->lists[i], TRUE);
	if (x->within)
		g_array_free(x->within, TRUE);
	sqlite3_finalize(x->r.seek);
	sqlite3_finalize(x->r.page);
	sqlite3_finalize(x->sc.lookup);
}

static int prepare_readers(sqlite3 *db, rank_run *x)
{
	const char *seek = "SELECT pgno >> 1 FROM ix.fts_idx WHERE segid = ?1 AND term <= ?2 ORDER BY term DESC LIMIT 1";
	if (sqlite3_prepare_v2(db, seek, -1, &x->r.seek, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT block FROM ix.fts_data WHERE id = ?1", -1, &x->r.page, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT sz FROM ix.fts_docsize WHERE id = ?1", -1, &x->sc.lookup, NULL) != SQLITE_OK)
		return -1;
	return 0;
}

/* Every word's hits, a document counted once with all its words'
 * positions.  -1 on an SQL error, 1 damaged, 2 too many. */
static int all_hits(rank_run *x, const GPtrArray *words, GArray **hits_r)
{
	GPtrArray *per_word = g_ptr_array_new_with_free_func(free_run);
	int rc = 0;
	for (guint i = 0; i < words->len && rc == 0; i++) {
		GArray *hits = NULL;
		rc = word_hits(&x->r, x->segments, words->pdata[i], &hits);
		if (rc == 0)
			g_ptr_array_add(per_word, hits);
	}
	if (rc == 0)
		*hits_r = merge_all(per_word, true);
	g_ptr_array_free(per_word, TRUE);
	return rc;
}

/* One list of hits: a phrase's words in its columns, counted where they
 * weigh (every column but scope, the last, whose weight is 0), or the scope
 * tokens, which weigh nothing.  The bound on entries holds for all the
 * lists together.
 * As all_hits, and 3 when a column is not the table's. */
static int read_list(rank_run *x, const GPtrArray *words, const char *const *columns, bool counted, GArray **list_r)
{
	uint64_t asked = 0;
	if (!column_bits(x->columns, columns, &asked))
		return 3;
	x->r.match_cols = asked;
	x->r.count_cols = counted ? asked & ~(UINT64_C(1) << (x->sc.columns - 1)) : 0;
	return all_hits(x, words, list_r);
}

/* -1 on an SQL error, 1 when the index is left to FTS5 (*why_r says why),
 * 2 when the hits are too many to hold, 0 when scored. */
static int rank(sqlite3 *db, mv_term_rank_cache *cache, const mv_term_rank_request *rq, rank_run *x, GArray *top,
                const char **why_r)
{
	if (rq->n_phrases == 0 || rq->n_phrases > MV_TERM_RANK_MAX_PHRASES) {
		*why_r = "too many phrases";
		return 1;
	}
	int rc = read_record(db, MV_FTS5_STRUCTURE_ROWID, &x->structure);
	if (rc == 0)
		rc = read_record(db, MV_FTS5_AVERAGES_ROWID, &x->averages);
	if (rc == 0)
		rc = table_columns(db, x->columns);
	x->sc.columns = (int)x->columns->len;
	if (rc != 0) {
		*why_r = "the table's columns are not what this reader knows";
		return rc;
	}
	if (!x->structure || !x->averages) {
		*why_r = "the structure or averages record is missing";
		return 1;
	}
	gsize n;
	const uint8_t *p = g_bytes_get_data(x->structure, &n);
	rc = mv_fts5_structure_read(p, n, x->segments);
	if (rc != 0) {
		*why_r = rc > 0 ? "a contentless_delete table" : "the structure record is damaged";
		return 1;
	}
	p = g_bytes_get_data(x->averages, &n);
	if (!mv_fts5_averages_read(p, n, x->sc.columns, &x->sc.rows, &x->sc.tokens)) {
		*why_r = "the averages record is damaged";
		return 1;
	}
	if (x->sc.rows == 0)
		return 0;
	if (prepare_readers(db, x) < 0)
		return -1;
	guint documents[MV_TERM_RANK_MAX_PHRASES];
	for (guint i = 0; i < rq->n_phrases && rc == 0; i++) {
		rc = read_list(x, rq->phrases[i].words, rq->phrases[i].columns, true, &x->lists[i]);
		if (rc == 0)
			documents[i] = x->lists[x->n_lists++]->len;
	}
	if (rc == 0 && rq->within)
		rc = read_list(x, rq->within, rq->within_columns, false, &x->within);
	if (rc != 0) {
		*why_r = rc == 2 ? "too many hits to hold" : rc == 3 ? "a column asked is not the table's" :
		         "a leaf is not what FTS5 writes";
		return rc == 3 ? 1 : rc;
	}
	x->key = records_key(x->structure, x->averages);
	x->sc.db = db;
	combine c = { .lists = x->lists, .n = x->n_lists, .any = rq->any, .within = x->within };
	guint scored = scored_estimate(x->lists, x->n_lists, rq->any);
	if ((rc = choose_lengths(cache, &x->sc, x->key, scored, &x->sc.cached)) == 0)
		rc = score_hits(&x->sc, &c, documents, rq, top);
	if (rc == 0)
		mv_log_debug("relevance of %u phrase(s) read from the index: ~%u hits, %u segments, lengths %s",
		             rq->n_phrases, scored, x->segments->len, x->sc.cached ? "kept" : "looked up");
	if (rc > 0)
		*why_r = "a document's lengths are not what FTS5 keeps";
	return rc;
}

int mv_term_rank_db(sqlite3 *db, int store_id, mv_term_rank_cache *cache, const mv_term_rank_request *rq, GArray *top,
                    bool *answered_r, GError **error)
{
	rank_run x = { .segments = g_array_new(FALSE, FALSE, sizeof(mv_fts5_segment)),
	               .columns = g_ptr_array_new_with_free_func(g_free) };
	guint first = top->len;
	const char *why = NULL;
	int rc = rank(db, cache, rq, &x, top, &why);
	if (rc < 0)
		mv_sql_set_error(error, db, "relevance");
	else if (rc == 2)   /* by design, not a fault */
		mv_log_debug("store %d: relevance is left to FTS5: %s", store_id, why);
	else if (rc > 0)
		mv_log_warn("store %d: relevance is left to FTS5: %s", store_id, why);
	if (rc != 0)
		g_array_set_size(top, first);
	*answered_r = rc == 0;
	rank_run_clear(&x);
	return rc < 0 ? -1 : 0;
}

int mv_term_rank(mv_store *store, const mv_term_rank_request *rq, GArray *top, bool *answered_r, GError **error)
{
	*answered_r = false;
	bool held = mv_store_read_holding(store);
	if (!held && mv_store_read_hold(store) < 0)
		return 0;   /* no one snapshot: FTS5 answers */
	mv_term_rank_cache *cache = mv_store_search_cache(store);
	if (!cache) {
		cache = mv_term_rank_cache_new();
		mv_store_set_search_cache(store, cache, mv_term_rank_cache_free);
	}
	int rc = mv_term_rank_db(mv_store_db(store), mv_store_id(store), cache, rq, top, answered_r, error);
	if (!held)
		mv_store_read_release(store);
	return rc;
}
