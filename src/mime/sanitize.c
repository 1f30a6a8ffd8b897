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
 * itself is quadratic.
 *
 * This file owns one run: the entry point, input cleaning, the parse, the
 * two walks (styles for the head, then the body) and the serialiser's
 * output side (escaping, the output bound, text).  What is kept is decided
 * elsewhere, one concept a file: sanitize_elements.c (element and
 * attribute tables, start tags), sanitize_url.c (the URL gates),
 * sanitize_css.c (the CSS filter), sanitize_flood.c (the attribute cap
 * run before parsing); sanitize_internal.h holds what they share. */
#include "mime/mime.h"
#include "mime/sanitize_internal.h"

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
 * san_cap_attributes): libxml2 checks each against all before it. */
#define MAX_TAG_ATTRIBUTES 100
/* Room kept below MV_HTML_MAX_OUTPUT for the closing tags of every open
 * element (at most MAX_DEPTH + the body wrapper, none longer than 16 bytes)
 * and the document's tail. */
#define CLOSING_RESERVE ((MAX_DEPTH + 2) * 16 + 64)

#define PARSE_OPTIONS (HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | \
                       HTML_PARSE_NONET | HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC)

#define DOC_HEAD "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
#define DOC_MIDDLE "</head><body>"
#define DOC_TAIL "</body></html>"

/* ---- one run ------------------------------------------------------------- */

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
void san_append_escaped(GString *dst, const char *t, bool attr)
{
	if (g_utf8_validate(t, -1, NULL)) {
		escape_into(dst, t, strlen(t), attr, G_MAXSIZE);
		return;
	}
	char *valid = g_utf8_make_valid(t, -1);
	escape_into(dst, valid, strlen(valid), attr, G_MAXSIZE);
	g_free(valid);
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
	return san_cap_attributes(clean, MAX_TAG_ATTRIBUTES);
}

/* ---- text ----------------------------------------------------------------- */

static bool is_named(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && g_ascii_strcasecmp((const char *)n->name, name) == 0;
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
	if (n->type != XML_ELEMENT_NODE || san_dropped_element((const char *)n->name))
		return v;
	if (!is_named(n, "style")) {
		v.descend = true;
		return v;
	}
	xmlChar *content = xmlNodeGetContent(n);
	GString *css = g_string_new(NULL);
	if (content)
		san_css_filter(s, (const char *)content, strlen((const char *)content), true, css);
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
	if (san_dropped_element(name) || is_named(n, "style"))
		return skip;
	if (is_named(n, "body")) {
		const element_def *wrapper = san_build_body_wrapper(s, n);
		return wrapper ? open_scratch(s, wrapper) : unwrap;
	}
	const element_def *def = san_kept_element(name);
	if (!def)
		return unwrap;
	def = san_build_start_tag(s, def, n);
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
