/* sources/source_files: what becomes of a source's files once their
 * messages are archived — kept, deleted, or moved below another directory.
 *
 * A file is let go of only after ingest has told (mv_ingest_on_committed)
 * that every message it held is durably in the archive; a refused message,
 * a failed batch or a file that changed since it was read keeps its file.
 * A file holding one message (EML, .msg, a Maildir message) goes as soon as
 * its message is committed; a container (an mbox) only at the end of the
 * run, when it was read to its end and every message of it was committed.
 * A file that cannot be deleted or moved is a warning of the run, never a
 * failure: its messages are archived, and the next run finds them there. */
#ifndef MV_SOURCES_SOURCE_FILES_H
#define MV_SOURCES_SOURCE_FILES_H

#include "ingest/ingest.h"

typedef enum {
	MV_AFTER_KEEP = 0,
	MV_AFTER_DELETE,
	MV_AFTER_MOVE,
} mv_after_archiving;

/* "keep", "delete", "move"; false for anything else. */
bool mv_after_archiving_from_name(const char *name, mv_after_archiving *after_r);

typedef struct mv_source_files mv_source_files;

/* move_to: MV_AFTER_MOVE's directory (made when needed), else ignored. */
mv_source_files *mv_source_files_new(mv_after_archiving after, const char *move_to);
void mv_source_files_free(mv_source_files **sf);
/* Listens to ing's commits; call before the first message is handed in. */
void mv_source_files_attach(mv_source_files *sf, mv_ingest *ing);

/* A file about to be handed in, holding one message: the token for its
 * mv_ingest_message (0: it could not be looked at, and is kept).  relative
 * is its path below the source's root, kept below move_to. */
uint64_t mv_source_files_track(mv_source_files *sf, const char *path, const char *relative);
/* A file holding many messages, looked at before it is read: every message
 * of it is handed in with the token returned, after mv_source_files_handed. */
uint64_t mv_source_files_track_container(mv_source_files *sf, const char *path, const char *relative);
void mv_source_files_handed(mv_source_files *sf, uint64_t token);
/* The container was read to its end. */
void mv_source_files_read_whole(mv_source_files *sf, uint64_t token);
/* The container is kept, whatever is committed: why (the first reason counts). */
void mv_source_files_keep(mv_source_files *sf, uint64_t token, const char *why);

/* Deletes or moves the single-message files committed so far.  With final
 * (after mv_ingest_flush) also the containers that are complete; each file
 * left because of something other than its message's refusal is a warning
 * on ing, naming it and why. */
void mv_source_files_settle(mv_source_files *sf, mv_ingest *ing, bool final);
void mv_source_files_counts(mv_source_files *sf, uint64_t *deleted_r, uint64_t *moved_r);

/* path below root ("root/a/b.eml" -> "a/b.eml"); path's base name when it
 * is root itself or not below it.  g_free() it. */
char *mv_source_files_relative(const char *root, const char *path);
/* The n-th other name for name when it is taken (n >= 1): "a.eml" ->
 * "a-1.eml", "notes" -> "notes-1"; a Maildir name "123.host:2,S" keeps
 * its flags at the end: "123.host-1:2,S".  g_free() it. */
char *mv_source_files_numbered_name(const char *name, unsigned n);

#endif
