/* Where the unit tests' fixture files are, whichever directory a test runs
 * from: __FILE__ is relative to the build directory under meson
 * ("../tests/unit/test_x.c"), perhaps absolute elsewhere, and the build
 * directory is three levels above a test binary
 * (<build>/tests/unit/test_x). */
#ifndef MV_TEST_FIXTURES_H
#define MV_TEST_FIXTURES_H

#include <glib.h>

/* tests/fixtures/<sub> as a path that opens from here; a new string. */
static inline char *mv_test_fixture_dir(const char *source_file, const char *sub)
{
	char *src = g_path_get_dirname(source_file);
	char *rel = g_build_filename(src, "..", "fixtures", sub, NULL);
	g_free(src);
	if (g_path_is_absolute(rel))
		return rel;
	char *dir = NULL;
	char *exe = g_file_read_link("/proc/self/exe", NULL);
	if (exe) {
		char *d1 = g_path_get_dirname(exe), *d2 = g_path_get_dirname(d1), *d3 = g_path_get_dirname(d2);
		char *cand = g_build_filename(d3, rel, NULL);
		if (g_file_test(cand, G_FILE_TEST_IS_DIR))
			dir = cand;
		else
			g_free(cand);
		g_free(d1);
		g_free(d2);
		g_free(d3);
		g_free(exe);
	}
	if (!dir)
		dir = g_strdup(rel);
	g_free(rel);
	return dir;
}

#endif
