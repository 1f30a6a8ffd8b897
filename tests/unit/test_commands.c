/* Unit tests for commands/registry: the table every caller (shell, HTTP API,
 * jobs) reaches functions through, the argument conversion that is the only
 * place argument syntax is checked, and the JSON envelope of design.md §9.
 *
 * Argument conversion is tested on local mv_command tables rather than on
 * real functions, so these tests hold whatever the command files define;
 * only the registry-wide checks (sorted, unique, well-formed entries) walk
 * the real table.  Error messages are compared exactly: they are what an
 * administrator reads, and they must name the function and the argument. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "commands/commands.h"

/* ---- local functions --------------------------------------------------------- */

static const char *const state_values[] = { "current", "normal", "writeProtected", "disabled", NULL };

/* Every type, optional: what a form may leave empty. */
static const mv_command_arg sample_args[] = {
	{ "name", MV_ARG_STRING, false, NULL },
	{ "count", MV_ARG_NUMBER, true, NULL },
	{ "flag", MV_ARG_BOOL, true, NULL },
	{ "config", MV_ARG_JSON, true, NULL },
	{ "state", MV_ARG_STRING, true, state_values },
	{ "label", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};

/* Every non-string type, required: an empty value is an error, not absence. */
static const mv_command_arg strict_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "enabled", MV_ARG_BOOL, false, NULL },
	{ "filter", MV_ARG_JSON, false, NULL },
	{ .name = NULL },
};

static const mv_command_arg no_args[] = { { .name = NULL } };

static json_t *echo_args(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_log(ctx, "echoing %d arguments", (int)json_object_size(args));
	return json_incref(args);
}

static json_t *answer_42(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_log(ctx, "first line");
	mv_command_log(ctx, "second %s", "line");
	return json_pack("{s:i}", "answer", 42);
}

static json_t *answer_nothing(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return json_null();
}

static json_t *fail_write_protected(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_log(ctx, "looked at store 3");
	g_set_error(error, MV_ERROR, MV_ERR_STATE, "store 3 is write-protected");
	return NULL;
}

static json_t *fail_silently(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return NULL;
}

/* File names and system messages need not be UTF-8; the envelope must be. */
static json_t *fail_with_latin1(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_log(ctx, "opened caf\xe9.eml");
	g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot read caf\xe9.eml");
	return NULL;
}

static json_t *succeed_with_latin1_log(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_log(ctx, "imported caf\xe9.eml");
	return json_true();
}

static json_t *stop_when_cancelled(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_command_progress(ctx, 10, "step %d of %d", 1, 10);
	if (mv_command_cancelled(ctx)) {
		g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "cancelled after step 1");
		return NULL;
	}
	return json_string("finished");
}

static const mv_command sample_cmd = { "SampleFunction", sample_args, "admin", false, echo_args, "all types", NULL };
static const mv_command strict_cmd = { "StrictFunction", strict_args, "admin", false, echo_args, "required", NULL };
static const mv_command bare_cmd = { "BareFunction", no_args, "admin", false, echo_args, "no arguments", NULL };

/* ---- helpers ----------------------------------------------------------------- */

/* Text arguments from name, value pairs ending with NULL. */
static GHashTable *text_args(const char *name, ...)
{
	GHashTable *table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	va_list ap;
	va_start(ap, name);
	for (const char *n = name; n; n = va_arg(ap, const char *)) {
		const char *value = va_arg(ap, const char *);
		g_hash_table_insert(table, g_strdup(n), g_strdup(value));
	}
	va_end(ap);
	return table;
}

/* Parses and takes the table; the result must be an object and no error. */
static json_t *parse_ok(const mv_command *cmd, GHashTable *args)
{
	GError *err = NULL;
	json_t *out = mv_command_parse_args(cmd, args, &err);
	if (!out)
		fail_msg("%s: parse failed: %s", cmd->name, err ? err->message : "(no error)");
	assert_null(err);
	assert_true(json_is_object(out));
	if (args)
		g_hash_table_destroy(args);
	return out;
}

/* Parses and takes the table; must fail with this code and exact message. */
static void parse_fails(const mv_command *cmd, GHashTable *args, int code, const char *expected)
{
	GError *err = NULL;
	json_t *out = mv_command_parse_args(cmd, args, &err);
	if (out) {
		char *text = json_dumps(out, JSON_COMPACT);
		fail_msg("%s: parsed as %s, expected error '%s'", cmd->name, text, expected);
	}
	assert_non_null(err);
	assert_true(g_error_matches(err, MV_ERROR, code));
	if (strcmp(err->message, expected) != 0)
		fail_msg("%s: error '%s', expected '%s'", cmd->name, err->message, expected);
	g_error_free(err);
	if (args)
		g_hash_table_destroy(args);
}

static void number_fails(const char *text)
{
	char *expected = g_strdup_printf("StrictFunction: argument 'id' must be an integer number (got '%s')", text);
	parse_fails(&strict_cmd, text_args("id", text, "enabled", "true", "filter", "{}", NULL), MV_ERR_INVALID,
	            expected);
	g_free(expected);
}

static void bool_fails(const char *text)
{
	char *expected = g_strdup_printf("StrictFunction: argument 'enabled' must be true or false (got '%s')", text);
	parse_fails(&strict_cmd, text_args("id", "1", "enabled", text, "filter", "{}", NULL), MV_ERR_INVALID,
	            expected);
	g_free(expected);
}

/* A bad JSON text: the message names function and argument, then jansson's reason. */
static void json_fails(const char *text)
{
	GError *err = NULL;
	GHashTable *args = text_args("id", "1", "enabled", "true", "filter", text, NULL);
	json_t *out = mv_command_parse_args(&strict_cmd, args, &err);
	g_hash_table_destroy(args);
	if (out)
		fail_msg("JSON '%s' was accepted", text);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	if (!g_str_has_prefix(err->message, "StrictFunction: argument 'filter' is not valid JSON: "))
		fail_msg("JSON '%s' gave '%s'", text, err->message);
	g_error_free(err);
}

/* The exact key set of a JSON object, in any order. */
static void assert_keys(json_t *object, const char *const *keys)
{
	assert_true(json_is_object(object));
	size_t n = 0;
	for (; keys[n]; n++)
		if (!json_object_get(object, keys[n]))
			fail_msg("key '%s' missing", keys[n]);
	assert_int_equal(json_object_size(object), n);
}

static const char *const envelope_keys[] = {
	"error", "token", "statusVersion", "statusCode", "percentProgress", "statusText", "result", "logOutput", NULL,
};

static void assert_envelope(json_t *env, const char *status)
{
	assert_non_null(env);
	assert_keys(env, envelope_keys);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), status);
	assert_true(json_is_null(json_object_get(env, "token")));
	assert_true(json_is_integer(json_object_get(env, "statusVersion")));
	assert_true(json_is_null(json_object_get(env, "percentProgress")));
	assert_true(json_is_null(json_object_get(env, "statusText")));
}

static json_t *invoke(const mv_command *cmd, mv_command_ctx *ctx, json_t *args)
{
	json_t *env = mv_command_invoke(cmd, ctx, args);
	json_decref(args);
	return env;
}

/* ---- the registry -------------------------------------------------------------- */

static void test_find(void **state)
{
	const mv_command *info = mv_command_find("GetServerInfo");
	assert_non_null(info);
	assert_string_equal(info->name, "GetServerInfo");
	assert_non_null(mv_command_find("GetTimeZones"));
	assert_null(mv_command_find("NoSuchFunction"));
	assert_null(mv_command_find(""));
	assert_null(mv_command_find("getserverinfo"));     /* names are exact */
	assert_null(mv_command_find("GetServerInfo "));
	assert_null(mv_command_find("GetServerInf"));
}

static bool known_privilege(const char *privilege)
{
	static const char *const privileges[] = {
		"none", "admin", "login", "changePassword", "archive", "modifyArchiveProfiles", "export",
		"modifyExportProfiles", "delete",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(privileges); i++)
		if (strcmp(privilege, privileges[i]) == 0)
			return true;
	return false;
}

/* A terminated table of uniquely named arguments with sane allowed lists;
 * a table without its NULL entry would run far past 256 and fail here. */
static void check_args_table(const mv_command *cmd)
{
	assert_non_null(cmd->args);
	size_t n = 0;
	for (const mv_command_arg *a = cmd->args; a->name; a++, n++) {
		if (n >= 256)
			fail_msg("%s: argument table not terminated", cmd->name);
		assert_true(*a->name != '\0');
		assert_true(a->type == MV_ARG_STRING || a->type == MV_ARG_NUMBER || a->type == MV_ARG_BOOL ||
		            a->type == MV_ARG_JSON || a->type == MV_ARG_SECRET);
		for (const mv_command_arg *b = cmd->args; b != a; b++)
			if (strcmp(a->name, b->name) == 0)
				fail_msg("%s: argument '%s' listed twice", cmd->name, a->name);
		if (a->allowed) {
			if (a->type != MV_ARG_STRING)
				fail_msg("%s: allowed values on non-string argument '%s'", cmd->name, a->name);
			size_t values = 0;
			for (const char *const *v = a->allowed; *v; v++, values++)
				assert_true(values < 256);
			if (values == 0)
				fail_msg("%s: argument '%s' allows nothing", cmd->name, a->name);
		}
	}
}

static void test_list(void **state)
{
	size_t n = 0;
	const mv_command *const *all = mv_command_list(&n);
	assert_non_null(all);
	assert_true(n >= 2);
	size_t again = 0;
	assert_ptr_equal(mv_command_list(&again), all);   /* built once */
	assert_int_equal(again, n);
	for (size_t i = 0; i < n; i++) {
		const mv_command *cmd = all[i];
		assert_non_null(cmd->name);
		assert_true(*cmd->name != '\0');
		/* Strictly increasing: sorted, and no name twice. */
		if (i > 0 && strcmp(all[i - 1]->name, cmd->name) >= 0)
			fail_msg("'%s' listed before '%s'", all[i - 1]->name, cmd->name);
		assert_ptr_equal(mv_command_find(cmd->name), cmd);
		/* One handler, of one kind: whole, or rows (a list function). */
		if (!cmd->run == !cmd->rows)
			fail_msg("%s: needs exactly one of run and rows", cmd->name);
		if (cmd->rows && cmd->long_running)
			fail_msg("%s: a list function answers at once; it cannot be long-running", cmd->name);
		assert_non_null(cmd->summary);
		if (!cmd->privilege || !known_privilege(cmd->privilege))
			fail_msg("%s: privilege '%s' is not one of design.md §9", cmd->name,
			         cmd->privilege ? cmd->privilege : "(null)");
		check_args_table(cmd);
	}
}

static const char *expected_type_word(mv_arg_type type)
{
	switch (type) {
	case MV_ARG_STRING: return "string";
	case MV_ARG_NUMBER: return "number";
	case MV_ARG_BOOL: return "bool";
	case MV_ARG_JSON: return "json";
	case MV_ARG_SECRET: return "string";
	}
	return "?";
}

/* An argument named like a secret must be typed as one, so that the audit
 * log, refusal reasons and the shell's history never hold its value. */
static bool named_like_secret(const char *name)
{
	char *lower = g_ascii_strdown(name, -1);
	bool secret = strstr(lower, "password") || strstr(lower, "passphrase") || strstr(lower, "secret") ||
	              strstr(lower, "token") || g_str_has_suffix(lower, "key");
	g_free(lower);
	return secret;
}

static void test_secret_arguments_are_typed_secret(void **state)
{
	(void)state;
	size_t n = 0;
	const mv_command *const *all = mv_command_list(&n);
	int secrets = 0;
	for (size_t i = 0; i < n; i++)
		for (const mv_command_arg *a = all[i]->args; a && a->name; a++) {
			if (named_like_secret(a->name) && a->type != MV_ARG_SECRET)
				fail_msg("%s: argument '%s' holds a secret but is not MV_ARG_SECRET", all[i]->name, a->name);
			secrets += a->type == MV_ARG_SECRET;
		}
	assert_true(secrets >= 6);
	assert_true(mv_command_text_may_hold_secret("UnlockStore --id=1 --PASSPHRASE=x"));
	assert_true(mv_command_text_may_hold_secret("RecoverStore --id=1 --encryptionKey x"));
	assert_false(mv_command_text_may_hold_secret("SearchMessages --query=invoice"));
}

static void test_metadata(void **state)
{
	static const char *const function_keys[] = { "name", "args", NULL };
	static const char *const arg_keys[] = { "name", "type", "nullable", NULL };
	size_t n = 0;
	const mv_command *const *all = mv_command_list(&n);
	json_t *meta = mv_command_metadata();
	assert_true(json_is_array(meta));
	assert_int_equal(json_array_size(meta), n);
	bool saw_server_info = false;
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(meta, i);
		assert_keys(f, function_keys);
		assert_string_equal(json_string_value(json_object_get(f, "name")), all[i]->name);
		json_t *args = json_object_get(f, "args");
		assert_true(json_is_array(args));
		size_t k = 0;
		for (const mv_command_arg *a = all[i]->args; a->name; a++, k++) {
			json_t *arg = json_array_get(args, k);
			assert_keys(arg, arg_keys);
			assert_string_equal(json_string_value(json_object_get(arg, "name")), a->name);
			assert_string_equal(json_string_value(json_object_get(arg, "type")), expected_type_word(a->type));
			assert_true(json_is_boolean(json_object_get(arg, "nullable")));
			assert_int_equal(json_is_true(json_object_get(arg, "nullable")), a->nullable);
		}
		assert_int_equal(json_array_size(args), k);
		if (strcmp(all[i]->name, "GetServerInfo") == 0) {
			saw_server_info = true;
			assert_int_equal(k, 0);
		}
	}
	assert_true(saw_server_info);
	/* What get-metadata sends must serialise. */
	char *text = json_dumps(meta, JSON_COMPACT);
	assert_non_null(text);
	free(text);
	json_decref(meta);
}

/* ---- argument conversion ----------------------------------------------------------- */

static void test_parse_types(void **state)
{
	json_t *v = parse_ok(&sample_cmd, text_args("name", "John Doe", "count", "42", "flag", "true",
	                                            "config", "{\"a\":[1,2]}", "state", "writeProtected",
	                                            "label", "Grüße", NULL));
	assert_int_equal(json_object_size(v), 6);
	assert_string_equal(mv_arg_string(v, "name"), "John Doe");
	assert_true(json_is_integer(json_object_get(v, "count")));
	assert_int_equal(mv_arg_number(v, "count", -1), 42);
	assert_true(json_is_true(json_object_get(v, "flag")));
	json_t *config = json_object_get(v, "config");
	assert_true(json_is_array(json_object_get(config, "a")));
	assert_int_equal(json_integer_value(json_array_get(json_object_get(config, "a"), 1)), 2);
	assert_string_equal(mv_arg_string(v, "state"), "writeProtected");
	assert_string_equal(mv_arg_string(v, "label"), "Grüße");
	json_decref(v);

	v = parse_ok(&sample_cmd, text_args("name", "x", "count", "-7", "flag", "false", "config", "3", NULL));
	assert_int_equal(mv_arg_number(v, "count", 0), -7);
	assert_true(json_is_false(json_object_get(v, "flag")));
	assert_int_equal(json_integer_value(json_object_get(v, "config")), 3);   /* any JSON value */
	json_decref(v);

	v = parse_ok(&sample_cmd, text_args("name", "", "count", "9223372036854775807", "config", "\"text\"", NULL));
	assert_string_equal(mv_arg_string(v, "name"), "");   /* an empty string is still a string */
	assert_int_equal(mv_arg_number(v, "count", 0), INT64_MAX);
	assert_string_equal(json_string_value(json_object_get(v, "config")), "text");
	json_decref(v);

	v = parse_ok(&sample_cmd, text_args("name", "x", "count", "-9223372036854775808", "config", "null", NULL));
	assert_int_equal(mv_arg_number(v, "count", 0), INT64_MIN);
	assert_true(json_is_null(json_object_get(v, "config")));
	assert_true(mv_arg_present(v, "config"));
	json_decref(v);

	v = parse_ok(&strict_cmd, text_args("id", "0", "enabled", "true", "filter", " [ ] ", NULL));
	assert_int_equal(mv_arg_number(v, "id", -1), 0);
	assert_true(json_is_array(json_object_get(v, "filter")));
	json_decref(v);
}

static void test_parse_absent(void **state)
{
	/* An empty optional non-string value is absent, as an HTML form sends it. */
	json_t *v = parse_ok(&sample_cmd, text_args("name", "x", "count", "", "flag", "", "config", "", "label", "",
	                                            NULL));
	assert_false(mv_arg_present(v, "count"));
	assert_false(mv_arg_present(v, "flag"));
	assert_false(mv_arg_present(v, "config"));
	assert_int_equal(mv_arg_number(v, "count", 17), 17);
	assert_true(mv_arg_bool(v, "flag", true));
	/* ... but an empty string is a value. */
	assert_true(mv_arg_present(v, "label"));
	assert_string_equal(mv_arg_string(v, "label"), "");
	json_decref(v);

	v = parse_ok(&bare_cmd, NULL);
	assert_int_equal(json_object_size(v), 0);
	json_decref(v);
	v = parse_ok(&bare_cmd, text_args(NULL));
	assert_int_equal(json_object_size(v), 0);
	json_decref(v);
	v = parse_ok(&sample_cmd, text_args("name", "only the required one", NULL));
	assert_int_equal(json_object_size(v), 1);
	json_decref(v);
}

static void test_parse_missing(void **state)
{
	parse_fails(&sample_cmd, text_args("count", "1", NULL), MV_ERR_INVALID,
	            "SampleFunction: missing argument 'name' (string)");
	parse_fails(&sample_cmd, NULL, MV_ERR_INVALID, "SampleFunction: missing argument 'name' (string)");
	parse_fails(&strict_cmd, text_args("enabled", "true", "filter", "{}", NULL), MV_ERR_INVALID,
	            "StrictFunction: missing argument 'id' (number)");
	parse_fails(&strict_cmd, text_args("id", "1", "filter", "{}", NULL), MV_ERR_INVALID,
	            "StrictFunction: missing argument 'enabled' (bool)");
	parse_fails(&strict_cmd, text_args("id", "1", "enabled", "false", NULL), MV_ERR_INVALID,
	            "StrictFunction: missing argument 'filter' (json)");
}

static void test_parse_unknown(void **state)
{
	parse_fails(&sample_cmd, text_args("name", "x", "bogus", "1", NULL), MV_ERR_INVALID,
	            "SampleFunction: unknown argument 'bogus' (arguments: name, count, flag, config, state, label)");
	parse_fails(&bare_cmd, text_args("foo", "1", NULL), MV_ERR_INVALID,
	            "BareFunction: unknown argument 'foo' (arguments: none)");
	/* Names are exact, like function names. */
	parse_fails(&sample_cmd, text_args("Name", "x", NULL), MV_ERR_INVALID,
	            "SampleFunction: unknown argument 'Name' (arguments: name, count, flag, config, state, label)");
	parse_fails(&bare_cmd, text_args("", "1", NULL), MV_ERR_INVALID,
	            "BareFunction: unknown argument '' (arguments: none)");
	/* The real registry refuses the same way. */
	parse_fails(mv_command_find("GetTimeZones"), text_args("foo", "1", NULL), MV_ERR_INVALID,
	            "GetTimeZones: unknown argument 'foo' (arguments: none)");
	json_t *v = parse_ok(mv_command_find("GetServerInfo"), text_args(NULL));
	assert_int_equal(json_object_size(v), 0);
	json_decref(v);
}

static void test_parse_numbers(void **state)
{
	number_fails("12x");
	number_fails("");
	number_fails(" 5");
	number_fails("5 ");
	number_fails("\t5");
	number_fails("1.5");
	number_fails("1e3");
	number_fails("0x10");
	number_fails("--5");
	number_fails("five");
	number_fails("99999999999999999999");
	number_fails("-99999999999999999999");
	number_fails("9223372036854775808");
	number_fails("-9223372036854775809");
	/* Long input is cut in the message, not quoted whole. */
	char *long_text = g_strnfill(100, '7');
	long_text[99] = 'x';
	char *cut = g_strndup(long_text, 64);
	char *expected = g_strdup_printf("StrictFunction: argument 'id' must be an integer number (got '%s')", cut);
	parse_fails(&strict_cmd, text_args("id", long_text, "enabled", "true", "filter", "{}", NULL), MV_ERR_INVALID,
	            expected);
	g_free(expected);
	g_free(cut);
	g_free(long_text);
}

static void test_parse_bools(void **state)
{
	bool_fails("TRUE");
	bool_fails("True");
	bool_fails("1");
	bool_fails("yes");
	bool_fails("");
	bool_fails("true ");
	bool_fails("falsey");
}

static void test_parse_json(void **state)
{
	json_fails("");
	json_fails("{");
	json_fails("{\"a\":1,}");
	json_fails("{\"a\":1,\"a\":2}");   /* duplicate keys are refused */
	json_fails("[1] [2]");
	json_fails("'single'");
	json_fails("\xff");
}

static void test_parse_allowed(void **state)
{
	parse_fails(&sample_cmd, text_args("name", "x", "state", "Normal", NULL), MV_ERR_INVALID,
	            "SampleFunction: argument 'state' must be one of current, normal, writeProtected, disabled "
	            "(got 'Normal')");
	parse_fails(&sample_cmd, text_args("name", "x", "state", "normal ", NULL), MV_ERR_INVALID,
	            "SampleFunction: argument 'state' must be one of current, normal, writeProtected, disabled "
	            "(got 'normal ')");
	/* An empty optional choice reads as absent (a form's unselected field). */
	json_t *none = parse_ok(&sample_cmd, text_args("name", "x", "state", "", NULL));
	assert_false(mv_arg_present(none, "state"));
	json_decref(none);
	for (const char *const *v = state_values; *v; v++) {
		json_t *args = parse_ok(&sample_cmd, text_args("name", "x", "state", *v, NULL));
		assert_string_equal(mv_arg_string(args, "state"), *v);
		json_decref(args);
	}
}

static void test_parse_utf8_and_limit(void **state)
{
	parse_fails(&sample_cmd, text_args("name", "caf\xe9", NULL), MV_ERR_INVALID,
	            "SampleFunction: argument 'name' is not valid UTF-8");
	/* 16 MiB is the most one value may hold. */
	size_t limit = 16u * 1024u * 1024u;
	char *big = g_malloc(limit + 2);
	memset(big, 'a', limit + 1);
	big[limit + 1] = '\0';
	parse_fails(&sample_cmd, text_args("name", big, NULL), MV_ERR_LIMIT,
	            "SampleFunction: argument 'name' is longer than 16777216 bytes");
	big[limit] = '\0';
	json_t *v = parse_ok(&sample_cmd, text_args("name", big, NULL));
	assert_int_equal(strlen(mv_arg_string(v, "name")), limit);
	json_decref(v);
	g_free(big);
}

/* ---- invocation and the envelope ------------------------------------------------------ */

static void test_invoke_succeeds(void **state)
{
	mv_command_ctx ctx = { .user = "admin" };
	mv_command cmd = bare_cmd;
	cmd.run = answer_42;
	json_t *env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "succeeded");
	assert_true(json_is_null(json_object_get(env, "error")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(env, "result"), "answer")), 42);
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), "first line\nsecond line\n");
	assert_null(ctx.log);   /* the call's own log is gone with the call */
	json_decref(env);

	/* A handler that returns nothing: result null, no log: logOutput null. */
	cmd.run = answer_nothing;
	env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "succeeded");
	assert_true(json_is_null(json_object_get(env, "result")));
	assert_true(json_is_null(json_object_get(env, "logOutput")));
	json_decref(env);

	/* The handler receives the parsed arguments. */
	json_t *args = parse_ok(&sample_cmd, text_args("name", "x", "count", "5", NULL));
	env = invoke(&sample_cmd, &ctx, args);
	assert_envelope(env, "succeeded");
	json_t *result = json_object_get(env, "result");
	assert_string_equal(mv_arg_string(result, "name"), "x");
	assert_int_equal(mv_arg_number(result, "count", 0), 5);
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), "echoing 2 arguments\n");
	json_decref(env);
}

static void test_invoke_caller_log(void **state)
{
	GString *log = g_string_new("earlier\n");
	mv_command_ctx ctx = { .user = "admin", .log = log };
	mv_command cmd = bare_cmd;
	cmd.run = answer_42;
	json_t *env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "succeeded");
	assert_ptr_equal(ctx.log, log);   /* the caller's log stays the caller's */
	assert_string_equal(log->str, "earlier\nfirst line\nsecond line\n");
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), log->str);
	json_decref(env);
	g_string_free(log, TRUE);
}

static void test_invoke_fails(void **state)
{
	mv_command_ctx ctx = { .user = "admin" };
	mv_command cmd = bare_cmd;
	cmd.run = fail_write_protected;
	json_t *env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "failed");
	static const char *const error_keys[] = { "message", "details", NULL };
	json_t *error = json_object_get(env, "error");
	assert_keys(error, error_keys);
	assert_string_equal(json_string_value(json_object_get(error, "message")), "store 3 is write-protected");
	assert_true(json_is_null(json_object_get(error, "details")));
	assert_true(json_is_null(json_object_get(env, "result")));
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), "looked at store 3\n");
	json_decref(env);

	cmd.run = fail_silently;
	env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "failed");
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "error"), "message")),
	                    "failed without a reason");
	json_decref(env);
}

/* "Never NULL", and the reason survives even when it is not UTF-8. */
static void test_invoke_not_utf8(void **state)
{
	mv_command_ctx ctx = { .user = "admin" };
	mv_command cmd = bare_cmd;
	cmd.run = succeed_with_latin1_log;
	json_t *env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "succeeded");
	assert_true(json_is_string(json_object_get(env, "logOutput")));
	json_decref(env);

	cmd.run = fail_with_latin1;
	env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "failed");
	const char *message = json_string_value(json_object_get(json_object_get(env, "error"), "message"));
	assert_non_null(message);
	assert_true(g_str_has_prefix(message, "cannot read caf"));
	json_decref(env);

	env = mv_command_error_envelope("unknown function 'caf\xe9'", NULL);
	assert_envelope(env, "failed");
	assert_non_null(json_string_value(json_object_get(json_object_get(env, "error"), "message")));
	json_decref(env);
}

static void test_invoke_cancelled(void **state)
{
	volatile gint cancel = 0;
	mv_command_ctx ctx = { .user = "admin", .cancel = &cancel };
	mv_command cmd = bare_cmd;
	cmd.run = stop_when_cancelled;
	cmd.long_running = true;

	json_t *env = invoke(&cmd, &ctx, json_object());   /* no progress sink: progress is dropped */
	assert_envelope(env, "succeeded");
	assert_string_equal(json_string_value(json_object_get(env, "result")), "finished");
	json_decref(env);

	g_atomic_int_set(&cancel, 1);
	env = invoke(&cmd, &ctx, json_object());
	assert_envelope(env, "cancelled");
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "error"), "message")),
	                    "cancelled after step 1");
	assert_true(json_is_null(json_object_get(env, "result")));
	json_decref(env);
}

static void test_error_envelope(void **state)
{
	json_t *env = mv_command_error_envelope("unknown function 'X'", "try --list");
	assert_envelope(env, "failed");
	json_t *error = json_object_get(env, "error");
	assert_string_equal(json_string_value(json_object_get(error, "message")), "unknown function 'X'");
	assert_string_equal(json_string_value(json_object_get(error, "details")), "try --list");
	assert_true(json_is_null(json_object_get(env, "result")));
	assert_true(json_is_null(json_object_get(env, "logOutput")));
	json_decref(env);

	env = mv_command_error_envelope("bad", NULL);
	assert_envelope(env, "failed");
	assert_true(json_is_null(json_object_get(json_object_get(env, "error"), "details")));
	json_decref(env);
}

/* ---- handler helpers ---------------------------------------------------------------- */

typedef struct progress_record {
	int calls;
	int percent;
	char *text;
} progress_record;

static void record_progress(void *opaque, int percent, const char *text)
{
	progress_record *r = opaque;
	r->calls++;
	r->percent = percent;
	g_free(r->text);
	r->text = g_strdup(text);
}

static void test_progress(void **state)
{
	progress_record seen = { 0 };
	mv_command_ctx ctx = { .user = "admin", .progress = record_progress, .progress_opaque = &seen };
	mv_command_progress(&ctx, 37, "copied %d of %d stores", 3, 8);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.percent, 37);
	assert_string_equal(seen.text, "copied 3 of 8 stores");
	mv_command_progress(&ctx, -1, "%s", "counting");
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.percent, -1);
	assert_string_equal(seen.text, "counting");
	g_free(seen.text);

	mv_command_ctx silent = { .user = "admin" };
	mv_command_progress(&silent, 50, "nobody listens");   /* no sink: nothing happens */
}

static void test_log_and_cancel(void **state)
{
	mv_command_ctx ctx = { .user = "admin" };
	mv_command_log(&ctx, "no log buffer: %d", 1);   /* only the process log */
	ctx.log = g_string_new(NULL);
	mv_command_log(&ctx, "store %d: %s", 2, "opened");
	mv_command_log(&ctx, "done");
	assert_string_equal(ctx.log->str, "store 2: opened\ndone\n");
	g_string_free(ctx.log, TRUE);

	assert_false(mv_command_cancelled(&ctx));   /* no flag: never cancelled */
	volatile gint flag = 0;
	ctx.cancel = &flag;
	assert_false(mv_command_cancelled(&ctx));
	g_atomic_int_set(&flag, 1);
	assert_true(mv_command_cancelled(&ctx));
}

static void test_accessors(void **state)
{
	json_t *args = json_pack("{s:s, s:I, s:b, s:s}", "s", "text", "n", (json_int_t)-12, "b", 1, "ns", "12");
	assert_string_equal(mv_arg_string(args, "s"), "text");
	assert_null(mv_arg_string(args, "missing"));
	assert_null(mv_arg_string(args, "n"));            /* wrong type reads as absent */
	assert_int_equal(mv_arg_number(args, "n", 0), -12);
	assert_int_equal(mv_arg_number(args, "missing", 99), 99);
	assert_int_equal(mv_arg_number(args, "ns", 99), 99);
	assert_true(mv_arg_bool(args, "b", false));
	assert_false(mv_arg_bool(args, "missing", false));
	assert_true(mv_arg_bool(args, "s", true));
	assert_true(mv_arg_present(args, "s"));
	assert_false(mv_arg_present(args, "missing"));
	json_decref(args);
}

int main(void)
{
	mv_log_set_quiet(true);   /* mv_command_log also writes the process log */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_secret_arguments_are_typed_secret),
		cmocka_unit_test(test_parse_types),
		cmocka_unit_test(test_parse_absent),
		cmocka_unit_test(test_parse_missing),
		cmocka_unit_test(test_parse_unknown),
		cmocka_unit_test(test_parse_numbers),
		cmocka_unit_test(test_parse_bools),
		cmocka_unit_test(test_parse_json),
		cmocka_unit_test(test_parse_allowed),
		cmocka_unit_test(test_parse_utf8_and_limit),
		cmocka_unit_test(test_invoke_succeeds),
		cmocka_unit_test(test_invoke_caller_log),
		cmocka_unit_test(test_invoke_fails),
		cmocka_unit_test(test_invoke_not_utf8),
		cmocka_unit_test(test_invoke_cancelled),
		cmocka_unit_test(test_error_envelope),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_log_and_cancel),
		cmocka_unit_test(test_accessors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
