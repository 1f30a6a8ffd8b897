/* backup: CreateBackup (a consistent copy of a running instance) and restore.
 *
 * A backup directory is itself a data directory, plus BACKUP-INFO.json:
 *   master.sqlite     SQLite online backup of the live one, with the paths of
 *                     the copied stores rewritten to stores/<name>/...
 *   master.key        copy (0600): a backup opens without the recovery key,
 *                     so it must be kept as safe as the data directory
 *   stores/<name>/{db,content,index}   mv_store_backup of each store
 *   BACKUP-INFO.json  written last, so its presence marks a complete backup
 * Stores that are disabled, locked or unavailable are not copied (they are
 * listed under skippedStores); their rows stay in the copy of master.sqlite
 * with absolute paths to where they are now.
 *
 * Copies are taken while imports run: master.sqlite first, then each store,
 * whose own backup is consistent by itself (store.h).  Everything written is
 * fsync'd before BACKUP-INFO.json; a failed or cancelled backup removes what
 * it wrote, and a restore goes through a temporary directory renamed into
 * place, so neither leaves a half-made directory that looks whole. */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKUP_FORMAT 1
#define BACKUP_INFO "BACKUP-INFO.json"
#define MAX_TREE_DEPTH 16
#define MAX_DIR_NAME_BYTES 100

/* ---- file tree helpers (never follow symbolic links) ------------------------------ */

/* Removes a tree this module wrote; entries it cannot remove are logged. */
static void remove_tree(const char *path, int depth)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode) && depth < MAX_TREE_DEPTH) {
		GDir *d = g_dir_open(path, 0, NULL);
		const char *name;
		while (d && (name = g_dir_read_name(d))) {
			char *child = g_build_filename(path, name, NULL);
			remove_tree(child, depth + 1);
			g_free(child);
		}
		if (d)
			g_dir_close(d);
		if (rmdir(path) < 0)
			mv_log_warn("cannot remove %s: %s", path, g_strerror(errno));
	} else if (unlink(path) < 0) {
		mv_log_warn("cannot remove %s: %s", path, g_strerror(errno));
	}
}

static int fsync_tree(const char *path, int depth, GError **error)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) ? mv_fsync_file(path, error) : 0;
	if (depth >= MAX_TREE_DEPTH) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: directories nested deeper than %d", path, MAX_TREE_DEPTH);
		return -1;
	}
	GDir *d = g_dir_open(path, 0, error);
	if (!d)
		return -1;
	int rc = -1;
	const char *name;
	while ((name = g_dir_read_name(d))) {
		char *child = g_build_filename(path, name, NULL);
		int child_rc = fsync_tree(child, depth + 1, error);
		g_free(child);
		if (child_rc < 0)
			goto out;
	}
	rc = mv_fsync_dir(path, error);
out:
	g_dir_close(d);
	return rc;
}

static int copy_tree(const char *src, const char *dst, int depth, GError **error);

/* One entry of a backup tree: a directory copied whole, a regular file. */
static int copy_entry(const char *from, const char *to, int depth, GError **error)
{
	struct stat st;
	if (lstat(from, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", from);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mv_mkdir_p(to, error) < 0)
			return -1;
		return copy_tree(from, to, depth + 1, error);
	}
	if (S_ISREG(st.st_mode)) {
		/* 0600 whatever the backup's files say (one made by an older
		 * version or copied by hand may be wider); an existing file is
		 * never overwritten, a link never followed. */
		return mv_copy_file(from, to, -1, 0600, MV_COPY_EXCL | MV_COPY_NOFOLLOW, error);
	}
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: not a regular file or directory (a backup holds "
	            "no links or special files)", from);
	return -1;
}

/* Copies a backup tree; the top-level BACKUP-INFO.json stays behind (a data
 * directory has no use for it). */
static int copy_tree(const char *src, const char *dst, int depth, GError **error)
{
	if (depth >= MAX_TREE_DEPTH) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: directories nested deeper than %d", src, MAX_TREE_DEPTH);
		return -1;
	}
	GDir *d = g_dir_open(src, 0, error);
	if (!d)
		return -1;
	int rc = -1;
	const char *name;
	while ((name = g_dir_read_name(d))) {
		if (depth == 0 && strcmp(name, BACKUP_INFO) == 0)
			continue;
		char *from = g_build_filename(src, name, NULL), *to = g_build_filename(dst, name, NULL);
		int entry_rc = copy_entry(from, to, depth, error);
		g_free(from);
		g_free(to);
		if (entry_rc < 0)
			goto out;
	}
	rc = 0;
out:
	g_dir_close(d);
	return rc;
}

static bool dir_is_empty(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	if (!d)
		return false;
	bool empty = g_dir_read_name(d) == NULL;
	g_dir_close(d);
	return empty;
}

/* ---- CreateBackup ------------------------------------------------------------------------ */

typedef struct backup_run {
	mv_instance *inst;
	char *dir;                  /* absolute */
	bool created_dir;           /* the backup made dir (else it was empty) */
	bool prepared;              /* dir was found empty or made: ours to clean up */
	bool exclude_index;
	const mv_task *task;        /* may be NULL */
	json_t *copied;             /* [{id, name, path}] */
	json_t *skipped;            /* [{id, name, reason, databasePath, contentPath, indexPath}] */
	GHashTable *dir_names;      /* store directory names used under stores/ */
} backup_run;

static void report(backup_run *b, int percent, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void report(backup_run *b, int percent, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	mv_log_debug("backup: %s", text);
	if (b->task && b->task->progress)
		b->task->progress(b->task->opaque, percent, text);
	g_free(text);
}

static int check_cancel(backup_run *b, GError **error)
{
	if (!b->task || !b->task->cancel || !g_atomic_int_get(b->task->cancel))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "backup to %s cancelled; the partial backup was removed", b->dir);
	return -1;
}

static int prepare_dir(backup_run *b, GError **error)
{
	if (!g_file_test(b->dir, G_FILE_TEST_EXISTS)) {
		b->created_dir = true;
		return mv_mkdir_p(b->dir, error);
	}
	if (!g_file_test(b->dir, G_FILE_TEST_IS_DIR) || !dir_is_empty(b->dir)) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "path %s: must be an empty or absent directory", b->dir);
		return -1;
	}
	return 0;
}

static int copy_master_db(backup_run *b, GError **error)
{
	char *src_path = g_build_filename(mv_instance_data_dir(b->inst), "master.sqlite", NULL);
	char *dst_path = g_build_filename(b->dir, "master.sqlite", NULL);
	sqlite3 *src = NULL, *dst = NULL;
	int rc = -1;
	if (mv_sql_open(src_path, false, true, &src, error) < 0 || mv_sql_open(dst_path, true, false, &dst, error) < 0)
		goto out;
	sqlite3_backup *copy = sqlite3_backup_init(dst, "main", src, "main");
	if (!copy) {
		mv_sql_set_error(error, dst, "back up master.sqlite");
		goto out;
	}
	int step;
	while ((step = sqlite3_backup_step(copy, -1)) == SQLITE_BUSY || step == SQLITE_LOCKED)
		g_usleep(10000);
	if (sqlite3_backup_finish(copy) != SQLITE_OK || step != SQLITE_DONE)
		mv_sql_set_error(error, dst, "back up master.sqlite");
	else
		rc = 0;
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	g_free(src_path);
	g_free(dst_path);
	return rc;
}

static int copy_master_key(backup_run *b, GError **error)
{
	char *src = g_build_filename(mv_instance_data_dir(b->inst), "master.key", NULL);
	char *dst = g_build_filename(b->dir, "master.key", NULL);
	GByteArray *key = NULL;
	int rc = -1;
	if (mv_read_file(src, 4096, &key, error) < 0)
		goto out;
	rc = mv_write_file_atomic(dst, key->data, key->len, 0600, error);
	memset(key->data, 0, key->len);
	g_byte_array_unref(key);
out:
	g_free(src);
	g_free(dst);
	return rc;
}

static char *store_dir_name(backup_run *b, const char *name)
{
	GString *base = g_string_new(NULL);
	for (const char *p = name; *p && base->len < MAX_DIR_NAME_BYTES; p++)
		g_string_append_c(base, (g_ascii_isalnum(*p) || *p == '-' || *p == '_' || *p == '.') ? *p : '_');
	if (base->len == 0 || strcmp(base->str, ".") == 0 || strcmp(base->str, "..") == 0)
		g_string_assign(base, "store");
	char *dir = g_strdup(base->str);
	for (int n = 2; g_hash_table_contains(b->dir_names, dir); n++) {
		g_free(dir);
		dir = g_strdup_printf("%s-%d", base->str, n);
	}
	g_hash_table_add(b->dir_names, g_strdup(dir));
	g_string_free(base, TRUE);
	return dir;
}

static void skip_store(backup_run *b, const mv_archive_store *info, const char *reason)
{
	json_array_append_new(b->skipped, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", info->id, "name",
	                                            info->name, "reason", reason, "databasePath", info->paths.db_dir,
	                                            "contentPath", info->paths.content_dir, "indexPath",
	                                            info->paths.index_dir));
	report(b, -1, "store %d (%s) not backed up: %s", info->id, info->name, reason);
}

static int backup_store(backup_run *b, const mv_archive_store *info, GError **error)
{
	char *dname = store_dir_name(b, info->name);
	char *rel = g_build_filename("stores", dname, NULL);
	char *base = g_build_filename(b->dir, rel, NULL);
	mv_store_paths dest;
	mv_store_paths_under(base, &dest);
	int rc = -1;
	mv_store *s = mv_instance_open_store(b->inst, info->id, MV_STORE_READ, error);
	if (s && mv_store_backup(s, &dest, !b->exclude_index, error) == 0) {
		json_array_append_new(b->copied, json_pack("{s:i, s:s, s:s}", "id", info->id, "name", info->name,
		                                           "path", rel));
		rc = 0;
	} else {
		g_prefix_error(error, "store %d (%s): ", info->id, info->name);
	}
	mv_store_close(&s);
	g_free(dest.db_dir);
	g_free(dest.content_dir);
	g_free(dest.index_dir);
	g_free(base);
	g_free(rel);
	g_free(dname);
	return rc;
}

static int backup_stores(backup_run *b, GError **error)
{
	GPtrArray *stores = mv_instance_stores(b->inst, error);
	if (!stores)
		return -1;
	int rc = -1;
	for (guint i = 0; i < stores->len; i++) {
		const mv_archive_store *info = stores->pdata[i];
		if (check_cancel(b, error) < 0)
			goto out;
		if (strcmp(info->state, "disabled") == 0) {
			skip_store(b, info, "disabled");
			continue;
		}
		if (info->error) {
			skip_store(b, info, info->error);
			continue;
		}
		report(b, 5 + (int)(90 * i / stores->len), "store %d (%s)", info->id, info->name);
		if (backup_store(b, info, error) < 0)
			goto out;
	}
	rc = 0;
out:
	g_ptr_array_free(stores, TRUE);
	return rc;
}

static int set_row_paths(sqlite3_stmt *st, int id, const char *db_dir, const char *content_dir, const char *index_dir)
{
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, db_dir, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, content_dir, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, index_dir, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 4, id);
	return sqlite3_step(st);
}

/* The copied stores live under the backup now: point its master.sqlite
 * at them, relative, so the backup is a movable data directory. */
static int rewrite_store_paths(backup_run *b, GError **error)
{
	char *path = g_build_filename(b->dir, "master.sqlite", NULL);
	sqlite3 *db = NULL;
	int rc = -1;
	sqlite3_stmt *st = NULL;
	if (mv_sql_open(path, false, false, &db, error) < 0 || mv_sql_exec(db, "BEGIN", error) < 0)
		goto out;
	if (mv_sql_prepare(db, "UPDATE stores SET db_path=?, content_path=?, index_path=? WHERE id=?", &st, error) < 0)
		goto out;
	size_t i;
	json_t *entry;
	json_array_foreach(b->copied, i, entry) {
		const char *rel = json_string_value(json_object_get(entry, "path"));
		mv_store_paths p;
		mv_store_paths_under(rel, &p);
		int step = set_row_paths(st, (int)json_integer_value(json_object_get(entry, "id")), p.db_dir,
		                         p.content_dir, p.index_dir);
		g_free(p.db_dir);
		g_free(p.content_dir);
		g_free(p.index_dir);
		if (step != SQLITE_DONE) {
			mv_sql_set_error(error, db, "rewrite store paths");
			goto out;
		}
	}
	/* Stores left out keep pointing at where they are, absolutely: their
	 * relative paths would name nothing, or a copied store, in a restore. */
	json_array_foreach(b->skipped, i, entry) {
		if (set_row_paths(st, (int)json_integer_value(json_object_get(entry, "id")),
		                  json_string_value(json_object_get(entry, "databasePath")),
		                  json_string_value(json_object_get(entry, "contentPath")),
		                  json_string_value(json_object_get(entry, "indexPath"))) != SQLITE_DONE) {
			mv_sql_set_error(error, db, "rewrite store paths");
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	/* One self-contained file: no -wal beside it. */
	if (mv_sql_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;", error) == 0)
		rc = 0;
out:
	sqlite3_finalize(st);
	if (rc < 0 && db)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	g_free(path);
	return rc;
}

static int write_info(backup_run *b, GError **error)
{
	char *when = mv_format_time_utc(mv_now());
	json_t *info = json_pack("{s:i, s:s, s:s, s:b, s:O, s:O}", "format", BACKUP_FORMAT, "createdAt", when,
	                         "dataDirectory", mv_instance_data_dir(b->inst), "excludeSearchIndexes",
	                         b->exclude_index, "stores", b->copied, "skippedStores", b->skipped);
	g_free(when);
	char *text = info ? json_dumps(info, JSON_INDENT(2)) : NULL;
	json_decref(info);
	if (!text) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot encode %s", BACKUP_INFO);
		return -1;
	}
	char *path = g_build_filename(b->dir, BACKUP_INFO, NULL);
	int rc = mv_write_file_atomic(path, text, strlen(text), 0600, error);
	g_free(path);
	free(text);
	return rc;
}

static int run_backup(backup_run *b, GError **error)
{
	if (prepare_dir(b, error) < 0)
		return -1;
	b->prepared = true;
	report(b, 0, "master database");
	if (check_cancel(b, error) < 0 || copy_master_db(b, error) < 0 || copy_master_key(b, error) < 0 ||
	    backup_stores(b, error) < 0 || check_cancel(b, error) < 0 || rewrite_store_paths(b, error) < 0)
		return -1;
	report(b, 96, "flushing to disk");
	if (fsync_tree(b->dir, 0, error) < 0 || write_info(b, error) < 0)
		return -1;
	char *parent = g_path_get_dirname(b->dir);
	int rc = mv_fsync_dir(parent, error);
	g_free(parent);
	if (rc < 0)
		return -1;
	report(b, 100, "backup complete: %zu stores", json_array_size(b->copied));
	return 0;
}

static void remove_partial_backup(backup_run *b)
{
	if (b->created_dir) {
		remove_tree(b->dir, 0);
		return;
	}
	GDir *d = g_dir_open(b->dir, 0, NULL);
	const char *name;
	while (d && (name = g_dir_read_name(d))) {
		char *child = g_build_filename(b->dir, name, NULL);
		remove_tree(child, 1);
		g_free(child);
	}
	if (d)
		g_dir_close(d);
}

int mv_instance_backup(mv_instance *inst, const char *dir, bool exclude_index,
                       const mv_task *task, GError **error)
{
	if (!dir || !g_path_is_absolute(dir)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "path '%s': must be an absolute path", dir ? dir : "");
		return -1;
	}
	backup_run b = {
		.inst = inst, .dir = g_canonicalize_filename(dir, NULL), .exclude_index = exclude_index,
		.task = task, .copied = json_array(),
		.skipped = json_array(), .dir_names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
	};
	int rc = run_backup(&b, error);
	if (rc < 0 && b.prepared)
		remove_partial_backup(&b);
	else if (rc == 0)
		mv_log_debug("backup of %s written to %s", mv_instance_data_dir(inst), b.dir);
	json_decref(b.copied);
	json_decref(b.skipped);
	g_hash_table_destroy(b.dir_names);
	g_free(b.dir);
	return rc;
}

/* ---- restore ------------------------------------------------------------------------------ */

static int check_backup_dir(const char *dir, GError **error)
{
	static const char *const needed[] = { BACKUP_INFO, "master.sqlite", "master.key" };
	for (size_t i = 0; i < G_N_ELEMENTS(needed); i++) {
		char *p = g_build_filename(dir, needed[i], NULL);
		bool ok = g_file_test(p, G_FILE_TEST_IS_REGULAR);
		g_free(p);
		if (!ok) {
			g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "%s is not a complete mailvault backup (no %s)", dir,
			            needed[i]);
			return -1;
		}
	}
	return 0;
}

static int check_restore_target(const char *data_dir, GError **error)
{
	if (!g_file_test(data_dir, G_FILE_TEST_EXISTS))
		return 0;
	char *master = g_build_filename(data_dir, "master.sqlite", NULL);
	bool has_instance = g_file_test(master, G_FILE_TEST_EXISTS);
	g_free(master);
	if (has_instance) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s already holds a mailvault instance: restore into an "
		            "empty or absent directory", data_dir);
		return -1;
	}
	if (!g_file_test(data_dir, G_FILE_TEST_IS_DIR) || !dir_is_empty(data_dir)) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s: must be an empty or absent directory", data_dir);
		return -1;
	}
	return 0;
}

static int refresh_index(mv_instance *inst, const mv_archive_store *info, GError **error)
{
	if (strcmp(info->state, "disabled") == 0 || info->error) {
		mv_log_warn("restore: store %d (%s) was not in the backup%s%s", info->id, info->name,
		            info->error ? ": " : "", info->error ? info->error : "");
		return 0;
	}
	mv_log_info("restore: indexing store %d (%s)", info->id, info->name);
	mv_store *s = mv_instance_open_store(inst, info->id, MV_STORE_WRITE, error);
	int rc = 0;
	if (!s || mv_store_refresh_index(s, error) < 0) {
		g_prefix_error(error, "restore: store %d (%s): ", info->id, info->name);
		rc = -1;
	}
	mv_store_close(&s);
	return rc;
}

/* Brings every copied store's index up to its db (a backup without
 * indexes gets them rebuilt here). */
static int refresh_indexes(const char *data_dir, GError **error)
{
	mv_instance *inst = mv_instance_open(data_dir, error);
	if (!inst)
		return -1;
	GPtrArray *stores = mv_instance_stores(inst, error);
	int rc = -1;
	if (!stores)
		goto out;
	for (guint i = 0; i < stores->len; i++)
		if (refresh_index(inst, stores->pdata[i], error) < 0)
			goto out;
	rc = 0;
out:
	if (stores)
		g_ptr_array_free(stores, TRUE);
	mv_instance_close(&inst);
	return rc;
}

/* A restore cut short leaves its temporary sibling behind; the next
 * restore into the same place removes it. */
static void remove_stale_copies(const char *data_dir)
{
	char *parent = g_path_get_dirname(data_dir), *base = g_path_get_basename(data_dir);
	char *prefix = g_strconcat(base, ".restoring-", NULL);
	GDir *d = g_dir_open(parent, 0, NULL);
	const char *name;
	while (d && (name = g_dir_read_name(d))) {
		if (!g_str_has_prefix(name, prefix) || strlen(name) != strlen(prefix) + 6)
			continue;
		char *stale = g_build_filename(parent, name, NULL);
		mv_log_info("restore: removing %s, left by a restore that did not finish", stale);
		remove_tree(stale, 0);
		g_free(stale);
	}
	if (d)
		g_dir_close(d);
	g_free(prefix);
	g_free(base);
	g_free(parent);
}

/* Copies into a temporary sibling, brings its indexes up to date there
 * (a backup without indexes has them rebuilt), then renames it into place:
 * a crash leaves either nothing or the whole, searchable copy at data_dir. */
static int copy_into_place(const char *backup_dir, const char *data_dir, GError **error)
{
	char *parent = g_path_get_dirname(data_dir);
	char *tmp = g_strdup_printf("%s.restoring-XXXXXX", data_dir);
	int rc = -1;
	if (mv_mkdir_p(parent, error) < 0)
		goto out;
	if (!g_mkdtemp_full(tmp, 0700)) {
		mv_set_errno_error(error, errno, "create", tmp);
		goto out;
	}
	if (copy_tree(backup_dir, tmp, 0, error) < 0 || refresh_indexes(tmp, error) < 0 ||
	    fsync_tree(tmp, 0, error) < 0)
		goto out;
	if (rename(tmp, data_dir) < 0) {
		mv_set_errno_error(error, errno, "rename into place", data_dir);
		goto out;
	}
	rc = mv_fsync_dir(parent, error);
out:
	if (rc < 0 && g_file_test(tmp, G_FILE_TEST_EXISTS))
		remove_tree(tmp, 0);
	g_free(parent);
	g_free(tmp);
	return rc;
}

int mv_instance_restore(const char *backup_dir, const char *data_dir, GError **error)
{
	char *from = g_canonicalize_filename(backup_dir, NULL);
	char *to = g_canonicalize_filename(data_dir, NULL);
	int rc = -1;
	if (check_backup_dir(from, error) < 0 || check_restore_target(to, error) < 0)
		goto out;
	remove_stale_copies(to);
	if (copy_into_place(from, to, error) < 0)
		goto out;
	mv_log_info("restored %s into %s", from, to);
	rc = 0;
out:
	g_free(from);
	g_free(to);
	return rc;
}
