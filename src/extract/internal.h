/* extract/internal.h: what the files of extract/ share and nothing outside
 * uses — the bounded text appender, the ZIP reader with its inflation
 * budget, one reader per document kind, and the test hooks of the worker
 * pool. */
#ifndef MV_EXTRACT_INTERNAL_H
#define MV_EXTRACT_INTERNAL_H

#include "extract/extract.h"

#include <zip.h>

/* ---- text (extract.c) ----------------------------------------------------- */

/* Appends len bytes of text as valid UTF-8 (invalid bytes become U+FFFD,
 * control characters but tab and newline a space) without letting out grow
 * past limit bytes, cut on a character boundary.  False once the limit is
 * reached: the caller stops reading. */
bool mv_doc_append(GString *out, size_t limit, const char *text, size_t len);
/* Ends the current line unless out is empty or already ends one. */
void mv_doc_newline(GString *out, size_t limit);

/* The reader of one kind, with the ZIP inflation budget (bytes) still left
 * to the outermost archive: archives inside archives and the parts of an
 * Office document inside a ZIP all draw on the one budget. */
int mv_extract_nested(mv_doc_kind kind, const uint8_t *data, size_t len, int depth, uint64_t *budget, GString *out,
                      size_t limit, GError **error);

/* ---- ZIP (zip.c) --------------------------------------------------------------- */

/* Opens a ZIP archive held in memory (not copied: data must outlive it). */
int mv_zip_open(const uint8_t *data, size_t len, zip_t **za_r, GError **error);
/* Receives an entry's inflated bytes chunk by chunk; false stops reading
 * (not an error). */
typedef bool (*mv_zip_chunk_fn)(void *ctx, const uint8_t *chunk, size_t len);
/* Inflates entry `index` into fn, never trusting its declared size: every
 * byte counts against *budget, and running past it is MV_ERR_LIMIT ("zip
 * bomb?").  An encrypted entry is MV_ERR_UNSUPPORTED. */
int mv_zip_read_entry(zip_t *za, zip_uint64_t index, uint64_t *budget, mv_zip_chunk_fn fn, void *ctx, GError **error);
/* An entry's inflated bytes, at most max: with truncate its first max
 * bytes, without more is MV_ERR_LIMIT. */
int mv_zip_read_entry_bytes(zip_t *za, zip_uint64_t index, uint64_t *budget, size_t max, bool truncate,
                            GByteArray **bytes_r, GError **error);
/* The archive: entry names, and the text of the documents and text files
 * inside while depth allows. */
int mv_extract_zip(const uint8_t *data, size_t len, int depth, uint64_t *budget, GString *out, size_t limit,
                   GError **error);

/* ---- one reader per kind --------------------------------------------------------- */

int mv_extract_pdf(const uint8_t *data, size_t len, GString *out, size_t limit, GError **error);
/* OOXML or ODF with an inflation budget (office.c). */
int mv_extract_office(const uint8_t *data, size_t len, uint64_t *budget, GString *out, size_t limit, GError **error);
/* .doc and .xls through catdoc's tools, .ppt through our own record walk
 * (legacy.c). */
int mv_extract_legacy(mv_doc_kind kind, const uint8_t *data, size_t len, GString *out, size_t limit, GError **error);

/* ---- the worker's protocol (worker.c asks, sandbox.c answers) ------------------- */

#define REQUEST_MAGIC 0x3151584DU  /* "MXQ1" */
#define RESPONSE_MAGIC 0x3152584DU /* "MXR1" */
/* The longest error message a worker sends back. */
#define MAX_MESSAGE 1024u
/* The worker's exit status when it could not set up its sandbox. */
#define EXIT_SETUP_FAILED 70

typedef struct request_header {
	uint32_t magic;
	uint32_t kind;
	uint64_t len;
	uint64_t limit;
	uint32_t timeout_ms;
	uint32_t reserved;
} request_header;

typedef struct response_header {
	uint32_t magic;
	int32_t code; /* 0: success, else an mv_error_code */
	uint64_t text_len;
	uint32_t message_len;
	uint32_t reserved;
} response_header;

G_STATIC_ASSERT(sizeof(request_header) == 32);
G_STATIC_ASSERT(sizeof(response_header) == 24);

/* ---- the worker (worker.c, sandbox.c) ------------------------------------------- */

void mv_extract_worker_set_exe(const char *path);
/* The wall-clock bound per document, from MAILVAULT_EXTRACT_TIMEOUT_MS when
 * set (read once, by mv_extract_init), else MV_EXTRACT_TIMEOUT_MS. */
void mv_extract_worker_read_env(void);

/* Test hooks: the bounds the parent enforces, and the calling thread's
 * worker process (0 when it has none). */
void mv_extract_set_timeout_ms(int ms);
void mv_extract_set_memory_limit(uint64_t bytes);
pid_t mv_extract_worker_pid(void);
/* The worker's limits and filter, applied to the calling process (the
 * worker's setup; tests probe it in a child). */
int mv_extract_sandbox_enter(void);

/* The legacy tools' paths: execve in the sandboxed worker is allowed only
 * with a path pointer inside this one read-only table (worker.c's filter),
 * so that code run by a hostile document cannot exec a program of its
 * choosing by a string it wrote. */
extern const char mv_legacy_tool_paths[];
#define MV_TOOL_CATDOC (mv_legacy_tool_paths)
#define MV_TOOL_XLS2CSV (mv_legacy_tool_paths + sizeof "/usr/bin/catdoc")
size_t mv_legacy_tool_paths_size(void);

#endif
