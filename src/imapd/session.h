/* imapd/session.h: one connection's IMAP state, as server.c drives it.
 * Every call runs on a worker thread (never two at once for a session)
 * and appends what to send to out; the loop thread sends it. */
#ifndef MV_IMAPD_SESSION_H
#define MV_IMAPD_SESSION_H

#include "imapd/internal.h"

typedef struct imap_session imap_session;

typedef struct imap_session_env {
	const char *data_dir;
	const char *remote;          /* the client's address, for logons and the audit log */
	bool tls;                    /* the connection is encrypted already */
	bool starttls_offered;       /* a plain listener: STARTTLS is possible */
	bool plaintext_logon;        /* logon without TLS allowed (loopback, when configured) */
	mv_logon *logon;
} imap_session_env;

/* What the loop does after a call. */
typedef enum {
	IMAP_STEP_DONE,       /* read the next command */
	IMAP_STEP_MORE,       /* call imap_session_resume once the output has drained */
	IMAP_STEP_LINE,       /* the next line is for imap_session_line (AUTHENTICATE data, IDLE's DONE) */
	IMAP_STEP_STARTTLS,   /* start TLS now, then read the next command */
	IMAP_STEP_CLOSE,      /* send what is there, then close */
} imap_step;

imap_session *imap_session_new(const imap_session_env *env);
void imap_session_free(imap_session *s);
void imap_session_greeting(imap_session *s, GString *out);
/* A whole command in wire form. */
imap_step imap_session_command(imap_session *s, const uint8_t *cmd, size_t len, GString *out);
imap_step imap_session_resume(imap_session *s, GString *out);
/* A line that answers a continuation request (without its line end). */
imap_step imap_session_line(imap_session *s, const char *line, size_t len, GString *out);
/* While in IDLE: tells the client about new and removed messages. */
imap_step imap_session_poll(imap_session *s, GString *out);
bool imap_session_idling(const imap_session *s);
/* Logged on: its commands no longer go through the logon guard. */
bool imap_session_authenticated(const imap_session *s);
/* The handshake after STARTTLS finished. */
void imap_session_tls_started(imap_session *s);
/* The connection ends (logout, timeout, shutdown): audit the logoff. */
void imap_session_end(imap_session *s);

#endif
