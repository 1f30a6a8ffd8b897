/* Unit tests for commands/rows.c and commands/stream.c: a list function's
 * envelope written a part at a time.  Local row sources stand in for the
 * listings so that every outcome can be forced — rows then the end, a
 * failure before the first row, a failure after some rows, no rows — and
 * every envelope is read back with jansson, as a client would: it must
 * parse, hold the rows in order, and say what happened.  The same calls
 * through mv_command_invoke (the whole-answer path of the shell and jobs)
 * must give the same result, so the two ways out cannot drift apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "commands/commands.h"

/* A source of `count` rows {"n": i, "text": ...}; with fail_at >= 0 it
 * fails when asked for row fail_at instead. */
typedef struct counter {
	int count, fail_at, next;
	bool freed;
} counter;

static counter *last_counter;

static int counter_next(void *state, GString *out, GError **error)
{
	counter *c = state;
	if (c->next == c->fail_at) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "store 7 cannot be read at row %d", c->next);
		return -1;
	}
	if (c->next >= c->count)
		return 0;
	/* Text that needs escaping, and is long enough that parts hold few rows. */
	char *text = g_strdup_printf("row \"%d\" \\ \xC3\xA9 %0200d", c->next, c->next);
	json_t *row = json_pack("{s:i, s:s}", "n", c->next, "text", text);
	mv_json_append(out, row);
	json_decref(row);
	g_free(text);
	c->next++;
	return 1;
}

static void counter_freed(gpointer p)
{
	((counter *)p)->freed = true;
}

static mv_rows *open_counter(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t fail_open = mv_arg_number(args, "failOpen", 0);
	if (fail_open) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "GetRows: folder 'x/y' does not exist");
		return NULL;
	}
	last_counter->count = (int)mv_arg_number(args, "count", 0);
	last_counter->fail_at = (int)mv_arg_number(args, "failAt", -1);
	mv_command_log(ctx, "listing %d rows", last_counter->count);
	return mv_rows_new(counter_next, last_counter, counter_freed);
}

static json_t *whole_answer(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return json_pack("{s:s}", "version", "1.2.3");
}

static const mv_command_arg rows_args[] = {
	{ "count", MV_ARG_NUMBER, true, NULL }, { "failAt", MV_ARG_NUMBER, true, NULL },
	{ "failOpen", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };
static const mv_command rows_cmd = { .name = "GetRows", .args = rows_args, .privilege = "admin",
	                             .rows = open_counter, .summary = "rows" };
static const mv_command whole_cmd = { .name = "GetWhole", .args = rows_args, .privilege = "admin",
	                              .run = whole_answer, .summary = "whole" };

/* The whole envelope text a stream writes, read in parts of `want`. */
static char *stream_text(const mv_command *cmd, json_t *args, size_t want, int *parts_r)
{
	counter c = { 0 };
	last_counter = &c;
	mv_command_ctx ctx = { .user = "admin", .remote = "local" };
	mv_command_stream *s = mv_command_stream_open(cmd, &ctx, args);
	GString *all = g_string_new(NULL), *part = g_string_new(NULL);
	int parts = 0;
	while (mv_command_stream_read(s, part, want)) {
		assert_true(part->len > 0);
		g_string_append_len(all, part->str, (gssize)part->len);
		g_string_truncate(part, 0);
		parts++;
		assert_true(parts < 100000);
	}
	assert_false(mv_command_stream_read(s, part, want));   /* the end stays the end */
	mv_command_stream_free(&s);
	assert_null(s);
	if (cmd->rows && !mv_arg_number(args, "failOpen", 0))
		assert_true(c.freed);
	assert_null(ctx.log);                                 /* the stream's own log is gone */
	g_string_free(part, TRUE);
	if (parts_r)
		*parts_r = parts;
	return g_string_free(all, FALSE);
}

static json_t *parsed(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);
	if (!v)
		fail_msg("not JSON (%s at %d): %.300s", jerr.text, jerr.position, text);
	return v;
}

static json_t *args_of(int count, int fail_at)
{
	json_t *a = json_pack("{s:I}", "count", (json_int_t)count);
	if (fail_at >= 0)
		json_object_set_new(a, "failAt", json_integer(fail_at));
	return a;
}

static void assert_rows(json_t *result, int n)
{
	assert_true(json_is_array(result));
	assert_int_equal(json_array_size(result), n);
	for (int i = 0; i < n; i++) {
		json_t *row = json_array_get(result, (size_t)i);
		assert_int_equal(json_integer_value(json_object_get(row, "n")), i);
		char *want = g_strdup_printf("row \"%d\" \\ \xC3\xA9 %0200d", i, i);
		assert_string_equal(json_string_value(json_object_get(row, "text")), want);
		g_free(want);
	}
}

static void test_all_rows_in_several_parts(void **state)
{
	json_t *args = args_of(500, -1);
	int parts = 0;
	char *text = stream_text(&rows_cmd, args, 4096, &parts);
	json_t *env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "succeeded");
	assert_true(json_is_null(json_object_get(env, "error")));
	assert_rows(json_object_get(env, "result"), 500);
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), "listing 500 rows\n");
	/* ~110 KB of rows in parts of about 4 KB: written as read, not whole. */
	assert_true(parts > 20);
	json_decref(env);
	g_free(text);
	json_decref(args);
}

static void test_no_rows_is_an_empty_result(void **state)
{
	json_t *args = args_of(0, -1);
	char *text = stream_text(&rows_cmd, args, 4096, NULL);
	json_t *env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "succeeded");
	assert_rows(json_object_get(env, "result"), 0);
	assert_string_equal(json_string_value(json_object_get(env, "logOutput")), "listing 0 rows\n");
	json_decref(env);
	g_free(text);
	json_decref(args);
}

static void test_failure_before_the_first_row_is_the_usual_error(void **state)
{
	json_t *args = json_pack("{s:i}", "failOpen", 1);
	char *text = stream_text(&rows_cmd, args, 4096, NULL);
	json_t *env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "failed");
	assert_true(json_is_null(json_object_get(env, "result")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "error"), "message")),
	                    "GetRows: folder 'x/y' does not exist");
	json_decref(env);
	g_free(text);
	json_decref(args);

	/* failing at the first row is "before any row" too */
	args = args_of(10, 0);
	text = stream_text(&rows_cmd, args, 4096, NULL);
	env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "failed");
	assert_true(json_is_null(json_object_get(env, "result")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "error"), "message")),
	                    "store 7 cannot be read at row 0");
	json_decref(env);
	g_free(text);
	json_decref(args);
}

static void test_failure_after_some_rows_ends_the_result_and_says_failed(void **state)
{
	json_t *args = args_of(300, 123);
	char *text = stream_text(&rows_cmd, args, 1000, NULL);
	json_t *env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "failed");
	assert_rows(json_object_get(env, "result"), 123);
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "error"), "message")),
	                    "store 7 cannot be read at row 123");
	json_decref(env);
	g_free(text);
	json_decref(args);
}

static void test_whole_functions_stream_their_envelope_as_one(void **state)
{
	json_t *args = json_object();
	int parts = 0;
	char *text = stream_text(&whole_cmd, args, 1, &parts);
	assert_int_equal(parts, 1);
	json_t *env = parsed(text);
	assert_string_equal(json_string_value(json_object_get(env, "statusCode")), "succeeded");
	assert_string_equal(json_string_value(json_object_get(json_object_get(env, "result"), "version")), "1.2.3");
	json_decref(env);
	g_free(text);
	json_decref(args);
}

/* The shell's path (mv_command_invoke collects the rows) gives what the
 * stream gives, failure included. */
static void test_invoke_collects_the_same_rows(void **state)
{
	for (int fail_at = -1; fail_at <= 40; fail_at += 41) {
		json_t *args = args_of(200, fail_at);
		char *text = stream_text(&rows_cmd, args, 512, NULL);
		json_t *streamed = parsed(text);
		counter c = { 0 };
		last_counter = &c;
		mv_command_ctx ctx = { .user = "admin", .remote = "local" };
		json_t *whole = mv_command_invoke(&rows_cmd, &ctx, args);
		assert_true(c.freed);
		assert_string_equal(json_string_value(json_object_get(whole, "statusCode")),
		                    json_string_value(json_object_get(streamed, "statusCode")));
		if (fail_at < 0) {
			assert_true(json_equal(json_object_get(whole, "result"), json_object_get(streamed, "result")));
			assert_true(json_equal(json_object_get(whole, "logOutput"), json_object_get(streamed, "logOutput")));
		} else {
			/* whole answers never hold part of a list */
			assert_true(json_is_null(json_object_get(whole, "result")));
			assert_true(json_equal(json_object_get(whole, "error"), json_object_get(streamed, "error")));
		}
		json_decref(whole);
		json_decref(streamed);
		g_free(text);
		json_decref(args);
	}
}

/* A caller that stops reading (the client went away) frees the rows. */
static void test_freed_mid_answer_frees_the_rows(void **state)
{
	counter c = { 0 };
	last_counter = &c;
	json_t *args = args_of(1000, -1);
	mv_command_ctx ctx = { .user = "admin", .remote = "local" };
	mv_command_stream *s = mv_command_stream_open(&rows_cmd, &ctx, args);
	GString *part = g_string_new(NULL);
	assert_true(mv_command_stream_read(s, part, 2048));
	assert_true(c.next < 1000);
	mv_command_stream_free(&s);
	assert_true(c.freed);
	g_string_free(part, TRUE);
	json_decref(args);
}

/* A string written by hand reads back as jansson reads it: quotes,
 * backslashes, every control character, non-ASCII text, and text that is
 * not UTF-8 (made valid, never dropped or left invalid). */
static void test_json_strings_read_back(void **state)
{
	GString *raw = g_string_new("plain \"quoted\" back\\slash / \xC3\xA9\xE2\x80\xA8 \xF0\x9F\x93\xA7 ");
	for (int c = 1; c < 0x20; c++)
		g_string_append_c(raw, (char)c);
	g_string_append(raw, "\x7F end");
	const char *cases[] = { "", raw->str, "bad \xFF\xFE utf-8 \xC3", "\xC0\x80 overlong" };
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		GString *out = g_string_new(NULL);
		mv_json_append_string(out, cases[i]);
		json_error_t jerr;
		json_t *v = json_loadb(out->str, out->len, JSON_DECODE_ANY, &jerr);
		if (!v)
			fail_msg("case %zu: not JSON (%s): %s", i, jerr.text, out->str);
		assert_true(json_is_string(v));
		char *want = g_utf8_make_valid(cases[i], -1);
		assert_string_equal(json_string_value(v), want);
		g_free(want);
		json_decref(v);
		g_string_free(out, TRUE);
	}
	GString *out = g_string_new(NULL);
	mv_json_append_string(out, NULL);
	assert_string_equal(out->str, "\"\"");
	g_string_free(out, TRUE);
	g_string_free(raw, TRUE);
}

/* A value longer than the room past a string's end is written whole. */
static void test_json_append_grows(void **state)
{
	GString *out = g_string_new("[");
	char *big = g_strnfill(100000, 'x');
	json_t *v = json_pack("{s:s, s:[i,i]}", "big", big, "n", 1, 2);
	mv_json_append(out, v);
	g_string_append_c(out, ']');
	json_t *back = json_loads(out->str, 0, NULL);
	assert_non_null(back);
	assert_true(json_equal(json_array_get(back, 0), v));
	json_decref(back);
	json_decref(v);
	g_free(big);
	g_string_free(out, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_rows_in_several_parts),
		cmocka_unit_test(test_no_rows_is_an_empty_result),
		cmocka_unit_test(test_failure_before_the_first_row_is_the_usual_error),
		cmocka_unit_test(test_failure_after_some_rows_ends_the_result_and_says_failed),
		cmocka_unit_test(test_whole_functions_stream_their_envelope_as_one),
		cmocka_unit_test(test_invoke_collects_the_same_rows),
		cmocka_unit_test(test_freed_mid_answer_frees_the_rows),
		cmocka_unit_test(test_json_strings_read_back),
		cmocka_unit_test(test_json_append_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
