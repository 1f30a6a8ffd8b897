/* journal_report: Exchange / Microsoft 365 envelope journal reports taken
 * apart — who the message was really delivered to (Bcc recipients and the
 * members of expanded distribution groups included), and where in the
 * wrapper the original message is, so that it can be archived byte-exact.
 *
 * The format, as implemented here, from Microsoft's "Understanding Journal
 * Reports" (Exchange 2007/2010, technet bb331962) and the journal report
 * ABNF of Exchange 2007 (technet bb738122):
 *   - the report carries the top-level header field X-MS-Journal-Report
 *     (its value is not looked at: any value, also empty, marks a report);
 *   - its body is multipart/mixed: the first part is the envelope, the
 *     second the original message "unaltered" as message/rfc822;
 *   - the envelope is text, one field per line:
 *       Sender: <smtp-address>
 *       Subject: <subject>                 (may be non-ASCII, in the part's charset)
 *       Message-ID: <message-id>
 *       On-Behalf-Of: <smtp-address>       (extended field, optional)
 *       <kind>: <recipient-address>[, <redirection>: <source-address>]
 *     kind is To, Cc, Bcc (extended fields: the addressing was verified) or
 *     Recipient (basic field: it could not be); redirection is Expanded (the
 *     recipient is a member of the distribution group source-address) or
 *     Forwarded (the message was sent to source-address and delivered to the
 *     recipient because an alternate recipient is configured).  So
 *     "To: member@org, Expanded: dl@org" is the member, expanded from dl.
 * Unknown field names are passed over (newer versions add fields).  Read
 * beyond the documents, because reports are seen that way: the envelope
 * part in quoted-printable or base64, in any charset, or as text/html (tags
 * dropped, block tags made line ends); several comma-separated addresses on
 * one recipient line, each an own recipient; addresses in <angle brackets>.
 * Exchange 2003's older envelope format is not read.
 *
 * The top-level multipart is walked by hand, not by GMime: the original's
 * exact bytes matter, and GMime re-serialises what it parsed.  Delimiters
 * are RFC 2046's: a line "--boundary", optional trailing white space, the
 * line end before it belonging to the delimiter.  GMime only parses the
 * Content-Type values.  Everything is bounded (header blocks, unfolded
 * fields, report size and lines, recipients) and every scan moves forward,
 * so hostile input costs time linear in its size. */
#include "mime/internal.h"

#include <string.h>

#define MAX_BOUNDARY 200u /* RFC 2046 allows 70; leniency, but no more */

typedef struct header_block {
	size_t start, end; /* the fields, without the empty line */
	size_t body;       /* after the empty line; the block's limit when there was none */
} header_block;

static void problem(mv_ms_journal_report *r, unsigned flag, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void problem(mv_ms_journal_report *r, unsigned flag, const char *fmt, ...)
{
	r->flags |= flag;
	if (r->problem || !(flag & MV_MS_JOURNAL_ERRORS))
		return;
	va_list ap;
	va_start(ap, fmt);
	r->problem = g_strdup_vprintf(fmt, ap);
	va_end(ap);
}

/* The line at pos up to limit: returns where its content ends (line end not
 * included); *next is where the next line starts. */
static size_t line_end(const uint8_t *d, size_t limit, size_t pos, size_t *next)
{
	const uint8_t *nl = memchr(d + pos, '\n', limit - pos);
	if (!nl) {
		*next = limit;
		return limit;
	}
	size_t e = (size_t)(nl - d);
	*next = e + 1;
	if (e > pos && d[e - 1] == '\r')
		e--;
	return e;
}

/* The header block starting at start, up to limit; false when it is larger
 * than MV_MS_JOURNAL_MAX_HEADER. */
static bool header_block_find(const uint8_t *d, size_t limit, size_t start, header_block *h)
{
	size_t pos = start;
	while (pos < limit) {
		if (pos - start > MV_MS_JOURNAL_MAX_HEADER)
			return false;
		size_t next, e = line_end(d, limit, pos, &next);
		if (e == pos) {
			*h = (header_block){.start = start, .end = pos, .body = next};
			return true;
		}
		pos = next;
	}
	*h = (header_block){.start = start, .end = limit, .body = limit};
	return true;
}

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The first field called name in the block, unfolded and trimmed; NULL
 * when absent.  *present is set when the field is there, even when its
 * value is past MV_MS_JOURNAL_MAX_LINE (then NULL and *too_long). */
static char *header_field(const uint8_t *d, const header_block *h, const char *name, bool *present, bool *too_long)
{
	size_t name_len = strlen(name), pos = h->start;
	*present = false;
	while (pos < h->end) {
		size_t next, e = line_end(d, h->end, pos, &next);
		bool match = e - pos > name_len && g_ascii_strncasecmp((const char *)d + pos, name, name_len) == 0;
		size_t colon = pos + name_len;
		while (match && colon < e && is_wsp(d[colon]))
			colon++;
		if (!match || colon >= e || d[colon] != ':') {
			pos = next;
			continue;
		}
		*present = true;
		GString *value = g_string_new_len((const char *)d + colon + 1, (gssize)(e - colon - 1));
		/* Continuation lines: the line end is removed, the white space kept. */
		for (pos = next; pos < h->end && is_wsp(d[pos]); pos = next) {
			e = line_end(d, h->end, pos, &next);
			if (value->len + (e - pos) > MV_MS_JOURNAL_MAX_LINE)
				break;
			g_string_append_len(value, (const char *)d + pos, (gssize)(e - pos));
		}
		if (value->len > MV_MS_JOURNAL_MAX_LINE || (pos < h->end && is_wsp(d[pos]))) {
			*too_long = true;
			g_string_free(value, TRUE);
			return NULL;
		}
		return g_strstrip(g_string_free(value, FALSE));
	}
	return NULL;
}

/* ---- the top-level multipart ---------------------------------------------------------- */

/* The next delimiter line from pos (a line start) up to len: *line is where
 * it starts, *after where the part after it starts, *close whether it is
 * the closing one.  Trailing white space is allowed (RFC 2046 transport
 * padding); a longer boundary that merely starts with ours is no match. */
static bool next_delimiter(const uint8_t *d, size_t len, size_t pos, const char *boundary, size_t *line, size_t *after,
                           bool *close)
{
	size_t blen = strlen(boundary);
	while (pos < len) {
		size_t next, e = line_end(d, len, pos, &next);
		if (e - pos >= 2 + blen && d[pos] == '-' && d[pos + 1] == '-' && memcmp(d + pos + 2, boundary, blen) == 0) {
			size_t rest = pos + 2 + blen;
			bool closing = e - rest >= 2 && d[rest] == '-' && d[rest + 1] == '-';
			if (closing)
				rest += 2;
			while (rest < e && is_wsp(d[rest]))
				rest++;
			if (rest == e) {
				*line = pos;
				*after = next;
				*close = closing;
				return true;
			}
		}
		pos = next;
	}
	return false;
}

/* Where a part's body ends: before the line end that belongs to the
 * delimiter line starting at line. */
static size_t part_end_before(const uint8_t *d, size_t part_start, size_t line)
{
	size_t end = line;
	if (end > part_start && d[end - 1] == '\n')
		end--;
	if (end > part_start && d[end - 1] == '\r')
		end--;
	return end;
}

typedef struct part {
	size_t start, end; /* the whole part, header included */
} part;

/* Up to two parts of the multipart body at body: the report and the original. */
static int find_parts(const uint8_t *d, size_t len, size_t body, const char *boundary, part parts[2],
                      mv_ms_journal_report *r)
{
	size_t line, after;
	bool close;
	if (!next_delimiter(d, len, body, boundary, &line, &after, &close) || close) {
		problem(r, MV_MS_JOURNAL_NO_REPORT, "the multipart body has no part");
		return 0;
	}
	int n = 0;
	while (n < 2) {
		size_t start = after;
		if (!next_delimiter(d, len, start, boundary, &line, &after, &close)) {
			problem(r, MV_MS_JOURNAL_UNTERMINATED, "the multipart body has no closing delimiter");
			parts[n++] = (part){.start = start, .end = len};
			return n;
		}
		parts[n++] = (part){.start = start, .end = part_end_before(d, start, line)};
		if (close)
			return n;
	}
	return n;
}

/* ---- a part's content ------------------------------------------------------------------- */

typedef struct part_info {
	GMimeContentType *type; /* NULL when the part has no Content-Type */
	GMimeContentEncoding encoding;
	size_t body, end;
} part_info;

static bool part_info_read(const uint8_t *d, const part *p, part_info *info, mv_ms_journal_report *r, const char *which)
{
	header_block h;
	*info = (part_info){.encoding = GMIME_CONTENT_ENCODING_DEFAULT, .end = p->end};
	if (!header_block_find(d, p->end, p->start, &h)) {
		problem(r, MV_MS_JOURNAL_TOO_LARGE, "the %s part's header is larger than %u bytes", which, MV_MS_JOURNAL_MAX_HEADER);
		return false;
	}
	info->body = h.body;
	bool present, too_long = false;
	char *type = header_field(d, &h, "Content-Type", &present, &too_long);
	char *cte = header_field(d, &h, "Content-Transfer-Encoding", &present, &too_long);
	if (too_long)
		problem(r, MV_MS_JOURNAL_TOO_LARGE, "a header field of the %s part is longer than %u bytes", which,
		        MV_MS_JOURNAL_MAX_LINE);
	if (type)
		info->type = g_mime_content_type_parse(NULL, type);
	if (cte)
		info->encoding = g_mime_content_encoding_from_string(cte);
	g_free(type);
	g_free(cte);
	return !too_long;
}

static bool is_encoded(GMimeContentEncoding e)
{
	return e == GMIME_CONTENT_ENCODING_BASE64 || e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	       e == GMIME_CONTENT_ENCODING_UUENCODE;
}

/* The body's bytes with the transfer encoding undone: a new array. */
static GByteArray *decode_body(const uint8_t *d, const part_info *info)
{
	size_t n = info->end - info->body;
	GByteArray *out = g_byte_array_new();
	if (!is_encoded(info->encoding)) {
		g_byte_array_append(out, d + info->body, (guint)n);
		return out;
	}
	GMimeEncoding state;
	g_mime_encoding_init_decode(&state, info->encoding);
	g_byte_array_set_size(out, (guint)g_mime_encoding_outlen(&state, n) + 16);
	size_t got = g_mime_encoding_step(&state, (const char *)d + info->body, n, (char *)out->data);
	got += g_mime_encoding_flush(&state, NULL, 0, (char *)out->data + got);
	g_byte_array_set_size(out, (guint)got);
	return out;
}

/* ---- the envelope ------------------------------------------------------------------------ */

static const char *const BLOCK_TAGS[] = {"br", "p", "div", "tr", "li", "table", "td", "h1", "h2", "h3", "pre", NULL};

static bool is_block_tag(const char *tag, size_t n)
{
	for (const char *const *t = BLOCK_TAGS; *t; t++)
		if (strlen(*t) == n && g_ascii_strncasecmp(tag, *t, n) == 0)
			return true;
	return false;
}

static void append_entity(GString *out, const char **p)
{
	static const struct {
		const char *name;
		char c;
	} entities[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&nbsp;", ' '}, {"&#64;", '@'}};
	for (size_t i = 0; i < G_N_ELEMENTS(entities); i++) {
		size_t n = strlen(entities[i].name);
		if (g_ascii_strncasecmp(*p, entities[i].name, n) == 0) {
			g_string_append_c(out, entities[i].c);
			*p += n;
			return;
		}
	}
	g_string_append_c(out, '&');
	(*p)++;
}

/* An HTML envelope as lines: tags dropped, block tags line ends, the text
 * of <style>, <script> and <head> dropped. */
static char *html_to_lines(const char *html)
{
	GString *out = g_string_new(NULL);
	bool skipping = false;
	for (const char *p = html; *p;) {
		if (*p == '&' && !skipping) {
			append_entity(out, &p);
			continue;
		}
		if (*p != '<') {
			if (!skipping)
				g_string_append_c(out, *p == '\n' || *p == '\r' ? ' ' : *p);
			p++;
			continue;
		}
		const char *name = p + 1;
		bool end_tag = *name == '/';
		if (end_tag)
			name++;
		size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
		bool hidden = (n == 5 && g_ascii_strncasecmp(name, "style", 5) == 0) ||
		              (n == 6 && g_ascii_strncasecmp(name, "script", 6) == 0) ||
		              (n == 4 && g_ascii_strncasecmp(name, "head", 4) == 0);
		if (hidden)
			skipping = !end_tag;
		if (!skipping && is_block_tag(name, n))
			g_string_append_c(out, '\n');
		const char *gt = strchr(name + n, '>');
		if (!gt)
			break;
		p = gt + 1;
	}
	return g_string_free(out, FALSE);
}

static bool field_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && g_ascii_strncasecmp(name, want, n) == 0;
}

/* An address as written, angle brackets removed; NULL when it is none. */
static char *clean_address(const char *text)
{
	char *a = g_strstrip(g_strdup(text));
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		memmove(a, a + 1, n - 2);
		a[n - 2] = '\0';
	}
	bool ok = *a != '\0';
	for (const char *p = a; *p && ok; p++)
		ok = !g_ascii_isspace(*p) && !g_ascii_iscntrl(*p) && *p != '<' && *p != '>' && *p != ',';
	if (!ok)
		g_clear_pointer(&a, g_free);
	return a;
}

static bool starts_with_field(const char *s, const char *field, const char **value_r)
{
	size_t n = strlen(field);
	if (g_ascii_strncasecmp(s, field, n) != 0)
		return false;
	const char *p = s + n;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ':')
		return false;
	*value_r = p + 1;
	return true;
}

static mv_ms_journal_recipient *add_recipient(GArray *list, mv_ms_journal_report *r, mv_ms_journal_kind kind, char *address)
{
	if (list->len >= MV_MS_JOURNAL_MAX_RECIPIENTS) {
		problem(r, MV_MS_JOURNAL_TOO_MANY_RECIPIENTS, "the report names more than %u recipients",
		        MV_MS_JOURNAL_MAX_RECIPIENTS);
		g_free(address);
		return NULL;
	}
	mv_ms_journal_recipient rc = {.address = address, .kind = kind};
	g_array_append_val(list, rc);
	return &g_array_index(list, mv_ms_journal_recipient, list->len - 1);
}

/* One recipient line's value: addresses separated by commas, each item
 * "Expanded: x" or "Forwarded: x" annotating the address before it. */
static void read_recipients(GArray *list, mv_ms_journal_report *r, mv_ms_journal_kind kind, const char *value)
{
	char **items = g_strsplit(value, ",", -1);
	mv_ms_journal_recipient *last = NULL;
	for (char **it = items; *it; it++) {
		const char *item = g_strstrip(*it), *source;
		bool expanded = starts_with_field(item, "Expanded", &source);
		bool forwarded = !expanded && starts_with_field(item, "Forwarded", &source);
		char *address = clean_address(expanded || forwarded ? source : item);
		if (!address) {
			problem(r, MV_MS_JOURNAL_BAD_LINE, "a %s line of the report has an item without an address: '%.80s'",
			        mv_ms_journal_kind_name(kind), item);
			continue;
		}
		if (!expanded && !forwarded) {
			last = add_recipient(list, r, kind, address);
			continue;
		}
		char **slot = !last ? NULL : expanded ? &last->expanded_from : &last->forwarded_from;
		if (!slot || *slot) {
			problem(r, MV_MS_JOURNAL_BAD_LINE, "a %s line of the report has an annotation without its recipient: '%.80s'",
			        mv_ms_journal_kind_name(kind), item);
			g_free(address);
			continue;
		}
		*slot = address;
		if (forwarded)
			last->forwarded = true;
	}
	g_strfreev(items);
}

static void set_once(char **slot, const char *value)
{
	if (!*slot)
		*slot = g_strdup(value);
}

static void read_line(GArray *list, mv_ms_journal_report *r, char *line, bool strict)
{
	g_strstrip(line);
	if (!*line)
		return;
	char *colon = strchr(line, ':');
	size_t n = colon ? (size_t)(colon - line) : 0;
	bool named = n > 0 && strcspn(line, " \t") >= n;
	if (!named) {
		if (strict)
			problem(r, MV_MS_JOURNAL_BAD_LINE, "a line of the report is no field: '%.80s'", line);
		return;
	}
	const char *value = g_strstrip(colon + 1);
	static const struct {
		const char *name;
		mv_ms_journal_kind kind;
	} kinds[] = {{"To", MV_MS_JOURNAL_TO}, {"Cc", MV_MS_JOURNAL_CC}, {"Bcc", MV_MS_JOURNAL_BCC}, {"Recipient", MV_MS_JOURNAL_RECIPIENT}};
	for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++)
		if (field_is(line, n, kinds[i].name)) {
			read_recipients(list, r, kinds[i].kind, value);
			return;
		}
	if (field_is(line, n, "Sender")) {
		char *a = clean_address(value);
		if (a && !r->sender)
			r->sender = a;
		else if (!a)
			problem(r, MV_MS_JOURNAL_BAD_LINE, "the report's Sender is no address: '%.80s'", value);
		else
			g_free(a);
	} else if (field_is(line, n, "Subject")) {
		set_once(&r->subject, value);
	} else if (field_is(line, n, "Message-Id")) {
		set_once(&r->message_id, value);
	} else if (field_is(line, n, "On-Behalf-Of")) {
		char *a = clean_address(value);
		if (a && !r->on_behalf_of)
			r->on_behalf_of = a;
		else
			g_free(a);
	}
	/* Other field names: newer versions add fields; passed over. */
}

static void read_envelope_text(mv_ms_journal_report *r, char *text, bool strict)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(mv_ms_journal_recipient));
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strlen(line) > MV_MS_JOURNAL_MAX_LINE)
			problem(r, MV_MS_JOURNAL_TOO_LARGE, "a line of the report is longer than %u bytes", MV_MS_JOURNAL_MAX_LINE);
		else
			read_line(list, r, line, strict);
		line = nl ? nl + 1 : NULL;
	}
	r->n_recipients = list->len;
	r->recipients = (mv_ms_journal_recipient *)(void *)g_array_free(list, list->len == 0);
	if (!r->sender && r->n_recipients == 0)
		problem(r, MV_MS_JOURNAL_NO_REPORT, "the report part names neither sender nor recipients");
}

static void read_report_part(const uint8_t *d, const part *p, mv_ms_journal_report *r)
{
	part_info info;
	if (!part_info_read(d, p, &info, r, "report"))
		goto out;
	bool html = info.type && g_mime_content_type_is_type(info.type, "text", "html");
	if (info.type && !html && !g_mime_content_type_is_type(info.type, "text", "plain")) {
		char *type = g_mime_content_type_get_mime_type(info.type);
		problem(r, MV_MS_JOURNAL_REPORT_UNREADABLE, "the report part is %s, not text", type);
		g_free(type);
		goto out;
	}
	if (info.end - info.body > MV_MS_JOURNAL_MAX_REPORT) {
		problem(r, MV_MS_JOURNAL_TOO_LARGE, "the report part is larger than %u bytes", MV_MS_JOURNAL_MAX_REPORT);
		goto out;
	}
	GByteArray *raw = decode_body(d, &info);
	const char *charset = info.type ? g_mime_content_type_get_parameter(info.type, "charset") : NULL;
	GString *text = g_string_new(NULL);
	GError *err = NULL;
	if (mv_mime_to_utf8(raw->data, raw->len, charset, true, text, &err) < 0) {
		problem(r, MV_MS_JOURNAL_REPORT_UNREADABLE, "the report part: %s", err->message);
		g_error_free(err);
	}
	g_byte_array_free(raw, TRUE);
	if (html) {
		char *lines = html_to_lines(text->str);
		read_envelope_text(r, lines, false);
		g_free(lines);
	} else {
		read_envelope_text(r, text->str, true);
	}
	g_string_free(text, TRUE);
out:
	g_clear_object(&info.type);
}

/* ---- the original ----------------------------------------------------------------------- */

static void read_original_part(const uint8_t *d, const part *p, mv_ms_journal_report *r)
{
	part_info info;
	if (!part_info_read(d, p, &info, r, "original"))
		goto out;
	if (!info.type || !(g_mime_content_type_is_type(info.type, "message", "rfc822") ||
	                    g_mime_content_type_is_type(info.type, "message", "global"))) {
		char *type = info.type ? g_mime_content_type_get_mime_type(info.type) : g_strdup("text/plain");
		problem(r, MV_MS_JOURNAL_NO_ORIGINAL, "the second part is %s, not message/rfc822", type);
		g_free(type);
		goto out;
	}
	if (info.end <= info.body) {
		problem(r, MV_MS_JOURNAL_NO_ORIGINAL, "the message/rfc822 part is empty");
		goto out;
	}
	if (!is_encoded(info.encoding)) {
		r->has_original = true;
		r->original_offset = info.body;
		r->original_len = info.end - info.body;
		goto out;
	}
	GByteArray *decoded = decode_body(d, &info);
	if (decoded->len == 0) {
		problem(r, MV_MS_JOURNAL_NO_ORIGINAL, "the encoded message/rfc822 part decodes to nothing");
		g_byte_array_free(decoded, TRUE);
		goto out;
	}
	r->has_original = true;
	r->original_len = decoded->len;
	r->original_decoded = g_byte_array_free(decoded, FALSE);
	problem(r, MV_MS_JOURNAL_ORIGINAL_DECODED, "the original was transfer-encoded");
out:
	g_clear_object(&info.type);
}

/* ---- entry points ----------------------------------------------------------------------- */

static char *multipart_boundary(const uint8_t *d, const header_block *top, mv_ms_journal_report *r)
{
	bool present, too_long = false;
	char *value = header_field(d, top, "Content-Type", &present, &too_long);
	if (!value) {
		problem(r, too_long ? MV_MS_JOURNAL_TOO_LARGE : MV_MS_JOURNAL_NOT_MULTIPART,
		        too_long ? "the Content-Type field is too long" : "the report has no Content-Type: not multipart");
		return NULL;
	}
	GMimeContentType *type = g_mime_content_type_parse(NULL, value);
	g_free(value);
	const char *b = type && g_mime_content_type_is_type(type, "multipart", "*")
	                    ? g_mime_content_type_get_parameter(type, "boundary")
	                    : NULL;
	char *boundary = b && *b && strlen(b) <= MAX_BOUNDARY ? g_strdup(b) : NULL;
	if (!boundary)
		problem(r, MV_MS_JOURNAL_NOT_MULTIPART, "the report's body is not multipart with a usable boundary");
	g_clear_object(&type);
	return boundary;
}

bool mv_ms_journal_report_parse(const uint8_t *data, size_t len, mv_ms_journal_report *r)
{
	memset(r, 0, sizeof *r);
	mv_mime_init();
	header_block top;
	if (!header_block_find(data, len, 0, &top))
		return false; /* not a header we read: no report either */
	bool present = false, too_long = false;
	g_free(header_field(data, &top, "X-MS-Journal-Report", &present, &too_long));
	if (!present)
		return false;
	r->is_journal_report = true;
	char *boundary = multipart_boundary(data, &top, r);
	if (!boundary) {
		problem(r, MV_MS_JOURNAL_NO_ORIGINAL, "no original without parts");
		return true;
	}
	part parts[2];
	int n = find_parts(data, len, top.body, boundary, parts, r);
	g_free(boundary);
	if (n >= 1)
		read_report_part(data, &parts[0], r);
	if (n >= 2)
		read_original_part(data, &parts[1], r);
	else
		problem(r, MV_MS_JOURNAL_NO_ORIGINAL, "the report has no second part with the original");
	return true;
}

const uint8_t *mv_ms_journal_report_original(const mv_ms_journal_report *r, const uint8_t *data, size_t *len_r)
{
	*len_r = 0;
	if (!r->has_original)
		return NULL;
	*len_r = r->original_len;
	return r->original_decoded ? r->original_decoded : data + r->original_offset;
}

void mv_ms_journal_report_clear(mv_ms_journal_report *r)
{
	for (size_t i = 0; i < r->n_recipients; i++) {
		g_free(r->recipients[i].address);
		g_free(r->recipients[i].expanded_from);
		g_free(r->recipients[i].forwarded_from);
	}
	g_free(r->recipients);
	g_free(r->problem);
	g_free(r->sender);
	g_free(r->subject);
	g_free(r->message_id);
	g_free(r->on_behalf_of);
	g_free(r->original_decoded);
	memset(r, 0, sizeof *r);
}

const char *mv_ms_journal_kind_name(mv_ms_journal_kind kind)
{
	switch (kind) {
	case MV_MS_JOURNAL_TO:
		return "To";
	case MV_MS_JOURNAL_CC:
		return "Cc";
	case MV_MS_JOURNAL_BCC:
		return "Bcc";
	case MV_MS_JOURNAL_RECIPIENT:
		return "Recipient";
	}
	return "?";
}
