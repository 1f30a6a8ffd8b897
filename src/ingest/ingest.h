/* ingest: the one entry point through which every source (files now;
 * mailboxes, SMTP and cloud APIs later) hands messages to the archive.
 *
 * A caller adds messages one at a time; ingest batches them, parses each
 * batch on all cores, and commits it to the current store on a committer
 * thread while the caller reads the next batch.  A message counts as
 * archived only once its batch is durable (mv_ingest_flush / _end return). */
#ifndef MV_INGEST_H
#define MV_INGEST_H

#include "archive/archive.h"
#include "mime/mime.h"

typedef struct mv_ingest mv_ingest;

typedef struct mv_ingest_message {
	const char *archive;    /* user archive, e.g. "john.doe" */
	const char *folder;     /* folder path inside it, "" = archive root */
	const uint8_t *data;    /* raw RFC 5322 bytes (copied) */
	size_t len;
	/* Or NULL: data and len in an array of the caller's that ingest may keep
	 * a reference to instead of copying it (it must not change after). */
	GByteArray *shared;
	const char *source;     /* "eml", "mbox", "maildir", ... */
	const char *origin;     /* file path, "mbox@offset": names the item in errors */
	const char *mail_flags; /* "" or Maildir flags */
	int64_t archived_at;    /* 0 = now; a transfer keeps the original */
	const char *origin_sha256; /* SHA-256 of the file a message was converted from (.msg), or NULL */
	uint64_t token;         /* 0, or handed back to the committed callback (mv_ingest_on_committed) */
	/* The SMTP envelope (sender; recipients as "a@x, b@y"), or NULLs: kept
	 * with the message, its recipients searchable with to: */
	const char *envelope_from, *envelope_to;
} mv_ingest_message;

typedef struct mv_ingest_counts {
	uint64_t imported;      /* newly archived (including malformed) */
	uint64_t malformed;     /* archived but flagged as malformed */
	uint64_t duplicates;    /* already archived in that folder */
	uint64_t refused;       /* not archived: see refusals */
	uint64_t bytes;         /* raw bytes of messages committed or skipped */
	uint64_t pending;       /* handed in, not yet durable */
	uint64_t unreadable_attachments; /* archived, but an attachment's text could not be read */
	uint64_t warnings;      /* mv_ingest_warn calls */
} mv_ingest_counts;

typedef struct mv_refusal {
	char *origin;
	char *reason;
} mv_refusal;

/* Parse flags that make a message count as "archived but malformed". */
#define MV_MALFORMED_FLAGS (MV_PARSE_NO_HEADERS | MV_PARSE_BAD_MIME | MV_PARSE_TOO_DEEP | MV_PARSE_NUL_BYTES)

/* Who runs an ingest and from where: every run is written to the audit log
 * (event ArchiveRun) when it ends — source, archives, counts, outcome —
 * whoever starts it (a file import, TransferStores, later a profile). */
typedef struct mv_ingest_run {
	const char *user;       /* who started it ("admin" on the command line) */
	const char *remote;     /* the caller's address, "local" on the command line */
	const char *source;     /* what is read: a path, "TransferStores", a profile name */
	int64_t profile_id;     /* the profile run, 0 for none (its worker result names it) */
	const char *profile_name;
	/* How long a batch waits for a store's write lock another task holds
	 * (mv_store_set_lock_wait); 0 = as long as it takes. */
	double lock_wait_seconds;
} mv_ingest_run;

/* A run refused before any message was handed in (the source cannot be
 * opened, ...): audited as a failed ArchiveRun naming the reason, and
 * recorded as a failed worker result with the reason in its report. */
void mv_ingest_audit_refused(mv_instance *inst, const mv_ingest_run *run, const char *archive, const char *reason);

/* Into the current store; when it reaches the auto-create threshold (or
 * the per-store limit) a new store is created and becomes current, and the
 * ingest goes on there without a pause for the caller. */
mv_ingest *mv_ingest_begin(mv_instance *inst, const mv_ingest_run *run, GError **error);
/* Into one given store, never switching (TransferStores --targetStore). */
mv_ingest *mv_ingest_begin_to(mv_instance *inst, int store_id, const mv_ingest_run *run, GError **error);
/* The store the next batch goes to. */
int mv_ingest_store_id(mv_ingest *ing);
/* Hands one message in.  Fails only on a fatal error (e.g. disk full in a
 * previous batch's commit); bad messages are archived flagged or refused. */
int mv_ingest_add(mv_ingest *ing, const mv_ingest_message *msg, GError **error);
/* Records an item the source could not even read (named, with a reason). */
void mv_ingest_refuse(mv_ingest *ing, const char *origin, const char *reason);
/* Told, with its mv_ingest_message.token, that a message is durably in its
 * archive folder: its batch was committed (the message new there, or already
 * there), or the duplicate pre-check found it archived when it was handed in.
 * Never for a refused message, nor for one of a batch that failed.  Called
 * on the committer thread, or on the caller's inside mv_ingest_add; it must
 * only take note (a source acts on it on its own thread).  Set before the
 * first mv_ingest_add. */
typedef void (*mv_ingest_committed_fn)(void *opaque, uint64_t token);
void mv_ingest_on_committed(mv_ingest *ing, mv_ingest_committed_fn fn, void *opaque);
/* A warning of the run about one item, what (a source file left in place, a
 * directory passed over): listed in the worker result's "warnings" (the
 * first 1000), and the run ends completedWithWarnings at worst. */
void mv_ingest_warn(mv_ingest *ing, const char *what, const char *reason);
/* Warnings so far (mv_refusal*: origin = the item), owned by ing. */
const GPtrArray *mv_ingest_warnings(mv_ingest *ing);
/* Waits until everything handed in is durable. */
int mv_ingest_flush(mv_ingest *ing, GError **error);
void mv_ingest_get_counts(mv_ingest *ing, mv_ingest_counts *c);
/* Refusals so far (array of mv_refusal*, owned by ing). */
const GPtrArray *mv_ingest_refusals(mv_ingest *ing);
/* Attachments of newly archived messages whose text could not be read
 * (mv_refusal*: origin = the message, reason = "name: why"; at most the
 * first 1000), owned by ing; read once the ingest is flushed. */
const GPtrArray *mv_ingest_unreadable_attachments(mv_ingest *ing);
/* Adds a line to what the run's audit entry says about its end (e.g.
 * "interrupted"); the last one given is kept. */
void mv_ingest_note_outcome(mv_ingest *ing, const char *outcome);
/* Adds to the count of items the source passed over (not mail: the
 * worker result's "skipped"). */
void mv_ingest_note_skipped(mv_ingest *ing, uint64_t n);
/* Flushes, writes the run's audit entry and its worker result
 * (GetWorkerResults) and releases; returns the flush result. */
int mv_ingest_end(mv_ingest **ing, GError **error);

#endif
