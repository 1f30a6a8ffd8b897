/* sources/imap_client: IMAP commands over a mail_connection.
 *
 * Pipelining is the point of owning the client: curl's IMAP does one
 * request per transfer, so 100,000 messages would be 100,000 round trips.
 * Here tagged commands go out while earlier ones are still answering, and
 * every untagged response is handed to the caller as it arrives; the
 * tagged answers are matched in order.  (RFC 9051 5.5 allows pipelining
 * any commands that do not depend on each other's result; UID FETCH
 * ranges, STATUS of other folders and UID STORE of disjoint sets are such.) */
#include "sources/imap_client.h"
#include "mime/mime.h"

#include <string.h>

#define MAX_LINE (1u << 20)            /* one response line outside its literals */
#define MAX_RESPONSE_PARTS 100000      /* literals in one response */

struct mv_imap_client {
	mv_mail_connection *conn;
	size_t max_literal;
	unsigned next_tag;
	GHashTable *caps;                  /* upper-case capability words */
};

const char *mv_imap_peer(const mv_imap_client *c)
{
	return mv_mail_peer(c->conn);
}

bool mv_imap_has(const mv_imap_client *c, const char *capability)
{
	return g_hash_table_contains(c->caps, capability);
}

/* ---- responses ------------------------------------------------------------------------------ */

/* One whole response: its lines, each literal read after the line that
 * announced it. */
static GByteArray *read_response(mv_imap_client *c, GError **error)
{
	GByteArray *raw = g_byte_array_new();
	for (unsigned parts = 0;; parts++) {
		size_t line_start = raw->len;
		if (mv_mail_read_line(c->conn, raw, MAX_LINE, error) < 0)
			goto fail;
		uint64_t n = 0;
		if (!mv_imap_literal_at_end(raw->data + line_start, raw->len - line_start, &n))
			return raw;
		if (parts >= MAX_RESPONSE_PARTS) {
			g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "IMAP server %s: a response of more than %u literals",
			            mv_imap_peer(c), MAX_RESPONSE_PARTS);
			goto fail;
		}
		if (n > c->max_literal || n > G_MAXUINT - raw->len - MAX_LINE) {
			g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "IMAP server %s: a literal of %" G_GUINT64_FORMAT
			            " bytes, more than the limit of %zu", mv_imap_peer(c), n, c->max_literal);
			goto fail;
		}
		if (mv_mail_read_exact(c->conn, (size_t)n, raw, error) < 0)
			goto fail;
	}
fail:
	g_byte_array_unref(raw);
	return NULL;
}

static void set_capabilities(mv_imap_client *c, const mv_imap_response *r, const char *code)
{
	g_hash_table_remove_all(c->caps);
	if (code) {
		char **words = g_strsplit(code, " ", -1);
		for (char **w = words + (words[0] ? 1 : 0); *w; w++)
			if (**w)
				g_hash_table_add(c->caps, g_ascii_strup(*w, -1));
		g_strfreev(words);
		return;
	}
	for (const mv_imap_value *v = mv_imap_value_at(r, r->first); v; v = mv_imap_value_at(r, v->next)) {
		char *w = mv_imap_dup(r, v);
		if (w)
			g_hash_table_add(c->caps, g_ascii_strup(w, -1));
		g_free(w);
	}
}

/* What every command's reader does with an untagged response before the
 * caller sees it: capabilities, BYE. */
static int common_untagged(mv_imap_client *c, const mv_imap_response *r, GError **error)
{
	if (r->type == MV_IMAP_RESP_DATA && strcmp(r->name, "CAPABILITY") == 0)
		set_capabilities(c, r, NULL);
	else if (r->type == MV_IMAP_RESP_STATUS && r->code && g_ascii_strncasecmp(r->code, "CAPABILITY ", 11) == 0)
		set_capabilities(c, r, r->code);
	else if (r->type == MV_IMAP_RESP_STATUS && strcmp(r->status, "BYE") == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s closed the session: %s", mv_imap_peer(c), r->text);
		return -1;
	}
	return 0;
}

/* The first word or two of a command, for errors (never its arguments,
 * which may name a user). */
static char *command_name(const char *text)
{
	const char *sp = strchr(text, ' ');
	if (sp && g_ascii_strncasecmp(text, "UID ", 4) == 0)
		sp = strchr(sp + 1, ' ');
	return sp ? g_strndup(text, (gsize)(sp - text)) : g_strdup(text);
}

static int send_command(mv_imap_client *c, const char *text, char **tag_r, GError **error)
{
	char *tag = g_strdup_printf("mv%u", ++c->next_tag);
	char *line = g_strdup_printf("%s %s\r\n", tag, text);
	int rc = mv_mail_send(c->conn, line, strlen(line), error);
	g_free(line);
	if (rc < 0) {
		g_free(tag);
		return -1;
	}
	*tag_r = tag;
	return 0;
}

int mv_imap_pipeline(mv_imap_client *c, GPtrArray *commands, guint depth, mv_imap_untagged_fn fn, void *opaque,
                     GError **error)
{
	GQueue tags = G_QUEUE_INIT;
	GQueue names = G_QUEUE_INIT;
	guint next = 0;
	int rc = 0;
	if (depth == 0)
		depth = 1;
	while (rc == 0 && (next < commands->len || !g_queue_is_empty(&tags))) {
		while (next < commands->len && g_queue_get_length(&tags) < depth) {
			char *tag = NULL;
			if (send_command(c, commands->pdata[next], &tag, error) < 0) {
				rc = -1;
				break;
			}
			g_queue_push_tail(&tags, tag);
			g_queue_push_tail(&names, command_name(commands->pdata[next]));
			next++;
		}
		if (rc < 0)
			break;
		GByteArray *raw = read_response(c, error);
		if (!raw) {
			rc = -1;
			break;
		}
		mv_imap_response r;
		if (mv_imap_response_parse(raw, &r, error) < 0) {
			g_prefix_error(error, "IMAP server %s: ", mv_imap_peer(c));
			rc = -1;
		} else if (strcmp(r.tag, "*") == 0) {
			rc = common_untagged(c, &r, error);
			if (rc == 0 && fn)
				rc = fn(opaque, raw, &r, error);
		} else if (r.type == MV_IMAP_RESP_STATUS && strcmp(r.tag, g_queue_peek_head(&tags)) == 0) {
			char *name = g_queue_pop_head(&names);
			g_free(g_queue_pop_head(&tags));
			if (r.code && g_ascii_strncasecmp(r.code, "CAPABILITY ", 11) == 0)
				set_capabilities(c, &r, r.code);
			if (strcmp(r.status, "OK") != 0) {
				g_set_error(error, MV_ERROR, MV_ERR_STATE, "IMAP server %s refused %s: %s %s", mv_imap_peer(c), name,
				            r.status, r.text);
				rc = -1;
			}
			g_free(name);
		} else if (r.type != MV_IMAP_RESP_CONTINUATION) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "IMAP server %s: an answer to a command not sent (tag %s)",
			            mv_imap_peer(c), r.tag);
			rc = -1;
		}
		mv_imap_response_clear(&r);
		g_byte_array_unref(raw);
	}
	g_queue_clear_full(&tags, g_free);
	g_queue_clear_full(&names, g_free);
	return rc;
}

int mv_imap_command(mv_imap_client *c, const char *text, mv_imap_untagged_fn fn, void *opaque, GError **error)
{
	GPtrArray one = { .pdata = (gpointer *)&text, .len = 1 };
	return mv_imap_pipeline(c, &one, 1, fn, opaque, error);
}

/* ---- session ----------------------------------------------------------------------------------- */

mv_imap_client *mv_imap_open(const mv_mail_server *server, size_t max_literal, GError **error)
{
	mv_mail_connection *conn = mv_mail_connect(server, error);
	if (!conn)
		return NULL;
	mv_imap_client *c = g_new0(mv_imap_client, 1);
	c->conn = conn;
	c->max_literal = max_literal;
	c->caps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (mv_imap_command(c, "CAPABILITY", NULL, NULL, error) < 0)
		goto fail;
	if (!mv_imap_has(c, "IMAP4REV1") && !mv_imap_has(c, "IMAP4REV2")) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "IMAP server %s: capability IMAP4rev1 missing (it lists "
		            "neither IMAP4rev1 nor IMAP4rev2)", mv_imap_peer(c));
		goto fail;
	}
	/* CONDSTORE's HIGHESTMODSEQ in SELECT and STATUS tells a folder whose
	 * flags changed; ENABLE is the quiet way to ask for it. */
	if (mv_imap_has(c, "CONDSTORE") && mv_imap_has(c, "ENABLE") &&
	    mv_imap_command(c, "ENABLE CONDSTORE", NULL, NULL, error) < 0)
		goto fail;
	return c;
fail:
	mv_imap_close(&c);
	return NULL;
}

void mv_imap_close(mv_imap_client **cp)
{
	mv_imap_client *c = *cp;
	if (!c)
		return;
	if (c->conn && c->caps && g_hash_table_size(c->caps) > 0) {
		char *tag = NULL;
		/* A polite end; the answer is not waited for. */
		if (send_command(c, "LOGOUT", &tag, NULL) == 0)
			g_free(tag);
	}
	mv_mail_close(&c->conn);
	if (c->caps)
		g_hash_table_destroy(c->caps);
	g_free(c);
	*cp = NULL;
}

/* ---- names ------------------------------------------------------------------------------------- */

void mv_imap_append_mailbox(GString *command, const char *name)
{
	bool quotable = true;
	for (const char *p = name; *p && quotable; p++)
		quotable = *p != '\r' && *p != '\n';
	if (!quotable) {
		/* A synchronising literal would need a continuation wait; names
		 * with line breaks do not occur in LIST answers we send back. */
		g_string_append_printf(command, "{%zu+}\r\n%s", strlen(name), name);
		return;
	}
	g_string_append_c(command, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(command, '\\');
		g_string_append_c(command, *p);
	}
	g_string_append_c(command, '"');
}

void mv_imap_folder_free(mv_imap_folder *f)
{
	if (!f)
		return;
	g_free(f->wire);
	g_free(f->name);
	g_free(f);
}

static bool common_name(const char *last_level, const char *const *names)
{
	for (const char *const *n = names; *n; n++)
		if (g_ascii_strcasecmp(last_level, *n) == 0)
			return true;
	return false;
}

static const char *const junk_names[] = { "Junk", "Spam", "Junk E-mail", "Junk Email", "Bulk Mail", "Junk-E-Mail",
	                                      "Spamverdacht", NULL };
static const char *const trash_names[] = { "Trash", "Deleted Items", "Deleted Messages", "Bin", "Papierkorb",
	                                       "Gelöschte Elemente", "Gelöschte Objekte", NULL };

/* The name decoded to UTF-8 with '/' between levels; a '/' inside a level
 * of a server whose delimiter is another character becomes '_'.  Names
 * are modified UTF-7 (we never ENABLE UTF8=ACCEPT, so a server sends them
 * so even when it could do otherwise); a server that sends raw UTF-8
 * anyway, which is no valid modified UTF-7, has its name kept as sent. */
static char *decode_name(const char *wire, char delim)
{
	char *decoded = mv_mutf7_decode(wire, NULL);
	if (!decoded)
		decoded = mv_utf8_sanitize(wire, -1);
	if (delim && delim != '/') {
		g_strdelimit(decoded, "/", '_');
		g_strdelimit(decoded, (char[]){ delim, 0 }, '/');
	}
	if (g_ascii_strncasecmp(decoded, "INBOX", 5) == 0 && (decoded[5] == 0 || decoded[5] == '/'))
		memcpy(decoded, "Inbox", 5);
	return decoded;
}


static int on_list(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	(void)raw;
	(void)error;
	GPtrArray *out = opaque;
	if (r->type != MV_IMAP_RESP_DATA || strcmp(r->name, "LIST") != 0)
		return 0;
	const mv_imap_value *attrs = mv_imap_value_at(r, r->first);
	const mv_imap_value *delim = attrs ? mv_imap_value_at(r, attrs->next) : NULL;
	const mv_imap_value *name = delim ? mv_imap_value_at(r, delim->next) : NULL;
	if (!attrs || attrs->kind != MV_IMAP_LIST || !name || name->kind == MV_IMAP_LIST || name->kind == MV_IMAP_NIL)
		return 0;   /* not a LIST answer we can use: passed over */
	mv_imap_folder *f = g_new0(mv_imap_folder, 1);
	f->wire = mv_imap_dup(r, name);
	size_t dlen = 0;
	const uint8_t *d = mv_imap_bytes(r, delim, &dlen);
	f->delimiter = d && dlen == 1 ? (char)d[0] : 0;
	for (const mv_imap_value *a = mv_imap_value_at(r, attrs->child); a; a = mv_imap_value_at(r, a->next)) {
		f->noselect |= mv_imap_atom_is(r, a, "\\Noselect") || mv_imap_atom_is(r, a, "\\NonExistent");
		f->junk |= mv_imap_atom_is(r, a, "\\Junk");
		f->trash |= mv_imap_atom_is(r, a, "\\Trash");
		f->sent |= mv_imap_atom_is(r, a, "\\Sent");
		f->drafts |= mv_imap_atom_is(r, a, "\\Drafts");
	}
	f->name = decode_name(f->wire, f->delimiter);
	/* By name only at the top level or right below the Inbox (Courier's
	 * "INBOX.Junk"): "Projects/Spam" is somebody's folder about spam. */
	const char *last = f->delimiter ? strrchr(f->name, '/') : NULL;
	bool top = !last || (last - f->name == 5 && strncmp(f->name, "Inbox", 5) == 0);
	last = last ? last + 1 : f->name;
	f->junk |= top && common_name(last, junk_names);
	f->trash |= top && common_name(last, trash_names);
	g_ptr_array_add(out, f);
	return 0;
}

GPtrArray *mv_imap_list(mv_imap_client *c, GError **error)
{
	GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_imap_folder_free);
	const char *cmd = mv_imap_has(c, "SPECIAL-USE") && mv_imap_has(c, "LIST-EXTENDED")
	                      ? "LIST \"\" \"*\" RETURN (SPECIAL-USE)" : "LIST \"\" \"*\"";
	if (mv_imap_command(c, cmd, on_list, out, error) < 0) {
		g_ptr_array_unref(out);
		return NULL;
	}
	return out;
}

/* ---- folders' state ------------------------------------------------------------------------------ */

static void status_code(const char *code, mv_imap_status *st)
{
	if (!code)
		return;
	const char *sp = strchr(code, ' ');
	if (!sp)
		return;
	guint64 n = g_ascii_strtoull(sp + 1, NULL, 10);
	if (g_ascii_strncasecmp(code, "UIDVALIDITY ", 12) == 0)
		st->uidvalidity = n;
	else if (g_ascii_strncasecmp(code, "UIDNEXT ", 8) == 0)
		st->uidnext = n;
	else if (g_ascii_strncasecmp(code, "HIGHESTMODSEQ ", 14) == 0)
		st->highestmodseq = n;
}

static int on_select(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	(void)raw;
	(void)error;
	mv_imap_status *st = opaque;
	if (r->type == MV_IMAP_RESP_STATUS)
		status_code(r->code, st);
	else if (r->type == MV_IMAP_RESP_DATA && strcmp(r->name, "EXISTS") == 0 && r->number >= 0)
		st->messages = (uint64_t)r->number;
	return 0;
}

int mv_imap_select(mv_imap_client *c, const mv_imap_folder *f, bool read_write, mv_imap_status *st, GError **error)
{
	*st = (mv_imap_status){ 0 };
	GString *cmd = g_string_new(read_write ? "SELECT " : "EXAMINE ");
	mv_imap_append_mailbox(cmd, f->wire);
	int rc = mv_imap_command(c, cmd->str, on_select, st, error);
	g_string_free(cmd, TRUE);
	if (rc == 0 && st->uidvalidity == 0) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "IMAP server %s: folder '%s' has no UIDVALIDITY", mv_imap_peer(c),
		            f->name);
		return -1;
	}
	return rc;
}

typedef struct status_ctx {
	GPtrArray *folders;
	mv_imap_status *st;
	GHashTable *index;     /* wire name → position + 1 */
} status_ctx;

static int on_status(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	(void)raw;
	(void)error;
	status_ctx *sc = opaque;
	if (r->type != MV_IMAP_RESP_DATA || strcmp(r->name, "STATUS") != 0)
		return 0;
	const mv_imap_value *name = mv_imap_value_at(r, r->first);
	const mv_imap_value *items = name ? mv_imap_value_at(r, name->next) : NULL;
	char *wire = mv_imap_dup(r, name);
	guint at = wire ? GPOINTER_TO_UINT(g_hash_table_lookup(sc->index, wire)) : 0;
	g_free(wire);
	if (at == 0 || !items)
		return 0;
	mv_imap_status *st = &sc->st[at - 1];
	mv_imap_number(r, mv_imap_pair(r, items, "UIDVALIDITY"), &st->uidvalidity);
	mv_imap_number(r, mv_imap_pair(r, items, "UIDNEXT"), &st->uidnext);
	mv_imap_number(r, mv_imap_pair(r, items, "MESSAGES"), &st->messages);
	mv_imap_number(r, mv_imap_pair(r, items, "HIGHESTMODSEQ"), &st->highestmodseq);
	return 0;
}

int mv_imap_status_many(mv_imap_client *c, GPtrArray *folders, mv_imap_status *st, GError **error)
{
	status_ctx sc = { folders, st, g_hash_table_new(g_str_hash, g_str_equal) };
	GPtrArray *cmds = g_ptr_array_new_with_free_func(g_free);
	const char *items = mv_imap_has(c, "CONDSTORE") ? " (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"
	                                                : " (UIDVALIDITY UIDNEXT MESSAGES)";
	for (guint i = 0; i < folders->len; i++) {
		const mv_imap_folder *f = folders->pdata[i];
		st[i] = (mv_imap_status){ 0 };
		g_hash_table_insert(sc.index, f->wire, GUINT_TO_POINTER(i + 1));
		GString *cmd = g_string_new("STATUS ");
		mv_imap_append_mailbox(cmd, f->wire);
		g_string_append(cmd, items);
		g_ptr_array_add(cmds, g_string_free(cmd, FALSE));
	}
	/* Pipelined; a folder refused (it went away since LIST) is a failure
	 * of that command only: run them one by one then. */
	GError *e = NULL;
	int rc = mv_imap_pipeline(c, cmds, mv_imap_has(c, "LITERAL+") ? 32 : 16, on_status, &sc, &e);
	if (rc < 0 && g_error_matches(e, MV_ERROR, MV_ERR_STATE)) {
		g_clear_error(&e);
		rc = 0;
		for (guint i = 0; rc == 0 && i < cmds->len; i++) {
			GError *one = NULL;
			rc = mv_imap_command(c, cmds->pdata[i], on_status, &sc, &one);
			if (rc < 0 && g_error_matches(one, MV_ERROR, MV_ERR_STATE)) {
				g_clear_error(&one);
				rc = 0;
			}
			if (one)
				g_propagate_error(&e, one);
		}
	}
	if (e)
		g_propagate_error(error, e);
	g_ptr_array_unref(cmds);
	g_hash_table_destroy(sc.index);
	return rc;
}

/* ---- UIDs --------------------------------------------------------------------------------------- */

static int on_search(void *opaque, GByteArray *raw, const mv_imap_response *r, GError **error)
{
	(void)raw;
	(void)error;
	GArray *uids = opaque;
	if (r->type != MV_IMAP_RESP_DATA || strcmp(r->name, "SEARCH") != 0)
		return 0;
	for (const mv_imap_value *v = mv_imap_value_at(r, r->first); v; v = mv_imap_value_at(r, v->next)) {
		uint64_t n;
		if (mv_imap_number(r, v, &n) && n > 0 && n <= G_MAXUINT32) {
			uint32_t u = (uint32_t)n;
			g_array_append_val(uids, u);
		}
	}
	return 0;
}

static gint compare_u32(gconstpointer a, gconstpointer b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

GArray *mv_imap_uid_search(mv_imap_client *c, const char *criteria, GError **error)
{
	GArray *uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	char *cmd = g_strdup_printf("UID SEARCH %s", criteria);
	int rc = mv_imap_command(c, cmd, on_search, uids, error);
	g_free(cmd);
	if (rc < 0) {
		g_array_unref(uids);
		return NULL;
	}
	g_array_sort(uids, compare_u32);
	return uids;
}

char *mv_imap_uid_set(const GArray *uids, guint *from, guint max_items)
{
	GString *s = g_string_new(NULL);
	guint i = *from, end = MIN(uids->len, *from + max_items);
	while (i < end) {
		uint32_t first = g_array_index(uids, uint32_t, i), last = first;
		while (i + 1 < end && g_array_index(uids, uint32_t, i + 1) == last + 1)
			last = g_array_index(uids, uint32_t, ++i);
		i++;
		if (s->len)
			g_string_append_c(s, ',');
		if (first == last)
			g_string_append_printf(s, "%u", first);
		else
			g_string_append_printf(s, "%u:%u", first, last);
	}
	*from = end;
	return g_string_free(s, FALSE);
}

int64_t mv_imap_delete_uids(mv_imap_client *c, const GArray *uids, char **refused_r, GError **error)
{
	*refused_r = NULL;
	if (uids->len == 0)
		return 0;
	bool uidplus = mv_imap_has(c, "UIDPLUS");
	if (!uidplus) {
		GArray *other = mv_imap_uid_search(c, "DELETED", error);
		if (!other)
			return -1;
		guint n = other->len;
		g_array_unref(other);
		if (n > 0) {
			*refused_r = g_strdup_printf("the server has no UIDPLUS and %u other message(s) of the folder are marked "
			                             "\\Deleted: an EXPUNGE would remove them too, so nothing was deleted", n);
			return 0;
		}
	}
	GPtrArray *stores = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *expunges = g_ptr_array_new_with_free_func(g_free);
	for (guint from = 0; from < uids->len;) {
		char *set = mv_imap_uid_set(uids, &from, 1000);
		g_ptr_array_add(stores, g_strdup_printf("UID STORE %s +FLAGS.SILENT (\\Deleted)", set));
		g_ptr_array_add(expunges, uidplus ? g_strdup_printf("UID EXPUNGE %s", set) : g_strdup("EXPUNGE"));
		g_free(set);
	}
	int rc = mv_imap_pipeline(c, stores, 8, NULL, NULL, error);
	if (rc == 0)
		rc = mv_imap_pipeline(c, expunges, uidplus ? 8 : 1, NULL, NULL, error);
	g_ptr_array_unref(stores);
	g_ptr_array_unref(expunges);
	return rc < 0 ? -1 : (int64_t)uids->len;
}
