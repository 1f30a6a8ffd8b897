/* archive/app_passwords: passwords for client programs (mail clients over
 * IMAP, scripts over the Administration API), one per device, each
 * revocable on its own, and the logon of such clients.
 *
 * An app password is generated here, never chosen: 20 characters from a
 * 32-letter alphabet, 100 bits, shown once.  With that much entropy a slow
 * hash buys nothing, so it is stored as a keyed BLAKE2b (key derived from
 * the instance key: the master db alone does not even allow checking a
 * guess), and checking one costs microseconds instead of Argon2id's 64 MiB
 * — a client sends it on every request.
 *
 * Once a user has MFA, a client program cannot be asked for a code, so
 * only an app password logs it in (as in MailStore); the web logon, which
 * can ask, takes only the real password (mv_user_authenticate). */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

#define APP_PASSWORD_CHARS 20
#define GROUP_CHARS 4
#define MAX_PER_USER 100
#define MAX_DESCRIPTION_BYTES 256
#define KDF_CONTEXT "mvapppw"

/* No l, o, 0, 1: read off a screen and typed into a phone. */
static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";

void mv_app_password_free(mv_app_password *p)
{
	if (!p)
		return;
	g_free(p->description);
	g_free(p);
}

/* The 20 characters of an app password as typed (any case, dashes or
 * spaces between groups), or false when the text cannot be one. */
static bool normalise(const char *text, char out[APP_PASSWORD_CHARS + 1])
{
	size_t n = 0;
	for (const char *c = text ? text : ""; *c; c++) {
		if (*c == '-' || *c == ' ')
			continue;
		char lower = g_ascii_tolower(*c);
		if (!strchr(alphabet, lower) || lower == 0 || n == APP_PASSWORD_CHARS)
			return false;
		out[n++] = lower;
	}
	out[n] = 0;
	return n == APP_PASSWORD_CHARS;
}

static int hash_of(mv_instance *inst, const char *normalised, char **hex_r, GError **error)
{
	uint8_t key[MV_KEY_BYTES], mac[crypto_generichash_BYTES];
	if (mv_archive_secret_key(inst, KDF_CONTEXT, 1, key, error) < 0)
		return -1;
	crypto_generichash(mac, sizeof mac, (const uint8_t *)normalised, strlen(normalised), key, sizeof key);
	sodium_memzero(key, sizeof key);
	*hex_r = mv_hex(mac, sizeof mac);
	return 0;
}

static char *generate(char plain_r[APP_PASSWORD_CHARS + 1])
{
	GString *shown = g_string_new(NULL);
	for (size_t i = 0; i < APP_PASSWORD_CHARS; i++) {
		plain_r[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
		if (i && i % GROUP_CHARS == 0)
			g_string_append_c(shown, '-');
		g_string_append_c(shown, plain_r[i]);
	}
	plain_r[APP_PASSWORD_CHARS] = 0;
	return g_string_free(shown, FALSE);
}

static int check_description(const char *d, GError **error)
{
	if (!d)
		return 0;
	bool ok = strlen(d) <= MAX_DESCRIPTION_BYTES && g_utf8_validate(d, -1, NULL);
	for (const char *c = d; ok && *c; c++)
		ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID,
	            "description: at most %d bytes of UTF-8 text without control characters", MAX_DESCRIPTION_BYTES);
	return -1;
}

typedef struct create_args {
	const char *stored, *description, *hash;
	int64_t id;
} create_args;

static int create_txn(mv_instance *inst, void *opaque, GError **error)
{
	create_args *a = opaque;
	int64_t n = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM app_passwords WHERE user=?", a->stored, &n, error) < 0)
		return -1;
	if (n >= MAX_PER_USER) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "user %s has %d app passwords already: revoke one first",
		            a->stored, MAX_PER_USER);
		return -1;
	}
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT INTO app_passwords(user, description, hash, created_at)"
	                   " VALUES (?,?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, a->stored, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->description ? a->description : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, mv_now());
	if (mv_sql_step_done(mv_archive_db(inst), st, "create app password", error) < 0)
		return -1;
	a->id = sqlite3_last_insert_rowid(mv_archive_db(inst));
	return 0;
}

int mv_app_password_create(mv_instance *inst, const char *name, const char *description, int64_t *id_r,
                           char **password_r, GError **error)
{
	if (check_description(description, error) < 0)
		return -1;
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return -1;
	char plain[APP_PASSWORD_CHARS + 1];
	char *shown = generate(plain);
	char *hash = NULL;
	create_args a = { .stored = u->name, .description = description };
	int rc = hash_of(inst, plain, &hash, error);
	sodium_memzero(plain, sizeof plain);
	if (rc < 0)
		goto out;
	a.hash = hash;
	rc = mv_archive_in_transaction(inst, create_txn, &a, error);
	if (rc < 0)
		goto out;
	*id_r = a.id;
	*password_r = shown;
	shown = NULL;
out:
	if (shown) {
		sodium_memzero(shown, strlen(shown));
		g_free(shown);
	}
	g_free(hash);
	mv_user_free(u);
	return rc;
}

GPtrArray *mv_app_passwords_list(mv_instance *inst, const char *name, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	sqlite3_stmt *st;
	if (!u || mv_sql_prepare(mv_archive_db(inst), "SELECT id, description, created_at FROM app_passwords WHERE user=?"
	                         " ORDER BY id", &st, error) < 0) {
		mv_user_free(u);
		return NULL;
	}
	sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_app_password_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_app_password *p = g_new0(mv_app_password, 1);
		p->id = sqlite3_column_int64(st, 0);
		p->description = mv_sql_column_text(st, 1);
		p->created_at = sqlite3_column_int64(st, 2);
		g_ptr_array_add(out, p);
	}
	sqlite3_finalize(st);
	mv_user_free(u);
	if (rc == SQLITE_DONE)
		return out;
	mv_sql_set_error(error, mv_archive_db(inst), "list app passwords");
	g_ptr_array_free(out, TRUE);
	return NULL;
}

typedef struct delete_args {
	const char *stored;
	int64_t id;
} delete_args;

/* A revoked password must stop working at once, also where a server
 * remembers it as verified: hence the new auth generation. */
static int delete_txn(mv_instance *inst, void *opaque, GError **error)
{
	delete_args *a = opaque;
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM app_passwords WHERE user=? AND id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, a->stored, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a->id);
	if (mv_sql_step_done(mv_archive_db(inst), st, "revoke app password", error) < 0)
		return -1;
	if (sqlite3_changes(mv_archive_db(inst)) == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "user %s has no app password %" G_GINT64_FORMAT, a->stored,
		            a->id);
		return -1;
	}
	return mv_archive_new_auth_generation(inst, a->stored, error);
}

int mv_app_password_delete(mv_instance *inst, const char *name, int64_t id, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return -1;
	delete_args a = { u->name, id };
	int rc = mv_archive_in_transaction(inst, delete_txn, &a, error);
	mv_user_free(u);
	return rc;
}

/* ---- the logon of a client program --------------------------------------------------------- */

/* 1 when the text is one of the user's app passwords, 0 when not, -1 error. */
static int app_password_matches(mv_instance *inst, const char *stored, const char *normalised, GError **error)
{
	char *hash = NULL;
	sqlite3_stmt *st;
	if (hash_of(inst, normalised, &hash, error) < 0)
		return -1;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT hash FROM app_passwords WHERE user=?", &st, error) < 0) {
		g_free(hash);
		return -1;
	}
	sqlite3_bind_text(st, 1, stored, -1, SQLITE_STATIC);
	int found = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (h && strlen(h) == strlen(hash) && sodium_memcmp(h, hash, strlen(hash)) == 0)
			found = 1;
	}
	sqlite3_finalize(st);
	g_free(hash);
	if (rc == SQLITE_DONE)
		return found;
	mv_sql_set_error(error, mv_archive_db(inst), "check app password");
	return -1;
}

static int mfa_active(mv_instance *inst, const char *name, bool *active_r, GError **error)
{
	mv_mfa_state state = MV_MFA_NONE;
	if (mv_mfa_get_state(inst, name, &state, error) < 0)
		return -1;
	*active_r = state == MV_MFA_ACTIVE;
	return 0;
}

/* The app-password way in: 1 logged in (*user_r), 0 not an app password
 * of this user, -1 error. */
static int by_app_password(mv_instance *inst, const char *name, const char *secret, mv_user **user_r, GError **error)
{
	char normalised[APP_PASSWORD_CHARS + 1];
	if (!normalise(secret, normalised))
		return 0;
	GError *err = NULL;
	mv_user *u = mv_user_get(inst, name, &err);
	if (!u) {
		sodium_memzero(normalised, sizeof normalised);
		if (err->code == MV_ERR_NOT_FOUND) {
			g_error_free(err);
			return 0;
		}
		g_propagate_error(error, err);
		return -1;
	}
	int rc = app_password_matches(inst, u->name, normalised, error);
	sodium_memzero(normalised, sizeof normalised);
	if (rc == 1)
		*user_r = u;
	else
		mv_user_free(u);
	return rc;
}

int mv_user_authenticate_client(mv_instance *inst, const char *name, const char *secret, mv_user **user_r,
                                GError **error)
{
	mv_user *u = NULL;
	int rc = by_app_password(inst, name, secret, &u, error);
	if (rc < 0)
		return -1;
	if (rc == 0 && mv_user_authenticate(inst, name, secret, &u, error) < 0)
		return -1;
	bool active = false;
	if (rc == 0 && mfa_active(inst, u->name, &active, error) < 0) {
		mv_user_free(u);
		return -1;
	}
	if (active) {
		/* The password was right, but a client cannot give the second
		 * factor: only an app password will do.  Said in the audit log,
		 * never to the client. */
		mv_user_free(u);
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, "the user has MFA: client programs need an app password");
		return -1;
	}
	if (user_r)
		*user_r = u;
	else
		mv_user_free(u);
	return 0;
}

typedef struct app_passwords_delete {
	const char *name;
	int64_t count;
} app_passwords_delete;

static int delete_app_passwords_txn(mv_instance *inst, void *opaque, GError **error)
{
	app_passwords_delete *d = opaque;
	mv_user *u = mv_user_get(inst, d->name, error);
	if (!u)
		return -1;
	int rc = mv_archive_exec_for_user(inst, "DELETE FROM app_passwords WHERE user=?", u->name, "delete app passwords",
	                                  error);
	mv_user_free(u);
	d->count = rc == 0 ? sqlite3_changes(mv_archive_db(inst)) : 0;
	return rc;
}

int mv_user_delete_app_passwords(mv_instance *inst, const char *name, int64_t *count_r, GError **error)
{
	app_passwords_delete d = { name, 0 };
	int rc = mv_archive_in_transaction(inst, delete_app_passwords_txn, &d, error);
	if (rc == 0 && count_r)
		*count_r = d.count;
	return rc;
}
