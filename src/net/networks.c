/* net/networks: lists of IPv4/IPv6 networks in CIDR notation and the
 * question whether a client's address lies in one of them.
 *
 * The text comes from an administrator's configuration (or an API call),
 * so it is bounded before anything is copied: the whole list by
 * MV_NETWORKS_MAX_TEXT, the number of items by MV_NETWORKS_MAX_ITEMS, each
 * item by the longest address plus "/128" — only then is it copied into a
 * stack buffer for inet_pton, which wants a NUL-terminated string.  A bad
 * item is refused with its text and the reason rather than skipped: a
 * network silently dropped from an allow-list is a client locked out (or,
 * in a deny-list, let in) without a word.
 *
 * Networks are kept masked to their prefix, so that matching is a compare
 * of the prefix's bits and the canonical text is the network as matched.
 * A list is a handful of entries and a lookup a linear scan; a list of
 * thousands asked per connection would want a trie, which this is not yet. */
#include "net/networks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The longest address inet_pton takes (INET6_ADDRSTRLEN counts the NUL)
 * and "/128". */
#define ITEM_MAX (INET6_ADDRSTRLEN - 1 + 4)
/* How much of an over-long item an error message shows. */
#define SHOWN_MAX 64

typedef struct network {
	int family;         /* AF_INET or AF_INET6 */
	unsigned prefix;    /* 0..32 or 0..128 */
	uint8_t addr[16];   /* 4 or 16 bytes used, host bits zero */
} network;

struct mv_networks {
	GArray *items;      /* of network, in the order given */
};

static size_t address_size(int family)
{
	return family == AF_INET ? 4 : 16;
}

static void mask_host_bits(uint8_t *addr, size_t size, unsigned prefix)
{
	for (size_t i = 0; i < size; i++) {
		unsigned bits = prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
		if (bits < 8)
			addr[i] &= (uint8_t)(0xffu << (8 - bits));
	}
}

static bool prefix_matches(const uint8_t *addr, const network *net)
{
	unsigned whole = net->prefix / 8, rest = net->prefix % 8;
	if (memcmp(addr, net->addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (addr[whole] & mask) == net->addr[whole];
}

/* The prefix length after the '/': decimal digits only (no sign, no
 * spaces); -1 when it is not a number.  Saturates so that "/99999" reads as
 * out of range rather than as a number that wrapped. */
static int parse_prefix(const char *s)
{
	if (!*s)
		return -1;
	int value = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		value = MIN(value * 10 + (*s - '0'), 1000);
	}
	return value;
}

/* One trimmed, non-empty item of len bytes (not NUL-terminated) into *net. */
static int parse_item(const char *item, size_t len, network *net, GError **error)
{
	char text[ITEM_MAX + 1];
	int rc = -1;
	char *shown = mv_utf8_sanitize(item, (gssize)MIN(len, SHOWN_MAX));
	if (len > ITEM_MAX) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "network '%s%s': longer than %d characters", shown,
		            len > SHOWN_MAX ? "..." : "", ITEM_MAX);
		goto out;
	}
	memcpy(text, item, len);
	text[len] = '\0';
	char *slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	memset(net, 0, sizeof *net);
	if (inet_pton(AF_INET, text, net->addr) == 1) {
		net->family = AF_INET;
	} else if (inet_pton(AF_INET6, text, net->addr) == 1) {
		net->family = AF_INET6;
	} else {
		char *part = mv_utf8_sanitize(text, -1);
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "network '%s': '%s' is not an IPv4 or IPv6 address", shown,
		            part);
		g_free(part);
		goto out;
	}
	unsigned max = (unsigned)address_size(net->family) * 8;
	net->prefix = max;
	if (slash) {
		int prefix = parse_prefix(slash + 1);
		if (prefix < 0) {
			char *part = mv_utf8_sanitize(slash + 1, -1);
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "network '%s': prefix length '%s' is not a number",
			            shown, part);
			g_free(part);
			goto out;
		}
		if ((unsigned)prefix > max) {
			/* Only digits: nothing to make printable. */
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "network '%s': prefix length %s is out of range 0..%u",
			            shown, slash + 1, max);
			goto out;
		}
		net->prefix = (unsigned)prefix;
	}
	mask_host_bits(net->addr, address_size(net->family), net->prefix);
	rc = 0;
out:
	g_free(shown);
	return rc;
}

mv_networks *mv_networks_parse(const char *text, GError **error)
{
	if (!text)
		text = "";
	if (strnlen(text, MV_NETWORKS_MAX_TEXT + 1) > MV_NETWORKS_MAX_TEXT) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "network list: longer than %d bytes", MV_NETWORKS_MAX_TEXT);
		return NULL;
	}
	mv_networks *n = g_new0(mv_networks, 1);
	n->items = g_array_new(FALSE, FALSE, sizeof(network));
	for (const char *p = text;; p++) {
		size_t len = strcspn(p, ";,");
		const char *next = p + len;
		while (len > 0 && g_ascii_isspace(*p)) {
			p++;
			len--;
		}
		while (len > 0 && g_ascii_isspace(p[len - 1]))
			len--;
		if (len > 0) {
			network net;
			if (n->items->len >= MV_NETWORKS_MAX_ITEMS) {
				g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "network list: more than %d networks",
				            MV_NETWORKS_MAX_ITEMS);
				goto fail;
			}
			if (parse_item(p, len, &net, error) < 0)
				goto fail;
			g_array_append_val(n->items, net);
		}
		if (!*next)
			break;
		p = next;
	}
	return n;
fail:
	mv_networks_free(&n);
	return NULL;
}

void mv_networks_free(mv_networks **n)
{
	if (!*n)
		return;
	g_array_free((*n)->items, TRUE);
	g_free(*n);
	*n = NULL;
}

static bool contains_address(const mv_networks *n, int family, const uint8_t *addr)
{
	for (guint i = 0; i < n->items->len; i++) {
		const network *net = &g_array_index(n->items, network, i);
		if (net->family == family && prefix_matches(addr, net))
			return true;
	}
	return false;
}

/* An IPv4 client in either of its two spellings (see the header). */
static bool contains_v4(const mv_networks *n, const uint8_t *v4)
{
	uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff };
	memcpy(mapped + 12, v4, 4);
	return contains_address(n, AF_INET, v4) || contains_address(n, AF_INET6, mapped);
}

static bool contains_v6(const mv_networks *n, const struct in6_addr *v6)
{
	if (IN6_IS_ADDR_V4MAPPED(v6))
		return contains_v4(n, v6->s6_addr + 12);
	return contains_address(n, AF_INET6, v6->s6_addr);
}

bool mv_networks_contains(const mv_networks *n, const struct sockaddr *sa)
{
	if (!n || !sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return contains_v4(n, (const uint8_t *)&sin->sin_addr);
	}
	if (sa->sa_family == AF_INET6)
		return contains_v6(n, &((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

bool mv_networks_contains_text(const mv_networks *n, const char *address)
{
	char text[INET6_ADDRSTRLEN];
	struct in_addr v4;
	struct in6_addr v6;
	if (!n || !address)
		return false;
	size_t len = strnlen(address, sizeof text);
	if (len >= sizeof text)
		return false;
	memcpy(text, address, len + 1);
	if (inet_pton(AF_INET, text, &v4) == 1)
		return contains_v4(n, (const uint8_t *)&v4);
	if (inet_pton(AF_INET6, text, &v6) == 1)
		return contains_v6(n, &v6);
	return false;
}

char *mv_networks_to_text(const mv_networks *n)
{
	GString *out = g_string_new(NULL);
	for (guint i = 0; n && i < n->items->len; i++) {
		const network *net = &g_array_index(n->items, network, i);
		char addr[INET6_ADDRSTRLEN];
		/* The buffer holds the longest address, so this cannot fail. */
		if (!inet_ntop(net->family, net->addr, addr, sizeof addr))
			g_error("inet_ntop failed on a parsed network");
		g_string_append_printf(out, "%s%s/%u", i ? ";" : "", addr, net->prefix);
	}
	return g_string_free(out, FALSE);
}

size_t mv_networks_count(const mv_networks *n)
{
	return n ? n->items->len : 0;
}
