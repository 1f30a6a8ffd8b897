/* Unit tests for search/prefix_cost: the estimate of what FTS5 merges for a
 * prefix, read from the segment b-trees of a real FTS5 table shaped like
 * the store's index (contentless, unicode61 remove_diacritics 2), held in
 * several segments as an index that grew by many commits is.  The estimate
 * must cover the prefix's term lists (it bounds memory), stay near zero for
 * a prefix no term has, and look up the key the tokenizer folds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "search/prefix_cost.h"

#define PAGE 4050

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* docs documents, each with 40 distinct words beginning "aa", the word
 * "common" 21 times, and in every 100th "commonz<n>" and "zzrare": one
 * commit.  "common"'s doclist runs over many leaves right below the terms
 * beginning "commonz".  only: keep just the words beginning so (NULL: all),
 * so that a table of them holds exactly their doclists (a little smaller:
 * their positions are smaller numbers). */
static void add_segment(sqlite3 *db, int first, int docs, const char *only)
{
	exec(db, "BEGIN");
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO fts(rowid, body) VALUES (?, ?)", -1, &st, NULL), SQLITE_OK);
	GString *body = g_string_new(NULL);
	GString *word = g_string_new(NULL);
	for (int d = first; d < first + docs; d++) {
		g_string_truncate(body, 0);
		for (int w = 0; w < 21 + 40 + 2; w++) {
			if (w < 21)
				g_string_assign(word, "common");
			else if (w < 61)
				g_string_printf(word, "aa%d", (d * 41 + (w - 21) * 7919) % 50000);
			else if (d % 100 == 0)
				g_string_printf(word, w == 61 ? "commonz%d" : "zzrare", d);
			else
				continue;
			if (!only || g_str_has_prefix(word->str, only))
				g_string_append_printf(body, "%s%s", body->len ? " " : "", word->str);
		}
		sqlite3_bind_int64(st, 1, d);
		sqlite3_bind_text(st, 2, body->str, (int)body->len, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	g_string_free(word, TRUE);
	g_string_free(body, TRUE);
	exec(db, "COMMIT");
}

/* merging: FTS5's default incremental merges (automerge), which leave a
 * merge's output and its inputs half done between commits; without, every
 * flush stays a whole segment of its own. */
static sqlite3 *index_db_paged(bool merging, int page)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec(db, "CREATE VIRTUAL TABLE fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2')");
	if (!merging)
		exec(db, "INSERT INTO fts(fts, rank) VALUES('automerge', 0)");
	if (page) {
		char *sql = g_strdup_printf("INSERT INTO fts(fts, rank) VALUES('pgsz', %d)", page);
		exec(db, sql);
		g_free(sql);
	}
	return db;
}

static sqlite3 *index_db_merging(bool merging)
{
	return index_db_paged(merging, 0);
}

static sqlite3 *index_db(void)
{
	return index_db_merging(true);
}

static int64_t estimate(sqlite3 *db, const char *text)
{
	GError *err = NULL;
	int64_t bytes = -1;
	if (mv_prefix_index_bytes(db, "", text, &bytes, &err) < 0)
		fail_msg("'%s': %s", text, err->message);
	return bytes;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_empty_index(void **state)
{
	(void)state;
	sqlite3 *db = index_db();
	assert_int_equal(estimate(db, "a"), 0);
	sqlite3_close(db);
}

static int64_t leaf_bytes(sqlite3 *db)
{
	/* rowid 1 is the averages record and 10 the structure record */
	return scalar(db, "SELECT sum(length(block)) FROM fts_data WHERE id > 10");
}

/* The index of 9,000 documents and its doclists' sizes: tables of the same
 * documents with only the words beginning "aa", or "common". */
typedef struct sized_index {
	sqlite3 *db;
	int64_t segments, all, aa, common;
} sized_index;

static sized_index sized_paged(bool merging, int page)
{
	sized_index x = { .db = index_db_paged(merging, page) };
	sqlite3 *only_aa = index_db_paged(merging, page), *only_common = index_db_paged(merging, page);
	for (int s = 0; s < 3; s++) {
		add_segment(x.db, 1 + s * 3000, 3000, NULL);
		add_segment(only_aa, 1 + s * 3000, 3000, "aa");
		add_segment(only_common, 1 + s * 3000, 3000, "common");
	}
	/* FTS5 also flushes within a large commit: at least one segment each. */
	x.segments = scalar(x.db, "SELECT count(DISTINCT segid) FROM fts_idx");
	assert_true(x.segments >= 3);
	x.all = leaf_bytes(x.db);
	x.aa = leaf_bytes(only_aa);
	x.common = leaf_bytes(only_common);
	sqlite3_close(only_common);
	sqlite3_close(only_aa);
	return x;
}

static sized_index sized(bool merging)
{
	return sized_paged(merging, 0);
}

static void check_covers(const sized_index *x, const char *prefix, int64_t doclists, int64_t most)
{
	int64_t e = estimate(x->db, prefix);
	if (e < doclists || e > most)
		fail_msg("%s*: %lld bytes estimated, its doclists hold %lld, at most %lld expected (the index: %lld in %lld "
		         "segments)", prefix, (long long)e, (long long)doclists, (long long)most, (long long)x->all,
		         (long long)x->segments);
}

static void test_estimate_covers_the_prefix_terms(void **state)
{
	(void)state;
	sized_index x = sized(false);
	check_covers(&x, "aa", x.aa, x.all + x.segments * PAGE);
	check_covers(&x, "common", x.common, x.common * 2 + x.segments * PAGE);
	assert_true(estimate(x.db, "a") >= estimate(x.db, "aa"));
	/* Words in one document of a hundred, and a prefix past every word: at
	 * most the leaves each segment would hold them on, though "commonz"
	 * follows the long doclist of "common". */
	check_covers(&x, "commonz", 0, 2 * x.segments * PAGE);
	/* No word begins "b": the leaf it would be on ends in "common"'s long
	 * doclist, which the next leaf's separator ("commonz") shows is not a
	 * word beginning "b". */
	check_covers(&x, "b", 0, x.segments * PAGE);
	check_covers(&x, "zzr", 0, x.segments * PAGE);
	check_covers(&x, "zzzzzz", 0, x.segments * PAGE);
	sqlite3_close(x.db);
}

/* Midway through incremental merges, the inputs' merged leaves are gone
 * but their separators stay: they must not count twice.  What is known to
 * be overcounted: a merge's output that ends in "common"'s doclist has no
 * word beginning "commonz" yet, and cannot tell that doclist from one. */
static void test_estimate_during_merges(void **state)
{
	(void)state;
	sized_index x = sized(true);
	check_covers(&x, "aa", x.aa, x.all + x.segments * PAGE);
	check_covers(&x, "common", x.common, x.common * 2 + x.segments * PAGE);
	check_covers(&x, "commonz", 0, x.common + 2 * x.segments * PAGE);
	sqlite3_close(x.db);
}

/* The store's index sets its own leaf size (pgsz): the estimate reads it. */
static void test_estimate_in_leaves_of_the_table_s_size(void **state)
{
	(void)state;
	sized_index x = sized_paged(false, 1000);
	check_covers(&x, "aa", x.aa, x.all + x.segments * 1000);
	check_covers(&x, "zzzzzz", 0, 2 * x.segments * 1000);
	sqlite3_close(x.db);
}

static void test_estimate_grows_with_the_index(void **state)
{
	(void)state;
	sqlite3 *db = index_db();
	add_segment(db, 1, 2000, NULL);
	int64_t before = estimate(db, "aa");
	add_segment(db, 2001, 2000, NULL);
	int64_t after = estimate(db, "aa");
	if (after < before * 3 / 2)
		fail_msg("twice the documents: %lld bytes before, %lld after", (long long)before, (long long)after);
	sqlite3_close(db);
}

static void test_folded_as_the_tokenizer_folds(void **state)
{
	(void)state;
	sqlite3 *db = index_db();
	add_segment(db, 1, 2000, NULL);
	int64_t aa = estimate(db, "aa");
	assert_true(aa > 10 * PAGE);
	assert_int_equal(estimate(db, "AA"), aa);
	assert_int_equal(estimate(db, "\xc3\x80" "a"), aa);   /* "Àa" */
	/* Only the last token is a prefix: "x-aa*" merges what "aa*" does. */
	assert_int_equal(estimate(db, "x-aa"), aa);
	assert_int_equal(estimate(db, "--"), 0);
	assert_int_equal(estimate(db, ""), 0);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_index),
		cmocka_unit_test(test_estimate_covers_the_prefix_terms),
		cmocka_unit_test(test_estimate_during_merges),
		cmocka_unit_test(test_estimate_in_leaves_of_the_table_s_size),
		cmocka_unit_test(test_estimate_grows_with_the_index),
		cmocka_unit_test(test_folded_as_the_tokenizer_folds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
