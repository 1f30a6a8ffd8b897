/* libFuzzer target for what the Administration API decodes from a client
 * before any function runs: the form-encoded body (then handed to the
 * registry's argument parsing, as the server does), the Basic credentials
 * and the request path.  Any bytes must end in a table or a clear error,
 * never a crash or a leak; what decodes must be valid UTF-8 without NULs.
 *
 * Input: the first byte picks the decoder (form, Authorization header,
 * path); the rest is the client's bytes. */
#include <stdlib.h>
#include <string.h>

#include "commands/commands.h"
#include "net/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_fields(GHashTable *fields)
{
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, fields);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (!g_utf8_validate(k, -1, NULL) || !g_utf8_validate(v, -1, NULL) || !*(const char *)k)
			abort();
}

/* The form's fields as one registry function's arguments, cycling through
 * the functions so that every argument table is reached. */
static void parse_as_arguments(GHashTable *fields, size_t pick)
{
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	GError *err = NULL;
	json_t *args = mv_command_parse_args(all[pick % n], fields, &err);
	if (args)
		json_decref(args);
	else if (!err || !err->message)
		abort();
	g_clear_error(&err);
}

static void fuzz_form(const uint8_t *data, size_t size, uint8_t pick)
{
	GError *err = NULL;
	GHashTable *fields = mv_form_decode((const char *)data, size, &err);
	if (!fields) {
		if (!err || !g_utf8_validate(err->message, -1, NULL))
			abort();
		g_error_free(err);
		return;
	}
	check_fields(fields);
	parse_as_arguments(fields, pick);
	g_hash_table_destroy(fields);
}

static void fuzz_auth(const uint8_t *data, size_t size)
{
	char *header = g_strndup((const char *)data, size);
	char *user = NULL, *password = NULL;
	GError *err = NULL;
	if (mv_basic_auth_decode(header, &user, &password, &err) == 0) {
		if (!*user || strchr(user, ':') || !g_utf8_validate(user, -1, NULL) || !g_utf8_validate(password, -1, NULL))
			abort();
		g_free(user);
		g_free(password);
	} else {
		g_error_free(err);
	}
	g_free(header);
}

static void fuzz_path(const uint8_t *data, size_t size)
{
	char *url = g_strndup((const char *)data, size);
	char *path = mv_api_normalize_path(url);
	if (strstr(path, "//"))
		abort();
	g_free(path);
	g_free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	switch (mode % 3) {
	case 0:
		fuzz_form(data + 1, size - 1, mode / 3);
		break;
	case 1:
		fuzz_auth(data + 1, size - 1);
		break;
	default:
		fuzz_path(data + 1, size - 1);
		break;
	}
	return 0;
}
