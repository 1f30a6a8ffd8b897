/* store/internal: what the files of store/ share and nothing outside sees —
 * the store struct and the helpers store.c (the write path and reads) lends
 * to maint.c and compact.c (verify, recover, compact, ...).  Not a public header. */
#ifndef MV_STORE_INTERNAL_H
#define MV_STORE_INTERNAL_H

#include "store/store.h"
#include <sys/types.h>
#include "store/record.h"
#include "mime/mime.h"

/* ---- from store.h: what only store/ uses ---- */

/* A random token tying an index to the db it describes (meta
 * 'index_generation' = index_state 'generation'). */
char *mv_store_new_generation(void);
/* Called by every format-version change (UpgradeStore). */
void mv_store_format_changed(void);
/* Indexes messages whose rows exist but whose index entries were lost (a
 * crash between the db and index commits).  Call under the write lock. */
int mv_store_index_catch_up(mv_store *s, GError **error);
/* Index text for one message (internal to store/, exposed for catch-up). */
typedef struct mv_index_doc {
	int64_t number;
	int64_t date;
	const char *subject, *body, *attachments;
	const char *from, *to, *cc, *bcc;   /* display forms */
	const char *from_addrs, *to_addrs, *cc_addrs, *bcc_addrs; /* normalised, space separated */
	const char *folder, *archive, *message_id;
	const char *scope;           /* scope tokens: archive, folder, flags */
} mv_index_doc;

/* A document's column text exactly as the index is given it (a JSON array),
 * and the contentless delete by that text. */
json_t *mv_index_doc_columns(const mv_index_doc *doc);
int mv_index_delete_columns(sqlite3 *db, int64_t docid, json_t *cols, GError **error);
/* The index's tables in schema (main, or "ix" attached). */
int mv_index_init_schema(sqlite3 *db, const char *schema, GError **error);
/* Inserts one document; *cache holds the prepared statement (finalize it). */
int mv_index_insert(sqlite3 *db, sqlite3_stmt **cache, const mv_index_doc *doc, GError **error);
/* Removes a document from the contentless index: FTS5 needs the exact
 * values it was inserted with, which the caller rebuilds from content. */
int mv_index_delete(sqlite3 *db, const mv_index_doc *doc, GError **error);

#define SEGMENT_MAGIC "MVSEG001"
#define SEGMENT_HEADER_BYTES 16
#define INDEX_COMMIT_DOCS 4096      /* index commit after this many documents */
#define INDEX_COMMIT_SECONDS 2.0    /* ... or this long after the first */
/* A writer ingesting without pause lets others take the write lock after
 * this long (the index is then flushed in its own thread first). */
#define WRITE_LOCK_HOLD_SECONDS 8.0

typedef struct mv_index_writer mv_index_writer;

struct mv_store {
	int id;
	int format_version;
	mv_store_mode mode;
	mv_store_paths paths;
	uint8_t key[MV_KEY_BYTES];
	bool encrypted;       /* db encrypted (format 3); plain before */
	bool index_encrypted; /* the index file, encrypted (always for format 3) */
	sqlite3 *db;          /* metadata; index attached as "ix" for reads */
	bool read_held;       /* mv_store_read_hold's transaction is open on db */
	sqlite3 *index_db;    /* separate connection for index writes (own commit) */
	dev_t index_dev;      /* the file index_db opened: another writer may */
	ino_t index_ino;      /* have made the index anew since (index.c) */
	sqlite3_stmt *index_insert;
	GHashTable *segment_fds; /* segment id -> fd (GINT_TO_POINTER(fd + 1)) */
	GHashTable *folder_ids;  /* "archive\x1fpath" -> folder id */
	GHashTable *stmts;       /* SQL text (static) -> prepared statement */
	int lock_fd;             /* content/.writelock, -1 when not held */
	double locked_since;     /* when lock_fd was taken */
	double lock_wait;        /* seconds to wait for a lock another task holds, 0 = no bound */
	volatile gint *lock_cancel; /* a wait for the lock ends when it is set non-zero; may be NULL */
	mv_index_writer *index_writer; /* the thread inserting handed-off documents, or NULL */
	GPtrArray *index_queue;  /* queued_doc*: committed messages awaiting the index */
	double index_since;      /* when the first of them was queued */
	bool locked_once;        /* took the write lock: not handed to a keeper */
	mv_store_keeper keep;    /* may take a closed reader's handle for reuse */
	void *keep_opaque;
	bool envelopes;          /* the envelopes table was seen (envelope.c) */
	GHashTable *dicts;       /* zstd dictionaries loaded: id -> mv_dict* (dictionary.c) */
	GMutex dict_lock;        /* guards published: ingest's parser threads read it */
	struct mv_dict *published; /* what mv_store_prepare_item compresses with, or NULL */
	bool dict_train_failed;  /* this handle tried to train a dictionary and could not */
	void *search_cache;      /* mv_store_set_search_cache's */
	GDestroyNotify search_cache_free;
};

/* A handle on a store's files without its db or index: segments, key and
 * write lock only (RecoverStore builds the db it lacks, UpgradeStore opens
 * it by path).  data_key may be NULL; mv_store_close frees it. */
mv_store *mv_store_new(int store_id, const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES],
                     mv_store_mode mode);
/* A cached prepared statement for a static SQL string, reset and unbound;
 * the caller resets it after stepping.  NULL (error set) if it does not prepare. */
sqlite3_stmt *mv_store_stmt_get(mv_store *s, const char *sql, GError **error);
/* ---- envelope.c: a message's SMTP envelope (sender, recipients incl. Bcc) */
/* Records it for message num (making the table when it is the first). */
int mv_store_envelope_put(mv_store *s, int64_t num, const char *sender, const char *recipients, GError **error);
int mv_store_envelope_put_db(sqlite3 *db, int64_t num, const char *sender, const char *recipients, GError **error);
/* Its envelope, or NULLs when it has none (or the store no table). */
int mv_store_envelope_get(mv_store *s, int64_t num, char **sender_r, char **recipients_r, GError **error);
/* The To column's addresses as the index holds them: the message's own,
 * then its envelope's recipients.  Every writer of a document and every
 * rebuild of one (contentless deletes need the same text) goes through it. */
char *mv_store_index_recipients(const char *to_addrs, const char *envelope_recipients);
/* The record's "envelope" member, or NULL for a message without one. */
json_t *mv_store_envelope_meta(const char *sender, const char *recipients);

/* A segment's file in content/ (the caller frees). */
char *mv_store_segment_file(const mv_store *s, int64_t seg);
/* WAL and the synchronous level: FULL for the metadata db, NORMAL for the index. */
int mv_store_setup_db(sqlite3 *db, bool synchronous_full, GError **error);
/* Writes the 16-byte segment header (magic, layout version) at offset 0 of fd. */
int mv_store_segment_write_header(int fd, const char *path, GError **error);
/* The cached descriptor of segment seg; create makes the file with its header. */
int mv_store_segment_fd(mv_store *s, int64_t seg, bool create, GError **error);
/* The segment to append `need` bytes to (a new one when full) and its committed length. */
int mv_store_segment_for_append(mv_store *s, size_t need, int64_t *seg_r, int64_t *len_r, GError **error);
/* Writes bytes at `at` (cutting what lies past it) and fsyncs; nothing half-written stays. */
int mv_store_segment_append(mv_store *s, int64_t seg, int64_t at, const GByteArray *bytes, GError **error);
/* Records a segment's committed length in the db (inside the caller's transaction). */
int mv_store_set_committed_len(mv_store *s, int64_t seg, int64_t len, GError **error);
/* The id of folder archive/path, created when new (cached per handle). */
int mv_store_folder_id(mv_store *s, const char *archive, const char *path, int64_t *id_r, GError **error);
/* The contents row of a hash, 0 when the content is not stored. */
int mv_store_lookup_content(mv_store *s, const uint8_t *hash, int64_t *id_r, GError **error);
/* The scope column of a document: archive, folder and attachment tokens. */
void mv_store_fill_scope(GString *scope, const char *archive, int64_t folder, bool has_attachment);
/* The metadata db's schema (idempotent CREATE ... IF NOT EXISTS). */
const char *mv_store_schema(void);
/* Takes the write lock only (no index work): recovery, upgrade. */
int mv_store_flock(mv_store *s, GError **error);
/* Takes the write lock and brings the index up to date (catch-up). */
int mv_store_write_lock(mv_store *s, GError **error);
/* The two, for a long-running function: its task's cancel (if any) also
 * ends the wait for a lock another task holds (mv_store_set_lock_cancel). */
int mv_store_flock_for(mv_store *s, const mv_task *task, GError **error);
int mv_store_write_lock_for(mv_store *s, const mv_task *task, GError **error);
/* Queues a copy of doc for the open index transaction (flushed in rowid order). */
void mv_store_queue_doc(mv_store *s, const mv_index_doc *doc);
/* Inserts the queued documents and commits them with the indexed_upto mark
 * (after what the index writer has in hand). */
int mv_store_flush_index(mv_store *s, GError **error);
/* docs (queued documents) inserted in rowid order on db, with the
 * indexed_upto mark, in one transaction (rolled back on failure). */
int mv_index_insert_queued(sqlite3 *db, sqlite3_stmt **cache, GPtrArray *docs, GError **error);
/* A writer's connection on the store's index file (its key, WAL, NORMAL
 * sync, the page cache): the handle's own and the index writer thread's.
 * *db_r may be set on failure; the caller closes it. */
int mv_store_index_writer_conn(mv_store *s, sqlite3 **db_r, GError **error);
/* ---- index_writer.c: the index inserts on a thread of their own */
/* Hands the queued documents to the store's index writer thread (started
 * at the first call) after the hand-off before them is done.  Fails with
 * that one's failure, the queue emptied. */
int mv_store_index_hand_off(mv_store *s, GError **error);
/* Waits until the index writer has nothing in hand; its failure, if any,
 * is returned once, with the queue emptied. */
int mv_store_index_wait(mv_store *s, GError **error);
/* Waits, then ends the thread and closes its connection (store close, a
 * recreated index file). */
void mv_store_index_writer_stop(mv_store *s);
/* Reads len bytes of a record at seg/off, its length checked against the format's bounds. */
int mv_store_read_record(mv_store *s, int64_t seg, int64_t off, int64_t len, GByteArray **rec_r, GError **error);
/* Runs fn(job, user) for every job on all cores and waits for all. */
void mv_store_parallel(GPtrArray *jobs, GFunc fn, gpointer user);
/* The highest message number the index holds every message up to (and its setter). */
int mv_store_indexed_upto(mv_store *s, int64_t *upto_r, GError **error);
/* How many live messages the index lacks past indexed_upto, counted up to
 * limit (-1: all). */
int mv_store_index_lag(mv_store *s, int64_t limit, int64_t *lag_r, GError **error);
/* mv_store_index_needs_upkeep with the staleness already asked. */
int mv_store_index_leave_to_upkeep(mv_store *s, bool stale, bool *leave_r, GError **error);
/* Appends one control record (tombstone, folder move, restore) under the
 * write lock inside the caller's open db transaction, fsync'd before it returns. */
int mv_store_append_record(mv_store *s, mv_record_type type, const char *meta_json, GError **error);
/* Appends encoded records the same way (write lock held, db transaction open). */
int mv_store_append_records(mv_store *s, const GByteArray *records, GError **error);
/* Makes the index file anew, empty, of the db's generation (under the lock). */
int mv_store_index_reset(mv_store *s, GError **error);
/* The writer's index file removed and made anew, empty (store.c): a
 * rebuild's start (mv_store_index_reset). */
int mv_store_index_recreate(mv_store *s, GError **error);

/* Long-running work: progress (percent -1 = unknown) and cancellation. */
bool mv_store_task_cancelled(const mv_task *t);
void mv_store_task_progress(const mv_task *t, int percent, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Index catch-up with progress; cancellation stops between chunks, with
 * everything indexed so far committed (the rest is indexed by the next
 * catch-up) and MV_ERR_CANCELLED. */
int mv_store_index_catch_up_task(mv_store *s, const mv_task *task, GError **error);

/* Small helpers of maint.c that the maintenance files share. */
/* The precondition of every change: s was opened for writing (a caller's
 * bug otherwise, not a condition to report). */
#define mv_store_assert_writer(s) g_assert((s)->mode == MV_STORE_WRITE)
/* Ends a function that took the write lock: mv_store_sync (index commit,
 * lock released); returns rc, or -1 when the sync failed, whose error is
 * reported only if rc was 0. */
int mv_store_finish_locked(mv_store *s, int rc, GError **error);
/* Sets MV_ERR_CANCELLED for `what` (which left nothing half-done); -1. */
int mv_store_cancelled_error(GError **error, const char *what);
/* The first column of sql's first row: 0 / NULL without a row (or for SQL
 * NULL); -1, with `what` failing as the error, when the read fails — a
 * value that could not be read is never taken for one that is not there. */
int mv_store_int_query(sqlite3 *db, const char *sql, const char *what, int64_t *value_r, GError **error);
int mv_store_text_query(sqlite3 *db, const char *sql, const char *what, char **value_r, GError **error);
/* Renames archive/from and its subfolders to to_archive/to in db (MoveFolder, and its replay). */
int mv_store_rename_folders(sqlite3 *db, const char *from_archive, const char *from, const char *to_archive,
                   const char *to, GError **error);
/* The connection the index is read on and the schema prefix its tables need there. */
sqlite3 *mv_store_index_conn(mv_store *s, const char **prefix_r);
/* ---- the store's SQLite files, encrypted at rest (db_files.c) ---- */
typedef enum { MV_STORE_SQL_DB, MV_STORE_SQL_INDEX } mv_store_sql_file;
/* The key one of the files is encrypted with, derived from the data key. */
void mv_store_sql_key(const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which, uint8_t key_r[MV_SQL_KEY_BYTES]);
/* Whether a store's db file is (or, absent, will be made) encrypted. */
bool mv_store_db_file_encrypted(const char *dbp);
/* Opens one of the files, under its key when encrypted (a key that does
 * not open it is an MV_ERR_CORRUPT error naming the file), plain if not. */
int mv_store_sql_open(const char *path, const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which, bool encrypted,
                      bool create, bool readonly, sqlite3 **db_r, GError **error);
/* ATTACHes the index to db as "ix", keyed the same way. */
int mv_store_sql_attach_index(sqlite3 *db, const char *ixp, const uint8_t data_key[MV_KEY_BYTES], bool encrypted,
                              GError **error);
/* The plain db's whole main schema copied into a new encrypted file dest. */
int mv_store_sql_export(sqlite3 *plain, const char *dest, const uint8_t data_key[MV_KEY_BYTES], mv_store_sql_file which,
                        GError **error);
/* Whether the index is to be opened encrypted.  An encrypted store's
 * index is always (a plain file there is removed, to be rebuilt); a plain
 * store's is when the file is (an UpgradeStore cut short between its
 * renames leaves the index encrypted before the db). */
bool mv_store_index_file_encrypted(const char *ixp, bool db_encrypted);
/* The keys file's record of the format (written before an encrypted db is). */
int mv_store_keys_file_set_format(const mv_store_paths *paths, int version, GError **error);
/* Meta rows (key, value, key, ... as sqlite3_value*) carried from a plain
 * db into the keys file; values already there win. */
int mv_store_keys_file_adopt(const mv_store_paths *paths, GPtrArray *rows, GError **error);
/* A plain db's own values — its meta rows but the format's, which carry
 * the wrapped keys before format 3 — as rows for mv_store_keys_file_adopt.
 * Read on a connection of their own; NULL when dbp is not a plain db or
 * cannot be read (a warning: the instance writes its copies again). */
GPtrArray *mv_store_legacy_meta_read(const char *dbp);
/* The store's plain db at paths, opened while the store is closed (meta.c). */
int mv_store_open_db_at(const mv_store_paths *paths, bool readonly, sqlite3 **db_r, GError **error);
/* Removes an SQLite file with its -wal, -shm and -journal siblings. */
void mv_store_remove_db_files(const char *file);
/* An index document rebuilt from content, owning everything it points into. */
typedef struct mv_store_doc {
	mv_index_doc doc;
	char *archive, *folder;  /* owned: the caller's strings may go first */
	int64_t folder_id;
	mv_parsed *parsed;
	GString *scope;
	GByteArray *raw;
	char *to_addrs;          /* owned: the To column's addresses with the envelope's */
} mv_store_doc;
void mv_store_doc_clear(mv_store_doc *h);
/* ---- notes of documents a db change is about to make stale (index_notes.c) ----
 * docs are mv_store_doc*.  _add: in an index transaction of its own, before
 * the db change; _drop: inside the index transaction that follows it;
 * _settle: under the write lock, what a crash left between the two. */
int mv_index_notes_add(mv_store *s, GPtrArray *docs, GError **error);
int mv_index_notes_drop(mv_store *s, GPtrArray *docs, GError **error);
int mv_index_notes_settle(mv_store *s, GError **error);
/* The exact document the index holds for a message (FTS5's contentless delete needs it). */
int mv_store_doc_for(mv_store *s, int64_t num, const char *archive, const char *folder, int64_t folder_id,
            int64_t date, mv_store_doc *h, GError **error);
/* Frees a document of the index queue (the queue's free function). */
void mv_store_queued_doc_free(gpointer p);

/* A live message's row as mv_store_message_from_row reads it, in its
 * column order (message.c): "SELECT " MV_STORE_MESSAGE_COLUMNS " WHERE ...". */
#define MV_STORE_MESSAGE_COLUMNS "m.num, m.date, m.archived_at, m.size, m.has_attachment, m.subject, m.sender," \
                                 " m.recipients, m.message_id, m.mail_flags, f.archive, f.path" \
                                 " FROM messages m JOIN folders f ON f.id = m.folder_id"
/* Fills *m (cleared by the caller) from a row of those columns. */
void mv_store_message_from_row(sqlite3_stmt *st, mv_store_message *m);

#endif
