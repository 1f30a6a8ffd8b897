/* imapd/session_search: SEARCH and UID SEARCH — the RETURN and CHARSET
 * prefixes, the answer as SEARCH or ESEARCH (RFC 4731) with the MODSEQ
 * CONDSTORE asks for; the keys themselves are evaluated by search.c. */
#include "imapd/session_internal.h"
#include <string.h>

/* ---- SEARCH ---------------------------------------------------------------------- */

imap_step cmd_search(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool uid)
{
	guint first = 0;
	bool esearch = false;
	unsigned want = 0; /* 1 MIN, 2 MAX, 4 COUNT, 8 ALL */
	if (imap_arg_is_atom(imap_arg_at(c, 0), "RETURN")) {
		const imap_arg *opts = imap_arg_at(c, 1);
		if (!opts || opts->type != IMAP_ARG_LIST)
			return tagged(out, c->tag, "BAD", "RETURN needs a list");
		esearch = true;
		for (guint i = 0; i < opts->list->len; i++) {
			const imap_arg *o = opts->list->pdata[i];
			want |= imap_arg_is_atom(o, "MIN") ? 1 : imap_arg_is_atom(o, "MAX") ? 2
			      : imap_arg_is_atom(o, "COUNT") ? 4 : imap_arg_is_atom(o, "ALL") ? 8 : 16;
		}
		if (want & 16)
			return tagged(out, c->tag, "BAD", "unknown RETURN option");
		if (!want)
			want = 8;
		first = 2;
	}
	if (imap_arg_is_atom(imap_arg_at(c, first), "CHARSET")) {
		const char *cs = imap_arg_astring(c, first + 1);
		if (!cs || (g_ascii_strcasecmp(cs, "UTF-8") && g_ascii_strcasecmp(cs, "US-ASCII")))
			return tagged(out, c->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] search strings must be UTF-8");
		first += 2;
	}
	GArray *hits = NULL;
	const char *bad = NULL;
	GError *err = NULL;
	bool modseq = false;
	mv_search_coverage coverage;
	if (imap_search(inst, s->access, s->mailbox, s->view, c, first, &hits, &modseq, &coverage, &bad, &err) < 0) {
		if (bad)
			return tagged(out, c->tag, "BAD", bad);
		if (g_error_matches(err, MV_ERROR, MV_ERR_LIMIT)) {
			/* A substring is searched as a prefix, which the index bounds
			 * (search.h); the words stay out of the reply, which they
			 * could break. */
			g_error_free(err);
			return tagged(out, c->tag, "NO", "[LIMIT] a search string begins too many words of this archive's "
			              "index: give more letters");
		}
		mv_log_error("IMAP: SEARCH for %s: %s", s->user_name, err->message);
		g_error_free(err);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the search index cannot be read now");
	}
	GString *line = g_string_new(NULL);
	guint count = 0;
	uint32_t min = 0, max = 0;
	GString *all = g_string_new(NULL);
	for (guint i = 0; i < hits->len; i++) {
		if (!hits->data[i])
			continue;
		uint32_t v = uid ? g_array_index(s->view->msgs, imap_msg, i).uid : i + 1;
		min = count ? MIN(min, v) : v;
		max = MAX(max, v);
		count++;
		g_string_append_printf(all, "%s%u", all->len ? (esearch ? "," : " ") : "", v);
	}
	if (modseq)
		s->condstore = true;
	/* RFC 7162 3.1.5: a MODSEQ search names the highest MODSEQ found (= UID). */
	uint32_t top_uid = 0;
	for (guint i = 0; modseq && i < hits->len; i++)
		if (hits->data[i])
			top_uid = MAX(top_uid, g_array_index(s->view->msgs, imap_msg, i).uid);
	if (!esearch) {
		g_string_append_printf(line, "* SEARCH%s%s", all->len ? " " : "", all->str);
		if (top_uid)
			g_string_append_printf(line, " (MODSEQ %u)", top_uid);
		g_string_append(line, "\r\n");
	} else {
		g_string_append_printf(line, "* ESEARCH (TAG \"%s\")%s", c->tag, uid ? " UID" : "");
		if ((want & 1) && count)
			g_string_append_printf(line, " MIN %u", min);
		if ((want & 2) && count)
			g_string_append_printf(line, " MAX %u", max);
		if (want & 4)
			g_string_append_printf(line, " COUNT %u", count);
		if ((want & 8) && count)
			g_string_append_printf(line, " ALL %s", all->str);
		if (top_uid)
			g_string_append_printf(line, " MODSEQ %u", top_uid);
		g_string_append(line, "\r\n");
	}
	g_string_append_len(out, line->str, (gssize)line->len);
	g_string_free(line, TRUE);
	g_string_free(all, TRUE);
	g_array_free(hits, TRUE);
	char *d = g_strdup_printf("IMAP: %u hits", count);
	audit_activity(s, inst, "MessageSearch", d);
	g_free(d);
	/* A client shows no more than the hits, but its log and its user may
	 * read the text: a partial answer says so there. */
	char *note = mv_search_coverage_note(&coverage);
	char *text = g_strdup_printf("%sSEARCH completed%s%s", uid ? "UID " : "", note ? "; " : "", note ? note : "");
	int rc = tagged(out, c->tag, "OK", text);
	g_free(text);
	g_free(note);
	return rc;
}
