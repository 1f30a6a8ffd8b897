/* libFuzzer target: the MIME wrapper (mv_parse_message) — any bytes must
 * yield a result with every string present and valid UTF-8. */
#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		mv_mime_init();
		ready = true;
	}
	mv_parsed *p = mv_parse_message(data, size, 42);
	if (!p->subject || !g_utf8_validate(p->subject, -1, NULL) || !p->from || !p->message_id ||
	    !g_utf8_validate(p->from, -1, NULL) || p->text->len > MV_MAX_TEXT_PER_MESSAGE)
		__builtin_trap();
	mv_parsed_free(p);
	return 0;
}
