/* search: planning a query tree onto one store, and fanning out over stores.
 *
 * The plan keeps as much of the query as possible inside one FTS5 MATCH
 * expression, because FTS5 intersects posting lists far faster than SQL can
 * filter rows afterwards: words, phrases, prefixes, field terms, archive and
 * folder scopes (as synthetic scope tokens) and has:attachment all become
 * MATCH syntax.  Only what FTS5 cannot express (dates, sizes, a pure
 * negation, an OR mixing text with dates) becomes SQL, with a MATCH
 * sub-select where a text term sits inside such an expression.
 *
 * The --archive option (mv_search_options.archive) is not a second way of
 * scoping: it joins the query as its own `archive:NAME` term, so both
 * match archive names by the one rule of the scope token — the whole
 * name, case-insensitively. */
#include "search/search.h"
#include "search/prefix_cost.h"
#include "search/prefix_terms.h"
#include "search/term_rank.h"
#include "mime/mime.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct mv_searcher {
	mv_instance *inst;
	GPtrArray *stores; /* mv_store* */
	int unopened;      /* stores that would not open (logged): an answer's coverage counts them */
};

void mv_search_hit_free(mv_search_hit *h)
{
	if (!h)
		return;
	g_free(h->from);
	g_free(h->to);
	g_free(h->subject);
	g_free(h->archive);
	g_free(h->folder);
	g_free(h->message_id);
	g_free(h);
}

/* ---- plan ------------------------------------------------------------------------ */

typedef struct plan {
	mv_store *store;
	int64_t after_lo;    /* paging: the smallest order key (mv_order_key) still wanted (INT64_MIN = all) */
	int64_t bucket;      /* the index's date bucket (mv_index_date_bucket), 0 = unknown */
	int64_t format;      /* the index's format: how its synthetic tokens are spelled */
	bool nothing;        /* an archive: term names no archive of this store: no hits here */
	int64_t docid_lo, docid_hi; /* rowid range from top-level dates: [lo, hi) */
	int64_t key_lo, key_hi;     /* the same as order keys (a bucket of one second) */
	GString *sql;        /* WHERE clause (SQL), "" = none */
	GPtrArray *params;   /* char* text params for '?' in order of appearance in sql */
	GArray *int_params;  /* parallel: which params are integers */
	int64_t prefix_bytes; /* what the prefix terms so far make FTS5 merge (prefix_cost.c) */
	bool prefix_by_name;  /* a prefix may be asked as the OR of its words (prefix_terms.c): no ranking */
} plan;

/* More words than this and a prefix goes to FTS5 as a prefix: each word is
 * a seek in every segment before the first row. */
#define MAX_NAMED_PREFIX_TERMS 128

static _Atomic int64_t max_prefix_bytes = (int64_t)MV_DEFAULT_SEARCH_MAX_PREFIX_MB << 20;

void mv_search_set_max_prefix_bytes(int64_t bytes)
{
	atomic_store(&max_prefix_bytes, bytes < 0 ? 0 : bytes);
}

/* The columns an unfielded word is asked in: one list for the MATCH and
 * for term_rank.c's phrases. */
#define ANY_COLUMNS "subject sender recipients cc bcc body attachment"

static const char *field_columns(mv_query_field f)
{
	switch (f) {
	case MV_F_FROM: return "sender";
	case MV_F_TO: return "recipients";
	case MV_F_CC: return "cc";
	case MV_F_BCC: return "bcc";
	case MV_F_SUBJECT: return "subject";
	case MV_F_BODY: return "body";
	case MV_F_ATTACHMENT: return "attachment";
	case MV_F_MESSAGEID: return "messageid";
	default: return "{" ANY_COLUMNS "}";
	}
}

static void append_fts_string(GString *out, const char *text)
{
	g_string_append_c(out, '"');
	for (const char *p = text; *p; p++) {
		if (*p == '"')
			g_string_append_c(out, '"');
		g_string_append_c(out, *p);
	}
	g_string_append_c(out, '"');
}

/* True when the whole subtree can be said in FTS5 syntax. */
static bool fts_pure(const mv_query *q)
{
	switch (q->kind) {
	case MV_Q_TERM:
	case MV_Q_PHRASE:
	case MV_Q_HAS_ATTACHMENT:
		return true;
	case MV_Q_AND:
	case MV_Q_OR: {
		bool any_positive = false;
		for (guint i = 0; i < q->children->len; i++) {
			const mv_query *c = q->children->pdata[i];
			if (c->kind == MV_Q_NOT && q->kind == MV_Q_AND) {
				if (!fts_pure(c->children->pdata[0]))
					return false;
				continue;
			}
			if (!fts_pure(c))
				return false;
			any_positive = true;
		}
		return any_positive;
	}
	default:
		return false;
	}
}

/* folder:X scopes to the folders X names and everything below them: the
 * path X (with or without its archive in front) or, as a path's tail, a
 * folder called X at any depth ("folder:Projects" finds Inbox/Projects and
 * Inbox/Projects/2024 alike).  folder:X* takes every path beginning so. */
static int scope_folder_expr(plan *p, const mv_query *q, GString *out, GError **error)
{
	sqlite3 *db = mv_store_db(p->store);
	sqlite3_stmt *st;
	const char *sql = q->prefix ?
		"SELECT id FROM folders WHERE lower(path) LIKE lower(?1) || '%' ESCAPE '\\'"
		" OR lower(archive || '/' || path) LIKE lower(?1) || '%' ESCAPE '\\'" :
		"SELECT id FROM folders WHERE lower(path) = lower(?1) OR lower(path) LIKE lower(?2) || '/%' ESCAPE '\\'"
		" OR lower(archive || '/' || path) = lower(?1) OR lower(archive || '/' || path) LIKE lower(?2) || '/%' ESCAPE '\\'"
		" OR lower(path) LIKE '%/' || lower(?2) ESCAPE '\\'"
		" OR lower(path) LIKE '%/' || lower(?2) || '/%' ESCAPE '\\'";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "folder lookup");
		return -1;
	}
	GString *escaped = g_string_new(NULL);
	for (const char *c = q->text; *c; c++) {
		if (*c == '%' || *c == '_' || *c == '\\')
			g_string_append_c(escaped, '\\');
		g_string_append_c(escaped, *c);
	}
	sqlite3_bind_text(st, 1, q->prefix ? escaped->str : q->text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, escaped->str, -1, SQLITE_TRANSIENT);
	g_string_free(escaped, TRUE);
	int n = 0;
	g_string_append(out, "(");
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *tok = mv_scope_folder_token(sqlite3_column_int64(st, 0), p->format);
		g_string_append(out, n++ ? " OR " : "");
		mv_index_append_token_term(out, "scope", tok, p->format);
		g_free(tok);
	}
	sqlite3_finalize(st);
	if (n == 0)
		g_string_append(out, "scope : znomatch");
	g_string_append(out, ")");
	return 0;
}

static int fts_expr(plan *p, const mv_query *q, GString *out, GError **error);

static bool is_address_field(mv_query_field f)
{
	return f == MV_F_FROM || f == MV_F_TO || f == MV_F_CC || f == MV_F_BCC;
}

static mv_address_role address_role(mv_query_field f)
{
	switch (f) {
	case MV_F_FROM: return MV_ADDR_FROM;
	case MV_F_CC: return MV_ADDR_CC;
	case MV_F_BCC: return MV_ADDR_BCC;
	default: return MV_ADDR_TO;
	}
}

/* local@domain without spaces: matched as one address token. */
static bool looks_like_address(const char *text)
{
	const char *at = strchr(text, '@');
	return at && at != text && at[1] && !strchr(at + 1, '@') && !strpbrk(text, " \t<>");
}

/* Refuses a prefix whose terms, with the query's earlier ones, would make
 * FTS5 merge more than the bound in memory: it cannot be stopped once
 * started, so a query like `c*` at a million messages would take seconds and
 * hundreds of MB of whichever process runs it. */
static int bound_prefix(plan *p, const char *text, GError **error)
{
	int64_t bound = atomic_load(&max_prefix_bytes);
	if (bound == 0)
		return 0;
	int64_t bytes = 0;
	if (mv_prefix_index_bytes(mv_store_db(p->store), "ix.", text, &bytes, error) < 0)
		return -1;
	p->prefix_bytes += bytes;
	if (p->prefix_bytes <= bound)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_LIMIT,
	            "'%.64s*' is too broad to search: the words it begins match %lld MB of the index%s, above the "
	            "limit of %lld MB; give more letters",
	            text, (long long)((p->prefix_bytes + (1 << 20) - 1) >> 20),
	            p->prefix_bytes > bytes ? " together with the query's other prefixes" : "", (long long)(bound >> 20));
	return -1;
}

/* The words of this store's index that begin with key (up to
 * MAX_NAMED_PREFIX_TERMS, else none in *terms_r), as prefix_terms.c reads
 * them; none either when a leaf is damaged, which is logged: FTS5, reading
 * it, judges for itself. */
static int prefix_words(const plan *p, const GString *key, GPtrArray **terms_r, GError **error)
{
	GError *err = NULL;
	if (mv_prefix_terms(mv_store_db(p->store), "ix.", key, MAX_NAMED_PREFIX_TERMS, terms_r, &err) == 0)
		return 0;
	if (!g_error_matches(err, MV_ERROR, MV_ERR_CORRUPT)) {
		g_propagate_error(error, err);
		return -1;
	}
	mv_log_warn("store %d: %s; the prefix is left to FTS5", mv_store_id(p->store), err->message);
	g_error_free(err);
	return 0;
}

/* `col : ("w1" OR "w2" ...)` for the one-word prefix `text*`: 1 when
 * written, 0 when the prefix is better left to FTS5 (a phrase's last word,
 * no word or too many in this store's index, or a leaf the reader of
 * fts5_leaf.c finds damaged: FTS5, reading it, judges for itself). */
static int named_prefix(plan *p, const char *col, const char *text, GString *out, GError **error)
{
	GString *key = g_string_new(NULL);
	GPtrArray *terms = NULL;
	int tokens = 0;
	int rc = mv_prefix_key(mv_store_db(p->store), text, key, &tokens, error);
	if (rc == 0 && tokens == 1 && key->len)
		rc = prefix_words(p, key, &terms, error);
	g_string_free(key, TRUE);
	if (rc < 0 || !terms || terms->len == 0) {
		if (terms)
			g_ptr_array_free(terms, TRUE);
		return rc;
	}
	g_string_append_printf(out, "%s : (", col);
	for (guint i = 0; i < terms->len; i++) {
		if (i)
			g_string_append(out, " OR ");
		append_fts_string(out, terms->pdata[i]);
	}
	g_string_append_c(out, ')');
	g_ptr_array_free(terms, TRUE);
	return 1;
}

static int fts_term(plan *p, const mv_query *q, GString *out, GError **error)
{
	if (q->kind == MV_Q_HAS_ATTACHMENT) {
		mv_index_append_token_term(out, "scope", mv_scope_has_attachment_token(p->format), p->format);
		return 0;
	}
	if (q->field == MV_F_FOLDER)
		return scope_folder_expr(p, q, out, error);
	if (q->field == MV_F_ARCHIVE && !q->prefix) {
		char *tok = mv_scope_archive_token(q->text, p->format);
		mv_index_append_token_term(out, "scope", tok, p->format);
		g_free(tok);
		return 0;
	}
	const char *col = q->field == MV_F_ARCHIVE ? "archive" : field_columns(q->field);
	if (is_address_field(q->field) && !q->prefix && looks_like_address(q->text)) {
		char *norm = mv_address_normalize(q->text);
		char *tok = mv_address_token(norm, address_role(q->field), p->format);
		mv_index_append_token_term(out, col, tok, p->format);
		g_free(tok);
		g_free(norm);
		return 0;
	}
	const char *text = q->text;
	char *stripped = NULL;
	if (q->field == MV_F_MESSAGEID) {
		stripped = g_strdup(text);
		g_strstrip(g_strdelimit(stripped, "<>", ' '));
		text = stripped;
	}
	/* A prefix asked by its words is read lazily, never merged: no bound. */
	int named = q->prefix && q->kind == MV_Q_TERM && p->prefix_by_name ? named_prefix(p, col, text, out, error) : 0;
	if (named < 0 || (q->prefix && !named && bound_prefix(p, text, error) < 0)) {
		g_free(stripped);
		return -1;
	}
	if (named) {
		g_free(stripped);
		return 0;
	}
	g_string_append_printf(out, "%s : ", col);
	append_fts_string(out, text);
	if (q->prefix)
		g_string_append_c(out, '*');
	g_free(stripped);
	return 0;
}

static int fts_expr(plan *p, const mv_query *q, GString *out, GError **error)
{
	if (q->kind == MV_Q_TERM || q->kind == MV_Q_PHRASE || q->kind == MV_Q_HAS_ATTACHMENT)
		return fts_term(p, q, out, error);
	/* AND / OR: positives joined, then "NOT x" for each negated child. */
	const char *op = q->kind == MV_Q_AND ? " AND " : " OR ";
	int n = 0;
	g_string_append_c(out, '(');
	for (guint i = 0; i < q->children->len; i++) {
		const mv_query *c = q->children->pdata[i];
		if (c->kind == MV_Q_NOT)
			continue;
		if (n++)
			g_string_append(out, op);
		if (fts_expr(p, c, out, error) < 0)
			return -1;
	}
	for (guint i = 0; i < q->children->len; i++) {
		const mv_query *c = q->children->pdata[i];
		if (c->kind != MV_Q_NOT)
			continue;
		g_string_append(out, " NOT ");
		if (fts_expr(p, c->children->pdata[0], out, error) < 0)
			return -1;
	}
	g_string_append_c(out, ')');
	return 0;
}

static void add_text_param(plan *p, char *text)
{
	g_ptr_array_add(p->params, text);
	int is_int = 0;
	g_array_append_val(p->int_params, is_int);
}

static void add_int_param(plan *p, int64_t v)
{
	g_ptr_array_add(p->params, g_strdup_printf("%lld", (long long)v));
	int is_int = 1;
	g_array_append_val(p->int_params, is_int);
}

static const char *cmp_sql(mv_query_cmp c)
{
	switch (c) {
	case MV_CMP_LT: return "<";
	case MV_CMP_LE: return "<=";
	case MV_CMP_GT: return ">";
	case MV_CMP_GE: return ">=";
	default: return "=";
	}
}

/* Generic SQL for any subtree; text parts become MATCH sub-selects. */
static int sql_expr(plan *p, const mv_query *q, GString *out, GError **error)
{
	switch (q->kind) {
	case MV_Q_DATE:
		g_string_append_printf(out, "m.date %s ?", cmp_sql(q->cmp));
		add_int_param(p, q->value);
		return 0;
	case MV_Q_SIZE:
		g_string_append_printf(out, "m.size %s ?", cmp_sql(q->cmp));
		add_int_param(p, q->value);
		return 0;
	case MV_Q_NOT:
		g_string_append(out, "NOT (");
		if (sql_expr(p, q->children->pdata[0], out, error) < 0)
			return -1;
		g_string_append_c(out, ')');
		return 0;
	case MV_Q_AND:
	case MV_Q_OR:
		if (fts_pure(q))
			break;
		g_string_append_c(out, '(');
		for (guint i = 0; i < q->children->len; i++) {
			if (i)
				g_string_append(out, q->kind == MV_Q_AND ? " AND " : " OR ");
			if (sql_expr(p, q->children->pdata[i], out, error) < 0)
				return -1;
		}
		g_string_append_c(out, ')');
		return 0;
	default:
		break;
	}
	GString *match = g_string_new(NULL);
	if (fts_expr(p, q, match, error) < 0) {
		g_string_free(match, TRUE);
		return -1;
	}
	/* The index's rowid is the docid (date and number, mv_index_docid):
	 * the message number is its low bits. */
	g_string_append_printf(out, "m.num IN (SELECT rowid & %lld FROM ix.fts WHERE fts MATCH ?)",
	                       (long long)MV_INDEX_NUMBER_MASK);
	add_text_param(p, g_string_free(match, FALSE));
	return 0;
}

/* A date conjunct as a range of keys that order by date bucket, newest
 * first (mv_index_docid_in): the FTS rowid (the index's bucket) skips hits
 * outside it, and the order key (a bucket of one second) is the range of
 * the messages_order index.  The range takes the whole buckets the dates
 * touch; the conjunct's own SQL (m.date) decides within them.  The bucket
 * holding d spans [start(d), start(d - bucket)). */
static void narrow_range(int64_t bucket, const mv_query *c, int64_t *lo_r, int64_t *hi_r)
{
	/* Dates in the first buckets after 1970 (and before it: clamped to 0)
	 * are left to the SQL filter alone, as are all when the bucket is unknown. */
	if (!bucket || c->kind != MV_Q_DATE || c->value <= 2 * bucket || c->value > MV_INDEX_MAX_DATE - 1)
		return;
	int64_t v = c->value, b = bucket, lo = INT64_MIN, hi = INT64_MAX;
	switch (c->cmp) {
	case MV_CMP_GE: hi = mv_index_docid_in(b, v - b, 0); break;       /* date >= v */
	case MV_CMP_GT: hi = mv_index_docid_in(b, v + 1 - b, 0); break;   /* date >= v + 1 */
	case MV_CMP_LT: lo = mv_index_docid_in(b, v - 1, 0); break;       /* date <= v - 1 */
	case MV_CMP_LE: lo = mv_index_docid_in(b, v, 0); break;           /* date <= v */
	case MV_CMP_EQ:
		lo = mv_index_docid_in(b, v, 0);
		hi = mv_index_docid_in(b, v - b, 0);
		break;
	}
	*lo_r = MAX(*lo_r, lo);
	*hi_r = MIN(*hi_r, hi);
}

static void narrow_docids(plan *p, const mv_query *c)
{
	narrow_range(p->bucket, c, &p->docid_lo, &p->docid_hi);
	narrow_range(1, c, &p->key_lo, &p->key_hi);
}

/* How an archive: term relates to this store: absent (nothing to search
 * here), the only archive in it, or one of several.  Names compare as the
 * scope token (mv_scope_archive_token) does, lower-cased whole, so that
 * this shortcut never disagrees with the token it stands in for. */
typedef enum { SCOPE_ABSENT, SCOPE_WHOLE, SCOPE_PART } archive_scope;

static archive_scope scope_in_store(mv_store *store, const char *archive)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(mv_store_db(store), "SELECT DISTINCT archive FROM folders", -1, &st, NULL) != SQLITE_OK)
		return SCOPE_PART;
	char *want = g_utf8_strdown(archive, -1);
	int64_t archives = 0, matching = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char *lower = g_utf8_strdown(name ? name : "", -1);
		archives++;
		matching += strcmp(lower, want) == 0;
		g_free(lower);
	}
	sqlite3_finalize(st);
	g_free(want);
	/* A failed read only costs the shortcut: the scope token still decides. */
	if (step != SQLITE_DONE)
		return SCOPE_PART;
	return matching == 0 ? SCOPE_ABSENT : archives == matching ? SCOPE_WHOLE : SCOPE_PART;
}

static bool is_archive_scope(const mv_query *c)
{
	return (c->kind == MV_Q_TERM || c->kind == MV_Q_PHRASE) && c->field == MV_F_ARCHIVE && !c->prefix;
}

/* Splits the root into the FTS-pure conjuncts (one MATCH) and the rest (SQL). */
static int build_plan(plan *p, const mv_query *root, GString *match, GError **error)
{
	GPtrArray *conj = g_ptr_array_new();
	if (root->kind == MV_Q_AND)
		for (guint i = 0; i < root->children->len; i++)
			g_ptr_array_add(conj, root->children->pdata[i]);
	else
		g_ptr_array_add(conj, (gpointer)root);
	/* archive:X where X is all this store holds selects everything: leave
	 * it out rather than intersect a posting list as long as the store.
	 * Where X is not in this store at all, nothing here can match. */
	for (guint i = conj->len; i-- > 0;) {
		const mv_query *c = conj->pdata[i];
		if (!is_archive_scope(c))
			continue;
		archive_scope scope = scope_in_store(p->store, c->text);
		if (scope == SCOPE_ABSENT)
			p->nothing = true;
		if (scope == SCOPE_WHOLE)
			g_ptr_array_remove_index(conj, i);
	}
	if (p->nothing) {
		g_ptr_array_free(conj, TRUE);
		return 0;
	}

	int rc = 0;
	int positives = 0;
	for (guint i = 0; i < conj->len && rc == 0; i++) {
		const mv_query *c = conj->pdata[i];
		if (c->kind != MV_Q_NOT && fts_pure(c)) {
			if (positives++)
				g_string_append(match, " AND ");
			rc = fts_expr(p, c, match, error);
		}
	}
	for (guint i = 0; i < conj->len; i++)
		narrow_docids(p, conj->pdata[i]);
	for (guint i = 0; i < conj->len && rc == 0; i++) {
		const mv_query *c = conj->pdata[i];
		if (c->kind != MV_Q_NOT && fts_pure(c))
			continue;
		if (c->kind == MV_Q_NOT && positives > 0 && fts_pure(c->children->pdata[0])) {
			g_string_append(match, " NOT ");
			rc = fts_expr(p, c->children->pdata[0], match, error);
			continue;
		}
		if (p->sql->len)
			g_string_append(p->sql, " AND ");
		rc = sql_expr(p, c, p->sql, error);
	}
	g_ptr_array_free(conj, TRUE);
	return rc;
}

/* The columns hit_from_row reads, by position, before the rank (9) and
 * has_attachment (10) each statement adds in its own way. */
#define HIT_COLUMNS "m.num, m.date, m.size, m.sender, m.recipients, m.subject, m.message_id, f.archive, f.path, "

static mv_search_hit *hit_from_row(sqlite3_stmt *st, int store_id)
{
	mv_search_hit *h = g_new0(mv_search_hit, 1);
	h->store_id = store_id;
	h->number = sqlite3_column_int64(st, 0);
	h->date = sqlite3_column_int64(st, 1);
	h->size = sqlite3_column_int64(st, 2);
	h->from = g_strdup((const char *)sqlite3_column_text(st, 3));
	h->to = g_strdup((const char *)sqlite3_column_text(st, 4));
	h->subject = g_strdup((const char *)sqlite3_column_text(st, 5));
	h->message_id = g_strdup((const char *)sqlite3_column_text(st, 6));
	h->archive = g_strdup((const char *)sqlite3_column_text(st, 7));
	h->folder = g_strdup((const char *)sqlite3_column_text(st, 8));
	h->rank = sqlite3_column_double(st, 9);
	h->has_attachment = sqlite3_column_int(st, 10) != 0;
	return h;
}

json_t *mv_search_hit_json(const mv_search_hit *h)
{
	char *id = mv_message_id_format(h->store_id, h->number);
	char *date = mv_format_time_utc(h->date);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:b}",
	                      "id", id, "date", date, "from", h->from, "to", h->to, "subject", h->subject,
	                      "archive", h->archive, "folder", h->folder, "size", (json_int_t)h->size,
	                      "messageId", h->message_id, "hasAttachment", h->has_attachment);
	g_free(id);
	g_free(date);
	return o;
}

/* The order key of a hit (mv_order_key) in SQL: the same newest-first order
 * whether FTS5 or the messages table is walked. */
#define ORDER_KEY_SQL MV_ORDER_KEY_SQL("m.")

/* bm25 with the scope column (the last) weighing nothing: its tokens say
 * where a message is filed, not what it says, so that archive:, folder:,
 * has:attachment and a caller's readable scope select without scoring. */
#define BM25_SQL "bm25(fts, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0)"

/* The order-key range a hit must lie in: `after`, and over the db alone
 * the top-level dates too, as the messages_order index's range (the FTS
 * path has them as its rowid range, and m.date decides within it). */
static int64_t key_lo(const plan *p, bool use_fts)
{
	return use_fts ? p->after_lo : MAX(p->after_lo, p->key_lo);
}

static int64_t key_hi(const plan *p, bool use_fts)
{
	return use_fts ? INT64_MAX : p->key_hi;
}

/* Newest first through the index: its rowid orders by date bucket, so the
 * rows are read up to the end of the bucket that completes the page and
 * sorted exactly (read_hits). */
static bool by_bucket(bool use_fts, const mv_search_options *opts)
{
	return use_fts && opts->sort != MV_SORT_RELEVANCE;
}

/* The caller's folder filter (readable_set's ids), if any, as a condition on m. */
static void append_folder_filter(GString *sql, const char *ids)
{
	if (ids)
		g_string_append_printf(sql, " AND m.folder_id IN (%s)", ids);
}

static void append_select(GString *sql, const plan *p, bool use_fts, const mv_search_options *opts,
                          const char *folder_filter)
{
	g_string_append(sql, "SELECT " HIT_COLUMNS);
	if (use_fts) {
		/* CROSS JOIN keeps the FTS table as the outer loop, so that the
		 * date-ordered rowid gives "newest first" without a sort (but
		 * within a date bucket: see read_hits). */
		/* bm25 only where it orders: its first call counts every hit of
		 * each phrase for the IDF, a whole doclist read that a page of the
		 * newest hits never needs (bench/RESULTS.md, issue 17). */
		g_string_append_printf(sql, "%s, m.has_attachment, fts.rowid FROM ix.fts CROSS JOIN messages m"
		                       " ON m.num = (fts.rowid & %lld)",
		                       opts->sort == MV_SORT_RELEVANCE ? BM25_SQL : "0.0", (long long)MV_INDEX_NUMBER_MASK);
	} else {
		g_string_append(sql, "0.0, m.has_attachment FROM messages m");
	}
	g_string_append(sql, " JOIN folders f ON f.id = m.folder_id WHERE m.deleted = 0");
	if (use_fts)
		g_string_append(sql, " AND fts MATCH ? AND fts.rowid >= ? AND fts.rowid < ?");
	if (key_lo(p, use_fts) != INT64_MIN)
		g_string_append(sql, " AND " ORDER_KEY_SQL " >= ?");
	if (key_hi(p, use_fts) != INT64_MAX)
		g_string_append(sql, " AND " ORDER_KEY_SQL " < ?");
	if (p->sql->len)
		g_string_append_printf(sql, " AND (%s)", p->sql->str);
	append_folder_filter(sql, folder_filter);
	if (use_fts && opts->sort == MV_SORT_RELEVANCE)
		g_string_append(sql, " ORDER BY " BM25_SQL ", " ORDER_KEY_SQL);
	else if (use_fts)
		g_string_append(sql, " ORDER BY fts.rowid");   /* read_hits stops and sorts */
	else
		g_string_append(sql, " ORDER BY " ORDER_KEY_SQL);
	if (opts->limit > 0 && !by_bucket(use_fts, opts))
		g_string_append_printf(sql, " LIMIT %lld", (long long)(opts->limit + opts->offset));
}

/* The rowid bound `after` gives: the start of the bucket of the date its
 * order key names. */
static int64_t after_docid_lo(const plan *p)
{
	if (p->after_lo == INT64_MIN || !p->bucket)
		return INT64_MIN;
	return mv_index_docid_in(p->bucket, mv_order_key_date(p->after_lo), 0);
}

static void bind_params(sqlite3_stmt *st, const plan *p, bool use_fts, const char *match)
{
	int idx = 1;
	if (use_fts) {
		sqlite3_bind_text(st, idx++, match, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, idx++, MAX(p->docid_lo, after_docid_lo(p)));
		sqlite3_bind_int64(st, idx++, p->docid_hi);
	}
	if (key_lo(p, use_fts) != INT64_MIN)
		sqlite3_bind_int64(st, idx++, key_lo(p, use_fts));
	if (key_hi(p, use_fts) != INT64_MAX)
		sqlite3_bind_int64(st, idx++, key_hi(p, use_fts));
	for (guint i = 0; i < p->params->len; i++, idx++) {
		if (g_array_index(p->int_params, int, i))
			sqlite3_bind_int64(st, idx, g_ascii_strtoll(p->params->pdata[i], NULL, 10));
		else
			sqlite3_bind_text(st, idx, p->params->pdata[i], -1, SQLITE_STATIC);
	}
}

/* The permission filter of a restricted caller, in two forms.
 *
 * `ids`: the ids of this store's folders the caller may read, as an SQL
 * list that filters the message rows inside the query, before LIMIT.  It
 * always applies, and alone decides what a caller may see.
 *
 * `scope`: the same set as index scope tokens for the MATCH — the archive
 * token of an archive whose every folder is readable, the folder token of
 * each other readable folder — or NULL when that would take more than
 * SCOPE_TOKENS_MAX tokens.  With it FTS5 intersects the caller's part of
 * the index instead of the query walking every hit past the SQL filter:
 * newest first reads 50 of the caller's hits, not 50 of everyone's, and
 * relevance can take its candidates from the index alone (relevance_top).
 * The scope column weighs nothing in bm25 (BM25_SQL), so the tokens leave
 * scores as they were. */
typedef struct readable_set {
	GString *ids;      /* NULL when every folder is readable (no filter) */
	GString *scope;    /* FTS5 expression over the scope column, or NULL */
	GPtrArray *scope_tokens; /* its tokens, with it */
	bool none;         /* no folder is readable */
} readable_set;

#define SCOPE_TOKENS_MAX 16

typedef struct folder_access {
	int64_t id;
	char *archive;
	bool readable;
} folder_access;

static void folder_access_clear(gpointer p)
{
	g_free(((folder_access *)p)->archive);
}

/* Every folder of the store with whether the caller may read it.  Folders
 * are few next to messages, so they are checked one by one. */
static GArray *folders_with_access(mv_store *store, const mv_access *access, GError **error)
{
	sqlite3 *db = mv_store_db(store);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT id, archive, path FROM folders", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "folder privileges");
		return NULL;
	}
	GArray *all = g_array_new(FALSE, FALSE, sizeof(folder_access));
	g_array_set_clear_func(all, folder_access_clear);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *archive = (const char *)sqlite3_column_text(st, 1), *path = (const char *)sqlite3_column_text(st, 2);
		folder_access f = { sqlite3_column_int64(st, 0), g_strdup(archive ? archive : ""), false };
		f.readable = (mv_access_folder(access, f.archive, path ? path : "") & MV_FOLDER_READ) != 0;
		g_array_append_val(all, f);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		mv_sql_set_error(error, db, "folder privileges");
		g_array_free(all, TRUE);
		return NULL;
	}
	return all;
}

static void add_scope_token(GString *scope, GPtrArray *tokens, char *token, int64_t format)
{
	g_string_append(scope, scope->len ? " OR " : "");
	mv_index_append_token_term(scope, "scope", token, format);
	g_ptr_array_add(tokens, token);
}

/* The scope tokens of the readable folders, or NULL past SCOPE_TOKENS_MAX. */
static GString *scope_of(GArray *folders, int64_t format, GPtrArray **tokens_r)
{
	GHashTable *partial = g_hash_table_new(g_str_hash, g_str_equal);   /* archives with an unreadable folder */
	for (guint i = 0; i < folders->len; i++) {
		const folder_access *f = &g_array_index(folders, folder_access, i);
		if (!f->readable)
			g_hash_table_add(partial, f->archive);
	}
	GHashTable *whole = g_hash_table_new(g_str_hash, g_str_equal);
	GString *scope = g_string_new(NULL);
	GPtrArray *tokens = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < folders->len && tokens->len <= SCOPE_TOKENS_MAX; i++) {
		const folder_access *f = &g_array_index(folders, folder_access, i);
		if (!f->readable)
			continue;
		if (!g_hash_table_contains(partial, f->archive)) {
			if (g_hash_table_add(whole, f->archive))
				add_scope_token(scope, tokens, mv_scope_archive_token(f->archive, format), format);
		} else {
			add_scope_token(scope, tokens, mv_scope_folder_token(f->id, format), format);
		}
	}
	g_hash_table_destroy(partial);
	g_hash_table_destroy(whole);
	if (tokens->len > SCOPE_TOKENS_MAX) {
		g_string_free(scope, TRUE);
		g_ptr_array_free(tokens, TRUE);
		return NULL;
	}
	*tokens_r = tokens;
	return scope;
}

static void readable_set_clear(readable_set *r)
{
	if (r->ids)
		g_string_free(r->ids, TRUE);
	if (r->scope)
		g_string_free(r->scope, TRUE);
	if (r->scope_tokens)
		g_ptr_array_free(r->scope_tokens, TRUE);
	memset(r, 0, sizeof *r);
}

/* The caller's readable set for this store; nothing set for a caller who
 * may read everything. */
static int readable_set_of(mv_store *store, int64_t format, const mv_access *access, readable_set *r, GError **error)
{
	memset(r, 0, sizeof *r);
	if (mv_access_unrestricted(access))
		return 0;
	GArray *folders = folders_with_access(store, access, error);
	if (!folders)
		return -1;
	GString *ids = g_string_new(NULL);
	bool all = true;
	for (guint i = 0; i < folders->len; i++) {
		const folder_access *f = &g_array_index(folders, folder_access, i);
		all = all && f->readable;
		if (f->readable)
			g_string_append_printf(ids, "%s%lld", ids->len ? "," : "", (long long)f->id);
	}
	r->none = ids->len == 0;
	if (all || r->none) {
		g_string_free(ids, TRUE);
	} else {
		r->ids = ids;
		r->scope = scope_of(folders, format, &r->scope_tokens);
	}
	g_array_free(folders, TRUE);
	return 0;
}

/* The readable set narrowed to one folder of the caller's (opts->folder):
 * its id for the filter and its token for the MATCH, so that a search in a
 * small folder of a large archive (an IMAP client's SEARCH) reads that
 * folder's hits, not the archive's.  None when this store has no such
 * folder or the caller may not read it. */
static int narrow_to_folder(mv_store *store, int64_t format, const mv_search_options *opts, readable_set *r,
                            GError **error)
{
	sqlite3 *db = mv_store_db(store);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT id FROM folders WHERE archive = ? AND path = ?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "folder lookup");
		return -1;
	}
	sqlite3_bind_text(st, 1, opts->archive ? opts->archive : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, opts->folder, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		mv_sql_set_error(error, db, "folder lookup");
		return -1;
	}
	bool readable = step == SQLITE_ROW && (mv_access_unrestricted(opts->access) ||
	                (mv_access_folder(opts->access, opts->archive ? opts->archive : "", opts->folder) & MV_FOLDER_READ));
	readable_set_clear(r);
	r->none = !readable;
	if (readable) {
		r->ids = g_string_new(NULL);
		g_string_printf(r->ids, "%lld", (long long)id);
		char *token = mv_scope_folder_token(id, format);
		r->scope = g_string_new(NULL);
		r->scope_tokens = g_ptr_array_new_with_free_func(g_free);
		add_scope_token(r->scope, r->scope_tokens, token, format);
	}
	return 0;
}

static gint by_date_desc(gconstpointer a, gconstpointer b);

/* The statement's hits appended to hits.  Walked through the index in
 * date-bucket order, the rows of one bucket come by number, not by date:
 * they are read to the end of the bucket in which the page (limit + offset)
 * fills, and this store's hits are sorted into exact newest-first order and
 * cut to the page. */
static int read_hits(sqlite3_stmt *st, int store_id, bool bucketed, const mv_search_options *opts, GPtrArray *hits)
{
	guint first = hits->len;
	guint64 want = opts->limit > 0 ? (guint64)opts->limit + (guint64)opts->offset : 0;
	int64_t bucket = -1;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (bucketed) {
			int64_t row_bucket = sqlite3_column_int64(st, 11) >> MV_INDEX_NUMBER_BITS;
			if (want && hits->len - first >= want && row_bucket != bucket)
				break;
			bucket = row_bucket;
		}
		g_ptr_array_add(hits, hit_from_row(st, store_id));
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return -1;
	if (bucketed && hits->len - first > 1) {
		qsort(hits->pdata + first, hits->len - first, sizeof(gpointer), by_date_desc);
		if (want && hits->len - first > want)
			g_ptr_array_set_size(hits, first + (guint)want);
	}
	return 0;
}

/* ---- relevance: the page's candidates from the index alone --------------------------- */

/* Relevance reads every hit, for its bm25 score.  The general statement
 * also joins every hit to its messages row before it sorts, which costs as
 * much again: at 1M messages a common word has ~200,000 hits.  When the
 * whole query is in the MATCH (no SQL condition, no `after`, and a folder
 * filter only with the caller's scope in the MATCH too, readable_set), the
 * page's candidates are the index's own top scores, and only they are read
 * from the db, through the folder filter if any.  That is the general order only
 * when no hit outside the candidates ties the last one's score (the general
 * order breaks ties by date) and every candidate is a live row the caller
 * may read: otherwise the caller runs the general statement. */
static gint by_rank(gconstpointer a, gconstpointer b);

typedef mv_scored scored;

/* Deeper pages than this take the general statement (and bound the candidates' array). */
#define RELEVANCE_TOP_MAX 10000

static bool relevance_top_applies(const plan *p, const mv_search_options *opts, const readable_set *readable)
{
	return opts->sort == MV_SORT_RELEVANCE && opts->limit > 0 &&
	       (guint64)opts->limit + (guint64)opts->offset <= RELEVANCE_TOP_MAX && p->sql->len == 0 &&
	       (!readable->ids || readable->scope) && p->after_lo == INT64_MIN;
}

/* The best `want` + 1 scores, best first; equal ones by rowid (split_tie). */
static int top_scores(sqlite3 *db, const plan *p, const char *match, guint64 want, GArray *top)
{
	char *sql = g_strdup_printf("SELECT rowid, " BM25_SQL " FROM ix.fts WHERE fts MATCH ? AND rowid >= ? AND rowid < ?"
	                            " ORDER BY 2, 1 LIMIT %" G_GUINT64_FORMAT, want + 1);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	g_free(sql);
	if (rc != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, p->docid_lo);
	sqlite3_bind_int64(st, 3, p->docid_hi);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		scored one = { sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1) };
		g_array_append_val(top, one);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The candidates' rows appended to hits; false when one is not a live row
 * in a folder of `ids` (NULL: any folder). */
static int candidate_hits(sqlite3 *db, int store_id, const GArray *top, guint n, const GString *ids, GPtrArray *hits,
                          bool *live_r)
{
	sqlite3_stmt *st = NULL;
	GString *sql = g_string_new("SELECT " HIT_COLUMNS "?, m.has_attachment FROM messages m JOIN folders f"
	                            " ON f.id = m.folder_id WHERE m.num = ? AND m.deleted = 0");
	append_folder_filter(sql, ids ? ids->str : NULL);
	int prepared = sqlite3_prepare_v2(db, sql->str, -1, &st, NULL);
	g_string_free(sql, TRUE);
	if (prepared != SQLITE_OK)
		return -1;
	*live_r = true;
	int rc = SQLITE_DONE;
	for (guint i = 0; i < n && *live_r; i++) {
		const scored *c = &g_array_index(top, scored, i);
		sqlite3_reset(st);
		sqlite3_bind_double(st, 1, c->rank);
		sqlite3_bind_int64(st, 2, mv_index_docid_number(c->rowid));
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			g_ptr_array_add(hits, hit_from_row(st, store_id));
		else
			*live_r = false;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* *answered_r false: the general statement must answer (nothing added). */
/* Whether the page's edge, between its last candidate and the next, cuts
 * through hits the general order (score, then newest first) might put the
 * other way.  The candidates come by score, then rowid: newest date bucket
 * first, then by number.  Equal scores in different buckets are therefore
 * in the general order already; only equal scores in one bucket (an hour)
 * may not be, and then the general statement decides.  In an index that
 * buckets by the second the rowid order is the general order. */
static bool split_tie(const plan *p, const scored *last, const scored *next)
{
	if (last->rank != next->rank)
		return false;
	bool same_bucket = last->rowid >> MV_INDEX_NUMBER_BITS == next->rowid >> MV_INDEX_NUMBER_BITS;
	return p->bucket != 1 && (same_bucket || p->bucket == 0);
}

static int relevance_top(mv_store *store, const plan *p, const char *match, const GString *ids,
                         const mv_search_options *opts, mv_term_rank_request *ranked, GPtrArray *hits,
                         bool *answered_r, GError **error)
{
	sqlite3 *db = mv_store_db(store);
	guint64 want = (guint64)opts->limit + (guint64)opts->offset;
	GArray *top = g_array_new(FALSE, FALSE, sizeof(scored));
	guint first = hits->len;
	bool live = false, scored_here = false;
	int rc = 0;
	if (ranked) {
		ranked->want = (guint)want + 1;
		rc = mv_term_rank(store, ranked, top, &scored_here, error);
		if (rc < 0) {
			g_array_free(top, TRUE);
			*answered_r = false;
			return -1;
		}
	}
	if (!scored_here)
		rc = top_scores(db, p, match, want, top);
	bool tie = rc == 0 && top->len > want && split_tie(p, &g_array_index(top, scored, want - 1),
	                                                   &g_array_index(top, scored, want));
	if (rc == 0 && !tie)
		rc = candidate_hits(db, mv_store_id(store), top, MIN(top->len, (guint)want), ids, hits, &live);
	if (rc < 0)
		mv_sql_set_error(error, db, "search");
	*answered_r = rc == 0 && live;
	if (!*answered_r)
		g_ptr_array_set_size(hits, first);
	else if (hits->len - first > 1)   /* equal scores: newest first, as the general order */
		qsort(hits->pdata + first, hits->len - first, sizeof(gpointer), by_rank);
	g_array_free(top, TRUE);
	return rc;
}

/* The scope tokens as the index holds them (folded as the tokenizer folds
 * them), for term_rank.c; NULL when one is not a single token (FTS5 then
 * answers). */
static GPtrArray *folded_tokens(sqlite3 *db, const GPtrArray *tokens)
{
	GPtrArray *folded = g_ptr_array_new_with_free_func(g_free);
	GString *key = g_string_new(NULL);
	for (guint i = 0; i < tokens->len; i++) {
		int count = 0;
		if (mv_prefix_key(db, tokens->pdata[i], key, &count, NULL) < 0 || count != 1 || !key->len) {
			g_ptr_array_free(folded, TRUE);
			folded = NULL;
			break;
		}
		g_ptr_array_add(folded, g_strdup(key->str));
	}
	g_string_free(key, TRUE);
	return folded;
}

/* The words of a one-word query: the word, its address token, or the words
 * its prefix stands for (NULL when more than MAX_NAMED_PREFIX_TERMS, or a
 * leaf is damaged). */
static int one_word_words(const plan *p, const mv_query *q, bool address, GPtrArray **words_r, GError **error)
{
	sqlite3 *db = mv_store_db(p->store);
	GString *key = g_string_new(NULL);
	int tokens = 0;
	char *text = NULL;
	if (address) {   /* as fts_term asks it */
		char *norm = mv_address_normalize(q->text);
		text = mv_address_token(norm, address_role(q->field), p->format);
		g_free(norm);
	}
	int rc = mv_prefix_key(db, text ? text : q->text, key, &tokens, error);
	g_free(text);
	if (rc == 0 && tokens == 1 && key->len) {
		if (!q->prefix) {
			*words_r = g_ptr_array_new_with_free_func(g_free);
			g_ptr_array_add(*words_r, g_strdup(key->str));
		} else {
			rc = prefix_words(p, key, words_r, error);
		}
	}
	g_string_free(key, TRUE);
	return rc;
}

/* One phrase of term_rank.c from a term of the query: a word, an
 * address's token or a one-word prefix's words, in text columns
 * (any_columns: ANY_COLUMNS as a list; `column`: room for a one-column
 * list).  1 when it is one (*words_r filled), 0 when
 * the query is left to FTS5. */
static int phrase_of(const plan *p, const mv_query *q, const char *const *any_columns, const char **column,
                     mv_term_rank_phrase *phrase, GPtrArray **words_r, GError **error)
{
	*words_r = NULL;
	if (q->kind != MV_Q_TERM || q->field == MV_F_MESSAGEID || q->field == MV_F_ARCHIVE || q->field == MV_F_FOLDER)
		return 0;
	bool address = is_address_field(q->field) && !q->prefix && looks_like_address(q->text);
	int rc = one_word_words(p, q, address, words_r, error);
	if (rc < 0 || !*words_r || (*words_r)->len == 0) {
		if (*words_r)
			g_ptr_array_free(*words_r, TRUE);
		*words_r = NULL;
		return rc;
	}
	if (address && !mv_index_token_term_has_column(p->format)) {
		phrase->columns = NULL;   /* mv_index_append_token_term's term: no column */
	} else if (q->field == MV_F_ANY) {
		phrase->columns = any_columns;
	} else {
		column[0] = field_columns(q->field);
		column[1] = NULL;
		phrase->columns = column;
	}
	phrase->words = *words_r;
	return 1;
}

/* The query as term_rank.c scores it, and what it holds. */
typedef struct rank_request {
	mv_term_rank_request rq;
	mv_term_rank_phrase phrases[MV_TERM_RANK_MAX_PHRASES];
	const char *column[MV_TERM_RANK_MAX_PHRASES][2];
	char **any_columns;   /* ANY_COLUMNS split */
	GPtrArray *words[MV_TERM_RANK_MAX_PHRASES];
	GPtrArray *within;
} rank_request;

static void rank_request_clear(rank_request *r)
{
	for (guint i = 0; i < MV_TERM_RANK_MAX_PHRASES; i++)
		if (r->words[i])
			g_ptr_array_free(r->words[i], TRUE);
	if (r->within)
		g_ptr_array_free(r->within, TRUE);
	g_strfreev(r->any_columns);
	memset(r, 0, sizeof *r);
}

/* A term, or an AND or OR of terms (no negation), each a phrase_of; a
 * restricted caller's scope tokens, when the MATCH has them, as the part
 * of the index its hits must lie in.  1 when the query is one (r filled),
 * 0 when it is left to FTS5. */
static int rank_request_of(const plan *p, const mv_query *q, const readable_set *readable, rank_request *r,
                           GError **error)
{
	static const char *const scope_column[] = { "scope", NULL };
	memset(r, 0, sizeof *r);
	const mv_query *const *terms = &q;
	guint n = 1;
	if (q->kind == MV_Q_AND || q->kind == MV_Q_OR) {
		terms = (const mv_query *const *)q->children->pdata;
		n = q->children->len;
	}
	if (n == 0 || n > MV_TERM_RANK_MAX_PHRASES || (readable->ids && !readable->scope_tokens))
		return 0;
	int rc = 1;
	r->any_columns = g_strsplit(ANY_COLUMNS, " ", -1);
	for (guint i = 0; i < n && rc > 0; i++)
		rc = phrase_of(p, terms[i], (const char *const *)r->any_columns, r->column[i], &r->phrases[i], &r->words[i],
		               error);
	if (rc > 0 && readable->scope_tokens && !(r->within = folded_tokens(mv_store_db(p->store), readable->scope_tokens)))
		rc = 0;
	if (rc <= 0) {
		rank_request_clear(r);
		return rc;
	}
	r->rq.phrases = r->phrases;
	r->rq.n_phrases = n;
	r->rq.any = q->kind == MV_Q_OR;
	r->rq.docid_lo = p->docid_lo;
	r->rq.docid_hi = p->docid_hi;
	r->rq.within = r->within;
	r->rq.within_columns = mv_index_token_term_has_column(p->format) ? scope_column : NULL;
	return 1;
}

/* The folders whose unindexed messages a text search of this store
 * misses, as ids for mv_store_index_lag_in: the caller's readable set
 * (narrowed to opts->folder already), within the archive asked, matched
 * lower-cased whole as its scope token is; NULL = every folder. */
static int coverage_folders(mv_store *store, const mv_search_options *opts, const readable_set *readable,
                            GString **ids_r, GError **error)
{
	*ids_r = NULL;
	if (!opts->archive || !*opts->archive || opts->folder) {
		if (readable->ids)
			*ids_r = g_string_new(readable->ids->str);
		return 0;
	}
	GArray *folders = folders_with_access(store, opts->access, error);
	if (!folders)
		return -1;
	char *want = g_utf8_strdown(opts->archive, -1);
	GString *ids = g_string_new(NULL);
	for (guint i = 0; i < folders->len; i++) {
		const folder_access *f = &g_array_index(folders, folder_access, i);
		char *lower = g_utf8_strdown(f->archive, -1);
		if (f->readable && strcmp(lower, want) == 0)
			g_string_append_printf(ids, "%s%lld", ids->len ? "," : "", (long long)f->id);
		g_free(lower);
	}
	g_free(want);
	g_array_free(folders, TRUE);
	*ids_r = ids;
	return 0;
}

/* What this store's index does not hold yet of the folders searched.  The
 * whole store is asked first (one kept statement): only when something
 * lags are the folders worked out, so that a restricted caller's search
 * pays no second pass over them. */
static int coverage_lag(mv_store *store, const mv_search_options *opts, const readable_set *readable, int64_t *lag_r,
                        GError **error)
{
	if (mv_store_index_lag_in(store, NULL, lag_r, error) < 0)
		return -1;
	if (*lag_r == 0)
		return 0;
	GString *ids = NULL;
	int rc = coverage_folders(store, opts, readable, &ids, error);
	if (rc == 0 && ids)
		rc = mv_store_index_lag_in(store, ids->str, lag_r, error);
	if (ids)
		g_string_free(ids, TRUE);
	return rc;
}

/* Adds it to the answer's coverage.  A count that fails costs the note,
 * not the answer (logged), and never tells a caller more than its folders. */
static void add_coverage(mv_store *store, const mv_search_options *opts, const readable_set *readable)
{
	GError *err = NULL;
	int64_t lag = 0;
	if (coverage_lag(store, opts, readable, &lag, &err) < 0) {
		mv_log_warn("store %d: what its index lacks is unknown: %s", mv_store_id(store), err->message);
		g_error_free(err);
		lag = 0;
	}
	opts->coverage->unindexed += lag;
}

static int run_store(mv_store *store, const mv_query *q, const mv_search_options *opts, int64_t after_lo,
                     GPtrArray *hits, GError **error)
{
	plan p = { .store = store, .after_lo = after_lo, .docid_lo = INT64_MIN, .docid_hi = INT64_MAX,
	           .key_lo = INT64_MIN, .key_hi = INT64_MAX, .prefix_by_name = opts->sort != MV_SORT_RELEVANCE,
	           .sql = g_string_new(NULL),
	           .params = g_ptr_array_new_with_free_func(g_free),
	           .int_params = g_array_new(FALSE, FALSE, sizeof(int)) };
	GString *match = g_string_new(NULL);
	GString *sql = g_string_new(NULL);
	readable_set readable = { 0 };
	/* An index whose format cannot be read (none, or damaged) gets no rowid
	 * bounds: a query that needs it fails on its own, one over the db alone
	 * (size:, date ranges) still answers. */
	int64_t format;
	if (mv_store_index_format(store, &format, NULL) == 0) {
		p.format = format;
		p.bucket = mv_index_date_bucket(format);
	}
	int rc = build_plan(&p, q, match, error);
	if (rc == 0 && !p.nothing)
		rc = opts->folder ? narrow_to_folder(store, p.format, opts, &readable, error) :
		                    readable_set_of(store, p.format, opts->access, &readable, error);
	if (rc < 0 || p.nothing || readable.none)
		goto out;
	bool use_fts = match->len > 0;
	if (use_fts && opts->coverage)
		add_coverage(store, opts, &readable);
	if (use_fts && readable.scope) {
		g_string_prepend(match, "(");
		g_string_append_printf(match, ") AND (%s)", readable.scope->str);
	}
	if (use_fts && relevance_top_applies(&p, opts, &readable)) {
		bool answered = false;
		rank_request ranked;
		rc = rank_request_of(&p, q, &readable, &ranked, error);
		if (rc >= 0)
			rc = relevance_top(store, &p, match->str, readable.ids, opts, rc > 0 ? &ranked.rq : NULL, hits,
			                   &answered, error);
		rank_request_clear(&ranked);
		if (rc < 0 || answered)
			goto out;
	}
	append_select(sql, &p, use_fts, opts, readable.ids ? readable.ids->str : NULL);
	sqlite3 *db = mv_store_db(store);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql->str, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "search");
		rc = -1;
		goto out;
	}
	bind_params(st, &p, use_fts, match->str);
	if (read_hits(st, mv_store_id(store), by_bucket(use_fts, opts), opts, hits) < 0) {
		mv_sql_set_error(error, db, "search");
		rc = -1;
	}
	sqlite3_finalize(st);
	mv_log_debug("store %d: match=[%s] sql=[%s]", mv_store_id(store), match->str, sql->str);
out:
	readable_set_clear(&readable);
	g_string_free(match, TRUE);
	g_string_free(sql, TRUE);
	g_string_free(p.sql, TRUE);
	g_ptr_array_free(p.params, TRUE);
	g_array_free(p.int_params, TRUE);
	return rc;
}

/* ---- fan-out ---------------------------------------------------------------------- */

mv_searcher *mv_searcher_open(mv_instance *inst, GError **error)
{
	GPtrArray *infos = mv_instance_stores(inst, error);
	if (!infos)
		return NULL;
	mv_searcher *s = g_new0(mv_searcher, 1);
	s->inst = inst;
	s->stores = g_ptr_array_new();
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0)
			continue;
		GError *err = NULL;
		mv_store *st = mv_instance_open_store(inst, info->id, MV_STORE_READ, &err);
		if (!st) {
			/* One unreadable store must not hide the others' mail. */
			mv_log_warn("store %d (%s) not searched: %s", info->id, info->name, err->message);
			g_error_free(err);
			s->unopened++;
			continue;
		}
		g_ptr_array_add(s->stores, st);
	}
	g_ptr_array_free(infos, TRUE);
	return s;
}

void mv_searcher_close(mv_searcher **sp)
{
	mv_searcher *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	for (guint i = 0; i < s->stores->len; i++) {
		mv_store *st = s->stores->pdata[i];
		mv_store_close(&st);
	}
	g_ptr_array_free(s->stores, TRUE);
	g_free(s);
}

mv_store *mv_searcher_store(mv_searcher *s, int store_id)
{
	for (guint i = 0; i < s->stores->len; i++)
		if (mv_store_id(s->stores->pdata[i]) == store_id)
			return s->stores->pdata[i];
	return NULL;
}

/* Newest first: the index's order inside a store (date descending, then
 * message number ascending), and across stores the higher store first
 * among equal dates — the order `after` continues in. */
static gint by_date_desc(gconstpointer a, gconstpointer b)
{
	const mv_search_hit *x = *(mv_search_hit *const *)a, *y = *(mv_search_hit *const *)b;
	int64_t kx = mv_order_key(x->date, 0), ky = mv_order_key(y->date, 0);
	if (kx != ky)
		return kx < ky ? -1 : 1;
	if (x->store_id != y->store_id)
		return x->store_id > y->store_id ? -1 : 1;
	return x->number < y->number ? -1 : (x->number > y->number);
}

static gint by_rank(gconstpointer a, gconstpointer b)
{
	const mv_search_hit *x = *(mv_search_hit *const *)a, *y = *(mv_search_hit *const *)b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return by_date_desc(a, b);
}

/* Where the hit `after` stands in newest-first order, as the smallest
 * order key each store still has to give: in its own store the keys after
 * it, in a higher store (which comes first among equal dates) the older
 * dates only, in a lower one its date too. */
typedef struct cursor {
	bool set;
	int store_id;
	int64_t date, number;
} cursor;

static int cursor_of(mv_searcher *s, const mv_search_options *opts, cursor *c, GError **error)
{
	memset(c, 0, sizeof *c);
	if (!opts->after || !*opts->after)
		return 0;
	if (opts->sort != MV_SORT_DATE) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "after: continues the newest-first order; page by offset "
		            "when sorting by relevance");
		return -1;
	}
	int64_t num;
	mv_store *st = NULL;
	mv_store_message m;
	if (mv_message_id_parse(opts->after, &c->store_id, &num))
		st = mv_searcher_store(s, c->store_id);
	if (!st || mv_store_message_get(st, num, &m, NULL) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "after: '%.64s' is not a message of these results (search "
		            "again)", opts->after);
		return -1;
	}
	c->set = true;
	c->date = m.date;
	c->number = num;
	mv_store_message_clear(&m);
	return 0;
}

static int64_t after_lo_for(const cursor *c, int store_id)
{
	if (!c->set)
		return INT64_MIN;
	if (store_id == c->store_id)
		return mv_order_key(c->date, c->number) + 1;
	if (store_id > c->store_id)
		return mv_order_key(c->date - 1, 0);
	return mv_order_key(c->date, 0);
}

char *mv_search_coverage_note(const mv_search_coverage *c)
{
	if (c->unindexed <= 0 && c->stores_unsearched <= 0)
		return NULL;
	GString *note = g_string_new(MV_SEARCH_COVERAGE_NOTE_START);
	if (c->unindexed > 0)
		g_string_append_printf(note, "%lld message%s of the folders searched %s not in the search index yet "
		                       "(just archived, or an index rebuild is part way)", (long long)c->unindexed,
		                       c->unindexed == 1 ? "" : "s", c->unindexed == 1 ? "is" : "are");
	if (c->stores_unsearched > 0)
		g_string_append_printf(note, "%s%d archive store%s could not be opened and %s not searched (the log names "
		                       "why)", c->unindexed > 0 ? "; " : "", c->stores_unsearched,
		                       c->stores_unsearched == 1 ? "" : "s", c->stores_unsearched == 1 ? "was" : "were");
	return g_string_free(note, FALSE);
}

/* --archive NAME as the query's own conjunct archive:NAME (see the top). */
static mv_query *with_archive(mv_query *q, const char *archive)
{
	if (!archive || !*archive)
		return q;
	mv_query *scope = g_new0(mv_query, 1);
	scope->kind = MV_Q_TERM;
	scope->field = MV_F_ARCHIVE;
	scope->text = g_strdup(archive);
	if (q->kind != MV_Q_AND) {
		mv_query *and = g_new0(mv_query, 1);
		and->kind = MV_Q_AND;
		and->children = g_ptr_array_new_with_free_func(mv_query_free_notify);
		g_ptr_array_add(and->children, q);
		q = and;
	}
	g_ptr_array_add(q->children, scope);
	return q;
}

int mv_searcher_run(mv_searcher *s, const char *query, const mv_search_options *opts,
                    GPtrArray **hits_r, GError **error)
{
	if (opts->coverage)
		*opts->coverage = (mv_search_coverage){ .stores_unsearched = s->unopened };
	if (opts->offset < 0 || opts->offset > MV_SEARCH_MAX_OFFSET) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "offset must be 0..%d", MV_SEARCH_MAX_OFFSET);
		return -1;
	}
	cursor c;
	if (cursor_of(s, opts, &c, error) < 0)
		return -1;
	mv_query *q = mv_query_parse(query, error);
	if (!q)
		return -1;
	q = with_archive(q, opts->archive);
	GPtrArray *hits = g_ptr_array_new_with_free_func((GDestroyNotify)mv_search_hit_free);
	int rc = 0;
	for (guint i = 0; i < s->stores->len && rc == 0; i++)
		rc = run_store(s->stores->pdata[i], q, opts, after_lo_for(&c, mv_store_id(s->stores->pdata[i])), hits,
		               error);
	mv_query_free(&q);
	if (rc < 0) {
		g_ptr_array_free(hits, TRUE);
		return -1;
	}
	if (s->stores->len > 1)
		g_ptr_array_sort(hits, opts->sort == MV_SORT_RELEVANCE ? by_rank : by_date_desc);
	if (opts->offset > 0)
		g_ptr_array_remove_range(hits, 0, MIN(hits->len, (guint)opts->offset));
	if (opts->limit > 0 && hits->len > (guint)opts->limit)
		g_ptr_array_set_size(hits, (guint)opts->limit);
	*hits_r = hits;
	return 0;
}
