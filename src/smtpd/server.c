/* smtpd/server: the SMTP and LMTP listeners and their connections.
 *
 * Like imapd/server, one libevent loop thread does every connection's I/O
 * (TLS through OpenSSL bufferevents), so thousands of mail servers
 * holding connections open cost sockets, not threads.  The conversation
 * itself is smtpd/session, called on the loop; the two things that may
 * block go elsewhere and come back through an event: a logon check (the
 * logon guard may hold it for seconds) runs on a small pool, and a
 * finished message goes to smtpd/delivery, whose thread commits the
 * messages of all sessions together and answers each once it is on disk.
 * A connection has at most one of those outstanding, and reads no further
 * input meanwhile (what a pipelining client sent waits in its buffer,
 * bounded by the read watermark).
 *
 * Limits are enforced here: connections overall and per client address,
 * idle and total time, and a per-address budget of refused commands per
 * minute, past which the address is answered 421 for the rest of it. */
#include "smtpd/smtpd.h"
#include "net/networks.h"
#include "net/event_server.h"
#include "smtpd/delivery.h"
#include "smtpd/session.h"
#include <errno.h>
#include <grp.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define STOP_GRACE_SECONDS 30      /* deliveries in flight get this long at shutdown */
#define WORKER_THREADS 4           /* logon checks and audit entries */
#define INPUT_HIGH_WATER (1024 * 1024)
#define BAD_COMMAND_WINDOW_SECONDS 60
#define QUEUED_BYTES_MAX (512ull * 1024 * 1024)

typedef struct listener {
	struct mv_smtpd *d;
	struct evconnlistener *l;
	bool lmtp;
	char *address;
	char *unix_path;              /* removed when the listener closes */
} listener;

/* What the loop counts per client address. */
typedef struct address_state {
	unsigned connections;
	unsigned bad_commands;
	double window_start;
} address_state;

/* The settings new connections take, replaced whole on reload. */
typedef struct settings {
	mv_smtp_config cfg;
	mv_networks *allow;
	char *server_name;
} settings;

struct mv_smtpd {
	struct event_base *base;
	GThread *thread;
	GThreadPool *pool;
	mv_logon *logon;
	char *data_dir;
	smtpd_delivery *delivery;
	GMutex lock;                  /* settings, ctx, listeners (reload from the main thread) */
	settings *set;
	SSL_CTX *ctx;
	GPtrArray *listeners;         /* listener* */
	GHashTable *conns;            /* conn* set; loop thread only */
	GHashTable *addresses;        /* address key -> address_state; loop thread only */
	struct event *stop_ev, *reap_ev, *sweep_ev;
	bool stopping;
};

typedef enum { JOB_AUTH, JOB_AUDIT } job_kind;

typedef struct conn {
	mv_smtpd *d;
	struct bufferevent *bev;
	smtp_session *sess;
	char *remote;
	char *address;                /* the key of d->addresses */
	bool busy, closing, dead, starttls_pending;
	struct event *done_ev, *lifetime_ev;
	/* An outstanding job and what it hands back. */
	smtp_step waiting;            /* SMTP_AUTH or SMTP_DELIVER */
	smtpd_message *delivered;
	bool auth_ok, auth_unavailable;
	char *auth_user;
} conn;

typedef struct job {
	job_kind kind;
	conn *c;                      /* JOB_AUTH */
	char *remote, *user, *text;   /* JOB_AUDIT */
} job;

/* ---- settings and TLS ------------------------------------------------------------------------- */

static void settings_free(settings *s)
{
	if (!s)
		return;
	mv_smtp_config_clear(&s->cfg);
	mv_networks_free(&s->allow);
	g_free(s->server_name);
	g_free(s);
}

static settings *settings_new(const mv_service_config *c, GError **error)
{
	GError *e = NULL;
	mv_networks *allow = mv_networks_parse(c->smtp.allow_networks, &e);
	if (!allow) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: [smtp] allow_networks: %s", c->path, e->message);
		g_error_free(e);
		return NULL;
	}
	settings *s = g_new0(settings, 1);
	mv_smtp_config_copy(&s->cfg, &c->smtp);
	s->allow = allow;
	s->server_name = g_strdup(g_get_host_name());
	return s;
}

static SSL *new_ssl(mv_smtpd *d)
{
	g_mutex_lock(&d->lock);
	SSL *ssl = d->ctx ? SSL_new(d->ctx) : NULL;
	g_mutex_unlock(&d->lock);
	return ssl;
}

static int delivery_options(const mv_smtp_config *s, smtpd_delivery_options *o, GError **error)
{
	mv_unknown_policy policy;
	if (!mv_unknown_policy_from_name(s->unknown_addresses, &policy) || policy == MV_UNKNOWN_LEAVE) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "[smtp] unknown_addresses: expected catchall, ignore or reject");
		return -1;
	}
	*o = (smtpd_delivery_options){ .folder = s->folder, .sent_folder = s->sent_folder, .unknown = policy,
		                       .catchall_archive = s->catchall_archive, .journal_reports = s->journal_reports,
		                       .max_queued_bytes = QUEUED_BYTES_MAX, .internal_domains = s->internal_domains,
		                       .lock_wait_seconds = (double)s->lock_wait_seconds };
	return 0;
}

/* ---- audit and logon jobs ------------------------------------------------------------------------ */

static void job_free(job *j)
{
	g_free(j->remote);
	g_free(j->user);
	g_free(j->text);
	g_free(j);
}

static void run_audit(mv_smtpd *d, job *j)
{
	GError *err = NULL;
	mv_instance *inst = mv_https_thread_instance(d->data_dir, &err);
	if (!inst || mv_audit_append(inst, j->user ? j->user : "", j->remote, "SMTPRefused", false, j->text, &err) < 0) {
		mv_log_error("audit log: SMTP refusal of %s: %s", j->remote, err ? err->message : "?");
		g_clear_error(&err);
	}
}

static void run_auth(mv_smtpd *d, conn *c)
{
	const char *name = NULL, *password = NULL;
	smtp_session_auth_pending(c->sess, &name, &password);
	GError *err = NULL;
	mv_instance *inst = mv_https_thread_instance(d->data_dir, &err);
	c->auth_ok = false;
	c->auth_unavailable = false;
	if (!inst) {
		mv_log_error("SMTP: %s", err->message);
		g_error_free(err);
		c->auth_unavailable = true;
		return;
	}
	mv_user *u = NULL;
	mv_logon_result r = mv_logon_check(d->logon, inst, name ? name : "", password ? password : "", MV_LOGON_CLIENT,
	                                   c->remote, "SMTP", &u);
	if (r == MV_LOGON_ERROR) {
		c->auth_unavailable = true;
		return;
	}
	if (r != MV_LOGON_OK)
		return;
	if (!(u->login_privileges & MV_LOGIN_SMTP)) {
		mv_logon_failed(d->logon, inst, u->name, c->remote, "SMTP", "no smtp login privilege");
	} else {
		c->auth_ok = true;
		c->auth_user = g_strdup(u->name);
	}
	mv_user_free(u);
}

static void worker(gpointer data, gpointer user_data)
{
	job *j = data;
	mv_smtpd *d = user_data;
	if (j->kind == JOB_AUDIT) {
		run_audit(d, j);
	} else {
		run_auth(d, j->c);
		event_active(j->c->done_ev, 0, 0);
	}
	job_free(j);
	mv_pool_task_done();
}

static void audit_refusal(conn *c, const char *text)
{
	job *j = g_new0(job, 1);
	j->kind = JOB_AUDIT;
	j->remote = g_strdup(c->remote);
	j->user = g_strdup(smtp_session_user(c->sess));
	j->text = g_strdup(text);
	g_thread_pool_push(c->d->pool, j, NULL);
}

/* ---- connections ------------------------------------------------------------------------------- */

static address_state *address_of(mv_smtpd *d, const char *key)
{
	address_state *a = g_hash_table_lookup(d->addresses, key);
	if (!a) {
		a = g_new0(address_state, 1);
		g_hash_table_insert(d->addresses, g_strdup(key), a);
	}
	return a;
}

/* Refused commands in the current minute; past the budget, true. */
static bool over_bad_budget(mv_smtpd *d, address_state *a, unsigned more)
{
	double now = mv_monotonic();
	if (now - a->window_start >= BAD_COMMAND_WINDOW_SECONDS) {
		a->window_start = now;
		a->bad_commands = 0;
	}
	a->bad_commands += more;
	g_mutex_lock(&d->lock);
	int64_t max = d->set->cfg.max_bad_commands;
	g_mutex_unlock(&d->lock);
	return a->bad_commands > (unsigned)max;
}

static bool address_idle(const address_state *a)
{
	return a->connections == 0 && mv_monotonic() - a->window_start >= BAD_COMMAND_WINDOW_SECONDS;
}

static void forget_address_if_idle(mv_smtpd *d, const char *key)
{
	address_state *a = g_hash_table_lookup(d->addresses, key);
	if (a && address_idle(a))
		g_hash_table_remove(d->addresses, key);
}

static gboolean sweep_one(gpointer key, gpointer value, gpointer user_data)
{
	(void)key;
	(void)user_data;
	return address_idle(value);
}

/* Addresses whose last connection ended and whose minute of counted
 * errors is over are forgotten, so the table holds only recent clients. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mv_smtpd *d = arg;
	g_hash_table_foreach_remove(d->addresses, sweep_one, NULL);
}

static void conn_free(conn *c)
{
	mv_smtpd *d = c->d;
	g_hash_table_remove(d->conns, c);
	address_state *a = g_hash_table_lookup(d->addresses, c->address);
	if (a && a->connections > 0)
		a->connections--;
	forget_address_if_idle(d, c->address);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->done_ev)
		event_free(c->done_ev);
	if (c->lifetime_ev)
		event_free(c->lifetime_ev);
	smtpd_message_free(c->delivered);
	smtp_session_free(c->sess);
	g_free(c->auth_user);
	g_free(c->remote);
	g_free(c->address);
	g_free(c);
}

static void conn_close(conn *c)
{
	c->closing = true;
	if (c->busy)
		return; /* freed when its job comes back */
	conn_free(c);
}

static void send_out(conn *c, GString *out)
{
	if (out->len && !c->dead)
		bufferevent_write(c->bev, out->str, out->len);
	g_string_truncate(out, 0);
}

static void close_after_flush(conn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (c->dead || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_close(c);
}

static void say_and_close(conn *c, unsigned code, const char *enhanced, const char *text)
{
	GString *out = g_string_new(NULL);
	mv_smtp_reply(out, code, enhanced, text);
	send_out(c, out);
	g_string_free(out, TRUE);
	close_after_flush(c);
}

static void start_tls(conn *c);
static void process_input(conn *c);

static void delivered_cb(smtpd_message *m, void *opaque)
{
	conn *c = opaque;
	c->delivered = m;
	event_active(c->done_ev, 0, 0);
}

/* What the session asked for after its input. */
static void follow_step(conn *c, smtp_step step)
{
	switch (step) {
	case SMTP_READ:
		return;
	case SMTP_CLOSE:
		close_after_flush(c);
		return;
	case SMTP_STARTTLS:
		c->starttls_pending = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			start_tls(c);
		return;
	case SMTP_AUTH: {
		c->busy = true;
		c->waiting = SMTP_AUTH;
		job *j = g_new0(job, 1);
		j->kind = JOB_AUTH;
		j->c = c;
		g_thread_pool_push(c->d->pool, j, NULL);
		return;
	}
	case SMTP_DELIVER: {
		c->busy = true;
		c->waiting = SMTP_DELIVER;
		smtpd_message *m = smtp_session_take_message(c->sess);
		m->done = delivered_cb;
		m->opaque = c;
		smtpd_delivery_submit(c->d->delivery, m);
		return;
	}
	}
}

static void process_input(conn *c)
{
	GString *out = g_string_new(NULL);
	while (!c->busy && !c->closing && !c->starttls_pending) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		if (evbuffer_get_length(in) == 0)
			break;
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used = 0;
		smtp_step step = smtp_session_input(c->sess, v.iov_base, v.iov_len, &used, out);
		evbuffer_drain(in, used);
		send_out(c, out);
		const char *refusal;
		while ((refusal = smtp_session_take_refusal(c->sess)))
			audit_refusal(c, refusal);
		address_state *a = address_of(c->d, c->address);
		if (over_bad_budget(c->d, a, smtp_session_take_bad_commands(c->sess))) {
			audit_refusal(c, "too many refused commands from this address: disconnected");
			say_and_close(c, 421, "4.7.0", "too many errors, closing the connection");
			break;
		}
		follow_step(c, step);
		/* Any other step may have ended the connection (a failed TLS
		 * start frees it) or made it wait: c is not touched again. */
		if (step != SMTP_READ || used == 0)
			break;
	}
	g_string_free(out, TRUE);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn *c = arg;
	c->busy = false;
	GString *out = g_string_new(NULL);
	if (c->waiting == SMTP_DELIVER) {
		smtp_session_delivered(c->sess, c->delivered, out);
		g_clear_pointer(&c->delivered, smtpd_message_free);
	} else {
		smtp_session_auth_checked(c->sess, c->auth_ok, c->auth_unavailable, c->auth_user, out);
		g_clear_pointer(&c->auth_user, g_free);
	}
	send_out(c, out);
	g_string_free(out, TRUE);
	if (c->closing) {
		close_after_flush(c);
		return;
	}
	process_input(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->closing && !c->busy)
		conn_close(c);
	else if (c->starttls_pending)
		start_tls(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		/* A session waiting for its delivery is not idle. */
		if (c->busy) {
			bufferevent_enable(bev, EV_READ);
			return;
		}
		if (!c->closing)
			say_and_close(c, 421, "4.4.2", "idle for too long, closing the connection");
		return;
	}
	/* EOF or an error: whatever half-received is dropped with the session. */
	c->dead = true;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	conn_close(c);
}

static void lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn *c = arg;
	if (c->busy) {
		/* Its answer first; then the session ends. */
		c->closing = true;
		return;
	}
	if (!c->closing)
		say_and_close(c, 421, "4.4.2", "the session has lasted too long, closing the connection");
}

static void set_callbacks(conn *c, int64_t idle_seconds)
{
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	struct timeval idle = { .tv_sec = idle_seconds };
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* STARTTLS (net/event_server.c switches the socket and throws away what
 * was pipelined in the clear), once the 220 has left. */
static void start_tls(conn *c)
{
	c->starttls_pending = false;
	c->bev = mv_event_start_tls(c->d->base, c->bev, new_ssl(c->d));
	if (!c->bev) {
		c->dead = true;
		conn_close(c);
		return;
	}
	g_mutex_lock(&c->d->lock);
	int64_t idle = c->d->set->cfg.idle_seconds;
	g_mutex_unlock(&c->d->lock);
	set_callbacks(c, idle);
	smtp_session_tls_started(c->sess);
}

/* RCPT under the reject policy: an address no user has is refused. */
static bool recipient_refused(void *opaque, const char *address)
{
	smtpd_delivery *delivery = opaque;
	return smtpd_delivery_refuses_recipient(delivery, address);
}


static void refuse_connection(evutil_socket_t fd, const char *text)
{
	ssize_t n = write(fd, text, strlen(text));
	(void)n;
	evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	(void)l;
	(void)socklen;
	listener *li = arg;
	mv_smtpd *d = li->d;
	if (d->stopping)
		return refuse_connection(fd, "421 4.3.2 the server is stopping\r\n");
	g_mutex_lock(&d->lock);
	settings *set = d->set;
	int64_t max_conns = set->cfg.max_connections, per_address = set->cfg.max_connections_per_address;
	int64_t idle = set->cfg.idle_seconds, lifetime = set->cfg.session_seconds;
	/* A Unix socket's peers are local programs (Postfix, Dovecot): its
	 * file mode is the access control. */
	bool allowed = sa->sa_family == AF_UNIX || mv_networks_contains(set->allow, sa);
	smtp_session_env env = {
		.lmtp = li->lmtp,
		.starttls_available = d->ctx != NULL && sa->sa_family != AF_UNIX,
		.allowed = allowed,
		.auth = set->cfg.auth,
		.require_tls = set->cfg.require_tls && sa->sa_family != AF_UNIX,
		.max_message_bytes = (uint64_t)set->cfg.max_message_bytes,
		.max_recipients = (unsigned)set->cfg.max_recipients,
		.server_name = set->server_name,
		.recipient_refused = recipient_refused,
		.recipient_opaque = d->delivery,
	};
	char *remote = mv_event_peer_text(sa);
	env.remote = remote;
	smtp_session *sess = smtp_session_new(&env);
	g_mutex_unlock(&d->lock);

	char *key = mv_client_address_key(remote);
	address_state *a = address_of(d, key);
	const char *refusal = NULL;
	if ((int64_t)g_hash_table_size(d->conns) >= max_conns)
		refusal = "421 4.7.0 too many connections, try again later\r\n";
	else if ((int64_t)a->connections >= per_address)
		refusal = "421 4.7.0 too many connections from your address, try again later\r\n";
	else if (over_bad_budget(d, a, 0))
		refusal = "421 4.7.0 too many errors from your address, try again later\r\n";
	if (refusal) {
		smtp_session_free(sess);
		g_free(remote);
		forget_address_if_idle(d, key);
		g_free(key);
		return refuse_connection(fd, refusal);
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
			mv_log_debug("SMTP: TCP_NODELAY: %s", g_strerror(errno));
	}
	conn *c = g_new0(conn, 1);
	c->d = d;
	c->remote = remote;
	c->address = key;
	c->sess = sess;
	c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev) {
		evutil_closesocket(fd);
		a->connections++;
		conn_free(c);
		return;
	}
	a->connections++;
	c->done_ev = event_new(d->base, -1, 0, done_cb, c);
	c->lifetime_ev = evtimer_new(d->base, lifetime_cb, c);
	struct timeval tv = { .tv_sec = lifetime };
	evtimer_add(c->lifetime_ev, &tv);
	g_hash_table_add(d->conns, c);
	set_callbacks(c, idle);
	GString *hello = g_string_new(NULL);
	smtp_session_greeting(c->sess, hello);
	send_out(c, hello);
	g_string_free(hello, TRUE);
}

/* ---- listeners -------------------------------------------------------------------------------- */

static void listener_free(gpointer p)
{
	listener *li = p;
	if (li->l)
		evconnlistener_free(li->l);
	if (li->unix_path)
		unlink(li->unix_path);
	g_free(li->unix_path);
	g_free(li->address);
	g_free(li);
}

static listener *listener_new(mv_smtpd *d, const char *text, bool lmtp)
{
	listener *li = g_new0(listener, 1);
	li->d = d;
	li->lmtp = lmtp;
	li->address = g_strdup(text);
	return li;
}

#define LISTEN_FLAGS (LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_THREADSAFE | LEV_OPT_CLOSE_ON_EXEC)

/* The socket's group, so that a mail server running as another user
 * (Postfix's lmtp client runs as "postfix") may connect; mode 0660. */
static int socket_group(const char *text, const char *group, GError **error)
{
	if (!group)
		return 0;
	struct group *g = getgrnam(group);
	if (!g) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "[smtp] lmtp_socket_group: no group '%s' on this machine", group);
		return -1;
	}
	if (chown(text + 5, (uid_t)-1, g->gr_gid) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "LMTP socket %s: cannot give it to group %s: %s", text, group,
		            g_strerror(errno));
		return -1;
	}
	return 0;
}

/* unix:PATH: a socket file left by a server that died is replaced; any
 * other file there is an error, never removed. */
static int bind_unix(mv_smtpd *d, const char *text, const char *group, GPtrArray *out, GError **error)
{
	const char *path = text + 5;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sun.sun_path) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "LMTP listen address %s: the path is too long", text);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "LMTP listen address %s: a file that is not a socket is there", text);
			return -1;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || chmod(path, 0660) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		mv_listen_bind_error(error, "the LMTP server", text, err);
		return -1;
	}
	if (socket_group(text, group, error) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	listener *li = listener_new(d, text, true);
	li->unix_path = g_strdup(path);
	li->l = evconnlistener_new(d->base, accept_cb, li, LISTEN_FLAGS, 128, fd);
	if (!li->l) {
		close(fd);
		g_set_error(error, MV_ERROR, MV_ERR_IO, "LMTP listen address %s: cannot listen", text);
		listener_free(li);
		return -1;
	}
	g_ptr_array_add(out, li);
	return 0;
}

static int bind_inet(mv_smtpd *d, const char *text, bool lmtp, GPtrArray *out, GError **error)
{
	listener *li = listener_new(d, text, lmtp);
	li->l = mv_event_listen(d->base, accept_cb, li, text, lmtp ? "the LMTP server" : "the SMTP server", error);
	if (!li->l) {
		listener_free(li);
		return -1;
	}
	g_ptr_array_add(out, li);
	return 0;
}

static GPtrArray *bind_all(mv_smtpd *d, const mv_smtp_config *s, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(listener_free);
	for (guint i = 0; i < s->listen->len; i++)
		if (bind_inet(d, s->listen->pdata[i], false, out, error) < 0)
			goto fail;
	for (guint i = 0; i < s->lmtp_listen->len; i++) {
		const char *text = s->lmtp_listen->pdata[i];
		if ((g_str_has_prefix(text, "unix:") ? bind_unix(d, text, s->lmtp_socket_group, out, error) : bind_inet(d, text, true, out, error)) < 0)
			goto fail;
	}
	return out;
fail:
	g_ptr_array_free(out, TRUE);
	return NULL;
}

/* ---- the loop ----------------------------------------------------------------------------------- */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mv_smtpd *d = arg;
	if (g_hash_table_size(d->conns) == 0)
		event_base_loopbreak(d->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mv_smtpd *d = arg;
	d->stopping = true;
	g_mutex_lock(&d->lock);
	g_clear_pointer(&d->listeners, g_ptr_array_unref);
	g_mutex_unlock(&d->lock);
	GList *all = g_hash_table_get_keys(d->conns);
	for (GList *l = all; l; l = l->next) {
		conn *c = l->data;
		/* One waiting for its delivery gets its answer first. */
		if (c->busy)
			c->closing = true;
		else if (!c->closing)
			say_and_close(c, 421, "4.3.2", "the server is stopping, try again later");
	}
	g_list_free(all);
	struct timeval grace = { .tv_sec = STOP_GRACE_SECONDS }, tick = { .tv_sec = 0, .tv_usec = 50000 };
	event_base_loopexit(d->base, &grace);
	d->reap_ev = event_new(d->base, -1, EV_PERSIST, reap_cb, d);
	event_add(d->reap_ev, &tick);
}

static gpointer loop_main(gpointer arg)
{
	mv_smtpd *d = arg;
	event_base_loop(d->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void smtpd_free(mv_smtpd *d)
{
	if (d->listeners)
		g_ptr_array_free(d->listeners, TRUE);
	if (d->ctx)
		SSL_CTX_free(d->ctx);
	settings_free(d->set);
	if (d->stop_ev)
		event_free(d->stop_ev);
	if (d->reap_ev)
		event_free(d->reap_ev);
	if (d->sweep_ev)
		event_free(d->sweep_ev);
	if (d->base)
		event_base_free(d->base);
	if (d->conns)
		g_hash_table_destroy(d->conns);
	if (d->addresses)
		g_hash_table_destroy(d->addresses);
	g_free(d->data_dir);
	g_mutex_clear(&d->lock);
	g_free(d);
}

mv_smtpd *mv_smtpd_start(const mv_service_config *c, mv_logon *logon, GError **error)
{
	static gsize threads_once = 0;
	if (g_once_init_enter(&threads_once)) {
		evthread_use_pthreads();
		g_once_init_leave(&threads_once, 1);
	}
	smtpd_delivery_options o;
	if (delivery_options(&c->smtp, &o, error) < 0 || smtpd_delivery_check_options(&o, error) < 0)
		return NULL;
	mv_smtpd *d = g_new0(mv_smtpd, 1);
	g_mutex_init(&d->lock);
	d->logon = logon;
	d->data_dir = g_strdup(c->data_dir);
	d->conns = g_hash_table_new(g_direct_hash, g_direct_equal);
	d->addresses = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (!(d->base = event_base_new())) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "SMTP: cannot make an event loop");
		goto fail;
	}
	if (!(d->set = settings_new(c, error)) || !(d->ctx = mv_event_tls_context(c, "SMTP", error)) ||
	    !(d->listeners = bind_all(d, &c->smtp, error)))
		goto fail;
	if (!(d->delivery = smtpd_delivery_start(c->data_dir, &o, error)))
		goto fail;
	d->stop_ev = event_new(d->base, -1, 0, stop_cb, d);
	d->sweep_ev = event_new(d->base, -1, EV_PERSIST, sweep_cb, d);
	struct timeval sweep = { .tv_sec = BAD_COMMAND_WINDOW_SECONDS };
	event_add(d->sweep_ev, &sweep);
	d->pool = g_thread_pool_new(worker, d, WORKER_THREADS, FALSE, NULL);
	d->thread = g_thread_new("smtpd", loop_main, d);
	return d;
fail:
	smtpd_free(d);
	return NULL;
}


int mv_smtpd_reload(mv_smtpd *d, const mv_service_config *c, GError **error)
{
	smtpd_delivery_options o;
	if (delivery_options(&c->smtp, &o, error) < 0)
		return -1;
	settings *set = settings_new(c, error);
	if (!set)
		return -1;
	SSL_CTX *ctx = mv_event_tls_context(c, "SMTP", error);
	if (!ctx || smtpd_delivery_configure(d->delivery, &o, error) < 0) {
		if (ctx)
			SSL_CTX_free(ctx);
		settings_free(set);
		return -1;
	}
	g_mutex_lock(&d->lock);
	bool rebind = !mv_strings_equal(set->cfg.listen, d->set->cfg.listen) || !mv_strings_equal(set->cfg.lmtp_listen, d->set->cfg.lmtp_listen);
	GPtrArray *old = rebind ? d->listeners : NULL;
	if (rebind)
		d->listeners = NULL;
	g_mutex_unlock(&d->lock);
	/* The old sockets close first: a new listener may want the same port. */
	if (old)
		g_ptr_array_free(old, TRUE);
	GPtrArray *fresh = rebind ? bind_all(d, &set->cfg, error) : NULL;
	g_mutex_lock(&d->lock);
	SSL_CTX_free(d->ctx);
	d->ctx = ctx;
	if (fresh)
		d->listeners = fresh;
	/* New connections take the new settings; open ones keep theirs. */
	settings *was = d->set;
	d->set = set;
	g_mutex_unlock(&d->lock);
	settings_free(was);
	return rebind && !fresh ? -1 : 0;
}

void mv_smtpd_stop(mv_smtpd **dp)
{
	mv_smtpd *d = *dp;
	if (!d)
		return;
	*dp = NULL;
	event_active(d->stop_ev, 0, 0);
	g_thread_join(d->thread);
	/* Deliveries still queued are committed (their sessions are gone: a
	 * client that got no 250 sends again, and the copy is a reference). */
	smtpd_delivery_stop(&d->delivery);
	g_thread_pool_free(d->pool, FALSE, TRUE);
	GList *left = g_hash_table_get_keys(d->conns);
	for (GList *l = left; l; l = l->next) {
		conn *c = l->data;
		c->busy = false;
		conn_free(c);
	}
	g_list_free(left);
	smtpd_free(d);
}
