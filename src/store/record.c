/* record: the unit of content/ — what a segment file is a sequence of.
 *
 *   header (40 bytes, authenticated as associated data, not encrypted):
 *     magic "MVR1" | version u8 | type u8 | reserved u16 = 0 |
 *     cipher_len u32 LE | plain_len u32 LE | nonce[24]
 *   ciphertext (cipher_len bytes) = XChaCha20-Poly1305(zstd(payload))
 *   payload = meta_len u32 LE | meta (JSON) | body (raw message bytes)
 *
 * The header is authenticated, so a flipped type or length is caught by the
 * tag, while a reader can still walk a segment record by record without the
 * key (to cut a torn tail).  plain_len bounds decompression before any
 * allocation.
 *
 * Since format 4 a frame may be compressed with one of the store's zstd
 * dictionaries (dictionary.c); the frame header names the dictionary's
 * id, so the record layout is unchanged and the decoder asks its caller
 * for the dictionary of that id. */
#include "store/record.h"

#include <sodium.h>
#include <string.h>
#include <zstd.h>

#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

/* One compression and one decompression context per thread: creating them
 * per record costs more than compressing a typical message. */
static void free_cctx(gpointer c) { ZSTD_freeCCtx(c); }
static void free_dctx(gpointer d) { ZSTD_freeDCtx(d); }
static GPrivate cctx_key = G_PRIVATE_INIT(free_cctx);
static GPrivate dctx_key = G_PRIVATE_INIT(free_dctx);

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c = g_private_get(&cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		g_private_set(&cctx_key, c);
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d = g_private_get(&dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		g_private_set(&dctx_key, d);
	}
	return d;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_header(uint8_t *h, const mv_record_header *hdr)
{
	memcpy(h, MV_RECORD_MAGIC, 4);
	h[4] = hdr->version;
	h[5] = hdr->type;
	h[6] = 0;
	h[7] = 0;
	put_u32(h + 8, hdr->cipher_len);
	put_u32(h + 12, hdr->plain_len);
	memcpy(h + 16, hdr->nonce, 24);
}

int mv_record_encode(const uint8_t key[MV_KEY_BYTES], mv_record_type type,
                     const uint8_t *meta, size_t meta_len,
                     const uint8_t *body, size_t body_len,
                     int zstd_level, GByteArray *out, GError **error)
{
	return mv_record_encode_dict(key, type, meta, meta_len, body, body_len, zstd_level, NULL, out, error);
}

static size_t compress_payload(ZSTD_CCtx *cctx, uint8_t *dst, size_t cap, const uint8_t *src, size_t len, int level,
                               const ZSTD_CDict *cdict)
{
	if (!cctx)
		return cdict ? (size_t)-1 : ZSTD_compress(dst, cap, src, len, level);
	return cdict ? ZSTD_compress_usingCDict(cctx, dst, cap, src, len, cdict) :
	               ZSTD_compressCCtx(cctx, dst, cap, src, len, level);
}

int mv_record_encode_dict(const uint8_t key[MV_KEY_BYTES], mv_record_type type,
                          const uint8_t *meta, size_t meta_len,
                          const uint8_t *body, size_t body_len,
                          int zstd_level, const ZSTD_CDict *cdict, GByteArray *out, GError **error)
{
	size_t plain_len = 4 + meta_len + body_len;
	if (meta_len > UINT32_MAX || plain_len > MV_MAX_RECORD_PLAIN || plain_len < meta_len) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "record of %zu bytes exceeds the limit", plain_len);
		return -1;
	}
	uint8_t *plain = g_malloc(plain_len);
	put_u32(plain, (uint32_t)meta_len);
	if (meta_len)
		memcpy(plain + 4, meta, meta_len);
	if (body_len)
		memcpy(plain + 4 + meta_len, body, body_len);

	size_t bound = ZSTD_compressBound(plain_len);
	uint8_t *packed = g_malloc(bound);
	ZSTD_CCtx *cctx = thread_cctx();
	size_t packed_len = compress_payload(cctx, packed, bound, plain, plain_len, zstd_level, cdict);
	g_free(plain);
	if (ZSTD_isError(packed_len)) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "zstd: %s", cctx ? ZSTD_getErrorName(packed_len) : "out of memory");
		g_free(packed);
		return -1;
	}

	mv_record_header hdr = {
		.version = MV_RECORD_VERSION,
		.type = (uint8_t)type,
		.cipher_len = (uint32_t)(packed_len + ABYTES),
		.plain_len = (uint32_t)plain_len,
	};
	randombytes_buf(hdr.nonce, sizeof hdr.nonce);

	guint start = out->len;
	g_byte_array_set_size(out, start + MV_RECORD_HEADER_BYTES + hdr.cipher_len);
	uint8_t *h = out->data + start;
	write_header(h, &hdr);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(h + MV_RECORD_HEADER_BYTES, &clen,
	                                           packed, packed_len,
	                                           h, MV_RECORD_HEADER_BYTES, NULL, hdr.nonce, key);
	g_free(packed);
	return 0;
}

int mv_record_parse_header(const uint8_t *buf, size_t len, mv_record_header *h, GError **error)
{
	if (len < MV_RECORD_HEADER_BYTES) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record header truncated (%zu bytes)", len);
		return -1;
	}
	if (memcmp(buf, MV_RECORD_MAGIC, 4) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "bad record magic");
		return -1;
	}
	h->version = buf[4];
	h->type = buf[5];
	h->cipher_len = get_u32(buf + 8);
	h->plain_len = get_u32(buf + 12);
	memcpy(h->nonce, buf + 16, 24);
	if (h->version != MV_RECORD_VERSION) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "unsupported record format version %u", h->version);
		return -1;
	}
	if (h->type < MV_RECORD_MESSAGE || h->type > MV_RECORD_TYPE_MAX || buf[6] || buf[7]) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "bad record type %u", h->type);
		return -1;
	}
	if (h->cipher_len < ABYTES || h->cipher_len > MV_RECORD_MAX_PAYLOAD ||
	    h->plain_len < 4 || h->plain_len > MV_MAX_RECORD_PLAIN) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "bad record lengths");
		return -1;
	}
	return 0;
}

int mv_record_decode(const uint8_t key[MV_KEY_BYTES], const uint8_t *rec, size_t len,
                     mv_record_header *h_r, GByteArray **plain_r,
                     const uint8_t **meta_r, size_t *meta_len_r,
                     const uint8_t **body_r, size_t *body_len_r, GError **error)
{
	return mv_record_decode_dict(key, NULL, NULL, rec, len, h_r, plain_r, meta_r, meta_len_r, body_r, body_len_r,
	                             NULL, error);
}

/* The frame's dictionary, or NULL with the error set: a frame naming one
 * the caller does not have is no damage of this record's own bytes, and
 * says so. */
static const ZSTD_DDict *frame_dict(const uint8_t *packed, size_t len, mv_record_dict_fn dicts, void *opaque,
                                    unsigned *missing_r, GError **error)
{
	unsigned id = ZSTD_getDictID_fromFrame(packed, len);
	const ZSTD_DDict *d = id && dicts ? dicts(opaque, id) : NULL;
	if (!d && id) {
		if (missing_r)
			*missing_r = id;
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "record compressed with zstd dictionary %u, which the store "
		            "does not have (its dictionary record is missing or damaged)", id);
	}
	return d;
}

int mv_record_decode_dict(const uint8_t key[MV_KEY_BYTES], mv_record_dict_fn dicts, void *dicts_opaque,
                          const uint8_t *rec, size_t len, mv_record_header *h_r, GByteArray **plain_r,
                          const uint8_t **meta_r, size_t *meta_len_r,
                          const uint8_t **body_r, size_t *body_len_r, unsigned *missing_dict_r, GError **error)
{
	if (missing_dict_r)
		*missing_dict_r = 0;
	mv_record_header h;
	if (mv_record_parse_header(rec, len, &h, error) < 0)
		return -1;
	if (len != MV_RECORD_HEADER_BYTES + (size_t)h.cipher_len) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record length %zu does not match header", len);
		return -1;
	}
	size_t packed_cap = h.cipher_len - ABYTES;
	uint8_t *packed = g_malloc(packed_cap ? packed_cap : 1);
	unsigned long long packed_len = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(packed, &packed_len, NULL,
	                                               rec + MV_RECORD_HEADER_BYTES, h.cipher_len,
	                                               rec, MV_RECORD_HEADER_BYTES, h.nonce, key) != 0) {
		g_free(packed);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record authentication failed (damaged or wrong key)");
		return -1;
	}
	GError *dict_error = NULL;
	const ZSTD_DDict *ddict = frame_dict(packed, (size_t)packed_len, dicts, dicts_opaque, missing_dict_r, &dict_error);
	if (dict_error) {
		g_free(packed);
		g_propagate_error(error, dict_error);
		return -1;
	}
	GByteArray *plain = g_byte_array_sized_new(h.plain_len);
	g_byte_array_set_size(plain, h.plain_len);
	ZSTD_DCtx *dctx = thread_dctx();
	size_t got;
	if (!dctx)
		got = ddict ? (size_t)-1 : ZSTD_decompress(plain->data, h.plain_len, packed, (size_t)packed_len);
	else if (ddict)
		got = ZSTD_decompress_usingDDict(dctx, plain->data, h.plain_len, packed, (size_t)packed_len, ddict);
	else
		got = ZSTD_decompressDCtx(dctx, plain->data, h.plain_len, packed, (size_t)packed_len);
	g_free(packed);
	if (ZSTD_isError(got) || got != h.plain_len) {
		g_byte_array_unref(plain);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record decompression failed");
		return -1;
	}
	uint32_t meta_len = get_u32(plain->data);
	if ((size_t)meta_len > got - 4) {
		g_byte_array_unref(plain);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "record metadata length out of range");
		return -1;
	}
	*h_r = h;
	*plain_r = plain;
	*meta_r = plain->data + 4;
	*meta_len_r = meta_len;
	*body_r = plain->data + 4 + meta_len;
	*body_len_r = got - 4 - meta_len;
	return 0;
}
