/* libFuzzer target for lists of networks (net/networks.c): an
 * administrator's text, or an API caller's.  Any bytes must end in a list
 * or an error with a printable message — never a crash or a leak — and a
 * list must print canonically to a text that parses to the same list and
 * prints the same again.  Every network's own address must then be found
 * in the list, as text and as a socket address, and an IPv4 network's
 * address in its IPv4-mapped spelling too; the input itself and its first
 * item are asked as addresses for the parser's sake.
 *
 * Input: the list's text (cut at a NUL, as a C string would be). */
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "net/networks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Enough to check the oracle on many networks without a list of 10,000
 * turning each input into 10,000 linear scans. */
#define MAX_CHECKED 64

static bool contains_as_socket_address(const mv_networks *n, const char *address)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	if (inet_pton(AF_INET, address, &sin.sin_addr) == 1)
		return mv_networks_contains(n, (const struct sockaddr *)&sin);
	if (inet_pton(AF_INET6, address, &sin6.sin6_addr) == 1)
		return mv_networks_contains(n, (const struct sockaddr *)&sin6);
	abort();  /* to_text printed something that is not an address */
}

static void check_own_addresses(const mv_networks *n, const char *canonical)
{
	char **items = g_strsplit(canonical, ";", MAX_CHECKED + 1);
	for (size_t i = 0; items[i] && i < MAX_CHECKED; i++) {
		char *slash = strchr(items[i], '/');
		if (!slash)
			abort();
		*slash = '\0';
		if (!mv_networks_contains_text(n, items[i]) || !contains_as_socket_address(n, items[i]))
			abort();
		if (strchr(items[i], '.') && !strchr(items[i], ':')) {
			char *mapped = g_strconcat("::ffff:", items[i], NULL);
			if (!mv_networks_contains_text(n, mapped))
				abort();
			g_free(mapped);
		}
	}
	g_strfreev(items);
}

static void check_round_trip(const mv_networks *n)
{
	char *first = mv_networks_to_text(n);
	GError *err = NULL;
	mv_networks *again = mv_networks_parse(first, &err);
	if (!again)
		abort();
	char *second = mv_networks_to_text(again);
	if (strcmp(first, second) != 0 || mv_networks_count(again) != mv_networks_count(n))
		abort();
	check_own_addresses(again, second);
	g_free(second);
	g_free(first);
	mv_networks_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = g_malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	GError *err = NULL;
	mv_networks *n = mv_networks_parse(text, &err);
	if (!n) {
		if (!err || !g_utf8_validate(err->message, -1, NULL) ||
		    (err->code != MV_ERR_INVALID && err->code != MV_ERR_LIMIT))
			abort();
		g_error_free(err);
		g_free(text);
		return 0;
	}
	check_round_trip(n);
	(void)mv_networks_contains_text(n, text);
	char *first_item = g_strndup(text, strcspn(text, ";,"));
	(void)mv_networks_contains_text(n, g_strstrip(first_item));
	g_free(first_item);
	mv_networks_free(&n);
	g_free(text);
	return 0;
}
