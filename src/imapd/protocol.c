/* imapd/protocol: an IMAP command's bytes -> tag, name, argument tree.
 *
 * The connection hands over a whole command, literals included, in the
 * form it came off the wire, so parsing is a pure function over one
 * buffer: fuzzed as it is, with no I/O state inside.  Lists nest to a
 * fixed depth and the token count is bounded, so hostile input costs at
 * most linear time and memory.  Fetch attributes keep their [section] and
 * <partial> inside the atom (BODY.PEEK[HEADER.FIELDS (From)]<0.512>):
 * the FETCH handler takes them apart, where their grammar lives. */
#include "imapd/internal.h"
#include <stdlib.h>
#include <string.h>

typedef struct parser {
	const uint8_t *p, *end;
	const char *error;
	size_t tokens;
} parser;

static void arg_free(gpointer p)
{
	imap_arg *a = p;
	if (!a)
		return;
	g_free(a->str);
	if (a->list)
		g_ptr_array_free(a->list, TRUE);
	g_free(a);
}

void imap_command_free(imap_command *c)
{
	if (!c)
		return;
	g_free(c->tag);
	g_free(c->name);
	if (c->args)
		g_ptr_array_free(c->args, TRUE);
	g_free(c);
}

/* atom-char of RFC 3501 plus the list wildcards and ']' handled apart. */
static bool atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return !strchr("(){\"\\", c);
}

static bool fail(parser *ps, const char *why)
{
	if (!ps->error)
		ps->error = why;
	return false;
}

/* An atom; a '[' inside runs to its ']' with quoted strings skipped, so a
 * section's spaces and parentheses stay in the atom. */
static imap_arg *parse_atom(parser *ps)
{
	const uint8_t *start = ps->p;
	/* A flag: "\" atom ("\Seen"), or "\*" in a flag list. */
	if (*ps->p == '\\') {
		ps->p++;
		if (ps->p < ps->end && *ps->p == '*')
			ps->p++;
	}
	while (ps->p < ps->end) {
		uint8_t c = *ps->p;
		if (c == '[') {
			ps->p++;
			bool quoted = false;
			while (ps->p < ps->end && (quoted || *ps->p != ']')) {
				if (*ps->p == '\r' || *ps->p == '\n')
					return fail(ps, "unterminated [ in an atom"), NULL;
				if (quoted && *ps->p == '\\' && ps->p + 1 < ps->end)
					ps->p++;
				else if (*ps->p == '"')
					quoted = !quoted;
				ps->p++;
			}
			if (ps->p >= ps->end)
				return fail(ps, "unterminated [ in an atom"), NULL;
			ps->p++;
			continue;
		}
		if (!atom_char(c) || c == ']')
			break;
		ps->p++;
	}
	if (ps->p == start)
		return fail(ps, "expected an atom"), NULL;
	imap_arg *a = g_new0(imap_arg, 1);
	a->len = (size_t)(ps->p - start);
	a->str = g_strndup((const char *)start, a->len);
	if (a->len == 3 && g_ascii_strcasecmp(a->str, "NIL") == 0)
		a->type = IMAP_ARG_NIL;
	else
		a->type = IMAP_ARG_ATOM;
	return a;
}

static imap_arg *parse_quoted(parser *ps)
{
	ps->p++; /* '"' */
	GString *s = g_string_new(NULL);
	while (ps->p < ps->end && *ps->p != '"') {
		uint8_t c = *ps->p;
		if (c == '\r' || c == '\n' || c == 0) {
			g_string_free(s, TRUE);
			return fail(ps, "a quoted string may not hold CR, LF or NUL"), NULL;
		}
		if (c == '\\') {
			if (ps->p + 1 >= ps->end || (ps->p[1] != '\\' && ps->p[1] != '"')) {
				g_string_free(s, TRUE);
				return fail(ps, "only \\\\ and \\\" may be escaped in a quoted string"), NULL;
			}
			ps->p++;
			c = *ps->p;
		}
		g_string_append_c(s, (char)c);
		ps->p++;
	}
	if (ps->p >= ps->end) {
		g_string_free(s, TRUE);
		return fail(ps, "unterminated quoted string"), NULL;
	}
	ps->p++;
	imap_arg *a = g_new0(imap_arg, 1);
	a->type = IMAP_ARG_STRING;
	a->len = s->len;
	a->str = g_string_free(s, FALSE);
	return a;
}

/* "{n}" or "{n+}" CRLF then n bytes. */
static imap_arg *parse_literal(parser *ps)
{
	ps->p++; /* '{' */
	uint64_t n = 0;
	const uint8_t *digits = ps->p;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		n = n * 10 + (uint64_t)(*ps->p - '0');
		if (n > IMAP_MAX_COMMAND)
			return fail(ps, "literal too large"), NULL;
		ps->p++;
	}
	if (ps->p == digits)
		return fail(ps, "expected a number after {"), NULL;
	if (ps->p < ps->end && *ps->p == '+')
		ps->p++;
	if (ps->p >= ps->end || *ps->p != '}')
		return fail(ps, "expected } after a literal's size"), NULL;
	ps->p++;
	if (ps->p < ps->end && *ps->p == '\r')
		ps->p++;
	if (ps->p >= ps->end || *ps->p != '\n')
		return fail(ps, "a literal's size must end its line"), NULL;
	ps->p++;
	if ((uint64_t)(ps->end - ps->p) < n)
		return fail(ps, "literal shorter than announced"), NULL;
	imap_arg *a = g_new0(imap_arg, 1);
	a->type = IMAP_ARG_STRING;
	a->literal = true;
	a->len = (size_t)n;
	a->str = g_malloc(a->len + 1);
	memcpy(a->str, ps->p, a->len);
	a->str[a->len] = 0;
	ps->p += n;
	return a;
}

static bool at_line_end(parser *ps)
{
	return ps->p >= ps->end || *ps->p == '\r' || *ps->p == '\n';
}

static GPtrArray *parse_args(parser *ps, int depth, bool in_list);

static imap_arg *parse_one(parser *ps, int depth)
{
	if (++ps->tokens > IMAP_MAX_ARGS)
		return fail(ps, "too many arguments"), NULL;
	uint8_t c = *ps->p;
	if (c == '"')
		return parse_quoted(ps);
	if (c == '{')
		return parse_literal(ps);
	if (c == '(') {
		if (depth >= IMAP_MAX_ARG_DEPTH)
			return fail(ps, "lists nested too deeply"), NULL;
		ps->p++;
		GPtrArray *list = parse_args(ps, depth + 1, true);
		if (!list)
			return NULL;
		if (ps->p >= ps->end || *ps->p != ')') {
			g_ptr_array_free(list, TRUE);
			return fail(ps, "missing )"), NULL;
		}
		ps->p++;
		imap_arg *a = g_new0(imap_arg, 1);
		a->type = IMAP_ARG_LIST;
		a->list = list;
		return a;
	}
	return parse_atom(ps);
}

/* Arguments separated by single spaces (clients send one; more are
 * tolerated) up to the line's end or a ')' when in_list. */
static GPtrArray *parse_args(parser *ps, int depth, bool in_list)
{
	GPtrArray *args = g_ptr_array_new_with_free_func(arg_free);
	for (;;) {
		while (ps->p < ps->end && *ps->p == ' ')
			ps->p++;
		if (at_line_end(ps) || (in_list && *ps->p == ')'))
			return args;
		if (*ps->p == ')') {
			fail(ps, "unexpected )");
			break;
		}
		imap_arg *a = parse_one(ps, depth);
		if (!a)
			break;
		g_ptr_array_add(args, a);
		if (!at_line_end(ps) && *ps->p != ' ' && *ps->p != ')' && *ps->p != '(') {
			fail(ps, "arguments must be separated by a space");
			break;
		}
	}
	g_ptr_array_free(args, TRUE);
	return NULL;
}

static void upper_in_place(char *s)
{
	for (; *s; s++)
		*s = g_ascii_toupper(*s);
}

static char *parse_word(parser *ps)
{
	const uint8_t *start = ps->p;
	while (ps->p < ps->end && atom_char(*ps->p) && *ps->p != '*' && *ps->p != '%' && *ps->p != ']' &&
	       *ps->p != '+')
		ps->p++;
	if (ps->p == start)
		return NULL;
	return g_strndup((const char *)start, (size_t)(ps->p - start));
}

imap_command *imap_command_parse(const uint8_t *buf, size_t len, char **tag_r, const char **error_r)
{
	parser ps = { .p = buf, .end = buf + len };
	*tag_r = NULL;
	*error_r = NULL;
	char *tag = parse_word(&ps);
	if (!tag) {
		*error_r = "expected a tag";
		return NULL;
	}
	*tag_r = g_strdup(tag);
	char *name = NULL;
	if (ps.p >= ps.end || *ps.p != ' ' || (ps.p++, !(name = parse_word(&ps)))) {
		g_free(tag);
		*error_r = "expected a command after the tag";
		return NULL;
	}
	upper_in_place(name);
	if (strcmp(name, "UID") == 0) {
		char *sub = NULL;
		if (ps.p >= ps.end || *ps.p != ' ' || (ps.p++, !(sub = parse_word(&ps)))) {
			g_free(tag);
			g_free(name);
			*error_r = "expected a command after UID";
			return NULL;
		}
		upper_in_place(sub);
		char *both = g_strconcat("UID ", sub, NULL);
		g_free(sub);
		g_free(name);
		name = both;
	}
	GPtrArray *args = parse_args(&ps, 0, false);
	if (args && ps.p < ps.end) {
		/* Only the line end may follow. */
		if (*ps.p == '\r')
			ps.p++;
		if (ps.p < ps.end && *ps.p == '\n')
			ps.p++;
		if (ps.p != ps.end) {
			g_ptr_array_free(args, TRUE);
			args = NULL;
			ps.error = "unexpected bytes after the command";
		}
	}
	if (!args) {
		g_free(tag);
		g_free(name);
		*error_r = ps.error ? ps.error : "malformed command";
		return NULL;
	}
	imap_command *c = g_new0(imap_command, 1);
	c->tag = tag;
	c->name = name;
	c->args = args;
	return c;
}

const imap_arg *imap_arg_at(const imap_command *c, guint i)
{
	return i < c->args->len ? c->args->pdata[i] : NULL;
}

const char *imap_arg_astring(const imap_command *c, guint i)
{
	const imap_arg *a = imap_arg_at(c, i);
	if (!a || (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_NIL))
		return NULL;
	if (a->type == IMAP_ARG_STRING && memchr(a->str, 0, a->len))
		return NULL;
	return a->str;
}

bool imap_arg_is_atom(const imap_arg *a, const char *upper)
{
	return a && (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL) && g_ascii_strcasecmp(a->str, upper) == 0;
}

/* ---- sequence sets ---------------------------------------------------------- */

static bool parse_seq_number(const char **p, uint32_t max, uint32_t *v)
{
	if (**p == '*') {
		(*p)++;
		*v = max;
		return true;
	}
	if (**p < '1' || **p > '9')
		return false;
	uint64_t n = 0;
	while (**p >= '0' && **p <= '9') {
		n = n * 10 + (uint64_t)(**p - '0');
		if (n > UINT32_MAX)
			return false;
		(*p)++;
	}
	*v = (uint32_t)n;
	return true;
}

bool imap_seqset_parse(const char *text, uint32_t max, GArray **ranges_r)
{
	GArray *ranges = g_array_new(FALSE, FALSE, sizeof(imap_range));
	const char *p = text;
	for (;;) {
		imap_range r;
		if (!parse_seq_number(&p, max, &r.lo))
			goto bad;
		r.hi = r.lo;
		if (*p == ':') {
			p++;
			if (!parse_seq_number(&p, max, &r.hi))
				goto bad;
		}
		if (r.lo > r.hi) {
			uint32_t t = r.lo;
			r.lo = r.hi;
			r.hi = t;
		}
		if (ranges->len < 100000)
			g_array_append_val(ranges, r);
		else
			goto bad;
		if (*p == 0)
			break;
		if (*p != ',')
			goto bad;
		p++;
	}
	*ranges_r = ranges;
	return true;
bad:
	g_array_free(ranges, TRUE);
	return false;
}

bool imap_seqset_contains(const GArray *ranges, uint32_t v)
{
	for (guint i = 0; i < ranges->len; i++) {
		const imap_range *r = &g_array_index(ranges, imap_range, i);
		if (v >= r->lo && v <= r->hi)
			return true;
	}
	return false;
}

bool imap_line_literal(const char *line, size_t len, uint64_t *size_r, bool *plus_r)
{
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t i = len - 1;
	bool plus = false;
	if (i > 0 && line[i - 1] == '+') {
		plus = true;
		i--;
	}
	size_t digits_end = i;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == digits_end || i == 0 || line[i - 1] != '{' || digits_end - i > 12)
		return false;
	uint64_t n = 0;
	for (size_t k = i; k < digits_end; k++)
		n = n * 10 + (uint64_t)(line[k] - '0');
	*size_r = n;
	*plus_r = plus;
	return true;
}

/* ---- writing strings ------------------------------------------------------------ */

void imap_append_string(GString *out, const char *s, size_t len, bool utf8)
{
	bool quotable = len < 1024;
	for (size_t i = 0; quotable && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || c == '\r' || c == '\n' || (c >= 0x80 && !utf8))
			quotable = false;
	}
	if (quotable && utf8 && !g_utf8_validate(s, (gssize)len, NULL))
		quotable = false;
	if (!quotable) {
		g_string_append_printf(out, "{%zu}\r\n", len);
		g_string_append_len(out, s, (gssize)len);
		return;
	}
	g_string_append_c(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, s[i]);
	}
	g_string_append_c(out, '"');
}

void imap_append_nstring(GString *out, const char *s)
{
	if (!s)
		g_string_append(out, "NIL");
	else
		imap_append_string(out, s, strlen(s), false);
}
