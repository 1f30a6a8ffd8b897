/* sources/imap_response: one IMAP server response (RFC 9051 / 3501) taken
 * apart — tagged or untagged status with its response code and text, a
 * continuation, or untagged data (FETCH, LIST, STATUS, SEARCH, ESEARCH,
 * CAPABILITY, EXISTS, VANISHED, ...) as a tree of atoms, strings, NILs and
 * lists.
 *
 * Pure: the bytes as received (literals inline, "{n}\r\n" then n bytes)
 * in, a tree of offsets into them out, so a message literal is never
 * copied and the parser is fuzzed on its own (fuzz/fuzz_imap_response.c).
 * Bounded: list depth, number of values; anything else malformed is an
 * error naming the place. */
#ifndef MV_SOURCES_IMAP_RESPONSE_H
#define MV_SOURCES_IMAP_RESPONSE_H

#include "base/base.h"

typedef enum {
	MV_IMAP_ATOM = 0,    /* also numbers and flags; "BODY[...]" whole */
	MV_IMAP_STRING,      /* quoted (unescaped) or literal */
	MV_IMAP_NIL,
	MV_IMAP_LIST,
} mv_imap_kind;

#define MV_IMAP_NONE UINT32_MAX

typedef struct mv_imap_value {
	mv_imap_kind kind;
	uint32_t child;      /* LIST: first item, or MV_IMAP_NONE */
	uint32_t next;       /* next sibling, or MV_IMAP_NONE */
	bool unescaped;      /* the bytes are in the response's scratch, not raw */
	size_t off, len;
} mv_imap_value;

typedef enum {
	MV_IMAP_RESP_DATA = 0,      /* "* [n] NAME values" */
	MV_IMAP_RESP_STATUS,        /* "* OK ..." or "tag OK|NO|BAD ..." */
	MV_IMAP_RESP_CONTINUATION,  /* "+ ..." */
} mv_imap_resp_type;

typedef struct mv_imap_response {
	mv_imap_resp_type type;
	char *tag;            /* "*", "+" or the command's tag */
	char *status;         /* STATUS: "OK", "NO", "BAD", "BYE", "PREAUTH" (upper case) */
	char *code;           /* STATUS: the response code inside [], or NULL */
	char *text;           /* STATUS, CONTINUATION: the text (UTF-8 sanitised) */
	int64_t number;       /* DATA: "* 12 FETCH" → 12; -1 when none */
	char *name;           /* DATA: upper case, "FETCH", "LIST", ... */
	uint32_t first;       /* DATA: the first value after the name, or MV_IMAP_NONE */
	const GByteArray *raw;
	GArray *values;       /* mv_imap_value */
	GByteArray *scratch;  /* unescaped quoted strings */
} mv_imap_response;

/* Parses raw (one whole response, literals inline, ending in CRLF or LF;
 * it must outlive r).  Fails with MV_ERR_INVALID saying what is wrong. */
int mv_imap_response_parse(const GByteArray *raw, mv_imap_response *r, GError **error);
void mv_imap_response_clear(mv_imap_response *r);

const mv_imap_value *mv_imap_value_at(const mv_imap_response *r, uint32_t index);
/* A value's bytes (ATOM, STRING; NULL for NIL and LIST). */
const uint8_t *mv_imap_bytes(const mv_imap_response *r, const mv_imap_value *v, size_t *len_r);
/* A new NUL-terminated copy of an ATOM's or STRING's bytes, NULL for others. */
char *mv_imap_dup(const mv_imap_response *r, const mv_imap_value *v);
/* Whether an ATOM equals word, letter case aside. */
bool mv_imap_atom_is(const mv_imap_response *r, const mv_imap_value *v, const char *word);
/* An ATOM that is a number (digits only, fits in 63 bits). */
bool mv_imap_number(const mv_imap_response *r, const mv_imap_value *v, uint64_t *n_r);
/* In a list of pairs (a FETCH's attributes, a STATUS's items): the value
 * after the ATOM key, or NULL. */
const mv_imap_value *mv_imap_pair(const mv_imap_response *r, const mv_imap_value *list, const char *key);

/* If line (one received line, CRLF or LF at its end) ends with a literal's
 * announcement "{n}" or "{n+}", its length. */
bool mv_imap_literal_at_end(const uint8_t *line, size_t len, uint64_t *n_r);

#endif
