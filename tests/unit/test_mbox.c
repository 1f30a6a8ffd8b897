/* test_mbox: the mbox splitter, the "is it mail" sniff and the message
 * readers (EML directory, Maildir, mbox) on temporary trees.
 *
 * Every splitter case is run twice — whole buffer and one byte per feed —
 * because chunk boundaries are where a push parser goes wrong, and the two
 * results must be identical. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test hook in mbox.c, not part of the public interface. */
void mv_mbox_splitter_set_max_size(mv_mbox_splitter *s, size_t max_size);

/* ---- splitter helpers ------------------------------------------------------ */

typedef struct split_result {
	GPtrArray *msgs;     /* GBytes * */
	GArray *offsets;     /* uint64_t */
	int errors;          /* feeds/finish that returned -1 */
	GString *error_text;
} split_result;

static bool collect(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	split_result *res = ctx;
	g_ptr_array_add(res->msgs, g_bytes_new(msg, len));
	g_array_append_val(res->offsets, offset);
	return true;
}

static void result_init(split_result *res)
{
	res->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	res->offsets = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	res->errors = 0;
	res->error_text = g_string_new("");
}

static void result_clear(split_result *res)
{
	g_ptr_array_unref(res->msgs);
	g_array_unref(res->offsets);
	g_string_free(res->error_text, TRUE);
}

static void note_error(split_result *res, int rc, GError *err)
{
	if (rc == 0) {
		assert_null(err);
		return;
	}
	assert_non_null(err);
	res->errors++;
	g_string_append_printf(res->error_text, "%s\n", err->message);
	g_error_free(err);
}

/* Splits input, feeding `step` bytes at a time (0 = all at once). */
static void split(const char *input, size_t len, bool mboxrd, size_t step, size_t max_size,
                  split_result *res)
{
	result_init(res);
	mv_mbox_splitter *s = mv_mbox_splitter_new(mboxrd, collect, res);
	if (max_size)
		mv_mbox_splitter_set_max_size(s, max_size);
	size_t i = 0;
	do {
		size_t n = step == 0 || len - i < step ? len - i : step;
		GError *err = NULL;
		int rc = mv_mbox_splitter_feed(s, (const uint8_t *)input + i, n, &err);
		note_error(res, rc, err);
		i += n;
	} while (i < len);
	GError *err = NULL;
	int rc = mv_mbox_splitter_finish(s, &err);
	note_error(res, rc, err);
	mv_mbox_splitter_free(&s);
	assert_null(s);
}

static void assert_same(const split_result *a, const split_result *b)
{
	assert_int_equal(a->msgs->len, b->msgs->len);
	for (guint i = 0; i < a->msgs->len; i++) {
		assert_true(g_bytes_equal(g_ptr_array_index(a->msgs, i), g_ptr_array_index(b->msgs, i)));
		assert_int_equal(g_array_index(a->offsets, uint64_t, i), g_array_index(b->offsets, uint64_t, i));
	}
	assert_int_equal(a->errors, b->errors);
}

/* Splits both ways and checks the messages (NULL-terminated, with the
 * offsets given) against the expectation. */
static void check_split_opts(const char *input, bool mboxrd, size_t max_size,
                             const char *const *want, const uint64_t *offsets, int errors)
{
	split_result whole, bytewise, chunked;
	size_t len = strlen(input);
	split(input, len, mboxrd, 0, max_size, &whole);
	split(input, len, mboxrd, 1, max_size, &bytewise);
	split(input, len, mboxrd, 7, max_size, &chunked);
	assert_same(&whole, &bytewise);
	assert_same(&whole, &chunked);
	guint n = 0;
	while (want[n])
		n++;
	assert_int_equal(whole.msgs->len, n);
	for (guint i = 0; i < n; i++) {
		gsize mlen;
		const char *m = g_bytes_get_data(g_ptr_array_index(whole.msgs, i), &mlen);
		assert_int_equal(mlen, strlen(want[i]));
		assert_memory_equal(m, want[i], mlen);
		if (offsets)
			assert_int_equal(g_array_index(whole.offsets, uint64_t, i), offsets[i]);
	}
	assert_int_equal(whole.errors, errors);
	result_clear(&whole);
	result_clear(&bytewise);
	result_clear(&chunked);
}

static void check_split(const char *input, bool mboxrd, const char *const *want, const uint64_t *offsets)
{
	check_split_opts(input, mboxrd, 0, want, offsets, 0);
}

#define SEP1 "From alice@example.com Thu Jan  1 00:00:00 2002\n"
#define SEP2 "From bob@example.com Sat Aug 24 10:00:00 2002\n"

/* ---- splitter tests ---------------------------------------------------------- */

static void test_two_messages(void **state)
{
	(void)state;
	const char *in = SEP1 "Subject: a\n\nbody a\n\n" SEP2 "Subject: b\n\nbody b\n\n";
	const char *want[] = { "Subject: a\n\nbody a\n", "Subject: b\n\nbody b\n", NULL };
	uint64_t off[] = { 0, strlen(SEP1 "Subject: a\n\nbody a\n\n") };
	check_split(in, true, want, off);
	check_split(in, false, want, off);
}

static void test_mboxrd_unquoting(void **state)
{
	(void)state;
	const char *in = SEP1 "Subject: q\n\n>From here\n>>From there\n>>>From far\n> From not\n>Fromage\n\n";
	const char *rd[] = { "Subject: q\n\nFrom here\n>From there\n>>From far\n> From not\n>Fromage\n", NULL };
	const char *o[] = { "Subject: q\n\nFrom here\n>>From there\n>>>From far\n> From not\n>Fromage\n", NULL };
	check_split(in, true, rd, NULL);
	check_split(in, false, o, NULL);
}

static void test_from_in_body(void **state)
{
	(void)state;
	/* Not after a blank line: never a separator, even if well formed. */
	const char *a = SEP1 "Subject: a\n\nline\n" SEP2 "more\n";
	const char *wa[] = { "Subject: a\n\nline\n" SEP2 "more\n", NULL };
	check_split(a, true, wa, NULL);
	/* After a blank line but not separator-shaped: stays in the body. */
	const char *b = SEP1 "Subject: b\n\nline\n\nFrom the desk of the editor\n\nFrom me\n";
	const char *wb[] = { "Subject: b\n\nline\n\nFrom the desk of the editor\n\nFrom me\n", NULL };
	check_split(b, true, wb, NULL);
	/* Quoted after a blank line: unquoted, no split. */
	const char *c = SEP1 "Subject: c\n\n>" SEP2 "\n";
	const char *wc[] = { "Subject: c\n\n" SEP2, NULL };
	check_split(c, true, wc, NULL);
}

static void test_no_final_newline(void **state)
{
	(void)state;
	const char *in = SEP1 "Subject: a\n\nlast line";
	const char *want[] = { "Subject: a\n\nlast line", NULL };
	check_split(in, true, want, NULL);
	/* An incomplete quoted line at the end is still unquoted. */
	const char *q = SEP1 "Subject: a\n\n>From";
	const char *wq[] = { "Subject: a\n\n>From", NULL };
	check_split(q, true, wq, NULL);
	const char *q2 = SEP1 "Subject: a\n\n>From ";
	const char *wq2[] = { "Subject: a\n\nFrom ", NULL };
	check_split(q2, true, wq2, NULL);
}

static void test_crlf(void **state)
{
	(void)state;
	const char *in = "From a@b Thu Jan  1 00:00:00 2002\r\nSubject: a\r\n\r\nbody\r\n\r\n"
	                 "From c@d Thu Jan  1 00:00:01 2002\r\nSubject: b\r\n\r\n>From x\r\n";
	const char *want[] = { "Subject: a\r\n\r\nbody\r\n", "Subject: b\r\n\r\nFrom x\r\n", NULL };
	uint64_t off[] = { 0, strlen("From a@b Thu Jan  1 00:00:00 2002\r\nSubject: a\r\n\r\nbody\r\n\r\n") };
	check_split(in, true, want, off);
	/* A lone \r is content, not an empty line. */
	const char *cr = SEP1 "Subject: a\n\nx\n\r\n\rFrom y\n";
	const char *wcr[] = { "Subject: a\n\nx\n\r\n\rFrom y\n", NULL };
	check_split(cr, true, wcr, NULL);
}

static void test_empty_stream(void **state)
{
	(void)state;
	const char *none[] = { NULL };
	check_split("", true, none, NULL);
	check_split("\n\n \n", true, none, NULL);
	/* A separator with nothing after it is an empty message, reported. */
	const char *empty[] = { "", NULL };
	check_split(SEP1, true, empty, NULL);
	check_split(SEP1 "\n", true, empty, NULL);
}

static void test_garbage_before_first_from(void **state)
{
	(void)state;
	const char *in = "junk line\n\n" SEP1 "Subject: a\n\nx\n";
	const char *want[] = { "junk line\n", "Subject: a\n\nx\n", NULL };
	uint64_t off[] = { 0, strlen("junk line\n\n") };
	check_split(in, true, want, off);
	/* Whitespace only before the first separator is dropped. */
	const char *ws = "\n \n\n" SEP1 "Subject: a\n\nx\n";
	const char *wws[] = { "Subject: a\n\nx\n", NULL };
	uint64_t offws[] = { 4 };
	check_split(ws, true, wws, offws);
}

static void test_blank_lines_kept(void **state)
{
	(void)state;
	/* Only the one blank line before the separator is the mbox's. */
	const char *in = SEP1 "Subject: a\n\nx\n\n\n\n" SEP2 "Subject: b\n\ny\n\n\n";
	const char *want[] = { "Subject: a\n\nx\n\n\n", "Subject: b\n\ny\n\n", NULL };
	check_split(in, true, want, NULL);
}

static void test_long_lines(void **state)
{
	(void)state;
	GString *in = g_string_new(SEP1 "Subject: long\n\n");
	GString *body = g_string_new("");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(body, (char)('a' + i % 26));
	g_string_append_c(body, '\n');
	/* A very long "From " line after a blank is body, not a separator. */
	g_string_append(body, "\nFrom ");
	for (int i = 0; i < 10000; i++)
		g_string_append_c(body, 'x');
	g_string_append(body, " Thu Jan  1 00:00:00 2002\n");
	g_string_append(in, body->str);
	char *want_msg = g_strconcat("Subject: long\n\n", body->str, NULL);
	const char *want[] = { want_msg, NULL };
	check_split(in->str, true, want, NULL);
	g_free(want_msg);
	g_string_free(in, TRUE);
	g_string_free(body, TRUE);
}

static void test_size_limit(void **state)
{
	(void)state;
	const char *in = SEP1 "Subject: a\n\nsmall\n\n" SEP2 "Subject: big\n\n0123456789012345678901234567890123456789\n\n"
	                 SEP1 "Subject: c\n\nsmall\n";
	const char *want[] = { "Subject: a\n\nsmall\n", "Subject: c\n\nsmall\n", NULL };
	split_result res;
	check_split_opts(in, true, 40, want, NULL, 1);
	split(in, strlen(in), true, 0, 40, &res);
	char *want_off = g_strdup_printf("offset %zu ", strlen(SEP1 "Subject: a\n\nsmall\n\n"));
	assert_non_null(strstr(res.error_text->str, want_off));
	g_free(want_off);
	result_clear(&res);
}

static bool stop_after_one(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	(void)msg;
	(void)len;
	(void)offset;
	int *n = ctx;
	(*n)++;
	return false;
}

static void test_callback_stop(void **state)
{
	(void)state;
	const char *in = SEP1 "Subject: a\n\nx\n\n" SEP2 "Subject: b\n\ny\n\n" SEP1 "Subject: c\n\nz\n";
	int n = 0;
	mv_mbox_splitter *s = mv_mbox_splitter_new(true, stop_after_one, &n);
	assert_int_equal(mv_mbox_splitter_feed(s, (const uint8_t *)in, strlen(in), NULL), 0);
	assert_int_equal(mv_mbox_splitter_finish(s, NULL), 0);
	mv_mbox_splitter_free(&s);
	assert_int_equal(n, 1);
}

static void test_is_separator(void **state)
{
	(void)state;
	static const char *yes[] = {
		"From foo@bar Thu Jan  1 00:00:00 2002",
		"From MAILER-DAEMON Fri Jul  8 12:08:34 2011",
		"From - Mon Jan 01 10:11:12 2001",
		"From foo@bar Thu Jan 1 00:00 2002",
		"From foo@bar Thu, 1 Jan 2002 00:00:00 +0000",
		"From foo@bar Thu Jan  1 00:00:00 PST 2002",
		"From foo@bar Thu Jan  1 00:00:00 2002 remote from x",
	};
	static const char *no[] = {
		"From foo@bar",
		"From the desk of the editor",
		"From  Thu Jan  1 00:00:00 2002",
		"From foo@bar Thu Jan  1 2002",
		"From foo@bar Thu Jan  1 00:00:00 +0000",
		"From: foo@bar Thu Jan  1 00:00:00 2002",
		">From foo@bar Thu Jan  1 00:00:00 2002",
		"From 10:30 2002",
		"",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
		assert_true(mv_mbox_is_separator(yes[i], strlen(yes[i])));
	for (size_t i = 0; i < G_N_ELEMENTS(no); i++)
		assert_false(mv_mbox_is_separator(no[i], strlen(no[i])));
	/* Control bytes mean a corrupt line, not a separator. */
	assert_false(mv_mbox_is_separator("From foo\0 Jan  1 00:00:00 2002", 30));
}

/* ---- looks like a message ------------------------------------------------------- */

static void test_looks_like_message(void **state)
{
	(void)state;
	const char *why = NULL;
#define LOOKS(s) mv_looks_like_message((const uint8_t *)(s), sizeof(s) - 1, &why)
	assert_true(LOOKS("Subject: x\n\nbody\n"));
	assert_true(LOOKS("Received: from x by y; Thu, 1 Jan 2002 00:00:00 +0000\n"));
	assert_true(LOOKS("X-Odd-Name_1 : value\n"));
	assert_true(LOOKS(SEP1 "Subject: x\n\n"));
	assert_true(LOOKS("Subject: x\r\n\r\nbody"));
	assert_false(LOOKS(""));
	assert_string_equal(why, "empty file");
	assert_false(LOOKS("hello world\n"));
	assert_string_equal(why, "no header field at the start");
	assert_false(LOOKS(SEP1));
	assert_string_equal(why, "no header field at the start");
	assert_false(LOOKS(": no name\n"));
	assert_false(LOOKS("\nSubject: x\n"));
	assert_false(LOOKS("Sub\nject: x\n"));
	assert_false(LOOKS("Subject: \x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x00\x00\x00"));
	assert_string_equal(why, "binary data, not a mail message");
	assert_false(mv_looks_like_message(NULL, 0, &why));
	assert_true(mv_looks_like_message((const uint8_t *)"A: b", 4, NULL));
#undef LOOKS
}

static void test_format_names(void **state)
{
	(void)state;
	mv_format f;
	assert_true(mv_format_from_name("eml", &f));
	assert_int_equal(f, MV_FORMAT_EML);
	assert_true(mv_format_from_name("emldir", &f));
	assert_int_equal(f, MV_FORMAT_EMLDIR);
	assert_true(mv_format_from_name("mboxrd", &f));
	assert_int_equal(f, MV_FORMAT_MBOX);
	assert_true(mv_format_from_name("mbox", &f));
	assert_int_equal(f, MV_FORMAT_MBOX);
	assert_true(mv_format_from_name("mboxo", &f));
	assert_int_equal(f, MV_FORMAT_MBOXO);
	assert_true(mv_format_from_name("maildir", &f));
	assert_int_equal(f, MV_FORMAT_MAILDIR);
	assert_true(mv_format_from_name("pst", &f));
	assert_int_equal(f, MV_FORMAT_PST);
	assert_true(mv_format_from_name("msg", &f));
	assert_int_equal(f, MV_FORMAT_MSG);
	assert_false(mv_format_from_name("pdf", &f));
	assert_false(mv_format_from_name(NULL, &f));
	assert_string_equal(mv_format_name(MV_FORMAT_MBOX), "mbox");
	assert_string_equal(mv_format_name(MV_FORMAT_MBOXO), "mboxo");
	assert_string_equal(mv_format_name(MV_FORMAT_MAILDIR), "maildir");
}

/* ---- readers on temporary trees ------------------------------------------------ */

static void write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path = g_build_filename(dir, rel, NULL);
	char *parent = g_path_get_dirname(path);
	assert_int_equal(g_mkdir_with_parents(parent, 0700), 0);
	assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
	g_free(parent);
	g_free(path);
}

static void write_text(const char *dir, const char *rel, const char *text)
{
	write_file(dir, rel, text, strlen(text));
}

static void make_dir(const char *dir, const char *rel)
{
	char *path = g_build_filename(dir, rel, NULL);
	assert_int_equal(g_mkdir_with_parents(path, 0700), 0);
	g_free(path);
}

static void remove_tree(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	if (d) {
		const char *name;
		while ((name = g_dir_read_name(d)) != NULL) {
			char *child = g_build_filename(path, name, NULL);
			struct stat st;
			if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(child);
			else
				assert_int_equal(unlink(child), 0);
			g_free(child);
		}
		g_dir_close(d);
	}
	assert_int_equal(rmdir(path), 0);
}

static char *make_tmpdir(void)
{
	char *dir = g_dir_make_tmp("mv-test-mbox-XXXXXX", NULL);
	assert_non_null(dir);
	return dir;
}

/* Reads everything: one line per result, "M folder flags origin-tail len"
 * or "S reason", so that a whole run compares as one string. */
static char *read_all(const char *path, const mv_reader_options *opts, mv_format *fmt_r)
{
	GError *err = NULL;
	mv_reader *r = mv_reader_open(path, opts, &err);
	assert_null(err);
	assert_non_null(r);
	if (fmt_r)
		*fmt_r = mv_reader_format(r);
	GString *out = g_string_new("");
	mv_source_message msg;
	mv_read_result rr;
	size_t plen = strlen(path);
	while ((rr = mv_reader_next(r, &msg, &err)) != MV_READ_END) {
		assert_int_not_equal(rr, MV_READ_FATAL);
		if (rr == MV_READ_SKIPPED) {
			assert_non_null(err);
			const char *m = err->message;
			const char *at = strstr(m, path);
			GString *clean = g_string_new_len(m, at ? at - m : (gssize)strlen(m));
			if (at)
				g_string_append_printf(clean, "DIR%s", at + plen);
			g_string_append_printf(out, "S %s\n", clean->str);
			g_string_free(clean, TRUE);
			g_clear_error(&err);
			continue;
		}
		assert_null(err);
		const char *tail = strncmp(msg.origin, path, plen) == 0 ? msg.origin + plen : msg.origin;
		g_string_append_printf(out, "M [%s] [%s] %s %u\n", msg.folder, msg.mail_flags, tail, msg.data->len);
	}
	uint64_t done, total;
	mv_reader_progress(r, &done, &total);
	assert_int_equal(done, total);
	assert_int_equal(mv_reader_next(r, &msg, &err), MV_READ_END);
	mv_reader_close(&r);
	assert_null(r);
	return g_string_free(out, FALSE);
}

#define MAIL "Subject: hi\n\nbody\n"

static void test_reader_emldir(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	write_text(dir, "b.eml", MAIL);
	write_text(dir, "a.EML", MAIL "x");
	write_text(dir, "notes.txt", MAIL);
	write_text(dir, ".hidden.eml", MAIL);
	write_text(dir, ".git/c.eml", MAIL);
	write_text(dir, "sub/deeper/d.eml", MAIL);
	write_text(dir, "sub/c.msg", MAIL);
	write_text(dir, "empty.eml", "");
	write_file(dir, "bin.eml", "\x7f" "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 16);
	char *target = g_build_filename(dir, "sub", NULL);
	char *link = g_build_filename(dir, "sub/loop", NULL);
	assert_int_equal(symlink(target, link), 0);

	mv_format fmt;
	mv_reader_options o = { .format = MV_FORMAT_AUTO, .recursive = true };
	char *got = read_all(dir, &o, &fmt);
	assert_int_equal(fmt, MV_FORMAT_EMLDIR);
	assert_string_equal(got,
	                    "M [] [] /a.EML 19\n"
	                    "M [] [] /b.eml 18\n"
	                    "S DIR/bin.eml: binary data, not a mail message\n"
	                    "S DIR/empty.eml: empty file\n"
	                    "M [sub] [] /sub/c.msg 18\n"
	                    "M [sub/deeper] [] /sub/deeper/d.eml 18\n");
	g_free(got);

	char *exts[] = { "msg", "txt", NULL };
	mv_reader_options o2 = { .format = MV_FORMAT_EMLDIR, .recursive = true, .extensions = exts };
	got = read_all(dir, &o2, NULL);
	assert_string_equal(got, "M [] [] /notes.txt 18\nM [sub] [] /sub/c.msg 18\n");
	g_free(got);

	mv_reader_options o3 = { .format = MV_FORMAT_EMLDIR, .recursive = false, .extensions = exts };
	got = read_all(dir, &o3, NULL);
	assert_string_equal(got, "M [] [] /notes.txt 18\n");
	g_free(got);

	char *any[] = { "*", NULL };
	mv_reader_options o4 = { .format = MV_FORMAT_EMLDIR, .recursive = false, .extensions = any };
	got = read_all(dir, &o4, NULL);
	assert_string_equal(got,
	                    "M [] [] /a.EML 19\n"
	                    "M [] [] /b.eml 18\n"
	                    "S DIR/bin.eml: binary data, not a mail message\n"
	                    "S DIR/empty.eml: empty file\n"
	                    "M [] [] /notes.txt 18\n");
	g_free(got);

	/* A single file read as EML. */
	char *b = g_build_filename(dir, "b.eml", NULL);
	got = read_all(b, NULL, &fmt);
	assert_int_equal(fmt, MV_FORMAT_EML);
	assert_string_equal(got, "M [] []  18\n");
	g_free(got);
	char *e = g_build_filename(dir, "empty.eml", NULL);
	got = read_all(e, NULL, NULL);
	assert_string_equal(got, "S DIR: empty file\n");
	g_free(got);

	g_free(b);
	g_free(e);
	g_free(target);
	g_free(link);
	remove_tree(dir);
	g_free(dir);
}

static void test_reader_empty_dir(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	write_text(dir, "readme.txt", "hello\n");
	char *got = read_all(dir, NULL, NULL);
	/* the refusal's origin is the directory: the reason does not repeat it,
	 * and says what was passed over */
	assert_string_equal(got, "S no mail files found (looked for *.eml, *.msg; passed over 1 files with other "
	                         "extensions: --ext '*' imports every file)\n");
	g_free(got);
	remove_tree(dir);
	g_free(dir);
}

static void test_reader_maildir(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	write_text(dir, "cur/1000.M1.host:2,RS", MAIL);
	write_text(dir, "cur/0999.M1.host:2,", MAIL);
	write_text(dir, "new/1001.M2.host", MAIL);
	write_text(dir, "tmp/1002.M3.host", MAIL);
	write_text(dir, ".Lists.GLib/cur/2000.M1.host:2,F", MAIL);
	make_dir(dir, ".Lists.GLib/new");
	make_dir(dir, ".Lists.GLib/tmp");
	write_text(dir, ".Trash/new/3000.M1.host", MAIL);
	write_text(dir, "cur/empty:2,S", "");

	mv_format fmt;
	char *got = read_all(dir, NULL, &fmt);
	assert_int_equal(fmt, MV_FORMAT_MAILDIR);
	assert_string_equal(got,
	                    "M [] [2,] /cur/0999.M1.host:2, 18\n"
	                    "M [] [2,RS] /cur/1000.M1.host:2,RS 18\n"
	                    "S DIR/cur/empty:2,S: empty file\n"
	                    "M [] [2,] /new/1001.M2.host 18\n"
	                    "M [Lists/GLib] [2,F] /.Lists.GLib/cur/2000.M1.host:2,F 18\n"
	                    "M [Trash] [2,] /.Trash/new/3000.M1.host 18\n");
	g_free(got);
	remove_tree(dir);

	/* An empty Maildir says so once. */
	make_dir(dir, "cur");
	make_dir(dir, "new");
	got = read_all(dir, NULL, NULL);
	assert_string_equal(got, "S no mail files found (looked in cur/ and new/)\n");
	g_free(got);
	remove_tree(dir);
	g_free(dir);
}

static void test_reader_mbox(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	const char *mbox = SEP1 MAIL "\n" SEP2 "garbage\n\n" SEP1 "\n" SEP2 "Subject: z\n\n>From x\n>>From y\n";
	write_text(dir, "box", mbox);
	char *path = g_build_filename(dir, "box", NULL);
	mv_format fmt;
	char *got = read_all(path, NULL, &fmt);
	assert_int_equal(fmt, MV_FORMAT_MBOX);
	assert_string_equal(got,
	                    "M [] [] @0 18\n"
	                    "S DIR@67: no header field at the start\n"
	                    "S DIR@122: empty message\n"
	                    "M [] [] @171 27\n");
	g_free(got);
	mv_reader_options o = { .format = MV_FORMAT_MBOXO };
	got = read_all(path, &o, &fmt);
	assert_int_equal(fmt, MV_FORMAT_MBOXO);
	assert_non_null(strstr(got, "M [] [] @171 28\n"));
	g_free(got);
	g_free(path);
	remove_tree(dir);
	g_free(dir);
}

static void test_reader_errors(void **state)
{
	(void)state;
	GError *err = NULL;
	mv_reader *r = mv_reader_open("/nonexistent/mailvault/path", NULL, &err);
	assert_null(r);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "/nonexistent/mailvault/path"));
	g_clear_error(&err);

	mv_format fmt;
	assert_int_equal(mv_format_detect("/nonexistent/x", &fmt, &err), -1);
	assert_non_null(strstr(err->message, "/nonexistent/x"));
	g_clear_error(&err);

	char *dir = make_tmpdir();
	mv_reader_options o = { .format = MV_FORMAT_MBOX };
	r = mv_reader_open(dir, &o, &err);
	assert_null(r);
	assert_non_null(err);
	g_clear_error(&err);
	remove_tree(dir);
	g_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_messages),
		cmocka_unit_test(test_mboxrd_unquoting),
		cmocka_unit_test(test_from_in_body),
		cmocka_unit_test(test_no_final_newline),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_empty_stream),
		cmocka_unit_test(test_garbage_before_first_from),
		cmocka_unit_test(test_blank_lines_kept),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_is_separator),
		cmocka_unit_test(test_looks_like_message),
		cmocka_unit_test(test_format_names),
		cmocka_unit_test(test_reader_emldir),
		cmocka_unit_test(test_reader_empty_dir),
		cmocka_unit_test(test_reader_maildir),
		cmocka_unit_test(test_reader_mbox),
		cmocka_unit_test(test_reader_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
