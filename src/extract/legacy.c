/* legacy: Word 97-2003 (.doc) and Excel 97-2003 (.xls) through Debian's
 * catdoc package (catdoc, xls2csv), PowerPoint 97-2003 (.ppt) through our
 * own walk over its records.
 *
 * catdoc rather than antiword: one package reads both Word and Excel, it
 * is maintained in Debian, and it needs no per-user mapping files.  Its
 * catppt, though, reads only the outline text of a presentation
 * (SlideListWithText) and skips every drawing, where PowerPoint keeps its
 * text boxes and LibreOffice all slide text; the records holding text are
 * few and simple, so .ppt is read here, from the Compound File (libgsf),
 * bounded by the stream.
 *
 * The tools run as child processes of whoever extracts — in the server,
 * the sandboxed worker, whose filter, rlimits and process group they
 * inherit.  They read the document from a memfd (stdin, opened again by
 * path as /proc/self/fd/0: xls2csv needs a file it can seek, and a memfd
 * needs no writable file system), write text to a pipe, get a CPU-time
 * rlimit of their own, and their output is cut at the limit.  Nothing is
 * written to disk. */
#include "extract/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gsf/gsf-infile-msole.h>
#include <gsf/gsf-infile.h>
#include <gsf/gsf-input-memory.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* CPU seconds a tool may use for one document. */
#define TOOL_CPU_SECONDS 15

/* The one table execve may take paths from in the worker (see internal.h). */
const char mv_legacy_tool_paths[] = "/usr/bin/catdoc\0/usr/bin/xls2csv";

size_t mv_legacy_tool_paths_size(void)
{
	return sizeof mv_legacy_tool_paths;
}

/* ---- the tools ------------------------------------------------------------------- */

typedef struct tool {
	const char *path; /* a pointer into mv_legacy_tool_paths */
	const char *name;
	const char *const *args; /* after argv[0], before the file */
	const char *missing;     /* the error when the tool is not installed */
} tool;

static const tool catdoc_tool = {
	MV_TOOL_CATDOC, "catdoc", (const char *const[]){ "-d", "utf-8", "-w", NULL },
	"legacy Word documents need Debian's catdoc package",
};
static const tool xls2csv_tool = {
	MV_TOOL_XLS2CSV, "xls2csv", (const char *const[]){ "-d", "utf-8", "-q", "0", NULL },
	"legacy Excel workbooks need Debian's catdoc package (xls2csv)",
};

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A memfd holding the document, its offset back at 0. */
static int document_fd(const uint8_t *data, size_t len, GError **error)
{
	int fd = memfd_create("document", MFD_CLOEXEC);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "memfd_create", "document");
		return -1;
	}
	if (write_all(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		mv_set_errno_error(error, errno, "write", "memfd");
		close(fd);
		return -1;
	}
	return fd;
}

/* After fork: only async-signal-safe calls until exec. */
static void exec_tool(const char *path, char *const argv[], char *const envp[], int doc_fd, int out_fd)
{
	struct rlimit cpu = { TOOL_CPU_SECONDS, TOOL_CPU_SECONDS + 1 };
	if (dup2(doc_fd, 0) < 0 || dup2(out_fd, 1) < 0 || setrlimit(RLIMIT_CPU, &cpu) < 0)
		_exit(126);
	execve(path, argv, envp);
	_exit(127);
}

/* Reads the tool's output up to limit bytes (more is left unread: closing
 * the pipe ends the tool with SIGPIPE) or until the deadline; false when
 * the deadline passed. */
static bool read_output(int fd, size_t limit, GString *raw)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)MV_EXTRACT_TIMEOUT_MS * 1000;
	size_t chunk = 64 * 1024;
	while (raw->len < limit) {
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
		if (left_ms <= 0)
			return false;
		struct pollfd p = { fd, POLLIN, 0 };
		int r = poll(&p, 1, (int)left_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return false;
		if (r < 0)
			return true;
		size_t want = limit - raw->len < chunk ? limit - raw->len : chunk;
		size_t old = raw->len;
		g_string_set_size(raw, old + want);
		ssize_t n = read(fd, raw->str + old, want);
		g_string_set_size(raw, old + (n > 0 ? (size_t)n : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
	}
	return true;
}

/* The tool's end: it closed its output or dies of SIGPIPE at its next
 * write, or (past the deadline) is killed.  In the worker, kill() of
 * another process is refused by the filter; there the CPU rlimit ends a
 * tool that loops, and the parent's deadline kills the whole group. */
static int reap(pid_t pid, bool kill_it)
{
	int status = 0;
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return 0; /* SIGCHLD ignored: reaped for us, status unknown */
	}
	return status;
}

static int run_tool(const tool *t, const uint8_t *data, size_t len, GString *out, size_t limit,
                    GError **error)
{
	if (access(t->path, X_OK) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "%s", t->missing);
		return -1;
	}
	int doc = document_fd(data, len, error);
	if (doc < 0)
		return -1;
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		mv_set_errno_error(error, errno, "pipe", t->name);
		close(doc);
		return -1;
	}
	GPtrArray *argv = g_ptr_array_new();
	g_ptr_array_add(argv, (char *)t->name);
	for (const char *const *a = t->args; *a; a++)
		g_ptr_array_add(argv, (char *)*a);
	g_ptr_array_add(argv, "/proc/self/fd/0");
	g_ptr_array_add(argv, NULL);
	char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", NULL };
	pid_t pid = fork();
	if (pid == 0)
		exec_tool(t->path, (char *const *)argv->pdata, envp, doc, pipefd[1]);
	int fork_errno = errno;
	g_ptr_array_unref(argv);
	close(doc);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		mv_set_errno_error(error, fork_errno, "fork", t->name);
		return -1;
	}
	GString *raw = g_string_new(NULL);
	bool finished = read_output(pipefd[0], limit, raw);
	close(pipefd[0]);
	int status = reap(pid, !finished);
	int rc = 0;
	if (raw->len == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFSIGNALED(status))
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s could not read it (signal %d)", t->name,
			            WTERMSIG(status));
		else
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s could not read it (exit status %d)", t->name,
			            WEXITSTATUS(status));
		rc = -1;
	}
	mv_doc_append(out, limit, raw->str, raw->len);
	g_string_free(raw, TRUE);
	return rc;
}

/* ---- PowerPoint ------------------------------------------------------------------- */

enum {
	RT_MAIN_MASTER = 0x03F8,     /* the master's placeholders ("Click to edit...") */
	RT_TEXT_CHARS_ATOM = 0x0FA0, /* UTF-16LE */
	RT_TEXT_BYTES_ATOM = 0x0FA8, /* the low bytes of UTF-16 (Latin-1) */
};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One code unit sequence to UTF-8; a lone surrogate becomes U+FFFD, CR and
 * vertical tab (PowerPoint's soft line break) a line end. */
static void utf16_to_utf8(const uint8_t *p, size_t units, bool wide, GString *text)
{
	for (size_t i = 0; i < units; i++) {
		gunichar c = wide ? le16(p + 2 * i) : p[i];
		if (wide && c >= 0xD800 && c < 0xDC00 && i + 1 < units) {
			gunichar lo = le16(p + 2 * (i + 1));
			if (lo >= 0xDC00 && lo < 0xE000) {
				c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
				i++;
			}
		}
		if (c >= 0xD800 && c < 0xE000)
			c = 0xFFFD;
		if (c == '\r' || c == 0x0B)
			c = '\n';
		g_string_append_unichar(text, c);
	}
}

/* Walks the records of the PowerPoint Document stream flat: a container's
 * header is stepped over and its children follow, so nesting costs no
 * recursion; an atom's length is checked against what is left. */
static void walk_records(const uint8_t *p, size_t n, GString *out, size_t limit)
{
	GString *text = g_string_new(NULL);
	size_t pos = 0;
	while (pos + 8 <= n && out->len < limit) {
		uint16_t ver_inst = le16(p + pos), type = le16(p + pos + 2);
		uint32_t len = le32(p + pos + 4);
		pos += 8;
		bool container = (ver_inst & 0x0F) == 0x0F;
		if (container && type != RT_MAIN_MASTER)
			continue;
		if (len > n - pos)
			break;
		if (type == RT_TEXT_CHARS_ATOM || type == RT_TEXT_BYTES_ATOM) {
			g_string_truncate(text, 0);
			bool wide = type == RT_TEXT_CHARS_ATOM;
			utf16_to_utf8(p + pos, wide ? len / 2 : len, wide, text);
			mv_doc_append(out, limit, text->str, text->len);
			mv_doc_newline(out, limit);
		}
		pos += len;
	}
	g_string_free(text, TRUE);
}

static int extract_ppt(const uint8_t *data, size_t len, GString *out, size_t limit, GError **error)
{
	GsfInput *mem = gsf_input_memory_new(data, (gsf_off_t)len, FALSE);
	GError *gerr = NULL;
	GsfInfile *ole = gsf_infile_msole_new(mem, &gerr);
	g_object_unref(mem);
	if (!ole) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged PowerPoint file: %s", gerr ? gerr->message : "?");
		g_clear_error(&gerr);
		return -1;
	}
	GsfInput *stream = gsf_infile_child_by_name(ole, "PowerPoint Document");
	int rc = -1;
	gsf_off_t size = stream ? gsf_input_size(stream) : 0;
	uint8_t *buf = NULL;
	if (!stream) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not a PowerPoint presentation (no PowerPoint Document stream)");
	} else if (size < 0 || (uint64_t)size > MV_EXTRACT_MAX_INPUT || !(buf = g_try_malloc((gsize)size + 1))) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "PowerPoint Document stream too large");
	} else if (size > 0 && !gsf_input_read(stream, (size_t)size, buf)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged PowerPoint file: the document stream is cut short");
	} else {
		walk_records(buf, (size_t)size, out, limit);
		rc = 0;
	}
	g_free(buf);
	if (stream)
		g_object_unref(stream);
	g_object_unref(ole);
	return rc;
}

/* ---- dispatch --------------------------------------------------------------------- */

int mv_extract_legacy(mv_doc_kind kind, const uint8_t *data, size_t len, GString *out, size_t limit, GError **error)
{
	switch (kind) {
	case MV_DOC_DOC:
		return run_tool(&catdoc_tool, data, len, out, limit, error);
	case MV_DOC_XLS:
		return run_tool(&xls2csv_tool, data, len, out, limit, error);
	case MV_DOC_PPT:
		return extract_ppt(data, len, out, limit, error);
	default:
		break;
	}
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not a legacy Office document");
	return -1;
}
