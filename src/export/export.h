/* export: messages leaving the archive — to a directory of EML files (with
 * the MailStore headers of mime/mailstore_headers.c and, for e-discovery,
 * detached signatures), to an mbox per folder, to an IMAP mailbox (restore)
 * or to an SMTP recipient.  The one entry is the registry function
 * ExportMessages (export.c), which main registers; `mailvault export` is a
 * front end to it, `mailvault verify-export` checks a signed export
 * without any data directory. */
#ifndef MV_EXPORT_H
#define MV_EXPORT_H

#include "commands/commands.h"

/* ExportMessages; registered by main with mv_commands_register. */
extern const mv_command mv_commands_export[];

/* ---- file names (files.c) ----------------------------------------------------
 * One folder name component made safe as one file name: '%', '/', '\\',
 * control characters, DEL and bytes of invalid UTF-8 become %XX; a leading
 * '.' becomes %2E (so "." and ".." cannot occur); an empty component is
 * "%" (no encoded name is); longer than 200 bytes, it is cut at a
 * character boundary and ends in "~" and 16 hex digits of its SHA-256. */
char *mv_export_safe_name(const char *component);
/* "archive/folder/sub" with every component made safe (the archive root
 * folder "" is the archive's own directory). */
char *mv_export_relative_dir(const char *archive, const char *folder);

/* ---- signing (sign.c) -------------------------------------------------------- */
typedef struct mv_export_signer mv_export_signer;
/* The instance's ECDSA P-256 signing key, made on first use and kept
 * sealed in master.sqlite (archive/secrets.c). */
mv_export_signer *mv_export_signer_for_instance(mv_instance *inst, GError **error);
/* A fresh key not kept anywhere (unit tests). */
mv_export_signer *mv_export_signer_new(GError **error);
void mv_export_signer_free(mv_export_signer **s);
/* DER ECDSA over a SHA-256 digest, as `openssl dgst -sha256 -sign` writes. */
int mv_export_sign_digest(mv_export_signer *s, const uint8_t digest[32], GByteArray *sig_out, GError **error);
/* The public key as PEM (SubjectPublicKeyInfo), and its DER's SHA-256 hex. */
char *mv_export_signer_public_pem(mv_export_signer *s);
char *mv_export_signer_public_sha256(mv_export_signer *s);

/* verify-export: every file the signed MANIFEST lists is there, has its
 * SHA-256 and a valid .sig; no other file is.  *report_r:
 * {"directory","ok","files","verified","missing":[..],"extra":[..],
 *  "altered":[{"file","reason"}],"publicKeySha256"}.  -1 only when the
 * directory cannot be checked at all (no publickey.pem, no MANIFEST). */
int mv_export_verify_dir(const char *dir, json_t **report_r, GError **error);

#endif
