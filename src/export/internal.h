/* export/internal: the targets behind ExportMessages, shaped like the
 * readers of mime/reader.c: one table of functions per kind of target, one
 * message at a time, so the scope walk in export.c never knows where the
 * bytes go.  Not a public header: export.h is the module's face. */
#ifndef MV_EXPORT_INTERNAL_H
#define MV_EXPORT_INTERNAL_H

#include "export/export.h"

/* One message on its way out; valid during put() only. */
typedef struct export_item {
	const char *id;          /* "1:42" */
	const char *archive, *folder;
	int64_t date;            /* the message's own date (IMAP internal date) */
	int64_t archived_at;
	const char *mail_flags;  /* Maildir letters, may be "" */
	const uint8_t *raw;
	size_t len;
} export_item;

typedef struct export_target export_target;
typedef struct export_target_ops {
	int (*put)(export_target *t, const export_item *it, GError **error);
	/* Makes everything durable (files, manifest) or ends the session;
	 * *summary_r gets what the result reports (new reference). */
	int (*finish)(export_target *t, json_t **summary_r, GError **error);
	void (*free)(export_target *t);
} export_target_ops;

struct export_target {
	const export_target_ops *ops;
};

void export_target_free(export_target *t);

/* files.c: DIR/<archive>/<folder>/<store>-<num>.eml, or one
 * DIR/<archive>/<folder>.mbox per folder (mboxrd).  dir must not exist or
 * be empty; signer (may be NULL) signs each file and the MANIFEST. */
export_target *export_eml_open(const char *dir, bool mailstore_headers, mv_export_signer *signer, GError **error);
export_target *export_mbox_open(const char *dir, mv_export_signer *signer, GError **error);

/* Where a mail server is and how to reach it (imap.c, smtp.c). */
typedef struct export_server {
	const char *url;          /* imap://, imaps://, smtp://, smtps:// host[:port] */
	const char *user, *password;
	const char *tls;          /* "required" (default), "try", "none": STARTTLS on a plain URL */
	const char *ca_file;      /* trust this PEM instead of the system's store */
	bool verify_certificate;
	const char *target_folder; /* IMAP: prefix of the folders made; NULL = top level */
	const char *from, *recipient; /* SMTP envelope */
} export_server;

export_target *export_imap_open(const export_server *srv, GError **error);
export_target *export_smtp_open(const export_server *srv, GError **error);

/* complete.c: every store a search reads whose index lacks messages (or
 * describes another generation of its db) brought up to date, under its
 * write lock, before an export by query searches.  A store that cannot be
 * is logged and left as it is; -1 only when the caller cancelled (or the
 * stores cannot be listed). */
int export_index_everything(mv_command_ctx *ctx, GError **error);

/* SHA-256 of a file, read in chunks (sign.c). */
int export_file_digest(const char *path, uint8_t digest[32], GError **error);

/* The curl options both targets share (TLS mode, certificates, credentials). */
int export_curl_common(void *curl, const export_server *srv, GError **error);

#endif
