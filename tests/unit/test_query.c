/* Unit tests for search/query: every construct of the language and every
 * error, checked through the canonical to_string rendering and the exact
 * error message, because both are part of the contract (tests, --debug and
 * users reading "position N: reason"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "search/query.h"
#include "search/search.h"

/* What an operator where a term belongs adds to "unexpected 'w'". */
#define OP_HINT(w) " (OR, AND and NOT are operators, in upper or lower case; to search for the word, put it in quotes: \"" w "\")"

static void check_parse(const char *text, const char *expected)
{
	GError *err = NULL;
	mv_query *q = mv_query_parse(text, &err);
	if (q == NULL)
		fail_msg("'%s' failed: %s", text, err != NULL ? err->message : "(no error)");
	assert_null(err);
	char *s = mv_query_to_string(q);
	if (strcmp(s, expected) != 0)
		fail_msg("'%s' gave %s, expected %s", text, s, expected);
	g_free(s);
	mv_query_free(&q);
}

static void check_error(const char *text, const char *expected)
{
	GError *err = NULL;
	mv_query *q = mv_query_parse(text, &err);
	if (q != NULL) {
		char *s = mv_query_to_string(q);
		fail_msg("'%s' parsed as %s, expected error %s", text, s, expected);
	}
	assert_non_null(err);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	if (strcmp(err->message, expected) != 0)
		fail_msg("'%s' gave error '%s', expected '%s'", text, err->message, expected);
	g_error_free(err);
}

static void test_words(void **state)
{
	(void)state;
	check_parse("hello", "TERM(hello)");
	check_parse("  hello  ", "TERM(hello)");
	check_parse("hello world", "AND(TERM(hello), TERM(world))");
	check_parse("a\tb\nc", "AND(TERM(a), TERM(b), TERM(c))");
	check_parse("Grüße café", "AND(TERM(Grüße), TERM(café))");
	check_parse("a-b", "TERM(a-b)");
	check_parse("foo-", "TERM(foo-)");
	check_parse("Or", "TERM(Or)");
	check_parse("Or And Not", "AND(TERM(Or), TERM(And), TERM(Not))");
	check_parse("\"or\" \"not\"", "AND(PHRASE(\"or\"), PHRASE(\"not\"))");
	check_parse("ORANGE ANDROID NOTE", "AND(TERM(ORANGE), TERM(ANDROID), TERM(NOTE))");
	check_parse("http://x.org/a", "TERM(http://x.org/a)");
	check_parse("12:30", "TERM(12:30)");
	check_parse(":x", "TERM(:x)");
	check_parse("a(b)c", "AND(TERM(a), TERM(b), TERM(c))");
}

static void test_prefix(void **state)
{
	(void)state;
	check_parse("john*", "TERM(john*)");
	check_parse("from:john*", "TERM(from:john*)");
	check_parse("x* y", "AND(TERM(x*), TERM(y))");
	check_error("*", "position 1: '*' without a prefix");
	check_error("a *", "position 3: '*' without a prefix");
	check_error("from:*", "position 6: '*' without a prefix");
	check_error("fo*o", "position 3: '*' is only allowed at the end of a word");
	check_error("*foo", "position 1: '*' is only allowed at the end of a word");
	check_error("foo**", "position 4: '*' is only allowed at the end of a word");
	check_error("\"a b\"*", "position 6: '*' without a prefix");
}

static void test_phrases(void **state)
{
	(void)state;
	check_parse("\"hello world\"", "PHRASE(\"hello world\")");
	check_parse("\"  hello \t  world  \"", "PHRASE(\"hello world\")");
	check_parse("\"one\"", "PHRASE(\"one\")");
	check_parse("\"a (b) OR c*\"", "PHRASE(\"a (b) OR c*\")");
	check_parse("x\"a b\"y", "AND(TERM(x), PHRASE(\"a b\"), TERM(y))");
	check_parse("subject:\"a  b\"", "PHRASE(subject:\"a b\")");
	check_parse("-\"a b\"", "NOT(PHRASE(\"a b\"))");
	check_error("hello \"world", "position 7: unterminated phrase");
	check_error("\"a\" \"b", "position 5: unterminated phrase");
	check_error("subject:\"abc", "position 9: unterminated phrase");
	check_error("\"\"", "position 1: empty phrase");
	check_error("a \"   \"", "position 3: empty phrase");
	check_error("to:\"\"", "position 4: empty phrase");
}

static void test_fields(void **state)
{
	(void)state;
	check_parse("from:john", "TERM(from:john)");
	check_parse("FROM:John", "TERM(from:John)");
	check_parse("to:a cc:b bcc:c", "AND(TERM(to:a), TERM(cc:b), TERM(bcc:c))");
	check_parse("subject:hi body:there", "AND(TERM(subject:hi), TERM(body:there))");
	check_parse("attachment:report.pdf", "TERM(attachment:report.pdf)");
	check_parse("folder:INBOX/Sent.2024", "TERM(folder:INBOX/Sent.2024)");
	check_parse("archive:old/2019", "TERM(archive:old/2019)");
	check_parse("folder:\"Sent Items/2024\"", "PHRASE(folder:\"Sent Items/2024\")");
	check_parse("messageid:<abc@x.org>", "TERM(messageid:<abc@x.org>)");
	check_parse("MessageId:a", "TERM(messageid:a)");
	check_parse("from:a:b", "TERM(from:a:b)");
	check_parse("from:-x", "TERM(from:-x)");
	check_parse("from:OR", "TERM(from:OR)");
	check_error("from:", "position 6: missing value after 'from:'");
	check_error("a from: b", "position 8: missing value after 'from:'");
	check_error("size:", "position 6: missing value after 'size:'");
	check_error("after:", "position 7: missing value after 'after:'");
}

static void test_field_names(void **state)
{
	(void)state;
	assert_string_equal(mv_query_field_name(MV_F_ANY), "any");
	assert_string_equal(mv_query_field_name(MV_F_FROM), "from");
	assert_string_equal(mv_query_field_name(MV_F_TO), "to");
	assert_string_equal(mv_query_field_name(MV_F_CC), "cc");
	assert_string_equal(mv_query_field_name(MV_F_BCC), "bcc");
	assert_string_equal(mv_query_field_name(MV_F_SUBJECT), "subject");
	assert_string_equal(mv_query_field_name(MV_F_BODY), "body");
	assert_string_equal(mv_query_field_name(MV_F_ATTACHMENT), "attachment");
	assert_string_equal(mv_query_field_name(MV_F_FOLDER), "folder");
	assert_string_equal(mv_query_field_name(MV_F_ARCHIVE), "archive");
	assert_string_equal(mv_query_field_name(MV_F_MESSAGEID), "messageid");
}

static void test_tree_fields(void **state)
{
	(void)state;
	GError *err = NULL;
	mv_query *q = mv_query_parse("from:jo* \"a  b\" size:>=2k", &err);
	assert_non_null(q);
	assert_int_equal(q->kind, MV_Q_AND);
	assert_int_equal(q->children->len, 3);
	mv_query *t = g_ptr_array_index(q->children, 0);
	assert_int_equal(t->kind, MV_Q_TERM);
	assert_int_equal(t->field, MV_F_FROM);
	assert_string_equal(t->text, "jo");
	assert_true(t->prefix);
	mv_query *ph = g_ptr_array_index(q->children, 1);
	assert_int_equal(ph->kind, MV_Q_PHRASE);
	assert_int_equal(ph->field, MV_F_ANY);
	assert_string_equal(ph->text, "a b");
	mv_query *sz = g_ptr_array_index(q->children, 2);
	assert_int_equal(sz->kind, MV_Q_SIZE);
	assert_int_equal(sz->cmp, MV_CMP_GE);
	assert_int_equal(sz->value, 2048);
	mv_query_free(&q);
	assert_null(q);    /* the caller's pointer is cleared */
	mv_query *none = NULL;
	mv_query_free(&none);
	mv_query_free(&none);
}

static void test_precedence(void **state)
{
	(void)state;
	check_parse("a b OR c", "AND(TERM(a), OR(TERM(b), TERM(c)))");
	check_parse("a OR b c", "AND(OR(TERM(a), TERM(b)), TERM(c))");
	check_parse("a OR b OR c", "OR(TERM(a), TERM(b), TERM(c))");
	check_parse("a or b", "OR(TERM(a), TERM(b))");
	check_parse("a AND b", "AND(TERM(a), TERM(b))");
	check_parse("a AND b OR c", "AND(TERM(a), OR(TERM(b), TERM(c)))");
	check_parse("(a b) OR c", "OR(AND(TERM(a), TERM(b)), TERM(c))");
	check_parse("((a))", "TERM(a)");
	check_parse("(a OR b) (c OR d)", "AND(OR(TERM(a), TERM(b)), OR(TERM(c), TERM(d)))");
	check_parse("-a OR b", "OR(NOT(TERM(a)), TERM(b))");
	check_parse("x (a b)", "AND(TERM(x), AND(TERM(a), TERM(b)))");
}

static void test_negation(void **state)
{
	(void)state;
	check_parse("-spam", "NOT(TERM(spam))");
	check_parse("a -b", "AND(TERM(a), NOT(TERM(b)))");
	check_parse("-from:x", "NOT(TERM(from:x))");
	check_parse("-(a OR b)", "NOT(OR(TERM(a), TERM(b)))");
	check_parse("--a", "NOT(NOT(TERM(a)))");
	check_parse("-has:attachment", "NOT(HAS(attachment))");
	check_parse("-5", "NOT(TERM(5))");
	check_error("-", "position 1: '-' without a term to negate");
	check_error("a - b", "position 3: '-' without a term to negate");
	check_error("(a -)", "position 4: '-' without a term to negate");
	check_error("-- a", "position 2: '-' without a term to negate");
	check_error("-OR", "position 2: unexpected 'OR'" OP_HINT("OR"));
}

static void test_structure_errors(void **state)
{
	(void)state;
	check_error("", "position 1: empty query");
	check_error("   \t ", "position 1: empty query");
	check_error("abc)", "position 4: unexpected ')'");
	check_error("a b)", "position 4: unexpected ')'");
	check_error(")", "position 1: unexpected ')'");
	check_error("(a) b)", "position 6: unexpected ')'");
	check_error("(abc def", "position 9: missing ')'");
	check_error("(", "position 2: missing ')'");
	check_error("((a)", "position 5: missing ')'");
	check_error("()", "position 2: empty parentheses");
	check_error("a ( ) b", "position 5: empty parentheses");
	check_error("OR a", "position 1: unexpected 'OR'" OP_HINT("OR"));
	check_error("a OR", "position 5: unexpected end of query");
	check_error("a OR OR b", "position 6: unexpected 'OR'" OP_HINT("OR"));
	check_error("(a OR)", "position 6: unexpected ')'");
	check_error("AND a", "position 1: unexpected 'AND'" OP_HINT("AND"));
	check_error("a AND", "position 6: unexpected end of query");
	check_error("a AND AND b", "position 7: unexpected 'AND'" OP_HINT("AND"));
	check_error("a AND OR b", "position 7: unexpected 'OR'" OP_HINT("OR"));
	check_error("a OR AND b", "position 6: unexpected 'AND'" OP_HINT("AND"));
	check_error("(AND a)", "position 2: unexpected 'AND'" OP_HINT("AND"));
	/* positions count characters, not bytes */
	check_error("äöü )", "position 5: unexpected ')'");
	check_error("\"€ x", "position 1: unterminated phrase");
	check_error("€€ \"x", "position 4: unterminated phrase");
}

static void test_utf8(void **state)
{
	(void)state;
	check_error("ab\xff", "position 3: invalid UTF-8");
	check_error("é \xc3", "position 3: invalid UTF-8");
	check_error("\xc0\x80", "position 1: invalid UTF-8");
}

static void test_dates(void **state)
{
	(void)state;
	check_parse("after:2024-01-01", "DATE(>=1704067200)");
	check_parse("before:2024-01-01", "DATE(<1704067200)");
	check_parse("AFTER:1970-01-01", "DATE(>=0)");
	check_parse("after:1969-12-31", "DATE(>=-86400)");
	check_parse("after:2024-02-29", "DATE(>=1709164800)");
	check_parse("after:2000-02-29", "DATE(>=951782400)");
	check_parse("after:2000-03-01", "DATE(>=951868800)");
	check_parse("before:9999-12-31", "DATE(<253402214400)");
	check_parse("after:2024-01-01 before:2024-02-01",
	            "AND(DATE(>=1704067200), DATE(<1706745600))");
	const char *bad[] = {
		"2023-02-29", "1900-02-29", "2024-02-30", "2024-04-31", "2024-13-01",
		"2024-00-10", "2024-01-00", "2024-1-01", "24-01-01", "2024-01-011",
		"2024/01/01", "2024-01-0x", "yesterday", "2024-01-01*", "+024-01-01",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *q = g_strdup_printf("after:%s", bad[i]);
		GError *err = NULL;
		assert_null(mv_query_parse(q, &err));
		/* the message names the value refused and the form expected */
		char *named = g_strdup_printf("position 7: invalid date '%s' for after:", bad[i]);
		if (!g_str_has_prefix(err->message, named) || !strstr(err->message, "expected YYYY-MM-DD"))
			fail_msg("'%s' gave '%s'", q, err->message);
		g_free(named);
		g_error_free(err);
		g_free(q);
	}
	check_error("x before:2024-02-30", "position 10: invalid date '2024-02-30' for before: (2024-02 has days 01 to "
	            "29); expected YYYY-MM-DD, e.g. before:2002-10-01");
	check_error("after:\"2024-01-01\"", "position 7: invalid date '\"2024-01-01\"' for after: (a date is written "
	            "without quotes); expected YYYY-MM-DD, e.g. after:2002-10-01");
}

static void test_sizes(void **state)
{
	(void)state;
	check_parse("size:>1M", "SIZE(>1048576)");
	check_parse("size:<10k", "SIZE(<10240)");
	check_parse("size:>=500", "SIZE(>=500)");
	check_parse("size:<=2K", "SIZE(<=2048)");
	check_parse("size:=7", "SIZE(=7)");
	check_parse("size:7", "SIZE(=7)");
	check_parse("size:1m", "SIZE(=1048576)");
	check_parse("size:3g", "SIZE(=3221225472)");
	check_parse("SIZE:>2G", "SIZE(>2147483648)");
	check_parse("size:0", "SIZE(=0)");
	check_parse("size:9223372036854775807", "SIZE(=9223372036854775807)");
	check_parse("size:8589934591G", "SIZE(=9223372035781033984)");
	check_error("size:9223372036854775808", "position 6: size '9223372036854775808' out of range");
	check_error("size:8589934592G", "position 6: size '8589934592G' out of range");
	check_error("size:>99999999999999999999999", "position 6: size '>99999999999999999999999' out of range");
	const char *bad[] = {
		">", ">=", "=", "k", ">k", "1x", "1kb", "1.5M", "=>1", "<>1", "-1", "1*",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		char *q = g_strdup_printf("size:%s", bad[i]);
		char *want = g_strdup_printf("position 6: invalid size '%s'; expected [<|<=|>|>=|=]N[k|M|G], e.g. size:>1M",
		                             bad[i]);
		check_error(q, want);
		g_free(want);
		g_free(q);
	}
	check_error("size:\"1\"", "position 6: invalid size '\"1\"'; expected [<|<=|>|>=|=]N[k|M|G], e.g. size:>1M");
}

static void test_has(void **state)
{
	(void)state;
	check_parse("has:attachment", "HAS(attachment)");
	check_parse("HAS:Attachment", "HAS(attachment)");
	check_error("has:attachments", "position 5: unknown 'has:attachments'; only 'has:attachment' is known");
	check_error("has:star", "position 5: unknown 'has:star'; only 'has:attachment' is known");
	check_error("has:attach*", "position 5: unknown 'has:attach*'; only 'has:attachment' is known");
	check_error("has:\"attachment\"", "position 5: unknown 'has:\"attachment\"'; only 'has:attachment' is known");
	check_error("has:", "position 5: missing value after 'has:'");
}

#define FIELDS "from: to: cc: bcc: subject: body: attachment: folder: archive: messageid: after: before: has: size:"
#define QUOTE_HINT " (put text with a colon in quotes to search for it as it is)"

/* A misspelt or invented field was searched as text and found nothing, in
 * silence: it is an error naming the word and listing the fields.  Words
 * that hold a colon without being meant as a field stay text. */
static void test_unknown_fields(void **state)
{
	(void)state;
	check_error("form:alice", "position 1: unknown field 'form:' in 'form:alice'; the fields are " FIELDS QUOTE_HINT);
	check_error("razor date:2002-10-01",
	            "position 7: unknown field 'date:' in 'date:2002-10-01'; the fields are " FIELDS QUOTE_HINT);
	check_error("Sender:bob", "position 1: unknown field 'Sender:' in 'Sender:bob'; the fields are " FIELDS QUOTE_HINT);
	check_error("-form:x", "position 2: unknown field 'form:' in 'form:x'; the fields are " FIELDS QUOTE_HINT);
	check_error("form:\"a b\"", "position 1: unknown field 'form:'; the fields are " FIELDS QUOTE_HINT);
	check_error("form:(a OR b)", "position 1: unknown field 'form:'; the fields are " FIELDS QUOTE_HINT);
	check_error("(a) tag:x", "position 5: unknown field 'tag:' in 'tag:x'; the fields are " FIELDS QUOTE_HINT);
	check_error("mailto:alice@example.com",
	            "position 1: unknown field 'mailto:' in 'mailto:alice@example.com'; the fields are " FIELDS QUOTE_HINT);
	/* a long word is named by its beginning only */
	GString *longword = g_string_new("xx:");
	for (int i = 0; i < 100; i++)
		g_string_append(longword, "é");
	GError *err = NULL;
	assert_null(mv_query_parse(longword->str, &err));
	assert_non_null(strstr(err->message, "in 'xx:"));
	assert_non_null(strstr(err->message, "…'"));
	assert_true(g_utf8_validate(err->message, -1, NULL));
	assert_true(strlen(err->message) < 400);
	g_error_free(err);
	g_string_free(longword, TRUE);

	/* What is not a field attempt stays searchable text: a name that is not
	 * two or more ASCII letters, a value starting with '/' or ':', no value,
	 * and anything in quotes. */
	check_parse("http://x.org/a", "TERM(http://x.org/a)");
	check_parse("https://x.org/a?b=c:d", "TERM(https://x.org/a?b=c:d)");
	check_parse("10:30", "TERM(10:30)");
	check_parse("re: meeting", "AND(TERM(re:), TERM(meeting))");
	check_parse("AW: Fwd:", "AND(TERM(AW:), TERM(Fwd:))");
	check_parse("(re:)", "TERM(re:)");
	check_parse("std::vector", "TERM(std::vector)");
	check_parse("c:\\tmp", "TERM(c:\\tmp)");
	check_parse("x1:y", "TERM(x1:y)");
	check_parse("a-b:c", "TERM(a-b:c)");
	check_parse("größe:10", "TERM(größe:10)");
	check_parse(":x", "TERM(:x)");
	check_parse("\"form:alice\"", "PHRASE(\"form:alice\")");
	check_parse("\"mailto:alice@example.com\"", "PHRASE(\"mailto:alice@example.com\")");
	check_parse("subject:re:", "TERM(subject:re:)");
}

/* OR, AND and NOT in lower case are the operators (the choice documented
 * in query.h and README.md); mixed case and quotes keep the word. */
static void test_lowercase_operators(void **state)
{
	(void)state;
	check_parse("razor or spam", "OR(TERM(razor), TERM(spam))");
	check_parse("a b or c", "AND(TERM(a), OR(TERM(b), TERM(c)))");
	check_parse("a and b", "AND(TERM(a), TERM(b))");
	check_parse("razor not spam", "AND(TERM(razor), NOT(TERM(spam)))");
	check_parse("not spam", "NOT(TERM(spam))");
	check_parse("a or not b", "OR(TERM(a), NOT(TERM(b)))");
	check_parse("from:or subject:not", "AND(TERM(from:or), TERM(subject:not))");
	check_error("or", "position 1: unexpected 'or'" OP_HINT("or"));
	check_error("a or", "position 5: unexpected end of query");
	check_error("a and or b", "position 7: unexpected 'or'" OP_HINT("or"));
}

static void test_not_keyword(void **state)
{
	(void)state;
	check_parse("NOT spam", "NOT(TERM(spam))");
	check_parse("razor NOT spam", "AND(TERM(razor), NOT(TERM(spam)))");
	check_parse("NOT (a OR b)", "NOT(OR(TERM(a), TERM(b)))");
	check_parse("NOT -a", "NOT(NOT(TERM(a)))");
	check_parse("NOT NOT a", "NOT(NOT(TERM(a)))");
	check_parse("NOT from:x", "NOT(TERM(from:x))");
	check_parse("NOT a OR b", "OR(NOT(TERM(a)), TERM(b))");
	check_error("NOT", "position 1: 'NOT' without a term to negate");
	check_error("a not", "position 3: 'not' without a term to negate");
	check_error("(a NOT)", "position 4: 'NOT' without a term to negate");
	check_error("NOT OR a", "position 1: 'NOT' without a term to negate");
	/* NOT counts against the depth bound like '-' */
	GString *nots = g_string_new(NULL);
	for (int i = 0; i <= MV_QUERY_MAX_DEPTH; i++)
		g_string_append(nots, "NOT ");
	g_string_append_c(nots, 'x');
	check_error(nots->str, "position 129: negations nested deeper than 32");
	g_string_free(nots, TRUE);
}

/* field:( ... ) gives the field to every term inside. */
static void test_field_groups(void **state)
{
	(void)state;
	check_parse("subject:(a OR b)", "OR(TERM(subject:a), TERM(subject:b))");
	check_parse("subject:(a)", "TERM(subject:a)");
	check_parse("SUBJECT:(a b*)", "AND(TERM(subject:a), TERM(subject:b*))");
	check_parse("from:(\"a b\" OR c) d", "AND(OR(PHRASE(from:\"a b\"), TERM(from:c)), TERM(d))");
	check_parse("subject:(a (b OR -c))", "AND(TERM(subject:a), OR(TERM(subject:b), NOT(TERM(subject:c))))");
	check_parse("subject:(a) b", "AND(TERM(subject:a), TERM(b))");
	check_parse("-subject:(a OR b)", "NOT(OR(TERM(subject:a), TERM(subject:b)))");
	check_parse("(a) subject:(b) (c)", "AND(TERM(a), TERM(subject:b), TERM(c))");
	check_parse("folder:(Inbox OR Sent)", "OR(TERM(folder:Inbox), TERM(folder:Sent))");
	check_error("subject:()", "position 10: empty parentheses");
	check_error("subject:(a", "position 11: missing ')'");
	check_error("subject:(from:a)", "position 10: 'from:' inside 'subject:(...)': a term has one field");
	check_error("subject:(a after:2002-10-01)",
	            "position 12: 'after:' inside 'subject:(...)': a term has one field");
	check_error("subject:(a from:(b))", "position 12: 'from:(...)' inside 'subject:(...)': a term has one field");
	check_error("after:(2002-10-01)", "position 7: 'after:' takes one value, not a group '(...)'");
	check_error("has:(attachment)", "position 5: 'has:' takes one value, not a group '(...)'");
	check_error("size:(>1)", "position 6: 'size:' takes one value, not a group '(...)'");
	/* the field's own parenthesis counts against the depth bound */
	GString *deep = g_string_new("subject:(");
	for (int i = 1; i < MV_QUERY_MAX_DEPTH; i++)
		g_string_append_c(deep, '(');
	g_string_append_c(deep, 'a');
	for (int i = 0; i < MV_QUERY_MAX_DEPTH; i++)
		g_string_append_c(deep, ')');
	check_parse(deep->str, "TERM(subject:a)");
	g_string_insert_c(deep, 9, '(');
	g_string_append_c(deep, ')');
	check_error(deep->str, "position 41: parentheses nested deeper than 32");
	g_string_free(deep, TRUE);
}

static void test_date_errors(void **state)
{
	(void)state;
	check_error("after:2002-13-45", "position 7: invalid date '2002-13-45' for after: (there is no month 13); "
	            "expected YYYY-MM-DD, e.g. after:2002-10-01");
	check_error("after:2023-02-29", "position 7: invalid date '2023-02-29' for after: (2023-02 has days 01 to 28); "
	            "expected YYYY-MM-DD, e.g. after:2002-10-01");
	check_error("before:2024-04-00", "position 8: invalid date '2024-04-00' for before: (2024-04 has days 01 to "
	            "30); expected YYYY-MM-DD, e.g. before:2002-10-01");
	check_error("after:yesterday", "position 7: invalid date 'yesterday' for after:; expected YYYY-MM-DD, e.g. "
	            "after:2002-10-01");
	check_error("after:2002/10/01", "position 7: invalid date '2002/10/01' for after:; expected YYYY-MM-DD, e.g. "
	            "after:2002-10-01");
}

/* Builds "((((...x...))))" with n levels. */
static char *nested(int n, const char *inner)
{
	GString *s = g_string_new(NULL);
	for (int i = 0; i < n; i++)
		g_string_append_c(s, '(');
	g_string_append(s, inner);
	for (int i = 0; i < n; i++)
		g_string_append_c(s, ')');
	return g_string_free(s, FALSE);
}

static void test_depth(void **state)
{
	(void)state;
	char *ok = nested(MV_QUERY_MAX_DEPTH, "a -b");
	check_parse(ok, "AND(TERM(a), NOT(TERM(b)))");
	g_free(ok);
	char *deep = nested(MV_QUERY_MAX_DEPTH + 1, "a");
	check_error(deep, "position 33: parentheses nested deeper than 32");
	g_free(deep);
	char *huge = nested(2000, "a");
	check_error(huge, "position 33: parentheses nested deeper than 32");
	g_free(huge);

	GString *nots = g_string_new(NULL);
	for (int i = 0; i < MV_QUERY_MAX_DEPTH; i++)
		g_string_append_c(nots, '-');
	g_string_append_c(nots, 'x');
	GError *err = NULL;
	mv_query *q = mv_query_parse(nots->str, &err);
	assert_non_null(q);
	mv_query_free(&q);
	g_string_insert_c(nots, 0, '-');
	check_error(nots->str, "position 33: negations nested deeper than 32");
	g_string_free(nots, TRUE);
	/* negations inside groups count along the whole path */
	GString *mixed = g_string_new(NULL);
	for (int i = 0; i < 20; i++)
		g_string_append(mixed, "-(");
	for (int i = 0; i < 13; i++)
		g_string_append_c(mixed, '-');
	g_string_append_c(mixed, 'x');
	for (int i = 0; i < 20; i++)
		g_string_append_c(mixed, ')');
	check_error(mixed->str, "position 53: negations nested deeper than 32");
	g_string_free(mixed, TRUE);
}

static void test_length(void **state)
{
	(void)state;
	char *max = g_malloc(MV_QUERY_MAX_LEN + 2);
	memset(max, 'a', MV_QUERY_MAX_LEN);
	max[MV_QUERY_MAX_LEN] = '\0';
	char *s = NULL;
	GError *err = NULL;
	mv_query *q = mv_query_parse(max, &err);
	assert_non_null(q);
	s = mv_query_to_string(q);
	assert_int_equal(strlen(s), MV_QUERY_MAX_LEN + strlen("TERM()"));
	g_free(s);
	mv_query_free(&q);
	max[MV_QUERY_MAX_LEN] = 'a';
	max[MV_QUERY_MAX_LEN + 1] = '\0';
	check_error(max, "position 1: query longer than 4096 bytes");
	g_free(max);
}

static void test_terms(void **state)
{
	(void)state;
	GString *s = g_string_new(NULL);
	for (int i = 0; i < MV_QUERY_MAX_TERMS; i++)
		g_string_append(s, i % 2 ? "a " : "size:1 ");
	GError *err = NULL;
	mv_query *q = mv_query_parse(s->str, &err);
	assert_non_null(q);
	assert_int_equal(q->children->len, MV_QUERY_MAX_TERMS);
	mv_query_free(&q);
	size_t at = s->len;
	g_string_append(s, "\"over the\" limit");
	char *want = g_strdup_printf("position %zu: more than 256 terms", at + 1);
	check_error(s->str, want);
	g_free(want);
	g_string_free(s, TRUE);
}

static void test_null_error(void **state)
{
	(void)state;
	assert_null(mv_query_parse("(", NULL));
	assert_null(mv_query_parse(NULL, NULL));
	char *s = mv_query_to_string(NULL);
	assert_string_equal(s, "");
	g_free(s);
}

/* Issue 19.13: " 1:1" and "+1:+1" were accepted while "1:1 " was refused;
 * an id now has exactly one spelling. */
static void test_message_ids(void **state)
{
	(void)state;
	int store = 0;
	int64_t num = 0;
	assert_true(mv_message_id_parse("1:1", &store, &num));
	assert_int_equal(store, 1);
	assert_int_equal(num, 1);
	assert_true(mv_message_id_parse("12:9223372036854775807", &store, &num));
	assert_int_equal(store, 12);
	assert_true(num == INT64_MAX);
	const char *bad[] = { " 1:1", "1:1 ", "+1:+1", "1:+1", "-1:1", "01:1", "1:01", "1:", ":1", "0:1", "1:0", "1",
		              "1:1:1", "1 :1", "1:\t1", "2147483648:1", "1:9223372036854775808", "", "a:1", "1:1a" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (mv_message_id_parse(bad[i], &store, &num))
			fail_msg("accepted the id '%s'", bad[i]);
	assert_false(mv_message_id_parse(NULL, &store, &num));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_phrases),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_field_names),
		cmocka_unit_test(test_tree_fields),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_negation),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_has),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_lowercase_operators),
		cmocka_unit_test(test_not_keyword),
		cmocka_unit_test(test_field_groups),
		cmocka_unit_test(test_date_errors),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_terms),
		cmocka_unit_test(test_null_error),
		cmocka_unit_test(test_message_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
