/* mail_flags: the flags a source gave a message, as the archive records
 * them and as IMAP shows them — one reading for the IMAP server, the
 * IMAP restore and every reader.
 *
 * The record is text: "" when the source said nothing (an EML file, an
 * mbox: archived mail, shown as read), else "2," and Maildir's flag
 * letters (S seen, R answered, F flagged, D draft, in any order) — so a
 * Maildir file in new/ ("2,") is unread, as its source said.  Records made
 * before the "2," form hold the bare letters and read the same way. */
#include "mime/mime.h"
#include <string.h>

static const struct {
	char letter;
	unsigned bit;
	const char *imap;
} known[] = {
	{ 'S', MV_MAIL_FLAG_SEEN, "\\Seen" },
	{ 'R', MV_MAIL_FLAG_ANSWERED, "\\Answered" },
	{ 'F', MV_MAIL_FLAG_FLAGGED, "\\Flagged" },
	{ 'D', MV_MAIL_FLAG_DRAFT, "\\Draft" },
};

unsigned mv_mail_flags_parse(const char *record)
{
	if (!record || !*record)
		return MV_MAIL_FLAG_SEEN;
	const char *letters = strncmp(record, "2,", 2) == 0 ? record + 2 : record;
	unsigned bits = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
		if (strchr(letters, known[i].letter))
			bits |= known[i].bit;
	return bits;
}

char *mv_mail_flags_from_maildir(const char *file_name)
{
	const char *info = strstr(file_name, ":2,");
	GString *out = g_string_new("2,");
	for (const char *p = info ? info + 3 : ""; *p; p++)
		if (g_ascii_isupper(*p) && !strchr(out->str + 2, *p))
			g_string_append_c(out, *p);
	return g_string_free(out, FALSE);
}

void mv_mail_flags_append_imap(GString *out, unsigned bits)
{
	g_string_append_c(out, '(');
	const char *sep = "";
	for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
		if (bits & known[i].bit) {
			g_string_append_printf(out, "%s%s", sep, known[i].imap);
			sep = " ";
		}
	}
	g_string_append_c(out, ')');
}
