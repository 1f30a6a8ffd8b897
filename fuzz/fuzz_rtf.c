/* libFuzzer target for mime/rtf: the input as PR_RTF_COMPRESSED, the same
 * bytes re-headed with a COMPSIZE and CRC that hold (so that the LZFu
 * decoder itself is reached: a random CRC never matches), and the input as
 * RTF; whatever decompresses is read as RTF too.  abort() on a refusal
 * without an error or with an error on success, output beyond RAWSIZE or
 * beyond what the input can expand to, text beyond its limit or not UTF-8,
 * control characters in text (but tab and newline), a shorter limit giving
 * other than a prefix of the longer one's text, HTML that is not UTF-8, or
 * a caller's string changed when there is no HTML. */
#include "mime/mapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_rtf: invariant failed: %s (line %d)\n", \
			        #cond, __LINE__);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* MS-OXRTFCP's CRC, bit by bit. */
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

static void check_text(const uint8_t *rtf, size_t len)
{
	GString *full = g_string_new("prefix");
	mv_rtf_to_text(rtf, len, full, 1u << 20);
	CHECK(strncmp(full->str, "prefix", 6) == 0);
	CHECK(full->len - 6 <= 1u << 20);
	CHECK(strlen(full->str) == full->len);
	CHECK(g_utf8_validate(full->str, (gssize)full->len, NULL));
	for (size_t i = 6; i < full->len; i++) {
		uint8_t c = (uint8_t)full->str[i];
		CHECK((c >= 0x20 && c != 0x7F) || c == '\t' || c == '\n');
	}
	size_t limit = len % 61 + 1;
	GString *cut = g_string_new(NULL);
	mv_rtf_to_text(rtf, len, cut, limit);
	CHECK(cut->len <= limit);
	CHECK(g_utf8_validate(cut->str, (gssize)cut->len, NULL));
	CHECK(cut->len <= full->len - 6 && memcmp(cut->str, full->str + 6, cut->len) == 0);
	g_string_free(cut, TRUE);
	g_string_free(full, TRUE);
}

static void check_html(const uint8_t *rtf, size_t len)
{
	GString *html = g_string_new("x");
	GError *error = NULL;
	int rc = mv_rtf_deencapsulate_html(rtf, len, html, &error);
	CHECK(rc >= -1 && rc <= 1);
	CHECK((rc == -1) == (error != NULL));
	if (rc != 1)
		CHECK(html->len == 1 && html->str[0] == 'x');
	CHECK(strlen(html->str) == html->len);
	CHECK(g_utf8_validate(html->str, (gssize)html->len, NULL));
	g_clear_error(&error);
	g_string_free(html, TRUE);
}

static void check_rtf(const uint8_t *rtf, size_t len)
{
	check_text(rtf, len);
	check_html(rtf, len);
}

static void check_decompress(const uint8_t *data, size_t size)
{
	GByteArray *out = NULL;
	GError *error = NULL;
	int rc = mv_rtf_decompress(data, size, &out, &error);
	CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		CHECK(out == NULL);
		CHECK(error != NULL);
		CHECK(g_str_has_prefix(error->message, "compressed RTF: "));
		CHECK(g_error_matches(error, MV_ERROR, MV_ERR_INVALID) ||
		      g_error_matches(error, MV_ERROR, MV_ERR_LIMIT));
		g_error_free(error);
		return;
	}
	CHECK(error == NULL && out != NULL && size >= 16);
	uint32_t rawsize = le32(data + 4), compsize = le32(data);
	CHECK((uint64_t)compsize + 4 == size);
	CHECK(rawsize <= MV_RTF_MAX_OUTPUT);
	if (memcmp(data + 8, "LZFu", 4) == 0) {
		CHECK(out->len <= rawsize);
		CHECK(out->len <= 8 * (size - 16));
	} else {
		CHECK(memcmp(data + 8, "MELA", 4) == 0);
		CHECK(out->len <= size - 16);
	}
	check_rtf(out->data, out->len);
	g_byte_array_unref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decompress(data, size);
	check_rtf(data, size);
	/* Re-headed: RAWSIZE from the first two bytes, the rest the content. */
	if (size >= 3) {
		size_t n = size - 2;
		uint8_t *b = g_malloc(n + 16);
		put_le32(b, (uint32_t)n + 12);
		put_le32(b + 4, ((uint32_t)data[0] | (uint32_t)data[1] << 8) * 16u);
		memcpy(b + 8, "LZFu", 4);
		put_le32(b + 12, crc(data + 2, n));
		memcpy(b + 16, data + 2, n);
		check_decompress(b, n + 16);
		g_free(b);
	}
	return 0;
}
