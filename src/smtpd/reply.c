/* smtpd/reply: SMTP replies on the wire (RFC 5321 4.2, RFC 2034).
 *
 * Every line a server sends goes through here, so the one rule that
 * keeps a reply a reply — no CR, LF or other control octet inside a
 * line — is applied in one place, whatever text (a client's domain in
 * the EHLO greeting, a refusal quoting input) went into it. */
#include "smtpd/protocol.h"

static void append_text(GString *out, const char *text)
{
	for (const unsigned char *c = (const unsigned char *)(text ? text : ""); *c; c++)
		g_string_append_c(out, *c < 0x20 || *c == 0x7f ? '?' : (char)*c);
}

void mv_smtp_reply_lines(GString *out, unsigned code, const char *enhanced, const char *const *lines, size_t n)
{
	if (n == 0) {
		g_string_append_printf(out, "%03u%s%s\r\n", code, enhanced ? " " : "", enhanced ? enhanced : "");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		g_string_append_printf(out, "%03u%c", code, i + 1 < n ? '-' : ' ');
		if (enhanced)
			g_string_append_printf(out, "%s ", enhanced);
		append_text(out, lines[i]);
		g_string_append(out, "\r\n");
	}
}

void mv_smtp_reply(GString *out, unsigned code, const char *enhanced, const char *text)
{
	mv_smtp_reply_lines(out, code, enhanced, &text, 1);
}

void mv_smtp_reply_error(GString *out, const mv_smtp_error *err)
{
	mv_smtp_reply(out, err->code, err->enhanced, err->text);
}

void mv_smtp_ehlo_reply(GString *out, const char *server_name, const char *client_domain,
                        const mv_smtp_capabilities *caps)
{
	GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(lines, g_strdup_printf("%s greets %s", server_name, client_domain));
	g_ptr_array_add(lines, g_strdup("PIPELINING"));
	g_ptr_array_add(lines, caps->size_max ? g_strdup_printf("SIZE %" G_GUINT64_FORMAT, caps->size_max)
	                                      : g_strdup("SIZE"));
	g_ptr_array_add(lines, g_strdup("8BITMIME"));
	g_ptr_array_add(lines, g_strdup("ENHANCEDSTATUSCODES"));
	if (caps->chunking) {
		g_ptr_array_add(lines, g_strdup("CHUNKING"));
		g_ptr_array_add(lines, g_strdup("BINARYMIME"));
	}
	if (caps->smtputf8)
		g_ptr_array_add(lines, g_strdup("SMTPUTF8"));
	if (caps->dsn)
		g_ptr_array_add(lines, g_strdup("DSN"));
	if (caps->starttls)
		g_ptr_array_add(lines, g_strdup("STARTTLS"));
	if (caps->auth)
		g_ptr_array_add(lines, g_strdup_printf("AUTH %s", caps->auth));
	mv_smtp_reply_lines(out, 250, NULL, (const char *const *)lines->pdata, lines->len);
	g_ptr_array_free(lines, TRUE);
}
