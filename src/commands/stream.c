/* commands/stream: a call whose envelope is written a part at a time, for
 * the HTTP API.  A list function's rows (rows.c, JSON text) are written one
 * by one into the part being written, so a 10,000-message listing costs the
 * server one part's bytes and one page of rows, not the whole answer as a tree plus
 * its text (which is what took 32 concurrent whole-Inbox GetMessages calls
 * to ~400 MB).
 *
 * The first row is read when the stream opens: a listing that fails before
 * any row (an unknown folder, a store that cannot be read) answers with the
 * same error envelope as mv_command_invoke.  Once rows are out, the outcome
 * comes after them: "result" is written first and "error", "statusCode"
 * and "logOutput" follow it.  The audit entry is written when the outcome
 * is known, including "not read to its end" when the caller went away. */
#include "commands/internal.h"

typedef enum {
	STREAM_ROWS,     /* more rows may follow */
	STREAM_DONE,     /* everything is in `pending` or written */
} stream_state;

struct mv_command_stream {
	const mv_command *cmd;
	mv_command_ctx *ctx;
	json_t *args;
	GString *own_log;            /* ctx->log when the caller gave none */
	mv_rows *rows;
	GString *pending;            /* text not handed out yet */
	stream_state state;
	bool audited;
};

static const char stream_head[] =
	"{\"token\":null,\"statusVersion\":0,\"percentProgress\":null,\"statusText\":null,\"result\":[";

static void audit_once(mv_command_stream *s, const GError *err)
{
	if (s->audited)
		return;
	s->audited = true;
	mv_command_audit_outcome(s->cmd, s->ctx, s->args, err);
	g_clear_pointer(&s->ctx->audit_note, g_free);
}

static void append_log(mv_command_stream *s)
{
	const char *log = s->ctx->log->str;
	if (!*log) {
		g_string_append(s->pending, "null");
		return;
	}
	json_t *v = mv_command_text_value(log);
	mv_json_append(s->pending, v);
	json_decref(v);
}

/* A whole envelope as the one part (a function without rows, or a list
 * that failed before its first row or had none). */
static void whole_envelope(mv_command_stream *s, json_t *env)
{
	mv_json_append(s->pending, env);
	json_decref(env);
	s->state = STREAM_DONE;
}

static void finish(mv_command_stream *s, const GError *err)
{
	audit_once(s, err);
	g_string_append(s->pending, "],\"error\":");
	if (err) {
		json_t *e = mv_command_error_value(err);
		mv_json_append(s->pending, e);
		json_decref(e);
		g_string_append_printf(s->pending, ",\"statusCode\":\"%s\"", mv_command_failed_status(err));
	} else {
		g_string_append(s->pending, "null,\"statusCode\":\"succeeded\"");
	}
	g_string_append(s->pending, ",\"logOutput\":");
	append_log(s);
	g_string_append_c(s->pending, '}');
	s->state = STREAM_DONE;
	mv_rows_free(&s->rows);
}

static void open_rows(mv_command_stream *s)
{
	GError *err = NULL;
	int rc = -1;
	g_string_append(s->pending, stream_head);
	s->rows = s->cmd->rows(s->ctx, s->args, &err);
	if (s->rows)
		rc = mv_rows_next(s->rows, s->pending, &err);
	if (rc == 1) {
		s->state = STREAM_ROWS;
		return;
	}
	g_string_truncate(s->pending, 0);
	mv_rows_free(&s->rows);
	if (rc < 0 && !err)
		g_set_error(&err, MV_ERROR, MV_ERR_IO, "failed without a reason");
	audit_once(s, err);
	json_t *log = *s->ctx->log->str ? mv_command_text_value(s->ctx->log->str) : json_null();
	json_t *env = rc == 0 ? mv_command_envelope("succeeded", NULL, json_array(), NULL)
	                      : mv_command_envelope(mv_command_failed_status(err), mv_command_error_value(err), NULL, NULL);
	json_object_set_new(env, "logOutput", log);
	whole_envelope(s, env);
	g_clear_error(&err);
}

mv_command_stream *mv_command_stream_open(const mv_command *cmd, mv_command_ctx *ctx, json_t *args)
{
	mv_command_stream *s = g_new0(mv_command_stream, 1);
	s->cmd = cmd;
	s->ctx = ctx;
	s->args = args;
	s->pending = g_string_new(NULL);
	if (!ctx->log)
		ctx->log = s->own_log = g_string_new(NULL);
	if (cmd->rows) {
		open_rows(s);
	} else {
		s->audited = true;     /* mv_command_invoke audits */
		whole_envelope(s, mv_command_invoke(cmd, ctx, args));
	}
	return s;
}

/* Writes the next row, or at the end (or a failure) the outcome. */
static void write_row(mv_command_stream *s)
{
	gsize mark = s->pending->len;
	g_string_append_c(s->pending, ',');
	GError *err = NULL;
	int rc = mv_rows_next(s->rows, s->pending, &err);
	if (rc == 1)
		return;
	g_string_truncate(s->pending, mark);
	if (rc < 0 && !err)
		g_set_error(&err, MV_ERROR, MV_ERR_IO, "failed without a reason");
	finish(s, err);
	g_clear_error(&err);
}

bool mv_command_stream_read(mv_command_stream *s, GString *out, size_t want)
{
	while (s->state == STREAM_ROWS && s->pending->len < want)
		write_row(s);
	if (s->pending->len == 0 && s->state == STREAM_DONE)
		return false;
	g_string_append_len(out, s->pending->str, (gssize)s->pending->len);
	g_string_truncate(s->pending, 0);
	return true;
}

void mv_command_stream_free(mv_command_stream **sp)
{
	mv_command_stream *s = *sp;
	if (!s)
		return;
	if (!s->audited) {
		GError *err = g_error_new(MV_ERROR, MV_ERR_CANCELLED, "the answer was not read to its end "
		                          "(the caller closed the connection)");
		audit_once(s, err);
		g_error_free(err);
	}
	mv_rows_free(&s->rows);
	g_string_free(s->pending, TRUE);
	if (s->own_log) {
		g_string_free(s->own_log, TRUE);
		s->ctx->log = NULL;
	}
	g_free(s);
	*sp = NULL;
}
