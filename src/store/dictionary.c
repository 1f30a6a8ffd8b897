/* store/dictionary: a store's zstd dictionaries.
 *
 * A message compressed on its own compresses poorly: zstd has nothing to
 * draw on but the message, and mail is mostly headers that every message
 * repeats.  A dictionary trained on the store's own mail gives it that
 * (bench/RESULTS.md: content/ 23% smaller on the SpamAssassin corpus).
 *
 * Format 4 keeps each dictionary twice: as a record of content/ (type
 * MV_RECORD_DICTIONARY, encrypted like every record), so that the store
 * stays recoverable from content/ alone, and as a row of the db's
 * `dictionaries` table, so that a reader loads it without walking
 * content/.  The record is appended in the same write as, and before, the
 * first records compressed with it, and its row committed with theirs, so
 * no acknowledged record can name a dictionary content/ does not hold
 * before it.  zstd frames name their dictionary's id in their header, so
 * message records need no field of their own: the decoder asks for the id
 * (record.c), and the journal walk meets the dictionary record first.
 *
 * When: once per store, in the first batch after MV_DICT_TRAIN_AFTER
 * messages are stored, on the first of them (read back from content/, so
 * it does not matter which process or handle stored them).  Training
 * takes about 0.25 s once, inline in that batch; the messages stored
 * before stay as they are.  Ids are random (2^31 of them, past zstd's
 * reserved range), so that a dictionary lost with its record is never
 * confused with a later one. */
#define ZDICT_STATIC_LINKING_ONLY
#include "store/dictionary.h"

#include <sodium.h>
#include <string.h>
#include <zdict.h>

struct mv_dict {
	gatomicrefcount refs;
	unsigned id;
	GBytes *bytes;
	ZSTD_DDict *ddict;
	GMutex lock;          /* guards cdict */
	ZSTD_CDict *cdict;
};

mv_dict *mv_dict_load(unsigned id, const uint8_t *bytes, size_t len, GError **error)
{
	if (id == 0 || len == 0 || len > MV_DICT_MAX_BYTES || ZSTD_getDictID_fromDict(bytes, len) != id) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "zstd dictionary %u: its %zu bytes are not a dictionary of that id",
		            id, len);
		return NULL;
	}
	ZSTD_DDict *dd = ZSTD_createDDict(bytes, len);
	if (!dd) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "zstd dictionary %u cannot be loaded", id);
		return NULL;
	}
	mv_dict *d = g_new0(mv_dict, 1);
	g_atomic_ref_count_init(&d->refs);
	d->id = id;
	d->bytes = g_bytes_new(bytes, len);
	d->ddict = dd;
	g_mutex_init(&d->lock);
	return d;
}

mv_dict *mv_dict_ref(mv_dict *d)
{
	if (d)
		g_atomic_ref_count_inc(&d->refs);
	return d;
}

void mv_dict_unref(mv_dict *d)
{
	if (!d || !g_atomic_ref_count_dec(&d->refs))
		return;
	ZSTD_freeDDict(d->ddict);
	ZSTD_freeCDict(d->cdict);
	g_bytes_unref(d->bytes);
	g_mutex_clear(&d->lock);
	g_free(d);
}

unsigned mv_dict_id(const mv_dict *d) { return d->id; }
const ZSTD_DDict *mv_dict_ddict(const mv_dict *d) { return d->ddict; }

const ZSTD_CDict *mv_dict_cdict(mv_dict *d, int level)
{
	/* Made at the first caller's level: the store's writers use one
	 * (ingest's), and a level differs only in speed, never in what decodes. */
	g_mutex_lock(&d->lock);
	if (!d->cdict)
		d->cdict = ZSTD_createCDict(g_bytes_get_data(d->bytes, NULL), g_bytes_get_size(d->bytes), level);
	const ZSTD_CDict *c = d->cdict;
	g_mutex_unlock(&d->lock);
	return c;
}

GBytes *mv_dict_train(const uint8_t *samples, const size_t *sizes, unsigned n, unsigned id, int level,
                      GError **error)
{
	/* fastCover with fixed parameters, and our id.  ZDICT_trainFromBuffer's
	 * search over k (4 steps) took 137 ms of the ingest batch it runs in
	 * and chose k=537 on the SpamAssassin corpus; one training at k=512 takes
	 * 60 ms and compresses content/ as well (within 0.1%, bench/RESULTS.md). */
	ZDICT_fastCover_params_t p = { .k = 512, .d = 8, .f = 20, .accel = 1,
	                               .zParams = { .compressionLevel = level, .dictID = id } };
	uint8_t *buf = g_malloc(MV_DICT_BYTES);
	size_t got = ZDICT_trainFromBuffer_fastCover(buf, MV_DICT_BYTES, samples, sizes, n, p);
	if (ZDICT_isError(got)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "training a zstd dictionary on %u messages: %s", n,
		            ZDICT_getErrorName(got));
		g_free(buf);
		return NULL;
	}
	return g_bytes_new_take(g_realloc(buf, got), got);
}

GHashTable *mv_dict_table_new(void)
{
	return g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)mv_dict_unref);
}

const ZSTD_DDict *mv_dict_table_lookup(void *table, unsigned id)
{
	mv_dict *d = g_hash_table_lookup(table, GUINT_TO_POINTER(id));
	return d ? d->ddict : NULL;
}

unsigned mv_dict_meta_id(json_t *meta)
{
	json_int_t id = json_integer_value(json_object_get(meta, "id"));
	return id > 0 && id <= (json_int_t)UINT32_MAX ? (unsigned)id : 0;
}

/* ---- a store's dictionaries ------------------------------------------------------------------ */

static bool store_has_dictionaries(mv_store *s)
{
	return s->format_version >= 4;
}

/* The dictionary of id from the db, added to the handle's table. */
static mv_dict *load_from_db(mv_store *s, unsigned id, GError **error)
{
	sqlite3_stmt *st;
	if (!(st = mv_store_stmt_get(s, "SELECT dict FROM dictionaries WHERE id = ?", error)))
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	mv_dict *d = NULL;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		d = mv_dict_load(id, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), error);
	else if (step != SQLITE_DONE)
		mv_sql_set_error(error, s->db, "read a zstd dictionary");
	sqlite3_reset(st);
	if (d)
		g_hash_table_insert(s->dicts, GUINT_TO_POINTER(id), d);
	return d;
}

const ZSTD_DDict *mv_store_dict_lookup(void *store, unsigned id)
{
	mv_store *s = store;
	const ZSTD_DDict *dd = mv_dict_table_lookup(s->dicts, id);
	if (dd || !store_has_dictionaries(s))
		return dd;
	GError *err = NULL;
	mv_dict *d = load_from_db(s, id, &err);
	if (err) {
		mv_log_warn("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
	return d ? d->ddict : NULL;
}

const ZSTD_DDict *mv_store_dict_preloaded(void *store, unsigned id)
{
	return mv_dict_table_lookup(((mv_store *)store)->dicts, id);
}

int mv_store_dicts_preload(mv_store *s, GError **error)
{
	if (!store_has_dictionaries(s))
		return 0;
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT id, dict FROM dictionaries", &st, error) < 0)
		return -1;
	int step, rc = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		unsigned id = (unsigned)sqlite3_column_int64(st, 0);
		if (g_hash_table_contains(s->dicts, GUINT_TO_POINTER(id)))
			continue;
		GError *err = NULL;
		mv_dict *d = mv_dict_load(id, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), &err);
		if (!d) {
			/* Its messages fail to decode, each naming the dictionary. */
			mv_log_warn("store %d: %s", s->id, err->message);
			g_error_free(err);
			continue;
		}
		g_hash_table_insert(s->dicts, GUINT_TO_POINTER(id), d);
	}
	if (step != SQLITE_DONE) {
		mv_sql_set_error(error, s->db, "read the zstd dictionaries");
		rc = -1;
	}
	sqlite3_finalize(st);
	return rc;
}

int mv_store_dict_insert(sqlite3 *db, unsigned id, int64_t at, const uint8_t *bytes, size_t len, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT OR REPLACE INTO dictionaries(id, dict, created_at) VALUES(?, ?, ?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_blob(st, 2, bytes, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, at);
	return mv_sql_step_done(db, st, "record a zstd dictionary", error);
}

/* How many messages must be stored before training: MAILVAULT_DICT_TRAIN_AFTER
 * overrides it (0 = never), for tests and for measuring without. */
static int64_t train_after(void)
{
	const char *v = g_getenv("MAILVAULT_DICT_TRAIN_AFTER");
	if (!v || !*v)
		return MV_DICT_TRAIN_AFTER;
	int64_t n = g_ascii_strtoll(v, NULL, 10);
	return n > 0 ? MAX(n, 8) : 0;
}

/* The first `n` stored messages' record payloads, each cut to
 * MV_DICT_SAMPLE_CAP, end to end; a record that does not read is skipped,
 * and so is a record past MV_DICT_SAMPLE_RECORD_MAX (a whole record is
 * decrypted for its first bytes: 500 huge attachments would cost minutes,
 * and say little about mail's headers). */
static int gather_samples(mv_store *s, int64_t n, GByteArray *samples, GArray *sizes, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT segment, offset, length FROM contents WHERE length <= ? ORDER BY id LIMIT ?",
	                   &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, MV_DICT_SAMPLE_RECORD_MAX);
	sqlite3_bind_int64(st, 2, n);
	while (sqlite3_step(st) == SQLITE_ROW) {
		GByteArray *rec = NULL, *plain = NULL;
		mv_record_header h;
		const uint8_t *meta, *body;
		size_t meta_len, body_len;
		if (mv_store_read_record(s, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
		                         sqlite3_column_int64(st, 2), &rec, NULL) == 0 &&
		    mv_record_decode_dict(s->key, mv_store_dict_lookup, s, rec->data, rec->len, &h, &plain, &meta, &meta_len,
		                          &body, &body_len, NULL, NULL) == 0) {
			size_t take = MIN((size_t)plain->len, (size_t)MV_DICT_SAMPLE_CAP);
			g_byte_array_append(samples, plain->data, (guint)take);
			g_array_append_val(sizes, take);
		}
		if (rec)
			g_byte_array_unref(rec);
		if (plain)
			g_byte_array_unref(plain);
	}
	sqlite3_finalize(st);
	return 0;
}

static unsigned new_dict_id(mv_store *s, GError **error)
{
	for (;;) {
		/* zstd reserves ids below 32768 for registered dictionaries. */
		unsigned id = 32768 + randombytes_uniform(0x7fffffffu - 32768);
		char *sql = g_strdup_printf("SELECT count(*) FROM dictionaries WHERE id = %u", id);
		int64_t taken = 0;
		int rc = mv_store_int_query(s->db, sql, "look up a dictionary id", &taken, error);
		g_free(sql);
		if (rc < 0)
			return 0;
		if (!taken)
			return id;
	}
}

/* Trains the store's dictionary, appends its record to out and inserts its
 * row; *dict_r stays NULL when training did not give one. */
static int train_for_store(mv_store *s, int level, int64_t samples_wanted, GByteArray *out, mv_dict **dict_r,
                           GError **error)
{
	GByteArray *samples = g_byte_array_new();
	GArray *sizes = g_array_new(FALSE, FALSE, sizeof(size_t));
	GBytes *bytes = NULL;
	GError *err = NULL;
	int rc = -1;
	double t0 = mv_monotonic();
	unsigned id = 0;
	if (gather_samples(s, samples_wanted, samples, sizes, error) < 0 || !(id = new_dict_id(s, error)))
		goto out;
	bytes = mv_dict_train(samples->data, (const size_t *)(void *)sizes->data, sizes->len, id, level, &err);
	if (!bytes) {
		mv_log_warn("store %d: no zstd dictionary: %s", s->id, err->message);
		g_error_free(err);
		s->dict_train_failed = true;
		rc = 0;
		goto out;
	}
	size_t len;
	const uint8_t *data = g_bytes_get_data(bytes, &len);
	mv_dict *d = mv_dict_load(id, data, len, error);
	if (!d)
		goto out;
	int64_t at = mv_now();
	char *meta = g_strdup_printf("{\"v\":1,\"id\":%u,\"at\":%lld}", id, (long long)at);
	rc = mv_record_encode(s->key, MV_RECORD_DICTIONARY, (const uint8_t *)meta, strlen(meta), data, len, 1, out, error);
	g_free(meta);
	if (rc == 0)
		rc = mv_store_dict_insert(s->db, id, at, data, len, error);
	if (rc < 0) {
		mv_dict_unref(d);
		goto out;
	}
	g_hash_table_insert(s->dicts, GUINT_TO_POINTER(id), d);
	*dict_r = mv_dict_ref(d);
	mv_log_info("store %d: trained zstd dictionary %u (%zu bytes) on %u messages in %.0f ms", s->id, id, len,
	            sizes->len, (mv_monotonic() - t0) * 1e3);
out:
	if (bytes)
		g_bytes_unref(bytes);
	g_byte_array_unref(samples);
	g_array_free(sizes, TRUE);
	return rc;
}

/* The store's newest dictionary, loaded (a reference), or NULL if it has none. */
static int newest_dict(mv_store *s, mv_dict **dict_r, GError **error)
{
	*dict_r = NULL;
	int64_t newest = 0;
	if (mv_store_int_query(s->db, "SELECT id FROM dictionaries ORDER BY seq DESC LIMIT 1",
	                       "look up the store's dictionary", &newest, error) < 0)
		return -1;
	if (!newest)
		return 0;
	if (!mv_store_dict_lookup(s, (unsigned)newest)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "store %d: its zstd dictionary %lld cannot be loaded",
		            s->id, (long long)newest);
		return -1;
	}
	*dict_r = mv_dict_ref(g_hash_table_lookup(s->dicts, GUINT_TO_POINTER((unsigned)newest)));
	return 0;
}

int mv_store_dict_publish_newest(mv_store *s, GError **error)
{
	if (!store_has_dictionaries(s))
		return 0;
	mv_dict *d = NULL;
	if (newest_dict(s, &d, error) < 0)
		return -1;
	if (d)
		mv_store_dict_publish(s, d);
	mv_dict_unref(d);
	return 0;
}

int mv_store_dict_for_batch(mv_store *s, int level, GByteArray *out, mv_dict **dict_r, GError **error)
{
	*dict_r = NULL;
	if (!store_has_dictionaries(s))
		return 0;
	if (newest_dict(s, dict_r, error) < 0)
		return -1;
	if (*dict_r)
		return 0;
	int64_t want = train_after(), stored = 0;
	if (want == 0 || s->dict_train_failed)
		return 0;
	/* Content ids are handed out in order: the largest is (about) how many
	 * were ever stored, read without counting rows. */
	if (mv_store_int_query(s->db, "SELECT coalesce(max(id), 0) FROM contents", "count stored messages", &stored,
	                       error) < 0)
		return -1;
	if (stored < want)
		return 0;
	return train_for_store(s, level, want, out, dict_r, error);
}

void mv_store_dict_publish(mv_store *s, mv_dict *d)
{
	g_mutex_lock(&s->dict_lock);
	if (s->published != d) {
		mv_dict_unref(s->published);
		s->published = mv_dict_ref(d);
	}
	g_mutex_unlock(&s->dict_lock);
}

mv_dict *mv_store_dict_published(mv_store *s)
{
	g_mutex_lock(&s->dict_lock);
	mv_dict *d = mv_dict_ref(s->published);
	g_mutex_unlock(&s->dict_lock);
	return d;
}
