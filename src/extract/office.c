/* office: the text of OOXML (.docx .xlsx .pptx) and ODF (.odt .ods .odp)
 * documents — ZIP packages of XML parts.
 *
 * Each part streams from libzip's inflater straight into libxml2's push
 * parser with SAX callbacks: no part is ever held whole, and the inflation
 * budget of zip.c bounds what a part may expand to.  The parser gets no
 * entity substitution, no network, no DTD: a document type declaration
 * (which no Office part has, and which is where "billion laughs" live)
 * stops the part at once.  libxml2's own bounds (nesting depth, name and
 * text lengths) stay on: XML_PARSE_HUGE is never given.
 *
 * Which elements hold text is a small table per kind of part, matched by
 * local name (prefixes are the writer's choice): the text runs of Word
 * (w:t), DrawingML (a:t), shared strings and inline strings (t), cell
 * values (v) and ODF paragraphs (text:p, text:h with their spans).
 * Paragraph ends become line ends.  Parts are read in document order:
 * the body, then notes, headers and footers; shared strings, then sheets
 * in number order; slides in number order, then their notes. */
#include "extract/internal.h"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

/* Runs of ODF spaces (text:s c="N") are written out up to this many. */
#define MAX_SPACES 64

typedef struct part_rules {
	const char *const *text;       /* character data inside these is text */
	const char *const *paragraph;  /* a line ends after these */
	const char *const *line_break; /* a line break where these stand */
	const char *const *tab;        /* a tab where these stand */
	const char *const *cell;       /* a tab after these */
	const char *const *skip;       /* nothing inside these is text */
	bool sheet;                    /* cells of type "s" hold shared-string numbers, not text */
} part_rules;

static const char *const none[] = { NULL };

static const part_rules word_rules = {
	.text = (const char *const[]){ "t", NULL },
	.paragraph = (const char *const[]){ "p", NULL },
	.line_break = (const char *const[]){ "br", "cr", NULL },
	.tab = (const char *const[]){ "tab", NULL },
	.cell = none,
	/* mc:Fallback repeats what mc:Choice says, for older readers. */
	.skip = (const char *const[]){ "Fallback", "tabs", NULL },
};

static const part_rules slide_rules = {
	.text = (const char *const[]){ "t", NULL },
	.paragraph = (const char *const[]){ "p", NULL },
	.line_break = (const char *const[]){ "br", NULL },
	.tab = none,
	.cell = none,
	.skip = (const char *const[]){ "Fallback", NULL },
};

static const part_rules shared_strings_rules = {
	.text = (const char *const[]){ "t", NULL },
	.paragraph = (const char *const[]){ "si", NULL },
	.line_break = none,
	.tab = none,
	.cell = none,
	/* Phonetic guides (Japanese) repeat the string in kana. */
	.skip = (const char *const[]){ "rPh", NULL },
};

static const part_rules sheet_rules = {
	.text = (const char *const[]){ "v", "t", NULL },
	.paragraph = (const char *const[]){ "row", NULL },
	.line_break = none,
	.tab = none,
	.cell = (const char *const[]){ "c", NULL },
	.skip = (const char *const[]){ "f", "extLst", NULL },
	.sheet = true,
};

static const part_rules odf_rules = {
	.text = (const char *const[]){ "p", "h", NULL },
	.paragraph = (const char *const[]){ "p", "h", NULL },
	.line_break = (const char *const[]){ "line-break", NULL },
	.tab = (const char *const[]){ "tab", NULL },
	.cell = none,
	/* Deleted text of tracked changes; a comment's author and date. */
	.skip = (const char *const[]){ "tracked-changes", "creator", "date", "note-citation", NULL },
};

/* ---- one part through the SAX parser ------------------------------------------------ */

typedef struct sax_state {
	const part_rules *rules;
	GString *out;
	size_t limit;
	xmlParserCtxtPtr ctxt;
	int text_depth;   /* open elements whose character data is text */
	int skip_depth;   /* open elements whose content is left out */
	bool shared_cell; /* inside a cell holding a shared-string number */
	bool full;        /* the text limit is reached */
	bool has_dtd;
} sax_state;

static bool listed(const char *const *list, const xmlChar *name)
{
	for (; *list; list++)
		if (strcmp(*list, (const char *)name) == 0)
			return true;
	return false;
}

static void stop(sax_state *s)
{
	xmlStopParser(s->ctxt);
}

static void emit(sax_state *s, const char *text, size_t len)
{
	if (s->full)
		return;
	if (!mv_doc_append(s->out, s->limit, text, len)) {
		s->full = true;
		stop(s);
	}
}

/* The value of attribute `name` (any namespace) of a SAX2 start tag. */
static const xmlChar *attribute(int n, const xmlChar **attrs, const char *name, size_t *len_r)
{
	for (int i = 0; i < n; i++) {
		const xmlChar **a = attrs + 5 * i;
		if (strcmp((const char *)a[0], name) == 0) {
			*len_r = (size_t)(a[4] - a[3]);
			return a[3];
		}
	}
	return NULL;
}

static void odf_spaces(sax_state *s, int n_attrs, const xmlChar **attrs)
{
	size_t len = 0;
	const xmlChar *c = attribute(n_attrs, attrs, "c", &len);
	long count = 1;
	if (c && len > 0 && len < 8) {
		char buf[8];
		memcpy(buf, c, len);
		buf[len] = '\0';
		count = strtol(buf, NULL, 10);
	}
	if (count < 1)
		count = 1;
	if (count > MAX_SPACES)
		count = MAX_SPACES;
	for (long i = 0; i < count; i++)
		emit(s, " ", 1);
}

static void on_start(void *ctx, const xmlChar *name, const xmlChar *prefix, const xmlChar *uri, int n_ns,
                     const xmlChar **ns, int n_attrs, int n_defaulted, const xmlChar **attrs)
{
	sax_state *s = ctx;
	const part_rules *r = s->rules;
	if (s->skip_depth > 0 || listed(r->skip, name)) {
		s->skip_depth++;
		return;
	}
	if (r->sheet && strcmp((const char *)name, "c") == 0) {
		size_t len = 0;
		const xmlChar *t = attribute(n_attrs, attrs, "t", &len);
		s->shared_cell = t && len == 1 && t[0] == 's';
	}
	if (listed(r->text, name) && !(r->sheet && s->shared_cell && strcmp((const char *)name, "v") == 0))
		s->text_depth++;
	if (listed(r->line_break, name))
		emit(s, "\n", 1);
	if (listed(r->tab, name))
		emit(s, "\t", 1);
	if (r == &odf_rules && strcmp((const char *)name, "s") == 0)
		odf_spaces(s, n_attrs, attrs);
}

static void on_end(void *ctx, const xmlChar *name, const xmlChar *prefix, const xmlChar *uri)
{
	sax_state *s = ctx;
	const part_rules *r = s->rules;
	if (s->skip_depth > 0) {
		s->skip_depth--;
		return;
	}
	if (listed(r->text, name) && s->text_depth > 0 &&
	    !(r->sheet && s->shared_cell && strcmp((const char *)name, "v") == 0))
		s->text_depth--;
	if (listed(r->cell, name)) {
		/* A shared string's cell wrote nothing: its text came first. */
		if (!s->shared_cell)
			emit(s, "\t", 1);
		s->shared_cell = false;
	}
	if (listed(r->paragraph, name) && !s->full)
		mv_doc_newline(s->out, s->limit);
}

static void on_characters(void *ctx, const xmlChar *text, int len)
{
	sax_state *s = ctx;
	if (s->text_depth > 0 && s->skip_depth == 0 && len > 0)
		emit(s, (const char *)text, (size_t)len);
}

/* A DOCTYPE: no Office part has one, and entity declarations are where
 * expansion bombs live.  The part ends here, before its internal subset is
 * read. */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
	sax_state *s = ctx;
	s->has_dtd = true;
	stop(s);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
	sax_state *s = ctx;
	s->has_dtd = true;
	stop(s);
}

/* libxml2 would print its complaints; the result says what went wrong. */
static void on_error(void *ctx, xmlErrorPtr err)
{
}

static bool feed(void *ctx, const uint8_t *chunk, size_t len)
{
	sax_state *s = ctx;
	xmlParseChunk(s->ctxt, (const char *)chunk, (int)len, 0);
	return !s->ctxt->disableSAX && s->ctxt->instate != XML_PARSER_EOF;
}

static xmlSAXHandler sax_handler(void)
{
	xmlSAXHandler sax;
	memset(&sax, 0, sizeof sax);
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = on_start;
	sax.endElementNs = on_end;
	sax.characters = on_characters;
	sax.cdataBlock = on_characters;
	sax.internalSubset = on_doctype;
	sax.externalSubset = on_doctype;
	sax.entityDecl = on_entity_decl;
	sax.serror = on_error;
	return sax;
}

static int parse_part(zip_t *za, zip_uint64_t index, const part_rules *rules, uint64_t *budget, GString *out,
                      size_t limit, GError **error)
{
	sax_state s = { .rules = rules, .out = out, .limit = limit };
	xmlSAXHandler sax = sax_handler();
	s.ctxt = xmlCreatePushParserCtxt(&sax, &s, NULL, 0, NULL);
	if (!s.ctxt) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "out of memory for the XML parser");
		return -1;
	}
	xmlCtxtUseOptions(s.ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	int rc = mv_zip_read_entry(za, index, budget, feed, &s, error);
	if (rc == 0 && s.ctxt->instate != XML_PARSER_EOF)
		xmlParseChunk(s.ctxt, NULL, 0, 1);
	if (rc == 0 && s.has_dtd) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "a document part declares a DTD (refused)");
		rc = -1;
	} else if (rc == 0 && !s.full && !s.ctxt->wellFormed) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged document part (XML error %d at line %d)",
		            s.ctxt->errNo, xmlSAX2GetLineNumber(s.ctxt));
		rc = -1;
	}
	xmlFreeParserCtxt(s.ctxt);
	if (!s.full)
		mv_doc_newline(out, limit);
	return rc;
}

/* ---- which parts, in which order ------------------------------------------------------ */

typedef struct part {
	int group;          /* order of the kinds of part */
	uint64_t number;    /* slide2 before slide10 */
	zip_uint64_t index;
	const part_rules *rules;
} part;

/* name = prefix + digits + ".xml"; the digits' value in *n. */
static bool numbered(const char *name, const char *prefix, uint64_t *n)
{
	size_t p = strlen(prefix);
	if (strncmp(name, prefix, p) != 0 || !g_ascii_isdigit(name[p]))
		return false;
	char *end = NULL;
	guint64 v = g_ascii_strtoull(name + p, &end, 10);
	if (strcmp(end, ".xml") != 0)
		return false;
	*n = v;
	return true;
}

/* The part an entry is, if it holds text we read. */
static bool classify(const char *name, part *p)
{
	p->number = 0;
	static const struct {
		const char *name;
		int group;
		const part_rules *rules;
	} fixed[] = {
		{ "word/document.xml", 0, &word_rules },     { "word/footnotes.xml", 1, &word_rules },
		{ "word/endnotes.xml", 2, &word_rules },     { "word/comments.xml", 3, &word_rules },
		{ "xl/sharedStrings.xml", 10, &shared_strings_rules }, { "content.xml", 30, &odf_rules },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
		if (strcmp(name, fixed[i].name) == 0) {
			p->group = fixed[i].group;
			p->rules = fixed[i].rules;
			return true;
		}
	static const struct {
		const char *prefix;
		int group;
		const part_rules *rules;
	} series[] = {
		{ "word/header", 4, &word_rules },
		{ "word/footer", 5, &word_rules },
		{ "xl/worksheets/sheet", 11, &sheet_rules },
		{ "ppt/slides/slide", 20, &slide_rules },
		{ "ppt/notesSlides/notesSlide", 21, &slide_rules },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(series); i++)
		if (numbered(name, series[i].prefix, &p->number)) {
			p->group = series[i].group;
			p->rules = series[i].rules;
			return true;
		}
	return false;
}

static gint part_order(gconstpointer a, gconstpointer b)
{
	const part *x = a, *y = b;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->number != y->number)
		return x->number < y->number ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static GArray *find_parts(zip_t *za)
{
	GArray *parts = g_array_new(FALSE, FALSE, sizeof(part));
	zip_int64_t n = zip_get_num_entries(za, 0);
	if (n > MV_EXTRACT_ZIP_ENTRIES)
		n = MV_EXTRACT_ZIP_ENTRIES;
	for (zip_int64_t i = 0; i < n; i++) {
		const char *name = zip_get_name(za, (zip_uint64_t)i, 0);
		part p = { .index = (zip_uint64_t)i };
		if (name && classify(name, &p))
			g_array_append_val(parts, p);
	}
	g_array_sort(parts, part_order);
	return parts;
}

/* Every part is read even when one fails (its text up to the failure is
 * kept); the first failure is reported.  A spent budget ends it all. */
static int read_parts(zip_t *za, GArray *parts, uint64_t *budget, GString *out, size_t limit, GError **error)
{
	int rc = 0;
	for (guint i = 0; i < parts->len && out->len < limit; i++) {
		const part *p = &g_array_index(parts, part, i);
		GError *err = NULL;
		if (parse_part(za, p->index, p->rules, budget, out, limit, &err) == 0)
			continue;
		if (err->code == MV_ERR_UNSUPPORTED) {
			g_clear_error(&err);
			g_set_error(&err, MV_ERROR, MV_ERR_INVALID, "encrypted document");
		}
		bool spent = err->code == MV_ERR_LIMIT;
		if (rc == 0)
			g_propagate_error(error, err);
		else
			g_error_free(err);
		rc = -1;
		if (spent)
			break;
	}
	return rc;
}

int mv_extract_office(const uint8_t *data, size_t len, uint64_t *budget, GString *out, size_t limit, GError **error)
{
	zip_t *za = NULL;
	if (mv_zip_open(data, len, &za, error) < 0)
		return -1;
	GArray *parts = find_parts(za);
	int rc = 0;
	if (parts->len == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "no Word, Excel, PowerPoint or OpenDocument content inside");
		rc = -1;
	} else {
		rc = read_parts(za, parts, budget, out, limit, error);
	}
	g_array_unref(parts);
	zip_discard(za);
	return rc;
}

int mv_extract_office_xml(const uint8_t *data, size_t len, GString *out, size_t limit, GError **error)
{
	size_t cap = out->len + MIN(limit, (size_t)MV_EXTRACT_MAX_TEXT);
	uint64_t budget = MV_EXTRACT_ZIP_EXPANDED;
	return mv_extract_office(data, len, &budget, out, cap, error);
}
