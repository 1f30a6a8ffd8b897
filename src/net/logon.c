/* net/logon: the guard in front of every logon, one per process.
 *
 * Argon2id is deliberately slow (~0.1 s, 64 MiB), and a client program
 * sends its credentials with every request, so a verified password is
 * remembered as a keyed hash until the user's auth generation changes or a
 * few minutes pass; connections arriving together with one password cost
 * one verification.  Bad credentials are answered only after a delay that
 * doubles with each failure from the same address, and an attempt from an
 * address under penalty waits it out first, so parallel connections gain
 * nothing.  Every server of the process (the API, Web Access) uses the same
 * guard, so one penalty covers them all.  It also keeps the active sessions
 * GetActiveSessions lists. */
#include "net/https.h"

#include <sodium.h>
#include <string.h>

#define AUTH_CACHE_SECONDS 300.0
#define FAILURE_FORGET_SECONDS 900.0
#define FAILURE_FIRST_DELAY 0.25
#define FAILURE_MAX_DELAY 8.0
#define SESSION_FORGET_SECONDS 1800.0

typedef struct failure {
	unsigned count;
	double last;
	double next_allowed;
} failure;

typedef struct cached_auth {
	uint8_t mac[crypto_generichash_BYTES];
	int64_t generation;
	double expires;
} cached_auth;

typedef struct session {
	char *user, *remote, *protocol;
	int64_t first, last;
	int64_t requests;
} session;

struct mv_logon {
	GMutex lock;
	GCond wake;                  /* penalty waits end early on shutdown */
	GCond verified;              /* a password check ended */
	GHashTable *failures;        /* remote -> failure* */
	GHashTable *auth_cache;      /* kind + casefolded user -> cached_auth* */
	GHashTable *verifying;       /* the same keys -> NULL: a check runs for it */
	GHashTable *sessions;        /* "protocol\nuser\nremote" -> session* */
	uint8_t cache_key[crypto_generichash_KEYBYTES];
	bool stopping;
};

static void session_free(gpointer p)
{
	session *s = p;
	g_free(s->user);
	g_free(s->remote);
	g_free(s->protocol);
	g_free(s);
}

mv_logon *mv_logon_new(void)
{
	mv_logon *l = g_new0(mv_logon, 1);
	g_mutex_init(&l->lock);
	g_cond_init(&l->wake);
	g_cond_init(&l->verified);
	l->failures = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	l->auth_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	l->verifying = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	l->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, session_free);
	randombytes_buf(l->cache_key, sizeof l->cache_key);
	return l;
}

void mv_logon_stop(mv_logon *l)
{
	g_mutex_lock(&l->lock);
	l->stopping = true;
	g_cond_broadcast(&l->wake);
	g_cond_broadcast(&l->verified);
	g_mutex_unlock(&l->lock);
}

void mv_logon_free(mv_logon **lp)
{
	mv_logon *l = *lp;
	if (!l)
		return;
	*lp = NULL;
	g_hash_table_destroy(l->failures);
	g_hash_table_destroy(l->auth_cache);
	g_hash_table_destroy(l->verifying);
	g_hash_table_destroy(l->sessions);
	sodium_memzero(l->cache_key, sizeof l->cache_key);
	g_cond_clear(&l->verified);
	g_cond_clear(&l->wake);
	g_mutex_clear(&l->lock);
	g_free(l);
}

/* ---- the cache of verified passwords --------------------------------------------- */

static void password_mac(mv_logon *l, const char *password, uint8_t out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, (const uint8_t *)password, strlen(password), l->cache_key,
	                   sizeof l->cache_key);
}

/* A password good for an interactive logon may not be good for a client
 * (MFA), so the kinds are cached apart. */
static char *cache_key_of(mv_logon_kind kind, const char *name)
{
	char *folded = g_utf8_casefold(name, -1);
	char *key = g_strdup_printf("%d\n%s", (int)kind, folded);
	g_free(folded);
	return key;
}

/* Caller holds the lock.  A hit also extends the entry's life, so that a
 * busy client never falls back to Argon2id all at once. */
static bool cache_hit_locked(mv_logon *l, const char *key, const mv_user *u, const uint8_t *mac)
{
	cached_auth *c = g_hash_table_lookup(l->auth_cache, key);
	double now = mv_monotonic();
	bool hit = c && c->generation == u->auth_generation && c->expires > now &&
	           sodium_memcmp(c->mac, mac, crypto_generichash_BYTES) == 0;
	if (hit)
		c->expires = now + AUTH_CACHE_SECONDS;
	return hit;
}

/* Whether the password is known good.  When not, and another connection
 * is checking the same user's password right now, waits for that check
 * first.  On false the caller checks the password itself and must call
 * verify_done. */
static bool cache_hit(mv_logon *l, mv_logon_kind kind, const mv_user *u, const char *password)
{
	uint8_t mac[crypto_generichash_BYTES];
	password_mac(l, password, mac);
	char *key = cache_key_of(kind, u->name);
	g_mutex_lock(&l->lock);
	bool hit;
	while (!(hit = cache_hit_locked(l, key, u, mac)) && g_hash_table_contains(l->verifying, key) && !l->stopping)
		g_cond_wait(&l->verified, &l->lock);
	if (!hit)
		g_hash_table_add(l->verifying, g_strdup(key));
	g_mutex_unlock(&l->lock);
	g_free(key);
	return hit;
}

static void verify_done(mv_logon *l, mv_logon_kind kind, const char *name)
{
	char *key = cache_key_of(kind, name);
	g_mutex_lock(&l->lock);
	g_hash_table_remove(l->verifying, key);
	g_cond_broadcast(&l->verified);
	g_mutex_unlock(&l->lock);
	g_free(key);
}

static void cache_put(mv_logon *l, mv_logon_kind kind, const mv_user *u, const char *password)
{
	cached_auth *c = g_new0(cached_auth, 1);
	password_mac(l, password, c->mac);
	c->generation = u->auth_generation;
	c->expires = mv_monotonic() + AUTH_CACHE_SECONDS;
	g_mutex_lock(&l->lock);
	g_hash_table_replace(l->auth_cache, cache_key_of(kind, u->name), c);
	g_mutex_unlock(&l->lock);
}

/* ---- the growing delay ------------------------------------------------------------- */

static double failure_delay(unsigned count)
{
	double d = FAILURE_FIRST_DELAY;
	for (unsigned i = 1; i < count && d < FAILURE_MAX_DELAY; i++)
		d *= 2;
	return MIN(d, FAILURE_MAX_DELAY);
}

/* Sleeps until the given monotonic time, or until shutdown. */
static void wait_until(mv_logon *l, double when)
{
	g_mutex_lock(&l->lock);
	while (!l->stopping) {
		double left = when - mv_monotonic();
		if (left <= 0)
			break;
		g_cond_wait_until(&l->wake, &l->lock, g_get_monotonic_time() + (gint64)(left * G_USEC_PER_SEC));
	}
	g_mutex_unlock(&l->lock);
}

static void wait_for_penalty(mv_logon *l, const char *remote)
{
	g_mutex_lock(&l->lock);
	failure *f = g_hash_table_lookup(l->failures, remote);
	double when = f ? f->next_allowed : 0;
	g_mutex_unlock(&l->lock);
	if (when > 0)
		wait_until(l, when);
}

/* Records a failure and returns when its answer may go out. */
static double record_failure(mv_logon *l, const char *remote)
{
	double now = mv_monotonic();
	g_mutex_lock(&l->lock);
	failure *f = g_hash_table_lookup(l->failures, remote);
	if (!f) {
		f = g_new0(failure, 1);
		g_hash_table_insert(l->failures, g_strdup(remote), f);
	}
	if (now - f->last > FAILURE_FORGET_SECONDS)
		f->count = 0;
	f->count++;
	f->last = now;
	f->next_allowed = now + failure_delay(f->count);
	double when = f->next_allowed;
	g_mutex_unlock(&l->lock);
	return when;
}

static void forget_failures(mv_logon *l, const char *remote)
{
	g_mutex_lock(&l->lock);
	g_hash_table_remove(l->failures, remote);
	g_mutex_unlock(&l->lock);
}

static void audit_failure(mv_instance *inst, const char *name, const char *remote, const char *details)
{
	GError *err = NULL;
	if (mv_audit_append(inst, name ? name : "", remote, "UserLogonFailed", false, details, &err) < 0) {
		mv_log_error("audit log: cannot record a failed logon from %s: %s", remote, err->message);
		g_error_free(err);
	}
}

void mv_logon_failed(mv_logon *l, mv_instance *inst, const char *name, const char *remote, const char *service,
                     const char *reason)
{
	double when = record_failure(l, remote);
	char *details = g_strdup_printf("%s: %s", service, reason);
	audit_failure(inst, name, remote, details);
	g_free(details);
	wait_until(l, when);
}

/* ---- checking credentials ------------------------------------------------------------ */

static int verify(mv_instance *inst, const char *name, const char *password, mv_logon_kind kind, mv_user **u_r,
                  GError **error)
{
	if (kind == MV_LOGON_CLIENT)
		return mv_user_authenticate_client(inst, name, password, u_r, error);
	return mv_user_authenticate(inst, name, password, u_r, error);
}

mv_logon_result mv_logon_check(mv_logon *l, mv_instance *inst, const char *name, const char *password,
                               mv_logon_kind kind, const char *remote, const char *service, mv_user **user_r)
{
	GError *err = NULL;
	wait_for_penalty(l, remote);
	mv_user *u = mv_user_get(inst, name, NULL);
	mv_logon_result outcome = MV_LOGON_OK;
	char *why = NULL;
	if (!u || !cache_hit(l, kind, u, password)) {
		char *verifying = u ? g_strdup(u->name) : NULL;
		mv_user_free(u);
		u = NULL;
		int rc = verify(inst, name, password, kind, &u, &err);
		if (rc == 0)
			cache_put(l, kind, u, password);
		if (verifying)
			verify_done(l, kind, verifying);
		g_free(verifying);
		if (rc < 0) {
			outcome = err->code == MV_ERR_AUTH ? MV_LOGON_FAILED : MV_LOGON_ERROR;
			if (outcome == MV_LOGON_ERROR)
				mv_log_error("authentication of %s from %s: %s", name, remote, err->message);
			why = g_strdup(err->message);
			g_error_free(err);
		}
	}
	if (outcome == MV_LOGON_FAILED)
		mv_logon_failed(l, inst, name, remote, service, why);
	g_free(why);
	if (outcome != MV_LOGON_OK)
		return outcome;
	forget_failures(l, remote);
	*user_r = u;
	return MV_LOGON_OK;
}

/* ---- sessions -------------------------------------------------------------------- */

void mv_logon_note_session(mv_logon *l, const char *user, const char *remote, const char *protocol)
{
	char *key = g_strdup_printf("%s\n%s\n%s", protocol, user, remote);
	int64_t now = mv_now();
	g_mutex_lock(&l->lock);
	session *s = g_hash_table_lookup(l->sessions, key);
	if (!s) {
		s = g_new0(session, 1);
		s->user = g_strdup(user);
		s->remote = g_strdup(remote);
		s->protocol = g_strdup(protocol);
		s->first = now;
		g_hash_table_insert(l->sessions, key, s);
		key = NULL;
	}
	s->last = now;
	s->requests++;
	g_mutex_unlock(&l->lock);
	g_free(key);
}

json_t *mv_logon_sessions_json(mv_logon *l)
{
	json_t *out = json_array();
	int64_t now = mv_now();
	g_mutex_lock(&l->lock);
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, l->sessions);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		session *s = value;
		if ((double)(now - s->last) > SESSION_FORGET_SECONDS) {
			g_hash_table_iter_remove(&it);
			continue;
		}
		char *since = mv_format_time_utc(s->first), *last = mv_format_time_utc(s->last);
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "userName", s->user,
		                                     "remoteAddress", s->remote, "protocol", s->protocol, "since", since,
		                                     "lastActivity", last, "requests", (json_int_t)s->requests));
		g_free(since);
		g_free(last);
	}
	g_mutex_unlock(&l->lock);
	return out;
}
