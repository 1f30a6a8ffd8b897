/* pdf: the text of a PDF, page by page, through poppler-glib.
 *
 * Poppler reads the document from memory (no copy, no file) and lays out
 * one page at a time, so memory follows the largest page, not the document.
 * A file that claims millions of pages is read until the text limit or the
 * page bound, whichever comes first; what such a file costs in time is the
 * worker's deadline's business, not this file's.  Poppler reports its
 * complaints on stderr, which in the worker goes nowhere. */
#include "extract/internal.h"

#include <poppler.h>
#include <string.h>

/* Pages read at most: past this a document's text is taken as read (a real
 * document this long has long filled the text limit). */
#define MAX_PAGES 100000

static int open_error(GError *perr, GError **error)
{
	if (g_error_matches(perr, POPPLER_ERROR, POPPLER_ERROR_ENCRYPTED))
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "encrypted PDF");
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged PDF: %s", perr ? perr->message : "unreadable");
	g_clear_error(&perr);
	return -1;
}

/* Appends one page's text and a line end; false once the limit is full. */
static bool append_page(PopplerDocument *doc, int index, GString *out, size_t limit)
{
	PopplerPage *page = poppler_document_get_page(doc, index);
	if (!page)
		return true; /* a broken page: the others may still read */
	char *text = poppler_page_get_text(page);
	bool room = true;
	if (text && *text) {
		room = mv_doc_append(out, limit, text, strlen(text));
		mv_doc_newline(out, limit);
	}
	g_free(text);
	g_object_unref(page);
	return room && out->len < limit;
}

int mv_extract_pdf(const uint8_t *data, size_t len, GString *out, size_t limit, GError **error)
{
	GBytes *bytes = g_bytes_new_static(data, len);
	GError *perr = NULL;
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &perr);
	g_bytes_unref(bytes);
	if (!doc)
		return open_error(perr, error);
	int pages = poppler_document_get_n_pages(doc);
	if (pages > MAX_PAGES)
		pages = MAX_PAGES;
	for (int i = 0; i < pages; i++)
		if (!append_page(doc, i, out, limit))
			break;
	g_object_unref(doc);
	return 0;
}
