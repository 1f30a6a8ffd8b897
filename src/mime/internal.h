/* mime/internal: what the files of mime/ share — GMime objects do not
 * leave the module.  Not a public header: mime.h is the module's face. */
#ifndef MV_MIME_INTERNAL_H
#define MV_MIME_INTERNAL_H

#include "mime/mime.h"

#include <gmime/gmime.h>

/* Parses raw bytes into a GMime message with the bounds every reader of
 * mail needs (a message with too many multipart declarations is parsed for
 * its header only: GMime's parser recurses per level); what was wrong is
 * added to *flags_r (mv_parse_flags).  NULL when no header could be read. */
GMimeMessage *mv_mime_construct(const uint8_t *data, size_t len, unsigned *flags_r);
/* GMime 3.2.13 recurses once per group nested in a group (address_colons.c):
 * the colons of an address header's value past this many become spaces
 * before GMime parses it (mv_mime_construct does so, and marks the message
 * MV_PARSE_BAD_MIME). */
#define MV_MIME_MAX_ADDRESS_COLONS 128
/* In place over a message's bytes: every address header's value (also of
 * attached messages, also body lines that read like one) bounded.  True
 * when anything was changed. */
bool mv_mime_bound_address_colons(uint8_t *data, size_t len);
/* Header values decoded with every RFC 2047 word kept (GMime's own
 * accessors lose the words after a padded base64 one: see parse.c); use
 * these, not g_mime_message_get_subject/_get_addresses,
 * g_mime_part_get_filename or g_mime_header_get_value.  New strings; NULL
 * when the message has no Subject / the part no file name. */
char *mv_mime_header_value(GMimeHeader *header);
char *mv_mime_message_subject(GMimeMessage *msg);
char *mv_mime_part_filename(GMimePart *part);
/* The addresses of one field from all its headers: a new reference. */
InternetAddressList *mv_mime_message_addresses(GMimeMessage *msg, GMimeAddressType type);
/* An address list as a reader sees it ("Name <addr>, ...", decoded), ""
 * for none. */
char *mv_mime_display_list(InternetAddressList *list);
/* A leaf part's content, transfer encoding undone (NULL if it has none). */
GByteArray *mv_mime_part_content(GMimePart *part);
/* Bytes in charset to UTF-8 appended to out (charset NULL or unknown:
 * UTF-8, else a Latin-1 reading); invalid sequences and control characters
 * replaced, line ends kept as '\n' when keep_lines.  -1 with *error when the
 * charset could not be used (the text is still appended). */
int mv_mime_to_utf8(const uint8_t *data, size_t len, const char *charset, bool keep_lines, GString *out,
                    GError **error);

#endif
