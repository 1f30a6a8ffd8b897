/* base: the few things every module needs — error domain, logging, file
 * helpers that never ignore a return code, and small text utilities.
 *
 * Errors travel as GLib GError (GLib comes with GMime): one well-kept error
 * type instead of a home-made one.  Every fallible function takes a
 * `GError **error` last and returns -1 / NULL on failure with the error set. */
#ifndef MV_BASE_H
#define MV_BASE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MV_ERROR (mv_error_quark())
GQuark mv_error_quark(void);

typedef enum {
	MV_ERR_IO = 1,       /* a system call failed */
	MV_ERR_INVALID,      /* bad input from outside: named in the message */
	MV_ERR_CORRUPT,      /* stored data failed a check */
	MV_ERR_NOT_FOUND,
	MV_ERR_EXISTS,
	MV_ERR_NO_SPACE,     /* ENOSPC / EDQUOT: stop, nothing corrupted */
	MV_ERR_LIMIT,        /* an input exceeds a configured bound */
	MV_ERR_CANCELLED,    /* the caller asked a long-running action to stop */
	MV_ERR_STATE,        /* refused in the current state (write-protected store, locked store, ...) */
	MV_ERR_UNSUPPORTED,  /* a valid request this build does not do (e.g. store type SQLServer) */
	MV_ERR_AUTH,         /* unknown user or wrong password (never says which) */
	MV_ERR_DENIED,       /* authenticated, but lacking the privilege for this */
} mv_error_code;

/* A long operation's progress (percent 0..100, or -1 when unknown) and
 * its request to stop: checked at safe points, failing with
 * MV_ERR_CANCELLED.  The one shape for every long operation (store
 * maintenance, backup, registry functions); a NULL task or member means
 * nobody is listening or asking. */
typedef void (*mv_progress_fn)(void *opaque, int percent, const char *text);
typedef struct mv_task {
	mv_progress_fn progress;
	void *opaque;
	volatile gint *cancel;
} mv_task;

/* Sets *error from errno, naming the path and the operation. */
void mv_set_errno_error(GError **error, int errnum, const char *op, const char *path);

/* Logging to stderr, one line each; debug only when enabled. */
void mv_log_set_debug(bool on);
void mv_log_set_quiet(bool on);
void mv_log_debug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void mv_log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void mv_log_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Test hook: MAILVAULT_FAULT=<action>:<step> ends the process (status 86)
 * at that step, as a crash would, so that the system tests can prove every
 * intermediate state of a multi-step change opens (RenewMasterKey,
 * UpgradeStore). */
void mv_fault_point(const char *action, int step);
/* Test hook beside it: true when MAILVAULT_FAULT=fail:<action>:<step>, for
 * a step the caller then fails with an error of its own instead of doing
 * (a batch the store refuses mid-run), so the process lives on to report. */
bool mv_fault_fails(const char *action, int step);
void mv_log_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Called last by every GLib pool task: the thread goes back to the pool
 * without OpenSSL per-thread state (base/pool_task.c says why). */
void mv_pool_task_done(void);

/* Writes all of buf at offset (pwrite loop). */
int mv_pwrite_all(int fd, const void *buf, size_t len, off_t offset, const char *path, GError **error);
/* Reads exactly len bytes at offset; a short read is MV_ERR_CORRUPT. */
int mv_pread_exact(int fd, void *buf, size_t len, off_t offset, const char *path, GError **error);
int mv_fsync_fd(int fd, const char *path, GError **error);
/* fsyncs a file by its path (not following a symlink). */
int mv_fsync_file(const char *path, GError **error);
/* fsyncs a directory so that a created or renamed entry survives a crash. */
int mv_fsync_dir(const char *dir, GError **error);
/* mkdir -p with mode 0700 for new components. */
int mv_mkdir_p(const char *path, GError **error);
/* Reads a whole file, refusing files larger than max_len. */
int mv_read_file(const char *path, size_t max_len, GByteArray **data_r, GError **error);
/* Writes a whole file atomically: temp file, fsync, rename, fsync dir. */
int mv_write_file_atomic(const char *path, const void *data, size_t len, int mode, GError **error);
/* Flags of mv_copy_file: the callers differ in what an existing copy and a
 * linked source mean, so each says which it wants. */
enum {
	MV_COPY_EXCL = 1 << 0,      /* dst must not exist yet (O_EXCL); without it dst is truncated */
	MV_COPY_NOFOLLOW = 1 << 1,  /* refuse a src that is a symbolic link */
};
/* Copies src to dst and fsyncs dst (its directory is the caller's: a tree
 * copy fsyncs each directory once).  len < 0 copies the whole file; len >= 0
 * exactly its first len bytes, a shorter src being MV_ERR_CORRUPT.  mode < 0
 * gives dst the permission bits of src, else mode.  On failure dst may be
 * left partly written; the caller removes it. */
int mv_copy_file(const char *src, const char *dst, int64_t len, int mode, unsigned flags, GError **error);
/* Disk usage in bytes of a file or a directory tree (allocated blocks). */
uint64_t mv_disk_usage(const char *path);

/* Lower-case hex of bytes into a new string. */
char *mv_hex(const uint8_t *bytes, size_t len);
/* Parses hex into out (exactly out_len bytes); false on bad input. */
bool mv_unhex(const char *hex, uint8_t *out, size_t out_len);

/* Wall clock in seconds, and a monotonic clock in seconds (double). */
int64_t mv_now(void);
double mv_monotonic(void);
/* ISO 8601 UTC ("2002-08-22T11:36:16Z") into a new string. */
char *mv_format_time_utc(int64_t t);
/* The same text into text (no allocation, for writers of many rows). */
#define MV_TIME_TEXT_BYTES 80
void mv_format_time_utc_into(int64_t t, char text[MV_TIME_TEXT_BYTES]);
/* IMAP's date-time ("22-Aug-2002 11:36:16 +0000", RFC 3501), quoted,
 * appended to out: INTERNALDATE and the date of an APPEND. */
void mv_append_imap_date(GString *out, int64_t t);

/* Replaces invalid UTF-8 and control characters (except \t) so that a string
 * taken from mail can be printed or stored as text.  Returns a new string. */
char *mv_utf8_sanitize(const char *s, gssize len);

/* ---- names (names.c) ---------------------------------------------------- */
#define MV_MAX_ARCHIVE_NAME_BYTES 256
/* An archive name: 1..256 bytes of UTF-8 without '/' (it separates an
 * archive from its folders) and without control characters.  check sets
 * MV_ERR_INVALID naming the name and the fault. */
bool mv_archive_name_ok(const char *name);
int mv_archive_name_check(const char *name, GError **error);
/* Archive and folder names are stored in Unicode NFC (invalid UTF-8 kept
 * as it is): the canonical spelling, new.  is_canonical: name is in it. */
char *mv_name_canonical(const char *name);
bool mv_name_is_canonical(const char *name);
/* The key names compare by: case-folded, then NFC.  New string. */
char *mv_name_fold(const char *name);

/* ---- the service configuration file (config.c) ------------------------------
 * One GKeyFile for `mailvault serve`: where the data is, where it listens,
 * its certificate, logging and safe mode.  Relative paths in the file are
 * relative to the file's directory.  Unknown groups or keys are refused
 * with their name, so that a typo never silently means a default. */
/* [smtp]: how mail is taken over SMTP and LMTP (smtpd/) and where it is
 * filed (sources/routing).  Values are checked for form here; the
 * networks and folder templates by smtpd when it starts, naming the key. */
typedef struct mv_smtp_config {
	GPtrArray *listen;           /* char*: HOST:PORT */
	GPtrArray *lmtp_listen;      /* char*: HOST:PORT or unix:PATH (absolute) */
	char *lmtp_socket_group;     /* group of the unix: sockets (mode 0660), e.g. "postfix"; NULL: the process's */
	char *allow_networks;        /* clients that may hand in mail without AUTH: "127.0.0.0/8;::1/128" */
	bool auth;                   /* AUTH PLAIN/LOGIN after TLS, login privilege "smtp" */
	bool require_tls;            /* MAIL only after STARTTLS */
	bool journal_reports;        /* Exchange envelope journal reports are unpacked */
	int64_t max_message_bytes;
	int64_t max_recipients;
	int64_t max_connections;
	int64_t max_connections_per_address;
	int64_t idle_seconds;
	int64_t session_seconds;
	int64_t max_bad_commands;    /* per client address per minute */
	int64_t lock_wait_seconds;   /* a store another task holds this long: its messages get 451 */
	char *folder;                /* recipients' folder template */
	char *sent_folder;           /* a sender's */
	char *unknown_addresses;     /* catchall | ignore | reject */
	char *catchall_archive;
	char *internal_domains;      /* "example.org;example.net": an address outside them is a party of
	                              * incoming or outgoing mail, never an unknown user; NULL: all are */
} mv_smtp_config;

typedef struct mv_service_config {
	char *path;                  /* the file (absolute) */
	char *data_dir;              /* absolute */
	GPtrArray *listen;           /* char*: "127.0.0.1:8463", "[::1]:8463", "0.0.0.0:8463" */
	char *certificate;           /* absolute PEM paths; NULL until generated */
	char *private_key;
	char *certificate_dir;       /* pairs NAME.crt/NAME.key SetServiceCertificate can pick by thumbprint */
	bool debug_log;
	bool safe_mode;              /* archiving profiles and jobs start held */
	int64_t status_retention_seconds; /* how long a finished async status stays retrievable */
	int64_t max_connections;
	int64_t max_running_jobs;    /* long-running functions at once; later ones wait in a queue */
	int64_t max_queued_jobs;     /* waiting ones; a start past that is refused as busy */
	int64_t search_max_prefix_mb; /* [search]: the bound of search.h's mv_search_set_max_prefix_bytes, 0 = none */
	/* [web]: Web Access.  Empty web_listen = off (a file without [web]). */
	GPtrArray *web_listen;       /* char*, like listen */
	int64_t web_idle_seconds;    /* a session unused this long ends */
	int64_t web_session_seconds; /* a session ends this long after its logon, used or not */
	/* [imap]: the IMAP server.  Both lists empty = off (a file without [imap]). */
	GPtrArray *imap_listen;      /* char*: plain connections that must STARTTLS before logon */
	GPtrArray *imap_listen_tls;  /* char*: implicit TLS (the 993 kind) */
	bool imap_plaintext_loopback; /* logon without TLS allowed from loopback addresses */
	int64_t imap_idle_seconds;   /* a connection silent this long is closed (IDLE included) */
	int64_t imap_max_connections;
	/* [smtp]: the SMTP/LMTP endpoint.  Both lists empty = off (the default). */
	mv_smtp_config smtp;
} mv_service_config;

#define MV_API_DEFAULT_PORT 8463
#define MV_WEB_DEFAULT_PORT 8462
#define MV_IMAP_DEFAULT_PORT 8143
#define MV_IMAPS_DEFAULT_PORT 8993
#define MV_SMTP_DEFAULT_PORT 2525
/* Long-running functions mostly wait for the disk (segments, SQLite,
 * fsync, copies): a few more than the 2 cores of a small machine keep it
 * busy, while their CPU parts (decryption, zstd, hashing, FTS) and memory
 * stay bounded and interactive requests stay quick.  Jobs on one store
 * take turns at its write lock anyway. */
#define MV_DEFAULT_MAX_RUNNING_JOBS 4
#define MV_DEFAULT_MAX_QUEUED_JOBS 1000
/* 16 MB of term lists: at a million messages `pro*` (9 MB) answers in
 * 0.25 s, while `re*` (24 MB) would take 0.8 s and `c*` (142 MB) 4.7 s and
 * 180 MB of memory (bench/RESULTS.md). */
#define MV_DEFAULT_SEARCH_MAX_PREFIX_MB 16

/* Defaults for data_dir with the file at path. */
void mv_service_config_default(mv_service_config *c, const char *path, const char *data_dir);
/* Reads path; MV_ERR_NOT_FOUND when it does not exist, MV_ERR_INVALID naming
 * the file, group, key and reason when it is wrong. */
int mv_service_config_load(const char *path, mv_service_config *c_r, GError **error);
/* Writes the configuration to c->path atomically (paths inside its
 * directory written relative to it). */
int mv_service_config_save(const mv_service_config *c, GError **error);
void mv_service_config_clear(mv_service_config *c);
/* Replaces *dst (cleared first; zeroed or valid) with a deep copy of src. */
void mv_service_config_copy(mv_service_config *dst, const mv_service_config *src);
/* The [smtp] part alone: *dst becomes a deep copy (its old contents are
 * not freed); clear frees and zeroes. */
void mv_smtp_config_copy(mv_smtp_config *dst, const mv_smtp_config *src);
void mv_smtp_config_clear(mv_smtp_config *s);
/* Splits "host:port" / "[v6]:port"; host "*" means every address. */
int mv_listen_parse(const char *text, char **host_r, int *port_r, GError **error);

/* The value of a character of the standard base64 alphabet (RFC 4648
 * section 4), -1 for any other (padding included). */
int mv_base64_value(int c);

#endif
