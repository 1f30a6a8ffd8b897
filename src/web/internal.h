/* web/internal: what the files of web/ share — the server, one request in
 * flight, and the ways to answer it.  Not a public header: web.h is the
 * module's face. */
#ifndef MV_WEB_INTERNAL_H
#define MV_WEB_INTERNAL_H

#include "web/web.h"
#include "commands/commands.h"

#define MV_WEB_COOKIE "__Host-mvsession"

struct mv_web_server {
	char *data_dir;               /* fixed for the server's life */
	mv_https *https;
	mv_logon *logon;              /* borrowed: the process's one guard */
	mv_web_sessions *sessions;
};

/* How a response may be used by the browser: the page itself (and its
 * JSON), the sandboxed frame a message's HTML is shown in (remote images
 * allowed or not), or a download. */
typedef enum {
	MV_WEB_PAGE,
	MV_WEB_FRAME,
	MV_WEB_FRAME_REMOTE,
	MV_WEB_DOWNLOAD,
} mv_web_kind;

typedef struct mv_web_request {
	mv_web_server *srv;
	struct MHD_Connection *conn;
	const char *url;              /* path, percent-decoded by libmicrohttpd */
	const char *method;
	const GByteArray *body;
	char *remote;
	mv_instance *inst;
	GHashTable *form;             /* a POST's fields (NULL until decoded) */
	char *token;                  /* the session cookie's value, or NULL */
	mv_web_session session;       /* valid when has_session */
	bool has_session;
	mv_user *user;                /* the session's user, read afresh per request */
	mv_access *access;            /* and its folder rights (authenticated stage) */
	char *set_cookie;             /* a Set-Cookie value to send with the answer */
} mv_web_request;

/* ---- server.c: answering --------------------------------------------------- */

/* Sends body (taking the reference) as content_type, a download when
 * disposition is given. */
enum MHD_Result mv_web_send(mv_web_request *r, unsigned status, mv_web_kind kind, const char *content_type,
                            GBytes *body, const char *disposition);
/* Sends value (taking it) as application/json. */
enum MHD_Result mv_web_send_json(mv_web_request *r, unsigned status, json_t *value);
/* {"error":{"code":code,"message":message}}. */
enum MHD_Result mv_web_send_error(mv_web_request *r, unsigned status, const char *code, const char *message);
/* The answer for a failed call: the error's code decides the status. */
enum MHD_Result mv_web_send_gerror(mv_web_request *r, const GError *err);
/* A user activity (logon, search, message view) for the audit log, when
 * the compliance configuration asks for its type. */
void mv_web_audit_activity(mv_web_request *r, const char *event, const char *details);
/* Something the audit log always records (a refusal, a change). */
void mv_web_audit(mv_web_request *r, const char *event, bool success, const char *details);

/* ---- api.c: the JSON endpoint ---------------------------------------------- */

enum MHD_Result mv_web_api(mv_web_request *r, const char *path);

/* ---- content.c: a message's HTML frame and downloads --------------------------- */

/* GET /web/api/message/ID/html|eml|part/N for an authenticated session. */
enum MHD_Result mv_web_content(mv_web_request *r, const char *rest);

#endif
