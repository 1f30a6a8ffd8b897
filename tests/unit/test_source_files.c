/* Unit tests for sources/source_files.c's pure parts: a file's path below
 * the source's root (kept below moveTo), the numbered names a move takes
 * when a name is taken (a Maildir name's flags stay last), and the names
 * of afterArchiving. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sources/source_files.h"

static void expect_relative(const char *root, const char *path, const char *want)
{
	char *got = mv_source_files_relative(root, path);
	assert_string_equal(got, want);
	g_free(got);
}

static void test_relative(void **state)
{
	(void)state;
	expect_relative("/srv/mail", "/srv/mail/a.eml", "a.eml");
	expect_relative("/srv/mail", "/srv/mail/alice/Sent/a.eml", "alice/Sent/a.eml");
	expect_relative("/srv/mail/", "/srv/mail/x/a.eml", "x/a.eml");       /* a root given with a slash */
	expect_relative("/srv/mail", "/srv/mail//x/a.eml", "x/a.eml");
	expect_relative("/srv/mail", "/srv/mailbox/a.eml", "a.eml");         /* a prefix, not a parent */
	expect_relative("/srv/mail/one.eml", "/srv/mail/one.eml", "one.eml"); /* a single file: its name */
	expect_relative("/srv/box.mbox", "/srv/box.mbox", "box.mbox");
	expect_relative("/", "/a/b.eml", "a/b.eml");
}

static void expect_numbered(const char *name, unsigned n, const char *want)
{
	char *got = mv_source_files_numbered_name(name, n);
	assert_string_equal(got, want);
	g_free(got);
}

static void test_numbered_name(void **state)
{
	(void)state;
	expect_numbered("a.eml", 1, "a-1.eml");
	expect_numbered("a.eml", 12, "a-12.eml");
	expect_numbered("archive.tar.gz", 2, "archive.tar-2.gz");   /* the last extension only */
	expect_numbered("notes", 1, "notes-1");
	expect_numbered(".hidden", 1, ".hidden-1");                  /* a leading dot is no extension */
	expect_numbered("trailing.", 3, "trailing.-3");
	expect_numbered("1700000000.M1P2.host:2,S", 1, "1700000000.M1P2.host-1:2,S");   /* flags stay last */
	expect_numbered("1700000000.M1P2.host", 1, "1700000000.M1P2-1.host");
	/* every name differs from the first and from each other */
	char *a = mv_source_files_numbered_name("m.eml", 1), *b = mv_source_files_numbered_name("m.eml", 2);
	assert_string_not_equal(a, "m.eml");
	assert_string_not_equal(a, b);
	g_free(a);
	g_free(b);
}

static void test_after_archiving_names(void **state)
{
	(void)state;
	mv_after_archiving a = MV_AFTER_MOVE;
	assert_true(mv_after_archiving_from_name("keep", &a));
	assert_int_equal(a, MV_AFTER_KEEP);
	assert_true(mv_after_archiving_from_name("delete", &a));
	assert_int_equal(a, MV_AFTER_DELETE);
	assert_true(mv_after_archiving_from_name("move", &a));
	assert_int_equal(a, MV_AFTER_MOVE);
	assert_false(mv_after_archiving_from_name("Delete", &a));
	assert_false(mv_after_archiving_from_name("", &a));
	assert_false(mv_after_archiving_from_name(NULL, &a));
	assert_int_equal(a, MV_AFTER_MOVE);   /* untouched by a refused name */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relative),
		cmocka_unit_test(test_numbered_name),
		cmocka_unit_test(test_after_archiving_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
