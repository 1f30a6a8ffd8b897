/* sources/source_files: source files let go of once archived (see
 * source_files.h).
 *
 * Shape: every file handed in is an entry in a table keyed by its token,
 * with what it looked like when read (device, inode, size, mtime).  Ingest's
 * committer (or the caller's thread, for a message the pre-check found)
 * only counts a commit against the entry and queues a single-message file
 * as ready; the source's own thread deletes or moves what is ready when it
 * settles, so the committer never waits on the file system and one thread
 * writes the run's warnings.  Before acting the file is looked at again: a
 * file replaced or rewritten since it was read holds bytes nobody archived.
 *
 * A move never overwrites: rename(2) with RENAME_NOREPLACE, a numbered
 * name when one is taken; across file systems a copy, fsync'd with its
 * directory, before the source is unlinked.  A crash between a commit and
 * the delete leaves the file, which the next run finds archived and lets go. */
#include "sources/source_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Numbered names tried before a move gives up on a directory. */
#define MAX_NAME_TRIES 1000

typedef struct entry {
	char *path;
	char *relative;
	struct stat seen;     /* when it was read */
	bool container;
	bool read_whole;
	char *kept_why;       /* a container kept whatever is committed */
	uint64_t handed;
	uint64_t committed;
} entry;

struct mv_source_files {
	mv_after_archiving after;
	char *move_to;
	GMutex lock;          /* entries and ready: the committer adds to them */
	GHashTable *entries;  /* token (uint64_t *) -> entry * */
	GArray *ready;        /* uint64_t tokens of committed single-message files */
	uint64_t next_token;
	uint64_t deleted, moved;
	bool faulted;         /* the test hook's crash point passed */
};

static void entry_free(gpointer p)
{
	entry *e = p;
	g_free(e->path);
	g_free(e->relative);
	g_free(e->kept_why);
	g_free(e);
}

bool mv_after_archiving_from_name(const char *name, mv_after_archiving *after_r)
{
	static const char *const names[] = { "keep", "delete", "move" };
	for (size_t i = 0; name && i < G_N_ELEMENTS(names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*after_r = (mv_after_archiving)i;
			return true;
		}
	}
	return false;
}

mv_source_files *mv_source_files_new(mv_after_archiving after, const char *move_to)
{
	mv_source_files *sf = g_new0(mv_source_files, 1);
	sf->after = after;
	sf->move_to = g_strdup(move_to);
	g_mutex_init(&sf->lock);
	sf->entries = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, entry_free);
	sf->ready = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	return sf;
}

void mv_source_files_free(mv_source_files **sf_r)
{
	mv_source_files *sf = *sf_r;
	if (!sf)
		return;
	*sf_r = NULL;
	g_hash_table_destroy(sf->entries);
	g_array_free(sf->ready, TRUE);
	g_mutex_clear(&sf->lock);
	g_free(sf->move_to);
	g_free(sf);
}

/* The committed callback: count, and queue a single-message file. */
static void on_committed(void *opaque, uint64_t token)
{
	mv_source_files *sf = opaque;
	g_mutex_lock(&sf->lock);
	entry *e = g_hash_table_lookup(sf->entries, &token);
	if (e) {
		e->committed++;
		if (!e->container)
			g_array_append_val(sf->ready, token);
	}
	g_mutex_unlock(&sf->lock);
}

void mv_source_files_attach(mv_source_files *sf, mv_ingest *ing)
{
	mv_ingest_on_committed(ing, on_committed, sf);
}

static uint64_t add_entry(mv_source_files *sf, const char *path, const char *relative, bool container)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	entry *e = g_new0(entry, 1);
	e->path = g_strdup(path);
	e->relative = g_strdup(relative);
	e->seen = st;
	e->container = container;
	e->handed = container ? 0 : 1;
	g_mutex_lock(&sf->lock);
	uint64_t token = ++sf->next_token;
	g_hash_table_insert(sf->entries, g_memdup2(&token, sizeof token), e);
	g_mutex_unlock(&sf->lock);
	return token;
}

uint64_t mv_source_files_track(mv_source_files *sf, const char *path, const char *relative)
{
	return add_entry(sf, path, relative, false);
}

uint64_t mv_source_files_track_container(mv_source_files *sf, const char *path, const char *relative)
{
	return add_entry(sf, path, relative, true);
}

/* Runs f on the entry of token under the lock; nothing for an unknown token. */
static void with_entry(mv_source_files *sf, uint64_t token, void (*f)(entry *e, const void *arg), const void *arg)
{
	g_mutex_lock(&sf->lock);
	entry *e = g_hash_table_lookup(sf->entries, &token);
	if (e)
		f(e, arg);
	g_mutex_unlock(&sf->lock);
}

static void count_handed(entry *e, const void *arg)
{
	(void)arg;
	e->handed++;
}

static void mark_read_whole(entry *e, const void *arg)
{
	(void)arg;
	e->read_whole = true;
}

static void mark_kept(entry *e, const void *why)
{
	if (!e->kept_why)
		e->kept_why = g_strdup(why);
}

void mv_source_files_handed(mv_source_files *sf, uint64_t token)
{
	with_entry(sf, token, count_handed, NULL);
}

void mv_source_files_read_whole(mv_source_files *sf, uint64_t token)
{
	with_entry(sf, token, mark_read_whole, NULL);
}

void mv_source_files_keep(mv_source_files *sf, uint64_t token, const char *why)
{
	with_entry(sf, token, mark_kept, why);
}

void mv_source_files_counts(mv_source_files *sf, uint64_t *deleted_r, uint64_t *moved_r)
{
	*deleted_r = sf->deleted;
	*moved_r = sf->moved;
}

/* ---- names ------------------------------------------------------------------------------- */

char *mv_source_files_relative(const char *root, const char *path)
{
	size_t n = strlen(root);
	while (n > 0 && root[n - 1] == '/')   /* "/" becomes "", whose child "/a" starts with '/' */
		n--;
	if (strncmp(path, root, n) == 0 && path[n] == '/') {
		const char *rest = path + n;
		while (*rest == '/')
			rest++;
		if (*rest)
			return g_strdup(rest);
	}
	return g_path_get_basename(path);
}

char *mv_source_files_numbered_name(const char *name, unsigned n)
{
	/* A Maildir name's info (":2,FLAGS") stays last: it is what the flags are read from. */
	const char *info = strrchr(name, ':');
	const char *cut = info;
	if (!cut) {
		const char *dot = strrchr(name, '.');
		cut = dot && dot != name && dot[1] ? dot : NULL;
	}
	if (!cut)
		return g_strdup_printf("%s-%u", name, n);
	return g_strdup_printf("%.*s-%u%s", (int)(cut - name), name, n, cut);
}

/* ---- letting go ---------------------------------------------------------------------------- */

/* The file at path is still the one read: same inode, size and mtime. */
static bool unchanged(const entry *e, const char **why_r)
{
	struct stat st;
	if (stat(e->path, &st) < 0) {
		*why_r = errno == ENOENT ? "it is gone already" : "it cannot be looked at";
		return false;
	}
	if (st.st_dev != e->seen.st_dev || st.st_ino != e->seen.st_ino || st.st_size != e->seen.st_size ||
	    st.st_mtim.tv_sec != e->seen.st_mtim.tv_sec || st.st_mtim.tv_nsec != e->seen.st_mtim.tv_nsec) {
		*why_r = "it changed since it was read: what it holds now is not what was archived";
		return false;
	}
	return true;
}

/* A copy of src at dst, fsync'd with its directory: 0 done, 1 dst is
 * taken, -1 failed (a partial copy removed: dst was made here, O_EXCL). */
static int copy_durably(const char *src, const char *dst, GError **error)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 1;
		mv_set_errno_error(error, errno, "create", dst);
		return -1;
	}
	close(fd);
	char *dir = g_path_get_dirname(dst);
	int rc = mv_copy_file(src, dst, -1, -1, 0, error) < 0 || mv_fsync_dir(dir, error) < 0 ? -1 : 0;
	g_free(dir);
	if (rc < 0)
		unlink(dst);
	return rc;
}

/* One try at dst: 0 done, 1 dst is taken, -1 failed. */
static int move_to_name(const char *src, const char *dst, GError **error)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	int err = errno;
	if (err == EEXIST)
		return 1;
	if (err == EINVAL || err == ENOSYS) {
		/* A file system without RENAME_NOREPLACE: a link cannot overwrite either. */
		if (link(src, dst) == 0) {
			if (unlink(src) == 0)
				return 0;
			mv_set_errno_error(error, errno, "unlink", src);
			return -1;
		}
		err = errno;
		if (err == EEXIST)
			return 1;
	}
	if (err != EXDEV) {
		mv_set_errno_error(error, err, "rename", src);
		return -1;
	}
	int rc = copy_durably(src, dst, error);
	if (rc != 0)
		return rc;
	if (unlink(src) < 0) {
		mv_set_errno_error(error, errno, "unlink", src);
		return -1;
	}
	return 0;
}

static int move_file(mv_source_files *sf, const entry *e, GError **error)
{
	char *target = g_build_filename(sf->move_to, e->relative, NULL);
	char *dir = g_path_get_dirname(target);
	char *base = g_path_get_basename(target);
	int rc = mv_mkdir_p(dir, error);
	for (unsigned n = 0; rc == 0 && n < MAX_NAME_TRIES; n++) {
		char *name = n ? mv_source_files_numbered_name(base, n) : g_strdup(base);
		char *dst = g_build_filename(dir, name, NULL);
		int r = move_to_name(e->path, dst, error);
		g_free(name);
		g_free(dst);
		if (r <= 0) {
			rc = r;
			goto out;
		}
	}
	if (rc == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s: %d names like '%s' are taken in %s", e->path,
		            MAX_NAME_TRIES, base, dir);
		rc = -1;
	}
out:
	g_free(target);
	g_free(dir);
	g_free(base);
	return rc;
}

static void let_go(mv_source_files *sf, mv_ingest *ing, const entry *e)
{
	const char *why = NULL;
	if (!unchanged(e, &why)) {
		char *text = g_strdup_printf("not %s: %s", sf->after == MV_AFTER_MOVE ? "moved" : "deleted", why);
		mv_ingest_warn(ing, e->path, text);
		g_free(text);
		return;
	}
	/* Test hook: a crash after the commit, before the first file goes. */
	if (!sf->faulted) {
		sf->faulted = true;
		mv_fault_point("after-archiving", 1);
	}
	GError *err = NULL;
	if (sf->after == MV_AFTER_MOVE) {
		if (move_file(sf, e, &err) == 0)
			sf->moved++;
	} else if (unlink(e->path) == 0) {
		sf->deleted++;
	} else {
		mv_set_errno_error(&err, errno, "unlink", e->path);
	}
	if (err) {
		char *text = g_strdup_printf("archived, but not %s: %s", sf->after == MV_AFTER_MOVE ? "moved" : "deleted",
		                             err->message);
		mv_ingest_warn(ing, e->path, text);
		g_free(text);
		g_error_free(err);
	}
}

/* Takes the entry of token out of the table (under the lock); NULL if gone. */
static entry *steal_entry(mv_source_files *sf, uint64_t token)
{
	gpointer key = NULL, value = NULL;
	if (!g_hash_table_steal_extended(sf->entries, &token, &key, &value))
		return NULL;
	g_free(key);
	return value;
}

/* Containers at the end: let go when complete, else a warning saying why not. */
static void settle_containers(mv_source_files *sf, mv_ingest *ing)
{
	GPtrArray *done = g_ptr_array_new_with_free_func(entry_free);
	g_mutex_lock(&sf->lock);
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, sf->entries);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		entry *e = v;
		if (e->container) {
			g_ptr_array_add(done, e);
			g_hash_table_iter_steal(&it);
			g_free(k);
		}
	}
	g_mutex_unlock(&sf->lock);
	for (guint i = 0; i < done->len; i++) {
		const entry *e = done->pdata[i];
		char *why = NULL;
		if (e->kept_why)
			why = g_strdup(e->kept_why);
		else if (!e->read_whole)
			why = g_strdup("the run did not read it to its end");
		else if (e->committed < e->handed)
			why = g_strdup_printf("%" G_GUINT64_FORMAT " of its %" G_GUINT64_FORMAT " messages are not archived",
			                      e->handed - e->committed, e->handed);
		if (!why) {
			let_go(sf, ing, e);
			continue;
		}
		char *text = g_strdup_printf("kept: %s", why);
		mv_ingest_warn(ing, e->path, text);
		g_free(text);
		g_free(why);
	}
	g_ptr_array_unref(done);
}

void mv_source_files_settle(mv_source_files *sf, mv_ingest *ing, bool final)
{
	g_mutex_lock(&sf->lock);
	if (sf->ready->len == 0 && !final) {   /* the common case, once per message */
		g_mutex_unlock(&sf->lock);
		return;
	}
	GArray *ready = sf->ready;
	sf->ready = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	GPtrArray *go = g_ptr_array_new_with_free_func(entry_free);
	for (guint i = 0; i < ready->len; i++) {
		entry *e = steal_entry(sf, g_array_index(ready, uint64_t, i));
		if (e)
			g_ptr_array_add(go, e);
	}
	g_mutex_unlock(&sf->lock);
	g_array_free(ready, TRUE);
	for (guint i = 0; i < go->len; i++)
		let_go(sf, ing, go->pdata[i]);
	g_ptr_array_unref(go);
	if (final)
		settle_containers(sf, ing);
}
