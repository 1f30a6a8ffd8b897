/* Export format: MailStore headers written and read back (exact block
 * length, hash check, MailStore's own exports), modified UTF-7, safe file
 * names, and a signature made by the signer checked by the import's check. */
#include "export/export.h"
#include "mime/mime.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static GByteArray *with_block(const char *msg, const char *archive, const char *folder, const char *flags)
{
	mv_mailstore_headers h = { .archive = (char *)archive, .folder = (char *)folder, .archived_at = 1714564800,
		                   .message_id = (char *)"3:42", .flags = (char *)flags };
	GByteArray *out = g_byte_array_new();
	mv_mailstore_headers_write(&h, (const uint8_t *)msg, strlen(msg), out);
	g_byte_array_append(out, (const guint8 *)msg, (guint)strlen(msg));
	return out;
}

static void roundtrip(const char *msg, const char *eol)
{
	GByteArray *file = with_block(msg, "j\xc3\xbcrgen", "Inbox/Projekt \xc3\x84 & Co", "RS");
	char *first = g_strdup_printf("X-MailVault-Archive-UTF7: j&APw-rgen%s", eol);
	assert_memory_equal(file->data, first, strlen(first));
	mv_mailstore_headers h;
	GError *err = NULL;
	assert_int_equal(mv_mailstore_headers_read(file->data, file->len, &h, &err), 1);
	assert_int_equal(h.block_len, file->len - strlen(msg));
	assert_memory_equal(file->data + h.block_len, msg, strlen(msg));
	assert_string_equal(h.archive, "j\xc3\xbcrgen");
	assert_string_equal(h.folder, "Inbox/Projekt \xc3\x84 & Co");
	assert_string_equal(h.flags, "RS");
	assert_string_equal(h.message_id, "3:42");
	assert_int_equal(h.archived_at, 1714564800);
	mv_mailstore_headers_clear(&h);
	g_free(first);
	g_byte_array_unref(file);
}

static void test_headers_roundtrip(void **state)
{
	(void)state;
	roundtrip("Subject: hi\n\nbody\n", "\n");
	roundtrip("Subject: hi\r\n\r\nbody\r\n", "\r\n");
	/* A message that itself starts with a MailStore field keeps it. */
	roundtrip("X-MailStore-Folder-UTF7: own\nSubject: x\n\nb\n", "\n");
}

static void test_headers_refused(void **state)
{
	(void)state;
	GByteArray *file = with_block("Subject: hi\n\nbody\n", "a", "Inbox", NULL);
	file->data[file->len - 2] ^= 1; /* the message altered after export */
	mv_mailstore_headers h;
	GError *err = NULL;
	assert_int_equal(mv_mailstore_headers_read(file->data, file->len, &h, &err), -1);
	assert_non_null(strstr(err->message, "Header-Hash"));
	g_clear_error(&err);
	g_byte_array_unref(file);
	const char *bad_date = "X-MailVault-Archive-UTF7: a\nX-MailStore-Folder-UTF7: x\nX-MailStore-Date: 20240230000000\n"
	                       "X-MailStore-Header-Hash: 00\n\nb\n";
	assert_int_equal(mv_mailstore_headers_read((const uint8_t *)bad_date, strlen(bad_date), &h, &err), -1);
	g_clear_error(&err);
	const char *none = "Subject: plain\n\nb\n";
	assert_int_equal(mv_mailstore_headers_read((const uint8_t *)none, strlen(none), &h, &err), 0);
	assert_null(err);
}

static void test_headers_mailstore_export(void **state)
{
	(void)state;
	const char *f = "X-MailStore-Message-ID: 1f2e\r\nX-MailStore-Folder-UTF7: Posteingang/&AMQ-rger\r\n"
	                "X-MailStore-Date: 20100820034305\r\nX-MailStore-Header-Hash: whatever it is\r\nFrom: a@b\r\n\r\nx\r\n";
	mv_mailstore_headers h;
	GError *err = NULL;
	assert_int_equal(mv_mailstore_headers_read((const uint8_t *)f, strlen(f), &h, &err), 1);
	assert_null(h.archive);
	assert_string_equal(h.folder, "Posteingang/\xc3\x84rger");
	assert_string_equal(f + h.block_len, "From: a@b\r\n\r\nx\r\n");
	assert_null(h.header_hash);
	mv_mailstore_headers_clear(&h);
}

static void test_mutf7(void **state)
{
	(void)state;
	static const struct {
		const char *utf8, *mutf7;
	} cases[] = {
		{ "Inbox", "Inbox" },
		{ "Spam \xe2\x9c\x93 & more", "Spam &JxM- &- more" },
		{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
		{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
		{ "", "" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *enc = mv_mutf7_encode(cases[i].utf8);
		assert_string_equal(enc, cases[i].mutf7);
		GError *err = NULL;
		char *dec = mv_mutf7_decode(enc, &err);
		assert_non_null(dec);
		assert_string_equal(dec, cases[i].utf8);
		g_free(dec);
		g_free(enc);
	}
	static const char *const bad[] = { "&", "&Jx", "&JxM", "&-A&AGE-", "&2D0-", "a\x01", "&AAA-", "\xc3\xa4" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *err = NULL;
		char *dec = mv_mutf7_decode(bad[i], &err);
		if (dec)
			fail_msg("'%s' decoded to '%s'", bad[i], dec);
		assert_non_null(err);
		g_error_free(err);
	}
}

static void test_safe_names(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "Inbox", "Inbox" }, { "..", "%2E." }, { ".", "%2E" }, { ".hidden", "%2Ehidden" }, { "a/b", "a%2Fb" },
		{ "a\\b", "a%5Cb" }, { "50%", "50%25" }, { "tab\there", "tab%09here" }, { "", "%" },
		{ "\xc3\x84rger", "\xc3\x84rger" }, { "bad\xff", "bad%FF" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *s = mv_export_safe_name(cases[i].in);
		assert_string_equal(s, cases[i].out);
		g_free(s);
	}
	char *longname = g_strnfill(300, 'x');
	char *s = mv_export_safe_name(longname);
	assert_true(strlen(s) <= 200);
	assert_non_null(strchr(s, '~'));
	g_free(s);
	g_free(longname);
	char *rel = mv_export_relative_dir("../etc", "a/../b");
	assert_string_equal(rel, "%2E.%2Fetc/a/%2E./b");
	g_free(rel);
}

static void test_signature_roundtrip(void **state)
{
	(void)state;
	GError *err = NULL;
	mv_export_signer *s = mv_export_signer_new(&err);
	assert_non_null(s);
	char *pem = mv_export_signer_public_pem(s);
	char *path = g_build_filename(g_get_tmp_dir(), "mv-test-export-XXXXXX", NULL);
	int fd = g_mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
	close(fd);
	mv_export_pubkey *k = mv_export_pubkey_load(path, &err);
	assert_non_null(k);
	char *fp1 = mv_export_signer_public_sha256(s), *fp2 = mv_export_pubkey_sha256(k);
	assert_string_equal(fp1, fp2);
	uint8_t digest[32];
	memset(digest, 7, sizeof digest);
	GByteArray *sig = g_byte_array_new();
	assert_int_equal(mv_export_sign_digest(s, digest, sig, &err), 0);
	assert_int_equal(mv_export_verify_digest(k, digest, sig->data, sig->len, &err), 0);
	digest[0] ^= 1;
	assert_int_equal(mv_export_verify_digest(k, digest, sig->data, sig->len, &err), -1);
	g_clear_error(&err);
	unlink(path);
	g_byte_array_unref(sig);
	g_free(fp1);
	g_free(fp2);
	g_free(path);
	g_free(pem);
	mv_export_pubkey_free(&k);
	mv_export_signer_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_roundtrip),  cmocka_unit_test(test_headers_refused),
		cmocka_unit_test(test_headers_mailstore_export), cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_safe_names),         cmocka_unit_test(test_signature_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
