/* imapd/message_envelope: ENVELOPE (RFC 3501 7.4.2) — the header fields it
 * names, address lists read the way Dovecot reads them (MISSING_DOMAIN and
 * groups), and the IMAP strings everything in FETCH answers is written as. */
#include "imapd/message_internal.h"

#include <string.h>

/* Longer strings go out as literals: quoted strings this long upset some
 * clients' line buffers. */
#define MAX_QUOTED 1024

/* ---- IMAP strings ---- */

static void put_string_len(GString *out, const char *s, size_t n, bool utf8)
{
	bool literal = n >= MAX_QUOTED, eight = false;
	size_t nul = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0)
			nul++;
		else if (c == '\r' || c == '\n')
			literal = true;
		else if (c >= 0x80)
			eight = true;
	}
	if (eight && (!utf8 || nul || !g_utf8_validate_len(s, n, NULL)))
		literal = true;
	if (literal) {
		g_string_append_printf(out, "{%zu}\r\n", n - nul);
		for (size_t i = 0; i < n; i++)
			if (s[i])
				g_string_append_c(out, s[i]);
		return;
	}
	g_string_append_c(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			g_string_append_c(out, '\\');
		if (s[i])
			g_string_append_c(out, s[i]);
	}
	g_string_append_c(out, '"');
}

void put_nstring(GString *out, const char *s, bool utf8)
{
	if (s)
		put_string_len(out, s, strlen(s), utf8);
	else
		g_string_append(out, "NIL");
}

/* ---- addresses (RFC 5322 3.4, the way Dovecot reads them) ---- */

typedef struct {
	const char *s;
	size_t i;
	GString *comment;
	bool utf8;
	GString *out;
	size_t count;
} addrp;

static bool is_atext(int c)
{
	return c > ' ' && c != 0x7f && !strchr("()<>[]:;@\\,.\"", c);
}

/* Words (atoms, quoted strings, dots) up to a special: the display name or
 * local part as written, quotes removed, words joined by one space. */
static void read_phrase(addrp *p, GString *out, bool *any_r)
{
	*any_r = false;
	for (;;) {
		size_t before = p->i;
		p->i = skip_cfws(p->s, p->i, p->comment);
		bool space = p->i > before && out->len > 0;
		char c = p->s[p->i];
		if (c == '"') {
			if (space)
				g_string_append_c(out, ' ');
			p->i = read_quoted(p->s, p->i, out);
		} else if (c == '.') {
			g_string_append_c(out, '.');
			p->i++;
		} else if (is_atext((unsigned char)c)) {
			if (space)
				g_string_append_c(out, ' ');
			while (is_atext((unsigned char)p->s[p->i]))
				g_string_append_c(out, p->s[p->i++]);
		} else
			return;
		*any_r = true;
	}
}

static void read_domain(addrp *p, GString *out)
{
	for (;;) {
		p->i = skip_cfws(p->s, p->i, p->comment);
		char c = p->s[p->i];
		if (c == '[') {
			while (p->s[p->i] && p->s[p->i] != ']') {
				if (p->s[p->i] == '\\' && p->s[p->i + 1])
					p->i++;
				g_string_append_c(out, p->s[p->i++]);
			}
			if (p->s[p->i] == ']')
				g_string_append_c(out, p->s[p->i++]);
		} else if (c == '.') {
			g_string_append_c(out, '.');
			p->i++;
		} else if (is_atext((unsigned char)c)) {
			while (is_atext((unsigned char)p->s[p->i]))
				g_string_append_c(out, p->s[p->i++]);
		} else
			return;
	}
}

static void put_addr(addrp *p, const char *name, const char *adl, const char *mailbox, const char *host)
{
	g_string_append_c(p->out, '(');
	put_nstring(p->out, name, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, adl, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, mailbox, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, host, p->utf8);
	g_string_append_c(p->out, ')');
	p->count++;
}

/* "<[@route,@route:]local@domain>" at p->s[p->i] == '<'. */
static void read_angle(addrp *p, GString *adl, GString *local, GString *domain)
{
	p->i++;
	p->i = skip_cfws(p->s, p->i, NULL);
	if (p->s[p->i] == '@') {
		/* stops at '>' too: searching past it would make a list of
		 * "<@x" quadratic */
		size_t r = p->i + strcspn(p->s + p->i, ":>");
		if (p->s[r] == ':') {
			g_string_append_len(adl, p->s + p->i, (gssize)(r - p->i));
			p->i = r + 1;
		}
	}
	bool any;
	read_phrase(p, local, &any);
	p->i = skip_cfws(p->s, p->i, NULL);
	if (p->s[p->i] == '@') {
		p->i++;
		read_domain(p, domain);
	}
	while (p->s[p->i] && p->s[p->i] != '>')
		p->i++;
	if (p->s[p->i] == '>')
		p->i++;
}

/* One mailbox, or a group unless in_group; false when the position did not
 * hold one (the caller skips to the next comma). */
static bool read_mailbox(addrp *p, bool in_group)
{
	GString *phrase = g_string_new(NULL), *adl = g_string_new(NULL), *local = g_string_new(NULL),
	        *domain = g_string_new(NULL);
	g_string_truncate(p->comment, 0);
	bool any, ok = true;
	read_phrase(p, phrase, &any);
	char c = p->s[p->i];
	if (c == ':' && !in_group && any) {
		put_addr(p, NULL, NULL, phrase->str, NULL);
		p->i++;
		for (;;) {
			p->i = skip_cfws(p->s, p->i, NULL);
			char g = p->s[p->i];
			if (g == ';' || g == '\0') {
				if (g)
					p->i++;
				break;
			}
			if (g == ',') {
				p->i++;
				continue;
			}
			size_t before = p->i;
			if (!read_mailbox(p, true) || p->i == before)
				while (p->s[p->i] && p->s[p->i] != ',' && p->s[p->i] != ';')
					p->i++;
		}
		put_addr(p, NULL, NULL, NULL, NULL);
	} else if (c == '<') {
		read_angle(p, adl, local, domain);
		put_addr(p, any ? phrase->str : NULL, adl->len ? adl->str : NULL,
		         local->len ? local->str : "MISSING_MAILBOX", domain->len ? domain->str : "MISSING_DOMAIN");
	} else if (any) {
		g_string_append(local, phrase->str);
		p->i = skip_cfws(p->s, p->i, p->comment);
		if (p->s[p->i] == '@') {
			p->i++;
			read_domain(p, domain);
		}
		const char *name = p->comment->len ? p->comment->str : NULL;
		put_addr(p, name, NULL, local->str, domain->len ? domain->str : "MISSING_DOMAIN");
	} else
		ok = false;
	g_string_free(phrase, TRUE);
	g_string_free(adl, TRUE);
	g_string_free(local, TRUE);
	g_string_free(domain, TRUE);
	return ok;
}

/* The address list of a header value, NIL when it holds none. */
static void put_address_list(GString *out, const char *value, bool utf8)
{
	if (!value) {
		g_string_append(out, "NIL");
		return;
	}
	GString *list = g_string_new("(");
	addrp p = {.s = value, .comment = g_string_new(NULL), .utf8 = utf8, .out = list};
	while (p.s[p.i]) {
		p.i = skip_cfws(p.s, p.i, NULL);
		if (p.s[p.i] == ',' || p.s[p.i] == ';') {
			p.i++;
			continue;
		}
		if (!p.s[p.i])
			break;
		size_t before = p.i;
		if (!read_mailbox(&p, false) || p.i == before)
			while (p.s[p.i] && p.s[p.i] != ',')
				p.i++;
	}
	g_string_append_c(list, ')');
	g_string_append(out, p.count ? list->str : "NIL");
	g_string_free(p.comment, TRUE);
	g_string_free(list, TRUE);
}

/* ---- ENVELOPE ---- */

enum { E_DATE, E_SUBJECT, E_FROM, E_SENDER, E_REPLY_TO, E_TO, E_CC, E_BCC, E_IN_REPLY_TO, E_MESSAGE_ID, E_COUNT };
static const char *const envelope_fields[E_COUNT] = {"Date", "Subject", "From", "Sender", "Reply-To",
                                                      "To", "Cc", "Bcc", "In-Reply-To", "Message-ID"};

void put_envelope(const mv_imap_message *m, const node *msg, bool utf8, GString *out)
{
	char *v[E_COUNT];
	header_values(m->data, msg->hdr_start, msg->hdr_end, envelope_fields, E_COUNT, v);
	for (int i = E_FROM; i <= E_BCC; i++) {
		g_free(v[i]);
		v[i] = address_field(m->data, msg->hdr_start, msg->hdr_end, envelope_fields[i]);
	}
	/* RFC 3501: absent or empty Sender and Reply-To are the From list. */
	for (int i = E_SENDER; i <= E_REPLY_TO; i++)
		if (!v[i] || !*v[i]) {
			g_free(v[i]);
			v[i] = g_strdup(v[E_FROM]);
		}
	g_string_append_c(out, '(');
	for (int i = 0; i < E_COUNT; i++) {
		if (i)
			g_string_append_c(out, ' ');
		if (i >= E_FROM && i <= E_BCC)
			put_address_list(out, v[i], utf8);
		else
			put_nstring(out, v[i], utf8);
		g_free(v[i]);
	}
	g_string_append_c(out, ')');
}

void mv_imap_message_envelope(const mv_imap_message *m, bool utf8, GString *out)
{
	put_envelope(m, N(m, 0), utf8, out);
}
