/* Unit tests: the .msg reader (mime/msg.c).
 *
 * Real Outlook items from tests/fixtures/msg (subject, sender, recipients,
 * bodies, attachments, an embedded message, 8-bit strings in CP932, an
 * appointment); messages written here with libgsf's own writer (the
 * order of storages, the nesting bound, OLE objects, fixed-size and
 * multi-valued properties, damage); and hostile Compound Files made by
 * patching bytes: cyclic FAT chains, truncation, bad sector sizes,
 * directory cycles, storages with thousands of entries.  Each must fail
 * cleanly or read as damaged, quickly — and without libgsf ever logging a
 * warning: msg.c checks a file before libgsf sees it, and a libgsf message
 * here means a hole in that check (every GLib log message is counted). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "fixtures.h"

#include "mime/mapi.h"

#include <gsf/gsf-infile-msole.h>
#include <gsf/gsf-infile.h>
#include <gsf/gsf-input-memory.h>
#include <gsf/gsf-input.h>
#include <gsf/gsf-outfile-msole.h>
#include <gsf/gsf-outfile.h>
#include <gsf/gsf-output-memory.h>
#include <gsf/gsf-output.h>
#include <gsf/gsf-utils.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- fixtures ------------------------------------------------------------------------ */

static int log_messages;

static void count_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)level;
	(void)data;
	g_atomic_int_inc(&log_messages);
	fprintf(stderr, "log message [%s]: %s\n", domain ? domain : "", message);
}

static const char *fixture_dir(void)
{
	static char *dir;
	if (!dir)
		dir = mv_test_fixture_dir(__FILE__, "msg");
	return dir;
}

static GBytes *fixture(const char *name)
{
	char *path = g_build_filename(fixture_dir(), name, NULL);
	gchar *data = NULL;
	gsize len = 0;
	GError *err = NULL;
	if (!g_file_get_contents(path, &data, &len, &err))
		fail_msg("fixture %s: %s", path, err->message);
	g_free(path);
	return g_bytes_new_take(data, len);
}

/* CPU seconds of the process: a bound on work that a loaded machine's
 * wall clock would blur. */
static double cpu_seconds(void)
{
	struct timespec ts;
	assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mv_mapi_message *read_ok(const uint8_t *data, size_t len)
{
	mv_mapi_message *m = NULL;
	GError *err = NULL;
	int rc = mv_msg_read(data, len, &m, &err);
	if (rc != 0)
		fail_msg("mv_msg_read: %s", err ? err->message : "?");
	assert_non_null(m);
	return m;
}

static mv_mapi_message *read_fixture(const char *name)
{
	GBytes *b = fixture(name);
	gsize len = 0;
	const uint8_t *d = g_bytes_get_data(b, &len);
	mv_mapi_message *m = read_ok(d, len);
	g_bytes_unref(b);
	return m;
}

/* -1 with MV_ERR_INVALID and a message starting "not an Outlook message". */
static void read_fails(const uint8_t *data, size_t len)
{
	mv_mapi_message *m = NULL;
	GError *err = NULL;
	assert_int_equal(mv_msg_read(data, len, &m, &err), -1);
	assert_null(m);
	assert_non_null(err);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_true(g_str_has_prefix(err->message, "not an Outlook message: "));
	g_error_free(err);
}

/* Either outcome, never a crash; a message read is walked. */
static void read_any(const uint8_t *data, size_t len)
{
	mv_mapi_message *m = NULL;
	GError *err = NULL;
	if (mv_msg_read(data, len, &m, &err) == 0) {
		(void)mv_mapi_message_kind(m);
		g_free(mv_mapi_props_string(m->props, MV_PID_SUBJECT, m->codepage));
		mv_mapi_message_free(m);
	} else {
		assert_non_null(err);
		g_error_free(err);
	}
}

static void assert_string_prop(const mv_mapi_props *p, uint16_t id, uint32_t cp, const char *want)
{
	char *got = mv_mapi_props_string(p, id, cp);
	if (!got)
		fail_msg("property %04X missing, want \"%s\"", id, want);
	assert_string_equal(got, want);
	g_free(got);
}

static bool has_damage(const mv_mapi_message *m, const char *needle)
{
	for (guint i = 0; i < m->damage->len; i++)
		if (strstr(m->damage->pdata[i], needle))
			return true;
	return false;
}

static const uint8_t *attach_data(const mv_mapi_attachment *a, size_t *len_r)
{
	return mv_mapi_props_get(a->props, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), len_r);
}

/* ---- writing messages with libgsf ------------------------------------------------------ */

typedef struct writer {
	GsfOutput *sink;
	GsfOutfile *root;
} writer;

static void writer_init_sectors(writer *w, unsigned sector)
{
	gsf_init();
	w->sink = gsf_output_memory_new();
	w->root = gsf_outfile_msole_new_full(w->sink, sector, 64);
	assert_non_null(w->root);
}

static void writer_init(writer *w)
{
	writer_init_sectors(w, 512);
}

static GByteArray *writer_finish(writer *w)
{
	assert_true(gsf_output_close(GSF_OUTPUT(w->root)));
	g_object_unref(w->root);
	GByteArray *out = g_byte_array_new();
	g_byte_array_append(out, gsf_output_memory_get_bytes(GSF_OUTPUT_MEMORY(w->sink)),
	                    (guint)gsf_output_size(w->sink));
	g_object_unref(w->sink);
	return out;
}

static GsfOutfile *dir_new(GsfOutfile *parent, const char *name)
{
	GsfOutput *d = gsf_outfile_new_child(parent, name, TRUE);
	assert_non_null(d);
	return GSF_OUTFILE(d);
}

static void dir_close(GsfOutfile *d)
{
	assert_true(gsf_output_close(GSF_OUTPUT(d)));
	g_object_unref(d);
}

static void stream_put(GsfOutfile *dir, const char *name, const void *data, size_t len)
{
	GsfOutput *s = gsf_outfile_new_child(dir, name, FALSE);
	assert_non_null(s);
	if (len)
		assert_true(gsf_output_write(s, len, data));
	assert_true(gsf_output_close(s));
	g_object_unref(s);
}

/* A property bag being written: the property stream collects its entries
 * and is written by bag_end. */
typedef struct bag {
	GsfOutfile *dir;
	GByteArray *ps;
} bag;

static void bag_begin(bag *b, GsfOutfile *dir, size_t header)
{
	b->dir = dir;
	b->ps = g_byte_array_new();
	g_byte_array_set_size(b->ps, (guint)header);
	memset(b->ps->data, 0, header);
}

static void bag_entry(bag *b, uint32_t tag, uint64_t value)
{
	uint8_t e[16] = { 0 };
	for (int i = 0; i < 4; i++)
		e[i] = (uint8_t)(tag >> (8 * i));
	e[4] = 6; /* readable, writable */
	for (int i = 0; i < 8; i++)
		e[8 + i] = (uint8_t)(value >> (8 * i));
	g_byte_array_append(b->ps, e, 16);
}

static void bag_bytes(bag *b, uint32_t tag, const void *data, size_t len)
{
	char name[32];
	snprintf(name, sizeof(name), "__substg1.0_%08X", tag);
	stream_put(b->dir, name, data, len);
	bag_entry(b, tag, len);
}

static void bag_unicode(bag *b, uint16_t id, const char *utf8)
{
	glong n = 0;
	gunichar2 *u = g_utf8_to_utf16(utf8, -1, NULL, &n, NULL);
	bag_bytes(b, MV_TAG(id, MV_PT_UNICODE), u, (size_t)n * 2);
	g_free(u);
}

static void bag_end(bag *b)
{
	stream_put(b->dir, "__properties_version1.0", b->ps->data, b->ps->len);
	g_byte_array_unref(b->ps);
}

/* A message storage with a subject (header: 32 at the top, 24 embedded). */
static void message_props(GsfOutfile *dir, size_t header, const char *subject)
{
	bag b;
	bag_begin(&b, dir, header);
	bag_unicode(&b, MV_PID_SUBJECT, subject);
	bag_unicode(&b, MV_PID_MESSAGE_CLASS, "IPM.Note");
	bag_entry(&b, MV_TAG(MV_PID_MESSAGE_CODEPAGE, MV_PT_LONG), 1252);
	bag_end(&b);
}

static void recipient_put(GsfOutfile *msg, const char *storage, const char *name, int type)
{
	GsfOutfile *d = dir_new(msg, storage);
	bag b;
	bag_begin(&b, d, 8);
	bag_unicode(&b, MV_PID_DISPLAY_NAME, name);
	bag_entry(&b, MV_TAG(MV_PID_RECIPIENT_TYPE, MV_PT_LONG), (uint64_t)type);
	bag_end(&b);
	dir_close(d);
}

static void attachment_put(GsfOutfile *msg, const char *storage, const char *filename, const void *data, size_t len)
{
	GsfOutfile *d = dir_new(msg, storage);
	bag b;
	bag_begin(&b, d, 8);
	bag_unicode(&b, MV_PID_ATTACH_LONG_FILENAME, filename);
	bag_entry(&b, MV_TAG(MV_PID_ATTACH_METHOD, MV_PT_LONG), MV_ATTACH_BY_VALUE);
	bag_bytes(&b, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), data, len);
	bag_end(&b);
	dir_close(d);
}

/* A top message "outer" with one attachment of len bytes (a pattern). */
static GByteArray *message_with_attachment(size_t len)
{
	writer w;
	writer_init(&w);
	message_props(w.root, 32, "outer");
	uint8_t *data = g_malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	attachment_put(w.root, "__attach_version1.0_#00000000", "data.bin", data, len);
	g_free(data);
	return writer_finish(&w);
}

/* ---- patching Compound Files (512-byte sectors, at most 109 FAT sectors) --------- */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *p_sect(uint8_t *d, uint32_t s)
{
	return d + 512 + (size_t)s * 512;
}

static uint8_t *p_fat(uint8_t *d, uint32_t i)
{
	return p_sect(d, rd32(d + 0x4C + 4 * (i / 128))) + 4 * (i % 128);
}

static uint32_t p_chain_nth(uint8_t *d, uint32_t first, uint32_t n)
{
	uint32_t s = first;
	while (n--)
		s = rd32(p_fat(d, s));
	return s;
}

static uint8_t *p_minifat(uint8_t *d, uint32_t i)
{
	return p_sect(d, p_chain_nth(d, rd32(d + 0x3C), i / 128)) + 4 * (i % 128);
}

static uint8_t *p_dirent(uint8_t *d, uint32_t e)
{
	return p_sect(d, p_chain_nth(d, rd32(d + 0x30), e / 4)) + 128 * (e % 4);
}

static bool p_name_is(const uint8_t *de, const char *name)
{
	size_t n = strlen(name);
	if (de[0x40] != 2 * (n + 1))
		return false;
	for (size_t i = 0; i < n; i++)
		if (de[2 * i] != (uint8_t)name[i] || de[2 * i + 1] != 0)
			return false;
	return true;
}

/* The entry named name among the children of storage entry dir. */
static uint32_t p_find(uint8_t *d, uint32_t dir, const char *name)
{
	GArray *todo = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t e = rd32(p_dirent(d, dir) + 0x4C), found = UINT32_MAX;
	g_array_append_val(todo, e);
	while (todo->len && found == UINT32_MAX) {
		e = g_array_index(todo, uint32_t, todo->len - 1);
		g_array_set_size(todo, todo->len - 1);
		if (e == 0xFFFFFFFFu)
			continue;
		const uint8_t *de = p_dirent(d, e);
		if (p_name_is(de, name))
			found = e;
		uint32_t l = rd32(de + 0x44), r = rd32(de + 0x48);
		g_array_append_val(todo, l);
		g_array_append_val(todo, r);
	}
	g_array_unref(todo);
	if (found == UINT32_MAX)
		fail_msg("no entry %s", name);
	return found;
}

/* The entry at a '/'-separated path from the root. */
static uint32_t p_path(uint8_t *d, const char *path)
{
	char **parts = g_strsplit(path, "/", -1);
	uint32_t e = 0;
	for (char **p = parts; *p; p++)
		e = p_find(d, e, *p);
	g_strfreev(parts);
	return e;
}

/* ---- real items ------------------------------------------------------------------------ */

static void test_is_cfb(void **state)
{
	GBytes *b = fixture("test1.msg");
	gsize len = 0;
	const uint8_t *d = g_bytes_get_data(b, &len);
	assert_true(mv_msg_is_cfb(d, len));
	assert_true(mv_msg_is_cfb(d, 8));
	assert_false(mv_msg_is_cfb(d, 7));
	assert_false(mv_msg_is_cfb((const uint8_t *)"From: a@b\r\n\r\n", 14));
	assert_false(mv_msg_is_cfb(NULL, 0));
	g_bytes_unref(b);
}

static void test_mail_with_attachments(void **state)
{
	mv_mapi_message *m = read_fixture("attachmentFiles.msg");
	assert_int_equal(m->damage->len, 0);
	assert_int_equal(mv_mapi_message_kind(m), MV_MAPI_MAIL);
	assert_string_prop(m->props, MV_PID_MESSAGE_CLASS, m->codepage, "IPM.Note");
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "attachmentFiles");
	assert_string_prop(m->props, MV_PID_SENDER_NAME, m->codepage, "hmailuser");
	assert_string_prop(m->props, MV_PID_SENDER_EMAIL, m->codepage, "hmailuser@hmailserver.test");
	assert_string_prop(m->props, MV_PID_BODY, m->codepage, "attachmentFiles\n\n"); /* line ends as \n */
	int64_t t = 0;
	assert_true(mv_mapi_props_time(m->props, MV_PID_MESSAGE_DELIVERY_TIME, &t) ||
	            mv_mapi_props_time(m->props, MV_PID_CLIENT_SUBMIT_TIME, &t));
	assert_true(t > 1500000000);

	assert_int_equal(m->recipients->len, 1);
	int32_t type = 0;
	assert_true(mv_mapi_props_int32(m->recipients->pdata[0], MV_PID_RECIPIENT_TYPE, &type));
	assert_int_equal(type, 1);
	assert_string_prop(m->recipients->pdata[0], MV_PID_EMAIL_ADDRESS, m->codepage, "hmailuser@hmailserver.test");

	static const struct { const char *name; size_t size; } want[] = {
		{ "jpg.jpg", 726 }, { "png.png", 134 }, { "tif.tif", 664 },
	};
	assert_int_equal(m->attachments->len, 3);
	for (guint i = 0; i < 3; i++) {
		mv_mapi_attachment *a = m->attachments->pdata[i];
		assert_string_prop(a->props, MV_PID_ATTACH_LONG_FILENAME, m->codepage, want[i].name);
		size_t len = 0;
		assert_non_null(attach_data(a, &len));
		assert_int_equal(len, want[i].size);
		int32_t method = 0;
		assert_true(mv_mapi_props_int32(a->props, MV_PID_ATTACH_METHOD, &method));
		assert_int_equal(method, MV_ATTACH_BY_VALUE);
		assert_null(a->embedded);
	}
	size_t len = 0;
	const uint8_t *png = attach_data(m->attachments->pdata[1], &len);
	assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
	mv_mapi_message_free(m);
}

static void test_recipient_types(void **state)
{
	mv_mapi_message *m = read_fixture("test1.msg");
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "title");
	assert_string_prop(m->props, MV_PID_BODY, m->codepage, "body\n");
	assert_int_equal(m->recipients->len, 2);
	static const struct { const char *email; int32_t type; } want[] = { { "to@example.com", 1 }, { "cc@example.com", 2 } };
	for (guint i = 0; i < 2; i++) {
		int32_t type = 0;
		assert_true(mv_mapi_props_int32(m->recipients->pdata[i], MV_PID_RECIPIENT_TYPE, &type));
		assert_int_equal(type, want[i].type);
		assert_string_prop(m->recipients->pdata[i], MV_PID_EMAIL_ADDRESS, m->codepage, want[i].email);
	}
	assert_int_equal(m->attachments->len, 0);
	mv_mapi_message_free(m);
}

static void test_embedded_message(void **state)
{
	mv_mapi_message *m = read_fixture("msgInMsg.msg");
	assert_int_equal(m->damage->len, 0);
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "I have attachments!");
	assert_int_equal(m->attachments->len, 2);

	mv_mapi_attachment *a = m->attachments->pdata[0];
	int32_t method = 0;
	assert_true(mv_mapi_props_int32(a->props, MV_PID_ATTACH_METHOD, &method));
	assert_int_equal(method, MV_ATTACH_EMBEDDED_MSG);
	mv_mapi_message *e = a->embedded;
	assert_non_null(e);
	assert_int_equal(e->codepage, 65001);
	assert_string_prop(e->props, MV_PID_SUBJECT, e->codepage, "Microsoft Outlook テスト メッセージ");
	assert_string_prop(e->props, MV_PID_SENDER_NAME, e->codepage, "Microsoft Outlook");
	assert_string_prop(e->props, MV_PID_SENDER_EMAIL, e->codepage, "xmailuser@xmailserver.test");
	assert_int_equal(e->recipients->len, 1);
	assert_string_prop(e->recipients->pdata[0], MV_PID_DISPLAY_NAME, e->codepage, "xmailuser");
	assert_int_equal(e->attachments->len, 0);

	a = m->attachments->pdata[1];
	assert_null(a->embedded);
	assert_string_prop(a->props, MV_PID_ATTACH_LONG_FILENAME, m->codepage, "green.png");
	size_t len = 0;
	assert_non_null(attach_data(a, &len));
	assert_int_equal(len, 134);
	mv_mapi_message_free(m);
}

/* Only PR_INTERNET_CPID (50220, ISO-2022-JP) is set; the 8-bit strings are
 * CP932, which is what the message's code page must say. */
static void test_cp932_strings(void **state)
{
	mv_mapi_message *m = read_fixture("nonUnicodeCP932.msg");
	int32_t cpid = 0;
	assert_true(mv_mapi_props_int32(m->props, MV_PID_INTERNET_CPID, &cpid));
	assert_int_equal(cpid, 50220);
	assert_int_equal(m->codepage, 932);
	size_t len = 0;
	assert_non_null(mv_mapi_props_get(m->props, MV_TAG(MV_PID_SUBJECT, MV_PT_STRING8), &len));
	assert_null(mv_mapi_props_get(m->props, MV_TAG(MV_PID_SUBJECT, MV_PT_UNICODE), &len));
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "日本語 Non Unicode タイトル");
	char *body = mv_mapi_props_string(m->props, MV_PID_BODY, m->codepage);
	assert_non_null(body);
	assert_true(g_str_has_prefix(body, "日本語 Non Unicode 本文"));
	g_free(body);
	assert_int_equal(m->recipients->len, 1);
	assert_string_prop(m->recipients->pdata[0], MV_PID_EMAIL_ADDRESS, m->codepage, "xmailuser2@xmailserver.test");
	mv_mapi_message_free(m);
}

static void test_not_mail(void **state)
{
	mv_mapi_message *m = read_fixture("appointment.msg");
	assert_int_equal(m->damage->len, 0);
	assert_string_prop(m->props, MV_PID_MESSAGE_CLASS, m->codepage, "IPM.Appointment");
	assert_int_equal(mv_mapi_message_kind(m), MV_MAPI_APPOINTMENT);
	assert_string_equal(mv_mapi_kind_name(mv_mapi_message_kind(m)), "appointment");
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "Appointment sample EST");
	assert_string_prop(m->props, MV_PID_SENDER_NAME, m->codepage, "Unknown");
	assert_int_equal(m->recipients->len, 0);
	assert_int_equal(m->attachments->len, 0);
	mv_mapi_message_free(m);
}

/* Several threads reading at once, the first reads of the process among
 * them (libgsf's types are registered on first use). */
typedef struct thread_job {
	GBytes *data[3];
	int ok;
} thread_job;

static gpointer thread_reads(gpointer p)
{
	thread_job *job = p;
	for (int round = 0; round < 10; round++)
		for (int i = 0; i < 3; i++) {
			gsize len = 0;
			const uint8_t *d = g_bytes_get_data(job->data[i], &len);
			mv_mapi_message *m = NULL;
			if (mv_msg_read(d, len, &m, NULL) != 0)
				continue;
			char *s = mv_mapi_props_string(m->props, MV_PID_SUBJECT, m->codepage);
			if (s && *s)
				g_atomic_int_inc(&job->ok);
			g_free(s);
			mv_mapi_message_free(m);
		}
	return NULL;
}

static void test_threads(void **state)
{
	thread_job job = { { fixture("msgInMsg.msg"), fixture("test1.msg"), fixture("nonUnicodeCP932.msg") }, 0 };
	GThread *t[4];
	for (int i = 0; i < 4; i++)
		t[i] = g_thread_new("msg", thread_reads, &job);
	for (int i = 0; i < 4; i++)
		g_thread_join(t[i]);
	assert_int_equal(job.ok, 4 * 10 * 3);
	for (int i = 0; i < 3; i++)
		g_bytes_unref(job.data[i]);
}

/* ---- messages written here ------------------------------------------------------------ */

/* Recipients and attachments come in the order of their numbers, whatever
 * order the directory lists them in; other names are not storages of
 * ours. */
static void test_storage_order(void **state)
{
	writer w;
	writer_init(&w);
	message_props(w.root, 32, "order");
	recipient_put(w.root, "__recip_version1.0_#00000010", "sixteen", 2);
	recipient_put(w.root, "__recip_version1.0_#00000002", "two", 1);
	recipient_put(w.root, "__recip_version1.0_#0000000A", "ten", 1);
	recipient_put(w.root, "__recip_version1.0_#0000000G", "not hex", 1);
	recipient_put(w.root, "__recip_version1.0_#0000001", "seven digits", 1);
	attachment_put(w.root, "__attach_version1.0_#0000000b", "b", "B", 1);
	attachment_put(w.root, "__attach_version1.0_#00000003", "three", "3", 1);
	GByteArray *f = writer_finish(&w);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->damage->len, 0);
	assert_int_equal(m->codepage, 1252);
	assert_int_equal(m->recipients->len, 3);
	assert_string_prop(m->recipients->pdata[0], MV_PID_DISPLAY_NAME, 0, "two");
	assert_string_prop(m->recipients->pdata[1], MV_PID_DISPLAY_NAME, 0, "ten");
	assert_string_prop(m->recipients->pdata[2], MV_PID_DISPLAY_NAME, 0, "sixteen");
	assert_int_equal(m->attachments->len, 2);
	assert_string_prop(((mv_mapi_attachment *)m->attachments->pdata[0])->props, MV_PID_ATTACH_LONG_FILENAME, 0,
	                   "three");
	assert_string_prop(((mv_mapi_attachment *)m->attachments->pdata[1])->props, MV_PID_ATTACH_LONG_FILENAME, 0, "b");
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

/* Fixed-size values keep their natural width; multi-valued fixed-size ones
 * are the stream's bytes; multi-valued strings are skipped; a stream the
 * property stream does not list is still read. */
static void test_property_values(void **state)
{
	writer w;
	writer_init(&w);
	bag b;
	bag_begin(&b, w.root, 32);
	bag_entry(&b, MV_TAG(0x0017, MV_PT_LONG), 2);
	bag_entry(&b, MV_TAG(0x0057, MV_PT_BOOLEAN), 1);
	bag_entry(&b, MV_TAG(0x4001, MV_PT_SHORT), 0xFFFE);
	bag_entry(&b, MV_TAG(0x0E08, MV_PT_I8), UINT64_C(0x0102030405060708));
	/* 2021-01-01T00:00:00Z as FILETIME */
	bag_entry(&b, MV_TAG(MV_PID_MESSAGE_DELIVERY_TIME, MV_PT_SYSTIME), UINT64_C(132539328000000000));
	bag_entry(&b, MV_TAG(0x1234, 0x0001), 5); /* PT_NULL: nothing */
	static const uint8_t longs[12] = { 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0 };
	bag_bytes(&b, MV_TAG(0x6001, 0x1003), longs, sizeof(longs));
	bag_bytes(&b, MV_TAG(0x6002, 0x101F), "\x04\x00\x00\x00", 4);
	bag_end(&b);
	stream_put(w.root, "__substg1.0_0037001F", "h\0i\0", 4);           /* not in the property stream */
	stream_put(w.root, "__substg1.0_6002101F-00000000", "x\0\0\0", 4); /* a value of a multi-valued string */
	stream_put(w.root, "__substg1.0_00370003", "\1\0\0\0", 4);         /* a fixed type as a stream */
	GByteArray *f = writer_finish(&w);
	mv_mapi_message *m = read_ok(f->data, f->len);
	size_t len = 0;
	int32_t v = 0;
	bool on = false;
	int64_t t = 0;
	assert_true(mv_mapi_props_int32(m->props, 0x0017, &v));
	assert_int_equal(v, 2);
	assert_non_null(mv_mapi_props_get(m->props, MV_TAG(0x0017, MV_PT_LONG), &len));
	assert_int_equal(len, 4);
	assert_true(mv_mapi_props_bool(m->props, 0x0057, &on));
	assert_true(on);
	assert_non_null(mv_mapi_props_get(m->props, MV_TAG(0x0057, MV_PT_BOOLEAN), &len));
	assert_int_equal(len, 1);
	assert_true(mv_mapi_props_int32(m->props, 0x4001, &v));
	assert_int_equal(v, -2);
	const uint8_t *i8 = mv_mapi_props_get(m->props, MV_TAG(0x0E08, MV_PT_I8), &len);
	assert_int_equal(len, 8);
	assert_int_equal(i8[0], 8);
	assert_true(mv_mapi_props_time(m->props, MV_PID_MESSAGE_DELIVERY_TIME, &t));
	assert_int_equal(t, 1609459200);
	assert_null(mv_mapi_props_get(m->props, MV_TAG(0x1234, 0x0001), &len));
	const uint8_t *mv = mv_mapi_props_get(m->props, MV_TAG(0x6001, 0x1003), &len);
	assert_int_equal(len, 12);
	assert_memory_equal(mv, longs, 12);
	assert_null(mv_mapi_props_get(m->props, MV_TAG(0x6002, 0x101F), &len));
	assert_null(mv_mapi_props_get(m->props, MV_TAG(0x0037, 0x0003), &len));
	assert_string_prop(m->props, MV_PID_SUBJECT, 0, "hi");
	assert_int_equal(m->codepage, 0);
	assert_int_equal(mv_mapi_message_kind(m), MV_MAPI_MAIL);
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

/* Version 4 files: 4096-byte sectors, the header padded to one. */
static void test_4k_sectors(void **state)
{
	writer w;
	writer_init_sectors(&w, 4096);
	message_props(w.root, 32, "four k");
	recipient_put(w.root, "__recip_version1.0_#00000000", "someone", 1);
	uint8_t big[9000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i % 251);
	attachment_put(w.root, "__attach_version1.0_#00000000", "big.bin", big, sizeof(big));
	GByteArray *f = writer_finish(&w);
	assert_int_equal(f->data[0x1E], 12);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->damage->len, 0);
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "four k");
	assert_int_equal(m->recipients->len, 1);
	assert_int_equal(m->attachments->len, 1);
	size_t len = 0;
	const uint8_t *data = attach_data(m->attachments->pdata[0], &len);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(data, big, sizeof(big));
	mv_mapi_message_free(m);
	/* Cut inside the header's padding: not a file of 4096-byte sectors. */
	read_fails(f->data, 3000);
	g_byte_array_unref(f);
}

/* More than 109 FAT sectors: the rest are listed in DIFAT sectors. */
static void test_difat(void **state)
{
	GByteArray *f = message_with_attachment(8u << 20);
	assert_true(rd32(f->data + 0x2C) > 109);
	assert_int_equal(rd32(f->data + 0x48), 1);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->damage->len, 0);
	size_t len = 0;
	const uint8_t *data = attach_data(m->attachments->pdata[0], &len);
	assert_int_equal(len, 8u << 20);
	assert_int_equal(data[(8u << 20) - 1], (uint8_t)(((8u << 20) - 1) * 7 + 3));
	mv_mapi_message_free(m);

	/* A DIFAT chain longer than the FAT it lists, and one beyond the end. */
	wr32(f->data + 0x48, 2);
	read_fails(f->data, f->len);
	wr32(f->data + 0x48, 1);
	uint32_t dif = rd32(f->data + 0x44);
	wr32(f->data + 0x44, 0x7FFFFFF0);
	read_fails(f->data, f->len);
	/* A FAT sector it lists beyond the end. */
	wr32(f->data + 0x44, dif);
	wr32(p_sect(f->data, dif), 0x7FFFFFF0);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);
}

/* Embedded messages nest to MV_MAPI_MAX_DEPTH; the one beyond is left out
 * with a note; each carries its own code page, or its parent's. */
static void test_nesting_bound(void **state)
{
	writer w;
	writer_init(&w);
	GsfOutfile *stack[2 * (MV_MAPI_MAX_DEPTH + 2)];
	int n = 0;
	stack[n++] = w.root;
	message_props(w.root, 32, "level 0");
	for (int level = 1; level <= MV_MAPI_MAX_DEPTH + 1; level++) {
		GsfOutfile *att = dir_new(stack[n - 1], "__attach_version1.0_#00000000");
		bag b;
		bag_begin(&b, att, 8);
		bag_entry(&b, MV_TAG(MV_PID_ATTACH_METHOD, MV_PT_LONG), MV_ATTACH_EMBEDDED_MSG);
		bag_entry(&b, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_OBJECT), 0xFFFFFFFFu);
		bag_end(&b);
		GsfOutfile *msg = dir_new(att, "__substg1.0_3701000D");
		char subject[32];
		snprintf(subject, sizeof(subject), "level %d", level);
		if (level == 1) {
			/* No code page of its own: the parent's. */
			bag mb;
			bag_begin(&mb, msg, 24);
			bag_unicode(&mb, MV_PID_SUBJECT, subject);
			bag_end(&mb);
		} else {
			message_props(msg, 24, subject);
		}
		stack[n++] = att;
		stack[n++] = msg;
	}
	while (n > 1)
		dir_close(stack[--n]);
	GByteArray *f = writer_finish(&w);
	mv_mapi_message *m = read_ok(f->data, f->len);
	const mv_mapi_message *cur = m;
	int levels = 0;
	for (;;) {
		char want[32];
		snprintf(want, sizeof(want), "level %d", levels);
		assert_string_prop(cur->props, MV_PID_SUBJECT, cur->codepage, want);
		assert_int_equal(cur->codepage, 1252);
		if (cur->attachments->len == 0)
			break;
		const mv_mapi_attachment *a = cur->attachments->pdata[0];
		if (!a->embedded)
			break;
		cur = a->embedded;
		levels++;
	}
	assert_int_equal(levels, MV_MAPI_MAX_DEPTH);
	assert_int_equal(cur->attachments->len, 1);
	assert_true(has_damage(m, "nest deeper"));
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

/* An OLE object's storage (method 6) becomes a compound file of its own. */
static void test_ole_attachment(void **state)
{
	writer w;
	writer_init(&w);
	message_props(w.root, 32, "ole");
	GsfOutfile *att = dir_new(w.root, "__attach_version1.0_#00000000");
	bag b;
	bag_begin(&b, att, 8);
	bag_entry(&b, MV_TAG(MV_PID_ATTACH_METHOD, MV_PT_LONG), MV_ATTACH_OLE);
	bag_end(&b);
	GsfOutfile *obj = dir_new(att, "__substg1.0_3701000D");
	stream_put(obj, "CONTENTS", "object bytes", 12);
	GsfOutfile *sub = dir_new(obj, "ObjectPool");
	stream_put(sub, "Inner", "inner", 5);
	dir_close(sub);
	dir_close(obj);
	dir_close(att);
	GByteArray *f = writer_finish(&w);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->damage->len, 0);
	assert_int_equal(m->attachments->len, 1);
	size_t len = 0;
	const uint8_t *cfb = attach_data(m->attachments->pdata[0], &len);
	assert_non_null(cfb);
	assert_true(mv_msg_is_cfb(cfb, len));
	GsfInput *in = gsf_input_memory_new(cfb, (gsf_off_t)len, FALSE);
	GsfInfile *ole = gsf_infile_msole_new(in, NULL);
	assert_non_null(ole);
	GsfInput *contents = gsf_infile_child_by_name(ole, "CONTENTS");
	assert_non_null(contents);
	assert_int_equal(gsf_input_size(contents), 12);
	assert_memory_equal(gsf_input_read(contents, 12, NULL), "object bytes", 12);
	GsfInput *inner = gsf_infile_child_by_vname(ole, "ObjectPool", "Inner", NULL);
	assert_non_null(inner);
	assert_int_equal(gsf_input_size(inner), 5);
	g_object_unref(inner);
	g_object_unref(contents);
	g_object_unref(ole);
	g_object_unref(in);
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

/* A storage without its property stream is damage, not a message part; an
 * embedded message's damage is listed at the top too. */
static void test_damaged_storages(void **state)
{
	writer w;
	writer_init(&w);
	message_props(w.root, 32, "damaged");
	GsfOutfile *r = dir_new(w.root, "__recip_version1.0_#00000000");
	stream_put(r, "__substg1.0_3001001F", "x\0", 2);
	dir_close(r);
	attachment_put(w.root, "__attach_version1.0_#00000000", "fine", "ok", 2);
	GsfOutfile *a = dir_new(w.root, "__attach_version1.0_#00000001");
	dir_close(a);
	GsfOutfile *e = dir_new(w.root, "__attach_version1.0_#00000002");
	bag b;
	bag_begin(&b, e, 8);
	bag_entry(&b, MV_TAG(MV_PID_ATTACH_METHOD, MV_PT_LONG), MV_ATTACH_EMBEDDED_MSG);
	bag_end(&b);
	GsfOutfile *inner = dir_new(e, "__substg1.0_3701000D");
	message_props(inner, 24, "inner");
	GsfOutfile *ia = dir_new(inner, "__attach_version1.0_#00000000");
	dir_close(ia);
	dir_close(inner);
	dir_close(e);
	GByteArray *f = writer_finish(&w);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->recipients->len, 0);
	assert_int_equal(m->attachments->len, 2);
	assert_true(has_damage(m, "recipient 1: no property stream"));
	assert_true(has_damage(m, "attachment 2: no property stream"));
	assert_true(has_damage(m, "attachment 3: embedded message: attachment 1: no property stream"));
	mv_mapi_attachment *emb = m->attachments->pdata[1];
	assert_non_null(emb->embedded);
	assert_int_equal(emb->embedded->damage->len, 1);
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

/* ---- hostile files --------------------------------------------------------------------- */

static void test_not_a_message(void **state)
{
	read_fails((const uint8_t *)"", 0);
	read_fails((const uint8_t *)"hello, world", 12);
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 31 + 7);
	read_fails(junk, sizeof(junk));
	memcpy(junk, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);
	read_fails(junk, sizeof(junk));
	read_fails(junk, 8);

	/* A Compound File that is not a message. */
	writer w;
	writer_init(&w);
	stream_put(w.root, "WordDocument", "text", 4);
	GByteArray *f = writer_finish(&w);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* The size bound comes first: nothing is read. */
	mv_mapi_message *m = NULL;
	GError *err = NULL;
	assert_int_equal(mv_msg_read(junk, (size_t)MV_MAX_MESSAGE_SIZE + 1, &m, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_LIMIT));
	g_error_free(err);
}

static GByteArray *fixture_copy(const char *name)
{
	GBytes *b = fixture(name);
	gsize len = 0;
	const uint8_t *d = g_bytes_get_data(b, &len);
	GByteArray *a = g_byte_array_new();
	g_byte_array_append(a, d, (guint)len);
	g_bytes_unref(b);
	return a;
}

static void test_truncated(void **state)
{
	GByteArray *f = fixture_copy("msgInMsg.msg");
	for (size_t cut = 0; cut < f->len; cut += (cut < 2048 ? 61 : 509)) {
		/* An exact-size copy, so that ASan sees any read past the end. */
		uint8_t *part = g_memdup2(f->data, cut);
		if (cut < 1024)
			read_fails(part ? part : (const uint8_t *)"", cut);
		else
			read_any(part, cut);
		g_free(part);
	}
	g_byte_array_unref(f);
}

static void test_bad_header(void **state)
{
	static const struct { size_t off; unsigned width; uint32_t value; } bad[] = {
		{ 0x1E, 2, 10 },        /* 1024-byte sectors */
		{ 0x1E, 2, 30 },
		{ 0x1E, 2, 0 },
		{ 0x20, 2, 9 },         /* mini sectors as large as sectors */
		{ 0x38, 4, 0 },         /* no mini stream cutoff */
		{ 0x2C, 4, 0 },         /* no FAT sector */
		{ 0x2C, 4, 0x7FFFFFFF }, /* more FAT sectors than the file holds */
		{ 0x4C, 4, 0x00100000 }, /* the FAT sector beyond the end */
		{ 0x30, 4, 0x00100000 }, /* the directory beyond the end */
		{ 0x30, 4, 0xFFFFFFFE }, /* no directory */
		{ 0x48, 4, 5 },         /* DIFAT sectors that are not there */
		{ 0x40, 4, 0 },         /* no mini FAT sector, yet a chain of them */
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		GByteArray *f = fixture_copy("test1.msg");
		if (bad[i].width == 2) {
			f->data[bad[i].off] = (uint8_t)bad[i].value;
			f->data[bad[i].off + 1] = (uint8_t)(bad[i].value >> 8);
		} else {
			wr32(f->data + bad[i].off, bad[i].value);
		}
		read_fails(f->data, f->len);
		g_byte_array_unref(f);
	}
}

static void test_cyclic_fat(void **state)
{
	/* The directory's chain loops onto itself. */
	GByteArray *f = fixture_copy("msgInMsg.msg");
	uint32_t dir = rd32(f->data + 0x30);
	wr32(p_fat(f->data, dir), dir);
	double t0 = cpu_seconds();
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* The loop further down the chain. */
	f = fixture_copy("msgInMsg.msg");
	dir = rd32(f->data + 0x30);
	uint32_t second = rd32(p_fat(f->data, dir));
	assert_true(second < 0xFFFFFFFAu);
	wr32(p_fat(f->data, second), dir);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* The top property stream's mini chain loops: not a message. */
	f = fixture_copy("msgInMsg.msg");
	uint32_t ps = p_path(f->data, "__properties_version1.0");
	uint32_t first = rd32(p_dirent(f->data, ps) + 0x74);
	assert_true(rd32(p_dirent(f->data, ps) + 0x78) > 64);
	wr32(p_minifat(f->data, first), first);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* The mini FAT's own chain loops: small streams are all unreadable. */
	f = fixture_copy("msgInMsg.msg");
	uint32_t sbat = rd32(f->data + 0x3C);
	wr32(p_fat(f->data, sbat), sbat);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* An attachment's data loops: the message reads, the data is damage. */
	f = message_with_attachment(10000);
	uint32_t data = p_path(f->data, "__attach_version1.0_#00000000/__substg1.0_37010102");
	first = rd32(p_dirent(f->data, data) + 0x74);
	second = rd32(p_fat(f->data, first));
	wr32(p_fat(f->data, second), first);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_int_equal(m->attachments->len, 1);
	size_t len = 0;
	assert_null(attach_data(m->attachments->pdata[0], &len));
	assert_true(has_damage(m, "attachment 1: stream 37010102 unreadable"));
	assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "outer");
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
	assert_true(cpu_seconds() - t0 < 2);
}

static void test_broken_chains(void **state)
{
	/* A chain into a sector past the end of the file. */
	GByteArray *f = message_with_attachment(10000);
	uint32_t data = p_path(f->data, "__attach_version1.0_#00000000/__substg1.0_37010102");
	uint32_t first = rd32(p_dirent(f->data, data) + 0x74);
	wr32(p_fat(f->data, first), (uint32_t)(f->len / 512) + 3);
	mv_mapi_message *m = read_ok(f->data, f->len);
	assert_true(has_damage(m, "stream 37010102 unreadable"));
	mv_mapi_message_free(m);
	g_byte_array_unref(f);

	/* A chain shorter than the stream's size. */
	f = message_with_attachment(10000);
	data = p_path(f->data, "__attach_version1.0_#00000000/__substg1.0_37010102");
	first = rd32(p_dirent(f->data, data) + 0x74);
	wr32(p_fat(f->data, first), 0xFFFFFFFEu);
	m = read_ok(f->data, f->len);
	assert_true(has_damage(m, "stream 37010102 unreadable"));
	mv_mapi_message_free(m);
	g_byte_array_unref(f);

	/* Two streams on the same sectors: the second is damage (so copies
	 * never add up to more than the input). */
	f = message_with_attachment(10000);
	data = p_path(f->data, "__attach_version1.0_#00000000/__substg1.0_37010102");
	uint32_t other = p_path(f->data, "__attach_version1.0_#00000000/__substg1.0_3707001F");
	uint8_t *od = p_dirent(f->data, other);
	wr32(od + 0x74, rd32(p_dirent(f->data, data) + 0x74));
	wr32(od + 0x78, 10000);
	m = read_ok(f->data, f->len);
	assert_int_equal(m->attachments->len, 1);
	size_t len = 0;
	bool data_read = attach_data(m->attachments->pdata[0], &len) != NULL;
	bool name_read = mv_mapi_props_get(((mv_mapi_attachment *)m->attachments->pdata[0])->props,
	                                   MV_TAG(MV_PID_ATTACH_LONG_FILENAME, MV_PT_UNICODE), &len) != NULL;
	assert_true(data_read != name_read);
	assert_int_equal(m->damage->len, 1);
	mv_mapi_message_free(m);
	g_byte_array_unref(f);

	/* A small stream whose size runs past the mini stream. */
	f = fixture_copy("test1.msg");
	uint32_t subj = p_path(f->data, "__substg1.0_0037001F");
	wr32(p_dirent(f->data, subj) + 0x78, 4000);
	m = read_ok(f->data, f->len);
	assert_true(has_damage(m, "stream 0037001F unreadable"));
	mv_mapi_message_free(m);
	g_byte_array_unref(f);
}

static void test_directory_cycles(void **state)
{
	/* An entry whose sibling is itself. */
	GByteArray *f = fixture_copy("test1.msg");
	uint32_t child = rd32(p_dirent(f->data, 0) + 0x4C);
	wr32(p_dirent(f->data, child) + 0x48, child);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* A storage whose child is the root. */
	f = fixture_copy("test1.msg");
	uint32_t recip = p_path(f->data, "__recip_version1.0_#00000000");
	wr32(p_dirent(f->data, recip) + 0x4C, 0);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* A link past the directory's end. */
	f = fixture_copy("test1.msg");
	wr32(p_dirent(f->data, child) + 0x44, 0x00FFFFFF);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* An entry of an unknown type; a root that is not one; a stream with
	 * children; a stream larger than the file. */
	f = fixture_copy("test1.msg");
	p_dirent(f->data, child)[0x42] = 7;
	read_fails(f->data, f->len);
	g_byte_array_unref(f);
	f = fixture_copy("test1.msg");
	p_dirent(f->data, 0)[0x42] = 1;
	read_fails(f->data, f->len);
	g_byte_array_unref(f);
	f = fixture_copy("test1.msg");
	uint32_t ps = p_path(f->data, "__properties_version1.0");
	wr32(p_dirent(f->data, ps) + 0x4C, child);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);
	f = fixture_copy("test1.msg");
	wr32(p_dirent(f->data, ps) + 0x78, 0x7FFFFFFF);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);

	/* Two entries of the same name in one storage. */
	f = fixture_copy("test1.msg");
	uint32_t subj = p_path(f->data, "__substg1.0_0037001F");
	memcpy(p_dirent(f->data, subj), p_dirent(f->data, ps), 0x42);
	read_fails(f->data, f->len);
	g_byte_array_unref(f);
}

/* A storage with thousands of junk entries: libgsf's writer chains
 * siblings as a list, so 5000 of them are 5000 levels of libgsf's
 * recursion — refused; 3000 are read, the junk ignored, quickly. */
static void test_junk_entries(void **state)
{
	for (int pass = 0; pass < 2; pass++) {
		int n = pass == 0 ? 5000 : 3000;
		writer w;
		writer_init(&w);
		message_props(w.root, 32, "junk");
		for (int i = 0; i < n; i++) {
			char name[32];
			snprintf(name, sizeof(name), "junk%05d", i);
			stream_put(w.root, name, "j", 1);
		}
		GByteArray *f = writer_finish(&w);
		double t0 = cpu_seconds();
		if (pass == 0) {
			read_fails(f->data, f->len);
		} else {
			mv_mapi_message *m = read_ok(f->data, f->len);
			assert_string_prop(m->props, MV_PID_SUBJECT, m->codepage, "junk");
			assert_int_equal(m->damage->len, 0);
			mv_mapi_message_free(m);
		}
		assert_true(cpu_seconds() - t0 < 2);
		g_byte_array_unref(f);
	}
}

/* Bytes of the header, FAT and directory flipped at random (a fixed seed):
 * whatever comes out, no crash and no libgsf complaint. */
static void test_random_damage(void **state)
{
	GByteArray *orig = fixture_copy("msgInMsg.msg");
	GRand *rand = g_rand_new_with_seed(20240601);
	for (int round = 0; round < 3000; round++) {
		uint8_t *d = g_memdup2(orig->data, orig->len);
		int flips = g_rand_int_range(rand, 1, 6);
		for (int i = 0; i < flips; i++) {
			/* Mostly the structure: header, FAT and directory sectors. */
			size_t at = g_rand_boolean(rand) ? (size_t)g_rand_int_range(rand, 0, 512 * 4)
			                                 : (size_t)g_rand_int_range(rand, 0, (gint32)orig->len);
			d[at] = (uint8_t)g_rand_int_range(rand, 0, 256);
		}
		read_any(d, orig->len);
		g_free(d);
	}
	g_rand_free(rand);
	g_byte_array_unref(orig);
}

static int check_no_logs(void **state)
{
	(void)state;
	if (log_messages) {
		fprintf(stderr, "%d GLib log messages (libgsf saw input msg.c should have refused)\n", log_messages);
		return -1;
	}
	return 0;
}

int main(void)
{
	g_log_set_default_handler(count_log, NULL);
	mv_mime_init(); /* mv_mapi_props_string converts with GMime's charset tables */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_is_cfb),
		cmocka_unit_test(test_mail_with_attachments),
		cmocka_unit_test(test_recipient_types),
		cmocka_unit_test(test_embedded_message),
		cmocka_unit_test(test_cp932_strings),
		cmocka_unit_test(test_not_mail),
		cmocka_unit_test(test_storage_order),
		cmocka_unit_test(test_property_values),
		cmocka_unit_test(test_4k_sectors),
		cmocka_unit_test(test_difat),
		cmocka_unit_test(test_nesting_bound),
		cmocka_unit_test(test_ole_attachment),
		cmocka_unit_test(test_damaged_storages),
		cmocka_unit_test(test_not_a_message),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_cyclic_fat),
		cmocka_unit_test(test_broken_chains),
		cmocka_unit_test(test_directory_cycles),
		cmocka_unit_test(test_junk_entries),
		cmocka_unit_test(test_random_damage),
	};
	return cmocka_run_group_tests(tests, NULL, check_no_logs);
}
