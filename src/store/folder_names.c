/* store/folder_names: bringing a store's archive and folder names into
 * Unicode NFC, the form names are stored in since issue 19.
 *
 * A store written before kept names as they came: "Cafe\u0301" from a Mac
 * beside "Caf\u00e9" from elsewhere.  Folder arguments are normalised to
 * NFC before lookup, so such a folder could no longer be named.  Each one
 * is renamed through the MoveFolder path (a folder-move record in
 * content/, so RecoverStore replays the rename), parents before children:
 * a parent's move carries its subfolders along.  A name whose NFC form is
 * already taken by another folder is left as it is and reported: merging
 * two folders is a decision for an administrator, not a repair. */
#include "store/internal.h"

#include <string.h>

/* The first folder (shortest full name first: parents before children)
 * not in NFC and not skipped; NULL when none is left. */
static mv_folder_stats *next_unnormalised(GPtrArray *folders, GHashTable *skipped)
{
	mv_folder_stats *best = NULL;
	size_t best_len = 0;
	for (guint i = 0; i < folders->len; i++) {
		mv_folder_stats *f = folders->pdata[i];
		if (mv_name_is_canonical(f->archive) && mv_name_is_canonical(f->path))
			continue;
		char *key = g_strconcat(f->archive, "/", f->path, NULL);
		bool skip = g_hash_table_contains(skipped, key);
		g_free(key);
		size_t len = strlen(f->archive) + strlen(f->path);
		if (!skip && (!best || len < best_len)) {
			best = f;
			best_len = len;
		}
	}
	return best;
}

static json_t *name_json(const char *archive, const char *path)
{
	char *a = mv_utf8_sanitize(archive, -1), *p = mv_utf8_sanitize(path, -1);
	json_t *o = json_pack("{s:s, s:s}", "archive", a, "folder", p);
	g_free(a);
	g_free(p);
	return o;
}

/* Renames one folder to its NFC form; a clash is reported, not an error. */
static int normalise_one(mv_store *s, const mv_folder_stats *f, json_t *renamed, json_t *left, GHashTable *skipped,
                         GError **error)
{
	char *archive = mv_name_canonical(f->archive), *path = mv_name_canonical(f->path);
	GError *err = NULL;
	int moved = 0, rc = 0;
	if (mv_store_move_folder(s, f->archive, f->path, archive, path, &moved, &err) == 0) {
		json_array_append_new(renamed, name_json(f->archive, f->path));
	} else if (err->code == MV_ERR_EXISTS) {
		json_t *o = name_json(f->archive, f->path);
		json_object_set_new(o, "reason", json_string("a folder with its NFC name exists: merge them with MoveFolder "
		                                             "of the messages, then DeleteEmptyFolders"));
		json_array_append_new(left, o);
		g_hash_table_add(skipped, g_strconcat(f->archive, "/", f->path, NULL));
		g_clear_error(&err);
	} else {
		g_propagate_error(error, err);
		rc = -1;
	}
	g_free(archive);
	g_free(path);
	return rc;
}

int mv_store_normalize_names(mv_store *s, json_t **report_r, GError **error)
{
	json_t *renamed = json_array(), *left = json_array();
	GHashTable *skipped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GPtrArray *folders = NULL;
	int rc = -1;
	/* Listed again after each rename: a parent's move renamed its children. */
	for (;;) {
		if (folders)
			g_ptr_array_free(folders, TRUE);
		folders = NULL;
		if (mv_store_list_folders(s, NULL, &folders, error) < 0)
			goto out;
		mv_folder_stats *f = next_unnormalised(folders, skipped);
		if (!f)
			break;
		if (normalise_one(s, f, renamed, left, skipped, error) < 0)
			goto out;
	}
	*report_r = json_pack("{s:O, s:O}", "namesNormalized", renamed, "namesNotNormalized", left);
	rc = 0;
out:
	if (folders)
		g_ptr_array_free(folders, TRUE);
	g_hash_table_destroy(skipped);
	json_decref(renamed);
	json_decref(left);
	return rc;
}
