/* net/form: decoding the parts of an HTTP request that a client controls —
 * the form-encoded body, the Basic credentials and the path.
 *
 * Kept apart from the server so that it is a pure function of bytes (the
 * fuzz target fuzz_form drives it), and strict: a malformed escape, bytes
 * that are not UTF-8, a NUL or a duplicate field is refused with the
 * field's name rather than guessed at, because an argument that silently
 * means something else is worse than an error. */
#include "net/form.h"

#include <sodium.h>
#include <string.h>

#define MAX_NAME_SHOWN 64

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or NUL. */
static char *percent_decode(const char *s, size_t len)
{
	GString *out = g_string_sized_new(len);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				g_string_free(out, TRUE);
				return NULL;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == 0) {
			g_string_free(out, TRUE);
			return NULL;
		}
		g_string_append_c(out, c);
	}
	return g_string_free(out, FALSE);
}

/* A field name fit for an error message (the raw bytes, bounded and made
 * printable). */
static char *shown_name(const char *s, size_t len)
{
	return mv_utf8_sanitize(s, (gssize)MIN(len, MAX_NAME_SHOWN));
}

static int decode_field(GHashTable *fields, const char *item, size_t len, GError **error)
{
	const char *eq = memchr(item, '=', len);
	size_t name_len = eq ? (size_t)(eq - item) : len;
	char *name = percent_decode(item, name_len);
	char *value = eq ? percent_decode(eq + 1, len - name_len - 1) : g_strdup("");
	int rc = -1;
	char *shown = shown_name(item, name_len);
	if (!name || !*name) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "form field '%s': %s", shown,
		            name ? "empty name" : "malformed %-escape or NUL in the name");
	} else if (!value) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "form field '%s': malformed %%-escape or NUL in the value",
		            shown);
	} else if (!g_utf8_validate(name, -1, NULL) || !g_utf8_validate(value, -1, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "form field '%s': not UTF-8", shown);
	} else if (g_hash_table_contains(fields, name)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "form field '%s': given twice", shown);
	} else {
		g_hash_table_insert(fields, name, value);
		name = value = NULL;
		rc = 0;
	}
	g_free(shown);
	g_free(name);
	g_free(value);
	return rc;
}

GHashTable *mv_form_decode(const char *body, size_t len, GError **error)
{
	GHashTable *fields = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	size_t start = 0, count = 0;
	while (start <= len) {
		const char *amp = start < len ? memchr(body + start, '&', len - start) : NULL;
		size_t end = amp ? (size_t)(amp - body) : len;
		if (end > start) {
			if (++count > MV_FORM_MAX_FIELDS) {
				g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "form: more than %d fields", MV_FORM_MAX_FIELDS);
				g_hash_table_destroy(fields);
				return NULL;
			}
			if (decode_field(fields, body + start, end - start, error) < 0) {
				g_hash_table_destroy(fields);
				return NULL;
			}
		}
		if (!amp)
			break;
		start = end + 1;
	}
	return fields;
}

int mv_basic_auth_decode(const char *header, char **user_r, char **password_r, GError **error)
{
	if (!header || g_ascii_strncasecmp(header, "Basic ", 6) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "HTTP Basic authentication required");
		return -1;
	}
	const char *b64 = header + 6;
	while (*b64 == ' ')
		b64++;
	size_t b64_len = strlen(b64);
	while (b64_len > 0 && b64[b64_len - 1] == ' ')
		b64_len--;
	if (b64_len == 0 || b64_len > 16384) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "malformed Basic credentials");
		return -1;
	}
	size_t max = b64_len / 4 * 3 + 3, out_len = 0;
	char *plain = g_malloc(max + 1);
	int rc = -1;
	if (sodium_base642bin((unsigned char *)plain, max, b64, b64_len, NULL, &out_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "malformed Basic credentials (not base64)");
		goto out;
	}
	plain[out_len] = 0;
	const char *colon = memchr(plain, ':', out_len);
	if (!colon || colon == plain || memchr(plain, 0, out_len) || !g_utf8_validate(plain, (gssize)out_len, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "malformed Basic credentials (expected UTF-8 user:password)");
		goto out;
	}
	*user_r = g_strndup(plain, (gsize)(colon - plain));
	*password_r = g_strdup(colon + 1);
	rc = 0;
out:
	sodium_memzero(plain, max + 1);
	g_free(plain);
	return rc;
}

char *mv_api_normalize_path(const char *url)
{
	GString *out = g_string_new(NULL);
	for (const char *p = url; *p && *p != '?'; p++) {
		if (*p == '/' && out->len > 0 && out->str[out->len - 1] == '/')
			continue;
		g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}
