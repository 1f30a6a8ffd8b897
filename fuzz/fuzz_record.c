/* fuzz_record: libFuzzer target for the record format of content/
 * (store/record.c), what RecoverStore and VerifyStore decode from every
 * segment they read.
 *
 * Every input is used three ways, because random bytes alone never get
 * past the AEAD tag:
 *  - as a record read from disk: mv_record_parse_header and
 *    mv_record_decode under a fixed key (a seed that is a real record
 *    made with that key decodes; its mutations exercise the header checks
 *    and the authentication failure);
 *  - sealed: the first 40 bytes become a header that parses (magic,
 *    version, a known type, cipher_len fitting; the nonce and plain_len
 *    the input's, plain_len kept under 1 MiB so that an input cannot ask
 *    for the format's 600 MiB) and the rest is encrypted under the key as
 *    if it were the zstd stream, so that the decompression and the
 *    metadata length checks behind the tag see arbitrary bytes;
 *  - a round trip: a type, a metadata and a body taken from the input are
 *    encoded and decoded; what comes back must be exactly what went in,
 *    and the record must be refused once any one bit of it is flipped, a
 *    byte cut off or added, or the key changed.  Compressed with a zstd
 *    dictionary (fuzz_dict.h) when the level selector's top bit is set:
 *    then it decodes only through a table that has the dictionary, and
 *    without it fails naming the dictionary's id.
 * Any decode that succeeds must describe a payload that adds up: 4 +
 * metadata + body = plain_len, the metadata length being the payload's
 * first four bytes. */
#include "store/record.h"
#include "fuzz_dict.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

/* The key the seed records of fuzz/corpus/fuzz_record were made with. */
static const uint8_t fuzz_key[MV_KEY_BYTES] = "mailvault fuzz key: not secret.";

#define SEALED_PLAIN_MASK 0xfffffu   /* plain_len under 1 MiB in the sealed mode */

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_record: %s\n", what);
	abort();
}

/* Decodes rec; on success checks that the parts add up and returns 1 with
 * the parts, on failure checks that an error came with it and returns 0. */
static int decode_checked(const uint8_t key[MV_KEY_BYTES], const uint8_t *rec, size_t len, mv_record_header *h,
                          GByteArray **plain, const uint8_t **meta, size_t *ml, const uint8_t **body, size_t *bl)
{
	GError *err = NULL;
	*plain = NULL;
	if (mv_record_decode(key, rec, len, h, plain, meta, ml, body, bl, &err) < 0) {
		if (!err || err->domain != MV_ERROR)
			fail("a refused record came without an MV_ERROR");
		g_error_free(err);
		if (*plain)
			fail("a refused record handed back a payload");
		return 0;
	}
	if (err || !*plain)
		fail("a decoded record came with an error or without its payload");
	mv_record_header again;
	if (mv_record_parse_header(rec, len, &again, NULL) < 0 || again.version != h->version || again.type != h->type ||
	    again.cipher_len != h->cipher_len || again.plain_len != h->plain_len ||
	    memcmp(again.nonce, h->nonce, sizeof again.nonce) != 0)
		fail("decode accepted a header that parse_header refuses or reads otherwise");
	if (len != MV_RECORD_HEADER_BYTES + (size_t)h->cipher_len)
		fail("decode accepted a record whose length is not the header's");
	GByteArray *p = *plain;
	if (p->len != h->plain_len || (size_t)h->plain_len != 4 + *ml + *bl)
		fail("decoded parts do not add up to plain_len");
	if (get_u32(p->data) != *ml || *meta != p->data + 4 || *body != p->data + 4 + *ml)
		fail("metadata length or part pointers differ from the payload");
	return 1;
}

/* The input as a record read from a segment. */
static void as_record(const uint8_t *d, size_t n)
{
	mv_record_header h;
	GError *err = NULL;
	if (mv_record_parse_header(d, n, &h, &err) == 0) {
		if (err)
			fail("parse_header succeeded with an error set");
		if (h.version != MV_RECORD_VERSION || h.type < MV_RECORD_MESSAGE || h.type > MV_RECORD_TYPE_MAX ||
		    h.cipher_len > MV_RECORD_MAX_PAYLOAD || h.plain_len < 4 || h.plain_len > MV_MAX_RECORD_PLAIN ||
		    memcmp(d, MV_RECORD_MAGIC, 4) != 0 || d[6] || d[7])
			fail("parse_header accepted a header outside the format");
	} else {
		if (!err)
			fail("parse_header refused without an error");
		g_error_free(err);
	}
	GByteArray *plain;
	const uint8_t *meta, *body;
	size_t ml, bl;
	if (decode_checked(fuzz_key, d, n, &h, &plain, &meta, &ml, &body, &bl))
		g_byte_array_unref(plain);
}

/* The input's tail sealed under the key behind a header made from its
 * first 40 bytes: the zstd stream and the payload layout are the input's. */
static void as_sealed(const uint8_t *d, size_t n)
{
	if (n < MV_RECORD_HEADER_BYTES)
		return;
	size_t packed_len = n - MV_RECORD_HEADER_BYTES;
	size_t rec_len = n + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *rec = g_malloc(rec_len);
	memcpy(rec, d, MV_RECORD_HEADER_BYTES);
	memcpy(rec, MV_RECORD_MAGIC, 4);
	rec[4] = MV_RECORD_VERSION;
	rec[5] = (uint8_t)(MV_RECORD_MESSAGE + d[5] % MV_RECORD_TYPE_MAX);
	rec[6] = rec[7] = 0;
	put_u32(rec + 8, (uint32_t)(packed_len + crypto_aead_xchacha20poly1305_ietf_ABYTES));
	put_u32(rec + 12, get_u32(d + 12) & SEALED_PLAIN_MASK);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(rec + MV_RECORD_HEADER_BYTES, &clen, d + MV_RECORD_HEADER_BYTES,
	                                           packed_len, rec, MV_RECORD_HEADER_BYTES, NULL, rec + 16, fuzz_key);
	if (clen + MV_RECORD_HEADER_BYTES != rec_len)
		fail("sealing produced an unexpected length");
	mv_record_header h;
	GByteArray *plain;
	const uint8_t *meta, *body;
	size_t ml, bl;
	if (decode_checked(fuzz_key, rec, rec_len, &h, &plain, &meta, &ml, &body, &bl)) {
		if (h.type != rec[5])
			fail("sealed record decoded with another type");
		g_byte_array_unref(plain);
	}
	g_free(rec);
}

static void expect_refused(const uint8_t key[MV_KEY_BYTES], const uint8_t *rec, size_t len, const char *what)
{
	mv_record_header h;
	GByteArray *plain;
	const uint8_t *meta, *body;
	size_t ml, bl;
	if (decode_checked(key, rec, len, &h, &plain, &meta, &ml, &body, &bl)) {
		g_byte_array_unref(plain);
		fail(what);
	}
}

/* A record compressed with the fuzz dictionary: through a table that has
 * it, the same parts; without one, refused with the dictionary's id. */
static void dictionary_decode(const GByteArray *rec, mv_record_type type, const uint8_t *meta_in, size_t ml,
                              const uint8_t *body_in, size_t bl)
{
	GHashTable *table = mv_dict_table_new();
	g_hash_table_insert(table, GUINT_TO_POINTER(FUZZ_DICT_ID), mv_dict_ref(fuzz_dict));
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *meta, *body;
	size_t gml, gbl;
	unsigned missing = 1;
	GError *err = NULL;
	if (mv_record_decode_dict(fuzz_key, mv_dict_table_lookup, table, rec->data, rec->len, &h, &plain, &meta, &gml,
	                          &body, &gbl, &missing, &err) < 0 || missing != 0)
		fail("a record compressed with a dictionary does not decode with it");
	if (h.type != type || gml != ml || gbl != bl || (ml && memcmp(meta, meta_in, ml) != 0) ||
	    (bl && memcmp(body, body_in, bl) != 0) || h.plain_len != 4 + ml + bl)
		fail("the round trip through a dictionary changed the record");
	g_byte_array_unref(plain);
	g_hash_table_remove_all(table);
	plain = NULL;
	if (mv_record_decode_dict(fuzz_key, mv_dict_table_lookup, table, rec->data, rec->len, &h, &plain, &meta, &gml,
	                          &body, &gbl, &missing, &err) == 0 || missing != FUZZ_DICT_ID ||
	    !g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND))
		fail("a record compressed with a dictionary decoded without it, or did not name it");
	g_clear_error(&err);
	g_hash_table_destroy(table);
}

/* Input: type selector, zstd level selector, metadata length (u16 LE),
 * then the metadata and the body. */
static void round_trip(const uint8_t *d, size_t n)
{
	if (n < 4)
		return;
	static const int levels[] = { -1, 1, 3 };
	mv_record_type type = (mv_record_type)(MV_RECORD_MESSAGE + d[0] % MV_RECORD_TYPE_MAX);
	int level = levels[d[1] % G_N_ELEMENTS(levels)];
	size_t rest = n - 4;
	size_t ml = ((size_t)d[2] | (size_t)d[3] << 8) % (rest + 1);
	const uint8_t *meta_in = d + 4, *body_in = d + 4 + ml;
	size_t bl = rest - ml;

	bool with_dict = d[1] & 0x80;
	GByteArray *rec = g_byte_array_new();
	GError *err = NULL;
	if (mv_record_encode_dict(fuzz_key, type, meta_in, ml, body_in, bl, level,
	                          with_dict ? mv_dict_cdict(fuzz_dict, 1) : NULL, rec, &err) < 0) {
		fprintf(stderr, "encode: %s\n", err ? err->message : "(no error)");
		fail("a record within the limits did not encode");
	}
	mv_record_header h;
	if (mv_record_parse_header(rec->data, rec->len, &h, NULL) < 0 || h.type != type ||
	    h.version != MV_RECORD_VERSION || h.plain_len != 4 + ml + bl ||
	    (size_t)h.cipher_len + MV_RECORD_HEADER_BYTES != rec->len)
		fail("the encoded header does not describe the record");

	GByteArray *plain;
	const uint8_t *meta, *body;
	size_t gml, gbl;
	if (with_dict)
		dictionary_decode(rec, type, meta_in, ml, body_in, bl);
	else if (!decode_checked(fuzz_key, rec->data, rec->len, &h, &plain, &meta, &gml, &body, &gbl))
		fail("an encoded record does not decode");
	if (with_dict) {
		/* Nothing more to check of the frame than dictionary_decode did;
		 * the rest (flipped bits, wrong key) fails before the frame. */
		g_byte_array_unref(rec);
		return;
	}
	if (h.type != type || gml != ml || gbl != bl || (ml && memcmp(meta, meta_in, ml) != 0) ||
	    (bl && memcmp(body, body_in, bl) != 0))
		fail("the round trip changed the record");
	g_byte_array_unref(plain);

	/* One flipped bit anywhere, chosen from the input. */
	uint32_t pick = 0;
	for (size_t i = 0; i < n; i++)
		pick = pick * 31u + d[i];
	size_t bit = pick % ((size_t)rec->len * 8);
	rec->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	expect_refused(fuzz_key, rec->data, rec->len, "a record with a flipped bit decoded");
	rec->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));

	expect_refused(fuzz_key, rec->data, rec->len - 1, "a record one byte short decoded");
	g_byte_array_append(rec, (const guint8 *)"", 1);
	expect_refused(fuzz_key, rec->data, rec->len, "a record with a byte added decoded");
	g_byte_array_set_size(rec, rec->len - 1);

	uint8_t other[MV_KEY_BYTES];
	memcpy(other, fuzz_key, sizeof other);
	other[pick % MV_KEY_BYTES] ^= 1;
	expect_refused(other, rec->data, rec->len, "a record decoded under another key");
	g_byte_array_unref(rec);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		fail("sodium_init");
	fuzz_dict_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	as_record(d, n);
	as_sealed(d, n);
	round_trip(d, n);
	return 0;
}
