/* export/files: the two directory targets — one EML file per message in a
 * tree of archive and folder directories, or one mbox file per folder —
 * and what both write beside the mail: MANIFEST (sha256sum's format, so
 * `sha256sum -c MANIFEST` checks an export without us) and, when signing,
 * a .sig per file, MANIFEST.sig and publickey.pem.
 *
 * Folder names come from mail sources and users: every component is
 * encoded into one safe file name (mv_export_safe_name), files are created
 * with O_EXCL|O_NOFOLLOW inside a directory that was new or empty, so an
 * export can never write outside its directory or over a file.  Each file
 * is fsync'd when complete, each directory once at the end, the MANIFEST
 * last: an export with a MANIFEST is whole.
 *
 * mbox files are mboxrd: every line that matches ^>*From  gets one more '>',
 * which mime/mbox.c's reader takes off again, so a message ending in a
 * newline reads back byte-exact. */
#include "export/internal.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_NAME_BYTES 200u
#define CUT_NAME_BYTES 180u
#define MBOX_BUFFER (1u << 20)

/* ---- safe names ----------------------------------------------------------------------- */

static bool must_encode(unsigned char b, bool first, bool valid)
{
	return b == '%' || b == '/' || b == '\\' || b < 0x20 || b == 0x7f || (first && b == '.') || (!valid && b >= 0x80);
}

char *mv_export_safe_name(const char *component)
{
	if (!*component)
		return g_strdup("%");
	bool valid = g_utf8_validate(component, -1, NULL);
	GString *out = g_string_new(NULL);
	size_t cut = 0; /* longest prefix of whole characters within CUT_NAME_BYTES */
	for (size_t i = 0; component[i];) {
		unsigned char b = (unsigned char)component[i];
		size_t n = 1;
		if (must_encode(b, i == 0, valid))
			g_string_append_printf(out, "%%%02X", b);
		else {
			if (valid && b >= 0x80)
				n = (size_t)(g_utf8_next_char(component + i) - (component + i));
			g_string_append_len(out, component + i, (gssize)n);
		}
		i += n;
		if (out->len <= CUT_NAME_BYTES)
			cut = out->len;
	}
	if (out->len > MAX_NAME_BYTES) {
		char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, component, -1);
		g_string_truncate(out, cut);
		g_string_append_printf(out, "~%.16s", sum);
		g_free(sum);
	}
	return g_string_free(out, FALSE);
}

char *mv_export_relative_dir(const char *archive, const char *folder)
{
	GString *out = g_string_new(NULL);
	char *a = mv_export_safe_name(archive);
	g_string_append(out, a);
	g_free(a);
	if (folder && *folder) {
		char **parts = g_strsplit(folder, "/", -1);
		for (char **p = parts; *p; p++) {
			char *s = mv_export_safe_name(*p);
			g_string_append_printf(out, "/%s", s);
			g_free(s);
		}
		g_strfreev(parts);
	}
	return g_string_free(out, FALSE);
}

/* ---- the export directory ------------------------------------------------------------- */

typedef struct export_dir {
	char *root;
	mv_export_signer *signer;  /* borrowed; NULL = unsigned */
	int manifest_fd;
	off_t manifest_len;
	GHashTable *dirs;          /* relative directories made (fsync'd at the end) */
	int64_t files;
} export_dir;

static int dir_open(export_dir *d, const char *root, mv_export_signer *signer, GError **error)
{
	memset(d, 0, sizeof *d);
	d->manifest_fd = -1;
	struct stat st;
	if (lstat(root, &st) == 0) {
		GDir *gd = S_ISDIR(st.st_mode) ? g_dir_open(root, 0, NULL) : NULL;
		bool empty = gd && !g_dir_read_name(gd);
		if (gd)
			g_dir_close(gd);
		if (!empty) {
			g_set_error(error, MV_ERROR, MV_ERR_EXISTS, "%s: the export directory must be new or empty", root);
			return -1;
		}
	} else if (errno != ENOENT) {
		mv_set_errno_error(error, errno, "stat", root);
		return -1;
	}
	if (mv_mkdir_p(root, error) < 0)
		return -1;
	d->root = g_strdup(root);
	d->signer = signer;
	d->dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	char *path = g_build_filename(root, "MANIFEST", NULL);
	d->manifest_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d->manifest_fd < 0)
		mv_set_errno_error(error, errno, "create", path);
	g_free(path);
	return d->manifest_fd < 0 ? -1 : 0;
}

static void dir_clear(export_dir *d)
{
	if (d->manifest_fd >= 0)
		close(d->manifest_fd);
	d->manifest_fd = -1;
	g_clear_pointer(&d->dirs, g_hash_table_destroy);
	g_clear_pointer(&d->root, g_free);
}

static int dir_make(export_dir *d, const char *rel_dir, GError **error)
{
	if (g_hash_table_contains(d->dirs, rel_dir))
		return 0;
	char *path = g_build_filename(d->root, rel_dir, NULL);
	int rc = mv_mkdir_p(path, error);
	g_free(path);
	if (rc == 0)
		g_hash_table_add(d->dirs, g_strdup(rel_dir));
	return rc;
}

/* Creates rel (never an existing file, never through a link), writes the
 * pieces, fsyncs and closes it. */
static int write_new_file(export_dir *d, const char *rel, const GBytes *const *pieces, size_t n, GError **error)
{
	char *path = g_build_filename(d->root, rel, NULL);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = -1;
	if (fd < 0) {
		mv_set_errno_error(error, errno, "create", path);
		g_free(path);
		return -1;
	}
	off_t off = 0;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		gsize len = 0;
		const void *p = g_bytes_get_data((GBytes *)pieces[i], &len);
		rc = mv_pwrite_all(fd, p, len, off, path, error);
		off += (off_t)len;
	}
	if (rc == 0)
		rc = mv_fsync_fd(fd, path, error);
	if (close(fd) < 0 && rc == 0) {
		mv_set_errno_error(error, errno, "close", path);
		rc = -1;
	}
	g_free(path);
	return rc;
}

/* rel.sig beside a file whose digest is known. */
static int write_signature(export_dir *d, const char *rel, const uint8_t digest[32], GError **error)
{
	GByteArray *sig = g_byte_array_new();
	int rc = mv_export_sign_digest(d->signer, digest, sig, error);
	if (rc == 0) {
		char *sig_rel = g_strconcat(rel, ".sig", NULL);
		GBytes *b = g_bytes_new_static(sig->data, sig->len);
		const GBytes *pieces[] = { b };
		rc = write_new_file(d, sig_rel, pieces, 1, error);
		g_bytes_unref(b);
		g_free(sig_rel);
	}
	g_byte_array_unref(sig);
	return rc;
}

/* A complete file: its MANIFEST line, and its signature when signing. */
static int dir_record(export_dir *d, const char *rel, const uint8_t digest[32], GError **error)
{
	char *hex = mv_hex(digest, 32);
	char *line = g_strdup_printf("%s  %s\n", hex, rel);
	char *path = g_build_filename(d->root, "MANIFEST", NULL);
	int rc = mv_pwrite_all(d->manifest_fd, line, strlen(line), d->manifest_len, path, error);
	d->manifest_len += (off_t)strlen(line);
	g_free(path);
	g_free(line);
	g_free(hex);
	if (rc == 0 && d->signer)
		rc = write_signature(d, rel, digest, error);
	if (rc == 0)
		d->files++;
	return rc;
}

static void digest_of(const GBytes *const *pieces, size_t n, uint8_t digest[32])
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	for (size_t i = 0; i < n; i++) {
		gsize len = 0;
		const guchar *p = g_bytes_get_data((GBytes *)pieces[i], &len);
		g_checksum_update(c, p, (gssize)len);
	}
	gsize dlen = 32;
	g_checksum_get_digest(c, digest, &dlen);
	g_checksum_free(c);
}

/* The MANIFEST made durable (and signed, with publickey.pem), every
 * directory fsync'd: from here on the export is whole. */
static int dir_finish(export_dir *d, json_t **summary_r, GError **error)
{
	char *manifest = g_build_filename(d->root, "MANIFEST", NULL);
	int rc = mv_fsync_fd(d->manifest_fd, manifest, error);
	close(d->manifest_fd);
	d->manifest_fd = -1;
	char *fp = NULL;
	uint8_t digest[32];
	if (rc == 0 && d->signer && (rc = export_file_digest(manifest, digest, error)) == 0) {
		char *pem = mv_export_signer_public_pem(d->signer);
		GBytes *pb = g_bytes_new_take(pem, strlen(pem));
		const GBytes *pem_pieces[] = { pb };
		rc = write_signature(d, "MANIFEST", digest, error);
		if (rc == 0)
			rc = write_new_file(d, "publickey.pem", pem_pieces, 1, error);
		g_bytes_unref(pb);
		fp = mv_export_signer_public_sha256(d->signer);
	}
	GHashTableIter it;
	gpointer k;
	g_hash_table_iter_init(&it, d->dirs);
	while (rc == 0 && g_hash_table_iter_next(&it, &k, NULL)) {
		char *path = g_build_filename(d->root, k, NULL);
		rc = mv_fsync_dir(path, error);
		g_free(path);
	}
	if (rc == 0)
		rc = mv_fsync_dir(d->root, error);
	if (rc == 0)
		*summary_r = json_pack("{s:s, s:I, s:b, s:s?}", "directory", d->root, "files", (json_int_t)d->files,
		                       "signed", d->signer != NULL, "publicKeySha256", fp);
	g_free(fp);
	g_free(manifest);
	return rc;
}

/* ---- EML files ------------------------------------------------------------------------ */

typedef struct eml_target {
	export_target base;
	export_dir dir;
	bool headers;
} eml_target;

static int eml_put(export_target *t, const export_item *it, GError **error)
{
	eml_target *e = (eml_target *)t;
	char *rel_dir = mv_export_relative_dir(it->archive, it->folder);
	char *name = g_strdelimit(g_strdup_printf("%s.eml", it->id), ":", '-');
	char *rel = g_strconcat(rel_dir, "/", name, NULL);
	GByteArray *block = g_byte_array_new();
	if (e->headers) {
		mv_mailstore_headers h = { .archive = (char *)it->archive, .folder = (char *)it->folder,
			                   .archived_at = it->archived_at, .message_id = (char *)it->id,
			                   .flags = (char *)it->mail_flags };
		mv_mailstore_headers_write(&h, it->raw, it->len, block);
	}
	GBytes *b1 = g_bytes_new_static(block->data, block->len), *b2 = g_bytes_new_static(it->raw, it->len);
	const GBytes *pieces[] = { b1, b2 };
	uint8_t digest[32];
	int rc = dir_make(&e->dir, rel_dir, error);
	if (rc == 0)
		rc = write_new_file(&e->dir, rel, pieces, 2, error);
	if (rc == 0) {
		digest_of(pieces, 2, digest);
		rc = dir_record(&e->dir, rel, digest, error);
	}
	g_bytes_unref(b1);
	g_bytes_unref(b2);
	g_byte_array_unref(block);
	g_free(rel);
	g_free(name);
	g_free(rel_dir);
	return rc;
}

static int eml_finish(export_target *t, json_t **summary_r, GError **error)
{
	return dir_finish(&((eml_target *)t)->dir, summary_r, error);
}

static void eml_free(export_target *t)
{
	dir_clear(&((eml_target *)t)->dir);
	g_free(t);
}

static const export_target_ops eml_ops = { eml_put, eml_finish, eml_free };

export_target *export_eml_open(const char *dir, bool mailstore_headers, mv_export_signer *signer, GError **error)
{
	eml_target *e = g_new0(eml_target, 1);
	e->base.ops = &eml_ops;
	e->headers = mailstore_headers;
	if (dir_open(&e->dir, dir, signer, error) < 0) {
		eml_free(&e->base);
		return NULL;
	}
	return &e->base;
}

/* ---- mbox files ----------------------------------------------------------------------- */

typedef struct mbox_target {
	export_target base;
	export_dir dir;
	GHashTable *made;      /* relative mbox paths created, in order of creation (values unused) */
	GPtrArray *order;      /* the same paths, in order (for the MANIFEST) */
	char *cur_rel;         /* the file open now */
	char *cur_path;
	int fd;
	off_t off;
	GByteArray *buf;
} mbox_target;

static int mbox_flush(mbox_target *m, GError **error)
{
	if (!m->buf->len)
		return 0;
	int rc = mv_pwrite_all(m->fd, m->buf->data, m->buf->len, m->off, m->cur_path, error);
	m->off += (off_t)m->buf->len;
	g_byte_array_set_size(m->buf, 0);
	return rc;
}

static int mbox_close_current(mbox_target *m, GError **error)
{
	if (m->fd < 0)
		return 0;
	int rc = mbox_flush(m, error);
	if (rc == 0)
		rc = mv_fsync_fd(m->fd, m->cur_path, error);
	close(m->fd);
	m->fd = -1;
	g_clear_pointer(&m->cur_rel, g_free);
	g_clear_pointer(&m->cur_path, g_free);
	return rc;
}

/* The folder's mbox, created on its first message and appended to when
 * the folder comes again (from another store). */
static int mbox_switch(mbox_target *m, const char *archive, const char *folder, GError **error)
{
	char *rel_dir = mv_export_relative_dir(archive, folder);
	char *rel = g_strconcat(rel_dir, ".mbox", NULL);
	g_free(rel_dir);
	if (m->cur_rel && strcmp(m->cur_rel, rel) == 0) {
		g_free(rel);
		return 0;
	}
	if (mbox_close_current(m, error) < 0) {
		g_free(rel);
		return -1;
	}
	char *parent = g_path_get_dirname(rel);
	int rc = strcmp(parent, ".") == 0 ? 0 : dir_make(&m->dir, parent, error);
	g_free(parent);
	bool known = g_hash_table_contains(m->made, rel);
	char *path = g_build_filename(m->dir.root, rel, NULL);
	int fd = rc < 0 ? -1 : open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (known ? 0 : O_CREAT | O_EXCL), 0600);
	if (fd < 0) {
		if (rc == 0)
			mv_set_errno_error(error, errno, "create", path);
		g_free(path);
		g_free(rel);
		return -1;
	}
	m->fd = fd;
	m->off = lseek(fd, 0, SEEK_END);
	m->cur_path = path;
	m->cur_rel = rel;
	if (!known) {
		g_hash_table_add(m->made, g_strdup(rel));
		g_ptr_array_add(m->order, g_strdup(rel));
	}
	return m->off < 0 ? (mv_set_errno_error(error, errno, "seek", path), -1) : 0;
}

/* "From - Thu Aug 22 11:36:16 2002": a separator mime/mbox.c recognises. */
static void put_separator(GByteArray *out, int64_t date)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(date > 0 ? date : 0);
	char *s = dt ? g_date_time_format(dt, "From - %a %b %e %H:%M:%S %Y\n") : g_strdup("From - Thu Jan  1 00:00:00 1970\n");
	g_byte_array_append(out, (const guint8 *)s, (guint)strlen(s));
	g_free(s);
	if (dt)
		g_date_time_unref(dt);
}

static bool is_from_line(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] == '>')
		i++;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* mboxrd quoting: one more '>' before every ^>*From  line. */
static void put_quoted(GByteArray *out, const uint8_t *raw, size_t len)
{
	size_t i = 0;
	while (i < len) {
		const uint8_t *nl = memchr(raw + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (raw + i)) + 1 : len - i;
		if (is_from_line(raw + i, n))
			g_byte_array_append(out, (const guint8 *)">", 1);
		g_byte_array_append(out, raw + i, (guint)n);
		i += n;
	}
	if (len == 0 || raw[len - 1] != '\n')
		g_byte_array_append(out, (const guint8 *)"\n", 1);
	g_byte_array_append(out, (const guint8 *)"\n", 1);
}

static int mbox_put(export_target *t, const export_item *it, GError **error)
{
	mbox_target *m = (mbox_target *)t;
	if (mbox_switch(m, it->archive, it->folder, error) < 0)
		return -1;
	put_separator(m->buf, it->date);
	put_quoted(m->buf, it->raw, it->len);
	return m->buf->len >= MBOX_BUFFER ? mbox_flush(m, error) : 0;
}

static int mbox_finish(export_target *t, json_t **summary_r, GError **error)
{
	mbox_target *m = (mbox_target *)t;
	if (mbox_close_current(m, error) < 0)
		return -1;
	for (guint i = 0; i < m->order->len; i++) {
		char *path = g_build_filename(m->dir.root, m->order->pdata[i], NULL);
		uint8_t digest[32];
		int rc = export_file_digest(path, digest, error);
		g_free(path);
		if (rc < 0 || dir_record(&m->dir, m->order->pdata[i], digest, error) < 0)
			return -1;
	}
	return dir_finish(&m->dir, summary_r, error);
}

static void mbox_free(export_target *t)
{
	mbox_target *m = (mbox_target *)t;
	if (m->fd >= 0)
		close(m->fd);
	g_free(m->cur_rel);
	g_free(m->cur_path);
	g_byte_array_unref(m->buf);
	g_hash_table_destroy(m->made);
	g_ptr_array_unref(m->order);
	dir_clear(&m->dir);
	g_free(m);
}

static const export_target_ops mbox_ops = { mbox_put, mbox_finish, mbox_free };

export_target *export_mbox_open(const char *dir, mv_export_signer *signer, GError **error)
{
	mbox_target *m = g_new0(mbox_target, 1);
	m->base.ops = &mbox_ops;
	m->fd = -1;
	m->buf = g_byte_array_new();
	m->made = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	m->order = g_ptr_array_new_with_free_func(g_free);
	if (dir_open(&m->dir, dir, signer, error) < 0) {
		mbox_free(&m->base);
		return NULL;
	}
	return &m->base;
}

void export_target_free(export_target *t)
{
	if (t)
		t->ops->free(t);
}
