/* Unit tests for the IMAP and POP3 clients' pure parsers: IMAP server
 * responses taken apart (sources/imap_response.c) — FETCH with its
 * literal's bytes and offsets exact, bracketed atoms, LIST, STATUS, SEARCH,
 * status responses with their codes, continuations, quoting, NIL, and the
 * malformed responses that must fail —, the accessors' edges, the literal
 * announcement at a line's end, UID sets in chunks (imap_client.c) and
 * POP3's dot-unstuffing (pop3_client.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sources/imap_client.h"
#include "sources/imap_response.h"
#include "sources/pop3_client.h"

/* One response parsed; the received bytes live as long as it does. */
typedef struct parsed {
	GByteArray *raw;
	mv_imap_response r;
} parsed;

static void parse_bytes(parsed *p, const char *data, size_t len)
{
	p->raw = g_byte_array_new();
	g_byte_array_append(p->raw, (const guint8 *)data, (guint)len);
	GError *err = NULL;
	if (mv_imap_response_parse(p->raw, &p->r, &err) < 0)
		fail_msg("%s", err->message);
	assert_null(err);
}

static void parse(parsed *p, const char *text)
{
	parse_bytes(p, text, strlen(text));
}

static void done(parsed *p)
{
	mv_imap_response_clear(&p->r);
	g_byte_array_unref(p->raw);
}

/* The response must fail with a message naming why. */
static void parse_fails(const char *data, size_t len, const char *why)
{
	GByteArray *raw = g_byte_array_new();
	g_byte_array_append(raw, (const guint8 *)data, (guint)len);
	mv_imap_response r;
	GError *err = NULL;
	assert_int_equal(mv_imap_response_parse(raw, &r, &err), -1);
	assert_non_null(err);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	if (!strstr(err->message, why))
		fail_msg("expected \"%s\" in \"%s\"", why, err->message);
	g_error_free(err);
	mv_imap_response_clear(&r);
	g_byte_array_unref(raw);
}

static const mv_imap_value *at(const parsed *p, uint32_t i)
{
	const mv_imap_value *v = mv_imap_value_at(&p->r, i);
	assert_non_null(v);
	return v;
}

static const mv_imap_value *next(const parsed *p, const mv_imap_value *v)
{
	return at(p, v->next);
}

static void expect_imap_atom(const parsed *p, const mv_imap_value *v, const char *word)
{
	assert_non_null(v);
	assert_int_equal(v->kind, MV_IMAP_ATOM);
	char *s = mv_imap_dup(&p->r, v);
	assert_string_equal(s, word);
	g_free(s);
	assert_true(mv_imap_atom_is(&p->r, v, word));
}

static void expect_imap_string(const parsed *p, const mv_imap_value *v, const char *bytes, size_t len)
{
	assert_non_null(v);
	assert_int_equal(v->kind, MV_IMAP_STRING);
	size_t n = 99;
	const uint8_t *b = mv_imap_bytes(&p->r, v, &n);
	assert_non_null(b);
	assert_int_equal(n, len);
	assert_memory_equal(b, bytes, len);
}

static uint64_t number_of(const parsed *p, const mv_imap_value *v)
{
	uint64_t n = 0;
	assert_true(mv_imap_number(&p->r, v, &n));
	return n;
}

/* ---- FETCH ---------------------------------------------------------------------------------- */

static void test_fetch_literal(void **state)
{
	(void)state;
	/* The literal holds what would end the list, a line end and a literal
	 * announcement of its own: none of it may be read as syntax. */
	static const char lit[] = "Subject: ) {5}\r\n\r\n(body) \"x\r\n{5}\r\n";
	const size_t lit_len = sizeof lit - 1;
	char *head = g_strdup_printf("* 12 fetch (UID 4827 FLAGS (\\Seen $Forwarded) BODY[] {%zu}\r\n", lit_len);
	GString *wire = g_string_new(head);
	g_string_append_len(wire, lit, (gssize)lit_len);
	g_string_append(wire, " RFC822.SIZE 44)\r\n");
	parsed p;
	parse_bytes(&p, wire->str, wire->len);

	assert_int_equal(p.r.type, MV_IMAP_RESP_DATA);
	assert_string_equal(p.r.tag, "*");
	assert_int_equal(p.r.number, 12);
	assert_string_equal(p.r.name, "FETCH");
	const mv_imap_value *att = at(&p, p.r.first);
	assert_int_equal(att->kind, MV_IMAP_LIST);
	assert_int_equal(att->next, MV_IMAP_NONE);

	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, att, "UID")), 4827);
	const mv_imap_value *flags = mv_imap_pair(&p.r, att, "flags");
	assert_non_null(flags);
	assert_int_equal(flags->kind, MV_IMAP_LIST);
	expect_imap_atom(&p, at(&p, flags->child), "\\Seen");
	expect_imap_atom(&p, next(&p, at(&p, flags->child)), "$Forwarded");
	assert_int_equal(next(&p, at(&p, flags->child))->next, MV_IMAP_NONE);

	const mv_imap_value *body = mv_imap_pair(&p.r, att, "BODY[]");
	expect_imap_string(&p, body, lit, lit_len);
	assert_false(body->unescaped);
	assert_int_equal(body->off, strlen(head));   /* in place: offsets into the received bytes */
	assert_int_equal(body->len, lit_len);
	char *dup = mv_imap_dup(&p.r, body);
	assert_string_equal(dup, lit);
	g_free(dup);
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, att, "RFC822.SIZE")), 44);
	assert_null(mv_imap_pair(&p.r, att, "BODY"));

	done(&p);
	g_string_free(wire, TRUE);
	g_free(head);
}

static void test_fetch_header_fields(void **state)
{
	(void)state;
	static const char wire[] = "* 3 FETCH (UID 9 BODY[HEADER.FIELDS (FROM TO)] {22}\r\n"
	                           "From: x@y\r\nTo: z@w\r\n\r\n BODY[]<0> \"a\")\r\n";
	parsed p;
	parse(&p, wire);
	const mv_imap_value *att = at(&p, p.r.first);
	const mv_imap_value *key = next(&p, next(&p, at(&p, att->child)));
	expect_imap_atom(&p, key, "BODY[HEADER.FIELDS (FROM TO)]");   /* one atom, spaces and all */
	expect_imap_string(&p, mv_imap_pair(&p.r, att, "BODY[HEADER.FIELDS (FROM TO)]"), "From: x@y\r\nTo: z@w\r\n\r\n", 22);
	expect_imap_string(&p, mv_imap_pair(&p.r, att, "BODY[]<0>"), "a", 1);
	done(&p);
}

/* ---- LIST, STATUS, SEARCH, EXISTS ----------------------------------------------------------- */

static void test_list(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* LIST (\\HasNoChildren \\Junk) \"/\" \"Spam\"\r\n");
	assert_string_equal(p.r.name, "LIST");
	assert_int_equal(p.r.number, -1);
	const mv_imap_value *attrs = at(&p, p.r.first);
	assert_int_equal(attrs->kind, MV_IMAP_LIST);
	expect_imap_atom(&p, at(&p, attrs->child), "\\HasNoChildren");
	assert_true(mv_imap_atom_is(&p.r, next(&p, at(&p, attrs->child)), "\\junk"));
	assert_false(mv_imap_atom_is(&p.r, next(&p, at(&p, attrs->child)), "\\Jun"));
	assert_false(mv_imap_atom_is(&p.r, next(&p, at(&p, attrs->child)), "\\JunkMail"));
	const mv_imap_value *delim = next(&p, attrs);
	expect_imap_string(&p, delim, "/", 1);
	expect_imap_string(&p, next(&p, delim), "Spam", 4);
	assert_false(mv_imap_atom_is(&p.r, next(&p, delim), "Spam"));   /* a string is no atom */
	assert_int_equal(next(&p, delim)->next, MV_IMAP_NONE);
	done(&p);

	/* No hierarchy, the name as a literal. */
	parse(&p, "* LIST (\\Noselect) NIL {7}\r\nA \"b\" c\r\n");
	delim = next(&p, at(&p, p.r.first));
	assert_int_equal(delim->kind, MV_IMAP_NIL);
	size_t n = 5;
	assert_null(mv_imap_bytes(&p.r, delim, &n));
	assert_int_equal(n, 0);
	assert_null(mv_imap_dup(&p.r, delim));
	expect_imap_string(&p, next(&p, delim), "A \"b\" c", 7);
	done(&p);

	/* An empty name is a string, not nothing (it once came back NULL). */
	parse(&p, "* LIST () NIL \"\"\r\n");
	const mv_imap_value *name = next(&p, next(&p, at(&p, p.r.first)));
	expect_imap_string(&p, name, "", 0);
	char *s = mv_imap_dup(&p.r, name);
	assert_non_null(s);
	assert_string_equal(s, "");
	g_free(s);
	done(&p);
}

static void test_status_pairs(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* STATUS \"INBOX\" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 3857529045 HIGHESTMODSEQ 7011231777)\r\n");
	const mv_imap_value *name = at(&p, p.r.first);
	expect_imap_string(&p, name, "INBOX", 5);
	const mv_imap_value *items = next(&p, name);
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, items, "MESSAGES")), 231);
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, items, "UIDNEXT")), 44292);
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, items, "UIDVALIDITY")), 3857529045u);
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, items, "HIGHESTMODSEQ")), 7011231777u);
	assert_null(mv_imap_pair(&p.r, items, "UNSEEN"));
	assert_null(mv_imap_pair(&p.r, items, "231"));   /* a value is never a key */
	assert_null(mv_imap_pair(&p.r, name, "INBOX"));  /* not a list */
	assert_null(mv_imap_pair(&p.r, NULL, "MESSAGES"));
	done(&p);

	/* Pairs step two at a time: the value "UID" of key X is no key. */
	parse(&p, "* STATUS x (X UID UID 5 ODD)\r\n");
	items = next(&p, at(&p, p.r.first));
	assert_int_equal(number_of(&p, mv_imap_pair(&p.r, items, "UID")), 5);
	assert_null(mv_imap_pair(&p.r, items, "ODD"));   /* a key without its value */
	done(&p);
}

static void test_search_and_counts(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* SEARCH 2 84 882\r\n");
	assert_string_equal(p.r.name, "SEARCH");
	const mv_imap_value *v = at(&p, p.r.first);
	assert_int_equal(number_of(&p, v), 2);
	assert_int_equal(number_of(&p, v = next(&p, v)), 84);
	assert_int_equal(number_of(&p, v = next(&p, v)), 882);
	assert_int_equal(v->next, MV_IMAP_NONE);
	done(&p);

	parse(&p, "* SEARCH\r\n");
	assert_int_equal(p.r.first, MV_IMAP_NONE);
	done(&p);

	parse(&p, "* 23 EXISTS\n");   /* LF alone ends a line too */
	assert_int_equal(p.r.type, MV_IMAP_RESP_DATA);
	assert_int_equal(p.r.number, 23);
	assert_string_equal(p.r.name, "EXISTS");
	assert_int_equal(p.r.first, MV_IMAP_NONE);
	done(&p);
}

/* ---- status responses and continuations ----------------------------------------------------- */

static void test_tagged_status(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "a0007 NO [TRYCREATE] Mailbox doesn't exist\r\n");
	assert_int_equal(p.r.type, MV_IMAP_RESP_STATUS);
	assert_string_equal(p.r.tag, "a0007");
	assert_string_equal(p.r.status, "NO");
	assert_string_equal(p.r.code, "TRYCREATE");
	assert_string_equal(p.r.text, "Mailbox doesn't exist");
	assert_int_equal(p.r.first, MV_IMAP_NONE);
	done(&p);

	parse(&p, "A1 ok [COPYUID 38505 304,319:320 3956:3958] Done\r\n");
	assert_string_equal(p.r.status, "OK");
	assert_string_equal(p.r.code, "COPYUID 38505 304,319:320 3956:3958");
	assert_string_equal(p.r.text, "Done");
	done(&p);

	parse(&p, "a2 BAD\r\n");
	assert_string_equal(p.r.status, "BAD");
	assert_null(p.r.code);
	assert_string_equal(p.r.text, "");
	done(&p);

	parse_fails("a3 FETCH (UID 1)\r\n", 18, "not OK, NO or BAD");
	parse_fails("a4 OK [ALERT no end\r\n", 21, "without its ']'");
}

static void test_untagged_status(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
	assert_int_equal(p.r.type, MV_IMAP_RESP_STATUS);
	assert_string_equal(p.r.tag, "*");
	assert_string_equal(p.r.status, "OK");
	assert_string_equal(p.r.code, "UIDVALIDITY 3857529045");
	assert_string_equal(p.r.text, "UIDs valid");
	assert_int_equal(p.r.number, -1);
	assert_null(p.r.name);
	done(&p);

	parse(&p, "* BYE Autologout; idle for too long\r\n");
	assert_int_equal(p.r.type, MV_IMAP_RESP_STATUS);
	assert_string_equal(p.r.status, "BYE");
	assert_null(p.r.code);
	assert_string_equal(p.r.text, "Autologout; idle for too long");
	done(&p);
}

static void test_continuation(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "+ Ready for literal data\r\n");
	assert_int_equal(p.r.type, MV_IMAP_RESP_CONTINUATION);
	assert_string_equal(p.r.tag, "+");
	assert_string_equal(p.r.text, "Ready for literal data");
	done(&p);

	parse(&p, "+\r\n");
	assert_int_equal(p.r.type, MV_IMAP_RESP_CONTINUATION);
	assert_string_equal(p.r.text, "");
	done(&p);
}

/* ---- quoting, NIL ------------------------------------------------------------------------- */

static void test_quoted_escapes(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* LIST () \"\\\\\" \"a \\\"b\\\" \\\\ c\"\r\n");
	const mv_imap_value *delim = next(&p, at(&p, p.r.first));
	expect_imap_string(&p, delim, "\\", 1);
	assert_true(delim->unescaped);
	expect_imap_string(&p, next(&p, delim), "a \"b\" \\ c", 9);
	done(&p);

	parse_fails("* LIST () \"\\x\"\r\n", 16, "badly escaped quoted string");
	parse_fails("* LIST () \"a\rb\" x\r\n", 19, "unterminated");
	parse_fails("* LIST () \"a\0b\"\r\n", 17, "unterminated");
}

static void test_nil(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* X NIL nil (Nil) NILS \"NIL\"\r\n");
	const mv_imap_value *v = at(&p, p.r.first);
	assert_int_equal(v->kind, MV_IMAP_NIL);
	assert_int_equal((v = next(&p, v))->kind, MV_IMAP_NIL);
	assert_int_equal((v = next(&p, v))->kind, MV_IMAP_LIST);
	assert_int_equal(at(&p, v->child)->kind, MV_IMAP_NIL);
	expect_imap_atom(&p, v = next(&p, v), "NILS");
	expect_imap_string(&p, next(&p, v), "NIL", 3);
	assert_false(mv_imap_atom_is(&p.r, at(&p, p.r.first), "NIL"));   /* NIL is no atom */
	done(&p);
}

/* ---- what must fail ------------------------------------------------------------------------ */

static void test_malformed(void **state)
{
	(void)state;
	parse_fails("* LIST () \"/\r\n", 14, "unterminated");
	parse_fails("* 1 FETCH (BODY[] {10}\r\nabc)\r\n", 30, "a literal longer than the response");
	parse_fails("* 1 FETCH (BODY[] {10}", 22, "not at the end of a line");
	parse_fails("* 1 FETCH (BODY[] {1x}\r\nab)\r\n", 29, "malformed literal length");
	parse_fails("* 1 FETCH (UID 1))\r\n", 20, "')' without its '('");
	parse_fails("* 1 FETCH (UID 1 (FLAGS)\r\n", 26, "not closed");
	parse_fails("* 1 FETCH (BODY[HEADER (FROM) 1)\r\n", 34, "unclosed '['");
	parse_fails("\r\n", 2, "an empty line");
	parse_fails("", 0, "an empty line");
	parse_fails("*\r\n", 3, "without a name");
	parse_fails("* 12\r\n", 6, "a number without a response name");
}

static char *nested(int depth)
{
	GString *s = g_string_new("* X ");
	for (int i = 0; i < depth; i++)
		g_string_append_c(s, '(');
	g_string_append(s, "deep");
	for (int i = 0; i < depth; i++)
		g_string_append_c(s, ')');
	g_string_append(s, "\r\n");
	return g_string_free(s, FALSE);
}

static void test_depth(void **state)
{
	(void)state;
	char *ok = nested(64);
	parsed p;
	parse(&p, ok);
	const mv_imap_value *v = at(&p, p.r.first);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(v->kind, MV_IMAP_LIST);
		v = at(&p, v->child);
	}
	expect_imap_atom(&p, v, "deep");
	done(&p);
	g_free(ok);

	char *deep = nested(65);
	parse_fails(deep, strlen(deep), "nested too deep");
	g_free(deep);
}

/* ---- accessors' edges ---------------------------------------------------------------------- */

static void test_number_edges(void **state)
{
	(void)state;
	parsed p;
	parse(&p, "* X 0 007 12a -1 999999999999999999 1000000000000000000 \"5\" NIL ()\r\n");
	const mv_imap_value *v = at(&p, p.r.first);
	uint64_t n = 77;
	assert_int_equal(number_of(&p, v), 0);
	assert_int_equal(number_of(&p, v = next(&p, v)), 7);
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* 12a */
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* -1 */
	assert_int_equal(number_of(&p, v = next(&p, v)), 999999999999999999u);   /* 18 digits */
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* 19 digits */
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* a string */
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* NIL */
	assert_false(mv_imap_number(&p.r, v = next(&p, v), &n));                 /* a list */
	assert_false(mv_imap_number(&p.r, NULL, &n));
	assert_int_equal(n, 77);   /* untouched when false */
	assert_null(mv_imap_value_at(&p.r, p.r.values->len));
	assert_null(mv_imap_value_at(&p.r, MV_IMAP_NONE));
	done(&p);
}

static void expect_literal_at_end(const char *line, bool found, uint64_t want)
{
	uint64_t n = 4242;
	bool got = mv_imap_literal_at_end((const uint8_t *)line, strlen(line), &n);
	if (got != found)
		fail_msg("\"%s\": %s", line, got ? "a literal where none is" : "no literal");
	assert_int_equal(n, found ? want : 4242);
}

static void test_literal_at_end(void **state)
{
	(void)state;
	expect_literal_at_end("{12}\r\n", true, 12);
	expect_literal_at_end("{12+}\r\n", true, 12);
	expect_literal_at_end("* 1 FETCH (BODY[] {3456}\r\n", true, 3456);
	expect_literal_at_end("* 1 FETCH (BODY[] {3456}\n", true, 3456);
	expect_literal_at_end("* 1 FETCH (BODY[] {3456}", true, 3456);
	expect_literal_at_end("{0}\r\n", true, 0);
	expect_literal_at_end("{9999999999999999999}\r\n", true, 9999999999999999999u);   /* 19 digits */
	expect_literal_at_end("{12345678901234567890}\r\n", false, 0);                    /* 20 */
	expect_literal_at_end("x{}\r\n", false, 0);
	expect_literal_at_end("{a}\r\n", false, 0);
	expect_literal_at_end("{+}\r\n", false, 0);
	expect_literal_at_end("{1a2}\r\n", false, 0);
	expect_literal_at_end("12}\r\n", false, 0);
	expect_literal_at_end("{12} \r\n", false, 0);
	expect_literal_at_end("{12}x\r\n", false, 0);
	expect_literal_at_end("}\r\n", false, 0);
	expect_literal_at_end("\r\n", false, 0);
	expect_literal_at_end("", false, 0);
}

/* ---- UID sets ------------------------------------------------------------------------------- */

static GArray *uid_array(const uint32_t *uids, size_t n)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	g_array_append_vals(a, uids, (guint)n);
	return a;
}

static void expect_set(const GArray *uids, guint *from, guint max_items, const char *want, guint want_from)
{
	char *set = mv_imap_uid_set(uids, from, max_items);
	assert_string_equal(set, want);
	assert_int_equal(*from, want_from);
	g_free(set);
}

static void test_uid_set(void **state)
{
	(void)state;
	static const uint32_t list[] = { 1, 2, 3, 7, 9, 10, 11, 12 };
	GArray *uids = uid_array(list, G_N_ELEMENTS(list));
	guint from = 0;
	expect_set(uids, &from, 1000, "1:3,7,9:12", 8);
	expect_set(uids, &from, 1000, "", 8);   /* nothing left */

	from = 0;
	expect_set(uids, &from, 2, "1:2", 2);
	expect_set(uids, &from, 2, "3,7", 4);
	expect_set(uids, &from, 2, "9:10", 6);
	expect_set(uids, &from, 2, "11:12", 8);

	from = 2;
	expect_set(uids, &from, 3, "3,7,9", 5);
	expect_set(uids, &from, 3, "10:12", 8);
	g_array_unref(uids);

	static const uint32_t top[] = { 5, 4294967294u, 4294967295u };
	uids = uid_array(top, G_N_ELEMENTS(top));
	from = 0;
	expect_set(uids, &from, 10, "5,4294967294:4294967295", 3);
	g_array_unref(uids);

	uids = uid_array(NULL, 0);
	from = 0;
	expect_set(uids, &from, 10, "", 0);
	g_array_unref(uids);
}

/* ---- POP3 unstuffing ------------------------------------------------------------------------ */

static void expect_unstuff(const char *in, bool whole, const char *want)
{
	GByteArray *out = g_byte_array_new();
	bool got = mv_pop3_unstuff((const uint8_t *)in, strlen(in), out);
	if (got != whole)
		fail_msg("\"%s\": %s", in, got ? "taken as complete" : "not taken as complete");
	/* An empty array's data is NULL, which memcmp must not be given. */
	if (out->len != strlen(want) || (out->len > 0 && memcmp(out->data, want, out->len) != 0))
		fail_msg("\"%s\" unstuffed to \"%.*s\", not \"%s\"", in, (int)out->len,
		         out->len ? (const char *)out->data : "", want);
	g_byte_array_unref(out);
}

static void test_pop3_unstuff(void **state)
{
	(void)state;
	expect_unstuff("a\r\n..b\r\nc.\r\n.\r\n", true, "a\r\n.b\r\nc.\r\n");
	expect_unstuff("..\r\n.\r\n", true, ".\r\n");               /* a line of one dot, stuffed */
	expect_unstuff("...\r\n.\r\n", true, "..\r\n");
	expect_unstuff(".\r\n", true, "");                          /* an empty message */
	expect_unstuff("a\n..\n.\n", true, "a\n.\n");               /* LF-only lines */
	expect_unstuff("a\r\n\r\nb\r\n.\r\n", true, "a\r\n\r\nb\r\n");
	expect_unstuff("a\r\nb\r\n", false, "a\r\nb\r\n");           /* no terminator */
	expect_unstuff("a\r\n..\r\n", false, "a\r\n.\r\n");           /* only a stuffed dot */
	expect_unstuff("a\r\n.", false, "a\r\n");                   /* a terminator cut short */
	expect_unstuff("a\r\n.\r\nb\r\n", false, "a\r\n");          /* something after it */
	expect_unstuff(" .\r\n.\r\n", true, " .\r\n");              /* a dot not first stays */
	expect_unstuff("", false, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch_literal),
		cmocka_unit_test(test_fetch_header_fields),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_status_pairs),
		cmocka_unit_test(test_search_and_counts),
		cmocka_unit_test(test_tagged_status),
		cmocka_unit_test(test_untagged_status),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_quoted_escapes),
		cmocka_unit_test(test_nil),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_number_edges),
		cmocka_unit_test(test_literal_at_end),
		cmocka_unit_test(test_uid_set),
		cmocka_unit_test(test_pop3_unstuff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
