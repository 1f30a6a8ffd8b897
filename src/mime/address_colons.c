/* mime/address_colons: address header values made safe for GMime's
 * address parser before it sees them.
 *
 * GMime 3.2.13 parses a group inside a group by recursing, one C stack
 * frame set per level, and every ':' after a phrase opens a group: a To
 * header of 1 MiB of "g: g: g: ..." is some 350,000 levels and overflows an
 * 8 MiB stack (about 45,000 levels are enough).  GMime parses the From,
 * Sender, Reply-To, To, Cc and Bcc headers of a message as it builds it —
 * of an attached message/rfc822 too — so the bound is applied to the bytes
 * GMime is handed, not to what it hands back: in every value of an address
 * header, the colons past MV_MIME_MAX_ADDRESS_COLONS become spaces.  A
 * legitimate value has a handful (a group or two, a colon in a display
 * name).  The Resent- forms are bounded too: they are address headers, and
 * a later reader of them must not meet the same value unbounded.
 *
 * Every line of the bytes is looked at, not only the first header block:
 * finding the headers of attached messages would take the MIME parse that
 * is being guarded.  A body line that reads like an address header with
 * more than MV_MIME_MAX_ADDRESS_COLONS colons in its value is therefore
 * changed in GMime's copy as well — text shown or indexed, never the
 * archived bytes.  The cost in the common case is one look at each line's
 * first bytes; nothing is copied here (the caller owns the copy GMime
 * parses). */
#include "mime/internal.h"

#include <string.h>

static const char *const address_fields[] = { "From", "Sender", "Reply-To", "To", "Cc", "Bcc" };

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Where the value starts when the line at `line` is an address header
 * ("To:", "resent-cc :", ...), else 0. */
static size_t address_value_start(const uint8_t *line, size_t avail)
{
	/* The names' first letters (Resent- too) turn most lines away. */
	uint8_t first = avail ? (uint8_t)(line[0] | 0x20) : 0;
	if (first != 'f' && first != 's' && first != 'r' && first != 't' && first != 'c' && first != 'b')
		return 0;
	size_t skip = 0;
	if (first == 'r' && avail >= 7 && g_ascii_strncasecmp((const char *)line, "Resent-", 7) == 0)
		skip = 7;
	for (size_t i = 0; i < G_N_ELEMENTS(address_fields); i++) {
		const char *name = address_fields[i];
		size_t n = strlen(name);
		if (avail - skip < n || (line[skip] | 0x20) != (name[0] | 0x20) ||
		    g_ascii_strncasecmp((const char *)line + skip, name, n) != 0)
			continue;
		size_t p = skip + n;
		while (p < avail && is_wsp(line[p]))
			p++;
		if (p < avail && line[p] == ':')
			return p + 1;
	}
	return 0;
}

/* The value from pos to its last continuation line bounded; returns where
 * the next line starts. */
static size_t bound_value(uint8_t *data, size_t len, size_t pos, bool *bounded_r)
{
	unsigned colons = 0;
	for (; pos < len; pos++) {
		if (data[pos] == ':') {
			if (++colons > MV_MIME_MAX_ADDRESS_COLONS) {
				data[pos] = ' ';
				*bounded_r = true;
			}
		} else if (data[pos] == '\n' && !(pos + 1 < len && is_wsp(data[pos + 1]))) {
			return pos + 1;
		}
	}
	return len;
}

bool mv_mime_bound_address_colons(uint8_t *data, size_t len)
{
	bool bounded = false;
	size_t pos = 0;
	while (pos < len) {
		size_t value = address_value_start(data + pos, len - pos);
		if (value) {
			pos = bound_value(data, len, pos + value, &bounded);
			continue;
		}
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		pos = nl ? (size_t)(nl - data) + 1 : len;
	}
	return bounded;
}

bool mv_mime_bound_value_colons(char *value)
{
	bool bounded = false;
	unsigned colons = 0;
	for (char *p = value ? strchr(value, ':') : NULL; p; p = strchr(p + 1, ':')) {
		if (++colons > MV_MIME_MAX_ADDRESS_COLONS) {
			*p = ' ';
			bounded = true;
		}
	}
	return bounded;
}
