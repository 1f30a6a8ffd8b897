/* mbox: the push splitter that turns an mbox byte stream into messages.
 *
 * It is a push parser (bytes in, callback out) so that the file reader, the
 * tests and the fuzzer drive it the same way and chunk boundaries never
 * matter: every decision is made by a small per-line state machine that only
 * ever looks at the *head* of a line.  The head is buffered up to
 * SEP_LINE_MAX bytes (a longer "From " line cannot be a separator); runs of
 * '>' are counted rather than stored; the rest of a line streams straight
 * into the message.  Memory is therefore bounded by the largest message (and
 * by MV_MAX_MESSAGE_SIZE), never by the stream or by a line's length.
 *
 * The empty line before a separator belongs to the mbox format, not to the
 * message, but whether an empty line is followed by a separator is only
 * known one line later — so an empty line is held back as "pending" and
 * written into the message only when the next line turns out not to be a
 * separator. */
#include "mime/mime.h"

#include <string.h>

/* A "From " line longer than this is body text, never a separator. */
#define SEP_LINE_MAX 4096u

typedef enum {
	LS_START,   /* at the first byte of a line */
	LS_CR,      /* line so far is "\r": maybe an empty CRLF line */
	LS_GT,      /* line so far is a run of '>' (counted in gt) */
	LS_GTFROM,  /* '>' run then a prefix of "From " (in head) */
	LS_FROM,    /* a prefix of "From " (in head) */
	LS_SEP,     /* "From ..." that may be a separator (in head) */
	LS_BODY,    /* decided: the rest of the line is message bytes */
} line_state;

struct mv_mbox_splitter {
	bool mboxrd;
	mv_mbox_message_cb cb;
	void *ctx;
	size_t max_size;       /* MV_MAX_MESSAGE_SIZE; lowered only by tests */

	GByteArray *msg;       /* unquoted bytes of the current message */
	bool have_msg;         /* a message (or the preamble) has begun */
	bool in_preamble;      /* current message is data before any separator */
	bool preamble_text;    /* the preamble holds a non-whitespace byte */
	bool discarding;       /* current message exceeded max_size */
	uint64_t msg_offset;

	line_state state;
	GByteArray *head;      /* undecided bytes at the start of the line */
	uint64_t gt;           /* leading '>' count of the current line */
	uint64_t line_start;   /* stream offset of the current line */
	bool prev_blank;       /* previous line was empty (true at stream start) */
	unsigned pending;      /* held-back empty line: 0, 1 ("\n") or 2 ("\r\n") */

	uint64_t pos;          /* stream bytes consumed */
	bool stopped;          /* the callback asked to stop */
	bool finished;
	GError *limit_error;   /* first size-limit error of this feed */
	unsigned limit_more;   /* further size-limit errors in the same feed */
};

/* Test hook, deliberately not in mime.h: lets unit tests exercise the size
 * limit without feeding half a gigabyte. */
void mv_mbox_splitter_set_max_size(mv_mbox_splitter *s, size_t max_size);

void mv_mbox_splitter_set_max_size(mv_mbox_splitter *s, size_t max_size)
{
	s->max_size = max_size;
}

mv_mbox_splitter *mv_mbox_splitter_new(bool mboxrd, mv_mbox_message_cb cb, void *ctx)
{
	mv_mbox_splitter *s = g_new0(mv_mbox_splitter, 1);
	s->mboxrd = mboxrd;
	s->cb = cb;
	s->ctx = ctx;
	s->max_size = MV_MAX_MESSAGE_SIZE;
	s->msg = g_byte_array_new();
	s->head = g_byte_array_sized_new(64);
	s->state = LS_START;
	s->prev_blank = true;
	return s;
}

void mv_mbox_splitter_free(mv_mbox_splitter **sp)
{
	if (!sp || !*sp)
		return;
	mv_mbox_splitter *s = *sp;
	g_byte_array_unref(s->msg);
	g_byte_array_unref(s->head);
	g_clear_error(&s->limit_error);
	g_free(s);
	*sp = NULL;
}

/* ---- message assembly ---------------------------------------------------- */

static void ensure_message(mv_mbox_splitter *s)
{
	if (s->have_msg)
		return;
	/* Bytes before any separator: kept as a message of their own so that
	 * a file that is not quite an mbox loses nothing silently. */
	s->have_msg = true;
	s->in_preamble = true;
	s->preamble_text = false;
	s->msg_offset = 0;
}

static void start_discarding(mv_mbox_splitter *s)
{
	if (!s->limit_error) {
		g_set_error(&s->limit_error, MV_ERROR, MV_ERR_LIMIT,
		            "mbox message at offset %" G_GUINT64_FORMAT " is larger than %zu bytes; "
		            "skipped to the next message", s->msg_offset, s->max_size);
	} else {
		s->limit_more++;
	}
	s->discarding = true;
	/* Give the memory back now rather than holding a near-limit buffer
	 * while the rest of the oversized message streams past. */
	g_byte_array_unref(s->msg);
	s->msg = g_byte_array_new();
}

static void emit(mv_mbox_splitter *s, const uint8_t *p, size_t len)
{
	if (len == 0)
		return;
	ensure_message(s);
	if (s->discarding)
		return;
	if (len > s->max_size - s->msg->len) {
		start_discarding(s);
		return;
	}
	if (s->in_preamble && !s->preamble_text) {
		for (size_t i = 0; i < len; i++) {
			if (!g_ascii_isspace(p[i])) {
				s->preamble_text = true;
				break;
			}
		}
	}
	g_byte_array_append(s->msg, p, (guint)len);
}

static void emit_gts(mv_mbox_splitter *s, uint64_t n)
{
	static const uint8_t gts[64] = {
		'>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>',
		'>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>',
		'>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>',
		'>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>', '>',
	};
	while (n > 0 && !s->discarding) {
		size_t k = n > sizeof gts ? sizeof gts : (size_t)n;
		emit(s, gts, k);
		n -= k;
	}
}

static void flush_pending(mv_mbox_splitter *s)
{
	static const uint8_t crlf[2] = { '\r', '\n' };
	if (s->pending == 0)
		return;
	emit(s, s->pending == 2 ? crlf : crlf + 1, s->pending);
	s->pending = 0;
}

/* Hands the current message to the callback and forgets it. */
static void end_message(mv_mbox_splitter *s)
{
	if (!s->have_msg)
		return;
	bool deliver = !s->discarding && !(s->in_preamble && !s->preamble_text);
	if (deliver && !s->cb(s->ctx, s->msg->data, s->msg->len, s->msg_offset))
		s->stopped = true;
	g_byte_array_set_size(s->msg, 0);
	s->have_msg = false;
	s->in_preamble = false;
	s->discarding = false;
}

/* ---- line decisions ------------------------------------------------------ */

/* The line is message text: what was held back goes out, then the head. */
static void decide_body(mv_mbox_splitter *s, uint64_t gts, const uint8_t *head, size_t head_len)
{
	flush_pending(s);
	emit_gts(s, gts);
	emit(s, head, head_len);
	g_byte_array_set_size(s->head, 0);
	s->gt = 0;
	s->state = LS_BODY;
}

static void decide_empty(mv_mbox_splitter *s, unsigned len)
{
	flush_pending(s);
	s->pending = len;
	s->prev_blank = true;
	g_byte_array_set_size(s->head, 0);
	s->state = LS_START;
}

static void decide_separator(mv_mbox_splitter *s)
{
	s->pending = 0;
	end_message(s);
	s->have_msg = true;
	s->in_preamble = false;
	s->msg_offset = s->line_start;
	s->prev_blank = false;
	g_byte_array_set_size(s->head, 0);
	s->state = LS_START;
}

/* ">From " with n '>' in front: mboxrd removes one '>' from any run, mboxo
 * only unquotes the single-'>' form (its writers never added more). */
static void decide_quoted_from(mv_mbox_splitter *s)
{
	uint64_t keep = (s->mboxrd || s->gt == 1) ? s->gt - 1 : s->gt;
	decide_body(s, keep, s->head->data, s->head->len);
}

static bool head_is_separator(const mv_mbox_splitter *s)
{
	size_t len = s->head->len;
	if (len > 0 && s->head->data[len - 1] == '\r')
		len--;
	return mv_mbox_is_separator((const char *)s->head->data, len);
}

/* Feeds one byte to an undecided line head.  Returns false if the byte was
 * not consumed (the line became body text and the byte belongs to it). */
static bool head_byte(mv_mbox_splitter *s, uint8_t c)
{
	static const char from[] = "From ";
	switch (s->state) {
	case LS_START:
		s->line_start = s->pos;
		if (c == '\n') {
			decide_empty(s, 1);
		} else if (c == '\r') {
			s->state = LS_CR;
		} else if (c == '>') {
			s->gt = 1;
			s->state = LS_GT;
		} else if (c == 'F') {
			g_byte_array_append(s->head, &c, 1);
			s->state = LS_FROM;
		} else {
			decide_body(s, 0, NULL, 0);
			return false;
		}
		return true;
	case LS_CR:
		if (c == '\n') {
			decide_empty(s, 2);
			return true;
		}
		decide_body(s, 0, (const uint8_t *)"\r", 1);
		return false;
	case LS_GT:
		if (c == '>') {
			s->gt++;
			return true;
		}
		if (c == 'F') {
			g_byte_array_append(s->head, &c, 1);
			s->state = LS_GTFROM;
			return true;
		}
		decide_body(s, s->gt, NULL, 0);
		return false;
	case LS_GTFROM:
	case LS_FROM:
		if ((char)c != from[s->head->len]) {
			decide_body(s, s->gt, s->head->data, s->head->len);
			return false;
		}
		g_byte_array_append(s->head, &c, 1);
		if (s->head->len < 5)
			return true;
		if (s->state == LS_GTFROM)
			decide_quoted_from(s);
		else if (s->prev_blank)
			s->state = LS_SEP;
		else
			decide_body(s, 0, s->head->data, s->head->len);
		return true;
	case LS_SEP:
		if (c == '\n') {
			if (head_is_separator(s)) {
				decide_separator(s);
				return true;
			}
			decide_body(s, 0, s->head->data, s->head->len);
			return false;
		}
		if (s->head->len >= SEP_LINE_MAX) {
			decide_body(s, 0, s->head->data, s->head->len);
			return false;
		}
		g_byte_array_append(s->head, &c, 1);
		return true;
	case LS_BODY:
		break;
	}
	g_assert_not_reached();
	return false;
}

/* Copies body bytes up to and including the end of the line. */
static size_t body_span(mv_mbox_splitter *s, const uint8_t *p, size_t len)
{
	const uint8_t *nl = memchr(p, '\n', len);
	size_t n = nl ? (size_t)(nl - p) + 1 : len;
	emit(s, p, n);
	if (nl) {
		s->prev_blank = false;
		s->state = LS_START;
	}
	return n;
}

static int take_limit_error(mv_mbox_splitter *s, GError **error)
{
	if (!s->limit_error)
		return 0;
	if (s->limit_more > 0)
		g_prefix_error(&s->limit_error, "%u more oversized messages skipped; ", s->limit_more);
	g_propagate_error(error, s->limit_error);
	s->limit_error = NULL;
	s->limit_more = 0;
	return -1;
}

int mv_mbox_splitter_feed(mv_mbox_splitter *s, const uint8_t *buf, size_t len, GError **error)
{
	if (s->finished) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "mbox splitter fed after finish");
		return -1;
	}
	size_t i = 0;
	while (i < len && !s->stopped) {
		if (s->state == LS_BODY) {
			size_t n = body_span(s, buf + i, len - i);
			i += n;
			s->pos += n;
		} else if (head_byte(s, buf[i])) {
			i++;
			s->pos++;
		}
	}
	return take_limit_error(s, error);
}

/* A line cut off by the end of the stream is decided as if it had ended. */
static void finish_head(mv_mbox_splitter *s)
{
	switch (s->state) {
	case LS_START:
	case LS_BODY:
		break;
	case LS_CR:
		decide_body(s, 0, (const uint8_t *)"\r", 1);
		break;
	case LS_GT:
	case LS_GTFROM:
	case LS_FROM:
		decide_body(s, s->gt, s->head->data, s->head->len);
		break;
	case LS_SEP:
		if (head_is_separator(s))
			decide_separator(s);
		else
			decide_body(s, 0, s->head->data, s->head->len);
		break;
	}
}

int mv_mbox_splitter_finish(mv_mbox_splitter *s, GError **error)
{
	if (s->finished)
		return 0;
	s->finished = true;
	if (s->stopped)
		return 0;
	finish_head(s);
	/* One trailing empty line is the mbox's own message terminator. */
	s->pending = 0;
	end_message(s);
	return take_limit_error(s, error);
}

/* ---- separator recognition ------------------------------------------------ */

/* Length of the run of digits starting at i. */
static size_t digit_run(const char *p, size_t len, size_t i)
{
	size_t j = i;
	while (j < len && g_ascii_isdigit(p[j]))
		j++;
	return j - i;
}

/* hh:mm or hh:mm:ss somewhere in p. */
static bool has_time(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(p[i]) || (i > 0 && g_ascii_isdigit(p[i - 1])))
			continue;
		size_t h = digit_run(p, len, i);
		size_t j = i + h;
		if (h < 1 || h > 2 || j >= len || p[j] != ':')
			continue;
		if (digit_run(p, len, j + 1) == 2)
			return true;
	}
	return false;
}

/* A standalone 4-digit number that is not a "+0000" zone offset. */
static bool has_year(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(p[i]) || (i > 0 && g_ascii_isdigit(p[i - 1])))
			continue;
		if (digit_run(p, len, i) != 4)
			continue;
		if (i > 0 && (p[i - 1] == '+' || p[i - 1] == '-' || p[i - 1] == ':'))
			continue;
		size_t j = i + 4;
		if (j < len && p[j] == ':')
			continue;
		return true;
	}
	return false;
}

bool mv_mbox_is_separator(const char *line, size_t len)
{
	if (!line || len < 5 || memcmp(line, "From ", 5) != 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	size_t i = 5;
	while (i < len && line[i] != ' ' && line[i] != '\t')
		i++;
	if (i == 5)
		return false; /* no sender token */
	return has_time(line + i, len - i) && has_year(line + i, len - i);
}
