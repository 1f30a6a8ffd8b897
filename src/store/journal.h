/* store/journal: the walk over content/, the store's journal, shared by
 * maint.c (verify, recover, recreate recovery records, backup) and
 * compact.c.  Internal to store/, like internal.h: not a public header. */
#ifndef MV_STORE_JOURNAL_H
#define MV_STORE_JOURNAL_H

#include "store/internal.h"

typedef struct mv_journal_segment {
	int64_t id;
	int64_t end;          /* committed length (db) or file size (recovery) */
	int64_t valid_end;    /* filled by the scan: end of the last whole record */
} mv_journal_segment;

typedef struct mv_journal_rec {
	int64_t segment, offset, length;
	int type;             /* from the header; trustworthy only when ok */
	bool ok;              /* authenticated and decompressed */
	int64_t number;       /* message/reference: its number (0 = unknown); tombstone: the deleted one */
	json_t *meta;         /* when ok */
	const uint8_t *body;
	size_t body_len;
	const char *problem;  /* when !ok */
	unsigned dict_missing; /* when !ok because its frame names a zstd dictionary the walk had not met: its id */
} mv_journal_rec;

/* Called once per record or run of unreadable bytes, in journal order; r and
 * what it points to live only for the call.  Non-zero stops the walk. */
typedef int (*mv_journal_fn)(void *opaque, mv_journal_rec *r, GError **error);

/* The segments the db names, by id, each with its committed length as end;
 * NULL (error set) when the query cannot be prepared. */
GArray *mv_journal_segments_from_db(sqlite3 *db, GError **error);
/* The seg-NNNNNNNN.mvs regular files in dir, by id, each with its size as
 * end (recovery, and files no db row names); NULL when dir cannot be read. */
GArray *mv_journal_segments_from_dir(const char *dir, GError **error);
/* Walks segs (mv_journal_segment, in order) record by record, numbering
 * message and reference records as replay would (batch markers, uncertain
 * after unreadable bytes), calling fn for each; fills each valid_end.
 * Progress and cancellation (MV_ERR_CANCELLED) through task. */
int mv_journal_scan(mv_store *s, GArray *segs, const mv_task *task, mv_journal_fn fn, void *opaque,
                    GError **error);
/* The same, the zstd dictionaries met on the way (dictionary records, in
 * journal order: a record can use only one met before it) kept in dicts
 * (a mv_dict_table_new table the caller owns) for the caller to use after. */
int mv_journal_scan_dicts(mv_store *s, GArray *segs, GHashTable *dicts, const mv_task *task, mv_journal_fn fn,
                          void *opaque, GError **error);
/* The content hash a record's metadata names ("hash", hex); false if none. */
bool mv_journal_meta_hash(json_t *meta, uint8_t out[MV_HASH_BYTES]);
/* True when r is readable and its body hashes to the hash its metadata names. */
bool mv_journal_body_matches(const mv_journal_rec *r);

/* Problems go into a report as {"kind","detail","messageIds"?}, at most
 * MAX_PROBLEMS of them; "problemCount" stays exact. */
typedef struct mv_journal_report {
	json_t *problems;
	int64_t count;
} mv_journal_report;

void mv_journal_problem(mv_journal_report *r, const char *kind, json_t *ids, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

#endif
