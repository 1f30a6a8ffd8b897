/* search/snippet: the passage of a hit's text that shows why it matched,
 * with the matched words marked.
 *
 * The index is contentless (it keeps no text to quote), so the passage is
 * cut from the message's own text at result time.  Words are compared the
 * way the index's unicode61 tokenizer compares them — letters and digits
 * only, case folded, diacritics removed — so a highlighted word is one that
 * the search would have matched.  The result is a list of segments, never
 * markup: the caller renders them as text, so nothing in a message can
 * become HTML. */
#include "search/search.h"
#include "mime/mime.h"

#include <string.h>

#define MAX_TERMS 64
#define CONTEXT_BEFORE 60          /* characters shown before the first match */
/* A match deeper into a long text is not looked for: one result must not
 * cost a scan of megabytes. */
#define MAX_SCAN_BYTES (64 * 1024)

typedef struct term {
	char *word;                    /* normalised */
	bool prefix;
} term;

/* Case folded, decomposed, combining marks dropped: "Café" -> "cafe". */
static char *normalise_word(const char *w, gssize len)
{
	char *folded = g_utf8_casefold(w, len);
	char *nfd = g_utf8_normalize(folded, -1, G_NORMALIZE_NFD);
	g_free(folded);
	if (!nfd)
		return g_strdup("");
	GString *out = g_string_new(NULL);
	for (const char *p = nfd; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (!g_unichar_ismark(c))
			g_string_append_unichar(out, c);
	}
	g_free(nfd);
	return g_string_free(out, FALSE);
}

static bool is_word_char(gunichar c)
{
	if (c < 0x80)
		return g_ascii_isalnum((char)c);
	return g_unichar_isalnum(c) || g_unichar_ismark(c);
}

static void add_words(GPtrArray *terms, const char *text, bool prefix)
{
	const char *p = text;
	while (*p && terms->len < MAX_TERMS) {
		while (*p && !is_word_char(g_utf8_get_char(p)))
			p = g_utf8_next_char(p);
		const char *start = p;
		while (*p && is_word_char(g_utf8_get_char(p)))
			p = g_utf8_next_char(p);
		if (p == start)
			continue;
		term *t = g_new0(term, 1);
		t->word = normalise_word(start, p - start);
		t->prefix = prefix && !*p;
		g_ptr_array_add(terms, t);
	}
}

static bool shown_field(mv_query_field f)
{
	return f == MV_F_ANY || f == MV_F_BODY || f == MV_F_SUBJECT || f == MV_F_ATTACHMENT;
}

/* The words a hit matched on: terms and phrases outside negations. */
static void collect(const mv_query *q, GPtrArray *terms, int depth)
{
	if (!q || depth > MV_QUERY_MAX_DEPTH + 2)
		return;
	switch (q->kind) {
	case MV_Q_TERM:
	case MV_Q_PHRASE:
		if (shown_field(q->field))
			add_words(terms, q->text, q->kind == MV_Q_TERM && q->prefix);
		return;
	case MV_Q_AND:
	case MV_Q_OR:
		for (guint i = 0; i < q->children->len; i++)
			collect(q->children->pdata[i], terms, depth + 1);
		return;
	default:
		return;
	}
}

static void term_free(gpointer p)
{
	term *t = p;
	g_free(t->word);
	g_free(t);
}

/* Most words of most mail are ASCII: lower-casing is then all the
 * normalising there is, done without allocating. */
#define ASCII_WORD_MAX 64

static bool matches(GPtrArray *terms, const char *word, gssize len)
{
	if (terms->len == 0)
		return false;
	char buf[ASCII_WORD_MAX + 1];
	bool ascii = len <= ASCII_WORD_MAX;
	for (gssize i = 0; ascii && i < len; i++) {
		ascii = !((unsigned char)word[i] & 0x80);
		buf[i] = g_ascii_tolower(word[i]);
	}
	char *slow = NULL;
	const char *w = buf;
	if (ascii)
		buf[len] = 0;
	else
		w = slow = normalise_word(word, len);
	bool hit = false;
	for (guint i = 0; i < terms->len && !hit; i++) {
		const term *t = terms->pdata[i];
		hit = *t->word && (t->prefix ? g_str_has_prefix(w, t->word) : strcmp(w, t->word) == 0);
	}
	g_free(slow);
	return hit;
}

typedef struct span {
	const char *start, *end;
	bool match;
} span;

/* Whitespace runs (line ends included) become one space: a passage is one
 * line in a result list. */
static void append_text(GString *s, const char *from, const char *to)
{
	bool space = s->len > 0 && s->str[s->len - 1] == ' ';
	for (const char *p = from; p < to; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_isspace(c)) {
			if (!space)
				g_string_append_c(s, ' ');
			space = true;
			continue;
		}
		g_string_append_unichar(s, c);
		space = false;
	}
}

static void push(json_t *out, GString *s, bool match)
{
	if (s->len == 0)
		return;
	json_array_append_new(out, json_pack("[s, b]", s->str, match));
	g_string_truncate(s, 0);
}

/* Segments of the text from `from` on, up to max characters. */
static json_t *segments(GPtrArray *terms, const char *from, const char *end, size_t max_chars, bool cut_before)
{
	json_t *out = json_array();
	GString *plain = g_string_new(cut_before ? "… " : NULL), *word = g_string_new(NULL);
	size_t shown = 0;
	const char *p = from;
	while (p < end && shown < max_chars) {
		const char *start = p;
		bool in_word = is_word_char(g_utf8_get_char(p));
		/* A run longer than what is left to show (a base64 blob) is cut. */
		while (p < end && is_word_char(g_utf8_get_char(p)) == in_word && shown < max_chars) {
			p = g_utf8_next_char(p);
			shown++;
		}
		if (in_word && matches(terms, start, p - start)) {
			push(out, plain, false);
			g_string_append_len(word, start, p - start);
			push(out, word, true);
		} else {
			append_text(plain, start, p);
		}
	}
	if (p < end)
		g_string_append(plain, " …");
	push(out, plain, false);
	g_string_free(plain, TRUE);
	g_string_free(word, TRUE);
	return out;
}

/* Where the passage starts: some words before the first match, at a word
 * start; the text's start when nothing matches. */
static const char *passage_start(GPtrArray *terms, const char *text, const char *end)
{
	if (terms->len == 0)
		return text;
	const char *p = text;
	while (p < end) {
		const char *start = p;
		bool in_word = is_word_char(g_utf8_get_char(p));
		while (p < end && is_word_char(g_utf8_get_char(p)) == in_word)
			p = g_utf8_next_char(p);
		if (!in_word || !matches(terms, start, p - start))
			continue;
		const char *s = start;
		for (int back = 0; back < CONTEXT_BEFORE && s > text; back++)
			s = g_utf8_prev_char(s);
		while (s > text && s < start && is_word_char(g_utf8_get_char(s)))
			s = g_utf8_next_char(s);
		return s;
	}
	return text;
}

/* Whether a word of q occurs in the first MAX_SCAN_BYTES of text. */
static bool text_matches(GPtrArray *terms, const char *text)
{
	const char *end = text + strlen(text);
	if (end - text > MAX_SCAN_BYTES)
		end = g_utf8_find_prev_char(text, text + MAX_SCAN_BYTES);
	const char *p = text;
	while (end && p < end) {
		while (p < end && !is_word_char(g_utf8_get_char(p)))
			p = g_utf8_next_char(p);
		const char *w = p;
		while (p < end && is_word_char(g_utf8_get_char(p)))
			p = g_utf8_next_char(p);
		if (p > w && matches(terms, w, p - w))
			return true;
	}
	return false;
}

/* The text of one attachment as the index read it: its name, then what the
 * extractor table (documents included) makes of its bytes. */
static char *attachment_text(mv_message_view *v, const mv_view_part *part, size_t max_bytes)
{
	GString *text = g_string_new(part->name);
	const mv_text_extractor *ex = mv_text_extractor_find(part->content_type, part->name);
	GByteArray *data = NULL;
	GError *err = NULL;
	if (ex && mv_message_view_part_data(v, part->index, &data, &err) == 0) {
		mv_extract_request req = { .data = data->data, .len = data->len, .mime_type = part->content_type,
			                   .filename = part->name };
		g_string_append_c(text, '\n');
		if (ex->extract(&req, text, max_bytes, &err) < 0)
			g_clear_error(&err);
		g_byte_array_unref(data);
	}
	g_clear_error(&err);
	return g_string_free(text, FALSE);
}

json_t *mv_snippet_for_message(const mv_query *q, const uint8_t *raw, size_t len, size_t max_bytes, size_t max_chars,
                               char **attachment_r)
{
	*attachment_r = NULL;
	GPtrArray *terms = g_ptr_array_new_with_free_func(term_free);
	collect(q, terms, 0);
	GString *body = g_string_new(NULL);
	mv_message_body_text(raw, len, max_bytes, body);
	json_t *out = NULL;
	if (terms->len && !text_matches(terms, body->str)) {
		/* The words are not in the body: show the attachment they are in. */
		mv_message_view *v = mv_message_view_new(raw, len);
		for (guint i = 0; i < v->attachments->len && !out; i++) {
			const mv_view_part *part = v->attachments->pdata[i];
			char *text = attachment_text(v, part, max_bytes);
			if (text_matches(terms, text)) {
				out = mv_snippet_json(q, text, max_chars);
				*attachment_r = g_strdup(*part->name ? part->name : part->content_type);
			}
			g_free(text);
		}
		mv_message_view_free(&v);
	}
	if (!out)
		out = mv_snippet_json(q, body->str, max_chars);
	g_string_free(body, TRUE);
	g_ptr_array_free(terms, TRUE);
	return out;
}

json_t *mv_snippet_json(const mv_query *q, const char *text, size_t max_chars)
{
	GPtrArray *terms = g_ptr_array_new_with_free_func(term_free);
	collect(q, terms, 0);
	const char *end = text + strlen(text);
	const char *scan_end = end - text > MAX_SCAN_BYTES ? g_utf8_find_prev_char(text, text + MAX_SCAN_BYTES) : end;
	const char *start = passage_start(terms, text, scan_end ? scan_end : end);
	while (start < end && g_unichar_isspace(g_utf8_get_char(start)))
		start = g_utf8_next_char(start);
	json_t *out = segments(terms, start, end, max_chars, start > text);
	g_ptr_array_free(terms, TRUE);
	return out;
}
