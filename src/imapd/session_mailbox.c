/* imapd/session_mailbox: the commands about mailboxes — LIST/LSUB,
 * NAMESPACE, SELECT/EXAMINE, STATUS — and the changes NOOP and IDLE report
 * for the selected one.  The tree is re-read for each command, so a
 * revoked folder privilege shows at once. */
#include "imapd/session_internal.h"
#include <string.h>

/* ---- mailboxes ------------------------------------------------------------------ */

static GPtrArray *tree_of(imap_session *s, mv_instance *inst)
{
	GError *err = NULL;
	GPtrArray *tree = imap_mailbox_tree(inst, s->access, s->user_name, &err);
	if (!tree) {
		mv_log_error("IMAP: mailboxes of %s: %s", s->user_name, err->message);
		g_error_free(err);
	}
	return tree;
}

/* '*' matches anything, '%' anything but the separator. */
static bool wildcard_match(const char *pat, const char *name, int depth)
{
	if (depth > 64)
		return false;
	for (; *pat; pat++, name++) {
		if (*pat == '*' || *pat == '%') {
			for (const char *n = name;; n++) {
				if (wildcard_match(pat + 1, n, depth + 1))
					return true;
				if (!*n || (*pat == '%' && *n == IMAP_SEPARATOR))
					return false;
			}
		}
		if (!*name || *pat != *name)
			return false;
	}
	return *name == 0;
}

static bool name_matches(const char *pattern, const char *encoded)
{
	/* INBOX is case-insensitive, in patterns too. */
	if (g_ascii_strncasecmp(pattern, "INBOX", 5) == 0 && strncmp(encoded, "INBOX", 5) == 0)
		return wildcard_match(pattern + 5, encoded + 5, 0);
	return wildcard_match(pattern, encoded, 0);
}

static void put_list_line(GString *out, const char *verb, const imap_mailbox *m, bool special_use)
{
	g_string_append_printf(out, "* %s (", verb);
	const char *sep = "";
#define FLAG(text)                                                                                                 \
	do {                                                                                                       \
		g_string_append_printf(out, "%s%s", sep, text);                                                    \
		sep = " ";                                                                                         \
	} while (0)
	if (m->flags & IMAP_MBOX_NOSELECT)
		FLAG("\\Noselect");
	FLAG(m->flags & IMAP_MBOX_CHILDREN ? "\\HasChildren" : "\\HasNoChildren");
	if (special_use) {
		if (m->flags & IMAP_MBOX_SENT)
			FLAG("\\Sent");
		if (m->flags & IMAP_MBOX_TRASH)
			FLAG("\\Trash");
		if (m->flags & IMAP_MBOX_DRAFTS)
			FLAG("\\Drafts");
		if (m->flags & IMAP_MBOX_JUNK)
			FLAG("\\Junk");
	}
#undef FLAG
	g_string_append(out, ") \"/\" ");
	put_mailbox_name(out, m->name);
	g_string_append(out, "\r\n");
}

static void collect_patterns(const imap_arg *a, GPtrArray *patterns)
{
	if (!a)
		return;
	if (a->type == IMAP_ARG_LIST) {
		for (guint i = 0; i < a->list->len && patterns->len < 64; i++)
			collect_patterns(a->list->pdata[i], patterns);
		return;
	}
	if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING)
		g_ptr_array_add(patterns, a->str);
}

static bool list_has_option(const imap_arg *a, const char *opt)
{
	for (guint i = 0; a && a->type == IMAP_ARG_LIST && i < a->list->len; i++)
		if (imap_arg_is_atom(a->list->pdata[i], opt))
			return true;
	return false;
}

/* LIST [(selection)] reference pattern|(patterns) [RETURN (options)] (RFC 5258). */
imap_step cmd_list(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool lsub)
{
	guint i = 0;
	const imap_arg *selection = NULL, *ret = NULL;
	if (!lsub && imap_arg_at(c, 0) && imap_arg_at(c, 0)->type == IMAP_ARG_LIST)
		selection = imap_arg_at(c, i++);
	const char *ref = imap_arg_astring(c, i);
	const imap_arg *pats = imap_arg_at(c, i + 1);
	if (!ref || !pats)
		return tagged(out, c->tag, "BAD", "LIST needs a reference and a mailbox pattern");
	if (imap_arg_is_atom(imap_arg_at(c, i + 2), "RETURN"))
		ret = imap_arg_at(c, i + 3);
	GPtrArray *patterns = g_ptr_array_new();
	collect_patterns(pats, patterns);
	bool only_special = list_has_option(selection, "SPECIAL-USE");
	bool special = !lsub && (only_special || list_has_option(ret, "SPECIAL-USE") || (!selection && !ret));
	const char *verb = lsub ? "LSUB" : "LIST";
	if (patterns->len == 1 && !*(const char *)patterns->pdata[0]) {
		g_string_append_printf(out, "* %s (\\Noselect) \"/\" \"\"\r\n", verb);
		g_ptr_array_free(patterns, TRUE);
		return tagged(out, c->tag, "OK", "LIST completed");
	}
	GPtrArray *tree = tree_of(s, inst);
	if (!tree) {
		g_ptr_array_free(patterns, TRUE);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the mailbox list cannot be read now");
	}
	for (guint k = 0; k < tree->len; k++) {
		const imap_mailbox *m = tree->pdata[k];
		if (only_special && !(m->flags & (IMAP_MBOX_SENT | IMAP_MBOX_TRASH | IMAP_MBOX_DRAFTS | IMAP_MBOX_JUNK)))
			continue;
		char *enc = mv_mutf7_encode(m->name);
		bool match = false;
		for (guint p = 0; !match && p < patterns->len; p++) {
			char *full = g_strconcat(ref, (const char *)patterns->pdata[p], NULL);
			match = name_matches(full, enc);
			g_free(full);
		}
		g_free(enc);
		if (match)
			put_list_line(out, verb, m, special);
	}
	g_ptr_array_free(tree, TRUE);
	g_ptr_array_free(patterns, TRUE);
	return tagged(out, c->tag, "OK", lsub ? "LSUB completed" : "LIST completed");
}

imap_step cmd_namespace(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append(out, "* NAMESPACE ((\"\" \"/\")) ((\"" IMAP_OTHER_USERS "/\" \"/\")) NIL\r\n");
	return tagged(out, c->tag, "OK", "NAMESPACE completed");
}

/* The mailbox named by argument i (modified UTF-7), found in a fresh tree. */
static imap_mailbox *find_mailbox(imap_session *s, mv_instance *inst, const imap_command *c, guint i,
                                  const char **why_r)
{
	const char *enc = imap_arg_astring(c, i);
	if (!enc) {
		*why_r = "BAD";
		return NULL;
	}
	char *name = mv_mutf7_decode(enc, NULL);
	if (!name) {
		*why_r = "NO";
		return NULL;
	}
	GPtrArray *tree = tree_of(s, inst);
	imap_mailbox *found = NULL;
	if (tree) {
		imap_mailbox *m = imap_mailbox_find(tree, name);
		guint idx;
		if (m && g_ptr_array_find(tree, m, &idx))
			found = g_ptr_array_steal_index_fast(tree, idx);
		g_ptr_array_free(tree, TRUE);
	}
	g_free(name);
	*why_r = "NO";
	return found;
}

static void audit_folder_access(imap_session *s, mv_instance *inst, const imap_mailbox *m, const char *verb)
{
	GString *d = g_string_new(NULL);
	g_string_append_printf(d, "IMAP %s", verb);
	for (guint i = 0; i < m->sources->len; i++) {
		const imap_source *src = m->sources->pdata[i];
		g_string_append_printf(d, "%s %s/%s", i ? "," : "", src->archive, src->path);
	}
	audit_activity(s, inst, "FolderAccess", d->str);
	g_string_free(d, TRUE);
}

static uint32_t highest_modseq(uint32_t uidnext)
{
	return uidnext > 1 ? uidnext - 1 : 1;
}

imap_step cmd_select(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool examine)
{
	unselect(s);
	const char *why;
	imap_mailbox *m = find_mailbox(s, inst, c, 0, &why);
	if (!m)
		return tagged(out, c->tag, why, *why == 'B' ? "SELECT needs a mailbox name" : "[NONEXISTENT] no such mailbox");
	if (m->flags & IMAP_MBOX_NOSELECT) {
		imap_mailbox_free(m);
		return tagged(out, c->tag, "NO", "[CANNOT] that name holds other mailboxes but is no mailbox itself");
	}
	GError *err = NULL;
	imap_view *v = NULL;
	if (imap_view_load(inst, m, &v, &err) < 0) {
		mv_log_error("IMAP: mailbox of %s: %s", s->user_name, err->message);
		g_error_free(err);
		imap_mailbox_free(m);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the mailbox cannot be read now");
	}
	s->mailbox = m;
	s->view = v;
	s->examine = examine;
	s->state = ST_SELECTED;
	guint first_unseen = 0;
	for (guint i = 0; i < v->msgs->len && !first_unseen; i++)
		if (!(g_array_index(v->msgs, imap_msg, i).flags & MV_MAIL_FLAG_SEEN))
			first_unseen = i + 1;
	g_string_append(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	                     "* OK [PERMANENTFLAGS ()] the archive is read-only\r\n");
	g_string_append_printf(out, "* %u EXISTS\r\n* 0 RECENT\r\n", v->msgs->len);
	if (first_unseen)
		g_string_append_printf(out, "* OK [UNSEEN %u] first unseen\r\n", first_unseen);
	g_string_append_printf(out, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] predicted next UID\r\n",
	                       v->uidvalidity, v->uidnext);
	g_string_append_printf(out, "* OK [HIGHESTMODSEQ %u] archived flags never change\r\n", highest_modseq(v->uidnext));
	if (imap_arg_is_atom(imap_arg_at(c, 1), "CONDSTORE") ||
	    (imap_arg_at(c, 1) && imap_arg_at(c, 1)->type == IMAP_ARG_LIST && imap_arg_at(c, 1)->list->len &&
	     imap_arg_is_atom(imap_arg_at(c, 1)->list->pdata[0], "CONDSTORE")))
		s->condstore = true;
	audit_folder_access(s, inst, m, examine ? "EXAMINE" : "SELECT");
	return tagged(out, c->tag, "OK", examine ? "[READ-ONLY] EXAMINE completed" : "[READ-ONLY] SELECT completed");
}

imap_step cmd_status(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
{
	const imap_arg *items = imap_arg_at(c, 1);
	if (!items || items->type != IMAP_ARG_LIST || c->args->len != 2)
		return tagged(out, c->tag, "BAD", "STATUS needs a mailbox and a list of items");
	const char *why;
	imap_mailbox *m = find_mailbox(s, inst, c, 0, &why);
	if (!m)
		return tagged(out, c->tag, why, *why == 'B' ? "STATUS needs a mailbox name" : "[NONEXISTENT] no such mailbox");
	if (m->flags & IMAP_MBOX_NOSELECT) {
		imap_mailbox_free(m);
		return tagged(out, c->tag, "NO", "[CANNOT] that name is no mailbox");
	}
	uint32_t messages, unseen, uidnext, uidvalidity;
	GError *err = NULL;
	if (imap_mailbox_status(inst, m, &messages, &unseen, &uidnext, &uidvalidity, &err) < 0) {
		mv_log_error("IMAP: status of a mailbox of %s: %s", s->user_name, err->message);
		g_error_free(err);
		imap_mailbox_free(m);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the mailbox cannot be read now");
	}
	GString *line = g_string_new("* STATUS ");
	put_mailbox_name(line, m->name);
	g_string_append(line, " (");
	for (guint i = 0; i < items->list->len; i++) {
		const imap_arg *a = items->list->pdata[i];
		const char *sep = i ? " " : "";
		if (imap_arg_is_atom(a, "MESSAGES"))
			g_string_append_printf(line, "%sMESSAGES %u", sep, messages);
		else if (imap_arg_is_atom(a, "UNSEEN"))
			g_string_append_printf(line, "%sUNSEEN %u", sep, unseen);
		else if (imap_arg_is_atom(a, "UIDNEXT"))
			g_string_append_printf(line, "%sUIDNEXT %u", sep, uidnext);
		else if (imap_arg_is_atom(a, "UIDVALIDITY"))
			g_string_append_printf(line, "%sUIDVALIDITY %u", sep, uidvalidity);
		else if (imap_arg_is_atom(a, "RECENT"))
			g_string_append_printf(line, "%sRECENT 0", sep);
		else if (imap_arg_is_atom(a, "HIGHESTMODSEQ"))
			g_string_append_printf(line, "%sHIGHESTMODSEQ %u", sep, highest_modseq(uidnext));
		else {
			g_string_free(line, TRUE);
			imap_mailbox_free(m);
			return tagged(out, c->tag, "BAD", "unknown STATUS item");
		}
	}
	g_string_append(line, ")\r\n");
	g_string_append_len(out, line->str, (gssize)line->len);
	g_string_free(line, TRUE);
	imap_mailbox_free(m);
	return tagged(out, c->tag, "OK", "STATUS completed");
}

/* ---- changes seen by NOOP and IDLE ------------------------------------------------ */

/* Reloads the selected mailbox and tells the client what went and came. */
static bool report_changes(imap_session *s, mv_instance *inst, GString *out)
{
	imap_view *nv = NULL;
	GError *err = NULL;
	if (imap_view_load(inst, s->mailbox, &nv, &err) < 0) {
		mv_log_warn("IMAP: re-reading a mailbox of %s: %s", s->user_name, err->message);
		g_error_free(err);
		return true;
	}
	imap_view *ov = s->view;
	if (nv->uidvalidity != ov->uidvalidity) {
		imap_view_free(nv);
		g_string_append(out, "* BYE the mailbox's UIDs changed; please reconnect\r\n");
		return false;
	}
	/* Gone: messages of the old view not in the new one, reported with
	 * the sequence numbers they have at the moment of each EXPUNGE. */
	guint removed = 0;
	for (guint i = 0; i < ov->msgs->len; i++) {
		uint32_t uid = g_array_index(ov->msgs, imap_msg, i).uid;
		if (imap_view_find_uid(nv, uid) < 0) {
			g_string_append_printf(out, "* %u EXPUNGE\r\n", i + 1 - removed);
			removed++;
		}
	}
	uint32_t old_max = ov->msgs->len ? g_array_index(ov->msgs, imap_msg, ov->msgs->len - 1).uid : 0;
	/* Only messages above every UID seen are new: the view keeps UID order. */
	GArray *kept = g_array_new(FALSE, FALSE, sizeof(imap_msg));
	for (guint i = 0; i < nv->msgs->len; i++) {
		const imap_msg *m = &g_array_index(nv->msgs, imap_msg, i);
		if (m->uid > old_max || imap_view_find_uid(ov, m->uid) >= 0)
			g_array_append_val(kept, *m);
	}
	bool grew = kept->len != ov->msgs->len - removed;
	g_array_free(nv->msgs, TRUE);
	nv->msgs = kept;
	imap_view_free(ov);
	s->view = nv;
	if (grew || removed)
		g_string_append_printf(out, "* %u EXISTS\r\n", nv->msgs->len);
	return true;
}

imap_step cmd_noop(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
{
	if (s->state == ST_SELECTED && !report_changes(s, inst, out))
		return IMAP_STEP_CLOSE;
	return tagged(out, c->tag, "OK", "NOOP completed");
}

imap_step cmd_idle(imap_session *s, const imap_command *c, GString *out)
{
	s->wait = WAIT_IDLE;
	g_free(s->wait_tag);
	s->wait_tag = g_strdup(c->tag);
	g_string_append(out, "+ idling\r\n");
	return IMAP_STEP_LINE;
}

imap_step imap_session_poll(imap_session *s, GString *out)
{
	if (s->wait != WAIT_IDLE || s->state != ST_SELECTED)
		return IMAP_STEP_LINE;
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst) {
		g_error_free(err);
		return IMAP_STEP_LINE;
	}
	if (!user_still_valid(s, inst)) {
		g_string_append(out, "* BYE your logon is no longer valid\r\n");
		return IMAP_STEP_CLOSE;
	}
	if (!report_changes(s, inst, out))
		return IMAP_STEP_CLOSE;
	return IMAP_STEP_LINE;
}
