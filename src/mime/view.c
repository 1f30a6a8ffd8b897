/* mime/view: one message taken apart for a reader — the header fields a
 * mail client shows, the plain text with its lines, the HTML body, and the
 * attachments with what a download needs.
 *
 * Indexing (parse.c) wants all text as one stream; a reader wants the
 * message's own structure: a multipart/alternative gives one text and one
 * HTML version, not both glued together, and inline images stay parts that
 * the HTML refers to by Content-ID.  The walk is iterative with the same
 * depth bound as parse.c, and GMime itself is given the same guard
 * (mv_mime_construct), so a hostile message costs no more here than at
 * import. */
#include "mime/internal.h"

#include <string.h>

#define MAX_HEADERS 1000
#define MAX_HEADER_VALUE 16384
#define MAX_VIEW_TEXT (8u * 1024u * 1024u)
#define BODY_TEXT_SCAN_FACTOR 4     /* raw bytes parsed per byte of body text wanted */

typedef struct view_private {
	GMimeMessage *msg;
	GPtrArray *leaves;     /* GMimeObject* by attachment index - 1 (borrowed from msg) */
} view_private;

void mv_view_part_free(mv_view_part *p)
{
	if (!p)
		return;
	g_free(p->name);
	g_free(p->content_type);
	g_free(p->content_id);
	g_free(p);
}

void mv_message_view_free(mv_message_view **vp)
{
	mv_message_view *v = *vp;
	if (!v)
		return;
	*vp = NULL;
	g_free(v->subject);
	g_free(v->from);
	g_free(v->to);
	g_free(v->cc);
	g_free(v->bcc);
	g_free(v->reply_to);
	g_free(v->message_id);
	g_ptr_array_unref(v->headers);
	g_string_free(v->text, TRUE);
	if (v->html)
		g_string_free(v->html, TRUE);
	g_ptr_array_unref(v->attachments);
	view_private *priv = v->priv;
	if (priv->msg)
		g_object_unref(priv->msg);
	g_ptr_array_unref(priv->leaves);
	g_free(priv);
	g_free(v);
}

/* ---- header fields ------------------------------------------------------------------ */

static char *bounded_text(const char *s)
{
	if (!s)
		return g_strdup("");
	size_t n = strlen(s);
	if (n > MAX_HEADER_VALUE) {
		const char *cut = g_utf8_find_prev_char(s, s + MAX_HEADER_VALUE);
		n = cut ? (size_t)(cut - s) : 0;
	}
	return mv_utf8_sanitize(s, (gssize)n);
}

/* bounded_text of a string we own. */
static char *bounded_owned(char *s)
{
	char *out = bounded_text(s);
	g_free(s);
	return out;
}

static char *display_field(GMimeMessage *msg, GMimeAddressType type)
{
	InternetAddressList *list = mv_mime_message_addresses(msg, type);
	char *text = mv_mime_display_list(list);
	g_object_unref(list);
	return text;
}

static void fill_fields(mv_message_view *v, GMimeMessage *msg)
{
	v->subject = bounded_owned(mv_mime_message_subject(msg));
	v->from = display_field(msg, GMIME_ADDRESS_TYPE_FROM);
	v->to = display_field(msg, GMIME_ADDRESS_TYPE_TO);
	v->cc = display_field(msg, GMIME_ADDRESS_TYPE_CC);
	v->bcc = display_field(msg, GMIME_ADDRESS_TYPE_BCC);
	v->reply_to = display_field(msg, GMIME_ADDRESS_TYPE_REPLY_TO);
	v->message_id = bounded_text(g_mime_message_get_message_id(msg));
	GMimeHeaderList *list = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	int n = list ? g_mime_header_list_get_count(list) : 0;
	for (int i = 0; i < n && (int)v->headers->len < 2 * MAX_HEADERS; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		g_ptr_array_add(v->headers, bounded_text(g_mime_header_get_name(h)));
		g_ptr_array_add(v->headers, bounded_owned(mv_mime_header_value(h)));
	}
}

/* ---- parts --------------------------------------------------------------------------- */

static char *lower_type(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *type = ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
	char *lower = g_ascii_strdown(type, -1);
	g_free(type);
	return lower;
}

static bool is_body_candidate(GMimePart *part)
{
	if (g_mime_part_is_attachment(part))
		return false;
	char *filename = mv_mime_part_filename(part);
	bool named = filename && *filename;
	g_free(filename);
	return !named;
}

static void append_text(mv_message_view *v, GString *decoded)
{
	if (v->text->len >= MAX_VIEW_TEXT)
		return;
	if (v->text->len)
		g_string_append(v->text, "\n\n");
	g_string_append_len(v->text, decoded->str, (gssize)MIN(decoded->len, MAX_VIEW_TEXT));
}

static GString *decoded_text(GMimePart *part, unsigned *flags)
{
	GByteArray *data = mv_mime_part_content(part);
	GString *out = g_string_new(NULL);
	if (!data)
		return out;
	const char *charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	if (mv_mime_to_utf8(data->data, data->len, charset, true, out, NULL) < 0)
		*flags |= MV_PARSE_BAD_CHARSET;
	g_byte_array_unref(data);
	return out;
}

static char *content_id_of(GMimeObject *obj)
{
	const char *cid = g_mime_object_get_content_id(obj);
	return mv_utf8_sanitize(cid ? cid : "", -1);
}

static int64_t decoded_size(GMimeObject *obj)
{
	GMimeStream *null = g_mime_stream_null_new();
	if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
		if (w)
			g_mime_data_wrapper_write_to_stream(w, null);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner)
			g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, null);
	}
	int64_t n = (int64_t)GMIME_STREAM_NULL(null)->written;
	g_object_unref(null);
	return n;
}

static void add_attachment(mv_message_view *v, GMimeObject *obj, const char *type)
{
	view_private *priv = v->priv;
	mv_view_part *a = g_new0(mv_view_part, 1);
	a->index = (int)priv->leaves->len + 1;
	char *filename = GMIME_IS_PART(obj) ? mv_mime_part_filename(GMIME_PART(obj)) : NULL;
	if (filename && *filename) {
		a->name = bounded_text(filename);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		char *subject = inner ? mv_mime_message_subject(inner) : NULL;
		char *base = bounded_text(subject && *subject ? subject : "message");
		a->name = g_strconcat(base, ".eml", NULL);
		g_free(base);
		g_free(subject);
	} else {
		a->name = g_strdup("");
	}
	g_free(filename);
	a->content_type = g_strdup(type);
	a->content_id = content_id_of(obj);
	a->is_inline = *a->content_id && g_str_has_prefix(type, "image/") &&
	               !(GMIME_IS_PART(obj) && g_mime_part_is_attachment(GMIME_PART(obj)));
	a->size = decoded_size(obj);
	g_ptr_array_add(priv->leaves, obj);
	g_ptr_array_add(v->attachments, a);
}

typedef struct walk_item {
	GMimeObject *obj;
	int depth;
	bool in_alternative;     /* a child of multipart/alternative */
	int alternative;         /* which one (to take one text version of it) */
} walk_item;

static void visit_leaf(mv_message_view *v, const walk_item *it, GHashTable *texted)
{
	char *type = lower_type(it->obj);
	GMimePart *part = GMIME_PART(it->obj);
	bool body = is_body_candidate(part);
	if (body && strcmp(type, "text/html") == 0 && !v->html) {
		GString *html = decoded_text(part, &v->flags);
		v->html = html;
	} else if (body && strcmp(type, "text/plain") == 0 &&
	           !(it->in_alternative && g_hash_table_contains(texted, GINT_TO_POINTER(it->alternative)))) {
		GString *text = decoded_text(part, &v->flags);
		append_text(v, text);
		g_string_free(text, TRUE);
		if (it->in_alternative)
			g_hash_table_add(texted, GINT_TO_POINTER(it->alternative));
	} else if (!(body && it->in_alternative && g_str_has_prefix(type, "text/"))) {
		/* Other versions of an alternative are not attachments. */
		add_attachment(v, it->obj, type);
	}
	g_free(type);
}

static void walk(mv_message_view *v, GMimeObject *root)
{
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(walk_item));
	GHashTable *texted = g_hash_table_new(g_direct_hash, g_direct_equal);
	int alternatives = 0;
	walk_item first = { root, 0, false, 0 };
	g_array_append_val(stack, first);
	while (stack->len) {
		walk_item it = g_array_index(stack, walk_item, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		if (!it.obj)
			continue;
		if (it.depth > MV_MAX_MIME_DEPTH) {
			v->flags |= MV_PARSE_TOO_DEEP;
			continue;
		}
		if (GMIME_IS_MULTIPART(it.obj)) {
			GMimeMultipart *mp = GMIME_MULTIPART(it.obj);
			char *type = lower_type(it.obj);
			bool alt = strcmp(type, "multipart/alternative") == 0;
			g_free(type);
			int which = alt ? ++alternatives : it.alternative;
			for (int i = g_mime_multipart_get_count(mp) - 1; i >= 0; i--) {
				walk_item child = { g_mime_multipart_get_part(mp, i), it.depth + 1, alt || it.in_alternative,
					            which };
				g_array_append_val(stack, child);
			}
		} else if (GMIME_IS_MESSAGE_PART(it.obj)) {
			add_attachment(v, it.obj, "message/rfc822");
		} else if (GMIME_IS_PART(it.obj)) {
			visit_leaf(v, &it, texted);
		}
	}
	g_hash_table_destroy(texted);
	g_array_free(stack, TRUE);
}

mv_message_view *mv_message_view_new(const uint8_t *data, size_t len)
{
	mv_message_view *v = g_new0(mv_message_view, 1);
	view_private *priv = g_new0(view_private, 1);
	v->priv = priv;
	priv->leaves = g_ptr_array_new();
	v->headers = g_ptr_array_new_with_free_func(g_free);
	v->attachments = g_ptr_array_new_with_free_func((GDestroyNotify)mv_view_part_free);
	v->text = g_string_new(NULL);
	priv->msg = mv_mime_construct(data, len, &v->flags);
	if (!priv->msg) {
		v->flags |= MV_PARSE_NO_HEADERS;
		v->subject = g_strdup("");
		v->from = g_strdup("");
		v->to = g_strdup("");
		v->cc = g_strdup("");
		v->bcc = g_strdup("");
		v->reply_to = g_strdup("");
		v->message_id = g_strdup("");
		/* Nothing readable as a message: show the bytes as text. */
		mv_mime_to_utf8(data, MIN(len, MAX_VIEW_TEXT), NULL, true, v->text, NULL);
		return v;
	}
	fill_fields(v, priv->msg);
	GMimeObject *body = g_mime_message_get_mime_part(priv->msg);
	if (body && !(v->flags & MV_PARSE_TOO_DEEP))
		walk(v, body);
	if (v->text->len == 0 && v->html)
		mv_html_to_text(v->html->str, v->html->len, v->text, MAX_VIEW_TEXT);
	return v;
}

int mv_message_view_part_data(mv_message_view *v, int index, GByteArray **data_r, GError **error)
{
	view_private *priv = v->priv;
	if (index < 1 || (guint)index > priv->leaves->len) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "the message has no attachment %d", index);
		return -1;
	}
	GMimeObject *obj = priv->leaves->pdata[index - 1];
	if (GMIME_IS_PART(obj)) {
		GByteArray *data = mv_mime_part_content(GMIME_PART(obj));
		*data_r = data ? data : g_byte_array_new();
		return 0;
	}
	GByteArray *buf = g_byte_array_new();
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(buf);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
	if (inner)
		g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem);
	g_object_unref(mem);
	*data_r = buf;
	return 0;
}

/* ---- the body text alone ----------------------------------------------------------------- */

/* The first part a reader would take as the body: a plain one if there is,
 * else an HTML one.  Nothing else is decoded. */
static GMimePart *first_body_part(GMimeObject *root, bool *html_r)
{
	GMimePart *html = NULL;
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(walk_item));
	walk_item first = { root, 0, false, 0 };
	g_array_append_val(stack, first);
	GMimePart *found = NULL;
	while (stack->len && !found) {
		walk_item it = g_array_index(stack, walk_item, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		if (!it.obj || it.depth > MV_MAX_MIME_DEPTH)
			continue;
		if (GMIME_IS_MULTIPART(it.obj)) {
			GMimeMultipart *mp = GMIME_MULTIPART(it.obj);
			for (int i = g_mime_multipart_get_count(mp) - 1; i >= 0; i--) {
				walk_item child = { g_mime_multipart_get_part(mp, i), it.depth + 1, false, 0 };
				g_array_append_val(stack, child);
			}
			continue;
		}
		if (!GMIME_IS_PART(it.obj) || !is_body_candidate(GMIME_PART(it.obj)))
			continue;
		char *type = lower_type(it.obj);
		if (strcmp(type, "text/plain") == 0)
			found = GMIME_PART(it.obj);
		else if (strcmp(type, "text/html") == 0 && !html)
			html = GMIME_PART(it.obj);
		g_free(type);
	}
	g_array_free(stack, TRUE);
	*html_r = !found && html;
	return found ? found : html;
}

void mv_message_body_text(const uint8_t *data, size_t len, size_t max_bytes, GString *out)
{
	/* The body comes first in nearly all mail; what follows it is mostly
	 * attachments, which GMime would still have to scan through. */
	size_t head = MIN(len, BODY_TEXT_SCAN_FACTOR * max_bytes);
	unsigned flags = 0;
	GMimeMessage *msg = mv_mime_construct(data, head, &flags);
	GMimeObject *body = msg && !(flags & MV_PARSE_TOO_DEEP) ? g_mime_message_get_mime_part(msg) : NULL;
	bool html = false;
	GMimePart *part = body ? first_body_part(body, &html) : NULL;
	GByteArray *content = part ? mv_mime_part_content(part) : NULL;
	if (content) {
		const char *charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
		/* An HTML body needs more bytes for the same text: its markup. */
		size_t take = MIN(content->len, html ? 4 * max_bytes : max_bytes);
		GString *utf8 = html ? g_string_new(NULL) : out;
		mv_mime_to_utf8(content->data, take, charset, false, utf8, NULL);
		if (html) {
			mv_html_to_text(utf8->str, utf8->len, out, max_bytes);
			g_string_free(utf8, TRUE);
		}
		g_byte_array_unref(content);
	}
	if (msg)
		g_object_unref(msg);
}

const mv_view_part *mv_message_view_find_cid(const mv_message_view *v, const char *content_id)
{
	for (guint i = 0; content_id && *content_id && i < v->attachments->len; i++) {
		const mv_view_part *a = v->attachments->pdata[i];
		if (strcmp(a->content_id, content_id) == 0)
			return a;
	}
	return NULL;
}
