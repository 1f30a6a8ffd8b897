/* archive/mailbox_state: what IMAP and POP3 profiles remember between
 * runs, in master.sqlite (tables mailbox_folders and mailbox_uidls).
 *
 * The state is what makes a second run cheap — a folder whose UIDVALIDITY
 * and UIDNEXT say nothing is new is not even selected — so it must never
 * claim more than is archived: the mailbox source writes a folder's row
 * only after ingest has flushed the messages below its last_uid.  Each
 * write is its own small transaction; a crash between two leaves an older
 * state, which costs a re-fetch that the content-hash check turns into
 * "already archived", never a loss. */
#include "archive/internal.h"

void mv_mailbox_folder_state_free(mv_mailbox_folder_state *s)
{
	if (!s)
		return;
	g_free(s->pending);
	g_free(s->archived_marks);
	g_free(s);
}

GHashTable *mv_mailbox_folder_states(mv_instance *inst, int64_t profile_id, const char *mailbox, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT folder, uidvalidity, last_uid, pending, highestmodseq, archived_marks FROM "
	                   "mailbox_folders WHERE profile_id=? AND mailbox=?", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, profile_id);
	sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_TRANSIENT);
	GHashTable *out = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	                                        (GDestroyNotify)mv_mailbox_folder_state_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_mailbox_folder_state *s = g_new0(mv_mailbox_folder_state, 1);
		s->uidvalidity = (uint64_t)sqlite3_column_int64(st, 1);
		s->last_uid = (uint64_t)sqlite3_column_int64(st, 2);
		s->pending = mv_sql_column_text(st, 3);
		if (!s->pending)
			s->pending = g_strdup("");
		s->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
		s->archived_marks = mv_sql_column_text(st, 5);
		if (!s->archived_marks)
			s->archived_marks = g_strdup("");
		g_hash_table_replace(out, mv_sql_column_text(st, 0), s);
	}
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "read the mailbox profile's folder state");
		g_hash_table_destroy(out);
		out = NULL;
	}
	sqlite3_finalize(st);
	return out;
}

int mv_mailbox_folder_state_set(mv_instance *inst, int64_t profile_id, const char *mailbox, const char *folder,
                                const mv_mailbox_folder_state *s, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT OR REPLACE INTO mailbox_folders(profile_id, mailbox, folder, "
	                   "uidvalidity, last_uid, pending, highestmodseq, archived_marks) VALUES(?,?,?,?,?,?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, profile_id);
	sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, folder, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)s->uidvalidity);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)s->last_uid);
	sqlite3_bind_text(st, 6, s->pending ? s->pending : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)s->highestmodseq);
	sqlite3_bind_text(st, 8, s->archived_marks ? s->archived_marks : "", -1, SQLITE_TRANSIENT);
	return mv_sql_step_done(mv_archive_db(inst), st, "save the mailbox profile's folder state", error);
}

GHashTable *mv_mailbox_uidls(mv_instance *inst, int64_t profile_id, const char *mailbox, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT uidl, archived_at FROM mailbox_uidls WHERE profile_id=? AND "
	                   "mailbox=?", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, profile_id);
	sqlite3_bind_text(st, 2, mailbox, -1, SQLITE_TRANSIENT);
	GHashTable *out = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t *when = g_new(int64_t, 1);
		*when = sqlite3_column_int64(st, 1);
		g_hash_table_replace(out, mv_sql_column_text(st, 0), when);
	}
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "read the POP3 profile's UIDLs");
		g_hash_table_destroy(out);
		out = NULL;
	}
	sqlite3_finalize(st);
	return out;
}

typedef struct uidl_change {
	int64_t profile_id;
	const char *mailbox;
	GPtrArray *uidls;
	int64_t when;
} uidl_change;

static int uidls_txn(mv_instance *inst, void *opaque, GError **error)
{
	uidl_change *c = opaque;
	sqlite3 *db = mv_archive_db(inst);
	const char *sql = c->when >= 0 ? "INSERT OR REPLACE INTO mailbox_uidls(profile_id, mailbox, uidl, archived_at) "
	                                 "VALUES(?,?,?,?)"
	                               : "DELETE FROM mailbox_uidls WHERE profile_id=? AND mailbox=? AND uidl=?";
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, sql, &st, error) < 0)
		return -1;
	int rc = 0;
	for (guint i = 0; rc == 0 && i < c->uidls->len; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, c->profile_id);
		sqlite3_bind_text(st, 2, c->mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, c->uidls->pdata[i], -1, SQLITE_STATIC);
		if (c->when >= 0)
			sqlite3_bind_int64(st, 4, c->when);
		if (sqlite3_step(st) != SQLITE_DONE) {
			mv_sql_set_error(error, db, "save the POP3 profile's UIDLs");
			rc = -1;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int mv_mailbox_uidls_change(mv_instance *inst, int64_t profile_id, const char *mailbox, GPtrArray *uidls,
                            int64_t when, GError **error)
{
	if (uidls->len == 0)
		return 0;
	uidl_change c = { profile_id, mailbox, uidls, when };
	return mv_archive_in_transaction(inst, uidls_txn, &c, error);
}

int mv_mailbox_state_forget(mv_instance *inst, int64_t profile_id, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	static const char *const sql[] = { "DELETE FROM mailbox_folders WHERE profile_id=?",
		                               "DELETE FROM mailbox_uidls WHERE profile_id=?" };
	for (size_t i = 0; i < G_N_ELEMENTS(sql); i++) {
		sqlite3_stmt *st;
		if (mv_sql_prepare(db, sql[i], &st, error) < 0)
			return -1;
		sqlite3_bind_int64(st, 1, profile_id);
		if (mv_sql_step_done(db, st, "forget the profile's mailbox state", error) < 0)
			return -1;
	}
	return 0;
}
