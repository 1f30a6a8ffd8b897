/* Unit tests for the SMTP/LMTP protocol layer (smtpd/): every verb of a
 * command line with its argument, paths ("<>", quoted local parts,
 * address literals, source routes, Postmaster) and the malformed ones
 * with the reply each gets, SMTPUTF8 on and off, ESMTP parameters, BDAT
 * and AUTH forms, the line's own shape (bare LF, NUL, length); the DATA
 * decoder fed whole and byte by byte, split at every point, unstuffing,
 * bare LF/CR, the smuggling variants of the end, the size limit; BDAT
 * chunks; replies and the EHLO list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtpd/protocol.h"

static mv_smtp_parse_options options(void)
{
	return (mv_smtp_parse_options){.max_line = MV_SMTP_COMMAND_LINE_MAX};
}

static void parse_ok_with(const char *line, const mv_smtp_parse_options *opt, mv_smtp_command *cmd)
{
	mv_smtp_error err;
	if (!mv_smtp_command_parse((const uint8_t *)line, strlen(line), opt, cmd, &err))
		fail_msg("%s refused: %u %s %s", line, err.code, err.enhanced, err.text);
	assert_int_equal(err.fault, MV_SMTP_FAULT_NONE);
}

static void parse_ok(const char *line, mv_smtp_command *cmd)
{
	mv_smtp_parse_options opt = options();
	parse_ok_with(line, &opt, cmd);
}

/* The line must be refused with this fault and reply, the text naming
 * `names` when given. */
static void refused_with(const char *line, size_t len, const mv_smtp_parse_options *opt, mv_smtp_fault fault,
                         unsigned code, const char *enhanced, const char *names)
{
	mv_smtp_command cmd;
	mv_smtp_error err;
	if (mv_smtp_command_parse((const uint8_t *)line, len, opt, &cmd, &err))
		fail_msg("accepted: %.*s", (int)len, line);
	if (err.fault != fault || err.code != code || strcmp(err.enhanced, enhanced) != 0)
		fail_msg("%.*s: got fault %d %u %s (%s), wanted fault %d %u %s", (int)len, line, err.fault, err.code,
		         err.enhanced, err.text, fault, code, enhanced);
	if (names && !strstr(err.text, names))
		fail_msg("%.*s: \"%s\" does not name \"%s\"", (int)len, line, err.text, names);
	for (const char *c = err.text; *c; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
	mv_smtp_error_clear(&err);
	mv_smtp_command_clear(&cmd);
}

static void refused(const char *line, mv_smtp_fault fault, unsigned code, const char *enhanced, const char *names)
{
	mv_smtp_parse_options opt = options();
	refused_with(line, strlen(line), &opt, fault, code, enhanced, names);
}

/* ---- verbs -------------------------------------------------------------------------------------- */

static void test_every_verb(void **state)
{
	static const struct {
		const char *line;
		mv_smtp_verb verb;
	} cases[] = {
		{"EHLO mx.example.org\r\n", MV_SMTP_EHLO},  {"HELO mx.example.org\r\n", MV_SMTP_HELO},
		{"LHLO mx.example.org\r\n", MV_SMTP_LHLO},  {"MAIL FROM:<a@example.org>\r\n", MV_SMTP_MAIL},
		{"RCPT TO:<b@example.org>\r\n", MV_SMTP_RCPT}, {"DATA\r\n", MV_SMTP_DATA},
		{"BDAT 10\r\n", MV_SMTP_BDAT},              {"RSET\r\n", MV_SMTP_RSET},
		{"NOOP\r\n", MV_SMTP_NOOP},                 {"QUIT\r\n", MV_SMTP_QUIT},
		{"VRFY bob\r\n", MV_SMTP_VRFY},             {"HELP\r\n", MV_SMTP_HELP},
		{"STARTTLS\r\n", MV_SMTP_STARTTLS},         {"AUTH PLAIN\r\n", MV_SMTP_AUTH},
		{"ehlo mx.example.org\r\n", MV_SMTP_EHLO},  {"mail from:<a@example.org>\r\n", MV_SMTP_MAIL},
		{"QUIT  \r\n", MV_SMTP_QUIT},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_smtp_command cmd;
		parse_ok(cases[i].line, &cmd);
		assert_int_equal(cmd.verb, cases[i].verb);
		mv_smtp_command_clear(&cmd);
	}
	assert_string_equal(mv_smtp_verb_name(MV_SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(mv_smtp_verb_name(MV_SMTP_UNKNOWN), "UNKNOWN");
	refused("XYZZY now\r\n", MV_SMTP_FAULT_UNKNOWN_VERB, 500, "5.5.1", "XYZZY");
	refused("MAILFROM:<a@b>\r\n", MV_SMTP_FAULT_UNKNOWN_VERB, 500, "5.5.1", NULL);
	refused("\r\n", MV_SMTP_FAULT_UNKNOWN_VERB, 500, "5.5.1", NULL);
}

static void test_verbs_without_argument(void **state)
{
	refused("DATA now\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "now");
	refused("RSET x\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("QUIT x\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("STARTTLS x\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	/* A refused line still names its verb, for the caller's counting. */
	mv_smtp_parse_options opt = options();
	mv_smtp_command cmd;
	mv_smtp_error err;
	assert_false(mv_smtp_command_parse((const uint8_t *)"RCPT TO:bob\r\n", 13, &opt, &cmd, &err));
	assert_int_equal(cmd.verb, MV_SMTP_RCPT);
	mv_smtp_error_clear(&err);
	mv_smtp_command_clear(&cmd);
}

static void test_text_verbs(void **state)
{
	mv_smtp_command cmd;
	parse_ok("VRFY Bob Smith\r\n", &cmd);
	assert_string_equal(cmd.text, "Bob Smith");
	mv_smtp_command_clear(&cmd);
	parse_ok("NOOP\r\n", &cmd);
	assert_null(cmd.text);
	mv_smtp_command_clear(&cmd);
	parse_ok("NOOP hello there\r\n", &cmd);
	assert_string_equal(cmd.text, "hello there");
	mv_smtp_command_clear(&cmd);
	parse_ok("HELP MAIL\r\n", &cmd);
	assert_string_equal(cmd.text, "MAIL");
	mv_smtp_command_clear(&cmd);
	refused("VRFY\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "VRFY");
}

static void test_hello(void **state)
{
	static const struct {
		const char *line, *domain;
	} ok[] = {
		{"EHLO mx.example.org\r\n", "mx.example.org"},
		{"HELO localhost\r\n", "localhost"},
		{"LHLO [192.0.2.1]\r\n", "[192.0.2.1]"},
		{"EHLO [IPv6:2001:db8::1]\r\n", "[IPv6:2001:db8::1]"},
		{"EHLO WIN_PC-01.corp\r\n", "WIN_PC-01.corp"},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		mv_smtp_command cmd;
		parse_ok(ok[i].line, &cmd);
		assert_string_equal(cmd.domain, ok[i].domain);
		mv_smtp_command_clear(&cmd);
	}
	refused("EHLO\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "domain");
	refused("EHLO mx.example.org extra\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "extra");
	refused("EHLO -mx.example.org\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "-mx");
	refused("EHLO a..b\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "a..b");
	refused("EHLO [300.1.1.1]\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "300.1.1.1");
	refused("EHLO [IPv6:2001:db8::zz]\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("EHLO [192.0.2.1\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "]");
	refused("EHLO h\xc3\xa9.example\r\n", MV_SMTP_FAULT_NON_ASCII, 501, "5.5.4", NULL);
}

/* ---- paths -------------------------------------------------------------------------------------- */

static void test_mail_paths(void **state)
{
	static const struct {
		const char *line, *local, *domain, *address;
		bool quoted, literal;
	} cases[] = {
		{"MAIL FROM:<alice@example.org>\r\n", "alice", "example.org", "alice@example.org", false, false},
		{"MAIL FROM: <alice@example.org>\r\n", "alice", "example.org", "alice@example.org", false, false},
		{"MAIL FROM:<a.b+tag@sub.example.org>\r\n", "a.b+tag", "sub.example.org", "a.b+tag@sub.example.org", false, false},
		{"MAIL FROM:<\"john doe\"@example.org>\r\n", "john doe", "example.org", "\"john doe\"@example.org", true, false},
		{"MAIL FROM:<\"a\\\"b\\\\c\"@example.org>\r\n", "a\"b\\c", "example.org", "\"a\\\"b\\\\c\"@example.org", true, false},
		{"MAIL FROM:<\"odd>@char\"@example.org>\r\n", "odd>@char", "example.org", "\"odd>@char\"@example.org", true, false},
		{"MAIL FROM:<postmaster@[192.0.2.1]>\r\n", "postmaster", "[192.0.2.1]", "postmaster@[192.0.2.1]", false, true},
		{"MAIL FROM:<x@[IPv6:2001:db8::1]>\r\n", "x", "[IPv6:2001:db8::1]", "x@[IPv6:2001:db8::1]", false, true},
		{"MAIL FROM:<x@[IPv6:::ffff:192.0.2.1]>\r\n", "x", "[IPv6:::ffff:192.0.2.1]", "x@[IPv6:::ffff:192.0.2.1]", false, true},
		{"MAIL FROM:<x@[tag:some-thing]>\r\n", "x", "[tag:some-thing]", "x@[tag:some-thing]", false, true},
		{"MAIL FROM:<@relay1.example,@[192.0.2.9]:bob@example.org>\r\n", "bob", "example.org", "bob@example.org", false, false},
		{"MAIL FROM:<@relay.example:bob@example.org>\r\n", "bob", "example.org", "bob@example.org", false, false},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_smtp_command cmd;
		parse_ok(cases[i].line, &cmd);
		assert_int_equal(cmd.verb, MV_SMTP_MAIL);
		assert_false(cmd.null_path);
		assert_string_equal(cmd.mailbox.local_part, cases[i].local);
		assert_string_equal(cmd.mailbox.domain, cases[i].domain);
		assert_string_equal(cmd.mailbox.address, cases[i].address);
		assert_int_equal(cmd.mailbox.local_quoted, cases[i].quoted);
		assert_int_equal(cmd.mailbox.domain_literal, cases[i].literal);
		assert_false(cmd.mailbox.utf8);
		assert_int_equal(cmd.params->len, 0);
		mv_smtp_command_clear(&cmd);
	}
	mv_smtp_command cmd;
	parse_ok("MAIL FROM:<>\r\n", &cmd);
	assert_true(cmd.null_path);
	assert_null(cmd.mailbox.address);
	mv_smtp_command_clear(&cmd);
	parse_ok("MAIL FROM:<> SIZE=10\r\n", &cmd);
	assert_true(cmd.null_path);
	assert_true(cmd.has_size);
	mv_smtp_command_clear(&cmd);
}

static void test_rcpt_paths(void **state)
{
	mv_smtp_command cmd;
	parse_ok("RCPT TO:<bob@example.org>\r\n", &cmd);
	assert_string_equal(cmd.mailbox.address, "bob@example.org");
	mv_smtp_command_clear(&cmd);
	parse_ok("rcpt to:<Postmaster>\r\n", &cmd);
	assert_string_equal(cmd.mailbox.local_part, "Postmaster");
	assert_null(cmd.mailbox.domain);
	mv_smtp_command_clear(&cmd);
	parse_ok("RCPT TO:<@hop.example:bob@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@example.org\r\n", &cmd);
	assert_string_equal(cmd.mailbox.address, "bob@example.org");
	assert_int_equal(cmd.params->len, 2);
	assert_string_equal(((mv_smtp_param *)g_ptr_array_index(cmd.params, 0))->keyword, "NOTIFY");
	assert_string_equal(((mv_smtp_param *)g_ptr_array_index(cmd.params, 1))->value, "rfc822;bob+2Bx@example.org");
	mv_smtp_command_clear(&cmd);
	refused("RCPT TO:<>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "<>");
	/* Postmaster without a domain only for RCPT. */
	refused("MAIL FROM:<Postmaster>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.7", "Postmaster");
	refused("RCPT TO:<bob>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "bob");
}

static void test_bad_paths(void **state)
{
	refused("MAIL FROM:alice@example.org\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "alice@example.org");
	refused("RCPT TO:bob@example.org\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "angle brackets");
	refused("MAIL <alice@example.org>\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "FROM:");
	refused("RCPT FROM:<bob@example.org>\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "TO:");
	refused("MAIL FROM:<alice smith@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.7", "alice smith");
	refused("RCPT TO:<bob@exam ple.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:< bob@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<\"bob@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "closing quote");
	refused("RCPT TO:<bob\"@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob@example.org\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "'>'");
	refused("RCPT TO:<.bob@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob..x@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob.@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob@>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob@example..org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob@example.org.>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<bob@[192.0.2.256]>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "192.0.2.256");
	refused("RCPT TO:<bob@[192.0.2]>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", NULL);
	refused("RCPT TO:<@relay.example,bob@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "','");
	refused("RCPT TO:<@relay.example bob@example.org>\r\n", MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "':'");
	refused("RCPT TO:<bob@example.org>x\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "space");

	/* Lengths: 64 octets of local part and 255 of domain are the most. */
	GString *local64 = g_string_new(NULL);
	for (int i = 0; i < 64; i++)
		g_string_append_c(local64, 'a');
	GString *domain255 = g_string_new(NULL);
	while (domain255->len < 251)
		g_string_append(domain255, "abcdefghi.");
	g_string_truncate(domain255, 251);
	g_string_append(domain255, "x.de");
	assert_int_equal(domain255->len, 255);
	char *line = g_strdup_printf("RCPT TO:<%s@%s>\r\n", local64->str, domain255->str);
	mv_smtp_command cmd;
	parse_ok(line, &cmd);
	assert_int_equal(strlen(cmd.mailbox.local_part), 64);
	assert_int_equal(strlen(cmd.mailbox.domain), 255);
	mv_smtp_command_clear(&cmd);
	g_free(line);
	line = g_strdup_printf("RCPT TO:<%sa@example.org>\r\n", local64->str);
	refused(line, MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "64 octets");
	g_free(line);
	line = g_strdup_printf("RCPT TO:<\"%s\"@example.org>\r\n", local64->str + 1);
	refused(line, MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "64 octets");
	g_free(line);
	line = g_strdup_printf("RCPT TO:<bob@a%s>\r\n", domain255->str);
	refused(line, MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "255 octets");
	g_free(line);
	g_string_free(local64, TRUE);
	g_string_free(domain255, TRUE);
}

static void test_smtputf8(void **state)
{
	const char *mail = "MAIL FROM:<j\xc3\xb6rg@ex\xc3\xa4mple.de> SMTPUTF8\r\n";
	const char *mail_plain = "MAIL FROM:<j\xc3\xb6rg@example.de>\r\n";
	const char *rcpt = "RCPT TO:<\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp>\r\n";
	mv_smtp_parse_options opt = options();
	/* Not offered: refused even with the parameter. */
	refused_with(mail, strlen(mail), &opt, MV_SMTP_FAULT_NON_ASCII, 553, "5.6.7", "SMTPUTF8");
	refused_with(rcpt, strlen(rcpt), &opt, MV_SMTP_FAULT_NON_ASCII, 553, "5.6.7", NULL);
	/* Offered: MAIL needs its own SMTPUTF8 parameter. */
	opt.smtputf8_offered = true;
	mv_smtp_command cmd;
	parse_ok_with(mail, &opt, &cmd);
	assert_true(cmd.smtputf8);
	assert_true(cmd.mailbox.utf8);
	assert_string_equal(cmd.mailbox.local_part, "j\xc3\xb6rg");
	assert_string_equal(cmd.mailbox.domain, "ex\xc3\xa4mple.de");
	mv_smtp_command_clear(&cmd);
	refused_with(mail_plain, strlen(mail_plain), &opt, MV_SMTP_FAULT_NON_ASCII, 553, "5.6.7", NULL);
	/* RCPT follows the transaction's MAIL. */
	refused_with(rcpt, strlen(rcpt), &opt, MV_SMTP_FAULT_NON_ASCII, 553, "5.6.7", NULL);
	opt.smtputf8_transaction = true;
	parse_ok_with(rcpt, &opt, &cmd);
	assert_string_equal(cmd.mailbox.local_part, "\xe7\x94\xb0 \xe4\xb8\xad");
	assert_true(cmd.mailbox.local_quoted);
	mv_smtp_command_clear(&cmd);
	/* An ASCII address is fine either way; broken UTF-8 never. */
	parse_ok_with("RCPT TO:<bob@example.org>\r\n", &opt, &cmd);
	assert_false(cmd.mailbox.utf8);
	mv_smtp_command_clear(&cmd);
	const char *broken = "RCPT TO:<b\xc3@example.org>\r\n";
	refused_with(broken, strlen(broken), &opt, MV_SMTP_FAULT_ADDRESS, 553, "5.1.3", "UTF-8");
}

/* ---- parameters --------------------------------------------------------------------------------- */

static void test_mail_parameters(void **state)
{
	mv_smtp_command cmd;
	parse_ok("MAIL FROM:<a@example.org> size=12345 BODY=8bitmime RET=HDRS ENVID=QQ314159+2B AUTH=<>\r\n", &cmd);
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 12345);
	assert_int_equal(cmd.body, MV_SMTP_BODY_8BITMIME);
	assert_false(cmd.smtputf8);
	assert_int_equal(cmd.params->len, 5);
	const mv_smtp_param *size = g_ptr_array_index(cmd.params, 0);
	assert_string_equal(size->keyword, "SIZE");
	assert_string_equal(size->value, "12345");
	mv_smtp_command_clear(&cmd);

	parse_ok("MAIL FROM:<a@example.org> BODY=7BIT\r\n", &cmd);
	assert_int_equal(cmd.body, MV_SMTP_BODY_7BIT);
	assert_false(cmd.has_size);
	mv_smtp_command_clear(&cmd);
	parse_ok("MAIL FROM:<a@example.org> BODY=BINARYMIME SMTPUTF8\r\n", &cmd);
	assert_int_equal(cmd.body, MV_SMTP_BODY_BINARYMIME);
	assert_true(cmd.smtputf8);
	assert_null(((mv_smtp_param *)g_ptr_array_index(cmd.params, 1))->value);
	mv_smtp_command_clear(&cmd);
	parse_ok("MAIL FROM:<a@example.org> SIZE=18446744073709551615\r\n", &cmd);
	assert_true(cmd.size == UINT64_MAX);
	mv_smtp_command_clear(&cmd);

	refused("MAIL FROM:<a@example.org> SIZE=18446744073709551616\r\n", MV_SMTP_FAULT_TOO_BIG, 552, "5.3.4",
	        "18446744073709551616");
	refused("MAIL FROM:<a@example.org> SIZE=99999999999999999999999999\r\n", MV_SMTP_FAULT_TOO_BIG, 552, "5.3.4", NULL);
	refused("MAIL FROM:<a@example.org> SIZE=12k\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "SIZE=12k");
	refused("MAIL FROM:<a@example.org> SIZE\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "SIZE");
	refused("MAIL FROM:<a@example.org> SIZE=\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "SIZE");
	refused("MAIL FROM:<a@example.org> SIZE=1 size=2\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "twice");
	refused("MAIL FROM:<a@example.org> SMTPUTF8 SMTPUTF8\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "twice");
	refused("MAIL FROM:<a@example.org> BODY=9BIT\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "BODY=9BIT");
	refused("MAIL FROM:<a@example.org> SMTPUTF8=yes\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "SMTPUTF8");
	refused("MAIL FROM:<a@example.org> RET=ALL\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "RET");
	refused("MAIL FROM:<a@example.org> ENVID=a=b\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
	refused("MAIL FROM:<a@example.org> ENVID=a+zz\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "ENVID");
	refused("MAIL FROM:<a@example.org> XFOO=1\r\n", MV_SMTP_FAULT_PARAMETER, 555, "5.5.4", "XFOO");
	refused("MAIL FROM:<a@example.org> NOTIFY=NEVER\r\n", MV_SMTP_FAULT_PARAMETER, 555, "5.5.4", "NOTIFY");
	refused("MAIL FROM:<a@example.org> =1\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "=1");
	refused("MAIL FROM:<a@example.org> -X=1\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
	refused("MAIL FROM:<a@example.org> SIZE=1\tBODY=7BIT\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
}

static void test_rcpt_parameters(void **state)
{
	mv_smtp_command cmd;
	parse_ok("RCPT TO:<b@example.org> NOTIFY=NEVER\r\n", &cmd);
	assert_int_equal(cmd.params->len, 1);
	mv_smtp_command_clear(&cmd);
	parse_ok("RCPT TO:<b@example.org> notify=failure,success,delay\r\n", &cmd);
	assert_string_equal(((mv_smtp_param *)g_ptr_array_index(cmd.params, 0))->keyword, "NOTIFY");
	mv_smtp_command_clear(&cmd);
	refused("RCPT TO:<b@example.org> NOTIFY=SUCCESS,SUCCESS\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "NOTIFY");
	refused("RCPT TO:<b@example.org> NOTIFY=NEVER,DELAY\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
	refused("RCPT TO:<b@example.org> NOTIFY=SOMETIMES\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
	refused("RCPT TO:<b@example.org> ORCPT=b@example.org\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "ORCPT");
	refused("RCPT TO:<b@example.org> ORCPT=rfc822;\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", NULL);
	refused("RCPT TO:<b@example.org> NOTIFY=NEVER Notify=NEVER\r\n", MV_SMTP_FAULT_PARAMETER, 501, "5.5.4", "twice");
	refused("RCPT TO:<b@example.org> SIZE=10\r\n", MV_SMTP_FAULT_PARAMETER, 555, "5.5.4", "SIZE");
}

/* ---- BDAT and AUTH ------------------------------------------------------------------------------ */

static void test_bdat(void **state)
{
	mv_smtp_command cmd;
	parse_ok("BDAT 86\r\n", &cmd);
	assert_int_equal(cmd.chunk_size, 86);
	assert_false(cmd.last);
	mv_smtp_command_clear(&cmd);
	parse_ok("BDAT 0 LAST\r\n", &cmd);
	assert_int_equal(cmd.chunk_size, 0);
	assert_true(cmd.last);
	mv_smtp_command_clear(&cmd);
	parse_ok("bdat 18446744073709551615 last\r\n", &cmd);
	assert_true(cmd.chunk_size == UINT64_MAX);
	assert_true(cmd.last);
	mv_smtp_command_clear(&cmd);
	refused("BDAT\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "chunk size");
	refused("BDAT x\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "chunk size");
	refused("BDAT -1\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("BDAT 10 FIRST\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "FIRST");
	refused("BDAT 10 LASTLY\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("BDAT 18446744073709551616\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "too large");
}

static void test_auth(void **state)
{
	mv_smtp_command cmd;
	parse_ok("AUTH plain\r\n", &cmd);
	assert_string_equal(cmd.mechanism, "PLAIN");
	assert_null(cmd.initial_response);
	mv_smtp_command_clear(&cmd);
	parse_ok("AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", &cmd);
	assert_string_equal(cmd.initial_response, "AGJvYgBzZWNyZXQ=");
	mv_smtp_command_clear(&cmd);
	parse_ok("AUTH PLAIN =\r\n", &cmd);
	assert_string_equal(cmd.initial_response, "=");
	mv_smtp_command_clear(&cmd);
	parse_ok("AUTH SCRAM-SHA-256 biwsbj11c2Vy\r\n", &cmd);
	assert_string_equal(cmd.mechanism, "SCRAM-SHA-256");
	mv_smtp_command_clear(&cmd);
	refused("AUTH\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "mechanism");
	refused("AUTH PL@IN\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "PL@IN");
	refused("AUTH ABCDEFGHIJKLMNOPQRSTU\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("AUTH PLAIN AGJvYgBzZWNyZXQ\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", "base64");
	refused("AUTH PLAIN ab=c\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("AUTH PLAIN a===\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("AUTH PLAIN ab!c\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
	refused("AUTH PLAIN abcd efgh\r\n", MV_SMTP_FAULT_ARGUMENT, 501, "5.5.4", NULL);
}

/* ---- the line ----------------------------------------------------------------------------------- */

static void test_line_shape(void **state)
{
	mv_smtp_parse_options opt = options();
	refused_with("QUIT\n", 5, &opt, MV_SMTP_FAULT_BARE_LF, 500, "5.5.2", "bare LF");
	refused_with("\n", 1, &opt, MV_SMTP_FAULT_BARE_LF, 500, "5.5.2", NULL);
	refused_with("QU\0T\r\n", 6, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "NUL");
	refused_with("QUIT", 4, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "line end");
	refused_with("QUIT\r", 5, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "line end");
	refused_with("", 0, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", NULL);
	refused_with("NOOP a\rb\r\n", 10, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "bare CR");
	refused_with("NOOP\nQUIT\r\n", 11, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "more than one line");
	/* The caller's bound, CRLF included. */
	opt.max_line = 6;
	mv_smtp_command cmd;
	parse_ok_with("QUIT\r\n", &opt, &cmd);
	mv_smtp_command_clear(&cmd);
	refused_with("QUIT \r\n", 7, &opt, MV_SMTP_FAULT_LINE, 500, "5.5.2", "too long");
}

/* What a refusal quotes is printable and bounded, whatever came in. */
static void test_refusal_text(void **state)
{
	GString *line = g_string_new("XYZ\x01\x7f\xff");
	for (int i = 0; i < 400; i++)
		g_string_append_c(line, 'z');
	g_string_append(line, "\r\n");
	mv_smtp_parse_options opt = options();
	mv_smtp_command cmd;
	mv_smtp_error err;
	assert_false(mv_smtp_command_parse((const uint8_t *)line->str, line->len, &opt, &cmd, &err));
	assert_non_null(strstr(err.text, "XYZ???zz"));
	assert_true(strlen(err.text) < 120);
	assert_non_null(strstr(err.text, "..."));
	GString *out = g_string_new(NULL);
	mv_smtp_reply_error(out, &err);
	assert_true(g_str_has_prefix(out->str, "500 5.5.1 command not recognised: \"XYZ???"));
	assert_non_null(strstr(out->str, "\r\n"));
	assert_true(strstr(out->str, "\r\n") == out->str + out->len - 2);
	g_string_free(out, TRUE);
	mv_smtp_error_clear(&err);
	mv_smtp_command_clear(&cmd);
	g_string_free(line, TRUE);
}

/* ---- DATA --------------------------------------------------------------------------------------- */

typedef struct decoded {
	GByteArray *out;
	size_t consumed;
	bool done, too_big, bare_lf, bare_cr;
	uint64_t size;
} decoded;

/* Feeds input in pieces of `step` octets (0: at once), as a connection
 * would: each call given what is left of its piece. */
static decoded decode(const char *input, size_t len, size_t step, uint64_t max)
{
	decoded d = {.out = g_byte_array_new()};
	mv_smtp_data_decoder dec;
	mv_smtp_data_init(&dec, d.out, max);
	size_t pos = 0;
	while (pos < len && !dec.done) {
		size_t n = step == 0 || len - pos < step ? len - pos : step;
		size_t used = mv_smtp_data_feed(&dec, (const uint8_t *)input + pos, n);
		assert_true(used <= n);
		assert_true(used == n || dec.done);
		pos += used;
	}
	d.consumed = pos;
	d.done = dec.done;
	d.too_big = dec.too_big;
	d.bare_lf = dec.bare_lf;
	d.bare_cr = dec.bare_cr;
	d.size = dec.size;
	return d;
}

static void expect(const decoded *d, const char *body, size_t consumed)
{
	assert_true(d->done);
	assert_int_equal(d->consumed, consumed);
	assert_int_equal(d->out->len, strlen(body));
	assert_memory_equal(d->out->data, body, d->out->len);
}

/* Every way of cutting the input gives the same result. */
static void decodes_to(const char *input, const char *body, bool bare_lf, bool bare_cr)
{
	size_t len = strlen(input);
	const char *end = strstr(input, "\r\n.\r\n");
	size_t consumed = (strncmp(input, ".\r\n", 3) == 0) ? 3 : (size_t)(end - input) + 5;
	for (size_t step = 0; step <= 7; step++) {
		decoded d = decode(input, len, step, 1 << 20);
		expect(&d, body, consumed);
		assert_int_equal(d.bare_lf, bare_lf);
		assert_int_equal(d.bare_cr, bare_cr);
		assert_false(d.too_big);
		g_byte_array_unref(d.out);
	}
	/* Two pieces, cut at every point. */
	for (size_t cut = 0; cut <= len; cut++) {
		GByteArray *out = g_byte_array_new();
		mv_smtp_data_decoder dec;
		mv_smtp_data_init(&dec, out, 1 << 20);
		size_t used = mv_smtp_data_feed(&dec, (const uint8_t *)input, cut);
		if (!dec.done)
			used += mv_smtp_data_feed(&dec, (const uint8_t *)input + cut, len - cut);
		assert_true(dec.done);
		assert_int_equal(used, consumed);
		assert_int_equal(out->len, strlen(body));
		assert_memory_equal(out->data, body, out->len);
		g_byte_array_unref(out);
	}
}

static void test_data_plain(void **state)
{
	decodes_to("Subject: hi\r\n\r\nbody\r\n.\r\n", "Subject: hi\r\n\r\nbody\r\n", false, false);
	decodes_to(".\r\n", "", false, false);
	decodes_to("\r\n.\r\n", "\r\n", false, false);
	/* Pipelining: what follows the end is the next command's. */
	decodes_to("a\r\n.\r\nQUIT\r\n", "a\r\n", false, false);
}

static void test_data_unstuffing(void **state)
{
	decodes_to("..\r\n.\r\n", ".\r\n", false, false);
	decodes_to("a\r\n..b\r\n...\r\n.\r\n", "a\r\n.b\r\n..\r\n", false, false);
	decodes_to("..\r\n..\r\n.\r\n", ".\r\n.\r\n", false, false);
	/* A dot inside a line is data. */
	decodes_to("a.\r\nb..c\r\n.\r\n", "a.\r\nb..c\r\n", false, false);
	/* A dot line that is not the end: ".x" loses its dot. */
	decodes_to(".x\r\n.\r\n", "x\r\n", false, false);
}

static void test_data_bare_line_ends(void **state)
{
	decodes_to("a\nb\r\n.\r\n", "a\nb\r\n", true, false);
	decodes_to("a\rb\r\n.\r\n", "a\rb\r\n", false, true);
	decodes_to("a\r\r\n.\r\n", "a\r\r\n", false, true);
	/* The smuggling variants are message bytes, never an end. */
	decodes_to("a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\n.\nMAIL FROM:<x@y>\r\n", true, false);
	decodes_to("a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", true, false);
	decodes_to("a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", true, false);
	decodes_to("a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", false, true);
	decodes_to("a\r.\r\nb\r\n.\r\n", "a\r.\r\nb\r\n", false, true);
}

static void test_data_unfinished(void **state)
{
	const char *input = "a\r\n.\r";
	for (size_t step = 0; step <= 2; step++) {
		decoded d = decode(input, strlen(input), step, 100);
		assert_false(d.done);
		assert_int_equal(d.consumed, strlen(input));
		assert_int_equal(d.out->len, 3);
		g_byte_array_unref(d.out);
	}
}

static void test_data_size_limit(void **state)
{
	const char *input = "0123456789\r\n..x\r\n.\r\nNOOP\r\n";
	/* The body is 12 + 4 = 16 octets: 16 fits, 15 does not. */
	for (size_t step = 0; step <= 3; step++) {
		decoded fits = decode(input, strlen(input), step, 16);
		expect(&fits, "0123456789\r\n.x\r\n", 20);
		assert_false(fits.too_big);
		g_byte_array_unref(fits.out);
		decoded big = decode(input, strlen(input), step, 15);
		assert_true(big.done);
		assert_true(big.too_big);
		/* Read to its end all the same, so NOOP is the next command. */
		assert_int_equal(big.consumed, 20);
		assert_int_equal(big.size, 16);
		assert_true(big.out->len <= 15);
		g_byte_array_unref(big.out);
	}
}

/* Byte-at-a-time input costs linear time: a megabyte fed one octet at a
 * time finishes and matches the one-chunk result. */
static void test_data_byte_at_a_time_large(void **state)
{
	GString *input = g_string_new(NULL);
	for (int i = 0; i < 20000; i++)
		g_string_append(input, i % 7 == 0 ? "..stuffed line of text here\r\n" : "plain line of some text\r\n");
	g_string_append(input, ".\r\n");
	decoded whole = decode(input->str, input->len, 0, 1 << 24);
	decoded bytes = decode(input->str, input->len, 1, 1 << 24);
	assert_true(whole.done && bytes.done);
	assert_int_equal(whole.consumed, input->len);
	assert_int_equal(bytes.consumed, input->len);
	assert_int_equal(whole.out->len, bytes.out->len);
	assert_memory_equal(whole.out->data, bytes.out->data, whole.out->len);
	assert_int_equal(whole.out->len, input->len - 3 - (20000 + 6) / 7);
	g_byte_array_unref(whole.out);
	g_byte_array_unref(bytes.out);
	g_string_free(input, TRUE);
}

/* ---- BDAT --------------------------------------------------------------------------------------- */

static void test_bdat_decoder(void **state)
{
	GByteArray *out = g_byte_array_new();
	mv_smtp_bdat_decoder dec;
	mv_smtp_bdat_init(&dec, out, 10);
	mv_smtp_bdat_chunk(&dec, 5);
	/* No unstuffing, and the bytes after the chunk are not taken. */
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"..\r\n", 3), 3);
	assert_int_equal(dec.remaining, 2);
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"\nXBDAT", 6), 2);
	assert_int_equal(dec.remaining, 0);
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"BDAT", 4), 0);
	assert_int_equal(out->len, 5);
	assert_memory_equal(out->data, "..\r\nX", 5);
	mv_smtp_bdat_chunk(&dec, 0);
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"x", 1), 0);
	/* The limit counts over every chunk of the message. */
	mv_smtp_bdat_chunk(&dec, 5);
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"12345", 5), 5);
	assert_false(dec.too_big);
	assert_int_equal(out->len, 10);
	mv_smtp_bdat_chunk(&dec, 3);
	assert_int_equal(mv_smtp_bdat_feed(&dec, (const uint8_t *)"abc", 3), 3);
	assert_true(dec.too_big);
	assert_int_equal(dec.size, 13);
	assert_int_equal(out->len, 10);
	g_byte_array_unref(out);
}

/* ---- replies ------------------------------------------------------------------------------------ */

static void test_replies(void **state)
{
	GString *out = g_string_new(NULL);
	mv_smtp_reply(out, 250, "2.1.0", "Sender OK");
	assert_string_equal(out->str, "250 2.1.0 Sender OK\r\n");
	g_string_truncate(out, 0);
	const char *lines[] = {"first", "second", "third"};
	mv_smtp_reply_lines(out, 550, "5.7.1", lines, 3);
	assert_string_equal(out->str, "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n");
	g_string_truncate(out, 0);
	mv_smtp_reply(out, 220, NULL, "mx ESMTP");
	assert_string_equal(out->str, "220 mx ESMTP\r\n");
	g_string_truncate(out, 0);
	mv_smtp_reply(out, 250, "2.0.0", "a\r\n250 fake\x7f");
	assert_string_equal(out->str, "250 2.0.0 a??250 fake?\r\n");
	g_string_truncate(out, 0);
	mv_smtp_reply_lines(out, 354, NULL, NULL, 0);
	assert_string_equal(out->str, "354\r\n");
	g_string_truncate(out, 0);
	mv_smtp_error err = {.fault = MV_SMTP_FAULT_ADDRESS, .code = 553, .enhanced = "5.1.3", .text = g_strdup("bad")};
	mv_smtp_reply_error(out, &err);
	assert_string_equal(out->str, "553 5.1.3 bad\r\n");
	mv_smtp_error_clear(&err);
	assert_null(err.text);
	g_string_free(out, TRUE);
}

static void test_ehlo_reply(void **state)
{
	GString *out = g_string_new(NULL);
	mv_smtp_capabilities caps = {.size_max = 52428800, .starttls = true, .chunking = true, .smtputf8 = true};
	mv_smtp_ehlo_reply(out, "archive.example.org", "mx.example.org", &caps);
	assert_string_equal(out->str, "250-archive.example.org greets mx.example.org\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-SIZE 52428800\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-ENHANCEDSTATUSCODES\r\n"
	                              "250-CHUNKING\r\n"
	                              "250-BINARYMIME\r\n"
	                              "250-SMTPUTF8\r\n"
	                              "250 STARTTLS\r\n");
	g_string_truncate(out, 0);
	caps = (mv_smtp_capabilities){.auth = "PLAIN LOGIN", .dsn = true};
	mv_smtp_ehlo_reply(out, "a", "[192.0.2.1]", &caps);
	assert_string_equal(out->str, "250-a greets [192.0.2.1]\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-SIZE\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-ENHANCEDSTATUSCODES\r\n"
	                              "250-DSN\r\n"
	                              "250 AUTH PLAIN LOGIN\r\n");
	g_string_free(out, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_verb),
		cmocka_unit_test(test_verbs_without_argument),
		cmocka_unit_test(test_text_verbs),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_mail_paths),
		cmocka_unit_test(test_rcpt_paths),
		cmocka_unit_test(test_bad_paths),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_mail_parameters),
		cmocka_unit_test(test_rcpt_parameters),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_line_shape),
		cmocka_unit_test(test_refusal_text),
		cmocka_unit_test(test_data_plain),
		cmocka_unit_test(test_data_unstuffing),
		cmocka_unit_test(test_data_bare_line_ends),
		cmocka_unit_test(test_data_unfinished),
		cmocka_unit_test(test_data_size_limit),
		cmocka_unit_test(test_data_byte_at_a_time_large),
		cmocka_unit_test(test_bdat_decoder),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_ehlo_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
