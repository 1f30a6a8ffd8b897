/* rtf: Outlook's RTF bodies read — the HTML that Outlook encapsulates in RTF
 * recovered (MS-OXRTFEX), and the text of any RTF document, for the index
 * and for items whose only body is RTF.  Compressed RTF is unpacked before
 * it gets here (rtf_compressed.c).
 *
 * Every byte here comes from a mail file, so nothing trusts it: the RTF
 * reader keeps its groups on an explicit stack bounded at MV_RTF_MAX_DEPTH
 * instead of recursing on the C stack.  One tokenizer and one group-state
 * machine serve both RTF readers; they differ only in which destinations
 * are text (the HTML reader also takes {\*\htmltag} groups and drops
 * \htmlrtf spans).  Text leaves through a sink that gathers bytes in the
 * code page in force (\ansicpg, or the current font's \fcharset) and
 * converts each run to UTF-8 with mv_mime_to_utf8, so a document that mixes
 * code pages and \uN characters still comes out as valid UTF-8. */
#include "mime/internal.h"
#include "mime/mapi.h"

#include <string.h>

/* ---- the RTF tokenizer ------------------------------------------------------------ */

typedef enum {
	TOK_OPEN,
	TOK_CLOSE,
	TOK_WORD,   /* control word: word/wlen, optional param */
	TOK_SYMBOL, /* control symbol: byte */
	TOK_HEX,    /* \'hh: byte */
	TOK_TEXT,   /* a run of text bytes: text/n */
	TOK_BIN,    /* \binN and its N bytes, skipped */
} tok_kind;

typedef struct {
	tok_kind kind;
	const char *word; /* not NUL-terminated: points into the input */
	size_t wlen;
	bool has_param;
	int32_t param;
	uint8_t byte;
	const uint8_t *text;
	size_t n;
} token;

typedef struct {
	const uint8_t *p;
	size_t len, pos;
} lexer;


static bool is_word(const token *t, const char *w)
{
	size_t n = strlen(w);
	return t->kind == TOK_WORD && t->wlen == n && memcmp(t->word, w, n) == 0;
}

/* Letters, an optional signed number (clamped to int32: only its size
 * matters), and one space that belongs to the control word. */
static void lex_word(lexer *lx, token *t)
{
	size_t start = lx->pos;
	while (lx->pos < lx->len && g_ascii_isalpha(lx->p[lx->pos]))
		lx->pos++;
	t->kind = TOK_WORD;
	t->word = (const char *)lx->p + start;
	t->wlen = lx->pos - start;
	t->has_param = false;
	t->param = 0;
	bool neg = lx->pos + 1 < lx->len && lx->p[lx->pos] == '-' && g_ascii_isdigit(lx->p[lx->pos + 1]);
	if (neg)
		lx->pos++;
	int64_t v = 0;
	while (lx->pos < lx->len && g_ascii_isdigit(lx->p[lx->pos])) {
		if (v <= INT32_MAX)
			v = v * 10 + (lx->p[lx->pos] - '0');
		t->has_param = true;
		lx->pos++;
	}
	if (v > INT32_MAX)
		v = INT32_MAX;
	t->param = (int32_t)(neg ? -v : v);
	if (lx->pos < lx->len && lx->p[lx->pos] == ' ')
		lx->pos++;
	/* \binN: N raw bytes that are not RTF (picture data); never parsed. */
	if (is_word(t, "bin") && t->param > 0) {
		size_t n = (size_t)t->param;
		lx->pos += MIN(n, lx->len - lx->pos);
		t->kind = TOK_BIN;
	}
}

/* After a backslash. */
static void lex_control(lexer *lx, token *t)
{
	t->kind = TOK_SYMBOL;
	t->byte = 0;
	if (lx->pos >= lx->len)
		return;
	uint8_t c = lx->p[lx->pos];
	if (g_ascii_isalpha(c)) {
		lex_word(lx, t);
		return;
	}
	lx->pos++;
	if (c == '\'') {
		int hi = lx->pos < lx->len ? g_ascii_xdigit_value((char)lx->p[lx->pos]) : -1;
		int lo = lx->pos + 1 < lx->len ? g_ascii_xdigit_value((char)lx->p[lx->pos + 1]) : -1;
		if (hi >= 0 && lo >= 0) {
			t->kind = TOK_HEX;
			t->byte = (uint8_t)(hi << 4 | lo);
			lx->pos += 2;
		}
		return; /* a malformed \' is a symbol nobody acts on */
	}
	if (c == '\r' || c == '\n') { /* backslash-newline is \par */
		t->kind = TOK_WORD;
		t->word = "par";
		t->wlen = 3;
		t->has_param = false;
		t->param = 0;
		return;
	}
	t->byte = c;
}

static bool is_special(uint8_t c)
{
	return c == '\\' || c == '{' || c == '}' || c == '\r' || c == '\n';
}

/* False at the end of the input.  CR and LF are not text in RTF. */
static bool next_token(lexer *lx, token *t)
{
	while (lx->pos < lx->len) {
		uint8_t c = lx->p[lx->pos++];
		switch (c) {
		case '{':
			t->kind = TOK_OPEN;
			return true;
		case '}':
			t->kind = TOK_CLOSE;
			return true;
		case '\r':
		case '\n':
			continue;
		case '\\':
			lex_control(lx, t);
			return true;
		default:
			t->kind = TOK_TEXT;
			t->text = lx->p + lx->pos - 1;
			while (lx->pos < lx->len && !is_special(lx->p[lx->pos]))
				lx->pos++;
			t->n = (size_t)(lx->p + lx->pos - t->text);
			return true;
		}
	}
	return false;
}

/* ---- recognising encapsulation (MS-OXRTFEX 2.2.3.1) -------------------------------- */

typedef enum { ENCAP_NONE, ENCAP_HTML, ENCAP_TEXT } encap_kind;

static bool blank(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

/* \fromhtml or \fromtext in the header: in the outermost group, before its
 * first text (nested header groups — font table, colours — are passed
 * over).  Whitespace between control words is not text. */
static encap_kind find_encapsulation(const uint8_t *rtf, size_t len)
{
	lexer lx = { rtf, len, 0 };
	token t = { 0 };
	size_t depth = 0;
	while (next_token(&lx, &t)) {
		if (t.kind == TOK_OPEN) {
			depth++;
			continue;
		}
		if (t.kind == TOK_CLOSE) {
			if (depth <= 1)
				return ENCAP_NONE;
			depth--;
			continue;
		}
		if (depth > 1)
			continue;
		if (t.kind == TOK_TEXT && blank(t.text, t.n))
			continue;
		if (depth == 0 || t.kind != TOK_WORD)
			return ENCAP_NONE; /* text, escaped characters, binary data */
		if (is_word(&t, "fromhtml") && (!t.has_param || t.param != 0))
			return ENCAP_HTML;
		if (is_word(&t, "fromtext"))
			return ENCAP_TEXT;
		if (is_word(&t, "par") || is_word(&t, "u"))
			return ENCAP_NONE;
	}
	return ENCAP_NONE;
}

/* ---- the output sink ---------------------------------------------------------------- */

/* Flushes pending bytes past this many, at a byte below 0x40: never the
 * second byte of a double-byte character in any ANSI code page. */
#define SINK_FLUSH_AT 4096u

typedef struct {
	GString *out;
	size_t base, limit;   /* at most limit bytes after out->len == base */
	GString *bytes;       /* pending bytes in `charset` (never a NUL) */
	const char *charset;
	bool full;
} sink;

static void sink_check_limit(sink *s)
{
	if (s->out->len - s->base < s->limit)
		return;
	size_t cut = s->base + s->limit;
	if (cut < s->out->len) {
		while (cut > s->base && ((uint8_t)s->out->str[cut] & 0xC0) == 0x80)
			cut--;
		g_string_truncate(s->out, cut);
	}
	s->full = true;
}

/* Code pages whose ASCII bytes may not mean ASCII (shift states, UTF-16). */
static bool ascii_safe(const char *charset)
{
	return strncmp(charset, "UTF-16", 6) != 0 && strncmp(charset, "ISO-2022", 8) != 0 &&
	       strncmp(charset, "HZ", 2) != 0;
}

static void sink_flush(sink *s)
{
	GString *b = s->bytes;
	if (b->len == 0)
		return;
	if (s->full) {
		g_string_truncate(b, 0);
		return;
	}
	const uint8_t *d = (const uint8_t *)b->str;
	bool ascii = ascii_safe(s->charset), printable = true;
	for (gsize i = 0; i < b->len && ascii; i++) {
		ascii = d[i] < 0x80;
		printable &= (d[i] >= 0x20 && d[i] != 0x7F) || d[i] == '\t' || d[i] == '\n';
	}
	if (ascii && printable) {
		g_string_append_len(s->out, b->str, (gssize)b->len); /* the common case: no iconv */
	} else if (ascii) {
		/* Controls become spaces, as mv_mime_to_utf8 makes them. */
		for (gsize i = 0; i < b->len; i++) {
			bool control = (d[i] < 0x20 && d[i] != '\t' && d[i] != '\n') || d[i] == 0x7F;
			g_string_append_c(s->out, control ? ' ' : (char)d[i]);
		}
	} else {
		GError *err = NULL;
		if (mv_mime_to_utf8(d, b->len, s->charset, true, s->out, &err) < 0)
			g_clear_error(&err); /* Latin-1 was used instead: still text */
	}
	g_string_truncate(b, 0);
	sink_check_limit(s);
}

static void sink_byte(sink *s, uint8_t c, const char *charset)
{
	if (s->full || c == 0)
		return;
	if (s->bytes->len && s->charset != charset) {
		sink_flush(s);
		if (s->full)
			return;
	}
	s->charset = charset;
	g_string_append_c(s->bytes, (char)c);
	if (s->bytes->len >= SINK_FLUSH_AT && c < 0x40)
		sink_flush(s);
}

static void sink_char(sink *s, gunichar c)
{
	sink_flush(s);
	if (s->full)
		return;
	g_string_append_unichar(s->out, c);
	sink_check_limit(s);
}

static void sink_text(sink *s, const char *text)
{
	sink_flush(s);
	if (s->full)
		return;
	g_string_append(s->out, text);
	sink_check_limit(s);
}

/* ---- the RTF reader ----------------------------------------------------------------- */

/* Fonts of a font table beyond this many are not remembered. */
#define RTF_MAX_FONTS 4096u

typedef enum {
	DEST_OUTSIDE, /* before the document's group */
	DEST_TEXT,    /* document text */
	DEST_FONTTBL, /* the font table: read for code pages, never text */
	DEST_HTMLTAG, /* {\*\htmltag}: encapsulated HTML (HTML mode only) */
	DEST_SKIP,    /* a destination that is not text */
} dest_kind;

typedef struct {
	uint8_t dest;
	bool htmlrtf;         /* inside \htmlrtf ... \htmlrtf0 */
	bool at_start;        /* nothing but \* yet: the next control word may name a destination */
	bool starred;         /* the group began with \*: an ignorable destination */
	uint16_t uc;          /* \ucN: fallback characters after each \uN */
	const char *font_cs;  /* the current font's code page, NULL = the document's */
} group;

typedef enum { MODE_TEXT, MODE_HTML } read_mode;

typedef struct {
	lexer lx;
	read_mode mode;
	bool fromtext;        /* \fromtext: \htmlrtf spans are not text */
	GArray *stack;        /* group; [0] is outside the document */
	size_t overflow;      /* open groups beyond MV_RTF_MAX_DEPTH, being skipped */
	unsigned skip;        /* fallback characters of the last \uN still to skip */
	const char *doc_cs;   /* \ansicpg */
	int32_t deff;
	int32_t fontdef;      /* the font table entry being read */
	GHashTable *fonts;    /* font number -> code page */
	gunichar high;        /* a high surrogate waiting for its pair */
	bool saw_htmltag;
	bool ended;
	sink out;
} parser;

static group *top(parser *p)
{
	return &g_array_index(p->stack, group, p->stack->len - 1);
}

static void parser_init(parser *p, const uint8_t *rtf, size_t len, read_mode mode, GString *out, size_t limit)
{
	memset(p, 0, sizeof *p);
	p->lx = (lexer){ rtf, len, 0 };
	p->mode = mode;
	p->stack = g_array_new(FALSE, FALSE, sizeof(group));
	group root = { .dest = DEST_OUTSIDE, .uc = 1 };
	g_array_append_val(p->stack, root);
	p->doc_cs = mv_codepage_charset(1252);
	p->fontdef = -1;
	p->fonts = g_hash_table_new(g_direct_hash, g_direct_equal);
	p->out = (sink){ .out = out, .base = out->len, .limit = limit, .bytes = g_string_new(NULL),
	                 .charset = p->doc_cs };
}

static void parser_clear(parser *p)
{
	g_array_unref(p->stack);
	g_hash_table_destroy(p->fonts);
	g_string_free(p->out.bytes, TRUE);
}

/* Windows character sets of \fcharset (the font table) as code pages;
 * 0 = ANSI and 1 = default mean the document's own. */
static uint32_t fcharset_codepage(int32_t fcharset)
{
	static const struct { int32_t cs; uint32_t cp; } map[] = {
		{ 77, 10000 }, { 128, 932 },  { 129, 949 },  { 134, 936 },  { 136, 950 },  { 161, 1253 },
		{ 162, 1254 }, { 163, 1258 }, { 177, 1255 }, { 178, 1256 }, { 186, 1257 }, { 204, 1251 },
		{ 222, 874 },  { 238, 1250 }, { 254, 437 },  { 255, 850 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (map[i].cs == fcharset)
			return map[i].cp;
	return 0;
}

static void select_font(parser *p, group *g, int32_t font)
{
	gpointer cp = g_hash_table_lookup(p->fonts, GINT_TO_POINTER(font));
	g->font_cs = cp ? mv_codepage_charset(GPOINTER_TO_UINT(cp)) : NULL;
}

static void define_font_codepage(parser *p, uint32_t cp)
{
	if (p->fontdef < 0 || cp == 0)
		return;
	gpointer key = GINT_TO_POINTER(p->fontdef);
	if (!g_hash_table_contains(p->fonts, key) && g_hash_table_size(p->fonts) >= RTF_MAX_FONTS)
		return;
	g_hash_table_insert(p->fonts, key, GUINT_TO_POINTER(cp));
}

static bool emits(const parser *p, const group *g)
{
	if (p->mode == MODE_HTML)
		return (g->dest == DEST_TEXT || g->dest == DEST_HTMLTAG) && !g->htmlrtf;
	return g->dest == DEST_TEXT && !(p->fromtext && g->htmlrtf);
}

/* Inside {\*\htmltag} the HTML is in the document's code page
 * (MS-OXRTFEX); other text is in its font's. */
static const char *charset_of(const parser *p, const group *g)
{
	if (g->dest == DEST_HTMLTAG || !g->font_cs)
		return p->doc_cs;
	return g->font_cs;
}

static void drop_high_surrogate(parser *p)
{
	if (!p->high)
		return;
	p->high = 0;
	sink_char(&p->out, 0xFFFD);
}

static void emit_byte(parser *p, group *g, uint8_t c)
{
	if (!emits(p, g))
		return;
	drop_high_surrogate(p);
	sink_byte(&p->out, c, charset_of(p, g));
}

static void emit_bytes(parser *p, group *g, const uint8_t *s, size_t n)
{
	if (!emits(p, g) || n == 0)
		return;
	drop_high_surrogate(p);
	const char *charset = charset_of(p, g);
	for (size_t i = 0; i < n && !p->out.full; i++)
		sink_byte(&p->out, s[i], charset);
}

static void put_char(parser *p, gunichar c)
{
	if (c == 0)
		return;
	if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
		c = ' ';
	sink_char(&p->out, c);
}

static void emit_char(parser *p, group *g, gunichar c)
{
	if (!emits(p, g))
		return;
	drop_high_surrogate(p);
	put_char(p, c);
}

static void emit_newline(parser *p, group *g)
{
	if (!emits(p, g))
		return;
	drop_high_surrogate(p);
	sink_text(&p->out, p->mode == MODE_HTML ? "\r\n" : "\n");
}

/* \uN: a signed 16-bit UTF-16 unit; pairs of surrogates join. */
static void emit_unicode(parser *p, group *g, int32_t n)
{
	if (!emits(p, g))
		return;
	gunichar c = n < -32768 || n > 65535 ? 0xFFFD : (gunichar)(n < 0 ? n + 65536 : n);
	if (c >= 0xD800 && c <= 0xDBFF) {
		drop_high_surrogate(p);
		p->high = c;
		return;
	}
	if (c >= 0xDC00 && c <= 0xDFFF) {
		c = p->high ? 0x10000 + ((p->high - 0xD800) << 10) + (c - 0xDC00) : 0xFFFD;
		p->high = 0;
	}
	drop_high_surrogate(p);
	put_char(p, c);
}

/* Destinations whose content is not text: tables, document properties,
 * pictures and object data, field instructions (the field's result is
 * kept), list and paragraph-numbering definitions, Word's XML parts.
 * Headers, footers, footnotes and annotations are text the document shows
 * and are kept. */
static const char *const skipped_destinations[] = {
	"colortbl", "stylesheet", "info", "pict", "objdata", "objclass", "fldinst", "themedata",
	"colorschememapping", "datastore", "latentstyles", "listtable", "listoverridetable", "rsidtbl",
	"generator", "xmlnstbl", "filetbl", "revtbl", "pgdsctbl", "mmathPr", "docvar", "private",
	"nonshppict", "template", "userprops", "bkmkstart", "bkmkend", "pn", "pntxta", "pntxtb", "sp",
	"falt", "panose", "fontemb", "fontfile", "protusertbl", "xmlopen", "xmlclose", "datafield",
	"formfield", "mhtmltag", "htmltag",
};

static bool is_skipped_destination(const parser *p, const token *t)
{
	for (size_t i = 0; i < G_N_ELEMENTS(skipped_destinations); i++)
		if (is_word(t, skipped_destinations[i]))
			return true;
	/* List numbers are RTF's rendering of <ol>/<ul>, which the HTML
	 * already holds. */
	return p->mode == MODE_HTML && (is_word(t, "pntext") || is_word(t, "listtext"));
}

/* The first control word of a group names its destination.  \*\htmltag is
 * the one ignorable destination the HTML reader keeps; \*\mhtmltag holds
 * the same tag with its URLs rewritten to MHTML reference names (\htmlbase),
 * so, as MS-OXRTFEX defines only \htmltag, it is skipped like every other
 * unknown \* destination. */
static void enter_destination(parser *p, group *g, const token *t)
{
	g->at_start = false;
	if (g->dest == DEST_SKIP || g->dest == DEST_OUTSIDE)
		return;
	if (g->starred) {
		bool html = p->mode == MODE_HTML && g->dest != DEST_FONTTBL && is_word(t, "htmltag");
		g->dest = html ? DEST_HTMLTAG : DEST_SKIP;
		p->saw_htmltag |= html;
		return;
	}
	if (g->dest == DEST_FONTTBL)
		return;
	if (is_word(t, "fonttbl"))
		g->dest = DEST_FONTTBL;
	else if (is_skipped_destination(p, t))
		g->dest = DEST_SKIP;
}

/* Control words that set the document's state wherever they appear. */
static bool document_word(parser *p, group *g, const token *t)
{
	if (is_word(t, "ansicpg")) {
		if (t->param > 0)
			p->doc_cs = mv_codepage_charset((uint32_t)t->param);
	} else if (is_word(t, "ansi")) {
		p->doc_cs = mv_codepage_charset(1252);
	} else if (is_word(t, "mac")) {
		p->doc_cs = mv_codepage_charset(10000);
	} else if (is_word(t, "pc")) {
		p->doc_cs = mv_codepage_charset(437);
	} else if (is_word(t, "pca")) {
		p->doc_cs = mv_codepage_charset(850);
	} else if (is_word(t, "deff")) {
		p->deff = t->param;
	} else if (is_word(t, "uc")) {
		g->uc = (uint16_t)CLAMP(t->param, 0, 255);
	} else if (is_word(t, "htmlrtf")) {
		g->htmlrtf = !(t->has_param && t->param == 0);
	} else {
		return false;
	}
	return true;
}

static void font_table_word(parser *p, const token *t)
{
	if (is_word(t, "f"))
		p->fontdef = t->param;
	else if (is_word(t, "fcharset"))
		define_font_codepage(p, fcharset_codepage(t->param));
	else if (is_word(t, "cpg") && t->param > 0)
		define_font_codepage(p, (uint32_t)t->param);
}

static const struct { const char *word; gunichar c; } char_words[] = {
	{ "lquote", 0x2018 }, { "rquote", 0x2019 }, { "ldblquote", 0x201C }, { "rdblquote", 0x201D },
	{ "bullet", 0x2022 }, { "endash", 0x2013 }, { "emdash", 0x2014 },
};

/* Words that are text: breaks, tabs, typographic characters.  The HTML
 * reader knows only those MS-OXRTFEX lists (2.1.3.1.4.2); the text reader
 * also ends lines at sections, pages and table rows and separates cells. */
static void text_word(parser *p, group *g, const token *t)
{
	if (is_word(t, "par") || is_word(t, "line")) {
		emit_newline(p, g);
		return;
	}
	if (is_word(t, "tab")) {
		emit_byte(p, g, '\t');
		return;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(char_words); i++) {
		if (is_word(t, char_words[i].word)) {
			emit_char(p, g, char_words[i].c);
			return;
		}
	}
	if (p->mode == MODE_HTML)
		return;
	if (is_word(t, "sect") || is_word(t, "page") || is_word(t, "row") || is_word(t, "nestrow"))
		emit_newline(p, g);
	else if (is_word(t, "cell") || is_word(t, "nestcell"))
		emit_byte(p, g, '\t');
	else if (is_word(t, "emspace") || is_word(t, "enspace") || is_word(t, "qmspace"))
		emit_byte(p, g, ' ');
}

static void handle_word(parser *p, const token *t)
{
	group *g = top(p);
	if (g->at_start)
		enter_destination(p, g, t);
	if (document_word(p, g, t))
		return;
	if (g->dest == DEST_FONTTBL) {
		font_table_word(p, t);
		return;
	}
	if (g->dest != DEST_TEXT && g->dest != DEST_HTMLTAG)
		return;
	if (is_word(t, "f")) {
		select_font(p, g, t->param);
	} else if (is_word(t, "u")) {
		emit_unicode(p, g, t->param);
		p->skip = g->uc;
	} else {
		text_word(p, g, t);
	}
}

static void handle_symbol(parser *p, const token *t)
{
	group *g = top(p);
	if (t->byte == '*') {
		if (g->at_start)
			g->starred = true;
		return;
	}
	g->at_start = false;
	switch (t->byte) {
	case '\\':
	case '{':
	case '}':
		emit_byte(p, g, t->byte);
		break;
	case '~':
		emit_char(p, g, 0x00A0);
		break;
	case '_': /* non-breaking hyphen; MS-OXRTFEX writes it for &shy; */
		if (p->mode == MODE_HTML)
			emit_char(p, g, 0x00AD);
		else
			emit_byte(p, g, '-');
		break;
	default: /* \- optional hyphen, \| \: formula and index marks */
		break;
	}
}

static void handle_open(parser *p)
{
	p->skip = 0;
	if (p->overflow || p->stack->len > MV_RTF_MAX_DEPTH) {
		p->overflow++;
		return;
	}
	group *parent = top(p);
	parent->at_start = false;
	group g = *parent;
	if (p->stack->len == 1) {
		g.dest = DEST_TEXT;
		g.font_cs = NULL;
	}
	g.at_start = true;
	g.starred = false;
	g_array_append_val(p->stack, g);
}

static void handle_close(parser *p)
{
	p->skip = 0;
	if (p->overflow) {
		p->overflow--;
		return;
	}
	if (p->stack->len <= 1)
		return; /* a stray '}' before the document */
	bool was_fonttbl = top(p)->dest == DEST_FONTTBL;
	g_array_set_size(p->stack, p->stack->len - 1);
	if (p->stack->len == 1) {
		p->ended = true; /* what follows the document is not RTF */
		return;
	}
	/* The font table is read after \deffN: now its code page is known. */
	group *g = top(p);
	if (was_fonttbl && g->dest != DEST_FONTTBL && !g->font_cs)
		select_font(p, g, p->deff);
}

static void handle_token(parser *p, const token *t)
{
	if (t->kind == TOK_OPEN) {
		handle_open(p);
		return;
	}
	if (t->kind == TOK_CLOSE) {
		handle_close(p);
		return;
	}
	if (p->overflow)
		return;
	/* The fallback of a \uN (\ucN characters) is for readers without
	 * Unicode. */
	if (p->skip > 0 && t->kind != TOK_TEXT) {
		p->skip--;
		top(p)->at_start = false;
		return;
	}
	switch (t->kind) {
	case TOK_WORD:
		handle_word(p, t);
		break;
	case TOK_SYMBOL:
		handle_symbol(p, t);
		break;
	case TOK_TEXT: {
		size_t k = MIN(p->skip, t->n);
		p->skip -= (unsigned)k;
		top(p)->at_start = false;
		emit_bytes(p, top(p), t->text + k, t->n - k);
		break;
	}
	case TOK_HEX:
		top(p)->at_start = false;
		emit_byte(p, top(p), t->byte);
		break;
	default:
		top(p)->at_start = false;
		break;
	}
}

static void parser_run(parser *p)
{
	token t = { 0 };
	while (!p->ended && !p->out.full && next_token(&p->lx, &t))
		handle_token(p, &t);
	if (p->high) {
		p->high = 0;
		if (!p->out.full)
			put_char(p, 0xFFFD);
	}
	sink_flush(&p->out);
}

/* ---- the API ------------------------------------------------------------------------ */

/* The HTML comes back as UTF-8: \'hh bytes are read in the document's
 * \ansicpg (inside \htmltag) or the current font's code page (text between
 * tags) and converted; \uN becomes its character; \par is CRLF. */
int mv_rtf_deencapsulate_html(const uint8_t *rtf, size_t len, GString *html, GError **error)
{
	if (!rtf || find_encapsulation(rtf, len) != ENCAP_HTML)
		return 0;
	mv_mime_init(); /* mv_mime_to_utf8 asks GMime for charset names */
	GString *buf = g_string_new(NULL);
	parser p;
	parser_init(&p, rtf, len, MODE_HTML, buf, SIZE_MAX);
	parser_run(&p);
	bool saw_htmltag = p.saw_htmltag;
	parser_clear(&p);
	if (!saw_htmltag) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "encapsulated HTML: \\fromhtml1 is set but there is no \\*\\htmltag group");
		g_string_free(buf, TRUE);
		return -1;
	}
	g_string_append_len(html, buf->str, (gssize)buf->len);
	g_string_free(buf, TRUE);
	return 1;
}

/* mv_html_to_text keeps the CRLF that \par became, and the control
 * characters of references like "&#1;": lines end in '\n' and controls
 * become spaces, as in the text read from RTF. */
static void append_clean_lines(GString *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				g_string_append_c(out, '\n');
			continue;
		}
		g_string_append_c(out, (c < 0x20 && c != '\t' && c != '\n') || c == 0x7F ? ' ' : (char)c);
	}
}

void mv_rtf_to_text(const uint8_t *rtf, size_t len, GString *out, size_t limit)
{
	if (!rtf || len == 0 || limit == 0)
		return;
	mv_mime_init();
	encap_kind encap = find_encapsulation(rtf, len);
	if (encap == ENCAP_HTML) {
		GString *html = g_string_new(NULL);
		GError *err = NULL;
		int rc = mv_rtf_deencapsulate_html(rtf, len, html, &err);
		g_clear_error(&err);
		if (rc == 1) {
			/* A fresh string: mv_html_to_text's limit counts from 0. */
			GString *text = g_string_new(NULL);
			mv_html_to_text(html->str, html->len, text, limit);
			/* It may stop inside a character at the limit: keep
			 * the valid part only. */
			const char *valid_end = NULL;
			g_utf8_validate(text->str, (gssize)MIN(text->len, limit), &valid_end);
			append_clean_lines(out, text->str, (size_t)(valid_end - text->str));
			g_string_free(text, TRUE);
			g_string_free(html, TRUE);
			return;
		}
		g_string_free(html, TRUE); /* read it as RTF after all */
	}
	parser p;
	parser_init(&p, rtf, len, MODE_TEXT, out, limit);
	p.fromtext = encap == ENCAP_TEXT;
	parser_run(&p);
	parser_clear(&p);
}
