/* The search query language, parsed into a small tree.
 *
 *   words                 all must match (implicit AND)
 *   "exact phrase"
 *   a OR b                OR binds tighter than the implicit AND: `a b OR c` = a AND (b OR c)
 *   a AND b               the same as `a b`
 *   -word, -"phrase", -field:x, NOT word   negation
 *                         OR, AND and NOT are operators in upper and in
 *                         lower case (or, and, not); in mixed case (Or) or
 *                         in quotes ("or") they are words
 *   word*                 prefix
 *   ( ... )               grouping
 *   field:term            from: to: cc: bcc: subject: body: attachment:
 *                         folder: archive: messageid:   (term may be a word,
 *                         a prefix or a "phrase")
 *   field:( ... )         the field applied to every term of the group:
 *                         subject:(a OR b) = subject:a OR subject:b
 *   after:YYYY-MM-DD before:YYYY-MM-DD   (after is inclusive of that day,
 *                         before is exclusive)
 *   has:attachment
 *   size:>1M size:<10k size:>=500  (k, M, G; 1024-based)
 *
 * Fields and keywords are case-insensitive.  A word that looks like a field
 * but names none — two or more ASCII letters, a colon and a value:
 * `form:alice`, `date:2002-10-01` — is an error listing the fields; other
 * words with a colon are text (`http://x`, `10:30`, `Re:`), and so is
 * anything in quotes.  A malformed query is an error whose message names
 * the 1-based character position, the input refused and the reason. */
#ifndef MV_SEARCH_QUERY_H
#define MV_SEARCH_QUERY_H

#include "base/base.h"

#define MV_QUERY_MAX_LEN 4096     /* longer queries are refused */
#define MV_QUERY_MAX_DEPTH 32     /* parenthesis nesting bound */
#define MV_QUERY_MAX_TERMS 256

typedef enum {
	MV_Q_AND,      /* children */
	MV_Q_OR,       /* children */
	MV_Q_NOT,      /* one child */
	MV_Q_TERM,     /* text (word), prefix flag, field */
	MV_Q_PHRASE,   /* text (words separated by single spaces), field */
	MV_Q_DATE,     /* cmp + value: after:/before: */
	MV_Q_SIZE,     /* cmp + value in bytes */
	MV_Q_HAS_ATTACHMENT,
} mv_query_kind;

typedef enum {
	MV_F_ANY = 0, MV_F_FROM, MV_F_TO, MV_F_CC, MV_F_BCC, MV_F_SUBJECT,
	MV_F_BODY, MV_F_ATTACHMENT, MV_F_FOLDER, MV_F_ARCHIVE, MV_F_MESSAGEID,
} mv_query_field;

typedef enum { MV_CMP_LT, MV_CMP_LE, MV_CMP_GT, MV_CMP_GE, MV_CMP_EQ } mv_query_cmp;

typedef struct mv_query mv_query;
struct mv_query {
	mv_query_kind kind;
	mv_query_field field;   /* TERM, PHRASE */
	char *text;             /* TERM: one word (UTF-8, as typed); PHRASE: the phrase */
	bool prefix;            /* TERM ending in '*' (the '*' is not in text) */
	mv_query_cmp cmp;       /* DATE (GE for after:, LT for before:), SIZE */
	int64_t value;          /* DATE: unix seconds UTC at 00:00 of the day; SIZE: bytes */
	GPtrArray *children;    /* AND, OR, NOT: of mv_query*, owned */
};

/* Parses text.  Returns NULL with error (MV_ERR_INVALID, message
 * "position N: reason") on malformed input.  An empty query (only spaces)
 * is an error too ("empty query"). */
mv_query *mv_query_parse(const char *text, GError **error);
/* Frees the query and clears the caller's pointer (NULL is fine). */
void mv_query_free(mv_query **q);
/* The same as a GDestroyNotify, for arrays of queries. */
void mv_query_free_notify(gpointer q);
/* A canonical, fully parenthesised rendering, for tests and --debug:
 * AND(a, OR(b, c)), NOT(x), TERM(from:john*), PHRASE(subject:"a b"),
 * DATE(>=1030000000), SIZE(>1048576), HAS(attachment). */
char *mv_query_to_string(const mv_query *q);
const char *mv_query_field_name(mv_query_field f);

#endif
