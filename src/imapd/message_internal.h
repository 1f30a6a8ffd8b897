/* imapd/message_internal.h: what the files of message.h share — the part
 * tree with its byte offsets, header fields and Content-Type values.
 *
 *   message.c          the scan: bytes -> part tree; header fields
 *   message_ctype.c    RFC 2045 tokens, Content-Type/-Disposition, RFC 2231
 *   message_envelope.c ENVELOPE, address lists, IMAP strings
 *   message_body.c     BODY and BODYSTRUCTURE
 *   message_section.c  BODY[section] and BINARY[section]
 * Kept apart from internal.h so that message.h's users (the unit test and
 * the fuzz target) need none of the server's headers. */
#ifndef MV_IMAPD_MESSAGE_INTERNAL_H
#define MV_IMAPD_MESSAGE_INTERNAL_H

#include "imapd/message.h"

#include <string.h>

#define NONE UINT32_MAX

enum { KIND_LEAF, KIND_MULTIPART, KIND_MESSAGE };

typedef struct {
	size_t hdr_start, hdr_end; /* the header with its empty line */
	size_t body_start, body_end;
	uint32_t parent, first_child, last_child, next;
	uint8_t kind;
	uint8_t depth;
	bool header_open;
	bool digest; /* multipart/digest: its parts default to message/rfc822 */
} node;

struct mv_imap_message {
	const uint8_t *data;
	size_t len;
	GArray *nodes; /* node; [0] is the message itself */
};

typedef struct {
	size_t start, end; /* the field's lines, line ends included */
	size_t name_len;   /* 0 when the first line holds no colon */
	size_t value;      /* after the colon */
} hfield;

typedef struct {
	char *type, *subtype;
	GPtrArray *params; /* name, value, name, value ... as written (RFC 2231 merged) */
} ctype;

/* ---- bytes and lines ---- */

static inline size_t line_end(const uint8_t *d, size_t pos, size_t end)
{
	const uint8_t *nl = memchr(d + pos, '\n', end - pos);
	return nl ? (size_t)(nl - d) + 1 : end;
}

static inline bool is_empty_line(const uint8_t *d, size_t pos, size_t end)
{
	return (d[pos] == '\n') || (d[pos] == '\r' && pos + 1 < end && d[pos + 1] == '\n');
}

static inline bool is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static inline int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	return g_ascii_strncasecmp(a, b, n);
}

static inline node *N(const mv_imap_message *m, uint32_t i)
{
	return &g_array_index(m->nodes, node, i);
}

/* ---- message.c: header fields --------------------------------------------- */

/* The next field of a header region; false at its end or its empty line. */
bool next_field(const uint8_t *d, size_t end, size_t *pos, hfield *f);
/* The field's name is name (ASCII case-insensitive). */
bool field_is(const uint8_t *d, const hfield *f, const char *name, size_t name_len);
/* First occurrences of the named fields, unfolded: values[i] for names[i]
 * (NULL when absent), caller frees. */
void header_values(const uint8_t *d, size_t start, size_t end, const char *const *names, size_t n,
                   char **values);
/* Every occurrence of an address field joined into one list (new), or NULL. */
char *address_field(const uint8_t *d, size_t start, size_t end, const char *name);

/* ---- message_ctype.c ------------------------------------------------------ */

/* Skips white space and comments from s[i]; the last comment's text goes to
 * comment_r when given.  Returns the next position. */
size_t skip_cfws(const char *s, size_t i, GString *comment_r);
/* Appends the quoted string at s[i] == '"' unescaped; returns the position after it. */
size_t read_quoted(const char *s, size_t i, GString *out);
/* The RFC 2045 token at s[*i] (new, *i moved past it), or NULL. */
char *read_token(const char *s, size_t *i);
void ctype_clear(ctype *ct);
/* "type/subtype; params" (with_subtype) or "disposition; params" into *ct;
 * false (and *ct empty) when the leading token(s) cannot be read. */
bool parse_ctype(const char *s, bool with_subtype, ctype *ct);
/* The value of parameter name (case-insensitive), or NULL. */
const char *param_get(const ctype *ct, const char *name);
/* The part's Content-Type value parsed, or its place's default (text/plain,
 * message/rfc822 inside multipart/digest). */
void part_ctype(const char *value, bool in_digest, ctype *ct);
/* type/subtype matches (subtype NULL: any), case-insensitive. */
bool ctype_is(const ctype *ct, const char *type, const char *subtype);
/* message/rfc822 or message/global. */
bool ctype_is_message(const ctype *ct);

/* ---- message_envelope.c --------------------------------------------------- */

/* Appends s as an IMAP string (quoted or literal), NIL when NULL. */
void put_nstring(GString *out, const char *s, bool utf8);
/* Appends the ENVELOPE of the message node msg. */
void put_envelope(const mv_imap_message *m, const node *msg, bool utf8, GString *out);

#endif
