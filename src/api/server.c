/* api/server: the HTTPS listeners of the Administration API.
 *
 * libmicrohttpd in thread-per-connection mode: get-status long-polls block
 * their connection's thread and nothing else, and every connection thread
 * keeps its own mv_instance (SQLite connections are not shared between
 * threads), opened on its first request and closed when the thread ends.
 *
 * Each request: normalise the path (MailStore clients double slashes),
 * authenticate (HTTP Basic on every request; Argon2id is deliberately slow,
 * so a verified password is remembered as a keyed hash until the user's
 * auth generation changes or a few minutes pass), check the `api` login
 * privilege and the function's privilege, then either run the function
 * through the command registry or hand it to the background jobs.  Bad
 * credentials are answered only after a delay that doubles with each
 * failure from the same address, and attempts from an address under
 * penalty wait for it first, so parallel connections gain nothing.
 *
 * Reloading (SIGHUP, SetServiceCertificate) starts new listeners on the
 * very sockets of the old ones (MHD_quiesce_daemon hands them over), so no
 * connection is refused while the certificate changes; the old listeners
 * finish their requests on a reaper thread. */
#include "api/api.h"

#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BODY_BYTES (32u * 1024u * 1024u)
#define MAX_STATUS_WAIT_MS 60000
#define AUTH_CACHE_SECONDS 300.0
#define FAILURE_FORGET_SECONDS 900.0
#define FAILURE_FIRST_DELAY 0.25
#define FAILURE_MAX_DELAY 8.0
#define SESSION_FORGET_SECONDS 1800.0
#define CERT_MAX_BYTES (1024 * 1024)

typedef struct failure {
	unsigned count;
	double last;
	double next_allowed;
} failure;

typedef struct cached_auth {
	uint8_t mac[crypto_generichash_BYTES];
	int64_t generation;
	double expires;
} cached_auth;

typedef struct session {
	char *user, *remote;
	int64_t first, last;
	int64_t requests;
} session;

struct mv_api_server {
	GMutex lock;                 /* guards everything below but jobs */
	GCond wake;                  /* penalty waits end early on shutdown */
	char *data_dir;              /* fixed for the server's life (connection threads read it) */
	mv_service_config cfg;       /* written by the main thread only, under the lock */
	GPtrArray *daemons;          /* struct MHD_Daemon* */
	mv_jobs *jobs;
	GHashTable *failures;        /* remote -> failure* */
	GHashTable *auth_cache;      /* casefolded user -> cached_auth* */
	GHashTable *verifying;       /* casefolded user -> NULL: an Argon2id check runs for it */
	GCond verified;              /* one such check ended */
	GHashTable *sessions;        /* "user\nremote" -> session* */
	uint8_t cache_key[crypto_generichash_KEYBYTES];
	mv_service_hooks hooks;
	char *config_path;           /* stable storage for hooks.config_path */
	bool stopping;
	GPtrArray *retired;          /* retired_daemon*: replaced listeners finishing their connections */
	GThread *reaper;
};

/* A listener replaced by a reload: it accepts nothing more and is stopped
 * once its last connection ended (or past the deadline, when a client
 * keeps a connection busy for longer than any request may take). */
typedef struct retired_daemon {
	struct MHD_Daemon *daemon;
	double deadline;
} retired_daemon;

#define RETIRE_GRACE_SECONDS (MAX_STATUS_WAIT_MS / 1000.0 + 150.0)

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

static mv_instance *instance_for_thread(const char *data_dir, GError **error)
{
	mv_instance *inst = g_private_get(&thread_instance);
	if (inst)
		return inst;
	inst = mv_instance_open(data_dir, error);
	if (inst)
		g_private_set(&thread_instance, inst);
	return inst;
}

/* ---- responses ----------------------------------------------------------------- */

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(value);
	/* MailStore sends a BOM; its clients strip it, ours too. */
	char *body = g_strconcat("\xEF\xBB\xBF", text ? text : "null", NULL);
	free(text);
	struct MHD_Response *r =
		MHD_create_response_from_buffer_with_free_callback(strlen(body), body, g_free);
	if (!r) {
		g_free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"mailvault\", charset=\"UTF-8\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "POST");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *message)
{
	return send_json(conn, status, mv_command_error_envelope(message, NULL));
}

/* ---- who is asking ------------------------------------------------------------- */

static char *remote_address(struct MHD_Connection *conn)
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

static void password_mac(mv_api_server *srv, const char *password, uint8_t out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, (const uint8_t *)password, strlen(password), srv->cache_key,
	                   sizeof srv->cache_key);
}

/* Caller holds the lock.  A hit also extends the entry's life, so that a
 * busy client never falls back to Argon2id all at once. */
static bool cache_hit_locked(mv_api_server *srv, const char *key, const mv_user *u, const uint8_t *mac)
{
	cached_auth *c = g_hash_table_lookup(srv->auth_cache, key);
	double now = mv_monotonic();
	bool hit = c && c->generation == u->auth_generation && c->expires > now &&
	           sodium_memcmp(c->mac, mac, crypto_generichash_BYTES) == 0;
	if (hit)
		c->expires = now + AUTH_CACHE_SECONDS;
	return hit;
}

/* Whether the password is known good.  When not, and another connection
 * is checking the same user's password right now, waits for that check
 * first: thirty-two connections arriving together with one password cost
 * one Argon2id computation, not thirty-two.  On false the caller checks
 * the password itself and must call verify_done. */
static bool cache_hit(mv_api_server *srv, const mv_user *u, const char *password)
{
	uint8_t mac[crypto_generichash_BYTES];
	password_mac(srv, password, mac);
	char *key = g_utf8_casefold(u->name, -1);
	g_mutex_lock(&srv->lock);
	bool hit;
	while (!(hit = cache_hit_locked(srv, key, u, mac)) && g_hash_table_contains(srv->verifying, key) && !srv->stopping)
		g_cond_wait(&srv->verified, &srv->lock);
	if (!hit)
		g_hash_table_add(srv->verifying, g_strdup(key));
	g_mutex_unlock(&srv->lock);
	g_free(key);
	return hit;
}

static void verify_done(mv_api_server *srv, const char *name)
{
	char *key = g_utf8_casefold(name, -1);
	g_mutex_lock(&srv->lock);
	g_hash_table_remove(srv->verifying, key);
	g_cond_broadcast(&srv->verified);
	g_mutex_unlock(&srv->lock);
	g_free(key);
}

static void cache_put(mv_api_server *srv, const mv_user *u, const char *password)
{
	cached_auth *c = g_new0(cached_auth, 1);
	password_mac(srv, password, c->mac);
	c->generation = u->auth_generation;
	c->expires = mv_monotonic() + AUTH_CACHE_SECONDS;
	g_mutex_lock(&srv->lock);
	g_hash_table_replace(srv->auth_cache, g_utf8_casefold(u->name, -1), c);
	g_mutex_unlock(&srv->lock);
}

static double failure_delay(unsigned count)
{
	double d = FAILURE_FIRST_DELAY;
	for (unsigned i = 1; i < count && d < FAILURE_MAX_DELAY; i++)
		d *= 2;
	return MIN(d, FAILURE_MAX_DELAY);
}

/* Sleeps until the given monotonic time, or until shutdown. */
static void wait_until(mv_api_server *srv, double when)
{
	g_mutex_lock(&srv->lock);
	while (!srv->stopping) {
		double left = when - mv_monotonic();
		if (left <= 0)
			break;
		g_cond_wait_until(&srv->wake, &srv->lock, g_get_monotonic_time() + (gint64)(left * G_USEC_PER_SEC));
	}
	g_mutex_unlock(&srv->lock);
}

/* An address that failed recently waits out its penalty before trying again. */
static void wait_for_penalty(mv_api_server *srv, const char *remote)
{
	g_mutex_lock(&srv->lock);
	failure *f = g_hash_table_lookup(srv->failures, remote);
	double when = f ? f->next_allowed : 0;
	g_mutex_unlock(&srv->lock);
	if (when > 0)
		wait_until(srv, when);
}

/* Records a failure and returns when its answer may go out. */
static double record_failure(mv_api_server *srv, const char *remote)
{
	double now = mv_monotonic();
	g_mutex_lock(&srv->lock);
	failure *f = g_hash_table_lookup(srv->failures, remote);
	if (!f) {
		f = g_new0(failure, 1);
		g_hash_table_insert(srv->failures, g_strdup(remote), f);
	}
	if (now - f->last > FAILURE_FORGET_SECONDS)
		f->count = 0;
	f->count++;
	f->last = now;
	f->next_allowed = now + failure_delay(f->count);
	double when = f->next_allowed;
	g_mutex_unlock(&srv->lock);
	return when;
}

static void forget_failures(mv_api_server *srv, const char *remote)
{
	g_mutex_lock(&srv->lock);
	g_hash_table_remove(srv->failures, remote);
	g_mutex_unlock(&srv->lock);
}

static void session_free(gpointer p)
{
	session *s = p;
	g_free(s->user);
	g_free(s->remote);
	g_free(s);
}

static void note_session(mv_api_server *srv, const char *user, const char *remote)
{
	char *key = g_strdup_printf("%s\n%s", user, remote);
	int64_t now = mv_now();
	g_mutex_lock(&srv->lock);
	session *s = g_hash_table_lookup(srv->sessions, key);
	if (!s) {
		s = g_new0(session, 1);
		s->user = g_strdup(user);
		s->remote = g_strdup(remote);
		s->first = now;
		g_hash_table_insert(srv->sessions, key, s);
		key = NULL;
	}
	s->last = now;
	s->requests++;
	g_mutex_unlock(&srv->lock);
	g_free(key);
}

static json_t *sessions_json(void *opaque)
{
	mv_api_server *srv = opaque;
	json_t *out = json_array();
	int64_t now = mv_now();
	g_mutex_lock(&srv->lock);
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, srv->sessions);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		session *s = value;
		if ((double)(now - s->last) > SESSION_FORGET_SECONDS) {
			g_hash_table_iter_remove(&it);
			continue;
		}
		char *since = mv_format_time_utc(s->first), *last = mv_format_time_utc(s->last);
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "userName", s->user,
		                                     "remoteAddress", s->remote, "protocol", "api", "since", since,
		                                     "lastActivity", last, "requests", (json_int_t)s->requests));
		g_free(since);
		g_free(last);
	}
	g_mutex_unlock(&srv->lock);
	return out;
}

static void running_config(void *opaque, mv_service_config *out)
{
	mv_api_server *srv = opaque;
	memset(out, 0, sizeof *out);
	g_mutex_lock(&srv->lock);
	mv_service_config_copy(out, &srv->cfg);
	g_mutex_unlock(&srv->lock);
}

static void audit_denied(mv_instance *inst, const char *user, const char *remote, const char *event,
                         const char *details)
{
	GError *err = NULL;
	if (mv_audit_append(inst, user, remote, event, false, details, &err) < 0) {
		mv_log_error("audit log: cannot record %s from %s: %s", event, remote, err->message);
		g_error_free(err);
	}
}

typedef enum { AUTH_OK, AUTH_FAILED, AUTH_ERROR } auth_outcome;

/* Checks the credentials of a request; on success *user_r. */
static auth_outcome authenticate(mv_api_server *srv, mv_instance *inst, struct MHD_Connection *conn,
                                 const char *remote, mv_user **user_r)
{
	const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	char *name = NULL, *password = NULL;
	GError *err = NULL;
	if (mv_basic_auth_decode(header, &name, &password, &err) < 0) {
		g_error_free(err);
		return AUTH_FAILED; /* no credentials at all: a client's first probe, not an attack */
	}
	wait_for_penalty(srv, remote);
	mv_user *u = mv_user_get(inst, name, NULL);
	auth_outcome outcome = AUTH_OK;
	if (!u || !cache_hit(srv, u, password)) {
		char *verifying = u ? g_strdup(u->name) : NULL;
		mv_user_free(u);
		u = NULL;
		int rc = mv_user_authenticate(inst, name, password, &u, &err);
		if (rc == 0)
			cache_put(srv, u, password);
		if (verifying)
			verify_done(srv, verifying);
		g_free(verifying);
		if (rc < 0) {
			outcome = err->code == MV_ERR_AUTH ? AUTH_FAILED : AUTH_ERROR;
			if (outcome == AUTH_ERROR)
				mv_log_error("authentication of %s from %s: %s", name, remote, err->message);
			g_error_free(err);
		}
	}
	sodium_memzero(password, strlen(password));
	g_free(password);
	if (outcome == AUTH_FAILED) {
		double when = record_failure(srv, remote);
		audit_denied(inst, name, remote, "UserLogonFailed", "Administration API: unknown user or wrong password");
		wait_until(srv, when);
	} else if (outcome == AUTH_OK) {
		forget_failures(srv, remote);
		*user_r = u;
	}
	g_free(name);
	return outcome;
}

/* ---- the four endpoints ----------------------------------------------------- */

typedef struct call {
	mv_api_server *srv;
	struct MHD_Connection *conn;
	mv_instance *inst;
	mv_user *user;
	char *remote;
	GHashTable *form;
} call;

static enum MHD_Result deny(call *c, const char *what)
{
	char *msg = g_strdup_printf("user %s may not %s: it needs the admin privilege and the api login privilege",
	                            c->user->name, what);
	audit_denied(c->inst, c->user->name, c->remote, "AccessDenied", msg);
	enum MHD_Result rc = send_error(c->conn, MHD_HTTP_FORBIDDEN, msg);
	g_free(msg);
	return rc;
}

static enum MHD_Result invoke(call *c, const char *function)
{
	const mv_command *cmd = mv_command_find(function);
	if (!cmd) {
		char *msg = g_strdup_printf("unknown function '%.100s'", function);
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_NOT_FOUND, msg);
		g_free(msg);
		return rc;
	}
	if (!mv_command_allowed(cmd, c->user->privileges))
		return deny(c, cmd->name);
	GError *err = NULL;
	json_t *args = mv_command_parse_args(cmd, c->form, &err);
	if (!args) {
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_OK, err->message);
		g_error_free(err);
		return rc;
	}
	mv_access *access = mv_access_for_user(c->inst, c->user, &err);
	if (!access) {
		json_decref(args);
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, err->message);
		g_error_free(err);
		return rc;
	}
	if (cmd->long_running) {
		json_t *env = mv_jobs_start(c->srv->jobs, cmd, args, c->srv->data_dir, c->user->name, c->remote, access,
		                            &c->srv->hooks);
		return send_json(c->conn, MHD_HTTP_OK, env);
	}
	mv_command_ctx ctx = {
		.inst = c->inst, .user = c->user->name, .remote = c->remote, .access = access, .service = &c->srv->hooks,
	};
	json_t *env = mv_command_invoke(cmd, &ctx, args);
	json_decref(args);
	mv_access_free(access);
	return send_json(c->conn, MHD_HTTP_OK, env);
}

static bool form_number(GHashTable *form, const char *name, int64_t *out, GError **error)
{
	const char *v = g_hash_table_lookup(form, name);
	if (!v)
		return true;
	char *end = NULL;
	gint64 n = g_ascii_strtoll(v, &end, 10);
	if (!*v || !end || *end) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "argument '%s': expected a number", name);
		return false;
	}
	*out = n;
	return true;
}

static enum MHD_Result get_status(call *c)
{
	const char *token = g_hash_table_lookup(c->form, "token");
	int64_t last = 0, timeout = 0;
	GError *err = NULL;
	if (!token || !*token)
		return send_error(c->conn, MHD_HTTP_OK, "get-status: argument 'token' is missing");
	if (!form_number(c->form, "lastKnownStatusVersion", &last, &err) ||
	    !form_number(c->form, "millisecondsTimeout", &timeout, &err)) {
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_OK, err->message);
		g_error_free(err);
		return rc;
	}
	timeout = CLAMP(timeout, 0, MAX_STATUS_WAIT_MS);
	json_t *env = mv_jobs_status(c->srv->jobs, token, last, timeout, c->user->name);
	if (!env)
		return send_error(c->conn, MHD_HTTP_NOT_FOUND, "get-status: unknown or expired token");
	return send_json(c->conn, MHD_HTTP_OK, env);
}

static enum MHD_Result cancel_async(call *c)
{
	const char *token = g_hash_table_lookup(c->form, "token");
	if (!token || !*token)
		return send_error(c->conn, MHD_HTTP_OK, "cancel-async: argument 'token' is missing");
	if (!mv_jobs_cancel(c->srv->jobs, token, c->user->name))
		return send_error(c->conn, MHD_HTTP_NOT_FOUND, "cancel-async: unknown or expired token");
	return send_json(c->conn, MHD_HTTP_OK, mv_jobs_status(c->srv->jobs, token, 0, 0, c->user->name));
}

static enum MHD_Result route(call *c, const char *path)
{
	if (g_str_has_prefix(path, "/api/invoke/"))
		return invoke(c, path + strlen("/api/invoke/"));
	if (strcmp(path, "/api/get-status") == 0)
		return get_status(c);
	if (strcmp(path, "/api/cancel-async") == 0)
		return cancel_async(c);
	return send_json(c->conn, MHD_HTTP_OK, mv_command_metadata());
}

static bool known_path(const char *path)
{
	return (g_str_has_prefix(path, "/api/invoke/") && path[strlen("/api/invoke/")]) ||
	       strcmp(path, "/api/get-status") == 0 || strcmp(path, "/api/cancel-async") == 0 ||
	       strcmp(path, "/api/get-metadata") == 0;
}

static enum MHD_Result authorised_call(call *c, const char *path, request *rq)
{
	GError *err = NULL;
	if (!(c->user->login_privileges & MV_LOGIN_API))
		return deny(c, "use the Administration API");
	note_session(c->srv, c->user->name, c->remote);
	c->form = mv_form_decode(rq->body ? (const char *)rq->body->data : "", rq->body ? rq->body->len : 0, &err);
	if (!c->form) {
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_BAD_REQUEST, err->message);
		g_error_free(err);
		return rc;
	}
	return route(c, path);
}

static enum MHD_Result answer(mv_api_server *srv, struct MHD_Connection *conn, const char *url, const char *method,
                              request *rq)
{
	char *path = mv_api_normalize_path(url);
	call c = { .srv = srv, .conn = conn, .remote = remote_address(conn) };
	GError *err = NULL;
	enum MHD_Result rc;
	if (!known_path(path)) {
		rc = send_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint: the API is POST /api/invoke/<Function>, "
		                "/api/get-status, /api/cancel-async, /api/get-metadata");
	} else if (strcmp(method, "POST") != 0) {
		rc = send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "the Administration API takes POST requests");
	} else if (rq->too_large) {
		rc = send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than 32 MiB");
	} else if (!(c.inst = instance_for_thread(srv->data_dir, &err))) {
		rc = send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err->message);
		g_error_free(err);
	} else {
		auth_outcome a = authenticate(srv, c.inst, conn, c.remote, &c.user);
		if (a == AUTH_FAILED)
			rc = send_error(conn, MHD_HTTP_UNAUTHORIZED, "unknown user or wrong password");
		else if (a == AUTH_ERROR)
			rc = send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot check credentials now (see the server log)");
		else
			rc = authorised_call(&c, path, rq);
	}
	mv_log_debug("%s %s from %s as %s", method, path, c.remote, c.user ? c.user->name : "-");
	if (c.form)
		g_hash_table_destroy(c.form);
	mv_user_free(c.user);
	g_free(c.remote);
	g_free(path);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	request *rq = *con_cls;
	if (!rq) {
		*con_cls = g_new0(request, 1);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!rq->too_large && (rq->body ? rq->body->len : 0) + *upload_data_size > MAX_BODY_BYTES) {
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
	return answer(cls, conn, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	request *rq = *con_cls;
	if (!rq)
		return;
	if (rq->body)
		g_byte_array_unref(rq->body);
	g_free(rq);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char *text = g_strdup_vprintf(fmt, ap);
	mv_log_debug("http: %s", g_strchomp(text));
	g_free(text);
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

static int tls_material_load(const mv_service_config *cfg, tls_material *t, GError **error)
{
	GByteArray *cert = NULL, *key = NULL;
	if (!cfg->certificate || !cfg->private_key) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: [tls] certificate and private_key are not set", cfg->path);
		return -1;
	}
	if (mv_read_file(cfg->certificate, CERT_MAX_BYTES, &cert, error) < 0 ||
	    mv_read_file(cfg->private_key, CERT_MAX_BYTES, &key, error) < 0) {
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

static struct MHD_Daemon *start_daemon(mv_api_server *srv, const char *listen, const tls_material *t, int fd,
                                       GError **error)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int port;
	if (resolve_listen(listen, &addr, &len, &port, error) < 0)
		return NULL;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ITC |
	                 MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, t->key_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1" },
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->cfg.max_connections, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL },
		{ fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR, fd >= 0 ? fd : 0,
		  fd >= 0 ? NULL : (void *)&addr },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY,
	                                        opts, MHD_OPTION_END);
	if (!d)
		g_set_error(error, MV_ERROR, MV_ERR_IO,
		            "cannot listen on %s (address in use, not local, or the certificate is not usable)", listen);
	return d;
}

static int start_all(mv_api_server *srv, const tls_material *t, GPtrArray *fds, GPtrArray *out, GError **error)
{
	for (guint i = 0; i < srv->cfg.listen->len; i++) {
		int fd = fds && i < fds->len ? GPOINTER_TO_INT(g_ptr_array_index(fds, i)) - 1 : -1;
		struct MHD_Daemon *d = start_daemon(srv, g_ptr_array_index(srv->cfg.listen, i), t, fd, error);
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
 * the lock; MHD_stop_daemon does not call back into us when no
 * connection is left, so holding it is safe. */
static void reap_locked(mv_api_server *srv, bool all)
{
	double now = mv_monotonic();
	for (guint i = 0; i < srv->retired->len;) {
		retired_daemon *r = g_ptr_array_index(srv->retired, i);
		if (!all && connections_of(r->daemon) > 0 && now < r->deadline) {
			i++;
			continue;
		}
		if (all)
			g_mutex_unlock(&srv->lock); /* its connections may still need the lock to finish */
		MHD_stop_daemon(r->daemon);
		if (all)
			g_mutex_lock(&srv->lock);
		g_ptr_array_remove_index(srv->retired, i);
		g_free(r);
	}
}

static gpointer reaper(gpointer p)
{
	mv_api_server *srv = p;
	g_mutex_lock(&srv->lock);
	while (!srv->stopping) {
		reap_locked(srv, false);
		g_cond_wait_until(&srv->wake, &srv->lock, g_get_monotonic_time() + G_TIME_SPAN_SECOND / 4);
	}
	g_mutex_unlock(&srv->lock);
	return NULL;
}

static void retire(mv_api_server *srv, GPtrArray *daemons)
{
	g_mutex_lock(&srv->lock);
	for (guint i = 0; i < daemons->len; i++) {
		retired_daemon *r = g_new0(retired_daemon, 1);
		r->daemon = g_ptr_array_index(daemons, i);
		r->deadline = mv_monotonic() + RETIRE_GRACE_SECONDS;
		g_ptr_array_add(srv->retired, r);
	}
	g_mutex_unlock(&srv->lock);
	g_ptr_array_unref(daemons);
}

static void request_reload(void *opaque)
{
	/* The main loop owns reloading; the signal is the one way in. */
	if (kill(getpid(), SIGHUP) < 0)
		mv_log_warn("cannot ask for a reload: %s", g_strerror(errno));
}


mv_api_server *mv_api_server_start(const mv_service_config *cfg, GError **error)
{
	mv_api_server *srv = g_new0(mv_api_server, 1);
	g_mutex_init(&srv->lock);
	g_cond_init(&srv->wake);
	mv_service_config_copy(&srv->cfg, cfg);
	srv->data_dir = g_strdup(cfg->data_dir);
	srv->daemons = g_ptr_array_new();
	srv->jobs = mv_jobs_new(cfg->status_retention_seconds);
	srv->failures = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	srv->auth_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	srv->verifying = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_cond_init(&srv->verified);
	srv->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, session_free);
	randombytes_buf(srv->cache_key, sizeof srv->cache_key);
	srv->config_path = g_strdup(cfg->path);
	srv->retired = g_ptr_array_new();
	srv->reaper = g_thread_try_new("mv-reaper", reaper, srv, error);
	if (!srv->reaper) {
		mv_api_server_stop(&srv);
		return NULL;
	}
	srv->hooks = (mv_service_hooks){ .config_path = srv->config_path, .reload = request_reload,
		                         .running = running_config, .sessions = sessions_json, .opaque = srv };
	tls_material t = { 0 };
	int rc = tls_material_load(cfg, &t, error);
	if (rc == 0)
		rc = start_all(srv, &t, NULL, srv->daemons, error);
	tls_material_clear(&t);
	if (rc < 0)
		mv_api_server_stop(&srv);
	return srv;
}

static bool same_listen(const mv_service_config *a, const mv_service_config *b)
{
	if (a->listen->len != b->listen->len)
		return false;
	for (guint i = 0; i < a->listen->len; i++)
		if (strcmp(g_ptr_array_index(a->listen, i), g_ptr_array_index(b->listen, i)) != 0)
			return false;
	return true;
}

int mv_api_server_reload(mv_api_server *srv, const mv_service_config *cfg, GError **error)
{
	if (strcmp(cfg->data_dir, srv->data_dir) != 0)
		mv_log_warn("the data directory changed in %s: that takes a restart", cfg->path);
	tls_material t = { 0 };
	if (tls_material_load(cfg, &t, error) < 0)
		return -1;
	bool keep_sockets = same_listen(cfg, &srv->cfg);
	GPtrArray *old = srv->daemons, *fds = g_ptr_array_new(), *fresh = g_ptr_array_new();
	mv_service_config previous = { 0 };
	mv_service_config_copy(&previous, &srv->cfg);
	g_mutex_lock(&srv->lock);
	mv_service_config_copy(&srv->cfg, cfg);
	g_mutex_unlock(&srv->lock);
	if (keep_sockets)
		for (guint i = 0; i < old->len; i++)
			g_ptr_array_add(fds, GINT_TO_POINTER(MHD_quiesce_daemon(g_ptr_array_index(old, i)) + 1));
	else
		stop_daemons(g_ptr_array_ref(old));
	int rc = start_all(srv, &t, keep_sockets ? fds : NULL, fresh, error);
	if (rc < 0) {
		/* Back to the previous configuration: with sockets handed over
		 * those listeners are gone, so restart them from scratch. */
		stop_daemons(fresh);
		g_mutex_lock(&srv->lock);
		mv_service_config_copy(&srv->cfg, &previous);
		g_mutex_unlock(&srv->lock);
		mv_log_error("reload failed; the API keeps its previous configuration where it can");
		fresh = g_ptr_array_new();
		GError *again = NULL;
		tls_material old_t = { 0 };
		if (tls_material_load(&srv->cfg, &old_t, &again) < 0 ||
		    start_all(srv, &old_t, keep_sockets ? fds : NULL, fresh, &again) < 0) {
			mv_log_error("the API cannot listen again: %s", again->message);
			g_error_free(again);
		}
		tls_material_clear(&old_t);
	}
	srv->daemons = fresh;
	if (keep_sockets)
		retire(srv, old);
	else
		g_ptr_array_unref(old);
	mv_jobs_set_retention(srv->jobs, srv->cfg.status_retention_seconds);
	mv_service_config_clear(&previous);
	g_ptr_array_unref(fds);
	tls_material_clear(&t);
	return rc;
}

void mv_api_server_stop(mv_api_server **sp)
{
	mv_api_server *srv = *sp;
	if (!srv)
		return;
	*sp = NULL;
	g_mutex_lock(&srv->lock);
	srv->stopping = true;
	g_cond_broadcast(&srv->wake);
	g_cond_broadcast(&srv->verified);
	g_mutex_unlock(&srv->lock);
	/* Stop accepting, end the get-status waits, let the requests in
	 * flight finish, then stop the jobs at a safe point. */
	GArray *fds = g_array_new(FALSE, FALSE, sizeof(MHD_socket));
	for (guint i = 0; i < srv->daemons->len; i++) {
		MHD_socket fd = MHD_quiesce_daemon(g_ptr_array_index(srv->daemons, i));
		if (fd != MHD_INVALID_SOCKET)
			g_array_append_val(fds, fd);
	}
	mv_jobs_wake_all(srv->jobs);
	if (srv->reaper)
		g_thread_join(srv->reaper);
	g_mutex_lock(&srv->lock);
	reap_locked(srv, true);
	g_mutex_unlock(&srv->lock);
	g_ptr_array_unref(srv->retired);
	stop_daemons(srv->daemons);
	for (guint i = 0; i < fds->len; i++)
		close(g_array_index(fds, MHD_socket, i));
	g_array_unref(fds);
	mv_jobs_free(&srv->jobs);
	g_hash_table_destroy(srv->failures);
	g_hash_table_destroy(srv->auth_cache);
	g_hash_table_destroy(srv->verifying);
	g_cond_clear(&srv->verified);
	g_hash_table_destroy(srv->sessions);
	mv_service_config_clear(&srv->cfg);
	g_free(srv->data_dir);
	g_free(srv->config_path);
	g_cond_clear(&srv->wake);
	g_mutex_clear(&srv->lock);
	g_free(srv);
}
