/* Unit tests: message parsing — addresses, dates, RFC 2047 (every
 * encoded-word of subjects, names and file names, index and view alike),
 * bodies, the malformed-input flags, and HTML to text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime.h"
#include <string.h>

static mv_parsed *parse(const char *text)
{
	return mv_parse_message((const uint8_t *)text, strlen(text), 1000);
}

static void test_address_normalize(void **state)
{
	char *a = mv_address_normalize("  <John.Doe@Example.COM> ");
	assert_string_equal(a, "john.doe@example.com");
	g_free(a);
	a = mv_address_normalize("");
	assert_string_equal(a, "");
	g_free(a);
	a = mv_address_normalize(NULL);
	assert_string_equal(a, "");
	g_free(a);
}

static void time_text_is(int64_t t, const char *want)
{
	char *got = mv_format_time_utc(t);
	assert_string_equal(got, want);
	g_free(got);
}

/* mv_format_time_utc keeps GDateTime's text and range (it replaced it). */
static void test_time_text(void **state)
{
	time_text_is(0, "1970-01-01T00:00:00Z");
	time_text_is(1030016176, "2002-08-22T11:36:16Z");
	time_text_is(-1, "1969-12-31T23:59:59Z");
	time_text_is(951782400, "2000-02-29T00:00:00Z");
	time_text_is(INT64_C(-62135596800), "1-01-01T00:00:00Z");
	time_text_is(INT64_C(-58948387200), "102-01-01T00:00:00Z");
	time_text_is(INT64_C(253402300799), "9999-12-31T23:59:59Z");
	time_text_is(INT64_C(-62135596801), "invalid-date");
	time_text_is(INT64_C(253402300800), "invalid-date");
	time_text_is(INT64_MIN, "invalid-date");
	time_text_is(INT64_MAX, "invalid-date");
}

static void test_dates(void **state)
{
	int64_t t = 0;
	assert_true(mv_date_parse("Thu, 22 Aug 2002 07:36:16 -0400", &t));
	assert_int_equal(t, 1030016176);
	assert_false(mv_date_parse("not a date", &t));
	assert_false(mv_date_parse("", &t));
	assert_true(mv_date_from_received("from x by y; Thu, 22 Aug 2002 12:36:16 +0100 (IST)", &t));
	assert_int_equal(t, 1030016176);
	assert_false(mv_date_from_received("from x by y", &t));
}

static void test_headers(void **state)
{
	mv_parsed *p = parse("From: \"Jörg\" <Joerg@Example.org>\n"
	                     "To: a@x.org, Bob <B@Y.ORG>\nCc: c@z.org\n"
	                     "Subject: =?UTF-8?B?R3LDvMOfZQ==?= again\n"
	                     "Message-ID: <abc@host>\nDate: Thu, 22 Aug 2002 07:36:16 -0400\n\nhello body\n");
	assert_string_equal(p->subject, "Grüße again");
	assert_string_equal(p->from_addrs, "joerg@example.org");
	assert_string_equal(p->to_addrs, "a@x.org b@y.org");
	assert_string_equal(p->cc_addrs, "c@z.org");
	assert_string_equal(p->message_id, "abc@host");
	assert_int_equal(p->date, 1030016176);
	assert_int_equal(p->date_source, MV_DATE_FROM_HEADER);
	assert_non_null(strstr(p->text->str, "hello body"));
	assert_int_equal(p->flags & MV_PARSE_BAD_DATE, 0);
	mv_parsed_free(p);
}

static void test_date_fallbacks(void **state)
{
	mv_parsed *p = parse("Received: from a by b; Thu, 22 Aug 2002 12:36:16 +0100\nSubject: x\n\nbody\n");
	assert_int_equal(p->date_source, MV_DATE_FROM_RECEIVED);
	assert_int_equal(p->date, 1030016176);
	assert_true(p->flags & MV_PARSE_BAD_DATE);
	mv_parsed_free(p);
	p = parse("Subject: x\nDate: garbage\n\nbody\n");
	assert_int_equal(p->date_source, MV_DATE_FROM_ARCHIVE);
	assert_int_equal(p->date, 1000);
	mv_parsed_free(p);
}

static void test_multipart(void **state)
{
	mv_parsed *p = parse("Subject: m\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
	                     "--b1\nContent-Type: multipart/alternative; boundary=\"b2\"\n\n"
	                     "--b2\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
	                     "caf=E9 plain\n--b2\nContent-Type: text/html\n\n<p>html&amp;<b>bold</b></p><script>var x;</script>\n--b2--\n"
	                     "--b1\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"report.pdf\"\n"
	                     "Content-Transfer-Encoding: base64\n\nAAAA\n--b1\nContent-Type: message/rfc822\n\n"
	                     "Subject: inner subject\n\ninner body\n--b1--\n");
	assert_non_null(strstr(p->text->str, "café plain"));
	assert_non_null(strstr(p->text->str, "html&"));
	assert_non_null(strstr(p->text->str, "bold"));
	assert_null(strstr(p->text->str, "var x"));
	/* An attached message is attachment content, not the message's body. */
	assert_null(strstr(p->text->str, "inner body"));
	assert_non_null(strstr(p->attachment_names->str, "inner subject"));
	assert_non_null(strstr(p->attachment_names->str, "inner body"));
	assert_true(p->has_attachment);
	assert_non_null(strstr(p->attachment_names->str, "report.pdf"));
	assert_int_equal(p->flags & (MV_PARSE_BAD_MIME | MV_PARSE_TOO_DEEP), 0);
	mv_parsed_free(p);
}

static void test_truncated_mime(void **state)
{
	mv_parsed *p = parse("Subject: cut\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\npartial te");
	assert_true(p->flags & MV_PARSE_BAD_MIME);
	assert_string_equal(p->subject, "cut");
	mv_parsed_free(p);
}

static void test_deep_nesting(void **state)
{
	GString *s = g_string_new("Subject: deep\n");
	for (int i = 0; i < 5000; i++)
		g_string_append_printf(s, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
	g_string_append(s, "Content-Type: text/plain\n\nleaf\n");
	mv_parsed *p = mv_parse_message((const uint8_t *)s->str, s->len, 1);
	assert_true(p->flags & MV_PARSE_TOO_DEEP);
	assert_string_equal(p->subject, "deep");
	mv_parsed_free(p);
	g_string_free(s, TRUE);
}

static void test_garbage(void **state)
{
	const uint8_t junk[] = { 0, 1, 2, 0xff, 0xfe, '\n', 0, 'x' };
	mv_parsed *p = mv_parse_message(junk, sizeof junk, 5);
	assert_non_null(p->subject);
	assert_true(p->flags & MV_PARSE_NUL_BYTES);
	assert_int_equal(p->date, 5);
	mv_parsed_free(p);
	p = mv_parse_message((const uint8_t *)"", 0, 5);
	assert_string_equal(p->subject, "");
	mv_parsed_free(p);
	/* A recovered record may carry no body at all: no bytes, no pointer. */
	p = mv_parse_message(NULL, 0, 5);
	assert_string_equal(p->subject, "");
	assert_int_equal(p->date, 5);
	mv_parsed_free(p);
}

static void test_bad_charset(void **state)
{
	mv_parsed *p = parse("Subject: =?x-unknown-foo?Q?caf=E9?= plain\nContent-Type: text/plain; charset=x-bogus\n\nabc\xe9\xff def\n");
	assert_true(g_utf8_validate(p->subject, -1, NULL));
	assert_non_null(strstr(p->subject, "plain"));
	assert_true(g_utf8_validate(p->text->str, -1, NULL));
	assert_non_null(strstr(p->text->str, "def"));
	mv_parsed_free(p);
}

/* ---- groups in groups --------------------------------------------------------------
 * GMime 3.2.13 recurses once per group opened inside a group: 1 MiB of
 * "g: g: ..." in an address header overflowed the stack (SIGSEGV). */

/* "<field>: " + "g: " x levels (folded every fold_every levels if not 0),
 * then the rest of a message. */
static char *deep_groups_message(const char *field, int levels, int fold_every, const char *rest)
{
	GString *s = g_string_new(field);
	g_string_append(s, ": ");
	for (int i = 0; i < levels; i++) {
		g_string_append(s, "g: ");
		if (fold_every && i % fold_every == fold_every - 1)
			g_string_append(s, "\r\n\t");
	}
	g_string_append(s, rest);
	return g_string_free(s, FALSE);
}

static void test_deep_groups_archived(void **state)
{
	static const char *const fields[] = { "To", "Cc", "Bcc", "From", "Reply-To", "Sender", "Resent-To" };
	for (size_t i = 0; i <= G_N_ELEMENTS(fields); i++) {
		/* The last round: To again, folded into lines of 100 levels. */
		const char *field = i < G_N_ELEMENTS(fields) ? fields[i] : "To";
		char *msg = deep_groups_message(field, 350000, i < G_N_ELEMENTS(fields) ? 0 : 100,
		                                "\r\nSubject: x\r\n\r\nbody\r\n");
		assert_true(strlen(msg) > 1024 * 1024);
		char *before = g_strdup(msg);
		mv_parsed *p = parse(msg);
		assert_true(p->flags & MV_PARSE_BAD_MIME);
		assert_string_equal(p->subject, "x");
		assert_non_null(strstr(p->text->str, "body"));
		/* The parse had its own copy: the caller's bytes are unchanged. */
		assert_string_equal(msg, before);
		mv_parsed_free(p);
		g_free(before);
		g_free(msg);
	}
}

/* An attached message's headers are GMime's to parse as well. */
static void test_deep_groups_in_attached_message(void **state)
{
	char *inner = deep_groups_message("To", 350000, 0, "\r\nSubject: inner\r\n\r\ninner body\r\n");
	char *msg = g_strconcat("From: a@example.com\r\nTo: b@example.com\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
	                        "Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\n"
	                        "hi\r\n--BB\r\nContent-Type: message/rfc822\r\n\r\n", inner, "--BB--\r\n", NULL);
	mv_parsed *p = parse(msg);
	assert_true(p->flags & MV_PARSE_BAD_MIME);
	assert_string_equal(p->to_addrs, "b@example.com");
	assert_true(p->has_attachment);
	assert_non_null(strstr(p->attachment_names->str, "inner"));
	mv_parsed_free(p);
	g_free(msg);
	g_free(inner);
}

static int count_char(const char *s, char c)
{
	int n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

/* MV_MIME_MAX_ADDRESS_COLONS (128) groups deep is left to GMime as it is;
 * one more and the value is bounded (flagged): GMime saw 128 groups. */
static void test_deep_groups_bound(void **state)
{
	for (int levels = 127; levels <= 129; levels++) {
		GString *s = g_string_new("To: ");
		for (int i = 0; i < levels; i++)
			g_string_append(s, "g: ");
		g_string_append(s, "a@example.com");
		for (int i = 0; i < levels; i++)
			g_string_append_c(s, ';');
		g_string_append(s, "\nSubject: x\n\nbody\n");
		mv_parsed *p = parse(s->str);
		assert_int_equal(!!(p->flags & MV_PARSE_BAD_MIME), levels > 128);
		assert_int_equal(count_char(p->to, ':'), MIN(levels, 128));
		mv_parsed_free(p);
		g_string_free(s, TRUE);
	}
	/* Ordinary groups are untouched. */
	mv_parsed *p = parse("To: Friends: a@example.com, b@example.com;, c@example.com\nCc: undisclosed-recipients:;\n\nx\n");
	assert_int_equal(p->flags & MV_PARSE_BAD_MIME, 0);
	assert_string_equal(p->to_addrs, "a@example.com b@example.com c@example.com");
	mv_parsed_free(p);
}

/* ---- RFC 2047: every encoded-word decoded --------------------------------------
 * GMime 3.2.13 joins a run of B-words of one charset and its base64 decoder
 * stops at the first padding: everything after a padded word was lost. */

/* The Subject as the index (mv_parse_message) and a reader (the view's
 * subject and header list) see it. */
static void subject_is(const char *value, const char *want)
{
	char *msg = g_strdup_printf("From: a@x.org\nSubject:%s\n\nbody\n", value);
	mv_parsed *p = parse(msg);
	assert_string_equal(p->subject, want);
	mv_parsed_free(p);
	mv_message_view *v = mv_message_view_new((const uint8_t *)msg, strlen(msg));
	assert_string_equal(v->subject, want);
	const char *listed = NULL;
	for (guint i = 0; i + 1 < v->headers->len; i += 2) {
		if (strcmp(v->headers->pdata[i], "Subject") == 0)
			listed = v->headers->pdata[i + 1];
	}
	assert_non_null(listed);
	assert_string_equal(listed, want);
	mv_message_view_free(&v);
	g_free(msg);
}

static void test_rfc2047_iso2022jp_subject(void **state)
{
	/* SpamAssassin hard-ham-1/00042: three ISO-2022-JP words, the first padded. */
	subject_is(" =?iso-2022-jp?B?UmU6IBskQjswSSkyPTNYJSglcyU4JUslIiVqJXMlME1NJVcbKEI=?=\n"
	           "\t=?iso-2022-jp?B?GyRCJW0lOyU5JUAlJiVzJEskRCQkJEYbKEIgIC0gdGlja2V0ICM1NTYw?=\n"
	           "\t=?iso-2022-jp?B?Nk9UQzEgLQ==?=",
	           "Re: 三菱化学エンジニアリング様プロセスダウンについて  - ticket #55606OTC1 -");
	/* One shift state across words: 語 has no ESC $ B of its own in the
	 * second word, and then a character cut between two words. */
	subject_is(" =?ISO-2022-JP?B?GyRCRnxLXA==?= =?iso-2022-jp?B?OGwbKEI=?=", "日本語");
	subject_is(" =?iso-2022-jp?B?GyRCRnxLXDg=?=\r\n =?iso-2022-jp?b?bBsoQg==?= tail", "日本語 tail");
}

static void test_rfc2047_hostile_words(void **state)
{
	/* Text after the words is never lost. */
	subject_is(" =?utf-8?B?SGVsbG8=?= =?utf-8?B?IHdvcmxk?= and the rest", "Hello world and the rest");
	/* Adjacent words of different charsets, each padded. */
	subject_is(" =?iso-8859-1?B?Y2Fm6Q==?= =?utf-8?B?IGNhZsOp?= =?iso-8859-1?Q?_caf=E9?= =?utf-8?B?IGNhZsOp?=",
	           "café café café café");
	/* A UTF-8 character cut between words (b2LD | pHI=), and a quartet
	 * cut between words by a careless encoder. */
	subject_is(" =?utf-8?B?b2LD?= =?utf-8?B?pHI=?=", "obär");
	subject_is(" =?utf-8?B?5Lit5?=\n =?utf-8?B?paH?=", "中文");
	/* B and Q words of one charset, a character cut between them. */
	subject_is(" =?utf-8?B?w6k=?= =?utf-8?Q?=C3?= =?utf-8?B?qQ==?=", "éé");
	/* Bad base64: what cannot be decoded is skipped, the rest kept. */
	subject_is(" =?utf-8?B?!!!?= =?utf-8?B?b2s=?= =?utf-8?B?aGVs*bG8=?= =?utf-8?B?YQ==Yg==?= end", "okhelloab end");
	subject_is(" =?utf-8?B?aGVsbG8?= =?utf-8?B?=?= x", "hello x");
	/* Unknown charsets: every word still there. */
	subject_is(" =?x-unknown?B?YQ==?= =?x-unknown?B?Yg==?= =?utf-8?B?w6k=?= end", "abé end");
	/* Plain text, Q-words and malformed words pass through as before. */
	subject_is(" plain =?utf-8?Q?caf=C3=A9?= =?utf-8?X?abc?= =?B?abc?= =?utf-8?B?abc",
	           "plain café =?utf-8?X?abc?= =?B?abc?= =?utf-8?B?abc");
	/* Of several Subject headers the last counts, as in GMime. */
	subject_is(" first\nSubject: =?utf-8?B?YQ==?= =?utf-8?B?Yg==?=", "ab");
	/* A long run: one allocation-bounded rewrite, nothing dropped. */
	GString *v = g_string_new(NULL), *want = g_string_new(NULL);
	for (int i = 0; i < 2000; i++) {
		g_string_append(v, " =?utf-8?B?w6k=?=");
		g_string_append(want, "é");
	}
	subject_is(v->str, want->str);
	g_string_free(v, TRUE);
	g_string_free(want, TRUE);
}

static void test_rfc2047_names_and_files(void **state)
{
	const char *msg =
		"From: =?utf-8?B?SGVsbG8=?= =?utf-8?B?IHdvcmxk?= <Hello@X.org>, \"=?utf-8?B?w6k=?= =?utf-8?B?w6k=?=\" <e@x.org>\n"
		"To: =?iso-2022-jp?B?MTIx?=@host.jp, =?utf-8?B?R3LDvA==?= =?utf-8?B?w59l?= <g@x.org>\n"
		"Subject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
		"--b\nContent-Type: text/plain\n\nbody\n"
		"--b\nContent-Type: application/pdf; name=\"=?utf-8?B?YQ==?= =?utf-8?B?Yi5wZGY=?=\"\n"
		"Content-Transfer-Encoding: base64\n\nAAAA\n"
		"--b\nContent-Type: application/pdf\n"
		"Content-Disposition: attachment; filename=\"=?utf-8?B?Yw==?= =?utf-8?B?ZC5wZGY=?=\"\n\nAAAA\n"
		"--b\nContent-Type: message/rfc822\n\nSubject: =?utf-8?B?aW5uZXI=?= =?utf-8?B?IHN1YmplY3Q=?=\n\ninner\n"
		"--b--\n";
	mv_parsed *p = parse(msg);
	assert_string_equal(p->from, "Hello world <Hello@X.org>, éé <e@x.org>");
	assert_string_equal(p->from_addrs, "hello@x.org e@x.org");
	/* An encoded-word in an address stays as written (RFC 2047 §5). */
	assert_string_equal(p->to, "=?iso-2022-jp?B?MTIx?=@host.jp, Grüße <g@x.org>");
	assert_string_equal(p->to_addrs, "=?iso-2022-jp?b?mtix?=@host.jp g@x.org");
	assert_non_null(strstr(p->attachment_names->str, "ab.pdf"));
	assert_non_null(strstr(p->attachment_names->str, "cd.pdf"));
	assert_non_null(strstr(p->attachment_names->str, "inner subject"));
	mv_parsed_free(p);

	mv_message_view *v = mv_message_view_new((const uint8_t *)msg, strlen(msg));
	assert_string_equal(v->from, "Hello world <Hello@X.org>, éé <e@x.org>");
	assert_string_equal(v->to, "=?iso-2022-jp?B?MTIx?=@host.jp, Grüße <g@x.org>");
	assert_string_equal(v->headers->pdata[1], "Hello world <Hello@X.org>, \"éé\" <e@x.org>");
	assert_int_equal(v->attachments->len, 3);
	assert_string_equal(((mv_view_part *)v->attachments->pdata[0])->name, "ab.pdf");
	assert_string_equal(((mv_view_part *)v->attachments->pdata[1])->name, "cd.pdf");
	assert_string_equal(((mv_view_part *)v->attachments->pdata[2])->name, "inner subject.eml");
	/* The attached message downloads as written, not as rewritten. */
	GByteArray *data = NULL;
	assert_int_equal(mv_message_view_part_data(v, 3, &data, NULL), 0);
	assert_non_null(g_strstr_len((const char *)data->data, data->len, "=?utf-8?B?aW5uZXI=?="));
	g_byte_array_unref(data);
	mv_message_view_free(&v);
}

static void test_html_to_text(void **state)
{
	GString *out = g_string_new(NULL);
	const char *html = "<html><style>p{}</style><!-- c --><p>A&nbsp;&lt;b&gt; &#233;&#x41;</p>&bogus;</html>";
	mv_html_to_text(html, strlen(html), out, 1000);
	assert_non_null(strstr(out->str, "A <b> éA"));
	assert_non_null(strstr(out->str, "&bogus;"));
	assert_null(strstr(out->str, "p{}"));
	g_string_free(out, TRUE);
}

int main(void)
{
	mv_mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_normalize),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_time_text),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_date_fallbacks),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_truncated_mime),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_bad_charset),
		cmocka_unit_test(test_deep_groups_archived),
		cmocka_unit_test(test_deep_groups_in_attached_message),
		cmocka_unit_test(test_deep_groups_bound),
		cmocka_unit_test(test_rfc2047_iso2022jp_subject),
		cmocka_unit_test(test_rfc2047_hostile_words),
		cmocka_unit_test(test_rfc2047_names_and_files),
		cmocka_unit_test(test_html_to_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
