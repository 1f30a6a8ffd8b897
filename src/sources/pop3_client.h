/* sources/pop3_client: the POP3 commands a mailbox source needs (RFC 1939,
 * 2449), over a mail_connection: CAPA, UIDL, LIST, RETR pipelined where
 * the server offers PIPELINING, DELE and QUIT — which is when a POP3
 * server deletes, so deletions count only after QUIT's +OK.
 *
 * The multi-line answers' framing (a line of one dot ends it; a leading
 * dot is doubled) is undone by mv_pop3_unstuff, pure and fuzzed. */
#ifndef MV_SOURCES_POP3_CLIENT_H
#define MV_SOURCES_POP3_CLIENT_H

#include "sources/mail_connection.h"

typedef struct mv_pop3_client mv_pop3_client;

mv_pop3_client *mv_pop3_open(const mv_mail_server *server, GError **error);
/* Without QUIT: deletions marked are not carried out. */
void mv_pop3_close(mv_pop3_client **c);
const char *mv_pop3_peer(const mv_pop3_client *c);
bool mv_pop3_has(const mv_pop3_client *c, const char *capability);

typedef struct mv_pop3_item {
	unsigned number;     /* message number in this session */
	char *uidl;
	uint64_t size;       /* from LIST, 0 when not listed */
} mv_pop3_item;

/* UIDL and LIST joined: every message of the maildrop (mv_pop3_item*). */
GPtrArray *mv_pop3_list(mv_pop3_client *c, GError **error);
void mv_pop3_item_free(mv_pop3_item *item);

/* Called with each message retrieved (its bytes unstuffed, in an array the
 * callee may keep a reference to); -1 with *error stops. */
typedef int (*mv_pop3_message_fn)(void *opaque, unsigned number, GByteArray *message, GError **error);
/* RETR of the numbers given, up to depth in flight with PIPELINING.  A
 * message the server answers -ERR for is told with message NULL. */
int mv_pop3_retrieve(mv_pop3_client *c, const GArray *numbers, size_t max_size, mv_pop3_message_fn fn, void *opaque,
                     GError **error);
/* DELE of each number, then QUIT; the deletions happened only if this
 * returns 0.  The connection is closed after it either way. */
int mv_pop3_delete_and_quit(mv_pop3_client **c, const GArray *numbers, GError **error);

/* One multi-line answer's lines (after the status line) as received, up to
 * and including the terminating ".\r\n", into the message bytes: the
 * terminator dropped, a doubled leading dot undone.  Returns false when
 * the terminator is missing. */
bool mv_pop3_unstuff(const uint8_t *data, size_t len, GByteArray *out);

#endif
