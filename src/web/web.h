/* web: Web Access — the page users find, read and download their archived
 * mail with, served over HTTPS by `mailvault serve` beside the
 * Administration API.
 *
 * Static assets (embedded, assets.h) and a small JSON endpoint under
 * /web/api, whose archive functions are the command registry's own
 * (SearchMessages, GetChildFolders, GetMessages, GetMessage, the app
 * password functions, ChangeOwnPassword) called with the session user's
 * privileges: there is no second search or permission path.  What the
 * registry does not do is web-specific: the logon with its second factor,
 * the session cookie, the sanitised HTML frame and the downloads (both
 * through search/message.c's one privilege check). */
#ifndef MV_WEB_H
#define MV_WEB_H

#include "net/https.h"

typedef struct mv_web_server mv_web_server;

/* Listens on cfg->web_listen (the caller does not start it when empty),
 * with the service certificate; logons go through the process's guard. */
mv_web_server *mv_web_server_start(const mv_service_config *cfg, mv_logon *logon, GError **error);
int mv_web_server_reload(mv_web_server *srv, const mv_service_config *cfg, GError **error);
void mv_web_server_stop(mv_web_server **srv);

/* ---- sessions (session.c) ----------------------------------------------------- */

typedef enum {
	MV_WEB_STAGE_MFA = 1,          /* password checked, a TOTP code follows */
	MV_WEB_STAGE_ENROLL,           /* password checked, the user must enrol MFA first */
	MV_WEB_STAGE_AUTHENTICATED,
} mv_web_stage;

/* What a request learns of its session (a copy). */
typedef struct mv_web_session {
	char *user;                    /* stored user name */
	mv_web_stage stage;
	char *csrf;                    /* the token state-changing requests must echo */
	int64_t auth_generation;       /* the user's when the session was made */
	unsigned failed_codes;         /* wrong second-factor codes so far */
} mv_web_session;

typedef struct mv_web_sessions mv_web_sessions;

mv_web_sessions *mv_web_sessions_new(int64_t idle_seconds, int64_t absolute_seconds);
void mv_web_sessions_free(mv_web_sessions **s);
void mv_web_sessions_set_timeouts(mv_web_sessions *s, int64_t idle_seconds, int64_t absolute_seconds);
int64_t mv_web_sessions_idle_seconds(mv_web_sessions *s);
/* A new session; returns its token (the cookie's value), NULL when the
 * table is full of live sessions. */
char *mv_web_session_create(mv_web_sessions *s, const char *user, mv_web_stage stage, int64_t auth_generation);
/* The live session of a token (touching it), false when unknown or
 * expired (then it is gone).  *out is the caller's to clear. */
bool mv_web_session_get(mv_web_sessions *s, const char *token, mv_web_session *out);
/* Counts a wrong second-factor code; returns the count. */
unsigned mv_web_session_failed_code(mv_web_sessions *s, const char *token);
/* After the user's own change (password, MFA, app passwords) the session
 * goes on with the user's new auth generation. */
void mv_web_session_set_generation(mv_web_sessions *s, const char *token, int64_t auth_generation);
void mv_web_session_end(mv_web_sessions *s, const char *token);
void mv_web_session_clear(mv_web_session *ws);
/* The value of cookie `name` in a Cookie header, a new string, or NULL. */
char *mv_web_cookie_value(const char *header, const char *name);

/* ---- qr.c ------------------------------------------------------------------------ */

/* The QR code of text as an SVG image (a new string), NULL when it does not
 * fit a QR code. */
char *mv_web_qr_svg(const char *text);

#endif
