/* imapd/mutf7: mailbox names in modified UTF-7 (RFC 3501 5.1.3).
 *
 * Folder names in the archive are UTF-8; IMAP4rev1 clients see them in
 * this encoding: printable ASCII as is except '&' ("&-"), everything else
 * as UTF-16 in modified base64 between '&' and '-'.  Decoding is strict
 * (a name that another encoding of the same text would give is refused),
 * so one mailbox has one name. */
#include "imapd/internal.h"
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static void flush_utf16(GString *out, const uint16_t *units, size_t n)
{
	g_string_append_c(out, '&');
	uint32_t bits = 0;
	int nbits = 0;
	for (size_t i = 0; i < n; i++) {
		bits = (bits << 16) | units[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			g_string_append_c(out, b64[(bits >> nbits) & 0x3f]);
		}
	}
	if (nbits > 0)
		g_string_append_c(out, b64[(bits << (6 - nbits)) & 0x3f]);
	g_string_append_c(out, '-');
}

char *imap_mutf7_encode(const char *utf8)
{
	char *valid = g_utf8_make_valid(utf8, -1);
	GString *out = g_string_new(NULL);
	GArray *units = g_array_new(FALSE, FALSE, sizeof(uint16_t));
	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c >= 0x20 && c <= 0x7e) {
			if (units->len) {
				flush_utf16(out, (const uint16_t *)(void *)units->data, units->len);
				g_array_set_size(units, 0);
			}
			if (c == '&')
				g_string_append(out, "&-");
			else
				g_string_append_c(out, (char)c);
			continue;
		}
		if (c >= 0x10000) {
			uint16_t hi = (uint16_t)(0xd800 + ((c - 0x10000) >> 10)), lo = (uint16_t)(0xdc00 + ((c - 0x10000) & 0x3ff));
			g_array_append_val(units, hi);
			g_array_append_val(units, lo);
		} else {
			uint16_t u = (uint16_t)c;
			g_array_append_val(units, u);
		}
	}
	if (units->len)
		flush_utf16(out, (const uint16_t *)(void *)units->data, units->len);
	g_array_free(units, TRUE);
	g_free(valid);
	return g_string_free(out, FALSE);
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* The base64 run starting after '&' up to '-': appended to out as UTF-8. */
static bool decode_run(const char **pp, GString *out)
{
	const char *p = *pp;
	uint32_t bits = 0;
	int nbits = 0;
	uint16_t pending_high = 0;
	size_t units = 0;
	for (; *p && *p != '-'; p++) {
		int v = b64_value(*p);
		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint16_t u = (uint16_t)(bits >> nbits);
		bits &= (1u << nbits) - 1;
		units++;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (pending_high)
				return false;
			pending_high = u;
			continue;
		}
		gunichar c = u;
		if (u >= 0xdc00 && u <= 0xdfff) {
			if (!pending_high)
				return false;
			c = 0x10000 + (((gunichar)pending_high - 0xd800) << 10) + (u - 0xdc00);
			pending_high = 0;
		} else if (pending_high) {
			return false;
		}
		/* Printable ASCII must not be base64-encoded; NUL ends no name. */
		if ((c >= 0x20 && c <= 0x7e) || c == 0)
			return false;
		g_string_append_unichar(out, c);
	}
	/* Leftover bits must be zero padding of fewer than 6 bits... of a unit. */
	if (*p != '-' || units == 0 || pending_high || nbits >= 6 || bits != 0)
		return false;
	*pp = p + 1;
	return true;
}

char *imap_mutf7_decode(const char *mutf7)
{
	GString *out = g_string_new(NULL);
	const char *p = mutf7, *run_end = NULL;
	while (*p) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e)
			goto bad;
		if (c != '&') {
			g_string_append_c(out, (char)c);
			p++;
			continue;
		}
		p++;
		if (*p == '-') {
			g_string_append_c(out, '&');
			p++;
			continue;
		}
		/* Two runs back to back are one run written twice: not canonical. */
		if (p - 1 == run_end || !decode_run(&p, out))
			goto bad;
		run_end = p;
	}
	return g_string_free(out, FALSE);
bad:
	g_string_free(out, TRUE);
	return NULL;
}
