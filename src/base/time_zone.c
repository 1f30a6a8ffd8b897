/* base/time_zone: the time zones of the Administration API — an IANA id
 * as GetTimeZones lists them, "UTC", or "$Local" for the server's own — and
 * its local date-times, "YYYY-MM-DDThh:mm:ss" as MailStore's functions take
 * them (GetWorkerResults' range, and the jobs' schedules).  GLib's GTimeZone
 * reads the tz database, DST rules included.  One resolution of an id for
 * every function that takes one (GetWorkerResults, GetJobResults, the job
 * schedules of jobs/schedule.c). */
#include "base/time_zone.h"
#include "base/base.h"

#include <stdio.h>
#include <string.h>

/* An id names a file of the tz database, and only that: GLib would also
 * take a POSIX TZ rule ("ABC5") or a path ("/etc/localtime",
 * "../x") for an identifier, which no GetTimeZones list holds.  So the id
 * must be path components of letters, digits, '_', '-' and '+' (the tz
 * database's own spelling, "America/Port-au-Prince", "Etc/GMT+5"), and
 * the file must be in the directory GLib reads. */
static bool zone_id_shape_ok(const char *id)
{
	if (!*id || strlen(id) > 200)
		return false;
	bool component_start = true;
	for (const char *p = id; *p; p++) {
		if (*p == '/') {
			if (component_start)
				return false;
			component_start = true;
			continue;
		}
		if (component_start && (*p == '-' || *p == '+'))
			return false;
		if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-' && *p != '+')
			return false;
		component_start = false;
	}
	return !component_start;
}

static bool zone_file_exists(const char *id)
{
	const char *dir = g_getenv("TZDIR");
	char *path = g_build_filename(dir && *dir ? dir : "/usr/share/zoneinfo", id, NULL);
	bool exists = g_file_test(path, G_FILE_TEST_IS_REGULAR);
	g_free(path);
	return exists;
}

GTimeZone *mv_time_zone(const char *id, const char *what, GError **error)
{
	GTimeZone *tz = NULL;
	if (id && strcmp(id, "$Local") == 0)
		tz = g_time_zone_new_local();
	else if (id && strcmp(id, "UTC") == 0)
		tz = g_time_zone_new_utc();
	else if (id && zone_id_shape_ok(id) && zone_file_exists(id))
		tz = g_time_zone_new_identifier(id);
	if (!tz)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%s' is not a time zone of the tz database (see "
		            "GetTimeZones)", what, id ? id : "");
	return tz;
}

int mv_time_parse_local(const char *text, GTimeZone *tz, const char *what, int64_t *epoch_r, GError **error)
{
	int y, mo, d, h, mi, s, used = 0;
	bool shaped = text && strlen(text) == 19 &&
	              sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) == 6 && used == 19;
	GDateTime *dt = shaped ? g_date_time_new(tz, y, mo, d, h, mi, s) : NULL;
	if (!dt) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: '%s' is not a date and time YYYY-MM-DDThh:mm:ss", what,
		            text ? text : "");
		return -1;
	}
	*epoch_r = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return 0;
}

char *mv_time_format_local(int64_t epoch, GTimeZone *tz)
{
	GDateTime *utc = g_date_time_new_from_unix_utc(epoch);
	GDateTime *local = utc ? g_date_time_to_timezone(utc, tz) : NULL;
	char *text = local ? g_date_time_format(local, "%Y-%m-%dT%H:%M:%S%:z") : g_strdup("");
	if (local)
		g_date_time_unref(local);
	if (utc)
		g_date_time_unref(utc);
	return text;
}
