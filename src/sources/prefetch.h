/* sources/prefetch: a reader read ahead on a thread of its own.
 *
 * A file import's loop did everything on one thread: open, stat, read and
 * sniff each file, then hash it and look it up (a re-run), or hand it to
 * the parsers.  Reading ahead on a second thread lets the two halves run
 * side by side: a profile re-run over already archived mail is split about
 * evenly between them (bench/RESULTS.md, "Re-running an archiving
 * profile").  Messages come out in the reader's order, each a copy the
 * consumer holds until its next call — the reader's own contract. */
#ifndef MV_SOURCES_PREFETCH_H
#define MV_SOURCES_PREFETCH_H

#include "mime/mime.h"

typedef struct mv_prefetch mv_prefetch;

/* How far a reader is, in percent, or -1: asked on the reading thread
 * after each item, so the consumer never touches the reader while it runs. */
typedef int (*mv_prefetch_percent_fn)(mv_reader *r);

/* Starts reading r ahead (r is the prefetcher's until mv_prefetch_stop). */
mv_prefetch *mv_prefetch_start(mv_reader *r, mv_prefetch_percent_fn percent, GError **error);
/* The next item as mv_reader_next gives it; *percent_r the reader's
 * position after it.  msg's members stay valid until the next call or
 * mv_prefetch_stop. */
mv_read_result mv_prefetch_next(mv_prefetch *p, mv_source_message *msg, int *percent_r, GError **error);
/* Stops reading (at the next item), drops what was read ahead, waits for
 * the thread; the reader is the caller's again.  NULL is fine. */
void mv_prefetch_stop(mv_prefetch **p);

#endif
