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
#include <stdint.h>

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

/* ---- encrypted at rest (sql_encrypted.c, SQLCipher) ---- */
#define MV_SQL_KEY_BYTES 32
typedef enum {
	MV_SQL_FILE_ABSENT, MV_SQL_FILE_EMPTY, MV_SQL_FILE_PLAIN, MV_SQL_FILE_ENCRYPTED, MV_SQL_FILE_UNREADABLE
} mv_sql_file_kind;
/* What a file's first bytes say it is: a plain SQLite database, or not
 * (encrypted, or not SQLite at all: only the key can tell those apart). */
mv_sql_file_kind mv_sql_file_kind_of(const char *path);
/* mv_sql_open, then the raw key, then a read that proves the key opens it
 * (MV_ERR_CORRUPT naming path when it does not).  A new file is created
 * encrypted.  Temporary storage is kept in memory. */
int mv_sql_open_encrypted(const char *path, const uint8_t key[MV_SQL_KEY_BYTES], bool create, bool readonly,
                          sqlite3 **db_r, GError **error);
/* ATTACH path AS schema, encrypted with key, proved the same way. */
int mv_sql_attach_encrypted(sqlite3 *db, const char *path, const char *schema, const uint8_t key[MV_SQL_KEY_BYTES],
                            GError **error);
/* The whole of the plain db's main schema copied into a new encrypted file
 * dest (sqlcipher_export); dest must not exist yet. */
int mv_sql_export_encrypted(sqlite3 *plain, const char *dest, const uint8_t key[MV_SQL_KEY_BYTES], GError **error);

#endif
