/* mime/mapi: Outlook's message model, shared by the two Outlook readers and
 * the one converter.  Not a public header of mime/ (mime.h is): the fuzz
 * targets and unit tests include it to drive the pieces directly.
 *
 * One property model, one converter, two readers: a PST item (pst.c, libpff)
 * and a .msg file (msg.c, libgsf) are both read into an mv_mapi_message — a
 * bag of MAPI properties with its recipients' and attachments' bags — and
 * mapi_mime.c turns that into RFC 5322 bytes.  Values are kept as the file
 * stores them (strings as UTF-16LE or 8-bit in a code page, integers little
 * endian, times as FILETIME), so the readers stay thin and every
 * interpretation lives in one place. */
#ifndef MV_MIME_MAPI_H
#define MV_MIME_MAPI_H

#include "mime/mime.h"

/* ---- property types and the tags the converter reads ------------------------- */

#define MV_PT_SHORT     0x0002u
#define MV_PT_LONG      0x0003u
#define MV_PT_BOOLEAN   0x000Bu
#define MV_PT_OBJECT    0x000Du
#define MV_PT_I8        0x0014u
#define MV_PT_STRING8   0x001Eu /* 8-bit string in the object's code page */
#define MV_PT_UNICODE   0x001Fu /* UTF-16LE */
#define MV_PT_SYSTIME   0x0040u /* FILETIME: 100 ns since 1601-01-01, LE */
#define MV_PT_BINARY    0x0102u

#define MV_TAG(id, type) (((uint32_t)(id) << 16) | (uint32_t)(type))

/* Property ids (the type is added where read; strings come either way). */
#define MV_PID_MESSAGE_CLASS             0x001Au
#define MV_PID_SUBJECT                   0x0037u
#define MV_PID_SUBJECT_PREFIX            0x003Du
#define MV_PID_NORMALIZED_SUBJECT        0x0E1Du
#define MV_PID_CLIENT_SUBMIT_TIME        0x0039u
#define MV_PID_SENT_REPRESENTING_NAME    0x0042u
#define MV_PID_SENT_REPRESENTING_EMAIL   0x0065u
#define MV_PID_SENT_REPRESENTING_ADDRTYPE 0x0064u
#define MV_PID_SENDER_NAME               0x0C1Au
#define MV_PID_SENDER_EMAIL              0x0C1Fu
#define MV_PID_SENDER_ADDRTYPE           0x0C1Eu
#define MV_PID_SENDER_SMTP_ADDRESS       0x5D01u
#define MV_PID_SENT_REPRESENTING_SMTP    0x5D02u
#define MV_PID_TRANSPORT_HEADERS         0x007Du
#define MV_PID_DISPLAY_TO                0x0E04u
#define MV_PID_DISPLAY_CC                0x0E03u
#define MV_PID_DISPLAY_BCC               0x0E02u
#define MV_PID_MESSAGE_DELIVERY_TIME     0x0E06u
#define MV_PID_MESSAGE_FLAGS             0x0E07u
#define MV_PID_CREATION_TIME             0x3007u
#define MV_PID_LAST_MODIFICATION_TIME    0x3008u
#define MV_PID_INTERNET_MESSAGE_ID       0x1035u
#define MV_PID_IN_REPLY_TO               0x1042u
#define MV_PID_INTERNET_REFERENCES       0x1039u
#define MV_PID_BODY                      0x1000u
#define MV_PID_RTF_COMPRESSED            0x1009u
#define MV_PID_HTML                      0x1013u /* PT_BINARY or a string */
#define MV_PID_INTERNET_CPID             0x3FDEu
#define MV_PID_MESSAGE_CODEPAGE          0x3FFDu
#define MV_PID_IMPORTANCE                0x0017u
#define MV_PID_PRIORITY                  0x0026u
/* recipients */
#define MV_PID_RECIPIENT_TYPE            0x0C15u /* 1 To, 2 Cc, 3 Bcc */
#define MV_PID_DISPLAY_NAME              0x3001u
#define MV_PID_EMAIL_ADDRESS             0x3003u
#define MV_PID_ADDRTYPE                  0x3002u
#define MV_PID_SMTP_ADDRESS              0x39FEu
/* attachments */
#define MV_PID_ATTACH_METHOD             0x3705u /* 1 by value, 5 embedded message, 6 OLE */
#define MV_PID_ATTACH_DATA               0x3701u /* PT_BINARY, or PT_OBJECT for 5/6 */
#define MV_PID_ATTACH_FILENAME           0x3704u
#define MV_PID_ATTACH_LONG_FILENAME      0x3707u
#define MV_PID_ATTACH_EXTENSION          0x3703u
#define MV_PID_ATTACH_MIME_TAG           0x370Eu
#define MV_PID_ATTACH_CONTENT_ID         0x3712u
#define MV_PID_ATTACH_CONTENT_LOCATION   0x3713u
#define MV_PID_ATTACH_FLAGS              0x3714u
#define MV_PID_ATTACHMENT_HIDDEN         0x7FFEu
#define MV_PID_RENDERING_POSITION        0x370Bu
#define MV_PID_ATTACH_SIZE               0x0E20u

#define MV_ATTACH_BY_VALUE       1
#define MV_ATTACH_EMBEDDED_MSG   5
#define MV_ATTACH_OLE            6

/* Bounds: embedded messages nest at most this deep (deeper ones become a
 * plain attachment of what bytes there are); at most this many recipients
 * and attachments per message are read. */
#define MV_MAPI_MAX_DEPTH        16
#define MV_MAPI_MAX_RECIPIENTS   10000
#define MV_MAPI_MAX_ATTACHMENTS  4096

/* ---- the property bag ---------------------------------------------------------- */

typedef struct mv_mapi_props mv_mapi_props;

mv_mapi_props *mv_mapi_props_new(void);
void mv_mapi_props_free(mv_mapi_props *props);
/* Sets the property with this full tag (id << 16 | type), copying the
 * value; a second value for the same tag replaces the first. */
void mv_mapi_props_set(mv_mapi_props *props, uint32_t tag, const void *value, size_t len);
/* The raw value of this full tag, or NULL (*len_r = 0). */
const uint8_t *mv_mapi_props_get(const mv_mapi_props *props, uint32_t tag, size_t *len_r);
/* A string property by id, whichever of PT_UNICODE and PT_STRING8 it was
 * stored as (8-bit strings read in `codepage`; 0 = Windows-1252), as new
 * UTF-8 with invalid sequences replaced and a trailing NUL dropped; NULL
 * when absent. */
char *mv_mapi_props_string(const mv_mapi_props *props, uint16_t id, uint32_t codepage);
bool mv_mapi_props_int32(const mv_mapi_props *props, uint16_t id, int32_t *v_r);
bool mv_mapi_props_bool(const mv_mapi_props *props, uint16_t id, bool *v_r);
/* A PT_SYSTIME property as Unix seconds (false when absent or before 1970). */
bool mv_mapi_props_time(const mv_mapi_props *props, uint16_t id, int64_t *t_r);
/* Calls fn for each property in ascending tag order (deterministic). */
void mv_mapi_props_each(const mv_mapi_props *props,
                        void (*fn)(void *ctx, uint32_t tag, const uint8_t *value, size_t len), void *ctx);
size_t mv_mapi_props_count(const mv_mapi_props *props);

/* The iconv name of a Windows code page ("WINDOWS-1252", "UTF-8",
 * "SHIFT_JIS", ...); a static string, "WINDOWS-1252" for 0 or unknown. */
const char *mv_codepage_charset(uint32_t codepage);

/* ---- a message ----------------------------------------------------------------- */

typedef struct mv_mapi_message mv_mapi_message;

typedef struct mv_mapi_attachment {
	mv_mapi_props *props;     /* PR_ATTACH_DATA_BIN holds a by-value attachment's bytes */
	mv_mapi_message *embedded; /* method 5: the attached message, else NULL */
} mv_mapi_attachment;

struct mv_mapi_message {
	mv_mapi_props *props;
	GPtrArray *recipients;    /* mv_mapi_props *, in the file's order */
	GPtrArray *attachments;   /* mv_mapi_attachment *, in the file's order */
	uint32_t codepage;        /* for PT_STRING8 values: PR_MESSAGE_CODEPAGE, else the file's (PST) or
	                           * PR_INTERNET_CPID mapped to its script's Windows code page (MSG:
	                           * 50220 ISO-2022-JP means CP932 strings) */
	GPtrArray *damage;        /* char *: what could not be read ("attachment 3: ..."), may be empty */
};

mv_mapi_message *mv_mapi_message_new(void);
void mv_mapi_message_free(mv_mapi_message *m);
mv_mapi_attachment *mv_mapi_attachment_new(void);
void mv_mapi_attachment_free(mv_mapi_attachment *a);

/* What an item is, from its PR_MESSAGE_CLASS (IPM.Note and its sub-classes,
 * reports and meeting requests are mail; the others are not). */
typedef enum {
	MV_MAPI_MAIL = 0,
	MV_MAPI_APPOINTMENT,
	MV_MAPI_CONTACT,
	MV_MAPI_TASK,
	MV_MAPI_NOTE,            /* sticky note (IPM.StickyNote) */
	MV_MAPI_DISTLIST,
	MV_MAPI_JOURNAL,
	MV_MAPI_OTHER,
} mv_mapi_kind;

mv_mapi_kind mv_mapi_message_kind(const mv_mapi_message *m);
/* "contact", "appointment", ... for summaries. */
const char *mv_mapi_kind_name(mv_mapi_kind kind);

/* ---- the converter (mapi_mime.c) ----------------------------------------------- */

/* Writes the message as RFC 5322 bytes into out (appended): the transport
 * headers when the item has them, else headers built from the properties;
 * a MIME body from the plain, HTML and RTF bodies; attachments by value,
 * embedded messages as message/rfc822, inline images with Content-IDs.
 * Deterministic: the same properties give the same bytes (boundaries are
 * derived from the content, never random).  -1 with *error only when
 * nothing usable could be written. */
int mv_mapi_to_mime(const mv_mapi_message *m, GByteArray *out, GError **error);

/* ---- RTF (rtf.c) ---------------------------------------------------------------- */

#define MV_RTF_MAX_OUTPUT   (64u * 1024u * 1024u) /* decompressed RTF beyond this is refused */
#define MV_RTF_MAX_DEPTH    256                   /* deeper groups are skipped */

/* PR_RTF_COMPRESSED to RTF: the LZFu ("LZFu") and uncompressed ("MELA")
 * forms of MS-OXRTFCP, with the header's size checked against the bound and
 * the CRC of compressed data verified.  -1 with *error naming the reason. */
int mv_rtf_decompress(const uint8_t *data, size_t len, GByteArray **out_r, GError **error);
/* HTML encapsulated in RTF (MS-OXRTFEX, \fromhtml1): 1 and the HTML
 * appended to html as UTF-8 when the RTF is such an encapsulation (bytes
 * written as \'hh read in the RTF's \ansicpg or the current font's
 * charset; the HTML's own <meta charset> is left as written, so a reader
 * goes by the part's charset), 0 when it is not, -1 with *error when it
 * claims to be and has no HTML tag at all; html is untouched unless 1. */
int mv_rtf_deencapsulate_html(const uint8_t *rtf, size_t len, GString *html, GError **error);
/* The text of an RTF document (or of an encapsulated plain text, \fromtext)
 * as UTF-8 appended to out, at most limit bytes: \'hh read in the \ansicpg
 * code page, \uN with its fallback skipped, \par and \line as newlines,
 * destinations that are not text (fonttbl, colortbl, stylesheet, info,
 * pict, \*...) skipped, groups deeper than MV_RTF_MAX_DEPTH ignored.
 * Never fails. */
void mv_rtf_to_text(const uint8_t *rtf, size_t len, GString *out, size_t limit);

/* ---- readers -------------------------------------------------------------------- */

/* A .msg file (Compound File Binary) from memory, via libgsf, after its
 * FAT and directory were checked for what libgsf handles badly (cycles,
 * deep sibling chains, huge FATs).  -1 with *error naming the reason when
 * it is not a readable MSG (MV_ERR_LIMIT beyond MV_MAX_MESSAGE_SIZE);
 * damage inside a readable one is listed in m->damage.  Embedded messages
 * are read to MV_MAPI_MAX_DEPTH.  Named properties (ids from 0x8000) keep
 * their file-local ids, unmapped. */
int mv_msg_read(const uint8_t *data, size_t len, mv_mapi_message **m_r, GError **error);
/* True when the bytes start with the Compound File Binary signature. */
bool mv_msg_is_cfb(const uint8_t *data, size_t len);

/* A PST or OST file, read item by item (libpff) from its IPM subtree. */
typedef struct mv_pst mv_pst;
/* -1 with *error naming the file and the reason when it is not a readable
 * PST/OST. */
int mv_pst_open(const char *path, mv_pst **p_r, GError **error);
/* The next item: MV_READ_MESSAGE with *m_r (the caller's to free);
 * MV_READ_SKIPPED with *error when an item or a folder could not be read
 * (its mail is lost; *origin_r names it); MV_READ_END.  *origin_r
 * ("file.pst:Inbox/Sub#12") is the caller's to free. */
mv_read_result mv_pst_next(mv_pst *p, mv_mapi_message **m_r, char **origin_r, GError **error);
/* The folder of the item last returned ("Inbox/Sub"; "" for the top). */
const char *mv_pst_folder(const mv_pst *p);
/* Items read so far and in all (counted at open), and the current folder. */
void mv_pst_progress(const mv_pst *p, uint64_t *done_r, uint64_t *total_r, const char **folder_r);
void mv_pst_close(mv_pst **p);
/* True when the bytes start with a PST/OST's signature ("!BDN"). */
bool mv_pst_is_pst(const uint8_t *data, size_t len);

#endif
