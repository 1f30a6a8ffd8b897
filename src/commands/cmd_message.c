/* commands/cmd_message: GetMessage, our addition — one message as a reader
 * sees it: header fields, the plain text with its lines, whether there is
 * an HTML version (and whether it refers to remote content), and the
 * attachments.  Web Access's message view is this function; the HTML
 * itself and the bytes of downloads are served by Web Access from the same
 * fetch (search/message.c), with the same privilege check.
 *
 * A message the caller may not read is reported exactly like one that does
 * not exist.  Viewing is a user activity (MessageRetrieveContent), audited
 * when the compliance configuration asks for it. */
#include "commands/commands.h"
#include "mime/mime.h"
#include "search/search.h"

static json_t *headers_json(const GPtrArray *headers)
{
	json_t *list = json_array();
	for (guint i = 0; i + 1 < headers->len; i += 2)
		json_array_append_new(list, json_pack("[s, s]", (const char *)headers->pdata[i],
		                                      (const char *)headers->pdata[i + 1]));
	return list;
}

static json_t *attachments_json(const GPtrArray *parts)
{
	json_t *list = json_array();
	for (guint i = 0; i < parts->len; i++) {
		const mv_view_part *p = parts->pdata[i];
		json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:I, s:b, s:s}", "index", p->index, "name", p->name,
		                                      "contentType", p->content_type, "size", (json_int_t)p->size,
		                                      "inline", p->is_inline, "contentId", p->content_id));
	}
	return list;
}

/* Whether showing the HTML would load something from outside. */
static bool refers_to_remote(const GString *html)
{
	if (!html)
		return false;
	GString *safe = g_string_new(NULL);
	bool remote = false;
	mv_html_sanitize(html->str, html->len, NULL, safe, &remote, NULL, NULL);
	g_string_free(safe, TRUE);
	return remote;
}

static json_t *message_json(const char *id, const mv_store_message *m, const mv_message_view *v)
{
	char *date = mv_format_time_utc(m->date), *archived = mv_format_time_utc(m->archived_at);
	char *folder = *m->path ? g_strconcat(m->archive, "/", m->path, NULL) : g_strdup(m->archive);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id,
	                      "archive", m->archive, "folder", folder, "date", date, "archivedAt", archived,
	                      "size", (json_int_t)m->size, "subject", v->subject, "from", v->from, "to", v->to,
	                      "cc", v->cc, "bcc", v->bcc, "replyTo", v->reply_to, "messageId", v->message_id);
	json_object_set_new(o, "headers", headers_json(v->headers));
	json_object_set_new(o, "text", json_string(v->text->str));
	json_object_set_new(o, "hasHtml", json_boolean(v->html != NULL));
	json_object_set_new(o, "hasRemoteContent", json_boolean(refers_to_remote(v->html)));
	json_object_set_new(o, "attachments", attachments_json(v->attachments));
	g_free(date);
	g_free(archived);
	g_free(folder);
	return o;
}

static json_t *get_message(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *id = mv_arg_string(args, "id");
	mv_store_message m;
	GByteArray *raw = NULL;
	if (mv_message_fetch(ctx->inst, ctx->access, id, &m, &raw, error) < 0) {
		g_prefix_error(error, "GetMessage: ");
		return NULL;
	}
	mv_message_view *v = mv_message_view_new(raw->data, raw->len);
	json_t *o = message_json(id, &m, v);
	mv_message_view_free(&v);
	mv_store_message_clear(&m);
	g_byte_array_unref(raw);
	return o;
}

static const mv_command_arg args_id[] = { { "id", MV_ARG_STRING, false, NULL }, { .name = NULL } };

const mv_command mv_commands_message[] = {
	{ "GetMessage", args_id, "login", false, get_message,
	  "one message for reading: header fields, text, attachments (within the caller's folder privileges)", NULL },
	{ .name = NULL },
};
