/* sources/profile_mailbox: the IMAP and POP3 connectors — their details
 * and rules, and a run: one mailbox (subType 0), many through one
 * administrative login (1: Dovecot master users or SASL PLAIN with an
 * authorisation identity), or a multidrop mailbox routed by address (2),
 * all into one mv_ingest named after the profile.
 *
 * The password never stays in the details: CreateProfile turns it into a
 * Password credential that the profile names (profiles.c does that for any
 * connector's secret detail), and a run asks archive/credentials.c for the
 * secret when it connects.  A temporary profile's password lives only as
 * long as its run.
 *
 * Multiple mailboxes and multidrop fill other users' archives: only
 * administrators may save or run them.  A mailbox of many that cannot be
 * read (no such mailbox, a refused login) is a refused item of the run and
 * the others go on. */
#include "sources/mailbox_source.h"
#include "sources/profile_internal.h"

#include <sodium.h>
#include <string.h>

#define MAX_TIMEOUT_SECONDS 3600
#define MAX_DAYS 36500

static const char *const imap_protocols[] = { "IMAP", "IMAP-TLS", "IMAP-SSL", NULL };
static const char *const pop3_protocols[] = { "POP3", "POP3-TLS", "POP3-SSL", NULL };
static const char *const imap_sub_types[] = { "0", "1", "2", NULL };
static const char *const pop3_sub_types[] = { "0", "2", NULL };
static const char *const login_methods[] = { "masterUser", "saslAuthzid", NULL };
static const char *const mailbox_logins[] = { "emailAddress", "userName", NULL };
static const char *const unknown_policies[] = { "leave", "ignore", "catchall", NULL };
static const char *const delete_rules[] = { "never", "afterArchiving", "olderThan", NULL };
static const char *const delete_ages[] = { "messageDate", "archiveDate", NULL };

#define CONNECTION_DETAILS(protocols, default_protocol, proto_text)                                                   \
	{ "host", true, NULL, "", "the server: HOST or HOST:PORT (an IPv6 address in [])" },                             \
	{ "protocol", false, protocols, default_protocol, proto_text },                                                  \
	{ "userName", true, NULL, "", "the login; for multiple mailboxes the administrative login (with loginMethod "   \
	  "masterUser the master user's name)" },                                                                        \
	{ "password", false, NULL, "", "the login's password; CreateProfile keeps it as a Password credential and "    \
	  "saves that credential's id in credential instead (never shown back)" },                                       \
	{ "credential", false, NULL, "", "the id of a Password credential (CreateCredential) holding the password" },    \
	{ "ignoreSSLPolicyErrors", false, mv_detail_flags, "0", "\"1\": accept any certificate (self-signed, expired, " \
	  "another name); \"0\": verify against the system's CA store or caFile" },                                      \
	{ "caFile", false, NULL, "", "administrators: a PEM file of CA certificates to verify the server against "      \
	  "instead of the system's store" },                                                                             \
	{ "timeout", false, NULL, "60", "seconds to wait for the server (connecting, and each answer)" },                \
	{ "emailAddress", false, NULL, "", "the mailbox's address, for reference" }

#define FILTER_DETAILS                                                                                               \
	{ "olderThanDays", false, NULL, "", "only messages older than this many days (by the server's received date); " \
	  "younger ones are looked at again next run" },                                                                 \
	{ "newerThanDays", false, NULL, "", "only messages newer than this many days" },                               \
	{ "maxSizeMB", false, NULL, "0", "messages larger than this many MB are passed over; 0: no limit" },             \
	{ "deleteRule", false, delete_rules, "never", "what is deleted from the server, only once durably archived: "   \
	  "never, afterArchiving, or olderThan (archived and older than deleteAfterDays)" },                             \
	{ "deleteAfterDays", false, NULL, "0", "deleteRule olderThan: the age in days" },                               \
	{ "deleteAgeBy", false, delete_ages, "messageDate", "deleteRule olderThan: the age of the message (its Date) or " \
	  "of its archiving; POP3 knows only archiveDate (its default)" }

#define MULTIDROP_DETAILS                                                                                            \
	{ "targetFolder", false, NULL, "Inbox", "multidrop (subType 2): the folder in each user's archive; "            \
	  "{u-email} is the user's primary address, {h-email} the address as the message named it; single POP3 "        \
	  "mailbox: the folder messages go to" },                                                                        \
	{ "unknownAddresses", false, unknown_policies, "leave", "multidrop: a message for no known user — leave it in " \
	  "the mailbox (looked at again next run), ignore it (not archived), or catchall (into catchallArchive)" },      \
	{ "catchallArchive", false, NULL, "", "multidrop with unknownAddresses catchall: the user archive it goes to" }

static const mv_detail_spec imap_details[] = {
	CONNECTION_DETAILS(imap_protocols, "IMAP-TLS", "IMAP (plain), IMAP-TLS (STARTTLS, required), IMAP-SSL "
	                   "(implicit TLS)"),
	{ "subType", false, imap_sub_types, "0", "0: one mailbox into targetArchive; 1: multiple mailboxes, each into "
	  "its user's archive (administrators); 2: a multidrop mailbox routed by address (administrators)" },
	{ "targetArchive", false, NULL, NULL, "single mailbox: the user archive it goes to; default and, for users "
	  "other than administrators, the only value: the profile owner's own archive" },
	{ "targetUserFolder", false, NULL, "", "single and multiple mailboxes: the folder the mailbox's folders go "
	  "below; empty: the archive's top level" },
	{ "includeFolders", false, NULL, "", "comma-separated folders as the server names them (decoded, levels "
	  "separated by '/', INBOX as Inbox), each with its subfolders: only these; empty: all" },
	{ "excludeFolders", false, NULL, "", "comma-separated folders, each with its subfolders, not archived" },
	{ "disableAutoExcludeSourceFolders", false, mv_detail_flags, "0", "\"0\": Junk and Trash (special-use flags, "
	  "or common names) are passed over unless named in includeFolders; \"1\": archived too" },
	{ "userNames", false, NULL, "", "multiple mailboxes: comma-separated mailvault users; empty: every user with an "
	  "email address" },
	{ "loginMethod", false, login_methods, "masterUser", "multiple mailboxes: masterUser logs in as "
	  "MAILBOX<separator>userName (Dovecot master users), saslAuthzid as userName with MAILBOX as SASL PLAIN's "
	  "authorisation identity" },
	{ "masterUserSeparator", false, NULL, "*", "loginMethod masterUser: what joins mailbox and master user" },
	{ "mailboxLogin", false, mailbox_logins, "emailAddress", "multiple mailboxes: what names each user's mailbox "
	  "on the server: their first email address, or their mailvault user name" },
	MULTIDROP_DETAILS,
	{ "excludeUnRead", false, mv_detail_flags, "0", "\"1\": unread messages are passed over until they are read" },
	FILTER_DETAILS,
	{ "keepFlagged", false, mv_detail_flags, "0", "\"1\": flagged messages are never deleted" },
	{ "keepUnread", false, mv_detail_flags, "0", "\"1\": unread messages are never deleted" },
	{ .name = NULL },
};

static const mv_detail_spec pop3_details[] = {
	CONNECTION_DETAILS(pop3_protocols, "POP3-TLS", "POP3 (plain), POP3-TLS (STLS, required), POP3-SSL "
	                   "(implicit TLS)"),
	{ "subType", false, pop3_sub_types, "0", "0: one mailbox into targetArchive; 2: a multidrop mailbox routed by "
	  "address (administrators)" },
	{ "targetArchive", false, NULL, NULL, "single mailbox: the user archive it goes to; default and, for users "
	  "other than administrators, the only value: the profile owner's own archive" },
	MULTIDROP_DETAILS,
	FILTER_DETAILS,
	{ .name = NULL },
};

/* ---- checking ---------------------------------------------------------------------------------- */

static const char *detail(json_t *details, const char *name)
{
	return mv_profile_detail(details, name);
}

static bool is_imap(json_t *details)
{
	return json_object_get(details, "includeFolders") != NULL;
}

static int number_detail(const char *fn, json_t *details, const char *name, int64_t min, int64_t max, bool empty_ok,
                         int64_t *out, GError **error)
{
	const char *v = detail(details, name);
	gint64 n = 0;
	if (empty_ok && !*v) {
		*out = -1;
		return 0;
	}
	if (!g_ascii_string_to_signed(v, 10, min, max, &n, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: '%s' is not a whole number from %" G_GINT64_FORMAT
		            " to %" G_GINT64_FORMAT "%s", fn, name, v, min, max, empty_ok ? " (or empty: off)" : "");
		return -1;
	}
	*out = n;
	return 0;
}

static int check_numbers(const char *fn, json_t *details, GError **error)
{
	int64_t n;
	if (number_detail(fn, details, "timeout", 1, MAX_TIMEOUT_SECONDS, false, &n, error) < 0 ||
	    number_detail(fn, details, "maxSizeMB", 0, MV_MAX_MESSAGE_SIZE / (1024 * 1024), false, &n, error) < 0 ||
	    number_detail(fn, details, "olderThanDays", 1, MAX_DAYS, true, &n, error) < 0 ||
	    number_detail(fn, details, "newerThanDays", 1, MAX_DAYS, true, &n, error) < 0)
		return -1;
	bool older = strcmp(detail(details, "deleteRule"), "olderThan") == 0;
	if (number_detail(fn, details, "deleteAfterDays", 0, MAX_DAYS, false, &n, error) < 0)
		return -1;
	if (older && n < 1) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.deleteAfterDays: deleteRule olderThan needs an age "
		            "of 1 day or more", fn);
		return -1;
	}
	return 0;
}

static int check_login(const char *fn, json_t *details, GError **error)
{
	const char *password = detail(details, "password"), *credential = detail(details, "credential");
	if (*password && *credential) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.password and details.credential are both given: "
		            "give one", fn);
		return -1;
	}
	guint64 id;
	if (*credential && !g_ascii_string_to_unsigned(credential, 10, 1, G_MAXINT64, &id, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.credential: '%s' is not a credential id", fn,
		            credential);
		return -1;
	}
	const char *host = detail(details, "host");
	if (strpbrk(host, "/?#@ \t\r\n")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.host: '%s' is not HOST or HOST:PORT", fn, host);
		return -1;
	}
	return 0;
}

/* The folder template and policy as routing will take them: checked by
 * routing itself, on a message of no one. */
static int check_route_options(const char *fn, json_t *details, GError **error)
{
	mv_route_options ro = { .folder = detail(details, "targetFolder"),
		                    .catchall_archive = detail(details, "catchallArchive") };
	mv_unknown_policy_from_name(detail(details, "unknownAddresses"), &ro.unknown);
	mv_routing *r = mv_routing_new(NULL, 0);
	static const uint8_t probe[] = "From: probe@invalid\r\n\r\n";
	mv_route route = { 0 };
	int rc = mv_route_message(r, &ro, NULL, NULL, probe, sizeof probe - 1, &route, error);
	mv_route_clear(&route);
	mv_routing_free(r);
	if (rc < 0)
		g_prefix_error(error, "%s: details.targetFolder or catchallArchive: ", fn);
	return rc;
}

static int check_targets(mv_command_ctx *ctx, const char *fn, const char *owner, json_t *details, GError **error)
{
	const char *sub = detail(details, "subType");
	bool admin = mv_profile_caller_is_admin(ctx);
	if (strcmp(sub, "0") != 0 && !admin) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.subType: '%s' archives into other users' archives: "
		            "only administrators may use it", fn, sub);
		return -1;
	}
	if (*detail(details, "caFile") && (!admin || !g_path_is_absolute(detail(details, "caFile")))) {
		g_set_error(error, MV_ERROR, admin ? MV_ERR_INVALID : MV_ERR_DENIED, "%s: details.caFile: %s", fn,
		            admin ? "give an absolute path" : "only administrators name files the server reads");
		return -1;
	}
	if (strcmp(sub, "0") == 0) {
		const char *archive = detail(details, "targetArchive");
		if (mv_archive_name_check(archive, error) < 0) {
			g_prefix_error(error, "%s: details.targetArchive: ", fn);
			return -1;
		}
		if (!admin && !mv_profile_same_user(archive, owner)) {
			g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.targetArchive: '%s' is not your own archive "
			            "('%s'): only administrators archive into another user's archive", fn, archive, owner);
			return -1;
		}
	}
	if (strcmp(sub, "2") == 0 && strcmp(detail(details, "unknownAddresses"), "catchall") == 0 &&
	    !*detail(details, "catchallArchive")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.catchallArchive is required with unknownAddresses "
		            "catchall (the archive messages for unknown addresses go to)", fn);
		return -1;
	}
	if (strcmp(sub, "2") == 0 && check_route_options(fn, details, error) < 0)
		return -1;
	if (!*detail(details, "targetFolder")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.targetFolder must not be empty", fn);
		return -1;
	}
	return 0;
}

static int check_mailbox(mv_command_ctx *ctx, const char *fn, const char *owner, json_t *given, json_t *details,
                         GError **error)
{
	if (!is_imap(details) && !json_object_get(given, "deleteAgeBy"))
		json_object_set_new(details, "deleteAgeBy", json_string("archiveDate"));
	if (!is_imap(details) && strcmp(detail(details, "deleteAgeBy"), "messageDate") == 0 &&
	    strcmp(detail(details, "deleteRule"), "olderThan") == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.deleteAgeBy: 'messageDate': POP3 tells no "
		            "message's date before it is downloaded; use archiveDate", fn);
		return -1;
	}
	if (*detail(details, "credential") && !mv_profile_caller_is_admin(ctx)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.credential: only administrators name a stored "
		            "credential; give the password", fn);
		return -1;
	}
	if (check_login(fn, details, error) < 0 || check_numbers(fn, details, error) < 0 ||
	    check_targets(ctx, fn, owner, details, error) < 0)
		return -1;
	if (is_imap(details) && strcmp(detail(details, "subType"), "1") == 0 &&
	    !*detail(details, "masterUserSeparator") && strcmp(detail(details, "loginMethod"), "masterUser") == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.masterUserSeparator must not be empty with "
		            "loginMethod masterUser", fn);
		return -1;
	}
	return 0;
}

/* ---- options from details ---------------------------------------------------------------------- */

typedef struct run_options {
	mv_mailbox_options o;
	char *password;           /* wiped when freed */
	size_t password_len;
	int64_t *numbers;
} run_options;

static int64_t number_of(json_t *details, const char *name)
{
	gint64 n = 0;
	const char *v = detail(details, name);
	return *v && g_ascii_string_to_signed(v, 10, 0, G_MAXINT64, &n, NULL) ? n : 0;
}

/* The password: given (a temporary profile), or the credential's secret. */
static int resolve_password(mv_command_ctx *ctx, json_t *details, run_options *ro, GError **error)
{
	const char *password = detail(details, "password");
	const char *credential = detail(details, "credential");
	if (!*credential) {
		ro->password = g_strdup(password);
		ro->password_len = strlen(password);
		return 0;
	}
	mv_credential *cred = NULL;
	if (mv_credential_secret(ctx->inst, number_of(details, "credential"), &cred, &ro->password, &ro->password_len,
	                         error) < 0) {
		g_prefix_error(error, "credential %s: ", credential);
		return -1;
	}
	bool password_type = cred->type == MV_CREDENTIAL_PASSWORD;
	mv_credential_free(cred);
	if (!password_type) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "credential %s is not a Password credential", credential);
		return -1;
	}
	return 0;
}

static void run_options_clear(run_options *ro)
{
	if (ro->password) {
		sodium_memzero(ro->password, ro->password_len);
		g_free(ro->password);
	}
	g_strfreev(ro->o.include_folders);
	g_strfreev(ro->o.exclude_folders);
}

static char **folder_list(const char *text)
{
	char **parts = g_strsplit(text, ",", -1);
	GPtrArray *out = g_ptr_array_new();
	for (char **p = parts; *p; p++) {
		char *f = g_strstrip(g_strdup(*p));
		while (*f && f[strlen(f) - 1] == '/')
			f[strlen(f) - 1] = 0;
		if (*f)
			g_ptr_array_add(out, f);
		else
			g_free(f);
	}
	g_strfreev(parts);
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static void fill_options(const mv_profile *p, json_t *details, run_options *ro)
{
	mv_mailbox_options *o = &ro->o;
	mv_mail_protocol_from_name(detail(details, "protocol"), &o->server.protocol, &o->server.tls);
	o->server.host = detail(details, "host");
	o->server.user = detail(details, "userName");
	o->server.password = ro->password;
	o->server.verify_certificate = strcmp(detail(details, "ignoreSSLPolicyErrors"), "1") != 0;
	o->server.ca_file = *detail(details, "caFile") ? detail(details, "caFile") : NULL;
	o->server.timeout_seconds = (int)number_of(details, "timeout");
	o->mailbox = detail(details, "userName");
	o->profile_id = p->id;
	o->archive = detail(details, "targetArchive");
	o->target_folder = is_imap(details) ? detail(details, "targetUserFolder") : detail(details, "targetFolder");
	o->include_folders = folder_list(detail(details, "includeFolders"));
	o->exclude_folders = folder_list(detail(details, "excludeFolders"));
	o->include_junk_trash = strcmp(detail(details, "disableAutoExcludeSourceFolders"), "1") == 0;
	o->older_than_days = *detail(details, "olderThanDays") ? (int)number_of(details, "olderThanDays") : -1;
	o->newer_than_days = *detail(details, "newerThanDays") ? (int)number_of(details, "newerThanDays") : -1;
	o->max_size = (uint64_t)number_of(details, "maxSizeMB") * 1024u * 1024u;
	o->exclude_unread = strcmp(detail(details, "excludeUnRead"), "1") == 0;
	const char *rule = detail(details, "deleteRule");
	o->delete_rule = strcmp(rule, "afterArchiving") == 0 ? MV_DELETE_AFTER_ARCHIVING
	                 : strcmp(rule, "olderThan") == 0    ? MV_DELETE_OLDER_THAN
	                                                     : MV_DELETE_NEVER;
	o->delete_after_days = (int)number_of(details, "deleteAfterDays");
	o->delete_by_archive_date = strcmp(detail(details, "deleteAgeBy"), "archiveDate") == 0;
	o->keep_flagged = strcmp(detail(details, "keepFlagged"), "1") == 0;
	o->keep_unread = strcmp(detail(details, "keepUnread"), "1") == 0;
	o->route.folder = detail(details, "targetFolder");
	mv_unknown_policy_from_name(detail(details, "unknownAddresses"), &o->route.unknown);
	o->route.catchall_archive = detail(details, "catchallArchive");
}

/* ---- a run ---------------------------------------------------------------------------------------- */

typedef int (*source_fn)(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                         mv_task *task, mv_mailbox_counts *counts, GError **error);

typedef struct mailbox_run {
	mv_command_ctx *ctx;
	mv_ingest *ing;
	mv_mailbox_commits *commits;
	source_fn source;
	mv_task task;
	mv_mailbox_counts counts;
	uint64_t mailboxes;
} mailbox_run;

/* The users whose mailboxes a multiple-mailbox profile reads (mv_user*). */
static GPtrArray *mailbox_users(mv_command_ctx *ctx, json_t *details, GError **error)
{
	const char *names = detail(details, "userNames");
	if (!*names) {
		GPtrArray *all = mv_users_list(ctx->inst, error);
		if (!all)
			return NULL;
		GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_user_free);
		for (guint i = 0; i < all->len; i++) {
			mv_user *u = all->pdata[i];
			if (u->email_addresses->len > 0) {
				g_ptr_array_add(out, u);
				all->pdata[i] = NULL;
			}
		}
		g_ptr_array_set_free_func(all, (GDestroyNotify)mv_user_free);
		g_ptr_array_unref(all);
		return out;
	}
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_user_free);
	char **list = folder_list(names);
	for (char **n = list; *n; n++) {
		mv_user *u = mv_user_get(ctx->inst, *n, error);
		if (!u) {
			g_prefix_error(error, "details.userNames: ");
			g_ptr_array_unref(out);
			out = NULL;
			break;
		}
		g_ptr_array_add(out, u);
	}
	g_strfreev(list);
	return out;
}

/* The options of one user's mailbox of many: its name on the server, the
 * administrative login to it (*login_r to g_free()), its archive.  NULL
 * when the user has no address to name it by. */
static const char *one_of_many(json_t *details, const mv_user *u, mv_mailbox_options *o, char **login_r)
{
	bool by_email = strcmp(detail(details, "mailboxLogin"), "emailAddress") == 0;
	*login_r = NULL;
	if (by_email && u->email_addresses->len == 0)
		return NULL;
	const char *mailbox = by_email ? u->email_addresses->pdata[0] : u->name;
	if (strcmp(detail(details, "loginMethod"), "masterUser") == 0) {
		*login_r = g_strdup_printf("%s%s%s", mailbox, detail(details, "masterUserSeparator"),
		                           detail(details, "userName"));
		o->server.user = *login_r;
	} else {
		o->server.authzid = mailbox;
	}
	o->mailbox = mailbox;
	o->archive = u->name;
	return mailbox;
}

/* One mailbox of many: a login that fails, or a mailbox that is not
 * there, is a refused item of the run; the others go on. */
static int run_one_of_many(mailbox_run *mr, run_options *ro, json_t *details, const mv_user *u, GError **error)
{
	mv_mailbox_options o = ro->o;
	char *login = NULL;
	const char *mailbox = one_of_many(details, u, &o, &login);
	if (!mailbox) {
		char *why = g_strdup_printf("user '%s' has no email address to name a mailbox by", u->name);
		mv_ingest_refuse(mr->ing, u->name, why);
		g_free(why);
		return 0;
	}
	GError *e = NULL;
	int rc = mr->source(mr->ctx->inst, mr->ing, mr->commits, &o, &mr->task, &mr->counts, &e);
	g_free(login);
	mr->mailboxes++;
	if (rc == 0)
		return 0;
	if (g_error_matches(e, MV_ERROR, MV_ERR_CANCELLED) || g_error_matches(e, MV_ERROR, MV_ERR_NO_SPACE)) {
		g_propagate_error(error, e);
		return -1;
	}
	char *origin = g_strdup_printf("mailbox %s", mailbox);
	mv_ingest_refuse(mr->ing, origin, e->message);
	mv_command_log(mr->ctx, "mailbox %s: %s", mailbox, e->message);
	g_free(origin);
	g_clear_error(&e);
	return 0;
}

static int run_mailboxes(mailbox_run *mr, run_options *ro, json_t *details, GError **error)
{
	const char *sub = detail(details, "subType");
	if (strcmp(sub, "1") == 0) {
		GPtrArray *users = mailbox_users(mr->ctx, details, error);
		if (!users)
			return -1;
		int rc = 0;
		for (guint i = 0; rc == 0 && i < users->len; i++)
			rc = run_one_of_many(mr, ro, details, users->pdata[i], error);
		g_ptr_array_unref(users);
		return rc;
	}
	mv_routing *routing = NULL;
	if (strcmp(sub, "2") == 0) {
		if (!(routing = mv_routing_load(mr->ctx->inst, error)))
			return -1;
		ro->o.routing = routing;
		mv_command_log(mr->ctx, "multidrop: %zu users with an email address", mv_routing_user_count(routing));
	}
	mr->mailboxes++;
	int rc = mr->source(mr->ctx->inst, mr->ing, mr->commits, &ro->o, &mr->task, &mr->counts, error);
	ro->o.routing = NULL;
	mv_routing_free(routing);
	return rc;
}

static json_t *run_summary(void *opaque, mv_ingest *ing)
{
	mailbox_run *mr = opaque;
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	mv_profile_log_items(mr->ctx, "refused", mv_ingest_refusals(ing));
	mv_profile_log_items(mr->ctx, "warning", mv_ingest_warnings(ing));
	const mv_mailbox_counts *m = &mr->counts;
	mv_command_log(mr->ctx, "archived %" G_GUINT64_FORMAT ", already archived %" G_GUINT64_FORMAT ", refused %"
	               G_GUINT64_FORMAT ", fetched %" G_GUINT64_FORMAT ", passed over by filters %" G_GUINT64_FORMAT
	               ", deleted from the server %" G_GUINT64_FORMAT ", folders %" G_GUINT64_FORMAT ", warnings %"
	               G_GUINT64_FORMAT, c.imported, c.duplicates, c.refused, m->fetched, m->filtered, m->deleted,
	               m->folders, c.warnings);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "archived",
	                 (json_int_t)c.imported, "alreadyArchived", (json_int_t)c.duplicates, "malformed",
	                 (json_int_t)c.malformed, "refused", (json_int_t)c.refused, "bytes", (json_int_t)c.bytes,
	                 "fetched", (json_int_t)m->fetched, "filtered", (json_int_t)m->filtered, "deleted",
	                 (json_int_t)m->deleted, "folders", (json_int_t)m->folders, "mailboxes",
	                 (json_int_t)mr->mailboxes, "left", (json_int_t)m->left, "ignored", (json_int_t)m->ignored,
	                 "reconnects", (json_int_t)m->reconnects, "warnings", (json_int_t)c.warnings);
}

static json_t *run_mailbox_profile(mv_command_ctx *ctx, const mv_profile *p, json_t *details, source_fn source,
                                   GError **error)
{
	char *source_name = g_strdup_printf("%s://%s/%s", is_imap(details) ? "imap" : "pop3", detail(details, "host"),
	                                    detail(details, "userName"));
	mv_ingest_run run = { .user = ctx->user, .remote = ctx->remote, .source = source_name, .profile_id = p->id,
	                      .profile_name = p->name };
	run_options ro = { 0 };
	mailbox_run mr = { .ctx = ctx, .source = source,
		               .task = { .progress = mv_profile_on_progress, .opaque = ctx, .cancel = ctx->cancel } };
	json_t *out = NULL;
	if (strcmp(detail(details, "subType"), "0") != 0 && !mv_profile_caller_is_admin(ctx)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "profile '%s': subType %s archives into other users' archives: "
		            "only administrators may run it", p->name, detail(details, "subType"));
		mv_ingest_audit_refused(ctx->inst, &run, NULL, (*error)->message);
		goto out;
	}
	if (resolve_password(ctx, details, &ro, error) < 0) {
		mv_ingest_audit_refused(ctx->inst, &run, NULL, (*error)->message);
		goto out;
	}
	fill_options(p, details, &ro);
	mv_command_log(ctx, "profile '%s': archiving %s", p->name, source_name);
	if (!(mr.ing = mv_ingest_begin(ctx->inst, &run, error)))
		goto out;
	mr.commits = mv_mailbox_commits_attach(mr.ing);
	int rc = run_mailboxes(&mr, &ro, details, error);
	mv_ingest_note_skipped(mr.ing, mr.counts.filtered + mr.counts.ignored + mr.counts.left);
	mv_profile_run_end how = { .summary = run_summary, .opaque = &mr };
	out = mv_profile_end_run(ctx, &mr.ing, rc, &how, error);
out:
	if (mr.ing) {
		GError *e = NULL;
		if (mv_ingest_end(&mr.ing, &e) < 0)
			g_clear_error(&e);
	}
	mv_mailbox_commits_free(mr.commits);
	run_options_clear(&ro);
	g_free(source_name);
	return out;
}

static json_t *run_imap(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error)
{
	return run_mailbox_profile(ctx, p, details, mv_imap_source_run, error);
}

static json_t *run_pop3(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error)
{
	return run_mailbox_profile(ctx, p, details, mv_pop3_source_run, error);
}

/* ---- Test ------------------------------------------------------------------------------------------ */

static json_t *test_mailbox(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error)
{
	run_options ro = { 0 };
	if (resolve_password(ctx, details, &ro, error) < 0)
		return NULL;
	fill_options(p, details, &ro);
	json_t *out = NULL;
	char *login = NULL;
	GPtrArray *users = NULL;
	if (strcmp(detail(details, "subType"), "1") == 0) {
		/* the administrative login, into the first user's mailbox */
		if (!(users = mailbox_users(ctx, details, error)))
			goto out;
		const mv_user *first = users->len ? users->pdata[0] : NULL;
		if (!first || !one_of_many(details, first, &ro.o, &login)) {
			g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "no user whose mailbox the administrative login could be "
			            "tested on (userNames, or users with an email address)");
			goto out;
		}
	}
	out = is_imap(details) ? mv_imap_source_test(&ro.o, error) : mv_pop3_source_test(&ro.o, error);
	if (out && ro.o.mailbox)
		json_object_set_new(out, "mailbox", json_string(ro.o.mailbox));
out:
	if (users)
		g_ptr_array_unref(users);
	g_free(login);
	run_options_clear(&ro);
	return out;
}

const mv_connector mv_connector_imap = {
	.name = "IMAP",
	.details = imap_details,
	.check = check_mailbox,
	.run = run_imap,
	.test = test_mailbox,
	.secret_detail = "password",
};

const mv_connector mv_connector_pop3 = {
	.name = "POP3",
	.details = pop3_details,
	.check = check_mailbox,
	.run = run_pop3,
	.test = test_mailbox,
	.secret_detail = "password",
};
