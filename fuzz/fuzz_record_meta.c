/* fuzz_record_meta: libFuzzer target for the metadata JSON of content/'s
 * records, what RecoverStore turns into rows and VerifyStore holds against
 * them: the content hash it names (mv_journal_meta_hash,
 * mv_journal_body_matches in store/journal.c), the numbers the journal
 * walk takes from it (a batch marker's first, a tombstone's number) and,
 * through mv_store_recover itself, every reader of it in store/recover.c —
 * archive, folder, dates and flags into folder, content and message rows
 * (also for records whose number was lost), a tombstone's number and
 * reason, a restore's numbers, a folder move's names.  Kept apart from
 * fuzz_journal, which reaches the same code, so that every mutation lands
 * in the JSON rather than in a segment's layout.
 *
 * The input is the metadata text alone.  "$HASH" in it stands for the hex
 * BLAKE2b of a message body the segment holds (the body of the message
 * record it is carried by or follows), so that an input can name content
 * that is there and get past the hash check.  Records carrying it are
 * encrypted here with the store's key (no input gets past the AEAD) into
 * one segment:
 *   a batch marker {"first":1} and message 1 with the metadata the store
 *   writes (alice/Inbox); then, each with the input as its metadata, a
 *   message and a reference (2, 3), a tombstone, a restore, a folder move,
 *   a batch marker, a message; unreadable bytes; a message and a reference
 *   whose numbers are lost with them.
 * One store is created per process (mv_store_create into a mkdtemp
 * directory, on tmpfs when there is one, a fixed data key); per input its
 * segment is rewritten and walked, and when the input is JSON RecoverStore
 * and VerifyStore run on it (about 20 ms an input under ASan; metadata
 * that does not parse only makes records damaged, which fuzz_journal
 * covers, so those inputs cost a walk alone).
 *
 * Besides crashes, leaks and undefined behaviour: mv_journal_meta_hash
 * must accept exactly a "hash" string of 64 hex digits (read, as every
 * field of the metadata is, as a C string) and return its bytes, and
 * mv_journal_body_matches exactly when those are the body's BLAKE2b; the
 * walk reads a record as readable exactly when its metadata is JSON and
 * numbers records as the batch markers and the tombstone's metadata say;
 * RecoverStore must succeed, its problems being its damaged records, and
 * VerifyStore must succeed on what it left. */
#include "store/journal.h"
#include "fuzz_store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static const char body_a[] = "Return-Path: <a@example.org>\r\nFrom: Alice <a@example.org>\r\nTo: b@example.org\r\n"
                             "Subject: first\r\nDate: Mon, 2 Sep 2002 10:00:00 +0000\r\nMessage-ID: <a1@example.org>\r\n"
                             "\r\nThe first message's body.\r\n";
static const char body_b[] = "From: Bob <b@example.org>\r\nTo: a@example.org\r\nSubject: =?UTF-8?Q?R=C3=A9ponse?=\r\n"
                             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--x\r\n"
                             "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
                             "Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAAA\r\n--x--\r\n";
static const char body_c[] = "Subject: third\n\nplain LF-only body\n";

static mv_store_paths paths;
static char *segment_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_store_create("fuzz_record_meta", &paths);
	segment_path = g_build_filename(paths.content_dir, "seg-00000001.mvs", NULL);
	return 0;
}

static void body_hash(const char *body, uint8_t out[MV_HASH_BYTES])
{
	crypto_generichash(out, MV_HASH_BYTES, (const uint8_t *)body, strlen(body), NULL, 0);
}

/* The input with every "$HASH" replaced by the hex hash of body. */
static GString *expand(const uint8_t *d, size_t n, const char *body)
{
	static const char mark[] = "$HASH";
	uint8_t h[MV_HASH_BYTES];
	body_hash(body, h);
	char *hex = mv_hex(h, MV_HASH_BYTES);
	GString *out = g_string_sized_new(n + 64);
	for (size_t i = 0; i < n;) {
		if (n - i >= sizeof mark - 1 && memcmp(d + i, mark, sizeof mark - 1) == 0) {
			g_string_append(out, hex);
			i += sizeof mark - 1;
		} else {
			g_string_append_c(out, (char)d[i++]);
		}
	}
	g_free(hex);
	return out;
}

/* ---- the hash a metadata names ----------------------------------------------------------------- */

static bool expected_hash(json_t *meta, uint8_t out[MV_HASH_BYTES])
{
	const char *hex = json_string_value(json_object_get(meta, "hash"));
	if (!hex || strlen(hex) != 2 * MV_HASH_BYTES)
		return false;
	for (size_t i = 0; i < MV_HASH_BYTES; i++) {
		char pair[3] = { hex[2 * i], hex[2 * i + 1], 0 };
		if (!g_ascii_isxdigit(pair[0]) || !g_ascii_isxdigit(pair[1]))
			return false;
		out[i] = (uint8_t)strtoul(pair, NULL, 16);
	}
	return true;
}

/* Returns the metadata parsed (as the message and reference records
 * carrying body B's hash see it), NULL when it is not JSON. */
static json_t *check_meta_hash(const uint8_t *d, size_t n)
{
	GString *text = expand(d, n, body_b);
	json_t *meta = json_loadb(text->str, text->len, 0, NULL);
	g_string_free(text, TRUE);
	if (!meta)
		return NULL;
	uint8_t want[MV_HASH_BYTES], got[MV_HASH_BYTES], body[MV_HASH_BYTES];
	bool valid = expected_hash(meta, want);
	if (mv_journal_meta_hash(meta, got) != valid || (valid && memcmp(want, got, sizeof want) != 0))
		fail("mv_journal_meta_hash read another hash than the metadata names", NULL);
	body_hash(body_b, body);
	mv_journal_rec r = { .ok = true, .type = MV_RECORD_MESSAGE, .meta = meta, .body = (const uint8_t *)body_b,
	                     .body_len = strlen(body_b) };
	if (mv_journal_body_matches(&r) != (valid && memcmp(want, body, sizeof want) == 0))
		fail("mv_journal_body_matches disagrees with the hash the metadata names", NULL);
	r.ok = false;
	if (mv_journal_body_matches(&r))
		fail("mv_journal_body_matches took an unreadable record's body", NULL);
	return meta;
}

/* ---- the metadata replayed by RecoverStore ---------------------------------------------------- */

static void add_record(GByteArray *seg, mv_record_type type, const char *meta, size_t meta_len, const char *body)
{
	GError *err = NULL;
	if (mv_record_encode(fuzz_key, type, (const uint8_t *)meta, meta_len, (const uint8_t *)body,
	                     body ? strlen(body) : 0, 1, seg, &err) < 0)
		fail("mv_record_encode", err);
}

static void add_input_record(GByteArray *seg, mv_record_type type, const uint8_t *d, size_t n, const char *hash_of,
                             const char *body)
{
	GString *meta = expand(d, n, hash_of);
	add_record(seg, type, meta->str, meta->len, body);
	g_string_free(meta, TRUE);
}

static GByteArray *build_segment(const uint8_t *d, size_t n)
{
	GByteArray *seg = g_byte_array_new();
	uint8_t hdr[SEGMENT_HEADER_BYTES] = { 0 };
	memcpy(hdr, SEGMENT_MAGIC, 8);
	hdr[8] = 1;
	g_byte_array_append(seg, hdr, sizeof hdr);

	static const char first[] = "{\"v\":1,\"first\":1}";
	add_record(seg, MV_RECORD_BATCH, first, strlen(first), NULL);
	uint8_t h[MV_HASH_BYTES];
	body_hash(body_a, h);
	char *hex = mv_hex(h, MV_HASH_BYTES);
	char *meta_a = g_strdup_printf("{\"v\":1,\"hash\":\"%s\",\"archive\":\"alice\",\"folder\":\"Inbox\","
	                               "\"archived_at\":1700000000,\"source\":\"file\",\"origin\":\"a.eml\","
	                               "\"mail_flags\":\"\",\"date\":1030960800,\"date_source\":1}", hex);
	add_record(seg, MV_RECORD_MESSAGE, meta_a, strlen(meta_a), body_a);
	g_free(meta_a);
	g_free(hex);

	add_input_record(seg, MV_RECORD_MESSAGE, d, n, body_b, body_b);
	add_input_record(seg, MV_RECORD_REFERENCE, d, n, body_b, NULL);
	add_input_record(seg, MV_RECORD_TOMBSTONE, d, n, body_b, NULL);
	add_input_record(seg, MV_RECORD_RESTORE, d, n, body_b, NULL);
	add_input_record(seg, MV_RECORD_FOLDER_MOVE, d, n, body_b, NULL);
	add_input_record(seg, MV_RECORD_BATCH, d, n, body_c, NULL);
	add_input_record(seg, MV_RECORD_MESSAGE, d, n, body_c, body_c);
	/* Unreadable bytes: the numbers of what follows are lost. */
	static const uint8_t junk[] = "MVR1 not a record header, damage between records";
	g_byte_array_append(seg, junk, sizeof junk - 1);
	add_input_record(seg, MV_RECORD_MESSAGE, d, n, body_a, body_a);
	add_input_record(seg, MV_RECORD_REFERENCE, d, n, body_a, NULL);
	return seg;
}

static json_int_t report_int(json_t *report, const char *key)
{
	json_t *v = json_object_get(report, key);
	if (!json_is_integer(v))
		fail(key, NULL);
	return json_integer_value(v);
}

/* ---- the numbers the walk reads from the metadata --------------------------------------------- */

typedef struct numbering {
	json_t *meta;   /* the input parsed, or NULL */
	int index;      /* of the record in build_segment's order */
} numbering;

static void expect_number(const mv_journal_rec *r, int64_t want, const char *what)
{
	if (r->number != want) {
		fprintf(stderr, "record %lld: number %lld, expected %lld\n", (long long)r->offset, (long long)r->number,
		        (long long)want);
		fail(what, NULL);
	}
}

/* The records in build_segment's order: batch, message 1, message and
 * reference (2, 3), tombstone, restore, folder move, batch, message, the
 * unreadable run, message and reference without numbers. */
static int check_numbering(void *opaque, mv_journal_rec *r, GError **error)
{
	numbering *c = opaque;
	int i = c->index++;
	bool parsed = c->meta != NULL;
	json_t *first = json_object_get(c->meta, "first"), *number = json_object_get(c->meta, "number");
	json_int_t f = json_is_integer(first) ? json_integer_value(first) : 0;
	if (i <= 8 && r->ok != (i <= 1 || parsed))
		fail("a record's metadata was read as JSON or not otherwise than json_loadb reads it", NULL);
	switch (i) {
	case 1: case 2: case 3:
		expect_number(r, i, "a record numbered otherwise than its batch marker says");
		break;
	case 4:
		expect_number(r, parsed ? (int64_t)json_integer_value(number) : 0,
		              "a tombstone's number is not the one its metadata names");
		break;
	case 8:
		/* A first number beyond what a store numbers is not believed
		 * (store/journal.c): numbering goes on from the last one. */
		expect_number(r, f > 0 && f <= MV_STORE_MAX_MESSAGE_NUMBER ? f : 4,
		              "a batch marker's first number was not taken as the next record's");
		break;
	case 9:
		if (r->ok || r->type != 0)
			fail("unreadable bytes read as a record", NULL);
		break;
	case 10: case 11:
		expect_number(r, 0, "a record after unreadable bytes kept a number");
		break;
	default:
		break;
	}
	return 0;
}

static void walk(json_t *meta)
{
	GError *err = NULL;
	GArray *segs = mv_journal_segments_from_dir(paths.content_dir, &err);
	if (!segs)
		fail("list segments", err);
	mv_store *shell = mv_store_new(1, &paths, fuzz_key, MV_STORE_READ);
	numbering c = { .meta = meta };
	if (mv_journal_scan(shell, segs, NULL, check_numbering, &c, &err) < 0)
		fail("the journal walk", err);
	if (c.index != 12)
		fail("the journal walk found another number of records than were written", NULL);
	mv_store_close(&shell);
	g_array_free(segs, TRUE);
}

static void replay(const uint8_t *d, size_t n, json_t *meta)
{
	GByteArray *seg = build_segment(d, n);
	GError *err = NULL;
	if (!g_file_set_contents(segment_path, (const char *)seg->data, seg->len, &err))
		fail("write the segment", err);
	g_byte_array_unref(seg);
	walk(meta);
	/* Metadata that is not JSON only makes every record but the first two
	 * damaged: RecoverStore has nothing of it to read (fuzz_journal
	 * covers damaged records), so the costly replay is kept for JSON. */
	if (!meta)
		return;

	json_t *report = NULL;
	if (mv_store_recover(1, &paths, fuzz_key, false, NULL, &report, &err) < 0)
		fail("RecoverStore", err);
	if (report_int(report, "problemCount") != report_int(report, "damagedRecords"))
		fail("RecoverStore's problems are not its damaged records", NULL);
	json_decref(report);

	mv_store *s = mv_store_open(1, &paths, fuzz_key, MV_STORE_WRITE, &err);
	if (!s)
		fail("open the recovered store", err);
	if (mv_store_verify(s, false, NULL, &report, &err) < 0)
		fail("VerifyStore on the recovered store", err);
	json_decref(report);
	mv_store_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	json_t *meta = check_meta_hash(d, n);
	replay(d, n, meta);
	json_decref(meta);
	return 0;
}
