/* net/https: a set of HTTPS listeners (libmicrohttpd) for one server.
 *
 * Thread-per-connection mode: a handler may block its connection (a
 * get-status long-poll, the delay after a failed logon) without holding up
 * any other, and each connection thread keeps its own mv_instance.  Bodies
 * are collected here up to the server's bound, so a handler sees a whole
 * request or a refusal, never a partial one.
 *
 * Before any of a body is read the server's admission hook sees the
 * headers: a caller it cannot identify may send a few KB (a logon form)
 * or is answered at once, so memory is never spent on the bodies of
 * strangers.  Bodies held at once are bounded for the whole process too
 * (a budget: 503 past it, known from Content-Length before the body, or
 * counted as a chunked one arrives).
 *
 * Time: libmicrohttpd's timeout is an idle one, restarted by every byte,
 * so a client sending a byte now and then would hold its connection for
 * ever (slowloris).  Each connection is therefore tracked from its accept
 * (MHD_OPTION_NOTIFY_CONNECTION) with a deadline for its phase — the TLS
 * handshake and the first request's headers, the next request's headers
 * on a kept-alive connection, a body at a minimum rate — and the reaper
 * shuts down the socket of one past it (libmicrohttpd then closes the
 * connection as if the client had; the socket stays open until the
 * "closed" notice, which takes the same lock, so it is never another
 * connection's).  One address (an IPv6 one by its /64) may hold a quarter
 * of the connections; the rest stay for everybody else.
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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
/* From accept until the first request's headers are complete, TLS
 * handshake included: a browser or script needs well under a second, a
 * slow mobile link a few. */
#define HEADER_SECONDS 20.0
/* A body may take this long plus its size at MIN_BODY_RATE. */
#define BODY_GRACE_SECONDS 20.0
#define MIN_BODY_RATE (64.0 * 1024.0) /* bytes per second: 32 MiB in under 9 minutes */

/* A listener replaced by a reload: it accepts nothing more and is stopped
 * once its last connection ended (or past the deadline, when a client
 * keeps a connection busy for longer than any request may take). */
typedef struct retired_daemon {
	struct MHD_Daemon *daemon;
	double deadline;
} retired_daemon;

/* Where a connection is: waiting for a request's headers (the TLS
 * handshake first), receiving a body, or with the server (the handler at
 * work, the answer being sent: no deadline of ours). */
typedef enum { CONN_AWAITING_HEADERS, CONN_RECEIVING_BODY, CONN_ANSWERING } conn_phase;

/* One accepted connection, from libmicrohttpd's "started" notice to its
 * "closed" one (its socket context). */
typedef struct conn_entry {
	GList link;                  /* in mv_https.conns */
	int fd;
	char *address;               /* what the per-address limit counts it under; NULL: not counted */
	conn_phase phase;
	double deadline;             /* monotonic seconds, for the first two phases */
	bool cut;                    /* its socket was shut down */
} conn_entry;

struct mv_https {
	GMutex lock;                 /* guards retired and stopping */
	GCond wake;
	char *what;
	size_t max_body;
	mv_https_admit admit;
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
	/* The connections of every listener of this server, retired ones
	 * too.  Taken inside h->lock, never the other way round. */
	GMutex conn_lock;
	GQueue conns;                /* conn_entry*, by their links */
	GHashTable *per_address;     /* address -> connections (GUINT_TO_POINTER) */
	unsigned per_address_limit;  /* these three follow reloads */
	unsigned idle_seconds;
	GMutex log_lock;
	char *last_log;              /* libmicrohttpd's last message, for a failed start */
};

typedef struct request {
	GByteArray *body;
	size_t limit;                /* the bytes its body may have */
	size_t reserved;             /* the bytes of the process's budget it holds */
	bool answered;               /* a response went out before the body */
	void *state;                 /* what the admission kept */
	GDestroyNotify free_state;
	conn_entry *conn;            /* NULL if libmicrohttpd gave none */
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

/* ---- connections: deadlines and the per-address limit ------------------------- */

/* One address may hold a quarter of the connections, so that at least
 * four are needed to fill the server: a script's parallel clients or the
 * users behind one NAT get far more than a browser's six, and three
 * quarters stay for everybody else.  max_connections raises both. */
static unsigned per_address_limit(int64_t max_connections)
{
	return (unsigned)MAX(1, MIN(max_connections, (int64_t)G_MAXUINT) / 4);
}

/* What the per-address limit counts a client under, as the logon guard
 * does; NULL when the address is not known. */
static char *address_key(struct MHD_Connection *conn)
{
	char *remote = mv_https_remote_address(conn);
	char *key = strcmp(remote, "unknown") != 0 ? mv_client_address_key(remote) : NULL;
	g_free(remote);
	return key;
}

/* Shuts the connection's socket down: libmicrohttpd's thread sees the end
 * of its input and closes the connection.  The socket is still open (the
 * "closed" notice, which takes conn_lock, comes before libmicrohttpd
 * closes it).  Caller holds conn_lock. */
static void cut_locked(mv_https *h, conn_entry *e, const char *why)
{
	if (e->cut)
		return;
	e->cut = true;
	if (e->fd >= 0 && shutdown(e->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		mv_log_warn("%s: cannot close a connection of %s: %s", h->what, e->address ? e->address : "unknown",
		            g_strerror(errno));
	mv_log_debug("%s: closed a connection of %s: %s", h->what, e->address ? e->address : "unknown", why);
}

static void count_address_locked(mv_https *h, conn_entry *e)
{
	unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(h->per_address, e->address)) + 1;
	g_hash_table_replace(h->per_address, g_strdup(e->address), GUINT_TO_POINTER(n));
	if (n > h->per_address_limit)
		cut_locked(h, e, "too many connections from that address");
}

static void uncount_address_locked(mv_https *h, conn_entry *e)
{
	unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(h->per_address, e->address));
	if (n <= 1)
		g_hash_table_remove(h->per_address, e->address);
	else
		g_hash_table_replace(h->per_address, g_strdup(e->address), GUINT_TO_POINTER(n - 1));
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	mv_https *h = cls;
	conn_entry *e = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!e)
			return;
		g_mutex_lock(&h->conn_lock);
		g_queue_unlink(&h->conns, &e->link);
		if (e->address)
			uncount_address_locked(h, e);
		g_mutex_unlock(&h->conn_lock);
		g_free(e->address);
		g_free(e);
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	e = g_new0(conn_entry, 1);
	e->link.data = e;
	e->fd = ci ? ci->connect_fd : -1;
	e->address = address_key(conn);
	e->phase = CONN_AWAITING_HEADERS;
	e->deadline = mv_monotonic() + HEADER_SECONDS;
	g_mutex_lock(&h->conn_lock);
	g_queue_push_tail_link(&h->conns, &e->link);
	if (e->address)
		count_address_locked(h, e);
	g_mutex_unlock(&h->conn_lock);
	*socket_context = e;
}

static conn_entry *conn_entry_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* seconds: from now until the deadline of the new phase (ignored for
 * CONN_ANSWERING); negative: the kept-alive wait, the idle timeout. */
static void set_phase(mv_https *h, conn_entry *e, conn_phase phase, double seconds)
{
	if (!e)
		return;
	g_mutex_lock(&h->conn_lock);
	e->phase = phase;
	e->deadline = mv_monotonic() + (seconds >= 0 ? seconds : h->idle_seconds);
	g_mutex_unlock(&h->conn_lock);
}

/* The reaper's round: connections past their phase's deadline. */
static void sweep_connections(mv_https *h)
{
	double now = mv_monotonic();
	g_mutex_lock(&h->conn_lock);
	for (GList *l = h->conns.head; l; l = l->next) {
		conn_entry *e = l->data;
		if (e->cut || e->phase == CONN_ANSWERING || now < e->deadline)
			continue;
		cut_locked(h, e, e->phase == CONN_RECEIVING_BODY ? "its request body came too slowly"
		                                                 : "no complete request headers in time");
	}
	g_mutex_unlock(&h->conn_lock);
}

/* ---- the process's budget of buffered bodies --------------------------------- */

static GMutex budget_lock;
static size_t budget_used;

static bool budget_take(size_t n)
{
	g_mutex_lock(&budget_lock);
	bool ok = n <= MV_HTTPS_BODY_BUDGET_BYTES - budget_used;
	if (ok)
		budget_used += n;
	g_mutex_unlock(&budget_lock);
	return ok;
}

static void budget_give(size_t n)
{
	g_mutex_lock(&budget_lock);
	budget_used -= MIN(n, budget_used);
	g_mutex_unlock(&budget_lock);
}

/* What a GByteArray holding n bytes has allocated: it grows by doubling. */
static size_t capacity_for(size_t n)
{
	size_t c = 4096;
	while (c < n && c <= G_MAXSIZE / 2)
		c *= 2;
	return c;
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

/* The request's Content-Length, -1 when it has none (chunked, or no
 * body).  libmicrohttpd refused a malformed one before calling us. */
static int64_t content_length(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	guint64 n = 0;
	if (!v || !g_ascii_string_to_unsigned(v, 10, 0, G_MAXINT64, &n, NULL))
		return -1;
	return (int64_t)n;
}

/* The handler's answer before any of the body is read: libmicrohttpd
 * then reads none of it and closes the connection after the answer. */
static enum MHD_Result refuse_body(mv_https *h, request *rq, struct MHD_Connection *conn, const char *url,
                                   const char *method, mv_https_body why)
{
	rq->answered = true;
	set_phase(h, rq->conn, CONN_ANSWERING, 0);
	return h->handler(h->cls, conn, url, method, NULL, why, rq->state);
}

/* The first call, when the headers are complete: framing, the server's
 * admission, then the body's bound and budget from Content-Length. */
static enum MHD_Result begin_request(mv_https *h, struct MHD_Connection *conn, const char *url, const char *method,
                                     void **con_cls)
{
	request *rq = g_new0(request, 1);
	*con_cls = rq;
	g_mutex_lock(&h->flight_lock);
	h->in_flight++;
	g_mutex_unlock(&h->flight_lock);
	/* The admission may wait for the logon guard: no deadline meanwhile. */
	rq->conn = conn_entry_of(conn);
	set_phase(h, rq->conn, CONN_ANSWERING, 0);
	const char *fault = framing_fault(conn);
	if (fault) {
		rq->answered = true;
		return refuse_framing(conn, fault);
	}
	mv_https_admission a = { .max_body = h->max_body };
	if (h->admit)
		h->admit(h->cls, conn, url, method, &a);
	rq->state = a.state;
	rq->free_state = a.free_state;
	if (a.answered) {
		rq->answered = true;
		return a.rc;
	}
	rq->limit = MIN(a.max_body, h->max_body);
	int64_t length = content_length(conn);
	if (length > (int64_t)rq->limit)
		return refuse_body(h, rq, conn, url, method, MV_HTTPS_BODY_TOO_LARGE);
	if (length > 0) {
		if (!budget_take((size_t)length))
			return refuse_body(h, rq, conn, url, method, MV_HTTPS_BODY_BUSY);
		rq->reserved = (size_t)length;
		rq->body = g_byte_array_sized_new((guint)length);
	}
	size_t expected = length >= 0 ? (size_t)length : rq->limit;
	set_phase(h, rq->conn, CONN_RECEIVING_BODY, BODY_GRACE_SECONDS + (double)expected / MIN_BODY_RATE);
	return MHD_YES;
}

/* A piece of the body.  Past the bound or the budget (a chunked body: a
 * Content-Length was checked before) the connection is closed: an answer
 * cannot be queued in the middle of a body, and reading on to its end
 * would be what the bound is there to prevent. */
static enum MHD_Result take_body(mv_https *h, request *rq, const char *data, size_t *size)
{
	size_t have = rq->body ? rq->body->len : 0, n = *size;
	if (n > rq->limit - have) {
		mv_log_debug("%s: a chunked request body passed its bound of %zu bytes: connection closed", h->what,
		             rq->limit);
		return MHD_NO;
	}
	if (have + n > rq->reserved) {
		size_t more = capacity_for(have + n) - rq->reserved;
		if (!budget_take(more)) {
			mv_log_debug("%s: the request bodies in memory reached their budget: connection closed", h->what);
			return MHD_NO;
		}
		rq->reserved += more;
	}
	if (!rq->body)
		rq->body = g_byte_array_new();
	g_byte_array_append(rq->body, (const guint8 *)data, (guint)n);
	*size = 0;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	mv_https *h = cls;
	request *rq = *con_cls;
	if (!rq)
		return begin_request(h, conn, url, method, con_cls);
	if (rq->answered) {
		/* libmicrohttpd does not call again once answered; were it to,
		 * nothing more is read. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size)
		return take_body(h, rq, upload_data, upload_data_size);
	set_phase(h, rq->conn, CONN_ANSWERING, 0);
	return h->handler(h->cls, conn, url, method, rq->body, MV_HTTPS_BODY_OK, rq->state);
}

/* Called once per request that reached on_request, however it ended
 * (answered, client gone, listener stopped).  A kept-alive connection
 * then has the idle timeout, counted from now and not restarted by its
 * bytes, to bring the next request's headers. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	mv_https *h = cls;
	request *rq = *con_cls;
	if (!rq)
		return;
	set_phase(h, rq->conn, CONN_AWAITING_HEADERS, -1);
	if (rq->body)
		g_byte_array_unref(rq->body);
	budget_give(rq->reserved);
	if (rq->state && rq->free_state)
		rq->free_state(rq->state);
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
		/* Its own count (per listener, exact address) turns a flood away
		 * before a thread is made; ours (on_connection) spans the server's
		 * listeners and counts an IPv6 address by its /64. */
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_address_limit(o->max_connections), NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_seconds, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h },
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
		sweep_connections(h);
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
	h->admit = o->admit;
	h->handler = o->handler;
	h->cls = o->cls;
	g_mutex_init(&h->conn_lock);
	g_queue_init(&h->conns);
	h->per_address = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	h->per_address_limit = per_address_limit(o->max_connections);
	h->idle_seconds = o->idle_seconds;
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
	g_mutex_lock(&h->conn_lock);
	h->per_address_limit = per_address_limit(o->max_connections);
	h->idle_seconds = o->idle_seconds;
	g_mutex_unlock(&h->conn_lock);
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
	/* Every connection has had its "closed" notice; none is left. */
	while (!g_queue_is_empty(&h->conns)) {
		conn_entry *e = g_queue_pop_head_link(&h->conns)->data;
		g_free(e->address);
		g_free(e);
	}
	g_hash_table_unref(h->per_address);
	g_mutex_clear(&h->conn_lock);
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
