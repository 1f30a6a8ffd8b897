/* Unit tests: a store's zstd dictionary (store/dictionary.c, format 4).
 *
 * A record compressed with a dictionary decodes only with it, and says
 * which one it lacks; a store trains one once enough messages are stored,
 * reads every message back through it, recovers it from content/ alone,
 * and a damaged dictionary record costs exactly the messages compressed
 * with it — named by VerifyStore and RecoverStore, never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/dictionary.h"
#include "store/journal.h"
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"

#define TRAIN_AFTER 100
#define BATCHES 6
#define PER_BATCH 40

/* Message n: the same header shapes with varying names, words and ids, as
 * mail is; bodies of a few hundred words from a small vocabulary. */
static GByteArray *make_message(int n)
{
	static const char *words[] = { "archive", "meeting", "invoice", "please", "review", "attached", "budget",
	                               "project", "tomorrow", "thanks", "regards", "schedule", "update", "report" };
	GRand *r = g_rand_new_with_seed((guint32)n);
	GString *m = g_string_new(NULL);
	g_string_append_printf(m, "Return-Path: <user%d@example.org>\r\nReceived: from mail%d.example.org (mail%d.example.org"
	                       " [10.0.%d.%d]) by mx.example.com with ESMTP id %08x\r\n\tfor <team@example.com>;"
	                       " Tue, %d Aug 2002 10:%02d:00 +0100\r\nFrom: User %d <user%d@example.org>\r\n"
	                       "To: team@example.com\r\nSubject: %s %s %d\r\nDate: Tue, %d Aug 2002 10:%02d:00 +0100\r\n"
	                       "Message-ID: <%08x.%d@example.org>\r\nMIME-Version: 1.0\r\n"
	                       "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
	                       n % 37, n % 5, n % 5, n % 200, n % 250, g_rand_int(r), n % 28 + 1, n % 60, n % 37, n % 37,
	                       words[n % 14], words[(n / 14) % 14], n, n % 28 + 1, n % 60, g_rand_int(r), n);
	int count = 60 + g_rand_int_range(r, 0, 200);
	for (int i = 0; i < count; i++)
		g_string_append_printf(m, "%s%s", words[g_rand_int_range(r, 0, 14)], i % 12 == 11 ? "\r\n" : " ");
	g_string_append(m, "\r\n-- \r\nThe Example Organisation, 1 Example Street\r\n");
	g_rand_free(r);
	GByteArray *b = g_byte_array_new();
	g_byte_array_append(b, (const uint8_t *)m->str, (guint)m->len);
	g_string_free(m, TRUE);
	return b;
}

/* ---- records ---------------------------------------------------------------------------------- */

/* A dictionary of id trained on 300 messages. */
static GBytes *train_bytes(unsigned id)
{
	GByteArray *samples = g_byte_array_new();
	GArray *sizes = g_array_new(FALSE, FALSE, sizeof(size_t));
	for (int n = 0; n < 300; n++) {
		GByteArray *m = make_message(n);
		g_byte_array_append(samples, m->data, m->len);
		size_t len = m->len;
		g_array_append_val(sizes, len);
		g_byte_array_unref(m);
	}
	GError *err = NULL;
	GBytes *bytes = mv_dict_train(samples->data, (const size_t *)(void *)sizes->data, sizes->len, id, 1, &err);
	if (!bytes)
		fail_msg("training: %s", err->message);
	g_byte_array_unref(samples);
	g_array_free(sizes, TRUE);
	return bytes;
}

static mv_dict *trained_dict(unsigned id)
{
	GBytes *bytes = train_bytes(id);
	size_t len;
	const uint8_t *data = g_bytes_get_data(bytes, &len);
	GError *err = NULL;
	mv_dict *d = mv_dict_load(id, data, len, &err);
	if (!d)
		fail_msg("loading: %s", err->message);
	g_bytes_unref(bytes);
	return d;
}

/* Compressed with the dictionary: smaller, decodes through a table that
 * has it, to the same bytes. */
static void test_record_with_dictionary(void **state)
{
	(void)state;
	mv_dict *d = trained_dict(4242424);
	assert_int_equal(mv_dict_id(d), 4242424);
	GByteArray *m = make_message(1000), *plain_rec = g_byte_array_new(), *dict_rec = g_byte_array_new();
	const char meta[] = "{\"v\":1}";
	GError *err = NULL;
	assert_int_equal(mv_record_encode(key, MV_RECORD_MESSAGE, (const uint8_t *)meta, strlen(meta), m->data, m->len, 1,
	                                  plain_rec, &err), 0);
	assert_int_equal(mv_record_encode_dict(key, MV_RECORD_MESSAGE, (const uint8_t *)meta, strlen(meta), m->data, m->len,
	                                       1, mv_dict_cdict(d, 1), dict_rec, &err), 0);
	assert_true(dict_rec->len < plain_rec->len * 3 / 4);

	GHashTable *table = mv_dict_table_new();
	g_hash_table_insert(table, GUINT_TO_POINTER(mv_dict_id(d)), mv_dict_ref(d));
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *gm, *body;
	size_t ml, bl;
	unsigned missing = 99;
	assert_int_equal(mv_record_decode_dict(key, mv_dict_table_lookup, table, dict_rec->data, dict_rec->len, &h, &plain,
	                                       &gm, &ml, &body, &bl, &missing, &err), 0);
	assert_int_equal(missing, 0);
	assert_int_equal(bl, m->len);
	assert_memory_equal(body, m->data, bl);
	g_byte_array_unref(plain);
	/* A record without a dictionary decodes through the table too. */
	assert_int_equal(mv_record_decode_dict(key, mv_dict_table_lookup, table, plain_rec->data, plain_rec->len, &h, &plain,
	                                       &gm, &ml, &body, &bl, &missing, &err), 0);
	assert_memory_equal(body, m->data, bl);
	g_byte_array_unref(plain);

	g_hash_table_destroy(table);
	mv_dict_unref(d);
	g_byte_array_unref(m);
	g_byte_array_unref(plain_rec);
	g_byte_array_unref(dict_rec);
}

/* Without its dictionary a record fails with NOT_FOUND, naming the id. */
static void test_record_missing_dictionary(void **state)
{
	(void)state;
	mv_dict *d = trained_dict(777777);
	GByteArray *m = make_message(7), *rec = g_byte_array_new();
	GError *err = NULL;
	assert_int_equal(mv_record_encode_dict(key, MV_RECORD_MESSAGE, (const uint8_t *)"{}", 2, m->data, m->len, 1,
	                                       mv_dict_cdict(d, 1), rec, &err), 0);
	GHashTable *empty = mv_dict_table_new();
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *gm, *body;
	size_t ml, bl;
	unsigned missing = 0;
	assert_int_equal(mv_record_decode_dict(key, mv_dict_table_lookup, empty, rec->data, rec->len, &h, &plain, &gm, &ml,
	                                       &body, &bl, &missing, &err), -1);
	assert_int_equal(missing, 777777);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND));
	assert_non_null(strstr(err->message, "dictionary 777777"));
	g_clear_error(&err);
	/* The plain decoder knows no dictionaries at all. */
	assert_int_equal(mv_record_decode(key, rec->data, rec->len, &h, &plain, &gm, &ml, &body, &bl, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND));
	g_clear_error(&err);
	g_hash_table_destroy(empty);
	mv_dict_unref(d);
	g_byte_array_unref(m);
	g_byte_array_unref(rec);
}

/* Bytes that are not a dictionary of the id named are refused. */
static void test_dictionary_load_checks(void **state)
{
	(void)state;
	GError *err = NULL;
	const uint8_t junk[] = "not a dictionary at all";
	assert_null(mv_dict_load(55555, junk, sizeof junk, &err));
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CORRUPT));
	g_clear_error(&err);
	GBytes *bytes = train_bytes(55555);
	size_t len;
	const uint8_t *data = g_bytes_get_data(bytes, &len);
	assert_null(mv_dict_load(55556, data, len, &err));   /* a real dictionary, under another id */
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_CORRUPT));
	g_clear_error(&err);
	mv_dict *ok = mv_dict_load(55555, data, len, &err);
	assert_non_null(ok);
	mv_dict_unref(ok);
	g_bytes_unref(bytes);
}

/* ---- a store ---------------------------------------------------------------------------------- */

typedef struct stored {
	int64_t number;
	GByteArray *raw;
} stored;

/* BATCHES batches of PER_BATCH messages into the fixture's store (which
 * holds one message already), training after TRAIN_AFTER. */
static GArray *fill_store(fixture *f)
{
	g_setenv("MAILVAULT_DICT_TRAIN_AFTER", G_STRINGIFY(TRAIN_AFTER), TRUE);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	GArray *all = g_array_new(FALSE, FALSE, sizeof(stored));
	for (int b = 0; b < BATCHES; b++) {
		mv_store_item items[PER_BATCH];
		GByteArray *raws[PER_BATCH];
		for (int i = 0; i < PER_BATCH; i++) {
			raws[i] = make_message(b * PER_BATCH + i);
			items[i] = (mv_store_item){ .archive = "alice", .folder = "Inbox", .raw = raws[i]->data,
			                            .raw_len = raws[i]->len, .archived_at = 1700000000, .source = "file",
			                            .origin = "test", .subject = "s", .from = "a@example.org", .text = "t",
			                            .date = 1700000000 + b * PER_BATCH + i };
			crypto_generichash(items[i].hash, sizeof items[i].hash, raws[i]->data, raws[i]->len, NULL, 0);
		}
		assert_int_equal(mv_store_add_batch(s, items, PER_BATCH, 1, &err), 0);
		for (int i = 0; i < PER_BATCH; i++) {
			stored st = { items[i].number, raws[i] };
			assert_true(st.number > 0);
			g_array_append_val(all, st);
		}
	}
	assert_int_equal(mv_store_sync(s, &err), 0);
	int64_t dicts = 0;
	assert_int_equal(mv_store_int_query(mv_store_db(s), "SELECT count(*) FROM dictionaries", "count", &dicts, &err), 0);
	assert_int_equal(dicts, 1);
	mv_store_close(&s);
	g_unsetenv("MAILVAULT_DICT_TRAIN_AFTER");
	return all;
}

static void free_stored(GArray *all)
{
	for (guint i = 0; i < all->len; i++)
		g_byte_array_unref(g_array_index(all, stored, i).raw);
	g_array_free(all, TRUE);
}

/* Every message read back byte-exact through a fresh handle; returns how
 * many failed, each failure's error kept in *first_error_r (first one). */
static int read_all(fixture *f, GArray *all, GError **first_error_r)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_non_null(s);
	int failed = 0;
	for (guint i = 0; i < all->len; i++) {
		stored *st = &g_array_index(all, stored, i);
		GByteArray *raw = NULL;
		if (mv_store_read_message(s, st->number, &raw, &err) < 0) {
			failed++;
			if (first_error_r && !*first_error_r)
				*first_error_r = g_steal_pointer(&err);
			g_clear_error(&err);
			continue;
		}
		assert_int_equal(raw->len, st->raw->len);
		assert_memory_equal(raw->data, st->raw->data, raw->len);
		g_byte_array_unref(raw);
	}
	mv_store_close(&s);
	return failed;
}

/* Where the dictionary record starts in segment 1 (walking the plain
 * record headers), 0 if there is none. */
static int64_t dictionary_record_offset(fixture *f, size_t *len_r)
{
	char *path = g_build_filename(f->paths.content_dir, "seg-00000001.mvs", NULL);
	gchar *data = NULL;
	gsize size = 0;
	assert_true(g_file_get_contents(path, &data, &size, NULL));
	g_free(path);
	int64_t found = 0;
	for (size_t pos = 16; pos + MV_RECORD_HEADER_BYTES <= size;) {
		mv_record_header h;
		assert_int_equal(mv_record_parse_header((const uint8_t *)data + pos, size - pos, &h, NULL), 0);
		if (h.type == MV_RECORD_DICTIONARY) {
			found = (int64_t)pos;
			*len_r = MV_RECORD_HEADER_BYTES + h.cipher_len;
			break;
		}
		pos += MV_RECORD_HEADER_BYTES + h.cipher_len;
	}
	g_free(data);
	return found;
}

static void flip(fixture *f, int64_t offset)
{
	char *path = g_build_filename(f->paths.content_dir, "seg-00000001.mvs", NULL);
	FILE *file = fopen(path, "r+b");
	assert_non_null(file);
	fseek(file, (long)offset, SEEK_SET);
	int c = fgetc(file);
	fseek(file, (long)offset, SEEK_SET);
	fputc(c ^ 0x40, file);
	fclose(file);
	g_free(path);
}

/* Trained once, used by the batches after, read back, recovered from content/. */
static void test_store_trains_reads_recovers(void **state)
{
	fixture *f = *state;
	GArray *all = fill_store(f);
	assert_int_equal(read_all(f, all, NULL), 0);
	size_t len = 0;
	assert_true(dictionary_record_offset(f, &len) > 0);
	assert_true(len > MV_RECORD_HEADER_BYTES + 1024);

	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	json_t *report = NULL;
	assert_int_equal(mv_store_verify(s, true, NULL, &report, &err), 0);
	assert_true(json_is_true(json_object_get(report, "clean")));
	json_decref(report);
	mv_store_close(&s);

	/* db/ and index/ gone: the dictionary comes back from content/. */
	char *dbp = mv_store_db_file(&f->paths), *ixp = mv_store_index_file(&f->paths);
	mv_store_remove_db_files(dbp);
	mv_store_remove_db_files(ixp);
	g_free(dbp);
	g_free(ixp);
	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 1 + BATCHES * PER_BATCH);
	assert_int_equal(json_integer_value(json_object_get(report, "problemCount")), 0);
	json_decref(report);
	assert_int_equal(read_all(f, all, NULL), 0);
	free_stored(all);
}

/* The db's copy lost: a read says which dictionary it lacks; VerifyStore
 * names the db's loss only if content/ lacks it too (here it does not). */
static void test_store_read_without_dictionary_row(void **state)
{
	fixture *f = *state;
	GArray *all = fill_store(f);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_int_equal(mv_sql_exec(mv_store_db(s), "DELETE FROM dictionaries", &err), 0);
	mv_store_close(&s);
	GError *first = NULL;
	int failed = read_all(f, all, &first);
	assert_true(failed > 0 && failed < (int)all->len);   /* the messages before training still read */
	assert_non_null(first);
	assert_true(g_error_matches(first, MV_ERROR, MV_ERR_NOT_FOUND));
	assert_non_null(strstr(first->message, "zstd dictionary"));
	g_error_free(first);
	free_stored(all);
}

/* A damaged dictionary record: VerifyStore and RecoverStore name the
 * messages compressed with it; the others recover byte-exact. */
static void test_store_damaged_dictionary_record(void **state)
{
	fixture *f = *state;
	GArray *all = fill_store(f);
	size_t len = 0;
	int64_t at = dictionary_record_offset(f, &len);
	assert_true(at > 0);
	flip(f, at + MV_RECORD_HEADER_BYTES + (int64_t)len / 2);

	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	json_t *report = NULL;
	assert_int_equal(mv_store_verify(s, false, NULL, &report, &err), 0);
	assert_false(json_is_true(json_object_get(report, "clean")));
	int dictionary_problems = 0;
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(report, "problems"), i, p)
		dictionary_problems += strcmp(json_string_value(json_object_get(p, "kind")), "dictionaryMissing") == 0;
	assert_true(dictionary_problems > 1);   /* the db's row, and each message compressed with it */
	json_decref(report);
	mv_store_close(&s);

	assert_int_equal(mv_store_recover(1, &f->paths, key, false, NULL, &report, &err), 0);
	int64_t recovered = json_integer_value(json_object_get(report, "messagesRecovered"));
	int64_t damaged = json_integer_value(json_object_get(report, "damagedRecords"));
	assert_true(recovered >= TRAIN_AFTER && recovered < 1 + BATCHES * PER_BATCH);
	assert_int_equal(recovered + damaged, 1 + BATCHES * PER_BATCH + 1);   /* + the dictionary record itself */
	int named = 0;
	json_array_foreach(json_object_get(report, "problems"), i, p)
		if (strcmp(json_string_value(json_object_get(p, "kind")), "dictionaryMissing") == 0)
			named += (int)json_array_size(json_object_get(p, "messageIds"));
	assert_int_equal(named, damaged - 1);
	json_decref(report);

	/* What was recovered reads byte-exact; the rest is gone, not garbled. */
	s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	int readable = 0;
	for (guint k = 0; k < all->len; k++) {
		stored *st = &g_array_index(all, stored, k);
		GByteArray *raw = NULL;
		if (mv_store_read_message(s, st->number, &raw, &err) < 0) {
			assert_true(g_error_matches(err, MV_ERROR, MV_ERR_NOT_FOUND));
			g_clear_error(&err);
			continue;
		}
		assert_int_equal(raw->len, st->raw->len);
		assert_memory_equal(raw->data, st->raw->data, raw->len);
		g_byte_array_unref(raw);
		readable++;
	}
	assert_int_equal(readable + 1, recovered);   /* + the fixture's own message */
	mv_store_close(&s);
	free_stored(all);
}

int main(void)
{
	randombytes_buf(key, sizeof key);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_with_dictionary),
		cmocka_unit_test(test_record_missing_dictionary),
		cmocka_unit_test(test_dictionary_load_checks),
		cmocka_unit_test_setup_teardown(test_store_trains_reads_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_read_without_dictionary_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_damaged_dictionary_record, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
