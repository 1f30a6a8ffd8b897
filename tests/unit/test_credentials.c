/* Unit tests for archive/credentials.c and the credential functions of
 * commands/cmd_credentials.c: types and the settings each takes, values
 * refused with the argument named, creating, changing, listing, the secret
 * sealed (never in master.sqlite in clear, bound to its row) and handed out
 * by mv_credential_secret only, RenewMasterKey rewrapping every
 * credential's key (and an interrupted renewal's leftovers dropped), the
 * deletion refused while profile_credentials names a profile, the
 * credentials tables added to an instance made before them, and the
 * Administration API functions' answers, which never hold a secret. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "commands/commands.h"

#define TENANT "3f1c2a5e-8b7d-4e2a-9c41-0d6b5f7a8e90"
#define APP "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"

#define INSTANCE_FIXTURE_COMMANDS
#define INSTANCE_FIXTURE_NAME "credentials"
#include "instance_fixture.h"

static int64_t create(mv_instance *inst, mv_credential_type type, const char *description,
                      const mv_credential_settings *s)
{
	GError *err = NULL;
	int64_t id = 0;
	ok(mv_credential_create(inst, type, description, s, &id, &err), err);
	assert_true(id > 0);
	return id;
}

/* The credential's secret, which must be expected. */
static void secret_is(mv_instance *inst, int64_t id, const char *expected)
{
	GError *err = NULL;
	char *secret = NULL;
	size_t len = 0;
	ok(mv_credential_secret(inst, id, NULL, &secret, &len, &err), err);
	assert_int_equal(len, strlen(expected));
	assert_string_equal(secret, expected);
	sodium_memzero(secret, len);
	g_free(secret);
}

static int64_t count_credentials(mv_instance *inst)
{
	GError *err = NULL;
	GPtrArray *all = mv_credentials_list(inst, &err);
	ok(all ? 0 : -1, err);
	int64_t n = all->len;
	g_ptr_array_free(all, TRUE);
	return n;
}

static sqlite3 *raw_db(const char *dir)
{
	char *path = g_build_filename(dir, "master.sqlite", NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	g_free(path);
	return db;
}

static void raw_exec(const char *dir, const char *sql)
{
	sqlite3 *db = raw_db(dir);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* A blob column of one credential, as stored. */
static GBytes *raw_blob(const char *dir, const char *column, int64_t id)
{
	sqlite3 *db = raw_db(dir);
	char *sql = g_strdup_printf("SELECT %s FROM credentials WHERE id=%" G_GINT64_FORMAT, column, id);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	GBytes *b = sqlite3_column_type(st, 0) == SQLITE_NULL
	                    ? NULL
	                    : g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	g_free(sql);
	return b;
}

/* Whether needle is anywhere in the bytes of dir/name (absent file: no). */
static bool file_holds(const char *dir, const char *name, const char *needle)
{
	char *path = g_build_filename(dir, name, NULL);
	gchar *data = NULL;
	gsize len = 0;
	bool found = false;
	if (g_file_get_contents(path, &data, &len, NULL))
		found = memmem(data, len, needle, strlen(needle)) != NULL;
	g_free(data);
	g_free(path);
	return found;
}

static bool master_db_holds(const char *dir, const char *needle)
{
	return file_holds(dir, "master.sqlite", needle) || file_holds(dir, "master.sqlite-wal", needle);
}

/* A certificate as net/ would hand it in (archive/ keeps what it gets). */
static const mv_credential_cert fake_cert = {
	.pem = "-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----\n",
	.private_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIunit-private-key-4711\n-----END PRIVATE KEY-----\n",
	.thumbprint = "0123456789ABCDEF0123456789ABCDEF01234567",
	.subject = "CN=mailvault credential",
	.not_before = 1700000000,
	.not_after = 1763072000,
};

/* ---- types and what each takes ---------------------------------------------------------------- */

static void test_types(void **state)
{
	GError *err = NULL;
	mv_credential_type t;
	static const char *const names[] = { "Office365_Modern", "Password", "OAuthClientSecret" };
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		ok(mv_credential_type_parse(names[i], &t, &err), err);
		assert_string_equal(mv_credential_type_name(t), names[i]);
	}
	fails(mv_credential_type_parse("SignedEnvelope", &t, &err), &err, MV_ERR_UNSUPPORTED,
	      "type: SignedEnvelope credentials (for exports to MailStore Cloud) are not supported");
	fails(mv_credential_type_parse("office365_modern", &t, &err), &err, MV_ERR_INVALID,
	      "type: 'office365_modern' is not a credential type");

	/* the settings each type takes, and no other */
	static const struct {
		const char *arg;
		bool o365, password, oauth;
	} takes[] = {
		{ "tenantId", true, false, true },       { "applicationId", true, false, true },
		{ "createNewCertificate", true, false, false }, { "userName", false, true, false },
		{ "password", false, true, false },      { "clientSecret", false, false, true },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(takes); i++) {
		const bool expected[] = { takes[i].o365, takes[i].password, takes[i].oauth };
		const mv_credential_type types[] = { MV_CREDENTIAL_OFFICE365_MODERN, MV_CREDENTIAL_PASSWORD,
			                             MV_CREDENTIAL_OAUTH_CLIENT_SECRET };
		for (size_t j = 0; j < 3; j++) {
			int rc = mv_credential_check_arg(types[j], takes[i].arg, &err);
			if (expected[j])
				ok(rc, err);
			else
				fails(rc, &err, MV_ERR_INVALID, takes[i].arg);
		}
	}
	fails(mv_credential_check_arg(MV_CREDENTIAL_PASSWORD, "tenantId", &err), &err, MV_ERR_INVALID,
	      "argument 'tenantId' does not apply to a credential of type Password (it takes userName, password)");
	fails(mv_credential_check_arg(MV_CREDENTIAL_OFFICE365_MODERN, "userName", &err), &err, MV_ERR_INVALID,
	      "(it takes tenantId, applicationId, createNewCertificate)");
}

/* ---- values ------------------------------------------------------------------------------------ */

static void refused(mv_credential_type type, const char *description, const mv_credential_settings *s,
                    const char *text)
{
	GError *err = NULL;
	int64_t id = 0, before = count_credentials(shared);
	fails(mv_credential_create(shared, type, description, s, &id, &err), &err, MV_ERR_INVALID, text);
	assert_int_equal(count_credentials(shared), before);
}

static void test_values(void **state)
{
	const mv_credential_type o365 = MV_CREDENTIAL_OFFICE365_MODERN;
	/* tenants: a GUID or a domain name, nothing that could leave the URL's path segment */
	static const char *const good_tenants[] = { TENANT, "contoso.onmicrosoft.com", "a-b.example", "x.y", "" };
	for (size_t i = 0; i < G_N_ELEMENTS(good_tenants); i++)
		create(shared, o365, "tenant", &(mv_credential_settings){ .tenant_id = good_tenants[i] });
	static const char *const bad_tenants[] = { "common", "contoso.onmicrosoft.com/../x", "a..b", "-a.b", "a-.b",
		                                   "a.b.", "tenant id.example", "contoso.com?x=1", "3f1c2a5e8b7d4e2a" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad_tenants); i++)
		refused(o365, "tenant", &(mv_credential_settings){ .tenant_id = bad_tenants[i] },
		        "tenantId: '");
	refused(o365, "app", &(mv_credential_settings){ .application_id = "my-app" },
	        "applicationId: 'my-app' is not a GUID");
	refused(o365, "app", &(mv_credential_settings){ .application_id = APP "0" }, "applicationId:");
	create(shared, o365, "app", &(mv_credential_settings){ .application_id = "A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D" });

	const mv_credential_type pw = MV_CREDENTIAL_PASSWORD;
	refused(pw, "name", &(mv_credential_settings){ .user_name = "a\tb" }, "userName: must be at most 1024 bytes");
	refused(pw, "pw", &(mv_credential_settings){ .password = "" }, "password: empty");
	char *long_secret = g_strnfill(4097, 's');
	refused(pw, "pw", &(mv_credential_settings){ .password = long_secret }, "password: must be at most 4096 bytes");
	refused(MV_CREDENTIAL_OAUTH_CLIENT_SECRET, "cs", &(mv_credential_settings){ .client_secret = long_secret },
	        "clientSecret: must be at most 4096 bytes");
	long_secret[4096] = '\0';
	create(shared, pw, "longest password", &(mv_credential_settings){ .password = long_secret });
	g_free(long_secret);
	refused(pw, "bad\ndescription", &(mv_credential_settings){ 0 }, "description: must be at most 1024 bytes");
	char *long_description = g_strnfill(1025, 'd');
	refused(pw, long_description, &(mv_credential_settings){ 0 }, "description:");
	g_free(long_description);
	create(shared, pw, "", &(mv_credential_settings){ 0 });

	/* a setting the type does not take, though its value is fine */
	refused(o365, "wrong", &(mv_credential_settings){ .user_name = "someone" },
	        "argument 'userName' does not apply to a credential of type Office365_Modern");
	refused(pw, "wrong", &(mv_credential_settings){ .client_secret = "s3cret" },
	        "argument 'clientSecret' does not apply to a credential of type Password");
	refused(MV_CREDENTIAL_OAUTH_CLIENT_SECRET, "wrong", &(mv_credential_settings){ .certificate = &fake_cert },
	        "argument 'createNewCertificate' does not apply to a credential of type OAuthClientSecret");
	refused(pw, "wrong", &(mv_credential_settings){ .tenant_id = TENANT }, "argument 'tenantId' does not apply");
}

/* ---- create, get, list, change ------------------------------------------------------------------ */

static void test_create_get_change(void **state)
{
	GError *err = NULL;
	int64_t pw = create(shared, MV_CREDENTIAL_PASSWORD, "journal mailbox",
	                    &(mv_credential_settings){ .user_name = "journal@example.com", .password = "pw-1-Journal" });
	mv_credential *c = mv_credential_get(shared, pw, &err);
	ok(c ? 0 : -1, err);
	assert_int_equal(c->type, MV_CREDENTIAL_PASSWORD);
	assert_string_equal(c->description, "journal mailbox");
	assert_string_equal(c->user_name, "journal@example.com");
	assert_null(c->tenant_id);
	assert_null(c->certificate);
	assert_true(c->has_secret);
	assert_true(c->created_at > 1700000000);
	mv_credential_free(c);
	secret_is(shared, pw, "pw-1-Journal");

	/* made without its secret: none to hand out until one is set */
	int64_t oauth = create(shared, MV_CREDENTIAL_OAUTH_CLIENT_SECRET, "graph",
	                       &(mv_credential_settings){ .tenant_id = TENANT, .application_id = APP });
	c = mv_credential_get(shared, oauth, &err);
	assert_false(c->has_secret);
	mv_credential_free(c);
	char *secret = NULL;
	size_t len = 0;
	fails(mv_credential_secret(shared, oauth, NULL, &secret, &len, &err), &err, MV_ERR_STATE,
	      "has no secret yet (SetCredentialSettings --clientSecret sets one)");
	ok(mv_credential_update(shared, oauth, &(mv_credential_settings){ .client_secret = "cs~first" }, &err), err);
	secret_is(shared, oauth, "cs~first");
	/* a new secret comes with a new key */
	GBytes *key_before = raw_blob(shared_dir, "key_master", oauth);
	ok(mv_credential_update(shared, oauth, &(mv_credential_settings){ .client_secret = "cs~second" }, &err), err);
	secret_is(shared, oauth, "cs~second");
	GBytes *key_after = raw_blob(shared_dir, "key_master", oauth);
	assert_false(g_bytes_equal(key_before, key_after));
	g_bytes_unref(key_before);
	g_bytes_unref(key_after);

	/* what is not given stays; "" unsets */
	ok(mv_credential_update(shared, oauth, &(mv_credential_settings){ .tenant_id = "" }, &err), err);
	mv_credential *with = NULL;
	ok(mv_credential_secret(shared, oauth, &with, &secret, &len, &err), err);
	assert_null(with->tenant_id);
	assert_string_equal(with->application_id, APP);
	assert_string_equal(secret, "cs~second");
	sodium_memzero(secret, len);
	g_free(secret);
	mv_credential_free(with);

	/* a change the type does not take changes nothing, even the settings beside it */
	fails(mv_credential_update(shared, oauth, &(mv_credential_settings){ .application_id = "", .password = "x" },
	                           &err), &err, MV_ERR_INVALID, "argument 'password' does not apply");
	c = mv_credential_get(shared, oauth, &err);
	assert_string_equal(c->application_id, APP);
	mv_credential_free(c);

	ok(mv_credential_set_description(shared, oauth, "Graph, tenant A", &err), err);
	fails(mv_credential_set_description(shared, oauth, "tab\there", &err), &err, MV_ERR_INVALID, "description:");
	c = mv_credential_get(shared, oauth, &err);
	assert_string_equal(c->description, "Graph, tenant A");
	mv_credential_free(c);

	/* the list: by id, each as get gives it */
	GPtrArray *all = mv_credentials_list(shared, &err);
	ok(all ? 0 : -1, err);
	assert_true(all->len >= 2);
	for (guint i = 1; i < all->len; i++)
		assert_true(((mv_credential *)all->pdata[i - 1])->id < ((mv_credential *)all->pdata[i])->id);
	g_ptr_array_free(all, TRUE);

	/* an Office365_Modern credential keeps the certificate it is given; its secret is the key */
	int64_t o365 = create(shared, MV_CREDENTIAL_OFFICE365_MODERN, "m365",
	                      &(mv_credential_settings){ .tenant_id = "contoso.onmicrosoft.com", .application_id = APP });
	ok(mv_credential_update(shared, o365, &(mv_credential_settings){ .certificate = &fake_cert }, &err), err);
	c = mv_credential_get(shared, o365, &err);
	assert_string_equal(c->certificate, fake_cert.pem);
	assert_string_equal(c->thumbprint, fake_cert.thumbprint);
	assert_string_equal(c->subject, fake_cert.subject);
	assert_int_equal(c->not_before, fake_cert.not_before);
	assert_int_equal(c->not_after, fake_cert.not_after);
	assert_true(c->has_secret);
	mv_credential_free(c);
	secret_is(shared, o365, fake_cert.private_key_pem);

	/* unknown ids, the same way everywhere */
	const int64_t ghost = 999999;
	assert_null(mv_credential_get(shared, ghost, &err));
	fails(-1, &err, MV_ERR_NOT_FOUND, "credential 999999 does not exist");
	fails(mv_credential_update(shared, ghost, &(mv_credential_settings){ 0 }, &err), &err, MV_ERR_NOT_FOUND,
	      "credential 999999 does not exist");
	fails(mv_credential_set_description(shared, ghost, "x", &err), &err, MV_ERR_NOT_FOUND, "does not exist");
	fails(mv_credential_delete(shared, ghost, &err), &err, MV_ERR_NOT_FOUND, "does not exist");
	fails(mv_credential_secret(shared, ghost, NULL, &secret, &len, &err), &err, MV_ERR_NOT_FOUND, "does not exist");
}

/* ---- the secret at rest ------------------------------------------------------------------------------ */

static void test_secret_at_rest(void **state)
{
	GError *err = NULL;
	const char *password = "Unit-At-Rest-Secret-93e1";
	int64_t a = create(shared, MV_CREDENTIAL_PASSWORD, "at rest",
	                   &(mv_credential_settings){ .user_name = "rest-user-name", .password = password });
	int64_t b = create(shared, MV_CREDENTIAL_PASSWORD, "other",
	                   &(mv_credential_settings){ .password = "Unit-Other-Secret-11" });
	/* the user name is stored as it is (the scan can find what is there),
	 * the password nowhere in the file or its WAL */
	assert_true(master_db_holds(shared_dir, "rest-user-name"));
	assert_false(master_db_holds(shared_dir, password));
	assert_false(master_db_holds(shared_dir, fake_cert.private_key_pem + 28));

	/* a sealed secret moved to another row, with its key, does not open there */
	GBytes *sealed = raw_blob(shared_dir, "secret", a), *key = raw_blob(shared_dir, "key_master", a);
	sqlite3 *db = raw_db(shared_dir);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE credentials SET secret=?, key_master=? WHERE id=?", -1, &st,
	                                    NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, g_bytes_get_data(sealed, NULL), (int)g_bytes_get_size(sealed), SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, g_bytes_get_data(key, NULL), (int)g_bytes_get_size(key), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, b);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	char *secret = NULL;
	size_t len = 0;
	fails(mv_credential_secret(shared, b, NULL, &secret, &len, &err), &err, MV_ERR_CORRUPT,
	      "its secret does not open with its key");
	secret_is(shared, a, password);
	g_bytes_unref(sealed);
	g_bytes_unref(key);
	ok(mv_credential_delete(shared, b, &err), err);
}

/* ---- RenewMasterKey ---------------------------------------------------------------------------------- */

static void test_master_key_renewal(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("renewal");
	mv_instance *inst = open_instance(dir);
	int64_t pw = create(inst, MV_CREDENTIAL_PASSWORD, "pw", &(mv_credential_settings){ .password = "renew-pw-1" });
	int64_t cs = create(inst, MV_CREDENTIAL_OAUTH_CLIENT_SECRET, "cs",
	                    &(mv_credential_settings){ .client_secret = "renew-cs-2" });
	int64_t none = create(inst, MV_CREDENTIAL_OFFICE365_MODERN, "no secret yet", &(mv_credential_settings){ 0 });
	int64_t cert = create(inst, MV_CREDENTIAL_OFFICE365_MODERN, "cert",
	                      &(mv_credential_settings){ .certificate = &fake_cert });
	GBytes *wrapped_before = raw_blob(dir, "key_master", pw);

	ok(mv_instance_renew_master_key(inst, &err), err);
	secret_is(inst, pw, "renew-pw-1");
	secret_is(inst, cs, "renew-cs-2");
	secret_is(inst, cert, fake_cert.private_key_pem);
	/* rewrapped, not left as it was (the old master key no longer opens it) */
	GBytes *wrapped_after = raw_blob(dir, "key_master", pw);
	assert_false(g_bytes_equal(wrapped_before, wrapped_after));
	assert_null(raw_blob(dir, "key_master_next", pw));
	assert_null(raw_blob(dir, "key_master", none));

	/* again, and from a process that reads master.key afresh */
	ok(mv_instance_renew_master_key(inst, &err), err);
	mv_instance *other = open_instance(dir);
	secret_is(other, pw, "renew-pw-1");
	secret_is(other, cs, "renew-cs-2");
	/* a secret written by one process after the other renewed is readable by both */
	ok(mv_instance_renew_master_key(other, &err), err);
	ok(mv_credential_update(inst, pw, &(mv_credential_settings){ .password = "renew-pw-3" }, &err), err);
	secret_is(other, pw, "renew-pw-3");
	secret_is(inst, pw, "renew-pw-3");
	mv_instance_close(&other);

	/* a renewal cut short before its commit point leaves key_master_next
	 * behind: the next open drops it and the secret still opens */
	raw_exec(dir, "UPDATE credentials SET key_master_next=x'00112233' WHERE key_master IS NOT NULL");
	mv_instance_close(&inst);
	inst = open_instance(dir);
	assert_null(raw_blob(dir, "key_master_next", cs));
	secret_is(inst, cs, "renew-cs-2");

	/* a key that does not open stops the renewal, naming the credential, and changes nothing */
	raw_exec(dir, "UPDATE credentials SET key_master=zeroblob(72) WHERE id=2");
	char *key_file = g_build_filename(dir, "master.key", NULL);
	gchar *key_before = NULL;
	assert_true(g_file_get_contents(key_file, &key_before, NULL, NULL));
	fails(mv_instance_renew_master_key(inst, &err), &err, MV_ERR_CORRUPT,
	      "the key of credential 2 does not open with master.key");
	gchar *key_now = NULL;
	assert_true(g_file_get_contents(key_file, &key_now, NULL, NULL));
	assert_int_equal(memcmp(key_before, key_now, 40), 0);
	secret_is(inst, pw, "renew-pw-3");
	ok(mv_credential_delete(inst, cs, &err), err);
	ok(mv_instance_renew_master_key(inst, &err), err);
	secret_is(inst, pw, "renew-pw-3");

	g_free(key_now);
	g_free(key_before);
	g_free(key_file);
	g_bytes_unref(wrapped_before);
	g_bytes_unref(wrapped_after);
	mv_instance_close(&inst);
	g_free(dir);
}

/* ---- deletion and the profiles that use a credential ------------------------------------------------------ */

static void test_delete_in_use(void **state)
{
	GError *err = NULL;
	int64_t id = create(shared, MV_CREDENTIAL_PASSWORD, "in use", &(mv_credential_settings){ .password = "used" });
	char *sql = g_strdup_printf("INSERT INTO profile_credentials VALUES (7, 'Journal import', %" G_GINT64_FORMAT ")",
	                            id);
	raw_exec(shared_dir, sql);
	g_free(sql);
	fails(mv_credential_delete(shared, id, &err), &err, MV_ERR_STATE,
	      "is used by profile 'Journal import': change or delete that first");
	secret_is(shared, id, "used");

	for (int p = 8; p <= 11; p++) {
		sql = g_strdup_printf("INSERT INTO profile_credentials VALUES (%d, 'profile %d', %" G_GINT64_FORMAT ")", p, p,
		                      id);
		raw_exec(shared_dir, sql);
		g_free(sql);
	}
	fails(mv_credential_delete(shared, id, &err), &err, MV_ERR_STATE,
	      "is used by profiles 'Journal import', 'profile 10', 'profile 11' and 2 more");

	sql = g_strdup_printf("DELETE FROM profile_credentials WHERE credential_id=%" G_GINT64_FORMAT, id);
	raw_exec(shared_dir, sql);
	g_free(sql);
	ok(mv_credential_delete(shared, id, &err), err);
	assert_null(mv_credential_get(shared, id, &err));
	fails(-1, &err, MV_ERR_NOT_FOUND, "does not exist");
	/* its id is never given to another */
	int64_t next = create(shared, MV_CREDENTIAL_PASSWORD, "after", &(mv_credential_settings){ 0 });
	assert_true(next > id);
	ok(mv_credential_delete(shared, next, &err), err);
	int64_t after = create(shared, MV_CREDENTIAL_PASSWORD, "after the last", &(mv_credential_settings){ 0 });
	assert_true(after > next);
}

/* ---- limits and older instances ------------------------------------------------------------------------- */

static void test_limit(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("limit");
	raw_exec(dir, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 999)"
	              " INSERT INTO credentials(type, description, created_at) SELECT 'Password', 'bulk', 0 FROM n");
	mv_instance *inst = open_instance(dir);
	create(inst, MV_CREDENTIAL_PASSWORD, "the 1000th", &(mv_credential_settings){ 0 });
	int64_t id = 0;
	fails(mv_credential_create(inst, MV_CREDENTIAL_PASSWORD, "one more", &(mv_credential_settings){ 0 }, &id, &err),
	      &err, MV_ERR_LIMIT, "there are 1000 credentials already");
	mv_instance_close(&inst);
	g_free(dir);
}

static void test_older_instance(void **state)
{
	char *dir = new_instance_dir("older");
	raw_exec(dir, "DROP TABLE credentials; DROP TABLE profile_credentials");
	mv_instance *inst = open_instance(dir);
	int64_t id = create(inst, MV_CREDENTIAL_PASSWORD, "on an older instance",
	                    &(mv_credential_settings){ .password = "older-pw" });
	secret_is(inst, id, "older-pw");
	GError *err = NULL;
	ok(mv_instance_renew_master_key(inst, &err), err);
	secret_is(inst, id, "older-pw");
	mv_instance_close(&inst);
	g_free(dir);
}

/* ---- the Administration API functions ------------------------------------------------------------------- */

static bool text_holds(json_t *value, const char *needle)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	bool found = strstr(text, needle) != NULL;
	free(text);
	return found;
}

static void test_functions(void **state)
{
	json_t *env = call("CreateCredential", "type", "Password", "description", "api", "userName", "api-user",
	                   "password", "Api-Secret-77", NULL);
	json_t *c = result_of(env);
	int64_t id = json_integer_value(json_object_get(c, "id"));
	char *text = json_dumps(c, JSON_COMPACT);
	char *expected = g_strdup_printf("{\"id\":%" G_GINT64_FORMAT ",\"type\":\"Password\",\"description\":\"api\","
	                                 "\"userName\":\"api-user\",\"hasSecret\":true}", id);
	assert_string_equal(text, expected);
	g_free(expected);
	free(text);
	json_decref(env);
	secret_is(shared, id, "Api-Secret-77");

	char *id_text = g_strdup_printf("%" G_GINT64_FORMAT, id);
	call_fails(call("SetCredentialSettings", "id", id_text, "tenantId", TENANT, NULL),
	           "SetCredentialSettings: argument 'tenantId' does not apply to a credential of type Password");
	call_fails(call("SetCredentialSettings", "id", id_text, "createNewCertificate", "false", NULL),
	           "SetCredentialSettings: argument 'createNewCertificate' does not apply");
	call_fails(call("CreateCredential", "type", "SignedEnvelope", "description", "cloud", NULL),
	           "CreateCredential: type: SignedEnvelope credentials");
	call_fails(call("CreateCredential", "type", "Office365_Modern", "description", "x", "clientSecret", "s", NULL),
	           "CreateCredential: argument 'clientSecret' does not apply to a credential of type Office365_Modern");

	/* a new certificate: its PEM and thumbprint come back, its key never */
	env = call("CreateCredential", "type", "Office365_Modern", "description", "m365", "tenantId", TENANT,
	           "applicationId", APP, NULL);
	c = result_of(env);
	int64_t o365 = json_integer_value(json_object_get(c, "id"));
	assert_true(json_is_null(json_object_get(c, "certificate")));
	assert_true(json_is_false(json_object_get(c, "hasSecret")));
	json_decref(env);
	char *o365_text = g_strdup_printf("%" G_GINT64_FORMAT, o365);
	env = call("SetCredentialSettings", "id", o365_text, "createNewCertificate", "true", NULL);
	c = result_of(env);
	json_t *cert = json_object_get(c, "certificate");
	assert_true(g_str_has_prefix(json_string_value(json_object_get(cert, "pem")), "-----BEGIN CERTIFICATE-----"));
	assert_int_equal(strlen(json_string_value(json_object_get(cert, "thumbprint"))), 40);
	assert_true(json_is_true(json_object_get(c, "hasSecret")));
	char *key = NULL;
	size_t len = 0;
	GError *err = NULL;
	ok(mv_credential_secret(shared, o365, NULL, &key, &len, &err), err);
	assert_true(g_str_has_prefix(key, "-----BEGIN PRIVATE KEY-----"));
	assert_false(text_holds(c, "PRIVATE KEY"));
	json_decref(env);

	/* no answer and no audit entry holds a secret */
	env = call("GetCredentials", NULL);
	json_t *all = result_of(env);
	assert_true(json_array_size(all) >= 2);
	assert_false(text_holds(all, "Api-Secret-77"));
	assert_false(text_holds(all, "PRIVATE KEY"));
	assert_false(text_holds(all, key + 28));
	json_decref(env);
	env = call("GetAuditLog", "limit", "0", NULL);
	json_t *entries = result_of(env);
	assert_true(text_holds(entries, "(hidden)"));
	assert_false(text_holds(entries, "Api-Secret-77"));
	assert_false(text_holds(entries, key + 28));
	json_decref(env);
	sodium_memzero(key, len);
	g_free(key);

	/* a shell line naming a secret argument stays out of its history */
	assert_true(mv_command_text_may_hold_secret("SetCredentialSettings --id=1 --clientSecret=abc"));
	assert_true(mv_command_text_may_hold_secret("CreateCredential --type=Password --password=abc"));
	assert_false(mv_command_text_may_hold_secret("SetCredentialSettings --id=1 --userName=abc"));

	env = call("DeleteCredential", "id", id_text, NULL);
	result_of(env);
	json_decref(env);
	call_fails(call("GetCredential", "id", id_text, NULL), "GetCredential: credential");
	g_free(o365_text);
	g_free(id_text);
}

int main(void)
{
	mv_log_set_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_create_get_change),
		cmocka_unit_test(test_secret_at_rest),
		cmocka_unit_test(test_master_key_renewal),
		cmocka_unit_test(test_delete_in_use),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_older_instance),
		cmocka_unit_test(test_functions),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
