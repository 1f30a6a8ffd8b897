/* ingest: batching, parallel parsing and the committer thread.
 *
 * Shape: the caller's thread fills a batch; when it is full the batch's
 * messages go to a thread pool (every core) for parsing and record encoding,
 * and the batch itself straight to the queue of one committer thread, which
 * waits for the batch's parses to finish and then calls mv_store_add_batch.
 * So reading batch k+2, parsing k+1 and committing k overlap, and memory is
 * bounded by three batches whatever the source size.  The committer is the
 * only thread that touches SQLite, so the store needs no locking of its own. */
#include "ingest/ingest.h"

#include <sodium.h>
#include <string.h>

#define BATCH_MESSAGES 512
#define BATCH_BYTES (32u * 1024u * 1024u)
/* The duplicate pre-check's bursts (run_checks). */
#define CHECK_ITEMS 64
#define CHECK_BYTES (4u * 1024u * 1024u)
/* Level 3, zstd's default.  Without a dictionary level 1 compressed almost
 * as well (15.1 against 14.8 MB on the SpamAssassin corpus); with the
 * store's dictionary the levels differ more (content/ 12.0 MB at 1, 11.4 at
 * 3, 10.8 at 5), and 3 costs no measurable time over 1 while 5 costs 12%
 * (bench/RESULTS.md, issue 17). */
#define ZSTD_LEVEL 3
/* A multidrop run may fill thousands of archives: the audit entry names
 * the first ones and says there were more. */
#define MAX_AUDITED_ARCHIVES 20

typedef struct batch batch;

typedef struct item {
	batch *owner;
	GByteArray *data;
	char *archive, *folder, *source, *origin, *mail_flags, *origin_sha256;
	char *envelope_from, *envelope_to;
	int64_t archived_at;
	uint64_t token;      /* the source's, for the committed callback */
	uint8_t hash[MV_HASH_BYTES]; /* of data, taken by the caller's thread */
	mv_parsed *parsed;
	mv_store_item si;    /* filled by the parsing thread */
	mv_store *encoded_for; /* whose key si.prepared was encoded with */
} item;

struct batch {
	GPtrArray *items;  /* of item* */
	size_t bytes;
	GMutex lock;       /* latch: parses still running */
	GCond parsed;
	guint unparsed;
};

/* The reference's limit of messages per store; MV_STORE_MAX_MESSAGE_NUMBER
 * is the format's hard one just above it. */
#define STORE_MESSAGE_LIMIT INT64_C(30000000)

struct mv_ingest {
	mv_instance *inst;
	mv_store *store;          /* written by the committer; parsers read it atomically */
	double lock_wait;         /* mv_ingest_run.lock_wait_seconds, for every store written */
	GPtrArray *retired;       /* stores switched away from, closed at the end */
	bool auto_switch;         /* current store: switch when full */
	int64_t threshold;        /* messages; auto-create threshold or the limit */
	batch *filling;
	GThreadPool *parsers;
	GThread *committer;
	GAsyncQueue *to_commit;   /* batch*, or the sentinel to stop */
	GMutex lock;
	GCond idle;               /* signalled when in_flight drops */
	int in_flight;            /* batches queued or committing */
	GError *fatal;            /* first commit error; stops the ingest */
	mv_ingest_counts counts;
	GPtrArray *refusals;
	GPtrArray *unreadable;    /* mv_refusal*: attachments whose text could not be read */
	char *run_user, *run_remote, *run_source, *outcome;   /* for the audit entry */
	GHashTable *archives;     /* names handed in, at most MAX_AUDITED_ARCHIVES */
	bool more_archives;       /* there were more than that */
	int64_t started_ms, profile_id;   /* for the worker result */
	int64_t run_marker;               /* its row in progress (mv_worker_run_begin) */
	char *profile_name;
	uint64_t skipped;         /* items the source passed over (mv_ingest_note_skipped) */
	mv_store *lookup;         /* the caller's thread's read handle on the current store */
	bool no_lookup;           /* it could not be opened: every message is parsed */
	GPtrArray *checking;      /* items waiting for the duplicate pre-check, in order */
	size_t checking_bytes;
	char *name_raw[2], *name_canon[2];   /* the last archive and folder name as given and in NFC */
	mv_ingest_committed_fn on_committed;   /* set before the first add, then only read */
	void *committed_opaque;
	GPtrArray *warnings;      /* mv_refusal*: mv_ingest_warn, the first MAX_WARNINGS_LISTED */
	int batches;              /* batches the committer took, for the fault hook */
};

#define MAX_WARNINGS_LISTED 1000

static batch stop_sentinel;

static void item_free(item *it)
{
	if (!it)
		return;
	g_byte_array_unref(it->data);
	g_free(it->archive);
	g_free(it->folder);
	g_free(it->source);
	g_free(it->origin);
	g_free(it->origin_sha256);
	g_free(it->envelope_from);
	g_free(it->envelope_to);
	g_free(it->mail_flags);
	mv_parsed_free(it->parsed);
	if (it->si.prepared)
		g_byte_array_unref(it->si.prepared);
	g_free(it);
}

static batch *batch_new(void)
{
	batch *b = g_new0(batch, 1);
	b->items = g_ptr_array_new_with_free_func((GDestroyNotify)item_free);
	g_mutex_init(&b->lock);
	g_cond_init(&b->parsed);
	return b;
}

static void batch_free(batch *b)
{
	if (!b)
		return;
	g_ptr_array_free(b->items, TRUE);
	g_mutex_clear(&b->lock);
	g_cond_clear(&b->parsed);
	g_free(b);
}

static void refusal_free(mv_refusal *r)
{
	g_free(r->origin);
	g_free(r->reason);
	g_free(r);
}

/* ---- committing ------------------------------------------------------------------ */

static void fill_store_item(mv_store_item *si, item *it)
{
	mv_parsed *p = it->parsed;
	*si = (mv_store_item){
		.archive = it->archive, .folder = it->folder, .raw = it->data->data, .raw_len = it->data->len,
		.archived_at = it->archived_at, .source = it->source, .origin = it->origin,
		.origin_sha256 = it->origin_sha256, .envelope_from = it->envelope_from, .envelope_to = it->envelope_to,
		.mail_flags = it->mail_flags, .subject = p->subject, .from = p->from, .from_addrs = p->from_addrs,
		.to = p->to, .to_addrs = p->to_addrs, .cc = p->cc, .cc_addrs = p->cc_addrs, .bcc = p->bcc,
		.bcc_addrs = p->bcc_addrs,
		.message_id = p->message_id, .date = p->date, .date_source = (int)p->date_source,
		.parse_flags = p->flags, .has_attachment = p->has_attachment, .text = p->text->str,
		.attachment_names = p->attachment_names->str,
	};
}

/* After a switch of store, records encoded with the old store's key are
 * dropped and encoded again, under the new store's key, by add_batch. */
static void drop_foreign_records(mv_ingest *ing, batch *b)
{
	for (guint i = 0; i < b->items->len; i++) {
		item *it = b->items->pdata[i];
		if (it->encoded_for != ing->store && it->si.prepared) {
			g_byte_array_unref(it->si.prepared);
			it->si.prepared = NULL;
		}
	}
}

/* The new store, created and opened on an instance of the committer's
 * own: the caller's instance (its SQLite connection, its store caches)
 * belongs to the thread that feeds the ingest, which may be using it now
 * (a TransferStores job reads its source stores through it). */
static mv_store *create_next_store(mv_ingest *ing, GError **error)
{
	mv_instance *own = mv_instance_open(mv_instance_data_dir(ing->inst), error);
	if (!own)
		return NULL;
	int id = 0;
	mv_store *next = NULL;
	if (mv_instance_auto_create_store(own, &id, error) == 0 &&
	    (next = mv_instance_open_store(own, id, MV_STORE_WRITE, error)))
		mv_store_set_lock_wait(next, ing->lock_wait);
	mv_instance_close(&own);
	return next;
}

/* Past the threshold, a new store becomes current and takes the next batch. */
static void maybe_switch_store(mv_ingest *ing)
{
	if (!ing->auto_switch || ing->threshold <= 0 || mv_store_message_count(ing->store) < ing->threshold)
		return;
	GError *err = NULL;
	mv_store *next = NULL;
	if (mv_store_sync(ing->store, &err) < 0 || !(next = create_next_store(ing, &err))) {
		mv_log_warn("store %d is full but a new store could not be created: %s", mv_store_id(ing->store),
		            err->message);
		g_error_free(err);
		return;
	}
	mv_log_info("store %d reached %lld messages: archiving continues in new store %d", mv_store_id(ing->store),
	            (long long)ing->threshold, mv_store_id(next));
	g_ptr_array_add(ing->retired, ing->store);
	g_atomic_pointer_set(&ing->store, next);
}

#define MAX_UNREADABLE_LISTED 1000

/* Called under ing->lock. */
static void note_unreadable(mv_ingest *ing, const item *it)
{
	ing->counts.unreadable_attachments++;
	GPtrArray *errs = it->parsed->extract_errors;
	for (guint i = 0; i < errs->len && ing->unreadable->len < MAX_UNREADABLE_LISTED; i++) {
		mv_refusal *r = g_new0(mv_refusal, 1);
		r->origin = g_strdup(it->origin);
		r->reason = g_strdup(errs->pdata[i]);
		g_ptr_array_add(ing->unreadable, r);
	}
}

static void commit_batch(mv_ingest *ing, batch *b)
{
	size_t n = b->items->len;
	drop_foreign_records(ing, b);
	mv_store_item *items = g_new0(mv_store_item, n);
	for (size_t i = 0; i < n; i++)
		items[i] = ((item *)b->items->pdata[i])->si;
	GError *err = NULL;
	int rc;
	/* Test hook (MAILVAULT_FAULT=fail:ingest-commit:N): the store refuses
	 * the Nth batch, as a full disk or an I/O error would. */
	if (mv_fault_fails("ingest-commit", ++ing->batches)) {
		g_set_error(&err, MV_ERROR, MV_ERR_IO, "store %d: the batch was refused (injected fault)",
		            mv_store_id(ing->store));
		rc = -1;
	} else {
		rc = mv_store_add_batch(ing->store, items, n, ZSTD_LEVEL, &err);
	}
	g_mutex_lock(&ing->lock);
	ing->counts.pending -= n;
	if (rc < 0) {
		if (!ing->fatal)
			ing->fatal = err;
		else
			g_error_free(err);
	} else {
		for (size_t i = 0; i < n; i++) {
			ing->counts.bytes += items[i].raw_len;
			if (items[i].duplicate) {
				ing->counts.duplicates++;
				continue;
			}
			ing->counts.imported++;
			if (items[i].parse_flags & MV_MALFORMED_FLAGS)
				ing->counts.malformed++;
			if (items[i].parse_flags & MV_PARSE_EXTRACT_FAILED)
				note_unreadable(ing, b->items->pdata[i]);
		}
	}
	g_mutex_unlock(&ing->lock);
	g_free(items);
	if (rc < 0)
		return;
	/* Durable now (add_batch committed with synchronous=FULL): the source
	 * may let go of what these messages came from. */
	for (size_t i = 0; ing->on_committed && i < n; i++) {
		const item *it = b->items->pdata[i];
		if (it->token)
			ing->on_committed(ing->committed_opaque, it->token);
	}
	maybe_switch_store(ing);
}

static gpointer committer_main(gpointer data)
{
	mv_ingest *ing = data;
	for (;;) {
		batch *b = g_async_queue_pop(ing->to_commit);
		if (b == &stop_sentinel)
			break;
		g_mutex_lock(&b->lock);
		while (b->unparsed > 0)
			g_cond_wait(&b->parsed, &b->lock);
		g_mutex_unlock(&b->lock);
		g_mutex_lock(&ing->lock);
		bool failed = ing->fatal != NULL;
		g_mutex_unlock(&ing->lock);
		/* After a fatal error nothing more is written: the caller reports
		 * it, and re-running the import picks up where this stopped. */
		if (!failed)
			commit_batch(ing, b);
		else {
			g_mutex_lock(&ing->lock);
			ing->counts.pending -= b->items->len;
			g_mutex_unlock(&ing->lock);
		}
		batch_free(b);
		g_mutex_lock(&ing->lock);
		ing->in_flight--;
		g_cond_broadcast(&ing->idle);
		g_mutex_unlock(&ing->lock);
	}
	return NULL;
}

/* ---- parsing --------------------------------------------------------------------- */

static void parse_one(gpointer data, gpointer user)
{
	item *it = data;
	mv_ingest *ing = user;
	it->parsed = mv_parse_message(it->data->data, it->data->len, it->archived_at);
	fill_store_item(&it->si, it);
	memcpy(it->si.hash, it->hash, MV_HASH_BYTES);
	/* A failed encode is retried under the lock, where its error is reported. */
	it->encoded_for = g_atomic_pointer_get(&ing->store);
	if (mv_store_prepare_item(it->encoded_for, &it->si, ZSTD_LEVEL, NULL) < 0)
		it->si.prepared = NULL;
	mv_pool_task_done();
	batch *b = it->owner;
	g_mutex_lock(&b->lock);
	if (--b->unparsed == 0)
		g_cond_signal(&b->parsed);
	g_mutex_unlock(&b->lock);
}

/* Hands the filling batch to the parsers and the committer, first waiting
 * while two batches are already in flight (memory bound). */
static void submit(mv_ingest *ing)
{
	batch *b = ing->filling;
	if (!b || b->items->len == 0)
		return;
	ing->filling = NULL;
	g_mutex_lock(&ing->lock);
	while (ing->in_flight >= 2 && !ing->fatal)
		g_cond_wait(&ing->idle, &ing->lock);
	ing->in_flight++;
	g_mutex_unlock(&ing->lock);
	b->unparsed = b->items->len;
	GError *push_error = NULL;
	for (guint i = 0; i < b->items->len; i++) {
		if (!g_thread_pool_push(ing->parsers, b->items->pdata[i], &push_error)) {
			/* Items not pushed are parsed here so the latch still drains. */
			for (; i < b->items->len; i++)
				parse_one(b->items->pdata[i], ing);
			g_clear_error(&push_error);
			break;
		}
	}
	g_async_queue_push(ing->to_commit, b);
}

static int check_fatal(mv_ingest *ing, GError **error)
{
	g_mutex_lock(&ing->lock);
	int rc = 0;
	if (ing->fatal) {
		g_propagate_error(error, g_error_copy(ing->fatal));
		rc = -1;
	}
	g_mutex_unlock(&ing->lock);
	return rc;
}

/* ---- public ----------------------------------------------------------------------- */

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "unknown";
}

static json_t *utf8_value(const char *s)
{
	char *valid = g_utf8_make_valid(s, -1);
	json_t *v = json_string(valid);
	g_free(valid);
	return v;
}

static void append_run_entry(mv_instance *inst, const char *user, const char *remote, bool success, json_t *details)
{
	char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(details);
	GError *err = NULL;
	if (!text || mv_audit_append(inst, or_unknown(user), remote && *remote ? remote : "local", "ArchiveRun", success,
	                             text, &err) < 0) {
		mv_log_error("audit log: cannot record an archiving run: %s", err ? err->message : "out of memory");
		g_clear_error(&err);
	}
	free(text);
}

/* A run that never started is still a run the admin reads about in the
 * morning: a failed worker result, beside its audit entry. */
static void record_refused_run(mv_instance *inst, const mv_ingest_run *run, const char *archive, const char *reason)
{
	int64_t now_ms = g_get_real_time() / 1000;
	json_t *report = json_pack("{s:o, s:o, s:o, s:[]}", "source", utf8_value(or_unknown(run->source)), "archives",
	                           archive ? json_pack("[o]", utf8_value(archive)) : json_array(), "error",
	                           utf8_value(or_unknown(reason)), "failures");
	mv_worker_result r = { .profile_id = run->profile_id,
		               .profile_name = run->profile_name ? run->profile_name : or_unknown(run->source),
		               .user = run->user, .start_ms = now_ms, .complete_ms = now_ms, .result = "failed",
		               .report = report };
	GError *err = NULL;
	if (mv_worker_result_add(inst, &r, NULL, &err) < 0) {
		mv_log_warn("the refused run's worker result was not recorded: %s", err->message);
		g_error_free(err);
	}
	json_decref(report);
}

void mv_ingest_audit_refused(mv_instance *inst, const mv_ingest_run *run, const char *archive, const char *reason)
{
	json_t *d = json_pack("{s:o, s:o, s:o}", "source", utf8_value(or_unknown(run->source)), "archive",
	                      archive ? utf8_value(archive) : json_null(), "error", utf8_value(or_unknown(reason)));
	append_run_entry(inst, run->user, run->remote, false, d);
	record_refused_run(inst, run, archive, reason);
}

static json_t *archives_seen(mv_ingest *ing)
{
	json_t *names = json_array();
	GList *keys = g_list_sort(g_hash_table_get_keys(ing->archives), (GCompareFunc)strcmp);
	for (GList *k = keys; k; k = k->next)
		json_array_append_new(names, utf8_value(k->data));
	g_list_free(keys);
	return names;
}

static void audit_run_end(mv_ingest *ing, const GError *failure)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	json_t *d = json_pack("{s:o, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "source",
	                      utf8_value(or_unknown(ing->run_source)), "archives", archives_seen(ing), "moreArchives",
	                      ing->more_archives, "imported", (json_int_t)c.imported, "malformed",
	                      (json_int_t)c.malformed, "duplicates", (json_int_t)c.duplicates, "refused",
	                      (json_int_t)c.refused, "bytes", (json_int_t)c.bytes, "notArchived", (json_int_t)c.pending);
	if (c.warnings)
		json_object_set_new(d, "warnings", json_integer((json_int_t)c.warnings));
	if (ing->outcome)
		json_object_set_new(d, "outcome", utf8_value(ing->outcome));
	if (failure)
		json_object_set_new(d, "error", utf8_value(failure->message));
	append_run_entry(ing->inst, ing->run_user, ing->run_remote, !failure && !ing->outcome, d);
}

/* How the run ended, in MailStore's words: a fatal error failed it, an
 * interruption cancelled it, refused items are errors, and messages
 * archived but malformed, or with an attachment whose text could not be
 * read, are warnings. */
static const char *run_result(const mv_ingest_counts *c, const char *outcome, const GError *failure)
{
	if (failure)
		return "failed";
	if (outcome)
		return "cancelled";
	if (c->refused)
		return "completedWithErrors";
	if (c->malformed || c->unreadable_attachments || c->warnings)
		return "completedWithWarnings";
	return "succeeded";
}

#define REPORT_MAX_ITEMS 1000

static json_t *item_list(const GPtrArray *list)
{
	json_t *out = json_array();
	for (guint i = 0; i < list->len && i < REPORT_MAX_ITEMS; i++) {
		const mv_refusal *r = list->pdata[i];
		json_array_append_new(out, json_pack("{s:o, s:o}", "item", utf8_value(r->origin), "reason",
		                                     utf8_value(r->reason)));
	}
	return out;
}

static void record_worker_result(mv_ingest *ing, const GError *failure)
{
	mv_ingest_counts c;
	mv_ingest_get_counts(ing, &c);
	g_mutex_lock(&ing->lock);   /* the lists are appended to under it */
	json_t *report = json_pack("{s:o, s:o, s:o, s:o, s:I, s:o}", "source", utf8_value(or_unknown(ing->run_source)),
	                           "archives", archives_seen(ing), "failures", item_list(ing->refusals),
	                           "unreadableAttachments", item_list(ing->unreadable), "malformed",
	                           (json_int_t)c.malformed, "warnings", item_list(ing->warnings));
	g_mutex_unlock(&ing->lock);
	if (ing->outcome)
		json_object_set_new(report, "outcome", utf8_value(ing->outcome));
	if (failure)
		json_object_set_new(report, "error", utf8_value(failure->message));
	mv_worker_result r = { .profile_id = ing->profile_id,
		               .profile_name = ing->profile_name ? ing->profile_name : or_unknown(ing->run_source),
		               .user = ing->run_user, .start_ms = ing->started_ms, .complete_ms = g_get_real_time() / 1000,
		               .result = run_result(&c, ing->outcome, failure), .archived = c.imported,
		               .already_archived = c.duplicates, .skipped = ing->skipped, .failed = c.refused,
		               .report = report, .marker = ing->run_marker };
	GError *err = NULL;
	if (mv_worker_result_add(ing->inst, &r, NULL, &err) < 0) {
		mv_log_warn("the run's worker result was not recorded: %s", err->message);
		g_error_free(err);
	}
	json_decref(report);
}

void mv_ingest_note_skipped(mv_ingest *ing, uint64_t n)
{
	ing->skipped += n;
}

void mv_ingest_note_outcome(mv_ingest *ing, const char *outcome)
{
	g_free(ing->outcome);
	ing->outcome = g_strdup(outcome);
}

/* A kill before the run's end leaves this row, which the next server
 * start reports as an interrupted run; without it the run is only logged. */
static void note_run_in_progress(mv_ingest *ing)
{
	json_t *report = json_pack("{s:o}", "source", utf8_value(or_unknown(ing->run_source)));
	mv_worker_result r = { .profile_id = ing->profile_id,
		               .profile_name = ing->profile_name ? ing->profile_name : or_unknown(ing->run_source),
		               .user = ing->run_user, .start_ms = ing->started_ms, .report = report };
	GError *err = NULL;
	if (mv_worker_run_begin(ing->inst, &r, &ing->run_marker, &err) < 0) {
		mv_log_warn("the run in progress was not recorded: %s", err->message);
		g_error_free(err);
	}
	json_decref(report);
}

static mv_ingest *ingest_start(mv_instance *inst, int store_id, bool auto_switch, const mv_ingest_run *run,
                               GError **error)
{
	mv_mime_init();
	mv_store *store = mv_instance_open_store(inst, store_id, MV_STORE_WRITE, error);
	if (!store)
		return NULL;
	mv_ingest *ing = g_new0(mv_ingest, 1);
	ing->inst = inst;
	ing->store = store;
	ing->lock_wait = run->lock_wait_seconds;
	mv_store_set_lock_wait(store, ing->lock_wait);
	ing->retired = g_ptr_array_new();
	ing->run_user = g_strdup(run->user);
	ing->run_remote = g_strdup(run->remote);
	ing->run_source = g_strdup(run->source);
	ing->profile_id = run->profile_id;
	ing->profile_name = g_strdup(run->profile_name);
	ing->started_ms = g_get_real_time() / 1000;
	note_run_in_progress(ing);
	ing->archives = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	ing->checking = g_ptr_array_new();
	ing->auto_switch = auto_switch;
	ing->threshold = STORE_MESSAGE_LIMIT;
	mv_autocreate_config ac = { 0 };
	GError *err = NULL;
	if (auto_switch && mv_instance_get_autocreate(inst, &ac, &err) == 0 && ac.size_threshold > 0)
		ing->threshold = MIN(ac.size_threshold, STORE_MESSAGE_LIMIT);
	g_clear_error(&err);
	mv_autocreate_config_clear(&ac);
	ing->refusals = g_ptr_array_new_with_free_func((GDestroyNotify)refusal_free);
	ing->unreadable = g_ptr_array_new_with_free_func((GDestroyNotify)refusal_free);
	ing->warnings = g_ptr_array_new_with_free_func((GDestroyNotify)refusal_free);
	ing->to_commit = g_async_queue_new();
	g_mutex_init(&ing->lock);
	g_cond_init(&ing->idle);
	int threads = (int)g_get_num_processors();
	ing->parsers = g_thread_pool_new(parse_one, ing, threads > 0 ? threads : 1, FALSE, NULL);
	ing->committer = g_thread_new("committer", committer_main, ing);
	return ing;
}

mv_ingest *mv_ingest_begin(mv_instance *inst, const mv_ingest_run *run, GError **error)
{
	int store_id = 0;
	if (mv_instance_current_store(inst, &store_id, error) < 0) {
		mv_ingest_audit_refused(inst, run, NULL, (*error)->message);
		return NULL;
	}
	mv_ingest *ing = ingest_start(inst, store_id, true, run, error);
	if (!ing)
		mv_ingest_audit_refused(inst, run, NULL, (*error)->message);
	return ing;
}

mv_ingest *mv_ingest_begin_to(mv_instance *inst, int store_id, const mv_ingest_run *run, GError **error)
{
	mv_ingest *ing = NULL;
	if (mv_instance_require_modifiable(inst, store_id, error) == 0)
		ing = ingest_start(inst, store_id, false, run, error);
	if (!ing)
		mv_ingest_audit_refused(inst, run, NULL, (*error)->message);
	return ing;
}

int mv_ingest_store_id(mv_ingest *ing)
{
	return mv_store_id(g_atomic_pointer_get(&ing->store));
}

/* The read handle on the store batches go to now (it changes when a full
 * store makes way for a new one), on the caller's thread and instance. */
static mv_store *lookup_store(mv_ingest *ing)
{
	if (ing->no_lookup)
		return NULL;
	int current = mv_store_id(g_atomic_pointer_get(&ing->store));
	if (ing->lookup && mv_store_id(ing->lookup) == current)
		return ing->lookup;
	mv_store_close(&ing->lookup);
	GError *err = NULL;
	ing->lookup = mv_instance_open_store(ing->inst, current, MV_STORE_READ, &err);
	if (!ing->lookup) {
		mv_log_debug("store %d: no read handle for the duplicate pre-check, every message is parsed: %s", current,
		             err->message);
		g_error_free(err);
		ing->no_lookup = true;
	}
	return ing->lookup;
}

/* A message its folder already holds is a duplicate before it is parsed:
 * running an import or a profile again over the same files costs a hash
 * and an index lookup per message, not a parse.  Only committed messages
 * are seen; one still in flight is caught by the store's own check.  The
 * lookups go in bursts of up to CHECK_ITEMS inside one read transaction:
 * one per message cost a lock and an unlock of the WAL index each (13% of
 * a re-run, bench/RESULTS), and a burst holds no snapshot open while the
 * source is slow to give the next message. */
static bool archived_before(mv_ingest *ing, mv_store *s, const item *it)
{
	bool has = false;
	GError *err = NULL;
	if (mv_store_folder_has_content(s, it->archive, it->folder, it->hash, &has, &err) == 0)
		return has;
	mv_log_debug("duplicate pre-check: %s", err->message);
	g_error_free(err);
	return false;
}

static void count_duplicate(mv_ingest *ing, size_t len)
{
	g_mutex_lock(&ing->lock);
	ing->counts.duplicates++;
	ing->counts.bytes += len;
	g_mutex_unlock(&ing->lock);
}

/* One spelling per name (NFC), whatever the source wrote.  A source hands
 * in message after message for the same archive and folder: the last one
 * of each is remembered, not normalised again per message. */
static char *canonical_name(mv_ingest *ing, int which, const char *raw)
{
	if (!ing->name_raw[which] || strcmp(ing->name_raw[which], raw) != 0) {
		g_free(ing->name_raw[which]);
		g_free(ing->name_canon[which]);
		ing->name_raw[which] = g_strdup(raw);
		ing->name_canon[which] = mv_name_canonical(raw);
	}
	return g_strdup(ing->name_canon[which]);
}

static item *item_new(mv_ingest *ing, const mv_ingest_message *msg)
{
	item *it = g_new0(item, 1);
	if (msg->shared && msg->shared->data == msg->data && msg->shared->len == msg->len) {
		it->data = g_byte_array_ref(msg->shared);
	} else {
		it->data = g_byte_array_sized_new((guint)msg->len);
		g_byte_array_append(it->data, msg->data, (guint)msg->len);
	}
	crypto_generichash(it->hash, MV_HASH_BYTES, it->data->data, it->data->len, NULL, 0);
	it->archive = canonical_name(ing, 0, msg->archive);
	it->folder = canonical_name(ing, 1, msg->folder ? msg->folder : "");
	it->source = g_strdup(msg->source ? msg->source : "");
	it->origin = g_strdup(msg->origin ? msg->origin : "");
	it->mail_flags = g_strdup(msg->mail_flags ? msg->mail_flags : "");
	it->origin_sha256 = g_strdup(msg->origin_sha256);
	/* Valid UTF-8, or the record's JSON could not hold what the db and
	 * the index get (an SMTPUTF8 address is octets until checked). */
	it->envelope_from = msg->envelope_from ? g_utf8_make_valid(msg->envelope_from, -1) : NULL;
	it->envelope_to = msg->envelope_to ? g_utf8_make_valid(msg->envelope_to, -1) : NULL;
	it->archived_at = msg->archived_at > 0 ? msg->archived_at : mv_now();
	it->token = msg->token;
	return it;
}

static void note_archive(mv_ingest *ing, const char *archive)
{
	if (g_hash_table_contains(ing->archives, archive))
		return;
	if (g_hash_table_size(ing->archives) < MAX_AUDITED_ARCHIVES)
		g_hash_table_add(ing->archives, g_strdup(archive));
	else
		ing->more_archives = true;
}

/* An item that is new to the store goes into the filling batch. */
static void enqueue(mv_ingest *ing, item *it)
{
	if (!ing->filling)
		ing->filling = batch_new();
	it->owner = ing->filling;
	g_ptr_array_add(ing->filling->items, it);
	ing->filling->bytes += it->data->len;
	g_mutex_lock(&ing->lock);
	ing->counts.pending++;
	g_mutex_unlock(&ing->lock);
	if (ing->filling->items->len >= BATCH_MESSAGES || ing->filling->bytes >= BATCH_BYTES)
		submit(ing);
}

/* The pre-check of the items waiting for it, in one read transaction;
 * the new ones go on in their order. */
static void run_checks(mv_ingest *ing)
{
	if (ing->checking->len == 0)
		return;
	mv_store *s = lookup_store(ing);
	bool held = s && mv_store_read_hold(s) == 0;
	for (guint i = 0; i < ing->checking->len; i++) {
		item *it = ing->checking->pdata[i];
		if (s && archived_before(ing, s, it)) {
			count_duplicate(ing, it->data->len);
			if (ing->on_committed && it->token)
				ing->on_committed(ing->committed_opaque, it->token);
			item_free(it);
		} else {
			enqueue(ing, it);
		}
	}
	if (held)
		mv_store_read_release(s);
	g_ptr_array_set_size(ing->checking, 0);
	ing->checking_bytes = 0;
}

int mv_ingest_add(mv_ingest *ing, const mv_ingest_message *msg, GError **error)
{
	if (check_fatal(ing, error) < 0)
		return -1;
	if (msg->len > MV_MAX_MESSAGE_SIZE) {
		char *why = g_strdup_printf("message of %zu bytes exceeds the limit of %u bytes", msg->len, MV_MAX_MESSAGE_SIZE);
		mv_ingest_refuse(ing, msg->origin, why);
		g_free(why);
		return 0;
	}
	if (!mv_archive_name_ok(msg->archive)) {
		GError *bad = NULL;
		mv_archive_name_check(msg->archive, &bad);
		mv_ingest_refuse(ing, msg->origin, bad->message);
		g_error_free(bad);
		return 0;
	}
	item *it = item_new(ing, msg);
	note_archive(ing, it->archive);
	g_ptr_array_add(ing->checking, it);
	ing->checking_bytes += msg->len;
	if (ing->checking->len >= CHECK_ITEMS || ing->checking_bytes >= CHECK_BYTES)
		run_checks(ing);
	return 0;
}

void mv_ingest_refuse(mv_ingest *ing, const char *origin, const char *reason)
{
	mv_refusal *r = g_new0(mv_refusal, 1);
	r->origin = g_strdup(origin ? origin : "");
	/* Readers' errors name the item too, for callers that show only the
	 * error: a refusal names it once. */
	size_t n = strlen(r->origin);
	if (reason && n && strncmp(reason, r->origin, n) == 0 && strncmp(reason + n, ": ", 2) == 0)
		reason += n + 2;
	r->reason = g_strdup(reason && *reason ? reason : "unknown reason");
	g_mutex_lock(&ing->lock);
	ing->counts.refused++;
	g_ptr_array_add(ing->refusals, r);
	g_mutex_unlock(&ing->lock);
}

void mv_ingest_on_committed(mv_ingest *ing, mv_ingest_committed_fn fn, void *opaque)
{
	ing->on_committed = fn;
	ing->committed_opaque = opaque;
}

void mv_ingest_warn(mv_ingest *ing, const char *what, const char *reason)
{
	g_mutex_lock(&ing->lock);
	ing->counts.warnings++;
	if (ing->warnings->len < MAX_WARNINGS_LISTED) {
		mv_refusal *r = g_new0(mv_refusal, 1);
		r->origin = g_strdup(what ? what : "");
		r->reason = g_strdup(reason && *reason ? reason : "unknown reason");
		g_ptr_array_add(ing->warnings, r);
	}
	g_mutex_unlock(&ing->lock);
}

const GPtrArray *mv_ingest_warnings(mv_ingest *ing)
{
	return ing->warnings;
}

int mv_ingest_flush(mv_ingest *ing, GError **error)
{
	run_checks(ing);
	submit(ing);
	g_mutex_lock(&ing->lock);
	while (ing->in_flight > 0)
		g_cond_wait(&ing->idle, &ing->lock);
	g_mutex_unlock(&ing->lock);
	if (check_fatal(ing, error) < 0)
		return -1;
	/* The committer is idle: this thread may use the store.  Committing the
	 * index makes the batches searchable and lets other writers in. */
	GError *sync_err = NULL;
	if (mv_store_sync(ing->store, &sync_err) < 0) {
		mv_log_warn("%s", sync_err->message);
		g_error_free(sync_err);
	}
	return 0;
}

void mv_ingest_get_counts(mv_ingest *ing, mv_ingest_counts *c)
{
	g_mutex_lock(&ing->lock);
	*c = ing->counts;
	g_mutex_unlock(&ing->lock);
}

const GPtrArray *mv_ingest_refusals(mv_ingest *ing)
{
	return ing->refusals;
}

const GPtrArray *mv_ingest_unreadable_attachments(mv_ingest *ing)
{
	return ing->unreadable;
}

int mv_ingest_end(mv_ingest **ip, GError **error)
{
	mv_ingest *ing = *ip;
	if (!ing)
		return 0;
	*ip = NULL;
	GError *flush_err = NULL;
	int rc = mv_ingest_flush(ing, &flush_err);
	audit_run_end(ing, flush_err);
	record_worker_result(ing, flush_err);
	if (flush_err)
		g_propagate_error(error, flush_err);
	g_async_queue_push(ing->to_commit, &stop_sentinel);
	g_thread_join(ing->committer);
	g_thread_pool_free(ing->parsers, FALSE, TRUE);
	g_async_queue_unref(ing->to_commit);
	batch_free(ing->filling);
	g_ptr_array_free(ing->checking, TRUE);
	for (int i = 0; i < 2; i++) {
		g_free(ing->name_raw[i]);
		g_free(ing->name_canon[i]);
	}
	mv_store_close(&ing->lookup);
	mv_store_close(&ing->store);
	for (guint i = 0; i < ing->retired->len; i++) {
		mv_store *old = ing->retired->pdata[i];
		mv_store_close(&old);
	}
	g_ptr_array_free(ing->retired, TRUE);
	if (ing->fatal)
		g_error_free(ing->fatal);
	g_ptr_array_free(ing->refusals, TRUE);
	g_ptr_array_free(ing->unreadable, TRUE);
	g_ptr_array_free(ing->warnings, TRUE);
	g_hash_table_destroy(ing->archives);
	g_free(ing->run_user);
	g_free(ing->run_remote);
	g_free(ing->run_source);
	g_free(ing->profile_name);
	g_free(ing->outcome);
	g_mutex_clear(&ing->lock);
	g_cond_clear(&ing->idle);
	g_free(ing);
	return rc;
}
