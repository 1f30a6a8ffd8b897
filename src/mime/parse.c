/* parse: one raw message into the fields the archive stores and indexes.
 *
 * GMime does the MIME work; this file decides what an archive needs from it
 * and makes it total: every message yields a result, whatever is broken in
 * it is recorded as a flag, and nothing about the input can make the walk
 * unbounded — the part tree is walked iteratively with a depth bound, a
 * message whose nesting would make GMime itself recurse deeply is parsed for
 * its headers only, GMime's address parser is given no deeply nested groups
 * (address_colons.c), and extracted text is capped. */
#include "mime/internal.h"

#include <gmime/gmime.h>
#include <string.h>

/* More multipart declarations than this and only the header is parsed:
 * GMime's parser recurses per nesting level. */
#define MAX_MULTIPART_MARKERS 512

static gsize init_once;

void mv_mime_init(void)
{
	if (g_once_init_enter(&init_once)) {
		g_mime_init();
		g_once_init_leave(&init_once, 1);
	}
}

void mv_mime_shutdown(void)
{
	/* g_mime_shutdown is not safe to call while other threads parse; the
	 * process exit releases everything. */
}

void mv_parsed_free(mv_parsed *p)
{
	if (!p)
		return;
	g_free(p->subject);
	g_free(p->from);
	g_free(p->from_addrs);
	g_free(p->to);
	g_free(p->to_addrs);
	g_free(p->cc);
	g_free(p->bcc);
	g_free(p->cc_addrs);
	g_free(p->bcc_addrs);
	g_free(p->message_id);
	g_string_free(p->text, TRUE);
	g_string_free(p->attachment_names, TRUE);
	g_ptr_array_unref(p->extract_errors);
	g_free(p);
}

char *mv_address_normalize(const char *addr)
{
	if (!addr)
		return g_strdup("");
	char *s = g_strstrip(g_strdup(addr));
	size_t len = strlen(s);
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		memmove(s, s + 1, len - 2);
		s[len - 2] = '\0';
		g_strstrip(s);
	}
	char *lower = g_utf8_strdown(s, -1);
	g_free(s);
	return lower;
}

bool mv_date_parse(const char *value, int64_t *t_r)
{
	if (!value || !*value)
		return false;
	GDateTime *dt = g_mime_utils_header_decode_date(value);
	if (!dt)
		return false;
	*t_r = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	/* GMime maps unparsable dates to the epoch. */
	return *t_r > 0;
}

bool mv_date_from_received(const char *received_value, int64_t *t_r)
{
	if (!received_value)
		return false;
	const char *semi = strrchr(received_value, ';');
	return semi && mv_date_parse(semi + 1, t_r);
}

/* ---- addresses -------------------------------------------------------------- */

static void collect_addrs(InternetAddressList *list, GString *addrs, int depth)
{
	if (!list || depth > 4)
		return;
	int n = internet_address_list_length(list);
	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			collect_addrs(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), addrs, depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		char *norm = mv_address_normalize(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)));
		if (*norm) {
			if (addrs->len)
				g_string_append_c(addrs, ' ');
			g_string_append(addrs, norm);
		}
		g_free(norm);
	}
}

char *mv_mime_display_list(InternetAddressList *list)
{
	if (!list || internet_address_list_length(list) == 0)
		return g_strdup("");
	char *s = internet_address_list_to_string(list, NULL, FALSE);
	char *clean = mv_utf8_sanitize(s, -1);
	g_free(s);
	return clean;
}

static char *addr_list(InternetAddressList *list)
{
	GString *s = g_string_new(NULL);
	collect_addrs(list, s, 0);
	return g_string_free(s, FALSE);
}

/* ---- text of parts -------------------------------------------------------------- */

GByteArray *mv_mime_part_content(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	if (!w)
		return NULL;
	GByteArray *buf = g_byte_array_new();
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(buf);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	g_mime_data_wrapper_write_to_stream(w, mem);
	g_object_unref(mem);
	return buf;
}

static void append_limited(GString *out, const char *text, size_t limit, mv_parsed *p)
{
	if (out->len >= limit) {
		p->flags |= MV_PARSE_TEXT_TRUNCATED;
		return;
	}
	if (out->len)
		g_string_append_c(out, '\n');
	g_string_append(out, text);
	if (out->len > limit) {
		/* Cut on a character boundary. */
		const char *end = g_utf8_find_prev_char(out->str, out->str + limit);
		g_string_truncate(out, end ? (gsize)(end - out->str) : 0);
		p->flags |= MV_PARSE_TEXT_TRUNCATED;
	}
}

/* A charset that would not convert is a flag on the message; a document
 * that could not be read is named with its reason, for the import's
 * summary (the message is archived either way). */
static void note_extract_failure(mv_parsed *p, const mv_text_extractor *ex, const char *filename, const char *type,
                                 const GError *err)
{
	if (err && err->code == MV_ERR_INVALID && strncmp(ex->name, "text/", 5) == 0) {
		p->flags |= MV_PARSE_BAD_CHARSET;
		return;
	}
	p->flags |= MV_PARSE_EXTRACT_FAILED;
	if (p->extract_errors->len >= 64)
		return;
	char *name = mv_utf8_sanitize(filename && *filename ? filename : type, -1);
	g_ptr_array_add(p->extract_errors, g_strdup_printf("%s: %s", name, err ? err->message : "unreadable"));
	g_free(name);
}

static void extract_part(GMimePart *part, const char *type, const char *filename, GString *out, mv_parsed *p)
{
	const mv_text_extractor *ex = mv_text_extractor_find(type, filename);
	if (!ex || out->len >= MV_MAX_TEXT_PER_MESSAGE)
		return;
	GByteArray *data = mv_mime_part_content(part);
	if (!data)
		return;
	if (data->len == 0) {
		g_byte_array_unref(data);
		return;
	}
	/* NULs are a defect in text, not in a PDF or a spreadsheet. */
	if (strncmp(type, "text/", 5) == 0 && memchr(data->data, '\0', data->len))
		p->flags |= MV_PARSE_NUL_BYTES;
	mv_extract_request req = {
		.data = data->data, .len = data->len, .mime_type = type, .filename = filename,
		.charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset"),
	};
	GString *text = g_string_new(NULL);
	GError *err = NULL;
	if (ex->extract(&req, text, MV_MAX_TEXT_PER_MESSAGE - out->len, &err) < 0)
		note_extract_failure(p, ex, filename, type, err);
	g_clear_error(&err);
	append_limited(out, text->str, MV_MAX_TEXT_PER_MESSAGE, p);
	g_string_free(text, TRUE);
	g_byte_array_unref(data);
}

/* Parts of an attached message count as attachment content: `attachment:`
 * finds them, and a plain word search still does. */
static void visit_leaf(GMimePart *part, mv_parsed *p, bool in_attached_message)
{
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	char *type = ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
	char *lower = g_ascii_strdown(type, -1);
	g_free(type);
	char *filename = mv_mime_part_filename(part);
	bool attachment = g_mime_part_is_attachment(part) || (filename && *filename);
	if (attachment || in_attached_message) {
		p->has_attachment = p->has_attachment || attachment;
		if (filename && *filename) {
			char *clean = mv_utf8_sanitize(filename, -1);
			if (p->attachment_names->len)
				g_string_append_c(p->attachment_names, '\n');
			g_string_append(p->attachment_names, clean);
			g_free(clean);
		}
		/* Attachment text goes to the attachment column (names and content). */
		extract_part(part, lower, filename, p->attachment_names, p);
	} else {
		extract_part(part, lower, filename, p->text, p);
	}
	g_free(filename);
	g_free(lower);
}

typedef struct walk_item {
	GMimeObject *obj;
	int depth;
	bool in_attached_message;
} walk_item;

/* Iterative depth-first walk: the depth bound is explicit, not the C stack. */
static void walk_parts(GMimeObject *root, mv_parsed *p)
{
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(walk_item));
	walk_item first = { root, 0, false };
	g_array_append_val(stack, first);
	while (stack->len) {
		walk_item it = g_array_index(stack, walk_item, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		if (!it.obj)
			continue;
		if (it.depth > MV_MAX_MIME_DEPTH) {
			p->flags |= MV_PARSE_TOO_DEEP;
			continue;
		}
		if (GMIME_IS_MULTIPART(it.obj)) {
			GMimeMultipart *mp = GMIME_MULTIPART(it.obj);
			for (int i = g_mime_multipart_get_count(mp) - 1; i >= 0; i--) {
				walk_item child = { g_mime_multipart_get_part(mp, i), it.depth + 1, it.in_attached_message };
				g_array_append_val(stack, child);
			}
		} else if (GMIME_IS_MESSAGE_PART(it.obj)) {
			GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(it.obj));
			if (inner) {
				p->has_attachment = true;
				char *subj = mv_mime_message_subject(inner);
				if (subj)
					append_limited(p->attachment_names, subj, MV_MAX_TEXT_PER_MESSAGE, p);
				g_free(subj);
				walk_item child = { g_mime_message_get_mime_part(inner), it.depth + 1, true };
				g_array_append_val(stack, child);
			}
		} else if (GMIME_IS_PART(it.obj)) {
			visit_leaf(GMIME_PART(it.obj), p, it.in_attached_message);
		}
	}
	g_array_free(stack, TRUE);
}

/* ---- the message ---------------------------------------------------------------- */

static size_t count_multipart_markers(const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0; /* data may be NULL, and NULL + 0 is undefined */
	size_t n = 0;
	const uint8_t *p = data, *end = data + len;
	while (p < end && (p = memchr(p, 'm', (size_t)(end - p))) != NULL) {
		if ((size_t)(end - p) >= 10 && g_ascii_strncasecmp((const char *)p, "multipart/", 10) == 0)
			n++;
		p++;
	}
	return n;
}

static size_t header_block_length(const uint8_t *data, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (data[i] == '\n' && (data[i + 1] == '\n' || (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n')))
			return i + 1;
	}
	return len;
}

static void fill_dates(GMimeMessage *msg, mv_parsed *p, int64_t archived_at)
{
	GDateTime *dt = g_mime_message_get_date(msg);
	if (dt && g_date_time_to_unix(dt) > 0) {
		p->date = g_date_time_to_unix(dt);
		p->date_source = MV_DATE_FROM_HEADER;
		return;
	}
	p->flags |= MV_PARSE_BAD_DATE;
	const char *received = g_mime_object_get_header(GMIME_OBJECT(msg), "Received");
	if (mv_date_from_received(received, &p->date)) {
		p->date_source = MV_DATE_FROM_RECEIVED;
		return;
	}
	p->date = archived_at;
	p->date_source = MV_DATE_FROM_ARCHIVE;
}

/* The Message-ID as written between its angle brackets: GMime's parsed form
 * normalises (drops a trailing dot, for one), and an archive must find a
 * message by the id it actually carries. */
static char *message_id_of(GMimeMessage *msg)
{
	const char *raw = g_mime_object_get_header(GMIME_OBJECT(msg), "Message-Id");
	if (!raw) {
		const char *parsed = g_mime_message_get_message_id(msg);
		return mv_utf8_sanitize(parsed ? parsed : "", -1);
	}
	const char *open = strchr(raw, '<');
	const char *close = open ? strchr(open + 1, '>') : NULL;
	char *id = open && close ? g_strndup(open + 1, (gsize)(close - open - 1)) : g_strdup(raw);
	g_strstrip(id);
	char *clean = mv_utf8_sanitize(id, -1);
	g_free(id);
	return clean;
}

static char *field_addrs(GMimeMessage *msg, GMimeAddressType type, char **display_r)
{
	InternetAddressList *list = mv_mime_message_addresses(msg, type);
	if (display_r)
		*display_r = mv_mime_display_list(list);
	char *addrs = addr_list(list);
	g_object_unref(list);
	return addrs;
}

static void fill_headers(GMimeMessage *msg, mv_parsed *p)
{
	char *subject = mv_mime_message_subject(msg);
	p->subject = mv_utf8_sanitize(subject, -1);
	g_free(subject);
	p->from_addrs = field_addrs(msg, GMIME_ADDRESS_TYPE_FROM, &p->from);
	p->to_addrs = field_addrs(msg, GMIME_ADDRESS_TYPE_TO, &p->to);
	p->cc_addrs = field_addrs(msg, GMIME_ADDRESS_TYPE_CC, &p->cc);
	p->bcc_addrs = field_addrs(msg, GMIME_ADDRESS_TYPE_BCC, &p->bcc);
	p->message_id = message_id_of(msg);
}

static mv_parsed *parsed_new(void)
{
	mv_parsed *p = g_new0(mv_parsed, 1);
	p->text = g_string_new(NULL);
	p->attachment_names = g_string_new(NULL);
	p->extract_errors = g_ptr_array_new_with_free_func(g_free);
	return p;
}

static void fill_empty(mv_parsed *p)
{
	if (!p->subject) p->subject = g_strdup("");
	if (!p->from) p->from = g_strdup("");
	if (!p->from_addrs) p->from_addrs = g_strdup("");
	if (!p->to) p->to = g_strdup("");
	if (!p->to_addrs) p->to_addrs = g_strdup("");
	if (!p->cc) p->cc = g_strdup("");
	if (!p->bcc) p->bcc = g_strdup("");
	if (!p->cc_addrs) p->cc_addrs = g_strdup("");
	if (!p->bcc_addrs) p->bcc_addrs = g_strdup("");
	if (!p->message_id) p->message_id = g_strdup("");
}

static void on_parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
	unsigned *flags = user_data;
	switch (code) {
	case GMIME_WARN_MALFORMED_MULTIPART:
	case GMIME_WARN_TRUNCATED_MESSAGE:
	case GMIME_WARN_MALFORMED_MESSAGE:
	case GMIME_CRIT_INVALID_HEADER_NAME:
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		*flags |= MV_PARSE_BAD_MIME;
		break;
	case GMIME_CRIT_NESTING_OVERFLOW:
		*flags |= MV_PARSE_TOO_DEEP;
		break;
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
		*flags |= MV_PARSE_BAD_CHARSET;
		break;
	default:
		break;
	}
}

GMimeMessage *mv_mime_construct(const uint8_t *data, size_t len, unsigned *flags_r)
{
	mv_mime_init();
	size_t parse_len = len;
	if (count_multipart_markers(data, len) > MAX_MULTIPART_MARKERS) {
		*flags_r |= MV_PARSE_TOO_DEEP;
		parse_len = header_block_length(data, len);
	}
	if (len > 0 && memchr(data, '\0', len))
		*flags_r |= MV_PARSE_NUL_BYTES;
	/* GMime copies what it parses anyway; the copy is made here so that
	 * address values are bounded in it (GMime's group recursion), the
	 * caller's bytes untouched. */
	GByteArray *copy = g_byte_array_sized_new((guint)parse_len);
	g_byte_array_append(copy, data, (guint)parse_len);
	if (mv_mime_bound_address_colons(copy->data, copy->len))
		*flags_r |= MV_PARSE_BAD_MIME;
	GMimeStream *stream = g_mime_stream_mem_new_with_byte_array(copy);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeParserOptions *options = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(options, on_parser_warning, flags_r);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, options);
	g_mime_parser_options_free(options);
	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

mv_parsed *mv_parse_message(const uint8_t *data, size_t len, int64_t archived_at)
{
	mv_parsed *p = parsed_new();
	GMimeMessage *msg = mv_mime_construct(data, len, &p->flags);
	if (!msg) {
		p->flags |= MV_PARSE_NO_HEADERS;
		p->date = archived_at;
		p->date_source = MV_DATE_FROM_ARCHIVE;
		fill_empty(p);
		return p;
	}
	fill_headers(msg, p);
	fill_dates(msg, p, archived_at);
	GMimeObject *body = g_mime_message_get_mime_part(msg);
	if (body && !(p->flags & MV_PARSE_TOO_DEEP))
		walk_parts(body, p);
	/* Read, not g_mime_multipart_get_boundary: that one makes up a boundary
	 * when there is none and re-encodes the Content-Type header, whose
	 * parameter folding grew without bound on a hostile parameter name
	 * (fuzz_mime: 1 GB from 333 bytes). */
	if (GMIME_IS_MULTIPART(body) && !g_mime_object_get_content_type_parameter(body, "boundary"))
		p->flags |= MV_PARSE_BAD_MIME;
	fill_empty(p);
	g_object_unref(msg);
	return p;
}
