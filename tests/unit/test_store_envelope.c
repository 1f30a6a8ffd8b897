/* Unit tests: a message's SMTP envelope as the store keeps it
 * (store/envelope.c) — in the record's meta, in the db's envelopes table,
 * and in the index's To column.
 *
 * The messages are handed to the store the way ingest hands them: every
 * parsed field from mv_parse_message, because a contentless delete rebuilds
 * the document from content/ and the db and must give FTS5 exactly the text
 * that was inserted; a hand-made item would differ from its own rebuild and
 * break the index for reasons that have nothing to do with the envelope.
 * The index is asked directly, with the token search's to: builds
 * (mv_address_token of the normalised address), on a connection of the
 * test's own.
 *
 * FTS5's integrity-check is run as VerifyStore runs it, but on a
 * contentless table it does not see a delete given the wrong text (tried:
 * a delete without the envelope's addresses leaves their postings and the
 * check still passes).  What proves a delete exact is that no token of the
 * deleted document finds it afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/internal.h"
#include "store/journal.h"
#include "mime/mime.h"
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"

/* ---- messages handed in as ingest hands them -------------------------------------------------- */

#define ARCHIVED_AT 1700000000

static const char raw_bcc[] = "From: Sender <sender@example.org>\r\n"
                              "To: Carol <carol@example.org>\r\n"
                              "Subject: quarterly numbers\r\n"
                              "Date: Tue, 14 Nov 2023 10:00:00 +0000\r\n"
                              "Message-ID: <bcc@example.org>\r\n"
                              "\r\n"
                              "the numbers are in\r\n";
/* Carol is in the headers too; Bcc.Person and the list member only in the envelope. */
static const char env_bcc_from[] = "bounces@example.org";
static const char env_bcc_to[] = "Carol@Example.org, Bcc.Person@Example.ORG, list-member@example.net";

static const char raw_plain[] = "From: dave@example.org\r\n"
                                "To: erin@example.org\r\n"
                                "Subject: no envelope\r\n"
                                "Date: Tue, 14 Nov 2023 11:00:00 +0000\r\n"
                                "\r\n"
                                "nothing special\r\n";

/* No To header at all: the envelope is the To column's only text. */
static const char raw_no_to[] = "From: frank@example.org\r\n"
                                "Subject: undisclosed\r\n"
                                "Date: Tue, 14 Nov 2023 12:00:00 +0000\r\n"
                                "\r\n"
                                "to nobody named\r\n";
static const char env_no_to_to[] = "only-envelope@example.net";

typedef struct test_message {
	mv_parsed *parsed;
	mv_store_item item;
} test_message;

static void message_init(test_message *m, const char *raw, const char *envelope_from, const char *envelope_to)
{
	size_t len = strlen(raw);
	mv_parsed *p = m->parsed = mv_parse_message((const uint8_t *)raw, len, ARCHIVED_AT);
	m->item = (mv_store_item){
		.archive = "alice", .folder = "Inbox", .raw = (const uint8_t *)raw, .raw_len = len,
		.archived_at = ARCHIVED_AT, .source = "smtp", .origin = "test", .envelope_from = envelope_from,
		.envelope_to = envelope_to, .mail_flags = "", .subject = p->subject, .from = p->from,
		.from_addrs = p->from_addrs, .to = p->to, .to_addrs = p->to_addrs, .cc = p->cc, .cc_addrs = p->cc_addrs,
		.bcc = p->bcc, .bcc_addrs = p->bcc_addrs, .message_id = p->message_id, .date = p->date,
		.date_source = (int)p->date_source, .parse_flags = p->flags, .has_attachment = p->has_attachment,
		.text = p->text->str, .attachment_names = p->attachment_names->str,
	};
	crypto_generichash(m->item.hash, sizeof m->item.hash, m->item.raw, m->item.raw_len, NULL, 0);
}

/* The three messages above in one batch, after the fixture's message 1:
 * numbers[0..2] are the message with a Bcc envelope, the one without, and
 * the one whose envelope has no sender and whose headers no To. */
static void add_three(const fixture *f, int64_t numbers[3])
{
	test_message m[3];
	message_init(&m[0], raw_bcc, env_bcc_from, env_bcc_to);
	message_init(&m[1], raw_plain, NULL, NULL);
	message_init(&m[2], raw_no_to, NULL, env_no_to_to);
	mv_store_item items[3] = { m[0].item, m[1].item, m[2].item };
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	if (mv_store_add_batch(s, items, 3, 1, &err) < 0 || mv_store_sync(s, &err) < 0)
		fail_msg("add_batch: %s", err->message);
	mv_store_close(&s);
	for (int i = 0; i < 3; i++) {
		assert_false(items[i].duplicate);
		numbers[i] = items[i].number;
		mv_parsed_free(m[i].parsed);
	}
	assert_int_equal(numbers[0], 2);
	assert_int_equal(numbers[1], 3);
	assert_int_equal(numbers[2], 4);
}

/* ---- what the db, the records and the index say ---------------------------------------------- */

static void assert_envelope(mv_store *s, int64_t num, const char *want_from, const char *want_to)
{
	char *from = (char *)"unset", *to = (char *)"unset";
	GError *err = NULL;
	if (mv_store_envelope_get(s, num, &from, &to, &err) < 0)
		fail_msg("envelope of %lld: %s", (long long)num, err->message);
	assert_null(err);
	if (!want_from) {
		assert_null(from);
		assert_null(to);
		return;
	}
	assert_non_null(from);
	assert_non_null(to);
	assert_string_equal(from, want_from);
	assert_string_equal(to, want_to);
	g_free(from);
	g_free(to);
}

static void assert_envelopes_of_three(const fixture *f, const int64_t numbers[3])
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_non_null(s);
	assert_envelope(s, 1, NULL, NULL);
	assert_envelope(s, numbers[0], env_bcc_from, env_bcc_to);
	assert_envelope(s, numbers[1], NULL, NULL);
	/* A recipients-only envelope keeps an empty sender, not NULL: NULLs
	 * mean "no envelope". */
	assert_envelope(s, numbers[2], "", env_no_to_to);
	/* The public name answers the same. */
	char *from = NULL, *to = NULL;
	assert_int_equal(mv_store_message_envelope(s, numbers[0], &from, &to, &err), 0);
	assert_string_equal(to, env_bcc_to);
	g_free(from);
	g_free(to);
	mv_store_close(&s);
}

static bool envelopes_table_exists(mv_store *s)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(mv_store_db(s),
	                                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='envelopes'", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

/* message number -> its record's "envelope" member as compact JSON, or ""
 * for a record without one. */
static int collect_envelope(void *opaque, mv_journal_rec *r, GError **error)
{
	(void)error;
	if (!r->ok || (r->type != MV_RECORD_MESSAGE && r->type != MV_RECORD_REFERENCE) || r->number <= 0)
		return 0;
	json_t *env = json_object_get(r->meta, "envelope");
	char *text = env ? json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	g_hash_table_insert(opaque, g_memdup2(&r->number, sizeof r->number), g_strdup(text ? text : ""));
	free(text);
	return 0;
}

static GHashTable *record_envelopes(const fixture *f)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_non_null(s);
	GArray *segs = mv_journal_segments_from_db(mv_store_db(s), &err);
	assert_non_null(segs);
	GHashTable *envelopes = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	if (mv_journal_scan(s, segs, NULL, collect_envelope, envelopes, &err) < 0)
		fail_msg("journal walk: %s", err->message);
	g_array_free(segs, TRUE);
	mv_store_close(&s);
	return envelopes;
}

static const char *record_envelope(GHashTable *envelopes, int64_t num)
{
	const char *text = g_hash_table_lookup(envelopes, &num);
	if (!text)
		fail_msg("no record names message %lld", (long long)num);
	return text;
}

/* FTS5's integrity-check is an INSERT: it needs a connection that may write. */
static sqlite3 *index_open(const fixture *f, bool readonly)
{
	char *file = g_build_filename(f->paths.index_dir, "index.sqlite", NULL);
	sqlite3 *ix = NULL;
	GError *err = NULL;
	if (mv_store_sql_open(file, key, MV_STORE_SQL_INDEX, true, false, readonly, &ix, &err) < 0)
		fail_msg("open %s: %s", file, err->message);
	g_free(file);
	return ix;
}

static gint int64_ascending(gconstpointer a, gconstpointer b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The message numbers whose To column holds address's token, as to:address
 * asks it (search.c: the To token of the normalised address), in a
 * string "2,4" (ascending) for readable failures. */
static char *to_matches(const fixture *f, const char *address)
{
	sqlite3 *ix = index_open(f, true);
	char *norm = mv_address_normalize(address);
	char *token = mv_address_token(norm, MV_ADDR_TO, MV_INDEX_FORMAT);
	GString *term = g_string_new(NULL);
	mv_index_append_token_term(term, "recipients", token, MV_INDEX_FORMAT);
	char *match = g_string_free(term, FALSE);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(ix, "SELECT rowid FROM fts WHERE fts MATCH ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	GArray *numbers = g_array_new(FALSE, FALSE, sizeof(int64_t));
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t n = mv_index_docid_number(sqlite3_column_int64(st, 0));
		g_array_append_val(numbers, n);
	}
	if (rc != SQLITE_DONE)
		fail_msg("to:%s: %s", address, sqlite3_errmsg(ix));
	sqlite3_finalize(st);
	sqlite3_close(ix);
	g_array_sort(numbers, int64_ascending);
	GString *out = g_string_new(NULL);
	for (guint i = 0; i < numbers->len; i++)
		g_string_append_printf(out, "%s%lld", i ? "," : "", (long long)g_array_index(numbers, int64_t, i));
	g_array_free(numbers, TRUE);
	g_free(match);
	g_free(token);
	g_free(norm);
	return g_string_free(out, FALSE);
}

static void assert_to_finds(const fixture *f, const char *address, const char *want)
{
	char *have = to_matches(f, address);
	if (strcmp(have, want) != 0)
		fail_msg("to:%s finds messages [%s], expected [%s]", address, have, want);
	g_free(have);
}

/* FTS5's own check of the index, as VerifyStore runs it (verify.c). */
static void assert_index_intact(const fixture *f)
{
	sqlite3 *ix = index_open(f, false);
	char *msg = NULL;
	if (sqlite3_exec(ix, "INSERT INTO fts(fts) VALUES('integrity-check')", NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("FTS5 integrity check: %s", msg ? msg : "failed");
	sqlite3_free(msg);
	sqlite3_close(ix);
}

static void delete_message(const fixture *f, int64_t num)
{
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	if (mv_store_delete_message(s, num, "test", &err) < 0 || mv_store_sync(s, &err) < 0)
		fail_msg("delete %lld: %s", (long long)num, err->message);
	mv_store_close(&s);
}

/* ---- the tests ---------------------------------------------------------------------------------- */

static void assert_recipients(const char *own, const char *envelope, const char *want)
{
	char *have = mv_store_index_recipients(own, envelope);
	if (strcmp(have, want) != 0)
		fail_msg("index recipients of (%s, %s): \"%s\", expected \"%s\"", own ? own : "NULL",
		         envelope ? envelope : "NULL", have, want);
	g_free(have);
}

/* The To column's address list: the message's own, then the envelope's
 * normalised and space-separated, nothing for an empty piece. */
static void test_index_recipients(void **state)
{
	(void)state;
	assert_recipients("carol@example.org", NULL, "carol@example.org");
	assert_recipients("carol@example.org", "", "carol@example.org");
	assert_recipients("carol@example.org dan@example.org", NULL, "carol@example.org dan@example.org");
	assert_recipients(NULL, NULL, "");
	assert_recipients("", "", "");
	assert_recipients("carol@example.org", "A@X.org, b@y.org", "carol@example.org a@x.org b@y.org");
	assert_recipients(NULL, "A@X.org, b@y.org", "a@x.org b@y.org");
	assert_recipients("", "A@X.org, b@y.org", "a@x.org b@y.org");
	assert_recipients("carol@example.org", " ,A@X.org,,  b@y.org , ", "carol@example.org a@x.org b@y.org");
	assert_recipients("carol@example.org", " , ,,", "carol@example.org");
	assert_recipients(NULL, ", ,", "");
	assert_recipients("carol@example.org", "<B@Y.org>", "carol@example.org b@y.org");
}

/* A store no message with an envelope came to has no table, and asking
 * it is no error. */
static void test_no_envelope(void **state)
{
	fixture *f = *state;
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	assert_envelope(s, 1, NULL, NULL);
	assert_envelope(s, 999, NULL, NULL);
	assert_false(envelopes_table_exists(s));
	mv_store_close(&s);
	GHashTable *records = record_envelopes(f);
	assert_string_equal(record_envelope(records, 1), "");
	g_hash_table_destroy(records);
}

/* Each message of a batch answers its own envelope, from the db and from
 * its record. */
static void test_batch_envelopes(void **state)
{
	fixture *f = *state;
	int64_t n[3];
	add_three(f, n);
	assert_envelopes_of_three(f, n);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_true(envelopes_table_exists(s));
	mv_store_close(&s);
	GHashTable *records = record_envelopes(f);
	assert_string_equal(record_envelope(records, 1), "");
	char *want = g_strdup_printf("{\"from\":\"%s\",\"to\":\"%s\"}", env_bcc_from, env_bcc_to);
	assert_string_equal(record_envelope(records, n[0]), want);
	g_free(want);
	assert_string_equal(record_envelope(records, n[1]), "");
	want = g_strdup_printf("{\"from\":\"\",\"to\":\"%s\"}", env_no_to_to);
	assert_string_equal(record_envelope(records, n[2]), want);
	g_free(want);
	g_hash_table_destroy(records);
}

/* to: finds a message by every envelope recipient; a delete takes all of
 * its document out again — the envelope's tokens too, which only a delete
 * given the same To text removes. */
static void test_index_and_delete(void **state)
{
	fixture *f = *state;
	int64_t n[3];
	add_three(f, n);
	assert_to_finds(f, "carol@example.org", "2");
	assert_to_finds(f, "Bcc.Person@Example.ORG", "2");
	assert_to_finds(f, "list-member@example.net", "2");
	assert_to_finds(f, "erin@example.org", "3");
	assert_to_finds(f, "only-envelope@example.net", "4");
	assert_to_finds(f, "bounces@example.org", "");   /* the sender is no recipient */
	assert_index_intact(f);

	delete_message(f, n[0]);
	assert_index_intact(f);
	assert_to_finds(f, "carol@example.org", "");
	assert_to_finds(f, "bcc.person@example.org", "");
	assert_to_finds(f, "list-member@example.net", "");
	assert_to_finds(f, "only-envelope@example.net", "4");

	delete_message(f, n[2]);
	assert_index_intact(f);
	assert_to_finds(f, "only-envelope@example.net", "");
	assert_to_finds(f, "erin@example.org", "3");
}

/* RebuildStoreIndex takes the To text from the db's envelopes, and what
 * it wrote a delete takes out again. */
static void test_rebuilt_index(void **state)
{
	fixture *f = *state;
	int64_t n[3];
	add_three(f, n);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	if (mv_store_rebuild_index(s, NULL, &err) < 0)
		fail_msg("RebuildStoreIndex: %s", err->message);
	mv_store_close(&s);
	assert_to_finds(f, "bcc.person@example.org", "2");
	assert_to_finds(f, "only-envelope@example.net", "4");
	delete_message(f, n[0]);
	assert_index_intact(f);
	assert_to_finds(f, "bcc.person@example.org", "");
}

/* RecoverStore, with the db gone, makes the envelopes table anew from the
 * records, and the index it rebuilds finds the envelope recipients. */
static void test_recover(void **state)
{
	fixture *f = *state;
	int64_t n[3];
	add_three(f, n);
	char *dbf = mv_store_db_file(&f->paths);
	assert_int_equal(unlink(dbf), 0);
	g_free(dbf);
	GError *err = NULL;
	json_t *report = NULL;
	if (mv_store_recover(1, &f->paths, key, false, NULL, &report, &err) < 0)
		fail_msg("RecoverStore: %s", err->message);
	assert_int_equal(json_integer_value(json_object_get(report, "messagesRecovered")), 4);
	json_decref(report);
	assert_envelopes_of_three(f, n);
	assert_to_finds(f, "bcc.person@example.org", "2");
	assert_to_finds(f, "only-envelope@example.net", "4");
	delete_message(f, n[0]);
	assert_index_intact(f);
	assert_to_finds(f, "bcc.person@example.org", "");
}

/* Fails the prepare of the batch's last db write (the segment's committed
 * length), after its rows — the envelopes table among them — are written;
 * notes that the envelope's insert was prepared, so the batch did get as
 * far as making the table. */
static bool envelope_insert_seen;

static int deny_segments_write(void *opaque, int action, const char *a, const char *b, const char *c, const char *d)
{
	(void)opaque, (void)b, (void)c, (void)d;
	if (action == SQLITE_INSERT && a && strcmp(a, "envelopes") == 0)
		envelope_insert_seen = true;
	return action == SQLITE_INSERT && a && strcmp(a, "segments") == 0 ? SQLITE_DENY : SQLITE_OK;
}

/* A batch that made the table and then failed leaves no table behind, and
 * the handle that ran it — which saw the table made — answers "none"
 * rather than an error; its next batch makes the table again. */
static void test_failed_batch(void **state)
{
	fixture *f = *state;
	test_message m;
	message_init(&m, raw_bcc, env_bcc_from, env_bcc_to);
	GError *err = NULL;
	mv_store *s = mv_store_open(1, &f->paths, key, MV_STORE_WRITE, &err);
	assert_non_null(s);
	envelope_insert_seen = false;
	sqlite3_set_authorizer(mv_store_db(s), deny_segments_write, NULL);
	mv_store_item item = m.item;
	assert_int_equal(mv_store_add_batch(s, &item, 1, 1, &err), -1);
	assert_non_null(err);
	g_clear_error(&err);
	sqlite3_set_authorizer(mv_store_db(s), NULL, NULL);
	assert_true(envelope_insert_seen);
	assert_false(envelopes_table_exists(s));
	assert_envelope(s, 2, NULL, NULL);
	assert_envelope(s, 1, NULL, NULL);

	mv_store *reader = mv_store_open(1, &f->paths, key, MV_STORE_READ, &err);
	assert_non_null(reader);
	assert_envelope(reader, 2, NULL, NULL);

	item = m.item;
	if (mv_store_add_batch(s, &item, 1, 1, &err) < 0 || mv_store_sync(s, &err) < 0)
		fail_msg("the batch again: %s", err->message);
	assert_int_equal(item.number, 2);
	assert_envelope(s, 2, env_bcc_from, env_bcc_to);
	assert_envelope(reader, 2, env_bcc_from, env_bcc_to);
	mv_store_close(&reader);
	mv_store_close(&s);
	mv_parsed_free(m.parsed);
	assert_to_finds(f, "bcc.person@example.org", "2");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof key);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_recipients),
		cmocka_unit_test_setup_teardown(test_no_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_envelopes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuilt_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
