/* sources/imap_client: the IMAP commands a mailbox source needs, over a
 * mail_connection: capabilities, LIST with special-use flags, STATUS and
 * SELECT/EXAMINE with UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ, UID SEARCH, UID
 * FETCH pipelined over many commands in flight, and deletion by UID.
 *
 * Responses are read whole (literals inline) into an array of their own,
 * handed to the caller's handler and parsed by imap_response.c; a handler
 * may keep a reference to the array (a message literal goes into ingest
 * without a copy). */
#ifndef MV_SOURCES_IMAP_CLIENT_H
#define MV_SOURCES_IMAP_CLIENT_H

#include "sources/imap_response.h"
#include "sources/mail_connection.h"

typedef struct mv_imap_client mv_imap_client;

/* Connects, logs on, reads the capabilities after logon, ENABLEs
 * CONDSTORE where offered.  max_literal bounds every literal received
 * (a message larger than it fails the read, naming it). */
mv_imap_client *mv_imap_open(const mv_mail_server *server, size_t max_literal, GError **error);
/* LOGOUT (best effort) and close. */
void mv_imap_close(mv_imap_client **c);
const char *mv_imap_peer(const mv_imap_client *c);
bool mv_imap_has(const mv_imap_client *c, const char *capability);

/* Called for each untagged response of a command; raw is the response's
 * bytes (g_byte_array_ref it to keep it).  Returns 0, or -1 with *error
 * set to stop the command. */
typedef int (*mv_imap_untagged_fn)(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error);

/* Runs one command to its tagged answer.  OK is 0; NO or BAD fail with
 * MV_ERR_STATE naming the command (its first word or two) and the
 * server's text. */
int mv_imap_command(mv_imap_client *c, const char *text, mv_imap_untagged_fn fn, void *opaque, GError **error);
/* Runs commands with up to depth of them in flight (depth 1 when the
 * server cannot pipeline).  Each command's NO fails the run like
 * mv_imap_command. */
int mv_imap_pipeline(mv_imap_client *c, GPtrArray *commands, guint depth, mv_imap_untagged_fn fn, void *opaque,
                     GError **error);

/* A mailbox name as the server wants it in a command: quoted, or as a
 * literal when it holds bytes a quoted string cannot carry. */
void mv_imap_append_mailbox(GString *command, const char *name);

/* ---- what the commands return -------------------------------------------------------------- */

typedef struct mv_imap_folder {
	char *wire;          /* the name as the server gave it (for commands) */
	char *name;          /* decoded (modified UTF-7 or UTF-8), levels separated by '/' */
	char delimiter;      /* 0: flat */
	bool noselect;
	bool junk, trash;    /* special use (RFC 6154), or a common name */
	bool sent, drafts;
} mv_imap_folder;

/* LIST "" "*": every folder, special-use flags asked for where the server
 * has them.  Array of mv_imap_folder*. */
GPtrArray *mv_imap_list(mv_imap_client *c, GError **error);
void mv_imap_folder_free(mv_imap_folder *f);

typedef struct mv_imap_status {
	uint64_t uidvalidity;
	uint64_t uidnext;        /* 0: the server did not say */
	uint64_t messages;
	uint64_t highestmodseq;  /* 0: no CONDSTORE */
} mv_imap_status;

/* SELECT (read_write) or EXAMINE. */
int mv_imap_select(mv_imap_client *c, const mv_imap_folder *f, bool read_write, mv_imap_status *st, GError **error);
/* STATUS of many folders in one pipeline; st[i] for folders->pdata[i];
 * a folder the server refuses STATUS for gets uidvalidity 0. */
int mv_imap_status_many(mv_imap_client *c, GPtrArray *folders, mv_imap_status *st, GError **error);
/* UID SEARCH criteria (in the selected folder): the UIDs, ascending. */
GArray *mv_imap_uid_search(mv_imap_client *c, const char *criteria, GError **error);

/* Deletes UIDs of the selected folder (read-write): STORE \Deleted, then
 * UID EXPUNGE (UIDPLUS).  Without UIDPLUS only when no other message of
 * the folder is \Deleted (else nothing is expunged and *refused_r says
 * so).  Returns the number deleted or -1. */
int64_t mv_imap_delete_uids(mv_imap_client *c, const GArray *uids, char **refused_r, GError **error);

/* "1:3,7,9:12" for ascending UIDs; at most max_items UIDs from *from on
 * (advanced past them). */
char *mv_imap_uid_set(const GArray *uids, guint *from, guint max_items);

#endif
