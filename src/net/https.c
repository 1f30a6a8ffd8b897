/* net/https: a set of HTTPS listeners (libmicrohttpd) for one server.
 *
 * Thread-per-connection mode: a handler may block its connection (a
 * get-status long-poll, the delay after a failed logon) without holding up
 * any other, and each connection thread keeps its own mv_instance.  Bodies
 * are collected here up to the server's bound, so a handler sees a whole
 * request or a "too large" flag, never a partial one.
 *
 * Reloading (SIGHUP, SetServiceCertificate) starts new listeners on the
 * very sockets of the old ones (MHD_quiesce_daemon hands them over), so no
 * connection is refused while the certificate changes; the old listeners
 * finish their requests and are stopped by a reaper thread.
 *
 * The listening sockets are bound here rather than by libmicrohttpd, so a
 * failure says why (address in use, not local, privileged port) instead of
 * one vague "cannot start"; the certificate and key are checked (OpenSSL)
 * before any listener starts, so their errors name the file and the reason.
 *
 * Stopping: MHD_stop_daemon shuts down the socket of every connection at
 * once, answered or not, so requests are counted from their headers to
 * libmicrohttpd's "completed" notice, and a stop first waits (bounded) until
 * none is in flight. */
#include "net/https.h"

#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CERT_MAX_BYTES (1024 * 1024)
/* A retired listener is stopped at the latest this long after its
 * replacement started: longer than any request may take. */
#define RETIRE_GRACE_SECONDS 210.0
/* At a stop, requests in flight get this long to finish before their
 * connections are closed: below systemd's default stop timeout (90 s). */
#define STOP_GRACE_SECONDS 60

/* A listener replaced by a reload: it accepts nothing more and is stopped
 * once its last connection ended (or past the deadline, when a client
 * keeps a connection busy for longer than any request may take). */
typedef struct retired_daemon {
	struct MHD_Daemon *daemon;
	double deadline;
} retired_daemon;

struct mv_https {
	GMutex lock;                 /* guards retired and stopping */
	GCond wake;
	char *what;
	size_t max_body;
	mv_https_handler handler;
	void *cls;
	GPtrArray *listen;           /* char*: the addresses the daemons listen on */
	char *certificate, *private_key; /* what they use: a failed reload goes back to it */
	GPtrArray *daemons;          /* struct MHD_Daemon*; main thread only */
	GPtrArray *retired;          /* retired_daemon* */
	GThread *reaper;
	bool stopping;
	bool quiesced;               /* main thread only */
	/* Not h->lock: libmicrohttpd calls back into these while the reaper
	 * stops a listener under h->lock. */
	GMutex flight_lock;
	GCond flight_done;
	unsigned in_flight;          /* requests between their headers and their end */
	GMutex log_lock;
	char *last_log;              /* libmicrohttpd's last message, for a failed start */
};

typedef struct request {
	GByteArray *body;
	bool too_large;
} request;

/* ---- the per-thread instance ------------------------------------------------ */

static void close_thread_instance(gpointer p)
{
	mv_instance *inst = p;
	mv_instance_close(&inst);
}

static GPrivate thread_instance = G_PRIVATE_INIT(close_thread_instance);

mv_instance *mv_https_thread_instance(const char *data_dir, GError **error)
{
	mv_instance *inst = g_private_get(&thread_instance);
	if (inst)
		return inst;
	inst = mv_instance_open(data_dir, error);
	if (inst)
		g_private_set(&thread_instance, inst);
	return inst;
}

char *mv_https_remote_address(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[NI_MAXHOST];
	if (!ci || !ci->client_addr)
		return g_strdup("unknown");
	socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
		return g_strdup("unknown");
	const char *h = g_str_has_prefix(host, "::ffff:") ? host + 7 : host;
	return g_strdup(h);
}

/* ---- requests ------------------------------------------------------------------ */

/* How the request says where its body ends.  libmicrohttpd takes the
 * first of several Content-Length fields, and chunked over a
 * Content-Length: a proxy in front may have read the other one, and the
 * bytes it took for the next request would be this one's body (request
 * smuggling).  RFC 9112 §6.3 makes both an error. */
typedef struct framing {
	unsigned content_lengths;
	bool transfer_encoding;
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	framing *f = cls;
	if (g_ascii_strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_lengths++;
	else if (g_ascii_strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		f->transfer_encoding = true;
	return MHD_YES;
}

static const char *framing_fault(struct MHD_Connection *conn)
{
	framing f = { 0, false };
	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
	if (f.content_lengths > 1)
		return "more than one Content-Length header";
	if (f.content_lengths && f.transfer_encoding)
		return "both Content-Length and Transfer-Encoding";
	return NULL;
}

/* 400 and the connection closed: after a framing fault nothing on it can
 * be trusted to start where it seems to. */
static enum MHD_Result refuse_framing(struct MHD_Connection *conn, const char *fault)
{
	char *text = g_strdup_printf("bad request: %s (RFC 9112 section 6.3)\n", fault);
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	g_free(text);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_BAD_REQUEST, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	mv_https *h = cls;
	request *rq = *con_cls;
	if (!rq) {
		*con_cls = g_new0(request, 1);
		g_mutex_lock(&h->flight_lock);
		h->in_flight++;
		g_mutex_unlock(&h->flight_lock);
		const char *fault = framing_fault(conn);
		return fault ? refuse_framing(conn, fault) : MHD_YES;
	}
	if (*upload_data_size) {
		if (!rq->too_large && (rq->body ? rq->body->len : 0) + *upload_data_size > h->max_body) {
			rq->too_large = true;
			if (rq->body)
				g_byte_array_set_size(rq->body, 0);
		}
		if (!rq->too_large) {
			if (!rq->body)
				rq->body = g_byte_array_new();
			g_byte_array_append(rq->body, (const guint8 *)upload_data, (guint)*upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return h->handler(h->cls, conn, url, method, rq->too_large ? NULL : rq->body, rq->too_large);
}

/* Called once per request that reached on_request, however it ended
 * (answered, client gone, listener stopped). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	mv_https *h = cls;
	request *rq = *con_cls;
	if (!rq)
		return;
	if (rq->body)
		g_byte_array_unref(rq->body);
	g_free(rq);
	*con_cls = NULL;
	g_mutex_lock(&h->flight_lock);
	if (h->in_flight > 0 && --h->in_flight == 0)
		g_cond_broadcast(&h->flight_done);
	g_mutex_unlock(&h->flight_lock);
}

/* libmicrohttpd's own unescaping would turn "%00" into the end of the C
 * string, so "/assets/index.html%00.js" would be read as
 * "/assets/index.html".  This one decodes like it but leaves "%00" as it
 * is: a path or value with a NUL in it then simply matches nothing. */
static int hex_digit(char c)
{
	return g_ascii_isxdigit(c) ? g_ascii_xdigit_value(c) : -1;
}

static size_t unescape_keeping_nul(void *cls, struct MHD_Connection *conn, char *s)
{
	char *out = s;
	for (const char *p = s; *p; p++) {
		int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
		if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
			*out++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*out++ = *p;
		}
	}
	*out = 0;
	return (size_t)(out - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	mv_https *h = cls;
	char *text = g_strchomp(g_strdup_vprintf(fmt, ap));
	mv_log_debug("http: %s", text);
	g_mutex_lock(&h->log_lock);
	g_free(h->last_log);
	h->last_log = text;
	g_mutex_unlock(&h->log_lock);
}

/* What libmicrohttpd said last (a failed start leaves its reason there). */
static char *last_log(mv_https *h)
{
	g_mutex_lock(&h->log_lock);
	char *text = g_strdup(h->last_log ? h->last_log : "libmicrohttpd gave no reason");
	g_mutex_unlock(&h->log_lock);
	return text;
}

/* ---- listeners ------------------------------------------------------------- */

typedef struct tls_material {
	char *cert_pem, *key_pem;
} tls_material;

static void tls_material_clear(tls_material *t)
{
	g_free(t->cert_pem);
	if (t->key_pem) {
		sodium_memzero(t->key_pem, strlen(t->key_pem));
		g_free(t->key_pem);
	}
	t->cert_pem = t->key_pem = NULL;
}

static int tls_material_load(const mv_https_options *o, tls_material *t, GError **error)
{
	GByteArray *cert = NULL, *key = NULL;
	if (!o->certificate || !o->private_key) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: no certificate and private key are configured ([tls])",
		            o->what);
		return -1;
	}
	/* OpenSSL names the file and the reason; GnuTLS inside
	 * libmicrohttpd would only make the start fail. */
	GError *bad = NULL;
	if (mv_tls_check_pair(o->certificate, o->private_key, &bad) < 0) {
		g_set_error(error, MV_ERROR, bad->code, "%s cannot use its certificate: %s", o->what, bad->message);
		g_error_free(bad);
		return -1;
	}
	if (mv_read_file(o->certificate, CERT_MAX_BYTES, &cert, error) < 0 ||
	    mv_read_file(o->private_key, CERT_MAX_BYTES, &key, error) < 0) {
		if (cert)
			g_byte_array_unref(cert);
		return -1;
	}
	t->cert_pem = g_strndup((const char *)cert->data, cert->len);
	t->key_pem = g_strndup((const char *)key->data, key->len);
	sodium_memzero(key->data, key->len);
	g_byte_array_unref(cert);
	g_byte_array_unref(key);
	return 0;
}

static int resolve_listen(const char *text, struct sockaddr_storage *addr, socklen_t *len_r, int *port_r,
                          GError **error)
{
	char *host = NULL;
	if (mv_listen_parse(text, &host, port_r, error) < 0)
		return -1;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char port[16];
	g_snprintf(port, sizeof port, "%d", *port_r);
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
	if (rc != 0 || !res) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "listen address '%s': %s", text, gai_strerror(rc));
		g_free(host);
		return -1;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len_r = res->ai_addrlen;
	freeaddrinfo(res);
	g_free(host);
	return 0;
}

void mv_listen_bind_error(GError **error, const char *what, const char *address, int err)
{
	switch (err) {
	case EADDRINUSE:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s cannot listen: address %s is in use by another process", what,
		            address);
		break;
	case EADDRNOTAVAIL:
		g_set_error(error, MV_ERROR, MV_ERR_IO,
		            "%s cannot listen on %s: that is not an address of this machine (use one of its own "
		            "addresses, or *:PORT for all)", what, address);
		break;
	case EACCES:
		g_set_error(error, MV_ERROR, MV_ERR_IO,
		            "%s cannot listen on %s: permission denied (a port below 1024 is privileged: it needs root "
		            "or the CAP_NET_BIND_SERVICE capability)", what, address);
		break;
	default:
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s cannot listen on %s: %s", what, address, g_strerror(err));
	}
}

static int listen_socket(int fd)
{
	return listen(fd, SOMAXCONN);
}

/* A listening socket of our own, so that a failure has its errno. */
static int open_listener(const char *what, const char *listen, const struct sockaddr_storage *addr, socklen_t len,
                         GError **error)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s cannot make a socket for %s: %s", what, listen,
		            g_strerror(errno));
		return -1;
	}
	int one = 1;
	/* As libmicrohttpd does: a restart need not wait for TIME_WAIT, and an
	 * IPv6 address means IPv6 only. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (addr->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: socket options for %s: %s", what, listen, g_strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)addr, len) < 0 || listen_socket(fd) < 0) {
		int err = errno;
		close(fd);
		mv_listen_bind_error(error, what, listen, err);
		return -1;
	}
	return fd;
}

/* fd: a listening socket handed over by a quiesced listener (it stays the
 * caller's), or -1 to bind afresh. */
static struct MHD_Daemon *start_daemon(mv_https *h, const mv_https_options *o, const char *listen,
                                       const tls_material *t, int fd, GError **error)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int port;
	if (resolve_listen(listen, &addr, &len, &port, error) < 0)
		return NULL;
	int own = fd >= 0 ? fd : open_listener(o->what, listen, &addr, len, error);
	if (own < 0)
		return NULL;
	/* libmicrohttpd closes the socket it is given when it fails to start:
	 * it gets a duplicate, so the one held here stays valid (a failed
	 * reload starts the previous listeners on it again). */
	int given = fcntl(own, F_DUPFD_CLOEXEC, 0);
	if (given < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot duplicate the socket of %s: %s", o->what, listen,
		            g_strerror(errno));
		if (fd < 0)
			close(own);
		return NULL;
	}
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ITC |
	                 MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, t->key_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)MV_TLS_GNUTLS_PRIORITY },
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_seconds, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h },
		{ MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_keeping_nul, NULL },
		{ MHD_OPTION_LISTEN_SOCKET, given, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_ARRAY,
	                                        opts, MHD_OPTION_END);
	if (!d) {
		/* The socket and the certificate were fine: what is left is
		 * libmicrohttpd's own reason (threads, GnuTLS, memory). */
		char *why = last_log(h);
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s cannot start on %s with the certificate %s: %s", o->what,
		            listen, o->certificate, why);
		g_free(why);
	}
	if (fd < 0)
		close(own);  /* the listener holds the duplicate */
	return d;
}

/* fds: listening sockets handed over by quiesced daemons (stored +1, so
 * that 0 means none), or NULL to bind afresh. */
static int start_all(mv_https *h, const mv_https_options *o, const tls_material *t, GPtrArray *fds, GPtrArray *out,
                     GError **error)
{
	for (guint i = 0; i < o->listen->len; i++) {
		int fd = fds && i < fds->len ? GPOINTER_TO_INT(g_ptr_array_index(fds, i)) - 1 : -1;
		struct MHD_Daemon *d = start_daemon(h, o, g_ptr_array_index(o->listen, i), t, fd, error);
		if (!d)
			return -1;
		g_ptr_array_add(out, d);
	}
	return 0;
}

static void stop_daemons(GPtrArray *daemons)
{
	for (guint i = 0; i < daemons->len; i++)
		MHD_stop_daemon(g_ptr_array_index(daemons, i));
	g_ptr_array_unref(daemons);
}

static unsigned connections_of(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info ? info->num_connections : 0;
}

/* Stops retired listeners whose connections have all ended.  Caller holds
 * the lock; MHD_stop_daemon does not call back into us when no connection
 * is left, so holding it is safe. */
static void reap_locked(mv_https *h, bool all)
{
	double now = mv_monotonic();
	for (guint i = 0; i < h->retired->len;) {
		retired_daemon *r = g_ptr_array_index(h->retired, i);
		if (!all && connections_of(r->daemon) > 0 && now < r->deadline) {
			i++;
			continue;
		}
		if (all)
			g_mutex_unlock(&h->lock); /* its connections may need locks of the server to finish */
		MHD_stop_daemon(r->daemon);
		if (all)
			g_mutex_lock(&h->lock);
		g_ptr_array_remove_index(h->retired, i);
		g_free(r);
	}
}

static gpointer reaper(gpointer p)
{
	mv_https *h = p;
	g_mutex_lock(&h->lock);
	while (!h->stopping) {
		reap_locked(h, false);
		g_cond_wait_until(&h->wake, &h->lock, g_get_monotonic_time() + G_TIME_SPAN_SECOND / 4);
	}
	g_mutex_unlock(&h->lock);
	return NULL;
}

static void retire(mv_https *h, GPtrArray *daemons)
{
	g_mutex_lock(&h->lock);
	for (guint i = 0; i < daemons->len; i++) {
		retired_daemon *r = g_new0(retired_daemon, 1);
		r->daemon = g_ptr_array_index(daemons, i);
		r->deadline = mv_monotonic() + RETIRE_GRACE_SECONDS;
		g_ptr_array_add(h->retired, r);
	}
	g_mutex_unlock(&h->lock);
	g_ptr_array_unref(daemons);
}

static GPtrArray *copy_listen(GPtrArray *listen)
{
	GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < listen->len; i++)
		g_ptr_array_add(a, g_strdup(g_ptr_array_index(listen, i)));
	return a;
}

static bool same_listen(GPtrArray *a, GPtrArray *b)
{
	if (a->len != b->len)
		return false;
	for (guint i = 0; i < a->len; i++)
		if (strcmp(g_ptr_array_index(a, i), g_ptr_array_index(b, i)) != 0)
			return false;
	return true;
}

mv_https *mv_https_start(const mv_https_options *o, GError **error)
{
	mv_https *h = g_new0(mv_https, 1);
	g_mutex_init(&h->lock);
	g_cond_init(&h->wake);
	h->what = g_strdup(o->what);
	h->max_body = o->max_body;
	h->handler = o->handler;
	h->cls = o->cls;
	h->listen = copy_listen(o->listen);
	h->certificate = g_strdup(o->certificate);
	h->private_key = g_strdup(o->private_key);
	h->daemons = g_ptr_array_new();
	h->retired = g_ptr_array_new();
	g_mutex_init(&h->flight_lock);
	g_cond_init(&h->flight_done);
	g_mutex_init(&h->log_lock);
	h->reaper = g_thread_try_new("mv-reaper", reaper, h, error);
	if (!h->reaper) {
		mv_https_stop(&h);
		return NULL;
	}
	tls_material t = { 0 };
	int rc = tls_material_load(o, &t, error);
	if (rc == 0)
		rc = start_all(h, o, &t, NULL, h->daemons, error);
	tls_material_clear(&t);
	if (rc < 0)
		mv_https_stop(&h);
	return h;
}

int mv_https_reload(mv_https *h, const mv_https_options *o, GError **error)
{
	tls_material t = { 0 };
	if (tls_material_load(o, &t, error) < 0)
		return -1;
	bool keep_sockets = same_listen(o->listen, h->listen);
	GPtrArray *old = h->daemons, *fds = g_ptr_array_new(), *fresh = g_ptr_array_new();
	if (keep_sockets)
		for (guint i = 0; i < old->len; i++)
			g_ptr_array_add(fds, GINT_TO_POINTER(MHD_quiesce_daemon(g_ptr_array_index(old, i)) + 1));
	else
		stop_daemons(g_ptr_array_ref(old));
	int rc = start_all(h, o, &t, keep_sockets ? fds : NULL, fresh, error);
	if (rc < 0) {
		/* Back to the previous addresses and certificate: with sockets
		 * handed over those listeners are gone, so start them again. */
		stop_daemons(fresh);
		fresh = g_ptr_array_new();
		mv_https_options previous = *o;
		previous.listen = h->listen;
		previous.certificate = h->certificate;
		previous.private_key = h->private_key;
		tls_material old_t = { 0 };
		GError *again = NULL;
		if (tls_material_load(&previous, &old_t, &again) < 0 ||
		    start_all(h, &previous, &old_t, keep_sockets ? fds : NULL, fresh, &again) < 0) {
			mv_log_error("%s cannot listen again: %s", h->what, again->message);
			g_error_free(again);
		}
		tls_material_clear(&old_t);
	} else {
		g_ptr_array_unref(h->listen);
		h->listen = copy_listen(o->listen);
		g_free(h->certificate);
		g_free(h->private_key);
		h->certificate = g_strdup(o->certificate);
		h->private_key = g_strdup(o->private_key);
	}
	h->daemons = fresh;
	if (keep_sockets)
		retire(h, old);
	else
		g_ptr_array_unref(old);
	/* The new listeners hold duplicates of the handed-over sockets. */
	for (guint i = 0; i < fds->len; i++)
		if (GPOINTER_TO_INT(g_ptr_array_index(fds, i)) - 1 >= 0)
			close(GPOINTER_TO_INT(g_ptr_array_index(fds, i)) - 1);
	g_ptr_array_unref(fds);
	tls_material_clear(&t);
	return rc;
}

void mv_https_quiesce(mv_https *h)
{
	if (!h || h->quiesced)
		return;
	h->quiesced = true;
	for (guint i = 0; i < h->daemons->len; i++) {
		MHD_socket fd = MHD_quiesce_daemon(g_ptr_array_index(h->daemons, i));
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

/* Waits until no request is in flight, at most STOP_GRACE_SECONDS. */
static void drain(mv_https *h)
{
	gint64 deadline = g_get_monotonic_time() + STOP_GRACE_SECONDS * G_TIME_SPAN_SECOND;
	g_mutex_lock(&h->flight_lock);
	while (h->in_flight > 0)
		if (!g_cond_wait_until(&h->flight_done, &h->flight_lock, deadline))
			break;
	unsigned left = h->in_flight;
	g_mutex_unlock(&h->flight_lock);
	if (left > 0)
		mv_log_warn("%s: %u request%s still unanswered after %d s; closing %s", h->what, left,
		            left == 1 ? "" : "s", STOP_GRACE_SECONDS, left == 1 ? "its connection" : "their connections");
}

void mv_https_stop(mv_https **hp)
{
	mv_https *h = *hp;
	if (!h)
		return;
	*hp = NULL;
	mv_https_quiesce(h);
	g_mutex_lock(&h->lock);
	h->stopping = true;
	g_cond_broadcast(&h->wake);
	g_mutex_unlock(&h->lock);
	if (h->reaper)
		g_thread_join(h->reaper);
	/* Retired listeners' requests too: they are counted alike. */
	drain(h);
	g_mutex_lock(&h->lock);
	reap_locked(h, true);
	g_mutex_unlock(&h->lock);
	g_ptr_array_unref(h->retired);
	stop_daemons(h->daemons);
	g_ptr_array_unref(h->listen);
	g_free(h->certificate);
	g_free(h->private_key);
	g_free(h->what);
	g_free(h->last_log);
	g_cond_clear(&h->flight_done);
	g_mutex_clear(&h->flight_lock);
	g_mutex_clear(&h->log_lock);
	g_cond_clear(&h->wake);
	g_mutex_clear(&h->lock);
	g_free(h);
}
