/* sources/pop3_source: one POP3 mailbox archived, incrementally by UIDL.
 *
 * The state is the set of UIDLs archived (archive/mailbox_state.c), with
 * when: a message whose UIDL is not in it is retrieved; one that left the
 * maildrop is forgotten.  UIDLs are recorded only after ingest flushed the
 * messages, so a crash costs a re-download that the content-hash check
 * answers "already archived" -- and under a deletion rule only after a run
 * that reached its QUIT, so a lost connection leaves them to be retrieved,
 * confirmed and deleted by the next.
 *
 * Deletion: POP3 deletes at QUIT.  DELE goes only to messages this run
 * handed in and ingest counted committed in every archive they went to; by
 * age it is the archive date (POP3 says nothing of a message's date before
 * it is downloaded), and a message archived long enough ago is retrieved
 * again to be confirmed in the archive before it goes. */
#include "sources/mailbox_source.h"
#include "sources/pop3_client.h"
#include "mime/mime.h"

#include <string.h>

#define SECONDS_PER_DAY 86400

typedef struct pop3_cand {
	mv_pop3_item *item;     /* borrowed from the listing */
	bool confirm;           /* archived earlier: retrieved to confirm before deletion */
	bool handed;
	bool leave;
	uint16_t targets;
} pop3_cand;

typedef struct pop3_run {
	mv_ingest *ing;
	mv_mailbox_commits *commits;
	const mv_mailbox_options *o;
	mv_task *task;
	mv_mailbox_counts *counts;
	GArray *cands;           /* pop3_cand, by message number */
	GHashTable *by_number;   /* number → index + 1 */
} pop3_run;

static int on_message(void *opaque, unsigned number, GByteArray *msg, GError **error)
{
	pop3_run *pr = opaque;
	if (pr->task && pr->task->cancel && g_atomic_int_get(pr->task->cancel)) {
		g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "cancelled");
		return -1;
	}
	guint at = GPOINTER_TO_UINT(g_hash_table_lookup(pr->by_number, GUINT_TO_POINTER(number)));
	if (at == 0)
		return 0;
	pop3_cand *c = &g_array_index(pr->cands, pop3_cand, at - 1);
	char *origin = g_strdup_printf("pop3://%s;UIDL=%s", pr->o->mailbox, c->item->uidl);
	int rc = 0;
	if (!msg) {
		mv_ingest_refuse(pr->ing, origin, "the server refused to send it (RETR -ERR)");
		goto out;
	}
	pr->counts->fetched++;
	mv_ingest_message m = { .data = msg->data, .len = msg->len, .shared = msg, .source = "pop3", .origin = origin,
	                        .mail_flags = "", .token = at };
	if (!pr->o->routing) {
		m.archive = pr->o->archive;
		m.folder = pr->o->target_folder && *pr->o->target_folder ? pr->o->target_folder : "Inbox";
		rc = mv_ingest_add(pr->ing, &m, error);
		c->targets = 1;
	} else {
		mv_route route = { 0 };
		rc = mv_route_message(pr->o->routing, &pr->o->route, NULL, NULL, msg->data, msg->len, &route, error);
		for (guint i = 0; rc == 0 && route.targets && i < route.targets->len; i++) {
			const mv_route_target *t = route.targets->pdata[i];
			m.archive = t->archive;
			m.folder = t->folder;
			rc = mv_ingest_add(pr->ing, &m, error);
			c->targets++;
		}
		if (rc == 0 && c->targets == 0) {
			c->leave = pr->o->route.unknown == MV_UNKNOWN_LEAVE;
			if (c->leave)
				pr->counts->left++;
			else
				pr->counts->ignored++;
		}
		mv_route_clear(&route);
	}
	if (rc == 0)
		c->handed = true;
out:
	g_free(origin);
	return rc;
}

/* Which messages to retrieve: new UIDLs (passing the size filter), and for
 * deletion by age those archived long enough ago. */
static void choose(pop3_run *pr, GPtrArray *items, GHashTable *known, int64_t now)
{
	const mv_mailbox_options *o = pr->o;
	int64_t cutoff = now - (int64_t)o->delete_after_days * SECONDS_PER_DAY;
	for (guint i = 0; i < items->len; i++) {
		mv_pop3_item *item = items->pdata[i];
		const int64_t *when = g_hash_table_lookup(known, item->uidl);
		pop3_cand c = { .item = item };
		if (when) {
			if (o->delete_rule != MV_DELETE_OLDER_THAN || *when > cutoff)
				continue;
			c.confirm = true;
		} else if (item->size > MV_MAX_MESSAGE_SIZE) {
			/* Never retrieved: it could not be held, and would stop every run here. */
			char *origin = g_strdup_printf("pop3://%s;UIDL=%s", o->mailbox, item->uidl);
			char *why = g_strdup_printf("message of %" G_GUINT64_FORMAT " bytes exceeds the limit of %u bytes",
			                            item->size, MV_MAX_MESSAGE_SIZE);
			mv_ingest_refuse(pr->ing, origin, why);
			g_free(origin);
			g_free(why);
			continue;
		} else if (o->max_size > 0 && item->size > o->max_size) {
			pr->counts->filtered++;
			continue;
		}
		g_array_append_val(pr->cands, c);
		g_hash_table_insert(pr->by_number, GUINT_TO_POINTER(item->number), GUINT_TO_POINTER(pr->cands->len));
	}
}

/* After the flush: UIDLs to remember, UIDLs gone from the maildrop, and the
 * numbers to delete.  A run that failed under a deletion rule remembers
 * none of its UIDLs, as the IMAP source keeps a folder's state: it never
 * reached the QUIT that deletes, and a UIDL remembered is passed over by
 * every later run, so its message would stay on the server for ever.  The
 * next run retrieves them again, finds them archived, and deletes them. */
static int settle(pop3_run *pr, mv_instance *inst, GPtrArray *items, GHashTable *known, bool run_ok, int64_t now,
                  GArray *doomed, GError **error)
{
	const mv_mailbox_options *o = pr->o;
	bool remember = run_ok || o->delete_rule == MV_DELETE_NEVER;
	GPtrArray *archived = g_ptr_array_new();
	for (guint i = 0; i < pr->cands->len; i++) {
		pop3_cand *c = &g_array_index(pr->cands, pop3_cand, i);
		if (remember && c->handed && !c->leave && !c->confirm)
			g_ptr_array_add(archived, c->item->uidl);
		bool ignored = c->handed && c->targets == 0 && !c->leave && o->routing;
		bool committed = (c->handed && c->targets > 0 && mv_mailbox_commits_of(pr->commits, i) >= c->targets) ||
		                 ignored;
		bool by_rule = o->delete_rule == MV_DELETE_AFTER_ARCHIVING || (o->delete_rule == MV_DELETE_OLDER_THAN &&
		                                                                c->confirm);
		if (committed && by_rule)
			g_array_append_val(doomed, c->item->number);
	}
	GHashTable *present = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < items->len; i++)
		g_hash_table_add(present, ((mv_pop3_item *)items->pdata[i])->uidl);
	GPtrArray *gone = g_ptr_array_new();
	GHashTableIter it;
	gpointer k;
	g_hash_table_iter_init(&it, known);
	while (g_hash_table_iter_next(&it, &k, NULL))
		if (!g_hash_table_contains(present, k))
			g_ptr_array_add(gone, k);
	int rc = 0;
	if (o->profile_id > 0)
		rc = mv_mailbox_uidls_change(inst, o->profile_id, o->mailbox, archived, now, error) < 0 ||
		             mv_mailbox_uidls_change(inst, o->profile_id, o->mailbox, gone, -1, error) < 0
		         ? -1
		         : 0;
	/* The run's next session (a reconnect) knows what this one recorded. */
	for (guint i = 0; rc == 0 && i < gone->len; i++)
		g_hash_table_remove(known, gone->pdata[i]);
	for (guint i = 0; rc == 0 && i < archived->len; i++)
		g_hash_table_insert(known, g_strdup(archived->pdata[i]), g_memdup2(&now, sizeof now));
	g_hash_table_destroy(present);
	g_ptr_array_unref(archived);
	g_ptr_array_unref(gone);
	return rc;
}

/* One session: log on, list, retrieve what is new, flush, record, and
 * delete at QUIT when the session got that far.  known is the run's;
 * *listed says whether a session of the run listed the maildrop (counted
 * once as the run's folder). */
static int pop3_session(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                        mv_task *task, mv_mailbox_counts *counts, GHashTable *known, bool *listed, GError **error)
{
	mv_pop3_client *c = mv_pop3_open(&o->server, error);
	GPtrArray *items = c ? mv_pop3_list(c, error) : NULL;
	pop3_run pr = { ing, commits, o, task, counts, g_array_new(FALSE, FALSE, sizeof(pop3_cand)),
		            g_hash_table_new(g_direct_hash, g_direct_equal) };
	GArray *numbers = g_array_new(FALSE, FALSE, sizeof(unsigned));
	GArray *doomed = g_array_new(FALSE, FALSE, sizeof(unsigned));
	int64_t now = g_get_real_time() / G_USEC_PER_SEC;
	int rc = -1;
	if (!items)
		goto out;
	if (!*listed)
		counts->folders++;
	*listed = true;
	choose(&pr, items, known, now);
	for (guint i = 0; i < pr.cands->len; i++)
		g_array_append_val(numbers, g_array_index(pr.cands, pop3_cand, i).item->number);
	mv_mailbox_commits_reset(commits, pr.cands->len);
	rc = mv_pop3_retrieve(c, numbers, (size_t)MV_MAX_MESSAGE_SIZE, on_message, &pr, error);
	GError *flush_err = NULL;
	if (mv_ingest_flush(ing, &flush_err) < 0) {
		if (rc == 0)
			g_propagate_error(error, flush_err);
		else
			g_clear_error(&flush_err);
		rc = -1;
		goto out;
	}
	bool run_ok = rc == 0;
	if (settle(&pr, inst, items, known, run_ok, now, doomed, run_ok ? error : NULL) < 0)
		rc = -1;
	if (rc == 0 && doomed->len > 0) {
		rc = mv_pop3_delete_and_quit(&c, doomed, error);
		if (rc == 0)
			counts->deleted += doomed->len;
	} else if (rc == 0) {
		rc = mv_pop3_delete_and_quit(&c, doomed, error);
	}
out:
	mv_pop3_close(&c);
	if (items)
		g_ptr_array_unref(items);
	g_array_unref(pr.cands);
	g_hash_table_destroy(pr.by_number);
	g_array_unref(numbers);
	g_array_unref(doomed);
	return rc;
}

int mv_pop3_source_run(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                       mv_task *task, mv_mailbox_counts *counts, GError **error)
{
	GHashTable *known = o->profile_id > 0 ? mv_mailbox_uidls(inst, o->profile_id, o->mailbox, error)
	                                      : g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (!known)
		return -1;
	int rc = -1;
	bool listed = false;
	/* A lost connection: what was retrieved is flushed and recorded by the
	 * session (under a deletion rule left unrecorded, so the next session
	 * confirms and deletes it), and a new session goes on from there. */
	for (int attempt = 0;; attempt++) {
		GError *e = NULL;
		rc = pop3_session(inst, ing, commits, o, task, counts, known, &listed, &e);
		if (rc == 0 || !mv_mailbox_reconnect("pop3", o->mailbox, ing, task, counts, attempt, e)) {
			if (e)
				g_propagate_error(error, e);
			break;
		}
		g_clear_error(&e);
	}
	g_hash_table_destroy(known);
	return rc;
}

json_t *mv_pop3_source_test(const mv_mailbox_options *o, GError **error)
{
	mv_pop3_client *c = mv_pop3_open(&o->server, error);
	if (!c)
		return NULL;
	GPtrArray *items = mv_pop3_list(c, error);
	json_t *out = NULL;
	if (items) {
		json_t *missing = json_array();
		if (!mv_pop3_has(c, "PIPELINING"))
			json_array_append_new(missing, json_string("PIPELINING"));
		if (!mv_pop3_has(c, "UIDL"))
			json_array_append_new(missing, json_string("UIDL"));
		out = json_pack("{s:s, s:s, s:I, s:o}", "server", mv_pop3_peer(c), "login", "ok", "messages",
		                (json_int_t)items->len, "capabilitiesMissing", missing);
		g_ptr_array_unref(items);
	}
	GArray *none = g_array_new(FALSE, FALSE, sizeof(unsigned));
	GError *e = NULL;
	if (mv_pop3_delete_and_quit(&c, none, &e) < 0)
		g_clear_error(&e);
	g_array_unref(none);
	return out;
}
