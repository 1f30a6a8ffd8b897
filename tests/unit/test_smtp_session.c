/* Unit tests for the SMTP/LMTP session (smtpd/session.c): conversations
 * given as the bytes a client sends, driven the way the server drives
 * them — every step honoured (STARTTLS, AUTH, DELIVER, CLOSE) — and each
 * one fed whole, split in two at every byte boundary and byte by byte,
 * which must all give the same replies, steps, messages, bad-command
 * count and audit refusals.  Covered: greetings (EHLO capabilities, HELO,
 * LHLO), who may send (allowed networks, AUTH, require_tls), SIZE and
 * recipient limits, DATA unstuffing and pipelining behind it, LMTP's
 * reply per recipient, BDAT chunks, overlong lines, STARTTLS, AUTH PLAIN
 * and LOGIN with their refusals, QUIT. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtpd/session.h"

#define GREETING_SMTP "220 mx.test mailvault ESMTP ready"

static smtp_session_env base_env(void)
{
	return (smtp_session_env){
		.starttls_available = true,
		.allowed = true,
		.max_message_bytes = 1000,
		.max_recipients = 3,
		.remote = "192.0.2.1",
		.server_name = "mx.test",
	};
}

/* What one drive of a conversation gave. */
typedef struct run {
	GString *out;          /* every byte the session sent, step markers between */
	GString *summary;      /* each reply's last line as "code[ enhanced]", and the steps */
	GPtrArray *messages;   /* smtpd_message*, as delivered */
	GString *refusals;     /* smtp_session_take_refusal's texts, one a line */
	unsigned bad;
	size_t used;           /* input bytes the session took in all */
	unsigned delivered_code;
} run;

static void run_init(run *r, unsigned delivered_code)
{
	r->out = g_string_new(NULL);
	r->summary = g_string_new(NULL);
	r->messages = g_ptr_array_new_with_free_func((GDestroyNotify)smtpd_message_free);
	r->refusals = g_string_new(NULL);
	r->bad = 0;
	r->used = 0;
	r->delivered_code = delivered_code;
}

static void run_clear(run *r)
{
	g_string_free(r->out, TRUE);
	g_string_free(r->summary, TRUE);
	g_ptr_array_unref(r->messages);
	g_string_free(r->refusals, TRUE);
}

static void note(run *r, const char *what)
{
	if (r->summary->len)
		g_string_append(r->summary, ", ");
	g_string_append(r->summary, what);
}

/* Adds the replies in out past *from to the summary: the last line of
 * each (code, then the enhanced code when the text starts with one). */
static void summarise(run *r, size_t *from)
{
	while (*from < r->out->len) {
		const char *line = r->out->str + *from;
		const char *end = strstr(line, "\r\n");
		assert_non_null(end);
		*from = (size_t)(end - r->out->str) + 2;
		assert_true(end - line >= 3);
		if (end - line > 3 && line[3] == '-')
			continue;
		GString *item = g_string_new_len(line, 3);
		const char *text = line + 4;
		if (end - line > 4 && g_ascii_isdigit(text[0]) && text[1] == '.') {
			size_t n = strcspn(text, " \r");
			g_string_append_c(item, ' ');
			g_string_append_len(item, text, (gssize)n);
		}
		note(r, item->str);
		g_string_free(item, TRUE);
	}
}

static void take_accounting(smtp_session *s, run *r)
{
	r->bad += smtp_session_take_bad_commands(s);
	const char *refusal;
	while ((refusal = smtp_session_take_refusal(s)))
		g_string_append_printf(r->refusals, "%s\n", refusal);
}

/* Does what the server does for a step; false when the session closes. */
static bool honour(smtp_session *s, smtp_step step, run *r, size_t *seen)
{
	summarise(r, seen);
	switch (step) {
	case SMTP_READ: return true;
	case SMTP_CLOSE: note(r, "CLOSE"); return false;
	case SMTP_STARTTLS:
		note(r, "STARTTLS");
		smtp_session_tls_started(s);
		return true;
	case SMTP_AUTH: {
		const char *name, *password;
		smtp_session_auth_pending(s, &name, &password);
		assert_non_null(name);
		assert_non_null(password);
		char *what = g_strdup_printf("AUTH(%s:%s)", name, password);
		note(r, what);
		g_free(what);
		bool ok = strcmp(password, "secret") == 0;
		bool unavailable = strcmp(password, "later") == 0;
		char *user = g_strdup(name);
		smtp_session_auth_checked(s, ok, unavailable, user, r->out);
		g_free(user);
		take_accounting(s, r);
		summarise(r, seen);
		return true;
	}
	case SMTP_DELIVER: {
		note(r, "DELIVER");
		smtpd_message *m = smtp_session_take_message(s);
		assert_non_null(m);
		assert_null(smtp_session_take_message(s));
		m->code = r->delivered_code;
		m->enhanced = r->delivered_code == 250 ? "2.6.0" : "4.3.0";
		m->text = g_strdup(r->delivered_code == 250 ? "archived" : "try again");
		smtp_session_delivered(s, m, r->out);
		g_ptr_array_add(r->messages, m);
		summarise(r, seen);
		return true;
	}
	}
	fail_msg("unknown step %d", (int)step);
	return false;
}

/* Drives a conversation: the greeting, then data in pieces — the first
 * `first` bytes, then the rest `piece` bytes at a time (0: at once). */
static void drive(const smtp_session_env *env, const char *data, size_t len, size_t first, size_t piece, run *r)
{
	smtp_session *s = smtp_session_new(env);
	size_t seen = 0;
	smtp_session_greeting(s, r->out);
	summarise(r, &seen);
	size_t pos = 0;
	bool open = true;
	while (open && pos < len) {
		size_t want = pos == 0 ? first : piece ? piece : len - pos;
		if (want == 0 || want > len - pos)
			want = len - pos;
		size_t end = pos + want;
		/* A piece is fed until taken whole; a step other than READ leaves
		 * the rest to be fed again once done. */
		while (open) {
			size_t used = 0;
			smtp_step step = smtp_session_input(s, (const uint8_t *)data + pos, end - pos, &used, r->out);
			assert_true(used <= end - pos);
			if (step == SMTP_READ)
				assert_int_equal(used, end - pos);
			pos += used;
			r->used += used;
			take_accounting(s, r);
			open = honour(s, step, r, &seen);
			if (step == SMTP_READ)
				break;
		}
	}
	smtp_session_free(s);
}

static void assert_runs_equal(const run *a, const run *b, size_t first, size_t piece)
{
	if (strcmp(a->out->str, b->out->str) != 0)
		fail_msg("split at %zu, pieces of %zu: replies differ:\n%s\n---\n%s", first, piece, a->out->str, b->out->str);
	assert_string_equal(a->summary->str, b->summary->str);
	assert_string_equal(a->refusals->str, b->refusals->str);
	assert_int_equal(a->bad, b->bad);
	assert_int_equal(a->used, b->used);
	assert_int_equal(a->messages->len, b->messages->len);
	for (guint i = 0; i < a->messages->len; i++) {
		const smtpd_message *x = a->messages->pdata[i], *y = b->messages->pdata[i];
		assert_int_equal(x->data->len, y->data->len);
		assert_memory_equal(x->data->data, y->data->data, x->data->len);
		assert_string_equal(x->sender ? x->sender : "<>", y->sender ? y->sender : "<>");
		assert_int_equal(x->recipients->len, y->recipients->len);
		for (guint j = 0; j < x->recipients->len; j++)
			assert_string_equal(x->recipients->pdata[j], y->recipients->pdata[j]);
		assert_int_equal(x->journal_trusted, y->journal_trusted);
	}
}

/* The conversation fed whole into *r; then split in two at every byte
 * and byte by byte, each of which must give the same. */
static void converse_code(const smtp_session_env *env, const char *script, unsigned delivered_code, run *r)
{
	size_t len = strlen(script);
	run_init(r, delivered_code);
	drive(env, script, len, len, 0, r);
	for (size_t cut = 1; cut <= len; cut++) {
		for (size_t piece = 0; piece <= 1; piece++) {
			if (piece == 1 && cut > 1)
				break;
			run other;
			run_init(&other, delivered_code);
			drive(env, script, len, cut, piece, &other);
			assert_runs_equal(r, &other, cut, piece);
			run_clear(&other);
		}
	}
}

static void converse(const smtp_session_env *env, const char *script, run *r)
{
	converse_code(env, script, 250, r);
}

static void assert_summary(const run *r, const char *expected)
{
	if (strcmp(r->summary->str, expected) != 0)
		fail_msg("replies and steps:\n  got      %s\n  expected %s\n%s", r->summary->str, expected, r->out->str);
}

static const smtpd_message *message(const run *r, guint i)
{
	assert_true(i < r->messages->len);
	return r->messages->pdata[i];
}

static void assert_body(const smtpd_message *m, const char *expected)
{
	assert_int_equal(m->data->len, strlen(expected));
	assert_memory_equal(m->data->data, expected, m->data->len);
}

/* ---- greetings ---------------------------------------------------------------------------------- */

static void test_greeting_and_ehlo(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "EHLO client.test\r\n", &r);
	assert_summary(&r, "220, 250");
	assert_true(g_str_has_prefix(r.out->str, GREETING_SMTP "\r\n"));
	assert_non_null(strstr(r.out->str, "250-mx.test greets client.test\r\n"));
	assert_non_null(strstr(r.out->str, "250-SIZE 1000\r\n"));
	assert_non_null(strstr(r.out->str, "250-CHUNKING\r\n"));
	assert_non_null(strstr(r.out->str, "250 STARTTLS\r\n"));
	assert_null(strstr(r.out->str, "AUTH"));
	assert_int_equal(r.bad, 0);
	run_clear(&r);

	/* AUTH is offered only once TLS is on; STARTTLS only before. */
	env.auth = true;
	converse(&env, "EHLO client.test\r\n", &r);
	assert_null(strstr(r.out->str, "AUTH"));
	run_clear(&r);
	env.tls = true;
	converse(&env, "EHLO client.test\r\n", &r);
	assert_non_null(strstr(r.out->str, "250 AUTH PLAIN LOGIN\r\n"));
	assert_null(strstr(r.out->str, "STARTTLS"));
	run_clear(&r);
}

static void test_helo(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "HELO client.test\r\nMAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0");
	assert_non_null(strstr(r.out->str, "250 mx.test greets client.test\r\n"));
	run_clear(&r);
}

static void test_lmtp_greeting(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.lmtp = true;
	run r;
	converse(&env, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<a@b.test>\r\nLHLO client.test\r\n", &r);
	assert_summary(&r, "220, 500 5.5.1, 500 5.5.1, 503 5.5.1, 250");
	assert_true(g_str_has_prefix(r.out->str, "220 mx.test mailvault LMTP ready\r\n"));
	assert_non_null(strstr(r.out->str, "greet with LHLO"));
	assert_int_equal(r.bad, 3);
	run_clear(&r);

	/* And LHLO is refused on SMTP. */
	env.lmtp = false;
	converse(&env, "LHLO client.test\r\n", &r);
	assert_summary(&r, "220, 500 5.5.1");
	run_clear(&r);
}

/* ---- who may send ------------------------------------------------------------------------------- */

static void test_mail_before_hello(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n", &r);
	assert_summary(&r, "220, 503 5.5.1, 503 5.5.1, 503 5.5.1");
	assert_int_equal(r.bad, 3);
	assert_int_equal(r.messages->len, 0);
	run_clear(&r);
}

static void test_not_allowed(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.allowed = false;
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, 550 5.7.1, 550 5.7.1");
	/* The audit log hears of it once. */
	assert_string_equal(r.refusals->str,
	                    "MAIL refused: the client's network is not allowed and it did not log on\n");
	assert_int_equal(r.bad, 2);
	run_clear(&r);

	env.auth = true;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, 530 5.7.0");
	assert_non_null(strstr(r.out->str, "authentication required"));
	run_clear(&r);
}

static void test_require_tls(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.require_tls = true;
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nEHLO c.test\r\nMAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, 530 5.7.0, 220 2.0.0, STARTTLS, 250, 250 2.1.0");
	assert_string_equal(r.refusals->str, "MAIL refused: TLS is required\n");
	assert_int_equal(r.bad, 1);
	run_clear(&r);
}

/* Two kinds of refusal in one read are both reported. */
static void test_refusals_once_per_kind(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.require_tls = true;
	env.auth = true;
	env.starttls_available = false;
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b.test>\r\n"
	               "AUTH PLAIN AGEAYg==\r\n", &r);
	assert_summary(&r, "220, 250, 530 5.7.0, 538 5.7.11, 530 5.7.0, 538 5.7.11");
	assert_string_equal(r.refusals->str, "MAIL refused: TLS is required\nAUTH refused before TLS\n");
	assert_int_equal(r.bad, 4);
	run_clear(&r);
}

/* ---- the transaction ---------------------------------------------------------------------------- */

static void test_size_limit_at_mail(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test> SIZE=1001\r\nMAIL FROM:<a@b.test> SIZE=1000\r\n", &r);
	assert_summary(&r, "220, 250, 552 5.3.4, 250 2.1.0");
	run_clear(&r);
}

static void test_rcpt_rules(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env,
	         "EHLO c.test\r\nRCPT TO:<x@d.test>\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n"
	         "RCPT TO:<x1@d.test>\r\nRCPT TO:<x2@d.test>\r\nRCPT TO:<x3@d.test>\r\nRCPT TO:<x4@d.test>\r\n"
	         "DATA\r\nhi\r\n.\r\n",
	         &r);
	assert_summary(&r, "220, 250, 503 5.5.1, 250 2.1.0, 503 5.5.1, 250 2.1.5, 250 2.1.5, 250 2.1.5, 452 4.5.3, "
	                   "354, DELIVER, 250 2.6.0");
	/* RCPT before MAIL and a second MAIL count; too many recipients does not. */
	assert_int_equal(r.bad, 2);
	const smtpd_message *m = message(&r, 0);
	assert_int_equal(m->recipients->len, 3);
	assert_string_equal(m->recipients->pdata[2], "x3@d.test");
	run_clear(&r);
}

static void test_data_with_dot_stuffing(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	/* The body's own lines of dots: "." ends it only alone on its line. */
	converse(&env,
	         "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n"
	         "Subject: dots\r\n\r\n..leading dot\r\n...\r\nend.\r\n.\r\n"
	         "MAIL FROM:<>\r\nRCPT TO:<y@d.test>\r\nDATA\r\n.\r\nQUIT\r\n",
	         &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.1.5, 354, DELIVER, 250 2.6.0, 250 2.1.0, 250 2.1.5, "
	                   "354, DELIVER, 250 2.6.0, 221 2.0.0, CLOSE");
	const smtpd_message *m = message(&r, 0);
	assert_body(m, "Subject: dots\r\n\r\n.leading dot\r\n..\r\nend.\r\n");
	assert_string_equal(m->sender, "a@b.test");
	assert_int_equal(m->recipients->len, 2);
	assert_string_equal(m->recipients->pdata[0], "x@d.test");
	assert_string_equal(m->recipients->pdata[1], "Postmaster");
	assert_string_equal(m->remote, "192.0.2.1");
	assert_true(m->journal_trusted);
	m = message(&r, 1);
	assert_null(m->sender);
	assert_body(m, "");
	assert_int_equal(m->recipients->len, 1);
	assert_string_equal(m->recipients->pdata[0], "y@d.test");
	run_clear(&r);
}

/* What follows DATA's end waits for the delivery's answer. */
static void test_pipelining_waits_for_delivery(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	smtp_session *s = smtp_session_new(&env);
	GString *out = g_string_new(NULL);
	const char *script = "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nDATA\r\nbody\r\n.\r\n";
	const char *rest = "NOOP\r\nQUIT\r\n";
	char *all = g_strconcat(script, rest, NULL);
	size_t used = 0;
	assert_int_equal(smtp_session_input(s, (const uint8_t *)all, strlen(all), &used, out), SMTP_DELIVER);
	assert_int_equal(used, strlen(script));
	assert_true(g_str_has_suffix(out->str, "354 send the message, end with <CRLF>.<CRLF>\r\n"));
	smtpd_message *m = smtp_session_take_message(s);
	assert_body(m, "body\r\n");
	g_string_truncate(out, 0);
	m->code = 451;
	m->enhanced = "4.3.0";
	m->text = g_strdup("try again");
	smtp_session_delivered(s, m, out);
	assert_string_equal(out->str, "451 4.3.0 try again\r\n");
	smtpd_message_free(m);
	g_string_truncate(out, 0);
	/* The transaction is over: RCPT now needs a new MAIL. */
	size_t more = 0;
	assert_int_equal(smtp_session_input(s, (const uint8_t *)all + used, strlen(all) - used, &more, out), SMTP_CLOSE);
	assert_int_equal(more, strlen(rest));
	assert_string_equal(out->str, "250 2.0.0 ok\r\n221 2.0.0 bye\r\n");
	g_string_free(out, TRUE);
	g_free(all);
	smtp_session_free(s);
}

static void test_lmtp_reply_per_recipient(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.lmtp = true;
	run r;
	converse(&env, "LHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\n"
	               "RCPT TO:<z@d.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.1.5, 250 2.1.5, 354, DELIVER, 250 2.6.0, 250 2.6.0, "
	                   "250 2.6.0, 221 2.0.0, CLOSE");
	run_clear(&r);

	converse_code(&env, "LHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\n"
	                    "DATA\r\nhi\r\n.\r\n", 451, &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.1.5, 354, DELIVER, 451 4.3.0, 451 4.3.0");
	run_clear(&r);
}

static void test_data_too_big(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	env.max_message_bytes = 20;
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nDATA\r\n"
	               "0123456789\r\n0123456789\r\n.\r\nRCPT TO:<x@d.test>\r\nNOOP\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 354, 552 5.3.4, 503 5.5.1, 250 2.0.0");
	assert_int_equal(r.messages->len, 0);
	run_clear(&r);

	/* Exactly at the limit is taken. */
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nDATA\r\n"
	               "0123456789\r\n012345\r\n.\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 354, DELIVER, 250 2.6.0");
	assert_int_equal(message(&r, 0)->data->len, 20);
	run_clear(&r);
}

static void test_data_refused(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "EHLO c.test\r\nDATA\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nDATA\r\n"
	               "RCPT TO:<x@d.test>\r\nDATA\r\n", &r);
	assert_summary(&r, "220, 250, 503 5.5.1, 250 2.1.0, 554 5.5.1, 250 2.1.5, 503 5.5.1");
	assert_non_null(strstr(r.out->str, "BODY=BINARYMIME needs BDAT"));
	run_clear(&r);
}

/* ---- BDAT --------------------------------------------------------------------------------------- */

static void test_bdat(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<x@d.test>\r\n"
	               "BDAT 7\r\nab\r\n.\r\nBDAT 3 LAST\r\nxyzNOOP\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.0.0, DELIVER, 250 2.6.0, 250 2.0.0");
	assert_non_null(strstr(r.out->str, "250 2.0.0 7 octets received\r\n"));
	/* Nothing unstuffed: the chunks' octets as sent. */
	assert_body(message(&r, 0), "ab\r\n.\r\nxyz");
	run_clear(&r);

	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nBDAT 2\r\nhiBDAT 0 LAST\r\nQUIT\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.0.0, DELIVER, 250 2.6.0, 221 2.0.0, CLOSE");
	assert_body(message(&r, 0), "hi");
	run_clear(&r);

	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nBDAT 0 LAST\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, DELIVER, 250 2.6.0");
	assert_body(message(&r, 0), "");
	run_clear(&r);
}

/* A refused BDAT's chunk is read all the same, so it is not taken for
 * commands. */
static void test_bdat_refused(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "EHLO c.test\r\nBDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n", &r);
	assert_summary(&r, "220, 250, 503 5.5.1, 250 2.0.0");
	assert_non_null(strstr(r.out->str, "503 5.5.1 MAIL first\r\n"));
	assert_int_equal(r.messages->len, 0);
	assert_int_equal(r.bad, 1);
	run_clear(&r);

	env.max_message_bytes = 4;
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nde"
	               "MAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 250 2.1.5, 250 2.0.0, 552 5.3.4, 250 2.1.0");
	assert_int_equal(r.messages->len, 0);
	run_clear(&r);
}

/* ---- lines -------------------------------------------------------------------------------------- */

static void test_long_line(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	GString *script = g_string_new("EHLO c.test\r\nNOOP ");
	for (int i = 0; i < 600; i++)
		g_string_append_c(script, 'x');
	g_string_append(script, "\r\nNOOP\r\n");
	run r;
	converse(&env, script->str, &r);
	assert_summary(&r, "220, 250, 500 5.5.2, 250 2.0.0");
	assert_non_null(strstr(r.out->str, "500 5.5.2 line too long\r\n"));
	assert_int_equal(r.bad, 1);
	run_clear(&r);

	/* 512 octets with the CRLF is the bound: taken; 513 is not. */
	g_string_assign(script, "NOOP ");
	while (script->len < 510)
		g_string_append_c(script, 'y');
	g_string_append(script, "\r\nNOOP ");
	while (script->len < 512 + 511)
		g_string_append_c(script, 'z');
	g_string_append(script, "\r\n");
	converse(&env, script->str, &r);
	assert_summary(&r, "220, 250 2.0.0, 500 5.5.2");
	run_clear(&r);
	g_string_free(script, TRUE);
}

static void test_bad_commands(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "FROB\r\nEHLO c.test\nEHLO\r\nVRFY x\r\nHELP\r\nRSET\r\n", &r);
	assert_summary(&r, "220, 500 5.5.1, 500 5.5.2, 501 5.5.4, 252 2.5.0, 214 2.0.0, 250 2.0.0");
	assert_int_equal(r.bad, 3);
	assert_string_equal(r.refusals->str, "");
	run_clear(&r);
}

/* ---- STARTTLS ----------------------------------------------------------------------------------- */

static void test_starttls(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	/* The transaction under way is forgotten, and so is the greeting. */
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nRCPT TO:<x@d.test>\r\nMAIL FROM:<a@b.test>\r\n"
	               "EHLO c.test\r\nRCPT TO:<x@d.test>\r\nSTARTTLS\r\n", &r);
	assert_summary(&r, "220, 250, 250 2.1.0, 220 2.0.0, STARTTLS, 503 5.5.1, 503 5.5.1, 250, 503 5.5.1, 503 5.5.1");
	assert_non_null(strstr(r.out->str, "503 5.5.1 TLS is already on\r\n"));
	run_clear(&r);

	env.starttls_available = false;
	converse(&env, "EHLO c.test\r\nSTARTTLS\r\n", &r);
	assert_summary(&r, "220, 250, 454 4.7.0");
	assert_null(strstr(r.out->str, "STARTTLS"));
	run_clear(&r);
}

/* The bytes after STARTTLS are not the session's: the server drops them. */
static void test_starttls_leaves_the_rest(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	smtp_session *s = smtp_session_new(&env);
	GString *out = g_string_new(NULL);
	const char *script = "EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n";
	size_t used = 0;
	assert_int_equal(smtp_session_input(s, (const uint8_t *)script, strlen(script), &used, out), SMTP_STARTTLS);
	assert_int_equal(used, strlen("EHLO c.test\r\nSTARTTLS\r\n"));
	g_string_free(out, TRUE);
	smtp_session_free(s);
}

/* ---- AUTH --------------------------------------------------------------------------------------- */

static smtp_session_env auth_env(void)
{
	smtp_session_env env = base_env();
	env.allowed = false;
	env.auth = true;
	env.tls = true;
	return env;
}

static void test_auth_before_tls(void **state)
{
	(void)state;
	smtp_session_env env = auth_env();
	env.tls = false;
	run r;
	/* "\0user\0secret" */
	converse(&env, "EHLO c.test\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nSTARTTLS\r\nEHLO c.test\r\n"
	               "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", &r);
	assert_summary(&r, "220, 250, 538 5.7.11, 220 2.0.0, STARTTLS, 250, AUTH(user:secret), 235 2.7.0");
	assert_string_equal(r.refusals->str, "AUTH refused before TLS\n");
	run_clear(&r);

	env.auth = false;
	converse(&env, "EHLO c.test\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n", &r);
	assert_summary(&r, "220, 250, 503 5.5.1");
	run_clear(&r);
}

static void test_auth_plain(void **state)
{
	(void)state;
	smtp_session_env env = auth_env();
	run r;
	/* Initial response; then mail may be sent. */
	converse(&env, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nMAIL FROM:<a@b.test>\r\n"
	               "RCPT TO:<x@d.test>\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n", &r);
	assert_summary(&r, "220, 250, 530 5.7.0, AUTH(user:secret), 235 2.7.0, 250 2.1.0, 250 2.1.5, 503 5.5.1");
	run_clear(&r);

	/* Through the 334 continuation, with an authzid equal to the user. */
	converse(&env, "EHLO c.test\r\nAUTH PLAIN\r\ndXNlcgB1c2VyAHNlY3JldA==\r\n", &r);
	assert_summary(&r, "220, 250, 334, AUTH(user:secret), 235 2.7.0");
	assert_non_null(strstr(r.out->str, "\r\n334 \r\n"));
	run_clear(&r);

	/* A wrong password: 535, counted; a logon that cannot be checked: 454. */
	converse(&env, "EHLO c.test\r\nAUTH PLAIN AHVzZXIAd3Jvbmc=\r\nAUTH PLAIN AHVzZXIAbGF0ZXI=\r\n"
	               "MAIL FROM:<a@b.test>\r\n", &r);
	assert_summary(&r, "220, 250, AUTH(user:wrong), 535 5.7.8, AUTH(user:later), 454 4.7.0, 530 5.7.0");
	assert_int_equal(r.bad, 2);
	run_clear(&r);

	/* Acting as another user; no NULs; an unknown mechanism. */
	converse(&env, "EHLO c.test\r\nAUTH PLAIN b3RoZXIAdXNlcgBzZWNyZXQ=\r\nAUTH PLAIN dXNlcg==\r\n"
	               "AUTH CRAM-MD5\r\n", &r);
	assert_summary(&r, "220, 250, 535 5.7.8, 501 5.5.2, 504 5.5.4");
	assert_int_equal(r.bad, 3);
	run_clear(&r);
}

static void test_auth_login(void **state)
{
	(void)state;
	smtp_session_env env = auth_env();
	run r;
	converse(&env, "EHLO c.test\r\nAUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nAUTH LOGIN\r\n", &r);
	assert_summary(&r, "220, 250, 334, 334, AUTH(user:secret), 235 2.7.0, 503 5.5.1");
	assert_non_null(strstr(r.out->str, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"));
	run_clear(&r);

	/* The user name as initial response. */
	converse(&env, "EHLO c.test\r\nAUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\n", &r);
	assert_summary(&r, "220, 250, 334, AUTH(user:secret), 235 2.7.0");
	run_clear(&r);
}

static void test_auth_cancel_and_garbage(void **state)
{
	(void)state;
	smtp_session_env env = auth_env();
	run r;
	converse(&env, "EHLO c.test\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN\r\ndXNlcg==\r\n*\r\n"
	               "AUTH PLAIN\r\nnot base64!\r\nAUTH LOGIN\r\n@@@@\r\nAUTH PLAIN\r\nAHVzZXIAc2VjcmV0\r\n", &r);
	assert_summary(&r, "220, 250, 334, 501 5.0.0, 334, 334, 501 5.0.0, 334, 501 5.5.2, 334, 501 5.5.2, 334, "
	                   "AUTH(user:secret), 235 2.7.0");
	assert_int_equal(r.bad, 4);
	run_clear(&r);

	/* An overlong response ends the exchange: the next line is a command. */
	GString *script = g_string_new("EHLO c.test\r\nAUTH PLAIN\r\n");
	for (int i = 0; i < 13000; i++)
		g_string_append_c(script, 'A');
	g_string_append(script, "\r\nNOOP\r\n");
	run_init(&r, 250);
	drive(&env, script->str, script->len, script->len, 0, &r);
	assert_summary(&r, "220, 250, 334, 500 5.5.2, 250 2.0.0");
	run_clear(&r);
	g_string_free(script, TRUE);
}

static void test_quit(void **state)
{
	(void)state;
	smtp_session_env env = base_env();
	run r;
	converse(&env, "QUIT\r\nNOOP\r\n", &r);
	assert_summary(&r, "220, 221 2.0.0, CLOSE");
	assert_int_equal(r.used, strlen("QUIT\r\n"));
	run_clear(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_ehlo),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_lmtp_greeting),
		cmocka_unit_test(test_mail_before_hello),
		cmocka_unit_test(test_not_allowed),
		cmocka_unit_test(test_require_tls),
		cmocka_unit_test(test_refusals_once_per_kind),
		cmocka_unit_test(test_size_limit_at_mail),
		cmocka_unit_test(test_rcpt_rules),
		cmocka_unit_test(test_data_with_dot_stuffing),
		cmocka_unit_test(test_pipelining_waits_for_delivery),
		cmocka_unit_test(test_lmtp_reply_per_recipient),
		cmocka_unit_test(test_data_too_big),
		cmocka_unit_test(test_data_refused),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_refused),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_leaves_the_rest),
		cmocka_unit_test(test_auth_before_tls),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_cancel_and_garbage),
		cmocka_unit_test(test_quit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
