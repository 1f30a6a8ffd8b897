/* sources/mail_connection: a logged-in IMAP or POP3 connection over
 * libcurl's CONNECT_ONLY.
 *
 * curl runs the greeting, TLS (implicit or STARTTLS, required when asked
 * for), the certificate checks and the logon; what follows is ours, over
 * curl_easy_send/recv.  Reads go through one buffer with a read offset that
 * is compacted only when half of it is consumed, so reading a 30 MB literal
 * costs a copy of it, not a memmove per packet; an exact read larger than
 * what is buffered is received straight into the caller's array.
 *
 * curl's error codes are turned into the question the user asks (is it
 * DNS, TCP, the certificate, STARTTLS, the password?) with curl's own
 * detail from CURLOPT_ERRORBUFFER (e.g. "SSL certificate problem:
 * self-signed certificate"). */
#include "sources/mail_connection.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#define RECV_CHUNK (256u * 1024u)

struct mv_mail_connection {
	CURL *curl;
	curl_socket_t sock;
	char *peer;
	int timeout_ms;
	uint8_t *buf;
	size_t start, end, cap;    /* unread bytes are buf[start..end) */
	char errbuf[CURL_ERROR_SIZE];
};

static const struct {
	const char *name;
	mv_mail_protocol protocol;
	mv_mail_tls tls;
} protocol_names[] = {
	{ "IMAP", MV_MAIL_IMAP, MV_MAIL_TLS_NONE },     { "IMAP-TLS", MV_MAIL_IMAP, MV_MAIL_TLS_STARTTLS },
	{ "IMAP-SSL", MV_MAIL_IMAP, MV_MAIL_TLS_IMPLICIT }, { "POP3", MV_MAIL_POP3, MV_MAIL_TLS_NONE },
	{ "POP3-TLS", MV_MAIL_POP3, MV_MAIL_TLS_STARTTLS }, { "POP3-SSL", MV_MAIL_POP3, MV_MAIL_TLS_IMPLICIT },
};

bool mv_mail_protocol_from_name(const char *name, mv_mail_protocol *protocol_r, mv_mail_tls *tls_r)
{
	for (size_t i = 0; i < G_N_ELEMENTS(protocol_names); i++) {
		if (strcmp(protocol_names[i].name, name) == 0) {
			*protocol_r = protocol_names[i].protocol;
			*tls_r = protocol_names[i].tls;
			return true;
		}
	}
	return false;
}

const char *mv_mail_peer(const mv_mail_connection *conn)
{
	return conn->peer;
}

/* ---- connecting ------------------------------------------------------------------------ */

static const char *scheme_of(const mv_mail_server *s)
{
	bool implicit = s->tls == MV_MAIL_TLS_IMPLICIT;
	if (s->protocol == MV_MAIL_IMAP)
		return implicit ? "imaps" : "imap";
	return implicit ? "pop3s" : "pop3";
}

static int default_port(const mv_mail_server *s)
{
	bool implicit = s->tls == MV_MAIL_TLS_IMPLICIT;
	if (s->protocol == MV_MAIL_IMAP)
		return implicit ? 993 : 143;
	return implicit ? 995 : 110;
}

/* "host", "host:port", "[v6]", "[v6]:port" → the URL curl is given and
 * "host:port" for messages; false for anything else. */
static bool split_host(const mv_mail_server *s, char **url_r, char **peer_r)
{
	const char *h = s->host;
	char *name = NULL;
	const char *port_text = NULL;
	if (h[0] == '[') {
		const char *close = strchr(h, ']');
		if (!close || close == h + 1 || (close[1] && close[1] != ':'))
			return false;
		name = g_strndup(h, (gsize)(close - h + 1));
		port_text = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(h, ':');
		if (colon && strchr(colon + 1, ':'))
			return false;   /* a bare IPv6 address: give it in brackets */
		name = colon ? g_strndup(h, (gsize)(colon - h)) : g_strdup(h);
		port_text = colon ? colon + 1 : NULL;
	}
	guint64 port = (guint64)default_port(s);
	bool ok = *name && strspn(name, "[]") != strlen(name) && !strpbrk(name, "/?#@ \t\r\n");
	if (ok && port_text)
		ok = g_ascii_string_to_unsigned(port_text, 10, 1, 65535, &port, NULL);
	if (!ok) {
		g_free(name);
		return false;
	}
	*url_r = g_strdup_printf("%s://%s:%u/", scheme_of(s), name, (unsigned)port);
	*peer_r = g_strdup_printf("%s:%u", name, (unsigned)port);
	g_free(name);
	return true;
}

static CURLcode set_options(mv_mail_connection *c, const mv_mail_server *s, const char *url)
{
	long timeout = s->timeout_seconds > 0 ? s->timeout_seconds : 60;
	CURLcode rc = curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_USERNAME, s->user);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_PASSWORD, s->password ? s->password : "");
	if (rc == CURLE_OK && s->authzid) {
		rc = curl_easy_setopt(c->curl, CURLOPT_SASL_AUTHZID, s->authzid);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(c->curl, CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN");
	}
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_USE_SSL,
		                      s->tls == MV_MAIL_TLS_NONE ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
	if (rc == CURLE_OK && s->ca_file && *s->ca_file)
		rc = curl_easy_setopt(c->curl, CURLOPT_CAINFO, s->ca_file);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, s->verify_certificate ? 1L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, s->verify_certificate ? 2L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, timeout);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
	return rc;
}

/* curl's failure as what the user asks: which step, and why. */
static void connect_error(const mv_mail_connection *c, const mv_mail_server *s, CURLcode rc, GError **error)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	const char *proto = s->protocol == MV_MAIL_IMAP ? "IMAP" : "POP3";
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: DNS: the host name does not resolve (%s)", proto,
		            c->peer, detail);
		return;
	case CURLE_COULDNT_CONNECT:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: TCP: cannot connect (%s)", proto, c->peer, detail);
		return;
	case CURLE_OPERATION_TIMEDOUT:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: no answer within %d seconds (%s)", proto, c->peer,
		            s->timeout_seconds, detail);
		return;
	case CURLE_PEER_FAILED_VERIFICATION:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: TLS: the server's certificate is not trusted: %s "
		            "(give its CA in caFile, or set ignoreSSLPolicyErrors \"1\" to accept any certificate)", proto,
		            c->peer, detail);
		return;
	case CURLE_SSL_CONNECT_ERROR:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: TLS: the handshake failed: %s", proto, c->peer, detail);
		return;
	case CURLE_USE_SSL_FAILED:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: the server does not offer %s, which protocol %s-TLS "
		            "requires (use %s-SSL for implicit TLS)", proto, c->peer,
		            s->protocol == MV_MAIL_IMAP ? "STARTTLS" : "STLS", proto, proto);
		return;
	case CURLE_LOGIN_DENIED:
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "%s server %s: login refused for user '%s'%s%s (%s)", proto,
		            c->peer, s->user, s->authzid ? " acting as " : "", s->authzid ? s->authzid : "", detail);
		return;
	default:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s server %s: %s", proto, c->peer, detail);
	}
}

mv_mail_connection *mv_mail_connect(const mv_mail_server *s, GError **error)
{
	char *url = NULL, *peer = NULL;
	if (!split_host(s, &url, &peer)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "host '%s' is not HOST or HOST:PORT (an IPv6 address in [])",
		            s->host);
		return NULL;
	}
	mv_mail_connection *c = g_new0(mv_mail_connection, 1);
	c->peer = peer;
	c->timeout_ms = (s->timeout_seconds > 0 ? s->timeout_seconds : 60) * 1000;
	c->curl = curl_easy_init();
	CURLcode rc = c->curl ? set_options(c, s, url) : CURLE_OUT_OF_MEMORY;
	g_free(url);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		connect_error(c, s, rc, error);
		mv_mail_close(&c);
		return NULL;
	}
	if (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &c->sock) != CURLE_OK || c->sock == CURL_SOCKET_BAD) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "server %s: the connection closed after logon", c->peer);
		mv_mail_close(&c);
		return NULL;
	}
	return c;
}

void mv_mail_close(mv_mail_connection **conn)
{
	mv_mail_connection *c = *conn;
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	g_free(c->buf);
	g_free(c->peer);
	g_free(c);
	*conn = NULL;
}

/* ---- bytes ---------------------------------------------------------------------------------- */

static int wait_socket(mv_mail_connection *c, short events, GError **error)
{
	struct pollfd p = { .fd = c->sock, .events = events };
	int rc;
	do {
		rc = poll(&p, 1, c->timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc > 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_IO, "server %s: %s", c->peer,
	            rc == 0 ? "no answer within the timeout" : g_strerror(errno));
	return -1;
}

int mv_mail_send(mv_mail_connection *c, const void *data, size_t len, GError **error)
{
	const uint8_t *p = data;
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(c->curl, p, len, &n);
		if (rc == CURLE_AGAIN) {
			if (wait_socket(c, POLLOUT, error) < 0)
				return -1;
			continue;
		}
		if (rc != CURLE_OK) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "server %s: cannot send: %s", c->peer, curl_easy_strerror(rc));
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Receives at most cap bytes into dst; 0 or -1. */
static int recv_into(mv_mail_connection *c, uint8_t *dst, size_t cap, size_t *got_r, GError **error)
{
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(c->curl, dst, cap, &n);
		if (rc == CURLE_AGAIN) {
			if (wait_socket(c, POLLIN, error) < 0)
				return -1;
			continue;
		}
		if (rc != CURLE_OK || n == 0) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "server %s: %s", c->peer,
			            rc == CURLE_OK ? "the server closed the connection" : curl_easy_strerror(rc));
			return -1;
		}
		*got_r = n;
		return 0;
	}
}

/* More bytes into the buffer. */
static int fill(mv_mail_connection *c, GError **error)
{
	if (c->start > 0 && (c->start == c->end || c->start >= c->cap / 2)) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->cap - c->end < RECV_CHUNK / 4) {
		c->cap = c->cap ? c->cap * 2 : RECV_CHUNK;
		c->buf = g_realloc(c->buf, c->cap);
	}
	size_t got = 0;
	if (recv_into(c, c->buf + c->end, c->cap - c->end, &got, error) < 0)
		return -1;
	c->end += got;
	return 0;
}

bool mv_mail_buffered(const mv_mail_connection *c)
{
	return c->end > c->start;
}

int mv_mail_read_line(mv_mail_connection *c, GByteArray *out, size_t max_line, GError **error)
{
	size_t scanned = 0;
	for (;;) {
		size_t avail = c->end - c->start;
		const uint8_t *nl = avail > scanned ? memchr(c->buf + c->start + scanned, '\n', avail - scanned) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->start)) + 1;
			if (n > max_line)
				break;
			g_byte_array_append(out, c->buf + c->start, (guint)n);
			c->start += n;
			return 0;
		}
		scanned = avail;
		if (avail > max_line)
			break;
		if (fill(c, error) < 0)
			return -1;
	}
	g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "server %s: a response line longer than %zu bytes", c->peer, max_line);
	return -1;
}

int mv_mail_read_exact(mv_mail_connection *c, size_t n, GByteArray *out, GError **error)
{
	size_t have = MIN(n, c->end - c->start);
	g_byte_array_append(out, c->buf + c->start, (guint)have);
	c->start += have;
	n -= have;
	if (n == 0)
		return 0;
	/* Straight into out: the literal is not copied through the buffer. */
	size_t base = out->len, at = base;
	g_byte_array_set_size(out, (guint)(at + n));
	while (n > 0) {
		size_t got = 0;
		if (recv_into(c, out->data + at, n, &got, error) < 0) {
			g_byte_array_set_size(out, (guint)base);
			return -1;
		}
		at += got;
		n -= got;
	}
	return 0;
}
