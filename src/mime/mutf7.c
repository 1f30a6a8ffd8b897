/* mutf7: IMAP's modified UTF-7 (RFC 3501 5.1.3), the one encoding of
 * folder names for the IMAP server's mailbox names, the export's
 * X-MailStore-Folder-UTF7 header and the IMAP restore target.  Decoding is
 * strict — only the canonical encoding of a text is accepted — so one
 * folder has one name and a decoded name encodes back to the same bytes
 * (fuzzed). */
#include "mime/mime.h"
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static void flush_shift(GString *out, const gunichar2 *units, size_t n)
{
	if (!n)
		return;
	g_string_append_c(out, '&');
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		for (int b = 1; b >= 0; b--) {
			acc = (acc << 8) | ((units[i] >> (8 * b)) & 0xff);
			bits += 8;
			while (bits >= 6) {
				bits -= 6;
				g_string_append_c(out, b64[(acc >> bits) & 0x3f]);
			}
		}
	}
	if (bits > 0)
		g_string_append_c(out, b64[(acc << (6 - bits)) & 0x3f]);
	g_string_append_c(out, '-');
}

char *mv_mutf7_encode(const char *utf8)
{
	char *valid = g_utf8_make_valid(utf8 ? utf8 : "", -1);
	GString *out = g_string_new(NULL);
	GArray *run = g_array_new(FALSE, FALSE, sizeof(gunichar2));
	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c >= 0x20 && c <= 0x7e) {
			flush_shift(out, (const gunichar2 *)run->data, run->len);
			g_array_set_size(run, 0);
			if (c == '&')
				g_string_append(out, "&-");
			else
				g_string_append_c(out, (char)c);
			continue;
		}
		if (c > 0xffff) {
			gunichar2 pair[2] = { (gunichar2)(0xd800 + ((c - 0x10000) >> 10)),
				              (gunichar2)(0xdc00 + ((c - 0x10000) & 0x3ff)) };
			g_array_append_vals(run, pair, 2);
		} else {
			gunichar2 u = (gunichar2)c;
			g_array_append_val(run, u);
		}
	}
	flush_shift(out, (const gunichar2 *)run->data, run->len);
	g_array_free(run, TRUE);
	g_free(valid);
	return g_string_free(out, FALSE);
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* One shifted run "&...-" starting at text[i] (the '&'); appends its
 * characters and returns the index after the '-', or 0 when malformed. */
static size_t decode_shift(const char *text, size_t i, GString *out, const char **why_r)
{
	size_t j = i + 1;
	uint32_t acc = 0;
	int bits = 0;
	gunichar2 high = 0;
	size_t units = 0;
	for (; text[j] && text[j] != '-'; j++) {
		int v = b64_value(text[j]);
		if (v < 0) {
			*why_r = "a character outside modified BASE64 in a shifted run";
			return 0;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits < 16)
			continue;
		bits -= 16;
		gunichar2 u = (gunichar2)((acc >> bits) & 0xffff);
		units++;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff) {
				*why_r = "a lone UTF-16 surrogate";
				return 0;
			}
			g_string_append_unichar(out, 0x10000 + (((gunichar)high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if ((u >= 0xdc00 && u <= 0xdfff) || u < 0x20 || (u >= 0x7f && u <= 0x9f) ||
		           (u >= 0x20 && u <= 0x7e)) {
			*why_r = u >= 0x20 && u <= 0x7e ? "printable ASCII inside a shifted run"
			                                : "a control character or lone surrogate";
			return 0;
		} else {
			g_string_append_unichar(out, u);
		}
	}
	if (text[j] != '-' || units == 0 || high || bits >= 6 || (acc & ((1u << bits) - 1)) != 0) {
		*why_r = "an unterminated or badly padded shifted run";
		return 0;
	}
	return j + 1;
}

char *mv_mutf7_decode(const char *text, GError **error)
{
	GString *out = g_string_new(NULL);
	const char *why = NULL;
	size_t i = 0, run_end = 0;
	while (text[i] && !why) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 || c > 0x7e) {
			why = "a byte that is not printable ASCII";
		} else if (c != '&') {
			g_string_append_c(out, (char)c);
			i++;
		} else if (text[i + 1] == '-') {
			g_string_append_c(out, '&');
			i += 2;
		} else if (i > 0 && i == run_end) {
			why = "two shifted runs back to back (one run written as two)";
		} else {
			size_t next = decode_shift(text, i, out, &why);
			if (next)
				i = run_end = next;
		}
	}
	if (!why)
		return g_string_free(out, FALSE);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "modified UTF-7 at position %zu: %s", i, why);
	g_string_free(out, TRUE);
	return NULL;
}

