/* instance_fixture.h: a scratch directory of instances for the unit tests
 * of archive/ and commands/ (test_users.c, test_credentials.c,
 * test_profiles.c), with one instance shared by a group's tests (a test that
 * needs its own makes one with new_instance_dir), and the checks they share.
 * Define INSTANCE_FIXTURE_NAME before including; define
 * INSTANCE_FIXTURE_COMMANDS (and link the registry) for call(). */
#ifndef MV_TEST_INSTANCE_FIXTURE_H
#define MV_TEST_INSTANCE_FIXTURE_H

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "archive/archive.h"

static char *tmp_root;
static char *shared_dir;
static mv_instance *shared;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static char *new_instance_dir(const char *name)
{
	char *dir = g_build_filename(tmp_root, name, NULL);
	char *recovery = NULL;
	GError *err = NULL;
	if (mv_instance_init(dir, &recovery, &err) < 0)
		fail_msg("init %s: %s", dir, err->message);
	g_free(recovery);
	return dir;
}

static mv_instance *open_instance(const char *dir)
{
	GError *err = NULL;
	mv_instance *inst = mv_instance_open(dir, &err);
	if (!inst)
		fail_msg("open %s: %s", dir, err->message);
	return inst;
}

static int group_setup(void **state)
{
	tmp_root = g_dir_make_tmp("mv-test-" INSTANCE_FIXTURE_NAME "-XXXXXX", NULL);
	if (!tmp_root)
		return -1;
	shared_dir = new_instance_dir("shared");
	shared = open_instance(shared_dir);
	return 0;
}

static int group_teardown(void **state)
{
	mv_instance_close(&shared);
	nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_free(shared_dir);
	g_free(tmp_root);
	return 0;
}

/* The error is read after the call: a macro, since the order in which a
 * function's arguments are evaluated is unspecified. */
#define ok(rc, err) ok_at((rc), &(err))

static void ok_at(int rc, GError **err)
{
	if (rc < 0)
		fail_msg("failed: %s", *err ? (*err)->message : "(no error)");
	assert_null(*err);
}

static void fails(int rc, GError **err, int code, const char *text)
{
	assert_int_equal(rc, -1);
	assert_non_null(*err);
	if (!g_error_matches(*err, MV_ERROR, code))
		fail_msg("error code %d ('%s'), expected %d", (*err)->code, (*err)->message, code);
	if (!strstr((*err)->message, text))
		fail_msg("error '%s' does not contain '%s'", (*err)->message, text);
	g_clear_error(err);
}

#ifdef INSTANCE_FIXTURE_COMMANDS
#include "commands/commands.h"

/* Runs a registry function with name, value pairs (NULL-terminated) as the
 * shell would, as admin on the shared instance; returns the envelope. */
static json_t *call(const char *function, ...)
{
	const mv_command *cmd = mv_command_find(function);
	if (!cmd)
		fail_msg("%s is not registered", function);
	GHashTable *text = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	va_list ap;
	va_start(ap, function);
	for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
		g_hash_table_insert(text, g_strdup(n), g_strdup(va_arg(ap, const char *)));
	va_end(ap);
	GError *err = NULL;
	json_t *args = mv_command_parse_args(cmd, text, &err);
	g_hash_table_destroy(text);
	if (!args) {
		json_t *env = mv_command_error_envelope(err->message, NULL);
		g_error_free(err);
		return env;
	}
	mv_command_ctx ctx = { .inst = shared, .user = "admin", .remote = "local" };
	json_t *env = mv_command_invoke(cmd, &ctx, args);
	json_decref(args);
	return env;
}

static json_t *result_of(json_t *env)
{
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	if (strcmp(status, "succeeded") != 0)
		fail_msg("failed: %s", json_string_value(json_object_get(json_object_get(env, "error"), "message")));
	return json_object_get(env, "result");
}

/* The call failed with a message holding message_part; frees env. */
static void call_fails(json_t *env, const char *message_part)
{
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	assert_string_equal(status, "failed");
	const char *message = json_string_value(json_object_get(json_object_get(env, "error"), "message"));
	if (!strstr(message, message_part))
		fail_msg("error '%s' does not contain '%s'", message, message_part);
	json_decref(env);
}
#endif

#endif
