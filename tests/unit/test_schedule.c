/* test_schedule: when a job is due (jobs/schedule.c).
 *
 * The tables hold hand-computed answers, written as UTC text: every kind,
 * the ends of months (the 31st in 30-day months, February in common and
 * leap years, Last), weeks across a year's end and across the UTC date
 * line of the zone, interval slots aligned to local midnight in zones
 * whose offset is not whole hours, and the 2026 transitions of
 * Europe/Berlin (Mar 29, Oct 25), America/New_York (Mar 8, Nov 1) and
 * America/Havana (which changes at midnight, so a day's 00:00 is skipped
 * or shown twice).  Transition instants were read from `zdump -v -c
 * 2026,2027`.
 *
 * Then a year-long check against an oracle that does not share the code's
 * method: it walks 2026 in 5-minute steps (every transition and every
 * expected run of these zones falls on one), asks GLib's GDateTime what
 * the clock shows at each step, and applies the rules of schedule.h
 * literally — an interval job is due where the clock shows a slot or
 * jumps forward over one; a calendar job at the first step whose clock
 * shows its day and time or later.  The code's runs must be exactly the
 * oracle's, and an interval's gaps at most the interval plus an hour. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jobs/schedule.h"

/* ---- helpers ----------------------------------------------------------------------- */

static int64_t utc(const char *iso)
{
	GDateTime *d = g_date_time_new_from_iso8601(iso, NULL);
	if (!d)
		fail_msg("bad test time '%s'", iso);
	int64_t t = g_date_time_to_unix(d);
	g_date_time_unref(d);
	return t;
}

/* New text "YYYY-MM-DDThh:mm:ssZ" of an instant. */
static char *utc_text(int64_t t)
{
	GDateTime *d = g_date_time_new_from_unix_utc(t);
	char *text = g_date_time_format(d, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(d);
	return text;
}

static mv_schedule *parse_ok(const char *name, const mv_schedule_args *args)
{
	GError *err = NULL;
	mv_schedule *s = mv_schedule_parse(args, &err);
	if (!s)
		fail_msg("%s: refused: %s", name, err->message);
	assert_null(err);
	return s;
}

/* next_run from after must be expected (UTC text, NULL = never). */
static void expect_next(const char *name, const mv_schedule *s, const char *after, const char *expected)
{
	int64_t next = 0;
	bool found = mv_schedule_next_run(s, utc(after), &next);
	char *got = found ? utc_text(next) : g_strdup("never");
	if (strcmp(got, expected ? expected : "never") != 0)
		fail_msg("%s: after %s expected %s, got %s", name, after, expected ? expected : "never", got);
	g_free(got);
}

#define ZONE_UTC "UTC"
#define BERLIN "Europe/Berlin"
#define NEW_YORK "America/New_York"
#define HAVANA "America/Havana"
#define KOLKATA "Asia/Kolkata"
#define KATHMANDU "Asia/Kathmandu"
#define TOKYO "Asia/Tokyo"

#define ONCE(z, d) { .time_zone_id = (z), .date = (d) }
#define EVERY(z, n) { .time_zone_id = (z), .has_interval = true, .interval = (n) }
#define DAILY(z, t) { .time_zone_id = (z), .time = (t) }
#define WEEKLY(z, w, t) { .time_zone_id = (z), .day_of_week = (w), .time = (t) }
#define MONTHLY(z, d, t) { .time_zone_id = (z), .day_of_month = (d), .time = (t) }

/* ---- next run: one step per row --------------------------------------------------- */

typedef struct next_case {
	const char *name;
	mv_schedule_args args;
	const char *after;
	const char *next;   /* NULL: never */
} next_case;

static const next_case once_cases[] = {
	{ "once, Berlin summer", ONCE(BERLIN, "2026-07-01T08:00:00"), "2026-01-01T00:00:00Z", "2026-07-01T06:00:00Z" },
	{ "once, a second before", ONCE(BERLIN, "2026-07-01T08:00:00"), "2026-07-01T05:59:59Z", "2026-07-01T06:00:00Z" },
	{ "once, at its instant", ONCE(BERLIN, "2026-07-01T08:00:00"), "2026-07-01T06:00:00Z", NULL },
	{ "once, past", ONCE(BERLIN, "2026-07-01T08:00:00"), "2027-01-01T00:00:00Z", NULL },
	{ "once, Berlin winter", ONCE(BERLIN, "2026-01-15T08:00:00"), "2026-01-01T00:00:00Z", "2026-01-15T07:00:00Z" },
	{ "once, UTC last second of the year", ONCE(ZONE_UTC, "2026-12-31T23:59:59"), "2026-12-31T23:59:58Z",
	  "2026-12-31T23:59:59Z" },
	{ "once, Berlin skipped 02:30", ONCE(BERLIN, "2026-03-29T02:30:00"), "2026-03-01T00:00:00Z", "2026-03-29T01:00:00Z" },
	{ "once, Berlin repeated 02:30", ONCE(BERLIN, "2026-10-25T02:30:00"), "2026-10-01T00:00:00Z", "2026-10-25T00:30:00Z" },
	{ "once, Berlin repeated 02:30 not again", ONCE(BERLIN, "2026-10-25T02:30:00"), "2026-10-25T00:30:00Z", NULL },
	{ "once, New York repeated 01:30", ONCE(NEW_YORK, "2026-11-01T01:30:00"), "2026-10-01T00:00:00Z",
	  "2026-11-01T05:30:00Z" },
	{ "once, New York skipped 02:30", ONCE(NEW_YORK, "2026-03-08T02:30:00"), "2026-03-01T00:00:00Z",
	  "2026-03-08T07:00:00Z" },
	{ "once, leap day", ONCE(ZONE_UTC, "2028-02-29T12:00:00"), "2028-01-01T00:00:00Z", "2028-02-29T12:00:00Z" },
};

static const next_case interval_cases[] = {
	{ "every 5, mid-slot", EVERY(ZONE_UTC, 5), "2026-06-01T10:02:30Z", "2026-06-01T10:05:00Z" },
	{ "every 5, on a slot", EVERY(ZONE_UTC, 5), "2026-06-01T10:05:00Z", "2026-06-01T10:10:00Z" },
	{ "every 10", EVERY(ZONE_UTC, 10), "2026-06-01T10:00:01Z", "2026-06-01T10:10:00Z" },
	{ "every 20", EVERY(ZONE_UTC, 20), "2026-06-01T10:40:00Z", "2026-06-01T11:00:00Z" },
	{ "every 720, before noon", EVERY(ZONE_UTC, 720), "2026-06-01T11:59:59Z", "2026-06-01T12:00:00Z" },
	{ "every 720, at noon", EVERY(ZONE_UTC, 720), "2026-06-01T12:00:00Z", "2026-06-02T00:00:00Z" },
	{ "every 60, across the year", EVERY(ZONE_UTC, 60), "2026-12-31T23:30:00Z", "2027-01-01T00:00:00Z" },
	/* Aligned to the zone's midnight, not UTC's: UTC alignment would say 03:00Z. */
	{ "every 180, Kolkata", EVERY(KOLKATA, 180), "2026-06-01T00:00:00Z", "2026-06-01T00:30:00Z" },
	{ "every 60, Kolkata", EVERY(KOLKATA, 60), "2026-06-01T00:00:00Z", "2026-06-01T00:30:00Z" },
	{ "every 15, Kathmandu", EVERY(KATHMANDU, 15), "2026-06-01T00:00:00Z", "2026-06-01T00:15:00Z" },
	{ "every 720, Kathmandu", EVERY(KATHMANDU, 720), "2026-06-01T00:00:00Z", "2026-06-01T06:15:00Z" },
	{ "every 180, New York summer", EVERY(NEW_YORK, 180), "2026-07-01T12:30:00Z", "2026-07-01T13:00:00Z" },
	{ "every 360, Berlin winter", EVERY(BERLIN, 360), "2026-01-10T04:00:00Z", "2026-01-10T05:00:00Z" },
	{ "every 240, Berlin summer", EVERY(BERLIN, 240), "2026-07-10T00:00:00Z", "2026-07-10T02:00:00Z" },
};

static const next_case daily_cases[] = {
	{ "daily 00:00, at midnight", DAILY(ZONE_UTC, "00:00"), "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z" },
	{ "daily 00:00, a second before", DAILY(ZONE_UTC, "00:00"), "2026-05-31T23:59:59Z", "2026-06-01T00:00:00Z" },
	{ "daily 23:59:59", DAILY(ZONE_UTC, "23:59:59"), "2026-06-01T12:00:00Z", "2026-06-01T23:59:59Z" },
	{ "daily Berlin winter", DAILY(BERLIN, "08:00"), "2026-01-15T07:00:00Z", "2026-01-16T07:00:00Z" },
	{ "daily Berlin summer", DAILY(BERLIN, "08:00"), "2026-07-15T05:00:00Z", "2026-07-15T06:00:00Z" },
	{ "daily New York, UTC's next day", DAILY(NEW_YORK, "23:30"), "2026-06-01T03:00:00Z", "2026-06-01T03:30:00Z" },
	{ "daily New York, then tomorrow", DAILY(NEW_YORK, "23:30"), "2026-06-01T03:30:00Z", "2026-06-02T03:30:00Z" },
	{ "daily Tokyo with seconds", DAILY(TOKYO, "09:00:30"), "2026-06-01T00:00:30Z", "2026-06-02T00:00:30Z" },
	{ "daily Berlin 02:30, Saturday", DAILY(BERLIN, "02:30"), "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z" },
	{ "daily Berlin 02:30, skipped: at 03:00", DAILY(BERLIN, "02:30"), "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z" },
	{ "daily Berlin 02:30, after the skip", DAILY(BERLIN, "02:30"), "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z" },
	{ "daily Berlin 02:00, skipped", DAILY(BERLIN, "02:00"), "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z" },
	{ "daily Berlin 03:00, spring", DAILY(BERLIN, "03:00"), "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z" },
	{ "daily Berlin 02:30, first of two", DAILY(BERLIN, "02:30"), "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z" },
	{ "daily Berlin 02:30, not the second", DAILY(BERLIN, "02:30"), "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z" },
	{ "daily Berlin 02:30, inside the repeat", DAILY(BERLIN, "02:30"), "2026-10-25T00:45:00Z", "2026-10-26T01:30:00Z" },
	{ "daily Berlin 02:00, first of two", DAILY(BERLIN, "02:00"), "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z" },
	{ "daily Berlin 03:00, autumn", DAILY(BERLIN, "03:00"), "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z" },
	{ "daily New York 02:30, skipped", DAILY(NEW_YORK, "02:30"), "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z" },
	{ "daily New York 02:30, after", DAILY(NEW_YORK, "02:30"), "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z" },
	{ "daily New York 01:30, first of two", DAILY(NEW_YORK, "01:30"), "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z" },
	{ "daily New York 01:30, not the second", DAILY(NEW_YORK, "01:30"), "2026-11-01T05:30:00Z",
	  "2026-11-02T06:30:00Z" },
	{ "daily New York 02:30, autumn", DAILY(NEW_YORK, "02:30"), "2026-10-31T12:00:00Z", "2026-11-01T07:30:00Z" },
	{ "daily Havana midnight, skipped", DAILY(HAVANA, "00:00"), "2026-03-07T12:00:00Z", "2026-03-08T05:00:00Z" },
	{ "daily Havana midnight, first of two", DAILY(HAVANA, "00:00"), "2026-10-31T12:00:00Z", "2026-11-01T04:00:00Z" },
	{ "daily Havana midnight, not the second", DAILY(HAVANA, "00:00"), "2026-11-01T04:30:00Z",
	  "2026-11-02T05:00:00Z" },
};

/* 2026-06-01 is a Monday, 2027-01-01 a Friday. */
static const next_case weekly_cases[] = {
	{ "Monday, from Sunday", WEEKLY(ZONE_UTC, "Monday", "09:00"), "2026-05-31T12:00:00Z", "2026-06-01T09:00:00Z" },
	{ "Monday, a second before", WEEKLY(ZONE_UTC, "Monday", "09:00"), "2026-06-01T08:59:59Z", "2026-06-01T09:00:00Z" },
	{ "Monday, at it", WEEKLY(ZONE_UTC, "Monday", "09:00"), "2026-06-01T09:00:00Z", "2026-06-08T09:00:00Z" },
	{ "Sunday, from Monday", WEEKLY(ZONE_UTC, "Sunday", "23:59:59"), "2026-06-01T00:00:00Z", "2026-06-07T23:59:59Z" },
	{ "Friday, across the year", WEEKLY(ZONE_UTC, "friday", "12:00"), "2026-12-31T13:00:00Z", "2027-01-01T12:00:00Z" },
	{ "Saturday, across the year", WEEKLY(ZONE_UTC, "SATURDAY", "00:00"), "2026-12-31T00:00:00Z",
	  "2027-01-02T00:00:00Z" },
	/* The weekday is the zone's: Tokyo's Sunday midnight is UTC's Saturday. */
	{ "Tokyo Sunday", WEEKLY(TOKYO, "sUnDaY", "00:00"), "2026-06-06T00:00:00Z", "2026-06-06T15:00:00Z" },
	{ "New York Saturday night", WEEKLY(NEW_YORK, "Saturday", "22:00"), "2026-06-06T12:00:00Z",
	  "2026-06-07T02:00:00Z" },
	{ "Berlin Sunday 02:30, skipped", WEEKLY(BERLIN, "Sunday", "02:30"), "2026-03-28T00:00:00Z", "2026-03-29T01:00:00Z" },
	{ "Berlin Sunday 02:30, week after", WEEKLY(BERLIN, "Sunday", "02:30"), "2026-03-29T01:00:00Z",
	  "2026-04-05T00:30:00Z" },
	{ "Berlin Sunday 02:30, repeated", WEEKLY(BERLIN, "Sunday", "02:30"), "2026-10-20T00:00:00Z", "2026-10-25T00:30:00Z" },
	{ "Berlin Sunday 02:30, once", WEEKLY(BERLIN, "Sunday", "02:30"), "2026-10-25T00:30:00Z", "2026-11-01T01:30:00Z" },
	{ "New York Sunday 01:30, repeated", WEEKLY(NEW_YORK, "Sunday", "01:30"), "2026-10-30T00:00:00Z",
	  "2026-11-01T05:30:00Z" },
	{ "New York Sunday 01:30, once", WEEKLY(NEW_YORK, "Sunday", "01:30"), "2026-11-01T05:30:00Z",
	  "2026-11-08T06:30:00Z" },
	{ "New York Sunday 02:30, skipped", WEEKLY(NEW_YORK, "Sunday", "02:30"), "2026-03-01T12:00:00Z",
	  "2026-03-08T07:00:00Z" },
};

static const next_case monthly_cases[] = {
	{ "31st in April", MONTHLY(ZONE_UTC, "31", "10:00"), "2026-04-01T00:00:00Z", "2026-04-30T10:00:00Z" },
	{ "31st after April", MONTHLY(ZONE_UTC, "31", "10:00"), "2026-04-30T10:00:00Z", "2026-05-31T10:00:00Z" },
	{ "31st in February", MONTHLY(ZONE_UTC, "31", "10:00"), "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z" },
	{ "29th, common February", MONTHLY(ZONE_UTC, "29", "10:00"), "2026-01-30T00:00:00Z", "2026-02-28T10:00:00Z" },
	{ "29th, leap February", MONTHLY(ZONE_UTC, "29", "10:00"), "2028-01-30T00:00:00Z", "2028-02-29T10:00:00Z" },
	{ "30th, leap February", MONTHLY(ZONE_UTC, "30", "10:00"), "2028-01-31T00:00:00Z", "2028-02-29T10:00:00Z" },
	{ "30th, March after February", MONTHLY(ZONE_UTC, "30", "10:00"), "2026-02-28T10:00:00Z", "2026-03-30T10:00:00Z" },
	{ "28th, leap February", MONTHLY(ZONE_UTC, "28", "10:00"), "2028-02-01T00:00:00Z", "2028-02-28T10:00:00Z" },
	{ "28th, not the 29th too", MONTHLY(ZONE_UTC, "28", "10:00"), "2028-02-28T10:00:00Z", "2028-03-28T10:00:00Z" },
	{ "Last, common February", MONTHLY(ZONE_UTC, "Last", "10:00"), "2026-02-01T00:00:00Z", "2026-02-28T10:00:00Z" },
	{ "Last, leap February", MONTHLY(ZONE_UTC, "last", "10:00"), "2028-02-01T00:00:00Z", "2028-02-29T10:00:00Z" },
	{ "Last, 2100 is common", MONTHLY(ZONE_UTC, "Last", "10:00"), "2100-02-01T00:00:00Z", "2100-02-28T10:00:00Z" },
	{ "Last, 2000 is leap", MONTHLY(ZONE_UTC, "Last", "10:00"), "2000-02-01T00:00:00Z", "2000-02-29T10:00:00Z" },
	{ "Last, December", MONTHLY(ZONE_UTC, "Last", "10:00"), "2026-12-15T00:00:00Z", "2026-12-31T10:00:00Z" },
	{ "Last, across the year", MONTHLY(ZONE_UTC, "LAST", "10:00"), "2026-12-31T10:00:00Z", "2027-01-31T10:00:00Z" },
	{ "Last, 30-day April", MONTHLY(ZONE_UTC, "Last", "10:00"), "2026-04-29T10:00:00Z", "2026-04-30T10:00:00Z" },
	{ "Last, after April", MONTHLY(ZONE_UTC, "Last", "10:00"), "2026-04-30T10:00:00Z", "2026-05-31T10:00:00Z" },
	{ "1st, across the year", MONTHLY(ZONE_UTC, "1", "00:00"), "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ "leading zero", MONTHLY(ZONE_UTC, "07", "10:00"), "2026-06-01T00:00:00Z", "2026-06-07T10:00:00Z" },
	{ "Berlin 1st, a second before", MONTHLY(BERLIN, "1", "00:00"), "2026-03-31T21:59:59Z", "2026-03-31T22:00:00Z" },
	{ "Berlin 1st, at it", MONTHLY(BERLIN, "1", "00:00"), "2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z" },
	{ "Berlin 29th 02:30, skipped", MONTHLY(BERLIN, "29", "02:30"), "2026-03-01T00:00:00Z", "2026-03-29T01:00:00Z" },
	{ "Berlin 25th 02:30, repeated", MONTHLY(BERLIN, "25", "02:30"), "2026-10-01T00:00:00Z", "2026-10-25T00:30:00Z" },
	{ "Berlin 25th 02:30, once", MONTHLY(BERLIN, "25", "02:30"), "2026-10-25T00:30:00Z", "2026-11-25T01:30:00Z" },
	{ "New York 31st night, next UTC year", MONTHLY(NEW_YORK, "31", "23:30"), "2026-12-20T00:00:00Z",
	  "2027-01-01T04:30:00Z" },
	{ "New York Last night, UTC's February", MONTHLY(NEW_YORK, "Last", "23:30"), "2026-02-01T00:00:00Z",
	  "2026-02-01T04:30:00Z" },
	{ "New York Last night, UTC's March", MONTHLY(NEW_YORK, "Last", "23:30"), "2026-02-01T04:30:00Z",
	  "2026-03-01T04:30:00Z" },
};

static void run_next_cases(const next_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		mv_schedule *s = parse_ok(cases[i].name, &cases[i].args);
		expect_next(cases[i].name, s, cases[i].after, cases[i].next);
		mv_schedule_free(s);
	}
}

static void test_once(void **state)
{
	run_next_cases(once_cases, G_N_ELEMENTS(once_cases));
}

static void test_interval(void **state)
{
	run_next_cases(interval_cases, G_N_ELEMENTS(interval_cases));
}

static void test_daily(void **state)
{
	run_next_cases(daily_cases, G_N_ELEMENTS(daily_cases));
}

static void test_weekly(void **state)
{
	run_next_cases(weekly_cases, G_N_ELEMENTS(weekly_cases));
}

static void test_monthly(void **state)
{
	run_next_cases(monthly_cases, G_N_ELEMENTS(monthly_cases));
}

/* ---- intervals across the transitions: runs in a row ------------------------------ */

typedef struct sequence_case {
	const char *name;
	mv_schedule_args args;
	const char *start;
	const char *runs[6];   /* the next runs from start, in order; NULL-terminated */
} sequence_case;

static const sequence_case sequence_cases[] = {
	/* Berlin, 2026-03-29 01:00Z: 02:00 CET becomes 03:00 CEST. */
	{ "Berlin spring, every 30", EVERY(BERLIN, 30), "2026-03-29T00:00:00Z",
	  { "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:00:00Z" } },
	{ "Berlin spring, every 15", EVERY(BERLIN, 15), "2026-03-29T00:40:00Z",
	  { "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z" } },
	/* 02:00 is skipped: its run is at 03:00 CEST, then 04:00 CEST. */
	{ "Berlin spring, every 120", EVERY(BERLIN, 120), "2026-03-28T22:30:00Z",
	  { "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T04:00:00Z" } },
	{ "Berlin spring, every 180", EVERY(BERLIN, 180), "2026-03-28T22:30:00Z",
	  { "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T04:00:00Z" } },
	/* Berlin, 2026-10-25 01:00Z: 03:00 CEST becomes 02:00 CET; the slots repeat. */
	{ "Berlin autumn, every 30", EVERY(BERLIN, 30), "2026-10-25T00:00:00Z",
	  { "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z" } },
	{ "Berlin autumn, every 60", EVERY(BERLIN, 60), "2026-10-24T23:30:00Z",
	  { "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z" } },
	{ "Berlin autumn, every 720", EVERY(BERLIN, 720), "2026-10-24T12:00:00Z",
	  { "2026-10-24T22:00:00Z", "2026-10-25T11:00:00Z", "2026-10-25T23:00:00Z" } },
	/* New York, 2026-03-08 07:00Z: 02:00 EST becomes 03:00 EDT. */
	{ "New York spring, every 60", EVERY(NEW_YORK, 60), "2026-03-08T05:30:00Z",
	  { "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z" } },
	{ "New York spring, every 120", EVERY(NEW_YORK, 120), "2026-03-08T04:00:00Z",
	  { "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z", "2026-03-08T10:00:00Z" } },
	/* New York, 2026-11-01 06:00Z: 02:00 EDT becomes 01:00 EST. */
	{ "New York autumn, every 60", EVERY(NEW_YORK, 60), "2026-11-01T04:30:00Z",
	  { "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z" } },
	{ "New York autumn, every 20", EVERY(NEW_YORK, 20), "2026-11-01T05:30:00Z",
	  { "2026-11-01T05:40:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:20:00Z", "2026-11-01T06:40:00Z",
	    "2026-11-01T07:00:00Z" } },
	{ "New York autumn, every 720", EVERY(NEW_YORK, 720), "2026-10-31T16:00:00Z",
	  { "2026-11-01T04:00:00Z", "2026-11-01T17:00:00Z", "2026-11-02T05:00:00Z" } },
	/* Havana changes at midnight: 2026-03-08 05:00Z 00:00 CST becomes 01:00
	 * CDT; 2026-11-01 05:00Z 01:00 CDT becomes 00:00 CST. */
	{ "Havana spring, every 60", EVERY(HAVANA, 60), "2026-03-08T04:30:00Z",
	  { "2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z" } },
	{ "Havana autumn, every 60", EVERY(HAVANA, 60), "2026-11-01T03:30:00Z",
	  { "2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z" } },
};

static void test_interval_sequences(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(sequence_cases); i++) {
		const sequence_case *c = &sequence_cases[i];
		mv_schedule *s = parse_ok(c->name, &c->args);
		const char *after = c->start;
		char *owned = NULL;
		for (size_t r = 0; r < G_N_ELEMENTS(c->runs) && c->runs[r]; r++) {
			expect_next(c->name, s, after, c->runs[r]);
			g_free(owned);
			after = owned = g_strdup(c->runs[r]);
		}
		g_free(owned);
		mv_schedule_free(s);
	}
}

/* ---- missed ---------------------------------------------------------------------------- */

typedef struct missed_case {
	const char *name;
	mv_schedule_args args;
	const char *last_run, *now;
	bool missed;
} missed_case;

static const missed_case missed_cases[] = {
	{ "daily, a second early", DAILY(ZONE_UTC, "02:00"), "2026-06-01T02:00:00Z", "2026-06-02T01:59:59Z", false },
	{ "daily, due at now", DAILY(ZONE_UTC, "02:00"), "2026-06-01T02:00:00Z", "2026-06-02T02:00:00Z", true },
	{ "daily, days down", DAILY(ZONE_UTC, "02:00"), "2026-06-01T02:00:00Z", "2026-06-05T12:00:00Z", true },
	{ "daily, now before last run", DAILY(ZONE_UTC, "02:00"), "2026-06-05T02:00:00Z", "2026-06-01T02:00:00Z", false },
	{ "daily, now is last run", DAILY(ZONE_UTC, "02:00"), "2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z", false },
	{ "once, passed while down", ONCE(ZONE_UTC, "2026-07-01T08:00:00"), "2026-06-30T00:00:00Z", "2026-07-02T00:00:00Z",
	  true },
	{ "once, already ran", ONCE(ZONE_UTC, "2026-07-01T08:00:00"), "2026-07-01T08:00:00Z", "2026-07-02T00:00:00Z",
	  false },
	{ "once, not yet", ONCE(ZONE_UTC, "2026-07-01T08:00:00"), "2026-06-30T00:00:00Z", "2026-07-01T07:59:59Z", false },
	{ "every 5, within the slot", EVERY(ZONE_UTC, 5), "2026-06-01T10:00:00Z", "2026-06-01T10:04:59Z", false },
	{ "every 5, next slot", EVERY(ZONE_UTC, 5), "2026-06-01T10:00:00Z", "2026-06-01T10:05:00Z", true },
	{ "Berlin 02:30, before the jump", DAILY(BERLIN, "02:30"), "2026-03-28T01:30:00Z", "2026-03-29T00:59:59Z", false },
	{ "Berlin 02:30, at the jump", DAILY(BERLIN, "02:30"), "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", true },
	{ "Berlin 02:30, second occurrence", DAILY(BERLIN, "02:30"), "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z",
	  false },
	{ "Berlin 02:30, next day", DAILY(BERLIN, "02:30"), "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", true },
	{ "31st, before April 30", MONTHLY(ZONE_UTC, "31", "10:00"), "2026-03-31T10:00:00Z", "2026-04-30T09:59:59Z",
	  false },
	{ "31st, April 30", MONTHLY(ZONE_UTC, "31", "10:00"), "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z", true },
};

static void test_missed(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(missed_cases); i++) {
		const missed_case *c = &missed_cases[i];
		mv_schedule *s = parse_ok(c->name, &c->args);
		bool got = mv_schedule_missed(s, utc(c->last_run), utc(c->now));
		if (got != c->missed)
			fail_msg("%s: last run %s, now %s: expected %s", c->name, c->last_run, c->now,
			         c->missed ? "missed" : "not missed");
		mv_schedule_free(s);
	}
}

/* ---- parsing ------------------------------------------------------------------------------ */

typedef struct refusal_case {
	mv_schedule_args args;
	int code;
	const char *message;
} refusal_case;

#define INTERVAL_LIST "5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720 (minutes)"
#define NO_ZONE " is not a time zone of the tz database (see GetTimeZones)"
#define NO_DATE " is not a date and time YYYY-MM-DDThh:mm:ss"
#define NO_TIME " is not a time of day hh:mm or hh:mm:ss"
#define NO_WEEKDAY " is not one of Sunday, Monday, Tuesday, Wednesday, Thursday, Friday, Saturday"
#define NO_MONTHDAY " is not a day 1 to 31 or Last"

static const refusal_case refusal_cases[] = {
	{ EVERY(ZONE_UTC, 7), MV_ERR_INVALID, "interval: 7 is not one of " INTERVAL_LIST },
	{ EVERY(ZONE_UTC, 0), MV_ERR_INVALID, "interval: 0 is not one of " INTERVAL_LIST },
	{ EVERY(ZONE_UTC, -5), MV_ERR_INVALID, "interval: -5 is not one of " INTERVAL_LIST },
	/* The reference's SetJobSchedule lists "260" for 4 hours, a typo of 240. */
	{ EVERY(ZONE_UTC, 260), MV_ERR_INVALID, "interval: 260 is not one of " INTERVAL_LIST },
	{ EVERY(ZONE_UTC, 1440), MV_ERR_INVALID, "interval: 1440 is not one of " INTERVAL_LIST },
	{ DAILY("Mars/Olympus", "10:00"), MV_ERR_INVALID, "timeZoneId: 'Mars/Olympus'" NO_ZONE },
	{ DAILY("europe/berlin", "10:00"), MV_ERR_INVALID, "timeZoneId: 'europe/berlin'" NO_ZONE },
	{ DAILY("", "10:00"), MV_ERR_INVALID, "timeZoneId: ''" NO_ZONE },
	/* GLib would take these as a POSIX TZ rule or a file path. */
	{ DAILY("ABC5", "10:00"), MV_ERR_INVALID, "timeZoneId: 'ABC5'" NO_ZONE },
	{ DAILY("CET-1CEST,M3.5.0,M10.5.0/3", "10:00"), MV_ERR_INVALID, "timeZoneId: 'CET-1CEST,M3.5.0,M10.5.0/3'" NO_ZONE },
	{ DAILY("/usr/share/zoneinfo/Europe/Berlin", "10:00"), MV_ERR_INVALID,
	  "timeZoneId: '/usr/share/zoneinfo/Europe/Berlin'" NO_ZONE },
	{ DAILY("Europe/../Europe/Berlin", "10:00"), MV_ERR_INVALID, "timeZoneId: 'Europe/../Europe/Berlin'" NO_ZONE },
	{ DAILY("Europe", "10:00"), MV_ERR_INVALID, "timeZoneId: 'Europe'" NO_ZONE },
	{ DAILY("$local", "10:00"), MV_ERR_INVALID, "timeZoneId: '$local'" NO_ZONE },
	{ ONCE(ZONE_UTC, "2026-02-29T10:00:00"), MV_ERR_INVALID, "date: '2026-02-29T10:00:00' is not a day of the calendar" },
	{ ONCE(ZONE_UTC, "2026-04-31T10:00:00"), MV_ERR_INVALID, "date: '2026-04-31T10:00:00' is not a day of the calendar" },
	{ ONCE(ZONE_UTC, "2026-13-01T10:00:00"), MV_ERR_INVALID, "date: '2026-13-01T10:00:00' is not a day of the calendar" },
	{ ONCE(ZONE_UTC, "0000-01-01T10:00:00"), MV_ERR_INVALID, "date: '0000-01-01T10:00:00' is not a day of the calendar" },
	{ ONCE(ZONE_UTC, "2026-07-01 08:00:00"), MV_ERR_INVALID, "date: '2026-07-01 08:00:00'" NO_DATE },
	{ ONCE(ZONE_UTC, "2026-07-01T24:00:00"), MV_ERR_INVALID, "date: '2026-07-01T24:00:00'" NO_DATE },
	{ ONCE(ZONE_UTC, "2026-07-01T08:00"), MV_ERR_INVALID, "date: '2026-07-01T08:00'" NO_DATE },
	{ ONCE(ZONE_UTC, "2026-07-01T08:00:00Z"), MV_ERR_INVALID, "date: '2026-07-01T08:00:00Z'" NO_DATE },
	{ ONCE(ZONE_UTC, "2026-7-01T08:00:00"), MV_ERR_INVALID, "date: '2026-7-01T08:00:00'" NO_DATE },
	{ DAILY(ZONE_UTC, "24:00"), MV_ERR_INVALID, "time: '24:00'" NO_TIME },
	{ DAILY(ZONE_UTC, "7:30"), MV_ERR_INVALID, "time: '7:30'" NO_TIME },
	{ DAILY(ZONE_UTC, "07:60"), MV_ERR_INVALID, "time: '07:60'" NO_TIME },
	{ DAILY(ZONE_UTC, "07:30:60"), MV_ERR_INVALID, "time: '07:30:60'" NO_TIME },
	{ DAILY(ZONE_UTC, "07:30:"), MV_ERR_INVALID, "time: '07:30:'" NO_TIME },
	{ DAILY(ZONE_UTC, "0730"), MV_ERR_INVALID, "time: '0730'" NO_TIME },
	{ DAILY(ZONE_UTC, ""), MV_ERR_INVALID, "time: ''" NO_TIME },
	{ WEEKLY(ZONE_UTC, "Funday", "10:00"), MV_ERR_INVALID, "dayOfWeek: 'Funday'" NO_WEEKDAY },
	{ WEEKLY(ZONE_UTC, "Mon", "10:00"), MV_ERR_INVALID, "dayOfWeek: 'Mon'" NO_WEEKDAY },
	{ WEEKLY(ZONE_UTC, "1", "10:00"), MV_ERR_INVALID, "dayOfWeek: '1'" NO_WEEKDAY },
	/* A control character is shown as a space, never printed raw. */
	{ WEEKLY(ZONE_UTC, "Mon\nday", "10:00"), MV_ERR_INVALID, "dayOfWeek: 'Mon day'" NO_WEEKDAY },
	{ MONTHLY(ZONE_UTC, "32", "10:00"), MV_ERR_INVALID, "dayOfMonth: '32'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "0", "10:00"), MV_ERR_INVALID, "dayOfMonth: '0'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "-1", "10:00"), MV_ERR_INVALID, "dayOfMonth: '-1'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "1st", "10:00"), MV_ERR_INVALID, "dayOfMonth: '1st'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "031", "10:00"), MV_ERR_INVALID, "dayOfMonth: '031'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "Lastday", "10:00"), MV_ERR_INVALID, "dayOfMonth: 'Lastday'" NO_MONTHDAY },
	{ MONTHLY(ZONE_UTC, "", "10:00"), MV_ERR_INVALID, "dayOfMonth: ''" NO_MONTHDAY },
	/* Exactly one kind. */
	{ { .time_zone_id = ZONE_UTC }, MV_ERR_INVALID, "schedule: one of date, interval or time is needed" },
	{ { .time_zone_id = ZONE_UTC, .date = "2026-07-01T08:00:00", .time = "10:00" }, MV_ERR_INVALID,
	  "date: cannot be combined with time" },
	{ { .time_zone_id = ZONE_UTC, .date = "2026-07-01T08:00:00", .has_interval = true, .interval = 5 }, MV_ERR_INVALID,
	  "date: cannot be combined with interval" },
	{ { .time_zone_id = ZONE_UTC, .has_interval = true, .interval = 5, .time = "10:00" }, MV_ERR_INVALID,
	  "interval: cannot be combined with time" },
	{ { .time_zone_id = ZONE_UTC, .has_interval = true, .interval = 5, .day_of_month = "1" }, MV_ERR_INVALID,
	  "interval: cannot be combined with dayOfMonth" },
	{ { .time_zone_id = ZONE_UTC, .day_of_week = "Monday" }, MV_ERR_INVALID, "dayOfWeek: needs time" },
	{ { .time_zone_id = ZONE_UTC, .day_of_month = "Last" }, MV_ERR_INVALID, "dayOfMonth: needs time" },
	{ { .time_zone_id = ZONE_UTC, .time = "10:00", .day_of_week = "Monday", .day_of_month = "1" }, MV_ERR_UNSUPPORTED,
	  "dayOfMonth: together with dayOfWeek (a weekday of the month) is not supported" },
};

static void test_refusals(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(refusal_cases); i++) {
		const refusal_case *c = &refusal_cases[i];
		GError *err = NULL;
		mv_schedule *s = mv_schedule_parse(&c->args, &err);
		if (s)
			fail_msg("accepted, expected: %s", c->message);
		assert_non_null(err);
		if (err->domain != MV_ERROR || err->code != c->code || strcmp(err->message, c->message) != 0)
			fail_msg("expected [%d] %s\n     got [%d] %s", c->code, c->message, err->code, err->message);
		g_error_free(err);
	}
}

static void test_parsed_values(void **state)
{
	mv_schedule_args weekly = WEEKLY(BERLIN, "sUnDaY", "07:05");
	mv_schedule *s = parse_ok("weekly", &weekly);
	assert_int_equal(s->kind, MV_SCHEDULE_WEEKLY);
	assert_string_equal(s->time_zone_id, "Europe/Berlin");
	assert_int_equal(s->weekday, G_DATE_SUNDAY);
	assert_int_equal(s->hour, 7);
	assert_int_equal(s->minute, 5);
	assert_int_equal(s->second, 0);
	mv_schedule_free(s);

	mv_schedule_args monthly = MONTHLY(ZONE_UTC, "LaSt", "23:59:58");
	s = parse_ok("monthly", &monthly);
	assert_int_equal(s->kind, MV_SCHEDULE_MONTHLY);
	assert_int_equal(s->day_of_month, MV_SCHEDULE_LAST_DAY);
	assert_int_equal(s->second, 58);
	mv_schedule_free(s);

	mv_schedule_args once = ONCE(NEW_YORK, "2026-11-01T01:30:00");
	s = parse_ok("once", &once);
	assert_int_equal(s->kind, MV_SCHEDULE_ONCE);
	assert_int_equal(s->year, 2026);
	assert_int_equal(s->month, 11);
	assert_int_equal(s->day, 1);
	assert_int_equal(s->hour, 1);
	assert_int_equal(s->minute, 30);
	mv_schedule_free(s);

	mv_schedule_args every = EVERY("Etc/GMT+5", 240);
	s = parse_ok("interval", &every);
	assert_int_equal(s->kind, MV_SCHEDULE_INTERVAL);
	assert_int_equal(s->interval_minutes, 240);
	/* Etc/GMT+5 is UTC-5 (the tz database's sign): 20:00 local = 01:00Z. */
	expect_next("Etc/GMT+5", s, "2026-06-01T00:00:00Z", "2026-06-01T01:00:00Z");
	mv_schedule_free(s);

	mv_schedule_args daily = DAILY("America/Port-au-Prince", "12:00");
	s = parse_ok("daily", &daily);
	assert_int_equal(s->kind, MV_SCHEDULE_DAILY);
	mv_schedule_free(s);
}

/* "$Local", and no timeZoneId at all, are the server's zone: here TZ. */
static void test_local_zone(void **state)
{
	char *saved = g_strdup(g_getenv("TZ"));
	assert_true(g_setenv("TZ", "Asia/Tokyo", TRUE));
	mv_schedule_args local = DAILY("$Local", "09:00");
	mv_schedule_args unnamed = DAILY(NULL, "09:00");
	mv_schedule *a = parse_ok("$Local", &local);
	mv_schedule *b = parse_ok("no zone", &unnamed);
	assert_string_equal(a->time_zone_id, "$Local");
	assert_string_equal(b->time_zone_id, "$Local");
	/* 09:00 JST is 00:00Z. */
	expect_next("$Local", a, "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z");
	expect_next("no zone", b, "2026-05-31T23:59:59Z", "2026-06-01T00:00:00Z");
	mv_schedule_free(a);
	mv_schedule_free(b);
	if (saved)
		assert_true(g_setenv("TZ", saved, TRUE));
	else
		g_unsetenv("TZ");
	g_free(saved);
}

static void test_calendar_ends(void **state)
{
	mv_schedule_args daily = DAILY(ZONE_UTC, "10:00");
	mv_schedule *s = parse_ok("daily", &daily);
	expect_next("last day of 9999", s, "9999-12-30T12:00:00Z", "9999-12-31T10:00:00Z");
	expect_next("past 9999", s, "9999-12-31T10:00:00Z", NULL);
	int64_t next = 0;
	assert_false(mv_schedule_next_run(s, INT64_MAX, &next));
	assert_false(mv_schedule_next_run(s, INT64_MIN, &next));
	mv_schedule_free(s);

	mv_schedule_args every = EVERY(ZONE_UTC, 720);
	s = parse_ok("every 720", &every);
	expect_next("last slot of 9999", s, "9999-12-31T11:00:00Z", "9999-12-31T12:00:00Z");
	expect_next("past 9999", s, "9999-12-31T12:00:00Z", NULL);
	assert_false(mv_schedule_next_run(s, INT64_MAX, &next));
	assert_false(mv_schedule_next_run(s, INT64_MIN, &next));
	mv_schedule_free(s);

	mv_schedule_args once = ONCE(ZONE_UTC, "0001-01-01T00:00:00");
	s = parse_ok("year 1", &once);
	assert_true(mv_schedule_next_run(s, INT64_MIN, &next));
	assert_int_equal(next, -62135596800);
	mv_schedule_free(s);
}

/* ---- a year against the oracle --------------------------------------------------------------- */

#define STEP 300
#define YEAR_START "2026-01-01T00:00:00Z"
#define YEAR_END "2027-01-01T00:00:00Z"

/* What a zone's clock shows at every 5-minute step of 2026 (and one step
 * before), from GDateTime. */
typedef struct zone_clock {
	const char *zone;
	int64_t first;     /* the instant of entry 0 */
	size_t n;
	int64_t *offset;   /* seconds east of UTC */
	int32_t *day;      /* the local date, as days since 1970-01-01 */
	int32_t *second;   /* the local time of day, seconds */
} zone_clock;

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), independent of GDate. */
static int32_t civil_day(int y, int m, int d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	int yoe = y - era * 400;
	int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

static zone_clock clock_of(const char *zone)
{
	zone_clock c = { .zone = zone, .first = utc(YEAR_START) - STEP };
	c.n = (size_t)((utc(YEAR_END) - c.first) / STEP) + 1;
	c.offset = g_new(int64_t, c.n);
	c.day = g_new(int32_t, c.n);
	c.second = g_new(int32_t, c.n);
	GTimeZone *tz = g_time_zone_new_identifier(zone);
	assert_non_null(tz);
	for (size_t i = 0; i < c.n; i++) {
		GDateTime *u = g_date_time_new_from_unix_utc(c.first + (int64_t)i * STEP);
		GDateTime *l = g_date_time_to_timezone(u, tz);
		c.offset[i] = g_date_time_get_utc_offset(l) / G_TIME_SPAN_SECOND;
		c.day[i] = civil_day(g_date_time_get_year(l), g_date_time_get_month(l), g_date_time_get_day_of_month(l));
		c.second[i] = g_date_time_get_hour(l) * 3600 + g_date_time_get_minute(l) * 60 + g_date_time_get_second(l);
		g_date_time_unref(l);
		g_date_time_unref(u);
	}
	g_time_zone_unref(tz);
	return c;
}

static void clock_clear(zone_clock *c)
{
	g_free(c->offset);
	g_free(c->day);
	g_free(c->second);
}

static void compare_runs(const char *what, const GArray *expected, const GArray *got)
{
	for (guint i = 0; i < expected->len || i < got->len; i++) {
		int64_t e = i < expected->len ? g_array_index(expected, int64_t, i) : 0;
		int64_t g = i < got->len ? g_array_index(got, int64_t, i) : 0;
		if (i >= expected->len || i >= got->len || e != g) {
			char *et = i < expected->len ? utc_text(e) : g_strdup("(none)");
			char *gt = i < got->len ? utc_text(g) : g_strdup("(none)");
			fail_msg("%s: run %u: oracle %s, code %s", what, i, et, gt);
		}
	}
}

/* The code's runs from `from` up to `end` (exclusive).  A run not after
 * the one before fails here rather than looping forever. */
static GArray *runs_of(const mv_schedule *s, int64_t from, int64_t end)
{
	GArray *runs = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int64_t t = from - 1, next;
	while (mv_schedule_next_run(s, t, &next) && next < end) {
		if (next <= t)
			fail_msg("next run %lld is not after %lld", (long long)next, (long long)t);
		g_array_append_val(runs, next);
		t = next;
	}
	return runs;
}

/* Interval: due where the clock shows a slot, or where it jumps forward over
 * one (the wall times from the old clock's reading to the new one's). */
static void check_interval_year(const zone_clock *c, int minutes)
{
	int64_t step = minutes * 60;
	GArray *oracle = g_array_new(FALSE, FALSE, sizeof(int64_t));
	for (size_t i = 1; i < c->n - 1; i++) {
		int64_t t = c->first + (int64_t)i * STEP;
		bool due = c->second[i] % step == 0;
		if (c->offset[i] > c->offset[i - 1]) {
			int64_t old_sod = c->second[i] - (c->offset[i] - c->offset[i - 1]);
			for (int64_t w = old_sod; w <= c->second[i]; w += 60)
				due = due || ((w % 86400) + 86400) % step == 0;
		}
		if (due)
			g_array_append_val(oracle, t);
	}
	mv_schedule_args args = EVERY(c->zone, minutes);
	mv_schedule *s = parse_ok(c->zone, &args);
	GArray *got = runs_of(s, c->first + STEP, c->first + (int64_t)(c->n - 1) * STEP);
	char *what = g_strdup_printf("%s every %d", c->zone, minutes);
	compare_runs(what, oracle, got);
	for (guint i = 1; i < got->len; i++) {
		int64_t gap = g_array_index(got, int64_t, i) - g_array_index(got, int64_t, i - 1);
		if (gap <= 0 || gap > step + 3600)
			fail_msg("%s: gap of %lld s before run %u", what, (long long)gap, i);
	}
	g_free(what);
	g_array_unref(got);
	g_array_unref(oracle);
	mv_schedule_free(s);
}

static void test_interval_year(void **state)
{
	const char *zones[] = { BERLIN, NEW_YORK, HAVANA, KOLKATA, KATHMANDU, ZONE_UTC };
	const int intervals[] = { 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720 };
	for (size_t z = 0; z < G_N_ELEMENTS(zones); z++) {
		zone_clock c = clock_of(zones[z]);
		for (size_t i = 0; i < G_N_ELEMENTS(intervals); i++)
			check_interval_year(&c, intervals[i]);
		clock_clear(&c);
	}
}

typedef enum { EVERY_DAY, SUNDAYS, DAY_31, LAST_DAY } day_rule;

/* The local dates of 2026 a rule picks (days since 1970), from Jan 2 to
 * Dec 30, so that no run falls outside the clock's span. */
static GArray *dates_of(day_rule rule)
{
	GArray *dates = g_array_new(FALSE, FALSE, sizeof(int32_t));
	for (int m = 1; m <= 12; m++) {
		for (int d = 1; d <= month_days(2026, m); d++) {
			int32_t day = civil_day(2026, m, d);
			bool pick = rule == EVERY_DAY ||
			            (rule == SUNDAYS && (day + 4) % 7 == 0) || /* 1970-01-01 was a Thursday */
			            ((rule == DAY_31 || rule == LAST_DAY) && d == month_days(2026, m));
			if (pick && day > civil_day(2026, 1, 1) && day < civil_day(2026, 12, 31))
				g_array_append_val(dates, day);
		}
	}
	return dates;
}

/* Calendar kinds: due at the first step whose clock shows the date and
 * time or later, for each date in turn. */
static void check_calendar_year(const zone_clock *c, const mv_schedule_args *args, day_rule rule, int time_of_day)
{
	GArray *dates = dates_of(rule);
	GArray *oracle = g_array_new(FALSE, FALSE, sizeof(int64_t));
	guint next_date = 0;
	for (size_t i = 1; i < c->n && next_date < dates->len; i++) {
		int32_t want = g_array_index(dates, int32_t, next_date);
		if (c->day[i] > want || (c->day[i] == want && c->second[i] >= time_of_day)) {
			int64_t t = c->first + (int64_t)i * STEP;
			g_array_append_val(oracle, t);
			next_date++;
		}
	}
	assert_int_equal(next_date, dates->len);
	mv_schedule *s = parse_ok(c->zone, args);
	int64_t first = g_array_index(oracle, int64_t, 0);
	int64_t last = g_array_index(oracle, int64_t, oracle->len - 1);
	GArray *got = runs_of(s, first, last + 1);
	char *what = g_strdup_printf("%s %s %s %s", c->zone, args->day_of_week ? args->day_of_week : "",
	                             args->day_of_month ? args->day_of_month : "", args->time);
	compare_runs(what, oracle, got);
	g_free(what);
	g_array_unref(got);
	g_array_unref(oracle);
	g_array_unref(dates);
	mv_schedule_free(s);
}

static void test_calendar_year(void **state)
{
	static const struct {
		const char *zone, *time;
		int time_of_day;
	} times[] = {
		{ BERLIN, "02:30", 9000 }, { BERLIN, "02:00", 7200 }, { BERLIN, "03:00", 10800 },
		{ NEW_YORK, "01:30", 5400 }, { NEW_YORK, "02:30", 9000 }, { HAVANA, "00:00", 0 },
		{ HAVANA, "00:30", 1800 }, { KATHMANDU, "23:45", 85500 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(times); i++) {
		zone_clock c = clock_of(times[i].zone);
		mv_schedule_args daily = DAILY(times[i].zone, times[i].time);
		mv_schedule_args sundays = WEEKLY(times[i].zone, "Sunday", times[i].time);
		mv_schedule_args day31 = MONTHLY(times[i].zone, "31", times[i].time);
		mv_schedule_args last = MONTHLY(times[i].zone, "Last", times[i].time);
		check_calendar_year(&c, &daily, EVERY_DAY, times[i].time_of_day);
		check_calendar_year(&c, &sundays, SUNDAYS, times[i].time_of_day);
		check_calendar_year(&c, &day31, DAY_31, times[i].time_of_day);
		check_calendar_year(&c, &last, LAST_DAY, times[i].time_of_day);
		clock_clear(&c);
	}
}

/* Maintenance windows: [start, end) on the zone's clock, across midnight
 * when the end is earlier, the whole day when the ends are equal. */
static void test_windows(void **state)
{
	(void)state;
	GTimeZone *berlin = g_time_zone_new_identifier("Europe/Berlin");
	assert_non_null(berlin);
	/* 2026-07-01 21:59:30 and 22:00:00 CEST = 19:59:30 and 20:00:00 UTC. */
	GDateTime *t = g_date_time_new(berlin, 2026, 7, 1, 21, 59, 30);
	int64_t before = g_date_time_to_unix(t);
	g_date_time_unref(t);
	int64_t at = before + 30;
	static const struct {
		const char *windows;
		bool at_2159, at_2200, at_0359_next, at_0400_next;
	} cases[] = {
		{ "22:00-04:00", false, true, true, false },
		{ " 08:00-09:00 , 22:00-23:00", false, true, false, false },
		{ "21:00-22:00", true, false, false, false },
		{ "03:00-03:00", true, true, true, true },
		{ "", false, false, false, false },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *w = cases[i].windows;
		assert_int_equal(mv_schedule_in_windows(w, before, berlin), cases[i].at_2159);
		assert_int_equal(mv_schedule_in_windows(w, at, berlin), cases[i].at_2200);
		assert_int_equal(mv_schedule_in_windows(w, at + 5 * 3600 + 59 * 60, berlin), cases[i].at_0359_next);
		assert_int_equal(mv_schedule_in_windows(w, at + 6 * 3600, berlin), cases[i].at_0400_next);
	}
	assert_true(mv_schedule_windows_valid("22:00-04:00,08:15-08:45"));
	static const char *const bad[] = { "", "22:00", "24:00-01:00", "22:60-23:00", "22:00-23:00,", "22:00-23:00x",
		                           "ab:cd-ef:gh", NULL };
	for (const char *const *b = bad; *b; b++)
		assert_false(mv_schedule_windows_valid(*b));
	assert_false(mv_schedule_windows_valid(NULL));
	assert_false(mv_schedule_in_windows("nonsense", at, berlin));
	assert_false(mv_schedule_in_windows("21:00-23:00,22:00-63:00", at, berlin));   /* not half-honoured */
	g_time_zone_unref(berlin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once),          cmocka_unit_test(test_interval),
		cmocka_unit_test(test_daily),         cmocka_unit_test(test_weekly),
		cmocka_unit_test(test_monthly),       cmocka_unit_test(test_interval_sequences),
		cmocka_unit_test(test_missed),        cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_parsed_values), cmocka_unit_test(test_local_zone),
		cmocka_unit_test(test_calendar_ends), cmocka_unit_test(test_interval_year),
		cmocka_unit_test(test_calendar_year), cmocka_unit_test(test_windows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
