/* libFuzzer target: the SMTP/LMTP protocol layer (smtpd/protocol.h) —
 * everything a client's bytes reach before a session acts on them.
 *
 * The input's first byte sets the options (SMTPUTF8 offered, in the
 * transaction, a long line bound), the next two a split point; the rest
 * is taken as command lines, each parsed (a parsed mailbox must parse
 * again as a RCPT path, a refusal must make one clean reply line), and
 * the same bytes as a DATA body fed in two pieces at the split, whose
 * result must equal the body fed at once and byte by byte. */
#include "smtpd/protocol.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const mv_smtp_error *err)
{
	GString *out = g_string_new(NULL);
	mv_smtp_reply_error(out, err);
	const char *crlf = strstr(out->str, "\r\n");
	if (!crlf || crlf != out->str + out->len - 2 || memchr(out->str, '\n', out->len - 1))
		__builtin_trap();
	g_string_free(out, TRUE);
}

/* A mailbox the parser gave back is a path it takes again. */
static void check_round_trip(const mv_smtp_command *cmd)
{
	if (!cmd->mailbox.address || !cmd->mailbox.domain)
		return;
	char *line = g_strdup_printf("RCPT TO:<%s>\r\n", cmd->mailbox.address);
	mv_smtp_parse_options opt = {.max_line = strlen(line), .smtputf8_transaction = true};
	mv_smtp_command again;
	mv_smtp_error err;
	if (!mv_smtp_command_parse((const uint8_t *)line, strlen(line), &opt, &again, &err))
		__builtin_trap();
	if (strcmp(again.mailbox.local_part, cmd->mailbox.local_part) != 0 ||
	    strcmp(again.mailbox.domain, cmd->mailbox.domain) != 0)
		__builtin_trap();
	mv_smtp_command_clear(&again);
	g_free(line);
}

static void parse_lines(const uint8_t *data, size_t size, const mv_smtp_parse_options *opt)
{
	size_t pos = 0;
	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - data) + 1 : size;
		mv_smtp_command cmd;
		mv_smtp_error err;
		if (mv_smtp_command_parse(data + pos, end - pos, opt, &cmd, &err)) {
			check_round_trip(&cmd);
		} else {
			if (err.code < 400 || err.code > 599 || !err.enhanced || !err.text)
				__builtin_trap();
			check_reply(&err);
			mv_smtp_error_clear(&err);
		}
		mv_smtp_command_clear(&cmd);
		pos = end;
	}
}

typedef struct body {
	GByteArray *out;
	size_t used;
	mv_smtp_data_decoder dec;
} body;

static void decode(body *b, const uint8_t *data, size_t size, size_t step, uint64_t max)
{
	b->out = g_byte_array_new();
	mv_smtp_data_init(&b->dec, b->out, max);
	b->used = 0;
	while (b->used < size && !b->dec.done) {
		size_t n = size - b->used;
		if (step && n > step)
			n = step;
		size_t took = mv_smtp_data_feed(&b->dec, data + b->used, n);
		if (took > n || (took < n && !b->dec.done))
			__builtin_trap();
		b->used += took;
	}
}

static bool same(const body *a, const body *b)
{
	return a->used == b->used && a->dec.done == b->dec.done && a->dec.too_big == b->dec.too_big &&
	       a->dec.bare_lf == b->dec.bare_lf && a->dec.bare_cr == b->dec.bare_cr && a->dec.size == b->dec.size &&
	       a->out->len == b->out->len && (a->out->len == 0 || memcmp(a->out->data, b->out->data, a->out->len) == 0);
}

static void check_data(const uint8_t *data, size_t size, size_t split)
{
	const uint64_t max = 4096;
	body whole, halves, bytes;
	decode(&whole, data, size, 0, max);
	decode(&bytes, data, size, 1, max);
	/* Two pieces: the first ends at the split. */
	halves.out = g_byte_array_new();
	mv_smtp_data_init(&halves.dec, halves.out, max);
	halves.used = mv_smtp_data_feed(&halves.dec, data, split);
	if (!halves.dec.done)
		halves.used += mv_smtp_data_feed(&halves.dec, data + split, size - split);
	if (!same(&whole, &halves) || !same(&whole, &bytes))
		__builtin_trap();
	if (whole.out->len > max || whole.dec.size < whole.out->len)
		__builtin_trap();
	/* Only CRLF "." CRLF ends a body (or "." CRLF at its very start). */
	if (whole.dec.done) {
		bool at_start = whole.used == 3 && memcmp(data, ".\r\n", 3) == 0;
		if (!at_start && (whole.used < 5 || memcmp(data + whole.used - 5, "\r\n.\r\n", 5) != 0))
			__builtin_trap();
	}
	g_byte_array_unref(whole.out);
	g_byte_array_unref(halves.out);
	g_byte_array_unref(bytes.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	mv_smtp_parse_options opt = {
		.max_line = (data[0] & 4) ? 4096 : MV_SMTP_COMMAND_LINE_MAX,
		.smtputf8_offered = data[0] & 1,
		.smtputf8_transaction = data[0] & 2,
	};
	size_t split = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	split = size ? split % (size + 1) : 0;
	parse_lines(data, size, &opt);
	check_data(data, size, split);

	/* BDAT: the input in chunks of its first byte's size. */
	GByteArray *out = g_byte_array_new();
	mv_smtp_bdat_decoder bdat;
	mv_smtp_bdat_init(&bdat, out, 4096);
	size_t pos = 0;
	while (pos < size) {
		mv_smtp_bdat_chunk(&bdat, 1 + data[0] % 64);
		pos += mv_smtp_bdat_feed(&bdat, data + pos, size - pos);
	}
	if (bdat.size != size || (!bdat.too_big && out->len != size))
		__builtin_trap();
	g_byte_array_unref(out);
	return 0;
}
