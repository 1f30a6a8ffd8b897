/* store/record: the record format of content/ — a fixed header and an
 * XChaCha20-Poly1305 ciphertext over zstd bytes — on its own so that the
 * unit test (tests/unit/test_record.c) and the store's files share it
 * without the rest of the store's API.  Internal to store/ otherwise. */
#ifndef MV_STORE_RECORD_H
#define MV_STORE_RECORD_H

#include "store/store.h"

#include <zstd.h>

/* ---- records ---------------------------------------------------------- */

#define MV_RECORD_MAGIC "MVR1"
#define MV_RECORD_VERSION 1          /* record layout; unchanged by store format 2 */
#define MV_RECORD_HEADER_BYTES 40
#define MV_RECORD_MAX_PAYLOAD (MV_MAX_RECORD_PLAIN + 64u * 1024u)
#define MV_MAX_RECORD_PLAIN (600u * 1024u * 1024u)

typedef enum {
	MV_RECORD_MESSAGE = 1,    /* metadata + raw bytes */
	MV_RECORD_REFERENCE = 2,  /* metadata only: known content in another folder */
	MV_RECORD_TOMBSTONE = 3,  /* a deletion, with reason: {"number","hash","reason","at"} */
	MV_RECORD_BATCH = 4,      /* {"first": N}: the next message/reference records are N, N+1, ... */
	MV_RECORD_FOLDER_MOVE = 5,/* {"from_archive","from","to_archive","to","at"} */
	MV_RECORD_RESTORE = 6,    /* {"numbers":[...],"at"}: their tombstones are revoked (RecoverStore --recoverDeletedMessages) */
	MV_RECORD_DICTIONARY = 7, /* {"id","at"} + a zstd dictionary (format 4): later records' frames may name its id */
} mv_record_type;
#define MV_RECORD_TYPE_MAX MV_RECORD_DICTIONARY

typedef struct mv_record_header {
	uint8_t version;
	uint8_t type;
	uint32_t cipher_len;      /* bytes after the header */
	uint32_t plain_len;       /* decompressed payload length */
	uint8_t nonce[24];
} mv_record_header;

/* Encodes one record (header + ciphertext) and appends it to out.
 * payload = meta_len(u32 LE) + meta JSON + body. */
int mv_record_encode(const uint8_t key[MV_KEY_BYTES], mv_record_type type,
                     const uint8_t *meta, size_t meta_len,
                     const uint8_t *body, size_t body_len,
                     int zstd_level, GByteArray *out, GError **error);
/* The same, compressed with cdict (a store's dictionary, dictionary.c)
 * when not NULL: the zstd frame then names the dictionary's id. */
int mv_record_encode_dict(const uint8_t key[MV_KEY_BYTES], mv_record_type type,
                          const uint8_t *meta, size_t meta_len,
                          const uint8_t *body, size_t body_len,
                          int zstd_level, const ZSTD_CDict *cdict, GByteArray *out, GError **error);
/* Where a decoder finds the dictionary a frame names: the prepared
 * dictionary of that id, or NULL when there is none.  Called only for
 * frames that name one. */
typedef const ZSTD_DDict *(*mv_record_dict_fn)(void *opaque, unsigned dict_id);
/* Parses and checks a header (magic, version, type, lengths). */
int mv_record_parse_header(const uint8_t *buf, size_t len, mv_record_header *h, GError **error);
/* Decrypts (authenticating header and ciphertext) and decompresses a whole
 * record.  *meta_r and *body_r point into *plain_r, which the caller frees. */
int mv_record_decode(const uint8_t key[MV_KEY_BYTES], const uint8_t *rec, size_t len,
                     mv_record_header *h_r, GByteArray **plain_r,
                     const uint8_t **meta_r, size_t *meta_len_r,
                     const uint8_t **body_r, size_t *body_len_r, GError **error);
/* The same, with dictionaries found through dicts (may be NULL).  A frame
 * naming a dictionary dicts does not have fails with MV_ERR_NOT_FOUND and
 * the id in *missing_dict_r (if not NULL; 0 for every other failure). */
int mv_record_decode_dict(const uint8_t key[MV_KEY_BYTES], mv_record_dict_fn dicts, void *dicts_opaque,
                          const uint8_t *rec, size_t len, mv_record_header *h_r, GByteArray **plain_r,
                          const uint8_t **meta_r, size_t *meta_len_r,
                          const uint8_t **body_r, size_t *body_len_r, unsigned *missing_dict_r, GError **error);

#endif
