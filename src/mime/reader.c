/* reader: the message sources — one EML file, a directory tree of EML files,
 * a Maildir (with Maildir++ subfolders), an mbox and a PST/OST — behind one
 * interface.  This file holds the interface (open, next, progress, close)
 * and what every kind shares; each kind is a file of its own
 * (reader_eml.c, reader_dir.c, reader_mbox.c, reader_pst.c) and
 * reader_format.c names and detects the formats.
 *
 * Shaped like Redis's rio: a table of function pointers per source kind and
 * one struct that carries what every kind shares (the current message,
 * progress).
 *
 * Hostile input is expected: an item that cannot be used (empty, too large,
 * unreadable, not mail) is reported as MV_READ_SKIPPED naming the item and
 * the reason, and reading goes on; only a source that cannot be opened at
 * all (or an mbox whose reads fail) is fatal. */
#include "mime/reader_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
mv_read_result mv_reader_convert_item(mv_reader *r, mv_mapi_message *m, const char *origin, GByteArray **data_r,
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
	mv_read_result res = mv_reader_convert_item(r, m, origin, &converted, error);
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
mv_read_result mv_reader_offer(mv_reader *r, GByteArray *data, char *origin, const char *folder,
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
int mv_reader_read_message_file(const char *path, GByteArray **data_r, GError **error)
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
		rc = mv_reader_open_mbox(r, error);
		break;
	case MV_FORMAT_EMLDIR:
	case MV_FORMAT_MAILDIR:
		rc = mv_reader_open_dir(r, opts, error);
		break;
	case MV_FORMAT_PST:
		rc = mv_reader_open_pst(r, error);
		break;
	default:
		rc = mv_reader_open_eml(r, error);
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
