/* Unit tests: what makes a store's lookups fast, set on every store.
 *
 * The db's messages_order index is the order key (MV_ORDER_KEY_SQL): a
 * search over the db alone walks it for newest first.  SQLite uses an index
 * on an expression only for the same expression, so the search's SQL and
 * the index's must stay one text, and a store made before the index must
 * get it from its first writer.
 *
 * The index file's FTS5 options: the leaf size (pgsz) keeps FTS5's leaves inside one SQLCipher page and
 * automerge sets how many segments a level gathers before FTS5 merges them
 * (bench/RESULTS.md).  Both live in the index file, so each way an index
 * comes to be must set them: a new store, a store made before an option
 * existed (its first writer sets it), and RecoverStore's index built anew.
 *
 * A reader's page cache for the attached index: relevance reads every
 * hit's column sizes, and a page missed is decrypted again.
 *
 * The index's column order (format 5: body first, which saves FTS5 two
 * bytes per body word per message): an older index keeps its columns when
 * emptied, so its writer makes it anew, and a writer that kept its
 * connection on the file another one replaced follows to the new file.
 * A writer's WAL is cut back after a big transaction, not kept that size
 * while the connection lives (journal_size_limit).
 *
 * What a search cannot see yet: the live messages of the folders it reads
 * past where the index has come (mv_store_index_lag_in). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/internal.h"
#include <sodium.h>
#include <string.h>

#include "store_fixture.h"

static int64_t index_option(mv_store *s, const char *name)
{
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	char *sql = sqlite3_mprintf("SELECT v FROM %sfts_config WHERE k=%Q", prefix, name);
	int64_t value = -1;
	GError *err = NULL;
	if (mv_store_int_query(ix, sql, "read an index option", &value, &err) < 0)
		fail_msg("%s: %s", name, err->message);
	sqlite3_free(sql);
	return value;
}

static void assert_index_options(const fixture *f, mv_store_mode mode)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, mode, &err);
	if (!s)
		fail_msg("open: %s", err->message);
	assert_int_equal(index_option(s, "pgsz"), 3960);
	assert_int_equal(index_option(s, "automerge"), 8);
	mv_store_close(&s);
}

static void test_new_store_has_options(void **state)
{
	assert_index_options(*state, MV_STORE_READ);
}

/* An index made with FTS5's defaults gets the options from its next writer. */
static void test_writer_sets_missing_options(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	assert_string_equal(prefix, "");
	assert_int_equal(mv_sql_exec(ix, "DELETE FROM fts_config WHERE k IN ('pgsz', 'automerge')", &err), 0);
	assert_int_equal(index_option(s, "automerge"), 0);
	mv_store_close(&s);
	assert_index_options(f, MV_STORE_WRITE);
	assert_index_options(f, MV_STORE_READ);
}

static void test_reader_index_cache(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	if (!s)
		fail_msg("open: %s", err->message);
	int64_t pages = 0;
	assert_int_equal(mv_store_int_query(mv_store_db(s), "PRAGMA ix.cache_size", "cache size", &pages, &err), 0);
	assert_int_equal(pages, -32768);   /* KiB */
	mv_store_close(&s);
}

/* The plan of a newest-first listing over a date range: SQLite reads the
 * messages_order index, with no sort. */
static char *listing_plan(mv_store *s)
{
	sqlite3_stmt *st = NULL;
	const char *sql = "EXPLAIN QUERY PLAN SELECT m.num FROM messages m WHERE m.deleted = 0"
	                  " AND " MV_ORDER_KEY_SQL("m.") " >= ? AND " MV_ORDER_KEY_SQL("m.") " < ?"
	                  " ORDER BY " MV_ORDER_KEY_SQL("m.") " LIMIT 50";
	assert_int_equal(sqlite3_prepare_v2(mv_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	GString *plan = g_string_new(NULL);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_string_append_printf(plan, "%s\n", (const char *)sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	return g_string_free(plan, FALSE);
}

static void assert_listing_uses_order_index(const fixture *f)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_non_null(s);
	char *plan = listing_plan(s);
	if (!strstr(plan, "messages_order") || strstr(plan, "TEMP B-TREE"))
		fail_msg("the listing does not walk messages_order:\n%s", plan);
	g_free(plan);
	mv_store_close(&s);
}

static void test_listing_walks_order_index(void **state)
{
	assert_listing_uses_order_index(*state);
}

/* A store made before messages_order gets it from its next writer. */
static void test_writer_adds_order_index(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	assert_int_equal(mv_sql_exec(mv_store_db(s), "DROP INDEX messages_order", &err), 0);
	char *plan = listing_plan(s);
	assert_non_null(strstr(plan, "TEMP B-TREE"));
	g_free(plan);
	mv_store_close(&s);
	s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	mv_store_close(&s);
	assert_listing_uses_order_index(f);
}

static int64_t index_count(mv_store *s, const char *name)
{
	GError *err = NULL;
	int64_t n = -1;
	char *sql = g_strdup_printf("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '%s'", name);
	assert_int_equal(mv_store_int_query(mv_store_db(s), sql, "indexes", &n, &err), 0);
	g_free(sql);
	return n;
}

/* messages_date, which older stores have, is dropped by the next writer:
 * every index whose keys arrive in no order costs each message a page
 * written per commit, and messages_order and messages_folder_date serve
 * what it served. */
static void test_writer_drops_date_index(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	assert_int_equal(index_count(s, "messages_date"), 0);
	assert_int_equal(mv_sql_exec(mv_store_db(s), "CREATE INDEX messages_date ON messages(date)", &err), 0);
	mv_store_close(&s);
	s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_int_equal(index_count(s, "messages_date"), 1);
	mv_store_close(&s);
	s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	assert_int_equal(index_count(s, "messages_date"), 0);
	assert_int_equal(index_count(s, "messages_folder_date"), 1);
	mv_store_close(&s);
}

static void test_recovered_index_has_options(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	json_t *report = NULL;
	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	json_decref(report);
	assert_index_options(f, MV_STORE_READ);
}

static mv_store *open_store(const fixture *f, mv_store_mode mode)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, mode, &err);
	if (!s)
		fail_msg("open: %s", err->message);
	return s;
}

static void add_message_in(mv_store *s, const char *folder, const char *word)
{
	char *raw = g_strdup_printf("Subject: %s\r\nFrom: b@example.org\r\n\r\n%s\r\n", word, word);
	mv_store_item it = { .archive = "alice", .folder = folder, .raw = (const uint8_t *)raw, .raw_len = strlen(raw),
	                     .archived_at = 1700000100, .source = "file", .origin = "test", .subject = word,
	                     .from = "b@example.org", .text = word, .date = 1700000100 };
	crypto_generichash(it.hash, sizeof it.hash, it.raw, it.raw_len, NULL, 0);
	GError *err = NULL;
	if (mv_store_add_batch(s, &it, 1, 1, &err) < 0 || mv_store_sync(s, &err) < 0)
		fail_msg("add: %s", err->message);
	g_free(raw);
}

static void add_message(mv_store *s, const char *word)
{
	add_message_in(s, "Inbox", word);
}

/* How many documents a reader's index finds for an FTS5 query. */
static int64_t index_hits(const fixture *f, const char *match)
{
	mv_store *r = open_store(f, MV_STORE_READ);
	char *sql = sqlite3_mprintf("SELECT count(*) FROM ix.fts WHERE fts MATCH %Q", match);
	int64_t n = -1;
	GError *err = NULL;
	if (mv_store_int_query(mv_store_db(r), sql, "count hits", &n, &err) < 0)
		fail_msg("%s: %s", match, err->message);
	sqlite3_free(sql);
	mv_store_close(&r);
	return n;
}

static void exec_on_index(mv_store *s, const char *sql)
{
	const char *prefix;
	GError *err = NULL;
	if (mv_sql_exec(mv_store_index_conn(s, &prefix), sql, &err) < 0)
		fail_msg("%s: %s", sql, err->message);
}

static void test_older_column_order_made_anew(void **state)
{
	fixture *f = *state;
	mv_store *s = open_store(f, MV_STORE_WRITE);
	exec_on_index(s, "DROP TABLE fts; CREATE VIRTUAL TABLE fts USING fts5(subject, sender, recipients, cc, bcc, body,"
	                 " attachment, folder, archive, messageid, scope, content='',"
	                 " tokenize='unicode61 remove_diacritics 2');"
	                 " UPDATE index_state SET value=4 WHERE key='format_version'");
	mv_store_close(&s);
	s = open_store(f, MV_STORE_WRITE);
	GError *err = NULL;
	if (mv_store_write_lock(s, &err) < 0 || mv_store_sync(s, &err) < 0)
		fail_msg("lock: %s", err->message);
	mv_store_close(&s);
	mv_store *r = open_store(f, MV_STORE_READ);
	char *sql = NULL;
	assert_int_equal(mv_store_text_query(mv_store_db(r), "SELECT sql FROM ix.sqlite_schema WHERE name='fts'", "schema",
	                                     &sql, &err), 0);
	assert_non_null(strstr(sql, "fts5( body, subject,"));
	g_free(sql);
	int64_t format = 0;
	assert_int_equal(mv_store_index_format(r, &format, &err), 0);
	assert_int_equal(format, MV_INDEX_FORMAT);
	mv_store_close(&r);
	assert_int_equal(index_hits(f, "body : text"), 1);
}

static void test_writer_follows_recreated_index(void **state)
{
	fixture *f = *state;
	mv_store *kept = open_store(f, MV_STORE_WRITE);   /* its connection on the file about to go */
	/* The old file stays current to the kept handle's eyes: only the file's
	 * identity tells it that the index is elsewhere now. */
	mv_store *other = open_store(f, MV_STORE_WRITE);
	GError *err = NULL;
	if (mv_store_write_lock(other, &err) < 0 || mv_store_index_recreate(other, &err) < 0 ||
	    mv_store_sync(other, &err) < 0)
		fail_msg("recreate: %s", err->message);
	mv_store_close(&other);
	add_message(kept, "afterwards");
	mv_store_close(&kept);
	assert_int_equal(index_hits(f, "body : text"), 1);
	assert_int_equal(index_hits(f, "body : afterwards"), 1);
}

static void test_writer_wal_is_cut_back(void **state)
{
	fixture *f = *state;
	mv_store *s = open_store(f, MV_STORE_WRITE);
	const char *prefix;
	sqlite3 *conns[] = { mv_store_db(s), mv_store_index_conn(s, &prefix) };
	for (size_t i = 0; i < G_N_ELEMENTS(conns); i++) {
		int64_t limit = 0;
		GError *err = NULL;
		assert_int_equal(mv_store_int_query(conns[i], "PRAGMA journal_size_limit", "wal limit", &limit, &err), 0);
		assert_int_equal(limit, 64 << 20);
	}
	mv_store_close(&s);
}

/* A run that writes nothing (every message already archived) after a
 * writer was killed with documents in hand: its sync catches the index up,
 * or searches would miss those messages until some writer came. */
static void test_sync_without_writes_catches_up(void **state)
{
	fixture *f = *state;
	mv_store *s = open_store(f, MV_STORE_WRITE);
	exec_on_index(s, "INSERT INTO fts(fts) VALUES('delete-all'); DELETE FROM index_state WHERE key='indexed_upto'");
	assert_int_equal(index_hits(f, "body : text"), 0);
	GError *err = NULL;
	if (mv_store_sync(s, &err) < 0)
		fail_msg("sync: %s", err->message);
	assert_int_equal(index_hits(f, "body : text"), 1);
	mv_store_close(&s);
}

/* What a search cannot see yet (mv_store_index_lag_in): live messages past
 * indexed_upto, in the folders asked.  Messages 1, 2, 5 in Inbox and 3, 4
 * in Other; 4 deleted; the index holding up to 2. */
static void test_lag_in_folders(void **state)
{
	fixture *f = *state;
	mv_store *s = open_store(f, MV_STORE_WRITE);
	add_message(s, "two");
	add_message_in(s, "Other", "three");
	add_message_in(s, "Other", "four");
	add_message(s, "five");
	GError *err = NULL;
	if (mv_store_delete_message(s, 4, "test", &err) < 0)
		fail_msg("delete: %s", err->message);
	exec_on_index(s, "UPDATE index_state SET value = 2 WHERE key = 'indexed_upto'");
	mv_store_close(&s);
	mv_store *r = open_store(f, MV_STORE_READ);
	int64_t inbox = 0, other = 0, lag = -1;
	if (mv_store_int_query(mv_store_db(r), "SELECT id FROM folders WHERE path = 'Inbox'", "folder", &inbox, &err) < 0 ||
	    mv_store_int_query(mv_store_db(r), "SELECT id FROM folders WHERE path = 'Other'", "folder", &other, &err) < 0)
		fail_msg("folders: %s", err->message);
	char *inbox_ids = g_strdup_printf("%lld", (long long)inbox), *other_ids = g_strdup_printf("%lld", (long long)other);
	char *both = g_strdup_printf("%lld,%lld", (long long)inbox, (long long)other);
	const struct { const char *ids; int64_t want; } cases[] = {
		{ NULL, 2 }, { inbox_ids, 1 }, { other_ids, 1 }, { both, 2 }, { "", 0 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		if (mv_store_index_lag_in(r, cases[i].ids, &lag, &err) < 0)
			fail_msg("lag in %s: %s", cases[i].ids ? cases[i].ids : "all", err->message);
		assert_int_equal(lag, cases[i].want);
	}
	/* A whole index: nothing to tell. */
	mv_store_close(&r);
	s = open_store(f, MV_STORE_WRITE);
	exec_on_index(s, "UPDATE index_state SET value = 5 WHERE key = 'indexed_upto'");
	mv_store_close(&s);
	r = open_store(f, MV_STORE_READ);
	assert_int_equal(mv_store_index_lag_in(r, NULL, &lag, &err), 0);
	assert_int_equal(lag, 0);
	mv_store_close(&r);
	g_free(inbox_ids);
	g_free(other_ids);
	g_free(both);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof key);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_store_has_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_sets_missing_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovered_index_has_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listing_walks_order_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_adds_order_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_drops_date_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_index_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_older_column_order_made_anew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_follows_recreated_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_wal_is_cut_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_without_writes_catches_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lag_in_folders, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
