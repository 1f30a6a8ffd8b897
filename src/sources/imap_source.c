/* sources/imap_source: one IMAP mailbox archived — its folders chosen,
 * each folder read from where the last run stopped, messages fetched in
 * pipelined UID ranges straight into ingest, and, once ingest says they
 * are durable, the folder's state saved and the deletion rule applied.
 *
 * Per folder the state is UIDVALIDITY, last_uid (every UID up to it dealt
 * with) and pending (UIDs below it a filter passed over for now: unread,
 * too new).  STATUS of every folder in one pipeline tells which folders
 * have anything new; a folder with nothing is not selected at all, which
 * is what makes a run with nothing new take a second.  A changed
 * UIDVALIDITY starts the folder again from UID 1, and ingest's content-hash
 * check turns what is already archived into "already archived" without a
 * parse.
 *
 * A message is deleted on the server only if it was handed in by this run
 * and ingest counted it committed in every archive it went to; the server
 * then checks the rule's conditions itself (UID SEARCH over exactly those
 * UIDs: SENTBEFORE, UNFLAGGED, SEEN, NOT DELETED), so a flag set meanwhile
 * is honoured.  Messages older than the rule's age that earlier runs
 * archived are fetched again to be confirmed archived before they go.
 *
 * A lost connection is retried with backoff (three times a run); what was
 * handed in before is flushed and the folder's state saved first, so the
 * retry, or the next run, goes on from there. */
#include "sources/imap_client.h"
#include "sources/mailbox_source.h"
#include "mime/mime.h"

#include <string.h>
#include <unistd.h>

#define FETCH_MAX_UIDS 200u
#define FETCH_MAX_BYTES (32u * 1024u * 1024u)
#define FETCH_DEPTH 4u
#define SEARCH_MAX_UIDS 2000u
#define META_MAX_UIDS 5000u
#define MAX_MARKS 500
#define SECONDS_PER_DAY 86400

typedef enum {
	C_FETCH = 0,    /* to fetch and archive */
	C_CONFIRM,      /* archived by an earlier run: fetched to confirm, then deleted */
	C_PENDING,      /* passed over for now; looked at again next run */
	C_DONE,         /* dealt with for good without a fetch (too large, too old) */
} cand_kind;

typedef struct candidate {
	uint32_t uid;
	uint8_t kind;
	bool handed;           /* given to ingest */
	bool leave;            /* multidrop: unknown, left for the next run */
	uint16_t targets;      /* archives it went to */
	uint64_t size;         /* RFC822.SIZE when asked, else 0 */
} candidate;

typedef struct folder_run {
	mv_instance *inst;
	mv_ingest *ing;
	mv_mailbox_commits *commits;
	const mv_mailbox_options *o;
	mv_task *task;
	mv_mailbox_counts *counts;
	mv_imap_client *c;
	const mv_imap_folder *folder;
	char *archive_folder;  /* single mailbox: where this folder's messages go */
	GArray *cands;         /* candidate, ascending by uid */
	int64_t now;
} folder_run;

/* ---- candidates ------------------------------------------------------------------------------ */

static candidate *find_candidate(folder_run *fr, uint64_t uid)
{
	guint lo = 0, hi = fr->cands->len;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		candidate *c = &g_array_index(fr->cands, candidate, mid);
		if (c->uid == uid)
			return c;
		if (c->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static gint compare_candidates(gconstpointer a, gconstpointer b)
{
	uint32_t x = ((const candidate *)a)->uid, y = ((const candidate *)b)->uid;
	return x < y ? -1 : x > y;
}

static void add_candidates(folder_run *fr, const GArray *uids, cand_kind kind, uint32_t above)
{
	for (guint i = 0; i < uids->len; i++) {
		uint32_t u = g_array_index(uids, uint32_t, i);
		if (u <= above)
			continue;
		candidate c = { .uid = u, .kind = (uint8_t)kind };
		g_array_append_val(fr->cands, c);
	}
}

/* UID SEARCH over a set given as text, in pieces the server's line
 * length takes; NULL on failure. */
static GArray *search_in_set(folder_run *fr, const GArray *set, const char *criteria, GError **error)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	for (guint from = 0; from < set->len;) {
		char *uids = mv_imap_uid_set(set, &from, SEARCH_MAX_UIDS);
		char *q = g_strdup_printf("UID %s%s%s", uids, *criteria ? " " : "", criteria);
		GArray *part = mv_imap_uid_search(fr->c, q, error);
		g_free(q);
		g_free(uids);
		if (!part) {
			g_array_unref(out);
			return NULL;
		}
		g_array_append_vals(out, part->data, part->len);
		g_array_unref(part);
	}
	return out;
}

static GArray *uids_of_text(const char *set)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	char **parts = g_strsplit(set ? set : "", ",", -1);
	for (char **p = parts; *p; p++) {
		guint64 a = 0, b = 0;
		char *colon = strchr(*p, ':');
		if (colon)
			*colon = 0;
		if (!g_ascii_string_to_unsigned(*p, 10, 1, G_MAXUINT32, &a, NULL))
			continue;
		if (!colon || !g_ascii_string_to_unsigned(colon + 1, 10, a, G_MAXUINT32, &b, NULL))
			b = a;
		for (guint64 u = a; u <= b && out->len < 10000000u; u++) {
			uint32_t v = (uint32_t)u;
			g_array_append_val(out, v);
		}
	}
	g_strfreev(parts);
	return out;
}

/* "1-Feb-1994" for SENTBEFORE/BEFORE. */
static char *search_date(int64_t when)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	GDateTime *dt = g_date_time_new_from_unix_utc(when);
	char *s = g_strdup_printf("%d-%s-%d", g_date_time_get_day_of_month(dt), months[g_date_time_get_month(dt) - 1],
	                          g_date_time_get_year(dt));
	g_date_time_unref(dt);
	return s;
}

/* The highest UID archived at least days ago, by the state's marks. */
static uint64_t uid_archived_before(const char *marks, int64_t cutoff)
{
	uint64_t best = 0;
	char **parts = g_strsplit(marks ? marks : "", ",", -1);
	for (char **p = parts; *p; p++) {
		guint64 uid = 0;
		gint64 when = 0;
		char *at = strchr(*p, '@');
		if (!at)
			continue;
		*at = 0;
		if (g_ascii_string_to_unsigned(*p, 10, 0, G_MAXUINT32, &uid, NULL) &&
		    g_ascii_string_to_signed(at + 1, 10, 0, G_MAXINT64, &when, NULL) && when <= cutoff && uid > best)
			best = uid;
	}
	g_strfreev(parts);
	return best;
}

/* The keep conditions as UID SEARCH criteria. */
static void keep_criteria(const mv_mailbox_options *o, GString *q)
{
	g_string_append(q, "NOT DELETED");
	if (o->keep_flagged)
		g_string_append(q, " UNFLAGGED");
	if (o->keep_unread)
		g_string_append(q, " SEEN");
}

/* Messages earlier runs archived that the age rule now reaches: fetched
 * again to be confirmed in the archive, then deleted. */
static int add_old_for_deletion(folder_run *fr, const mv_mailbox_folder_state *st, GError **error)
{
	const mv_mailbox_options *o = fr->o;
	if (o->delete_rule != MV_DELETE_OLDER_THAN || st->last_uid == 0)
		return 0;
	int64_t cutoff = fr->now - (int64_t)o->delete_after_days * SECONDS_PER_DAY;
	uint64_t upto = st->last_uid;
	GString *q = g_string_new(NULL);
	if (o->delete_by_archive_date) {
		upto = MIN(upto, uid_archived_before(st->archived_marks, cutoff));
		if (upto == 0) {
			g_string_free(q, TRUE);
			return 0;
		}
	} else {
		char *d = search_date(cutoff);
		g_string_append_printf(q, "SENTBEFORE %s ", d);
		g_free(d);
	}
	keep_criteria(o, q);
	char *cmd = g_strdup_printf("UID 1:%" G_GUINT64_FORMAT " %s", upto, q->str);
	GArray *uids = mv_imap_uid_search(fr->c, cmd, error);
	g_free(cmd);
	g_string_free(q, TRUE);
	if (!uids)
		return -1;
	/* pending ones are candidates already */
	for (guint i = 0; i < uids->len; i++) {
		uint32_t u = g_array_index(uids, uint32_t, i);
		if (u > upto || find_candidate(fr, u))
			continue;
		candidate c = { .uid = u, .kind = C_CONFIRM };
		g_array_append_val(fr->cands, c);
	}
	g_array_unref(uids);
	g_array_sort(fr->cands, compare_candidates);
	return 0;
}

static int find_candidates(folder_run *fr, const mv_mailbox_folder_state *st, const mv_imap_status *sel,
                           GError **error)
{
	if (sel->uidnext == 0 || sel->uidnext > st->last_uid + 1) {
		char *q = g_strdup_printf("UID %" G_GUINT64_FORMAT ":*", st->last_uid + 1);
		GArray *fresh = mv_imap_uid_search(fr->c, q, error);
		g_free(q);
		if (!fresh)
			return -1;
		add_candidates(fr, fresh, C_FETCH, (uint32_t)MIN(st->last_uid, G_MAXUINT32));
		g_array_unref(fresh);
	}
	if (st->pending && *st->pending) {
		GArray *set = uids_of_text(st->pending);
		GArray *still = search_in_set(fr, set, "", error);
		g_array_unref(set);
		if (!still)
			return -1;
		add_candidates(fr, still, C_FETCH, 0);
		g_array_unref(still);
	}
	g_array_sort(fr->cands, compare_candidates);
	return add_old_for_deletion(fr, st, error);
}

/* ---- filters ------------------------------------------------------------------------------------ */

/* "17-Jul-1996 02:44:25 -0700" → Unix time; false when malformed. */
static bool parse_internaldate(const char *s, int64_t *t_r)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int day, year, hh, mm, ss, zone;
	char mon[4];
	if (sscanf(s, " %2d-%3s-%4d %2d:%2d:%2d %5d", &day, mon, &year, &hh, &mm, &ss, &zone) != 7)
		return false;
	int month = 0;
	for (int i = 0; i < 12; i++)
		if (g_ascii_strcasecmp(mon, months[i]) == 0)
			month = i + 1;
	if (!month)
		return false;
	GDateTime *dt = g_date_time_new_utc(year, month, day, hh, mm, ss);
	if (!dt)
		return false;
	int sign = zone < 0 ? -1 : 1;
	int az = zone * sign;
	*t_r = g_date_time_to_unix(dt) - sign * ((az / 100) * 3600 + (az % 100) * 60);
	g_date_time_unref(dt);
	return true;
}

static bool has_flag(const mv_imap_response *r, const mv_imap_value *flags, const char *flag)
{
	if (!flags || flags->kind != MV_IMAP_LIST)
		return false;
	for (const mv_imap_value *f = mv_imap_value_at(r, flags->child); f; f = mv_imap_value_at(r, f->next))
		if (mv_imap_atom_is(r, f, flag))
			return true;
	return false;
}

/* Which of the to-fetch candidates a filter passes over: for good (too
 * large, too old for "newer than") or for now (unread, too new for "older
 * than": they may pass later). */
static void apply_filter(folder_run *fr, candidate *c, uint64_t size, bool seen, int64_t date)
{
	const mv_mailbox_options *o = fr->o;
	c->size = size;
	if (c->kind != C_FETCH)
		return;
	cand_kind k = C_FETCH;
	if (size > MV_MAX_MESSAGE_SIZE) {
		/* Never fetched: it could not be held, and would stop every run here. */
		char *origin = g_strdup_printf("imap://%s/%s;UID=%u", o->mailbox, fr->folder->name, c->uid);
		char *why = g_strdup_printf("message of %" G_GUINT64_FORMAT " bytes exceeds the limit of %u bytes", size,
		                            MV_MAX_MESSAGE_SIZE);
		mv_ingest_refuse(fr->ing, origin, why);
		g_free(origin);
		g_free(why);
		c->kind = C_DONE;
		return;
	}
	if (o->max_size > 0 && size > o->max_size)
		k = C_DONE;
	else if (o->newer_than_days > 0 && date < fr->now - (int64_t)o->newer_than_days * SECONDS_PER_DAY)
		k = C_DONE;
	else if (o->exclude_unread && !seen)
		k = C_PENDING;
	else if (o->older_than_days > 0 && date > fr->now - (int64_t)o->older_than_days * SECONDS_PER_DAY)
		k = C_PENDING;
	if (k != C_FETCH)
		fr->counts->filtered++;
	c->kind = (uint8_t)k;
}

static int on_meta(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	(void)raw;
	(void)error;
	folder_run *fr = opaque;
	if (r->type != MV_IMAP_RESP_DATA || strcmp(r->name, "FETCH") != 0)
		return 0;
	const mv_imap_value *att = mv_imap_value_at(r, r->first);
	uint64_t uid = 0, size = 0;
	if (!mv_imap_number(r, mv_imap_pair(r, att, "UID"), &uid))
		return 0;
	candidate *c = find_candidate(fr, uid);
	if (!c)
		return 0;
	mv_imap_number(r, mv_imap_pair(r, att, "RFC822.SIZE"), &size);
	char *idate = mv_imap_dup(r, mv_imap_pair(r, att, "INTERNALDATE"));
	int64_t date = fr->now;
	if (idate)
		parse_internaldate(idate, &date);
	g_free(idate);
	apply_filter(fr, c, size, has_flag(r, mv_imap_pair(r, att, "FLAGS"), "\\Seen"), date);
	return 0;
}

/* UIDs of the candidates of a kind. */
static GArray *uids_of_kind(folder_run *fr, cand_kind kind, bool also_confirm)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	for (guint i = 0; i < fr->cands->len; i++) {
		candidate *c = &g_array_index(fr->cands, candidate, i);
		if (c->kind == kind || (also_confirm && c->kind == C_CONFIRM))
			g_array_append_val(out, c->uid);
	}
	return out;
}

/* Sizes, flags and dates of the messages to fetch: what the filters ask,
 * and sizes so that no message larger than ingest takes is ever fetched
 * and ranges are cut by bytes. */
static int fetch_metadata(folder_run *fr, GError **error)
{
	GArray *uids = uids_of_kind(fr, C_FETCH, false);
	GPtrArray *cmds = g_ptr_array_new_with_free_func(g_free);
	for (guint from = 0; from < uids->len;) {
		char *set = mv_imap_uid_set(uids, &from, META_MAX_UIDS);
		g_ptr_array_add(cmds, g_strdup_printf("UID FETCH %s (UID RFC822.SIZE FLAGS INTERNALDATE)", set));
		g_free(set);
	}
	int rc = mv_imap_pipeline(fr->c, cmds, FETCH_DEPTH, on_meta, fr, error);
	g_ptr_array_unref(cmds);
	g_array_unref(uids);
	return rc;
}

/* ---- fetching ---------------------------------------------------------------------------------- */

static char *maildir_flags(const mv_imap_response *r, const mv_imap_value *flags)
{
	GString *s = g_string_new("2,");
	if (has_flag(r, flags, "\\Draft"))
		g_string_append_c(s, 'D');
	if (has_flag(r, flags, "\\Flagged"))
		g_string_append_c(s, 'F');
	if (has_flag(r, flags, "\\Answered"))
		g_string_append_c(s, 'R');
	if (has_flag(r, flags, "\\Seen"))
		g_string_append_c(s, 'S');
	return g_string_free(s, FALSE);
}

static bool cancelled(const folder_run *fr)
{
	return fr->task && fr->task->cancel && g_atomic_int_get(fr->task->cancel);
}

/* One message into ingest: to its one archive, or routed. */
static int hand_in(folder_run *fr, candidate *c, GByteArray *raw, const uint8_t *data, size_t len,
                   const char *flags, GError **error)
{
	char *origin = g_strdup_printf("imap://%s/%s;UID=%u", fr->o->mailbox, fr->folder->name, c->uid);
	mv_ingest_message m = { .data = data, .len = len, .shared = raw, .source = "imap", .origin = origin,
	                        .mail_flags = flags, .token = (uint64_t)(c - &g_array_index(fr->cands, candidate, 0)) + 1 };
	int rc = 0;
	if (!fr->o->routing) {
		m.archive = fr->o->archive;
		m.folder = fr->archive_folder;
		rc = mv_ingest_add(fr->ing, &m, error);
		c->targets = 1;
	} else {
		mv_route route = { 0 };
		rc = mv_route_message(fr->o->routing, &fr->o->route, NULL, NULL, data, len, &route, error);
		for (guint i = 0; rc == 0 && route.targets && i < route.targets->len; i++) {
			const mv_route_target *t = route.targets->pdata[i];
			m.archive = t->archive;
			m.folder = t->folder;
			rc = mv_ingest_add(fr->ing, &m, error);
			c->targets++;
		}
		if (rc == 0 && c->targets == 0) {
			c->leave = fr->o->route.unknown == MV_UNKNOWN_LEAVE;
			if (c->leave)
				fr->counts->left++;
			else
				fr->counts->ignored++;
		}
		mv_route_clear(&route);
	}
	g_free(origin);
	if (rc == 0)
		c->handed = true;
	return rc;
}

static int on_body(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	folder_run *fr = opaque;
	if (cancelled(fr)) {
		g_set_error(error, MV_ERROR, MV_ERR_CANCELLED, "cancelled");
		return -1;
	}
	if (r->type != MV_IMAP_RESP_DATA || strcmp(r->name, "FETCH") != 0)
		return 0;
	const mv_imap_value *att = mv_imap_value_at(r, r->first);
	uint64_t uid = 0;
	const mv_imap_value *body = mv_imap_pair(r, att, "BODY[]");
	candidate *c = mv_imap_number(r, mv_imap_pair(r, att, "UID"), &uid) ? find_candidate(fr, uid) : NULL;
	if (!c || !body || c->handed)
		return 0;   /* an unsolicited FETCH (flags changed): nothing to archive */
	fr->counts->fetched++;
	size_t len = 0;
	const uint8_t *data = mv_imap_bytes(r, body, &len);
	if (!data) {
		char *origin = g_strdup_printf("imap://%s/%s;UID=%u", fr->o->mailbox, fr->folder->name, c->uid);
		mv_ingest_refuse(fr->ing, origin, "the server sent no body (NIL) for the message");
		g_free(origin);
		c->handed = true;
		return 0;
	}
	char *flags = maildir_flags(r, mv_imap_pair(r, att, "FLAGS"));
	int rc = hand_in(fr, c, raw, data, len, flags, error);
	g_free(flags);
	return rc;
}

static int fetch_bodies(folder_run *fr, GError **error)
{
	GArray *uids = uids_of_kind(fr, C_FETCH, true);
	GPtrArray *cmds = g_ptr_array_new_with_free_func(g_free);
	/* Ranges of at most FETCH_MAX_UIDS messages or FETCH_MAX_BYTES (when
	 * the sizes are known), so a few commands in flight keep the line busy
	 * without a reply of gigabytes being one command. */
	for (guint from = 0; from < uids->len;) {
		guint n = 0;
		uint64_t bytes = 0;
		while (from + n < uids->len && n < FETCH_MAX_UIDS && bytes < FETCH_MAX_BYTES) {
			candidate *c = find_candidate(fr, g_array_index(uids, uint32_t, from + n));
			bytes += c ? c->size : 0;
			n++;
		}
		char *set = mv_imap_uid_set(uids, &from, n);
		g_ptr_array_add(cmds, g_strdup_printf("UID FETCH %s (UID FLAGS BODY.PEEK[])", set));
		g_free(set);
	}
	if (fr->task && fr->task->progress && uids->len > 0) {
		char *text = g_strdup_printf("%s: %s: fetching %u messages", fr->o->mailbox, fr->folder->name, uids->len);
		fr->task->progress(fr->task->opaque, -1, text);
		g_free(text);
	}
	int rc = mv_imap_pipeline(fr->c, cmds, FETCH_DEPTH, on_body, fr, error);
	g_ptr_array_unref(cmds);
	g_array_unref(uids);
	return rc;
}

/* ---- after the folder -------------------------------------------------------------------------- */

/* The state the folder's handled candidates allow: last_uid up to the
 * first message that should have been fetched and was not, pending what a
 * filter or "leave" kept for later. */
static void next_state(folder_run *fr, const mv_mailbox_folder_state *old, const mv_imap_status *sel, bool complete,
                       mv_mailbox_folder_state *out)
{
	uint64_t last = complete && sel->uidnext > 0 ? sel->uidnext - 1 : old->last_uid;
	/* Messages that arrived after SELECT may have been found and archived too. */
	for (guint i = 0; complete && i < fr->cands->len; i++)
		last = MAX(last, g_array_index(fr->cands, candidate, i).uid);
	if (!complete || sel->uidnext == 0) {
		uint64_t upto = complete ? G_MAXUINT32 : 0;
		for (guint i = 0; i < fr->cands->len; i++) {
			candidate *c = &g_array_index(fr->cands, candidate, i);
			if (c->kind == C_FETCH && !c->handed && c->uid > old->last_uid) {
				upto = c->uid - 1;
				break;
			}
		}
		if (upto == G_MAXUINT32) {
			upto = old->last_uid;
			for (guint i = 0; i < fr->cands->len; i++)
				upto = MAX(upto, g_array_index(fr->cands, candidate, i).uid);
		}
		last = MAX(old->last_uid, upto);
	}
	GArray *pend = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	for (guint i = 0; i < fr->cands->len; i++) {
		candidate *c = &g_array_index(fr->cands, candidate, i);
		bool keep = c->kind == C_PENDING || c->leave || (c->kind == C_FETCH && !c->handed);
		if (keep && c->uid <= last)
			g_array_append_val(pend, c->uid);
	}
	guint from = 0;
	out->uidvalidity = sel->uidvalidity;
	out->last_uid = last;
	out->pending = mv_imap_uid_set(pend, &from, G_MAXUINT);
	out->highestmodseq = sel->highestmodseq;
	g_array_unref(pend);
	GString *marks = g_string_new(old->archived_marks ? old->archived_marks : "");
	if (last > old->last_uid)
		g_string_append_printf(marks, "%s%" G_GUINT64_FORMAT "@%" G_GINT64_FORMAT, marks->len ? "," : "", last,
		                       fr->now);
	/* The oldest marks go first: a UID then counts as archived at a later
	 * mark's time, which only ever delays a deletion. */
	char **parts = g_strsplit(marks->str, ",", -1);
	guint n = g_strv_length(parts);
	out->archived_marks = n > MAX_MARKS ? g_strjoinv(",", parts + (n - MAX_MARKS)) : g_strdup(marks->str);
	g_strfreev(parts);
	g_string_free(marks, TRUE);
}

/* The UIDs dealt with for good, for deletion: committed in every archive
 * they went to, or (multidrop, unknown addresses, policy "ignore") routed
 * to none on purpose. */
static GArray *committed_uids(folder_run *fr)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	for (guint i = 0; i < fr->cands->len; i++) {
		candidate *c = &g_array_index(fr->cands, candidate, i);
		bool ignored = c->handed && c->targets == 0 && !c->leave && fr->o->routing;
		if ((c->handed && c->targets > 0 && mv_mailbox_commits_of(fr->commits, i) >= c->targets) || ignored)
			g_array_append_val(out, c->uid);
	}
	return out;
}

static int delete_archived(folder_run *fr, GError **error)
{
	const mv_mailbox_options *o = fr->o;
	if (o->delete_rule == MV_DELETE_NEVER)
		return 0;
	GArray *done = committed_uids(fr);
	GString *q = g_string_new(NULL);
	if (o->delete_rule == MV_DELETE_OLDER_THAN && !o->delete_by_archive_date) {
		char *d = search_date(fr->now - (int64_t)o->delete_after_days * SECONDS_PER_DAY);
		g_string_append_printf(q, "SENTBEFORE %s ", d);
		g_free(d);
	} else if (o->delete_rule == MV_DELETE_OLDER_THAN) {
		/* by archive date: only what earlier runs archived long enough ago */
		GArray *old = g_array_new(FALSE, FALSE, sizeof(uint32_t));
		for (guint i = 0; i < done->len; i++) {
			candidate *c = find_candidate(fr, g_array_index(done, uint32_t, i));
			if (c && c->kind == C_CONFIRM)
				g_array_append_val(old, c->uid);
		}
		g_array_unref(done);
		done = old;
	}
	keep_criteria(o, q);
	GArray *doomed = done->len ? search_in_set(fr, done, q->str, error) : g_array_new(FALSE, FALSE, sizeof(uint32_t));
	g_string_free(q, TRUE);
	g_array_unref(done);
	if (!doomed)
		return -1;
	char *refused = NULL;
	int64_t n = mv_imap_delete_uids(fr->c, doomed, &refused, error);
	g_array_unref(doomed);
	if (refused) {
		char *what = g_strdup_printf("imap://%s/%s", o->mailbox, fr->folder->name);
		mv_ingest_warn(fr->ing, what, refused);
		g_free(what);
		g_free(refused);
	}
	if (n < 0)
		return -1;
	fr->counts->deleted += (uint64_t)n;
	return 0;
}

/* ---- one folder --------------------------------------------------------------------------------- */

static char *archive_folder_of(const mv_mailbox_options *o, const char *name)
{
	if (!o->target_folder || !*o->target_folder)
		return g_strdup(name);
	return g_strdup_printf("%s/%s", o->target_folder, name);
}

/* Reads one folder.  states holds the folder's state before (updated in
 * place); a failure after messages were handed in still saves how far it
 * got, and leaves deletion to the next run. */
static int run_folder(folder_run *fr, GHashTable *states, GError **error)
{
	const mv_mailbox_options *o = fr->o;
	mv_mailbox_folder_state empty = { .pending = "", .archived_marks = "" };
	mv_mailbox_folder_state *st = g_hash_table_lookup(states, fr->folder->name);
	mv_imap_status sel;
	if (mv_imap_select(fr->c, fr->folder, o->delete_rule != MV_DELETE_NEVER, &sel, error) < 0)
		return -1;
	fr->counts->folders++;
	const mv_mailbox_folder_state *from = st && st->uidvalidity == sel.uidvalidity ? st : &empty;
	if (st && st->uidvalidity != sel.uidvalidity) {
		char *what = g_strdup_printf("imap://%s/%s", o->mailbox, fr->folder->name);
		mv_ingest_warn(fr->ing, what, "UIDVALIDITY changed since the last run: every message is read again, and "
		               "those already archived are found by their content");
		g_free(what);
	}
	fr->cands = g_array_new(FALSE, FALSE, sizeof(candidate));
	int rc = find_candidates(fr, from, &sel, error);
	if (rc == 0)
		rc = fetch_metadata(fr, error);
	if (rc == 0) {
		mv_mailbox_commits_reset(fr->commits, fr->cands->len);
		rc = fetch_bodies(fr, error);
	}
	/* Whatever was handed in is made durable before the state says so. */
	GError *flush_err = NULL;
	int flushed = mv_ingest_flush(fr->ing, &flush_err);
	if (flushed < 0) {
		if (rc == 0)
			g_propagate_error(error, flush_err);
		else
			g_clear_error(&flush_err);
		return -1;
	}
	bool keep_old_state = rc < 0 && o->delete_rule != MV_DELETE_NEVER;
	if (!keep_old_state) {
		mv_mailbox_folder_state next = { 0 };
		next_state(fr, from, &sel, rc == 0, &next);
		int saved = o->profile_id > 0
		                ? mv_mailbox_folder_state_set(fr->inst, o->profile_id, o->mailbox, fr->folder->name, &next,
		                                              rc == 0 ? error : NULL)
		                : 0;
		mv_mailbox_folder_state *copy = g_new0(mv_mailbox_folder_state, 1);
		*copy = next;
		g_hash_table_replace(states, g_strdup(fr->folder->name), copy);
		if (saved < 0)
			return -1;
	}
	if (rc == 0)
		rc = delete_archived(fr, error);
	return rc;
}

/* ---- which folders ------------------------------------------------------------------------------- */

static bool name_under(const char *name, const char *top)
{
	char *n = g_utf8_casefold(name, -1), *t = g_utf8_casefold(top, -1);
	size_t len = strlen(t);
	bool under = strcmp(n, t) == 0 || (strncmp(n, t, len) == 0 && n[len] == '/');
	g_free(n);
	g_free(t);
	return under;
}

static bool in_list(const char *name, char **list)
{
	for (char **l = list; l && *l; l++)
		if (name_under(name, *l))
			return true;
	return false;
}

static bool folder_wanted(const mv_mailbox_options *o, const mv_imap_folder *f)
{
	if (f->noselect)
		return false;
	bool listed = o->include_folders && o->include_folders[0] && in_list(f->name, o->include_folders);
	if (o->include_folders && o->include_folders[0] && !listed)
		return false;
	if (in_list(f->name, o->exclude_folders))
		return false;
	/* Junk and Trash go only when named in the include list or allowed. */
	return o->include_junk_trash || listed || !(f->junk || f->trash);
}

/* Whether STATUS says nothing can have changed for this run: no new UID,
 * and nothing pending — or only messages waiting to be read, and CONDSTORE's
 * HIGHESTMODSEQ says no flag changed since (RFC 7162). */
static bool folder_unchanged(const mv_mailbox_options *o, const mv_mailbox_folder_state *st, const mv_imap_status *s)
{
	if (!st || s->uidvalidity == 0 || s->uidvalidity != st->uidvalidity || s->uidnext == 0 ||
	    s->uidnext > st->last_uid + 1 || o->delete_rule == MV_DELETE_OLDER_THAN)
		return false;
	if (!st->pending || !*st->pending)
		return true;
	bool only_flags_wait = o->older_than_days <= 0 && !o->routing;
	return only_flags_wait && s->highestmodseq != 0 && s->highestmodseq == st->highestmodseq;
}

static mv_imap_folder *folder_copy(const mv_imap_folder *f)
{
	mv_imap_folder *c = g_memdup2(f, sizeof *f);
	c->wire = g_strdup(f->wire);
	c->name = g_strdup(f->name);
	return c;
}

/* The folders to select: wanted, and with something STATUS says may be new. */
static GPtrArray *folders_to_read(mv_imap_client *c, const mv_mailbox_options *o, GHashTable *states,
                                  GError **error)
{
	GPtrArray *all = mv_imap_list(c, error);
	if (!all)
		return NULL;
	GPtrArray *wanted = g_ptr_array_new();
	for (guint i = 0; i < all->len; i++)
		if (folder_wanted(o, all->pdata[i]))
			g_ptr_array_add(wanted, all->pdata[i]);
	mv_imap_status *st = g_new0(mv_imap_status, MAX(wanted->len, 1));
	GPtrArray *out = NULL;
	if (mv_imap_status_many(c, wanted, st, error) == 0) {
		out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_imap_folder_free);
		for (guint i = 0; i < wanted->len; i++) {
			const mv_imap_folder *f = wanted->pdata[i];
			if (!folder_unchanged(o, g_hash_table_lookup(states, f->name), &st[i]))
				g_ptr_array_add(out, folder_copy(f));
		}
	}
	g_free(st);
	g_ptr_array_unref(wanted);
	g_ptr_array_unref(all);
	return out;
}

/* ---- the mailbox --------------------------------------------------------------------------------- */

/* A literal larger than ingest takes could not be held: the read fails
 * naming it (a message up to the limit is handed in, and ingest refuses
 * what it cannot take, naming it). */
#define MAX_LITERAL ((size_t)MV_MAX_MESSAGE_SIZE + 1024)

int mv_imap_source_run(mv_instance *inst, mv_ingest *ing, mv_mailbox_commits *commits, const mv_mailbox_options *o,
                       mv_task *task, mv_mailbox_counts *counts, GError **error)
{
	GHashTable *states = o->profile_id > 0 ? mv_mailbox_folder_states(inst, o->profile_id, o->mailbox, error)
	                                       : g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	                                                               (GDestroyNotify)mv_mailbox_folder_state_free);
	if (!states)
		return -1;
	mv_imap_client *c = NULL;
	GPtrArray *folders = NULL;
	guint next = 0;
	int rc = -1;
	for (int attempt = 0;; attempt++) {
		GError *e = NULL;
		if (!c && !(c = mv_imap_open(&o->server, MAX_LITERAL, &e)))
			goto failed;
		if (!folders && !(folders = folders_to_read(c, o, states, &e)))
			goto failed;
		while (next < folders->len) {
			folder_run fr = { inst, ing, commits, o, task, counts, c, folders->pdata[next], NULL, NULL,
				              g_get_real_time() / G_USEC_PER_SEC };
			fr.archive_folder = archive_folder_of(o, fr.folder->name);
			int frc = run_folder(&fr, states, &e);
			g_free(fr.archive_folder);
			if (fr.cands)
				g_array_unref(fr.cands);
			if (frc < 0)
				goto failed;
			next++;
			if (task && task->progress) {
				char *text = g_strdup_printf("%s: %u of %u folders", o->mailbox, next, folders->len);
				task->progress(task->opaque, -1, text);
				g_free(text);
			}
		}
		rc = 0;
		break;
failed:
		mv_imap_close(&c);
		if (!mv_mailbox_reconnect("imap", o->mailbox, ing, task, counts, attempt, e)) {
			g_propagate_error(error, e);
			break;
		}
		g_clear_error(&e);
	}
	mv_imap_close(&c);
	if (folders)
		g_ptr_array_unref(folders);
	g_hash_table_destroy(states);
	return rc;
}

/* ---- Test ------------------------------------------------------------------------------------------ */

json_t *mv_imap_source_test(const mv_mailbox_options *o, GError **error)
{
	mv_imap_client *c = mv_imap_open(&o->server, MAX_LITERAL, error);
	if (!c)
		return NULL;
	GPtrArray *all = mv_imap_list(c, error);
	if (!all) {
		mv_imap_close(&c);
		return NULL;
	}
	json_t *read = json_array(), *passed = json_array(), *missing = json_array();
	for (guint i = 0; i < all->len; i++) {
		const mv_imap_folder *f = all->pdata[i];
		json_array_append_new(folder_wanted(o, f) ? read : passed, json_string(f->name));
	}
	static const char *const wanted_caps[] = { "UIDPLUS", "CONDSTORE", "SPECIAL-USE", "LITERAL+", NULL };
	for (const char *const *w = wanted_caps; *w; w++)
		if (!mv_imap_has(c, *w))
			json_array_append_new(missing, json_string(*w));
	json_t *out = json_pack("{s:s, s:s, s:o, s:o, s:o}", "server", mv_imap_peer(c), "login", "ok", "folders", read,
	                        "foldersPassedOver", passed, "capabilitiesMissing", missing);
	g_ptr_array_unref(all);
	mv_imap_close(&c);
	return out;
}
