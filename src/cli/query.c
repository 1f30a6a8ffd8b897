/* cli/query: the read side — search, show, stats, folders and
 * search-bench.  None of these writes to a store; they open stores read-only
 * and see committed data only (SQLite WAL snapshots), so they run safely
 * beside an import. */
#include "cli/cli.h"
#include "mime/mime.h"
#include "search/search.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- search --------------------------------------------------------------------- */

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
	gint64 limit = 50;
	gboolean json = FALSE;
	mv_access *access = NULL;
	GOptionEntry entries[] = {
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &archive, "search one user archive only", "NAME" },
		{ "as-user", 0, 0, G_OPTION_ARG_STRING, &as_user, "only what this user's folder privileges let it read",
		  "USER" },
		{ "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "at most N results (default 50, 0 = all)", "N" },
		{ "sort", 0, 0, G_OPTION_ARG_STRING, &sort_name, "date (newest first, default) or relevance", "ORDER" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print results as a JSON array", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("search", "QUERY...", "Find messages (the query language: README.md, \"Query language\"). A "
	                  "query that begins with '-' goes after '--': mailvault search -- '-spam razor'.", entries, &argc,
	                  &argv))
		return MV_EXIT_USAGE;
	int status = MV_EXIT_USAGE;
	mv_search_options opts = { .archive = archive, .limit = limit };
	mv_instance *inst = NULL;
	mv_searcher *searcher = NULL;
	char *query = NULL;
	if (argc < 2 || limit < 0 || !parse_sort(sort_name, &opts.sort)) {
		fprintf(stderr, "mailvault: search needs a QUERY, --limit >= 0 and --sort date|relevance\n");
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
	status = MV_EXIT_OK;
out:
	mv_searcher_close(&searcher);
	mv_access_free(access);
	mv_instance_close(&inst);
	g_free(query);
	g_free(as_user);
	g_free(archive);
	g_free(sort_name);
	return status;
}

/* ---- show ------------------------------------------------------------------------- */

/* A header on one line of its own: a line break inside the value (left by
 * folding, or an encoded-word that decodes to one) becomes a space. */
static void print_header(const char *name, const char *value)
{
	char *line = mv_utf8_sanitize(value ? value : "", -1);
	g_strdelimit(line, "\r\n", ' ');
	printf("%s: %s\n", name, line);
	g_free(line);
}

static const char *view_header(const mv_message_view *v, const char *name)
{
	for (guint i = 0; i + 1 < v->headers->len; i += 2)
		if (g_ascii_strcasecmp(v->headers->pdata[i], name) == 0)
			return v->headers->pdata[i + 1];
	return NULL;
}

/* The Date header when it is a date; else the date the archive gave the
 * message (from Received, or the archive time), said to be that. */
static void print_date(const mv_message_view *v, int64_t archive_date)
{
	const char *header = view_header(v, "Date");
	int64_t t = archive_date;
	bool from_header = header && mv_date_parse(header, &t);
	char *date = mv_format_time_utc(t);
	char *line = g_strconcat(date, from_header ? "" : " (no valid Date header)", NULL);
	print_header("Date", line);
	g_free(line);
	g_free(date);
}

/* The text line by line: each line is sanitised (mv_utf8_sanitize takes
 * control characters, the line feed among them, so it is never given the
 * whole text). */
static void print_text(const GString *text)
{
	putchar('\n');
	const char *end = text->str + text->len;
	for (const char *line = text->str; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
		char *clean = mv_utf8_sanitize(line, (gssize)n);
		printf("%s\n", clean);
		g_free(clean);
		line += n + 1;
	}
}

/* Decoded headers one per line, attachments one per line, and with
 * with_text the body text with its own lines and paragraphs: the reader's
 * view of the message (mime/view.c), not the index's one-stream text. */
static void print_readable(const GByteArray *raw, int64_t archive_date, bool with_text)
{
	mv_message_view *v = mv_message_view_new(raw->data, raw->len);
	print_header("From", v->from);
	print_header("To", v->to);
	if (*v->cc)
		print_header("Cc", v->cc);
	print_date(v, archive_date);
	print_header("Subject", v->subject);
	print_header("Message-ID", v->message_id);
	for (guint i = 0; i < v->attachments->len; i++) {
		const mv_view_part *a = v->attachments->pdata[i];
		char *desc = g_strdup_printf("%s (%s, %lld bytes)", *a->name ? a->name : "unnamed", a->content_type,
		                             (long long)a->size);
		print_header("Attachment", desc);
		g_free(desc);
	}
	if (with_text)
		print_text(v->text);
	mv_message_view_free(&v);
}

/* One line per message, as sha256sum prints them: "HASH  ID".  A message
 * that cannot be read is named on stderr with the reason, and the others
 * go on; so one process fingerprints thousands of messages (to compare an
 * archive with its source files) instead of one `show` each. */
static int show_sha256(const mv_cli_globals *g, int n, char **ids)
{
	for (int i = 0; i < n; i++) {
		int store_id;
		int64_t num;
		if (!mv_message_id_parse(ids[i], &store_id, &num)) {
			fprintf(stderr, "mailvault: '%.100s' is not a message ID of the form STORE:NUMBER\n", ids[i]);
			return MV_EXIT_USAGE;
		}
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	int status = MV_EXIT_OK;
	for (int i = 0; i < n; i++) {
		int store_id;
		int64_t num;
		mv_message_id_parse(ids[i], &store_id, &num);
		GError *err = NULL;
		GByteArray *raw = NULL;
		mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
		if (!s || mv_store_read_message(s, num, &raw, &err) < 0) {
			fprintf(stderr, "mailvault: %s: %s\n", ids[i], err->message);
			g_error_free(err);
			status = MV_EXIT_FAIL;
		} else {
			char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, raw->data, raw->len);
			printf("%s  %s\n", hex, ids[i]);
			g_free(hex);
		}
		if (raw)
			g_byte_array_unref(raw);
		mv_store_close(&s);
	}
	mv_instance_close(&inst);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "mailvault: writing to stdout failed\n");
		status = MV_EXIT_FAIL;
	}
	return status;
}

int mv_cli_show(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean headers = FALSE, text = FALSE, sha256 = FALSE;
	GOptionEntry entries[] = {
		{ "headers", 0, 0, G_OPTION_ARG_NONE, &headers, "decoded main headers instead of the raw bytes", NULL },
		{ "text", 0, 0, G_OPTION_ARG_NONE, &text, "decoded headers and the body text", NULL },
		{ "sha256", 0, 0, G_OPTION_ARG_NONE, &sha256,
		  "the SHA-256 of each message's bytes instead (one line per ID, as sha256sum prints)", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("show", "ID...", "Print a message exactly as archived (its hash is checked first).",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (sha256 && argc >= 2 && !headers && !text)
		return show_sha256(g, argc - 1, argv + 1);
	int store_id;
	int64_t num;
	if (argc != 2 || sha256 || !mv_message_id_parse(argv[1], &store_id, &num)) {
		fprintf(stderr, "mailvault: show needs one message ID of the form STORE:NUMBER (as search prints); "
		        "--sha256 takes several, and neither --headers nor --text\n");
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	GByteArray *raw = NULL;
	mv_store *s = mv_instance_open_store(inst, store_id, MV_STORE_READ, &err);
	mv_store_message m = { 0 };
	int status = MV_EXIT_OK;
	if (!s || mv_store_read_message(s, num, &raw, &err) < 0 ||
	    ((headers || text) && mv_store_message_get(s, num, &m, &err) < 0)) {
		status = mv_cli_fail(err);
	} else if (headers || text) {
		print_readable(raw, m.date, text);
	} else if (fwrite(raw->data, 1, raw->len, stdout) != raw->len || fflush(stdout) != 0) {
		fprintf(stderr, "mailvault: writing to stdout failed\n");
		status = MV_EXIT_FAIL;
	}
	if (raw)
		g_byte_array_unref(raw);
	mv_store_message_clear(&m);
	mv_store_close(&s);
	mv_instance_close(&inst);
	return status;
}

/* ---- stats and folders --------------------------------------------------------------- */

static json_t *store_stats_json(const mv_store_info *info, const mv_store_stats *st)
{
	return json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}}",
	                 "id", info->id, "name", info->name, "state", info->state,
	                 "messages", (json_int_t)st->messages, "contents", (json_int_t)st->contents,
	                 "rawBytes", (json_int_t)st->raw_bytes,
	                 "disk", "content", (json_int_t)st->disk_content, "db", (json_int_t)st->disk_db,
	                 "index", (json_int_t)st->disk_index);
}

static void print_stats_line(const mv_store_info *info, const mv_store_stats *st)
{
	uint64_t disk = st->disk_content + st->disk_db + st->disk_index;
	printf("store %d %s (%s): %lld messages, %lld distinct, %.1f MB raw; on disk %.1f MB"
	       " (content %.1f, db %.1f, index %.1f)%s\n",
	       info->id, info->name, info->state, (long long)st->messages, (long long)st->contents,
	       st->raw_bytes / 1e6, disk / 1e6, st->disk_content / 1e6, st->disk_db / 1e6, st->disk_index / 1e6,
	       st->raw_bytes > 0 ? "" : "");
}

int mv_cli_stats(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("stats", "", "Message counts and disk use per store.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	GPtrArray *infos = mv_instance_stores(inst, &err);
	if (!infos) {
		mv_instance_close(&inst);
		return mv_cli_fail(err);
	}
	json_t *stores = json_array();
	mv_store_stats total = { 0 };
	int status = MV_EXIT_OK;
	for (guint i = 0; i < infos->len; i++) {
		const mv_store_info *info = infos->pdata[i];
		mv_store *s = mv_instance_open_store(inst, info->id, MV_STORE_READ, &err);
		mv_store_stats st = { 0 };
		if (!s || mv_store_get_stats(s, &st, &err) < 0) {
			/* One store that cannot be read (locked, in error, files
			 * missing) must not hide the others: it is named with its
			 * reason, left out of the total, and the exit status is 1. */
			if (json)
				json_array_append_new(stores, json_pack("{s:i, s:s, s:s, s:s}", "id", info->id, "name", info->name,
				                                        "state", info->state, "error", err->message));
			else
				printf("store %d %s (%s): not read: %s\n", info->id, info->name, info->state, err->message);
			mv_log_warn("store %d (%s) left out: %s", info->id, info->name, err->message);
			g_clear_error(&err);
			mv_store_close(&s);
			status = MV_EXIT_FAIL;
			continue;
		}
		mv_store_close(&s);
		total.messages += st.messages;
		total.contents += st.contents;
		total.raw_bytes += st.raw_bytes;
		total.disk_content += st.disk_content + st.disk_db + st.disk_index;
		if (json)
			json_array_append_new(stores, store_stats_json(info, &st));
		else
			print_stats_line(info, &st);
	}
	if (json) {
		json_t *o = json_pack("{s:o, s:{s:I, s:I, s:I, s:I}}", "stores", json_incref(stores), "total",
		                      "messages", (json_int_t)total.messages, "contents", (json_int_t)total.contents,
		                      "rawBytes", (json_int_t)total.raw_bytes, "diskBytes", (json_int_t)total.disk_content);
		mv_cli_print_json(o);
	} else {
		printf("total%s: %lld messages, %.1f MB raw, %.1f MB on disk (%.0f%% of raw)\n",
		       status == MV_EXIT_OK ? "" : " (of the stores read)", (long long)total.messages, total.raw_bytes / 1e6,
		       total.disk_content / 1e6,
		       total.raw_bytes ? 100.0 * (double)total.disk_content / (double)total.raw_bytes : 0.0);
	}
	json_decref(stores);
	g_ptr_array_free(infos, TRUE);
	mv_instance_close(&inst);
	return status;
}

static void merge_folders(GHashTable *acc, GPtrArray *order, GPtrArray *folders)
{
	for (guint i = 0; i < folders->len; i++) {
		mv_folder_stats *f = folders->pdata[i];
		char *key = g_strdup_printf("%s\x1f%s", f->archive, f->path);
		mv_folder_stats *have = g_hash_table_lookup(acc, key);
		if (have) {
			have->messages += f->messages;
			have->bytes += f->bytes;
			g_free(key);
			continue;
		}
		have = g_new0(mv_folder_stats, 1);
		have->archive = g_strdup(f->archive);
		have->path = g_strdup(f->path);
		have->messages = f->messages;
		have->bytes = f->bytes;
		g_hash_table_insert(acc, key, have);
		g_ptr_array_add(order, have);
	}
}

static gint folder_order(gconstpointer a, gconstpointer b)
{
	const mv_folder_stats *x = *(mv_folder_stats *const *)a, *y = *(mv_folder_stats *const *)b;
	int c = strcmp(x->archive, y->archive);
	return c ? c : strcmp(x->path, y->path);
}

static void print_folders(GPtrArray *order, bool json)
{
	g_ptr_array_sort(order, folder_order);
	json_t *arr = json_array();
	for (guint i = 0; i < order->len; i++) {
		const mv_folder_stats *f = order->pdata[i];
		if (json)
			/* the names GetFolderStatistics answers with */
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "archive", f->archive, "folder", f->path,
			                                     "count", (json_int_t)f->messages, "size", (json_int_t)f->bytes));
		else
			printf("%s%s%s  %lld  %lld\n", f->archive, *f->path ? "/" : "", f->path,
			       (long long)f->messages, (long long)f->bytes);
	}
	if (json)
		mv_cli_print_json(arr);
	else
		json_decref(arr);
}

int mv_cli_folders(const mv_cli_globals *g, int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("folders", "[ARCHIVE]", "Archives and folders with message counts and sizes.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc > 2) {
		fprintf(stderr, "mailvault: folders takes at most one ARCHIVE\n");
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	if (!inst)
		return MV_EXIT_FAIL;
	GError *err = NULL;
	mv_searcher *searcher = mv_searcher_open(inst, &err);
	if (!searcher) {
		mv_instance_close(&inst);
		return mv_cli_fail(err);
	}
	GHashTable *acc = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)mv_folder_stats_free);
	GPtrArray *order = g_ptr_array_new();
	int status = MV_EXIT_OK;
	GPtrArray *infos = mv_instance_stores(inst, &err);
	for (guint i = 0; infos && i < infos->len && status == MV_EXIT_OK; i++) {
		mv_store *s = mv_searcher_store(searcher, ((mv_store_info *)infos->pdata[i])->id);
		GPtrArray *folders = NULL;
		if (!s)
			continue;
		if (mv_store_list_folders(s, argc == 2 ? argv[1] : NULL, &folders, &err) < 0) {
			status = mv_cli_fail(err);
			break;
		}
		merge_folders(acc, order, folders);
		g_ptr_array_free(folders, TRUE);
	}
	if (!infos)
		status = mv_cli_fail(err);
	if (status == MV_EXIT_OK)
		print_folders(order, json);
	if (infos)
		g_ptr_array_free(infos, TRUE);
	g_ptr_array_free(order, TRUE);
	g_hash_table_destroy(acc);
	mv_searcher_close(&searcher);
	mv_instance_close(&inst);
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
	gint64 limit = 50;
	char *archive = NULL;
	GOptionEntry entries[] = {
		{ "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "runs per query (default 20)", "N" },
		{ "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "result limit per query (default 50)", "N" },
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &archive, "scope every query to one archive", "NAME" },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("search-bench", "FILE", "Time each query line of FILE, warm, in one process.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc != 2 || rounds < 1) {
		fprintf(stderr, "mailvault: search-bench needs a FILE of queries and --rounds >= 1\n");
		g_free(archive);
		return MV_EXIT_USAGE;
	}
	GError *err = NULL;
	char *content = NULL;
	if (!g_file_get_contents(argv[1], &content, NULL, &err)) {
		g_free(archive);
		return mv_cli_fail(err);
	}
	mv_instance *inst = mv_cli_open_instance(g);
	mv_searcher *searcher = inst ? mv_searcher_open(inst, &err) : NULL;
	int status = MV_EXIT_FAIL;
	if (inst && !searcher)
		mv_cli_fail(err);
	mv_search_options opts = { .archive = archive, .limit = limit };
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
	mv_searcher_close(&searcher);
	mv_instance_close(&inst);
	return status;
}
