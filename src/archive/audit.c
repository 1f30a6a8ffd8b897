/* archive/audit: the audit log — who did what, from where, and whether it
 * worked — kept so that a change to it shows.
 *
 * Entries live in master.sqlite (audit_log), numbered 1, 2, 3, ... by seq.
 * Each carries hash = BLAKE2b-256, keyed with the instance's audit key, over
 * the previous entry's hash (32 zero bytes for entry 1) and this entry's
 * fields in a canonical encoding (fixed-width numbers, length-prefixed
 * texts, so no two different entries encode alike).  Changing an entry, or
 * removing or inserting one, breaks the chain from that entry on, and
 * without the key nobody can compute a hash that follows.  What a chain
 * cannot show is entries cut off at its end: a copy kept elsewhere can.
 *
 * The key is random per instance and kept in master.sqlite wrapped by the
 * master key (instance.c), and renewed with it like the recovery KEK.
 *
 * Appending reads the last hash and inserts under BEGIN IMMEDIATE, so any
 * number of threads and processes (each with its own connection) append to
 * one unbroken chain; master.sqlite is synchronous=FULL in WAL mode, so an
 * entry is durable when mv_audit_append returns. */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

#define AUDIT_HASH_BYTES 32
#define MAX_DETAILS_BYTES (64 * 1024)
#define MAX_FIELD_BYTES 1024          /* user, remote, event */
#define ELLIPSIS "\xe2\x80\xa6"       /* … */
#define ENCODING_TAG "mailvault-audit-1"

void mv_audit_entry_free(mv_audit_entry *e)
{
	if (!e)
		return;
	g_free(e->user);
	g_free(e->remote);
	g_free(e->event);
	g_free(e->details);
	g_free(e->hash);
	g_free(e);
}

/* Valid UTF-8 without control characters, at most max bytes (cut at a
 * character boundary, marked with an ellipsis). */
static char *clean_text(const char *s, size_t max)
{
	char *clean = mv_utf8_sanitize(s ? s : "", -1);
	size_t len = strlen(clean);
	if (len <= max)
		return clean;
	size_t cut = max - strlen(ELLIPSIS);
	while (cut > 0 && ((unsigned char)clean[cut] & 0xC0) == 0x80)
		cut--;
	clean[cut] = '\0';
	char *out = g_strconcat(clean, ELLIPSIS, NULL);
	g_free(clean);
	return out;
}

/* ---- the chain ------------------------------------------------------------------------ */

static int hash_u64(crypto_generichash_state *h, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	return crypto_generichash_update(h, b, sizeof b);
}

static int hash_text(crypto_generichash_state *h, const char *s)
{
	size_t len = strlen(s);
	if (hash_u64(h, len) != 0)
		return -1;
	return crypto_generichash_update(h, (const unsigned char *)s, len);
}

static int entry_hash(const uint8_t key[MV_KEY_BYTES], const uint8_t prev[AUDIT_HASH_BYTES],
                      const mv_audit_entry *e, uint8_t out[AUDIT_HASH_BYTES], GError **error)
{
	crypto_generichash_state h;
	uint8_t success = e->success ? 1 : 0;
	if (crypto_generichash_init(&h, key, MV_KEY_BYTES, AUDIT_HASH_BYTES) != 0 ||
	    hash_text(&h, ENCODING_TAG) != 0 || crypto_generichash_update(&h, prev, AUDIT_HASH_BYTES) != 0 ||
	    hash_u64(&h, (uint64_t)e->seq) != 0 || hash_u64(&h, (uint64_t)e->time_ms) != 0 ||
	    hash_text(&h, e->user) != 0 || hash_text(&h, e->remote) != 0 || hash_text(&h, e->event) != 0 ||
	    crypto_generichash_update(&h, &success, 1) != 0 || hash_text(&h, e->details) != 0 ||
	    crypto_generichash_final(&h, out, AUDIT_HASH_BYTES) != 0) {
		sodium_memzero(&h, sizeof h);
		g_set_error(error, MV_ERROR, MV_ERR_IO, "audit log: BLAKE2b failed");
		return -1;
	}
	return 0;
}

/* A stored hash as bytes; false when it is not 64 hex digits. */
static bool stored_hash(const char *hex, uint8_t out[AUDIT_HASH_BYTES])
{
	return hex && strlen(hex) == 2 * AUDIT_HASH_BYTES && mv_unhex(hex, out, AUDIT_HASH_BYTES);
}

/* ---- appending ------------------------------------------------------------------------ */

typedef struct append_ctx {
	mv_audit_entry *e;
	const uint8_t *key;
} append_ctx;

static int last_entry(mv_instance *inst, int64_t *seq_r, uint8_t prev_r[AUDIT_HASH_BYTES], GError **error)
{
	sqlite3_stmt *st;
	*seq_r = 0;
	memset(prev_r, 0, AUDIT_HASH_BYTES);
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &st, error) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq_r = sqlite3_column_int64(st, 0);
		/* A damaged last hash must not stop the log: the chain goes on
		 * from zeros and VerifyAuditLog names the damaged entry. */
		if (!stored_hash((const char *)sqlite3_column_text(st, 1), prev_r)) {
			memset(prev_r, 0, AUDIT_HASH_BYTES);
			mv_log_warn("audit log: entry %" G_GINT64_FORMAT " has a damaged hash", *seq_r);
		}
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "read the last audit entry");
	return -1;
}

static int append_txn(mv_instance *inst, void *opaque, GError **error)
{
	append_ctx *c = opaque;
	mv_audit_entry *e = c->e;
	uint8_t prev[AUDIT_HASH_BYTES], hash[AUDIT_HASH_BYTES];
	int64_t last;
	if (last_entry(inst, &last, prev, error) < 0)
		return -1;
	e->seq = last + 1;
	e->time_ms = g_get_real_time() / 1000;
	if (entry_hash(c->key, prev, e, hash, error) < 0)
		return -1;
	e->hash = mv_hex(hash, sizeof hash);
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT INTO audit_log(seq, time_ms, user, remote, event, success,"
	                   " details, hash) VALUES(?,?,?,?,?,?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, e->seq);
	sqlite3_bind_int64(st, 2, e->time_ms);
	sqlite3_bind_text(st, 3, e->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->remote, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, e->event, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, e->success ? 1 : 0);
	sqlite3_bind_text(st, 7, e->details, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "append to the audit log");
	return -1;
}

int mv_audit_append(mv_instance *inst, const char *user, const char *remote, const char *event, bool success,
                    const char *details, GError **error)
{
	/* A call made without an instance (tests of the registry) has no log
	 * to go to, and touched nothing one would record. */
	if (!inst)
		return 0;
	uint8_t key[MV_KEY_BYTES];
	if (mv_archive_audit_key(inst, key, error) < 0)
		return -1;
	mv_audit_entry *e = g_new0(mv_audit_entry, 1);
	e->user = clean_text(user, MAX_FIELD_BYTES);
	e->remote = clean_text(remote, MAX_FIELD_BYTES);
	e->event = clean_text(event, MAX_FIELD_BYTES);
	e->success = success;
	e->details = clean_text(details, MAX_DETAILS_BYTES);
	append_ctx c = { e, key };
	int rc = mv_archive_in_transaction(inst, append_txn, &c, error);
	sodium_memzero(key, sizeof key);
	mv_audit_entry_free(e);
	return rc;
}

/* ---- reading and verifying -------------------------------------------------------------- */

#define ENTRY_COLUMNS "seq, time_ms, user, remote, event, success, details, hash"

/* A listing takes entries from the database in batches of at most this many
 * entries, or about this many bytes, and lets go of its read transaction
 * before handing a batch on.  So memory stays bounded whatever the log's
 * size, and a slow consumer (a pager, a blocked pipe) never holds a snapshot
 * that keeps the server's WAL from being checkpointed. */
#define BATCH_ENTRIES 256
#define BATCH_BYTES (256 * 1024)


static mv_audit_entry *entry_from(sqlite3_stmt *st)
{
	mv_audit_entry *e = g_new0(mv_audit_entry, 1);
	e->seq = sqlite3_column_int64(st, 0);
	e->time_ms = sqlite3_column_int64(st, 1);
	e->user = mv_sql_column_text(st, 2);
	e->remote = mv_sql_column_text(st, 3);
	e->event = mv_sql_column_text(st, 4);
	e->success = sqlite3_column_int(st, 5) != 0;
	e->details = mv_sql_column_text(st, 6);
	e->hash = mv_sql_column_text(st, 7);
	return e;
}

static mv_audit_entry *entry_dup(const mv_audit_entry *e)
{
	mv_audit_entry *d = g_new0(mv_audit_entry, 1);
	d->seq = e->seq;
	d->time_ms = e->time_ms;
	d->user = g_strdup(e->user);
	d->remote = g_strdup(e->remote);
	d->event = g_strdup(e->event);
	d->success = e->success;
	d->details = g_strdup(e->details);
	d->hash = g_strdup(e->hash);
	return d;
}

static size_t entry_bytes(const mv_audit_entry *e)
{
	return sizeof *e + strlen(e->user) + strlen(e->remote) + strlen(e->event) + strlen(e->details) +
	       strlen(e->hash) + 5;
}

/* Where a listing stands: entries after seq `after` up to `end` (the last
 * entry when the listing began, so that one appended meanwhile by a running
 * server does not keep it going), with time_ms >= since_ms, `left` more
 * wanted. */
typedef struct audit_cursor {
	int64_t after, end, since_ms, left;
	bool done;
} audit_cursor;

static int last_seq(mv_instance *inst, int64_t *seq_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT coalesce(max(seq), 0) FROM audit_log", &st, error) < 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq_r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "read the audit log");
	return -1;
}

/* The next batch of the listing into `batch`, advancing the cursor; the
 * statement is reset afterwards, which ends its read transaction. */
static int fetch_batch(mv_instance *inst, sqlite3_stmt *st, audit_cursor *c, GPtrArray *batch, GError **error)
{
	size_t bytes = 0;
	int rc = SQLITE_ROW;
	if (sqlite3_bind_int64(st, 1, c->after) != SQLITE_OK || sqlite3_bind_int64(st, 2, c->end) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, c->since_ms) != SQLITE_OK)
		rc = SQLITE_ERROR;
	while (rc == SQLITE_ROW && c->left > 0 && batch->len < BATCH_ENTRIES && bytes < BATCH_BYTES &&
	       (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_audit_entry *e = entry_from(st);
		g_ptr_array_add(batch, e);
		bytes += entry_bytes(e);
		c->after = e->seq;
		c->left--;
	}
	c->done = rc == SQLITE_DONE || c->left == 0;
	/* after SQLITE_ROW or SQLITE_DONE, reset reports no error of its own */
	if (sqlite3_reset(st) == SQLITE_OK && (rc == SQLITE_ROW || rc == SQLITE_DONE))
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "read the audit log");
	return -1;
}

/* Hands each entry of the batch to fn; 1 when fn asked to stop. */
static int deliver(GPtrArray *batch, mv_audit_fn fn, void *opaque)
{
	for (guint i = 0; i < batch->len; i++)
		if (fn(batch->pdata[i], opaque) != 0)
			return 1;
	return 0;
}

struct mv_audit_listing {
	mv_instance *inst;
	sqlite3_stmt *st;
	audit_cursor cursor;
};

mv_audit_listing *mv_audit_listing_open(mv_instance *inst, int64_t since_ms, int64_t limit, GError **error)
{
	mv_audit_listing *l = g_new0(mv_audit_listing, 1);
	l->inst = inst;
	l->cursor = (audit_cursor){ .since_ms = since_ms, .left = limit > 0 ? limit : INT64_MAX };
	if (last_seq(inst, &l->cursor.end, error) < 0 ||
	    mv_sql_prepare(mv_archive_db(inst), "SELECT " ENTRY_COLUMNS " FROM audit_log WHERE seq > ? AND seq <= ?"
	                   " AND time_ms >= ? ORDER BY seq", &l->st, error) < 0)
		mv_audit_listing_free(&l);
	return l;
}

int mv_audit_listing_next(mv_audit_listing *l, GPtrArray *batch, GError **error)
{
	g_ptr_array_set_size(batch, 0);
	if (l->cursor.done)
		return 0;
	return fetch_batch(l->inst, l->st, &l->cursor, batch, error);
}

void mv_audit_listing_free(mv_audit_listing **lp)
{
	if (!*lp)
		return;
	sqlite3_finalize((*lp)->st);
	g_clear_pointer(lp, g_free);
}

int mv_audit_count(mv_instance *inst, int64_t since_ms, int64_t at_most, int64_t *count_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT count(*) FROM (SELECT 1 FROM audit_log WHERE time_ms >= ?"
	                   " LIMIT ?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, since_ms);
	sqlite3_bind_int64(st, 2, at_most);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*count_r = sqlite3_column_int64(st, 0);
	else
		mv_sql_set_error(error, mv_archive_db(inst), "count the audit log's entries");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int mv_audit_each(mv_instance *inst, int64_t since_ms, int64_t limit, mv_audit_fn fn, void *opaque,
                  GError **error)
{
	mv_audit_listing *l = mv_audit_listing_open(inst, since_ms, limit, error);
	if (!l)
		return -1;
	GPtrArray *batch = g_ptr_array_new_with_free_func((GDestroyNotify)mv_audit_entry_free);
	int rc;
	while ((rc = mv_audit_listing_next(l, batch, error)) == 0 && batch->len > 0)
		if (deliver(batch, fn, opaque)) {
			rc = 1;
			break;
		}
	g_ptr_array_free(batch, TRUE);
	mv_audit_listing_free(&l);
	return rc;
}

static int collect_entry(const mv_audit_entry *e, void *opaque)
{
	g_ptr_array_add(opaque, entry_dup(e));
	return 0;
}

GPtrArray *mv_audit_read(mv_instance *inst, int64_t since_ms, int64_t limit, GError **error)
{
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_audit_entry_free);
	if (mv_audit_each(inst, since_ms, limit, collect_entry, list, error) == 0)
		return list;
	g_ptr_array_free(list, TRUE);
	return NULL;
}

/* Why entry e does not follow prev (NULL when it does); *prev becomes its
 * hash. */
static char *check_entry(const uint8_t key[MV_KEY_BYTES], int64_t expected_seq, const mv_audit_entry *e,
                         uint8_t prev[AUDIT_HASH_BYTES], GError **error, bool *failed_r)
{
	uint8_t want[AUDIT_HASH_BYTES], have[AUDIT_HASH_BYTES];
	*failed_r = false;
	if (e->seq != expected_seq)
		return e->seq > expected_seq
		       ? g_strdup_printf("entries %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " are missing (removed)",
		                         expected_seq, e->seq - 1)
		       : g_strdup_printf("entry number %" G_GINT64_FORMAT " out of sequence", e->seq);
	if (entry_hash(key, prev, e, want, error) < 0) {
		*failed_r = true;
		return NULL;
	}
	if (!stored_hash(e->hash, have))
		return g_strdup("the stored hash is damaged (not 64 hex digits)");
	if (sodium_memcmp(want, have, AUDIT_HASH_BYTES) != 0)
		return g_strdup("hash does not match: entry changed, or an entry before it removed");
	memcpy(prev, have, AUDIT_HASH_BYTES);
	return NULL;
}

/* An anchor "SEQ:HASH": an entry number and its 64-hex-digit hash. */
typedef struct {
	int64_t seq;          /* 0: no anchor */
	uint8_t hash[AUDIT_HASH_BYTES];
} anchor_point;

static int parse_anchor(const char *text, anchor_point *a, GError **error)
{
	*a = (anchor_point){ 0 };
	if (!text || !*text)
		return 0;
	const char *colon = strchr(text, ':');
	char *end = NULL;
	gint64 seq = colon ? g_ascii_strtoll(text, &end, 10) : 0;
	if (!colon || end != colon || seq < 1 || !stored_hash(colon + 1, a->hash)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "anchor '%.100s': expected ENTRY:HASH (an entry number, a "
		            "colon and 64 hex digits), as an earlier verification reported the log's head", text);
		return -1;
	}
	a->seq = seq;
	return 0;
}

static void note_broken(mv_audit_report *r, int64_t seq, char *reason)
{
	r->first_broken = seq;
	r->reason = reason;
}

static int walk_chain(mv_instance *inst, const uint8_t key[MV_KEY_BYTES], const anchor_point *anchor,
                      mv_audit_report *r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " ENTRY_COLUMNS " FROM audit_log ORDER BY seq", &st, error) < 0)
		return -1;
	uint8_t prev[AUDIT_HASH_BYTES] = { 0 };
	int rc = SQLITE_DONE;
	bool failed = false;
	while (!r->reason && !failed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_audit_entry *e = entry_from(st);
		r->entries++;
		char *why = check_entry(key, r->entries, e, prev, error, &failed);
		if (!why && e->seq == anchor->seq && sodium_memcmp(prev, anchor->hash, AUDIT_HASH_BYTES) != 0)
			why = g_strdup("its hash differs from the anchor's: the log was rewritten from here on");
		/* Where the break is: the entry's own number, or its position
		 * when the number was lowered (0 or negative would read as
		 * "no break"). */
		if (why)
			note_broken(r, MAX(e->seq, r->entries), why);
		r->last_seq = e->seq;
		g_free(r->last_hash);
		r->last_hash = g_strdup(e->hash);
		mv_audit_entry_free(e);
	}
	bool stopped = r->reason || failed;
	sqlite3_finalize(st);
	if (failed)
		return -1;
	if (!stopped && rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "read the audit log");
		return -1;
	}
	if (!r->reason && anchor->seq > r->last_seq)
		note_broken(r, r->last_seq + 1, g_strdup_printf("entries %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
		                                                " are missing: the anchor names entry %" G_GINT64_FORMAT
		                                                ", the log ends at %" G_GINT64_FORMAT,
		                                                r->last_seq + 1, anchor->seq, anchor->seq, r->last_seq));
	return 0;
}

void mv_audit_report_clear(mv_audit_report *r)
{
	g_free(r->reason);
	g_free(r->last_hash);
	*r = (mv_audit_report){ 0 };
}

json_t *mv_audit_report_json(const mv_audit_report *r)
{
	return json_pack("{s:I, s:b, s:o, s:o, s:I, s:o}", "entries", (json_int_t)r->entries, "intact",
	                 r->reason == NULL, "firstBrokenEntry",
	                 r->first_broken ? json_integer(r->first_broken) : json_null(), "reason",
	                 r->reason ? json_string(r->reason) : json_null(), "lastEntry", (json_int_t)r->last_seq,
	                 "lastHash", r->last_hash ? json_string(r->last_hash) : json_null());
}

int mv_audit_verify(mv_instance *inst, const char *anchor_text, mv_audit_report *r, GError **error)
{
	*r = (mv_audit_report){ 0 };
	anchor_point anchor;
	if (parse_anchor(anchor_text, &anchor, error) < 0)
		return -1;
	uint8_t key[MV_KEY_BYTES];
	if (mv_archive_audit_key(inst, key, error) < 0)
		return -1;
	/* One read transaction: a consistent snapshot while others append. */
	sqlite3 *db = mv_archive_db(inst);
	int rc = -1;
	if (mv_sql_exec(db, "BEGIN", error) < 0)
		goto out;
	rc = walk_chain(inst, key, &anchor, r, error);
	/* ends the read transaction; when the walk failed, its error is the one to report */
	if (mv_sql_exec(db, "COMMIT", rc == 0 ? error : NULL) < 0)
		rc = -1;
out:
	sodium_memzero(key, sizeof key);
	if (rc < 0)
		mv_audit_report_clear(r);
	return rc;
}

/* ---- what to log ------------------------------------------------------------------------ */

bool mv_audit_wanted(mv_instance *inst, const char *event, bool admin_action)
{
	if (admin_action)
		return true;
	if (!inst)
		return false;
	mv_compliance c = { 0 };
	GError *err = NULL;
	if (mv_compliance_get(inst, &c, &err) < 0) {
		/* Better an entry too many than a lost one. */
		mv_log_warn("audit log: %s", err->message);
		g_error_free(err);
		return true;
	}
	bool wanted = false;
	for (guint i = 0; i < c.log_successful_user_activities->len && !wanted; i++)
		wanted = g_ascii_strcasecmp(c.log_successful_user_activities->pdata[i], event) == 0;
	mv_compliance_clear(&c);
	return wanted;
}

/* ---- times ---------------------------------------------------------------------------------- */

static bool all_digits(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (!g_ascii_isdigit(*s))
			return false;
	return true;
}

static int parse_iso8601(const char *text, int64_t *ms_r)
{
	/* a date alone is its midnight, UTC */
	char *full = strlen(text) == 10 ? g_strconcat(text, "T00:00:00Z", NULL) : g_strdup(text);
	GTimeZone *utc = g_time_zone_new_utc();
	GDateTime *dt = g_date_time_new_from_iso8601(full, utc);
	g_time_zone_unref(utc);
	g_free(full);
	if (!dt)
		return -1;
	*ms_r = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
	g_date_time_unref(dt);
	return 0;
}

int mv_audit_parse_time(const char *arg_name, const char *text, int64_t *ms_r, GError **error)
{
	char *t = g_strstrip(g_strdup(text ? text : ""));
	int rc = -1;
	if (all_digits(t) && strlen(t) <= 15) {
		*ms_r = g_ascii_strtoll(t, NULL, 10) * 1000;
		rc = 0;
	} else if (*t && strlen(t) <= 64) {
		rc = parse_iso8601(t, ms_r);
	}
	if (rc < 0)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%.64s' is not a point in time (ISO 8601 such as "
		            "2024-05-01 or 2024-05-01T12:00:00Z, or Unix seconds)", arg_name, t);
	g_free(t);
	return rc;
}

char *mv_audit_format_time(int64_t time_ms)
{
	int64_t secs = time_ms >= 0 ? time_ms / 1000 : -((-time_ms + 999) / 1000);
	int ms = (int)(time_ms - secs * 1000);
	GDateTime *dt = g_date_time_new_from_unix_utc(secs);
	if (!dt)
		return g_strdup("invalid-time");
	char *base = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
	g_date_time_unref(dt);
	char *s = g_strdup_printf("%s.%03dZ", base, ms);
	g_free(base);
	return s;
}

json_t *mv_audit_entry_json(const mv_audit_entry *e)
{
	char *time = mv_audit_format_time(e->time_ms);
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:s, s:s}", "seq", (json_int_t)e->seq, "time", time,
	                      "user", e->user, "remote", e->remote, "event", e->event, "success", e->success,
	                      "details", e->details, "hash", e->hash);
	g_free(time);
	return o;
}
