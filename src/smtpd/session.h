/* smtpd/session: one SMTP or LMTP conversation, without its socket.
 *
 * The server feeds it the bytes a client sent; it answers into a string
 * and says what the server must do next: read on, start TLS, check a
 * logon on a worker, wait for a delivery, or close.  Everything it does
 * itself is quick and never blocks, so it runs on the event loop's
 * thread; what may block (a password check, the archive's fsync) comes
 * back through smtp_session_auth_checked and smtp_session_delivered.
 * Kept apart from the server so the protocol's rules read in one place. */
#ifndef MV_SMTPD_SESSION_H
#define MV_SMTPD_SESSION_H

#include "smtpd/message.h"
#include "smtpd/protocol.h"

typedef struct smtp_session smtp_session;

typedef struct smtp_session_env {
	bool lmtp;
	bool tls;                   /* the connection is TLS already */
	bool starttls_available;    /* a certificate is there to start TLS with */
	bool allowed;               /* the client's network may hand in mail without AUTH */
	bool auth;                  /* AUTH offered (after TLS) */
	bool require_tls;
	uint64_t max_message_bytes;
	unsigned max_recipients;
	const char *remote;         /* the client's address (copied) */
	const char *server_name;    /* for the greeting (copied) */
	/* RCPT's unknown-address policy: true refuses the address (550 5.1.1).
	 * A function, not the delivery itself, so the session links without
	 * the archive side; NULL: every address is taken (tests). */
	bool (*recipient_refused)(void *opaque, const char *address);
	void *recipient_opaque;
} smtp_session_env;

typedef enum {
	SMTP_READ,       /* read on */
	SMTP_STARTTLS,   /* once the reply has left, start TLS, then smtp_session_tls_started */
	SMTP_AUTH,       /* check smtp_session_auth_pending on a worker, then smtp_session_auth_checked */
	SMTP_DELIVER,    /* hand smtp_session_take_message to delivery; smtp_session_delivered with its answer */
	SMTP_CLOSE,      /* close once the reply has left */
} smtp_step;

smtp_session *smtp_session_new(const smtp_session_env *env);
void smtp_session_free(smtp_session *s);
void smtp_session_greeting(smtp_session *s, GString *out);
/* Consumes client bytes: *used_r of them were taken (all, unless the step
 * is not SMTP_READ: the rest waits until the step is done).  Replies are
 * appended to out. */
smtp_step smtp_session_input(smtp_session *s, const uint8_t *data, size_t len, size_t *used_r, GString *out);
void smtp_session_tls_started(smtp_session *s);

/* The logon to check (SMTP_AUTH): the name and password, valid until
 * smtp_session_auth_checked. */
void smtp_session_auth_pending(smtp_session *s, const char **name_r, const char **password_r);
/* ok: the user may hand in mail (user: their name, for the log). */
void smtp_session_auth_checked(smtp_session *s, bool ok, bool unavailable, const char *user, GString *out);

/* The message of SMTP_DELIVER, owned by the caller from now on. */
smtpd_message *smtp_session_take_message(smtp_session *s);
/* Its answer: one reply, or LMTP's one per recipient. */
void smtp_session_delivered(smtp_session *s, const smtpd_message *m, GString *out);

/* Refusals since the last call that count against the client's address
 * (malformed commands, commands out of order, failed logons). */
unsigned smtp_session_take_bad_commands(smtp_session *s);
/* Why the session refused the client's mail, once per kind, for the
 * audit log: one refusal per call, oldest first, NULL when nothing new
 * (call until NULL; the strings are constants). */
const char *smtp_session_take_refusal(smtp_session *s);
const char *smtp_session_user(const smtp_session *s);

#endif
