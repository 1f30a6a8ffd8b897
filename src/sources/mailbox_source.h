/* sources/mailbox_source: archiving one mailbox on an IMAP or POP3 server
 * into the archive — what a run of an IMAP or POP3 profile does per
 * mailbox (imap_source.c, pop3_source.c); profile_mailbox.c turns a
 * profile's details into these options, one mailbox or many.
 *
 * Every message goes through the one ingest of the run; the state a next
 * run starts from (archive/mailbox_state.c) and every deletion on the
 * server wait until ingest says the messages are durably archived. */
#ifndef MV_SOURCES_MAILBOX_SOURCE_H
#define MV_SOURCES_MAILBOX_SOURCE_H

#include "ingest/ingest.h"
#include "sources/mail_connection.h"
#include "sources/mailbox_commits.h"
#include "sources/routing.h"

typedef enum {
	MV_DELETE_NEVER = 0,
	MV_DELETE_AFTER_ARCHIVING,
	MV_DELETE_OLDER_THAN,
} mv_delete_rule;

typedef struct mv_mailbox_options {
	mv_mail_server server;
	const char *mailbox;            /* names the mailbox in state, errors and results (the login or the user) */
	int64_t profile_id;             /* 0: a temporary profile, nothing remembered */

	/* Where messages go: one archive (and a folder the mailbox's folders
	 * go below), or routed by address (multidrop). */
	const char *archive;
	const char *target_folder;      /* "" or NULL: the archive's top level */
	const mv_routing *routing;      /* non-NULL: multidrop */
	mv_route_options route;

	/* IMAP folders: NULL-terminated lists matched on the decoded name with
	 * its subfolders, letter case aside; Junk and Trash passed over unless
	 * include_junk_trash. */
	char **include_folders;
	char **exclude_folders;
	bool include_junk_trash;

	/* Filters (-1, 0: off). */
	int older_than_days;            /* only messages older than this */
	int newer_than_days;            /* only messages newer than this */
	uint64_t max_size;              /* bytes */
	bool exclude_unread;

	mv_delete_rule delete_rule;
	int delete_after_days;
	bool delete_by_archive_date;
	bool keep_flagged;
	bool keep_unread;
} mv_mailbox_options;

typedef struct mv_mailbox_counts {
	uint64_t folders;               /* looked at */
	uint64_t fetched;               /* message bodies received */
	uint64_t filtered;              /* passed over by a filter */
	uint64_t left;                  /* multidrop: unknown addresses left in the mailbox */
	uint64_t ignored;               /* multidrop: unknown addresses not archived */
	uint64_t deleted;               /* from the server */
	uint64_t reconnects;
} mv_mailbox_counts;

/* After a session of a mailbox failed with e (NULL: it did not), whether
 * to connect again (mailbox_reconnect.c): for a lost connection or a
 * server gone (MV_ERR_IO; not a refused logon, a refusal or the archive),
 * three times a run, never once cancelled.  When it says yes the run's
 * warnings name the mailbox (scheme://mailbox) and the attempt, counts
 * counts it, and the wait before it (1, 2, 4 s) is over. */
bool mv_mailbox_reconnect(const char *scheme, const char *mailbox, mv_ingest *ing, mv_task *task,
                          mv_mailbox_counts *counts, int attempt, const GError *e);

/* Archives one mailbox.  Warnings (a folder refused, deletion passed over)
 * go to mv_ingest_warn; a failure after retries returns -1 with *error,
 * what was archived before it already flushed and counted. */
int mv_imap_source_run(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                       mv_task *task, mv_mailbox_counts *counts, GError **error);
int mv_pop3_source_run(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                       mv_task *task, mv_mailbox_counts *counts, GError **error);

/* A profile's "Test": connects and logs on, says what it would read (IMAP:
 * the folders and which are passed over; POP3: the messages), and exactly
 * what failed. */
json_t *mv_imap_source_test(const mv_mailbox_options *o, GError **error);
json_t *mv_pop3_source_test(const mv_mailbox_options *o, GError **error);

#endif
