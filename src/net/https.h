/* net/https: the HTTPS listeners the servers share (the Administration API
 * and Web Access), and the guard in front of their logons.
 *
 * https.c: a set of libmicrohttpd listeners in thread-per-connection mode
 * with the service certificate; request bodies collected up to a bound and
 * handed to the server's handler whole; reloads that hand the listening
 * sockets over to new listeners so no connection is refused while the
 * certificate changes.  logon.c: the growing delays after failed logons
 * (per address and per account), the cache of verified passwords and the
 * list of active sessions — one of each per process, shared by every
 * server, so a guess against the web login costs the same as one against
 * the API. */
#ifndef MV_NET_HTTPS_H
#define MV_NET_HTTPS_H

#include "archive/archive.h"
#include "net/form.h"

#include <jansson.h>
#include <microhttpd.h>

/* ---- https.c ------------------------------------------------------------------ */

/* What a request's body came to: whole, over this request's bound, or
 * refused because the bodies buffered by the whole process would pass
 * their budget (answer 503 with Retry-After). */
typedef enum { MV_HTTPS_BODY_OK, MV_HTTPS_BODY_TOO_LARGE, MV_HTTPS_BODY_BUSY } mv_https_body;

/* The bound of a body whose sender the headers do not identify: a logon
 * form fits, a flood of connections with large bodies does not cost
 * memory. */
#define MV_HTTPS_ANONYMOUS_BODY_BYTES (16u * 1024u)
/* The bytes of request bodies buffered at once by the process, every
 * server and connection together; a body that would pass it is refused
 * (503). */
#define MV_HTTPS_BODY_BUDGET_BYTES (256u * 1024u * 1024u)
/* What a 503 asks the client to wait, in seconds (Retry-After). */
#define MV_HTTPS_RETRY_AFTER "5"

/* A request as its headers show it, decided before any of its body is
 * read.  The server may set max_body (lower only: MV_HTTPS_ANONYMOUS_BODY_
 * BYTES for a caller it cannot identify), keep what it learnt in state
 * (the authenticated user: checked once per request) for the handler, or
 * answer at once — queue a response and set answered and rc: the body is
 * then never read and the connection closes after the answer. */
typedef struct mv_https_admission {
	size_t max_body;              /* in: the listener's bound */
	void *state;                  /* handed to the handler, freed with free_state when the request ends */
	GDestroyNotify free_state;
	bool answered;
	enum MHD_Result rc;           /* with answered: what MHD_queue_response returned */
} mv_https_admission;

/* Called once per request when its headers are complete. */
typedef void (*mv_https_admit)(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               mv_https_admission *a);

/* Called once per request, with the whole body (NULL when there was none)
 * or the reason it was refused (then body is NULL; a refusal known from
 * Content-Length comes before any of the body is read).  state: what the
 * admission kept.  Must queue a response. */
typedef enum MHD_Result (*mv_https_handler)(void *cls, struct MHD_Connection *conn, const char *url,
                                            const char *method, const GByteArray *body, mv_https_body outcome,
                                            void *state);

typedef struct mv_https_options {
	const char *what;             /* "the Administration API": named in errors and logs */
	GPtrArray *listen;            /* char*: HOST:PORT */
	const char *certificate;      /* PEM files */
	const char *private_key;
	int64_t max_connections;      /* one address (an IPv6 one by its /64) may hold a quarter of them */
	unsigned idle_seconds;        /* an idle connection is closed after this */
	size_t max_body;              /* larger request bodies are refused */
	mv_https_admit admit;         /* NULL: every request may send max_body */
	mv_https_handler handler;
	void *cls;
} mv_https_options;

typedef struct mv_https mv_https;

/* Listens on every address of o.  The options are copied.  Errors say
 * which address and why (mv_listen_bind_error), or which certificate or
 * key file and OpenSSL's reason. */
mv_https *mv_https_start(const mv_https_options *o, GError **error);
/* New certificate or addresses: new listeners, on the very sockets of the
 * old ones when the addresses did not change; the old ones finish what they
 * serve.  On failure the previous configuration is restored where it can
 * be and -1 returned. */
int mv_https_reload(mv_https *h, const mv_https_options *o, GError **error);
/* Stops accepting; connections in flight go on (mv_https_stop waits).
 * Once is enough; later calls do nothing. */
void mv_https_quiesce(mv_https *h);
/* Stops accepting, waits (up to 60 s) until no request is in flight —
 * from its headers to its last byte sent —, then stops every listener
 * (idle keep-alive connections are closed) and frees. */
void mv_https_stop(mv_https **h);
/* The error of a listener that cannot bind address: err (an errno) in
 * words — in use by another process, not an address of this machine, a
 * privileged port.  what: "the Administration API", "the IMAP server". */
void mv_listen_bind_error(GError **error, const char *what, const char *address, int err);

/* The connection thread's own instance of data_dir (SQLite connections are
 * never shared between threads), opened on its first request and closed
 * when the thread ends. */
mv_instance *mv_https_thread_instance(const char *data_dir, GError **error);
/* The client's address as text ("127.0.0.1", "::1"; IPv4-mapped IPv6
 * addresses in their IPv4 form), or "unknown". */
char *mv_https_remote_address(struct MHD_Connection *conn);
/* What one client is counted as, by the logon guard and every per-address
 * limit: an IPv4 address as such (also when it came IPv4-mapped), an IPv6
 * one by its /64 (one host usually holds a whole /64), anything else
 * verbatim (at most 256 bytes).  New string. */
char *mv_client_address_key(const char *remote);

/* ---- logon.c ------------------------------------------------------------------ */

typedef struct mv_logon mv_logon;

mv_logon *mv_logon_new(void);
void mv_logon_free(mv_logon **l);
/* Shutdown: waits for a turn, a penalty or another check end at once (an
 * attempt still waiting for its turn is answered as failed, unchecked). */
void mv_logon_stop(mv_logon *l);

typedef enum { MV_LOGON_OK, MV_LOGON_FAILED, MV_LOGON_ERROR } mv_logon_result;

/* How a client proves who it is: interactive (Web Access: the password,
 * then a second factor if the user has one) or a client program (the API,
 * IMAP: the password, or an app password — only an app password once the
 * user has MFA). */
typedef enum { MV_LOGON_INTERACTIVE, MV_LOGON_CLIENT } mv_logon_kind;

/* Checks credentials, counted against the address (an IPv6 one by its
 * /64), the account (name as users are looked up, whether or not it
 * exists) and the pair; logon.c's header explains the rules.  The attempts
 * of an address are checked one at a time, each after the delay of the
 * address's last failure (doubling, 0.25 s .. 8 s); those of an address
 * that failed against the account before also wait for the account's turn
 * and delay (doubling, 0.25 s .. 2 s).  A failure is recorded, written to
 * the audit log as UserLogonFailed naming `service`, and answered only
 * after the address's delay; a success forgives only that address's
 * failures against that account.  An attempt whose turn does not come
 * within 30 s, or with too many others waiting, is answered
 * MV_LOGON_FAILED after a second without being checked (nor counted or
 * audited).  *user_r on OK. */
mv_logon_result mv_logon_check(mv_logon *l, mv_instance *inst, const char *name, const char *password,
                               mv_logon_kind kind, const char *remote, const char *service, mv_user **user_r);
/* A failure found after the password (a wrong second factor): recorded,
 * audited and delayed the same way.  reason goes into the audit entry. */
void mv_logon_failed(mv_logon *l, mv_instance *inst, const char *name, const char *remote, const char *service,
                     const char *reason);

/* The guard's steps, which mv_logon_check wraps around its check; public
 * for the unit tests.  begin waits for the attempt's turns and returns
 * NULL when it is to be answered as failed unchecked; end (exactly once
 * per attempt) records the outcome (MV_LOGON_ERROR records nothing),
 * frees a and returns the guard's time at which a failure may be answered. */
typedef struct mv_logon_attempt mv_logon_attempt;
mv_logon_attempt *mv_logon_begin(mv_logon *l, const char *name, const char *remote);
double mv_logon_end(mv_logon *l, mv_logon_attempt *a, mv_logon_result outcome);
/* Test hooks.  The guard's clock (monotonic seconds) instead of
 * mv_monotonic; NULL restores it.  Every call wakes the waiting attempts,
 * so a test moves its clock and calls this again. */
typedef double (*mv_logon_clock)(void *cls);
void mv_logon_set_clock(mv_logon *l, mv_logon_clock clock, void *cls);
/* When an attempt of name from remote would be let in, were nobody else
 * waiting (0: at once), on the guard's clock. */
double mv_logon_ready_at(mv_logon *l, const char *name, const char *remote);
/* The entries of the three tables, expired ones forgotten first. */
void mv_logon_table_sizes(mv_logon *l, size_t *addresses, size_t *accounts, size_t *pairs);
/* Counts a request of user from remote over protocol ("api", "web") for
 * GetActiveSessions. */
void mv_logon_note_session(mv_logon *l, const char *user, const char *remote, const char *protocol);
/* [{"userName","remoteAddress","protocol","since","lastActivity","requests"}] */
json_t *mv_logon_sessions_json(mv_logon *l);

#endif
