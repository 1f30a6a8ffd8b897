/* imapd/session_logon: the commands before logon that log on — LOGIN,
 * AUTHENTICATE PLAIN (with SASL-IR or a continuation line) and STARTTLS.
 * Passwords are checked by net/logon (throttling, app passwords) and wiped
 * from memory once read; logon needs TLS unless plaintext is allowed. */
#include "imapd/session_internal.h"
#include <sodium.h>
#include <string.h>

/* ---- logon --------------------------------------------------------------------- */

static imap_step logon(imap_session *s, const char *tag, const char *name, const char *password, GString *out)
{
	if (!s->tls && !s->plaintext_logon)
		return tagged(out, tag, "NO", "[PRIVACYREQUIRED] logon needs TLS: use STARTTLS or the TLS port");
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst) {
		mv_log_error("IMAP: %s", err->message);
		g_error_free(err);
		return tagged(out, tag, "NO", "[UNAVAILABLE] the archive cannot be opened now");
	}
	mv_user *u = NULL;
	mv_logon_result r = mv_logon_check(s->logon, inst, name, password, MV_LOGON_CLIENT, s->remote, "IMAP", &u);
	if (r == MV_LOGON_ERROR)
		return tagged(out, tag, "NO", "[UNAVAILABLE] logon cannot be checked now");
	if (r == MV_LOGON_FAILED)
		return tagged(out, tag, "NO", "[AUTHENTICATIONFAILED] wrong user name or password");
	if (!(u->login_privileges & MV_LOGIN_IMAP)) {
		mv_logon_failed(s->logon, inst, u->name, s->remote, "IMAP", "no imap login privilege");
		mv_user_free(u);
		return tagged(out, tag, "NO", "[AUTHORIZATIONFAILED] this user may not log on with IMAP");
	}
	s->access = mv_access_for_user(inst, u, &err);
	if (!s->access) {
		mv_log_error("IMAP: privileges of %s: %s", u->name, err->message);
		g_error_free(err);
		mv_user_free(u);
		return tagged(out, tag, "NO", "[UNAVAILABLE] privileges cannot be read now");
	}
	s->user_name = g_strdup(u->name);
	s->auth_generation = u->auth_generation;
	s->state = ST_AUTH;
	mv_user_free(u);
	mv_logon_note_session(s->logon, s->user_name, s->remote, "imap");
	audit_activity(s, inst, "UserLogon", "IMAP");
	g_string_append_printf(out, "%s OK [CAPABILITY ", tag);
	put_capabilities(s, out);
	g_string_append(out, "] logged on\r\n");
	return IMAP_STEP_DONE;
}

imap_step cmd_login(imap_session *s, const imap_command *c, GString *out)
{
	const char *name = imap_arg_astring(c, 0), *password = imap_arg_astring(c, 1);
	if (!name || !password || c->args->len != 2)
		return tagged(out, c->tag, "BAD", "LOGIN needs a user name and a password");
	return logon(s, c->tag, name, password, out);
}

/* SASL PLAIN: [authzid] NUL authcid NUL password, base64. */
imap_step plain_response(imap_session *s, const char *tag, const char *b64, GString *out)
{
	if (strcmp(b64, "*") == 0)
		return tagged(out, tag, "BAD", "AUTHENTICATE cancelled");
	gsize len = 0;
	size_t n = strlen(b64);
	if (n == 0 || n > 4096 || n % 4 != 0 || strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return tagged(out, tag, "BAD", "AUTHENTICATE PLAIN: malformed base64");
	guchar *raw = g_base64_decode(b64, &len);
	char *authz = (char *)raw;
	char *nul1 = memchr(raw, 0, len);
	char *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - (char *)raw)) : NULL;
	imap_step step;
	if (!nul1 || !nul2 || memchr(nul2 + 1, 0, len - (size_t)(nul2 + 1 - (char *)raw))) {
		step = tagged(out, tag, "BAD", "AUTHENTICATE PLAIN: expected authzid NUL user NUL password");
	} else {
		char *user = g_strndup(nul1 + 1, (gsize)(nul2 - nul1 - 1));
		char *password = g_strndup(nul2 + 1, len - (gsize)(nul2 + 1 - (char *)raw));
		if (nul1 != authz && strcmp(authz, user) != 0)
			step = tagged(out, tag, "NO", "[AUTHORIZATIONFAILED] acting as another user is not supported");
		else
			step = logon(s, tag, user, password, out);
		sodium_memzero(password, strlen(password));
		g_free(password);
		g_free(user);
	}
	sodium_memzero(raw, len);
	g_free(raw);
	return step;
}

imap_step cmd_authenticate(imap_session *s, const imap_command *c, GString *out)
{
	const char *mech = imap_arg_astring(c, 0);
	if (!mech || c->args->len > 2)
		return tagged(out, c->tag, "BAD", "AUTHENTICATE needs a mechanism");
	if (g_ascii_strcasecmp(mech, "PLAIN") != 0)
		return tagged(out, c->tag, "NO", "[CANNOT] only AUTHENTICATE PLAIN is supported");
	if (!s->tls && !s->plaintext_logon)
		return tagged(out, c->tag, "NO", "[PRIVACYREQUIRED] logon needs TLS: use STARTTLS or the TLS port");
	const char *initial = imap_arg_astring(c, 1);
	if (initial)
		return plain_response(s, c->tag, strcmp(initial, "=") == 0 ? "" : initial, out);
	s->wait = WAIT_AUTH;
	g_free(s->wait_tag);
	s->wait_tag = g_strdup(c->tag);
	g_string_append(out, "+ \r\n");
	return IMAP_STEP_LINE;
}

imap_step cmd_starttls(imap_session *s, const imap_command *c, GString *out)
{
	if (!s->starttls_offered || s->tls)
		return tagged(out, c->tag, "BAD", "STARTTLS is not available on this connection");
	tagged(out, c->tag, "OK", "begin TLS negotiation now");
	return IMAP_STEP_STARTTLS;
}

void imap_session_tls_started(imap_session *s)
{
	s->tls = true;
}
