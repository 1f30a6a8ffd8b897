/* Unit tests of the IMAP server's pure parts: the command parser, sequence
 * sets, literal announcements, and the modified UTF-7 of mailbox names
 * (mime/mutf7.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "imapd/internal.h"

static imap_command *parse(const char *text, char **tag, const char **why)
{
	return imap_command_parse((const uint8_t *)text, strlen(text), tag, why);
}

static void test_simple_command(void **state)
{
	char *tag;
	const char *why;
	imap_command *c = parse("a1 login \"jo\\\"e\" {3}\r\npw!\r\n", &tag, &why);
	assert_non_null(c);
	assert_string_equal(c->tag, "a1");
	assert_string_equal(c->name, "LOGIN");
	assert_int_equal(c->args->len, 2);
	assert_string_equal(imap_arg_astring(c, 0), "jo\"e");
	assert_string_equal(imap_arg_astring(c, 1), "pw!");
	assert_true(imap_arg_at(c, 1)->literal);
	imap_command_free(c);
	g_free(tag);
}

static void test_uid_fetch_with_sections(void **state)
{
	char *tag;
	const char *why;
	imap_command *c = parse("7 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.512> FLAGS)\r\n", &tag, &why);
	assert_non_null(c);
	assert_string_equal(c->name, "UID FETCH");
	assert_string_equal(imap_arg_astring(c, 0), "1:*");
	const imap_arg *list = imap_arg_at(c, 1);
	assert_int_equal(list->type, IMAP_ARG_LIST);
	assert_int_equal(list->list->len, 3);
	assert_string_equal(((imap_arg *)list->list->pdata[1])->str, "BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.512>");
	imap_command_free(c);
	g_free(tag);
}

static void test_flags_are_atoms(void **state)
{
	char *tag;
	const char *why;
	imap_command *c = parse("s1 UID STORE 1:2 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n", &tag, &why);
	assert_non_null(c);
	assert_string_equal(c->name, "UID STORE");
	const imap_arg *list = imap_arg_at(c, 2);
	assert_int_equal(list->type, IMAP_ARG_LIST);
	assert_int_equal(list->list->len, 3);
	assert_string_equal(((imap_arg *)list->list->pdata[0])->str, "\\Seen");
	assert_string_equal(((imap_arg *)list->list->pdata[2])->str, "$Junk");
	imap_command_free(c);
	g_free(tag);
}

static void test_malformed(void **state)
{
	const char *bad[] = { "", "tag\r\n", "a (\r\n", "a NOOP )\r\n", "a LOGIN \"unterminated\r\n", "a X {5}\r\nab",
		              "a X \"bad\\q\"\r\n", "a X BODY[HEADER\r\n", "a X {999999999999}\r\n", "a X a\"b\r\n" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *tag = NULL;
		const char *why = NULL;
		imap_command *c = parse(bad[i], &tag, &why);
		assert_null(c);
		assert_non_null(why);
		g_free(tag);
	}
}

static void test_nesting_bounded(void **state)
{
	GString *s = g_string_new("a SEARCH ");
	for (int i = 0; i < 100; i++)
		g_string_append_c(s, '(');
	g_string_append(s, "ALL");
	for (int i = 0; i < 100; i++)
		g_string_append_c(s, ')');
	g_string_append(s, "\r\n");
	char *tag;
	const char *why;
	assert_null(parse(s->str, &tag, &why));
	assert_string_equal(why, "lists nested too deeply");
	assert_string_equal(tag, "a");
	g_free(tag);
	g_string_free(s, TRUE);
}

static void test_seqset(void **state)
{
	GArray *r;
	assert_true(imap_seqset_parse("1:3,7,9:*", 20, &r));
	assert_true(imap_seqset_contains(r, 2));
	assert_false(imap_seqset_contains(r, 5));
	assert_true(imap_seqset_contains(r, 20));
	g_array_free(r, TRUE);
	assert_true(imap_seqset_parse("*:4", 10, &r));
	assert_true(imap_seqset_contains(r, 7));
	assert_false(imap_seqset_contains(r, 3));
	g_array_free(r, TRUE);
	const char *bad[] = { "", "0", "1,", ",1", "1::2", "a", "4294967296", "1:2:3" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_false(imap_seqset_parse(bad[i], 10, &r));
}

static void test_line_literal(void **state)
{
	uint64_t n;
	bool plus;
	assert_true(imap_line_literal("a LOGIN {5}", 11, &n, &plus));
	assert_int_equal(n, 5);
	assert_false(plus);
	assert_true(imap_line_literal("a LOGIN x {12+}", 15, &n, &plus));
	assert_int_equal(n, 12);
	assert_true(plus);
	assert_false(imap_line_literal("a NOOP", 6, &n, &plus));
	assert_false(imap_line_literal("a {}", 4, &n, &plus));
	assert_false(imap_line_literal("}", 1, &n, &plus));
}

static void test_mutf7(void **state)
{
	static const struct {
		const char *utf8, *mutf7;
	} pairs[] = { { "INBOX", "INBOX" },
		      { "Entwürfe", "Entw&APw-rfe" },
		      { "A&B", "A&-B" },
		      { "日本語", "&ZeVnLIqe-" },
		      { "Gelöschte Elemente/Ä", "Gel&APY-schte Elemente/&AMQ-" },
		      { "😀", "&2D3eAA-" } };
	for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
		char *e = mv_mutf7_encode(pairs[i].utf8);
		assert_string_equal(e, pairs[i].mutf7);
		char *d = mv_mutf7_decode(e, NULL);
		assert_string_equal(d, pairs[i].utf8);
		g_free(e);
		g_free(d);
	}
	/* Not canonical or not valid: refused, so one mailbox has one name. */
	const char *bad[] = { "&AGE-", "&", "&Zz", "a\x80", "&2D0-", "&ZeVnLIqe", "&AAA-", "&AOQ-&AOQ-" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
		assert_null(mv_mutf7_decode(bad[i], NULL));
}

/* The archive's flag record (mime/mail_flags.c) as IMAP shows it. */
static void test_mail_flags(void **state)
{
	static const struct {
		const char *record, *imap;
	} cases[] = { { "", "(\\Seen)" },          { "2,", "()" },        { "2,FS", "(\\Seen \\Flagged)" },
		      { "RS", "(\\Seen \\Answered)" }, { "2,D", "(\\Draft)" } };
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		GString *out = g_string_new(NULL);
		mv_mail_flags_append_imap(out, mv_mail_flags_parse(cases[i].record));
		assert_string_equal(out->str, cases[i].imap);
		g_string_free(out, TRUE);
	}
	char *r = mv_mail_flags_from_maildir("1000.M1.host:2,SRF");
	assert_string_equal(r, "2,SRF");
	g_free(r);
	r = mv_mail_flags_from_maildir("1001.M2.host");
	assert_string_equal(r, "2,");
	g_free(r);
}

static void test_append_string(void **state)
{
	GString *s = g_string_new(NULL);
	imap_append_string(s, "a\"b\\c", 5, false);
	assert_string_equal(s->str, "\"a\\\"b\\\\c\"");
	g_string_truncate(s, 0);
	imap_append_string(s, "x\r\ny", 4, false);
	assert_string_equal(s->str, "{4}\r\nx\r\ny");
	g_string_truncate(s, 0);
	imap_append_string(s, "\xc3\xa4", 2, false);
	assert_string_equal(s->str, "{2}\r\n\xc3\xa4");
	g_string_free(s, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_command), cmocka_unit_test(test_uid_fetch_with_sections),
		cmocka_unit_test(test_flags_are_atoms),
		cmocka_unit_test(test_malformed),      cmocka_unit_test(test_nesting_bounded),
		cmocka_unit_test(test_seqset),         cmocka_unit_test(test_line_literal),
		cmocka_unit_test(test_mutf7),          cmocka_unit_test(test_append_string),
		cmocka_unit_test(test_mail_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
