/* libFuzzer target: the MIME wrapper — any bytes must yield a result with
 * every string present and valid UTF-8: the parse for the index
 * (mv_parse_message), the reader's view (mv_message_view_new, every
 * attachment's bytes) and the body text snippets are cut from
 * (mv_message_body_text), each bounded in size. */
#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_TEXT_BYTES 4096

static bool text_ok(const char *s)
{
	return s && g_utf8_validate(s, -1, NULL);
}

static void check_view(const uint8_t *data, size_t size)
{
	mv_message_view *v = mv_message_view_new(data, size);
	if (!text_ok(v->subject) || !text_ok(v->from) || !text_ok(v->to) || !text_ok(v->cc) || !text_ok(v->bcc) ||
	    !text_ok(v->reply_to) || !text_ok(v->message_id) || !text_ok(v->text->str) || v->headers->len % 2)
		__builtin_trap();
	for (guint i = 0; i < v->headers->len; i++)
		if (!text_ok(v->headers->pdata[i]))
			__builtin_trap();
	for (guint i = 0; i < v->attachments->len; i++) {
		const mv_view_part *a = v->attachments->pdata[i];
		GByteArray *bytes = NULL;
		if (a->index != (int)i + 1 || !text_ok(a->name) || !text_ok(a->content_id) ||
		    mv_message_view_part_data(v, a->index, &bytes, NULL) < 0)
			__builtin_trap();
		g_byte_array_unref(bytes);
	}
	mv_message_view_free(&v);
}

static void check_body_text(const uint8_t *data, size_t size)
{
	GString *text = g_string_new(NULL);
	mv_message_body_text(data, size, BODY_TEXT_BYTES, text);
	/* The HTML path may keep some bytes more than asked (one entity). */
	if (!text_ok(text->str) || text->len > 4 * BODY_TEXT_BYTES)
		__builtin_trap();
	g_string_free(text, TRUE);
}

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
	check_view(data, size);
	check_body_text(data, size);
	return 0;
}
