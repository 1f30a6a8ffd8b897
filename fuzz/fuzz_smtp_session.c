/* libFuzzer target: the SMTP/LMTP session (smtpd/session.c) — a whole
 * conversation with a stranger's bytes, driven the way the server drives
 * it.
 *
 * The first five bytes choose the session's environment (LMTP, TLS on,
 * STARTTLS available, allowed network, AUTH, TLS required, whether the
 * rest after STARTTLS is dropped as the server does), a small size limit,
 * a small recipient limit and two piece sizes; the rest is fed in pieces
 * of those sizes in turn.  Every step is honoured: STARTTLS starts TLS,
 * AUTH is answered ok and failed in turn, DELIVER's message is checked
 * (within the size and recipient limits), answered 250 and freed.  What
 * must hold: the session never takes more than it is given, takes all of
 * it when it asks to read on, never stalls with a step that consumed
 * nothing, and its output is always whole reply lines — three digits,
 * '-' or ' ', printable text, CRLF — with every multi-line reply closed
 * before it waits for input.  Leaks are LeakSanitizer's. */
#include "smtpd/session.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_BYTES 5

/* The replies since the last check: whole lines "ddd-text" or "ddd text"
 * ending in CRLF, no control octet inside, a continued reply going on
 * with its own code and ending in a ' ' line. */
static void check_replies(const GString *out, size_t *from)
{
	const char *continued = NULL;
	while (*from < out->len) {
		const char *line = out->str + *from;
		const char *lf = memchr(line, '\n', out->len - *from);
		if (!lf || lf - line < 5 || lf[-1] != '\r')
			__builtin_trap();
		size_t n = (size_t)(lf - line) - 1; /* without CRLF */
		for (int i = 0; i < 3; i++)
			if (line[i] < '0' || line[i] > '9')
				__builtin_trap();
		if (line[0] < '2' || line[0] > '5')
			__builtin_trap();
		if (line[3] != ' ' && line[3] != '-')
			__builtin_trap();
		for (size_t i = 4; i < n; i++)
			if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
				__builtin_trap();
		if (continued && memcmp(continued, line, 3) != 0)
			__builtin_trap();
		continued = line[3] == '-' ? line : NULL;
		*from = (size_t)(lf - out->str) + 1;
	}
	if (continued)
		__builtin_trap();
}

typedef struct harness {
	smtp_session_env env;
	bool drop_after_starttls;
	unsigned auths;
	GString *out;
	size_t checked;
} harness;

static void check_message(const harness *h, smtpd_message *m)
{
	if (!m || !m->data || !m->recipients || !m->remote)
		__builtin_trap();
	if (m->data->len > h->env.max_message_bytes)
		__builtin_trap();
	if (m->recipients->len == 0 || m->recipients->len > h->env.max_recipients)
		__builtin_trap();
	for (guint i = 0; i < m->recipients->len; i++)
		if (!m->recipients->pdata[i] || !*(const char *)m->recipients->pdata[i])
			__builtin_trap();
}

/* Does what the server does for a step; false once the session closes. */
static bool honour(harness *h, smtp_session *s, smtp_step step)
{
	switch (step) {
	case SMTP_READ: return true;
	case SMTP_CLOSE: return false;
	case SMTP_STARTTLS:
		smtp_session_tls_started(s);
		return true;
	case SMTP_AUTH: {
		const char *name = NULL, *password = NULL;
		smtp_session_auth_pending(s, &name, &password);
		if (!name || !password)
			__builtin_trap();
		bool ok = h->auths++ % 2 == 0;
		/* The name is the session's until auth_checked: the server, too,
		 * passes its own copy. */
		char *user = g_strdup(name);
		smtp_session_auth_checked(s, ok, false, user, h->out);
		if (ok && (!smtp_session_user(s) || strcmp(smtp_session_user(s), user) != 0))
			__builtin_trap();
		g_free(user);
		return true;
	}
	case SMTP_DELIVER: {
		smtpd_message *m = smtp_session_take_message(s);
		check_message(h, m);
		if (smtp_session_take_message(s))
			__builtin_trap();
		m->code = 250;
		m->enhanced = "2.6.0";
		m->text = g_strdup("archived");
		smtp_session_delivered(s, m, h->out);
		smtpd_message_free(m);
		return true;
	}
	}
	__builtin_trap();
}

static void drain_accounting(smtp_session *s)
{
	(void)smtp_session_take_bad_commands(s);
	unsigned refusals = 0;
	while (smtp_session_take_refusal(s))
		if (++refusals > 3)
			__builtin_trap();
	if (smtp_session_take_bad_commands(s) != 0)
		__builtin_trap();
}

/* Feeds one piece until it is taken whole; false once the session closes. */
static bool feed(harness *h, smtp_session *s, const uint8_t *piece, size_t len)
{
	size_t pos = 0;
	bool stalled = false;
	for (;;) {
		size_t used = 0;
		smtp_step step = smtp_session_input(s, piece + pos, len - pos, &used, h->out);
		if (used > len - pos)
			__builtin_trap();
		if (step == SMTP_READ && used != len - pos)
			__builtin_trap();
		/* A step takes a command line, or ends an empty last chunk that
		 * was read with one: two steps in a row on nothing is a stall. */
		if (step != SMTP_READ && used == 0) {
			if (stalled)
				__builtin_trap();
			stalled = true;
		} else {
			stalled = false;
		}
		pos += used;
		drain_accounting(s);
		bool open = honour(h, s, step);
		check_replies(h->out, &h->checked);
		drain_accounting(s);
		if (!open)
			return false;
		if (step == SMTP_READ)
			return true;
		if (step == SMTP_STARTTLS && h->drop_after_starttls)
			return true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER_BYTES)
		return 0;
	uint8_t flags = data[0];
	harness h = {
		.env = {
			.lmtp = flags & 1,
			.tls = flags & 2,
			.starttls_available = flags & 4,
			.allowed = flags & 8,
			.auth = flags & 16,
			.require_tls = flags & 32,
			.max_message_bytes = 1 + (uint64_t)data[1] * 4,
			.max_recipients = 1 + (data[2] & 7),
			.remote = "192.0.2.1",
			.server_name = "mx.fuzz.test",
		},
		.drop_after_starttls = flags & 64,
		.out = g_string_new(NULL),
	};
	size_t pieces[2] = { data[3], data[4] };
	data += HEADER_BYTES;
	size -= HEADER_BYTES;

	smtp_session *s = smtp_session_new(&h.env);
	smtp_session_greeting(s, h.out);
	check_replies(h.out, &h.checked);
	size_t pos = 0;
	for (unsigned turn = 0; pos < size; turn++) {
		size_t n = pieces[turn % 2];
		if (n == 0 || n > size - pos)
			n = size - pos;
		if (!feed(&h, s, data + pos, n))
			break;
		pos += n;
	}
	smtp_session_free(s);
	g_string_free(h.out, TRUE);
	return 0;
}
