/* imapd/internal.h: what the IMAP server's files share.
 *
 *   server.c   the loop thread: listeners, TLS, reading commands (lines and
 *              literals), writing answers, timeouts; commands run on a pool
 *   session*.c one connection's IMAP state and its command handlers
 *              (session_internal.h: logon, mailbox, fetch, search files)
 *   protocol.c a command's bytes -> tag, name and an argument tree (pure)
 *   mailbox.c  the mailbox tree a user sees, a mailbox's messages and UIDs
 *   search.c   SEARCH keys -> sets of messages, text through the FTS index
 *   message*.c a message's MIME structure for FETCH (message.h;
 *              message_internal.h: scan, ctype, envelope, body, section)
 * Mailbox names are in modified UTF-7: mime/mutf7.c, shared with export/. */
#ifndef MV_IMAPD_INTERNAL_H
#define MV_IMAPD_INTERNAL_H

#include "imapd/imapd.h"
#include "archive/archive.h"
#include "imapd/message.h"
#include "mime/mime.h"
#include "search/search.h"
#include <stdbool.h>
#include <stdint.h>

/* ---- bounds ---------------------------------------------------------------- */
#define IMAP_MAX_LINE (64 * 1024)          /* one line of a command */
#define IMAP_MAX_COMMAND (1024 * 1024)     /* a whole command, literals included */
#define IMAP_MAX_ARG_DEPTH 16              /* parenthesised lists inside lists */
#define IMAP_MAX_ARGS 100000               /* tokens in one command */
#define IMAP_OUTPUT_HIGH (1024 * 1024)     /* a FETCH pauses when this much waits to be sent */
#define IMAP_OUTPUT_LOW (256 * 1024)       /* ... and goes on below this */

/* ---- protocol.c: parsing a command ---------------------------------------- */

typedef enum {
	IMAP_ARG_ATOM,     /* atom, number, sequence set, fetch att with its [section]<partial> */
	IMAP_ARG_STRING,   /* quoted string or literal: str holds the bytes (may hold NUL when literal) */
	IMAP_ARG_LIST,     /* ( ... ) */
	IMAP_ARG_NIL,
} imap_arg_type;

typedef struct imap_arg {
	imap_arg_type type;
	char *str;           /* ATOM, STRING: NUL-terminated copy */
	size_t len;
	bool literal;
	GPtrArray *list;     /* LIST: imap_arg* */
} imap_arg;

typedef struct imap_command {
	char *tag;
	char *name;          /* upper case; "UID FETCH" etc. for UID commands */
	GPtrArray *args;     /* imap_arg* */
} imap_command;

/* Parses a whole command in wire form (lines end in CRLF or LF; a literal
 * is "{n}" or "{n+}" at a line's end followed by n bytes).  On failure
 * returns NULL, *error_r says why and *tag_r is the tag when one could be
 * read (so the answer can be "tag BAD ..."; else "*"). */
imap_command *imap_command_parse(const uint8_t *buf, size_t len, char **tag_r, const char **error_r);
void imap_command_free(imap_command *c);

/* Argument helpers: NULL/false when the argument is missing or of the wrong kind. */
const char *imap_arg_astring(const imap_command *c, guint i);     /* atom or string */
const imap_arg *imap_arg_at(const imap_command *c, guint i);
bool imap_arg_is_atom(const imap_arg *a, const char *upper);

/* A sequence set ("1:3,7,9:*") with '*' = max.  Ranges are normalised
 * (low <= high) and clipped to max; returned as pairs in *ranges_r. */
typedef struct imap_range { uint32_t lo, hi; } imap_range;
bool imap_seqset_parse(const char *text, uint32_t max, GArray **ranges_r);
bool imap_seqset_contains(const GArray *ranges, uint32_t v);

/* A line that ends in a literal announcement: its size and whether it is
 * non-synchronising ("{n+}").  false when the line ends otherwise. */
bool imap_line_literal(const char *line, size_t len, uint64_t *size_r, bool *plus_r);

/* Appends an IMAP string: quoted when it can be, else a literal. */
void imap_append_string(GString *out, const char *s, size_t len, bool utf8);
/* Appends an astring/NIL for a possibly NULL value. */
void imap_append_nstring(GString *out, const char *s);

/* ---- mailbox.c ---------------------------------------------------------- */

/* One folder (archive, path) that a mailbox shows. */
typedef struct imap_source {
	char *archive, *path;
} imap_source;

typedef enum {
	IMAP_MBOX_NOSELECT = 1 << 0,       /* a parent that is no folder (or an archive's root) */
	IMAP_MBOX_CHILDREN = 1 << 1,
	IMAP_MBOX_SENT = 1 << 2,
	IMAP_MBOX_TRASH = 1 << 3,
	IMAP_MBOX_DRAFTS = 1 << 4,
	IMAP_MBOX_JUNK = 1 << 5,
} imap_mbox_flags;

typedef struct imap_mailbox {
	char *name;          /* UTF-8, "/" separated: "INBOX", "Sent Items", "Other Users/john/Inbox" */
	unsigned flags;
	GPtrArray *sources;  /* imap_source*; empty for NOSELECT */
} imap_mailbox;
void imap_mailbox_free(imap_mailbox *m);

#define IMAP_OTHER_USERS "Other Users"
#define IMAP_SEPARATOR '/'

/* The tree the user sees, sorted by name (imap_mailbox*). */
GPtrArray *imap_mailbox_tree(mv_instance *inst, const mv_access *access, const char *user, GError **error);
/* The mailbox called name (UTF-8, INBOX case-insensitive) in tree, or NULL. */
imap_mailbox *imap_mailbox_find(GPtrArray *tree, const char *name);

/* One message of a selected mailbox. */
typedef struct imap_msg {
	uint32_t uid;
	int32_t store_id;
	uint32_t number;      /* below 2^25 in every store */
	uint32_t size;        /* messages are at most 512 MiB */
	int64_t date;         /* INTERNALDATE and SENT*: the message's date (Date header, else Received) */
	uint32_t flags;       /* MV_MAIL_FLAG_* */
} imap_msg;

/* A mailbox's messages in UID order and its UIDVALIDITY. */
typedef struct imap_view {
	uint32_t uidvalidity;
	uint32_t uidnext;
	GArray *msgs;           /* imap_msg, ascending uid */
	GArray *ranks;          /* int pairs (store id, rank): a message's UID from its store and number */
} imap_view;
void imap_view_free(imap_view *v);
/* Reads the mailbox's messages from every readable store.  UID of a message
 * = (its store's rank in the mailbox << 25) | its number; see mailbox.c. */
int imap_view_load(mv_instance *inst, const imap_mailbox *mb, imap_view **view_r, GError **error);
/* Index of a message in v by store and number, or -1. */
gssize imap_view_find(const imap_view *v, int store_id, int64_t number);
/* Index of the message with uid, or -1. */
gssize imap_view_find_uid(const imap_view *v, uint32_t uid);
/* Counts for STATUS without keeping the view. */
int imap_mailbox_status(mv_instance *inst, const imap_mailbox *mb, uint32_t *messages_r, uint32_t *unseen_r,
                        uint32_t *uidnext_r, uint32_t *uidvalidity_r, GError **error);
/* The exact bytes of a message. */
int imap_msg_read(mv_instance *inst, const imap_msg *m, GByteArray **raw_r, GError **error);

/* ---- search.c ----------------------------------------------------------- */
/* Evaluates SEARCH keys (args from index first) over view v; *result_r is a
 * bit per message of v (1 = matches).  uid = the command was UID SEARCH
 * (does not change the keys' meaning).  Text keys go through the full-text
 * index restricted to the mailbox's archives; HEADER of a field the index
 * does not hold reads messages, at most IMAP_SEARCH_MAX_READS.  *modseq_r:
 * a MODSEQ key was used (CONDSTORE: a message's MODSEQ is its UID).
 * *coverage_r: what the text keys could not see (search.h), which the
 * tagged OK's text then says. */
#define IMAP_SEARCH_MAX_READS 20000
int imap_search(mv_instance *inst, const mv_access *access, const imap_mailbox *mb, imap_view *v, const imap_command *c,
                guint first, GArray **result_r, bool *modseq_r, mv_search_coverage *coverage_r, const char **bad_r,
                GError **error);

#endif
