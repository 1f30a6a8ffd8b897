/* cli/serve: `mailvault serve` — the instance as a long-lived server.
 *
 * The main thread owns the process's life: it reads the service
 * configuration (creating it, and a self-signed certificate, on first
 * start), takes the data directory's server lock, starts the API
 * listeners, and then only waits for signals — SIGTERM/SIGINT stop
 * cleanly (no new connections; waiting get-status calls are answered with
 * their job's current status; requests in flight finish; running jobs
 * stop at a safe point), SIGHUP re-reads the configuration.  Every other thread
 * has these signals blocked, so they arrive here and nowhere else;
 * SetServiceCertificate asks for a reload by sending SIGHUP to the process,
 * so there is one way in. */
#include "api/api.h"
#include "web/web.h"
#include "imapd/imapd.h"
#include "smtpd/smtpd.h"
#include "jobs/scheduler.h"
#include "cli/cli.h"
#include "search/search.h"
#include "net/tls.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CERT_DAYS 825

/* The file to use: --config, else the data directory's mailvault.conf
 * (written with defaults on first start). */
static int load_or_create_config(const mv_cli_globals *g, const char *config_opt, mv_service_config *c,
                                 GError **error)
{
	if (config_opt) {
		if (mv_service_config_load(config_opt, c, error) < 0)
			return -1;
		if (g->data_dir) {
			g_free(c->data_dir);
			c->data_dir = mv_data_dir_resolve(g->data_dir);
		}
		return 0;
	}
	char *dir = mv_data_dir_resolve(g->data_dir);
	char *path = g_build_filename(dir, "mailvault.conf", NULL);
	GError *e = NULL;
	int rc = mv_service_config_load(path, c, &e);
	if (rc < 0 && e->code == MV_ERR_NOT_FOUND) {
		g_clear_error(&e);
		mv_service_config_default(c, path, dir);
		rc = mv_service_config_save(c, error);
		if (rc == 0)
			printf("configuration: %s (new, with defaults)\n", path);
	} else if (rc < 0) {
		g_propagate_error(error, e);
	}
	g_free(path);
	g_free(dir);
	return rc;
}

/* First start without a certificate: a self-signed one in the
 * certificate directory, recorded in the configuration. */
static int ensure_certificate(mv_service_config *c, GError **error)
{
	if (c->certificate) {
		/* A key others can read was configured by hand: said loudly at
		 * every start, not refused (the server must come up to be fixed). */
		GError *open_key = NULL;
		if (c->private_key && mv_tls_key_private_check(c->private_key, &open_key) < 0) {
			mv_log_warn("WARNING: %s", open_key->message);
			g_error_free(open_key);
		}
		return mv_tls_check_pair(c->certificate, c->private_key, error);
	}
	char host[256] = "";
	if (gethostname(host, sizeof host - 1) < 0 || !*host)
		g_strlcpy(host, "localhost", sizeof host);
	const char *names[] = { "localhost", host, "127.0.0.1", "::1", NULL };
	if (strcmp(host, "localhost") == 0)
		names[1] = "127.0.0.1", names[2] = "::1", names[3] = NULL;
	char *cert = g_build_filename(c->certificate_dir, "server.crt", NULL);
	char *key = g_build_filename(c->certificate_dir, "server.key", NULL);
	int rc = mv_tls_generate_self_signed(cert, key, names, CERT_DAYS, error);
	if (rc == 0) {
		c->certificate = cert;
		c->private_key = key;
		rc = mv_service_config_save(c, error);
		printf("certificate: %s (new, self-signed; clients trust it with --cacert %s)\n", cert, cert);
	} else {
		g_free(cert);
		g_free(key);
	}
	return rc;
}

static void print_certificate(const mv_service_config *c)
{
	mv_cert_info info = { 0 };
	GError *e = NULL;
	if (mv_tls_cert_info(c->certificate, &info, &e) < 0) {
		mv_log_warn("%s", e->message);
		g_error_free(e);
		return;
	}
	char *until = mv_format_time_utc(info.not_after);
	printf("certificate: %s, %s, thumbprint %s, valid until %s\n", c->certificate, info.subject, info.thumbprint,
	       until);
	g_free(until);
	mv_cert_info_clear(&info);
}

/* Makes sure the instance has an administrator; a new one's password is
 * printed once. */
static int prepare_instance(const mv_service_config *c, GError **error)
{
	mv_instance *inst = mv_instance_open(c->data_dir, error);
	if (!inst)
		return -1;
	/* Holding the data directory, no run can be going: any still marked in
	 * progress was cut off when the last server or import stopped. */
	int settled = 0;
	GError *err = NULL;
	if (mv_worker_runs_settle(inst, &settled, &err) < 0) {
		mv_log_warn("interrupted runs were not reported: %s", err->message);
		g_clear_error(&err);
	} else if (settled) {
		mv_log_warn("%d run(s) were interrupted by the last stop; their worker results say so", settled);
	}
	char *password = NULL;
	int rc = mv_users_ensure_admin(inst, &password, error);
	if (rc == 0 && password) {
		printf("first administrator: admin, password: %s (shown once; change it with SetUserPassword)\n",
		       password);
		sodium_memzero(password, strlen(password));
	}
	g_free(password);
	mv_instance_close(&inst);
	return rc;
}

static char *first_url(GPtrArray *listen)
{
	char *host = NULL;
	int port = MV_API_DEFAULT_PORT;
	if (listen->len == 0 || mv_listen_parse(g_ptr_array_index(listen, 0), &host, &port, NULL) < 0)
		return g_strdup("https://localhost:8463");
	const char *shown = strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ? "localhost" : host;
	char *url = strchr(shown, ':') ? g_strdup_printf("https://[%s]:%d", shown, port)
	                               : g_strdup_printf("https://%s:%d", shown, port);
	g_free(host);
	return url;
}

static void apply_runtime(const mv_service_config *c, bool debug_flag)
{
	mv_log_set_debug(debug_flag || c->debug_log);
	mv_search_set_max_prefix_bytes(c->search_max_prefix_mb << 20);
	if (c->safe_mode)
		mv_log_info("safe mode: archiving profiles and jobs are held until safe mode is switched off");
}

/* What the command line says for this run only (never saved). */
typedef struct overrides {
	GPtrArray *listen;           /* --listen, or NULL */
	GPtrArray *web_listen;       /* --web-listen, or NULL */
	GPtrArray *imap_listen;      /* --imap-listen, or NULL */
	GPtrArray *imap_listen_tls;  /* --imap-listen-tls, or NULL */
	GPtrArray *smtp_listen;      /* --smtp-listen, or NULL */
	GPtrArray *lmtp_listen;      /* --lmtp-listen, or NULL */
	bool no_web, no_imap, no_smtp;
	bool safe_mode;
	bool debug;
} overrides;

static void apply_overrides(mv_service_config *c, const overrides *o)
{
	if (o->listen) {
		g_ptr_array_unref(c->listen);
		c->listen = g_ptr_array_ref(o->listen);
	}
	if (o->web_listen) {
		g_ptr_array_unref(c->web_listen);
		c->web_listen = g_ptr_array_ref(o->web_listen);
	}
	if (o->no_web)
		g_ptr_array_set_size(c->web_listen, 0);
	/* Either IMAP option replaces both lists: a test names exactly what it wants. */
	if (o->imap_listen || o->imap_listen_tls) {
		g_ptr_array_set_size(c->imap_listen, 0);
		g_ptr_array_set_size(c->imap_listen_tls, 0);
		for (guint i = 0; o->imap_listen && i < o->imap_listen->len; i++)
			g_ptr_array_add(c->imap_listen, g_strdup(o->imap_listen->pdata[i]));
		for (guint i = 0; o->imap_listen_tls && i < o->imap_listen_tls->len; i++)
			g_ptr_array_add(c->imap_listen_tls, g_strdup(o->imap_listen_tls->pdata[i]));
	}
	if (o->no_imap) {
		g_ptr_array_set_size(c->imap_listen, 0);
		g_ptr_array_set_size(c->imap_listen_tls, 0);
	}
	/* Like IMAP's: either SMTP option replaces both lists. */
	if (o->smtp_listen || o->lmtp_listen) {
		g_ptr_array_set_size(c->smtp.listen, 0);
		g_ptr_array_set_size(c->smtp.lmtp_listen, 0);
		for (guint i = 0; o->smtp_listen && i < o->smtp_listen->len; i++)
			g_ptr_array_add(c->smtp.listen, g_strdup(o->smtp_listen->pdata[i]));
		for (guint i = 0; o->lmtp_listen && i < o->lmtp_listen->len; i++)
			g_ptr_array_add(c->smtp.lmtp_listen, g_strdup(o->lmtp_listen->pdata[i]));
	}
	if (o->no_smtp) {
		g_ptr_array_set_size(c->smtp.listen, 0);
		g_ptr_array_set_size(c->smtp.lmtp_listen, 0);
	}
	c->safe_mode = c->safe_mode || o->safe_mode;
}

typedef struct servers {
	mv_api_server *api;
	mv_scheduler *scheduler;
	mv_web_server *web;
	mv_imapd *imap;
	mv_smtpd *smtp;
	mv_logon *logon;
} servers;

/* Web Access follows the configuration: started, reloaded or stopped. */
static int reload_web(servers *sv, const mv_service_config *c, GError **error)
{
	if (c->web_listen->len == 0) {
		mv_web_server_stop(&sv->web);
		return 0;
	}
	if (sv->web)
		return mv_web_server_reload(sv->web, c, error);
	sv->web = mv_web_server_start(c, sv->logon, error);
	return sv->web ? 0 : -1;
}

/* The IMAP server follows the configuration too. */
static int reload_imap(servers *sv, const mv_service_config *c, GError **error)
{
	if (c->imap_listen->len == 0 && c->imap_listen_tls->len == 0) {
		mv_imapd_stop(&sv->imap);
		return 0;
	}
	if (sv->imap)
		return mv_imapd_reload(sv->imap, c, error);
	sv->imap = mv_imapd_start(c, sv->logon, error);
	return sv->imap ? 0 : -1;
}

static int reload_smtp(servers *sv, const mv_service_config *c, GError **error)
{
	if (c->smtp.listen->len == 0 && c->smtp.lmtp_listen->len == 0) {
		mv_smtpd_stop(&sv->smtp);
		return 0;
	}
	if (sv->smtp)
		return mv_smtpd_reload(sv->smtp, c, error);
	sv->smtp = mv_smtpd_start(c, sv->logon, error);
	return sv->smtp ? 0 : -1;
}

static void print_smtp(const mv_service_config *c)
{
	GString *s = g_string_new("SMTP/LMTP archiving:");
	for (guint i = 0; i < c->smtp.listen->len; i++)
		g_string_append_printf(s, " smtp://%s", (const char *)c->smtp.listen->pdata[i]);
	for (guint i = 0; i < c->smtp.lmtp_listen->len; i++) {
		const char *l = c->smtp.lmtp_listen->pdata[i];
		g_string_append_printf(s, g_str_has_prefix(l, "unix:") ? " lmtp:%s" : " lmtp://%s", l);
	}
	printf("%s\n", s->str);
	g_string_free(s, TRUE);
}

static void print_imap(const mv_service_config *c)
{
	GString *s = g_string_new("IMAP (read-only):");
	for (guint i = 0; i < c->imap_listen_tls->len; i++)
		g_string_append_printf(s, " imaps://%s", (const char *)c->imap_listen_tls->pdata[i]);
	for (guint i = 0; i < c->imap_listen->len; i++)
		g_string_append_printf(s, " imap://%s (STARTTLS)", (const char *)c->imap_listen->pdata[i]);
	printf("%s\n", s->str);
	g_string_free(s, TRUE);
}

/* Re-reads the configuration (SIGHUP) and applies what can change live. */
static void reload(servers *sv, const char *path, const overrides *o)
{
	mv_service_config c;
	GError *e = NULL;
	if (mv_service_config_load(path, &c, &e) < 0 || ensure_certificate(&c, &e) < 0) {
		mv_log_error("reload: %s; keeping the running configuration", e->message);
		g_error_free(e);
		return;
	}
	apply_overrides(&c, o);
	apply_runtime(&c, o->debug);
	if (mv_api_server_reload(sv->api, &c, &e) < 0 || reload_web(sv, &c, &e) < 0 || reload_imap(sv, &c, &e) < 0 ||
	    reload_smtp(sv, &c, &e) < 0) {
		mv_log_error("reload: %s", e->message);
		g_error_free(e);
	} else {
		mv_scheduler_set_safe_mode(sv->scheduler, c.safe_mode);
		mv_log_info("configuration reloaded from %s", path);
	}
	mv_service_config_clear(&c);
}

static int wait_for_signals(servers *sv, const sigset_t *set, const char *path, const overrides *o)
{
	for (;;) {
		int sig = 0;
		int rc = sigwait(set, &sig);
		if (rc != 0) {
			mv_log_error("sigwait: %s", g_strerror(rc));
			return -1;
		}
		if (sig == SIGHUP) {
			reload(sv, path, o);
			continue;
		}
		mv_log_info("%s: stopping (get-status waits answered, requests in flight finish, running jobs stop at "
		            "a safe point)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return 0;
	}
}

static GPtrArray *listen_from_option(char **items)
{
	if (!items || !*items)
		return NULL;
	GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
	for (char **p = items; *p; p++)
		g_ptr_array_add(a, g_strdup(*p));
	return a;
}

static int check_listen(GPtrArray *listen, GError **error)
{
	for (guint i = 0; listen && i < listen->len; i++) {
		char *host = NULL;
		int port;
		if (mv_listen_parse(g_ptr_array_index(listen, i), &host, &port, error) < 0)
			return -1;
		g_free(host);
	}
	return 0;
}

static int serve(const mv_cli_globals *g, const char *config_opt, overrides *o)
{
	mv_service_config c = { 0 };
	GError *err = NULL;
	servers sv = { .logon = mv_logon_new() };
	int lock_fd = -1, status = MV_EXIT_FAIL;
	char *url = NULL, *who = NULL;
	if (check_listen(o->listen, &err) < 0 || check_listen(o->web_listen, &err) < 0 ||
	    check_listen(o->imap_listen, &err) < 0 || check_listen(o->imap_listen_tls, &err) < 0 ||
	    check_listen(o->smtp_listen, &err) < 0 ||
	    load_or_create_config(g, config_opt, &c, &err) < 0)
		goto out;
	apply_runtime(&c, g->debug);
	url = first_url(o->listen ? o->listen : c.listen);
	who = g_strdup_printf("pid %d, %s", (int)getpid(), url);
	if (mv_server_lock_acquire(c.data_dir, who, &lock_fd, &err) < 0 || prepare_instance(&c, &err) < 0 ||
	    ensure_certificate(&c, &err) < 0)
		goto out;
	/* Command-line overrides apply to this run only: applied after the
	 * last time the configuration is saved. */
	apply_overrides(&c, o);
	/* One malloc arena per connection thread would keep the peak of every
	 * thread that ever built a large reply; a few shared arenas return
	 * memory to reuse. */
	mallopt(M_ARENA_MAX, 4);
	/* Blocked before any thread starts, so that every thread inherits it. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!(sv.api = mv_api_server_start(&c, sv.logon, &err)) || reload_web(&sv, &c, &err) < 0 ||
	    reload_imap(&sv, &c, &err) < 0 || reload_smtp(&sv, &c, &err) < 0)
		goto out;
	mv_scheduler_options so = { .data_dir = c.data_dir, .safe_mode = c.safe_mode,
		                    .service = mv_api_server_hooks(sv.api) };
	if (!(sv.scheduler = mv_scheduler_start(&so, &err)))
		goto out;
	print_certificate(&c);
	printf("data directory: %s\n", c.data_dir);
	printf("Administration API: %s/api/ (POST invoke/<Function>, get-status, cancel-async, get-metadata)\n", url);
	if (sv.web) {
		char *web_url = first_url(c.web_listen);
		printf("Web Access: %s/\n", web_url);
		g_free(web_url);
	}
	if (sv.imap)
		print_imap(&c);
	if (sv.smtp)
		print_smtp(&c);
	printf("mailvault %s serving (pid %d)%s; SIGHUP reloads %s, SIGTERM stops\n", MV_VERSION, (int)getpid(),
	       c.safe_mode ? " in safe mode" : "", c.path);
	fflush(stdout);
	if (wait_for_signals(&sv, &set, c.path, o) == 0)
		status = MV_EXIT_OK;
out:
	if (err) {
		fprintf(stderr, "mailvault: %s\n", err->message);
		g_error_free(err);
	}
	/* API clients waiting on get-status get their answer now, not after
	 * the other servers have finished stopping. */
	mv_api_server_quiesce(sv.api);
	/* Before the API: the runs borrow its service hooks. */
	mv_scheduler_stop(&sv.scheduler);
	mv_logon_stop(sv.logon);
	mv_imapd_stop(&sv.imap);
	mv_smtpd_stop(&sv.smtp);
	mv_web_server_stop(&sv.web);
	mv_api_server_stop(&sv.api);
	mv_logon_free(&sv.logon);
	mv_server_lock_release(lock_fd);
	mv_service_config_clear(&c);
	g_free(url);
	g_free(who);
	if (status == MV_EXIT_OK)
		mv_log_info("stopped");
	return status;
}

int mv_cli_serve(const mv_cli_globals *g, int argc, char **argv)
{
	char *config = NULL;
	char **listen = NULL, **web_listen = NULL, **imap_listen = NULL, **imap_listen_tls = NULL;
	char **smtp_listen = NULL, **lmtp_listen = NULL;
	gboolean safe_mode = FALSE, no_web = FALSE, no_imap = FALSE, no_smtp = FALSE;
	GOptionEntry entries[] = {
		{ "config", 'c', 0, G_OPTION_ARG_FILENAME, &config, "service configuration file (default: DATA/mailvault.conf)",
		  "FILE" },
		{ "listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &listen,
		  "the API listens on HOST:PORT instead (repeatable; not saved)", "HOST:PORT" },
		{ "web-listen", 0, 0, G_OPTION_ARG_STRING_ARRAY, &web_listen,
		  "Web Access listens on HOST:PORT instead (repeatable; not saved)", "HOST:PORT" },
		{ "no-web", 0, 0, G_OPTION_ARG_NONE, &no_web, "do not serve Web Access this time", NULL },
		{ "imap-listen", 0, 0, G_OPTION_ARG_STRING_ARRAY, &imap_listen,
		  "IMAP (STARTTLS) listens on HOST:PORT instead (repeatable; not saved)", "HOST:PORT" },
		{ "imap-listen-tls", 0, 0, G_OPTION_ARG_STRING_ARRAY, &imap_listen_tls,
		  "IMAP over TLS listens on HOST:PORT instead (repeatable; not saved)", "HOST:PORT" },
		{ "no-imap", 0, 0, G_OPTION_ARG_NONE, &no_imap, "do not serve IMAP this time", NULL },
		{ "smtp-listen", 0, 0, G_OPTION_ARG_STRING_ARRAY, &smtp_listen,
		  "SMTP archiving listens on HOST:PORT instead (repeatable; not saved)", "HOST:PORT" },
		{ "lmtp-listen", 0, 0, G_OPTION_ARG_STRING_ARRAY, &lmtp_listen,
		  "LMTP archiving listens on HOST:PORT or unix:PATH instead (repeatable; not saved)", "ADDRESS" },
		{ "no-smtp", 0, 0, G_OPTION_ARG_NONE, &no_smtp, "do not serve SMTP/LMTP this time", NULL },
		{ "safe-mode", 0, 0, G_OPTION_ARG_NONE, &safe_mode, "start with archiving profiles and jobs held", NULL },
		G_OPTION_ENTRY_NULL
	};
	if (!mv_cli_parse("serve", "", "Run the server (the Administration API and Web Access over HTTPS, the read-only IMAP server, SMTP/LMTP archiving) until SIGTERM.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	overrides o = { .listen = listen_from_option(listen), .web_listen = listen_from_option(web_listen),
		        .imap_listen = listen_from_option(imap_listen), .imap_listen_tls = listen_from_option(imap_listen_tls),
		        .smtp_listen = listen_from_option(smtp_listen), .lmtp_listen = listen_from_option(lmtp_listen),
		        .no_web = no_web, .no_imap = no_imap, .no_smtp = no_smtp, .safe_mode = safe_mode, .debug = g->debug };
	int rc = argc == 1 ? serve(g, config, &o) : MV_EXIT_USAGE;
	if (argc != 1)
		fprintf(stderr, "usage: mailvault serve [--config FILE] [--listen HOST:PORT] [--web-listen HOST:PORT] "
		        "[--no-web] [--imap-listen HOST:PORT] [--imap-listen-tls HOST:PORT] [--no-imap] [--smtp-listen HOST:PORT] "
		        "[--lmtp-listen HOST:PORT|unix:PATH] [--no-smtp] [--safe-mode]\n");
	if (o.listen)
		g_ptr_array_unref(o.listen);
	if (o.web_listen)
		g_ptr_array_unref(o.web_listen);
	if (o.imap_listen)
		g_ptr_array_unref(o.imap_listen);
	if (o.imap_listen_tls)
		g_ptr_array_unref(o.imap_listen_tls);
	if (o.smtp_listen)
		g_ptr_array_unref(o.smtp_listen);
	if (o.lmtp_listen)
		g_ptr_array_unref(o.lmtp_listen);
	g_strfreev(smtp_listen);
	g_strfreev(lmtp_listen);
	g_free(config);
	g_strfreev(imap_listen);
	g_strfreev(imap_listen_tls);
	g_strfreev(listen);
	g_strfreev(web_listen);
	return rc;
}
