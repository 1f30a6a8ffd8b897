/* Unit tests for archive/mfa.c and archive/app_passwords.c: TOTP codes
 * against RFC 6238's vectors, enrolment and confirmation, a code accepted
 * only once, InitializeMFA/DisableMFA, secrets sealed at rest, and the
 * logon of client programs — password or app password, only an app
 * password once MFA is on, a revoked one refused at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <liboath/oath.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"

static char *tmp_root;
static char *dir;
static mv_instance *inst;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	tmp_root = g_dir_make_tmp("mv-test-factors-XXXXXX", NULL);
	dir = g_build_filename(tmp_root, "data", NULL);
	char *recovery = NULL;
	GError *err = NULL;
	if (mv_instance_init(dir, &recovery, &err) < 0)
		return -1;
	g_free(recovery);
	inst = mv_instance_open(dir, &err);
	return inst ? 0 : -1;
}

static int group_teardown(void **state)
{
	mv_instance_close(&inst);
	nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_free(dir);
	g_free(tmp_root);
	return 0;
}

static void ok(int rc, GError *err)
{
	if (rc < 0)
		fail_msg("failed: %s", err ? err->message : "(no error)");
	assert_null(err);
}

static void fails_with(int rc, GError **err, int code)
{
	assert_int_equal(rc, -1);
	assert_non_null(*err);
	assert_int_equal((*err)->code, code);
	g_clear_error(err);
}

static void make_user(const char *name, const char *password)
{
	GError *err = NULL;
	ok(mv_user_create(inst, name, MV_PRIV_LOGIN, MV_LOGIN_ALL, NULL, NULL, "integrated", password, &err), err);
}

/* The code an authenticator app would show now for a base32 secret. */
static void code_now(const char *b32, int64_t offset_steps, char out[7])
{
	char *raw = NULL;
	size_t len = 0;
	assert_int_equal(oath_base32_decode(b32, strlen(b32), &raw, &len), OATH_OK);
	assert_int_equal(mv_totp_code((const uint8_t *)raw, len, time(NULL) + offset_steps * 30, out), 0);
	free(raw);
}

/* RFC 6238 appendix B, SHA-1, the last six of its eight digits. */
static void test_totp_vectors(void **state)
{
	const uint8_t secret[] = "12345678901234567890";
	const struct { int64_t t; const char *code; } v[] = {
		{ 59, "287082" }, { 1111111109, "081804" }, { 1111111111, "050471" },
		{ 1234567890, "005924" }, { 2000000000, "279037" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
		char code[7];
		assert_int_equal(mv_totp_code(secret, 20, v[i].t, code), 0);
		assert_string_equal(code, v[i].code);
	}
}

static void state_is(const char *name, mv_mfa_state want)
{
	GError *err = NULL;
	mv_mfa_state s = MV_MFA_ACTIVE + 1;
	ok(mv_mfa_get_state(inst, name, &s, &err), err);
	assert_int_equal(s, want);
}

static char *enrol(const char *name)
{
	GError *err = NULL;
	char *secret = NULL, *uri = NULL;
	ok(mv_mfa_enrolment(inst, name, true, &secret, &uri, &err), err);
	assert_int_equal(strlen(secret), 32);
	assert_true(g_str_has_prefix(uri, "otpauth://totp/mailvault:"));
	assert_non_null(strstr(uri, secret));
	g_free(uri);
	return secret;
}

static void test_enrol_confirm_verify(void **state)
{
	GError *err = NULL;
	make_user("mfa.alice", NULL);
	state_is("mfa.alice", MV_MFA_NONE);
	fails_with(mv_mfa_confirm(inst, "mfa.alice", "123456", &err), &err, MV_ERR_STATE);
	char *secret = enrol("mfa.alice");
	/* Pending until confirmed. */
	state_is("mfa.alice", MV_MFA_NONE);
	/* Asking again without fresh gives the same pending secret. */
	char *again = NULL, *uri = NULL;
	ok(mv_mfa_enrolment(inst, "MFA.ALICE", false, &again, &uri, &err), err);
	assert_string_equal(again, secret);
	g_free(again);
	g_free(uri);
	fails_with(mv_mfa_confirm(inst, "mfa.alice", "000000x", &err), &err, MV_ERR_AUTH);
	char code[7];
	code_now(secret, 0, code);
	/* A wrong code of the right shape. */
	char wrong[7];
	g_strlcpy(wrong, code, sizeof wrong);
	wrong[0] = wrong[0] == '9' ? '0' : wrong[0] + 1;
	fails_with(mv_mfa_confirm(inst, "mfa.alice", wrong, &err), &err, MV_ERR_AUTH);
	ok(mv_mfa_confirm(inst, "mfa.alice", code, &err), err);
	state_is("mfa.alice", MV_MFA_ACTIVE);
	/* The confirming code cannot be used again to log on. */
	fails_with(mv_mfa_verify(inst, "mfa.alice", code, &err), &err, MV_ERR_AUTH);
	/* The next step's code works once (clocks drift: one step of slack). */
	char next[7];
	code_now(secret, 1, next);
	if (strcmp(next, code) != 0) {
		char spaced[8];
		g_snprintf(spaced, sizeof spaced, "%.3s %.3s", next, next + 3);
		ok(mv_mfa_verify(inst, "mfa.alice", spaced, &err), err);
		fails_with(mv_mfa_verify(inst, "mfa.alice", next, &err), &err, MV_ERR_AUTH);
	}
	/* A code far from now is refused. */
	char far[7];
	code_now(secret, 10, far);
	if (strcmp(far, next) != 0 && strcmp(far, code) != 0)
		fails_with(mv_mfa_verify(inst, "mfa.alice", far, &err), &err, MV_ERR_AUTH);
	g_free(secret);
}

static void test_initialize_and_disable(void **state)
{
	GError *err = NULL;
	make_user("mfa.bob", NULL);
	mv_user *before = mv_user_get(inst, "mfa.bob", &err);
	ok(mv_mfa_initialize(inst, "mfa.bob", &err), err);
	state_is("mfa.bob", MV_MFA_REQUIRED);
	mv_user *after = mv_user_get(inst, "mfa.bob", &err);
	/* Sessions and cached logons end with every change. */
	assert_true(after->auth_generation != before->auth_generation);
	char *secret = enrol("mfa.bob");
	char code[7];
	code_now(secret, 0, code);
	ok(mv_mfa_confirm(inst, "mfa.bob", code, &err), err);
	state_is("mfa.bob", MV_MFA_ACTIVE);
	ok(mv_mfa_disable(inst, "mfa.bob", &err), err);
	state_is("mfa.bob", MV_MFA_NONE);
	fails_with(mv_mfa_verify(inst, "mfa.bob", code, &err), &err, MV_ERR_STATE);
	fails_with(mv_mfa_initialize(inst, "nobody.here", &err), &err, MV_ERR_NOT_FOUND);
	mv_user_free(before);
	mv_user_free(after);
	g_free(secret);
}

/* The secret is not in master.sqlite in the clear. */
static void test_secret_sealed(void **state)
{
	make_user("mfa.carol", NULL);
	char *secret = enrol("mfa.carol");
	char *raw = NULL;
	size_t len = 0;
	assert_int_equal(oath_base32_decode(secret, strlen(secret), &raw, &len), OATH_OK);
	char *path = g_build_filename(dir, "master.sqlite", NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT pending FROM user_mfa WHERE user='mfa.carol'", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const uint8_t *blob = sqlite3_column_blob(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	assert_true(n > (int)len);
	assert_null(memmem(blob, (size_t)n, raw, len));
	assert_null(memmem(blob, (size_t)n, secret, strlen(secret)));
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(raw);
	g_free(path);
	g_free(secret);
}

static void test_app_passwords(void **state)
{
	GError *err = NULL;
	make_user("apw.dave", "Correct-Horse-9");
	int64_t id1 = 0, id2 = 0;
	char *pw1 = NULL, *pw2 = NULL;
	ok(mv_app_password_create(inst, "apw.dave", "phone", &id1, &pw1, &err), err);
	ok(mv_app_password_create(inst, "APW.DAVE", "laptop", &id2, &pw2, &err), err);
	assert_int_equal(strlen(pw1), 24);
	assert_true(g_regex_match_simple("^[a-z2-9]{4}(-[a-z2-9]{4}){4}$", pw1, 0, 0));
	assert_string_not_equal(pw1, pw2);
	GPtrArray *list = mv_app_passwords_list(inst, "apw.dave", &err);
	assert_non_null(list);
	assert_int_equal(list->len, 2);
	assert_string_equal(((mv_app_password *)list->pdata[0])->description, "phone");
	g_ptr_array_free(list, TRUE);
	mv_user *u = NULL;
	/* Either password works for a client; typed upper case, without dashes. */
	ok(mv_user_authenticate_client(inst, "apw.dave", pw1, &u, &err), err);
	assert_string_equal(u->name, "apw.dave");
	mv_user_free(u);
	char *typed = g_ascii_strup(pw2, -1);
	char *nodash = g_strdelimit(g_strdup(typed), "-", ' ');
	ok(mv_user_authenticate_client(inst, "apw.dave", nodash, NULL, &err), err);
	ok(mv_user_authenticate_client(inst, "apw.dave", "Correct-Horse-9", NULL, &err), err);
	/* The web logon takes only the password. */
	fails_with(mv_user_authenticate(inst, "apw.dave", pw1, NULL, &err), &err, MV_ERR_AUTH);
	/* Another user's app password is nothing here. */
	make_user("apw.erin", NULL);
	fails_with(mv_user_authenticate_client(inst, "apw.erin", pw1, NULL, &err), &err, MV_ERR_AUTH);
	/* Revoked: refused at once; an unknown id is named. */
	mv_user *before = mv_user_get(inst, "apw.dave", &err);
	ok(mv_app_password_delete(inst, "apw.dave", id1, &err), err);
	mv_user *after = mv_user_get(inst, "apw.dave", &err);
	assert_true(after->auth_generation != before->auth_generation);
	fails_with(mv_user_authenticate_client(inst, "apw.dave", pw1, NULL, &err), &err, MV_ERR_AUTH);
	fails_with(mv_app_password_delete(inst, "apw.dave", id1, &err), &err, MV_ERR_NOT_FOUND);
	fails_with(mv_app_password_delete(inst, "apw.erin", id2, &err), &err, MV_ERR_NOT_FOUND);
	fails_with(mv_app_password_create(inst, "apw.dave", "bad\ncontrol", &id1, &pw1, &err), &err, MV_ERR_INVALID);
	/* With MFA on, the password no longer logs a client in; the app password does. */
	char *secret = enrol("apw.dave");
	char code[7];
	code_now(secret, 0, code);
	ok(mv_mfa_confirm(inst, "apw.dave", code, &err), err);
	fails_with(mv_user_authenticate_client(inst, "apw.dave", "Correct-Horse-9", NULL, &err), &err, MV_ERR_AUTH);
	ok(mv_user_authenticate_client(inst, "apw.dave", pw2, NULL, &err), err);
	ok(mv_user_authenticate(inst, "apw.dave", "Correct-Horse-9", NULL, &err), err);
	/* Renamed and deleted users take their factors along. */
	ok(mv_user_rename(inst, "apw.dave", "apw.david", &err), err);
	ok(mv_user_authenticate_client(inst, "apw.david", pw2, NULL, &err), err);
	state_is("apw.david", MV_MFA_ACTIVE);
	ok(mv_user_delete(inst, "apw.david", &err), err);
	make_user("apw.david", NULL);
	state_is("apw.david", MV_MFA_NONE);
	list = mv_app_passwords_list(inst, "apw.david", &err);
	assert_int_equal(list->len, 0);
	g_ptr_array_free(list, TRUE);
	mv_user_free(before);
	mv_user_free(after);
	g_free(typed);
	g_free(nodash);
	g_free(secret);
	g_free(pw1);
	g_free(pw2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_totp_vectors),
		cmocka_unit_test(test_enrol_confirm_verify),
		cmocka_unit_test(test_initialize_and_disable),
		cmocka_unit_test(test_secret_sealed),
		cmocka_unit_test(test_app_passwords),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
