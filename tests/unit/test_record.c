/* Unit tests: record encoding, decoding and tamper detection; key wrapping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/record.h"
#include <sodium.h>
#include <string.h>

static uint8_t key[MV_KEY_BYTES];

static GByteArray *encode(const char *meta, const char *body)
{
	GByteArray *out = g_byte_array_new();
	GError *err = NULL;
	assert_int_equal(mv_record_encode(key, MV_RECORD_MESSAGE, (const uint8_t *)meta, strlen(meta),
	                                  (const uint8_t *)body, strlen(body), 3, out, &err), 0);
	assert_null(err);
	return out;
}

static void test_roundtrip(void **state)
{
	GByteArray *rec = encode("{\"a\":1}", "Subject: hi\r\n\r\nbody\r\n");
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *meta, *body;
	size_t ml, bl;
	GError *err = NULL;
	assert_int_equal(mv_record_decode(key, rec->data, rec->len, &h, &plain, &meta, &ml, &body, &bl, &err), 0);
	assert_int_equal(h.type, MV_RECORD_MESSAGE);
	assert_int_equal(h.version, MV_RECORD_VERSION);
	assert_int_equal(ml, 7);
	assert_memory_equal(meta, "{\"a\":1}", 7);
	assert_int_equal(bl, strlen("Subject: hi\r\n\r\nbody\r\n"));
	assert_memory_equal(body, "Subject: hi\r\n\r\nbody\r\n", bl);
	g_byte_array_unref(plain);
	g_byte_array_unref(rec);
}

static void test_empty_body(void **state)
{
	GByteArray *rec = encode("{}", "");
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *meta, *body;
	size_t ml, bl;
	assert_int_equal(mv_record_decode(key, rec->data, rec->len, &h, &plain, &meta, &ml, &body, &bl, NULL), 0);
	assert_int_equal(bl, 0);
	g_byte_array_unref(plain);
	g_byte_array_unref(rec);
}

/* Every single flipped bit anywhere in the record is detected. */
static void test_tamper_every_byte(void **state)
{
	GByteArray *rec = encode("{\"hash\":\"x\"}", "From: a@b\n\nsome text that compresses some text\n");
	for (guint i = 0; i < rec->len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			rec->data[i] ^= (uint8_t)(1u << bit);
			mv_record_header h;
			GByteArray *plain = NULL;
			const uint8_t *meta, *body;
			size_t ml, bl;
			GError *err = NULL;
			int rc = mv_record_decode(key, rec->data, rec->len, &h, &plain, &meta, &ml, &body, &bl, &err);
			assert_int_equal(rc, -1);
			assert_non_null(err);
			assert_int_equal(err->code, MV_ERR_CORRUPT);
			g_error_free(err);
			rec->data[i] ^= (uint8_t)(1u << bit);
		}
	}
	g_byte_array_unref(rec);
}

static void test_wrong_key(void **state)
{
	GByteArray *rec = encode("{}", "x");
	uint8_t other[MV_KEY_BYTES];
	memcpy(other, key, sizeof other);
	other[0] ^= 1;
	mv_record_header h;
	GByteArray *plain = NULL;
	const uint8_t *meta, *body;
	size_t ml, bl;
	GError *err = NULL;
	assert_int_equal(mv_record_decode(other, rec->data, rec->len, &h, &plain, &meta, &ml, &body, &bl, &err), -1);
	assert_non_null(strstr(err->message, "authentication failed"));
	g_error_free(err);
	g_byte_array_unref(rec);
}

static void test_truncated(void **state)
{
	GByteArray *rec = encode("{}", "hello");
	for (guint len = 0; len < rec->len; len++) {
		mv_record_header h;
		GByteArray *plain = NULL;
		const uint8_t *meta, *body;
		size_t ml, bl;
		assert_int_equal(mv_record_decode(key, rec->data, len, &h, &plain, &meta, &ml, &body, &bl, NULL), -1);
	}
	g_byte_array_unref(rec);
}

static void test_header_checks(void **state)
{
	GByteArray *rec = encode("{}", "hello");
	mv_record_header h;
	assert_int_equal(mv_record_parse_header(rec->data, rec->len, &h, NULL), 0);
	rec->data[4] = 99; /* version from the future */
	GError *err = NULL;
	assert_int_equal(mv_record_parse_header(rec->data, rec->len, &h, &err), -1);
	assert_non_null(strstr(err->message, "version"));
	g_error_free(err);
	g_byte_array_unref(rec);
}

static void test_key_wrap(void **state)
{
	uint8_t kek[MV_KEY_BYTES], data[MV_KEY_BYTES], back[MV_KEY_BYTES];
	randombytes_buf(kek, sizeof kek);
	randombytes_buf(data, sizeof data);
	GByteArray *w = mv_key_wrap(kek, data);
	assert_int_equal(mv_key_unwrap(kek, w->data, w->len, back, NULL), 0);
	assert_memory_equal(back, data, sizeof data);
	kek[3] ^= 0x40;
	assert_int_equal(mv_key_unwrap(kek, w->data, w->len, back, NULL), -1);
	g_byte_array_unref(w);
}

static void test_recovery_key(void **state)
{
	char *k = mv_recovery_key_new();
	assert_int_equal(strlen(k), 32 + 7);
	char *typed = g_ascii_strdown(k, -1);
	for (char *p = typed; *p; p++)
		if (*p == '-')
			*p = ' ';
	char *norm = mv_recovery_key_normalize(typed);
	assert_string_equal(norm, k);
	uint8_t salt[16] = { 1 }, a[MV_KEY_BYTES], b[MV_KEY_BYTES];
	assert_int_equal(mv_key_from_recovery(k, salt, a, NULL), 0);
	assert_int_equal(mv_key_from_recovery(typed, salt, b, NULL), 0);
	assert_memory_equal(a, b, sizeof a);
	g_free(norm);
	g_free(typed);
	g_free(k);
}

/* The order key orders newest first by the second, the FTS rowid by the
 * hour; both give the message number back. */
static void test_docid(void **state)
{
	(void)state;
	const int64_t hour = MV_INDEX_DATE_BUCKET;
	int64_t a = mv_order_key(1000, 7), b = mv_order_key(1001, 3), c = mv_order_key(1001, 4);
	assert_true(b < c && c < a);
	assert_int_equal(mv_index_docid_number(a), 7);
	assert_int_equal(mv_index_docid_number(mv_order_key(0, MV_STORE_MAX_MESSAGE_NUMBER)), MV_STORE_MAX_MESSAGE_NUMBER);
	assert_int_equal(mv_order_key(-5, 1), mv_order_key(0, 1));
	assert_true(mv_order_key(INT64_MAX, 1) >= 0);
	assert_int_equal(mv_order_key(INT64_MAX, 1), mv_order_key(MV_INDEX_MAX_DATE, 1));
	/* every key of date d lies in [key(d, 0), key(d - 1, 0)) */
	assert_true(mv_order_key(1001, MV_STORE_MAX_MESSAGE_NUMBER) < mv_order_key(1000, 0));
	assert_int_equal(mv_index_docid_in(1, 123456, 9), mv_order_key(123456, 9));
	assert_int_equal(mv_order_key_date(mv_order_key(123456, 9)), 123456);
	assert_int_equal(mv_order_key_date(mv_order_key(-5, 9)), 0);

	/* The rowid: a newer hour first; within an hour, by number whatever the time. */
	int64_t d = 480000 * hour;
	int64_t early = mv_index_docid(d + 60, 9), late = mv_index_docid(d + hour - 1, 3);
	int64_t next_hour = mv_index_docid(d + hour, MV_STORE_MAX_MESSAGE_NUMBER);
	assert_true(late < early && next_hour < late);
	assert_int_equal(mv_index_docid(d + 60, 9) - mv_index_docid(d + 1800, 2), 7);
	assert_int_equal(mv_index_docid_number(early), 9);
	assert_int_equal(mv_index_docid_number(next_hour), MV_STORE_MAX_MESSAGE_NUMBER);
	/* every rowid of the hour holding t lies in [docid(t, 0), docid(t - hour, 0)) */
	assert_true(mv_index_docid(d + hour - 1, MV_STORE_MAX_MESSAGE_NUMBER) < mv_index_docid(d - 1, 0));
	assert_int_equal(mv_index_docid(d, 0), mv_index_docid(d + hour - 1, 0));
	assert_int_equal(mv_index_docid(-5, 1), mv_index_docid(0, 1));
	assert_int_equal(mv_index_docid(INT64_MAX, 1), mv_index_docid(MV_INDEX_MAX_DATE, 1));
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof key);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_tamper_every_byte),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_header_checks),
		cmocka_unit_test(test_key_wrap),
		cmocka_unit_test(test_recovery_key),
		cmocka_unit_test(test_docid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
