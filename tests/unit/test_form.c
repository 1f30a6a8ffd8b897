/* Unit tests for what the API server decodes from a client (api/form.c:
 * form bodies, Basic credentials, paths) and for the service configuration
 * file (base/config.c): the exact refusals an administrator or a client
 * reads, and the round trip of a saved configuration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "api/api.h"  /* the service configuration parts */
#include "net/form.h"

static GHashTable *decode_ok(const char *body)
{
	GError *err = NULL;
	GHashTable *t = mv_form_decode(body, strlen(body), &err);
	if (!t)
		fail_msg("'%s' refused: %s", body, err->message);
	return t;
}

static void expect_refused(const char *body, int code, const char *message)
{
	GError *err = NULL;
	GHashTable *t = mv_form_decode(body, strlen(body), &err);
	assert_null(t);
	assert_int_equal(err->code, code);
	assert_string_equal(err->message, message);
	g_error_free(err);
}

static void test_form_values(void **state)
{
	GHashTable *t = decode_ok("userName=j%C3%BCrgen&password=a+b%2Bc%26d%3De&empty=&flag&&x=%0A");
	assert_string_equal(g_hash_table_lookup(t, "userName"), "jürgen");
	assert_string_equal(g_hash_table_lookup(t, "password"), "a b+c&d=e");
	assert_string_equal(g_hash_table_lookup(t, "empty"), "");
	assert_string_equal(g_hash_table_lookup(t, "flag"), "");
	assert_string_equal(g_hash_table_lookup(t, "x"), "\n");
	assert_int_equal(g_hash_table_size(t), 5);
	g_hash_table_destroy(t);
	t = decode_ok("");
	assert_int_equal(g_hash_table_size(t), 0);
	g_hash_table_destroy(t);
}

static void test_form_refusals(void **state)
{
	expect_refused("a=%4", MV_ERR_INVALID, "form field 'a': malformed %-escape or NUL in the value");
	expect_refused("a=%zz", MV_ERR_INVALID, "form field 'a': malformed %-escape or NUL in the value");
	expect_refused("a=%00", MV_ERR_INVALID, "form field 'a': malformed %-escape or NUL in the value");
	expect_refused("a=%FF", MV_ERR_INVALID, "form field 'a': not UTF-8");
	expect_refused("=x", MV_ERR_INVALID, "form field '': empty name");
	expect_refused("id=1&id=2", MV_ERR_INVALID, "form field 'id': given twice");
	expect_refused("%4=1", MV_ERR_INVALID, "form field '%4': malformed %-escape or NUL in the name");
	GString *many = g_string_new(NULL);
	for (int i = 0; i <= MV_FORM_MAX_FIELDS; i++)
		g_string_append_printf(many, "f%d=1&", i);
	expect_refused(many->str, MV_ERR_LIMIT, "form: more than 1024 fields");
	g_string_free(many, TRUE);
}

static void test_basic_auth(void **state)
{
	char *user = NULL, *password = NULL;
	GError *err = NULL;
	/* "admin:pa:ss wörd" */
	const char *plain = "admin:pa:ss w\xc3\xb6rd";
	char *b64 = g_base64_encode((const guchar *)plain, strlen(plain));
	char *header = g_strconcat("Basic ", b64, NULL);
	assert_int_equal(mv_basic_auth_decode(header, &user, &password, &err), 0);
	assert_string_equal(user, "admin");
	assert_string_equal(password, "pa:ss wörd");
	g_free(user), g_free(password), g_free(header), g_free(b64);
	const char *bad[] = { NULL, "Bearer abc", "Basic ", "Basic !!!!", "Basic OnNlY3JldA==" /* ":secret" */,
		              "Basic YWRtaW4=" /* "admin": no colon */ };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		assert_int_equal(mv_basic_auth_decode(bad[i], &user, &password, &err), -1);
		assert_int_equal(err->code, MV_ERR_AUTH);
		g_clear_error(&err);
	}
}

static void test_normalize_path(void **state)
{
	const char *cases[][2] = {
		{ "/api/invoke/GetServerInfo", "/api/invoke/GetServerInfo" },
		{ "/api//get-status", "/api/get-status" },
		{ "//api///invoke//X?y=1", "/api/invoke/X" },
		{ "", "" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *p = mv_api_normalize_path(cases[i][0]);
		assert_string_equal(p, cases[i][1]);
		g_free(p);
	}
}

/* ---- the configuration file ---------------------------------------------------- */

static char *write_conf(const char *dir, const char *text)
{
	char *path = g_build_filename(dir, "mailvault.conf", NULL);
	assert_true(g_file_set_contents(path, text, -1, NULL));
	return path;
}

static void expect_config_error(const char *dir, const char *text, const char *needle)
{
	char *path = write_conf(dir, text);
	mv_service_config c;
	GError *err = NULL;
	assert_int_equal(mv_service_config_load(path, &c, &err), -1);
	assert_int_equal(err->code, MV_ERR_INVALID);
	if (!strstr(err->message, needle))
		fail_msg("'%s' lacks '%s'", err->message, needle);
	g_error_free(err);
	g_free(path);
}

static void test_config(void **state)
{
	char *dir = g_dir_make_tmp("mvconf-XXXXXX", NULL);
	char *path = write_conf(dir, "[service]\nsafe_mode=true\n[api]\nlisten=127.0.0.1:9000;[::1]:9001\n"
	                             "[tls]\ncertificate=c/x.crt\nprivate_key=/etc/k.key\n");
	mv_service_config c;
	GError *err = NULL;
	assert_int_equal(mv_service_config_load(path, &c, &err), 0);
	assert_true(c.safe_mode);
	assert_false(c.debug_log);
	assert_int_equal(c.listen->len, 2);
	assert_string_equal(g_ptr_array_index(c.listen, 1), "[::1]:9001");
	char *cert = g_build_filename(dir, "c", "x.crt", NULL);
	assert_string_equal(c.certificate, cert);
	assert_string_equal(c.private_key, "/etc/k.key");
	assert_string_equal(c.data_dir, dir);
	assert_int_equal(c.status_retention_seconds, 600);
	assert_int_equal(c.search_max_prefix_mb, MV_DEFAULT_SEARCH_MAX_PREFIX_MB);
	c.search_max_prefix_mb = 0;
	/* Saved and read back: the same, paths inside the directory relative. */
	c.debug_log = true;
	assert_int_equal(mv_service_config_save(&c, &err), 0);
	char *text = NULL;
	assert_true(g_file_get_contents(path, &text, NULL, NULL));
	assert_non_null(strstr(text, "certificate=c/x.crt"));
	mv_service_config d;
	assert_int_equal(mv_service_config_load(path, &d, &err), 0);
	assert_true(d.debug_log && d.safe_mode);
	assert_int_equal(d.search_max_prefix_mb, 0);
	assert_string_equal(d.certificate, cert);
	mv_service_config_clear(&c);
	mv_service_config_clear(&d);
	g_free(text);
	g_free(cert);
	g_free(path);

	expect_config_error(dir, "[service]\ndebug=true\n", "[service] debug: unknown setting");
	expect_config_error(dir, "[service]\nsafe_mode=maybe\n", "expected true or false");
	expect_config_error(dir, "[api]\nlisten=localhost\n", "expected HOST:PORT");
	expect_config_error(dir, "[api]\nlisten=127.0.0.1:70000\n", "port must be 1..65535");
	expect_config_error(dir, "[api]\nlisten=::1:80\n", "brackets");
	expect_config_error(dir, "[api]\nmax_connections=2\n", "from 4 to 65536");
	expect_config_error(dir, "[search]\nmax_prefix_mb=-1\n", "[search] max_prefix_mb");
	expect_config_error(dir, "[tls]\ncertificate=a.crt\n", "set both or neither");
	expect_config_error(dir, "not an ini file", "mailvault.conf");
	char *missing = g_build_filename(dir, "none.conf", NULL);
	assert_int_equal(mv_service_config_load(missing, &c, &err), -1);
	assert_int_equal(err->code, MV_ERR_NOT_FOUND);
	g_clear_error(&err);
	g_free(missing);
	char *conf = g_build_filename(dir, "mailvault.conf", NULL);
	unlink(conf);
	g_free(conf);
	rmdir(dir);
	g_free(dir);
}

/* [smtp]: off without the section; read, saved and read back; each bad
 * value refused naming its key. */
static void test_config_smtp(void **state)
{
	char *dir = g_dir_make_tmp("mvconf-XXXXXX", NULL);
	char *path = write_conf(dir, "[api]\nlisten=127.0.0.1:9000\n");
	mv_service_config c;
	GError *err = NULL;
	assert_int_equal(mv_service_config_load(path, &c, &err), 0);
	assert_int_equal(c.smtp.listen->len, 0);
	assert_int_equal(c.smtp.lmtp_listen->len, 0);
	assert_string_equal(c.smtp.unknown_addresses, "catchall");
	assert_int_equal(c.smtp.lock_wait_seconds, 30);
	mv_service_config_clear(&c);
	g_free(path);

	path = write_conf(dir, "[smtp]\nlisten=127.0.0.1:2525\nlmtp_listen=unix:run/lmtp.sock;[::1]:2424\n"
	                       "allow_networks=10.0.0.0/8\nrequire_tls=true\nmax_message_size_mb=7\n"
	                       "unknown_addresses=reject\nfolder=Archive/{h-email}\nlmtp_socket_group=mail\n"
	                       "internal_domains=example.org;example.net\nlock_wait_seconds=5\n");
	assert_int_equal(mv_service_config_load(path, &c, &err), 0);
	assert_int_equal(c.smtp.listen->len, 1);
	char *sock = g_strconcat("unix:", dir, "/run/lmtp.sock", NULL);
	assert_string_equal(g_ptr_array_index(c.smtp.lmtp_listen, 0), sock);
	assert_string_equal(g_ptr_array_index(c.smtp.lmtp_listen, 1), "[::1]:2424");
	assert_string_equal(c.smtp.allow_networks, "10.0.0.0/8");
	assert_true(c.smtp.require_tls && c.smtp.auth);
	assert_int_equal(c.smtp.max_message_bytes, 7 * 1024 * 1024);
	assert_string_equal(c.smtp.unknown_addresses, "reject");
	assert_string_equal(c.smtp.folder, "Archive/{h-email}");
	assert_string_equal(c.smtp.lmtp_socket_group, "mail");
	assert_string_equal(c.smtp.internal_domains, "example.org;example.net");
	assert_int_equal(mv_service_config_save(&c, &err), 0);
	mv_service_config d;
	assert_int_equal(mv_service_config_load(path, &d, &err), 0);
	assert_string_equal(g_ptr_array_index(d.smtp.lmtp_listen, 0), sock);
	assert_string_equal(d.smtp.unknown_addresses, "reject");
	assert_int_equal(d.smtp.max_message_bytes, 7 * 1024 * 1024);
	assert_true(d.smtp.require_tls);
	assert_string_equal(d.smtp.internal_domains, "example.org;example.net");
	assert_int_equal(d.smtp.lock_wait_seconds, 5);
	mv_service_config_clear(&c);
	mv_service_config_clear(&d);
	g_free(sock);
	g_free(path);

	/* enabled=false keeps the settings and drops the listeners. */
	path = write_conf(dir, "[smtp]\nenabled=false\nlisten=127.0.0.1:2525\n");
	assert_int_equal(mv_service_config_load(path, &c, &err), 0);
	assert_int_equal(c.smtp.listen->len, 0);
	mv_service_config_clear(&c);
	g_free(path);

	expect_config_error(dir, "[smtp]\nunknown_addresses=leave\n", "[smtp] unknown_addresses: expected one of: catchall, ignore, reject");
	expect_config_error(dir, "[smtp]\nmax_message_size_mb=0\n", "[smtp] max_message_size_mb");
	expect_config_error(dir, "[smtp]\nidle_timeout_seconds=5\n", "from 10 to 3600");
	expect_config_error(dir, "[smtp]\nlock_wait_seconds=0\n", "[smtp] lock_wait_seconds");
	expect_config_error(dir, "[smtp]\nlmtp_listen=unix:\n", "unix:PATH needs a path");
	expect_config_error(dir, "[smtp]\nlisten=unix:/x\n", "[smtp] listen");
	expect_config_error(dir, "[smtp]\nfolder=\n", "[smtp] folder");
	expect_config_error(dir, "[smtp]\nrelay=yes\n", "[smtp] relay: unknown setting");
	char *conf = g_build_filename(dir, "mailvault.conf", NULL);
	unlink(conf);
	g_free(conf);
	rmdir(dir);
	g_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_values),   cmocka_unit_test(test_form_refusals),
		cmocka_unit_test(test_basic_auth),    cmocka_unit_test(test_normalize_path),
		cmocka_unit_test(test_config),        cmocka_unit_test(test_config_smtp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
