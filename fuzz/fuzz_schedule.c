/* libFuzzer target for jobs/schedule: CreateJob's and SetJobSchedule's
 * schedule arguments and an automatic profile's maintenance windows come
 * from API callers.  Any bytes must end in a schedule or an error naming
 * an argument — never a crash, a hang in the next-run search, or a leak —
 * and a parsed schedule's next run must lie after the instant asked from.
 *
 * Input: NUL-separated fields: timeZoneId, date, interval (decimal), time,
 * dayOfWeek, dayOfMonth, maintenance windows; an empty field is "not
 * given".  A fixed set of instants (around DST changes and month ends)
 * is asked of every parsed schedule. */
#include <stdlib.h>
#include <string.h>

#include "jobs/schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int64_t instants[] = {
	0, 1774746000, 1774749600, 1792890000, 1792893600, 1793000000, 1803859200, 4102444800, 253402300799,
};

static const char *field(char **fields, int n, int i)
{
	return i < n && fields[i][0] ? fields[i] : NULL;
}

static void check_schedule(const mv_schedule *sched)
{
	for (size_t i = 0; i < G_N_ELEMENTS(instants); i++) {
		int64_t next = 0;
		if (mv_schedule_next_run(sched, instants[i], &next) && next <= instants[i])
			abort();
		(void)mv_schedule_missed(sched, instants[i], instants[i] + 86400 * 40);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		mv_log_set_quiet(true);
		quiet = true;
	}
	if (size > 4096)
		return 0;
	char *text = g_malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	GPtrArray *parts = g_ptr_array_new();
	for (const char *p = text; p <= text + size && parts->len < 7; p += strlen(p) + 1)
		g_ptr_array_add(parts, (gpointer)p);
	char **fields = (char **)parts->pdata;
	int n = (int)parts->len;
	const char *interval = field(fields, n, 2);
	gint64 minutes = 0;
	mv_schedule_args args = {
		.time_zone_id = field(fields, n, 0), .date = field(fields, n, 1),
		.has_interval = interval && g_ascii_string_to_signed(interval, 10, G_MININT64, G_MAXINT64, &minutes, NULL),
		.interval = minutes, .time = field(fields, n, 3), .day_of_week = field(fields, n, 4),
		.day_of_month = field(fields, n, 5),
	};
	GError *err = NULL;
	mv_schedule *sched = mv_schedule_parse(&args, &err);
	if (sched) {
		if (err)
			abort();
		check_schedule(sched);
		mv_schedule_free(sched);
	} else if (!err || err->domain != MV_ERROR || !err->message[0]) {
		abort();
	}
	g_clear_error(&err);
	const char *windows = field(fields, n, 6);
	bool valid = mv_schedule_windows_valid(windows);
	GTimeZone *utc = g_time_zone_new_utc();
	for (size_t i = 0; i < G_N_ELEMENTS(instants); i++)
		if (mv_schedule_in_windows(windows, instants[i], utc) && !valid)
			abort();
	g_time_zone_unref(utc);
	g_ptr_array_free(parts, TRUE);
	g_free(text);
	return 0;
}
