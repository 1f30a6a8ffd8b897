/* jobs/schedule: a job schedule's arguments checked, and its next due
 * instant computed (the rules are in schedule.h).
 *
 * GLib's g_date_time_new picks, for a wall time the clock shows twice,
 * the standard-time one (02:30 on 2026-10-25 in Berlin comes out as 02:30
 * CET, the second occurrence), and documents no rule for one the clock
 * skips; nor does it say which case it met.  So the arithmetic here reads
 * from the zone only the offset in force at a UTC instant
 * (g_time_zone_find_interval), finds transitions by bisecting on the
 * zone's interval index, and states every rule as "what the clock shows":
 * wall(t) = t + offset(t).  Days are counted as wall seconds / 86400 since
 * 1970-01-01 and turned into dates by GDate. */
#include "jobs/schedule.h"
#include "base/time_zone.h"

#include <stdio.h>
#include <string.h>

#define DAY_SECONDS ((int64_t)86400)
/* 0001-01-01T00:00:00 and 10000-01-01T00:00:00, the calendar's ends, in
 * seconds since 1970: wall times and instants outside never occur. */
#define CALENDAR_FIRST ((int64_t)-62135596800)
#define CALENDAR_END ((int64_t)253402300800)
/* The longest wait for a matching day: a monthly job's day comes within
 * two months; weekly and daily ones sooner. */
#define MAX_DAYS_AHEAD 64

static const int allowed_intervals[] = { 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720 };
static const char *const weekday_names[] = {
	/* by GDateWeekday */
	[G_DATE_MONDAY] = "Monday", [G_DATE_TUESDAY] = "Tuesday", [G_DATE_WEDNESDAY] = "Wednesday",
	[G_DATE_THURSDAY] = "Thursday", [G_DATE_FRIDAY] = "Friday", [G_DATE_SATURDAY] = "Saturday",
	[G_DATE_SUNDAY] = "Sunday",
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return a % b < 0 ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

/* ---- parsing ---------------------------------------------------------------- */

static void set_invalid(GError **error, const char *argument, const char *value, const char *reason)
{
	char *shown = mv_utf8_sanitize(value, -1);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%.100s' %s", argument, shown, reason);
	g_free(shown);
}

/* Exactly n ASCII digits at s, as a number. */
static bool digits(const char *s, size_t n, int *value_r)
{
	int value = 0;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(s[i]))
			return false;
		value = value * 10 + (s[i] - '0');
	}
	*value_r = value;
	return true;
}

/* "hh:mm:ss" (with_seconds) or "hh:mm" at s, which holds exactly that many
 * characters. */
static bool clock_time(const char *s, bool with_seconds, int *h_r, int *m_r, int *s_r)
{
	int h, m, sec = 0;
	if (!digits(s, 2, &h) || s[2] != ':' || !digits(s + 3, 2, &m))
		return false;
	if (with_seconds && (s[5] != ':' || !digits(s + 6, 2, &sec)))
		return false;
	if (h > 23 || m > 59 || sec > 59)
		return false;
	*h_r = h;
	*m_r = m;
	*s_r = sec;
	return true;
}

static int parse_date(const char *text, mv_schedule *s, GError **error)
{
	int y, mo, d;
	bool ok = strlen(text) == 19 && digits(text, 4, &y) && text[4] == '-' && digits(text + 5, 2, &mo) &&
	          text[7] == '-' && digits(text + 8, 2, &d) && text[10] == 'T' &&
	          clock_time(text + 11, true, &s->hour, &s->minute, &s->second);
	if (!ok) {
		set_invalid(error, "date", text, "is not a date and time YYYY-MM-DDThh:mm:ss");
		return -1;
	}
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || !g_date_valid_dmy((GDateDay)d, (GDateMonth)mo, (GDateYear)y)) {
		set_invalid(error, "date", text, "is not a day of the calendar");
		return -1;
	}
	s->year = y;
	s->month = mo;
	s->day = d;
	return 0;
}

static int parse_time(const char *text, mv_schedule *s, GError **error)
{
	size_t len = strlen(text);
	if ((len != 5 && len != 8) || !clock_time(text, len == 8, &s->hour, &s->minute, &s->second)) {
		set_invalid(error, "time", text, "is not a time of day hh:mm or hh:mm:ss");
		return -1;
	}
	return 0;
}

static int parse_interval(int64_t minutes, mv_schedule *s, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(allowed_intervals); i++) {
		if (minutes == allowed_intervals[i]) {
			s->interval_minutes = allowed_intervals[i];
			return 0;
		}
	}
	GString *list = g_string_new(NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(allowed_intervals); i++)
		g_string_append_printf(list, "%s%d", i ? ", " : "", allowed_intervals[i]);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "interval: %lld is not one of %s (minutes)", (long long)minutes,
	            list->str);
	g_string_free(list, TRUE);
	return -1;
}

static int parse_weekday(const char *text, mv_schedule *s, GError **error)
{
	for (int wd = G_DATE_MONDAY; wd <= G_DATE_SUNDAY; wd++) {
		if (g_ascii_strcasecmp(text, weekday_names[wd]) == 0) {
			s->weekday = (GDateWeekday)wd;
			return 0;
		}
	}
	set_invalid(error, "dayOfWeek", text, "is not one of Sunday, Monday, Tuesday, Wednesday, Thursday, Friday, Saturday");
	return -1;
}

static int parse_day_of_month(const char *text, mv_schedule *s, GError **error)
{
	if (g_ascii_strcasecmp(text, "Last") == 0) {
		s->day_of_month = MV_SCHEDULE_LAST_DAY;
		return 0;
	}
	size_t len = strlen(text);
	int day;
	if ((len != 1 && len != 2) || !digits(text, len, &day) || day < 1 || day > 31) {
		set_invalid(error, "dayOfMonth", text, "is not a day 1 to 31 or Last");
		return -1;
	}
	s->day_of_month = day;
	return 0;
}

static int parse_zone(const char *id, mv_schedule *s, GError **error)
{
	if (!id)
		id = "$Local";
	if (!(s->zone = mv_time_zone(id, "timeZoneId", error)))
		return -1;
	s->time_zone_id = g_strdup(id);
	return 0;
}

/* Which kind the given arguments ask for, refusing every combination that
 * is not exactly one kind. */
static int schedule_kind(const mv_schedule_args *a, mv_schedule_kind *kind_r, GError **error)
{
	if (a->date) {
		const char *other = a->has_interval ? "interval" : a->time ? "time" : a->day_of_week ? "dayOfWeek" :
		                    a->day_of_month ? "dayOfMonth" : NULL;
		if (other) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "date: cannot be combined with %s", other);
			return -1;
		}
		*kind_r = MV_SCHEDULE_ONCE;
		return 0;
	}
	if (a->has_interval) {
		const char *other = a->time ? "time" : a->day_of_week ? "dayOfWeek" : a->day_of_month ? "dayOfMonth" : NULL;
		if (other) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "interval: cannot be combined with %s", other);
			return -1;
		}
		*kind_r = MV_SCHEDULE_INTERVAL;
		return 0;
	}
	if (!a->time) {
		const char *needing = a->day_of_week ? "dayOfWeek" : a->day_of_month ? "dayOfMonth" : NULL;
		if (needing)
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: needs time", needing);
		else
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "schedule: one of date, interval or time is needed");
		return -1;
	}
	if (a->day_of_week && a->day_of_month) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED,
		            "dayOfMonth: together with dayOfWeek (a weekday of the month) is not supported");
		return -1;
	}
	*kind_r = a->day_of_week ? MV_SCHEDULE_WEEKLY : a->day_of_month ? MV_SCHEDULE_MONTHLY : MV_SCHEDULE_DAILY;
	return 0;
}

mv_schedule *mv_schedule_parse(const mv_schedule_args *args, GError **error)
{
	mv_schedule *s = g_new0(mv_schedule, 1);
	if (schedule_kind(args, &s->kind, error) < 0)
		goto fail;
	int rc = 0;
	switch (s->kind) {
	case MV_SCHEDULE_ONCE:
		rc = parse_date(args->date, s, error);
		break;
	case MV_SCHEDULE_INTERVAL:
		rc = parse_interval(args->interval, s, error);
		break;
	case MV_SCHEDULE_WEEKLY:
		rc = parse_weekday(args->day_of_week, s, error);
		break;
	case MV_SCHEDULE_MONTHLY:
		rc = parse_day_of_month(args->day_of_month, s, error);
		break;
	case MV_SCHEDULE_DAILY:
		break;
	}
	if (rc == 0 && args->time)
		rc = parse_time(args->time, s, error);
	if (rc < 0 || parse_zone(args->time_zone_id, s, error) < 0)
		goto fail;
	return s;
fail:
	mv_schedule_free(s);
	return NULL;
}

void mv_schedule_free(mv_schedule *s)
{
	if (!s)
		return;
	if (s->zone)
		g_time_zone_unref(s->zone);
	g_free(s->time_zone_id);
	g_free(s);
}

/* ---- the zone's clock ----------------------------------------------------------- */

static int interval_at(GTimeZone *tz, int64_t t)
{
	return g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t);
}

static int64_t offset_at(GTimeZone *tz, int64_t t)
{
	return g_time_zone_get_offset(tz, interval_at(tz, t));
}

/* The first instant in (after, limit] at which another of the zone's
 * intervals begins (its offset usually changes there), in *t_r; false when
 * the one in force at `after` lasts past limit.  Intervals are numbered in
 * time order, so bisecting on the number finds the first change. */
static bool next_transition(GTimeZone *tz, int64_t after, int64_t limit, int64_t *t_r)
{
	int start = interval_at(tz, after);
	if (interval_at(tz, limit) == start)
		return false;
	int64_t same = after, changed = limit;
	while (changed - same > 1) {
		int64_t mid = same + (changed - same) / 2;
		if (interval_at(tz, mid) == start)
			same = mid;
		else
			changed = mid;
	}
	*t_r = changed;
	return true;
}

/* The first instant at which the zone's clock shows wall time `wall` or a
 * later one: the instant itself when the clock shows it once, its first
 * occurrence when it shows it twice, the jump past it when it skips it.
 * Walked run of offset by run of offset from two days before, where the
 * clock is surely behind (offsets stay within a day). */
static int64_t first_instant_showing(GTimeZone *tz, int64_t wall)
{
	int64_t from = wall - 2 * DAY_SECONDS, limit = wall + 2 * DAY_SECONDS;
	for (;;) {
		/* Here the clock shows less than wall: from + off < wall. */
		int64_t off = offset_at(tz, from);
		int64_t change;
		if (!next_transition(tz, from, limit, &change) || wall < change + off)
			return wall - off;
		if (change + offset_at(tz, change) >= wall)
			return change;
		from = change;
	}
}

/* ---- next run --------------------------------------------------------------------- */

static guint32 julian_of_1970(void)
{
	GDate epoch;
	g_date_clear(&epoch, 1);
	g_date_set_dmy(&epoch, 1, G_DATE_JANUARY, 1970);
	return g_date_get_julian(&epoch);
}

static bool day_matches(const mv_schedule *s, const GDate *date)
{
	switch (s->kind) {
	case MV_SCHEDULE_DAILY:
		return true;
	case MV_SCHEDULE_WEEKLY:
		return g_date_get_weekday(date) == s->weekday;
	case MV_SCHEDULE_MONTHLY: {
		int last = g_date_get_days_in_month(g_date_get_month(date), g_date_get_year(date));
		int due = s->day_of_month == MV_SCHEDULE_LAST_DAY || s->day_of_month > last ? last : s->day_of_month;
		return g_date_get_day(date) == due;
	}
	default:
		return false;
	}
}

/* Daily, weekly, monthly: the matching days from the one the clock shows
 * at `after`, in order; the first whose time falls after `after` wins.
 * An earlier day cannot: its time is behind the clock at `after`, so
 * first_instant_showing puts it at or before `after`. */
static bool next_calendar_run(const mv_schedule *s, int64_t after, int64_t *next_r)
{
	if (after < CALENDAR_FIRST + 2 * DAY_SECONDS || after >= CALENDAR_END)
		return false;
	int64_t time_of_day = s->hour * 3600 + s->minute * 60 + s->second;
	int64_t first_day = floor_div(after + offset_at(s->zone, after), DAY_SECONDS);
	guint32 epoch = julian_of_1970();
	for (int64_t day = first_day; day <= first_day + MAX_DAYS_AHEAD; day++) {
		if (day * DAY_SECONDS >= CALENDAR_END)
			return false;
		GDate date;
		g_date_clear(&date, 1);
		g_date_set_julian(&date, (guint32)(epoch + day));
		if (!day_matches(s, &date))
			continue;
		int64_t t = first_instant_showing(s->zone, day * DAY_SECONDS + time_of_day);
		if (t > after) {
			*next_r = t;
			return true;
		}
	}
	return false;
}

static bool next_once_run(const mv_schedule *s, int64_t after, int64_t *next_r)
{
	GDate date;
	g_date_clear(&date, 1);
	g_date_set_dmy(&date, (GDateDay)s->day, (GDateMonth)s->month, (GDateYear)s->year);
	int64_t day = (int64_t)g_date_get_julian(&date) - julian_of_1970();
	int64_t t = first_instant_showing(s->zone, day * DAY_SECONDS + s->hour * 3600 + s->minute * 60 + s->second);
	if (t <= after)
		return false;
	*next_r = t;
	return true;
}

/* Whether a slot lies in the wall times [from, to]. */
static bool slot_between(int64_t from, int64_t to, int64_t step)
{
	return from + floor_mod(-from, step) <= to;
}

/* Interval: within one run of offset the slots are the instants whose wall
 * time is a multiple of step; at a change of offset the jump is due when
 * it shows a slot, or (forward) skipped one. */
static bool next_interval_run(const mv_schedule *s, int64_t after, int64_t *next_r)
{
	if (after < CALENDAR_FIRST || after >= CALENDAR_END)
		return false;
	int64_t step = (int64_t)s->interval_minutes * 60;
	int64_t due;
	for (int64_t from = after;;) {
		int64_t off = offset_at(s->zone, from);
		int64_t slot = from + step - floor_mod(from + off, step);
		int64_t change;
		if (!next_transition(s->zone, from, slot, &change)) {
			due = slot;
			break;
		}
		int64_t new_off = offset_at(s->zone, change);
		int64_t skipped_from = change + (new_off > off ? off : new_off);
		if (slot_between(skipped_from, change + new_off, step)) {
			due = change;
			break;
		}
		from = change;
	}
	if (due >= CALENDAR_END)
		return false;
	*next_r = due;
	return true;
}

bool mv_schedule_next_run(const mv_schedule *s, int64_t after, int64_t *next_r)
{
	switch (s->kind) {
	case MV_SCHEDULE_ONCE:
		return next_once_run(s, after, next_r);
	case MV_SCHEDULE_INTERVAL:
		return next_interval_run(s, after, next_r);
	case MV_SCHEDULE_DAILY:
	case MV_SCHEDULE_WEEKLY:
	case MV_SCHEDULE_MONTHLY:
		return next_calendar_run(s, after, next_r);
	}
	return false;
}

bool mv_schedule_missed(const mv_schedule *s, int64_t last_run, int64_t now)
{
	int64_t next;
	return last_run < now && mv_schedule_next_run(s, last_run, &next) && next <= now;
}

/* ---- maintenance windows ------------------------------------------------------ */

typedef struct window {
	int start, end;   /* minutes after midnight */
} window;

static bool parse_window(const char *text, window *w)
{
	unsigned h1, m1, h2, m2;
	char end;
	if (sscanf(text, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &end) != 4 || h1 > 23 || h2 > 23 || m1 > 59 ||
	    m2 > 59)
		return false;
	*w = (window){ .start = (int)(h1 * 60 + m1), .end = (int)(h2 * 60 + m2) };
	return true;
}

static bool window_holds(const window *w, int minute)
{
	if (w->start == w->end)
		return true;
	if (w->start < w->end)
		return minute >= w->start && minute < w->end;
	return minute >= w->start || minute < w->end;
}

/* Calls each window of the list; false when a part does not parse. */
static bool each_window(const char *windows, int minute, bool *in_r)
{
	char **parts = g_strsplit(windows, ",", -1);
	bool ok = parts[0] != NULL;
	for (char **p = parts; ok && *p; p++) {
		window w;
		ok = parse_window(g_strstrip(*p), &w);
		if (ok && in_r && window_holds(&w, minute))
			*in_r = true;
	}
	g_strfreev(parts);
	return ok;
}

bool mv_schedule_windows_valid(const char *windows)
{
	return windows && each_window(windows, 0, NULL);
}

bool mv_schedule_in_windows(const char *windows, int64_t now, GTimeZone *tz)
{
	if (!windows || !*windows)
		return false;
	GDateTime *t = g_date_time_new_from_unix_utc(now);
	GDateTime *local = t ? g_date_time_to_timezone(t, tz) : NULL;
	bool in = false;
	/* A list that does not parse whole holds nothing (SetProfileServerSide-
	 * Execution refuses one; a stored one is never half-honoured). */
	if (local && !each_window(windows, g_date_time_get_hour(local) * 60 + g_date_time_get_minute(local), &in))
		in = false;
	if (local)
		g_date_time_unref(local);
	if (t)
		g_date_time_unref(t);
	return in;
}
