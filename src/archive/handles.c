/* archive/handles: readers' store handles, kept open for reuse.  Opening a
 * store costs more than a request that lists a folder, and every API
 * request reads stores: a reader's handle goes back to the instance when
 * its user closes it (mv_store_set_keeper) and is lent again while the
 * same db and index files are at the store's paths.  Writers always open
 * afresh. */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

/* A kept handle and the files it was opened on: reused only while the
 * paths are the same and the same files (device, inode) are at them. */
typedef struct {
	mv_store *store;
	int store_id;
	mv_store_paths paths;
	mv_archive_file_look db, index;
	unsigned epoch;
} kept_store;

static void kept_store_free(gpointer p)
{
	kept_store *k = p;
	if (k->store) {
		mv_store_set_keeper(k->store, NULL, NULL);
		mv_store_close(&k->store);
	}
	mv_archive_paths_clear(&k->paths);
	g_free(k);
}

/* A lent handle outliving its instance is closed by its user for real. */
static void lent_store_forget(gpointer p)
{
	kept_store *k = p;
	mv_store_set_keeper(k->store, NULL, NULL);
	k->store = NULL;
	kept_store_free(k);
}

static void look_at_store(const mv_store_paths *p, mv_archive_file_look *db_r, mv_archive_file_look *index_r)
{
	char *dbf = mv_store_db_file(p);
	char *ixf = mv_store_index_file(p);
	mv_archive_look_at(dbf, db_r);
	mv_archive_look_at(ixf, index_r);
	g_free(dbf);
	g_free(ixf);
}

static bool same_file(const mv_archive_file_look *a, const mv_archive_file_look *b)
{
	return a->exists && b->exists && a->dev == b->dev && a->ino == b->ino;
}

static bool same_paths(const mv_store_paths *a, const mv_store_paths *b)
{
	return strcmp(a->db_dir, b->db_dir) == 0 && strcmp(a->content_dir, b->content_dir) == 0 &&
	       strcmp(a->index_dir, b->index_dir) == 0;
}

static bool keep_store(mv_store *s, bool reusable, void *opaque)
{
	mv_instance *inst = opaque;
	kept_store *k = g_hash_table_lookup(inst->lent, s);
	if (!k)
		return false;
	g_hash_table_steal(inst->lent, s);
	if (!reusable || g_hash_table_contains(inst->kept, GINT_TO_POINTER(k->store_id))) {
		k->store = NULL;   /* its user closes it */
		kept_store_free(k);
		return false;
	}
	g_hash_table_insert(inst->kept, GINT_TO_POINTER(k->store_id), k);
	return true;
}

static mv_store *lend(mv_instance *inst, kept_store *k)
{
	mv_store_set_keeper(k->store, keep_store, inst);
	g_hash_table_insert(inst->lent, k->store, k);
	return k->store;
}

/* The kept handle of the store, if it still opens the files at paths. */
static mv_store *reuse_kept(mv_instance *inst, int store_id, const mv_store_paths *paths)
{
	kept_store *k = inst->kept ? g_hash_table_lookup(inst->kept, GINT_TO_POINTER(store_id)) : NULL;
	if (!k)
		return NULL;
	g_hash_table_steal(inst->kept, GINT_TO_POINTER(store_id));
	mv_archive_file_look db, index;
	look_at_store(paths, &db, &index);
	if (k->epoch != mv_store_format_epoch() || !same_paths(&k->paths, paths) || !same_file(&k->db, &db) ||
	    !same_file(&k->index, &index)) {
		kept_store_free(k);
		return NULL;
	}
	return lend(inst, k);
}

static mv_store *open_reader(mv_instance *inst, int store_id, const mv_store_paths *paths, const uint8_t *key,
                             GError **error)
{
	mv_store *s = reuse_kept(inst, store_id, paths);
	if (s)
		return s;
	kept_store *k = g_new0(kept_store, 1);
	k->store_id = store_id;
	k->epoch = mv_store_format_epoch();
	/* Looked at before the open: files replaced in between differ next time. */
	look_at_store(paths, &k->db, &k->index);
	k->store = mv_store_open(store_id, paths, key, MV_STORE_READ, error);
	if (!k->store) {
		g_free(k);
		return NULL;
	}
	k->paths.db_dir = g_strdup(paths->db_dir);
	k->paths.content_dir = g_strdup(paths->content_dir);
	k->paths.index_dir = g_strdup(paths->index_dir);
	if (!inst->kept) {
		inst->kept = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, kept_store_free);
		inst->lent = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, lent_store_forget);
	}
	return lend(inst, k);
}

mv_store *mv_instance_open_store(mv_instance *inst, int store_id, mv_store_mode mode, GError **error)
{
	mv_archive_row *r = mv_archive_row_load(inst, store_id, error);
	if (!r)
		return NULL;
	mv_store *s = NULL;
	uint8_t key[MV_KEY_BYTES];
	if (!mv_archive_row_key(inst, r, key)) {
		char *why = mv_archive_locked_reason(inst, r);
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: %s", r->id, r->name, why);
		g_free(why);
	} else {
		mv_store_paths paths = { 0 };
		mv_archive_row_paths(inst, r, &paths);
		s = mode == MV_STORE_READ ? open_reader(inst, store_id, &paths, key, error) :
		                            mv_store_open(store_id, &paths, key, mode, error);
		mv_archive_paths_clear(&paths);
	}
	sodium_memzero(key, sizeof key);
	mv_archive_row_free(r);
	return s;
}
