/* Unit tests for search/term_rank (and the doclist reader of
 * search/fts5_doclist under it): the best bm25 scores of one word, or of
 * one word's prefix, read from the index's bytes, must be FTS5's own — the
 * same rowids in the same order with the same doubles — on a real FTS5
 * table shaped like the store's index (11 columns, scope last and weighing
 * nothing, contentless, unicode61 remove_diacritics 2) that grew by many
 * commits with 64-byte leaves (doclists and position lists across pages),
 * documents deleted and rewritten (delete markers, newer segments hiding
 * older ones) and FTS5's own merges, some left half done. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "search/prefix_cost.h"
#include "search/prefix_terms.h"
#include "search/term_rank.h"

#define COLUMNS 11
#define MARK "\xee\x80\x80"   /* U+E000, which begins the synthetic tokens of format 4 */
static const char *const column_names[COLUMNS] = { "body", "subject", "sender", "recipients", "cc", "bcc",
	                                           "attachment", "folder", "archive", "messageid", "scope" };
static const char *const any_columns[] = { "subject", "sender", "recipients", "cc", "bcc", "body", "attachment", NULL };
static const char *const body_only[] = { "body", NULL };
static const char *const subject_only[] = { "subject", NULL };

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static sqlite3 *index_db(const char *options)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec(db, "ATTACH ':memory:' AS ix");
	GString *sql = g_string_new("CREATE VIRTUAL TABLE ix.fts USING fts5(");
	for (int c = 0; c < COLUMNS; c++)
		g_string_append_printf(sql, "%s, ", column_names[c]);
	g_string_append_printf(sql, "content='', tokenize='unicode61 remove_diacritics 2'%s);"
	                       "INSERT INTO ix.fts(fts, rank) VALUES('pgsz', 64);", options);
	exec(db, sql->str);
	g_string_free(sql, TRUE);
	return db;
}

/* ---- a model of the documents, for deletes and rewrites ------------------------------ */

typedef struct corpus {
	sqlite3 *db;
	GRand *rng;
	GHashTable *docs;   /* rowid (int64*) -> char** of COLUMNS values */
	GArray *rowids;     /* int64_t: the live ones */
} corpus;

/* Words of a small vocabulary, the first ones much more common. */
static void add_words(corpus *c, GString *out, int n)
{
	for (int i = 0; i < n; i++) {
		double r = g_rand_double(c->rng);
		int w = (int)(30 * r * r * r);
		g_string_append_printf(out, "%c%c%s ", 'a' + w % 5, 'a' + (w / 5) % 6, w % 3 ? "" : "x");
	}
}

static char **new_values(corpus *c)
{
	char **v = g_new0(char *, COLUMNS + 1);
	for (int col = 0; col < COLUMNS; col++) {
		GString *s = g_string_new(NULL);
		int n = col == 0 ? g_rand_int_range(c->rng, 1, 40) : g_rand_int_range(c->rng, 0, 4);
		add_words(c, s, n);
		if (col == COLUMNS - 1)   /* scope tokens, both spellings (index formats 4 and 3) */
			g_string_append_printf(s, MARK "d%d zfld%d ", g_rand_int_range(c->rng, 1, 5),
			                       g_rand_int_range(c->rng, 1, 5));
		if (col == 0 && g_rand_int_range(c->rng, 0, 12) == 0) {
			/* one word many times: a position list over several leaves */
			int times = g_rand_int_range(c->rng, 20, 120);
			for (int i = 0; i < times; i++)
				g_string_append(s, "ca ");
		}
		v[col] = g_string_free(s, FALSE);
	}
	return v;
}

static void write_doc(corpus *c, int64_t rowid, char **v, bool delete)
{
	GString *sql = g_string_new(NULL);
	if (delete)
		g_string_append_printf(sql, "INSERT INTO ix.fts(fts, rowid");
	else
		g_string_append(sql, "INSERT INTO ix.fts(rowid");
	for (int col = 0; col < COLUMNS; col++)
		g_string_append_printf(sql, ", %s", column_names[col]);
	g_string_append_printf(sql, ") VALUES(%s%lld", delete ? "'delete', " : "", (long long)rowid);
	for (int col = 0; col < COLUMNS; col++) {
		char *q = sqlite3_mprintf("%Q", v[col]);
		g_string_append_printf(sql, ", %s", q);
		sqlite3_free(q);
	}
	g_string_append_c(sql, ')');
	exec(c->db, sql->str);
	g_string_free(sql, TRUE);
}

static void insert_new(corpus *c)
{
	/* rowids shaped like the store's: a date bucket above 25 bits of number */
	int64_t rowid = ((int64_t)g_rand_int_range(c->rng, 1, 1 << 20) << 25) | g_rand_int_range(c->rng, 0, 1 << 25);
	if (g_hash_table_contains(c->docs, &rowid))
		return;
	char **v = new_values(c);
	write_doc(c, rowid, v, false);
	int64_t *key = g_new(int64_t, 1);
	*key = rowid;
	g_hash_table_insert(c->docs, key, v);
	g_array_append_val(c->rowids, rowid);
}

static void delete_one(corpus *c, bool rewrite)
{
	if (c->rowids->len == 0)
		return;
	guint i = (guint)g_rand_int_range(c->rng, 0, (gint32)c->rowids->len);
	int64_t rowid = g_array_index(c->rowids, int64_t, i);
	char **old = g_hash_table_lookup(c->docs, &rowid);
	write_doc(c, rowid, old, true);
	if (rewrite) {
		char **v = new_values(c);
		write_doc(c, rowid, v, false);
		int64_t *key = g_new(int64_t, 1);
		*key = rowid;
		g_hash_table_insert(c->docs, key, v);   /* frees old */
		return;
	}
	g_hash_table_remove(c->docs, &rowid);
	g_array_remove_index_fast(c->rowids, i);
}

static void one_commit(corpus *c, int n)
{
	exec(c->db, "BEGIN");
	for (int i = 0; i < n; i++)
		insert_new(c);
	int deletes = g_rand_int_range(c->rng, 0, 3), rewrites = g_rand_int_range(c->rng, 0, 3);
	for (int i = 0; i < deletes; i++)
		delete_one(c, false);
	for (int i = 0; i < rewrites; i++)
		delete_one(c, true);
	exec(c->db, "COMMIT");
}

static void corpus_init(corpus *c, uint32_t seed)
{
	c->db = index_db("");
	c->rng = g_rand_new_with_seed(seed);
	c->docs = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, (GDestroyNotify)g_strfreev);
	c->rowids = g_array_new(FALSE, FALSE, sizeof(int64_t));
}

static void corpus_clear(corpus *c)
{
	sqlite3_close(c->db);
	g_rand_free(c->rng);
	g_hash_table_destroy(c->docs);
	g_array_free(c->rowids, TRUE);
}

/* ---- the oracle ----------------------------------------------------------------------- */

static void fts5_top(sqlite3 *db, const char *match, int64_t lo, int64_t hi, guint want, GArray *top)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT rowid, bm25(fts, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0) FROM ix.fts"
	                                        " WHERE fts MATCH ?1 AND rowid >= ?2 AND rowid < ?3 ORDER BY 2, 1 LIMIT ?4",
	                                    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, lo);
	sqlite3_bind_int64(st, 3, hi);
	sqlite3_bind_int64(st, 4, want);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_scored s = { sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1) };
		g_array_append_val(top, s);
	}
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(st);
}

static char *match_of(const char *const *columns, const char *text, bool prefix)
{
	if (!columns)   /* every column, scope's hits weighing nothing */
		return g_strdup_printf("\"%s\"%s", text, prefix ? "*" : "");
	GString *cols = g_string_new(NULL);
	for (const char *const *c = columns; *c; c++)
		g_string_append_printf(cols, "%s%s", cols->len ? " " : "", *c);
	char *m = g_strdup_printf("{%s} : \"%s\"%s", cols->str, text, prefix ? "*" : "");
	g_string_free(cols, TRUE);
	return m;
}

static GPtrArray *words_for(sqlite3 *db, const char *text, bool prefix)
{
	GPtrArray *words = NULL;
	if (!prefix) {
		words = g_ptr_array_new_with_free_func(g_free);
		g_ptr_array_add(words, g_strdup(text));
		return words;
	}
	GString *key = g_string_new(text);
	GError *err = NULL;
	if (mv_prefix_terms(db, "ix.", key, 100000, &words, &err) < 0)
		fail_msg("%s", err->message);
	g_string_free(key, TRUE);
	return words;
}

/* A restricted caller's part of the index, as search.c asks it: scope
 * tokens ANDed to the word, by column in an index before format 4. */
typedef struct scope_part {
	const char *expr;                 /* appended to the MATCH */
	const char *const *tokens;        /* NULL-terminated */
	const char *const *columns;       /* term_rank's within_columns */
} scope_part;

static const char *const new_tokens[] = { MARK "d1", MARK "d3", NULL };
static const char *const old_tokens[] = { "zfld2", NULL };
static const char *const scope_only[] = { "scope", NULL };
static const scope_part new_scope = { " AND (\"" MARK "d1\" OR \"" MARK "d3\")", new_tokens, NULL };
static const scope_part old_scope = { " AND (scope : zfld2)", old_tokens, scope_only };

/* A query of phrases as term_rank.c takes it. */
typedef struct phrase_spec {
	const char *const *columns;
	const char *text;
	bool prefix;
} phrase_spec;

/* Both ways, the same rowids, order and doubles; how many were compared. */
static guint same_as_fts5_query(sqlite3 *db, mv_term_rank_cache *cache, const phrase_spec *specs, guint n, bool any,
                                int64_t lo, int64_t hi, guint want, const scope_part *scope)
{
	GString *query = g_string_new(n > 1 ? "(" : "");
	mv_term_rank_phrase phrases[MV_TERM_RANK_MAX_PHRASES];
	GPtrArray *words[MV_TERM_RANK_MAX_PHRASES];
	for (guint i = 0; i < n; i++) {
		char *one = match_of(specs[i].columns, specs[i].text, specs[i].prefix);
		g_string_append_printf(query, "%s%s", i ? (any ? " OR " : " AND ") : "", one);
		g_free(one);
		words[i] = words_for(db, specs[i].text, specs[i].prefix);
		phrases[i] = (mv_term_rank_phrase){ words[i], specs[i].columns };
	}
	if (n > 1)
		g_string_append_c(query, ')');
	char *match = scope ? g_strdup_printf("(%s)%s", query->str, scope->expr) : g_strdup(query->str);
	g_string_free(query, TRUE);
	GArray *expected = g_array_new(FALSE, FALSE, sizeof(mv_scored));
	GArray *got = g_array_new(FALSE, FALSE, sizeof(mv_scored));
	fts5_top(db, match, lo, hi, want, expected);
	GPtrArray *within = NULL;
	if (scope) {
		within = g_ptr_array_new();
		for (const char *const *t = scope->tokens; *t; t++)
			g_ptr_array_add(within, (gpointer)*t);
	}
	mv_term_rank_request rq = { phrases, n, any, lo, hi, want, within, scope ? scope->columns : NULL };
	bool answered = false;
	GError *err = NULL;
	exec(db, "BEGIN");
	if (mv_term_rank_db(db, 1, cache, &rq, got, &answered, &err) < 0)
		fail_msg("%s: %s", match, err->message);
	exec(db, "COMMIT");
	assert_true(answered);
	if (got->len != expected->len)
		fail_msg("%s [%lld, %lld) best %u: %u scores, FTS5 %u", match, (long long)lo, (long long)hi, want, got->len,
		         expected->len);
	for (guint i = 0; i < got->len; i++) {
		const mv_scored *g = &g_array_index(got, mv_scored, i), *e = &g_array_index(expected, mv_scored, i);
		if (g->rowid != e->rowid || g->rank != e->rank)
			fail_msg("%s best %u, #%u: %lld %.17g, FTS5 %lld %.17g", match, want, i, (long long)g->rowid, g->rank,
			         (long long)e->rowid, e->rank);
	}
	guint compared = got->len;
	for (guint i = 0; i < n; i++)
		g_ptr_array_free(words[i], TRUE);
	if (within)
		g_ptr_array_free(within, TRUE);
	g_array_free(expected, TRUE);
	g_array_free(got, TRUE);
	g_free(match);
	return compared;
}

static guint same_as_fts5_within(sqlite3 *db, mv_term_rank_cache *cache, const char *const *columns, const char *text,
                                 bool prefix, int64_t lo, int64_t hi, guint want, const scope_part *scope)
{
	phrase_spec one = { columns, text, prefix };
	return same_as_fts5_query(db, cache, &one, 1, false, lo, hi, want, scope);
}

static guint same_as_fts5(sqlite3 *db, mv_term_rank_cache *cache, const char *const *columns, const char *text,
                          bool prefix, int64_t lo, int64_t hi, guint want)
{
	return same_as_fts5_within(db, cache, columns, text, prefix, lo, hi, want, NULL);
}

static int cmp_int64(gconstpointer a, gconstpointer b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every word and one- and two-letter prefix of the vocabulary, four column
 * sets (the last every column, as a synthetic token's term asks: the scope
 * column's hits match and weigh nothing), three page sizes, the whole range
 * and its newer half. */
static void check_all(corpus *c, mv_term_rank_cache *cache)
{
	GArray *sorted = g_array_copy(c->rowids);
	g_array_sort(sorted, cmp_int64);
	int64_t mid = sorted->len ? g_array_index(sorted, int64_t, sorted->len / 2) : 0;
	g_array_free(sorted, TRUE);
	const char *const *colsets[] = { any_columns, body_only, subject_only, NULL };
	const guint wants[] = { 1, 7, 60 };
	guint compared = 0;
	for (int w = 0; w < 30; w++) {
		char word[4] = { (char)('a' + w % 5), (char)('a' + (w / 5) % 6), w % 3 ? 0 : 'x', 0 };
		for (int prefix = 0; prefix < 2; prefix++) {
			if (prefix)
				word[w % 2 ? 1 : 2] = 0;   /* "a*" and "ab*" */
			for (size_t s = 0; s < G_N_ELEMENTS(colsets); s++)
				for (size_t k = 0; k < G_N_ELEMENTS(wants); k++) {
					compared += same_as_fts5(c->db, cache, colsets[s], word, prefix, INT64_MIN, INT64_MAX, wants[k]);
					compared += same_as_fts5(c->db, cache, colsets[s], word, prefix, INT64_MIN, mid, wants[k]);
				}
		}
	}
	assert_true(compared > 1000);   /* the words are there: not a comparison of empty lists */
	/* a restricted caller's part, both spellings of its tokens */
	compared = 0;
	for (int w = 0; w < 30; w++) {
		char word[4] = { (char)('a' + w % 5), (char)('a' + (w / 5) % 6), w % 3 ? 0 : 'x', 0 };
		for (int k = 0; k < 2; k++) {
			compared += same_as_fts5_within(c->db, cache, any_columns, word, false, INT64_MIN, INT64_MAX, 60,
			                                k ? &old_scope : &new_scope);
			word[1] = k ? word[1] : 0;
			compared += same_as_fts5_within(c->db, cache, body_only, word, true, INT64_MIN, INT64_MAX, 7,
			                                k ? &old_scope : &new_scope);
		}
	}
	assert_true(compared > 300);
	/* two and three phrases, AND and OR, of words, prefixes and columns;
	 * a rare word beside a common one, the same word twice */
	compared = 0;
	for (int w = 0; w < 30; w += 1) {
		char a[4] = { (char)('a' + w % 5), (char)('a' + (w / 5) % 6), w % 3 ? 0 : 'x', 0 };
		int v = (w * 7 + 3) % 30;
		char b[4] = { (char)('a' + v % 5), (char)('a' + (v / 5) % 6), v % 3 ? 0 : 'x', 0 };
		phrase_spec pair[] = { { any_columns, a, false }, { body_only, b, false }, { subject_only, "c", true } };
		phrase_spec twice[] = { { any_columns, a, false }, { any_columns, a, false } };
		for (int any = 0; any < 2; any++) {
			compared += same_as_fts5_query(c->db, cache, pair, 2, any, INT64_MIN, INT64_MAX, 20, NULL);
			compared += same_as_fts5_query(c->db, cache, pair, 3, any, INT64_MIN, mid, 20, NULL);
			compared += same_as_fts5_query(c->db, cache, pair, 2, any, INT64_MIN, INT64_MAX, 7, &new_scope);
			compared += same_as_fts5_query(c->db, cache, twice, 2, any, INT64_MIN, INT64_MAX, 7, NULL);
		}
	}
	assert_true(compared > 1000);
}

static int64_t segments_of(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(DISTINCT segid) FROM ix.fts_idx", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Many commits, deletes and rewrites, with FTS5's automerge and now and
 * then a small incremental merge that stops half way: checked at three
 * moments, with the lengths cached and without. */
static void test_same_scores_as_fts5(void **state)
{
	(void)state;
	corpus c;
	corpus_init(&c, 23);
	exec(c.db, "INSERT INTO ix.fts(fts, rank) VALUES('automerge', 2)");
	mv_term_rank_cache *cache = mv_term_rank_cache_new();
	for (int commit = 1; commit <= 90; commit++) {
		one_commit(&c, g_rand_int_range(c.rng, 1, 25));
		if (commit % 7 == 0)
			exec(c.db, "INSERT INTO ix.fts(fts, rank) VALUES('merge', 3)");
		if (commit == 15 || commit == 50 || commit == 90) {
			assert_true(segments_of(c.db) > 1);
			check_all(&c, cache);
			assert_int_equal(mv_term_rank_cache_docs(cache), g_hash_table_size(c.docs));
			check_all(&c, NULL);
		}
	}
	mv_term_rank_cache_free(cache);
	corpus_clear(&c);
}

/* The cached lengths are read again after a commit: a rewritten document's
 * new length scores it, not the old one's. */
static void test_cache_follows_commits(void **state)
{
	(void)state;
	corpus c;
	corpus_init(&c, 5);
	for (int i = 0; i < 5; i++)
		one_commit(&c, 20);
	mv_term_rank_cache *cache = mv_term_rank_cache_new();
	same_as_fts5(c.db, cache, any_columns, "ba", false, INT64_MIN, INT64_MAX, 20);
	guint before = mv_term_rank_cache_docs(cache);
	assert_int_equal(before, g_hash_table_size(c.docs));
	exec(c.db, "BEGIN");
	for (guint i = 0; i < c.rowids->len; i += 3)
		delete_one(&c, true);   /* same rowids, new lengths */
	insert_new(&c);
	exec(c.db, "COMMIT");
	same_as_fts5(c.db, cache, any_columns, "ba", false, INT64_MIN, INT64_MAX, 20);
	assert_int_equal(mv_term_rank_cache_docs(cache), g_hash_table_size(c.docs));
	assert_int_not_equal(mv_term_rank_cache_docs(cache), before);
	mv_term_rank_cache_free(cache);
	corpus_clear(&c);
}

/* The word in columns, asked as `copies` phrases joined by AND (one or
 * two: each copy holds its entries again). */
static bool rank_answers_copies(sqlite3 *db, const char *word, const char *const *columns, guint copies, GArray *top)
{
	GPtrArray *words = g_ptr_array_new();
	g_ptr_array_add(words, (gpointer)word);
	mv_term_rank_phrase phrases[2] = { { words, columns }, { words, columns } };
	assert_true(copies >= 1 && copies <= G_N_ELEMENTS(phrases));
	mv_term_rank_request rq = { phrases, copies, false, INT64_MIN, INT64_MAX, 10, NULL, NULL };
	bool answered = true;
	GError *err = NULL;
	assert_int_equal(mv_term_rank_db(db, 1, NULL, &rq, top, &answered, &err), 0);
	assert_null(err);
	g_ptr_array_free(words, TRUE);
	return answered;
}

static bool rank_answers_in(sqlite3 *db, const char *word, const char *const *columns, GArray *top)
{
	return rank_answers_copies(db, word, columns, 1, top);
}

static bool rank_answers(sqlite3 *db, const char *word, GArray *top)
{
	return rank_answers_in(db, word, any_columns, top);
}

/* The word asked twice, as two phrases joined by AND: twice its entries. */
static bool rank_answers_twice(sqlite3 *db, const char *word, GArray *top)
{
	return rank_answers_copies(db, word, any_columns, 2, top);
}

/* A leaf that is not what FTS5 writes leaves the query to FTS5 (answered
 * false, no error, nothing added); so do more hits than a search may hold,
 * and a contentless_delete table, whose tombstones this reader does not
 * know. */
static void test_left_to_fts5(void **state)
{
	(void)state;
	corpus c;
	corpus_init(&c, 9);
	for (int i = 0; i < 3; i++)
		one_commit(&c, 10);
	GArray *top = g_array_new(FALSE, FALSE, sizeof(mv_scored));
	assert_true(rank_answers(c.db, "ba", top));
	assert_true(top->len > 0);
	assert_true(rank_answers(c.db, "zz", top) && top->len == 10);   /* a word no one has: none added */
	g_array_set_size(top, 0);
	static const char *const no_such[] = { "body", "nosuch", NULL };
	assert_false(rank_answers_in(c.db, "ba", no_such, top));   /* FTS5 names the column */
	assert_int_equal(top->len, 0);
	/* more entries than a search may hold: FTS5 answers, nothing is added */
	mv_term_rank_set_max_entries(5);
	assert_false(rank_answers(c.db, "ba", top));
	assert_int_equal(top->len, 0);
	/* the bound holds for a query's lists together: the least bound one
	 * word's list fits in is too small for the word asked twice */
	guint fits = 5;
	while (g_array_set_size(top, 0), mv_term_rank_set_max_entries(fits), !rank_answers(c.db, "ba", top))
		fits++;
	g_array_set_size(top, 0);
	assert_false(rank_answers_twice(c.db, "ba", top));
	assert_int_equal(top->len, 0);
	mv_term_rank_set_max_entries(2 * fits);
	assert_true(rank_answers_twice(c.db, "ba", top));
	g_array_set_size(top, 0);
	mv_term_rank_set_max_entries(0);
	assert_true(rank_answers(c.db, "ba", top));
	g_array_set_size(top, 0);
	exec(c.db, "UPDATE ix.fts_data SET block = x'0000ffff0102' WHERE id > 10");
	assert_false(rank_answers(c.db, "ba", top));
	assert_int_equal(top->len, 0);
	corpus_clear(&c);

	sqlite3 *db = index_db(", contentless_delete=1");
	exec(db, "INSERT INTO ix.fts(rowid, body) VALUES(1, 'aa bb'); INSERT INTO ix.fts(rowid, body) VALUES(2, 'aa');"
	         "DELETE FROM ix.fts WHERE rowid = 2");
	assert_false(rank_answers(db, "ba", top));
	assert_int_equal(top->len, 0);
	sqlite3_close(db);
	g_array_free(top, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_scores_as_fts5),
		cmocka_unit_test(test_cache_follows_commits),
		cmocka_unit_test(test_left_to_fts5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
