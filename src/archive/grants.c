/* archive/grants: folder privileges — a user's entries (user, folder,
 * privileges) in master.sqlite's folder_privileges, one per folder as
 * mv_access matches folders (case-folded NFC), stored NFC.  What they mean
 * for a caller (the longest matching folder decides, 0 is an explicit
 * deny) is access.c's. */
#include "archive/internal.h"

#include <string.h>

#define MAX_FOLDER_BYTES 4096

void mv_folder_grant_free(mv_folder_grant *g)
{
	if (!g)
		return;
	g_free(g->folder);
	g_free(g);
}

static int check_folder(const char *folder, GError **error)
{
	size_t len = folder ? strlen(folder) : 0;
	if (len > 0 && len <= MAX_FOLDER_BYTES && g_utf8_validate(folder, (gssize)len, NULL) &&
	    !mv_archive_has_control(folder) &&
	    folder[0] != '/' && folder[len - 1] != '/' && !strstr(folder, "//"))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "folder: '%.200s' is not a folder name of the form "
	            "archive/folder/... (at most %d bytes)", folder && g_utf8_validate(folder, -1, NULL) ? folder : "",
	            MAX_FOLDER_BYTES);
	return -1;
}

/* Folders of the user's entries, read inside a transaction. */
GPtrArray *mv_archive_folder_grants(mv_instance *inst, const char *name, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT folder, privileges FROM folder_privileges WHERE user=?"
	                   " ORDER BY folder", &st, error) < 0)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_folder_grant_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mv_folder_grant *g = g_new0(mv_folder_grant, 1);
		g->folder = mv_sql_column_text(st, 0);
		g->privileges = (unsigned)sqlite3_column_int64(st, 1) & MV_FOLDER_ALL;
		g_ptr_array_add(list, g);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return list;
	mv_sql_set_error(error, mv_archive_db(inst), "read folder privileges");
	g_ptr_array_free(list, TRUE);
	return NULL;
}

static bool same_folder(const char *a, const char *b)
{
	char *fa = mv_name_fold(a), *fb = mv_name_fold(b);
	bool same = strcmp(fa, fb) == 0;
	g_free(fa);
	g_free(fb);
	return same;
}

typedef struct folder_grant_change {
	const char *name, *folder;
	unsigned privileges;
} folder_grant_change;

/* One statement on the user's entry for a folder: (user, folder[, bits]). */
static int grant_statement(mv_instance *inst, const char *sql, const char *user, const char *folder,
                           unsigned privileges, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), sql, &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, folder, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) == 3)
		sqlite3_bind_int64(st, 3, privileges);
	return mv_sql_step_done(mv_archive_db(inst), st, "set folder privileges", error);
}

/* Removes the user's entries that name the folder as mv_access would match
 * it (case-insensitively, beyond SQLite's ASCII NOCASE). */
static int remove_same_folder(mv_instance *inst, const char *user, const char *folder, GError **error)
{
	GPtrArray *grants = mv_archive_folder_grants(inst, user, error);
	if (!grants)
		return -1;
	int rc = -1;
	for (guint i = 0; i < grants->len; i++) {
		const mv_folder_grant *g = grants->pdata[i];
		if (same_folder(g->folder, folder) &&
		    grant_statement(inst, "DELETE FROM folder_privileges WHERE user=? AND folder=?", user, g->folder, 0,
		                    error) < 0)
			goto out;
	}
	rc = 0;
out:
	g_ptr_array_free(grants, TRUE);
	return rc;
}

/* Replaces the user's entry for the folder, so there is never more than one. */
static int set_folder_txn(mv_instance *inst, void *opaque, GError **error)
{
	const folder_grant_change *c = opaque;
	mv_user *u = mv_user_get(inst, c->name, error);
	if (!u)
		return -1;
	int rc = -1;
	if (remove_same_folder(inst, u->name, c->folder, error) < 0)
		goto out;
	rc = grant_statement(inst, "INSERT INTO folder_privileges(user, folder, privileges) VALUES(?,?,?)", u->name,
	                     c->folder, c->privileges, error);
out:
	mv_user_free(u);
	return rc;
}

int mv_user_set_folder_privileges(mv_instance *inst, const char *name, const char *folder, unsigned privileges,
                                  GError **error)
{
	if (check_folder(folder, error) < 0 || mv_archive_check_bits(MV_PRIVSET_FOLDER, "privileges", privileges, error) < 0)
		return -1;
	char *canonical = mv_name_canonical(folder);   /* stored as names are: NFC */
	folder_grant_change c = { name, canonical, privileges };
	int rc = mv_archive_in_transaction(inst, set_folder_txn, &c, error);
	g_free(canonical);
	return rc;
}

static int clear_folders_txn(mv_instance *inst, void *opaque, GError **error)
{
	mv_user *u = mv_user_get(inst, opaque, error);
	if (!u)
		return -1;
	int rc = mv_archive_exec_for_user(inst, "DELETE FROM folder_privileges WHERE user=?", u->name,
	                                  "clear folder privileges", error);
	mv_user_free(u);
	return rc;
}

int mv_user_clear_folder_privileges(mv_instance *inst, const char *name, GError **error)
{
	return mv_archive_in_transaction(inst, clear_folders_txn, (void *)name, error);
}

GPtrArray *mv_user_folder_privileges(mv_instance *inst, const char *name, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return NULL;
	GPtrArray *grants = mv_archive_folder_grants(inst, u->name, error);
	mv_user_free(u);
	return grants;
}
