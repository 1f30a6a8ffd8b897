/* net: what the listeners share — for now the certificates of the TLS
 * listeners (OpenSSL's libcrypto), and the client certificates of
 * Office365_Modern credentials.  The HTTP server (libmicrohttpd) does the
 * TLS itself and takes the PEM files this module makes and checks. */
#ifndef MV_NET_TLS_H
#define MV_NET_TLS_H

#include "base/base.h"

typedef struct mv_cert_info {
	char *thumbprint;        /* SHA-1 of the DER certificate, upper-case hex (as Windows shows it) */
	char *subject;           /* one-line RFC 2253 form, e.g. "CN=mailvault" */
	char *issuer;
	int64_t not_before;      /* Unix seconds */
	int64_t not_after;
	GPtrArray *dns_names;    /* char*: subjectAltName DNS and IP entries, as text */
} mv_cert_info;

void mv_cert_info_clear(mv_cert_info *info);

/* Makes a new self-signed certificate (EC P-256, SHA-256, valid for days
 * days, subjectAltName = the given host names and IP addresses) and its key;
 * both written atomically (the key 0600).  names: NULL-terminated, at least
 * one; the first is the subject's CN. */
int mv_tls_generate_self_signed(const char *cert_path, const char *key_path, const char *const *names, int days,
                                GError **error);
/* Makes a new self-signed certificate for a client that proves itself with
 * it — an app registration in Entra ID (Office365_Modern credentials):
 * RSA 2048, SHA-256, subject and issuer CN=cn (1..64 printable ASCII
 * characters), extendedKeyUsage clientAuth, valid from now for days days.
 * Nothing is written to disk: *cert_pem_r gets the certificate's PEM,
 * *key_pem_r the private key's (unencrypted PKCS#8; the caller wipes it
 * before freeing), *info_r its thumbprint, names and validity (cleared by
 * the caller). */
int mv_tls_generate_client_certificate(const char *cn, int days, char **cert_pem_r, char **key_pem_r,
                                       mv_cert_info *info_r, GError **error);
/* Reads a PEM certificate file.  Errors name the file and what is wrong. */
int mv_tls_cert_info(const char *cert_path, mv_cert_info *info_r, GError **error);
/* Fails with MV_ERR_INVALID unless both files parse and the key belongs to
 * the certificate. */
int mv_tls_check_pair(const char *cert_path, const char *key_path, GError **error);
/* The TLS every listener offers: Mozilla's "intermediate" profile —
 * TLS 1.2 and 1.3, AEAD cipher suites with forward secrecy only (no CBC, no
 * SHA-1 MAC), signatures with SHA-256 or better.  The same policy in the
 * words of each library: GnuTLS's priority string for the HTTP servers
 * (libmicrohttpd), OpenSSL's settings for the IMAP server. */
#define MV_TLS_GNUTLS_PRIORITY                                                                                  \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:+DHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1:" \
	"-SIGN-RSA-SHA224:-SIGN-ECDSA-SHA224:-SIGN-DSA-SHA224:-SIGN-RSA-MD5:%SERVER_PRECEDENCE"
#define MV_TLS_OPENSSL_TLS12_CIPHERS                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"          \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"            \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define MV_TLS_OPENSSL_SIGALGS                                                                           \
	"ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:ed25519:ed448:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:"      \
	"rsa_pss_rsae_sha512:rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:RSA+SHA256:RSA+SHA384:" \
	"RSA+SHA512"

/* Fails with MV_ERR_INVALID when the private key file may be read by its
 * group or others (whoever reads it can impersonate the server), naming
 * the file, its mode and the chmod that closes it. */
int mv_tls_key_private_check(const char *key_path, GError **error);

/* Looks in dir for a pair NAME.crt + NAME.key whose certificate has this
 * thumbprint (compared ignoring case, spaces and colons).  MV_ERR_NOT_FOUND
 * if none. */
int mv_tls_find_by_thumbprint(const char *dir, const char *thumbprint, char **cert_path_r, char **key_path_r,
                              GError **error);

#endif
