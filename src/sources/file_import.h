/* sources/file_import: messages read from files — an EML or .msg file or a
 * directory of them, an mbox, a Maildir, a PST/OST — handed to one ingest.
 *
 * The one file-import loop, shared by `mailvault import` and the FileSystem
 * archiving profiles: a reader (mime/) on a path, each message's archive and
 * folder decided, every item handed to mv_ingest, what is not mail counted
 * by kind.  Progress and cancellation come through an mv_task, so a terminal
 * and a registry job watch the same loop. */
#ifndef MV_SOURCES_FILE_IMPORT_H
#define MV_SOURCES_FILE_IMPORT_H

#include "ingest/ingest.h"
#include "sources/source_files.h"

/* The archive of the user a first-level directory is named after, or NULL
 * with *error saying why not (no such user). */
typedef char *(*mv_user_archive_fn)(void *opaque, const char *name, GError **error);

typedef struct mv_file_import_options {
	mv_reader_options reader;  /* format, subfolders, extensions, MailStore headers */
	/* The archive every message goes to; NULL only when MailStore headers
	 * name it (then a message without them is refused). */
	const char *archive;
	/* The folder the source's tree lands under; NULL = the format's default
	 * (Maildir: "Inbox" with Maildir++ subfolders beside it, mbox: the file's
	 * name without its extension, EML: the archive's root). */
	const char *folder;
	/* What becomes of a source file once its messages are archived (see
	 * source_files.h); move_to is MV_AFTER_MOVE's directory. */
	mv_after_archiving after;
	const char *move_to;
	/* Multiple users: path is a directory whose first-level directories are
	 * user names, each read as an EML directory into the archive
	 * user_archive names (archive is then unused); a directory of no user
	 * and a file at the top level are passed over with a warning. */
	bool multiple_users;
	mv_user_archive_fn user_archive;
	void *user_opaque;
	/* Folder filters, on the folder a message is archived in (the target
	 * folder included), case-insensitive, each entry with its subfolders:
	 * with include_folders only messages in one of them are archived, and
	 * none in one of exclude_folders.  NULL: no filter.  A message passed
	 * over is counted as skipped ("excluded folder") and its file kept. */
	char **include_folders;
	char **exclude_folders;
} mv_file_import_options;

typedef struct mv_file_import mv_file_import;

/* Opens a reader on path; fails naming the path and why.  A directory
 * read as format mbox is a tree of mbox files (hidden ones and those of a
 * kind the extensions leave out passed over), each read in turn into the
 * folder of its path below the directory, without its extension. */
mv_file_import *mv_file_import_open(const char *path, const mv_file_import_options *opts, GError **error);
/* Feeds every message to ing.  task->progress (rate-limited to four calls a
 * second) gets the reader's percent and a line of counts; task->cancel stops
 * at the next message with MV_ERR_CANCELLED, everything handed in so far
 * still archived once ing is flushed.  Fails otherwise only when the source
 * cannot be read on (MV_READ_FATAL) or ingest fails fatally. */
int mv_file_import_run(mv_file_import *fi, mv_ingest *ing, const mv_task *task, GError **error);
/* After mv_ingest_flush: the source files whose messages are all archived
 * are deleted or moved as the options say, the last of them and the mbox
 * files read whole; a file left for another reason than its message's
 * refusal is a warning on ing.  Nothing with MV_AFTER_KEEP. */
void mv_file_import_settle(mv_file_import *fi, mv_ingest *ing);
/* Source files deleted and moved so far. */
void mv_file_import_let_go(mv_file_import *fi, uint64_t *deleted_r, uint64_t *moved_r);
void mv_file_import_close(mv_file_import **fi);

/* What the run saw besides archived mail. */
/* format, progress, other files; with multiple users the reader of the
 * user directory read last (NULL before the run). */
mv_reader *mv_file_import_reader(mv_file_import *fi);
GHashTable *mv_file_import_skipped(mv_file_import *fi);      /* kind -> count (GUINT_TO_POINTER) */
const GPtrArray *mv_file_import_damaged(mv_file_import *fi); /* mv_refusal *, the first 1000 */
uint64_t mv_file_import_damaged_items(mv_file_import *fi);   /* all of them */

/* "Sent, Archive/2019" -> {"Sent","Archive/2019",NULL}: trimmed, without
 * leading or trailing '/', empty entries dropped; NULL for NULL or
 * nothing.  g_strfreev() it. */
char **mv_file_import_parse_folders(const char *list);

/* "eml, .TXT" -> {"eml","txt",NULL}: trimmed, lower-case, without dots;
 * NULL for NULL.  g_strfreev() it. */
char **mv_file_import_parse_extensions(const char *list);

#endif
