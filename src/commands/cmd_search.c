/* commands/cmd_search: SearchMessages — full-text search through the
 * registry, with the caller's folder privileges applied inside the query,
 * and optional snippets cut from the messages themselves (the index keeps
 * no text). */
#include "commands/folder_args.h"
#include "commands/stores_in_use.h"
#include "search/search.h"

#include <string.h>

#define DEFAULT_SEARCH_LIMIT 50
#define SNIPPET_CHARS 200
#define SNIPPET_TEXT_BYTES (64 * 1024)
#define SNIPPET_THREADS 4

/* The passage of each hit that shows why it matched (the index keeps no
 * text: it is cut from the message, read from the store the hit came
 * from).  Reading is one store connection's work; cutting the passages
 * (a MIME parse each) runs on the cores, so a page costs what its largest
 * messages cost, not their sum. */
typedef struct snippet_work {
	const mv_query *q;
	GPtrArray *raws;       /* GByteArray* or NULL (unreadable), by hit */
	json_t **out;          /* by hit */
	char **attachment;     /* by hit: the attachment the snippet is from, or NULL */
	gint next;
} snippet_work;

static gpointer snippet_worker(gpointer p)
{
	snippet_work *w = p;
	for (guint i; (i = (guint)g_atomic_int_add(&w->next, 1)) < w->raws->len;) {
		GByteArray *raw = w->raws->pdata[i];
		if (!raw)
			continue;
		w->out[i] = mv_snippet_for_message(w->q, raw->data, raw->len, SNIPPET_TEXT_BYTES, SNIPPET_CHARS,
		                                   &w->attachment[i]);
	}
	return NULL;
}

static void unref_bytes(gpointer p)
{
	if (p)
		g_byte_array_unref(p);
}

/* Snippets for n hits, set into their rows (rows[i] is hits[i]'s). */
static void add_snippets(mv_command_ctx *ctx, mv_searcher *searcher, const mv_query *q, mv_search_hit **hits,
                         json_t **rows, guint n)
{
	snippet_work w = { .q = q, .raws = g_ptr_array_new_with_free_func(unref_bytes),
		           .out = g_new0(json_t *, n ? n : 1), .attachment = g_new0(char *, n ? n : 1) };
	for (guint i = 0; i < n; i++) {
		const mv_search_hit *h = hits[i];
		mv_store *st = mv_searcher_store(searcher, h->store_id);
		GByteArray *raw = NULL;
		GError *err = NULL;
		if (!st || mv_store_read_message(st, h->number, &raw, &err) < 0) {
			char *id = mv_message_id_format(h->store_id, h->number);
			mv_command_log(ctx, "no snippet for %s: %s", id, err ? err->message : "store not open");
			g_free(id);
			g_clear_error(&err);
		}
		g_ptr_array_add(w.raws, raw);
	}
	guint threads_n = MIN((guint)g_get_num_processors(), SNIPPET_THREADS);
	GThread *threads[SNIPPET_THREADS] = { NULL };
	for (guint t = 1; t < threads_n && n > 1; t++)
		threads[t] = g_thread_try_new("mv-snippet", snippet_worker, &w, NULL);
	snippet_worker(&w);
	for (guint t = 1; t < threads_n; t++)
		if (threads[t])
			g_thread_join(threads[t]);
	for (guint i = 0; i < n; i++) {
		if (w.out[i])
			json_object_set_new(rows[i], "snippet", w.out[i]);
		if (w.attachment[i])
			json_object_set_new(rows[i], "snippetAttachment", json_string(w.attachment[i]));
		g_free(w.attachment[i]);
	}
	g_free(w.out);
	g_free(w.attachment);
	g_ptr_array_free(w.raws, TRUE);
}

/* Whether the caller may read the folder archive/path or one above it. */
static bool readable_at_or_above(mv_command_ctx *ctx, const char *archive, const char *path)
{
	if (mv_folder_rights(ctx, archive, "") & MV_FOLDER_READ)
		return true;
	bool readable = false;
	char *prefix = g_strdup(path);
	for (char *cut = prefix + strlen(prefix); cut && !readable; cut = g_strrstr_len(prefix, cut - prefix, "/")) {
		*cut = '\0';
		readable = *prefix && (mv_folder_rights(ctx, archive, prefix) & MV_FOLDER_READ);
	}
	g_free(prefix);
	return readable;
}

/* What store_has_readable looks for: the archive lower-cased, and for whom. */
typedef struct readable_probe {
	mv_command_ctx *ctx;
	const char *want;
} readable_probe;

/* Stops the walk (1) at a folder of the archive the caller may read. */
static int folder_readable(const char *archive, const char *path, void *opaque)
{
	readable_probe *p = opaque;
	char *lower = g_utf8_strdown(archive, -1);
	int found = strcmp(lower, p->want) == 0 && readable_at_or_above(p->ctx, archive, path);
	g_free(lower);
	return found;
}

/* One store's folders: does one belong to the archive (named as the
 * archive: term names it, lower-cased whole) and may the caller read it? */
static int store_has_readable(mv_command_ctx *ctx, mv_store *s, void *want, GError **error)
{
	readable_probe p = { .ctx = ctx, .want = want };
	return mv_store_each_folder(s, folder_readable, &p, error);
}

/* An archive to search in: it has a folder the caller may read (or its
 * root), else the one answer for a missing folder. */
static bool searchable_archive(mv_command_ctx *ctx, const char *archive, GError **error)
{
	if (!archive || !*archive)
		return true;
	char *want = g_utf8_strdown(archive, -1);
	int found = mv_each_store_in_use(ctx, store_has_readable, want, error);
	g_free(want);
	if (found == 0)
		mv_folder_not_found("SearchMessages", archive, error);
	return found == 1;
}

/* Hits whose snippets are cut at once: the cores share a batch, and the
 * stream holds only a batch's messages and rows. */
#define SNIPPET_BATCH 64

/* A search's hits being handed out as rows. */
typedef struct hit_rows {
	mv_command_ctx *ctx;
	mv_searcher *searcher;       /* kept open: snippets read the hits' stores */
	GPtrArray *hits;             /* of mv_search_hit */
	mv_query *snippet_query;     /* NULL without snippets */
	json_t *batch[SNIPPET_BATCH];
	guint batch_from, batch_len, next;
} hit_rows;

static void hit_rows_free(gpointer p)
{
	hit_rows *r = p;
	for (guint i = 0; i < r->batch_len; i++)
		if (r->batch[i])
			json_decref(r->batch[i]);
	if (r->hits)
		g_ptr_array_free(r->hits, TRUE);
	mv_query_free(&r->snippet_query);
	mv_searcher_close(&r->searcher);
	g_free(r);
}

/* The rows of the hits from r->next on, with their snippets. */
static void fill_batch(hit_rows *r)
{
	r->batch_from = r->next;
	r->batch_len = MIN(SNIPPET_BATCH, r->hits->len - r->next);
	for (guint i = 0; i < r->batch_len; i++)
		r->batch[i] = mv_search_hit_json(r->hits->pdata[r->batch_from + i]);
	if (r->snippet_query)
		add_snippets(r->ctx, r->searcher, r->snippet_query, (mv_search_hit **)r->hits->pdata + r->batch_from,
		             r->batch, r->batch_len);
}

static int hit_rows_next(void *state, GString *out, GError **error)
{
	hit_rows *r = state;
	if (r->next >= r->hits->len)
		return 0;
	if (r->next >= r->batch_from + r->batch_len)
		fill_batch(r);
	json_t *row = g_steal_pointer(&r->batch[r->next - r->batch_from]);
	mv_json_append(out, row);
	json_decref(row);
	r->next++;
	return 1;
}

/* Our own addition to the reference's functions: full-text search through
 * the registry, so that the API, Web Access and IMAP search with the
 * caller's folder privileges applied inside the query.  The search itself
 * yields its hits (numbers and the columns a result list shows) at once;
 * their rows and snippets are made as they are handed out. */
static mv_rows *search_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *sort = mv_arg_string(args, "sort");
	int64_t limit = mv_arg_number(args, "limit", DEFAULT_SEARCH_LIMIT);
	mv_search_coverage coverage;
	mv_search_options opts = {
		.archive = mv_arg_string(args, "archive"), .limit = limit ? limit : MV_MAX_ANSWER_MESSAGES + 1,
		.sort = sort && strcmp(sort, "relevance") == 0 ? MV_SORT_RELEVANCE : MV_SORT_DATE, .access = ctx->access,
		.after = mv_arg_string(args, "after"), .offset = mv_arg_number(args, "offset", 0),
		.coverage = &coverage,
	};
	if (!mv_answer_paging_check("SearchMessages", opts.offset, limit, error) ||
	    !searchable_archive(ctx, opts.archive, error))
		return NULL;
	hit_rows *r = g_new0(hit_rows, 1);
	r->ctx = ctx;
	if (!(r->searcher = mv_searcher_open(ctx->inst, error)) ||
	    mv_searcher_run(r->searcher, mv_arg_string(args, "query"), &opts, &r->hits, error) < 0)
		goto fail;
	if (!limit && r->hits->len > MV_MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "SearchMessages: more than %d hits, more than one answer "
		            "holds: page through them with limit and after (or narrow the query)", MV_MAX_ANSWER_MESSAGES);
		goto fail;
	}
	/* In logOutput, where the reference's functions tell their caller what
	 * the result alone does not say. */
	char *note = mv_search_coverage_note(&coverage);
	if (note)
		mv_command_log(ctx, "%s", note);
	g_free(note);
	/* The query parsed once more for the snippets: it ran already, so it
	 * parses; a snippet is an extra that never fails the search. */
	if (mv_arg_bool(args, "snippets", false))
		r->snippet_query = mv_query_parse(mv_arg_string(args, "query"), NULL);
	return mv_rows_new(hit_rows_next, r, hit_rows_free);
fail:
	hit_rows_free(r);
	return NULL;
}

static const char *const sort_values[] = { "date", "relevance", NULL };
static const mv_command_arg args_search[] = {
	{ "query", MV_ARG_STRING, false, NULL }, { "archive", MV_ARG_STRING, true, NULL },
	{ "limit", MV_ARG_NUMBER, true, NULL }, { "sort", MV_ARG_STRING, true, sort_values },
	{ "after", MV_ARG_STRING, true, NULL }, { "offset", MV_ARG_NUMBER, true, NULL },
	{ "snippets", MV_ARG_BOOL, true, NULL }, { .name = NULL } };

const mv_command mv_commands_search[] = {
	{ .name = "SearchMessages", .args = args_search, .privilege = "login", .rows = search_messages,
	  .summary = "full-text search (query language of README.md) within the caller's folder privileges" },
	{ .name = NULL },
};
