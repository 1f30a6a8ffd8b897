/* The best bm25 scores of a one-word query, from the index's doclists
 * (term_rank.c). */
#ifndef MV_SEARCH_TERM_RANK_H
#define MV_SEARCH_TERM_RANK_H

#include "base/base.h"
#include "store/store.h"

#include <sqlite3.h>

/* A document and its score: bm25 as FTS5 gives it, lower is better. */
typedef struct mv_scored {
	int64_t rowid;
	double rank;
} mv_scored;

/* One phrase of the query: a word, an address's token, or the words of
 * one word's prefix (all folded as the index holds them), asked in
 * `columns` (NULL-terminated; NULL = every column). */
typedef struct mv_term_rank_phrase {
	const GPtrArray *words;
	const char *const *columns;
} mv_term_rank_phrase;

#define MV_TERM_RANK_MAX_PHRASES 8

typedef struct mv_term_rank_request {
	const mv_term_rank_phrase *phrases;  /* in the MATCH's order */
	guint n_phrases;                     /* 1..MV_TERM_RANK_MAX_PHRASES */
	bool any;                            /* their OR; else their AND */
	int64_t docid_lo, docid_hi;          /* scored within [lo, hi); counted over all */
	guint want;                          /* how many of the best */
	/* A restricted caller's scope tokens (folded), one of which a hit must
	 * hold, or NULL: the MATCH's `AND ("t1" OR "t2" ...)`, asked in
	 * within_columns (NULL-terminated; NULL = any column). */
	const GPtrArray *within;
	const char *const *within_columns;
} mv_term_rank_request;

/* The `want` best scores within the range appended to `top`, best first and
 * equal ones by rowid: what FTS5's
 *   SELECT rowid, bm25(fts, 1, ..., 1, 0) FROM fts WHERE fts MATCH
 *   '({cols} : "w1" AND|OR {cols} : "w2" ...)' AND rowid >= lo AND rowid < hi
 *   ORDER BY 2, 1
 * gives, every column weighing 1 but the last (scope), to the same doubles
 * (the words of a prefix are its phrase `{cols} : "prefix"*`, whose hits in
 * a document are those of all its words).  *answered_r false (nothing
 * added, no error) when the index is one this reader leaves to FTS5: a
 * contentless_delete table, a column it does not know, bytes that are not
 * what FTS5 writes (logged), or more hits than a search may hold. */
int mv_term_rank(mv_store *store, const mv_term_rank_request *rq, GArray *top, bool *answered_r, GError **error);

/* The same on the index attached as "ix" to db, inside the caller's read
 * transaction, with the lengths kept in `cache` between calls (NULL: each
 * looked up in fts_docsize); store_id names the store in the log. */
typedef struct mv_term_rank_cache mv_term_rank_cache;
mv_term_rank_cache *mv_term_rank_cache_new(void);
void mv_term_rank_cache_free(gpointer cache);
/* The documents whose lengths the cache holds (0 when none are read). */
guint mv_term_rank_cache_docs(const mv_term_rank_cache *cache);
/* The entries a search may hold before it leaves the query to FTS5 (0:
 * the default, 2 million); for tests. */
void mv_term_rank_set_max_entries(guint entries);
int mv_term_rank_db(sqlite3 *db, int store_id, mv_term_rank_cache *cache, const mv_term_rank_request *rq, GArray *top,
                    bool *answered_r, GError **error);

#endif
