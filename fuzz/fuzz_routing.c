/* libFuzzer target for sources/routing: a multidrop mailbox and the SMTP
 * journal hand it whatever a stranger sent.  Any bytes must route without
 * a crash, a leak or an error (the options are good, so only they could
 * fail), and the route must keep its promises: one target per archive,
 * every folder a folder path, at most 100 unknown addresses, targets
 * exactly when a known user was named or the policy is catchall.
 *
 * Input: the first byte picks the options (policy, templates, whether an
 * SMTP envelope is given); with an envelope, the lines up to the first
 * NUL byte are its recipients and the rest is the message. */
#include <stdlib.h>
#include <string.h>

#include "sources/routing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const alice[] = { "alice@example.org", "Ali@Example.ORG", NULL };
static const char *const bob[] = { "bob@example.org", "j\xc3\xb6rg@example.org", NULL };
static const char *const odd[] = { "a/b@example.org", NULL };

static const char *const folders[] = { "Inbox", "Multidrop/{h-email}", "{u-email}/{h-email}", "x/{h-email}{u-email}" };

static bool folder_ok(const char *path)
{
	if (!*path || !g_utf8_validate(path, -1, NULL) || path[0] == '/' || g_str_has_suffix(path, "/") ||
	    strstr(path, "//"))
		return false;
	for (const char *p = path; *p; p = g_utf8_next_char(p))
		if (g_unichar_iscntrl(g_utf8_get_char(p)))
			return false;
	return true;
}

static void check_route(const mv_route *route, const mv_route_options *o)
{
	if (route->unknown_addresses->len > 100)
		abort();
	if (route->unknown && o->unknown == MV_UNKNOWN_CATCHALL && route->targets->len != 1)
		abort();
	if (route->unknown && o->unknown != MV_UNKNOWN_CATCHALL && route->targets->len != 0)
		abort();
	if (!route->unknown && route->targets->len == 0)
		abort();
	for (guint i = 0; i < route->targets->len; i++) {
		const mv_route_target *t = route->targets->pdata[i];
		if (!t->archive || !t->address || !folder_ok(t->folder))
			abort();
		for (guint j = 0; j < i; j++)
			if (strcmp(t->archive, ((const mv_route_target *)route->targets->pdata[j])->archive) == 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static mv_routing *r;
	if (!r) {
		mv_log_set_quiet(true);
		const mv_routing_user users[] = { { "alice", alice }, { "bob", bob }, { "odd", odd } };
		r = mv_routing_new(users, G_N_ELEMENTS(users));
	}
	if (size < 1)
		return 0;
	uint8_t pick = data[0];
	data++;
	size--;
	mv_route_options o = {
		.folder = folders[pick & 3],
		.sent_folder = (pick & 4) ? "Sent/{u-email}" : NULL,
		.unknown = (mv_unknown_policy)((pick >> 3) & 3),
		.catchall_archive = "catchall",
	};
	char **envelope = NULL;
	if (pick & 0x20) {
		const uint8_t *nul = memchr(data, '\0', size);
		size_t n = nul ? (size_t)(nul - data) : size;
		char *text = g_strndup((const char *)data, n);
		envelope = g_strsplit(text, "\n", 16);
		g_free(text);
		data += nul ? n + 1 : n;
		size -= nul ? n + 1 : n;
	}
	const char *sender = (pick & 0x40) ? "<bob@example.org>" : NULL;
	mv_route route;
	GError *err = NULL;
	if (mv_route_message(r, &o, (const char *const *)envelope, sender, data, size, &route, &err) < 0)
		abort();
	check_route(&route, &o);
	if (sender && route.targets->len == 0)
		abort();   /* bob sent it: bob's archive at least */
	mv_route_clear(&route);
	g_strfreev(envelope);

	/* The lookup takes any text too. */
	char *text = g_strndup((const char *)data, MIN(size, (size_t)512));
	(void)mv_routing_user_of(r, text);
	g_free(text);
	return 0;
}
