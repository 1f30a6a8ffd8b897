/* mime/reader_internal: what the files of the reader share — the reader's
 * struct, the table of operations every source kind fills in, and the
 * checks reader.c lends to the kinds (reader_eml.c, reader_dir.c,
 * reader_mbox.c, reader_pst.c; reader_format.c names and detects formats).
 * Not a public header: mime.h is the reader's face. */
#ifndef MV_MIME_READER_INTERNAL_H
#define MV_MIME_READER_INTERNAL_H

#include "mime/mapi.h"

typedef struct reader_ops {
	mv_read_result (*next)(mv_reader *r, GError **error);
	void (*free)(mv_reader *r);
	uint64_t (*total)(mv_reader *r);
} reader_ops;

typedef struct walker walker; /* reader_dir.c */

struct mv_reader {
	const reader_ops *ops;
	mv_format format;
	char *path;
	uint64_t done;
	uint64_t total;
	bool total_known;

	/* the message last returned, freed on the next call */
	GByteArray *data;
	char *folder;
	char *origin;
	char *flags;
	char *origin_sha256;   /* of an Outlook .msg file the message was converted from */
	char *damage;          /* what of the item could not be read, or NULL */
	bool mailstore;        /* the current message came with MailStore headers */
	char *archive;         /* the archive they name, or NULL */
	int64_t archived_at;   /* their archive date (0 = none given) */

	/* MailStore headers and signatures of an export (mailstore_headers.c) */
	bool read_mailstore;
	mv_export_pubkey *pubkey; /* set when signatures are to be checked */

	/* EML file */
	bool eml_done;
	/* directories */
	walker *walk;
	char **exts;
	bool recursive;
	bool empty_reported;
	/* mbox */
	int fd;
	uint8_t *chunk;
	mv_mbox_splitter *splitter;
	GQueue queue;          /* mbox_item *, completed messages not yet returned */
	bool eof;
	bool finished;
	/* PST */
	mv_pst *pst;
};

/* dir/name is a directory (symbolic links followed). */
bool mv_reader_is_dir(const char *dir, const char *name);
/* Checks the bytes (converting an Outlook .msg) and either keeps them as
 * the current message or turns them into a SKIPPED error (IGNORED for an
 * Outlook item that is not mail); takes ownership of data and origin. */
mv_read_result mv_reader_offer(mv_reader *r, GByteArray *data, char *origin, const char *folder,
                               const char *flags, GError **error);
/* A whole regular message file, bounded by MV_MAX_MESSAGE_SIZE. */
int mv_reader_read_message_file(const char *path, GByteArray **data_r, GError **error);
/* An Outlook item made a message: MV_READ_MESSAGE with *data_r, or
 * MV_READ_IGNORED when it is not mail (*error names its kind). */
mv_read_result mv_reader_convert_item(mv_reader *r, mv_mapi_message *m, const char *origin, GByteArray **data_r,
                                      GError **error);

/* Each kind's opening: sets r->ops, -1 with *error when r->path cannot be
 * read as that kind. */
int mv_reader_open_eml(mv_reader *r, GError **error);
int mv_reader_open_dir(mv_reader *r, const mv_reader_options *opts, GError **error);
int mv_reader_open_mbox(mv_reader *r, GError **error);
int mv_reader_open_pst(mv_reader *r, GError **error);

#endif
