/* imapd/server: the IMAP server's loop thread and its workers.
 *
 * One libevent loop does every connection's I/O — TLS (OpenSSL
 * bufferevents), reading a command's lines and literals, writing answers,
 * timeouts — so thousands of idle clients cost a socket and a few
 * kilobytes each, not a thread.  A command, once whole, runs on a worker
 * of a small pool (it may wait on SQLite, a store read, or the logon
 * guard's penalty delay, none of which may stall the loop); the worker
 * hands its output back through an event and the loop sends it.  A
 * connection has at most one command on a worker at a time, so its
 * session needs no lock, and the loop reads no further input until the
 * answer is out (pipelined commands wait in the input buffer).  A long
 * FETCH comes back in steps and the next step is only scheduled once the
 * client has read most of the last (write watermark): memory per
 * connection stays bounded whatever the client asks for.
 *
 * Commands before logon run on a pool of their own, at most
 * PREAUTH_PER_ADDRESS at a time per client address (the logon guard's
 * key): a logon may be held for the guard's delay, and a host guessing
 * passwords over many connections must not take the workers of the
 * logged-on users, nor the logon threads of every other address.  The
 * rest of its attempts wait in the loop, costing no thread. */
#include "imapd/session.h"
#include "net/event_server.h"
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_POLL_SECONDS 5     /* how often an IDLE connection looks for new mail */
#define STOP_GRACE_SECONDS 10   /* commands in flight get this long at shutdown */
#define LOGON_THREADS 16        /* workers for commands before logon */
#define PREAUTH_PER_ADDRESS 2   /* of them, what one address may hold */

typedef enum { JOB_COMMAND, JOB_RESUME, JOB_LINE, JOB_POLL, JOB_END } job_kind;

typedef struct listener {
	struct mv_imapd *d;
	struct evconnlistener *l;
	bool tls;
	char *address;
} listener;

struct mv_imapd {
	struct event_base *base;
	GThread *thread;
	GThreadPool *pool;
	GThreadPool *logon_pool;      /* commands before logon */
	GHashTable *preauth;          /* address key -> preauth_slots; loop thread only */
	mv_logon *logon;
	GMutex lock;                  /* config, ctx, listeners (reload from the main thread) */
	mv_service_config cfg;
	SSL_CTX *ctx;
	GPtrArray *listeners;         /* listener* */
	GHashTable *conns;            /* conn* set; loop thread only */
	struct event *stop_ev, *reap_ev;
	bool stopping;
};

/* An address's commands before logon: how many run, and the connections
 * whose next one waits for a turn. */
typedef struct preauth_slots {
	unsigned running;
	GQueue parked;                /* conn* */
} preauth_slots;

typedef struct conn {
	mv_imapd *d;
	struct bufferevent *bev;
	imap_session *sess;
	char *remote;
	char *address;                /* remote as per-address limits count it */
	bool holds_slot, parked;      /* of its address's preauth_slots */
	bool busy, closing, line_mode, want_resume, ended;
	bool dead;                    /* EOF or an error: nothing more can be sent */
	bool starttls_pending;        /* TLS starts once the plain "OK" has left */
	GByteArray *cmd;              /* the command being read, in wire form */
	uint64_t literal_left;
	/* The job on a worker and what it hands back. */
	job_kind job;
	GByteArray *job_data;
	GString *out;
	imap_step step;
	struct event *done_ev, *poll_ev;
} conn;

/* ---- TLS ------------------------------------------------------------------ */

static SSL_CTX *make_ctx(const mv_service_config *c, GError **error)
{
	return mv_event_tls_context(c, "IMAP", error);
}

static SSL *new_ssl(mv_imapd *d)
{
	g_mutex_lock(&d->lock);
	SSL *ssl = d->ctx ? SSL_new(d->ctx) : NULL;
	g_mutex_unlock(&d->lock);
	return ssl;
}

/* ---- connections ------------------------------------------------------------- */

static void preauth_slots_free(gpointer p)
{
	preauth_slots *slots = p;
	g_queue_clear(&slots->parked);
	g_free(slots);
}

static void unpark(conn *c)
{
	preauth_slots *slots = g_hash_table_lookup(c->d->preauth, c->address);
	if (slots)
		g_queue_remove(&slots->parked, c);
	c->parked = false;
}

static void conn_free(conn *c)
{
	if (c->parked)
		unpark(c);
	g_hash_table_remove(c->d->conns, c);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->done_ev)
		event_free(c->done_ev);
	if (c->poll_ev)
		event_free(c->poll_ev);
	imap_session_free(c->sess);
	g_byte_array_unref(c->cmd);
	if (c->job_data)
		g_byte_array_unref(c->job_data);
	if (c->out)
		g_string_free(c->out, TRUE);
	g_free(c->remote);
	g_free(c->address);
	g_free(c);
}

static bool before_logon(const conn *c)
{
	return (c->job == JOB_COMMAND || c->job == JOB_LINE) && !imap_session_authenticated(c->sess);
}

/* A command before logon runs when its address has a slot free, else it
 * waits (the connection stays busy: nothing more is read from it). */
static void dispatch_before_logon(conn *c)
{
	mv_imapd *d = c->d;
	preauth_slots *slots = g_hash_table_lookup(d->preauth, c->address);
	if (!slots) {
		slots = g_new0(preauth_slots, 1);
		g_queue_init(&slots->parked);
		g_hash_table_insert(d->preauth, g_strdup(c->address), slots);
	}
	if (slots->running >= PREAUTH_PER_ADDRESS) {
		g_queue_push_tail(&slots->parked, c);
		c->parked = true;
		return;
	}
	slots->running++;
	c->holds_slot = true;
	g_thread_pool_push(d->logon_pool, c, NULL);
}

/* A command before logon ended: its slot goes to the address's next. */
static void release_slot(conn *c)
{
	mv_imapd *d = c->d;
	c->holds_slot = false;
	preauth_slots *slots = g_hash_table_lookup(d->preauth, c->address);
	g_assert(slots && slots->running > 0);
	conn *next = g_queue_pop_head(&slots->parked);
	if (next) {
		next->parked = false;
		next->holds_slot = true;
		g_thread_pool_push(d->logon_pool, next, NULL);
		return;
	}
	if (--slots->running == 0)
		g_hash_table_remove(d->preauth, c->address);
}

static void dispatch(conn *c, job_kind kind, GByteArray *data)
{
	c->busy = true;
	c->job = kind;
	c->job_data = data;
	if (before_logon(c))
		dispatch_before_logon(c);
	else
		g_thread_pool_push(c->d->pool, c, NULL);
}

/* Ends a connection: its logoff is audited on a worker, then it is freed. */
static void conn_close(conn *c)
{
	c->closing = true;
	if (c->busy)
		return;
	if (!c->ended) {
		c->ended = true;
		dispatch(c, JOB_END, NULL);
		return;
	}
	conn_free(c);
}

static void send_text(conn *c, const char *text)
{
	bufferevent_write(c->bev, text, strlen(text));
}

/* Closes once everything written has left (at once when the peer is gone). */
static void close_after_flush(conn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (c->dead || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_close(c);
}

static void process_input(conn *c);
static void start_tls(conn *c);

static void read_cb(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	if (c->closing && !c->busy) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_close(c);
		return;
	}
	if (c->starttls_pending && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		start_tls(c);
		return;
	}
	if (c->want_resume && !c->busy && evbuffer_get_length(bufferevent_get_output(bev)) <= IMAP_OUTPUT_LOW) {
		c->want_resume = false;
		dispatch(c, JOB_RESUME, NULL);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
		send_text(c, "* BYE idle for too long, logging out\r\n");
		close_after_flush(c);
		return;
	}
	/* EOF or error: nothing more can be sent. */
	c->dead = true;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	conn_close(c);
}

static void set_callbacks(conn *c)
{
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	struct timeval idle = { .tv_sec = c->d->cfg.imap_idle_seconds };
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_setwatermark(c->bev, EV_WRITE, IMAP_OUTPUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* STARTTLS (net/event_server.c switches the socket), once the plain "OK"
 * has left. */
static void start_tls(conn *c)
{
	c->starttls_pending = false;
	c->bev = mv_event_start_tls(c->d->base, c->bev, new_ssl(c->d));
	if (!c->bev) {
		c->dead = true;
		conn_close(c);
		return;
	}
	set_callbacks(c);
	imap_session_tls_started(c->sess);
	process_input(c);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;
	if (!c->busy && !c->closing && c->line_mode && imap_session_idling(c->sess))
		dispatch(c, JOB_POLL, NULL);
}

/* The loop's side of a finished job. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;
	c->busy = false;
	if (c->holds_slot)
		release_slot(c);
	if (c->job_data)
		g_clear_pointer(&c->job_data, g_byte_array_unref);
	if (c->job == JOB_END) {
		conn_free(c);
		return;
	}
	if (c->out && c->out->len && !c->dead)
		bufferevent_write(c->bev, c->out->str, c->out->len);
	if (c->out)
		g_string_truncate(c->out, 0);
	if (c->closing) {
		close_after_flush(c);
		return;
	}
	switch (c->step) {
	case IMAP_STEP_CLOSE:
		close_after_flush(c);
		return;
	case IMAP_STEP_MORE:
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) <= IMAP_OUTPUT_LOW)
			dispatch(c, JOB_RESUME, NULL);
		else
			c->want_resume = true;
		return;
	case IMAP_STEP_LINE:
		c->line_mode = true;
		if (imap_session_idling(c->sess) && !event_pending(c->poll_ev, EV_TIMEOUT, NULL)) {
			struct timeval tv = { .tv_sec = IDLE_POLL_SECONDS };
			event_add(c->poll_ev, &tv);
		}
		break;
	case IMAP_STEP_STARTTLS:
		c->starttls_pending = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			start_tls(c);
		return;
	case IMAP_STEP_DONE:
		break;
	}
	if (!c->line_mode && event_pending(c->poll_ev, EV_TIMEOUT, NULL))
		event_del(c->poll_ev);
	process_input(c);
}

static void worker(gpointer data, gpointer user_data)
{
	conn *c = data;
	if (!c->out)
		c->out = g_string_sized_new(256);
	switch (c->job) {
	case JOB_COMMAND:
		c->step = imap_session_command(c->sess, c->job_data->data, c->job_data->len, c->out);
		break;
	case JOB_RESUME:
		c->step = imap_session_resume(c->sess, c->out);
		break;
	case JOB_LINE:
		c->step = imap_session_line(c->sess, (const char *)c->job_data->data, c->job_data->len, c->out);
		break;
	case JOB_POLL:
		c->step = imap_session_poll(c->sess, c->out);
		break;
	case JOB_END:
		imap_session_end(c->sess);
		break;
	}
	mv_pool_task_done();
	event_active(c->done_ev, 0, 0);
}

/* The tag of a command being read, for answering a refused literal. */
static char *tag_of(const GByteArray *cmd)
{
	size_t n = 0;
	while (n < cmd->len && cmd->data[n] > ' ' && cmd->data[n] < 0x7f && n < 64)
		n++;
	return n ? g_strndup((const char *)cmd->data, n) : g_strdup("*");
}

/* A line ending in {n} or {n+}: prepare to read the literal. */
static bool begin_literal(conn *c, const char *line, size_t len)
{
	uint64_t size;
	bool plus;
	if (!imap_line_literal(line, len, &size, &plus))
		return false;
	if (c->cmd->len + size > IMAP_MAX_COMMAND) {
		if (plus) {
			send_text(c, "* BYE literal too large\r\n");
			close_after_flush(c);
		} else {
			char *tag = tag_of(c->cmd);
			char *msg = g_strdup_printf("%s NO [TOOBIG] literal too large (at most %d bytes per command)\r\n", tag,
			                            IMAP_MAX_COMMAND);
			send_text(c, msg);
			g_free(msg);
			g_free(tag);
			g_byte_array_set_size(c->cmd, 0);
		}
		return true;
	}
	c->literal_left = size;
	if (!plus)
		send_text(c, "+ go ahead\r\n");
	return true;
}

static void process_input(conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->busy && !c->closing) {
		if (c->literal_left) {
			size_t avail = evbuffer_get_length(in);
			if (!avail)
				return;
			size_t take = (size_t)MIN((uint64_t)avail, c->literal_left);
			size_t old = c->cmd->len;
			g_byte_array_set_size(c->cmd, (guint)(old + take));
			evbuffer_remove(in, c->cmd->data + old, take);
			c->literal_left -= take;
			continue;
		}
		size_t len = 0;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (!line) {
			if (evbuffer_get_length(in) > IMAP_MAX_LINE) {
				send_text(c, "* BYE line too long\r\n");
				close_after_flush(c);
			}
			return;
		}
		if (len > IMAP_MAX_LINE) {
			free(line);
			send_text(c, "* BYE line too long\r\n");
			close_after_flush(c);
			return;
		}
		if (c->line_mode) {
			c->line_mode = false;
			GByteArray *data = g_byte_array_new_take((guint8 *)g_strndup(line, len), len);
			free(line);
			dispatch(c, JOB_LINE, data);
			return;
		}
		if (c->cmd->len + len + 2 > IMAP_MAX_COMMAND) {
			free(line);
			send_text(c, "* BYE command too long\r\n");
			close_after_flush(c);
			return;
		}
		g_byte_array_append(c->cmd, (const guint8 *)line, (guint)len);
		g_byte_array_append(c->cmd, (const guint8 *)"\r\n", 2);
		bool literal = begin_literal(c, line, len);
		free(line);
		if (literal)
			continue;
		if (c->cmd->len == 2) { /* an empty line */
			g_byte_array_set_size(c->cmd, 0);
			continue;
		}
		GByteArray *cmd = c->cmd;
		c->cmd = g_byte_array_new();
		dispatch(c, JOB_COMMAND, cmd);
	}
}


static bool is_loopback(const char *addr)
{
	return g_str_has_prefix(addr, "127.") || strcmp(addr, "::1") == 0;
}

static void refuse(evutil_socket_t fd, const char *text)
{
	ssize_t n = write(fd, text, strlen(text));
	(void)n;
	evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	listener *li = arg;
	mv_imapd *d = li->d;
	if (d->stopping)
		return refuse(fd, "* BYE the server is stopping\r\n");
	if ((int64_t)g_hash_table_size(d->conns) >= d->cfg.imap_max_connections)
		return refuse(fd, "* BYE [UNAVAILABLE] too many connections, try again later\r\n");
	/* IMAP is request and answer in small writes: without this, Nagle's
	 * algorithm holds an answer (the greeting after the TLS handshake) until
	 * the client's delayed ACK, 40 ms on Linux. */
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		mv_log_debug("IMAP: TCP_NODELAY: %s", g_strerror(errno));
	conn *c = g_new0(conn, 1);
	c->d = d;
	c->remote = mv_event_peer_text(sa);
	c->address = mv_client_address_key(c->remote);
	c->cmd = g_byte_array_new();
	if (li->tls) {
		SSL *ssl = new_ssl(d);
		c->bev = ssl ? bufferevent_openssl_socket_new(d->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		                                              BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
		             : NULL;
		if (!c->bev && ssl)
			SSL_free(ssl);
	} else {
		c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (!c->bev) {
		evutil_closesocket(fd);
		g_byte_array_unref(c->cmd);
		g_free(c->remote);
		g_free(c->address);
		g_free(c);
		return;
	}
	imap_session_env env = { .data_dir = d->cfg.data_dir, .remote = c->remote, .tls = li->tls,
		                 .starttls_offered = !li->tls,
		                 .plaintext_logon = d->cfg.imap_plaintext_loopback && is_loopback(c->remote),
		                 .logon = d->logon };
	c->sess = imap_session_new(&env);
	c->done_ev = event_new(d->base, -1, 0, done_cb, c);
	c->poll_ev = event_new(d->base, -1, EV_PERSIST, poll_cb, c);
	g_hash_table_add(d->conns, c);
	set_callbacks(c);
	GString *hello = g_string_new(NULL);
	imap_session_greeting(c->sess, hello);
	bufferevent_write(c->bev, hello->str, hello->len);
	g_string_free(hello, TRUE);
}

/* ---- listeners ------------------------------------------------------------------ */

static void listener_free(gpointer p)
{
	listener *li = p;
	if (li->l)
		evconnlistener_free(li->l);
	g_free(li->address);
	g_free(li);
}

static int bind_one(mv_imapd *d, const char *text, bool tls, GPtrArray *out, GError **error)
{
	listener *li = g_new0(listener, 1);
	li->d = d;
	li->tls = tls;
	li->address = g_strdup(text);
	li->l = mv_event_listen(d->base, accept_cb, li, text, "the IMAP server", error);
	if (!li->l) {
		listener_free(li);
		return -1;
	}
	g_ptr_array_add(out, li);
	return 0;
}

static GPtrArray *bind_all(mv_imapd *d, const mv_service_config *c, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(listener_free);
	for (guint i = 0; i < c->imap_listen_tls->len; i++)
		if (bind_one(d, c->imap_listen_tls->pdata[i], true, out, error) < 0)
			goto fail;
	for (guint i = 0; i < c->imap_listen->len; i++)
		if (bind_one(d, c->imap_listen->pdata[i], false, out, error) < 0)
			goto fail;
	return out;
fail:
	g_ptr_array_free(out, TRUE);
	return NULL;
}

/* ---- the loop ----------------------------------------------------------------------- */

/* Ends the loop early once every connection is gone. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	mv_imapd *d = arg;
	if (g_hash_table_size(d->conns) == 0)
		event_base_loopbreak(d->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	mv_imapd *d = arg;
	d->stopping = true;
	g_mutex_lock(&d->lock);
	g_clear_pointer(&d->listeners, g_ptr_array_unref);
	g_mutex_unlock(&d->lock);
	GList *all = g_hash_table_get_keys(d->conns);
	for (GList *l = all; l; l = l->next) {
		conn *c = l->data;
		if (!c->closing)
			send_text(c, "* BYE the server is stopping\r\n");
		close_after_flush(c);
	}
	g_list_free(all);
	struct timeval grace = { .tv_sec = STOP_GRACE_SECONDS }, tick = { .tv_sec = 0, .tv_usec = 50000 };
	event_base_loopexit(d->base, &grace);
	d->reap_ev = event_new(d->base, -1, EV_PERSIST, reap_cb, d);
	event_add(d->reap_ev, &tick);
}

static gpointer loop_main(gpointer arg)
{
	mv_imapd *d = arg;
	/* Not ended by a moment without listeners (a reload): only by stop_cb. */
	event_base_loop(d->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static gint pool_size(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return (gint)CLAMP(cores * 2, 4, 16);
}

mv_imapd *mv_imapd_start(const mv_service_config *c, mv_logon *logon, GError **error)
{
	static gsize threads_once = 0;
	if (g_once_init_enter(&threads_once)) {
		evthread_use_pthreads();
		g_once_init_leave(&threads_once, 1);
	}
	mv_imapd *d = g_new0(mv_imapd, 1);
	g_mutex_init(&d->lock);
	d->logon = logon;
	mv_service_config_copy(&d->cfg, c);
	d->conns = g_hash_table_new(g_direct_hash, g_direct_equal);
	d->base = event_base_new();
	if (!d->base) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP: cannot make an event loop");
		goto fail;
	}
	if (!(d->ctx = make_ctx(c, error)) || !(d->listeners = bind_all(d, c, error)))
		goto fail;
	d->stop_ev = event_new(d->base, -1, 0, stop_cb, d);
	d->pool = g_thread_pool_new(worker, d, pool_size(), FALSE, NULL);
	d->logon_pool = g_thread_pool_new(worker, d, LOGON_THREADS, FALSE, NULL);
	d->preauth = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, preauth_slots_free);
	d->thread = g_thread_new("imapd", loop_main, d);
	return d;
fail:
	if (d->listeners)
		g_ptr_array_free(d->listeners, TRUE);
	if (d->ctx)
		SSL_CTX_free(d->ctx);
	if (d->base)
		event_base_free(d->base);
	g_hash_table_destroy(d->conns);
	mv_service_config_clear(&d->cfg);
	g_mutex_clear(&d->lock);
	g_free(d);
	return NULL;
}


int mv_imapd_reload(mv_imapd *d, const mv_service_config *c, GError **error)
{
	SSL_CTX *ctx = make_ctx(c, error);
	if (!ctx)
		return -1;
	bool rebind = !mv_strings_equal(c->imap_listen, d->cfg.imap_listen) || !mv_strings_equal(c->imap_listen_tls, d->cfg.imap_listen_tls);
	g_mutex_lock(&d->lock);
	GPtrArray *old = rebind ? d->listeners : NULL;
	if (rebind)
		d->listeners = NULL;
	g_mutex_unlock(&d->lock);
	/* The old sockets close first: a new listener may want the same port. */
	if (old)
		g_ptr_array_free(old, TRUE);
	GPtrArray *fresh = rebind ? bind_all(d, c, error) : NULL;
	g_mutex_lock(&d->lock);
	SSL_CTX_free(d->ctx);
	d->ctx = ctx;
	if (fresh)
		d->listeners = fresh;
	/* Limits and the logon rule apply to new connections. */
	d->cfg.imap_max_connections = c->imap_max_connections;
	d->cfg.imap_plaintext_loopback = c->imap_plaintext_loopback;
	d->cfg.imap_idle_seconds = c->imap_idle_seconds;
	g_ptr_array_unref(d->cfg.imap_listen);
	g_ptr_array_unref(d->cfg.imap_listen_tls);
	d->cfg.imap_listen = g_ptr_array_ref(c->imap_listen);
	d->cfg.imap_listen_tls = g_ptr_array_ref(c->imap_listen_tls);
	g_mutex_unlock(&d->lock);
	return rebind && !fresh ? -1 : 0;
}

void mv_imapd_stop(mv_imapd **dp)
{
	mv_imapd *d = *dp;
	if (!d)
		return;
	*dp = NULL;
	event_active(d->stop_ev, 0, 0);
	g_thread_join(d->thread);
	/* Jobs still on workers finish; their connections are then freed here. */
	g_thread_pool_free(d->pool, FALSE, TRUE);
	g_thread_pool_free(d->logon_pool, FALSE, TRUE);
	GList *left = g_hash_table_get_keys(d->conns);
	for (GList *l = left; l; l = l->next) {
		conn *c = l->data;
		c->busy = false;
		conn_free(c);
	}
	g_list_free(left);
	event_free(d->stop_ev);
	if (d->reap_ev)
		event_free(d->reap_ev);
	if (d->listeners)
		g_ptr_array_free(d->listeners, TRUE);
	SSL_CTX_free(d->ctx);
	event_base_free(d->base);
	g_hash_table_destroy(d->conns);
	g_hash_table_destroy(d->preauth);
	mv_service_config_clear(&d->cfg);
	g_mutex_clear(&d->lock);
	g_free(d);
}
