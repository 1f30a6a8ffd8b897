/* base/sql: one copy of the SQLite helpers (see sql.h).  They live in base
 * because store/, archive/ and search/ each keep databases, and each had
 * grown its own step-and-finalize, column copy and transaction wrapper. */
#include "base/sql.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* SQLite says "database or disk is full" for ENOSPC; the admin reading the
 * message should not have to know that this means the disk. */
static const char *sql_full_hint(int code)
{
	return code == SQLITE_FULL ? " (no space left on the device)" : "";
}

static int sql_error_kind(int code)
{
	return code == SQLITE_FULL ? MV_ERR_NO_SPACE :
	       (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) ? MV_ERR_CORRUPT : MV_ERR_IO;
}

void mv_sql_set_error(GError **error, sqlite3 *db, const char *what)
{
	int code = sqlite3_errcode(db);
	g_set_error(error, MV_ERROR, sql_error_kind(code), "%s (%s): %s%s", what, sqlite3_db_filename(db, "main") ?
	            sqlite3_db_filename(db, "main") : "sqlite", sqlite3_errmsg(db), sql_full_hint(code));
}

int mv_sql_exec(sqlite3 *db, const char *sql, GError **error)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	int code = sqlite3_errcode(db);
	g_set_error(error, MV_ERROR, sql_error_kind(code), "%s: %s%s", sqlite3_db_filename(db, "main"),
	            msg ? msg : "error", sql_full_hint(code));
	sqlite3_free(msg);
	return -1;
}

int mv_sql_open(const char *path, bool create, bool readonly, sqlite3 **db_r, GError **error)
{
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (create) {
		/* SQLite creates a database 0644 less the umask, and its -wal and
		 * -shm take the database's mode: made 0600 here first, all three
		 * are private whatever the umask or the directory.
		 * O_EXCL: a descriptor opened and closed on a database that a
		 * connection of this process holds would drop its POSIX locks
		 * (see mv_sql_file_kind_of), so an existing file is left alone. */
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			mv_set_errno_error(error, errno, "create", path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		flags |= SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW;
	}
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "open database %s: %s", path,
		            db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	/* Writers wait for each other instead of failing: that is how two
	 * imports on one data directory serialise. */
	sqlite3_busy_timeout(db, 600000);
	*db_r = db;
	return 0;
}

int mv_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st_r, GError **error)
{
	if (sqlite3_prepare_v2(db, sql, -1, st_r, NULL) == SQLITE_OK)
		return 0;
	mv_sql_set_error(error, db, "prepare");
	return -1;
}

int mv_sql_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, GError **error)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		mv_sql_set_error(error, db, what);   /* before finalize, which resets the message */
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

char *mv_sql_column_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? g_strdup((const char *)t) : NULL;
}

GBytes *mv_sql_column_bytes(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	const void *data = sqlite3_column_blob(st, col);
	return g_bytes_new(data, (gsize)sqlite3_column_bytes(st, col));
}

void mv_sql_bind_bytes(sqlite3_stmt *st, int col, GBytes *b)
{
	if (!b) {
		sqlite3_bind_null(st, col);
		return;
	}
	gsize len = 0;
	const void *data = g_bytes_get_data(b, &len);
	/* A zero-length blob must not become NULL (key columns are NOT NULL). */
	sqlite3_bind_blob(st, col, len ? data : "", (int)len, SQLITE_TRANSIENT);
}

int mv_sql_in_transaction(sqlite3 *db, mv_sql_txn_fn fn, void *opaque, GError **error)
{
	if (mv_sql_exec(db, "BEGIN IMMEDIATE", error) < 0)
		return -1;
	if (fn(opaque, error) < 0 || mv_sql_exec(db, "COMMIT", error) < 0) {
		mv_sql_exec(db, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}
