/* sanitize_css: the CSS filter for <style> blocks and style attributes.
 * CSS is cut at every separator a browser could split at and judged piece
 * by piece, with the separators kept, so dropping a piece can never join
 * two harmless ones into a harmful one.  Comments, escapes and '<' go
 * before anything is judged; url()s are rewritten through the URL gate of
 * sanitize_url.c; the only at-rule kept is @media. */
#include "mime/sanitize_internal.h"

#include <string.h>

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

/* Copies piece onto dst with every url() replaced by the URL san_image_source
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
		char *url = san_image_source(s, raw);
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
void san_css_filter(san *s, const char *css, size_t len, bool sheet, GString *dst)
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
