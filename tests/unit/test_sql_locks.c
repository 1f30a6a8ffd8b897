/* The SQLite locks a connection of this process holds survive every look
 * our own code takes at the same database file.  A descriptor of ours
 * opened and closed on it would drop them (POSIX locks belong to the
 * process), another process's connection would then think itself the last,
 * delete the WAL, and the writer's later commits would go into a deleted
 * file: an import lost whole.  The other process here is a forked child. */
#include "base/base.h"
#include "base/sql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *make_dir(void)
{
	char *dir = g_dir_make_tmp("mv-sql-locks-XXXXXX", NULL);
	assert_non_null(dir);
	return dir;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	GError *err = NULL;
	if (mv_sql_exec(db, sql, &err) < 0)
		fail_msg("%s: %s", sql, err->message);
}

/* What the other process does: open, read, close.  If it was allowed to be
 * the last connection, its close deleted the WAL. */
static int open_read_close(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : 1;
}

/* A fresh process, not a fork: a forked child inherits SQLite's table of
 * the locks this process believes it holds and would never try for its own
 * exclusive lock. */
static void other_process_opens_and_closes(const char *path)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_sql_locks", "--open-read-close", path, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int64_t rows_in(const char *path)
{
	sqlite3 *db = NULL;
	GError *err = NULL;
	assert_int_equal(mv_sql_open(path, false, true, &db, &err), 0);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void writer_keeps_its_wal(void (*look)(const char *path))
{
	char *dir = make_dir();
	char *path = g_build_filename(dir, "store.sqlite", NULL);
	char *wal = g_strconcat(path, "-wal", NULL);
	sqlite3 *db = NULL;
	GError *err = NULL;
	assert_int_equal(mv_sql_open(path, true, false, &db, &err), 0);
	exec_ok(db, "PRAGMA journal_mode=WAL");
	exec_ok(db, "PRAGMA wal_autocheckpoint=0");
	exec_ok(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");

	look(path);
	other_process_opens_and_closes(path);
	assert_true(g_file_test(wal, G_FILE_TEST_EXISTS));   /* the child was not the last connection */

	exec_ok(db, "INSERT INTO t VALUES (2)");
	sqlite3_close(db);
	assert_int_equal(rows_in(path), 2);

	g_remove(wal);
	g_autofree char *shm = g_strconcat(path, "-shm", NULL);
	g_remove(shm);
	g_remove(path);
	g_rmdir(dir);
	g_free(wal);
	g_free(path);
	g_free(dir);
}

static void look_at_kind(const char *path)
{
	assert_int_equal(mv_sql_file_kind_of(path), MV_SQL_FILE_PLAIN);
}

static void open_again_with_create(const char *path)
{
	sqlite3 *db = NULL;
	GError *err = NULL;
	assert_int_equal(mv_sql_open(path, true, false, &db, &err), 0);
	sqlite3_close(db);
}

static void test_file_kind_keeps_locks(void **state)
{
	(void)state;
	writer_keeps_its_wal(look_at_kind);
}

static void test_create_open_keeps_locks(void **state)
{
	(void)state;
	writer_keeps_its_wal(open_again_with_create);
}

static void test_file_kinds(void **state)
{
	(void)state;
	char *dir = make_dir();
	char *path = g_build_filename(dir, "x.sqlite", NULL);
	assert_int_equal(mv_sql_file_kind_of(path), MV_SQL_FILE_ABSENT);
	assert_true(g_file_set_contents(path, "", 0, NULL));
	assert_int_equal(mv_sql_file_kind_of(path), MV_SQL_FILE_EMPTY);
	assert_true(g_file_set_contents(path, "SQLite", 6, NULL));   /* shorter than the magic */
	assert_int_equal(mv_sql_file_kind_of(path), MV_SQL_FILE_ENCRYPTED);
	char *link = g_build_filename(dir, "link.sqlite", NULL);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(mv_sql_file_kind_of(link), MV_SQL_FILE_UNREADABLE);
	assert_int_equal(mv_sql_file_kind_of(dir), MV_SQL_FILE_UNREADABLE);
	g_remove(link);
	g_remove(path);
	g_rmdir(dir);
	g_free(link);
	g_free(path);
	g_free(dir);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--open-read-close") == 0)
		return open_read_close(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_kind_keeps_locks),
		cmocka_unit_test(test_create_open_keeps_locks),
		cmocka_unit_test(test_file_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
