/* sources/routing: which users' archives, and which folder in each, a
 * message belongs in, by its addresses — the one routing of multidrop
 * mailboxes (IMAP/POP3) and of the SMTP journal endpoint.
 *
 * A user is known by any of their email addresses (case-insensitive; the
 * first address of their list is the primary one, {u-email}).  A message's
 * recipients are its envelope: the SMTP envelope when the caller has one;
 * when it has none or it names no known user (an always_bcc copy is
 * addressed to the archive), the envelope-like headers (Delivered-To,
 * X-Original-To, Envelope-To, X-Envelope-To, the "for <addr>" of
 * Received); only when none of those names a known user do To, Cc and Bcc
 * count.  From (and the
 * caller's MAIL FROM) always counts, as the sender.  Each known user gets one target: their archive (the user
 * name) and the folder template filled in — with {h-email} the address as
 * the message named it, {u-email} the user's primary address; a user who is
 * only the sender gets the sent template.  A message no known user's
 * address names follows the unknown-address policy. */
#ifndef MV_SOURCES_ROUTING_H
#define MV_SOURCES_ROUTING_H

#include "archive/archive.h"

typedef enum {
	MV_UNKNOWN_CATCHALL = 0,  /* into catchall_archive, folder template with {u-email} = {h-email} */
	MV_UNKNOWN_IGNORE,        /* not archived; a multidrop mailbox may delete it */
	MV_UNKNOWN_LEAVE,         /* not archived and left in the mailbox */
	MV_UNKNOWN_REJECT,        /* SMTP: refused at RCPT time */
} mv_unknown_policy;

/* "catchall", "ignore", "leave", "reject"; false for anything else. */
bool mv_unknown_policy_from_name(const char *name, mv_unknown_policy *policy_r);

/* The users known by address: built once per run from the instance's
 * users (each with at least one email address), or from a list (tests);
 * only read afterwards, so threads may route with one at once. */
typedef struct mv_routing mv_routing;

typedef struct mv_routing_user {
	const char *name;              /* the user, whose archive this is */
	const char *const *emails;     /* NULL-terminated; emails[0] is the primary */
} mv_routing_user;

mv_routing *mv_routing_load(mv_instance *inst, GError **error);
mv_routing *mv_routing_new(const mv_routing_user *users, size_t n);
void mv_routing_free(mv_routing *r);
/* How many users have an address (0: every message is unknown). */
size_t mv_routing_user_count(const mv_routing *r);
/* The user an address belongs to (case-insensitive, surrounding <> and
 * space ignored), or NULL; the name stays valid as long as r. */
const char *mv_routing_user_of(const mv_routing *r, const char *address);

typedef struct mv_route_options {
	const char *folder;            /* recipients' folder template, e.g. "Inbox" or "Multidrop/{h-email}" */
	const char *sent_folder;       /* a sender's; NULL: folder */
	mv_unknown_policy unknown;
	const char *catchall_archive;  /* MV_UNKNOWN_CATCHALL */
} mv_route_options;

typedef struct mv_route_target {
	char *archive;
	char *folder;                  /* the template filled in; '/' separates levels */
	char *address;                 /* the address it was chosen by, as the message named it */
	bool as_sender;
} mv_route_target;

typedef struct mv_route {
	GPtrArray *targets;            /* mv_route_target*, one per archive, in first-seen order */
	bool unknown;                  /* no known user: the policy decided (targets: the catchall's, or none) */
	GPtrArray *unknown_addresses;  /* char*: the addresses no user has (at most 100) */
} mv_route;

void mv_route_clear(mv_route *route);

/* Routes one message.  envelope: the SMTP envelope's recipients
 * (NULL-terminated) or NULL; sender: its MAIL FROM or NULL.  Only the
 * header block of data is read (bounded: a header block past 1 MiB is read
 * to 1 MiB).  Fails only on bad options (a template that is not a folder
 * name or holds an unknown {placeholder}, catchall without an archive),
 * naming them.  *route is set afresh (its old content is not freed; on
 * failure it is left empty), and freed by mv_route_clear. */
int mv_route_message(const mv_routing *r, const mv_route_options *o, const char *const *envelope, const char *sender,
                     const uint8_t *data, size_t len, mv_route *route, GError **error);

#endif
