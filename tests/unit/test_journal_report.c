/* test_journal_report: Exchange envelope journal reports (mime/journal_report.c)
 * built by hand in the documented format — the envelope lines of
 * "Understanding Journal Reports" (Exchange 2007/2010) in a multipart/mixed
 * wrapper with the original as message/rfc822 — and taken apart again.
 *
 * The original must come back byte-exact: it is compared with the bytes
 * embedded, for a CRLF and an LF wrapper and with 8-bit bytes in it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime.h"

#include <string.h>

#define BOUNDARY "_000_jr_boundary_"

/* Text with '\n' written with eol. */
static void append_lines(GByteArray *out, const char *text, const char *eol)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\n')
			g_byte_array_append(out, (const guint8 *)eol, (guint)strlen(eol));
		else
			g_byte_array_append(out, (const guint8 *)p, 1);
	}
}

/* A journal report: the wrapper's header (with X-MS-Journal-Report when
 * marked), the report part with its header and text, the original part
 * with its header (NULL: no second part) and raw bytes. */
typedef struct sample {
	const char *eol;
	bool marked;
	const char *report_headers;
	const char *report_text;
	const char *original_headers;
	const uint8_t *original;
	size_t original_len;
} sample;

static GByteArray *build(const sample *s)
{
	GByteArray *out = g_byte_array_new();
	append_lines(out, "From: Microsoft Exchange <journal@contoso.com>\nTo: archive@contoso.com\n", s->eol);
	append_lines(out, "Subject: Quarterly figures\nMessage-ID: <jr-1@contoso.com>\n", s->eol);
	if (s->marked)
		append_lines(out, "X-MS-Journal-Report: \n", s->eol);
	append_lines(out, "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n\tboundary=\"" BOUNDARY "\"\n\n", s->eol);
	append_lines(out, "This is a multi-part message in MIME format.\n--" BOUNDARY "\n", s->eol);
	append_lines(out, s->report_headers, s->eol);
	append_lines(out, "\n", s->eol);
	append_lines(out, s->report_text, s->eol);
	if (s->original_headers) {
		append_lines(out, "\n--" BOUNDARY "\n", s->eol);
		append_lines(out, s->original_headers, s->eol);
		append_lines(out, "\n", s->eol);
		g_byte_array_append(out, s->original, (guint)s->original_len);
	}
	append_lines(out, "\n--" BOUNDARY "--\n", s->eol);
	return out;
}

static const char PLAIN[] = "Content-Type: text/plain; charset=\"us-ascii\"\nContent-Transfer-Encoding: 7bit\n";
static const char RFC822[] = "Content-Type: message/rfc822\n";

/* An original with CRLF line ends and 8-bit bytes (Latin-1 in the subject
 * and body), a nested multipart, and a line that starts like the wrapper's
 * delimiter but is longer: none of it may be touched or cut. */
static const char ORIGINAL_CRLF[] =
	"Received: from mail.contoso.com by hub.contoso.com; Mon, 1 Apr 2024 10:00:00 +0000\r\n"
	"From: Alice <alice@contoso.com>\r\n"
	"To: bob@contoso.com\r\n"
	"Subject: Gr\xfc\xdf\x65 \xe4\xf6\r\n"
	"Message-ID: <orig-1@contoso.com>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"Sch\xf6ne Gr\xfc\xdf\x65\r\n"
	"--" BOUNDARY "X is not the wrapper's delimiter\r\n"
	"--inner--\r\n";

static const char ORIGINAL_LF[] = "From: Alice <alice@contoso.com>\n"
                                  "To: bob@contoso.com\n"
                                  "Subject: plain\n"
                                  "\n"
                                  "8-bit: \xc3\xa4\xc3\xb6\n"
                                  "last line without line end";

static const char ENVELOPE_TO_CC[] = "Sender: alice@contoso.com\n"
                                     "Subject: Gr\xc3\xbc\xc3\x9f\x65\n"
                                     "Message-Id: <orig-1@contoso.com>\n"
                                     "To: bob@contoso.com\n"
                                     "Cc: carol@fabrikam.com\n";

static void parse_sample(const sample *s, GByteArray **wrapper, mv_ms_journal_report *r)
{
	*wrapper = build(s);
	mv_ms_journal_report_parse((*wrapper)->data, (*wrapper)->len, r);
}

static void assert_original(const mv_ms_journal_report *r, const GByteArray *wrapper, const char *original,
                            size_t original_len)
{
	size_t n;
	const uint8_t *got = mv_ms_journal_report_original(r, wrapper->data, &n);
	assert_true(r->has_original);
	assert_non_null(got);
	assert_int_equal(n, original_len);
	assert_memory_equal(got, original, original_len);
}

static void assert_recipient(const mv_ms_journal_report *r, size_t i, mv_ms_journal_kind kind, const char *address,
                             const char *expanded_from, const char *forwarded_from)
{
	assert_true(i < r->n_recipients);
	const mv_ms_journal_recipient *rc = &r->recipients[i];
	assert_int_equal(rc->kind, kind);
	assert_string_equal(rc->address, address);
	if (expanded_from)
		assert_string_equal(rc->expanded_from, expanded_from);
	else
		assert_null(rc->expanded_from);
	assert_int_equal(rc->forwarded, forwarded_from != NULL);
	if (forwarded_from)
		assert_string_equal(rc->forwarded_from, forwarded_from);
	else
		assert_null(rc->forwarded_from);
}

static void test_plain_to_cc(void **state)
{
	(void)state;
	sample s = {"\r\n", true, PLAIN, ENVELOPE_TO_CC, RFC822, (const uint8_t *)ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_true(r.is_journal_report);
	assert_int_equal(r.flags, 0);
	assert_null(r.problem);
	assert_string_equal(r.sender, "alice@contoso.com");
	assert_string_equal(r.subject, "Gr\xc3\xbc\xc3\x9f\x65");
	assert_string_equal(r.message_id, "<orig-1@contoso.com>");
	assert_int_equal(r.n_recipients, 2);
	assert_recipient(&r, 0, MV_MS_JOURNAL_TO, "bob@contoso.com", NULL, NULL);
	assert_recipient(&r, 1, MV_MS_JOURNAL_CC, "carol@fabrikam.com", NULL, NULL);
	/* The range is inside the wrapper, not a copy. */
	assert_null(r.original_decoded);
	assert_true(r.original_offset + r.original_len <= w->len);
	assert_original(&r, w, ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_original_lf_exact(void **state)
{
	(void)state;
	sample s = {"\n", true, PLAIN, ENVELOPE_TO_CC, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_original(&r, w, ORIGINAL_LF, sizeof ORIGINAL_LF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
	/* The CRLF original in an LF wrapper: still its own bytes. */
	s.original = (const uint8_t *)ORIGINAL_CRLF;
	s.original_len = sizeof ORIGINAL_CRLF - 1;
	parse_sample(&s, &w, &r);
	assert_original(&r, w, ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_bcc_and_recipient(void **state)
{
	(void)state;
	const char *env = "Sender: alice@contoso.com\nSubject: secret\nMessage-Id: <b@contoso.com>\n"
	                  "To: bob@contoso.com\nBcc: <boss@contoso.com>\nRecipient: ext@fabrikam.com\n"
	                  "On-Behalf-Of: assistant@contoso.com\nX-Future-Field: passed over\n";
	sample s = {"\r\n", true, PLAIN, env, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_recipients, 3);
	assert_recipient(&r, 0, MV_MS_JOURNAL_TO, "bob@contoso.com", NULL, NULL);
	assert_recipient(&r, 1, MV_MS_JOURNAL_BCC, "boss@contoso.com", NULL, NULL);
	assert_recipient(&r, 2, MV_MS_JOURNAL_RECIPIENT, "ext@fabrikam.com", NULL, NULL);
	assert_string_equal(r.on_behalf_of, "assistant@contoso.com");
	assert_string_equal(mv_ms_journal_kind_name(r.recipients[1].kind), "Bcc");
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_expanded_group(void **state)
{
	(void)state;
	/* The documents' form: the member delivered to, then the group. */
	const char *env = "Sender: alice@contoso.com\nSubject: all hands\nMessage-Id: <e@contoso.com>\n"
	                  "To: sales@contoso.com\n"
	                  "To: dan@contoso.com, Expanded: sales@contoso.com\n"
	                  "To: erin@contoso.com, Expanded: sales@contoso.com\n"
	                  "Bcc: frank@contoso.com,Expanded:board@contoso.com\n";
	sample s = {"\r\n", true, PLAIN, env, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_recipients, 4);
	assert_recipient(&r, 0, MV_MS_JOURNAL_TO, "sales@contoso.com", NULL, NULL);
	assert_recipient(&r, 1, MV_MS_JOURNAL_TO, "dan@contoso.com", "sales@contoso.com", NULL);
	assert_recipient(&r, 2, MV_MS_JOURNAL_TO, "erin@contoso.com", "sales@contoso.com", NULL);
	assert_recipient(&r, 3, MV_MS_JOURNAL_BCC, "frank@contoso.com", "board@contoso.com", NULL);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_forwarded(void **state)
{
	(void)state;
	const char *env = "Sender: alice@contoso.com\nSubject: fwd\nMessage-Id: <f@contoso.com>\n"
	                  "Cc: delegate@contoso.com, Forwarded: bob@contoso.com\n"
	                  "To: a@contoso.com, b@contoso.com\n";
	sample s = {"\n", true, PLAIN, env, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_recipients, 3);
	assert_recipient(&r, 0, MV_MS_JOURNAL_CC, "delegate@contoso.com", NULL, "bob@contoso.com");
	assert_recipient(&r, 1, MV_MS_JOURNAL_TO, "a@contoso.com", NULL, NULL);
	assert_recipient(&r, 2, MV_MS_JOURNAL_TO, "b@contoso.com", NULL, NULL);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_quoted_printable_report(void **state)
{
	(void)state;
	/* A soft line break inside an address, a Latin-1 subject. */
	const char *qp = "Sender: alice@contoso.com\nSubject: Gr=FC=DFe\nMessage-Id: <q@contoso.com>\n"
	                 "To: bob@con=\ntoso.com\nBcc: carol=40contoso.com\n";
	sample s = {"\r\n", true,
	            "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n", qp,
	            RFC822, (const uint8_t *)ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_string_equal(r.subject, "Gr\xc3\xbc\xc3\x9f\x65");
	assert_int_equal(r.n_recipients, 2);
	assert_recipient(&r, 0, MV_MS_JOURNAL_TO, "bob@contoso.com", NULL, NULL);
	assert_recipient(&r, 1, MV_MS_JOURNAL_BCC, "carol@contoso.com", NULL, NULL);
	assert_original(&r, w, ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

/* base64 in lines of 76, as a mailer writes it. */
static char *base64_lines(const char *text, size_t len)
{
	char *flat = g_base64_encode((const guchar *)text, len);
	GString *out = g_string_new(NULL);
	for (size_t i = 0, n = strlen(flat); i < n; i += 76) {
		g_string_append_len(out, flat + i, (gssize)MIN(76, n - i));
		g_string_append_c(out, '\n');
	}
	g_free(flat);
	return g_string_free(out, FALSE);
}

static void test_base64_report(void **state)
{
	(void)state;
	const char *env = "Sender: alice@contoso.com\r\nSubject: b64\r\nMessage-Id: <b64@contoso.com>\r\n"
	                  "To: dan@contoso.com, Expanded: sales@contoso.com\r\nBcc: boss@contoso.com\r\n";
	char *b64 = base64_lines(env, strlen(env));
	sample s = {"\r\n", true, "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n", b64,
	            RFC822, (const uint8_t *)ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_string_equal(r.message_id, "<b64@contoso.com>");
	assert_int_equal(r.n_recipients, 2);
	assert_recipient(&r, 0, MV_MS_JOURNAL_TO, "dan@contoso.com", "sales@contoso.com", NULL);
	assert_recipient(&r, 1, MV_MS_JOURNAL_BCC, "boss@contoso.com", NULL, NULL);
	assert_original(&r, w, ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
	g_free(b64);
}

static void test_html_report(void **state)
{
	(void)state;
	const char *html = "<html><head><style>p{margin:0}</style></head><body>\n"
	                   "<p>Sender: alice@contoso.com</p><p>Subject: R&amp;D</p>\n"
	                   "<p>Message-Id: &lt;h@contoso.com&gt;</p><p>To: bob@contoso.com</p>"
	                   "<p>Bcc: carol@contoso.com</p></body></html>\n";
	sample s = {"\r\n", true, "Content-Type: text/html; charset=us-ascii\n", html, RFC822,
	            (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, 0);
	assert_string_equal(r.subject, "R&D");
	assert_string_equal(r.message_id, "<h@contoso.com>");
	assert_int_equal(r.n_recipients, 2);
	assert_recipient(&r, 1, MV_MS_JOURNAL_BCC, "carol@contoso.com", NULL, NULL);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_encoded_original_decoded(void **state)
{
	(void)state;
	char *b64 = base64_lines(ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	sample s = {"\r\n", true, PLAIN, ENVELOPE_TO_CC, "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n",
	            (const uint8_t *)b64, strlen(b64)};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, MV_MS_JOURNAL_ORIGINAL_DECODED);
	assert_null(r.problem);
	assert_non_null(r.original_decoded);
	assert_original(&r, w, ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
	g_free(b64);
}

static void test_not_a_report(void **state)
{
	(void)state;
	sample s = {"\r\n", false, PLAIN, ENVELOPE_TO_CC, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_false(r.is_journal_report);
	assert_int_equal(r.n_recipients, 0);
	assert_false(r.has_original);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
	/* The field in the body (here: in the original's header) is no mark. */
	const char *inner = "From: a@b\nSubject: x\n\nX-MS-Journal-Report: \n";
	assert_false(mv_ms_journal_report_parse((const uint8_t *)inner, strlen(inner), &r));
	mv_ms_journal_report_clear(&r);
	/* Also not when it is only a prefix of another field's name. */
	const char *other = "X-MS-Journal-Report-Id: 1\nSubject: x\n\nbody\n";
	assert_false(mv_ms_journal_report_parse((const uint8_t *)other, strlen(other), &r));
	mv_ms_journal_report_clear(&r);
}

static void test_no_second_part(void **state)
{
	(void)state;
	sample s = {"\r\n", true, PLAIN, ENVELOPE_TO_CC, NULL, NULL, 0};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_true(r.is_journal_report);
	assert_true(r.flags & MV_MS_JOURNAL_NO_ORIGINAL);
	assert_non_null(r.problem);
	assert_false(r.has_original);
	size_t n = 1;
	assert_null(mv_ms_journal_report_original(&r, w->data, &n));
	assert_int_equal(n, 0);
	/* The envelope is still read. */
	assert_string_equal(r.sender, "alice@contoso.com");
	assert_int_equal(r.n_recipients, 2);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
}

static void test_malformed_bodies(void **state)
{
	(void)state;
	mv_ms_journal_report r;
	const char *single = "X-MS-Journal-Report:\nContent-Type: text/plain\n\nSender: a@b\n";
	assert_true(mv_ms_journal_report_parse((const uint8_t *)single, strlen(single), &r));
	assert_true(r.flags & MV_MS_JOURNAL_NOT_MULTIPART);
	assert_true(r.flags & MV_MS_JOURNAL_NO_ORIGINAL);
	assert_false(r.has_original);
	mv_ms_journal_report_clear(&r);

	const char *no_close = "X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nSender: a@b\n"
	                       "To: c@d\n--b\nContent-Type: message/rfc822\n\nFrom: x@y\n\nbody";
	assert_true(mv_ms_journal_report_parse((const uint8_t *)no_close, strlen(no_close), &r));
	assert_int_equal(r.flags, MV_MS_JOURNAL_UNTERMINATED);
	size_t n;
	const uint8_t *o = mv_ms_journal_report_original(&r, (const uint8_t *)no_close, &n);
	assert_int_equal(n, strlen("From: x@y\n\nbody"));
	assert_memory_equal(o, "From: x@y\n\nbody", n);
	mv_ms_journal_report_clear(&r);

	const char *wrong = "X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nSender: a@b\n"
	                    "garbage line\nTo: , Expanded: dl@d\n--b\nContent-Type: application/octet-stream\n\nxx\n--b--\n";
	assert_true(mv_ms_journal_report_parse((const uint8_t *)wrong, strlen(wrong), &r));
	assert_true(r.flags & MV_MS_JOURNAL_BAD_LINE);
	assert_true(r.flags & MV_MS_JOURNAL_NO_ORIGINAL);
	assert_false(r.has_original);
	assert_int_equal(r.n_recipients, 0);
	mv_ms_journal_report_clear(&r);
}

static void test_recipient_bound(void **state)
{
	(void)state;
	GString *env = g_string_new("Sender: a@contoso.com\n");
	for (unsigned i = 0; i < MV_MS_JOURNAL_MAX_RECIPIENTS + 5; i++)
		g_string_append_printf(env, "Bcc: r%u@contoso.com\n", i);
	sample s = {"\n", true, PLAIN, env->str, RFC822, (const uint8_t *)ORIGINAL_LF, sizeof ORIGINAL_LF - 1};
	GByteArray *w;
	mv_ms_journal_report r;
	parse_sample(&s, &w, &r);
	assert_int_equal(r.flags, MV_MS_JOURNAL_TOO_MANY_RECIPIENTS);
	assert_int_equal(r.n_recipients, MV_MS_JOURNAL_MAX_RECIPIENTS);
	assert_original(&r, w, ORIGINAL_LF, sizeof ORIGINAL_LF - 1);
	mv_ms_journal_report_clear(&r);
	g_byte_array_free(w, TRUE);
	g_string_free(env, TRUE);
}

/* Every prefix of a report: a range, when there is one, lies inside it. */
static void test_every_prefix(void **state)
{
	(void)state;
	sample s = {"\r\n", true, PLAIN, ENVELOPE_TO_CC, RFC822, (const uint8_t *)ORIGINAL_CRLF, sizeof ORIGINAL_CRLF - 1};
	GByteArray *w = build(&s);
	unsigned reports = 0;
	for (size_t n = 0; n <= w->len; n++) {
		uint8_t *copy = g_memdup2(w->data, n);
		mv_ms_journal_report r;
		reports += mv_ms_journal_report_parse(copy, n, &r);
		if (r.has_original && !r.original_decoded)
			assert_true(r.original_offset + r.original_len <= n);
		mv_ms_journal_report_clear(&r);
		g_free(copy);
	}
	assert_true(reports > 0);
	g_byte_array_free(w, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_to_cc),
		cmocka_unit_test(test_original_lf_exact),
		cmocka_unit_test(test_bcc_and_recipient),
		cmocka_unit_test(test_expanded_group),
		cmocka_unit_test(test_forwarded),
		cmocka_unit_test(test_quoted_printable_report),
		cmocka_unit_test(test_base64_report),
		cmocka_unit_test(test_html_report),
		cmocka_unit_test(test_encoded_original_decoded),
		cmocka_unit_test(test_not_a_report),
		cmocka_unit_test(test_no_second_part),
		cmocka_unit_test(test_malformed_bodies),
		cmocka_unit_test(test_recipient_bound),
		cmocka_unit_test(test_every_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
