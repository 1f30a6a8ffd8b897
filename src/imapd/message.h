/* imapd/message.h: one archived message as IMAP sees it — its MIME part
 * tree with byte offsets into the exact archived bytes, and what FETCH
 * builds from that tree (ENVELOPE, BODY/BODYSTRUCTURE, BODY[section],
 * BINARY[section]).  Internal to imapd/ (and its tests and fuzz target).
 *
 * The input is hostile: any bytes give a tree (a message that cannot be
 * parsed is one text/plain part), nesting and part counts are bounded, and
 * nothing recurses without a depth bound. */
#ifndef MV_IMAPD_MESSAGE_H
#define MV_IMAPD_MESSAGE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MV_IMAP_MAX_PART_DEPTH 32       /* deeper parts are treated as leaves */
#define MV_IMAP_MAX_PARTS 10000         /* parts beyond are not in the tree */
#define MV_IMAP_MAX_SECTION_PARTS 32    /* "1.2.3..." at most this many numbers */
#define MV_IMAP_MAX_HEADER_FIELDS 256   /* HEADER.FIELDS (...) names */

typedef struct mv_imap_message mv_imap_message;

/* Builds the part tree of data[0..len) (not copied: data must outlive the
 * result).  Never fails on content; NULL only when out of memory. */
mv_imap_message *mv_imap_message_parse(const uint8_t *data, size_t len);
void mv_imap_message_free(mv_imap_message **m);

/* Appends the ENVELOPE list (RFC 3501 7.4.2), e.g.
 * ("date" "subject" (("name" NIL "mbox" "host")) ... "in-reply-to" "message-id").
 * Strings are written as quoted strings when they can be (no CR, LF, NUL,
 * 8-bit allowed only if utf8 is true, length < 1024) and as literals
 * otherwise. */
void mv_imap_message_envelope(const mv_imap_message *m, bool utf8, GString *out);

/* Appends BODYSTRUCTURE (extended = true) or BODY (extended = false). */
void mv_imap_message_bodystructure(const mv_imap_message *m, bool extended, bool utf8, GString *out);

typedef enum {
	MV_IMAP_SECTION_ALL = 0,       /* BODY[] or BODY[1.2] : the part (its body for a non-message part) */
	MV_IMAP_SECTION_HEADER,        /* BODY[HEADER], BODY[1.HEADER] (part 1 is message/rfc822) */
	MV_IMAP_SECTION_HEADER_FIELDS, /* BODY[HEADER.FIELDS (A B)] */
	MV_IMAP_SECTION_HEADER_FIELDS_NOT,
	MV_IMAP_SECTION_TEXT,          /* BODY[TEXT], BODY[1.TEXT] */
	MV_IMAP_SECTION_MIME,          /* BODY[1.MIME]: the part's own MIME header */
} mv_imap_section_kind;

typedef struct mv_imap_section {
	unsigned parts[MV_IMAP_MAX_SECTION_PARTS];
	size_t nparts;                 /* 0 = the whole message */
	mv_imap_section_kind kind;
	GPtrArray *fields;             /* HEADER.FIELDS[.NOT]: char* names as given (owned) */
} mv_imap_section;

/* Parses the text between the brackets of BODY[...] / BINARY[...]
 * ("", "HEADER", "1.2.TEXT", "HEADER.FIELDS (From \"To\")", ...); the
 * field names may be atoms, quoted strings or literals already turned
 * into quoted form by the caller.  binary = true accepts only part numbers
 * (RFC 3516).  Returns false with *error_r (a static string naming the
 * reason) on a malformed spec.  The canonical form of the inside of the
 * brackets, as the answer echoes it ("1.HEADER.FIELDS (FROM TO)"), is
 * appended to canon when not NULL. */
bool mv_imap_section_parse(const char *spec, size_t len, bool binary, mv_imap_section *sec_r, GString *canon,
                           const char **error_r);
void mv_imap_section_clear(mv_imap_section *sec);

/* The bytes of a section.  Most sections are a slice of the message:
 * *data_r points into it and *owned_r is NULL.  HEADER.FIELDS[.NOT]
 * builds its answer: *owned_r holds it (caller frees) and *data_r points
 * into it; its fields end as the header's lines do (CRLF, or LF in an
 * LF-only message), and so does the blank line after them.  A part that
 * does not exist gives an empty string (RFC 3501). */
void mv_imap_message_section(const mv_imap_message *m, const mv_imap_section *sec, const uint8_t **data_r,
                             size_t *len_r, GByteArray **owned_r);

typedef enum {
	MV_IMAP_BINARY_OK = 0,
	MV_IMAP_BINARY_UNKNOWN_CTE,    /* answer NO [UNKNOWN-CTE] */
	MV_IMAP_BINARY_NO_PART,        /* the part does not exist */
} mv_imap_binary_result;

/* BINARY[parts] (RFC 3516): the part's body with its
 * Content-Transfer-Encoding undone (7bit/8bit/binary as is, base64,
 * quoted-printable).  *out_r is a new array on OK.  Binary of a multipart
 * or message part is its bytes as they are. */
mv_imap_binary_result mv_imap_message_binary(const mv_imap_message *m, const mv_imap_section *sec,
                                             GByteArray **out_r);

/* For SEARCH HEADER fallbacks: the unfolded value of the first header
 * field called name in the top-level header (a new string), or NULL. */
char *mv_imap_message_header(const mv_imap_message *m, const char *name);

#endif
