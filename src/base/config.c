/* base/config: the service configuration file of `mailvault serve`.
 *
 * A GKeyFile (INI) because admins edit it by hand and GLib already parses
 * it well.  Loading is strict: every group and key must be known and every
 * value well-formed, and errors name the file, the key and the reason, so
 * that a typo fails at start instead of silently meaning a default.  Paths
 * are kept relative to the file's directory when they lie inside it, so
 * that moving the data directory (which holds the default file) moves the
 * whole service. */
#include "base/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1024 * 1024)
#define MAX_LISTEN 16

static const char *const known_keys[][2] = {
	{ "service", "data_dir" }, { "service", "debug_log" }, { "service", "safe_mode" },
	{ "api", "listen" }, { "api", "status_retention_seconds" }, { "api", "max_connections" },
	{ "api", "max_running_jobs" }, { "api", "max_queued_jobs" },
	{ "tls", "certificate" }, { "tls", "private_key" }, { "tls", "certificate_dir" },
	{ "web", "enabled" }, { "web", "listen" }, { "web", "idle_timeout_minutes" }, { "web", "session_hours" },
	{ "imap", "enabled" }, { "imap", "listen" }, { "imap", "listen_tls" }, { "imap", "allow_plaintext_loopback" },
	{ "imap", "idle_timeout_minutes" }, { "imap", "max_connections" },
	{ "smtp", "enabled" }, { "smtp", "listen" }, { "smtp", "lmtp_listen" }, { "smtp", "lmtp_socket_group" }, { "smtp", "allow_networks" },
	{ "smtp", "auth" }, { "smtp", "require_tls" }, { "smtp", "journal_reports" }, { "smtp", "max_message_size_mb" },
	{ "smtp", "max_recipients" }, { "smtp", "max_connections" }, { "smtp", "max_connections_per_address" },
	{ "smtp", "idle_timeout_seconds" }, { "smtp", "max_session_seconds" }, { "smtp", "max_bad_commands" },
	{ "smtp", "folder" }, { "smtp", "sent_folder" }, { "smtp", "unknown_addresses" }, { "smtp", "catchall_archive" },
	{ "smtp", "internal_domains" },
	{ "smtp", "lock_wait_seconds" },
	{ "search", "max_prefix_mb" },
};

void mv_smtp_config_clear(mv_smtp_config *s)
{
	if (s->listen)
		g_ptr_array_unref(s->listen);
	if (s->lmtp_listen)
		g_ptr_array_unref(s->lmtp_listen);
	g_free(s->allow_networks);
	g_free(s->lmtp_socket_group);
	g_free(s->folder);
	g_free(s->sent_folder);
	g_free(s->unknown_addresses);
	g_free(s->catchall_archive);
	g_free(s->internal_domains);
	memset(s, 0, sizeof *s);
}

void mv_service_config_clear(mv_service_config *c)
{
	g_free(c->path);
	g_free(c->data_dir);
	if (c->listen)
		g_ptr_array_unref(c->listen);
	if (c->web_listen)
		g_ptr_array_unref(c->web_listen);
	if (c->imap_listen)
		g_ptr_array_unref(c->imap_listen);
	if (c->imap_listen_tls)
		g_ptr_array_unref(c->imap_listen_tls);
	g_free(c->certificate);
	g_free(c->private_key);
	g_free(c->certificate_dir);
	mv_smtp_config_clear(&c->smtp);
	memset(c, 0, sizeof *c);
}

static GPtrArray *copy_strings(const GPtrArray *src)
{
	GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; src && i < src->len; i++)
		g_ptr_array_add(a, g_strdup(g_ptr_array_index(src, i)));
	return a;
}

void mv_smtp_config_copy(mv_smtp_config *dst, const mv_smtp_config *src)
{
	*dst = *src;
	dst->listen = copy_strings(src->listen);
	dst->lmtp_listen = copy_strings(src->lmtp_listen);
	dst->allow_networks = g_strdup(src->allow_networks);
	dst->lmtp_socket_group = g_strdup(src->lmtp_socket_group);
	dst->folder = g_strdup(src->folder);
	dst->sent_folder = g_strdup(src->sent_folder);
	dst->unknown_addresses = g_strdup(src->unknown_addresses);
	dst->catchall_archive = g_strdup(src->catchall_archive);
	dst->internal_domains = g_strdup(src->internal_domains);
}

void mv_service_config_copy(mv_service_config *dst, const mv_service_config *src)
{
	mv_service_config_clear(dst);
	dst->path = g_strdup(src->path);
	dst->data_dir = g_strdup(src->data_dir);
	dst->listen = copy_strings(src->listen);
	dst->web_listen = copy_strings(src->web_listen);
	dst->web_idle_seconds = src->web_idle_seconds;
	dst->web_session_seconds = src->web_session_seconds;
	dst->imap_listen = copy_strings(src->imap_listen);
	dst->imap_listen_tls = copy_strings(src->imap_listen_tls);
	dst->imap_plaintext_loopback = src->imap_plaintext_loopback;
	dst->imap_idle_seconds = src->imap_idle_seconds;
	dst->imap_max_connections = src->imap_max_connections;
	dst->certificate = g_strdup(src->certificate);
	dst->private_key = g_strdup(src->private_key);
	dst->certificate_dir = g_strdup(src->certificate_dir);
	dst->debug_log = src->debug_log;
	dst->safe_mode = src->safe_mode;
	dst->status_retention_seconds = src->status_retention_seconds;
	dst->max_connections = src->max_connections;
	dst->max_running_jobs = src->max_running_jobs;
	dst->max_queued_jobs = src->max_queued_jobs;
	dst->search_max_prefix_mb = src->search_max_prefix_mb;
	mv_smtp_config_copy(&dst->smtp, &src->smtp);
}

void mv_service_config_default(mv_service_config *c, const char *path, const char *data_dir)
{
	memset(c, 0, sizeof *c);
	c->path = g_canonicalize_filename(path, NULL);
	c->data_dir = g_canonicalize_filename(data_dir, NULL);
	c->listen = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(c->listen, g_strdup_printf("127.0.0.1:%d", MV_API_DEFAULT_PORT));
	c->certificate_dir = g_build_filename(c->data_dir, "certs", NULL);
	c->status_retention_seconds = 600;
	c->max_connections = 256;
	c->max_running_jobs = MV_DEFAULT_MAX_RUNNING_JOBS;
	c->max_queued_jobs = MV_DEFAULT_MAX_QUEUED_JOBS;
	c->search_max_prefix_mb = MV_DEFAULT_SEARCH_MAX_PREFIX_MB;
	c->web_listen = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(c->web_listen, g_strdup_printf("127.0.0.1:%d", MV_WEB_DEFAULT_PORT));
	c->web_idle_seconds = 30 * 60;
	c->web_session_seconds = 12 * 3600;
	c->imap_listen = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(c->imap_listen, g_strdup_printf("127.0.0.1:%d", MV_IMAP_DEFAULT_PORT));
	c->imap_listen_tls = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(c->imap_listen_tls, g_strdup_printf("127.0.0.1:%d", MV_IMAPS_DEFAULT_PORT));
	c->imap_idle_seconds = 30 * 60;
	c->imap_max_connections = 2000;
	mv_smtp_config *smtp = &c->smtp;
	smtp->listen = g_ptr_array_new_with_free_func(g_free);
	smtp->lmtp_listen = g_ptr_array_new_with_free_func(g_free);
	smtp->allow_networks = g_strdup("127.0.0.0/8;::1/128");
	smtp->auth = true;
	smtp->journal_reports = true;
	smtp->max_message_bytes = 50 * 1024 * 1024;
	smtp->max_recipients = 1000;
	smtp->max_connections = 500;
	smtp->max_connections_per_address = 100;
	smtp->idle_seconds = 300;
	smtp->session_seconds = 3600;
	smtp->lock_wait_seconds = 30;
	smtp->max_bad_commands = 20;
	smtp->folder = g_strdup("Inbox");
	smtp->sent_folder = g_strdup("Sent");
	smtp->unknown_addresses = g_strdup("catchall");
	smtp->catchall_archive = g_strdup("catchall");
}

int mv_listen_parse(const char *text, char **host_r, int *port_r, GError **error)
{
	const char *colon = strrchr(text, ':');
	if (!colon || colon == text) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "listen address '%.200s': expected HOST:PORT", text);
		return -1;
	}
	char *host = g_strndup(text, (gsize)(colon - text));
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']') {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "listen address '%.200s': unbalanced [ ]", text);
			g_free(host);
			return -1;
		}
		memmove(host, host + 1, n - 2);
		host[n - 2] = 0;
	} else if (strchr(host, ':')) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "listen address '%.200s': write an IPv6 address in brackets, e.g. [::1]:8463", text);
		g_free(host);
		return -1;
	}
	char *end = NULL;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || !end || *end || end == colon + 1 || port < 1 || port > 65535) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "listen address '%.200s': port must be 1..65535", text);
		g_free(host);
		return -1;
	}
	*host_r = host;
	*port_r = (int)port;
	return 0;
}

static int invalid(GError **error, const char *path, const char *group, const char *key, const char *why)
{
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: [%s] %s: %s", path, group, key, why);
	return -1;
}

static int check_known(GKeyFile *kf, const char *path, GError **error)
{
	gchar **groups = g_key_file_get_groups(kf, NULL);
	int rc = 0;
	for (gchar **g = groups; rc == 0 && *g; g++) {
		gchar **keys = g_key_file_get_keys(kf, *g, NULL, NULL);
		for (gchar **k = keys; rc == 0 && keys && *k; k++) {
			bool known = false;
			for (size_t i = 0; i < G_N_ELEMENTS(known_keys); i++)
				known = known || (strcmp(known_keys[i][0], *g) == 0 && strcmp(known_keys[i][1], *k) == 0);
			if (!known)
				rc = invalid(error, path, *g, *k, "unknown setting");
		}
		g_strfreev(keys);
	}
	g_strfreev(groups);
	return rc;
}

/* A path value made absolute against the file's directory. */
static int get_path(GKeyFile *kf, const char *path, const char *group, const char *key, char **out, GError **error)
{
	if (!g_key_file_has_key(kf, group, key, NULL))
		return 0;
	char *v = g_key_file_get_string(kf, group, key, NULL);
	if (!v || !*v) {
		g_free(v);
		return invalid(error, path, group, key, "empty path");
	}
	char *base = g_path_get_dirname(path);
	g_free(*out);
	*out = g_canonicalize_filename(v, base);
	g_free(base);
	g_free(v);
	return 0;
}

static int get_bool(GKeyFile *kf, const char *path, const char *group, const char *key, bool *out, GError **error)
{
	if (!g_key_file_has_key(kf, group, key, NULL))
		return 0;
	GError *e = NULL;
	gboolean v = g_key_file_get_boolean(kf, group, key, &e);
	if (e) {
		g_error_free(e);
		return invalid(error, path, group, key, "expected true or false");
	}
	*out = v;
	return 0;
}

static int get_int(GKeyFile *kf, const char *path, const char *group, const char *key, int64_t min, int64_t max,
                   int64_t *out, GError **error)
{
	if (!g_key_file_has_key(kf, group, key, NULL))
		return 0;
	char *v = g_key_file_get_string(kf, group, key, NULL);
	char *end = NULL;
	errno = 0;
	long long n = v ? strtoll(v, &end, 10) : 0;
	bool ok = v && *v && !errno && end && !*end && n >= min && n <= max;
	g_free(v);
	if (!ok) {
		char *why = g_strdup_printf("expected a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, min,
		                            max);
		invalid(error, path, group, key, why);
		g_free(why);
		return -1;
	}
	*out = n;
	return 0;
}

static int get_listen_items(GKeyFile *kf, const char *path, const char *group, const char *key, GPtrArray *listen,
                            bool allow_unix, GError **error);

static int get_listen(GKeyFile *kf, const char *path, const char *group, const char *key, GPtrArray *listen,
                      GError **error)
{
	return get_listen_items(kf, path, group, key, listen, false, error);
}

/* "unix:PATH": made absolute against the file's directory like any path. */
static char *unix_listen(const char *path, const char *text)
{
	char *base = g_path_get_dirname(path);
	char *abs = g_canonicalize_filename(text + 5, base);
	char *v = g_strconcat("unix:", abs, NULL);
	g_free(abs);
	g_free(base);
	return v;
}

static int get_listen_items(GKeyFile *kf, const char *path, const char *group, const char *key, GPtrArray *listen,
                            bool allow_unix, GError **error)
{
	if (!g_key_file_has_key(kf, group, key, NULL))
		return 0;
	gsize n = 0;
	/* "a;b", "a" and "a;b;" (what GKeyFile's own list writer made, and
	 * files of older versions hold) all read as a list. */
	gchar **items = g_key_file_get_string_list(kf, group, key, &n, NULL);
	/* Nor is a blank last item ("a; ") an entry. */
	while (items && n > 0 && !*g_strstrip(items[n - 1]))
		g_free(items[--n]), items[n] = NULL;
	if (!items || n == 0 || n > MAX_LISTEN) {
		g_strfreev(items);
		return invalid(error, path, group, key, "expected 1 to 16 HOST:PORT entries separated by ';'");
	}
	g_ptr_array_set_size(listen, 0);
	int rc = 0;
	for (gsize i = 0; rc == 0 && i < n; i++) {
		char *host = NULL, *text = g_strstrip(items[i]);
		int port;
		GError *e = NULL;
		if (allow_unix && g_str_has_prefix(text, "unix:")) {
			if (strlen(text) <= 5 || strlen(text) > 100)
				rc = invalid(error, path, group, key, "unix:PATH needs a path of at most 95 bytes");
			else
				g_ptr_array_add(listen, unix_listen(path, text));
		} else if (mv_listen_parse(text, &host, &port, &e) < 0) {
			rc = invalid(error, path, group, key, e->message);
			g_error_free(e);
		} else {
			g_ptr_array_add(listen, g_strdup(text));
		}
		g_free(host);
	}
	g_strfreev(items);
	return rc;
}

/* [web]: a file without the section (made before Web Access) leaves it
 * off; the generated file has it on 127.0.0.1. */
static int get_web(GKeyFile *kf, const char *path, mv_service_config *c, GError **error)
{
	bool enabled = g_key_file_has_group(kf, "web");
	int64_t idle_minutes = c->web_idle_seconds / 60, hours = c->web_session_seconds / 3600;
	if (get_bool(kf, path, "web", "enabled", &enabled, error) < 0 || get_listen(kf, path, "web", "listen", c->web_listen, error) < 0 ||
	    get_int(kf, path, "web", "idle_timeout_minutes", 1, 24 * 60, &idle_minutes, error) < 0 ||
	    get_int(kf, path, "web", "session_hours", 1, 30 * 24, &hours, error) < 0)
		return -1;
	c->web_idle_seconds = idle_minutes * 60;
	c->web_session_seconds = hours * 3600;
	if (!enabled)
		g_ptr_array_set_size(c->web_listen, 0);
	return 0;
}

static int get_string(GKeyFile *kf, const char *path, const char *group, const char *key, const char *const *allowed,
                      char **out, GError **error)
{
	if (!g_key_file_has_key(kf, group, key, NULL))
		return 0;
	char *v = g_key_file_get_string(kf, group, key, NULL);
	if (v)
		g_strstrip(v);
	bool ok = v && *v && strlen(v) <= 4096;
	if (ok && allowed) {
		ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok = ok || strcmp(allowed[i], v) == 0;
	}
	if (!ok) {
		g_free(v);
		char *why = allowed ? g_strjoinv(", ", (char **)allowed) : NULL;
		char *msg = why ? g_strdup_printf("expected one of: %s", why) : g_strdup("expected a value of 1 to 4096 bytes");
		invalid(error, path, group, key, msg);
		g_free(msg);
		g_free(why);
		return -1;
	}
	g_free(*out);
	*out = v;
	return 0;
}

/* [smtp]: off unless the file has the section with a listener (enabled
 * defaults to true there).  allow_networks may be empty: every client
 * must then log on. */
static int get_smtp(GKeyFile *kf, const char *path, mv_smtp_config *s, GError **error)
{
	static const char *const policies[] = { "catchall", "ignore", "reject", NULL };
	bool enabled = g_key_file_has_group(kf, "smtp");
	int64_t size_mb = s->max_message_bytes / (1024 * 1024);
	if (g_key_file_has_key(kf, "smtp", "allow_networks", NULL)) {
		char *v = g_key_file_get_string(kf, "smtp", "allow_networks", NULL);
		g_free(s->allow_networks);
		s->allow_networks = v ? g_strstrip(v) : g_strdup("");
	}
	if (get_bool(kf, path, "smtp", "enabled", &enabled, error) < 0 ||
	    get_listen(kf, path, "smtp", "listen", s->listen, error) < 0 ||
	    get_listen_items(kf, path, "smtp", "lmtp_listen", s->lmtp_listen, true, error) < 0 ||
	    get_string(kf, path, "smtp", "lmtp_socket_group", NULL, &s->lmtp_socket_group, error) < 0 ||
	    get_bool(kf, path, "smtp", "auth", &s->auth, error) < 0 ||
	    get_bool(kf, path, "smtp", "require_tls", &s->require_tls, error) < 0 ||
	    get_bool(kf, path, "smtp", "journal_reports", &s->journal_reports, error) < 0 ||
	    get_int(kf, path, "smtp", "max_message_size_mb", 1, 2047, &size_mb, error) < 0 ||
	    get_int(kf, path, "smtp", "max_recipients", 1, 100000, &s->max_recipients, error) < 0 ||
	    get_int(kf, path, "smtp", "max_connections", 1, 100000, &s->max_connections, error) < 0 ||
	    get_int(kf, path, "smtp", "max_connections_per_address", 1, 100000, &s->max_connections_per_address, error) < 0 ||
	    /* RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for a command. */
	    get_int(kf, path, "smtp", "idle_timeout_seconds", 10, 3600, &s->idle_seconds, error) < 0 ||
	    get_int(kf, path, "smtp", "max_session_seconds", 60, 7 * 86400, &s->session_seconds, error) < 0 ||
	    get_int(kf, path, "smtp", "lock_wait_seconds", 1, 3600, &s->lock_wait_seconds, error) < 0 ||
	    get_int(kf, path, "smtp", "max_bad_commands", 1, 100000, &s->max_bad_commands, error) < 0 ||
	    get_string(kf, path, "smtp", "folder", NULL, &s->folder, error) < 0 ||
	    get_string(kf, path, "smtp", "sent_folder", NULL, &s->sent_folder, error) < 0 ||
	    get_string(kf, path, "smtp", "unknown_addresses", policies, &s->unknown_addresses, error) < 0 ||
	    get_string(kf, path, "smtp", "catchall_archive", NULL, &s->catchall_archive, error) < 0 ||
	    get_string(kf, path, "smtp", "internal_domains", NULL, &s->internal_domains, error) < 0)
		return -1;
	s->max_message_bytes = size_mb * 1024 * 1024;
	if (!enabled) {
		g_ptr_array_set_size(s->listen, 0);
		g_ptr_array_set_size(s->lmtp_listen, 0);
	}
	return 0;
}

/* [imap]: like [web], a file without the section (made before the IMAP
 * server) leaves it off.  Either listener list may be left out; at least
 * one is needed when the section is on. */
static int get_imap(GKeyFile *kf, const char *path, mv_service_config *c, GError **error)
{
	bool enabled = g_key_file_has_group(kf, "imap");
	int64_t idle_minutes = c->imap_idle_seconds / 60;
	if (enabled && (g_key_file_has_key(kf, "imap", "listen", NULL) || g_key_file_has_key(kf, "imap", "listen_tls", NULL))) {
		g_ptr_array_set_size(c->imap_listen, 0);
		g_ptr_array_set_size(c->imap_listen_tls, 0);
	}
	if (get_bool(kf, path, "imap", "enabled", &enabled, error) < 0 ||
	    get_listen(kf, path, "imap", "listen", c->imap_listen, error) < 0 ||
	    get_listen(kf, path, "imap", "listen_tls", c->imap_listen_tls, error) < 0 ||
	    get_bool(kf, path, "imap", "allow_plaintext_loopback", &c->imap_plaintext_loopback, error) < 0 ||
	    /* RFC 9051 5.4: at least 30 minutes of inactivity before an autologout. */
	    get_int(kf, path, "imap", "idle_timeout_minutes", 30, 24 * 60, &idle_minutes, error) < 0 ||
	    get_int(kf, path, "imap", "max_connections", 4, 100000, &c->imap_max_connections, error) < 0)
		return -1;
	c->imap_idle_seconds = idle_minutes * 60;
	if (!enabled) {
		g_ptr_array_set_size(c->imap_listen, 0);
		g_ptr_array_set_size(c->imap_listen_tls, 0);
	}
	return 0;
}

int mv_service_config_load(const char *path, mv_service_config *c_r, GError **error)
{
	GByteArray *data = NULL;
	if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: no such configuration file", path);
		return -1;
	}
	if (mv_read_file(path, CONFIG_MAX_BYTES, &data, error) < 0)
		return -1;
	GKeyFile *kf = g_key_file_new();
	GError *e = NULL;
	char *abs = g_canonicalize_filename(path, NULL);
	char *base = g_path_get_dirname(abs);
	mv_service_config c;
	mv_service_config_default(&c, abs, base);
	int rc = -1;
	if (!g_key_file_load_from_data(kf, (const char *)data->data, data->len, G_KEY_FILE_NONE, &e)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: %s", abs, e->message);
		g_error_free(e);
		goto out;
	}
	if (check_known(kf, abs, error) < 0 || get_path(kf, abs, "service", "data_dir", &c.data_dir, error) < 0)
		goto out;
	/* The certificate directory follows the data directory unless set. */
	g_free(c.certificate_dir);
	c.certificate_dir = g_build_filename(c.data_dir, "certs", NULL);
	if (get_bool(kf, abs, "service", "debug_log", &c.debug_log, error) < 0 ||
	    get_bool(kf, abs, "service", "safe_mode", &c.safe_mode, error) < 0 ||
	    get_listen(kf, abs, "api", "listen", c.listen, error) < 0 || get_web(kf, abs, &c, error) < 0 ||
	    get_imap(kf, abs, &c, error) < 0 || get_smtp(kf, abs, &c.smtp, error) < 0 ||
	    get_int(kf, abs, "api", "status_retention_seconds", 10, 7 * 86400, &c.status_retention_seconds, error) < 0 ||
	    get_int(kf, abs, "api", "max_connections", 4, 65536, &c.max_connections, error) < 0 ||
	    get_int(kf, abs, "api", "max_running_jobs", 1, 1024, &c.max_running_jobs, error) < 0 ||
	    get_int(kf, abs, "api", "max_queued_jobs", 0, 100000, &c.max_queued_jobs, error) < 0 ||
	    get_int(kf, abs, "search", "max_prefix_mb", 0, 1024 * 1024, &c.search_max_prefix_mb, error) < 0 ||
	    get_path(kf, abs, "tls", "certificate", &c.certificate, error) < 0 ||
	    get_path(kf, abs, "tls", "private_key", &c.private_key, error) < 0 ||
	    get_path(kf, abs, "tls", "certificate_dir", &c.certificate_dir, error) < 0)
		goto out;
	if ((c.certificate == NULL) != (c.private_key == NULL)) {
		invalid(error, abs, "tls", c.certificate ? "private_key" : "certificate",
		        "certificate and private_key go together: set both or neither");
		goto out;
	}
	*c_r = c;
	memset(&c, 0, sizeof c);
	rc = 0;
out:
	mv_service_config_clear(&c);
	g_key_file_free(kf);
	g_byte_array_unref(data);
	g_free(abs);
	g_free(base);
	return rc;
}

/* A path as written into the file: relative when inside the file's directory. */
static char *stored_path(const char *base, const char *path)
{
	size_t n = strlen(base);
	if (strncmp(path, base, n) == 0 && path[n] == '/')
		return g_strdup(path + n + 1);
	if (strcmp(path, base) == 0)
		return g_strdup(".");
	return g_strdup(path);
}

/* "HOST:PORT" or "A;B": GKeyFile's list writer would end even a single
 * address with ';', which reads as if a second one were missing.  An
 * address holds no ';' (mv_listen_parse), so nothing needs escaping. */
static void set_listen(GKeyFile *kf, const char *group, const char *key, const GPtrArray *listen)
{
	GString *v = g_string_new(NULL);
	for (guint i = 0; i < listen->len; i++)
		g_string_append_printf(v, "%s%s", i ? ";" : "", (const char *)g_ptr_array_index(listen, i));
	g_key_file_set_string(kf, group, key, v->str);
	g_string_free(v, TRUE);
}

static void set_path(GKeyFile *kf, const char *base, const char *group, const char *key, const char *path)
{
	if (!path)
		return;
	char *v = stored_path(base, path);
	g_key_file_set_string(kf, group, key, v);
	g_free(v);
}

/* Written in full even when off, so an admin sees every setting; the
 * example listener is the one a switch to enabled=true would use. */
static void set_smtp(GKeyFile *kf, const mv_smtp_config *s)
{
	bool on = s->listen->len > 0 || s->lmtp_listen->len > 0;
	g_key_file_set_boolean(kf, "smtp", "enabled", on);
	if (s->listen->len) {
		set_listen(kf, "smtp", "listen", s->listen);
	} else {
		char *example = g_strdup_printf("127.0.0.1:%d", MV_SMTP_DEFAULT_PORT);
		g_key_file_set_string(kf, "smtp", "listen", example);
		g_free(example);
	}
	if (s->lmtp_listen->len)
		set_listen(kf, "smtp", "lmtp_listen", s->lmtp_listen);
	if (s->lmtp_socket_group)
		g_key_file_set_string(kf, "smtp", "lmtp_socket_group", s->lmtp_socket_group);
	g_key_file_set_string(kf, "smtp", "allow_networks", s->allow_networks);
	g_key_file_set_boolean(kf, "smtp", "auth", s->auth);
	g_key_file_set_boolean(kf, "smtp", "require_tls", s->require_tls);
	g_key_file_set_boolean(kf, "smtp", "journal_reports", s->journal_reports);
	g_key_file_set_int64(kf, "smtp", "max_message_size_mb", s->max_message_bytes / (1024 * 1024));
	g_key_file_set_int64(kf, "smtp", "max_recipients", s->max_recipients);
	g_key_file_set_int64(kf, "smtp", "max_connections", s->max_connections);
	g_key_file_set_int64(kf, "smtp", "max_connections_per_address", s->max_connections_per_address);
	g_key_file_set_int64(kf, "smtp", "idle_timeout_seconds", s->idle_seconds);
	g_key_file_set_int64(kf, "smtp", "max_session_seconds", s->session_seconds);
	g_key_file_set_int64(kf, "smtp", "lock_wait_seconds", s->lock_wait_seconds);
	g_key_file_set_int64(kf, "smtp", "max_bad_commands", s->max_bad_commands);
	g_key_file_set_string(kf, "smtp", "folder", s->folder);
	g_key_file_set_string(kf, "smtp", "sent_folder", s->sent_folder);
	g_key_file_set_string(kf, "smtp", "unknown_addresses", s->unknown_addresses);
	g_key_file_set_string(kf, "smtp", "catchall_archive", s->catchall_archive);
	if (s->internal_domains)
		g_key_file_set_string(kf, "smtp", "internal_domains", s->internal_domains);
}

int mv_service_config_save(const mv_service_config *c, GError **error)
{
	char *base = g_path_get_dirname(c->path);
	GKeyFile *kf = g_key_file_new();
	g_key_file_set_comment(kf, NULL, NULL,
	                       " mailvault service configuration (mailvault serve).\n"
	                       " Relative paths are relative to this file's directory.\n"
	                       " SIGHUP re-reads it; SetServiceCertificate rewrites [tls].",
	                       NULL);
	set_path(kf, base, "service", "data_dir", c->data_dir);
	g_key_file_set_boolean(kf, "service", "debug_log", c->debug_log);
	g_key_file_set_boolean(kf, "service", "safe_mode", c->safe_mode);
	set_listen(kf, "api", "listen", c->listen);
	g_key_file_set_int64(kf, "api", "status_retention_seconds", c->status_retention_seconds);
	g_key_file_set_int64(kf, "api", "max_connections", c->max_connections);
	g_key_file_set_int64(kf, "api", "max_running_jobs", c->max_running_jobs);
	g_key_file_set_int64(kf, "api", "max_queued_jobs", c->max_queued_jobs);
	g_key_file_set_int64(kf, "search", "max_prefix_mb", c->search_max_prefix_mb);
	g_key_file_set_comment(kf, "search", "max_prefix_mb",
	                       " A prefix query (word*) whose words fill more of one store's index than this is"
	                       " refused:\n FTS5 merges them all in memory first.  0 = no limit.",
	                       NULL);
	g_key_file_set_boolean(kf, "web", "enabled", c->web_listen->len > 0);
	if (c->web_listen->len)
		set_listen(kf, "web", "listen", c->web_listen);
	g_key_file_set_int64(kf, "web", "idle_timeout_minutes", c->web_idle_seconds / 60);
	g_key_file_set_int64(kf, "web", "session_hours", c->web_session_seconds / 3600);
	bool imap = c->imap_listen->len > 0 || c->imap_listen_tls->len > 0;
	g_key_file_set_boolean(kf, "imap", "enabled", imap);
	if (c->imap_listen_tls->len)
		set_listen(kf, "imap", "listen_tls", c->imap_listen_tls);
	if (c->imap_listen->len)
		set_listen(kf, "imap", "listen", c->imap_listen);
	g_key_file_set_boolean(kf, "imap", "allow_plaintext_loopback", c->imap_plaintext_loopback);
	g_key_file_set_int64(kf, "imap", "idle_timeout_minutes", c->imap_idle_seconds / 60);
	g_key_file_set_int64(kf, "imap", "max_connections", c->imap_max_connections);
	set_smtp(kf, &c->smtp);
	set_path(kf, base, "tls", "certificate", c->certificate);
	set_path(kf, base, "tls", "private_key", c->private_key);
	set_path(kf, base, "tls", "certificate_dir", c->certificate_dir);
	gsize len = 0;
	char *text = g_key_file_to_data(kf, &len, NULL);
	int rc = mv_write_file_atomic(c->path, text, len, 0600, error);
	g_free(text);
	g_key_file_free(kf);
	g_free(base);
	return rc;
}
