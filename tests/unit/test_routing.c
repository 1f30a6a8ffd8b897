/* Unit tests for sources/routing.c: which archives and folders a message's
 * addresses choose — envelope before visible recipients, the sender's
 * template, aliases, letter case, the unknown-address policies, bad
 * templates — header blocks as mail brings them (folded, CRLF, no end,
 * NUL bytes, deep groups), and the users as an instance has them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sources/routing.h"

#define INSTANCE_FIXTURE_NAME "routing"
#include "instance_fixture.h"

static const char *const alice_emails[] = { "alice@example.org", "Ali@Example.ORG", NULL };
static const char *const bob_emails[] = { "bob@example.org", NULL };
static const char *const carol_emails[] = { "carol@example.org", NULL };
static const char *const nobody_emails[] = { NULL };

static int setup(void **state)
{
	const mv_routing_user users[] = {
		{ "alice", alice_emails },
		{ "bob", bob_emails },
		{ "carol", carol_emails },
		{ "nobody", nobody_emails },   /* no address: not routable */
	};
	*state = mv_routing_new(users, G_N_ELEMENTS(users));
	return 0;
}

static int teardown(void **state)
{
	mv_routing_free(*state);
	return 0;
}

static const mv_route_options inbox = {
	.folder = "Inbox/{h-email}",
	.sent_folder = "Sent/{u-email}",
	.unknown = MV_UNKNOWN_IGNORE,
};

/* Routes text as a message (its bytes, with their length: NULs count). */
static void route_bytes(const mv_routing *r, const mv_route_options *o, const char *const *envelope,
                        const char *sender, const char *data, size_t len, mv_route *route)
{
	GError *err = NULL;
	int rc = mv_route_message(r, o, envelope, sender, (const uint8_t *)data, len, route, &err);
	if (rc < 0)
		fail_msg("routing failed: %s", err->message);
	assert_null(err);
}

static void route_text(const mv_routing *r, const mv_route_options *o, const char *data, mv_route *route)
{
	route_bytes(r, o, NULL, NULL, data, strlen(data), route);
}

static const mv_route_target *target(const mv_route *route, guint i)
{
	assert_true(i < route->targets->len);
	return route->targets->pdata[i];
}

static void expect_target(const mv_route *route, guint i, const char *archive, const char *folder, bool as_sender)
{
	const mv_route_target *t = target(route, i);
	assert_string_equal(t->archive, archive);
	assert_string_equal(t->folder, folder);
	assert_int_equal(t->as_sender, as_sender);
}

static void test_policy_names(void **state)
{
	(void)state;
	mv_unknown_policy p = MV_UNKNOWN_IGNORE;
	assert_true(mv_unknown_policy_from_name("catchall", &p));
	assert_int_equal(p, MV_UNKNOWN_CATCHALL);
	assert_true(mv_unknown_policy_from_name("leave", &p));
	assert_int_equal(p, MV_UNKNOWN_LEAVE);
	assert_true(mv_unknown_policy_from_name("reject", &p));
	assert_int_equal(p, MV_UNKNOWN_REJECT);
	assert_true(mv_unknown_policy_from_name("ignore", &p));
	assert_int_equal(p, MV_UNKNOWN_IGNORE);
	assert_false(mv_unknown_policy_from_name("Catchall", &p));
	assert_false(mv_unknown_policy_from_name("", &p));
	assert_false(mv_unknown_policy_from_name(NULL, &p));
}

static void test_user_of(void **state)
{
	mv_routing *r = *state;
	assert_int_equal(mv_routing_user_count(r), 3);
	assert_string_equal(mv_routing_user_of(r, "alice@example.org"), "alice");
	assert_string_equal(mv_routing_user_of(r, " <ALICE@Example.org> "), "alice");
	assert_string_equal(mv_routing_user_of(r, "ali@example.org"), "alice");
	assert_string_equal(mv_routing_user_of(r, "BOB@EXAMPLE.ORG"), "bob");
	assert_null(mv_routing_user_of(r, "dave@example.org"));
	assert_null(mv_routing_user_of(r, ""));
	assert_null(mv_routing_user_of(r, "<>"));
	assert_null(mv_routing_user_of(r, NULL));
}

static void test_envelope_headers_win(void **state)
{
	mv_route route;
	route_text(*state, &inbox,
	           "Delivered-To: bob@example.org\n"
	           "To: alice@example.org\n"
	           "Subject: hi\n"
	           "\n"
	           "To: carol@example.org\n", &route);
	assert_false(route.unknown);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	assert_string_equal(target(&route, 0)->address, "bob@example.org");
	mv_route_clear(&route);
	assert_null(route.targets);
}

static void test_caller_envelope_wins(void **state)
{
	mv_route route;
	const char *const envelope[] = { "<carol@example.org>", NULL };
	const char *msg = "Delivered-To: bob@example.org\nTo: alice@example.org\n\n";
	route_bytes(*state, &inbox, envelope, NULL, msg, strlen(msg), &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "carol", "Inbox/carol@example.org", false);
	mv_route_clear(&route);

	/* an empty envelope is none: the headers decide */
	const char *const none[] = { NULL };
	route_bytes(*state, &inbox, none, NULL, msg, strlen(msg), &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	mv_route_clear(&route);
}

static void test_unknown_envelope_falls_back_to_to(void **state)
{
	mv_route route;
	route_text(*state, &inbox,
	           "Delivered-To: journal@example.org\n"
	           "X-Original-To: <journal@example.org>\n"
	           "To: Alice <alice@example.org>, someone@else.net\n"
	           "Cc: undisclosed-recipients: bob@example.org;\n"
	           "\n", &route);
	assert_false(route.unknown);
	assert_int_equal(route.targets->len, 2);
	expect_target(&route, 0, "alice", "Inbox/alice@example.org", false);
	expect_target(&route, 1, "bob", "Inbox/bob@example.org", false);   /* inside a group */
	/* journal@ once (deduplicated), then the unknown To */
	assert_int_equal(route.unknown_addresses->len, 2);
	assert_string_equal(route.unknown_addresses->pdata[0], "journal@example.org");
	assert_string_equal(route.unknown_addresses->pdata[1], "someone@else.net");
	mv_route_clear(&route);
}

static void test_bcc(void **state)
{
	mv_route route;
	route_text(*state, &inbox, "To: list@else.net\nBcc: carol@example.org\n\nbody\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "carol", "Inbox/carol@example.org", false);
	mv_route_clear(&route);
}

static void test_alias_h_and_u(void **state)
{
	mv_route route;
	mv_route_options o = inbox;
	o.folder = "Mail/{h-email}/{u-email}";
	route_text(*state, &o, "Envelope-To: ALI@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "alice", "Mail/ali@example.org/alice@example.org", false);
	assert_string_equal(target(&route, 0)->address, "ALI@example.org");   /* as the message named it */
	mv_route_clear(&route);
}

static void test_two_users_two_targets(void **state)
{
	mv_route route;
	route_text(*state, &inbox,
	           "X-Envelope-To: alice@example.org, <bob@example.org>\n"
	           "Delivered-To: ali@example.org\n"     /* alice again: one target per archive */
	           "\n", &route);
	assert_int_equal(route.targets->len, 2);
	expect_target(&route, 0, "alice", "Inbox/alice@example.org", false);
	expect_target(&route, 1, "bob", "Inbox/bob@example.org", false);
	assert_int_equal(route.unknown_addresses->len, 0);
	mv_route_clear(&route);
}

static void test_sender(void **state)
{
	mv_route route;
	route_text(*state, &inbox, "From: Ali <ali@example.org>\nTo: friend@else.net\n\n", &route);
	assert_false(route.unknown);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "alice", "Sent/alice@example.org", true);
	mv_route_clear(&route);

	/* a recipient is not also a sender target; another user sending is */
	route_text(*state, &inbox, "From: alice@example.org\nTo: alice@example.org, bob@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 2);
	expect_target(&route, 0, "alice", "Inbox/alice@example.org", false);
	expect_target(&route, 1, "bob", "Inbox/bob@example.org", false);
	mv_route_clear(&route);

	route_text(*state, &inbox, "From: carol@example.org\nDelivered-To: bob@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 2);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	expect_target(&route, 1, "carol", "Sent/carol@example.org", true);
	mv_route_clear(&route);

	/* no sent template: the recipients' one; MAIL FROM counts as sender too */
	mv_route_options o = inbox;
	o.sent_folder = NULL;
	const char *msg = "To: friend@else.net\n\n";
	route_bytes(*state, &o, NULL, "<bob@example.org>", msg, strlen(msg), &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", true);
	mv_route_clear(&route);
}

static void test_case_insensitive(void **state)
{
	mv_route route;
	route_text(*state, &inbox, "DELIVERED-TO: Bob@Example.Org\n\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	assert_string_equal(target(&route, 0)->address, "Bob@Example.Org");
	mv_route_clear(&route);
}

static void test_received_for(void **state)
{
	mv_route route;
	route_text(*state, &inbox,
	           "Received: from mx.else.net (mx.else.net [192.0.2.1]) (using TLS for security)\n"
	           "\tby mail.example.org (Postfix) with ESMTPS id 4AB\n"
	           "\tfor <carol@example.org>; Mon, 2 Mar 2026 10:00:00 +0000\n"
	           "Received: by relay.example.org for bob@example.org; Mon, 2 Mar 2026 09:59:00 +0000\n"
	           "To: alice@example.org\n"
	           "\n", &route);
	assert_int_equal(route.targets->len, 2);
	expect_target(&route, 0, "carol", "Inbox/carol@example.org", false);
	expect_target(&route, 1, "bob", "Inbox/bob@example.org", false);
	mv_route_clear(&route);
}

static void test_unknown_policies(void **state)
{
	const char *msg = "Delivered-To: journal@example.org\nTo: Stranger <Stranger@Else.net>\nFrom: x@else.net\n\n";
	mv_route route;
	mv_route_options o = inbox;
	o.unknown = MV_UNKNOWN_CATCHALL;
	o.catchall_archive = "catchall";
	o.folder = "Unknown/{h-email}/{u-email}";
	route_text(*state, &o, msg, &route);
	assert_true(route.unknown);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "catchall", "Unknown/journal@example.org/journal@example.org", false);
	assert_int_equal(route.unknown_addresses->len, 3);
	assert_string_equal(route.unknown_addresses->pdata[0], "journal@example.org");
	assert_string_equal(route.unknown_addresses->pdata[1], "Stranger@Else.net");
	assert_string_equal(route.unknown_addresses->pdata[2], "x@else.net");
	mv_route_clear(&route);

	/* no recipient at all: "unknown", not the unknown sender */
	route_text(*state, &o, "From: x@else.net\nSubject: nobody\n\n", &route);
	assert_true(route.unknown);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "catchall", "Unknown/unknown/unknown", false);
	mv_route_clear(&route);

	static const mv_unknown_policy others[] = { MV_UNKNOWN_IGNORE, MV_UNKNOWN_LEAVE, MV_UNKNOWN_REJECT };
	for (size_t i = 0; i < G_N_ELEMENTS(others); i++) {
		o.unknown = others[i];
		o.catchall_archive = NULL;
		route_text(*state, &o, msg, &route);
		assert_true(route.unknown);
		assert_int_equal(route.targets->len, 0);
		assert_int_equal(route.unknown_addresses->len, 3);
		mv_route_clear(&route);
	}

	/* a known user anywhere (here the sender) is not unknown */
	o.unknown = MV_UNKNOWN_CATCHALL;
	o.catchall_archive = "catchall";
	route_text(*state, &o, "To: stranger@else.net\nFrom: bob@example.org\n\n", &route);
	assert_false(route.unknown);
	assert_int_equal(route.targets->len, 1);
	assert_string_equal(target(&route, 0)->archive, "bob");
	mv_route_clear(&route);
}

static void test_unknown_addresses_bounded(void **state)
{
	GString *msg = g_string_new("To: ");
	for (int i = 0; i < 300; i++)
		g_string_append_printf(msg, "%sp%d@else.net", i ? ", " : "", i);
	g_string_append(msg, "\n\n");
	mv_route route;
	route_text(*state, &inbox, msg->str, &route);
	assert_true(route.unknown);
	assert_int_equal(route.unknown_addresses->len, 100);
	assert_string_equal(route.unknown_addresses->pdata[99], "p99@else.net");
	mv_route_clear(&route);
	g_string_free(msg, TRUE);
}

static void expect_bad_options(const mv_routing *r, const mv_route_options *o, const char *needle)
{
	mv_route route;
	GError *err = NULL;
	const char *msg = "To: alice@example.org\n\n";
	fails(mv_route_message(r, o, NULL, NULL, (const uint8_t *)msg, strlen(msg), &route, &err), &err, MV_ERR_INVALID,
	      needle);
	assert_null(route.targets);
	mv_route_clear(&route);
}

static void test_bad_templates(void **state)
{
	mv_route_options o = inbox;
	o.folder = "Inbox//{h-email}";
	expect_bad_options(*state, &o, "Inbox//{h-email}");
	o.folder = "/Inbox";
	expect_bad_options(*state, &o, "empty level");
	o.folder = "Inbox/";
	expect_bad_options(*state, &o, "empty level");
	o.folder = "";
	expect_bad_options(*state, &o, "empty");
	o.folder = "In\tbox";
	expect_bad_options(*state, &o, "control character");
	o.folder = "Inbox/{h_email}";
	expect_bad_options(*state, &o, "{h_email}");
	o.folder = NULL;
	expect_bad_options(*state, &o, "missing");
	o = inbox;
	o.sent_folder = "Sent\n";
	expect_bad_options(*state, &o, "sent folder template");
	o = inbox;
	o.unknown = MV_UNKNOWN_CATCHALL;
	o.catchall_archive = NULL;
	expect_bad_options(*state, &o, "catchall");
	o.catchall_archive = "a/b";
	expect_bad_options(*state, &o, "a/b");
}

static void test_slash_in_address(void **state)
{
	const mv_routing_user users[] = { { "odd", (const char *const[]){ "a/b@example.org", NULL } } };
	mv_routing *r = mv_routing_new(users, 1);
	mv_route route;
	route_text(r, &inbox, "Delivered-To: A/B@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "odd", "Inbox/a_b@example.org", false);
	mv_route_clear(&route);
	mv_routing_free(r);
}

static void test_folded_and_crlf(void **state)
{
	mv_route route;
	route_text(*state, &inbox,
	           "Subject: x\r\n"
	           "To: someone@else.net,\r\n"
	           "\tBob\r\n"
	           " <bob@example.org>\r\n"
	           "\r\n"
	           "Delivered-To: alice@example.org\r\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	mv_route_clear(&route);

	/* a folded envelope header */
	route_text(*state, &inbox, "Delivered-To:\n  carol@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "carol", "Inbox/carol@example.org", false);
	mv_route_clear(&route);
}

static void test_no_header_end(void **state)
{
	mv_route route;
	const char *msg = "From: x@else.net\nTo: carol@example.org";   /* no empty line, no final newline */
	route_text(*state, &inbox, msg, &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "carol", "Inbox/carol@example.org", false);
	mv_route_clear(&route);

	/* an empty message, and no message */
	route_bytes(*state, &inbox, NULL, NULL, "", 0, &route);
	assert_true(route.unknown);
	mv_route_clear(&route);
	GError *err = NULL;
	assert_int_equal(mv_route_message(*state, &inbox, NULL, NULL, NULL, 0, &route, &err), 0);
	assert_true(route.unknown);
	mv_route_clear(&route);
}

static void test_header_bound(void **state)
{
	/* 2 MiB of headers: the To past the first MiB is not read */
	GString *msg = g_string_new(NULL);
	while (msg->len < 2u * 1024u * 1024u)
		g_string_append(msg, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
	g_string_append(msg, "To: alice@example.org\n\n");
	mv_route route;
	route_bytes(*state, &inbox, NULL, NULL, msg->str, msg->len, &route);
	assert_true(route.unknown);
	mv_route_clear(&route);
	/* the same To first is read */
	g_string_prepend(msg, "To: alice@example.org\n");
	route_bytes(*state, &inbox, NULL, NULL, msg->str, msg->len, &route);
	assert_int_equal(route.targets->len, 1);
	mv_route_clear(&route);
	g_string_free(msg, TRUE);
}

static void test_deep_groups(void **state)
{
	/* GMime recurses per group inside a group: 300,000 of them in 1 MiB
	 * overflowed the stack before colons were bounded */
	GString *msg = g_string_new("To: ");
	for (int i = 0; i < 300000; i++)
		g_string_append(msg, "g: ");
	g_string_append(msg, "x@else.net\nDelivered-To: journal@example.org\n\n");
	mv_route route;
	route_bytes(*state, &inbox, NULL, NULL, msg->str, msg->len, &route);
	assert_true(route.unknown);
	assert_int_equal(route.targets->len, 0);
	mv_route_clear(&route);
	g_string_free(msg, TRUE);
}

static void test_garbage(void **state)
{
	/* a NUL inside a value hides nothing after it; garbage lines are skipped */
	const char msg[] = "\x01\x02 no field\nTo: x@else.net\0, bob@example.org\n: empty name\n"
	                   "Delivered-To: <<>>, <, @, a@, @b, a b@c, \xff@example.org\n\n";
	mv_route route;
	route_bytes(*state, &inbox, NULL, NULL, msg, sizeof msg - 1, &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "bob", "Inbox/bob@example.org", false);
	assert_int_equal(route.unknown_addresses->len, 1);   /* none of the garbage "addresses" */
	assert_string_equal(route.unknown_addresses->pdata[0], "x@else.net");
	mv_route_clear(&route);
}

static void set_emails(mv_instance *inst, const char *user, const char *const *emails)
{
	GError *err = NULL;
	GPtrArray *items = g_ptr_array_new();
	for (size_t i = 0; emails[i]; i++)
		g_ptr_array_add(items, (gpointer)emails[i]);
	ok(mv_user_set_email_addresses(inst, user, items, &err), err);
	g_ptr_array_unref(items);
}

/* The instance's users: those with an address, by any of them; the first
 * is {u-email}. */
static void test_load(void **state)
{
	(void)state;
	GError *err = NULL;
	char *dir = new_instance_dir("load");
	mv_instance *inst = open_instance(dir);
	ok(mv_user_create(inst, "erin", 0, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	ok(mv_user_create(inst, "frank", 0, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	ok(mv_user_create(inst, "grace", 0, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	set_emails(inst, "erin", (const char *const[]){ "Erin@Example.org", "sales@example.org", NULL });
	set_emails(inst, "frank", (const char *const[]){ "frank@example.org", NULL });
	mv_routing *r = mv_routing_load(inst, &err);
	assert_non_null(r);
	assert_null(err);
	assert_int_equal(mv_routing_user_count(r), 2);   /* grace and the administrator have no address */
	assert_string_equal(mv_routing_user_of(r, "SALES@example.org"), "erin");
	assert_string_equal(mv_routing_user_of(r, "frank@example.org"), "frank");
	assert_null(mv_routing_user_of(r, "grace@example.org"));
	mv_route route;
	const mv_route_options o = { .folder = "{u-email}/{h-email}", .unknown = MV_UNKNOWN_IGNORE };
	route_text(r, &o, "To: sales@example.org\n\n", &route);
	assert_int_equal(route.targets->len, 1);
	expect_target(&route, 0, "erin", "erin@example.org/sales@example.org", false);
	mv_route_clear(&route);
	mv_routing_free(r);
	mv_instance_close(&inst);
	g_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_names),
		cmocka_unit_test_setup_teardown(test_user_of, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope_headers_win, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caller_envelope_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_envelope_falls_back_to_to, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bcc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_h_and_u, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_users_two_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_case_insensitive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_received_for, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_addresses_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_templates, setup, teardown),
		cmocka_unit_test(test_slash_in_address),
		cmocka_unit_test_setup_teardown(test_folded_and_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_header_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
