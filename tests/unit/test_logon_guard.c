/* Unit tests for the logon guard's tables and turns (net/logon.c), on a
 * clock the test moves: the address's delay doubling to 8 s, the account's
 * to 2 s and only for addresses that failed against it, a success
 * forgiving exactly its pair, names keyed as users are looked up, IPv6 by
 * its /64, attempts of one address (and of suspects at one account) taken
 * one at a time with the bounds on waiting, and the tables' bound and
 * expiry.  Threads stand for parallel connections; a short real sleep only
 * shows that one is still waiting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "net/https.h"

#define EPS 1e-9

/* ---- the test's clock ----------------------------------------------------------- */

static GMutex clock_lock;
static double fake_now;

static double fake_clock(void *cls)
{
	g_mutex_lock(&clock_lock);
	double t = fake_now;
	g_mutex_unlock(&clock_lock);
	return t;
}

static double now(void)
{
	return fake_clock(NULL);
}

static void advance(mv_logon *l, double seconds)
{
	g_mutex_lock(&clock_lock);
	fake_now += seconds;
	g_mutex_unlock(&clock_lock);
	mv_logon_set_clock(l, fake_clock, NULL);
}

static mv_logon *guard_new(void)
{
	mv_logon *l = mv_logon_new();
	g_mutex_lock(&clock_lock);
	fake_now = 1000.0;
	g_mutex_unlock(&clock_lock);
	mv_logon_set_clock(l, fake_clock, NULL);
	return l;
}

/* ---- steps ------------------------------------------------------------------------ */

/* Moves the clock to when name from remote is let in, then runs one attempt
 * with the outcome; returns how long a failure's answer is held. */
static double attempt(mv_logon *l, const char *name, const char *remote, mv_logon_result outcome)
{
	double ready = mv_logon_ready_at(l, name, remote);
	if (ready > now())
		advance(l, ready - now());
	mv_logon_attempt *a = mv_logon_begin(l, name, remote);
	assert_non_null(a);
	double t = now();
	return mv_logon_end(l, a, outcome) - t;
}

static double failed(mv_logon *l, const char *name, const char *remote)
{
	return attempt(l, name, remote, MV_LOGON_FAILED);
}

static void succeed(mv_logon *l, const char *name, const char *remote)
{
	assert_true(attempt(l, name, remote, MV_LOGON_OK) < EPS);
}

/* How long from now until name from remote would be let in. */
static double wait_of(mv_logon *l, const char *name, const char *remote)
{
	double r = mv_logon_ready_at(l, name, remote);
	return r > now() ? r - now() : 0;
}

static void assert_seconds(double got, double want)
{
	if (got < want - 1e-6 || got > want + 1e-6)
		fail_msg("%.6f s, expected %.6f s", got, want);
}

/* ---- delays ------------------------------------------------------------------------ */

static void test_address_delay_doubles_to_8s(void **state)
{
	mv_logon *l = guard_new();
	const double want[] = { 0.25, 0.5, 1, 2, 4, 8, 8, 8 };
	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		/* Any account: the address's count is of all its failures. */
		char name[32];
		g_snprintf(name, sizeof name, "user%zu", i);
		assert_seconds(failed(l, name, "192.0.2.1"), want[i]);
		assert_seconds(wait_of(l, "someone-else", "192.0.2.1"), want[i]);
	}
	assert_seconds(wait_of(l, "user0", "192.0.2.2"), 0);
	mv_logon_free(&l);
}

/* Many addresses, one failure each, at one account: the account's delay
 * doubles to 2 s and applies to those addresses only. */
static void test_account_delay_capped_and_only_for_its_guessers(void **state)
{
	mv_logon *l = guard_new();
	const double want[] = { 0.25, 0.5, 1, 2, 2, 2, 2 };
	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		char addr[32];
		g_snprintf(addr, sizeof addr, "198.51.100.%zu", i + 1);
		/* Its own first failure: the address's delay. */
		assert_seconds(failed(l, "admin", addr), 0.25);
		/* Its next attempt at admin waits for the account too. */
		assert_seconds(wait_of(l, "admin", addr), want[i]);
		/* The first address has failed against admin too: same pace. */
		assert_seconds(wait_of(l, "admin", "198.51.100.1"), want[i]);
		/* Not at other accounts, nor for an address that never failed. */
		assert_seconds(wait_of(l, "other", addr), 0.25);
		assert_seconds(wait_of(l, "admin", "203.0.113.9"), 0);
	}
	mv_logon_free(&l);
}

/* The alternating probe: a wrong admin guess, a valid logon of another
 * user from the same address, again.  The admin guesses keep doubling. */
static void test_other_accounts_success_forgives_nothing(void **state)
{
	mv_logon *l = guard_new();
	const double want[] = { 0.25, 0.5, 1, 2, 4, 8, 8 };
	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		assert_seconds(failed(l, "admin", "192.0.2.10"), want[i]);
		succeed(l, "lowly", "192.0.2.10");
		assert_seconds(wait_of(l, "admin", "192.0.2.10"), 0);  /* the success waited it out */
	}
	/* Its own success forgives admin's failures from there. */
	succeed(l, "admin", "192.0.2.10");
	assert_seconds(failed(l, "admin", "192.0.2.10"), 0.25);
	mv_logon_free(&l);
}

/* A success forgives its pair: its failures leave the address's and the
 * account's counts, the failures of other pairs stay. */
static void test_success_forgives_only_its_pair(void **state)
{
	mv_logon *l = guard_new();
	failed(l, "admin", "192.0.2.1");
	failed(l, "admin", "192.0.2.1");
	failed(l, "admin", "192.0.2.2");
	failed(l, "bob", "192.0.2.3");
	failed(l, "bob", "192.0.2.3");
	/* admin's count is 3; 192.0.2.1 logs in as admin. */
	succeed(l, "admin", "192.0.2.1");
	assert_seconds(wait_of(l, "admin", "192.0.2.1"), 0);
	assert_seconds(failed(l, "anyone", "192.0.2.1"), 0.25);
	/* admin's count is back to 1 (192.0.2.2's): one more failure from a
	 * new address makes 2, a 0.5 s pace — not 0.25 s (all forgiven), not
	 * 2 s (nothing forgiven). */
	assert_seconds(failed(l, "admin", "192.0.2.4"), 0.25);
	assert_seconds(wait_of(l, "admin", "192.0.2.4"), 0.5);
	assert_seconds(wait_of(l, "admin", "192.0.2.2"), 0.5);
	/* bob's failures from 192.0.2.3 are untouched. */
	assert_seconds(wait_of(l, "carol", "192.0.2.3"), 0);  /* its delay ran out meanwhile */
	assert_seconds(failed(l, "bob", "192.0.2.3"), 1);
	mv_logon_free(&l);
}

static void test_failures_expire(void **state)
{
	mv_logon *l = guard_new();
	for (int i = 0; i < 6; i++)
		failed(l, "admin", "192.0.2.1");
	size_t a, b, c;
	mv_logon_table_sizes(l, &a, &b, &c);
	assert_true(a == 1 && b == 1 && c == 1);
	advance(l, 600);
	assert_seconds(failed(l, "admin", "192.0.2.1"), 8);
	advance(l, 901);
	mv_logon_table_sizes(l, &a, &b, &c);
	assert_true(a == 0 && b == 0 && c == 0);
	assert_seconds(failed(l, "admin", "192.0.2.1"), 0.25);
	/* Successes from clean addresses leave nothing behind. */
	succeed(l, "admin", "192.0.2.77");
	succeed(l, "nobody-at-all", "192.0.2.78");
	mv_logon_table_sizes(l, &a, &b, &c);
	assert_true(a == 1 && b == 1 && c == 1);
	mv_logon_free(&l);
}

/* ---- keys -------------------------------------------------------------------------- */

static void test_accounts_keyed_as_users_are_looked_up(void **state)
{
	mv_logon *l = guard_new();
	/* Case: one account, so admin's own success forgives ADMIN's failure. */
	failed(l, "ADMIN", "192.0.2.1");
	succeed(l, "admin", "192.0.2.1");
	assert_seconds(failed(l, "x", "192.0.2.1"), 0.25);
	/* Canonical equivalence and Unicode case: J\u00fcrgen, JU\u0308RGEN. */
	failed(l, "J\xc3\xbcrgen", "192.0.2.2");
	succeed(l, "JU\xcc\x88RGEN", "192.0.2.2");
	assert_seconds(failed(l, "x", "192.0.2.2"), 0.25);
	/* The Kelvin sign folds to k, as the lookup has it. */
	failed(l, "\xe2\x84\xaa" "ate", "192.0.2.3");
	succeed(l, "kate", "192.0.2.3");
	assert_seconds(failed(l, "x", "192.0.2.3"), 0.25);
	/* Different names are different accounts, known or not. */
	failed(l, "nosuchuser", "192.0.2.4");
	succeed(l, "nosuchuser2", "192.0.2.4");
	assert_seconds(failed(l, "x", "192.0.2.4"), 0.5);
	/* Not UTF-8, or huge: counted as accounts of their own. */
	failed(l, "bad\xff", "192.0.2.5");
	assert_seconds(wait_of(l, "bad\xff", "192.0.2.5"), 0.25);
	char *huge = g_strnfill(100000, 'a');
	assert_seconds(failed(l, huge, "192.0.2.6"), 0.25);
	succeed(l, huge, "192.0.2.6");
	assert_seconds(failed(l, "x", "192.0.2.6"), 0.25);
	g_free(huge);
	mv_logon_free(&l);
}

static void test_addresses_ipv6_by_64(void **state)
{
	mv_logon *l = guard_new();
	failed(l, "admin", "2001:db8:1:2::1");
	assert_seconds(wait_of(l, "x", "2001:db8:1:2:ffff:ffff:ffff:fffe"), 0.25);
	assert_seconds(wait_of(l, "x", "2001:DB8:1:2:0:0:0:77"), 0.25);
	assert_seconds(wait_of(l, "x", "2001:db8:1:3::1"), 0);
	/* IPv4-mapped is the IPv4 address; a zone index is no other host. */
	failed(l, "admin", "::ffff:192.0.2.7");
	assert_seconds(wait_of(l, "x", "192.0.2.7"), 0.25);
	assert_seconds(wait_of(l, "x", "192.0.2.8"), 0);
	failed(l, "admin", "fe80::1%eth0");
	assert_seconds(wait_of(l, "x", "fe80::2%eth1"), 0.25);
	/* Whatever the server could not name is one address. */
	failed(l, "admin", "unknown");
	assert_seconds(wait_of(l, "x", "unknown"), 0.25);
	mv_logon_free(&l);
}

/* ---- bounds ------------------------------------------------------------------------- */

static void test_tables_bounded_oldest_evicted(void **state)
{
	mv_logon *l = guard_new();
	const unsigned n = 65536 + 100;
	for (unsigned i = 0; i < n; i++) {
		char addr[64], name[32];
		/* Distinct /64s, distinct accounts: one entry in each table. */
		g_snprintf(addr, sizeof addr, "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		g_snprintf(name, sizeof name, "name%u", i);
		mv_logon_attempt *a = mv_logon_begin(l, name, addr);
		assert_non_null(a);
		mv_logon_end(l, a, MV_LOGON_FAILED);
		if (i % 1000 == 0)
			advance(l, 0.001);
	}
	size_t a, b, c;
	mv_logon_table_sizes(l, &a, &b, &c);
	assert_int_equal(a, 65536);
	assert_int_equal(b, 65536);
	assert_int_equal(c, 65536);
	/* The oldest went, the newest stayed. */
	assert_seconds(wait_of(l, "x", "2001:db8:0:0::1"), 0);
	assert_true(wait_of(l, "x", "2001:db8:1:63::1") > 0);
	mv_logon_free(&l);
}

/* ---- turns --------------------------------------------------------------------------- */

typedef struct runner {
	mv_logon *l;
	const char *name, *remote;
	mv_logon_attempt *got;
	gint done;
	GThread *thread;
} runner;

static gpointer run_begin(gpointer p)
{
	runner *r = p;
	r->got = mv_logon_begin(r->l, r->name, r->remote);
	g_atomic_int_set(&r->done, 1);
	return NULL;
}

static void start(runner *r, mv_logon *l, const char *name, const char *remote)
{
	*r = (runner){ .l = l, .name = name, .remote = remote };
	r->thread = g_thread_new("begin", run_begin, r);
}

static bool finished(runner *r)
{
	return g_atomic_int_get(&r->done) != 0;
}

/* Waits (real time, bounded) for r to have returned from begin. */
static void join(runner *r)
{
	for (int i = 0; i < 2000 && !finished(r); i++)
		g_usleep(5000);
	assert_true(finished(r));
	g_thread_join(r->thread);
	r->thread = NULL;
}

static void still_waiting(runner *r)
{
	g_usleep(100000);
	assert_false(finished(r));
}

static void test_one_attempt_of_an_address_at_a_time(void **state)
{
	mv_logon *l = guard_new();
	mv_logon_attempt *first = mv_logon_begin(l, "admin", "192.0.2.1");
	assert_non_null(first);
	runner second;
	start(&second, l, "guess", "192.0.2.1");
	still_waiting(&second);
	/* Another address is not held up. */
	mv_logon_attempt *other = mv_logon_begin(l, "admin", "192.0.2.2");
	assert_non_null(other);
	mv_logon_end(l, other, MV_LOGON_OK);
	/* The first fails: the second waits out its delay too. */
	mv_logon_end(l, first, MV_LOGON_FAILED);
	still_waiting(&second);
	advance(l, 0.2);
	still_waiting(&second);
	advance(l, 0.06);
	join(&second);
	assert_non_null(second.got);
	mv_logon_end(l, second.got, MV_LOGON_ERROR);  /* an error counts nothing */
	assert_seconds(failed(l, "x", "192.0.2.1"), 0.5);
	mv_logon_free(&l);
}

/* Suspects at one account take turns, the fewest failures first; an
 * address that never failed against it passes meanwhile. */
static void test_account_turns_for_its_guessers(void **state)
{
	mv_logon *l = guard_new();
	failed(l, "admin", "192.0.2.1");
	failed(l, "admin", "192.0.2.2");
	failed(l, "admin", "192.0.2.2");
	failed(l, "admin", "192.0.2.3");
	advance(l, 10);
	mv_logon_attempt *holder = mv_logon_begin(l, "admin", "192.0.2.1");
	assert_non_null(holder);
	runner two, three;
	start(&two, l, "admin", "192.0.2.2");      /* 2 failures against admin */
	still_waiting(&two);
	start(&three, l, "admin", "192.0.2.3");    /* 1 failure: goes first */
	still_waiting(&three);
	/* A clean address is not queued behind them. */
	mv_logon_attempt *clean = mv_logon_begin(l, "admin", "192.0.2.50");
	assert_non_null(clean);
	mv_logon_end(l, clean, MV_LOGON_OK);
	mv_logon_end(l, holder, MV_LOGON_FAILED);   /* admin's count 5: 2 s pace */
	still_waiting(&three);
	advance(l, 2);
	join(&three);
	assert_non_null(three.got);
	still_waiting(&two);
	mv_logon_end(l, three.got, MV_LOGON_FAILED);
	still_waiting(&two);
	advance(l, 2);
	join(&two);
	assert_non_null(two.got);
	mv_logon_end(l, two.got, MV_LOGON_OK);
	mv_logon_free(&l);
}

static void test_waiting_bounded(void **state)
{
	mv_logon *l = guard_new();
	mv_logon_attempt *holder = mv_logon_begin(l, "admin", "192.0.2.1");
	assert_non_null(holder);
	/* Too long: answered unchecked after 30 s. */
	runner late;
	start(&late, l, "admin", "192.0.2.1");
	still_waiting(&late);
	advance(l, 29);
	still_waiting(&late);
	advance(l, 1.5);
	join(&late);
	assert_null(late.got);
	/* Too many: 64 may wait, the 65th is answered at once. */
	runner r[64];
	for (size_t i = 0; i < G_N_ELEMENTS(r); i++)
		start(&r[i], l, "admin", "192.0.2.1");
	g_usleep(200000);
	for (size_t i = 0; i < G_N_ELEMENTS(r); i++)
		assert_false(finished(&r[i]));
	assert_null(mv_logon_begin(l, "admin", "192.0.2.1"));
	/* They get their turns one by one. */
	mv_logon_end(l, holder, MV_LOGON_OK);
	for (size_t done = 0; done < G_N_ELEMENTS(r);) {
		size_t k = G_N_ELEMENTS(r);
		for (int spin = 0; spin < 2000 && k == G_N_ELEMENTS(r); spin++) {
			for (size_t i = 0; i < G_N_ELEMENTS(r) && k == G_N_ELEMENTS(r); i++)
				if (r[i].thread && finished(&r[i]))
					k = i;
			if (k == G_N_ELEMENTS(r))
				g_usleep(2000);
		}
		assert_true(k < G_N_ELEMENTS(r));
		join(&r[k]);
		assert_non_null(r[k].got);
		mv_logon_end(l, r[k].got, MV_LOGON_OK);
		done++;
	}
	mv_logon_free(&l);
}

static void test_stop_ends_waits(void **state)
{
	mv_logon *l = guard_new();
	mv_logon_attempt *holder = mv_logon_begin(l, "admin", "192.0.2.1");
	runner waiting;
	start(&waiting, l, "admin", "192.0.2.1");
	still_waiting(&waiting);
	mv_logon_stop(l);
	join(&waiting);
	assert_null(waiting.got);
	assert_null(mv_logon_begin(l, "admin", "192.0.2.9"));
	mv_logon_end(l, holder, MV_LOGON_OK);
	mv_logon_free(&l);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_delay_doubles_to_8s),
		cmocka_unit_test(test_account_delay_capped_and_only_for_its_guessers),
		cmocka_unit_test(test_other_accounts_success_forgives_nothing),
		cmocka_unit_test(test_success_forgives_only_its_pair),
		cmocka_unit_test(test_failures_expire),
		cmocka_unit_test(test_accounts_keyed_as_users_are_looked_up),
		cmocka_unit_test(test_addresses_ipv6_by_64),
		cmocka_unit_test(test_tables_bounded_oldest_evicted),
		cmocka_unit_test(test_one_attempt_of_an_address_at_a_time),
		cmocka_unit_test(test_account_turns_for_its_guessers),
		cmocka_unit_test(test_waiting_bounded),
		cmocka_unit_test(test_stop_ends_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
