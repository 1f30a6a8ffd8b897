/* smtpd/protocol: the SMTP and LMTP wire protocol without I/O — one
 * command line taken apart (RFC 5321, 1870, 3030, 3461, 4954, 6152, 6531),
 * the DATA and BDAT bodies decoded as they arrive, replies formatted.
 *
 * Pure functions over buffers the caller owns, so the session that will
 * use them (issue 13) and the fuzz target (fuzz/fuzz_smtp_command.c) see
 * the same code.  Every refusal comes with the reply a server sends for
 * it: code, enhanced status code (RFC 3463) and a text naming what was
 * wrong, safe to put on the wire. */
#ifndef MV_SMTPD_PROTOCOL_H
#define MV_SMTPD_PROTOCOL_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4: a command line is 512 octets with its CRLF; an
 * extension may allow more (the caller passes its bound to the parser). */
#define MV_SMTP_COMMAND_LINE_MAX 512u
#define MV_SMTP_LOCAL_PART_MAX 64u    /* RFC 5321 4.5.3.1.1 */
#define MV_SMTP_DOMAIN_MAX 255u       /* RFC 5321 4.5.3.1.2 */

typedef enum {
	MV_SMTP_UNKNOWN = 0,
	MV_SMTP_EHLO,
	MV_SMTP_HELO,
	MV_SMTP_LHLO,
	MV_SMTP_MAIL,
	MV_SMTP_RCPT,
	MV_SMTP_DATA,
	MV_SMTP_BDAT,
	MV_SMTP_RSET,
	MV_SMTP_NOOP,
	MV_SMTP_QUIT,
	MV_SMTP_VRFY,
	MV_SMTP_HELP,
	MV_SMTP_STARTTLS,
	MV_SMTP_AUTH,
} mv_smtp_verb;

const char *mv_smtp_verb_name(mv_smtp_verb verb);

/* What kind of wrong a refusal is, for the caller's policy (bare LF
 * answered and counted, a bad-command rate per address). */
typedef enum {
	MV_SMTP_FAULT_NONE = 0,
	MV_SMTP_FAULT_BARE_LF,       /* the line ends in LF without CR (RFC 5321 2.3.8) */
	MV_SMTP_FAULT_LINE,          /* NUL, bare CR, too long, no line end */
	MV_SMTP_FAULT_UNKNOWN_VERB,
	MV_SMTP_FAULT_ARGUMENT,      /* the verb's argument is malformed or missing */
	MV_SMTP_FAULT_ADDRESS,       /* a path's mailbox is malformed or too long */
	MV_SMTP_FAULT_NON_ASCII,     /* UTF-8 in an address without SMTPUTF8 */
	MV_SMTP_FAULT_PARAMETER,     /* an ESMTP parameter unknown, duplicated or malformed */
	MV_SMTP_FAULT_TOO_BIG,       /* SIZE= beyond any number */
} mv_smtp_fault;

/* A refusal: the reply to send.  enhanced points at a constant; text is
 * owned (printable ASCII only, so it can go on the wire as it is). */
typedef struct mv_smtp_error {
	mv_smtp_fault fault;
	unsigned code;
	const char *enhanced;
	char *text;
} mv_smtp_error;

void mv_smtp_error_clear(mv_smtp_error *err);

/* A mailbox of a path.  local_part is unquoted (a quoted-string's quotes
 * and backslashes removed); domain is a domain name or an address literal
 * with its brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]"), NULL only for
 * RCPT TO:<Postmaster>; address is local-part "@" domain as written. */
typedef struct mv_smtp_mailbox {
	char *local_part;
	bool local_quoted;
	char *domain;
	bool domain_literal;
	char *address;
	bool utf8;          /* holds non-ASCII octets (SMTPUTF8) */
} mv_smtp_mailbox;

typedef enum {
	MV_SMTP_BODY_NONE = 0,   /* no BODY= given */
	MV_SMTP_BODY_7BIT,
	MV_SMTP_BODY_8BITMIME,
	MV_SMTP_BODY_BINARYMIME,
} mv_smtp_body;

/* An ESMTP parameter as given: keyword upper-cased, value NULL when
 * there was no "=". */
typedef struct mv_smtp_param {
	char *keyword;
	char *value;
} mv_smtp_param;

typedef struct mv_smtp_command {
	mv_smtp_verb verb;
	/* EHLO, HELO, LHLO: the client's domain or address literal. */
	char *domain;
	/* MAIL (reverse-path) and RCPT (forward-path); null_path for "<>". */
	bool null_path;
	mv_smtp_mailbox mailbox;
	/* MAIL and RCPT: every parameter in order (mv_smtp_param *), and the
	 * known ones decoded. */
	GPtrArray *params;
	bool has_size;
	uint64_t size;
	mv_smtp_body body;
	bool smtputf8;
	/* BDAT */
	uint64_t chunk_size;
	bool last;
	/* AUTH: mechanism upper-cased; initial response as given, "=" for an
	 * empty one, NULL when none. */
	char *mechanism;
	char *initial_response;
	/* VRFY, HELP, NOOP: the rest of the line, NULL when none. */
	char *text;
} mv_smtp_command;

typedef struct mv_smtp_parse_options {
	/* The line's bound in octets with its CRLF (RFC 5321 4.5.3.1.4). */
	size_t max_line;
	/* The server offers SMTPUTF8: a MAIL FROM that carries the SMTPUTF8
	 * parameter may name a UTF-8 mailbox (RFC 6531 3.4). */
	bool smtputf8_offered;
	/* This transaction's MAIL carried SMTPUTF8: RCPT TO may be UTF-8. */
	bool smtputf8_transaction;
} mv_smtp_parse_options;

/* Parses one command line: the bytes up to and including its line end.
 * On success fills *cmd (cleared first; mv_smtp_command_clear frees it)
 * and returns true.  On failure returns false with *err set; cmd->verb
 * is still the verb when it was recognised, so the caller can count a
 * bad RCPT as a bad RCPT. */
bool mv_smtp_command_parse(const uint8_t *line, size_t len, const mv_smtp_parse_options *opt,
                           mv_smtp_command *cmd, mv_smtp_error *err);
void mv_smtp_command_clear(mv_smtp_command *cmd);

/* ---- DATA and BDAT ------------------------------------------------------------------------------ */

/* The body of DATA, fed in chunks as they arrive: dot-unstuffed into out
 * until CRLF "." CRLF.  Only that exact sequence ends it, and a dot is
 * unstuffed only after CRLF (a bare LF starts no line), so no bare-LF
 * variant of the end can smuggle a second message past the decoder.  Past
 * max_size nothing more is stored but the body is read to its end. */
typedef struct mv_smtp_data_decoder {
	GByteArray *out;      /* not owned */
	uint64_t max_size;
	uint64_t size;        /* the unstuffed body's octets, stored or not */
	int state;
	bool done;
	bool too_big;         /* reply 552 5.3.4 once done */
	bool bare_lf;         /* an LF without CR: the caller's policy (550 5.6.11 or accept) */
	bool bare_cr;         /* a CR without LF */
} mv_smtp_data_decoder;

void mv_smtp_data_init(mv_smtp_data_decoder *dec, GByteArray *out, uint64_t max_size);
/* Consumes bytes up to the end of the body: returns how many of data it
 * used.  When dec->done, what follows them is the next command. */
size_t mv_smtp_data_feed(mv_smtp_data_decoder *dec, const uint8_t *data, size_t len);

/* BDAT chunks (RFC 3030): exact octet counts, nothing unstuffed; the
 * limit counts over the whole message's chunks. */
typedef struct mv_smtp_bdat_decoder {
	GByteArray *out;      /* not owned */
	uint64_t max_size;
	uint64_t size;        /* octets of every chunk so far, stored or not */
	uint64_t remaining;   /* of the current chunk */
	bool too_big;
} mv_smtp_bdat_decoder;

void mv_smtp_bdat_init(mv_smtp_bdat_decoder *dec, GByteArray *out, uint64_t max_size);
void mv_smtp_bdat_chunk(mv_smtp_bdat_decoder *dec, uint64_t chunk_size);
/* Consumes up to the current chunk's end: returns how many of data it
 * used; the chunk is complete when dec->remaining is 0. */
size_t mv_smtp_bdat_feed(mv_smtp_bdat_decoder *dec, const uint8_t *data, size_t len);

/* ---- replies ------------------------------------------------------------------------------------ */

/* Appends a reply of one or more lines: "250-..." for all but the last,
 * "250 ..." for the last, each with the enhanced code when it is not NULL
 * (RFC 2034 puts it on every line).  Control octets in the text become
 * '?', so no text can end the reply early or add one. */
void mv_smtp_reply_lines(GString *out, unsigned code, const char *enhanced, const char *const *lines, size_t n);
void mv_smtp_reply(GString *out, unsigned code, const char *enhanced, const char *text);
void mv_smtp_reply_error(GString *out, const mv_smtp_error *err);

/* What EHLO or LHLO announces. */
typedef struct mv_smtp_capabilities {
	uint64_t size_max;        /* SIZE n (0: SIZE without a limit) */
	bool starttls;            /* offered only before TLS */
	const char *auth;         /* "PLAIN LOGIN", or NULL: no AUTH line */
	bool chunking;            /* CHUNKING and BINARYMIME */
	bool smtputf8;
	bool dsn;
} mv_smtp_capabilities;

/* The EHLO/LHLO reply: greeting line, then the capabilities, with no
 * enhanced code (RFC 2034 3). */
void mv_smtp_ehlo_reply(GString *out, const char *server_name, const char *client_domain,
                        const mv_smtp_capabilities *caps);

#endif
