/* base/sql: the few SQLite helpers every module with a database uses —
 * opening (private file modes), executing, preparing, stepping a statement
 * that returns nothing, copying columns out, binding blobs, and running a
 * function inside BEGIN IMMEDIATE .. COMMIT.  One copy of each, so that an
 * error from SQLite always reads the same way (the database's file, SQLite's
 * message, and a hint when the disk is full). */
#ifndef MV_BASE_SQL_H
#define MV_BASE_SQL_H

#include <glib.h>
#include <sqlite3.h>
#include <stdbool.h>

/* Sets *error from db's last error: "<what> (<file>): <sqlite message>". */
void mv_sql_set_error(GError **error, sqlite3 *db, const char *what);
/* Runs SQL without results (several statements allowed). */
int mv_sql_exec(sqlite3 *db, const char *sql, GError **error);
/* Opens (create: creates 0600 first) with a long busy timeout, so that two
 * writers wait for each other instead of failing. */
int mv_sql_open(const char *path, bool create, bool readonly, sqlite3 **db_r, GError **error);
int mv_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st_r, GError **error);
/* Steps a statement that returns no row, then finalizes it (always). */
int mv_sql_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, GError **error);
/* Copies of a column; NULL for SQL NULL (the caller frees). */
char *mv_sql_column_text(sqlite3_stmt *st, int col);
GBytes *mv_sql_column_bytes(sqlite3_stmt *st, int col);
/* Binds b (NULL binds SQL NULL); an empty blob stays an empty blob. */
void mv_sql_bind_bytes(sqlite3_stmt *st, int col, GBytes *b);
/* BEGIN IMMEDIATE, fn, COMMIT; ROLLBACK when either fails. */
typedef int (*mv_sql_txn_fn)(void *opaque, GError **error);
int mv_sql_in_transaction(sqlite3 *db, mv_sql_txn_fn fn, void *opaque, GError **error);

#endif
