/* base/names: what an archive name may be, and the one spelling of a name.
 *
 * Folder privileges and every folder argument name a folder as
 * "archive/path/...", splitting at the first '/'.  An archive whose name
 * held a '/' would read as an archive and a folder at once, and a grant on
 * the first part would reach it; a control character would hide in logs
 * and listings.  So archive names are checked wherever one can come in
 * (import, ingest, folder moves, the store's own folder rows), by this one
 * rule, kept here at the bottom so store/ can ask it too. */
#include "base/base.h"

#include <string.h>

static const char *name_fault(const char *name, size_t len)
{
	if (len == 0)
		return "it is empty";
	if (len > MV_MAX_ARCHIVE_NAME_BYTES)
		return "it is longer than " G_STRINGIFY(MV_MAX_ARCHIVE_NAME_BYTES) " bytes";
	if (!g_utf8_validate(name, (gssize)len, NULL))
		return "it is not valid UTF-8";
	if (memchr(name, '/', len))
		return "'/' separates an archive from its folders";
	for (const char *p = name; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_iscntrl(c))
			return "it holds a control character";
	}
	return NULL;
}

bool mv_archive_name_ok(const char *name)
{
	return name && !name_fault(name, strlen(name));
}

int mv_archive_name_check(const char *name, GError **error)
{
	const char *fault = name ? name_fault(name, strlen(name)) : "it is missing";
	if (!fault)
		return 0;
	char *shown = name ? mv_utf8_sanitize(name, -1) : g_strdup("");
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "archive name '%.200s' is not allowed: %s", shown, fault);
	g_free(shown);
	return -1;
}

/* ---- one spelling per name ------------------------------------------------------ */

/* "Café" arrives precomposed from one client and decomposed (e + U+0301)
 * from another (macOS file names): the same name to a person, different
 * bytes to a comparison.  Names are stored in NFC and compared folded and
 * in NFC, so a privilege on one spelling covers the other.  Bytes that are
 * not UTF-8 cannot be normalised and are kept as they are. */
char *mv_name_canonical(const char *name)
{
	if (!name)
		return NULL;
	char *nfc = g_utf8_validate(name, -1, NULL) ? g_utf8_normalize(name, -1, G_NORMALIZE_NFC) : NULL;
	return nfc ? nfc : g_strdup(name);
}

bool mv_name_is_canonical(const char *name)
{
	char *nfc = mv_name_canonical(name);
	bool same = nfc && strcmp(nfc, name) == 0;
	g_free(nfc);
	return same;
}

char *mv_name_fold(const char *name)
{
	if (!g_utf8_validate(name, -1, NULL))
		return g_strdup(name);
	char *folded = g_utf8_casefold(name, -1);
	char *nfc = g_utf8_normalize(folded, -1, G_NORMALIZE_NFC);
	g_free(folded);
	return nfc ? nfc : g_strdup(name);
}
