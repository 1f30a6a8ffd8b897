/* imapd/session: one connection's IMAP state and its command handlers.
 *
 * Runs on the server's worker threads, one call at a time per connection,
 * with that thread's own mv_instance (SQLite connections are never shared
 * between threads).  Everything a client may do is a read: the archive is
 * opened read-only and every command that would change something is
 * refused.  The user is re-read before each command, so a changed password,
 * a revoked app password or a lost `imap` login privilege ends the session,
 * and folder privileges are re-read too: a revoked folder disappears at
 * once.  A FETCH of many messages is answered in steps of about
 * IMAP_OUTPUT_HIGH bytes; the loop calls back once the client has read
 * them, so a slow client holds no worker and no unbounded buffer.
 *
 * CONDSTORE costs nothing here: archived flags never change, so a
 * message's MODSEQ is its UID (it is modified once, when it arrives, and
 * later arrivals have higher UIDs) and a mailbox's HIGHESTMODSEQ is its
 * UIDNEXT - 1, which never goes down.
 *
 * This file holds the session's life, the user check and the dispatch; the
 * handlers are in session_*.c (session_internal.h lists them). */
#include "imapd/session_internal.h"
#include <sodium.h>
#include <string.h>

static const char CAPS_COMMON[] = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE";
static const char CAPS_AUTHED[] =
	" NAMESPACE UIDPLUS CHILDREN SPECIAL-USE LIST-EXTENDED ESEARCH UNSELECT BINARY CONDSTORE";

/* ---- life ------------------------------------------------------------------ */

imap_session *imap_session_new(const imap_session_env *env)
{
	imap_session *s = g_new0(imap_session, 1);
	s->data_dir = g_strdup(env->data_dir);
	s->remote = g_strdup(env->remote);
	s->tls = env->tls;
	s->starttls_offered = env->starttls_offered;
	s->plaintext_logon = env->plaintext_logon;
	s->logon = env->logon;
	return s;
}

void forget_cached(imap_session *s)
{
	mv_imap_message_free(&s->cached_msg);
	if (s->cached_raw)
		g_byte_array_unref(s->cached_raw);
	s->cached_raw = NULL;
	s->cached_uid = 0;
}


void unselect(imap_session *s)
{
	imap_mailbox_free(s->mailbox);
	s->mailbox = NULL;
	imap_view_free(s->view);
	s->view = NULL;
	forget_cached(s);
	if (s->state == ST_SELECTED)
		s->state = ST_AUTH;
}

void imap_session_free(imap_session *s)
{
	if (!s)
		return;
	unselect(s);
	fetch_job_free(s->fetch);
	mv_access_free(&s->access);
	g_free(s->user_name);
	g_free(s->wait_tag);
	g_free(s->data_dir);
	g_free(s->remote);
	g_free(s);
}

mv_instance *thread_instance(imap_session *s, GError **error)
{
	return mv_https_thread_instance(s->data_dir, error);
}

void audit_activity(imap_session *s, mv_instance *inst, const char *event, const char *details)
{
	if (!inst || !mv_audit_wanted(inst, event, false))
		return;
	GError *err = NULL;
	if (mv_audit_append(inst, s->user_name, s->remote, event, true, details, &err) < 0) {
		mv_log_error("audit log: IMAP %s of %s: %s", event, s->user_name, err->message);
		g_error_free(err);
	}
}

void imap_session_end(imap_session *s)
{
	if (!s->user_name)
		return;
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst)
		g_error_free(err);
	audit_activity(s, inst, "UserLogoff", "IMAP");
	g_clear_pointer(&s->user_name, g_free);
}

/* ---- small writers ---------------------------------------------------------- */

void put_capabilities(imap_session *s, GString *out)
{
	g_string_append(out, CAPS_COMMON);
	if (s->state == ST_NOAUTH) {
		if (s->starttls_offered && !s->tls)
			g_string_append(out, " STARTTLS");
		if (s->tls || s->plaintext_logon)
			g_string_append(out, " AUTH=PLAIN");
		else
			g_string_append(out, " LOGINDISABLED");
	} else {
		g_string_append(out, CAPS_AUTHED);
	}
}

void imap_session_greeting(imap_session *s, GString *out)
{
	g_string_append(out, "* OK [CAPABILITY ");
	put_capabilities(s, out);
	g_string_append(out, "] mailvault IMAP ready (read-only archive)\r\n");
}

imap_step tagged(GString *out, const char *tag, const char *status, const char *text)
{
	g_string_append_printf(out, "%s %s %s\r\n", tag, status, text);
	return IMAP_STEP_DONE;
}

void put_mailbox_name(GString *out, const char *utf8)
{
	char *enc = mv_mutf7_encode(utf8);
	imap_append_string(out, enc, strlen(enc), false);
	g_free(enc);
}

/* ---- the user, checked before every command ------------------------------------- */

/* false: the user is gone, changed credentials or lost the imap privilege. */
bool user_still_valid(imap_session *s, mv_instance *inst)
{
	mv_user *u = mv_user_get(inst, s->user_name, NULL);
	bool ok = u && u->auth_generation == s->auth_generation && (u->login_privileges & MV_LOGIN_IMAP);
	if (ok) {
		mv_access *a = mv_access_for_user(inst, u, NULL);
		if (a) {
			mv_access_free(&s->access);
			s->access = a;
		} else {
			ok = false;
		}
	}
	mv_user_free(u);
	return ok;
}

/* ---- any state ------------------------------------------------------------------ */

static imap_step cmd_capability(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append(out, "* CAPABILITY ");
	put_capabilities(s, out);
	g_string_append(out, "\r\n");
	return tagged(out, c->tag, "OK", "CAPABILITY completed");
}

static imap_step cmd_id(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append_printf(out, "* ID (\"name\" \"mailvault\" \"version\" \"%s\")\r\n", MV_VERSION);
	return tagged(out, c->tag, "OK", "ID completed");
}

static imap_step cmd_logout(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append(out, "* BYE logging out\r\n");
	tagged(out, c->tag, "OK", "LOGOUT completed");
	imap_session_end(s);
	s->state = ST_LOGOUT;
	return IMAP_STEP_CLOSE;
}

bool imap_session_idling(const imap_session *s)
{
	return s->wait == WAIT_IDLE;
}

bool imap_session_authenticated(const imap_session *s)
{
	return s->state != ST_NOAUTH;
}

/* ---- dispatch --------------------------------------------------------------------- */

static imap_step refuse_write(const imap_command *c, GString *out)
{
	if (!strcmp(c->name, "STORE") || !strcmp(c->name, "UID STORE") || !strcmp(c->name, "EXPUNGE") ||
	    !strcmp(c->name, "UID EXPUNGE"))
		return tagged(out, c->tag, "NO", "[READ-ONLY] the archive is read-only");
	return tagged(out, c->tag, "NO", "[CANNOT] the archive is read-only: nothing can be changed over IMAP");
}

static bool is_write(const char *name)
{
	static const char *const writes[] = { "STORE",  "UID STORE", "COPY",   "UID COPY",  "MOVE",        "UID MOVE",
		                              "APPEND", "EXPUNGE",   "UID EXPUNGE", "CREATE", "DELETE", "RENAME",
		                              "SUBSCRIBE", "UNSUBSCRIBE" };
	for (size_t i = 0; i < G_N_ELEMENTS(writes); i++)
		if (strcmp(name, writes[i]) == 0)
			return true;
	return false;
}

static imap_step cmd_enable(imap_session *s, const imap_command *c, GString *out)
{
	if (!c->args->len)
		return tagged(out, c->tag, "BAD", "ENABLE needs capabilities");
	g_string_append(out, "* ENABLED");
	for (guint i = 0; i < c->args->len; i++) {
		if (imap_arg_is_atom(imap_arg_at(c, i), "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			g_string_append(out, " CONDSTORE");
		}
	}
	g_string_append(out, "\r\n");
	return tagged(out, c->tag, "OK", "ENABLE completed");
}

static imap_step authed_command(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
{
	const char *n = c->name;
	if (is_write(n)) {
		if (!strcmp(n, "SUBSCRIBE"))
			return tagged(out, c->tag, "OK", "every mailbox is subscribed already");
		return refuse_write(c, out);
	}
	if (!strcmp(n, "LIST"))
		return cmd_list(s, inst, c, out, false);
	if (!strcmp(n, "LSUB"))
		return cmd_list(s, inst, c, out, true);
	if (!strcmp(n, "NAMESPACE"))
		return cmd_namespace(s, c, out);
	if (!strcmp(n, "SELECT") || !strcmp(n, "EXAMINE"))
		return cmd_select(s, inst, c, out, !strcmp(n, "EXAMINE"));
	if (!strcmp(n, "STATUS"))
		return cmd_status(s, inst, c, out);
	if (!strcmp(n, "ENABLE"))
		return cmd_enable(s, c, out);
	if (!strcmp(n, "NOOP") || !strcmp(n, "CHECK"))
		return cmd_noop(s, inst, c, out);
	if (!strcmp(n, "IDLE"))
		return cmd_idle(s, c, out);
	if (!strcmp(n, "UNSELECT") || !strcmp(n, "CLOSE")) {
		if (s->state != ST_SELECTED)
			return tagged(out, c->tag, "BAD", "no mailbox is selected");
		unselect(s);
		return tagged(out, c->tag, "OK", "mailbox closed");
	}
	bool fetch = !strcmp(n, "FETCH") || !strcmp(n, "UID FETCH");
	bool search = !strcmp(n, "SEARCH") || !strcmp(n, "UID SEARCH");
	if ((fetch || search) && s->state != ST_SELECTED)
		return tagged(out, c->tag, "BAD", "no mailbox is selected");
	if (fetch)
		return cmd_fetch(s, c, out, n[0] == 'U');
	if (search)
		return cmd_search(s, inst, c, out, n[0] == 'U');
	if (!strcmp(n, "LOGIN") || !strcmp(n, "AUTHENTICATE"))
		return tagged(out, c->tag, "BAD", "already logged on");
	if (!strcmp(n, "STARTTLS"))
		return tagged(out, c->tag, "BAD", "STARTTLS only before logon");
	return tagged(out, c->tag, "BAD", "unknown command");
}

static imap_step run_command(imap_session *s, const imap_command *c, GString *out)
{
	const char *n = c->name;
	if (!strcmp(n, "CAPABILITY"))
		return cmd_capability(s, c, out);
	if (!strcmp(n, "LOGOUT"))
		return cmd_logout(s, c, out);
	if (!strcmp(n, "ID"))
		return cmd_id(s, c, out);
	if (s->state == ST_NOAUTH) {
		if (!strcmp(n, "NOOP"))
			return tagged(out, c->tag, "OK", "NOOP completed");
		if (!strcmp(n, "STARTTLS"))
			return cmd_starttls(s, c, out);
		if (!strcmp(n, "LOGIN"))
			return cmd_login(s, c, out);
		if (!strcmp(n, "AUTHENTICATE"))
			return cmd_authenticate(s, c, out);
		return tagged(out, c->tag, "BAD", "log on first");
	}
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst) {
		mv_log_error("IMAP: %s", err->message);
		g_error_free(err);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the archive cannot be opened now");
	}
	if (!user_still_valid(s, inst)) {
		g_string_append(out, "* BYE your logon is no longer valid\r\n");
		return IMAP_STEP_CLOSE;
	}
	return authed_command(s, inst, c, out);
}

imap_step imap_session_command(imap_session *s, const uint8_t *cmd, size_t len, GString *out)
{
	char *tag = NULL;
	const char *why = NULL;
	imap_command *c = imap_command_parse(cmd, len, &tag, &why);
	if (!c) {
		g_string_append_printf(out, "%s BAD %s\r\n", tag ? tag : "*", why);
		g_free(tag);
		return IMAP_STEP_DONE;
	}
	g_free(tag);
	imap_step step = run_command(s, c, out);
	imap_command_free(c);
	return step;
}

imap_step imap_session_line(imap_session *s, const char *line, size_t len, GString *out)
{
	wait_kind w = s->wait;
	s->wait = WAIT_NONE;
	char *tag = s->wait_tag;
	s->wait_tag = NULL;
	imap_step step = IMAP_STEP_DONE;
	if (w == WAIT_IDLE) {
		if (len == 4 && g_ascii_strncasecmp(line, "DONE", 4) == 0)
			tagged(out, tag, "OK", "IDLE terminated");
		else
			tagged(out, tag, "BAD", "expected DONE to end IDLE");
	} else if (w == WAIT_AUTH) {
		char *text = g_strndup(line, len);
		step = plain_response(s, tag, text, out);
		sodium_memzero(text, len);
		g_free(text);
	}
	g_free(tag);
	return step;
}
