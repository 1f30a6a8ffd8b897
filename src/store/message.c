/* store/message: one archived message's row — what a reader needs to show
 * the message and to decide who may see it (its archive and folder).  The
 * bytes come from mv_store_read_message; this is the metadata beside them,
 * kept here so that no module above reads the store's schema itself. */
#include "store/internal.h"

#include <string.h>

void mv_store_message_clear(mv_store_message *m)
{
	g_free(m->archive);
	g_free(m->path);
	g_free(m->subject);
	g_free(m->sender);
	g_free(m->recipients);
	g_free(m->message_id);
	g_free(m->mail_flags);
	memset(m, 0, sizeof *m);
}

static char *text_at(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return g_strdup(t ? (const char *)t : "");
}

void mv_store_message_from_row(sqlite3_stmt *st, mv_store_message *m)
{
	m->number = sqlite3_column_int64(st, 0);
	m->date = sqlite3_column_int64(st, 1);
	m->archived_at = sqlite3_column_int64(st, 2);
	m->size = sqlite3_column_int64(st, 3);
	m->has_attachment = sqlite3_column_int(st, 4) != 0;
	m->subject = text_at(st, 5);
	m->sender = text_at(st, 6);
	m->recipients = text_at(st, 7);
	m->message_id = text_at(st, 8);
	m->mail_flags = text_at(st, 9);
	m->archive = text_at(st, 10);
	m->path = text_at(st, 11);
}

int mv_store_message_get(mv_store *s, int64_t number, mv_store_message *m_r, GError **error)
{
	sqlite3_stmt *st = mv_store_stmt_get(s, "SELECT " MV_STORE_MESSAGE_COLUMNS " WHERE m.num = ? AND m.deleted = 0",
	                                     error);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, number);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %d:%lld does not exist", s->id,
			            (long long)number);
		else
			mv_sql_set_error(error, s->db, "read message row");
		return -1;
	}
	memset(m_r, 0, sizeof *m_r);
	mv_store_message_from_row(st, m_r);
	sqlite3_reset(st);
	return 0;
}
