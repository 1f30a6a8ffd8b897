/* reader_format: the import formats by name, a path's format detected
 * (directory: Maildir or EML tree; file: PST, .msg, mbox or EML by its first
 * bytes), and the sniff that tells a mail message from other files.  Apart
 * from the reader because none of it needs an open source: the CLI names
 * formats, and mapi_mime.c sniffs the messages embedded in Outlook items. */
#include "mime/reader_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bool mv_reader_is_dir(const char *dir, const char *name)
{
	char *p = g_build_filename(dir, name, NULL);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	g_free(p);
	return ok;
}

static bool looks_like_maildir(const char *dir)
{
	bool cur = mv_reader_is_dir(dir, "cur"), new_ = mv_reader_is_dir(dir, "new"), tmp = mv_reader_is_dir(dir, "tmp");
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

/* The header block's length within the first n bytes: up to the first
 * blank line, "\n\n" or "\r\n\r\n" (the earlier wins).  One walk over the
 * line ends, not a search per spelling: every file of an import or a
 * profile's re-run passes here, and a second memmem for "\r\n\r\n" ran to
 * the end of every LF-only header. */
static size_t header_span(const uint8_t *data, size_t n)
{
	const uint8_t *p = data, *end = data + n;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		const uint8_t *next = p + 1;
		if (next < end && *next == '\n')
			return (size_t)(p - data);
		if (next + 1 < end && next[0] == '\r' && next[1] == '\n' && p > data && p[-1] == '\r')
			return (size_t)(p - 1 - data);
		p = next;
	}
	return n;
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
