/* export/export: ExportMessages, the one registry function every way of
 * exporting goes through (`mailvault export`, the shell, the HTTP API, and
 * later export profiles and jobs).
 *
 * It resolves the scope — an archive, a folder with its subfolders, a
 * query of src/search, a date range — store by store, one message at a time
 * (never the whole scope in memory: the SQL walk holds one row, a query
 * holds its hits' ids), checks each message's folder against the caller's
 * read privilege, and hands the bytes to one target (internal.h).  Who may
 * call: administrators, and users with the export privilege for what they
 * may read; folders they cannot read are silently out of scope, deleted
 * messages are never exported.
 *
 * A signed export writes an audit entry with the signing key's SHA-256, so
 * that whoever receives the export can tell the key is this instance's. */
#include "export/internal.h"
#include "search/search.h"

#include <errno.h>
#include <string.h>

#define PROGRESS_EVERY 100

typedef struct export_run {
	mv_command_ctx *ctx;
	const char *archive, *folder, *query;
	int64_t since, before;     /* Unix seconds; 0 = open */
	export_target *target;
	GHashTable *readable;      /* "archive\nfolder" -> GINT_TO_POINTER(1 readable, 2 not) */
	int64_t total, exported, failed;
	int64_t unindexed;         /* by query: messages in scope the index did not hold yet (search.h) */
} export_run;

/* ---- who may export ------------------------------------------------------------------- */

static int check_privilege(mv_command_ctx *ctx, GError **error)
{
	if (!ctx->access || mv_access_unrestricted(ctx->access))
		return 0;
	mv_user *u = mv_user_get(ctx->inst, mv_access_user(ctx->access), error);
	if (!u)
		return -1;
	bool ok = (u->privileges & (MV_PRIV_ADMIN | MV_PRIV_EXPORT)) != 0;
	mv_user_free(u);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED, "ExportMessages: user '%s' lacks the export privilege",
	            mv_access_user(ctx->access));
	return -1;
}

static bool readable(export_run *r, const char *archive, const char *folder)
{
	if (!r->ctx->access)
		return true;
	char *key = g_strconcat(archive, "\n", folder, NULL);
	int v = GPOINTER_TO_INT(g_hash_table_lookup(r->readable, key));
	if (!v) {
		v = (mv_access_folder(r->ctx->access, archive, folder) & MV_FOLDER_READ) ? 1 : 2;
		g_hash_table_insert(r->readable, key, GINT_TO_POINTER(v));
	} else {
		g_free(key);
	}
	return v == 1;
}

/* folder equals the scope's folder or lies below it (case-insensitively,
 * as folder privileges compare). */
static bool in_folder_scope(const export_run *r, const char *folder)
{
	if (!r->folder || !*r->folder)
		return true;
	size_t n = strlen(r->folder);
	return g_ascii_strncasecmp(folder, r->folder, n) == 0 && (folder[n] == '\0' || folder[n] == '/');
}

/* ---- one message ---------------------------------------------------------------------- */

static void report_progress(export_run *r)
{
	int64_t done = r->exported + r->failed;
	if (done % PROGRESS_EVERY == 0)
		mv_command_progress(r->ctx, r->total > 0 ? (int)MIN(99, done * 100 / r->total) : -1,
		                    "%lld of %lld messages exported", (long long)r->exported, (long long)r->total);
}

/* Reads and hands on one message; a message that cannot be read is named
 * in logOutput and counted, the export goes on; a target that fails stops it. */
static int export_one(export_run *r, mv_store *s, int64_t num, const mv_store_message *m, GError **error)
{
	char *id = mv_message_id_format(mv_store_id(s), num);
	GByteArray *raw = NULL;
	GError *err = NULL;
	int rc = 0;
	if (mv_store_read_message(s, num, &raw, &err) < 0) {
		mv_command_log(r->ctx, "message %s not exported: %s", id, err->message);
		g_error_free(err);
		r->failed++;
	} else {
		export_item it = { .id = id, .archive = m->archive, .folder = m->path, .date = m->date,
			           .archived_at = m->archived_at, .mail_flags = m->mail_flags ? m->mail_flags : "",
			           .raw = raw->data, .len = raw->len };
		rc = r->target->ops->put(r->target, &it, error);
		if (rc < 0)
			g_prefix_error(error, "message %s: ", id);
		else
			r->exported++;
		g_byte_array_unref(raw);
	}
	g_free(id);
	report_progress(r);
	return rc;
}

static int cancelled(export_run *r, GError **error)
{
	if (!mv_command_cancelled(r->ctx))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "export cancelled after %lld messages", (long long)r->exported);
	return -1;
}

/* ---- scope without a query: SQL over each store ------------------------------------------- */

static char *scope_sql(const export_run *r, bool count)
{
	GString *sql = g_string_new(count ? "SELECT count(*)" : "SELECT m.num, f.archive, f.path, m.date, m.archived_at,"
	                                                        " m.mail_flags");
	/* Folder by folder: messages_folder_date gives each folder's date range,
	 * and the sort is only within a folder (there is no index on the date
	 * alone, and the whole store sorted by folder would be a temp b-tree). */
	g_string_append(sql, " FROM folders f CROSS JOIN messages m ON f.id = m.folder_id WHERE m.deleted = 0");
	if (r->archive)
		g_string_append(sql, " AND f.archive = ?1");
	if (r->folder && *r->folder)
		g_string_append(sql, " AND (lower(f.path) = lower(?2) OR substr(lower(f.path), 1, length(?2) + 1) = lower(?2) || '/')");
	if (r->since)
		g_string_append(sql, " AND m.date >= ?3");
	if (r->before)
		g_string_append(sql, " AND m.date < ?4");
	if (!count)
		g_string_append(sql, " ORDER BY f.archive, f.path, m.num");
	return g_string_free(sql, FALSE);
}

static sqlite3_stmt *prepare_scope(export_run *r, mv_store *s, bool count, GError **error)
{
	char *sql = scope_sql(r, count);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(mv_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, mv_store_db(s), "select messages to export");
		st = NULL;
	}
	g_free(sql);
	if (!st)
		return NULL;
	if (r->archive)
		sqlite3_bind_text(st, 1, r->archive, -1, SQLITE_STATIC);
	if (r->folder && *r->folder)
		sqlite3_bind_text(st, 2, r->folder, -1, SQLITE_STATIC);
	if (r->since)
		sqlite3_bind_int64(st, 3, r->since);
	if (r->before)
		sqlite3_bind_int64(st, 4, r->before);
	return st;
}

static int walk_store(export_run *r, mv_store *s, GError **error)
{
	sqlite3_stmt *st = prepare_scope(r, s, false, error);
	if (!st)
		return -1;
	int rc = 0, step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		mv_store_message m = { .archive = (char *)sqlite3_column_text(st, 1), .path = (char *)sqlite3_column_text(st, 2),
			               .date = sqlite3_column_int64(st, 3), .archived_at = sqlite3_column_int64(st, 4),
			               .mail_flags = (char *)sqlite3_column_text(st, 5) };
		if (!readable(r, m.archive, m.path))
			continue;
		rc = cancelled(r, error);
		if (rc == 0)
			rc = export_one(r, s, sqlite3_column_int64(st, 0), &m, error);
	}
	if (rc == 0 && step != SQLITE_DONE) {
		mv_sql_set_error(error, mv_store_db(s), "select messages to export");
		rc = -1;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The stores a scope reads: every one that can be opened and is not disabled. */
static GPtrArray *readable_stores(export_run *r, GError **error)
{
	GPtrArray *infos = mv_instance_stores(r->ctx->inst, error);
	if (!infos)
		return NULL;
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_archive_store_free);
	for (guint i = 0; i < infos->len; i++) {
		mv_archive_store *info = infos->pdata[i];
		if (info->error || info->locked || strcmp(info->state, "disabled") == 0) {
			mv_command_log(r->ctx, "store %d (%s) left out: %s", info->id, info->name,
			               info->error ? info->error : info->locked ? "locked" : "disabled");
			mv_archive_store_free(info);
		} else {
			g_ptr_array_add(out, info);
		}
		infos->pdata[i] = NULL;
	}
	g_ptr_array_unref(infos);
	return out;
}

static int export_by_sql(export_run *r, GError **error)
{
	GPtrArray *stores = readable_stores(r, error);
	if (!stores)
		return -1;
	GPtrArray *open = g_ptr_array_new();
	int rc = 0;
	for (guint i = 0; i < stores->len && rc == 0; i++) {
		mv_archive_store *info = stores->pdata[i];
		mv_store *s = mv_instance_open_store(r->ctx->inst, info->id, MV_STORE_READ, error);
		sqlite3_stmt *st = s ? prepare_scope(r, s, true, error) : NULL;
		if (st && sqlite3_step(st) == SQLITE_ROW)
			r->total += sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		rc = st ? 0 : -1;
		if (s)
			g_ptr_array_add(open, s);
	}
	for (guint i = 0; i < open->len && rc == 0; i++)
		rc = walk_store(r, open->pdata[i], error);
	for (guint i = 0; i < open->len; i++) {
		mv_store *s = open->pdata[i];
		mv_store_close(&s);
	}
	g_ptr_array_unref(open);
	g_ptr_array_unref(stores);
	return rc;
}

/* ---- scope with a query: the search's hits ------------------------------------------------ */

static gint hit_order(gconstpointer a, gconstpointer b)
{
	const mv_search_hit *x = *(mv_search_hit *const *)a, *y = *(mv_search_hit *const *)b;
	if (x->store_id != y->store_id)
		return x->store_id < y->store_id ? -1 : 1;
	int c = strcmp(x->archive ? x->archive : "", y->archive ? y->archive : "");
	if (c == 0)
		c = strcmp(x->folder ? x->folder : "", y->folder ? y->folder : "");
	if (c != 0)
		return c;
	return x->number < y->number ? -1 : x->number > y->number;
}

static int export_hit(export_run *r, mv_searcher *sr, const mv_search_hit *h, GError **error)
{
	mv_store *s = mv_searcher_store(sr, h->store_id);
	mv_store_message m = { 0 };
	GError *err = NULL;
	if (!s || mv_store_message_get(s, h->number, &m, &err) < 0) {
		g_clear_error(&err); /* deleted since the search: out of scope */
		return 0;
	}
	int rc = 0;
	bool in_scope = in_folder_scope(r, m.path) && (!r->since || m.date >= r->since) &&
	                (!r->before || m.date < r->before) && readable(r, m.archive, m.path);
	if (in_scope && (rc = cancelled(r, error)) == 0)
		rc = export_one(r, s, h->number, &m, error);
	mv_store_message_clear(&m);
	return rc;
}

static int export_by_query(export_run *r, GError **error)
{
	if (export_index_everything(r->ctx, error) < 0)
		return -1;
	mv_searcher *sr = mv_searcher_open(r->ctx->inst, error);
	if (!sr)
		return -1;
	mv_search_coverage coverage;
	mv_search_options opts = { .archive = r->archive, .limit = 0, .sort = MV_SORT_DATE, .access = r->ctx->access,
		                   .coverage = &coverage };
	GPtrArray *hits = NULL;
	int rc = mv_searcher_run(sr, r->query, &opts, &hits, error);
	/* What the index still lacks (a store that could not be brought up,
	 * or mail archived since): the caller is told, in its log, before the
	 * messages go. */
	char *note = rc == 0 ? mv_search_coverage_note(&coverage) : NULL;
	if (note)
		mv_command_log(r->ctx, "%s", note);
	g_free(note);
	if (rc == 0)
		r->unindexed = coverage.unindexed;
	if (rc == 0) {
		g_ptr_array_sort(hits, hit_order);
		r->total = hits->len;
		for (guint i = 0; i < hits->len && rc == 0; i++)
			rc = export_hit(r, sr, hits->pdata[i], error);
		g_ptr_array_unref(hits);
	}
	mv_searcher_close(&sr);
	return rc;
}

/* ---- the target -------------------------------------------------------------------------- */

/* Where a directory target writes.  Administrators name any directory
 * outside the data directory.  Other users (the export privilege) run
 * this on the server, as the server's user: they get a directory of their
 * own, <data>/exports/<user>/, and name a relative path below it, so the
 * privilege to export never becomes a privilege to write anywhere. */
static char *target_directory(mv_command_ctx *ctx, const char *dir, GError **error)
{
	if (!dir || !*dir) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: argument 'directory' is needed for this target");
		return NULL;
	}
	char *cwd = g_get_current_dir();
	char *data = g_canonicalize_filename(mv_instance_data_dir(ctx->inst), cwd);
	char *out = NULL;
	if (ctx->access && !mv_access_unrestricted(ctx->access)) {
		gchar **parts = g_strsplit(dir, "/", -1);
		bool ok = !g_path_is_absolute(dir);
		for (gchar **p = parts; ok && *p; p++)
			ok = strcmp(*p, "..") != 0;
		g_strfreev(parts);
		if (ok) {
			char *own = mv_export_safe_name(mv_access_user(ctx->access));
			out = g_build_filename(data, "exports", own, dir, NULL);
			g_free(own);
			char *parent = g_path_get_dirname(out);
			if (g_mkdir_with_parents(parent, 0700) < 0) {
				mv_set_errno_error(error, errno, "creating", parent);
				g_clear_pointer(&out, g_free);
			}
			g_free(parent);
		} else {
			g_set_error(error, MV_ERROR, MV_ERR_DENIED,
			            "ExportMessages: directory '%s': users other than administrators name a relative path "
			            "below their own export directory (<data>/exports/<user>/)",
			            dir);
		}
	} else {
		out = g_canonicalize_filename(dir, cwd);
		size_t n = strlen(data);
		if (strncmp(out, data, n) == 0 && (out[n] == '/' || out[n] == '\0')) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: %s is inside the data directory", dir);
			g_clear_pointer(&out, g_free);
		}
	}
	g_free(cwd);
	g_free(data);
	return out;
}

static export_server server_of(json_t *args)
{
	return (export_server){
		.url = mv_arg_string(args, "url"), .user = mv_arg_string(args, "user"),
		.password = mv_arg_string(args, "password"), .tls = mv_arg_string(args, "tls"),
		.ca_file = mv_arg_string(args, "caFile"), .verify_certificate = mv_arg_bool(args, "verifyCertificate", true),
		.target_folder = mv_arg_string(args, "targetFolder"), .from = mv_arg_string(args, "from"),
		.recipient = mv_arg_string(args, "recipient"),
	};
}

static export_target *open_target(mv_command_ctx *ctx, json_t *args, mv_export_signer *signer, GError **error)
{
	const char *kind = mv_arg_string(args, "target");
	const char *dir = mv_arg_string(args, "directory");
	export_server srv = server_of(args);
	if (strcmp(kind, "eml") == 0 || strcmp(kind, "mbox") == 0) {
		char *where = target_directory(ctx, dir, error);
		if (!where)
			return NULL;
		export_target *t = strcmp(kind, "eml") == 0
		                           ? export_eml_open(where, mv_arg_bool(args, "mailStoreHeaders", true), signer, error)
		                           : export_mbox_open(where, signer, error);
		g_free(where);
		return t;
	}
	if (!srv.url) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: argument 'url' is needed for target %s", kind);
		return NULL;
	}
	return strcmp(kind, "imap") == 0 ? export_imap_open(&srv, error) : export_smtp_open(&srv, error);
}

static int parse_scope(export_run *r, json_t *args, GError **error)
{
	r->archive = mv_arg_string(args, "archive");
	r->folder = mv_arg_string(args, "folder");
	r->query = mv_arg_string(args, "query");
	if (r->query && !*r->query)
		r->query = NULL;
	const char *since = mv_arg_string(args, "since"), *before = mv_arg_string(args, "before");
	int64_t ms = 0;
	if (since && *since) {
		if (mv_audit_parse_time("since", since, &ms, error) < 0)
			return -1;
		r->since = ms / 1000;
	}
	if (before && *before) {
		if (mv_audit_parse_time("before", before, &ms, error) < 0)
			return -1;
		r->before = ms / 1000;
	}
	return 0;
}

/* The signing key's fingerprint into the tamper-evident log. */
static void audit_signature(mv_command_ctx *ctx, json_t *summary)
{
	char *details = json_dumps(summary, JSON_COMPACT | JSON_SORT_KEYS);
	GError *err = NULL;
	if (mv_audit_append(ctx->inst, ctx->user ? ctx->user : "", ctx->remote ? ctx->remote : "local", "MessageExportSigned",
	                    true, details, &err) < 0) {
		mv_command_log(ctx, "audit log: cannot record the signed export: %s", err->message);
		g_error_free(err);
	}
	free(details);
}

static json_t *run_export(export_run *r, json_t *args, GError **error)
{
	bool sign = mv_arg_bool(args, "sign", false);
	const char *kind = mv_arg_string(args, "target");
	if (sign && strcmp(kind, "eml") != 0 && strcmp(kind, "mbox") != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: only eml and mbox exports can be signed");
		return NULL;
	}
	mv_export_signer *signer = sign ? mv_export_signer_for_instance(r->ctx->inst, error) : NULL;
	if (sign && !signer)
		return NULL;
	r->target = open_target(r->ctx, args, signer, error);
	json_t *summary = NULL, *result = NULL;
	int rc = r->target ? (r->query ? export_by_query(r, error) : export_by_sql(r, error)) : -1;
	/* Even a stopped export is finished: what was written is then listed
	 * in its MANIFEST and can be checked. */
	GError *fin_err = NULL;
	if (r->target && r->target->ops->finish(r->target, &summary, rc == 0 ? error : &fin_err) < 0)
		rc = -1;
	g_clear_error(&fin_err);
	if (rc == 0) {
		/* messagesNotInIndex: what a script checks to know an export by
		 * query was whole (0), beside the log line a person reads. */
		result = json_pack("{s:s, s:I, s:I, s:I, s:I}", "target", kind, "messagesExported", (json_int_t)r->exported,
		                   "messagesFailed", (json_int_t)r->failed, "messagesInScope", (json_int_t)r->total,
		                   "messagesNotInIndex", (json_int_t)r->unindexed);
		json_object_update(result, summary);
		if (signer)
			audit_signature(r->ctx, result);
		mv_command_progress(r->ctx, 100, "%lld messages exported", (long long)r->exported);
	}
	json_decref(summary);
	export_target_free(r->target);
	mv_export_signer_free(&signer);
	return result;
}

static json_t *export_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	export_run r = { .ctx = ctx };
	if (check_privilege(ctx, error) < 0 || parse_scope(&r, args, error) < 0)
		return NULL;
	r.readable = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	json_t *result = run_export(&r, args, error);
	g_hash_table_destroy(r.readable);
	return result;
}

static const char *const targets[] = { "eml", "mbox", "imap", "smtp", NULL };
static const char *const tls_modes[] = { "required", "try", "none", NULL };

static const mv_command_arg args_export[] = {
	{ "target", MV_ARG_STRING, false, targets },
	{ "directory", MV_ARG_STRING, true, NULL },
	{ "archive", MV_ARG_STRING, true, NULL },
	{ "folder", MV_ARG_STRING, true, NULL },
	{ "query", MV_ARG_STRING, true, NULL },
	{ "since", MV_ARG_STRING, true, NULL },
	{ "before", MV_ARG_STRING, true, NULL },
	{ "mailStoreHeaders", MV_ARG_BOOL, true, NULL },
	{ "sign", MV_ARG_BOOL, true, NULL },
	{ "url", MV_ARG_STRING, true, NULL },
	{ "user", MV_ARG_STRING, true, NULL },
	{ "password", MV_ARG_STRING, true, NULL },
	{ "tls", MV_ARG_STRING, true, tls_modes },
	{ "caFile", MV_ARG_STRING, true, NULL },
	{ "verifyCertificate", MV_ARG_BOOL, true, NULL },
	{ "targetFolder", MV_ARG_STRING, true, NULL },
	{ "from", MV_ARG_STRING, true, NULL },
	{ "recipient", MV_ARG_STRING, true, NULL },
	{ .name = NULL },
};

const mv_command mv_commands_export[] = {
	{ "ExportMessages", args_export, "login", true, export_messages,
	  "export messages (an archive, a folder, a query, a date range) to EML files, mbox files, an IMAP mailbox or an"
	  " SMTP recipient; administrators, or users with the export privilege for what they may read", NULL },
	{ .name = NULL },
};
