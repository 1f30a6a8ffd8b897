/* imapd/session: one connection's IMAP state and its command handlers.
 *
 * Runs on the server's worker threads, one call at a time per connection,
 * with that thread's own mv_instance (SQLite connections are never shared
 * between threads).  Everything a client may do is a read: the archive is
 * opened read-only and every command that would change something is
 * refused.  The user is re-read before each command, so a changed password,
 * a revoked app password or a lost `imap` login privilege ends the session,
 * and folder privileges are re-read too: a revoked folder disappears at
 * once.  A FETCH of many messages is answered in steps of about
 * IMAP_OUTPUT_HIGH bytes; the loop calls back once the client has read
 * them, so a slow client holds no worker and no unbounded buffer.
 *
 * CONDSTORE costs nothing here: archived flags never change, so a
 * message's MODSEQ is its UID (it is modified once, when it arrives, and
 * later arrivals have higher UIDs) and a mailbox's HIGHESTMODSEQ is its
 * UIDNEXT - 1, which never goes down. */
#include "imapd/session.h"
#include "search/search.h"
#include "store/store.h"
#include <sodium.h>
#include <string.h>

typedef enum { ST_NOAUTH, ST_AUTH, ST_SELECTED, ST_LOGOUT } session_state;
typedef enum { WAIT_NONE, WAIT_AUTH, WAIT_IDLE } wait_kind;

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

struct imap_session {
	char *data_dir, *remote;
	bool tls, starttls_offered, plaintext_logon;
	mv_logon *logon;
	session_state state;
	char *user_name;
	int64_t auth_generation;
	mv_access *access;
	imap_mailbox *mailbox;     /* selected */
	imap_view *view;
	bool examine;
	bool condstore;            /* RFC 7162: enabled by ENABLE, SELECT (CONDSTORE), a MODSEQ fetch or search */
	wait_kind wait;
	char *wait_tag;
	fetch_job *fetch;
	/* The last message read: clients fetch a message's parts one command at a time. */
	uint32_t cached_uid;
	int cached_store;
	GByteArray *cached_raw;
	mv_imap_message *cached_msg;
};

static const char CAPS_COMMON[] = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE";
static const char CAPS_AUTHED[] =
	" NAMESPACE UIDPLUS CHILDREN SPECIAL-USE LIST-EXTENDED ESEARCH UNSELECT BINARY CONDSTORE";

/* ---- life ------------------------------------------------------------------ */

imap_session *imap_session_new(const imap_session_env *env)
{
	imap_session *s = g_new0(imap_session, 1);
	s->data_dir = g_strdup(env->data_dir);
	s->remote = g_strdup(env->remote);
	s->tls = env->tls;
	s->starttls_offered = env->starttls_offered;
	s->plaintext_logon = env->plaintext_logon;
	s->logon = env->logon;
	return s;
}

static void forget_cached(imap_session *s)
{
	mv_imap_message_free(&s->cached_msg);
	if (s->cached_raw)
		g_byte_array_unref(s->cached_raw);
	s->cached_raw = NULL;
	s->cached_uid = 0;
}

static void fetch_job_free(fetch_job *j)
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

static void unselect(imap_session *s)
{
	imap_mailbox_free(s->mailbox);
	s->mailbox = NULL;
	imap_view_free(s->view);
	s->view = NULL;
	forget_cached(s);
	if (s->state == ST_SELECTED)
		s->state = ST_AUTH;
}

void imap_session_free(imap_session *s)
{
	if (!s)
		return;
	unselect(s);
	fetch_job_free(s->fetch);
	mv_access_free(&s->access);
	g_free(s->user_name);
	g_free(s->wait_tag);
	g_free(s->data_dir);
	g_free(s->remote);
	g_free(s);
}

static mv_instance *thread_instance(imap_session *s, GError **error)
{
	return mv_https_thread_instance(s->data_dir, error);
}

static void audit_activity(imap_session *s, mv_instance *inst, const char *event, const char *details)
{
	if (!inst || !mv_audit_wanted(inst, event, false))
		return;
	GError *err = NULL;
	if (mv_audit_append(inst, s->user_name, s->remote, event, true, details, &err) < 0) {
		mv_log_error("audit log: IMAP %s of %s: %s", event, s->user_name, err->message);
		g_error_free(err);
	}
}

void imap_session_end(imap_session *s)
{
	if (!s->user_name)
		return;
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst)
		g_error_free(err);
	audit_activity(s, inst, "UserLogoff", "IMAP");
	g_clear_pointer(&s->user_name, g_free);
}

/* ---- small writers ---------------------------------------------------------- */

static void put_capabilities(imap_session *s, GString *out)
{
	g_string_append(out, CAPS_COMMON);
	if (s->state == ST_NOAUTH) {
		if (s->starttls_offered && !s->tls)
			g_string_append(out, " STARTTLS");
		if (s->tls || s->plaintext_logon)
			g_string_append(out, " AUTH=PLAIN");
		else
			g_string_append(out, " LOGINDISABLED");
	} else {
		g_string_append(out, CAPS_AUTHED);
	}
}

void imap_session_greeting(imap_session *s, GString *out)
{
	g_string_append(out, "* OK [CAPABILITY ");
	put_capabilities(s, out);
	g_string_append(out, "] mailvault IMAP ready (read-only archive)\r\n");
}

static imap_step tagged(GString *out, const char *tag, const char *status, const char *text)
{
	g_string_append_printf(out, "%s %s %s\r\n", tag, status, text);
	return IMAP_STEP_DONE;
}

static void put_mailbox_name(GString *out, const char *utf8)
{
	char *enc = mv_mutf7_encode(utf8);
	imap_append_string(out, enc, strlen(enc), false);
	g_free(enc);
}

/* ---- the user, checked before every command ------------------------------------- */

/* false: the user is gone, changed credentials or lost the imap privilege. */
static bool user_still_valid(imap_session *s, mv_instance *inst)
{
	mv_user *u = mv_user_get(inst, s->user_name, NULL);
	bool ok = u && u->auth_generation == s->auth_generation && (u->login_privileges & MV_LOGIN_IMAP);
	if (ok) {
		mv_access *a = mv_access_for_user(inst, u, NULL);
		if (a) {
			mv_access_free(&s->access);
			s->access = a;
		} else {
			ok = false;
		}
	}
	mv_user_free(u);
	return ok;
}

/* ---- logon --------------------------------------------------------------------- */

static imap_step logon(imap_session *s, const char *tag, const char *name, const char *password, GString *out)
{
	if (!s->tls && !s->plaintext_logon)
		return tagged(out, tag, "NO", "[PRIVACYREQUIRED] logon needs TLS: use STARTTLS or the TLS port");
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst) {
		mv_log_error("IMAP: %s", err->message);
		g_error_free(err);
		return tagged(out, tag, "NO", "[UNAVAILABLE] the archive cannot be opened now");
	}
	mv_user *u = NULL;
	mv_logon_result r = mv_logon_check(s->logon, inst, name, password, MV_LOGON_CLIENT, s->remote, "IMAP", &u);
	if (r == MV_LOGON_ERROR)
		return tagged(out, tag, "NO", "[UNAVAILABLE] logon cannot be checked now");
	if (r == MV_LOGON_FAILED)
		return tagged(out, tag, "NO", "[AUTHENTICATIONFAILED] wrong user name or password");
	if (!(u->login_privileges & MV_LOGIN_IMAP)) {
		mv_logon_failed(s->logon, inst, u->name, s->remote, "IMAP", "no imap login privilege");
		mv_user_free(u);
		return tagged(out, tag, "NO", "[AUTHORIZATIONFAILED] this user may not log on with IMAP");
	}
	s->access = mv_access_for_user(inst, u, &err);
	if (!s->access) {
		mv_log_error("IMAP: privileges of %s: %s", u->name, err->message);
		g_error_free(err);
		mv_user_free(u);
		return tagged(out, tag, "NO", "[UNAVAILABLE] privileges cannot be read now");
	}
	s->user_name = g_strdup(u->name);
	s->auth_generation = u->auth_generation;
	s->state = ST_AUTH;
	mv_user_free(u);
	mv_logon_note_session(s->logon, s->user_name, s->remote, "imap");
	audit_activity(s, inst, "UserLogon", "IMAP");
	g_string_append_printf(out, "%s OK [CAPABILITY ", tag);
	put_capabilities(s, out);
	g_string_append(out, "] logged on\r\n");
	return IMAP_STEP_DONE;
}

static imap_step cmd_login(imap_session *s, const imap_command *c, GString *out)
{
	const char *name = imap_arg_astring(c, 0), *password = imap_arg_astring(c, 1);
	if (!name || !password || c->args->len != 2)
		return tagged(out, c->tag, "BAD", "LOGIN needs a user name and a password");
	return logon(s, c->tag, name, password, out);
}

/* SASL PLAIN: [authzid] NUL authcid NUL password, base64. */
static imap_step plain_response(imap_session *s, const char *tag, const char *b64, GString *out)
{
	if (strcmp(b64, "*") == 0)
		return tagged(out, tag, "BAD", "AUTHENTICATE cancelled");
	gsize len = 0;
	size_t n = strlen(b64);
	if (n == 0 || n > 4096 || n % 4 != 0 || strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return tagged(out, tag, "BAD", "AUTHENTICATE PLAIN: malformed base64");
	guchar *raw = g_base64_decode(b64, &len);
	char *authz = (char *)raw;
	char *nul1 = memchr(raw, 0, len);
	char *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - (char *)raw)) : NULL;
	imap_step step;
	if (!nul1 || !nul2 || memchr(nul2 + 1, 0, len - (size_t)(nul2 + 1 - (char *)raw))) {
		step = tagged(out, tag, "BAD", "AUTHENTICATE PLAIN: expected authzid NUL user NUL password");
	} else {
		char *user = g_strndup(nul1 + 1, (gsize)(nul2 - nul1 - 1));
		char *password = g_strndup(nul2 + 1, len - (gsize)(nul2 + 1 - (char *)raw));
		if (nul1 != authz && strcmp(authz, user) != 0)
			step = tagged(out, tag, "NO", "[AUTHORIZATIONFAILED] acting as another user is not supported");
		else
			step = logon(s, tag, user, password, out);
		sodium_memzero(password, strlen(password));
		g_free(password);
		g_free(user);
	}
	sodium_memzero(raw, len);
	g_free(raw);
	return step;
}

static imap_step cmd_authenticate(imap_session *s, const imap_command *c, GString *out)
{
	const char *mech = imap_arg_astring(c, 0);
	if (!mech || c->args->len > 2)
		return tagged(out, c->tag, "BAD", "AUTHENTICATE needs a mechanism");
	if (g_ascii_strcasecmp(mech, "PLAIN") != 0)
		return tagged(out, c->tag, "NO", "[CANNOT] only AUTHENTICATE PLAIN is supported");
	if (!s->tls && !s->plaintext_logon)
		return tagged(out, c->tag, "NO", "[PRIVACYREQUIRED] logon needs TLS: use STARTTLS or the TLS port");
	const char *initial = imap_arg_astring(c, 1);
	if (initial)
		return plain_response(s, c->tag, strcmp(initial, "=") == 0 ? "" : initial, out);
	s->wait = WAIT_AUTH;
	g_free(s->wait_tag);
	s->wait_tag = g_strdup(c->tag);
	g_string_append(out, "+ \r\n");
	return IMAP_STEP_LINE;
}

static imap_step cmd_starttls(imap_session *s, const imap_command *c, GString *out)
{
	if (!s->starttls_offered || s->tls)
		return tagged(out, c->tag, "BAD", "STARTTLS is not available on this connection");
	tagged(out, c->tag, "OK", "begin TLS negotiation now");
	return IMAP_STEP_STARTTLS;
}

void imap_session_tls_started(imap_session *s)
{
	s->tls = true;
}

/* ---- any state ------------------------------------------------------------------ */

static imap_step cmd_capability(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append(out, "* CAPABILITY ");
	put_capabilities(s, out);
	g_string_append(out, "\r\n");
	return tagged(out, c->tag, "OK", "CAPABILITY completed");
}

static imap_step cmd_id(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append_printf(out, "* ID (\"name\" \"mailvault\" \"version\" \"%s\")\r\n", MV_VERSION);
	return tagged(out, c->tag, "OK", "ID completed");
}

static imap_step cmd_logout(imap_session *s, const imap_command *c, GString *out)
{
	g_string_append(out, "* BYE logging out\r\n");
	tagged(out, c->tag, "OK", "LOGOUT completed");
	imap_session_end(s);
	s->state = ST_LOGOUT;
	return IMAP_STEP_CLOSE;
}

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
static imap_step cmd_list(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool lsub)
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

static imap_step cmd_namespace(imap_session *s, const imap_command *c, GString *out)
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

static imap_step cmd_select(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool examine)
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

static imap_step cmd_status(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
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

static imap_step cmd_noop(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
{
	if (s->state == ST_SELECTED && !report_changes(s, inst, out))
		return IMAP_STEP_CLOSE;
	return tagged(out, c->tag, "OK", "NOOP completed");
}

static imap_step cmd_idle(imap_session *s, const imap_command *c, GString *out)
{
	s->wait = WAIT_IDLE;
	g_free(s->wait_tag);
	s->wait_tag = g_strdup(c->tag);
	g_string_append(out, "+ idling\r\n");
	return IMAP_STEP_LINE;
}

bool imap_session_idling(const imap_session *s)
{
	return s->wait == WAIT_IDLE;
}

bool imap_session_authenticated(const imap_session *s)
{
	return s->state != ST_NOAUTH;
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

/* ---- FETCH ---------------------------------------------------------------------- */

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

static imap_step cmd_fetch(imap_session *s, const imap_command *c, GString *out, bool uid)
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

/* ---- SEARCH ---------------------------------------------------------------------- */

static imap_step cmd_search(imap_session *s, mv_instance *inst, const imap_command *c, GString *out, bool uid)
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
	if (imap_search(inst, s->access, s->mailbox, s->view, c, first, &hits, &modseq, &bad, &err) < 0) {
		if (bad)
			return tagged(out, c->tag, "BAD", bad);
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
	return tagged(out, c->tag, "OK", uid ? "UID SEARCH completed" : "SEARCH completed");
}

/* ---- dispatch --------------------------------------------------------------------- */

static imap_step refuse_write(const imap_command *c, GString *out)
{
	if (!strcmp(c->name, "STORE") || !strcmp(c->name, "UID STORE") || !strcmp(c->name, "EXPUNGE") ||
	    !strcmp(c->name, "UID EXPUNGE"))
		return tagged(out, c->tag, "NO", "[READ-ONLY] the archive is read-only");
	return tagged(out, c->tag, "NO", "[CANNOT] the archive is read-only: nothing can be changed over IMAP");
}

static bool is_write(const char *name)
{
	static const char *const writes[] = { "STORE",  "UID STORE", "COPY",   "UID COPY",  "MOVE",        "UID MOVE",
		                              "APPEND", "EXPUNGE",   "UID EXPUNGE", "CREATE", "DELETE", "RENAME",
		                              "SUBSCRIBE", "UNSUBSCRIBE" };
	for (size_t i = 0; i < G_N_ELEMENTS(writes); i++)
		if (strcmp(name, writes[i]) == 0)
			return true;
	return false;
}

static imap_step cmd_enable(imap_session *s, const imap_command *c, GString *out)
{
	if (!c->args->len)
		return tagged(out, c->tag, "BAD", "ENABLE needs capabilities");
	g_string_append(out, "* ENABLED");
	for (guint i = 0; i < c->args->len; i++) {
		if (imap_arg_is_atom(imap_arg_at(c, i), "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			g_string_append(out, " CONDSTORE");
		}
	}
	g_string_append(out, "\r\n");
	return tagged(out, c->tag, "OK", "ENABLE completed");
}

static imap_step authed_command(imap_session *s, mv_instance *inst, const imap_command *c, GString *out)
{
	const char *n = c->name;
	if (is_write(n)) {
		if (!strcmp(n, "SUBSCRIBE"))
			return tagged(out, c->tag, "OK", "every mailbox is subscribed already");
		return refuse_write(c, out);
	}
	if (!strcmp(n, "LIST"))
		return cmd_list(s, inst, c, out, false);
	if (!strcmp(n, "LSUB"))
		return cmd_list(s, inst, c, out, true);
	if (!strcmp(n, "NAMESPACE"))
		return cmd_namespace(s, c, out);
	if (!strcmp(n, "SELECT") || !strcmp(n, "EXAMINE"))
		return cmd_select(s, inst, c, out, !strcmp(n, "EXAMINE"));
	if (!strcmp(n, "STATUS"))
		return cmd_status(s, inst, c, out);
	if (!strcmp(n, "ENABLE"))
		return cmd_enable(s, c, out);
	if (!strcmp(n, "NOOP") || !strcmp(n, "CHECK"))
		return cmd_noop(s, inst, c, out);
	if (!strcmp(n, "IDLE"))
		return cmd_idle(s, c, out);
	if (!strcmp(n, "UNSELECT") || !strcmp(n, "CLOSE")) {
		if (s->state != ST_SELECTED)
			return tagged(out, c->tag, "BAD", "no mailbox is selected");
		unselect(s);
		return tagged(out, c->tag, "OK", "mailbox closed");
	}
	bool fetch = !strcmp(n, "FETCH") || !strcmp(n, "UID FETCH");
	bool search = !strcmp(n, "SEARCH") || !strcmp(n, "UID SEARCH");
	if ((fetch || search) && s->state != ST_SELECTED)
		return tagged(out, c->tag, "BAD", "no mailbox is selected");
	if (fetch)
		return cmd_fetch(s, c, out, n[0] == 'U');
	if (search)
		return cmd_search(s, inst, c, out, n[0] == 'U');
	if (!strcmp(n, "LOGIN") || !strcmp(n, "AUTHENTICATE"))
		return tagged(out, c->tag, "BAD", "already logged on");
	if (!strcmp(n, "STARTTLS"))
		return tagged(out, c->tag, "BAD", "STARTTLS only before logon");
	return tagged(out, c->tag, "BAD", "unknown command");
}

static imap_step run_command(imap_session *s, const imap_command *c, GString *out)
{
	const char *n = c->name;
	if (!strcmp(n, "CAPABILITY"))
		return cmd_capability(s, c, out);
	if (!strcmp(n, "LOGOUT"))
		return cmd_logout(s, c, out);
	if (!strcmp(n, "ID"))
		return cmd_id(s, c, out);
	if (s->state == ST_NOAUTH) {
		if (!strcmp(n, "NOOP"))
			return tagged(out, c->tag, "OK", "NOOP completed");
		if (!strcmp(n, "STARTTLS"))
			return cmd_starttls(s, c, out);
		if (!strcmp(n, "LOGIN"))
			return cmd_login(s, c, out);
		if (!strcmp(n, "AUTHENTICATE"))
			return cmd_authenticate(s, c, out);
		return tagged(out, c->tag, "BAD", "log on first");
	}
	GError *err = NULL;
	mv_instance *inst = thread_instance(s, &err);
	if (!inst) {
		mv_log_error("IMAP: %s", err->message);
		g_error_free(err);
		return tagged(out, c->tag, "NO", "[UNAVAILABLE] the archive cannot be opened now");
	}
	if (!user_still_valid(s, inst)) {
		g_string_append(out, "* BYE your logon is no longer valid\r\n");
		return IMAP_STEP_CLOSE;
	}
	return authed_command(s, inst, c, out);
}

imap_step imap_session_command(imap_session *s, const uint8_t *cmd, size_t len, GString *out)
{
	char *tag = NULL;
	const char *why = NULL;
	imap_command *c = imap_command_parse(cmd, len, &tag, &why);
	if (!c) {
		g_string_append_printf(out, "%s BAD %s\r\n", tag ? tag : "*", why);
		g_free(tag);
		return IMAP_STEP_DONE;
	}
	g_free(tag);
	imap_step step = run_command(s, c, out);
	imap_command_free(c);
	return step;
}

imap_step imap_session_line(imap_session *s, const char *line, size_t len, GString *out)
{
	wait_kind w = s->wait;
	s->wait = WAIT_NONE;
	char *tag = s->wait_tag;
	s->wait_tag = NULL;
	imap_step step = IMAP_STEP_DONE;
	if (w == WAIT_IDLE) {
		if (len == 4 && g_ascii_strncasecmp(line, "DONE", 4) == 0)
			tagged(out, tag, "OK", "IDLE terminated");
		else
			tagged(out, tag, "BAD", "expected DONE to end IDLE");
	} else if (w == WAIT_AUTH) {
		char *text = g_strndup(line, len);
		step = plain_response(s, tag, text, out);
		sodium_memzero(text, len);
		g_free(text);
	}
	g_free(tag);
	return step;
}
