/* store/layout: where a store's three directories go when one directory
 * holds them all (a new store's default place, a backup's copy) — db/,
 * content/ and index/.  store/ names its directories and files (the file
 * names are store.c's) so that archive/ and the backup never spell them. */
#include "store/store.h"

void mv_store_paths_under(const char *dir, mv_store_paths *paths_r)
{
	paths_r->db_dir = g_build_filename(dir, "db", NULL);
	paths_r->content_dir = g_build_filename(dir, "content", NULL);
	paths_r->index_dir = g_build_filename(dir, "index", NULL);
}
