/* rtf_compressed: PR_RTF_COMPRESSED unpacked (MS-OXRTFCP) — the "MELA"
 * form stored as is and the "LZFu" form decoded against its preloaded
 * dictionary, after its CRC is checked.  Apart from rtf.c because it is a
 * compression format, not RTF: its output is the RTF that rtf.c reads.
 *
 * Every byte here comes from a mail file, so nothing trusts it: the LZFu
 * decoder checks each read against the input and each write against RAWSIZE
 * (and allocates no more than the input could ever expand to). */
#include "mime/mapi.h"

#include <string.h>

/* ---- MS-OXRTFCP ------------------------------------------------------------------ */

#define LZFU_COMPRESSED   0x75465A4Cu /* "LZFu" */
#define LZFU_UNCOMPRESSED 0x414C454Du /* "MELA" */
#define LZFU_HEADER       16u
#define LZFU_DICT_SIZE    4096u
#define LZFU_DICT_MASK    (LZFU_DICT_SIZE - 1u)

/* The dictionary every compressed stream starts from (MS-OXRTFCP 2.1.2.1):
 * the usual head of an RTF document, so that it compresses to references. */
static const char lzfu_preload[] =
	"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
	"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
	"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";
#define LZFU_PRELOAD_LEN (sizeof(lzfu_preload) - 1)
G_STATIC_ASSERT(LZFU_PRELOAD_LEN == 207);

static uint32_t read_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The CRC of MS-OXRTFCP 3.1.3.2: the reflected CRC-32 table of zlib, but
 * started at 0 and without the final inversion, so zlib's crc32() does not
 * give it. */
static const uint32_t *crc_table(void)
{
	static uint32_t table[256];
	static gsize done;
	if (g_once_init_enter(&done)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		g_once_init_leave(&done, 1);
	}
	return table;
}

static uint32_t lzfu_crc(const uint8_t *p, size_t n)
{
	const uint32_t *table = crc_table();
	uint32_t crc = 0;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return crc;
}

/* "MELA": the RTF is stored as is.  Its CRC field is not checked: writers
 * leave it uninitialised.  Some writers count the 12 header bytes after
 * COMPSIZE in RAWSIZE as well (RAWSIZE == COMPSIZE); that is read as the
 * whole content rather than refused. */
static int mela_copy(const uint8_t *content, size_t clen, uint32_t compsize, uint32_t rawsize,
                     GByteArray **out_r, GError **error)
{
	size_t n = rawsize;
	if (n > clen) {
		if (rawsize != compsize) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID,
			            "compressed RTF: uncompressed data truncated: RAWSIZE %u, %zu bytes present",
			            rawsize, clen);
			return -1;
		}
		n = clen;
	}
	GByteArray *out = g_byte_array_sized_new((guint)n);
	g_byte_array_append(out, content, (guint)n);
	*out_r = out;
	return 0;
}

/* LZFu: runs of a control byte (flags LSB first: 0 a literal byte, 1 a
 * reference) and up to 8 tokens; a reference is 2 bytes big-endian, a 12-bit
 * dictionary offset and a 4-bit length (+2).  A reference to the current
 * write position ends the stream; bytes after it are padding. */
static int lzfu_decode(const uint8_t *content, size_t clen, uint32_t rawsize, GByteArray **out_r, GError **error)
{
	/* One input byte yields at most 8 output bytes (17 bytes of a control
	 * byte and 8 references make 8 * 17), so this bounds the allocation
	 * by the input as well as by RAWSIZE. */
	size_t cap = clen < rawsize / 8u ? clen * 8u : rawsize;
	GByteArray *out = g_byte_array_sized_new((guint)cap);
	g_byte_array_set_size(out, (guint)cap);
	uint8_t dict[LZFU_DICT_SIZE];
	memcpy(dict, lzfu_preload, LZFU_PRELOAD_LEN);
	memset(dict + LZFU_PRELOAD_LEN, 0, LZFU_DICT_SIZE - LZFU_PRELOAD_LEN);
	size_t wp = LZFU_PRELOAD_LEN, pos = 0, n_out = 0;
	bool ended = false;
	const char *fail = NULL;

	while (pos < clen && !ended && !fail) {
		unsigned control = content[pos++];
		for (unsigned bit = 0; bit < 8 && pos < clen && !ended && !fail; bit++) {
			if (!(control & (1u << bit))) {
				if (n_out >= cap) {
					fail = "output runs past RAWSIZE";
					break;
				}
				uint8_t b = content[pos++];
				dict[wp] = b;
				wp = (wp + 1) & LZFU_DICT_MASK;
				out->data[n_out++] = b;
				continue;
			}
			if (clen - pos < 2) {
				fail = "truncated inside a reference";
				break;
			}
			unsigned ref = (unsigned)content[pos] << 8 | content[pos + 1];
			pos += 2;
			size_t off = ref >> 4, n = (ref & 0xF) + 2;
			if (off == wp) {
				ended = true;
				break;
			}
			if (n > cap - n_out) {
				fail = "output runs past RAWSIZE";
				break;
			}
			/* Byte by byte: a reference may overlap the bytes it writes. */
			for (size_t i = 0; i < n; i++) {
				uint8_t b = dict[(off + i) & LZFU_DICT_MASK];
				dict[wp] = b;
				wp = (wp + 1) & LZFU_DICT_MASK;
				out->data[n_out++] = b;
			}
		}
	}
	/* Data that stops without the end reference is cut short, unless every
	 * byte RAWSIZE announced was already written. */
	if (!fail && !ended && n_out < rawsize)
		fail = "data ends before the end-of-stream reference (truncated)";
	if (fail) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "compressed RTF: %s (RAWSIZE %u, %zu bytes written, input offset %zu)", fail, rawsize,
		            n_out, pos);
		g_byte_array_unref(out);
		return -1;
	}
	/* A stream that ends before RAWSIZE is kept: its CRC held, so the
	 * header, not the data, is what is wrong. */
	g_byte_array_set_size(out, (guint)n_out);
	*out_r = out;
	return 0;
}

int mv_rtf_decompress(const uint8_t *data, size_t len, GByteArray **out_r, GError **error)
{
	*out_r = NULL;
	if (!data || len < LZFU_HEADER) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "compressed RTF: %zu bytes, shorter than the 16-byte header", data ? len : 0);
		return -1;
	}
	uint32_t compsize = read_le32(data), rawsize = read_le32(data + 4), comptype = read_le32(data + 8),
	         crc = read_le32(data + 12);
	if (comptype != LZFU_COMPRESSED && comptype != LZFU_UNCOMPRESSED) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "compressed RTF: unknown COMPTYPE 0x%08X", comptype);
		return -1;
	}
	/* COMPSIZE counts the content and the 12 header bytes after itself.
	 * libpff, MSGReader and Microsoft's own reader insist on the exact
	 * length, and every sample we have matches it: longer data is refused
	 * too, since padding belongs inside COMPSIZE. */
	if ((uint64_t)compsize + 4u != (uint64_t)len) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "compressed RTF: COMPSIZE %u does not match the data: %zu bytes given, %" G_GUINT64_FORMAT
		            " announced",
		            compsize, len, (guint64)compsize + 4u);
		return -1;
	}
	if (rawsize > MV_RTF_MAX_OUTPUT) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "compressed RTF: RAWSIZE %u exceeds the limit of %u bytes",
		            rawsize, MV_RTF_MAX_OUTPUT);
		return -1;
	}
	const uint8_t *content = data + LZFU_HEADER;
	size_t clen = len - LZFU_HEADER;
	if (comptype == LZFU_UNCOMPRESSED)
		return mela_copy(content, clen, compsize, rawsize, out_r, error);
	uint32_t actual = lzfu_crc(content, clen);
	if (actual != crc) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "compressed RTF: CRC mismatch: header says 0x%08X, data gives 0x%08X", crc, actual);
		return -1;
	}
	return lzfu_decode(content, clen, rawsize, out_r, error);
}
