/* mime/sanitize_internal: what the files of the HTML sanitiser share — one
 * run's state, an element table entry, and the gates and filters each file
 * offers the others.  Not a public header: mime.h's mv_html_sanitize is the
 * sanitiser's face.  What crosses files is named san_*; the rest stays
 * static in its file. */
#ifndef MV_MIME_SANITIZE_INTERNAL_H
#define MV_MIME_SANITIZE_INTERNAL_H

#include "mime/mime.h"

#include <libxml/tree.h>

enum { EL_VOID = 1 };

typedef struct element_def {
	const char *name;
	unsigned flags;
} element_def;

typedef struct san {
	const mv_html_policy *policy; /* never NULL: a default stands in */
	GString *out;
	size_t limit;        /* out->len may not pass this except for closing tags */
	bool full;           /* limit reached: nothing opens any more */
	bool had_remote;
	GString *scratch;    /* one start tag, built before it is known to fit */
} san;

/* sanitize.c: t (UTF-8, invalid bytes replaced) escaped onto dst; attr: quotes too. */
void san_append_escaped(GString *dst, const char *t, bool attr);

/* sanitize_elements.c: the kept element named name (any case), or NULL. */
const element_def *san_kept_element(const char *name);
/* sanitize_elements.c: true when name's element is dropped with everything inside. */
bool san_dropped_element(const char *name);
/* sanitize_elements.c: n's start tag into s->scratch; the element it opens (an <a> may become a span). */
const element_def *san_build_start_tag(san *s, const element_def *def, xmlNode *n);
/* sanitize_elements.c: <body>'s look as a <div> start tag into s->scratch, or NULL when none. */
const element_def *san_build_body_wrapper(san *s, xmlNode *body);

/* sanitize_url.c: the href to write for a link, a new string, or NULL to drop it. */
char *san_link_target(const char *raw);
/* sanitize_url.c: the URL to write for anything fetched (img, CSS url()), a new string, or NULL. */
char *san_image_source(san *s, const char *raw);

/* sanitize_css.c: css filtered onto dst; sheet: a <style> block, else a style attribute. */
void san_css_filter(san *s, const char *css, size_t len, bool sheet, GString *dst);

/* sanitize_flood.c: s with at most max attributes per start tag; s itself or a new string (s freed). */
char *san_cap_attributes(char *s, unsigned max);

#endif
