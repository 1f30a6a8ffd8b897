/* sources/profiles: archiving profiles' registry functions and connectors.
 *
 * A connector is a table of details (name, required or optional, allowed
 * values, default, meaning): the one place that both checks a profile's
 * input, with errors naming the property, and publishes it (GetProfileTypes)
 * — so the documentation a caller reads and the check it meets cannot
 * drift apart.  Details are strings on the wire, flags "0"/"1", as
 * MailStore's GetProfiles shows them; a saved profile keeps every detail,
 * defaults filled in, so what GetProfiles shows is what a run does.
 *
 * Who may do what: `modifyArchiveProfiles` (or admin) to create, delete or
 * change a profile, `archive` (or admin) to run one.  A user other than an
 * administrator sees and runs only their own profiles, which archive only
 * into their own archive and read only below <data>/imports/<user>/ — the
 * server reads files as its own user, so the privilege to archive must not
 * become a privilege to read anywhere.
 *
 * A run is a file import (sources/file_import.c) into one mv_ingest named
 * after the profile, so its worker result and audit entry say which
 * profile ran; it goes into the running server's stores while searches go
 * on, and a re-run costs a hash and a lookup per message already archived. */
#include "sources/profiles.h"
#include "sources/file_import.h"

#include <string.h>

#define PROFILE_TYPE_ARCHIVING "I"
#define MAX_LOGGED_REFUSALS 100
#define MAX_PAUSE_SECONDS 2147483647

/* ---- connectors ----------------------------------------------------------------------- */

typedef struct detail_spec {
	const char *name;
	bool required;
	const char *const *allowed;   /* NULL: free text */
	const char *fallback;         /* the value an absent optional detail takes; NULL: the owner's name */
	const char *meaning;
} detail_spec;

typedef struct connector {
	const char *name;
	const detail_spec *details;   /* terminated by {NULL} */
} connector;

static const char *const file_formats[] = { "auto", "eml", "mbox", "maildir", NULL };
static const char *const flags[] = { "0", "1", NULL };
static const char *const layouts[] = { "single", "multipleUsers", NULL };
static const char *const after_archiving[] = { "keep", "delete", "move", NULL };

static const detail_spec filesystem_details[] = {
	{ "path", true, NULL, "", "what to archive: an EML or .msg file or a directory of them, an mbox file, a "
	  "directory of mbox files (format mbox: each file into the folder of its path), or a Maildir; administrators give an absolute path, other users a relative path below <data>/imports/<user>/" },
	{ "format", false, file_formats, "auto", "how to read path: eml (a file or a directory tree of EML/.msg files), "
	  "mbox, maildir, or auto (detected from what path is)" },
	{ "includeSubfolders", false, flags, "1", "EML directories: \"1\" reads subdirectories too (each one a folder), "
	  "\"0\" only the files in path itself" },
	{ "extensions", false, NULL, "eml,msg", "EML directories: comma-separated file extensions read as mail, "
	  "\"*\" for every file" },
	{ "targetArchive", false, NULL, NULL, "the user archive messages go to; default and, for users other than "
	  "administrators, the only value: the profile owner's own archive" },
	{ "targetFolder", false, NULL, "", "the folder the source's tree lands under; empty: the format's default "
	  "(EML: the archive's root, mbox: the file's name, Maildir: Inbox)" },
	{ "layout", false, layouts, "single", "single: path is one source for targetArchive; multipleUsers "
	  "(administrators only): path is an EML directory whose first-level directories are user names, each read into "
	  "that user's archive (targetArchive empty); a directory of no user and files at the top level are skipped with "
	  "a warning" },
	{ "afterArchiving", false, after_archiving, "keep", "what becomes of a source file once every message in it is "
	  "durably archived (as new or already archived): keep, delete, or move below moveTo; EML/.msg and Maildir "
	  "files go one by one, an mbox file only when all its messages are archived, PST/OST files are kept; a file "
	  "that cannot be deleted or moved is a warning" },
	{ "moveTo", false, NULL, "", "afterArchiving \"move\": the directory files are moved to, keeping their path "
	  "below path and never overwriting (a numbered name instead); given like path, and not inside it" },
	{ "includeFolders", false, NULL, "", "comma-separated folders, as archived (targetFolder included), each with its "
	  "subfolders, letter case aside: only messages in one of them are archived; empty: every folder" },
	{ "excludeFolders", false, NULL, "", "comma-separated folders, as archived, each with its subfolders, letter "
	  "case aside: messages in them are not archived (counted as skipped, their files kept)" },
	{ .name = NULL },
};

static const connector connectors[] = {
	{ "FileSystem", filesystem_details },
};

static const connector *find_connector(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(connectors); i++)
		if (strcmp(connectors[i].name, name) == 0)
			return &connectors[i];
	return NULL;
}

/* ---- who is calling --------------------------------------------------------------------- */

static bool caller_is_admin(const mv_command_ctx *ctx)
{
	return !ctx->access || mv_access_unrestricted(ctx->access);
}

static const char *caller_name(const mv_command_ctx *ctx)
{
	return ctx->access ? mv_access_user(ctx->access) : ctx->user;
}

static int require_privilege(mv_command_ctx *ctx, const char *fn, unsigned bit, const char *bit_name, GError **error)
{
	if (caller_is_admin(ctx))
		return 0;
	mv_user *u = mv_user_get(ctx->inst, caller_name(ctx), error);
	if (!u)
		return -1;
	bool ok = (u->privileges & (MV_PRIV_ADMIN | bit)) != 0;
	mv_user_free(u);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: user '%s' lacks the %s privilege", fn, caller_name(ctx), bit_name);
	return -1;
}

static bool same_user(const char *a, const char *b)
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
	if (p && (caller_is_admin(ctx) || same_user(p->owner, caller_name(ctx))))
		return p;
	mv_profile_free(p);
	if (e && !g_error_matches(e, MV_ERROR, MV_ERR_NOT_FOUND)) {
		g_propagate_error(error, e);
		return NULL;
	}
	g_clear_error(&e);
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s: there is no profile %" G_GINT64_FORMAT "%s", fn, id,
	            caller_is_admin(ctx) ? "" : " of yours");
	return NULL;
}

/* ---- checking a profile's properties ----------------------------------------------------------- */

static bool allowed_value(const detail_spec *d, const char *v)
{
	if (!d->allowed)
		return true;
	for (const char *const *a = d->allowed; *a; a++)
		if (strcmp(*a, v) == 0)
			return true;
	return false;
}

static char *allowed_text(const detail_spec *d)
{
	return g_strjoinv(", ", (char **)d->allowed);
}

static const detail_spec *find_detail(const connector *c, const char *name)
{
	for (const detail_spec *d = c->details; d->name; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

/* A relative path without "..": what a user other than an administrator
 * names below their own imports directory. */
static bool confined_path(const char *path)
{
	if (g_path_is_absolute(path))
		return false;
	char **parts = g_strsplit(path, "/", -1);
	bool ok = true;
	for (char **p = parts; ok && *p; p++)
		ok = strcmp(*p, "..") != 0;
	g_strfreev(parts);
	return ok;
}

/* path's directories, ".", ".." and repeated slashes resolved without
 * looking at the disk, under a root for a relative path. */
static char *lexical_path(const char *path)
{
	return g_canonicalize_filename(path, "/imports");
}

/* Whether inner is outer or below it. */
static bool path_within(const char *inner, const char *outer)
{
	char *i = lexical_path(inner), *o = lexical_path(outer);
	size_t n = strlen(o);
	bool within = strcmp(i, o) == 0 || (strncmp(i, o, n) == 0 && (i[n] == '/' || strcmp(o, "/") == 0));
	g_free(i);
	g_free(o);
	return within;
}

/* A path detail as the caller may give it: absolute from an administrator,
 * else relative below their own imports directory. */
static int check_path_detail(mv_command_ctx *ctx, const char *fn, const char *name, const char *path, GError **error)
{
	if (caller_is_admin(ctx)) {
		if (g_path_is_absolute(path))
			return 0;
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: '%s' is not an absolute path", fn, name, path);
		return -1;
	}
	if (confined_path(path))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.%s: '%s': users other than administrators name a"
	            " relative path below their own imports directory (<data>/imports/<user>/)", fn, name, path);
	return -1;
}

/* afterArchiving and moveTo together. */
static int check_after_archiving(mv_command_ctx *ctx, const char *fn, json_t *details, GError **error)
{
	const char *after = json_string_value(json_object_get(details, "afterArchiving"));
	const char *move_to = json_string_value(json_object_get(details, "moveTo"));
	const char *path = json_string_value(json_object_get(details, "path"));
	if (strcmp(after, "move") != 0) {
		if (!*move_to)
			return 0;
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo: given with afterArchiving '%s': a directory"
		            " to move to goes only with afterArchiving \"move\"", fn, after);
		return -1;
	}
	if (!*move_to) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo is required with afterArchiving \"move\" (the "
		            "directory archived files are moved to)", fn);
		return -1;
	}
	if (check_path_detail(ctx, fn, "moveTo", move_to, error) < 0)
		return -1;
	if (path_within(move_to, path)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.moveTo: '%s' is inside path '%s': the next run would"
		            " read the moved files again", fn, move_to, path);
		return -1;
	}
	return 0;
}

/* layout "multipleUsers": administrators only, EML directories, the
 * archive taken from each directory's name (targetArchive left empty). */
static int check_multiple_users(mv_command_ctx *ctx, const char *fn, json_t *given, json_t *details, GError **error)
{
	const char *format = json_string_value(json_object_get(details, "format"));
	const char *archive = json_string_value(json_object_get(given, "targetArchive"));
	if (!caller_is_admin(ctx)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.layout: 'multipleUsers' archives into other users' "
		            "archives: only administrators may use it", fn);
		return -1;
	}
	if (strcmp(format, "auto") != 0 && strcmp(format, "eml") != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.format: '%s' with layout 'multipleUsers', which "
		            "reads EML directories (format auto or eml)", fn, format);
		return -1;
	}
	if (archive && *archive) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.targetArchive: '%s' with layout 'multipleUsers', "
		            "where each user directory goes to that user's archive: leave it out or empty", fn, archive);
		return -1;
	}
	json_object_set_new(details, "targetArchive", json_string(""));
	return 0;
}

/* Connector-specific rules beyond the table: where path may point, which
 * archive a user may fill, what may become of the files. */
static int check_filesystem(mv_command_ctx *ctx, const char *fn, const char *owner, json_t *given, json_t *details,
                            GError **error)
{
	const char *path = json_string_value(json_object_get(details, "path"));
	const char *exts = json_string_value(json_object_get(details, "extensions"));
	char **list = mv_file_import_parse_extensions(exts);
	bool no_ext = !list || !list[0];
	g_strfreev(list);
	if (no_ext) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.extensions: '%s' names no extension (give one or "
		            "more, e.g. \"eml,txt\", or \"*\")", fn, exts);
		return -1;
	}
	if (check_path_detail(ctx, fn, "path", path, error) < 0 || check_after_archiving(ctx, fn, details, error) < 0)
		return -1;
	if (strcmp(json_string_value(json_object_get(details, "layout")), "multipleUsers") == 0)
		return check_multiple_users(ctx, fn, given, details, error);
	const char *archive = json_string_value(json_object_get(details, "targetArchive"));
	if (mv_archive_name_check(archive, error) < 0) {
		g_prefix_error(error, "%s: details.targetArchive: ", fn);
		return -1;
	}
	if (!caller_is_admin(ctx) && !same_user(archive, owner)) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s: details.targetArchive: '%s' is not your own archive ('%s'):"
		            " only administrators archive into another user's archive", fn, archive, owner);
		return -1;
	}
	return 0;
}

/* The details given, checked against the connector's table, every
 * detail present in the result (defaults filled in). */
static json_t *check_details(mv_command_ctx *ctx, const char *fn, const connector *c, const char *owner,
                             json_t *given, GError **error)
{
	if (!json_is_object(given)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.details must be an object of strings", fn);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(given, key, v) {
		if (!find_detail(c, key)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: the %s connector has no such detail (see "
			            "GetProfileTypes)", fn, key, c->name);
			return NULL;
		}
		if (!json_is_string(v)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s must be a string", fn, key);
			return NULL;
		}
	}
	json_t *out = json_object();
	for (const detail_spec *d = c->details; d->name; d++) {
		const char *value = json_string_value(json_object_get(given, d->name));
		if (!value && d->required) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s is required", fn, d->name);
			goto fail;
		}
		if (!value)
			value = d->fallback ? d->fallback : owner;
		if (d->required && !*value) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s must not be empty", fn, d->name);
			goto fail;
		}
		if (!allowed_value(d, value)) {
			char *allowed = allowed_text(d);
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: '%s' is not one of %s", fn, d->name, value,
			            allowed);
			g_free(allowed);
			goto fail;
		}
		json_object_set_new(out, d->name, json_string(value));
	}
	if (check_filesystem(ctx, fn, owner, given, out, error) < 0)
		goto fail;
	return out;
fail:
	json_decref(out);
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
	if (strcmp(type, PROFILE_TYPE_ARCHIVING) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.type: '%s' is not a profile type of this build "
		            "(\"I\": archiving)", fn, type);
		return NULL;
	}
	const connector *c = find_connector(connector_name);
	if (!c) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.connector: '%s' is not a connector of this build "
		            "(FileSystem; see GetProfileTypes)", fn, connector_name);
		return NULL;
	}
	if (check_server_side_json(fn, json_object_get(props, "serverSideExecution"), sse, error) < 0)
		return NULL;
	json_t *details = check_details(ctx, fn, c, caller_name(ctx), json_object_get(props, "details"), error);
	if (!details)
		return NULL;
	mv_profile *p = g_new0(mv_profile, 1);
	p->name = g_strdup(name);
	p->owner = g_strdup(caller_name(ctx));
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
	GPtrArray *list = mv_profiles_list(ctx->inst, caller_is_admin(ctx) ? NULL : caller_name(ctx), error);
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
	json_t *out = json_array();
	for (size_t i = 0; i < G_N_ELEMENTS(connectors); i++) {
		json_t *details = json_array();
		for (const detail_spec *d = connectors[i].details; d->name; d++) {
			json_t *allowed = json_null();
			if (d->allowed) {
				allowed = json_array();
				for (const char *const *a = d->allowed; *a; a++)
					json_array_append_new(allowed, json_string(*a));
			}
			json_array_append_new(details, json_pack("{s:s, s:s, s:b, s:o, s:o, s:s}", "name", d->name, "type",
			                                         "string", "required", d->required, "allowed", allowed,
			                                         "default", d->required ? json_null()
			                                                    : d->fallback ? json_string(d->fallback)
			                                                                  : json_string("(the owner's user name)"),
			                                         "description", d->meaning));
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "type", PROFILE_TYPE_ARCHIVING, "connector",
		                                     connectors[i].name, "details", details));
	}
	return out;
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
	if (mv_profile_create(ctx->inst, p, 0, &p->id, error) < 0)
		goto out;
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

static void on_progress(void *opaque, int percent, const char *text)
{
	mv_command_progress(opaque, percent, "%s", text);
}

/* details.path as the server reads it: an administrator's as given, another
 * user's below their own imports directory. */
static char *source_path(mv_command_ctx *ctx, const mv_profile *p, const char *path)
{
	if (g_path_is_absolute(path))
		return g_strdup(path);
	return g_build_filename(mv_instance_data_dir(ctx->inst), "imports", p->owner, path, NULL);
}

/* The archive of the user a multiple-users directory is named after. */
static char *user_archive(void *opaque, const char *name, GError **error)
{
	mv_user *u = mv_user_get(opaque, name, error);
	if (!u)
		return NULL;
	char *archive = g_strdup(u->name);
	mv_user_free(u);
	return archive;
}

static const char *detail(json_t *details, const char *name)
{
	const char *v = json_string_value(json_object_get(details, name));
	return v ? v : "";
}

/* The file-import options of a profile's details; move_to_r is the path
 * moveTo names, read as path is (g_free() it). */
static void file_options(mv_command_ctx *ctx, const mv_profile *p, json_t *details, const char *path,
                         mv_file_import_options *o, char **move_to_r)
{
	const char *format = detail(details, "format");
	mv_format f = MV_FORMAT_AUTO;
	if (strcmp(format, "eml") == 0)
		f = g_file_test(path, G_FILE_TEST_IS_DIR) ? MV_FORMAT_EMLDIR : MV_FORMAT_EML;
	else if (strcmp(format, "mbox") == 0)
		f = MV_FORMAT_MBOX;
	else if (strcmp(format, "maildir") == 0)
		f = MV_FORMAT_MAILDIR;
	const char *folder = detail(details, "targetFolder");
	mv_after_archiving after = MV_AFTER_KEEP;
	/* A profile saved before afterArchiving existed keeps its files. */
	mv_after_archiving_from_name(detail(details, "afterArchiving"), &after);
	const char *move_to = detail(details, "moveTo");
	*move_to_r = NULL;
	if (after == MV_AFTER_MOVE && *move_to)
		*move_to_r = source_path(ctx, p, move_to);
	else if (after == MV_AFTER_MOVE)
		after = MV_AFTER_KEEP;   /* nowhere to move to: the check refuses it, a hand-edited row keeps */
	*o = (mv_file_import_options){
		.reader = { .format = f, .recursive = strcmp(detail(details, "includeSubfolders"), "1") == 0,
		            .extensions = mv_file_import_parse_extensions(detail(details, "extensions")) },
		.archive = detail(details, "targetArchive"),
		.folder = *folder ? folder : NULL,
		.after = after,
		.move_to = *move_to_r,
		.multiple_users = strcmp(detail(details, "layout"), "multipleUsers") == 0,
		.user_archive = user_archive,
		.user_opaque = ctx->inst,
		.include_folders = mv_file_import_parse_folders(detail(details, "includeFolders")),
		.exclude_folders = mv_file_import_parse_folders(detail(details, "excludeFolders")),
	};
}

static uint64_t count_skipped(mv_file_import *fi)
{
	uint64_t skipped = 0;
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, mv_file_import_skipped(fi));
	while (g_hash_table_iter_next(&it, &k, &v))
		skipped += GPOINTER_TO_UINT(v);
	return skipped;
}

static void log_items(mv_command_ctx *ctx, const char *what, const GPtrArray *list)
{
	for (guint i = 0; i < list->len && i < MAX_LOGGED_REFUSALS; i++) {
		const mv_refusal *r = list->pdata[i];
		mv_command_log(ctx, "%s: %s: %s", what, r->origin, r->reason);
	}
}

static json_t *run_summary(mv_command_ctx *ctx, mv_ingest *ing, mv_file_import *fi)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	uint64_t skipped = count_skipped(fi), deleted = 0, moved = 0;
	mv_file_import_let_go(fi, &deleted, &moved);
	log_items(ctx, "refused", mv_ingest_refusals(ing));
	log_items(ctx, "warning", mv_ingest_warnings(ing));
	mv_command_log(ctx, "archived %" G_GUINT64_FORMAT ", already archived %" G_GUINT64_FORMAT ", archived but "
	               "malformed %" G_GUINT64_FORMAT ", refused %" G_GUINT64_FORMAT ", not mail %" G_GUINT64_FORMAT
	               ", source files deleted %" G_GUINT64_FORMAT ", moved %" G_GUINT64_FORMAT ", warnings %"
	               G_GUINT64_FORMAT, c.imported, c.duplicates, c.malformed, c.refused, skipped, deleted, moved,
	               c.warnings);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "archived", (json_int_t)c.imported,
	                 "alreadyArchived", (json_int_t)c.duplicates, "malformed", (json_int_t)c.malformed, "refused",
	                 (json_int_t)c.refused, "skipped", (json_int_t)skipped, "bytes", (json_int_t)c.bytes, "deleted",
	                 (json_int_t)deleted, "moved", (json_int_t)moved, "warnings", (json_int_t)c.warnings);
}

/* Runs p (saved, or temporary with id 0) once. */
static json_t *run_profile_once(mv_command_ctx *ctx, const mv_profile *p, GError **error)
{
	json_t *details = json_loads(p->details, 0, NULL);
	if (!json_is_object(details)) {
		json_decref(details);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "profile %" G_GINT64_FORMAT ": its details are not a JSON object",
		            p->id);
		return NULL;
	}
	char *path = source_path(ctx, p, detail(details, "path"));
	char *move_to = NULL;
	mv_file_import_options fo;
	file_options(ctx, p, details, path, &fo, &move_to);
	mv_ingest_run run = { .user = ctx->user, .remote = ctx->remote, .source = path, .profile_id = p->id,
	                      .profile_name = p->name };
	mv_file_import *fi = NULL;
	mv_ingest *ing = NULL;
	json_t *out = NULL;
	GError *end_err = NULL;
	if (fo.multiple_users && !caller_is_admin(ctx)) {
		/* checked when it was saved; the owner may have lost the right since */
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "profile '%s': layout 'multipleUsers' archives into other users' "
		            "archives: only administrators may run it", p->name);
		mv_ingest_audit_refused(ctx->inst, &run, NULL, (*error)->message);
		goto out;
	}
	if (fo.multiple_users)
		mv_command_log(ctx, "profile '%s': archiving %s, each user directory into that user's archive", p->name, path);
	else
		mv_command_log(ctx, "profile '%s': archiving %s into '%s'", p->name, path, fo.archive);
	if (!(fi = mv_file_import_open(path, &fo, error))) {
		mv_ingest_audit_refused(ctx->inst, &run, fo.archive, (*error)->message);
		goto out;
	}
	if (!(ing = mv_ingest_begin(ctx->inst, &run, error)))
		goto out;
	mv_task task = { .progress = on_progress, .opaque = ctx, .cancel = ctx->cancel };
	int rc = mv_file_import_run(fi, ing, &task, error);
	if (rc < 0)
		mv_ingest_note_outcome(ing, g_error_matches(*error, MV_ERROR, MV_ERR_CANCELLED) ? "cancelled"
		                                                                                   : (*error)->message);
	/* The counts of a run that stopped are still what it archived, and
	 * logged; the first failure is the one reported. */
	GError *flush_err = NULL;
	int flushed = mv_ingest_flush(ing, &flush_err);
	if (flushed < 0 && rc == 0)
		mv_ingest_note_outcome(ing, flush_err->message);
	/* Whatever was committed before a failure is durable: its files go too. */
	mv_file_import_settle(fi, ing);
	out = run_summary(ctx, ing, fi);
	int ended = mv_ingest_end(&ing, &end_err);
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
out:
	if (ing && mv_ingest_end(&ing, &end_err) < 0)
		g_clear_error(&end_err);
	mv_file_import_close(&fi);
	g_strfreev(fo.reader.extensions);
	g_strfreev(fo.include_folders);
	g_strfreev(fo.exclude_folders);
	g_free(move_to);
	g_free(path);
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
static const mv_command_arg args_none[] = {
	{ .name = NULL },
};

const mv_command mv_commands_profiles[] = {
	{ "GetProfiles", args_raw, "login", false, get_profiles,
	  "archiving profiles: administrators see all, other users their own" },
	{ "GetProfileTypes", args_none, "login", false, get_profile_types,
	  "the profile types and connectors of this build, each connector's details with what they take" },
	{ "CreateProfile", args_properties, "login", false, create_profile,
	  "save an archiving profile (properties: name, type \"I\", connector, details); needs modifyArchiveProfiles" },
	{ "DeleteProfile", args_id, "login", false, delete_profile,
	  "delete an archiving profile; needs modifyArchiveProfiles" },
	{ "SetProfileServerSideExecution", args_server_side, "login", false, set_server_side_execution,
	  "store a profile's automatic execution settings (not acted on by this build yet); needs modifyArchiveProfiles" },
	{ "RunProfile", args_id, "login", true, run_profile,
	  "run a saved archiving profile once; needs archive" },
	{ "RunTemporaryProfile", args_properties, "login", true, run_temporary_profile,
	  "run archiving profile properties once without saving them; needs archive" },
	{ .name = NULL },
};
