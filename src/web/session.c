/* web/session: the sessions of Web Access, in memory.
 *
 * A session is a random 256-bit token in an HttpOnly cookie; the table
 * keeps only a keyed hash of it, so the tokens of logged-in users are not
 * in the server's memory to be read back.  Each session has its own CSRF
 * token, an idle timeout and an absolute one, and remembers the user's auth
 * generation: a password change or an administrator's change ends it on
 * its next use (the server compares).  A restart ends every session, which
 * for a web page means logging in again — nothing to persist.  The table is
 * bounded: when it is full of live sessions, a new logon is refused rather
 * than an old session dropped. */
#include "web/web.h"

#include <sodium.h>
#include <string.h>

#define MAX_SESSIONS 20000
#define TOKEN_BYTES 32
/* A logon waiting for its second factor may not wait long. */
#define PENDING_SECONDS 600

typedef struct entry {
	char *user;
	mv_web_stage stage;
	char *csrf;
	int64_t auth_generation;
	unsigned failed_codes;
	double created, last;
} entry;

struct mv_web_sessions {
	GMutex lock;
	GHashTable *table;            /* hex MAC of token -> entry* */
	uint8_t key[crypto_generichash_KEYBYTES];
	double idle, absolute;
};

static void entry_free(gpointer p)
{
	entry *e = p;
	g_free(e->user);
	if (e->csrf)
		sodium_memzero(e->csrf, strlen(e->csrf));
	g_free(e->csrf);
	g_free(e);
}

mv_web_sessions *mv_web_sessions_new(int64_t idle_seconds, int64_t absolute_seconds)
{
	mv_web_sessions *s = g_new0(mv_web_sessions, 1);
	g_mutex_init(&s->lock);
	s->table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
	randombytes_buf(s->key, sizeof s->key);
	mv_web_sessions_set_timeouts(s, idle_seconds, absolute_seconds);
	return s;
}

void mv_web_sessions_set_timeouts(mv_web_sessions *s, int64_t idle_seconds, int64_t absolute_seconds)
{
	g_mutex_lock(&s->lock);
	s->idle = (double)idle_seconds;
	s->absolute = (double)absolute_seconds;
	g_mutex_unlock(&s->lock);
}

int64_t mv_web_sessions_idle_seconds(mv_web_sessions *s)
{
	g_mutex_lock(&s->lock);
	int64_t idle = (int64_t)s->idle;
	g_mutex_unlock(&s->lock);
	return idle;
}

void mv_web_sessions_free(mv_web_sessions **sp)
{
	mv_web_sessions *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	g_hash_table_destroy(s->table);
	sodium_memzero(s->key, sizeof s->key);
	g_mutex_clear(&s->lock);
	g_free(s);
}

static char *random_token(void)
{
	uint8_t raw[TOKEN_BYTES];
	randombytes_buf(raw, sizeof raw);
	char out[sodium_base64_ENCODED_LEN(TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	sodium_bin2base64(out, sizeof out, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
	return g_strdup(out);
}

static char *key_of(mv_web_sessions *s, const char *token)
{
	uint8_t mac[crypto_generichash_BYTES];
	crypto_generichash(mac, sizeof mac, (const uint8_t *)token, strlen(token), s->key, sizeof s->key);
	return mv_hex(mac, sizeof mac);
}

static bool expired(const mv_web_sessions *s, const entry *e, double now)
{
	double absolute = e->stage == MV_WEB_STAGE_AUTHENTICATED ? s->absolute : MIN(s->absolute, PENDING_SECONDS);
	return now - e->last > s->idle || now - e->created > absolute;
}

static void drop_expired_locked(mv_web_sessions *s, double now)
{
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, s->table);
	while (g_hash_table_iter_next(&it, NULL, &value))
		if (expired(s, value, now))
			g_hash_table_iter_remove(&it);
}

char *mv_web_session_create(mv_web_sessions *s, const char *user, mv_web_stage stage, int64_t auth_generation)
{
	double now = mv_monotonic();
	char *token = random_token();
	char *key = key_of(s, token);
	entry *e = g_new0(entry, 1);
	e->user = g_strdup(user);
	e->stage = stage;
	e->csrf = random_token();
	e->auth_generation = auth_generation;
	e->created = e->last = now;
	g_mutex_lock(&s->lock);
	if (g_hash_table_size(s->table) >= MAX_SESSIONS)
		drop_expired_locked(s, now);
	bool room = g_hash_table_size(s->table) < MAX_SESSIONS;
	if (room)
		g_hash_table_replace(s->table, key, e);
	g_mutex_unlock(&s->lock);
	if (room)
		return token;
	g_free(key);
	entry_free(e);
	g_free(token);
	return NULL;
}

bool mv_web_session_get(mv_web_sessions *s, const char *token, mv_web_session *out)
{
	memset(out, 0, sizeof *out);
	if (!token || !*token)
		return false;
	char *key = key_of(s, token);
	double now = mv_monotonic();
	g_mutex_lock(&s->lock);
	entry *e = g_hash_table_lookup(s->table, key);
	if (e && expired(s, e, now)) {
		g_hash_table_remove(s->table, key);
		e = NULL;
	}
	if (e) {
		e->last = now;
		out->user = g_strdup(e->user);
		out->stage = e->stage;
		out->csrf = g_strdup(e->csrf);
		out->auth_generation = e->auth_generation;
		out->failed_codes = e->failed_codes;
	}
	g_mutex_unlock(&s->lock);
	g_free(key);
	return e != NULL;
}

unsigned mv_web_session_failed_code(mv_web_sessions *s, const char *token)
{
	char *key = key_of(s, token);
	g_mutex_lock(&s->lock);
	entry *e = g_hash_table_lookup(s->table, key);
	unsigned n = e ? ++e->failed_codes : 0;
	g_mutex_unlock(&s->lock);
	g_free(key);
	return n;
}

void mv_web_session_set_generation(mv_web_sessions *s, const char *token, int64_t auth_generation)
{
	char *key = key_of(s, token);
	g_mutex_lock(&s->lock);
	entry *e = g_hash_table_lookup(s->table, key);
	if (e)
		e->auth_generation = auth_generation;
	g_mutex_unlock(&s->lock);
	g_free(key);
}

void mv_web_session_end(mv_web_sessions *s, const char *token)
{
	if (!token)
		return;
	char *key = key_of(s, token);
	g_mutex_lock(&s->lock);
	g_hash_table_remove(s->table, key);
	g_mutex_unlock(&s->lock);
	g_free(key);
}

void mv_web_session_clear(mv_web_session *ws)
{
	g_free(ws->user);
	if (ws->csrf)
		sodium_memzero(ws->csrf, strlen(ws->csrf));
	g_free(ws->csrf);
	memset(ws, 0, sizeof *ws);
}

/* Cookie: a=1; b=2 — RFC 6265's cookie-string; a value may be quoted. */
char *mv_web_cookie_value(const char *header, const char *name)
{
	if (!header || !name)
		return NULL;
	size_t n = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ';' || *p == '\t')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1;
			size_t vlen = len - n - 1;
			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
				v++, vlen -= 2;
			return g_strndup(v, vlen);
		}
		p += len;
	}
	return NULL;
}
