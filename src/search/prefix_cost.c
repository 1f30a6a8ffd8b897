/* search/prefix_cost: what a prefix query costs before it runs.
 *
 * FTS5 answers `th*` (without a prefix index, which would double the index)
 * by merging the doclist of every term beginning so into one list in memory
 * before it returns the first row, and cannot be interrupted inside that
 * step: at a million messages `th*` took 4 s and 250 MB.  Neither the
 * prefix's length nor its hit count tells that cost in advance; the bytes of
 * the merged doclists do, and FTS5's own segment b-tree tells them cheaply.
 *
 * Each segment's %_idx table holds, per leaf page that starts a term, a
 * separator no greater than that term, and the page number.  The leaves a
 * prefix's terms occupy therefore lie between the page where the prefix
 * would begin and the first page whose separator is past every term with the
 * prefix; that span times the table's leaf size bounds the doclists' bytes.
 * A few b-tree seeks per segment: 0.34 ms in a warm process at a million
 * messages.
 *
 * The text is folded by the table's own tokenizer (unicode61,
 * remove_diacritics 2, as store/index.c's schema declares it) so that the
 * estimate looks up exactly the key FTS5 will merge, `Thé*` as `the`. */
#include "search/prefix_cost.h"
#include "search/fts5_leaf.h"

#include <string.h>

#define FTS5_DEFAULT_PAGE_BYTES 4050 /* FTS5's pgsz when fts_config sets none */

typedef struct last_token {
	GString *text;
	int count;
} last_token;

static int keep_last_token(void *ctx, int flags, const char *token, int n, int start, int end)
{
	(void)start;
	(void)end;
	if (flags & FTS5_TOKEN_COLOCATED)
		return SQLITE_OK;
	last_token *t = ctx;
	t->count++;
	g_string_truncate(t->text, 0);
	g_string_append_len(t->text, token, n);
	return SQLITE_OK;
}

static fts5_api *fts5_api_of(sqlite3 *db)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
	return api;
}

int mv_prefix_key(sqlite3 *db, const char *text, GString *key, int *tokens_r, GError **error)
{
	fts5_api *api = fts5_api_of(db);
	void *tok_ctx = NULL;
	fts5_tokenizer tok;
	if (!api || api->xFindTokenizer(api, "unicode61", &tok_ctx, &tok) != SQLITE_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "search: the index's tokenizer (unicode61) is not available");
		return -1;
	}
	const char *args[] = { "remove_diacritics", "2" };
	Fts5Tokenizer *t = NULL;
	if (tok.xCreate(tok_ctx, args, 2, &t) != SQLITE_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "search: cannot create the index's tokenizer");
		return -1;
	}
	last_token last = { key, 0 };
	g_string_truncate(key, 0);
	int rc = tok.xTokenize(t, &last, FTS5_TOKENIZE_QUERY | FTS5_TOKENIZE_PREFIX, text, (int)strlen(text),
	                       keep_last_token);
	tok.xDelete(t);
	if (tokens_r)
		*tokens_r = last.count;
	if (rc != SQLITE_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "search: cannot tokenize the prefix '%.64s': %s", text,
		            sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

GString *mv_prefix_past(const GString *lo)
{
	GString *hi = g_string_new_len(lo->str, (gssize)lo->len);
	while (hi->len && (unsigned char)hi->str[hi->len - 1] == 0xff)
		g_string_truncate(hi, hi->len - 1);
	if (hi->len)
		hi->str[hi->len - 1]++;
	return hi;
}

/* The statements of one estimate, on the fts table's %_idx. */
typedef struct idx_reader {
	sqlite3_stmt *segments, *at_or_before, *after, *at_or_after, *first_leaf, *last_leaf;
} idx_reader;

static const char *const idx_sql[] = {
	MV_FTS5_SEGMENTS_SQL,
	"SELECT pgno >> 1, term FROM %sfts_idx WHERE segid = ?1 AND term <= ?2 ORDER BY term DESC LIMIT 1",
	"SELECT pgno >> 1, term FROM %sfts_idx WHERE segid = ?1 AND term > ?2 ORDER BY term LIMIT 1",
	"SELECT pgno >> 1, term FROM %sfts_idx WHERE segid = ?1 AND term >= ?2 ORDER BY term LIMIT 1",
	/* A segment's leaves are fts_data rows (segid << 37) + page.  One an
	 * incremental merge is consuming has lost its first leaves (already in
	 * the merge's output) but not their separators; its last leaves may
	 * start no term (the end of a long doclist) and have none.  ?2 is
	 * there so that every statement here is bound alike (idx_seek). */
	"SELECT id & 0x7fffffff, NULL FROM %sfts_data WHERE id > (?1 << 37) AND id < (?1 << 37) + 0x80000000"
	" AND ?2 IS NOT NULL ORDER BY id LIMIT 1",
	"SELECT id & 0x7fffffff, NULL FROM %sfts_data WHERE id > (?1 << 37) AND id < (?1 << 37) + 0x80000000"
	" AND ?2 IS NOT NULL ORDER BY id DESC LIMIT 1",
};

static void idx_reader_clear(idx_reader *r)
{
	sqlite3_finalize(r->segments);
	sqlite3_finalize(r->at_or_before);
	sqlite3_finalize(r->after);
	sqlite3_finalize(r->at_or_after);
	sqlite3_finalize(r->first_leaf);
	sqlite3_finalize(r->last_leaf);
}

static int idx_reader_prepare(sqlite3 *db, const char *schema, idx_reader *r)
{
	sqlite3_stmt **st[] = { &r->segments, &r->at_or_before, &r->after, &r->at_or_after,
	                        &r->first_leaf, &r->last_leaf };
	for (size_t i = 0; i < G_N_ELEMENTS(st); i++) {
		char *sql = g_strdup_printf(idx_sql[i], schema, schema);
		int rc = sqlite3_prepare_v2(db, sql, -1, st[i], NULL);
		g_free(sql);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* One row of a segment's %_idx: a leaf page and its separator. */
typedef struct idx_row {
	bool found;
	int64_t page;
	GString *sep;
} idx_row;

static int idx_seek(sqlite3_stmt *st, int64_t segid, const GString *key, idx_row *row)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, segid);
	sqlite3_bind_blob(st, 2, key->str, (int)key->len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	row->found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		row->page = sqlite3_column_int64(st, 0);
		g_string_truncate(row->sep, 0);
		g_string_append_len(row->sep, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Whether the last term that starts before a leaf may begin with key, told
 * by the leaf's separator alone: FTS5 makes it the first c + 1 bytes of
 * the leaf's first term, c being what that term shares with the last term
 * before it.  So the last term shares exactly sep[0..c) and its next byte
 * is below sep[c] (or it ends there). */
static bool last_term_may_begin(const GString *sep, const GString *key)
{
	if (sep->len == 0)
		return false;
	size_t c = sep->len - 1;
	if (c >= key->len)
		return memcmp(sep->str, key->str, key->len) == 0;
	return memcmp(sep->str, key->str, c) == 0 && (unsigned char)key->str[c] < (unsigned char)sep->str[c];
}

/* How many of the leaves [from, to) a segment still has: those below its
 * first leaf are gone. */
static int64_t leaves(int64_t from, int64_t to, int64_t first_leaf)
{
	return MAX(to - MAX(from, first_leaf), 0);
}

/* The leaves of one segment that may hold terms in [lo, hi): the leaf lo
 * would be on; the leaves without a term after it, which continue the
 * doclist of that leaf's last term, unless the next separator shows that
 * term is outside the range; and every leaf from the first that starts
 * past lo to the first that starts at hi or later, or else to the
 * segment's last leaf.  What it can overcount: in a segment where no term
 * has the prefix, the doclist of the word just below it. */
static int segment_pages(idx_reader *r, int64_t segid, const GString *lo, const GString *hi, idx_row rows[5],
                         int64_t *pages_r)
{
	idx_row *at = &rows[0], *next = &rows[1], *end = &rows[2], *first = &rows[3], *last = &rows[4];
	int rc;
	*pages_r = 0;
	if ((rc = idx_seek(r->at_or_before, segid, lo, at)) != SQLITE_OK ||
	    (rc = idx_seek(r->after, segid, lo, next)) != SQLITE_OK ||
	    (rc = idx_seek(r->at_or_after, segid, hi, end)) != SQLITE_OK ||
	    (rc = idx_seek(r->first_leaf, segid, lo, first)) != SQLITE_OK ||
	    (rc = idx_seek(r->last_leaf, segid, lo, last)) != SQLITE_OK)
		return rc;
	if (!first->found || !last->found)
		return SQLITE_OK;
	int64_t f = first->page, from = at->found ? at->page : 1, stop = last->page + 1;
	*pages_r = leaves(from, from + 1, f);
	if (!next->found) {
		*pages_r += leaves(from + 1, stop, f);
		return SQLITE_OK;
	}
	if (last_term_may_begin(next->sep, lo))
		*pages_r += leaves(from + 1, next->page, f);
	*pages_r += leaves(next->page, end->found ? end->page : stop, f);
	return SQLITE_OK;
}

/* The table's leaf size (its pgsz option; the store's index sets one). */
static int page_bytes(sqlite3 *db, const char *schema, int64_t *bytes_r)
{
	char *sql = g_strdup_printf("SELECT v FROM %sfts_config WHERE k = 'pgsz'", schema);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	g_free(sql);
	*bytes_r = FTS5_DEFAULT_PAGE_BYTES;
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
		*bytes_r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int index_pages(sqlite3 *db, const char *schema, const GString *lo, const GString *hi, int64_t *pages_r)
{
	idx_reader r = { 0 };
	idx_row rows[5];
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		rows[i] = (idx_row){ .sep = g_string_new(NULL) };
	int rc = idx_reader_prepare(db, schema, &r);
	*pages_r = 0;
	while (rc == SQLITE_OK && (rc = sqlite3_step(r.segments)) == SQLITE_ROW) {
		int64_t pages = 0;
		rc = segment_pages(&r, sqlite3_column_int64(r.segments, 0), lo, hi, rows, &pages);
		*pages_r += pages;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
		g_string_free(rows[i].sep, TRUE);
	idx_reader_clear(&r);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int mv_prefix_index_bytes(sqlite3 *db, const char *schema, const char *text, int64_t *bytes_r, GError **error)
{
	*bytes_r = 0;
	GString *key = g_string_new(NULL);
	if (mv_prefix_key(db, text, key, NULL, error) < 0) {
		g_string_free(key, TRUE);
		return -1;
	}
	if (!key->len) {
		g_string_free(key, TRUE);
		return 0;
	}
	g_string_prepend_c(key, MV_FTS5_MAIN_PREFIX);
	GString *hi = mv_prefix_past(key);
	int64_t pages = 0, page = 0;
	int rc = index_pages(db, schema, key, hi, &pages);
	if (rc == SQLITE_OK)
		rc = page_bytes(db, schema, &page);
	if (rc != SQLITE_OK)
		g_set_error(error, MV_ERROR, MV_ERR_IO, "search: cannot measure the prefix '%.64s' in the index: %s", text,
		            sqlite3_errmsg(db));
	else
		*bytes_r = pages * page;
	g_string_free(hi, TRUE);
	g_string_free(key, TRUE);
	return rc == SQLITE_OK ? 0 : -1;
}
