/* mime: everything that reads mail from outside — parsing one message into
 * the fields the archive indexes (GMime underneath), address and date
 * normalisation, text extraction behind a pluggable extractor table, and the
 * message sources (EML file or directory, mbox, Maildir) behind one reader
 * interface, shaped like Redis's rio: one struct of function pointers, one
 * implementation per source kind. */
#ifndef MV_MIME_H
#define MV_MIME_H

#include "base/base.h"

/* Bounds for hostile input. */
#define MV_MAX_MESSAGE_SIZE   (512u * 1024u * 1024u) /* larger is refused */
#define MV_MAX_MIME_DEPTH     64    /* deeper parts are not descended into */
#define MV_MAX_TEXT_PER_MESSAGE (4u * 1024u * 1024u) /* indexed text cap */

void mv_mime_init(void);
void mv_mime_shutdown(void);

/* ---- parsed message ---------------------------------------------------- */

typedef enum {
	MV_DATE_FROM_HEADER = 0,
	MV_DATE_FROM_RECEIVED = 1, /* Date missing or unparsable */
	MV_DATE_FROM_ARCHIVE = 2,  /* no usable date at all: archive time */
} mv_date_source;

typedef enum {
	MV_PARSE_OK = 0,
	MV_PARSE_NO_HEADERS = 1 << 0,   /* no header block could be read */
	MV_PARSE_BAD_MIME = 1 << 1,     /* structure broken (truncated, bad boundary) */
	MV_PARSE_TOO_DEEP = 1 << 2,     /* nesting beyond MV_MAX_MIME_DEPTH skipped */
	MV_PARSE_BAD_CHARSET = 1 << 3,  /* text in an unknown/invalid charset */
	MV_PARSE_NUL_BYTES = 1 << 4,
	MV_PARSE_TEXT_TRUNCATED = 1 << 5,
	MV_PARSE_BAD_DATE = 1 << 6,
	MV_PARSE_EXTRACT_FAILED = 1 << 7, /* an attachment's text could not be read (see extract_errors) */
} mv_parse_flags;

typedef struct mv_parsed {
	char *subject;        /* decoded, UTF-8, never NULL */
	char *from;           /* display form "Name <addr>" of first From, UTF-8 */
	char *from_addrs;     /* normalised addresses, space separated */
	char *to;             /* display form, comma separated */
	char *to_addrs;
	char *cc, *bcc;       /* display forms, comma separated */
	char *cc_addrs;
	char *bcc_addrs;
	char *message_id;     /* without angle brackets, "" if none */
	int64_t date;         /* unix seconds UTC */
	mv_date_source date_source;
	GString *text;        /* extracted body text (plain + html-as-text) */
	GString *attachment_names; /* file names, one per line */
	bool has_attachment;
	unsigned flags;       /* mv_parse_flags */
	GPtrArray *extract_errors; /* char *: "attachment name: reason" for each attachment whose text could not be read */
} mv_parsed;

/* Parses raw RFC 5322 bytes.  Never fails: what cannot be read is flagged in
 * ->flags and left empty.  archived_at is the fallback date. */
mv_parsed *mv_parse_message(const uint8_t *data, size_t len, int64_t archived_at);
void mv_parsed_free(mv_parsed *p);

/* Normalises one address: trimmed, lower-cased domain and local part,
 * surrounding angle brackets removed.  Returns a new string, "" if empty. */
char *mv_address_normalize(const char *addr);
/* Parses an RFC 5322 date (lenient, like GMime); false if unusable. */
bool mv_date_parse(const char *value, int64_t *t_r);
/* The date of the newest (topmost) Received header's ";" part, if any. */
bool mv_date_from_received(const char *received_value, int64_t *t_r);

/* ---- text extraction (plug-in table) ----------------------------------- */

typedef struct mv_extract_request {
	const uint8_t *data;   /* the part's decoded bytes */
	size_t len;
	const char *charset;   /* the Content-Type's charset, or NULL */
	const char *mime_type; /* lower-case type/subtype */
	const char *filename;  /* the part's file name, or NULL */
} mv_extract_request;

typedef struct mv_text_extractor {
	const char *name;
	/* true if this extractor reads the part (lower-case type/subtype; the
	 * file name decides for application/octet-stream). */
	bool (*accepts)(const char *mime_type, const char *filename);
	/* Appends text (UTF-8) to out; at most `limit` bytes added.  -1 with
	 * *error naming the reason when the part could not be read (what was
	 * read before the failure may still have been appended). */
	int (*extract)(const mv_extract_request *req, GString *out, size_t limit, GError **error);
} mv_text_extractor;

/* Registers an extractor.  Built in: text/plain (and other text types),
 * text/html, RTF; the document extractor (PDF, Office, ZIP) registers from
 * extract/. */
void mv_text_extractor_register(const mv_text_extractor *ex);
const mv_text_extractor *mv_text_extractor_find(const char *mime_type, const char *filename);
/* Strips tags, scripts and styles and decodes entities: HTML to plain text. */
void mv_html_to_text(const char *html, size_t len, GString *out, size_t limit);

/* ---- a message taken apart for a reader (view.c) -------------------------- */

typedef struct mv_view_part {
	int index;            /* 1.. in the message's order: what a download names */
	char *name;           /* file name ("" when the part has none); "<subject>.eml" for a message */
	char *content_type;   /* lower-case type/subtype */
	int64_t size;         /* decoded bytes */
	char *content_id;     /* without angle brackets, "" when none */
	bool is_inline;       /* an image the HTML body shows by its Content-ID */
} mv_view_part;

typedef struct mv_message_view {
	char *subject, *from, *to, *cc, *bcc, *reply_to, *message_id; /* decoded, UTF-8, never NULL */
	GPtrArray *headers;   /* char*: name, value, name, value, ... (decoded, bounded) */
	GString *text;        /* the plain text, lines kept (from the HTML when there is no plain part) */
	GString *html;        /* the HTML body in UTF-8, NOT safe to show (see sanitize), or NULL */
	GPtrArray *attachments; /* mv_view_part*: every part that is not the text or HTML body */
	unsigned flags;       /* mv_parse_flags */
	void *priv;
} mv_message_view;

/* Never fails: what cannot be read is flagged and left empty. */
mv_message_view *mv_message_view_new(const uint8_t *data, size_t len);
void mv_message_view_free(mv_message_view **v);
void mv_view_part_free(mv_view_part *p);
/* The decoded content of attachment index (a message/rfc822 part as its
 * message).  MV_ERR_NOT_FOUND for an index the message does not have. */
int mv_message_view_part_data(mv_message_view *v, int index, GByteArray **data_r, GError **error);
/* The message's body text alone (the first plain part, else the first
 * HTML part as text), at most about max_bytes, appended to out as one line
 * of text: what a search snippet is cut from, at a fraction of a whole
 * view's cost (no other part is decoded). */
void mv_message_body_text(const uint8_t *data, size_t len, size_t max_bytes, GString *out);
/* The attachment with this Content-ID, or NULL. */
const mv_view_part *mv_message_view_find_cid(const mv_message_view *v, const char *content_id);

/* ---- HTML made safe to show (sanitize.c) ---------------------------------
 * Mail HTML is written by strangers.  Web Access shows it only after this
 * whitelist pass (and inside a sandboxed frame under a strict
 * Content-Security-Policy, a second, independent wall): libxml2's HTML
 * parser builds a tree, and our own serialiser writes back only known-safe
 * elements and attributes, every value escaped, so what the browser parses
 * again cannot differ from what was checked. */

typedef struct mv_html_policy {
	/* Keep http(s) images and CSS url()s: the user asked for remote
	 * content.  Off: they are dropped and reported in *had_remote_r. */
	bool allow_remote;
	/* Maps the Content-ID of a cid: reference (without "cid:" and angle
	 * brackets) to the URL of that inline part, a new string, or NULL to
	 * drop the reference.  NULL resolver = drop every cid: reference. */
	char *(*resolve_cid)(void *opaque, const char *content_id);
	void *opaque;
} mv_html_policy;

#define MV_HTML_MAX_OUTPUT (16u * 1024u * 1024u) /* longer output is cut, *truncated_r set */

/* Turns untrusted HTML (UTF-8; invalid bytes are replaced) into a complete
 * document that runs no script, loads nothing from outside unless the
 * policy allows remote content, submits nothing and navigates nowhere but
 * a new browsing context (links get target="_blank" rel="noopener
 * noreferrer"; only http, https and mailto links are kept).  *out receives
 * "<!DOCTYPE html><html><head><meta charset=\"utf-8\">...</head><body>...</body></html>"
 * (replacing what *out held).  had_remote_r: whether the input referred to
 * remote content (set whatever the policy); truncated_r: whether input
 * beyond MV_HTML_MAX_OUTPUT was left out or the output cut (both may be
 * NULL).
 * Never fails on any input; -1 only with *error set when libxml2 cannot
 * allocate its parser. */
int mv_html_sanitize(const char *html, size_t len, const mv_html_policy *policy, GString *out,
                     bool *had_remote_r, bool *truncated_r, GError **error);

/* ---- message sources ----------------------------------------------------- */

typedef enum {
	MV_FORMAT_AUTO = 0,
	MV_FORMAT_EML,      /* one file */
	MV_FORMAT_EMLDIR,   /* directory tree of files */
	MV_FORMAT_MBOX,     /* mboxrd unquoting (default for mbox) */
	MV_FORMAT_MBOXO,    /* mboxo: only ">From " is unquoted */
	MV_FORMAT_MAILDIR,
	MV_FORMAT_PST,      /* Outlook PST or OST file */
	MV_FORMAT_MSG,      /* one Outlook .msg file (read as an EML file is: it is converted) */
} mv_format;

/* Parses a --format name; false on unknown. */
bool mv_format_from_name(const char *name, mv_format *fmt_r);
const char *mv_format_name(mv_format fmt);
/* Decides the format of a path (file or directory). */
int mv_format_detect(const char *path, mv_format *fmt_r, GError **error);

typedef struct mv_source_message {
	GByteArray *data;   /* owned by the reader; valid until the next call */
	bool shared;        /* data is a copy no one changes: a reference may be kept (the read-ahead's) */
	char *folder;       /* relative folder ("" = the import root), owned by reader */
	char *origin;       /* file path or "mbox:OFFSET", for messages and errors */
	char *mail_flags;   /* Maildir flags ("RS") or "", owned by reader */
	char *origin_sha256; /* SHA-256 (hex) of the Outlook file a message was converted from, or NULL */
	char *damage;       /* what of an Outlook item could not be read ("attachment 2: ..."), or NULL */
	/* with read_mailstore_headers, from the block the reader stripped: */
	bool mailstore;     /* the message had MailStore headers: folder is the archive folder itself */
	char *archive;      /* the archive they name, or NULL (a MailStore export names none) */
	int64_t archived_at; /* the archive date, only when the signature was verified; else 0 */
} mv_source_message;

typedef enum {
	MV_READ_END = 0,
	MV_READ_MESSAGE = 1,
	MV_READ_SKIPPED = 2, /* an item was refused: *error names it and why; go on */
	MV_READ_IGNORED = 3, /* an item that is not mail (an Outlook contact, ...): *error names its kind; go on */
	MV_READ_FATAL = -1,
} mv_read_result;

typedef struct mv_reader mv_reader;

typedef struct mv_reader_options {
	mv_format format;
	bool recursive;        /* EML directories: descend (default true) */
	char **extensions;     /* EML directories: NULL-terminated, lower-case, without dot */
	/* EML files: strip a block of MailStore headers (mailstore_headers.c)
	 * and report what it names; a malformed block refuses the item. */
	bool read_mailstore_headers;
	/* EML files: each X.eml must have a valid X.eml.sig under the
	 * publickey.pem of the directory read (implies read_mailstore_headers);
	 * then the archive date of the headers is kept. */
	bool verify_signature;
} mv_reader_options;

mv_reader *mv_reader_open(const char *path, const mv_reader_options *opts, GError **error);
/* Next message.  MV_READ_MESSAGE fills *msg (reader-owned). */
mv_read_result mv_reader_next(mv_reader *r, mv_source_message *msg, GError **error);
/* Items of a PST read so far and in all, and the folder being read; false
 * for sources that are not counted in items. */
/* EML directories: regular files passed over because their extension is
 * not one asked for (0 for other formats). */
uint64_t mv_reader_other_files(const mv_reader *r);
bool mv_reader_items(mv_reader *r, uint64_t *done_r, uint64_t *total_r, const char **folder_r);
/* Bytes of the source consumed so far and in total (for progress). */
void mv_reader_progress(mv_reader *r, uint64_t *done_r, uint64_t *total_r);
mv_format mv_reader_format(mv_reader *r);
void mv_reader_close(mv_reader **r);

/* True if the bytes look like an RFC 5322 message (a header field first);
 * else *why_r is set to a static reason. */
bool mv_looks_like_message(const uint8_t *data, size_t len, const char **why_r);

/* ---- mbox splitting (a push parser, independent of files) ---------------- */

typedef struct mv_mbox_splitter mv_mbox_splitter;
/* Called once per message with its unquoted bytes; offset = byte offset of
 * its "From " line in the stream.  Return false to stop. */
typedef bool (*mv_mbox_message_cb)(void *ctx, const uint8_t *msg, size_t len, uint64_t offset);

mv_mbox_splitter *mv_mbox_splitter_new(bool mboxrd, mv_mbox_message_cb cb, void *ctx);
/* Feeds bytes; calls cb for each message completed.  -1 if a message exceeds
 * MV_MAX_MESSAGE_SIZE (error set) — the splitter then skips to the next one. */
int mv_mbox_splitter_feed(mv_mbox_splitter *s, const uint8_t *buf, size_t len, GError **error);
/* Ends the stream: flushes the last message. */
int mv_mbox_splitter_finish(mv_mbox_splitter *s, GError **error);
void mv_mbox_splitter_free(mv_mbox_splitter **s);
/* True if line (without its newline) is an mbox separator "From addr date". */
bool mv_mbox_is_separator(const char *line, size_t len);

/* ---- the export format: MailStore headers and signatures (mailstore_headers.c)
 * An exported EML file may start with a block of header fields naming where
 * the message came from; the bytes after the block are the archived message,
 * exactly.  Ours is written as
 *   X-MailVault-Archive-UTF7: john.doe          (first: marks the block as ours)
 *   X-MailStore-Message-ID: 1:42
 *   X-MailStore-Folder-UTF7: Inbox/Projekt &AMQ-   (IMAP modified UTF-7, '/' between levels)
 *   X-MailStore-Date: 20240501120000            (archive date, UTC)
 *   X-MailStore-Flags: RS                       (only when the message has flags)
 *   X-MailStore-Header-Hash: <SHA-256 hex of the message after the block>   (last)
 * with the message's own line ending.  A block that does not start with
 * our first field is read as a MailStore export: the leading run of
 * X-MailStore-* fields, without a hash to check. */
typedef struct mv_mailstore_headers {
	char *archive;       /* NULL in a MailStore export (the import's --archive then) */
	char *folder;        /* "/"-separated UTF-8; NULL when absent */
	int64_t archived_at; /* Unix seconds; 0 when absent */
	char *message_id;    /* NULL when absent */
	char *flags;         /* NULL when absent */
	char *header_hash;   /* lower-case hex; NULL in a MailStore export */
	size_t block_len;    /* bytes of the block, line endings included */
} mv_mailstore_headers;

void mv_mailstore_headers_clear(mv_mailstore_headers *h);
/* Bounds of a block as read: fields and the bytes of one line. */
#define MV_MAILSTORE_MAX_FIELDS 16
#define MV_MAILSTORE_MAX_LINE 16384u
/* 1 with *h filled when data starts with a block (our hash checked against
 * the bytes after it), 0 when it starts with none, -1 with *error naming
 * the reason when the block is malformed or the hash does not match. */
int mv_mailstore_headers_read(const uint8_t *data, size_t len, mv_mailstore_headers *h, GError **error);
/* Appends the block for a message (h: archive, folder, archived_at,
 * message_id, flags; block_len and header_hash are ignored — the hash is
 * computed over raw) to out. */
void mv_mailstore_headers_write(const mv_mailstore_headers *h, const uint8_t *raw, size_t raw_len, GByteArray *out);
/* The flags a source gave a message (mail_flags.c): "" = nothing said
 * (archived mail, shown as read), "2,LETTERS" = Maildir's letters. */
enum { MV_MAIL_FLAG_SEEN = 1, MV_MAIL_FLAG_ANSWERED = 2, MV_MAIL_FLAG_FLAGGED = 4, MV_MAIL_FLAG_DRAFT = 8 };
unsigned mv_mail_flags_parse(const char *record);
/* The record for a Maildir file name ("...:2,FS" -> "2,FS"; no info -> "2,"). */
char *mv_mail_flags_from_maildir(const char *file_name);
/* "(\Seen \Flagged)" for bits, appended to out. */
void mv_mail_flags_append_imap(GString *out, unsigned bits);

/* One address header value, a string, bounded as every caller of GMime's
 * address parser must (address_colons.c: GMime recurses once per nested
 * group): colons past the 128th become spaces, in place; true when it was
 * changed. */
bool mv_mime_bound_value_colons(char *value);

/* IMAP modified UTF-7 (RFC 3501 5.1.3; mutf7.c — also the IMAP server's
 * mailbox names): encode never fails; decode refuses
 * anything but canonical printable text and well-formed shifts, control
 * characters and NUL (NULL with *error naming the position). */
char *mv_mutf7_encode(const char *utf8);
char *mv_mutf7_decode(const char *text, GError **error);
/* "YYYYMMDDhhmmss" in UTC and back; false for anything else. */
char *mv_mailstore_date_format(int64_t t);
bool mv_mailstore_date_parse(const char *text, int64_t *t_r);

/* Signed exports: a detached signature X.sig is DER ECDSA (P-256) or RSA
 * over the SHA-256 of file X, as `openssl dgst -sha256 -sign` writes it,
 * checked with the export's publickey.pem. */
typedef struct mv_export_pubkey mv_export_pubkey;
/* Reads a PEM public key (at most 64 KiB); P-256 or RSA. */
mv_export_pubkey *mv_export_pubkey_load(const char *path, GError **error);
void mv_export_pubkey_free(mv_export_pubkey **k);
/* SHA-256 (lower-case hex) of the public key's DER (SubjectPublicKeyInfo):
 * what the audit log records and `openssl pkey -pubin -outform DER | sha256sum` gives. */
char *mv_export_pubkey_sha256(const mv_export_pubkey *k);
/* The same for any OpenSSL key (EVP_PKEY): the signer's, on export. */
struct evp_pkey_st;
char *mv_pkey_der_sha256(struct evp_pkey_st *pkey);
/* 0 when sig is a valid signature of the SHA-256 digest; -1 with *error
 * (MV_ERR_CORRUPT) otherwise. */
int mv_export_verify_digest(const mv_export_pubkey *k, const uint8_t digest[32], const uint8_t *sig, size_t sig_len,
                            GError **error);

/* ---- Exchange / Microsoft 365 envelope journal reports (journal_report.c)
 * (mv_ms_journal_: store/'s journal is the content/ walk, another thing.)
 * A journal report is a wrapper: a top-level X-MS-Journal-Report header, a
 * multipart/mixed body whose first part is the envelope (one field per
 * line: Sender, Subject, Message-Id, To/Cc/Bcc/Recipient with an optional
 * ", Expanded: <group>" or ", Forwarded: <address>" annotation) and whose
 * second part is the original message as message/rfc822.  Parsing is pure:
 * no allocation is sized from a length the input claims, and whatever was
 * wrong is a flag, never a failure of the call. */
typedef enum {
	MV_MS_JOURNAL_TO = 0,
	MV_MS_JOURNAL_CC,
	MV_MS_JOURNAL_BCC,
	MV_MS_JOURNAL_RECIPIENT, /* the basic field: the addressing could not be verified */
} mv_ms_journal_kind;

typedef struct mv_ms_journal_recipient {
	char *address;        /* the journaled (delivered-to) address */
	mv_ms_journal_kind kind;
	char *expanded_from;  /* the distribution group it was expanded from, or NULL */
	bool forwarded;       /* delivered here because forwarded_from has an alternate recipient */
	char *forwarded_from; /* the address the message was sent to, when forwarded; else NULL */
} mv_ms_journal_recipient;

/* r->flags: what was wrong (all but the last are errors). */
enum {
	MV_MS_JOURNAL_NOT_MULTIPART = 1 << 0,       /* the body is not multipart, or has no usable boundary */
	MV_MS_JOURNAL_NO_REPORT = 1 << 1,           /* no first part, or neither sender nor recipient in it */
	MV_MS_JOURNAL_REPORT_UNREADABLE = 1 << 2,   /* the first part is not text, or not in a charset read */
	MV_MS_JOURNAL_BAD_LINE = 1 << 3,            /* a report line that is no field, an item without address */
	MV_MS_JOURNAL_TOO_MANY_RECIPIENTS = 1 << 4, /* past MV_MS_JOURNAL_MAX_RECIPIENTS: the rest dropped */
	MV_MS_JOURNAL_NO_ORIGINAL = 1 << 5,         /* no second part, or it is not message/rfc822 */
	MV_MS_JOURNAL_UNTERMINATED = 1 << 6,        /* no closing delimiter: the last part runs to the end */
	MV_MS_JOURNAL_TOO_LARGE = 1 << 7,           /* a header, the report or a line past its bound */
	MV_MS_JOURNAL_ORIGINAL_DECODED = 1 << 8,    /* no error: the original was base64/QP, see original_decoded */
};
#define MV_MS_JOURNAL_ERRORS (~(unsigned)MV_MS_JOURNAL_ORIGINAL_DECODED)
#define MV_MS_JOURNAL_MAX_RECIPIENTS 10000u
#define MV_MS_JOURNAL_MAX_LINE 65536u                  /* a header field unfolded, a report line */
#define MV_MS_JOURNAL_MAX_HEADER (1024u * 1024u)       /* a header block, the wrapper's or a part's */
#define MV_MS_JOURNAL_MAX_REPORT (16u * 1024u * 1024u) /* the report part as it stands */

typedef struct mv_ms_journal_report {
	bool is_journal_report; /* the top-level header names it one; the rest only then */
	unsigned flags;         /* MV_MS_JOURNAL_* */
	char *problem;          /* the first error, in words; NULL when flags has none */
	char *sender, *subject, *message_id, *on_behalf_of; /* UTF-8; NULL when absent */
	mv_ms_journal_recipient *recipients;
	size_t n_recipients;
	/* The original message: the message/rfc822 part's body exactly as it
	 * stands in the input (its line ends, its 8-bit bytes), at
	 * [original_offset, original_offset + original_len) of the input —
	 * unless the part was itself base64/QP encoded: then it is decoded into
	 * original_decoded (owned; original_len its length) and flags has
	 * MV_MS_JOURNAL_ORIGINAL_DECODED.  has_original false: neither. */
	bool has_original;
	size_t original_offset, original_len;
	uint8_t *original_decoded;
} mv_ms_journal_report;

/* Reads data as a journal report into *r (cleared first); returns
 * r->is_journal_report.  Never fails: what was wrong is in r->flags. */
bool mv_ms_journal_report_parse(const uint8_t *data, size_t len, mv_ms_journal_report *r);
/* The original's bytes (inside data, or the decoded copy), NULL when absent. */
const uint8_t *mv_ms_journal_report_original(const mv_ms_journal_report *r, const uint8_t *data, size_t *len_r);
void mv_ms_journal_report_clear(mv_ms_journal_report *r);
const char *mv_ms_journal_kind_name(mv_ms_journal_kind kind);

#endif
