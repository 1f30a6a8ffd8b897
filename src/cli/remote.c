/* cli/remote: `mailvault cmd --server URL --user NAME ...` — the
 * command line as a client of a running server's Administration API
 * (design.md §9).
 *
 * While a server holds a data directory, local commands may not write to it
 * (archive/lock.c); this is the way through the server instead, and the way
 * to administer a server on another machine.  This file owns everything
 * about talking to the server: the URL check (plain http only to this
 * machine), the password (file, environment or a prompt without echo; never
 * printed), one libcurl handle per run so that the connection is kept
 * alive, the form encoding of the arguments, the checks on the answer, the
 * long poll of get-status with progress on stderr, Ctrl-C as cancel-async,
 * and what each HTTP status means for the message and the exit status.
 *
 * The words after the function name go through mv_command_words_to_args like
 * the local path's, so both accept the same syntax; the function is not
 * looked up locally, since the server decides what it knows.
 * mv_cli_remote_call lends the call and its long poll, without printing the
 * envelope, to `import` going through a server (import_server.c). */
#include "cli/cli.h"
#include "commands/commands.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ANSWER ((size_t)256 * 1024 * 1024)  /* bigger answers are refused */
#define STATUS_WAIT_MS 5000L                     /* get-status millisecondsTimeout */
#define STATUS_SLACK_MS 30000L                   /* on top of it, per poll */
#define CONNECT_TIMEOUT_S 10L

enum { RC_DROPPED = -1 };  /* a request given up on for Ctrl-C */

typedef struct remote {
	CURL *curl;
	char *base;                    /* the server URL without trailing slashes */
	const char *user;
	const char *cacert;            /* --cacert, or NULL: the system's CAs */
	GByteArray *answer;            /* the body of the last answer */
	bool too_big;                  /* it passed MAX_ANSWER and was dropped */
	bool drop_on_cancel;           /* Ctrl-C may abort the request in flight */
	bool global_init;              /* curl_global_init succeeded */
	char errbuf[CURL_ERROR_SIZE];  /* libcurl's text of the last failure */
} remote;

/* ---- the server URL and the password ------------------------------------------ */

static bool is_this_machine(const char *host)
{
	return g_ascii_strcasecmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
	       strcmp(host, "[::1]") == 0;
}

/* https://host:port, or http:// to this machine only (the password would
 * cross the network in clear). */
static bool check_server_url(const char *url)
{
	CURLU *u = curl_url();
	if (!u) {
		fprintf(stderr, "mailvault: out of memory\n");
		return false;
	}
	char *scheme = NULL, *host = NULL;
	bool ok = false;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (uc != CURLUE_OK)
		fprintf(stderr, "mailvault: --server %s: not a URL like https://host:8463 (%s)\n", url, curl_url_strerror(uc));
	else if (g_ascii_strcasecmp(scheme, "https") == 0)
		ok = true;
	else if (g_ascii_strcasecmp(scheme, "http") != 0)
		fprintf(stderr, "mailvault: --server %s: use https://host:port\n", url);
	else if (!(ok = is_this_machine(host)))
		fprintf(stderr, "mailvault: --server %s: plain http would send the password unencrypted; use https:// "
		        "(http:// is accepted only for localhost, 127.0.0.1 and ::1)\n", url);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static void wipe_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	g_free(secret);
}

/* The first line of the file, without its line end. */
static char *password_from_file(const char *path)
{
	char *text = NULL;
	gsize len = 0;
	GError *err = NULL;
	if (!g_file_get_contents(path, &text, &len, &err)) {
		fprintf(stderr, "mailvault: --password-file: %s\n", err->message);
		g_error_free(err);
		return NULL;
	}
	size_t n = strcspn(text, "\n");
	if (n > 0 && text[n - 1] == '\r')
		n--;
	char *pw = g_strndup(text, n);
	explicit_bzero(text, len);
	g_free(text);
	if (!*pw) {
		fprintf(stderr, "mailvault: --password-file %s: the first line is empty\n", path);
		g_free(pw);
		return NULL;
	}
	return pw;
}

/* The terminal's settings while the prompt has echo off, restored if
 * Ctrl-C ends the program at the prompt. */
static struct termios prompt_saved;
static int prompt_fd = -1;

static void on_sigint_at_prompt(int sig)
{
	if (prompt_fd >= 0)
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Prompts and reads one line from the terminal with echo off; NULL on end
 * of input. Echo goes off before the prompt appears: TCSAFLUSH discards
 * what was typed so far, and what is typed after the prompt must survive. */
static char *read_line_noecho(FILE *tty, int fd, const char *user)
{
	struct termios quiet = prompt_saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	struct sigaction sa = { .sa_handler = on_sigint_at_prompt }, old;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, &old) < 0)
		mv_log_debug("prompt: no Ctrl-C handler: %s", g_strerror(errno));
	prompt_fd = fd;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		fprintf(stderr, "mailvault: cannot turn the terminal's echo off: %s\n", g_strerror(errno));
		prompt_fd = -1;
		sigaction(SIGINT, &old, NULL);
		return NULL;
	}
	fprintf(tty, "Password for %s: ", user);
	fflush(tty);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, tty);
	if (tcsetattr(fd, TCSANOW, &prompt_saved) < 0)
		fprintf(stderr, "mailvault: cannot turn the terminal's echo back on: %s\n", g_strerror(errno));
	prompt_fd = -1;
	if (sigaction(SIGINT, &old, NULL) < 0)
		mv_log_warn("could not restore the Ctrl-C handler: %s", g_strerror(errno));
	fputc('\n', tty);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = 0;
	char *pw = g_strdup(line);
	explicit_bzero(line, cap);
	free(line);
	return pw;
}

static char *password_prompt(const char *user)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || tcgetattr(fd, &prompt_saved) < 0) {
		fprintf(stderr, "mailvault: no password for %s: give one with --password-file FILE (its first line) "
		        "or in $MAILVAULT_PASSWORD, or run on a terminal to be asked\n", user);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	FILE *tty = fdopen(fd, "r+");
	if (!tty) {
		fprintf(stderr, "mailvault: /dev/tty: %s\n", g_strerror(errno));
		close(fd);
		return NULL;
	}
	char *pw = read_line_noecho(tty, fd, user);
	fclose(tty);
	if (!pw)
		fprintf(stderr, "mailvault: no password given\n");
	return pw;
}

static char *get_password(const mv_cli_remote_opts *o)
{
	if (o->password_file)
		return password_from_file(o->password_file);
	const char *env = g_getenv("MAILVAULT_PASSWORD");
	if (env && *env)
		return g_strdup(env);
	return password_prompt(o->user);
}

/* ---- the libcurl handle ------------------------------------------------------- */

static size_t on_data(char *data, size_t size, size_t n, void *opaque)
{
	remote *r = opaque;
	size_t len = size * n;
	if (len > MAX_ANSWER - r->answer->len) {
		r->too_big = true;
		return 0;  /* libcurl fails the transfer with CURLE_WRITE_ERROR */
	}
	g_byte_array_append(r->answer, (const guint8 *)data, (guint)len);
	return len;
}

static int on_transfer(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	remote *r = opaque;
	return r->drop_on_cancel && mv_cli_sigint_seen() ? 1 : 0;
}

#define SETOPT(r, opt, value) do { \
		CURLcode c_ = curl_easy_setopt((r)->curl, (opt), (value)); \
		if (c_ != CURLE_OK) { \
			fprintf(stderr, "mailvault: libcurl refuses %s: %s\n", #opt, curl_easy_strerror(c_)); \
			return false; \
		} \
	} while (0)

/* How the server's certificate is checked. */
static bool setup_tls(remote *r, const mv_cli_remote_opts *o)
{
	if (o->insecure) {
		fprintf(stderr, "mailvault: warning: --insecure: the server's certificate is not verified; whoever sits "
		        "between here and %s can read the password\n", r->base);
		SETOPT(r, CURLOPT_SSL_VERIFYPEER, 0L);
		SETOPT(r, CURLOPT_SSL_VERIFYHOST, 0L);
		return true;
	}
	if (o->cacert) {
		/* That certificate and nothing else. */
		SETOPT(r, CURLOPT_CAINFO, o->cacert);
		SETOPT(r, CURLOPT_CAPATH, (const char *)NULL);
	}
	SETOPT(r, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(r, CURLOPT_SSL_VERIFYHOST, 2L);
	return true;
}

/* What stays the same for every request of the run. */
static bool setup_handle(remote *r, const mv_cli_remote_opts *o, const char *password)
{
	SETOPT(r, CURLOPT_ERRORBUFFER, r->errbuf);
	SETOPT(r, CURLOPT_PROTOCOLS_STR, "https,http");
	SETOPT(r, CURLOPT_USERAGENT, "mailvault/" MV_VERSION);
	SETOPT(r, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	SETOPT(r, CURLOPT_USERNAME, o->user);
	SETOPT(r, CURLOPT_PASSWORD, password);
	SETOPT(r, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	SETOPT(r, CURLOPT_POST, 1L);
	SETOPT(r, CURLOPT_WRITEFUNCTION, on_data);
	SETOPT(r, CURLOPT_WRITEDATA, r);
	SETOPT(r, CURLOPT_XFERINFOFUNCTION, on_transfer);
	SETOPT(r, CURLOPT_XFERINFODATA, r);
	SETOPT(r, CURLOPT_NOPROGRESS, 0L);
	return setup_tls(r, o);
}

static void remote_close(remote *r)
{
	if (r->curl)
		curl_easy_cleanup(r->curl);
	if (r->answer)
		g_byte_array_unref(r->answer);
	if (r->global_init)
		curl_global_cleanup();
	g_free(r->base);
	memset(r, 0, sizeof *r);
}

/* Gets the password and prepares the handle; false after printing why not. */
static bool remote_open(remote *r, const mv_cli_remote_opts *o)
{
	memset(r, 0, sizeof *r);
	r->base = g_strdup(o->server);
	for (size_t n = strlen(r->base); n > 0 && r->base[n - 1] == '/'; n--)
		r->base[n - 1] = 0;
	r->user = o->user;
	r->cacert = o->insecure ? NULL : o->cacert;
	r->answer = g_byte_array_new();
	CURLcode gc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (gc != CURLE_OK) {
		fprintf(stderr, "mailvault: libcurl: %s\n", curl_easy_strerror(gc));
		return false;
	}
	r->global_init = true;
	r->curl = curl_easy_init();
	if (!r->curl) {
		fprintf(stderr, "mailvault: libcurl: cannot create a handle\n");
		return false;
	}
	char *password = get_password(o);
	if (!password)
		return false;
	bool ok = setup_handle(r, o, password);
	wipe_free(password);  /* libcurl keeps its own copy */
	return ok;
}

/* ---- one request ------------------------------------------------------------------ */

/* Appends "&name=value", both percent-encoded. */
static bool form_add(remote *r, GString *form, const char *name, const char *value)
{
	if (strlen(name) > INT_MAX || strlen(value) > INT_MAX)
		return false;
	char *n = curl_easy_escape(r->curl, name, (int)strlen(name));
	char *v = curl_easy_escape(r->curl, value, (int)strlen(value));
	if (n && v)
		g_string_append_printf(form, "%s%s=%s", form->len ? "&" : "", n, v);
	curl_free(n);
	curl_free(v);
	return n && v;
}

static json_t *parse_answer(const GByteArray *a)
{
	const char *p = (const char *)a->data;
	size_t n = a->len;
	if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
		p += 3;
		n -= 3;
	}
	if (n == 0)
		return NULL;
	json_error_t jerr;
	return json_loadb(p, n, 0, &jerr);
}

static bool is_envelope(json_t *j)
{
	return json_is_object(j) && json_is_string(json_object_get(j, "statusCode"));
}

/* A server's first start makes a self-signed certificate that no system
 * trusts: say where it is and how to pass it (serve.c writes it as
 * certs/server.crt of the data directory). */
static void certificate_hint(remote *r)
{
	if (!r->cacert)
		fprintf(stderr, "mailvault: the server's certificate is not trusted here; for a server's own self-signed "
		        "one, pass a copy of it with --cacert FILE (on the server: DATA/certs/server.crt, the [tls] "
		        "certificate of its mailvault.conf; `mailvault serve` prints its path)\n");
	else
		fprintf(stderr, "mailvault: the server's certificate does not verify against --cacert %s: give the "
		        "server's own certificate (on the server: DATA/certs/server.crt, the [tls] certificate of its "
		        "mailvault.conf) or the CA that issued it, and a URL whose host is one of its names\n", r->cacert);
}

/* A failed transfer (no HTTP answer to judge). */
static int transfer_failed(remote *r, const char *url, CURLcode code)
{
	if (code == CURLE_ABORTED_BY_CALLBACK && r->drop_on_cancel)
		return RC_DROPPED;
	if (r->too_big)
		fprintf(stderr, "mailvault: %s: the answer is larger than %zu MiB; refused\n", url, MAX_ANSWER >> 20);
	else
		fprintf(stderr, "mailvault: %s: %s\n", url, r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
	if (code == CURLE_PEER_FAILED_VERIFICATION)
		certificate_hint(r);
	return MV_EXIT_FAIL;
}

/* An answer other than 200 OK: the message and the exit status. */
static int refused(remote *r, const char *url, long status, json_t *answer)
{
	if (status == 401) {
		fprintf(stderr, "mailvault: %s: wrong user name or password\n", r->base);
		return MV_EXIT_FAIL;
	}
	if (status == 403) {
		fprintf(stderr, "mailvault: %s: user %s lacks the admin privilege or the api login privilege\n",
		        r->base, r->user);
		return MV_EXIT_FAIL;
	}
	if ((status == 400 || status == 404) && is_envelope(answer)) {
		mv_cli_print_envelope(answer);
		return MV_EXIT_USAGE;
	}
	json_t *error = json_object_get(answer, "error");
	const char *msg = json_string_value(json_object_get(error, "message"));
	fprintf(stderr, "mailvault: %s: HTTP status %ld%s%s\n", url, status, msg ? ": " : "", msg ? msg : "");
	return MV_EXIT_FAIL;
}

/* Sends one POST; CURLE_OK once an HTTP answer came, with its status. */
static CURLcode perform(remote *r, const char *url, const char *form, long timeout_ms, long *status_r)
{
	g_byte_array_set_size(r->answer, 0);
	r->too_big = false;
	r->errbuf[0] = 0;
	CURLcode c = curl_easy_setopt(r->curl, CURLOPT_URL, url);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, form);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(form));
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (c == CURLE_OK)
		c = curl_easy_perform(r->curl);
	if (c == CURLE_OK)
		c = curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status_r);
	return c;
}

/* POSTs the form to base + path; timeout_ms 0 waits as long as it takes.
 * Returns 0 with the parsed JSON of a 200 answer in *json_r; RC_DROPPED when
 * Ctrl-C gave the request up; else the exit status after saying why. */
static int post(remote *r, const char *path, const char *form, long timeout_ms, json_t **json_r)
{
	*json_r = NULL;
	char *url = g_strconcat(r->base, path, NULL);
	long status = 0;
	CURLcode c = perform(r, url, form, timeout_ms, &status);
	json_t *answer = c == CURLE_OK ? parse_answer(r->answer) : NULL;
	int rc = 0;
	if (c != CURLE_OK)
		rc = transfer_failed(r, url, c);
	else if (status != 200)
		rc = refused(r, url, status, answer);
	else if (!answer) {
		fprintf(stderr, "mailvault: %s: the answer is not JSON\n", url);
		rc = MV_EXIT_FAIL;
	}
	if (rc == 0)
		*json_r = answer;
	else
		json_decref(answer);
	g_free(url);
	return rc;
}

/* ---- a function call and its long-running tail ---------------------------------- */

static bool is_running(json_t *env)
{
	const char *status = json_string_value(json_object_get(env, "statusCode"));
	return status && strcmp(status, "running") == 0;
}

static void show_progress(void *opaque, json_t *env)
{
	mv_cli_progress *p = opaque;
	json_t *percent = json_object_get(env, "percentProgress");
	const char *text = json_string_value(json_object_get(env, "statusText"));
	mv_cli_print_progress(p, json_is_number(percent) ? (int)json_number_value(percent) : -1, text ? text : "running");
}

/* Asks the server to stop the call; it answers with the final status later. */
static void send_cancel(remote *r, const char *token)
{
	GString *form = g_string_new(NULL);
	json_t *answer = NULL;
	if (!form_add(r, form, "token", token))
		fprintf(stderr, "mailvault: cannot encode the cancel request\n");
	else if (post(r, "/api/cancel-async", form->str, STATUS_WAIT_MS + STATUS_SLACK_MS, &answer) != 0)
		fprintf(stderr, "mailvault: the server did not take the cancel request; waiting for the function's end\n");
	json_decref(answer);
	g_string_free(form, TRUE);
}

/* One long poll: the status after last_version, or the same one after
 * STATUS_WAIT_MS.  Ctrl-C may drop it (RC_DROPPED). */
static int get_status(remote *r, const char *token, json_int_t last_version, json_t **env_r)
{
	char version[32];
	char wait[32];
	snprintf(version, sizeof version, "%" JSON_INTEGER_FORMAT, last_version);
	snprintf(wait, sizeof wait, "%ld", STATUS_WAIT_MS);
	GString *form = g_string_new(NULL);
	int rc = MV_EXIT_FAIL;
	if (form_add(r, form, "token", token) && form_add(r, form, "lastKnownStatusVersion", version) &&
	    form_add(r, form, "millisecondsTimeout", wait))
		rc = post(r, "/api/get-status", form->str, STATUS_WAIT_MS + STATUS_SLACK_MS, env_r);
	else
		fprintf(stderr, "mailvault: cannot encode the get-status request\n");
	g_string_free(form, TRUE);
	if (rc == 0 && !is_envelope(*env_r)) {
		fprintf(stderr, "mailvault: %s/api/get-status: the answer is not a status envelope\n", r->base);
		json_decref(*env_r);
		*env_r = NULL;
		rc = MV_EXIT_FAIL;
	}
	return rc;
}

/* Polls while the call runs, telling on_status of each status; the first
 * Ctrl-C becomes cancel-async.  *env ends as the final envelope; returns 0, or an exit
 * status after saying why the end was not seen. */
static int follow(remote *r, json_t **env, mv_cli_remote_status on_status, void *opaque)
{
	bool cancel_sent = false;
	int rc = 0;
	while (rc == 0 && is_running(*env)) {
		const char *token = json_string_value(json_object_get(*env, "token"));
		json_t *version = json_object_get(*env, "statusVersion");
		if (!token || !*token || !json_is_integer(version)) {
			fprintf(stderr, "mailvault: %s: a running call without token or statusVersion\n", r->base);
			rc = MV_EXIT_FAIL;
			break;
		}
		on_status(opaque, *env);
		if (!cancel_sent && mv_cli_sigint_seen()) {
			send_cancel(r, token);
			cancel_sent = true;
		}
		json_t *next = NULL;
		r->drop_on_cancel = !cancel_sent;
		rc = get_status(r, token, json_integer_value(version), &next);
		r->drop_on_cancel = false;
		if (rc == RC_DROPPED) {
			rc = 0;  /* the next round sends the cancel */
			continue;
		}
		if (rc != 0) {
			fprintf(stderr, "mailvault: the function may still be running on the server (token %s)\n", token);
			break;
		}
		json_decref(*env);
		*env = next;
	}
	return rc;
}

/* The form of the arguments; NULL when a value cannot be encoded. */
static char *args_form(remote *r, GHashTable *args)
{
	GString *form = g_string_new(NULL);
	GHashTableIter it;
	gpointer name, value;
	g_hash_table_iter_init(&it, args);
	while (g_hash_table_iter_next(&it, &name, &value))
		if (!form_add(r, form, name, value)) {
			fprintf(stderr, "mailvault: cannot encode argument '%.100s'\n", (const char *)name);
			g_string_free(form, TRUE);
			return NULL;
		}
	return g_string_free(form, FALSE);
}

/* Calls the function and follows it to its end; *env_r is the final
 * envelope.  Returns 0, or the exit status after saying why not. */
static int call_function(remote *r, const char *function, GHashTable *args, mv_cli_remote_status on_status,
                         void *opaque, json_t **env_r)
{
	*env_r = NULL;
	char *form = args_form(r, args);
	char *fn = curl_easy_escape(r->curl, function, 0);
	if (!form || !fn) {
		g_free(form);
		curl_free(fn);
		return MV_EXIT_FAIL;
	}
	char *path = g_strconcat("/api/invoke/", fn, NULL);
	curl_free(fn);
	struct sigaction old;
	/* Ctrl-C sends cancel-async and goes on following the call; a second
	 * stops waiting, while the server goes on cancelling by itself. */
	mv_cli_sigint_catch("\nmailvault: asking the server to cancel (Ctrl-C again to stop waiting)\n",
	                    "cancel the function", &old);
	json_t *env = NULL;
	int rc = post(r, path, form, 0, &env);
	if (rc == 0 && !is_envelope(env)) {
		fprintf(stderr, "mailvault: %s%s: the answer is not a status envelope\n", r->base, path);
		rc = MV_EXIT_FAIL;
	}
	if (rc == 0)
		rc = follow(r, &env, on_status, opaque);
	mv_cli_sigint_release(&old);
	if (rc == 0)
		*env_r = g_steal_pointer(&env);
	json_decref(env);
	g_free(path);
	g_free(form);
	return rc;
}

static int invoke(remote *r, const char *function, GHashTable *args)
{
	mv_cli_progress progress = MV_CLI_PROGRESS_INIT(isatty(STDERR_FILENO) != 0);
	json_t *env = NULL;
	int rc = call_function(r, function, args, show_progress, &progress, &env);
	if (progress.tty && progress.last > 0)
		fputc('\n', stderr);
	if (rc == 0) {
		mv_cli_print_envelope(env);
		const char *status = json_string_value(json_object_get(env, "statusCode"));
		rc = strcmp(status, "succeeded") == 0 ? MV_EXIT_OK : MV_EXIT_FAIL;
	}
	json_decref(env);
	return rc;
}

/* The server's functions: the table `cmd --list` prints, or with json the
 * get-metadata answer as it came. */
static int list_functions(remote *r, bool json)
{
	json_t *meta = NULL;
	int rc = post(r, "/api/get-metadata", "", 0, &meta);
	if (rc != 0)
		return rc;
	if (!json_is_array(meta)) {
		fprintf(stderr, "mailvault: %s/api/get-metadata: the answer is not a JSON array\n", r->base);
		json_decref(meta);
		return MV_EXIT_FAIL;
	}
	if (json) {
		mv_cli_print_envelope(meta);
	} else {
		char *table = mv_command_table_text(meta);
		fputs(table, stdout);
		g_free(table);
	}
	json_decref(meta);
	return MV_EXIT_OK;
}

/* Word errors are shown as the local path shows them: an error envelope. */
static int bad_words(GError *err)
{
	json_t *env = mv_command_error_envelope(err->message, NULL);
	mv_cli_print_envelope(env);
	json_decref(env);
	g_error_free(err);
	return MV_EXIT_USAGE;
}

int mv_cli_remote_run(const mv_cli_remote_opts *opts, bool list, int argc, char **argv)
{
	if (!check_server_url(opts->server))
		return MV_EXIT_USAGE;
	GHashTable *args = NULL;
	if (!list) {
		GError *err = NULL;
		args = mv_command_words_to_args(argv[0], argc - 1, argv + 1, &err);
		if (!args)
			return bad_words(err);
	}
	remote r;
	int rc = MV_EXIT_FAIL;
	if (remote_open(&r, opts))
		rc = list ? list_functions(&r, argc == 1 && strcmp(argv[0], "--json") == 0) : invoke(&r, argv[0], args);
	remote_close(&r);
	if (args)
		g_hash_table_destroy(args);
	return rc;
}

int mv_cli_remote_call(const mv_cli_remote_opts *opts, const char *function, GHashTable *args,
                       mv_cli_remote_status on_status, void *opaque, json_t **env_r)
{
	*env_r = NULL;
	if (!check_server_url(opts->server))
		return MV_EXIT_USAGE;
	remote r;
	int rc = MV_EXIT_FAIL;
	if (remote_open(&r, opts))
		rc = call_function(&r, function, args, on_status, opaque, env_r);
	remote_close(&r);
	return rc;
}
