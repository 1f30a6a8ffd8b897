/* store/dictionary: a store's zstd dictionaries (format 4) — trained once
 * on the store's own first messages, kept as a record of content/ and a
 * row of the db, prepared once for compressing and decompressing.
 * Internal to store/, like journal.h: not a public header. */
#ifndef MV_STORE_DICTIONARY_H
#define MV_STORE_DICTIONARY_H

#include "store/internal.h"

#include <zstd.h>

#define MV_DICT_BYTES (64u * 1024u)     /* trained size; 32-112 KB measured alike (bench/RESULTS.md) */
#define MV_DICT_TRAIN_AFTER 500         /* messages stored before a store trains its dictionary */
#define MV_DICT_SAMPLE_CAP (16u * 1024u) /* bytes of each message's record payload used as a sample */
#define MV_DICT_SAMPLE_RECORD_MAX (1024 * 1024) /* records past this are not sampled */
#define MV_DICT_MAX_BYTES (1024u * 1024u) /* what a dictionary record may hold: a bound for hostile bytes */

/* One dictionary, prepared: its decompression form made when loaded, its
 * compression form on first use.  Reference-counted: a handle's table,
 * a batch and the encoders of ingest's parser threads share one. */
typedef struct mv_dict mv_dict;

/* Loads dictionary bytes that must be a zstd dictionary of id `id` (what
 * its record or row says); MV_ERR_CORRUPT naming the id when they are not. */
mv_dict *mv_dict_load(unsigned id, const uint8_t *bytes, size_t len, GError **error);
mv_dict *mv_dict_ref(mv_dict *d);
void mv_dict_unref(mv_dict *d);
unsigned mv_dict_id(const mv_dict *d);
const ZSTD_DDict *mv_dict_ddict(const mv_dict *d);
/* The compression form at level (made once; thread-safe); NULL when zstd
 * cannot allocate it. */
const ZSTD_CDict *mv_dict_cdict(mv_dict *d, int level);

/* Trains a dictionary of at most MV_DICT_BYTES with id `id` from n samples
 * laid end to end in samples (sizes[i] bytes each). */
GBytes *mv_dict_train(const uint8_t *samples, const size_t *sizes, unsigned n, unsigned id, int level,
                      GError **error);

/* A table id -> mv_dict*, owning its references (GHashTable). */
GHashTable *mv_dict_table_new(void);
/* mv_record_dict_fn over such a table (opaque = the table): a lookup that
 * changes nothing, safe from many threads while nobody adds. */
const ZSTD_DDict *mv_dict_table_lookup(void *table, unsigned id);

/* ---- a store's dictionaries ---- */

/* mv_record_dict_fn for reads through a handle (opaque = the mv_store):
 * a dictionary not loaded yet is read from the db.  One thread at a time,
 * as the handle is; parallel decoders use mv_store_dicts_preload first
 * and then mv_store_dict_preloaded. */
const ZSTD_DDict *mv_store_dict_lookup(void *store, unsigned id);
int mv_store_dicts_preload(mv_store *s, GError **error);
const ZSTD_DDict *mv_store_dict_preloaded(void *store, unsigned id);
/* Inside a batch's db transaction, under the write lock: the dictionary
 * the batch compresses with, or NULL.  The store's newest dictionary when
 * it has one; else, once MV_DICT_TRAIN_AFTER messages are stored, one
 * trained now on the first of them, whose record is appended to out (so
 * it precedes, in the same fsync'd write, every record compressed with
 * it) and whose row is inserted in the transaction.  A failed training is
 * logged and the batch goes on without (the next handle tries again). */
int mv_store_dict_for_batch(mv_store *s, int level, GByteArray *out, mv_dict **dict_r, GError **error);
/* After the batch's COMMIT: its dictionary is what mv_store_prepare_item
 * (ingest's parser threads) compresses with from now on. */
void mv_store_dict_publish(mv_store *s, mv_dict *d);
/* A writer's open: the store's newest dictionary published at once, so
 * that ingest prepares its first batch with it. */
int mv_store_dict_publish_newest(mv_store *s, GError **error);
/* A reference to the published dictionary, or NULL. */
mv_dict *mv_store_dict_published(mv_store *s);
/* Records a dictionary read from content/ into db's dictionaries table (RecoverStore). */
int mv_store_dict_insert(sqlite3 *db, unsigned id, int64_t at, const uint8_t *bytes, size_t len, GError **error);
/* The id a dictionary record's metadata names, 0 if none valid. */
unsigned mv_dict_meta_id(json_t *meta);

#endif
