/* stores: the store registry — creating, attaching, detaching, renaming,
 * moving and changing the state of archive stores, and automatic store
 * creation.
 *
 * The rules it keeps: names are unique and printable; exactly one store is
 * current (making one current demotes the old one, and the current store
 * cannot leave that state except by another taking it); no two stores share
 * a directory (their segment files and databases would collide); a store
 * never gets created on top of another one's files.  Store ids are never
 * reused, because message ids ("<store>:<number>") name them.
 *
 * What touches keys (wrapping, the store's own key records) is instance.c's;
 * this file calls it through the archive-internal functions below. */
#include "archive/internal.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>


#define MAX_STORE_NAME_BYTES 200
#define MAX_DIR_NAME_BYTES 100
#define STORE_UID_BYTES 16
#define SETTING_AUTOCREATE "store_autocreate"

static const char *const store_states[] = { "current", "normal", "writeProtected", "disabled", NULL };

/* ---- checks on what the caller gave ------------------------------------------------- */

static int check_name(const char *name, GError **error)
{
	if (!name || !*name) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store name: empty");
		return -1;
	}
	size_t len = strlen(name);
	if (len > MAX_STORE_NAME_BYTES) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store name: %zu bytes, at most %d allowed", len,
		            MAX_STORE_NAME_BYTES);
		return -1;
	}
	if (!g_utf8_validate(name, (gssize)len, NULL)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store name: not valid UTF-8");
		return -1;
	}
	for (const char *p = name; *p; p = g_utf8_next_char(p)) {
		if (g_unichar_iscntrl(g_utf8_get_char(p))) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store name '%s': contains a control character",
			            name);
			return -1;
		}
	}
	return 0;
}

static int check_state(const char *state, GError **error)
{
	for (size_t i = 0; store_states[i]; i++)
		if (strcmp(state, store_states[i]) == 0)
			return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID,
	            "requestedState '%s': expected current, normal, writeProtected or disabled", state);
	return -1;
}

/* The id of the store named name other than except_id, or 0. */
static int store_named(mv_instance *inst, const char *name, int except_id, int *id_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	*id_r = 0;
	if (sqlite3_prepare_v2(db, "SELECT id FROM stores WHERE name=? AND id<>?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "find store by name");
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, except_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "find store by name");
	return -1;
}

static int check_name_free(mv_instance *inst, const char *name, int except_id, GError **error)
{
	int other = 0;
	if (store_named(inst, name, except_id, &other, error) < 0)
		return -1;
	if (other == 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "store name '%s' is already used by store %d", name, other);
	return -1;
}

/* ---- paths ------------------------------------------------------------------------------ */

/* A directory name for a store's default place under <data>/stores: the
 * name with anything unusual in a file name replaced, made unique. */
static char *default_store_dir(mv_instance *inst, const char *name)
{
	GString *base = g_string_new(NULL);
	for (const char *p = name; *p && base->len < MAX_DIR_NAME_BYTES; p++)
		g_string_append_c(base, (g_ascii_isalnum(*p) || *p == '-' || *p == '_' || *p == '.') ? *p : '_');
	if (base->len == 0 || strcmp(base->str, ".") == 0 || strcmp(base->str, "..") == 0)
		g_string_assign(base, "store");
	char *stores = g_build_filename(mv_instance_data_dir(inst), "stores", NULL);
	char *dir = g_build_filename(stores, base->str, NULL);
	for (int n = 2; g_file_test(dir, G_FILE_TEST_EXISTS); n++) {
		g_free(dir);
		char *numbered = g_strdup_printf("%s-%d", base->str, n);
		dir = g_build_filename(stores, numbered, NULL);
		g_free(numbered);
	}
	g_free(stores);
	g_string_free(base, TRUE);
	return dir;
}

static int absolute_arg(const char *arg_name, const char *path, char **abs_r, GError **error)
{
	if (!g_path_is_absolute(path)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s '%s': must be an absolute path", arg_name, path);
		return -1;
	}
	*abs_r = g_canonicalize_filename(path, NULL);
	return 0;
}

/* The absolute directories of a store from what the caller gave (see
 * archive.h: all NULL = the default layout for a new store; content or
 * index NULL = the database directory). */
static int resolve_paths(mv_instance *inst, const char *name, const mv_store_paths *given, mv_store_paths *abs_r,
                         GError **error)
{
	memset(abs_r, 0, sizeof *abs_r);
	if (!given || (!given->db_dir && !given->content_dir && !given->index_dir)) {
		char *dir = default_store_dir(inst, name);
		mv_store_paths_under(dir, abs_r);
		g_free(dir);
		return 0;
	}
	if (!given->db_dir) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "databasePath: missing (contentPath and indexPath are given relative to a store that "
		            "has a database directory)");
		return -1;
	}
	if (absolute_arg("databasePath", given->db_dir, &abs_r->db_dir, error) < 0 ||
	    absolute_arg("contentPath", given->content_dir ? given->content_dir : given->db_dir, &abs_r->content_dir,
	                 error) < 0 ||
	    absolute_arg("indexPath", given->index_dir ? given->index_dir : given->db_dir, &abs_r->index_dir,
	                 error) < 0) {
		mv_archive_paths_clear(abs_r);
		return -1;
	}
	return 0;
}

static bool same_dir(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return true;
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	bool same = ra && rb && strcmp(ra, rb) == 0;
	free(ra);
	free(rb);
	return same;
}

static bool shares_a_dir(const mv_store_paths *x, const mv_store_paths *y)
{
	const char *xs[] = { x->db_dir, x->content_dir, x->index_dir };
	const char *ys[] = { y->db_dir, y->content_dir, y->index_dir };
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++)
			if (same_dir(xs[i], ys[j]))
				return true;
	return false;
}

/* Refuses directories another registered store uses: two stores in one
 * directory would write the same segment and database files. */
static int check_dirs_unshared(mv_instance *inst, const mv_store_paths *p, int except_id, GError **error)
{
	GPtrArray *stores = mv_instance_stores(inst, error);
	if (!stores)
		return -1;
	int rc = -1;
	for (guint i = 0; i < stores->len; i++) {
		const mv_archive_store *other = stores->pdata[i];
		if (other->id != except_id && shares_a_dir(p, &other->paths)) {
			g_set_error(error, MV_ERROR, MV_ERR_EXISTS,
			            "store %d (%s) already uses one of these directories (database %s, content %s, index %s)",
			            other->id, other->name, other->paths.db_dir, other->paths.content_dir,
			            other->paths.index_dir);
			goto out;
		}
	}
	rc = 0;
out:
	g_ptr_array_free(stores, TRUE);
	return rc;
}

static bool dir_has_segments(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	if (!d)
		return false;
	bool found = false;
	const char *entry;
	while (!found && (entry = g_dir_read_name(d)))
		found = g_str_has_prefix(entry, "seg-") && g_str_has_suffix(entry, ".mvs");
	g_dir_close(d);
	return found;
}

/* A new store must not be made over another one's files. */
static int check_free_for_new_store(const mv_store_paths *p, GError **error)
{
	char *dbf = mv_store_db_file(p), *ixf = mv_store_index_file(p);
	char *db_name = g_path_get_basename(dbf), *index_name = g_path_get_basename(ixf);
	int rc = -1;
	if (g_file_test(dbf, G_FILE_TEST_EXISTS))
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS,
		            "databasePath %s already holds a store database (%s): attach it with AttachStore",
		            p->db_dir, db_name);
	else if (g_file_test(ixf, G_FILE_TEST_EXISTS))
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "indexPath %s already holds a search index (%s)",
		            p->index_dir, index_name);
	else if (dir_has_segments(p->content_dir))
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "contentPath %s already holds segment files (seg-*.mvs)",
		            p->content_dir);
	else
		rc = 0;
	g_free(db_name);
	g_free(index_name);
	g_free(dbf);
	g_free(ixf);
	return rc;
}

/* The directories must hold a mailvault store this build can read.  The
 * index may be missing: opening the store makes an empty one, which the next
 * writer or RebuildStoreIndex fills from content. */
static int check_holds_store(const mv_store_paths *p, GError **error)
{
	char *dbf = mv_store_db_file(p), *db_name = g_path_get_basename(dbf);
	int rc = -1, version = 0;
	if (!g_file_test(p->db_dir, G_FILE_TEST_IS_DIR))
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "databasePath %s: no such directory", p->db_dir);
	else if (!g_file_test(dbf, G_FILE_TEST_IS_REGULAR))
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND,
		            "databasePath %s does not hold a mailvault store (no %s)", p->db_dir, db_name);
	else if (!g_file_test(p->content_dir, G_FILE_TEST_IS_DIR))
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "contentPath %s: no such directory", p->content_dir);
	else if (mv_store_format_version(p, &version, error) < 0)
		g_prefix_error(error, "databasePath %s: not a readable mailvault store: ", p->db_dir);
	else if (version < 1 || version > MV_STORE_FORMAT_VERSION)
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED,
		            "databasePath %s: store format version %d; this build reads 1 to %d", p->db_dir, version,
		            MV_STORE_FORMAT_VERSION);
	else
		rc = 0;
	g_free(db_name);
	g_free(dbf);
	return rc;
}

/* ---- rows ----------------------------------------------------------------------------- */

typedef struct new_store {
	const char *name, *state;
	const mv_store_paths *paths;   /* absolute */
	GBytes *key_master, *key_recovery, *recovery_salt;
	const char *owner, *uid;
	bool meta_synced;
} new_store;

static int exec_bound(sqlite3 *db, const char *sql, int id, const char *text, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, sql, &st, error) < 0)
		return -1;
	int col = 1;
	if (text)
		sqlite3_bind_text(st, col++, text, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, col, id);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "update stores");
	return -1;
}

/* Ids are never reused: max(ids)+1, or more if a higher id was detached. */
static int allocate_store_id(mv_instance *inst, int *id_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) + 1 FROM stores", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "allocate store id");
		return -1;
	}
	int64_t next = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
	sqlite3_finalize(st);
	char *saved = NULL;
	if (mv_archive_setting_get(inst, SETTING_NEXT_STORE_ID, &saved, error) < 0)
		return -1;
	if (saved) {
		int64_t n = g_ascii_strtoll(saved, NULL, 10);
		next = MAX(next, n);
		g_free(saved);
	}
	if (next > INT_MAX) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "no store id left");
		return -1;
	}
	char *after = g_strdup_printf("%" G_GINT64_FORMAT, next + 1);
	int rc = mv_archive_setting_put(inst, SETTING_NEXT_STORE_ID, after, error);
	g_free(after);
	*id_r = (int)next;
	return rc;
}

static int insert_row(mv_instance *inst, int id, const new_store *ns, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT INTO stores(id, name, state, db_path, content_path, index_path, key_master,"
	                   " key_recovery, recovery_salt, created_at, owner_instance, store_uid, meta_synced)"
	                   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int(st, 1, id);
	sqlite3_bind_text(st, 2, ns->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ns->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, mv_archive_stored_path(inst, ns->paths->db_dir), -1, g_free);
	sqlite3_bind_text(st, 5, mv_archive_stored_path(inst, ns->paths->content_dir), -1, g_free);
	sqlite3_bind_text(st, 6, mv_archive_stored_path(inst, ns->paths->index_dir), -1, g_free);
	/* The key columns are NOT NULL: a store attached without a value (one
	 * whose meta carries no recovery wrapping) gets an empty blob, as it
	 * did before base/sql's bind, which binds NULL as SQL NULL. */
	GBytes *empty = g_bytes_new(NULL, 0);
	mv_sql_bind_bytes(st, 7, ns->key_master ? ns->key_master : empty);
	mv_sql_bind_bytes(st, 8, ns->key_recovery ? ns->key_recovery : empty);
	mv_sql_bind_bytes(st, 9, ns->recovery_salt ? ns->recovery_salt : empty);
	g_bytes_unref(empty);
	sqlite3_bind_int64(st, 10, mv_now());
	sqlite3_bind_text(st, 11, ns->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, ns->uid, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 13, ns->meta_synced ? 1 : 0);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "register store");
	return -1;
}

static int demote_current(mv_instance *inst, int except_id, GError **error)
{
	return exec_bound(mv_archive_db(inst), "UPDATE stores SET state='normal' WHERE state='current' AND id<>?",
	                  except_id, NULL, error);
}

typedef struct registration {
	const new_store *ns;
	int id;
} registration;

static int register_txn(mv_instance *inst, void *opaque, GError **error)
{
	registration *reg = opaque;
	const new_store *ns = reg->ns;
	int id = 0;
	if (check_name_free(inst, ns->name, 0, error) < 0 || allocate_store_id(inst, &id, error) < 0 ||
	    insert_row(inst, id, ns, error) < 0)
		return -1;
	if (strcmp(ns->state, "current") == 0 && demote_current(inst, id, error) < 0)
		return -1;
	reg->id = id;
	return 0;
}

static int register_store(mv_instance *inst, const new_store *ns, int *id_r, GError **error)
{
	registration reg = { ns, 0 };
	if (mv_archive_in_transaction(inst, register_txn, &reg, error) < 0)
		return -1;
	*id_r = reg.id;
	return 0;
}

/* ---- CreateStore ---------------------------------------------------------------------- */

/* A crash must not lose the new directories' entries once master.sqlite
 * names them. */
/* The nearest directory at or above path that exists now. */
static char *existing_ancestor(const char *path)
{
	char *p = g_strdup(path);
	while (!g_file_test(p, G_FILE_TEST_IS_DIR)) {
		char *up = g_path_get_dirname(p);
		bool top = strcmp(up, p) == 0;
		g_free(p);
		p = up;
		if (top)
			break;
	}
	return p;
}

/* Every directory a new store's directory hangs from, up to the one that
 * existed before (its entry for the first new directory is new too): a
 * name not fsync'd in its parent is gone after a power cut, and
 * master.sqlite would name a store whose directory does not exist. */
static int fsync_new_chain(const char *dir, const char *existed, GError **error)
{
	char *d = g_strdup(dir);
	int rc = 0;
	for (;;) {
		char *parent = g_path_get_dirname(d);
		bool last = strlen(parent) <= strlen(existed) || strcmp(parent, d) == 0;
		rc = mv_fsync_dir(parent, error);
		g_free(d);
		d = parent;
		if (rc < 0 || last)
			break;
	}
	g_free(d);
	return rc;
}

typedef struct store_dirs {
	const char *dir[3];
	char *existed[3];
} store_dirs;

static void store_dirs_note(store_dirs *sd, const mv_store_paths *p)
{
	const char *dirs[3] = { p->db_dir, p->content_dir, p->index_dir };
	for (size_t i = 0; i < 3; i++) {
		sd->dir[i] = dirs[i];
		sd->existed[i] = existing_ancestor(dirs[i]);
	}
}

static int store_dirs_sync(store_dirs *sd, GError **error)
{
	for (size_t i = 0; i < 3; i++)
		if (fsync_new_chain(sd->dir[i], sd->existed[i], error) < 0)
			return -1;
	return 0;
}

static void store_dirs_clear(store_dirs *sd)
{
	for (size_t i = 0; i < 3; i++)
		g_free(sd->existed[i]);
}

static int create_files(const mv_store_paths *abs, const uint8_t data_key[MV_KEY_BYTES], GError **error)
{
	store_dirs sd;
	store_dirs_note(&sd, abs);
	int rc = -1;
	if (mv_store_create(abs, data_key, error) < 0)
		goto out;
	rc = store_dirs_sync(&sd, error);
out:
	store_dirs_clear(&sd);
	return rc;
}

static int create_locked(mv_instance *inst, const char *name, const char *state, const mv_store_paths *abs,
                         int *id_r, GError **error)
{
	uint8_t data_key[MV_KEY_BYTES];
	randombytes_buf(data_key, sizeof data_key);
	if (create_files(abs, data_key, error) < 0) {
		sodium_memzero(data_key, sizeof data_key);
		return -1;
	}
	new_store ns = { .name = name, .state = state, .paths = abs, .owner = mv_archive_instance_id(inst),
	                 .meta_synced = true };
	char *uid = mv_archive_random_hex(STORE_UID_BYTES);
	ns.uid = uid;
	int rc = mv_archive_wrap_new_key(inst, data_key, &ns.key_master, &ns.key_recovery, &ns.recovery_salt, error);
	sodium_memzero(data_key, sizeof data_key);
	if (rc < 0)
		goto out;
	/* The store's own key records first: registered, it must be portable. */
	rc = mv_archive_write_store_meta(abs, ns.owner, ns.key_master, ns.key_recovery, ns.recovery_salt, uid, error);
	if (rc < 0)
		goto out;
	rc = register_store(inst, &ns, id_r, error);
out:
	if (rc < 0)
		g_prefix_error(error, "store files were made in %s but the store is not registered: ", abs->db_dir);
	g_clear_pointer(&ns.key_master, g_bytes_unref);
	g_clear_pointer(&ns.key_recovery, g_bytes_unref);
	g_clear_pointer(&ns.recovery_salt, g_bytes_unref);
	g_free(uid);
	return rc;
}

int mv_instance_create_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error)
{
	state = state ? state : "normal";
	mv_store_paths abs = { 0 };
	if (check_name(name, error) < 0 || check_state(state, error) < 0 || check_name_free(inst, name, 0, error) < 0 ||
	    resolve_paths(inst, name, paths, &abs, error) < 0)
		return -1;
	int rc = -1;
	if (check_free_for_new_store(&abs, error) < 0 || check_dirs_unshared(inst, &abs, 0, error) < 0)
		goto out;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		goto out;
	rc = create_locked(inst, name, state, &abs, id_r, error);
	mv_archive_key_unlock(lock);
	if (rc < 0)
		goto out;
	mv_log_debug("store %d (%s) created in %s", *id_r, name, abs.db_dir);
out:
	mv_archive_paths_clear(&abs);
	return rc;
}

/* ---- AttachStore ----------------------------------------------------------------------- */

typedef struct store_meta {
	char *owner, *uid;
	GBytes *key_master, *key_recovery, *recovery_salt;
} store_meta;

static void store_meta_clear(store_meta *m)
{
	g_clear_pointer(&m->owner, g_free);
	g_clear_pointer(&m->uid, g_free);
	g_clear_pointer(&m->key_master, g_bytes_unref);
	g_clear_pointer(&m->key_recovery, g_bytes_unref);
	g_clear_pointer(&m->recovery_salt, g_bytes_unref);
}

static bool has_bytes(GBytes *b)
{
	return b && g_bytes_get_size(b) > 0;
}

static int store_with_uid(mv_instance *inst, const char *uid, int *id_r, char **name_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	*id_r = 0;
	*name_r = NULL;
	if (sqlite3_prepare_v2(db, "SELECT id, name FROM stores WHERE store_uid=?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "find store by uid");
		return -1;
	}
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*id_r = sqlite3_column_int(st, 0);
		*name_r = g_strdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return 0;
}

static int read_attach_meta(mv_instance *inst, const mv_store_paths *abs, store_meta *m, GError **error)
{
	if (mv_archive_read_store_meta(abs, &m->owner, &m->key_master, &m->key_recovery, &m->recovery_salt, &m->uid,
	                               error) < 0)
		return -1;
	if (!has_bytes(m->key_master) && !has_bytes(m->key_recovery)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "databasePath %s: the store carries no key records (it predates portable stores): open its "
		            "own instance once with this version, then detach it there", abs->db_dir);
		return -1;
	}
	if (!m->uid) {
		/* An older store: give it an identity so it cannot be attached twice. */
		m->uid = mv_archive_random_hex(STORE_UID_BYTES);
		if (mv_store_meta_set(abs, "store_uid", m->uid, strlen(m->uid), error) < 0)
			return -1;
		return 0;
	}
	int other = 0;
	char *other_name = NULL;
	if (store_with_uid(inst, m->uid, &other, &other_name, error) < 0)
		return -1;
	if (other) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "databasePath %s: this store is already attached as store %d (%s)",
		            abs->db_dir, other, other_name);
		g_free(other_name);
		return -1;
	}
	return 0;
}

static int attach_locked(mv_instance *inst, const char *name, const char *state, const mv_store_paths *abs,
                         store_meta *m, int *id_r, bool *locked_r, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	bool locked = !mv_archive_unwrap(inst, m->key_master, key);
	sodium_memzero(key, sizeof key);
	if (locked && strcmp(state, "current") == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE,
		            "requestedState current: the store at %s belongs to another instance and stays locked "
		            "until UnlockStore; attach it in another state, unlock it, then make it current",
		            abs->db_dir);
		return -1;
	}
	new_store ns = { .name = name, .state = state, .paths = abs, .key_master = m->key_master,
	                 .key_recovery = m->key_recovery, .recovery_salt = m->recovery_salt,
	                 .owner = m->owner ? m->owner : (locked ? "" : mv_archive_instance_id(inst)),
	                 .uid = m->uid, .meta_synced = locked };
	*locked_r = locked;
	return register_store(inst, &ns, id_r, error);
}

int mv_instance_attach_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error)
{
	state = state ? state : "normal";
	mv_store_paths abs = { 0 };
	store_meta m = { 0 };
	if (check_name(name, error) < 0 || check_state(state, error) < 0 || check_name_free(inst, name, 0, error) < 0 ||
	    resolve_paths(inst, name, paths, &abs, error) < 0)
		return -1;
	int rc = -1;
	bool locked = false;
	if (check_holds_store(&abs, error) < 0 || check_dirs_unshared(inst, &abs, 0, error) < 0 ||
	    read_attach_meta(inst, &abs, &m, error) < 0)
		goto out;
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		goto out;
	rc = attach_locked(inst, name, state, &abs, &m, id_r, &locked, error);
	mv_archive_key_unlock(lock);
	if (rc < 0)
		goto out;
	if (locked) {
		mv_log_debug("store %d (%s) attached from %s, locked: it belongs to another instance (UnlockStore opens it)",
		            *id_r, name, abs.db_dir);
	} else {
		GError *err = NULL;
		if (mv_archive_sync_store_meta(inst, *id_r, &err) < 0) {
			mv_log_warn("store %d (%s): %s (retried at the next open)", *id_r, name, err->message);
			g_error_free(err);
		}
		mv_log_debug("store %d (%s) attached from %s", *id_r, name, abs.db_dir);
	}
out:
	store_meta_clear(&m);
	mv_archive_paths_clear(&abs);
	return rc;
}

/* ---- DetachStore, RenameStore, SetStoreProperties, SetStoreRequestedState ------------------ */

static int refuse_if_current(const mv_archive_store *info, const char *action, GError **error)
{
	if (strcmp(info->state, "current") != 0)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_STATE,
	            "store %d (%s) is current: make another store current before %s it", info->id, info->name, action);
	return -1;
}

int mv_instance_detach_store(mv_instance *inst, int store_id, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	int rc = -1;
	if (refuse_if_current(info, "detaching", error) < 0)
		goto out;
	if (!info->locked && !info->error) {
		/* Its own copy of its keys is what opens it elsewhere. */
		if (mv_archive_sync_store_meta(inst, store_id, error) < 0) {
			g_prefix_error(error, "store %d (%s) not detached: its key records could not be written into it: ",
			               info->id, info->name);
			goto out;
		}
	} else if (info->error && !info->locked) {
		mv_log_warn("store %d (%s) detached while unavailable (%s): its key records in the store may be "
		            "out of date", info->id, info->name, info->error);
	}
	if (exec_bound(mv_archive_db(inst), "DELETE FROM stores WHERE id=?", store_id, NULL, error) < 0)
		goto out;
	mv_log_debug("store %d (%s) detached; its files stay in %s", info->id, info->name, info->paths.db_dir);
	rc = 0;
out:
	mv_archive_store_free(info);
	return rc;
}

int mv_instance_rename_store(mv_instance *inst, int store_id, const char *name, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	int rc = -1;
	if (check_name(name, error) < 0 || check_name_free(inst, name, store_id, error) < 0)
		goto out;
	rc = exec_bound(mv_archive_db(inst), "UPDATE stores SET name=? WHERE id=?", store_id, name, error);
out:
	mv_archive_store_free(info);
	return rc;
}

static int store_uid_of(mv_instance *inst, int store_id, char **uid_r, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	*uid_r = NULL;
	if (sqlite3_prepare_v2(db, "SELECT store_uid FROM stores WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "read store uid");
		return -1;
	}
	sqlite3_bind_int(st, 1, store_id);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		*uid_r = g_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return 0;
}

/* The new place must hold this very store, not another one. */
static int check_same_store(mv_instance *inst, const mv_archive_store *info, const mv_store_paths *abs, GError **error)
{
	store_meta m = { 0 };
	char *uid = NULL;
	int rc = -1;
	if (store_uid_of(inst, info->id, &uid, error) < 0 ||
	    mv_archive_read_store_meta(abs, &m.owner, &m.key_master, &m.key_recovery, &m.recovery_salt, &m.uid,
	                               error) < 0)
		goto out;
	if (uid && m.uid && strcmp(uid, m.uid) != 0)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "databasePath %s holds another store, not store %d (%s)",
		            abs->db_dir, info->id, info->name);
	else
		rc = 0;
out:
	g_free(uid);
	store_meta_clear(&m);
	return rc;
}

static int update_paths(mv_instance *inst, int store_id, const mv_store_paths *abs, GError **error)
{
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "UPDATE stores SET db_path=?, content_path=?, index_path=? WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, mv_archive_stored_path(inst, abs->db_dir), -1, g_free);
	sqlite3_bind_text(st, 2, mv_archive_stored_path(inst, abs->content_dir), -1, g_free);
	sqlite3_bind_text(st, 3, mv_archive_stored_path(inst, abs->index_dir), -1, g_free);
	sqlite3_bind_int(st, 4, store_id);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "update store paths");
	return -1;
}

int mv_instance_set_store_paths(mv_instance *inst, int store_id, const mv_store_paths *paths, GError **error)
{
	if (!paths || (!paths->db_dir && !paths->content_dir && !paths->index_dir)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store %d: no new path given (databasePath, contentPath, "
		            "indexPath)", store_id);
		return -1;
	}
	mv_archive_store *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	mv_store_paths abs = { 0 };
	int rc = -1;
	if (resolve_paths(inst, info->name, paths, &abs, error) < 0 || check_holds_store(&abs, error) < 0 ||
	    check_dirs_unshared(inst, &abs, store_id, error) < 0 || check_same_store(inst, info, &abs, error) < 0 ||
	    update_paths(inst, store_id, &abs, error) < 0)
		goto out;
	mv_log_debug("store %d (%s) now in %s", info->id, info->name, abs.db_dir);
	rc = 0;
out:
	mv_archive_paths_clear(&abs);
	mv_archive_store_free(info);
	return rc;
}

typedef struct state_change {
	int store_id;
	const char *state;
} state_change;

/* Exactly one store is current: making one current demotes the other. */
static int set_state_txn(mv_instance *inst, void *opaque, GError **error)
{
	const state_change *c = opaque;
	if (strcmp(c->state, "current") == 0 && demote_current(inst, c->store_id, error) < 0)
		return -1;
	return exec_bound(mv_archive_db(inst), "UPDATE stores SET state=? WHERE id=?", c->store_id, c->state, error);
}

int mv_instance_set_store_state(mv_instance *inst, int store_id, const char *state, GError **error)
{
	if (!state || check_state(state, error) < 0) {
		if (!state)
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "requestedState: missing");
		return -1;
	}
	mv_archive_store *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	int rc = -1;
	if (strcmp(info->state, state) == 0) {
		rc = 0;
	} else if (refuse_if_current(info, "changing the state of", error) < 0) {
		/* refused */
	} else if (strcmp(state, "current") == 0 && info->locked) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) cannot become current: it is locked (%s)",
		            info->id, info->name, info->error);
	} else if (strcmp(state, "current") == 0 && info->error) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) cannot become current: %s", info->id,
		            info->name, info->error);
	} else {
		rc = mv_archive_in_transaction(inst, set_state_txn, &(state_change){ store_id, state }, error);
	}
	mv_archive_store_free(info);
	return rc;
}

/* ---- automatic store creation ------------------------------------------------------------ */

void mv_autocreate_config_clear(mv_autocreate_config *c)
{
	g_clear_pointer(&c->database_base, g_free);
	g_clear_pointer(&c->content_base, g_free);
	g_clear_pointer(&c->index_base, g_free);
	c->size_threshold = 0;
}

static char *json_dir(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? g_strdup(s) : NULL;
}

int mv_instance_get_autocreate(mv_instance *inst, mv_autocreate_config *c_r, GError **error)
{
	memset(c_r, 0, sizeof *c_r);
	char *text = NULL;
	if (mv_archive_setting_get(inst, SETTING_AUTOCREATE, &text, error) < 0)
		return -1;
	if (!text)
		return 0;
	json_error_t jerr;
	json_t *obj = json_loads(text, 0, &jerr);
	g_free(text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: setting %s is not a JSON object",
		            SETTING_AUTOCREATE);
		return -1;
	}
	c_r->size_threshold = json_integer_value(json_object_get(obj, "sizeThreshold"));
	c_r->database_base = json_dir(obj, "databaseBaseDirectory");
	c_r->content_base = json_dir(obj, "contentBaseDirectory");
	c_r->index_base = json_dir(obj, "indexBaseDirectory");
	json_decref(obj);
	return 0;
}

static int check_base(const char *field, const char *dir, GError **error)
{
	if (!dir || !*dir || g_path_is_absolute(dir))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s '%s': must be an absolute path", field, dir);
	return -1;
}

static json_t *json_dir_value(const char *dir)
{
	if (!dir || !*dir)
		return json_null();
	char *canon = g_canonicalize_filename(dir, NULL);
	json_t *v = json_string(canon);
	g_free(canon);
	return v;
}

int mv_instance_set_autocreate(mv_instance *inst, const mv_autocreate_config *c, GError **error)
{
	if (c->size_threshold < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "sizeThreshold %" G_GINT64_FORMAT ": must not be negative",
		            c->size_threshold);
		return -1;
	}
	if (check_base("databaseBaseDirectory", c->database_base, error) < 0 ||
	    check_base("contentBaseDirectory", c->content_base, error) < 0 ||
	    check_base("indexBaseDirectory", c->index_base, error) < 0)
		return -1;
	json_t *obj = json_pack("{s:I, s:o, s:o, s:o}", "sizeThreshold", (json_int_t)c->size_threshold,
	                        "databaseBaseDirectory", json_dir_value(c->database_base), "contentBaseDirectory",
	                        json_dir_value(c->content_base), "indexBaseDirectory", json_dir_value(c->index_base));
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (!text) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "store auto-create configuration: cannot encode as JSON");
		return -1;
	}
	int rc = mv_archive_setting_put(inst, SETTING_AUTOCREATE, text, error);
	free(text);
	return rc;
}

/* "store-YYYY-MM-DD", then -2, -3, ... while taken. */
static int auto_store_name(mv_instance *inst, char **name_r, GError **error)
{
	GDateTime *now = g_date_time_new_now_local();
	char *base = g_date_time_format(now, "store-%Y-%m-%d");
	g_date_time_unref(now);
	char *name = g_strdup(base);
	int rc = 0;
	for (int n = 2;; n++) {
		int other = 0;
		if ((rc = store_named(inst, name, 0, &other, error)) < 0 || other == 0)
			break;
		g_free(name);
		name = g_strdup_printf("%s-%d", base, n);
	}
	g_free(base);
	if (rc < 0)
		g_free(name);
	else
		*name_r = name;
	return rc;
}

int mv_instance_auto_create_store(mv_instance *inst, int *id_r, GError **error)
{
	mv_autocreate_config c = { 0 };
	char *name = NULL;
	if (mv_instance_get_autocreate(inst, &c, error) < 0 || auto_store_name(inst, &name, error) < 0) {
		mv_autocreate_config_clear(&c);
		return -1;
	}
	mv_store_paths paths = { 0 };
	if (c.database_base || c.content_base || c.index_base) {
		/* Only some bases set: the others default beside the database. */
		paths.db_dir = c.database_base ? g_build_filename(c.database_base, name, NULL)
		                               : g_build_filename(mv_instance_data_dir(inst), "stores", name, NULL);
		paths.content_dir = c.content_base ? g_build_filename(c.content_base, name, NULL) : NULL;
		paths.index_dir = c.index_base ? g_build_filename(c.index_base, name, NULL) : NULL;
	}
	int rc = mv_instance_create_store(inst, name, &paths, "current", id_r, error);
	mv_archive_paths_clear(&paths);
	g_free(name);
	mv_autocreate_config_clear(&c);
	return rc;
}
