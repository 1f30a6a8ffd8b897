/* sources/mail_connection: a logged-in connection to an IMAP or POP3
 * server, as a byte stream with buffered reads of lines and of exact
 * counts — what the IMAP and POP3 clients speak their commands over.
 *
 * libcurl does the connection and the logon (CURLOPT_CONNECT_ONLY): name
 * resolution, TCP, implicit TLS or STARTTLS, certificate checks against the
 * system store or a CA file, and the logon — LOGIN/USER-PASS or SASL, and
 * SASL PLAIN with an authorisation identity.  What fails is said exactly:
 * the name, the TCP connection, TLS with the certificate's problem, a
 * server without STARTTLS when TLS is required, or the logon. */
#ifndef MV_SOURCES_MAIL_CONNECTION_H
#define MV_SOURCES_MAIL_CONNECTION_H

#include "base/base.h"

typedef enum {
	MV_MAIL_IMAP = 0,
	MV_MAIL_POP3,
} mv_mail_protocol;

typedef enum {
	MV_MAIL_TLS_NONE = 0,   /* plain text (IMAP, POP3) */
	MV_MAIL_TLS_STARTTLS,   /* IMAP-TLS, POP3-TLS: STARTTLS/STLS required */
	MV_MAIL_TLS_IMPLICIT,   /* IMAP-SSL, POP3-SSL */
} mv_mail_tls;

/* "IMAP", "IMAP-TLS", "IMAP-SSL", "POP3", "POP3-TLS", "POP3-SSL". */
bool mv_mail_protocol_from_name(const char *name, mv_mail_protocol *protocol_r, mv_mail_tls *tls_r);

typedef struct mv_mail_server {
	mv_mail_protocol protocol;
	mv_mail_tls tls;
	const char *host;            /* "host" or "host:port" ("[v6]:port") */
	const char *user;            /* the login (for a master user "mailbox*master") */
	const char *password;
	const char *authzid;         /* SASL PLAIN authorisation identity, or NULL */
	bool verify_certificate;
	const char *ca_file;         /* PEM CA certificates, or NULL for the system store */
	int timeout_seconds;         /* connecting, logging on, and each wait for the server */
} mv_mail_server;

typedef struct mv_mail_connection mv_mail_connection;

/* Connects and logs on.  Errors (MV_ERR_AUTH for a refused logon, else
 * MV_ERR_IO) name the server and what failed. */
mv_mail_connection *mv_mail_connect(const mv_mail_server *server, GError **error);
void mv_mail_close(mv_mail_connection **conn);
/* "host:port" as errors name it. */
const char *mv_mail_peer(const mv_mail_connection *conn);

int mv_mail_send(mv_mail_connection *conn, const void *data, size_t len, GError **error);
/* One line, its CRLF (or LF) kept, appended to out; a line longer than
 * max_line fails with MV_ERR_LIMIT. */
int mv_mail_read_line(mv_mail_connection *conn, GByteArray *out, size_t max_line, GError **error);
/* Exactly n bytes appended to out (the caller checked n against its bounds). */
int mv_mail_read_exact(mv_mail_connection *conn, size_t n, GByteArray *out, GError **error);
/* Whether a read would not wait (a reply already buffered). */
bool mv_mail_buffered(const mv_mail_connection *conn);

#endif
