/* sources/profiles: archiving profiles' registry functions.
 *
 * Connectors (profile_filesystem.c, ...) check their details through one
 * table each (profile_details.c) and run a profile once.
 *
 * Who may do what: `modifyArchiveProfiles` (or admin) to create, delete or
 * change a profile, `archive` (or admin) to run one.  A user other than an
 * administrator sees and runs only their own profiles, which archive only
 * into their own archive and read only below <data>/imports/<user>/ — the
 * server reads files as its own user, so the privilege to archive must not
 * become a privilege to read anywhere. */
#include "sources/profile_internal.h"

#include <string.h>

#define MAX_LOGGED_REFUSALS 100
#define MAX_PAUSE_SECONDS 2147483647

/* ---- who is calling --------------------------------------------------------------------- */

bool mv_profile_caller_is_admin(const mv_command_ctx *ctx)
{
	return !ctx->access || mv_access_unrestricted(ctx->access);
}

const char *mv_profile_caller(const mv_command_ctx *ctx)
{
	return ctx->access ? mv_access_user(ctx->access) : ctx->user;
}

static int require_privilege(mv_command_ctx *ctx, const char *fn, unsigned bit, const char *bit_name, GError **error)
{
	if (mv_profile_caller_is_admin(ctx))
		return 0;
	mv_user *u = mv_user_get(ctx->inst, mv_profile_caller(ctx), error);
	if (!u)
		return -1;
	bool ok = (u->privileges & (MV_PRIV_ADMIN | bit)) != 0;
	mv_user_free(u);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: user '%s' lacks the %s privilege", fn, mv_profile_caller(ctx), bit_name);
	return -1;
}

bool mv_profile_same_user(const char *a, const char *b)
{
	char *ka = mv_user_name_key(a), *kb = mv_user_name_key(b);
	bool same = ka && kb && strcmp(ka, kb) == 0;
	g_free(ka);
	g_free(kb);
	return same;
}

/* The profile id, if the caller may act on it: administrators any, others
 * their own (another user's profile is "not found" to them, as to GetProfiles). */
static mv_profile *profile_for_caller(mv_command_ctx *ctx, const char *fn, int64_t id, GError **error)
{
	GError *e = NULL;
	mv_profile *p = mv_profile_get(ctx->inst, id, &e);
	if (p && (mv_profile_caller_is_admin(ctx) || mv_profile_same_user(p->owner, mv_profile_caller(ctx))))
		return p;
	mv_profile_free(p);
	if (e && !g_error_matches(e, MV_ERROR, MV_ERR_NOT_FOUND)) {
		g_propagate_error(error, e);
		return NULL;
	}
	g_clear_error(&e);
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: there is no profile %" G_GINT64_FORMAT "%s", fn, id,
	            mv_profile_caller_is_admin(ctx) ? "" : " of yours");
	return NULL;
}

/* "hh:mm-hh:mm", several separated by commas. */
static bool valid_windows(const char *text)
{
	char **parts = g_strsplit(text, ",", -1);
	bool ok = parts[0] != NULL;
	for (char **p = parts; ok && *p; p++) {
		unsigned h1, m1, h2, m2;
		char end;
		ok = sscanf(g_strstrip(*p), "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &end) == 4 && h1 < 24 && h2 < 24 &&
		     m1 < 60 && m2 < 60;
	}
	g_strfreev(parts);
	return ok;
}

typedef struct server_side {
	bool automatic;
	int64_t pause;
	const char *windows;
} server_side;

static int check_server_side(const char *fn, bool automatic, bool has_pause, int64_t pause, const char *windows,
                             server_side *out, GError **error)
{
	if (automatic && !has_pause) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: automaticPauseBetweenExecutions is required when automatic"
		            " is true", fn);
		return -1;
	}
	if (has_pause && (pause < 0 || pause > MAX_PAUSE_SECONDS)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: automaticPauseBetweenExecutions: %" G_GINT64_FORMAT
		            " is not between 0 and 2147483647 seconds", fn, pause);
		return -1;
	}
	if (windows && *windows && !valid_windows(windows)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: automaticMaintenanceWindows: '%s' is not hh:mm-hh:mm (e.g. "
		            "22:00-04:00; several separated by commas)", fn, windows);
		return -1;
	}
	*out = (server_side){ .automatic = automatic, .pause = has_pause ? pause : 0, .windows = windows ? windows : "" };
	return 0;
}

/* properties.serverSideExecution as GetProfiles shows it, taken back. */
static int check_server_side_json(const char *fn, json_t *sse, server_side *out, GError **error)
{
	*out = (server_side){ .windows = "" };
	if (!sse || json_is_null(sse))
		return 0;
	json_t *automatic = json_object_get(sse, "automatic");
	json_t *pause = json_object_get(sse, "automaticPauseBetweenExecutions");
	json_t *windows = json_object_get(sse, "automaticMaintenanceWindows");
	if (!json_is_object(sse) || (automatic && !json_is_boolean(automatic)) || (pause && !json_is_integer(pause)) ||
	    (windows && !json_is_string(windows) && !json_is_null(windows))) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.serverSideExecution must be {\"automatic\": bool,"
		            " \"automaticPauseBetweenExecutions\": seconds, \"automaticMaintenanceWindows\": \"hh:mm-hh:mm\"}",
		            fn);
		return -1;
	}
	return check_server_side(fn, json_is_true(automatic), pause != NULL, json_integer_value(pause),
	                         json_string_value(windows), out, error);
}

static const char *const top_level_keys[] = { "name", "type", "connector", "details", "serverSideExecution", NULL };

static bool known_key(const char *key)
{
	for (const char *const *k = top_level_keys; *k; k++)
		if (strcmp(*k, key) == 0)
			return true;
	return false;
}

static const char *required_string(const char *fn, json_t *props, const char *key, GError **error)
{
	const char *v = json_string_value(json_object_get(props, key));
	if (!v || !*v)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.%s is required (a non-empty string)", fn, key);
	return v && *v ? v : NULL;
}

/* CreateProfile's and RunTemporaryProfile's properties checked into an
 * unsaved profile owned by the caller. */
static mv_profile *check_properties(mv_command_ctx *ctx, const char *fn, json_t *props, server_side *sse,
                                    GError **error)
{
	if (!json_is_object(props)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties must be a JSON object", fn);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(props, key, v) {
		if (!known_key(key)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.%s is not a profile property (name, type, "
			            "connector, details, serverSideExecution; id and owner are not given)", fn, key);
			return NULL;
		}
	}
	const char *name, *type, *connector_name;
	if (!(name = required_string(fn, props, "name", error)) || !(type = required_string(fn, props, "type", error)) ||
	    !(connector_name = required_string(fn, props, "connector", error)))
		return NULL;
	if (strcmp(type, MV_PROFILE_TYPE_ARCHIVING) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.type: '%s' is not a profile type of this build "
		            "(\"I\": archiving)", fn, type);
		return NULL;
	}
	const mv_connector *c = mv_connector_find(connector_name);
	if (!c) {
		char *names = mv_connector_names();
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.connector: '%s' is not a connector of this build "
		            "(%s; see GetProfileTypes)", fn, connector_name, names);
		g_free(names);
		return NULL;
	}
	if (check_server_side_json(fn, json_object_get(props, "serverSideExecution"), sse, error) < 0)
		return NULL;
	json_t *details = mv_profile_check_details(ctx, fn, c, mv_profile_caller(ctx), json_object_get(props, "details"), error);
	if (!details)
		return NULL;
	mv_profile *p = g_new0(mv_profile, 1);
	p->name = g_strdup(name);
	p->owner = g_strdup(mv_profile_caller(ctx));
	p->type = g_strdup(type);
	p->connector = g_strdup(c->name);
	p->details = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
	p->automatic = sse->automatic;
	p->pause_seconds = sse->pause;
	p->maintenance_windows = g_strdup(sse->windows);
	json_decref(details);
	return p;
}


/* ---- the wire shape --------------------------------------------------------------------------- */

static json_t *profile_json(const mv_profile *p)
{
	json_t *details = json_loads(p->details, 0, NULL);
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:{s:b, s:I, s:s}}", "id", (json_int_t)p->id, "name", p->name,
	                 "owner", p->owner, "type", p->type, "connector", p->connector, "details",
	                 details ? details : json_object(), "serverSideExecution", "automatic", p->automatic,
	                 "automaticPauseBetweenExecutions", (json_int_t)p->pause_seconds, "automaticMaintenanceWindows",
	                 p->maintenance_windows ? p->maintenance_windows : "");
}

static int check_raw(const char *fn, json_t *args, GError **error)
{
	if (mv_arg_bool(args, "raw", true))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "%s: raw: only true is supported", fn);
	return -1;
}

/* ---- the functions ------------------------------------------------------------------------------ */

static json_t *get_profiles(mv_command_ctx *ctx, json_t *args, GError **error)
{
	if (check_raw("GetProfiles", args, error) < 0)
		return NULL;
	GPtrArray *list = mv_profiles_list(ctx->inst, mv_profile_caller_is_admin(ctx) ? NULL : mv_profile_caller(ctx), error);
	if (!list)
		return NULL;
	json_t *out = json_array();
	for (guint i = 0; i < list->len; i++)
		json_array_append_new(out, profile_json(list->pdata[i]));
	g_ptr_array_unref(list);
	return out;
}


static json_t *get_profile_types(mv_command_ctx *ctx, json_t *args, GError **error)
{
	(void)ctx;
	(void)args;
	(void)error;
	return mv_profile_types_json();
}

/* A connector's secret detail (a password) never stays in the saved
 * details: it becomes a Password credential of its own, which the details
 * name in "credential" and the profile's row records as used.  A credential
 * named by the caller is recorded the same way.  *made_r: a credential was
 * created here (deleted again if the profile cannot be saved). */
static int keep_secret_as_credential(mv_command_ctx *ctx, mv_profile *p, int64_t *credential_r, bool *made_r,
                                     GError **error)
{
	const mv_connector *c = mv_connector_find(p->connector);
	if (!c || !c->secret_detail)
		return 0;
	json_t *details = json_loads(p->details, 0, NULL);
	const char *secret = mv_profile_detail(details, c->secret_detail);
	const char *named = mv_profile_detail(details, "credential");
	int rc = 0;
	if (*named) {
		*credential_r = g_ascii_strtoll(named, NULL, 10);
	} else if (*secret) {
		char *description = g_strdup_printf("password of profile '%s'", p->name);
		mv_credential_settings settings = { .user_name = mv_profile_detail(details, "userName"), .password = secret };
		rc = mv_credential_create(ctx->inst, MV_CREDENTIAL_PASSWORD, description, &settings, credential_r, error);
		g_free(description);
		if (rc == 0) {
			*made_r = true;
			char *id = g_strdup_printf("%" G_GINT64_FORMAT, *credential_r);
			json_object_set_new(details, "credential", json_string(id));
			json_object_set_new(details, c->secret_detail, json_string(""));
			g_free(id);
			g_free(p->details);
			p->details = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
		}
	}
	json_decref(details);
	return rc;
}

static json_t *create_profile(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "CreateProfile";
	if (check_raw(fn, args, error) < 0 ||
	    require_privilege(ctx, fn, MV_PRIV_MODIFY_ARCHIVE_PROFILES, "modifyArchiveProfiles", error) < 0)
		return NULL;
	server_side sse;
	mv_profile *p = check_properties(ctx, fn, json_object_get(args, "properties"), &sse, error);
	if (!p)
		return NULL;
	json_t *out = NULL;
	int64_t credential = 0;
	bool made = false;
	if (keep_secret_as_credential(ctx, p, &credential, &made, error) < 0)
		goto out;
	if (mv_profile_create(ctx->inst, p, credential, &p->id, error) < 0) {
		GError *e = NULL;
		if (made && mv_credential_delete(ctx->inst, credential, &e) < 0)
			g_clear_error(&e);
		goto out;
	}
	mv_command_audit_note(ctx, "profile %" G_GINT64_FORMAT " '%s' (%s)", p->id, p->name, p->connector);
	out = profile_json(p);
out:
	mv_profile_free(p);
	return out;
}

static json_t *delete_profile(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "DeleteProfile";
	if (require_privilege(ctx, fn, MV_PRIV_MODIFY_ARCHIVE_PROFILES, "modifyArchiveProfiles", error) < 0)
		return NULL;
	mv_profile *p = profile_for_caller(ctx, fn, mv_arg_number(args, "id", 0), error);
	if (!p)
		return NULL;
	int rc = mv_profile_delete(ctx->inst, p->id, error);
	if (rc == 0)
		mv_command_audit_note(ctx, "profile %" G_GINT64_FORMAT " '%s'", p->id, p->name);
	mv_profile_free(p);
	return rc < 0 ? NULL : json_null();
}

static json_t *set_server_side_execution(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "SetProfileServerSideExecution";
	if (require_privilege(ctx, fn, MV_PRIV_MODIFY_ARCHIVE_PROFILES, "modifyArchiveProfiles", error) < 0)
		return NULL;
	server_side sse;
	if (check_server_side(fn, mv_arg_bool(args, "automatic", false), mv_arg_present(args,
	                      "automaticPauseBetweenExecutions"), mv_arg_number(args, "automaticPauseBetweenExecutions", 0),
	                      mv_arg_string(args, "automaticMaintenanceWindows"), &sse, error) < 0)
		return NULL;
	mv_profile *p = profile_for_caller(ctx, fn, mv_arg_number(args, "id", 0), error);
	if (!p)
		return NULL;
	json_t *out = NULL;
	if (mv_profile_set_server_side(ctx->inst, p->id, sse.automatic, sse.pause, sse.windows, error) < 0)
		goto out;
	p->automatic = sse.automatic;
	p->pause_seconds = sse.pause;
	g_free(p->maintenance_windows);
	p->maintenance_windows = g_strdup(sse.windows);
	out = profile_json(p);
out:
	mv_profile_free(p);
	return out;
}



/* ---- a run ----------------------------------------------------------------------------------------- */

void mv_profile_on_progress(void *opaque, int percent, const char *text)
{
	mv_command_progress(opaque, percent, "%s", text);
}

void mv_profile_log_items(mv_command_ctx *ctx, const char *what, const GPtrArray *list)
{
	for (guint i = 0; i < list->len && i < MAX_LOGGED_REFUSALS; i++) {
		const mv_refusal *r = list->pdata[i];
		mv_command_log(ctx, "%s: %s: %s", what, r->origin, r->reason);
	}
}

json_t *mv_profile_end_run(mv_command_ctx *ctx, mv_ingest **ing, int rc, const mv_profile_run_end *end,
                           GError **error)
{
	if (rc < 0)
		mv_ingest_note_outcome(*ing, g_error_matches(*error, MV_ERROR, MV_ERR_CANCELLED) ? "cancelled"
		                                                                                    : (*error)->message);
	/* The counts of a run that stopped are still what it archived, and
	 * logged; the first failure is the one reported. */
	GError *flush_err = NULL, *end_err = NULL;
	int flushed = mv_ingest_flush(*ing, &flush_err);
	if (flushed < 0 && rc == 0)
		mv_ingest_note_outcome(*ing, flush_err->message);
	if (end->after_flush)
		end->after_flush(end->opaque, *ing);
	json_t *out = end->summary(end->opaque, *ing);
	int ended = mv_ingest_end(ing, &end_err);
	if (rc == 0 && flushed < 0)
		g_propagate_error(error, g_steal_pointer(&flush_err));
	else if (rc == 0 && ended < 0)
		g_propagate_error(error, g_steal_pointer(&end_err));
	g_clear_error(&flush_err);
	g_clear_error(&end_err);
	if (rc < 0 || flushed < 0 || ended < 0)
		g_clear_pointer(&out, json_decref);
	else
		mv_command_progress(ctx, 100, "done");
	return out;
}

/* Runs p (saved, or temporary with id 0) once, through its connector. */
static json_t *run_profile_once(mv_command_ctx *ctx, const mv_profile *p, GError **error)
{
	const mv_connector *c = mv_connector_find(p->connector);
	if (!c) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "profile %" G_GINT64_FORMAT ": connector '%s' is not one of "
		            "this build", p->id, p->connector);
		return NULL;
	}
	json_t *details = json_loads(p->details, 0, NULL);
	if (!json_is_object(details)) {
		json_decref(details);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "profile %" G_GINT64_FORMAT ": its details are not a JSON object",
		            p->id);
		return NULL;
	}
	json_t *out = c->run(ctx, p, details, error);
	json_decref(details);
	return out;
}

static json_t *run_profile(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "RunProfile";
	if (require_privilege(ctx, fn, MV_PRIV_ARCHIVE, "archive", error) < 0)
		return NULL;
	mv_profile *p = profile_for_caller(ctx, fn, mv_arg_number(args, "id", 0), error);
	if (!p)
		return NULL;
	mv_command_audit_note(ctx, "profile %" G_GINT64_FORMAT " '%s'", p->id, p->name);
	json_t *out = run_profile_once(ctx, p, error);
	mv_profile_free(p);
	return out;
}

static json_t *run_temporary_profile(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "RunTemporaryProfile";
	if (check_raw(fn, args, error) < 0 || require_privilege(ctx, fn, MV_PRIV_ARCHIVE, "archive", error) < 0)
		return NULL;
	server_side sse;
	mv_profile *p = check_properties(ctx, fn, json_object_get(args, "properties"), &sse, error);
	if (!p)
		return NULL;
	mv_command_audit_note(ctx, "temporary profile '%s'", p->name);
	json_t *out = run_profile_once(ctx, p, error);
	mv_profile_free(p);
	return out;
}

/* TestProfile: a saved profile (id) or properties, reached but not run. */
static json_t *test_profile(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *fn = "TestProfile";
	if (require_privilege(ctx, fn, MV_PRIV_ARCHIVE, "archive", error) < 0)
		return NULL;
	mv_profile *p = NULL;
	server_side sse;
	if (mv_arg_present(args, "id"))
		p = profile_for_caller(ctx, fn, mv_arg_number(args, "id", 0), error);
	else if (mv_arg_present(args, "properties"))
		p = check_properties(ctx, fn, json_object_get(args, "properties"), &sse, error);
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: give id (a saved profile) or properties", fn);
	if (!p)
		return NULL;
	json_t *out = NULL;
	const mv_connector *c = mv_connector_find(p->connector);
	json_t *details = json_loads(p->details, 0, NULL);
	if (!c || !c->test || !json_is_object(details))
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "%s: the %s connector has nothing to reach: run it", fn,
		            p->connector);
	else
		out = c->test(ctx, p, details, error);
	json_decref(details);
	mv_profile_free(p);
	return out;
}

/* ---- the table ------------------------------------------------------------------------------------- */

static const mv_command_arg args_raw[] = {
	{ "raw", MV_ARG_BOOL, true, NULL },
	{ .name = NULL },
};
static const mv_command_arg args_properties[] = {
	{ "properties", MV_ARG_JSON, false, NULL },
	{ "raw", MV_ARG_BOOL, true, NULL },
	{ .name = NULL },
};
static const mv_command_arg args_id[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ .name = NULL },
};
static const mv_command_arg args_server_side[] = {
	{ "id", MV_ARG_NUMBER, false, NULL },
	{ "automatic", MV_ARG_BOOL, false, NULL },
	{ "automaticPauseBetweenExecutions", MV_ARG_NUMBER, true, NULL },
	{ "automaticMaintenanceWindows", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};
static const mv_command_arg args_test[] = {
	{ "id", MV_ARG_NUMBER, true, NULL },
	{ "properties", MV_ARG_JSON, true, NULL },
	{ .name = NULL },
};
static const mv_command_arg args_none[] = {
	{ .name = NULL },
};

const mv_command mv_commands_profiles[] = {
	{ "GetProfiles", args_raw, "login", false, get_profiles,
	  "archiving profiles: administrators see all, other users their own", NULL },
	{ "GetProfileTypes", args_none, "login", false, get_profile_types,
	  "the profile types and connectors of this build, each connector's details with what they take", NULL },
	{ "CreateProfile", args_properties, "login", false, create_profile,
	  "save an archiving profile (properties: name, type \"I\", connector, details); needs modifyArchiveProfiles", NULL },
	{ "DeleteProfile", args_id, "login", false, delete_profile,
	  "delete an archiving profile; needs modifyArchiveProfiles", NULL },
	{ "SetProfileServerSideExecution", args_server_side, "login", false, set_server_side_execution,
	  "store a profile's automatic execution settings (the scheduler of serve acts on them); needs modifyArchiveProfiles", NULL },
	{ "RunProfile", args_id, "login", true, run_profile,
	  "run a saved archiving profile once; needs archive", NULL },
	{ "TestProfile", args_test, "login", true, test_profile,
	  "reach a profile's source (id, or properties) and say what a run would read, or exactly what failed (name, "
	  "TCP, TLS and the certificate, logon, capability); archives nothing; needs archive", NULL },
	{ "RunTemporaryProfile", args_properties, "login", true, run_temporary_profile,
	  "run archiving profile properties once without saving them; needs archive", NULL },
	{ .name = NULL },
};
