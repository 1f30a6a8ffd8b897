/* search/query: turns the text a user types into an mv_query tree.
 *
 * The text is hostile (it comes from the CLI and, later, from the network),
 * so the parser is shaped around bounds rather than convenience: the length
 * is checked before anything else, the text must be valid UTF-8, the lexer
 * works on byte offsets into the caller's string (no fixed buffers, no
 * copies until a node is built), and the only recursion — groups and
 * negations — is counted against MV_QUERY_MAX_DEPTH, which also bounds the
 * depth of the tree that mv_query_free and mv_query_to_string walk.
 *
 * Parsing stops at the first error; every error carries the 1-based
 * character position so that a user can find the fault in a long query,
 * and names the input it refuses: a query that silently means something
 * else than its author meant (a misspelt field searched as a word) costs
 * more than one that is refused with the reason. */
#include "search/query.h"

#include <stdarg.h>
#include <string.h>

/* The lexer knows the field names because "from:x" is one token but
 * "http://x" is a plain word; the pseudo-fields after: before: has: size:
 * take values that are not search text.  The table's order is the order
 * in which an error lists them. */
typedef enum {
	K_TEXT,   /* a real mv_query_field */
	K_AFTER,
	K_BEFORE,
	K_HAS,
	K_SIZE,
} field_kind;

typedef struct {
	const char *name;
	field_kind kind;
	mv_query_field field;
} field_def;

static const field_def fields[] = {
	{ "from", K_TEXT, MV_F_FROM },
	{ "to", K_TEXT, MV_F_TO },
	{ "cc", K_TEXT, MV_F_CC },
	{ "bcc", K_TEXT, MV_F_BCC },
	{ "subject", K_TEXT, MV_F_SUBJECT },
	{ "body", K_TEXT, MV_F_BODY },
	{ "attachment", K_TEXT, MV_F_ATTACHMENT },
	{ "folder", K_TEXT, MV_F_FOLDER },
	{ "archive", K_TEXT, MV_F_ARCHIVE },
	{ "messageid", K_TEXT, MV_F_MESSAGEID },
	{ "after", K_AFTER, MV_F_ANY },
	{ "before", K_BEFORE, MV_F_ANY },
	{ "has", K_HAS, MV_F_ANY },
	{ "size", K_SIZE, MV_F_ANY },
};

typedef enum {
	T_EOF,
	T_LPAREN,
	T_RPAREN,
	T_MINUS,
	T_OR,
	T_AND,
	T_NOT,     /* the operator NOT: like '-' */
	T_WORD,    /* value is [vstart, vend) */
	T_PHRASE,  /* value is the text between the quotes */
} tok_kind;

typedef struct {
	tok_kind kind;
	size_t start;            /* byte offset of the token (field name included) */
	const field_def *field;  /* NULL: no field prefix; with T_LPAREN: field:( */
	size_t vstart, vend;     /* the value: word, or phrase content; an operator as typed */
} token;

typedef struct {
	const char *text;
	size_t len;
	size_t cur;        /* lexer cursor, byte offset */
	token tok;         /* one token of lookahead */
	int paren_depth;
	int not_depth;
	unsigned terms;
	const field_def *group_field; /* inside field:( ... ): the field of its terms */
	GError **error;
} parser;

/* ---- errors ---- */

/* Character position for messages; the text was validated as UTF-8 so
 * counting lead bytes counts characters. */
static size_t char_pos(const char *text, size_t off)
{
	size_t n = 0;
	for (size_t i = 0; i < off; i++)
		if (((unsigned char)text[i] & 0xC0) != 0x80)
			n++;
	return n + 1;
}

static void fail(parser *p, size_t off, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void fail(parser *p, size_t off, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *reason = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(p->error, MV_ERROR, MV_ERR_INVALID, "position %zu: %s",
	            char_pos(p->text, off), reason);
	g_free(reason);
}

/* The input between two offsets as typed, for an error message: at most
 * EXCERPT_MAX bytes, cut at a character boundary (the text is valid UTF-8),
 * so that a long value does not make the message as long as the query. */
#define EXCERPT_MAX 64

static char *excerpt(const parser *p, size_t from, size_t to)
{
	if (to - from <= EXCERPT_MAX)
		return g_strndup(p->text + from, to - from);
	size_t cut = from + EXCERPT_MAX;
	while (cut > from && ((unsigned char)p->text[cut] & 0xC0) == 0x80)
		cut--;
	return g_strdup_printf("%.*s…", (int)(cut - from), p->text + from);
}

/* "from: to: ... size:" from the table, so the list cannot drift from it. */
static char *field_list(void)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++)
		g_string_append_printf(s, "%s%s:", i > 0 ? " " : "", fields[i].name);
	return g_string_free(s, FALSE);
}

/* ---- lexer ---- */

static bool is_space(char c)
{
	return g_ascii_isspace(c);
}

static bool is_word_char(char c)
{
	return c != '\0' && !is_space(c) && c != '(' && c != ')' && c != '"';
}

static size_t word_end(const parser *p, size_t off)
{
	while (off < p->len && is_word_char(p->text[off]))
		off++;
	return off;
}

static const field_def *lookup_field(const char *name, size_t len)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++)
		if (strlen(fields[i].name) == len && g_ascii_strncasecmp(fields[i].name, name, len) == 0)
			return &fields[i];
	return NULL;
}

/* A phrase needs its closing quote; where it is missing the opening quote
 * is the useful position to report. */
static bool lex_phrase(parser *p, size_t quote, token *t)
{
	const char *close = memchr(p->text + quote + 1, '"', p->len - quote - 1);
	if (close == NULL) {
		fail(p, quote, "unterminated phrase");
		return false;
	}
	t->kind = T_PHRASE;
	t->vstart = quote + 1;
	t->vend = (size_t)(close - p->text);
	p->cur = t->vend + 1;
	return true;
}

/* OR, AND and NOT are operators in upper and in lower case: people type
 * "invoice or receipt" as readily as "invoice OR receipt", and a bare
 * "or" searched as a word (it is in nearly every English message) would
 * quietly return the wrong messages.  Mixed case ("Or", "Not" — a German
 * noun) stays a word, and so does any of them in quotes. */
static bool is_keyword(const char *w, size_t n, const char *upper, const char *lower)
{
	return n == strlen(upper) && (memcmp(w, upper, n) == 0 || memcmp(w, lower, n) == 0);
}

static tok_kind word_kind(const char *w, size_t n)
{
	if (is_keyword(w, n, "OR", "or"))
		return T_OR;
	if (is_keyword(w, n, "AND", "and"))
		return T_AND;
	if (is_keyword(w, n, "NOT", "not"))
		return T_NOT;
	return T_WORD;
}

/* Whether an unknown "name:value" was meant as a field: a name of two or
 * more ASCII letters (the shortest fields, to: and cc:, have two) followed
 * by a value.  Words that merely hold a colon stay searchable text: URLs
 * ("http://x": the value begins with '/'), "std::map", times ("10:30"),
 * drive letters ("c:\tmp"), and a word ending in a colon ("Re:", "AW:"). */
static bool is_field_attempt(const parser *p, size_t start, size_t colon)
{
	if (colon - start < 2)
		return false;
	for (size_t i = start; i < colon; i++)
		if (!g_ascii_isalpha(p->text[i]))
			return false;
	if (colon + 1 >= p->len)
		return false;
	char c = p->text[colon + 1];
	return !is_space(c) && c != ')' && c != '/' && c != ':';
}

static void unknown_field(parser *p, size_t start, size_t colon, size_t end)
{
	char *name = excerpt(p, start, colon);
	char *word = excerpt(p, start, end);
	char *known = field_list();
	bool value_in_word = end > colon + 1;
	fail(p, start, "unknown field '%s:'%s%s%s; the fields are %s (put text with a colon in quotes to "
	     "search for it as it is)", name, value_in_word ? " in '" : "", value_in_word ? word : "",
	     value_in_word ? "'" : "", known);
	g_free(name);
	g_free(word);
	g_free(known);
}

/* field:( ... ) applies the field to every term of the group. */
static bool lex_field_group(parser *p, size_t open, token *t)
{
	if (t->field->kind != K_TEXT) {
		fail(p, open, "'%s:' takes one value, not a group '(...)'", t->field->name);
		return false;
	}
	t->kind = T_LPAREN;
	p->cur = open + 1;
	return true;
}

/* A word that starts with a known field name and a colon is a field term;
 * one that looks like a field but names none is an error (is_field_attempt);
 * any other colon is part of the word ("http://x", "12:30"). */
static bool lex_word(parser *p, token *t)
{
	size_t end = word_end(p, t->start);
	const char *w = p->text + t->start;
	const char *colon = memchr(w, ':', end - t->start);

	t->kind = T_WORD;
	t->vstart = t->start;
	t->vend = end;
	p->cur = end;
	if (colon == NULL) {
		t->kind = word_kind(w, end - t->start);
		return true;
	}
	size_t colon_off = (size_t)(colon - p->text);
	t->field = lookup_field(w, colon_off - t->start);
	if (t->field == NULL) {
		if (!is_field_attempt(p, t->start, colon_off))
			return true;
		unknown_field(p, t->start, colon_off, end);
		return false;
	}
	t->vstart = colon_off + 1;
	if (t->vstart < end)
		return true;
	if (end < p->len && p->text[end] == '"')
		return lex_phrase(p, end, t);
	if (end < p->len && p->text[end] == '(')
		return lex_field_group(p, end, t);
	fail(p, t->vstart, "missing value after '%s:'", t->field->name);
	return false;
}

static bool advance(parser *p)
{
	token *t = &p->tok;

	while (p->cur < p->len && is_space(p->text[p->cur]))
		p->cur++;
	memset(t, 0, sizeof *t);
	t->start = p->cur;
	if (p->cur >= p->len) {
		t->kind = T_EOF;
		return true;
	}
	switch (p->text[p->cur]) {
	case '(':
		t->kind = T_LPAREN;
		p->cur++;
		return true;
	case ')':
		t->kind = T_RPAREN;
		p->cur++;
		return true;
	case '"':
		return lex_phrase(p, p->cur, t);
	case '-':
		/* Only a leading '-' negates; "a-b" is one word.  A '-' with
		 * nothing to negate is a typo, not a search for "-". */
		if (p->cur + 1 >= p->len || is_space(p->text[p->cur + 1]) || p->text[p->cur + 1] == ')') {
			fail(p, p->cur, "'-' without a term to negate");
			return false;
		}
		t->kind = T_MINUS;
		p->cur++;
		return true;
	default:
		return lex_word(p, t);
	}
}

/* ---- nodes ---- */

void mv_query_free_notify(gpointer q)
{
	mv_query *node = q;
	mv_query_free(&node);
}

static mv_query *node_new(mv_query_kind kind)
{
	mv_query *q = g_new0(mv_query, 1);
	q->kind = kind;
	if (kind == MV_Q_AND || kind == MV_Q_OR || kind == MV_Q_NOT)
		q->children = g_ptr_array_new_with_free_func(mv_query_free_notify);
	return q;
}

/* A group of one is just that one; collapsing keeps to_string and the
 * evaluator free of pointless levels. */
static mv_query *collapse(mv_query *q)
{
	if (q->children->len != 1)
		return q;
	mv_query *only = g_ptr_array_steal_index(q->children, 0);
	mv_query_free(&q);
	return only;
}

static bool count_term(parser *p, size_t off)
{
	if (++p->terms > MV_QUERY_MAX_TERMS) {
		fail(p, off, "more than %d terms", MV_QUERY_MAX_TERMS);
		return false;
	}
	return true;
}

/* ---- values ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* Howard Hinnant's algorithm: exact for the proleptic Gregorian
	 * calendar without going through timegm() and the TZ environment. */
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* NULL when s is a day of the calendar (*out set); else what is wrong with
 * it (a new string; "" when it is not of the form YYYY-MM-DD at all). */
static char *parse_date(const char *s, size_t n, int64_t *out)
{
	static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, m, d;

	if (n != 10 || s[4] != '-' || s[7] != '-')
		return g_strdup("");
	if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
		return g_strdup("");
	if (m < 1 || m > 12)
		return g_strdup_printf("there is no month %u", m);
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	unsigned last = mdays[m - 1] + (m == 2 && leap);
	if (d < 1 || d > last)
		return g_strdup_printf("%.7s has days 01 to %u", s, last);
	*out = days_from_civil(y, m, d) * 86400;
	return NULL;
}

static size_t parse_cmp(const char *s, size_t n, mv_query_cmp *cmp)
{
	if (n >= 2 && s[1] == '=' && (s[0] == '>' || s[0] == '<')) {
		*cmp = s[0] == '>' ? MV_CMP_GE : MV_CMP_LE;
		return 2;
	}
	if (n >= 1 && (s[0] == '>' || s[0] == '<' || s[0] == '=')) {
		*cmp = s[0] == '>' ? MV_CMP_GT : s[0] == '<' ? MV_CMP_LT : MV_CMP_EQ;
		return 1;
	}
	*cmp = MV_CMP_EQ;
	return 0;
}

static int64_t size_unit(char c)
{
	switch (c) {
	case 'k': case 'K': return INT64_C(1) << 10;
	case 'm': case 'M': return INT64_C(1) << 20;
	case 'g': case 'G': return INT64_C(1) << 30;
	default: return 0;
	}
}

/* Returns 1 on success, 0 on bad syntax, -1 on overflow. */
static int parse_size(const char *s, size_t n, mv_query_cmp *cmp, int64_t *out)
{
	size_t i = parse_cmp(s, n, cmp);
	size_t first = i;
	int64_t v = 0;

	for (; i < n && g_ascii_isdigit(s[i]); i++) {
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (i == first)
		return 0;
	if (i < n) {
		int64_t unit = size_unit(s[i]);
		if (unit == 0 || i + 1 != n)
			return 0;
		if (v > INT64_MAX / unit)
			return -1;
		v *= unit;
	}
	*out = v;
	return 1;
}

/* ---- leaves ---- */

/* Where the value begins and ends as typed: a phrase value with its quotes. */
static size_t value_pos(const token *t)
{
	return t->kind == T_PHRASE ? t->vstart - 1 : t->vstart;
}

static size_t value_end(const token *t)
{
	return t->kind == T_PHRASE ? t->vend + 1 : t->vend;
}

static mv_query *date_leaf(parser *p, const token *t)
{
	int64_t v = 0;
	char *problem = t->kind == T_WORD ? parse_date(p->text + t->vstart, t->vend - t->vstart, &v)
	                                  : g_strdup("a date is written without quotes");
	if (problem != NULL) {
		char *value = excerpt(p, value_pos(t), value_end(t));
		fail(p, value_pos(t), "invalid date '%s' for %s:%s%s%s; expected YYYY-MM-DD, e.g. %s:2002-10-01", value,
		     t->field->name, *problem ? " (" : "", problem, *problem ? ")" : "", t->field->name);
		g_free(value);
		g_free(problem);
		return NULL;
	}
	mv_query *q = node_new(MV_Q_DATE);
	q->cmp = t->field->kind == K_AFTER ? MV_CMP_GE : MV_CMP_LT;
	q->value = v;
	return q;
}

static mv_query *size_leaf(parser *p, const token *t)
{
	mv_query_cmp cmp = MV_CMP_EQ;
	int64_t v = 0;
	int r = t->kind == T_WORD ? parse_size(p->text + t->vstart, t->vend - t->vstart, &cmp, &v) : 0;
	if (r <= 0) {
		char *value = excerpt(p, value_pos(t), value_end(t));
		if (r < 0)
			fail(p, value_pos(t), "size '%s' out of range", value);
		else
			fail(p, value_pos(t), "invalid size '%s'; expected [<|<=|>|>=|=]N[k|M|G], e.g. size:>1M", value);
		g_free(value);
		return NULL;
	}
	mv_query *q = node_new(MV_Q_SIZE);
	q->cmp = cmp;
	q->value = v;
	return q;
}

static mv_query *has_leaf(parser *p, const token *t)
{
	if (t->kind != T_WORD || t->vend - t->vstart != 10 ||
	    g_ascii_strncasecmp(p->text + t->vstart, "attachment", 10) != 0) {
		char *value = excerpt(p, value_pos(t), value_end(t));
		fail(p, value_pos(t), "unknown 'has:%s'; only 'has:attachment' is known", value);
		g_free(value);
		return NULL;
	}
	return node_new(MV_Q_HAS_ATTACHMENT);
}

/* Phrases are matched word by word, so the spacing typed inside the
 * quotes carries no meaning and is normalised away. */
static mv_query *phrase_leaf(parser *p, const token *t, mv_query_field field)
{
	GString *s = g_string_new(NULL);
	size_t i = t->vstart;

	while (i < t->vend) {
		while (i < t->vend && is_space(p->text[i]))
			i++;
		size_t w = i;
		while (i < t->vend && !is_space(p->text[i]))
			i++;
		if (i > w) {
			if (s->len > 0)
				g_string_append_c(s, ' ');
			g_string_append_len(s, p->text + w, (gssize)(i - w));
		}
	}
	if (s->len == 0) {
		g_string_free(s, TRUE);
		fail(p, value_pos(t), "empty phrase");
		return NULL;
	}
	mv_query *q = node_new(MV_Q_PHRASE);
	q->field = field;
	q->text = g_string_free(s, FALSE);
	return q;
}

static mv_query *term_leaf(parser *p, const token *t, mv_query_field field)
{
	const char *w = p->text + t->vstart;
	size_t n = t->vend - t->vstart;
	const char *star = memchr(w, '*', n);
	bool prefix = false;

	if (star != NULL) {
		size_t at = (size_t)(star - p->text);
		if (n == 1) {
			fail(p, at, "'*' without a prefix");
			return NULL;
		}
		if (at + 1 != t->vend) {
			fail(p, at, "'*' is only allowed at the end of a word");
			return NULL;
		}
		prefix = true;
		n--;
	}
	mv_query *q = node_new(MV_Q_TERM);
	q->field = field;
	q->text = g_strndup(w, n);
	q->prefix = prefix;
	return q;
}

static mv_query *leaf(parser *p, const token *t)
{
	if (!count_term(p, t->start))
		return NULL;
	if (t->field != NULL && p->group_field != NULL) {
		fail(p, t->start, "'%s:' inside '%s:(...)': a term has one field", t->field->name, p->group_field->name);
		return NULL;
	}
	mv_query_field field = t->field != NULL ? t->field->field
	                     : p->group_field != NULL ? p->group_field->field : MV_F_ANY;
	if (t->field != NULL) {
		switch (t->field->kind) {
		case K_AFTER:
		case K_BEFORE:
			return date_leaf(p, t);
		case K_SIZE:
			return size_leaf(p, t);
		case K_HAS:
			return has_leaf(p, t);
		case K_TEXT:
			break;
		}
	}
	if (t->kind == T_PHRASE)
		return phrase_leaf(p, t, field);
	return term_leaf(p, t, field);
}

/* ---- grammar ---- */

static mv_query *parse_and(parser *p);

/* "( ... )", or "field:( ... )": the field then goes to every term inside,
 * and restoring the outer (none) on the way out keeps it to this group. */
static mv_query *parse_group(parser *p)
{
	size_t open = p->tok.start;
	const field_def *field = p->tok.field;
	const field_def *outer = p->group_field;

	if (field != NULL && outer != NULL) {
		fail(p, open, "'%s:(...)' inside '%s:(...)': a term has one field", field->name, outer->name);
		return NULL;
	}
	if (field != NULL)
		p->group_field = field;
	if (++p->paren_depth > MV_QUERY_MAX_DEPTH) {
		fail(p, open, "parentheses nested deeper than %d", MV_QUERY_MAX_DEPTH);
		return NULL;
	}
	if (!advance(p))
		return NULL;
	if (p->tok.kind == T_RPAREN) {
		fail(p, p->tok.start, "empty parentheses");
		return NULL;
	}
	mv_query *q = parse_and(p);
	if (q == NULL)
		return NULL;
	if (p->tok.kind != T_RPAREN) {
		fail(p, p->tok.start, "missing ')'");
		mv_query_free(&q);
		return NULL;
	}
	p->paren_depth--;
	p->group_field = outer;
	if (!advance(p)) {
		mv_query_free(&q);
		return NULL;
	}
	return q;
}

/* An operator where a term belongs: named as typed, with the way to search
 * for the word itself. */
static void misplaced_operator(parser *p, const token *t)
{
	int n = (int)(t->vend - t->vstart);
	const char *w = p->text + t->vstart;
	fail(p, t->start, "unexpected '%.*s' (OR, AND and NOT are operators, in upper or lower case; to search for "
	     "the word, put it in quotes: \"%.*s\")", n, w, n, w);
}

static mv_query *parse_primary(parser *p)
{
	token t = p->tok;

	switch (t.kind) {
	case T_LPAREN:
		return parse_group(p);
	case T_WORD:
	case T_PHRASE: {
		mv_query *q = leaf(p, &t);
		if (q != NULL && !advance(p)) {
			mv_query_free(&q);
			return NULL;
		}
		return q;
	}
	case T_RPAREN:
		fail(p, t.start, "unexpected ')'");
		return NULL;
	case T_OR:
	case T_AND:
		misplaced_operator(p, &t);
		return NULL;
	case T_EOF:
		fail(p, t.start, "unexpected end of query");
		return NULL;
	case T_MINUS:
	case T_NOT:
		break;
	}
	fail(p, t.start, "unexpected negation");  /* unreachable: unary takes it */
	return NULL;
}

/* Negation ('-' or NOT) recurses, so it counts against the depth bound like
 * a group: "------x" must not be a way around it. */
static mv_query *parse_unary(parser *p)
{
	if (p->tok.kind != T_MINUS && p->tok.kind != T_NOT)
		return parse_primary(p);
	token op = p->tok;
	if (++p->not_depth > MV_QUERY_MAX_DEPTH) {
		fail(p, op.start, "negations nested deeper than %d", MV_QUERY_MAX_DEPTH);
		return NULL;
	}
	if (!advance(p))
		return NULL;
	/* The lexer refuses a '-' before a space; NOT is a word, so what
	 * follows it is checked here. */
	tok_kind next = p->tok.kind;
	if (op.kind == T_NOT && (next == T_EOF || next == T_RPAREN || next == T_OR || next == T_AND)) {
		fail(p, op.start, "'%.*s' without a term to negate", (int)(op.vend - op.vstart), p->text + op.vstart);
		return NULL;
	}
	mv_query *child = parse_unary(p);
	if (child == NULL)
		return NULL;
	p->not_depth--;
	mv_query *q = node_new(MV_Q_NOT);
	g_ptr_array_add(q->children, child);
	return q;
}

static mv_query *parse_or(parser *p)
{
	mv_query *q = node_new(MV_Q_OR);

	for (;;) {
		mv_query *child = parse_unary(p);
		if (child == NULL) {
			mv_query_free(&q);
			return NULL;
		}
		g_ptr_array_add(q->children, child);
		if (p->tok.kind != T_OR)
			break;
		if (!advance(p)) {
			mv_query_free(&q);
			return NULL;
		}
	}
	return collapse(q);
}

/* Stops at end of input or ')'; the caller decides which of the two it
 * expected. */
static mv_query *parse_and(parser *p)
{
	mv_query *q = node_new(MV_Q_AND);

	while (p->tok.kind != T_EOF && p->tok.kind != T_RPAREN) {
		if (q->children->len > 0 && p->tok.kind == T_AND && !advance(p)) {
			mv_query_free(&q);
			return NULL;
		}
		mv_query *child = parse_or(p);
		if (child == NULL) {
			mv_query_free(&q);
			return NULL;
		}
		g_ptr_array_add(q->children, child);
	}
	return collapse(q);
}

/* Length first so that a huge input costs nothing; UTF-8 second so that
 * every later position is a character position. */
static bool check_text(parser *p)
{
	if (strnlen(p->text, MV_QUERY_MAX_LEN + 1) > MV_QUERY_MAX_LEN) {
		g_set_error(p->error, MV_ERROR, MV_ERR_INVALID,
		            "position 1: query longer than %d bytes", MV_QUERY_MAX_LEN);
		return false;
	}
	p->len = strlen(p->text);
	const char *bad;
	if (!g_utf8_validate(p->text, (gssize)p->len, &bad)) {
		fail(p, (size_t)(bad - p->text), "invalid UTF-8");
		return false;
	}
	return true;
}

mv_query *mv_query_parse(const char *text, GError **error)
{
	parser p = { .text = text != NULL ? text : "", .error = error };

	if (!check_text(&p) || !advance(&p))
		return NULL;
	if (p.tok.kind == T_EOF) {
		fail(&p, 0, "empty query");
		return NULL;
	}
	if (p.tok.kind == T_RPAREN) {
		fail(&p, p.tok.start, "unexpected ')'");
		return NULL;
	}
	mv_query *q = parse_and(&p);
	if (q != NULL && p.tok.kind == T_RPAREN) {
		fail(&p, p.tok.start, "unexpected ')'");
		mv_query_free(&q);
		return NULL;
	}
	return q;
}

void mv_query_free(mv_query **qp)
{
	mv_query *q = *qp;
	if (q == NULL)
		return;
	*qp = NULL;
	if (q->children != NULL)
		g_ptr_array_unref(q->children);
	g_free(q->text);
	g_free(q);
}

/* ---- rendering ---- */

static const char *cmp_symbol(mv_query_cmp c)
{
	switch (c) {
	case MV_CMP_LT: return "<";
	case MV_CMP_LE: return "<=";
	case MV_CMP_GT: return ">";
	case MV_CMP_GE: return ">=";
	case MV_CMP_EQ: return "=";
	}
	return "?";
}

static void render_field(GString *s, mv_query_field f)
{
	if (f != MV_F_ANY)
		g_string_append_printf(s, "%s:", mv_query_field_name(f));
}

static void render(GString *s, const mv_query *q);

static void render_children(GString *s, const char *name, const mv_query *q)
{
	g_string_append_printf(s, "%s(", name);
	for (guint i = 0; i < q->children->len; i++) {
		if (i > 0)
			g_string_append(s, ", ");
		render(s, g_ptr_array_index(q->children, i));
	}
	g_string_append_c(s, ')');
}

static void render(GString *s, const mv_query *q)
{
	switch (q->kind) {
	case MV_Q_AND:
		render_children(s, "AND", q);
		return;
	case MV_Q_OR:
		render_children(s, "OR", q);
		return;
	case MV_Q_NOT:
		render_children(s, "NOT", q);
		return;
	case MV_Q_TERM:
		g_string_append(s, "TERM(");
		render_field(s, q->field);
		g_string_append_printf(s, "%s%s)", q->text, q->prefix ? "*" : "");
		return;
	case MV_Q_PHRASE:
		g_string_append(s, "PHRASE(");
		render_field(s, q->field);
		g_string_append_printf(s, "\"%s\")", q->text);
		return;
	case MV_Q_DATE:
	case MV_Q_SIZE:
		g_string_append_printf(s, "%s(%s%" G_GINT64_FORMAT ")",
		                       q->kind == MV_Q_DATE ? "DATE" : "SIZE",
		                       cmp_symbol(q->cmp), q->value);
		return;
	case MV_Q_HAS_ATTACHMENT:
		g_string_append(s, "HAS(attachment)");
		return;
	}
	g_string_append(s, "?");
}

char *mv_query_to_string(const mv_query *q)
{
	GString *s = g_string_new(NULL);
	if (q != NULL)
		render(s, q);
	return g_string_free(s, FALSE);
}

const char *mv_query_field_name(mv_query_field f)
{
	switch (f) {
	case MV_F_ANY: return "any";
	case MV_F_FROM: return "from";
	case MV_F_TO: return "to";
	case MV_F_CC: return "cc";
	case MV_F_BCC: return "bcc";
	case MV_F_SUBJECT: return "subject";
	case MV_F_BODY: return "body";
	case MV_F_ATTACHMENT: return "attachment";
	case MV_F_FOLDER: return "folder";
	case MV_F_ARCHIVE: return "archive";
	case MV_F_MESSAGEID: return "messageid";
	}
	return "unknown";
}
