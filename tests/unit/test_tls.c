/* Unit tests: the TLS certificate files (net/tls.c) — a generated
 * self-signed pair is checked back with OpenSSL itself (and the openssl tool
 * for the thumbprint, when installed); then pair checks, bounded reads,
 * finding a pair by thumbprint, and the in-memory client certificate of an
 * Office365_Modern credential. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/tls.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAYS 825

static const char *const names3[] = { "localhost", "127.0.0.1", "::1", NULL };

static char *tmpdir;

static int setup(void **state)
{
	tmpdir = g_dir_make_tmp("mv-test-tls-XXXXXX", NULL);
	return tmpdir ? 0 : -1;
}

static void remove_tree(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	if (d) {
		const char *e;
		while ((e = g_dir_read_name(d)) != NULL) {
			char *child = g_build_filename(path, e, NULL);
			remove_tree(child);
			g_free(child);
		}
		g_dir_close(d);
	}
	g_remove(path);
}

static int teardown(void **state)
{
	remove_tree(tmpdir);
	g_free(tmpdir);
	tmpdir = NULL;
	return 0;
}

static char *path_in(const char *name)
{
	return g_build_filename(tmpdir, name, NULL);
}

/* Generates NAME.crt + NAME.key in the temp dir; returns the cert path. */
static char *generate(const char *name, char **key_r)
{
	char *crt_name = g_strconcat(name, ".crt", NULL);
	char *key_name = g_strconcat(name, ".key", NULL);
	char *crt = path_in(crt_name);
	char *key = path_in(key_name);
	GError *err = NULL;
	assert_int_equal(mv_tls_generate_self_signed(crt, key, names3, DAYS, &err), 0);
	assert_null(err);
	g_free(crt_name);
	g_free(key_name);
	*key_r = key;
	return crt;
}

static X509 *read_x509(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	return k;
}

static bool has_name(GPtrArray *a, const char *s)
{
	for (guint i = 0; i < a->len; i++)
		if (strcmp(a->pdata[i], s) == 0)
			return true;
	return false;
}

static bool is_upper_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isxdigit(s[i]) || g_ascii_islower(s[i]))
			return false;
	return true;
}

/* SHA-1 of the DER, computed here independently of tls.c. */
static char *sha1_of_der(X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	assert_int_equal(X509_digest(x, EVP_sha1(), md, &len), 1);
	assert_int_equal(len, 20);
	GString *s = g_string_new(NULL);
	for (unsigned i = 0; i < len; i++)
		g_string_append_printf(s, "%02X", md[i]);
	return g_string_free(s, FALSE);
}

/* What `openssl x509 -fingerprint -sha1` says, colons removed; NULL when
 * the tool is not installed. */
static char *openssl_fingerprint(const char *path)
{
	if (!g_file_test("/usr/bin/openssl", G_FILE_TEST_IS_EXECUTABLE))
		return NULL;
	char *argv[] = { "/usr/bin/openssl", "x509", "-noout", "-fingerprint", "-sha1", "-in", (char *)path, NULL };
	char *out = NULL;
	int status = 0;
	assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL, &status,
	                         NULL));
	assert_int_equal(status, 0);
	const char *eq = strchr(out, '=');
	assert_non_null(eq);
	GString *s = g_string_new(NULL);
	for (const char *p = eq + 1; *p && *p != '\n'; p++)
		if (*p != ':')
			g_string_append_c(s, g_ascii_toupper(*p));
	g_free(out);
	return g_string_free(s, FALSE);
}

static void assert_file_mode(const char *path, unsigned mode)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, mode);
}

static void test_generate(void **state)
{
	char *dir = path_in("new/sub");
	char *crt = g_build_filename(dir, "server.crt", NULL);
	char *key = g_build_filename(dir, "server.key", NULL);
	GError *err = NULL;
	int64_t before = (int64_t)time(NULL);
	assert_int_equal(mv_tls_generate_self_signed(crt, key, names3, DAYS, &err), 0);
	assert_null(err);

	assert_true(g_file_test(crt, G_FILE_TEST_IS_REGULAR));
	assert_true(g_file_test(key, G_FILE_TEST_IS_REGULAR));
	assert_file_mode(key, 0600);
	assert_file_mode(dir, 0700);
	char *key_text = NULL;
	assert_true(g_file_get_contents(key, &key_text, NULL, NULL));
	assert_non_null(strstr(key_text, "-----BEGIN PRIVATE KEY-----"));
	g_free(key_text);

	/* OpenSSL's own view of the files. */
	X509 *x = read_x509(crt);
	EVP_PKEY *k = read_key(key);
	assert_int_equal(X509_check_private_key(x, k), 1);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
	char group[64];
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof group, NULL), 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
	assert_int_equal(ASN1_STRING_length(serial), 16);
	uint32_t flags = X509_get_extension_flags(x);
	assert_false(flags & EXFLAG_CA);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);

	mv_cert_info info;
	assert_int_equal(mv_tls_cert_info(crt, &info, &err), 0);
	assert_null(err);
	assert_string_equal(info.subject, "CN=localhost");
	assert_string_equal(info.issuer, "CN=localhost");
	assert_int_equal(info.dns_names->len, 3);
	for (int i = 0; names3[i]; i++)
		assert_true(has_name(info.dns_names, names3[i]));
	assert_true(info.not_before >= before - 2 && info.not_before <= (int64_t)time(NULL) + 2);
	int64_t span = info.not_after - info.not_before;
	assert_true(span >= (int64_t)DAYS * 86400 - 60 && span <= (int64_t)DAYS * 86400 + 60);
	assert_true(is_upper_hex(info.thumbprint, 40));
	char *mine = sha1_of_der(x);
	assert_string_equal(info.thumbprint, mine);
	char *tool = openssl_fingerprint(crt);
	if (tool)
		assert_string_equal(info.thumbprint, tool);

	assert_int_equal(mv_tls_check_pair(crt, key, &err), 0);
	assert_null(err);

	g_free(tool);
	g_free(mine);
	mv_cert_info_clear(&info);
	mv_cert_info_clear(&info);  /* twice is harmless */
	EVP_PKEY_free(k);
	X509_free(x);
	g_free(key);
	g_free(crt);
	g_free(dir);
}

/* Generating again replaces both files and leaves no temp files behind. */
static void test_regenerate(void **state)
{
	char *key = NULL;
	char *crt = generate("again", &key);
	mv_cert_info a, b;
	assert_int_equal(mv_tls_cert_info(crt, &a, NULL), 0);
	g_free(key);
	g_free(crt);
	crt = generate("again", &key);
	assert_int_equal(mv_tls_cert_info(crt, &b, NULL), 0);
	assert_string_not_equal(a.thumbprint, b.thumbprint);
	assert_int_equal(mv_tls_check_pair(crt, key, NULL), 0);
	assert_file_mode(key, 0600);

	GDir *d = g_dir_open(tmpdir, 0, NULL);
	assert_non_null(d);
	int entries = 0;
	while (g_dir_read_name(d))
		entries++;
	g_dir_close(d);
	assert_int_equal(entries, 2);

	mv_cert_info_clear(&a);
	mv_cert_info_clear(&b);
	g_free(key);
	g_free(crt);
}

static void test_bad_arguments(void **state)
{
	char *crt = path_in("bad.crt");
	char *key = path_in("bad.key");
	static const char *const none[] = { NULL };
	static const char *const spaced[] = { "two words", NULL };
	static const char *const empty[] = { "", NULL };
	GError *err = NULL;
	assert_int_equal(mv_tls_generate_self_signed(crt, key, none, DAYS, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	g_clear_error(&err);
	assert_int_equal(mv_tls_generate_self_signed(crt, key, names3, 0, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	g_clear_error(&err);
	assert_int_equal(mv_tls_generate_self_signed(crt, key, spaced, DAYS, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(err->message, "two words"));
	g_clear_error(&err);
	assert_int_equal(mv_tls_generate_self_signed(crt, key, empty, DAYS, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	g_clear_error(&err);
	assert_false(g_file_test(crt, G_FILE_TEST_EXISTS));
	assert_false(g_file_test(key, G_FILE_TEST_EXISTS));
	g_free(key);
	g_free(crt);
}

static void test_mismatched_pair(void **state)
{
	char *key_a = NULL, *key_b = NULL;
	char *crt_a = generate("a", &key_a);
	char *crt_b = generate("b", &key_b);
	GError *err = NULL;
	assert_int_equal(mv_tls_check_pair(crt_a, key_b, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(err->message, key_b));
	assert_non_null(strstr(err->message, crt_a));
	g_clear_error(&err);
	assert_int_equal(mv_tls_check_pair(crt_b, key_b, &err), 0);
	assert_null(err);
	g_free(crt_a);
	g_free(crt_b);
	g_free(key_a);
	g_free(key_b);
}

static void test_garbage_file(void **state)
{
	char *key = NULL;
	char *crt = generate("good", &key);
	char *junk = path_in("junk.pem");
	assert_true(g_file_set_contents(junk, "this is not PEM\n", -1, NULL));
	GError *err = NULL;

	assert_int_equal(mv_tls_check_pair(junk, key, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(err->message, junk));
	g_clear_error(&err);

	assert_int_equal(mv_tls_check_pair(crt, junk, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(err->message, junk));
	g_clear_error(&err);

	/* A certificate where the key should be is no key either. */
	assert_int_equal(mv_tls_check_pair(crt, crt, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	g_clear_error(&err);

	mv_cert_info info;
	assert_int_equal(mv_tls_cert_info(junk, &info, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	assert_non_null(strstr(err->message, junk));
	assert_null(info.thumbprint);
	assert_null(info.dns_names);
	g_clear_error(&err);

	char *missing = path_in("missing.crt");
	assert_int_equal(mv_tls_cert_info(missing, &info, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_IO));
	assert_non_null(strstr(err->message, missing));
	g_clear_error(&err);

	g_free(missing);
	g_free(junk);
	g_free(crt);
	g_free(key);
}

static void test_oversize_file(void **state)
{
	char *key = NULL;
	char *crt = generate("big", &key);
	char *big = path_in("big.pem");
	gsize len = 1024 * 1024 + 1;
	char *data = g_malloc(len);
	memset(data, 'A', len);
	assert_true(g_file_set_contents(big, data, (gssize)len, NULL));
	g_free(data);
	GError *err = NULL;
	assert_int_equal(mv_tls_check_pair(big, key, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_LIMIT));
	assert_non_null(strstr(err->message, big));
	g_clear_error(&err);
	assert_int_equal(mv_tls_check_pair(crt, big, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_LIMIT));
	assert_non_null(strstr(err->message, big));
	g_clear_error(&err);
	g_free(big);
	g_free(crt);
	g_free(key);
}

static char *colon_separated_lower(const char *hex)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; hex[i]; i += 2)
		g_string_append_printf(s, "%s%c%c", i ? ":" : "", g_ascii_tolower(hex[i]), g_ascii_tolower(hex[i + 1]));
	return g_string_free(s, FALSE);
}

static void assert_found(const char *thumbprint, const char *want_crt, const char *want_key)
{
	char *crt = NULL, *key = NULL;
	GError *err = NULL;
	assert_int_equal(mv_tls_find_by_thumbprint(tmpdir, thumbprint, &crt, &key, &err), 0);
	assert_null(err);
	assert_string_equal(crt, want_crt);
	assert_string_equal(key, want_key);
	g_free(crt);
	g_free(key);
}

static void assert_find_fails(const char *dir, const char *thumbprint, int code)
{
	char *crt = NULL, *key = NULL;
	GError *err = NULL;
	assert_int_equal(mv_tls_find_by_thumbprint(dir, thumbprint, &crt, &key, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, code));
	assert_null(crt);
	assert_null(key);
	g_clear_error(&err);
}

static void test_find_by_thumbprint(void **state)
{
	char *key_one = NULL, *key_two = NULL, *key_lone = NULL;
	char *crt_one = generate("one", &key_one);
	char *crt_two = generate("two", &key_two);
	/* A certificate without its key is never offered. */
	char *crt_lone = generate("lone", &key_lone);
	assert_int_equal(g_unlink(key_lone), 0);
	/* Garbage in the directory is skipped, not fatal. */
	char *junk_crt = path_in("junk.crt");
	char *junk_key = path_in("junk.key");
	assert_true(g_file_set_contents(junk_crt, "junk", -1, NULL));
	assert_true(g_file_set_contents(junk_key, "junk", -1, NULL));

	mv_cert_info one, two, lone;
	assert_int_equal(mv_tls_cert_info(crt_one, &one, NULL), 0);
	assert_int_equal(mv_tls_cert_info(crt_two, &two, NULL), 0);
	assert_int_equal(mv_tls_cert_info(crt_lone, &lone, NULL), 0);

	assert_found(one.thumbprint, crt_one, key_one);
	assert_found(two.thumbprint, crt_two, key_two);
	char *lower = g_ascii_strdown(two.thumbprint, -1);
	assert_found(lower, crt_two, key_two);
	char *colons = colon_separated_lower(one.thumbprint);
	assert_found(colons, crt_one, key_one);
	/* As copied from the Windows certificate dialog: a left-to-right mark
	 * in front, spaces between the bytes. */
	char *spaced = g_strdelimit(g_strdup(colons), ":", ' ');
	char *windows = g_strconcat("\xe2\x80\x8e", spaced, NULL);
	assert_found(windows, crt_one, key_one);

	assert_find_fails(tmpdir, lone.thumbprint, MV_ERR_NOT_FOUND);
	assert_find_fails(tmpdir, "0000000000000000000000000000000000000000", MV_ERR_NOT_FOUND);
	char *missing_dir = path_in("no-such-dir");
	assert_find_fails(missing_dir, one.thumbprint, MV_ERR_NOT_FOUND);

	assert_find_fails(tmpdir, "", MV_ERR_INVALID);
	assert_find_fails(tmpdir, "not a thumbprint", MV_ERR_INVALID);
	assert_find_fails(tmpdir, "000000000000000000000000000000000000000", MV_ERR_INVALID);   /* 39 */
	assert_find_fails(tmpdir, "00000000000000000000000000000000000000000", MV_ERR_INVALID); /* 41 */
	assert_find_fails(tmpdir, "G000000000000000000000000000000000000000", MV_ERR_INVALID);
	assert_find_fails(tmpdir, "\xff\xfe", MV_ERR_INVALID);
	char *err_name = NULL, *err_key = NULL;
	GError *err = NULL;
	assert_int_equal(mv_tls_find_by_thumbprint(tmpdir, "xyz", &err_name, &err_key, &err), -1);
	assert_non_null(strstr(err->message, "'xyz'"));
	g_clear_error(&err);

	g_free(missing_dir);
	g_free(windows);
	g_free(spaced);
	g_free(colons);
	g_free(lower);
	mv_cert_info_clear(&one);
	mv_cert_info_clear(&two);
	mv_cert_info_clear(&lone);
	g_free(junk_crt);
	g_free(junk_key);
	g_free(crt_one);
	g_free(crt_two);
	g_free(crt_lone);
	g_free(key_one);
	g_free(key_two);
	g_free(key_lone);
}

static X509 *x509_of_pem(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *key_of_pem(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(k);
	return k;
}

/* The certificate of an Office365_Modern credential: in memory, RSA (what
 * Entra ID verifies client assertions with), for client authentication,
 * nothing written to disk. */
static void test_client_certificate(void **state)
{
	char *cert = NULL, *key = NULL;
	mv_cert_info info;
	GError *err = NULL;
	int64_t before = (int64_t)time(NULL);
	assert_int_equal(mv_tls_generate_client_certificate("mailvault credential 7", 730, &cert, &key, &info, &err), 0);
	assert_null(err);
	assert_true(g_str_has_prefix(cert, "-----BEGIN CERTIFICATE-----\n"));
	assert_true(g_str_has_prefix(key, "-----BEGIN PRIVATE KEY-----\n"));
	GDir *d = g_dir_open(tmpdir, 0, NULL);
	assert_null(g_dir_read_name(d));
	g_dir_close(d);

	X509 *x = x509_of_pem(cert);
	EVP_PKEY *k = key_of_pem(key);
	assert_int_equal(X509_check_private_key(x, k), 1);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
	assert_int_equal(EVP_PKEY_get_bits(k), 2048);
	assert_int_equal(X509_get_signature_nid(x), NID_sha256WithRSAEncryption);
	assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);

	assert_string_equal(info.subject, "CN=mailvault credential 7");
	assert_string_equal(info.issuer, "CN=mailvault credential 7");
	assert_int_equal(info.dns_names->len, 0);
	char *mine = sha1_of_der(x);
	assert_string_equal(info.thumbprint, mine);
	assert_true(info.not_before >= before - 2 && info.not_before <= (int64_t)time(NULL) + 2);
	int64_t span = info.not_after - info.not_before;
	assert_true(span >= 730 * 86400 - 60 && span <= 730 * 86400 + 60);

	/* a second one is another key and another certificate */
	char *cert2 = NULL, *key2 = NULL;
	mv_cert_info info2;
	assert_int_equal(mv_tls_generate_client_certificate("mailvault credential 7", 730, &cert2, &key2, &info2, &err), 0);
	assert_string_not_equal(info.thumbprint, info2.thumbprint);
	assert_string_not_equal(key, key2);

	/* what cannot be a common name, or a validity */
	char *c = NULL, *k3 = NULL;
	mv_cert_info i3;
	assert_int_equal(mv_tls_generate_client_certificate("", 730, &c, &k3, &i3, &err), -1);
	assert_non_null(strstr(err->message, "common name"));
	g_clear_error(&err);
	assert_int_equal(mv_tls_generate_client_certificate("tab\there", 730, &c, &k3, &i3, &err), -1);
	g_clear_error(&err);
	assert_int_equal(mv_tls_generate_client_certificate("mailvault", 0, &c, &k3, &i3, &err), -1);
	assert_non_null(strstr(err->message, "validity"));
	g_clear_error(&err);
	assert_null(c);
	assert_null(k3);

	mv_cert_info_clear(&info2);
	g_free(cert2);
	g_free(key2);
	g_free(mine);
	EVP_PKEY_free(k);
	X509_free(x);
	mv_cert_info_clear(&info);
	g_free(cert);
	g_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regenerate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatched_pair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_by_thumbprint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_certificate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
