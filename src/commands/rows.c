/* commands/rows: a list function's result as a source of rows, pulled one
 * at a time as JSON text.  The listing functions (GetMessages,
 * SearchMessages, GetAuditLog) hand out rows from a cursor that reads their
 * store or log in pages, so that the HTTP API writes each row as it is read
 * (stream.c) and the callers that want the whole answer (the shell, jobs,
 * Web Access) parse the same rows into an array: one handler, two ways
 * out.  Rows are text because text is what the API sends: a listing writes
 * a row straight from its columns, with no object made and dumped per row
 * (which cost as much as reading the rows). */
#include "commands/commands.h"

#include <string.h>

struct mv_rows {
	mv_rows_next_fn next;
	void *state;
	GDestroyNotify free_state;
	bool ended;                    /* the source said "no more" or failed: never asked again */
};

mv_rows *mv_rows_new(mv_rows_next_fn next, void *state, GDestroyNotify free_state)
{
	mv_rows *r = g_new0(mv_rows, 1);
	r->next = next;
	r->state = state;
	r->free_state = free_state;
	return r;
}

int mv_rows_next(mv_rows *rows, GString *out, GError **error)
{
	if (rows->ended)
		return 0;
	gsize before = out->len;
	int rc = rows->next(rows->state, out, error);
	if (rc == 1 && out->len == before) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "a listing gave an empty row");
		rc = -1;
	}
	if (rc != 1) {
		rows->ended = true;
		g_string_truncate(out, before);
	}
	return rc;
}

void mv_rows_free(mv_rows **rows)
{
	if (!*rows)
		return;
	if ((*rows)->free_state)
		(*rows)->free_state((*rows)->state);
	g_clear_pointer(rows, g_free);
}

json_t *mv_rows_collect(mv_rows *rows, GError **error)
{
	json_t *all = json_array();
	GString *text = g_string_new(NULL);
	int rc;
	while ((rc = mv_rows_next(rows, text, error)) == 1) {
		json_error_t jerr;
		json_t *row = json_loadb(text->str, text->len, JSON_DECODE_ANY, &jerr);
		if (!row) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "a listing wrote a row that is not JSON: %s", jerr.text);
			rc = -1;
			break;
		}
		json_array_append_new(all, row);
		g_string_truncate(text, 0);
	}
	g_string_free(text, TRUE);
	mv_rows_free(&rows);
	if (rc == 0)
		return all;
	json_decref(all);
	return NULL;
}

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

/* json_dumpb into the space past out's end: one piece (jansson's callback
 * writer hands over a token at a time). */
void mv_json_append(GString *out, json_t *value)
{
	gsize at = out->len, room = MAX(out->allocated_len - out->len - 1, (gsize)256);
	for (;;) {
		g_string_set_size(out, at + room);
		size_t need = json_dumpb(value, out->str + at, room, DUMP_FLAGS);
		if (need <= room) {
			g_string_set_size(out, at + need);
			return;
		}
		room = need;
	}
}

static void append_escaped(GString *out, const char *s)
{
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		g_string_append_len(out, run, (const char *)p - run);
		run = (const char *)p + 1;
		switch (*p) {
		case '"': g_string_append(out, "\\\""); break;
		case '\\': g_string_append(out, "\\\\"); break;
		case '\n': g_string_append(out, "\\n"); break;
		case '\r': g_string_append(out, "\\r"); break;
		case '\t': g_string_append(out, "\\t"); break;
		case '\b': g_string_append(out, "\\b"); break;
		case '\f': g_string_append(out, "\\f"); break;
		default: g_string_append_printf(out, "\\u%04x", *p); break;
		}
	}
	g_string_append(out, run);
}

void mv_json_append_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	if (s && g_utf8_validate(s, -1, NULL)) {
		append_escaped(out, s);
	} else if (s) {
		char *valid = g_utf8_make_valid(s, -1);
		append_escaped(out, valid);
		g_free(valid);
	}
	g_string_append_c(out, '"');
}
