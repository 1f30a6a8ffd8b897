/* libFuzzer target for the IMAP and POP3 clients' pure parsers: what a
 * mail server (or whoever answers in its place) sends is a stranger's
 * bytes.
 *
 * The input is one IMAP response as the client hands it to
 * mv_imap_response_parse (literals inline).  When it parses, the whole value
 * tree is walked with every accessor, iteratively (an explicit stack, as the
 * parser builds it), and its promises are checked: every value reached
 * exactly once, every value's bytes inside the buffer they point into, a
 * number that reads back as the digits it came from, mv_imap_pair finding
 * what a walk of the pairs finds.  The same bytes then go to
 * mv_imap_literal_at_end, to mv_pop3_unstuff, and, read as UID steps, to
 * mv_imap_uid_set, whose sets must name exactly the UIDs given. */
#include <stdlib.h>
#include <string.h>

#include "sources/imap_client.h"
#include "sources/imap_response.h"
#include "sources/pop3_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = { "UID", "FLAGS", "BODY[]", "MESSAGES", "UIDNEXT", "RFC822.SIZE", "MODSEQ", "X" };

static void check_bytes(const mv_imap_response *r, const mv_imap_value *v)
{
	size_t n;
	const uint8_t *b = mv_imap_bytes(r, v, &n);
	char *dup = mv_imap_dup(r, v);
	if (v->kind == MV_IMAP_NIL || v->kind == MV_IMAP_LIST) {
		if (b || n != 0 || dup)
			abort();
		return;
	}
	const GByteArray *under = v->unescaped ? r->scratch : r->raw;
	if (v->off > under->len || v->len > under->len - v->off || n != v->len || !dup)
		abort();
	if (n > 0 && memcmp(b, under->data + v->off, n) != 0)
		abort();
	if (strlen(dup) > n)
		abort();
	/* A literal sits right after its announcement, which says its length. */
	uint64_t announced;
	if (v->kind == MV_IMAP_STRING && !v->unescaped &&
	    (!mv_imap_literal_at_end(r->raw->data, v->off, &announced) || announced != v->len ||
	     r->raw->data[v->off - 1] != '\n'))
		abort();
	if (v->kind == MV_IMAP_ATOM && strlen(dup) == n && !mv_imap_atom_is(r, v, dup))
		abort();
	if (v->kind != MV_IMAP_ATOM && mv_imap_atom_is(r, v, dup))
		abort();
	uint64_t x;
	if (mv_imap_number(r, v, &x)) {
		char *back = g_strdup_printf("%" G_GUINT64_FORMAT, x);
		/* Leading zeros aside, the digits read back. */
		const char *digits = dup;
		while (digits[0] == '0' && digits[1])
			digits++;
		if (strcmp(back, digits) != 0)
			abort();
		g_free(back);
	}
	g_free(dup);
}

/* A list read as pairs by hand, against mv_imap_pair. */
static void check_pairs(const mv_imap_response *r, const mv_imap_value *list)
{
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		const mv_imap_value *want = NULL;
		for (const mv_imap_value *k = mv_imap_value_at(r, list->child); k;) {
			const mv_imap_value *v = mv_imap_value_at(r, k->next);
			if (!v)
				break;
			if (mv_imap_atom_is(r, k, keys[i])) {
				want = v;
				break;
			}
			k = mv_imap_value_at(r, v->next);
		}
		if (mv_imap_pair(r, list, keys[i]) != want)
			abort();
	}
}

static void walk(const mv_imap_response *r)
{
	guint total = r->values->len;
	uint8_t *seen = g_malloc0(total ? total : 1);
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	guint reached = 0;
	if (r->first != MV_IMAP_NONE)
		g_array_append_val(stack, r->first);
	while (stack->len > 0) {
		uint32_t i = g_array_index(stack, uint32_t, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		const mv_imap_value *v = mv_imap_value_at(r, i);
		if (!v || seen[i])
			abort();   /* a dangling index or a cycle */
		seen[i] = 1;
		reached++;
		check_bytes(r, v);
		if (v->next != MV_IMAP_NONE)
			g_array_append_val(stack, v->next);
		if (v->kind == MV_IMAP_LIST) {
			check_pairs(r, v);
			if (v->child != MV_IMAP_NONE)
				g_array_append_val(stack, v->child);
		} else if (v->child != MV_IMAP_NONE) {
			abort();
		}
	}
	if (reached != total)
		abort();   /* a value parsed but linked nowhere */
	if (mv_imap_value_at(r, total) || mv_imap_value_at(r, MV_IMAP_NONE))
		abort();
	g_array_unref(stack);
	g_free(seen);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
	GByteArray *raw = g_byte_array_sized_new((guint)size);
	g_byte_array_append(raw, data, (guint)size);
	mv_imap_response r;
	GError *err = NULL;
	if (mv_imap_response_parse(raw, &r, &err) == 0) {
		if (err || !r.tag)
			abort();
		switch (r.type) {
		case MV_IMAP_RESP_STATUS:
			if (!r.status || !r.text || r.first != MV_IMAP_NONE)
				abort();
			break;
		case MV_IMAP_RESP_CONTINUATION:
			if (!r.text || strcmp(r.tag, "+") != 0)
				abort();
			break;
		case MV_IMAP_RESP_DATA:
			if (!r.name || strcmp(r.tag, "*") != 0)
				abort();
			break;
		}
		walk(&r);
	} else if (!err) {
		abort();
	}
	g_clear_error(&err);
	mv_imap_response_clear(&r);
	g_byte_array_unref(raw);
}

/* When a line ends in "{n}" or "{n+}", n is what its digits say. */
static void check_literal_at_end(const uint8_t *line, size_t len)
{
	uint64_t n = 0;
	if (!mv_imap_literal_at_end(line, len, &n))
		return;
	const uint8_t *open = NULL;
	for (size_t i = len; i > 0; i--)
		if (line[i - 1] == '{') {
			open = line + i;
			break;
		}
	if (!open)
		abort();
	guint64 digits;
	char *end = NULL;
	char *copy = g_strndup((const char *)open, len - (size_t)(open - line));
	digits = g_ascii_strtoull(copy, &end, 10);
	if (end == copy || digits != n || (*end != '}' && *end != '+'))
		abort();
	g_free(copy);
}

static void fuzz_literal_at_end(const uint8_t *data, size_t size)
{
	check_literal_at_end(data, size);
	/* Each line on its own, as the client reads them. */
	for (size_t pos = 0; pos < size;) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - data) + 1 : size;
		check_literal_at_end(data + pos, end - pos);
		pos = end;
	}
}

static void fuzz_unstuff(const uint8_t *data, size_t size)
{
	GByteArray *out = g_byte_array_new();
	bool whole = mv_pop3_unstuff(data, size, out);
	if (out->len > size)
		abort();
	if (whole && !(size >= 2 && data[size - 1] == '\n' &&
	               (data[size - 2] == '.' || (size >= 3 && data[size - 3] == '.' && data[size - 2] == '\r'))))
		abort();   /* complete only with the terminator last */
	g_byte_array_unref(out);
}

/* The bytes as steps between ascending UIDs (0: the next UID, a range). */
static void fuzz_uid_set(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	guint max_items = 1u + data[0] % 64u;
	GArray *uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t uid = 0;
	for (size_t i = 1; i < size && i < 4096; i++) {
		uid += 1u + (data[i] == 0xff ? 1000000u : data[i] % 4u == 0 ? 0u : data[i]);
		g_array_append_val(uids, uid);
	}
	guint next = 0;
	for (guint from = 0; from < uids->len;) {
		guint before = from;
		char *set = mv_imap_uid_set(uids, &from, max_items);
		if (from <= before || from - before > max_items)
			abort();
		/* Read the set back: it must name exactly uids[before..from). */
		char **parts = g_strsplit(set, ",", -1);
		for (char **p = parts; *p; p++) {
			char *colon = strchr(*p, ':');
			guint64 a, b;
			if (colon)
				*colon = '\0';
			if (!g_ascii_string_to_unsigned(*p, 10, 1, G_MAXUINT32, &a, NULL))
				abort();
			b = a;
			if (colon && !g_ascii_string_to_unsigned(colon + 1, 10, a + 1, G_MAXUINT32, &b, NULL))
				abort();
			for (guint64 u = a; u <= b; u++) {
				if (next >= from || g_array_index(uids, uint32_t, next) != u)
					abort();
				next++;
			}
		}
		if (next != from)
			abort();
		g_strfreev(parts);
		g_free(set);
	}
	g_array_unref(uids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_response(data, size);
	fuzz_literal_at_end(data, size);
	fuzz_unstuff(data, size);
	fuzz_uid_set(data, size);
	return 0;
}
