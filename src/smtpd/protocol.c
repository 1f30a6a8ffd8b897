/* smtpd/protocol: one SMTP/LMTP command line -> verb and argument.
 *
 * The session hands over one line as it came off the wire (its length
 * already bounded), so parsing is a pure function over one buffer, fuzzed
 * as it is.  The grammar is RFC 5321 4.1 with its extensions' parameters
 * (SIZE, BODY, SMTPUTF8, DSN's RET/ENVID/NOTIFY/ORCPT, AUTH=); where the
 * RFC and common clients differ the parser takes the harmless deviations
 * (lower-case verbs, a space after "FROM:", trailing blanks) and refuses
 * the ones that change meaning (a path outside angle brackets, a bare LF
 * or CR, a NUL).  Each refusal names the reply: a session never has to
 * map parser states to codes.  A path is scanned once, left to right;
 * every loop advances, so the cost is linear in the line. */
#include "smtpd/protocol.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <string.h>

typedef struct parser {
	const uint8_t *p, *end;      /* the line without its CRLF */
	const mv_smtp_parse_options *opt;
	mv_smtp_command *cmd;
	mv_smtp_error *err;
} parser;

static const struct {
	const char *name;
	mv_smtp_verb verb;
} verbs[] = {
	{"EHLO", MV_SMTP_EHLO}, {"HELO", MV_SMTP_HELO}, {"LHLO", MV_SMTP_LHLO}, {"MAIL", MV_SMTP_MAIL},
	{"RCPT", MV_SMTP_RCPT}, {"DATA", MV_SMTP_DATA}, {"BDAT", MV_SMTP_BDAT}, {"RSET", MV_SMTP_RSET},
	{"NOOP", MV_SMTP_NOOP}, {"QUIT", MV_SMTP_QUIT}, {"VRFY", MV_SMTP_VRFY}, {"HELP", MV_SMTP_HELP},
	{"STARTTLS", MV_SMTP_STARTTLS}, {"AUTH", MV_SMTP_AUTH},
};

const char *mv_smtp_verb_name(mv_smtp_verb verb)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

void mv_smtp_error_clear(mv_smtp_error *err)
{
	if (!err)
		return;
	g_free(err->text);
	memset(err, 0, sizeof(*err));
}

static void param_free(gpointer p)
{
	mv_smtp_param *param = p;
	g_free(param->keyword);
	g_free(param->value);
	g_free(param);
}

static void mailbox_clear(mv_smtp_mailbox *m)
{
	g_free(m->local_part);
	g_free(m->domain);
	g_free(m->address);
	memset(m, 0, sizeof(*m));
}

void mv_smtp_command_clear(mv_smtp_command *cmd)
{
	if (!cmd)
		return;
	g_free(cmd->domain);
	mailbox_clear(&cmd->mailbox);
	if (cmd->params)
		g_ptr_array_free(cmd->params, TRUE);
	g_free(cmd->mechanism);
	g_free(cmd->initial_response);
	g_free(cmd->text);
	memset(cmd, 0, sizeof(*cmd));
}

/* ---- refusals ----------------------------------------------------------------------------------- */

/* The client's bytes as a refusal may quote them: printable ASCII, the
 * rest as '?', cut at 64 octets, so an echo can neither break the reply
 * nor grow it without bound. */
static char *shown(const uint8_t *at, size_t len)
{
	const size_t cut = 64;
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < len && i < cut; i++)
		g_string_append_c(s, at[i] >= 0x20 && at[i] < 0x7f ? (char)at[i] : '?');
	if (len > cut)
		g_string_append(s, "...");
	return g_string_free(s, FALSE);
}

/* Sets the refusal (the first one wins) and returns false, so a parse
 * step can `return refuse(...)`.  at/len, when given, are quoted. */
static bool refuse(parser *ps, mv_smtp_fault fault, unsigned code, const char *enhanced, const char *why,
                   const uint8_t *at, size_t len)
{
	if (ps->err->fault != MV_SMTP_FAULT_NONE)
		return false;
	ps->err->fault = fault;
	ps->err->code = code;
	ps->err->enhanced = enhanced;
	if (at) {
		char *quoted = shown(at, len);
		ps->err->text = g_strdup_printf("%s: \"%s\"", why, quoted);
		g_free(quoted);
	} else {
		ps->err->text = g_strdup(why);
	}
	return false;
}

static bool refuse_argument(parser *ps, const char *why)
{
	return refuse(ps, MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", why, ps->p, (size_t)(ps->end - ps->p));
}

/* A malformed mailbox: 553 with the sender's or the recipient's code. */
static bool refuse_address(parser *ps, const char *why, const uint8_t *at, size_t len)
{
	bool sender = ps->cmd->verb == MV_SMTP_MAIL;
	return refuse(ps, MV_SMTP_FAULT_ADDRESS, 553, sender ? "5.1.7" : "5.1.3", why, at, len);
}

/* ---- character classes -------------------------------------------------------------------------- */

static bool is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* atext of RFC 5322 3.2.3, plus UTF8-non-ascii (RFC 6531 3.3) checked
 * as UTF-8 once the mailbox is read. */
static bool is_atext(uint8_t c)
{
	return is_alpha(c) || is_digit(c) || c >= 0x80 || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* qtextSMTP of RFC 5321 4.1.2, with UTF8-non-ascii. */
static bool is_qtext(uint8_t c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126) || c >= 0x80;
}

/* A letter, digit or '-' of a domain label; '_' too, which Windows host
 * names carry in EHLO and which no rule here depends on. */
static bool is_ldh(uint8_t c, bool utf8)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || (utf8 && c >= 0x80);
}

/* ---- domains and address literals --------------------------------------------------------------- */

/* An IPv4 literal: four snum of 1-3 digits, each at most 255. */
static bool ipv4_literal(const uint8_t *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		unsigned value = 0, digits = 0;
		while (i < len && is_digit(s[i]) && digits < 3) {
			value = value * 10 + (unsigned)(s[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || value > 255)
			return false;
	}
	return i == len;
}

static bool ipv6_literal(const uint8_t *s, size_t len)
{
	if (len == 0 || len > INET6_ADDRSTRLEN)
		return false;
	char *text = g_strndup((const char *)s, len);
	struct in6_addr addr;
	bool ok = inet_pton(AF_INET6, text, &addr) == 1;
	g_free(text);
	return ok;
}

/* General-address-literal: Standardized-tag ":" 1*dcontent. */
static bool general_literal(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len && is_ldh(s[i], false) && s[i] != '_')
		i++;
	if (i == 0 || s[i - 1] == '-' || i >= len || s[i] != ':' || i + 1 == len)
		return false;
	for (i++; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == '\\' || s[i] == ']')
			return false;
	return true;
}

/* "[" ... "]" at ps->p: its span, brackets included, in *len_r. */
static bool address_literal(parser *ps, size_t *len_r)
{
	const uint8_t *start = ps->p;
	const uint8_t *close = memchr(start, ']', (size_t)(ps->end - start));
	if (!close)
		return refuse_address(ps, "address literal without its ']'", start, (size_t)(ps->end - start));
	const uint8_t *in = start + 1;
	size_t in_len = (size_t)(close - in);
	bool ok;
	if (in_len >= 5 && g_ascii_strncasecmp((const char *)in, "IPv6:", 5) == 0)
		ok = ipv6_literal(in + 5, in_len - 5);
	else if (in_len > 0 && is_digit(in[0]))
		ok = ipv4_literal(in, in_len);
	else
		ok = general_literal(in, in_len);
	if (!ok)
		return refuse_address(ps, "not an address literal", start, (size_t)(close - start) + 1);
	ps->p = close + 1;
	*len_r = (size_t)(ps->p - start);
	return true;
}

/* A domain name at ps->p: labels of letters, digits and inner hyphens,
 * separated by single dots; UTF-8 labels (U-labels) only when utf8. */
static bool domain_name(parser *ps, bool utf8, size_t *len_r)
{
	const uint8_t *start = ps->p;
	for (;;) {
		const uint8_t *label = ps->p;
		while (ps->p < ps->end && is_ldh(*ps->p, true))
			ps->p++;
		size_t n = (size_t)(ps->p - label);
		if (n == 0 || label[0] == '-' || label[n - 1] == '-')
			return refuse_address(ps, "not a domain name", start, (size_t)(ps->end - start));
		for (size_t i = 0; i < n; i++)
			if (label[i] >= 0x80 && !utf8)
				return refuse(ps, MV_SMTP_FAULT_NON_ASCII, 501, "5.5.4", "a non-ASCII domain here",
				              start, (size_t)(ps->end - start));
		if (ps->p >= ps->end || *ps->p != '.')
			break;
		ps->p++;
	}
	*len_r = (size_t)(ps->p - start);
	if (*len_r > MV_SMTP_DOMAIN_MAX)
		return refuse_address(ps, "domain longer than 255 octets", start, *len_r);
	return true;
}

/* Domain / address-literal, ending wherever the next character is not
 * one of them (the caller checks what follows). */
static bool domain_or_literal(parser *ps, bool utf8, size_t *len_r, bool *literal_r)
{
	*literal_r = ps->p < ps->end && *ps->p == '[';
	if (*literal_r)
		return address_literal(ps, len_r);
	return domain_name(ps, utf8, len_r);
}

/* ---- paths -------------------------------------------------------------------------------------- */

/* A-d-l of RFC 5321 4.1.2 ("@a,@b:"): read and dropped (Appendix C). */
static bool source_route(parser *ps)
{
	while (ps->p < ps->end && *ps->p == '@') {
		ps->p++;
		size_t len;
		bool literal;
		if (!domain_or_literal(ps, true, &len, &literal))
			return false;
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			if (ps->p >= ps->end || *ps->p != '@')
				return refuse_address(ps, "source route: '@' expected after ','", ps->p,
				                      (size_t)(ps->end - ps->p));
			continue;
		}
		if (ps->p < ps->end && *ps->p == ':') {
			ps->p++;
			return true;
		}
		return refuse_address(ps, "source route without its ':'", ps->p, (size_t)(ps->end - ps->p));
	}
	return true;
}

/* Local-part: Dot-string or Quoted-string; the unquoted form into
 * *local_r. */
static bool local_part(parser *ps, char **local_r, bool *quoted_r)
{
	const uint8_t *start = ps->p;
	GString *local = g_string_new(NULL);
	*quoted_r = ps->p < ps->end && *ps->p == '"';
	if (*quoted_r) {
		ps->p++;
		for (;;) {
			if (ps->p >= ps->end) {
				g_string_free(local, TRUE);
				return refuse_address(ps, "quoted local part without its closing quote", start,
				                      (size_t)(ps->end - start));
			}
			uint8_t c = *ps->p;
			if (c == '"')
				break;
			if (c == '\\') {
				if (ps->p + 1 >= ps->end || ps->p[1] < 32 || ps->p[1] > 126) {
					g_string_free(local, TRUE);
					return refuse_address(ps, "bad quoted pair in a local part", start,
					                      (size_t)(ps->end - start));
				}
				c = *++ps->p;
			} else if (!is_qtext(c)) {
				g_string_free(local, TRUE);
				return refuse_address(ps, "character not allowed in a quoted local part", start,
				                      (size_t)(ps->end - start));
			}
			g_string_append_c(local, (char)c);
			ps->p++;
		}
		ps->p++;
	} else {
		for (;;) {
			const uint8_t *atom = ps->p;
			while (ps->p < ps->end && is_atext(*ps->p))
				ps->p++;
			if (ps->p == atom) {
				g_string_free(local, TRUE);
				return refuse_address(ps, "malformed local part", start, (size_t)(ps->end - start));
			}
			if (ps->p >= ps->end || *ps->p != '.')
				break;
			ps->p++;
		}
		g_string_append_len(local, (const char *)start, ps->p - start);
	}
	if ((size_t)(ps->p - start) > MV_SMTP_LOCAL_PART_MAX) {
		g_string_free(local, TRUE);
		return refuse_address(ps, "local part longer than 64 octets", start, (size_t)(ps->p - start));
	}
	*local_r = g_string_free(local, FALSE);
	return true;
}

static bool has_non_ascii(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 0x80)
			return true;
	return false;
}

/* "<" [A-d-l ":"] Mailbox ">" at ps->p, or "<>" (null_ok: MAIL), or
 * "<Postmaster>" (RCPT). */
static bool path(parser *ps, bool null_ok)
{
	mv_smtp_command *cmd = ps->cmd;
	if (ps->p >= ps->end || *ps->p != '<')
		return refuse_argument(ps, "the path is not in angle brackets");
	ps->p++;
	if (ps->p < ps->end && *ps->p == '>') {
		if (!null_ok)
			return refuse_address(ps, "RCPT TO:<> names no recipient", ps->p - 1, 2);
		ps->p++;
		cmd->null_path = true;
		return true;
	}
	if (!source_route(ps))
		return false;
	const uint8_t *mailbox = ps->p;
	mv_smtp_mailbox *m = &cmd->mailbox;
	if (!local_part(ps, &m->local_part, &m->local_quoted))
		return false;
	if (ps->p < ps->end && *ps->p == '>' && cmd->verb == MV_SMTP_RCPT && !m->local_quoted &&
	    g_ascii_strcasecmp(m->local_part, "postmaster") == 0) {
		m->address = g_strdup(m->local_part);
		ps->p++;
		return true;
	}
	if (ps->p >= ps->end || *ps->p != '@')
		return refuse_address(ps, "mailbox without '@' and a domain", mailbox, (size_t)(ps->end - mailbox));
	ps->p++;
	const uint8_t *domain = ps->p;
	size_t domain_len;
	if (!domain_or_literal(ps, true, &domain_len, &m->domain_literal))
		return false;
	if (ps->p >= ps->end || *ps->p != '>')
		return refuse_address(ps, "mailbox not closed by '>'", mailbox, (size_t)(ps->end - mailbox));
	size_t mailbox_len = (size_t)(ps->p - mailbox);
	m->domain = g_strndup((const char *)domain, domain_len);
	m->address = g_strndup((const char *)mailbox, mailbox_len);
	m->utf8 = has_non_ascii(mailbox, mailbox_len);
	if (m->utf8 && !g_utf8_validate((const char *)mailbox, (gssize)mailbox_len, NULL))
		return refuse_address(ps, "mailbox is not UTF-8", mailbox, mailbox_len);
	ps->p++;
	return true;
}

/* ---- ESMTP parameters --------------------------------------------------------------------------- */

static bool refuse_param(parser *ps, const mv_smtp_param *param, const char *why)
{
	size_t len = strlen(param->keyword) + (param->value ? strlen(param->value) + 1 : 0);
	char *whole = param->value ? g_strconcat(param->keyword, "=", param->value, NULL) : g_strdup(param->keyword);
	refuse(ps, MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", why, (const uint8_t *)whole, len);
	g_free(whole);
	return false;
}

static bool one_of(const char *value, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (g_ascii_strcasecmp(value, *allowed) == 0)
			return true;
	return false;
}

/* xtext of RFC 3461 4: printable ASCII but '+' and '=', and "+XX". */
static bool is_xtext(const char *s)
{
	for (; *s; s++) {
		if (*s == '+') {
			if (!g_ascii_isxdigit(s[1]) || !g_ascii_isxdigit(s[2]))
				return false;
			s += 2;
		} else if (*s < 33 || *s > 126 || *s == '=') {
			return false;
		}
	}
	return true;
}

static bool size_param(parser *ps, const mv_smtp_param *param)
{
	const char *v = param->value;
	if (!v || !*v)
		return refuse_param(ps, param, "SIZE needs a number");
	uint64_t n = 0;
	for (; *v; v++) {
		if (!is_digit((uint8_t)*v))
			return refuse_param(ps, param, "SIZE is not a number");
		unsigned digit = (unsigned)(*v - '0');
		if (n > (UINT64_MAX - digit) / 10)
			return refuse(ps, MV_SMTP_FAULT_TOO_BIG, 552, "5.3.4", "message size exceeds any limit",
			              (const uint8_t *)param->value, strlen(param->value));
		n = n * 10 + digit;
	}
	ps->cmd->has_size = true;
	ps->cmd->size = n;
	return true;
}

static bool body_param(parser *ps, const mv_smtp_param *param)
{
	static const struct {
		const char *name;
		mv_smtp_body body;
	} bodies[] = {{"7BIT", MV_SMTP_BODY_7BIT}, {"8BITMIME", MV_SMTP_BODY_8BITMIME}, {"BINARYMIME", MV_SMTP_BODY_BINARYMIME}};
	for (size_t i = 0; param->value && i < G_N_ELEMENTS(bodies); i++) {
		if (g_ascii_strcasecmp(param->value, bodies[i].name) == 0) {
			ps->cmd->body = bodies[i].body;
			return true;
		}
	}
	return refuse_param(ps, param, "BODY is 7BIT, 8BITMIME or BINARYMIME");
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY, each at most once. */
static bool notify_param(parser *ps, const mv_smtp_param *param)
{
	if (!param->value || !*param->value)
		return refuse_param(ps, param, "NOTIFY needs a value");
	if (g_ascii_strcasecmp(param->value, "NEVER") == 0)
		return true;
	static const char *const kinds[] = {"SUCCESS", "FAILURE", "DELAY"};
	bool seen[G_N_ELEMENTS(kinds)] = {false};
	char **items = g_strsplit(param->value, ",", -1);
	bool ok = true;
	for (char **item = items; *item && ok; item++) {
		ok = false;
		for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
			if (g_ascii_strcasecmp(*item, kinds[k]) == 0 && !seen[k]) {
				seen[k] = true;
				ok = true;
			}
		}
	}
	g_strfreev(items);
	if (!ok)
		return refuse_param(ps, param, "NOTIFY is NEVER or SUCCESS, FAILURE, DELAY, each once");
	return true;
}

/* ORCPT=addr-type ";" xtext. */
static bool orcpt_param(parser *ps, const mv_smtp_param *param)
{
	const char *semi = param->value ? strchr(param->value, ';') : NULL;
	if (!semi || semi == param->value || !semi[1] || !is_xtext(semi + 1))
		return refuse_param(ps, param, "ORCPT is addr-type;xtext");
	for (const char *c = param->value; c < semi; c++)
		if (!is_atext((uint8_t)*c) || (uint8_t)*c >= 0x80)
			return refuse_param(ps, param, "ORCPT is addr-type;xtext");
	return true;
}

/* A known parameter of this verb checked and decoded. */
static bool check_param(parser *ps, const mv_smtp_param *param)
{
	const char *k = param->keyword;
	bool mail = ps->cmd->verb == MV_SMTP_MAIL;
	if (mail && strcmp(k, "SIZE") == 0)
		return size_param(ps, param);
	if (mail && strcmp(k, "BODY") == 0)
		return body_param(ps, param);
	if (mail && strcmp(k, "SMTPUTF8") == 0) {
		if (param->value)
			return refuse_param(ps, param, "SMTPUTF8 takes no value");
		ps->cmd->smtputf8 = true;
		return true;
	}
	if (mail && strcmp(k, "RET") == 0) {
		if (!param->value || !one_of(param->value, (const char *const[]){"FULL", "HDRS", NULL}))
			return refuse_param(ps, param, "RET is FULL or HDRS");
		return true;
	}
	if (mail && strcmp(k, "ENVID") == 0) {
		if (!param->value || !*param->value || strlen(param->value) > 100 || !is_xtext(param->value))
			return refuse_param(ps, param, "ENVID is xtext of at most 100 characters");
		return true;
	}
	if (mail && strcmp(k, "AUTH") == 0) {
		if (!param->value || !*param->value || !is_xtext(param->value))
			return refuse_param(ps, param, "AUTH= is xtext");
		return true;
	}
	if (!mail && strcmp(k, "NOTIFY") == 0)
		return notify_param(ps, param);
	if (!mail && strcmp(k, "ORCPT") == 0)
		return orcpt_param(ps, param);
	char *name = g_strdup_printf("%s parameter not recognised", mail ? "MAIL" : "RCPT");
	refuse(ps, MV_SMTP_FAULT_PARAMETER, 555, "5.5.4", name, (const uint8_t *)k, strlen(k));
	g_free(name);
	return false;
}

/* esmtp-keyword ["=" esmtp-value], read at ps->p. */
static bool read_param(parser *ps, mv_smtp_param **param_r)
{
	const uint8_t *start = ps->p;
	while (ps->p < ps->end && (is_alpha(*ps->p) || is_digit(*ps->p) || (ps->p > start && *ps->p == '-')))
		ps->p++;
	const uint8_t *key_end = ps->p;
	if (key_end == start || (ps->p < ps->end && *ps->p != '=' && *ps->p != ' '))
		return refuse(ps, MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "malformed parameter", start,
		              (size_t)(ps->end - start));
	mv_smtp_param *param = g_new0(mv_smtp_param, 1);
	param->keyword = g_ascii_strup((const char *)start, key_end - start);
	if (ps->p < ps->end && *ps->p == '=') {
		const uint8_t *value = ++ps->p;
		while (ps->p < ps->end && *ps->p != ' ') {
			if (*ps->p < 33 || *ps->p > 126 || *ps->p == '=') {
				param_free(param);
				return refuse(ps, MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "malformed parameter value",
				              start, (size_t)(ps->end - start));
			}
			ps->p++;
		}
		param->value = g_strndup((const char *)value, ps->p - value);
	}
	*param_r = param;
	return true;
}

/* *( SP esmtp-param ) to the line's end: duplicates refused. */
static bool params(parser *ps)
{
	ps->cmd->params = g_ptr_array_new_with_free_func(param_free);
	while (ps->p < ps->end) {
		if (*ps->p != ' ')
			return refuse_argument(ps, "a space expected before a parameter");
		while (ps->p < ps->end && *ps->p == ' ')
			ps->p++;
		mv_smtp_param *param = NULL;
		if (!read_param(ps, &param))
			return false;
		g_ptr_array_add(ps->cmd->params, param);
		for (guint i = 0; i + 1 < ps->cmd->params->len; i++) {
			const mv_smtp_param *other = g_ptr_array_index(ps->cmd->params, i);
			if (strcmp(other->keyword, param->keyword) == 0)
				return refuse_param(ps, param, "parameter given twice");
		}
		if (!check_param(ps, param))
			return false;
	}
	return true;
}

/* ---- verbs -------------------------------------------------------------------------------------- */

static bool no_argument(parser *ps)
{
	if (ps->p < ps->end)
		return refuse_argument(ps, "this command takes no argument");
	return true;
}

static bool hello(parser *ps)
{
	if (ps->p >= ps->end)
		return refuse_argument(ps, "a domain or address literal is required");
	const uint8_t *start = ps->p;
	size_t len;
	bool literal;
	if (!domain_or_literal(ps, false, &len, &literal)) {
		/* Any hello argument that is not a domain is an argument error. */
		ps->err->code = 501;
		ps->err->enhanced = "5.5.4";
		if (ps->err->fault == MV_SMTP_FAULT_ADDRESS)
			ps->err->fault = MV_SMTP_FAULT_ARGUMENT;
		return false;
	}
	if (ps->p < ps->end)
		return refuse_argument(ps, "only a domain or address literal may follow");
	ps->cmd->domain = g_strndup((const char *)start, len);
	return true;
}

/* "FROM:" / "TO:", then the path (a space before it tolerated), then
 * the parameters; UTF-8 in the mailbox checked against SMTPUTF8 last,
 * since MAIL's own parameter allows it. */
static bool mail_or_rcpt(parser *ps, const char *keyword)
{
	size_t k = strlen(keyword);
	if ((size_t)(ps->end - ps->p) < k || g_ascii_strncasecmp((const char *)ps->p, keyword, k) != 0) {
		char *why = g_strdup_printf("%s expected", keyword);
		refuse_argument(ps, why);
		g_free(why);
		return false;
	}
	ps->p += k;
	while (ps->p < ps->end && *ps->p == ' ')
		ps->p++;
	bool mail = ps->cmd->verb == MV_SMTP_MAIL;
	if (!path(ps, mail) || !params(ps))
		return false;
	if (!ps->cmd->mailbox.utf8)
		return true;
	bool allowed = mail ? ps->opt->smtputf8_offered && ps->cmd->smtputf8 : ps->opt->smtputf8_transaction;
	if (!allowed)
		return refuse(ps, MV_SMTP_FAULT_NON_ASCII, 553, "5.6.7", "non-ASCII address without SMTPUTF8",
		              (const uint8_t *)ps->cmd->mailbox.address, strlen(ps->cmd->mailbox.address));
	return true;
}

/* "BDAT" SP chunk-size [SP "LAST"]. */
static bool bdat(parser *ps)
{
	const uint8_t *start = ps->p;
	uint64_t n = 0;
	while (ps->p < ps->end && is_digit(*ps->p)) {
		unsigned digit = (unsigned)(*ps->p - '0');
		if (n > (UINT64_MAX - digit) / 10)
			return refuse(ps, MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "BDAT chunk size too large", start,
			              (size_t)(ps->end - start));
		n = n * 10 + digit;
		ps->p++;
	}
	if (ps->p == start)
		return refuse_argument(ps, "BDAT needs a chunk size");
	ps->cmd->chunk_size = n;
	if (ps->p == ps->end)
		return true;
	if (*ps->p == ' ' && ps->end - ps->p == 5 && g_ascii_strncasecmp((const char *)ps->p + 1, "LAST", 4) == 0) {
		ps->cmd->last = true;
		ps->p = ps->end;
		return true;
	}
	return refuse_argument(ps, "only LAST may follow the chunk size");
}

/* "AUTH" SP mechanism [SP initial-response] (RFC 4954 4). */
static bool auth(parser *ps)
{
	const uint8_t *start = ps->p;
	while (ps->p < ps->end && (is_alpha(*ps->p) || is_digit(*ps->p) || *ps->p == '-' || *ps->p == '_'))
		ps->p++;
	size_t n = (size_t)(ps->p - start);
	if (n == 0 || n > 20 || (ps->p < ps->end && *ps->p != ' ')) {
		ps->p = start;
		return refuse_argument(ps, "AUTH needs a SASL mechanism name");
	}
	ps->cmd->mechanism = g_ascii_strup((const char *)start, (gssize)n);
	if (ps->p == ps->end)
		return true;
	ps->p++;
	const uint8_t *response = ps->p;
	size_t len = (size_t)(ps->end - response);
	bool ok = len == 1 && response[0] == '=';
	if (!ok && len > 0) {
		ok = true;
		size_t pad = 0;
		for (size_t i = 0; i < len && ok; i++) {
			uint8_t c = response[i];
			if (c == '=')
				pad++;
			else if (pad > 0 || !(is_alpha(c) || is_digit(c) || c == '+' || c == '/'))
				ok = false;
		}
		ok = ok && pad <= 2 && len % 4 == 0;
	}
	if (!ok)
		return refuse_argument(ps, "initial response is not base64 or '='");
	ps->cmd->initial_response = g_strndup((const char *)response, len);
	ps->p = ps->end;
	return true;
}

static bool verb_argument(parser *ps)
{
	mv_smtp_command *cmd = ps->cmd;
	switch (cmd->verb) {
	case MV_SMTP_EHLO:
	case MV_SMTP_HELO:
	case MV_SMTP_LHLO:
		return hello(ps);
	case MV_SMTP_MAIL:
		return mail_or_rcpt(ps, "FROM:");
	case MV_SMTP_RCPT:
		return mail_or_rcpt(ps, "TO:");
	case MV_SMTP_BDAT:
		return bdat(ps);
	case MV_SMTP_AUTH:
		return auth(ps);
	case MV_SMTP_VRFY:
		if (ps->p >= ps->end)
			return refuse_argument(ps, "VRFY needs a string");
		/* fall through */
	case MV_SMTP_NOOP:
	case MV_SMTP_HELP:
		if (ps->p < ps->end)
			cmd->text = g_strndup((const char *)ps->p, ps->end - ps->p);
		ps->p = ps->end;
		return true;
	case MV_SMTP_DATA:
	case MV_SMTP_RSET:
	case MV_SMTP_QUIT:
	case MV_SMTP_STARTTLS:
	case MV_SMTP_UNKNOWN:
		break;
	}
	return no_argument(ps);
}

/* ---- the line ----------------------------------------------------------------------------------- */

/* The line's own shape: bounded, CRLF at its end and nowhere else, no
 * NUL.  On success ps->end is the CR. */
static bool line_shape(parser *ps, const uint8_t *line, size_t len)
{
	if (len > ps->opt->max_line)
		return refuse(ps, MV_SMTP_FAULT_LINE, 500, "5.5.2", "line too long", NULL, 0);
	if (len == 0 || line[len - 1] != '\n')
		return refuse(ps, MV_SMTP_FAULT_LINE, 500, "5.5.2", "command line without its line end", line, len);
	if (memchr(line, '\0', len))
		return refuse(ps, MV_SMTP_FAULT_LINE, 500, "5.5.2", "NUL octet in a command line", NULL, 0);
	if (memchr(line, '\n', len - 1))
		return refuse(ps, MV_SMTP_FAULT_LINE, 500, "5.5.2", "more than one line", line, len);
	if (len < 2 || line[len - 2] != '\r')
		return refuse(ps, MV_SMTP_FAULT_BARE_LF, 500, "5.5.2", "line ends in a bare LF, CRLF is required",
		              NULL, 0);
	if (memchr(line, '\r', len - 2))
		return refuse(ps, MV_SMTP_FAULT_LINE, 500, "5.5.2", "bare CR in a command line", line, len - 2);
	ps->p = line;
	ps->end = line + len - 2;
	return true;
}

bool mv_smtp_command_parse(const uint8_t *line, size_t len, const mv_smtp_parse_options *opt,
                           mv_smtp_command *cmd, mv_smtp_error *err)
{
	memset(cmd, 0, sizeof(*cmd));
	memset(err, 0, sizeof(*err));
	parser ps = {.opt = opt, .cmd = cmd, .err = err};
	if (!line_shape(&ps, line, len))
		return false;
	/* Trailing blanks are a common slip that changes no meaning. */
	while (ps.end > ps.p && (ps.end[-1] == ' ' || ps.end[-1] == '\t'))
		ps.end--;
	const uint8_t *name = ps.p;
	while (ps.p < ps.end && *ps.p != ' ')
		ps.p++;
	size_t name_len = (size_t)(ps.p - name);
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
		if (strlen(verbs[i].name) == name_len && g_ascii_strncasecmp((const char *)name, verbs[i].name, name_len) == 0)
			cmd->verb = verbs[i].verb;
	}
	if (cmd->verb == MV_SMTP_UNKNOWN)
		return refuse(&ps, MV_SMTP_FAULT_UNKNOWN_VERB, 500, "5.5.1", "command not recognised", name, name_len);
	if (ps.p < ps.end)
		ps.p++;
	if (!verb_argument(&ps))
		return false;
	return true;
}
