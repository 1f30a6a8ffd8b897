/* sources/mailbox_commits: which messages a mailbox source handed to
 * ingest are durably archived — ingest's committed callback counted per
 * message, so that the source deletes on the server, and moves its state
 * on, only for what is in the archive.
 *
 * One per run (ingest takes one callback); a source points it at the
 * slots of the folder it is reading, one slot per message it may hand in,
 * after the previous folder's messages were flushed. */
#ifndef MV_SOURCES_MAILBOX_COMMITS_H
#define MV_SOURCES_MAILBOX_COMMITS_H

#include "ingest/ingest.h"

typedef struct mv_mailbox_commits mv_mailbox_commits;

/* Sets ing's committed callback: call before the first mv_ingest_add. */
mv_mailbox_commits *mv_mailbox_commits_attach(mv_ingest *ing);
void mv_mailbox_commits_free(mv_mailbox_commits *mc);
/* n slots, all 0; the token of slot i is i + 1.  Only after a flush. */
void mv_mailbox_commits_reset(mv_mailbox_commits *mc, size_t n);
/* Commits counted for slot i (a message routed to k archives counts k). */
unsigned mv_mailbox_commits_of(mv_mailbox_commits *mc, size_t i);

#endif
