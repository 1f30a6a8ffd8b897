/* fuzz_store.h: the one temporary store the store fuzz targets (fuzz_journal,
 * fuzz_record_meta) make per process, under a fixed key, and their failure
 * exit.  On tmpfs when there is one: RecoverStore fsyncs a dozen times,
 * which on a disk costs more than all the rest of an input. */
#ifndef MV_FUZZ_STORE_H
#define MV_FUZZ_STORE_H

#include "store/store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const uint8_t fuzz_key[MV_KEY_BYTES] = "mailvault fuzz key: not secret.";

static const char *fuzz_target_name;
static char *fuzz_store_dir;

static void fail(const char *what, const GError *err)
{
	fprintf(stderr, "%s: %s%s%s\n", fuzz_target_name, what, err ? ": " : "", err ? err->message : "");
	abort();
}

static void fuzz_store_remove(void)
{
	if (!fuzz_store_dir)
		return;
	char *argv[] = { "rm", "-rf", fuzz_store_dir, NULL };
	g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* A new empty store in a directory of its own, removed at exit. */
static void fuzz_store_create(const char *target, mv_store_paths *paths)
{
	fuzz_target_name = target;
	if (sodium_init() < 0)
		fail("sodium_init", NULL);
	mv_log_set_quiet(true);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
	char *name = g_strdup_printf("mv-%s-XXXXXX", target);
	fuzz_store_dir = g_build_filename(base, name, NULL);
	g_free(name);
	if (!mkdtemp(fuzz_store_dir))
		fail("mkdtemp", NULL);
	GError *err = NULL;
	mv_store_paths_under(fuzz_store_dir, paths);
	if (mv_store_create(paths, fuzz_key, &err) < 0)
		fail("mv_store_create", err);
	atexit(fuzz_store_remove);
}

#endif
