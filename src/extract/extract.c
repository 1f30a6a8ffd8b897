/* extract: which documents this module reads, and the one entry mime's
 * extractor table gets for all of them.
 *
 * A part is accepted by its type or file name alone (cheap, asked for every
 * part of every message); only then are its bytes looked at, and the bytes
 * decide: a .doc that is really an RTF file goes to mime's RTF reader, a
 * .zip that is really a .docx is read as one, a .pdf that is no PDF at all
 * is reported as such.  That look at the bytes is a few magic numbers and
 * fixed offsets, never a parser: parsing happens only in the worker.
 *
 * Also here: the appender every reader writes its text through, so that
 * what reaches the index is valid UTF-8 and within the limit whoever wrote
 * it. */
#include "extract/internal.h"

#include "mime/mime.h"

#include <string.h>

static const uint8_t cfb_magic[8] = { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 };

/* ---- text ------------------------------------------------------------------- */

/* Appends at most room bytes of s, cut on a character boundary; false when
 * something had to be left out. */
static bool append_within(GString *out, const char *s, size_t n, size_t room)
{
	if (n <= room) {
		g_string_append_len(out, s, (gssize)n);
		return true;
	}
	const char *cut = s + room;
	while (cut > s && ((unsigned char)*cut & 0xC0) == 0x80)
		cut--;
	g_string_append_len(out, s, cut - s);
	return false;
}

static bool is_control(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f;
}

/* Appends valid UTF-8 with its control characters replaced: CR ends a line
 * (CR LF one), the others become a space. */
static bool append_valid(GString *out, size_t limit, const char *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!is_control(c))
			continue;
		if (!append_within(out, s + run, i - run, limit - out->len))
			return false;
		run = i + 1;
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (!append_within(out, c == '\r' ? "\n" : " ", 1, limit - out->len))
			return false;
	}
	return append_within(out, s + run, n - run, limit - out->len);
}

bool mv_doc_append(GString *out, size_t limit, const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (out->len >= limit)
			return false;
		/* Each validation stops at the first bad byte: linear overall. */
		const char *end = NULL;
		g_utf8_validate_len(text + i, len - i, &end);
		size_t valid = (size_t)(end - (text + i));
		if (!append_valid(out, limit, text + i, valid))
			return false;
		i += valid;
		if (i < len) {
			if (!append_within(out, "\xEF\xBF\xBD", 3, limit - out->len))
				return false;
			i++;
		}
	}
	return out->len < limit;
}

void mv_doc_newline(GString *out, size_t limit)
{
	if (out->len > 0 && out->str[out->len - 1] != '\n' && out->len < limit)
		g_string_append_c(out, '\n');
}

/* ---- kinds ------------------------------------------------------------------ */

const char *mv_doc_kind_name(mv_doc_kind kind)
{
	switch (kind) {
	case MV_DOC_PDF: return "PDF";
	case MV_DOC_OOXML: return "Office Open XML document";
	case MV_DOC_ODF: return "OpenDocument file";
	case MV_DOC_DOC: return "Word document";
	case MV_DOC_XLS: return "Excel workbook";
	case MV_DOC_PPT: return "PowerPoint presentation";
	case MV_DOC_ZIP: return "ZIP archive";
	case MV_DOC_NONE: break;
	}
	return "document";
}

static const struct {
	const char *ext;
	mv_doc_kind kind;
} extensions[] = {
	{ "pdf", MV_DOC_PDF },
	{ "docx", MV_DOC_OOXML }, { "docm", MV_DOC_OOXML }, { "dotx", MV_DOC_OOXML }, { "dotm", MV_DOC_OOXML },
	{ "xlsx", MV_DOC_OOXML }, { "xlsm", MV_DOC_OOXML }, { "xltx", MV_DOC_OOXML }, { "xltm", MV_DOC_OOXML },
	{ "pptx", MV_DOC_OOXML }, { "pptm", MV_DOC_OOXML }, { "potx", MV_DOC_OOXML }, { "ppsx", MV_DOC_OOXML },
	{ "odt", MV_DOC_ODF }, { "ods", MV_DOC_ODF }, { "odp", MV_DOC_ODF },
	{ "ott", MV_DOC_ODF }, { "ots", MV_DOC_ODF }, { "otp", MV_DOC_ODF },
	{ "doc", MV_DOC_DOC }, { "dot", MV_DOC_DOC },
	{ "xls", MV_DOC_XLS }, { "xlt", MV_DOC_XLS },
	{ "ppt", MV_DOC_PPT }, { "pps", MV_DOC_PPT }, { "pot", MV_DOC_PPT },
	{ "zip", MV_DOC_ZIP },
};

static mv_doc_kind kind_from_name(const char *filename)
{
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	if (!dot || dot == filename)
		return MV_DOC_NONE;
	for (size_t i = 0; i < G_N_ELEMENTS(extensions); i++)
		if (g_ascii_strcasecmp(dot + 1, extensions[i].ext) == 0)
			return extensions[i].kind;
	return MV_DOC_NONE;
}

static bool type_is(const char *type, const char *want)
{
	return g_ascii_strcasecmp(type, want) == 0;
}

static bool type_has_prefix(const char *type, const char *prefix)
{
	return g_ascii_strncasecmp(type, prefix, strlen(prefix)) == 0;
}

/* The kind a type names; NONE for types that name none (and for
 * application/octet-stream, where the file name decides). */
static mv_doc_kind kind_from_type(const char *type)
{
	if (type_is(type, "application/pdf") || type_is(type, "application/x-pdf"))
		return MV_DOC_PDF;
	if (type_has_prefix(type, "application/vnd.openxmlformats-officedocument."))
		return MV_DOC_OOXML;
	/* Word, Excel and PowerPoint files with macros are OOXML too. */
	if (type_has_prefix(type, "application/vnd.ms-") && strstr(type, "macroenabled"))
		return MV_DOC_OOXML;
	if (type_has_prefix(type, "application/vnd.oasis.opendocument."))
		return MV_DOC_ODF;
	if (type_is(type, "application/msword"))
		return MV_DOC_DOC;
	if (type_is(type, "application/vnd.ms-excel"))
		return MV_DOC_XLS;
	if (type_is(type, "application/vnd.ms-powerpoint"))
		return MV_DOC_PPT;
	if (type_is(type, "application/zip") || type_is(type, "application/x-zip-compressed") ||
	    type_is(type, "application/x-zip"))
		return MV_DOC_ZIP;
	return MV_DOC_NONE;
}

static mv_doc_kind claimed_kind(const char *mime_type, const char *filename)
{
	if (mime_type && *mime_type && !type_is(mime_type, "application/octet-stream"))
		return kind_from_type(mime_type);
	return kind_from_name(filename);
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* The first entry of a ZIP as written in its local header at offset 0: an
 * ODF package starts with a stored "mimetype", OOXML writers start with
 * "[Content_Types].xml".  Only fixed offsets are read. */
static mv_doc_kind zip_first_entry_kind(const uint8_t *data, size_t len)
{
	if (len < 30)
		return MV_DOC_NONE;
	size_t name_len = le16(data + 26), extra_len = le16(data + 28);
	if (30 + name_len > len)
		return MV_DOC_NONE;
	const char *name = (const char *)data + 30;
	static const char ct[] = "[Content_Types].xml", odf[] = "application/vnd.oasis.opendocument.";
	if (name_len == strlen(ct) && memcmp(name, ct, name_len) == 0)
		return MV_DOC_OOXML;
	size_t body = 30 + name_len + extra_len;
	if (name_len == 8 && memcmp(name, "mimetype", 8) == 0 && le16(data + 8) == 0 && body + strlen(odf) <= len &&
	    memcmp(data + body, odf, strlen(odf)) == 0)
		return MV_DOC_ODF;
	return MV_DOC_NONE;
}

/* Whether a Compound File's directory has an entry of this name: entries
 * are 128-byte records, every one at a multiple of 128 in the file, their
 * name UTF-16LE and NUL-terminated.  Found as bytes (no CFB parser runs
 * outside the worker); the alignment and the terminator keep the same
 * words in a document's own text from counting. */
static bool has_cfb_entry(const uint8_t *data, size_t len, const char *name)
{
	size_t n = strlen(name), wide_len = (n + 1) * 2;
	uint8_t *wide = g_malloc0(wide_len);
	for (size_t i = 0; i < n; i++)
		wide[2 * i] = (uint8_t)name[i];
	bool found = false;
	const uint8_t *p = data, *end = data + len;
	while (!found && p < end) {
		const uint8_t *hit = memmem(p, (size_t)(end - p), wide, wide_len);
		if (!hit)
			break;
		found = (size_t)(hit - data) % 128 == 0;
		p = hit + 1;
	}
	g_free(wide);
	return found;
}

/* A Compound File's kind by its stream names; NONE when they do not say,
 * or say more than one thing. */
static mv_doc_kind cfb_kind(const uint8_t *data, size_t len)
{
	bool word = has_cfb_entry(data, len, "WordDocument");
	bool excel = has_cfb_entry(data, len, "Workbook") || has_cfb_entry(data, len, "Book");
	bool ppt = has_cfb_entry(data, len, "PowerPoint Document");
	if (word + excel + ppt != 1)
		return MV_DOC_NONE;
	return word ? MV_DOC_DOC : excel ? MV_DOC_XLS : MV_DOC_PPT;
}

/* What the bytes are, given what the type or name claimed. */
static mv_doc_kind sniff(mv_doc_kind claimed, const uint8_t *data, size_t len)
{
	if (len >= 4 && memcmp(data, "PK\3\4", 4) == 0) {
		mv_doc_kind first = zip_first_entry_kind(data, len);
		if (first != MV_DOC_NONE)
			return first;
		return claimed == MV_DOC_OOXML || claimed == MV_DOC_ODF ? claimed : MV_DOC_ZIP;
	}
	if (len >= 4 && memcmp(data, "PK\5\6", 4) == 0)
		return MV_DOC_ZIP; /* an empty archive */
	/* A Compound File is what its streams say (an Excel file named .doc
	 * is read as Excel; an Outlook item named .doc is no document). */
	if (len >= sizeof cfb_magic && memcmp(data, cfb_magic, sizeof cfb_magic) == 0)
		return cfb_kind(data, len);
	/* PDF readers accept a header anywhere in the first kilobyte. */
	if (memmem(data, len < 1024 ? len : 1024, "%PDF-", 5))
		return MV_DOC_PDF;
	return MV_DOC_NONE;
}

mv_doc_kind mv_doc_kind_detect(const char *mime_type, const char *filename, const uint8_t *data, size_t len)
{
	mv_doc_kind claimed = claimed_kind(mime_type, filename);
	if (!data)
		return claimed;
	return sniff(claimed, data, len);
}

/* ---- dispatch --------------------------------------------------------------- */

int mv_extract_nested(mv_doc_kind kind, const uint8_t *data, size_t len, int depth, uint64_t *budget, GString *out,
                      size_t limit, GError **error)
{
	switch (kind) {
	case MV_DOC_PDF:
		return mv_extract_pdf(data, len, out, limit, error);
	case MV_DOC_OOXML:
	case MV_DOC_ODF:
		return mv_extract_office(data, len, budget, out, limit, error);
	case MV_DOC_DOC:
	case MV_DOC_XLS:
	case MV_DOC_PPT:
		return mv_extract_legacy(kind, data, len, out, limit, error);
	case MV_DOC_ZIP:
		return mv_extract_zip(data, len, depth, budget, out, limit, error);
	case MV_DOC_NONE:
		break;
	}
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not a document this build reads");
	return -1;
}

int mv_extract_direct(mv_doc_kind kind, const uint8_t *data, size_t len, int depth, GString *out, size_t limit,
                      GError **error)
{
	/* Inside, a limit is the length out may reach. */
	size_t cap = out->len + MIN(limit, (size_t)MV_EXTRACT_MAX_TEXT);
	uint64_t budget = MV_EXTRACT_ZIP_EXPANDED;
	return mv_extract_nested(kind, data, len, depth, &budget, out, cap, error);
}

/* ---- the extractor in mime's table ---------------------------------------------- */

static bool accepts_document(const char *mime_type, const char *filename)
{
	return mv_doc_kind_detect(mime_type, filename, NULL, 0) != MV_DOC_NONE;
}

/* "%PDF" as text, other bytes as \xNN: what a file that is not what it
 * claims starts with, for the reason shown to an administrator. */
static char *describe_start(const uint8_t *data, size_t len)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < len && i < 8; i++) {
		if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '\\')
			g_string_append_c(s, (char)data[i]);
		else
			g_string_append_printf(s, "\\x%02X", data[i]);
	}
	if (len == 0)
		g_string_append(s, "nothing: it is empty");
	return g_string_free(s, FALSE);
}

static const char *article(const char *noun)
{
	return strchr("AEIOU", noun[0]) ? "an" : "a";
}

/* Files saved as .doc or .xls by other programs are often RTF or HTML: the
 * built-in readers of mime's table take those. */
static const mv_text_extractor *text_reader_for(const uint8_t *data, size_t len)
{
	size_t n = len < 512 ? len : 512;
	if (len >= 5 && memcmp(data, "{\\rtf", 5) == 0)
		return mv_text_extractor_find("text/rtf", NULL);
	if (g_strstr_len((const char *)data, (gssize)n, "<html") || g_strstr_len((const char *)data, (gssize)n, "<HTML"))
		return mv_text_extractor_find("text/html", NULL);
	return NULL;
}

static int refuse_mismatch(mv_doc_kind claimed, const uint8_t *data, size_t len, GError **error)
{
	const char *name = mv_doc_kind_name(claimed);
	if (len >= sizeof cfb_magic && memcmp(data, cfb_magic, sizeof cfb_magic) == 0 &&
	    has_cfb_entry(data, len, "EncryptedPackage")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "password-protected %s", name);
		return -1;
	}
	char *start = describe_start(data, len);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not %s %s (starts with %s)", article(name), name, start);
	g_free(start);
	return -1;
}

static int extract_document(const mv_extract_request *req, GString *out, size_t limit, GError **error)
{
	mv_doc_kind claimed = mv_doc_kind_detect(req->mime_type, req->filename, NULL, 0);
	mv_doc_kind kind = mv_doc_kind_detect(req->mime_type, req->filename, req->data, req->len);
	if (kind == MV_DOC_NONE) {
		const mv_text_extractor *text = text_reader_for(req->data, req->len);
		if (text)
			return text->extract(req, out, limit, error);
		return refuse_mismatch(claimed, req->data, req->len, error);
	}
	return mv_extract_document(kind, req->data, req->len, out, limit, error);
}

static const mv_text_extractor document_extractor = { "document", accepts_document, extract_document };

void mv_extract_init(const char *worker_exe)
{
	static gsize once = 0;
	if (!g_once_init_enter(&once))
		return;
	mv_extract_worker_set_exe(worker_exe);
	mv_extract_worker_read_env();
	mv_text_extractor_register(&document_extractor);
	g_once_init_leave(&once, 1);
}
