/* net/logon: the guard in front of every logon, one per process.
 *
 * Argon2id is deliberately slow (~0.1 s, 64 MiB), and a client program
 * sends its credentials with every request, so a verified password is
 * remembered as a keyed hash until the user's auth generation changes or a
 * few minutes pass.  Every server of the process (the API, Web Access,
 * IMAP) uses the same guard, so one penalty covers them all.  It also keeps
 * the active sessions GetActiveSessions lists.
 *
 * The penalty.  A failed logon counts against its address (an IPv4
 * address, or the /64 of an IPv6 one: one host is handed a whole /64),
 * against its account (the name asked for, keyed as users are looked up —
 * canonical caseless, so "Admin" and "ADMIN" are one account; a name nobody
 * has is an account too, so the penalty does not tell who exists), and
 * against the pair.  A success forgives exactly the failures of its pair:
 * they leave the address's and the account's counts, nothing else does.  So
 * a valid logon of a low-privilege user no longer wipes the guesses at the
 * admin from the same address, nor does one address's success wipe the
 * guesses at its account from others.
 *
 * Address: each failure doubles the delay, 0.25 s .. 8 s, and the attempts
 * of one address are taken one at a time, in arrival order, each only once
 * the delay of the last failure has run out — parallel connections gain
 * nothing.  The turn covers the cache lookup too, else a flood of guesses
 * could be compared with a cached password unhindered.  Waiting is
 * bounded: at most 64 attempts of an address wait at once and none longer
 * than 30 s.  One beyond either bound is answered as a failure after a
 * second, without its password being checked: it is no guess, so it is
 * neither counted nor audited (an attacker could otherwise write the audit
 * log at connection speed), only logged.  Unbounded waiting would let one
 * address pile up threads without end; 64 is more than a client program
 * opens at once, and their logons, answered from the cache, pass in
 * microseconds each.
 *
 * Account: rotating source addresses must not multiply the guesses at one
 * account, but an account penalty that every attempt must wait out would
 * let an attacker keep the admin out for as long as he keeps guessing, and
 * a queue everyone joins would put the admin behind every guess in flight.
 * So the account's penalty applies only to addresses that have failed
 * against that account before (and were not forgiven since): their attempts
 * at it are taken one at a time — the address with the fewest failures
 * against it first, so the most persistent guessers go last — each after
 * the account's own delay, doubling 0.25 s .. 2 s, below the address's 8 s:
 * the account is slowed, never shut.  An address that has never failed
 * against the account — the real admin at his desk — skips that queue and
 * is checked at once (its own address permitting), however many addresses
 * are guessing, so he gets in within his own verification time (plus, if
 * his password is not cached, the one check of it in flight: checks of one
 * user's password run one at a time).  The price is one guess per fresh
 * address before the account's pace catches it: an attacker holding N
 * addresses gets N guesses, no faster than one Argon2id check after the
 * other, then one every 2 s at most, where without the account's pace he
 * would get N every 8 s forever.  For IPv6 N can be large (a /48 is 65,536
 * /64s); a pace that applied to fresh addresses too would be the lockout
 * above, since the admin's address is one of them.  A legitimate user who
 * mistyped from his address waits among the guessers, ahead of those that
 * failed more often.
 *
 * Tables: addresses, accounts and pairs each keep at most 65,536 entries,
 * the least recently failed evicted first, and forget an entry 15 minutes
 * after its last failure.  An entry an attempt holds or waits for is never
 * evicted, so a table exceeds the bound by at most the threads waiting.
 * Accounts are kept as keyed hashes of fixed size, never as the name. */
#include "net/https.h"

#include <arpa/inet.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>

#define AUTH_CACHE_SECONDS 300.0
#define SESSION_FORGET_SECONDS 1800.0

#define FAILURE_FORGET_SECONDS 900.0
#define FAILURE_FIRST_DELAY 0.25
#define ADDRESS_MAX_DELAY 8.0
#define ACCOUNT_MAX_DELAY 2.0
#define TABLE_MAX_ENTRIES 65536u
#define ADDRESS_MAX_WAITING 64u
#define ACCOUNT_MAX_WAITING 64u
#define TURN_MAX_WAIT 30.0
#define REFUSED_ANSWER_DELAY 1.0
#define REFUSAL_LOG_SECONDS 60.0
/* The longest name that can name a user (users.c: 16 x 256 bytes); longer
 * ones are keyed by their bytes, unnormalised. */
#define MAX_NAME_BYTES 4096
#define ACCOUNT_HASH_BYTES 16

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

/* One address, one account or one (address, account) pair. */
typedef struct guard {
	char *key;
	unsigned count;          /* failures not forgiven */
	double last;             /* the last failure, or when the entry was made */
	double next_allowed;     /* no attempt it governs starts before */
	bool busy;               /* an attempt holds its turn */
	GQueue waiters;          /* waiter* */
	GList age_link;          /* in its table's age order */
} guard;

typedef struct guard_table {
	GHashTable *by_key;      /* guard->key -> guard* (owned) */
	GQueue age;              /* least recently failed first */
} guard_table;

/* An attempt waiting for a guard's turn; lives on the waiting thread's stack. */
typedef struct waiter {
	GList link;
	unsigned priority;       /* lower goes first */
	uint64_t seq;            /* then earlier */
} waiter;

struct mv_logon_attempt {
	char *address, *account, *pair;   /* the keys */
	guard *addr, *acct;               /* the turns held (acct: only when the account's pace applied) */
};

struct mv_logon {
	GMutex lock;
	GCond wake;                  /* a turn was released, a penalty recorded, the clock moved, shutdown */
	GCond verified;              /* a password check ended */
	guard_table addresses, accounts, pairs;
	uint64_t next_seq;
	mv_logon_clock clock;        /* NULL: mv_monotonic */
	void *clock_cls;
	unsigned refused;            /* answered unchecked since the last log line about them */
	double refusal_logged;
	GHashTable *auth_cache;      /* kind + casefolded user -> cached_auth* */
	GHashTable *verifying;       /* the same keys -> NULL: a check runs for it */
	GHashTable *sessions;        /* "protocol\nuser\nremote" -> session* */
	uint8_t cache_key[crypto_generichash_KEYBYTES];
	uint8_t account_key[crypto_generichash_KEYBYTES];
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

static void guard_free(gpointer p)
{
	guard *g = p;
	g_free(g->key);
	g_free(g);
}

static void table_init(guard_table *t)
{
	t->by_key = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, guard_free);
	g_queue_init(&t->age);
}

mv_logon *mv_logon_new(void)
{
	mv_logon *l = g_new0(mv_logon, 1);
	g_mutex_init(&l->lock);
	g_cond_init(&l->wake);
	g_cond_init(&l->verified);
	table_init(&l->addresses);
	table_init(&l->accounts);
	table_init(&l->pairs);
	l->refusal_logged = -REFUSAL_LOG_SECONDS;
	l->auth_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	l->verifying = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	l->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, session_free);
	randombytes_buf(l->cache_key, sizeof l->cache_key);
	randombytes_buf(l->account_key, sizeof l->account_key);
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
	g_hash_table_destroy(l->addresses.by_key);
	g_hash_table_destroy(l->accounts.by_key);
	g_hash_table_destroy(l->pairs.by_key);
	g_hash_table_destroy(l->auth_cache);
	g_hash_table_destroy(l->verifying);
	g_hash_table_destroy(l->sessions);
	sodium_memzero(l->cache_key, sizeof l->cache_key);
	sodium_memzero(l->account_key, sizeof l->account_key);
	g_cond_clear(&l->verified);
	g_cond_clear(&l->wake);
	g_mutex_clear(&l->lock);
	g_free(l);
}

/* ---- the clock -------------------------------------------------------------------- */

/* Caller holds the lock. */
static double now_of(mv_logon *l)
{
	return l->clock ? l->clock(l->clock_cls) : mv_monotonic();
}

void mv_logon_set_clock(mv_logon *l, mv_logon_clock clock, void *cls)
{
	g_mutex_lock(&l->lock);
	l->clock = clock;
	l->clock_cls = cls;
	g_cond_broadcast(&l->wake);
	g_mutex_unlock(&l->lock);
}

/* Caller holds the lock.  Sleeps until woken or for seconds of real time;
 * a test's clock moving wakes everyone, so waits measured in its seconds
 * end when it passes their time. */
static void sleep_locked(mv_logon *l, double seconds)
{
	gint64 us = (gint64)(MIN(seconds, 3600.0) * G_USEC_PER_SEC) + 1;
	g_cond_wait_until(&l->wake, &l->lock, g_get_monotonic_time() + us);
}

/* Sleeps until the guard's clock reads when, or until shutdown. */
static void wait_until(mv_logon *l, double when)
{
	g_mutex_lock(&l->lock);
	double left;
	while (!l->stopping && (left = when - now_of(l)) > 0)
		sleep_locked(l, left);
	g_mutex_unlock(&l->lock);
}

static void wait_for(mv_logon *l, double seconds)
{
	g_mutex_lock(&l->lock);
	double when = now_of(l) + seconds;
	g_mutex_unlock(&l->lock);
	wait_until(l, when);
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

/* ---- keys: what an attempt counts against ------------------------------------------ */

char *mv_client_address_key(const char *remote)
{
	char text[INET6_ADDRSTRLEN + 8];
	size_t len = strcspn(remote, "%");  /* a zone index names no other host */
	struct in_addr v4;
	struct in6_addr v6;
	if (len >= INET6_ADDRSTRLEN)
		return g_strndup(remote, 256);
	memcpy(text, remote, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, &v4) == 1 && inet_ntop(AF_INET, &v4, text, sizeof text))
		return g_strdup(text);
	if (inet_pton(AF_INET6, text, &v6) != 1)
		return g_strndup(remote, 256);
	if (IN6_IS_ADDR_V4MAPPED(&v6)) {
		memcpy(&v4, &v6.s6_addr[12], sizeof v4);
		if (inet_ntop(AF_INET, &v4, text, sizeof text))
			return g_strdup(text);
	}
	memset(&v6.s6_addr[8], 0, 8);
	if (!inet_ntop(AF_INET6, &v6, text, sizeof text))
		return g_strndup(remote, 256);
	return g_strdup_printf("%s/64", text);
}

/* A keyed hash of the account's lookup key: fixed size whatever was sent,
 * and no user name (nor a password typed into the name field) kept. */
static char *account_key(mv_logon *l, const char *name)
{
	char *key = strlen(name) <= MAX_NAME_BYTES ? mv_user_name_key(name) : NULL;
	/* Names that cannot be looked up name nobody: their bytes, marked so
	 * they never meet a normalised key. */
	char *material = key ? g_strconcat("k", key, NULL) : g_strconcat("b", name, NULL);
	uint8_t h[ACCOUNT_HASH_BYTES];
	crypto_generichash(h, sizeof h, (const uint8_t *)material, strlen(material), l->account_key,
	                   sizeof l->account_key);
	sodium_memzero(material, strlen(material));
	g_free(material);
	g_free(key);
	char hex[2 * ACCOUNT_HASH_BYTES + 1];
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	return g_strdup(hex);
}

static mv_logon_attempt *attempt_new(mv_logon *l, const char *name, const char *remote)
{
	mv_logon_attempt *a = g_new0(mv_logon_attempt, 1);
	a->address = mv_client_address_key(remote);
	a->account = account_key(l, name);
	a->pair = g_strdup_printf("%s %s", a->address, a->account);
	return a;
}

static void attempt_free(mv_logon_attempt *a)
{
	g_free(a->address);
	g_free(a->account);
	g_free(a->pair);
	g_free(a);
}

/* ---- the tables --------------------------------------------------------------------- */

static bool pinned(const guard *g)
{
	return g->busy || g->waiters.length > 0;
}

static void guard_remove(guard_table *t, guard *g)
{
	g_queue_unlink(&t->age, &g->age_link);
	g_hash_table_remove(t->by_key, g->key);
}

/* Drops what nothing holds and no failure keeps. */
static void guard_prune(guard_table *t, guard *g)
{
	if (!g->count && !pinned(g))
		guard_remove(t, g);
}

static bool expired(const guard *g, double now)
{
	return now - g->last > FAILURE_FORGET_SECONDS;
}

/* The age order is the order of last failures, so the expired ones are at
 * its head. */
static void forget_expired(guard_table *t, double now)
{
	GList *n = t->age.head;
	while (n && expired(n->data, now)) {
		GList *next = n->next;
		if (!pinned(n->data))
			guard_remove(t, n->data);
		n = next;
	}
}

static guard *table_find(guard_table *t, const char *key, double now)
{
	forget_expired(t, now);
	guard *g = g_hash_table_lookup(t->by_key, key);
	if (g && expired(g, now)) {    /* held while it expired: a fresh start */
		g->count = 0;
		g->next_allowed = 0;
	}
	return g;
}

static void evict_oldest(guard_table *t)
{
	for (GList *n = t->age.head; n; n = n->next)
		if (!pinned(n->data)) {
			guard_remove(t, n->data);
			return;
		}
}

static guard *table_get(guard_table *t, const char *key, double now)
{
	guard *g = table_find(t, key, now);
	if (g)
		return g;
	if (g_hash_table_size(t->by_key) >= TABLE_MAX_ENTRIES)
		evict_oldest(t);
	g = g_new0(guard, 1);
	g->key = g_strdup(key);
	g->last = now;
	g->age_link.data = g;
	g_queue_init(&g->waiters);
	g_queue_push_tail_link(&t->age, &g->age_link);
	g_hash_table_insert(t->by_key, g->key, g);
	return g;
}

static double failure_delay(unsigned count, double max)
{
	double d = FAILURE_FIRST_DELAY;
	for (unsigned i = 1; i < count && d < max; i++)
		d *= 2;
	return MIN(d, max);
}

static void guard_failed(guard_table *t, guard *g, double now, double max_delay)
{
	if (g->count < UINT_MAX)
		g->count++;
	g->last = now;
	g->next_allowed = now + failure_delay(g->count, max_delay);
	g_queue_unlink(&t->age, &g->age_link);
	g_queue_push_tail_link(&t->age, &g->age_link);
}

static void guard_forgive(guard *g, unsigned n)
{
	g->count -= MIN(n, g->count);
	if (!g->count)
		g->next_allowed = 0;
}

/* ---- turns ------------------------------------------------------------------------ */

static bool first_in_line(const guard *g, const waiter *w)
{
	for (GList *n = g->waiters.head; n; n = n->next) {
		const waiter *o = n->data;
		if (o->priority < w->priority || (o->priority == w->priority && o->seq < w->seq))
			return false;
	}
	return true;
}

/* Caller holds the lock.  Queues w for g's turn and waits until w is first
 * in line, the turn is free and g's delay has run out; then takes the turn.
 * false (not queued any more) at the deadline or on shutdown. */
static bool await_turn(mv_logon *l, guard *g, waiter *w, double deadline)
{
	w->link.data = w;
	g_queue_push_tail_link(&g->waiters, &w->link);
	bool got = false;
	while (!l->stopping) {
		double now = now_of(l);
		bool next = !g->busy && first_in_line(g, w);
		if (next && now >= g->next_allowed) {
			got = true;
			break;
		}
		if (now >= deadline)
			break;
		sleep_locked(l, (next ? MIN(deadline, g->next_allowed) : deadline) - now);
	}
	g_queue_unlink(&g->waiters, &w->link);
	if (got)
		g->busy = true;
	else
		g_cond_broadcast(&l->wake);   /* who was behind may be first now */
	return got;
}

static void release_turn(guard_table *t, guard *g)
{
	g->busy = false;
	guard_prune(t, g);
}

/* Caller holds the lock.  NULL when a's turns are taken, else why not. */
static const char *take_turns(mv_logon *l, mv_logon_attempt *a)
{
	if (l->stopping)
		return "the server is stopping";
	double deadline = now_of(l) + TURN_MAX_WAIT;
	guard *addr = table_get(&l->addresses, a->address, now_of(l));
	if (addr->waiters.length >= ADDRESS_MAX_WAITING) {
		guard_prune(&l->addresses, addr);
		return "too many logons of this address waiting";
	}
	waiter w = { .seq = l->next_seq++ };
	if (!await_turn(l, addr, &w, deadline)) {
		guard_prune(&l->addresses, addr);
		return "its turn did not come within 30 s";
	}
	a->addr = addr;
	guard *pair = table_find(&l->pairs, a->pair, now_of(l));
	if (!pair || !pair->count)
		return NULL;   /* never failed against this account: not under its pace */
	guard *acct = table_get(&l->accounts, a->account, now_of(l));
	const char *why = NULL;
	waiter v = { .priority = pair->count, .seq = l->next_seq++ };
	if (acct->waiters.length >= ACCOUNT_MAX_WAITING)
		why = "too many logons waiting for this account";
	else if (!await_turn(l, acct, &v, deadline))
		why = "its turn at the account did not come within 30 s";
	if (!why) {
		a->acct = acct;
		return NULL;
	}
	guard_prune(&l->accounts, acct);
	release_turn(&l->addresses, addr);
	a->addr = NULL;
	g_cond_broadcast(&l->wake);
	return why;
}

/* At most one log line a minute about attempts answered unchecked. */
static void note_refusal(mv_logon *l, const char *address, const char *why)
{
	g_mutex_lock(&l->lock);
	bool quiet = l->stopping;
	unsigned n = ++l->refused;
	double now = now_of(l);
	bool say = !quiet && now - l->refusal_logged >= REFUSAL_LOG_SECONDS;
	if (say) {
		l->refused = 0;
		l->refusal_logged = now;
	}
	g_mutex_unlock(&l->lock);
	if (say)
		mv_log_warn("logon guard: %u logon attempt(s) answered as failed without a check since the last such "
		            "message, the latest from %s: %s", n, address, why);
}

mv_logon_attempt *mv_logon_begin(mv_logon *l, const char *name, const char *remote)
{
	mv_logon_attempt *a = attempt_new(l, name, remote);
	g_mutex_lock(&l->lock);
	const char *why = take_turns(l, a);
	g_mutex_unlock(&l->lock);
	if (!why)
		return a;
	note_refusal(l, a->address, why);
	attempt_free(a);
	return NULL;
}

/* Caller holds the lock.  Returns when the failure's answer may go out. */
static double record_failure_locked(mv_logon *l, const mv_logon_attempt *a)
{
	double now = now_of(l);
	guard *addr = table_get(&l->addresses, a->address, now);
	guard_failed(&l->addresses, addr, now, ADDRESS_MAX_DELAY);
	guard_failed(&l->accounts, table_get(&l->accounts, a->account, now), now, ACCOUNT_MAX_DELAY);
	guard_failed(&l->pairs, table_get(&l->pairs, a->pair, now), now, ADDRESS_MAX_DELAY);
	g_cond_broadcast(&l->wake);
	return addr->next_allowed;
}

/* Caller holds the lock.  The pair's failures leave its address's and its
 * account's counts; no others do. */
static void forgive_pair_locked(mv_logon *l, const mv_logon_attempt *a)
{
	double now = now_of(l);
	guard *pair = table_find(&l->pairs, a->pair, now);
	if (!pair)
		return;
	unsigned n = pair->count;
	guard_remove(&l->pairs, pair);
	guard *addr = table_find(&l->addresses, a->address, now);
	if (addr) {
		guard_forgive(addr, n);
		guard_prune(&l->addresses, addr);
	}
	guard *acct = table_find(&l->accounts, a->account, now);
	if (acct) {
		guard_forgive(acct, n);
		guard_prune(&l->accounts, acct);
	}
	g_cond_broadcast(&l->wake);
}

double mv_logon_end(mv_logon *l, mv_logon_attempt *a, mv_logon_result outcome)
{
	g_mutex_lock(&l->lock);
	double answer = now_of(l);
	if (outcome == MV_LOGON_OK)
		forgive_pair_locked(l, a);
	else if (outcome == MV_LOGON_FAILED)
		answer = record_failure_locked(l, a);
	if (a->acct)
		release_turn(&l->accounts, a->acct);
	if (a->addr)
		release_turn(&l->addresses, a->addr);
	g_cond_broadcast(&l->wake);
	g_mutex_unlock(&l->lock);
	attempt_free(a);
	return answer;
}

double mv_logon_ready_at(mv_logon *l, const char *name, const char *remote)
{
	mv_logon_attempt *a = attempt_new(l, name, remote);
	g_mutex_lock(&l->lock);
	double now = now_of(l), when = 0;
	guard *addr = table_find(&l->addresses, a->address, now);
	if (addr && addr->next_allowed > now)
		when = addr->next_allowed;
	guard *pair = table_find(&l->pairs, a->pair, now);
	guard *acct = pair && pair->count ? table_find(&l->accounts, a->account, now) : NULL;
	if (acct && acct->next_allowed > now)
		when = MAX(when, acct->next_allowed);
	g_mutex_unlock(&l->lock);
	attempt_free(a);
	return when;
}

void mv_logon_table_sizes(mv_logon *l, size_t *addresses, size_t *accounts, size_t *pairs)
{
	g_mutex_lock(&l->lock);
	double now = now_of(l);
	forget_expired(&l->addresses, now);
	forget_expired(&l->accounts, now);
	forget_expired(&l->pairs, now);
	*addresses = g_hash_table_size(l->addresses.by_key);
	*accounts = g_hash_table_size(l->accounts.by_key);
	*pairs = g_hash_table_size(l->pairs.by_key);
	g_mutex_unlock(&l->lock);
}

/* ---- failures ------------------------------------------------------------------------ */

static void audit_failure(mv_instance *inst, const char *name, const char *remote, const char *details)
{
	GError *err = NULL;
	if (mv_audit_append(inst, name ? name : "", remote, "UserLogonFailed", false, details, &err) < 0) {
		mv_log_error("audit log: cannot record a failed logon from %s: %s", remote, err->message);
		g_error_free(err);
	}
}

static void audit_and_hold(mv_logon *l, mv_instance *inst, const char *name, const char *remote,
                           const char *service, const char *reason, double answer)
{
	char *details = g_strdup_printf("%s: %s", service, reason);
	audit_failure(inst, name, remote, details);
	g_free(details);
	wait_until(l, answer);
}

void mv_logon_failed(mv_logon *l, mv_instance *inst, const char *name, const char *remote, const char *service,
                     const char *reason)
{
	mv_logon_attempt *a = attempt_new(l, name, remote);
	g_mutex_lock(&l->lock);
	double answer = record_failure_locked(l, a);
	g_mutex_unlock(&l->lock);
	attempt_free(a);
	audit_and_hold(l, inst, name, remote, service, reason, answer);
}

/* ---- checking credentials ------------------------------------------------------------ */

static int verify(mv_instance *inst, const char *name, const char *password, mv_logon_kind kind, mv_user **u_r,
                  GError **error)
{
	if (kind == MV_LOGON_CLIENT)
		return mv_user_authenticate_client(inst, name, password, u_r, error);
	return mv_user_authenticate(inst, name, password, u_r, error);
}

/* The check itself, inside the attempt's turn: the cache, else Argon2id.
 * *why on failure (for the audit log). */
static mv_logon_result check_password(mv_logon *l, mv_instance *inst, const char *name, const char *password,
                                      mv_logon_kind kind, const char *remote, mv_user **user_r, char **why)
{
	GError *err = NULL;
	mv_user *u = mv_user_get(inst, name, NULL);
	if (u && cache_hit(l, kind, u, password)) {
		*user_r = u;
		return MV_LOGON_OK;
	}
	char *verifying = u ? g_strdup(u->name) : NULL;
	mv_user_free(u);
	u = NULL;
	int rc = verify(inst, name, password, kind, &u, &err);
	if (rc == 0)
		cache_put(l, kind, u, password);
	if (verifying)
		verify_done(l, kind, verifying);
	g_free(verifying);
	if (rc == 0) {
		*user_r = u;
		return MV_LOGON_OK;
	}
	mv_user_free(u);
	mv_logon_result outcome = err->code == MV_ERR_AUTH ? MV_LOGON_FAILED : MV_LOGON_ERROR;
	if (outcome == MV_LOGON_ERROR)
		mv_log_error("authentication of %s from %s: %s", name, remote, err->message);
	*why = g_strdup(err->message);
	g_error_free(err);
	return outcome;
}

mv_logon_result mv_logon_check(mv_logon *l, mv_instance *inst, const char *name, const char *password,
                               mv_logon_kind kind, const char *remote, const char *service, mv_user **user_r)
{
	mv_logon_attempt *a = mv_logon_begin(l, name, remote);
	if (!a) {
		wait_for(l, REFUSED_ANSWER_DELAY);
		return MV_LOGON_FAILED;
	}
	mv_user *u = NULL;
	char *why = NULL;
	mv_logon_result outcome = check_password(l, inst, name, password, kind, remote, &u, &why);
	double answer = mv_logon_end(l, a, outcome);
	if (outcome == MV_LOGON_FAILED)
		audit_and_hold(l, inst, name, remote, service, why, answer);
	g_free(why);
	if (outcome == MV_LOGON_OK)
		*user_r = u;
	return outcome;
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
