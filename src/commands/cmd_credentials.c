/* commands/cmd_credentials: the Administration API functions about
 * credentials — CreateCredential, DeleteCredential, GetCredential,
 * GetCredentials, SetCredentialDescription and SetCredentialSettings, with
 * MailStore's names and arguments, plus the settings of our own types as
 * optional arguments: userName, password (Password), clientSecret
 * (OAuthClientSecret).
 *
 * archive/credentials.c keeps the rules (which settings a type takes, what
 * values may be); here arguments become settings, and
 * SetCredentialSettings --createNewCertificate=true has net/ make the
 * certificate and its private key, which archive/ (below net/) cannot.  An
 * argument the credential's type does not take is refused before anything
 * is made.  Secret arguments are typed MV_ARG_SECRET, so the registry writes
 * them nowhere; no result, log line, audit note or error holds a secret.
 *
 * Results: CreateCredential, GetCredential and SetCredentialSettings the
 * credential {id, type, description, then what its type takes — tenantId,
 * applicationId and certificate {pem, thumbprint, subject, notBefore,
 * notAfter} or null (Office365_Modern); userName (Password); tenantId,
 * applicationId (OAuthClientSecret) — null where unset, and hasSecret};
 * GetCredentials a list of them; DeleteCredential and
 * SetCredentialDescription null. */
#include "commands/commands.h"
#include "net/tls.h"

#include <sodium.h>
#include <string.h>

/* Two years, as Entra ID suggests for a credential of an app registration:
 * GetCredential shows notAfter, and a new certificate is one call away. */
#define CERTIFICATE_DAYS 730

/* The arguments that set something, in the order refusals check them. */
static const char *const setting_args[] = { "tenantId", "applicationId", "createNewCertificate",
	                                    "userName", "password", "clientSecret" };

static json_t *failed(const char *function, GError **error)
{
	g_prefix_error(error, "%s: ", function);
	return NULL;
}

static json_t *text_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* ---- the answer -------------------------------------------------------------------------------- */

static json_t *certificate_json(const mv_credential *c)
{
	if (!c->certificate)
		return json_null();
	char *nb = mv_format_time_utc(c->not_before), *na = mv_format_time_utc(c->not_after);
	json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:s}", "pem", c->certificate, "thumbprint",
	                      text_or_null(c->thumbprint), "subject", text_or_null(c->subject), "notBefore", nb,
	                      "notAfter", na);
	g_free(nb);
	g_free(na);
	return o;
}

/* A setting is shown when the type takes it, null when unset. */
static void add_setting(json_t *o, const mv_credential *c, const char *arg, json_t *value)
{
	if (mv_credential_check_arg(c->type, arg, NULL) == 0)
		json_object_set_new(o, arg, value);
	else
		json_decref(value);
}

static json_t *credential_json(const mv_credential *c)
{
	json_t *o = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)c->id, "type", mv_credential_type_name(c->type),
	                      "description", c->description ? c->description : "");
	add_setting(o, c, "tenantId", text_or_null(c->tenant_id));
	add_setting(o, c, "applicationId", text_or_null(c->application_id));
	add_setting(o, c, "userName", text_or_null(c->user_name));
	if (mv_credential_check_arg(c->type, "createNewCertificate", NULL) == 0)
		json_object_set_new(o, "certificate", certificate_json(c));
	json_object_set_new(o, "hasSecret", json_boolean(c->has_secret));
	return o;
}

static json_t *credential_result(mv_command_ctx *ctx, int64_t id, const char *function, GError **error)
{
	mv_credential *c = mv_credential_get(ctx->inst, id, error);
	if (!c)
		return failed(function, error);
	json_t *o = credential_json(c);
	mv_credential_free(c);
	return o;
}

/* ---- arguments ------------------------------------------------------------------------------------ */

/* Every setting argument present must be one the type takes. */
static int check_type_args(mv_credential_type type, json_t *args, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(setting_args); i++)
		if (mv_arg_present(args, setting_args[i]) && mv_credential_check_arg(type, setting_args[i], error) < 0)
			return -1;
	return 0;
}

static mv_credential_settings settings_of(json_t *args)
{
	return (mv_credential_settings){
		.tenant_id = mv_arg_string(args, "tenantId"),
		.application_id = mv_arg_string(args, "applicationId"),
		.user_name = mv_arg_string(args, "userName"),
		.password = mv_arg_string(args, "password"),
		.client_secret = mv_arg_string(args, "clientSecret"),
	};
}

/* ---- the functions --------------------------------------------------------------------------------- */

static json_t *create_credential(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "CreateCredential";
	mv_credential_type type;
	if (mv_credential_type_parse(mv_arg_string(args, "type"), &type, error) < 0 ||
	    check_type_args(type, args, error) < 0)
		return failed(function, error);
	mv_credential_settings s = settings_of(args);
	int64_t id = 0;
	if (mv_credential_create(ctx->inst, type, mv_arg_string(args, "description"), &s, &id, error) < 0)
		return failed(function, error);
	mv_command_log(ctx, "credential %" G_GINT64_FORMAT " (%s) created", id, mv_credential_type_name(type));
	mv_command_audit_note(ctx, "credential %" G_GINT64_FORMAT " created", id);
	return credential_result(ctx, id, function, error);
}

static json_t *get_credential(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return credential_result(ctx, mv_arg_number(args, "id", 0), "GetCredential", error);
}

static json_t *get_credentials(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *all = mv_credentials_list(ctx->inst, error);
	if (!all)
		return failed("GetCredentials", error);
	json_t *list = json_array();
	for (guint i = 0; i < all->len; i++)
		json_array_append_new(list, credential_json(all->pdata[i]));
	g_ptr_array_free(all, TRUE);
	return list;
}

static json_t *set_credential_description(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (mv_credential_set_description(ctx->inst, mv_arg_number(args, "id", 0), mv_arg_string(args, "description"),
	                                  error) < 0)
		return failed("SetCredentialDescription", error);
	return json_null();
}

/* What net/ made, in the form archive/ keeps. */
typedef struct new_certificate {
	char *pem, *private_key_pem;
	mv_cert_info info;
	mv_credential_cert cert;
} new_certificate;

static int make_certificate(int64_t id, new_certificate *n, GError **error)
{
	char *cn = g_strdup_printf("mailvault credential %" G_GINT64_FORMAT, id);
	int rc = mv_tls_generate_client_certificate(cn, CERTIFICATE_DAYS, &n->pem, &n->private_key_pem, &n->info, error);
	g_free(cn);
	if (rc < 0)
		return -1;
	n->cert = (mv_credential_cert){ .pem = n->pem, .private_key_pem = n->private_key_pem,
		                        .thumbprint = n->info.thumbprint, .subject = n->info.subject,
		                        .not_before = n->info.not_before, .not_after = n->info.not_after };
	return 0;
}

static void new_certificate_clear(new_certificate *n)
{
	if (n->private_key_pem)
		sodium_memzero(n->private_key_pem, strlen(n->private_key_pem));
	g_free(n->private_key_pem);
	g_free(n->pem);
	mv_cert_info_clear(&n->info);
}

/* A new secret is worth a sentence in the audit entry (its arguments show
 * only "(hidden)"); a new certificate's thumbprint is what the
 * administrator uploads, and not secret. */
static void note_change(mv_command_ctx *ctx, int64_t id, const mv_credential_settings *s)
{
	if (s->certificate) {
		char *until = mv_format_time_utc(s->certificate->not_after);
		mv_command_log(ctx, "credential %" G_GINT64_FORMAT ": new certificate, thumbprint %s, valid until %s: upload "
		               "it to the app registration in Entra ID", id, s->certificate->thumbprint, until);
		mv_command_audit_note(ctx, "credential %" G_GINT64_FORMAT ": new certificate, thumbprint %s, valid until %s",
		                      id, s->certificate->thumbprint, until);
		g_free(until);
	} else if (s->password || s->client_secret) {
		mv_command_audit_note(ctx, "credential %" G_GINT64_FORMAT ": its secret was replaced", id);
	}
}

static json_t *set_credential_settings(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "SetCredentialSettings";
	int64_t id = mv_arg_number(args, "id", 0);
	mv_credential *c = mv_credential_get(ctx->inst, id, error);
	if (!c)
		return failed(function, error);
	mv_credential_type type = c->type;
	mv_credential_free(c);
	if (check_type_args(type, args, error) < 0)
		return failed(function, error);
	mv_credential_settings s = settings_of(args);
	new_certificate n = { 0 };
	int rc = 0;
	if (mv_arg_bool(args, "createNewCertificate", false)) {
		rc = make_certificate(id, &n, error);
		s.certificate = rc == 0 ? &n.cert : NULL;
	}
	if (rc == 0)
		rc = mv_credential_update(ctx->inst, id, &s, error);
	if (rc == 0)
		note_change(ctx, id, &s);
	new_certificate_clear(&n);
	if (rc < 0)
		return failed(function, error);
	return credential_result(ctx, id, function, error);
}

static json_t *delete_credential(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "DeleteCredential";
	int64_t id = mv_arg_number(args, "id", 0);
	/* Read first: the audit entry then says what was deleted, which the
	 * id alone no longer can. */
	mv_credential *c = mv_credential_get(ctx->inst, id, error);
	if (!c || mv_credential_delete(ctx->inst, id, error) < 0) {
		mv_credential_free(c);
		return failed(function, error);
	}
	mv_command_log(ctx, "credential %" G_GINT64_FORMAT " deleted", id);
	mv_command_audit_note(ctx, "credential %" G_GINT64_FORMAT " (%s, '%s') deleted", id,
	                      mv_credential_type_name(c->type), c->description);
	mv_credential_free(c);
	return json_null();
}

/* ---- the table ------------------------------------------------------------------------------------------ */

#define NO_ARGS ((const mv_command_arg[]){ { .name = NULL } })
#define ID_ARG { "id", MV_ARG_NUMBER, false, NULL }
#define END_ARGS { .name = NULL }

/* SignedEnvelope is MailStore's and refused with its reason by the handler. */
static const char *const credential_types[] = { "Office365_Modern", "Password", "OAuthClientSecret",
	                                        "SignedEnvelope", NULL };

static const mv_command_arg id_args[] = { ID_ARG, END_ARGS };

static const mv_command_arg create_args[] = {
	{ "type", MV_ARG_STRING, false, credential_types },
	{ "description", MV_ARG_STRING, false, NULL },
	{ "tenantId", MV_ARG_STRING, true, NULL },
	{ "applicationId", MV_ARG_STRING, true, NULL },
	{ "userName", MV_ARG_STRING, true, NULL },
	{ "password", MV_ARG_SECRET, true, NULL },
	{ "clientSecret", MV_ARG_SECRET, true, NULL },
	END_ARGS,
};

static const mv_command_arg description_args[] = { ID_ARG, { "description", MV_ARG_STRING, false, NULL }, END_ARGS };

static const mv_command_arg settings_args[] = {
	ID_ARG,
	{ "createNewCertificate", MV_ARG_BOOL, true, NULL },
	{ "tenantId", MV_ARG_STRING, true, NULL },
	{ "applicationId", MV_ARG_STRING, true, NULL },
	{ "userName", MV_ARG_STRING, true, NULL },
	{ "password", MV_ARG_SECRET, true, NULL },
	{ "clientSecret", MV_ARG_SECRET, true, NULL },
	END_ARGS,
};

const mv_command mv_commands_credentials[] = {
	{ "CreateCredential", create_args, "admin", false, create_credential,
	  "Create a new credential (Office365_Modern: tenantId, applicationId; Password: userName, password; "
	  "OAuthClientSecret: tenantId, applicationId, clientSecret).", NULL },
	{ "DeleteCredential", id_args, "admin", false, delete_credential,
	  "Delete a credential (refused while a profile uses it).", NULL },
	{ "GetCredential", id_args, "admin", false, get_credential,
	  "Get details of a credential (never its secret: hasSecret says whether it has one).", NULL },
	{ "GetCredentials", NO_ARGS, "admin", false, get_credentials, "Get the list of all credentials and their details.", NULL },
	{ "SetCredentialDescription", description_args, "admin", false, set_credential_description,
	  "Set the description of a credential.", NULL },
	{ "SetCredentialSettings", settings_args, "admin", false, set_credential_settings,
	  "Change the settings of a credential; createNewCertificate=true makes a new certificate for an "
	  "Office365_Modern credential (upload it to the app registration).", NULL },
	{ .name = NULL },
};
