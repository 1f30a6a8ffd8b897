/* archive/user_names: what a user name may be, the key by which two names
 * are the same user, and the way from a name as asked for (a logon, an API
 * argument) to the name as stored — every lookup by name in archive/ goes
 * through mv_archive_resolve_name, and uniqueness (users.c's name_taken)
 * through the same key. */
#include "archive/internal.h"

#include <string.h>

#define MAX_USER_NAME_BYTES 256

int mv_user_name_check(const char *name, GError **error)
{
	size_t len = name ? strlen(name) : 0;
	const char *why = NULL;
	if (len == 0 || len > MAX_USER_NAME_BYTES)
		why = "must be 1 to 256 bytes long";
	else if (!g_utf8_validate(name, (gssize)len, NULL))
		why = "is not valid UTF-8";
	else if (mv_archive_has_control(name) || strchr(name, '/') || strchr(name, ',') || strchr(name, ':'))
		why = "must not contain control characters, '/', ',' or ':' (HTTP Basic credentials end the name at ':')";
	else if (name[0] == ' ' || name[len - 1] == ' ')
		why = "must not begin or end with a space";
	if (!why)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "user name %s", why);
	return -1;
}

/* ---- user names: from the name asked for to the stored name ----------------------------- */

/* Two names are the same user when their keys are equal: Unicode canonical
 * caseless matching (D145 of the standard), so "Jürgen", "JÜRGEN" and a
 * decomposed "Ju\u0308rgen" are one user.  Canonical normalisation belongs
 * here because canonically equivalent names look the same and a client may
 * send either form; compatibility (NFKC) folding does not, as it would make
 * "²" and "2" or a full-width "ｊｏｈｎ" and "john" one name.  Uniqueness
 * (users.c's name_taken) and every lookup (mv_archive_resolve_name) use
 * this one key.  NULL when name is not UTF-8. */
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
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT name FROM users WHERE name=?", &st, error) < 0)
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
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT name FROM users WHERE name >= ?1 AND name < ?2", &st, error) < 0)
		return -1;
	int rc = -1;
	for (size_t at = 0; key[at] && !*stored_r; at++)
		for (size_t i = 0; i < G_N_ELEMENTS(ascii_foldings) && !*stored_r; i++)
			if (g_str_has_prefix(key + at, ascii_foldings[i].key) &&
			    probe_folding(inst, st, key, at, &ascii_foldings[i], stored_r, error) < 0)
				goto out;
	rc = 0;
out:
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
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT name FROM users WHERE length(name) != length(CAST(name AS BLOB))", &st,
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
int mv_archive_resolve_name(mv_instance *inst, const char *name, char **stored_r, GError **error)
{
	*stored_r = NULL;
	char *key = name && strlen(name) <= MAX_LOOKUP_BYTES ? mv_user_name_key(name) : NULL;
	if (!key)
		return 0;   /* not UTF-8 or too long: names nobody */
	int rc = -1;
	if (probe_nocase(inst, name, key, stored_r, error) < 0)
		goto out;
	if (!*stored_r && g_ascii_strcasecmp(name, key) != 0 && probe_nocase(inst, key, key, stored_r, error) < 0)
		goto out;
	if (!*stored_r && (is_ascii(key) ? resolve_ascii_foldings(inst, key, stored_r, error)
	                                 : resolve_by_scan(inst, key, stored_r, error)) < 0)
		goto out;
	rc = 0;
out:
	g_free(key);
	if (rc < 0)
		g_clear_pointer(stored_r, g_free);
	return rc;
}
