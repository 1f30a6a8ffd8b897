/* web/server: Web Access's HTTPS listeners, its static page and the
 * headers every answer carries.
 *
 * Listeners are net/https, like the API's (thread per connection, the
 * connection thread's own instance).  Every response carries the same
 * defensive headers — a Content-Security-Policy that lets the page run only
 * its own scripts and reach only this server, nosniff, no referrer, HSTS,
 * no framing — except that the frame showing a message's HTML gets the
 * strictest policy of all (no script at all, sandboxed, remote images only
 * when the user asked) and may be framed by the page.  The page is the
 * embedded assets; everything under /web/api is api.c and content.c.
 * Only a logged-on session may send more than a logon form: the session
 * cookie is checked on the headers, before any of the body is read. */
#include "web/internal.h"
#include "web/assets.h"

#include <string.h>

#define MAX_BODY_BYTES (64u * 1024u)
#define IDLE_SECONDS 60

#define CSP_PAGE "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; font-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; " \
	"frame-ancestors 'none'"
#define CSP_FRAME_COMMON "default-src 'none'; style-src 'unsafe-inline'; font-src data:; form-action 'none'; " \
	"base-uri 'none'; frame-ancestors 'self'; sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
#define CSP_FRAME "img-src 'self' data:; " CSP_FRAME_COMMON
#define CSP_FRAME_REMOTE "img-src 'self' data: https: http:; " CSP_FRAME_COMMON
#define CSP_DOWNLOAD "default-src 'none'; sandbox; frame-ancestors 'self'"

/* ---- answering ------------------------------------------------------------------- */

static void add_headers(struct MHD_Response *resp, mv_web_kind kind)
{
	const char *csp = kind == MV_WEB_PAGE ? CSP_PAGE : kind == MV_WEB_FRAME ? CSP_FRAME
	                  : kind == MV_WEB_FRAME_REMOTE ? CSP_FRAME_REMOTE : CSP_DOWNLOAD;
	bool framed = kind != MV_WEB_PAGE;
	MHD_add_response_header(resp, "Content-Security-Policy", csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
	MHD_add_response_header(resp, "X-Frame-Options", framed ? "SAMEORIGIN" : "DENY");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()");
}

static enum MHD_Result queue(mv_web_request *r, unsigned status, struct MHD_Response *resp, mv_web_kind kind)
{
	if (!resp)
		return MHD_NO;
	add_headers(resp, kind);
	if (r->set_cookie)
		MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, "Retry-After", MV_HTTPS_RETRY_AFTER);
	enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static void unref_body(void *body)
{
	g_bytes_unref(body);
}

enum MHD_Result mv_web_send(mv_web_request *r, unsigned status, mv_web_kind kind, const char *content_type,
                            GBytes *body, const char *disposition)
{
	gsize len = 0;
	const void *data = g_bytes_get_data(body, &len);
	/* The response holds the bytes until they are sent: a message's
	 * hundreds of megabytes are never copied. */
	struct MHD_Response *resp =
		MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, unref_body, body);
	if (!resp) {
		g_bytes_unref(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (disposition)
		MHD_add_response_header(resp, "Content-Disposition", disposition);
	return queue(r, status, resp, kind);
}

enum MHD_Result mv_web_send_json(mv_web_request *r, unsigned status, json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(value);
	if (!text)
		return MHD_NO;
	struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(strlen(text), text, free);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	return queue(r, status, resp, MV_WEB_PAGE);
}

enum MHD_Result mv_web_send_error(mv_web_request *r, unsigned status, const char *code, const char *message)
{
	return mv_web_send_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

enum MHD_Result mv_web_send_gerror(mv_web_request *r, const GError *err)
{
	switch (err->code) {
	case MV_ERR_NOT_FOUND: return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", err->message);
	case MV_ERR_INVALID: return mv_web_send_error(r, MHD_HTTP_BAD_REQUEST, "invalid", err->message);
	case MV_ERR_DENIED: return mv_web_send_error(r, MHD_HTTP_FORBIDDEN, "denied", err->message);
	case MV_ERR_AUTH: return mv_web_send_error(r, MHD_HTTP_UNAUTHORIZED, "auth", err->message);
	case MV_ERR_LIMIT: return mv_web_send_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "limit", err->message);
	case MV_ERR_STATE: return mv_web_send_error(r, MHD_HTTP_CONFLICT, "state", err->message);
	default:
		mv_log_error("web: %s %s for %s: %s", r->method, r->url, r->remote, err->message);
		return mv_web_send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", err->message);
	}
}

void mv_web_audit(mv_web_request *r, const char *event, bool success, const char *details)
{
	GError *err = NULL;
	const char *user = r->user ? r->user->name : r->has_session ? r->session.user : "";
	if (mv_audit_append(r->inst, user, r->remote, event, success, details, &err) < 0) {
		mv_log_error("audit log: cannot record %s from %s: %s", event, r->remote, err->message);
		g_error_free(err);
	}
}

void mv_web_audit_activity(mv_web_request *r, const char *event, const char *details)
{
	if (mv_audit_wanted(r->inst, event, false))
		mv_web_audit(r, event, true, details);
}

/* ---- the page --------------------------------------------------------------------- */

static const mv_web_asset *find_asset(const char *path)
{
	for (const mv_web_asset *a = mv_web_assets; a->path; a++)
		if (strcmp(a->path, path) == 0)
			return a;
	return NULL;
}

static bool accepts_gzip(struct MHD_Connection *conn)
{
	const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	return ae && strstr(ae, "gzip");
}

/* Static bytes need no copy; a repeated visit revalidates by ETag. */
static enum MHD_Result send_asset(mv_web_request *r, const mv_web_asset *a)
{
	const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool fresh = inm && strcmp(inm, a->etag) == 0;
	bool gz = !fresh && a->gzip && accepts_gzip(r->conn);
	struct MHD_Response *resp =
		fresh ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
		      : MHD_create_response_from_buffer(gz ? a->gzip_len : a->len, (void *)(gz ? a->gzip : a->data),
		                                        MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", a->content_type);
	MHD_add_response_header(resp, "ETag", a->etag);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "Vary", "Accept-Encoding");
	if (gz)
		MHD_add_response_header(resp, "Content-Encoding", "gzip");
	return queue(r, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp, MV_WEB_PAGE);
}

static enum MHD_Result page(mv_web_request *r)
{
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return mv_web_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid", "the page is read with GET");
	const char *path = NULL;
	if (strcmp(r->url, "/") == 0 || strcmp(r->url, "/index.html") == 0)
		path = "index.html";
	else if (g_str_has_prefix(r->url, "/assets/"))
		path = r->url + strlen("/assets/");
	const mv_web_asset *a = path ? find_asset(path) : NULL;
	if (!a)
		return mv_web_send(r, MHD_HTTP_NOT_FOUND, MV_WEB_PAGE, "text/plain; charset=utf-8",
		                   g_bytes_new_static("not found\n", 10), NULL);
	return send_asset(r, a);
}

/* ---- requests ----------------------------------------------------------------------- */

/* The bound of a request's body, from its headers: MAX_BODY_BYTES with
 * the cookie of a logged-on session, a logon form's otherwise (the logon
 * and its second factor). */
static void admit(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                  mv_https_admission *a)
{
	mv_web_server *srv = cls;
	char *token = mv_web_cookie_value(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE),
	                                  MV_WEB_COOKIE);
	mv_web_session s = { 0 };
	bool logged_on = token && mv_web_session_get(srv->sessions, token, &s) && s.stage == MV_WEB_STAGE_AUTHENTICATED;
	mv_web_session_clear(&s);
	g_free(token);
	if (!logged_on)
		a->max_body = MIN(a->max_body, MV_HTTPS_ANONYMOUS_BODY_BYTES);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const GByteArray *body, mv_https_body outcome, void *state)
{
	mv_web_server *srv = cls;
	mv_web_request r = { .srv = srv, .conn = conn, .url = url, .method = method, .body = body,
		             .remote = mv_https_remote_address(conn) };
	GError *err = NULL;
	enum MHD_Result rc;
	if (!g_str_has_prefix(url, "/web/api/")) {
		rc = page(&r);
	} else if (outcome == MV_HTTPS_BODY_TOO_LARGE) {
		rc = mv_web_send_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "limit",
		                       "request body too large: 64 KiB when logged on, 16 KiB before");
	} else if (outcome == MV_HTTPS_BODY_BUSY) {
		rc = mv_web_send_error(&r, MHD_HTTP_SERVICE_UNAVAILABLE, "limit",
		                       "the server holds as many request bodies as it may at once; try again shortly");
	} else if (!(r.inst = mv_https_thread_instance(srv->data_dir, &err))) {
		rc = mv_web_send_error(&r, MHD_HTTP_SERVICE_UNAVAILABLE, "internal", err->message);
		g_error_free(err);
	} else {
		rc = mv_web_api(&r, url + strlen("/web/api/"));
	}
	mv_log_debug("web: %s %s from %s as %s", method, url, r.remote, r.user ? r.user->name : "-");
	if (r.form)
		g_hash_table_destroy(r.form);
	g_free(r.token);
	if (r.has_session)
		mv_web_session_clear(&r.session);
	mv_user_free(r.user);
	mv_access_free(&r.access);
	g_free(r.set_cookie);
	g_free(r.remote);
	return rc;
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void https_options(mv_web_server *srv, const mv_service_config *cfg, mv_https_options *o)
{
	*o = (mv_https_options){ .what = "Web Access", .listen = cfg->web_listen, .certificate = cfg->certificate,
		                 .private_key = cfg->private_key, .max_connections = cfg->max_connections,
		                 .idle_seconds = IDLE_SECONDS, .max_body = MAX_BODY_BYTES, .admit = admit,
		                 .handler = answer, .cls = srv };
}

mv_web_server *mv_web_server_start(const mv_service_config *cfg, mv_logon *logon, GError **error)
{
	mv_web_server *srv = g_new0(mv_web_server, 1);
	srv->data_dir = g_strdup(cfg->data_dir);
	srv->logon = logon;
	srv->sessions = mv_web_sessions_new(cfg->web_idle_seconds, cfg->web_session_seconds);
	mv_https_options o;
	https_options(srv, cfg, &o);
	if (!(srv->https = mv_https_start(&o, error)))
		mv_web_server_stop(&srv);
	return srv;
}

int mv_web_server_reload(mv_web_server *srv, const mv_service_config *cfg, GError **error)
{
	mv_web_sessions_set_timeouts(srv->sessions, cfg->web_idle_seconds, cfg->web_session_seconds);
	mv_https_options o;
	https_options(srv, cfg, &o);
	return mv_https_reload(srv->https, &o, error);
}

void mv_web_server_stop(mv_web_server **sp)
{
	mv_web_server *srv = *sp;
	if (!srv)
		return;
	*sp = NULL;
	mv_https_quiesce(srv->https);
	mv_https_stop(&srv->https);
	mv_web_sessions_free(&srv->sessions);
	g_free(srv->data_dir);
	g_free(srv);
}
