/* sanitize_elements: which elements and attributes of mail HTML survive,
 * and the start tags written for them.  The tables are the whitelist:
 * every element and attribute name in the output is spelled by them, never
 * copied from the input.  Each attribute value passes its own gate (links
 * and images through sanitize_url.c, style through sanitize_css.c) and is
 * escaped; <body>'s look moves to a <div>, since the output has its own
 * <body>.  Start tags are built into the run's scratch, so the walk in
 * sanitize.c writes them only when they fit. */
#include "mime/sanitize_internal.h"

#include <libxml/tree.h>
#include <string.h>

/* ---- tables ------------------------------------------------------------ */

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

const element_def *san_kept_element(const char *name)
{
	return bsearch(name, kept_elements, G_N_ELEMENTS(kept_elements), sizeof kept_elements[0], compare_def);
}

bool san_dropped_element(const char *name)
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
	san_append_escaped(dst, value, true);
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
		value = san_link_target(raw);
	} else if (is_img && g_ascii_strcasecmp(name, "src") == 0) {
		*name_r = "src";
		raw = attr_text(a);
		value = san_image_source(s, raw);
	} else if ((*name_r = global_attribute(name)) != NULL) {
		raw = attr_text(a);
		if (strcmp(*name_r, "style") == 0) {
			GString *css = g_string_new(NULL);
			san_css_filter(s, raw, strlen(raw), false, css);
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
const element_def *san_build_start_tag(san *s, const element_def *def, xmlNode *n)
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
const element_def *san_build_body_wrapper(san *s, xmlNode *body)
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
			san_css_filter(s, raw, strlen(raw), false, style);
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
