/* imapd/message_section: BODY[section] and BINARY[section] — the spec
 * parsed (part numbers, HEADER, HEADER.FIELDS[.NOT], TEXT, MIME), the part
 * it names found as Dovecot finds it, and its bytes: a slice of the
 * message, a built list of header fields, or the body decoded (BINARY). */
#include "imapd/message_internal.h"
#include "base/base.h"

#include <string.h>

/* ---- section specs ---- */

static bool match_kw(const char *s, size_t len, size_t *i, const char *kw)
{
	size_t n = strlen(kw);
	if (len - *i < n || ascii_ncasecmp(s + *i, kw, n) != 0)
		return false;
	*i += n;
	return true;
}

static bool is_atom_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !strchr("(){%*\"\\]", c);
}

/* One header-fld-name: an atom or a quoted string. */
static bool read_field_name(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	GString *name = g_string_new(NULL);
	bool quoted = *i < len && s[*i] == '"';
	if (quoted) {
		size_t k = *i + 1;
		for (; k < len && s[k] != '"'; k++) {
			if (s[k] == '\\' && k + 1 < len && (s[k + 1] == '"' || s[k + 1] == '\\'))
				k++;
			else if (s[k] == '\\' || s[k] == '\r' || s[k] == '\n' || s[k] == '\0')
				break;
			g_string_append_c(name, s[k]);
		}
		if (k >= len || s[k] != '"') {
			g_string_free(name, TRUE);
			return false;
		}
		*i = k + 1;
	} else
		while (*i < len && is_atom_char((unsigned char)s[*i]))
			g_string_append_c(name, s[(*i)++]);
	if (!quoted && name->len == 0) {
		g_string_free(name, TRUE);
		return false;
	}
	if (canon) {
		char *up = g_ascii_strup(name->str, (gssize)name->len);
		if (quoted) {
			/* quoted as given even with 8-bit bytes: the echo must
			 * parse back to the same spec */
			g_string_append_c(canon, '"');
			for (size_t k = 0; k < name->len; k++) {
				if (up[k] == '"' || up[k] == '\\')
					g_string_append_c(canon, '\\');
				g_string_append_c(canon, up[k]);
			}
			g_string_append_c(canon, '"');
		} else
			g_string_append(canon, up);
		g_free(up);
	}
	g_ptr_array_add(sec->fields, g_string_free(name, FALSE));
	return true;
}

static const char *parse_field_list(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	if (*i >= len || s[*i] != ' ')
		return "expected a space before the header list";
	(*i)++;
	if (*i >= len || s[*i] != '(')
		return "expected a header list";
	(*i)++;
	if (canon)
		g_string_append(canon, " (");
	sec->fields = g_ptr_array_new_with_free_func(g_free);
	for (;;) {
		if (sec->fields->len >= MV_IMAP_MAX_HEADER_FIELDS)
			return "too many header fields";
		if (sec->fields->len && canon)
			g_string_append_c(canon, ' ');
		if (!read_field_name(s, len, i, sec, canon))
			return "bad header field name";
		if (*i < len && s[*i] == ')')
			break;
		if (*i >= len || s[*i] != ' ')
			return "bad header list";
		(*i)++;
	}
	(*i)++;
	if (canon)
		g_string_append_c(canon, ')');
	return NULL;
}

/* section-msgtext / "MIME" after the part numbers (or at the start). */
static const char *parse_text_spec(const char *s, size_t len, size_t *i, bool have_parts, mv_imap_section *sec,
                                   GString *canon)
{
	if (match_kw(s, len, i, "HEADER.FIELDS.NOT")) {
		sec->kind = MV_IMAP_SECTION_HEADER_FIELDS_NOT;
		if (canon)
			g_string_append(canon, "HEADER.FIELDS.NOT");
		return parse_field_list(s, len, i, sec, canon);
	}
	if (match_kw(s, len, i, "HEADER.FIELDS")) {
		sec->kind = MV_IMAP_SECTION_HEADER_FIELDS;
		if (canon)
			g_string_append(canon, "HEADER.FIELDS");
		return parse_field_list(s, len, i, sec, canon);
	}
	const char *kw;
	if (match_kw(s, len, i, "HEADER")) {
		sec->kind = MV_IMAP_SECTION_HEADER;
		kw = "HEADER";
	} else if (match_kw(s, len, i, "TEXT")) {
		sec->kind = MV_IMAP_SECTION_TEXT;
		kw = "TEXT";
	} else if (match_kw(s, len, i, "MIME")) {
		if (!have_parts)
			return "MIME needs a part number";
		sec->kind = MV_IMAP_SECTION_MIME;
		kw = "MIME";
	} else
		return "unknown section";
	if (canon)
		g_string_append(canon, kw);
	return NULL;
}

static const char *parse_part_numbers(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	while (*i < len && g_ascii_isdigit(s[*i])) {
		if (s[*i] == '0')
			return "part numbers start at 1";
		if (sec->nparts >= MV_IMAP_MAX_SECTION_PARTS)
			return "too many part numbers";
		unsigned long long n = 0;
		while (*i < len && g_ascii_isdigit(s[*i])) {
			n = n * 10 + (unsigned)(s[(*i)++] - '0');
			if (n > UINT32_MAX)
				return "part number too large";
		}
		sec->parts[sec->nparts++] = (unsigned)n;
		if (canon)
			g_string_append_printf(canon, "%s%llu", sec->nparts > 1 ? "." : "", n);
		if (*i < len && s[*i] == '.' && *i + 1 < len && g_ascii_isdigit(s[*i + 1]))
			(*i)++;
		else
			break;
	}
	return NULL;
}

static const char *parse_section(const char *s, size_t len, bool binary, mv_imap_section *sec, GString *canon)
{
	size_t i = 0;
	if (i < len && g_ascii_isdigit(s[i])) {
		const char *e = parse_part_numbers(s, len, &i, sec, canon);
		if (e)
			return e;
		if (i == len)
			return NULL;
		if (binary)
			return "BINARY takes part numbers only";
		if (s[i] != '.')
			return "garbage after part number";
		i++;
		if (canon)
			g_string_append_c(canon, '.');
	} else if (i < len && binary)
		return "BINARY takes part numbers only";
	if (i == len)
		return sec->nparts ? "section text expected after the dot" : NULL;
	const char *e = parse_text_spec(s, len, &i, sec->nparts > 0, sec, canon);
	if (e)
		return e;
	return i == len ? NULL : "garbage after section";
}

bool mv_imap_section_parse(const char *spec, size_t len, bool binary, mv_imap_section *sec_r, GString *canon,
                           const char **error_r)
{
	memset(sec_r, 0, sizeof *sec_r);
	gsize canon_len = canon ? canon->len : 0;
	const char *e = parse_section(spec ? spec : "", spec ? len : 0, binary, sec_r, canon);
	if (e) {
		mv_imap_section_clear(sec_r);
		if (canon)
			g_string_truncate(canon, canon_len);
		if (error_r)
			*error_r = e;
		return false;
	}
	return true;
}

void mv_imap_section_clear(mv_imap_section *sec)
{
	if (sec->fields)
		g_ptr_array_unref(sec->fields);
	memset(sec, 0, sizeof *sec);
}

/* ---- sections ---- */

static uint32_t nth_child(const mv_imap_message *m, uint32_t id, unsigned num)
{
	uint32_t c = num ? N(m, id)->first_child : NONE;
	for (; c != NONE && num > 1; num--)
		c = N(m, c)->next;
	return c;
}

/* Part numbers to a node (RFC 3501 6.4.5, read as Dovecot does: "1" of a
 * non-multipart entity is that entity, a message part's numbers go on in
 * its embedded message, and one ".1" more into a leaf is the leaf). */
static uint32_t find_part(const mv_imap_message *m, const unsigned *parts, size_t nparts)
{
	uint32_t within = 0, part = NONE;
	for (size_t i = 0; i < nparts; i++) {
		if (within == NONE)
			return NONE;
		bool more = i + 1 < nparts;
		const node *w = N(m, within);
		if (w->kind == KIND_MULTIPART)
			part = nth_child(m, within, parts[i]);
		else {
			part = parts[i] == 1 ? within : NONE;
			if (more && part != NONE && w->kind != KIND_MESSAGE)
				part = NONE;
		}
		if (part != NONE && more && N(m, part)->kind == KIND_MESSAGE)
			within = N(m, part)->first_child;
		else
			within = part;
	}
	return part;
}

/* The message whose HEADER/TEXT a section means: the whole one, or the
 * one inside a message/rfc822 part. */
static uint32_t section_message(const mv_imap_message *m, const mv_imap_section *sec)
{
	if (sec->nparts == 0)
		return 0;
	uint32_t p = find_part(m, sec->parts, sec->nparts);
	if (p == NONE || N(m, p)->kind != KIND_MESSAGE)
		return NONE;
	return N(m, p)->first_child;
}

static bool field_wanted(const uint8_t *d, const hfield *f, GPtrArray *names)
{
	for (guint i = 0; names && i < names->len; i++)
		if (field_is(d, f, names->pdata[i], strlen(names->pdata[i])))
			return true;
	return false;
}

/* The line end the header is written with: an LF-only message gets its
 * fields back with LF, not a CRLF blank line after LF lines. */
static const char *header_eol(const mv_imap_message *m, const node *msg)
{
	const uint8_t *nl = memchr(m->data + msg->hdr_start, '\n', msg->hdr_end - msg->hdr_start);
	return nl && nl > m->data + msg->hdr_start && nl[-1] != '\r' ? "\n" : "\r\n";
}

static GByteArray *header_fields(const mv_imap_message *m, const node *msg, GPtrArray *names, bool not)
{
	GByteArray *b = g_byte_array_new();
	const char *eol = header_eol(m, msg);
	hfield f;
	size_t pos = msg->hdr_start;
	while (next_field(m->data, msg->hdr_end, &pos, &f)) {
		if (field_wanted(m->data, &f, names) == not)
			continue;
		g_byte_array_append(b, m->data + f.start, (guint)(f.end - f.start));
		if (m->data[f.end - 1] != '\n')
			g_byte_array_append(b, (const guint8 *)eol, (guint)strlen(eol));
	}
	g_byte_array_append(b, (const guint8 *)eol, (guint)strlen(eol));
	return b;
}

void mv_imap_message_section(const mv_imap_message *m, const mv_imap_section *sec, const uint8_t **data_r,
                             size_t *len_r, GByteArray **owned_r)
{
	*data_r = m->data;
	*len_r = 0;
	*owned_r = NULL;
	size_t start = 0, end = 0;
	if (sec->kind == MV_IMAP_SECTION_ALL || sec->kind == MV_IMAP_SECTION_MIME) {
		if (sec->nparts == 0) {
			end = m->len;
		} else {
			uint32_t p = find_part(m, sec->parts, sec->nparts);
			if (p == NONE)
				return;
			const node *n = N(m, p);
			bool mime = sec->kind == MV_IMAP_SECTION_MIME;
			start = mime ? n->hdr_start : n->body_start;
			end = mime ? n->hdr_end : n->body_end;
		}
	} else {
		uint32_t id = section_message(m, sec);
		if (id == NONE)
			return;
		const node *n = N(m, id);
		if (sec->kind == MV_IMAP_SECTION_HEADER_FIELDS || sec->kind == MV_IMAP_SECTION_HEADER_FIELDS_NOT) {
			*owned_r = header_fields(m, n, sec->fields, sec->kind == MV_IMAP_SECTION_HEADER_FIELDS_NOT);
			*data_r = (*owned_r)->data;
			*len_r = (*owned_r)->len;
			return;
		}
		bool header = sec->kind == MV_IMAP_SECTION_HEADER;
		start = header ? n->hdr_start : n->body_start;
		end = header ? n->hdr_end : n->body_end;
	}
	*data_r = m->data + start;
	*len_r = end - start;
}

/* ---- BINARY ---- */

/* Whatever is not base64 is skipped; '=' ends a group early, so missing
 * padding and concatenated encodings both decode. */
static GByteArray *decode_base64(const uint8_t *d, size_t len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len / 4 * 3 + 3, G_MAXUINT));
	uint32_t acc = 0;
	int n = 0;
	for (size_t i = 0; i <= len; i++) {
		int v = i < len ? mv_base64_value(d[i]) : -1;
		if (v >= 0) {
			acc = acc << 6 | (uint32_t)v;
			if (++n < 4)
				continue;
			uint8_t b[3] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8), (uint8_t)acc};
			g_byte_array_append(out, b, 3);
			acc = 0;
			n = 0;
		} else if ((i == len || d[i] == '=') && n >= 2) {
			acc <<= 6 * (4 - n);
			uint8_t b[2] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8)};
			g_byte_array_append(out, b, (guint)(n - 1));
			acc = 0;
			n = 0;
		}
	}
	return out;
}

static int hex_value(uint8_t c)
{
	return g_ascii_isxdigit(c) ? g_ascii_xdigit_value((char)c) : -1;
}

/* RFC 2045 6.7: "=XX" octets, "=" at a line end is a soft break, trailing
 * white space of a line is transport padding; a broken "=" stays as is. */
static GByteArray *decode_qp(const uint8_t *d, size_t len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len, G_MAXUINT));
	size_t pos = 0;
	while (pos < len) {
		size_t next = line_end(d, pos, len);
		size_t text_end = next;
		bool has_eol = next > pos && d[next - 1] == '\n';
		if (has_eol) {
			text_end--;
			if (text_end > pos && d[text_end - 1] == '\r')
				text_end--;
		}
		size_t trimmed = text_end;
		while (trimmed > pos && is_wsp(d[trimmed - 1]))
			trimmed--;
		bool soft = trimmed > pos && d[trimmed - 1] == '=';
		size_t stop = soft ? trimmed - 1 : trimmed;
		for (size_t i = pos; i < stop; i++) {
			int hi, lo;
			if (d[i] == '=' && i + 2 < stop && (hi = hex_value(d[i + 1])) >= 0 &&
			    (lo = hex_value(d[i + 2])) >= 0) {
				uint8_t b = (uint8_t)(hi << 4 | lo);
				g_byte_array_append(out, &b, 1);
				i += 2;
			} else
				g_byte_array_append(out, d + i, 1);
		}
		if (!soft && has_eol)
			g_byte_array_append(out, d + text_end, (guint)(next - text_end));
		pos = next;
	}
	return out;
}

mv_imap_binary_result mv_imap_message_binary(const mv_imap_message *m, const mv_imap_section *sec,
                                             GByteArray **out_r)
{
	*out_r = NULL;
	if (sec->nparts == 0) {
		*out_r = g_byte_array_sized_new((guint)MIN(m->len, G_MAXUINT));
		g_byte_array_append(*out_r, m->data, (guint)m->len);
		return MV_IMAP_BINARY_OK;
	}
	uint32_t p = find_part(m, sec->parts, sec->nparts);
	if (p == NONE)
		return MV_IMAP_BINARY_NO_PART;
	const node *n = N(m, p);
	const uint8_t *body = m->data + n->body_start;
	size_t len = n->body_end - n->body_start;
	static const char *const names[] = {"Content-Transfer-Encoding"};
	char *cte = NULL;
	if (n->kind == KIND_LEAF)
		header_values(m->data, n->hdr_start, n->hdr_end, names, 1, &cte);
	char *c = cte ? g_ascii_strdown(g_strstrip(cte), -1) : NULL;
	g_free(cte);
	mv_imap_binary_result r = MV_IMAP_BINARY_OK;
	if (!c || !*c || !strcmp(c, "7bit") || !strcmp(c, "8bit") || !strcmp(c, "binary")) {
		*out_r = g_byte_array_sized_new((guint)MIN(len, G_MAXUINT));
		g_byte_array_append(*out_r, body, (guint)len);
	} else if (!strcmp(c, "base64"))
		*out_r = decode_base64(body, len);
	else if (!strcmp(c, "quoted-printable"))
		*out_r = decode_qp(body, len);
	else
		r = MV_IMAP_BINARY_UNKNOWN_CTE;
	g_free(c);
	return r;
}
