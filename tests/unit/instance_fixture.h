/* instance_fixture.h: a scratch directory of instances for the unit tests
 * of archive/ and commands/ (test_users.c, test_credentials.c), with one
 * instance shared by a group's tests; a test that needs its own makes one
 * with new_instance_dir.  Define INSTANCE_FIXTURE_NAME before including. */
#ifndef MV_TEST_INSTANCE_FIXTURE_H
#define MV_TEST_INSTANCE_FIXTURE_H

#include <ftw.h>
#include <stdio.h>

#include "archive/archive.h"

static char *tmp_root;
static char *shared_dir;
static mv_instance *shared;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static char *new_instance_dir(const char *name)
{
	char *dir = g_build_filename(tmp_root, name, NULL);
	char *recovery = NULL;
	GError *err = NULL;
	if (mv_instance_init(dir, &recovery, &err) < 0)
		fail_msg("init %s: %s", dir, err->message);
	g_free(recovery);
	return dir;
}

static mv_instance *open_instance(const char *dir)
{
	GError *err = NULL;
	mv_instance *inst = mv_instance_open(dir, &err);
	if (!inst)
		fail_msg("open %s: %s", dir, err->message);
	return inst;
}

static int group_setup(void **state)
{
	tmp_root = g_dir_make_tmp("mv-test-" INSTANCE_FIXTURE_NAME "-XXXXXX", NULL);
	if (!tmp_root)
		return -1;
	shared_dir = new_instance_dir("shared");
	shared = open_instance(shared_dir);
	return 0;
}

static int group_teardown(void **state)
{
	mv_instance_close(&shared);
	nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_free(shared_dir);
	g_free(tmp_root);
	return 0;
}

#endif
