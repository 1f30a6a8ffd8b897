/* net/tls: the TLS listeners' certificate files — making a self-signed pair,
 * reading a certificate's facts, checking that a key belongs to its
 * certificate, and finding a pair by thumbprint; and, with the same
 * pieces, the certificate a client proves itself with (an Office365_Modern
 * credential's, made in memory for master.sqlite).  The TLS itself is done by
 * libmicrohttpd (GnuTLS); this module only makes and checks the PEM files it
 * is given, with OpenSSL's libcrypto.
 *
 * Why it is shaped so:
 * - EC P-256 with SHA-256: small and fast, and accepted by every TLS stack
 *   the clients use (GnuTLS on our side, SChannel and browsers on theirs);
 *   the key is written as unencrypted PKCS#8 ("PRIVATE KEY"), the form GnuTLS
 *   reads without a password.
 * - The thumbprint is SHA-1 over the DER certificate, upper-case hex without
 *   separators: that is what MailStore and Windows show, and what
 *   SetServiceCertificate takes, so an administrator can paste it as is.
 *   Pasted thumbprints are compared ignoring case, spaces and colons (and the
 *   invisible left-to-right mark the Windows certificate dialog copies).
 * - Files are written atomically (unique temp file in the same directory,
 *   fsync, rename, fsync of the directory) so that a crash never leaves half
 *   a certificate; the key's temp file is created 0600, so the key is never
 *   readable by others, not even for a moment.  The key is written before
 *   the certificate.
 * - Files read are bounded (1 MiB): a certificate file is a few KiB.
 * - Every OpenSSL failure is reported with the file it concerns and
 *   OpenSSL's reason, and the OpenSSL error queue is cleared afterwards so
 *   that a stale error never shows up in an unrelated later message. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_MAX_FILE_BYTES (1024u * 1024u)
#define TLS_SERIAL_BYTES 16
#define TLS_MAX_DAYS 36500
#define TLS_CN_MAX 64          /* ub-common-name (RFC 5280) */
#define TLS_NAME_MAX 253       /* longest DNS name */
#define TLS_THUMBPRINT_HEX 40  /* SHA-1 */

/* ---- errors ---------------------------------------------------------- */

/* Sets an error "<path>: <what> (<OpenSSL reason>)" and clears the queue. */
static void set_ssl_error(GError **error, int code, const char *path, const char *what)
{
	unsigned long e = ERR_get_error();
	if (e == 0) {
		g_set_error(error, MV_ERROR, code, "%s: %s", path, what);
		return;
	}
	char reason[256];
	ERR_error_string_n(e, reason, sizeof reason);
	ERR_clear_error();
	g_set_error(error, MV_ERROR, code, "%s: %s (%s)", path, what, reason);
}

void mv_cert_info_clear(mv_cert_info *info)
{
	if (!info)
		return;
	g_free(info->thumbprint);
	g_free(info->subject);
	g_free(info->issuer);
	if (info->dns_names)
		g_ptr_array_unref(info->dns_names);
	memset(info, 0, sizeof *info);
}

/* ---- writing --------------------------------------------------------- */

static int write_tmp(int fd, const char *tmp, const char *data, size_t len, mode_t mode, GError **error)
{
	if (fchmod(fd, mode) < 0) {
		mv_set_errno_error(error, errno, "chmod", tmp);
		return -1;
	}
	if (mv_pwrite_all(fd, data, len, 0, tmp, error) < 0)
		return -1;
	return mv_fsync_fd(fd, tmp, error);
}

/* Like mv_write_file_atomic, but with a fresh temp file (O_EXCL) that has
 * mode 0600 from its creation: a stale temp file with wider permissions can
 * never be reused for the key.  Creates missing parent directories (0700). */
static int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	if (mv_mkdir_p(dir, error) < 0)
		return -1;
	g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
	int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "create", tmp);
		return -1;
	}
	int rc = write_tmp(fd, tmp, data, len, mode, error);
	if (close(fd) < 0 && rc == 0) {
		mv_set_errno_error(error, errno, "close", tmp);
		rc = -1;
	}
	if (rc == 0 && rename(tmp, path) < 0) {
		mv_set_errno_error(error, errno, "rename", tmp);
		rc = -1;
	}
	if (rc < 0) {
		unlink(tmp);
		return -1;
	}
	return mv_fsync_dir(dir, error);
}

/* Writes what a memory BIO holds to path. */
static int write_bio_atomic(BIO *bio, const char *path, mode_t mode, GError **error)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data) {
		set_ssl_error(error, MV_ERR_IO, path, "nothing to write");
		return -1;
	}
	return write_file_atomic(path, data, (size_t)len, mode, error);
}

/* ---- generating ------------------------------------------------------ */

static bool name_is_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > TLS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c >= 0x7f)
			return false;
	}
	return true;
}

static int check_generate_args(const char *const *names, int days, GError **error)
{
	if (!names || !names[0]) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "a certificate needs at least one host name");
		return -1;
	}
	if (days < 1 || days > TLS_MAX_DAYS) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "certificate validity of %d days is not in 1..%d", days,
		            TLS_MAX_DAYS);
		return -1;
	}
	for (const char *const *n = names; *n; n++) {
		if (!name_is_valid(*n)) {
			g_autofree char *shown = mv_utf8_sanitize(*n, -1);
			g_set_error(error, MV_ERROR, MV_ERR_INVALID,
			            "'%s' is not a host name or IP address (printable ASCII, 1..%d characters)", shown,
			            TLS_NAME_MAX);
			return -1;
		}
	}
	if (strlen(names[0]) > TLS_CN_MAX) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "'%s' is too long for a certificate's common name (at most %d characters)", names[0],
		            TLS_CN_MAX);
		return -1;
	}
	return 0;
}

/* A positive serial number of exactly 16 bytes. */
static int set_serial(X509 *x)
{
	unsigned char bytes[TLS_SERIAL_BYTES];
	if (RAND_bytes(bytes, sizeof bytes) != 1)
		return -1;
	bytes[0] = (unsigned char)((bytes[0] & 0x7f) | 0x01);
	BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
	if (!bn)
		return -1;
	int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int set_validity(X509 *x, int days)
{
	if (!X509_gmtime_adj(X509_getm_notBefore(x), 0))
		return -1;
	if (!X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL))
		return -1;
	return 0;
}

/* Subject and issuer: CN=<cn>. */
static int set_names(X509 *x, const char *cn)
{
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0))
		return -1;
	return X509_set_issuer_name(x, name) == 1 ? 0 : -1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* One subjectAltName entry: IP for what parses as an address, else DNS. */
static GENERAL_NAME *general_name(const char *name)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (!gn)
		return NULL;
	if (g_hostname_is_ip_address(name)) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
		if (!ip) {
			GENERAL_NAME_free(gn);
			return NULL;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		return gn;
	}
	ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
	if (!dns || !ASN1_STRING_set(dns, name, -1)) {
		ASN1_IA5STRING_free(dns);
		GENERAL_NAME_free(gn);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	return gn;
}

static int add_san(X509 *x, const char *const *names)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	if (!gens)
		return -1;
	int rc = 0;
	for (const char *const *n = names; *n && rc == 0; n++) {
		GENERAL_NAME *gn = general_name(*n);
		if (!gn || !sk_GENERAL_NAME_push(gens, gn)) {
			GENERAL_NAME_free(gn);
			rc = -1;
		}
	}
	if (rc == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		rc = -1;
	GENERAL_NAMES_free(gens);
	return rc;
}

/* What a certificate is for: a listener's (serverAuth, its host names as
 * subjectAltName) or a client's (clientAuth, no names). */
typedef struct cert_use {
	const char *cn;
	const char *const *names;      /* subjectAltName entries; NULL for none */
	const char *key_usage;
	const char *extended_key_usage;
} cert_use;

static int add_extensions(X509 *x, const cert_use *use)
{
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, use->key_usage) < 0 ||
	    add_ext(x, NID_ext_key_usage, use->extended_key_usage) < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0)
		return -1;
	return use->names ? add_san(x, use->names) : 0;
}

/* The signed certificate for pkey, or NULL (OpenSSL's error queue says why). */
static X509 *make_cert(EVP_PKEY *pkey, const cert_use *use, int days)
{
	X509 *x = X509_new();
	if (!x)
		return NULL;
	if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 || set_validity(x, days) < 0 ||
	    set_names(x, use->cn) < 0 || X509_set_pubkey(x, pkey) != 1 || add_extensions(x, use) < 0 ||
	    X509_sign(x, pkey, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The key's PEM is made in a secure-heap BIO, wiped when freed. */
static int write_key(EVP_PKEY *pkey, const char *key_path, GError **error)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	if (!bio || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		set_ssl_error(error, MV_ERR_IO, key_path, "cannot encode the private key");
		return -1;
	}
	int rc = write_bio_atomic(bio, key_path, 0600, error);
	BIO_free(bio);
	return rc;
}

static int write_cert(X509 *x, const char *cert_path, GError **error)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_X509(bio, x) != 1) {
		BIO_free(bio);
		set_ssl_error(error, MV_ERR_IO, cert_path, "cannot encode the certificate");
		return -1;
	}
	int rc = write_bio_atomic(bio, cert_path, 0600, error);
	BIO_free(bio);
	return rc;
}

int mv_tls_generate_self_signed(const char *cert_path, const char *key_path, const char *const *names, int days,
                                GError **error)
{
	if (check_generate_args(names, days, error) < 0)
		return -1;
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	if (!pkey) {
		set_ssl_error(error, MV_ERR_IO, key_path, "cannot generate an EC P-256 key");
		return -1;
	}
	cert_use use = { .cn = names[0], .names = names, .key_usage = "critical,digitalSignature",
	                 .extended_key_usage = "serverAuth" };
	X509 *x = make_cert(pkey, &use, days);
	if (!x) {
		set_ssl_error(error, MV_ERR_IO, cert_path, "cannot make the certificate");
		EVP_PKEY_free(pkey);
		return -1;
	}
	int rc = write_key(pkey, key_path, error);
	if (rc == 0)
		rc = write_cert(x, cert_path, error);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

/* ---- reading --------------------------------------------------------- */

/* Refuses passphrase-protected keys instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* The file's contents in a read-only memory BIO (freed with the bytes). */
static BIO *read_file_bio(const char *path, GByteArray **data_r, GError **error)
{
	if (mv_read_file(path, TLS_MAX_FILE_BYTES, data_r, error) < 0)
		return NULL;
	BIO *bio = BIO_new_mem_buf((*data_r)->data, (int)(*data_r)->len);
	if (!bio) {
		g_byte_array_unref(*data_r);
		*data_r = NULL;
		set_ssl_error(error, MV_ERR_IO, path, "out of memory");
	}
	return bio;
}

static X509 *load_cert(const char *path, GError **error)
{
	GByteArray *data = NULL;
	BIO *bio = read_file_bio(path, &data, error);
	if (!bio)
		return NULL;
	X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	g_byte_array_unref(data);
	if (!x)
		set_ssl_error(error, MV_ERR_INVALID, path, "not a PEM certificate");
	return x;
}

static EVP_PKEY *load_key(const char *path, GError **error)
{
	GByteArray *data = NULL;
	BIO *bio = read_file_bio(path, &data, error);
	if (!bio)
		return NULL;
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	memset(data->data, 0, data->len);
	g_byte_array_unref(data);
	if (!pkey)
		set_ssl_error(error, MV_ERR_INVALID, path, "not an unencrypted PEM private key");
	return pkey;
}

/* SHA-1 of the DER encoding, upper-case hex; NULL on failure. */
static char *thumbprint_of(X509 *x)
{
	int len = i2d_X509(x, NULL);
	if (len <= 0)
		return NULL;
	unsigned char *der = g_malloc((gsize)len);
	unsigned char *p = der;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	bool ok = i2d_X509(x, &p) == len && EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha1(), NULL) == 1;
	g_free(der);
	if (!ok)
		return NULL;
	g_autofree char *hex = mv_hex(md, md_len);
	return g_ascii_strup(hex, -1);
}

static char *name_text(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return NULL;
	char *text = NULL;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		char *data = NULL;
		long len = BIO_get_mem_data(bio, &data);
		text = mv_utf8_sanitize(len > 0 ? data : "", len > 0 ? len : 0);
	}
	BIO_free(bio);
	return text;
}

static int time_of(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* One subjectAltName entry as text, or NULL for kinds we do not show. */
static char *general_name_text(const GENERAL_NAME *gn)
{
	int type = 0;
	const ASN1_STRING *s = GENERAL_NAME_get0_value(gn, &type);
	if (type == GEN_DNS)
		return mv_utf8_sanitize((const char *)ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
	if (type != GEN_IPADD)
		return NULL;
	char buf[INET6_ADDRSTRLEN];
	int len = ASN1_STRING_length(s);
	int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
	if (!family || !inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof buf))
		return NULL;
	return g_strdup(buf);
}

static int collect_san(X509 *x, GPtrArray *out, const char *path, GError **error)
{
	int crit = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		if (crit == -1)
			return 0;  /* none */
		set_ssl_error(error, MV_ERR_INVALID, path, "malformed subjectAltName extension");
		return -1;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		char *text = general_name_text(sk_GENERAL_NAME_value(gens, i));
		if (text)
			g_ptr_array_add(out, text);
	}
	GENERAL_NAMES_free(gens);
	return 0;
}

static int fill_info(X509 *x, const char *path, mv_cert_info *info, GError **error)
{
	info->dns_names = g_ptr_array_new_with_free_func(g_free);
	info->thumbprint = thumbprint_of(x);
	info->subject = name_text(X509_get_subject_name(x));
	info->issuer = name_text(X509_get_issuer_name(x));
	if (!info->thumbprint || !info->subject || !info->issuer) {
		set_ssl_error(error, MV_ERR_INVALID, path, "cannot read the certificate's thumbprint or names");
		return -1;
	}
	if (time_of(X509_get0_notBefore(x), &info->not_before) < 0 ||
	    time_of(X509_get0_notAfter(x), &info->not_after) < 0) {
		set_ssl_error(error, MV_ERR_INVALID, path, "malformed validity period");
		return -1;
	}
	return collect_san(x, info->dns_names, path, error);
}

int mv_tls_cert_info(const char *cert_path, mv_cert_info *info_r, GError **error)
{
	memset(info_r, 0, sizeof *info_r);
	X509 *x = load_cert(cert_path, error);
	if (!x)
		return -1;
	int rc = fill_info(x, cert_path, info_r, error);
	X509_free(x);
	if (rc < 0)
		mv_cert_info_clear(info_r);
	return rc;
}

int mv_tls_check_pair(const char *cert_path, const char *key_path, GError **error)
{
	X509 *x = load_cert(cert_path, error);
	if (!x)
		return -1;
	EVP_PKEY *pkey = load_key(key_path, error);
	if (!pkey) {
		X509_free(x);
		return -1;
	}
	int rc = 0;
	if (X509_check_private_key(x, pkey) != 1) {
		g_autofree char *what = g_strdup_printf("does not belong to the certificate %s", cert_path);
		set_ssl_error(error, MV_ERR_INVALID, key_path, what);
		rc = -1;
	}
	EVP_PKEY_free(pkey);
	X509_free(x);
	return rc;
}

/* ---- finding --------------------------------------------------------- */

static bool thumbprint_ignored(gunichar c)
{
	return c == ':' || g_unichar_isspace(c) || c == 0x200E || c == 0x200F || c == 0xFEFF;
}

/* The thumbprint as 40 upper-case hex digits, or NULL with MV_ERR_INVALID. */
static char *normalize_thumbprint(const char *thumbprint, GError **error)
{
	GString *out = g_string_new(NULL);
	bool ok = thumbprint && g_utf8_validate(thumbprint, -1, NULL);
	for (const char *p = ok ? thumbprint : ""; *p && ok; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (thumbprint_ignored(c))
			continue;
		ok = c < 0x80 && g_ascii_isxdigit((char)c) && out->len < TLS_THUMBPRINT_HEX;
		g_string_append_c(out, g_ascii_toupper((char)c));
	}
	if (ok && out->len == TLS_THUMBPRINT_HEX)
		return g_string_free(out, FALSE);
	g_string_free(out, TRUE);
	g_autofree char *shown = mv_utf8_sanitize(thumbprint ? thumbprint : "", -1);
	g_set_error(error, MV_ERROR, MV_ERR_INVALID,
	            "'%s' is not a certificate thumbprint (40 hexadecimal digits, SHA-1)", shown);
	return NULL;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted base names NAME of the NAME.crt files in dir that have a
 * NAME.key next to them. */
static GPtrArray *list_pairs(const char *dir, GError **error)
{
	GError *local = NULL;
	GDir *d = g_dir_open(dir, 0, &local);
	if (!d) {
		int code = g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? MV_ERR_NOT_FOUND : MV_ERR_IO;
		g_set_error(error, MV_ERROR, code, "open %s: %s", dir, local->message);
		g_error_free(local);
		return NULL;
	}
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *entry;
	while ((entry = g_dir_read_name(d)) != NULL) {
		if (!g_str_has_suffix(entry, ".crt") || strlen(entry) == strlen(".crt"))
			continue;
		char *base = g_strndup(entry, strlen(entry) - strlen(".crt"));
		g_autofree char *key_name = g_strconcat(base, ".key", NULL);
		g_autofree char *key_path = g_build_filename(dir, key_name, NULL);
		if (g_file_test(key_path, G_FILE_TEST_IS_REGULAR))
			g_ptr_array_add(names, base);
		else
			g_free(base);
	}
	g_dir_close(d);
	g_ptr_array_sort(names, compare_names);
	return names;
}

/* Does dir/base.crt have this thumbprint?  Unreadable files are skipped. */
static bool pair_matches(const char *dir, const char *base, const char *want)
{
	g_autofree char *crt_name = g_strconcat(base, ".crt", NULL);
	g_autofree char *crt_path = g_build_filename(dir, crt_name, NULL);
	GError *err = NULL;
	X509 *x = load_cert(crt_path, &err);
	if (!x) {
		mv_log_debug("skipping %s", err->message);
		g_error_free(err);
		return false;
	}
	g_autofree char *have = thumbprint_of(x);
	X509_free(x);
	ERR_clear_error();
	return have && strcmp(have, want) == 0;
}

int mv_tls_find_by_thumbprint(const char *dir, const char *thumbprint, char **cert_path_r, char **key_path_r,
                              GError **error)
{
	g_autofree char *want = normalize_thumbprint(thumbprint, error);
	if (!want)
		return -1;
	GPtrArray *names = list_pairs(dir, error);
	if (!names)
		return -1;
	const char *found = NULL;
	for (guint i = 0; i < names->len && !found; i++) {
		if (pair_matches(dir, names->pdata[i], want))
			found = names->pdata[i];
	}
	if (found) {
		g_autofree char *crt_name = g_strconcat(found, ".crt", NULL);
		g_autofree char *key_name = g_strconcat(found, ".key", NULL);
		*cert_path_r = g_build_filename(dir, crt_name, NULL);
		*key_path_r = g_build_filename(dir, key_name, NULL);
	} else {
		g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND,
		            "no certificate with thumbprint %s in %s (looked at each NAME.crt that has a NAME.key)",
		            want, dir);
	}
	g_ptr_array_unref(names);
	return found ? 0 : -1;
}

int mv_tls_key_private_check(const char *key_path, GError **error)
{
	struct stat st;
	if (stat(key_path, &st) < 0) {
		mv_set_errno_error(error, errno, "stat", key_path);
		return -1;
	}
	if (!(st.st_mode & 077))
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_INVALID,
	            "private key %s has mode %04o: its group or others may read it, and whoever reads it can pose as "
	            "this server ('chmod 600 %s' closes it)", key_path, (unsigned)(st.st_mode & 07777), key_path);
	return -1;
}


/* ---- a client's certificate, in memory ---------------------------------- */

/* RSA, not EC as the listeners' certificates: Entra ID verifies a client
 * assertion signed with RS256 (or PS256) only.  2048 bits is what it and
 * every Microsoft tool make. */
#define CLIENT_RSA_BITS 2048

static int check_client_args(const char *cn, int days, GError **error)
{
	size_t len = cn ? strlen(cn) : 0;
	bool printable = len > 0 && len <= TLS_CN_MAX;
	for (size_t i = 0; printable && i < len; i++)
		printable = cn[i] >= 0x20 && cn[i] < 0x7f;
	if (!printable) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "a client certificate's common name must be 1..%d printable ASCII characters", TLS_CN_MAX);
		return -1;
	}
	if (days < 1 || days > TLS_MAX_DAYS) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "certificate validity of %d days is not in 1..%d", days,
		            TLS_MAX_DAYS);
		return -1;
	}
	return 0;
}

/* A memory BIO's contents as a new string; NULL when empty. */
static char *bio_text(BIO *bio)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	return len > 0 && data ? g_strndup(data, (gsize)len) : NULL;
}

/* The PEM of the certificate and of its key (from a secure-heap BIO, wiped
 * when freed). */
static int encode_pair(X509 *x, EVP_PKEY *pkey, char **cert_pem_r, char **key_pem_r)
{
	BIO *cert_bio = BIO_new(BIO_s_mem()), *key_bio = BIO_new(BIO_s_secmem());
	bool ok = cert_bio && key_bio && PEM_write_bio_X509(cert_bio, x) == 1 &&
	          PEM_write_bio_PrivateKey(key_bio, pkey, NULL, NULL, 0, NULL, NULL) == 1 &&
	          (*cert_pem_r = bio_text(cert_bio)) != NULL && (*key_pem_r = bio_text(key_bio)) != NULL;
	BIO_free(key_bio);
	BIO_free(cert_bio);
	return ok ? 0 : -1;
}

int mv_tls_generate_client_certificate(const char *cn, int days, char **cert_pem_r, char **key_pem_r,
                                       mv_cert_info *info_r, GError **error)
{
	const char *what = "the new client certificate";
	*cert_pem_r = *key_pem_r = NULL;
	memset(info_r, 0, sizeof *info_r);
	if (check_client_args(cn, days, error) < 0)
		return -1;
	int rc = -1;
	X509 *x = NULL;
	EVP_PKEY *pkey = EVP_RSA_gen(CLIENT_RSA_BITS);
	if (!pkey) {
		set_ssl_error(error, MV_ERR_IO, what, "cannot generate an RSA key");
		goto out;
	}
	cert_use use = { .cn = cn, .names = NULL, .key_usage = "critical,digitalSignature",
	                 .extended_key_usage = "clientAuth" };
	x = make_cert(pkey, &use, days);
	if (!x) {
		set_ssl_error(error, MV_ERR_IO, what, "cannot make the certificate");
		goto out;
	}
	if (encode_pair(x, pkey, cert_pem_r, key_pem_r) < 0) {
		set_ssl_error(error, MV_ERR_IO, what, "cannot encode the certificate or its key");
		goto out;
	}
	rc = fill_info(x, what, info_r, error);
out:
	if (rc < 0) {
		if (*key_pem_r)
			OPENSSL_cleanse(*key_pem_r, strlen(*key_pem_r));
		g_clear_pointer(key_pem_r, g_free);
		g_clear_pointer(cert_pem_r, g_free);
		mv_cert_info_clear(info_r);
	}
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}
