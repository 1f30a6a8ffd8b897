/* net/event_server: the pieces the IMAP and SMTP servers' libevent loops
 * share (see event_server.h).  Kept apart from https.c, whose listeners
 * are libmicrohttpd's and do their own TLS. */
#include "net/event_server.h"
#include "net/https.h"
#include "net/tls.h"
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <string.h>

SSL_CTX *mv_event_tls_context(const mv_service_config *c, const char *who, GError **error)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot make a TLS context", who);
		return NULL;
	}
	/* TLS 1.3's suites are AEAD already; 1.2's and the signatures are
	 * narrowed to net/tls.h's policy. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_set_cipher_list(ctx, MV_TLS_OPENSSL_TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set1_sigalgs_list(ctx, MV_TLS_OPENSSL_SIGALGS) != 1) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: OpenSSL refuses the TLS policy of net/tls.h", who);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!c->certificate || SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->private_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		char buf[256];
		ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: certificate %s / key %s: %s", who,
		            c->certificate ? c->certificate : "(none)", c->private_key ? c->private_key : "(none)", buf);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct evconnlistener *mv_event_listen(struct event_base *base, evconnlistener_cb cb, void *arg, const char *text,
                                       const char *what, GError **error)
{
	char *host = NULL;
	int port = 0;
	if (mv_listen_parse(text, &host, &port, error) < 0)
		return NULL;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char portstr[16];
	g_snprintf(portstr, sizeof portstr, "%d", port);
	int gai = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	g_free(host);
	if (gai != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: listen address %s: %s", what, text, gai_strerror(gai));
		return NULL;
	}
	struct evconnlistener *l = evconnlistener_new_bind(
		base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_THREADSAFE | LEV_OPT_CLOSE_ON_EXEC, 128,
		res->ai_addr, (int)res->ai_addrlen);
	int err = errno;
	freeaddrinfo(res);
	if (!l)
		mv_listen_bind_error(error, what, text, err);
	return l;
}

char *mv_event_peer_text(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return g_strdup("local");
	char host[NI_MAXHOST];
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
		return g_strdup("unknown");
	return g_strdup(g_str_has_prefix(host, "::ffff:") ? host + 7 : host);
}

struct bufferevent *mv_event_start_tls(struct event_base *base, struct bufferevent *plain, SSL *ssl)
{
	struct evbuffer *in = bufferevent_get_input(plain);
	evbuffer_drain(in, evbuffer_get_length(in));
	evutil_socket_t fd = bufferevent_getfd(plain);
	struct bufferevent *tls = ssl && fd >= 0 ? bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
	                                         : NULL;
	if (!tls) {
		if (ssl)
			SSL_free(ssl);
		bufferevent_free(plain);
		return NULL;
	}
	/* The plain bufferevent lets go of the socket, which the TLS one owns now. */
	bufferevent_setfd(plain, -1);
	bufferevent_free(plain);
	return tls;
}

bool mv_strings_equal(const GPtrArray *a, const GPtrArray *b)
{
	if (a->len != b->len)
		return false;
	for (guint i = 0; i < a->len; i++)
		if (strcmp(a->pdata[i], b->pdata[i]) != 0)
			return false;
	return true;
}
