/* archive/credentials: the credentials an instance keeps to reach other
 * systems (rows of master.sqlite's credentials table) — which settings each
 * type takes and what their values may be, creating, changing, listing and
 * deleting them, and the one way a secret comes out again.
 *
 * Why it is shaped so:
 * - A secret is sealed (XChaCha20-Poly1305, secrets.c's mv_archive_seal)
 *   under a random key of its own, and only that key is wrapped by the
 *   master key: a secret of any length then rides on the wrapping every
 *   other key of the instance uses, and RenewMasterKey rewraps 32 bytes per
 *   credential (master_key.c) without ever opening a secret.  The sealed
 *   value's associated data names the credential's id, so a secret copied
 *   into another row does not open there.
 * - Every secret written gets a new key.  Writing a wrapped key holds the
 *   instance key lock and first settles a renewal another process may have
 *   left half done (as stores.c and recovery_key.c do): a key wrapped by a
 *   master key that is about to be replaced would be lost.
 * - Nothing here returns a secret but mv_credential_secret; errors never
 *   quote one.  The certificate of an Office365_Modern credential is made
 *   by net/ (archive/ sits below it) and handed in with its private key.
 * - Uses by profiles are rows of profile_credentials (see archive.h), read
 *   in the transaction that deletes, so a profile saved meanwhile cannot
 *   slip between the check and the deletion. */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

#define MAX_DESCRIPTION_BYTES 1024
#define MAX_USER_NAME_BYTES 1024
#define MAX_SECRET_BYTES 4096
#define MAX_DOMAIN_BYTES 253
#define MAX_LABEL_BYTES 63
#define PROFILES_NAMED 3            /* profiles a refused deletion names; the rest are counted */

#define CREDENTIAL_COLUMNS                                                                                  \
	"id, type, description, tenant_id, application_id, user_name, certificate, thumbprint, subject,"  \
	" not_before, not_after, secret IS NOT NULL, created_at"
/* The column after CREDENTIAL_COLUMNS' 13: secret, then key_master. */
#define SECRET_COLUMN 13

/* ---- types and the settings each takes -------------------------------------------------- */

static const char *const type_names[] = {
	[MV_CREDENTIAL_OFFICE365_MODERN] = "Office365_Modern",
	[MV_CREDENTIAL_PASSWORD] = "Password",
	[MV_CREDENTIAL_OAUTH_CLIENT_SECRET] = "OAuthClientSecret",
};

#define TYPE_BIT(t) (1u << (t))

/* The API arguments that set something, and the types that take each. */
static const struct {
	const char *arg;
	unsigned types;
} type_args[] = {
	{ "tenantId", TYPE_BIT(MV_CREDENTIAL_OFFICE365_MODERN) | TYPE_BIT(MV_CREDENTIAL_OAUTH_CLIENT_SECRET) },
	{ "applicationId", TYPE_BIT(MV_CREDENTIAL_OFFICE365_MODERN) | TYPE_BIT(MV_CREDENTIAL_OAUTH_CLIENT_SECRET) },
	{ "createNewCertificate", TYPE_BIT(MV_CREDENTIAL_OFFICE365_MODERN) },
	{ "userName", TYPE_BIT(MV_CREDENTIAL_PASSWORD) },
	{ "password", TYPE_BIT(MV_CREDENTIAL_PASSWORD) },
	{ "clientSecret", TYPE_BIT(MV_CREDENTIAL_OAUTH_CLIENT_SECRET) },
};

const char *mv_credential_type_name(mv_credential_type type)
{
	return (size_t)type < G_N_ELEMENTS(type_names) ? type_names[type] : "unknown";
}

int mv_credential_type_parse(const char *name, mv_credential_type *type_r, GError **error)
{
	for (size_t t = 0; t < G_N_ELEMENTS(type_names); t++) {
		if (name && strcmp(name, type_names[t]) == 0) {
			*type_r = (mv_credential_type)t;
			return 0;
		}
	}
	if (name && strcmp(name, "SignedEnvelope") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "type: SignedEnvelope credentials (for exports to "
		            "MailStore Cloud) are not supported by mailvault");
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "type: '%.100s' is not a credential type (Office365_Modern, "
		            "Password, OAuthClientSecret)", name ? name : "");
	return -1;
}

static char *args_of_type(mv_credential_type type)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(type_args); i++)
		if (type_args[i].types & TYPE_BIT(type))
			g_string_append_printf(s, "%s%s", s->len ? ", " : "", type_args[i].arg);
	return g_string_free(s, FALSE);
}

int mv_credential_check_arg(mv_credential_type type, const char *arg, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(type_args); i++) {
		if (strcmp(type_args[i].arg, arg) != 0)
			continue;
		if (type_args[i].types & TYPE_BIT(type))
			return 0;
		char *takes = args_of_type(type);
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "argument '%s' does not apply to a credential of type %s "
		            "(it takes %s)", arg, mv_credential_type_name(type), takes);
		g_free(takes);
		return -1;
	}
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "argument '%.100s' is not a credential setting", arg);
	return -1;
}

/* ---- values ------------------------------------------------------------------------------ */

static int check_description(const char *description, GError **error)
{
	if (description && strlen(description) <= MAX_DESCRIPTION_BYTES && g_utf8_validate(description, -1, NULL) &&
	    !mv_archive_has_control(description))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "description: must be at most %d bytes of UTF-8 without control "
	            "characters", MAX_DESCRIPTION_BYTES);
	return -1;
}

/* 8-4-4-4-12 hexadecimal digits, as Entra ID writes its ids. */
static bool is_guid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	if (strlen(s) != sizeof shape - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == '-' ? s[i] != '-' : !g_ascii_isxdigit(s[i]))
			return false;
	return true;
}

/* A DNS name of two labels or more (contoso.onmicrosoft.com): a tenant id
 * goes into the token endpoint's URL, so nothing else may pass. */
static bool is_domain(const char *s)
{
	size_t len = strlen(s), label = 0, labels = 1;
	if (len == 0 || len > MAX_DOMAIN_BYTES)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			labels++;
		} else if (g_ascii_isalnum(c) || (c == '-' && label > 0)) {
			if (++label > MAX_LABEL_BYTES)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-' && labels >= 2;
}

/* Values that are not UTF-8 are not quoted back. */
static const char *quotable(const char *s)
{
	return g_utf8_validate(s, -1, NULL) ? s : "(not UTF-8)";
}

static int check_tenant(const char *tenant, GError **error)
{
	if (!tenant || !*tenant || is_guid(tenant) || is_domain(tenant))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "tenantId: '%.100s' is neither a GUID nor a domain name such as "
	            "contoso.onmicrosoft.com", quotable(tenant));
	return -1;
}

static int check_application(const char *application, GError **error)
{
	if (!application || !*application || is_guid(application))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "applicationId: '%.100s' is not a GUID (the application (client) "
	            "ID of the app registration)", quotable(application));
	return -1;
}

static int check_user_name(const char *name, GError **error)
{
	if (!name || (strlen(name) <= MAX_USER_NAME_BYTES && g_utf8_validate(name, -1, NULL) &&
	              !mv_archive_has_control(name)))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "userName: must be at most %d bytes of UTF-8 without control "
	            "characters", MAX_USER_NAME_BYTES);
	return -1;
}

/* Never quotes the value. */
static int check_secret(const char *arg, const char *secret, GError **error)
{
	if (!secret)
		return 0;
	size_t len = strlen(secret);
	if (len == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: empty; a credential's secret can be replaced, not "
		            "removed (DeleteCredential removes the credential)", arg);
		return -1;
	}
	if (len > MAX_SECRET_BYTES || !g_utf8_validate(secret, (gssize)len, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: must be at most %d bytes of UTF-8", arg, MAX_SECRET_BYTES);
		return -1;
	}
	return 0;
}

/* Every setting given must be one the type takes, and a valid value. */
static int check_settings(mv_credential_type type, const mv_credential_settings *s, GError **error)
{
	const struct {
		const char *arg;
		bool given;
	} given[] = {
		{ "tenantId", s->tenant_id != NULL },       { "applicationId", s->application_id != NULL },
		{ "createNewCertificate", s->certificate != NULL }, { "userName", s->user_name != NULL },
		{ "password", s->password != NULL },         { "clientSecret", s->client_secret != NULL },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(given); i++)
		if (given[i].given && mv_credential_check_arg(type, given[i].arg, error) < 0)
			return -1;
	if (check_tenant(s->tenant_id, error) < 0 || check_application(s->application_id, error) < 0 ||
	    check_user_name(s->user_name, error) < 0 || check_secret("password", s->password, error) < 0 ||
	    check_secret("clientSecret", s->client_secret, error) < 0)
		return -1;
	return 0;
}

/* ---- rows --------------------------------------------------------------------------------- */

void mv_credential_free(mv_credential *c)
{
	if (!c)
		return;
	g_free(c->description);
	g_free(c->tenant_id);
	g_free(c->application_id);
	g_free(c->user_name);
	g_free(c->certificate);
	g_free(c->thumbprint);
	g_free(c->subject);
	g_free(c);
}

static mv_credential *credential_of_row(sqlite3_stmt *st, GError **error)
{
	mv_credential *c = g_new0(mv_credential, 1);
	c->id = sqlite3_column_int64(st, 0);
	const char *type = (const char *)sqlite3_column_text(st, 1);
	if (mv_credential_type_parse(type, &c->type, NULL) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: credential %" G_GINT64_FORMAT " has the "
		            "unknown type '%.100s'", c->id, type ? type : "");
		g_free(c);
		return NULL;
	}
	c->description = mv_sql_column_text(st, 2);
	c->tenant_id = mv_sql_column_text(st, 3);
	c->application_id = mv_sql_column_text(st, 4);
	c->user_name = mv_sql_column_text(st, 5);
	c->certificate = mv_sql_column_text(st, 6);
	c->thumbprint = mv_sql_column_text(st, 7);
	c->subject = mv_sql_column_text(st, 8);
	c->not_before = sqlite3_column_int64(st, 9);
	c->not_after = sqlite3_column_int64(st, 10);
	c->has_secret = sqlite3_column_int(st, 11) != 0;
	c->created_at = sqlite3_column_int64(st, 12);
	return c;
}

static void set_not_found(int64_t id, GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "credential %" G_GINT64_FORMAT " does not exist", id);
}

/* The statement for one credential by id, stepped to its row; NULL with
 * MV_ERR_NOT_FOUND when there is none. */
static sqlite3_stmt *select_one(mv_instance *inst, const char *sql, int64_t id, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), sql, &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return st;
	if (rc == SQLITE_DONE)
		set_not_found(id, error);
	else
		mv_sql_set_error(error, mv_archive_db(inst), "read credential");
	sqlite3_finalize(st);
	return NULL;
}

mv_credential *mv_credential_get(mv_instance *inst, int64_t id, GError **error)
{
	sqlite3_stmt *st = select_one(inst, "SELECT " CREDENTIAL_COLUMNS " FROM credentials WHERE id=?", id, error);
	if (!st)
		return NULL;
	mv_credential *c = credential_of_row(st, error);
	sqlite3_finalize(st);
	return c;
}

GPtrArray *mv_credentials_list(mv_instance *inst, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " CREDENTIAL_COLUMNS " FROM credentials ORDER BY id", &st,
	                   error) < 0)
		return NULL;
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_credential_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_credential *c = credential_of_row(st, error);
		if (!c)
			break;
		g_ptr_array_add(list, c);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return list;
	if (rc != SQLITE_ROW)
		mv_sql_set_error(error, mv_archive_db(inst), "list credentials");
	g_ptr_array_free(list, TRUE);
	return NULL;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* The associated data of a credential's sealed secret. */
static char *secret_purpose(int64_t id)
{
	return g_strdup_printf("mailvault credential %" G_GINT64_FORMAT, id);
}

/* A value given is stored; "" unsets it.  column is one of ours, never input. */
static int set_text(mv_instance *inst, int64_t id, const char *column, const char *value, GError **error)
{
	if (!value)
		return 0;
	sqlite3_stmt *st;
	char *sql = g_strdup_printf("UPDATE credentials SET %s=? WHERE id=?", column);
	int rc = mv_sql_prepare(mv_archive_db(inst), sql, &st, error);
	g_free(sql);
	if (rc < 0)
		return -1;
	if (*value)
		sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	return mv_sql_step_done(mv_archive_db(inst), st, "change credential", error);
}

static int set_certificate(mv_instance *inst, int64_t id, const mv_credential_cert *cert, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE credentials SET certificate=?, thumbprint=?, subject=?,"
	                   " not_before=?, not_after=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, cert->pem, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cert->thumbprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, cert->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, cert->not_before);
	sqlite3_bind_int64(st, 5, cert->not_after);
	sqlite3_bind_int64(st, 6, id);
	return mv_sql_step_done(mv_archive_db(inst), st, "store credential certificate", error);
}

/* The secret sealed under a new key, the key wrapped by the master key
 * (the caller holds the key lock). */
static int seal_secret(mv_instance *inst, int64_t id, const char *secret, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	randombytes_buf(key, sizeof key);
	char *purpose = secret_purpose(id);
	GBytes *sealed = mv_archive_seal(key, purpose, (const uint8_t *)secret, strlen(secret));
	GBytes *wrapped = mv_archive_wrap_with(inst->master_key, key);
	sodium_memzero(key, sizeof key);
	g_free(purpose);
	sqlite3_stmt *st;
	int rc = -1;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE credentials SET secret=?, key_master=?, key_master_next=NULL"
	                   " WHERE id=?", &st, error) == 0) {
		mv_sql_bind_bytes(st, 1, sealed);
		mv_sql_bind_bytes(st, 2, wrapped);
		sqlite3_bind_int64(st, 3, id);
		rc = mv_sql_step_done(mv_archive_db(inst), st, "store credential secret", error);
	}
	g_bytes_unref(wrapped);
	g_bytes_unref(sealed);
	return rc;
}

/* What a create or change writes, and the new id. */
typedef struct credential_write {
	int64_t id;
	mv_credential_type type;
	const char *description;
	const mv_credential_settings *settings;
} credential_write;

static int apply_settings(mv_instance *inst, const credential_write *w, GError **error)
{
	const mv_credential_settings *s = w->settings;
	const char *secret = s->password ? s->password
	                   : s->client_secret ? s->client_secret
	                   : s->certificate ? s->certificate->private_key_pem : NULL;
	if (set_text(inst, w->id, "tenant_id", s->tenant_id, error) < 0 ||
	    set_text(inst, w->id, "application_id", s->application_id, error) < 0 ||
	    set_text(inst, w->id, "user_name", s->user_name, error) < 0 ||
	    (s->certificate && set_certificate(inst, w->id, s->certificate, error) < 0))
		return -1;
	return secret ? seal_secret(inst, w->id, secret, error) : 0;
}

static int create_txn(mv_instance *inst, void *opaque, GError **error)
{
	credential_write *w = opaque;
	int64_t n = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM credentials", NULL, &n, error) < 0)
		return -1;
	if (n >= MV_CREDENTIALS_MAX) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "there are %d credentials already, as many as an instance keeps",
		            MV_CREDENTIALS_MAX);
		return -1;
	}
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT INTO credentials(type, description, created_at)"
	                   " VALUES (?, ?, ?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, mv_credential_type_name(w->type), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->description, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, mv_now());
	if (mv_sql_step_done(mv_archive_db(inst), st, "create credential", error) < 0)
		return -1;
	w->id = sqlite3_last_insert_rowid(mv_archive_db(inst));
	return apply_settings(inst, w, error);
}

/* The type is read inside the transaction: the row may have gone since
 * the caller looked. */
static int update_txn(mv_instance *inst, void *opaque, GError **error)
{
	credential_write *w = opaque;
	mv_credential *c = mv_credential_get(inst, w->id, error);
	if (!c)
		return -1;
	w->type = c->type;
	mv_credential_free(c);
	if (check_settings(w->type, w->settings, error) < 0)
		return -1;
	return apply_settings(inst, w, error);
}

/* fn in a transaction under the key lock, with an interrupted renewal
 * settled first: fn may wrap a new key with the master key. */
static int write_locked(mv_instance *inst, mv_archive_txn_fn fn, credential_write *w, GError **error)
{
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = mv_archive_settle_master_key_locked(inst, error);
	if (rc == 0)
		rc = mv_archive_in_transaction(inst, fn, w, error);
	mv_archive_key_unlock(lock);
	return rc;
}

int mv_credential_create(mv_instance *inst, mv_credential_type type, const char *description,
                         const mv_credential_settings *settings, int64_t *id_r, GError **error)
{
	if (check_description(description, error) < 0 || check_settings(type, settings, error) < 0)
		return -1;
	credential_write w = { .type = type, .description = description, .settings = settings };
	if (write_locked(inst, create_txn, &w, error) < 0)
		return -1;
	*id_r = w.id;
	return 0;
}

int mv_credential_update(mv_instance *inst, int64_t id, const mv_credential_settings *settings, GError **error)
{
	credential_write w = { .id = id, .settings = settings };
	return write_locked(inst, update_txn, &w, error);
}

int mv_credential_set_description(mv_instance *inst, int64_t id, const char *description, GError **error)
{
	if (check_description(description, error) < 0)
		return -1;
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE credentials SET description=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, description, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	if (mv_sql_step_done(mv_archive_db(inst), st, "change credential description", error) < 0)
		return -1;
	if (sqlite3_changes(mv_archive_db(inst)) > 0)
		return 0;
	set_not_found(id, error);
	return -1;
}

/* ---- deleting ------------------------------------------------------------------------------- */

/* "profile 'A'" or "profiles 'A', 'B', 'C' and 4 more"; NULL when no
 * profile uses the credential. */
static int profiles_using(mv_instance *inst, int64_t id, char **text_r, GError **error)
{
	*text_r = NULL;
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT profile_name, count(*) OVER () FROM profile_credentials"
	                   " WHERE credential_id=? ORDER BY profile_name, profile_id LIMIT ?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, PROFILES_NAMED);
	GString *names = g_string_new(NULL);
	int64_t total = 0, named = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		g_string_append_printf(names, "%s'%.200s'", named ? ", " : "", name ? quotable(name) : "");
		total = sqlite3_column_int64(st, 1);
		named++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "read the profiles using a credential");
		g_string_free(names, TRUE);
		return -1;
	}
	if (total > named)
		g_string_append_printf(names, " and %" G_GINT64_FORMAT " more", total - named);
	if (total > 0)
		*text_r = g_strdup_printf("profile%s %s", total == 1 ? "" : "s", names->str);
	g_string_free(names, TRUE);
	return 0;
}

static int delete_txn(mv_instance *inst, void *opaque, GError **error)
{
	int64_t id = *(const int64_t *)opaque;
	mv_credential *c = mv_credential_get(inst, id, error);
	if (!c)
		return -1;
	mv_credential_free(c);
	char *users = NULL;
	if (profiles_using(inst, id, &users, error) < 0)
		return -1;
	if (users) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "credential %" G_GINT64_FORMAT " is used by %s: change or "
		            "delete that first", id, users);
		g_free(users);
		return -1;
	}
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM credentials WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return mv_sql_step_done(mv_archive_db(inst), st, "delete credential", error);
}

int mv_credential_delete(mv_instance *inst, int64_t id, GError **error)
{
	return mv_archive_in_transaction(inst, delete_txn, &id, error);
}

/* ---- the secret -------------------------------------------------------------------------------- */

static void set_no_secret(const mv_credential *c, GError **error)
{
	const char *how = c->type == MV_CREDENTIAL_OFFICE365_MODERN ? "SetCredentialSettings --createNewCertificate=true"
	                  : c->type == MV_CREDENTIAL_PASSWORD         ? "SetCredentialSettings --password"
	                                                              : "SetCredentialSettings --clientSecret";
	g_set_error(error, MV_ERROR, MV_ERR_STATE, "credential %" G_GINT64_FORMAT " (%s) has no secret yet (%s sets "
	            "one)", c->id, mv_credential_type_name(c->type), how);
}

/* The sealed secret opened: a NUL-terminated copy, the opened bytes wiped. */
static char *open_secret(mv_instance *inst, int64_t id, GBytes *sealed, GBytes *wrapped, size_t *len_r,
                         GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (!mv_archive_unwrap(inst, wrapped, key)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "credential %" G_GINT64_FORMAT ": its key does not open with "
		            "master.key", id);
		return NULL;
	}
	char *purpose = secret_purpose(id);
	GBytes *plain = mv_archive_open_sealed(key, purpose, sealed);
	sodium_memzero(key, sizeof key);
	g_free(purpose);
	if (!plain) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "credential %" G_GINT64_FORMAT ": its secret does not open "
		            "with its key (damaged, or copied from another credential)", id);
		return NULL;
	}
	gsize len = 0;
	uint8_t *bytes = (uint8_t *)g_bytes_get_data(plain, &len);
	char *secret = g_malloc(len + 1);
	if (len)
		memcpy(secret, bytes, len);
	secret[len] = '\0';
	if (bytes)
		sodium_memzero(bytes, len);
	g_bytes_unref(plain);
	*len_r = len;
	return secret;
}

int mv_credential_secret(mv_instance *inst, int64_t id, mv_credential **credential_r, char **secret_r,
                         size_t *len_r, GError **error)
{
	sqlite3_stmt *st = select_one(inst, "SELECT " CREDENTIAL_COLUMNS ", secret, key_master FROM credentials"
	                              " WHERE id=?", id, error);
	if (!st)
		return -1;
	mv_credential *c = credential_of_row(st, error);
	GBytes *sealed = mv_sql_column_bytes(st, SECRET_COLUMN), *wrapped = mv_sql_column_bytes(st, SECRET_COLUMN + 1);
	sqlite3_finalize(st);
	char *secret = NULL;
	if (c && !sealed)
		set_no_secret(c, error);
	else if (c)
		secret = open_secret(inst, id, sealed, wrapped, len_r, error);
	if (sealed)
		g_bytes_unref(sealed);
	if (wrapped)
		g_bytes_unref(wrapped);
	if (!secret) {
		mv_credential_free(c);
		return -1;
	}
	*secret_r = secret;
	if (credential_r)
		*credential_r = c;
	else
		mv_credential_free(c);
	return 0;
}
