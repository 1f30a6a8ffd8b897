/* Unit tests for mime/view.c: what a reader sees of a message — header
 * fields decoded, the text with its lines, one version of an alternative,
 * attachments with names, sizes and Content-IDs, part bytes decoded, and
 * malformed input still giving a view. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mime/mime.h"

static mv_message_view *view(const char *text)
{
	return mv_message_view_new((const uint8_t *)text, strlen(text));
}

static void test_plain_lines_kept(void **state)
{
	mv_message_view *v = view("From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.com>\r\nTo: a@example.com, b@example.com\r\n"
	                          "Cc: c@example.com\r\nSubject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\nMessage-ID: <x@y>\r\n\r\n"
	                          "line one\r\nline two\r\n\r\nline four\r\n");
	assert_string_equal(v->subject, "Grüße");
	assert_non_null(strstr(v->from, "Jürgen"));
	assert_non_null(strstr(v->to, "b@example.com"));
	assert_string_equal(v->cc, "c@example.com");
	assert_string_equal(v->message_id, "x@y");
	assert_string_equal(v->text->str, "line one\nline two\n\nline four\n");
	assert_null(v->html);
	assert_int_equal(v->attachments->len, 0);
	/* Headers in order, decoded. */
	assert_string_equal(v->headers->pdata[0], "From");
	assert_string_equal(v->headers->pdata[6], "Subject");
	assert_string_equal(v->headers->pdata[7], "Grüße");
	mv_message_view_free(&v);
	assert_null(v);
}

static const char alternative_with_parts[] =
	"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=OUT\r\n\r\n"
	"--OUT\r\nContent-Type: multipart/alternative; boundary=ALT\r\n\r\n"
	"--ALT\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	"Hallo W=F6rld\r\nzweite Zeile\r\n"
	"--ALT\r\nContent-Type: multipart/related; boundary=REL\r\n\r\n"
	"--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hallo <img src=\"cid:logo@x\"></p>\r\n"
	"--REL\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	"iVBORw0KGgo=\r\n"
	"--REL--\r\n"
	"--ALT--\r\n"
	"--OUT\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; "
	"filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
	"--OUT\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
	"--OUT--\r\n";

static void test_alternative_and_attachments(void **state)
{
	mv_message_view *v = view(alternative_with_parts);
	assert_string_equal(v->text->str, "Hallo Wörld\nzweite Zeile"); /* the last CRLF belongs to the boundary */
	assert_non_null(v->html);
	assert_non_null(strstr(v->html->str, "cid:logo@x"));
	assert_int_equal(v->attachments->len, 3);
	const mv_view_part *logo = v->attachments->pdata[0], *pdf = v->attachments->pdata[1],
	                   *inner = v->attachments->pdata[2];
	assert_int_equal(logo->index, 1);
	assert_string_equal(logo->content_type, "image/png");
	assert_string_equal(logo->content_id, "logo@x");
	assert_true(logo->is_inline);
	assert_int_equal(logo->size, 8);
	assert_ptr_equal(mv_message_view_find_cid(v, "logo@x"), logo);
	assert_null(mv_message_view_find_cid(v, "other@x"));
	assert_string_equal(pdf->name, "report.pdf");
	assert_false(pdf->is_inline);
	assert_int_equal(pdf->size, 9);
	assert_string_equal(inner->name, "inner.eml");
	assert_string_equal(inner->content_type, "message/rfc822");
	GByteArray *data = NULL;
	GError *err = NULL;
	assert_int_equal(mv_message_view_part_data(v, 2, &data, &err), 0);
	assert_int_equal(data->len, 9);
	assert_memory_equal(data->data, "%PDF-1.4\n", 9);
	g_byte_array_unref(data);
	assert_int_equal(mv_message_view_part_data(v, 3, &data, &err), 0);
	assert_non_null(g_strstr_len((const char *)data->data, data->len, "inner body"));
	g_byte_array_unref(data);
	assert_int_equal(mv_message_view_part_data(v, 4, &data, &err), -1);
	assert_int_equal(err->code, MV_ERR_NOT_FOUND);
	g_clear_error(&err);
	assert_int_equal(mv_message_view_part_data(v, 0, &data, &err), -1);
	g_clear_error(&err);
	mv_message_view_free(&v);
}

/* No plain part: the text comes from the HTML, one line per block. */
static void test_html_only(void **state)
{
	mv_message_view *v = view("Subject: h\r\nContent-Type: text/html\r\n\r\n"
	                          "<html><body><p>first</p><p>second<br>third</p><script>x()</script></body></html>");
	assert_non_null(v->html);
	assert_non_null(strstr(v->text->str, "first"));
	assert_non_null(strstr(v->text->str, "\n"));
	assert_null(strstr(v->text->str, "x()"));
	gchar **lines = g_strsplit(v->text->str, "\n", -1);
	bool second_alone = false;
	for (gchar **l = lines; *l; l++)
		second_alone = second_alone || strcmp(g_strstrip(*l), "second") == 0;
	assert_true(second_alone);
	g_strfreev(lines);
	mv_message_view_free(&v);
}

static void test_malformed(void **state)
{
	mv_message_view *v = mv_message_view_new((const uint8_t *)"", 0);
	assert_string_equal(v->subject, "");
	mv_message_view_free(&v);
	v = view("\x01\x02 not mail at all \xff\xfe");
	assert_true(g_utf8_validate(v->text->str, -1, NULL));
	mv_message_view_free(&v);
	/* 10,000 nested multiparts: bounded, still a view. */
	GString *deep = g_string_new("Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
	for (int i = 1; i < 10000; i++)
		g_string_append_printf(deep, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i - 1, i);
	v = mv_message_view_new((const uint8_t *)deep->str, deep->len);
	assert_true(v->flags & MV_PARSE_TOO_DEEP);
	assert_string_equal(v->subject, "deep");
	mv_message_view_free(&v);
	g_string_free(deep, TRUE);
	/* A CR-only and a charset nobody knows. */
	v = view("Subject: x\r\nContent-Type: text/plain; charset=x-unknown-cs\r\n\r\na\rb\r\n");
	assert_string_equal(v->text->str, "a\nb\n");
	mv_message_view_free(&v);
}

/* GMime 3.2.13 recurses once per group inside a group: 1 MiB of
 * "g: g: ..." in To overflowed the stack (SIGSEGV) in the view as in the
 * import; the view and the body text must come through it. */
static void test_deep_groups(void **state)
{
	GString *s = g_string_new("To: ");
	for (int i = 0; i < 350000; i++)
		g_string_append(s, "g: ");
	g_string_append(s, "\r\nSubject: x\r\n\r\nbody\r\n");
	mv_message_view *v = mv_message_view_new((const uint8_t *)s->str, s->len);
	assert_true(v->flags & MV_PARSE_BAD_MIME);
	assert_string_equal(v->subject, "x");
	assert_string_equal(v->text->str, "body\n");
	mv_message_view_free(&v);
	GString *text = g_string_new(NULL);
	/* Asked for enough text that the whole message is parsed. */
	mv_message_body_text((const uint8_t *)s->str, s->len, s->len, text);
	assert_non_null(strstr(text->str, "body"));
	g_string_free(text, TRUE);
	g_string_free(s, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_lines_kept),
		cmocka_unit_test(test_alternative_and_attachments),
		cmocka_unit_test(test_html_only),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_deep_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
