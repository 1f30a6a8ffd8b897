/* Unit tests for lists of networks (net/networks.c): the first and last
 * address of a network in and the neighbours just outside out, for IPv4
 * and IPv6 and prefixes that split a byte; IPv4-mapped addresses in both
 * directions; socket addresses of every family; the exact refusal an
 * administrator reads for each kind of bad item; the bounds; and the
 * canonical text, hosts bits masked, parsing back to itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "net/networks.h"

static mv_networks *parse_ok(const char *text)
{
	GError *err = NULL;
	mv_networks *n = mv_networks_parse(text, &err);
	if (!n)
		fail_msg("'%s' refused: %s", text, err->message);
	return n;
}

static void expect_refused(const char *text, int code, const char *message)
{
	GError *err = NULL;
	mv_networks *n = mv_networks_parse(text, &err);
	if (n)
		fail_msg("'%s' accepted", text);
	assert_int_equal(err->code, code);
	assert_string_equal(err->message, message);
	g_error_free(err);
}

static void expect_in(const mv_networks *n, const char *address)
{
	if (!mv_networks_contains_text(n, address))
		fail_msg("%s not found in the list", address);
}

static void expect_out(const mv_networks *n, const char *address)
{
	if (mv_networks_contains_text(n, address))
		fail_msg("%s found in the list", address);
}

static void expect_text(const char *text, const char *canonical)
{
	mv_networks *n = parse_ok(text);
	char *shown = mv_networks_to_text(n);
	assert_string_equal(shown, canonical);
	g_free(shown);
	mv_networks_free(&n);
}

static void test_ipv4_boundaries(void **state)
{
	mv_networks *n = parse_ok("10.0.0.0/8; 192.0.2.64/26; 198.51.100.7; 203.0.113.9/32");
	assert_int_equal(mv_networks_count(n), 4);
	expect_in(n, "10.0.0.0");
	expect_in(n, "10.255.255.255");
	expect_out(n, "9.255.255.255");
	expect_out(n, "11.0.0.0");
	expect_in(n, "192.0.2.64");
	expect_in(n, "192.0.2.127");
	expect_out(n, "192.0.2.63");
	expect_out(n, "192.0.2.128");
	expect_in(n, "198.51.100.7");
	expect_out(n, "198.51.100.6");
	expect_out(n, "198.51.100.8");
	expect_in(n, "203.0.113.9");
	expect_out(n, "203.0.113.8");
	expect_out(n, "203.0.113.10");
	expect_out(n, "2001:db8::1");
	mv_networks_free(&n);
	assert_null(n);
}

static void test_ipv4_everything(void **state)
{
	mv_networks *n = parse_ok("0.0.0.0/0");
	expect_in(n, "0.0.0.0");
	expect_in(n, "255.255.255.255");
	expect_in(n, "::ffff:192.0.2.1");
	expect_out(n, "::1");
	expect_out(n, "2001:db8::1");
	mv_networks_free(&n);
}

static void test_ipv6_boundaries(void **state)
{
	mv_networks *n = parse_ok("2001:db8::/32, 2001:db8:8000::/33 ,fe80::/10, ::1");
	/* the /32 */
	expect_in(n, "2001:db8::");
	expect_in(n, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "2001:db9::");
	/* a prefix that splits a byte: fe80::/10 is fe80:: .. febf:ffff:... */
	expect_in(n, "fe80::");
	expect_in(n, "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "fec0::");
	/* the /128 */
	expect_in(n, "::1");
	expect_out(n, "::");
	expect_out(n, "::2");
	expect_out(n, "127.0.0.1");
	mv_networks_free(&n);

	n = parse_ok("2001:db8:8000::/33");
	expect_in(n, "2001:db8:8000::");
	expect_in(n, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff");
	expect_out(n, "2001:db9::");
	mv_networks_free(&n);

	n = parse_ok("::/0");
	expect_in(n, "::");
	expect_in(n, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	mv_networks_free(&n);
}

static void test_mapped_addresses(void **state)
{
	/* A mapped address is its IPv4 address for IPv4 networks... */
	mv_networks *n = parse_ok("10.0.0.0/8");
	expect_in(n, "::ffff:10.0.0.1");
	expect_in(n, "::ffff:a00:1");
	expect_out(n, "::ffff:11.0.0.0");
	expect_out(n, "::ffff:9.255.255.255");
	/* ...but not the deprecated IPv4-compatible form, nor NAT64. */
	expect_out(n, "::10.0.0.1");
	expect_out(n, "64:ff9b::10.0.0.1");
	mv_networks_free(&n);

	/* ...and an IPv4 address is its mapped form for IPv6 networks. */
	n = parse_ok("::ffff:10.0.0.0/104");
	expect_in(n, "10.0.0.1");
	expect_in(n, "::ffff:10.255.255.255");
	expect_out(n, "11.0.0.0");
	mv_networks_free(&n);

	n = parse_ok("::ffff:0:0/96");
	expect_in(n, "192.0.2.1");
	expect_out(n, "2001:db8::1");
	mv_networks_free(&n);

	n = parse_ok("::/0");
	expect_in(n, "192.0.2.1");
	mv_networks_free(&n);
}

static void test_socket_addresses(void **state)
{
	mv_networks *n = parse_ok("192.0.2.0/24; 2001:db8::/32; 10.0.0.0/8");
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(993) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(993) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	assert_int_equal(inet_pton(AF_INET, "192.0.2.255", &sin.sin_addr), 1);
	assert_true(mv_networks_contains(n, (struct sockaddr *)&sin));
	assert_int_equal(inet_pton(AF_INET, "192.0.3.0", &sin.sin_addr), 1);
	assert_false(mv_networks_contains(n, (struct sockaddr *)&sin));

	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1::1", &sin6.sin6_addr), 1);
	assert_true(mv_networks_contains(n, (struct sockaddr *)&sin6));
	assert_int_equal(inet_pton(AF_INET6, "2001:db9::1", &sin6.sin6_addr), 1);
	assert_false(mv_networks_contains(n, (struct sockaddr *)&sin6));
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.9.8.7", &sin6.sin6_addr), 1);
	assert_true(mv_networks_contains(n, (struct sockaddr *)&sin6));
	assert_int_equal(inet_pton(AF_INET6, "::ffff:11.9.8.7", &sin6.sin6_addr), 1);
	assert_false(mv_networks_contains(n, (struct sockaddr *)&sin6));

	strcpy(sun.sun_path, "/run/mailvault.sock");
	assert_false(mv_networks_contains(n, (struct sockaddr *)&sun));
	assert_false(mv_networks_contains(n, NULL));
	mv_networks_free(&n);

	/* Even a list that takes in everything does not take in a local socket. */
	n = parse_ok("0.0.0.0/0; ::/0");
	assert_false(mv_networks_contains(n, (struct sockaddr *)&sun));
	mv_networks_free(&n);
}

static void test_unparsable_addresses(void **state)
{
	mv_networks *n = parse_ok("0.0.0.0/0; ::/0");
	expect_in(n, "192.0.2.1");
	expect_out(n, "");
	expect_out(n, "192.0.2.1/32");
	expect_out(n, " 192.0.2.1");
	expect_out(n, "192.0.2");
	expect_out(n, "[::1]");
	expect_out(n, "::1%lo");
	expect_out(n, "192.0.2.1:993");
	expect_out(n, "localhost");
	char *long_text = g_strnfill(1000, '1');
	expect_out(n, long_text);
	g_free(long_text);
	assert_false(mv_networks_contains_text(n, NULL));
	assert_false(mv_networks_contains_text(NULL, "192.0.2.1"));
	mv_networks_free(&n);
}

static void test_bad_items(void **state)
{
	expect_refused("10.0.0.0/33", MV_ERR_INVALID, "network '10.0.0.0/33': prefix length 33 is out of range 0..32");
	expect_refused("::/129", MV_ERR_INVALID, "network '::/129': prefix length 129 is out of range 0..128");
	expect_refused("10.0.0.0/99999", MV_ERR_INVALID,
	               "network '10.0.0.0/99999': prefix length 99999 is out of range 0..32");
	expect_refused("10.0.0.0/", MV_ERR_INVALID, "network '10.0.0.0/': prefix length '' is not a number");
	expect_refused("10.0.0.0/-1", MV_ERR_INVALID, "network '10.0.0.0/-1': prefix length '-1' is not a number");
	expect_refused("10.0.0.0/+8", MV_ERR_INVALID, "network '10.0.0.0/+8': prefix length '+8' is not a number");
	expect_refused("10.0.0.0/8/8", MV_ERR_INVALID, "network '10.0.0.0/8/8': prefix length '8/8' is not a number");
	expect_refused("10.0.0.0/ 8", MV_ERR_INVALID, "network '10.0.0.0/ 8': prefix length ' 8' is not a number");
	expect_refused("10.0.0/8", MV_ERR_INVALID, "network '10.0.0/8': '10.0.0' is not an IPv4 or IPv6 address");
	expect_refused("/8", MV_ERR_INVALID, "network '/8': '' is not an IPv4 or IPv6 address");
	expect_refused("10.0.0.0 /8", MV_ERR_INVALID, "network '10.0.0.0 /8': '10.0.0.0 ' is not an IPv4 or IPv6 address");
	expect_refused("localhost", MV_ERR_INVALID, "network 'localhost': 'localhost' is not an IPv4 or IPv6 address");
	expect_refused("2001:db8:::/32", MV_ERR_INVALID,
	               "network '2001:db8:::/32': '2001:db8:::' is not an IPv4 or IPv6 address");
	expect_refused("fe80::1%eth0", MV_ERR_INVALID,
	               "network 'fe80::1%eth0': 'fe80::1%eth0' is not an IPv4 or IPv6 address");
	/* The bad item is named, not the list, wherever it stands. */
	expect_refused("127.0.0.0/8; ::1; 300.1.1.1, 10.0.0.0/8", MV_ERR_INVALID,
	               "network '300.1.1.1': '300.1.1.1' is not an IPv4 or IPv6 address");
	/* Bytes that are not text come back printable. */
	expect_refused("10.0.0.\xff", MV_ERR_INVALID,
	               "network '10.0.0.\xef\xbf\xbd': '10.0.0.\xef\xbf\xbd' is not an IPv4 or IPv6 address");
	expect_refused("10.0.0.0/\x01", MV_ERR_INVALID, "network '10.0.0.0/ ': prefix length ' ' is not a number");
}

static void test_long_items(void **state)
{
	/* The longest address there is, with the longest prefix, fits. */
	expect_text("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	expect_refused("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/0128", MV_ERR_INVALID,
	               "network 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/0128': longer than 49 characters");
	char *item = g_strnfill(100, '1');
	char *message = g_strdup_printf("network '%.64s...': longer than 49 characters", item);
	expect_refused(item, MV_ERR_INVALID, message);
	g_free(message);
	g_free(item);
}

static void test_bounds(void **state)
{
	GString *list = g_string_new(NULL);
	for (int i = 0; i < MV_NETWORKS_MAX_ITEMS; i++)
		g_string_append_printf(list, "10.%d.%d.0/24;", i / 256, i % 256);
	mv_networks *n = parse_ok(list->str);
	assert_int_equal(mv_networks_count(n), MV_NETWORKS_MAX_ITEMS);
	expect_in(n, "10.39.15.255");   /* item 9999 */
	expect_out(n, "10.39.16.0");
	mv_networks_free(&n);
	g_string_append(list, " ;; ::1");
	expect_refused(list->str, MV_ERR_LIMIT, "network list: more than 10000 networks");

	/* Empty items do not count; bytes do. */
	g_string_truncate(list, 0);
	g_string_append(list, "::1");
	while (list->len < MV_NETWORKS_MAX_TEXT)
		g_string_append_c(list, ';');
	n = parse_ok(list->str);
	assert_int_equal(mv_networks_count(n), 1);
	mv_networks_free(&n);
	g_string_append_c(list, ' ');
	expect_refused(list->str, MV_ERR_LIMIT, "network list: longer than 1048576 bytes");
	g_string_free(list, TRUE);
}

static void test_empty_lists(void **state)
{
	const char *empties[] = { "", "   ", ";", " ; ,\t;\n,, ", NULL };
	for (size_t i = 0; i < G_N_ELEMENTS(empties); i++) {
		mv_networks *n = parse_ok(empties[i]);
		assert_int_equal(mv_networks_count(n), 0);
		expect_out(n, "127.0.0.1");
		expect_out(n, "::1");
		char *text = mv_networks_to_text(n);
		assert_string_equal(text, "");
		g_free(text);
		mv_networks_free(&n);
	}
	mv_networks *none = NULL;
	mv_networks_free(&none);
	assert_int_equal(mv_networks_count(NULL), 0);
}

static void test_whitespace(void **state)
{
	mv_networks *n = parse_ok(" \t10.0.0.0/8 ;\n ::1\r\n, 192.0.2.7\f;");
	assert_int_equal(mv_networks_count(n), 3);
	expect_in(n, "10.1.1.1");
	expect_in(n, "::1");
	expect_in(n, "192.0.2.7");
	char *text = mv_networks_to_text(n);
	assert_string_equal(text, "10.0.0.0/8;::1/128;192.0.2.7/32");
	g_free(text);
	mv_networks_free(&n);
}

static void test_host_bits_masked(void **state)
{
	expect_text("10.1.2.3/8", "10.0.0.0/8");
	expect_text("192.0.2.255/25", "192.0.2.128/25");
	expect_text("192.0.2.255/31", "192.0.2.254/31");
	expect_text("1.2.3.4/0", "0.0.0.0/0");
	expect_text("2001:db8:1:2:3:4:5:6/32", "2001:db8::/32");
	expect_text("fe80::1/10", "fe80::/10");
	expect_text("febf:ffff::/9", "fe80::/9");
	expect_text("::1/0", "::/0");
	mv_networks *n = parse_ok("10.1.2.3/8");
	expect_in(n, "10.200.0.1");
	mv_networks_free(&n);
}

static void test_to_text_round_trip(void **state)
{
	const char *list = "127.0.0.0/8; ::1/128; 192.0.2.7; 2001:DB8:0:0::/32, ::ffff:10.0.0.0/104,"
	                   "0.0.0.0/0;::/0; 10.0.0.0/08; 10.0.0.0/8";
	const char *canonical = "127.0.0.0/8;::1/128;192.0.2.7/32;2001:db8::/32;::ffff:10.0.0.0/104;"
	                        "0.0.0.0/0;::/0;10.0.0.0/8;10.0.0.0/8";
	expect_text(list, canonical);
	expect_text(canonical, canonical);
	mv_networks *n = parse_ok(canonical);
	assert_int_equal(mv_networks_count(n), 9);
	mv_networks_free(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_boundaries),
		cmocka_unit_test(test_ipv4_everything),
		cmocka_unit_test(test_ipv6_boundaries),
		cmocka_unit_test(test_mapped_addresses),
		cmocka_unit_test(test_socket_addresses),
		cmocka_unit_test(test_unparsable_addresses),
		cmocka_unit_test(test_bad_items),
		cmocka_unit_test(test_long_items),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_empty_lists),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_host_bits_masked),
		cmocka_unit_test(test_to_text_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
