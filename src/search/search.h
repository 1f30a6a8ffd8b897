/* search: a parsed query planned onto each store's FTS5 index and metadata,
 * fanned out over the readable stores, merged into one ranked list. */
#ifndef MV_SEARCH_H
#define MV_SEARCH_H

#include "archive/archive.h"
#include "search/query.h"

typedef enum { MV_SORT_DATE = 0, MV_SORT_RELEVANCE = 1 } mv_sort;

/* What an answer could not see, so that no caller takes a partial answer
 * for a whole one (an eDiscovery search run during an index rebuild). */
typedef struct mv_search_coverage {
	/* Messages of the searched folders (the caller's readable ones, within
	 * the archive asked) archived but not in their store's index yet: a
	 * hand-off in flight, or a rebuild part way.  Text searches only: a
	 * query over the db alone (dates, sizes) sees every message. */
	int64_t unindexed;
	int stores_unsearched;   /* stores that could not be opened (each logged with its reason) */
} mv_search_coverage;

typedef struct mv_search_options {
	const char *archive;   /* NULL = all archives */
	const char *folder;    /* with archive: this folder's messages only (not its subfolders'); NULL = any */
	int64_t limit;         /* 0 = no limit */
	mv_sort sort;
	const mv_access *access; /* whose folder privileges filter the hits; NULL = none */
	/* Paging.  after: the id of the last hit of the previous page (date
	 * order only): the hits that follow it, however deep, at the cost of
	 * one page.  offset: hits to skip first (either order; costs them). */
	const char *after;
	int64_t offset;
	/* When set, filled with what this answer could not see (the cost: a
	 * seek per store when its index is up to date). */
	mv_search_coverage *coverage;
} mv_search_options;

/* Bound of offset: deeper pages go by `after`. */
#define MV_SEARCH_MAX_OFFSET 10000

typedef struct mv_search_hit {
	int store_id;
	int64_t number;
	int64_t date;
	int64_t size;
	double rank;           /* bm25: lower is better */
	bool has_attachment;
	char *from, *to, *subject, *archive, *folder, *message_id;
} mv_search_hit;

void mv_search_hit_free(mv_search_hit *h);
/* {"id","date","from","to","subject","archive","folder","size","messageId","hasAttachment"} */
json_t *mv_search_hit_json(const mv_search_hit *h);

typedef struct mv_searcher mv_searcher;

/* The bound on what one query's prefix terms may make FTS5 merge in memory
 * in one store (search/prefix_cost.c); a query past it fails with
 * MV_ERR_LIMIT naming the prefix.  Process-wide, because what it guards is
 * the process's memory and time: serve sets it from [search] max_prefix_mb,
 * `mailvault search` from --max-prefix-mb.  0 = unbounded. */
void mv_search_set_max_prefix_bytes(int64_t bytes);

/* Opens every readable store of the instance for searching. */
mv_searcher *mv_searcher_open(mv_instance *inst, GError **error);
void mv_searcher_close(mv_searcher **s);
/* The one wording of what an answer could not see, for every caller that
 * shows it (the CLI, SearchMessages' logOutput, Web Access, an export's
 * log); NULL when the answer saw everything. */
char *mv_search_coverage_note(const mv_search_coverage *c);
/* How the note begins: what picks it out of a logOutput's other lines. */
#define MV_SEARCH_COVERAGE_NOTE_START "this answer may be incomplete: "
/* Runs a query; *hits_r is an array of mv_search_hit* (caller frees). */
int mv_searcher_run(mv_searcher *s, const char *query, const mv_search_options *opts,
                    GPtrArray **hits_r, GError **error);
/* The store with that id among the open ones, or NULL. */
mv_store *mv_searcher_store(mv_searcher *s, int store_id);

/* One message on behalf of a caller (message.c): its row in *m_r (may be
 * NULL; the caller clears it) and its exact bytes in *raw_r (may be NULL).
 * MV_ERR_NOT_FOUND, with the same words, for every message the caller
 * cannot see: malformed id, unknown, deleted, in a disabled store, or in a
 * folder without the read privilege.  access NULL = unrestricted. */
int mv_message_fetch(mv_instance *inst, const mv_access *access, const char *id, mv_store_message *m_r,
                     GByteArray **raw_r, GError **error);

/* The passage of text that shows why a hit matched q (snippet.c):
 * [[text, false], [matched word, true], ...], about max_chars characters,
 * whitespace collapsed, "…" where the text was cut; the text's start when
 * no word of q is in it.  Segments are text, never markup. */
json_t *mv_snippet_json(const mv_query *q, const char *text, size_t max_chars);
/* The snippet of a hit: from its body text (about max_bytes of it) when a
 * word of q is there, else from the first attachment whose name or text
 * holds one — *attachment_r then names it (a new string; NULL when the
 * snippet is the body's).  Attachment text is read as the index read it
 * (the extractor table, documents in their sandboxed workers). */
json_t *mv_snippet_for_message(const mv_query *q, const uint8_t *raw, size_t len, size_t max_bytes, size_t max_chars,
                               char **attachment_r);

#endif
