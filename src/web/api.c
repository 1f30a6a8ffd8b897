/* web/api: the JSON endpoint under /web/api (docs/web.md lists it).
 *
 * Three parts.  The logon: the password through the process's logon guard
 * (the API's growing delay), then a TOTP code or the enrolment of one, in a
 * session whose cookie only the server can read.  The archive: each
 * request names a command registry function and hands it the session
 * user's privileges and folder rights, exactly as the Administration API
 * does — the search, the folder tree and the message view are those
 * functions' results.  The user's own settings: MFA (which belongs to the
 * logon, so it is here) and the registry's app password and password
 * functions.
 *
 * Every POST must carry X-Requested-With (which a cross-site form cannot
 * send and a cross-site script cannot without a preflight we never
 * grant), the session's CSRF token once there is a session, and, when the
 * browser sends one, an Origin naming this server. */
#include "web/internal.h"
#include "search/search.h"

#include <sodium.h>
#include <string.h>

#define MAX_PAGE 200
#define DEFAULT_PAGE 50
#define MAX_WRONG_CODES 5
#define SERVICE "Web Access"

/* ---- the request's checks ------------------------------------------------------------- */

static const char *header(mv_web_request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static bool same_origin(mv_web_request *r)
{
	const char *origin = header(r, "Origin"), *host = header(r, MHD_HTTP_HEADER_HOST);
	if (!origin)
		return true;
	if (!host || !g_str_has_prefix(origin, "https://"))
		return false;
	return strcmp(origin + strlen("https://"), host) == 0;
}

static bool token_equal(const char *a, const char *b)
{
	return a && b && strlen(a) == strlen(b) && sodium_memcmp(a, b, strlen(a)) == 0;
}

/* A POST from our own page: the header, the origin, the session's token
 * (when the endpoint needs a session), the form.  Answers the refusal
 * itself and returns false. */
static bool accept_post(mv_web_request *r, bool needs_csrf, enum MHD_Result *rc)
{
	GError *err = NULL;
	const char *xrw = header(r, "X-Requested-With");
	if (strcmp(r->method, "POST") != 0) {
		*rc = mv_web_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid", "this endpoint takes POST requests");
		return false;
	}
	if (!xrw || strcmp(xrw, "mailvault") != 0 || !same_origin(r) ||
	    (needs_csrf && !token_equal(header(r, "X-CSRF-Token"), r->session.csrf))) {
		mv_web_audit(r, "AccessDenied", false, "Web Access: a request without this page's CSRF protection");
		*rc = mv_web_send_error(r, MHD_HTTP_FORBIDDEN, "csrf", "request refused: it did not come from this page");
		return false;
	}
	r->form = mv_form_decode(r->body ? (const char *)r->body->data : "", r->body ? r->body->len : 0, &err);
	if (!r->form) {
		*rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return false;
	}
	return true;
}

static const char *field(mv_web_request *r, const char *name)
{
	return r->form ? g_hash_table_lookup(r->form, name) : NULL;
}

static bool may_use_web(const mv_user *u)
{
	return (u->login_privileges & MV_LOGIN_WEB) && (u->privileges & (MV_PRIV_LOGIN | MV_PRIV_ADMIN));
}

/* The request's session, its user read afresh: a session ends when the
 * user is gone, lost the web privilege, or changed password or factors
 * since (the auth generation moved on). */
static bool load_session(mv_web_request *r)
{
	r->token = mv_web_cookie_value(header(r, MHD_HTTP_HEADER_COOKIE), MV_WEB_COOKIE);
	if (!r->token || !mv_web_session_get(r->srv->sessions, r->token, &r->session))
		return false;
	r->has_session = true;
	r->user = mv_user_get(r->inst, r->session.user, NULL);
	if (r->user && r->user->auth_generation == r->session.auth_generation && may_use_web(r->user))
		return true;
	mv_web_session_end(r->srv->sessions, r->token);
	mv_user_free(r->user);
	r->user = NULL;
	return false;
}

static enum MHD_Result expired(mv_web_request *r)
{
	return mv_web_send_error(r, MHD_HTTP_UNAUTHORIZED, "expired", "not logged in, or the session has ended");
}

/* ---- the session cookie ----------------------------------------------------------------- */

static void set_session_cookie(mv_web_request *r, const char *token)
{
	g_free(r->set_cookie);
	r->set_cookie = token ? g_strdup_printf(MV_WEB_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", token)
	                      : g_strdup(MV_WEB_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
}

static const char *stage_name(mv_web_stage s)
{
	return s == MV_WEB_STAGE_MFA ? "mfa" : s == MV_WEB_STAGE_ENROLL ? "enroll" : "authenticated";
}

/* A new session at stage for the logged-on user (a logon never continues
 * an old session: no fixation). */
static enum MHD_Result start_session(mv_web_request *r, mv_web_stage stage)
{
	if (r->token)
		mv_web_session_end(r->srv->sessions, r->token);
	char *token = mv_web_session_create(r->srv->sessions, r->user->name, stage, r->user->auth_generation);
	if (!token)
		return mv_web_send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "limit", "too many sessions; try again later");
	mv_web_session_clear(&r->session);
	r->has_session = mv_web_session_get(r->srv->sessions, token, &r->session);
	set_session_cookie(r, token);
	g_free(r->token);
	r->token = token;
	if (stage == MV_WEB_STAGE_AUTHENTICATED)
		mv_web_audit_activity(r, "UserLogon", "Web Access");
	return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s}", "stage", stage_name(stage), "csrfToken",
	                                                  r->session.csrf));
}

/* ---- session and logon ------------------------------------------------------------------- */

static json_t *user_json(mv_web_request *r)
{
	mv_mfa_state mfa = MV_MFA_NONE;
	mv_mfa_get_state(r->inst, r->user->name, &mfa, NULL);
	json_t *privs = json_array();
	char *text = mv_privileges_format(MV_PRIVSET_USER, r->user->privileges);
	gchar **items = g_strsplit(text, ",", -1);
	for (gchar **i = items; *i; i++)
		if (strcmp(*i, "none") != 0)
			json_array_append_new(privs, json_string(*i));
	g_strfreev(items);
	g_free(text);
	json_t *emails = json_array();
	for (guint i = 0; i < r->user->email_addresses->len; i++)
		json_array_append_new(emails, json_string(r->user->email_addresses->pdata[i]));
	return json_pack("{s:s, s:s, s:o, s:b, s:s, s:o}", "userName", r->user->name, "fullName",
	                 r->user->full_name ? r->user->full_name : "", "privileges", privs, "canChangePassword",
	                 (r->user->privileges & (MV_PRIV_CHANGE_PASSWORD | MV_PRIV_ADMIN)) != 0, "mfa",
	                 mv_mfa_state_name(mfa), "emailAddresses", emails);
}

static enum MHD_Result get_session(mv_web_request *r, int64_t idle_seconds)
{
	if (!load_session(r))
		return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s}", "stage", "anonymous"));
	if (r->session.stage != MV_WEB_STAGE_AUTHENTICATED)
		return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:s}", "stage",
		                                                  stage_name(r->session.stage), "userName", r->user->name,
		                                                  "csrfToken", r->session.csrf));
	return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:I, s:o}", "stage", "authenticated",
	                                                  "csrfToken", r->session.csrf, "idleTimeoutSeconds",
	                                                  (json_int_t)idle_seconds, "user", user_json(r)));
}

static enum MHD_Result login(mv_web_request *r)
{
	enum MHD_Result rc;
	load_session(r);
	if (!accept_post(r, false, &rc))
		return rc;
	const char *name = field(r, "userName"), *password = field(r, "password");
	if (!name || !*name || !password)
		return mv_web_send_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "userName and password are required");
	mv_user_free(r->user);
	r->user = NULL;
	mv_logon_result res = mv_logon_check(r->srv->logon, r->inst, name, password, MV_LOGON_INTERACTIVE, r->remote,
	                                     SERVICE, &r->user);
	if (res == MV_LOGON_FAILED)
		return mv_web_send_error(r, MHD_HTTP_UNAUTHORIZED, "auth", "unknown user or wrong password");
	if (res == MV_LOGON_ERROR)
		return mv_web_send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                         "cannot check credentials now (see the server log)");
	if (!may_use_web(r->user)) {
		char *msg = g_strdup_printf("user %s may not use Web Access: it needs the login privilege and the web "
		                            "login privilege", r->user->name);
		mv_web_audit(r, "AccessDenied", false, msg);
		rc = mv_web_send_error(r, MHD_HTTP_FORBIDDEN, "denied", msg);
		g_free(msg);
		return rc;
	}
	mv_mfa_state mfa = MV_MFA_NONE;
	GError *err = NULL;
	if (mv_mfa_get_state(r->inst, r->user->name, &mfa, &err) < 0) {
		rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	return start_session(r, mfa == MV_MFA_ACTIVE ? MV_WEB_STAGE_MFA
	                        : mfa == MV_MFA_REQUIRED ? MV_WEB_STAGE_ENROLL : MV_WEB_STAGE_AUTHENTICATED);
}

/* A wrong code costs what a wrong password costs; too many end the logon. */
static enum MHD_Result wrong_code(mv_web_request *r, const GError *err)
{
	unsigned n = mv_web_session_failed_code(r->srv->sessions, r->token);
	mv_logon_failed(r->srv->logon, r->inst, r->user->name, r->remote, SERVICE, err->message);
	if (n >= MAX_WRONG_CODES) {
		mv_web_session_end(r->srv->sessions, r->token);
		set_session_cookie(r, NULL);
		return mv_web_send_error(r, MHD_HTTP_UNAUTHORIZED, "expired", "too many wrong codes: log in again");
	}
	return mv_web_send_error(r, MHD_HTTP_UNAUTHORIZED, "auth", "wrong or expired authentication code");
}

static bool in_stage(mv_web_request *r, mv_web_stage stage)
{
	return load_session(r) && r->session.stage == stage;
}

static enum MHD_Result login_mfa(mv_web_request *r)
{
	enum MHD_Result rc;
	if (!in_stage(r, MV_WEB_STAGE_MFA))
		return expired(r);
	if (!accept_post(r, true, &rc))
		return rc;
	GError *err = NULL;
	if (mv_mfa_verify(r->inst, r->user->name, field(r, "code"), &err) < 0) {
		rc = err->code == MV_ERR_AUTH ? wrong_code(r, err) : mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	return start_session(r, MV_WEB_STAGE_AUTHENTICATED);
}

/* The pending secret of an enrolment: the one shown before, or a new one. */
static int enrolment(mv_web_request *r, bool fresh, char **secret_r, char **uri_r, GError **error)
{
	GError *err = NULL;
	if (mv_mfa_enrolment(r->inst, r->user->name, fresh, secret_r, uri_r, &err) == 0)
		return 0;
	if (fresh || err->code != MV_ERR_STATE) {
		g_propagate_error(error, err);
		return -1;
	}
	g_error_free(err);
	return mv_mfa_enrolment(r->inst, r->user->name, true, secret_r, uri_r, error);
}

static enum MHD_Result send_enrolment(mv_web_request *r, bool fresh, const char *qr_url)
{
	char *secret = NULL, *uri = NULL;
	GError *err = NULL;
	if (enrolment(r, fresh, &secret, &uri, &err) < 0) {
		enum MHD_Result rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	enum MHD_Result rc = mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:s}", "secret", secret,
	                                                                 "otpauthUri", uri, "qr", qr_url));
	sodium_memzero(secret, strlen(secret));
	sodium_memzero(uri, strlen(uri));
	g_free(secret);
	g_free(uri);
	return rc;
}

static enum MHD_Result send_qr(mv_web_request *r)
{
	char *secret = NULL, *uri = NULL;
	GError *err = NULL;
	if (enrolment(r, false, &secret, &uri, &err) < 0) {
		enum MHD_Result rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	char *svg = mv_web_qr_svg(uri);
	sodium_memzero(secret, strlen(secret));
	sodium_memzero(uri, strlen(uri));
	g_free(secret);
	g_free(uri);
	if (!svg)
		return mv_web_send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "cannot draw the QR code");
	return mv_web_send(r, MHD_HTTP_OK, MV_WEB_DOWNLOAD, "image/svg+xml", g_bytes_new_take(svg, strlen(svg)), NULL);
}

/* The user's own change moved its auth generation on: this session goes
 * on with it, the user's other sessions end. */
static void keep_session(mv_web_request *r)
{
	mv_user *u = mv_user_get(r->inst, r->user->name, NULL);
	if (u)
		mv_web_session_set_generation(r->srv->sessions, r->token, u->auth_generation);
	mv_user_free(u);
}

static enum MHD_Result confirm_enrolment(mv_web_request *r, bool during_logon)
{
	GError *err = NULL;
	enum MHD_Result rc;
	if (mv_mfa_confirm(r->inst, r->user->name, field(r, "code"), &err) < 0) {
		rc = err->code == MV_ERR_AUTH ? wrong_code(r, err) : mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	mv_web_audit(r, "UserUpdate", true, "Web Access: MFA set up");
	if (during_logon) {
		mv_user_free(r->user);
		r->user = mv_user_get(r->inst, r->session.user, NULL);
		if (!r->user)
			return expired(r);
		return start_session(r, MV_WEB_STAGE_AUTHENTICATED);
	}
	keep_session(r);
	return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s}", "mfa", "active"));
}

static enum MHD_Result login_enroll(mv_web_request *r, const char *rest)
{
	enum MHD_Result rc;
	if (!in_stage(r, MV_WEB_STAGE_ENROLL))
		return expired(r);
	if (strcmp(rest, "/qr.svg") == 0)
		return send_qr(r);
	if (*rest)
		return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	if (strcmp(r->method, "GET") == 0)
		return send_enrolment(r, false, "/web/api/login/enroll/qr.svg");
	if (!accept_post(r, true, &rc))
		return rc;
	return confirm_enrolment(r, true);
}

static enum MHD_Result logout(mv_web_request *r)
{
	enum MHD_Result rc;
	bool had = load_session(r);
	if (had && !accept_post(r, true, &rc))
		return rc;
	if (r->token)
		mv_web_session_end(r->srv->sessions, r->token);
	if (had)
		mv_web_audit_activity(r, "UserLogoff", "Web Access");
	set_session_cookie(r, NULL);
	return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s}", "stage", "anonymous"));
}

/* ---- the archive, through the command registry ---------------------------------------- */

/* Runs a registry function with the session user's rights; text args as
 * the API takes them.  NULL with *error (code kept) when it failed. */
/* A registry function as the session's user; *log_r (when asked) gets its
 * logOutput, NULL when it said nothing. */
static json_t *run_function_logged(mv_web_request *r, const char *name, GHashTable *args, char **log_r,
                                   GError **error)
{
	mv_command_ctx ctx = { .inst = r->inst, .user = r->user->name, .remote = r->remote, .access = r->access };
	json_t *typed = NULL;
	const mv_command *cmd = mv_command_prepare(&ctx, name, r->user->privileges, args, &typed, error);
	if (!cmd)
		return NULL;
	ctx.log = g_string_new(NULL);
	json_t *result = mv_command_call(cmd, &ctx, typed, error);
	if (log_r && result && ctx.log->len) {
		g_strchomp(ctx.log->str);
		*log_r = g_string_free(g_steal_pointer(&ctx.log), FALSE);
	}
	if (ctx.log)
		g_string_free(ctx.log, TRUE);
	json_decref(typed);
	return result;
}

static json_t *run_function(mv_web_request *r, const char *name, GHashTable *args, GError **error)
{
	return run_function_logged(r, name, args, NULL, error);
}

static GHashTable *args_new(void)
{
	return g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
}

static void arg_copy(GHashTable *args, mv_web_request *r, const char *name)
{
	const char *v = field(r, name);
	if (v && *v)
		g_hash_table_insert(args, (gpointer)name, g_strdup(v));
}

/* limit (1..200, default 50) as asked + 1, so that "more" needs no count. */
static bool page_limit(mv_web_request *r, GHashTable *args, int64_t *limit_r, GError **error)
{
	const char *v = field(r, "limit");
	char *end = NULL;
	int64_t n = v && *v ? g_ascii_strtoll(v, &end, 10) : DEFAULT_PAGE;
	if (v && *v && (*end || n < 1 || n > MAX_PAGE)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "limit must be 1..%d", MAX_PAGE);
		return false;
	}
	*limit_r = n;
	g_hash_table_insert(args, (gpointer)"limit", g_strdup_printf("%" G_GINT64_FORMAT, n + 1));
	return true;
}

/* Every item names its folder as the folder tree does, "archive/path"
 * (a hit carries the path inside its archive, a folder's listing nothing:
 * listed_in is that folder). */
static void name_folder(json_t *item, const char *listed_in)
{
	if (listed_in) {
		const char *slash = strchr(listed_in, '/');
		char *archive = slash ? g_strndup(listed_in, (gsize)(slash - listed_in)) : g_strdup(listed_in);
		json_object_set_new(item, "archive", json_string(archive));
		json_object_set_new(item, "folder", json_string(listed_in));
		g_free(archive);
		return;
	}
	const char *archive = json_string_value(json_object_get(item, "archive"));
	const char *path = json_string_value(json_object_get(item, "folder"));
	if (!archive || !path)
		return;
	char *full = *path ? g_strconcat(archive, "/", path, NULL) : g_strdup(archive);
	json_object_set_new(item, "folder", json_string(full));
	g_free(full);
}

static enum MHD_Result send_page(mv_web_request *r, const char *key, json_t *items, int64_t limit,
                                 const char *drop, const char *listed_in, const char *notice)
{
	bool more = (int64_t)json_array_size(items) > limit;
	if (more)
		json_array_remove(items, (size_t)limit);
	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *item = json_array_get(items, i);
		if (drop)
			json_object_del(item, drop);
		name_folder(item, listed_in);
	}
	json_t *page = json_pack("{s:o, s:b}", key, items, "more", more);
	if (notice)
		json_object_set_new(page, "notice", json_string(notice));
	return mv_web_send_json(r, MHD_HTTP_OK, page);
}

static enum MHD_Result answer_call(mv_web_request *r, json_t *result, GError *err)
{
	if (result)
		return mv_web_send_json(r, MHD_HTTP_OK, result);
	enum MHD_Result rc = mv_web_send_gerror(r, err);
	g_error_free(err);
	return rc;
}

static enum MHD_Result folders(mv_web_request *r)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	json_t *list = run_function(r, "GetChildFolders", args, &err);
	g_hash_table_destroy(args);
	return answer_call(r, list ? json_pack("{s:o}", "folders", list) : NULL, err);
}

/* The line of a SearchMessages logOutput that says what the answer could
 * not see (search.h), cut out in place; NULL when there is none (the other
 * lines name messages without a snippet: nothing for the page). */
static const char *coverage_line(char *log)
{
	char *line = log ? strstr(log, MV_SEARCH_COVERAGE_NOTE_START) : NULL;
	if (!line || (line != log && line[-1] != '\n'))
		return NULL;
	char *end = strchr(line, '\n');
	if (end)
		*end = '\0';
	return line;
}

static enum MHD_Result search(mv_web_request *r)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	int64_t limit = 0;
	arg_copy(args, r, "query");
	arg_copy(args, r, "sort");
	arg_copy(args, r, "after");
	arg_copy(args, r, "offset");
	g_hash_table_insert(args, (gpointer)"snippets", g_strdup("true"));
	/* What SearchMessages says beside its hits is what the answer could
	 * not see (a rebuild part way): the page shows it. */
	char *notice = NULL;
	json_t *hits = page_limit(r, args, &limit, &err) ? run_function_logged(r, "SearchMessages", args, &notice, &err) :
	                                                   NULL;
	g_hash_table_destroy(args);
	if (!hits)
		return answer_call(r, NULL, err);
	enum MHD_Result rc = send_page(r, "hits", hits, limit, "messageId", NULL, coverage_line(notice));
	g_free(notice);
	return rc;
}

static enum MHD_Result messages(mv_web_request *r)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	int64_t limit = 0;
	arg_copy(args, r, "folder");
	arg_copy(args, r, "after");
	arg_copy(args, r, "offset");
	json_t *items = page_limit(r, args, &limit, &err) ? run_function(r, "GetMessages", args, &err) : NULL;
	g_hash_table_destroy(args);
	if (!items)
		return answer_call(r, NULL, err);
	return send_page(r, "messages", items, limit, "archivedAt", field(r, "folder"), NULL);
}

static enum MHD_Result message(mv_web_request *r)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	arg_copy(args, r, "id");
	json_t *m = run_function(r, "GetMessage", args, &err);
	g_hash_table_destroy(args);
	return answer_call(r, m, err);
}

/* ---- the user's own settings ------------------------------------------------------------ */

static enum MHD_Result change_password(mv_web_request *r)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	arg_copy(args, r, "currentPassword");
	arg_copy(args, r, "newPassword");
	json_t *res = run_function(r, "ChangeOwnPassword", args, &err);
	g_hash_table_destroy(args);
	if (!res && err->code == MV_ERR_AUTH) {
		/* A wrong current password is a wrong password: same delay. */
		mv_logon_failed(r->srv->logon, r->inst, r->user->name, r->remote, SERVICE, "wrong current password");
	}
	if (res) {
		json_decref(res);
		keep_session(r);
		res = json_object();
	}
	return answer_call(r, res, err);
}

static enum MHD_Result mfa_disable(mv_web_request *r)
{
	GError *err = NULL;
	enum MHD_Result rc;
	if (mv_user_authenticate(r->inst, r->user->name, field(r, "password"), NULL, &err) < 0) {
		if (err->code == MV_ERR_AUTH)
			mv_logon_failed(r->srv->logon, r->inst, r->user->name, r->remote, SERVICE,
			                "wrong password to remove MFA");
		rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	if (mv_mfa_disable(r->inst, r->user->name, &err) < 0) {
		rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	mv_web_audit(r, "UserUpdate", true, "Web Access: MFA removed");
	keep_session(r);
	return mv_web_send_json(r, MHD_HTTP_OK, json_pack("{s:s}", "mfa", "none"));
}

static enum MHD_Result app_passwords(mv_web_request *r, const char *what)
{
	GError *err = NULL;
	GHashTable *args = args_new();
	g_hash_table_insert(args, (gpointer)"userName", g_strdup(r->user->name));
	const char *function = "GetAppPasswords";
	if (strcmp(what, "/create") == 0) {
		function = "CreateAppPassword";
		arg_copy(args, r, "description");
	} else if (strcmp(what, "/delete") == 0) {
		function = "DeleteAppPassword";
		arg_copy(args, r, "id");
	} else if (*what) {
		g_hash_table_destroy(args);
		return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	}
	json_t *res = run_function(r, function, args, &err);
	g_hash_table_destroy(args);
	if (res && strcmp(function, "GetAppPasswords") == 0)
		res = json_pack("{s:o}", "appPasswords", res);
	else if (res && strcmp(function, "DeleteAppPassword") == 0) {
		json_decref(res);
		keep_session(r);
		res = json_object();
	}
	return answer_call(r, res, err);
}

/* ---- routing ---------------------------------------------------------------------------- */

typedef enum MHD_Result (*post_fn)(mv_web_request *r);

static const struct {
	const char *path;
	post_fn fn;
} archive_posts[] = {
	{ "folders", folders }, { "search", search }, { "messages", messages }, { "message", message },
	{ "password", change_password }, { "mfa/disable", mfa_disable },
};

static enum MHD_Result authenticated(mv_web_request *r, const char *path)
{
	enum MHD_Result rc;
	GError *err = NULL;
	if (!load_session(r) || r->session.stage != MV_WEB_STAGE_AUTHENTICATED)
		return expired(r);
	mv_logon_note_session(r->srv->logon, r->user->name, r->remote, "web");
	if (!(r->access = mv_access_for_user(r->inst, r->user, &err))) {
		rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	if (g_str_has_prefix(path, "message/"))
		return mv_web_content(r, path + strlen("message/"));
	if (strcmp(path, "mfa/qr.svg") == 0)
		return send_qr(r);
	if (!accept_post(r, true, &rc))
		return rc;
	for (size_t i = 0; i < G_N_ELEMENTS(archive_posts); i++)
		if (strcmp(path, archive_posts[i].path) == 0)
			return archive_posts[i].fn(r);
	if (strcmp(path, "mfa/setup") == 0)
		return send_enrolment(r, true, "/web/api/mfa/qr.svg");
	if (strcmp(path, "mfa/confirm") == 0)
		return confirm_enrolment(r, false);
	if (g_str_has_prefix(path, "app-passwords"))
		return app_passwords(r, path + strlen("app-passwords"));
	return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

enum MHD_Result mv_web_api(mv_web_request *r, const char *path)
{
	if (strcmp(path, "session") == 0)
		return get_session(r, mv_web_sessions_idle_seconds(r->srv->sessions));
	if (strcmp(path, "login") == 0)
		return login(r);
	if (strcmp(path, "login/mfa") == 0)
		return login_mfa(r);
	if (g_str_has_prefix(path, "login/enroll"))
		return login_enroll(r, path + strlen("login/enroll"));
	if (strcmp(path, "logout") == 0)
		return logout(r);
	return authenticated(r, path);
}
