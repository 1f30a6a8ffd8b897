/* commands/cmd_users: the Administration API functions about users, their
 * privileges and the compliance configuration —
 * GetUsers, GetUserInfo, CreateUser, DeleteUser, RenameUser,
 * SetUserPassword, SetUserFullName, SetUserEmailAddresses,
 * SetUserDistinguishedName, SetUserAuthentication, SetUserPrivileges,
 * SetUserLoginPrivileges, SetUserPop3UserNames, SetUserPrivilegesOnFolder,
 * SetUserPrivilegesOnAllFolders, ClearUserPrivilegesOnFolders,
 * DeleteAppPasswords, Get/SetComplianceConfiguration.  (The audit log's
 * functions are cmd_audit.c.)
 *
 * The handlers translate between API arguments and archive/ calls (users.c,
 * audit.c), where the rules live.  The registry writes the audit entry of
 * every call, so nothing here does; and no result, log line or error ever
 * carries a password.
 *
 * Results: GetUsers [{userName, fullName, distinguishedName, authentication}];
 * GetUserInfo {userName, fullName, distinguishedName, authentication,
 * emailAddresses, pop3UserNames, privileges, loginPrivileges,
 * privilegesOnFolders: [{folder, privileges}], mfaStatus (none, pending, active)}; the setters
 * null. */
#include "commands/commands.h"

#include <string.h>

#define MAX_LIST_TOKENS 1002          /* users.c refuses more than 1000 items */

static const char *const authentications[] = { "integrated", "directoryServices", NULL };

/* ---- helpers ------------------------------------------------------------------------------ */

/* null on success; on failure the error names the function. */
static json_t *done(int rc, const char *function, GError **error)
{
	if (rc == 0)
		return json_null();
	g_prefix_error(error, "%s: ", function);
	return NULL;
}

static json_t *failed(const char *function, GError **error)
{
	return done(-1, function, error);
}

/* An optional string argument; an empty one counts as absent. */
static const char *opt_string(json_t *args, const char *name)
{
	const char *s = mv_arg_string(args, name);
	return s && *s ? s : NULL;
}

static json_t *text_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* "a, b,,c" -> ["a", "b", "c"]: items trimmed, empty ones dropped. */
static GPtrArray *split_list(const char *text)
{
	GPtrArray *items = g_ptr_array_new_with_free_func(g_free);
	if (!text)
		return items;
	gchar **parts = g_strsplit(text, ",", MAX_LIST_TOKENS);
	for (gchar **p = parts; *p; p++) {
		char *item = g_strstrip(*p);
		if (*item)
			g_ptr_array_add(items, g_strdup(item));
	}
	g_strfreev(parts);
	return items;
}

static json_t *string_array(const GPtrArray *items)
{
	json_t *arr = json_array();
	for (guint i = 0; i < items->len; i++)
		json_array_append_new(arr, json_string(items->pdata[i]));
	return arr;
}

static json_t *privileges_json(mv_privset_kind kind, unsigned bits)
{
	char *text = mv_privileges_format(kind, bits);
	json_t *v = json_string(text);
	g_free(text);
	return v;
}

static int parse_privileges(json_t *args, mv_privset_kind kind, const char *arg_name, unsigned *bits_r,
                            GError **error)
{
	return mv_privileges_parse(kind, arg_name, mv_arg_string(args, arg_name), bits_r, error);
}

/* ---- GetUsers, GetUserInfo -------------------------------------------------------------------- */

static json_t *user_summary(const mv_user *u)
{
	return json_pack("{s:s, s:o, s:o, s:s}", "userName", u->name, "fullName", text_or_null(u->full_name),
	                 "distinguishedName", text_or_null(u->distinguished_name), "authentication", u->authentication);
}

static json_t *get_users(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *users = mv_users_list(ctx->inst, error);
	if (!users)
		return failed("GetUsers", error);
	json_t *list = json_array();
	for (guint i = 0; i < users->len; i++)
		json_array_append_new(list, user_summary(users->pdata[i]));
	g_ptr_array_free(users, TRUE);
	return list;
}

static json_t *folder_grants_json(const GPtrArray *grants)
{
	json_t *list = json_array();
	for (guint i = 0; i < grants->len; i++) {
		const mv_folder_grant *g = grants->pdata[i];
		json_array_append_new(list, json_pack("{s:s, s:o}", "folder", g->folder, "privileges",
		                                      privileges_json(MV_PRIVSET_FOLDER, g->privileges)));
	}
	return list;
}

static json_t *get_user_info(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_user *u = mv_user_get(ctx->inst, mv_arg_string(args, "userName"), error);
	GPtrArray *grants = u ? mv_user_folder_privileges(ctx->inst, u->name, error) : NULL;
	mv_mfa_state mfa = MV_MFA_NONE;
	if (grants && mv_mfa_get_state(ctx->inst, u->name, &mfa, error) < 0)
		g_ptr_array_free(grants, TRUE), grants = NULL;
	if (!grants) {
		mv_user_free(u);
		return failed("GetUserInfo", error);
	}
	json_t *o = user_summary(u);
	json_object_set_new(o, "emailAddresses", string_array(u->email_addresses));
	json_object_set_new(o, "pop3UserNames", string_array(u->pop3_user_names));
	json_object_set_new(o, "privileges", privileges_json(MV_PRIVSET_USER, u->privileges));
	json_object_set_new(o, "loginPrivileges", privileges_json(MV_PRIVSET_LOGIN, u->login_privileges));
	json_object_set_new(o, "privilegesOnFolders", folder_grants_json(grants));
	json_object_set_new(o, "mfaStatus", json_string(mv_mfa_state_name(mfa)));
	g_ptr_array_free(grants, TRUE);
	mv_user_free(u);
	return o;
}

/* ---- CreateUser, DeleteUser, RenameUser ---------------------------------------------------------- */

static json_t *create_user(mv_command_ctx *ctx, json_t *args, GError **error)
{
	unsigned privileges = 0, login = MV_LOGIN_ALL;
	if (parse_privileges(args, MV_PRIVSET_USER, "privileges", &privileges, error) < 0 ||
	    (mv_arg_present(args, "loginPrivileges") &&
	     parse_privileges(args, MV_PRIVSET_LOGIN, "loginPrivileges", &login, error) < 0))
		return failed("CreateUser", error);
	const char *name = mv_arg_string(args, "userName");
	int rc = mv_user_create(ctx->inst, name, privileges, login, opt_string(args, "fullName"),
	                        opt_string(args, "distinguishedName"), opt_string(args, "authentication"),
	                        opt_string(args, "password"), error);
	if (rc == 0)
		mv_command_log(ctx, "user %s created", name);
	return done(rc, "CreateUser", error);
}

static json_t *delete_user(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *name = mv_arg_string(args, "userName");
	int rc = mv_user_delete(ctx->inst, name, error);
	if (rc == 0)
		mv_command_log(ctx, "user %s deleted; the archive of that name and its messages stay", name);
	return done(rc, "DeleteUser", error);
}

static json_t *rename_user(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int rc = mv_user_rename(ctx->inst, mv_arg_string(args, "oldUserName"), mv_arg_string(args, "newUserName"),
	                        error);
	if (rc == 0)
		mv_command_log(ctx, "user renamed; the archive keeps its name and the user's folder privileges stay");
	return done(rc, "RenameUser", error);
}

/* ---- the setters ------------------------------------------------------------------------------- */

static json_t *set_user_password(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return done(mv_user_set_password(ctx->inst, mv_arg_string(args, "userName"), mv_arg_string(args, "password"),
	                                 error), "SetUserPassword", error);
}

static json_t *set_user_full_name(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return done(mv_user_set_full_name(ctx->inst, mv_arg_string(args, "userName"), opt_string(args, "fullName"),
	                                  error), "SetUserFullName", error);
}

static json_t *set_user_distinguished_name(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return done(mv_user_set_distinguished_name(ctx->inst, mv_arg_string(args, "userName"),
	                                           opt_string(args, "distinguishedName"), error),
	            "SetUserDistinguishedName", error);
}

static json_t *set_user_authentication(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return done(mv_user_set_authentication(ctx->inst, mv_arg_string(args, "userName"),
	                                       mv_arg_string(args, "authentication"), error),
	            "SetUserAuthentication", error);
}

static json_t *set_user_email_addresses(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *items = split_list(mv_arg_string(args, "emailAddresses"));
	int rc = mv_user_set_email_addresses(ctx->inst, mv_arg_string(args, "userName"), items, error);
	g_ptr_array_free(items, TRUE);
	return done(rc, "SetUserEmailAddresses", error);
}

static json_t *set_user_pop3_user_names(mv_command_ctx *ctx, json_t *args, GError **error)
{
	GPtrArray *items = split_list(mv_arg_string(args, "pop3UserNames"));
	int rc = mv_user_set_pop3_user_names(ctx->inst, mv_arg_string(args, "userName"), items, error);
	g_ptr_array_free(items, TRUE);
	return done(rc, "SetUserPop3UserNames", error);
}

static json_t *set_user_privileges(mv_command_ctx *ctx, json_t *args, GError **error)
{
	unsigned bits;
	int rc = parse_privileges(args, MV_PRIVSET_USER, "privileges", &bits, error);
	if (rc == 0)
		rc = mv_user_set_privileges(ctx->inst, mv_arg_string(args, "userName"), bits, error);
	return done(rc, "SetUserPrivileges", error);
}

static json_t *set_user_login_privileges(mv_command_ctx *ctx, json_t *args, GError **error)
{
	unsigned bits;
	int rc = parse_privileges(args, MV_PRIVSET_LOGIN, "loginPrivileges", &bits, error);
	if (rc == 0)
		rc = mv_user_set_login_privileges(ctx->inst, mv_arg_string(args, "userName"), bits, error);
	return done(rc, "SetUserLoginPrivileges", error);
}

static json_t *delete_app_passwords(mv_command_ctx *ctx, json_t *args, GError **error)
{
	int64_t count = 0;
	const char *name = mv_arg_string(args, "userName");
	int rc = mv_user_delete_app_passwords(ctx->inst, name, &count, error);
	if (rc == 0)
		mv_command_log(ctx, "%" G_GINT64_FORMAT " app password%s of %s deleted", count, count == 1 ? "" : "s", name);
	return done(rc, "DeleteAppPasswords", error);
}

/* ---- folder privileges -------------------------------------------------------------------------- */

static json_t *set_user_privileges_on_folder(mv_command_ctx *ctx, json_t *args, GError **error)
{
	unsigned bits;
	int rc = parse_privileges(args, MV_PRIVSET_FOLDER, "privileges", &bits, error);
	if (rc == 0)
		rc = mv_user_set_folder_privileges(ctx->inst, mv_arg_string(args, "userName"), mv_arg_string(args, "folder"),
		                                   bits, error);
	return done(rc, "SetUserPrivilegesOnFolder", error);
}

static json_t *clear_user_privileges_on_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	return done(mv_user_clear_folder_privileges(ctx->inst, mv_arg_string(args, "userName"), error),
	            "ClearUserPrivilegesOnFolders", error);
}

/* Adds the archives of one store to names (casefolded -> name). */
static void add_store_archives(mv_command_ctx *ctx, const mv_archive_store *info, GHashTable *names)
{
	GError *err = NULL;
	GPtrArray *folders = NULL;
	mv_store *s = mv_instance_open_store(ctx->inst, info->id, MV_STORE_READ, &err);
	if (s && mv_store_list_folders(s, NULL, &folders, &err) == 0) {
		for (guint i = 0; i < folders->len; i++) {
			const mv_folder_stats *f = folders->pdata[i];
			char *folded = g_utf8_casefold(f->archive, -1);
			if (g_hash_table_contains(names, folded))
				g_free(folded);
			else
				g_hash_table_insert(names, folded, g_strdup(f->archive));
		}
		g_ptr_array_free(folders, TRUE);
	}
	if (err) {
		mv_command_log(ctx, "warning: store %d (%s) not read, its archives are left out: %s", info->id, info->name,
		               err->message);
		g_error_free(err);
	}
	mv_store_close(&s);
}

/* Every archive that has mail in a store in use: casefolded -> name. */
static GHashTable *all_archives(mv_command_ctx *ctx, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return NULL;
	GHashTable *names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (info->error || strcmp(info->state, "disabled") == 0)
			mv_command_log(ctx, "warning: store %d (%s) is %s, its archives are left out", info->id, info->name,
			               info->error ? "not usable" : "disabled");
		else
			add_store_archives(ctx, info, names);
	}
	g_ptr_array_free(infos, TRUE);
	return names;
}

/* excludeFolders: whole archives only, as casefolded names. */
static GHashTable *excluded_archives(json_t *args, GError **error)
{
	GPtrArray *items = split_list(mv_arg_string(args, "excludeFolders"));
	GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	for (guint i = 0; i < items->len; i++) {
		const char *item = items->pdata[i];
		if (strchr(item, '/')) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "excludeFolders: '%.200s' is a folder inside an archive; "
			            "only whole archives can be excluded (set that folder with SetUserPrivilegesOnFolder "
			            "afterwards)", item);
			g_hash_table_destroy(set);
			set = NULL;
			break;
		}
		g_hash_table_add(set, g_utf8_casefold(item, -1));
	}
	g_ptr_array_free(items, TRUE);
	return set;
}

static int grant_all(mv_command_ctx *ctx, const char *user, unsigned bits, GHashTable *archives,
                     GHashTable *excluded, GError **error)
{
	GList *keys = g_list_sort(g_hash_table_get_keys(archives), (GCompareFunc)strcmp);
	int set = 0, skipped = 0, rc = 0;
	for (GList *l = keys; l && rc == 0; l = l->next) {
		if (g_hash_table_contains(excluded, l->data)) {
			skipped++;
			continue;
		}
		rc = mv_user_set_folder_privileges(ctx->inst, user, g_hash_table_lookup(archives, l->data), bits, error);
		set += rc == 0;
	}
	g_list_free(keys);
	if (rc < 0)
		g_prefix_error(error, "after %d archives were set: ", set);
	else
		mv_command_log(ctx, "privileges set on %d archive%s (%d excluded)", set, set == 1 ? "" : "s", skipped);
	return rc;
}

static json_t *set_user_privileges_on_all_folders(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *function = "SetUserPrivilegesOnAllFolders";
	const char *name = mv_arg_string(args, "userName");
	unsigned bits;
	mv_user *u = NULL;
	GHashTable *excluded = NULL, *archives = NULL;
	int rc = -1;
	if (parse_privileges(args, MV_PRIVSET_FOLDER, "privileges", &bits, error) == 0 &&
	    (u = mv_user_get(ctx->inst, name, error)) && (excluded = excluded_archives(args, error)) &&
	    (archives = all_archives(ctx, error)))
		rc = grant_all(ctx, u->name, bits, archives, excluded, error);
	mv_user_free(u);
	if (excluded)
		g_hash_table_destroy(excluded);
	if (archives)
		g_hash_table_destroy(archives);
	return done(rc, function, error);
}

/* ---- compliance configuration --------------------------------------------------------------------- */

static json_t *get_compliance(mv_command_ctx *ctx, json_t *args, GError **error)
{
	mv_compliance c;
	if (mv_compliance_get(ctx->inst, &c, error) < 0)
		return failed("GetComplianceConfiguration", error);
	json_t *o = mv_compliance_to_json(&c);
	mv_compliance_clear(&c);
	return o;
}

/* Fields not given keep their current value, so that a client setting one
 * flag cannot switch off legal hold by leaving it out. */
static json_t *set_compliance(mv_command_ctx *ctx, json_t *args, GError **error)
{
	json_t *given = json_object_get(args, "config");
	mv_compliance current, next;
	if (!json_is_object(given))
		return done(mv_compliance_from_json(given, &next, error), "SetComplianceConfiguration", error);
	if (mv_compliance_get(ctx->inst, &current, error) < 0)
		return failed("SetComplianceConfiguration", error);
	json_t *merged = mv_compliance_to_json(&current);
	mv_compliance_clear(&current);
	json_object_update(merged, given);
	int rc = mv_compliance_from_json(merged, &next, error);
	json_decref(merged);
	if (rc == 0) {
		rc = mv_compliance_set(ctx->inst, &next, error);
		mv_compliance_clear(&next);
	}
	return done(rc, "SetComplianceConfiguration", error);
}

/* ---- the table ------------------------------------------------------------------------------------------ */

#define NO_ARGS ((const mv_command_arg[]){ { .name = NULL } })
#define USER_ARG { "userName", MV_ARG_STRING, false, NULL }
#define END_ARGS { .name = NULL }

static const mv_command_arg user_args[] = { USER_ARG, END_ARGS };

static const mv_command_arg create_user_args[] = {
	USER_ARG,
	{ "privileges", MV_ARG_STRING, false, NULL },
	{ "fullName", MV_ARG_STRING, true, NULL },
	{ "distinguishedName", MV_ARG_STRING, true, NULL },
	{ "authentication", MV_ARG_STRING, true, authentications },
	{ "password", MV_ARG_SECRET, true, NULL },
	{ "loginPrivileges", MV_ARG_STRING, true, NULL },
	END_ARGS,
};

static const mv_command_arg rename_user_args[] = {
	{ "oldUserName", MV_ARG_STRING, false, NULL },
	{ "newUserName", MV_ARG_STRING, false, NULL },
	END_ARGS,
};

static const mv_command_arg password_args[] = { USER_ARG, { "password", MV_ARG_SECRET, false, NULL }, END_ARGS };
static const mv_command_arg full_name_args[] = { USER_ARG, { "fullName", MV_ARG_STRING, true, NULL }, END_ARGS };
static const mv_command_arg dn_args[] = { USER_ARG, { "distinguishedName", MV_ARG_STRING, true, NULL }, END_ARGS };
static const mv_command_arg email_args[] = { USER_ARG, { "emailAddresses", MV_ARG_STRING, true, NULL }, END_ARGS };
static const mv_command_arg pop3_args[] = { USER_ARG, { "pop3UserNames", MV_ARG_STRING, true, NULL }, END_ARGS };
static const mv_command_arg privileges_args[] = { USER_ARG, { "privileges", MV_ARG_STRING, false, NULL }, END_ARGS };

static const mv_command_arg authentication_args[] = {
	USER_ARG,
	{ "authentication", MV_ARG_STRING, false, authentications },
	END_ARGS,
};

static const mv_command_arg login_privileges_args[] = {
	USER_ARG,
	{ "loginPrivileges", MV_ARG_STRING, false, NULL },
	END_ARGS,
};

static const mv_command_arg folder_privileges_args[] = {
	USER_ARG,
	{ "folder", MV_ARG_STRING, false, NULL },
	{ "privileges", MV_ARG_STRING, false, NULL },
	END_ARGS,
};

static const mv_command_arg all_folders_args[] = {
	USER_ARG,
	{ "privileges", MV_ARG_STRING, false, NULL },
	{ "excludeFolders", MV_ARG_STRING, true, NULL },
	END_ARGS,
};

static const mv_command_arg compliance_args[] = { { "config", MV_ARG_JSON, false, NULL }, END_ARGS };

const mv_command mv_commands_users[] = {
	{ "ClearUserPrivilegesOnFolders", user_args, "admin", false, clear_user_privileges_on_folders,
	  "Removes all privileges of a user on all archive folders.", NULL },
	{ "CreateUser", create_user_args, "admin", false, create_user, "Create new user.", NULL },
	{ "DeleteAppPasswords", user_args, "admin", false, delete_app_passwords,
	  "Deletes all app passwords of a user.", NULL },
	{ "DeleteUser", user_args, "admin", false, delete_user,
	  "Delete a user (the user's archive and its messages stay).", NULL },
	{ "GetComplianceConfiguration", NO_ARGS, "admin", false, get_compliance,
	  "Get current compliance configuration settings.", NULL },
	{ "GetUserInfo", user_args, "admin", false, get_user_info, "Get detailed information about user.", NULL },
	{ "GetUsers", NO_ARGS, "admin", false, get_users, "Get list of users.", NULL },
	{ "RenameUser", rename_user_args, "admin", false, rename_user, "Rename a user.", NULL },
	{ "SetComplianceConfiguration", compliance_args, "admin", false, set_compliance,
	  "Set compliance configuration settings.", NULL },
	{ "SetUserAuthentication", authentication_args, "admin", false, set_user_authentication,
	  "Set authentication settings of a user.", NULL },
	{ "SetUserDistinguishedName", dn_args, "admin", false, set_user_distinguished_name,
	  "Set the LDAP distinguished name of a user.", NULL },
	{ "SetUserEmailAddresses", email_args, "admin", false, set_user_email_addresses,
	  "Set email addresses of a user (comma separated).", NULL },
	{ "SetUserFullName", full_name_args, "admin", false, set_user_full_name, "Set full name of a user.", NULL },
	{ "SetUserLoginPrivileges", login_privileges_args, "admin", false, set_user_login_privileges,
	  "Set login privileges of a user.", NULL },
	{ "SetUserPassword", password_args, "admin", false, set_user_password, "Set password of a user.", NULL },
	{ "SetUserPop3UserNames", pop3_args, "admin", false, set_user_pop3_user_names,
	  "Set POP3 user names of a user (comma separated).", NULL },
	{ "SetUserPrivileges", privileges_args, "admin", false, set_user_privileges, "Set privileges of a user.", NULL },
	{ "SetUserPrivilegesOnAllFolders", all_folders_args, "admin", false, set_user_privileges_on_all_folders,
	  "Set privileges on all archives for a user, except for the ones excluded.", NULL },
	{ "SetUserPrivilegesOnFolder", folder_privileges_args, "admin", false, set_user_privileges_on_folder,
	  "Set privileges on folder for a user.", NULL },
	{ .name = NULL },
};
