/* archive/migrations: master.sqlite's schema, and what opening an instance
 * made by an older build adds to it — the stores table's later columns, the
 * instance id, the master key check, each store row's uid and owner, the
 * users tables and the audit log's key, the credentials, profiles, jobs and mailbox state tables.  Each step
 * first looks without a transaction or lock: on almost every open there is
 * nothing to do. */
#include "archive/internal.h"

#include <sodium.h>

/* Users, their folder privileges and app passwords (users.c) and the audit
 * log (audit.c).  Part of a new instance's schema, and added on open to an
 * instance made before them (every statement is idempotent). */
#define USERS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY COLLATE NOCASE, full_name TEXT," \
	" distinguished_name TEXT, authentication TEXT NOT NULL DEFAULT 'integrated'," \
	" privileges INTEGER NOT NULL DEFAULT 0, login_privileges INTEGER NOT NULL DEFAULT 0," \
	" email_addresses TEXT NOT NULL DEFAULT '[]', pop3_user_names TEXT NOT NULL DEFAULT '[]'," \
	" password_hash TEXT, auth_generation INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);" \
	"CREATE TABLE IF NOT EXISTS folder_privileges(user TEXT NOT NULL COLLATE NOCASE," \
	" folder TEXT NOT NULL COLLATE NOCASE, privileges INTEGER NOT NULL, PRIMARY KEY(user, folder));" \
	"CREATE TABLE IF NOT EXISTS app_passwords(id INTEGER PRIMARY KEY, user TEXT NOT NULL COLLATE NOCASE," \
	" description TEXT, hash TEXT NOT NULL, created_at INTEGER NOT NULL);" \
	"CREATE INDEX IF NOT EXISTS app_passwords_user ON app_passwords(user);" \
	"CREATE TABLE IF NOT EXISTS user_mfa(user TEXT PRIMARY KEY COLLATE NOCASE, state INTEGER NOT NULL," \
	" secret BLOB, pending BLOB, last_step INTEGER NOT NULL DEFAULT 0);" \
	"CREATE TABLE IF NOT EXISTS audit_log(seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL," \
	" user TEXT NOT NULL, remote TEXT NOT NULL, event TEXT NOT NULL, success INTEGER NOT NULL," \
	" details TEXT NOT NULL, hash TEXT NOT NULL);"

/* Credentials (credentials.c) and the uses profiles record of them.  Part
 * of a new instance's schema, and added on open to an instance made before
 * them by mv_archive_migrate: before an interrupted master key renewal is
 * settled, since settling reads credentials.key_master_next.  AUTOINCREMENT:
 * an id a profile once named never names another credential. */
#define CREDENTIALS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS credentials(id INTEGER PRIMARY KEY AUTOINCREMENT," \
	" type TEXT NOT NULL CHECK(type IN ('Office365_Modern','Password','OAuthClientSecret'))," \
	" description TEXT NOT NULL, tenant_id TEXT, application_id TEXT, user_name TEXT," \
	" certificate TEXT, thumbprint TEXT, subject TEXT, not_before INTEGER, not_after INTEGER," \
	" secret BLOB, key_master BLOB, key_master_next BLOB, created_at INTEGER NOT NULL);" \
	"CREATE TABLE IF NOT EXISTS profile_credentials(profile_id INTEGER NOT NULL, profile_name TEXT NOT NULL," \
	" credential_id INTEGER NOT NULL, PRIMARY KEY(profile_id, credential_id));" \
	"CREATE INDEX IF NOT EXISTS profile_credentials_credential ON profile_credentials(credential_id);"

/* Archiving profiles (profiles.c).  Part of a new instance's schema, and
 * added on open to an instance made before them, as the credentials tables
 * are.  AUTOINCREMENT: a worker result naming a deleted profile's id never
 * names another profile. */
#define PROFILES_SCHEMA \
	"CREATE TABLE IF NOT EXISTS profiles(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL," \
	" owner TEXT NOT NULL COLLATE NOCASE, type TEXT NOT NULL, connector TEXT NOT NULL, details TEXT NOT NULL," \
	" automatic INTEGER NOT NULL DEFAULT 0, pause_seconds INTEGER NOT NULL DEFAULT 0," \
	" maintenance_windows TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL);" \
	"CREATE INDEX IF NOT EXISTS profiles_owner ON profiles(owner);"

/* Scheduled jobs (jobs.c), added on open like the profiles table. */
#define JOBS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL," \
	" action TEXT NOT NULL, owner TEXT NOT NULL COLLATE NOCASE, time_zone_id TEXT, date TEXT, interval INTEGER," \
	" time TEXT, day_of_week TEXT, day_of_month TEXT, enabled INTEGER NOT NULL DEFAULT 1," \
	" created_at INTEGER NOT NULL, last_run INTEGER NOT NULL DEFAULT 0);"

/* What mailbox profiles remember between runs (mailbox_state.c), added on
 * open like the jobs table. */
#define MAILBOX_STATE_SCHEMA \
	"CREATE TABLE IF NOT EXISTS mailbox_folders(profile_id INTEGER NOT NULL, mailbox TEXT NOT NULL," \
	" folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL, pending TEXT NOT NULL DEFAULT ''," \
	" highestmodseq INTEGER NOT NULL DEFAULT 0, archived_marks TEXT NOT NULL DEFAULT ''," \
	" PRIMARY KEY(profile_id, mailbox, folder));" \
	"CREATE TABLE IF NOT EXISTS mailbox_uidls(profile_id INTEGER NOT NULL, mailbox TEXT NOT NULL, uidl TEXT NOT NULL," \
	" archived_at INTEGER NOT NULL, PRIMARY KEY(profile_id, mailbox, uidl));"

static const char master_schema[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS stores(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" state TEXT NOT NULL CHECK(state IN ('current','normal','writeProtected','disabled')),"
	" db_path TEXT NOT NULL, content_path TEXT NOT NULL, index_path TEXT NOT NULL,"
	" key_master BLOB NOT NULL, key_recovery BLOB NOT NULL, recovery_salt BLOB NOT NULL,"
	" created_at INTEGER NOT NULL, key_master_next BLOB, owner_instance TEXT, store_uid TEXT,"
	" meta_synced INTEGER NOT NULL DEFAULT 0);"
	USERS_SCHEMA CREDENTIALS_SCHEMA PROFILES_SCHEMA JOBS_SCHEMA MAILBOX_STATE_SCHEMA;

/* Columns added after format 1's first release; added on open when missing. */
static const struct {
	const char *name, *decl;
} added_columns[] = {
	{ "key_master_next", "key_master_next BLOB" },
	{ "owner_instance", "owner_instance TEXT" },
	{ "store_uid", "store_uid TEXT" },
	{ "meta_synced", "meta_synced INTEGER NOT NULL DEFAULT 0" },
};

const char *mv_archive_schema(void)
{
	return master_schema;
}

/* ---- the stores table, instance id and key check ---------------------------------- */

static int has_column(sqlite3 *db, const char *column, bool *has_r, GError **error)
{
	sqlite3_stmt *st;
	*has_r = false;
	if (mv_sql_prepare(db, "SELECT 1 FROM pragma_table_info('stores') WHERE name=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, column, -1, SQLITE_STATIC);
	*has_r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

static int needs_migration(mv_instance *inst, bool *needs_r, GError **error)
{
	*needs_r = true;
	for (size_t i = 0; i < G_N_ELEMENTS(added_columns); i++) {
		bool has;
		if (has_column(inst->db, added_columns[i].name, &has, error) < 0)
			return -1;
		if (!has)
			return 0;
	}
	char *id = NULL, *check = NULL;
	if (mv_archive_setting_get(inst, SETTING_INSTANCE_ID, &id, error) < 0 ||
	    mv_archive_setting_get(inst, SETTING_KEY_CHECK, &check, error) < 0) {
		g_free(id);
		return -1;
	}
	bool settings_ok = id && check;
	g_free(id);
	g_free(check);
	if (!settings_ok)
		return 0;
	int64_t n = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM stores WHERE store_uid IS NULL OR owner_instance IS NULL",
	                     NULL, &n, error) < 0)
		return -1;
	*needs_r = n > 0;
	return 0;
}

/* An instance made before the key check existed: the key file is right if
 * it opens the stores' keys (or there are none). */
static int create_key_check(mv_instance *inst, GError **error)
{
	GPtrArray *rows = mv_archive_rows_load(inst, -1, error);
	if (!rows)
		return -1;
	bool opens = rows->len == 0;
	for (guint i = 0; i < rows->len && !opens; i++) {
		uint8_t key[MV_KEY_BYTES];
		opens = mv_archive_unwrap_with(inst->master_key, ((mv_archive_row *)rows->pdata[i])->key_master, key);
		sodium_memzero(key, sizeof key);
	}
	g_ptr_array_free(rows, TRUE);
	if (!opens) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT,
		            "%s/master.key does not open any store of this instance (wrong or replaced key file?)",
		            inst->data_dir);
		return -1;
	}
	GBytes *check = mv_archive_new_key_check(inst->master_key);
	int rc = mv_archive_setting_put_bytes(inst, SETTING_KEY_CHECK, check, error);
	g_bytes_unref(check);
	return rc;
}

static int backfill_rows(mv_instance *inst, GError **error)
{
	GPtrArray *rows = mv_archive_rows_load(inst, -1, error);
	if (!rows)
		return -1;
	int rc = -1;
	for (guint i = 0; i < rows->len; i++) {
		const mv_archive_row *r = rows->pdata[i];
		if (r->uid && r->owner)
			continue;
		sqlite3_stmt *st;
		if (mv_sql_prepare(inst->db, "UPDATE stores SET store_uid=coalesce(store_uid, ?),"
		            " owner_instance=coalesce(owner_instance, ?), meta_synced=0 WHERE id=?", &st, error) < 0)
			goto out;
		sqlite3_bind_text(st, 1, mv_archive_random_hex(16), -1, g_free);
		sqlite3_bind_text(st, 2, inst->instance_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, r->id);
		if (mv_sql_step_done(inst->db, st, "backfill store row", error) < 0)
			goto out;
	}
	rc = 0;
out:
	g_ptr_array_free(rows, TRUE);
	return rc;
}

static int migrate_txn(mv_instance *inst, void *opaque, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(added_columns); i++) {
		bool has;
		if (has_column(inst->db, added_columns[i].name, &has, error) < 0)
			return -1;
		if (has)
			continue;
		char *sql = g_strdup_printf("ALTER TABLE stores ADD COLUMN %s", added_columns[i].decl);
		int rc = mv_sql_exec(inst->db, sql, error);
		g_free(sql);
		if (rc < 0)
			return -1;
	}
	char *id = NULL, *check = NULL;
	if (mv_archive_setting_get(inst, SETTING_INSTANCE_ID, &id, error) < 0 ||
	    mv_archive_setting_get(inst, SETTING_KEY_CHECK, &check, error) < 0) {
		g_free(id);
		return -1;
	}
	bool have_check = check != NULL;
	g_free(check);
	if (!id) {
		id = mv_archive_random_hex(INSTANCE_ID_BYTES);
		if (mv_archive_setting_put(inst, SETTING_INSTANCE_ID, id, error) < 0) {
			g_free(id);
			return -1;
		}
	}
	g_free(inst->instance_id);
	inst->instance_id = id;
	if (!have_check && create_key_check(inst, error) < 0)
		return -1;
	return backfill_rows(inst, error);
}

static int add_credentials_schema(mv_instance *inst, void *opaque, GError **error)
{
	return mv_sql_exec(inst->db, CREDENTIALS_SCHEMA, error);
}

/* Looked at without a transaction first: present, they are never removed.
 * No wrapped key comes with the empty tables, so no key lock is taken. */
static int ensure_credentials_schema(mv_instance *inst, GError **error)
{
	int64_t tables = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN"
	                     " ('credentials','profile_credentials')", NULL, &tables, error) < 0)
		return -1;
	return tables == 2 ? 0 : mv_archive_in_transaction(inst, add_credentials_schema, NULL, error);
}

static int add_profiles_schema(mv_instance *inst, void *opaque, GError **error)
{
	return mv_sql_exec(inst->db, PROFILES_SCHEMA, error);
}

/* Looked at without a transaction first: present, it is never removed. */
static int ensure_profiles_schema(mv_instance *inst, GError **error)
{
	int64_t tables = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='profiles'", NULL,
	                     &tables, error) < 0)
		return -1;
	return tables == 1 ? 0 : mv_archive_in_transaction(inst, add_profiles_schema, NULL, error);
}

static int add_jobs_schema(mv_instance *inst, void *opaque, GError **error)
{
	return mv_sql_exec(inst->db, JOBS_SCHEMA, error);
}

static int ensure_jobs_schema(mv_instance *inst, GError **error)
{
	int64_t tables = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='jobs'", NULL,
	                     &tables, error) < 0)
		return -1;
	return tables == 1 ? 0 : mv_archive_in_transaction(inst, add_jobs_schema, NULL, error);
}

static int add_mailbox_state_schema(mv_instance *inst, void *opaque, GError **error)
{
	return mv_sql_exec(inst->db, MAILBOX_STATE_SCHEMA, error);
}

static int ensure_mailbox_state_schema(mv_instance *inst, GError **error)
{
	int64_t tables = 0;
	if (mv_archive_count(inst, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='mailbox_uidls'",
	                     NULL, &tables, error) < 0)
		return -1;
	return tables == 1 ? 0 : mv_archive_in_transaction(inst, add_mailbox_state_schema, NULL, error);
}

int mv_archive_migrate(mv_instance *inst, GError **error)
{
	bool needed;
	if (ensure_credentials_schema(inst, error) < 0 || ensure_profiles_schema(inst, error) < 0 ||
	    ensure_jobs_schema(inst, error) < 0 || ensure_mailbox_state_schema(inst, error) < 0 ||
	    needs_migration(inst, &needed, error) < 0)
		return -1;
	if (needed)
		return mv_archive_in_transaction(inst, migrate_txn, NULL, error);
	g_free(inst->instance_id);
	return mv_archive_setting_get(inst, SETTING_INSTANCE_ID, &inst->instance_id, error);
}

/* ---- the users tables ------------------------------------------------------------------ */

/* The users tables and the audit key, added to an instance made before
 * them.  Looked at without a lock first: present, they are never removed. */
static int users_schema_present(mv_instance *inst, bool *present_r, GError **error)
{
	int64_t tables = 0;
	char *key = NULL;
	if (mv_archive_count(inst, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN"
	               " ('users','folder_privileges','app_passwords','audit_log','user_mfa')", NULL, &tables,
	                     error) < 0 ||
	    mv_archive_setting_get(inst, SETTING_AUDIT_KEY, &key, error) < 0)
		return -1;
	*present_r = tables == 5 && key != NULL;
	g_free(key);
	return 0;
}

static int add_users_schema(mv_instance *inst, void *opaque, GError **error)
{
	char *key = NULL;
	if (mv_sql_exec(inst->db, USERS_SCHEMA, error) < 0 || mv_archive_setting_get(inst, SETTING_AUDIT_KEY, &key, error) < 0)
		return -1;
	bool have_key = key != NULL;
	g_free(key);
	if (have_key)
		return 0;
	GBytes *wrapped = mv_archive_new_wrapped_key(inst->master_key);
	int rc = mv_archive_setting_put_bytes(inst, SETTING_AUDIT_KEY, wrapped, error);
	g_bytes_unref(wrapped);
	return rc;
}

int mv_archive_ensure_users_schema(mv_instance *inst, GError **error)
{
	bool present;
	if (users_schema_present(inst, &present, error) < 0)
		return -1;
	if (present)
		return 0;
	/* The audit key is a wrapped key: written under the key lock, so that a
	 * renewal in another process cannot miss it. */
	int lock = mv_archive_key_lock(inst, error);
	if (lock < 0)
		return -1;
	int rc = mv_archive_in_transaction(inst, add_users_schema, NULL, error);
	mv_archive_key_unlock(lock);
	return rc;
}
