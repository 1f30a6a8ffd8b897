/* sanitize_url: the gates every URL of mail HTML passes before it is
 * written.  Links keep http, https and mailto only; whatever the browser
 * would fetch (img src, CSS url()) goes through san_image_source alone: cid:
 * through the policy's resolver, data:image base64, http(s) only when the
 * policy allows remote content (and noted as remote either way).  URLs are
 * judged in the form a browser's parser makes of them first, so the
 * browser fetches the URL we judged. */
#include "mime/sanitize_internal.h"

#include <string.h>

/* A data:image URL longer than this is dropped. */
#define MAX_DATA_URL (2u * 1024u * 1024u)

/* What a browser's URL parser does first: strip leading and trailing C0
 * controls and spaces, remove tabs and line ends anywhere ("java\tscript:"
 * is "javascript:").  Checking and emitting this form means the browser
 * sees the URL we judged. */
static char *clean_url(const char *v)
{
	while (*v && (unsigned char)*v <= 0x20)
		v++;
	GString *u = g_string_new(NULL);
	for (; *v; v++)
		if (*v != '\t' && *v != '\n' && *v != '\r')
			g_string_append_c(u, *v);
	while (u->len && (unsigned char)u->str[u->len - 1] <= 0x20)
		g_string_truncate(u, u->len - 1);
	return g_string_free(u, FALSE);
}

/* The scheme of an absolute URL ("http"), lower-cased into buf, or false
 * for a relative one (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )). */
static bool url_scheme(const char *u, char *buf, size_t size)
{
	if (!g_ascii_isalpha(*u))
		return false;
	size_t i = 0;
	for (; u[i] && u[i] != ':'; i++)
		if (!g_ascii_isalnum(u[i]) && u[i] != '+' && u[i] != '-' && u[i] != '.')
			return false;
	if (u[i] != ':' || i >= size)
		return false;
	for (size_t k = 0; k < i; k++)
		buf[k] = g_ascii_tolower(u[k]);
	buf[i] = '\0';
	return true;
}

static bool is_http(const char *scheme)
{
	return strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
}

/* The href of a kept link, a new string, or NULL.  Relative links and
 * fragments are dropped: there is no base they could honestly resolve
 * against; "//host" means https. */
char *san_link_target(const char *raw)
{
	char *u = clean_url(raw);
	char scheme[16];
	if (url_scheme(u, scheme, sizeof scheme) && (is_http(scheme) || strcmp(scheme, "mailto") == 0))
		return u;
	if (u[0] == '/' && u[1] == '/' && u[2]) {
		char *https = g_strconcat("https:", u, NULL);
		g_free(u);
		return https;
	}
	g_free(u);
	return NULL;
}

static bool is_base64_char(char c)
{
	return g_ascii_isalnum(c) || c == '+' || c == '/' || c == '=';
}

/* data:image/(png|gif|jpeg|jpg|webp);base64,<base64>, at most MAX_DATA_URL. */
static bool is_data_image(const char *u)
{
	static const char *const types[] = { "png", "gif", "jpeg", "jpg", "webp" };
	size_t len = strlen(u);
	if (len > MAX_DATA_URL || g_ascii_strncasecmp(u, "data:image/", 11) != 0)
		return false;
	const char *p = u + 11;
	bool typed = false;
	for (size_t i = 0; i < G_N_ELEMENTS(types) && !typed; i++) {
		size_t tl = strlen(types[i]);
		if (g_ascii_strncasecmp(p, types[i], tl) == 0 && g_ascii_strncasecmp(p + tl, ";base64,", 8) == 0) {
			p += tl + 8;
			typed = true;
		}
	}
	if (!typed)
		return false;
	for (; *p; p++)
		if (!is_base64_char(*p))
			return false;
	return true;
}

/* cid:<id> (RFC 2392: angle brackets optional, %-escapes decoded) through
 * the policy's resolver; a new string or NULL. */
static char *resolve_cid(san *s, const char *u)
{
	if (!s->policy->resolve_cid)
		return NULL;
	const char *id = u + 4, *end = id + strlen(id);
	while (id < end && (*id == '<' || *id == ' '))
		id++;
	while (end > id && (end[-1] == '>' || end[-1] == ' '))
		end--;
	if (end == id)
		return NULL;
	char *raw = g_strndup(id, (gsize)(end - id));
	/* An escape may spell bytes that are not UTF-8 ("%bC"): the resolver
	 * then sees the id as written, and what it answers must be text. */
	char *decoded = g_uri_unescape_string(raw, NULL);
	if (decoded && !g_utf8_validate(decoded, -1, NULL))
		g_clear_pointer(&decoded, g_free);
	char *url = s->policy->resolve_cid(s->policy->opaque, decoded ? decoded : raw);
	g_free(decoded);
	g_free(raw);
	if (url && !g_utf8_validate(url, -1, NULL))
		g_clear_pointer(&url, g_free);
	return url;
}

/* The one gate for everything the browser would fetch (img src, CSS
 * url()): the URL to emit, a new string, or NULL to drop it.  Remote
 * references are noted whatever the policy says. */
char *san_image_source(san *s, const char *raw)
{
	char *u = clean_url(raw);
	char scheme[16];
	bool has_scheme = url_scheme(u, scheme, sizeof scheme);
	bool remote = (has_scheme && is_http(scheme)) || (u[0] == '/' && u[1] == '/' && u[2]);
	if (remote) {
		s->had_remote = true;
		if (!s->policy->allow_remote) {
			g_free(u);
			return NULL;
		}
		if (has_scheme)
			return u;
		char *https = g_strconcat("https:", u, NULL);
		g_free(u);
		return https;
	}
	char *result = NULL;
	if (has_scheme && strcmp(scheme, "cid") == 0)
		result = resolve_cid(s, u);
	else if (has_scheme && strcmp(scheme, "data") == 0 && is_data_image(u))
		result = g_strdup(u);
	g_free(u);
	return result;
}
