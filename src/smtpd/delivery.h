/* smtpd/delivery: where the SMTP and LMTP sessions hand finished messages
 * in.  One thread owns the archive side — an instance, the one ingest,
 * the routing of addresses to archives — and commits what every session
 * handed in since its last commit as one batch (group commit): a
 * session's 250 waits for its batch's fsync, and many sessions share one.
 * Every call here but the thread's own is safe from any thread. */
#ifndef MV_SMTPD_DELIVERY_H
#define MV_SMTPD_DELIVERY_H

#include "base/base.h"
#include "smtpd/message.h"
#include "sources/routing.h"

typedef struct smtpd_delivery smtpd_delivery;

/* What delivery files where: copied; checked (templates, catchall) when
 * given, naming the [smtp] key at fault. */
typedef struct smtpd_delivery_options {
	const char *folder;
	const char *sent_folder;
	mv_unknown_policy unknown;
	const char *catchall_archive;
	bool journal_reports;
	uint64_t max_queued_bytes;  /* past this, new messages get 452 4.3.1 at once */
	const char *internal_domains; /* "a.org;b.org" or NULL: see smtpd_delivery_refuses_recipient */
	double lock_wait_seconds;   /* a store locked by another task this long: the group gets 451 */
} smtpd_delivery_options;

int smtpd_delivery_check_options(const smtpd_delivery_options *o, GError **error);
smtpd_delivery *smtpd_delivery_start(const char *data_dir, const smtpd_delivery_options *o, GError **error);
/* New options for the messages handed in from now on. */
int smtpd_delivery_configure(smtpd_delivery *d, const smtpd_delivery_options *o, GError **error);
/* Delivers what was handed in, writes the last worker result and stops. */
void smtpd_delivery_stop(smtpd_delivery **d);
/* Hands a message in; its done is called exactly once, later, on the
 * delivery thread (never inside this call). */
void smtpd_delivery_submit(smtpd_delivery *d, smtpd_message *m);
/* RCPT under the reject policy: whether address is refused — one of the
 * internal domains (all domains when none are set) that no user has, as
 * of the last routing refresh, a few seconds at most.  An address outside
 * the internal domains is the other party of outgoing mail (a gateway's
 * copy of alice's mail to bob@elsewhere), filed by its internal sender. */
bool smtpd_delivery_refuses_recipient(smtpd_delivery *d, const char *address);

#endif
