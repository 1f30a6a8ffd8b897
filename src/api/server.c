/* api/server: the Administration API over HTTPS.
 *
 * The listeners are net/https (thread-per-connection: get-status long-polls
 * block their connection's thread and nothing else); the logon guard is
 * net/logon, shared with every server of the process.  Each request:
 * normalise the path (MailStore clients double slashes), authenticate
 * (HTTP Basic on every request, through the guard's cache and growing
 * delay) on its headers — a request that fails is answered before any of
 * its body is read, so strangers' bodies never take memory —, check the
 * `api` login privilege and the function's privilege, then either run the
 * function through the command registry or hand it to the background
 * jobs. */
#include "api/api.h"
#include "net/https.h"

#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY_BYTES (32u * 1024u * 1024u)
#define MAX_STATUS_WAIT_MS 60000
#define IDLE_SECONDS 120

struct mv_api_server {
	GMutex lock;                 /* guards cfg */
	char *data_dir;              /* fixed for the server's life (connection threads read it) */
	mv_service_config cfg;       /* written by the main thread only, under the lock */
	mv_https *https;
	mv_logon *logon;             /* borrowed: the process's one guard */
	mv_jobs *jobs;
	mv_service_hooks hooks;
	char *config_path;           /* stable storage for hooks.config_path */
};

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
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, "Retry-After", MV_HTTPS_RETRY_AFTER);
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *message)
{
	return send_json(conn, status, mv_command_error_envelope(message, NULL));
}

/* ---- who is asking ------------------------------------------------------------- */

static void audit_denied(mv_instance *inst, const char *user, const char *remote, const char *event,
                         const char *details)
{
	GError *err = NULL;
	if (mv_audit_append(inst, user, remote, event, false, details, &err) < 0) {
		mv_log_error("audit log: cannot record %s from %s: %s", event, remote, err->message);
		g_error_free(err);
	}
}

static void running_config(void *opaque, mv_service_config *out)
{
	mv_api_server *srv = opaque;
	memset(out, 0, sizeof *out);
	g_mutex_lock(&srv->lock);
	mv_service_config_copy(out, &srv->cfg);
	g_mutex_unlock(&srv->lock);
}

static json_t *sessions_json(void *opaque)
{
	mv_api_server *srv = opaque;
	return mv_logon_sessions_json(srv->logon);
}

/* Checks the credentials of a request; on success *user_r. */
static mv_logon_result authenticate(mv_api_server *srv, mv_instance *inst, struct MHD_Connection *conn,
                                    const char *remote, mv_user **user_r)
{
	const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	char *name = NULL, *password = NULL;
	GError *err = NULL;
	if (!header || g_ascii_strncasecmp(header, "Basic ", 6) != 0)
		return MV_LOGON_FAILED; /* no credentials at all: a client's first probe, not an attack */
	if (mv_basic_auth_decode(header, &name, &password, &err) < 0) {
		/* Credentials that do not decode are a failed attempt like a wrong
		 * password: delayed the same, and audited (under no account). */
		mv_logon_failed(srv->logon, inst, "", remote, "Administration API", err->message);
		g_error_free(err);
		return MV_LOGON_FAILED;
	}
	mv_logon_result r = mv_logon_check(srv->logon, inst, name, password, MV_LOGON_CLIENT, remote,
	                                   "Administration API", user_r);
	sodium_memzero(password, strlen(password));
	g_free(password);
	g_free(name);
	return r;
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

/* Refusals (unknown function, privilege, arguments) are audited by the
 * registry's one entry point; this only chooses the HTTP status. */
static enum MHD_Result invoke(call *c, const char *function)
{
	mv_command_ctx who = { .inst = c->inst, .user = c->user->name, .remote = c->remote };
	GError *err = NULL;
	json_t *args = NULL;
	const mv_command *cmd = mv_command_prepare(&who, function, c->user->privileges, c->form, &args, &err);
	if (!cmd) {
		unsigned status = g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND) ? MHD_HTTP_NOT_FOUND
		                  : g_error_matches(err, MV_ERROR, MV_ERR_DENIED) ? MHD_HTTP_FORBIDDEN
		                                                                   : MHD_HTTP_OK;
		enum MHD_Result rc = send_error(c->conn, status, err->message);
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
	mv_command_ctx ctx = { .inst = c->inst, .user = c->user->name, .remote = c->remote, .service = &c->srv->hooks };
	return mv_api_send_answer(c->conn, cmd, &ctx, args, access);
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

static enum MHD_Result authorised_call(call *c, const char *path, const GByteArray *body)
{
	GError *err = NULL;
	if (!(c->user->login_privileges & MV_LOGIN_API))
		return deny(c, "use the Administration API");
	mv_logon_note_session(c->srv->logon, c->user->name, c->remote, "api");
	c->form = mv_form_decode(body ? (const char *)body->data : "", body ? body->len : 0, &err);
	if (!c->form) {
		enum MHD_Result rc = send_error(c->conn, MHD_HTTP_BAD_REQUEST, err->message);
		g_error_free(err);
		return rc;
	}
	return route(c, path);
}

static void free_user(gpointer user)
{
	mv_user_free(user);
}

/* On the headers, before any of the body is read: an unknown endpoint,
 * another method than POST and credentials that do not hold are answered
 * here.  The credentials are checked once per request (an Argon2id
 * verification when not cached): the user goes to answer() as the
 * request's state. */
static void admit(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                  mv_https_admission *a)
{
	mv_api_server *srv = cls;
	char *path = mv_api_normalize_path(url), *remote = mv_https_remote_address(conn);
	mv_instance *inst = NULL;
	mv_user *user = NULL;
	GError *err = NULL;
	a->answered = true;
	if (!known_path(path)) {
		a->rc = send_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint: the API is POST /api/invoke/<Function>, "
		                   "/api/get-status, /api/cancel-async, /api/get-metadata");
	} else if (strcmp(method, "POST") != 0) {
		a->rc = send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "the Administration API takes POST requests");
	} else if (!(inst = mv_https_thread_instance(srv->data_dir, &err))) {
		a->rc = send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err->message);
		g_error_free(err);
	} else {
		mv_logon_result r = authenticate(srv, inst, conn, remote, &user);
		if (r == MV_LOGON_FAILED)
			a->rc = send_error(conn, MHD_HTTP_UNAUTHORIZED, "unknown user or wrong password");
		else if (r == MV_LOGON_ERROR)
			a->rc = send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			                   "cannot check credentials now (see the server log)");
		else
			a->answered = false;
	}
	if (a->answered) {
		mv_log_debug("%s %s from %s as -", method, path, remote);
	} else {
		a->state = user;
		a->free_state = free_user;
	}
	g_free(path);
	g_free(remote);
}

/* user: the one admit() authenticated (the request's, freed with it). */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const GByteArray *body, mv_https_body outcome, void *user)
{
	mv_api_server *srv = cls;
	char *path = mv_api_normalize_path(url);
	call c = { .srv = srv, .conn = conn, .user = user, .remote = mv_https_remote_address(conn) };
	GError *err = NULL;
	enum MHD_Result rc;
	if (outcome == MV_HTTPS_BODY_TOO_LARGE) {
		rc = send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than 32 MiB");
	} else if (outcome == MV_HTTPS_BODY_BUSY) {
		rc = send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
		                "the server holds as many request bodies as it may at once; try again shortly");
	} else if (!c.user) {
		rc = send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "the request reached the API unauthenticated");
	} else if (!(c.inst = mv_https_thread_instance(srv->data_dir, &err))) {
		rc = send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err->message);
		g_error_free(err);
	} else {
		rc = authorised_call(&c, path, body);
	}
	mv_log_debug("%s %s from %s as %s", method, path, c.remote, c.user ? c.user->name : "-");
	if (c.form)
		g_hash_table_destroy(c.form);
	g_free(c.remote);
	g_free(path);
	return rc;
}

/* ---- life cycle ------------------------------------------------------------------ */

static void https_options(mv_api_server *srv, const mv_service_config *cfg, mv_https_options *o)
{
	*o = (mv_https_options){ .what = "the Administration API", .listen = cfg->listen,
		                 .certificate = cfg->certificate, .private_key = cfg->private_key,
		                 .max_connections = cfg->max_connections, .idle_seconds = IDLE_SECONDS,
		                 .max_body = MAX_BODY_BYTES, .admit = admit, .handler = answer, .cls = srv };
}

static void request_reload(void *opaque)
{
	/* The main loop owns reloading; the signal is the one way in. */
	if (kill(getpid(), SIGHUP) < 0)
		mv_log_warn("cannot ask for a reload: %s", g_strerror(errno));
}

const mv_service_hooks *mv_api_server_hooks(mv_api_server *srv)
{
	return &srv->hooks;
}

mv_api_server *mv_api_server_start(const mv_service_config *cfg, mv_logon *logon, GError **error)
{
	mv_api_server *srv = g_new0(mv_api_server, 1);
	g_mutex_init(&srv->lock);
	mv_service_config_copy(&srv->cfg, cfg);
	srv->data_dir = g_strdup(cfg->data_dir);
	srv->logon = logon;
	srv->jobs = mv_jobs_new(cfg->status_retention_seconds);
	srv->config_path = g_strdup(cfg->path);
	srv->hooks = (mv_service_hooks){ .config_path = srv->config_path, .reload = request_reload,
		                         .running = running_config, .sessions = sessions_json, .opaque = srv };
	mv_https_options o;
	https_options(srv, cfg, &o);
	if (!(srv->https = mv_https_start(&o, error)))
		mv_api_server_stop(&srv);
	return srv;
}

int mv_api_server_reload(mv_api_server *srv, const mv_service_config *cfg, GError **error)
{
	if (strcmp(cfg->data_dir, srv->data_dir) != 0)
		mv_log_warn("the data directory changed in %s: that takes a restart", cfg->path);
	mv_https_options o;
	https_options(srv, cfg, &o);
	int rc = mv_https_reload(srv->https, &o, error);
	g_mutex_lock(&srv->lock);
	if (rc == 0)
		mv_service_config_copy(&srv->cfg, cfg);
	g_mutex_unlock(&srv->lock);
	if (rc < 0)
		mv_log_error("reload failed; the API keeps its previous configuration where it can");
	mv_jobs_set_retention(srv->jobs, srv->cfg.status_retention_seconds);
	return rc;
}

void mv_api_server_quiesce(mv_api_server *srv)
{
	if (!srv)
		return;
	mv_https_quiesce(srv->https);
	mv_jobs_wake_all(srv->jobs);
}

void mv_api_server_stop(mv_api_server **sp)
{
	mv_api_server *srv = *sp;
	if (!srv)
		return;
	*sp = NULL;
	/* Stop accepting, end the get-status waits, let the requests in
	 * flight finish — the woken get-status calls among them: stopping the
	 * listeners before they are answered would cut their connections —
	 * then stop the jobs at a safe point. */
	mv_api_server_quiesce(srv);
	mv_https_stop(&srv->https);
	mv_jobs_free(&srv->jobs);
	mv_service_config_clear(&srv->cfg);
	g_free(srv->data_dir);
	g_free(srv->config_path);
	g_mutex_clear(&srv->lock);
	g_free(srv);
}
