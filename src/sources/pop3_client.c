/* sources/pop3_client: POP3 over a mail_connection.
 *
 * A multi-line answer is read line by line, each line unstuffed as it
 * arrives into the message's own array, so a message is held once.  RETR
 * commands are pipelined when the server lists PIPELINING (RFC 2449): the
 * answers come back in the order the commands went out. */
#include "sources/pop3_client.h"

#include <string.h>

#define MAX_STATUS_LINE 4096u
#define MAX_DATA_LINE (1u << 20)     /* a line of a message; longer fails the read */
#define MAX_LIST_ITEMS 10000000u
#define RETR_DEPTH 8u

struct mv_pop3_client {
	mv_mail_connection *conn;
	GHashTable *caps;
};

const char *mv_pop3_peer(const mv_pop3_client *c)
{
	return mv_mail_peer(c->conn);
}

bool mv_pop3_has(const mv_pop3_client *c, const char *capability)
{
	return g_hash_table_contains(c->caps, capability);
}

void mv_pop3_item_free(mv_pop3_item *item)
{
	if (!item)
		return;
	g_free(item->uidl);
	g_free(item);
}

bool mv_pop3_unstuff(const uint8_t *data, size_t len, GByteArray *out)
{
	size_t pos = 0;
	while (pos < len) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) + 1 : len;
		const uint8_t *line = data + pos;
		size_t n = end - pos;
		if ((n == 3 && memcmp(line, ".\r\n", 3) == 0) || (n == 2 && memcmp(line, ".\n", 2) == 0))
			return end == len;
		if (!nl)
			return false;
		if (line[0] == '.') {
			line++;
			n--;
		}
		g_byte_array_append(out, line, (guint)n);
		pos = end;
	}
	return false;
}

/* ---- answers ------------------------------------------------------------------------------------- */

/* The status line: +OK (0) or -ERR (-1 with the server's text). */
static int read_status(mv_pop3_client *c, const char *what, GError **error)
{
	GByteArray *line = g_byte_array_new();
	int rc = mv_mail_read_line(c->conn, line, MAX_STATUS_LINE, error);
	if (rc == 0 && !(line->len >= 3 && memcmp(line->data, "+OK", 3) == 0)) {
		char *text = mv_utf8_sanitize((const char *)line->data, (gssize)line->len);
		g_strchomp(text);
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "POP3 server %s refused %s: %s", mv_pop3_peer(c), what, text);
		g_free(text);
		rc = -1;
	}
	g_byte_array_unref(line);
	return rc;
}

/* A multi-line answer's body, unstuffed line by line into out (bounded by
 * max bytes). */
static int read_multiline(mv_pop3_client *c, size_t max, GByteArray *out, GError **error)
{
	GByteArray *line = g_byte_array_new();
	int rc = 0;
	for (;;) {
		g_byte_array_set_size(line, 0);
		if ((rc = mv_mail_read_line(c->conn, line, MAX_DATA_LINE, error)) < 0)
			break;
		if ((line->len == 3 && memcmp(line->data, ".\r\n", 3) == 0) ||
		    (line->len == 2 && memcmp(line->data, ".\n", 2) == 0))
			break;
		size_t skip = line->data[0] == '.' ? 1 : 0;
		if (out->len + line->len - skip > max) {
			g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "POP3 server %s: an answer longer than %zu bytes",
			            mv_pop3_peer(c), max);
			rc = -1;
			break;
		}
		g_byte_array_append(out, line->data + skip, line->len - (guint)skip);
	}
	g_byte_array_unref(line);
	return rc;
}

static int send_line(mv_pop3_client *c, const char *text, GError **error)
{
	char *line = g_strdup_printf("%s\r\n", text);
	int rc = mv_mail_send(c->conn, line, strlen(line), error);
	g_free(line);
	return rc;
}

/* A command with a multi-line answer, its body in out. */
static int multiline_command(mv_pop3_client *c, const char *text, size_t max, GByteArray *out, GError **error)
{
	if (send_line(c, text, error) < 0 || read_status(c, text, error) < 0)
		return -1;
	return read_multiline(c, max, out, error);
}

/* ---- session ------------------------------------------------------------------------------------- */

mv_pop3_client *mv_pop3_open(const mv_mail_server *server, GError **error)
{
	mv_mail_connection *conn = mv_mail_connect(server, error);
	if (!conn)
		return NULL;
	mv_pop3_client *c = g_new0(mv_pop3_client, 1);
	c->conn = conn;
	c->caps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GByteArray *capa = g_byte_array_new();
	GError *e = NULL;
	/* CAPA is optional (RFC 2449): a server without it pipelines nothing. */
	if (multiline_command(c, "CAPA", 65536, capa, &e) == 0) {
		char *text = g_strndup((const char *)capa->data, capa->len);
		char **lines = g_strsplit(text, "\n", -1);
		for (char **l = lines; *l; l++) {
			char *w = g_strstrip(*l);
			char *sp = strchr(w, ' ');
			if (sp)
				*sp = 0;
			if (*w)
				g_hash_table_add(c->caps, g_ascii_strup(w, -1));
		}
		g_strfreev(lines);
		g_free(text);
	} else if (!g_error_matches(e, MV_ERROR, MV_ERR_STATE)) {
		g_propagate_error(error, e);
		g_byte_array_unref(capa);
		mv_pop3_close(&c);
		return NULL;
	}
	g_clear_error(&e);
	g_byte_array_unref(capa);
	return c;
}

void mv_pop3_close(mv_pop3_client **cp)
{
	mv_pop3_client *c = *cp;
	if (!c)
		return;
	mv_mail_close(&c->conn);
	if (c->caps)
		g_hash_table_destroy(c->caps);
	g_free(c);
	*cp = NULL;
}

/* "n token" lines into number → token. */
static GHashTable *numbered_lines(const GByteArray *body)
{
	GHashTable *out = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	char *text = g_strndup((const char *)body->data, body->len);
	char **lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l && g_hash_table_size(out) < MAX_LIST_ITEMS; l++) {
		char *w = g_strstrip(*l);
		char *sp = strchr(w, ' ');
		guint64 n = 0;
		if (!sp)
			continue;
		*sp = 0;
		char *token = g_strstrip(sp + 1);
		/* UIDLs are 1..70 printable characters (RFC 1939 7) */
		if (g_ascii_string_to_unsigned(w, 10, 1, G_MAXUINT, &n, NULL) && *token && strlen(token) <= 70)
			g_hash_table_replace(out, GUINT_TO_POINTER((guint)n), g_strdup(token));
	}
	g_strfreev(lines);
	g_free(text);
	return out;
}

static gint compare_items(gconstpointer a, gconstpointer b)
{
	const mv_pop3_item *x = *(mv_pop3_item *const *)a, *y = *(mv_pop3_item *const *)b;
	return x->number < y->number ? -1 : x->number > y->number;
}

GPtrArray *mv_pop3_list(mv_pop3_client *c, GError **error)
{
	GByteArray *uidl = g_byte_array_new(), *list = g_byte_array_new();
	GPtrArray *out = NULL;
	if (multiline_command(c, "UIDL", 1u << 30, uidl, error) < 0) {
		g_prefix_error(error, "UIDL (the server must give unique ids for incremental runs): ");
		goto done;
	}
	if (multiline_command(c, "LIST", 1u << 30, list, error) < 0)
		goto done;
	GHashTable *ids = numbered_lines(uidl), *sizes = numbered_lines(list);
	out = g_ptr_array_new_with_free_func((GDestroyNotify)mv_pop3_item_free);
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, ids);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		mv_pop3_item *item = g_new0(mv_pop3_item, 1);
		item->number = GPOINTER_TO_UINT(k);
		item->uidl = g_strdup(v);
		const char *size = g_hash_table_lookup(sizes, k);
		item->size = size ? g_ascii_strtoull(size, NULL, 10) : 0;
		g_ptr_array_add(out, item);
	}
	g_ptr_array_sort(out, compare_items);
	g_hash_table_destroy(ids);
	g_hash_table_destroy(sizes);
done:
	g_byte_array_unref(uidl);
	g_byte_array_unref(list);
	return out;
}

int mv_pop3_retrieve(mv_pop3_client *c, const GArray *numbers, size_t max_size, mv_pop3_message_fn fn, void *opaque,
                     GError **error)
{
	guint depth = mv_pop3_has(c, "PIPELINING") ? RETR_DEPTH : 1;
	guint sent = 0, read = 0;
	while (read < numbers->len) {
		while (sent < numbers->len && sent - read < depth) {
			char *cmd = g_strdup_printf("RETR %u", g_array_index(numbers, unsigned, sent));
			int rc = send_line(c, cmd, error);
			g_free(cmd);
			if (rc < 0)
				return -1;
			sent++;
		}
		unsigned number = g_array_index(numbers, unsigned, read++);
		GError *e = NULL;
		if (read_status(c, "RETR", &e) < 0) {
			if (!g_error_matches(e, MV_ERROR, MV_ERR_STATE)) {
				g_propagate_error(error, e);
				return -1;
			}
			g_clear_error(&e);
			if (fn(opaque, number, NULL, error) < 0)
				return -1;
			continue;
		}
		GByteArray *msg = g_byte_array_new();
		int rc = read_multiline(c, max_size, msg, error);
		if (rc == 0)
			rc = fn(opaque, number, msg, error);
		g_byte_array_unref(msg);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int mv_pop3_delete_and_quit(mv_pop3_client **cp, const GArray *numbers, GError **error)
{
	mv_pop3_client *c = *cp;
	int rc = 0;
	guint depth = mv_pop3_has(c, "PIPELINING") ? 32 : 1;
	guint sent = 0, read = 0;
	while (rc == 0 && read < numbers->len) {
		while (rc == 0 && sent < numbers->len && sent - read < depth) {
			char *cmd = g_strdup_printf("DELE %u", g_array_index(numbers, unsigned, sent++));
			rc = send_line(c, cmd, error);
			g_free(cmd);
		}
		if (rc == 0)
			rc = read_status(c, "DELE", error);
		read++;
	}
	/* QUIT even after a refused DELE: the others are then carried out. */
	GError *e = NULL;
	if (send_line(c, "QUIT", &e) < 0 || read_status(c, "QUIT", &e) < 0) {
		if (rc == 0)
			g_propagate_error(error, e);
		else
			g_clear_error(&e);
		rc = -1;
	}
	mv_pop3_close(cp);
	return rc;
}
