/* Unit tests: Outlook's RTF — PR_RTF_COMPRESSED (the two worked examples
 * of MS-OXRTFCP section 4, uncompressed "MELA" data, every refusal, two real
 * bodies), HTML de-encapsulation (MS-OXRTFEX) and RTF to text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mapi.h"
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------- */

/* The CRC of MS-OXRTFCP, bit by bit: an implementation independent of
 * rtf.c's table. */
static uint32_t crc(const uint8_t *p, size_t n)
{
	uint32_t c = 0;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return c;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A PR_RTF_COMPRESSED value with a correct COMPSIZE and CRC. */
static GByteArray *blob(uint32_t rawsize, const char *type, const uint8_t *content, size_t n)
{
	GByteArray *b = g_byte_array_new();
	uint8_t head[16];
	put_le32(head, (uint32_t)n + 12);
	put_le32(head + 4, rawsize);
	memcpy(head + 8, type, 4);
	put_le32(head + 12, strcmp(type, "LZFu") == 0 ? crc(content, n) : 0);
	g_byte_array_append(b, head, 16);
	g_byte_array_append(b, content, (guint)n);
	return b;
}

/* The RTF as a string (NUL-terminated; Outlook's RTF ends in a NUL of its
 * own), its length in *len_r when wanted. */
static char *decompress_len(const uint8_t *data, size_t len, size_t *len_r)
{
	GByteArray *out = NULL;
	GError *error = NULL;
	int rc = mv_rtf_decompress(data, len, &out, &error);
	if (rc != 0)
		fail_msg("decompress: %s", error->message);
	assert_null(error);
	char *s = g_malloc(out->len + 1);
	if (out->len)
		memcpy(s, out->data, out->len);
	s[out->len] = '\0';
	if (len_r)
		*len_r = out->len;
	g_byte_array_unref(out);
	return s;
}

static char *decompress_ok(const uint8_t *data, size_t len)
{
	size_t n = 0;
	char *s = decompress_len(data, len, &n);
	assert_int_equal(strlen(s), n);
	return s;
}

/* Refused with this code and a message containing `what`. */
static void decompress_fails(const uint8_t *data, size_t len, int code, const char *what)
{
	GByteArray *out = (GByteArray *)&out; /* must be reset */
	GError *error = NULL;
	assert_int_equal(mv_rtf_decompress(data, len, &out, &error), -1);
	assert_null(out);
	assert_non_null(error);
	assert_true(g_error_matches(error, MV_ERROR, code));
	assert_true(g_str_has_prefix(error->message, "compressed RTF: "));
	if (!strstr(error->message, what))
		fail_msg("'%s' does not say '%s'", error->message, what);
	g_error_free(error);
}

static char *text_of(const char *rtf, size_t limit)
{
	GString *out = g_string_new(NULL);
	mv_rtf_to_text((const uint8_t *)rtf, strlen(rtf), out, limit);
	assert_true(out->len <= limit);
	assert_true(g_utf8_validate(out->str, (gssize)out->len, NULL));
	return g_string_free(out, FALSE);
}

static void text_is(const char *rtf, const char *want)
{
	char *got = text_of(rtf, 1 << 20);
	assert_string_equal(got, want);
	g_free(got);
}

/* ---- MS-OXRTFCP ----------------------------------------------------------------- */

/* Section 4.1: "{\rtf1\ansi\ansicpg1252\pard hello world}\r\n". */
static const uint8_t example1[] = {
	0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5, 0xc7, 0xa7,
	0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42, 0x32, 0x0a, 0xf3, 0x20,
	0x68, 0x65, 0x6c, 0x09, 0x00, 0x20, 0x62, 0x77, 0x05, 0xb0, 0x6c, 0x64, 0x7d, 0x0a, 0x80, 0x0f,
	0xa0,
};

/* Section 4.2: a reference that reads across the write position. */
static const uint8_t example2[] = {
	0x1a, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xe2, 0xd4, 0x4b, 0x51,
	0x41, 0x00, 0x04, 0x20, 0x57, 0x58, 0x59, 0x5a, 0x0d, 0x6e, 0x7d, 0x01, 0x0e, 0xb0,
};

static void test_spec_examples(void **state)
{
	char *s = decompress_ok(example1, sizeof example1);
	assert_string_equal(s, "{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n");
	g_free(s);
	s = decompress_ok(example2, sizeof example2);
	assert_string_equal(s, "{\\rtf1 WXYZWXYZWXYZWXYZWXYZ}");
	g_free(s);
}

static void test_uncompressed(void **state)
{
	const char *rtf = "{\\rtf1\\ansi plain}";
	size_t n = strlen(rtf);
	GByteArray *b = blob((uint32_t)n, "MELA", (const uint8_t *)rtf, n);
	put_le32(b->data + 12, 0xDEADBEEF); /* writers leave the CRC uninitialised */
	char *s = decompress_ok(b->data, b->len);
	assert_string_equal(s, rtf);
	g_free(s);
	/* RAWSIZE counting the 12 header bytes as well: the content is read. */
	put_le32(b->data + 4, (uint32_t)n + 12);
	s = decompress_ok(b->data, b->len);
	assert_string_equal(s, rtf);
	g_free(s);
	/* Shorter RAWSIZE: the rest is padding. */
	put_le32(b->data + 4, 5);
	s = decompress_ok(b->data, b->len);
	assert_string_equal(s, "{\\rtf");
	g_free(s);
	/* RAWSIZE beyond the content (and not the header miscount). */
	put_le32(b->data + 4, (uint32_t)n + 1);
	decompress_fails(b->data, b->len, MV_ERR_INVALID, "truncated");
	g_byte_array_unref(b);
}

static void test_bad_headers(void **state)
{
	decompress_fails(example1, 15, MV_ERR_INVALID, "shorter than the 16-byte header");
	decompress_fails(NULL, 0, MV_ERR_INVALID, "header");
	uint8_t copy[sizeof example1];
	memcpy(copy, example1, sizeof copy);
	memcpy(copy + 8, "LZFv", 4);
	decompress_fails(copy, sizeof copy, MV_ERR_INVALID, "COMPTYPE");
	/* COMPSIZE must match: neither shorter data nor trailing bytes. */
	decompress_fails(example1, sizeof example1 - 1, MV_ERR_INVALID, "COMPSIZE 45");
	GByteArray *padded = g_byte_array_new();
	g_byte_array_append(padded, example1, sizeof example1);
	g_byte_array_append(padded, (const uint8_t *)"\0\0\0", 3);
	decompress_fails(padded->data, padded->len, MV_ERR_INVALID, "COMPSIZE");
	g_byte_array_unref(padded);
	/* RAWSIZE over the bound: refused before anything is allocated. */
	memcpy(copy, example1, sizeof copy);
	put_le32(copy + 4, MV_RTF_MAX_OUTPUT + 1u);
	decompress_fails(copy, sizeof copy, MV_ERR_LIMIT, "RAWSIZE");
	put_le32(copy + 4, 0xFFFFFFFFu);
	decompress_fails(copy, sizeof copy, MV_ERR_LIMIT, "limit");
}

static void test_crc_mismatch(void **state)
{
	uint8_t copy[sizeof example1];
	memcpy(copy, example1, sizeof copy);
	copy[30] ^= 0x01; /* one bit of the content */
	decompress_fails(copy, sizeof copy, MV_ERR_INVALID, "CRC");
	memcpy(copy, example1, sizeof copy);
	copy[12] ^= 0x80; /* the CRC field itself */
	decompress_fails(copy, sizeof copy, MV_ERR_INVALID, "CRC");
	/* The header's CRC is the one of the spec's table without inversion. */
	assert_int_equal(crc(example1 + 16, sizeof example1 - 16), 0xA7C7C5F1u);
}

static void test_truncated(void **state)
{
	/* Example 1 cut before its end reference, re-headed and re-CRCed so
	 * that only the missing end gives it away. */
	int refused = 0;
	for (size_t cut = 1; cut < sizeof example1 - 16; cut++) {
		GByteArray *b = blob(43, "LZFu", example1 + 16, sizeof example1 - 16 - cut);
		GByteArray *out = NULL;
		GError *error = NULL;
		if (mv_rtf_decompress(b->data, b->len, &out, &error) == 0) {
			/* Accepted without its end reference only when every
			 * byte RAWSIZE announced was written. */
			assert_int_equal(out->len, 43);
			assert_memory_equal(out->data, "{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n", 43);
			g_byte_array_unref(out);
		} else {
			assert_null(out);
			if (!strstr(error->message, "truncated"))
				fail_msg("cut %zu: %s", cut, error->message);
			g_error_free(error);
			refused++;
		}
		g_byte_array_unref(b);
	}
	assert_true(refused >= (int)sizeof example1 - 16 - 2);
	/* Output past RAWSIZE. */
	uint8_t copy[sizeof example1];
	memcpy(copy, example1, sizeof copy);
	put_le32(copy + 4, 42);
	decompress_fails(copy, sizeof copy, MV_ERR_INVALID, "past RAWSIZE");
	put_le32(copy + 4, 0);
	decompress_fails(copy, sizeof copy, MV_ERR_INVALID, "past RAWSIZE");
}

/* References that feed on their own output (offset just behind the write
 * position, 17 bytes each) and never end: decoding stops at RAWSIZE or at
 * the end of the input, whichever comes first. */
static void test_looping_references(void **state)
{
	uint8_t content[1 + 16 * 9];
	size_t n = 0;
	for (int run = 0; run < 16 && n + 17 <= sizeof content; run++) {
		content[n++] = 0xFF;
		for (int k = 0; k < 8; k++) {
			unsigned wp = (207u + (unsigned)(run * 8 + k) * 17u) & 0xFFFu;
			unsigned ref = ((wp - 1u) & 0xFFFu) << 4 | 0xFu;
			content[n++] = (uint8_t)(ref >> 8);
			content[n++] = (uint8_t)ref;
		}
	}
	GByteArray *b = blob(100, "LZFu", content, n);
	decompress_fails(b->data, b->len, MV_ERR_INVALID, "past RAWSIZE");
	g_byte_array_unref(b);
	b = blob(MV_RTF_MAX_OUTPUT, "LZFu", content, n);
	decompress_fails(b->data, b->len, MV_ERR_INVALID, "truncated");
	g_byte_array_unref(b);
	/* A reference to the write position itself is the end. */
	uint8_t end[] = { 0x01, 0x0C, 0xF0 };
	b = blob(0, "LZFu", end, sizeof end);
	char *s = decompress_ok(b->data, b->len);
	assert_string_equal(s, "");
	g_free(s);
	g_byte_array_unref(b);
	/* A reference cut in half. */
	uint8_t half[] = { 0x01, 0x0C };
	b = blob(10, "LZFu", half, sizeof half);
	decompress_fails(b->data, b->len, MV_ERR_INVALID, "truncated inside a reference");
	g_byte_array_unref(b);
}

/* Real bodies from .msg files of the msgreader test folder (Apache-2.0;
 * /work/shared/corpus/outlook-msg): "A memo.msg" and the first embedded
 * message of "Many entities.msg" (\fromtext, Japanese in a \fcharset128
 * font of a \ansicpg1252 document). */
static const uint8_t memo_msg[] = {
	0xee, 0x00, 0x00, 0x00, 0x30, 0x01, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0x9a, 0xd0, 0xc2, 0xd4,
	0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x39, 0x33, 0x32, 0xbd, 0x00, 0xf5, 0x6e, 0x08,
	0x60, 0x0d, 0xe0, 0x03, 0x70, 0x0a, 0xb0, 0x74, 0x00, 0xf2, 0x81, 0x0b, 0x60, 0x6e, 0x67, 0x31,
	0x30, 0x33, 0x33, 0x0f, 0x66, 0xe4, 0x66, 0x65, 0x0f, 0xe0, 0x34, 0x31, 0x01, 0xf7, 0x02, 0xa4,
	0x03, 0xe3, 0x09, 0x02, 0x00, 0x63, 0x68, 0x0a, 0xc0, 0x73, 0x65, 0x74, 0x30, 0xe4, 0x20, 0x43,
	0x07, 0x40, 0x69, 0x62, 0x05, 0x10, 0x02, 0x83, 0x00, 0x50, 0x23, 0x04, 0x55, 0x12, 0x47, 0x31,
	0x32, 0x38, 0x05, 0xd0, 0x65, 0x69, 0x40, 0x72, 0x79, 0x6f, 0x20, 0x55, 0x49, 0x02, 0x80, 0x7d,
	0xd3, 0x0a, 0x80, 0x08, 0xc8, 0x20, 0x3b, 0x09, 0x6f, 0x30, 0x02, 0x80, 0x15, 0xd2, 0xbe, 0x2a,
	0x09, 0xb0, 0x09, 0xf0, 0x04, 0x90, 0x0f, 0x40, 0x05, 0xb1, 0x52, 0x0d, 0xe0, 0x06, 0x68, 0x09,
	0x80, 0x01, 0xd0, 0x20, 0x31, 0x35, 0x2e, 0x30, 0xb8, 0x2e, 0x35, 0x32, 0x10, 0x00, 0x02, 0x91,
	0x18, 0x30, 0x6d, 0x00, 0xc0, 0x50, 0x74, 0x68, 0x50, 0x72, 0x00, 0xb0, 0x77, 0x18, 0x90, 0x70,
	0x8c, 0x49, 0x6e, 0x01, 0x00, 0x02, 0x30, 0x31, 0x34, 0x34, 0x12, 0xd0, 0x48, 0x7d, 0x5c, 0x76,
	0x08, 0x90, 0x77, 0x6b, 0x0b, 0x80, 0x64, 0x62, 0x34, 0x0c, 0x60, 0x63, 0x31, 0x20, 0x0a, 0x84,
	0x0b, 0x30, 0x63, 0xc3, 0x13, 0xa2, 0x0b, 0xc3, 0x32, 0x20, 0x41, 0x20, 0x07, 0x80, 0x04, 0x60,
	0x7e, 0x2e, 0x13, 0x92, 0x0f, 0xa4, 0x10, 0xe0, 0x0a, 0xa2, 0x0a, 0x80, 0x15, 0xc1, 0x00, 0x01,
	0x1f, 0xf0,
};

static const uint8_t fromtext_msg[] = {
	0x47, 0x01, 0x00, 0x00, 0x56, 0x02, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xef, 0x6c, 0x08, 0x5b,
	0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x22, 0x32, 0x03, 0x43, 0x74,
	0x65, 0x78, 0x05, 0x42, 0x62, 0x69, 0xfe, 0x64, 0x04, 0x00, 0x03, 0x30, 0x01, 0x03, 0x01, 0xf7,
	0x0a, 0x80, 0x02, 0xa4, 0x03, 0xe3, 0x09, 0x02, 0x00, 0x63, 0x68, 0x0a, 0xc0, 0x73, 0x65, 0x74,
	0x30, 0xfe, 0x20, 0x07, 0x13, 0x02, 0x80, 0x10, 0x73, 0x00, 0x50, 0x04, 0x56, 0x08, 0x55, 0x07,
	0xb2, 0xef, 0x12, 0x45, 0x0e, 0x51, 0x03, 0x01, 0x11, 0x47, 0x32, 0x06, 0x00, 0x06, 0xc3, 0x12,
	0x45, 0xce, 0x33, 0x04, 0x46, 0x11, 0x49, 0x13, 0x5f, 0x66, 0x34, 0x10, 0xde, 0x0e, 0x20, 0x82,
	0x38, 0x05, 0xd2, 0x50, 0x47, 0x6f, 0x74, 0x68, 0x0d, 0xe0, 0x6f, 0x02, 0x80, 0x12, 0x53, 0x08,
	0xef, 0x09, 0xf7, 0x3b, 0x1b, 0x9f, 0x0e, 0x30, 0x35, 0x3b, 0x12, 0x42, 0x0c, 0x60, 0x63, 0x00,
	0x50, 0x0b, 0x09, 0x01, 0x64, 0x33, 0x36, 0x87, 0x11, 0xd0, 0x0b, 0xa6, 0x03, 0x30, 0x68, 0x74,
	0x6d, 0x6c, 0x00, 0x21, 0x4f, 0x18, 0x85, 0x0c, 0x01, 0x20, 0x85, 0x1f, 0xc1, 0x27, 0x39, 0x01,
	0x40, 0x27, 0xa6, 0x35, 0x00, 0xe0, 0x22, 0x33, 0x62, 0x66, 0x22, 0x20, 0x38, 0x0e, 0x50, 0xb8,
	0x27, 0x61, 0x61, 0x23, 0x21, 0x0b, 0x30, 0x22, 0xf0, 0x37, 0x22, 0x21, 0xca, 0x36, 0x22, 0x20,
	0x64, 0x23, 0x15, 0x62, 0x35, 0x24, 0xa5, 0x16, 0x50, 0xed, 0x23, 0x33, 0x65, 0x23, 0x92, 0x23,
	0x51, 0x64, 0x22, 0x91, 0x24, 0xcb, 0x23, 0xd1, 0x52, 0x38, 0x00, 0x50, 0x27, 0x34, 0x23, 0x51,
	0x38, 0x23, 0x91, 0x36, 0xfd, 0x23, 0xd1, 0x39, 0x18, 0xb0, 0x27, 0xf0, 0x24, 0x51, 0x23, 0x42,
	0x01, 0x31, 0x23, 0x34, 0xfa, 0x38, 0x28, 0x24, 0x65, 0x2a, 0x12, 0x23, 0x52, 0x28, 0x12, 0x2a,
	0xd9, 0x27, 0x83, 0xbf, 0x24, 0xd9, 0x26, 0x87, 0x24, 0x11, 0x27, 0xc5, 0x20, 0x85, 0x02, 0xb1,
	0x7d, 0x21, 0x89, 0x0f, 0x0a, 0xb1, 0x0a, 0x84, 0x0a, 0x80, 0x20, 0x80, 0x74, 0x70, 0x3a, 0x2f,
	0x22, 0x2f, 0x0e, 0x20, 0x37, 0x2e, 0x30, 0x30, 0xe1, 0x31, 0x3a, 0x00, 0x31, 0x33, 0x37, 0x31,
	0x38, 0x2f, 0x57, 0x46, 0x0a, 0x2f, 0x2f, 0x84, 0x7d, 0x32, 0x50,
};

static void test_real_samples(void **state)
{
	size_t n = 0;
	char *rtf = decompress_len(memo_msg, sizeof memo_msg, &n);
	assert_int_equal(n, 304); /* RAWSIZE, the last byte a NUL */
	assert_int_equal(strlen(rtf), 303);
	assert_true(g_str_has_prefix(rtf, "{\\rtf1\\ansi\\ansicpg932\\deff0"));
	char *text = text_of(rtf, 1000);
	assert_string_equal(text, "A memo.\n");
	g_free(text);
	g_free(rtf);

	rtf = decompress_len(fromtext_msg, sizeof fromtext_msg, &n);
	assert_int_equal(n, 598);
	assert_true(g_str_has_prefix(rtf, "{\\rtf1\\ansi\\ansicpg1252\\fromtext"));
	text = text_of(rtf, 1000);
	assert_string_equal(text, "\xe7\x94\xb3\xe8\xab\x8b\xe3\x81\x8c\xe5\xb7\xae\xe6\x88\xbb\xe3\x81\x97\xe3\x81\x95"
	                          "\xe3\x82\x8c\xe3\x81\xbe\xe3\x81\x97\xe3\x81\x9f\xe3\x80\x82\xe7\xa2\xba\xe8\xaa\x8d"
	                          "\xe3\x82\x92\xe3\x81\x8a\xe9\xa1\x98\xe3\x81\x84\xe3\x81\x84\xe3\x81\x9f\xe3\x81\x97"
	                          "\xe3\x81\xbe\xe3\x81\x99\xe3\x80\x82\n\nhttp://127.0.0.1:13718/WF/\n");
	g_free(text);
	GString *html = g_string_new(NULL);
	GError *error = NULL;
	assert_int_equal(mv_rtf_deencapsulate_html((const uint8_t *)rtf, strlen(rtf), html, &error), 0);
	assert_int_equal(html->len, 0);
	g_string_free(html, TRUE);
	g_free(rtf);
}

/* ---- MS-OXRTFEX --------------------------------------------------------------------- */

/* Written as Outlook writes it (MS-OXRTFEX section 4): HTML markup in
 * \htmltag groups, visible text between them, RTF-only formatting in
 * \htmlrtf spans, a rewritten \mhtmltag before the original tag. */
static const char encapsulated[] =
	"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\fbidis \\deff0{\\fonttbl\r\n"
	"{\\f0\\fswiss\\fcharset0 Arial;}\r\n"
	"{\\f1\\fmodern Courier New;}\r\n"
	"{\\f2\\fnil\\fcharset2 Symbol;}\r\n"
	"{\\f3\\fmodern\\fcharset0 Courier New;}}\r\n"
	"{\\colortbl\\red0\\green0\\blue0;\\red0\\green0\\blue255;}\r\n"
	"\\uc1\\pard\\plain\\deftab360 \\f0\\fs24 \r\n"
	"{\\*\\htmltag19 <html>}\r\n"
	"{\\*\\htmltag34 <head>}\r\n"
	"{\\*\\htmltag1 <meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">}\r\n"
	"{\\*\\htmltag241 <style>\\par p \\{margin:0\\}\\par </style>}\r\n"
	"{\\*\\htmltag41 </head>}\r\n"
	"{\\*\\htmltag50 <body>}\\htmlrtf \\lang1033 \\htmlrtf0 \r\n"
	"{\\*\\htmltag64 <p>}\\htmlrtf {\\htmlrtf0 Caf\\'e9 costs \\u8364?5 \\'96 \\lquote ok\\rquote \r\n"
	"{\\*\\htmltag84 <a href=\"cid:image001.png@01D0\">}\\htmlrtf {\\field{\\*\\fldinst{HYPERLINK "
	"\"cid:image001.png@01D0\"}}{\\fldrslt\\cf1\\ul \\htmlrtf0 link\\htmlrtf }}\\htmlrtf0 \r\n"
	"{\\*\\htmltag92 </a>}\r\n"
	"{\\*\\mhtmltag84 <img src=\"\\htmlbase image001.png\">}"
	"{\\*\\htmltag84 <img src=\"cid:image001.png@01D0\">}\r\n"
	"\\htmlrtf\\par}\\htmlrtf0\r\n"
	"{\\*\\htmltag72 </p>}\r\n"
	"{\\*\\htmltag0 \\par }\r\n"
	"{\\*\\htmltag4 &lt;}\\htmlrtf <\\htmlrtf0 tag{\\*\\htmltag4 &gt;}\\htmlrtf >\\htmlrtf0 \\{x\\}\\tab y\r\n"
	"{\\*\\htmltag58 </body>}\r\n"
	"{\\*\\htmltag27 </html>}}\r\n";

static void test_deencapsulate(void **state)
{
	GString *html = g_string_new("before:");
	GError *error = NULL;
	assert_int_equal(mv_rtf_deencapsulate_html((const uint8_t *)encapsulated, strlen(encapsulated), html, &error),
	                 1);
	assert_null(error);
	assert_string_equal(html->str,
	                    "before:<html><head>"
	                    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">"
	                    "<style>\r\np {margin:0}\r\n</style></head><body>"
	                    "<p>Caf\xc3\xa9 costs \xe2\x82\xac"
	                    "5 \xe2\x80\x93 \xe2\x80\x98ok\xe2\x80\x99"
	                    "<a href=\"cid:image001.png@01D0\">link</a><img src=\"cid:image001.png@01D0\"></p>\r\n"
	                    "&lt;tag&gt;{x}\ty</body></html>");
	g_string_free(html, TRUE);
}

static void test_deencapsulate_refusals(void **state)
{
	GString *html = g_string_new(NULL);
	GError *error = NULL;
	/* Not encapsulated: plain RTF, \fromhtml after the first text, in a
	 * nested group, or \fromtext. */
	const char *not_html[] = {
		"{\\rtf1\\ansi hello}",
		"{\\rtf1\\ansi hello \\fromhtml1 {\\*\\htmltag <p>}}",
		"{\\rtf1\\ansi{\\fromhtml1}{\\*\\htmltag <p>}}",
		"{\\rtf1\\ansi\\fromtext hi}",
		"\\fromhtml1 {\\rtf1{\\*\\htmltag <p>}}",
		"",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(not_html); i++) {
		const uint8_t *rtf = (const uint8_t *)not_html[i];
		assert_int_equal(mv_rtf_deencapsulate_html(rtf, strlen(not_html[i]), html, &error), 0);
		assert_null(error);
		assert_int_equal(html->len, 0);
	}
	/* Claims HTML and holds none. */
	const char *empty = "{\\rtf1\\ansi\\fromhtml1 hello}";
	assert_int_equal(mv_rtf_deencapsulate_html((const uint8_t *)empty, strlen(empty), html, &error), -1);
	assert_true(g_error_matches(error, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(error->message, "htmltag"));
	assert_int_equal(html->len, 0);
	g_clear_error(&error);
	/* The font table in the header does not end the search. */
	const char *late = "{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}\\fromhtml1 {\\*\\htmltag <b>}x}";
	assert_int_equal(mv_rtf_deencapsulate_html((const uint8_t *)late, strlen(late), html, &error), 1);
	assert_string_equal(html->str, "<b>x");
	g_string_free(html, TRUE);
}

/* The HTML is converted from \ansicpg: cp1251 bytes inside a tag, a
 * \fcharset font's bytes between tags, \uN with \uc2 fallbacks. */
static void test_deencapsulate_codepages(void **state)
{
	const char *rtf = "{\\rtf1\\ansi\\ansicpg1251\\fromhtml1 {\\fonttbl{\\f0 Arial;}{\\f1\\fcharset238 Arial CE;}}"
	                  "{\\*\\htmltag <p title=\"\\'cf\\'f0\">}\\'cf{\\f1 \\'9a}\\uc2\\u1046\\'c6\\'c6!}";
	GString *html = g_string_new(NULL);
	GError *error = NULL;
	assert_int_equal(mv_rtf_deencapsulate_html((const uint8_t *)rtf, strlen(rtf), html, &error), 1);
	assert_string_equal(html->str, "<p title=\"\xd0\x9f\xd1\x80\">\xd0\x9f\xc5\xa1\xd0\x96!");
	g_string_free(html, TRUE);
}

/* ---- RTF to text ------------------------------------------------------------------ */

static void test_text_basics(void **state)
{
	text_is("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Arial;}}{\\colortbl;\\red255\\green0\\blue0;}"
	        "{\\stylesheet{\\s0 Normal;}}{\\info{\\title Secret title}{\\author Me}}{\\*\\generator Riched20;}"
	        "\\pard\\f0\\fs20 Caf\\'e9 cr\\'e8me\\par Second\\tab line\\line third\\par}",
	        "Caf\xc3\xa9 cr\xc3\xa8me\nSecond\tline\nthird\n");
	/* Escapes, typographic words, the non-breaking space. */
	text_is("{\\rtf1 a\\{b\\}c\\\\d\\~e\\_f\\-g \\ldblquote q\\rdblquote \\emdash \\bullet}",
	        "a{b}c\\d\xc2\xa0" "e-fg \xe2\x80\x9cq\xe2\x80\x9d\xe2\x80\x94\xe2\x80\xa2");
	/* Tables: cells by tabs, rows by lines. */
	text_is("{\\rtf1\\trowd\\cellx100\\cellx200 a\\cell b\\cell\\row c\\cell d\\cell\\row}", "a\tb\t\nc\td\t\n");
	/* CR and LF in the RTF are not text; backslash-newline is \par. */
	text_is("{\\rtf1 one\r\ntwo\\\nthree}", "onetwo\nthree");
	/* Nothing after the document's group, nothing before it. */
	text_is("junk{\\rtf1 in}out{more}", "in");
	/* Pictures, objects and field instructions are not text; \bin data
	 * is skipped whatever bytes it holds. */
	text_is("{\\rtf1 a{\\pict\\wmetafile8\\picw10 0102ff}{\\pict\\bin6 }}{{\\x}b"
	        "{\\object{\\*\\objdata 0102}{\\result c}}"
	        "{\\field{\\*\\fldinst HYPERLINK \"http://x\"}{\\fldrslt d}}"
	        "{\\header e}{\\footer f}}",
	        "abcdef");
}

static void test_text_unicode(void **state)
{
	/* \uN and its \uc1 fallback. */
	text_is("{\\rtf1\\ansi\\ansicpg1252 price \\u8364? 5}", "price \xe2\x82\xac 5");
	/* \uc0: no fallback; \uc2 with two \'hh; \uc is per group. */
	text_is("{\\rtf1\\uc0\\u8364 x}", "\xe2\x82\xacx");
	text_is("{\\rtf1\\uc1{\\uc2\\u20320\\'c4\\'e3}\\u22909?}", "\xe4\xbd\xa0\xe5\xa5\xbd");
	/* Negative values are UTF-16 units; surrogate pairs join; a lone
	 * surrogate becomes U+FFFD. */
	text_is("{\\rtf1\\u-3913?}", "\xef\x82\xb7");
	text_is("{\\rtf1\\u-10179?\\u-8704?}", "\xf0\x9f\x98\x80");
	text_is("{\\rtf1\\u-10179?x}", "\xef\xbf\xbdx");
	text_is("{\\rtf1\\u-8704?}", "\xef\xbf\xbd");
	/* A group ends the fallback count. */
	text_is("{\\rtf1\\uc3{\\u8364}ab}", "\xe2\x82\xac" "ab");
}

static void test_text_codepages(void **state)
{
	text_is("{\\rtf1\\ansi\\ansicpg1251 \\'cf\\'f0\\'e8\\'e2\\'e5\\'f2}",
	        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	/* A font's \fcharset overrides \ansicpg for its text; \fcharset0 is
	 * the document's code page. */
	text_is("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fcharset0 Arial;}{\\f1\\fcharset204 Arial Cyr;}"
	        "{\\f2\\fcharset128 MS Gothic;}}\\'e9{\\f1 \\'cf}\\f2 \\'82\\'a0\\f0 \\'e9}",
	        "\xc3\xa9\xd0\x9f\xe3\x81\x82\xc3\xa9");
	/* \deffN applies from the start of the text. */
	text_is("{\\rtf1\\ansi\\deff1{\\fonttbl{\\f0 A;}{\\f1\\fcharset161 Greek;}}\\'e1}", "\xce\xb1");
	/* A double-byte character written half escaped, half raw. */
	text_is("{\\rtf1\\ansi\\ansicpg932 \\'82\\'a0\\'83A}", "\xe3\x81\x82\xe3\x82\xa2");
}

/* Groups nested deeper than MV_RTF_MAX_DEPTH are skipped, the text around
 * them is kept, and nothing recurses. */
static void test_text_deep_nesting(void **state)
{
	GString *rtf = g_string_new("{\\rtf1 a");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(rtf, '{');
	g_string_append(rtf, "deep");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(rtf, '}');
	g_string_append(rtf, " b}");
	text_is(rtf->str, "a b");
	g_string_free(rtf, TRUE);
	/* The document group is depth 1: text at MV_RTF_MAX_DEPTH is read, one
	 * level deeper it is not. */
	for (int extra = 0; extra <= 1; extra++) {
		rtf = g_string_new("{\\rtf1 ");
		for (int i = 1; i < MV_RTF_MAX_DEPTH + extra; i++)
			g_string_append_c(rtf, '{');
		g_string_append(rtf, "x");
		for (int i = 1; i < MV_RTF_MAX_DEPTH + extra; i++)
			g_string_append_c(rtf, '}');
		g_string_append(rtf, "y}");
		text_is(rtf->str, extra ? "y" : "xy");
		g_string_free(rtf, TRUE);
	}
}

static void test_text_fromtext(void **state)
{
	/* \htmlrtf spans of an encapsulated plain text are not its text. */
	text_is("{\\rtf1\\ansi\\ansicpg1252\\fromtext \\fbidis \\deff0{\\fonttbl{\\f0\\fswiss Arial;}}"
	        "\\uc1\\pard\\plain\\deftab360 \\f0\\fs20 Hello\\htmlrtf  RTF only\\htmlrtf0 \\par world\\par}",
	        "Hello\nworld\n");
	/* Without \fromtext an \htmlrtf is meaningless and the text stays. */
	text_is("{\\rtf1 a\\htmlrtf b\\htmlrtf0 c}", "abc");
}

static void test_text_fromhtml(void **state)
{
	char *text = text_of(encapsulated, 1 << 20);
	assert_non_null(strstr(text, "Caf\xc3\xa9 costs \xe2\x82\xac"));
	assert_non_null(strstr(text, "link"));
	assert_null(strstr(text, "<p>"));
	assert_null(strstr(text, "margin"));
	assert_null(strchr(text, '\r'));
	g_free(text);
	/* Control characters from character references do not reach the text. */
	text_is("{\\rtf1\\fromhtml1 {\\*\\htmltag <p>}a&#1;b&#x7f;c\\par d}", "\na b c\nd");
	/* \fromhtml1 without HTML: read as RTF. */
	text_is("{\\rtf1\\ansi\\fromhtml1 plain words}", "plain words");
}

static void test_text_limit(void **state)
{
	const char *rtf = "{\\rtf1 \\u233?\\u233?\\u233? \\'e9\\'e9\\'e9}";
	char *t = text_of(rtf, 3);
	assert_string_equal(t, "\xc3\xa9");
	g_free(t);
	t = text_of(rtf, 7);
	assert_string_equal(t, "\xc3\xa9\xc3\xa9\xc3\xa9 ");
	g_free(t);
	t = text_of(rtf, 9);
	assert_string_equal(t, "\xc3\xa9\xc3\xa9\xc3\xa9 \xc3\xa9");
	g_free(t);
	/* The limit counts what is appended, not what out held before. */
	GString *out = g_string_new("0123456789");
	mv_rtf_to_text((const uint8_t *)rtf, strlen(rtf), out, 4);
	assert_string_equal(out->str, "0123456789\xc3\xa9\xc3\xa9");
	g_string_free(out, TRUE);
	/* HTML-encapsulated text is cut too. */
	t = text_of(encapsulated, 10);
	assert_true(strlen(t) <= 10);
	g_free(t);
	t = text_of(rtf, 0);
	assert_string_equal(t, "");
	g_free(t);
	/* Every limit gives a prefix of the whole text, also when the limit
	 * falls where the code page changes (found by fuzz_rtf: a byte of the
	 * next code page was written after the limit was reached). */
	const char *mixed = "{\\rtf1\\ansi\\ansicpg1252{\\fonttbl{\\f1\\fcharset204 C;}{\\f2\\fcharset134 G;}}"
	                    "\\'e9\\'e9{\\f1 \\'cf}{\\f2 \\'c4\\'e3}\\u8364?{\\f1 \\'f0}x\\par y}";
	char *whole = text_of(mixed, 1000);
	assert_string_equal(whole, "\xc3\xa9\xc3\xa9\xd0\x9f\xe4\xbd\xa0\xe2\x82\xac\xd1\x80x\ny");
	for (size_t limit = 0; limit <= strlen(whole) + 1; limit++) {
		t = text_of(mixed, limit);
		assert_true(strlen(t) <= limit && strncmp(t, whole, strlen(t)) == 0);
		/* Only a character that does not fit is left out. */
		assert_true(strlen(t) + 3 > MIN(limit, strlen(whole)));
		g_free(t);
	}
	g_free(whole);
}

/* Malformed RTF gives what text could be read, and never more than the
 * input holds. */
static void test_text_malformed(void **state)
{
	text_is("{\\rtf1 unclosed {group", "unclosed group");
	text_is("{\\rtf1 a}}}}b", "a");
	text_is("{\\rtf1 bad hex \\'4", "bad hex 4");
	text_is("{\\rtf1 \\'zz ok}", "zz ok");
	text_is("{\\rtf1 end\\", "end");
	text_is("{\\rtf1 \\u", "");
	text_is("{\\rtf1 \\u99999999999999999999? big\\uc99999999999}", "\xef\xbf\xbd big");
	text_is("{\\rtf1 \\bin99999999 data}", "");
	text_is("{\\rtf1 \\abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz x}", "x");
	text_is("{\\rtf1 nul\\'00 ctl\\'01\\u1?}", "nul ctl  ");
	text_is("{\\*\\rtf1 skipped}", "");
	text_is("", "");
	/* Control characters never reach the text. */
	char *t = text_of("{\\rtf1 a\x01" "b\x7f" "c}", 100);
	assert_string_equal(t, "a b c");
	g_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_examples),
		cmocka_unit_test(test_uncompressed),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_crc_mismatch),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_looping_references),
		cmocka_unit_test(test_real_samples),
		cmocka_unit_test(test_deencapsulate),
		cmocka_unit_test(test_deencapsulate_refusals),
		cmocka_unit_test(test_deencapsulate_codepages),
		cmocka_unit_test(test_text_basics),
		cmocka_unit_test(test_text_unicode),
		cmocka_unit_test(test_text_codepages),
		cmocka_unit_test(test_text_deep_nesting),
		cmocka_unit_test(test_text_fromtext),
		cmocka_unit_test(test_text_fromhtml),
		cmocka_unit_test(test_text_limit),
		cmocka_unit_test(test_text_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
