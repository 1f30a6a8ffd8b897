/* api/answer: a function's envelope sent as it is written — the HTTP side of
 * commands/stream.c.  libmicrohttpd pulls the body through a content reader
 * on the connection's own thread (the listeners run a thread per
 * connection), so the rows of a listing are read from the store as the
 * client takes them, a part of ANSWER_PART bytes at a time, with chunked
 * transfer encoding: the server holds one part per call, not the answer.
 *
 * The call's context (who, from where, with what folder rights) lives as
 * long as the response, which libmicrohttpd frees on the same thread when
 * it is done with it, also when the client went away mid-answer. */
#include "api/api.h"

#include <string.h>

/* Near a TLS record's worth several times over: big enough that a part is
 * one write, small enough that 32 concurrent answers cost ~2 MB. */
#define ANSWER_PART (64 * 1024)

static const char bom[] = "\xEF\xBB\xBF";   /* MailStore sends one; its clients strip it, ours too */

typedef struct answer {
	mv_command_ctx ctx;
	char *user, *remote;
	mv_access *access;
	json_t *args;
	mv_command_stream *stream;
	GString *part;
	size_t sent;                 /* of part */
	bool ended;
} answer;

static void answer_free(void *cls)
{
	answer *a = cls;
	/* The stream first: its end may still write the call's audit entry
	 * with the context below. */
	mv_command_stream_free(&a->stream);
	json_decref(a->args);
	mv_access_free(&a->access);
	g_string_free(a->part, TRUE);
	g_free(a->user);
	g_free(a->remote);
	g_free(a);
}

static ssize_t answer_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	answer *a = cls;
	if (a->sent == a->part->len) {
		g_string_truncate(a->part, 0);
		a->sent = 0;
		if (a->ended || !mv_command_stream_read(a->stream, a->part, ANSWER_PART)) {
			a->ended = true;
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
	}
	size_t n = MIN(max, a->part->len - a->sent);
	memcpy(buf, a->part->str + a->sent, n);
	a->sent += n;
	return (ssize_t)n;
}

enum MHD_Result mv_api_send_answer(struct MHD_Connection *conn, const mv_command *cmd, const mv_command_ctx *who,
                                   json_t *args, mv_access *access)
{
	answer *a = g_new0(answer, 1);
	a->user = g_strdup(who->user);
	a->remote = g_strdup(who->remote);
	a->access = access;
	a->args = args;
	a->ctx = *who;
	a->ctx.user = a->user;
	a->ctx.remote = a->remote;
	a->ctx.access = a->access;
	a->part = g_string_new(bom);
	a->stream = mv_command_stream_open(cmd, &a->ctx, a->args);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, ANSWER_PART, answer_read, a,
	                                                           answer_free);
	if (!r) {
		answer_free(a);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}
