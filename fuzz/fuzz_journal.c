/* fuzz_journal: libFuzzer target for content/ as RecoverStore and
 * VerifyStore read it — the journal walk (store/journal.c,
 * mv_journal_scan: headers, resynchronisation after damage, torn tails,
 * batch numbering) and everything RecoverStore does with what it finds
 * (store/recover.c: metadata JSON into folder, content and message rows,
 * tombstones, restores, folder moves, records whose number was lost),
 * then VerifyStore over the store RecoverStore left.
 *
 * Random bytes never get past a record's AEAD tag, so the input is not a
 * segment but a recipe for one, encrypted here with the store's key:
 *   byte 0: options — bit 0 RecoverStore --recoverDeletedMessages,
 *           bit 1 the first segment starts without its header;
 *   then chunks, each a tag byte whose low two bits say what follows:
 *     0 raw:     u16 LE length, then that many bytes written as they are
 *                (damage, torn tails, false record headers to resync on);
 *     1 record:  type = (tag >> 2) & 7 (0 is no record type), u16
 *                metadata length, u16 body length, metadata, body —
 *                encoded with mv_record_encode under the store's key;
 *                with tag bit 5, compressed with the fuzz dictionary
 *                (fuzz_dict.h), or for a dictionary record (type 7) its
 *                body is that dictionary;
 *     2 damaged: a record as in 1, then u16 v: bit 0 set cuts the record
 *                to (v >> 1) % its length bytes, clear flips bit
 *                (v >> 1) % its bits;
 *     3 segment: the next segment file begins, its id (tag >> 2) % 4 + 1
 *                after the last one, without its header when tag bit 4.
 *   In a metadata "$HASH" stands for the hex BLAKE2b of the body of the
 *   latest message record (type 1), so that an input can name content
 *   that is there and reach the row-making paths behind the hash check;
 *   "$DICT" for the fuzz dictionary's id, so that a dictionary record can
 *   name it and the records after it decode.
 * One store is created per process (mv_store_create into a mkdtemp
 * directory, on tmpfs when there is one, a fixed data key); per input only
 * its content/ is rewritten, and mv_store_recover itself runs on it, then
 * VerifyStore.  That is about 10 ms an input under ASan, most of it
 * RecoverStore making its two SQLCipher files and their schemas (80 to 120
 * inputs a second): slower than a copy of recover.c's record handler over
 * mv_journal_scan would be, but it fuzzes recover.c itself rather than a
 * copy that could drift from it.
 *
 * Besides crashes, leaks and undefined behaviour: the walk hands on every
 * byte of a segment once, in order (records, runs of unreadable bytes, up
 * to a torn tail shorter than a header), readable records with a known
 * type and their metadata, numbers running on by one; and after any
 * RecoverStore: it succeeds (whatever content/ holds, recovery is the
 * way out); its report's problems are its damaged records; it cannot
 * recover more messages than there are intact message and reference
 * records, nor count deletions that no tombstone made; no segment keeps a
 * torn tail; and VerifyStore on the result succeeds and finds the index
 * agreeing with the db, which the recovery has just rebuilt it from. */
#include "store/journal.h"
#include "fuzz_store.h"
#include "fuzz_dict.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

#define MAX_SEGMENTS 8

static mv_store_paths paths;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_store_create("fuzz_journal", &paths);
	fuzz_dict_init();
	return 0;
}

/* ---- the segment files from the recipe -------------------------------------------------------- */

typedef struct recipe {
	const uint8_t *d;
	size_t n, at;
	GByteArray *seg[MAX_SEGMENTS];
	int64_t seg_id[MAX_SEGMENTS];
	int segs;
	uint8_t last_hash[MV_HASH_BYTES];
	int intact_numbered;  /* message and reference records left whole */
	int tombstones;       /* tombstone records, whole or not */
} recipe;

static bool take(recipe *r, size_t len, const uint8_t **p)
{
	if (r->n - r->at < len)
		return false;
	*p = r->d + r->at;
	r->at += len;
	return true;
}

static size_t take_u16(recipe *r)
{
	const uint8_t *p;
	if (!take(r, 2, &p))
		return 0;
	return (size_t)p[0] | (size_t)p[1] << 8;
}

/* Takes up to len bytes (fewer at the input's end). */
static const uint8_t *take_upto(recipe *r, size_t *len)
{
	if (*len > r->n - r->at)
		*len = r->n - r->at;
	const uint8_t *p = r->d + r->at;
	r->at += *len;
	return p;
}

static void begin_segment(recipe *r, int64_t id, bool with_header)
{
	GByteArray *g = g_byte_array_new();
	if (with_header) {
		uint8_t hdr[SEGMENT_HEADER_BYTES] = { 0 };
		memcpy(hdr, SEGMENT_MAGIC, 8);
		hdr[8] = 1;
		g_byte_array_append(g, hdr, sizeof hdr);
	}
	r->seg[r->segs] = g;
	r->seg_id[r->segs] = id;
	r->segs++;
}

/* The metadata with every "$HASH" replaced by the latest message's hash
 * and every "$DICT" by the fuzz dictionary's id. */
static GString *expand_meta(const recipe *r, const uint8_t *meta, size_t len)
{
	static const char mark[] = "$HASH", dict_mark[] = "$DICT";
	GString *out = g_string_sized_new(len + 64);
	char *hex = mv_hex(r->last_hash, MV_HASH_BYTES);
	for (size_t i = 0; i < len;) {
		if (len - i >= sizeof mark - 1 && memcmp(meta + i, mark, sizeof mark - 1) == 0) {
			g_string_append(out, hex);
			i += sizeof mark - 1;
		} else if (len - i >= sizeof dict_mark - 1 && memcmp(meta + i, dict_mark, sizeof dict_mark - 1) == 0) {
			g_string_append_printf(out, "%u", FUZZ_DICT_ID);
			i += sizeof dict_mark - 1;
		} else {
			g_string_append_c(out, (char)meta[i++]);
		}
	}
	g_free(hex);
	return out;
}

/* A record chunk (its lengths cut short at the input's end): the encoded record. */
static GByteArray *record_chunk(recipe *r, uint8_t tag)
{
	int type = (tag >> 2) & 7;
	size_t ml = take_u16(r), bl = take_u16(r);
	const uint8_t *meta = take_upto(r, &ml);
	const uint8_t *body = take_upto(r, &bl);
	if (type == MV_RECORD_MESSAGE)
		crypto_generichash(r->last_hash, MV_HASH_BYTES, body, bl, NULL, 0);
	GString *m = expand_meta(r, meta, ml);
	GByteArray *rec = g_byte_array_new();
	GError *err = NULL;
	bool with_dict = tag & 0x20;
	if (with_dict && type == MV_RECORD_DICTIONARY)
		body = g_bytes_get_data(fuzz_dict_bytes, &bl);
	const ZSTD_CDict *cdict = with_dict && type != MV_RECORD_DICTIONARY ? mv_dict_cdict(fuzz_dict, 1) : NULL;
	if (mv_record_encode_dict(fuzz_key, (mv_record_type)type, (const uint8_t *)m->str, m->len, body, bl, 1, cdict, rec,
	                          &err) < 0)
		fail("mv_record_encode", err);
	g_string_free(m, TRUE);
	return rec;
}

static void build(recipe *r)
{
	const uint8_t *opt;
	if (!take(r, 1, &opt))
		return;
	begin_segment(r, 1, !(opt[0] & 2));
	const uint8_t *tagp;
	while (take(r, 1, &tagp)) {
		uint8_t tag = *tagp;
		GByteArray *cur = r->seg[r->segs - 1];
		switch (tag & 3) {
		case 0: {
			size_t len = take_u16(r);
			const uint8_t *p = take_upto(r, &len);
			g_byte_array_append(cur, p, (guint)len);
			break;
		}
		case 1: {
			int type = (tag >> 2) & 7;
			GByteArray *rec = record_chunk(r, tag);
			if (type == MV_RECORD_MESSAGE || type == MV_RECORD_REFERENCE)
				r->intact_numbered++;
			r->tombstones += type == MV_RECORD_TOMBSTONE;
			g_byte_array_append(cur, rec->data, rec->len);
			g_byte_array_unref(rec);
			break;
		}
		case 2: {
			GByteArray *rec = record_chunk(r, tag);
			r->tombstones += ((tag >> 2) & 7) == MV_RECORD_TOMBSTONE;
			size_t v = take_u16(r);
			if (v & 1) {
				g_byte_array_set_size(rec, (guint)((v >> 1) % rec->len));
			} else {
				size_t bit = (v >> 1) % ((size_t)rec->len * 8);
				rec->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			}
			g_byte_array_append(cur, rec->data, rec->len);
			g_byte_array_unref(rec);
			break;
		}
		default:
			if (r->segs == MAX_SEGMENTS)
				break;
			begin_segment(r, r->seg_id[r->segs - 1] + 1 + (tag >> 2) % 4, !(tag & 16));
			break;
		}
	}
}

static void clear_content(void)
{
	GDir *dir = g_dir_open(paths.content_dir, 0, NULL);
	if (!dir)
		fail("open content/", NULL);
	const char *name;
	while ((name = g_dir_read_name(dir))) {
		if (!g_str_has_prefix(name, "seg-"))
			continue;
		char *p = g_build_filename(paths.content_dir, name, NULL);
		if (unlink(p) < 0)
			fail("unlink a segment", NULL);
		g_free(p);
	}
	g_dir_close(dir);
}

static void write_segments(const recipe *r)
{
	for (int i = 0; i < r->segs; i++) {
		char name[32];
		g_snprintf(name, sizeof name, "seg-%08lld.mvs", (long long)r->seg_id[i]);
		char *p = g_build_filename(paths.content_dir, name, NULL);
		GError *err = NULL;
		if (!g_file_set_contents(p, (const char *)r->seg[i]->data, r->seg[i]->len, &err))
			fail("write a segment", err);
		g_free(p);
	}
}

/* ---- what must hold after the recovery -------------------------------------------------------- */

static json_int_t report_int(json_t *report, const char *key)
{
	json_t *v = json_object_get(report, key);
	if (!json_is_integer(v))
		fail(key, NULL);
	return json_integer_value(v);
}

static void check_recover_report(const recipe *r, json_t *report)
{
	json_int_t damaged = report_int(report, "damagedRecords"), problems = report_int(report, "problemCount");
	json_int_t messages = report_int(report, "messagesRecovered"), deleted = report_int(report, "deletedMessages");
	json_int_t cut = report_int(report, "tornTailsCut");
	if (problems != damaged) {
		fprintf(stderr, "problemCount %lld, damagedRecords %lld\n", (long long)problems, (long long)damaged);
		fail("RecoverStore's problems are not its damaged records", NULL);
	}
	if (messages > r->intact_numbered) {
		fprintf(stderr, "messagesRecovered %lld from %d records\n", (long long)messages, r->intact_numbered);
		fail("RecoverStore recovered more messages than content/ has records", NULL);
	}
	if (deleted < 0 || deleted > r->tombstones) {
		fprintf(stderr, "deletedMessages %lld, %d tombstone records\n", (long long)deleted, r->tombstones);
		fail("RecoverStore counts deletions no tombstone made", NULL);
	}
	if (cut < 0 || cut > r->segs)
		fail("RecoverStore cut more torn tails than there are segments", NULL);
}

/* The walk itself, before RecoverStore: per segment, what it hands on
 * tiles the file from the segment header on (a damaged header first, at
 * 0), record after record and run after run of unreadable bytes, up to at
 * most a header's length short of the end; readable records carry a known
 * type and their metadata; numbers run on by one from a batch marker. */
typedef struct walk {
	int64_t segment, next_offset, last_number;
} walk;

static int check_walk(void *opaque, mv_journal_rec *rec, GError **error)
{
	walk *w = opaque;
	if (rec->segment != w->segment) {
		w->segment = rec->segment;
		w->next_offset = rec->offset == 0 ? 0 : SEGMENT_HEADER_BYTES;
	}
	/* (an empty file's missing header is reported as 0 bytes at 0) */
	if (rec->offset != w->next_offset || rec->length < (rec->offset == 0 ? 0 : 1)) {
		fprintf(stderr, "segment %lld: offset %lld length %lld, expected offset %lld\n", (long long)rec->segment,
		        (long long)rec->offset, (long long)rec->length, (long long)w->next_offset);
		fail("the journal walk skipped or repeated bytes", NULL);
	}
	w->next_offset = rec->offset == 0 ? SEGMENT_HEADER_BYTES : rec->offset + rec->length;
	if (rec->ok && (rec->type < MV_RECORD_MESSAGE || rec->type > MV_RECORD_TYPE_MAX || !rec->meta))
		fail("the journal walk read a record of no known type or without metadata", NULL);
	if (!rec->ok && !rec->problem)
		fail("the journal walk reported unreadable bytes without a problem", NULL);
	if (rec->ok && rec->type == MV_RECORD_BATCH)
		w->last_number = 0;
	if ((rec->type == MV_RECORD_MESSAGE || rec->type == MV_RECORD_REFERENCE) && rec->number > 0) {
		if (w->last_number && rec->number != w->last_number + 1)
			fail("the journal walk numbered records out of sequence", NULL);
		w->last_number = rec->number;
	} else if (rec->type == MV_RECORD_MESSAGE || rec->type == MV_RECORD_REFERENCE || rec->type == 0) {
		w->last_number = 0;
	}
	return 0;
}

static void walk_segments(bool after_recovery)
{
	GError *err = NULL;
	GArray *segs = mv_journal_segments_from_dir(paths.content_dir, &err);
	if (!segs)
		fail("list segments", err);
	mv_store *shell = mv_store_new(1, &paths, fuzz_key, MV_STORE_READ);
	walk w = { .segment = -1 };
	if (mv_journal_scan(shell, segs, NULL, check_walk, &w, &err) < 0)
		fail("the journal walk", err);
	for (guint i = 0; i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		if (sg->valid_end > MAX(sg->end, SEGMENT_HEADER_BYTES))
			fail("the journal walk's valid end lies past the segment's end", NULL);
		/* No segment keeps bytes after its last whole record. */
		if (after_recovery && sg->valid_end < sg->end) {
			fprintf(stderr, "segment %lld: %lld bytes, whole records up to %lld\n", (long long)sg->id,
			        (long long)sg->end, (long long)sg->valid_end);
			fail("a torn tail survived RecoverStore", NULL);
		}
	}
	mv_store_close(&shell);
	g_array_free(segs, TRUE);
}

static void verify_recovered(void)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &paths, fuzz_key, MV_STORE_WRITE, &err);
	if (!s)
		fail("open the recovered store", err);
	json_t *report = NULL;
	if (mv_store_verify(s, true, NULL, &report, &err) < 0)
		fail("VerifyStore on the recovered store", err);
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(report, "problems"), i, p) {
		const char *kind = json_string_value(json_object_get(p, "kind"));
		if (!kind)
			fail("a VerifyStore problem without a kind", NULL);
		if (!strcmp(kind, "notIndexed") || !strcmp(kind, "indexedNotLive") || !strcmp(kind, "indexDamaged")) {
			fprintf(stderr, "%s: %s\n", kind, json_string_value(json_object_get(p, "detail")));
			fail("the index RecoverStore rebuilt disagrees with its db", NULL);
		}
	}
	json_decref(report);
	mv_store_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n == 0)
		return 0;
	recipe r = { .d = d, .n = n };
	build(&r);
	clear_content();
	write_segments(&r);
	walk_segments(false);
	GError *err = NULL;
	json_t *report = NULL;
	if (mv_store_recover(1, &paths, fuzz_key, d[0] & 1, NULL, &report, &err) < 0)
		fail("RecoverStore", err);
	check_recover_report(&r, report);
	json_decref(report);
	walk_segments(true);
	verify_recovered();
	for (int i = 0; i < r.segs; i++)
		g_byte_array_unref(r.seg[i]);
	return 0;
}
