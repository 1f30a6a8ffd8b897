/* index: the full-text side of a store — index/index.sqlite, one contentless
 * FTS5 table whose rowid is a key embedding the message number, ascending
 * from newest to oldest (mv_index_docid): FTS5 walks a hit list in rowid
 * order for free, so "newest first, first 50" reads 50 hits instead of
 * sorting all of them, and a date range is a rowid range.
 *
 * Contentless because every column's text is derivable from content/ and the
 * metadata db already keeps what result lists show: the index holds only
 * postings, so it costs a fraction of the raw bytes.  The `scope` column
 * carries synthetic tokens (archive, folder, has-attachment) so that the
 * usual scoped search is one FTS intersection rather than a post-filter over
 * a huge hit list. */
#include "store/store.h"

#include <sodium.h>
#include <string.h>

static const char index_schema[] =
	"CREATE VIRTUAL TABLE IF NOT EXISTS %s.fts USING fts5("
	" subject, sender, recipients, cc, bcc, body, attachment, folder, archive, messageid, scope,"
	" content='', tokenize='unicode61 remove_diacritics 2');"
	/* indexed_upto: every message numbered up to it is in fts. */
	"CREATE TABLE IF NOT EXISTS %s.index_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO %s.index_state VALUES('format_version', 1);";

int64_t mv_index_docid(int64_t date, int64_t number)
{
	int64_t d = date < 0 ? 0 : date;
	if (d > MV_INDEX_MAX_DATE)
		d = MV_INDEX_MAX_DATE;
	/* Newest first is ascending rowid: FTS5 walks doclists forward with
	 * skipping, but must buffer a whole doclist to walk it backwards. */
	return ((MV_INDEX_MAX_DATE - d) << MV_INDEX_NUMBER_BITS) | (number & MV_INDEX_NUMBER_MASK);
}

int64_t mv_index_docid_number(int64_t docid)
{
	return docid & MV_INDEX_NUMBER_MASK;
}

int mv_index_init_schema(sqlite3 *db, const char *schema, GError **error)
{
	char *sql = g_strdup_printf(index_schema, schema, schema, schema);
	int rc = mv_sql_exec(db, sql, error);
	g_free(sql);
	return rc;
}

char *mv_scope_archive_token(const char *archive)
{
	/* Archive names contain dots and other separators the tokenizer would
	 * split on; a hash gives one stable alphanumeric token per archive. */
	uint8_t h[8];
	char *lower = g_utf8_strdown(archive, -1);
	crypto_generichash(h, sizeof h, (const uint8_t *)lower, strlen(lower), NULL, 0);
	g_free(lower);
	char *hex = mv_hex(h, sizeof h);
	char *tok = g_strconcat("zarc", hex, NULL);
	g_free(hex);
	return tok;
}

char *mv_address_token(const char *addr)
{
	uint8_t h[8];
	crypto_generichash(h, sizeof h, (const uint8_t *)addr, strlen(addr), NULL, 0);
	char *hex = mv_hex(h, sizeof h);
	char *tok = g_strconcat("zadr", hex, NULL);
	g_free(hex);
	return tok;
}

/* Column text for an address field: the display form (names), the
 * addresses, and one token per address. */
static char *address_column(const char *display, const char *addrs)
{
	GString *out = g_string_new(display ? display : "");
	if (!addrs || !*addrs)
		return g_string_free(out, FALSE);
	g_string_append_c(out, ' ');
	g_string_append(out, addrs);
	char **list = g_strsplit(addrs, " ", -1);
	for (char **a = list; *a; a++) {
		if (!**a)
			continue;
		char *tok = mv_address_token(*a);
		g_string_append_c(out, ' ');
		g_string_append(out, tok);
		g_free(tok);
	}
	g_strfreev(list);
	return g_string_free(out, FALSE);
}

char *mv_scope_folder_token(int64_t folder_id)
{
	return g_strdup_printf("zfld%lld", (long long)folder_id);
}

static int index_write(sqlite3 *db, sqlite3_stmt *st, const mv_index_doc *doc, GError **error);

int mv_index_insert(sqlite3 *db, sqlite3_stmt **cache, const mv_index_doc *doc, GError **error)
{
	static const char sql[] =
		"INSERT INTO fts(rowid, subject, sender, recipients, cc, bcc, body, attachment,"
		" folder, archive, messageid, scope) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)";
	if (!*cache && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "prepare index insert");
		return -1;
	}
	return index_write(db, *cache, doc, error);
}

int mv_index_delete(sqlite3 *db, const mv_index_doc *doc, GError **error)
{
	static const char sql[] =
		"INSERT INTO fts(fts, rowid, subject, sender, recipients, cc, bcc, body, attachment,"
		" folder, archive, messageid, scope) VALUES ('delete',?,?,?,?,?,?,?,?,?,?,?,?)";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "prepare index delete");
		return -1;
	}
	int rc = index_write(db, st, doc, error);
	sqlite3_finalize(st);
	return rc;
}

/* Binds a document's columns (rowid first) and steps. */
static int index_write(sqlite3 *db, sqlite3_stmt *st, const mv_index_doc *doc, GError **error)
{
	char *from = address_column(doc->from, doc->from_addrs);
	char *to = address_column(doc->to, doc->to_addrs);
	char *cc = address_column(NULL, doc->cc_addrs);
	char *bcc = address_column(NULL, doc->bcc_addrs);
	const char *cols[] = { doc->subject, from, to, cc, bcc, doc->body,
	                       doc->attachments, doc->folder, doc->archive, doc->message_id, doc->scope };
	sqlite3_bind_int64(st, 1, mv_index_docid(doc->date, doc->number));
	for (int i = 0; i < (int)G_N_ELEMENTS(cols); i++)
		sqlite3_bind_text(st, i + 2, cols[i] ? cols[i] : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	g_free(from);
	g_free(to);
	g_free(cc);
	g_free(bcc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "index insert");
		return -1;
	}
	return 0;
}
