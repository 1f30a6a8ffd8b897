/* libFuzzer target for mime/sanitize (placeholder). */
#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GString *out = g_string_new(NULL);
	mv_html_sanitize((const char *)data, size, NULL, out, NULL, NULL, NULL);
	g_string_free(out, TRUE);
	return 0;
}
