/* net/form: decoding the parts of an HTTP request a client controls — the
 * form-encoded body, Basic credentials, the path — for every server that
 * speaks HTTP (the Administration API, Web Access).  Pure functions of
 * bytes, fuzzed (fuzz/fuzz_form.c). */
#ifndef MV_NET_FORM_H
#define MV_NET_FORM_H

#include "base/base.h"

#define MV_FORM_MAX_FIELDS 1024

/* Decodes an application/x-www-form-urlencoded body (UTF-8; '+' is a space)
 * into a table name -> value (both new strings).  Fails with MV_ERR_INVALID
 * naming the field on a malformed %-escape, invalid UTF-8, a NUL, an empty
 * name or a name given twice; MV_ERR_LIMIT past MV_FORM_MAX_FIELDS. */
GHashTable *mv_form_decode(const char *body, size_t len, GError **error);
/* Splits an Authorization header "Basic base64(user:password)".  Fails with
 * MV_ERR_AUTH when it is absent, of another scheme or malformed. */
int mv_basic_auth_decode(const char *header, char **user_r, char **password_r, GError **error);
/* "/api//invoke/X" -> "/api/invoke/X": MailStore clients double slashes. */
char *mv_api_normalize_path(const char *url);

#endif
