/* cli/search: `mailvault search` and `mailvault search-bench`, which times
 * the same searches in one warm process (for bench/) and reports their
 * errors the same way.  Like every reader they open stores read-only and see
 * committed data only (SQLite WAL snapshots), so they run safely beside an
 * import. */
#include "cli/cli.h"
#include "search/search.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void print_hits(const GPtrArray *hits, bool json)
{
	if (json) {
		json_t *arr = json_array();
		for (guint i = 0; i < hits->len; i++)
			json_array_append_new(arr, mv_search_hit_json(hits->pdata[i]));
		mv_cli_print_json(arr);
		return;
	}
	for (guint i = 0; i < hits->len; i++) {
		const mv_search_hit *h = hits->pdata[i];
		char *date = mv_format_time_utc(h->date);
		printf("%d:%lld  %s  %s  %s  [%s%s%s]\n", h->store_id, (long long)h->number, date,
		       h->from, h->subject, h->archive, *h->folder ? "/" : "", h->folder);
		g_free(date);
	}
}

static bool parse_sort(const char *name, mv_sort *sort)
{
	if (!name || strcmp(name, "date") == 0)
		*sort = MV_SORT_DATE;
	else if (strcmp(name, "relevance") == 0)
		*sort = MV_SORT_RELEVANCE;
	else
		return false;
	return true;
}

/* --max-prefix-mb, as serve's [search] max_prefix_mb. */
#define MAX_PREFIX_ENTRY(mb)                                                                                   \
	{ "max-prefix-mb", 0, 0, G_OPTION_ARG_INT64, mb,                                                       \
	  "refuse a prefix (word*) whose words fill more than N MB of a store's index (default 16, 0 = no limit)", \
	  "N" }

static bool set_max_prefix(gint64 mb)
{
	if (mb < 0 || mb > 1024 * 1024)
		return false;
	mv_search_set_max_prefix_bytes(mb << 20);
	return true;
}

static int report_search_error(GError *err)
{
	bool query_error = err->domain == MV_ERROR && err->code == MV_ERR_INVALID;
	fprintf(stderr, "mailvault: %s%s\n", query_error ? "invalid query: " : "", err->message);
	g_error_free(err);
	return query_error ? MV_EXIT_USAGE : MV_EXIT_FAIL;
}

int mv_cli_search(const mv_cli_globals *g, int argc, char **argv)
{
	char *archive = NULL, *sort_name = NULL, *as_user = NULL;
	gint64 limit = 50, max_prefix_mb = MV_DEFAULT_SEARCH_MAX_PREFIX_MB;
	gboolean json = FALSE;
	mv_access *access = NULL;
	GOptionEntry entries[] = {
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &archive, "search one user archive only", "NAME" },
		{ "as-user", 0, 0, G_OPTION_ARG_STRING, &as_user, "only what this user's folder privileges let it read",
		  "USER" },
		{ "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "at most N results (default 50, 0 = all)", "N" },
		{ "sort", 0, 0, G_OPTION_ARG_STRING, &sort_name, "date (newest first, default) or relevance", "ORDER" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print results as a JSON array", NULL },
		MAX_PREFIX_ENTRY(&max_prefix_mb),
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("search", "QUERY...", "Find messages (the query language: README.md, \"Query language\"). A "
	                  "query that begins with '-' goes after '--': mailvault search -- '-spam razor'.", entries, &argc,
	                  &argv))
		return MV_EXIT_USAGE;
	int status = MV_EXIT_USAGE;
	mv_search_coverage coverage;
	mv_search_options opts = { .archive = archive, .limit = limit, .coverage = &coverage };
	mv_instance *inst = NULL;
	mv_searcher *searcher = NULL;
	char *query = NULL;
	if (argc < 2 || limit < 0 || !parse_sort(sort_name, &opts.sort) || !set_max_prefix(max_prefix_mb)) {
		fprintf(stderr, "mailvault: search needs a QUERY, --limit >= 0, --sort date|relevance and --max-prefix-mb "
		        ">= 0\n");
		goto out;
	}
	query = g_strjoinv(" ", argv + 1);
	status = MV_EXIT_FAIL;
	GError *err = NULL;
	if (!(inst = mv_cli_open_instance(g)))
		goto out;
	if (as_user && !(opts.access = access = mv_access_load(inst, as_user, &err))) {
		status = mv_cli_fail(err);
		goto out;
	}
	if (!(searcher = mv_searcher_open(inst, &err))) {
		status = mv_cli_fail(err);
		goto out;
	}
	GPtrArray *hits = NULL;
	if (mv_searcher_run(searcher, query, &opts, &hits, &err) < 0) {
		status = report_search_error(err);
		goto out;
	}
	print_hits(hits, json);
	g_ptr_array_free(hits, TRUE);
	/* After the hits, on stderr: --json's output stays one array, and the
	 * note is the last thing a reader of the terminal sees. */
	char *note = mv_search_coverage_note(&coverage);
	if (note)
		fprintf(stderr, "mailvault: warning: %s\n", note);
	g_free(note);
	status = MV_EXIT_OK;
out:
	mv_searcher_close(&searcher);
	mv_access_free(&access);
	mv_instance_close(&inst);
	g_free(query);
	g_free(as_user);
	g_free(archive);
	g_free(sort_name);
	return status;
}

/* ---- search-bench ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(GArray *v, double pct)
{
	if (v->len == 0)
		return 0;
	qsort(v->data, v->len, sizeof(double), cmp_double);
	size_t idx = (size_t)(pct / 100.0 * (double)(v->len - 1) + 0.5);
	return g_array_index(v, double, idx);
}

static json_t *bench_query(mv_searcher *searcher, const char *q, const mv_search_options *opts, int rounds,
                           GArray *all, GError **error)
{
	GArray *times = g_array_new(FALSE, FALSE, sizeof(double));
	int64_t hits_n = 0;
	for (int r = 0; r < rounds; r++) {
		GPtrArray *hits = NULL;
		double t0 = mv_monotonic();
		if (mv_searcher_run(searcher, q, opts, &hits, error) < 0) {
			g_array_free(times, TRUE);
			return NULL;
		}
		double ms = (mv_monotonic() - t0) * 1000.0;
		hits_n = hits->len;
		g_ptr_array_free(hits, TRUE);
		g_array_append_val(times, ms);
		g_array_append_val(all, ms);
	}
	json_t *o = json_pack("{s:s, s:I, s:f, s:f}", "query", q, "hits", (json_int_t)hits_n,
	                      "p50_ms", percentile(times, 50), "p95_ms", percentile(times, 95));
	g_array_free(times, TRUE);
	return o;
}

int mv_cli_search_bench(const mv_cli_globals *g, int argc, char **argv)
{
	gint rounds = 20;
	gint64 limit = 50, max_prefix_mb = MV_DEFAULT_SEARCH_MAX_PREFIX_MB;
	char *archive = NULL, *sort_name = NULL, *as_user = NULL;
	GOptionEntry entries[] = {
		{ "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "runs per query (default 20)", "N" },
		{ "as-user", 0, 0, G_OPTION_ARG_STRING, &as_user, "search as this user, within its folder privileges",
		  "USER" },
		{ "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "result limit per query (default 50)", "N" },
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &archive, "scope every query to one archive", "NAME" },
		{ "sort", 0, 0, G_OPTION_ARG_STRING, &sort_name, "date (newest first, default) or relevance, as search",
		  "ORDER" },
		MAX_PREFIX_ENTRY(&max_prefix_mb),
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("search-bench", "FILE", "Time each query line of FILE, warm, in one process.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	mv_search_options opts = { .archive = archive, .limit = limit };
	if (argc != 2 || rounds < 1 || !parse_sort(sort_name, &opts.sort) || !set_max_prefix(max_prefix_mb)) {
		fprintf(stderr, "mailvault: search-bench needs a FILE of queries, --rounds >= 1, --sort date|relevance and "
		        "--max-prefix-mb >= 0\n");
		g_free(archive);
		g_free(sort_name);
		g_free(as_user);
		return MV_EXIT_USAGE;
	}
	g_free(sort_name);
	GError *err = NULL;
	char *content = NULL;
	if (!g_file_get_contents(argv[1], &content, NULL, &err)) {
		g_free(archive);
		g_free(as_user);
		return mv_cli_fail(err);
	}
	mv_instance *inst = mv_cli_open_instance(g);
	mv_access *access = NULL;
	if (inst && as_user && !(opts.access = access = mv_access_load(inst, as_user, &err))) {
		mv_cli_fail(err);
		mv_instance_close(&inst);
	}
	mv_searcher *searcher = inst ? mv_searcher_open(inst, &err) : NULL;
	int status = MV_EXIT_FAIL;
	if (inst && !searcher)
		mv_cli_fail(err);
	json_t *list = json_array();
	GArray *all = g_array_new(FALSE, FALSE, sizeof(double));
	char **lines = g_strsplit(content, "\n", -1);
	for (char **l = lines; searcher && *l; l++) {
		char *q = g_strstrip(*l);
		if (!*q || *q == '#')
			continue;
		json_t *o = bench_query(searcher, q, &opts, rounds, all, &err);
		if (!o) {
			status = report_search_error(err);
			goto out;
		}
		json_array_append_new(list, o);
	}
	if (searcher) {
		json_t *o = json_pack("{s:O, s:f, s:f}", "queries", list, "p50_ms", percentile(all, 50), "p95_ms", percentile(all, 95));
		mv_cli_print_json(o);
		status = MV_EXIT_OK;
	}
out:
	g_strfreev(lines);
	g_array_free(all, TRUE);
	json_decref(list);
	g_free(content);
	g_free(archive);
	g_free(as_user);
	mv_searcher_close(&searcher);
	mv_access_free(&access);
	mv_instance_close(&inst);
	return status;
}
