/* smtpd/message: a message a session hands to delivery, and its answer.
 * Apart from delivery.h so the session (and its unit test and fuzz
 * target) can hand one over without linking the archive side. */
#ifndef MV_SMTPD_MESSAGE_H
#define MV_SMTPD_MESSAGE_H

#include <glib.h>
#include <stdbool.h>

/* A message handed in, and the answer it gets.  The session fills the
 * first part and keeps nothing of it until done is called (on the
 * delivery thread): then code, enhanced and text are the reply. */
typedef struct smtpd_message {
	GByteArray *data;           /* the message as received (a reference is taken) */
	char *sender;               /* MAIL FROM's address, NULL for <> */
	GPtrArray *recipients;      /* char*: RCPT TO addresses */
	char *remote;               /* the client's address, for errors and logs */
	bool journal_trusted;       /* its journal report may be believed (a client allowed or logged on) */
	/* The answer. */
	unsigned code;
	const char *enhanced;
	char *text;
	/* Set by the delivery thread. */
	char *origin;               /* "SMTP <queue id>" */
	gint committed;             /* targets durably in their archive */
	guint targets;
	void (*done)(struct smtpd_message *m, void *opaque);
	void *opaque;
} smtpd_message;

void smtpd_message_free(smtpd_message *m);

#endif
