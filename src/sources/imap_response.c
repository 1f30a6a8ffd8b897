/* sources/imap_response: an IMAP server response taken apart.
 *
 * The values are one array with first-child and next-sibling indexes, not
 * a tree of allocations: a SEARCH answer of 100,000 UIDs is one array, and
 * freeing it is one call.  A literal's bytes stay where they are in the
 * received buffer (offset and length); only quoted strings with escapes are
 * copied, into the response's scratch.  The grammar is the server's side of
 * RFC 9051, kept lenient where servers differ in harmless ways (letter case,
 * a missing text after a status) and strict where a wrong reading would
 * archive the wrong bytes (literal lengths, unbalanced lists, quoting). */
#include "sources/imap_response.h"

#include <string.h>

#define MAX_DEPTH 64
#define MAX_VALUES (8u * 1024u * 1024u)

typedef struct parser {
	mv_imap_response *r;
	const uint8_t *p;
	size_t pos, len;
	GError **error;
} parser;

static int fail(parser *ps, const char *what)
{
	g_set_error(ps->error, MV_ERROR, MV_ERR_INVALID, "IMAP response: %s at byte %zu", what, ps->pos);
	return -1;
}

bool mv_imap_literal_at_end(const uint8_t *line, size_t len, uint64_t *n_r)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t end = len - 1;
	if (line[end - 1] == '+')
		end--;
	size_t start = end;
	while (start > 0 && g_ascii_isdigit(line[start - 1]) && end - start < 19)
		start--;
	if (start == end || start == 0 || line[start - 1] != '{')
		return false;
	uint64_t n = 0;
	for (size_t i = start; i < end; i++)
		n = n * 10 + (uint64_t)(line[i] - '0');
	*n_r = n;
	return true;
}

static uint32_t add_value(parser *ps, mv_imap_kind kind, size_t off, size_t len, bool unescaped)
{
	if (ps->r->values->len >= MAX_VALUES) {
		fail(ps, "more values than a response may hold");
		return MV_IMAP_NONE;
	}
	mv_imap_value v = { .kind = kind, .child = MV_IMAP_NONE, .next = MV_IMAP_NONE, .unescaped = unescaped,
	                    .off = off, .len = len };
	g_array_append_val(ps->r->values, v);
	return ps->r->values->len - 1;
}

static mv_imap_value *value(parser *ps, uint32_t i)
{
	return &g_array_index(ps->r->values, mv_imap_value, i);
}

static bool at_end_of_line(const parser *ps)
{
	return ps->pos >= ps->len || ps->p[ps->pos] == '\r' || ps->p[ps->pos] == '\n';
}

/* "..." with \" and \\; no CR, LF or NUL inside. */
static uint32_t parse_quoted(parser *ps)
{
	ps->pos++;
	GByteArray *s = ps->r->scratch;
	size_t off = s->len;
	while (ps->pos < ps->len) {
		uint8_t c = ps->p[ps->pos];
		if (c == '"') {
			ps->pos++;
			return add_value(ps, MV_IMAP_STRING, off, s->len - off, true);
		}
		if (c == '\r' || c == '\n' || c == 0)
			break;
		if (c == '\\') {
			if (ps->pos + 1 >= ps->len || (ps->p[ps->pos + 1] != '"' && ps->p[ps->pos + 1] != '\\'))
				break;
			c = ps->p[++ps->pos];
		}
		g_byte_array_append(s, &c, 1);
		ps->pos++;
	}
	fail(ps, "an unterminated or badly escaped quoted string");
	return MV_IMAP_NONE;
}

/* "{n}" or "{n+}", CRLF (or LF), then n bytes. */
static uint32_t parse_literal(parser *ps)
{
	size_t i = ps->pos + 1;
	uint64_t n = 0;
	size_t digits = 0;
	while (i < ps->len && g_ascii_isdigit(ps->p[i]) && digits < 19) {
		n = n * 10 + (uint64_t)(ps->p[i] - '0');
		i++;
		digits++;
	}
	if (i < ps->len && ps->p[i] == '+')
		i++;
	if (digits == 0 || i >= ps->len || ps->p[i] != '}') {
		fail(ps, "a malformed literal length");
		return MV_IMAP_NONE;
	}
	i++;
	if (i < ps->len && ps->p[i] == '\r')
		i++;
	if (i >= ps->len || ps->p[i] != '\n') {
		fail(ps, "a literal length not at the end of a line");
		return MV_IMAP_NONE;
	}
	i++;
	if (n > ps->len - i) {
		fail(ps, "a literal longer than the response");
		return MV_IMAP_NONE;
	}
	ps->pos = i + (size_t)n;
	return add_value(ps, MV_IMAP_STRING, i, (size_t)n, false);
}

static bool atom_char(uint8_t c)
{
	return c > ' ' && c != 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* An atom; a '[' inside runs to its matching ']' whatever is between
 * (BODY[HEADER.FIELDS (FROM)]<0>). */
static uint32_t parse_atom(parser *ps)
{
	size_t start = ps->pos;
	int brackets = 0;
	while (ps->pos < ps->len) {
		uint8_t c = ps->p[ps->pos];
		if (c == '\r' || c == '\n' || c == 0)
			break;
		if (brackets == 0 && !atom_char(c) && !(c == ']' && ps->pos > start))
			break;
		if (c == '[' && ++brackets > MAX_DEPTH) {
			fail(ps, "brackets nested too deep");
			return MV_IMAP_NONE;
		}
		if (c == ']' && brackets > 0)
			brackets--;
		ps->pos++;
	}
	if (brackets > 0) {
		fail(ps, "an unclosed '[' in an atom");
		return MV_IMAP_NONE;
	}
	if (ps->pos == start) {
		fail(ps, "an unexpected character");
		return MV_IMAP_NONE;
	}
	size_t n = ps->pos - start;
	if (n == 3 && g_ascii_strncasecmp((const char *)ps->p + start, "NIL", 3) == 0)
		return add_value(ps, MV_IMAP_NIL, start, 0, false);
	return add_value(ps, MV_IMAP_ATOM, start, n, false);
}

static void link_value(parser *ps, uint32_t *first, uint32_t *last, uint32_t v)
{
	if (*last == MV_IMAP_NONE)
		*first = v;
	else
		value(ps, *last)->next = v;
	*last = v;
}

/* Values up to the end of the line, lists iteratively with an explicit
 * stack of their last items (depth bounded). */
static int parse_values(parser *ps, uint32_t *first_r)
{
	uint32_t first[MAX_DEPTH + 1], last[MAX_DEPTH + 1], list[MAX_DEPTH + 1];
	int depth = 0;
	first[0] = last[0] = MV_IMAP_NONE;
	for (;;) {
		while (ps->pos < ps->len && ps->p[ps->pos] == ' ')
			ps->pos++;
		if (at_end_of_line(ps)) {
			if (depth > 0)
				return fail(ps, "a list not closed at the end of the response");
			break;
		}
		uint8_t c = ps->p[ps->pos];
		uint32_t v;
		if (c == '(') {
			if (depth == MAX_DEPTH)
				return fail(ps, "lists nested too deep");
			if ((v = add_value(ps, MV_IMAP_LIST, ps->pos, 0, false)) == MV_IMAP_NONE)
				return -1;
			link_value(ps, &first[depth], &last[depth], v);
			ps->pos++;
			list[++depth] = v;
			first[depth] = last[depth] = MV_IMAP_NONE;
			continue;
		}
		if (c == ')') {
			if (depth == 0)
				return fail(ps, "a ')' without its '('");
			value(ps, list[depth])->child = first[depth];
			depth--;
			ps->pos++;
			continue;
		}
		v = c == '"' ? parse_quoted(ps) : c == '{' ? parse_literal(ps) : parse_atom(ps);
		if (v == MV_IMAP_NONE)
			return -1;
		link_value(ps, &first[depth], &last[depth], v);
	}
	*first_r = first[0];
	return 0;
}

/* One space-free word starting at pos, advanced past it and its space. */
static char *take_word(parser *ps)
{
	size_t start = ps->pos;
	while (ps->pos < ps->len && ps->p[ps->pos] != ' ' && !at_end_of_line(ps))
		ps->pos++;
	if (ps->pos == start)
		return NULL;
	char *w = g_strndup((const char *)ps->p + start, ps->pos - start);
	if (ps->pos < ps->len && ps->p[ps->pos] == ' ')
		ps->pos++;
	return w;
}

static char *rest_of_line(parser *ps)
{
	size_t start = ps->pos;
	while (!at_end_of_line(ps))
		ps->pos++;
	return mv_utf8_sanitize((const char *)ps->p + start, (gssize)(ps->pos - start));
}

static bool is_status_word(const char *w)
{
	static const char *const words[] = { "OK", "NO", "BAD", "BYE", "PREAUTH", NULL };
	for (const char *const *s = words; *s; s++)
		if (g_ascii_strcasecmp(w, *s) == 0)
			return true;
	return false;
}

/* "[CODE args] text" or "text". */
static int parse_status_rest(parser *ps)
{
	mv_imap_response *r = ps->r;
	r->type = MV_IMAP_RESP_STATUS;
	if (ps->pos < ps->len && ps->p[ps->pos] == '[') {
		size_t start = ++ps->pos;
		while (ps->pos < ps->len && ps->p[ps->pos] != ']' && !at_end_of_line(ps))
			ps->pos++;
		if (ps->pos >= ps->len || ps->p[ps->pos] != ']')
			return fail(ps, "a response code without its ']'");
		r->code = mv_utf8_sanitize((const char *)ps->p + start, (gssize)(ps->pos - start));
		ps->pos++;
		if (ps->pos < ps->len && ps->p[ps->pos] == ' ')
			ps->pos++;
	}
	r->text = rest_of_line(ps);
	return 0;
}

static int parse_untagged(parser *ps)
{
	mv_imap_response *r = ps->r;
	char *word = take_word(ps);
	if (!word)
		return fail(ps, "an untagged response without a name");
	guint64 n = 0;
	if (g_ascii_string_to_unsigned(word, 10, 0, G_MAXINT64, &n, NULL)) {
		r->number = (int64_t)n;
		g_free(word);
		if (!(word = take_word(ps)))
			return fail(ps, "a number without a response name");
	}
	if (r->number < 0 && is_status_word(word)) {
		r->status = g_ascii_strup(word, -1);
		g_free(word);
		return parse_status_rest(ps);
	}
	r->type = MV_IMAP_RESP_DATA;
	r->name = g_ascii_strup(word, -1);
	g_free(word);
	return parse_values(ps, &r->first);
}

int mv_imap_response_parse(const GByteArray *raw, mv_imap_response *r, GError **error)
{
	*r = (mv_imap_response){ .number = -1, .first = MV_IMAP_NONE, .raw = raw };
	r->values = g_array_new(FALSE, FALSE, sizeof(mv_imap_value));
	r->scratch = g_byte_array_new();
	parser ps = { .r = r, .p = raw->data, .len = raw->len, .error = error };
	if (!(r->tag = take_word(&ps)))
		return fail(&ps, "an empty line");
	if (strcmp(r->tag, "+") == 0) {
		r->type = MV_IMAP_RESP_CONTINUATION;
		r->text = rest_of_line(&ps);
		return 0;
	}
	if (strcmp(r->tag, "*") == 0)
		return parse_untagged(&ps);
	char *word = take_word(&ps);
	if (!word || !is_status_word(word)) {
		g_free(word);
		return fail(&ps, "a tagged response that is not OK, NO or BAD");
	}
	r->status = g_ascii_strup(word, -1);
	g_free(word);
	return parse_status_rest(&ps);
}

void mv_imap_response_clear(mv_imap_response *r)
{
	g_free(r->tag);
	g_free(r->status);
	g_free(r->code);
	g_free(r->text);
	g_free(r->name);
	if (r->values)
		g_array_free(r->values, TRUE);
	if (r->scratch)
		g_byte_array_unref(r->scratch);
	*r = (mv_imap_response){ .number = -1, .first = MV_IMAP_NONE };
}

/* ---- reading values ---------------------------------------------------------------------- */

const mv_imap_value *mv_imap_value_at(const mv_imap_response *r, uint32_t index)
{
	if (index == MV_IMAP_NONE || index >= r->values->len)
		return NULL;
	return &g_array_index(r->values, mv_imap_value, index);
}

const uint8_t *mv_imap_bytes(const mv_imap_response *r, const mv_imap_value *v, size_t *len_r)
{
	*len_r = 0;
	if (!v || (v->kind != MV_IMAP_ATOM && v->kind != MV_IMAP_STRING))
		return NULL;
	*len_r = v->len;
	/* An empty quoted string that comes before any escaped bytes finds the
	 * scratch still unallocated (data NULL): "" is a string all the same,
	 * not the absence mv_imap_dup's callers take NULL for (a LIST name ""
	 * reached decode_name as NULL), and NULL + 0 is undefined. */
	if (v->len == 0)
		return (const uint8_t *)"";
	return (v->unescaped ? r->scratch->data : r->raw->data) + v->off;
}

char *mv_imap_dup(const mv_imap_response *r, const mv_imap_value *v)
{
	size_t n;
	const uint8_t *b = mv_imap_bytes(r, v, &n);
	return b ? g_strndup((const char *)b, n) : NULL;
}

bool mv_imap_atom_is(const mv_imap_response *r, const mv_imap_value *v, const char *word)
{
	size_t n;
	const uint8_t *b = v && v->kind == MV_IMAP_ATOM ? mv_imap_bytes(r, v, &n) : NULL;
	return b && n == strlen(word) && g_ascii_strncasecmp((const char *)b, word, n) == 0;
}

bool mv_imap_number(const mv_imap_response *r, const mv_imap_value *v, uint64_t *n_r)
{
	size_t n;
	const uint8_t *b = v && v->kind == MV_IMAP_ATOM ? mv_imap_bytes(r, v, &n) : NULL;
	if (!b || n == 0 || n > 18)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(b[i]))
			return false;
		x = x * 10 + (uint64_t)(b[i] - '0');
	}
	*n_r = x;
	return true;
}

const mv_imap_value *mv_imap_pair(const mv_imap_response *r, const mv_imap_value *list, const char *key)
{
	if (!list || list->kind != MV_IMAP_LIST)
		return NULL;
	for (const mv_imap_value *k = mv_imap_value_at(r, list->child); k; ) {
		const mv_imap_value *v = mv_imap_value_at(r, k->next);
		if (!v)
			return NULL;
		if (mv_imap_atom_is(r, k, key))
			return v;
		k = mv_imap_value_at(r, v->next);
	}
	return NULL;
}
