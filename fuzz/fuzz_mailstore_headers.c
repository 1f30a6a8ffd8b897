/* Fuzz target: the MailStore header block of an exported message as the
 * import reads it (mime/mailstore_headers.c) — whatever the bytes, the
 * reader either finds no block, refuses it, or names a block that lies
 * inside the input; a folder it returns is valid UTF-8 and encodes back to
 * the same modified UTF-7 it was read from. */
#include "mime/mime.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	mv_mailstore_headers h;
	GError *err = NULL;
	int rc = mv_mailstore_headers_read(d, n, &h, &err);
	if (rc < 0) {
		if (!err)
			__builtin_trap();
		g_error_free(err);
		return 0;
	}
	if (rc == 1) {
		if (h.block_len == 0 || h.block_len > n)
			__builtin_trap();
		if (h.folder && !g_utf8_validate(h.folder, -1, NULL))
			__builtin_trap();
		mv_mailstore_headers_clear(&h);
	}
	/* The codec alone: decode, and if it decodes, encode back the same. */
	char *text = g_strndup((const char *)d, n);
	char *dec = mv_mutf7_decode(text, &err);
	if (dec) {
		char *enc = mv_mutf7_encode(dec);
		char *again = mv_mutf7_decode(enc, NULL);
		if (!again || strcmp(again, dec) != 0)
			__builtin_trap();
		g_free(again);
		g_free(enc);
		g_free(dec);
	}
	g_clear_error(&err);
	g_free(text);
	return 0;
}
