/* commands/registry: the table of Administration API functions and the one
 * way to call them.
 *
 * Each cmd_*.c file contributes a table of entries; this file joins them,
 * sorts them by name once, turns text arguments into typed values (the only
 * place argument syntax is checked, so the shell, the HTTP API and jobs
 * refuse the same inputs with the same words), and wraps a handler's outcome
 * in the JSON envelope of design.md §9. */
#include "commands/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#define MAX_ARG_VALUE_BYTES (16u * 1024u * 1024u)

static const mv_command *const *sorted_table;
static size_t sorted_count;

static gint by_name(gconstpointer a, gconstpointer b)
{
	const mv_command *x = *(const mv_command *const *)a, *y = *(const mv_command *const *)b;
	return strcmp(x->name, y->name);
}

/* Tables of modules above commands/ (export/), handed in by main before
 * the first lookup: commands/ cannot include them. */
#define MAX_REGISTERED_TABLES 4
static const mv_command *registered[MAX_REGISTERED_TABLES];
static size_t registered_count;

void mv_commands_register(const mv_command *table)
{
	g_assert(!sorted_table && registered_count < MAX_REGISTERED_TABLES);
	registered[registered_count++] = table;
}

static gpointer build_table(gpointer unused)
{
	const mv_command *tables[] = { mv_commands_server, mv_commands_stores, mv_commands_maint, mv_commands_folders,
		                       mv_commands_folder_listing, mv_commands_search, mv_commands_users, mv_commands_audit,
		                       mv_commands_service, mv_commands_logon, mv_commands_message,
		                       mv_commands_worker_results, mv_commands_credentials };
	GPtrArray *all = g_ptr_array_new();
	for (size_t t = 0; t < G_N_ELEMENTS(tables); t++)
		for (const mv_command *c = tables[t]; c->name; c++)
			g_ptr_array_add(all, (gpointer)c);
	for (size_t t = 0; t < registered_count; t++)
		for (const mv_command *c = registered[t]; c->name; c++)
			g_ptr_array_add(all, (gpointer)c);
	g_ptr_array_sort(all, by_name);
	sorted_count = all->len;
	sorted_table = (const mv_command *const *)g_ptr_array_free(all, FALSE);
	return NULL;
}

const mv_command *const *mv_command_list(size_t *n_r)
{
	static GOnce once = G_ONCE_INIT;
	g_once(&once, build_table, NULL);
	*n_r = sorted_count;
	return sorted_table;
}

const mv_command *mv_command_find(const char *name)
{
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, all[mid]->name);
		if (c == 0)
			return all[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const char *type_name(mv_arg_type t)
{
	switch (t) {
	case MV_ARG_STRING: return "string";
	case MV_ARG_SECRET: return "string";   /* secret is our concern, not the caller's */
	case MV_ARG_NUMBER: return "number";
	case MV_ARG_BOOL: return "bool";
	case MV_ARG_JSON: return "json";
	}
	return "string";
}

json_t *mv_command_metadata(void)
{
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *args = json_array();
		for (const mv_command_arg *a = all[i]->args; a && a->name; a++)
			json_array_append_new(args, json_pack("{s:s, s:s, s:b}", "name", a->name,
			                                      "type", type_name(a->type), "nullable", a->nullable));
		json_array_append_new(list, json_pack("{s:s, s:o}", "name", all[i]->name, "args", args));
	}
	return list;
}

/* ---- argument conversion ------------------------------------------------------ */

static char *allowed_list(const char *const *allowed)
{
	GString *s = g_string_new(NULL);
	for (const char *const *v = allowed; *v; v++)
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", *v);
	return g_string_free(s, FALSE);
}

static json_t *convert_value(const mv_command *cmd, const mv_command_arg *a, const char *text, GError **error)
{
	switch (a->type) {
	case MV_ARG_SECRET:
		if (!g_utf8_validate(text, -1, NULL)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' is not valid UTF-8", cmd->name, a->name);
			return NULL;
		}
		return json_string(text);
	case MV_ARG_STRING:
		if (!g_utf8_validate(text, -1, NULL)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' is not valid UTF-8", cmd->name, a->name);
			return NULL;
		}
		if (a->allowed) {
			for (const char *const *v = a->allowed; *v; v++)
				if (strcmp(*v, text) == 0)
					return json_string(text);
			char *list = allowed_list(a->allowed);
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' must be one of %s (got '%s')",
			            cmd->name, a->name, list, text);
			g_free(list);
			return NULL;
		}
		return json_string(text);
	case MV_ARG_NUMBER: {
		char *end = NULL;
		errno = 0;
		long long v = strtoll(text, &end, 10);
		if (!*text || errno || !end || *end || g_ascii_isspace(*text)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' must be an integer number (got '%.64s')",
			            cmd->name, a->name, text);
			return NULL;
		}
		return json_integer(v);
	}
	case MV_ARG_BOOL:
		if (strcmp(text, "true") == 0)
			return json_true();
		if (strcmp(text, "false") == 0)
			return json_false();
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' must be true or false (got '%.64s')",
		            cmd->name, a->name, text);
		return NULL;
	case MV_ARG_JSON: {
		json_error_t jerr;
		json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
		if (!v)
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: argument '%s' is not valid JSON: %s at position %d",
			            cmd->name, a->name, jerr.text, jerr.position);
		return v;
	}
	}
	return NULL;
}

static const mv_command_arg *find_arg(const mv_command *cmd, const char *name)
{
	for (const mv_command_arg *a = cmd->args; a && a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static char *arg_names(const mv_command *cmd)
{
	GString *s = g_string_new(NULL);
	for (const mv_command_arg *a = cmd->args; a && a->name; a++)
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", a->name);
	return g_string_free(s, FALSE);
}

/* bad_r names the argument at fault, when one is. */
static json_t *parse_args(const mv_command *cmd, GHashTable *text_args, const char **bad_r, GError **error)
{
	json_t *out = json_object();
	GHashTableIter it;
	gpointer k, v;
	if (text_args) {
		g_hash_table_iter_init(&it, text_args);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			const mv_command_arg *a = find_arg(cmd, k);
			if (!a) {
				*bad_r = NULL;   /* a name we do not know: its value is not ours to show */
				char *names = arg_names(cmd);
				g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: unknown argument '%.100s' (arguments: %s)",
				            cmd->name, (const char *)k, *names ? names : "none");
				g_free(names);
				goto fail;
			}
			*bad_r = a->name;
			if (strlen(v) > MAX_ARG_VALUE_BYTES) {
				g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: argument '%s' is longer than %u bytes",
				            cmd->name, a->name, MAX_ARG_VALUE_BYTES);
				goto fail;
			}
			/* An empty optional value reads as absent, as HTML forms send it
			 * (free text excepted: there "" is a value). */
			bool free_text = (a->type == MV_ARG_STRING && !a->allowed) || a->type == MV_ARG_SECRET;
			if (a->nullable && !free_text && !*(const char *)v)
				continue;
			json_t *val = convert_value(cmd, a, v, error);
			if (!val)
				goto fail;
			json_object_set_new(out, a->name, val);
		}
	}
	for (const mv_command_arg *a = cmd->args; a && a->name; a++) {
		if (!a->nullable && !json_object_get(out, a->name)) {
			*bad_r = NULL;
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: missing argument '%s' (%s)", cmd->name, a->name,
			            type_name(a->type));
			goto fail;
		}
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *mv_command_parse_args(const mv_command *cmd, GHashTable *text_args, GError **error)
{
	const char *bad = NULL;
	return parse_args(cmd, text_args, &bad, error);
}

/* ---- the functions described for people ------------------------------------------ */

/* The values an argument takes, when they are few: NULL otherwise. */
static char *allowed_values_text(const mv_command_arg *a)
{
	if (a->type == MV_ARG_BOOL)
		return g_strdup("true, false");
	return a->allowed ? allowed_list(a->allowed) : NULL;
}

char *mv_command_help_text(const mv_command *cmd)
{
	GString *out = g_string_new(NULL);
	g_string_append_printf(out, "%s: %s\n", cmd->name, cmd->summary ? cmd->summary : "");
	g_string_append_printf(out, "  privilege: %s%s\n", cmd->privilege ? cmd->privilege : "none",
	                       cmd->long_running ? "; long-running (progress on stderr, Ctrl-C cancels it)" : "");
	if (!cmd->args || !cmd->args->name) {
		g_string_append(out, "  arguments: none\n");
		return g_string_free(out, FALSE);
	}
	int width = 0;
	for (const mv_command_arg *a = cmd->args; a->name; a++)
		width = MAX(width, (int)(strlen(a->name) + strlen(type_name(a->type)) + 3));
	g_string_append(out, "  arguments:\n");
	for (const mv_command_arg *a = cmd->args; a->name; a++) {
		char *word = g_strdup_printf("--%s=%s", a->name, type_name(a->type));
		char *values = allowed_values_text(a);
		g_string_append_printf(out, "    %-*s  %s%s%s\n", width, word, a->nullable ? "optional" : "required",
		                       values ? "  one of: " : "", values ? values : "");
		g_free(values);
		g_free(word);
	}
	return g_string_free(out, FALSE);
}

/* A name from a server's answer, fit for a terminal: at most 100 bytes,
 * control characters shown as '?'. */
static char *printable_name(const char *name)
{
	char *out = g_strndup(name ? name : "?", 100);
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return out;
}

char *mv_command_table_text(json_t *meta)
{
	int width = (int)strlen("FUNCTION"), pwidth = (int)strlen("PRIVILEGE");
	size_t i;
	json_t *f;
	json_array_foreach(meta, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		const mv_command *cmd = name ? mv_command_find(name) : NULL;
		width = MAX(width, name ? (int)MIN(strlen(name), 100) : 1);
		pwidth = MAX(pwidth, cmd && cmd->privilege ? (int)strlen(cmd->privilege) : 1);
	}
	GString *out = g_string_new(NULL);
	g_string_append_printf(out, "%-*s  %-*s  %s\n", width, "FUNCTION", pwidth, "PRIVILEGE", "SUMMARY");
	json_array_foreach(meta, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		/* A server's list may hold a function this build does not know:
		 * its name and arguments are all there is to show. */
		const mv_command *cmd = name ? mv_command_find(name) : NULL;
		char *shown = printable_name(name);
		g_string_append_printf(out, "%-*s  %-*s  %s\n", width, shown, pwidth,
		                       cmd && cmd->privilege ? cmd->privilege : "?",
		                       cmd ? (cmd->summary ? cmd->summary : "")
		                           : "(not known to this build of mailvault; --list --json shows its arguments)");
		g_free(shown);
	}
	return g_string_free(out, FALSE);
}

/* ---- invocation ------------------------------------------------------------------ */

/* Text from outside (file names, arguments) may not be UTF-8, which jansson
 * refuses: the envelope would lose the message that explains the failure. */
json_t *mv_command_text_value(const char *s)
{
	char *valid = g_utf8_make_valid(s, -1);
	json_t *v = json_string(valid);
	g_free(valid);
	return v;
}

json_t *mv_command_envelope(const char *status, json_t *error, json_t *result, const char *log)
{
	return json_pack("{s:o, s:n, s:i, s:s, s:n, s:n, s:o, s:o}", "error", error ? error : json_null(),
	                 "token", "statusVersion", 0, "statusCode", status, "percentProgress", "statusText",
	                 "result", result ? result : json_null(),
	                 "logOutput", log && *log ? mv_command_text_value(log) : json_null());
}

const char *mv_command_failed_status(const GError *err)
{
	return err && err->code == MV_ERR_CANCELLED ? "cancelled" : "failed";
}

json_t *mv_command_error_value(const GError *err)
{
	return json_pack("{s:o, s:n}", "message", mv_command_text_value(err ? err->message : "failed without a reason"),
	                 "details");
}

json_t *mv_command_error_envelope(const char *message, const char *details)
{
	json_t *err = json_pack("{s:o, s:o}", "message", mv_command_text_value(message),
	                        "details", details ? mv_command_text_value(details) : json_null());
	return mv_command_envelope("failed", err, NULL, NULL);
}

bool mv_command_allowed(const mv_command *cmd, unsigned privileges)
{
	if (privileges & MV_PRIV_ADMIN)
		return true;
	return strcmp(cmd->privilege, "login") == 0 && (privileges & MV_PRIV_LOGIN);
}

bool mv_command_read_only(const mv_command *cmd)
{
	return g_str_has_prefix(cmd->name, "Get") || g_str_has_prefix(cmd->name, "List") ||
	       g_str_has_prefix(cmd->name, "Verify") || g_str_has_prefix(cmd->name, "Search");
}

/* MailStore's audit event types for the functions that have one; the rest
 * are logged as AdminApiCall with the function's name in the details. */
static const struct {
	const char *function, *event;
} audit_events[] = {
	{ "AttachStore", "FileGroupAttach" },
	{ "ChangeOwnPassword", "UserUpdate" },
	{ "ClearUserPrivilegesOnFolders", "UserSetFolderAccess" },
	{ "CreateAppPassword", "UserUpdate" },
	{ "CreateStore", "FileGroupCreate" },
	{ "CreateUser", "UserAdd" },
	{ "DeleteAppPassword", "UserUpdate" },
	{ "DeleteAppPasswords", "UserUpdate" },
	{ "DeleteMessage", "MessageDelete" },
	{ "DeleteUser", "UserDelete" },
	{ "DetachStore", "FileGroupDetach" },
	{ "DisableMFA", "UserUpdate" },
	{ "GetMessage", "MessageRetrieveContent" },
	{ "InitializeMFA", "UserUpdate" },
	{ "RenameStore", "FileGroupRename" },
	{ "RenameUser", "UserRename" },
	{ "SearchMessages", "MessageSearch" },
	{ "SetComplianceConfiguration", "ComplianceChangeSettings" },
	{ "SetStoreProperties", "FileGroupSetProperties" },
	{ "SetStoreRequestedState", "FileGroupSetRequestedState" },
	{ "SetUserAuthentication", "UserUpdate" },
	{ "SetUserDistinguishedName", "UserUpdate" },
	{ "SetUserEmailAddresses", "UserUpdate" },
	{ "SetUserFullName", "UserUpdate" },
	{ "SetUserLoginPrivileges", "UserUpdate" },
	{ "SetUserPassword", "UserUpdate" },
	{ "SetUserPop3UserNames", "UserUpdate" },
	{ "SetUserPrivileges", "UserUpdate" },
	{ "SetUserPrivilegesOnAllFolders", "UserSetFolderAccess" },
	{ "SetUserPrivilegesOnFolder", "UserSetFolderAccess" },
};

const char *mv_command_audit_event(const mv_command *cmd)
{
	for (size_t i = 0; i < G_N_ELEMENTS(audit_events); i++)
		if (strcmp(audit_events[i].function, cmd->name) == 0)
			return audit_events[i].event;
	return "AdminApiCall";
}

/* Arguments that must never reach the audit log or any log: their type says so. */
static bool secret_argument(const mv_command *cmd, const char *name)
{
	const mv_command_arg *a = find_arg(cmd, name);
	return a && a->type == MV_ARG_SECRET;
}

bool mv_command_text_may_hold_secret(const char *text)
{
	size_t n;
	const mv_command *const *all = mv_command_list(&n);
	bool found = false;
	for (size_t i = 0; i < n && !found; i++)
		for (const mv_command_arg *a = all[i]->args; a && a->name && !found; a++)
			found = a->type == MV_ARG_SECRET && strcasestr(text, a->name) != NULL;
	return found;
}

/* A JSON argument (a profile's properties) may carry a secret inside it
 * (details.password): members named like a secret are replaced at any
 * depth (bounded), in a copy. */
static const char *const secret_member_names[] = { "password", "clientSecret", "secret", "privateKey", NULL };

static bool secret_member(const char *key)
{
	for (const char *const *n = secret_member_names; *n; n++)
		if (g_ascii_strcasecmp(key, *n) == 0)
			return true;
	return false;
}

static json_t *without_secrets(json_t *value, int depth)
{
	if (depth > 16 || (!json_is_object(value) && !json_is_array(value)))
		return depth > 16 ? json_string("(hidden)") : json_incref(value);
	if (json_is_array(value)) {
		json_t *out = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(value, i, v)
			json_array_append_new(out, without_secrets(v, depth + 1));
		return out;
	}
	json_t *out = json_object();
	const char *key;
	json_t *v;
	json_object_foreach(value, key, v)
		json_object_set_new(out, key, secret_member(key) && !(json_is_string(v) && !*json_string_value(v))
		                                  ? json_string("(hidden)") : without_secrets(v, depth + 1));
	return out;
}

/* {"function":F,"args":{...}} with secrets replaced, plus the error when
 * failed and the handler's note. */
static char *audit_details(const mv_command *cmd, json_t *args, const char *note, const GError *err)
{
	json_t *shown = json_object();
	const char *key;
	json_t *value;
	json_object_foreach(args, key, value)
		json_object_set_new(shown, key, secret_argument(cmd, key) ? json_string("(hidden)") : without_secrets(value, 0));
	json_t *d = json_pack("{s:s, s:o}", "function", cmd->name, "args", shown);
	if (err)
		json_object_set_new(d, "error", mv_command_text_value(err->message));
	if (note)
		json_object_set_new(d, "note", mv_command_text_value(note));
	char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	return text;
}

/* Every call that changes something, and every failed call, goes to the
 * audit log; successful reads do not (they are not administrative
 * actions, and logging each would let readers flood the log).  A failure
 * to write the audit entry is logged but does not undo the action that
 * already happened. */
void mv_command_audit_outcome(const mv_command *cmd, mv_command_ctx *ctx, json_t *args, const GError *err)
{
	bool failed = err != NULL;
	const char *event = mv_command_audit_event(cmd);
	/* A successful read is no administrative action; reading mail (a
	 * search, a message) is a user activity, logged when the compliance
	 * configuration lists it, whoever reads. */
	if (!failed && mv_command_read_only(cmd) &&
	    (strcmp(event, "AdminApiCall") == 0 || !mv_audit_wanted(ctx->inst, event, false)))
		return;
	/* What changes something is always logged, whoever calls: a user's
	 * own deletion, move or new app password as much as an
	 * administrator's action. */
	char *details = audit_details(cmd, args, ctx->audit_note, err);
	GError *aerr = NULL;
	if (mv_audit_append(ctx->inst, ctx->user ? ctx->user : "", ctx->remote ? ctx->remote : "local", event,
	                    !failed, details, &aerr) < 0) {
		mv_log_error("audit log: cannot record %s by %s: %s", cmd->name, ctx->user ? ctx->user : "?",
		             aerr->message);
		g_error_free(aerr);
	}
	free(details);
}

/* ---- calls refused before their handler ------------------------------------------------ */

/* The names of the arguments given, never their values: a refused call's
 * values are unchecked and may hold a password typed in the wrong place. */
static json_t *given_names(GHashTable *text_args)
{
	json_t *names = json_array();
	if (!text_args)
		return names;
	GList *keys = g_list_sort(g_hash_table_get_keys(text_args), (GCompareFunc)strcmp);
	unsigned shown = 0;
	for (GList *k = keys; k && shown < 50; k = k->next, shown++) {
		char *cut = g_strndup(k->data, 100);   /* names from a form are outside input too */
		json_array_append_new(names, mv_command_text_value(cut));
		g_free(cut);
	}
	g_list_free(keys);
	return names;
}

static void audit_refusal(mv_command_ctx *ctx, const char *function, const char *event, GHashTable *text_args,
                          const char *reason)
{
	json_t *d = json_pack("{s:o, s:o, s:o}", "function", mv_command_text_value(function), "arguments",
	                      given_names(text_args), "error", mv_command_text_value(reason));
	char *details = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	GError *aerr = NULL;
	if (mv_audit_append(ctx->inst, ctx->user ? ctx->user : "", ctx->remote ? ctx->remote : "local", event, false,
	                    details ? details : "{}", &aerr) < 0) {
		mv_log_error("audit log: cannot record the refused call of %.100s: %s", function, aerr->message);
		g_error_free(aerr);
	}
	free(details);
}

/* A refusal's reason as the audit log keeps it: the checker's words, except
 * when they would quote the value of a secret argument. */
static char *refusal_reason(const mv_command *cmd, const char *bad_arg, const GError *err)
{
	if (bad_arg && secret_argument(cmd, bad_arg))
		return g_strdup_printf("argument '%s' was refused (its value is not recorded)", bad_arg);
	return g_strdup(err->message);
}

const mv_command *mv_command_prepare(mv_command_ctx *ctx, const char *name, unsigned privileges,
                                     GHashTable *text_args, json_t **args_r, GError **error)
{
	const mv_command *cmd = mv_command_find(name);
	if (!cmd) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "unknown function '%.100s'", name);
		audit_refusal(ctx, name, "AdminApiCall", text_args, (*error)->message);
		return NULL;
	}
	if (!mv_command_allowed(cmd, privileges)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "user %s may not call %s: it needs the %s privilege",
		            ctx->user ? ctx->user : "?", cmd->name, cmd->privilege);
		audit_refusal(ctx, cmd->name, "AccessDenied", text_args, (*error)->message);
		return NULL;
	}
	const char *bad = NULL;
	GError *err = NULL;
	json_t *args = parse_args(cmd, text_args, &bad, &err);
	if (!args) {
		char *reason = refusal_reason(cmd, bad, err);
		audit_refusal(ctx, cmd->name, mv_command_audit_event(cmd), text_args, reason);
		g_free(reason);
		g_propagate_error(error, err);
		return NULL;
	}
	*args_r = args;
	return cmd;
}

json_t *mv_command_call(const mv_command *cmd, mv_command_ctx *ctx, json_t *args, GError **error)
{
	GError *err = NULL;
	json_t *result = NULL;
	if (cmd->run) {
		result = cmd->run(ctx, args, &err);
	} else {
		mv_rows *rows = cmd->rows(ctx, args, &err);
		result = rows ? mv_rows_collect(rows, &err) : NULL;
	}
	if (!result && !err)
		g_set_error(&err, MV_ERROR, MV_ERR_IO, "failed without a reason");
	mv_command_audit_outcome(cmd, ctx, args, result ? NULL : err);
	g_clear_pointer(&ctx->audit_note, g_free);
	if (err)
		g_propagate_error(error, err);
	return result;
}

json_t *mv_command_invoke(const mv_command *cmd, mv_command_ctx *ctx, json_t *args)
{
	GError *err = NULL;
	GString *own_log = NULL;
	if (!ctx->log)
		ctx->log = own_log = g_string_new(NULL);
	json_t *result = mv_command_call(cmd, ctx, args, &err);
	json_t *env;
	if (result)
		env = mv_command_envelope("succeeded", NULL, result, ctx->log->str);
	else
		env = mv_command_envelope(mv_command_failed_status(err), mv_command_error_value(err), NULL, ctx->log->str);
	if (err)
		g_error_free(err);
	if (own_log) {
		g_string_free(own_log, TRUE);
		ctx->log = NULL;
	}
	return env;
}

/* ---- handler helpers ------------------------------------------------------------------ */

void mv_command_progress(mv_command_ctx *ctx, int percent, const char *fmt, ...)
{
	if (!ctx->progress)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	ctx->progress(ctx->progress_opaque, percent, text);
	g_free(text);
}

void mv_command_log(mv_command_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	/* The caller shows logOutput; the log gets it at debug level only, so
	 * that a terminal does not see every line twice. */
	mv_log_debug("%s", text);
	if (ctx->log)
		g_string_append_printf(ctx->log, "%s\n", text);
	g_free(text);
}

void mv_command_audit_note(mv_command_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_free(ctx->audit_note);
	ctx->audit_note = g_strdup_vprintf(fmt, ap);
	va_end(ap);
}

bool mv_command_cancelled(mv_command_ctx *ctx)
{
	return ctx->cancel && g_atomic_int_get(ctx->cancel) != 0;
}

const char *mv_arg_string(json_t *args, const char *name)
{
	return json_string_value(json_object_get(args, name));
}

int64_t mv_arg_number(json_t *args, const char *name, int64_t absent)
{
	json_t *v = json_object_get(args, name);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : absent;
}

bool mv_arg_bool(json_t *args, const char *name, bool absent)
{
	json_t *v = json_object_get(args, name);
	return json_is_boolean(v) ? json_is_true(v) : absent;
}

bool mv_arg_present(json_t *args, const char *name)
{
	return json_object_get(args, name) != NULL;
}
