/* sanitize_flood: the cap on attributes per start tag, run over the input
 * before libxml2 parses it.
 *
 * libxml2 2.9's htmlParseStartTag compares every attribute with all earlier
 * ones and appends it at the end of a linked list: a tag with 200,000
 * attributes takes minutes.  This pass bounds attributes per start tag
 * without trusting itself to know where tags are: it runs a copy of that
 * function's attribute loop as a set of states — a new machine at every
 * '<' followed by a name character, wherever it stands, each state keeping
 * the most attributes any machine in it has begun — so whatever libxml2
 * is in, one of our states follows it.  When a state would pass the bound
 * (MAX_TAG_ATTRIBUTES in sanitize.c), "#\"'>" is written first: from every
 * state of the loop it ends the start tag without beginning another attribute ('#' is
 * no name character: it ends a name, is skipped as bogus, or after '=' is
 * an unquoted value; the quotes close either quoted value; '>' ends the
 * tag), so the rest of the flood is text.  A false alarm needs a '<' and
 * a name character in a comment, script, style or attribute value with a
 * hundred words and no '>' after them.  Linear; other input is untouched. */

#include "mime/sanitize_internal.h"

#include <string.h>

enum {
	ST_TAGNAME,      /* the element name */
	ST_BEFORE_ATTR,  /* the loop's top, blanks skipped */
	ST_NAME,         /* an attribute name */
	ST_AFTER_NAME,   /* blanks after it, '=' may follow */
	ST_BEFORE_VALUE, /* after '=' and blanks */
	ST_VALUE_DQ,
	ST_VALUE_SQ,
	ST_VALUE_UNQ,
	ST_BOGUS,        /* skipped up to a blank, '>' or "/>" */
	ST_SLASH,        /* a '/' that ends the tag if '>' follows */
	ST_COUNT,
	ST_NONE = ST_COUNT, /* the tag has ended */
};

static bool lx_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* htmlParseHTMLName's characters, and those a name may start with. */
static bool lx_name_char(unsigned char c)
{
	return g_ascii_isalnum(c) || c == ':' || c == '-' || c == '_' || c == '.';
}

static bool lx_name_start(unsigned char c)
{
	return g_ascii_isalpha(c) || c == '_' || c == ':' || c == '.';
}

/* The loop's top sees c: the next state; *attrs counts a name begun. */
static int lx_before_attr(unsigned char c, unsigned *attrs)
{
	if (lx_blank(c))
		return ST_BEFORE_ATTR;
	if (c == '>')
		return ST_NONE;
	if (c == '/')
		return ST_SLASH;
	if (lx_name_start(c)) {
		++*attrs;
		return ST_NAME;
	}
	return ST_BOGUS;
}

/* One step of one state.  run: the length of the run of name characters
 * that c ends (c included): libxml2 cuts names at 100 characters and its
 * loop goes on right there. */
static int lx_step(int st, unsigned char c, size_t run, unsigned *attrs)
{
	switch (st) {
	case ST_BEFORE_ATTR:
		return lx_before_attr(c, attrs);
	case ST_TAGNAME:
	case ST_NAME:
		if (lx_name_char(c)) {
			if (run == 1 || (run - 1) % 100 != 0)
				return st;
			/* The name was cut here: the loop goes on with c, an
			 * attribute name or bogus text (a digit, '-'). */
			return lx_before_attr(c, attrs);
		}
		if (st == ST_TAGNAME)
			return lx_before_attr(c, attrs);
		/* The name ended: as after blanks. */
		G_GNUC_FALLTHROUGH;
	case ST_AFTER_NAME:
		if (lx_blank(c))
			return ST_AFTER_NAME;
		if (c == '=')
			return ST_BEFORE_VALUE;
		return lx_before_attr(c, attrs);
	case ST_BEFORE_VALUE:
		if (lx_blank(c))
			return ST_BEFORE_VALUE;
		if (c == '"')
			return ST_VALUE_DQ;
		if (c == '\'')
			return ST_VALUE_SQ;
		return c == '>' ? ST_NONE : ST_VALUE_UNQ;
	case ST_VALUE_DQ:
		return c == '"' ? ST_BEFORE_ATTR : ST_VALUE_DQ;
	case ST_VALUE_SQ:
		return c == '\'' ? ST_BEFORE_ATTR : ST_VALUE_SQ;
	case ST_VALUE_UNQ:
		if (lx_blank(c))
			return ST_BEFORE_ATTR;
		return c == '>' ? ST_NONE : ST_VALUE_UNQ;
	case ST_SLASH:
		if (c == '>')
			return ST_NONE;
		/* The '/' was bogus: skipping goes on with c. */
		G_GNUC_FALLTHROUGH;
	case ST_BOGUS:
		if (lx_blank(c))
			return ST_BEFORE_ATTR;
		if (c == '>')
			return ST_NONE;
		return c == '/' ? ST_SLASH : ST_BOGUS;
	default:
		return ST_NONE;
	}
}

typedef struct lx_set {
	bool alive[ST_COUNT];
	unsigned attrs[ST_COUNT];
} lx_set;

/* Steps every live state over c into next; false if one would pass max. */
static bool lx_advance(const lx_set *cur, lx_set *next, unsigned char c, size_t run, unsigned max)
{
	memset(next, 0, sizeof *next);
	for (int st = 0; st < ST_COUNT; st++) {
		if (!cur->alive[st])
			continue;
		unsigned attrs = cur->attrs[st];
		int to = lx_step(st, c, run, &attrs);
		if (attrs > max)
			return false;
		if (to == ST_NONE)
			continue;
		next->alive[to] = true;
		next->attrs[to] = MAX(next->attrs[to], attrs);
	}
	return true;
}

/* Returns s itself when nothing had to change, else a new string (s freed). */
char *san_cap_attributes(char *s, unsigned max)
{
	lx_set set = { 0 }, next;
	GString *out = NULL;
	size_t run = 0, copied = 0;
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		run = lx_name_char(c) ? run + 1 : 0;
		if (!lx_advance(&set, &next, c, run, max)) {
			if (!out)
				out = g_string_new(NULL);
			g_string_append_len(out, s + copied, (gssize)(i - copied));
			g_string_append(out, "#\"'>");
			copied = i;
			memset(&set, 0, sizeof set);
			lx_advance(&set, &next, c, run, max);
		}
		set = next;
		/* Wherever we are, libxml2 may be in text, where '<' and a
		 * name character open a tag. */
		if (i > 0 && s[i - 1] == '<' && lx_name_start(c))
			set.alive[ST_TAGNAME] = true;
	}
	if (!out)
		return s;
	g_string_append(out, s + copied);
	g_free(s);
	return g_string_free(out, FALSE);
}

/* Test hook, deliberately not in mime.h: the cap with a small bound, so
 * that tests and the fuzz target can hold libxml2's tree against it. */
char *mv_html_cap_attributes(const char *html, unsigned max);

char *mv_html_cap_attributes(const char *html, unsigned max)
{
	return san_cap_attributes(g_strdup(html), max);
}
