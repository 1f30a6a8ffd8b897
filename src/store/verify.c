/* store/verify: VerifyStore and RecreateRecoveryRecords — content/ read
 * front to back (journal.c) and held against the db and the index.  Verify
 * changes nothing and reports; RecreateRecoveryRecords runs the same census
 * of records and appends a reference record for each live message whose own
 * record it found missing or damaged while its content is intact. */
#include "store/journal.h"
#include "store/dictionary.h"

#include <sodium.h>
#include <string.h>

static json_t *message_id_json(int store_id, int64_t num)
{
	char *text = mv_message_id_format(store_id, num);
	json_t *v = json_string(text);
	g_free(text);
	return v;
}

/* ---- VerifyStore ---------------------------------------------------------------------------- */

enum { NUM_NONE = 0, NUM_MESSAGE, NUM_REFERENCE, NUM_DAMAGED };

typedef struct numrec {
	uint8_t state;
	uint8_t tombstone;
	uint8_t seen;         /* a db row claimed it */
	uint8_t hash[MV_HASH_BYTES];
} numrec;

typedef struct verify_ctx {
	mv_store *s;
	const mv_task *task;
	mv_journal_report rep;
	GArray *nums;         /* numrec by message number */
	sqlite3_stmt *contents; /* cursor: id, segment, offset, length, hash ordered by place */
	bool have_content;
	GArray *damaged_contents; /* content ids */
	int64_t records, damaged_records;
} verify_ctx;

static numrec *num_slot(GArray *nums, int64_t n)
{
	if (n <= 0 || n > MV_STORE_MAX_MESSAGE_NUMBER)
		return NULL;
	if ((guint)n >= nums->len)
		g_array_set_size(nums, (guint)n + 1 + nums->len / 2);
	return &g_array_index(nums, numrec, n);
}

static void contents_advance(verify_ctx *v)
{
	v->have_content = sqlite3_step(v->contents) == SQLITE_ROW;
}

/* A contents row that points at no record start. */
static void content_lost(verify_ctx *v, const char *why)
{
	int64_t id = sqlite3_column_int64(v->contents, 0);
	g_array_append_val(v->damaged_contents, id);
	mv_journal_problem(&v->rep, "contentMissing", NULL, "content %lld (segment %lld offset %lld): %s", (long long)id,
	               (long long)sqlite3_column_int64(v->contents, 1), (long long)sqlite3_column_int64(v->contents, 2), why);
}

static bool content_before(verify_ctx *v, const mv_journal_rec *r)
{
	int64_t seg = sqlite3_column_int64(v->contents, 1), off = sqlite3_column_int64(v->contents, 2);
	return seg < r->segment || (seg == r->segment && off < r->offset);
}

static void check_content_at(verify_ctx *v, const mv_journal_rec *r)
{
	while (v->have_content && content_before(v, r)) {
		content_lost(v, "no record starts there");
		contents_advance(v);
	}
	if (!v->have_content || sqlite3_column_int64(v->contents, 1) != r->segment ||
	    sqlite3_column_int64(v->contents, 2) != r->offset)
		return;
	int64_t id = sqlite3_column_int64(v->contents, 0);
	bool same_hash = sqlite3_column_bytes(v->contents, 4) == MV_HASH_BYTES;
	uint8_t want[MV_HASH_BYTES];
	if (same_hash && r->ok && mv_journal_meta_hash(r->meta, want))
		same_hash = sodium_memcmp(want, sqlite3_column_blob(v->contents, 4), MV_HASH_BYTES) == 0;
	if (!r->ok || r->type != MV_RECORD_MESSAGE || !mv_journal_body_matches(r) || !same_hash ||
	    sqlite3_column_int64(v->contents, 3) != r->length)
		g_array_append_val(v->damaged_contents, id);
	contents_advance(v);
}

static int verify_record(void *opaque, mv_journal_rec *r, GError **error)
{
	verify_ctx *v = opaque;
	v->records++;
	check_content_at(v, r);
	if (!r->ok) {
		v->damaged_records++;
		json_t *ids = NULL;
		if (r->number > 0)
			ids = json_pack("[o]", message_id_json(v->s->id, r->number));
		if (r->dict_missing)
			mv_journal_problem(&v->rep, "dictionaryMissing", ids, "segment %lld offset %lld: the record is "
			                   "compressed with zstd dictionary %u, which no readable dictionary record before it "
			                   "holds (RecoverStore cannot bring its message back either)", (long long)r->segment,
			                   (long long)r->offset, r->dict_missing);
		else
			mv_journal_problem(&v->rep, "recordDamaged", ids, "segment %lld offset %lld (%lld bytes): %s",
			               (long long)r->segment, (long long)r->offset, (long long)r->length, r->problem);
		numrec *slot = num_slot(v->nums, r->number);
		if (slot)
			slot->state = NUM_DAMAGED;
		return 0;
	}
	numrec *slot = num_slot(v->nums, r->number);
	if ((r->type == MV_RECORD_MESSAGE || r->type == MV_RECORD_REFERENCE) && slot) {
		slot->state = r->type == MV_RECORD_MESSAGE ? NUM_MESSAGE : NUM_REFERENCE;
		if (!mv_journal_meta_hash(r->meta, slot->hash) ||
		    (r->type == MV_RECORD_MESSAGE && !mv_journal_body_matches(r)))
			slot->state = NUM_DAMAGED;
	} else if (r->type == MV_RECORD_TOMBSTONE && slot) {
		slot->tombstone = 1;
	} else if (r->type == MV_RECORD_RESTORE) {
		json_t *n;
		size_t i;
		json_array_foreach(json_object_get(r->meta, "numbers"), i, n) {
			numrec *restored = num_slot(v->nums, json_integer_value(n));
			if (restored)
				restored->tombstone = 0;
		}
	}
	return 0;
}

static json_t *id_list(int store_id, GArray *numbers)
{
	json_t *ids = json_array();
	for (guint i = 0; i < numbers->len; i++)
		json_array_append_new(ids, message_id_json(store_id, g_array_index(numbers, int64_t, i)));
	return ids;
}

static gint cmp_i64(gconstpointer a, gconstpointer b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every db row against what content/ says about its number. */
static int verify_rows(verify_ctx *v, GHashTable *damaged_ids, GError **error)
{
	GHashTable *bad_content = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint i = 0; i < v->damaged_contents->len; i++)
		g_hash_table_add(bad_content, &g_array_index(v->damaged_contents, int64_t, i));
	sqlite3_stmt *st;
	if (mv_sql_prepare(v->s->db, "SELECT m.num, m.deleted, m.content_id, c.hash FROM messages m"
	                      " LEFT JOIN contents c ON c.id = m.content_id ORDER BY m.num", &st, error) < 0) {
		g_hash_table_destroy(bad_content);
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t num = sqlite3_column_int64(st, 0), content = sqlite3_column_int64(st, 2);
		bool deleted = sqlite3_column_int(st, 1) != 0;
		numrec *slot = num_slot(v->nums, num);
		char *id = mv_message_id_format(v->s->id, num);
		if (!slot) {
			mv_journal_problem(&v->rep, "badNumber", json_pack("[s]", id), "message number out of range");
		} else {
			slot->seen = 1;
			if (deleted) {
				if (!slot->tombstone && slot->state != NUM_NONE)
					mv_journal_problem(&v->rep, "tombstoneMissing", json_pack("[s]", id),
					               "deleted in the db but content/ holds no tombstone for it");
			} else if (slot->state == NUM_NONE) {
				mv_journal_problem(&v->rep, "recordMissing", json_pack("[s]", id), "no recovery record in content/");
			} else if (slot->state == NUM_DAMAGED) {
				g_hash_table_add(damaged_ids, g_strdup(id));
			} else if (slot->tombstone) {
				mv_journal_problem(&v->rep, "deletedInContent", json_pack("[s]", id),
				               "content/ holds a tombstone but the db shows it live");
			} else if (sqlite3_column_bytes(st, 3) != MV_HASH_BYTES ||
			           sodium_memcmp(slot->hash, sqlite3_column_blob(st, 3), MV_HASH_BYTES) != 0) {
				mv_journal_problem(&v->rep, "contentMismatch", json_pack("[s]", id),
				               "the db row and the recovery record name different content");
			}
			if (!deleted && g_hash_table_contains(bad_content, &content))
				g_hash_table_add(damaged_ids, g_strdup(id));
		}
		g_free(id);
	}
	sqlite3_finalize(st);
	g_hash_table_destroy(bad_content);
	/* Records that no row claims (and no tombstone explains). */
	GArray *orphans = g_array_new(FALSE, FALSE, sizeof(int64_t));
	for (guint n = 1; n < v->nums->len; n++) {
		const numrec *r = &g_array_index(v->nums, numrec, n);
		if ((r->state == NUM_MESSAGE || r->state == NUM_REFERENCE) && !r->seen && !r->tombstone) {
			int64_t num = n;
			g_array_append_val(orphans, num);
		}
	}
	if (orphans->len)
		mv_journal_problem(&v->rep, "rowMissing", id_list(v->s->id, orphans),
		               "%u recovery records have no db row (RecoverStore brings them back)", orphans->len);
	g_array_free(orphans, TRUE);
	return 0;
}

static int index_rowids(mv_store *s, const char *archive, GArray *out, GError **error)
{
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	int64_t format = 0;
	if (mv_store_index_format(s, &format, error) < 0)
		return -1;
	char *tok = mv_scope_archive_token(archive, format);
	GString *match = g_string_new(NULL);
	mv_index_append_token_term(match, "scope", tok, format);
	char *sql = g_strdup_printf("SELECT rowid FROM %sfts WHERE fts MATCH ? ORDER BY rowid", prefix);
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_sql_prepare(ix, sql, &st, error) < 0)
		goto out;
	sqlite3_bind_text(st, 1, match->str, -1, SQLITE_STATIC);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		g_array_append_val(out, id);
	}
	if (step != SQLITE_DONE)
		mv_sql_set_error(error, ix, "read index");
	else
		rc = 0;
	sqlite3_finalize(st);
out:
	g_free(sql);
	g_string_free(match, TRUE);
	g_free(tok);
	return rc;
}

static int db_docids(mv_store *s, const char *archive, GArray *out, GError **error)
{
	sqlite3_stmt *st;
	int64_t format;
	if (mv_store_index_format(s, &format, error) < 0)
		return -1;
	int64_t bucket = mv_index_date_bucket(format);
	if (mv_sql_prepare(s->db, "SELECT m.num, m.date FROM messages m JOIN folders f ON f.id = m.folder_id"
	                      " WHERE f.archive = ? AND m.deleted = 0", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, archive, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = mv_index_docid_in(bucket, sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 0));
		g_array_append_val(out, id);
	}
	sqlite3_finalize(st);
	g_array_sort(out, cmp_i64);
	return 0;
}

/* Both sorted: what is only in want goes to missing, only in have to extra
 * (as message numbers). */
static void docid_difference(GArray *want, GArray *have, GArray *missing, GArray *extra)
{
	guint i = 0, j = 0;
	while (i < want->len || j < have->len) {
		int64_t a = i < want->len ? g_array_index(want, int64_t, i) : INT64_MAX;
		int64_t b = j < have->len ? g_array_index(have, int64_t, j) : INT64_MAX;
		int64_t num;
		if (a == b) {
			i++, j++;
		} else if (a < b) {
			num = mv_index_docid_number(a);
			g_array_append_val(missing, num);
			i++;
		} else {
			num = mv_index_docid_number(b);
			g_array_append_val(extra, num);
			j++;
		}
	}
}

static int verify_index_archive(verify_ctx *v, const char *archive, GError **error)
{
	GArray *want = g_array_new(FALSE, FALSE, sizeof(int64_t)), *have = g_array_new(FALSE, FALSE, sizeof(int64_t));
	GArray *missing = g_array_new(FALSE, FALSE, sizeof(int64_t)), *extra = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int rc = -1;
	if (db_docids(v->s, archive, want, error) < 0 || index_rowids(v->s, archive, have, error) < 0)
		goto out;
	docid_difference(want, have, missing, extra);
	if (missing->len)
		mv_journal_problem(&v->rep, "notIndexed", id_list(v->s->id, missing), "archive %s: %u messages are not in the index",
		               archive, missing->len);
	if (extra->len)
		mv_journal_problem(&v->rep, "indexedNotLive", id_list(v->s->id, extra),
		               "archive %s: %u index entries name no live message", archive, extra->len);
	rc = 0;
out:
	g_array_free(want, TRUE);
	g_array_free(have, TRUE);
	g_array_free(missing, TRUE);
	g_array_free(extra, TRUE);
	return rc;
}

static int verify_index(verify_ctx *v, GError **error)
{
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(v->s, &prefix);
	char *sql = g_strdup_printf("INSERT INTO %sfts(fts) VALUES('integrity-check')", prefix);
	char *msg = NULL;
	bool damaged = sqlite3_exec(ix, sql, NULL, NULL, &msg) != SQLITE_OK;
	if (damaged)
		mv_journal_problem(&v->rep, "indexDamaged", NULL, "FTS5 integrity check: %s (RebuildStoreIndex rebuilds "
		                   "it from the content)", msg ? msg : "failed");
	sqlite3_free(msg);
	g_free(sql);
	/* An index that fails its own check cannot be read reliably against
	 * the db: its damage is the problem to report, and the rebuild that
	 * mends it also mends whatever a comparison would have found. */
	if (damaged)
		return 0;
	sqlite3_stmt *st;
	if (mv_sql_prepare(v->s->db, "SELECT DISTINCT archive FROM folders ORDER BY archive", &st, error) < 0)
		return -1;
	GPtrArray *archives = g_ptr_array_new_with_free_func(g_free);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_ptr_array_add(archives, g_strdup((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	int rc = 0;
	for (guint i = 0; i < archives->len && rc == 0; i++) {
		if (v->task && mv_store_task_cancelled(v->task))
			rc = mv_store_cancelled_error(error, "VerifyStore");
		else
			rc = verify_index_archive(v, archives->pdata[i], error);
	}
	g_ptr_array_free(archives, TRUE);
	return rc;
}

static json_t *damaged_list(GHashTable *ids)
{
	GList *keys = g_list_sort(g_hash_table_get_keys(ids), (GCompareFunc)g_strcmp0);
	json_t *list = json_array();
	for (GList *l = keys; l; l = l->next)
		json_array_append_new(list, json_string(l->data));
	g_list_free(keys);
	return list;
}

static void verify_ctx_clear(verify_ctx *v)
{
	sqlite3_finalize(v->contents);
	json_decref(v->rep.problems);
	g_array_free(v->nums, TRUE);
	g_array_free(v->damaged_contents, TRUE);
}

/* Every dictionary the db names must be one content/ holds: the db's copy
 * is what reads use, content/'s what recovery would. */
static int check_dictionaries(verify_ctx *v, GHashTable *met, GError **error)
{
	if (v->s->format_version < 4)
		return 0;
	sqlite3_stmt *st;
	if (mv_sql_prepare(v->s->db, "SELECT id FROM dictionaries ORDER BY seq", &st, error) < 0)
		return -1;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		unsigned id = (unsigned)sqlite3_column_int64(st, 0);
		if (!g_hash_table_contains(met, GUINT_TO_POINTER(id)))
			mv_journal_problem(&v->rep, "dictionaryMissing", NULL, "zstd dictionary %u is in the db, but no readable"
			                   " dictionary record of content/ holds it: a recovery would lose the messages"
			                   " compressed with it", id);
	}
	int rc = step == SQLITE_DONE ? 0 : -1;
	if (rc < 0)
		mv_sql_set_error(error, v->s->db, "list the zstd dictionaries");
	sqlite3_finalize(st);
	return rc;
}

/* The census both operations start from: every record of the segments the
 * db names, held against the contents rows in place order (v->nums,
 * v->damaged_contents). */
static int census(verify_ctx *v, const char *past_end, GError **error)
{
	GArray *segs = mv_journal_segments_from_db(v->s->db, error);
	GHashTable *dicts = mv_dict_table_new();
	int rc = -1;
	if (!segs || mv_sql_prepare(v->s->db, "SELECT id, segment, offset, length, hash FROM contents ORDER BY segment, offset",
	                            &v->contents, error) < 0)
		goto out;
	contents_advance(v);
	if (mv_journal_scan_dicts(v->s, segs, dicts, v->task, verify_record, v, error) < 0)
		goto out;
	for (; v->have_content; contents_advance(v))
		content_lost(v, past_end);
	rc = check_dictionaries(v, dicts, error);
out:
	g_hash_table_destroy(dicts);
	if (segs)
		g_array_free(segs, TRUE);
	return rc;
}

int mv_store_verify(mv_store *s, bool include_index, const mv_task *task, json_t **report_r, GError **error)
{
	/* The lock keeps writers out so that content, db and index are compared
	 * at one instant; verification itself writes nothing. */
	bool locked = s->mode == MV_STORE_WRITE;
	if (locked && mv_store_write_lock(s, error) < 0)
		return -1;
	verify_ctx v = { .s = s, .task = task, .rep.problems = json_array(), .nums = g_array_new(FALSE, TRUE, sizeof(numrec)),
	                 .damaged_contents = g_array_new(FALSE, FALSE, sizeof(int64_t)) };
	GHashTable *damaged_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	int rc = -1;
	mv_store_task_progress(task, 0, "store %d: checking every record", s->id);
	if (census(&v, "past the end of its segment's committed data", error) < 0)
		goto out;
	mv_store_task_progress(task, 99, "store %d: checking the db against content", s->id);
	if (verify_rows(&v, damaged_ids, error) < 0)
		goto out;
	if (include_index) {
		mv_store_task_progress(task, 99, "store %d: checking the index against the db", s->id);
		if (verify_index(&v, error) < 0)
			goto out;
	}
	int64_t messages = 0;
	if (mv_store_int_query(s->db, "SELECT count(*) FROM messages WHERE deleted=0", "count messages", &messages, error) < 0)
		goto out;
	*report_r = json_pack("{s:i, s:b, s:I, s:I, s:I, s:I, s:b, s:o, s:I, s:O}", "storeId", s->id,
	                      "clean", v.rep.count == 0 && g_hash_table_size(damaged_ids) == 0,
	                      "recordsScanned", (json_int_t)v.records, "damagedRecords", (json_int_t)v.damaged_records,
	                      "messagesChecked", (json_int_t)messages,
	                      "contentsDamaged", (json_int_t)v.damaged_contents->len, "indexChecked", include_index,
	                      "damagedMessageIds", damaged_list(damaged_ids), "problemCount", (json_int_t)v.rep.count,
	                      "problems", v.rep.problems);
	rc = 0;
out:
	verify_ctx_clear(&v);
	g_hash_table_destroy(damaged_ids);
	return locked ? mv_store_finish_locked(s, rc, error) : rc;
}

/* ---- RecreateRecoveryRecords ---------------------------------------------------------------------- */

typedef struct recreate_ctx {
	verify_ctx v;
} recreate_ctx;

/* A reference record's metadata for a live message, from its row and its
 * envelope (NULLs: none). */
static char *reference_meta(sqlite3_stmt *st, const char *envelope_from, const char *envelope_to)
{
	char *hash = mv_hex(sqlite3_column_blob(st, 6), MV_HASH_BYTES);
	json_t *meta = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i}", "v", 1, "hash", hash,
	                         "archive", (const char *)sqlite3_column_text(st, 0),
	                         "folder", (const char *)sqlite3_column_text(st, 1),
	                         "archived_at", (json_int_t)sqlite3_column_int64(st, 2), "source", "recreated",
	                         "origin", "", "mail_flags", (const char *)sqlite3_column_text(st, 3),
	                         "date", (json_int_t)sqlite3_column_int64(st, 4), "date_source", sqlite3_column_int(st, 5));
	json_t *envelope = mv_store_envelope_meta(envelope_from, envelope_to);
	if (envelope)
		json_object_set_new(meta, "envelope", envelope);
	char *text = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	g_free(hash);
	return text;
}

typedef struct append_txn {
	mv_store *s;
	const GByteArray *records;
} append_txn;

static int append_in_txn(void *opaque, GError **error)
{
	append_txn *t = opaque;
	return mv_store_append_records(t->s, t->records, error);
}

/* A batch marker naming num, then a reference record: content/ says again
 * which folder num is in and which content it shows. */
static int append_reference_for(mv_store *s, int64_t num, int64_t *written, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->db, "SELECT f.archive, f.path, m.archived_at, m.mail_flags, m.date, m.date_source, c.hash"
	                      " FROM messages m JOIN folders f ON f.id = m.folder_id JOIN contents c ON c.id = m.content_id"
	                      " WHERE m.num = ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, num);
	char *text = NULL, *marker = NULL, *envelope_from = NULL, *envelope_to = NULL;
	GByteArray *out = g_byte_array_new();
	int rc = 0;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	rc = -1;
	if (mv_store_envelope_get(s, num, &envelope_from, &envelope_to, error) < 0)
		goto out;
	text = reference_meta(st, envelope_from, envelope_to);
	marker = g_strdup_printf("{\"v\":1,\"first\":%lld}", (long long)num);
	append_txn t = { s, out };
	rc = -1;
	if (mv_record_encode(s->key, MV_RECORD_BATCH, (const uint8_t *)marker, strlen(marker), NULL, 0, 1, out, error) < 0 ||
	    mv_record_encode(s->key, MV_RECORD_REFERENCE, (const uint8_t *)text, strlen(text), NULL, 0, 1, out, error) < 0 ||
	    mv_sql_in_transaction(s->db, append_in_txn, &t, error) < 0)
		goto out;
	(*written)++;
	rc = 0;
out:
	sqlite3_finalize(st);
	g_byte_array_unref(out);
	free(text);
	g_free(marker);
	g_free(envelope_from);
	g_free(envelope_to);
	return rc;
}

int mv_store_recreate_records(mv_store *s, const mv_task *task, json_t **report_r, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	verify_ctx v = { .s = s, .task = task, .rep.problems = json_array(), .nums = g_array_new(FALSE, TRUE, sizeof(numrec)),
	                 .damaged_contents = g_array_new(FALSE, FALSE, sizeof(int64_t)) };
	GHashTable *bad = g_hash_table_new(g_int64_hash, g_int64_equal);
	GArray *lost = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int64_t written = 0;
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (census(&v, "past the committed end", error) < 0)
		goto out;
	for (guint i = 0; i < v.damaged_contents->len; i++)
		g_hash_table_add(bad, &g_array_index(v.damaged_contents, int64_t, i));
	if (mv_sql_prepare(s->db, "SELECT num, content_id FROM messages WHERE deleted = 0 ORDER BY num", &st, error) < 0)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t num = sqlite3_column_int64(st, 0), content = sqlite3_column_int64(st, 1);
		numrec *slot = num_slot(v.nums, num);
		bool own_ok = slot && (slot->state == NUM_MESSAGE || slot->state == NUM_REFERENCE);
		if (g_hash_table_contains(bad, &content))
			g_array_append_val(lost, num);
		else if (!own_ok && append_reference_for(s, num, &written, error) < 0)
			goto out;
	}
	rc = 0;
	*report_r = json_pack("{s:i, s:I, s:o}", "storeId", s->id, "recordsRecreated", (json_int_t)written,
	                      "unrecoverableMessageIds", id_list(s->id, lost));
out:
	sqlite3_finalize(st);
	g_array_free(lost, TRUE);
	g_hash_table_destroy(bad);
	verify_ctx_clear(&v);
	return mv_store_finish_locked(s, rc, error);
}
