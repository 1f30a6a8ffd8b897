/* imapd/session_internal.h: what the files of one IMAP session share —
 * its state (struct imap_session) and the handlers session.c dispatches to.
 *
 *   session.c          life, the user check, any-state commands, dispatch
 *   session_logon.c    LOGIN, AUTHENTICATE PLAIN, STARTTLS
 *   session_mailbox.c  LIST, NAMESPACE, SELECT/EXAMINE, STATUS, NOOP, IDLE
 *   session_fetch.c    FETCH in steps, the one-message cache
 *   session_search.c   SEARCH and ESEARCH answers
 * Kept apart from internal.h because it needs session.h's imap_step, and
 * session.h includes internal.h. */
#ifndef MV_IMAPD_SESSION_INTERNAL_H
#define MV_IMAPD_SESSION_INTERNAL_H

#include "imapd/session.h"

typedef enum { ST_NOAUTH, ST_AUTH, ST_SELECTED, ST_LOGOUT } session_state;
typedef enum { WAIT_NONE, WAIT_AUTH, WAIT_IDLE } wait_kind;

typedef struct fetch_job fetch_job;   /* session_fetch.c */

struct imap_session {
	char *data_dir, *remote;
	bool tls, starttls_offered, plaintext_logon;
	mv_logon *logon;
	session_state state;
	char *user_name;
	int64_t auth_generation;
	mv_access *access;
	imap_mailbox *mailbox;     /* selected */
	imap_view *view;
	bool examine;
	bool condstore;            /* RFC 7162: enabled by ENABLE, SELECT (CONDSTORE), a MODSEQ fetch or search */
	wait_kind wait;
	char *wait_tag;
	fetch_job *fetch;
	/* The last message read: clients fetch a message's parts one command at a time. */
	uint32_t cached_uid;
	int cached_store;
	GByteArray *cached_raw;
	mv_imap_message *cached_msg;
};


/* ---- session.c ------------------------------------------------------------ */

/* Drops the one-message cache (bytes and part tree). */
void forget_cached(imap_session *s);
/* Leaves the selected mailbox, if any: back to the authenticated state. */
void unselect(imap_session *s);
/* This worker thread's instance (never shared between threads). */
mv_instance *thread_instance(imap_session *s, GError **error);
/* Appends event to the audit log when wanted; failures are only logged. */
void audit_activity(imap_session *s, mv_instance *inst, const char *event, const char *details);
/* Appends the capability list for the session's state. */
void put_capabilities(imap_session *s, GString *out);
/* Appends "tag status text"; returns IMAP_STEP_DONE. */
imap_step tagged(GString *out, const char *tag, const char *status, const char *text);
/* Appends a UTF-8 mailbox name as a modified UTF-7 IMAP string. */
void put_mailbox_name(GString *out, const char *utf8);
/* false: the user is gone, changed credentials or lost the imap privilege;
 * else the session's access is refreshed. */
bool user_still_valid(imap_session *s, mv_instance *inst);

/* ---- session_logon.c ------------------------------------------------------- */

/* LOGIN user password. */
imap_step cmd_login(imap_session *s, const imap_command *c, GString *out);
/* AUTHENTICATE PLAIN [initial]: without one, waits for the response line. */
imap_step cmd_authenticate(imap_session *s, const imap_command *c, GString *out);
/* STARTTLS: IMAP_STEP_STARTTLS when the connection offers it. */
imap_step cmd_starttls(imap_session *s, const imap_command *c, GString *out);
/* The SASL PLAIN response (base64, or "*" to cancel) of tag: logs on. */
imap_step plain_response(imap_session *s, const char *tag, const char *b64, GString *out);

/* ---- session_mailbox.c ----------------------------------------------------- */

/* LIST (lsub = false) or LSUB, with RFC 5258 selection and return options. */
imap_step cmd_list(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool lsub);
imap_step cmd_namespace(imap_session *s, const imap_command *c, GString *out);
/* SELECT or EXAMINE (both read-only); unselects first. */
imap_step cmd_select(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool examine);
imap_step cmd_status(imap_session *s, mv_instance *inst, const imap_command *c, GString *out);
/* NOOP and CHECK: report the selected mailbox's changes. */
imap_step cmd_noop(imap_session *s, mv_instance *inst, const imap_command *c, GString *out);
/* IDLE: waits for DONE; imap_session_poll reports changes meanwhile. */
imap_step cmd_idle(imap_session *s, const imap_command *c, GString *out);

/* ---- session_fetch.c ------------------------------------------------------- */

/* FETCH or UID FETCH: starts a job and answers its first step. */
imap_step cmd_fetch(imap_session *s, const imap_command *c, GString *out, bool uid);
/* Frees a job and the stores it opened; NULL is fine. */
void fetch_job_free(fetch_job *j);

/* ---- session_search.c ------------------------------------------------------ */

/* SEARCH or UID SEARCH, with RETURN (ESEARCH) and CHARSET. */
imap_step cmd_search(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool uid);

#endif
