/* store: one archive store — the unit that holds mail.
 *
 *   content/  append-only segment files of records (record.c): each record is
 *             a fixed header + XChaCha20-Poly1305 ciphertext over zstd bytes.
 *             Message records carry the raw message plus a metadata block;
 *             reference records point a further folder at known content;
 *             together they are the recovery records the db can be rebuilt from.
 *   db/       store.sqlite (WAL): folders, contents, messages, segments.
 *   index/    index.sqlite: a contentless FTS5 table whose rowid is
 *             mv_index_docid(date, number): newest first by the hour,
 *             number recoverable.
 *
 * Writers serialise on the store's write lock, an flock on
 * content/.writelock: under it a writer cuts any uncommitted segment tail,
 * appends, fsyncs, then commits the db.  A segment's committed length lives in the db, so bytes a
 * crashed writer left past it are never visible and are cut by the next one. */
#ifndef MV_STORE_H
#define MV_STORE_H

#include "base/base.h"
#include "base/sql.h"
#include <jansson.h>
#include <sqlite3.h>

/* 1: the first format.  2: batch markers (explicit message numbers in
 * content/), tombstones and folder-move records, deleted_at/deleted_reason. */
/* 3: db and index encrypted (SQLCipher).  4: zstd dictionaries (dictionary
 * records in content/, the dictionaries table), which older builds cannot decode. */
#define MV_STORE_FORMAT_VERSION 4
#define MV_KEY_BYTES 32
#define MV_HASH_BYTES 32              /* BLAKE2b-256 of the raw message */
#define MV_SEGMENT_MAX_BYTES (256u * 1024u * 1024u)

/* ---- keys --------------------------------------------------------------- */

/* Wraps a data key with a key-encryption key: nonce || ciphertext. */
GByteArray *mv_key_wrap(const uint8_t kek[MV_KEY_BYTES], const uint8_t key[MV_KEY_BYTES]);
int mv_key_unwrap(const uint8_t kek[MV_KEY_BYTES], const uint8_t *wrapped, size_t len,
                  uint8_t key_r[MV_KEY_BYTES], GError **error);
/* Derives a key-encryption key from the recovery key text (Argon2id). */
int mv_key_from_recovery(const char *recovery_key, const uint8_t salt[16],
                         uint8_t kek_r[MV_KEY_BYTES], GError **error);
/* A new random recovery key in display form "XXXXX-XXXXX-..." (base32). */
char *mv_recovery_key_new(void);
/* Canonicalises what a user typed (case, spaces, dashes) to the display form. */
char *mv_recovery_key_normalize(const char *typed);

/* ---- the store ------------------------------------------------------------ */

typedef struct mv_store mv_store;

typedef struct mv_store_paths {
	char *db_dir;       /* absolute */
	char *content_dir;
	char *index_dir;
} mv_store_paths;

typedef enum {
	MV_STORE_READ = 0,
	MV_STORE_WRITE = 1,
} mv_store_mode;

/* The files inside a store's directories (store.c) and the default layout
 * under one directory (layout.c) are store/'s to name: whoever looks at
 * them from above (existence, identity, reports) asks here.  The caller frees. */
/* The metadata db: <db_dir>/store.sqlite. */
char *mv_store_db_file(const mv_store_paths *p);
/* The search index: <index_dir>/index.sqlite. */
char *mv_store_index_file(const mv_store_paths *p);
/* A store kept under one directory: dir/db, dir/content, dir/index
 * (dir may be relative; paths_r's three strings are the caller's). */
void mv_store_paths_under(const char *dir, mv_store_paths *paths_r);

/* Creates the directories, the keys file and the empty db/index of a new
 * store, the db and index encrypted under keys derived from data_key. */
int mv_store_create(const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES], GError **error);
mv_store *mv_store_open(int store_id, const mv_store_paths *paths,
                        const uint8_t data_key[MV_KEY_BYTES], mv_store_mode mode, GError **error);
void mv_store_close(mv_store **s);
/* Opening a store (connections, schema, attached index) costs more than a
 * request that lists a folder: a reader's handle can be kept for reuse.
 * mv_store_close tells keep() of every close; a clean reader's handle (no
 * lock ever taken, no transaction) comes with reusable set, its statements
 * reset and what it cached of files (segment descriptors, folder ids)
 * forgotten. keep returns true when it took the handle; false closes it
 * for real. Whoever reuses a kept handle checks first that the store's
 * files are still the ones it opened (a recovery renames new ones in). */
typedef bool (*mv_store_keeper)(mv_store *s, bool reusable, void *opaque);
void mv_store_set_keeper(mv_store *s, mv_store_keeper keep, void *opaque);
/* How long a write waits for the store's write lock while another task
 * holds it (a maintenance function, another import): past it the write
 * fails with MV_ERR_STATE, nothing written.  0, the default, waits as long
 * as it takes.  For writers that answer someone who can come back later
 * (SMTP), instead of keeping them waiting through a rebuild — which is
 * also why such a writer does not rebuild a stale index itself, nor
 * catch up a large gap (minutes for a large store), but fails the same
 * way: the server's scheduler does it in the background
 * (mv_store_index_needs_upkeep, mv_store_index_bring_up). */
void mv_store_set_lock_wait(mv_store *s, double seconds);
/* A flag that ends a wait for the write lock when set non-zero (a task's
 * cancel; NULL: none), with MV_ERR_CANCELLED: a long-running function
 * queued behind an import or a rebuild can be stopped while it waits. */
void mv_store_set_lock_cancel(mv_store *s, volatile gint *cancel);
int mv_store_id(const mv_store *s);
sqlite3 *mv_store_db(mv_store *s);         /* metadata db; index attached as "ix" */
/* What a search keeps with a handle between its queries (search/
 * term_rank.c: the index's document lengths), freed with the handle; a
 * reader's handle serves one user at a time (archive/handles.c), so the
 * cache needs no lock. */
void *mv_store_search_cache(mv_store *s);
void mv_store_set_search_cache(mv_store *s, void *cache, GDestroyNotify free_fn);

/* One message to be added in a batch. */
typedef struct mv_store_item {
	const char *archive;
	const char *folder;
	const uint8_t *raw;
	size_t raw_len;
	uint8_t hash[MV_HASH_BYTES];
	int64_t archived_at;
	const char *source;      /* "file", "mbox", "maildir", ... */
	const char *origin;      /* file path or mbox offset */
	const char *origin_sha256; /* of the Outlook file the message was converted from, or NULL */
	/* The SMTP envelope it came with (store/envelope.c), or NULLs: the
	 * sender and the recipients, addresses separated by ", ". */
	const char *envelope_from, *envelope_to;
	const char *mail_flags;
	/* parsed fields (from mime), borrowed: */
	const char *subject, *from, *from_addrs, *to, *to_addrs, *cc, *cc_addrs, *bcc, *bcc_addrs;
	const char *message_id;
	int64_t date;
	int date_source;
	unsigned parse_flags;
	bool has_attachment;
	const char *text;            /* body text for the index */
	const char *attachment_names;
	/* optional: the message record encoded ahead (mv_store_prepare_item),
	 * owned by the caller, and the zstd dictionary it was compressed with
	 * (0: none; a batch compressing with another encodes it again) */
	GByteArray *prepared;
	unsigned prepared_dict;
	/* filled by the store: */
	int64_t number;              /* message number, 0 if it was a duplicate */
	bool duplicate;              /* already in that folder */
} mv_store_item;

/* Adds items in one durable transaction: records appended and fsync'd, db
 * committed; when it returns 0 the items are archived.  Index rows go into
 * an index transaction committed every few thousand messages and by
 * mv_store_sync.  The first call takes the store's write lock, held until
 * mv_store_sync or close.  Items already present in their folder (same
 * content hash) are marked duplicate and add nothing. */
int mv_store_add_batch(mv_store *s, mv_store_item *items, size_t n, int zstd_level, GError **error);

/* Encodes an item's message record ahead of mv_store_add_batch, so that
 * compression and encryption run on the parsing threads rather than under
 * the write lock.  Thread-safe (reads only the immutable key). */
int mv_store_prepare_item(mv_store *s, mv_store_item *it, int zstd_level, GError **error);


/* Commits the open index transaction and releases the write lock. */
int mv_store_sync(mv_store *s, GError **error);


/* ---- a store's own small values (closed store, by path) -------------------
 * A store carries its wrapped keys and owning instance with it so that it
 * can be detached and attached elsewhere: in db/store-keys.sqlite, plain
 * beside the encrypted db (see meta.c).  Keys used by archive/:
 * "instance_id", "store_uid", "key_master", "key_recovery", "recovery_salt". */
char *mv_store_keys_file(const mv_store_paths *p);
int mv_store_meta_get(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error);
int mv_store_meta_set(const mv_store_paths *paths, const char *key, const void *data, size_t len, GError **error);
/* The db's format version (1 = before tombstones and batch markers, 2 =
 * plain files, 3 = db and index encrypted), without the store's key. */
int mv_store_format_version(const mv_store_paths *paths, int *version_r, GError **error);
/* Counts this process's changes of a store's format version (upgrades), so
 * that a format version read earlier can be reused until the next one. */
unsigned mv_store_format_epoch(void);

/* Copies the store into dest (directories created): the index first, then
 * the db (SQLite online backup), then each segment up to the committed
 * length the copied db records — so the copy is consistent while writers
 * run, and its index is never ahead of its db.  with_index false leaves an
 * empty index that the first writer rebuilds. */
int mv_store_backup(mv_store *s, const mv_store_paths *dest, bool with_index, GError **error);
/* Takes the write lock (which indexes whatever the index lacks) and releases it. */
int mv_store_refresh_index(mv_store *s, GError **error);

/* ---- maintenance (maint.c, compact.c) ------------------------------------------------
 * Long operations report progress and stop at a safe point when *cancel
 * becomes non-zero (failing with MV_ERR_CANCELLED); task may be NULL. */

/* VerifyStore: every record's tag and hash, db against content (rows
 * without records, records without rows, contents pointing at damaged or
 * wrong records) and, with include_index, the index against the db.
 * Changes nothing; holds the write lock so that the three agree.  The report
 * is {"clean", "recordsScanned", "messagesChecked", "damagedMessageIds",
 * "problems": [{"kind","detail","messageIds"?}], ...}. */
int mv_store_verify(mv_store *s, bool include_index, const mv_task *task, json_t **report_r, GError **error);
/* RebuildStoreIndex: a new index file from content/ (the old one removed). */
int mv_store_rebuild_index(mv_store *s, const mv_task *task, GError **error);
/* CompactStore: rewrites segments without the records nothing live needs
 * (contents of deleted messages no other folder references, their reference
 * records and tombstones).  Crash-safe: new segments are written and fsync'd,
 * one db commit switches to them, then the old files go. */
int mv_store_compact(mv_store *s, const mv_task *task, json_t **report_r, GError **error);
/* RecoverStore: rebuilds db/ (and then the index) from content/ alone, into
 * temporary files renamed into place at the end.  Works without a db. */
int mv_store_recover(int store_id, const mv_store_paths *paths, const uint8_t key[MV_KEY_BYTES],
                     bool recover_deleted, const mv_task *task, json_t **report_r, GError **error);
/* RecreateRecoveryRecords: appends a fresh reference record for every live
 * message whose own record is missing or damaged while its content is
 * intact; messages whose content itself is damaged are reported. */
int mv_store_recreate_records(mv_store *s, const mv_task *task, json_t **report_r, GError **error);
/* UpgradeStore: brings a store's files to MV_STORE_FORMAT_VERSION in place
 * (to 3: its db and index encrypted under keys derived from data_key). */
int mv_store_upgrade(const mv_store_paths *paths, const uint8_t data_key[MV_KEY_BYTES], int *from_version_r,
                     GError **error);
/* RepairStoreDatabase / MaintainFileSystemDatabases. */
int mv_store_repair_db(mv_store *s, json_t **report_r, GError **error);
int mv_store_maintain_db(mv_store *s, GError **error);

/* DeleteMessage: hides the message, removes it from the index and appends a
 * tombstone carrying the reason. */
int mv_store_delete_message(mv_store *s, int64_t number, const char *reason, GError **error);
/* The SMTP envelope message number came with (sender; recipients as
 * "a@x, b@y"), or NULLs when it has none. */
int mv_store_message_envelope(mv_store *s, int64_t number, char **sender_r, char **recipients_r, GError **error);
/* MoveFolder inside a store: the folder and its subfolders get the new
 * archive/path; *moved_r counts folders.  A folder-move record keeps the
 * change recoverable from content/. */
int mv_store_move_folder(mv_store *s, const char *from_archive, const char *from_path,
                         const char *to_archive, const char *to_path, int *moved_r, GError **error);
/* Renames every archive and folder name not in Unicode NFC to its NFC form
 * (as MoveFolder does, recoverably); a name whose NFC form another folder
 * holds is left and listed.  *report_r: {namesNormalized: [{archive,
 * folder}], namesNotNormalized: [{archive, folder, reason}]}. */
int mv_store_normalize_names(mv_store *s, json_t **report_r, GError **error);
/* Whether a folder may go (a restricted caller's rights); NULL: all may. */
typedef bool (*mv_store_folder_filter)(const char *archive, const char *path, void *opaque);
/* DeleteEmptyFolders: folders (under archive/prefix when given) without
 * live messages and without subfolders that hold any.  A folder may_delete
 * refuses stays, and so do the folders above it. */
int mv_store_delete_empty_folders(mv_store *s, const char *archive, const char *prefix,
                                  mv_store_folder_filter may_delete, void *opaque, int *deleted_r, GError **error);

/* One live message's row (message.c). */
typedef struct mv_store_message {
	int64_t number, date, archived_at, size;
	bool has_attachment;
	char *archive, *path;          /* its folder */
	char *subject, *sender, *recipients, *message_id, *mail_flags;
} mv_store_message;
void mv_store_message_clear(mv_store_message *m);
/* MV_ERR_NOT_FOUND for a number that is not a live message. */
int mv_store_message_get(mv_store *s, int64_t number, mv_store_message *m_r, GError **error);
/* Called with each message of a walk in turn; m and its texts are valid
 * only during the call.  Returns 0 to go on, anything else to stop. */
typedef int (*mv_store_message_fn)(const mv_store_message *m, void *opaque);
/* Hands fn the live messages numbered from `from` on, in number order (query.c).
 * Memory stays bounded and no read transaction is held while fn runs, so fn
 * may read the store.  0 when all were handed on, 1 when fn stopped the
 * walk, -1 with *error when the store could not be read. */
int mv_store_each_message(mv_store *s, int64_t from, mv_store_message_fn fn, void *opaque, GError **error);
/* Reads in a row inside one read transaction (one snapshot, one lock of
 * the WAL index instead of one per statement), for a burst of lookups:
 * hold, read, release soon — a held snapshot keeps the WAL from being
 * checkpointed past it.  A hold that cannot begin returns -1 and the reads
 * go on, each in its own transaction.  mv_store_close releases too. */
int mv_store_read_hold(mv_store *s);
void mv_store_read_release(mv_store *s);
bool mv_store_read_holding(const mv_store *s);
/* Whether the folder archive/path holds (or held: deleted ones count, as
 * for the store's own duplicate check) a message with this content hash —
 * what the store would call a duplicate (query.c). */
int mv_store_folder_has_content(mv_store *s, const char *archive, const char *path,
                                const uint8_t hash[MV_HASH_BYTES], bool *has_r, GError **error);
/* One folder's live messages in listing order (date, then number, both
 * descending) that follow the position (before_date, before_num): older
 * dates, or that date with lower numbers; at most limit, fn running inside
 * the read.  Returns as mv_store_each_message. */
int mv_store_folder_messages(mv_store *s, const char *archive, const char *path, int64_t before_date,
                             int64_t before_num, int64_t limit, mv_store_message_fn fn, void *opaque, GError **error);
/* How many of the messages mv_store_folder_messages would list from the
 * same position there are, counted no further than at_most (so *count_r ==
 * at_most means "at least that many"). */
int mv_store_folder_count(mv_store *s, const char *archive, const char *path, int64_t before_date,
                          int64_t before_num, int64_t at_most, int64_t *count_r, GError **error);
/* The date of message `number` if it is (or was: deleted ones too) in
 * folder archive/path: 1 with *date_r, 0 when it is not, -1 with *error. */
int mv_store_folder_message_date(mv_store *s, int64_t number, const char *archive, const char *path,
                                 int64_t *date_r, GError **error);
/* Whether the store has folder archive/path or one below it (path "": any
 * folder of the archive): 1, 0, or -1 with *error. */
int mv_store_has_folder(mv_store *s, const char *archive, const char *path, GError **error);
/* Called with each folder's archive and path (never NULL); nonzero stops. */
typedef int (*mv_store_folder_fn)(const char *archive, const char *path, void *opaque);
/* Hands fn every folder of the store, empty ones too: 0, 1 when fn
 * stopped, -1 with *error. */
int mv_store_each_folder(mv_store *s, mv_store_folder_fn fn, void *opaque, GError **error);

/* A message's id, "<store>:<number>" (message_id.c): the one formatter and
 * its strict parser (one id, one spelling; false for anything else). */
char *mv_message_id_format(int store_id, int64_t number);
bool mv_message_id_parse(const char *text, int *store_r, int64_t *num_r);

/* Reads a message's raw bytes, checking the content hash. */
int mv_store_read_message(mv_store *s, int64_t number, GByteArray **raw_r, GError **error);

typedef struct mv_store_stats {
	int64_t messages, contents, raw_bytes;
	uint64_t disk_content, disk_db, disk_index;
} mv_store_stats;
int mv_store_get_stats(mv_store *s, mv_store_stats *st, GError **error);
/* Messages ever numbered in the store (deleted ones included): cheap. */
int64_t mv_store_message_count(mv_store *s);

typedef struct mv_folder_stats {
	char *archive, *path;
	int64_t messages, bytes;
} mv_folder_stats;
void mv_folder_stats_free(mv_folder_stats *f);
/* Folders of the store (optionally of one archive) with their counts. */
int mv_store_list_folders(mv_store *s, const char *archive, GPtrArray **folders_r, GError **error);



/* The index format this build writes (index.c); an index of another
 * format is rebuilt by its store's next writer, and read as it is until
 * then (old stores nobody writes stay so). */
#define MV_INDEX_FORMAT 5
/* The format of the index the handle reads. */
int mv_store_index_format(mv_store *s, int64_t *format_r, GError **error);
/* Whether the index must be rebuilt before the store is written again:
 * of another format than this build's, or of another generation than the
 * db (db recovered, index restored from elsewhere: its rowids name other
 * messages).  A writer's next lock rebuilds it; readers and writers alike
 * may ask. */
int mv_store_index_stale(mv_store *s, bool *stale_r, GError **error);
/* The two halves of that: another generation (the index's rowids name
 * other messages: a search of it answers wrongly) and another format (read
 * as it is, rightly, until its store is written). */
int mv_store_index_staleness(mv_store *s, bool *other_generation_r, bool *other_format_r, GError **error);
/* More messages than this unindexed (the rest of a rebuild cancelled by a
 * server's stop), and a writer with a bounded wait leaves them to the
 * background too: at ~3,000 a second, 20,000 keep a sender ~7 s. */
#define MV_INDEX_INLINE_CATCH_UP 20000
/* Whether a writer with a bounded wait would leave the index to the
 * server's background upkeep: stale, or lacking more than
 * MV_INDEX_INLINE_CATCH_UP messages.  Readers and writers may ask. */
int mv_store_index_needs_upkeep(mv_store *s, bool *needed_r, GError **error);
/* How many live messages of the folders folder_ids names ("1,2,3", made
 * by the caller from folder ids; NULL: every folder) the index does not
 * hold yet: archived while a writer's hand-off is in flight, or past where
 * a rebuild has come.  A search of those folders cannot see them.  Readers
 * and writers may ask. */
int mv_store_index_lag_in(mv_store *s, const char *folder_ids, int64_t *lag_r, GError **error);
/* What every writer's lock does to the index, as a task of its own (the
 * lock waited for without a bound, progress, cancellation between
 * chunks): made anew and rebuilt when stale, else the messages it lacks
 * indexed; nothing when it is up to date.  The server's background upkeep
 * (jobs/index_upkeep.c). */
int mv_store_index_bring_up(mv_store *s, const mv_task *task, GError **error);

/* Synthetic tokens, spelled as an index of `format` holds them (index.c):
 * scope tokens, one per archive and folder and one for "has an attachment",
 * so that scoped searches are an FTS intersection, not a post-filter; and
 * one token standing for a whole normalised address, so that from:a@b.c is
 * a single posting-list lookup rather than a phrase over "a b c" — from
 * format 4 one per address column, so that from: is not a column filter. */
typedef enum { MV_ADDR_FROM, MV_ADDR_TO, MV_ADDR_CC, MV_ADDR_BCC } mv_address_role;
char *mv_scope_archive_token(const char *archive, int64_t format);
char *mv_scope_folder_token(int64_t folder_id, int64_t format);
const char *mv_scope_has_attachment_token(int64_t format);
char *mv_address_token(const char *normalised_address, mv_address_role role, int64_t format);
/* The MATCH term finding `token` of `column` in an index of `format`. */
void mv_index_append_token_term(GString *out, const char *column, const char *token, int64_t format);
/* Whether that term names its column: before format 4 a synthetic token
 * could be a word, and only the column told them apart. */
bool mv_index_token_term_has_column(int64_t format);

/* FTS rowid of a message: ((MAX_DATE - date / bucket) << 25) | number, so
 * ascending rowid order is newest first by date bucket, and by number
 * within one.  Message numbers must stay below 2^25 (the reference's limit
 * of 30,000,000 messages per store fits); dates are clamped to [0, 2^37).
 * An index of format 3 buckets dates by the hour: every posting stores the
 * delta to the previous rowid, and by the second two messages an hour apart
 * differed by 5-6 bytes.  A day would be smaller still, but a search reads
 * all of one bucket's hits to sort them (bench/RESULTS.md): an hour bounds
 * that at what a busy store takes in an hour.  Older indexes bucket by the
 * second; readers ask mv_index_date_bucket of the index's format. */
#define MV_INDEX_NUMBER_BITS 25
#define MV_INDEX_NUMBER_MASK ((INT64_C(1) << MV_INDEX_NUMBER_BITS) - 1)
#define MV_INDEX_MAX_DATE ((INT64_C(1) << 37) - 1)
#define MV_INDEX_DATE_BUCKET INT64_C(3600)
#define MV_STORE_MAX_MESSAGE_NUMBER MV_INDEX_NUMBER_MASK
/* This build's rowid (what writers insert), and an index's of date bucket `bucket`. */
int64_t mv_index_docid(int64_t date, int64_t number);
int64_t mv_index_docid_in(int64_t bucket, int64_t date, int64_t number);
int64_t mv_index_docid_number(int64_t docid);
/* Newest first exactly, as one integer: the clamped date descending, then
 * the number ascending (the rowid with a bucket of one second).  Search
 * results and `after` follow it whatever the index's bucket. */
int64_t mv_order_key(int64_t date, int64_t number);
/* mv_order_key in SQL over a messages row, columns prefixed by `t` ("m.",
 * or "" inside the table's own schema): the store db indexes it
 * (messages_order), so that a listing newest first over the db alone walks
 * that index instead of sorting every row it keeps. */
#define MV_ORDER_KEY_SQL(t) "(((137438953471 - max(0, min(" t "date, 137438953471))) << 25) | " t "num)"
/* The (clamped) date an order key names. */
int64_t mv_order_key_date(int64_t key);
/* The date bucket of an index of `format` (mv_store_index_format):
 * MV_INDEX_DATE_BUCKET from format 3 on, 1 before. */
int64_t mv_index_date_bucket(int64_t format);



#endif
