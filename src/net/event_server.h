/* net/event_server: what the libevent servers (imapd/, smtpd/) share — the
 * TLS context of the service certificate, a TCP listener bound from its
 * configured text, a peer's address as text, and the switch of a plain
 * connection to TLS after STARTTLS.  One place for each, so a fix to the
 * TLS policy or the STARTTLS switch reaches both protocols. */
#ifndef MV_NET_EVENT_SERVER_H
#define MV_NET_EVENT_SERVER_H

#include "base/base.h"
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

/* A server context with net/tls.h's policy (TLS 1.2+, its suites and
 * signature algorithms, no compression or renegotiation) and c's
 * certificate and key.  who ("IMAP", "SMTP") opens the error messages,
 * which name the files and OpenSSL's reason. */
SSL_CTX *mv_event_tls_context(const mv_service_config *c, const char *who, GError **error);

/* Listens on "HOST:PORT" (host "*": every address).  what names the
 * server in errors ("the IMAP server"), as mv_listen_bind_error does. */
struct evconnlistener *mv_event_listen(struct event_base *base, evconnlistener_cb cb, void *arg, const char *text,
                                       const char *what, GError **error);

/* "192.0.2.1", "2001:db8::1" (an IPv4-mapped address in its IPv4 form),
 * "local" for a Unix socket, "unknown" when it cannot be printed. */
char *mv_event_peer_text(const struct sockaddr *sa);

/* STARTTLS: a new OpenSSL bufferevent (accepting) on plain's socket,
 * which plain lets go of and is freed.  What the client sent before the
 * handshake was sent in the clear and is thrown away (RFC 3207 4.2,
 * RFC 9051 11.1; CVE-2011-0411's injection).  An OpenSSL bufferevent of
 * its own rather than a filter: a filter's output looks empty while its
 * bytes still wait below it, so a close after the last reply could cut
 * it.  NULL when ssl is NULL or the bufferevent cannot be made: plain is
 * freed then too, with its socket. */
struct bufferevent *mv_event_start_tls(struct event_base *base, struct bufferevent *plain, SSL *ssl);

/* The same strings in the same order (listener lists before and after a
 * reload). */
bool mv_strings_equal(const GPtrArray *a, const GPtrArray *b);

#endif
