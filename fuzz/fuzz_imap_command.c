/* libFuzzer target: the IMAP command parser (imapd/protocol.c), sequence
 * sets, literal announcements and modified UTF-7 names — everything a
 * client's bytes reach before any command handler. */
#include "imapd/internal.h"
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tag = NULL;
	const char *why = NULL;
	imap_command *c = imap_command_parse(data, size, &tag, &why);
	if (c) {
		for (guint i = 0; i < c->args->len; i++) {
			const char *s = imap_arg_astring(c, i);
			if (!s)
				continue;
			GArray *ranges;
			if (imap_seqset_parse(s, 1000, &ranges)) {
				imap_seqset_contains(ranges, 500);
				g_array_free(ranges, TRUE);
			}
			char *name = mv_mutf7_decode(s, NULL);
			if (name) {
				char *back = mv_mutf7_encode(name);
				/* Decoding is strict, so encoding gives the same name back. */
				if (strcmp(back, s) != 0)
					__builtin_trap();
				g_free(back);
				g_free(name);
			}
			GString *out = g_string_new(NULL);
			imap_append_string(out, s, strlen(s), false);
			g_string_free(out, TRUE);
		}
		imap_command_free(c);
	}
	g_free(tag);
	uint64_t n;
	bool plus;
	imap_line_literal((const char *)data, size, &n, &plus);
	return 0;
}
