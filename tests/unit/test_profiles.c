/* Unit tests for archive/profiles.c: a profile saved, read back, listed per
 * owner (names compared case-insensitively), its server-side settings
 * changed, deleted; the use of a credential recorded in the transaction
 * that saves the profile (so DeleteCredential names it) and dropped with
 * it; an unknown credential refusing the whole save; and the profiles table
 * added on open to an instance made before it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define INSTANCE_FIXTURE_NAME "profiles"
#include "instance_fixture.h"


static int64_t save(mv_instance *inst, const char *name, const char *owner, int64_t credential)
{
	mv_profile p = { .name = (char *)name, .owner = (char *)owner, .type = "I", .connector = "FileSystem",
	                 .details = "{\"path\":\"/srv/mail\"}" };
	GError *err = NULL;
	int64_t id = 0;
	ok(mv_profile_create(inst, &p, credential, &id, &err), err);
	assert_true(id > 0);
	return id;
}

static int64_t count_rows(mv_instance *inst, const char *table)
{
	char *sql = g_strdup_printf("SELECT count(*) FROM %s", table);
	sqlite3 *db = NULL;
	char *path = g_build_filename(mv_instance_data_dir(inst), "master.sqlite", NULL);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	g_free(path);
	g_free(sql);
	return n;
}

static void test_save_read_list_delete(void **state)
{
	GError *err = NULL;
	int64_t a = save(shared, "alice's files", "alice", 0);
	int64_t b = save(shared, "admin's files", "admin", 0);
	mv_profile *p = mv_profile_get(shared, a, &err);
	ok(p ? 0 : -1, err);
	assert_string_equal(p->name, "alice's files");
	assert_string_equal(p->owner, "alice");
	assert_string_equal(p->type, "I");
	assert_string_equal(p->connector, "FileSystem");
	assert_string_equal(p->details, "{\"path\":\"/srv/mail\"}");
	assert_false(p->automatic);
	assert_int_equal(p->pause_seconds, 0);
	assert_string_equal(p->maintenance_windows, "");
	mv_profile_free(p);

	GPtrArray *all = mv_profiles_list(shared, NULL, &err);
	ok(all ? 0 : -1, err);
	assert_int_equal(all->len, 2);
	assert_int_equal(((mv_profile *)all->pdata[0])->id, a);
	g_ptr_array_unref(all);
	GPtrArray *mine = mv_profiles_list(shared, "ALICE", &err);
	ok(mine ? 0 : -1, err);
	assert_int_equal(mine->len, 1);
	assert_int_equal(((mv_profile *)mine->pdata[0])->id, a);
	g_ptr_array_unref(mine);

	ok(mv_profile_set_server_side(shared, b, true, 3600, "22:00-04:00", &err), err);
	p = mv_profile_get(shared, b, &err);
	assert_true(p->automatic);
	assert_int_equal(p->pause_seconds, 3600);
	assert_string_equal(p->maintenance_windows, "22:00-04:00");
	mv_profile_free(p);

	ok(mv_profile_delete(shared, a, &err), err);
	fails(mv_profile_get(shared, a, &err) ? 0 : -1, &err, MV_ERR_NOT_FOUND, "no profile");
	fails(mv_profile_delete(shared, a, &err), &err, MV_ERR_NOT_FOUND, "no profile");
	fails(mv_profile_set_server_side(shared, a, false, 0, NULL, &err), &err, MV_ERR_NOT_FOUND, "no profile");
	/* AUTOINCREMENT: a deleted profile's id is never given again. */
	int64_t c = save(shared, "later", "admin", 0);
	assert_true(c > b);
	ok(mv_profile_delete(shared, b, &err), err);
	ok(mv_profile_delete(shared, c, &err), err);
}

static void test_credential_use(void **state)
{
	GError *err = NULL;
	int64_t cred = 0;
	ok(mv_credential_create(shared, MV_CREDENTIAL_PASSWORD, "mailbox",
	                        &(mv_credential_settings){ .user_name = "u", .password = "pw-Profiles-1" }, &cred, &err),
	   err);
	int64_t before = count_rows(shared, "profiles");
	mv_profile p = { .name = "nothing", .owner = "admin", .type = "I", .connector = "FileSystem", .details = "{}" };
	int64_t id = 0;
	fails(mv_profile_create(shared, &p, cred + 100, &id, &err), &err, MV_ERR_NOT_FOUND, "");
	assert_int_equal(count_rows(shared, "profiles"), before);

	int64_t pid = save(shared, "Journal import", "admin", cred);
	assert_int_equal(count_rows(shared, "profile_credentials"), 1);
	fails(mv_credential_delete(shared, cred, &err), &err, MV_ERR_STATE, "profile 'Journal import'");
	ok(mv_profile_delete(shared, pid, &err), err);
	assert_int_equal(count_rows(shared, "profile_credentials"), 0);
	ok(mv_credential_delete(shared, cred, &err), err);
}

static void test_older_instance(void **state)
{
	char *dir = new_instance_dir("older");
	char *path = g_build_filename(dir, "master.sqlite", NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE profiles", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	mv_instance *inst = open_instance(dir);
	int64_t id = save(inst, "after the upgrade", "admin", 0);
	assert_true(id > 0);
	mv_instance_close(&inst);
	g_free(path);
	g_free(dir);
}

int main(void)
{
	mv_log_set_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_save_read_list_delete),
		cmocka_unit_test(test_credential_use),
		cmocka_unit_test(test_older_instance),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
