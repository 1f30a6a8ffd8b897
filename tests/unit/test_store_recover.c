/* Unit tests: what RecoverStore carries from the db it replaces.
 *
 * The recovered db is built from content/ alone, but the store's own meta
 * rows (its wrapped key copies and owner, which let it be attached
 * elsewhere) are not in content/: they come from the old db while it can
 * still be read, and the recovery must say nothing about an unreadable db
 * when it could. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"

static void assert_meta(const fixture *f, const char *name, const void *want, size_t len)
{
	GBytes *value = NULL;
	GError *err = NULL;
	if (mv_store_meta_get(&f->paths, name, &value, &err) < 0)
		fail_msg("meta %s: %s", name, err->message);
	if (!value)
		fail_msg("meta %s is missing after RecoverStore", name);
	size_t have_len = 0;
	const void *have = g_bytes_get_data(value, &have_len);
	assert_int_equal(have_len, len);
	assert_memory_equal(have, want, len);
	g_bytes_unref(value);
}

/* The old db's own meta rows (wrapped keys, owner) survive the recovery. */
static void test_recover_carries_meta(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	const uint8_t wrapped[] = { 1, 2, 3, 4, 5, 0, 7, 8 };
	assert_int_equal(mv_store_meta_set(&f->paths, "key_master", wrapped, sizeof wrapped, &err), 0);
	assert_int_equal(mv_store_meta_set(&f->paths, "instance_id", "owner-1", 7, &err), 0);
	json_t *report = NULL;
	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 1);
	json_decref(report);
	assert_meta(f, "key_master", wrapped, sizeof wrapped);
	assert_meta(f, "instance_id", "owner-1", 7);
}

/* What file received from offset `from` on (stderr redirected to it). */
static char *captured(FILE *file, long from)
{
	fflush(stderr);
	fseek(file, 0, SEEK_END);
	long end = ftell(file);
	char *text = g_malloc0((size_t)(end - from) + 1);
	fseek(file, from, SEEK_SET);
	size_t got = fread(text, 1, (size_t)(end - from), file);
	text[got] = '\0';
	return text;
}

/* A readable old db is not reported as unreadable. */
static void test_recover_no_unreadable_warning(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	FILE *log = tmpfile();
	assert_non_null(log);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(dup2(fileno(log), STDERR_FILENO) >= 0);
	json_t *report = NULL;
	int rc = mv_store_recover(1, &f->paths, key, false, NULL, &report, &err);
	char *text = captured(log, 0);
	dup2(saved, STDERR_FILENO);
	close(saved);
	fclose(log);
	assert_int_equal(rc, 0);
	json_decref(report);
	if (strstr(text, "unreadable"))
		fail_msg("RecoverStore warned: %s", text);
	g_free(text);
}

/* A missing old db (the case RecoverStore is for) is no error either. */
static void test_recover_without_old_db(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	char *dbf = mv_store_db_file(&f->paths);
	assert_int_equal(unlink(dbf), 0);
	g_free(dbf);
	json_t *report = NULL;
	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 1);
	json_decref(report);
	GBytes *value = NULL;
	assert_int_equal(mv_store_meta_get(&f->paths, "key_master", &value, &err), 0);
	assert_null(value);
}

/* An old db that is not a database at all (what RecoverStore is for) costs
 * its meta rows and a warning, never the recovery. */
static void test_recover_over_damaged_db(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	char *dbf = mv_store_db_file(&f->paths);
	assert_true(g_file_set_contents(dbf, "this is not an SQLite database, only some damaged bytes", -1, NULL));
	g_free(dbf);
	json_t *report = NULL;
	if (mv_store_recover(1, &f->paths, key, false, NULL, &report, &err) < 0)
		fail_msg("RecoverStore over a damaged db: %s", err->message);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 1);
	json_decref(report);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof key);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recover_carries_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_no_unreadable_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_without_old_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_over_damaged_db, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
