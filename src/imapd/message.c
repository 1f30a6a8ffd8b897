/* imapd/message: one archived message as IMAP FETCH sees it.
 *
 * The part tree comes from our own line scan, not from GMime: BODY[...]
 * must be exact slices of the archived bytes (clients compare BODY[] with
 * what they stored), so every part keeps byte offsets of its header and
 * body.  The scan is one forward pass over lines with a stack of open
 * multipart boundaries (innermost first, longest prefix wins — Dovecot's
 * rules, which real mail has been tested against for years); O(n) times the
 * bounded depth.  Header values (ENVELOPE, BODYSTRUCTURE) are read with our
 * own small RFC 5322/2045/2231 parsers because IMAP wants them as written —
 * encoded words stay encoded, which GMime's decoders would undo.
 *
 * Output follows Dovecot where RFC 3501 leaves room (MISSING_DOMAIN,
 * parameter case as written, "charset" "us-ascii" added to text parts,
 * section numbers into a leaf part), so clients see what they know.  The
 * only recursion (writing BODYSTRUCTURE) is bounded by the tree depth.
 *
 * This file holds the scan and the header fields it reads; what FETCH builds
 * from the tree is in message_*.c (message_internal.h lists them). */
#include "imapd/message_internal.h"

#include <string.h>

/* ---- header fields ---- */

/* The next field of a header region; false at its end or its empty line.
 * A field is a line plus the lines after it that begin with white space. */
bool next_field(const uint8_t *d, size_t end, size_t *pos, hfield *f)
{
	size_t p = *pos;
	if (p >= end || is_empty_line(d, p, end))
		return false;
	f->start = p;
	size_t first_end = line_end(d, p, end);
	p = first_end;
	while (p < end && is_wsp(d[p]))
		p = line_end(d, p, end);
	f->end = p;
	*pos = p;
	const uint8_t *colon = memchr(d + f->start, ':', first_end - f->start);
	f->name_len = 0;
	f->value = f->end;
	if (colon) {
		size_t n = (size_t)(colon - d) - f->start;
		while (n > 0 && is_wsp(d[f->start + n - 1]))
			n--;
		f->name_len = n;
		f->value = (size_t)(colon - d) + 1;
	}
	return true;
}

bool field_is(const uint8_t *d, const hfield *f, const char *name, size_t name_len)
{
	return f->name_len == name_len && name_len > 0 && ascii_ncasecmp((const char *)d + f->start, name, name_len) == 0;
}

/* The value unfolded (CR and LF removed, RFC 5322 2.2.3), NUL dropped (IMAP
 * cannot carry it) and trimmed. */
static char *field_value(const uint8_t *d, const hfield *f)
{
	GString *s = g_string_sized_new(f->end - f->value);
	for (size_t i = f->value; i < f->end; i++)
		if (d[i] != '\r' && d[i] != '\n' && d[i] != '\0')
			g_string_append_c(s, (char)d[i]);
	size_t a = 0;
	while (a < s->len && is_wsp(s->str[a]))
		a++;
	g_string_erase(s, 0, (gssize)a);
	while (s->len > 0 && is_wsp(s->str[s->len - 1]))
		g_string_truncate(s, s->len - 1);
	return g_string_free(s, FALSE);
}

/* First occurrences of the named fields in one pass: values[i] for
 * names[i] (NULL when absent), caller frees. */
void header_values(const uint8_t *d, size_t start, size_t end, const char *const *names, size_t n,
                          char **values)
{
	memset(values, 0, n * sizeof *values);
	hfield f;
	size_t pos = start;
	while (next_field(d, end, &pos, &f))
		for (size_t i = 0; i < n; i++)
			if (!values[i] && field_is(d, &f, names[i], strlen(names[i])))
				values[i] = field_value(d, &f);
}

/* Every occurrence of an address field joined into one list: a repeated
 * To or Cc (broken mailers write them) loses no address, as in Dovecot. */
char *address_field(const uint8_t *d, size_t start, size_t end, const char *name)
{
	GString *all = NULL;
	hfield f;
	size_t pos = start;
	while (next_field(d, end, &pos, &f)) {
		if (!field_is(d, &f, name, strlen(name)))
			continue;
		char *v = field_value(d, &f);
		if (!all)
			all = g_string_new(v);
		else if (*v) {
			g_string_append(all, all->len ? ", " : "");
			g_string_append(all, v);
		}
		g_free(v);
	}
	return all ? g_string_free(all, FALSE) : NULL;
}

/* ---- the scan ---- */

typedef struct {
	uint32_t node;
	const char *b; /* the boundary, owned by bounds_text */
	size_t len;
} bound;

typedef struct {
	mv_imap_message *m;
	GArray *bounds;      /* bound, innermost last */
	GPtrArray *bounds_text;
	uint32_t cur;        /* innermost open node */
	size_t region_start; /* where the current content began: after a structural line */
} scan;

static uint32_t add_child(scan *sc, uint32_t parent, size_t start)
{
	mv_imap_message *m = sc->m;
	if (m->nodes->len >= MV_IMAP_MAX_PARTS)
		return NONE;
	node c = {.hdr_start = start, .hdr_end = start, .body_start = start, .body_end = start, .parent = parent,
	          .first_child = NONE, .last_child = NONE, .next = NONE, .header_open = true,
	          .depth = (uint8_t)(N(m, parent)->depth + 1)};
	uint32_t id = m->nodes->len;
	g_array_append_val(m->nodes, c);
	node *p = N(m, parent);
	if (p->last_child == NONE)
		p->first_child = id;
	else
		N(m, p->last_child)->next = id;
	p->last_child = id;
	return id;
}

/* The header of node id ended at pos (after its empty line when it had
 * one): decide what its body is.  Parts at the depth bound or beyond the
 * part bound stay leaves. */
static void end_header(scan *sc, uint32_t id, size_t pos, bool may_descend)
{
	mv_imap_message *m = sc->m;
	node *n = N(m, id);
	n->header_open = false;
	n->hdr_end = n->body_start = n->body_end = pos;
	static const char *const names[] = {"Content-Type"};
	char *value;
	header_values(m->data, n->hdr_start, n->hdr_end, names, 1, &value);
	bool in_digest = n->parent != NONE && N(m, n->parent)->digest;
	ctype ct;
	part_ctype(value, in_digest, &ct);
	g_free(value);
	bool deep_ok = n->depth + 1u <= MV_IMAP_MAX_PART_DEPTH;
	if (ctype_is(&ct, "multipart", NULL)) {
		n->kind = KIND_MULTIPART;
		n->digest = ctype_is(&ct, "multipart", "digest");
		const char *b = param_get(&ct, "boundary");
		if (may_descend && deep_ok && b && *b) {
			char *copy = g_strdup(b);
			g_ptr_array_add(sc->bounds_text, copy);
			bound bd = {id, copy, strlen(copy)};
			g_array_append_val(sc->bounds, bd);
		}
	} else if (ctype_is_message(&ct)) {
		n->kind = KIND_MESSAGE;
		/* A header cut off by a delimiter or the end still encloses a
		 * message, an empty one (as Dovecot answers). */
		uint32_t c = deep_ok ? add_child(sc, id, pos) : NONE;
		if (c != NONE && may_descend)
			sc->cur = c;
		else if (c != NONE)
			N(m, c)->header_open = false;
	}
	ctype_clear(&ct);
}

/* The boundary that line [pos, end) (starting with "--") opens or closes:
 * innermost first, the longest prefix wins, an exact match at once. */
static int find_bound(const scan *sc, const uint8_t *d, size_t pos, size_t end, bool *close_r)
{
	const uint8_t *s = d + pos + 2;
	size_t n = end - pos - 2;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	int best = -1;
	for (int i = (int)sc->bounds->len - 1; i >= 0; i--) {
		const bound *b = &g_array_index(sc->bounds, bound, i);
		if (b->len > n || memcmp(s, b->b, b->len) != 0)
			continue;
		if (best < 0 || g_array_index(sc->bounds, bound, best).len < b->len)
			best = i;
		if (b->len == n || (b->len + 2 == n && s[n - 2] == '-' && s[n - 1] == '-'))
			break;
	}
	if (best >= 0) {
		size_t bl = g_array_index(sc->bounds, bound, best).len;
		*close_r = bl + 2 <= n && s[bl] == '-' && s[bl + 1] == '-';
	}
	return best;
}

/* Everything open inside the multipart ends where the delimiter line at
 * pos begins, less the line end before it (RFC 2046: it belongs to the
 * delimiter) unless that line end was already structure. */
static void close_inside(scan *sc, uint32_t multipart, size_t pos)
{
	const uint8_t *d = sc->m->data;
	size_t end = pos;
	if (pos > sc->region_start && d[pos - 1] == '\n') {
		end--;
		if (end > sc->region_start && d[end - 1] == '\r')
			end--;
	}
	for (uint32_t id = sc->cur; id != multipart && id != NONE; id = N(sc->m, id)->parent) {
		node *n = N(sc->m, id);
		if (n->header_open) {
			end_header(sc, id, end, false);
			n = N(sc->m, id);
		}
		n->body_end = end;
	}
}

static void on_delimiter(scan *sc, int level, bool close, size_t pos, size_t next)
{
	uint32_t mp = g_array_index(sc->bounds, bound, level).node;
	close_inside(sc, mp, pos);
	g_array_set_size(sc->bounds, close ? (guint)level : (guint)level + 1);
	sc->cur = mp;
	if (!close) {
		uint32_t c = add_child(sc, mp, next);
		if (c != NONE)
			sc->cur = c;
	}
	sc->region_start = next;
}

static void scan_message(mv_imap_message *m)
{
	scan sc = {.m = m, .bounds = g_array_new(FALSE, FALSE, sizeof(bound)),
	           .bounds_text = g_ptr_array_new_with_free_func(g_free)};
	node root = {.parent = NONE, .first_child = NONE, .last_child = NONE, .next = NONE, .header_open = true};
	g_array_append_val(m->nodes, root);
	const uint8_t *d = m->data;
	size_t pos = 0;
	while (pos < m->len) {
		size_t next = line_end(d, pos, m->len);
		bool close = false;
		int level = -1;
		if (sc.bounds->len && next - pos >= 2 && d[pos] == '-' && d[pos + 1] == '-')
			level = find_bound(&sc, d, pos, next, &close);
		if (level >= 0)
			on_delimiter(&sc, level, close, pos, next);
		else if (N(m, sc.cur)->header_open && is_empty_line(d, pos, next)) {
			sc.region_start = next;
			end_header(&sc, sc.cur, next, true);
		}
		pos = next;
	}
	for (uint32_t id = sc.cur; id != NONE; id = N(m, id)->parent) {
		if (N(m, id)->header_open)
			end_header(&sc, id, m->len, false);
		N(m, id)->body_end = m->len;
	}
	g_array_unref(sc.bounds);
	g_ptr_array_unref(sc.bounds_text);
}

mv_imap_message *mv_imap_message_parse(const uint8_t *data, size_t len)
{
	mv_imap_message *m = g_new0(mv_imap_message, 1);
	m->data = data ? data : (const uint8_t *)"";
	m->len = data ? len : 0;
	m->nodes = g_array_new(FALSE, TRUE, sizeof(node));
	scan_message(m);
	return m;
}

void mv_imap_message_free(mv_imap_message **m)
{
	if (!m || !*m)
		return;
	g_array_unref((*m)->nodes);
	g_free(*m);
	*m = NULL;
}

char *mv_imap_message_header(const mv_imap_message *m, const char *name)
{
	const node *root = N(m, 0);
	hfield f;
	size_t pos = root->hdr_start;
	size_t nlen = strlen(name);
	while (next_field(m->data, root->hdr_end, &pos, &f))
		if (field_is(m->data, &f, name, nlen))
			return field_value(m->data, &f);
	return NULL;
}
