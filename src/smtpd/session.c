/* smtpd/session: the SMTP/LMTP conversation (RFC 5321, 2033, 3030, 3207,
 * 4954) as a state machine over the bytes a client sends.
 *
 * Input comes in any pieces; a command line is gathered here up to its
 * bound (a longer one is read to its end and refused as one error, never
 * cut into two commands), a DATA or BDAT body goes through smtpd/data's
 * decoders.  Who may hand in mail is decided at MAIL: a client of an
 * allowed network, or one logged on — and, when TLS is required, only
 * after STARTTLS.  Transactions are reset by every greeting, by RSET and
 * by STARTTLS (whose pipelined rest the server throws away).  A message is
 * handed to delivery only once whole, so a client that disconnects mid-DATA
 * leaves nothing behind. */
#include "smtpd/session.h"
#include <sodium.h>
#include <string.h>

#define AUTH_LINE_MAX 12288u     /* RFC 4954 4: an AUTH line may be this long */

typedef enum { IN_LINE, IN_DATA, IN_BDAT, IN_AUTH } input_mode;
typedef enum { MECH_PLAIN, MECH_LOGIN } auth_mech;

/* What the audit log hears about, once per session each. */
enum { REFUSED_NOT_ALLOWED = 1, REFUSED_NEEDS_TLS = 2, REFUSED_AUTH_CLEAR = 4 };
#define REFUSAL_KINDS 3

struct smtp_session {
	smtp_session_env env;
	char *remote, *server_name;
	bool greeted, tls, closing;
	char *user;                  /* logged on as, or NULL */
	/* The transaction. */
	bool in_mail;
	char *sender;
	bool smtputf8_tx;
	mv_smtp_body body_type;
	GPtrArray *recipients;       /* char* */
	/* Input. */
	input_mode mode;
	GByteArray *line;
	bool line_too_long;
	GByteArray *body;
	mv_smtp_data_decoder data;
	mv_smtp_bdat_decoder bdat;
	bool bdat_started;           /* a BDAT transaction is under way */
	bool bdat_last;
	const char *bdat_refusal;    /* the chunk is read and refused with this (code 503) */
	/* AUTH in progress. */
	auth_mech mech;
	char *auth_name, *auth_password;
	/* What was handed over. */
	smtpd_message *message;
	unsigned bad;
	unsigned refused_reported;
	/* Noted but not yet taken, oldest first: each kind once, so three at most. */
	const char *refusals_new[REFUSAL_KINDS];
	unsigned n_refusals_new;
};

smtp_session *smtp_session_new(const smtp_session_env *env)
{
	smtp_session *s = g_new0(smtp_session, 1);
	s->env = *env;
	s->remote = g_strdup(env->remote);
	s->server_name = g_strdup(env->server_name);
	s->env.remote = s->remote;
	s->env.server_name = s->server_name;
	s->tls = env->tls;
	s->recipients = g_ptr_array_new_with_free_func(g_free);
	s->line = g_byte_array_new();
	s->body = g_byte_array_new();
	return s;
}

static void wipe_auth(smtp_session *s)
{
	if (s->auth_password) {
		sodium_memzero(s->auth_password, strlen(s->auth_password));
		g_clear_pointer(&s->auth_password, g_free);
	}
	g_clear_pointer(&s->auth_name, g_free);
}

void smtp_session_free(smtp_session *s)
{
	if (!s)
		return;
	wipe_auth(s);
	smtpd_message_free(s->message);
	g_ptr_array_unref(s->recipients);
	g_byte_array_unref(s->line);
	g_byte_array_unref(s->body);
	g_free(s->sender);
	g_free(s->user);
	g_free(s->remote);
	g_free(s->server_name);
	g_free(s);
}

const char *smtp_session_user(const smtp_session *s)
{
	return s->user;
}

unsigned smtp_session_take_bad_commands(smtp_session *s)
{
	unsigned n = s->bad;
	s->bad = 0;
	return n;
}

/* A queue, not the last one noted: one read can hold a refused MAIL and a
 * refused AUTH, and the audit log must hear of both. */
const char *smtp_session_take_refusal(smtp_session *s)
{
	if (s->n_refusals_new == 0)
		return NULL;
	const char *text = s->refusals_new[0];
	s->n_refusals_new--;
	memmove(s->refusals_new, s->refusals_new + 1, s->n_refusals_new * sizeof s->refusals_new[0]);
	return text;
}

static void note_refusal(smtp_session *s, unsigned kind, const char *text)
{
	if (s->refused_reported & kind)
		return;
	s->refused_reported |= kind;
	g_assert(s->n_refusals_new < REFUSAL_KINDS);
	s->refusals_new[s->n_refusals_new++] = text;
}

static void reply(GString *out, unsigned code, const char *enhanced, const char *text)
{
	mv_smtp_reply(out, code, enhanced, text);
}

/* A refusal of the client's doing: counted against its address. */
static smtp_step refuse(smtp_session *s, GString *out, unsigned code, const char *enhanced, const char *text)
{
	s->bad++;
	reply(out, code, enhanced, text);
	return SMTP_READ;
}

static void reset_transaction(smtp_session *s)
{
	s->in_mail = false;
	g_clear_pointer(&s->sender, g_free);
	s->smtputf8_tx = false;
	s->body_type = MV_SMTP_BODY_NONE;
	g_ptr_array_set_size(s->recipients, 0);
	g_byte_array_set_size(s->body, 0);
	s->bdat_started = false;
	s->bdat_last = false;
	s->bdat_refusal = NULL;
}

void smtp_session_greeting(smtp_session *s, GString *out)
{
	char *text = g_strdup_printf("%s mailvault %s ready", s->server_name, s->env.lmtp ? "LMTP" : "ESMTP");
	reply(out, 220, NULL, text);
	g_free(text);
}

/* ---- greetings, STARTTLS, AUTH ------------------------------------------------------------------ */

static smtp_step cmd_hello(smtp_session *s, const mv_smtp_command *c, GString *out)
{
	bool lhlo = c->verb == MV_SMTP_LHLO;
	if (s->env.lmtp != lhlo)
		return refuse(s, out, 500, "5.5.1", s->env.lmtp ? "this is LMTP: greet with LHLO" : "LHLO is for LMTP: greet with EHLO");
	reset_transaction(s);
	s->greeted = true;
	if (c->verb == MV_SMTP_HELO) {
		char *text = g_strdup_printf("%s greets %s", s->server_name, c->domain);
		reply(out, 250, NULL, text);
		g_free(text);
		return SMTP_READ;
	}
	mv_smtp_capabilities caps = {
		.size_max = s->env.max_message_bytes,
		.starttls = s->env.starttls_available && !s->tls,
		.auth = s->env.auth && s->tls && !s->user ? "PLAIN LOGIN" : NULL,
		.chunking = true,
		.smtputf8 = true,
	};
	mv_smtp_ehlo_reply(out, s->server_name, c->domain, &caps);
	return SMTP_READ;
}

static smtp_step cmd_starttls(smtp_session *s, GString *out)
{
	if (s->tls)
		return refuse(s, out, 503, "5.5.1", "TLS is already on");
	if (!s->env.starttls_available)
		return refuse(s, out, 454, "4.7.0", "TLS is not available now");
	/* RFC 3207 4.2: everything known before TLS is forgotten. */
	reset_transaction(s);
	s->greeted = false;
	reply(out, 220, "2.0.0", "ready to start TLS");
	return SMTP_STARTTLS;
}

void smtp_session_tls_started(smtp_session *s)
{
	s->tls = true;
	s->line_too_long = false;
	g_byte_array_set_size(s->line, 0);
	s->mode = IN_LINE;
}

/* Base64 of a SASL response into a new NUL-terminated string; NULL when
 * it is not base64 or decodes to something holding a NUL where none may
 * be (allow_nul: PLAIN's separators). */
static char *sasl_decode(const char *b64, bool allow_nul, gsize *len_r)
{
	size_t n = strlen(b64);
	if (n % 4 != 0 || strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return NULL;
	gsize len = 0;
	guchar *raw = n ? g_base64_decode(b64, &len) : (guchar *)g_strdup("");
	char *out = g_malloc(len + 1);
	memcpy(out, raw, len);
	out[len] = '\0';
	sodium_memzero(raw, len);
	g_free(raw);
	if (!allow_nul && memchr(out, 0, len)) {
		sodium_memzero(out, len);
		g_free(out);
		return NULL;
	}
	*len_r = len;
	return out;
}

static void free_secret(char *p, size_t len)
{
	if (!p)
		return;
	sodium_memzero(p, len);
	g_free(p);
}

/* PLAIN: [authzid] NUL authcid NUL password (RFC 4616). */
static smtp_step plain_response(smtp_session *s, const char *b64, GString *out)
{
	gsize len = 0;
	char *raw = sasl_decode(b64, true, &len);
	if (!raw)
		return refuse(s, out, 501, "5.5.2", "AUTH PLAIN: the response is not base64");
	char *nul1 = memchr(raw, 0, len);
	char *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - raw)) : NULL;
	if (!nul1 || !nul2) {
		free_secret(raw, len);
		return refuse(s, out, 501, "5.5.2", "AUTH PLAIN: expected authzid NUL user NUL password");
	}
	if (nul1 != raw && strcmp(raw, nul1 + 1) != 0) {
		free_secret(raw, len);
		return refuse(s, out, 535, "5.7.8", "acting as another user is not supported");
	}
	s->auth_name = g_strdup(nul1 + 1);
	s->auth_password = g_strdup(nul2 + 1);
	free_secret(raw, len);
	return SMTP_AUTH;
}

static smtp_step auth_line(smtp_session *s, const char *line, GString *out)
{
	s->mode = IN_LINE;
	if (strcmp(line, "*") == 0) {
		wipe_auth(s);
		return refuse(s, out, 501, "5.0.0", "authentication cancelled");
	}
	if (s->mech == MECH_PLAIN)
		return plain_response(s, line, out);
	gsize len = 0;
	char *value = sasl_decode(line, false, &len);
	if (!value) {
		wipe_auth(s);
		return refuse(s, out, 501, "5.5.2", "AUTH LOGIN: the response is not base64");
	}
	if (!s->auth_name) {
		s->auth_name = value;
		s->mode = IN_AUTH;
		reply(out, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
		return SMTP_READ;
	}
	s->auth_password = value;
	return SMTP_AUTH;
}

static smtp_step cmd_auth(smtp_session *s, const mv_smtp_command *c, GString *out)
{
	if (!s->env.auth)
		return refuse(s, out, 503, "5.5.1", "AUTH is not offered here");
	if (s->user)
		return refuse(s, out, 503, "5.5.1", "already logged on");
	if (s->in_mail)
		return refuse(s, out, 503, "5.5.1", "AUTH is not allowed during a mail transaction");
	if (!s->tls) {
		note_refusal(s, REFUSED_AUTH_CLEAR, "AUTH refused before TLS");
		return refuse(s, out, 538, "5.7.11", "encryption required: use STARTTLS before AUTH");
	}
	wipe_auth(s);
	if (strcmp(c->mechanism, "PLAIN") == 0)
		s->mech = MECH_PLAIN;
	else if (strcmp(c->mechanism, "LOGIN") == 0)
		s->mech = MECH_LOGIN;
	else
		return refuse(s, out, 504, "5.5.4", "only AUTH PLAIN and LOGIN are offered");
	if (c->initial_response)
		return auth_line(s, strcmp(c->initial_response, "=") == 0 ? "" : c->initial_response, out);
	s->mode = IN_AUTH;
	reply(out, 334, NULL, s->mech == MECH_PLAIN ? "" : "VXNlcm5hbWU6"); /* "Username:" */
	return SMTP_READ;
}

void smtp_session_auth_pending(smtp_session *s, const char **name_r, const char **password_r)
{
	*name_r = s->auth_name;
	*password_r = s->auth_password;
}

void smtp_session_auth_checked(smtp_session *s, bool ok, bool unavailable, const char *user, GString *out)
{
	wipe_auth(s);
	if (ok) {
		s->user = g_strdup(user);
		reply(out, 235, "2.7.0", "logged on");
	} else if (unavailable) {
		reply(out, 454, "4.7.0", "the logon cannot be checked now, try again later");
	} else {
		s->bad++;
		reply(out, 535, "5.7.8", "wrong user name or password, or no SMTP login privilege");
	}
}

/* ---- the transaction -------------------------------------------------------------------------------- */

static smtp_step cmd_mail(smtp_session *s, const mv_smtp_command *c, GString *out)
{
	if (!s->greeted)
		return refuse(s, out, 503, "5.5.1", s->env.lmtp ? "send LHLO first" : "send EHLO or HELO first");
	if (s->in_mail)
		return refuse(s, out, 503, "5.5.1", "a transaction is under way: RSET first");
	if (s->env.require_tls && !s->tls) {
		note_refusal(s, REFUSED_NEEDS_TLS, "MAIL refused: TLS is required");
		return refuse(s, out, 530, "5.7.0", "must issue a STARTTLS command first");
	}
	if (!s->env.allowed && !s->user) {
		note_refusal(s, REFUSED_NOT_ALLOWED, "MAIL refused: the client's network is not allowed and it did not log on");
		if (s->env.auth)
			return refuse(s, out, 530, "5.7.0", "authentication required");
		return refuse(s, out, 550, "5.7.1", "this client may not hand in mail here");
	}
	if (c->has_size && c->size > s->env.max_message_bytes)
		return refuse(s, out, 552, "5.3.4", "the message is larger than this server accepts (see SIZE)");
	s->in_mail = true;
	s->sender = c->null_path ? NULL : g_strdup(c->mailbox.address);
	s->smtputf8_tx = c->smtputf8;
	s->body_type = c->body;
	reply(out, 250, "2.1.0", "sender ok");
	return SMTP_READ;
}

static const char *rcpt_address(const mv_smtp_command *c)
{
	return c->mailbox.address ? c->mailbox.address : c->mailbox.local_part;
}

static smtp_step cmd_rcpt(smtp_session *s, const mv_smtp_command *c, GString *out)
{
	if (!s->in_mail)
		return refuse(s, out, 503, "5.5.1", "MAIL first");
	if (s->recipients->len >= s->env.max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest later. */
		reply(out, 452, "4.5.3", "too many recipients in one message");
		return SMTP_READ;
	}
	const char *address = rcpt_address(c);
	if (s->env.recipient_refused && s->env.recipient_refused(s->env.recipient_opaque, address)) {
		reply(out, 550, "5.1.1", "no user of this archive has that address");
		return SMTP_READ;
	}
	g_ptr_array_add(s->recipients, g_strdup(address));
	reply(out, 250, "2.1.5", "recipient ok");
	return SMTP_READ;
}

static const char *transaction_refusal(smtp_session *s)
{
	if (!s->in_mail)
		return "MAIL first";
	if (s->recipients->len == 0)
		return "no valid recipients";
	return NULL;
}

static smtp_step cmd_data(smtp_session *s, GString *out)
{
	const char *why = transaction_refusal(s);
	if (why)
		return refuse(s, out, s->in_mail ? 554 : 503, "5.5.1", why);
	if (s->body_type == MV_SMTP_BODY_BINARYMIME)
		return refuse(s, out, 503, "5.5.1", "BODY=BINARYMIME needs BDAT, not DATA");
	if (s->bdat_started)
		return refuse(s, out, 503, "5.5.1", "DATA in the middle of BDAT chunks");
	g_byte_array_set_size(s->body, 0);
	mv_smtp_data_init(&s->data, s->body, s->env.max_message_bytes);
	s->mode = IN_DATA;
	reply(out, 354, NULL, "send the message, end with <CRLF>.<CRLF>");
	return SMTP_READ;
}

static smtp_step cmd_bdat(smtp_session *s, const mv_smtp_command *c, GString *out)
{
	if (!s->bdat_started) {
		const char *why = transaction_refusal(s);
		s->bdat_refusal = why;
		g_byte_array_set_size(s->body, 0);
		mv_smtp_bdat_init(&s->bdat, s->body, s->env.max_message_bytes);
		s->bdat_started = why == NULL;
	}
	s->bdat_last = c->last;
	mv_smtp_bdat_chunk(&s->bdat, c->chunk_size);
	s->mode = IN_BDAT;
	return SMTP_READ;
}

static smtp_step hand_over(smtp_session *s)
{
	smtpd_message *m = g_new0(smtpd_message, 1);
	m->data = g_byte_array_ref(s->body);
	m->sender = g_strdup(s->sender);
	m->recipients = g_ptr_array_ref(s->recipients);
	m->remote = g_strdup(s->remote);
	m->journal_trusted = s->env.allowed || s->user != NULL;
	s->message = m;
	/* The session goes on with fresh arrays; the message owns these. */
	g_byte_array_unref(s->body);
	s->body = g_byte_array_new();
	g_ptr_array_unref(s->recipients);
	s->recipients = g_ptr_array_new_with_free_func(g_free);
	return SMTP_DELIVER;
}

smtpd_message *smtp_session_take_message(smtp_session *s)
{
	smtpd_message *m = s->message;
	s->message = NULL;
	return m;
}

void smtp_session_delivered(smtp_session *s, const smtpd_message *m, GString *out)
{
	guint n = s->env.lmtp ? m->recipients->len : 1;
	for (guint i = 0; i < n; i++)
		reply(out, m->code, m->enhanced, m->text);
	reset_transaction(s);
}

static smtp_step body_done(smtp_session *s, bool too_big, GString *out)
{
	s->mode = IN_LINE;
	if (too_big) {
		/* LMTP answers each recipient after the data (RFC 2033 4.2). */
		guint n = s->env.lmtp ? s->recipients->len : 1;
		for (guint i = 0; i < n; i++)
			reply(out, 552, "5.3.4", "the message is larger than this server accepts (see SIZE)");
		reset_transaction(s);
		return SMTP_READ;
	}
	return hand_over(s);
}

/* ---- input ------------------------------------------------------------------------------------------ */

static smtp_step command(smtp_session *s, const uint8_t *line, size_t len, GString *out)
{
	mv_smtp_parse_options po = { .max_line = MV_SMTP_COMMAND_LINE_MAX, .smtputf8_offered = true,
		                     .smtputf8_transaction = s->smtputf8_tx };
	mv_smtp_command c;
	mv_smtp_error err = { 0 };
	if (!mv_smtp_command_parse(line, len, &po, &c, &err)) {
		s->bad++;
		mv_smtp_reply_error(out, &err);
		mv_smtp_error_clear(&err);
		mv_smtp_command_clear(&c);
		return SMTP_READ;
	}
	smtp_step step = SMTP_READ;
	switch (c.verb) {
	case MV_SMTP_EHLO:
	case MV_SMTP_HELO:
	case MV_SMTP_LHLO: step = cmd_hello(s, &c, out); break;
	case MV_SMTP_STARTTLS: step = cmd_starttls(s, out); break;
	case MV_SMTP_AUTH: step = cmd_auth(s, &c, out); break;
	case MV_SMTP_MAIL: step = cmd_mail(s, &c, out); break;
	case MV_SMTP_RCPT: step = cmd_rcpt(s, &c, out); break;
	case MV_SMTP_DATA: step = cmd_data(s, out); break;
	case MV_SMTP_BDAT: step = cmd_bdat(s, &c, out); break;
	case MV_SMTP_RSET:
		reset_transaction(s);
		reply(out, 250, "2.0.0", "reset");
		break;
	case MV_SMTP_NOOP: reply(out, 250, "2.0.0", "ok"); break;
	case MV_SMTP_VRFY: reply(out, 252, "2.5.0", "addresses are not verified here"); break;
	case MV_SMTP_HELP: reply(out, 214, "2.0.0", "mailvault archives what it is sent; see RFC 5321"); break;
	case MV_SMTP_QUIT:
		reply(out, 221, "2.0.0", "bye");
		step = SMTP_CLOSE;
		break;
	default: step = refuse(s, out, 500, "5.5.2", "unknown command"); break;
	}
	mv_smtp_command_clear(&c);
	return step;
}

/* A whole line (with its LF) in s->line. */
static smtp_step line_done(smtp_session *s, GString *out)
{
	if (s->line_too_long) {
		s->line_too_long = false;
		g_byte_array_set_size(s->line, 0);
		if (s->mode == IN_AUTH) {
			s->mode = IN_LINE;
			wipe_auth(s);
		}
		return refuse(s, out, 500, "5.5.2", "line too long");
	}
	smtp_step step;
	if (s->mode == IN_AUTH) {
		/* The response without its line end; a CR is required before LF. */
		size_t n = s->line->len - 1;
		if (n > 0 && s->line->data[n - 1] == '\r')
			n--;
		char *text = g_strndup((const char *)s->line->data, n);
		step = auth_line(s, text, out);
		sodium_memzero(text, n);
		g_free(text);
	} else {
		step = command(s, s->line->data, s->line->len, out);
	}
	sodium_memzero(s->line->data, s->line->len);
	g_byte_array_set_size(s->line, 0);
	return step;
}

static size_t take_line_bytes(smtp_session *s, const uint8_t *data, size_t len, bool *complete_r)
{
	const uint8_t *lf = memchr(data, '\n', len);
	size_t n = lf ? (size_t)(lf - data) + 1 : len;
	size_t bound = s->mode == IN_AUTH ? AUTH_LINE_MAX : MV_SMTP_COMMAND_LINE_MAX;
	if (!s->line_too_long && s->line->len + n > bound) {
		s->line_too_long = true;
		g_byte_array_set_size(s->line, 0);
	}
	if (!s->line_too_long)
		g_byte_array_append(s->line, data, (guint)n);
	else if (lf)
		g_byte_array_append(s->line, lf, 1);
	*complete_r = lf != NULL;
	return n;
}

static smtp_step body_input(smtp_session *s, const uint8_t *data, size_t len, size_t *used_r, GString *out)
{
	if (s->mode == IN_DATA) {
		*used_r = mv_smtp_data_feed(&s->data, data, len);
		return s->data.done ? body_done(s, s->data.too_big, out) : SMTP_READ;
	}
	*used_r = mv_smtp_bdat_feed(&s->bdat, data, len);
	if (s->bdat.remaining > 0)
		return SMTP_READ;
	s->mode = IN_LINE;
	if (s->bdat_refusal) {
		const char *why = s->bdat_refusal;
		reset_transaction(s);
		return refuse(s, out, 503, "5.5.1", why);
	}
	if (s->bdat_last)
		return body_done(s, s->bdat.too_big, out);
	char *text = g_strdup_printf("%" G_GUINT64_FORMAT " octets received", s->bdat.size);
	reply(out, 250, "2.0.0", text);
	g_free(text);
	return SMTP_READ;
}

smtp_step smtp_session_input(smtp_session *s, const uint8_t *data, size_t len, size_t *used_r, GString *out)
{
	size_t used = 0;
	smtp_step step = SMTP_READ;
	while (step == SMTP_READ) {
		input_mode before = s->mode;
		size_t n = 0;
		if (s->mode == IN_DATA || s->mode == IN_BDAT) {
			/* A chunk of 0 octets (BDAT 0 LAST) ends without input. */
			bool empty_chunk = s->mode == IN_BDAT && s->bdat.remaining == 0;
			if (used == len && !empty_chunk)
				break;
			step = body_input(s, data + used, len - used, &n, out);
		} else {
			if (used == len)
				break;
			bool complete = false;
			n = take_line_bytes(s, data + used, len - used, &complete);
			if (complete)
				step = line_done(s, out);
		}
		used += n;
		if (n == 0 && s->mode == before && step == SMTP_READ)
			break;
	}
	*used_r = used;
	return step;
}
