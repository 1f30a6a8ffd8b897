/* imapd/message_ctype: header values as MIME reads them — RFC 2045 tokens,
 * quoted strings and comments over a C string, and Content-Type /
 * Content-Disposition with their parameters, RFC 2231 continuations merged
 * but left encoded (IMAP shows them as written, as Dovecot does). */
#include "imapd/message_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- RFC 2045 lexical pieces over a C string ---- */

/* Skips white space and (nested) comments; a comment's text goes to
 * comment_r when given (the last one wins). */
size_t skip_cfws(const char *s, size_t i, GString *comment_r)
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
size_t read_quoted(const char *s, size_t i, GString *out)
{
	for (i++; s[i] && s[i] != '"'; i++) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		g_string_append_c(out, s[i]);
	}
	return s[i] ? i + 1 : i;
}

char *read_token(const char *s, size_t *i)
{
	size_t a = *i;
	while (is_token_char((unsigned char)s[*i]))
		(*i)++;
	return *i > a ? g_strndup(s + a, *i - a) : NULL;
}

/* ---- Content-Type / Content-Disposition ---- */


void ctype_clear(ctype *ct)
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
bool parse_ctype(const char *s, bool with_subtype, ctype *ct)
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

const char *param_get(const ctype *ct, const char *name)
{
	for (guint i = 0; ct->params && i + 1 < ct->params->len; i += 2)
		if (g_ascii_strcasecmp(ct->params->pdata[i], name) == 0)
			return ct->params->pdata[i + 1];
	return NULL;
}

/* The part's Content-Type, or the default of its place (text/plain, or
 * message/rfc822 inside multipart/digest). */
void part_ctype(const char *value, bool in_digest, ctype *ct)
{
	if (value && parse_ctype(value, true, ct))
		return;
	memset(ct, 0, sizeof *ct);
	ct->type = g_strdup(in_digest ? "message" : "text");
	ct->subtype = g_strdup(in_digest ? "rfc822" : "plain");
	ct->params = g_ptr_array_new_with_free_func(g_free);
}

bool ctype_is(const ctype *ct, const char *type, const char *subtype)
{
	return g_ascii_strcasecmp(ct->type, type) == 0 && (!subtype || g_ascii_strcasecmp(ct->subtype, subtype) == 0);
}

bool ctype_is_message(const ctype *ct)
{
	return ctype_is(ct, "message", "rfc822") || ctype_is(ct, "message", "global");
}
