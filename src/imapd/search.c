/* imapd/search: SEARCH keys evaluated over a selected mailbox.
 *
 * Each key becomes a set of the mailbox's messages (one byte per message),
 * and NOT/OR/lists combine the sets, so IMAP's boolean structure never has
 * to be rewritten into the query language.  What the mailbox list already
 * knows (flags, sizes, dates, UIDs, sequence numbers) is answered from it;
 * text keys run one full-text query on the index for each of the mailbox's
 * folders, narrowed to that folder (its MATCH holds the folder's scope
 * token), and keep the hits that are in the mailbox.  Messages are never
 * scanned for them.  Only HEADER of a field the index does not hold reads
 * messages, at most IMAP_SEARCH_MAX_READS of them.
 *
 * IMAP asks for substring matches; the index matches words.  A string of
 * one word matches words that start with it, several words match them as
 * a phrase: what a user typing into a client's search box means. */
#include "imapd/internal.h"
#include "search/search.h"
#include <string.h>
#include <time.h>

typedef struct search_ctx {
	mv_instance *inst;
	const mv_access *access;
	const imap_mailbox *mb;
	imap_view *v;
	const GPtrArray *args;
	guint pos;
	const char *bad;
	GError *error;
	unsigned reads;
	bool modseq;
	/* What the text keys' answers could not see, per source folder of the
	 * mailbox (the same for every key: it depends on the folder alone). */
	int64_t *source_unindexed;
	int unsearched;
} search_ctx;

typedef GArray set;   /* guint8 per message */

static set *set_new(const search_ctx *c, guint8 fill)
{
	set *s = g_array_sized_new(FALSE, FALSE, 1, c->v->msgs->len);
	g_array_set_size(s, c->v->msgs->len);
	memset(s->data, fill, s->len);
	return s;
}

static const imap_msg *msg_at(const search_ctx *c, guint i)
{
	return &g_array_index(c->v->msgs, imap_msg, i);
}

static const imap_arg *next_arg(search_ctx *c)
{
	if (c->pos >= c->args->len)
		return NULL;
	return c->args->pdata[c->pos++];
}

static const char *next_string(search_ctx *c)
{
	const imap_arg *a = next_arg(c);
	if (!a || (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING))
		return NULL;
	return a->str;
}

/* "1-Feb-1994" -> unix seconds of that day's 00:00 UTC. */
static bool parse_date(const char *text, int64_t *day_r)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
		                              "jul", "aug", "sep", "oct", "nov", "dec" };
	int d = 0, y = 0;
	char mon[4] = "";
	if (!text || strlen(text) > 11 || sscanf(text, "%2d-%3[A-Za-z]-%4d", &d, mon, &y) != 3)
		return false;
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (g_ascii_strcasecmp(mon, months[i]) == 0)
			m = i;
	if (m < 0 || d < 1 || d > 31 || y < 1900 || y > 9999)
		return false;
	GDateTime *dt = g_date_time_new_utc(y, m + 1, d, 0, 0, 0);
	if (!dt)
		return false;
	*day_r = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return true;
}

static int64_t day_of(int64_t t)
{
	return t - (((t % 86400) + 86400) % 86400);
}

typedef enum { CMP_BEFORE, CMP_ON, CMP_SINCE } date_cmp;

static set *date_set(search_ctx *c, date_cmp cmp)
{
	int64_t day;
	if (!parse_date(next_string(c), &day)) {
		c->bad = "expected a date like 1-Feb-1994";
		return NULL;
	}
	set *s = set_new(c, 0);
	for (guint i = 0; i < s->len; i++) {
		int64_t d = day_of(msg_at(c, i)->date);
		s->data[i] = cmp == CMP_BEFORE ? d < day : cmp == CMP_ON ? d == day : d >= day;
	}
	return s;
}

static set *flag_set(search_ctx *c, unsigned flag, bool want)
{
	set *s = set_new(c, 0);
	for (guint i = 0; i < s->len; i++)
		s->data[i] = ((msg_at(c, i)->flags & flag) != 0) == want;
	return s;
}

static set *size_set(search_ctx *c, bool larger)
{
	const char *t = next_string(c);
	char *end = NULL;
	guint64 n = t ? g_ascii_strtoull(t, &end, 10) : 0;
	if (!t || !*t || *end) {
		c->bad = "expected a number";
		return NULL;
	}
	set *s = set_new(c, 0);
	for (guint i = 0; i < s->len; i++) {
		guint64 size = (guint64)msg_at(c, i)->size;
		s->data[i] = larger ? size > n : size < n;
	}
	return s;
}

static set *seq_set(search_ctx *c, const char *text, bool uid)
{
	guint n = c->v->msgs->len;
	uint32_t max = uid ? (n ? msg_at(c, n - 1)->uid : 0) : n;
	GArray *ranges;
	if (!imap_seqset_parse(text, max, &ranges)) {
		c->bad = "malformed sequence set";
		return NULL;
	}
	set *s = set_new(c, 0);
	for (guint i = 0; i < s->len; i++)
		s->data[i] = imap_seqset_contains(ranges, uid ? msg_at(c, i)->uid : i + 1);
	g_array_free(ranges, TRUE);
	return s;
}

/* ---- text through the index --------------------------------------------------- */

/* The words of text (letters and digits), lower-cased. */
static GPtrArray *words_of(const char *text)
{
	GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
	char *valid = g_utf8_make_valid(text, -1);
	GString *w = g_string_new(NULL);
	for (const char *p = valid;; p = g_utf8_next_char(p)) {
		gunichar ch = g_utf8_get_char(p);
		if (ch && g_unichar_isalnum(ch)) {
			g_string_append_unichar(w, g_unichar_tolower(ch));
			continue;
		}
		if (w->len && words->len < 32)
			g_ptr_array_add(words, g_strdup(w->str));
		g_string_truncate(w, 0);
		if (!ch)
			break;
	}
	g_string_free(w, TRUE);
	g_free(valid);
	return words;
}

static char *text_query(const char *field, GPtrArray *words)
{
	GString *q = g_string_new(NULL);
	if (field)
		g_string_append_printf(q, "%s:", field);
	if (words->len == 1) {
		g_string_append_printf(q, "%s*", (const char *)words->pdata[0]);
		return g_string_free(q, FALSE);
	}
	g_string_append_c(q, '"');
	for (guint i = 0; i < words->len; i++)
		g_string_append_printf(q, "%s%s", i ? " " : "", (const char *)words->pdata[i]);
	g_string_append_c(q, '"');
	return g_string_free(q, FALSE);
}

static int mark_hits(search_ctx *c, mv_searcher *sr, const char *query, guint source, set *s)
{
	const imap_source *src = c->mb->sources->pdata[source];
	mv_search_coverage coverage;
	mv_search_options o = { .archive = src->archive, .folder = src->path, .access = c->access,
		                .coverage = &coverage };
	GPtrArray *hits = NULL;
	if (mv_searcher_run(sr, query, &o, &hits, &c->error) < 0)
		return -1;
	if (!c->source_unindexed)
		c->source_unindexed = g_new0(int64_t, c->mb->sources->len);
	c->source_unindexed[source] = coverage.unindexed;
	c->unsearched = MAX(c->unsearched, coverage.stores_unsearched);
	for (guint i = 0; i < hits->len; i++) {
		const mv_search_hit *h = hits->pdata[i];
		gssize idx = imap_view_find(c->v, h->store_id, h->number);
		if (idx >= 0)
			s->data[idx] = 1;
	}
	g_ptr_array_free(hits, TRUE);
	return 0;
}

static set *index_set(search_ctx *c, const char *field, const char *value)
{
	GPtrArray *words = words_of(value);
	if (words->len == 0) {
		g_ptr_array_free(words, TRUE);
		/* "" is in every message; punctuation alone the index cannot find. */
		return set_new(c, 1);
	}
	char *query = text_query(field, words);
	g_ptr_array_free(words, TRUE);
	set *s = set_new(c, 0);
	mv_searcher *sr = mv_searcher_open(c->inst, &c->error);
	int rc = sr ? 0 : -1;
	for (guint i = 0; rc == 0 && i < c->mb->sources->len; i++)
		rc = mark_hits(c, sr, query, i, s);
	mv_searcher_close(&sr);
	g_free(query);
	if (rc < 0) {
		g_array_free(s, TRUE);
		return NULL;
	}
	return s;
}

/* HEADER of a field the index does not hold: read the messages, bounded. */
static set *header_scan(search_ctx *c, const char *field, const char *value)
{
	if (c->v->msgs->len + c->reads > IMAP_SEARCH_MAX_READS) {
		c->bad = "HEADER of that field would read too many messages; narrow the search first";
		return NULL;
	}
	set *s = set_new(c, 0);
	char *needle = g_utf8_casefold(value, -1);
	for (guint i = 0; i < s->len; i++) {
		GByteArray *raw = NULL;
		c->reads++;
		if (imap_msg_read(c->inst, msg_at(c, i), &raw, &c->error) < 0) {
			g_free(needle);
			g_array_free(s, TRUE);
			return NULL;
		}
		mv_imap_message *m = mv_imap_message_parse(raw->data, raw->len);
		char *h = m ? mv_imap_message_header(m, field) : NULL;
		if (h) {
			char *folded = g_utf8_casefold(h, -1);
			s->data[i] = strstr(folded, needle) != NULL;
			g_free(folded);
		}
		g_free(h);
		mv_imap_message_free(&m);
		g_byte_array_unref(raw);
	}
	g_free(needle);
	return s;
}

static set *header_set(search_ctx *c)
{
	const char *field = next_string(c);
	const char *value = field ? next_string(c) : NULL;
	if (!value) {
		c->bad = "HEADER needs a field name and a string";
		return NULL;
	}
	static const struct {
		const char *header, *field;
	} indexed[] = { { "from", "from" }, { "to", "to" },           { "cc", "cc" },
		        { "bcc", "bcc" },   { "subject", "subject" }, { "message-id", "messageid" } };
	for (size_t i = 0; i < G_N_ELEMENTS(indexed); i++)
		if (g_ascii_strcasecmp(field, indexed[i].header) == 0)
			return index_set(c, indexed[i].field, value);
	char *f = g_strdup(field);
	char *v = g_strdup(value);
	set *s = header_scan(c, f, v);
	g_free(f);
	g_free(v);
	return s;
}

/* MODSEQ [entry-name entry-type] n (RFC 7162): MODSEQ = UID here, and the
 * only metadata entries (flags) never change, so the entry is ignored. */
static set *modseq_set(search_ctx *c)
{
	const char *t = next_string(c);
	if (t && t[0] == '/') {
		next_string(c);           /* entry type: priv, shared or all */
		t = next_string(c);
	}
	char *end = NULL;
	guint64 n = t ? g_ascii_strtoull(t, &end, 10) : 0;
	if (!t || !*t || *end) {
		c->bad = "MODSEQ needs a number";
		return NULL;
	}
	c->modseq = true;
	set *s = set_new(c, 0);
	for (guint i = 0; i < s->len; i++)
		s->data[i] = msg_at(c, i)->uid >= n;
	return s;
}

/* ---- the key grammar ------------------------------------------------------------ */

static set *parse_key(search_ctx *c, int depth);

static void set_and(set *a, const set *b)
{
	for (guint i = 0; i < a->len; i++)
		a->data[i] &= b->data[i];
}

static set *parse_keys_of_list(search_ctx *c, const imap_arg *list, int depth)
{
	if (!list->list->len) {
		c->bad = "empty list of search keys";
		return NULL;
	}
	const GPtrArray *outer = c->args;
	guint outer_pos = c->pos;
	c->args = list->list;
	c->pos = 0;
	set *all = set_new(c, 1);
	while (c->pos < c->args->len) {
		set *k = parse_key(c, depth + 1);
		if (!k) {
			g_array_free(all, TRUE);
			all = NULL;
			break;
		}
		set_and(all, k);
		g_array_free(k, TRUE);
	}
	c->args = outer;
	c->pos = outer_pos;
	return all;
}

static set *simple_key(search_ctx *c, const char *k)
{
	static const struct {
		const char *name;
		unsigned flag;
		bool want;
	} flag_keys[] = {
		{ "ANSWERED", MV_MAIL_FLAG_ANSWERED, true },  { "UNANSWERED", MV_MAIL_FLAG_ANSWERED, false },
		{ "FLAGGED", MV_MAIL_FLAG_FLAGGED, true },    { "UNFLAGGED", MV_MAIL_FLAG_FLAGGED, false },
		{ "SEEN", MV_MAIL_FLAG_SEEN, true },          { "UNSEEN", MV_MAIL_FLAG_SEEN, false },
		{ "DRAFT", MV_MAIL_FLAG_DRAFT, true },        { "UNDRAFT", MV_MAIL_FLAG_DRAFT, false },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(flag_keys); i++)
		if (strcmp(k, flag_keys[i].name) == 0)
			return flag_set(c, flag_keys[i].flag, flag_keys[i].want);
	/* Nothing is \Deleted or \Recent in an archive, and no keywords are set. */
	if (!strcmp(k, "ALL") || !strcmp(k, "OLD") || !strcmp(k, "UNDELETED"))
		return set_new(c, 1);
	if (!strcmp(k, "DELETED") || !strcmp(k, "NEW") || !strcmp(k, "RECENT"))
		return set_new(c, 0);
	if (!strcmp(k, "KEYWORD") || !strcmp(k, "UNKEYWORD")) {
		if (!next_string(c)) {
			c->bad = "KEYWORD needs a flag";
			return NULL;
		}
		return set_new(c, !strcmp(k, "UNKEYWORD"));
	}
	return NULL;
}

static set *text_key(search_ctx *c, const char *k)
{
	static const struct {
		const char *name, *field;
	} text_keys[] = { { "TEXT", NULL },   { "BODY", "body" }, { "SUBJECT", "subject" }, { "FROM", "from" },
		          { "TO", "to" },     { "CC", "cc" },     { "BCC", "bcc" } };
	for (size_t i = 0; i < G_N_ELEMENTS(text_keys); i++) {
		if (strcmp(k, text_keys[i].name) != 0)
			continue;
		const char *value = next_string(c);
		if (!value) {
			c->bad = "expected a string after a text search key";
			return NULL;
		}
		char *copy = g_strdup(value);
		set *s = index_set(c, text_keys[i].field, copy);
		g_free(copy);
		return s;
	}
	return NULL;
}

static set *parse_key(search_ctx *c, int depth)
{
	if (depth > IMAP_MAX_ARG_DEPTH) {
		c->bad = "search keys nested too deeply";
		return NULL;
	}
	const imap_arg *a = next_arg(c);
	if (!a) {
		c->bad = "missing search key";
		return NULL;
	}
	if (a->type == IMAP_ARG_LIST)
		return parse_keys_of_list(c, a, depth);
	if (a->type != IMAP_ARG_ATOM) {
		c->bad = "expected a search key";
		return NULL;
	}
	if ((a->str[0] >= '0' && a->str[0] <= '9') || a->str[0] == '*')
		return seq_set(c, a->str, false);
	char *k = g_ascii_strup(a->str, -1);
	set *s = simple_key(c, k);
	if (!s && !c->bad)
		s = text_key(c, k);
	if (s || c->bad || c->error)
		goto out;
	if (!strcmp(k, "NOT")) {
		s = parse_key(c, depth + 1);
		for (guint i = 0; s && i < s->len; i++)
			s->data[i] = !s->data[i];
	} else if (!strcmp(k, "OR")) {
		s = parse_key(c, depth + 1);
		set *b = s ? parse_key(c, depth + 1) : NULL;
		for (guint i = 0; b && i < s->len; i++)
			s->data[i] |= b->data[i];
		if (s && !b)
			g_clear_pointer(&s, g_array_unref);
		if (b)
			g_array_free(b, TRUE);
	} else if (!strcmp(k, "UID")) {
		const char *t = next_string(c);
		s = t ? seq_set(c, t, true) : NULL;
		if (!t)
			c->bad = "UID needs a set";
	} else if (!strcmp(k, "LARGER") || !strcmp(k, "SMALLER")) {
		s = size_set(c, !strcmp(k, "LARGER"));
	} else if (!strcmp(k, "BEFORE") || !strcmp(k, "SENTBEFORE")) {
		s = date_set(c, CMP_BEFORE);
	} else if (!strcmp(k, "ON") || !strcmp(k, "SENTON")) {
		s = date_set(c, CMP_ON);
	} else if (!strcmp(k, "SINCE") || !strcmp(k, "SENTSINCE")) {
		s = date_set(c, CMP_SINCE);
	} else if (!strcmp(k, "HEADER")) {
		s = header_set(c);
	} else if (!strcmp(k, "MODSEQ")) {
		s = modseq_set(c);
	} else {
		c->bad = "unknown search key";
	}
out:
	g_free(k);
	return s;
}

/* The coverage of the whole search: each source folder's count once. */
static void search_coverage(const search_ctx *c, mv_search_coverage *coverage_r)
{
	*coverage_r = (mv_search_coverage){ .stores_unsearched = c->unsearched };
	for (guint i = 0; c->source_unindexed && i < c->mb->sources->len; i++)
		coverage_r->unindexed += c->source_unindexed[i];
}

int imap_search(mv_instance *inst, const mv_access *access, const imap_mailbox *mb, imap_view *v, const imap_command *cmd,
                guint first, GArray **result_r, bool *modseq_r, mv_search_coverage *coverage_r, const char **bad_r,
                GError **error)
{
	search_ctx c = { .inst = inst, .access = access, .mb = mb, .v = v, .args = cmd->args, .pos = first };
	*bad_r = NULL;
	set *all = set_new(&c, 1);
	if (c.pos >= c.args->len)
		c.bad = "missing search key";
	while (!c.bad && !c.error && c.pos < c.args->len) {
		set *k = parse_key(&c, 0);
		if (!k)
			break;
		set_and(all, k);
		g_array_free(k, TRUE);
	}
	search_coverage(&c, coverage_r);
	g_free(c.source_unindexed);
	if (c.bad || c.error) {
		g_array_free(all, TRUE);
		if (c.error) {
			g_propagate_error(error, c.error);
			return -1;
		}
		*bad_r = c.bad;
		return -1;
	}
	*result_r = all;
	*modseq_r = c.modseq;
	return 0;
}
