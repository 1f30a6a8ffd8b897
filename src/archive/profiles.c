/* archive/profiles: archiving profiles' rows in master.sqlite.
 *
 * A profile is what to archive from where, saved to be run again: its name,
 * owner, type ("I": archiving), connector ("FileSystem", ...), the
 * connector's details as one JSON object (the connector checks them, in
 * sources/profiles.c; this file stores what it is given) and its
 * server-side execution settings.  Kept as JSON rather than a column per
 * property: every connector has its own, and only the connector reads them.
 *
 * A profile that uses a credential records the use in profile_credentials
 * in the transaction that saves it, and drops it in the one that deletes
 * it, so archive/credentials.c can refuse to delete a credential in use. */
#include "archive/internal.h"

#define PROFILE_COLUMNS "id, name, owner, type, connector, details, automatic, pause_seconds, maintenance_windows"

void mv_profile_free(mv_profile *p)
{
	if (!p)
		return;
	g_free(p->name);
	g_free(p->owner);
	g_free(p->type);
	g_free(p->connector);
	g_free(p->details);
	g_free(p->maintenance_windows);
	g_free(p);
}

static mv_profile *profile_from_row(sqlite3_stmt *st)
{
	mv_profile *p = g_new0(mv_profile, 1);
	p->id = sqlite3_column_int64(st, 0);
	p->name = mv_sql_column_text(st, 1);
	p->owner = mv_sql_column_text(st, 2);
	p->type = mv_sql_column_text(st, 3);
	p->connector = mv_sql_column_text(st, 4);
	p->details = mv_sql_column_text(st, 5);
	p->automatic = sqlite3_column_int(st, 6) != 0;
	p->pause_seconds = sqlite3_column_int64(st, 7);
	p->maintenance_windows = mv_sql_column_text(st, 8);
	return p;
}

typedef struct create_args {
	const mv_profile *p;
	int64_t credential_id;
	int64_t *id_r;
} create_args;

static int record_credential_use(mv_instance *inst, int64_t id, const char *name, int64_t credential_id,
                                 GError **error)
{
	mv_credential *c = mv_credential_get(inst, credential_id, error);
	if (!c)
		return -1;
	mv_credential_free(c);
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT INTO profile_credentials(profile_id, profile_name, credential_id)"
	                   " VALUES(?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, credential_id);
	return mv_sql_step_done(mv_archive_db(inst), st, "record the profile's credential", error);
}

static int create_txn(mv_instance *inst, void *opaque, GError **error)
{
	create_args *a = opaque;
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "INSERT INTO profiles(name, owner, type, connector, details, created_at, automatic,"
	                   " pause_seconds, maintenance_windows) VALUES(?,?,?,?,?,?,?,?,?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, a->p->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, a->p->owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, a->p->type, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, a->p->connector, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, a->p->details, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)g_get_real_time() / G_USEC_PER_SEC);
	sqlite3_bind_int(st, 7, a->p->automatic);
	sqlite3_bind_int64(st, 8, a->p->pause_seconds);
	sqlite3_bind_text(st, 9, a->p->maintenance_windows ? a->p->maintenance_windows : "", -1, SQLITE_TRANSIENT);
	if (mv_sql_step_done(db, st, "save the profile", error) < 0)
		return -1;
	*a->id_r = sqlite3_last_insert_rowid(db);
	if (a->credential_id && record_credential_use(inst, *a->id_r, a->p->name, a->credential_id, error) < 0)
		return -1;
	return 0;
}

int mv_profile_create(mv_instance *inst, const mv_profile *p, int64_t credential_id, int64_t *id_r, GError **error)
{
	create_args a = { .p = p, .credential_id = credential_id, .id_r = id_r };
	return mv_archive_in_transaction(inst, create_txn, &a, error);
}

mv_profile *mv_profile_get(mv_instance *inst, int64_t id, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " PROFILE_COLUMNS " FROM profiles WHERE id=?", &st, error) < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	mv_profile *p = rc == SQLITE_ROW ? profile_from_row(st) : NULL;
	if (rc == SQLITE_DONE)
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "there is no profile %" G_GINT64_FORMAT, id);
	else if (rc != SQLITE_ROW)
		mv_sql_set_error(error, mv_archive_db(inst), "read a profile");
	sqlite3_finalize(st);
	return p;
}

GPtrArray *mv_profiles_list(mv_instance *inst, const char *owner, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT " PROFILE_COLUMNS " FROM profiles"
	                   " WHERE ?1 IS NULL OR owner=?1 COLLATE NOCASE ORDER BY id", &st, error) < 0)
		return NULL;
	if (owner)
		sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)mv_profile_free);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		g_ptr_array_add(list, profile_from_row(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, mv_archive_db(inst), "list the profiles");
		g_ptr_array_unref(list);
		return NULL;
	}
	return list;
}

static int delete_txn(mv_instance *inst, void *opaque, GError **error)
{
	int64_t id = *(const int64_t *)opaque;
	mv_profile *p = mv_profile_get(inst, id, error);
	if (!p)
		return -1;
	mv_profile_free(p);
	sqlite3 *db = mv_archive_db(inst);
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "DELETE FROM profile_credentials WHERE profile_id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (mv_sql_step_done(db, st, "drop the profile's credential uses", error) < 0)
		return -1;
	if (mv_mailbox_state_forget(inst, id, error) < 0)
		return -1;
	if (mv_sql_prepare(db, "DELETE FROM profiles WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return mv_sql_step_done(db, st, "delete the profile", error);
}

int mv_profile_delete(mv_instance *inst, int64_t id, GError **error)
{
	return mv_archive_in_transaction(inst, delete_txn, &id, error);
}

typedef struct server_side_args {
	int64_t id;
	bool automatic;
	int64_t pause_seconds;
	const char *windows;
} server_side_args;

static int server_side_txn(mv_instance *inst, void *opaque, GError **error)
{
	server_side_args *a = opaque;
	mv_profile *p = mv_profile_get(inst, a->id, error);
	if (!p)
		return -1;
	mv_profile_free(p);
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "UPDATE profiles SET automatic=?, pause_seconds=?, maintenance_windows=?"
	                   " WHERE id=?", &st, error) < 0)
		return -1;
	sqlite3_bind_int(st, 1, a->automatic);
	sqlite3_bind_int64(st, 2, a->pause_seconds);
	sqlite3_bind_text(st, 3, a->windows ? a->windows : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, a->id);
	return mv_sql_step_done(mv_archive_db(inst), st, "change the profile's server-side execution", error);
}

int mv_profile_set_server_side(mv_instance *inst, int64_t id, bool automatic, int64_t pause_seconds,
                               const char *maintenance_windows, GError **error)
{
	server_side_args a = { .id = id, .automatic = automatic, .pause_seconds = pause_seconds,
	                       .windows = maintenance_windows };
	return mv_archive_in_transaction(inst, server_side_txn, &a, error);
}
