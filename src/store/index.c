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
 * a huge hit list.
 *
 * The index's lifecycle lives here too: its generation (which state of the
 * db it describes), its reset and rebuild, the documents queued and flushed
 * in rowid order, the catch-up that indexes what a crash left out, and the
 * documents rebuilt from content for FTS5's contentless delete. */
#include "store/dictionary.h"
#include "mime/mime.h"

#include <sodium.h>
#include <string.h>

/* The documents' shape (MV_INDEX_FORMAT): 2 = cc and bcc hold display
 * names as well as addresses (1: addresses only, so names in Cc/Bcc were
 * not found); 3 = the rowid buckets dates by the hour
 * (MV_INDEX_DATE_BUCKET), not by second; 4 = synthetic tokens begin with
 * U+E000, and an address has one token per address column (store.h);
 * 5 = body is the first column.  FTS5 writes a hit outside column 0 with
 * two bytes more (0x01, the column's number) in every document's position
 * list: with body sixth that was ~2 bytes of ~11 per body word per message,
 * 474 MB of a 2.7 GB index at 1M (bench/RESULTS.md).  Queries name their
 * columns and bm25 weighs them all alike but scope (still last), so an
 * older index reads as it did until its writer makes it anew. */
#define INDEX_FORMAT MV_INDEX_FORMAT

static const char index_schema[] =
	"CREATE VIRTUAL TABLE IF NOT EXISTS %s.fts USING fts5("
	" body, subject, sender, recipients, cc, bcc, attachment, folder, archive, messageid, scope,"
	" content='', tokenize='unicode61 remove_diacritics 2');"   /* search/prefix_cost.c folds as this does */
	/* indexed_upto: every message numbered up to it is in fts. */
	"CREATE TABLE IF NOT EXISTS %s.index_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO %s.index_state VALUES('format_version', " G_STRINGIFY(INDEX_FORMAT) ");"
	/* documents a db change is about to make stale (index_notes.c) */
	"CREATE TABLE IF NOT EXISTS %s.index_notes(docid INTEGER PRIMARY KEY, num INTEGER NOT NULL,"
	" archive TEXT NOT NULL, folder_id INTEGER NOT NULL, columns TEXT NOT NULL);";

int64_t mv_index_docid_in(int64_t bucket, int64_t date, int64_t number)
{
	int64_t d = date < 0 ? 0 : date;
	if (d > MV_INDEX_MAX_DATE)
		d = MV_INDEX_MAX_DATE;
	/* Newest first is ascending rowid: FTS5 walks doclists forward with
	 * skipping, but must buffer a whole doclist to walk it backwards. */
	return ((MV_INDEX_MAX_DATE - d / bucket) << MV_INDEX_NUMBER_BITS) | (number & MV_INDEX_NUMBER_MASK);
}

int64_t mv_index_docid(int64_t date, int64_t number)
{
	return mv_index_docid_in(MV_INDEX_DATE_BUCKET, date, number);
}

G_STATIC_ASSERT(MV_INDEX_MAX_DATE == INT64_C(137438953471) && MV_INDEX_NUMBER_BITS == 25);   /* MV_ORDER_KEY_SQL's */

int64_t mv_order_key(int64_t date, int64_t number)
{
	return mv_index_docid_in(1, date, number);
}

int64_t mv_order_key_date(int64_t key)
{
	return MV_INDEX_MAX_DATE - (key >> MV_INDEX_NUMBER_BITS);
}

int mv_store_index_format(mv_store *s, int64_t *format_r, GError **error)
{
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	char *sql = g_strdup_printf("SELECT value FROM %sindex_state WHERE key='format_version'", prefix);
	*format_r = 0;
	int rc = mv_store_int_query(ix, sql, "read the index's format", format_r, error);
	g_free(sql);
	return rc;
}

int64_t mv_index_date_bucket(int64_t format)
{
	return format >= 3 ? MV_INDEX_DATE_BUCKET : 1;
}

int64_t mv_index_docid_number(int64_t docid)
{
	return docid & MV_INDEX_NUMBER_MASK;
}

/* FTS5 writes leaves of up to pgsz bytes (default 4050) as fts_data rows.
 * SQLCipher keeps 80 bytes of every 4096-byte page for its IV and MAC, and
 * a row longer than the rest (less SQLite's cell overhead) spills into an
 * overflow page: with the default nearly every leaf did, making the
 * encrypted index 12% larger and each leaf two page reads (bench/RESULTS.md,
 * encryption).  A row stays on its page up to 3977 bytes of blob (4016
 * usable bytes, less 35 for a table leaf's cell, less the record's 4-byte
 * header); FTS5 checks the size before it appends a rowid (up to 9 bytes)
 * and a position-list size (up to 5), and splits a position list at pgsz,
 * so a leaf ends at most 14 bytes past it (a term longer than a page
 * excepted).  3960 keeps that on the page (3900 before index format 5:
 * leaves 1.5% fuller, 33 MB of 2.2 GB at 1M, bench/RESULTS.md). */
#define INDEX_LEAF_BYTES 3960

/* FTS5 merges a level's segments once `automerge` of them are there
 * (default 4).  8 halves the levels a posting is rewritten through on its
 * way to the big segments, and the merge work is what grows an import's
 * cost with the index: the same 100,000 messages import in ~20% less time,
 * and the index and searches stay the same size and speed (bench/RESULTS.md,
 * "FTS5 automerge"). */
#define INDEX_AUTOMERGE 8

/* An FTS5 option lives in the table's fts_config; set it only when it
 * differs, so that opening a store writes nothing in the common case. */
static int set_fts_option(sqlite3 *db, const char *schema, const char *key, int value, GError **error)
{
	char *get = sqlite3_mprintf("SELECT v FROM \"%w\".fts_config WHERE k=%Q", schema, key);
	int64_t now = 0;
	int rc = mv_store_int_query(db, get, "read the index's options", &now, error);
	sqlite3_free(get);
	if (rc < 0 || now == value)
		return rc;
	char *set = sqlite3_mprintf("INSERT INTO \"%w\".fts(fts, rank) VALUES(%Q, %d)", schema, key, value);
	rc = mv_sql_exec(db, set, error);
	sqlite3_free(set);
	return rc;
}

int mv_index_init_schema(sqlite3 *db, const char *schema, GError **error)
{
	char *sql = g_strdup_printf(index_schema, schema, schema, schema, schema);
	int rc = mv_sql_exec(db, sql, error);
	g_free(sql);
	if (rc < 0 || set_fts_option(db, schema, "pgsz", INDEX_LEAF_BYTES, error) < 0)
		return -1;
	return set_fts_option(db, schema, "automerge", INDEX_AUTOMERGE, error);
}

/* From format 4 a synthetic token is U+E000, a kind letter and a value:
 * unicode61 keeps a private-use character inside a token, and no one types
 * one, so no word or prefix a user searches reaches these (before, `za*`
 * found every message through its "zadr..." tokens). */
#define SYNTHETIC_FORMAT 4
#define SYNTHETIC_MARK "\xee\x80\x80"

/* A token for text that holds separators the tokenizer would split on: a
 * hash of it, one stable token. */
static char *hashed_token(const char *old_prefix, char kind, const char *text, int64_t format)
{
	uint8_t h[8];
	crypto_generichash(h, sizeof h, (const uint8_t *)text, strlen(text), NULL, 0);
	char *hex = mv_hex(h, sizeof h);
	char *tok = format >= SYNTHETIC_FORMAT ? g_strdup_printf(SYNTHETIC_MARK "%c%s", kind, hex)
	                                       : g_strconcat(old_prefix, hex, NULL);
	g_free(hex);
	return tok;
}

char *mv_scope_archive_token(const char *archive, int64_t format)
{
	char *lower = g_utf8_strdown(archive, -1);
	char *tok = hashed_token("zarc", 'a', lower, format);
	g_free(lower);
	return tok;
}

char *mv_address_token(const char *addr, mv_address_role role, int64_t format)
{
	static const char kinds[] = { [MV_ADDR_FROM] = 'f', [MV_ADDR_TO] = 't', [MV_ADDR_CC] = 'c', [MV_ADDR_BCC] = 'b' };
	return hashed_token("zadr", kinds[role], addr, format);
}

char *mv_scope_folder_token(int64_t folder_id, int64_t format)
{
	return format >= SYNTHETIC_FORMAT ? g_strdup_printf(SYNTHETIC_MARK "d%lld", (long long)folder_id)
	                                  : g_strdup_printf("zfld%lld", (long long)folder_id);
}

const char *mv_scope_has_attachment_token(int64_t format)
{
	return format >= SYNTHETIC_FORMAT ? SYNTHETIC_MARK "h" : "zhasattach";
}

bool mv_index_token_term_has_column(int64_t format)
{
	return format < SYNTHETIC_FORMAT;
}

void mv_index_append_token_term(GString *out, const char *column, const char *token, int64_t format)
{
	/* A synthetic token of format 4 lives in one column only: a column
	 * filter would only make FTS5 read its positions. */
	if (!mv_index_token_term_has_column(format))
		g_string_append_printf(out, "\"%s\"", token);
	else
		g_string_append_printf(out, "%s : %s", column, token);
}

/* Column text for an address field: the display form (names), the
 * addresses, and one token per address. */
static char *address_column(const char *display, const char *addrs, mv_address_role role)
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
		char *tok = mv_address_token(*a, role, INDEX_FORMAT);
		g_string_append_c(out, ' ');
		g_string_append(out, tok);
		g_free(tok);
	}
	g_strfreev(list);
	return g_string_free(out, FALSE);
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

static const char delete_sql[] =
	"INSERT INTO fts(fts, rowid, subject, sender, recipients, cc, bcc, body, attachment,"
	" folder, archive, messageid, scope) VALUES ('delete',?,?,?,?,?,?,?,?,?,?,?,?)";

int mv_index_delete(sqlite3 *db, const mv_index_doc *doc, GError **error)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, delete_sql, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "prepare index delete");
		return -1;
	}
	int rc = index_write(db, st, doc, error);
	sqlite3_finalize(st);
	return rc;
}

#define INDEX_COLUMNS 11

/* The text of a document's columns exactly as the index is given them. */
typedef struct index_columns {
	const char *text[INDEX_COLUMNS];
	char *owned[4];
} index_columns;

static void index_columns_of(const mv_index_doc *doc, index_columns *c)
{
	c->owned[0] = address_column(doc->from, doc->from_addrs, MV_ADDR_FROM);
	c->owned[1] = address_column(doc->to, doc->to_addrs, MV_ADDR_TO);
	c->owned[2] = address_column(doc->cc, doc->cc_addrs, MV_ADDR_CC);
	c->owned[3] = address_column(doc->bcc, doc->bcc_addrs, MV_ADDR_BCC);
	const char *cols[INDEX_COLUMNS] = { doc->subject, c->owned[0], c->owned[1], c->owned[2], c->owned[3], doc->body,
	                                    doc->attachments, doc->folder, doc->archive, doc->message_id, doc->scope };
	for (int i = 0; i < INDEX_COLUMNS; i++)
		c->text[i] = cols[i] ? cols[i] : "";
}

static void index_columns_clear(index_columns *c)
{
	for (size_t i = 0; i < G_N_ELEMENTS(c->owned); i++)
		g_free(c->owned[i]);
}

static int bind_and_step(sqlite3 *db, sqlite3_stmt *st, int64_t docid, const char *const text[INDEX_COLUMNS],
                         GError **error)
{
	sqlite3_bind_int64(st, 1, docid);
	for (int i = 0; i < INDEX_COLUMNS; i++)
		sqlite3_bind_text(st, i + 2, text[i], -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "index write");
		return -1;
	}
	return 0;
}

/* Binds a document's columns (rowid first) and steps. */
static int index_write(sqlite3 *db, sqlite3_stmt *st, const mv_index_doc *doc, GError **error)
{
	index_columns c;
	index_columns_of(doc, &c);
	int rc = bind_and_step(db, st, mv_index_docid(doc->date, doc->number), c.text, error);
	index_columns_clear(&c);
	return rc;
}

json_t *mv_index_doc_columns(const mv_index_doc *doc)
{
	index_columns c;
	index_columns_of(doc, &c);
	json_t *cols = json_array();
	for (int i = 0; i < INDEX_COLUMNS; i++)
		json_array_append_new(cols, json_string(c.text[i]));
	index_columns_clear(&c);
	return cols;
}

int mv_index_delete_columns(sqlite3 *db, int64_t docid, json_t *cols, GError **error)
{
	const char *text[INDEX_COLUMNS];
	for (int i = 0; i < INDEX_COLUMNS; i++) {
		text[i] = json_string_value(json_array_get(cols, (size_t)i));
		if (!text[i] || json_array_size(cols) != INDEX_COLUMNS) {
			g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "a noted index document of docid %lld is damaged",
			            (long long)docid);
			return -1;
		}
	}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, delete_sql, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "prepare index delete");
		return -1;
	}
	int rc = bind_and_step(db, st, docid, text, error);
	sqlite3_finalize(st);
	return rc;
}

/* ---- generation, reset, rebuild ---------------------------------------------------------------- */

char *mv_store_new_generation(void)
{
	uint8_t b[16];
	randombytes_buf(b, sizeof b);
	return mv_hex(b, sizeof b);
}

int mv_store_index_staleness(mv_store *s, bool *other_generation_r, bool *other_format_r, GError **error)
{
	char *db_gen = NULL, *ix_gen = NULL;
	int64_t format = 0;
	int rc = -1;
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	char *gen_sql = g_strdup_printf("SELECT value FROM %sindex_state WHERE key='generation'", prefix);
	if (mv_store_text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", "read index generation",
	                        &db_gen, error) < 0 ||
	    mv_store_text_query(ix, gen_sql, "read index generation", &ix_gen, error) < 0 ||
	    mv_store_index_format(s, &format, error) < 0)
		goto out;
	*other_generation_r = g_strcmp0(db_gen, ix_gen) != 0;
	*other_format_r = format != INDEX_FORMAT;
	rc = 0;
out:
	g_free(gen_sql);
	g_free(db_gen);
	g_free(ix_gen);
	return rc;
}

int mv_store_index_stale(mv_store *s, bool *stale_r, GError **error)
{
	/* An index of an older format holds documents this build would not
	 * write (and could not delete: contentless deletes need the exact
	 * document), so it is rebuilt like one of another generation. */
	bool other_generation = false, other_format = false;
	if (mv_store_index_staleness(s, &other_generation, &other_format, error) < 0)
		return -1;
	*stale_r = other_generation || other_format;
	return 0;
}

/* The db's index generation, made when it has none (a db before format 2's
 * upgrade set one, or one whose meta row was lost). */
static char *db_generation(mv_store *s, GError **error)
{
	char *gen = NULL;
	if (mv_store_text_query(s->db, "SELECT value FROM meta WHERE key='index_generation'", "read index generation", &gen,
	                     error) < 0 || gen)
		return gen;
	gen = mv_store_new_generation();
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES('index_generation', %Q)", gen);
	if (mv_sql_exec(s->db, sql, error) < 0)
		g_clear_pointer(&gen, g_free);
	sqlite3_free(sql);
	return gen;
}

/* The index is made anew, a new file, rather than emptied: SQLCipher is
 * built with SECURE_DELETE, so FTS5's 'delete-all' zeroed every page of the
 * old index through the WAL in one transaction (2.2 GB of WAL and two
 * minutes at 1M, the file that size until the last connection closed), and
 * an emptied table keeps its column order, which index format 5 changed.
 * The file is derived data: a crash meanwhile leaves no file, or an empty
 * one, and the next writer rebuilds.  Writers of other handles follow to
 * the new file at their next lock (store.c), readers when they reopen. */
int mv_store_index_reset(mv_store *s, GError **error)
{
	g_assert(s->lock_fd >= 0);
	GError *lost = NULL;
	if (mv_store_index_wait(s, &lost) < 0) {   /* made anew anyway: what failed does not matter */
		mv_log_warn("store %d: %s", s->id, lost->message);
		g_error_free(lost);
	}
	char *gen = db_generation(s, error);
	if (!gen)
		return -1;
	g_ptr_array_set_size(s->index_queue, 0);
	char *stamp = sqlite3_mprintf("INSERT OR REPLACE INTO index_state VALUES('format_version', %d);"
	                              " INSERT OR REPLACE INTO index_state VALUES('generation', %Q);",
	                              INDEX_FORMAT, gen);
	int rc = mv_store_index_recreate(s, error) < 0 ? -1 : mv_sql_exec(s->index_db, stamp, error);
	sqlite3_free(stamp);
	g_free(gen);
	return rc;
}

int mv_store_refresh_index(mv_store *s, GError **error)
{
	if (mv_store_write_lock(s, error) < 0)
		return -1;
	return mv_store_sync(s, error);
}

/* Under the lock: the index made anew when `anew` (or stale), else the
 * notes of an interrupted change settled; then every message it lacks
 * indexed, cancellable between chunks. */
static int index_up_to_date(mv_store *s, const mv_task *task, bool anew, const char *what, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_flock_for(s, task, error) < 0)
		return -1;
	int rc = -1;
	bool stale = false;
	if (mv_store_task_cancelled(task)) {
		mv_store_cancelled_error(error, what);
		goto out;
	}
	if (!anew && mv_store_index_stale(s, &stale, error) < 0)
		goto out;
	if (anew || stale) {
		mv_store_task_progress(task, 0, "store %d: making the index anew", s->id);
		if (mv_store_index_reset(s, error) < 0)
			goto out;
	} else if (mv_index_notes_settle(s, error) < 0) {
		goto out;
	}
	mv_store_task_progress(task, -1, "store %d: indexing every message the index lacks", s->id);
	rc = mv_store_index_catch_up_task(s, task, error);
out:
	rc = mv_store_finish_locked(s, rc, error);
	if (rc == 0)
		mv_store_task_progress(task, 100, "store %d: index %s", s->id, anew || stale ? "rebuilt" : "up to date");
	return rc;
}

int mv_store_rebuild_index(mv_store *s, const mv_task *task, GError **error)
{
	return index_up_to_date(s, task, true, "RebuildStoreIndex", error);
}

int mv_store_index_bring_up(mv_store *s, const mv_task *task, GError **error)
{
	return index_up_to_date(s, task, false, "bringing the index up to date", error);
}

/* The index connection and the schema prefix its tables need. */
sqlite3 *mv_store_index_conn(mv_store *s, const char **prefix_r)
{
	*prefix_r = s->index_db ? "" : "ix.";
	return s->index_db ? s->index_db : s->db;
}

/* The index document of a parsed message: the one mapping from what mime
 * parsed to the index's columns, for catch-up and for the documents rebuilt
 * for a contentless delete, which must match what was inserted. */
static mv_index_doc doc_from_parsed(const mv_parsed *p, int64_t number, int64_t date, const char *archive,
                                    const char *folder, const char *scope, const char *to_addrs)
{
	return (mv_index_doc){
		.number = number, .date = date, .subject = p->subject, .body = p->text->str,
		.from = p->from, .to = p->to, .cc = p->cc, .bcc = p->bcc, .from_addrs = p->from_addrs,
		.to_addrs = to_addrs, .cc_addrs = p->cc_addrs, .bcc_addrs = p->bcc_addrs, .attachments = p->attachment_names->str,
		.folder = folder, .archive = archive, .message_id = p->message_id, .scope = scope,
	};
}

/* ---- scope, the document queue ------------------------------------------------------------------ */

void mv_store_fill_scope(GString *scope, const char *archive, int64_t folder, bool has_attachment)
{
	char *a = mv_scope_archive_token(archive, INDEX_FORMAT);
	char *f = mv_scope_folder_token(folder, INDEX_FORMAT);
	g_string_printf(scope, "%s %s%s%s", a, f, has_attachment ? " " : "",
	                has_attachment ? mv_scope_has_attachment_token(INDEX_FORMAT) : "");
	g_free(a);
	g_free(f);
}


/* A document waiting for the index, owning its text.  Documents are queued
 * and inserted sorted by rowid at flush time: FTS5 flushes its in-memory
 * segment whenever a rowid is not larger than the previous one, and rowids
 * follow message dates, not arrival order — unsorted inserts made a segment
 * per message and doubled the index build time. */
typedef struct queued_doc {
	int64_t docid;
	mv_index_doc doc;
	char *text[15];
} queued_doc;

void mv_store_queued_doc_free(gpointer p)
{
	queued_doc *q = p;
	for (size_t i = 0; i < G_N_ELEMENTS(q->text); i++)
		g_free(q->text[i]);
	g_free(q);
}

void mv_store_queue_doc(mv_store *s, const mv_index_doc *doc)
{
	queued_doc *q = g_new0(queued_doc, 1);
	const char *src[] = { doc->subject, doc->body, doc->attachments, doc->from, doc->to, doc->from_addrs,
	                      doc->to_addrs, doc->cc_addrs, doc->bcc_addrs, doc->folder, doc->archive,
	                      doc->message_id, doc->scope, doc->cc, doc->bcc };
	G_STATIC_ASSERT(G_N_ELEMENTS(src) == G_N_ELEMENTS(((queued_doc *)0)->text));
	for (size_t i = 0; i < G_N_ELEMENTS(src); i++)
		q->text[i] = g_strdup(src[i] ? src[i] : "");
	q->doc = (mv_index_doc){
		.number = doc->number, .date = doc->date, .subject = q->text[0], .body = q->text[1],
		.attachments = q->text[2], .from = q->text[3], .to = q->text[4], .from_addrs = q->text[5],
		.to_addrs = q->text[6], .cc_addrs = q->text[7], .bcc_addrs = q->text[8], .folder = q->text[9],
		.archive = q->text[10], .message_id = q->text[11], .scope = q->text[12], .cc = q->text[13],
		.bcc = q->text[14],
	};
	q->docid = mv_index_docid(doc->date, doc->number);
	if (s->index_queue->len == 0)
		s->index_since = mv_monotonic();
	g_ptr_array_add(s->index_queue, q);
}

static gint by_docid(gconstpointer a, gconstpointer b)
{
	const queued_doc *x = *(queued_doc *const *)a, *y = *(queued_doc *const *)b;
	return x->docid < y->docid ? -1 : x->docid > y->docid;
}

static int set_indexed_upto(sqlite3 *db, int64_t upto, GError **error);

/* The queued documents inserted, sorted, and indexed_upto moved past them. */
static int insert_sorted(sqlite3 *db, sqlite3_stmt **cache, GPtrArray *docs, GError **error)
{
	g_ptr_array_sort(docs, by_docid);
	int64_t last = 0;
	for (guint i = 0; i < docs->len; i++) {
		const queued_doc *q = docs->pdata[i];
		if (mv_index_insert(db, cache, &q->doc, error) < 0)
			return -1;
		last = MAX(last, q->doc.number);
	}
	return set_indexed_upto(db, last, error);
}

int mv_index_insert_queued(sqlite3 *db, sqlite3_stmt **cache, GPtrArray *docs, GError **error)
{
	if (mv_sql_exec(db, "BEGIN", error) < 0 || insert_sorted(db, cache, docs, error) < 0 ||
	    mv_sql_exec(db, "COMMIT", error) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Inserts the queued documents in rowid order in one index transaction,
 * after what the index writer has in hand.  The queue is emptied either
 * way: what failed is a suffix of message numbers past indexed_upto, which
 * the next writer's catch-up reads again. */
int mv_store_flush_index(mv_store *s, GError **error)
{
	/* With a writer thread, its connection inserts these too: the page
	 * cache it has warmed is the one FTS5 needs, and a second connection
	 * filling its own would double the index's share of the memory. */
	if (s->index_writer && mv_store_index_hand_off(s, error) < 0)
		return -1;
	if (mv_store_index_wait(s, error) < 0)
		return -1;
	if (s->index_queue->len == 0)
		return 0;
	int rc = 0;
	if (mv_index_insert_queued(s->index_db, &s->index_insert, s->index_queue, error) < 0) {
		g_prefix_error(error, "index update failed (the next writer re-indexes what is missing): ");
		rc = -1;
	}
	g_ptr_array_set_size(s->index_queue, 0);
	return rc;
}

/* ---- index catch-up -------------------------------------------------------------------- */

#define CATCH_UP_CHUNK 256

/* One message to index: its record is read here, in order; decrypting,
 * checking and parsing run on all cores (mv_store_parallel). */
typedef struct reindex_job {
	int64_t num, folder_id, date;
	char *archive, *folder;
	uint8_t hash[MV_HASH_BYTES];
	GByteArray *record;
	mv_parsed *parsed;
	GError *error;
} reindex_job;

static void reindex_job_free(gpointer p)
{
	reindex_job *j = p;
	g_free(j->archive);
	g_free(j->folder);
	if (j->record)
		g_byte_array_unref(j->record);
	mv_parsed_free(j->parsed);
	if (j->error)
		g_error_free(j->error);
	g_free(j);
}

static void reindex_parse(gpointer data, gpointer user)
{
	reindex_job *j = data;
	mv_store *s = user;
	GByteArray *plain = NULL;
	mv_record_header h;
	const uint8_t *meta, *body;
	size_t meta_len, body_len;
	if (j->error)
		return;   /* the record could not even be read */
	/* On all cores: the dictionaries were loaded before (no db access here). */
	if (mv_record_decode_dict(s->key, mv_store_dict_preloaded, s, j->record->data, j->record->len, &h, &plain, &meta,
	                          &meta_len, &body, &body_len, NULL, &j->error) < 0) {
		g_prefix_error(&j->error, "message %d:%lld: ", s->id, (long long)j->num);
		return;
	}
	uint8_t got[MV_HASH_BYTES];
	crypto_generichash(got, sizeof got, body, body_len, NULL, 0);
	if (h.type != MV_RECORD_MESSAGE || sodium_memcmp(got, j->hash, MV_HASH_BYTES) != 0)
		g_set_error(&j->error, MV_ERROR, MV_ERR_CORRUPT, "message %d:%lld: content hash mismatch", s->id, (long long)j->num);
	else
		j->parsed = mv_parse_message(body, body_len, j->date);
	g_byte_array_unref(plain);
}

/* The To column's addresses of message num: its own and its envelope's
 * (mv_store_index_recipients); NULL with *error set when the envelope
 * cannot be read. */
static char *envelope_recipients(mv_store *s, int64_t num, const char *to_addrs, GError **error)
{
	char *sender = NULL, *recipients = NULL;
	if (mv_store_envelope_get(s, num, &sender, &recipients, error) < 0)
		return NULL;
	char *out = mv_store_index_recipients(to_addrs, recipients);
	g_free(sender);
	g_free(recipients);
	return out;
}

/* Indexes a chunk: records read in order, parsed in parallel, queued in order. */
static int reindex_chunk(mv_store *s, GPtrArray *jobs, GError **error)
{
	if (mv_store_dicts_preload(s, error) < 0)
		return -1;
	mv_store_parallel(jobs, reindex_parse, s);
	GString *scope = g_string_new(NULL);
	int rc = -1;
	for (guint i = 0; i < jobs->len; i++) {
		reindex_job *j = jobs->pdata[i];
		if (j->error) {
			/* A damaged record must not stop the index of every other
			 * message: VerifyStore names it. */
			mv_log_warn("store %d: not indexed: %s", s->id, j->error->message);
			continue;
		}
		mv_store_fill_scope(scope, j->archive, j->folder_id, j->parsed->has_attachment);
		char *to_addrs = envelope_recipients(s, j->num, j->parsed->to_addrs, error);
		if (!to_addrs)
			goto out;
		mv_index_doc doc = doc_from_parsed(j->parsed, j->num, j->date, j->archive, j->folder, scope->str, to_addrs);
		mv_store_queue_doc(s, &doc);
		g_free(to_addrs);
		/* The next chunk is read and parsed while the writer thread inserts. */
		if (s->index_queue->len >= INDEX_COMMIT_DOCS && mv_store_index_hand_off(s, error) < 0)
			goto out;
	}
	rc = 0;
out:
	g_string_free(scope, TRUE);
	g_ptr_array_set_size(jobs, 0);
	return rc;
}

int mv_store_indexed_upto(mv_store *s, int64_t *upto_r, GError **error)
{
	const char *prefix;
	sqlite3 *ix = mv_store_index_conn(s, &prefix);
	char *sql = g_strdup_printf("SELECT value FROM %sindex_state WHERE key='indexed_upto'", prefix);
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(ix, sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return -1;
	*upto_r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Live messages numbered past upto, at most limit of them (-1: all), in
 * the folders folder_ids names (NULL: every folder).  Counted, not the last
 * number less upto: deleted messages are never indexed, and a deleted tail
 * is no gap.  num is the rowid, so nothing past upto costs one seek. */
static int count_unindexed(mv_store *s, int64_t upto, const char *folder_ids, int64_t limit, int64_t *n_r,
                           GError **error)
{
	char *sql = g_strdup_printf("SELECT count(*) FROM (SELECT 1 FROM messages WHERE num > ?1 AND deleted = 0%s%s%s"
	                            " LIMIT ?2)", folder_ids ? " AND folder_id IN (" : "", folder_ids ? folder_ids : "",
	                            folder_ids ? ")" : "");
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(s->db, sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return -1;
	sqlite3_bind_int64(st, 1, upto);
	sqlite3_bind_int64(st, 2, limit);
	bool counted = sqlite3_step(st) == SQLITE_ROW;
	*n_r = counted ? sqlite3_column_int64(st, 0) : 0;
	if (!counted)
		mv_sql_set_error(error, s->db, "count the messages the index lacks");
	sqlite3_finalize(st);
	return counted ? 0 : -1;
}

int mv_store_index_lag(mv_store *s, int64_t limit, int64_t *lag_r, GError **error)
{
	int64_t upto = 0;
	*lag_r = 0;
	return mv_store_indexed_upto(s, &upto, error) < 0 ? -1 : count_unindexed(s, upto, NULL, limit, lag_r, error);
}

/* A reader's common case, every folder, asked with every search that
 * shows its coverage: one statement kept with the handle (a prepared
 * statement each time was a third of a fast search, bench/RESULTS.md). */
static const char reader_lag_sql[] =
	"SELECT count(*) FROM messages WHERE deleted = 0 AND num > "
	"coalesce((SELECT value FROM ix.index_state WHERE key = 'indexed_upto'), 0)";

static int reader_lag(mv_store *s, int64_t *lag_r, GError **error)
{
	sqlite3_stmt *st = mv_store_stmt_get(s, reader_lag_sql, error);
	if (!st)
		return -1;
	bool counted = sqlite3_step(st) == SQLITE_ROW;
	*lag_r = counted ? sqlite3_column_int64(st, 0) : 0;
	if (!counted)
		mv_sql_set_error(error, s->db, "count the messages the index lacks");
	sqlite3_reset(st);
	return counted ? 0 : -1;
}

int mv_store_index_lag_in(mv_store *s, const char *folder_ids, int64_t *lag_r, GError **error)
{
	int64_t upto = 0;
	*lag_r = 0;
	if (folder_ids && !*folder_ids)
		return 0;
	if (!folder_ids && !s->index_db)
		return reader_lag(s, lag_r, error);
	return mv_store_indexed_upto(s, &upto, error) < 0 ? -1 : count_unindexed(s, upto, folder_ids, -1, lag_r, error);
}

int mv_store_index_leave_to_upkeep(mv_store *s, bool stale, bool *leave_r, GError **error)
{
	int64_t lag = 0;
	*leave_r = stale;
	if (stale)
		return 0;
	/* At most one past the bound is counted, so a lock pays little for it. */
	if (mv_store_index_lag(s, MV_INDEX_INLINE_CATCH_UP + 1, &lag, error) < 0)
		return -1;
	*leave_r = lag > MV_INDEX_INLINE_CATCH_UP;
	return 0;
}

int mv_store_index_needs_upkeep(mv_store *s, bool *needed_r, GError **error)
{
	bool stale = false;
	*needed_r = false;
	if (mv_store_index_stale(s, &stale, error) < 0)
		return -1;
	return mv_store_index_leave_to_upkeep(s, stale, needed_r, error);
}

static int set_indexed_upto(sqlite3 *db, int64_t upto, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT INTO index_state VALUES('indexed_upto', ?1)"
	                " ON CONFLICT(key) DO UPDATE SET value=max(value, excluded.value)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, upto);
	return mv_sql_step_done(db, st, "record index progress", error);
}

/* The job for the message at st's row (the catch-up query's columns); its
 * record is read here, in message order, and a read error is kept in the
 * job for reindex_chunk to report. */
static reindex_job *reindex_job_from_row(mv_store *s, sqlite3_stmt *st)
{
	reindex_job *j = g_new0(reindex_job, 1);
	j->num = sqlite3_column_int64(st, 0);
	j->archive = g_strdup((const char *)sqlite3_column_text(st, 1));
	j->folder = g_strdup((const char *)sqlite3_column_text(st, 2));
	j->folder_id = sqlite3_column_int64(st, 3);
	j->date = sqlite3_column_int64(st, 4);
	if (sqlite3_column_bytes(st, 5) == MV_HASH_BYTES)
		memcpy(j->hash, sqlite3_column_blob(st, 5), MV_HASH_BYTES);
	if (mv_store_read_record(s, sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7), sqlite3_column_int64(st, 8),
	                         &j->record, &j->error) < 0)
		j->record = g_byte_array_new();
	return j;
}

/* Between chunks: progress, or, when cancelled, what is queued committed
 * (the index stays usable) and the cancellation as the error. */
static int between_chunks(mv_store *s, const mv_task *task, int64_t done, int64_t total, GError **error)
{
	if (!mv_store_task_cancelled(task)) {
		mv_store_task_progress(task, total > 0 ? (int)MIN(99, done * 100 / total) : -1,
		                       "store %d: indexed %lld of %lld messages", s->id, (long long)done, (long long)total);
		return 0;
	}
	if (mv_store_flush_index(s, error) == 0)
		g_set_error(error, MV_ERROR, MV_ERR_CANCELLED,
		            "store %d: indexing cancelled after %lld of %lld messages; the index is usable, "
		            "and the rest is indexed by the next write to the store or RebuildStoreIndex",
		            s->id, (long long)done, (long long)total);
	return -1;
}

/* A chunk of the catch-up, numbered for the fault point (base.h). */
static int catch_up_chunk(mv_store *s, GPtrArray *jobs, int *chunks, GError **error)
{
	if (!mv_fault_fails("index-catch-up", ++*chunks))
		return reindex_chunk(s, jobs, error);
	g_set_error(error, MV_ERROR, MV_ERR_IO, "injected fault index-catch-up:%d", *chunks);
	return -1;
}

int mv_store_index_catch_up_task(mv_store *s, const mv_task *task, GError **error)
{
	int64_t upto = 0, done = 0;
	int chunks = 0;
	sqlite3_stmt *st;
	if (mv_store_indexed_upto(s, &upto, error) < 0)
		return -1;
	int64_t total = 0;   /* for progress only: unknown on an error */
	if (task)
		count_unindexed(s, upto, NULL, -1, &total, NULL);
	if (mv_sql_prepare(s->db, "SELECT m.num, f.archive, f.path, f.id, m.date, c.hash, c.segment, c.offset, c.length"
	                " FROM messages m JOIN folders f ON f.id = m.folder_id JOIN contents c ON c.id = m.content_id"
	                " WHERE m.num > ? AND m.deleted = 0 ORDER BY m.num", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, upto);
	GPtrArray *jobs = g_ptr_array_new_with_free_func(reindex_job_free);
	int rc = -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		g_ptr_array_add(jobs, reindex_job_from_row(s, st));
		done++;
		if (jobs->len < CATCH_UP_CHUNK)
			continue;
		if (catch_up_chunk(s, jobs, &chunks, error) < 0 || between_chunks(s, task, done, total, error) < 0)
			goto out;
	}
	if (catch_up_chunk(s, jobs, &chunks, error) < 0 || mv_store_flush_index(s, error) < 0)
		goto out;
	if (done)
		mv_log_info("store %d: indexed %lld messages the index lacked", s->id, (long long)done);
	rc = 0;
out:
	sqlite3_finalize(st);
	g_ptr_array_free(jobs, TRUE);
	g_ptr_array_set_size(s->index_queue, 0);
	return rc;
}

int mv_store_index_catch_up(mv_store *s, GError **error)
{
	return mv_store_index_catch_up_task(s, NULL, error);
}

/* ---- documents for the index, rebuilt from content ------------------------------------------ */

void mv_store_doc_clear(mv_store_doc *h)
{
	mv_parsed_free(h->parsed);
	g_free(h->archive);
	g_free(h->folder);
	if (h->scope)
		g_string_free(h->scope, TRUE);
	if (h->raw)
		g_byte_array_unref(h->raw);
	g_free(h->to_addrs);
	memset(h, 0, sizeof *h);
}

/* The exact document the index holds (or would hold) for a message — what
 * FTS5's contentless 'delete' needs. */
int mv_store_doc_for(mv_store *s, int64_t num, const char *archive, const char *folder, int64_t folder_id,
                   int64_t date, mv_store_doc *h, GError **error)
{
	memset(h, 0, sizeof *h);
	if (mv_store_read_message(s, num, &h->raw, error) < 0)
		return -1;
	h->parsed = mv_parse_message(h->raw->data, h->raw->len, date);
	h->archive = g_strdup(archive);
	h->folder = g_strdup(folder);
	h->folder_id = folder_id;
	archive = h->archive;
	folder = h->folder;
	h->scope = g_string_new(NULL);
	mv_store_fill_scope(h->scope, archive, folder_id, h->parsed->has_attachment);
	if (!(h->to_addrs = envelope_recipients(s, num, h->parsed->to_addrs, error))) {
		mv_store_doc_clear(h);
		return -1;
	}
	h->doc = doc_from_parsed(h->parsed, num, date, archive, folder, h->scope->str, h->to_addrs);
	return 0;
}

