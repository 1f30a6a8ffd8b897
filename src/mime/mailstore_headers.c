/* mailstore_headers: the one definition of the export format's per-message
 * parts — the block of "MailStore headers" an exported EML file starts with
 * (its folder names in IMAP modified UTF-7, mutf7.c), the archive date
 * form, and the check of a detached signature.  Both sides use it: export/
 * writes blocks and signs, the import (mime/reader.c, below export/) reads
 * blocks back and checks signatures, so the format cannot drift apart.
 *
 * The block is prepended, never merged into the message's own header: the
 * bytes after it are the archived message exactly, and the reader strips
 * exactly block_len bytes.  Where the block ends is decided without
 * guessing: ours starts with X-MailVault-Archive-UTF7 and ends with
 * X-MailStore-Header-Hash (a SHA-256 of the rest, which also shows a file
 * altered after export), so a message whose own header happens to begin
 * with an X-MailStore-* field keeps it.  Files from MailStore itself carry
 * no such frame; there the leading run of X-MailStore-* fields is the block.
 *
 * Everything here reads hostile bytes (and is fuzzed): lines and fields are
 * bounded, values are validated before use, nothing is allocated from a
 * length the input claims. */
#include "mime/mime.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#define OUR_FIRST "X-MailVault-Archive-UTF7"
#define F_MESSAGE_ID "X-MailStore-Message-ID"
#define F_FOLDER "X-MailStore-Folder-UTF7"
#define F_DATE "X-MailStore-Date"
#define F_FLAGS "X-MailStore-Flags"
#define F_HASH "X-MailStore-Header-Hash"
#define MAILSTORE_PREFIX "X-MailStore-"
#define MAX_FLAGS_LEN 64u
#define MAX_PUBKEY_PEM (64u * 1024u)

void mv_mailstore_headers_clear(mv_mailstore_headers *h)
{
	g_clear_pointer(&h->archive, g_free);
	g_clear_pointer(&h->folder, g_free);
	g_clear_pointer(&h->message_id, g_free);
	g_clear_pointer(&h->flags, g_free);
	g_clear_pointer(&h->header_hash, g_free);
	h->archived_at = 0;
	h->block_len = 0;
}

/* ---- archive date ------------------------------------------------------------------- */

char *mv_mailstore_date_format(int64_t t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (!dt)
		return g_strdup("19700101000000");
	char *s = g_date_time_format(dt, "%Y%m%d%H%M%S");
	g_date_time_unref(dt);
	return s;
}

static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

bool mv_mailstore_date_parse(const char *text, int64_t *t_r)
{
	if (strlen(text) != 14)
		return false;
	for (int i = 0; i < 14; i++)
		if (!g_ascii_isdigit(text[i]))
			return false;
	/* GDateTime refuses impossible dates (Feb 30, hour 24, ...). */
	GDateTime *dt = g_date_time_new_utc(digits(text, 4), digits(text + 4, 2), digits(text + 6, 2),
	                                    digits(text + 8, 2), digits(text + 10, 2), digits(text + 12, 2));
	if (!dt)
		return false;
	*t_r = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return *t_r >= 0;
}

/* ---- writing ------------------------------------------------------------------------ */

static const char *line_ending_of(const uint8_t *raw, size_t len)
{
	const uint8_t *nl = memchr(raw, '\n', len);
	return !nl || (nl > raw && nl[-1] == '\r') ? "\r\n" : "\n";
}

static void put_field(GByteArray *out, const char *name, const char *value, const char *eol)
{
	g_byte_array_append(out, (const guint8 *)name, (guint)strlen(name));
	g_byte_array_append(out, (const guint8 *)": ", 2);
	g_byte_array_append(out, (const guint8 *)value, (guint)strlen(value));
	g_byte_array_append(out, (const guint8 *)eol, (guint)strlen(eol));
}

/* Flags are Maildir letters; anything else (a future form) is kept only
 * when it cannot break the line. */
static bool flags_ok(const char *flags)
{
	size_t n = strlen(flags);
	if (n == 0 || n > MAX_FLAGS_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (flags[i] < 0x21 || flags[i] > 0x7e)
			return false;
	return true;
}

void mv_mailstore_headers_write(const mv_mailstore_headers *h, const uint8_t *raw, size_t raw_len, GByteArray *out)
{
	const char *eol = line_ending_of(raw, raw_len);
	char *archive = mv_mutf7_encode(h->archive ? h->archive : "");
	char *folder = mv_mutf7_encode(h->folder ? h->folder : "");
	char *date = mv_mailstore_date_format(h->archived_at);
	char *hash = g_compute_checksum_for_data(G_CHECKSUM_SHA256, raw, raw_len);
	put_field(out, OUR_FIRST, archive, eol);
	if (h->message_id && flags_ok(h->message_id))
		put_field(out, F_MESSAGE_ID, h->message_id, eol);
	put_field(out, F_FOLDER, folder, eol);
	put_field(out, F_DATE, date, eol);
	if (h->flags && flags_ok(h->flags))
		put_field(out, F_FLAGS, h->flags, eol);
	put_field(out, F_HASH, hash, eol);
	g_free(archive);
	g_free(folder);
	g_free(date);
	g_free(hash);
}

/* ---- reading ------------------------------------------------------------------------ */

/* What a MailStore export may write in its ID and flags fields is not
 * documented: any short printable text is taken. */
static bool printable_ok(const char *value)
{
	size_t n = strlen(value);
	if (n == 0 || n > 256)
		return false;
	for (size_t i = 0; i < n; i++)
		if (value[i] < 0x20 || value[i] > 0x7e)
			return false;
	return true;
}

/* One header line at data[pos]: its name and value (trimmed), the index
 * after its line ending.  false when there is no complete, bounded line. */
typedef struct field_line {
	char *name, *value;
	size_t next;
} field_line;

static void field_line_clear(field_line *f)
{
	g_clear_pointer(&f->name, g_free);
	g_clear_pointer(&f->value, g_free);
}

static bool next_line(const uint8_t *data, size_t len, size_t pos, field_line *f)
{
	size_t avail = MIN(len - pos, (size_t)MV_MAILSTORE_MAX_LINE);
	const uint8_t *nl = memchr(data + pos, '\n', avail);
	if (!nl)
		return false;
	size_t end = (size_t)(nl - data);
	f->next = end + 1;
	if (end > pos && data[end - 1] == '\r')
		end--;
	const uint8_t *colon = memchr(data + pos, ':', end - pos);
	if (!colon || colon == data + pos)
		return false;
	f->name = g_strndup((const char *)data + pos, (gsize)(colon - data - pos));
	const char *v = (const char *)colon + 1;
	size_t vlen = end - (size_t)(colon + 1 - data);
	if (memchr(v, '\0', vlen))
		return false;
	f->value = g_strstrip(g_strndup(v, vlen));
	return true;
}

static bool is_continuation(const uint8_t *data, size_t len, size_t pos)
{
	return pos < len && (data[pos] == ' ' || data[pos] == '\t');
}

static int bad(GError **error, const char *fmt, const char *what)
{
	g_set_error(error, MV_ERROR, MV_ERR_INVALID, fmt, what);
	return -1;
}

/* Takes one known field's value into h; unknown MailStore fields are ignored. */
static int take_field(mv_mailstore_headers *h, const char *name, const char *value, GError **error)
{
	char **slot = NULL;
	if (g_ascii_strcasecmp(name, OUR_FIRST) == 0)
		slot = &h->archive;
	else if (g_ascii_strcasecmp(name, F_FOLDER) == 0)
		slot = &h->folder;
	else if (g_ascii_strcasecmp(name, F_MESSAGE_ID) == 0)
		slot = &h->message_id;
	else if (g_ascii_strcasecmp(name, F_FLAGS) == 0)
		slot = &h->flags;
	else if (g_ascii_strcasecmp(name, F_HASH) == 0)
		slot = &h->header_hash;
	else if (g_ascii_strcasecmp(name, F_DATE) == 0) {
		if (h->archived_at)
			return bad(error, "%s appears twice", F_DATE);
		if (!mv_mailstore_date_parse(value, &h->archived_at) || h->archived_at == 0)
			return bad(error, "%s is not a date of the form YYYYMMDDhhmmss", F_DATE);
		return 0;
	} else
		return 0;
	if (*slot)
		return bad(error, "%s appears twice", name);
	if (slot == &h->archive || slot == &h->folder) {
		GError *e = NULL;
		*slot = mv_mutf7_decode(value, &e);
		if (!*slot) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: %s", name, e->message);
			g_error_free(e);
			return -1;
		}
		return 0;
	}
	if (slot == &h->header_hash) {
		uint8_t raw[32];
		if (strlen(value) != 64 || !mv_unhex(value, raw, sizeof raw))
			return bad(error, "%s is not a SHA-256 in hex", F_HASH);
		*slot = g_ascii_strdown(value, -1);
		return 0;
	}
	if (!printable_ok(value))
		return bad(error, "%s holds control characters or too many characters", name);
	*slot = g_strdup(value);
	return 0;
}

/* Ours: every field known, no folding, ends at the hash, which must match. */
static int read_ours(const uint8_t *data, size_t len, mv_mailstore_headers *h, GError **error)
{
	size_t pos = 0;
	for (int n = 0; n < MV_MAILSTORE_MAX_FIELDS; n++) {
		field_line f = { 0 };
		if (!next_line(data, len, pos, &f)) {
			field_line_clear(&f);
			return bad(error, "%s", "the MailStore headers end before " F_HASH);
		}
		bool known = g_ascii_strcasecmp(f.name, OUR_FIRST) == 0 || g_ascii_strncasecmp(f.name, MAILSTORE_PREFIX,
		                                                                                strlen(MAILSTORE_PREFIX)) == 0;
		int rc = known ? take_field(h, f.name, f.value, error) : bad(error, "unexpected field '%.64s' among the MailStore headers", f.name);
		bool last = g_ascii_strcasecmp(f.name, F_HASH) == 0;
		pos = f.next;
		field_line_clear(&f);
		if (rc < 0)
			return -1;
		if (last)
			break;
	}
	if (!h->header_hash)
		return bad(error, "%s", "more fields than the MailStore headers ever hold");
	if (!h->archive || !*h->archive || !h->folder || !h->archived_at)
		return bad(error, "%s", "the MailStore headers lack the archive, the folder or the date");
	char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data + pos, len - pos);
	bool same = strcmp(sum, h->header_hash) == 0;
	g_free(sum);
	if (!same)
		return bad(error, "%s", "the message does not match its " F_HASH " (altered after export)");
	h->block_len = pos;
	return 1;
}

/* A MailStore export: the leading X-MailStore-* fields, folded lines allowed. */
static int read_foreign(const uint8_t *data, size_t len, mv_mailstore_headers *h, GError **error)
{
	size_t pos = 0;
	int n = 0;
	for (;;) {
		field_line f = { 0 };
		if (!next_line(data, len, pos, &f) ||
		    g_ascii_strncasecmp(f.name, MAILSTORE_PREFIX, strlen(MAILSTORE_PREFIX)) != 0) {
			field_line_clear(&f);
			break;
		}
		if (++n > MV_MAILSTORE_MAX_FIELDS) {
			field_line_clear(&f);
			return bad(error, "more than %s MailStore header fields", G_STRINGIFY(MV_MAILSTORE_MAX_FIELDS));
		}
		GString *value = g_string_new(f.value);
		pos = f.next;
		while (is_continuation(data, len, pos) && value->len < MV_MAILSTORE_MAX_LINE) {
			const uint8_t *nl = memchr(data + pos, '\n', MIN(len - pos, (size_t)MV_MAILSTORE_MAX_LINE));
			if (!nl)
				break;
			size_t end = (size_t)(nl - data);
			char *part = g_strstrip(g_strndup((const char *)data + pos, end - pos));
			g_string_append(value, part);
			g_free(part);
			pos = end + 1;
		}
		/* MailStore's own hash is not ours to check (nor is its form known). */
		bool theirs = g_ascii_strcasecmp(f.name, F_HASH) == 0;
		int rc = strlen(value->str) != value->len ? bad(error, "%s", "a NUL byte in a MailStore header")
		         : theirs                         ? 0
		                                          : take_field(h, f.name, value->str, error);
		g_string_free(value, TRUE);
		field_line_clear(&f);
		if (rc < 0)
			return -1;
	}
	h->block_len = pos;
	return n > 0 ? 1 : 0;
}

int mv_mailstore_headers_read(const uint8_t *data, size_t len, mv_mailstore_headers *h, GError **error)
{
	memset(h, 0, sizeof *h);
	size_t ours = strlen(OUR_FIRST), theirs = strlen(MAILSTORE_PREFIX);
	int rc = 0;
	if (len > ours && g_ascii_strncasecmp((const char *)data, OUR_FIRST ":", ours + 1) == 0)
		rc = read_ours(data, len, h, error);
	else if (len > theirs && g_ascii_strncasecmp((const char *)data, MAILSTORE_PREFIX, theirs) == 0)
		rc = read_foreign(data, len, h, error);
	if (rc <= 0)
		mv_mailstore_headers_clear(h);
	return rc;
}

/* ---- signatures --------------------------------------------------------------------- */

struct mv_export_pubkey {
	EVP_PKEY *pkey;
};

static bool acceptable_key(EVP_PKEY *pkey)
{
	if (EVP_PKEY_base_id(pkey) == EVP_PKEY_RSA)
		return EVP_PKEY_get_bits(pkey) >= 2048;
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_EC)
		return false;
	char curve[64];
	size_t n = 0;
	return EVP_PKEY_get_utf8_string_param(pkey, "group", curve, sizeof curve, &n) == 1 &&
	       (strcmp(curve, "prime256v1") == 0 || strcmp(curve, "P-256") == 0);
}

mv_export_pubkey *mv_export_pubkey_load(const char *path, GError **error)
{
	GByteArray *pem = NULL;
	if (mv_read_file(path, MAX_PUBKEY_PEM, &pem, error) < 0)
		return NULL;
	BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	g_byte_array_unref(pem);
	if (!pkey || !acceptable_key(pkey)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: %s", path,
		            pkey ? "not an ECDSA P-256 or RSA (2048 bits or more) public key" : "not a PEM public key");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	mv_export_pubkey *k = g_new0(mv_export_pubkey, 1);
	k->pkey = pkey;
	return k;
}

void mv_export_pubkey_free(mv_export_pubkey **k)
{
	if (!k || !*k)
		return;
	EVP_PKEY_free((*k)->pkey);
	g_free(*k);
	*k = NULL;
}

char *mv_pkey_der_sha256(struct evp_pkey_st *pkey)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pkey, &der);
	if (n <= 0)
		return g_strdup("");
	char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, der, (gsize)n);
	OPENSSL_free(der);
	return hex;
}

char *mv_export_pubkey_sha256(const mv_export_pubkey *k)
{
	return mv_pkey_der_sha256(k->pkey);
}

int mv_export_verify_digest(const mv_export_pubkey *k, const uint8_t digest[32], const uint8_t *sig, size_t sig_len,
                            GError **error)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->pkey, NULL);
	int ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
	         EVP_PKEY_verify(ctx, sig, sig_len, digest, 32) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "the signature does not match");
	return -1;
}
