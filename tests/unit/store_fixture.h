/* The unit tests' one-message store: a fresh store in a temporary
 * directory holding one message in alice/Inbox, for the tests that break
 * or recover a store (test_store_faults.c, test_store_recover.c).  Include
 * after cmocka.h. */
#ifndef MV_TEST_STORE_FIXTURE_H
#define MV_TEST_STORE_FIXTURE_H

#include "store/store.h"
#include <sodium.h>
#include <string.h>

static uint8_t key[MV_KEY_BYTES];

typedef struct fixture {
	char *dir;
	mv_store_paths paths;
} fixture;

static int setup(void **state)
{
	fixture *f = g_new0(fixture, 1);
	f->dir = g_dir_make_tmp("mv-store-test-XXXXXX", NULL);
	mv_store_paths_under(f->dir, &f->paths);
	GError *err = NULL;
	assert_int_equal(mv_store_create(&f->paths, key, &err), 0);
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	const char raw[] = "Subject: hello\r\nFrom: a@example.org\r\n\r\nbody text\r\n";
	mv_store_item it = { .archive = "alice", .folder = "Inbox", .raw = (const uint8_t *)raw, .raw_len = strlen(raw),
	                     .archived_at = 1700000000, .source = "file", .origin = "test", .subject = "hello",
	                     .from = "a@example.org", .text = "body text", .date = 1700000000 };
	crypto_generichash(it.hash, sizeof it.hash, it.raw, it.raw_len, NULL, 0);
	assert_int_equal(mv_store_add_batch(s, &it, 1, 1, &err), 0);
	assert_int_equal(mv_store_sync(s, &err), 0);
	mv_store_close(&s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char *argv[] = { "rm", "-rf", f->dir, NULL };
	g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
	g_free(f->paths.db_dir);
	g_free(f->paths.content_dir);
	g_free(f->paths.index_dir);
	g_free(f->dir);
	g_free(f);
	return 0;
}

#endif
