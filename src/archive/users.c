/* archive/users: the users of an instance and what they may do (the
 * compliance configuration is compliance.c's, a caller's access access.c's).
 *
 * Users live in master.sqlite beside the stores: a row per user (name unique
 * ignoring case and canonical normalisation in the Unicode sense, and every
 * lookup by name resolves it the same way: see mv_user_name_key and resolve_name;
 * privileges and login privileges as bit sets, e-mail addresses and POP3
 * names as JSON arrays, an Argon2id password hash),
 * folder_privileges (one row per user and folder; the longest matching
 * folder decides, 0 is an explicit deny); app passwords and MFA have files
 * of their own (app_passwords.c, mfa.c) and follow a user's rename and
 * deletion here.  The text forms of privilege sets are exactly
 * the identifiers of design.md §9.
 *
 * Passwords: libsodium's crypto_pwhash_str (Argon2id, INTERACTIVE limits:
 * 64 MiB each), so at most one hash per CPU runs at a time (a counting
 * semaphore) and a burst of logons cannot exhaust memory.  A logon of an
 * unknown user still verifies against a fixed dummy hash, and every failure
 * has the same message, so neither timing nor words tell whether the user
 * exists.  auth_generation takes a fresh value from an instance-wide counter
 * whenever the password or authentication changes, or the user is renamed,
 * so sessions holding the old value can be ended; a user deleted and created
 * again never gets a value it had before.
 *
 * Every change that reads before it writes runs inside BEGIN IMMEDIATE, so
 * two processes cannot both remove "the last administrator". */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

#define MAX_USER_NAME_BYTES 256
#define MAX_PASSWORD_BYTES 4096
#define MAX_TEXT_BYTES 4096          /* full name, distinguished name */
#define MAX_LIST_ITEMS 1000          /* e-mail addresses, POP3 user names */
#define MAX_EMAIL_BYTES 320
#define MAX_POP3_NAME_BYTES 256
#define MAX_FOLDER_BYTES 4096
#define MIN_POLICY_CHARS 8
#define ADMIN_NAME "admin"
#define ADMIN_PASSWORD_CHARS 20
#define ALL_USER_PRIVILEGES ((1u << 8) - 1)

#define SETTING_AUTH_GENERATION "users_auth_generation"

#define AUTH_FAILED "unknown user or wrong password"

/* Verified against when the user is unknown or has no usable password, so
 * that a failed logon costs the same whatever the reason.  Made once with
 * the INTERACTIVE limits from a random password nobody knows. */
static const char dummy_hash[crypto_pwhash_STRBYTES] =
	"$argon2id$v=19$m=65536,t=2,p=1$EOMdiQbQeBcX/LTF9m8Sug$0uiFAmKznxJI+GovJcBj4MFmdTyZrQhq0fm3l29Txms";

/* No 0/O, 1/l/I: read off a screen and typed in once. */
static const char password_alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/* ---- SQL helpers (shared with audit.c through internal.h) ------------------------- */

int mv_archive_prepare(mv_instance *inst, const char *sql, sqlite3_stmt **st_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	if (sqlite3_prepare_v2(db, sql, -1, st_r, NULL) == SQLITE_OK)
		return 0;
	mv_sql_set_error(error, db, "prepare");
	return -1;
}

int mv_archive_in_transaction(mv_instance *inst, mv_archive_txn_fn fn, void *opaque, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	if (mv_sql_exec(db, "BEGIN IMMEDIATE", error) < 0)
		return -1;
	if (fn(inst, opaque, error) < 0 || mv_sql_exec(db, "COMMIT", error) < 0) {
		mv_sql_exec(db, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}



int mv_archive_count(mv_instance *inst, const char *sql, const char *text_arg, int64_t *n_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, sql, &st, error) < 0)
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
	    mv_archive_prepare(inst, "UPDATE users SET auth_generation=? WHERE name=?", &st, error) < 0)
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
	int rc = n == 0 ? -1 : 0;
	if (n == 0)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: empty (a comma separated list of privileges, or none)",
		            arg_name);
	for (guint i = 0; i < n && rc == 0; i++) {
		unsigned bit;
		rc = parse_item(kind, arg_name, g_strstrip(items[i]), &bit, error);
		none = none || (rc == 0 && bit == 0);
		bits |= bit;
	}
	g_strfreev(items);
	if (rc == 0 && none && n > 1) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: 'none' must stand alone in the list", arg_name);
		rc = -1;
	}
	if (rc == 0)
		*bits_r = bits;
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

static bool has_control(const char *s)
{
	for (const char *p = s; *p; p = g_utf8_next_char(p))
		if (g_unichar_iscntrl(g_utf8_get_char(p)))
			return true;
	return false;
}

int mv_user_name_check(const char *name, GError **error)
{
	size_t len = name ? strlen(name) : 0;
	const char *why = NULL;
	if (len == 0 || len > MAX_USER_NAME_BYTES)
		why = "must be 1 to 256 bytes long";
	else if (!g_utf8_validate(name, (gssize)len, NULL))
		why = "is not valid UTF-8";
	else if (has_control(name) || strchr(name, '/') || strchr(name, ',') || strchr(name, ':'))
		why = "must not contain control characters, '/', ',' or ':' (HTTP Basic credentials end the name at ':')";
	else if (name[0] == ' ' || name[len - 1] == ' ')
		why = "must not begin or end with a space";
	if (!why)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "user name %s", why);
	return -1;
}

/* Optional free text (full name, distinguished name). */
static int check_text(const char *arg_name, const char *text, GError **error)
{
	if (!text)
		return 0;
	if (strlen(text) > MAX_TEXT_BYTES || !g_utf8_validate(text, -1, NULL) || has_control(text)) {
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

static int check_bits(mv_privset_kind kind, const char *arg_name, unsigned bits, GError **error)
{
	if ((bits & ~priv_mask(kind)) == 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: unknown privilege bits 0x%x", arg_name, bits);
	return -1;
}

/* Never names the password itself. */
static int check_password(const char *password, GError **error)
{
	size_t len = strlen(password);
	if (len >= 1 && len <= MAX_PASSWORD_BYTES && g_utf8_validate(password, (gssize)len, NULL))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "password: must be 1 to %d bytes of UTF-8", MAX_PASSWORD_BYTES);
	return -1;
}

static bool contains_casefolded(const char *haystack, const char *needle)
{
	char *h = g_utf8_casefold(haystack, -1), *n = g_utf8_casefold(needle, -1);
	bool found = strstr(h, n) != NULL;
	sodium_memzero(h, strlen(h));
	g_free(h);
	g_free(n);
	return found;
}

int mv_password_policy_check(const char *user_name, const char *password, GError **error)
{
	if (check_password(password, error) < 0)
		return -1;
	if (g_utf8_strlen(password, -1) < MIN_POLICY_CHARS) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "password policy: the password must be at least %d "
		            "characters long", MIN_POLICY_CHARS);
		return -1;
	}
	bool upper = false, lower = false, digit = false, other = false;
	for (const char *p = password; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_isupper(c))
			upper = true;
		else if (g_unichar_islower(c))
			lower = true;
		else if (g_unichar_isdigit(c))
			digit = true;
		else
			other = true;
	}
	if ((int)upper + (int)lower + (int)digit + (int)other < 3) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "password policy: the password must contain characters of "
		            "at least three kinds: upper case letters, lower case letters, digits, other characters");
		return -1;
	}
	if (user_name && *user_name && contains_casefolded(password, user_name)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "password policy: the password must not contain the user name");
		return -1;
	}
	return 0;
}

/* ---- password hashing ------------------------------------------------------------------ */

/* Each Argon2id computation takes 64 MiB: at most one per CPU at a time. */
static GMutex hash_lock;
static GCond hash_slot_freed;
static unsigned hashes_running;

static void hash_slot_take(void)
{
	unsigned limit = (unsigned)MAX(1, g_get_num_processors());
	g_mutex_lock(&hash_lock);
	while (hashes_running >= limit)
		g_cond_wait(&hash_slot_freed, &hash_lock);
	hashes_running++;
	g_mutex_unlock(&hash_lock);
}

static void hash_slot_give(void)
{
	g_mutex_lock(&hash_lock);
	hashes_running--;
	g_cond_signal(&hash_slot_freed);
	g_mutex_unlock(&hash_lock);
}

static int hash_password(const char *password, char **hash_r, GError **error)
{
	char out[crypto_pwhash_STRBYTES];
	hash_slot_take();
	int rc = crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                           crypto_pwhash_MEMLIMIT_INTERACTIVE);
	hash_slot_give();
	if (rc != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "Argon2id password hashing failed (out of memory)");
		return -1;
	}
	*hash_r = g_strdup(out);
	return 0;
}

static bool verify_password(const char *hash, const char *password)
{
	/* libsodium takes the hash as a char[crypto_pwhash_STRBYTES] */
	char stored[crypto_pwhash_STRBYTES] = { 0 };
	if (strlen(hash) >= sizeof stored)
		hash = dummy_hash;
	memcpy(stored, hash, strlen(hash));
	hash_slot_take();
	bool ok = crypto_pwhash_str_verify(stored, password, strlen(password)) == 0;
	hash_slot_give();
	return ok && hash != dummy_hash;
}

static int password_policy_enabled(mv_instance *inst, bool *enabled_r, GError **error)
{
	mv_compliance c = { 0 };
	if (mv_compliance_get(inst, &c, error) < 0)
		return -1;
	*enabled_r = c.password_policy_enabled;
	mv_compliance_clear(&c);
	return 0;
}

/* Checks the password (and the policy when it is on) and hashes it. */
static int new_password_hash(mv_instance *inst, const char *user_name, const char *password, char **hash_r,
                             GError **error)
{
	bool policy = false;
	if (check_password(password, error) < 0 || password_policy_enabled(inst, &policy, error) < 0)
		return -1;
	if (policy && mv_password_policy_check(user_name, password, error) < 0)
		return -1;
	return hash_password(password, hash_r, error);
}

/* ---- user names: from the name asked for to the stored name ----------------------------- */

/* Two names are the same user when their keys are equal: Unicode canonical
 * caseless matching (D145 of the standard), so "Jürgen", "JÜRGEN" and a
 * decomposed "Ju\u0308rgen" are one user.  Canonical normalisation belongs
 * here because canonically equivalent names look the same and a client may
 * send either form; compatibility (NFKC) folding does not, as it would make
 * "²" and "2" or a full-width "ｊｏｈｎ" and "john" one name.  Uniqueness
 * (name_taken) and every lookup (resolve_name) use this one key.  NULL
 * when name is not UTF-8. */
char *mv_user_name_key(const char *name)
{
	char *nfd = g_utf8_normalize(name, -1, G_NORMALIZE_NFD);
	if (!nfd)
		return NULL;
	char *folded = g_utf8_casefold(nfd, -1);
	char *key = g_utf8_normalize(folded, -1, G_NORMALIZE_NFC);
	g_free(nfd);
	g_free(folded);
	return key;
}

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* The characters beyond ASCII whose key is ASCII (found by trying every code
 * point; test_users.c checks that each of them is found).  Only names made
 * of these and ASCII can share a key with an ASCII name, and each key here
 * is no longer than the character's UTF-8, so such a key is at most
 * MAX_USER_NAME_BYTES long. */
typedef struct ascii_folding {
	const char *utf8, *key;
} ascii_folding;

static const ascii_folding ascii_foldings[] = {
	{ "\xc3\x9f", "ss" },          /* U+00DF sharp s */
	{ "\xc5\xbf", "s" },           /* U+017F long s */
	{ "\xcd\xbe", ";" },           /* U+037E Greek question mark */
	{ "\xe1\xba\x9e", "ss" },      /* U+1E9E capital sharp s */
	{ "\xe1\xbf\xaf", "`" },       /* U+1FEF Greek varia */
	{ "\xe2\x84\xaa", "k" },       /* U+212A Kelvin sign */
	{ "\xef\xac\x80", "ff" },      /* U+FB00..FB06 Latin ligatures */
	{ "\xef\xac\x81", "fi" },
	{ "\xef\xac\x82", "fl" },
	{ "\xef\xac\x83", "ffi" },
	{ "\xef\xac\x84", "ffl" },
	{ "\xef\xac\x85", "st" },
	{ "\xef\xac\x86", "st" },
};

/* Longer queries cannot name a user: a stored name has at most 256 bytes,
 * and neither folding nor normalisation grows or shrinks text by more than
 * a small factor.  Bounds the work an unknown name from outside can cause. */
#define MAX_LOOKUP_BYTES (16 * MAX_USER_NAME_BYTES)

/* Steps st (bound by the caller) and keeps the first row whose name has the
 * key want in *stored_r; st is reset for the next binding. */
static int first_with_key(mv_instance *inst, sqlite3_stmt *st, const char *want, char **stored_r, GError **error)
{
	int rc = SQLITE_DONE;
	while (!*stored_r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char *key = name ? mv_user_name_key(name) : NULL;
		if (key && strcmp(key, want) == 0)
			*stored_r = g_strdup(name);
		g_free(key);
	}
	sqlite3_reset(st);
	if (*stored_r || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "find user");
	return -1;
}

/* One probe of the primary key index: NOCASE folds ASCII letters, so this
 * finds the user whenever the name differs from the stored one only there. */
static int probe_nocase(mv_instance *inst, const char *name, const char *want, char **stored_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT name FROM users WHERE name=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = first_with_key(inst, st, want, stored_r, error);
	sqlite3_finalize(st);
	return rc;
}

/* Stored names that begin, ignoring ASCII case, with key[0..at) followed by
 * the character f: one range of the NOCASE index.  f's UTF-8 ends in a
 * continuation byte (0x80..0xbf), so adding one to it gives the range's end. */
static int probe_folding(mv_instance *inst, sqlite3_stmt *st, const char *key, size_t at, const ascii_folding *f,
                         char **stored_r, GError **error)
{
	char *low = g_strdup_printf("%.*s%s", (int)at, key, f->utf8);
	char *high = g_strdup(low);
	high[strlen(high) - 1]++;
	sqlite3_bind_text(st, 1, low, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, high, -1, SQLITE_TRANSIENT);
	g_free(low);
	g_free(high);
	return first_with_key(inst, st, key, stored_r, error);
}

/* A stored name with the ASCII key, spelt with some character of
 * ascii_foldings (an ASCII spelling was probed already): its first such
 * character sits at some offset of the key, after ASCII text equal to the
 * key up to there.  So a few index ranges per offset, never a scan. */
static int resolve_ascii_foldings(mv_instance *inst, const char *key, char **stored_r, GError **error)
{
	sqlite3_stmt *st;
	if (strlen(key) > MAX_USER_NAME_BYTES)
		return 0;
	if (mv_archive_prepare(inst, "SELECT name FROM users WHERE name >= ?1 AND name < ?2", &st, error) < 0)
		return -1;
	int rc = 0;
	for (size_t at = 0; key[at] && !*stored_r && rc == 0; at++)
		for (size_t i = 0; i < G_N_ELEMENTS(ascii_foldings) && !*stored_r && rc == 0; i++)
			if (g_str_has_prefix(key + at, ascii_foldings[i].key))
				rc = probe_folding(inst, st, key, at, &ascii_foldings[i], stored_r, error);
	sqlite3_finalize(st);
	return rc;
}

/* An all-ASCII name has an ASCII key, so for a key beyond ASCII only the
 * stored names with a byte beyond ASCII are folded and compared.  A scan,
 * but only when neither the name as asked nor its key matched in the index
 * (e.g. "ärzte" for a stored "Ärzte"). */
static int resolve_by_scan(mv_instance *inst, const char *key, char **stored_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT name FROM users WHERE length(name) != length(CAST(name AS BLOB))", &st,
	                       error) < 0)
		return -1;
	int rc = first_with_key(inst, st, key, stored_r, error);
	sqlite3_finalize(st);
	return rc;
}

/* The stored name of the user that name means, or NULL (no error) when
 * there is none.  The cheap probes come first: the name as asked (every
 * ASCII logon of an existing user ends here, as before), then its key,
 * which finds "Jürgen" asked for as "JÜRGEN"; only then the fallbacks. */
static int resolve_name(mv_instance *inst, const char *name, char **stored_r, GError **error)
{
	*stored_r = NULL;
	char *key = name && strlen(name) <= MAX_LOOKUP_BYTES ? mv_user_name_key(name) : NULL;
	if (!key)
		return 0;   /* not UTF-8 or too long: names nobody */
	int rc = probe_nocase(inst, name, key, stored_r, error);
	if (rc == 0 && !*stored_r && g_ascii_strcasecmp(name, key) != 0)
		rc = probe_nocase(inst, key, key, stored_r, error);
	if (rc == 0 && !*stored_r)
		rc = is_ascii(key) ? resolve_ascii_foldings(inst, key, stored_r, error)
		                   : resolve_by_scan(inst, key, stored_r, error);
	g_free(key);
	if (rc < 0) {
		g_free(*stored_r);
		*stored_r = NULL;
	}
	return rc;
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
	u->login_privileges = (unsigned)sqlite3_column_int64(st, 5) & MV_LOGIN_ALL;
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
	if (resolve_name(inst, name, &stored, error) == 0 && !stored)
		user_not_found(name, error);
	return stored;
}

/* The row of a stored name; errors name the user as it was asked for. */
static mv_user *user_by_stored_name(mv_instance *inst, const char *stored, const char *asked, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT " USER_COLUMNS " FROM users WHERE name=?", &st, error) < 0)
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
	if (mv_archive_prepare(inst, "SELECT " USER_COLUMNS " FROM users ORDER BY name", &st, error) < 0)
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
 * rare, and a full scan cannot miss what resolve_name's probes might.
 * except: the stored name of the user being renamed (a change of case is
 * allowed). */
static int name_taken(mv_instance *inst, const char *name, const char *except, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT name FROM users", &st, error) < 0)
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
	    mv_archive_prepare(inst, "INSERT INTO users(name, full_name, distinguished_name, authentication,"
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

/* Passwords and their hashes leave no copy in freed memory. */
static void free_secret(char *secret)
{
	if (!secret)
		return;
	sodium_memzero(secret, strlen(secret));
	g_free(secret);
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
	    check_bits(MV_PRIVSET_USER, "privileges", privileges, error) < 0 ||
	    check_bits(MV_PRIVSET_LOGIN, "loginPrivileges", login_privileges, error) < 0)
		return -1;
	char *hash = NULL;
	if (password && new_password_hash(inst, name, password, &hash, error) < 0)
		return -1;
	new_user nu = { name, privileges, login_privileges, full_name, distinguished_name, authentication, hash, false };
	int rc = mv_archive_in_transaction(inst, insert_user_txn, &nu, error);
	free_secret(hash);
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

static char *random_password(void)
{
	char *p = g_malloc(ADMIN_PASSWORD_CHARS + 1);
	uint32_t n = (uint32_t)strlen(password_alphabet);
	for (int i = 0; i < ADMIN_PASSWORD_CHARS; i++)
		p[i] = password_alphabet[randombytes_uniform(n)];
	p[ADMIN_PASSWORD_CHARS] = '\0';
	return p;
}

int mv_users_ensure_admin(mv_instance *inst, char **password_r, GError **error)
{
	*password_r = NULL;
	int64_t n;
	if (mv_archive_count(inst, "SELECT count(*) FROM users", NULL, &n, error) < 0)
		return -1;
	if (n > 0)
		return 0;
	char *password = random_password(), *hash = NULL;
	int rc = hash_password(password, &hash, error);
	new_user nu = { ADMIN_NAME, ALL_USER_PRIVILEGES, MV_LOGIN_ALL, NULL, NULL, "integrated", hash, false };
	if (rc == 0)
		rc = mv_archive_in_transaction(inst, insert_first_admin, &nu, error);
	free_secret(hash);
	if (rc == 0 && nu.created) {
		*password_r = password;
		return 0;
	}
	free_secret(password);   /* another process made the first user meanwhile */
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

static int exec_for_user(mv_instance *inst, const char *sql, const char *name, const char *what, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, sql, &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return mv_sql_step_done(mv_archive_db(inst), st, what, error);
}

static int delete_user_txn(mv_instance *inst, void *opaque, GError **error)
{
	mv_user *u = mv_user_get(inst, opaque, error);
	if (!u)
		return -1;
	int rc = (u->privileges & MV_PRIV_ADMIN) ? require_other_admin(inst, u->name, "delete user", error) : 0;
	if (rc == 0 &&
	    (exec_for_user(inst, "DELETE FROM folder_privileges WHERE user=?", u->name, "delete folder privileges",
	                   error) < 0 ||
	     exec_for_user(inst, "DELETE FROM app_passwords WHERE user=?", u->name, "delete app passwords", error) < 0 ||
	     exec_for_user(inst, "DELETE FROM user_mfa WHERE user=?", u->name, "delete MFA", error) < 0 ||
	     exec_for_user(inst, "DELETE FROM users WHERE name=?", u->name, "delete user", error) < 0))
		rc = -1;
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
	int rc = mv_archive_prepare(inst, sql, &st, error);
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
	    mv_archive_prepare(inst, "UPDATE users SET name=?, auth_generation=? WHERE name=?", &st, error) < 0)
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
		if (mv_archive_prepare(inst, follow[i], &st, error) < 0)
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
	int rc = password ? new_password_hash(inst, u->name, password, &hash, error) : 0;
	mv_user_free(u);
	if (rc < 0)
		return -1;
	user_update up = { .name = name, .column = "password_hash", .text = hash, .new_generation = true };
	rc = update_user(inst, &up, error);
	free_secret(hash);
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
		if (!g_utf8_validate(s, -1, NULL) || has_control(s) || !item_ok(s)) {
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
	int rc = drops_admin ? require_other_admin(inst, u->name, "remove the admin privilege of", error) : 0;
	user_update up = { .name = u->name, .column = "privileges", .number = c->privileges, .is_number = true };
	if (rc == 0)
		rc = apply_update(inst, &up, error);
	mv_user_free(u);
	return rc;
}

int mv_user_set_privileges(mv_instance *inst, const char *name, unsigned privileges, GError **error)
{
	if (check_bits(MV_PRIVSET_USER, "privileges", privileges, error) < 0)
		return -1;
	privileges_change c = { name, privileges };
	return mv_archive_in_transaction(inst, set_privileges_txn, &c, error);
}

int mv_user_set_login_privileges(mv_instance *inst, const char *name, unsigned login_privileges, GError **error)
{
	if (check_bits(MV_PRIVSET_LOGIN, "loginPrivileges", login_privileges, error) < 0)
		return -1;
	user_update up = { .name = name, .column = "login_privileges", .number = login_privileges, .is_number = true };
	return update_user(inst, &up, error);
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
	int rc = exec_for_user(inst, "DELETE FROM app_passwords WHERE user=?", u->name, "delete app passwords", error);
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

/* ---- authentication ----------------------------------------------------------------------- */

/* The row of a stored name and its hash; NULL user (no error) when the row
 * went away meanwhile. */
static int credentials_of_stored(mv_instance *inst, const char *stored, mv_user **user_r, char **hash_r,
                                 GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT " USER_COLUMNS ", password_hash FROM users WHERE name=?", &st, error) < 0)
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
	if (resolve_name(inst, name, &stored, error) < 0)
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
	if (!name || !password || check_password(password, NULL) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_AUTH, AUTH_FAILED);
		return -1;
	}
	mv_user *u = NULL;
	char *hash = NULL;
	if (load_credentials(inst, name, &u, &hash, error) < 0)
		return -1;
	bool usable = u && hash && strcmp(u->authentication, "integrated") == 0;
	/* Unknown user, no password, directory services: the same work. */
	bool ok = verify_password(usable ? hash : dummy_hash, password) && usable;
	free_secret(hash);
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

/* ---- folder privileges -------------------------------------------------------------------- */

void mv_folder_grant_free(mv_folder_grant *g)
{
	if (!g)
		return;
	g_free(g->folder);
	g_free(g);
}

static int check_folder(const char *folder, GError **error)
{
	size_t len = folder ? strlen(folder) : 0;
	if (len > 0 && len <= MAX_FOLDER_BYTES && g_utf8_validate(folder, (gssize)len, NULL) && !has_control(folder) &&
	    folder[0] != '/' && folder[len - 1] != '/' && !strstr(folder, "//"))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "folder: '%.200s' is not a folder name of the form "
	            "archive/folder/... (at most %d bytes)", folder && g_utf8_validate(folder, -1, NULL) ? folder : "",
	            MAX_FOLDER_BYTES);
	return -1;
}

/* Folders of the user's entries, read inside a transaction. */
GPtrArray *mv_archive_folder_grants(mv_instance *inst, const char *name, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, "SELECT folder, privileges FROM folder_privileges WHERE user=? ORDER BY folder",
	                       &st, error) < 0)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_folder_grant_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_folder_grant *g = g_new0(mv_folder_grant, 1);
		g->folder = mv_sql_column_text(st, 0);
		g->privileges = (unsigned)sqlite3_column_int64(st, 1) & MV_FOLDER_ALL;
		g_ptr_array_add(list, g);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return list;
	mv_sql_set_error(error, mv_archive_db(inst), "read folder privileges");
	g_ptr_array_free(list, TRUE);
	return NULL;
}

static bool same_folder(const char *a, const char *b)
{
	char *fa = mv_name_fold(a), *fb = mv_name_fold(b);
	bool same = strcmp(fa, fb) == 0;
	g_free(fa);
	g_free(fb);
	return same;
}

typedef struct folder_grant_change {
	const char *name, *folder;
	unsigned privileges;
} folder_grant_change;

/* One statement on the user's entry for a folder: (user, folder[, bits]). */
static int grant_statement(mv_instance *inst, const char *sql, const char *user, const char *folder,
                           unsigned privileges, GError **error)
{
	sqlite3_stmt *st;
	if (mv_archive_prepare(inst, sql, &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, folder, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) == 3)
		sqlite3_bind_int64(st, 3, privileges);
	return mv_sql_step_done(mv_archive_db(inst), st, "set folder privileges", error);
}

/* Removes the user's entries that name the folder as mv_access would match
 * it (case-insensitively, beyond SQLite's ASCII NOCASE). */
static int remove_same_folder(mv_instance *inst, const char *user, const char *folder, GError **error)
{
	GPtrArray *grants = mv_archive_folder_grants(inst, user, error);
	if (!grants)
		return -1;
	int rc = 0;
	for (guint i = 0; i < grants->len && rc == 0; i++) {
		const mv_folder_grant *g = grants->pdata[i];
		if (same_folder(g->folder, folder))
			rc = grant_statement(inst, "DELETE FROM folder_privileges WHERE user=? AND folder=?", user, g->folder,
			                     0, error);
	}
	g_ptr_array_free(grants, TRUE);
	return rc;
}

/* Replaces the user's entry for the folder, so there is never more than one. */
static int set_folder_txn(mv_instance *inst, void *opaque, GError **error)
{
	const folder_grant_change *c = opaque;
	mv_user *u = mv_user_get(inst, c->name, error);
	if (!u)
		return -1;
	int rc = remove_same_folder(inst, u->name, c->folder, error);
	if (rc == 0)
		rc = grant_statement(inst, "INSERT INTO folder_privileges(user, folder, privileges) VALUES(?,?,?)", u->name,
		                     c->folder, c->privileges, error);
	mv_user_free(u);
	return rc;
}

int mv_user_set_folder_privileges(mv_instance *inst, const char *name, const char *folder, unsigned privileges,
                                  GError **error)
{
	if (check_folder(folder, error) < 0 || check_bits(MV_PRIVSET_FOLDER, "privileges", privileges, error) < 0)
		return -1;
	char *canonical = mv_name_canonical(folder);   /* stored as names are: NFC */
	folder_grant_change c = { name, canonical, privileges };
	int rc = mv_archive_in_transaction(inst, set_folder_txn, &c, error);
	g_free(canonical);
	return rc;
}

static int clear_folders_txn(mv_instance *inst, void *opaque, GError **error)
{
	mv_user *u = mv_user_get(inst, opaque, error);
	if (!u)
		return -1;
	int rc = exec_for_user(inst, "DELETE FROM folder_privileges WHERE user=?", u->name, "clear folder privileges",
	                       error);
	mv_user_free(u);
	return rc;
}

int mv_user_clear_folder_privileges(mv_instance *inst, const char *name, GError **error)
{
	return mv_archive_in_transaction(inst, clear_folders_txn, (void *)name, error);
}

GPtrArray *mv_user_folder_privileges(mv_instance *inst, const char *name, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return NULL;
	GPtrArray *grants = mv_archive_folder_grants(inst, u->name, error);
	mv_user_free(u);
	return grants;
}
