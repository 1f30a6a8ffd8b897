/* commands/cmd_server: functions about the server itself rather than its
 * stores — GetServerInfo and GetTimeZones.
 *
 * Time zones come from the system's tz database (zone1970.tab, else
 * zone.tab), the same one GLib's GTimeZone reads, so any id listed here is
 * one the scheduler can use; "$Local" stands for the machine's zone as in
 * the reference. */
#include "commands/commands.h"

#include <string.h>
#include <unistd.h>

static json_t *get_server_info(mv_command_ctx *ctx, json_t *args, GError **error)
{
	char host[256] = "";
	if (gethostname(host, sizeof host - 1) < 0)
		g_strlcpy(host, "localhost", sizeof host);
	/* safeMode: whether jobs and automatic profiles are held — false on a
	 * data directory without a server, where nothing runs by itself. */
	bool safe_mode = false;
	if (ctx->service && ctx->service->running) {
		mv_service_config c = { 0 };
		ctx->service->running(ctx->service->opaque, &c);
		safe_mode = c.safe_mode;
		mv_service_config_clear(&c);
	}
	return json_pack("{s:s, s:s, s:s, s:b}", "version", MV_VERSION, "machineName", host,
	                 "product", "mailvault", "safeMode", safe_mode);
}

static char *offset_text(GTimeZone *tz)
{
	GDateTime *now = g_date_time_new_now(tz);
	int64_t off = now ? g_date_time_get_utc_offset(now) / G_TIME_SPAN_SECOND : 0;
	if (now)
		g_date_time_unref(now);
	int64_t a = off < 0 ? -off : off;
	return g_strdup_printf("UTC%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600), (int)(a % 3600 / 60));
}

static json_t *zone_entry(const char *id, const char *tz_name)
{
	GTimeZone *tz = tz_name ? g_time_zone_new_identifier(tz_name) : g_time_zone_new_local();
	if (!tz)
		return NULL;
	char *off = offset_text(tz);
	char *display = g_strdup_printf("(%s) %s", off, tz_name ? tz_name : "Local time of the server");
	json_t *e = json_pack("{s:s, s:s, s:s}", "id", id, "displayName", display, "utcOffset", off);
	g_free(off);
	g_free(display);
	g_time_zone_unref(tz);
	return e;
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Zone names from the tz database's table, sorted, without duplicates. */
static GPtrArray *zone_names(void)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *tables[] = { "/usr/share/zoneinfo/zone1970.tab", "/usr/share/zoneinfo/zone.tab" };
	for (size_t t = 0; t < G_N_ELEMENTS(tables) && names->len == 0; t++) {
		char *text = NULL;
		if (!g_file_get_contents(tables[t], &text, NULL, NULL))
			continue;
		char **lines = g_strsplit(text, "\n", -1);
		for (char **l = lines; *l; l++) {
			if (**l == '#' || !**l)
				continue;
			char **cols = g_strsplit(*l, "\t", 4);
			if (cols[0] && cols[1] && cols[2])
				g_ptr_array_add(names, g_strdup(g_strstrip(cols[2])));
			g_strfreev(cols);
		}
		g_strfreev(lines);
		g_free(text);
	}
	g_ptr_array_add(names, g_strdup("UTC"));
	g_ptr_array_sort(names, cmp_str);
	return names;
}

static json_t *get_time_zones(mv_command_ctx *ctx, json_t *args, GError **error)
{
	json_t *list = json_array();
	json_t *local = zone_entry("$Local", NULL);
	if (local)
		json_array_append_new(list, local);
	GPtrArray *names = zone_names();
	const char *prev = NULL;
	for (guint i = 0; i < names->len; i++) {
		const char *n = names->pdata[i];
		if (prev && strcmp(prev, n) == 0)
			continue;
		prev = n;
		json_t *e = zone_entry(n, n);
		if (e)
			json_array_append_new(list, e);
	}
	g_ptr_array_free(names, TRUE);
	return list;
}

static const mv_command_arg no_args[] = { { .name = NULL } };

const mv_command mv_commands_server[] = {
	{ "GetServerInfo", no_args, "admin", false, get_server_info, "version and machine name", NULL },
	{ "GetTimeZones", no_args, "admin", false, get_time_zones, "time zones and their ids ($Local = the server's)", NULL },
	{ .name = NULL },
};
