/* libFuzzer target for extract/office.c: any bytes through
 * mv_extract_office_xml with a 1 MB text limit — the ZIP reader with its
 * inflation budget, the SAX push parser with its DTD refusal, the element
 * rules of Word, Excel, PowerPoint and OpenDocument.  abort() when the
 * contract breaks: text beyond the limit, text that is not valid UTF-8 or
 * holds control characters other than tab and newline, a failure without
 * an error or an error on success.  The seeds (fuzz/corpus/fuzz_ooxml)
 * hold LibreOffice's documents as written and as stored (uncompressed)
 * copies of their text parts, so that mutations reach the XML. */
#include "extract/extract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT (1024u * 1024u)

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_ooxml: invariant failed: %s (line %d)\n", \
			        #cond, __LINE__);                                        \
			abort();                                                         \
		}                                                                        \
	} while (0)

static void check_text(const GString *out, size_t start)
{
	CHECK(out->len - start <= LIMIT);
	CHECK(strlen(out->str) == out->len);
	CHECK(g_utf8_validate(out->str, (gssize)out->len, NULL));
	for (size_t i = start; i < out->len; i++) {
		unsigned char c = (unsigned char)out->str[i];
		CHECK(!((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Text already in out stays, and the limit counts what is added. */
	GString *out = g_string_new("prefix\n");
	GError *error = NULL;
	int rc = mv_extract_office_xml(data, size, out, LIMIT, &error);
	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == (error == NULL));
	CHECK(!error || (error->domain == MV_ERROR && error->message && *error->message));
	CHECK(strncmp(out->str, "prefix\n", 7) == 0);
	check_text(out, 7);
	g_clear_error(&error);
	g_string_free(out, TRUE);
	return 0;
}
