/* jobs/schedule: when a job is due.  MailStore's job schedule — the
 * arguments timeZoneId, date, interval, time, dayOfWeek and dayOfMonth of
 * CreateJob and SetJobSchedule — checked and turned into a struct, and the
 * next instant the job is due, computed from it.  Pure arithmetic on GLib's
 * time zones (the system's tz database): no clock, no threads, no storage;
 * the scheduler that keeps jobs and runs them sits above commands/ and
 * calls this.
 *
 * Instants are UTC seconds since 1970 (what mv_now() gives).  A schedule's
 * times are wall times in its zone, and every rule below is stated in
 * terms of what that zone's clock shows:
 *
 *   once      `date` "YYYY-MM-DDThh:mm:ss"
 *   interval  `interval` minutes: 5, 10, 15, 20, 30, 60, 120, 180, 240, 360
 *             or 720
 *   daily     `time` "hh:mm" or "hh:mm:ss"
 *   weekly    `dayOfWeek` Sunday..Saturday (any case) at `time`
 *   monthly   `dayOfMonth` 1..31 or "Last" (any case) at `time`; a day
 *             past the month's end is the month's last day (31 runs on
 *             April 30 and February 28 or 29, 29 on February 28 in a common
 *             year): a job set for "the 31st" is meant monthly, and skipping
 *             five months a year would surprise more than running on the
 *             last day does.  (MailStore's documentation does not say.)
 *
 * Summer time, for once, daily, weekly and monthly: a job is due at the
 * first instant the zone's clock shows its wall time or a later one.  So
 * a wall time the clock shows once is that instant; one it shows twice
 * (autumn: 02:30 on 2026-10-25 in Europe/Berlin) is its first occurrence
 * only, never the second; one it never shows (spring: 02:30 on 2026-03-29
 * in Berlin) is the instant the clock jumps past it (03:00 local) — once,
 * not skipped.
 *
 * Summer time, for interval: the slots are the wall times that are a
 * multiple of the interval past the zone's local midnight (every allowed
 * interval divides a day, so the slots are the same clock times every day
 * and do not depend on when the job was made or the server started: "every
 * 15 minutes" runs at :00, :15, :30, :45, which is what an administrator
 * reads on the clock and what MailStore's "every N minutes" does).  A job
 * is due at every instant the clock shows a slot — in the hour that
 * repeats in autumn the clock shows those slots a second time, real time
 * goes on, and the job keeps its pace (every 30 minutes in Berlin on
 * 2026-10-25: 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET) — and at the
 * instant the clock jumps forward if the skipped wall times held a slot
 * (every 2 hours in Berlin on 2026-03-29: 00:00, then 03:00 for the lost
 * 02:00, then 04:00).  Due instants are distinct; the real time between
 * two of them is at most the interval across a jump forward, and at most
 * the interval plus the shift across a fall back, when the next slot comes
 * after the repeated hour (every 12 hours in Berlin on 2026-10-25: 00:00
 * CEST, then 12:00 CET, 13 hours later).
 *
 * Times outside the years 1 to 9999 are outside the calendar: a schedule
 * is never due there. */
#ifndef MV_JOBS_SCHEDULE_H
#define MV_JOBS_SCHEDULE_H

#include "base/base.h"

typedef enum {
	MV_SCHEDULE_ONCE = 1,   /* date */
	MV_SCHEDULE_INTERVAL,   /* interval */
	MV_SCHEDULE_DAILY,      /* time alone */
	MV_SCHEDULE_WEEKLY,     /* time and dayOfWeek */
	MV_SCHEDULE_MONTHLY,    /* time and dayOfMonth */
} mv_schedule_kind;

/* The schedule arguments as CreateJob and SetJobSchedule take them, after
 * the registry typed them (interval is the API's number).  NULL, or
 * has_interval false, = not given.  Borrowed: parsing copies what it
 * keeps. */
typedef struct mv_schedule_args {
	const char *time_zone_id;   /* an id of the tz database, "UTC" or "$Local" (the server's zone); NULL = "$Local" */
	const char *date;
	bool has_interval;
	int64_t interval;
	const char *time;
	const char *day_of_week;
	const char *day_of_month;
} mv_schedule_args;

/* dayOfMonth "Last". */
#define MV_SCHEDULE_LAST_DAY 0

/* A checked schedule.  Read-only after mv_schedule_parse, so any thread
 * may ask it; the members a kind does not use are zero. */
typedef struct mv_schedule {
	mv_schedule_kind kind;
	char *time_zone_id;             /* as given, "$Local" when none was */
	GTimeZone *zone;                /* $Local: the server's zone when parsed */
	int year, month, day;           /* once */
	int hour, minute, second;       /* once, daily, weekly, monthly */
	int interval_minutes;           /* interval */
	GDateWeekday weekday;           /* weekly */
	int day_of_month;               /* monthly: 1..31 or MV_SCHEDULE_LAST_DAY */
} mv_schedule;

/* Checks the arguments and returns a new schedule, or NULL with
 * MV_ERR_INVALID naming the argument and the reason ("interval: 7 is not
 * one of 5, 10, ...", "timeZoneId: 'Mars/Olympus' is not a time zone of the
 * tz database", "dayOfWeek: needs time", "date: cannot be combined with
 * interval").  Exactly one kind must be given: date, interval, or time with
 * at most one of dayOfWeek and dayOfMonth.  dayOfMonth with dayOfWeek
 * (MailStore's "a weekday of the month", whose meaning the reference does
 * not define) is MV_ERR_UNSUPPORTED. */
mv_schedule *mv_schedule_parse(const mv_schedule_args *args, GError **error);
void mv_schedule_free(mv_schedule *schedule);

/* The first instant strictly after `after` at which the job is due, in
 * *next_r; false when there is none: a once whose date has passed (or is
 * `after` itself). */
bool mv_schedule_next_run(const mv_schedule *schedule, int64_t after, int64_t *next_r);

/* Whether the job fell due at least once in (last_run, now] — what a
 * scheduler asks at start-up to run a job it missed while down once, not
 * once per missed slot.  A job that never ran passes the instant it was
 * scheduled as last_run. */
bool mv_schedule_missed(const mv_schedule *schedule, int64_t last_run, int64_t now);

/* Maintenance windows, the automaticMaintenanceWindows of an automatic
 * profile: "hh:mm-hh:mm" wall times, several separated by commas, each
 * from its start up to (not including) its end, across midnight when the
 * end is earlier ("22:00-04:00"); a window whose ends are equal is the
 * whole day.  Valid: every part parses.  In: now, on tz's clock, falls in
 * one of them ("" or NULL, or a list that is not valid: never). */
bool mv_schedule_windows_valid(const char *windows);
bool mv_schedule_in_windows(const char *windows, int64_t now, GTimeZone *tz);

#endif
