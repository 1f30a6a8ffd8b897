/* store/envelope: the SMTP envelope a message came with — its sender and
 * every recipient, Bcc recipients and the members of expanded lists
 * included, which the message's own headers do not name.  Kept three
 * ways, each rebuildable from the one before: in the message's record
 * (content/, meta key "envelope"), in the db (table envelopes, by message
 * number) and in the index, where the recipients join the To column's
 * text so that `to:` finds a Bcc recipient.
 *
 * The table is made when the first message with an envelope arrives (or a
 * recovery meets one), not by a format change: a store without it is a
 * store whose messages have none, which is every store made before it and
 * most stores after.  Readers check once per handle whether it exists. */
#include "store/internal.h"
#include "mime/mime.h"

#include <string.h>

#define ENVELOPES_SCHEMA                                                                                        \
	"CREATE TABLE IF NOT EXISTS envelopes(num INTEGER PRIMARY KEY, sender TEXT NOT NULL,"                   \
	" recipients TEXT NOT NULL)"

static bool table_exists(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool found = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='envelopes'", -1, &st,
	                       NULL) == SQLITE_OK)
		found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

int mv_store_envelope_put_db(sqlite3 *db, int64_t num, const char *sender, const char *recipients, GError **error)
{
	sqlite3_stmt *st = NULL;
	if (mv_sql_exec(db, ENVELOPES_SCHEMA, error) < 0 ||
	    mv_sql_prepare(db, "INSERT OR REPLACE INTO envelopes(num, sender, recipients) VALUES(?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_text(st, 2, sender ? sender : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, recipients ? recipients : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "record a message's envelope");
		return -1;
	}
	return 0;
}

int mv_store_envelope_put(mv_store *s, int64_t num, const char *sender, const char *recipients, GError **error)
{
	if (mv_store_envelope_put_db(s->db, num, sender, recipients, error) < 0)
		return -1;
	s->envelopes = true;
	return 0;
}

/* Only "it exists" is remembered: a store without the table is asked again
 * each time (one look at sqlite_master), so a table made since — by this
 * handle's next batch, or a recovery — is never missed; and a batch that
 * made it and rolled back leaves a table that is gone again, seen here. */
int mv_store_envelope_get(mv_store *s, int64_t num, char **sender_r, char **recipients_r, GError **error)
{
	*sender_r = NULL;
	*recipients_r = NULL;
	if (!s->envelopes && !table_exists(s->db))
		return 0;
	s->envelopes = true;
	sqlite3_stmt *st = mv_store_stmt_get(s, "SELECT sender, recipients FROM envelopes WHERE num = ?", error);
	if (!st) {
		if (table_exists(s->db))
			return -1;
		g_clear_error(error);
		s->envelopes = false;
		return 0;
	}
	sqlite3_bind_int64(st, 1, num);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*sender_r = g_strdup((const char *)sqlite3_column_text(st, 0));
		*recipients_r = g_strdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	if (!table_exists(s->db)) {
		s->envelopes = false;
		return 0;
	}
	mv_sql_set_error(error, s->db, "read a message's envelope");
	return -1;
}

int mv_store_message_envelope(mv_store *s, int64_t number, char **sender_r, char **recipients_r, GError **error)
{
	return mv_store_envelope_get(s, number, sender_r, recipients_r, error);
}

/* The index's address list is space-separated normalised addresses (each
 * also becomes an address token, index.c): the envelope's "a@x, b@y" is
 * brought to that form, after the message's own. */
char *mv_store_index_recipients(const char *to_addrs, const char *envelope_recipients)
{
	GString *out = g_string_new(to_addrs ? to_addrs : "");
	if (!envelope_recipients || !*envelope_recipients)
		return g_string_free(out, FALSE);
	char **list = g_strsplit_set(envelope_recipients, ", ", -1);
	for (char **a = list; *a; a++) {
		if (!**a)
			continue;
		char *norm = mv_address_normalize(*a);
		if (norm && *norm) {
			if (out->len)
				g_string_append_c(out, ' ');
			g_string_append(out, norm);
		}
		g_free(norm);
	}
	g_strfreev(list);
	return g_string_free(out, FALSE);
}

json_t *mv_store_envelope_meta(const char *sender, const char *recipients)
{
	if (!sender && !recipients)
		return NULL;
	return json_pack("{s:s, s:s}", "from", sender ? sender : "", "to", recipients ? recipients : "");
}
