/* commands/cmd_service: the functions about the service itself —
 * GetServiceConfiguration, SetServiceCertificate, GetActiveSessions.
 *
 * The configuration lives in the service's file (base/config.c), not in
 * master.sqlite, because it says where master.sqlite is.  When a server
 * runs, its hooks name the file in use and take a reload request; on the
 * command line the data directory's own mailvault.conf is meant, and a
 * change there takes effect at the server's next start. */
#include "commands/commands.h"
#include "net/tls.h"

#include <string.h>

static char *config_path(mv_command_ctx *ctx)
{
	if (ctx->service && ctx->service->config_path)
		return g_strdup(ctx->service->config_path);
	return g_build_filename(mv_instance_data_dir(ctx->inst), "mailvault.conf", NULL);
}

/* The file's configuration, or the defaults of a service that never ran.
 * GetServiceConfiguration shows the running configuration instead when a
 * server runs; SetServiceCertificate always changes the file. */
static int load_config(mv_command_ctx *ctx, mv_service_config *c, GError **error)
{
	char *path = config_path(ctx);
	GError *e = NULL;
	int rc = mv_service_config_load(path, c, &e);
	if (rc < 0 && e->code == MV_ERR_NOT_FOUND) {
		g_error_free(e);
		mv_service_config_default(c, path, mv_instance_data_dir(ctx->inst));
		rc = 0;
	} else if (rc < 0) {
		g_propagate_error(error, e);
	}
	g_free(path);
	return rc;
}

static json_t *certificate_json(const mv_service_config *c)
{
	if (!c->certificate)
		return json_null();
	mv_cert_info info = { 0 };
	GError *e = NULL;
	if (mv_tls_cert_info(c->certificate, &info, &e) < 0) {
		json_t *j = json_pack("{s:s, s:s}", "path", c->certificate, "error", e->message);
		g_error_free(e);
		return j;
	}
	char *nb = mv_format_time_utc(info.not_before), *na = mv_format_time_utc(info.not_after);
	json_t *names = json_array();
	for (guint i = 0; i < info.dns_names->len; i++)
		json_array_append_new(names, json_string(g_ptr_array_index(info.dns_names, i)));
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "path", c->certificate, "thumbprint",
	                      info.thumbprint, "subject", info.subject, "issuer", info.issuer, "notBefore", nb,
	                      "notAfter", na, "names", names);
	g_free(nb);
	g_free(na);
	mv_cert_info_clear(&info);
	return j;
}

static json_t *endpoints_json(const mv_service_config *c)
{
	json_t *out = json_array();
	GPtrArray *listen = c->listen;
	for (guint i = 0; i < listen->len; i++) {
		char *host = NULL;
		int port = 0;
		if (mv_listen_parse(g_ptr_array_index(listen, i), &host, &port, NULL) < 0)
			continue;
		json_array_append_new(out, json_pack("{s:s, s:s, s:i, s:b}", "protocol", "AdministrationApi",
		                                     "address", host, "port", port, "tls", 1));
		g_free(host);
	}
	return out;
}

static json_t *get_service_configuration(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_service_config c;
	if (ctx->service && ctx->service->running)
		ctx->service->running(ctx->service->opaque, &c);
	else if (load_config(ctx, &c, error) < 0)
		return NULL;
	char *master = g_build_filename(c.data_dir, "master.sqlite", NULL);
	json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:s, s:b}",
	                        "configurationFile", c.path, "dataDirectory", c.data_dir, "masterDatabasePath", master,
	                        "auditLogLocation", "master.sqlite, table audit_log (mailvault audit)", "debugLog",
	                        c.debug_log, "safeMode", c.safe_mode, "statusRetentionSeconds",
	                        (json_int_t)c.status_retention_seconds, "maxRunningJobs", (json_int_t)c.max_running_jobs,
	                        "maxQueuedJobs", (json_int_t)c.max_queued_jobs, "searchMaxPrefixMb",
	                        (json_int_t)c.search_max_prefix_mb, "endpoints", endpoints_json(&c),
	                        "certificate", certificate_json(&c), "certificateDirectory", c.certificate_dir,
	                        "running", ctx->service != NULL);
	g_free(master);
	mv_service_config_clear(&c);
	return out;
}

static int pick_certificate(mv_command_ctx *ctx, json_t *args, const mv_service_config *c, char **cert_r,
                            char **key_r, GError **error)
{
	const char *thumbprint = mv_arg_string(args, "thumbprint");
	const char *cert = mv_arg_string(args, "certificatePath"), *key = mv_arg_string(args, "keyPath");
	if ((thumbprint != NULL) == (cert != NULL) || (cert != NULL) != (key != NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "SetServiceCertificate: give either 'thumbprint' (of a NAME.crt/NAME.key pair in %s) or "
		            "both 'certificatePath' and 'keyPath'", c->certificate_dir);
		return -1;
	}
	if (thumbprint)
		return mv_tls_find_by_thumbprint(c->certificate_dir, thumbprint, cert_r, key_r, error);
	*cert_r = g_canonicalize_filename(cert, NULL);
	*key_r = g_canonicalize_filename(key, NULL);
	return 0;
}

static json_t *set_service_certificate(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_service_config c;
	if (load_config(ctx, &c, error) < 0)
		return NULL;
	char *cert = NULL, *key = NULL;
	json_t *out = NULL;
	if (pick_certificate(ctx, args, &c, &cert, &key, error) < 0 || mv_tls_check_pair(cert, key, error) < 0 ||
	    mv_tls_key_private_check(key, error) < 0)
		goto done;
	g_free(c.certificate);
	g_free(c.private_key);
	c.certificate = g_steal_pointer(&cert);
	c.private_key = g_steal_pointer(&key);
	if (mv_service_config_save(&c, error) < 0)
		goto done;
	if (ctx->service && ctx->service->reload) {
		ctx->service->reload(ctx->service->opaque);
		mv_command_log(ctx, "the server switches to the new certificate now");
	} else {
		mv_command_log(ctx, "%s updated; the server uses the certificate from its next start", c.path);
	}
	out = certificate_json(&c);
done:
	g_free(cert);
	g_free(key);
	mv_service_config_clear(&c);
	return out;
}

static json_t *get_active_sessions(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (!ctx->service || !ctx->service->sessions)
		return json_array();
	return ctx->service->sessions(ctx->service->opaque);
}

static const mv_command_arg args_none[] = { { .name = NULL } };
static const mv_command_arg args_certificate[] = {
	{ "thumbprint", MV_ARG_STRING, true, NULL },
	{ "certificatePath", MV_ARG_STRING, true, NULL },
	{ "keyPath", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};

const mv_command mv_commands_service[] = {
	{ "GetServiceConfiguration", args_none, "admin", false, get_service_configuration,
	  "the service configuration: data, listeners, certificate, logging, safe mode (no secrets)", NULL },
	{ "SetServiceCertificate", args_certificate, "admin", false, set_service_certificate,
	  "switch the TLS certificate (by thumbprint, or by certificate and key paths)", NULL },
	{ "GetActiveSessions", args_none, "admin", false, get_active_sessions,
	  "who used the server in the last 30 minutes, from where", NULL },
	{ .name = NULL },
};
