/* zip: reading ZIP archives held in memory (libzip), for the archives
 * attached to mail and for the Office formats that are ZIPs inside.
 *
 * A ZIP says how large each entry inflates to, and a zip bomb lies about
 * it.  So nothing here trusts a declared size: entries are inflated in
 * chunks, each byte counted against one budget for the whole outermost
 * archive (nested archives and overlapping entries draw on the same
 * budget), and running past it ends the document with an error.
 *
 * An archive's text is the names of its entries, one per line, each
 * followed by the text of the entry when it is a document or a text file
 * and nesting allows. */
#include "extract/internal.h"

#include "mime/mime.h"

#include <string.h>

#define CHUNK (64u * 1024u)

int mv_zip_open(const uint8_t *data, size_t len, zip_t **za_r, GError **error)
{
	zip_error_t zerr;
	zip_error_init(&zerr);
	zip_source_t *src = zip_source_buffer_create(data, len, 0, &zerr);
	zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY, &zerr) : NULL;
	if (!za) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged ZIP archive: %s", zip_error_strerror(&zerr));
		if (src)
			zip_source_free(src);
		zip_error_fini(&zerr);
		return -1;
	}
	zip_error_fini(&zerr);
	*za_r = za;
	return 0;
}

static int bomb(GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "document expands beyond %u MB (zip bomb?)",
	            MV_EXTRACT_ZIP_EXPANDED / (1024u * 1024u));
	return -1;
}

static bool entry_encrypted(zip_t *za, zip_uint64_t index)
{
	zip_stat_t st;
	zip_stat_init(&st);
	return zip_stat_index(za, index, 0, &st) == 0 && (st.valid & ZIP_STAT_ENCRYPTION_METHOD) &&
	       st.encryption_method != ZIP_EM_NONE;
}

int mv_zip_read_entry(zip_t *za, zip_uint64_t index, uint64_t *budget, mv_zip_chunk_fn fn, void *ctx, GError **error)
{
	if (entry_encrypted(za, index)) {
		g_set_error(error, MV_ERROR, MV_ERR_UNSUPPORTED, "encrypted");
		return -1;
	}
	zip_file_t *zf = zip_fopen_index(za, index, 0);
	if (!zf) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged ZIP entry: %s", zip_strerror(za));
		return -1;
	}
	uint8_t *buf = g_malloc(CHUNK);
	int rc = 0;
	for (;;) {
		/* Never ask for more than the budget has left (plus one byte, to
		 * tell "exactly used up" from "more to come"). */
		zip_uint64_t want = *budget < CHUNK ? *budget + 1 : CHUNK;
		zip_int64_t n = zip_fread(zf, buf, want);
		if (n < 0) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "damaged ZIP entry: %s", zip_file_strerror(zf));
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > *budget) {
			*budget = 0;
			rc = bomb(error);
			break;
		}
		*budget -= (uint64_t)n;
		if (!fn(ctx, buf, (size_t)n))
			break;
	}
	g_free(buf);
	zip_fclose(zf);
	return rc;
}

typedef struct collect {
	GByteArray *bytes;
	size_t max;
	bool truncate;
	bool too_large;
} collect;

static bool collect_chunk(void *ctx, const uint8_t *chunk, size_t len)
{
	collect *c = ctx;
	size_t room = c->max - c->bytes->len;
	if (len > room && !c->truncate) {
		c->too_large = true;
		return false;
	}
	g_byte_array_append(c->bytes, chunk, (guint)MIN(len, room));
	/* Full: a prefix is all that is wanted; a whole entry must show it
	 * has no more. */
	return !c->truncate || c->bytes->len < c->max;
}

int mv_zip_read_entry_bytes(zip_t *za, zip_uint64_t index, uint64_t *budget, size_t max, bool truncate,
                            GByteArray **bytes_r, GError **error)
{
	collect c = { g_byte_array_new(), max, truncate, false };
	if (mv_zip_read_entry(za, index, budget, collect_chunk, &c, error) < 0) {
		g_byte_array_unref(c.bytes);
		return -1;
	}
	if (c.too_large) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "larger than %zu MB", max / (1024 * 1024));
		g_byte_array_unref(c.bytes);
		return -1;
	}
	*bytes_r = c.bytes;
	return 0;
}

/* ---- archives ------------------------------------------------------------------ */

static bool has_ext(const char *name, const char *const *exts)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return false;
	for (; *exts; exts++)
		if (g_ascii_strcasecmp(dot + 1, *exts) == 0)
			return true;
	return false;
}

/* Text files inside an archive, read by mime's built-in readers (by name,
 * as an application/octet-stream part).  Mail (.eml) is not among them:
 * a message's attachments would want a parser of their own here. */
static const char *const text_exts[] = { "txt", "csv", "log", "md", "htm", "html", "rtf", NULL };

static int extract_text_entry(const char *name, const GByteArray *bytes, GString *out, size_t limit, GError **error)
{
	const mv_text_extractor *ex = mv_text_extractor_find("application/octet-stream", name);
	if (!ex || strcmp(ex->name, "document") == 0)
		return 0;
	mv_extract_request req = { bytes->data, bytes->len, NULL, "application/octet-stream", name };
	GString *text = g_string_new(NULL);
	int rc = ex->extract(&req, text, limit - out->len, error);
	mv_doc_append(out, limit, text->str, text->len);
	g_string_free(text, TRUE);
	return rc;
}

/* A prefix cut inside a UTF-8 character would make the whole text look
 * like another charset to mime's reader: the cut character goes. */
static void drop_partial_character(GByteArray *b)
{
	size_t i = b->len, back = 0;
	while (i > 0 && back < 4 && (b->data[i - 1] & 0xC0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0 || b->data[i - 1] < 0xC0)
		return;
	/* b->data[i - 1] leads a sequence of need bytes; back of them follow */
	unsigned char lead = b->data[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	if (back + 1 < need)
		g_byte_array_set_size(b, (guint)(i - 1));
}

typedef struct archive {
	zip_t *za;
	int depth;
	uint64_t *budget;
	GString *out;
	size_t limit;
} archive;

/* One entry's content.  -1 only for what ends the whole archive (the
 * budget spent); an entry that does not read is left at its name. */
static int read_content(archive *a, zip_uint64_t index, const char *name, GError **error)
{
	mv_doc_kind by_name = mv_doc_kind_detect(NULL, name, NULL, 0);
	if (by_name == MV_DOC_NONE && !has_ext(name, text_exts))
		return 0;
	/* A text file is read only as far as its text can still be used (with
	 * room for markup); a document whole, up to what a document may be. */
	bool text = by_name == MV_DOC_NONE;
	size_t max = text ? (a->limit - a->out->len) * 4 + 4096 : MV_EXTRACT_MAX_INPUT;
	GByteArray *bytes = NULL;
	GError *err = NULL;
	if (mv_zip_read_entry_bytes(a->za, index, a->budget, max, text, &bytes, &err) < 0) {
		bool fatal = *a->budget == 0;
		const char *note = err->code == MV_ERR_UNSUPPORTED ? " (encrypted)" :
		                   err->code == MV_ERR_LIMIT && !fatal ? " (too large, not read)" : NULL;
		if (note)
			mv_doc_append(a->out, a->limit, note, strlen(note));
		if (fatal)
			g_propagate_error(error, err);
		else
			g_error_free(err);
		return fatal ? -1 : 0;
	}
	mv_doc_newline(a->out, a->limit);
	int rc = 0;
	if (text && bytes->len == max)
		drop_partial_character(bytes);
	if (text) {
		extract_text_entry(name, bytes, a->out, a->limit, &err);
	} else {
		mv_doc_kind kind = mv_doc_kind_detect(NULL, name, bytes->data, bytes->len);
		if (kind != MV_DOC_NONE)
			rc = mv_extract_nested(kind, bytes->data, bytes->len, a->depth + 1, a->budget, a->out, a->limit, &err);
		/* A document inside that does not read stays a name; only a spent
		 * budget ends the archive. */
		if (rc < 0 && *a->budget > 0)
			rc = 0;
	}
	if (rc < 0)
		g_propagate_error(error, err);
	else
		g_clear_error(&err);
	g_byte_array_unref(bytes);
	return rc;
}

static int read_entries(archive *a, GError **error)
{
	zip_int64_t n = zip_get_num_entries(a->za, 0);
	if (n > MV_EXTRACT_ZIP_ENTRIES)
		n = MV_EXTRACT_ZIP_ENTRIES;
	for (zip_int64_t i = 0; i < n && a->out->len < a->limit; i++) {
		const char *raw = zip_get_name(a->za, (zip_uint64_t)i, 0);
		if (!raw)
			continue;
		mv_doc_newline(a->out, a->limit);
		mv_doc_append(a->out, a->limit, raw, strlen(raw));
		size_t name_len = strlen(raw);
		if (name_len == 0 || raw[name_len - 1] == '/' || a->depth >= MV_EXTRACT_ZIP_DEPTH)
			continue;
		/* raw stays valid: the archive is only read */
		if (read_content(a, (zip_uint64_t)i, raw, error) < 0)
			return -1;
	}
	mv_doc_newline(a->out, a->limit);
	return 0;
}

int mv_extract_zip(const uint8_t *data, size_t len, int depth, uint64_t *budget, GString *out, size_t limit,
                   GError **error)
{
	archive a = { NULL, depth, budget, out, limit };
	if (mv_zip_open(data, len, &a.za, error) < 0)
		return -1;
	int rc = read_entries(&a, error);
	zip_discard(a.za);
	return rc;
}
