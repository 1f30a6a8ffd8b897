/* store/journal: the walk over content/, the journal of the store.
 *
 * Read front to back, content/'s records say which message got which number
 * (batch markers), what was archived where (message and reference records),
 * what was deleted and why (tombstones) and which folders were renamed
 * (folder moves).  mv_journal_scan walks that journal and hands each record
 * to a callback; verify compares it with the db, recover replays it into a
 * new db, compact rewrites it without what nothing live needs.  So the walk
 * itself decides nothing: it only numbers records exactly as replay would
 * (a batch marker restarts the count; after unreadable bytes numbers are
 * unknown until the next marker) and reports damage as records with a
 * problem, resynchronising on the next header that parses, so that every
 * consumer sees the same journal.  It also keeps the zstd dictionaries
 * whose records it meets (format 4, dictionary.c), so that the records
 * after them decode: content/ alone, not the db, says what a record needs. */
#include "store/journal.h"
#include "store/dictionary.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static gint by_segment_id(gconstpointer a, gconstpointer b)
{
	const mv_journal_segment *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

GArray *mv_journal_segments_from_db(sqlite3 *db, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(db, "SELECT id, committed_len FROM segments ORDER BY id", &st, error) < 0)
		return NULL;
	GArray *segs = g_array_new(FALSE, TRUE, sizeof(mv_journal_segment));
	while (sqlite3_step(st) == SQLITE_ROW) {
		mv_journal_segment sg = { .id = sqlite3_column_int64(st, 0), .end = sqlite3_column_int64(st, 1) };
		g_array_append_val(segs, sg);
	}
	sqlite3_finalize(st);
	return segs;
}

static bool parse_segment_name(const char *name, int64_t *id_r)
{
	if (!g_str_has_prefix(name, "seg-") || !g_str_has_suffix(name, ".mvs") || strlen(name) != 16)
		return false;
	int64_t id = 0;
	for (int i = 4; i < 12; i++) {
		if (!g_ascii_isdigit(name[i]))
			return false;
		id = id * 10 + (name[i] - '0');
	}
	*id_r = id;
	return id > 0;
}

GArray *mv_journal_segments_from_dir(const char *dir, GError **error)
{
	DIR *d = opendir(dir);
	if (!d) {
		mv_set_errno_error(error, errno, "open directory", dir);
		return NULL;
	}
	GArray *segs = g_array_new(FALSE, TRUE, sizeof(mv_journal_segment));
	struct dirent *e;
	while ((e = readdir(d))) {
		mv_journal_segment sg = { 0 };
		if (!parse_segment_name(e->d_name, &sg.id))
			continue;
		char *path = g_build_filename(dir, e->d_name, NULL);
		struct stat stt;
		if (stat(path, &stt) == 0 && S_ISREG(stt.st_mode)) {
			sg.end = stt.st_size;
			g_array_append_val(segs, sg);
		}
		g_free(path);
	}
	closedir(d);
	g_array_sort(segs, by_segment_id);
	return segs;
}

typedef struct scan_state {
	GHashTable *dicts;    /* zstd dictionaries met so far: id -> mv_dict* */
	int64_t next;         /* number of the next message/reference record */
	bool certain;         /* false after unreadable bytes, until the next marker */
	uint64_t total, done; /* bytes, for progress */
} scan_state;

/* Finds the next offset after `from` where a record header parses. */
static int64_t resync(const uint8_t *map, int64_t from, int64_t end)
{
	for (int64_t p = from; p + MV_RECORD_HEADER_BYTES <= end; p++) {
		const uint8_t *hit = memmem(map + p, (size_t)(end - p), MV_RECORD_MAGIC, 4);
		if (!hit)
			return end;
		p = hit - map;
		mv_record_header h;
		if (p + MV_RECORD_HEADER_BYTES <= end && mv_record_parse_header(map + p, (size_t)(end - p), &h, NULL) == 0 &&
		    p + MV_RECORD_HEADER_BYTES + (int64_t)h.cipher_len <= end)
			return p;
	}
	return end;
}

static void assign_number(scan_state *st, mv_journal_rec *r)
{
	/* Numbers past what a store numbers are not believed, whatever a
	 * marker says (the records go unnumbered, as after damage): nor can
	 * counting on from them overflow. */
	if (r->type == MV_RECORD_MESSAGE || r->type == MV_RECORD_REFERENCE)
		r->number = st->certain && st->next <= MV_STORE_MAX_MESSAGE_NUMBER ? st->next++ : 0;
	else if (r->type == MV_RECORD_TOMBSTONE && r->ok)
		r->number = json_integer_value(json_object_get(r->meta, "number"));
	else if (r->type == MV_RECORD_BATCH && r->ok) {
		json_int_t first = json_integer_value(json_object_get(r->meta, "first"));
		if (first > 0 && first <= MV_STORE_MAX_MESSAGE_NUMBER) {
			st->next = first;
			st->certain = true;
		}
	}
}

/* A dictionary record: the records after it may be compressed with it. */
static void meet_dictionary(scan_state *st, mv_journal_rec *r)
{
	mv_dict *d = mv_dict_load(mv_dict_meta_id(r->meta), r->body, r->body_len, NULL);
	if (!d) {
		r->ok = false;
		r->problem = "dictionary record holds no zstd dictionary of the id it names";
		json_decref(r->meta);
		r->meta = NULL;
		return;
	}
	g_hash_table_replace(st->dicts, GUINT_TO_POINTER(mv_dict_id(d)), d);
}

/* The segment's bytes up to its committed length (or the file's end, when
 * the file is shorter: the rest is reported missing), mapped read-only;
 * *map_r stays NULL for nothing to map. */
static int map_segment(const char *path, int64_t committed, const uint8_t **map_r, int64_t *end_r, GError **error)
{
	*map_r = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mv_set_errno_error(error, errno, "open segment", path);
		return -1;
	}
	struct stat stt;
	int64_t end = committed;
	if (fstat(fd, &stt) == 0 && stt.st_size < end)
		end = stt.st_size;
	int rc = -1;
	if (end > 0) {
		void *map = mmap(NULL, (size_t)end, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			mv_set_errno_error(error, errno, "map segment", path);
			goto out;
		}
		madvise(map, (size_t)end, MADV_SEQUENTIAL);
		*map_r = map;
	}
	*end_r = end;
	rc = 0;
out:
	close(fd);
	return rc;
}

static int scan_one_segment(mv_store *s, mv_journal_segment *sg, scan_state *st, const mv_task *task,
                            mv_journal_fn fn, void *opaque, GError **error)
{
	char *path = mv_store_segment_file(s, sg->id);
	const uint8_t *map = NULL;
	int64_t end = 0;
	int rc = -1;
	if (map_segment(path, sg->end, &map, &end, error) < 0)
		goto out;
	sg->valid_end = SEGMENT_HEADER_BYTES;
	int64_t pos = SEGMENT_HEADER_BYTES;
	if (end < SEGMENT_HEADER_BYTES || memcmp(map, SEGMENT_MAGIC, 8) != 0) {
		mv_journal_rec r = { .segment = sg->id, .offset = 0, .length = MIN(end, SEGMENT_HEADER_BYTES),
		               .problem = "segment header damaged" };
		if (fn(opaque, &r, error) < 0)
			goto out;
	}
	while (pos + MV_RECORD_HEADER_BYTES <= end) {
		if (mv_store_task_cancelled(task)) {
			mv_store_cancelled_error(error, "the scan");
			goto out;
		}
		mv_record_header h;
		mv_journal_rec r = { .segment = sg->id, .offset = pos };
		if (mv_record_parse_header(map + pos, (size_t)(end - pos), &h, NULL) < 0 ||
		    pos + MV_RECORD_HEADER_BYTES + (int64_t)h.cipher_len > end) {
			int64_t next = resync(map, pos + 1, end);
			r.length = next - pos;
			r.type = 0;
			r.problem = next == end ? "unreadable or torn bytes up to the segment's end" : "unreadable bytes";
			st->certain = false;
			if (fn(opaque, &r, error) < 0)
				goto out;
			pos = next;
			continue;
		}
		r.length = MV_RECORD_HEADER_BYTES + (int64_t)h.cipher_len;
		r.type = h.type;
		GByteArray *plain = NULL;
		const uint8_t *meta;
		size_t meta_len;
		GError *derr = NULL;
		if (mv_record_decode_dict(s->key, mv_dict_table_lookup, st->dicts, map + pos, (size_t)r.length, &h, &plain,
		                          &meta, &meta_len, &r.body, &r.body_len, &r.dict_missing, &derr) == 0) {
			json_error_t jerr;
			r.meta = json_loadb((const char *)meta, meta_len, 0, &jerr);
			r.ok = r.meta != NULL;
			if (!r.ok)
				r.problem = "record metadata is not JSON";
			else if (r.type == MV_RECORD_DICTIONARY)
				meet_dictionary(st, &r);
		} else if (r.dict_missing) {
			r.problem = "compressed with a zstd dictionary that no readable dictionary record before it holds";
		} else {
			r.problem = "authentication failed (bytes changed)";
		}
		g_clear_error(&derr);
		assign_number(st, &r);
		int fn_rc = fn(opaque, &r, error);
		json_decref(r.meta);
		if (plain)
			g_byte_array_unref(plain);
		pos += r.length;
		sg->valid_end = pos;
		st->done += (uint64_t)r.length;
		if ((st->done & 0xfffff) < (uint64_t)r.length && st->total)
			mv_store_task_progress(task, (int)(st->done * 99 / st->total), "segment %lld", (long long)sg->id);
		if (fn_rc < 0)
			goto out;
	}
	rc = 0;
out:
	if (map)
		munmap((void *)map, (size_t)end);
	g_free(path);
	return rc;
}

int mv_journal_scan(mv_store *s, GArray *segs, const mv_task *task, mv_journal_fn fn, void *opaque,
                    GError **error)
{
	return mv_journal_scan_dicts(s, segs, NULL, task, fn, opaque, error);
}

int mv_journal_scan_dicts(mv_store *s, GArray *segs, GHashTable *dicts, const mv_task *task, mv_journal_fn fn,
                          void *opaque, GError **error)
{
	scan_state st = { .dicts = dicts ? dicts : mv_dict_table_new(), .next = 1, .certain = true };
	int rc = -1;
	for (guint i = 0; i < segs->len; i++)
		st.total += (uint64_t)g_array_index(segs, mv_journal_segment, i).end;
	for (guint i = 0; i < segs->len; i++)
		if (scan_one_segment(s, &g_array_index(segs, mv_journal_segment, i), &st, task, fn, opaque, error) < 0)
			goto out;
	rc = 0;
out:
	if (!dicts)
		g_hash_table_destroy(st.dicts);
	return rc;
}

bool mv_journal_meta_hash(json_t *meta, uint8_t out[MV_HASH_BYTES])
{
	const char *hex = json_string_value(json_object_get(meta, "hash"));
	return hex && mv_unhex(hex, out, MV_HASH_BYTES);
}

bool mv_journal_body_matches(const mv_journal_rec *r)
{
	uint8_t want[MV_HASH_BYTES], got[MV_HASH_BYTES];
	if (!r->ok || !mv_journal_meta_hash(r->meta, want))
		return false;
	crypto_generichash(got, sizeof got, r->body, r->body_len, NULL, 0);
	return sodium_memcmp(want, got, MV_HASH_BYTES) == 0;
}

#define MAX_PROBLEMS 1000   /* listed in a report; the counts stay exact */

void mv_journal_problem(mv_journal_report *r, const char *kind, json_t *ids, const char *fmt, ...)
{
	r->count++;
	if (json_array_size(r->problems) >= MAX_PROBLEMS) {
		json_decref(ids);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	char *detail = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	json_t *p = json_pack("{s:s, s:s}", "kind", kind, "detail", detail);
	if (ids)
		json_object_set_new(p, "messageIds", ids);
	json_array_append_new(r->problems, p);
	g_free(detail);
}
