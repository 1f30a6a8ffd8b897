/* extract: the text of attachments that are documents — PDF (poppler-glib),
 * OOXML and ODF (libzip + libxml2), legacy Word/Excel/PowerPoint (Debian's
 * catdoc, xls2csv and catppt) and ZIP archives (names, and the documents
 * inside) — for the full-text index.
 *
 * Hostile files are the norm and the parser libraries are large, so no
 * document is parsed in the archive's own process: each thread that
 * extracts owns one worker process (`mailvault extract-worker`, exec'd
 * fresh, rlimits on memory, CPU and files, a seccomp filter, no network),
 * hands it one document at a time over a pipe and waits a bounded time.
 * A worker that crashes, hangs or grows too large is killed and replaced;
 * the document is reported as unreadable with the reason, and the message
 * is archived all the same.  One worker per parsing thread: extraction runs
 * beside parsing and never serialises ingest.
 *
 * Sits above mime/: it registers its extractor in mime's table, so the
 * parser (and with it ingest, RebuildStoreIndex and catch-up) reads
 * documents without knowing this module. */
#ifndef MV_EXTRACT_H
#define MV_EXTRACT_H

#include "base/base.h"

/* Bounds per document. */
#define MV_EXTRACT_MAX_INPUT     (128u * 1024u * 1024u) /* larger documents are not read */
#define MV_EXTRACT_MAX_TEXT      (4u * 1024u * 1024u)   /* text per document */
#define MV_EXTRACT_TIMEOUT_MS    20000                   /* wall clock per document */
#define MV_EXTRACT_MAX_MEMORY    (512u * 1024u * 1024u) /* worker's memory */
#define MV_EXTRACT_ZIP_DEPTH     3                       /* archives inside archives */
#define MV_EXTRACT_ZIP_ENTRIES   10000                   /* entries read per archive */
#define MV_EXTRACT_ZIP_EXPANDED  (256u * 1024u * 1024u) /* bytes inflated per archive */

typedef enum {
	MV_DOC_NONE = 0,
	MV_DOC_PDF,
	MV_DOC_OOXML,   /* .docx .xlsx .pptx (and their macro/template variants) */
	MV_DOC_ODF,     /* .odt .ods .odp */
	MV_DOC_DOC,     /* legacy Word */
	MV_DOC_XLS,     /* legacy Excel */
	MV_DOC_PPT,     /* legacy PowerPoint */
	MV_DOC_ZIP,
} mv_doc_kind;

/* Registers the document extractor with mime's extractor table.  worker_exe
 * is the path of the mailvault binary that runs `extract-worker` (usually
 * "/proc/self/exe" resolved at start).  Idempotent; thread-safe. */
void mv_extract_init(const char *worker_exe);
/* Ends this thread's worker, if it has one (threads ending do it too). */
void mv_extract_thread_done(void);
/* Ends every thread's worker (at process exit: pool threads outlive the
 * work they did).  No thread may be extracting. */
void mv_extract_shutdown(void);

/* The kind of a document from its MIME type, its file name and its first
 * bytes (a ZIP's entries decide between OOXML, ODF and a plain archive);
 * MV_DOC_NONE when it is not a document this module reads. */
mv_doc_kind mv_doc_kind_detect(const char *mime_type, const char *filename, const uint8_t *data, size_t len);
const char *mv_doc_kind_name(mv_doc_kind kind);

/* Extracts a document's text in a worker process (the path every caller in
 * the server and the importer takes), appending at most `limit` bytes (and
 * never more than MV_EXTRACT_MAX_TEXT) to out.  -1 with *error naming the
 * reason ("timed out after 20 s", "worker exceeded the memory limit (512
 * MB)", "worker crashed (signal 11)", "encrypted PDF") when no text could be
 * read. */
int mv_extract_document(mv_doc_kind kind, const uint8_t *data, size_t len, GString *out, size_t limit,
                        GError **error);

/* Extracts in this process, with no isolation: the worker's body, and what
 * the fuzz targets and unit tests drive.  depth counts archives inside
 * archives. */
int mv_extract_direct(mv_doc_kind kind, const uint8_t *data, size_t len, int depth, GString *out, size_t limit,
                      GError **error);
/* The text of an OOXML (.docx .xlsx .pptx) or ODF document. */
int mv_extract_office_xml(const uint8_t *data, size_t len, GString *out, size_t limit, GError **error);

/* The body of `mailvault extract-worker`: applies its limits and filter,
 * then answers requests on stdin/stdout until stdin closes.  Returns the
 * process's exit status. */
int mv_extract_worker_main(void);

#endif
