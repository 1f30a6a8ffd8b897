/* store/message_id: the one spelling of a message's id, "<store>:<number>"
 * in decimal — written by every module that names a message (search hits,
 * exports, the store's own reports) and read back from what users type.
 * It lives in store/ because the store numbers messages and every module
 * that names them sits above it. */
#include "store/store.h"

#include <string.h>

char *mv_message_id_format(int store_id, int64_t number)
{
	return g_strdup_printf("%d:%lld", store_id, (long long)number);
}

/* Only the form ids are written in ("STORE:NUMBER", decimal, no sign, no
 * space, no leading zero): one id has one spelling, so " 1:1", "+1:+1" and
 * "1:1 " are all refused alike. */
bool mv_message_id_parse(const char *text, int *store_r, int64_t *num_r)
{
	if (!text || strlen(text) > 40)
		return false;
	for (const char *p = text; *p; p++)
		if (!g_ascii_isdigit(*p) && *p != ':')
			return false;
	char *end = NULL;
	guint64 store = g_ascii_strtoull(text, &end, 10);
	if (end == text || *end != ':' || store == 0 || store > G_MAXINT)
		return false;
	const char *n = end + 1;
	guint64 num = g_ascii_strtoull(n, &end, 10);
	if (end == n || *end != '\0' || num == 0 || num > G_MAXINT64)
		return false;
	char canonical[48];
	g_snprintf(canonical, sizeof canonical, "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT, store, num);
	if (strcmp(canonical, text) != 0)
		return false;
	*store_r = (int)store;
	*num_r = (int64_t)num;
	return true;
}
