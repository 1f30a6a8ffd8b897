/* base/time_zone: the API's time zone ids and local date-times (time_zone.c). */
#ifndef MV_BASE_TIME_ZONE_H
#define MV_BASE_TIME_ZONE_H

#include <glib.h>
#include <stdint.h>

/* "$Local", "UTC" or an id of the tz database (a file of it: no POSIX TZ
 * rule, no path); anything else is MV_ERR_INVALID naming `what` (the
 * argument) and the id.  The caller unrefs. */
GTimeZone *mv_time_zone(const char *id, const char *what, GError **error);
/* "YYYY-MM-DDThh:mm:ss" in tz to seconds since the epoch, strictly (a
 * time a DST change skips maps to the instant after the gap, as GLib does). */
int mv_time_parse_local(const char *text, GTimeZone *tz, const char *what, int64_t *epoch_r, GError **error);
/* epoch in tz as "YYYY-MM-DDThh:mm:ss+hh:mm" (the caller frees). */
char *mv_time_format_local(int64_t epoch, GTimeZone *tz);

#endif
