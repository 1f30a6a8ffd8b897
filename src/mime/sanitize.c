/* sanitize: untrusted mail HTML turned into a document Web Access may show.
 *
 * libxml2's HTML parser only builds the tree (no network, no files, no
 * encoding switch from a <meta>); everything that leaves is written by our
 * own serialiser from static tables — element and attribute names are ours,
 * every text and value is escaped, <style> is the one raw-text element and
 * never holds a '<'.  So the browser, parsing our output again, builds the
 * tree we checked and not the one a crafted input hoped for (mXSS).
 * URLs pass through one gate per use: links (http, https, mailto), images
 * and CSS url()s (cid: through the policy's resolver, data:image base64,
 * http(s) only when the policy allows remote content).  CSS is filtered
 * piece by piece with the separators kept, so dropping a piece can never
 * join two harmless ones into a harmful one.  The tree walk is iterative
 * with a depth bound and output is cut at MV_HTML_MAX_OUTPUT with room kept
 * for the closing tags, so the result is always a complete document; a
 * linear pass before parsing bounds attributes per tag, where libxml2
 * itself is quadratic. */
#include "mime/mime.h"

#include <libxml/HTMLparser.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <string.h>

/* Deeper elements are not descended into (libxml2 stops at 256 anyway). */
#define MAX_DEPTH 200
/* Longer input is cut (and reported as truncated): libxml2 needs about a
 * second per few MB, and the output may not be longer anyway. */
#define MAX_INPUT_BYTES MV_HTML_MAX_OUTPUT
/* More attributes in one start tag and the tag is ended early (see
 * cap_attributes): libxml2 checks each against all before it. */
#define MAX_TAG_ATTRIBUTES 100
/* A data:image URL longer than this is dropped. */
#define MAX_DATA_URL (2u * 1024u * 1024u)
/* Room kept below MV_HTML_MAX_OUTPUT for the closing tags of every open
 * element (at most MAX_DEPTH + the body wrapper, none longer than 16 bytes)
 * and the document's tail. */
#define CLOSING_RESERVE ((MAX_DEPTH + 2) * 16 + 64)

#define PARSE_OPTIONS (HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | \
                       HTML_PARSE_NONET | HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC)

#define DOC_HEAD "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
#define DOC_MIDDLE "</head><body>"
#define DOC_TAIL "</body></html>"

/* ---- tables ------------------------------------------------------------ */

enum { EL_VOID = 1 };

typedef struct element_def {
	const char *name;
	unsigned flags;
} element_def;

/* Kept with their children; sorted for bsearch. */
static const element_def kept_elements[] = {
	{ "a", 0 }, { "abbr", 0 }, { "address", 0 }, { "article", 0 }, { "aside", 0 },
	{ "b", 0 }, { "bdi", 0 }, { "bdo", 0 }, { "big", 0 }, { "blockquote", 0 },
	{ "br", EL_VOID }, { "caption", 0 }, { "center", 0 }, { "cite", 0 }, { "code", 0 },
	{ "col", EL_VOID }, { "colgroup", 0 }, { "dd", 0 }, { "del", 0 }, { "details", 0 },
	{ "dfn", 0 }, { "div", 0 }, { "dl", 0 }, { "dt", 0 }, { "em", 0 },
	{ "figcaption", 0 }, { "figure", 0 }, { "font", 0 }, { "footer", 0 },
	{ "h1", 0 }, { "h2", 0 }, { "h3", 0 }, { "h4", 0 }, { "h5", 0 }, { "h6", 0 },
	{ "header", 0 }, { "hr", EL_VOID }, { "i", 0 }, { "img", EL_VOID }, { "ins", 0 },
	{ "kbd", 0 }, { "li", 0 }, { "main", 0 }, { "mark", 0 }, { "nav", 0 },
	{ "ol", 0 }, { "p", 0 }, { "pre", 0 }, { "q", 0 }, { "s", 0 },
	{ "samp", 0 }, { "section", 0 }, { "small", 0 }, { "span", 0 }, { "strike", 0 },
	{ "strong", 0 }, { "sub", 0 }, { "summary", 0 }, { "sup", 0 }, { "table", 0 },
	{ "tbody", 0 }, { "td", 0 }, { "tfoot", 0 }, { "th", 0 }, { "thead", 0 },
	{ "time", 0 }, { "tr", 0 }, { "tt", 0 }, { "u", 0 }, { "ul", 0 },
	{ "var", 0 }, { "wbr", EL_VOID },
};

/* Dropped together with everything inside: active content, embedded
 * documents, form controls, head-only elements.  Sorted. */
static const char *const dropped_elements[] = {
	"applet", "audio", "base", "basefont", "bgsound", "button", "canvas", "datalist",
	"embed", "frame", "frameset", "iframe", "input", "isindex", "keygen", "link",
	"math", "meta", "noembed", "noframes", "noscript", "object", "optgroup",
	"option", "output", "param", "portal", "script", "select", "source", "svg",
	"template", "textarea", "title", "track", "video", "xml",
};

/* Attributes kept on any kept element (with the exceptions in attr_value).
 * Sorted. */
static const char *const global_attributes[] = {
	"abbr", "align", "alt", "bgcolor", "border", "cellpadding", "cellspacing",
	"class", "color", "colspan", "datetime", "dir", "face", "headers", "height",
	"hspace", "id", "lang", "nowrap", "open", "rowspan", "scope", "size", "span",
	"start", "style", "summary", "title", "type", "valign", "vspace", "width",
};

static const element_def span_def = { "span", 0 };
static const element_def div_def = { "div", 0 };

static int compare_def(const void *key, const void *member)
{
	return g_ascii_strcasecmp(key, ((const element_def *)member)->name);
}

static int compare_name(const void *key, const void *member)
{
	return g_ascii_strcasecmp(key, *(const char *const *)member);
}

static const element_def *kept_element(const char *name)
{
	return bsearch(name, kept_elements, G_N_ELEMENTS(kept_elements), sizeof kept_elements[0], compare_def);
}

static bool dropped_element(const char *name)
{
	return bsearch(name, dropped_elements, G_N_ELEMENTS(dropped_elements), sizeof(char *), compare_name);
}

/* The table's own spelling of a global attribute, or NULL. */
static const char *global_attribute(const char *name)
{
	const char *const *hit = bsearch(name, global_attributes, G_N_ELEMENTS(global_attributes),
	                                 sizeof(char *), compare_name);
	return hit ? *hit : NULL;
}

static bool is_named(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && g_ascii_strcasecmp((const char *)n->name, name) == 0;
}

/* ---- one run ------------------------------------------------------------- */

typedef struct san {
	const mv_html_policy *policy; /* never NULL: a default stands in */
	GString *out;
	size_t limit;        /* out->len may not pass this except for closing tags */
	bool full;           /* limit reached: nothing opens any more */
	bool had_remote;
	GString *scratch;    /* one start tag, built before it is known to fit */
} san;

static bool fits(san *s, size_t more)
{
	if (s->out->len + more <= s->limit)
		return true;
	s->full = true;
	return false;
}

/* The escape of one byte of text, or NULL when it stands for itself.
 * Controls other than tab and line ends become spaces. */
static const char *escape_of(unsigned char c, bool attr)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '"': return attr ? "&quot;" : NULL;
	case '\'': return attr ? "&#39;" : NULL;
	case '\t': case '\n': case '\r': return NULL;
	default: return (c < 0x20 || c == 0x7f) ? " " : NULL;
	}
}

/* Escapes valid UTF-8 text (attr: also both quotes) onto dst without
 * taking it past limit: a run that does not fit is cut before the first
 * character that would pass it, never inside an escape or a character.
 * Returns false when it stopped early. */
static bool escape_into(GString *dst, const char *t, size_t n, bool attr, size_t limit)
{
	const char *end = t + n;
	while (t < end) {
		const char *run = t;
		while (t < end && !escape_of((unsigned char)*t, attr))
			t++;
		size_t room = dst->len < limit ? limit - dst->len : 0;
		if ((size_t)(t - run) > room) {
			const char *cut = run + room;
			while (cut > run && ((unsigned char)*cut & 0xc0) == 0x80)
				cut--;
			g_string_append_len(dst, run, cut - run);
			return false;
		}
		g_string_append_len(dst, run, t - run);
		if (t == end)
			break;
		const char *rep = escape_of((unsigned char)*t++, attr);
		if (dst->len + strlen(rep) > limit)
			return false;
		g_string_append(dst, rep);
	}
	return true;
}

/* libxml2 hands out UTF-8, but the output's validity should not rest on
 * that: anything invalid is replaced before it is escaped. */
static void append_escaped(GString *dst, const char *t, bool attr)
{
	if (g_utf8_validate(t, -1, NULL)) {
		escape_into(dst, t, strlen(t), attr, G_MAXSIZE);
		return;
	}
	char *valid = g_utf8_make_valid(t, -1);
	escape_into(dst, valid, strlen(valid), attr, G_MAXSIZE);
	g_free(valid);
}

/* ---- attribute floods ------------------------------------------------------
 * libxml2 2.9's htmlParseStartTag compares every attribute with all earlier
 * ones and appends it at the end of a linked list: a tag with 200,000
 * attributes takes minutes.  This pass bounds attributes per start tag
 * without trusting itself to know where tags are: it runs a copy of that
 * function's attribute loop as a set of states — a new machine at every
 * '<' followed by a name character, wherever it stands, each state keeping
 * the most attributes any machine in it has begun — so whatever libxml2
 * is in, one of our states follows it.  When a state would pass
 * MAX_TAG_ATTRIBUTES, "#\"'>" is written first: from every state of the
 * loop it ends the start tag without beginning another attribute ('#' is
 * no name character: it ends a name, is skipped as bogus, or after '=' is
 * an unquoted value; the quotes close either quoted value; '>' ends the
 * tag), so the rest of the flood is text.  A false alarm needs a '<' and
 * a name character in a comment, script, style or attribute value with a
 * hundred words and no '>' after them.  Linear; other input is untouched. */

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
static char *cap_attributes(char *s, unsigned max)
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
	return cap_attributes(g_strdup(html), max);
}

/* ---- input ---------------------------------------------------------------- */

/* Valid UTF-8 without NULs, C0 controls (but tab and line ends) or the
 * non-characters libxml2 refuses, so the parser never stops on a byte. */
static char *clean_input(const char *html, size_t len, bool *cut_r)
{
	*cut_r = len > MAX_INPUT_BYTES;
	if (*cut_r)
		len = MAX_INPUT_BYTES;
	char *clean = g_utf8_make_valid(html, (gssize)len);
	for (unsigned char *p = (unsigned char *)clean; *p; p++) {
		if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
			*p = ' ';
		/* U+FFFE and U+FFFF (EF BF BE/BF) become U+FFFD in place. */
		else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))
			p[2] = 0xbd;
	}
	return cap_attributes(clean, MAX_TAG_ATTRIBUTES);
}

/* ---- URLs ------------------------------------------------------------------ */

/* What a browser's URL parser does first: strip leading and trailing C0
 * controls and spaces, remove tabs and line ends anywhere ("java\tscript:"
 * is "javascript:").  Checking and emitting this form means the browser
 * sees the URL we judged. */
static char *clean_url(const char *v)
{
	while (*v && (unsigned char)*v <= 0x20)
		v++;
	GString *u = g_string_new(NULL);
	for (; *v; v++)
		if (*v != '\t' && *v != '\n' && *v != '\r')
			g_string_append_c(u, *v);
	while (u->len && (unsigned char)u->str[u->len - 1] <= 0x20)
		g_string_truncate(u, u->len - 1);
	return g_string_free(u, FALSE);
}

/* The scheme of an absolute URL ("http"), lower-cased into buf, or false
 * for a relative one (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )). */
static bool url_scheme(const char *u, char *buf, size_t size)
{
	if (!g_ascii_isalpha(*u))
		return false;
	size_t i = 0;
	for (; u[i] && u[i] != ':'; i++)
		if (!g_ascii_isalnum(u[i]) && u[i] != '+' && u[i] != '-' && u[i] != '.')
			return false;
	if (u[i] != ':' || i >= size)
		return false;
	for (size_t k = 0; k < i; k++)
		buf[k] = g_ascii_tolower(u[k]);
	buf[i] = '\0';
	return true;
}

static bool is_http(const char *scheme)
{
	return strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
}

/* The href of a kept link, a new string, or NULL.  Relative links and
 * fragments are dropped: there is no base they could honestly resolve
 * against; "//host" means https. */
static char *link_target(const char *raw)
{
	char *u = clean_url(raw);
	char scheme[16];
	if (url_scheme(u, scheme, sizeof scheme) && (is_http(scheme) || strcmp(scheme, "mailto") == 0))
		return u;
	if (u[0] == '/' && u[1] == '/' && u[2]) {
		char *https = g_strconcat("https:", u, NULL);
		g_free(u);
		return https;
	}
	g_free(u);
	return NULL;
}

static bool is_base64_char(char c)
{
	return g_ascii_isalnum(c) || c == '+' || c == '/' || c == '=';
}

/* data:image/(png|gif|jpeg|jpg|webp);base64,<base64>, at most MAX_DATA_URL. */
static bool is_data_image(const char *u)
{
	static const char *const types[] = { "png", "gif", "jpeg", "jpg", "webp" };
	size_t len = strlen(u);
	if (len > MAX_DATA_URL || g_ascii_strncasecmp(u, "data:image/", 11) != 0)
		return false;
	const char *p = u + 11;
	bool typed = false;
	for (size_t i = 0; i < G_N_ELEMENTS(types) && !typed; i++) {
		size_t tl = strlen(types[i]);
		if (g_ascii_strncasecmp(p, types[i], tl) == 0 && g_ascii_strncasecmp(p + tl, ";base64,", 8) == 0) {
			p += tl + 8;
			typed = true;
		}
	}
	if (!typed)
		return false;
	for (; *p; p++)
		if (!is_base64_char(*p))
			return false;
	return true;
}

/* cid:<id> (RFC 2392: angle brackets optional, %-escapes decoded) through
 * the policy's resolver; a new string or NULL. */
static char *resolve_cid(san *s, const char *u)
{
	if (!s->policy->resolve_cid)
		return NULL;
	const char *id = u + 4, *end = id + strlen(id);
	while (id < end && (*id == '<' || *id == ' '))
		id++;
	while (end > id && (end[-1] == '>' || end[-1] == ' '))
		end--;
	if (end == id)
		return NULL;
	char *raw = g_strndup(id, (gsize)(end - id));
	/* An escape may spell bytes that are not UTF-8 ("%bC"): the resolver
	 * then sees the id as written, and what it answers must be text. */
	char *decoded = g_uri_unescape_string(raw, NULL);
	if (decoded && !g_utf8_validate(decoded, -1, NULL))
		g_clear_pointer(&decoded, g_free);
	char *url = s->policy->resolve_cid(s->policy->opaque, decoded ? decoded : raw);
	g_free(decoded);
	g_free(raw);
	if (url && !g_utf8_validate(url, -1, NULL))
		g_clear_pointer(&url, g_free);
	return url;
}

/* The one gate for everything the browser would fetch (img src, CSS
 * url()): the URL to emit, a new string, or NULL to drop it.  Remote
 * references are noted whatever the policy says. */
static char *image_source(san *s, const char *raw)
{
	char *u = clean_url(raw);
	char scheme[16];
	bool has_scheme = url_scheme(u, scheme, sizeof scheme);
	bool remote = (has_scheme && is_http(scheme)) || (u[0] == '/' && u[1] == '/' && u[2]);
	if (remote) {
		s->had_remote = true;
		if (!s->policy->allow_remote) {
			g_free(u);
			return NULL;
		}
		if (has_scheme)
			return u;
		char *https = g_strconcat("https:", u, NULL);
		g_free(u);
		return https;
	}
	char *result = NULL;
	if (has_scheme && strcmp(scheme, "cid") == 0)
		result = resolve_cid(s, u);
	else if (has_scheme && strcmp(scheme, "data") == 0 && is_data_image(u))
		result = g_strdup(u);
	g_free(u);
	return result;
}

/* ---- CSS ------------------------------------------------------------------ */

static bool css_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Comments removed first (a comment between "expres" and "sion(" would
 * hide it), then backslashes (escapes can spell anything) and '<' (so
 * "</style" cannot be written).  "<!--" and "-->", which old mail wraps
 * its whole style sheet in, become spaces (CSS ignores them too; left
 * half-removed they would spoil the first selector).  Only ASCII bytes
 * are dropped: UTF-8 stays valid.  An unterminated comment runs to the
 * end, as in CSS.  Everything after this checks and writes the result, so
 * whatever these removals join is judged joined. */
static GString *css_preclean(const char *css, size_t len)
{
	GString *c = g_string_sized_new(len);
	const char *p = css, *end = css + len;
	while (p < end) {
		if (p[0] == '/' && p + 1 < end && p[1] == '*') {
			const char *close = g_strstr_len(p + 2, end - p - 2, "*/");
			if (!close)
				break;
			p = close + 2;
			continue;
		}
		if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
			g_string_append_c(c, ' ');
			p += 4;
			continue;
		}
		if (end - p >= 3 && memcmp(p, "-->", 3) == 0) {
			g_string_append_c(c, ' ');
			p += 3;
			continue;
		}
		unsigned char ch = (unsigned char)*p++;
		if (ch == '\\' || ch == '<')
			continue;
		if ((ch < 0x20 && !css_space((char)ch)) || ch == 0x7f)
			ch = ' ';
		g_string_append_c(c, (char)ch);
	}
	return c;
}

static bool starts_url(const char *p, const char *end)
{
	return end - p >= 4 && g_ascii_strncasecmp(p, "url(", 4) == 0;
}

/* A character our url() accepts: printable, and nothing that ends or
 * changes a CSS token (quotes, parens, braces, whitespace). */
static bool css_url_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("\"'(){}\\<", c);
}

/* The strict url() this filter understands: p just past "url(", optional
 * whitespace, an optional quote, css_url_chars, the same quote, optional
 * whitespace, ')'.  A browser reads such a span as one url() whatever
 * surrounds it, so the splitter may step over the ';' of a data: URL
 * inside it.  On success: the URL and the position after ')'. */
static bool css_url_token(const char *p, const char *end, const char **url_r, size_t *len_r, const char **after_r)
{
	while (p < end && css_space(*p))
		p++;
	char quote = (p < end && (*p == '"' || *p == '\'')) ? *p++ : 0;
	const char *u = p;
	while (p < end && css_url_char((unsigned char)*p))
		p++;
	*url_r = u;
	*len_r = (size_t)(p - u);
	if (quote) {
		if (p >= end || *p != quote)
			return false;
		p++;
	}
	while (p < end && css_space(*p))
		p++;
	if (p >= end || *p != ')' || *len_r == 0)
		return false;
	*after_r = p + 1;
	return true;
}

/* Writes a URL into a quoted CSS url(): anything that could end the
 * string or the token is %-escaped (no backslash escapes: they are removed
 * on the way in, and a URL does not need them). */
static void append_css_url(GString *dst, const char *url)
{
	g_string_append(dst, "url(\"");
	for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
		if (css_url_char(*p))
			g_string_append_c(dst, (char)*p);
		else
			g_string_append_printf(dst, "%%%02X", *p);
	}
	g_string_append(dst, "\")");
}

/* Substrings that condemn a piece wherever they stand, lower case. */
static const char *const css_banned[] = {
	"expression",  /* IE's script in CSS */
	"script:",     /* javascript:, vbscript:, livescript: */
	"behavior",    /* IE .htc */
	"binding",     /* -moz-binding */
	"progid",      /* IE filters that fetch (AlphaImageLoader src=) */
	"image-set(",  /* fetches bare strings, no url() needed */
	"image(",
	"cross-fade(",
	"element(",
	"src(",
	"@import",
};

static bool css_banned_in(const char *piece, size_t len)
{
	char *lower = g_ascii_strdown(piece, (gssize)len);
	bool banned = false;
	for (size_t i = 0; i < G_N_ELEMENTS(css_banned) && !banned; i++)
		banned = strstr(lower, css_banned[i]) != NULL;
	g_free(lower);
	return banned;
}

/* Copies piece onto dst with every url() replaced by the URL image_source
 * allows, or returns false when one is refused (the piece is dropped). */
static bool css_rewrite_urls(san *s, const char *p, size_t len, GString *dst)
{
	const char *end = p + len;
	while (p < end) {
		if (!starts_url(p, end)) {
			g_string_append_c(dst, *p++);
			continue;
		}
		const char *u, *after;
		size_t ulen;
		if (!css_url_token(p + 4, end, &u, &ulen, &after))
			return false;
		char *raw = g_strndup(u, ulen);
		char *url = image_source(s, raw);
		g_free(raw);
		if (!url)
			return false;
		append_css_url(dst, url);
		g_free(url);
		p = after;
	}
	return true;
}

/* "position: fixed" lets a message cover the page around it: made
 * absolute. */
static void css_unfix_position(GString *decl)
{
	const char *colon = strchr(decl->str, ':');
	if (!colon)
		return;
	char *name = g_strstrip(g_ascii_strdown(decl->str, colon - decl->str));
	char *value = g_ascii_strdown(colon + 1, -1);
	if (strcmp(name, "position") == 0 && strstr(value, "fixed"))
		g_string_assign(decl, "position:absolute");
	g_free(name);
	g_free(value);
}

/* The first '@' outside url() tokens (Content-IDs are full of them), or
 * NULL: an '@' anywhere else may start an at-rule. */
static const char *css_at_sign(const char *p, const char *end)
{
	while (p < end) {
		const char *u, *after;
		size_t ulen;
		if (starts_url(p, end) && css_url_token(p + 4, end, &u, &ulen, &after)) {
			p = after;
			continue;
		}
		if (*p == '@')
			return p;
		p++;
	}
	return NULL;
}

typedef enum { PIECE_DECLARATION, PIECE_PRELUDE } piece_kind;

/* One piece between separators, trimmed: its safe form appended to dst,
 * or false to drop it.  The only @-rule kept is an @media prelude. */
static bool css_piece(san *s, const char *p, size_t len, piece_kind kind, GString *dst)
{
	while (len && css_space(*p))
		p++, len--;
	while (len && css_space(p[len - 1]))
		len--;
	if (len == 0 || css_banned_in(p, len))
		return false;
	const char *at = css_at_sign(p, p + len);
	if (at) {
		bool media = at == p && kind == PIECE_PRELUDE && len > 6 && g_ascii_strncasecmp(p, "@media", 6) == 0 &&
		             (css_space(p[6]) || p[6] == '(') && !css_at_sign(p + 1, p + len);
		if (!media)
			return false;
	}
	GString *piece = g_string_new(NULL);
	bool ok = css_rewrite_urls(s, p, len, piece);
	if (ok && kind == PIECE_DECLARATION)
		css_unfix_position(piece);
	if (ok)
		g_string_append_len(dst, piece->str, (gssize)piece->len);
	g_string_free(piece, TRUE);
	return ok;
}

/* Filters CSS onto dst.  sheet: a <style> block (rules, @media); else a
 * style attribute (declarations only: braces act as ';').
 *
 * The text is cut at every ';', '{' and '}' — a browser never splits a
 * declaration anywhere else, though it may split at fewer of them (inside
 * strings), so every declaration the browser sees starts with one of our
 * pieces and is made only of pieces we checked.  Each kept piece is
 * written with its separator, so pieces never touch.  A rule whose
 * prelude is dropped (a selector with url(), @font-face, @keyframes...)
 * is skipped to its closing brace. */
static void css_filter(san *s, const char *css, size_t len, bool sheet, GString *dst)
{
	GString *c = css_preclean(css, len);
	const char *p = c->str, *end = c->str + c->len, *start = p;
	int depth = 0, skip = 0;
	for (;;) {
		if (p < end && starts_url(p, end)) {
			const char *u, *after;
			size_t ulen;
			if (css_url_token(p + 4, end, &u, &ulen, &after)) {
				p = after;
				continue;
			}
		}
		char sep = p < end ? *p : '\0';
		if (sep != '\0' && sep != ';' && sep != '{' && sep != '}') {
			p++;
			continue;
		}
		size_t plen = (size_t)(p - start);
		if (!sheet) {
			if (css_piece(s, start, plen, PIECE_DECLARATION, dst))
				g_string_append_c(dst, ';');
		} else if (sep == '{') {
			if (skip || !css_piece(s, start, plen, PIECE_PRELUDE, dst))
				skip++;
			else {
				g_string_append_c(dst, '{');
				depth++;
			}
		} else if (skip) {
			if (sep == '}')
				skip--;
		} else {
			/* Declarations live inside a rule; at the top level a ';'
			 * only ends statements we drop (@charset, @import). */
			if (depth > 0 && css_piece(s, start, plen, PIECE_DECLARATION, dst))
				g_string_append_c(dst, ';');
			if (sep == '}' && depth > 0) {
				g_string_append_c(dst, '}');
				depth--;
			}
		}
		if (sep == '\0')
			break;
		start = ++p;
	}
	for (; depth > 0; depth--)
		g_string_append_c(dst, '}');
	g_string_free(c, TRUE);
}

/* ---- elements and attributes -------------------------------------------- */

static char *attr_text(xmlAttr *a)
{
	xmlChar *v = xmlNodeGetContent((xmlNode *)a);
	char *copy = g_strdup(v ? (const char *)v : "");
	xmlFree(v);
	return copy;
}

static void append_attr(GString *dst, const char *name, const char *value)
{
	g_string_append_printf(dst, " %s=\"", name);
	append_escaped(dst, value, true);
	g_string_append_c(dst, '"');
}

static bool list_type_ok(const char *element, const char *value)
{
	static const char *const ok[] = { "1", "a", "A", "i", "I", "disc", "circle", "square" };
	if (strcmp(element, "ol") != 0 && strcmp(element, "ul") != 0 && strcmp(element, "li") != 0)
		return false;
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++)
		if (strcmp(value, ok[i]) == 0)
			return true;
	return false;
}

/* The value to write for one attribute of element def, a new string, or
 * NULL to drop it; *name_r gets our table's spelling of the name. */
static char *attr_value(san *s, const element_def *def, xmlAttr *a, const char **name_r)
{
	const char *name = (const char *)a->name;
	bool is_a = strcmp(def->name, "a") == 0, is_img = strcmp(def->name, "img") == 0;
	char *raw = NULL, *value = NULL;
	if (is_a && g_ascii_strcasecmp(name, "href") == 0) {
		*name_r = "href";
		raw = attr_text(a);
		value = link_target(raw);
	} else if (is_img && g_ascii_strcasecmp(name, "src") == 0) {
		*name_r = "src";
		raw = attr_text(a);
		value = image_source(s, raw);
	} else if ((*name_r = global_attribute(name)) != NULL) {
		raw = attr_text(a);
		if (strcmp(*name_r, "style") == 0) {
			GString *css = g_string_new(NULL);
			css_filter(s, raw, strlen(raw), false, css);
			if (css->len)
				value = g_strdup(css->str);
			g_string_free(css, TRUE);
		} else if (strcmp(*name_r, "type") == 0) {
			value = list_type_ok(def->name, raw) ? g_strdup(raw) : NULL;
		} else if (strcmp(*name_r, "open") == 0) {
			value = strcmp(def->name, "details") == 0 ? g_strdup(raw) : NULL;
		} else {
			value = g_strdup(raw);
		}
	}
	g_free(raw);
	return value;
}

/* "<name attrs>" of a kept element into s->scratch.  An <a> without a
 * usable href becomes a <span> (its text and style stay, no link). */
static const element_def *build_start_tag(san *s, const element_def *def, xmlNode *n)
{
	GString *attrs = g_string_new(NULL);
	bool has_href = false;
	for (xmlAttr *a = n->properties; a; a = a->next) {
		const char *name = NULL;
		char *value = attr_value(s, def, a, &name);
		if (!value)
			continue;
		if (strcmp(name, "href") == 0 && has_href) {
			g_free(value);
			continue;
		}
		has_href |= strcmp(name, "href") == 0;
		append_attr(attrs, name, value);
		g_free(value);
	}
	if (strcmp(def->name, "a") == 0) {
		if (has_href)
			g_string_append(attrs, " target=\"_blank\" rel=\"noopener noreferrer\"");
		else
			def = &span_def;
	}
	g_string_printf(s->scratch, "<%s%s>", def->name, attrs->str);
	g_string_free(attrs, TRUE);
	return def;
}

/* A colour value from an old body attribute, safe inside CSS. */
static bool plain_colour(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 32)
		return false;
	for (; *v; v++)
		if (!g_ascii_isalnum(*v) && *v != '#')
			return false;
	return true;
}

/* <body>'s look (style, bgcolor, text colour, class...) moves to a <div>
 * around the content, if it has any; NULL when there is nothing to keep. */
static const element_def *build_body_wrapper(san *s, xmlNode *body)
{
	GString *style = g_string_new(NULL);
	GString *attrs = g_string_new(NULL);
	for (xmlAttr *a = body->properties; a; a = a->next) {
		const char *name = (const char *)a->name;
		char *raw = attr_text(a);
		if (g_ascii_strcasecmp(name, "bgcolor") == 0 && plain_colour(raw))
			g_string_append_printf(style, "background-color:%s;", raw);
		else if (g_ascii_strcasecmp(name, "text") == 0 && plain_colour(raw))
			g_string_append_printf(style, "color:%s;", raw);
		else if (g_ascii_strcasecmp(name, "style") == 0)
			css_filter(s, raw, strlen(raw), false, style);
		else if (g_ascii_strcasecmp(name, "class") == 0 || g_ascii_strcasecmp(name, "id") == 0 ||
		         g_ascii_strcasecmp(name, "dir") == 0 || g_ascii_strcasecmp(name, "lang") == 0)
			append_attr(attrs, global_attribute(name), raw);
		g_free(raw);
	}
	if (style->len)
		append_attr(attrs, "style", style->str);
	const element_def *def = attrs->len ? &div_def : NULL;
	if (def)
		g_string_printf(s->scratch, "<div%s>", attrs->str);
	g_string_free(style, TRUE);
	g_string_free(attrs, TRUE);
	return def;
}

/* Word's downlevel-revealed conditionals ("<![if !supportLists]>",
 * "<![endif]>") are hidden by browsers but reach us as text: the length
 * of such a marker at t, or 0. */
static size_t conditional_marker(const char *t, const char *end)
{
	if (end - t < 4 || memcmp(t, "<![", 3) != 0)
		return 0;
	const char *w = t + 3;
	if (!(end - w >= 2 && g_ascii_strncasecmp(w, "if", 2) == 0) &&
	    !(end - w >= 5 && g_ascii_strncasecmp(w, "endif", 5) == 0))
		return 0;
	/* Only up to the next '<': a long run of "<![if" without '>' must not
	 * be scanned again for each of them. */
	const char *next_lt = memchr(w, '<', (size_t)(end - w));
	const char *limit = next_lt ? next_lt : end;
	const char *gt = memchr(w, '>', (size_t)(limit - w));
	return gt ? (size_t)(gt + 1 - t) : 0;
}

static void emit_text(san *s, const char *text)
{
	char *valid = g_utf8_validate(text, -1, NULL) ? NULL : g_utf8_make_valid(text, -1);
	const char *t = valid ? valid : text, *end = t + strlen(t);
	while (t < end && !s->full) {
		const char *lt = memchr(t, '<', (size_t)(end - t));
		const char *stop = lt ? lt : end;
		if (!escape_into(s->out, t, (size_t)(stop - t), false, s->limit)) {
			s->full = true;
			break;
		}
		t = stop;
		if (t == end)
			break;
		size_t marker = conditional_marker(t, end);
		if (marker) {
			t += marker;
			continue;
		}
		if (!escape_into(s->out, t, 1, false, s->limit))
			s->full = true;
		t++;
	}
	g_free(valid);
}

/* ---- the walk ------------------------------------------------------------- */

/* What visiting a node decided: descend into it, and the element whose end
 * tag closes it (NULL when nothing was opened). */
typedef struct visit {
	bool descend;
	const element_def *opened;
} visit;

typedef visit (*visit_fn)(san *s, xmlNode *n);

typedef struct frame {
	xmlNode *node;
	const element_def *opened;
} frame;

static void close_element(san *s, const element_def *def)
{
	if (def && !(def->flags & EL_VOID))
		g_string_append_printf(s->out, "</%s>", def->name);
}

/* Pre-order walk over first and its siblings with an explicit stack:
 * nothing below MAX_DEPTH is visited, and once output is full no node is,
 * but every element opened is closed (CLOSING_RESERVE pays for that). */
static void walk(san *s, xmlNode *first, visit_fn fn)
{
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(frame));
	xmlNode *n = first;
	for (;;) {
		while (n && !s->full) {
			visit v = fn(s, n);
			if (v.descend && n->children && stack->len < MAX_DEPTH) {
				frame f = { n, v.opened };
				g_array_append_val(stack, f);
				n = n->children;
				continue;
			}
			close_element(s, v.opened);
			n = n->next;
		}
		if (stack->len == 0)
			break;
		frame f = g_array_index(stack, frame, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		close_element(s, f.opened);
		n = f.node->next;
	}
	g_array_free(stack, TRUE);
}

/* Head pass: every <style> outside dropped subtrees, filtered. */
static visit visit_for_styles(san *s, xmlNode *n)
{
	visit v = { false, NULL };
	if (n->type != XML_ELEMENT_NODE || dropped_element((const char *)n->name))
		return v;
	if (!is_named(n, "style")) {
		v.descend = true;
		return v;
	}
	xmlChar *content = xmlNodeGetContent(n);
	GString *css = g_string_new(NULL);
	if (content)
		css_filter(s, (const char *)content, strlen((const char *)content), true, css);
	xmlFree(content);
	if (css->len && fits(s, css->len + 15)) {
		g_string_append(s->out, "<style>");
		g_string_append_len(s->out, css->str, (gssize)css->len);
		g_string_append(s->out, "</style>");
	}
	g_string_free(css, TRUE);
	return v;
}

/* Writes s->scratch if it fits; the element is open only then. */
static visit open_scratch(san *s, const element_def *def)
{
	visit v = { true, NULL };
	if (!fits(s, s->scratch->len))
		return (visit){ false, NULL };
	g_string_append_len(s->out, s->scratch->str, (gssize)s->scratch->len);
	v.opened = def;
	v.descend = !(def->flags & EL_VOID);
	return v;
}

/* Body pass: kept elements written, html/head/body and unknown elements
 * unwrapped, dropped ones skipped whole, text escaped, comments, CDATA
 * outside <style>, processing instructions and doctypes ignored. */
static visit visit_for_body(san *s, xmlNode *n)
{
	visit skip = { false, NULL }, unwrap = { true, NULL };
	if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
		if (n->content)
			emit_text(s, (const char *)n->content);
		return skip;
	}
	if (n->type != XML_ELEMENT_NODE)
		return skip;
	const char *name = (const char *)n->name;
	if (dropped_element(name) || is_named(n, "style"))
		return skip;
	if (is_named(n, "body")) {
		const element_def *wrapper = build_body_wrapper(s, n);
		return wrapper ? open_scratch(s, wrapper) : unwrap;
	}
	const element_def *def = kept_element(name);
	if (!def)
		return unwrap;
	def = build_start_tag(s, def, n);
	return open_scratch(s, def);
}

/* ---- entry point ------------------------------------------------------------ */

static gpointer init_libxml(gpointer unused)
{
	xmlInitParser();
	return NULL;
}

/* libxml2's tree builder drops the prefix of "o:p" (Word writes one after
 * nearly every paragraph) and leaves no trace of it: a <p> inside the
 * <p>.  Browsers see an unknown element; so do we, as "o-p". */
static void start_element(void *ctx, const xmlChar *name, const xmlChar **atts)
{
	if (!strchr((const char *)name, ':')) {
		xmlSAX2StartElement(ctx, name, atts);
		return;
	}
	char *unprefixed = g_strdup((const char *)name);
	g_strdelimit(unprefixed, ":", '-');
	xmlSAX2StartElement(ctx, (const xmlChar *)unprefixed, atts);
	g_free(unprefixed);
}

/* Parses clean (valid UTF-8, no NUL) and writes styles, the middle and
 * the body; -1 only when libxml2 cannot allocate its parser. */
static int sanitize_tree(san *s, const char *clean, GError **error)
{
	htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
	if (!ctxt || !ctxt->sax) {
		if (ctxt)
			htmlFreeParserCtxt(ctxt);
		g_set_error(error, MV_ERROR, MV_ERR_IO, "HTML sanitiser: libxml2 could not allocate a parser");
		return -1;
	}
	ctxt->sax->startElement = start_element;
	htmlDocPtr doc = htmlCtxtReadMemory(ctxt, clean, (int)strlen(clean), NULL, "UTF-8", PARSE_OPTIONS);
	/* No document (libxml2 gives none for some empty inputs): an empty body. */
	if (doc)
		walk(s, doc->children, visit_for_styles);
	g_string_append(s->out, DOC_MIDDLE);
	if (doc) {
		walk(s, doc->children, visit_for_body);
		xmlFreeDoc(doc);
	}
	htmlFreeParserCtxt(ctxt);
	return 0;
}

int mv_html_sanitize(const char *html, size_t len, const mv_html_policy *policy, GString *out,
                     bool *had_remote_r, bool *truncated_r, GError **error)
{
	static GOnce libxml_once = G_ONCE_INIT;
	static const mv_html_policy no_policy = { false, NULL, NULL };
	g_once(&libxml_once, init_libxml, NULL);

	san s = {
		.policy = policy ? policy : &no_policy,
		.out = out,
		.limit = MV_HTML_MAX_OUTPUT - CLOSING_RESERVE,
		.scratch = g_string_new(NULL),
	};
	bool input_cut = false;
	int rc = 0;
	g_string_assign(out, DOC_HEAD);
	if (html && len) {
		char *clean = clean_input(html, len, &input_cut);
		rc = sanitize_tree(&s, clean, error);
		g_free(clean);
	}
	/* Also on failure the caller holds a valid (empty) document. */
	if (!(html && len) || rc != 0)
		g_string_assign(out, DOC_HEAD DOC_MIDDLE);
	g_string_append(out, DOC_TAIL);
	g_string_free(s.scratch, TRUE);
	if (had_remote_r)
		*had_remote_r = s.had_remote;
	if (truncated_r)
		*truncated_r = s.full || input_cut;
	return rc;
}
