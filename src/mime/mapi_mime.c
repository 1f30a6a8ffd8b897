/* mapi_mime: one Outlook item (mv_mapi_message, from a PST or a .msg) made
 * into an RFC 5322 message — the one converter both readers use.
 *
 * The header comes from the item's transport headers when it was received
 * over the Internet (they are what the sender's and our servers wrote,
 * Received lines and signatures included); otherwise it is built from the
 * MAPI properties.  The body is rebuilt from the plain, HTML and RTF bodies
 * (compressed RTF decompressed, HTML encapsulated in RTF recovered), with
 * attachments by value, embedded messages as message/rfc822 (converted the
 * same way, to a bounded depth) and inline images in multipart/related.
 *
 * The output must be the same bytes every time for the same item, so that
 * importing a PST twice stores nothing new: GMime writes the parts, but
 * every boundary is derived from a hash of the item's properties instead
 * of GMime's random ones, and nothing depends on the clock or the order in
 * which a file happened to list properties. */
#include "mime/internal.h"
#include "mime/mapi.h"

#include <sodium.h>
#include <string.h>

typedef struct convert_ctx {
	GMimeFormatOptions *format;
	uint8_t seed[16];      /* the item's hash: boundaries are derived from it */
	unsigned boundaries;   /* boundaries made so far in this item */
} convert_ctx;

/* ---- determinism: a hash of everything the item holds -------------------------------- */

static void hash_prop(void *opaque, uint32_t tag, const uint8_t *value, size_t len)
{
	crypto_generichash_state *st = opaque;
	uint8_t head[12];
	for (int i = 0; i < 4; i++)
		head[i] = (uint8_t)(tag >> (8 * i));
	for (int i = 0; i < 8; i++)
		head[4 + i] = (uint8_t)((uint64_t)len >> (8 * i));
	crypto_generichash_update(st, head, sizeof head);
	crypto_generichash_update(st, value, len);
}

static void hash_message(crypto_generichash_state *st, const mv_mapi_message *m, int depth)
{
	mv_mapi_props_each(m->props, hash_prop, st);
	for (guint i = 0; i < m->recipients->len; i++)
		mv_mapi_props_each(m->recipients->pdata[i], hash_prop, st);
	for (guint i = 0; i < m->attachments->len; i++) {
		const mv_mapi_attachment *a = m->attachments->pdata[i];
		mv_mapi_props_each(a->props, hash_prop, st);
		if (a->embedded && depth < MV_MAPI_MAX_DEPTH)
			hash_message(st, a->embedded, depth + 1);
	}
}

static void set_boundary(convert_ctx *cx, GMimeMultipart *mp)
{
	uint8_t in[20], out[12];
	memcpy(in, cx->seed, sizeof cx->seed);
	unsigned n = cx->boundaries++;
	for (int i = 0; i < 4; i++)
		in[16 + i] = (uint8_t)(n >> (8 * i));
	crypto_generichash(out, sizeof out, in, sizeof in, NULL, 0);
	char hex[2 * sizeof out + 1];
	sodium_bin2hex(hex, sizeof hex, out, sizeof out);
	/* "=_" cannot occur in quoted-printable or base64 text. */
	char *b = g_strdup_printf("=_mv_%s", hex);
	g_mime_multipart_set_boundary(mp, b);
	g_free(b);
}

/* ---- text and addresses from properties ------------------------------------------------ */

static char *prop_string(const mv_mapi_message *m, const mv_mapi_props *props, uint16_t id)
{
	char *s = mv_mapi_props_string(props, id, m->codepage);
	if (s && !*s) {
		g_free(s);
		return NULL;
	}
	return s;
}

static bool looks_like_smtp(const char *addr)
{
	return addr && strchr(addr, '@') && !strchr(addr, ' ') && addr[0] != '/';
}

/* An Exchange-internal (X.500) address in Exchange's own IMCEA
 * encapsulation, "IMCEAEX-_O=ORG_OU=..._CN=X@exchange.invalid": a valid
 * address (an X.500 name in angle brackets is not one, and readers take its
 * parentheses for a comment), searchable, and the original readable back
 * ("/" became "_", anything else outside letters, digits, "-", "=" and "."
 * is "+HH").  The domain is unknown to the file: RFC 2606's reserved
 * ".invalid" says so. */
static char *imcea_address(const char *x500)
{
	GString *out = g_string_new("IMCEAEX-");
	for (const unsigned char *p = (const unsigned char *)x500; *p; p++) {
		if (g_ascii_isalnum(*p) || *p == '-' || *p == '=' || *p == '.')
			g_string_append_c(out, (char)*p);
		else if (*p == '/')
			g_string_append_c(out, '_');
		else
			g_string_append_printf(out, "+%02X", *p);
	}
	g_string_append(out, "@exchange.invalid");
	return g_string_free(out, FALSE);
}

/* The best Internet address of a sender or recipient: the SMTP address
 * property, else the e-mail address when it is one, else an
 * Exchange-internal address encapsulated (it has no Internet form). */
static char *best_address(const mv_mapi_message *m, const mv_mapi_props *props, uint16_t smtp_id, uint16_t email_id)
{
	char *smtp = prop_string(m, props, smtp_id);
	if (looks_like_smtp(smtp))
		return smtp;
	g_free(smtp);
	char *email = prop_string(m, props, email_id);
	if (!email || looks_like_smtp(email))
		return email;
	char *encapsulated = email[0] == '/' ? imcea_address(email) : NULL;
	g_free(email);
	return encapsulated;
}

static InternetAddress *mailbox(const char *name, const char *addr)
{
	if (!addr || !*addr)
		return name && *name ? internet_address_group_new(name) : NULL;
	return internet_address_mailbox_new(name && g_strcmp0(name, addr) != 0 ? name : NULL, addr);
}

static void add_sender(const mv_mapi_message *m, GMimeMessage *msg)
{
	char *name = prop_string(m, m->props, MV_PID_SENT_REPRESENTING_NAME);
	char *addr = best_address(m, m->props, MV_PID_SENT_REPRESENTING_SMTP, MV_PID_SENT_REPRESENTING_EMAIL);
	if (!name && !addr) {
		name = prop_string(m, m->props, MV_PID_SENDER_NAME);
		addr = best_address(m, m->props, MV_PID_SENDER_SMTP_ADDRESS, MV_PID_SENDER_EMAIL);
	}
	InternetAddress *ia = mailbox(name, addr);
	if (ia) {
		internet_address_list_add(g_mime_message_get_from(msg), ia);
		g_object_unref(ia);
	}
	g_free(name);
	g_free(addr);
}

static void add_recipients(const mv_mapi_message *m, GMimeMessage *msg)
{
	for (guint i = 0; i < m->recipients->len; i++) {
		const mv_mapi_props *r = m->recipients->pdata[i];
		int32_t type = 1;
		(void)mv_mapi_props_int32(r, MV_PID_RECIPIENT_TYPE, &type);
		GMimeAddressType kind = (type & 0xF) == 2 ? GMIME_ADDRESS_TYPE_CC
		                      : (type & 0xF) == 3 ? GMIME_ADDRESS_TYPE_BCC : GMIME_ADDRESS_TYPE_TO;
		char *name = prop_string(m, r, MV_PID_DISPLAY_NAME);
		char *addr = best_address(m, r, MV_PID_SMTP_ADDRESS, MV_PID_EMAIL_ADDRESS);
		InternetAddress *ia = mailbox(name, addr);
		if (ia) {
			internet_address_list_add(g_mime_message_get_addresses(msg, kind), ia);
			g_object_unref(ia);
		}
		g_free(name);
		g_free(addr);
	}
}

/* Items without a recipient table still show whom they went to. */
static void add_display_recipients(const mv_mapi_message *m, GMimeMessage *msg)
{
	static const struct { uint16_t id; GMimeAddressType kind; } fields[] = {
		{ MV_PID_DISPLAY_TO, GMIME_ADDRESS_TYPE_TO },
		{ MV_PID_DISPLAY_CC, GMIME_ADDRESS_TYPE_CC },
		{ MV_PID_DISPLAY_BCC, GMIME_ADDRESS_TYPE_BCC },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
		char *v = prop_string(m, m->props, fields[i].id);
		if (v) {
			/* The item's own text goes to GMime's address parser here,
			 * not through mv_mime_construct: bounded the same way. */
			mv_mime_bound_value_colons(v);
			InternetAddressList *list = internet_address_list_parse(NULL, v);
			if (list && internet_address_list_length(list) > 0)
				internet_address_list_append(g_mime_message_get_addresses(msg, fields[i].kind), list);
			if (list)
				g_object_unref(list);
		}
		g_free(v);
	}
}

static bool item_date(const mv_mapi_message *m, int64_t *t_r)
{
	return mv_mapi_props_time(m->props, MV_PID_CLIENT_SUBMIT_TIME, t_r) ||
	       mv_mapi_props_time(m->props, MV_PID_MESSAGE_DELIVERY_TIME, t_r) ||
	       mv_mapi_props_time(m->props, MV_PID_CREATION_TIME, t_r) ||
	       mv_mapi_props_time(m->props, MV_PID_LAST_MODIFICATION_TIME, t_r);
}

static char *angle_stripped(char *id)
{
	if (!id)
		return NULL;
	g_strstrip(id);
	size_t n = strlen(id);
	if (n >= 2 && id[0] == '<' && id[n - 1] == '>') {
		memmove(id, id + 1, n - 2);
		id[n - 2] = '\0';
	}
	return id;
}

static void set_header_if(GMimeObject *obj, const char *name, char *value)
{
	if (value && *value)
		g_mime_object_set_header(obj, name, value, "utf-8");
	g_free(value);
}

static void build_headers(const mv_mapi_message *m, GMimeMessage *msg)
{
	add_sender(m, msg);
	if (m->recipients->len)
		add_recipients(m, msg);
	else
		add_display_recipients(m, msg);
	char *subject = prop_string(m, m->props, MV_PID_SUBJECT);
	if (subject)
		g_mime_message_set_subject(msg, subject, "utf-8");
	g_free(subject);
	int64_t t;
	if (item_date(m, &t)) {
		GDateTime *dt = g_date_time_new_from_unix_utc(t);
		if (dt) {
			g_mime_message_set_date(msg, dt);
			g_date_time_unref(dt);
		}
	}
	char *id = angle_stripped(prop_string(m, m->props, MV_PID_INTERNET_MESSAGE_ID));
	if (id && *id)
		g_mime_message_set_message_id(msg, id);
	g_free(id);
	set_header_if(GMIME_OBJECT(msg), "In-Reply-To", prop_string(m, m->props, MV_PID_IN_REPLY_TO));
	set_header_if(GMIME_OBJECT(msg), "References", prop_string(m, m->props, MV_PID_INTERNET_REFERENCES));
	int32_t importance;
	if (mv_mapi_props_int32(m->props, MV_PID_IMPORTANCE, &importance) && importance != 1)
		g_mime_object_set_header(GMIME_OBJECT(msg), "Importance", importance == 2 ? "high" : "low", NULL);
}

/* ---- bodies ---------------------------------------------------------------------------- */

typedef struct bodies {
	char *plain;          /* UTF-8 */
	GByteArray *html;     /* bytes in html_charset */
	const char *html_charset;
	GByteArray *rtf;      /* decompressed RTF kept as its own part (no HTML to stand for it) */
} bodies;

static void bodies_clear(bodies *b)
{
	g_free(b->plain);
	if (b->html)
		g_byte_array_unref(b->html);
	if (b->rtf)
		g_byte_array_unref(b->rtf);
}

static GByteArray *bytes_of(const uint8_t *v, size_t len)
{
	GByteArray *a = g_byte_array_sized_new((guint)len);
	g_byte_array_append(a, v, (guint)len);
	return a;
}

static void read_html(const mv_mapi_message *m, bodies *b)
{
	size_t len = 0;
	const uint8_t *v = mv_mapi_props_get(m->props, MV_TAG(MV_PID_HTML, MV_PT_BINARY), &len);
	int32_t cpid = 0;
	if (v && len) {
		b->html = bytes_of(v, len);
		b->html_charset = mv_mapi_props_int32(m->props, MV_PID_INTERNET_CPID, &cpid) ? mv_codepage_charset((uint32_t)cpid)
		                                                                            : mv_codepage_charset(m->codepage);
		return;
	}
	char *s = prop_string(m, m->props, MV_PID_HTML);
	if (s) {
		b->html = bytes_of((const uint8_t *)s, strlen(s));
		b->html_charset = "UTF-8";
	}
	g_free(s);
}

/* The RTF body: HTML when it encapsulates HTML (and the item has no HTML
 * body of its own), its text when the item has no plain body, and the RTF
 * itself as a part only when it is the richest form there is. */
static void read_rtf(const mv_mapi_message *m, bodies *b, GPtrArray *damage)
{
	size_t len = 0;
	const uint8_t *v = mv_mapi_props_get(m->props, MV_TAG(MV_PID_RTF_COMPRESSED, MV_PT_BINARY), &len);
	if (!v || !len || (b->html && b->plain))
		return;
	GByteArray *rtf = NULL;
	GError *err = NULL;
	if (mv_rtf_decompress(v, len, &rtf, &err) < 0) {
		g_ptr_array_add(damage, g_strdup_printf("RTF body: %s", err->message));
		g_error_free(err);
		return;
	}
	if (!b->html) {
		GString *html = g_string_new(NULL);
		int enc = mv_rtf_deencapsulate_html(rtf->data, rtf->len, html, &err);
		if (enc > 0) {
			b->html = bytes_of((const uint8_t *)html->str, html->len);
			b->html_charset = "UTF-8";
		} else if (enc < 0) {
			g_ptr_array_add(damage, g_strdup_printf("RTF body: %s", err->message));
			g_clear_error(&err);
		}
		g_string_free(html, TRUE);
	}
	if (!b->plain) {
		GString *text = g_string_new(NULL);
		mv_rtf_to_text(rtf->data, rtf->len, text, MV_MAX_TEXT_PER_MESSAGE);
		if (text->len)
			b->plain = g_string_free(text, FALSE);
		else
			g_string_free(text, TRUE);
	}
	if (!b->html && rtf->len)
		b->rtf = g_byte_array_ref(rtf);
	g_byte_array_unref(rtf);
}

static GMimeObject *text_part(const char *subtype, const uint8_t *data, size_t len, const char *charset)
{
	GMimeTextPart *part = g_mime_text_part_new_with_subtype(subtype);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(GMIME_PART(part), w);
	g_object_unref(w);
	g_object_unref(stream);
	g_mime_text_part_set_charset(part, charset);
	g_mime_part_set_content_encoding(GMIME_PART(part), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	return GMIME_OBJECT(part);
}

static GMimeObject *body_part(convert_ctx *cx, const bodies *b)
{
	GPtrArray *alts = g_ptr_array_new_with_free_func(g_object_unref);
	if (b->plain || (!b->html && !b->rtf))
		g_ptr_array_add(alts, text_part("plain", (const uint8_t *)(b->plain ? b->plain : ""),
		                                b->plain ? strlen(b->plain) : 0, "utf-8"));
	if (b->html)
		g_ptr_array_add(alts, text_part("html", b->html->data, b->html->len, b->html_charset));
	else if (b->rtf)
		g_ptr_array_add(alts, text_part("rtf", b->rtf->data, b->rtf->len, "us-ascii"));
	if (alts->len == 1) {
		GMimeObject *only = g_object_ref(alts->pdata[0]);
		g_ptr_array_unref(alts);
		return only;
	}
	GMimeMultipart *mp = g_mime_multipart_new_with_subtype("alternative");
	set_boundary(cx, mp);
	for (guint i = 0; i < alts->len; i++)
		g_mime_multipart_add(mp, alts->pdata[i]);
	g_ptr_array_unref(alts);
	return GMIME_OBJECT(mp);
}

/* ---- attachments -------------------------------------------------------------------------- */

static const char *type_by_extension(const char *name)
{
	static const struct { const char *ext, *type; } map[] = {
		{ "pdf", "application/pdf" }, { "doc", "application/msword" }, { "dot", "application/msword" },
		{ "xls", "application/vnd.ms-excel" }, { "ppt", "application/vnd.ms-powerpoint" },
		{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
		{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
		{ "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
		{ "odt", "application/vnd.oasis.opendocument.text" },
		{ "ods", "application/vnd.oasis.opendocument.spreadsheet" },
		{ "odp", "application/vnd.oasis.opendocument.presentation" },
		{ "rtf", "application/rtf" }, { "txt", "text/plain" }, { "csv", "text/csv" }, { "htm", "text/html" },
		{ "html", "text/html" }, { "xml", "text/xml" }, { "zip", "application/zip" }, { "gif", "image/gif" },
		{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" }, { "png", "image/png" }, { "bmp", "image/bmp" },
		{ "tif", "image/tiff" }, { "tiff", "image/tiff" }, { "ics", "text/calendar" }, { "vcf", "text/vcard" },
		{ "eml", "message/rfc822" }, { "msg", "application/vnd.ms-outlook" },
	};
	const char *dot = name ? strrchr(name, '.') : NULL;
	if (dot)
		for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
			if (g_ascii_strcasecmp(dot + 1, map[i].ext) == 0)
				return map[i].type;
	return "application/octet-stream";
}

static char *attachment_name(const mv_mapi_message *m, const mv_mapi_attachment *a, guint index)
{
	char *name = prop_string(m, a->props, MV_PID_ATTACH_LONG_FILENAME);
	if (!name)
		name = prop_string(m, a->props, MV_PID_ATTACH_FILENAME);
	if (!name)
		name = prop_string(m, a->props, MV_PID_DISPLAY_NAME);
	if (!name)
		name = g_strdup_printf("attachment-%u", index + 1);
	/* A name is a name, not a path. */
	for (char *p = name; *p; p++)
		if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
	return name;
}

/* A MIME tag written by a client can be anything; only a plausible
 * type/subtype is kept. */
static char *attachment_type(const mv_mapi_message *m, const mv_mapi_attachment *a, const char *name)
{
	char *tag = prop_string(m, a->props, MV_PID_ATTACH_MIME_TAG);
	if (tag) {
		g_strstrip(tag);
		bool ok = strchr(tag, '/') && strlen(tag) < 128;
		for (const char *p = tag; ok && *p; p++)
			ok = g_ascii_isalnum(*p) || strchr("/.+-_", *p);
		char *type = ok ? g_ascii_strdown(tag, -1) : NULL;
		g_free(tag);
		if (type)
			return type;
	}
	return g_strdup(type_by_extension(name));
}

static GMimeObject *binary_part(const char *type, const uint8_t *data, size_t len)
{
	char **tv = g_strsplit(type, "/", 2);
	GMimePart *part = g_mime_part_new_with_type(tv[0], tv[1] ? tv[1] : "octet-stream");
	g_strfreev(tv);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, w);
	g_object_unref(w);
	g_object_unref(stream);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
	return GMIME_OBJECT(part);
}

static int convert(convert_ctx *cx, const mv_mapi_message *m, int depth, GByteArray *out, GError **error);

static GMimeObject *message_file_part(const uint8_t *data, size_t len)
{
	const char *why = NULL;
	if (!mv_looks_like_message(data, len, &why))
		return NULL;
	unsigned flags = 0;
	GMimeMessage *inner = mv_mime_construct(data, len, &flags);
	if (!inner)
		return NULL;
	GMimeObject *obj = GMIME_OBJECT(g_mime_message_part_new_with_message("rfc822", inner));
	g_object_unref(inner);
	return obj;
}

static GMimeObject *embedded_part(convert_ctx *cx, const mv_mapi_message *outer, const mv_mapi_attachment *a, int depth)
{
	GByteArray *bytes = g_byte_array_new();
	GError *err = NULL;
	GMimeObject *obj = NULL;
	if (convert(cx, a->embedded, depth + 1, bytes, &err) == 0) {
		unsigned flags = 0;
		GMimeMessage *inner = mv_mime_construct(bytes->data, bytes->len, &flags);
		if (inner) {
			obj = GMIME_OBJECT(g_mime_message_part_new_with_message("rfc822", inner));
			g_object_unref(inner);
		}
	} else {
		g_ptr_array_add(outer->damage, g_strdup_printf("embedded message: %s", err->message));
		g_error_free(err);
	}
	g_byte_array_unref(bytes);
	return obj;
}

typedef struct attachment_out {
	GMimeObject *part;
	bool related;         /* an inline image the HTML shows by Content-ID */
} attachment_out;

static bool html_mentions_cid(const bodies *b, const char *cid)
{
	if (!b->html || !cid)
		return false;
	char *needle = g_strconcat("cid:", cid, NULL);
	bool found = g_strstr_len((const char *)b->html->data, (gssize)b->html->len, needle) != NULL;
	g_free(needle);
	return found;
}

static attachment_out attachment_part(convert_ctx *cx, const mv_mapi_message *m, const mv_mapi_attachment *a,
                                      guint index, const bodies *b, int depth)
{
	attachment_out res = { NULL, false };
	char *name = attachment_name(m, a, index);
	if (a->embedded && depth < MV_MAPI_MAX_DEPTH) {
		res.part = embedded_part(cx, m, a, depth);
		if (res.part)
			g_mime_object_set_disposition(res.part, "attachment");
		g_free(name);
		return res;
	}
	size_t len = 0;
	const uint8_t *data = mv_mapi_props_get(a->props, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), &len);
	if (!data) {
		int32_t method = 0;
		(void)mv_mapi_props_int32(a->props, MV_PID_ATTACH_METHOD, &method);
		g_ptr_array_add(m->damage, g_strdup_printf("attachment %u (%s): no data (method %d)", index + 1, name, method));
		g_free(name);
		return res;
	}
	char *type = attachment_type(m, a, name);
	if (strcmp(type, "message/rfc822") == 0) {
		/* A message attached as a file: message/rfc822 may not be base64
		 * (RFC 2046 5.2.1), so it is attached as the message it is, or as
		 * bytes when it does not read as one. */
		res.part = message_file_part(data, len);
		if (res.part) {
			g_mime_object_set_disposition(res.part, "attachment");
			g_mime_object_set_content_disposition_parameter(res.part, "filename", name);
			g_free(type);
			g_free(name);
			return res;
		}
		g_free(type);
		type = g_strdup("application/octet-stream");
	}
	res.part = binary_part(type, data, len);
	g_mime_part_set_filename(GMIME_PART(res.part), name);
	char *cid = angle_stripped(prop_string(m, a->props, MV_PID_ATTACH_CONTENT_ID));
	if (cid && *cid) {
		g_mime_object_set_content_id(res.part, cid);
		res.related = html_mentions_cid(b, cid);
	}
	g_mime_object_set_disposition(res.part, res.related ? "inline" : "attachment");
	g_free(cid);
	g_free(type);
	g_free(name);
	return res;
}

/* A multipart of the given subtype holding first, then parts (taking over
 * the reference to first). */
static GMimeObject *wrap(convert_ctx *cx, const char *subtype, GMimeObject *first, GPtrArray *parts)
{
	GMimeMultipart *mp = g_mime_multipart_new_with_subtype(subtype);
	set_boundary(cx, mp);
	g_mime_multipart_add(mp, first);
	g_object_unref(first);
	for (guint i = 0; i < parts->len; i++)
		g_mime_multipart_add(mp, parts->pdata[i]);
	return GMIME_OBJECT(mp);
}

/* multipart/mixed( multipart/related( body, inline images ), attachments ) —
 * each level only when it has more than one member. */
static GMimeObject *message_body(convert_ctx *cx, const mv_mapi_message *m, const bodies *b, int depth)
{
	GMimeObject *body = body_part(cx, b);
	GPtrArray *related = g_ptr_array_new_with_free_func(g_object_unref);
	GPtrArray *mixed = g_ptr_array_new_with_free_func(g_object_unref);
	for (guint i = 0; i < m->attachments->len; i++) {
		attachment_out a = attachment_part(cx, m, m->attachments->pdata[i], i, b, depth);
		if (a.part)
			g_ptr_array_add(a.related ? related : mixed, a.part);
	}
	if (related->len)
		body = wrap(cx, "related", body, related);
	if (mixed->len)
		body = wrap(cx, "mixed", body, mixed);
	g_ptr_array_unref(related);
	g_ptr_array_unref(mixed);
	return body;
}

/* ---- the header: transport headers or built ------------------------------------------------ */

static bool is_content_header(const char *line, size_t len)
{
	static const char *const names[] = { "content-", "mime-version:" };
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		size_t n = strlen(names[i]);
		if (len >= n && g_ascii_strncasecmp(line, names[i], n) == 0)
			return true;
	}
	return false;
}

/* The transport headers as received, minus the MIME fields (the body is
 * rebuilt, so the original's structure no longer applies), with CRLF line
 * ends.  Continuation lines follow their field.  Returns false when no
 * usable field is left (the header is then built from properties). */
static bool append_transport_headers(const char *headers, GByteArray *out)
{
	guint start = out->len;
	bool skipping = false;
	const char *p = headers;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		size_t content = len && p[len - 1] == '\r' ? len - 1 : len;
		if (content == 0)
			break; /* the end of the header block */
		bool continuation = p[0] == ' ' || p[0] == '\t';
		if (!continuation)
			skipping = is_content_header(p, content) || !memchr(p, ':', content);
		if (!skipping) {
			g_byte_array_append(out, (const guint8 *)p, (guint)content);
			g_byte_array_append(out, (const guint8 *)"\r\n", 2);
		}
		p = nl ? nl + 1 : p + len;
	}
	return out->len > start;
}

static void append_object(convert_ctx *cx, GMimeObject *obj, GByteArray *out)
{
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(out);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	g_mime_stream_seek(mem, 0, GMIME_STREAM_SEEK_END);
	g_mime_object_write_to_stream(obj, cx->format, mem);
	g_mime_stream_flush(mem);
	g_object_unref(mem);
}

static int convert(convert_ctx *cx, const mv_mapi_message *m, int depth, GByteArray *out, GError **error)
{
	if (depth > MV_MAPI_MAX_DEPTH) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "embedded messages nest deeper than %d levels", MV_MAPI_MAX_DEPTH);
		return -1;
	}
	bodies b = { 0 };
	b.plain = prop_string(m, m->props, MV_PID_BODY);
	read_html(m, &b);
	read_rtf(m, &b, m->damage);
	GMimeObject *body = message_body(cx, m, &b, depth);
	char *transport = prop_string(m, m->props, MV_PID_TRANSPORT_HEADERS);
	if (transport && append_transport_headers(transport, out)) {
		g_byte_array_append(out, (const guint8 *)"MIME-Version: 1.0\r\n", 19);
		append_object(cx, body, out);
	} else {
		GMimeMessage *msg = g_mime_message_new(FALSE);
		build_headers(m, msg);
		g_mime_message_set_mime_part(msg, body);
		append_object(cx, GMIME_OBJECT(msg), out);
		g_object_unref(msg);
	}
	g_free(transport);
	g_object_unref(body);
	bodies_clear(&b);
	return 0;
}

int mv_mapi_to_mime(const mv_mapi_message *m, GByteArray *out, GError **error)
{
	mv_mime_init();
	convert_ctx cx = { .format = g_mime_format_options_new() };
	g_mime_format_options_set_newline_format(cx.format, GMIME_NEWLINE_FORMAT_DOS);
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof cx.seed);
	hash_message(&st, m, 0);
	crypto_generichash_final(&st, cx.seed, sizeof cx.seed);
	int rc = convert(&cx, m, 0, out, error);
	g_mime_format_options_free(cx.format);
	return rc;
}
