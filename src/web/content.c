/* web/content: what of a message leaves as more than JSON — its HTML in
 * the sandboxed frame, its exact bytes as an .eml download, and its
 * attachments.
 *
 * Each is read through mv_message_fetch, the one privilege check for a
 * single message (GetMessage uses it too), so a message the user may not
 * read is a 404 here as everywhere.  The HTML is never sent as written:
 * mv_html_sanitize rebuilds it from a whitelist, its cid: images point at
 * this endpoint, remote images stay out unless the user asked, and the
 * response's own policy forbids script and outside requests a second time.
 * Downloads go out as attachments under a sandboxing policy, so a hostile
 * attachment opened by URL still cannot run in this origin.  Each
 * retrieval is a user activity (MessageRetrieveContent) for the audit log. */
#include "web/internal.h"
#include "mime/mime.h"
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

/* Base styles for mail that brings none, and images kept inside the frame. */
#define FRAME_STYLE "<style>body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;" \
	"font-size:14px;line-height:1.45;margin:12px;overflow-wrap:anywhere;color:#1b1f24;background:#fff}" \
	"img{max-width:100%;height:auto}pre{white-space:pre-wrap}</style>"

typedef struct cid_target {
	const char *id;
	const mv_message_view *view;
} cid_target;

static char *resolve_cid(void *opaque, const char *content_id)
{
	const cid_target *t = opaque;
	const mv_view_part *p = mv_message_view_find_cid(t->view, content_id);
	if (!p || !g_str_has_prefix(p->content_type, "image/"))
		return NULL;
	char *id = g_uri_escape_string(t->id, NULL, FALSE);
	char *url = g_strdup_printf("/web/api/message/%s/part/%d?inline=1", id, p->index);
	g_free(id);
	return url;
}

static bool query_flag(mv_web_request *r, const char *name)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
	return v && strcmp(v, "1") == 0;
}

static enum MHD_Result send_frame(mv_web_request *r, const char *id, const mv_message_view *v)
{
	if (!v->html)
		return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "the message has no HTML version");
	bool remote = query_flag(r, "remote");
	cid_target t = { id, v };
	mv_html_policy policy = { .allow_remote = remote, .resolve_cid = resolve_cid, .opaque = &t };
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	if (mv_html_sanitize(v->html->str, v->html->len, &policy, out, NULL, NULL, &err) < 0) {
		g_string_free(out, TRUE);
		enum MHD_Result rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		return rc;
	}
	const char *head = strstr(out->str, "<meta charset=\"utf-8\">");
	if (head)
		g_string_insert(out, head - out->str + (gssize)strlen("<meta charset=\"utf-8\">"), FRAME_STYLE);
	return mv_web_send(r, MHD_HTTP_OK, remote ? MV_WEB_FRAME_REMOTE : MV_WEB_FRAME, "text/html; charset=utf-8",
	                   g_string_free_to_bytes(out), NULL);
}

/* attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded
 * (RFC 6266): quotes, backslashes and control characters never reach the
 * header. */
static char *disposition(const char *kind, const char *name)
{
	GString *ascii = g_string_new(NULL);
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		g_string_append_c(ascii, c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '/' ? '_' : (char)c);
	}
	if (ascii->len == 0)
		g_string_assign(ascii, "download");
	char *encoded = g_uri_escape_string(name, NULL, FALSE);
	char *out = g_strdup_printf("%s; filename=\"%s\"; filename*=UTF-8''%s", kind, ascii->str, encoded);
	g_string_free(ascii, TRUE);
	g_free(encoded);
	return out;
}

static char *eml_name(const mv_message_view *v)
{
	const char *subject = *v->subject ? v->subject : "message";
	glong n = g_utf8_strlen(subject, -1);
	char *cut = g_utf8_substring(subject, 0, MIN(n, 100));
	char *name = g_strconcat(cut, ".eml", NULL);
	g_free(cut);
	return name;
}

static enum MHD_Result send_eml(mv_web_request *r, const mv_message_view *v, GByteArray *raw)
{
	char *name = eml_name(v);
	char *disp = disposition("attachment", name);
	GBytes *body = g_bytes_new_with_free_func(raw->data, raw->len, (GDestroyNotify)g_byte_array_unref,
	                                          g_byte_array_ref(raw));
	enum MHD_Result rc = mv_web_send(r, MHD_HTTP_OK, MV_WEB_DOWNLOAD, "message/rfc822", body, disp);
	g_free(disp);
	g_free(name);
	return rc;
}

/* Only these are shown in place; everything else is a download. */
static bool inline_image(const char *type)
{
	static const char *const ok[] = { "image/png", "image/gif", "image/jpeg", "image/webp", "image/bmp" };
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++)
		if (strcmp(type, ok[i]) == 0)
			return true;
	return false;
}

/* A declared content type passed on only when it is a plain type/subtype. */
static const char *download_type(const char *type)
{
	for (const char *p = type; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("/.+-_", *p))
			return "application/octet-stream";
	return strchr(type, '/') ? type : "application/octet-stream";
}

static enum MHD_Result send_part(mv_web_request *r, mv_message_view *v, const char *index_text)
{
	char *end = NULL;
	long index = strtol(index_text, &end, 10);
	GByteArray *data = NULL;
	GError *err = NULL;
	if (!*index_text || *end || index < 1 || index > G_MAXINT ||
	    mv_message_view_part_data(v, (int)index, &data, &err) < 0) {
		g_clear_error(&err);
		return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "the message has no such attachment");
	}
	const mv_view_part *p = v->attachments->pdata[index - 1];
	bool shown = query_flag(r, "inline") && inline_image(p->content_type);
	char *name = *p->name ? g_strdup(p->name) : g_strdup_printf("attachment-%ld", index);
	char *disp = disposition(shown ? "inline" : "attachment", name);
	enum MHD_Result rc = mv_web_send(r, MHD_HTTP_OK, MV_WEB_DOWNLOAD, shown ? p->content_type
	                                 : download_type(p->content_type), g_byte_array_free_to_bytes(data), disp);
	g_free(disp);
	g_free(name);
	return rc;
}

enum MHD_Result mv_web_content(mv_web_request *r, const char *rest)
{
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return mv_web_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid", "downloads are read with GET");
	const char *slash = strchr(rest, '/');
	if (!slash)
		return mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	char *id = g_strndup(rest, (gsize)(slash - rest));
	const char *what = slash + 1;
	mv_store_message m;
	GByteArray *raw = NULL;
	GError *err = NULL;
	enum MHD_Result rc;
	if (mv_message_fetch(r->inst, r->access, id, &m, &raw, &err) < 0) {
		rc = mv_web_send_gerror(r, err);
		g_error_free(err);
		g_free(id);
		return rc;
	}
	mv_message_view *v = mv_message_view_new(raw->data, raw->len);
	char *details = g_strdup_printf("Web Access: %s of message %s", what, id);
	if (strcmp(what, "html") == 0)
		rc = send_frame(r, id, v);
	else if (strcmp(what, "eml") == 0)
		rc = send_eml(r, v, raw);
	else if (g_str_has_prefix(what, "part/"))
		rc = send_part(r, v, what + strlen("part/"));
	else
		rc = mv_web_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	mv_web_audit_activity(r, "MessageRetrieveContent", details);
	g_free(details);
	mv_message_view_free(&v);
	mv_store_message_clear(&m);
	g_byte_array_unref(raw);
	g_free(id);
	return rc;
}
