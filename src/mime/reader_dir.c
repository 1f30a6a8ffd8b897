/* reader_dir: the directory sources — a tree of EML/MSG files and a Maildir
 * (cur/ and new/, with Maildir++ subfolders ".A.B" as the folder "A/B").
 *
 * Both kinds share one walker: a stack of directory frames, each read and
 * sorted only when first visited, so that output is deterministic and
 * memory is one directory listing per level rather than the whole tree.
 * Symbolic links to files are followed, to directories never, and depth is
 * bounded at MAX_DIR_DEPTH. */
#include "mime/reader_internal.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DIR_DEPTH 64

/* ---- directory walker ------------------------------------------------------------ */

/* A directory's entries, sorted: one block of NUL-terminated names and
 * their offsets.  A Maildir folder of a million messages is a million
 * names; one allocation each, with malloc's overhead and a pointer, held
 * ~72 MB of an import's memory for the whole run, ~55 MB so. */
typedef struct name_list {
	char *text;
	gsize *offsets;
	gsize len;
} name_list;

typedef struct dir_frame {
	char *dir;        /* filesystem path */
	char *folder;     /* folder reported for files in it */
	int depth;
	bool optional;    /* a missing directory is not worth reporting */
	name_list *names; /* NULL until visited */
	gsize next;
} dir_frame;

typedef struct walker {
	GPtrArray *stack;      /* dir_frame *, top is last */
	bool recursive;
	char **exts;           /* NULL = any extension */
	bool maildir;          /* report Maildir flags */
	guint found;           /* candidate files yielded */
	uint64_t other_ext;    /* regular files passed over for their extension */
	char *skipped;         /* the entry a WALK_SKIP is about (its error names the reason) */
} walker;

static void name_list_free(name_list *l)
{
	if (!l)
		return;
	g_free(l->text);
	g_free(l->offsets);
	g_free(l);
}

static void frame_free(gpointer p)
{
	dir_frame *f = p;
	g_free(f->dir);
	g_free(f->folder);
	name_list_free(f->names);
	g_free(f);
}

static void walker_push(walker *w, const char *dir, const char *folder, int depth, bool optional)
{
	dir_frame *f = g_new0(dir_frame, 1);
	f->dir = g_strdup(dir);
	f->folder = g_strdup(folder);
	f->depth = depth;
	f->optional = optional;
	g_ptr_array_add(w->stack, f);
}

static walker *walker_new(bool recursive, char **exts, bool maildir)
{
	walker *w = g_new0(walker, 1);
	w->stack = g_ptr_array_new_with_free_func(frame_free);
	w->recursive = recursive;
	w->exts = exts;
	w->maildir = maildir;
	return w;
}

static void walker_free(walker *w)
{
	if (!w)
		return;
	g_ptr_array_unref(w->stack);
	g_free(w->skipped);
	g_free(w);
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static gint cmp_named_offsets(gconstpointer a, gconstpointer b, gpointer text)
{
	return strcmp((const char *)text + *(const gsize *)a, (const char *)text + *(const gsize *)b);
}

/* The block and offsets grew by doubling while the directory was read:
 * cut to what they hold, since the list lives as long as the walk. */
static name_list *name_list_seal(GString *text, GArray *offsets)
{
	name_list *l = g_new0(name_list, 1);
	l->len = offsets->len;
	gsize text_len = text->len + 1;
	l->text = g_realloc(g_string_free(text, FALSE), text_len);
	l->offsets = g_realloc(g_array_free(offsets, FALSE), MAX(l->len, 1) * sizeof(gsize));
	g_qsort_with_data(l->offsets, (gint)l->len, sizeof(gsize), cmp_named_offsets, l->text);
	return l;
}

/* Lists a directory, hidden entries left out, sorted for determinism. */
static name_list *list_dir(const char *dir, GError **error)
{
	DIR *d = opendir(dir);
	if (!d) {
		/* "DIR: reason": the refusal names the directory once */
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot open the directory: %s", dir, g_strerror(errno));
		return NULL;
	}
	GString *text = g_string_new(NULL);
	GArray *offsets = g_array_new(FALSE, FALSE, sizeof(gsize));
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' && offsets->len < G_MAXINT) {
			gsize at = text->len;
			g_array_append_val(offsets, at);
			g_string_append_len(text, e->d_name, (gssize)strlen(e->d_name) + 1);
		}
		errno = 0;
	}
	int saved = errno;
	closedir(d);
	if (saved != 0 || offsets->len == G_MAXINT) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot read the directory: %s", dir,
		            saved ? g_strerror(saved) : "more entries than one walk takes");
		g_string_free(text, TRUE);
		g_array_free(offsets, TRUE);
		return NULL;
	}
	return name_list_seal(text, offsets);
}

static bool ext_matches(char **exts, const char *name)
{
	if (!exts)
		return true;
	const char *dot = strrchr(name, '.');
	for (char **e = exts; *e; e++) {
		if (strcmp(*e, "*") == 0)
			return true;
		if (dot && dot != name && g_ascii_strcasecmp(dot + 1, *e) == 0)
			return true;
	}
	return false;
}

static char *child_folder(const char *folder, const char *name)
{
	return folder[0] ? g_strconcat(folder, "/", name, NULL) : g_strdup(name);
}

typedef enum { WALK_END, WALK_FILE, WALK_SKIP } walk_result;

typedef struct walk_item {
	char *path;
	char *folder;
	char *flags;
	uint64_t size;
} walk_item;

static void walk_item_clear(walk_item *it)
{
	g_clear_pointer(&it->path, g_free);
	g_clear_pointer(&it->folder, g_free);
	g_clear_pointer(&it->flags, g_free);
}

/* Looks at one entry of frame f: a file to yield, a directory to push, a
 * problem to report, or nothing. */
static walk_result walk_entry(walker *w, dir_frame *f, const char *name, walk_item *it, GError **error)
{
	char *path = g_build_filename(f->dir, name, NULL);
	struct stat st;
	walk_result res = WALK_END; /* END here means "nothing to report" */
	if (lstat(path, &st) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: %s", path, g_strerror(errno));
		res = WALK_SKIP;
		goto out;
	}
	bool link = S_ISLNK(st.st_mode);
	if (S_ISDIR(st.st_mode)) {
		if (!w->recursive)
			goto out;
		if (f->depth + 1 > MAX_DIR_DEPTH) {
			g_set_error(error, MV_ERROR, MV_ERR_LIMIT,
			            "%s: nested deeper than %d directories, not descended", path, MAX_DIR_DEPTH);
			res = WALK_SKIP;
			goto out;
		}
		char *folder = child_folder(f->folder, name);
		walker_push(w, path, folder, f->depth + 1, false);
		g_free(folder);
		goto out;
	}
	if (!ext_matches(w->exts, name)) {
		if (S_ISREG(st.st_mode))
			w->other_ext++;
		goto out;
	}
	/* Symlinked files are followed, symlinked directories never are: a
	 * link cannot then make the walk loop or escape. */
	if (link && stat(path, &st) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: a symbolic link to nothing readable (%s)", path,
		            g_strerror(errno));
		res = WALK_SKIP;
		goto out;
	}
	if (S_ISDIR(st.st_mode))
		goto out;
	if (!S_ISREG(st.st_mode)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: not a regular file", path);
		res = WALK_SKIP;
		goto out;
	}
	it->path = path;
	path = NULL;
	it->folder = g_strdup(f->folder);
	it->flags = w->maildir ? mv_mail_flags_from_maildir(name) : g_strdup("");
	it->size = (uint64_t)st.st_size;
	w->found++;
	res = WALK_FILE;
out:
	if (res == WALK_SKIP) {
		g_free(w->skipped);
		w->skipped = path;
		path = NULL;
	}
	g_free(path);
	return res;
}

/* Next candidate file in walk order (depth first, sorted names). */
static walk_result walker_next(walker *w, walk_item *it, GError **error)
{
	while (w->stack->len > 0) {
		dir_frame *f = g_ptr_array_index(w->stack, w->stack->len - 1);
		if (!f->names) {
			GError *err = NULL;
			f->names = list_dir(f->dir, &err);
			if (!f->names) {
				bool quiet = f->optional && g_error_matches(err, MV_ERROR, MV_ERR_IO) &&
				             !g_file_test(f->dir, G_FILE_TEST_EXISTS);
				g_free(w->skipped);
				w->skipped = g_strdup(f->dir);
				g_ptr_array_remove_index(w->stack, w->stack->len - 1);
				if (quiet) {
					g_error_free(err);
					continue;
				}
				g_propagate_error(error, err);
				return WALK_SKIP;
			}
		}
		if (f->next >= f->names->len) {
			g_ptr_array_remove_index(w->stack, w->stack->len - 1);
			continue;
		}
		const char *name = f->names->text + f->names->offsets[f->next++];
		walk_result res = walk_entry(w, f, name, it, error);
		if (res != WALK_END)
			return res;
	}
	return WALK_END;
}

/* ---- EML directory and Maildir ------------------------------------------------------ */

static char *looked_for(const mv_reader *r)
{
	if (r->format == MV_FORMAT_MAILDIR)
		return g_strdup("looked in cur/ and new/");
	GString *s = g_string_new("looked for ");
	for (char **e = r->exts; *e; e++) {
		if (strcmp(*e, "*") == 0) {
			g_string_assign(s, "looked for any file");
			break;
		}
		g_string_append_printf(s, "%s*.%s", e == r->exts ? "" : ", ", *e);
	}
	return g_string_free(s, FALSE);
}

static mv_read_result dir_next(mv_reader *r, GError **error)
{
	walk_item it = { 0 };
	walk_result res = walker_next(r->walk, &it, error);
	if (res == WALK_SKIP) {
		r->origin = g_steal_pointer(&r->walk->skipped);   /* names the entry, once */
		return MV_READ_SKIPPED;
	}
	if (res == WALK_END) {
		if (r->walk->found > 0 || r->empty_reported)
			return MV_READ_END;
		r->empty_reported = true;
		char *what = looked_for(r);
		uint64_t others = r->walk->other_ext;
		char *passed = others ? g_strdup_printf("; passed over %" G_GUINT64_FORMAT " files with other extensions: "
		                                        "--ext '*' imports every file", others)
		                      : g_strdup("");
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "no mail files found (%s%s)", what, passed);
		g_free(passed);
		g_free(what);
		return MV_READ_SKIPPED;
	}
	GByteArray *data = NULL;
	mv_read_result rr;
	if (mv_reader_read_message_file(it.path, &data, error) < 0) {
		rr = MV_READ_SKIPPED;
		r->origin = g_strdup(it.path);
	} else {
		rr = mv_reader_offer(r, data, it.path, it.folder, it.flags, error);
		it.path = NULL; /* offer took it */
	}
	r->done += it.size;
	walk_item_clear(&it);
	return rr;
}

static void dir_free(mv_reader *r)
{
	walker_free(r->walk);
}

static walker *make_walker(mv_reader *r);

/* Progress total: one stat walk over the same candidates, done on demand. */
static uint64_t dir_total(mv_reader *r)
{
	walker *w = make_walker(r);
	uint64_t total = 0;
	walk_item it = { 0 };
	walk_result res;
	GError *err = NULL;
	while ((res = walker_next(w, &it, &err)) != WALK_END) {
		if (res == WALK_FILE)
			total += it.size;
		walk_item_clear(&it);
		g_clear_error(&err);
	}
	walker_free(w);
	return total;
}

static const reader_ops dir_ops = { dir_next, dir_free, dir_total };

/* Maildir++ subfolders are root entries ".A.B" holding their own cur/new:
 * the folder "A/B".  list_dir hides dot entries, so they are listed here. */
static GPtrArray *maildir_subfolders(const char *root)
{
	GPtrArray *subs = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(root);
	if (!d)
		return subs;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		if (n[0] != '.' || n[1] == '\0' || strcmp(n, "..") == 0)
			continue;
		char *p = g_build_filename(root, n, NULL);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (mv_reader_is_dir(p, "cur") || mv_reader_is_dir(p, "new")))
			g_ptr_array_add(subs, g_strdup(n));
		g_free(p);
	}
	closedir(d);
	g_ptr_array_sort(subs, cmp_names);
	return subs;
}

static void push_maildir_folder(walker *w, const char *dir, const char *folder)
{
	/* Pushed in reverse: the stack pops cur/ before new/. */
	char *n = g_build_filename(dir, "new", NULL);
	char *c = g_build_filename(dir, "cur", NULL);
	walker_push(w, n, folder, 1, true);
	walker_push(w, c, folder, 1, true);
	g_free(n);
	g_free(c);
}

static walker *make_walker(mv_reader *r)
{
	if (r->format != MV_FORMAT_MAILDIR) {
		walker *w = walker_new(r->recursive, r->exts, false);
		walker_push(w, r->path, "", 0, false);
		return w;
	}
	walker *w = walker_new(false, NULL, true);
	GPtrArray *subs = maildir_subfolders(r->path);
	for (guint i = subs->len; i > 0; i--) {
		const char *name = g_ptr_array_index(subs, i - 1);
		char *dir = g_build_filename(r->path, name, NULL);
		char *folder = g_strdup(name + 1);
		g_strdelimit(folder, ".", '/');
		push_maildir_folder(w, dir, folder);
		g_free(dir);
		g_free(folder);
	}
	push_maildir_folder(w, r->path, "");
	g_ptr_array_unref(subs);
	return w;
}

int mv_reader_open_dir(mv_reader *r, const mv_reader_options *opts, GError **error)
{
	static const char *const default_exts[] = { "eml", "msg", NULL };
	DIR *d = opendir(r->path);
	if (!d) {
		mv_set_errno_error(error, errno, "open directory", r->path);
		return -1;
	}
	closedir(d);
	r->recursive = opts ? opts->recursive : true;
	r->exts = g_strdupv(opts && opts->extensions ? opts->extensions : (char **)default_exts);
	r->walk = make_walker(r);
	r->ops = &dir_ops;
	return 0;
}

uint64_t mv_reader_other_files(const mv_reader *r)
{
	return r->walk && r->format == MV_FORMAT_EMLDIR ? r->walk->other_ext : 0;
}
