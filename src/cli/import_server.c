/* cli/import_server: `mailvault import` through a running server.
 *
 * A server holds its data directory (archive/lock.c), so an import beside
 * it would be a second writer the server does not know of.  Instead the
 * import becomes what the server already runs for this: a temporary
 * FileSystem archiving profile (RunTemporaryProfile, sources/profiles.c),
 * asked for over the Administration API with the client of `cmd --server`
 * (remote.c), its progress followed by long poll and its end shown as the
 * local import shows it — the same summary line, refusals and exit status.
 *
 * Every import option maps onto a connector detail or is refused naming
 * the option: an import that silently read differently through a server
 * than without one would be worse than one that says what it cannot do.
 * The path is made absolute, since the server resolves it, not the shell.
 *
 * Where the server is: --server, else the URL the server wrote into
 * server.lock.  Whom it trusts: --cacert, else (for the server holding
 * this directory) the certificate its configuration names.  Who asks:
 * --user, else admin — the local import's own identity —, with the
 * password of `cmd --server` (file, $MAILVAULT_PASSWORD or a prompt). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SERVER_LOGS_REFUSALS 100  /* RunProfile's logOutput names the first 100 */

typedef struct server_counts {
	json_int_t imported, duplicates, malformed, refused, skipped, bytes;
} server_counts;

/* ---- the import's options as the connector's details ------------------------------------- */

/* The connector's format for --format, or NULL after setting why none. */
static const char *connector_format(const char *format, GError **error)
{
	if (!format || g_ascii_strcasecmp(format, "auto") == 0)
		return "auto";
	if (g_ascii_strcasecmp(format, "eml") == 0 || g_ascii_strcasecmp(format, "emldir") == 0)
		return "eml";
	if (g_ascii_strcasecmp(format, "mbox") == 0 || g_ascii_strcasecmp(format, "mboxrd") == 0)
		return "mbox";
	if (g_ascii_strcasecmp(format, "maildir") == 0)
		return "maildir";
	if (g_ascii_strcasecmp(format, "mboxo") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "--format %s: the server reads mbox files as mboxrd only; "
		            "an mboxo file is imported without a server running", format);
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "--format %s: the server's FileSystem connector has no such "
		            "format; it recognises PST/OST and .msg files by their content: leave --format out", format);
	return NULL;
}

static json_t *profile_details(const mv_cli_import_args *a, const char *path, GError **error)
{
	if (a->read_mailstore_headers || a->verify_signature) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: the server's FileSystem connector does not read "
		            "MailStore headers; import an export without a server running",
		            a->verify_signature ? "--verify-signature" : "--read-mailstore-headers");
		return NULL;
	}
	const char *format = connector_format(a->format, error);
	if (!format)
		return NULL;
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "path", path, "format", format, "includeSubfolders",
	                      a->no_subfolders ? "0" : "1", "targetArchive", a->archive, "targetFolder",
	                      a->folder ? a->folder : "");
	if (d && a->ext)
		json_object_set_new(d, "extensions", json_string(a->ext));
	return d;
}

/* RunTemporaryProfile's arguments: properties (JSON text) and raw. */
static GHashTable *run_arguments(json_t *details, const char *path)
{
	char *name = g_strdup_printf("mailvault import %s", path);
	json_t *props = json_pack("{s:s, s:s, s:s, s:O}", "name", name, "type", "I", "connector", "FileSystem",
	                          "details", details);
	g_free(name);
	char *text = props ? json_dumps(props, JSON_COMPACT) : NULL;
	json_decref(props);
	if (!text)
		return NULL;
	GHashTable *args = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_hash_table_insert(args, g_strdup("properties"), g_strdup(text));
	g_hash_table_insert(args, g_strdup("raw"), g_strdup("true"));
	free(text);
	return args;
}

/* ---- where the server is, and its certificate ------------------------------------------- */

/* The URL in server.lock's "pid N, https://host:port". */
static char *holder_url(const char *data_dir)
{
	char *who = mv_server_lock_holder(data_dir);
	if (!who)
		return NULL;
	const char *at = strstr(who, "https://");
	if (!at)
		at = strstr(who, "http://");
	char *url = at ? g_strdup(at) : NULL;
	g_free(who);
	return url;
}

/* The certificate the server's configuration in data_dir names, else the
 * one its first start made there; NULL: the system's CAs. */
static char *own_certificate(const char *data_dir)
{
	char *conf = g_build_filename(data_dir, "mailvault.conf", NULL);
	mv_service_config c = { 0 };
	GError *e = NULL;
	char *cert = NULL;
	if (mv_service_config_load(conf, &c, &e) == 0 && c.certificate && g_file_test(c.certificate, G_FILE_TEST_EXISTS))
		cert = g_strdup(c.certificate);
	else
		mv_log_debug("import: no certificate from %s: %s", conf, e ? e->message : "none configured");
	g_clear_error(&e);
	mv_service_config_clear(&c);
	g_free(conf);
	if (!cert) {
		cert = g_build_filename(data_dir, "certs", "server.crt", NULL);
		if (!g_file_test(cert, G_FILE_TEST_EXISTS))
			g_clear_pointer(&cert, g_free);
	}
	return cert;
}

/* ---- what the server answered ------------------------------------------------------------ */

typedef struct following {
	mv_cli_progress progress;
	bool show;
} following;

static void on_status(void *opaque, json_t *env)
{
	following *f = opaque;
	if (!f->show)
		return;
	json_t *percent = json_object_get(env, "percentProgress");
	const char *text = json_string_value(json_object_get(env, "statusText"));
	mv_cli_print_progress(&f->progress, json_is_integer(percent) ? (int)json_integer_value(percent) : -1,
	                      text ? text : "running");
}

static json_int_t count_of(json_t *result, const char *name)
{
	json_t *v = json_object_get(result, name);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* The counts from the result, or, for a run that stopped, from the last
 * line RunProfile logs ("archived N, already archived N, ..."). */
static bool counts_of(json_t *env, server_counts *c)
{
	json_t *result = json_object_get(env, "result");
	if (json_is_object(result)) {
		*c = (server_counts){ count_of(result, "archived"), count_of(result, "alreadyArchived"),
		                      count_of(result, "malformed"), count_of(result, "refused"),
		                      count_of(result, "skipped"), count_of(result, "bytes") };
		return true;
	}
	const char *log = json_string_value(json_object_get(env, "logOutput"));
	bool found = false;
	char **lines = g_strsplit(log ? log : "", "\n", -1);
	for (char **l = lines; *l; l++) {
		long long n[5];
		if (sscanf(*l, "archived %lld, already archived %lld, archived but malformed %lld, refused %lld, "
		           "not mail %lld", &n[0], &n[1], &n[2], &n[3], &n[4]) == 5) {
			*c = (server_counts){ n[0], n[1], n[2], n[3], n[4], 0 };
			found = true;
		}
	}
	g_strfreev(lines);
	return found;
}

/* The "refused: ORIGIN: REASON" lines of the server's log. */
static GPtrArray *refusal_lines(json_t *env)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	const char *log = json_string_value(json_object_get(env, "logOutput"));
	char **lines = g_strsplit(log ? log : "", "\n", -1);
	for (char **l = lines; *l; l++)
		if (g_str_has_prefix(*l, "refused: "))
			g_ptr_array_add(out, g_strdup(*l));
	g_strfreev(lines);
	return out;
}

static json_t *refusals_json(const GPtrArray *lines)
{
	json_t *a = json_array();
	for (guint i = 0; i < lines->len; i++) {
		const char *origin = (const char *)lines->pdata[i] + strlen("refused: ");
		const char *sep = strstr(origin, ": ");
		char *o = sep ? g_strndup(origin, (gsize)(sep - origin)) : g_strdup(origin);
		json_array_append_new(a, json_pack("{s:s, s:s}", "origin", o, "reason", sep ? sep + 2 : ""));
		g_free(o);
	}
	return a;
}

static void print_summary(json_t *env, const server_counts *c, bool json, const char *url, double secs)
{
	GPtrArray *refusals = refusal_lines(env);
	if (json) {
		json_t *skipped = json_object();
		if (c->skipped)
			json_object_set_new(skipped, "not mail", json_integer(c->skipped));
		json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:s}", "imported", c->imported, "duplicates",
		                      c->duplicates, "malformed", c->malformed, "refused", c->refused, "bytes", c->bytes,
		                      "seconds", (double)(int64_t)(secs * 1000.0 + 0.5) / 1000.0, "refusals",
		                      refusals_json(refusals), "skipped", skipped, "server", url);
		mv_cli_print_json(o);
		g_ptr_array_unref(refusals);
		return;
	}
	printf("imported %lld, already archived %lld, archived but malformed %lld, refused %lld (%.1f MB in %.1f s)\n",
	       (long long)c->imported, (long long)c->duplicates, (long long)c->malformed, (long long)c->refused,
	       (double)c->bytes / 1e6, secs);
	if (c->skipped)
		printf("skipped %lld items that are not mail\n", (long long)c->skipped);
	for (guint i = 0; i < refusals->len; i++)
		printf("%s\n", (const char *)refusals->pdata[i]);
	if (c->refused > (json_int_t)refusals->len)
		printf("(the server lists the first %d refusals; GetWorkerResults has every one)\n", SERVER_LOGS_REFUSALS);
	g_ptr_array_unref(refusals);
}

/* The summary and the exit status of the final envelope, as import.c
 * ends a local run. */
static int finish(json_t *env, const mv_cli_import_args *a, const char *url, double secs)
{
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	server_counts c = { 0 };
	bool counted = counts_of(env, &c);
	if (counted)
		print_summary(env, &c, a->json, url, secs);
	if (strcmp(status, "succeeded") == 0)
		return c.refused ? MV_EXIT_REFUSED : MV_EXIT_OK;
	if (strcmp(status, "cancelled") == 0) {
		fprintf(stderr, "mailvault: interrupted; everything counted above is archived — run the same import again "
		        "to continue\n");
		return MV_EXIT_FAIL;
	}
	const char *message = json_string_value(json_object_get(json_object_get(env, "error"), "message"));
	fprintf(stderr, "mailvault: %s\n", message ? message : "the server's import failed");
	return MV_EXIT_FAIL;
}

/* Says on stderr which server does the work, and why. */
static void announce(const char *data_dir, const char *server_opt, const char *url, const char *user)
{
	char *holder = server_opt ? NULL : mv_server_lock_holder(data_dir);
	if (holder)
		fprintf(stderr, "mailvault: %s is held by a running server (%s): importing through it as %s "
		        "(RunTemporaryProfile)\n", data_dir, holder, user);
	else
		fprintf(stderr, "mailvault: importing through the server at %s as %s (RunTemporaryProfile)\n", url, user);
	g_free(holder);
}

int mv_cli_import_via_server(const char *data_dir, const mv_cli_import_args *a, const char *path)
{
	GError *err = NULL;
	GHashTable *args = NULL;
	json_t *details = NULL, *env = NULL;
	char *url = a->server ? g_strdup(a->server) : holder_url(data_dir);
	char *cacert = a->cacert ? g_strdup(a->cacert) : a->server ? NULL : own_certificate(data_dir);
	char *source = g_canonicalize_filename(path, NULL);
	int status = MV_EXIT_USAGE;
	if (!url) {
		fprintf(stderr, "mailvault: %s is held by a running server that did not write its address into "
		        "server.lock: give it with --server https://HOST:PORT\n", data_dir);
		status = MV_EXIT_FAIL;
		goto out;
	}
	if (!(details = profile_details(a, source, &err))) {
		fprintf(stderr, "mailvault: %s\n", err->message);
		g_error_free(err);
		goto out;
	}
	status = MV_EXIT_FAIL;
	if (!(args = run_arguments(details, source))) {
		fprintf(stderr, "mailvault: cannot encode the import's properties\n");
		goto out;
	}
	const char *user = a->user ? a->user : "admin";
	if (!a->quiet)
		announce(data_dir, a->server, url, user);
	mv_cli_remote_opts opts = { .server = url, .user = user, .password_file = a->password_file, .cacert = cacert };
	following f = { .progress = MV_CLI_PROGRESS_INIT(isatty(STDERR_FILENO) != 0), .show = !a->quiet && !a->json };
	double started = mv_monotonic();
	status = mv_cli_remote_call(&opts, "RunTemporaryProfile", args, on_status, &f, &env);
	if (f.progress.tty && f.progress.last > 0)
		fputc('\n', stderr);
	if (status == 0)
		status = finish(env, a, url, mv_monotonic() - started);
out:
	json_decref(env);
	json_decref(details);
	if (args)
		g_hash_table_destroy(args);
	g_free(source);
	g_free(cacert);
	g_free(url);
	return status;
}
