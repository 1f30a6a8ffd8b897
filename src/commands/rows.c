/* commands/rows: a list function's result as a source of rows, pulled one
 * at a time.  The listing functions (GetMessages, SearchMessages,
 * GetAuditLog) hand out rows from a cursor that reads their store or log in
 * pages, so that the HTTP API writes each row as it is read (stream.c) and
 * the callers that want the whole answer (the shell, jobs, Web Access)
 * collect the same rows into an array: one handler, two ways out. */
#include "commands/commands.h"

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

int mv_rows_next(mv_rows *rows, json_t **row_r, GError **error)
{
	*row_r = NULL;
	if (rows->ended)
		return 0;
	int rc = rows->next(rows->state, row_r, error);
	if (rc == 1 && !*row_r) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "a listing gave an empty row");
		rc = -1;
	}
	if (rc != 1) {
		rows->ended = true;
		g_clear_pointer(row_r, json_decref);
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
	json_t *all = json_array(), *row;
	int rc;
	while ((rc = mv_rows_next(rows, &row, error)) == 1)
		json_array_append_new(all, row);
	mv_rows_free(&rows);
	if (rc == 0)
		return all;
	json_decref(all);
	return NULL;
}
