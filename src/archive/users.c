/* archive/users: the users of an instance — their rows, creating,
 * changing, renaming and deleting them, privilege sets, and the logon with
 * a password.  Passwords (hashing, policy) are passwords.c's, user names
 * and their lookup user_names.c's, folder privileges grants.c's, app
 * passwords and MFA app_passwords.c's and mfa.c's (they follow a user's
 * rename and deletion here), the compliance configuration compliance.c's,
 * a caller's access access.c's.
 *
 * Users live in master.sqlite beside the stores: a row per user (name unique
 * ignoring case and canonical normalisation in the Unicode sense, and every
 * lookup by name resolves it the same way: see mv_user_name_key and
 * mv_archive_resolve_name; privileges and login privileges as bit sets,
 * e-mail addresses and POP3 names as JSON arrays, an Argon2id password
 * hash).  The text forms of privilege sets are exactly the identifiers of
 * design.md §9.
 *
 * auth_generation takes a fresh value from an instance-wide counter
 * whenever the password or authentication changes, or the user is renamed,
 * so sessions holding the old value can be ended; a user deleted and created
 * again never gets a value it had before.  A failed logon has one message
 * whatever the reason.
 *
 * Every change that reads before it writes runs inside BEGIN IMMEDIATE, so
 * two processes cannot both remove "the last administrator". */
#include "archive/internal.h"

#include <string.h>

#define MAX_TEXT_BYTES 4096          /* full name, distinguished name */
#define MAX_LIST_ITEMS 1000          /* e-mail addresses, POP3 user names */
#define MAX_EMAIL_BYTES 320
#define MAX_POP3_NAME_BYTES 256
#define ADMIN_NAME "admin"
#define ALL_USER_PRIVILEGES ((1u << 8) - 1)

#define SETTING_AUTH_GENERATION "users_auth_generation"

#define AUTH_FAILED "unknown user or wrong password"

/* ---- SQL helpers of archive/ (base/sql.h has the generic ones) ---------------- */

/* mv_archive_in_transaction is kept over mv_sql_in_transaction because
 * every function run inside it works on the instance: it hands fn the
 * instance beside its own argument, so that a dozen callers need no struct
 * carrying both. */
typedef struct archive_txn {
	mv_instance *inst;
	mv_archive_txn_fn fn;
	void *opaque;
} archive_txn;

static int run_archive_txn(void *opaque, GError **error)
{
	const archive_txn *t = opaque;
	return t->fn(t->inst, t->opaque, error);
}

int mv_archive_in_transaction(mv_instance *inst, mv_archive_txn_fn fn, void *opaque, GError **error)
{
	archive_txn t = { inst, fn, opaque };
	return mv_sql_in_transaction(mv_archive_db(inst), run_archive_txn, &t, error);
}

int mv_archive_count(mv_instance *inst, const char *sql, const char *text_arg, int64_t *n_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), sql, &st, error) < 0)
		return -1;
	if (text_arg)
		sqlite3_bind_text(st, 1, text_arg, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*n_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "count");
	return -1;
}

/* A fresh auth_generation value; call inside a transaction. */
static int next_generation(mv_instance *inst, int64_t *gen_r, GError **error)
{
	char *value = NULL;
	if (mv_archive_setting_get(inst, SETTING_AUTH_GENERATION, &value, error) < 0)
		return -1;
	int64_t gen = value ? g_ascii_strtoll(value, NULL, 10) : 0;
	g_free(value);
	gen = gen < 0 ? 1 : gen + 1;
	char *text = g_strdup_printf("%" G_GINT64_FORMAT, gen);
	int rc = mv_archive_setting_put(inst, SETTING_AUTH_GENERATION, text, error);
	g_free(text);
	*gen_r = gen;
	return rc;
}

int mv_archive_new_auth_generation(mv_instance *inst, const char *stored_name, GError **error)
{
	int64_t gen;
	sqlite3_stmt *st;
	if (next_generation(inst, &gen, error) < 0 ||
	    mv_sql_prepare(mv_archive_db(inst), "UPDATE users SET auth_generation=? WHERE name=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, gen);
	sqlite3_bind_text(st, 2, stored_name, -1, SQLITE_STATIC);
	return mv_sql_step_done(mv_archive_db(inst), st, "new auth generation", error);
}

/* ---- privilege sets ---------------------------------------------------------------- */

typedef struct priv_name {
	const char *name;
	unsigned bit;
} priv_name;

static const priv_name user_priv_names[] = {
	{ "admin", MV_PRIV_ADMIN },
	{ "login", MV_PRIV_LOGIN },
	{ "changePassword", MV_PRIV_CHANGE_PASSWORD },
	{ "archive", MV_PRIV_ARCHIVE },
	{ "modifyArchiveProfiles", MV_PRIV_MODIFY_ARCHIVE_PROFILES },
	{ "export", MV_PRIV_EXPORT },
	{ "modifyExportProfiles", MV_PRIV_MODIFY_EXPORT_PROFILES },
	{ "delete", MV_PRIV_DELETE },
	{ NULL, 0 },
};

static const priv_name login_priv_names[] = {
	{ "windows", MV_LOGIN_WINDOWS },
	{ "web", MV_LOGIN_WEB },
	{ "outlook", MV_LOGIN_OUTLOOK },
	{ "windowsCmd", MV_LOGIN_WINDOWS_CMD },
	{ "imap", MV_LOGIN_IMAP },
	{ "api", MV_LOGIN_API },
	{ "smtp", MV_LOGIN_SMTP },
	{ NULL, 0 },
};

static const priv_name folder_priv_names[] = {
	{ "read", MV_FOLDER_READ },
	{ "write", MV_FOLDER_WRITE },
	{ "delete", MV_FOLDER_DELETE },
	{ NULL, 0 },
};

static const priv_name *priv_table(mv_privset_kind kind)
{
	switch (kind) {
	case MV_PRIVSET_USER: return user_priv_names;
	case MV_PRIVSET_LOGIN: return login_priv_names;
	case MV_PRIVSET_FOLDER: return folder_priv_names;
	}
	return user_priv_names;
}

static unsigned priv_mask(mv_privset_kind kind)
{
	unsigned mask = 0;
	for (const priv_name *p = priv_table(kind); p->name; p++)
		mask |= p->bit;
	return mask;
}

static char *allowed_names(mv_privset_kind kind)
{
	GString *s = g_string_new("none");
	for (const priv_name *p = priv_table(kind); p->name; p++)
		g_string_append_printf(s, ", %s", p->name);
	return g_string_free(s, FALSE);
}

static unsigned priv_lookup(mv_privset_kind kind, const char *item)
{
	for (const priv_name *p = priv_table(kind); p->name; p++)
		if (g_ascii_strcasecmp(p->name, item) == 0)
			return p->bit;
	return 0;
}

/* One item of the list: its bit, 0 for "none", or -1 with the error set. */
static int parse_item(mv_privset_kind kind, const char *arg_name, const char *item, unsigned *bit_r,
                      GError **error)
{
	*bit_r = 0;
	if (!*item) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: empty item in the list (a comma separated list of "
		            "privileges, or none)", arg_name);
		return -1;
	}
	if (g_ascii_strcasecmp(item, "none") == 0)
		return 0;
	*bit_r = priv_lookup(kind, item);
	if (*bit_r)
		return 0;
	char *names = allowed_names(kind);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: unknown privilege '%.100s' (allowed: %s)", arg_name, item,
	            names);
	g_free(names);
	return -1;
}

int mv_privileges_parse(mv_privset_kind kind, const char *arg_name, const char *text, unsigned *bits_r,
                        GError **error)
{
	gchar **items = g_strsplit(text ? text : "", ",", -1);
	guint n = g_strv_length(items);
	unsigned bits = 0;
	bool none = false;
	int rc = -1;
	if (n == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: empty (a comma separated list of privileges, or none)",
		            arg_name);
		goto out;
	}
	for (guint i = 0; i < n; i++) {
		unsigned bit;
		if (parse_item(kind, arg_name, g_strstrip(items[i]), &bit, error) < 0)
			goto out;
		none = none || bit == 0;
		bits |= bit;
	}
	if (none && n > 1) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: 'none' must stand alone in the list", arg_name);
		goto out;
	}
	*bits_r = bits;
	rc = 0;
out:
	g_strfreev(items);
	return rc;
}

char *mv_privileges_format(mv_privset_kind kind, unsigned bits)
{
	GString *s = g_string_new(NULL);
	for (const priv_name *p = priv_table(kind); p->name; p++)
		if (bits & p->bit)
			g_string_append_printf(s, "%s%s", s->len ? "," : "", p->name);
	if (!s->len)
		g_string_append(s, "none");
	return g_string_free(s, FALSE);
}

/* ---- checks of what comes from outside ------------------------------------------------------ */

bool mv_archive_has_control(const char *s)
{
	for (const char *p = s; *p; p = g_utf8_next_char(p))
		if (g_unichar_iscntrl(g_utf8_get_char(p)))
			return true;
	return false;
}

/* Optional free text (full name, distinguished name). */
static int check_text(const char *arg_name, const char *text, GError **error)
{
	if (!text)
		return 0;
	if (strlen(text) > MAX_TEXT_BYTES || !g_utf8_validate(text, -1, NULL) || mv_archive_has_control(text)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: must be at most %d bytes of UTF-8 without control "
		            "characters", arg_name, MAX_TEXT_BYTES);
		return -1;
	}
	return 0;
}

static int check_authentication(const char *authentication, GError **error)
{
	if (strcmp(authentication, "integrated") == 0 || strcmp(authentication, "directoryServices") == 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "authentication: must be integrated or directoryServices "
	            "(got '%.64s')", authentication);
	return -1;
}

int mv_archive_check_bits(mv_privset_kind kind, const char *arg_name, unsigned bits, GError **error)
{
	if ((bits & ~priv_mask(kind)) == 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: unknown privilege bits 0x%x", arg_name, bits);
	return -1;
}

/* ---- reading users ----------------------------------------------------------------------- */

#define USER_COLUMNS "name, full_name, distinguished_name, authentication, privileges, login_privileges," \
                     " email_addresses, pop3_user_names, password_hash IS NOT NULL, auth_generation"

/* A stored JSON array of strings; anything else reads as empty. */
static GPtrArray *string_list(const char *json_text)
{
	GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
	json_t *arr = json_text ? json_loads(json_text, 0, NULL) : NULL;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
		if (json_is_string(v))
			g_ptr_array_add(list, g_strdup(json_string_value(v)));
	json_decref(arr);
	return list;
}

static mv_user *user_from(sqlite3_stmt *st)
{
	mv_user *u = g_new0(mv_user, 1);
	u->name = mv_sql_column_text(st, 0);
	u->full_name = mv_sql_column_text(st, 1);
	u->distinguished_name = mv_sql_column_text(st, 2);
	u->authentication = mv_sql_column_text(st, 3);
	if (!u->authentication)
		u->authentication = g_strdup("integrated");
	u->privileges = (unsigned)sqlite3_column_int64(st, 4) & ALL_USER_PRIVILEGES;
	u->login_privileges = (unsigned)sqlite3_column_int64(st, 5) & MV_LOGIN_KNOWN;
	u->email_addresses = string_list((const char *)sqlite3_column_text(st, 6));
	u->pop3_user_names = string_list((const char *)sqlite3_column_text(st, 7));
	u->has_password = sqlite3_column_int(st, 8) != 0;
	u->auth_generation = sqlite3_column_int64(st, 9);
	return u;
}

void mv_user_free(mv_user *u)
{
	if (!u)
		return;
	g_free(u->name);
	g_free(u->full_name);
	g_free(u->distinguished_name);
	g_free(u->authentication);
	g_ptr_array_free(u->email_addresses, TRUE);
	g_ptr_array_free(u->pop3_user_names, TRUE);
	g_free(u);
}

static void user_not_found(const char *name, GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "user '%.256s' does not exist", name);
}

/* The stored name of an existing user; NULL with the error set (the user
 * named as asked for) when there is none or the lookup failed. */
static char *stored_name_of(mv_instance *inst, const char *name, GError **error)
{
	char *stored = NULL;
	if (mv_archive_resolve_name(inst, name, &stored, error) == 0 && !stored)
		user_not_found(name, error);
	return stored;
}

/* The row of a stored name; errors name the user as it was asked for. */
static mv_user *user_by_stored_name(mv_instance *inst, const char *stored, const char *asked, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " USER_COLUMNS " FROM users WHERE name=?", &st, error) < 0)
		return NULL;
	sqlite3_bind_text(st, 1, stored, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	mv_user *u = rc == SQLITE_ROW ? user_from(st) : NULL;
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		user_not_found(asked, error);
	else if (rc != SQLITE_ROW)
		mv_sql_set_error(error, mv_archive_db(inst), "read user");
	return u;
}

mv_user *mv_user_get(mv_instance *inst, const char *name, GError **error)
{
	char *stored = stored_name_of(inst, name, error);
	if (!stored)
		return NULL;
	mv_user *u = user_by_stored_name(inst, stored, name, error);
	g_free(stored);
	return u;
}

GPtrArray *mv_users_list(mv_instance *inst, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " USER_COLUMNS " FROM users ORDER BY name", &st, error) < 0)
		return NULL;
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_user_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(list, user_from(st));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return list;
	mv_sql_set_error(error, mv_archive_db(inst), "list users");
	g_ptr_array_free(list, TRUE);
	return NULL;
}

/* ---- creating ---------------------------------------------------------------------------- */

typedef struct new_user {
	const char *name;
	unsigned privileges, login_privileges;
	const char *full_name, *distinguished_name, *authentication;
	const char *password_hash;      /* may be NULL */
	bool created;                   /* out */
} new_user;

/* Names are unique by mv_user_name_key (Unicode case folding and canonical
 * normalisation); SQLite's NOCASE folds ASCII only, so the check is made
 * here, inside the transaction, over every user: creating and renaming are
 * rare, and a full scan cannot miss what mv_archive_resolve_name's probes might.
 * except: the stored name of the user being renamed (a change of case is
 * allowed). */
static int name_taken(mv_instance *inst, const char *name, const char *except, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT name FROM users", &st, error) < 0)
		return -1;
	char *want = mv_user_name_key(name);
	int taken = 0, rc = SQLITE_DONE;
	while (want && !taken && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(st, 0);
		char *key = have ? mv_user_name_key(have) : NULL;
		taken = key && strcmp(key, want) == 0 && !(except && strcmp(have, except) == 0);
		g_free(key);
	}
	sqlite3_finalize(st);
	g_free(want);
	if (taken)
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "user '%.256s' already exists", name);
	else if (rc != SQLITE_DONE)
		mv_sql_set_error(error, mv_archive_db(inst), "check user name");
	return taken || rc != SQLITE_DONE ? -1 : 0;
}

static int insert_user(mv_instance *inst, new_user *nu, GError **error)
{
	int64_t gen;
	sqlite3_stmt *st;
	if (name_taken(inst, nu->name, NULL, error) < 0 || next_generation(inst, &gen, error) < 0 ||
	    mv_sql_prepare(mv_archive_db(inst), "INSERT INTO users(name, full_name, distinguished_name, authentication,"
	                   " privileges, login_privileges, email_addresses, pop3_user_names, password_hash,"
	                   " auth_generation, created_at) VALUES(?,?,?,?,?,?,'[]','[]',?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, nu->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, nu->full_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, nu->distinguished_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, nu->authentication, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, nu->privileges);
	sqlite3_bind_int64(st, 6, nu->login_privileges);
	sqlite3_bind_text(st, 7, nu->password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, gen);
	sqlite3_bind_int64(st, 9, mv_now());
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		nu->created = true;
		return 0;
	}
	if (rc == SQLITE_CONSTRAINT)
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "user '%.256s' already exists", nu->name);
	else
		mv_sql_set_error(error, mv_archive_db(inst), "create user");
	return -1;
}

static int insert_user_txn(mv_instance *inst, void *opaque, GError **error)
{
	return insert_user(inst, opaque, error);
}

int mv_user_create(mv_instance *inst, const char *name, unsigned privileges, unsigned login_privileges,
                   const char *full_name, const char *distinguished_name, const char *authentication,
                   const char *password, GError **error)
{
	if (!authentication)
		authentication = "integrated";
	if (mv_user_name_check(name, error) < 0 || check_authentication(authentication, error) < 0 ||
	    check_text("fullName", full_name, error) < 0 ||
	    check_text("distinguishedName", distinguished_name, error) < 0 ||
	    mv_archive_check_bits(MV_PRIVSET_USER, "privileges", privileges, error) < 0 ||
	    mv_archive_check_bits(MV_PRIVSET_LOGIN, "loginPrivileges", login_privileges, error) < 0)
		return -1;
	char *hash = NULL;
	if (password && mv_archive_new_password_hash(inst, name, password, &hash, error) < 0)
		return -1;
	new_user nu = { name, privileges, login_privileges, full_name, distinguished_name, authentication, hash, false };
	int rc = mv_archive_in_transaction(inst, insert_user_txn, &nu, error);
	mv_archive_free_secret(hash);
	return rc;
}

/* The first administrator, only while there is no user at all. */
static int insert_first_admin(mv_instance *inst, void *opaque, GError **error)
{
	int64_t n;
	if (mv_archive_count(inst, "SELECT count(*) FROM users", NULL, &n, error) < 0)
		return -1;
	return n > 0 ? 0 : insert_user(inst, opaque, error);
}

int mv_users_ensure_admin(mv_instance *inst, char **password_r, GError **error)
{
	*password_r = NULL;
	int64_t n;
	if (mv_archive_count(inst, "SELECT count(*) FROM users", NULL, &n, error) < 0)
		return -1;
	if (n > 0)
		return 0;
	char *password = mv_archive_random_password(), *hash = NULL;
	int rc = -1;
	if (mv_archive_password_hash(password, &hash, error) < 0)
		goto out;
	new_user nu = { ADMIN_NAME, ALL_USER_PRIVILEGES, MV_LOGIN_ALL, NULL, NULL, "integrated", hash, false };
	if (mv_archive_in_transaction(inst, insert_first_admin, &nu, error) < 0)
		goto out;
	if (nu.created) {
		*password_r = password;
		password = NULL;
	}   /* else another process made the first user meanwhile */
	rc = 0;
out:
	mv_archive_free_secret(hash);
	mv_archive_free_secret(password);
	return rc;
}

/* ---- changing ---------------------------------------------------------------------------- */

/* An instance must keep an administrator: refuses when no user other than
 * name has the admin privilege.  Call inside a transaction. */
static int require_other_admin(mv_instance *inst, const char *name, const char *action, GError **error)
{
	G_STATIC_ASSERT(MV_PRIV_ADMIN == 1);
	int64_t n;
	if (mv_archive_count(inst, "SELECT count(*) FROM users WHERE (privileges & 1) != 0 AND name != ?", name, &n,
	                error) < 0)
		return -1;
	if (n > 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_STATE, "cannot %s '%.256s': it is the last user with the admin privilege, "
	            "and an instance must keep an administrator (give another user the admin privilege first)",
	            action, name);
	return -1;
}

int mv_archive_exec_for_user(mv_instance *inst, const char *sql, const char *name, const char *what, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), sql, &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return mv_sql_step_done(mv_archive_db(inst), st, what, error);
}

static int delete_user_txn(mv_instance *inst, void *opaque, GError **error)
{
	mv_user *u = mv_user_get(inst, opaque, error);
	if (!u)
		return -1;
	int rc = -1;
	if ((u->privileges & MV_PRIV_ADMIN) && require_other_admin(inst, u->name, "delete user", error) < 0)
		goto out;
	if (mv_archive_exec_for_user(inst, "DELETE FROM folder_privileges WHERE user=?", u->name,
	                             "delete folder privileges", error) < 0 ||
	    mv_archive_exec_for_user(inst, "DELETE FROM app_passwords WHERE user=?", u->name, "delete app passwords",
	                             error) < 0 ||
	    mv_archive_exec_for_user(inst, "DELETE FROM user_mfa WHERE user=?", u->name, "delete MFA", error) < 0 ||
	    mv_archive_exec_for_user(inst, "DELETE FROM users WHERE name=?", u->name, "delete user", error) < 0)
		goto out;
	rc = 0;
out:
	mv_user_free(u);
	return rc;
}

int mv_user_delete(mv_instance *inst, const char *name, GError **error)
{
	return mv_archive_in_transaction(inst, delete_user_txn, (void *)name, error);
}

/* One column of one user.  column is a constant of this file, never text
 * from outside; values are bound. */
typedef struct user_update {
	const char *name;
	const char *column;
	const char *text;          /* bound as text (NULL -> NULL) unless is_number */
	int64_t number;
	bool is_number;
	bool new_generation;       /* the change ends the user's sessions */
} user_update;

/* The update on the user's stored name (resolved inside the transaction). */
static int update_stored(mv_instance *inst, const user_update *u, const char *stored, GError **error)
{
	int64_t gen = 0;
	if (u->new_generation && next_generation(inst, &gen, error) < 0)
		return -1;
	char *sql = g_strdup_printf("UPDATE users SET %s=?%s WHERE name=?", u->column,
	                            u->new_generation ? ", auth_generation=?" : "");
	sqlite3_stmt *st;
	int rc = mv_sql_prepare(mv_archive_db(inst), sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return -1;
	int col = 1;
	if (u->is_number)
		sqlite3_bind_int64(st, col++, u->number);
	else
		sqlite3_bind_text(st, col++, u->text, -1, SQLITE_STATIC);
	if (u->new_generation)
		sqlite3_bind_int64(st, col++, gen);
	sqlite3_bind_text(st, col, stored, -1, SQLITE_STATIC);
	if (mv_sql_step_done(mv_archive_db(inst), st, "update user", error) < 0)
		return -1;
	if (sqlite3_changes(mv_archive_db(inst)) > 0)
		return 0;
	user_not_found(u->name, error);
	return -1;
}

static int apply_update(mv_instance *inst, void *opaque, GError **error)
{
	const user_update *u = opaque;
	char *stored = stored_name_of(inst, u->name, error);
	if (!stored)
		return -1;
	int rc = update_stored(inst, u, stored, error);
	g_free(stored);
	return rc;
}

static int update_user(mv_instance *inst, const user_update *u, GError **error)
{
	return mv_archive_in_transaction(inst, apply_update, (void *)u, error);
}

typedef struct rename_args {
	const char *old_name, *new_name;
} rename_args;

/* Renames the row of the stored name old and the rows that follow it. */
static int rename_stored(mv_instance *inst, const char *old, const char *new_name, GError **error)
{
	int64_t gen;
	sqlite3_stmt *st;
	if (name_taken(inst, new_name, old, error) < 0 || next_generation(inst, &gen, error) < 0 ||
	    mv_sql_prepare(mv_archive_db(inst), "UPDATE users SET name=?, auth_generation=? WHERE name=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, new_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, gen);
	sqlite3_bind_text(st, 3, old, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "user '%.256s' already exists", new_name);
		return -1;
	}
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "rename user");
		return -1;
	}
	if (sqlite3_changes(mv_archive_db(inst)) == 0) {
		user_not_found(old, error);
		return -1;
	}
	static const char *const follow[] = { "UPDATE folder_privileges SET user=?1 WHERE user=?2",
		                              "UPDATE app_passwords SET user=?1 WHERE user=?2",
		                              "UPDATE user_mfa SET user=?1 WHERE user=?2" };
	for (size_t i = 0; i < G_N_ELEMENTS(follow); i++) {
		if (mv_sql_prepare(mv_archive_db(inst), follow[i], &st, error) < 0)
			return -1;
		sqlite3_bind_text(st, 1, new_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, old, -1, SQLITE_STATIC);
		if (mv_sql_step_done(mv_archive_db(inst), st, "rename user", error) < 0)
			return -1;
	}
	return 0;
}

static int rename_txn(mv_instance *inst, void *opaque, GError **error)
{
	const rename_args *r = opaque;
	char *old = stored_name_of(inst, r->old_name, error);
	if (!old)
		return -1;
	int rc = rename_stored(inst, old, r->new_name, error);
	g_free(old);
	return rc;
}

int mv_user_rename(mv_instance *inst, const char *old_name, const char *new_name, GError **error)
{
	if (mv_user_name_check(new_name, error) < 0)
		return -1;
	rename_args r = { old_name, new_name };
	return mv_archive_in_transaction(inst, rename_txn, &r, error);
}

int mv_user_set_password(mv_instance *inst, const char *name, const char *password, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return -1;
	char *hash = NULL;
	int rc = password ? mv_archive_new_password_hash(inst, u->name, password, &hash, error) : 0;
	mv_user_free(u);
	if (rc < 0)
		return -1;
	user_update up = { .name = name, .column = "password_hash", .text = hash, .new_generation = true };
	rc = update_user(inst, &up, error);
	mv_archive_free_secret(hash);
	return rc;
}

int mv_user_set_full_name(mv_instance *inst, const char *name, const char *full_name, GError **error)
{
	if (check_text("fullName", full_name, error) < 0)
		return -1;
	user_update up = { .name = name, .column = "full_name", .text = full_name };
	return update_user(inst, &up, error);
}

int mv_user_set_distinguished_name(mv_instance *inst, const char *name, const char *dn, GError **error)
{
	if (check_text("distinguishedName", dn, error) < 0)
		return -1;
	user_update up = { .name = name, .column = "distinguished_name", .text = dn };
	return update_user(inst, &up, error);
}

int mv_user_set_authentication(mv_instance *inst, const char *name, const char *authentication, GError **error)
{
	if (check_authentication(authentication, error) < 0)
		return -1;
	user_update up = { .name = name, .column = "authentication", .text = authentication, .new_generation = true };
	return update_user(inst, &up, error);
}

/* A list item: its checks by kind. */
static bool email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	return at && at != s && at[1] && !strchr(at + 1, '@') && !strpbrk(s, " \t") && strlen(s) <= MAX_EMAIL_BYTES;
}

static bool pop3_name_ok(const char *s)
{
	return *s && strlen(s) <= MAX_POP3_NAME_BYTES;
}

static int set_list(mv_instance *inst, const char *name, const char *arg_name, const char *column, GPtrArray *items,
                    bool (*item_ok)(const char *), GError **error)
{
	guint n = items ? items->len : 0;
	if (n > MAX_LIST_ITEMS) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: more than %d items", arg_name, MAX_LIST_ITEMS);
		return -1;
	}
	json_t *arr = json_array();
	for (guint i = 0; i < n; i++) {
		const char *s = items->pdata[i];
		if (!g_utf8_validate(s, -1, NULL) || mv_archive_has_control(s) || !item_ok(s)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%.320s' is not valid here", arg_name,
			            g_utf8_validate(s, -1, NULL) ? s : "(not UTF-8)");
			json_decref(arr);
			return -1;
		}
		json_array_append_new(arr, json_string(s));
	}
	char *text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	user_update up = { .name = name, .column = column, .text = text };
	int rc = update_user(inst, &up, error);
	free(text);
	return rc;
}

int mv_user_set_email_addresses(mv_instance *inst, const char *name, GPtrArray *items, GError **error)
{
	return set_list(inst, name, "emailAddresses", "email_addresses", items, email_ok, error);
}

int mv_user_set_pop3_user_names(mv_instance *inst, const char *name, GPtrArray *items, GError **error)
{
	return set_list(inst, name, "pop3UserNames", "pop3_user_names", items, pop3_name_ok, error);
}

typedef struct privileges_change {
	const char *name;
	unsigned privileges;
} privileges_change;

static int set_privileges_txn(mv_instance *inst, void *opaque, GError **error)
{
	const privileges_change *c = opaque;
	mv_user *u = mv_user_get(inst, c->name, error);
	if (!u)
		return -1;
	bool drops_admin = (u->privileges & MV_PRIV_ADMIN) && !(c->privileges & MV_PRIV_ADMIN);
	int rc = -1;
	if (drops_admin && require_other_admin(inst, u->name, "remove the admin privilege of", error) < 0)
		goto out;
	user_update up = { .name = u->name, .column = "privileges", .number = c->privileges, .is_number = true };
	rc = apply_update(inst, &up, error);
out:
	mv_user_free(u);
	return rc;
}

int mv_user_set_privileges(mv_instance *inst, const char *name, unsigned privileges, GError **error)
{
	if (mv_archive_check_bits(MV_PRIVSET_USER, "privileges", privileges, error) < 0)
		return -1;
	privileges_change c = { name, privileges };
	return mv_archive_in_transaction(inst, set_privileges_txn, &c, error);
}

int mv_user_set_login_privileges(mv_instance *inst, const char *name, unsigned login_privileges, GError **error)
{
	if (mv_archive_check_bits(MV_PRIVSET_LOGIN, "loginPrivileges", login_privileges, error) < 0)
		return -1;
	user_update up = { .name = name, .column = "login_privileges", .number = login_privileges, .is_number = true };
	return update_user(inst, &up, error);
}

/* ---- authentication ----------------------------------------------------------------------- */

/* The row of a stored name and its hash; NULL user (no error) when the row
 * went away meanwhile. */
static int credentials_of_stored(mv_instance *inst, const char *stored, mv_user **user_r, char **hash_r,
                                 GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " USER_COLUMNS ", password_hash FROM users WHERE name=?", &st,
	                   error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, stored, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*user_r = user_from(st);
		*hash_r = mv_sql_column_text(st, 10);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "read user");
	return -1;
}

/* The user and its hash, or NULL user (no error) when unknown. */
static int load_credentials(mv_instance *inst, const char *name, mv_user **user_r, char **hash_r, GError **error)
{
	char *stored = NULL;
	*user_r = NULL;
	*hash_r = NULL;
	if (mv_archive_resolve_name(inst, name, &stored, error) < 0)
		return -1;
	int rc = stored ? credentials_of_stored(inst, stored, user_r, hash_r, error) : 0;
	g_free(stored);
	return rc;
}

int mv_user_authenticate(mv_instance *inst, const char *name, const char *password, mv_user **user_r,
                         GError **error)
{
	if (user_r)
		*user_r = NULL;
	/* Refused before any work: nothing here depends on the user. */
	if (!name || !password || mv_archive_password_check(password, NULL) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, AUTH_FAILED);
		return -1;
	}
	mv_user *u = NULL;
	char *hash = NULL;
	if (load_credentials(inst, name, &u, &hash, error) < 0)
		return -1;
	bool usable = u && hash && strcmp(u->authentication, "integrated") == 0;
	/* Unknown user, no password, directory services: the same work. */
	bool ok = mv_archive_password_verify(usable ? hash : NULL, password) && usable;
	mv_archive_free_secret(hash);
	if (!ok) {
		mv_user_free(u);
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, AUTH_FAILED);
		return -1;
	}
	if (user_r)
		*user_r = u;
	else
		mv_user_free(u);
	return 0;
}
