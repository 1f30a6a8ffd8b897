/* net/networks: a list of IPv4 and IPv6 networks ("127.0.0.0/8; ::1/128")
 * and whether a client's address lies in one of them — for settings that
 * trust or admit clients by where they connect from.  Pure functions of
 * text and addresses, fuzzed (fuzz/fuzz_networks.c). */
#ifndef MV_NET_NETWORKS_H
#define MV_NET_NETWORKS_H

#include "base/base.h"

#include <sys/socket.h>

#define MV_NETWORKS_MAX_ITEMS 10000
#define MV_NETWORKS_MAX_TEXT (1024 * 1024)

typedef struct mv_networks mv_networks;

/* Parses a list of networks separated by ';' or ',':
 * "127.0.0.0/8; ::1/128; 192.0.2.7; 2001:db8::/32".  A bare address is a
 * /32 or /128.  Whitespace around an item is ignored, and so are empty
 * items; an empty (or NULL) text is a valid list that matches nothing.
 * Host bits set beyond the prefix ("10.1.2.3/8") are accepted and masked
 * away: the network is 10.0.0.0/8, and that is what mv_networks_to_text
 * shows.  Fails with MV_ERR_INVALID naming the item and the reason (not an
 * address, prefix length not a number or out of range, item too long), or
 * MV_ERR_LIMIT beyond MV_NETWORKS_MAX_ITEMS items or MV_NETWORKS_MAX_TEXT
 * bytes of text. */
mv_networks *mv_networks_parse(const char *text, GError **error);
void mv_networks_free(mv_networks **n);

/* Whether a socket address (AF_INET, AF_INET6) lies in one of the networks;
 * false for AF_UNIX and every other family, and for NULL.
 *
 * An IPv4 address and its IPv4-mapped form ::ffff:a.b.c.d are one client:
 * either is checked against the IPv4 networks as a.b.c.d and against the
 * IPv6 networks as ::ffff:a.b.c.d, so that the answer does not depend on
 * whether the listener is a dual-stack socket.  (So ::/0 and ::ffff:0:0/96
 * take in every IPv4 client too.) */
bool mv_networks_contains(const mv_networks *n, const struct sockaddr *sa);
/* The same for an address as text ("192.0.2.1", "::1", "::ffff:10.0.0.1");
 * false for anything that is not one address (a network, a zone index, a
 * port, brackets). */
bool mv_networks_contains_text(const mv_networks *n, const char *address);

/* The list in canonical form, "127.0.0.0/8;::1/128" (a new string, "" for
 * an empty list), for logs and for saving a configuration: it parses back
 * to the same networks and prints the same again. */
char *mv_networks_to_text(const mv_networks *n);
size_t mv_networks_count(const mv_networks *n);

#endif
