/* libFuzzer target for what Web Access reads from a browser and from mail
 * besides forms: the Cookie header (the session token is looked for in it)
 * and the search snippet, cut from a message's text around the words of a
 * user's query.  Any bytes must give a value or nothing, and a snippet
 * must be valid UTF-8 segments of bounded length, never a crash.
 *
 * Input: the first byte picks cookie (even) or snippet (odd); for a
 * snippet, the query is the bytes up to the first NUL, the text the rest. */
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "web/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_cookie(const uint8_t *data, size_t size)
{
	char *header = g_strndup((const char *)data, size);
	char *v = mv_web_cookie_value(header, "__Host-mvsession");
	if (v && strlen(v) > strlen(header))
		abort();
	g_free(v);
	g_free(header);
}

static void fuzz_snippet(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t qlen = nul ? (size_t)(nul - data) : size;
	char *query = g_utf8_make_valid((const char *)data, (gssize)qlen);
	char *text = nul ? g_utf8_make_valid((const char *)nul + 1, (gssize)(size - qlen - 1)) : g_strdup("");
	mv_query *q = mv_query_parse(query, NULL);
	if (q) {
		json_t *s = mv_snippet_json(q, text, 200);
		size_t chars = 0, i;
		json_t *seg;
		json_array_foreach(s, i, seg) {
			const char *t = json_string_value(json_array_get(seg, 0));
			if (!t || !g_utf8_validate(t, -1, NULL))
				abort();
			chars += (size_t)g_utf8_strlen(t, -1);
		}
		/* 200 characters, the ellipses and the spaces beside them. */
		if (chars > 200 + 4)
			abort();
		json_decref(s);
		mv_query_free(&q);
	}
	g_free(query);
	g_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_cookie(data + 1, size - 1);
	else
		fuzz_snippet(data + 1, size - 1);
	return 0;
}
