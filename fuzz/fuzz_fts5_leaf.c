/* libFuzzer target for search/fts5_leaf: a leaf page of the index is read
 * as bytes to list the words a prefix stands for, and the index is a file
 * on disk that can be damaged.  Any bytes must give words or -1 — never a
 * read outside the page, a hang, or a leak — and every word given is
 * non-empty and no longer than a leaf can make one. */
#include <stdlib.h>

#include "search/fts5_leaf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
	size_t terms;
} seen;

static bool check_term(void *opaque, const uint8_t *term, size_t len)
{
	seen *s = opaque;
	if (!term || len == 0 || len > 65535)
		abort();
	volatile uint8_t first = term[0], last = term[len - 1];   /* reads the whole span under ASan's eye */
	(void)first;
	(void)last;
	s->terms++;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	seen s = { 0 };
	int rc = mv_fts5_leaf_terms(data, size, check_term, &s);
	if (rc != 0 && rc != -1)
		abort();
	/* every term has a footer varint of at least one byte */
	if (s.terms > size)
		abort();
	return 0;
}
