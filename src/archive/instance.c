/* archive/instance: the instance itself — master.sqlite (settings, the
 * stores table and what each row says about its store), opening, closing
 * and init.  The master key, UnlockStore and RenewMasterKey are
 * master_key.c's; the schema and its migrations migrations.c's; readers'
 * kept store handles handles.c's.
 *
 * Paths of stores inside the data directory are stored relative to it, so
 * moving the data directory moves the whole archive.  The master key lives
 * in master.key (0600) so that the server runs unattended.
 *
 * The stores table of master.sqlite is the instance's copy of the wrapped
 * keys; each store also carries them, with its owner's instance id and its
 * own uid, in its own db (store meta), so that a detached store can be
 * attached to another instance and unlocked there with the recovery key.
 * meta_synced = 0 marks a row whose copy in the store still has to be
 * written (done on open, after crashes and master key renewals). */
#include "archive/internal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *mv_data_dir_resolve(const char *explicit_dir)
{
	const char *dir = explicit_dir;
	if (!dir || !*dir)
		dir = g_getenv("MAILVAULT_DATA_DIR");
	if (!dir || !*dir)
		dir = "var";
	return g_canonicalize_filename(dir, NULL);
}

static char *master_db_path(const char *dir) { return g_build_filename(dir, "master.sqlite", NULL); }

/* ---- settings: text values; binary ones hex-encoded --------------------------- */

static int setting_get(sqlite3 *db, const char *key, char **value_r, GError **error)
{
	sqlite3_stmt *st;
	*value_r = NULL;
	if (mv_sql_prepare(db, "SELECT value FROM settings WHERE key=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*value_r = mv_sql_column_text(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, db, "read setting");
	return -1;
}

static int setting_put(sqlite3 *db, const char *key, const char *value, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT OR REPLACE INTO settings(key, value) VALUES(?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return mv_sql_step_done(db, st, "write setting", error);
}

static int setting_delete(sqlite3 *db, const char *key, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "DELETE FROM settings WHERE key=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	return mv_sql_step_done(db, st, "delete setting", error);
}

static GBytes *bytes_from_hex(const char *hex)
{
	size_t len = strlen(hex);
	if (len % 2 != 0)
		return NULL;
	uint8_t *buf = g_malloc(len / 2 + 1);
	if (!mv_unhex(hex, buf, len / 2)) {
		g_free(buf);
		return NULL;
	}
	return g_bytes_new_take(buf, len / 2);
}

static char *hex_of(GBytes *b)
{
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(b, &len);
	return mv_hex(data, len);
}

/* A binary setting, or NULL (no error) when absent. */
static int setting_get_bytes(sqlite3 *db, const char *key, GBytes **value_r, GError **error)
{
	char *hex = NULL;
	*value_r = NULL;
	if (setting_get(db, key, &hex, error) < 0)
		return -1;
	if (!hex)
		return 0;
	*value_r = bytes_from_hex(hex);
	g_free(hex);
	if (*value_r)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: setting %s is not valid hex", key);
	return -1;
}

static int setting_put_bytes(sqlite3 *db, const char *key, GBytes *value, GError **error)
{
	char *hex = hex_of(value);
	int rc = setting_put(db, key, hex, error);
	g_free(hex);
	return rc;
}

int mv_archive_setting_get(mv_instance *inst, const char *key, char **value_r, GError **error)
{
	return setting_get(inst->db, key, value_r, error);
}

int mv_archive_setting_put(mv_instance *inst, const char *key, const char *value, GError **error)
{
	return setting_put(inst->db, key, value, error);
}

int mv_archive_setting_delete(mv_instance *inst, const char *key, GError **error)
{
	return setting_delete(inst->db, key, error);
}

int mv_archive_setting_get_bytes(mv_instance *inst, const char *key, GBytes **value_r, GError **error)
{
	return setting_get_bytes(inst->db, key, value_r, error);
}

int mv_archive_setting_put_bytes(mv_instance *inst, const char *key, GBytes *value, GError **error)
{
	return setting_put_bytes(inst->db, key, value, error);
}

char *mv_archive_random_hex(size_t bytes)
{
	uint8_t buf[32];
	g_assert(bytes <= sizeof buf);
	randombytes_buf(buf, bytes);
	return mv_hex(buf, bytes);
}

/* ---- paths --------------------------------------------------------------------- */

char *mv_archive_absolute_path(mv_instance *inst, const char *stored)
{
	return g_path_is_absolute(stored) ? g_strdup(stored) : g_build_filename(inst->data_dir, stored, NULL);
}

/* Relative to the data directory when inside it (so moving the directory
 * moves the store with it), else absolute. */
char *mv_archive_stored_path(mv_instance *inst, const char *absolute)
{
	char *canon = g_canonicalize_filename(absolute, NULL);
	size_t n = strlen(inst->data_dir);
	if (strncmp(canon, inst->data_dir, n) == 0 && canon[n] == '/' && canon[n + 1]) {
		char *rel = g_strdup(canon + n + 1);
		g_free(canon);
		return rel;
	}
	return canon;
}

sqlite3 *mv_archive_db(mv_instance *inst) { return inst->db; }
const char *mv_archive_instance_id(mv_instance *inst) { return inst->instance_id; }

/* ---- store meta: the store's own copy of its keys -------------------------------- */

static int meta_put_hex(const mv_store_paths *paths, const char *key, GBytes *value, GError **error)
{
	if (!value || g_bytes_get_size(value) == 0)
		return 0;
	char *hex = hex_of(value);
	int rc = mv_store_meta_set(paths, key, hex, strlen(hex), error);
	g_free(hex);
	return rc;
}

int mv_archive_write_store_meta(const mv_store_paths *paths, const char *owner, GBytes *key_master,
                                GBytes *key_recovery, GBytes *recovery_salt, const char *uid, GError **error)
{
	/* The keys first, the owner last: a store whose write was cut short
	 * still names its previous owner, whose wrapping it may still hold. */
	if (meta_put_hex(paths, "key_master", key_master, error) < 0 ||
	    meta_put_hex(paths, "key_recovery", key_recovery, error) < 0 ||
	    meta_put_hex(paths, "recovery_salt", recovery_salt, error) < 0)
		return -1;
	if (uid && mv_store_meta_set(paths, "store_uid", uid, strlen(uid), error) < 0)
		return -1;
	return owner ? mv_store_meta_set(paths, "instance_id", owner, strlen(owner), error) : 0;
}

/* One meta value as text, NULL when the store does not have it. */
static int meta_text(const mv_store_paths *paths, const char *key, char **value_r, GError **error)
{
	GBytes *value = NULL;
	GError *err = NULL;
	*value_r = NULL;
	if (mv_store_meta_get(paths, key, &value, &err) < 0) {
		if (g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND)) {
			g_error_free(err);
			return 0;
		}
		g_propagate_error(error, err);
		return -1;
	}
	if (value) {
		gsize len = 0;
		const char *data = g_bytes_get_data(value, &len);
		*value_r = g_strndup(data, len);
		g_bytes_unref(value);
	}
	return 0;
}

static int meta_bytes(const mv_store_paths *paths, const char *key, GBytes **value_r, GError **error)
{
	char *hex = NULL;
	*value_r = NULL;
	if (meta_text(paths, key, &hex, error) < 0)
		return -1;
	if (!hex)
		return 0;
	*value_r = bytes_from_hex(hex);
	g_free(hex);
	if (*value_r)
		return 0;
	char *dbf = mv_store_db_file(paths);
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: meta value %s is not valid hex", dbf, key);
	g_free(dbf);
	return -1;
}

int mv_archive_read_store_meta(const mv_store_paths *paths, char **owner_r, GBytes **key_master_r,
                               GBytes **key_recovery_r, GBytes **recovery_salt_r, char **uid_r, GError **error)
{
	*owner_r = *uid_r = NULL;
	*key_master_r = *key_recovery_r = *recovery_salt_r = NULL;
	int rc = -1;
	if (meta_text(paths, "instance_id", owner_r, error) < 0 || meta_text(paths, "store_uid", uid_r, error) < 0 ||
	    meta_bytes(paths, "key_master", key_master_r, error) < 0 ||
	    meta_bytes(paths, "key_recovery", key_recovery_r, error) < 0 ||
	    meta_bytes(paths, "recovery_salt", recovery_salt_r, error) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		g_clear_pointer(owner_r, g_free);
		g_clear_pointer(uid_r, g_free);
		g_clear_pointer(key_master_r, g_bytes_unref);
		g_clear_pointer(key_recovery_r, g_bytes_unref);
		g_clear_pointer(recovery_salt_r, g_bytes_unref);
	}
	return rc;
}

/* ---- rows of the stores table ------------------------------------------------------ */

#define ROW_COLUMNS "id, name, state, db_path, content_path, index_path, key_master, key_master_next," \
                    " key_recovery, recovery_salt, owner_instance, store_uid, meta_synced"

void mv_archive_row_free(mv_archive_row *r)
{
	if (!r)
		return;
	g_free(r->name);
	g_free(r->state);
	g_free(r->db_path);
	g_free(r->content_path);
	g_free(r->index_path);
	g_clear_pointer(&r->key_master, g_bytes_unref);
	g_clear_pointer(&r->key_master_next, g_bytes_unref);
	g_clear_pointer(&r->key_recovery, g_bytes_unref);
	g_clear_pointer(&r->recovery_salt, g_bytes_unref);
	g_free(r->owner);
	g_free(r->uid);
	g_free(r);
}

static mv_archive_row *row_from(sqlite3_stmt *st)
{
	mv_archive_row *r = g_new0(mv_archive_row, 1);
	r->id = sqlite3_column_int(st, 0);
	r->name = mv_sql_column_text(st, 1);
	r->state = mv_sql_column_text(st, 2);
	r->db_path = mv_sql_column_text(st, 3);
	r->content_path = mv_sql_column_text(st, 4);
	r->index_path = mv_sql_column_text(st, 5);
	r->key_master = mv_sql_column_bytes(st, 6);
	r->key_master_next = mv_sql_column_bytes(st, 7);
	r->key_recovery = mv_sql_column_bytes(st, 8);
	r->recovery_salt = mv_sql_column_bytes(st, 9);
	r->owner = mv_sql_column_text(st, 10);
	r->uid = mv_sql_column_text(st, 11);
	r->meta_synced = sqlite3_column_int(st, 12) != 0;
	return r;
}

/* All rows (store_id < 0) or one; an empty array when it does not exist. */
GPtrArray *mv_archive_rows_load(mv_instance *inst, int store_id, GError **error)
{
	sqlite3_stmt *st;
	const char *sql = store_id < 0 ? "SELECT " ROW_COLUMNS " FROM stores ORDER BY id"
	                               : "SELECT " ROW_COLUMNS " FROM stores WHERE id=?";
	if (mv_sql_prepare(inst->db, sql, &st, error) < 0)
		return NULL;
	if (store_id >= 0)
		sqlite3_bind_int(st, 1, store_id);
	GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)mv_archive_row_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(rows, row_from(st));
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, inst->db, "list stores");
		g_ptr_array_free(rows, TRUE);
		rows = NULL;
	}
	sqlite3_finalize(st);
	return rows;
}

mv_archive_row *mv_archive_row_load(mv_instance *inst, int store_id, GError **error)
{
	GPtrArray *rows = mv_archive_rows_load(inst, store_id, error);
	if (!rows)
		return NULL;
	mv_archive_row *r = NULL;
	if (rows->len == 1)
		r = g_ptr_array_steal_index(rows, 0);
	else
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d does not exist", store_id);
	g_ptr_array_free(rows, TRUE);
	return r;
}

void mv_archive_row_paths(mv_instance *inst, const mv_archive_row *r, mv_store_paths *paths_r)
{
	paths_r->db_dir = mv_archive_absolute_path(inst, r->db_path);
	paths_r->content_dir = mv_archive_absolute_path(inst, r->content_path);
	paths_r->index_dir = mv_archive_absolute_path(inst, r->index_path);
}

void mv_archive_paths_clear(mv_store_paths *p)
{
	g_clear_pointer(&p->db_dir, g_free);
	g_clear_pointer(&p->content_dir, g_free);
	g_clear_pointer(&p->index_dir, g_free);
}

bool mv_archive_row_key(mv_instance *inst, const mv_archive_row *r, uint8_t key_r[MV_KEY_BYTES])
{
	return mv_archive_unwrap(inst, r->key_master, key_r);
}

/* What a file looked like: any write to it changes one of these. */

/* The WAL's look cannot be part of this: it appears and vanishes as
 * readers open and close the db. A committed change of the version that
 * sits in the WAL comes only from an upgrade, and this process makes all
 * of them while it holds the data directory (mv_store_format_epoch). */
typedef struct {
	mv_archive_file_look db;
	unsigned epoch;
	int version;
} format_seen;

void mv_archive_look_at(const char *path, mv_archive_file_look *look_r)
{
	struct stat st;
	*look_r = (mv_archive_file_look){ 0 };
	if (stat(path, &st) < 0)
		return;
	*look_r = (mv_archive_file_look){ .exists = true, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
	                       .mtime = st.st_mtim, .ctime = st.st_ctim };
}

static bool same_look(const mv_archive_file_look *a, const mv_archive_file_look *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The store's format version. Every API request lists the stores, and
 * opening each db to read one number cost more than the request's own
 * work; the number is read again only when the db file changed or this
 * process upgraded a store.  (An upgrade by another process, committed in
 * the WAL, shows once a checkpoint writes the db: a server refuses local
 * writers, and a stale format 1 or 2 flags nothing either way.) */
static int format_version(mv_instance *inst, const mv_store_paths *p, const char *dbf, int *version_r,
                          GError **error)
{
	format_seen now = { .epoch = mv_store_format_epoch() };
	mv_archive_look_at(dbf, &now.db);    /* before the read: a change during it shows next time */
	if (!inst->format_seen)
		inst->format_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	format_seen *seen = g_hash_table_lookup(inst->format_seen, dbf);
	if (seen && seen->epoch == now.epoch && same_look(&seen->db, &now.db)) {
		*version_r = seen->version;
		return 0;
	}
	g_hash_table_remove(inst->format_seen, dbf);
	if (mv_store_format_version(p, &now.version, error) < 0)
		return -1;
	g_hash_table_insert(inst->format_seen, g_strdup(dbf), g_memdup2(&now, sizeof now));
	*version_r = now.version;
	return 0;
}

/* Why the store's files cannot be used now, or NULL.  Cheap: stat calls,
 * and a read of the db's format version when the db changed. */
static char *format_problem(mv_instance *inst, const mv_store_paths *p, const char *dbf)
{
	int version = 0;
	GError *err = NULL;
	char *why = NULL;
	if (format_version(inst, p, dbf, &version, &err) < 0) {
		why = g_strdup_printf("cannot read %s: %s", dbf, err->message);
		g_error_free(err);
	} else if (version > MV_STORE_FORMAT_VERSION) {
		why = g_strdup_printf("%s has format version %d, newer than this build reads (1 to %d)", dbf, version,
		                      MV_STORE_FORMAT_VERSION);
	}
	return why;
}

static char *files_problem(mv_instance *inst, const mv_store_paths *p)
{
	char *dbf = mv_store_db_file(p);
	char *why = NULL;
	if (!g_file_test(p->db_dir, G_FILE_TEST_IS_DIR))
		why = g_strdup_printf("database directory %s is missing", p->db_dir);
	else if (!g_file_test(dbf, G_FILE_TEST_IS_REGULAR))
		why = g_strdup_printf("store database %s is missing", dbf);
	else if (!g_file_test(p->content_dir, G_FILE_TEST_IS_DIR))
		why = g_strdup_printf("content directory %s is missing", p->content_dir);
	else
		why = format_problem(inst, p, dbf);
	/* A missing index is not an error state: the store opens, searches
	 * find nothing there until RebuildStoreIndex (or the next writer)
	 * rebuilds it from content. */
	g_free(dbf);
	return why;
}

char *mv_archive_locked_reason(mv_instance *inst, const mv_archive_row *r)
{
	if (r->owner && *r->owner && strcmp(r->owner, inst->instance_id) != 0)
		return g_strdup_printf("belongs to another instance (%s): run UnlockStore with that instance's "
		                       "recovery key", r->owner);
	return g_strdup("its key does not open with this instance's master key: run UnlockStore with the "
	                "recovery key of the instance that created it");
}

static mv_archive_store *info_from_row(mv_instance *inst, const mv_archive_row *r)
{
	mv_archive_store *info = g_new0(mv_archive_store, 1);
	info->id = r->id;
	info->name = g_strdup(r->name);
	info->state = g_strdup(r->state);
	info->type = g_strdup("FileSystemInternal");
	mv_archive_row_paths(inst, r, &info->paths);
	info->error = files_problem(inst, &info->paths);
	uint8_t key[MV_KEY_BYTES];
	info->locked = !mv_archive_row_key(inst, r, key);
	sodium_memzero(key, sizeof key);
	if (info->locked && !info->error)
		info->error = mv_archive_locked_reason(inst, r);
	return info;
}

void mv_archive_store_free(mv_archive_store *info)
{
	if (!info)
		return;
	g_free(info->name);
	g_free(info->state);
	g_free(info->type);
	mv_archive_paths_clear(&info->paths);
	g_free(info->error);
	g_free(info);
}

GPtrArray *mv_instance_stores(mv_instance *inst, GError **error)
{
	GPtrArray *rows = mv_archive_rows_load(inst, -1, error);
	if (!rows)
		return NULL;
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_archive_store_free);
	for (guint i = 0; i < rows->len; i++)
		g_ptr_array_add(list, info_from_row(inst, rows->pdata[i]));
	g_ptr_array_free(rows, TRUE);
	return list;
}

mv_archive_store *mv_instance_store_info(mv_instance *inst, int store_id, GError **error)
{
	mv_archive_row *r = mv_archive_row_load(inst, store_id, error);
	if (!r)
		return NULL;
	mv_archive_store *info = info_from_row(inst, r);
	mv_archive_row_free(r);
	return info;
}

int mv_instance_require_modifiable(mv_instance *inst, int store_id, GError **error)
{
	mv_archive_store *info = mv_instance_store_info(inst, store_id, error);
	if (!info)
		return -1;
	int rc = -1;
	if (info->locked)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is locked: %s", info->id, info->name,
		            info->error);
	else if (info->error)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is in error: %s", info->id, info->name,
		            info->error);
	else if (strcmp(info->state, "writeProtected") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_STATE,
		            "store %d (%s) is write-protected: its content cannot be modified", info->id, info->name);
	else if (strcmp(info->state, "disabled") == 0)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "store %d (%s) is disabled", info->id, info->name);
	else
		rc = 0;
	mv_archive_store_free(info);
	return rc;
}

int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "SELECT id FROM stores WHERE state='current'", &st, error) < 0)
		return -1;
	int rc = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*store_id_r = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "no store is in state current");
	}
	sqlite3_finalize(st);
	return rc;
}

/* Writes the row's keys, owner and uid into the store's own db.  Stores
 * whose key this instance cannot open are left alone (their meta is their
 * owner's); so are stores whose files are absent. */
static int sync_store_meta(mv_instance *inst, const mv_archive_row *r, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	bool ours = mv_archive_row_key(inst, r, key);
	sodium_memzero(key, sizeof key);
	if (!ours)
		return 0;
	mv_store_paths paths = { 0 };
	mv_archive_row_paths(inst, r, &paths);
	char *dbf = mv_store_db_file(&paths);
	int rc = -1;
	if (!g_file_test(dbf, G_FILE_TEST_IS_REGULAR)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "store %d (%s): %s is missing", r->id, r->name, dbf);
		goto out;
	}
	if (mv_archive_write_store_meta(&paths, r->owner ? r->owner : inst->instance_id, r->key_master,
	                                r->key_recovery, r->recovery_salt, r->uid, error) < 0)
		goto out;
	sqlite3_stmt *st;
	if (mv_sql_prepare(inst->db, "UPDATE stores SET meta_synced=1 WHERE id=?", &st, error) < 0)
		goto out;
	sqlite3_bind_int(st, 1, r->id);
	rc = mv_sql_step_done(inst->db, st, "mark store meta written", error);
out:
	g_free(dbf);
	mv_archive_paths_clear(&paths);
	return rc;
}

int mv_archive_sync_store_meta(mv_instance *inst, int store_id, GError **error)
{
	mv_archive_row *r = mv_archive_row_load(inst, store_id, error);
	if (!r)
		return -1;
	int rc = sync_store_meta(inst, r, error);
	mv_archive_row_free(r);
	return rc;
}

int mv_instance_store_rewrite_own_values(mv_instance *inst, int store_id, GError **error)
{
	return mv_archive_sync_store_meta(inst, store_id, error);
}

void mv_archive_sync_pending_meta(mv_instance *inst)
{
	GError *err = NULL;
	GPtrArray *rows = mv_archive_rows_load(inst, -1, &err);
	for (guint i = 0; rows && i < rows->len; i++) {
		const mv_archive_row *r = rows->pdata[i];
		if (r->meta_synced)
			continue;
		if (sync_store_meta(inst, r, &err) < 0) {
			/* Retried at the next open; the store works meanwhile. */
			mv_log_debug("store %d (%s): key records not yet written into the store: %s", r->id, r->name,
			             err->message);
			g_clear_error(&err);
		}
	}
	if (!rows) {
		mv_log_warn("%s", err->message);
		g_error_free(err);
	} else {
		g_ptr_array_free(rows, TRUE);
	}
}

/* ---- opening and closing ------------------------------------------------------------ */

mv_instance *mv_instance_open(const char *data_dir, GError **error)
{
	if (sodium_init() < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "libsodium failed to initialise");
		return NULL;
	}
	char *dbp = master_db_path(data_dir), *keyp = mv_archive_master_key_path(data_dir);
	mv_instance *inst = NULL;
	if (!g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND,
		            "%s is not a mailvault data directory (run 'mailvault init' first)", data_dir);
		goto out;
	}
	inst = g_new0(mv_instance, 1);
	inst->data_dir = g_canonicalize_filename(data_dir, NULL);
	if (mv_archive_read_key_file(keyp, inst->master_key, error) < 0 ||
	    mv_sql_open(dbp, false, false, &inst->db, error) < 0 ||
	    mv_sql_exec(inst->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", error) < 0 ||
	    mv_archive_migrate(inst, error) < 0 || mv_archive_settle_master_key(inst, error) < 0 ||
	    mv_archive_ensure_users_schema(inst, error) < 0) {
		mv_instance_close(&inst);
		goto out;
	}
	mv_archive_sync_pending_meta(inst);
out:
	g_free(dbp);
	g_free(keyp);
	return inst;
}

void mv_instance_close(mv_instance **ip)
{
	mv_instance *inst = *ip;
	if (!inst)
		return;
	*ip = NULL;
	sqlite3_close(inst->db);
	sodium_memzero(inst->master_key, sizeof inst->master_key);
	g_free(inst->instance_id);
	g_free(inst->data_dir);
	if (inst->format_seen)
		g_hash_table_destroy(inst->format_seen);
	if (inst->lent)
		g_hash_table_destroy(inst->lent);
	if (inst->kept)
		g_hash_table_destroy(inst->kept);
	g_free(inst);
}

const char *mv_instance_data_dir(const mv_instance *inst) { return inst->data_dir; }

/* ---- init ------------------------------------------------------------------------ */

typedef struct initial_settings {
	sqlite3 *db;
	const uint8_t *master;
	const char *recovery;
} initial_settings;

static int write_initial_settings(void *opaque, GError **error)
{
	const initial_settings *s = opaque;
	sqlite3 *db = s->db;
	const uint8_t *master = s->master;
	const char *recovery = s->recovery;
	uint8_t salt[RECOVERY_SALT_BYTES], kek[MV_KEY_BYTES];
	randombytes_buf(salt, sizeof salt);
	if (mv_key_from_recovery(recovery, salt, kek, error) < 0)
		return -1;
	GBytes *kek_wrapped = mv_archive_wrap_with(master, kek);
	sodium_memzero(kek, sizeof kek);
	GBytes *salt_bytes = g_bytes_new(salt, sizeof salt);
	GBytes *check = mv_archive_new_key_check(master);
	GBytes *audit_key = mv_archive_new_wrapped_key(master);
	char *version = g_strdup_printf("%d", MV_INSTANCE_FORMAT_VERSION);
	char *id = mv_archive_random_hex(INSTANCE_ID_BYTES);
	int rc = -1;
	if (setting_put(db, SETTING_FORMAT, version, error) < 0 || setting_put(db, SETTING_INSTANCE_ID, id, error) < 0 ||
	    setting_put_bytes(db, SETTING_RECOVERY_SALT, salt_bytes, error) < 0 ||
	    setting_put_bytes(db, SETTING_RECOVERY_KEK, kek_wrapped, error) < 0 ||
	    setting_put_bytes(db, SETTING_KEY_CHECK, check, error) < 0 ||
	    setting_put_bytes(db, SETTING_AUDIT_KEY, audit_key, error) < 0)
		goto out;
	rc = 0;
out:
	g_bytes_unref(audit_key);
	g_free(version);
	g_free(id);
	g_bytes_unref(check);
	g_bytes_unref(salt_bytes);
	g_bytes_unref(kek_wrapped);
	return rc;
}

static int create_master_db(const char *dbp, const uint8_t master[MV_KEY_BYTES], const char *recovery,
                            GError **error)
{
	sqlite3 *db = NULL;
	int rc = -1;
	if (mv_sql_open(dbp, true, false, &db, error) < 0 || mv_sql_exec(db, mv_archive_schema(), error) < 0)
		goto out;
	initial_settings s = { db, master, recovery };
	rc = mv_sql_in_transaction(db, write_initial_settings, &s, error);
out:
	sqlite3_close(db);
	return rc;
}

/* Removes what a failed init wrote, so that init can be run again. */
static void undo_init(const char *data_dir)
{
	static const char *const files[] = { "master.sqlite", "master.sqlite-wal", "master.sqlite-shm",
	                                     "master.key", "master.lock" };
	for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
		char *p = g_build_filename(data_dir, files[i], NULL);
		if (unlink(p) < 0 && errno != ENOENT)
			mv_log_warn("cannot remove %s after a failed init: %s", p, g_strerror(errno));
		g_free(p);
	}
}

/* The master db and the first store; what was written is removed again
 * when either fails. */
static int create_instance(const char *data_dir, const char *dbp, const uint8_t master[MV_KEY_BYTES],
                           const char *recovery, GError **error)
{
	mv_instance *inst = NULL;
	int store_id = 0, rc = -1;
	if (create_master_db(dbp, master, recovery, error) < 0)
		goto out;
	inst = mv_instance_open(data_dir, error);
	if (!inst)
		goto out;
	rc = mv_instance_create_store(inst, "store1", NULL, "current", &store_id, error);
out:
	mv_instance_close(&inst);
	if (rc < 0)
		undo_init(data_dir);
	return rc;
}

int mv_instance_init(const char *data_dir, char **recovery_key_r, GError **error)
{
	if (sodium_init() < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "libsodium failed to initialise");
		return -1;
	}
	char *dbp = master_db_path(data_dir), *keyp = mv_archive_master_key_path(data_dir);
	char *recovery = NULL;
	uint8_t master[MV_KEY_BYTES];
	int rc = -1;
	if (g_file_test(dbp, G_FILE_TEST_EXISTS)) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s already holds a mailvault instance", data_dir);
		goto out;
	}
	if (mv_mkdir_p(data_dir, error) < 0)
		goto out;
	randombytes_buf(master, sizeof master);
	recovery = mv_recovery_key_new();
	if (mv_archive_write_key_file(keyp, master, error) < 0)
		goto out;
	if (create_instance(data_dir, dbp, master, recovery, error) < 0)
		goto out;
	*recovery_key_r = g_steal_pointer(&recovery);   /* the caller shows it once */
	rc = 0;
out:
	sodium_memzero(master, sizeof master);
	g_free(recovery);
	g_free(dbp);
	g_free(keyp);
	return rc;
}

/* ---- CompactMasterDatabase ------------------------------------------------------------ */

int mv_instance_compact_master(mv_instance *inst, GError **error)
{
	return mv_sql_exec(inst->db, "VACUUM; PRAGMA wal_checkpoint(TRUNCATE);", error);
}

int mv_instance_get_setting(mv_instance *inst, const char *key, char **value_r, GError **error)
{
	return mv_archive_setting_get(inst, key, value_r, error);
}

int mv_instance_set_setting(mv_instance *inst, const char *key, const char *value, GError **error)
{
	return mv_archive_setting_put(inst, key, value, error);
}
