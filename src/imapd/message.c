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
 * only recursion (writing BODYSTRUCTURE) is bounded by the tree depth. */
#include "imapd/message.h"

#include <string.h>

#define NONE UINT32_MAX
/* Longer strings go out as literals: quoted strings this long upset some
 * clients' line buffers. */
#define MAX_QUOTED 1024

enum { KIND_LEAF, KIND_MULTIPART, KIND_MESSAGE };

typedef struct {
	size_t hdr_start, hdr_end; /* the header with its empty line */
	size_t body_start, body_end;
	uint32_t parent, first_child, last_child, next;
	uint8_t kind;
	uint8_t depth;
	bool header_open;
	bool digest; /* multipart/digest: its parts default to message/rfc822 */
} node;

struct mv_imap_message {
	const uint8_t *data;
	size_t len;
	GArray *nodes; /* node; [0] is the message itself */
};

/* ---- bytes and lines ---- */

static size_t line_end(const uint8_t *d, size_t pos, size_t end)
{
	const uint8_t *nl = memchr(d + pos, '\n', end - pos);
	return nl ? (size_t)(nl - d) + 1 : end;
}

static bool is_empty_line(const uint8_t *d, size_t pos, size_t end)
{
	return (d[pos] == '\n') || (d[pos] == '\r' && pos + 1 < end && d[pos + 1] == '\n');
}

static bool is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	return g_ascii_strncasecmp(a, b, n);
}

/* ---- header fields ---- */

typedef struct {
	size_t start, end; /* the field's lines, line ends included */
	size_t name_len;   /* 0 when the first line holds no colon */
	size_t value;      /* after the colon */
} hfield;

/* The next field of a header region; false at its end or its empty line.
 * A field is a line plus the lines after it that begin with white space. */
static bool next_field(const uint8_t *d, size_t end, size_t *pos, hfield *f)
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

static bool field_is(const uint8_t *d, const hfield *f, const char *name, size_t name_len)
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
static void header_values(const uint8_t *d, size_t start, size_t end, const char *const *names, size_t n,
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
static char *address_field(const uint8_t *d, size_t start, size_t end, const char *name)
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

/* ---- RFC 2045 lexical pieces over a C string ---- */

/* Skips white space and (nested) comments; a comment's text goes to
 * comment_r when given (the last one wins). */
static size_t skip_cfws(const char *s, size_t i, GString *comment_r)
{
	for (;;) {
		while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
			i++;
		if (s[i] != '(')
			return i;
		size_t level = 0, start = i + 1;
		while (s[i]) {
			if (s[i] == '\\' && s[i + 1])
				i++;
			else if (s[i] == '(')
				level++;
			else if (s[i] == ')' && --level == 0)
				break;
			i++;
		}
		if (comment_r) {
			g_string_truncate(comment_r, 0);
			g_string_append_len(comment_r, s + start, (gssize)(i - start));
		}
		if (s[i])
			i++;
	}
}

static bool is_tspecial(int c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(int c)
{
	return c > ' ' && c != 0x7f && !is_tspecial(c);
}

/* A quoted string at s[i] == '"', unescaped; ends at the closing quote or
 * the end of the string. */
static size_t read_quoted(const char *s, size_t i, GString *out)
{
	for (i++; s[i] && s[i] != '"'; i++) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		g_string_append_c(out, s[i]);
	}
	return s[i] ? i + 1 : i;
}

static char *read_token(const char *s, size_t *i)
{
	size_t a = *i;
	while (is_token_char((unsigned char)s[*i]))
		(*i)++;
	return *i > a ? g_strndup(s + a, *i - a) : NULL;
}

/* ---- Content-Type / Content-Disposition ---- */

typedef struct {
	char *type, *subtype;
	GPtrArray *params; /* name, value, name, value ... as written (RFC 2231 merged) */
} ctype;

static void ctype_clear(ctype *ct)
{
	g_free(ct->type);
	g_free(ct->subtype);
	if (ct->params)
		g_ptr_array_unref(ct->params);
	memset(ct, 0, sizeof *ct);
}

typedef struct {
	char *name; /* as written */
	size_t base_len;
	long index;   /* -1: "name*" alone; -2: no star at all */
	bool ext;     /* the segment is percent-encoded (name*N* / name*) */
	char *value;
	size_t order;
} rawparam;

static void parse_star(rawparam *p)
{
	const char *star = strchr(p->name, '*');
	p->index = -2;
	p->ext = false;
	p->base_len = strlen(p->name);
	if (!star)
		return;
	p->base_len = (size_t)(star - p->name);
	const char *r = star + 1;
	if (*r == '\0') {
		p->index = -1;
		p->ext = true;
		return;
	}
	if (!g_ascii_isdigit(*r) || strlen(r) > 6) {
		p->index = -2;
		p->base_len = strlen(p->name);
		return;
	}
	long n = 0;
	while (g_ascii_isdigit(*r))
		n = n * 10 + (*r++ - '0');
	if (*r == '*' && r[1] == '\0')
		p->ext = true;
	else if (*r != '\0') {
		p->base_len = strlen(p->name);
		return;
	}
	p->index = n;
}

static int rawparam_cmp(const void *a, const void *b)
{
	const rawparam *x = a, *y = b;
	size_t n = MIN(x->base_len, y->base_len);
	int c = ascii_ncasecmp(x->name, y->name, n);
	if (c)
		return c;
	if (x->base_len != y->base_len)
		return x->base_len < y->base_len ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct {
	size_t first, order; /* first entry in the sorted array, first appearance */
	size_t count;
} pgroup;

static int pgroup_cmp(const void *a, const void *b)
{
	const pgroup *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* RFC 2231 continuations become one parameter (name*0*=a; name*1=b →
 * "name*" "ab", still encoded, as Dovecot answers); plain parameters come
 * first in their order, merged ones after. */
static GPtrArray *merge_params(GArray *raw)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	rawparam *r = (rawparam *)(void *)raw->data;
	for (guint i = 0; i < raw->len; i++)
		if (r[i].index == -2) {
			g_ptr_array_add(out, g_strdup(r[i].name));
			g_ptr_array_add(out, g_strdup(r[i].value));
		}
	GArray *star = g_array_new(FALSE, FALSE, sizeof(rawparam));
	for (guint i = 0; i < raw->len; i++)
		if (r[i].index != -2)
			g_array_append_val(star, r[i]);
	if (star->len > 1)
		qsort(star->data, star->len, sizeof(rawparam), rawparam_cmp);
	rawparam *s = (rawparam *)(void *)star->data;
	GArray *groups = g_array_new(FALSE, FALSE, sizeof(pgroup));
	for (guint i = 0; i < star->len; i++) {
		pgroup *last = groups->len ? &g_array_index(groups, pgroup, groups->len - 1) : NULL;
		if (last && s[last->first].base_len == s[i].base_len &&
		    ascii_ncasecmp(s[last->first].name, s[i].name, s[i].base_len) == 0) {
			last->count++;
			last->order = MIN(last->order, s[i].order);
		} else {
			pgroup g = {i, s[i].order, 1};
			g_array_append_val(groups, g);
		}
	}
	if (groups->len > 1)
		qsort(groups->data, groups->len, sizeof(pgroup), pgroup_cmp);
	for (guint g = 0; g < groups->len; g++) {
		const pgroup *pg = &g_array_index(groups, pgroup, g);
		const rawparam *first = &s[pg->first];
		GString *v = g_string_new(NULL);
		for (size_t k = 0; k < pg->count; k++)
			g_string_append(v, s[pg->first + k].value);
		g_ptr_array_add(out, first->ext ? g_strdup_printf("%.*s*", (int)first->base_len, first->name)
		                                : g_strndup(first->name, first->base_len));
		g_ptr_array_add(out, g_string_free(v, FALSE));
	}
	g_array_unref(groups);
	g_array_unref(star);
	return out;
}

/* `;` separated attribute=value pairs from s[i]; what cannot be read up to
 * the next `;` is skipped. */
static GPtrArray *parse_params(const char *s, size_t i)
{
	GArray *raw = g_array_new(FALSE, FALSE, sizeof(rawparam));
	while (s[i]) {
		i = skip_cfws(s, i, NULL);
		if (s[i] != ';') {
			while (s[i] && s[i] != ';')
				i++;
			continue;
		}
		i = skip_cfws(s, i + 1, NULL);
		char *name = read_token(s, &i);
		i = skip_cfws(s, i, NULL);
		if (!name || s[i] != '=') {
			g_free(name);
			continue;
		}
		i = skip_cfws(s, i + 1, NULL);
		GString *v = g_string_new(NULL);
		if (s[i] == '"')
			i = read_quoted(s, i, v);
		else
			while (s[i] && s[i] != ';' && !g_ascii_isspace(s[i]) && s[i] != '(')
				g_string_append_c(v, s[i++]);
		rawparam p = {.name = name, .value = g_string_free(v, FALSE), .order = raw->len};
		parse_star(&p);
		g_array_append_val(raw, p);
	}
	GPtrArray *out = merge_params(raw);
	for (guint k = 0; k < raw->len; k++) {
		g_free(g_array_index(raw, rawparam, k).name);
		g_free(g_array_index(raw, rawparam, k).value);
	}
	g_array_unref(raw);
	return out;
}

/* "type/subtype; params" (with_subtype) or "disposition; params"; false
 * when the leading token(s) cannot be read. */
static bool parse_ctype(const char *s, bool with_subtype, ctype *ct)
{
	memset(ct, 0, sizeof *ct);
	size_t i = skip_cfws(s, 0, NULL);
	ct->type = read_token(s, &i);
	if (!ct->type)
		return false;
	if (with_subtype) {
		i = skip_cfws(s, i, NULL);
		if (s[i] != '/') {
			ctype_clear(ct);
			return false;
		}
		i = skip_cfws(s, i + 1, NULL);
		ct->subtype = read_token(s, &i);
		if (!ct->subtype) {
			ctype_clear(ct);
			return false;
		}
	}
	ct->params = parse_params(s, i);
	return true;
}

static const char *param_get(const ctype *ct, const char *name)
{
	for (guint i = 0; ct->params && i + 1 < ct->params->len; i += 2)
		if (g_ascii_strcasecmp(ct->params->pdata[i], name) == 0)
			return ct->params->pdata[i + 1];
	return NULL;
}

/* The part's Content-Type, or the default of its place (text/plain, or
 * message/rfc822 inside multipart/digest). */
static void part_ctype(const char *value, bool in_digest, ctype *ct)
{
	if (value && parse_ctype(value, true, ct))
		return;
	memset(ct, 0, sizeof *ct);
	ct->type = g_strdup(in_digest ? "message" : "text");
	ct->subtype = g_strdup(in_digest ? "rfc822" : "plain");
	ct->params = g_ptr_array_new_with_free_func(g_free);
}

static bool ctype_is(const ctype *ct, const char *type, const char *subtype)
{
	return g_ascii_strcasecmp(ct->type, type) == 0 && (!subtype || g_ascii_strcasecmp(ct->subtype, subtype) == 0);
}

static bool ctype_is_message(const ctype *ct)
{
	return ctype_is(ct, "message", "rfc822") || ctype_is(ct, "message", "global");
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

static node *N(const mv_imap_message *m, uint32_t i)
{
	return &g_array_index(m->nodes, node, i);
}

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

/* ---- IMAP strings ---- */

static void put_string_len(GString *out, const char *s, size_t n, bool utf8)
{
	bool literal = n >= MAX_QUOTED, eight = false;
	size_t nul = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0)
			nul++;
		else if (c == '\r' || c == '\n')
			literal = true;
		else if (c >= 0x80)
			eight = true;
	}
	if (eight && (!utf8 || nul || !g_utf8_validate_len(s, n, NULL)))
		literal = true;
	if (literal) {
		g_string_append_printf(out, "{%zu}\r\n", n - nul);
		for (size_t i = 0; i < n; i++)
			if (s[i])
				g_string_append_c(out, s[i]);
		return;
	}
	g_string_append_c(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			g_string_append_c(out, '\\');
		if (s[i])
			g_string_append_c(out, s[i]);
	}
	g_string_append_c(out, '"');
}

static void put_nstring(GString *out, const char *s, bool utf8)
{
	if (s)
		put_string_len(out, s, strlen(s), utf8);
	else
		g_string_append(out, "NIL");
}

/* ---- addresses (RFC 5322 3.4, the way Dovecot reads them) ---- */

typedef struct {
	const char *s;
	size_t i;
	GString *comment;
	bool utf8;
	GString *out;
	size_t count;
} addrp;

static bool is_atext(int c)
{
	return c > ' ' && c != 0x7f && !strchr("()<>[]:;@\\,.\"", c);
}

/* Words (atoms, quoted strings, dots) up to a special: the display name or
 * local part as written, quotes removed, words joined by one space. */
static void read_phrase(addrp *p, GString *out, bool *any_r)
{
	*any_r = false;
	for (;;) {
		size_t before = p->i;
		p->i = skip_cfws(p->s, p->i, p->comment);
		bool space = p->i > before && out->len > 0;
		char c = p->s[p->i];
		if (c == '"') {
			if (space)
				g_string_append_c(out, ' ');
			p->i = read_quoted(p->s, p->i, out);
		} else if (c == '.') {
			g_string_append_c(out, '.');
			p->i++;
		} else if (is_atext((unsigned char)c)) {
			if (space)
				g_string_append_c(out, ' ');
			while (is_atext((unsigned char)p->s[p->i]))
				g_string_append_c(out, p->s[p->i++]);
		} else
			return;
		*any_r = true;
	}
}

static void read_domain(addrp *p, GString *out)
{
	for (;;) {
		p->i = skip_cfws(p->s, p->i, p->comment);
		char c = p->s[p->i];
		if (c == '[') {
			while (p->s[p->i] && p->s[p->i] != ']') {
				if (p->s[p->i] == '\\' && p->s[p->i + 1])
					p->i++;
				g_string_append_c(out, p->s[p->i++]);
			}
			if (p->s[p->i] == ']')
				g_string_append_c(out, p->s[p->i++]);
		} else if (c == '.') {
			g_string_append_c(out, '.');
			p->i++;
		} else if (is_atext((unsigned char)c)) {
			while (is_atext((unsigned char)p->s[p->i]))
				g_string_append_c(out, p->s[p->i++]);
		} else
			return;
	}
}

static void put_addr(addrp *p, const char *name, const char *adl, const char *mailbox, const char *host)
{
	g_string_append_c(p->out, '(');
	put_nstring(p->out, name, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, adl, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, mailbox, p->utf8);
	g_string_append_c(p->out, ' ');
	put_nstring(p->out, host, p->utf8);
	g_string_append_c(p->out, ')');
	p->count++;
}

/* "<[@route,@route:]local@domain>" at p->s[p->i] == '<'. */
static void read_angle(addrp *p, GString *adl, GString *local, GString *domain)
{
	p->i++;
	p->i = skip_cfws(p->s, p->i, NULL);
	if (p->s[p->i] == '@') {
		/* stops at '>' too: searching past it would make a list of
		 * "<@x" quadratic */
		size_t r = p->i + strcspn(p->s + p->i, ":>");
		if (p->s[r] == ':') {
			g_string_append_len(adl, p->s + p->i, (gssize)(r - p->i));
			p->i = r + 1;
		}
	}
	bool any;
	read_phrase(p, local, &any);
	p->i = skip_cfws(p->s, p->i, NULL);
	if (p->s[p->i] == '@') {
		p->i++;
		read_domain(p, domain);
	}
	while (p->s[p->i] && p->s[p->i] != '>')
		p->i++;
	if (p->s[p->i] == '>')
		p->i++;
}

/* One mailbox, or a group unless in_group; false when the position did not
 * hold one (the caller skips to the next comma). */
static bool read_mailbox(addrp *p, bool in_group)
{
	GString *phrase = g_string_new(NULL), *adl = g_string_new(NULL), *local = g_string_new(NULL),
	        *domain = g_string_new(NULL);
	g_string_truncate(p->comment, 0);
	bool any, ok = true;
	read_phrase(p, phrase, &any);
	char c = p->s[p->i];
	if (c == ':' && !in_group && any) {
		put_addr(p, NULL, NULL, phrase->str, NULL);
		p->i++;
		for (;;) {
			p->i = skip_cfws(p->s, p->i, NULL);
			char g = p->s[p->i];
			if (g == ';' || g == '\0') {
				if (g)
					p->i++;
				break;
			}
			if (g == ',') {
				p->i++;
				continue;
			}
			size_t before = p->i;
			if (!read_mailbox(p, true) || p->i == before)
				while (p->s[p->i] && p->s[p->i] != ',' && p->s[p->i] != ';')
					p->i++;
		}
		put_addr(p, NULL, NULL, NULL, NULL);
	} else if (c == '<') {
		read_angle(p, adl, local, domain);
		put_addr(p, any ? phrase->str : NULL, adl->len ? adl->str : NULL,
		         local->len ? local->str : "MISSING_MAILBOX", domain->len ? domain->str : "MISSING_DOMAIN");
	} else if (any) {
		g_string_append(local, phrase->str);
		p->i = skip_cfws(p->s, p->i, p->comment);
		if (p->s[p->i] == '@') {
			p->i++;
			read_domain(p, domain);
		}
		const char *name = p->comment->len ? p->comment->str : NULL;
		put_addr(p, name, NULL, local->str, domain->len ? domain->str : "MISSING_DOMAIN");
	} else
		ok = false;
	g_string_free(phrase, TRUE);
	g_string_free(adl, TRUE);
	g_string_free(local, TRUE);
	g_string_free(domain, TRUE);
	return ok;
}

/* The address list of a header value, NIL when it holds none. */
static void put_address_list(GString *out, const char *value, bool utf8)
{
	if (!value) {
		g_string_append(out, "NIL");
		return;
	}
	GString *list = g_string_new("(");
	addrp p = {.s = value, .comment = g_string_new(NULL), .utf8 = utf8, .out = list};
	while (p.s[p.i]) {
		p.i = skip_cfws(p.s, p.i, NULL);
		if (p.s[p.i] == ',' || p.s[p.i] == ';') {
			p.i++;
			continue;
		}
		if (!p.s[p.i])
			break;
		size_t before = p.i;
		if (!read_mailbox(&p, false) || p.i == before)
			while (p.s[p.i] && p.s[p.i] != ',')
				p.i++;
	}
	g_string_append_c(list, ')');
	g_string_append(out, p.count ? list->str : "NIL");
	g_string_free(p.comment, TRUE);
	g_string_free(list, TRUE);
}

/* ---- ENVELOPE ---- */

enum { E_DATE, E_SUBJECT, E_FROM, E_SENDER, E_REPLY_TO, E_TO, E_CC, E_BCC, E_IN_REPLY_TO, E_MESSAGE_ID, E_COUNT };
static const char *const envelope_fields[E_COUNT] = {"Date", "Subject", "From", "Sender", "Reply-To",
                                                      "To", "Cc", "Bcc", "In-Reply-To", "Message-ID"};

static void put_envelope(const mv_imap_message *m, const node *msg, bool utf8, GString *out)
{
	char *v[E_COUNT];
	header_values(m->data, msg->hdr_start, msg->hdr_end, envelope_fields, E_COUNT, v);
	for (int i = E_FROM; i <= E_BCC; i++) {
		g_free(v[i]);
		v[i] = address_field(m->data, msg->hdr_start, msg->hdr_end, envelope_fields[i]);
	}
	/* RFC 3501: absent or empty Sender and Reply-To are the From list. */
	for (int i = E_SENDER; i <= E_REPLY_TO; i++)
		if (!v[i] || !*v[i]) {
			g_free(v[i]);
			v[i] = g_strdup(v[E_FROM]);
		}
	g_string_append_c(out, '(');
	for (int i = 0; i < E_COUNT; i++) {
		if (i)
			g_string_append_c(out, ' ');
		if (i >= E_FROM && i <= E_BCC)
			put_address_list(out, v[i], utf8);
		else
			put_nstring(out, v[i], utf8);
		g_free(v[i]);
	}
	g_string_append_c(out, ')');
}

void mv_imap_message_envelope(const mv_imap_message *m, bool utf8, GString *out)
{
	put_envelope(m, N(m, 0), utf8, out);
}

/* ---- BODYSTRUCTURE ---- */

enum { B_TYPE, B_ID, B_DESCRIPTION, B_CTE, B_MD5, B_DISPOSITION, B_LANGUAGE, B_LOCATION, B_COUNT };
static const char *const body_fields[B_COUNT] = {"Content-Type", "Content-ID", "Content-Description",
                                                  "Content-Transfer-Encoding", "Content-MD5",
                                                  "Content-Disposition", "Content-Language", "Content-Location"};

static void put_params(GString *out, GPtrArray *params, bool utf8)
{
	if (!params || params->len < 2) {
		g_string_append(out, "NIL");
		return;
	}
	g_string_append_c(out, '(');
	for (guint i = 0; i + 1 < params->len; i += 2) {
		if (i)
			g_string_append_c(out, ' ');
		put_nstring(out, params->pdata[i], utf8);
		g_string_append_c(out, ' ');
		put_nstring(out, params->pdata[i + 1], utf8);
	}
	g_string_append_c(out, ')');
}

static void put_disposition(GString *out, const char *value, bool utf8)
{
	ctype d;
	if (!value || !parse_ctype(value, false, &d)) {
		g_string_append(out, "NIL");
		return;
	}
	g_string_append_c(out, '(');
	put_nstring(out, d.type, utf8);
	g_string_append_c(out, ' ');
	put_params(out, d.params, utf8);
	g_string_append_c(out, ')');
	ctype_clear(&d);
}

static void put_language(GString *out, const char *value, bool utf8)
{
	GPtrArray *tags = g_ptr_array_new_with_free_func(g_free);
	for (size_t i = 0; value && value[i];) {
		i = skip_cfws(value, i, NULL);
		char *t = read_token(value, &i);
		if (t)
			g_ptr_array_add(tags, t);
		else if (value[i])
			i++;
	}
	if (!tags->len)
		g_string_append(out, "NIL");
	else {
		g_string_append_c(out, '(');
		for (guint i = 0; i < tags->len; i++) {
			if (i)
				g_string_append_c(out, ' ');
			put_nstring(out, tags->pdata[i], utf8);
		}
		g_string_append_c(out, ')');
	}
	g_ptr_array_unref(tags);
}

static size_t count_lines(const uint8_t *d, size_t start, size_t end)
{
	size_t n = 0;
	for (const uint8_t *p = d + start, *e = d + end; p < e; p++) {
		p = memchr(p, '\n', (size_t)(e - p));
		if (!p)
			break;
		n++;
	}
	return n;
}

static void put_ext(GString *out, char **v, bool utf8)
{
	g_string_append_c(out, ' ');
	put_disposition(out, v[B_DISPOSITION], utf8);
	g_string_append_c(out, ' ');
	put_language(out, v[B_LANGUAGE], utf8);
	g_string_append_c(out, ' ');
	put_nstring(out, v[B_LOCATION], utf8);
}

static void put_body(const mv_imap_message *m, uint32_t id, bool extended, bool utf8, GString *out);

/* A multipart that held no part is given one empty text part, as Dovecot
 * does: the grammar wants at least one. */
static void put_empty_text(GString *out, bool extended)
{
	g_string_append(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
	g_string_append(out, extended ? " NIL NIL NIL NIL)" : ")");
}

static void put_multipart(const mv_imap_message *m, const node *n, const ctype *ct, char **v, bool extended,
                          bool utf8, GString *out)
{
	g_string_append_c(out, '(');
	if (n->first_child == NONE)
		put_empty_text(out, extended);
	for (uint32_t c = n->first_child; c != NONE; c = N(m, c)->next)
		put_body(m, c, extended, utf8, out);
	g_string_append_c(out, ' ');
	put_nstring(out, ct->subtype, utf8);
	if (extended) {
		g_string_append_c(out, ' ');
		put_params(out, ct->params, utf8);
		put_ext(out, v, utf8);
	}
	g_string_append_c(out, ')');
}

static void put_single(const mv_imap_message *m, const node *n, ctype *ct, char **v, bool extended, bool utf8,
                       GString *out)
{
	/* A message part we did not descend into cannot be described as one. */
	bool opaque = n->kind == KIND_MESSAGE && n->first_child == NONE;
	bool text = ctype_is(ct, "text", NULL);
	if (text && !param_get(ct, "charset")) {
		g_ptr_array_add(ct->params, g_strdup("charset"));
		g_ptr_array_add(ct->params, g_strdup("us-ascii"));
	}
	g_string_append_c(out, '(');
	put_nstring(out, opaque ? "application" : ct->type, utf8);
	g_string_append_c(out, ' ');
	put_nstring(out, opaque ? "octet-stream" : ct->subtype, utf8);
	g_string_append_c(out, ' ');
	put_params(out, ct->params, utf8);
	g_string_append_c(out, ' ');
	put_nstring(out, v[B_ID], utf8);
	g_string_append_c(out, ' ');
	put_nstring(out, v[B_DESCRIPTION], utf8);
	g_string_append_c(out, ' ');
	put_nstring(out, v[B_CTE] && *v[B_CTE] ? v[B_CTE] : "7bit", utf8);
	g_string_append_printf(out, " %zu", n->body_end - n->body_start);
	if (n->kind == KIND_MESSAGE && !opaque) {
		g_string_append_c(out, ' ');
		put_envelope(m, N(m, n->first_child), utf8, out);
		g_string_append_c(out, ' ');
		put_body(m, n->first_child, extended, utf8, out);
	}
	if (text || (n->kind == KIND_MESSAGE && !opaque))
		g_string_append_printf(out, " %zu", count_lines(m->data, n->body_start, n->body_end));
	if (extended) {
		g_string_append_c(out, ' ');
		put_nstring(out, v[B_MD5], utf8);
		put_ext(out, v, utf8);
	}
	g_string_append_c(out, ')');
}

/* Recursion bounded by MV_IMAP_MAX_PART_DEPTH: the scan builds no deeper
 * tree. */
static void put_body(const mv_imap_message *m, uint32_t id, bool extended, bool utf8, GString *out)
{
	const node *n = N(m, id);
	g_assert(n->depth <= MV_IMAP_MAX_PART_DEPTH);
	char *v[B_COUNT];
	header_values(m->data, n->hdr_start, n->hdr_end, body_fields, B_COUNT, v);
	bool in_digest = n->parent != NONE && N(m, n->parent)->digest;
	ctype ct;
	part_ctype(v[B_TYPE], in_digest, &ct);
	if (n->kind == KIND_MULTIPART)
		put_multipart(m, n, &ct, v, extended, utf8, out);
	else
		put_single(m, n, &ct, v, extended, utf8, out);
	ctype_clear(&ct);
	for (int i = 0; i < B_COUNT; i++)
		g_free(v[i]);
}

void mv_imap_message_bodystructure(const mv_imap_message *m, bool extended, bool utf8, GString *out)
{
	put_body(m, 0, extended, utf8, out);
}

/* ---- section specs ---- */

static bool match_kw(const char *s, size_t len, size_t *i, const char *kw)
{
	size_t n = strlen(kw);
	if (len - *i < n || ascii_ncasecmp(s + *i, kw, n) != 0)
		return false;
	*i += n;
	return true;
}

static bool is_atom_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !strchr("(){%*\"\\]", c);
}

/* One header-fld-name: an atom or a quoted string. */
static bool read_field_name(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	GString *name = g_string_new(NULL);
	bool quoted = *i < len && s[*i] == '"';
	if (quoted) {
		size_t k = *i + 1;
		for (; k < len && s[k] != '"'; k++) {
			if (s[k] == '\\' && k + 1 < len && (s[k + 1] == '"' || s[k + 1] == '\\'))
				k++;
			else if (s[k] == '\\' || s[k] == '\r' || s[k] == '\n' || s[k] == '\0')
				break;
			g_string_append_c(name, s[k]);
		}
		if (k >= len || s[k] != '"') {
			g_string_free(name, TRUE);
			return false;
		}
		*i = k + 1;
	} else
		while (*i < len && is_atom_char((unsigned char)s[*i]))
			g_string_append_c(name, s[(*i)++]);
	if (!quoted && name->len == 0) {
		g_string_free(name, TRUE);
		return false;
	}
	if (canon) {
		char *up = g_ascii_strup(name->str, (gssize)name->len);
		if (quoted) {
			/* quoted as given even with 8-bit bytes: the echo must
			 * parse back to the same spec */
			g_string_append_c(canon, '"');
			for (size_t k = 0; k < name->len; k++) {
				if (up[k] == '"' || up[k] == '\\')
					g_string_append_c(canon, '\\');
				g_string_append_c(canon, up[k]);
			}
			g_string_append_c(canon, '"');
		} else
			g_string_append(canon, up);
		g_free(up);
	}
	g_ptr_array_add(sec->fields, g_string_free(name, FALSE));
	return true;
}

static const char *parse_field_list(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	if (*i >= len || s[*i] != ' ')
		return "expected a space before the header list";
	(*i)++;
	if (*i >= len || s[*i] != '(')
		return "expected a header list";
	(*i)++;
	if (canon)
		g_string_append(canon, " (");
	sec->fields = g_ptr_array_new_with_free_func(g_free);
	for (;;) {
		if (sec->fields->len >= MV_IMAP_MAX_HEADER_FIELDS)
			return "too many header fields";
		if (sec->fields->len && canon)
			g_string_append_c(canon, ' ');
		if (!read_field_name(s, len, i, sec, canon))
			return "bad header field name";
		if (*i < len && s[*i] == ')')
			break;
		if (*i >= len || s[*i] != ' ')
			return "bad header list";
		(*i)++;
	}
	(*i)++;
	if (canon)
		g_string_append_c(canon, ')');
	return NULL;
}

/* section-msgtext / "MIME" after the part numbers (or at the start). */
static const char *parse_text_spec(const char *s, size_t len, size_t *i, bool have_parts, mv_imap_section *sec,
                                   GString *canon)
{
	if (match_kw(s, len, i, "HEADER.FIELDS.NOT")) {
		sec->kind = MV_IMAP_SECTION_HEADER_FIELDS_NOT;
		if (canon)
			g_string_append(canon, "HEADER.FIELDS.NOT");
		return parse_field_list(s, len, i, sec, canon);
	}
	if (match_kw(s, len, i, "HEADER.FIELDS")) {
		sec->kind = MV_IMAP_SECTION_HEADER_FIELDS;
		if (canon)
			g_string_append(canon, "HEADER.FIELDS");
		return parse_field_list(s, len, i, sec, canon);
	}
	const char *kw;
	if (match_kw(s, len, i, "HEADER")) {
		sec->kind = MV_IMAP_SECTION_HEADER;
		kw = "HEADER";
	} else if (match_kw(s, len, i, "TEXT")) {
		sec->kind = MV_IMAP_SECTION_TEXT;
		kw = "TEXT";
	} else if (match_kw(s, len, i, "MIME")) {
		if (!have_parts)
			return "MIME needs a part number";
		sec->kind = MV_IMAP_SECTION_MIME;
		kw = "MIME";
	} else
		return "unknown section";
	if (canon)
		g_string_append(canon, kw);
	return NULL;
}

static const char *parse_part_numbers(const char *s, size_t len, size_t *i, mv_imap_section *sec, GString *canon)
{
	while (*i < len && g_ascii_isdigit(s[*i])) {
		if (s[*i] == '0')
			return "part numbers start at 1";
		if (sec->nparts >= MV_IMAP_MAX_SECTION_PARTS)
			return "too many part numbers";
		unsigned long long n = 0;
		while (*i < len && g_ascii_isdigit(s[*i])) {
			n = n * 10 + (unsigned)(s[(*i)++] - '0');
			if (n > UINT32_MAX)
				return "part number too large";
		}
		sec->parts[sec->nparts++] = (unsigned)n;
		if (canon)
			g_string_append_printf(canon, "%s%llu", sec->nparts > 1 ? "." : "", n);
		if (*i < len && s[*i] == '.' && *i + 1 < len && g_ascii_isdigit(s[*i + 1]))
			(*i)++;
		else
			break;
	}
	return NULL;
}

static const char *parse_section(const char *s, size_t len, bool binary, mv_imap_section *sec, GString *canon)
{
	size_t i = 0;
	if (i < len && g_ascii_isdigit(s[i])) {
		const char *e = parse_part_numbers(s, len, &i, sec, canon);
		if (e)
			return e;
		if (i == len)
			return NULL;
		if (binary)
			return "BINARY takes part numbers only";
		if (s[i] != '.')
			return "garbage after part number";
		i++;
		if (canon)
			g_string_append_c(canon, '.');
	} else if (i < len && binary)
		return "BINARY takes part numbers only";
	if (i == len)
		return sec->nparts ? "section text expected after the dot" : NULL;
	const char *e = parse_text_spec(s, len, &i, sec->nparts > 0, sec, canon);
	if (e)
		return e;
	return i == len ? NULL : "garbage after section";
}

bool mv_imap_section_parse(const char *spec, size_t len, bool binary, mv_imap_section *sec_r, GString *canon,
                           const char **error_r)
{
	memset(sec_r, 0, sizeof *sec_r);
	gsize canon_len = canon ? canon->len : 0;
	const char *e = parse_section(spec ? spec : "", spec ? len : 0, binary, sec_r, canon);
	if (e) {
		mv_imap_section_clear(sec_r);
		if (canon)
			g_string_truncate(canon, canon_len);
		if (error_r)
			*error_r = e;
		return false;
	}
	return true;
}

void mv_imap_section_clear(mv_imap_section *sec)
{
	if (sec->fields)
		g_ptr_array_unref(sec->fields);
	memset(sec, 0, sizeof *sec);
}

/* ---- sections ---- */

static uint32_t nth_child(const mv_imap_message *m, uint32_t id, unsigned num)
{
	uint32_t c = num ? N(m, id)->first_child : NONE;
	for (; c != NONE && num > 1; num--)
		c = N(m, c)->next;
	return c;
}

/* Part numbers to a node (RFC 3501 6.4.5, read as Dovecot does: "1" of a
 * non-multipart entity is that entity, a message part's numbers go on in
 * its embedded message, and one ".1" more into a leaf is the leaf). */
static uint32_t find_part(const mv_imap_message *m, const unsigned *parts, size_t nparts)
{
	uint32_t within = 0, part = NONE;
	for (size_t i = 0; i < nparts; i++) {
		if (within == NONE)
			return NONE;
		bool more = i + 1 < nparts;
		const node *w = N(m, within);
		if (w->kind == KIND_MULTIPART)
			part = nth_child(m, within, parts[i]);
		else {
			part = parts[i] == 1 ? within : NONE;
			if (more && part != NONE && w->kind != KIND_MESSAGE)
				part = NONE;
		}
		if (part != NONE && more && N(m, part)->kind == KIND_MESSAGE)
			within = N(m, part)->first_child;
		else
			within = part;
	}
	return part;
}

/* The message whose HEADER/TEXT a section means: the whole one, or the
 * one inside a message/rfc822 part. */
static uint32_t section_message(const mv_imap_message *m, const mv_imap_section *sec)
{
	if (sec->nparts == 0)
		return 0;
	uint32_t p = find_part(m, sec->parts, sec->nparts);
	if (p == NONE || N(m, p)->kind != KIND_MESSAGE)
		return NONE;
	return N(m, p)->first_child;
}

static bool field_wanted(const uint8_t *d, const hfield *f, GPtrArray *names)
{
	for (guint i = 0; names && i < names->len; i++)
		if (field_is(d, f, names->pdata[i], strlen(names->pdata[i])))
			return true;
	return false;
}

/* The line end the header is written with: an LF-only message gets its
 * fields back with LF, not a CRLF blank line after LF lines. */
static const char *header_eol(const mv_imap_message *m, const node *msg)
{
	const uint8_t *nl = memchr(m->data + msg->hdr_start, '\n', msg->hdr_end - msg->hdr_start);
	return nl && nl > m->data + msg->hdr_start && nl[-1] != '\r' ? "\n" : "\r\n";
}

static GByteArray *header_fields(const mv_imap_message *m, const node *msg, GPtrArray *names, bool not)
{
	GByteArray *b = g_byte_array_new();
	const char *eol = header_eol(m, msg);
	hfield f;
	size_t pos = msg->hdr_start;
	while (next_field(m->data, msg->hdr_end, &pos, &f)) {
		if (field_wanted(m->data, &f, names) == not)
			continue;
		g_byte_array_append(b, m->data + f.start, (guint)(f.end - f.start));
		if (m->data[f.end - 1] != '\n')
			g_byte_array_append(b, (const guint8 *)eol, (guint)strlen(eol));
	}
	g_byte_array_append(b, (const guint8 *)eol, (guint)strlen(eol));
	return b;
}

void mv_imap_message_section(const mv_imap_message *m, const mv_imap_section *sec, const uint8_t **data_r,
                             size_t *len_r, GByteArray **owned_r)
{
	*data_r = m->data;
	*len_r = 0;
	*owned_r = NULL;
	size_t start = 0, end = 0;
	if (sec->kind == MV_IMAP_SECTION_ALL || sec->kind == MV_IMAP_SECTION_MIME) {
		if (sec->nparts == 0) {
			end = m->len;
		} else {
			uint32_t p = find_part(m, sec->parts, sec->nparts);
			if (p == NONE)
				return;
			const node *n = N(m, p);
			bool mime = sec->kind == MV_IMAP_SECTION_MIME;
			start = mime ? n->hdr_start : n->body_start;
			end = mime ? n->hdr_end : n->body_end;
		}
	} else {
		uint32_t id = section_message(m, sec);
		if (id == NONE)
			return;
		const node *n = N(m, id);
		if (sec->kind == MV_IMAP_SECTION_HEADER_FIELDS || sec->kind == MV_IMAP_SECTION_HEADER_FIELDS_NOT) {
			*owned_r = header_fields(m, n, sec->fields, sec->kind == MV_IMAP_SECTION_HEADER_FIELDS_NOT);
			*data_r = (*owned_r)->data;
			*len_r = (*owned_r)->len;
			return;
		}
		bool header = sec->kind == MV_IMAP_SECTION_HEADER;
		start = header ? n->hdr_start : n->body_start;
		end = header ? n->hdr_end : n->body_end;
	}
	*data_r = m->data + start;
	*len_r = end - start;
}

/* ---- BINARY ---- */

static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Whatever is not base64 is skipped; '=' ends a group early, so missing
 * padding and concatenated encodings both decode. */
static GByteArray *decode_base64(const uint8_t *d, size_t len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len / 4 * 3 + 3, G_MAXUINT));
	uint32_t acc = 0;
	int n = 0;
	for (size_t i = 0; i <= len; i++) {
		int v = i < len ? b64_value(d[i]) : -1;
		if (v >= 0) {
			acc = acc << 6 | (uint32_t)v;
			if (++n < 4)
				continue;
			uint8_t b[3] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8), (uint8_t)acc};
			g_byte_array_append(out, b, 3);
			acc = 0;
			n = 0;
		} else if ((i == len || d[i] == '=') && n >= 2) {
			acc <<= 6 * (4 - n);
			uint8_t b[2] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8)};
			g_byte_array_append(out, b, (guint)(n - 1));
			acc = 0;
			n = 0;
		}
	}
	return out;
}

static int hex_value(uint8_t c)
{
	return g_ascii_isxdigit(c) ? g_ascii_xdigit_value((char)c) : -1;
}

/* RFC 2045 6.7: "=XX" octets, "=" at a line end is a soft break, trailing
 * white space of a line is transport padding; a broken "=" stays as is. */
static GByteArray *decode_qp(const uint8_t *d, size_t len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len, G_MAXUINT));
	size_t pos = 0;
	while (pos < len) {
		size_t next = line_end(d, pos, len);
		size_t text_end = next;
		bool has_eol = next > pos && d[next - 1] == '\n';
		if (has_eol) {
			text_end--;
			if (text_end > pos && d[text_end - 1] == '\r')
				text_end--;
		}
		size_t trimmed = text_end;
		while (trimmed > pos && is_wsp(d[trimmed - 1]))
			trimmed--;
		bool soft = trimmed > pos && d[trimmed - 1] == '=';
		size_t stop = soft ? trimmed - 1 : trimmed;
		for (size_t i = pos; i < stop; i++) {
			int hi, lo;
			if (d[i] == '=' && i + 2 < stop && (hi = hex_value(d[i + 1])) >= 0 &&
			    (lo = hex_value(d[i + 2])) >= 0) {
				uint8_t b = (uint8_t)(hi << 4 | lo);
				g_byte_array_append(out, &b, 1);
				i += 2;
			} else
				g_byte_array_append(out, d + i, 1);
		}
		if (!soft && has_eol)
			g_byte_array_append(out, d + text_end, (guint)(next - text_end));
		pos = next;
	}
	return out;
}

mv_imap_binary_result mv_imap_message_binary(const mv_imap_message *m, const mv_imap_section *sec,
                                             GByteArray **out_r)
{
	*out_r = NULL;
	if (sec->nparts == 0) {
		*out_r = g_byte_array_sized_new((guint)MIN(m->len, G_MAXUINT));
		g_byte_array_append(*out_r, m->data, (guint)m->len);
		return MV_IMAP_BINARY_OK;
	}
	uint32_t p = find_part(m, sec->parts, sec->nparts);
	if (p == NONE)
		return MV_IMAP_BINARY_NO_PART;
	const node *n = N(m, p);
	const uint8_t *body = m->data + n->body_start;
	size_t len = n->body_end - n->body_start;
	static const char *const names[] = {"Content-Transfer-Encoding"};
	char *cte = NULL;
	if (n->kind == KIND_LEAF)
		header_values(m->data, n->hdr_start, n->hdr_end, names, 1, &cte);
	char *c = cte ? g_ascii_strdown(g_strstrip(cte), -1) : NULL;
	g_free(cte);
	mv_imap_binary_result r = MV_IMAP_BINARY_OK;
	if (!c || !*c || !strcmp(c, "7bit") || !strcmp(c, "8bit") || !strcmp(c, "binary")) {
		*out_r = g_byte_array_sized_new((guint)MIN(len, G_MAXUINT));
		g_byte_array_append(*out_r, body, (guint)len);
	} else if (!strcmp(c, "base64"))
		*out_r = decode_base64(body, len);
	else if (!strcmp(c, "quoted-printable"))
		*out_r = decode_qp(body, len);
	else
		r = MV_IMAP_BINARY_UNKNOWN_CTE;
	g_free(c);
	return r;
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
