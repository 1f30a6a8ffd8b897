/* Unit tests for search/prefix_terms: the words of a real FTS5 table shaped
 * like the store's index (contentless, unicode61 remove_diacritics 2) that
 * begin with a prefix, read from every segment of an index that grew by
 * several commits, attached as the store attaches its index ("ix.") or as
 * the main database; none past the bound, none that merely sort near. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "search/prefix_cost.h"
#include "search/prefix_terms.h"

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* One commit, so one segment, per text: automerge is off. */
static sqlite3 *index_db(const char *schema, const char *const *commits)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	if (*schema)
		exec(db, "ATTACH ':memory:' AS ix");
	char *sql = g_strdup_printf("CREATE VIRTUAL TABLE %sfts USING fts5(body, subject, content='',"
	                            " tokenize='unicode61 remove_diacritics 2');"
	                            "INSERT INTO %sfts(fts, rank) VALUES('automerge', 0)", schema, schema);
	exec(db, sql);
	g_free(sql);
	for (int i = 0; commits[i]; i++) {
		sql = sqlite3_mprintf("INSERT INTO %sfts(rowid, body, subject) VALUES(%d, %Q, 'x')", schema, i + 1, commits[i]);
		exec(db, sql);
		sqlite3_free(sql);
	}
	return db;
}

/* The words `text*` stands for, joined by spaces; NULL when more than max. */
static char *words_of(sqlite3 *db, const char *schema, const char *text, guint max)
{
	GString *key = g_string_new(NULL);
	GPtrArray *terms = NULL;
	GError *err = NULL;
	int tokens = 0;
	assert_int_equal(mv_prefix_key(db, text, key, &tokens, &err), 0);
	assert_int_equal(tokens, 1);
	if (mv_prefix_terms(db, schema, key, max, &terms, &err) < 0)
		fail_msg("%s", err->message);
	g_string_free(key, TRUE);
	if (!terms)
		return NULL;
	g_ptr_array_add(terms, NULL);
	char *joined = g_strjoinv(" ", (char **)terms->pdata);
	g_ptr_array_free(terms, TRUE);
	return joined;
}

static const char *const commits[] = {
	"money monet moneyed mond", "monetary montage", "money2002 moneyed zmoney", "mone", NULL,
};

static void test_words_of_every_segment(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		const char *schema = i ? "" : "ix.";
		sqlite3 *db = index_db(schema, commits);
		char *w = words_of(db, schema, "mone", 10);
		assert_string_equal(w, "mone monet monetary money money2002 moneyed");
		g_free(w);
		w = words_of(db, schema, "MONEY", 10);
		assert_string_equal(w, "money money2002 moneyed");
		g_free(w);
		w = words_of(db, schema, "monz", 10);
		assert_string_equal(w, "");
		g_free(w);
		sqlite3_close(db);
	}
}

static void test_none_past_the_bound(void **state)
{
	(void)state;
	sqlite3 *db = index_db("ix.", commits);
	char *w = words_of(db, "ix.", "mon", 8);
	assert_non_null(w);
	assert_string_equal(w, "mond mone monet monetary money money2002 moneyed montage");
	g_free(w);
	assert_null(words_of(db, "ix.", "mon", 7));
	sqlite3_close(db);
}

/* Folded as the tokenizer folds: "Mönt" is the key "mont". */
static void test_folded_key(void **state)
{
	(void)state;
	sqlite3 *db = index_db("ix.", commits);
	char *w = words_of(db, "ix.", "M\xc3\xb6nt", 10);
	assert_string_equal(w, "montage");
	g_free(w);
	sqlite3_close(db);
}

/* What fts5vocab lists for `key*`, joined by spaces. */
static char *vocab_words(sqlite3 *db, const char *key)
{
	exec(db, "CREATE VIRTUAL TABLE IF NOT EXISTS temp.v USING fts5vocab(ix, fts, 'row')");
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT term FROM temp.v WHERE term >= ?1 AND term < ?1 || char(1114111)"
	                                        " ORDER BY term", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	GString *out = g_string_new(NULL);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_string_append_printf(out, "%s%s", out->len ? " " : "", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return g_string_free(out, FALSE);
}

/* Small leaves (pgsz 64), FTS5's own incremental merges, 60 commits of
 * pseudo-words, some long enough to span leaves: every one-, two- and
 * three-letter prefix lists exactly the words fts5vocab lists. */
static void test_same_words_as_fts5vocab(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec(db, "ATTACH ':memory:' AS ix;"
	         "CREATE VIRTUAL TABLE ix.fts USING fts5(body, subject, content='', tokenize='unicode61 remove_diacritics 2');"
	         "INSERT INTO ix.fts(fts, rank) VALUES('pgsz', 64);");
	GRand *rng = g_rand_new_with_seed(17);
	GString *body = g_string_new(NULL);
	int64_t rowid = 0;
	for (int commit = 0; commit < 60; commit++) {
		exec(db, "BEGIN");
		for (int d = 0; d < 40; d++) {
			g_string_truncate(body, 0);
			for (int w = 0; w < 12; w++) {
				int len = g_rand_int_range(rng, 1, w == 0 ? 40 : 7);
				for (int i = 0; i < len; i++)
					g_string_append_c(body, (char)('a' + g_rand_int_range(rng, 0, 3)));
				g_string_append_c(body, ' ');
			}
			char *sql = sqlite3_mprintf("INSERT INTO ix.fts(rowid, body, subject) VALUES(%lld, %Q, 'x')",
			                            (long long)++rowid, body->str);
			exec(db, sql);
			sqlite3_free(sql);
		}
		exec(db, "COMMIT");
	}
	const char *letters[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++)
		for (int j = -1; j < 3; j++)
			for (int k = -1; k < 3; k++) {
				if (j < 0 && k >= 0)
					continue;
				char key[4] = { letters[i][0], j >= 0 ? letters[j][0] : 0, k >= 0 ? letters[k][0] : 0, 0 };
				char *want = vocab_words(db, key);
				char *got = words_of(db, "ix.", key, 100000);
				assert_non_null(got);
				assert_string_equal(got, want);
				g_free(want);
				g_free(got);
			}
	g_string_free(body, TRUE);
	g_rand_free(rng);
	sqlite3_close(db);
}

/* A leaf whose footer offset runs past its end is named, not read. */
static void test_damaged_leaf_is_named(void **state)
{
	(void)state;
	sqlite3 *db = index_db("ix.", commits);
	exec(db, "UPDATE ix.fts_data SET block = x'0000ffff0102' WHERE id = (SELECT min(id) FROM ix.fts_data WHERE id > 10)");
	GString *key = g_string_new("mon");
	GPtrArray *terms = NULL;
	GError *err = NULL;
	assert_int_equal(mv_prefix_terms(db, "ix.", key, 10, &terms, &err), -1);
	assert_null(terms);
	assert_int_equal(err->code, MV_ERR_CORRUPT);
	assert_non_null(strstr(err->message, "is not a well-formed FTS5 leaf"));
	g_error_free(err);
	g_string_free(key, TRUE);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words_of_every_segment),
		cmocka_unit_test(test_none_past_the_bound),
		cmocka_unit_test(test_folded_key),
		cmocka_unit_test(test_same_words_as_fts5vocab),
		cmocka_unit_test(test_damaged_leaf_is_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
