/* libFuzzer target for mime/sanitize: any bytes through mv_html_sanitize,
 * with remote content off and on (and a cid: resolver), and each output
 * read back with the grammar our serialiser writes.  abort() on anything a
 * browser could run, fetch or parse differently: an element or attribute
 * outside the whitelist, an on* attribute, an unquoted or badly escaped
 * value, a link or image URL outside its allowed schemes, a '<' inside
 * <style>, a CSS url() to a remote host with remote content off, invalid
 * UTF-8, a document that is not complete.  Also the cap on attributes per
 * tag (sanitize_flood.c's guard against libxml2's quadratic attribute loop) is
 * held against libxml2 itself: capped at 3, no element may get more. */
#include "mime/mime.h"

#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test hook in sanitize_flood.c, not part of the interface. */
char *mv_html_cap_attributes(const char *html, unsigned max);

#define DOC_START "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
#define DOC_END "</body></html>"

static const char *const elements[] = {
	"a", "abbr", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "body",
	"br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn",
	"div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4",
	"h5", "h6", "head", "header", "hr", "html", "i", "img", "ins", "kbd", "li", "main", "mark",
	"meta", "nav", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span", "strike",
	"strong", "style", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
	"time", "tr", "tt", "u", "ul", "var", "wbr", NULL,
};

static const char *const attributes[] = {
	"abbr", "align", "alt", "bgcolor", "border", "cellpadding", "cellspacing", "charset", "class",
	"color", "colspan", "datetime", "dir", "face", "headers", "height", "href", "hspace", "id",
	"lang", "nowrap", "open", "rel", "rowspan", "scope", "size", "span", "src", "start", "style",
	"summary", "target", "title", "type", "valign", "vspace", "width", NULL,
};

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_html: invariant failed: %s (line %d)\n", \
			        #cond, __LINE__);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static char *resolver(void *opaque, const char *cid)
{
	return g_strdup_printf("/att/%s", cid);
}

static bool listed(const char *const *list, const char *s, size_t n)
{
	for (; *list; list++)
		if (strlen(*list) == n && strncmp(*list, s, n) == 0)
			return true;
	return false;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
	return g_ascii_strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_remote(const char *url)
{
	return has_prefix_ci(url, "http:") || has_prefix_ci(url, "https:");
}

/* Only our five escapes may follow a '&' in text and values. */
static void check_escapes(const char *s, size_t n)
{
	static const char *const escapes[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", NULL };
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '&')
			continue;
		bool known = false;
		for (const char *const *e = escapes; *e && !known; e++)
			known = n - i >= strlen(*e) && strncmp(s + i, *e, strlen(*e)) == 0;
		CHECK(known);
	}
}

static char *unescape(const char *s, size_t n)
{
	GString *u = g_string_sized_new(n);
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '&') {
			g_string_append_c(u, s[i]);
			continue;
		}
		const char *semi = memchr(s + i, ';', n - i);
		size_t len = (size_t)(semi - (s + i)) + 1;
		char c = strncmp(s + i, "&amp;", 5) == 0 ? '&' : strncmp(s + i, "&lt;", 4) == 0 ? '<' :
		         strncmp(s + i, "&gt;", 4) == 0 ? '>' : strncmp(s + i, "&quot;", 6) == 0 ? '"' : '\'';
		g_string_append_c(u, c);
		i += len - 1;
	}
	return g_string_free(u, FALSE);
}

/* CSS from a style attribute (unescaped) or a <style> block.  Every url()
 * must be url("allowed target"); the keyword checks run on the rest (a
 * resolved cid may spell anything harmless). */
static void check_css(const char *css, bool allow_remote)
{
	char *lower = g_ascii_strdown(css, -1);
	GString *rest = g_string_new(NULL);
	const char *p = lower;
	for (const char *u = strstr(p, "url("); u; u = strstr(p, "url(")) {
		CHECK(strncmp(u, "url(\"", 5) == 0);
		const char *target = u + 5;
		CHECK(strncmp(target, "data:image/", 11) == 0 || strncmp(target, "/att/", 5) == 0 ||
		      (allow_remote && is_remote(target)));
		const char *close = strchr(target, '"');
		CHECK(close && close[1] == ')');
		g_string_append_len(rest, p, target - p);
		p = close;
	}
	g_string_append(rest, p);
	CHECK(!strchr(rest->str, '<'));
	CHECK(!strchr(rest->str, '\\'));
	CHECK(!strstr(rest->str, "javascript:"));
	CHECK(!strstr(rest->str, "vbscript:"));
	CHECK(!strstr(rest->str, "expression"));
	CHECK(!strstr(rest->str, "@import"));
	CHECK(!strstr(rest->str, "behavior"));
	CHECK(!strstr(rest->str, "binding"));
	CHECK(!strstr(rest->str, "image-set("));
	g_string_free(rest, TRUE);
	g_free(lower);
}

/* One attribute value (still escaped) of element `element`. */
static void check_value(const char *element, size_t en, const char *name, size_t an, const char *v, size_t vn,
                        bool allow_remote)
{
	check_escapes(v, vn);
	char *value = unescape(v, vn);
	if (an == 4 && strncmp(name, "href", 4) == 0) {
		CHECK(en == 1 && element[0] == 'a');
		CHECK(is_remote(value) || has_prefix_ci(value, "mailto:"));
	}
	if (an == 3 && strncmp(name, "src", 3) == 0) {
		CHECK(en == 3 && strncmp(element, "img", 3) == 0);
		CHECK(has_prefix_ci(value, "data:image/") || strncmp(value, "/att/", 5) == 0 ||
		      (allow_remote && is_remote(value)));
	}
	if (an == 5 && strncmp(name, "style", 5) == 0)
		check_css(value, allow_remote);
	g_free(value);
}

static void check_output(const char *out, size_t len, bool allow_remote)
{
	CHECK(len <= MV_HTML_MAX_OUTPUT);
	CHECK(strlen(out) == len);
	CHECK(g_utf8_validate(out, (gssize)len, NULL));
	CHECK(g_str_has_prefix(out, DOC_START));
	CHECK(g_str_has_suffix(out, DOC_END));
	const char *p = out + strlen("<!DOCTYPE html>"), *end = out + len;
	while (p < end) {
		/* Text up to the next tag: escaped, no raw '>'. */
		const char *lt = memchr(p, '<', (size_t)(end - p));
		CHECK(lt);
		CHECK(!memchr(p, '>', (size_t)(lt - p)));
		check_escapes(p, (size_t)(lt - p));
		p = lt + 1;
		bool closing = *p == '/';
		if (closing)
			p++;
		const char *name = p;
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789");
		CHECK(listed(elements, name, n));
		p += n;
		while (!closing && *p == ' ') {
			p++;
			const char *attr = p;
			size_t an = strspn(p, "abcdefghijklmnopqrstuvwxyz");
			CHECK(listed(attributes, attr, an));
			CHECK(!(an >= 2 && attr[0] == 'o' && attr[1] == 'n'));
			p += an;
			CHECK(p[0] == '=' && p[1] == '"');
			p += 2;
			size_t vn = strcspn(p, "\"<>");
			CHECK(p[vn] == '"');
			check_value(name, n, attr, an, p, vn, allow_remote);
			p += vn + 1;
		}
		CHECK(*p == '>');
		p++;
		if (!closing && n == 5 && strncmp(name, "style", 5) == 0) {
			const char *close = strstr(p, "</style>");
			CHECK(close);
			char *css = g_strndup(p, (gsize)(close - p));
			check_css(css, allow_remote);
			g_free(css);
			p = close;
		}
	}
}

/* The most attributes libxml2 gives one element of html (html, head and
 * body merge those of repeated tags: left out). */
static unsigned most_attributes(const char *html)
{
	htmlDocPtr doc = htmlReadMemory(html, (int)strlen(html), NULL, "UTF-8",
	                                HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
	                                HTML_PARSE_NONET | HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC);
	unsigned most = 0;
	xmlNode *n = doc ? doc->children : NULL;
	while (n) {
		const char *name = (const char *)n->name;
		if (n->type == XML_ELEMENT_NODE && strcmp(name, "html") != 0 && strcmp(name, "head") != 0 &&
		    strcmp(name, "body") != 0) {
			unsigned k = 0;
			for (xmlAttr *a = n->properties; a; a = a->next)
				k++;
			most = MAX(most, k);
		}
		if (n->children) {
			n = n->children;
			continue;
		}
		while (n && !n->next)
			n = n->parent && n->parent->type == XML_ELEMENT_NODE ? n->parent : NULL;
		if (n)
			n = n->next;
	}
	if (doc)
		xmlFreeDoc(doc);
	return most;
}

static void check_attribute_cap(const uint8_t *data, size_t size)
{
	char *valid = g_utf8_make_valid((const char *)data, (gssize)size);
	char *capped = mv_html_cap_attributes(valid, 3);
	CHECK(most_attributes(capped) <= 3);
	g_free(capped);
	g_free(valid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_attribute_cap(data, size);
	for (int remote = 0; remote < 2; remote++) {
		mv_html_policy policy = { remote == 1, resolver, NULL };
		GString *out = g_string_new(NULL);
		bool had_remote = false, truncated = false;
		GError *error = NULL;
		CHECK(mv_html_sanitize((const char *)data, size, &policy, out, &had_remote, &truncated, &error) == 0);
		CHECK(!error);
		check_output(out->str, out->len, remote == 1);
		g_string_free(out, TRUE);
	}
	return 0;
}
