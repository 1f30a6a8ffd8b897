/* mime/rfc2047: the decoded header values every reader of mail uses —
 * subjects, display names, file names — past a fault of GMime's decoder.
 *
 * GMime 3.2.13 (Debian bookworm) joins the payloads of adjacent encoded-words
 * of one charset and encoding before converting them — right, for a
 * stateful charset like ISO-2022-JP or a character split across words — but
 * its base64 decoder stops for good at the first '=' padding (GMime issue
 * #133, a regression of its faster base64 decoder).  So in
 * "=?iso-2022-jp?B?...KEI=?= =?iso-2022-jp?B?...?=" every word after the
 * first padded one is lost, in subjects, display names and file names.
 * Its quoted-printable decoder has no such fault, so a header value that
 * holds B-words is handed to GMime with each run of adjacent B-words of one
 * charset rewritten as one Q-word of the same bytes: GMime's own rules
 * (charset fallbacks, words inside quotes and inside words, the run joined
 * before conversion) then apply unchanged, to every word. */
#include "mime/internal.h"

#include <gmime/gmime.h>
#include <string.h>

/* What may stand in an encoded-word's charset or text: printable ASCII
 * but '?' (RFC 2047 §2). */
static bool is_word_char(char c)
{
	return c > ' ' && c < 0x7f && c != '?';
}

static bool is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

typedef struct enc_word {
	const char *charset;
	size_t charset_len;
	char encoding;         /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	const char *end;       /* past the closing "?=" */
} enc_word;

/* "=?charset?B?text?=" or "=?charset?Q?text?=" at s. */
static bool match_word(const char *s, enc_word *w)
{
	if (s[0] != '=' || s[1] != '?')
		return false;
	const char *cs = s + 2, *p = cs;
	while (is_word_char(*p))
		p++;
	char enc = p[0] == '?' ? g_ascii_toupper(p[1]) : 0;
	if (p == cs || (enc != 'B' && enc != 'Q') || p[2] != '?')
		return false;
	const char *text = p + 3, *q = text;
	while (is_word_char(*q))
		q++;
	if (q[0] != '?' || q[1] != '=')
		return false;
	*w = (enc_word){ cs, (size_t)(p - cs), enc, text, (size_t)(q - text), q + 2 };
	return true;
}

static bool match_b_word(const char *s, enc_word *w)
{
	return match_word(s, w) && w->encoding == 'B';
}

static bool has_b_word(const char *s)
{
	enc_word w;
	for (const char *p = s ? strstr(s, "=?") : NULL; p; p = strstr(p + 2, "=?")) {
		if (match_b_word(p, &w))
			return true;
	}
	return false;
}

typedef struct b64_state {
	unsigned bits;
	int n;                 /* sextets in bits */
} b64_state;

/* A partial quartet gives what whole bytes it holds; one lone sextet none. */
static void b64_flush(b64_state *st, GByteArray *out)
{
	guint8 b[2] = { (guint8)(st->bits >> 10), (guint8)(st->bits >> 2) };
	if (st->n == 2)
		b[0] = (guint8)(st->bits >> 4);
	if (st->n >= 2)
		g_byte_array_append(out, b, (guint)(st->n - 1));
	*st = (b64_state){ 0, 0 };
}

/* Lenient like GMime and Python: characters outside the alphabet are
 * skipped, '=' ends a quartet but not the text, and a quartet left open at
 * a word's end is continued by the next word of the run (encoders that cut
 * words anywhere). */
static void b64_feed(b64_state *st, const char *s, size_t len, GByteArray *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=') {
			b64_flush(st, out);
			continue;
		}
		int v = mv_base64_value((unsigned char)s[i]);
		if (v < 0)
			continue;
		st->bits = (st->bits << 6) | (unsigned)v;
		if (++st->n == 4) {
			guint8 b[3] = { (guint8)(st->bits >> 16), (guint8)(st->bits >> 8), (guint8)st->bits };
			g_byte_array_append(out, b, 3);
			*st = (b64_state){ 0, 0 };
		}
	}
}

static void append_q_word(GString *out, const enc_word *w, const GByteArray *bytes)
{
	g_string_append(out, "=?");
	g_string_append_len(out, w->charset, (gssize)w->charset_len);
	g_string_append(out, "?Q?");
	for (guint i = 0; i < bytes->len; i++) {
		guint8 c = bytes->data[i];
		if (g_ascii_isalnum(c))
			g_string_append_c(out, (char)c);
		else
			g_string_append_printf(out, "=%02X", c);
	}
	g_string_append(out, "?=");
}

/* The run of B-words starting with first — later ones of the same charset,
 * apart only by white space, which RFC 2047 §6.2 drops — as one Q-word
 * appended to out (nothing if it decodes to nothing); returns its end. */
static const char *requote_run(const enc_word *first, GString *out)
{
	GByteArray *bytes = g_byte_array_new();
	b64_state st = { 0, 0 };
	b64_feed(&st, first->text, first->text_len, bytes);
	const char *end = first->end;
	for (;;) {
		const char *p = end;
		while (is_lwsp(*p))
			p++;
		enc_word next;
		if (!match_b_word(p, &next) || next.charset_len != first->charset_len ||
		    g_ascii_strncasecmp(next.charset, first->charset, first->charset_len) != 0)
			break;
		b64_feed(&st, next.text, next.text_len, bytes);
		end = next.end;
	}
	b64_flush(&st, bytes);
	if (bytes->len)
		append_q_word(out, first, bytes);
	g_byte_array_unref(bytes);
	return end;
}

/* raw with its B-words as Q-words; the rest of it byte for byte. */
static char *requote(const char *raw)
{
	GString *out = g_string_sized_new(strlen(raw) * 2 + 16);
	const char *p = raw;
	for (const char *hit = strstr(p, "=?"); hit; hit = strstr(p, "=?")) {
		enc_word w;
		if (!match_word(hit, &w)) {
			g_string_append_len(out, p, hit + 2 - p);
			p = hit + 2;
		} else if (w.encoding == 'Q') {
			g_string_append_len(out, p, w.end - p);
			p = w.end;
		} else {
			g_string_append_len(out, p, hit - p);
			p = requote_run(&w, out);
		}
	}
	g_string_append(out, p);
	return g_string_free(out, FALSE);
}

char *mv_mime_header_value(GMimeHeader *header)
{
	const char *raw = g_mime_header_get_raw_value(header);
	if (!has_b_word(raw))
		return g_strdup(g_mime_header_get_value(header));
	char *unfolded = g_mime_utils_header_unfold(raw);
	char *requoted = requote(unfolded);
	char *decoded = g_mime_utils_header_decode_text(NULL, requoted);
	g_free(requoted);
	g_free(unfolded);
	return decoded;
}

/* The last header of that name: the one GMime takes for a single-valued
 * field (Subject, Content-Type, Content-Disposition). */
static GMimeHeader *last_header(GMimeObject *obj, const char *name)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(obj);
	int n = list ? g_mime_header_list_get_count(list) : 0;
	for (int i = n - 1; i >= 0; i--) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0)
			return h;
	}
	return NULL;
}

char *mv_mime_message_subject(GMimeMessage *msg)
{
	GMimeHeader *h = last_header(GMIME_OBJECT(msg), "Subject");
	return h ? mv_mime_header_value(h) : g_strdup(g_mime_message_get_subject(msg));
}

static const char *address_header_name(GMimeAddressType type)
{
	switch (type) {
	case GMIME_ADDRESS_TYPE_SENDER: return "Sender";
	case GMIME_ADDRESS_TYPE_FROM: return "From";
	case GMIME_ADDRESS_TYPE_REPLY_TO: return "Reply-To";
	case GMIME_ADDRESS_TYPE_TO: return "To";
	case GMIME_ADDRESS_TYPE_CC: return "Cc";
	case GMIME_ADDRESS_TYPE_BCC: return "Bcc";
	}
	return "";
}

/* The field's headers parsed again, B-words requoted; like GMime, every
 * header of the field adds its addresses. */
static InternetAddressList *requoted_addresses(GMimeMessage *msg, const char *name)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	int n = list ? g_mime_header_list_get_count(list) : 0;
	InternetAddressList *out = internet_address_list_new();
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		const char *raw = g_mime_header_get_raw_value(h);
		if (!raw || g_ascii_strcasecmp(g_mime_header_get_name(h), name) != 0)
			continue;
		char *requoted = requote(raw);
		InternetAddressList *some = internet_address_list_parse(NULL, requoted);
		g_free(requoted);
		if (some) {
			internet_address_list_append(out, some);
			g_object_unref(some);
		}
	}
	return out;
}

/* The addresses of mine set to those of GMime's own list, item by item:
 * an encoded-word in an addr-spec is not decoded (RFC 2047 §5), so only
 * the names may come from the requoted parse.  False where the two lists
 * differ in shape. */
static bool keep_original_addrs(InternetAddressList *mine, InternetAddressList *orig, int depth)
{
	int n = internet_address_list_length(orig);
	if (depth > 16 || internet_address_list_length(mine) != n)
		return false;
	for (int i = 0; i < n; i++) {
		InternetAddress *m = internet_address_list_get_address(mine, i);
		InternetAddress *o = internet_address_list_get_address(orig, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(o) && INTERNET_ADDRESS_IS_MAILBOX(m)) {
			const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(o));
			internet_address_mailbox_set_addr(INTERNET_ADDRESS_MAILBOX(m), addr ? addr : "");
		} else if (!INTERNET_ADDRESS_IS_GROUP(o) || !INTERNET_ADDRESS_IS_GROUP(m) ||
		           !keep_original_addrs(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(m)),
		                                internet_address_group_get_members(INTERNET_ADDRESS_GROUP(o)), depth + 1)) {
			return false;
		}
	}
	return true;
}

InternetAddressList *mv_mime_message_addresses(GMimeMessage *msg, GMimeAddressType type)
{
	const char *name = address_header_name(type);
	InternetAddressList *orig = g_mime_message_get_addresses(msg, type);
	GMimeHeaderList *list = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	int n = list ? g_mime_header_list_get_count(list) : 0;
	bool any = false;
	for (int i = 0; i < n && !any; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		any = g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0 && has_b_word(g_mime_header_get_raw_value(h));
	}
	if (!any)
		return g_object_ref(orig);
	InternetAddressList *mine = requoted_addresses(msg, name);
	if (keep_original_addrs(mine, orig, 0))
		return mine;
	g_object_unref(mine);
	return g_object_ref(orig);
}

/* The parameter again from its header with B-words requoted, or NULL. */
static char *reparsed_parameter(GMimeObject *obj, bool disposition)
{
	GMimeHeader *h = last_header(obj, disposition ? "Content-Disposition" : "Content-Type");
	const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
	if (!has_b_word(raw))
		return NULL;
	char *requoted = requote(raw);
	char *value = NULL;
	if (disposition) {
		GMimeContentDisposition *d = g_mime_content_disposition_parse(NULL, requoted);
		value = d ? g_strdup(g_mime_content_disposition_get_parameter(d, "filename")) : NULL;
		g_clear_object(&d);
	} else {
		GMimeContentType *ct = g_mime_content_type_parse(NULL, requoted);
		value = ct ? g_strdup(g_mime_content_type_get_parameter(ct, "name")) : NULL;
		g_clear_object(&ct);
	}
	g_free(requoted);
	return value;
}

char *mv_mime_part_filename(GMimePart *part)
{
	const char *name = g_mime_part_get_filename(part);
	if (!name)
		return NULL;
	/* GMime's order: the disposition's filename, else the type's name. */
	GMimeContentDisposition *d = g_mime_object_get_content_disposition(GMIME_OBJECT(part));
	bool disposition = d && g_mime_content_disposition_get_parameter(d, "filename");
	char *again = reparsed_parameter(GMIME_OBJECT(part), disposition);
	return again ? again : g_strdup(name);
}
