/* export/imap: restore into any IMAP server — each message APPENDed with
 * its flags and its date as the internal date, into a folder of the same
 * path (CREATEd, parents first, with the server's hierarchy delimiter).
 *
 * libcurl speaks IMAP but its APPEND takes neither flags nor a date, so
 * curl only connects: CURLOPT_CONNECT_ONLY runs the greeting, STARTTLS or
 * implicit TLS, certificate checks and authentication (SASL or LOGIN), and
 * the commands after that are ours over curl_easy_send/recv.  Responses
 * are read in bounded lines; a literal in a response ({n}) is read whole
 * only up to a bound; the message goes out as one literal, non-synchronising
 * (LITERAL+) when the server offers it, else after its continuation.
 *
 * The message bytes are sent exactly; folder names are sent in modified
 * UTF-7 (mime/mutf7.c), a component holding the delimiter gets
 * '_' in its place (the server could not tell the levels apart otherwise). */
#include "export/internal.h"
#include "mime/mime.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#define MAX_RESPONSE_LINE (64u * 1024u)
#define MAX_RESPONSE_LITERAL (1u << 20)
#define IO_TIMEOUT_MS 120000

typedef struct imap_target {
	export_target base;
	CURL *curl;
	curl_socket_t sock;
	GByteArray *in;
	unsigned tag;
	char delim;                /* 0 = flat server */
	bool literal_plus;
	char *root;                /* target folder, or NULL */
	GHashTable *created;       /* mailboxes made or known (encoded names) */
	char *host;                /* for messages */
	int64_t appended;
} imap_target;

static bool wait_socket(imap_target *t, short events, GError **error)
{
	struct pollfd p = { .fd = t->sock, .events = events };
	int rc;
	do {
		rc = poll(&p, 1, IO_TIMEOUT_MS);
	} while (rc < 0 && errno == EINTR);
	if (rc > 0)
		return true;
	g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: %s", t->host, rc == 0 ? "no answer in time" : g_strerror(errno));
	return false;
}

static int send_all(imap_target *t, const void *data, size_t len, GError **error)
{
	const uint8_t *p = data;
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(t->curl, p, len, &n);
		if (rc == CURLE_AGAIN) {
			if (!wait_socket(t, POLLOUT, error))
				return -1;
			continue;
		}
		if (rc != CURLE_OK) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: cannot send: %s", t->host, curl_easy_strerror(rc));
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int recv_more(imap_target *t, GError **error)
{
	uint8_t buf[16384];
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(t->curl, buf, sizeof buf, &n);
		if (rc == CURLE_AGAIN) {
			if (!wait_socket(t, POLLIN, error))
				return -1;
			continue;
		}
		if (rc != CURLE_OK || n == 0) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: %s", t->host,
			            rc == CURLE_OK ? "closed the connection" : curl_easy_strerror(rc));
			return -1;
		}
		g_byte_array_append(t->in, buf, (guint)n);
		return 0;
	}
}

/* Takes n bytes off the input into out (NULL: dropped), receiving as needed. */
static int take_bytes(imap_target *t, size_t n, GString *out, GError **error)
{
	while (t->in->len < n)
		if (recv_more(t, error) < 0)
			return -1;
	if (out)
		g_string_append_len(out, (const char *)t->in->data, (gssize)n);
	g_byte_array_remove_range(t->in, 0, (guint)n);
	return 0;
}

/* "{123}" or "{123+}" at the end of a line: the literal's length. */
static bool literal_at_end(const GString *line, size_t *n_r)
{
	if (line->len < 3 || line->str[line->len - 1] != '}')
		return false;
	const char *open = strrchr(line->str, '{');
	if (!open)
		return false;
	char *end = NULL;
	guint64 n = g_ascii_strtoull(open + 1, &end, 10);
	if (end == open + 1 || (*end != '}' && !(*end == '+' && end[1] == '}')))
		return false;
	*n_r = (size_t)n;
	return true;
}

/* One response line (CRLF taken off), literals inside it read into it. */
static int read_line(imap_target *t, GString *line, GError **error)
{
	g_string_truncate(line, 0);
	for (;;) {
		uint8_t *nl = t->in->len ? memchr(t->in->data, '\n', t->in->len) : NULL;
		if (!nl) {
			if (t->in->len + line->len > MAX_RESPONSE_LINE) {
				g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "IMAP server %s: a response line longer than %u bytes",
				            t->host, MAX_RESPONSE_LINE);
				return -1;
			}
			if (recv_more(t, error) < 0)
				return -1;
			continue;
		}
		size_t n = (size_t)(nl - t->in->data);
		size_t keep = n > 0 && t->in->data[n - 1] == '\r' ? n - 1 : n;
		g_string_append_len(line, (const char *)t->in->data, (gssize)keep);
		g_byte_array_remove_range(t->in, 0, (guint)(n + 1));
		size_t lit = 0;
		if (!literal_at_end(line, &lit))
			return 0;
		if (lit > MAX_RESPONSE_LITERAL) {
			g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "IMAP server %s: a response literal of %zu bytes", t->host, lit);
			return -1;
		}
		g_string_append(line, "\r\n");
		if (take_bytes(t, lit, line, error) < 0)
			return -1;
	}
}

/* Sends a tagged command and reads up to its completion.  on_untagged (may
 * be NULL) sees each "* ..." line.  Returns 1 for OK, 0 for NO (text in
 * *text_r), -1 on BAD or a failure. */
typedef void (*untagged_fn)(imap_target *t, const char *line);

static int finish_command(imap_target *t, const char *tag, untagged_fn on_untagged, char **text_r, GError **error)
{
	GString *line = g_string_new(NULL);
	int rc = -1;
	size_t tlen = strlen(tag);
	while (read_line(t, line, error) == 0) {
		if (line->str[0] == '*' && on_untagged) {
			on_untagged(t, line->str);
			continue;
		}
		if (strncmp(line->str, tag, tlen) != 0 || line->str[tlen] != ' ')
			continue;
		const char *status = line->str + tlen + 1;
		if (g_ascii_strncasecmp(status, "OK", 2) == 0)
			rc = 1;
		else if (g_ascii_strncasecmp(status, "NO", 2) == 0)
			rc = 0;
		else
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: %.200s", t->host, status);
		if (text_r)
			*text_r = mv_utf8_sanitize(status, -1);
		break;
	}
	g_string_free(line, TRUE);
	return rc;
}

static int command(imap_target *t, const char *text, untagged_fn on_untagged, char **text_r, GError **error)
{
	char *tag = g_strdup_printf("mv%u", ++t->tag);
	char *line = g_strdup_printf("%s %s\r\n", tag, text);
	int rc = send_all(t, line, strlen(line), error);
	g_free(line);
	if (rc == 0)
		rc = finish_command(t, tag, on_untagged, text_r, error);
	g_free(tag);
	return rc;
}

/* ---- what the server is like ---------------------------------------------------------- */

static void on_capability(imap_target *t, const char *line)
{
	if (g_ascii_strncasecmp(line, "* CAPABILITY ", 13) != 0)
		return;
	char **words = g_strsplit(line + 13, " ", -1);
	for (char **w = words; *w; w++)
		if (g_ascii_strcasecmp(*w, "LITERAL+") == 0)
			t->literal_plus = true;
	g_strfreev(words);
}

/* * LIST (\Noselect) "/" "" : the delimiter is the quoted character (NIL: flat). */
static void on_list(imap_target *t, const char *line)
{
	if (g_ascii_strncasecmp(line, "* LIST ", 7) != 0)
		return;
	const char *close = strchr(line, ')');
	if (!close)
		return;
	const char *p = close + 1;
	while (*p == ' ')
		p++;
	if (p[0] == '"' && p[1] == '\\' && p[2] && p[3] == '"')
		t->delim = p[2];
	else if (p[0] == '"' && p[1] && p[2] == '"')
		t->delim = p[1];
	else
		t->delim = 0;
}

/* ---- names, flags, dates -------------------------------------------------------------- */

static void append_quoted(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *s);
	}
	g_string_append_c(out, '"');
}

/* One level of a folder path as the server names it. */
static char *encode_component(const imap_target *t, const char *name)
{
	char *enc = mv_mutf7_encode(name);
	if (t->delim)
		g_strdelimit(enc, (char[]){ t->delim, 0 }, '_');
	return enc;
}

/* The mailbox of a folder: the target folder (or the top level) and the
 * folder's levels; an archive's root folder is the target folder itself,
 * or INBOX. */
static GPtrArray *mailbox_levels(const imap_target *t, const char *folder)
{
	GPtrArray *levels = g_ptr_array_new_with_free_func(g_free);
	if (t->root && *t->root) {
		char **parts = t->delim ? g_strsplit(t->root, (char[]){ t->delim, 0 }, -1) : g_strsplit(t->root, "\x01", -1);
		for (char **p = parts; *p; p++)
			if (**p)
				g_ptr_array_add(levels, mv_mutf7_encode(*p));
		g_strfreev(parts);
	}
	char **parts = g_strsplit(folder ? folder : "", "/", -1);
	for (char **p = parts; *p; p++)
		if (**p)
			g_ptr_array_add(levels, encode_component(t, *p));
	g_strfreev(parts);
	if (levels->len == 0)
		g_ptr_array_add(levels, g_strdup("INBOX"));
	else if (g_ascii_strcasecmp(levels->pdata[0], "INBOX") == 0 && levels->len == 1) {
		g_free(levels->pdata[0]);
		levels->pdata[0] = g_strdup("INBOX");
	}
	return levels;
}

static char *join_levels(const imap_target *t, GPtrArray *levels, guint n)
{
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < n; i++) {
		if (i && t->delim)
			g_string_append_c(s, t->delim);
		g_string_append(s, levels->pdata[i]);
	}
	return g_string_free(s, FALSE);
}

/* CREATE of every level not known yet; NO (it exists) is fine. */
static int ensure_mailbox(imap_target *t, GPtrArray *levels, GError **error)
{
	guint depth = t->delim ? levels->len : 1;
	for (guint i = 1; i <= depth; i++) {
		char *name = t->delim ? join_levels(t, levels, i) : join_levels(t, levels, levels->len);
		if (g_ascii_strcasecmp(name, "INBOX") == 0 || g_hash_table_contains(t->created, name)) {
			g_free(name);
			continue;
		}
		GString *cmd = g_string_new("CREATE ");
		append_quoted(cmd, name);
		int rc = command(t, cmd->str, NULL, NULL, error);
		g_string_free(cmd, TRUE);
		if (rc < 0) {
			g_prefix_error(error, "CREATE %s: ", name);
			g_free(name);
			return -1;
		}
		g_hash_table_add(t->created, name);
	}
	return 0;
}

/* The internal date of an APPEND: the message's date, when it has one. */
static void append_date(GString *out, int64_t date)
{
	if (date <= 0)
		return;
	g_string_append_c(out, ' ');
	mv_append_imap_date(out, date);
}

/* ---- the target ----------------------------------------------------------------------- */

/* APPEND with the message as one literal: non-synchronising with LITERAL+,
 * else after the server's "+" continuation. */
static int append_message(imap_target *t, const char *mailbox, const export_item *it, GError **error)
{
	char *tag = g_strdup_printf("mv%u", ++t->tag);
	GString *cmd = g_string_new(NULL);
	g_string_append_printf(cmd, "%s APPEND ", tag);
	append_quoted(cmd, mailbox);
	g_string_append_c(cmd, ' ');
	mv_mail_flags_append_imap(cmd, mv_mail_flags_parse(it->mail_flags));
	append_date(cmd, it->date);
	g_string_append_printf(cmd, " {%zu%s}\r\n", it->len, t->literal_plus ? "+" : "");
	int rc = send_all(t, cmd->str, cmd->len, error);
	GString *line = g_string_new(NULL);
	if (rc == 0 && !t->literal_plus) {
		rc = read_line(t, line, error);
		if (rc == 0 && line->str[0] != '+') {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s refused the message: %.200s", t->host, line->str);
			rc = -1;
		}
	}
	if (rc == 0)
		rc = send_all(t, it->raw, it->len, error);
	if (rc == 0)
		rc = send_all(t, "\r\n", 2, error);
	char *text = NULL;
	if (rc == 0) {
		int status = finish_command(t, tag, NULL, &text, error);
		if (status == 0)
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: APPEND to %s: %s", t->host, mailbox, text);
		rc = status == 1 ? 0 : -1;
	}
	g_free(text);
	g_string_free(line, TRUE);
	g_string_free(cmd, TRUE);
	g_free(tag);
	return rc;
}

static int imap_put(export_target *base, const export_item *it, GError **error)
{
	imap_target *t = (imap_target *)base;
	GPtrArray *levels = mailbox_levels(t, it->folder);
	char *mailbox = join_levels(t, levels, levels->len);
	int rc = ensure_mailbox(t, levels, error);
	if (rc == 0)
		rc = append_message(t, mailbox, it, error);
	if (rc == 0)
		t->appended++;
	g_free(mailbox);
	g_ptr_array_unref(levels);
	return rc;
}

static int imap_finish(export_target *base, json_t **summary_r, GError **error)
{
	imap_target *t = (imap_target *)base;
	int rc = command(t, "LOGOUT", NULL, NULL, error);
	*summary_r = json_pack("{s:s, s:I, s:I}", "server", t->host, "messagesAppended", (json_int_t)t->appended,
	                       "foldersCreated", (json_int_t)g_hash_table_size(t->created));
	return rc < 0 ? -1 : 0;
}

static void imap_free(export_target *base)
{
	imap_target *t = (imap_target *)base;
	if (t->curl)
		curl_easy_cleanup(t->curl);
	if (t->in)
		g_byte_array_unref(t->in);
	if (t->created)
		g_hash_table_destroy(t->created);
	g_free(t->root);
	g_free(t->host);
	g_free(t);
}

static const export_target_ops imap_ops = { imap_put, imap_finish, imap_free };

int export_curl_common(void *curl, const export_server *srv, GError **error)
{
	long use_ssl = CURLUSESSL_ALL;
	if (srv->tls && strcmp(srv->tls, "try") == 0)
		use_ssl = CURLUSESSL_TRY;
	else if (srv->tls && strcmp(srv->tls, "none") == 0)
		use_ssl = CURLUSESSL_NONE;
	CURLcode rc = curl_easy_setopt(curl, CURLOPT_URL, srv->url);
	if (rc == CURLE_OK && srv->user)
		rc = curl_easy_setopt(curl, CURLOPT_USERNAME, srv->user);
	if (rc == CURLE_OK && srv->password)
		rc = curl_easy_setopt(curl, CURLOPT_PASSWORD, srv->password);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_USE_SSL, use_ssl);
	if (rc == CURLE_OK && srv->ca_file)
		rc = curl_easy_setopt(curl, CURLOPT_CAINFO, srv->ca_file);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, srv->verify_certificate ? 1L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, srv->verify_certificate ? 2L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (rc == CURLE_OK)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: %s", srv->url, curl_easy_strerror(rc));
	return -1;
}

static char *host_of(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	char *out = g_strdup(host ? host : "?");
	curl_free(host);
	curl_url_cleanup(u);
	return out;
}

export_target *export_imap_open(const export_server *srv, GError **error)
{
	if (!g_str_has_prefix(srv->url, "imap://") && !g_str_has_prefix(srv->url, "imaps://")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: '%s' is not an imap:// or imaps:// URL", srv->url);
		return NULL;
	}
	imap_target *t = g_new0(imap_target, 1);
	t->base.ops = &imap_ops;
	t->in = g_byte_array_new();
	t->created = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	t->root = g_strdup(srv->target_folder);
	t->host = host_of(srv->url);
	t->curl = curl_easy_init();
	if (!t->curl || export_curl_common(t->curl, srv, error) < 0 ||
	    curl_easy_setopt(t->curl, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK)
		goto fail;
	CURLcode rc = curl_easy_perform(t->curl);
	if (rc != CURLE_OK) {
		g_set_error(error, MV_ERROR, rc == CURLE_LOGIN_DENIED ? MV_ERR_AUTH : MV_ERR_IO, "IMAP server %s: %s",
		            t->host, curl_easy_strerror(rc));
		goto fail;
	}
	if (curl_easy_getinfo(t->curl, CURLINFO_ACTIVESOCKET, &t->sock) != CURLE_OK || t->sock == CURL_SOCKET_BAD) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: no connection", t->host);
		goto fail;
	}
	if (command(t, "CAPABILITY", on_capability, NULL, error) != 1 ||
	    command(t, "LIST \"\" \"\"", on_list, NULL, error) != 1) {
		if (error && !*error)
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s refused CAPABILITY or LIST", t->host);
		goto fail;
	}
	return &t->base;
fail:
	imap_free(&t->base);
	return NULL;
}
