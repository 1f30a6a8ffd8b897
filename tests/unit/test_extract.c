/* test_extract: attachment documents (extract/), in this process and
 * through the sandboxed worker.
 *
 * The fixtures in tests/fixtures/docs were made by LibreOffice from one
 * text (see the README there); each holds the words "zebracorn" and
 * "quokkafish", and every kind is read both ways.  Hostile documents are
 * built here: PDF bombs (a page tree claiming a billion pages, arrays
 * nested 100,000 deep), zip bombs (one entry of 300 MB of zeros, an XML
 * part that inflates past the budget), a billion-laughs DTD inside a
 * .docx, nested and encrypted archives.  The worker's bounds are tested
 * with lowered limits (test hooks in extract/internal.h): a deadline of
 * 0.3 s against a PDF that takes seconds, a memory limit of 1 MB, and a
 * worker killed in the middle of a request.  After each failure the next
 * document must read.
 *
 * This binary is its own worker: run as `test_extract extract-worker` it
 * serves requests like `mailvault extract-worker`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "fixtures.h"

#include "extract/internal.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIMIT (1024u * 1024u)

/* ---- fixtures ------------------------------------------------------------------------ */

static const char *fixture_dir(void)
{
	static char *dir;
	if (!dir)
		dir = mv_test_fixture_dir(__FILE__, "docs");
	return dir;
}

static GByteArray *fixture(const char *name)
{
	char *path = g_build_filename(fixture_dir(), name, NULL);
	GByteArray *data = NULL;
	GError *err = NULL;
	if (mv_read_file(path, 16 * 1024 * 1024, &data, &err) < 0)
		fail_msg("fixture %s: %s", path, err->message);
	g_free(path);
	return data;
}

typedef struct sample {
	const char *file;
	mv_doc_kind kind;
	const char *words[3];
} sample;

static const sample samples[] = {
	{ "sample.pdf", MV_DOC_PDF, { "zebracorn", "quokkafish", NULL } },
	{ "sample.docx", MV_DOC_OOXML, { "zebracorn", "quokkafish", NULL } },
	{ "sample.xlsx", MV_DOC_OOXML, { "zebracorn", "quokkafish", "42" } },
	{ "sample.pptx", MV_DOC_OOXML, { "zebracorn", "quokkafish", NULL } },
	{ "sample.odt", MV_DOC_ODF, { "zebracorn", "quokkafish", NULL } },
	{ "sample.ods", MV_DOC_ODF, { "zebracorn", "quokkafish", "7.5" } },
	{ "sample.odp", MV_DOC_ODF, { "zebracorn", "quokkafish", NULL } },
	{ "sample.doc", MV_DOC_DOC, { "zebracorn", "quokkafish", NULL } },
	{ "sample.xls", MV_DOC_XLS, { "zebracorn", "quokkafish", "42" } },
	{ "sample.ppt", MV_DOC_PPT, { "zebracorn", "quokkafish", NULL } },
	/* a .docx and a .txt inside */
	{ "sample.zip", MV_DOC_ZIP, { "reports/report.docx", "zebracorn", "platypusorb" } },
};

static void assert_clean_text(const GString *s, size_t max)
{
	assert_true(s->len <= max);
	assert_int_equal(strlen(s->str), s->len);
	assert_true(g_utf8_validate(s->str, (gssize)s->len, NULL));
	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->str[i];
		assert_false((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f);
	}
}

static void assert_words(const GString *s, const char *const *words, size_t n)
{
	for (size_t i = 0; i < n && words[i]; i++)
		if (!strstr(s->str, words[i]))
			fail_msg("'%s' missing from: %.300s", words[i], s->str);
}

static double now_s(void)
{
	return (double)g_get_monotonic_time() / G_USEC_PER_SEC;
}

/* ---- documents built here --------------------------------------------------------------- */

typedef struct filler {
	const char *head; /* written first */
	uint64_t size;    /* total bytes */
	char fill;        /* the rest */
	uint64_t pos;
	zip_error_t error;
} filler;

/* A libzip source of `size` bytes that never exist in memory at once. */
static zip_int64_t filler_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	filler *f = ud;
	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		f->pos = 0;
		return 0;
	case ZIP_SOURCE_READ: {
		uint64_t n = MIN(len, f->size - f->pos);
		uint64_t head = strlen(f->head), from_head = f->pos < head ? MIN(n, head - f->pos) : 0;
		if (from_head > 0)
			memcpy(data, f->head + f->pos, from_head);
		memset((char *)data + from_head, f->fill, n - from_head);
		f->pos += n;
		return (zip_int64_t)n;
	}
	case ZIP_SOURCE_CLOSE:
	case ZIP_SOURCE_FREE:
		return 0;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = data;
		zip_stat_init(st);
		st->size = f->size;
		st->valid |= ZIP_STAT_SIZE;
		return sizeof *st;
	}
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&f->error, data, len);
	case ZIP_SOURCE_SUPPORTS:
		return ZIP_SOURCE_SUPPORTS_READABLE;
	default:
		return -1;
	}
}

typedef struct entry {
	const char *name;
	const void *data; /* NULL: the filler */
	size_t len;
	filler *filler;
	bool encrypt;
} entry;

/* A ZIP archive in memory (libzip writing into a buffer source). */
static GByteArray *make_zip(const entry *entries, size_t n)
{
	zip_error_t zerr;
	zip_error_init(&zerr);
	zip_source_t *buf = zip_source_buffer_create(NULL, 0, 0, &zerr);
	assert_non_null(buf);
	zip_source_keep(buf);
	zip_t *za = zip_open_from_source(buf, ZIP_TRUNCATE, &zerr);
	assert_non_null(za);
	for (size_t i = 0; i < n; i++) {
		zip_source_t *s = entries[i].filler ? zip_source_function(za, filler_cb, entries[i].filler)
		                                    : zip_source_buffer(za, entries[i].data, entries[i].len, 0);
		assert_non_null(s);
		zip_int64_t idx = zip_file_add(za, entries[i].name, s, ZIP_FL_OVERWRITE);
		assert_true(idx >= 0);
		/* hundreds of megabytes: deflate them fast */
		if (entries[i].filler)
			assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 1), 0);
		if (entries[i].encrypt)
			assert_int_equal(zip_file_set_encryption(za, (zip_uint64_t)idx, ZIP_EM_AES_256, "pw"), 0);
	}
	assert_int_equal(zip_close(za), 0);
	assert_int_equal(zip_source_open(buf), 0);
	assert_int_equal(zip_source_seek(buf, 0, SEEK_END), 0);
	zip_int64_t size = zip_source_tell(buf);
	assert_int_equal(zip_source_seek(buf, 0, SEEK_SET), 0);
	GByteArray *out = g_byte_array_sized_new((guint)size);
	g_byte_array_set_size(out, (guint)size);
	assert_int_equal(zip_source_read(buf, out->data, (zip_uint64_t)size), size);
	zip_source_close(buf);
	zip_source_free(buf);
	zip_error_fini(&zerr);
	return out;
}

#define W_NS "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
#define CONTENT_TYPES "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>"

static GByteArray *make_docx(const char *document_xml)
{
	entry e[] = {
		{ "[Content_Types].xml", CONTENT_TYPES, strlen(CONTENT_TYPES), NULL, false },
		{ "word/document.xml", document_xml, strlen(document_xml), NULL, false },
	};
	return make_zip(e, G_N_ELEMENTS(e));
}

/* A PDF with a correct cross-reference table: objects are numbered from 1
 * in the order given. */
static GByteArray *make_pdf(const char *const *objects, size_t n)
{
	GString *s = g_string_new("%PDF-1.4\n");
	size_t *offsets = g_new(size_t, n);
	for (size_t i = 0; i < n; i++) {
		offsets[i] = s->len;
		g_string_append_printf(s, "%zu 0 obj\n%s\nendobj\n", i + 1, objects[i]);
	}
	size_t xref = s->len;
	g_string_append_printf(s, "xref\n0 %zu\n0000000000 65535 f \n", n + 1);
	for (size_t i = 0; i < n; i++)
		g_string_append_printf(s, "%010zu 00000 n \n", offsets[i]);
	g_string_append_printf(s, "trailer\n<</Size %zu/Root 1 0 R>>\nstartxref\n%zu\n%%%%EOF\n", n + 1, xref);
	g_free(offsets);
	GByteArray *b = g_byte_array_new();
	g_byte_array_append(b, (const guint8 *)s->str, (guint)s->len);
	g_string_free(s, TRUE);
	return b;
}

/* Pages that all draw one content stream of `repeats` strings: seconds
 * of work for poppler's text layout (about 0.15 s per page of 100,000),
 * from a file of a megabyte or two. */
static GByteArray *make_slow_pdf(size_t repeats, int pages)
{
	GString *content = g_string_new("BT /F1 1 Tf ");
	for (size_t i = 0; i < repeats; i++)
		g_string_append_printf(content, "%zu %zu Td (w%zu) Tj ", i % 7, i % 5, i % 97);
	g_string_append(content, "ET");
	GPtrArray *objs = g_ptr_array_new_with_free_func(g_free);
	GString *kids = g_string_new(NULL);
	for (int i = 0; i < pages; i++)
		g_string_append_printf(kids, "%d 0 R ", i + 5);
	g_ptr_array_add(objs, g_strdup("<</Type/Catalog/Pages 2 0 R>>"));
	g_ptr_array_add(objs, g_strdup_printf("<</Type/Pages/Kids[%s]/Count %d>>", kids->str, pages));
	g_ptr_array_add(objs, g_strdup("<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"));
	g_ptr_array_add(objs, g_strdup_printf("<</Length %zu>>\nstream\n%s\nendstream", content->len, content->str));
	for (int i = 0; i < pages; i++)
		g_ptr_array_add(objs, g_strdup("<</Type/Page/Parent 2 0 R/MediaBox[0 0 600 800]"
		                               "/Resources<</Font<</F1 3 0 R>>>>/Contents 4 0 R>>"));
	GByteArray *b = make_pdf((const char *const *)objs->pdata, objs->len);
	g_ptr_array_unref(objs);
	g_string_free(kids, TRUE);
	g_string_free(content, TRUE);
	return b;
}

/* ---- detection ---------------------------------------------------------------------------- */

static void test_detect_by_type_and_name(void **state)
{
	assert_int_equal(mv_doc_kind_detect("application/pdf", NULL, NULL, 0), MV_DOC_PDF);
	assert_int_equal(mv_doc_kind_detect("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	                                    NULL, NULL, 0), MV_DOC_OOXML);
	assert_int_equal(mv_doc_kind_detect("application/vnd.ms-excel.sheet.macroenabled.12", NULL, NULL, 0),
	                 MV_DOC_OOXML);
	assert_int_equal(mv_doc_kind_detect("application/vnd.oasis.opendocument.text", NULL, NULL, 0), MV_DOC_ODF);
	assert_int_equal(mv_doc_kind_detect("application/msword", NULL, NULL, 0), MV_DOC_DOC);
	assert_int_equal(mv_doc_kind_detect("application/vnd.ms-excel", NULL, NULL, 0), MV_DOC_XLS);
	assert_int_equal(mv_doc_kind_detect("application/vnd.ms-powerpoint", NULL, NULL, 0), MV_DOC_PPT);
	assert_int_equal(mv_doc_kind_detect("application/x-zip-compressed", NULL, NULL, 0), MV_DOC_ZIP);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", "Report.PDF", NULL, 0), MV_DOC_PDF);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", "a.b.xlsm", NULL, 0), MV_DOC_OOXML);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", "x.ppt", NULL, 0), MV_DOC_PPT);
	assert_int_equal(mv_doc_kind_detect(NULL, "archive.zip", NULL, 0), MV_DOC_ZIP);
	/* a type that names something else wins over the name */
	assert_int_equal(mv_doc_kind_detect("image/png", "x.pdf", NULL, 0), MV_DOC_NONE);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", "x.exe", NULL, 0), MV_DOC_NONE);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", ".pdf", NULL, 0), MV_DOC_NONE);
	assert_int_equal(mv_doc_kind_detect("application/octet-stream", NULL, NULL, 0), MV_DOC_NONE);
	assert_string_equal(mv_doc_kind_name(MV_DOC_PDF), "PDF");
}

static void test_detect_by_bytes(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
		GByteArray *d = fixture(samples[i].file);
		/* the bytes decide, whatever the name says */
		mv_doc_kind k = mv_doc_kind_detect("application/octet-stream", samples[i].file, d->data, d->len);
		if (k != samples[i].kind)
			fail_msg("%s detected as %s", samples[i].file, mv_doc_kind_name(k));
		g_byte_array_unref(d);
	}
	/* a .docx sent as a .zip; an .xls named .doc */
	GByteArray *docx = make_docx("<w:document xmlns:w=\"" W_NS "\"/>");
	assert_int_equal(mv_doc_kind_detect("application/zip", "x.zip", docx->data, docx->len), MV_DOC_OOXML);
	g_byte_array_unref(docx);
	GByteArray *xls = fixture("sample.xls");
	assert_int_equal(mv_doc_kind_detect("application/msword", "x.doc", xls->data, xls->len), MV_DOC_XLS);
	g_byte_array_unref(xls);
	const uint8_t junk[] = "GIF89a not a document";
	assert_int_equal(mv_doc_kind_detect("application/pdf", "x.pdf", junk, sizeof junk), MV_DOC_NONE);
	assert_int_equal(mv_doc_kind_detect("application/pdf", "x.pdf", junk, 0), MV_DOC_NONE);
}

/* ---- the sandbox ------------------------------------------------------------------------ */

enum {
	P_SOCKET = 1 << 0, P_CREATE = 1 << 1, P_WRITE_OPEN = 1 << 2, P_READ_OPEN = 1 << 3, P_KILL_OTHER = 1 << 4,
	P_KILL_SELF = 1 << 5, P_EXEC = 1 << 6, P_MKDIR = 1 << 7, P_UNLINK = 1 << 8, P_PTRACE = 1 << 9,
	P_TOOL = 1 << 10, P_FLOCK = 1 << 11, P_RLIMITS = 1 << 12, P_RENAME = 1 << 13, P_SETUP = 1 << 14,
	P_SECRET = 1 << 15,
};

static bool refused(int rc, int want)
{
	return rc < 0 && errno == want;
}

/* In a child: enter the worker's sandbox and try what it must refuse, and
 * what it must still allow.  Bits of what went wrong. */
static int probe_sandbox(const char *scratch)
{
	bool was_root = geteuid() == 0;
	if (mv_extract_sandbox_enter() != 0)
		return P_SETUP;
	int bad = 0;
	/* Started by root, the worker is nobody: a 0600 file of root's (the
	 * data directory's key) is out of its reach. */
	char *secret = g_build_filename(scratch, "secret", NULL);
	int sfd = open(secret, O_RDONLY);
	if (was_root && (sfd >= 0 || geteuid() == 0))
		bad |= P_SECRET;
	if (sfd >= 0)
		close(sfd);
	g_free(secret);
	if (!refused(socket(AF_INET, SOCK_STREAM, 0), EACCES) || !refused(socket(AF_UNIX, SOCK_DGRAM, 0), EACCES))
		bad |= P_SOCKET;
	char *file = g_build_filename(scratch, "new", NULL);
	if (!refused(open(file, O_WRONLY | O_CREAT, 0600), EACCES) || !refused(creat(file, 0600), EACCES))
		bad |= P_CREATE;
	char *existing = g_build_filename(scratch, "existing", NULL);
	if (!refused(open(existing, O_RDWR), EACCES) || !refused(open(existing, O_WRONLY | O_APPEND), EACCES) ||
	    !refused(open("/dev/null", O_WRONLY), EACCES))
		bad |= P_WRITE_OPEN;
	int fd = open(existing, O_RDONLY);
	if (fd < 0)
		bad |= P_READ_OPEN;
	if (fd >= 0 && !refused(flock(fd, LOCK_EX | LOCK_NB), EACCES))
		bad |= P_FLOCK;
	if (!refused(unlink(existing), EACCES))
		bad |= P_UNLINK;
	if (!refused(rename(existing, file), EACCES))
		bad |= P_RENAME;
	if (!refused(mkdir(file, 0700), EACCES))
		bad |= P_MKDIR;
	if (!refused(kill(getppid(), 0), EPERM))
		bad |= P_KILL_OTHER;
	if (kill(getpid(), 0) != 0)
		bad |= P_KILL_SELF;
	if (!refused((int)ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM))
		bad |= P_PTRACE;
	char *argv[] = { "true", NULL }, *envp[] = { NULL };
	if (!refused(execve("/bin/true", argv, envp), EACCES))
		bad |= P_EXEC;
	/* The legacy tools may run, from the pinned path table. */
	pid_t pid = fork();
	if (pid == 0) {
		char *targv[] = { "catdoc", "-V", NULL };
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 1);
		execve(MV_TOOL_CATDOC, targv, envp);
		_exit(99);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bad |= P_TOOL;
	struct rlimit core, files;
	if (getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_max != 0 || getrlimit(RLIMIT_NOFILE, &files) != 0 ||
	    files.rlim_max != 64)
		bad |= P_RLIMITS;
	g_free(file);
	g_free(existing);
	return bad;
}

static void test_sandbox(void **state)
{
	char *scratch = g_dir_make_tmp("test_extract-XXXXXX", NULL);
	assert_non_null(scratch);
	char *existing = g_build_filename(scratch, "existing", NULL);
	assert_true(g_file_set_contents(existing, "x", 1, NULL));
	char *secret = g_build_filename(scratch, "secret", NULL);
	assert_true(g_file_set_contents(secret, "key", 3, NULL));
	/* Readable by anyone but the secret: the probe may run as nobody. */
	assert_int_equal(chmod(scratch, 0755), 0);
	assert_int_equal(chmod(existing, 0644), 0);
	assert_int_equal(chmod(secret, 0600), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int bad = probe_sandbox(scratch);
		if (write(p[1], &bad, sizeof bad) != sizeof bad)
			_exit(1);
		_exit(42);
	}
	close(p[1]);
	int bad = -1, status = 0;
	assert_int_equal(read(p[0], &bad, sizeof bad), sizeof bad);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 42);
	if (bad != 0)
		fail_msg("sandbox probe failed: 0x%x", bad);
	/* nothing was created, nothing removed */
	assert_true(g_file_test(existing, G_FILE_TEST_EXISTS));
	char *created = g_build_filename(scratch, "new", NULL);
	assert_false(g_file_test(created, G_FILE_TEST_EXISTS));
	unlink(existing);
	unlink(secret);
	g_free(secret);
	rmdir(scratch);
	g_free(created);
	g_free(existing);
	g_free(scratch);
}

/* The worker runs with the filter and the limits. */
static void test_worker_is_sandboxed(void **state)
{
	GByteArray *d = fixture("sample.docx");
	GString *out = g_string_new(NULL);
	assert_int_equal(mv_extract_document(MV_DOC_OOXML, d->data, d->len, out, LIMIT, NULL), 0);
	pid_t pid = mv_extract_worker_pid();
	char *path = g_strdup_printf("/proc/%d/status", (int)pid);
	char *status = NULL;
	assert_true(g_file_get_contents(path, &status, NULL, NULL));
	assert_non_null(strstr(status, "Seccomp:\t2"));
	assert_non_null(strstr(status, "NoNewPrivs:\t1"));
	g_free(status);
	g_free(path);
	path = g_strdup_printf("/proc/%d/limits", (int)pid);
	char *limits = NULL;
	assert_true(g_file_get_contents(path, &limits, NULL, NULL));
	assert_non_null(strstr(limits, "Max core file size        0"));
	assert_non_null(strstr(limits, "Max open files            64"));
	g_free(limits);
	g_free(path);
	/* its own process group, for the tools it runs */
	assert_int_equal(getpgid(pid), pid);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);
}

/* ---- every kind, both ways ---------------------------------------------------------------- */

static void test_direct_every_kind(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
		GByteArray *d = fixture(samples[i].file);
		GString *out = g_string_new(NULL);
		GError *err = NULL;
		if (mv_extract_direct(samples[i].kind, d->data, d->len, 0, out, LIMIT, &err) != 0)
			fail_msg("%s: %s", samples[i].file, err ? err->message : "?");
		assert_words(out, samples[i].words, 3);
		assert_clean_text(out, LIMIT);
		g_string_free(out, TRUE);
		g_byte_array_unref(d);
	}
}

static void test_worker_every_kind(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
		GByteArray *d = fixture(samples[i].file);
		GString *out = g_string_new(NULL);
		GError *err = NULL;
		if (mv_extract_document(samples[i].kind, d->data, d->len, out, LIMIT, &err) != 0)
			fail_msg("%s: %s", samples[i].file, err ? err->message : "?");
		assert_words(out, samples[i].words, 3);
		assert_clean_text(out, LIMIT);
		g_string_free(out, TRUE);
		g_byte_array_unref(d);
	}
	assert_true(mv_extract_worker_pid() > 0);
}

/* The document extractor as mime's parser finds and calls it. */
static void test_registered_extractor(void **state)
{
	const mv_text_extractor *ex = mv_text_extractor_find("application/octet-stream", "Budget.xlsx");
	assert_non_null(ex);
	assert_string_equal(ex->name, "document");
	assert_null(mv_text_extractor_find("application/octet-stream", "photo.jpg"));
	GByteArray *d = fixture("sample.docx");
	mv_extract_request req = { d->data, d->len, NULL, "application/octet-stream", "sample.docx" };
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(ex->extract(&req, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "zebracorn"));
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	/* garbage named .pdf */
	const uint8_t junk[] = "GIF89a\x01\x02 and so on";
	mv_extract_request bad = { junk, sizeof junk - 1, NULL, "application/pdf", "invoice.pdf" };
	out = g_string_new(NULL);
	assert_int_equal(ex->extract(&bad, out, LIMIT, &err), -1);
	assert_int_equal(err->code, MV_ERR_INVALID);
	assert_string_equal(err->message, "not a PDF (starts with GIF89a\\x01\\x02)");
	g_clear_error(&err);
	g_string_free(out, TRUE);

	/* an empty .xls */
	mv_extract_request empty = { junk, 0, NULL, "application/vnd.ms-excel", "a.xls" };
	out = g_string_new(NULL);
	assert_int_equal(ex->extract(&empty, out, LIMIT, &err), -1);
	assert_string_equal(err->message, "not an Excel workbook (starts with nothing: it is empty)");
	g_clear_error(&err);
	g_string_free(out, TRUE);

	/* RTF saved as .doc goes to mime's RTF reader */
	const char rtf[] = "{\\rtf1\\ansi Hello zebracorn\\par}";
	mv_extract_request as_doc = { (const uint8_t *)rtf, strlen(rtf), NULL, "application/msword", "letter.doc" };
	out = g_string_new(NULL);
	assert_int_equal(ex->extract(&as_doc, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "zebracorn"));
	g_string_free(out, TRUE);

	/* a password-protected .docx is a Compound File with an EncryptedPackage */
	/* (the header sector, then a directory entry naming the stream) */
	GByteArray *cfb = g_byte_array_new();
	const uint8_t magic[8] = { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 };
	g_byte_array_append(cfb, magic, 8);
	g_byte_array_set_size(cfb, 512);
	memset(cfb->data + 8, 0, 504);
	const char *name = "EncryptedPackage";
	for (const char *p = name; *p; p++) {
		uint8_t u[2] = { (uint8_t)*p, 0 };
		g_byte_array_append(cfb, u, 2);
	}
	const uint8_t nul[2] = { 0, 0 };
	g_byte_array_append(cfb, nul, 2);
	mv_extract_request enc = { cfb->data, cfb->len, NULL, "application/octet-stream", "secret.docx" };
	out = g_string_new(NULL);
	assert_int_equal(ex->extract(&enc, out, LIMIT, &err), -1);
	assert_string_equal(err->message, "password-protected Office Open XML document");
	g_clear_error(&err);
	g_string_free(out, TRUE);
	g_byte_array_unref(cfb);
}

/* ---- bounds ------------------------------------------------------------------------------ */

/* The limit counts bytes added, is kept on a character boundary, both ways. */
static void test_text_limit(void **state)
{
	GByteArray *d = make_docx("<w:document xmlns:w=\"" W_NS "\"><w:body><w:p><w:r><w:t>"
	                          "\xC3\xA4\xC3\xB6\xC3\xBC\xC3\xA4\xC3\xB6\xC3\xBC zebracorn</w:t></w:r></w:p>"
	                          "</w:body></w:document>");
	for (int way = 0; way < 2; way++) {
		GString *out = g_string_new("prefix:");
		GError *err = NULL;
		int rc = way == 0 ? mv_extract_direct(MV_DOC_OOXML, d->data, d->len, 0, out, 5, &err)
		                  : mv_extract_document(MV_DOC_OOXML, d->data, d->len, out, 5, &err);
		assert_int_equal(rc, 0);
		assert_string_equal(out->str, "prefix:\xC3\xA4\xC3\xB6");
		g_string_free(out, TRUE);
	}
	g_byte_array_unref(d);

	GError *err = NULL;
	GString *out = g_string_new(NULL);
	assert_int_equal(mv_extract_document(MV_DOC_PDF, (const uint8_t *)"", (size_t)MV_EXTRACT_MAX_INPUT + 1, out,
	                                     LIMIT, &err), -1);
	assert_int_equal(err->code, MV_ERR_LIMIT);
	g_clear_error(&err);
	g_string_free(out, TRUE);
}

static void test_appender(void **state)
{
	GString *out = g_string_new(NULL);
	const char in[] = "a\r\nb\rc\x01" "d\xFF" "e\tf\x7f";
	assert_true(mv_doc_append(out, 100, in, sizeof in - 1));
	assert_string_equal(out->str, "a\nb\nc d\xEF\xBF\xBD" "e\tf ");
	g_string_truncate(out, 0);
	/* cut inside a character: nothing of it */
	assert_false(mv_doc_append(out, 3, "ab\xC3\xA4", 4));
	assert_string_equal(out->str, "ab");
	g_string_free(out, TRUE);
}

/* The XML readers: ODF spaces, tabs and breaks; shared strings and cell
 * values; Word's fallback content left out. */
static void test_office_details(void **state)
{
	const char *word = "<w:document xmlns:w=\"" W_NS "\" xmlns:mc=\"http://schemas.openxmlformats.org/"
	                   "markup-compatibility/2006\"><w:body><w:p><w:r><w:t>one</w:t><w:tab/><w:t>two</w:t>"
	                   "<w:br/><w:t xml:space=\"preserve\">three &amp; four</w:t></w:r></w:p>"
	                   "<w:p><mc:AlternateContent><mc:Choice><w:t>chosen</w:t></mc:Choice>"
	                   "<mc:Fallback><w:t>fallback</w:t></mc:Fallback></mc:AlternateContent></w:p>"
	                   "<w:p><w:r><w:instrText>PAGE</w:instrText><w:t><![CDATA[cdata]]></w:t></w:r></w:p>"
	                   "</w:body></w:document>";
	GByteArray *d = make_docx(word);
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), 0);
	assert_string_equal(out->str, "one\ttwo\nthree & four\nchosen\ncdata\n");
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	const char *content = "<office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" "
	                      "xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\"><office:body><office:text>"
	                      "<text:h>Title</text:h><text:p>a<text:s text:c=\"3\"/>b<text:tab/>c<text:line-break/>"
	                      "<text:span>d</text:span></text:p></office:text></office:body></office:document-content>";
	entry odt[] = {
		{ "mimetype", "application/vnd.oasis.opendocument.text", 39, NULL, false },
		{ "content.xml", content, strlen(content), NULL, false },
	};
	d = make_zip(odt, G_N_ELEMENTS(odt));
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), 0);
	assert_string_equal(out->str, "Title\na   b\tc\nd\n");
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	const char *strings = "<sst><si><t>alpha</t></si><si><r><t>be</t></r><r><t>ta</t></r><rPh><t>x</t></rPh></si></sst>";
	const char *sheet = "<worksheet><sheetData><row><c t=\"s\"><v>1</v></c><c><v>3.25</v></c>"
	                    "<c t=\"inlineStr\"><is><t>inline</t></is></c><c><f>A1*2</f><v>6.5</v></c></row>"
	                    "</sheetData></worksheet>";
	const char *sheet10 = "<worksheet><sheetData><row><c><v>10</v></c></row></sheetData></worksheet>";
	entry xlsx[] = {
		{ "[Content_Types].xml", CONTENT_TYPES, strlen(CONTENT_TYPES), NULL, false },
		{ "xl/worksheets/sheet10.xml", sheet10, strlen(sheet10), NULL, false },
		{ "xl/worksheets/sheet2.xml", sheet, strlen(sheet), NULL, false },
		{ "xl/sharedStrings.xml", strings, strlen(strings), NULL, false },
	};
	d = make_zip(xlsx, G_N_ELEMENTS(xlsx));
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), 0);
	assert_string_equal(out->str, "alpha\nbeta\n3.25\tinline\t6.5\t\n10\t\n");
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	/* broken XML: what was read is kept, the failure named */
	d = make_docx("<w:document xmlns:w=\"" W_NS "\"><w:body><w:p><w:t>kept</w:t></w:p><w:p></w:body>");
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), -1);
	assert_non_null(strstr(err->message, "damaged document part"));
	assert_non_null(strstr(out->str, "kept"));
	g_clear_error(&err);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	/* a ZIP with no document inside */
	entry other[] = { { "readme.txt", "hi", 2, NULL, false } };
	d = make_zip(other, 1);
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), -1);
	assert_int_equal(err->code, MV_ERR_INVALID);
	g_clear_error(&err);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);
}

/* ---- hostile documents --------------------------------------------------------------------- */

/* Reads `d` in the worker and returns within the deadline, with an error
 * or bounded text; then a real document still reads. */
static void survives(mv_doc_kind kind, const GByteArray *d, int *rc_r, GError **err_r)
{
	GString *out = g_string_new(NULL);
	double t0 = now_s();
	int rc = mv_extract_document(kind, d->data, d->len, out, LIMIT, err_r);
	assert_true(now_s() - t0 < MV_EXTRACT_TIMEOUT_MS / 1000.0 + 5);
	assert_clean_text(out, LIMIT);
	g_string_free(out, TRUE);
	if (rc_r)
		*rc_r = rc;

	GByteArray *ok = fixture("sample.pdf");
	out = g_string_new(NULL);
	GError *err = NULL;
	if (mv_extract_document(MV_DOC_PDF, ok->data, ok->len, out, LIMIT, &err) != 0)
		fail_msg("next document: %s", err->message);
	assert_non_null(strstr(out->str, "zebracorn"));
	g_string_free(out, TRUE);
	g_byte_array_unref(ok);
}

static void test_malformed_pdfs(void **state)
{
	GByteArray *d = fixture("sample.pdf");
	GError *err = NULL;
	/* cut in half */
	g_byte_array_set_size(d, d->len / 2);
	survives(MV_DOC_PDF, d, NULL, &err);
	g_clear_error(&err);
	/* not a PDF at all, in this process too */
	GString *out = g_string_new(NULL);
	const char junk[] = "%PDF-1.7 and then nothing of a PDF";
	assert_int_equal(mv_extract_direct(MV_DOC_PDF, (const uint8_t *)junk, strlen(junk), 0, out, LIMIT, &err), -1);
	assert_non_null(strstr(err->message, "damaged PDF"));
	g_clear_error(&err);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	d = fixture("encrypted.pdf");
	int rc = 0;
	survives(MV_DOC_PDF, d, &rc, &err);
	assert_int_equal(rc, -1);
	assert_string_equal(err->message, "encrypted PDF");
	g_clear_error(&err);
	g_byte_array_unref(d);
}

static void test_pdf_bombs(void **state)
{
	/* A page tree claiming a billion pages: ten levels of ten kids each,
	 * every one the same object. */
	GPtrArray *objs = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(objs, g_strdup("<</Type/Catalog/Pages 2 0 R>>"));
	for (int level = 0; level < 9; level++) {
		GString *kids = g_string_new(NULL);
		for (int k = 0; k < 10; k++)
			g_string_append_printf(kids, "%d 0 R ", level + 3);
		long long count = 1;
		for (int p = level; p < 9; p++)
			count *= 10;
		g_ptr_array_add(objs, g_strdup_printf("<</Type/Pages/Kids[%s]/Count %lld>>", kids->str, count));
		g_string_free(kids, TRUE);
	}
	g_ptr_array_add(objs, g_strdup("<</Type/Page/MediaBox[0 0 10 10]>>"));
	GByteArray *d = make_pdf((const char *const *)objs->pdata, objs->len);
	GError *err = NULL;
	survives(MV_DOC_PDF, d, NULL, &err);
	g_clear_error(&err);
	g_byte_array_unref(d);
	g_ptr_array_unref(objs);

	/* arrays nested 100,000 deep, and a dictionary likewise */
	GString *deep = g_string_new(NULL);
	for (int i = 0; i < 100000; i++)
		g_string_append_c(deep, '[');
	const char *objects[] = { "<</Type/Catalog/Pages 2 0 R/X 3 0 R>>", "<</Type/Pages/Kids[]/Count 0>>", deep->str };
	d = make_pdf(objects, G_N_ELEMENTS(objects));
	survives(MV_DOC_PDF, d, NULL, &err);
	g_clear_error(&err);
	g_byte_array_unref(d);
	g_string_truncate(deep, 0);
	for (int i = 0; i < 100000; i++)
		g_string_append(deep, "<</A ");
	objects[2] = deep->str;
	d = make_pdf(objects, G_N_ELEMENTS(objects));
	survives(MV_DOC_PDF, d, NULL, &err);
	g_clear_error(&err);
	g_byte_array_unref(d);
	g_string_free(deep, TRUE);
}

static void test_zip_bombs(void **state)
{
	/* 130 MB of zeros named .pdf: more than a document may be; and a text
	 * file of 130 MB read only as far as its text is wanted */
	filler big = { "", 130ull * 1024 * 1024, 0, 0, { 0 } };
	entry one[] = {
		{ "zeros.pdf", NULL, 0, &big, false },
		{ "zeros.txt", NULL, 0, &big, false },
		{ "small.txt", "small words", 11, NULL, false },
	};
	GByteArray *d = make_zip(one, G_N_ELEMENTS(one));
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_direct(MV_DOC_ZIP, d->data, d->len, 0, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "zeros.pdf (too large, not read)\nzeros.txt\n"));
	assert_non_null(strstr(out->str, "small.txt\nsmall words"));
	assert_clean_text(out, LIMIT);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);

	/* three documents of 100 MB of zeros each (about 100 KB deflated
	 * each): past the inflation budget of the archive */
	filler zeros = { "", 100ull * 1024 * 1024, 0, 0, { 0 } };
	entry bomb[] = {
		{ "a.pdf", NULL, 0, &zeros, false }, { "b.pdf", NULL, 0, &zeros, false }, { "c.pdf", NULL, 0, &zeros, false },
	};
	d = make_zip(bomb, G_N_ELEMENTS(bomb));
	assert_true(d->len < 2 * 1024 * 1024);
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_direct(MV_DOC_ZIP, d->data, d->len, 0, out, LIMIT, &err), -1);
	assert_int_equal(err->code, MV_ERR_LIMIT);
	assert_string_equal(err->message, "document expands beyond 256 MB (zip bomb?)");
	g_clear_error(&err);
	g_string_free(out, TRUE);
	int rc = 0;
	survives(MV_DOC_ZIP, d, &rc, &err);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err->message, "zip bomb"));
	g_clear_error(&err);
	g_byte_array_unref(d);

	/* a .docx whose body is 300 MB of white space */
	filler xml = { "<w:document xmlns:w=\"" W_NS "\"><w:body>", 300ull * 1024 * 1024, ' ', 0, { 0 } };
	entry docx[] = {
		{ "[Content_Types].xml", CONTENT_TYPES, strlen(CONTENT_TYPES), NULL, false },
		{ "word/document.xml", NULL, 0, &xml, false },
	};
	d = make_zip(docx, G_N_ELEMENTS(docx));
	survives(MV_DOC_OOXML, d, &rc, &err);
	assert_int_equal(rc, -1);
	assert_int_equal(err->code, MV_ERR_LIMIT);
	assert_non_null(strstr(err->message, "zip bomb"));
	g_clear_error(&err);
	g_byte_array_unref(d);
}

static void test_billion_laughs(void **state)
{
	GString *xml = g_string_new("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
	for (int i = 1; i <= 9; i++) {
		g_string_append_printf(xml, "<!ENTITY lol%d \"", i);
		for (int k = 0; k < 10; k++)
			g_string_append_printf(xml, i == 1 ? "&lol;" : "&lol%d;", i - 1);
		g_string_append(xml, "\">");
	}
	g_string_append(xml, "]><w:document xmlns:w=\"" W_NS "\"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>"
	                     "</w:body></w:document>");
	GByteArray *d = make_docx(xml->str);
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	double t0 = now_s();
	assert_int_equal(mv_extract_office_xml(d->data, d->len, out, LIMIT, &err), -1);
	assert_true(now_s() - t0 < 2);
	assert_non_null(strstr(err->message, "DTD"));
	assert_int_equal(out->len, 0);
	g_clear_error(&err);
	g_string_free(out, TRUE);
	int rc = 0;
	survives(MV_DOC_OOXML, d, &rc, &err);
	assert_int_equal(rc, -1);
	g_clear_error(&err);
	g_byte_array_unref(d);
	g_string_free(xml, TRUE);
}

/* Archives in archives: text read three levels down, names only below;
 * an encrypted entry is named and noted. */
static void test_nested_and_encrypted_zip(void **state)
{
	GByteArray *inner = NULL;
	for (int level = 5; level >= 1; level--) {
		char *txt = g_strdup_printf("level%d text", level);
		char *name = g_strdup_printf("level%d.txt", level);
		entry e[] = {
			{ name, txt, strlen(txt), NULL, false },
			{ "inner.zip", inner ? inner->data : NULL, inner ? inner->len : 0, NULL, false },
		};
		GByteArray *z = make_zip(e, inner ? 2 : 1);
		if (inner)
			g_byte_array_unref(inner);
		inner = z;
		g_free(txt);
		g_free(name);
	}
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_direct(MV_DOC_ZIP, inner->data, inner->len, 0, out, LIMIT, &err), 0);
	for (int level = 1; level <= 3; level++) {
		char *want = g_strdup_printf("level%d text", level);
		assert_non_null(strstr(out->str, want));
		g_free(want);
	}
	assert_non_null(strstr(out->str, "level4.txt"));
	assert_null(strstr(out->str, "level4 text"));
	assert_null(strstr(out->str, "level5"));
	g_string_free(out, TRUE);
	g_byte_array_unref(inner);

	entry enc[] = {
		{ "secret.txt", "hidden words", 12, NULL, true },
		{ "open.txt", "visible words", 13, NULL, false },
	};
	GByteArray *d = make_zip(enc, G_N_ELEMENTS(enc));
	out = g_string_new(NULL);
	assert_int_equal(mv_extract_document(MV_DOC_ZIP, d->data, d->len, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "secret.txt (encrypted)"));
	assert_null(strstr(out->str, "hidden"));
	assert_non_null(strstr(out->str, "visible words"));
	g_string_free(out, TRUE);
	g_byte_array_unref(d);
}

/* ---- the worker's bounds ----------------------------------------------------------------------- */

static void test_timeout(void **state)
{
	GByteArray *slow = make_slow_pdf(100000, 40);
	mv_extract_set_timeout_ms(300);
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	double t0 = now_s();
	assert_int_equal(mv_extract_document(MV_DOC_PDF, slow->data, slow->len, out, LIMIT, &err), -1);
	double took = now_s() - t0;
	mv_extract_set_timeout_ms(MV_EXTRACT_TIMEOUT_MS);
	assert_true(took < 3);
	assert_int_equal(err->code, MV_ERR_LIMIT);
	assert_string_equal(err->message, "timed out after 0.3 s");
	assert_int_equal(mv_extract_worker_pid(), 0);
	g_clear_error(&err);
	g_string_free(out, TRUE);
	g_byte_array_unref(slow);
	GByteArray *empty = g_byte_array_new();
	survives(MV_DOC_ZIP, empty, NULL, &err);
	g_clear_error(&err);
	g_byte_array_unref(empty);
}

static void test_memory_limit(void **state)
{
	GByteArray *d = fixture("sample.docx");
	mv_extract_set_memory_limit(1024 * 1024);
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_document(MV_DOC_OOXML, d->data, d->len, out, LIMIT, &err), -1);
	mv_extract_set_memory_limit(MV_EXTRACT_MAX_MEMORY);
	assert_int_equal(err->code, MV_ERR_LIMIT);
	assert_string_equal(err->message, "worker exceeded the memory limit (1 MB)");
	g_clear_error(&err);
	g_string_free(out, TRUE);
	survives(MV_DOC_OOXML, d, NULL, &err);
	g_byte_array_unref(d);
}

typedef struct killer {
	pid_t pid;
	int delay_ms;
} killer;

static void *kill_later(void *arg)
{
	killer *k = arg;
	g_usleep((gulong)k->delay_ms * 1000);
	kill(k->pid, SIGKILL);
	return NULL;
}

static void test_worker_killed_mid_request(void **state)
{
	GByteArray *ok = fixture("sample.pdf");
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_document(MV_DOC_PDF, ok->data, ok->len, out, LIMIT, &err), 0);
	pid_t first = mv_extract_worker_pid();
	assert_true(first > 0);

	GByteArray *slow = make_slow_pdf(100000, 40);
	killer k = { first, 200 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kill_later, &k), 0);
	g_string_truncate(out, 0);
	assert_int_equal(mv_extract_document(MV_DOC_PDF, slow->data, slow->len, out, LIMIT, &err), -1);
	pthread_join(t, NULL);
	assert_string_equal(err->message, "worker crashed (signal 9)");
	g_clear_error(&err);
	assert_int_equal(mv_extract_worker_pid(), 0);

	g_string_truncate(out, 0);
	assert_int_equal(mv_extract_document(MV_DOC_PDF, ok->data, ok->len, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "zebracorn"));
	assert_true(mv_extract_worker_pid() > 0 && mv_extract_worker_pid() != first);
	/* the old one is reaped */
	assert_int_equal(waitpid(first, NULL, WNOHANG), -1);
	g_string_free(out, TRUE);
	g_byte_array_unref(slow);
	g_byte_array_unref(ok);
}

/* A worker that dies while the request is still being written: the write
 * fails with EPIPE, and SIGPIPE (not ignored in this process, as in the
 * importer) must neither end the process nor stay pending. */
static void test_worker_dies_during_write(void **state)
{
	GByteArray *ok = fixture("sample.pdf");
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_document(MV_DOC_PDF, ok->data, ok->len, out, LIMIT, &err), 0);
	pid_t pid = mv_extract_worker_pid();
	/* stopped, it reads nothing: the write fills the pipe and waits */
	assert_int_equal(kill(pid, SIGSTOP), 0);
	GByteArray *big = g_byte_array_sized_new(32 * 1024 * 1024);
	g_byte_array_set_size(big, 32 * 1024 * 1024);
	memset(big->data, 'x', big->len);
	memcpy(big->data, "%PDF-1.4\n", 9);
	killer k = { pid, 200 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kill_later, &k), 0);
	assert_int_equal(mv_extract_document(MV_DOC_PDF, big->data, big->len, out, LIMIT, &err), -1);
	pthread_join(t, NULL);
	assert_string_equal(err->message, "worker crashed (signal 9)");
	g_clear_error(&err);
	sigset_t pending;
	sigemptyset(&pending);
	assert_int_equal(sigpending(&pending), 0);
	assert_false(sigismember(&pending, SIGPIPE));
	g_string_truncate(out, 0);
	assert_int_equal(mv_extract_document(MV_DOC_PDF, ok->data, ok->len, out, LIMIT, &err), 0);
	assert_non_null(strstr(out->str, "zebracorn"));
	g_string_free(out, TRUE);
	g_byte_array_unref(big);
	g_byte_array_unref(ok);
}

static void test_thread_done(void **state)
{
	GByteArray *d = fixture("sample.odt");
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	assert_int_equal(mv_extract_document(MV_DOC_ODF, d->data, d->len, out, LIMIT, &err), 0);
	pid_t pid = mv_extract_worker_pid();
	assert_true(pid > 0);
	mv_extract_thread_done();
	assert_int_equal(mv_extract_worker_pid(), 0);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(mv_extract_document(MV_DOC_ODF, d->data, d->len, out, LIMIT, &err), 0);
	assert_true(mv_extract_worker_pid() > 0);
	g_string_free(out, TRUE);
	g_byte_array_unref(d);
}

/* A worker that cannot start is not started again at once: the next
 * document is refused without a try until the back-off has passed. */
static void *start_failures(void *arg)
{
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	const uint8_t doc[] = "%PDF-1.4";
	assert_int_equal(mv_extract_document(MV_DOC_PDF, doc, sizeof doc, out, LIMIT, &err), -1);
	assert_int_equal(err->code, MV_ERR_IO);
	assert_non_null(strstr(err->message, "could not start the document worker"));
	g_clear_error(&err);
	double t0 = now_s();
	assert_int_equal(mv_extract_document(MV_DOC_PDF, doc, sizeof doc, out, LIMIT, &err), -1);
	assert_true(now_s() - t0 < 0.1);
	assert_non_null(strstr(err->message, "did not start (1 times); next try in"));
	g_clear_error(&err);
	g_string_free(out, TRUE);
	return NULL;
}

static void test_start_failure_backs_off(void **state)
{
	char *self = g_file_read_link("/proc/self/exe", NULL);
	mv_extract_worker_set_exe("/nonexistent/mailvault");
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, start_failures, NULL), 0);
	pthread_join(t, NULL);
	mv_extract_worker_set_exe(self);
	g_free(self);
}

/* Damaged copies of the fixtures, read in this process (under the
 * sanitizers in `make test`): the readers not covered by fuzz_ooxml — the
 * PowerPoint record walk, the archive reader, poppler's input — end with
 * text or an error, never worse. */
static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
}

static void test_mutations(void **state)
{
	static const struct {
		const char *file;
		mv_doc_kind kind;
		int rounds;
	} cases[] = {
		{ "sample.ppt", MV_DOC_PPT, 300 },
		{ "sample.zip", MV_DOC_ZIP, 300 },
		{ "sample.pdf", MV_DOC_PDF, 100 },
	};
	/* libgsf reports each damaged block, in the worker to /dev/null */
	GLogFunc old_handler = g_log_set_default_handler(quiet_log, NULL);
	GRand *rand = g_rand_new_with_seed(20240101);
	for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
		GByteArray *orig = fixture(cases[c].file);
		for (int r = 0; r < cases[c].rounds; r++) {
			GByteArray *d = g_byte_array_new();
			g_byte_array_append(d, orig->data, orig->len);
			int flips = g_rand_int_range(rand, 1, 16);
			for (int f = 0; f < flips; f++)
				d->data[g_rand_int_range(rand, 0, (gint32)d->len)] = (uint8_t)g_rand_int_range(rand, 0, 256);
			if (g_rand_boolean(rand))
				g_byte_array_set_size(d, (guint)g_rand_int_range(rand, 0, (gint32)d->len));
			GString *out = g_string_new(NULL);
			GError *err = NULL;
			int rc = mv_extract_direct(cases[c].kind, d->data, d->len, 0, out, LIMIT, &err);
			assert_true(rc == 0 || (rc == -1 && err));
			assert_clean_text(out, LIMIT);
			g_clear_error(&err);
			g_string_free(out, TRUE);
			g_byte_array_unref(d);
		}
		g_byte_array_unref(orig);
	}
	g_rand_free(rand);
	g_log_set_default_handler(old_handler, NULL);
}

/* Threads extracting at once, each with its own worker; a thread's end
 * ends its worker. */
typedef struct job {
	pid_t pid;
	int failures;
} job;

static void *extract_some(void *arg)
{
	job *j = arg;
	static const char *const files[] = { "sample.pdf", "sample.docx", "sample.xlsx", "sample.doc" };
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
			GByteArray *d = fixture(files[i]);
			GString *out = g_string_new(NULL);
			mv_doc_kind kind = mv_doc_kind_detect(NULL, files[i], d->data, d->len);
			if (mv_extract_document(kind, d->data, d->len, out, LIMIT, NULL) != 0 ||
			    !strstr(out->str, "zebracorn"))
				j->failures++;
			g_string_free(out, TRUE);
			g_byte_array_unref(d);
		}
	j->pid = mv_extract_worker_pid();
	return NULL;
}

static void test_threads(void **state)
{
	enum { N = 4 };
	pthread_t t[N];
	job jobs[N] = { { 0, 0 } };
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, extract_some, &jobs[i]), 0);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].failures, 0);
		assert_true(jobs[i].pid > 0);
		for (int k = 0; k < i; k++)
			assert_true(jobs[k].pid != jobs[i].pid);
		/* gone and reaped */
		assert_int_equal(kill(jobs[i].pid, 0), -1);
		assert_int_equal(errno, ESRCH);
	}
}

/* Documents per second through the worker, for the report (not a test of
 * speed: only printed). */
static void test_throughput(void **state)
{
	static const char *const files[] = { "sample.pdf", "sample.docx" };
	for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
		GByteArray *d = fixture(files[i]);
		mv_doc_kind kind = mv_doc_kind_detect(NULL, files[i], d->data, d->len);
		GString *out = g_string_new(NULL);
		int n = 200;
		double t0 = now_s();
		for (int k = 0; k < n; k++) {
			g_string_truncate(out, 0);
			assert_int_equal(mv_extract_document(kind, d->data, d->len, out, LIMIT, NULL), 0);
		}
		double took = now_s() - t0;
		printf("# %s through the worker: %.0f documents/s\n", files[i], n / took);
		g_string_free(out, TRUE);
		g_byte_array_unref(d);
	}
}

static int setup(void **state)
{
	char *self = g_file_read_link("/proc/self/exe", NULL);
	assert_non_null(self);
	mv_mime_init();
	mv_extract_init(self);
	g_free(self);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "extract-worker") == 0)
		return mv_extract_worker_main();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect_by_type_and_name),
		cmocka_unit_test(test_detect_by_bytes),
		cmocka_unit_test(test_appender),
		cmocka_unit_test(test_sandbox),
		cmocka_unit_test(test_direct_every_kind),
		cmocka_unit_test(test_worker_every_kind),
		cmocka_unit_test(test_worker_is_sandboxed),
		cmocka_unit_test(test_registered_extractor),
		cmocka_unit_test(test_text_limit),
		cmocka_unit_test(test_office_details),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_malformed_pdfs),
		cmocka_unit_test(test_pdf_bombs),
		cmocka_unit_test(test_zip_bombs),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_nested_and_encrypted_zip),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_worker_killed_mid_request),
		cmocka_unit_test(test_worker_dies_during_write),
		cmocka_unit_test(test_thread_done),
		cmocka_unit_test(test_start_failure_backs_off),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_throughput),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
