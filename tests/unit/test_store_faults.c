/* Unit tests: the store's error paths under injected SQLite failures.
 *
 * The failures are injected with SQLite's authorizer, which makes chosen
 * statements fail to prepare exactly as a damaged or unreadable database
 * would: on a store's own connection (mv_store_db) for the index generation,
 * and through an auto-extension on every new connection for RecoverStore's
 * fresh database, which no caller can reach otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "store/internal.h"
#include <sodium.h>
#include <string.h>

#include "store_fixture.h"

/* Denies every read of table meta: the db's index generation cannot be read. */
static int deny_meta(void *opaque, int action, const char *a, const char *b, const char *c, const char *d)
{
	(void)opaque, (void)b, (void)c, (void)d;
	return action == SQLITE_READ && a && strcmp(a, "meta") == 0 ? SQLITE_DENY : SQLITE_OK;
}

static char *index_generation(const fixture *f)
{
	char *file = g_build_filename(f->paths.index_dir, "index.sqlite", NULL);
	sqlite3 *ix = NULL;
	sqlite3_stmt *st = NULL;
	GError *err = NULL;
	assert_int_equal(mv_store_sql_open(file, key, MV_STORE_SQL_INDEX, true, false, true, &ix, &err), 0);
	assert_int_equal(sqlite3_prepare_v2(ix, "SELECT value FROM index_state WHERE key='generation'", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char *gen = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(ix);
	g_free(file);
	return gen;
}

/* A generation that cannot be read is an error, not a different one. */
static void test_generation_check_read_error(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	sqlite3_set_authorizer(mv_store_db(s), deny_meta, NULL);
	bool stale = true;
	assert_int_equal(mv_store_index_stale(s, &stale, &err), -1);
	assert_non_null(err);
	g_clear_error(&err);
	sqlite3_set_authorizer(mv_store_db(s), NULL, NULL);
	assert_int_equal(mv_store_index_stale(s, &stale, &err), 0);
	assert_false(stale);
	mv_store_close(&s);
}

/* An index of another generation than its db names other messages by its
 * rowids: stale for that, whatever its format. */
static void test_staleness_tells_generation_from_format(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	bool other_generation = true, other_format = true;
	assert_int_equal(mv_store_index_staleness(s, &other_generation, &other_format, &err), 0);
	assert_false(other_generation);
	assert_false(other_format);
	const char *prefix;
	assert_int_equal(mv_sql_exec(mv_store_index_conn(s, &prefix),
	                             "UPDATE index_state SET value='0123' WHERE key='generation'", &err), 0);
	assert_int_equal(mv_store_index_staleness(s, &other_generation, &other_format, &err), 0);
	assert_true(other_generation);
	assert_false(other_format);
	bool stale = false;
	assert_int_equal(mv_store_index_stale(s, &stale, &err), 0);
	assert_true(stale);
	mv_store_close(&s);
}

/* Taking the write lock over an unreadable generation fails and leaves the
 * index alone, instead of taking it for stale and wiping it. */
static void test_write_lock_keeps_index_on_read_error(void **state)
{
	fixture *f = *state;
	char *before = index_generation(f);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	sqlite3_set_authorizer(mv_store_db(s), deny_meta, NULL);
	assert_int_equal(mv_store_refresh_index(s, &err), -1);
	assert_non_null(err);
	g_clear_error(&err);
	sqlite3_set_authorizer(mv_store_db(s), NULL, NULL);
	mv_store_close(&s);
	char *after = index_generation(f);
	assert_string_equal(before, after);
	g_free(before);
	g_free(after);
}

/* RecoverStore's new db (its file ends in ".recovering") cannot count. */
static int deny_count(void *opaque, int action, const char *a, const char *b, const char *c, const char *d)
{
	(void)opaque, (void)a, (void)c, (void)d;
	return action == SQLITE_FUNCTION && b && strcmp(b, "count") == 0 ? SQLITE_DENY : SQLITE_OK;
}

static bool count_denied;

static int deny_count_on_recovering(sqlite3 *db, char **errmsg, const void *api)
{
	(void)errmsg, (void)api;
	const char *file = sqlite3_db_filename(db, "main");
	if (count_denied && file && g_str_has_suffix(file, ".recovering"))
		sqlite3_set_authorizer(db, deny_count, NULL);
	return SQLITE_OK;
}

/* A count that fails fails the recovery; it never reports -1 folders. */
static void test_recover_count_error(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	json_t *report = NULL;
	count_denied = true;
	int rc = mv_store_recover(1, &f->paths, key, false, NULL, &report, &err);
	count_denied = false;
	if (rc == 0)
		fail_msg("RecoverStore succeeded with foldersRecovered %lld",
		         (long long)json_integer_value(json_object_get(report, "foldersRecovered")));
	assert_non_null(err);
	g_clear_error(&err);
	/* Without the fault the same store recovers, its one folder counted. */
	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(report, "foldersRecovered")), 1);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 1);
	json_decref(report);
}

/* A writer with a lock wait gives up on a lock another holds, with
 * MV_ERR_STATE and nothing written, and writes once the lock is free. */
/* A message besides the fixture's one. */
static mv_store_item second_message(void)
{
	static const char raw[] = "Subject: second\r\nFrom: b@example.org\r\n\r\nanother body\r\n";
	mv_store_item it = { .archive = "alice", .folder = "Inbox", .raw = (const uint8_t *)raw, .raw_len = strlen(raw),
	                     .archived_at = 1700000100, .source = "file", .origin = "test", .subject = "second",
	                     .from = "b@example.org", .text = "another body", .date = 1700000100 };
	crypto_generichash(it.hash, sizeof it.hash, it.raw, it.raw_len, NULL, 0);
	return it;
}

/* Two writers of the fixture's store, the first holding the write lock. */
static void holder_and_waiter(const fixture *f, mv_store **holder_r, mv_store **waiter_r)
{
	GError *err = NULL;
	*holder_r = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	*waiter_r = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(*holder_r);
	assert_non_null(*waiter_r);
	assert_int_equal(mv_store_flock(*holder_r, &err), 0);
}

static void test_lock_wait_bounded(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *holder, *waiter;
	holder_and_waiter(f, &holder, &waiter);
	mv_store_set_lock_wait(waiter, 0.3);
	mv_store_item it = second_message();
	double t0 = mv_monotonic();
	assert_int_equal(mv_store_add_batch(waiter, &it, 1, 1, &err), -1);
	double waited = mv_monotonic() - t0;
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_STATE));
	assert_non_null(strstr(err->message, "stayed locked for 0 s"));
	g_clear_error(&err);
	if (waited < 0.3 || waited > 5)
		fail_msg("gave up after %.2f s, the wait is 0.3 s", waited);
	assert_int_equal(mv_store_message_count(waiter), 1);
	mv_store_close(&holder);
	assert_int_equal(mv_store_add_batch(waiter, &it, 1, 1, &err), 0);
	assert_int_equal(mv_store_sync(waiter, &err), 0);
	assert_int_equal(mv_store_message_count(waiter), 2);
	mv_store_close(&waiter);
}

static gpointer cancel_later(gpointer flag)
{
	g_usleep(300 * 1000);
	g_atomic_int_set((volatile gint *)flag, 1);
	return NULL;
}

/* A rebuild (or an export's bring-up) queued behind another task's lock,
 * with no bound on its wait, still stops when its caller cancels: at once
 * when asked before, and while it waits when asked during.  Nothing done. */
static void test_lock_wait_cancelled(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	char *before = index_generation(f);
	mv_store *holder, *waiter;
	holder_and_waiter(f, &holder, &waiter);
	volatile gint stop = 1;
	mv_task task = { .cancel = &stop };
	double t0 = mv_monotonic();
	assert_int_equal(mv_store_rebuild_index(waiter, &task, &err), -1);
	assert_true(mv_monotonic() - t0 < 5);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED));
	assert_non_null(strstr(err->message, "while waiting for its write lock"));
	g_clear_error(&err);
	/* CompactStore waits the same way. */
	json_t *report = NULL;
	assert_int_equal(mv_store_compact(waiter, &task, &report, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED));
	assert_null(report);
	g_clear_error(&err);
	g_atomic_int_set(&stop, 0);
	GThread *canceller = g_thread_new("cancel", cancel_later, (gpointer)&stop);
	t0 = mv_monotonic();
	assert_int_equal(mv_store_rebuild_index(waiter, &task, &err), -1);
	double waited = mv_monotonic() - t0;
	g_thread_join(canceller);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED));
	g_clear_error(&err);
	if (waited < 0.3 || waited > 5)
		fail_msg("stopped after %.2f s, cancelled at 0.3 s", waited);
	char *after = index_generation(f);
	assert_string_equal(before, after);   /* not made anew */
	g_free(before);
	g_free(after);
	/* The lock let go, the same handle rebuilds: the flag did not stay. */
	mv_store_close(&holder);
	mv_task plain = { 0 };
	assert_int_equal(mv_store_rebuild_index(waiter, &plain, &err), 0);
	mv_store_close(&waiter);
}

/* A writer with a 30 s wait is refused at once, as if the lock were held,
 * and writes nothing: the index is left to the server's upkeep. */
static void assert_bounded_write_refused(mv_store *s, mv_store_item *it)
{
	GError *err = NULL;
	int64_t before = mv_store_message_count(s);
	mv_store_set_lock_wait(s, 30);
	double t0 = mv_monotonic();
	assert_int_equal(mv_store_add_batch(s, it, 1, 1, &err), -1);
	assert_true(mv_monotonic() - t0 < 5);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_STATE));
	assert_non_null(strstr(err->message, "store 1's index must be rebuilt"));
	g_clear_error(&err);
	assert_int_equal(mv_store_message_count(s), before);
}

/* A writer with a bounded wait (SMTP) does not rebuild a stale index
 * itself, which takes minutes for a large store while its senders wait: it
 * fails as if the lock were held, nothing written, and the index is left
 * to a writer without a bound (the server's scheduler, an admin). */
static void test_bounded_writer_leaves_a_stale_index(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	const char *prefix;
	assert_int_equal(mv_sql_exec(mv_store_index_conn(s, &prefix),
	                             "UPDATE index_state SET value=4 WHERE key='format_version'", &err), 0);
	mv_store_item it = second_message();
	assert_bounded_write_refused(s, &it);
	bool stale = false, other_generation = true, other_format = false;
	assert_int_equal(mv_store_index_stale(s, &stale, &err), 0);
	assert_true(stale);
	/* Stale for its format alone: read rightly as it is (export/complete.c
	 * leaves it so). */
	assert_int_equal(mv_store_index_staleness(s, &other_generation, &other_format, &err), 0);
	assert_false(other_generation);
	assert_true(other_format);
	mv_store_set_lock_wait(s, 0);   /* a writer without a bound rebuilds, then writes */
	assert_int_equal(mv_store_add_batch(s, &it, 1, 1, &err), 0);
	assert_int_equal(mv_store_sync(s, &err), 0);
	assert_int_equal(mv_store_message_count(s), 2);
	assert_int_equal(mv_store_index_stale(s, &stale, &err), 0);
	assert_false(stale);
	mv_store_close(&s);
}

/* n messages besides the fixture's, in big batches, each its own content. */
static void add_many(mv_store *s, int n)
{
	enum { BATCH = 5000 };
	mv_store_item *items = g_new0(mv_store_item, BATCH);
	char **raws = g_new0(char *, BATCH);
	for (int done = 0; done < n;) {
		int k = MIN(BATCH, n - done);
		for (int i = 0; i < k; i++) {
			raws[i] = g_strdup_printf("Subject: bulk %d\r\n\r\nbulk body %d\r\n", done + i, done + i);
			items[i] = (mv_store_item){ .archive = "alice", .folder = "Bulk", .raw = (const uint8_t *)raws[i],
				                    .raw_len = strlen(raws[i]), .archived_at = 1700000200, .source = "file",
				                    .origin = "test", .subject = "bulk", .text = raws[i], .date = 1700000200 };
			crypto_generichash(items[i].hash, sizeof items[i].hash, items[i].raw, items[i].raw_len, NULL, 0);
		}
		GError *err = NULL;
		if (mv_store_add_batch(s, items, (size_t)k, 1, &err) < 0)
			fail_msg("add: %s", err->message);
		for (int i = 0; i < k; i++)
			g_free(raws[i]);
		done += k;
	}
	g_free(raws);
	g_free(items);
}

static ino_t index_inode(const fixture *f)
{
	char *ixp = mv_store_index_file(&f->paths);
	struct stat st;
	assert_int_equal(stat(ixp, &st), 0);
	g_free(ixp);
	return st.st_ino;
}

/* The rest of a rebuild stopped part way (the server stopped) is more than
 * a sender should wait for: a writer with a bounded wait leaves it to the
 * background like a stale index, and mv_store_index_bring_up, the server's
 * upkeep, indexes what is missing without starting over — nothing at all
 * once the index is up to date. */
static void test_bounded_writer_leaves_a_long_catch_up(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	add_many(s, MV_INDEX_INLINE_CATCH_UP);
	assert_int_equal(mv_store_sync(s, &err), 0);
	int64_t total = mv_store_message_count(s);
	assert_int_equal(total, MV_INDEX_INLINE_CATCH_UP + 1);
	/* a rebuild stopped right after making the index anew */
	assert_int_equal(mv_store_flock(s, &err), 0);
	assert_int_equal(mv_store_index_reset(s, &err), 0);
	assert_int_equal(mv_store_finish_locked(s, 0, &err), 0);
	ino_t anew = index_inode(f);
	bool needed = false;
	assert_int_equal(mv_store_index_needs_upkeep(s, &needed, &err), 0);
	assert_true(needed);
	mv_store_item it = second_message();
	assert_bounded_write_refused(s, &it);
	/* Cancelled (a server stopping), the bring-up leaves the rest as it is,
	 * and so does its handle's close. */
	mv_store *other = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(other);
	volatile gint stop = 1;
	mv_task cancelled = { .cancel = &stop };
	double t0 = mv_monotonic();
	assert_int_equal(mv_store_index_bring_up(other, &cancelled, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CANCELLED));
	g_clear_error(&err);
	mv_store_close(&other);
	assert_true(mv_monotonic() - t0 < 5);
	assert_int_equal(mv_store_index_needs_upkeep(s, &needed, &err), 0);
	assert_true(needed);
	mv_task task = { 0 };
	assert_int_equal(mv_store_index_bring_up(s, &task, &err), 0);
	assert_true(index_inode(f) == anew);   /* caught up, not made anew again */
	int64_t upto = 0;
	assert_int_equal(mv_store_indexed_upto(s, &upto, &err), 0);
	assert_int_equal(upto, total);
	assert_int_equal(mv_store_index_needs_upkeep(s, &needed, &err), 0);
	assert_false(needed);
	assert_int_equal(mv_store_add_batch(s, &it, 1, 1, &err), 0);   /* the bounded writer writes again */
	assert_int_equal(mv_store_sync(s, &err), 0);
	assert_int_equal(mv_store_index_bring_up(s, &task, &err), 0);
	assert_true(index_inode(f) == anew);
	/* Deleted messages are never indexed: a deleted tail is no gap. */
	assert_int_equal(mv_sql_exec(mv_store_db(s), "UPDATE messages SET deleted = 1 WHERE num > 2", &err), 0);
	assert_int_equal(mv_store_flock(s, &err), 0);
	assert_int_equal(mv_store_index_reset(s, &err), 0);
	assert_int_equal(mv_store_finish_locked(s, 0, &err), 0);
	assert_int_equal(mv_store_index_needs_upkeep(s, &needed, &err), 0);
	assert_false(needed);
	mv_store_close(&s);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof key);
	sqlite3_auto_extension((void (*)(void))deny_count_on_recovering);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generation_check_read_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staleness_tells_generation_from_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_lock_keeps_index_on_read_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_count_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_wait_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_wait_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_writer_leaves_a_stale_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_writer_leaves_a_long_catch_up, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
