/* smtpd/data: the message body after DATA (dot-stuffed, RFC 5321 4.5.2)
 * and after BDAT (counted, RFC 3030), decoded as the bytes arrive.
 *
 * A push decoder, because the connection reads whatever the network
 * gives: one state for where in a line the last chunk stopped, runs of
 * ordinary bytes appended at once, so byte-at-a-time input costs the same
 * linear time as one chunk.  The end of DATA is CRLF "." CRLF and nothing
 * else: "\n.\n", "\r\n.\n" and their kin are message bytes (reported as
 * bare LF / bare CR), never an end, so a sender that ends lines
 * differently cannot make the archive see two messages where the relay
 * before it saw one (SMTP smuggling). */
#include "smtpd/protocol.h"

#include <string.h>

enum {
	AT_LINE_START,   /* after CRLF, or at the body's start */
	IN_LINE,
	AFTER_CR,        /* a CR stored, its LF not yet seen */
	AFTER_DOT,       /* a '.' at a line's start, not stored */
	AFTER_DOT_CR,    /* ".\r" at a line's start, neither stored */
};

void mv_smtp_data_init(mv_smtp_data_decoder *dec, GByteArray *out, uint64_t max_size)
{
	memset(dec, 0, sizeof(*dec));
	dec->out = out;
	dec->max_size = max_size;
	dec->state = AT_LINE_START;
}

/* Stores body bytes while the body fits; counts them either way. */
static void store(mv_smtp_data_decoder *dec, const uint8_t *bytes, size_t n)
{
	if (n == 0)
		return;
	dec->size += n;
	if (dec->size > dec->max_size)
		dec->too_big = true;
	if (!dec->too_big)
		g_byte_array_append(dec->out, bytes, (guint)n);
}

static const uint8_t cr = '\r', lf = '\n';

size_t mv_smtp_data_feed(mv_smtp_data_decoder *dec, const uint8_t *data, size_t len)
{
	size_t i = 0;
	while (i < len && !dec->done) {
		uint8_t c = data[i];
		switch (dec->state) {
		case AT_LINE_START:
			if (c == '.') {
				dec->state = AFTER_DOT;
				i++;
			} else {
				dec->state = IN_LINE;
			}
			break;
		case AFTER_DOT:
			if (c == '\r') {
				dec->state = AFTER_DOT_CR;
				i++;
			} else {
				/* The stuffed dot is dropped; the byte is the line's. */
				dec->state = IN_LINE;
			}
			break;
		case AFTER_DOT_CR:
			if (c == '\n') {
				dec->done = true;
				i++;
			} else {
				/* ".\r" and no LF: a line of a bare CR, its dot dropped. */
				dec->bare_cr = true;
				store(dec, &cr, 1);
				dec->state = IN_LINE;
			}
			break;
		case AFTER_CR:
			if (c == '\n') {
				store(dec, &lf, 1);
				dec->state = AT_LINE_START;
				i++;
			} else {
				dec->bare_cr = true;
				dec->state = IN_LINE;
			}
			break;
		case IN_LINE: {
			size_t run = i;
			while (run < len && data[run] != '\r' && data[run] != '\n')
				run++;
			store(dec, data + i, run - i);
			i = run;
			if (i == len)
				break;
			store(dec, data + i, 1);
			if (data[i] == '\r')
				dec->state = AFTER_CR;
			else
				dec->bare_lf = true;
			i++;
			break;
		}
		}
	}
	return i;
}

void mv_smtp_bdat_init(mv_smtp_bdat_decoder *dec, GByteArray *out, uint64_t max_size)
{
	memset(dec, 0, sizeof(*dec));
	dec->out = out;
	dec->max_size = max_size;
}

void mv_smtp_bdat_chunk(mv_smtp_bdat_decoder *dec, uint64_t chunk_size)
{
	dec->remaining = chunk_size;
}

size_t mv_smtp_bdat_feed(mv_smtp_bdat_decoder *dec, const uint8_t *data, size_t len)
{
	size_t n = len < dec->remaining ? len : (size_t)dec->remaining;
	dec->remaining -= n;
	dec->size += n;
	if (dec->size > dec->max_size)
		dec->too_big = true;
	if (!dec->too_big && n > 0)
		g_byte_array_append(dec->out, data, (guint)n);
	return n;
}
