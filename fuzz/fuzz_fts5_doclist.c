/* libFuzzer target for search/fts5_doclist: FTS5's structure and averages
 * records, a position list and one term's doclist walked over consecutive
 * leaf pages are read as bytes by the relevance ranking, and the index is a
 * file on disk that can be damaged.  Any bytes must give a documented
 * answer — never a read outside a record or a page (each page is handed out
 * in its own allocation, freed at the next request, so that a pointer kept
 * past it is caught too), a hang, or a leak — and:
 *
 * - the structure reader returns 0, 1 or -1, keeps the entries the array
 *   already had, leaves it at its length on -1, and appends only segments
 *   FTS5 could have written (id 1..65535, pages within 32 bits, at most
 *   2000 of them);
 * - the averages never come out negative, a position list never counts
 *   more positions than it has bytes;
 * - the doclist walk returns 1, 0 or -1, or -2 exactly when the page
 *   callback failed; it asks for its first page, then only later ones, never
 *   past last_page and never again after a page was missing or failed; each
 *   entry's position list is readable for its whole length (at most
 *   64 MiB), its rowids are non-negative and strictly increasing, and a
 *   term not on the leaf (0) gives no entries.
 *
 * Input: byte 0 chooses the reader (mod 4).
 *   0 structure:  the record.
 *   1 averages:   1 byte of columns, the record.
 *   2 poslist:    1 byte match columns, 1 byte count columns (bits 0..7;
 *                 the top bit of each also sets columns 8..63), the list.
 *   3 doclist:    1 byte first page, 1 byte last page less the first,
 *                 1 byte page the callback fails on (less the first; 8 and
 *                 above: none), 1 byte term length and the term, then up to
 *                 8 pages, each a 2-byte big-endian length and its bytes
 *                 (the last one cut to what is left).  Pages past those
 *                 given are missing (the callback returns 0). */
#include <stdlib.h>
#include <string.h>

#include "search/fts5_doclist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAGES 8
#define MAX_POSLIST (64u << 20)

/* ---- structure, averages, poslist ------------------------------------------------ */

static void fuzz_structure(const uint8_t *rec, size_t n)
{
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(mv_fts5_segment));
	/* entries already there, as a caller appending several tables' would have */
	const mv_fts5_segment before[2] = { { 7, 1, 3 }, { 9, 4, 4 } };
	g_array_append_vals(segs, before, 2);
	int rc = mv_fts5_structure_read(rec, n, segs);
	if (rc != 0 && rc != 1 && rc != -1)
		abort();
	if (segs->len < 2 || memcmp(segs->data, before, sizeof before) != 0)
		abort();
	if (rc == -1 && segs->len != 2)
		abort();
	if (rc == 0) {
		guint added = segs->len - 2;
		/* FTS5's bound, and three varints of at least a byte each */
		if (added > 2000 || (size_t)added * 3 > n)
			abort();
		for (guint i = 2; i < segs->len; i++) {
			const mv_fts5_segment *s = &g_array_index(segs, mv_fts5_segment, i);
			if (s->segid < 1 || s->segid > 65535 || s->first_page < 0 || s->first_page > INT32_MAX ||
			    s->last_page < 0 || s->last_page > INT32_MAX)
				abort();
		}
	}
	g_array_free(segs, TRUE);
}

static void fuzz_averages(const uint8_t *rec, size_t n, int columns)
{
	int64_t rows = -1, tokens = -1;
	if (mv_fts5_averages_read(rec, n, columns, &rows, &tokens) && (rows < 0 || tokens < 0))
		abort();
}

static void check_poslist(const uint8_t *p, size_t n, uint64_t match_cols, uint64_t count_cols)
{
	uint32_t count = 0;
	bool match = false;
	if (!mv_fts5_poslist_count(p, n, match_cols, count_cols, &count, &match))
		return;
	if (count > n || (count && !count_cols) || (match && !match_cols))
		abort();
}

static uint64_t columns_of(uint8_t b)
{
	return b | ((b & 0x80) ? ~UINT64_C(0xff) : 0);
}

/* ---- the doclist walk ------------------------------------------------------------- */

typedef struct walk {
	const uint8_t *page[MAX_PAGES];
	size_t len[MAX_PAGES];
	int pages;
	int64_t start, last_page, fail_at;
	uint8_t *held;       /* the page handed out last, in its own allocation */
	int64_t asked;       /* the last page asked for; start - 1 before any */
	bool ended;          /* the callback said missing or failed */
	bool failed;         /* it returned -1 */
	bool walking;
	size_t entries;
	int64_t rowid;
} walk;

static int give_page(void *opaque, int64_t page, const uint8_t **bytes_r, size_t *n_r)
{
	walk *w = opaque;
	if (!w->walking || w->ended || page <= w->asked || page < w->start || page > w->last_page)
		abort();
	if (w->asked < w->start && page != w->start)
		abort();   /* the first page asked for is the one it was given */
	w->asked = page;
	free(w->held);   /* the previous page is no longer valid */
	w->held = NULL;
	if (page == w->fail_at) {
		w->ended = w->failed = true;
		return -1;
	}
	int64_t i = page - w->start;
	if (i >= w->pages) {
		w->ended = true;
		return 0;
	}
	size_t n = w->len[i];
	if (n) {
		w->held = malloc(n);
		if (!w->held)
			abort();
		memcpy(w->held, w->page[i], n);
	}
	*bytes_r = w->held;   /* NULL for an empty page, as sqlite3_column_blob gives */
	*n_r = n;
	return 1;
}

static void take_entry(void *opaque, int64_t rowid, bool deleted, const uint8_t *poslist, size_t n)
{
	walk *w = opaque;
	(void)deleted;
	if (!w->walking || rowid < 0 || (w->entries && rowid <= w->rowid) || n > MAX_POSLIST)
		abort();
	if (n) {
		if (!poslist)
			abort();
		volatile uint8_t first = poslist[0], last = poslist[n - 1];   /* reads the whole span under ASan's eye */
		(void)first;
		(void)last;
		check_poslist(poslist, n, 1, UINT64_MAX);
	}
	w->rowid = rowid;
	w->entries++;
}

static void fuzz_doclist(const uint8_t *data, size_t size)
{
	if (size < 4)
		return;
	walk w = { 0 };
	w.start = data[0];
	w.last_page = w.start + data[1];
	w.fail_at = data[2] < MAX_PAGES ? w.start + data[2] : -1;
	w.asked = w.start - 1;
	size_t term_len = MIN((size_t)data[3], size - 4);
	/* the term in its own allocation too; one byte when empty, so that it
	 * is never NULL */
	uint8_t *term = malloc(term_len ? term_len : 1);
	if (!term)
		abort();
	memcpy(term, data + 4, term_len);
	size_t at = 4 + term_len, total = 0;
	while (w.pages < MAX_PAGES && size - at >= 2) {
		size_t n = MIN(((size_t)data[at] << 8) | data[at + 1], size - at - 2);
		at += 2;
		w.page[w.pages] = data + at;
		w.len[w.pages] = n;
		w.pages++;
		total += n;
		at += n;
	}

	w.walking = true;
	int rc = mv_fts5_doclist_read(term, term_len, w.start, w.last_page, give_page, take_entry, &w);
	w.walking = false;
	if (rc != 1 && rc != 0 && rc != -1 && rc != -2)
		abort();
	if ((rc == -2) != w.failed)
		abort();   /* -2 exactly when the callback failed */
	if (w.asked < w.start)
		abort();   /* it always asks for the first page */
	if (rc == 0 && (w.entries || w.asked != w.start))
		abort();   /* not on that leaf: nothing walked */
	/* every entry has a rowid and a size of at least a byte each */
	if (w.entries > total / 2)
		abort();
	free(w.held);
	free(term);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0:
		fuzz_structure(p, n);
		break;
	case 1:
		if (n >= 1)
			fuzz_averages(p + 1, n - 1, p[0]);
		break;
	case 2:
		if (n >= 2)
			check_poslist(p + 2, n - 2, columns_of(p[0]), columns_of(p[1]));
		break;
	default:
		fuzz_doclist(p, n);
		break;
	}
	return 0;
}
