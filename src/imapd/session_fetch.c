/* imapd/session_fetch: FETCH and UID FETCH — the items parsed into a job,
 * answered in steps of about IMAP_OUTPUT_HIGH bytes (the loop resumes the
 * job once the client has read them), the last message read kept for the
 * next command, since clients fetch a message's parts one at a time. */
#include "imapd/session_internal.h"
#include "store/store.h"
#include <string.h>

typedef enum {
	F_UID, F_FLAGS, F_INTERNALDATE, F_SIZE, F_ENVELOPE, F_BODY, F_BODYSTRUCTURE,
	F_SECTION,          /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
	F_BINARY, F_BINARY_SIZE,
	F_MODSEQ,
} fetch_kind;

typedef struct fetch_item {
	fetch_kind kind;
	mv_imap_section sec;
	char *name;            /* as answered: "BODY[HEADER.FIELDS (FROM)]", "RFC822" */
	bool partial;
	uint64_t offset, length;
} fetch_item;

typedef struct fetch_job {
	char *tag;
	bool uid;
	GArray *items;         /* fetch_item */
	GArray *indexes;       /* guint: messages of the view to answer, in order */
	guint next;
	bool reads;            /* an item needs the message's bytes */
	bool changedsince;     /* (CHANGEDSINCE n): only messages with a higher MODSEQ */
	uint64_t since_modseq;
	GHashTable *stores;    /* store id -> mv_store*, open for the job */
	unsigned content_fetched;
} fetch_job;

/* ---- FETCH ---------------------------------------------------------------------- */

void fetch_job_free(fetch_job *j)
{
	if (!j)
		return;
	g_free(j->tag);
	for (guint i = 0; i < j->items->len; i++) {
		fetch_item *it = &g_array_index(j->items, fetch_item, i);
		mv_imap_section_clear(&it->sec);
		g_free(it->name);
	}
	g_array_free(j->items, TRUE);
	if (j->indexes)
		g_array_free(j->indexes, TRUE);
	if (j->stores)
		g_hash_table_destroy(j->stores);
	g_free(j);
}

/* "<offset.length>" after a section, if present. */
static bool parse_partial(const char *p, fetch_item *it)
{
	if (!*p)
		return true;
	if (*p != '<')
		return false;
	char *end = NULL;
	guint64 off = g_ascii_strtoull(p + 1, &end, 10);
	if (end == p + 1 || *end != '.')
		return false;
	const char *lp = end + 1;
	guint64 len = g_ascii_strtoull(lp, &end, 10);
	if (end == lp || strcmp(end, ">") != 0 || len == 0 || off > UINT32_MAX || len > UINT32_MAX)
		return false;
	it->partial = true;
	it->offset = off;
	it->length = len;
	return true;
}

/* BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...], BINARY.SIZE[...]. */
static bool parse_section_item(const char *atom, fetch_item *it, const char **why)
{
	static const struct {
		const char *prefix;
		fetch_kind kind;
		const char *answer;
	} kinds[] = { { "BODY.PEEK[", F_SECTION, "BODY[" },        { "BODY[", F_SECTION, "BODY[" },
		      { "BINARY.PEEK[", F_BINARY, "BINARY[" },     { "BINARY.SIZE[", F_BINARY_SIZE, "BINARY.SIZE[" },
		      { "BINARY[", F_BINARY, "BINARY[" } };
	for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
		size_t n = strlen(kinds[i].prefix);
		if (g_ascii_strncasecmp(atom, kinds[i].prefix, n) != 0)
			continue;
		const char *close = strrchr(atom, ']');
		if (!close || close < atom + n - 1) {
			*why = "missing ] after a section";
			return false;
		}
		it->kind = kinds[i].kind;
		GString *canon = g_string_new(kinds[i].answer);
		if (!mv_imap_section_parse(atom + n, (size_t)(close - atom - (long)n), it->kind != F_SECTION, &it->sec,
		                           canon, why)) {
			g_string_free(canon, TRUE);
			return false;
		}
		g_string_append_c(canon, ']');
		if (!parse_partial(close + 1, it) || (it->partial && it->kind == F_BINARY_SIZE)) {
			g_string_free(canon, TRUE);
			mv_imap_section_clear(&it->sec);
			*why = "malformed <offset.length>";
			return false;
		}
		if (it->partial)
			g_string_append_printf(canon, "<%" G_GUINT64_FORMAT ">", it->offset);
		it->name = g_string_free(canon, FALSE);
		return true;
	}
	*why = "unknown FETCH item";
	return false;
}

static bool add_item(fetch_job *j, const char *atom, const char **why)
{
	fetch_item it = { 0 };
	static const struct {
		const char *name;
		fetch_kind kind;
		mv_imap_section_kind sec;
	} simple[] = { { "UID", F_UID, 0 },
		       { "FLAGS", F_FLAGS, 0 },
		       { "INTERNALDATE", F_INTERNALDATE, 0 },
		       { "RFC822.SIZE", F_SIZE, 0 },
		       { "ENVELOPE", F_ENVELOPE, 0 },
		       { "BODY", F_BODY, 0 },
		       { "BODYSTRUCTURE", F_BODYSTRUCTURE, 0 },
		       { "RFC822", F_SECTION, MV_IMAP_SECTION_ALL },
		       { "RFC822.HEADER", F_SECTION, MV_IMAP_SECTION_HEADER },
		       { "RFC822.TEXT", F_SECTION, MV_IMAP_SECTION_TEXT },
		       { "MODSEQ", F_MODSEQ, 0 } };
	for (size_t i = 0; i < G_N_ELEMENTS(simple); i++) {
		if (g_ascii_strcasecmp(atom, simple[i].name) == 0) {
			it.kind = simple[i].kind;
			it.sec.kind = simple[i].sec;
			it.name = g_strdup(simple[i].name);
			g_array_append_val(j->items, it);
			return true;
		}
	}
	if (!parse_section_item(atom, &it, why))
		return false;
	g_array_append_val(j->items, it);
	return true;
}

static bool add_macro(fetch_job *j, const char *atom)
{
	static const char *const fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL };
	static const char *const all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL };
	static const char *const full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", NULL };
	const char *const *list = !g_ascii_strcasecmp(atom, "FAST") ? fast
	                          : !g_ascii_strcasecmp(atom, "ALL") ? all
	                          : !g_ascii_strcasecmp(atom, "FULL") ? full
	                                                              : NULL;
	const char *why;
	for (; list && *list; list++)
		add_item(j, *list, &why);
	return list != NULL;
}

static bool item_reads(const fetch_item *it)
{
	return it->kind >= F_ENVELOPE && it->kind != F_MODSEQ;
}

static bool has_item(const fetch_job *j, fetch_kind kind)
{
	for (guint i = 0; i < j->items->len; i++)
		if (g_array_index(j->items, fetch_item, i).kind == kind)
			return true;
	return false;
}

/* (CHANGEDSINCE n) — the one FETCH modifier (RFC 7162 3.1.4). */
static bool parse_modifiers(fetch_job *j, const imap_arg *mods, const char **why)
{
	if (!mods)
		return true;
	if (mods->type != IMAP_ARG_LIST || mods->list->len != 2 ||
	    !imap_arg_is_atom(mods->list->pdata[0], "CHANGEDSINCE")) {
		*why = "the only FETCH modifier is (CHANGEDSINCE modseq)";
		return false;
	}
	const imap_arg *n = mods->list->pdata[1];
	char *end = NULL;
	j->since_modseq = n->type == IMAP_ARG_ATOM ? g_ascii_strtoull(n->str, &end, 10) : 0;
	if (!end || *end || end == n->str) {
		*why = "CHANGEDSINCE needs a number";
		return false;
	}
	j->changedsince = true;
	return true;
}

/* The items of a FETCH; NULL with *why on a malformed list. */
static fetch_job *parse_fetch(const imap_command *c, bool uid, const char **why)
{
	const imap_arg *what = imap_arg_at(c, 1);
	if (!imap_arg_at(c, 0) || !what || c->args->len > 3) {
		*why = "FETCH needs a sequence set and items";
		return NULL;
	}
	fetch_job *j = g_new0(fetch_job, 1);
	j->items = g_array_new(FALSE, TRUE, sizeof(fetch_item));
	j->uid = uid;
	if (uid)
		add_item(j, "UID", why);
	bool ok = true;
	if (what->type == IMAP_ARG_ATOM && add_macro(j, what->str)) {
		/* a macro */
	} else if (what->type == IMAP_ARG_ATOM) {
		ok = add_item(j, what->str, why);
	} else if (what->type == IMAP_ARG_LIST && what->list->len) {
		for (guint i = 0; ok && i < what->list->len; i++) {
			const imap_arg *a = what->list->pdata[i];
			ok = a->type == IMAP_ARG_ATOM && add_item(j, a->str, why);
			if (a->type != IMAP_ARG_ATOM)
				*why = "FETCH items are atoms";
		}
	} else {
		ok = false;
		*why = "FETCH needs items";
	}
	if (ok)
		ok = parse_modifiers(j, imap_arg_at(c, 2), why);
	if (!ok) {
		fetch_job_free(j);
		return NULL;
	}
	for (guint i = 0; i < j->items->len; i++)
		j->reads = j->reads || item_reads(&g_array_index(j->items, fetch_item, i));
	return j;
}

/* The view's indexes a set names, in ascending order, each once. */
static GArray *indexes_of(const imap_view *v, const char *set, bool uid, bool *ok)
{
	guint n = v->msgs->len;
	uint32_t max = uid ? (n ? g_array_index(v->msgs, imap_msg, n - 1).uid : 0) : n;
	GArray *ranges;
	*ok = imap_seqset_parse(set, max, &ranges);
	GArray *out = g_array_new(FALSE, FALSE, sizeof(guint));
	if (!*ok)
		return out;
	for (guint i = 0; i < n; i++) {
		uint32_t key = uid ? g_array_index(v->msgs, imap_msg, i).uid : i + 1;
		if (imap_seqset_contains(ranges, key))
			g_array_append_val(out, i);
	}
	g_array_free(ranges, TRUE);
	return out;
}

static void put_literal(GString *out, const uint8_t *data, size_t len)
{
	g_string_append_printf(out, "{%zu}\r\n", len);
	g_string_append_len(out, (const char *)data, (gssize)len);
}

static void put_partial(GString *out, const fetch_item *it, const uint8_t *data, size_t len)
{
	if (it->partial) {
		size_t off = it->offset < len ? (size_t)it->offset : len;
		size_t n = MIN(len - off, (size_t)it->length);
		put_literal(out, data + off, n);
		return;
	}
	put_literal(out, data, len);
}

static void close_store(gpointer p)
{
	mv_store *st = p;
	mv_store_close(&st);
}

static mv_store *job_store(fetch_job *j, mv_instance *inst, int store_id, GError **error)
{
	if (!j->stores)
		j->stores = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, close_store);
	mv_store *st = g_hash_table_lookup(j->stores, GINT_TO_POINTER(store_id));
	if (st)
		return st;
	st = mv_instance_open_store(inst, store_id, MV_STORE_READ, error);
	if (st)
		g_hash_table_insert(j->stores, GINT_TO_POINTER(store_id), st);
	return st;
}

/* The message's bytes and structure, from the one-message cache or the store. */
static bool load_message(imap_session *s, fetch_job *j, mv_instance *inst, const imap_msg *m, GError **error)
{
	if (s->cached_raw && s->cached_uid == m->uid && s->cached_store == m->store_id)
		return true;
	forget_cached(s);
	mv_store *st = job_store(j, inst, m->store_id, error);
	GByteArray *raw = NULL;
	if (!st || mv_store_read_message(st, m->number, &raw, error) < 0)
		return false;
	s->cached_raw = raw;
	s->cached_uid = m->uid;
	s->cached_store = m->store_id;
	return true;
}

/* The part tree, built on first need: BODY[] alone (what mirroring clients
 * fetch) never needs it. */
static const mv_imap_message *parsed(imap_session *s)
{
	if (!s->cached_msg)
		s->cached_msg = mv_imap_message_parse(s->cached_raw->data, s->cached_raw->len);
	return s->cached_msg;
}

static bool whole_message(const fetch_item *it)
{
	return it->kind == F_SECTION && it->sec.kind == MV_IMAP_SECTION_ALL && it->sec.nparts == 0;
}

static imap_step fetch_item_out(imap_session *s, const fetch_item *it, const imap_msg *m, GString *out,
                                const char **no_r)
{
	const mv_imap_message *mm = item_reads(it) && !whole_message(it) ? parsed(s) : NULL;
	switch (it->kind) {
	case F_UID: g_string_append_printf(out, "UID %u", m->uid); break;
	case F_FLAGS:
		g_string_append(out, "FLAGS ");
		mv_mail_flags_append_imap(out, m->flags);
		break;
	case F_INTERNALDATE:
		g_string_append(out, "INTERNALDATE ");
		mv_append_imap_date(out, m->date);
		break;
	case F_SIZE: g_string_append_printf(out, "RFC822.SIZE %u", m->size); break;
	case F_MODSEQ: g_string_append_printf(out, "MODSEQ (%u)", m->uid); break;
	case F_ENVELOPE:
		g_string_append(out, "ENVELOPE ");
		mv_imap_message_envelope(mm, false, out);
		break;
	case F_BODY:
	case F_BODYSTRUCTURE:
		g_string_append_printf(out, "%s ", it->kind == F_BODY ? "BODY" : "BODYSTRUCTURE");
		mv_imap_message_bodystructure(mm, it->kind == F_BODYSTRUCTURE, false, out);
		break;
	case F_SECTION: {
		const uint8_t *data = s->cached_raw->data;
		size_t len = s->cached_raw->len;
		GByteArray *owned = NULL;
		if (mm)
			mv_imap_message_section(mm, &it->sec, &data, &len, &owned);
		g_string_append_printf(out, "%s ", it->name);
		put_partial(out, it, data, len);
		if (owned)
			g_byte_array_unref(owned);
		break;
	}
	case F_BINARY:
	case F_BINARY_SIZE: {
		GByteArray *bin = NULL;
		mv_imap_binary_result r = mv_imap_message_binary(mm, &it->sec, &bin);
		if (r == MV_IMAP_BINARY_UNKNOWN_CTE) {
			*no_r = "[UNKNOWN-CTE] a part's Content-Transfer-Encoding is unknown";
			return IMAP_STEP_DONE;
		}
		const uint8_t *data = bin ? bin->data : (const uint8_t *)"";
		size_t len = bin ? bin->len : 0;
		if (it->kind == F_BINARY_SIZE) {
			g_string_append_printf(out, "%s %zu", it->name, len);
		} else {
			g_string_append_printf(out, "%s ", it->name);
			put_partial(out, it, data, len);
		}
		if (bin)
			g_byte_array_unref(bin);
		break;
	}
	}
	return IMAP_STEP_DONE;
}

/* Answers messages of the job until about IMAP_OUTPUT_HIGH bytes are out. */
static imap_step fetch_continue(imap_session *s, GString *out)
{
	fetch_job *j = s->fetch;
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	const char *no = NULL;
	size_t start = out->len;
	while (inst && j->next < j->indexes->len && out->len - start < IMAP_OUTPUT_HIGH && !no) {
		guint idx = g_array_index(j->indexes, guint, j->next++);
		const imap_msg *m = &g_array_index(s->view->msgs, imap_msg, idx);
		if (j->reads && !load_message(s, j, inst, m, &err))
			break;
		gsize line_start = out->len;
		g_string_append_printf(out, "* %u FETCH (", idx + 1);
		for (guint i = 0; i < j->items->len && !no; i++) {
			if (i)
				g_string_append_c(out, ' ');
			fetch_item_out(s, &g_array_index(j->items, fetch_item, i), m, out, &no);
		}
		if (no) {
			g_string_truncate(out, line_start);
			break;
		}
		g_string_append(out, ")\r\n");
		j->content_fetched += j->reads;
	}
	imap_step step = IMAP_STEP_DONE;
	if (err || !inst) {
		mv_log_error("IMAP: FETCH for %s: %s", s->user_name, err ? err->message : "no instance");
		tagged(out, j->tag, "NO", "[SERVERBUG] a message could not be read; the rest of the archive is unaffected");
	} else if (no) {
		tagged(out, j->tag, "NO", no);
	} else if (j->next < j->indexes->len) {
		return IMAP_STEP_MORE;
	} else {
		tagged(out, j->tag, "OK", j->uid ? "UID FETCH completed" : "FETCH completed");
	}
	if (j->content_fetched && inst) {
		char *d = g_strdup_printf("IMAP: %u messages", j->content_fetched);
		audit_activity(s, inst, "MessageRetrieveContent", d);
		g_free(d);
	}
	g_clear_error(&err);
	fetch_job_free(j);
	s->fetch = NULL;
	return step;
}

imap_step cmd_fetch(imap_session *s, const imap_command *c, GString *out, bool uid)
{
	const char *why = NULL;
	fetch_job *j = parse_fetch(c, uid, &why);
	if (!j)
		return tagged(out, c->tag, "BAD", why);
	bool ok;
	j->indexes = indexes_of(s->view, imap_arg_astring(c, 0) ? imap_arg_astring(c, 0) : "", uid, &ok);
	if (!ok) {
		fetch_job_free(j);
		return tagged(out, c->tag, "BAD", "malformed sequence set");
	}
	if (!uid && j->indexes->len == 0 && s->view->msgs->len == 0) {
		fetch_job_free(j);
		return tagged(out, c->tag, "BAD", "the mailbox is empty: no sequence numbers exist");
	}
	/* With CONDSTORE on, every FETCH that shows flags shows MODSEQ too. */
	if (j->changedsince || has_item(j, F_MODSEQ))
		s->condstore = true;
	const char *unused;
	if (s->condstore && !has_item(j, F_MODSEQ) && (j->changedsince || has_item(j, F_FLAGS)))
		add_item(j, "MODSEQ", &unused);
	if (j->changedsince) {
		guint kept = 0;
		for (guint i = 0; i < j->indexes->len; i++) {
			guint idx = g_array_index(j->indexes, guint, i);
			if (g_array_index(s->view->msgs, imap_msg, idx).uid > j->since_modseq)
				g_array_index(j->indexes, guint, kept++) = idx;
		}
		g_array_set_size(j->indexes, kept);
	}
	j->tag = g_strdup(c->tag);
	s->fetch = j;
	return fetch_continue(s, out);
}

imap_step imap_session_resume(imap_session *s, GString *out)
{
	if (!s->fetch)
		return IMAP_STEP_DONE;
	return fetch_continue(s, out);
}
