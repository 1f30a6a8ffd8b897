/* extract: turning a decoded MIME part into indexable UTF-8 text.
 *
 * A small table of extractors, each saying which parts it accepts and how to
 * read them, so that later issues add PDF and Office readers by registering
 * one more entry instead of touching the parser.  Built in: text types (any
 * charset, to UTF-8), text/html (charset, then tags stripped) and RTF (our
 * own parser, rtf.c).  Documents (PDF, Office, ZIP) register from extract/,
 * which reads them in sandboxed worker processes. */
#include "mime/internal.h"
#include "mime/mapi.h"

#include <gmime/gmime.h>
#include <iconv.h>
#include <string.h>

#define MAX_EXTRACTORS 32

static const mv_text_extractor *extractors[MAX_EXTRACTORS];
static size_t n_extractors;
static GMutex registry_lock;

/* iconv descriptors per thread and charset: opening one loads a gconv
 * module, far too slow to do per message part. */
static void close_cd(gpointer cd)
{
	if ((iconv_t)cd != (iconv_t)-1)
		iconv_close((iconv_t)cd);
}

static void free_cache(gpointer table)
{
	g_hash_table_destroy(table);
}

static GPrivate cd_cache = G_PRIVATE_INIT(free_cache);

static iconv_t utf8_converter(const char *charset)
{
	GHashTable *cache = g_private_get(&cd_cache);
	if (!cache) {
		cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_cd);
		g_private_set(&cd_cache, cache);
	}
	gpointer cd = NULL;
	if (g_hash_table_lookup_extended(cache, charset, NULL, &cd))
		return (iconv_t)cd;
	/* Unknown charsets are remembered too, so each costs one failed open. */
	iconv_t opened = iconv_open("UTF-8", charset);
	g_hash_table_insert(cache, g_strdup(charset), opened);
	return opened;
}

/* Text for the index is one long line; text for reading keeps its lines
 * (CR LF and lone CR become LF; other control characters still go). */
static void append_clean(GString *out, const char *text, gssize len, bool keep_lines)
{
	if (!keep_lines) {
		char *clean = mv_utf8_sanitize(text, len);
		g_string_append(out, clean);
		g_free(clean);
		return;
	}
	char *valid = g_utf8_make_valid(text, len);
	for (const char *p = valid; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\r') {
			if (p[1] != '\n')
				g_string_append_c(out, '\n');
			continue;
		}
		g_string_append_c(out, (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? ' ' : *p);
	}
	g_free(valid);
}

/* Converts bytes in `charset` to UTF-8; undecodable input falls back to a
 * Latin-1 reading (every byte maps) and reports failure. */
int mv_mime_to_utf8(const uint8_t *data, size_t len, const char *charset, bool keep_lines, GString *out,
                    GError **error)
{
	if (len == 0)
		return 0;
	const char *cs = charset && *charset ? g_mime_charset_iconv_name(charset) : NULL;
	bool is_utf8 = !cs || g_ascii_strcasecmp(cs, "UTF-8") == 0 || g_ascii_strcasecmp(cs, "us-ascii") == 0;
	if (is_utf8 && g_utf8_validate((const char *)data, (gssize)len, NULL)) {
		append_clean(out, (const char *)data, (gssize)len, keep_lines);
		return 0;
	}
	iconv_t cd = cs ? utf8_converter(cs) : (iconv_t)-1;
	if (cd != (iconv_t)-1) {
		char *conv = g_mime_iconv_strndup(cd, (const char *)data, len);
		iconv(cd, NULL, NULL, NULL, NULL);
		if (conv) {
			append_clean(out, conv, -1, keep_lines);
			g_free(conv);
			return 0;
		}
	}
	/* Latin-1 maps every byte: a lossless last resort. */
	iconv_t latin1 = utf8_converter("ISO-8859-1");
	if (latin1 != (iconv_t)-1) {
		char *conv = g_mime_iconv_strndup(latin1, (const char *)data, len);
		iconv(latin1, NULL, NULL, NULL, NULL);
		if (conv)
			append_clean(out, conv, -1, keep_lines);
		g_free(conv);
	}
	if (cs && !is_utf8) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "text in charset '%s' could not be converted", charset);
		return -1;
	}
	return 0;
}

static bool has_extension(const char *filename, const char *ext)
{
	size_t n = filename ? strlen(filename) : 0, e = strlen(ext);
	return n > e && filename[n - e - 1] == '.' && g_ascii_strcasecmp(filename + n - e, ext) == 0;
}

static bool is_rtf(const char *type, const char *filename)
{
	return strcmp(type, "text/rtf") == 0 || strcmp(type, "application/rtf") == 0 ||
	       (strcmp(type, "application/octet-stream") == 0 && has_extension(filename, "rtf"));
}

/* Every text type but HTML and RTF is read as text: CSV, calendars,
 * vCards, source code, enriched text; and octet-streams named as text. */
static bool accepts_plain(const char *type, const char *filename)
{
	if (strncmp(type, "text/", 5) == 0)
		return strcmp(type, "text/html") != 0 && !is_rtf(type, filename);
	return strcmp(type, "application/octet-stream") == 0 &&
	       (has_extension(filename, "txt") || has_extension(filename, "csv") || has_extension(filename, "log"));
}

static int extract_plain(const mv_extract_request *req, GString *out, size_t limit, GError **error)
{
	return mv_mime_to_utf8(req->data, req->len > limit ? limit : req->len, req->charset, false, out, error);
}

static bool accepts_html(const char *type, const char *filename)
{
	return strcmp(type, "text/html") == 0 ||
	       (strcmp(type, "application/octet-stream") == 0 &&
	        (has_extension(filename, "html") || has_extension(filename, "htm")));
}

static int extract_html(const mv_extract_request *req, GString *out, size_t limit, GError **error)
{
	GString *utf8 = g_string_new(NULL);
	int rc = mv_mime_to_utf8(req->data, req->len, req->charset, false, utf8, error);
	mv_html_to_text(utf8->str, utf8->len, out, limit);
	g_string_free(utf8, TRUE);
	return rc;
}

/* RTF is read in-process: our own bounded parser (rtf.c), fuzzed. */
static int extract_rtf(const mv_extract_request *req, GString *out, size_t limit, GError **error)
{
	mv_rtf_to_text(req->data, req->len, out, limit);
	return 0;
}

static const mv_text_extractor builtin_plain = { "text/plain", accepts_plain, extract_plain };
static const mv_text_extractor builtin_html = { "text/html", accepts_html, extract_html };
static const mv_text_extractor builtin_rtf = { "rtf", is_rtf, extract_rtf };

void mv_text_extractor_register(const mv_text_extractor *ex)
{
	g_mutex_lock(&registry_lock);
	if (n_extractors < MAX_EXTRACTORS)
		extractors[n_extractors++] = ex;
	g_mutex_unlock(&registry_lock);
}

const mv_text_extractor *mv_text_extractor_find(const char *mime_type, const char *filename)
{
	if (accepts_plain(mime_type, filename))
		return &builtin_plain;
	if (accepts_html(mime_type, filename))
		return &builtin_html;
	if (is_rtf(mime_type, filename))
		return &builtin_rtf;
	const mv_text_extractor *found = NULL;
	g_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n_extractors && !found; i++)
		if (extractors[i]->accepts(mime_type, filename))
			found = extractors[i];
	g_mutex_unlock(&registry_lock);
	return found;
}

/* ---- HTML to text --------------------------------------------------------------- */

static const struct { const char *name; gunichar ch; } entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
	{ "nbsp", ' ' }, { "copy", 0xA9 }, { "reg", 0xAE }, { "euro", 0x20AC }, { "auml", 0xE4 },
	{ "ouml", 0xF6 }, { "uuml", 0xFC }, { "Auml", 0xC4 }, { "Ouml", 0xD6 }, { "Uuml", 0xDC },
	{ "szlig", 0xDF }, { "eacute", 0xE9 }, { "egrave", 0xE8 }, { "agrave", 0xE0 }, { "ccedil", 0xE7 },
	{ "mdash", 0x2014 }, { "ndash", 0x2013 }, { "hellip", 0x2026 }, { "laquo", 0xAB }, { "raquo", 0xBB },
};

/* Decodes the entity starting after '&'; returns bytes consumed (0 = not one). */
static size_t decode_entity(const char *p, const char *end, GString *out)
{
	const char *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	if (!semi || semi == p)
		return 0;
	gunichar ch = 0;
	if (*p == '#') {
		char *stop = NULL;
		guint64 v = (p[1] == 'x' || p[1] == 'X') ? g_ascii_strtoull(p + 2, &stop, 16) : g_ascii_strtoull(p + 1, &stop, 10);
		if (stop != semi || v == 0 || v > 0x10FFFF)
			return 0;
		ch = (gunichar)v;
	} else {
		for (size_t i = 0; i < G_N_ELEMENTS(entities) && !ch; i++)
			if ((size_t)(semi - p) == strlen(entities[i].name) && strncmp(p, entities[i].name, (size_t)(semi - p)) == 0)
				ch = entities[i].ch;
	}
	if (!ch || !g_unichar_validate(ch))
		return 0;
	/* A reference to a control character is not text: a space stands for it. */
	if ((ch < 0x20 && ch != '\t' && ch != '\n') || (ch >= 0x7f && ch < 0xa0))
		ch = ' ';
	g_string_append_unichar(out, ch);
	return (size_t)(semi - p) + 1;
}

static bool tag_is(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);
	return (size_t)(end - p) > n && g_ascii_strncasecmp(p, name, n) == 0 &&
	       !g_ascii_isalnum(p[n]);
}

/* Skips to the end of a raw-text element such as <script>…</script>. */
static const char *skip_element(const char *p, const char *end, const char *closing)
{
	size_t n = strlen(closing);
	for (; p + n <= end; p++)
		if (*p == '<' && g_ascii_strncasecmp(p, closing, n) == 0) {
			const char *gt = memchr(p, '>', (size_t)(end - p));
			return gt ? gt + 1 : end;
		}
	return end;
}

/* Tags after which text continues on a new line, so that a reader of the
 * text (not the index, which treats both as space) sees the lines. */
static bool breaks_line(const char *name, const char *end)
{
	static const char *const tags[] = { "br", "/p", "p", "/div", "/tr", "/li", "/h1", "/h2", "/h3", "/h4",
		                            "/h5", "/h6", "/blockquote", "/pre", "/table", "hr" };
	for (size_t i = 0; i < G_N_ELEMENTS(tags); i++)
		if (tag_is(name, end, tags[i]))
			return true;
	return false;
}

void mv_html_to_text(const char *html, size_t len, GString *out, size_t limit)
{
	const gsize first = out->len;
	const char *p = html, *end = html + len;
	while (p < end && out->len < limit) {
		if (*p == '<') {
			const char *name = p + 1;
			if (end - p >= 4 && strncmp(p, "<!--", 4) == 0) {
				const char *close = g_strstr_len(p + 4, end - p - 4, "-->");
				p = close ? close + 3 : end;
				continue;
			}
			if (tag_is(name, end, "script") || tag_is(name, end, "style")) {
				p = skip_element(name, end, tag_is(name, end, "script") ? "</script" : "</style");
				continue;
			}
			const char *gt = memchr(p, '>', (size_t)(end - p));
			g_string_append_c(out, breaks_line(name, end) ? '\n' : ' ');
			p = gt ? gt + 1 : end;
			continue;
		}
		if (*p == '&') {
			size_t used = decode_entity(p + 1, end, out);
			if (used) {
				p += used + 1;
				continue;
			}
		}
		g_string_append_c(out, *p++);
	}
	if (out->len > limit) {
		const char *cut = g_utf8_find_prev_char(out->str, out->str + limit);
		g_string_truncate(out, cut ? (gsize)(cut - out->str) : 0);
	}
	/* The copy is bytewise and stops at the limit: it may have stopped
	 * inside a character. */
	const char *valid_end = NULL;
	if (out->len > first && !g_utf8_validate(out->str + first, (gssize)(out->len - first), &valid_end) &&
	    (gsize)(valid_end - out->str) + 4 >= out->len)
		g_string_truncate(out, (gsize)(valid_end - out->str));
}
