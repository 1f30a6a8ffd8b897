/* search/prefix_terms: the words a prefix stands for, so that a search that
 * does not rank can ask FTS5 for them by name.
 *
 * FTS5 answers `cerk*` by merging the doclists of every term beginning so
 * into one list in memory before it returns the first row (prefix_cost.c
 * says more), whatever the page wants: ~15 ms at a million messages for
 * `cerk*`'s 8 terms and 120,000 hits.  The same terms joined by OR are read
 * lazily in rowid order, and a page of 50 stops after 50 rows: 0.5 ms.
 *
 * The words come from the leaves where they begin (fts5_leaf.c), not from
 * fts5vocab, which walks every doclist of them to count documents: ~7 ms
 * for `cerk*`.  In each segment those leaves are the one the prefix would
 * be on (the last whose %_idx separator is not past it) and those whose
 * separator begins with it: a separator is the first bytes of its leaf's
 * first term, enough to tell it from the term before, so a leaf where a
 * word with the prefix begins, other than the first, has one that begins so
 * too.  A leaf an incremental merge has consumed is gone from %_data (its
 * words are in the merge's output, another segment) and is passed over.
 * A word whose messages were all deleted may still be listed: asked for, it
 * finds nothing.
 *
 * A term a writer commits between this reading and the query is missed by
 * that one query, as if it had run a moment before the commit. */
#include "search/prefix_terms.h"
#include "search/fts5_leaf.h"
#include "search/prefix_cost.h"

#include <string.h>

typedef struct leaf_reader {
	sqlite3_stmt *segments, *first_leaf, *later_leaves, *leaf;
} leaf_reader;

static const char *const leaf_sql[] = {
	MV_FTS5_SEGMENTS_SQL,
	"SELECT pgno >> 1 FROM %sfts_idx WHERE segid = ?1 AND term <= ?2 ORDER BY term DESC LIMIT 1",
	/* %s: " AND term < ?3", a plain bound so that the seek stops there */
	"SELECT pgno >> 1 FROM %sfts_idx WHERE segid = ?1 AND term >= ?2%s ORDER BY term",
	"SELECT block FROM %sfts_data WHERE id = ?1",
};

static void leaf_reader_clear(leaf_reader *r)
{
	sqlite3_finalize(r->segments);
	sqlite3_finalize(r->first_leaf);
	sqlite3_finalize(r->later_leaves);
	sqlite3_finalize(r->leaf);
}

static int leaf_reader_prepare(sqlite3 *db, const char *schema, bool bounded, leaf_reader *r)
{
	sqlite3_stmt **st[] = { &r->segments, &r->first_leaf, &r->later_leaves, &r->leaf };
	const char *second[] = { schema, schema, bounded ? " AND term < ?3" : "", schema };   /* each statement's second %s */
	for (size_t i = 0; i < G_N_ELEMENTS(st); i++) {
		char *sql = g_strdup_printf(leaf_sql[i], schema, second[i]);
		int rc = sqlite3_prepare_v2(db, sql, -1, st[i], NULL);
		g_free(sql);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* The words found so far: each once, however many segments hold it. */
typedef struct collect {
	const GString *lo;       /* the prefix as the leaves spell it */
	GHashTable *words;       /* word (without the prefix byte) -> itself */
	guint max;
} collect;

static bool keep_term(void *opaque, const uint8_t *term, size_t len)
{
	collect *c = opaque;
	const GString *lo = c->lo;
	bool begins = len >= lo->len && memcmp(term, lo->str, lo->len) == 0;
	if (!begins) {
		/* Terms are in order: once past the prefix, none later has it. */
		bool below = memcmp(term, lo->str, MIN(len, lo->len)) < 0 || (len < lo->len && memcmp(term, lo->str, len) == 0);
		return below;
	}
	char *word = g_strndup((const char *)term + 1, len - 1);
	if (!g_hash_table_add(c->words, word))
		return true;
	return g_hash_table_size(c->words) <= c->max;
}

/* *damaged_r is set to the page when it is not a well-formed leaf. */
static int read_leaf(leaf_reader *r, int64_t segid, int64_t page, collect *c, int64_t *damaged_r)
{
	sqlite3_reset(r->leaf);
	sqlite3_bind_int64(r->leaf, 1, MV_FTS5_LEAF_ROWID(segid, page));
	int rc = sqlite3_step(r->leaf);
	if (rc == SQLITE_ROW) {
		const uint8_t *block = sqlite3_column_blob(r->leaf, 0);
		size_t n = (size_t)sqlite3_column_bytes(r->leaf, 0);
		if (mv_fts5_leaf_terms(block, n, keep_term, c) < 0)
			*damaged_r = page;
		rc = SQLITE_OK;
	}
	sqlite3_reset(r->leaf);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void bind_key(sqlite3_stmt *st, int i, const GString *key)
{
	sqlite3_bind_blob(st, i, key->str, (int)key->len, SQLITE_STATIC);
}

/* The leaves of one segment where words with the prefix may begin. */
static int read_segment(leaf_reader *r, int64_t segid, const GString *lo, const GString *hi, collect *c,
                        int64_t *damaged_r)
{
	int64_t first = -1;
	sqlite3_reset(r->first_leaf);
	sqlite3_bind_int64(r->first_leaf, 1, segid);
	bind_key(r->first_leaf, 2, lo);
	int rc = sqlite3_step(r->first_leaf);
	if (rc == SQLITE_ROW)
		first = sqlite3_column_int64(r->first_leaf, 0);
	sqlite3_reset(r->first_leaf);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (first >= 0 && (rc = read_leaf(r, segid, first, c, damaged_r)) != SQLITE_OK)
		return rc;
	sqlite3_reset(r->later_leaves);
	sqlite3_bind_int64(r->later_leaves, 1, segid);
	bind_key(r->later_leaves, 2, lo);
	if (hi->len)
		bind_key(r->later_leaves, 3, hi);
	while (*damaged_r < 0 && g_hash_table_size(c->words) <= c->max &&
	       (rc = sqlite3_step(r->later_leaves)) == SQLITE_ROW) {
		int64_t page = sqlite3_column_int64(r->later_leaves, 0);
		if (page != first && (rc = read_leaf(r, segid, page, c, damaged_r)) != SQLITE_OK)
			break;
	}
	sqlite3_reset(r->later_leaves);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static gint by_bytes(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mv_prefix_terms(sqlite3 *db, const char *schema, const GString *key, guint max_terms, GPtrArray **terms_r,
                    GError **error)
{
	*terms_r = NULL;
	GString *lo = g_string_new_len(key->str, (gssize)key->len);
	g_string_prepend_c(lo, MV_FTS5_MAIN_PREFIX);
	GString *hi = mv_prefix_past(lo);
	collect c = { .lo = lo, .words = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL), .max = max_terms };
	leaf_reader r = { 0 };
	int64_t segid = 0, damaged = -1;
	int rc = leaf_reader_prepare(db, schema, hi->len > 0, &r);
	while (rc == SQLITE_OK && damaged < 0 && g_hash_table_size(c.words) <= max_terms &&
	       (rc = sqlite3_step(r.segments)) == SQLITE_ROW) {
		segid = sqlite3_column_int64(r.segments, 0);
		rc = read_segment(&r, segid, lo, hi, &c, &damaged);
	}
	bool failed = damaged >= 0 || (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW);
	if (damaged >= 0)
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "search: the index is damaged: leaf %lld of segment %lld is not "
		            "a well-formed FTS5 leaf (RebuildStoreIndex makes the index anew)", (long long)damaged,
		            (long long)segid);
	else if (failed)   /* before the statements are finalized, which would clear the message */
		g_set_error(error, MV_ERROR, MV_ERR_IO, "search: cannot list the words beginning '%.64s' in the index: %s",
		            key->str, sqlite3_errmsg(db));
	leaf_reader_clear(&r);
	g_string_free(hi, TRUE);
	g_string_free(lo, TRUE);
	if (failed) {
		g_hash_table_destroy(c.words);
		return -1;
	}
	if (g_hash_table_size(c.words) <= max_terms) {
		GPtrArray *terms = g_ptr_array_new_with_free_func(g_free);
		GHashTableIter it;
		gpointer word;
		g_hash_table_iter_init(&it, c.words);
		while (g_hash_table_iter_next(&it, &word, NULL)) {
			g_hash_table_iter_steal(&it);
			g_ptr_array_add(terms, word);
		}
		g_ptr_array_sort(terms, by_bytes);
		*terms_r = terms;
	}
	g_hash_table_destroy(c.words);
	return 0;
}
