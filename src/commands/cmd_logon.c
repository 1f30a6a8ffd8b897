/* commands/cmd_logon: how a user logs on beyond the password —
 * InitializeMFA and DisableMFA (the reference's, for administrators), and
 * our additions for app passwords (GetAppPasswords, CreateAppPassword,
 * DeleteAppPassword; DeleteAppPasswords of the reference is in cmd_users.c)
 * and ChangeOwnPassword.
 *
 * The app password functions and ChangeOwnPassword are open to every user
 * with the login privilege, for their own account only: Web Access's
 * settings page reaches them through this registry like any client, so the
 * rules and the audit entry are the same whoever asks.  An administrator
 * may name any user.  No result, log line or error carries a password,
 * except CreateAppPassword's result, which is the one time it is shown. */
#include "commands/commands.h"

#include <sodium.h>
#include <string.h>

/* Administrators may act on anyone; other callers on themselves only: any
 * other name, existing or not, is refused with the same words. */
static bool own_or_admin(mv_command_ctx *ctx, const char *function, const char *name, GError **error)
{
	if (mv_access_unrestricted(ctx->access))
		return true;
	mv_user *me = mv_user_get(ctx->inst, ctx->user, NULL), *them = mv_user_get(ctx->inst, name, NULL);
	bool same = me && them && strcmp(me->name, them->name) == 0;
	mv_user_free(me);
	mv_user_free(them);
	if (!same)
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: user %s may manage only its own app passwords", function,
		            ctx->user);
	return same;
}

static json_t *failed(const char *function, GError **error)
{
	g_prefix_error(error, "%s: ", function);
	return NULL;
}

static json_t *initialize_mfa(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName");
	if (mv_mfa_initialize(ctx->inst, name, error) < 0)
		return failed("InitializeMFA", error);
	mv_command_log(ctx, "%s enrols a new MFA secret at the next web logon", name);
	return json_null();
}

static json_t *disable_mfa(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName");
	if (mv_mfa_disable(ctx->inst, name, error) < 0)
		return failed("DisableMFA", error);
	mv_command_log(ctx, "MFA of %s disabled", name);
	return json_null();
}

static json_t *app_password_json(int64_t id, const char *description, int64_t created_at)
{
	char *created = mv_format_time_utc(created_at);
	json_t *o = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "description", description ? description : "",
	                      "createdAt", created);
	g_free(created);
	return o;
}

static json_t *get_app_passwords(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName");
	if (!own_or_admin(ctx, "GetAppPasswords", name, error))
		return NULL;
	GPtrArray *list = mv_app_passwords_list(ctx->inst, name, error);
	if (!list)
		return failed("GetAppPasswords", error);
	json_t *out = json_array();
	for (guint i = 0; i < list->len; i++) {
		const mv_app_password *p = list->pdata[i];
		json_array_append_new(out, app_password_json(p->id, p->description, p->created_at));
	}
	g_ptr_array_free(list, TRUE);
	return out;
}

static json_t *create_app_password(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName"), *description = mv_arg_string(args, "description");
	if (!own_or_admin(ctx, "CreateAppPassword", name, error))
		return NULL;
	int64_t id = 0;
	char *password = NULL;
	if (mv_app_password_create(ctx->inst, name, description, &id, &password, error) < 0)
		return failed("CreateAppPassword", error);
	json_t *o = app_password_json(id, description, mv_now());
	json_object_set_new(o, "password", json_string(password));
	sodium_memzero(password, strlen(password));
	g_free(password);
	mv_command_log(ctx, "app password %" G_GINT64_FORMAT " created for %s", id, name);
	return o;
}

static json_t *delete_app_password(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName");
	int64_t id = mv_arg_number(args, "id", 0);
	if (!own_or_admin(ctx, "DeleteAppPassword", name, error))
		return NULL;
	if (mv_app_password_delete(ctx->inst, name, id, error) < 0)
		return failed("DeleteAppPassword", error);
	mv_command_log(ctx, "app password %" G_GINT64_FORMAT " of %s revoked", id, name);
	return json_null();
}

/* The caller's own password, proven by the current one: a session left
 * open must not be enough to take the account over. */
static json_t *change_own_password(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_user *me = mv_user_get(ctx->inst, ctx->user, error);
	if (!me)
		return failed("ChangeOwnPassword", error);
	bool allowed = (me->privileges & (MV_PRIV_CHANGE_PASSWORD | MV_PRIV_ADMIN)) != 0;
	mv_user_free(me);
	if (!allowed) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED,
		            "ChangeOwnPassword: user %s lacks the changePassword privilege", ctx->user);
		return NULL;
	}
	GError *err = NULL;
	if (mv_user_authenticate(ctx->inst, ctx->user, mv_arg_string(args, "currentPassword"), NULL, &err) < 0) {
		bool wrong = err->code == MV_ERR_AUTH;
		g_propagate_error(error, err);
		if (wrong)
			g_prefix_error(error, "ChangeOwnPassword: the current password is wrong: ");
		return wrong ? NULL : failed("ChangeOwnPassword", error);
	}
	if (mv_user_set_password(ctx->inst, ctx->user, mv_arg_string(args, "newPassword"), error) < 0)
		return failed("ChangeOwnPassword", error);
	mv_command_log(ctx, "password of %s changed", ctx->user);
	return json_null();
}

static const mv_command_arg user_args[] = { { "userName", MV_ARG_STRING, false, NULL }, { .name = NULL } };
static const mv_command_arg create_args[] = {
	{ "userName", MV_ARG_STRING, false, NULL }, { "description", MV_ARG_STRING, true, NULL }, { .name = NULL } };
static const mv_command_arg delete_args[] = {
	{ "userName", MV_ARG_STRING, false, NULL }, { "id", MV_ARG_NUMBER, false, NULL }, { .name = NULL } };
static const mv_command_arg password_args[] = {
	{ "currentPassword", MV_ARG_SECRET, false, NULL }, { "newPassword", MV_ARG_SECRET, false, NULL },
	{ .name = NULL } };

const mv_command mv_commands_logon[] = {
	{ "InitializeMFA", user_args, "admin", false, initialize_mfa,
	  "Initializes multi-factor authentication of a user (a new TOTP secret is enrolled at the next web logon).", NULL },
	{ "DisableMFA", user_args, "admin", false, disable_mfa, "Disables multi-factor authentication of a user.", NULL },
	{ "GetAppPasswords", user_args, "login", false, get_app_passwords,
	  "The app passwords of a user (users: their own).", NULL },
	{ "CreateAppPassword", create_args, "login", false, create_app_password,
	  "A new app password for IMAP and the API, shown once (users: their own).", NULL },
	{ "DeleteAppPassword", delete_args, "login", false, delete_app_password,
	  "Revokes one app password (users: their own).", NULL },
	{ "ChangeOwnPassword", password_args, "login", false, change_own_password,
	  "Changes the caller's own password (needs the changePassword privilege and the current password).", NULL },
	{ .name = NULL },
};
