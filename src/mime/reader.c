/* reader: the message sources — one EML file, a directory tree of EML files,
 * a Maildir (with Maildir++ subfolders) and an mbox — behind one interface.
 *
 * Shaped like Redis's rio: a table of function pointers per source kind and
 * one struct that carries what every kind shares (the current message,
 * progress).  Both directory kinds share one walker: a stack of directory
 * frames, each read and sorted only when first visited, so that output is
 * deterministic and memory is one directory listing per level rather than
 * the whole tree.  The mbox kind streams fixed-size chunks through the push
 * splitter and queues what each chunk completes.
 *
 * Hostile input is expected: an item that cannot be used (empty, too large,
 * unreadable, not mail) is reported as MV_READ_SKIPPED naming the item and
 * the reason, and reading goes on; only a source that cannot be opened at
 * all (or an mbox whose reads fail) is fatal. */
#include "mime/mapi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DIR_DEPTH 64
#define MBOX_CHUNK (1024u * 1024u)
#define BINARY_SNIFF_LEN 4096u

/* ---- formats --------------------------------------------------------------- */

static const struct {
	const char *name;
	mv_format fmt;
} format_names[] = {
	{ "auto", MV_FORMAT_AUTO },
	{ "eml", MV_FORMAT_EML },
	{ "emldir", MV_FORMAT_EMLDIR },
	{ "mbox", MV_FORMAT_MBOX },
	{ "mboxrd", MV_FORMAT_MBOX },
	{ "mboxo", MV_FORMAT_MBOXO },
	{ "maildir", MV_FORMAT_MAILDIR },
	{ "pst", MV_FORMAT_PST },
	{ "ost", MV_FORMAT_PST },
	{ "msg", MV_FORMAT_MSG },
};

bool mv_format_from_name(const char *name, mv_format *fmt_r)
{
	if (!name)
		return false;
	for (size_t i = 0; i < G_N_ELEMENTS(format_names); i++) {
		if (g_ascii_strcasecmp(name, format_names[i].name) == 0) {
			*fmt_r = format_names[i].fmt;
			return true;
		}
	}
	return false;
}

const char *mv_format_name(mv_format fmt)
{
	/* First match wins, so "mbox" (not its alias) names MV_FORMAT_MBOX. */
	for (size_t i = 0; i < G_N_ELEMENTS(format_names); i++) {
		if (format_names[i].fmt == fmt)
			return format_names[i].name;
	}
	return "unknown";
}

static bool is_dir(const char *dir, const char *name)
{
	char *p = g_build_filename(dir, name, NULL);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	g_free(p);
	return ok;
}

static bool looks_like_maildir(const char *dir)
{
	bool cur = is_dir(dir, "cur"), new_ = is_dir(dir, "new"), tmp = is_dir(dir, "tmp");
	return (cur && (new_ || tmp)) || (new_ && tmp);
}

/* Reads the first bytes of a regular file (fewer for a short one). */
static int file_head(const char *path, char *buf, size_t size, size_t *n_r, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	ssize_t n;
	do {
		n = pread(fd, buf, size, 0);
	} while (n < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	if (n < 0) {
		mv_set_errno_error(error, saved, "read", path);
		return -1;
	}
	*n_r = (size_t)n;
	return 0;
}

int mv_format_detect(const char *path, mv_format *fmt_r, GError **error)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", path);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		*fmt_r = looks_like_maildir(path) ? MV_FORMAT_MAILDIR : MV_FORMAT_EMLDIR;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "%s: not a regular file or directory", path);
		return -1;
	}
	char head[8];
	size_t n = 0;
	if (file_head(path, head, sizeof head, &n, error) < 0)
		return -1;
	if (mv_pst_is_pst((const uint8_t *)head, n))
		*fmt_r = MV_FORMAT_PST;
	else if (mv_msg_is_cfb((const uint8_t *)head, n))
		*fmt_r = MV_FORMAT_MSG;
	else
		*fmt_r = n >= 5 && memcmp(head, "From ", 5) == 0 ? MV_FORMAT_MBOX : MV_FORMAT_EML;
	return 0;
}

/* ---- is it mail? ----------------------------------------------------------- */

static bool is_text_byte(uint8_t c)
{
	return c >= 0x20 ? c != 0x7f : (c == '\t' || c == '\n' || c == '\r' || c == '\f');
}

/* "Name:" at p, with a name of printable ASCII other than ':' (obsolete
 * syntax allows blanks before the colon). */
static bool starts_with_field(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len && p[i] > 0x20 && p[i] < 0x7f && p[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == ':';
}

static bool mostly_binary(const uint8_t *data, size_t len)
{
	size_t bad = 0;
	for (size_t i = 0; i < len; i++)
		bad += !is_text_byte(data[i]);
	return bad * 10 > len;
}

/* The header block's length within the first n bytes (up to a blank line). */
static size_t header_span(const uint8_t *data, size_t n)
{
	const uint8_t *blank = memmem(data, n, "\n\n", 2);
	const uint8_t *blank_crlf = memmem(data, n, "\r\n\r\n", 4);
	if (blank_crlf && (!blank || blank_crlf < blank))
		blank = blank_crlf;
	return blank ? (size_t)(blank - data) : n;
}

bool mv_looks_like_message(const uint8_t *data, size_t len, const char **why_r)
{
	const char *why_dummy;
	if (!why_r)
		why_r = &why_dummy;
	if (!data || len == 0) {
		*why_r = "empty file";
		return false;
	}
	size_t sniff = len < BINARY_SNIFF_LEN ? len : BINARY_SNIFF_LEN;
	const uint8_t *start = data;
	size_t rest = len;
	/* A leading mbox "From " line is tolerated: mail saved from an mbox
	 * by hand often keeps it. */
	if (rest >= 5 && memcmp(start, "From ", 5) == 0) {
		const uint8_t *nl = memchr(start, '\n', rest);
		rest = nl ? rest - (size_t)(nl + 1 - start) : 0;
		start = nl ? nl + 1 : start + len;
	}
	if (!starts_with_field(start, rest)) {
		*why_r = mostly_binary(data, sniff) ? "binary data, not a mail message" : "no header field at the start";
		return false;
	}
	/* Binary is judged on the header block only: a body full of NULs is
	 * still mail (archived and flagged), a PNG is not. */
	if (mostly_binary(data, header_span(data, sniff))) {
		*why_r = "binary data, not a mail message";
		return false;
	}
	return true;
}

/* ---- the reader ------------------------------------------------------------- */

typedef struct reader_ops {
	mv_read_result (*next)(mv_reader *r, GError **error);
	void (*free)(mv_reader *r);
	uint64_t (*total)(mv_reader *r);
} reader_ops;

typedef struct dir_frame {
	char *dir;        /* filesystem path */
	char *folder;     /* folder reported for files in it */
	int depth;
	bool optional;    /* a missing directory is not worth reporting */
	GPtrArray *names; /* sorted entries, NULL until visited */
	guint next;
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

typedef struct mbox_item {
	GByteArray *data;
	uint64_t offset;
} mbox_item;

struct mv_reader {
	const reader_ops *ops;
	mv_format format;
	char *path;
	uint64_t done;
	uint64_t total;
	bool total_known;

	/* the message last returned, freed on the next call */
	GByteArray *data;
	char *folder;
	char *origin;
	char *flags;
	char *origin_sha256;   /* of an Outlook .msg file the message was converted from */
	char *damage;          /* what of the item could not be read, or NULL */
	bool mailstore;        /* the current message came with MailStore headers */
	char *archive;         /* the archive they name, or NULL */
	int64_t archived_at;   /* their archive date (0 = none given) */

	/* MailStore headers and signatures of an export (mailstore_headers.c) */
	bool read_mailstore;
	mv_export_pubkey *pubkey; /* set when signatures are to be checked */

	/* EML file */
	bool eml_done;
	/* directories */
	walker *walk;
	char **exts;
	bool recursive;
	bool empty_reported;
	/* mbox */
	int fd;
	uint8_t *chunk;
	mv_mbox_splitter *splitter;
	GQueue queue;          /* mbox_item *, completed messages not yet returned */
	bool eof;
	bool finished;
	/* PST */
	mv_pst *pst;
};

static void clear_current(mv_reader *r)
{
	if (r->data) {
		g_byte_array_unref(r->data);
		r->data = NULL;
	}
	g_clear_pointer(&r->folder, g_free);
	g_clear_pointer(&r->origin, g_free);
	g_clear_pointer(&r->flags, g_free);
	g_clear_pointer(&r->origin_sha256, g_free);
	g_clear_pointer(&r->damage, g_free);
	g_clear_pointer(&r->archive, g_free);
	r->mailstore = false;
	r->archived_at = 0;
}

/* ---- Outlook items ------------------------------------------------------------ */

static char *damage_text(const mv_mapi_message *m)
{
	if (!m->damage->len)
		return NULL;
	g_ptr_array_add(m->damage, NULL);
	char *text = g_strjoinv("; ", (char **)m->damage->pdata);
	g_ptr_array_remove_index(m->damage, m->damage->len - 1);
	return text;
}

/* An Outlook item made a message: MV_READ_MESSAGE with *data_r, or
 * MV_READ_IGNORED when it is not mail (*error names its kind). */
static mv_read_result convert_item(mv_reader *r, mv_mapi_message *m, const char *origin, GByteArray **data_r,
                                   GError **error)
{
	mv_mapi_kind kind = mv_mapi_message_kind(m);
	if (kind != MV_MAPI_MAIL) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "%s", mv_mapi_kind_name(kind));
		return MV_READ_IGNORED;
	}
	GByteArray *data = g_byte_array_new();
	if (mv_mapi_to_mime(m, data, error) < 0) {
		g_prefix_error(error, "%s: ", origin);
		g_byte_array_unref(data);
		return MV_READ_SKIPPED;
	}
	if (data->len > MV_MAX_MESSAGE_SIZE) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: the converted message is larger than the limit of %u bytes",
		            origin, MV_MAX_MESSAGE_SIZE);
		g_byte_array_unref(data);
		return MV_READ_SKIPPED;
	}
	r->damage = damage_text(m);
	*data_r = data;
	return MV_READ_MESSAGE;
}

/* A .msg file's bytes replaced by the message converted from them; the
 * file's SHA-256 is kept so that what was imported stays traceable. */
static mv_read_result convert_msg(mv_reader *r, GByteArray **data, const char *origin, GError **error)
{
	mv_mapi_message *m = NULL;
	if (mv_msg_read((*data)->data, (*data)->len, &m, error) < 0) {
		g_prefix_error(error, "%s: ", origin);
		return MV_READ_SKIPPED;
	}
	GByteArray *converted = NULL;
	mv_read_result res = convert_item(r, m, origin, &converted, error);
	mv_mapi_message_free(m);
	if (res != MV_READ_MESSAGE)
		return res;
	r->origin_sha256 = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (*data)->data, (*data)->len);
	g_byte_array_unref(*data);
	*data = converted;
	return MV_READ_MESSAGE;
}

/* ---- MailStore headers and signatures ------------------------------------------------ */

#define MAX_SIGNATURE_BYTES 16384u

/* The detached signature origin.sig of the file's bytes. */
static int check_signature(mv_reader *r, const GByteArray *data, const char *origin, GError **error)
{
	char *sig_path = g_strconcat(origin, ".sig", NULL);
	GByteArray *sig = NULL;
	int rc = mv_read_file(sig_path, MAX_SIGNATURE_BYTES, &sig, error);
	g_free(sig_path);
	if (rc < 0)
		return -1;
	uint8_t digest[32];
	gsize n = sizeof digest;
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	g_checksum_update(c, data->data, data->len);
	g_checksum_get_digest(c, digest, &n);
	g_checksum_free(c);
	rc = mv_export_verify_digest(r->pubkey, digest, sig->data, sig->len, error);
	g_byte_array_unref(sig);
	return rc;
}

/* Strips the block of MailStore headers from *data and keeps what it
 * names.  A file whose signature or block is bad is refused whole: the
 * import never guesses where a message belongs, and the file itself stays
 * as it is, importable without --read-mailstore-headers. */
static mv_read_result take_mailstore(mv_reader *r, GByteArray *data, const char *origin, GError **error)
{
	if (r->pubkey && check_signature(r, data, origin, error) < 0) {
		g_prefix_error(error, "%s: signature: ", origin);
		return MV_READ_SKIPPED;
	}
	mv_mailstore_headers h;
	int rc = mv_mailstore_headers_read(data->data, data->len, &h, error);
	if (rc < 0) {
		g_prefix_error(error, "%s: MailStore headers: ", origin);
		return MV_READ_SKIPPED;
	}
	if (rc == 0)
		return MV_READ_MESSAGE;
	g_byte_array_remove_range(data, 0, (guint)h.block_len);
	r->mailstore = h.folder != NULL;
	r->archive = g_steal_pointer(&h.archive);
	r->archived_at = h.archived_at;
	if (r->mailstore) {
		g_free(r->folder);
		r->folder = g_steal_pointer(&h.folder);
	}
	if (h.flags) {
		g_free(r->flags);
		r->flags = g_steal_pointer(&h.flags);
	}
	mv_mailstore_headers_clear(&h);
	return MV_READ_MESSAGE;
}

static int open_pubkey(mv_reader *r, GError **error)
{
	char *dir = g_file_test(r->path, G_FILE_TEST_IS_DIR) ? g_strdup(r->path) : g_path_get_dirname(r->path);
	char *path = g_build_filename(dir, "publickey.pem", NULL);
	r->pubkey = mv_export_pubkey_load(path, error);
	if (!r->pubkey)
		g_prefix_error(error, "signatures cannot be checked: ");
	g_free(path);
	g_free(dir);
	return r->pubkey ? 0 : -1;
}

/* Checks the bytes (converting an Outlook .msg) and either keeps them as
 * the current message or turns them into a SKIPPED error (IGNORED for an
 * Outlook item that is not mail); takes ownership of data and origin. */
static mv_read_result offer(mv_reader *r, GByteArray *data, char *origin, const char *folder,
                            const char *flags, GError **error)
{
	const char *why = NULL;
	if (mv_msg_is_cfb(data->data, data->len)) {
		mv_read_result res = convert_msg(r, &data, origin, error);
		if (res != MV_READ_MESSAGE) {
			g_byte_array_unref(data);
			r->origin = origin;
			return res;
		}
	}
	if (!mv_looks_like_message(data->data, data->len, &why)) {
		if (data->len == 0 && r->splitter)
			why = "empty message";
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: %s", origin, why);
		g_byte_array_unref(data);
		r->origin = origin; /* names the refused item */
		return MV_READ_SKIPPED;
	}
	r->folder = g_strdup(folder);
	r->flags = g_strdup(flags);
	if (r->read_mailstore && take_mailstore(r, data, origin, error) != MV_READ_MESSAGE) {
		g_byte_array_unref(data);
		r->origin = origin;
		return MV_READ_SKIPPED;
	}
	r->data = data;
	r->origin = origin;
	return MV_READ_MESSAGE;
}

/* Reads a whole message file.  Opened non-blocking and re-checked with
 * fstat so that a FIFO swapped in after the walk cannot hang the reader. */
static int read_message_file(const char *path, GByteArray **data_r, GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	struct stat st;
	int rc = -1;
	if (fstat(fd, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", path);
	} else if (!S_ISREG(st.st_mode)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: not a regular file", path);
	} else if (st.st_size == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: empty file", path);
	} else if ((uint64_t)st.st_size > MV_MAX_MESSAGE_SIZE) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "%s: %lld bytes is larger than the limit of %u bytes",
		            path, (long long)st.st_size, MV_MAX_MESSAGE_SIZE);
	} else {
		GByteArray *data = g_byte_array_sized_new((guint)st.st_size);
		g_byte_array_set_size(data, (guint)st.st_size);
		rc = mv_pread_exact(fd, data->data, data->len, 0, path, error);
		if (rc == 0)
			*data_r = data;
		else
			g_byte_array_unref(data);
	}
	close(fd);
	return rc;
}

/* ---- EML file ----------------------------------------------------------------- */

static uint64_t eml_total(mv_reader *r);

static mv_read_result eml_next(mv_reader *r, GError **error)
{
	if (r->eml_done)
		return MV_READ_END;
	r->eml_done = true;
	GByteArray *data = NULL;
	int rc = read_message_file(r->path, &data, error);
	r->done = eml_total(r);
	if (rc < 0) {
		r->origin = g_strdup(r->path);
		return MV_READ_SKIPPED;
	}
	return offer(r, data, g_strdup(r->path), "", "", error);
}

static void eml_free(mv_reader *r)
{
	(void)r;
}

static uint64_t eml_total(mv_reader *r)
{
	struct stat st;
	return stat(r->path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops eml_ops = { eml_next, eml_free, eml_total };

/* ---- directory walker ------------------------------------------------------------ */

static void frame_free(gpointer p)
{
	dir_frame *f = p;
	g_free(f->dir);
	g_free(f->folder);
	if (f->names)
		g_ptr_array_unref(f->names);
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

/* Lists a directory, hidden entries left out, sorted for determinism. */
static GPtrArray *list_dir(const char *dir, GError **error)
{
	DIR *d = opendir(dir);
	if (!d) {
		/* "DIR: reason": the refusal names the directory once */
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot open the directory: %s", dir, g_strerror(errno));
		return NULL;
	}
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			g_ptr_array_add(names, g_strdup(e->d_name));
		errno = 0;
	}
	int saved = errno;
	closedir(d);
	if (saved != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "%s: cannot read the directory: %s", dir, g_strerror(saved));
		g_ptr_array_unref(names);
		return NULL;
	}
	g_ptr_array_sort(names, cmp_names);
	return names;
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
		const char *name = g_ptr_array_index(f->names, f->next++);
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
	if (read_message_file(it.path, &data, error) < 0) {
		rr = MV_READ_SKIPPED;
		r->origin = g_strdup(it.path);
	} else {
		rr = offer(r, data, it.path, it.folder, it.flags, error);
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
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (is_dir(p, "cur") || is_dir(p, "new")))
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

/* ---- mbox ------------------------------------------------------------------------------ */

static bool mbox_collect(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	mv_reader *r = ctx;
	mbox_item *item = g_new(mbox_item, 1);
	item->data = g_byte_array_sized_new((guint)len);
	g_byte_array_append(item->data, msg, (guint)len);
	item->offset = offset;
	g_queue_push_tail(&r->queue, item);
	return true;
}

static void mbox_item_free(gpointer p)
{
	mbox_item *item = p;
	g_byte_array_unref(item->data);
	g_free(item);
}

/* Reads and splits the next chunk; 0 at end of file. */
static int mbox_fill(mv_reader *r, GError **error)
{
	ssize_t n;
	do {
		n = read(r->fd, r->chunk, MBOX_CHUNK);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		mv_set_errno_error(error, errno, "read", r->path);
		return -1;
	}
	if (n == 0) {
		r->eof = true;
		return 0;
	}
	r->done += (uint64_t)n;
	return mv_mbox_splitter_feed(r->splitter, r->chunk, (size_t)n, error) < 0 ? 1 : 0;
}

static mv_read_result mbox_next(mv_reader *r, GError **error)
{
	for (;;) {
		mbox_item *item = g_queue_pop_head(&r->queue);
		if (item) {
			char *origin = g_strdup_printf("%s@%" G_GUINT64_FORMAT, r->path, item->offset);
			GByteArray *data = item->data;
			g_free(item);
			return offer(r, data, origin, "", "", error);
		}
		if (r->finished)
			return MV_READ_END;
		if (r->eof) {
			r->finished = true;
			if (mv_mbox_splitter_finish(r->splitter, error) < 0)
				return MV_READ_SKIPPED;
			continue;
		}
		int rc = mbox_fill(r, error);
		if (rc < 0)
			return MV_READ_FATAL;
		if (rc > 0) {
			g_prefix_error(error, "%s: ", r->path);
			return MV_READ_SKIPPED;
		}
	}
}

static void mbox_free(mv_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	g_free(r->chunk);
	mv_mbox_splitter_free(&r->splitter);
	g_queue_clear_full(&r->queue, mbox_item_free);
}

static uint64_t mbox_total(mv_reader *r)
{
	struct stat st;
	return fstat(r->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops mbox_ops = { mbox_next, mbox_free, mbox_total };

/* ---- PST / OST ------------------------------------------------------------------------ */

static mv_read_result pst_next(mv_reader *r, GError **error)
{
	mv_mapi_message *m = NULL;
	char *origin = NULL;
	mv_read_result res = mv_pst_next(r->pst, &m, &origin, error);
	if (res != MV_READ_MESSAGE) {
		r->origin = origin;
		return res;
	}
	GByteArray *data = NULL;
	res = convert_item(r, m, origin, &data, error);
	mv_mapi_message_free(m);
	if (res != MV_READ_MESSAGE) {
		r->origin = origin;
		return res;
	}
	r->data = data;
	r->origin = origin;
	r->folder = g_strdup(mv_pst_folder(r->pst));
	r->flags = g_strdup("");
	return MV_READ_MESSAGE;
}

static void pst_free(mv_reader *r)
{
	mv_pst_close(&r->pst);
}

static uint64_t pst_total(mv_reader *r)
{
	struct stat st;
	return stat(r->path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops pst_ops = { pst_next, pst_free, pst_total };

static int open_pst(mv_reader *r, GError **error)
{
	if (mv_pst_open(r->path, &r->pst, error) < 0)
		return -1;
	r->ops = &pst_ops;
	return 0;
}

/* ---- open / next / close -------------------------------------------------------------- */

/* An explicit format that contradicts the path's kind is corrected where the
 * intent is plain (eml given a directory) and refused otherwise. */
static int resolve_format(const char *path, mv_format want, mv_format *fmt_r, GError **error)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", path);
		return -1;
	}
	if (want == MV_FORMAT_AUTO)
		return mv_format_detect(path, fmt_r, error);
	bool dir = S_ISDIR(st.st_mode);
	if (!dir && !S_ISREG(st.st_mode)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: not a regular file or directory", path);
		return -1;
	}
	if (want == MV_FORMAT_MSG && dir)
		want = MV_FORMAT_EMLDIR;
	if (want == MV_FORMAT_EML && dir)
		want = MV_FORMAT_EMLDIR;
	else if (want == MV_FORMAT_EMLDIR && !dir)
		want = MV_FORMAT_EML;
	bool want_dir = want == MV_FORMAT_EMLDIR || want == MV_FORMAT_MAILDIR;
	if (want_dir != dir) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: is %s, but format %s reads %s", path,
		            dir ? "a directory" : "a file", mv_format_name(want), want_dir ? "directories" : "files");
		return -1;
	}
	*fmt_r = want;
	return 0;
}

static int open_mbox(mv_reader *r, GError **error)
{
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (r->fd < 0) {
		mv_set_errno_error(error, errno, "open", r->path);
		return -1;
	}
	r->chunk = g_malloc(MBOX_CHUNK);
	r->splitter = mv_mbox_splitter_new(r->format != MV_FORMAT_MBOXO, mbox_collect, r);
	r->ops = &mbox_ops;
	return 0;
}

static int open_dir(mv_reader *r, const mv_reader_options *opts, GError **error)
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

static int open_eml(mv_reader *r, GError **error)
{
	if (access(r->path, R_OK) < 0) {
		mv_set_errno_error(error, errno, "open", r->path);
		return -1;
	}
	r->ops = &eml_ops;
	return 0;
}

mv_reader *mv_reader_open(const char *path, const mv_reader_options *opts, GError **error)
{
	mv_format fmt;
	if (!path || !*path) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "no path to read mail from");
		return NULL;
	}
	if (resolve_format(path, opts ? opts->format : MV_FORMAT_AUTO, &fmt, error) < 0)
		return NULL;
	mv_reader *r = g_new0(mv_reader, 1);
	r->format = fmt;
	r->path = g_strdup(path);
	r->fd = -1;
	g_queue_init(&r->queue);
	r->read_mailstore = opts && (opts->read_mailstore_headers || opts->verify_signature);
	int rc = opts && opts->verify_signature ? open_pubkey(r, error) : 0;
	if (rc < 0) {
		mv_reader_close(&r);
		return NULL;
	}
	switch (fmt) {
	case MV_FORMAT_MBOX:
	case MV_FORMAT_MBOXO:
		rc = open_mbox(r, error);
		break;
	case MV_FORMAT_EMLDIR:
	case MV_FORMAT_MAILDIR:
		rc = open_dir(r, opts, error);
		break;
	case MV_FORMAT_PST:
		rc = open_pst(r, error);
		break;
	default:
		rc = open_eml(r, error);
		break;
	}
	if (rc < 0) {
		mv_reader_close(&r);
		return NULL;
	}
	return r;
}

mv_read_result mv_reader_next(mv_reader *r, mv_source_message *msg, GError **error)
{
	clear_current(r);
	memset(msg, 0, sizeof *msg);
	mv_read_result res = r->ops->next(r, error);
	if (res == MV_READ_MESSAGE) {
		msg->data = r->data;
		msg->folder = r->folder;
		msg->origin = r->origin;
		msg->mail_flags = r->flags;
		msg->origin_sha256 = r->origin_sha256;
		msg->damage = r->damage;
		msg->mailstore = r->mailstore;
		msg->archive = r->archive;
		msg->archived_at = r->archived_at;
	}
	if (res == MV_READ_SKIPPED || res == MV_READ_IGNORED)
		msg->origin = r->origin ? r->origin : r->path;
	return res;
}

uint64_t mv_reader_other_files(const mv_reader *r)
{
	return r->walk && r->format == MV_FORMAT_EMLDIR ? r->walk->other_ext : 0;
}

bool mv_reader_items(mv_reader *r, uint64_t *done_r, uint64_t *total_r, const char **folder_r)
{
	if (!r->pst)
		return false;
	mv_pst_progress(r->pst, done_r, total_r, folder_r);
	return true;
}

void mv_reader_progress(mv_reader *r, uint64_t *done_r, uint64_t *total_r)
{
	if (!r->total_known) {
		r->total = r->ops->total(r);
		r->total_known = true;
	}
	/* Files may grow while being read: never report more than 100%. */
	if (r->total < r->done)
		r->total = r->done;
	if (done_r)
		*done_r = r->done;
	if (total_r)
		*total_r = r->total;
}

mv_format mv_reader_format(mv_reader *r)
{
	return r->format;
}

void mv_reader_close(mv_reader **rp)
{
	if (!rp || !*rp)
		return;
	mv_reader *r = *rp;
	clear_current(r);
	if (r->ops)
		r->ops->free(r);
	else if (r->fd >= 0)
		close(r->fd);
	g_strfreev(r->exts);
	mv_export_pubkey_free(&r->pubkey);
	g_free(r->path);
	g_free(r);
	*rp = NULL;
}
