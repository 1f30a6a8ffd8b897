/* libFuzzer target: one message as IMAP FETCH sees it (imapd/message.c).
 * Any bytes must give a tree whose ENVELOPE and BODYSTRUCTURE have
 * balanced parentheses outside strings, and whose sections are slices
 * inside the input; BINARY of every part must terminate.  A prefix of the
 * input is also tried as a section spec, and an accepted spec must give
 * back a canonical form that parses to the same section. */
#include "imapd/message.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parentheses outside quoted strings and literals balance. */
static void check_balanced(const GString *s)
{
	long depth = 0;
	for (size_t i = 0; i < s->len; i++) {
		char c = s->str[i];
		if (c == '"') {
			for (i++; i < s->len && s->str[i] != '"'; i++)
				if (s->str[i] == '\\')
					i++;
		} else if (c == '{') {
			char *end;
			unsigned long long n = strtoull(s->str + i + 1, &end, 10);
			if (*end != '}' || end[1] != '\r' || end[2] != '\n')
				__builtin_trap();
			i = (size_t)(end - s->str) + 2 + n;
		} else if (c == '(')
			depth++;
		else if (c == ')' && --depth < 0)
			__builtin_trap();
	}
	if (depth != 0)
		__builtin_trap();
}

static void check_section(const mv_imap_message *m, const mv_imap_section *sec, const uint8_t *data, size_t size)
{
	const uint8_t *d;
	size_t len;
	GByteArray *owned;
	mv_imap_message_section(m, sec, &d, &len, &owned);
	if (!owned && (d < data || len > size || d + len > data + size) && len)
		__builtin_trap();
	if (owned)
		g_byte_array_unref(owned);
}

static void every_section(const mv_imap_message *m, const unsigned *parts, size_t nparts, const uint8_t *data,
                          size_t size)
{
	static const mv_imap_section_kind kinds[] = {MV_IMAP_SECTION_ALL, MV_IMAP_SECTION_HEADER,
	                                             MV_IMAP_SECTION_HEADER_FIELDS, MV_IMAP_SECTION_HEADER_FIELDS_NOT,
	                                             MV_IMAP_SECTION_TEXT, MV_IMAP_SECTION_MIME};
	GPtrArray *fields = g_ptr_array_new();
	g_ptr_array_add(fields, (char *)"Content-Type");
	g_ptr_array_add(fields, (char *)"from");
	for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
		if (kinds[k] == MV_IMAP_SECTION_MIME && nparts == 0)
			continue;
		mv_imap_section sec = {.nparts = nparts, .kind = kinds[k], .fields = fields};
		if (nparts)
			memcpy(sec.parts, parts, nparts * sizeof *parts);
		check_section(m, &sec, data, size);
		if (kinds[k] == MV_IMAP_SECTION_ALL) {
			GByteArray *bin = NULL;
			if (mv_imap_message_binary(m, &sec, &bin) == MV_IMAP_BINARY_OK)
				g_byte_array_unref(bin);
		}
	}
	g_ptr_array_unref(fields);
}

static void try_spec(const mv_imap_message *m, const char *spec, size_t len, bool binary, const uint8_t *data,
                     size_t size)
{
	mv_imap_section sec;
	const char *err = NULL;
	GString *canon = g_string_new(NULL);
	if (!mv_imap_section_parse(spec, len, binary, &sec, canon, &err)) {
		if (!err || canon->len)
			__builtin_trap();
		g_string_free(canon, TRUE);
		return;
	}
	check_section(m, &sec, data, size);
	mv_imap_section again;
	GString *canon2 = g_string_new(NULL);
	if (!mv_imap_section_parse(canon->str, canon->len, binary, &again, canon2, &err) ||
	    strcmp(canon->str, canon2->str) != 0 || again.kind != sec.kind || again.nparts != sec.nparts)
		__builtin_trap();
	mv_imap_section_clear(&again);
	mv_imap_section_clear(&sec);
	g_string_free(canon, TRUE);
	g_string_free(canon2, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_imap_message *m = mv_imap_message_parse(data, size);
	GString *out = g_string_new(NULL);
	mv_imap_message_envelope(m, size & 1, out);
	check_balanced(out);
	g_string_truncate(out, 0);
	mv_imap_message_bodystructure(m, true, size & 2, out);
	check_balanced(out);
	g_string_truncate(out, 0);
	mv_imap_message_bodystructure(m, false, false, out);
	check_balanced(out);
	g_string_free(out, TRUE);
	char *h = mv_imap_message_header(m, "Subject");
	g_free(h);

	every_section(m, NULL, 0, data, size);
	for (unsigned a = 1; a <= 3; a++) {
		unsigned one[] = {a};
		every_section(m, one, 1, data, size);
		for (unsigned b = 1; b <= 3; b++) {
			unsigned two[] = {a, b};
			every_section(m, two, 2, data, size);
			unsigned three[] = {a, b, 1};
			every_section(m, three, 3, data, size);
		}
	}
	size_t spec_len = size < 64 ? size : 64;
	for (size_t i = 0; i < spec_len; i++)
		if (data[i] == '\n') {
			spec_len = i;
			break;
		}
	try_spec(m, (const char *)data, spec_len, false, data, size);
	try_spec(m, (const char *)data, spec_len, true, data, size);
	mv_imap_message_free(&m);
	return 0;
}
