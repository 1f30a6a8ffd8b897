/* archive: the instance — one data directory holding master.sqlite (the list
 * of stores and their wrapped keys, settings, users with their folder
 * privileges, app passwords and MFA, the audit log, credentials), the master
 * key file, and the archive stores.
 *
 * Archives (one per user, e.g. "john.doe") and their folders live inside
 * stores; an archive spans every store it has mail in. */
#ifndef MV_ARCHIVE_H
#define MV_ARCHIVE_H

#include "base/base.h"
#include "store/store.h"

#include <jansson.h>

#define MV_INSTANCE_FORMAT_VERSION 1

typedef struct mv_instance mv_instance;

/* Progress sink of long-running actions: percent 0..100 or -1 if unknown. */

typedef struct mv_archive_store {
	int id;
	char *name;
	char *state;          /* requested state: current | normal | writeProtected | disabled */
	char *type;           /* "FileSystemInternal" */
	mv_store_paths paths; /* absolute */
	char *error;          /* NULL, or why the store cannot be opened now (GetStores
	                         then shows it in an error state with this reason) */
	bool locked;          /* belongs to another instance: needs UnlockStore */
} mv_archive_store;

/* Creates a new instance in data_dir (created if missing; refused if it
 * already holds one).  *recovery_key_r receives the recovery key, which is
 * not stored anywhere: the caller shows it once. */
int mv_instance_init(const char *data_dir, char **recovery_key_r, GError **error);
mv_instance *mv_instance_open(const char *data_dir, GError **error);
void mv_instance_close(mv_instance **inst);
const char *mv_instance_data_dir(const mv_instance *inst);

/* Stores known to the instance, in id order (array of mv_archive_store*). */
GPtrArray *mv_instance_stores(mv_instance *inst, GError **error);
void mv_archive_store_free(mv_archive_store *info);
/* Opens a store by id with its data key unwrapped by the master key.  A
 * reader may get a handle kept open since an earlier close (handles.c). */
mv_store *mv_instance_open_store(mv_instance *inst, int store_id, mv_store_mode mode, GError **error);
/* A store's data key (for work on a store that cannot be opened, such as
 * RecoverStore without a db).  The caller wipes it. */
int mv_instance_store_key(mv_instance *inst, int store_id, uint8_t key_r[MV_KEY_BYTES], GError **error);
/* Writes the store's own copy of its wrapped keys, owner and identity
 * (its keys file) from master.sqlite again: after RecoverStore, whose
 * rebuilt store may have lost it. */
int mv_instance_store_rewrite_own_values(mv_instance *inst, int store_id, GError **error);
/* Instance settings (master.sqlite), text values; *value_r NULL if unset. */
int mv_instance_get_setting(mv_instance *inst, const char *key, char **value_r, GError **error);
int mv_instance_set_setting(mv_instance *inst, const char *key, const char *value, GError **error);
/* The store in state current. */
int mv_instance_current_store(mv_instance *inst, int *store_id_r, GError **error);

/* One store's entry, or NULL with MV_ERR_NOT_FOUND. */
mv_archive_store *mv_instance_store_info(mv_instance *inst, int store_id, GError **error);
/* Fails with MV_ERR_STATE unless the store exists and its state allows
 * modifying its content (current or normal, not locked, no error). */
int mv_instance_require_modifiable(mv_instance *inst, int store_id, GError **error);

/* ---- store registry (AttachStore, CreateStore, ...) ------------------------
 * paths members may be NULL: all NULL = <data>/stores/<name>/{db,content,index};
 * content or index NULL = the database directory.  Paths inside the data
 * directory are kept relative to it.  state NULL = "normal".  Making a store
 * current makes the previous current one normal (exactly one is current). */
int mv_instance_create_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error);
/* Registers an existing store's directories.  A store of another instance
 * is registered locked until mv_instance_unlock_store. */
int mv_instance_attach_store(mv_instance *inst, const char *name, const mv_store_paths *paths,
                             const char *state, int *id_r, GError **error);
/* Forgets a store; its files stay where they are, openable elsewhere with
 * the recovery key.  The current store cannot be detached. */
int mv_instance_detach_store(mv_instance *inst, int store_id, GError **error);
int mv_instance_rename_store(mv_instance *inst, int store_id, const char *name, GError **error);
/* New directories for a store whose files the admin has moved there. */
int mv_instance_set_store_paths(mv_instance *inst, int store_id, const mv_store_paths *paths, GError **error);
int mv_instance_set_store_state(mv_instance *inst, int store_id, const char *state, GError **error);
/* Opens a foreign store's key with the other instance's recovery key and
 * takes it over (rewrapped with this instance's keys).  A wrong key changes
 * nothing and fails with MV_ERR_INVALID. */
int mv_instance_unlock_store(mv_instance *inst, int store_id, const char *recovery_key, GError **error);
/* Replaces the master key and rewraps every store key; no content is rewritten.
 * Crash-safe: either key opens every store at every instant. */
int mv_instance_renew_master_key(mv_instance *inst, GError **error);
/* Replaces the recovery key: a new one (*recovery_key_r, shown once, the
 * caller wipes and frees it), a new salt and key-encryption key, and every
 * store key this instance opens wrapped by it, in one transaction.  The old
 * recovery key opens none of this instance's stores afterwards (copies made
 * before — backups, moved stores — keep their wrapping). */
int mv_instance_renew_recovery_key(mv_instance *inst, char **recovery_key_r, GError **error);
/* VACUUM of master.sqlite. */
int mv_instance_compact_master(mv_instance *inst, GError **error);

/* Automatic store creation (Get/SetStoreAutoCreateConfiguration). */
typedef struct mv_autocreate_config {
	int64_t size_threshold;  /* messages; 0 = off */
	char *database_base;     /* directories under which new stores are made */
	char *content_base;
	char *index_base;
} mv_autocreate_config;
void mv_autocreate_config_clear(mv_autocreate_config *c);
int mv_instance_get_autocreate(mv_instance *inst, mv_autocreate_config *c_r, GError **error);
int mv_instance_set_autocreate(mv_instance *inst, const mv_autocreate_config *c, GError **error);
/* Creates a store under the configured base directories (data directory's
 * stores/ when unset), named after the date, and makes it current. */
int mv_instance_auto_create_store(mv_instance *inst, int *id_r, GError **error);

/* CreateBackup: a consistent copy of master.sqlite, master.key and every
 * store (db and index via SQLite's online backup, index before db; segments
 * up to their committed length) into dir, usable while imports run.
 * mv_instance_restore copies a backup into an empty data directory. */
int mv_instance_backup(mv_instance *inst, const char *dir, bool exclude_index,
                       const mv_task *task, GError **error);
int mv_instance_restore(const char *backup_dir, const char *data_dir, GError **error);

/* ---- users and privileges (users.c; names user_names.c, passwords
 * passwords.c, folder privileges grants.c) ------------------------------------
 * Users live in master.sqlite.  Privilege sets are bit sets with exactly the
 * identifiers of design.md §9; the text form is a comma separated list
 * ("none" alone = the empty set). */
typedef enum {
	MV_PRIV_ADMIN = 1u << 0,
	MV_PRIV_LOGIN = 1u << 1,
	MV_PRIV_CHANGE_PASSWORD = 1u << 2,
	MV_PRIV_ARCHIVE = 1u << 3,
	MV_PRIV_MODIFY_ARCHIVE_PROFILES = 1u << 4,
	MV_PRIV_EXPORT = 1u << 5,
	MV_PRIV_MODIFY_EXPORT_PROFILES = 1u << 6,
	MV_PRIV_DELETE = 1u << 7,
} mv_privilege;

typedef enum {
	MV_LOGIN_WINDOWS = 1u << 0,
	MV_LOGIN_WEB = 1u << 1,
	MV_LOGIN_OUTLOOK = 1u << 2,
	MV_LOGIN_WINDOWS_CMD = 1u << 3,
	MV_LOGIN_IMAP = 1u << 4,
	MV_LOGIN_API = 1u << 5,
	/* What a new user gets by default: every way of reading the archive.
	 * Handing mail in over SMTP writes into other users' archives, so it
	 * is never granted by default. */
	MV_LOGIN_ALL = (1u << 6) - 1,
	MV_LOGIN_SMTP = 1u << 6,
	MV_LOGIN_KNOWN = MV_LOGIN_ALL | MV_LOGIN_SMTP,
} mv_login_privilege;

typedef enum {
	MV_FOLDER_READ = 1u << 0,
	MV_FOLDER_WRITE = 1u << 1,
	MV_FOLDER_DELETE = 1u << 2,
	MV_FOLDER_ALL = (1u << 3) - 1,
} mv_folder_privilege;

typedef enum { MV_PRIVSET_USER, MV_PRIVSET_LOGIN, MV_PRIVSET_FOLDER } mv_privset_kind;

/* "admin,login" -> bits.  Unknown names, "none" mixed with others, empty
 * items fail with MV_ERR_INVALID naming arg_name and the bad item. */
int mv_privileges_parse(mv_privset_kind kind, const char *arg_name, const char *text, unsigned *bits_r,
                        GError **error);
/* bits -> "admin,login" in the order of design.md §9; "none" for 0. */
char *mv_privileges_format(mv_privset_kind kind, unsigned bits);

typedef struct mv_user {
	char *name;
	char *full_name;               /* NULL if unset */
	char *distinguished_name;      /* NULL if unset */
	char *authentication;          /* "integrated" | "directoryServices" */
	unsigned privileges;           /* mv_privilege bits */
	unsigned login_privileges;     /* mv_login_privilege bits */
	GPtrArray *email_addresses;    /* char*, never NULL */
	GPtrArray *pop3_user_names;    /* char*, never NULL */
	bool has_password;
	int64_t auth_generation;       /* changes whenever password or authentication changes */
} mv_user;

void mv_user_free(mv_user *u);
/* User names: 1..256 bytes of UTF-8 without control characters, '/', ',', ':' or
 * leading/trailing space; unique by mv_user_name_key (Unicode case folding
 * and canonical normalisation), stored as given. */
int mv_user_name_check(const char *name, GError **error);

/* Creates a user.  password may be NULL (no password: cannot log in with
 * one).  With the compliance password policy on, weak passwords fail with
 * MV_ERR_INVALID naming the rule. */
int mv_user_create(mv_instance *inst, const char *name, unsigned privileges, unsigned login_privileges,
                   const char *full_name, const char *distinguished_name, const char *authentication,
                   const char *password, GError **error);
/* NULL with MV_ERR_NOT_FOUND for an unknown user. */
/* The key user names are matched by (case-folded, canonical Unicode
 * normalisation): one user whatever the spelling.  NULL when name is not
 * UTF-8.  New string. */
char *mv_user_name_key(const char *name);
mv_user *mv_user_get(mv_instance *inst, const char *name, GError **error);
/* All users ordered by name (array of mv_user*). */
GPtrArray *mv_users_list(mv_instance *inst, GError **error);
/* Deletes the user, its folder privileges, app passwords and MFA; the
 * archive stays. */
int mv_user_delete(mv_instance *inst, const char *name, GError **error);
/* Renames the user (folder privileges, app passwords and MFA follow); the
 * archive keeps its name. */
int mv_user_rename(mv_instance *inst, const char *old_name, const char *new_name, GError **error);
int mv_user_set_password(mv_instance *inst, const char *name, const char *password, GError **error);
int mv_user_set_full_name(mv_instance *inst, const char *name, const char *full_name, GError **error);
int mv_user_set_distinguished_name(mv_instance *inst, const char *name, const char *dn, GError **error);
int mv_user_set_authentication(mv_instance *inst, const char *name, const char *authentication, GError **error);
/* items: char* (may be empty). */
int mv_user_set_email_addresses(mv_instance *inst, const char *name, GPtrArray *items, GError **error);
int mv_user_set_pop3_user_names(mv_instance *inst, const char *name, GPtrArray *items, GError **error);
int mv_user_set_privileges(mv_instance *inst, const char *name, unsigned privileges, GError **error);
int mv_user_set_login_privileges(mv_instance *inst, const char *name, unsigned login_privileges, GError **error);
/* Number of app passwords deleted in *count_r (may be NULL). */
int mv_user_delete_app_passwords(mv_instance *inst, const char *name, int64_t *count_r, GError **error);

/* Checks a password (Argon2id, libsodium; constant time).  Unknown user,
 * no password, wrong password, directoryServices authentication: all fail
 * with MV_ERR_AUTH and the same message.  On success *user_r (may be NULL). */
int mv_user_authenticate(mv_instance *inst, const char *name, const char *password, mv_user **user_r,
                         GError **error);
/* The same for a client program (the Administration API, IMAP): the
 * user's password, or one of its app passwords; once the user has MFA,
 * only an app password (a second factor cannot be asked for there). */
int mv_user_authenticate_client(mv_instance *inst, const char *name, const char *secret, mv_user **user_r,
                                GError **error);
/* ---- app passwords (app_passwords.c) ---- */
typedef struct mv_app_password {
	int64_t id;
	char *description;
	int64_t created_at;            /* Unix seconds */
} mv_app_password;
void mv_app_password_free(mv_app_password *p);
/* A new app password for the user, returned once in *password_r
 * ("abcd-efgh-jkmn-pqrs-tuvw"; the caller shows it and wipes it); at most
 * 100 per user (MV_ERR_LIMIT). */
int mv_app_password_create(mv_instance *inst, const char *name, const char *description, int64_t *id_r,
                           char **password_r, GError **error);
/* The user's app passwords (array of mv_app_password*), oldest first. */
GPtrArray *mv_app_passwords_list(mv_instance *inst, const char *name, GError **error);
/* Revokes one (MV_ERR_NOT_FOUND when the user has no such id). */
int mv_app_password_delete(mv_instance *inst, const char *name, int64_t id, GError **error);

/* ---- multi-factor authentication (mfa.c) ---- */
typedef enum {
	MV_MFA_NONE = 0,
	MV_MFA_REQUIRED = 1,           /* InitializeMFA: enrolment at the next interactive logon */
	MV_MFA_ACTIVE = 2,
} mv_mfa_state;
/* "none", "pending", "active". */
const char *mv_mfa_state_name(mv_mfa_state s);
int mv_mfa_get_state(mv_instance *inst, const char *name, mv_mfa_state *state_r, GError **error);
/* InitializeMFA: the user must enrol a new secret at the next interactive
 * logon; a secret in use is dropped. */
int mv_mfa_initialize(mv_instance *inst, const char *name, GError **error);
/* DisableMFA: no second factor any more. */
int mv_mfa_disable(mv_instance *inst, const char *name, GError **error);
/* The secret being enrolled (base32) and its otpauth:// URI for the QR
 * code: a new one when fresh, else the one already pending
 * (MV_ERR_STATE when there is none).  Not active until confirmed. */
int mv_mfa_enrolment(mv_instance *inst, const char *name, bool fresh, char **secret_r, char **uri_r, GError **error);
/* Confirms the pending secret with a code from it: MFA becomes active.
 * A wrong code is MV_ERR_AUTH. */
int mv_mfa_confirm(mv_instance *inst, const char *name, const char *code, GError **error);
/* Checks a code of the active secret; each code is accepted once.  A
 * wrong, expired or reused code is MV_ERR_AUTH. */
int mv_mfa_verify(mv_instance *inst, const char *name, const char *code, GError **error);
/* The 6-digit TOTP code of a raw secret at Unix time t (tests). */
int mv_totp_code(const uint8_t *secret, size_t len, int64_t t, char code_r[7]);

/* The password policy (when enabled): at least 8 characters, three of
 * upper case, lower case, digits, other; not containing the user name. */
int mv_password_policy_check(const char *user_name, const char *password, GError **error);

/* Folder privileges (grants.c; what they allow a caller: access.c): entries
 * (user, folder, bits) where folder is an archive ("john.doe") or a folder
 * in it ("john.doe/Inbox").  The entry with the longest folder that equals
 * or contains the folder asked about decides (compared case-insensitively);
 * bits 0 is an explicit deny. */
typedef struct mv_folder_grant {
	char *folder;
	unsigned privileges;           /* mv_folder_privilege bits; 0 = none (deny) */
} mv_folder_grant;
void mv_folder_grant_free(mv_folder_grant *g);
int mv_user_set_folder_privileges(mv_instance *inst, const char *name, const char *folder, unsigned privileges,
                                  GError **error);
int mv_user_clear_folder_privileges(mv_instance *inst, const char *name, GError **error);
/* The user's entries ordered by folder (array of mv_folder_grant*). */
GPtrArray *mv_user_folder_privileges(mv_instance *inst, const char *name, GError **error);

/* A caller's effective access, loaded once per call.  NULL (or an
 * administrator's) means unrestricted. */
typedef struct mv_access mv_access;
mv_access *mv_access_load(mv_instance *inst, const char *user_name, GError **error);
/* The same for a user already read (no second lookup). */
mv_access *mv_access_for_user(mv_instance *inst, const mv_user *u, GError **error);
/* Frees it and clears the caller's pointer (NULL is fine). */
void mv_access_free(mv_access **a);
bool mv_access_unrestricted(const mv_access *a);
const char *mv_access_user(const mv_access *a);
/* Effective folder privilege bits on archive/path (path "" = the archive
 * root).  A NULL access has them all. */
unsigned mv_access_folder(const mv_access *a, const char *archive, const char *path);

/* ---- IMAP mailbox UIDs (mailbox_uids.c) -------------------------------------------- */
/* A store holding part of a mailbox, and the highest message number it
 * holds in it (deleted messages included: numbers are never reused). */
typedef struct mv_mailbox_store {
	int store_id;
	int64_t max_number;
} mv_mailbox_store;
#define MV_MAILBOX_MAX_STORES 127   /* ranks fit the 7 bits above a 25-bit message number */
/* The mailbox's UIDVALIDITY and, for each of now[0..n), its rank (UID =
 * rank << 25 | number; -1 for a store beyond the bound).  key names the
 * mailbox's folders.  Writes only when a store joins the mailbox or mail
 * arrived where UIDs would go backwards (then a new UIDVALIDITY). */
int mv_mailbox_uid_layout(mv_instance *inst, const char *key, const mv_mailbox_store *now, size_t n,
                          uint32_t *uidvalidity_r, int *ranks_r, GError **error);

/* Creates the first administrator "admin" (all privileges and login
 * privileges) with a random password returned in *password_r, unless a
 * user exists already (then *password_r is NULL). */
int mv_users_ensure_admin(mv_instance *inst, char **password_r, GError **error);

/* ---- compliance configuration (compliance.c) -------------------------------------- */
typedef struct mv_compliance {
	bool admin_email_preview_enabled;
	bool legal_hold_enabled;
	bool password_policy_enabled;
	GPtrArray *log_successful_user_activities;   /* char* event types */
} mv_compliance;
void mv_compliance_clear(mv_compliance *c);
int mv_compliance_get(mv_instance *inst, mv_compliance *c_r, GError **error);
int mv_compliance_set(mv_instance *inst, const mv_compliance *c, GError **error);
/* The reference's JSON object and back (unknown fields fail naming them). */
json_t *mv_compliance_to_json(const mv_compliance *c);
/* Legal hold: 0 when it is off; while it is on (or the configuration cannot
 * be read) -1 with MV_ERR_DENIED naming action.  Every path that removes or
 * hides an archived message asks first: DeleteMessage, CompactStore,
 * DeleteEmptyFolders, and retention when it comes. */
int mv_legal_hold_check(mv_instance *inst, const char *action, GError **error);
int mv_compliance_from_json(json_t *obj, mv_compliance *c_r, GError **error);

/* ---- audit log (audit.c) ---------------------------------------------------
 * Append-only, in master.sqlite; each entry's hash is a keyed BLAKE2b over
 * the previous entry's hash and this entry's fields (the key, random per
 * instance, kept wrapped by the master key), so a changed, removed or
 * inserted entry breaks the chain at that point. */
typedef struct mv_audit_entry {
	int64_t seq;
	int64_t time_ms;               /* Unix time, milliseconds */
	char *user;                    /* "" when unknown (failed logon of a nobody) */
	char *remote;                  /* "127.0.0.1", "local" for the command line */
	char *event;                   /* MailStore-style event type, e.g. "UserAdd" */
	bool success;
	char *details;                 /* free text or JSON; never passwords */
	char *hash;                    /* hex */
} mv_audit_entry;
void mv_audit_entry_free(mv_audit_entry *e);
/* {"seq","time" (ISO 8601 UTC),"user","remote","event","success","details","hash"}:
 * what GetAuditLog returns and `mailvault audit --json` prints. */
json_t *mv_audit_entry_json(const mv_audit_entry *e);
/* Appends one entry (durable when it returns 0).  inst NULL (a call made
 * without an instance) has no log: nothing is recorded, 0 is returned. */
int mv_audit_append(mv_instance *inst, const char *user, const char *remote, const char *event, bool success,
                    const char *details, GError **error);
/* Called with each entry of a listing in turn; e and its texts are valid
 * only during the call.  Returns 0 to go on, anything else to stop. */
typedef int (*mv_audit_fn)(const mv_audit_entry *e, void *opaque);
/* Hands fn the entries with time_ms >= since_ms, in order, at most limit
 * (0 = all), as they stood when the call began; memory stays bounded
 * whatever the log's size, and no read transaction is held while fn runs.
 * Returns 0 when all were handed on, 1 when fn stopped the listing, -1 with
 * *error set when the log could not be read. */
int mv_audit_each(mv_instance *inst, int64_t since_ms, int64_t limit, mv_audit_fn fn, void *opaque,
                  GError **error);
/* The same listing pulled a batch at a time (for a caller that writes
 * entries out as it reads them): each mv_audit_listing_next fills batch
 * (of mv_audit_entry, emptied first) with the next entries, leaving it
 * empty at the end; 0, or -1 with *error.  No read transaction is held
 * between calls. */
typedef struct mv_audit_listing mv_audit_listing;
mv_audit_listing *mv_audit_listing_open(mv_instance *inst, int64_t since_ms, int64_t limit, GError **error);
int mv_audit_listing_next(mv_audit_listing *l, GPtrArray *batch, GError **error);
void mv_audit_listing_free(mv_audit_listing **l);
/* How many entries have time_ms >= since_ms, counted no further than
 * at_most. */
int mv_audit_count(mv_instance *inst, int64_t since_ms, int64_t at_most, int64_t *count_r, GError **error);
/* The same entries collected in an array (of mv_audit_entry, freeing them):
 * for callers that bound limit themselves. */
GPtrArray *mv_audit_read(mv_instance *inst, int64_t since_ms, int64_t limit, GError **error);
/* What a verification found.  The head (last entry and its hash) is what
 * a monitor keeps and passes back as the anchor next time: a chain alone
 * cannot show entries removed from its end, a remembered head can. */
typedef struct mv_audit_report {
	int64_t entries;        /* entries checked */
	int64_t first_broken;   /* seq of the first entry that does not follow; 0 = intact */
	char *reason;           /* why, NULL when intact */
	int64_t last_seq;       /* the head: 0 for an empty log */
	char *last_hash;        /* hex, NULL for an empty log */
} mv_audit_report;
void mv_audit_report_clear(mv_audit_report *r);
/* {entries, intact, firstBrokenEntry, reason, lastEntry, lastHash}: what
 * VerifyAuditLog returns and `mailvault audit --verify --json` prints. */
json_t *mv_audit_report_json(const mv_audit_report *r);
/* Walks the whole chain in one pass, one entry in memory at a time, within
 * one read transaction (a consistent snapshot).  anchor: NULL, or "SEQ:HASH"
 * (a head reported earlier): then entry SEQ must still be there with that
 * hash, or the log is broken there.  A malformed anchor is MV_ERR_INVALID. */
int mv_audit_verify(mv_instance *inst, const char *anchor, mv_audit_report *r, GError **error);
/* Whether a successful event of this type is to be logged: administrative
 * events always; user activities when listed in the compliance
 * configuration's logSuccessfulUserActivities. */
bool mv_audit_wanted(mv_instance *inst, const char *event, bool admin_action);
/* A point in time as GetAuditLog and `mailvault audit --since` take it:
 * ISO 8601 ("2024-05-01", "2024-05-01T12:00:00Z"; no offset = UTC) or Unix
 * seconds, into Unix milliseconds.  MV_ERR_INVALID naming arg_name. */
int mv_audit_parse_time(const char *arg_name, const char *text, int64_t *ms_r, GError **error);
/* Unix milliseconds -> "2024-05-01T12:00:00.123Z" (a new string). */
char *mv_audit_format_time(int64_t time_ms);

/* ---- small secrets of the instance (secrets.c) ------------------------------ */
/* The secret kept sealed in master.sqlite under setting name (with a key
 * derived for context, up to 8 characters), made by make() the first time:
 * read or made inside one transaction, so concurrent callers all get the
 * same value.  The caller wipes and releases what it gets. */
typedef GBytes *(*mv_secret_make_fn)(void *opaque, GError **error);
GBytes *mv_instance_secret(mv_instance *inst, const char *name, const char *context, mv_secret_make_fn make,
                           void *opaque, GError **error);

/* ---- credentials (credentials.c) --------------------------------------------
 * What the instance keeps to reach other systems on its own: a Microsoft 365
 * app registration (Office365_Modern: tenant, application and a certificate
 * whose private key is the secret), and two types of ours for mailbox
 * profiles: Password (a user name and its password) and OAuthClientSecret
 * (tenant, application and a client secret).  Rows of master.sqlite's
 * credentials table, ids never reused.  A secret is sealed under a random
 * key of its own (a new one whenever the secret changes), kept wrapped by the
 * master key and rewrapped by RenewMasterKey; nothing but
 * mv_credential_secret ever hands it out.
 *
 * Profiles refer to credentials by id.  The profiles module records each use
 * as a row (profile_id, profile_name, credential_id) of master.sqlite's
 * profile_credentials table, written in the transaction that saves the
 * profile; mv_credential_delete refuses while a row names the credential and
 * says which profile.  A table rather than a callback: the check and the
 * deletion then share one transaction, and no process can forget to
 * register a hook. */
typedef enum {
	MV_CREDENTIAL_OFFICE365_MODERN,
	MV_CREDENTIAL_PASSWORD,
	MV_CREDENTIAL_OAUTH_CLIENT_SECRET,
} mv_credential_type;
#define MV_CREDENTIALS_MAX 1000
/* The API name of a type: "Office365_Modern", "Password", "OAuthClientSecret". */
const char *mv_credential_type_name(mv_credential_type type);
/* The type an API name means; "SignedEnvelope" (MailStore Cloud exports)
 * is MV_ERR_UNSUPPORTED, any other name MV_ERR_INVALID. */
int mv_credential_type_parse(const char *name, mv_credential_type *type_r, GError **error);
/* Fails with MV_ERR_INVALID unless credentials of this type take the API
 * argument arg (tenantId, applicationId, createNewCertificate, userName,
 * password, clientSecret): the error names the argument, the type and what
 * the type takes. */
int mv_credential_check_arg(mv_credential_type type, const char *arg, GError **error);

typedef struct mv_credential {
	int64_t id;
	mv_credential_type type;
	char *description;
	char *tenant_id, *application_id, *user_name;   /* NULL when not set */
	/* Office365_Modern's certificate (NULL until one is made): PEM, SHA-1
	 * thumbprint (upper-case hex, as Entra ID shows it), subject, validity
	 * in Unix seconds. */
	char *certificate, *thumbprint, *subject;
	int64_t not_before, not_after;
	bool has_secret;
	int64_t created_at;
} mv_credential;
void mv_credential_free(mv_credential *c);

/* A new certificate and its private key (net/ makes them: archive/ keeps
 * what it is given). */
typedef struct mv_credential_cert {
	const char *pem, *private_key_pem, *thumbprint, *subject;
	int64_t not_before, not_after;
} mv_credential_cert;

/* What a create or change sets.  NULL members stay as they are (unset when
 * creating); "" unsets tenant_id, application_id or user_name.  A secret
 * (password, client_secret, certificate's key) is replaced, never unset.
 * Each member set must be one the type takes (mv_credential_check_arg). */
typedef struct mv_credential_settings {
	const char *tenant_id;          /* a GUID or a domain name (contoso.onmicrosoft.com) */
	const char *application_id;     /* a GUID */
	const char *user_name;
	const char *password;           /* Password's secret */
	const char *client_secret;      /* OAuthClientSecret's secret */
	const mv_credential_cert *certificate;  /* Office365_Modern: its secret is the private key */
} mv_credential_settings;

/* Creates one (MV_ERR_LIMIT beyond MV_CREDENTIALS_MAX); its id in *id_r.
 * description: up to 1024 bytes of UTF-8 without control characters. */
int mv_credential_create(mv_instance *inst, mv_credential_type type, const char *description,
                         const mv_credential_settings *settings, int64_t *id_r, GError **error);
/* MV_ERR_NOT_FOUND when there is no credential id. */
mv_credential *mv_credential_get(mv_instance *inst, int64_t id, GError **error);
/* All of them (mv_credential*), by id. */
GPtrArray *mv_credentials_list(mv_instance *inst, GError **error);
int mv_credential_set_description(mv_instance *inst, int64_t id, const char *description, GError **error);
int mv_credential_update(mv_instance *inst, int64_t id, const mv_credential_settings *settings, GError **error);
/* MV_ERR_STATE naming the profile when a profile uses it. */
int mv_credential_delete(mv_instance *inst, int64_t id, GError **error);
/* The credential's secret for whatever uses it (profiles): Password's
 * password, OAuthClientSecret's client secret, Office365_Modern's private
 * key (PEM).  *secret_r is NUL-terminated, *len_r bytes long; the caller
 * wipes it (sodium_memzero(secret, len)) and g_free()s it.  credential_r
 * (may be NULL) gets the credential as read in the same statement.
 * MV_ERR_NOT_FOUND, MV_ERR_STATE when it has no secret yet, MV_ERR_CORRUPT
 * when it does not open with this instance's keys. */
int mv_credential_secret(mv_instance *inst, int64_t id, mv_credential **credential_r, char **secret_r,
                         size_t *len_r, GError **error);

/* ---- archiving profiles (profiles.c) ----------------------------------------
 * Rows of master.sqlite's profiles table: what a profile archives is its
 * connector's details, a JSON object the connector (sources/profiles.c)
 * checked before it was saved; secrets never sit in it (a credential's id
 * does, and the use is recorded in profile_credentials). */
typedef struct mv_profile {
	int64_t id;
	char *name;
	char *owner;                /* the user who created it */
	char *type;                 /* "I": archiving */
	char *connector;            /* "FileSystem" */
	char *details;              /* JSON object text */
	bool automatic;             /* server-side execution (SetProfileServerSideExecution) */
	int64_t pause_seconds;
	char *maintenance_windows;  /* "hh:mm-hh:mm", or "" */
} mv_profile;
void mv_profile_free(mv_profile *p);
/* Saves p (its id ignored) and, when
 * credential_id is not 0, the use of that credential (MV_ERR_NOT_FOUND
 * when there is none), in one transaction. */
int mv_profile_create(mv_instance *inst, const mv_profile *p, int64_t credential_id, int64_t *id_r, GError **error);
/* MV_ERR_NOT_FOUND when there is no profile id. */
mv_profile *mv_profile_get(mv_instance *inst, int64_t id, GError **error);
/* Every profile (owner NULL) or one user's, by id (mv_profile *). */
GPtrArray *mv_profiles_list(mv_instance *inst, const char *owner, GError **error);
/* The profile and its credential uses. */
int mv_profile_delete(mv_instance *inst, int64_t id, GError **error);
int mv_profile_set_server_side(mv_instance *inst, int64_t id, bool automatic, int64_t pause_seconds,
                               const char *maintenance_windows, GError **error);

/* ---- what mailbox profiles remember (mailbox_state.c) ------------------------
 * Per profile and mailbox (the login it was read through), per IMAP
 * folder: the UIDVALIDITY it was read under, the highest UID up to which
 * every message was dealt with, the UIDs below it to look at again (left by
 * a filter that may pass them later: unread, too new), as an IMAP UID set,
 * and the folder's HIGHESTMODSEQ.  Per POP3 mailbox: the UIDLs archived,
 * with when.  A run writes its state only after the messages it covers are
 * durably archived; a temporary profile (id 0) remembers nothing. */
typedef struct mv_mailbox_folder_state {
	uint64_t uidvalidity;
	uint64_t last_uid;
	char *pending;             /* "" or an IMAP UID set */
	uint64_t highestmodseq;
	/* When UIDs were archived: "UID@UNIXTIME,..." ascending, each run's
	 * last_uid at its end — a UID was archived by the first mark at or
	 * above it (deletion by archive date). */
	char *archived_marks;
} mv_mailbox_folder_state;

void mv_mailbox_folder_state_free(mv_mailbox_folder_state *s);
/* Every folder's state of a mailbox: folder name → mv_mailbox_folder_state*. */
GHashTable *mv_mailbox_folder_states(mv_instance *inst, int64_t profile_id, const char *mailbox, GError **error);
int mv_mailbox_folder_state_set(mv_instance *inst, int64_t profile_id, const char *mailbox, const char *folder,
                                const mv_mailbox_folder_state *s, GError **error);
/* UIDL → archived_at (int64_t*). */
GHashTable *mv_mailbox_uidls(mv_instance *inst, int64_t profile_id, const char *mailbox, GError **error);
/* Adds UIDLs (char*) archived at when, or removes them (when < 0). */
int mv_mailbox_uidls_change(mv_instance *inst, int64_t profile_id, const char *mailbox, GPtrArray *uidls,
                            int64_t when, GError **error);
/* Everything a profile remembers, inside the caller's transaction. */
int mv_mailbox_state_forget(mv_instance *inst, int64_t profile_id, GError **error);

/* ---- scheduled jobs (jobs.c) -------------------------------------------------
 * Rows of master.sqlite's jobs table.  The schedule is kept as given
 * (jobs/schedule.c checked it); NULL = not given. */
typedef struct mv_job {
	int64_t id;
	char *name;
	char *action;               /* `Function --arg=value ...` */
	char *owner;                /* whose privileges it runs with */
	char *time_zone_id, *date, *time, *day_of_week, *day_of_month;
	bool has_interval;
	int64_t interval;           /* minutes */
	bool enabled;
	int64_t created_at;         /* seconds since the epoch; the schedule counts from here */
	int64_t last_run;           /* when the scheduler last started it; 0 = never */
} mv_job;
void mv_job_free(mv_job *j);
/* Saves j (its id and last_run ignored). */
int mv_job_create(mv_instance *inst, const mv_job *j, int64_t *id_r, GError **error);
/* MV_ERR_NOT_FOUND when there is no job id (here and below). */
mv_job *mv_job_get(mv_instance *inst, int64_t id, GError **error);
/* Every job by id (mv_job *). */
GPtrArray *mv_jobs_list(mv_instance *inst, GError **error);
int mv_job_delete(mv_instance *inst, int64_t id, GError **error);
int mv_job_rename(mv_instance *inst, int64_t id, const char *name, GError **error);
int mv_job_set_enabled(mv_instance *inst, int64_t id, bool enabled, GError **error);
/* j->id's schedule becomes j's, counted from now (last_run cleared). */
int mv_job_set_schedule(mv_instance *inst, const mv_job *j, int64_t now, GError **error);
int mv_job_set_last_run(mv_instance *inst, int64_t id, int64_t when, GError **error);

/* ---- the server's hold on the data directory (lock.c) ---------------------- */
/* Taken by `mailvault serve` for its lifetime: fails with MV_ERR_STATE
 * (naming the holder) when another server runs or a local command is
 * writing.  description ("pid N, https://host:port") is what refusals show. */
int mv_server_lock_acquire(const char *data_dir, const char *description, int *fd_r, GError **error);
void mv_server_lock_release(int fd);
/* Taken by local commands that write, for their whole run: fails with
 * MV_ERR_STATE naming the server when one holds the directory.  *fd_r is
 * -1 when the directory does not exist yet. */
int mv_server_lock_local(const char *data_dir, int *fd_r, GError **error);
void mv_server_lock_local_release(int fd);
/* What the server holding data_dir wrote into server.lock ("pid N,
 * https://host:port"), for a command that goes through it instead; NULL
 * when there is no such file or it is empty. */
char *mv_server_lock_holder(const char *data_dir);

/* Resolves the data directory: explicit, else $MAILVAULT_DATA_DIR, else ./var. */
char *mv_data_dir_resolve(const char *explicit_dir);

/* ---- worker results (worker_results.c): what each archiving run left ---- */
typedef struct mv_worker_result {
	int64_t profile_id;            /* 0: not a profile (a command-line import, TransferStores) */
	const char *profile_name;      /* the profile's name, or what ran ("import PATH", "TransferStores") */
	const char *user;              /* who ran it */
	int64_t start_ms, complete_ms; /* ms since the epoch */
	const char *result;            /* succeeded, completedWithWarnings, completedWithErrors, cancelled, failed */
	uint64_t archived, already_archived, skipped, failed;
	json_t *report;                /* borrowed: {"source", "archives", "failures": [{"item", "reason"}], ...} */
	int64_t marker;                /* mv_worker_run_begin's, settled with the result; 0: none */
} mv_worker_result;
/* The result, the run's in-progress row (r->marker) deleted with it, and
 * results past the retention expired, in one transaction. */
int mv_worker_result_add(mv_instance *inst, const mv_worker_result *r, int64_t *id_r, GError **error);
/* A run starts: its row in progress (who, what, when; r's counts and
 * result unused), which its result removes.  One a killed process left
 * becomes a failed result at the next server start. */
int mv_worker_run_begin(mv_instance *inst, const mv_worker_result *r, int64_t *marker_r, GError **error);
/* Every run in progress as a failed result saying it was interrupted.
 * Only while no run can be going: `serve` at start-up, holding the data
 * directory. */
int mv_worker_runs_settle(mv_instance *inst, int *settled_r, GError **error);
typedef struct mv_worker_results_filter {
	int64_t from, to;              /* seconds since the epoch: from <= start < to */
	int64_t profile_id;            /* 0: every run */
	const char *user;              /* NULL: every user */
} mv_worker_results_filter;
/* The runs that started in the range, oldest first, times in tz. */
json_t *mv_worker_results_list(mv_instance *inst, const mv_worker_results_filter *f, GTimeZone *tz, GError **error);
/* How long results are kept (days, 90 unless set); a new value applies
 * at the next result written.  MV_ERR_INVALID outside 1..100000. */
int64_t mv_worker_results_retention_days(mv_instance *inst);
int mv_worker_results_set_retention_days(mv_instance *inst, int64_t days, GError **error);
/* A scheduled job's runs (the results whose report names a jobId; job_id 0:
 * every job's) that started in [from, to), oldest first, times in tz, each
 * with jobId, jobName, action, statusText and logOutput from its report. */
json_t *mv_job_results_list(mv_instance *inst, int64_t from, int64_t to, int64_t job_id, GTimeZone *tz, GError **error);
/* One run with its report (times in UTC); *user_r its user (the caller frees). */
json_t *mv_worker_result_report(mv_instance *inst, int64_t id, char **user_r, GError **error);

#endif
