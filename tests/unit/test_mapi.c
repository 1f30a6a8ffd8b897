/* The property model and the one MAPI-to-MIME converter: items built by
 * hand, the output read back with GMime. */
#include "mime/internal.h"
#include "mime/mapi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void set_unicode(mv_mapi_props *props, uint16_t id, const char *utf8)
{
	glong n = 0;
	gunichar2 *u = g_utf8_to_utf16(utf8, -1, NULL, &n, NULL);
	mv_mapi_props_set(props, MV_TAG(id, MV_PT_UNICODE), u, (size_t)n * 2 + 2); /* with its NUL, as files store it */
	g_free(u);
}

static void set_string8(mv_mapi_props *props, uint16_t id, const char *bytes)
{
	mv_mapi_props_set(props, MV_TAG(id, MV_PT_STRING8), bytes, strlen(bytes));
}

static void set_long(mv_mapi_props *props, uint16_t id, int32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	mv_mapi_props_set(props, MV_TAG(id, MV_PT_LONG), b, 4);
}

static void set_time(mv_mapi_props *props, uint16_t id, int64_t unix_seconds)
{
	uint64_t ft = (uint64_t)unix_seconds * 10000000ull + 116444736000000000ull;
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(ft >> (8 * i));
	mv_mapi_props_set(props, MV_TAG(id, MV_PT_SYSTIME), b, 8);
}

static mv_mapi_props *recipient(const char *name, const char *smtp, int type)
{
	mv_mapi_props *r = mv_mapi_props_new();
	set_unicode(r, MV_PID_DISPLAY_NAME, name);
	set_unicode(r, MV_PID_SMTP_ADDRESS, smtp);
	set_long(r, MV_PID_RECIPIENT_TYPE, type);
	return r;
}

static mv_mapi_message *sample_mail(void)
{
	mv_mapi_message *m = mv_mapi_message_new();
	set_unicode(m->props, MV_PID_MESSAGE_CLASS, "IPM.Note");
	set_unicode(m->props, MV_PID_SUBJECT, "Quarterly figures – Grüße");
	set_unicode(m->props, MV_PID_SENT_REPRESENTING_NAME, "Alice Example");
	set_unicode(m->props, MV_PID_SENT_REPRESENTING_SMTP, "alice@example.com");
	set_time(m->props, MV_PID_CLIENT_SUBMIT_TIME, 1700000000);
	set_unicode(m->props, MV_PID_INTERNET_MESSAGE_ID, "<q3@example.com>");
	set_unicode(m->props, MV_PID_IN_REPLY_TO, "<q2@example.com>");
	set_unicode(m->props, MV_PID_BODY, "The plain body with zebracorn.\r\n");
	g_ptr_array_add(m->recipients, recipient("Bob", "bob@example.com", 1));
	g_ptr_array_add(m->recipients, recipient("Carol", "carol@example.com", 2));
	g_ptr_array_add(m->recipients, recipient("Dave Hidden", "dave@example.com", 3));
	return m;
}

static void add_file(mv_mapi_message *m, const char *name, const char *data, const char *cid)
{
	mv_mapi_attachment *a = mv_mapi_attachment_new();
	set_long(a->props, MV_PID_ATTACH_METHOD, MV_ATTACH_BY_VALUE);
	set_unicode(a->props, MV_PID_ATTACH_LONG_FILENAME, name);
	mv_mapi_props_set(a->props, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), data, strlen(data));
	if (cid)
		set_unicode(a->props, MV_PID_ATTACH_CONTENT_ID, cid);
	g_ptr_array_add(m->attachments, a);
}

static GByteArray *convert(const mv_mapi_message *m)
{
	GByteArray *out = g_byte_array_new();
	GError *err = NULL;
	assert_int_equal(mv_mapi_to_mime(m, out, &err), 0);
	assert_null(err);
	return out;
}

static GMimeMessage *parse(GByteArray *bytes)
{
	unsigned flags = 0;
	GMimeMessage *msg = mv_mime_construct(bytes->data, bytes->len, &flags);
	assert_non_null(msg);
	assert_int_equal(flags & (MV_PARSE_BAD_MIME | MV_PARSE_NO_HEADERS), 0);
	return msg;
}

static char *addresses(GMimeMessage *msg, GMimeAddressType type)
{
	return internet_address_list_to_string(g_mime_message_get_addresses(msg, type), NULL, FALSE);
}

static void test_props(void **state)
{
	mv_mapi_props *p = mv_mapi_props_new();
	set_unicode(p, 0x0037, "Hi");
	set_string8(p, 0x0E04, "Caf\xe9");
	set_long(p, 0x0017, -2);
	char *s = mv_mapi_props_string(p, 0x0037, 0);
	assert_string_equal(s, "Hi"); /* the stored NUL is not part of it */
	g_free(s);
	s = mv_mapi_props_string(p, 0x0E04, 1252);
	assert_string_equal(s, "Café");
	g_free(s);
	int32_t v = 0;
	assert_true(mv_mapi_props_int32(p, 0x0017, &v));
	assert_int_equal(v, -2);
	assert_null(mv_mapi_props_string(p, 0x1000, 0));
	assert_false(mv_mapi_props_time(p, 0x0039, &(int64_t){ 0 }));
	assert_string_equal(mv_codepage_charset(932), "SHIFT_JIS");
	assert_string_equal(mv_codepage_charset(4242), "WINDOWS-1252");
	mv_mapi_props_free(p);
}

static void test_built_headers(void **state)
{
	mv_mapi_message *m = sample_mail();
	GByteArray *out = convert(m);
	GMimeMessage *msg = parse(out);
	assert_string_equal(g_mime_message_get_subject(msg), "Quarterly figures – Grüße");
	char *from = addresses(msg, GMIME_ADDRESS_TYPE_FROM);
	assert_string_equal(from, "Alice Example <alice@example.com>");
	char *to = addresses(msg, GMIME_ADDRESS_TYPE_TO), *cc = addresses(msg, GMIME_ADDRESS_TYPE_CC),
	     *bcc = addresses(msg, GMIME_ADDRESS_TYPE_BCC);
	assert_string_equal(to, "Bob <bob@example.com>");
	assert_string_equal(cc, "Carol <carol@example.com>");
	/* Bcc often exists only in the PST: it is kept. */
	assert_string_equal(bcc, "Dave Hidden <dave@example.com>");
	assert_string_equal(g_mime_message_get_message_id(msg), "q3@example.com");
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(msg), "In-Reply-To"), "<q2@example.com>");
	GDateTime *dt = g_mime_message_get_date(msg);
	assert_non_null(dt);
	assert_int_equal(g_date_time_to_unix(dt), 1700000000);
	/* Header lines are 7-bit: the subject is RFC 2047 encoded. */
	const char *end = g_strstr_len((const char *)out->data, (gssize)out->len, "\r\n\r\n");
	assert_non_null(end);
	for (const uint8_t *p = out->data; p < (const uint8_t *)end; p++)
		assert_true(*p < 0x80);
	mv_parsed *parsed = mv_parse_message(out->data, out->len, 0);
	assert_non_null(strstr(parsed->text->str, "zebracorn"));
	mv_parsed_free(parsed);
	g_free(from);
	g_free(to);
	g_free(cc);
	g_free(bcc);
	g_object_unref(msg);
	g_byte_array_unref(out);
	mv_mapi_message_free(m);
}

static void test_transport_headers(void **state)
{
	mv_mapi_message *m = sample_mail();
	set_unicode(m->props, MV_PID_TRANSPORT_HEADERS,
	            "Received: from mx.example.com\r\n\tby us; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	            "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: As sent\r\n"
	            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <q3@example.com>\r\n"
	            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"old\"\r\n"
	            "Content-Transfer-Encoding: 7bit\r\n\r\n");
	GByteArray *out = convert(m);
	const char *text = (const char *)out->data;
	assert_true(g_str_has_prefix(text, "Received: from mx.example.com\r\n\tby us;"));
	/* The original's MIME fields described a body that is rebuilt. */
	assert_null(g_strstr_len(text, (gssize)out->len, "boundary=\"old\""));
	assert_null(g_strstr_len(text, (gssize)out->len, "7bit"));
	GMimeMessage *msg = parse(out);
	assert_string_equal(g_mime_message_get_subject(msg), "As sent");
	g_object_unref(msg);
	g_byte_array_unref(out);
	mv_mapi_message_free(m);
}

static void test_structure(void **state)
{
	mv_mapi_message *m = sample_mail();
	mv_mapi_props_set(m->props, MV_TAG(MV_PID_HTML, MV_PT_BINARY), "<p>Hi <img src=\"cid:logo@x\"></p>", 33);
	add_file(m, "logo.png", "PNGDATA", "logo@x");
	add_file(m, "report.csv", "a,b\n1,2\n", NULL);
	mv_mapi_attachment *emb = mv_mapi_attachment_new();
	set_long(emb->props, MV_PID_ATTACH_METHOD, MV_ATTACH_EMBEDDED_MSG);
	emb->embedded = mv_mapi_message_new();
	set_unicode(emb->embedded->props, MV_PID_SUBJECT, "The inner one");
	set_unicode(emb->embedded->props, MV_PID_BODY, "inner body");
	g_ptr_array_add(m->attachments, emb);
	GByteArray *out = convert(m);
	GMimeMessage *msg = parse(out);
	GMimeObject *top = g_mime_message_get_mime_part(msg);
	assert_true(GMIME_IS_MULTIPART(top));
	GMimeMultipart *mixed = GMIME_MULTIPART(top);
	assert_string_equal(g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(top)), "mixed");
	assert_int_equal(g_mime_multipart_get_count(mixed), 3); /* related body, the CSV, the message */
	GMimeObject *related = g_mime_multipart_get_part(mixed, 0);
	assert_string_equal(g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(related)), "related");
	GMimeObject *logo = g_mime_multipart_get_part(GMIME_MULTIPART(related), 1);
	assert_string_equal(g_mime_object_get_content_id(logo), "logo@x");
	GMimeObject *csv = g_mime_multipart_get_part(mixed, 1);
	assert_string_equal(g_mime_part_get_filename(GMIME_PART(csv)), "report.csv");
	char *csv_type = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(csv));
	assert_string_equal(csv_type, "text/csv");
	g_free(csv_type);
	GMimeObject *inner = g_mime_multipart_get_part(mixed, 2);
	assert_true(GMIME_IS_MESSAGE_PART(inner));
	GMimeMessage *im = g_mime_message_part_get_message(GMIME_MESSAGE_PART(inner));
	assert_string_equal(g_mime_message_get_subject(im), "The inner one");
	assert_int_equal(m->damage->len, 0);
	g_object_unref(msg);
	g_byte_array_unref(out);
	mv_mapi_message_free(m);
}

/* The same item gives the same bytes, whatever order its properties were
 * read in: a second import of a PST stores nothing. */
static void test_deterministic(void **state)
{
	mv_mapi_message *a = sample_mail();
	add_file(a, "x.txt", "one", NULL);
	add_file(a, "y.txt", "two", NULL);
	mv_mapi_message *b = mv_mapi_message_new();
	set_unicode(b->props, MV_PID_BODY, "The plain body with zebracorn.\r\n");
	set_unicode(b->props, MV_PID_IN_REPLY_TO, "<q2@example.com>");
	set_unicode(b->props, MV_PID_INTERNET_MESSAGE_ID, "<q3@example.com>");
	set_time(b->props, MV_PID_CLIENT_SUBMIT_TIME, 1700000000);
	set_unicode(b->props, MV_PID_SENT_REPRESENTING_SMTP, "alice@example.com");
	set_unicode(b->props, MV_PID_SENT_REPRESENTING_NAME, "Alice Example");
	set_unicode(b->props, MV_PID_SUBJECT, "Quarterly figures – Grüße");
	set_unicode(b->props, MV_PID_MESSAGE_CLASS, "IPM.Note");
	g_ptr_array_add(b->recipients, recipient("Bob", "bob@example.com", 1));
	g_ptr_array_add(b->recipients, recipient("Carol", "carol@example.com", 2));
	g_ptr_array_add(b->recipients, recipient("Dave Hidden", "dave@example.com", 3));
	add_file(b, "x.txt", "one", NULL);
	add_file(b, "y.txt", "two", NULL);
	GByteArray *x = convert(a), *y = convert(b), *z = convert(a);
	assert_int_equal(x->len, y->len);
	assert_memory_equal(x->data, y->data, x->len);
	assert_memory_equal(x->data, z->data, x->len);
	/* A different attachment makes different bytes, boundaries included. */
	add_file(b, "z.txt", "three", NULL);
	GByteArray *w = convert(b);
	assert_true(w->len != x->len || memcmp(w->data, x->data, x->len) != 0);
	g_byte_array_unref(x);
	g_byte_array_unref(y);
	g_byte_array_unref(z);
	g_byte_array_unref(w);
	mv_mapi_message_free(a);
	mv_mapi_message_free(b);
}

static void test_exchange_and_display_fallbacks(void **state)
{
	mv_mapi_message *m = mv_mapi_message_new();
	set_string8(m->props, MV_PID_SUBJECT, "ansi \xe9t\xe9");
	m->codepage = 1252;
	set_string8(m->props, MV_PID_SENDER_NAME, "Lokay, Michelle");
	set_string8(m->props, MV_PID_SENDER_EMAIL, "/O=ENRON/OU=NA/CN=RECIPIENTS/CN=MLOKAY");
	set_string8(m->props, MV_PID_DISPLAY_TO, "bob@example.com");
	GByteArray *out = convert(m);
	GMimeMessage *msg = parse(out);
	assert_string_equal(g_mime_message_get_subject(msg), "ansi été");
	char *from = addresses(msg, GMIME_ADDRESS_TYPE_FROM);
	assert_non_null(strstr(from, "Lokay, Michelle"));
	char *to = addresses(msg, GMIME_ADDRESS_TYPE_TO);
	assert_string_equal(to, "bob@example.com");
	/* No date property at all: no Date header rather than an invented one. */
	assert_null(g_mime_object_get_header(GMIME_OBJECT(msg), "Date"));
	g_free(from);
	g_free(to);
	g_object_unref(msg);
	g_byte_array_unref(out);
	mv_mapi_message_free(m);
}

/* An item's display recipients go to GMime's address parser, which
 * recursed once per group inside a group: 1 MiB of "g: g: ..." overflowed
 * the stack (SIGSEGV) in the converter. */
static void test_deep_groups_display_to(void **state)
{
	mv_mapi_message *m = mv_mapi_message_new();
	set_string8(m->props, MV_PID_SUBJECT, "deep");
	GString *to = g_string_new(NULL);
	for (int i = 0; i < 350000; i++)
		g_string_append(to, "g: ");
	g_string_append(to, "bob@example.com");
	set_string8(m->props, MV_PID_DISPLAY_TO, to->str);
	GByteArray *out = convert(m);
	unsigned flags = 0;
	GMimeMessage *msg = mv_mime_construct(out->data, out->len, &flags);
	assert_non_null(msg);
	assert_string_equal(g_mime_message_get_subject(msg), "deep");
	g_object_unref(msg);
	g_byte_array_unref(out);
	g_string_free(to, TRUE);
	mv_mapi_message_free(m);
}

static void test_damage_and_depth(void **state)
{
	mv_mapi_message *m = sample_mail();
	mv_mapi_attachment *nodata = mv_mapi_attachment_new();
	set_unicode(nodata->props, MV_PID_ATTACH_LONG_FILENAME, "lost.doc");
	g_ptr_array_add(m->attachments, nodata);
	/* Embedded messages nested past the bound end in a damage note, not a
	 * deep recursion. */
	mv_mapi_message *cur = m;
	for (int i = 0; i < MV_MAPI_MAX_DEPTH + 4; i++) {
		mv_mapi_attachment *a = mv_mapi_attachment_new();
		a->embedded = mv_mapi_message_new();
		set_unicode(a->embedded->props, MV_PID_SUBJECT, "level");
		g_ptr_array_add(cur->attachments, a);
		cur = a->embedded;
	}
	GByteArray *out = convert(m);
	GMimeMessage *msg = parse(out);
	g_object_unref(msg);
	assert_true(m->damage->len >= 1);
	assert_non_null(strstr(m->damage->pdata[0], "lost.doc"));
	g_byte_array_unref(out);
	mv_mapi_message_free(m);
}

static void test_kinds(void **state)
{
	static const struct { const char *cls; mv_mapi_kind kind; } cases[] = {
		{ "IPM.Note", MV_MAPI_MAIL }, { "IPM.Note.SMIME.MultipartSigned", MV_MAPI_MAIL },
		{ "REPORT.IPM.Note.NDR", MV_MAPI_MAIL }, { "IPM.Schedule.Meeting.Request", MV_MAPI_MAIL },
		{ "IPM.Appointment", MV_MAPI_APPOINTMENT }, { "IPM.Contact", MV_MAPI_CONTACT },
		{ "IPM.Task", MV_MAPI_TASK }, { "IPM.StickyNote", MV_MAPI_NOTE }, { "IPM.DistList", MV_MAPI_DISTLIST },
		{ "IPM.Activity", MV_MAPI_JOURNAL }, { "Something.Else", MV_MAPI_OTHER }, { "IPM.Notes", MV_MAPI_MAIL },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_mapi_message *m = mv_mapi_message_new();
		set_unicode(m->props, MV_PID_MESSAGE_CLASS, cases[i].cls);
		assert_int_equal(mv_mapi_message_kind(m), cases[i].kind);
		mv_mapi_message_free(m);
	}
}

int main(void)
{
	mv_mime_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_props),
		cmocka_unit_test(test_built_headers),
		cmocka_unit_test(test_transport_headers),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_exchange_and_display_fallbacks),
		cmocka_unit_test(test_deep_groups_display_to),
		cmocka_unit_test(test_damage_and_depth),
		cmocka_unit_test(test_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
