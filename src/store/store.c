/* store: opening a store, adding messages durably, reading them back.
 *
 * Every write to a store happens under the store's write lock, an flock on
 * content/.writelock held by one writer (thread or process) at a time.  The
 * write path is one function, mv_store_add_batch, because durability is a
 * property of the whole sequence, not of any step:
 *   1. take the write lock (first batch only) and bring the index up to date;
 *   2. BEGIN IMMEDIATE on the metadata db;
 *   3. cut the current segment back to its committed length (bytes a crashed
 *      writer appended were never acknowledged);
 *   4. append records, fsync the segment (and its directory if new);
 *   5. insert rows, record the new committed length, COMMIT (synchronous=FULL)
 *      — from here the batch is acknowledged;
 *   6. insert the index rows into an index transaction that stays open across
 *      batches (FTS5 merges far less when it commits thousands of documents
 *      at once) and is committed every few thousand messages or seconds, and
 *      by mv_store_sync, which also releases the lock.
 * Because the lock covers step 6 too, the messages missing from the index
 * after a crash are always a suffix of message numbers, which the next
 * writer's catch-up indexes from content/ before writing anything. */
#include "store/dictionary.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lookups by content and by place: compaction, verification and deletion
 * would otherwise scan every message for every record; and by order key:
 * a search over the db alone (dates, sizes, nothing at all) would sort
 * every row it keeps to give the newest 50.  Created on every writer open
 * too, so stores made before they existed get them.  messages_date is
 * dropped there: the order key serves newest-first over all folders and
 * messages_folder_date a date range folder by folder, and each index whose
 * keys arrive in no order costs every message a page written per commit. */
#define STORE_LOOKUP_INDEXES \
	"CREATE INDEX IF NOT EXISTS messages_content ON messages(content_id);" \
	"CREATE INDEX IF NOT EXISTS contents_place ON contents(segment, offset);" \
	"CREATE INDEX IF NOT EXISTS messages_order ON messages(" MV_ORDER_KEY_SQL("") ");" \
	"DROP INDEX IF EXISTS messages_date;"

static const char store_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS segments(id INTEGER PRIMARY KEY, committed_len INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS folders(id INTEGER PRIMARY KEY, archive TEXT NOT NULL,"
	" path TEXT NOT NULL, UNIQUE(archive, path));"
	"CREATE TABLE IF NOT EXISTS contents(id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
	" segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, size INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS messages(num INTEGER PRIMARY KEY AUTOINCREMENT,"
	" content_id INTEGER NOT NULL REFERENCES contents(id), folder_id INTEGER NOT NULL REFERENCES folders(id),"
	" date INTEGER NOT NULL, date_source INTEGER NOT NULL, archived_at INTEGER NOT NULL,"
	" size INTEGER NOT NULL, parse_flags INTEGER NOT NULL, has_attachment INTEGER NOT NULL,"
	" mail_flags TEXT NOT NULL, subject TEXT NOT NULL, sender TEXT NOT NULL, recipients TEXT NOT NULL,"
	" message_id TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, deleted_at INTEGER, deleted_reason TEXT,"
	" UNIQUE(folder_id, content_id));"
	/* Format 4: the store's zstd dictionaries (dictionary.c), newest last. */
	"CREATE TABLE IF NOT EXISTS dictionaries(seq INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE,"
	" dict BLOB NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS messages_folder_date ON messages(folder_id, date);"
	STORE_LOOKUP_INDEXES;

const char *mv_store_schema(void) { return store_schema; }

static gint format_epoch;

unsigned mv_store_format_epoch(void) { return (unsigned)g_atomic_int_get(&format_epoch); }

void mv_store_format_changed(void) { g_atomic_int_inc(&format_epoch); }


static void finalize_stmt(gpointer st)
{
	sqlite3_finalize(st);
}

/* A prepared statement from the store's cache (keyed by the address of a
 * static SQL string), reset and unbound.  Callers reset it after stepping so
 * that no read transaction stays open. */
sqlite3_stmt *mv_store_stmt_get(mv_store *s, const char *sql, GError **error)
{
	sqlite3_stmt *st = g_hash_table_lookup(s->stmts, sql);
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, s->db, "prepare");
		return NULL;
	}
	g_hash_table_insert(s->stmts, (gpointer)sql, st);
	return st;
}

/* ---- paths ------------------------------------------------------------------ */

char *mv_store_db_file(const mv_store_paths *p) { return g_build_filename(p->db_dir, "store.sqlite", NULL); }
char *mv_store_index_file(const mv_store_paths *p) { return g_build_filename(p->index_dir, "index.sqlite", NULL); }

char *mv_store_segment_file(const mv_store *s, int64_t seg)
{
	char name[32];
	g_snprintf(name, sizeof name, "seg-%08lld.mvs", (long long)seg);
	return g_build_filename(s->paths.content_dir, name, NULL);
}

#define WAL_KEPT_BYTES 67108864

int mv_store_setup_db(sqlite3 *db, bool synchronous_full, GError **error)
{
	/* A big transaction (a compaction, a rebuild's chunk, deletes zeroed
	 * by SQLCipher's SECURE_DELETE) grows the WAL, and SQLite keeps the file
	 * that size for as long as a connection is open: a server's, for good.
	 * The limit truncates it when a checkpoint next starts it over. */
	const char *sql = synchronous_full ?
		"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
		" PRAGMA journal_size_limit=" G_STRINGIFY(WAL_KEPT_BYTES) ";" :
		"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
		" PRAGMA journal_size_limit=" G_STRINGIFY(WAL_KEPT_BYTES) ";";
	return mv_sql_exec(db, sql, error);
}

/* The keys file first (it names the format, readable without the key),
 * then the encrypted db and index; a crash between leaves files that
 * CreateStore, run again, finds free and makes anew. */
int mv_store_create(const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES], GError **error)
{
	if (mv_mkdir_p(paths->db_dir, error) < 0 || mv_mkdir_p(paths->content_dir, error) < 0 ||
	    mv_mkdir_p(paths->index_dir, error) < 0)
		return -1;
	char *dbp = mv_store_db_file(paths), *ixp = mv_store_index_file(paths);
	sqlite3 *db = NULL, *ix = NULL;
	char *gen = mv_store_new_generation();
	char *meta = g_strdup_printf("INSERT OR IGNORE INTO meta VALUES('format_version','%d');"
	                             "INSERT OR IGNORE INTO meta VALUES('index_generation','%s');",
	                             MV_STORE_FORMAT_VERSION, gen);
	char *ixgen = g_strdup_printf("INSERT OR REPLACE INTO index_state VALUES('generation','%s');", gen);
	int rc = -1;
	if (mv_store_keys_file_set_format(paths, MV_STORE_FORMAT_VERSION, error) < 0)
		goto out;
	if (mv_store_sql_open(dbp, data_key, MV_STORE_SQL_DB, true, true, false, &db, error) < 0 ||
	    mv_store_setup_db(db, true, error) < 0 || mv_sql_exec(db, store_schema, error) < 0 ||
	    mv_sql_exec(db, meta, error) < 0)
		goto out;
	if (mv_store_sql_open(ixp, data_key, MV_STORE_SQL_INDEX, true, true, false, &ix, error) < 0 ||
	    mv_store_setup_db(ix, false, error) < 0 || mv_index_init_schema(ix, "main", error) < 0 ||
	    mv_sql_exec(ix, ixgen, error) < 0)
		goto out;
	rc = mv_fsync_dir(paths->db_dir, error);
out:
	sqlite3_close(db);
	sqlite3_close(ix);
	g_free(gen);
	g_free(meta);
	g_free(ixgen);
	g_free(dbp);
	g_free(ixp);
	return rc;
}

static int check_format(mv_store *s, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT value FROM meta WHERE key='format_version'", &st, error) < 0)
		return -1;
	int version = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = atoi((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (version < 1 || version > MV_STORE_FORMAT_VERSION) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "store %s has format version %d; this build reads 1 to %d",
		            s->paths.db_dir, version, MV_STORE_FORMAT_VERSION);
		return -1;
	}
	s->format_version = version;
	/* A plain db claiming format 3 was not made by a store: refused rather
	 * than trusted, as a file put in the encrypted one's place would be. */
	if (!s->encrypted && version >= 3) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "store %s: format version %d stores are encrypted, but "
		            "store.sqlite is a plain SQLite file", s->paths.db_dir, version);
		return -1;
	}
	if (s->mode == MV_STORE_WRITE && version < MV_STORE_FORMAT_VERSION) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) has format version %d and is read-only until"
		            " upgraded to version %d: run UpgradeStore --id=%d", s->id, s->paths.db_dir, version,
		            MV_STORE_FORMAT_VERSION, s->id);
		return -1;
	}
	return 0;
}

static void close_fd(gpointer p)
{
	close(GPOINTER_TO_INT(p) - 1);
}

mv_store *mv_store_new(int store_id, const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES],
                     mv_store_mode mode)
{
	mv_store *s = g_new0(mv_store, 1);
	s->id = store_id;
	s->mode = mode;
	s->paths.db_dir = g_strdup(paths->db_dir);
	s->paths.content_dir = g_strdup(paths->content_dir);
	s->paths.index_dir = g_strdup(paths->index_dir);
	if (data_key)
		memcpy(s->key, data_key, MV_KEY_BYTES);
	s->encrypted = true;
	s->segment_fds = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, close_fd);
	s->folder_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	s->lock_fd = -1;
	s->index_queue = g_ptr_array_new_with_free_func(mv_store_queued_doc_free);
	s->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
	s->dicts = mv_dict_table_new();
	g_mutex_init(&s->dict_lock);
	return s;
}

/* Writers keep the index on its own connection: attached, it would be
 * write-locked by every BEGIN IMMEDIATE on the metadata db. */
static int open_writer_index(mv_store *s, const char *ixp, GError **error)
{
	/* Looked at before the open: a file made anew in between is then
	 * opened again at the next lock, never missed. */
	struct stat st;
	bool seen = stat(ixp, &st) == 0;
	s->index_encrypted = mv_store_index_file_encrypted(ixp, s->encrypted);
	if (mv_sql_exec(s->db, STORE_LOOKUP_INDEXES, error) < 0 || mv_store_index_writer_conn(s, &s->index_db, error) < 0 ||
	    mv_index_init_schema(s->index_db, "main", error) < 0)
		return -1;
	if (!seen && stat(ixp, &st) < 0) {
		mv_set_errno_error(error, errno, "look at the index file", ixp);
		return -1;
	}
	s->index_dev = st.st_dev;
	s->index_ino = st.st_ino;
	return 0;
}

/* A reader must not create what a writer would: an index file that is
 * missing is made (empty, stale) only so that queries fail softly. */
static int create_missing_index(mv_store *s, const char *ixp, GError **error)
{
	sqlite3 *ix = NULL;
	int rc = -1;
	if (mv_store_sql_open(ixp, s->key, MV_STORE_SQL_INDEX, s->index_encrypted, true, false, &ix, error) < 0 ||
	    mv_store_setup_db(ix, false, error) < 0)
		goto out;
	rc = mv_index_init_schema(ix, "main", error);
out:
	sqlite3_close(ix);
	return rc;
}

static int attach_reader_index(mv_store *s, const char *ixp, GError **error)
{
	s->index_encrypted = mv_store_index_file_encrypted(ixp, s->encrypted);
	if (!g_file_test(ixp, G_FILE_TEST_EXISTS) && create_missing_index(s, ixp, error) < 0)
		return -1;
	if (mv_store_sql_attach_index(s->db, ixp, s->key, s->index_encrypted, error) < 0)
		return -1;
	/* A relevance search reads the column sizes of every hit (fts_docsize,
	 * a row per message) and each page missed is read and decrypted again:
	 * with the default 2 MB a hit cost ~30 us at 1M when hits were sparse.
	 * 32 MB holds what the query mix reads at 1M (bench/RESULTS.md, issue
	 * 17); a cache grows only with the pages a search reads, and a store
	 * keeps one reader handle. */
	return mv_sql_exec(s->db, "PRAGMA ix.cache_size=-32768", error);
}

/* A crash between a db change and its index follow-up left notes
 * (index_notes.c) that a writer settles when it takes the lock.  A reader
 * would otherwise search an index that still files messages where they no
 * longer are, until some writer comes: so it settles them first, through a
 * writer of its own.  Notes exist only after such a crash. */
static void settle_notes_for_reader(mv_store *s)
{
	int64_t notes = 0;
	if (mv_store_int_query(s->db, "SELECT count(*) FROM ix.sqlite_schema WHERE name='index_notes'", "look for notes",
	                       &notes, NULL) < 0 || notes == 0 ||
	    mv_store_int_query(s->db, "SELECT count(*) FROM ix.index_notes", "count notes", &notes, NULL) < 0 ||
	    notes == 0)
		return;
	GError *err = NULL;
	mv_store *w = mv_store_open(s->id, &s->paths, s->key, MV_STORE_WRITE, &err);
	if (!w || mv_store_write_lock(w, &err) < 0 || mv_store_sync(w, &err) < 0) {
		mv_log_warn("store %d: the index holds notes of an interrupted change that could not be settled now: %s",
		            s->id, err->message);
		g_clear_error(&err);
	}
	mv_store_close(&w);
}

mv_store *mv_store_open(int store_id, const mv_store_paths *paths,
                        const uint8_t data_key[MV_KEY_BYTES], mv_store_mode mode, GError **error)
{
	mv_store *s = mv_store_new(store_id, paths, data_key, mode);
	char *dbp = mv_store_db_file(paths), *ixp = mv_store_index_file(paths);
	int rc = -1;
	if (!g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store database %s is missing", dbp);
		goto out;
	}
	s->encrypted = mv_store_db_file_encrypted(dbp);
	if (mv_store_sql_open(dbp, data_key, MV_STORE_SQL_DB, s->encrypted, false, false, &s->db, error) < 0 ||
	    mv_store_setup_db(s->db, true, error) < 0 || check_format(s, error) < 0 || mv_mkdir_p(paths->index_dir, error) < 0)
		goto out;
	rc = mode == MV_STORE_WRITE ? open_writer_index(s, ixp, error) : attach_reader_index(s, ixp, error);
	if (rc == 0 && mode == MV_STORE_WRITE)
		rc = mv_store_dict_publish_newest(s, error);
	if (rc == 0 && mode == MV_STORE_READ)
		settle_notes_for_reader(s);
out:
	g_free(dbp);
	g_free(ixp);
	if (rc < 0)
		mv_store_close(&s);
	return s;
}

void mv_store_set_keeper(mv_store *s, mv_store_keeper keep, void *opaque)
{
	s->keep = keep;
	s->keep_opaque = opaque;
}

static bool handed_to_keeper(mv_store *s)
{
	if (!s->keep)
		return false;
	bool reusable = s->mode == MV_STORE_READ && !s->locked_once && s->lock_fd < 0 && !s->index_queue->len &&
	                sqlite3_get_autocommit(s->db);
	if (reusable) {
		/* A statement left mid-result would pin an old snapshot of the db. */
		for (sqlite3_stmt *st = sqlite3_next_stmt(s->db, NULL); st; st = sqlite3_next_stmt(s->db, st))
			sqlite3_reset(st);
		/* Its page cache (SQLite's default 2 MB, one kept handle per store)
		 * stays: SQLite checks it against the WAL at the next read, and
		 * dropping it cost every request the decryption of the same pages
		 * again (a third of a whole-Inbox GetMessages's CPU). */
		g_hash_table_remove_all(s->segment_fds);
		g_hash_table_remove_all(s->folder_ids);
	}
	return s->keep(s, reusable, s->keep_opaque);
}

void mv_store_close(mv_store **sp)
{
	mv_store *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	/* A handle kept for reuse must not keep an old snapshot. */
	mv_store_read_release(s);
	if (handed_to_keeper(s))
		return;
	GError *err = NULL;
	if (mv_store_sync(s, &err) < 0) {
		mv_log_warn("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
	mv_store_index_writer_stop(s);
	sqlite3_finalize(s->index_insert);
	g_ptr_array_free(s->index_queue, TRUE);
	g_hash_table_destroy(s->stmts);
	sqlite3_close(s->index_db);
	sqlite3_close(s->db);
	g_hash_table_destroy(s->segment_fds);
	g_hash_table_destroy(s->folder_ids);
	g_hash_table_destroy(s->dicts);
	mv_dict_unref(s->published);
	g_mutex_clear(&s->dict_lock);
	mv_store_set_search_cache(s, NULL, NULL);
	sodium_memzero(s->key, sizeof s->key);
	g_free(s->paths.db_dir);
	g_free(s->paths.content_dir);
	g_free(s->paths.index_dir);
	g_free(s);
}

int mv_store_id(const mv_store *s) { return s->id; }
sqlite3 *mv_store_db(mv_store *s) { return s->db; }

void *mv_store_search_cache(mv_store *s)
{
	return s->search_cache;
}

void mv_store_set_search_cache(mv_store *s, void *cache, GDestroyNotify free_fn)
{
	if (s->search_cache && s->search_cache_free)
		s->search_cache_free(s->search_cache);
	s->search_cache = cache;
	s->search_cache_free = free_fn;
}

/* ---- folders ------------------------------------------------------------------ */

static int create_folder(mv_store *s, const char *archive, const char *path, int64_t *id_r, GError **error)
{
	sqlite3_stmt *st = mv_store_stmt_get(s, "INSERT INTO folders(archive, path) VALUES(?1, ?2)"
	                     " ON CONFLICT(archive, path) DO UPDATE SET path=excluded.path RETURNING id", error);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	int rc = -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		mv_sql_set_error(error, s->db, "create folder");
		goto out;
	}
	*id_r = sqlite3_column_int64(st, 0);
	rc = 0;
out:
	sqlite3_reset(st);
	return rc;
}

int mv_store_folder_id(mv_store *s, const char *archive, const char *path, int64_t *id_r, GError **error)
{
	/* Callers check first (ingest refuses the message); this keeps a store
	 * from ever holding a name that reads as a folder path. */
	if (mv_archive_name_check(archive, error) < 0)
		return -1;
	char *key = g_strdup_printf("%s\x1f%s", archive, path);
	int64_t *cached = g_hash_table_lookup(s->folder_ids, key);
	if (cached) {
		*id_r = *cached;
		g_free(key);
		return 0;
	}
	if (create_folder(s, archive, path, id_r, error) < 0) {
		g_free(key);
		return -1;
	}
	int64_t *v = g_new(int64_t, 1);
	*v = *id_r;
	g_hash_table_insert(s->folder_ids, key, v);
	return 0;
}

/* ---- adding ---------------------------------------------------------------------- */

static char *record_meta(const mv_store_item *it)
{
	char *hash = mv_hex(it->hash, MV_HASH_BYTES);
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i}",
	                      "v", 1, "hash", hash, "archive", it->archive, "folder", it->folder,
	                      "archived_at", (json_int_t)it->archived_at, "source", it->source ? it->source : "",
	                      "origin", it->origin ? it->origin : "", "mail_flags", it->mail_flags ? it->mail_flags : "",
	                      "date", (json_int_t)it->date, "date_source", it->date_source);
	g_free(hash);
	/* Only converted messages carry it: the bytes archived are not the
	 * file's, and this says which file they came from. */
	if (o && it->origin_sha256)
		json_object_set_new(o, "origin_sha256", json_string(it->origin_sha256));
	json_t *envelope = mv_store_envelope_meta(it->envelope_from, it->envelope_to);
	if (o && envelope)
		json_object_set_new(o, "envelope", envelope);
	else
		json_decref(envelope);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

static int encode_item(mv_store *s, const mv_store_item *it, bool with_body, int level, mv_dict *dict,
                       GByteArray *out, GError **error)
{
	char *meta = record_meta(it);
	if (!meta) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: metadata not encodable", it->origin);
		return -1;
	}
	const ZSTD_CDict *cdict = dict ? mv_dict_cdict(dict, level) : NULL;
	int rc = mv_record_encode_dict(s->key, with_body ? MV_RECORD_MESSAGE : MV_RECORD_REFERENCE,
	                               (const uint8_t *)meta, strlen(meta),
	                               with_body ? it->raw : NULL, with_body ? it->raw_len : 0, level, cdict, out, error);
	free(meta);
	return rc;
}

/* Runs on ingest's parser threads beside the committer's batches: it
 * compresses with the dictionary published after a commit, never with
 * one a batch still in flight may roll back. */
int mv_store_prepare_item(mv_store *s, mv_store_item *it, int zstd_level, GError **error)
{
	GByteArray *rec = g_byte_array_sized_new((guint)(it->raw_len / 2 + 256));
	mv_dict *dict = mv_store_dict_published(s);
	unsigned dict_id = dict ? mv_dict_id(dict) : 0;
	int rc = encode_item(s, it, true, zstd_level, dict, rec, error);
	mv_dict_unref(dict);
	if (rc < 0) {
		g_byte_array_unref(rec);
		return -1;
	}
	it->prepared = rec;
	it->prepared_dict = dict_id;
	return 0;
}

int mv_store_lookup_content(mv_store *s, const uint8_t *hash, int64_t *id_r, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "SELECT id FROM contents WHERE hash=?", error)))
		return -1;
	sqlite3_bind_blob(st, 1, hash, MV_HASH_BYTES, SQLITE_STATIC);
	*id_r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return 0;
}

static int message_exists(mv_store *s, int64_t folder, int64_t content, bool *exists_r, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "SELECT 1 FROM messages WHERE folder_id=? AND content_id=?", error)))
		return -1;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, content);
	*exists_r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return 0;
}

/* What one item of a batch turned into, decided under the write lock. */
typedef struct planned {
	int64_t folder_id;
	int64_t content_id;    /* existing content, or 0 = new (written in this batch) */
	int64_t new_content;   /* index into the batch's new contents, when content_id == 0 */
	int64_t record_offset; /* where its record starts (message or reference) */
	size_t record_len;
} planned;

static int insert_content(mv_store *s, const mv_store_item *it, int64_t seg, int64_t off, size_t len,
                          int64_t *id_r, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "INSERT INTO contents(hash, segment, offset, length, size) VALUES(?,?,?,?,?)", error)))
		return -1;
	sqlite3_bind_blob(st, 1, it->hash, MV_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seg);
	sqlite3_bind_int64(st, 3, off);
	sqlite3_bind_int64(st, 4, (int64_t)len);
	sqlite3_bind_int64(st, 5, (int64_t)it->raw_len);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, s->db, "insert content");
		return -1;
	}
	*id_r = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int insert_message(mv_store *s, mv_store_item *it, int64_t folder, int64_t content, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "INSERT INTO messages(content_id, folder_id, date, date_source, archived_at, size,"
	                " parse_flags, has_attachment, mail_flags, subject, sender, recipients, message_id)"
	                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", error)))
		return -1;
	sqlite3_bind_int64(st, 1, content);
	sqlite3_bind_int64(st, 2, folder);
	sqlite3_bind_int64(st, 3, it->date);
	sqlite3_bind_int(st, 4, it->date_source);
	sqlite3_bind_int64(st, 5, it->archived_at);
	sqlite3_bind_int64(st, 6, (int64_t)it->raw_len);
	sqlite3_bind_int(st, 7, (int)it->parse_flags);
	sqlite3_bind_int(st, 8, it->has_attachment);
	sqlite3_bind_text(st, 9, it->mail_flags ? it->mail_flags : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, it->subject ? it->subject : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, it->from ? it->from : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, it->to ? it->to : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, it->message_id ? it->message_id : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, s->db, "insert message");
		return -1;
	}
	it->number = sqlite3_last_insert_rowid(s->db);
	if (it->number > MV_STORE_MAX_MESSAGE_NUMBER) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "store %d is full (%lld messages): create a new store",
		            s->id, (long long)MV_STORE_MAX_MESSAGE_NUMBER);
		return -1;
	}
	if ((it->envelope_from || it->envelope_to) &&
	    mv_store_envelope_put(s, it->number, it->envelope_from, it->envelope_to, error) < 0)
		return -1;
	return 0;
}

/* Decides, under the lock, what each item becomes, and encodes the records
 * into `out` (offsets relative to its start). */
static int plan_batch(mv_store *s, mv_store_item *items, size_t n, int level, mv_dict *dict, planned *plan,
                      GByteArray *out, GError **error)
{
	/* hash -> index of the first item in this batch that writes that content */
	GHashTable *batch_new = g_hash_table_new(g_bytes_hash, g_bytes_equal);
	GHashTable *batch_pairs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GPtrArray *keys = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		mv_store_item *it = &items[i];
		planned *p = &plan[i];
		it->number = 0;
		it->duplicate = false;
		p->record_len = 0;
		if (mv_store_folder_id(s, it->archive, it->folder, &p->folder_id, error) < 0 ||
		    mv_store_lookup_content(s, it->hash, &p->content_id, error) < 0)
			goto out;
		char *hex = mv_hex(it->hash, MV_HASH_BYTES);
		char *pair = g_strdup_printf("%lld:%s", (long long)p->folder_id, hex);
		g_free(hex);
		bool exists = false;
		if (p->content_id && message_exists(s, p->folder_id, p->content_id, &exists, error) < 0) {
			g_free(pair);
			goto out;
		}
		if (exists || g_hash_table_contains(batch_pairs, pair)) {
			it->duplicate = true;
			g_free(pair);
			continue;
		}
		g_hash_table_add(batch_pairs, pair);
		GBytes *key = g_bytes_new(it->hash, MV_HASH_BYTES);
		g_ptr_array_add(keys, key);
		bool known = p->content_id || g_hash_table_contains(batch_new, key);
		if (!known)
			g_hash_table_insert(batch_new, key, GSIZE_TO_POINTER(i + 1));
		p->new_content = known && !p->content_id ? (int64_t)GPOINTER_TO_SIZE(g_hash_table_lookup(batch_new, key)) - 1 : -1;
		p->record_offset = out->len;
		/* Encoded ahead without the batch's dictionary (just trained, or
		 * prepared before it was published): encoded again, with it. */
		if (!known && it->prepared && it->prepared_dict == (dict ? mv_dict_id(dict) : 0))
			g_byte_array_append(out, it->prepared->data, it->prepared->len);
		else if (encode_item(s, it, !known, level, dict, out, error) < 0)
			goto out;   /* the plan is dropped with the batch */
		p->record_len = out->len - (size_t)p->record_offset;
	}
	rc = 0;
out:
	g_hash_table_destroy(batch_new);
	g_hash_table_destroy(batch_pairs);
	g_ptr_array_free(keys, TRUE);
	return rc;
}

/* The next message number AUTOINCREMENT will hand out. */
static int next_number(mv_store *s, int64_t *next_r, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'), 0),"
	                          " coalesce((SELECT max(num) FROM messages), 0))", error)))
		return -1;
	int rc = sqlite3_step(st);
	*next_r = (rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0) + 1;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		mv_sql_set_error(error, s->db, "read message sequence");
		return -1;
	}
	return 0;
}

/* A batch starts with a marker naming the number its first new message
 * gets, so that content/ alone tells which record is which message even
 * after compaction has left gaps. */
static int append_batch_marker(mv_store *s, GByteArray *out, GError **error)
{
	int64_t next;
	if (next_number(s, &next, error) < 0)
		return -1;
	char *meta = g_strdup_printf("{\"v\":1,\"first\":%lld}", (long long)next);
	int rc = mv_record_encode(s->key, MV_RECORD_BATCH, (const uint8_t *)meta, strlen(meta), NULL, 0, 1, out, error);
	g_free(meta);
	return rc;
}

/* The marker promised consecutive numbers from `first`; a gap would make
 * content/ name the wrong messages, so it aborts the batch. */
static int check_numbering(const mv_store_item *items, size_t n, int64_t first, GError **error)
{
	int64_t want = first;
	for (size_t i = 0; i < n; i++) {
		if (items[i].duplicate)
			continue;
		if (items[i].number != want) {
			g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "message numbering broke: expected %lld, got %lld",
			            (long long)want, (long long)items[i].number);
			return -1;
		}
		want++;
	}
	return 0;
}

static int write_rows(mv_store *s, mv_store_item *items, size_t n, planned *plan,
                      int64_t seg, int64_t base, GError **error)
{
	int64_t *content_of = g_new0(int64_t, n);
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		if (items[i].duplicate)
			continue;
		planned *p = &plan[i];
		int64_t content = p->content_id;
		if (!content && p->new_content >= 0)
			content = content_of[p->new_content];
		if (!content && insert_content(s, &items[i], seg, base + p->record_offset, p->record_len, &content, error) < 0)
			goto out;
		content_of[i] = content;
		if (insert_message(s, &items[i], p->folder_id, content, error) < 0)
			goto out;
	}
	rc = 0;
out:
	g_free(content_of);
	return rc;
}

int mv_store_set_committed_len(mv_store *s, int64_t seg, int64_t len, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "INSERT INTO segments(id, committed_len) VALUES(?1, ?2)"
	                " ON CONFLICT(id) DO UPDATE SET committed_len=excluded.committed_len", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, seg);
	sqlite3_bind_int64(st, 2, len);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, s->db, "record segment length");
		return -1;
	}
	return 0;
}

/* ---- the write lock and the open index transaction ----------------------------------- */

void mv_store_set_lock_wait(mv_store *s, double seconds)
{
	s->lock_wait = seconds > 0 ? seconds : 0;
}

void mv_store_set_lock_cancel(mv_store *s, volatile gint *cancel)
{
	s->lock_cancel = cancel;
}

/* flock on fd, waiting at most s->lock_wait when it is set, and only
 * while s->lock_cancel stays 0: polled, as flock has no timeout of its own
 * and a signal-based one would reach other threads. */
static int wait_for_lock(mv_store *s, int fd, const char *path, GError **error)
{
	double deadline = s->lock_wait > 0 ? mv_monotonic() + s->lock_wait : 0;
	bool poll = deadline || s->lock_cancel;
	for (;;) {
		if (flock(fd, poll ? LOCK_EX | LOCK_NB : LOCK_EX) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || !poll) {
			mv_set_errno_error(error, errno, "lock", path);
			return -1;
		}
		if (s->lock_cancel && g_atomic_int_get(s->lock_cancel)) {
			g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "store %d: cancelled while waiting for its write lock, "
			            "which another task (a maintenance function or an import) holds; nothing was done", s->id);
			return -1;
		}
		if (deadline && mv_monotonic() >= deadline) {
			g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d is being written by another task (a maintenance "
			            "function or an import) and stayed locked for %.0f s", s->id, s->lock_wait);
			return -1;
		}
		g_usleep(50 * 1000);
	}
}

static void release_lock(mv_store *s)
{
	close(s->lock_fd); /* releases the flock */
	s->lock_fd = -1;
}

/* The writer's connections on its index file: its own and its index
 * writer thread's, which waits for what it has in hand first. */
static void close_writer_index(mv_store *s)
{
	mv_store_index_writer_stop(s);
	sqlite3_finalize(s->index_insert);
	s->index_insert = NULL;
	sqlite3_close(s->index_db);
	s->index_db = NULL;
}

/* Another writer made the index anew (mv_store_index_recreate) while this
 * handle kept its connection on the old file, which no one reads any more:
 * what it wrote there would be lost.  Asked with the write lock held. */
static int follow_recreated_index(mv_store *s, GError **error)
{
	if (!s->index_db)
		return 0;   /* a reader, or a handle that opens no index */
	char *ixp = mv_store_index_file(&s->paths);
	struct stat st;
	int rc = 0;
	if (stat(ixp, &st) < 0 || st.st_dev != s->index_dev || st.st_ino != s->index_ino) {
		close_writer_index(s);
		rc = open_writer_index(s, ixp, error);
	}
	g_free(ixp);
	return rc;
}

int mv_store_index_writer_conn(mv_store *s, sqlite3 **db_r, GError **error)
{
	char *path = mv_store_index_file(&s->paths);
	int rc = mv_store_sql_open(path, s->key, MV_STORE_SQL_INDEX, s->index_encrypted, true, false, db_r, error);
	g_free(path);
	return rc < 0 ? -1 : mv_store_setup_db(*db_r, false, error);
}

int mv_store_index_recreate(mv_store *s, GError **error)
{
	char *ixp = mv_store_index_file(&s->paths);
	close_writer_index(s);   /* its connections are on the file removed */
	mv_store_remove_db_files(ixp);
	int rc = mv_fsync_dir(s->paths.index_dir, error) < 0 ? -1 : open_writer_index(s, ixp, error);
	g_free(ixp);
	return rc;
}

int mv_store_flock(mv_store *s, GError **error)
{
	if (s->lock_fd >= 0)
		return 0;
	char *path = g_build_filename(s->paths.content_dir, ".writelock", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		g_free(path);
		return -1;
	}
	if (wait_for_lock(s, fd, path, error) < 0) {
		close(fd);
		g_free(path);
		return -1;
	}
	g_free(path);
	s->lock_fd = fd;
	s->locked_since = mv_monotonic();
	s->locked_once = true;
	if (follow_recreated_index(s, error) < 0) {
		release_lock(s);
		return -1;
	}
	return 0;
}

/* A writer with a bounded wait answers someone who can come back later:
 * a rebuild, or a long catch-up, is left to the server's upkeep, and the
 * write fails as if the lock were held (true, with *error). */
static bool leave_index_to_upkeep(mv_store *s, bool stale, GError **error)
{
	bool leave = false;
	if (mv_store_index_leave_to_upkeep(s, stale, &leave, error) < 0)
		return true;
	if (leave)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d's index must be rebuilt or brought up to date before "
		            "the store takes more messages (it was made by another version of mailvault, for another state "
		            "of the store, or its rebuild was stopped); the server does it in the background", s->id);
	return leave;
}

int mv_store_write_lock(mv_store *s, GError **error)
{
	if (s->lock_fd >= 0) {
		/* Whoever writes next sees the index the handed-off documents make. */
		GError *lost = NULL;
		if (mv_store_index_wait(s, &lost) == 0)
			return 0;
		/* The lock taken again below runs the catch-up that fills the gap. */
		mv_log_warn("store %d: %s", s->id, lost->message);
		g_error_free(lost);
		release_lock(s);
	}
	if (mv_store_flock(s, error) < 0)
		return -1;
	bool stale = false;
	int rc = -1;
	if (mv_store_index_stale(s, &stale, error) < 0 || (s->lock_wait > 0 && leave_index_to_upkeep(s, stale, error)))
		goto out;
	if (stale) {
		mv_log_info("store %d: the index belongs to another state of the store; rebuilding it", s->id);
		if (mv_store_index_reset(s, error) < 0)
			goto out;
	}
	if (mv_index_notes_settle(s, error) < 0)
		goto out;
	rc = mv_store_index_catch_up(s, error);
out:
	if (rc < 0)
		release_lock(s);
	return rc;
}

static int lock_for(mv_store *s, const mv_task *task, int (*lock)(mv_store *, GError **), GError **error)
{
	mv_store_set_lock_cancel(s, task ? task->cancel : NULL);
	int rc = lock(s, error);
	mv_store_set_lock_cancel(s, NULL);
	return rc;
}

int mv_store_flock_for(mv_store *s, const mv_task *task, GError **error)
{
	return lock_for(s, task, mv_store_flock, error);
}

int mv_store_write_lock_for(mv_store *s, const mv_task *task, GError **error)
{
	return lock_for(s, task, mv_store_write_lock, error);
}

/* Whether a live message is missing from the index past indexed_upto. */
static bool index_lags(mv_store *s)
{
	int64_t lag = 0;
	GError *err = NULL;
	if (mv_store_index_lag(s, 1, &lag, &err) < 0) {   /* the next writer's lock catches up anyway */
		mv_log_warn("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
	return lag > 0;
}

int mv_store_sync(mv_store *s, GError **error)
{
	/* Held, the lock is waited on: a hand-off that failed is caught up
	 * now, before other writers come in.  Never taken — a run that found
	 * everything archived already wrote nothing — it is taken all the same
	 * when the index lacks messages (a writer killed with documents in
	 * hand): searches would miss them until some writer came.  Not by a
	 * handle that held it and let it go (a cancelled rebuild, closing: the
	 * rest is the next writer's, not a wait the cancel was meant to end). */
	int rc = s->lock_fd >= 0 || (!s->locked_once && s->index_db && index_lags(s)) ? mv_store_write_lock(s, error)
	                                                                              : 0;
	if (rc == 0)
		rc = mv_store_flush_index(s, error);
	if (s->lock_fd >= 0)
		release_lock(s);
	return rc;
}

static void index_items(mv_store *s, mv_store_item *items, size_t n, planned *plan)
{
	GString *scope = g_string_new(NULL);
	for (size_t i = 0; i < n; i++) {
		mv_store_item *it = &items[i];
		if (it->duplicate)
			continue;
		mv_store_fill_scope(scope, it->archive, plan[i].folder_id, it->has_attachment);
		char *to_addrs = mv_store_index_recipients(it->to_addrs, it->envelope_to);
		mv_index_doc doc = {
			.number = it->number, .date = it->date, .subject = it->subject, .body = it->text,
			.from = it->from, .to = it->to, .cc = it->cc, .bcc = it->bcc, .from_addrs = it->from_addrs,
			.to_addrs = to_addrs, .cc_addrs = it->cc_addrs, .bcc_addrs = it->bcc_addrs,
			.attachments = it->attachment_names, .folder = it->folder, .archive = it->archive,
			.message_id = it->message_id, .scope = scope->str,
		};
		mv_store_queue_doc(s, &doc);
		g_free(to_addrs);
	}
	g_string_free(scope, TRUE);
}

/* Hands the queued index documents to the index writer, or, once the lock
 * has been held WRITE_LOCK_HOLD_SECONDS, commits them and lets other writers
 * in.  A failure does not undo the batch — its messages are durable — and
 * the gap it leaves is a suffix of message numbers that the catch-up of the
 * lock taken again fills. */
static void index_after_batch(mv_store *s)
{
	GError *err = NULL;
	if (mv_monotonic() - s->locked_since < WRITE_LOCK_HOLD_SECONDS && mv_store_index_hand_off(s, &err) == 0)
		return;
	if (err) {
		mv_log_warn("store %d: %s", s->id, err->message);
		g_clear_error(&err);
	}
	if (mv_store_sync(s, &err) < 0) {
		mv_log_warn("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
}

/* Inside add_batch's transaction: records appended and fsynced, rows, COMMIT; or ROLLBACK, as if not tried. */
static int write_batch(mv_store *s, mv_store_item *items, size_t n, int zstd_level, planned *plan, GByteArray *out,
                       mv_dict **dict_r, bool *trained_r, double *t_plan, double *t_append, GError **error)
{
	int64_t seg = 0, base = 0, first = 0, marker_len = 0, dict_len = 0;
	int rc = -1;
	/* A dictionary trained now has its record first: before every record
	 * compressed with it, in the same write. */
	if (mv_store_dict_for_batch(s, zstd_level, out, dict_r, error) < 0)
		goto out;
	dict_len = out->len;
	*trained_r = dict_len > 0;
	if (append_batch_marker(s, out, error) < 0)
		goto out;
	marker_len = out->len;
	if (plan_batch(s, items, n, zstd_level, *dict_r, plan, out, error) < 0)
		goto out;
	if ((int64_t)out->len == marker_len)   /* all duplicates: nothing to number, no marker */
		g_byte_array_set_size(out, (guint)dict_len);
	*t_plan = mv_monotonic();
	if (mv_store_segment_for_append(s, out->len, &seg, &base, error) < 0 ||
	    (out->len > 0 && mv_store_segment_append(s, seg, base, out, error) < 0))
		goto out;
	*t_append = mv_monotonic();
	if (dict_len > 0)   /* a dictionary trained: its record and the batch are fsync'd, nothing committed */
		mv_fault_point("store-dictionary", 1);
	if ((out->len > 0 && next_number(s, &first, error) < 0) || write_rows(s, items, n, plan, seg, base, error) < 0 ||
	    (out->len > 0 && check_numbering(items, n, first, error) < 0) ||
	    mv_store_set_committed_len(s, seg, base + (int64_t)out->len, error) < 0)
		goto out;
	rc = mv_sql_exec(s->db, "COMMIT", error);
out:
	if (rc < 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		g_hash_table_remove_all(s->folder_ids);
		for (size_t i = 0; i < n; i++)
			items[i].number = 0;
	}
	*t_plan = *t_plan ? *t_plan : mv_monotonic();   /* a stage a failure skipped ends with it */
	*t_append = *t_append ? *t_append : mv_monotonic();
	return rc;
}

int mv_store_add_batch(mv_store *s, mv_store_item *items, size_t n, int zstd_level, GError **error)
{
	mv_store_assert_writer(s);
	if (n == 0)
		return 0;
	/* Held, the lock is not waited on: the index writer goes on with what
	 * it was handed while this batch is written. */
	if ((s->lock_fd < 0 && mv_store_write_lock(s, error) < 0) || mv_sql_exec(s->db, "BEGIN IMMEDIATE", error) < 0)
		return -1;
	/* The cache may name folders a rolled-back batch created. */
	g_hash_table_remove_all(s->folder_ids);
	planned *plan = g_new0(planned, n);
	size_t expected = 0;
	for (size_t i = 0; i < n; i++)
		expected += items[i].prepared ? items[i].prepared->len : 512;
	GByteArray *out = g_byte_array_sized_new((guint)MIN(expected, (size_t)G_MAXUINT / 2));
	double t0 = mv_monotonic(), t_plan = 0, t_append = 0;
	mv_dict *dict = NULL;
	bool trained = false;
	int rc = write_batch(s, items, n, zstd_level, plan, out, &dict, &trained, &t_plan, &t_append, error);
	double t_commit = mv_monotonic();
	if (rc < 0) {
		/* A dictionary this batch trained was rolled back with it: the
		 * handle forgets it (one it only used is read again when needed). */
		if (dict)
			g_hash_table_remove(s->dicts, GUINT_TO_POINTER(mv_dict_id(dict)));
		mv_dict_unref(dict);
		goto out;
	}
	mv_store_dict_publish(s, dict);
	mv_dict_unref(dict);
	if (trained)   /* committed: acknowledged, not yet indexed */
		mv_fault_point("store-dictionary", 2);
	index_items(s, items, n, plan);
	if (s->index_queue->len >= INDEX_COMMIT_DOCS || mv_monotonic() - s->index_since >= INDEX_COMMIT_SECONDS)
		index_after_batch(s);
out:   /* the timings are logged for a failed batch too */
	mv_log_debug("store %d: batch of %zu: plan %.0f ms, append+fsync %.0f ms, rows+commit %.0f ms, index %.0f ms",
	             s->id, n, (t_plan - t0) * 1e3, (t_append - t_plan) * 1e3, (t_commit - t_append) * 1e3,
	             (mv_monotonic() - t_commit) * 1e3);
	g_byte_array_unref(out);
	g_free(plan);
	return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

int mv_store_read_record(mv_store *s, int64_t seg, int64_t off, int64_t len, GByteArray **rec_r, GError **error)
{
	if (len < MV_RECORD_HEADER_BYTES || (uint64_t)len > MV_RECORD_HEADER_BYTES + (uint64_t)MV_RECORD_MAX_PAYLOAD) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record length %lld out of range", (long long)len);
		return -1;
	}
	int fd = mv_store_segment_fd(s, seg, false, error);
	if (fd < 0)
		return -1;
	GByteArray *rec = g_byte_array_sized_new((guint)len);
	g_byte_array_set_size(rec, (guint)len);
	char *path = mv_store_segment_file(s, seg);
	int rc = mv_pread_exact(fd, rec->data, (size_t)len, off, path, error);
	g_free(path);
	if (rc < 0) {
		g_byte_array_unref(rec);
		return -1;
	}
	*rec_r = rec;
	return 0;
}

static int read_message_once(mv_store *s, int64_t number, GByteArray **raw_r, bool *moved_r, GError **error);

/* A compaction may move a message's record between our reading its row and
 * opening its segment; the row read again names the new place. */
int mv_store_read_message(mv_store *s, int64_t number, GByteArray **raw_r, GError **error)
{
	bool moved = false;
	GError *first = NULL;
	if (read_message_once(s, number, raw_r, &moved, &first) == 0)
		return 0;
	if (!moved) {
		g_propagate_error(error, first);
		return -1;
	}
	g_error_free(first);
	return read_message_once(s, number, raw_r, &moved, error);
}

static int read_message_once(mv_store *s, int64_t number, GByteArray **raw_r, bool *moved_r, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "SELECT c.hash, c.segment, c.offset, c.length, c.size FROM messages m"
	                " JOIN contents c ON c.id = m.content_id WHERE m.num = ? AND m.deleted = 0", error)))
		return -1;
	sqlite3_bind_int64(st, 1, number);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %d:%lld does not exist", s->id, (long long)number);
		return -1;
	}
	uint8_t want[MV_HASH_BYTES];
	memcpy(want, sqlite3_column_blob(st, 0), MV_HASH_BYTES);
	int64_t seg = sqlite3_column_int64(st, 1), off = sqlite3_column_int64(st, 2);
	int64_t len = sqlite3_column_int64(st, 3);
	sqlite3_reset(st);

	GByteArray *rec = NULL, *plain = NULL;
	mv_record_header h;
	const uint8_t *meta, *body;
	size_t meta_len, body_len;
	if (mv_store_read_record(s, seg, off, len, &rec, error) < 0) {
		char *path = mv_store_segment_file(s, seg);
		*moved_r = !g_file_test(path, G_FILE_TEST_EXISTS);
		g_free(path);
		return -1;
	}
	int rc = mv_record_decode_dict(s->key, mv_store_dict_lookup, s, rec->data, rec->len, &h, &plain, &meta, &meta_len,
	                               &body, &body_len, NULL, error);
	g_byte_array_unref(rec);
	if (rc < 0) {
		g_prefix_error(error, "message %d:%lld: ", s->id, (long long)number);
		return -1;
	}
	uint8_t got[MV_HASH_BYTES];
	crypto_generichash(got, sizeof got, body, body_len, NULL, 0);
	if (h.type != MV_RECORD_MESSAGE || sodium_memcmp(got, want, MV_HASH_BYTES) != 0) {
		g_byte_array_unref(plain);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "message %d:%lld: content hash mismatch", s->id, (long long)number);
		return -1;
	}
	GByteArray *raw = g_byte_array_sized_new((guint)body_len + 1);
	g_byte_array_append(raw, body, (guint)body_len);
	g_byte_array_unref(plain);
	*raw_r = raw;
	return 0;
}

/* ---- parallel work --------------------------------------------------------------------- */

typedef struct parallel_call {
	GMutex lock;
	GCond done;
	guint left;
	GFunc fn;
	gpointer user;
} parallel_call;

typedef struct parallel_task {
	parallel_call *call;
	gpointer job;
} parallel_task;

static void parallel_run(gpointer data, gpointer unused)
{
	parallel_task *t = data;
	t->call->fn(t->job, t->call->user);
	mv_pool_task_done();
	g_mutex_lock(&t->call->lock);
	if (--t->call->left == 0)
		g_cond_signal(&t->call->done);
	g_mutex_unlock(&t->call->lock);
	g_free(t);
}

static gpointer make_pool(gpointer unused)
{
	int n = (int)g_get_num_processors();
	return g_thread_pool_new(parallel_run, NULL, n > 0 ? n : 1, FALSE, NULL);
}

void mv_store_parallel(GPtrArray *jobs, GFunc fn, gpointer user)
{
	static GOnce once = G_ONCE_INIT;
	GThreadPool *pool = g_once(&once, make_pool, NULL);
	parallel_call call = { .left = jobs->len, .fn = fn, .user = user };
	g_mutex_init(&call.lock);
	g_cond_init(&call.done);
	for (guint i = 0; i < jobs->len; i++) {
		parallel_task *t = g_new(parallel_task, 1);
		*t = (parallel_task){ &call, jobs->pdata[i] };
		if (!pool || !g_thread_pool_push(pool, t, NULL))
			parallel_run(t, NULL);   /* no pool: do it here; the latch still drains */
	}
	g_mutex_lock(&call.lock);
	while (call.left > 0)
		g_cond_wait(&call.done, &call.lock);
	g_mutex_unlock(&call.lock);
	g_mutex_clear(&call.lock);
	g_cond_clear(&call.done);
}

