/* base/sql_encrypted: SQLite files encrypted at rest with SQLCipher, keyed
 * by a raw 256-bit key.  The binary links SQLCipher (see meson.build), which
 * without a key is plain SQLite; this file is the one place that hands it a
 * key.  A raw key ("x'...'") skips SQLCipher's PBKDF2: the callers' keys are
 * already random (derived from a store's data key), and a slow derivation
 * would cost every open of a pooled reader.  A file's first page tells
 * whether it is plain: plain SQLite files begin with a fixed magic, an
 * encrypted one begins with its random salt. */
#include "base/sql.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sqlite_magic[16] = "SQLite format 3";   /* with its NUL: 16 bytes */

/* The header is read through SQLite's own file layer, never with open()
 * and close() of our own: POSIX locks belong to the process, so closing any
 * descriptor on a database drops every lock this process's connections hold
 * on it.  Another process's connection then believes itself the last one,
 * checkpoints what it sees and deletes the WAL that our writer goes on
 * appending to (an import lost that way whole).  SQLite's unix layer keeps a
 * descriptor whose inode is still locked open until the locks go. */
static int read_header(const char *path, char head[sizeof sqlite_magic])
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL);
	sqlite3_file *file = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
	if (rc == SQLITE_OK && (!file || !file->pMethods))
		rc = SQLITE_CANTOPEN;
	if (rc == SQLITE_OK)
		rc = file->pMethods->xRead(file, head, sizeof sqlite_magic, 0);
	sqlite3_close(db);
	return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc;   /* short: zero-filled, so not the magic */
}

mv_sql_file_kind mv_sql_file_kind_of(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? MV_SQL_FILE_ABSENT : MV_SQL_FILE_UNREADABLE;
	if (!S_ISREG(st.st_mode))
		return MV_SQL_FILE_UNREADABLE;
	if (st.st_size == 0)
		return MV_SQL_FILE_EMPTY;
	char head[sizeof sqlite_magic];
	if (read_header(path, head) != SQLITE_OK)
		return MV_SQL_FILE_UNREADABLE;
	return memcmp(head, sqlite_magic, sizeof head) == 0 ? MV_SQL_FILE_PLAIN : MV_SQL_FILE_ENCRYPTED;
}

/* "x'<64 hex>'" in memory the caller wipes (key_clause_free). */
static char *key_clause(const uint8_t key[MV_SQL_KEY_BYTES])
{
	char *clause = g_malloc(MV_SQL_KEY_BYTES * 2 + 4);
	clause[0] = 'x';
	clause[1] = '\'';
	sodium_bin2hex(clause + 2, MV_SQL_KEY_BYTES * 2 + 1, key, MV_SQL_KEY_BYTES);
	clause[MV_SQL_KEY_BYTES * 2 + 2] = '\'';
	clause[MV_SQL_KEY_BYTES * 2 + 3] = '\0';
	return clause;
}

static void key_clause_free(char *clause)
{
	sodium_memzero(clause, strlen(clause));
	g_free(clause);
}

/* Runs "<before> '<key clause>'<after>" and wipes the statement text. */
static int exec_with_key(sqlite3 *db, const char *before, const uint8_t key[MV_SQL_KEY_BYTES], const char *after,
                         GError **error)
{
	char *clause = key_clause(key);
	char *sql = sqlite3_mprintf("%s%Q%s", before, clause, after);
	key_clause_free(clause);
	if (!sql) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "out of memory");
		return -1;
	}
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	sodium_memzero(sql, strlen(sql));
	sqlite3_free(sql);
	if (rc == SQLITE_OK)
		return 0;
	/* SQLite's message, never the statement: it holds the key. */
	g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: %s", sqlite3_db_filename(db, "main"), msg ? msg : "error");
	sqlite3_free(msg);
	return -1;
}

/* The first read decrypts page 1 and checks its MAC: a wrong key, another
 * file, or a damaged first page fail here rather than at some later query. */
static int check_key_opens(sqlite3 *db, const char *schema, const char *path, GError **error)
{
	char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".sqlite_schema", schema);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
	if (rc == SQLITE_OK)
		return 0;
	int code = sqlite3_extended_errcode(db);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s does not open with its key: the file is damaged, "
		            "or it is not the file its store encrypted", path);
	else
		mv_sql_set_error(error, db, "read");
	return -1;
}

int mv_sql_open_encrypted(const char *path, const uint8_t key[MV_SQL_KEY_BYTES], bool create, bool readonly,
                          sqlite3 **db_r, GError **error)
{
	sqlite3 *db = NULL;
	if (mv_sql_open(path, create, readonly, &db, error) < 0)
		return -1;
	/* SQLCipher logs a failed page check to stderr by default (a setting
	 * of the process, taken on a connection's first cipher pragma); the
	 * caller's error already says which file did not open, once.
	 * Temporary tables and sort spills would otherwise go to disk in clear. */
	if (mv_sql_exec(db, "PRAGMA cipher_log_source = NONE", error) < 0 ||
	    exec_with_key(db, "PRAGMA key = ", key, "; PRAGMA temp_store = MEMORY", error) < 0 ||
	    check_key_opens(db, "main", path, error) < 0) {
		sqlite3_close(db);
		return -1;
	}
	*db_r = db;
	return 0;
}

int mv_sql_attach_encrypted(sqlite3 *db, const char *path, const char *schema, const uint8_t key[MV_SQL_KEY_BYTES],
                            GError **error)
{
	char *before = sqlite3_mprintf("ATTACH DATABASE %Q AS \"%w\" KEY ", path, schema);
	int rc = exec_with_key(db, before, key, "", error);
	sqlite3_free(before);
	if (rc < 0)
		return -1;
	if (check_key_opens(db, schema, path, error) == 0)
		return 0;
	char *detach = sqlite3_mprintf("DETACH DATABASE \"%w\"", schema);
	sqlite3_exec(db, detach, NULL, NULL, NULL);
	sqlite3_free(detach);
	return -1;
}

int mv_sql_export_encrypted(sqlite3 *plain, const char *dest, const uint8_t key[MV_SQL_KEY_BYTES], GError **error)
{
	/* Made here, private, and empty: an ATTACH opens with its connection's
	 * flags, which need not include creating a file. */
	int fd = open(dest, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "create", dest);
		return -1;
	}
	close(fd);
	if (mv_sql_attach_encrypted(plain, dest, "mv_encrypted", key, error) < 0)
		return -1;
	int rc = mv_sql_exec(plain, "SELECT sqlcipher_export('mv_encrypted')", error);
	GError *err = NULL;
	if (mv_sql_exec(plain, "DETACH DATABASE mv_encrypted", rc == 0 ? error : &err) < 0) {
		rc = -1;
		g_clear_error(&err);
	}
	return rc;
}
