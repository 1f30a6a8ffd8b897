/* archive/mailbox_uids: the stable UIDs of the IMAP server's mailboxes.
 *
 * A mailbox shows one folder (or a few) across every store that holds it,
 * and IMAP wants UIDs that never change and that grow for new mail.  A
 * message's number is stable in its store (recovery and compaction keep
 * it), so UID = (the store's rank in the mailbox << 25) | its number, and
 * this file keeps what cannot be computed: each mailbox's UIDVALIDITY and
 * the order in which stores joined it (their rank).  New mail normally
 * goes into the current store, the last to join; a store joining later
 * takes the next rank, so its UIDs are above all earlier ones.  Mail that
 * lands in an earlier-ranked store (an old store made current again) would
 * get UIDs below ones a client has seen: that store's highest number is
 * recorded when a later store joins, and a higher one there starts a new
 * UIDVALIDITY (clients then resynchronise once).  Writes happen only when a
 * store joins or that happens: selecting a mailbox is otherwise read-only. */
#include "archive/internal.h"
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA                                                                                                    \
	"CREATE TABLE IF NOT EXISTS imap_mailboxes(key TEXT PRIMARY KEY, uidvalidity INTEGER NOT NULL,"           \
	" layout TEXT NOT NULL)"

/* layout: [[store_id, highest number when a later store joined (0 while last)], ...] in rank order. */
typedef struct layout {
	uint32_t uidvalidity;
	GArray *stores;       /* mv_mailbox_store, rank order */
} layout;

static void layout_clear(layout *l)
{
	if (l->stores)
		g_array_free(l->stores, TRUE);
	memset(l, 0, sizeof *l);
}

static bool layout_from_json(const char *text, layout *l)
{
	json_t *j = json_loads(text, 0, NULL);
	if (!json_is_array(j) || json_array_size(j) > MV_MAILBOX_MAX_STORES) {
		json_decref(j);
		return false;
	}
	size_t i;
	json_t *e;
	json_array_foreach(j, i, e) {
		mv_mailbox_store s = { (int)json_integer_value(json_array_get(e, 0)),
		                       json_integer_value(json_array_get(e, 1)) };
		g_array_append_val(l->stores, s);
	}
	json_decref(j);
	return true;
}

static char *layout_to_json(const layout *l)
{
	json_t *j = json_array();
	for (guint i = 0; i < l->stores->len; i++) {
		const mv_mailbox_store *s = &g_array_index(l->stores, mv_mailbox_store, i);
		json_array_append_new(j, json_pack("[i, I]", s->store_id, (json_int_t)s->max_number));
	}
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

/* 0 = a row read, 1 = none (or no table yet), -1 = error. */
static int read_layout(mv_instance *inst, const char *key, layout *l, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT uidvalidity, layout FROM imap_mailboxes WHERE key=?", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		/* A master db the IMAP server has not used yet has no table. */
		if (strstr(sqlite3_errmsg(db), "no such table"))
			return 1;
		mv_sql_set_error(error, db, "reading an IMAP mailbox's UID layout");
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	int out = 1;
	if (rc == SQLITE_ROW) {
		l->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		const char *text = (const char *)sqlite3_column_text(st, 1);
		out = text && layout_from_json(text, l) && l->uidvalidity ? 0 : 1;
		if (out)
			g_array_set_size(l->stores, 0);
	} else if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "reading an IMAP mailbox's UID layout");
		out = -1;
	}
	sqlite3_finalize(st);
	return out;
}

static int rank_of(const layout *l, int store_id)
{
	for (guint i = 0; i < l->stores->len; i++)
		if (g_array_index(l->stores, mv_mailbox_store, i).store_id == store_id)
			return (int)i;
	return -1;
}

static const mv_mailbox_store *find_now(const mv_mailbox_store *now, size_t n, int store_id)
{
	for (size_t i = 0; i < n; i++)
		if (now[i].store_id == store_id)
			return &now[i];
	return NULL;
}

/* Does the recorded layout still give every message of now a UID above
 * what a client may have seen?  Adds stores that joined (as later ranks). */
static bool layout_still_valid(layout *l, const mv_mailbox_store *now, size_t n, bool *changed)
{
	for (guint r = 0; r + 1 < l->stores->len; r++) {
		const mv_mailbox_store *rec = &g_array_index(l->stores, mv_mailbox_store, r);
		const mv_mailbox_store *cur = find_now(now, n, rec->store_id);
		if (cur && cur->max_number > rec->max_number)
			return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (rank_of(l, now[i].store_id) >= 0)
			continue;
		if (l->stores->len >= MV_MAILBOX_MAX_STORES)
			return false;
		if (l->stores->len) {
			mv_mailbox_store *last = &g_array_index(l->stores, mv_mailbox_store, l->stores->len - 1);
			const mv_mailbox_store *cur = find_now(now, n, last->store_id);
			last->max_number = cur ? cur->max_number : last->max_number;
		}
		mv_mailbox_store joined = { now[i].store_id, 0 };
		g_array_append_val(l->stores, joined);
		*changed = true;
	}
	return true;
}

static int store_id_order(const void *a, const void *b)
{
	const mv_mailbox_store *x = a, *y = b;
	return (x->store_id > y->store_id) - (x->store_id < y->store_id);
}

/* A fresh layout: stores by id, every one but the last with its highest number. */
static void layout_fresh(layout *l, const mv_mailbox_store *now, size_t n, uint32_t old_validity)
{
	g_array_set_size(l->stores, 0);
	g_array_append_vals(l->stores, now, (guint)MIN(n, MV_MAILBOX_MAX_STORES));
	g_array_sort(l->stores, store_id_order);
	if (l->stores->len)
		g_array_index(l->stores, mv_mailbox_store, l->stores->len - 1).max_number = 0;
	do
		l->uidvalidity = randombytes_uniform(UINT32_MAX - 1) + 1;
	while (l->uidvalidity == old_validity);
}

typedef struct update {
	const char *key;
	const mv_mailbox_store *now;
	size_t n;
	layout *l;
} update;

static int update_in_txn(mv_instance *inst, void *opaque, GError **error)
{
	update *u = opaque;
	sqlite3 *db = mv_archive_db(inst);
	if (mv_sql_exec(db, SCHEMA, error) < 0)
		return -1;
	/* Re-read under the write lock: another connection may have just done it. */
	g_array_set_size(u->l->stores, 0);
	int rc = read_layout(inst, u->key, u->l, error);
	if (rc < 0)
		return -1;
	bool changed = rc == 1;
	if (rc == 1)
		layout_fresh(u->l, u->now, u->n, 0);
	else if (!layout_still_valid(u->l, u->now, u->n, &changed)) {
		mv_log_info("IMAP mailbox %s: mail arrived in an earlier store; new UIDVALIDITY", u->key);
		layout_fresh(u->l, u->now, u->n, u->l->uidvalidity);
		changed = true;
	}
	if (!changed)
		return 0;
	char *text = layout_to_json(u->l);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO imap_mailboxes(key, uidvalidity, layout) VALUES(?,?,?)", -1,
	                       &st, NULL) != SQLITE_OK) {
		free(text);
		mv_sql_set_error(error, db, "writing an IMAP mailbox's UID layout");
		return -1;
	}
	sqlite3_bind_text(st, 1, u->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, u->l->uidvalidity);
	sqlite3_bind_text(st, 3, text, -1, free);
	return mv_sql_step_done(mv_archive_db(inst), st, "writing an IMAP mailbox's UID layout", error);
}

/* Whether the stored layout l still serves the mailbox's stores now as it
 * is (tried on a copy: the check may change what it looks at). */
static bool layout_unchanged(const layout *l, const mv_mailbox_store *now, size_t n)
{
	bool changed = false;
	layout probe = { .uidvalidity = l->uidvalidity, .stores = g_array_copy(l->stores) };
	bool valid = layout_still_valid(&probe, now, n, &changed);
	layout_clear(&probe);
	return valid && !changed;
}

int mv_mailbox_uid_layout(mv_instance *inst, const char *key, const mv_mailbox_store *now, size_t n,
                          uint32_t *uidvalidity_r, int *ranks_r, GError **error)
{
	layout l = { .stores = g_array_new(FALSE, FALSE, sizeof(mv_mailbox_store)) };
	int rc = read_layout(inst, key, &l, error);
	if (rc < 0)
		goto out;
	if (rc == 0 && layout_unchanged(&l, now, n))
		goto ranks;
	update u = { key, now, n, &l };
	rc = mv_archive_in_transaction(inst, update_in_txn, &u, error);
	if (rc < 0)
		goto out;
ranks:
	*uidvalidity_r = l.uidvalidity;
	for (size_t i = 0; i < n; i++)
		ranks_r[i] = rank_of(&l, now[i].store_id);
	rc = 0;
out:
	layout_clear(&l);
	return rc;
}
