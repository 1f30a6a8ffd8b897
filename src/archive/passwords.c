/* archive/passwords: users' passwords — what one may be (and the optional
 * password policy), hashing and verifying, and the generated password of
 * the first administrator.
 *
 * Passwords: libsodium's crypto_pwhash_str (Argon2id, INTERACTIVE limits:
 * 64 MiB each), so at most one hash per CPU runs at a time (a counting
 * semaphore) and a burst of logons cannot exhaust memory.  A logon of an
 * unknown user still verifies against a fixed dummy hash, and every failure
 * has the same message (users.c), so neither timing nor words tell whether
 * the user exists. */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

#define MAX_PASSWORD_BYTES 4096
#define MIN_POLICY_CHARS 8
#define ADMIN_PASSWORD_CHARS 20

/* Verified against when the user is unknown or has no usable password, so
 * that a failed logon costs the same whatever the reason.  Made once with
 * the INTERACTIVE limits from a random password nobody knows. */
static const char dummy_hash[crypto_pwhash_STRBYTES] =
	"$argon2id$v=19$m=65536,t=2,p=1$EOMdiQbQeBcX/LTF9m8Sug$0uiFAmKznxJI+GovJcBj4MFmdTyZrQhq0fm3l29Txms";

/* No 0/O, 1/l/I: read off a screen and typed in once. */
static const char password_alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/* Never names the password itself. */
int mv_archive_password_check(const char *password, GError **error)
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
	if (mv_archive_password_check(password, error) < 0)
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

int mv_archive_password_hash(const char *password, char **hash_r, GError **error)
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

bool mv_archive_password_verify(const char *hash, const char *password)
{
	/* libsodium takes the hash as a char[crypto_pwhash_STRBYTES] */
	char stored[crypto_pwhash_STRBYTES] = { 0 };
	if (!hash || strlen(hash) >= sizeof stored)
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
int mv_archive_new_password_hash(mv_instance *inst, const char *user_name, const char *password, char **hash_r,
                                 GError **error)
{
	bool policy = false;
	if (mv_archive_password_check(password, error) < 0 || password_policy_enabled(inst, &policy, error) < 0)
		return -1;
	if (policy && mv_password_policy_check(user_name, password, error) < 0)
		return -1;
	return mv_archive_password_hash(password, hash_r, error);
}

/* Passwords and their hashes leave no copy in freed memory. */
void mv_archive_free_secret(char *secret)
{
	if (!secret)
		return;
	sodium_memzero(secret, strlen(secret));
	g_free(secret);
}

char *mv_archive_random_password(void)
{
	char *p = g_malloc(ADMIN_PASSWORD_CHARS + 1);
	uint32_t n = (uint32_t)strlen(password_alphabet);
	for (int i = 0; i < ADMIN_PASSWORD_CHARS; i++)
		p[i] = password_alphabet[randombytes_uniform(n)];
	p[ADMIN_PASSWORD_CHARS] = '\0';
	return p;
}
