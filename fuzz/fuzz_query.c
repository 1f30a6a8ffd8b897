/* libFuzzer target for search/query: the parser takes text straight from
 * users, so any byte string must end in either a tree or a positioned
 * error — never a crash, a leak or an error without a position. */
#include <stdlib.h>
#include <string.h>

#include "search/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The parser takes a C string; an embedded NUL simply ends it. */
	char *text = g_malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	GError *err = NULL;
	mv_query *q = mv_query_parse(text, &err);
	if (q != NULL) {
		if (err != NULL)
			abort();
		char *s = mv_query_to_string(q);
		if (s == NULL || s[0] == '\0')
			abort();
		g_free(s);
		mv_query_free(&q);
	} else {
		if (err == NULL || err->domain != MV_ERROR || err->code != MV_ERR_INVALID ||
		    strncmp(err->message, "position ", 9) != 0)
			abort();
		g_error_free(err);
	}
	g_free(text);
	return 0;
}
