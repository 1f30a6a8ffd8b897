/* smtpd/delivery: the thread between the SMTP sessions and the archive.
 *
 * Sessions hand finished messages to a queue; this thread takes whatever
 * is queued, routes each message (sources/routing, the same as multidrop
 * mailboxes), hands every target to the one ingest, and flushes: one fsync
 * of the segment and one commit for the whole group, however many sessions
 * it came from.  Only then is each message answered: 250 when every one of
 * its targets is durably in its archive (new or already there), 4xx when
 * the store could not take it (the client keeps it and retries; the
 * content hash makes a retry after a lost 250 a reference, not a copy),
 * 5xx when ingest refused the message itself.  Ingest is not shared
 * between threads, so this thread is its only caller.
 *
 * An ingest run lasts an hour (or until the store fails it), so the
 * worker results and the audit log get one entry per hour of SMTP mail,
 * not one per message. */
#include "smtpd/delivery.h"
#include "ingest/ingest.h"
#include "mime/mime.h"
#include <string.h>

#define RUN_SECONDS 3600           /* one ingest run, one worker result */
#define ROUTING_REFRESH_SECONDS 2  /* a new user's address counts this soon */
#define BATCH_MAX_MESSAGES 2000
#define BATCH_MAX_BYTES (256u * 1024u * 1024u)
#define JOURNAL_FOLDER "Journal reports"

struct smtpd_delivery {
	char *data_dir;
	GThread *thread;
	GMutex lock;                   /* queue, options, routing, stopping */
	GCond wake;
	GQueue queue;                  /* smtpd_message* */
	uint64_t queued_bytes;
	bool stopping;
	/* Options: replaced whole on configure. */
	char *folder, *sent_folder, *catchall_archive;
	mv_unknown_policy unknown;
	bool journal_reports;
	uint64_t max_queued_bytes;
	GHashTable *internal_domains;  /* lower-case domain set, or NULL: every domain is internal */
	double lock_wait;
	/* The routing the sessions' RCPT checks read (under lock), and when
	 * it was loaded. */
	mv_routing *routing;
	double routing_at;
	/* The delivery thread's own. */
	mv_instance *inst;
	mv_ingest *ing;
	double run_started;
	double run_lock_wait;          /* the lock wait ing was begun with */
	guint refusals_seen;
	uint64_t next_id;
};

typedef struct options_snapshot {
	mv_route_options route;
	bool journal_reports;
	char *folder, *sent_folder, *catchall_archive;
	double lock_wait;
} options_snapshot;

static void answer(smtpd_message *m, unsigned code, const char *enhanced, const char *text)
{
	m->code = code;
	m->enhanced = enhanced;
	g_free(m->text);
	m->text = g_strdup(text);
}

/* ---- options -------------------------------------------------------------------------------------- */

int smtpd_delivery_check_options(const smtpd_delivery_options *o, GError **error)
{
	mv_routing *none = mv_routing_new(NULL, 0);
	mv_route_options ro = { .folder = o->folder, .sent_folder = o->sent_folder, .unknown = o->unknown,
		                .catchall_archive = o->catchall_archive };
	static const uint8_t probe[] = "From: a@example.org\r\nTo: b@example.org\r\n\r\n";
	mv_route route;
	GError *e = NULL;
	int rc = mv_route_message(none, &ro, NULL, NULL, probe, sizeof probe - 1, &route, &e);
	mv_route_clear(&route);
	mv_routing_free(none);
	if (rc < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "[smtp] folder, sent_folder or catchall_archive: %s", e->message);
		g_error_free(e);
	}
	return rc;
}

/* "a.org; B.org,c.org" -> {a.org, b.org, c.org}; NULL for none. */
static GHashTable *domain_set(const char *text)
{
	if (!text)
		return NULL;
	GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	char **items = g_strsplit_set(text, ";, \t", -1);
	for (char **i = items; *i; i++)
		if (**i)
			g_hash_table_add(set, g_ascii_strdown(*i, -1));
	g_strfreev(items);
	if (g_hash_table_size(set) == 0)
		g_clear_pointer(&set, g_hash_table_destroy);
	return set;
}

static void set_options(smtpd_delivery *d, const smtpd_delivery_options *o)
{
	g_free(d->folder);
	g_free(d->sent_folder);
	g_free(d->catchall_archive);
	d->folder = g_strdup(o->folder);
	d->sent_folder = g_strdup(o->sent_folder);
	d->catchall_archive = g_strdup(o->catchall_archive);
	d->unknown = o->unknown;
	d->journal_reports = o->journal_reports;
	d->max_queued_bytes = o->max_queued_bytes;
	d->lock_wait = o->lock_wait_seconds;
	g_clear_pointer(&d->internal_domains, g_hash_table_destroy);
	d->internal_domains = domain_set(o->internal_domains);
}

int smtpd_delivery_configure(smtpd_delivery *d, const smtpd_delivery_options *o, GError **error)
{
	if (smtpd_delivery_check_options(o, error) < 0)
		return -1;
	g_mutex_lock(&d->lock);
	set_options(d, o);
	g_mutex_unlock(&d->lock);
	return 0;
}

static void snapshot_options(smtpd_delivery *d, options_snapshot *s)
{
	g_mutex_lock(&d->lock);
	s->folder = g_strdup(d->folder);
	s->sent_folder = g_strdup(d->sent_folder);
	s->catchall_archive = g_strdup(d->catchall_archive);
	s->route = (mv_route_options){ .folder = s->folder, .sent_folder = s->sent_folder, .unknown = d->unknown,
		                       .catchall_archive = s->catchall_archive };
	s->journal_reports = d->journal_reports;
	s->lock_wait = d->lock_wait;
	g_mutex_unlock(&d->lock);
}

static void snapshot_clear(options_snapshot *s)
{
	g_free(s->folder);
	g_free(s->sent_folder);
	g_free(s->catchall_archive);
}

/* ---- routing ---------------------------------------------------------------------------------- */

static bool internal_address(const smtpd_delivery *d, const char *address)
{
	if (!d->internal_domains)
		return true;
	const char *at = strrchr(address, '@');
	if (!at)
		return true;   /* Postmaster, a bare local part: ours */
	char *domain = g_ascii_strdown(at + 1, -1);
	size_t n = strlen(domain);
	if (n && domain[n - 1] == '>')
		domain[n - 1] = '\0';
	bool internal = g_hash_table_contains(d->internal_domains, domain);
	g_free(domain);
	return internal;
}

bool smtpd_delivery_refuses_recipient(smtpd_delivery *d, const char *address)
{
	g_mutex_lock(&d->lock);
	bool refused = d->unknown == MV_UNKNOWN_REJECT && internal_address(d, address) &&
	               !(d->routing && mv_routing_user_of(d->routing, address));
	g_mutex_unlock(&d->lock);
	return refused;
}

/* Reloaded every few seconds, so an address given to a user now counts
 * for the next message; a failed reload keeps the last one. */
static void refresh_routing(smtpd_delivery *d, bool force)
{
	double now = mv_monotonic();
	if (!force && d->routing && now - d->routing_at < ROUTING_REFRESH_SECONDS)
		return;
	GError *err = NULL;
	/* Opened here too, not only by the first delivery: RCPT's reject
	 * policy needs the addresses before any message was accepted. */
	if (!d->inst && !(d->inst = mv_instance_open(d->data_dir, &err))) {
		mv_log_error("SMTP: the archive cannot be opened: %s", err->message);
		g_error_free(err);
		return;
	}
	mv_routing *fresh = mv_routing_load(d->inst, &err);
	if (!fresh) {
		mv_log_error("SMTP: the users' addresses cannot be read: %s", err->message);
		g_error_free(err);
		return;
	}
	g_mutex_lock(&d->lock);
	mv_routing *old = d->routing;
	d->routing = fresh;
	d->routing_at = now;
	g_mutex_unlock(&d->lock);
	mv_routing_free(old);
}

/* ---- the ingest run ------------------------------------------------------------------------------- */

static void on_committed(void *opaque, uint64_t token)
{
	(void)opaque;
	smtpd_message *m = (smtpd_message *)(uintptr_t)token;
	g_atomic_int_inc(&m->committed);
}

static const mv_ingest_run smtp_run = {
	.user = "SMTP",
	.remote = "smtp",
	.source = "SMTP/LMTP endpoint",
	.profile_name = "SMTP",
};

static void end_run(smtpd_delivery *d)
{
	if (!d->ing)
		return;
	GError *err = NULL;
	if (mv_ingest_end(&d->ing, &err) < 0) {
		mv_log_error("SMTP: the archive run ended with: %s", err->message);
		g_error_free(err);
	}
	d->refusals_seen = 0;
}

/* Whether the run still writes where the archive wants mail now: an admin
 * may make another store current, or protect the run's store, while the
 * run is open for its hour.  Two small reads of the master db per group. */
static bool run_store_still_wanted(smtpd_delivery *d)
{
	int current = 0;
	GError *err = NULL;
	bool wanted = mv_instance_current_store(d->inst, &current, &err) == 0 && current == mv_ingest_store_id(d->ing) &&
	              mv_instance_require_modifiable(d->inst, current, &err) == 0;
	if (err) {
		mv_log_debug("SMTP: a new archive run: %s", err->message);
		g_error_free(err);
	}
	return wanted;
}

/* The run's stores wait at most lock_wait for a lock another task holds
 * (a rebuild, a compaction): a new value begins a new run. */
static int begin_run(smtpd_delivery *d, double lock_wait, GError **error)
{
	if (d->ing && (mv_monotonic() - d->run_started >= RUN_SECONDS || d->run_lock_wait != lock_wait ||
	               !run_store_still_wanted(d)))
		end_run(d);
	if (d->ing)
		return 0;
	if (!d->inst && !(d->inst = mv_instance_open(d->data_dir, error)))
		return -1;
	refresh_routing(d, true);
	if (!d->routing) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "the users' addresses cannot be read");
		return -1;
	}
	mv_ingest_run run = smtp_run;
	run.lock_wait_seconds = lock_wait;
	if (!(d->ing = mv_ingest_begin(d->inst, &run, error)))
		return -1;
	d->run_lock_wait = lock_wait;
	mv_ingest_on_committed(d->ing, on_committed, NULL);
	d->run_started = mv_monotonic();
	d->refusals_seen = 0;
	return 0;
}

/* The answer a failure of the store gets: the client keeps the message
 * and tries again later. */
static void answer_unavailable(smtpd_message *m, const GError *err)
{
	char *text = g_strdup_printf("the archive cannot take mail now, try again later: %s", err->message);
	if (err->domain == MV_ERROR && err->code == MV_ERR_NO_SPACE)
		answer(m, 452, "4.3.1", text);
	else
		answer(m, 451, "4.3.0", text);
	g_free(text);
}

/* ---- one message ---------------------------------------------------------------------------------- */

/* The envelope a copy is archived with (store/envelope.c): its recipients
 * become searchable with to:, Bcc included. */
typedef struct envelope_text {
	const char *from;
	GString *to;
} envelope_text;

static void envelope_add(envelope_text *e, GHashTable *seen, const char *address)
{
	if (!address || !*address)
		return;
	char *key = g_ascii_strdown(address, -1);
	if (!g_hash_table_add(seen, key))
		return;
	if (e->to->len)
		g_string_append(e->to, ", ");
	g_string_append(e->to, address);
}

static void envelope_of_smtp(const smtpd_message *m, envelope_text *e)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	e->from = m->sender;
	e->to = g_string_new(NULL);
	for (guint i = 0; i < m->recipients->len; i++)
		envelope_add(e, seen, m->recipients->pdata[i]);
	g_hash_table_destroy(seen);
}

/* Every recipient the report names — To, Cc, Bcc, the members of an
 * expanded list — and the lists and forwarding addresses themselves. */
static void envelope_of_report(const mv_ms_journal_report *r, envelope_text *e)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	e->from = r->sender;
	e->to = g_string_new(NULL);
	for (size_t i = 0; i < r->n_recipients; i++)
		envelope_add(e, seen, r->recipients[i].address);
	for (size_t i = 0; i < r->n_recipients; i++) {
		envelope_add(e, seen, r->recipients[i].expanded_from);
		envelope_add(e, seen, r->recipients[i].forwarded_from);
	}
	g_hash_table_destroy(seen);
}

static int add_target(smtpd_delivery *d, smtpd_message *m, const char *archive, const char *folder,
                      const uint8_t *data, size_t len, const envelope_text *e, GError **error)
{
	mv_ingest_message im = {
		.archive = archive,
		.folder = folder,
		.data = data,
		.len = len,
		.shared = data == m->data->data && len == m->data->len ? m->data : NULL,
		.source = "smtp",
		.origin = m->origin,
		.mail_flags = "",
		.token = (uint64_t)(uintptr_t)m,
		.envelope_from = e->from ? e->from : "",
		.envelope_to = e->to->str,
	};
	if (mv_ingest_add(d->ing, &im, error) < 0)
		return -1;
	m->targets++;
	return 0;
}

static int add_routed(smtpd_delivery *d, smtpd_message *m, const mv_route *route, const uint8_t *data, size_t len,
                      const envelope_text *e, GError **error)
{
	for (guint i = 0; i < route->targets->len; i++) {
		const mv_route_target *t = route->targets->pdata[i];
		if (add_target(d, m, t->archive, t->folder, data, len, e, error) < 0)
			return -1;
	}
	return 0;
}

/* A journal report believed: the original is filed by the report's
 * envelope (every recipient, Bcc and expanded members included), byte for
 * byte as it stands in the report, and archived with that envelope; the
 * report itself goes to the journal folder of the catchall archive, so
 * the envelope stays provable. */
static int add_journal(smtpd_delivery *d, smtpd_message *m, const options_snapshot *o, const mv_ms_journal_report *r,
                       mv_route *route, GError **error)
{
	size_t len = 0;
	const uint8_t *original = mv_ms_journal_report_original(r, m->data->data, &len);
	const char **envelope = g_new0(const char *, r->n_recipients + 1);
	for (size_t i = 0; i < r->n_recipients; i++)
		envelope[i] = r->recipients[i].address;
	int rc = mv_route_message(d->routing, &o->route, envelope, r->sender, original, len, route, error);
	g_free(envelope);
	envelope_text report_envelope, smtp_envelope;
	envelope_of_report(r, &report_envelope);
	envelope_of_smtp(m, &smtp_envelope);
	if (rc == 0)
		rc = add_routed(d, m, route, original, len, &report_envelope, error);
	if (rc == 0)
		rc = add_target(d, m, o->catchall_archive, JOURNAL_FOLDER, m->data->data, m->data->len, &smtp_envelope,
		                error);
	g_string_free(report_envelope.to, TRUE);
	g_string_free(smtp_envelope.to, TRUE);
	return rc;
}

static bool journal_usable(smtpd_delivery *d, const smtpd_message *m, const options_snapshot *o,
                           mv_ms_journal_report *r)
{
	if (!o->journal_reports || !m->journal_trusted)
		return false;
	if (!mv_ms_journal_report_parse(m->data->data, m->data->len, r))
		return false;
	if ((r->flags & MV_MS_JOURNAL_ERRORS) == 0 && r->has_original && r->n_recipients > 0)
		return true;
	/* Filed whole by its SMTP envelope instead: nothing is lost, and the
	 * run's warnings say why it was not unpacked. */
	mv_ingest_warn(d->ing, m->origin, r->problem ? r->problem : "a journal report without recipients or original");
	return false;
}

/* Hands one message's targets in; false when ingest failed fatally (the
 * run is over: the caller answers everything unfinished with a 4xx). */
static bool hand_in(smtpd_delivery *d, smtpd_message *m, const options_snapshot *o, GError **error)
{
	m->origin = g_strdup_printf("SMTP %" G_GUINT64_FORMAT " from %s", ++d->next_id, m->remote);
	mv_route route = { 0 };
	mv_ms_journal_report report = { 0 };
	int rc;
	if (journal_usable(d, m, o, &report)) {
		rc = add_journal(d, m, o, &report, &route, error);
	} else {
		GPtrArray *env = g_ptr_array_new();
		for (guint i = 0; i < m->recipients->len; i++)
			g_ptr_array_add(env, m->recipients->pdata[i]);
		g_ptr_array_add(env, NULL);
		rc = mv_route_message(d->routing, &o->route, (const char *const *)env->pdata, m->sender, m->data->data,
		                      m->data->len, &route, error);
		g_ptr_array_unref(env);
		envelope_text smtp_envelope;
		envelope_of_smtp(m, &smtp_envelope);
		if (rc == 0)
			rc = add_routed(d, m, &route, m->data->data, m->data->len, &smtp_envelope, error);
		g_string_free(smtp_envelope.to, TRUE);
	}
	if (rc == 0 && m->targets == 0) {
		/* No user is party to it and the policy keeps nothing: ignore,
		 * or reject for a message whose addresses all lie outside the
		 * internal domains (an unknown internal one was refused at RCPT). */
		answer(m, 250, "2.0.0", "accepted, not archived: no address of a user (unknown-address policy)");
		mv_ingest_note_skipped(d->ing, 1);
	}
	mv_route_clear(&route);
	mv_ms_journal_report_clear(&report);
	if (rc < 0 && error && *error && (*error)->domain == MV_ERROR && (*error)->code == MV_ERR_INVALID) {
		/* Bad routing options cannot be fixed by a retry of the client,
		 * but by the admin: 451 keeps the mail queued at the sender. */
		answer_unavailable(m, *error);
		g_clear_error(error);
		return true;
	}
	return rc == 0;
}

/* ---- a group ---------------------------------------------------------------------------------------- */

static const char *refusal_of(smtpd_delivery *d, const smtpd_message *m)
{
	const GPtrArray *refusals = mv_ingest_refusals(d->ing);
	for (guint i = d->refusals_seen; i < refusals->len; i++) {
		const mv_refusal *r = refusals->pdata[i];
		if (strcmp(r->origin, m->origin) == 0)
			return r->reason;
	}
	return NULL;
}

static void finish(smtpd_delivery *d, smtpd_message *m, const GError *failure)
{
	if (m->code)
		return;
	if (m->targets > 0 && (guint)g_atomic_int_get(&m->committed) >= m->targets) {
		char *text = g_strdup_printf("archived (%u archive%s)", m->targets, m->targets == 1 ? "" : "s");
		answer(m, 250, "2.0.0", text);
		g_free(text);
		return;
	}
	const char *refused = d->ing ? refusal_of(d, m) : NULL;
	if (refused) {
		char *text = g_strdup_printf("the archive refuses this message: %s", refused);
		answer(m, 554, "5.6.0", text);
		g_free(text);
		return;
	}
	GError fallback = { MV_ERROR, MV_ERR_IO, (char *)"the message was not committed" };
	answer_unavailable(m, failure ? failure : &fallback);
}

static void deliver_group(smtpd_delivery *d, GPtrArray *group)
{
	GError *err = NULL;
	options_snapshot o;
	snapshot_options(d, &o);
	bool broken = begin_run(d, o.lock_wait, &err) < 0;
	if (!broken) {
		refresh_routing(d, false);
		for (guint i = 0; !broken && i < group->len; i++) {
			smtpd_message *m = group->pdata[i];
			if (!m->code)
				broken = !hand_in(d, m, &o, &err);
		}
		if (!broken)
			broken = mv_ingest_flush(d->ing, &err) < 0;
	}
	for (guint i = 0; i < group->len; i++)
		finish(d, group->pdata[i], broken ? err : NULL);
	if (d->ing)
		d->refusals_seen = mv_ingest_refusals(d->ing)->len;
	if (broken) {
		mv_log_error("SMTP: %u message%s answered 4xx: %s", group->len, group->len == 1 ? "" : "s",
		             err ? err->message : "?");
		/* A failed batch ends the run; the next group begins a new one
		 * (after disk space was freed or the store made writable). */
		if (d->ing)
			mv_ingest_note_outcome(d->ing, err ? err->message : "failed");
		end_run(d);
	}
	g_clear_error(&err);
	snapshot_clear(&o);
	for (guint i = 0; i < group->len; i++) {
		smtpd_message *m = group->pdata[i];
		m->done(m, m->opaque);
	}
}

/* ---- the thread ------------------------------------------------------------------------------------ */

static GPtrArray *take_group(smtpd_delivery *d)
{
	GPtrArray *group = g_ptr_array_new();
	uint64_t bytes = 0;
	while (group->len < BATCH_MAX_MESSAGES && bytes < BATCH_MAX_BYTES && !g_queue_is_empty(&d->queue)) {
		smtpd_message *m = g_queue_pop_head(&d->queue);
		bytes += m->data->len;
		d->queued_bytes -= m->data->len;
		g_ptr_array_add(group, m);
	}
	return group;
}

static gpointer delivery_main(gpointer arg)
{
	smtpd_delivery *d = arg;
	refresh_routing(d, true);
	for (;;) {
		g_mutex_lock(&d->lock);
		while (g_queue_is_empty(&d->queue) && !d->stopping) {
			gint64 until = g_get_monotonic_time() + ROUTING_REFRESH_SECONDS * G_TIME_SPAN_SECOND;
			if (!g_cond_wait_until(&d->wake, &d->lock, until))
				break;
		}
		bool stop = d->stopping && g_queue_is_empty(&d->queue);
		GPtrArray *group = take_group(d);
		g_mutex_unlock(&d->lock);
		if (group->len > 0)
			deliver_group(d, group);
		else if (!stop)
			refresh_routing(d, false);
		g_ptr_array_unref(group);
		if (stop)
			break;
		/* An hour's run ends when it is due, mail or not. */
		if (d->ing && mv_monotonic() - d->run_started >= RUN_SECONDS)
			end_run(d);
	}
	end_run(d);
	mv_instance_close(&d->inst);
	return NULL;
}

smtpd_delivery *smtpd_delivery_start(const char *data_dir, const smtpd_delivery_options *o, GError **error)
{
	if (smtpd_delivery_check_options(o, error) < 0)
		return NULL;
	smtpd_delivery *d = g_new0(smtpd_delivery, 1);
	d->data_dir = g_strdup(data_dir);
	g_mutex_init(&d->lock);
	g_cond_init(&d->wake);
	g_queue_init(&d->queue);
	set_options(d, o);
	/* The instance and the routing are opened on the thread that uses
	 * them; a failure there answers 4xx and is tried again. */
	d->thread = g_thread_new("smtp-delivery", delivery_main, d);
	return d;
}

void smtpd_delivery_submit(smtpd_delivery *d, smtpd_message *m)
{
	g_mutex_lock(&d->lock);
	/* Too much waiting already: answered at once, but on the delivery
	 * thread like every other message, so a session never sees its done
	 * inside submit. */
	if (d->stopping || (d->max_queued_bytes && d->queued_bytes + m->data->len > d->max_queued_bytes))
		answer(m, 452, "4.3.1", "the archive is busy, try again later");
	d->queued_bytes += m->data->len;
	g_queue_push_tail(&d->queue, m);
	g_cond_signal(&d->wake);
	g_mutex_unlock(&d->lock);
}

void smtpd_delivery_stop(smtpd_delivery **dp)
{
	smtpd_delivery *d = *dp;
	if (!d)
		return;
	*dp = NULL;
	g_mutex_lock(&d->lock);
	d->stopping = true;
	g_cond_signal(&d->wake);
	g_mutex_unlock(&d->lock);
	g_thread_join(d->thread);
	mv_routing_free(d->routing);
	g_queue_clear(&d->queue);
	g_mutex_clear(&d->lock);
	g_cond_clear(&d->wake);
	g_free(d->folder);
	g_free(d->sent_folder);
	g_free(d->catchall_archive);
	if (d->internal_domains)
		g_hash_table_destroy(d->internal_domains);
	g_free(d->data_dir);
	g_free(d);
}
