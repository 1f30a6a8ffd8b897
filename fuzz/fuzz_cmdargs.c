/* libFuzzer target for commands/registry argument parsing: the text
 * arguments of every Administration API call come from outside (shell
 * lines, HTTP form fields), so any bytes must end in either a typed object
 * that honours the argument table or an error naming the function — never a
 * crash, a leak, or an error envelope that cannot be serialised.  Only
 * parsing runs here, never a handler.
 *
 * Input: lines.  Without NUL bytes each line is a shell line, split as
 * `mailvault shell` and the job scheduler split it (mv_command_line_split):
 * the function name, then --name=value words.  With a NUL byte the input is NUL-separated fields:
 * the function name, then name=value fields, which reach values no shell
 * quoting produces.  A name the registry does not know picks one of the
 * registry's functions or of a local table covering every argument type,
 * so the fuzzer reaches all conversions whatever the registry holds. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "commands/commands.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_states[] = { "current", "normal", "writeProtected", "disabled", NULL };

static const mv_command_arg every_type_args[] = {
	{ "name", MV_ARG_STRING, false, NULL },
	{ "count", MV_ARG_NUMBER, true, NULL },
	{ "flag", MV_ARG_BOOL, true, NULL },
	{ "config", MV_ARG_JSON, true, NULL },
	{ "state", MV_ARG_STRING, true, fuzz_states },
	{ .name = NULL },
};

static const mv_command_arg required_args[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "enabled", MV_ARG_BOOL, false, NULL },
	{ "filter", MV_ARG_JSON, false, NULL },
	{ .name = NULL },
};

static json_t *never_run(mv_command_ctx *ctx, json_t *args, GError **error)
{
	abort();
}

static const mv_command local_commands[] = {
	{ "FuzzEveryType", every_type_args, "admin", false, never_run, "all argument types, optional", NULL },
	{ "FuzzRequired", required_args, "admin", false, never_run, "non-string types, required", NULL },
};

static const mv_command *pick_command(const char *name)
{
	const mv_command *found = mv_command_find(name);
	if (found)
		return found;
	for (size_t i = 0; i < G_N_ELEMENTS(local_commands); i++)
		if (strcmp(name, local_commands[i].name) == 0)
			return &local_commands[i];
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	size_t choice = strlen(name) % (n + G_N_ELEMENTS(local_commands));
	return choice < n ? all[choice] : &local_commands[choice - n];
}

static const mv_command_arg *arg_of(const mv_command *cmd, const char *name)
{
	for (const mv_command_arg *a = cmd->args; a && a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static bool value_allowed(const mv_command_arg *a, const char *value)
{
	if (!a->allowed)
		return true;
	for (const char *const *v = a->allowed; *v; v++)
		if (strcmp(*v, value) == 0)
			return true;
	return false;
}

/* A success must be an object holding only known arguments, each of its
 * declared type, the given text for strings, and every required one. */
static void check_parsed(const mv_command *cmd, GHashTable *text_args, json_t *parsed)
{
	if (!json_is_object(parsed))
		abort();
	const char *key;
	json_t *value;
	json_object_foreach(parsed, key, value) {
		const mv_command_arg *a = arg_of(cmd, key);
		const char *text = g_hash_table_lookup(text_args, key);
		if (!a || !text)
			abort();
		bool textual = a->type == MV_ARG_STRING || a->type == MV_ARG_SECRET;
		bool typed = (textual && json_is_string(value) && strcmp(json_string_value(value), text) == 0 &&
		              value_allowed(a, text)) ||
		             (a->type == MV_ARG_NUMBER && json_is_integer(value)) ||
		             (a->type == MV_ARG_BOOL && json_is_boolean(value)) || a->type == MV_ARG_JSON;
		if (!typed) {
			fprintf(stderr, "%s: argument %s parsed to a value of the wrong type\n", cmd->name, key);
			abort();
		}
	}
	for (const mv_command_arg *a = cmd->args; a && a->name; a++)
		if (!a->nullable && !json_object_get(parsed, a->name))
			abort();
}

/* A refusal names the function, and the caller can answer with it. */
static void check_refusal(const mv_command *cmd, GError *err)
{
	if (!err || err->domain != MV_ERROR || (err->code != MV_ERR_INVALID && err->code != MV_ERR_LIMIT))
		abort();
	if (!g_str_has_prefix(err->message, cmd->name) || strncmp(err->message + strlen(cmd->name), ": ", 2) != 0)
		abort();
	json_t *envelope = mv_command_error_envelope(err->message, NULL);
	if (!envelope || !json_is_object(json_object_get(envelope, "error")))
		abort();
	char *text = json_dumps(envelope, JSON_COMPACT);
	if (!text)
		abort();
	free(text);
	json_decref(envelope);
}

static void parse_and_check(const mv_command *cmd, GHashTable *text_args)
{
	GError *err = NULL;
	json_t *parsed = mv_command_parse_args(cmd, text_args, &err);
	if (parsed) {
		if (err)
			abort();
		check_parsed(cmd, text_args, parsed);
		json_decref(parsed);
	} else {
		check_refusal(cmd, err);
		g_error_free(err);
	}
}

/* Adds name=value (the part after a leading "--", if any); a repeated name
 * keeps its first value, as the shell refuses repeats before parsing. */
static void add_text_arg(GHashTable *text_args, const char *word)
{
	if (g_str_has_prefix(word, "--"))
		word += 2;
	const char *equals = strchr(word, '=');
	char *name = equals ? g_strndup(word, (gsize)(equals - word)) : g_strdup(word);
	if (g_hash_table_contains(text_args, name)) {
		g_free(name);
		return;
	}
	g_hash_table_insert(text_args, name, g_strdup(equals ? equals + 1 : "true"));
}

static void run_fields(char **fields, int count)
{
	if (count < 1)
		return;
	const mv_command *cmd = pick_command(fields[0]);
	GHashTable *text_args = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (int i = 1; i < count; i++)
		add_text_arg(text_args, fields[i]);
	parse_and_check(cmd, text_args);
	g_hash_table_destroy(text_args);
}

/* A shell line goes the way a job's action and a shell line go:
 * mv_command_line_split, which refuses what is not `Function --name=value`
 * with MV_ERR_INVALID naming the line or the function. */
static void run_shell_line(const char *line)
{
	char *name = NULL;
	GHashTable *text_args = NULL;
	GError *err = NULL;
	if (mv_command_line_split(line, &name, &text_args, &err) < 0) {
		if (!err || err->domain != MV_ERROR || err->code != MV_ERR_INVALID || name || text_args)
			abort();
		g_error_free(err);
		return;
	}
	if (!name || !text_args || err)
		abort();
	parse_and_check(pick_command(name), text_args);
	g_hash_table_destroy(text_args);
	g_free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		mv_log_set_quiet(true);
		quiet = true;
	}
	char *text = g_malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (memchr(data, '\0', size)) {
		GPtrArray *fields = g_ptr_array_new();
		for (const char *p = text; p < text + size; p += strlen(p) + 1)
			g_ptr_array_add(fields, (gpointer)p);
		run_fields((char **)fields->pdata, (int)fields->len);
		g_ptr_array_free(fields, TRUE);
	} else {
		char **lines = g_strsplit(text, "\n", 64);
		for (char **line = lines; *line; line++)
			run_shell_line(*line);
		g_strfreev(lines);
	}
	g_free(text);
	return 0;
}
