/* export/sign: signed exports in the form MailStore made verifiable with
 * plain OpenSSL — each file X gets X.sig, a DER ECDSA signature over its
 * SHA-256 (`openssl dgst -sha256 -sign` output), the export holds the
 * signing key's publickey.pem and a MANIFEST in sha256sum's format (itself
 * signed as MANIFEST.sig), so a missing or added file shows as well as an
 * altered one.
 *
 * The key is the instance's: one ECDSA P-256 key made on first use and
 * kept sealed in master.sqlite with a key derived from the instance key
 * (archive/secrets.c), so every export of an instance is signed by the
 * same key, whose fingerprint the audit log records at each export.  P-256
 * because `openssl dgst -verify` checks it and its signatures are small.
 *
 * The check of a signature is the import's too, so it lives below, in
 * mime/mailstore_headers.c; this file owns the private half and
 * verify-export's walk. */
#include "export/internal.h"
#include "mime/mime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_SETTING "export_signing_key"
#define KEY_CONTEXT "mvexpsig"
#define MAX_SIG_BYTES 16384u
#define MAX_MANIFEST_LINE 8192u
#define MAX_WALK_DEPTH 64

struct mv_export_signer {
	EVP_PKEY *pkey;
};

static mv_export_signer *signer_of(EVP_PKEY *pkey)
{
	mv_export_signer *s = g_new0(mv_export_signer, 1);
	s->pkey = pkey;
	return s;
}

static EVP_PKEY *generate_key(GError **error)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pkey)
		g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot generate an ECDSA P-256 signing key");
	return pkey;
}

mv_export_signer *mv_export_signer_new(GError **error)
{
	EVP_PKEY *pkey = generate_key(error);
	return pkey ? signer_of(pkey) : NULL;
}

/* The private key as PKCS#8 DER, to be sealed. */
static GBytes *make_sealable_key(void *opaque, GError **error)
{
	(void)opaque;
	EVP_PKEY *pkey = generate_key(error);
	if (!pkey)
		return NULL;
	unsigned char *der = NULL;
	int n = i2d_PrivateKey(pkey, &der);
	EVP_PKEY_free(pkey);
	if (n <= 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot encode the export signing key");
		return NULL;
	}
	GBytes *b = g_bytes_new(der, (gsize)n);
	OPENSSL_clear_free(der, (size_t)n);
	return b;
}

mv_export_signer *mv_export_signer_for_instance(mv_instance *inst, GError **error)
{
	GBytes *der = mv_instance_secret(inst, KEY_SETTING, KEY_CONTEXT, make_sealable_key, NULL, error);
	if (!der)
		return NULL;
	gsize n = 0;
	const unsigned char *p = g_bytes_get_data(der, &n);
	EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, (long)n);
	sodium_memzero((void *)g_bytes_get_data(der, NULL), n);
	g_bytes_unref(der);
	if (!pkey) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "master.sqlite: the export signing key cannot be read");
		return NULL;
	}
	return signer_of(pkey);
}

void mv_export_signer_free(mv_export_signer **s)
{
	if (!s || !*s)
		return;
	EVP_PKEY_free((*s)->pkey);
	g_free(*s);
	*s = NULL;
}

int mv_export_sign_digest(mv_export_signer *s, const uint8_t digest[32], GByteArray *sig_out, GError **error)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(s->pkey, NULL);
	size_t len = 0;
	int ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
	         EVP_PKEY_sign(ctx, NULL, &len, digest, 32) == 1 && len > 0 && len <= MAX_SIG_BYTES;
	if (ok) {
		guint at = sig_out->len;
		g_byte_array_set_size(sig_out, at + (guint)len);
		ok = EVP_PKEY_sign(ctx, sig_out->data + at, &len, digest, 32) == 1;
		g_byte_array_set_size(sig_out, ok ? at + (guint)len : at);
	}
	EVP_PKEY_CTX_free(ctx);
	if (ok)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot sign with the export signing key");
	return -1;
}

char *mv_export_signer_public_pem(mv_export_signer *s)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	if (bio && PEM_write_bio_PUBKEY(bio, s->pkey) == 1) {
		char *data = NULL;
		long n = BIO_get_mem_data(bio, &data);
		pem = g_strndup(data, (gsize)n);
	}
	BIO_free(bio);
	return pem ? pem : g_strdup("");
}

char *mv_export_signer_public_sha256(mv_export_signer *s)
{
	return mv_pkey_der_sha256(s->pkey);
}

/* ---- verify-export ------------------------------------------------------------------ */

typedef struct verify_run {
	const char *dir;
	mv_export_pubkey *key;
	GHashTable *listed;     /* relative path -> expected hex (the manifest) */
	int64_t verified;
	json_t *missing, *extra, *altered;
} verify_run;

/* SHA-256 of a file, read in chunks (exported files may be large mboxes). */
int export_file_digest(const char *path, uint8_t digest[32], GError **error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	uint8_t *buf = g_malloc(1u << 20);
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, 1u << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mv_set_errno_error(error, errno, "read", path);
			rc = -1;
		}
		if (n <= 0)
			break;
		g_checksum_update(c, buf, (gssize)n);
	}
	gsize len = 32;
	g_checksum_get_digest(c, digest, &len);
	g_checksum_free(c);
	g_free(buf);
	close(fd);
	return rc;
}

/* Checks one file against its .sig (and its manifest hash when given). */
static int check_file(verify_run *v, const char *rel, const char *want_hex, char **why_r)
{
	char *path = g_build_filename(v->dir, rel, NULL);
	char *sig_path = g_strconcat(path, ".sig", NULL);
	uint8_t digest[32];
	GByteArray *sig = NULL;
	GError *err = NULL;
	int rc = -1;
	if (export_file_digest(path, digest, &err) < 0) {
		*why_r = g_strdup(err->message);
	} else {
		char *hex = mv_hex(digest, 32);
		if (want_hex && strcmp(hex, want_hex) != 0)
			*why_r = g_strdup("its SHA-256 differs from the MANIFEST's");
		else if (mv_read_file(sig_path, MAX_SIG_BYTES, &sig, &err) < 0)
			*why_r = g_strdup_printf("its signature cannot be read: %s", err->message);
		else if (mv_export_verify_digest(v->key, digest, sig->data, sig->len, &err) < 0)
			*why_r = g_strdup("its signature does not match");
		else
			rc = 0;
		g_free(hex);
	}
	g_clear_error(&err);
	if (sig)
		g_byte_array_unref(sig);
	g_free(sig_path);
	g_free(path);
	return rc;
}

/* A manifest path must stay inside the export: no absolute path, no "."
 * or ".." or empty component, no control characters. */
static bool safe_relative(const char *rel)
{
	if (!*rel || rel[0] == '/' || !g_utf8_validate(rel, -1, NULL))
		return false;
	for (const char *p = rel; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return false;
	char **parts = g_strsplit(rel, "/", -1);
	bool ok = true;
	for (char **c = parts; *c && ok; c++)
		ok = **c && strcmp(*c, ".") != 0 && strcmp(*c, "..") != 0;
	g_strfreev(parts);
	return ok;
}

/* Reads MANIFEST (already verified) into v->listed: "HEX  PATH" lines. */
static int read_manifest(verify_run *v, const char *path, GError **error)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		mv_set_errno_error(error, errno, "open", path);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	int64_t lineno = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		uint8_t d[32];
		if ((size_t)n > MAX_MANIFEST_LINE || n < 67 || line[64] != ' ' || line[65] != ' ' ||
		    (line[64] = '\0', !mv_unhex(line, d, 32)) || !safe_relative(line + 66) ||
		    g_hash_table_contains(v->listed, line + 66)) {
			g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: line %lld is not \"SHA256  PATH\" of a file inside"
			            " the export, or lists a file twice", path, (long long)lineno);
			rc = -1;
			break;
		}
		g_hash_table_insert(v->listed, g_strdup(line + 66), g_ascii_strdown(line, -1));
	}
	free(line);
	fclose(f);
	return rc;
}

static bool is_own_file(const char *rel)
{
	return strcmp(rel, "publickey.pem") == 0 || strcmp(rel, "MANIFEST") == 0 || strcmp(rel, "MANIFEST.sig") == 0;
}

/* Files on disk that the manifest does not list: extra, or — a .sig whose
 * file is gone — missing. */
static void note_unlisted(verify_run *v, const char *rel)
{
	if (is_own_file(rel) || g_hash_table_contains(v->listed, rel))
		return;
	if (g_str_has_suffix(rel, ".sig")) {
		char *base = g_strndup(rel, strlen(rel) - 4);
		bool listed = g_hash_table_contains(v->listed, base);
		char *path = g_build_filename(v->dir, base, NULL);
		bool exists = g_file_test(path, G_FILE_TEST_EXISTS);
		g_free(path);
		g_free(base);
		if (listed)
			return;
		if (!exists) {
			json_array_append_new(v->missing, json_string(rel));
			return;
		}
	}
	json_array_append_new(v->extra, json_string(rel));
}

static void walk(verify_run *v, const char *rel_dir, int depth)
{
	char *path = *rel_dir ? g_build_filename(v->dir, rel_dir, NULL) : g_strdup(v->dir);
	DIR *d = opendir(path);
	g_free(path);
	if (!d)
		return;
	struct dirent *e;
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			g_ptr_array_add(names, g_strdup(e->d_name));
	closedir(d);
	for (guint i = 0; i < names->len; i++) {
		char *rel = *rel_dir ? g_strconcat(rel_dir, "/", names->pdata[i], NULL) : g_strdup(names->pdata[i]);
		char *full = g_build_filename(v->dir, rel, NULL);
		struct stat st;
		if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode) && depth < MAX_WALK_DEPTH)
			walk(v, rel, depth + 1);
		else
			note_unlisted(v, rel);
		g_free(full);
		g_free(rel);
	}
	g_ptr_array_unref(names);
}

static int check_listed(verify_run *v)
{
	GList *rels = g_list_sort(g_hash_table_get_keys(v->listed), (GCompareFunc)strcmp);
	for (GList *l = rels; l; l = l->next) {
		const char *rel = l->data;
		char *path = g_build_filename(v->dir, rel, NULL);
		bool exists = g_file_test(path, G_FILE_TEST_EXISTS);
		g_free(path);
		char *why = NULL;
		char *sig = g_strconcat(v->dir, "/", rel, ".sig", NULL);
		bool sig_exists = g_file_test(sig, G_FILE_TEST_EXISTS);
		g_free(sig);
		if (!exists)
			json_array_append_new(v->missing, json_string(rel));
		if (!sig_exists)
			json_array_append_new(v->missing, json_pack("s++", rel, ".sig", ""));
		if (exists && sig_exists && check_file(v, rel, g_hash_table_lookup(v->listed, rel), &why) < 0)
			json_array_append_new(v->altered, json_pack("{s:s, s:s}", "file", rel, "reason", why));
		else if (exists && sig_exists)
			v->verified++;
		g_free(why);
	}
	g_list_free(rels);
	return 0;
}

int mv_export_verify_dir(const char *dir, json_t **report_r, GError **error)
{
	verify_run v = { .dir = dir, .listed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
		         .missing = json_array(), .extra = json_array(), .altered = json_array() };
	char *key_path = g_build_filename(dir, "publickey.pem", NULL);
	char *manifest = g_build_filename(dir, "MANIFEST", NULL);
	char *why = NULL;
	int rc = -1;
	if (!(v.key = mv_export_pubkey_load(key_path, error)))
		goto out;
	if (check_file(&v, "MANIFEST", NULL, &why) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: %s", manifest, why);
		goto out;
	}
	if (read_manifest(&v, manifest, error) < 0)
		goto out;
	check_listed(&v);
	walk(&v, "", 0);
	char *fp = mv_export_pubkey_sha256(v.key);
	bool ok = !json_array_size(v.missing) && !json_array_size(v.extra) && !json_array_size(v.altered);
	*report_r = json_pack("{s:s, s:b, s:I, s:I, s:O, s:O, s:O, s:s}", "directory", dir, "ok", ok, "files",
	                      (json_int_t)g_hash_table_size(v.listed), "verified", (json_int_t)v.verified, "missing",
	                      v.missing, "extra", v.extra, "altered", v.altered, "publicKeySha256", fp);
	g_free(fp);
	rc = 0;
out:
	g_free(why);
	g_free(key_path);
	g_free(manifest);
	mv_export_pubkey_free(&v.key);
	g_hash_table_destroy(v.listed);
	json_decref(v.missing);
	json_decref(v.extra);
	json_decref(v.altered);
	return rc;
}
