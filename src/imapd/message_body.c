/* imapd/message_body: BODY and BODYSTRUCTURE of the part tree — a part's
 * type, parameters, encoding, size and lines, with the extension data
 * (disposition, language, location) when extended.  Recursion is bounded
 * by the tree depth. */
#include "imapd/message_internal.h"

#include <string.h>

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
