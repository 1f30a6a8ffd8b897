/* Unit tests for archive/users.c, archive/audit.c and the registry functions
 * of commands/cmd_users.c: privilege sets, users, passwords and the password
 * policy, folder grants and a caller's access, the compliance configuration,
 * and the audit log's hash chain — its verification, tampering with it
 * behind the program's back, concurrent appenders, and the key surviving a
 * master key renewal.
 *
 * Argon2id (64 MiB, ~0.2 s, more under ASan) is the cost here: users are
 * created without a password unless the test is about passwords, and one
 * instance serves most tests (each test uses its own user names). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "commands/commands.h"

#define INSTANCE_FIXTURE_COMMANDS
#define INSTANCE_FIXTURE_NAME "users"
#include "instance_fixture.h"

static void create_plain(const char *name, unsigned privileges)
{
	GError *err = NULL;
	ok(mv_user_create(shared, name, privileges, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
}

static void set_policy(mv_instance *inst, bool on)
{
	GError *err = NULL;
	mv_compliance c;
	ok(mv_compliance_get(inst, &c, &err), err);
	c.password_policy_enabled = on;
	ok(mv_compliance_set(inst, &c, &err), err);
	mv_compliance_clear(&c);
}

/* ---- privilege sets ----------------------------------------------------------------------- */

static void parses_to(mv_privset_kind kind, const char *text, unsigned expected)
{
	GError *err = NULL;
	unsigned bits = 0xdead;
	ok(mv_privileges_parse(kind, "privileges", text, &bits, &err), err);
	if (bits != expected)
		fail_msg("'%s' parsed to 0x%x, expected 0x%x", text, bits, expected);
}

static void parse_fails(mv_privset_kind kind, const char *text, const char *message)
{
	GError *err = NULL;
	unsigned bits = 0;
	assert_int_equal(mv_privileges_parse(kind, "privileges", text, &bits, &err), -1);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	if (strcmp(err->message, message) != 0)
		fail_msg("'%s': error '%s', expected '%s'", text, err->message, message);
	g_error_free(err);
}

static void formats_to(mv_privset_kind kind, unsigned bits, const char *expected)
{
	char *text = mv_privileges_format(kind, bits);
	assert_string_equal(text, expected);
	g_free(text);
}

static void test_privileges(void **state)
{
	static const char *const user[] = { "admin", "login", "changePassword", "archive", "modifyArchiveProfiles",
		                            "export", "modifyExportProfiles", "delete" };
	static const char *const login[] = { "windows", "web", "outlook", "windowsCmd", "imap", "api" };
	static const char *const folder[] = { "read", "write", "delete" };
	for (size_t i = 0; i < G_N_ELEMENTS(user); i++) {
		parses_to(MV_PRIVSET_USER, user[i], 1u << i);
		formats_to(MV_PRIVSET_USER, 1u << i, user[i]);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(login); i++) {
		parses_to(MV_PRIVSET_LOGIN, login[i], 1u << i);
		formats_to(MV_PRIVSET_LOGIN, 1u << i, login[i]);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(folder); i++) {
		parses_to(MV_PRIVSET_FOLDER, folder[i], 1u << i);
		formats_to(MV_PRIVSET_FOLDER, 1u << i, folder[i]);
	}
	parses_to(MV_PRIVSET_USER, "none", 0);
	parses_to(MV_PRIVSET_FOLDER, " none ", 0);
	parses_to(MV_PRIVSET_USER, " admin , login,admin ", MV_PRIV_ADMIN | MV_PRIV_LOGIN);   /* duplicates */
	parses_to(MV_PRIVSET_LOGIN, "api,web", MV_LOGIN_API | MV_LOGIN_WEB);
	formats_to(MV_PRIVSET_USER, 0, "none");
	formats_to(MV_PRIVSET_USER, MV_PRIV_DELETE | MV_PRIV_ADMIN | MV_PRIV_LOGIN, "admin,login,delete");
	formats_to(MV_PRIVSET_LOGIN, MV_LOGIN_ALL, "windows,web,outlook,windowsCmd,imap,api");
	/* Handing mail in over SMTP is never part of the default set. */
	assert_int_equal(MV_LOGIN_ALL & MV_LOGIN_SMTP, 0);
	formats_to(MV_PRIVSET_LOGIN, MV_LOGIN_KNOWN, "windows,web,outlook,windowsCmd,imap,api,smtp");
	formats_to(MV_PRIVSET_FOLDER, MV_FOLDER_ALL, "read,write,delete");

	parse_fails(MV_PRIVSET_USER, "admin,none", "privileges: 'none' must stand alone in the list");
	parse_fails(MV_PRIVSET_USER, "admin,,login",
	            "privileges: empty item in the list (a comma separated list of privileges, or none)");
	parse_fails(MV_PRIVSET_USER, "", "privileges: empty (a comma separated list of privileges, or none)");
	parse_fails(MV_PRIVSET_USER, "admin,root", "privileges: unknown privilege 'root' (allowed: none, admin, "
	            "login, changePassword, archive, modifyArchiveProfiles, export, modifyExportProfiles, delete)");
	parse_fails(MV_PRIVSET_LOGIN, "read", "privileges: unknown privilege 'read' (allowed: none, windows, web, "
	            "outlook, windowsCmd, imap, api, smtp)");
	parse_fails(MV_PRIVSET_FOLDER, "admin", "privileges: unknown privilege 'admin' (allowed: none, read, write, "
	            "delete)");
}

static void test_user_names(void **state)
{
	GError *err = NULL;
	ok(mv_user_name_check("john.doe", &err), err);
	ok(mv_user_name_check("DOMAIN\\j\xc3\xbcrgen m\xc3\xbcller", &err), err);
	fails(mv_user_name_check("", &err), &err, MV_ERR_INVALID, "1 to 256 bytes");
	char *longname = g_strnfill(257, 'a');
	fails(mv_user_name_check(longname, &err), &err, MV_ERR_INVALID, "1 to 256 bytes");
	g_free(longname);
	fails(mv_user_name_check("a/b", &err), &err, MV_ERR_INVALID, "'/'");
	fails(mv_user_name_check("a,b", &err), &err, MV_ERR_INVALID, "','");
	fails(mv_user_name_check("a\nb", &err), &err, MV_ERR_INVALID, "control");
	fails(mv_user_name_check(" a", &err), &err, MV_ERR_INVALID, "space");
	fails(mv_user_name_check("caf\xe9", &err), &err, MV_ERR_INVALID, "UTF-8");
}

/* ---- users -------------------------------------------------------------------------------- */

static void test_create_get_list(void **state)
{
	GError *err = NULL;
	ok(mv_user_create(shared, "carol", MV_PRIV_LOGIN | MV_PRIV_ARCHIVE, MV_LOGIN_WEB, "Carol C",
	                  "cn=carol,dc=example", "directoryServices", NULL, &err), err);
	mv_user *u = mv_user_get(shared, "CAROL", &err);   /* case-insensitive */
	ok(u ? 0 : -1, err);
	assert_string_equal(u->name, "carol");
	assert_string_equal(u->full_name, "Carol C");
	assert_string_equal(u->distinguished_name, "cn=carol,dc=example");
	assert_string_equal(u->authentication, "directoryServices");
	assert_int_equal(u->privileges, MV_PRIV_LOGIN | MV_PRIV_ARCHIVE);
	assert_int_equal(u->login_privileges, MV_LOGIN_WEB);
	assert_int_equal(u->email_addresses->len, 0);
	assert_false(u->has_password);
	mv_user_free(u);

	fails(mv_user_create(shared, "Carol", 0, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_EXISTS,
	      "already exists");
	fails(mv_user_create(shared, "dave", 0, 0, NULL, NULL, "kerberos", NULL, &err), &err, MV_ERR_INVALID,
	      "authentication");
	fails(mv_user_create(shared, "dave", 1u << 12, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_INVALID,
	      "privileges");
	assert_null(mv_user_get(shared, "nobody", &err));
	fails(-1, &err, MV_ERR_NOT_FOUND, "user 'nobody' does not exist");

	create_plain("alice", MV_PRIV_LOGIN);
	GPtrArray *all = mv_users_list(shared, &err);
	ok(all ? 0 : -1, err);
	bool alice_before_carol = false;
	int alice = -1;
	for (guint i = 0; i < all->len; i++) {
		const mv_user *x = all->pdata[i];
		if (strcmp(x->name, "alice") == 0)
			alice = (int)i;
		if (strcmp(x->name, "carol") == 0)
			alice_before_carol = alice >= 0;
	}
	assert_true(alice_before_carol);
	g_ptr_array_free(all, TRUE);
}

static void test_setters(void **state)
{
	GError *err = NULL;
	create_plain("erin", MV_PRIV_LOGIN);
	mv_user *before = mv_user_get(shared, "erin", &err);
	ok(before ? 0 : -1, err);

	ok(mv_user_set_full_name(shared, "erin", "Erin E", &err), err);
	ok(mv_user_set_distinguished_name(shared, "erin", "cn=erin", &err), err);
	ok(mv_user_set_login_privileges(shared, "erin", MV_LOGIN_API | MV_LOGIN_IMAP, &err), err);
	ok(mv_user_set_privileges(shared, "erin", MV_PRIV_LOGIN | MV_PRIV_EXPORT, &err), err);
	GPtrArray *mails = g_ptr_array_new();
	g_ptr_array_add(mails, "erin@example.com");
	g_ptr_array_add(mails, "e.e@example.org");
	ok(mv_user_set_email_addresses(shared, "erin", mails, &err), err);
	g_ptr_array_add(mails, "not an address");
	fails(mv_user_set_email_addresses(shared, "erin", mails, &err), &err, MV_ERR_INVALID,
	      "emailAddresses: 'not an address'");
	g_ptr_array_free(mails, TRUE);
	GPtrArray *pop3 = g_ptr_array_new();
	g_ptr_array_add(pop3, "erin.pop");
	ok(mv_user_set_pop3_user_names(shared, "erin", pop3, &err), err);
	g_ptr_array_free(pop3, TRUE);

	mv_user *u = mv_user_get(shared, "erin", &err);
	assert_string_equal(u->full_name, "Erin E");
	assert_string_equal(u->distinguished_name, "cn=erin");
	assert_int_equal(u->login_privileges, MV_LOGIN_API | MV_LOGIN_IMAP);
	assert_int_equal(u->privileges, MV_PRIV_LOGIN | MV_PRIV_EXPORT);
	assert_int_equal(u->email_addresses->len, 2);
	assert_string_equal(u->email_addresses->pdata[1], "e.e@example.org");
	assert_int_equal(u->pop3_user_names->len, 1);
	assert_int_equal(u->auth_generation, before->auth_generation);   /* nothing about logging on changed */
	mv_user_free(u);

	ok(mv_user_set_full_name(shared, "erin", NULL, &err), err);
	ok(mv_user_set_authentication(shared, "erin", "directoryServices", &err), err);
	fails(mv_user_set_authentication(shared, "erin", "ldap", &err), &err, MV_ERR_INVALID, "authentication");
	u = mv_user_get(shared, "erin", &err);
	assert_null(u->full_name);
	assert_true(u->auth_generation > before->auth_generation);
	int64_t gen = u->auth_generation;
	mv_user_free(u);
	mv_user_free(before);

	/* renaming: folder privileges follow, the generation changes */
	ok(mv_user_set_folder_privileges(shared, "erin", "erin", MV_FOLDER_READ, &err), err);
	ok(mv_user_rename(shared, "erin", "erin.e", &err), err);
	assert_null(mv_user_get(shared, "erin", &err));
	g_clear_error(&err);
	u = mv_user_get(shared, "erin.e", &err);
	assert_true(u->auth_generation > gen);
	mv_user_free(u);
	GPtrArray *grants = mv_user_folder_privileges(shared, "erin.e", &err);
	assert_int_equal(grants->len, 1);
	assert_string_equal(((mv_folder_grant *)grants->pdata[0])->folder, "erin");   /* the archive keeps its name */
	g_ptr_array_free(grants, TRUE);
	create_plain("frank", 0);
	fails(mv_user_rename(shared, "erin.e", "FRANK", &err), &err, MV_ERR_EXISTS, "already exists");
	fails(mv_user_rename(shared, "ghost", "ghost2", &err), &err, MV_ERR_NOT_FOUND, "does not exist");
	fails(mv_user_rename(shared, "erin.e", "bad/name", &err), &err, MV_ERR_INVALID, "'/'");
	fails(mv_user_set_full_name(shared, "ghost", "x", &err), &err, MV_ERR_NOT_FOUND, "user 'ghost'");

	int64_t deleted = -1;
	ok(mv_user_delete_app_passwords(shared, "erin.e", &deleted, &err), err);
	assert_int_equal(deleted, 0);
	ok(mv_user_delete(shared, "ERIN.E", &err), err);
	fails(mv_user_delete(shared, "erin.e", &err), &err, MV_ERR_NOT_FOUND, "does not exist");
	grants = mv_user_folder_privileges(shared, "erin.e", &err);
	assert_null(grants);
	g_clear_error(&err);
}

static void test_last_admin(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("admins");
	mv_instance *inst = open_instance(dir);
	ok(mv_user_create(inst, "root1", MV_PRIV_ADMIN, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	ok(mv_user_create(inst, "root2", MV_PRIV_ADMIN | MV_PRIV_LOGIN, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	ok(mv_user_delete(inst, "root1", &err), err);
	fails(mv_user_delete(inst, "root2", &err), &err, MV_ERR_STATE, "last user with the admin privilege");
	fails(mv_user_set_privileges(inst, "root2", MV_PRIV_LOGIN, &err), &err, MV_ERR_STATE,
	      "cannot remove the admin privilege of 'root2'");
	ok(mv_user_set_privileges(inst, "root2", MV_PRIV_ADMIN, &err), err);   /* keeping admin is fine */
	ok(mv_user_set_login_privileges(inst, "root2", 0, &err), err);
	mv_instance_close(&inst);
	g_free(dir);
}

/* ---- passwords ------------------------------------------------------------------------------- */

static void auth_fails(mv_instance *inst, const char *name, const char *password)
{
	GError *err = NULL;
	mv_user *u = (mv_user *)1;
	assert_int_equal(mv_user_authenticate(inst, name, password, &u, &err), -1);
	assert_null(u);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_AUTH));
	assert_string_equal(err->message, "unknown user or wrong password");
	g_error_free(err);
}

static void test_passwords(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("passwords");
	mv_instance *inst = open_instance(dir);
	char *password = NULL;
	ok(mv_users_ensure_admin(inst, &password, &err), err);
	assert_non_null(password);
	assert_int_equal(strlen(password), 20);
	for (const char *p = password; *p; p++)
		assert_null(strchr("0O1lI", *p));
	char *again = (char *)1;
	ok(mv_users_ensure_admin(inst, &again, &err), err);   /* idempotent */
	assert_null(again);

	mv_user *u = NULL;
	ok(mv_user_authenticate(inst, "ADMIN", password, &u, &err), err);
	assert_string_equal(u->name, "admin");
	assert_int_equal(u->privileges, (1u << 8) - 1);
	assert_int_equal(u->login_privileges, MV_LOGIN_ALL);
	assert_true(u->has_password);
	int64_t gen = u->auth_generation;
	mv_user_free(u);

	auth_fails(inst, "admin", "wrong password");
	auth_fails(inst, "nobody", password);                /* unknown user: the same words */
	char *huge = g_strnfill(5000, 'x');
	auth_fails(inst, "admin", huge);
	g_free(huge);
	auth_fails(inst, "admin", "");

	/* no password, or directory services: never logs on with one */
	ok(mv_user_create(inst, "nopass", MV_PRIV_LOGIN, MV_LOGIN_ALL, NULL, NULL, NULL, NULL, &err), err);
	auth_fails(inst, "nopass", "whatever");
	fails(mv_user_set_password(inst, "nopass", "", &err), &err, MV_ERR_INVALID, "password: must be 1 to 4096");
	fails(mv_user_set_password(inst, "ghost", "x", &err), &err, MV_ERR_NOT_FOUND, "does not exist");

	/* a new password ends the sessions of the old one */
	ok(mv_user_set_password(inst, "admin", "short", &err), err);   /* policy off: anything goes */
	auth_fails(inst, "admin", password);
	ok(mv_user_authenticate(inst, "admin", "short", NULL, &err), err);
	u = mv_user_get(inst, "admin", &err);
	assert_true(u->auth_generation > gen);
	mv_user_free(u);
	ok(mv_user_set_authentication(inst, "admin", "directoryServices", &err), err);
	auth_fails(inst, "admin", "short");

	g_free(password);
	mv_instance_close(&inst);
	g_free(dir);
}

static void policy_fails(const char *user, const char *password, const char *rule)
{
	GError *err = NULL;
	fails(mv_password_policy_check(user, password, &err), &err, MV_ERR_INVALID, rule);
}

static void test_password_policy(void **state)
{
	GError *err = NULL;
	ok(mv_password_policy_check("john", "Abcdef1!", &err), err);
	ok(mv_password_policy_check("john", "abcdefg1!", &err), err);       /* lower, digit, other */
	ok(mv_password_policy_check("john", "ABCDEFGH1a", &err), err);      /* upper, digit, lower */
	ok(mv_password_policy_check("john", "\xc3\x84\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!", &err), err);
	policy_fails("john", "Abcde1!", "at least 8 characters");
	/* 7 characters in 13 bytes: characters count, not bytes */
	policy_fails("john", "\xc3\x84\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1", "at least 8 characters");
	policy_fails("john", "abcdefgh12", "at least three kinds");
	policy_fails("john", "ABCDEFGH!!", "at least three kinds");
	policy_fails("john", "xxJOHNxx1!", "must not contain the user name");
	policy_fails("john", "", "1 to 4096 bytes");

	/* applied by create and set_password only while the policy is on */
	set_policy(shared, true);
	fails(mv_user_create(shared, "polly", MV_PRIV_LOGIN, MV_LOGIN_ALL, NULL, NULL, NULL, "weak", &err), &err,
	      MV_ERR_INVALID, "password policy");
	assert_null(mv_user_get(shared, "polly", &err));
	g_clear_error(&err);
	create_plain("polly", MV_PRIV_LOGIN);
	fails(mv_user_set_password(shared, "polly", "Polly-1234", &err), &err, MV_ERR_INVALID, "user name");
	ok(mv_user_set_password(shared, "polly", "Str0ng-Secret", &err), err);
	set_policy(shared, false);
}

/* ---- folder privileges and access ----------------------------------------------------------------- */

static void test_folder_access(void **state)
{
	GError *err = NULL;
	create_plain("john", MV_PRIV_LOGIN);
	ok(mv_user_set_folder_privileges(shared, "john", "john", MV_FOLDER_READ | MV_FOLDER_WRITE, &err), err);
	ok(mv_user_set_folder_privileges(shared, "john", "John/Private", 0, &err), err);                /* deny */
	ok(mv_user_set_folder_privileges(shared, "john", "john/Private/Shared", MV_FOLDER_READ, &err), err);
	ok(mv_user_set_folder_privileges(shared, "john", "team", MV_FOLDER_ALL, &err), err);
	ok(mv_user_set_folder_privileges(shared, "john", "TEAM", MV_FOLDER_READ, &err), err);           /* replaces */
	fails(mv_user_set_folder_privileges(shared, "john", "/john", MV_FOLDER_READ, &err), &err, MV_ERR_INVALID,
	      "folder");
	fails(mv_user_set_folder_privileges(shared, "john", "a//b", MV_FOLDER_READ, &err), &err, MV_ERR_INVALID,
	      "folder");
	fails(mv_user_set_folder_privileges(shared, "ghost", "x", MV_FOLDER_READ, &err), &err, MV_ERR_NOT_FOUND,
	      "ghost");

	GPtrArray *grants = mv_user_folder_privileges(shared, "john", &err);
	assert_int_equal(grants->len, 4);
	g_ptr_array_free(grants, TRUE);

	mv_access *a = mv_access_load(shared, "JOHN", &err);
	ok(a ? 0 : -1, err);
	assert_false(mv_access_unrestricted(a));
	assert_string_equal(mv_access_user(a), "john");
	assert_int_equal(mv_access_folder(a, "john", ""), MV_FOLDER_READ | MV_FOLDER_WRITE);
	assert_int_equal(mv_access_folder(a, "john", "Inbox/2024"), MV_FOLDER_READ | MV_FOLDER_WRITE);
	assert_int_equal(mv_access_folder(a, "JOHN", "inbox"), MV_FOLDER_READ | MV_FOLDER_WRITE);
	assert_int_equal(mv_access_folder(a, "john", "Private"), 0);
	assert_int_equal(mv_access_folder(a, "john", "private/deeper"), 0);
	assert_int_equal(mv_access_folder(a, "john", "Private/Shared/x"), MV_FOLDER_READ);   /* longest wins */
	assert_int_equal(mv_access_folder(a, "john", "PrivateNot"), MV_FOLDER_READ | MV_FOLDER_WRITE);
	assert_int_equal(mv_access_folder(a, "johnny", ""), 0);                              /* component boundary */
	assert_int_equal(mv_access_folder(a, "team", "x"), MV_FOLDER_READ);
	assert_int_equal(mv_access_folder(a, "other", ""), 0);
	mv_access_free(&a);

	/* an administrator and no access at all are unrestricted */
	create_plain("boss", MV_PRIV_ADMIN);
	a = mv_access_load(shared, "boss", &err);
	assert_true(mv_access_unrestricted(a));
	assert_int_equal(mv_access_folder(a, "anyone", "x"), MV_FOLDER_ALL);
	mv_access_free(&a);
	assert_true(mv_access_unrestricted(NULL));
	assert_int_equal(mv_access_folder(NULL, "x", ""), MV_FOLDER_ALL);
	assert_null(mv_access_load(shared, "ghost", &err));
	fails(-1, &err, MV_ERR_NOT_FOUND, "ghost");

	ok(mv_user_clear_folder_privileges(shared, "john", &err), err);
	a = mv_access_load(shared, "john", &err);
	assert_int_equal(mv_access_folder(a, "john", ""), 0);
	mv_access_free(&a);
}

/* ---- user names beyond ASCII ------------------------------------------------------------------------ */

#define JUERGEN "J\xc3\xbcrgen"                 /* Jürgen, as created */
#define JUERGEN_UPPER "J\xc3\x9cRGEN"           /* JÜRGEN */
#define JUERGEN_LOWER "j\xc3\xbcrgen"           /* jürgen */
#define JUERGEN_NFD "Ju\xcc\x88rgen"            /* Jürgen with a combining diaeresis */

static void names_user(mv_instance *inst, const char *asked, const char *stored)
{
	GError *err = NULL;
	mv_user *u = mv_user_get(inst, asked, &err);
	if (!u)
		fail_msg("'%s' finds no user ('%s' expected): %s", asked, stored, err ? err->message : "");
	assert_string_equal(u->name, stored);
	mv_user_free(u);
}

static void names_nobody(mv_instance *inst, const char *asked)
{
	GError *err = NULL;
	assert_null(mv_user_get(inst, asked, &err));
	fails(-1, &err, MV_ERR_NOT_FOUND, "does not exist");
}

static void authenticates(mv_instance *inst, const char *asked, const char *password, const char *stored)
{
	GError *err = NULL;
	mv_user *u = NULL;
	ok(mv_user_authenticate(inst, asked, password, &u, &err), err);
	assert_string_equal(u->name, stored);
	mv_user_free(u);
}

/* Created as "Jürgen", asked for in other cases and forms everywhere. */
static void test_unicode_lookup(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("unicode");
	mv_instance *inst = open_instance(dir);
	ok(mv_user_create(inst, JUERGEN, MV_PRIV_LOGIN, MV_LOGIN_ALL, NULL, NULL, NULL, "Secret-123", &err), err);
	names_user(inst, JUERGEN_UPPER, JUERGEN);
	names_user(inst, JUERGEN_LOWER, JUERGEN);
	names_user(inst, JUERGEN_NFD, JUERGEN);
	authenticates(inst, JUERGEN_UPPER, "Secret-123", JUERGEN);
	authenticates(inst, JUERGEN_LOWER, "Secret-123", JUERGEN);
	auth_fails(inst, JUERGEN_UPPER, "secret-123");
	auth_fails(inst, "JURGEN", "Secret-123");

	/* uniqueness agrees: neither another case nor another normal form */
	fails(mv_user_create(inst, JUERGEN_UPPER, 0, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_EXISTS,
	      "already exists");
	fails(mv_user_create(inst, JUERGEN_NFD, 0, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_EXISTS,
	      "already exists");

	/* privileges, setters and folder grants by the other spellings */
	ok(mv_user_set_privileges(inst, JUERGEN_UPPER, MV_PRIV_LOGIN | MV_PRIV_EXPORT, &err), err);
	ok(mv_user_set_login_privileges(inst, JUERGEN_LOWER, MV_LOGIN_API, &err), err);
	ok(mv_user_set_full_name(inst, JUERGEN_UPPER, "J. M\xc3\xbcller", &err), err);
	ok(mv_user_set_folder_privileges(inst, JUERGEN_UPPER, "j\xc3\xbcrgen", MV_FOLDER_READ, &err), err);
	ok(mv_user_set_folder_privileges(inst, JUERGEN_LOWER, "J\xc3\x9cRGEN", MV_FOLDER_ALL, &err), err);  /* replaces */
	GPtrArray *grants = mv_user_folder_privileges(inst, JUERGEN_NFD, &err);
	ok(grants ? 0 : -1, err);
	assert_int_equal(grants->len, 1);
	g_ptr_array_free(grants, TRUE);
	mv_access *a = mv_access_load(inst, JUERGEN_UPPER, &err);
	ok(a ? 0 : -1, err);
	assert_string_equal(mv_access_user(a), JUERGEN);
	assert_int_equal(mv_access_folder(a, "J\xc3\x9cRGEN", "Inbox"), MV_FOLDER_ALL);
	mv_access_free(&a);
	mv_user *u = mv_user_get(inst, JUERGEN_LOWER, &err);
	assert_int_equal(u->privileges, MV_PRIV_LOGIN | MV_PRIV_EXPORT);
	assert_int_equal(u->login_privileges, MV_LOGIN_API);
	assert_string_equal(u->full_name, "J. M\xc3\xbcller");
	mv_user_free(u);

	/* renaming by another spelling: to a new name, then only its case */
	ok(mv_user_rename(inst, JUERGEN_UPPER, "J\xc3\xbcrgen.M\xc3\xbcller", &err), err);
	names_nobody(inst, JUERGEN_LOWER);
	names_user(inst, "J\xc3\x9cRGEN.M\xc3\x9cLLER", "J\xc3\xbcrgen.M\xc3\xbcller");
	ok(mv_user_rename(inst, "j\xc3\xbcrgen.m\xc3\xbcller", "J\xc3\x9cRGEN.M\xc3\x9cLLER", &err), err);
	names_user(inst, "j\xc3\xbcrgen.m\xc3\xbcller", "J\xc3\x9cRGEN.M\xc3\x9cLLER");
	authenticates(inst, "j\xc3\xbcrgen.M\xc3\xbcller", "Secret-123", "J\xc3\x9cRGEN.M\xc3\x9cLLER");
	grants = mv_user_folder_privileges(inst, "J\xc3\xbcrgen.M\xc3\xbcller", &err);
	assert_int_equal(grants->len, 1);                        /* the grant followed both renames */
	g_ptr_array_free(grants, TRUE);
	ok(mv_user_create(inst, "\xc3\x84RZTE", 0, 0, NULL, NULL, NULL, NULL, &err), err);
	fails(mv_user_rename(inst, "\xc3\xa4rzte", "j\xc3\xbcrgen.m\xc3\xbcller", &err), &err, MV_ERR_EXISTS,
	      "already exists");
	names_user(inst, "\xc3\xa4rzte", "\xc3\x84RZTE");        /* stored capital beyond ASCII: the fallback */
	ok(mv_user_delete(inst, "A\xcc\x88rzte", &err), err);
	ok(mv_user_delete(inst, "j\xc3\xbcrgen.m\xc3\xbcller", &err), err);
	names_nobody(inst, "J\xc3\x9cRGEN.M\xc3\x9cLLER");

	/* ASCII as before; text that cannot name a user names nobody */
	ok(mv_user_create(inst, "Bob.Smith", 0, 0, NULL, NULL, NULL, NULL, &err), err);
	names_user(inst, "BOB.SMITH", "Bob.Smith");
	names_nobody(inst, "bob.smit");
	names_nobody(inst, "caf\xe9");
	char *huge = g_strnfill(100000, 'S');
	names_nobody(inst, huge);
	g_free(huge);
	mv_instance_close(&inst);
	g_free(dir);
}

static char *test_name_key(const char *s)
{
	char *nfd = g_utf8_normalize(s, -1, G_NORMALIZE_NFD), *folded = g_utf8_casefold(nfd, -1);
	char *key = g_utf8_normalize(folded, -1, G_NORMALIZE_NFC);
	g_free(nfd);
	g_free(folded);
	return key;
}

static bool test_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* A name spelt with c (a character beyond ASCII whose fold is ASCII, like ß
 * or the Kelvin sign) is one user with its ASCII spelling, both ways. */
static void ascii_spelling_is_same_user(mv_instance *inst, gunichar c)
{
	GError *err = NULL;
	char ch[8] = { 0 };
	g_unichar_to_utf8(c, ch);
	char *name = g_strdup_printf("%sq%sx", ch, ch);
	char *key = test_name_key(name), *upper = g_ascii_strup(key, -1);
	ok(mv_user_create(inst, name, 0, 0, NULL, NULL, NULL, NULL, &err), err);
	names_user(inst, upper, name);
	names_user(inst, key, name);
	fails(mv_user_create(inst, upper, 0, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_EXISTS, "already exists");
	ok(mv_user_delete(inst, upper, &err), err);
	/* and the other way round: stored in ASCII, asked for with c */
	ok(mv_user_create(inst, upper, 0, 0, NULL, NULL, NULL, NULL, &err), err);
	names_user(inst, name, upper);
	ok(mv_user_delete(inst, name, &err), err);
	g_free(name);
	g_free(key);
	g_free(upper);
}

/* Every code point, so a Unicode update of GLib that adds such characters
 * fails here rather than letting a lookup miss a user uniqueness sees. */
static void test_ascii_foldings(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("foldings");
	mv_instance *inst = open_instance(dir);
	int found = 0;
	for (gunichar c = 0x80; c <= 0x10ffff; c++) {
		char ch[8] = { 0 };
		if (!g_unichar_validate(c) || g_unichar_iscntrl(c) || !g_unichar_to_utf8(c, ch))
			continue;
		char *key = test_name_key(ch);
		if (test_is_ascii(key) && !strpbrk(key, "/,:")) {
			ascii_spelling_is_same_user(inst, c);
			found++;
		}
		g_free(key);
	}
	assert_true(found >= 13);
	ok(mv_user_create(inst, "Stra\xc3\x9f" "e", 0, 0, NULL, NULL, NULL, NULL, &err), err);
	names_user(inst, "STRASSE", "Stra\xc3\x9f" "e");
	names_user(inst, "strasse", "Stra\xc3\x9f" "e");
	names_nobody(inst, "strase");
	fails(mv_user_create(inst, "Strasse", 0, 0, NULL, NULL, NULL, NULL, &err), &err, MV_ERR_EXISTS, "already exists");
	mv_instance_close(&inst);
	g_free(dir);
}

/* ---- compliance configuration ------------------------------------------------------------------------- */

static void compliance_fails(const char *json_text, const char *message)
{
	GError *err = NULL;
	mv_compliance c;
	json_t *obj = json_loads(json_text, JSON_DECODE_ANY, NULL);
	assert_non_null(obj);
	assert_int_equal(mv_compliance_from_json(obj, &c, &err), -1);
	json_decref(obj);
	assert_true(g_error_matches(err, MV_ERROR, MV_ERR_INVALID));
	if (!strstr(err->message, message))
		fail_msg("'%s': error '%s', expected '%s'", json_text, err->message, message);
	g_error_free(err);
}

#define FLAGS "\"adminEmailPreviewEnabled\":true,\"legalHoldEnabled\":false,\"passwordPolicyEnabled\":false"

static void test_compliance(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("compliance");
	mv_instance *inst = open_instance(dir);
	mv_compliance c;
	ok(mv_compliance_get(inst, &c, &err), err);
	json_t *defaults = mv_compliance_to_json(&c);
	char *text = json_dumps(defaults, JSON_COMPACT);   /* the reference's order */
	assert_string_equal(text, "{" FLAGS ",\"logSuccessfulUserActivities\":[]}");
	free(text);
	json_decref(defaults);
	mv_compliance_clear(&c);

	const char *example = "{\"adminEmailPreviewEnabled\":false,\"legalHoldEnabled\":true,"
	                      "\"passwordPolicyEnabled\":true,\"logSuccessfulUserActivities\":[\"UserAdd\","
	                      "\"FileGroupCreate\",\"UserAdd\"]}";
	json_t *obj = json_loads(example, 0, NULL);
	ok(mv_compliance_from_json(obj, &c, &err), err);
	json_decref(obj);
	assert_false(c.admin_email_preview_enabled);
	assert_true(c.legal_hold_enabled);
	assert_true(c.password_policy_enabled);
	assert_int_equal(c.log_successful_user_activities->len, 2);   /* duplicates dropped */
	ok(mv_compliance_set(inst, &c, &err), err);
	mv_compliance_clear(&c);
	mv_instance_close(&inst);
	inst = open_instance(dir);
	ok(mv_compliance_get(inst, &c, &err), err);
	json_t *back = mv_compliance_to_json(&c);
	text = json_dumps(back, JSON_COMPACT);
	assert_string_equal(text, "{\"adminEmailPreviewEnabled\":false,\"legalHoldEnabled\":true,"
	                    "\"passwordPolicyEnabled\":true,\"logSuccessfulUserActivities\":[\"UserAdd\","
	                    "\"FileGroupCreate\"]}");
	free(text);
	json_decref(back);

	/* which successful user activities are logged; admin actions always */
	assert_true(mv_audit_wanted(inst, "UserAdd", false));
	assert_true(mv_audit_wanted(inst, "FileGroupCreate", false));
	assert_false(mv_audit_wanted(inst, "SearchArchive", false));
	assert_true(mv_audit_wanted(inst, "SearchArchive", true));
	mv_compliance_clear(&c);

	compliance_fails("[]", "config: expected a JSON object");
	compliance_fails("{" FLAGS ",\"logSuccessfulUserActivities\":[],\"extra\":1}", "config.extra: unknown field");
	compliance_fails("{\"adminEmailPreviewEnabled\":\"yes\",\"legalHoldEnabled\":false,"
	                 "\"passwordPolicyEnabled\":false,\"logSuccessfulUserActivities\":[]}",
	                 "config.adminEmailPreviewEnabled: wrong type");
	compliance_fails("{\"adminEmailPreviewEnabled\":true,\"passwordPolicyEnabled\":false,"
	                 "\"logSuccessfulUserActivities\":[]}", "config.legalHoldEnabled: missing");
	compliance_fails("{" FLAGS "}", "config.logSuccessfulUserActivities: missing");
	compliance_fails("{" FLAGS ",\"logSuccessfulUserActivities\":\"UserAdd\"}",
	                 "config.logSuccessfulUserActivities: expected an array");
	compliance_fails("{" FLAGS ",\"logSuccessfulUserActivities\":[\"User Add\"]}",
	                 "config.logSuccessfulUserActivities[0]: expected an event type name");
	compliance_fails("{" FLAGS ",\"logSuccessfulUserActivities\":[\"UserAdd\",7]}",
	                 "config.logSuccessfulUserActivities[1]");
	mv_instance_close(&inst);
	g_free(dir);
}

/* ---- the audit log ------------------------------------------------------------------------------------- */

static void append(mv_instance *inst, const char *event, bool success, const char *details)
{
	GError *err = NULL;
	ok(mv_audit_append(inst, "admin", "127.0.0.1", event, success, details, &err), err);
}

/* Verifies with the anchor (or none) and checks where the log breaks;
 * returns the report's head as an anchor "SEQ:HASH" (caller frees). */
static char *verify_anchored(mv_instance *inst, const char *anchor, int64_t broken_at, const char *reason_part)
{
	GError *err = NULL;
	mv_audit_report r;
	ok(mv_audit_verify(inst, anchor, &r, &err), err);
	if (r.first_broken != broken_at)
		fail_msg("broken at %" G_GINT64_FORMAT " (%s), expected %" G_GINT64_FORMAT, r.first_broken,
		         r.reason ? r.reason : "intact", broken_at);
	if (broken_at == 0)
		assert_null(r.reason);
	else if (!strstr(r.reason, reason_part))
		fail_msg("reason '%s' does not contain '%s'", r.reason, reason_part);
	char *head = g_strdup_printf("%" G_GINT64_FORMAT ":%s", r.last_seq, r.last_hash ? r.last_hash : "");
	mv_audit_report_clear(&r);
	return head;
}

static void verify_is(mv_instance *inst, int64_t broken_at, const char *reason_part)
{
	g_free(verify_anchored(inst, NULL, broken_at, reason_part));
}

static int64_t audit_count(mv_instance *inst)
{
	GError *err = NULL;
	GPtrArray *all = mv_audit_read(inst, 0, 0, &err);
	ok(all ? 0 : -1, err);
	int64_t n = all->len;
	g_ptr_array_free(all, TRUE);
	return n;
}

static void test_audit_append_read(void **state)
{
	GError *err = NULL;
	char *dir = new_instance_dir("audit");
	mv_instance *inst = open_instance(dir);
	verify_is(inst, 0, NULL);   /* empty: intact */
	int64_t start = g_get_real_time() / 1000;
	append(inst, "UserAdd", true, "{\"user\":\"x\"}");
	append(inst, "UserDelete", false, "caf\xe9\nnext line");
	GString *big = g_string_new(NULL);
	while (big->len < 70000)
		g_string_append(big, "\xc3\xa4");
	append(inst, "AdminApiCall", true, big->str);
	g_string_free(big, TRUE);

	GPtrArray *all = mv_audit_read(inst, 0, 0, &err);
	assert_int_equal(all->len, 3);
	const mv_audit_entry *e = all->pdata[0];
	assert_int_equal(e->seq, 1);
	assert_true(e->time_ms >= start);
	assert_string_equal(e->user, "admin");
	assert_string_equal(e->remote, "127.0.0.1");
	assert_string_equal(e->event, "UserAdd");
	assert_true(e->success);
	assert_string_equal(e->details, "{\"user\":\"x\"}");
	assert_int_equal(strlen(e->hash), 64);
	e = all->pdata[1];
	assert_false(e->success);
	assert_true(g_utf8_validate(e->details, -1, NULL));
	assert_null(strchr(e->details, '\n'));
	e = all->pdata[2];
	assert_true(strlen(e->details) <= 64 * 1024);
	assert_true(g_str_has_suffix(e->details, "\xe2\x80\xa6"));
	assert_true(g_utf8_validate(e->details, -1, NULL));
	g_ptr_array_free(all, TRUE);

	all = mv_audit_read(inst, 0, 2, &err);
	assert_int_equal(all->len, 2);
	g_ptr_array_free(all, TRUE);
	all = mv_audit_read(inst, g_get_real_time() / 1000 + 60000, 0, &err);
	assert_int_equal(all->len, 0);
	g_ptr_array_free(all, TRUE);
	verify_is(inst, 0, NULL);
	mv_instance_close(&inst);
	g_free(dir);
}

static void sql(const char *dir, const char *statement)
{
	char *path = g_build_filename(dir, "master.sqlite", NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	char *msg = NULL;
	if (sqlite3_exec(db, statement, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", statement, msg);
	sqlite3_close(db);
	g_free(path);
}

static void test_audit_tampering(void **state)
{
	char *dir = new_instance_dir("tamper");
	mv_instance *inst = open_instance(dir);
	for (int i = 1; i <= 6; i++) {
		char *details = g_strdup_printf("entry %d", i);
		append(inst, "UserUpdate", true, details);
		g_free(details);
	}
	verify_is(inst, 0, NULL);
	sql(dir, "UPDATE audit_log SET details='entry 3, edited' WHERE seq=3");
	verify_is(inst, 3, "hash does not match");
	sql(dir, "UPDATE audit_log SET details='entry 3' WHERE seq=3");
	verify_is(inst, 0, NULL);
	sql(dir, "UPDATE audit_log SET success=0 WHERE seq=2");
	verify_is(inst, 2, "hash does not match");
	sql(dir, "UPDATE audit_log SET success=1 WHERE seq=2");
	sql(dir, "DELETE FROM audit_log WHERE seq=4");
	verify_is(inst, 5, "entries 4 to 4 are missing");
	/* renumbering to hide the gap breaks the hash instead */
	sql(dir, "UPDATE audit_log SET seq=seq-1 WHERE seq>4");
	verify_is(inst, 4, "hash does not match");
	sql(dir, "DELETE FROM audit_log WHERE seq=1");
	verify_is(inst, 2, "entries 1 to 1 are missing");
	/* the log goes on being written even when broken */
	append(inst, "UserUpdate", true, "after");
	verify_is(inst, 2, "missing");
	mv_instance_close(&inst);
	g_free(dir);
}

/* Entries cut from the end leave a chain that follows: only a head kept
 * from an earlier verification (the anchor) shows them missing. */
static void test_audit_anchor(void **state)
{
	char *dir = new_instance_dir("anchor");
	mv_instance *inst = open_instance(dir);
	for (int i = 1; i <= 5; i++)
		append(inst, "UserUpdate", true, "entry");
	char *head = verify_anchored(inst, NULL, 0, NULL);
	assert_true(g_str_has_prefix(head, "5:"));
	assert_int_equal(strlen(head), 2 + 64);
	append(inst, "UserUpdate", true, "entry 6");
	g_free(verify_anchored(inst, head, 0, NULL));            /* the log grew past the anchor: intact */
	sql(dir, "DELETE FROM audit_log WHERE seq>=4");
	verify_is(inst, 0, NULL);                                /* without the anchor the cut does not show */
	g_free(verify_anchored(inst, head, 4, "entries 4 to 5 are missing"));
	/* rewritten from entry 4 on: the chain is made to follow again only by
	 * someone with the key, here the instance itself */
	append(inst, "UserUpdate", true, "forged 4");
	append(inst, "UserUpdate", true, "forged 5");
	g_free(verify_anchored(inst, head, 5, "differs from the anchor"));
	GError *err = NULL;
	mv_audit_report r;
	const char *bad[] = { "5", "x:00", "0:0000000000000000000000000000000000000000000000000000000000000000",
	                      "5:abc", "5x:0000000000000000000000000000000000000000000000000000000000000000" };
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		assert_int_equal(mv_audit_verify(inst, bad[i], &r, &err), -1);
		assert_non_null(strstr(err->message, "anchor"));
		g_clear_error(&err);
	}
	g_free(head);
	mv_instance_close(&inst);
	g_free(dir);
}

#define APPENDS_PER_THREAD 200

static gpointer appender(gpointer dir)
{
	mv_instance *inst = open_instance(dir);
	GError *err = NULL;
	int failures = 0;
	for (int i = 0; i < APPENDS_PER_THREAD; i++) {
		if (mv_audit_append(inst, "t", "local", "AdminApiCall", true, "concurrent", &err) < 0) {
			failures++;
			g_clear_error(&err);
		}
	}
	mv_instance_close(&inst);
	return GINT_TO_POINTER(failures);
}

static void test_audit_concurrent(void **state)
{
	int64_t before = audit_count(shared);
	GThread *a = g_thread_new("append-a", appender, shared_dir);
	GThread *b = g_thread_new("append-b", appender, shared_dir);
	assert_int_equal(GPOINTER_TO_INT(g_thread_join(a)), 0);
	assert_int_equal(GPOINTER_TO_INT(g_thread_join(b)), 0);
	assert_int_equal(audit_count(shared), before + 2 * APPENDS_PER_THREAD);
	verify_is(shared, 0, NULL);
}

static void test_audit_key_renewal(void **state)
{
	GError *err = NULL;
	append(shared, "FileGroupCreate", true, "before renewal");
	ok(mv_instance_renew_master_key(shared, &err), err);
	verify_is(shared, 0, NULL);
	append(shared, "FileGroupCreate", true, "after renewal");
	verify_is(shared, 0, NULL);
	ok(mv_instance_renew_master_key(shared, &err), err);
	mv_instance *other = open_instance(shared_dir);   /* a process reading master.key afresh */
	append(other, "FileGroupCreate", true, "from another instance");
	verify_is(other, 0, NULL);
	mv_instance_close(&other);
	char *next = NULL;
	ok(mv_instance_get_setting(shared, "audit_key_wrapped_next", &next, &err), err);
	assert_null(next);
}

/* ---- the registry functions ------------------------------------------------------------------------------- */

/* Runs F (as call) and checks that it succeeded. */
#define call_ok(...) json_decref(succeeded(call(__VA_ARGS__)))

static json_t *succeeded(json_t *env)
{
	result_of(env);
	return env;
}

static void test_functions(void **state)
{
	call_ok("CreateUser", "userName", "web.user", "privileges", "login", "fullName", "Web User", NULL);
	json_t *env = call("GetUserInfo", "userName", "WEB.USER", NULL);
	json_t *info = result_of(env);
	char *text = json_dumps(info, JSON_COMPACT);
	assert_string_equal(text, "{\"userName\":\"web.user\",\"fullName\":\"Web User\",\"distinguishedName\":null,"
	                    "\"authentication\":\"integrated\",\"emailAddresses\":[],\"pop3UserNames\":[],"
	                    "\"privileges\":\"login\",\"loginPrivileges\":\"windows,web,outlook,windowsCmd,imap,api\","
	                    "\"privilegesOnFolders\":[],\"mfaStatus\":\"none\"}");
	free(text);
	json_decref(env);

	call_ok("SetUserEmailAddresses", "userName", "web.user", "emailAddresses", " a@example.com, ,b@example.org ",
	        NULL);
	call_fails(call("SetUserEmailAddresses", "userName", "web.user", "emailAddresses", "a@example.com,nobody", NULL),
	           "SetUserEmailAddresses: emailAddresses: 'nobody'");
	call_ok("SetUserLoginPrivileges", "userName", "web.user", "loginPrivileges", "web,api", NULL);
	call_ok("SetUserPrivilegesOnFolder", "userName", "web.user", "folder", "web.user/Inbox", "privileges", "read",
	        NULL);
	call_fails(call("SetUserPrivileges", "userName", "web.user", "privileges", "login,superuser", NULL),
	           "SetUserPrivileges: privileges: unknown privilege 'superuser'");
	call_fails(call("SetUserPrivilegesOnAllFolders", "userName", "web.user", "privileges", "read",
	                "excludeFolders", "a/b", NULL), "only whole archives");
	call_fails(call("DeleteUser", "userName", "ghost", NULL), "DeleteUser: user 'ghost' does not exist");
	env = call("GetUserInfo", "userName", "web.user", NULL);
	info = result_of(env);
	assert_string_equal(json_string_value(json_object_get(info, "loginPrivileges")), "web,api");
	assert_int_equal(json_array_size(json_object_get(info, "emailAddresses")), 2);
	json_t *grant = json_array_get(json_object_get(info, "privilegesOnFolders"), 0);
	assert_string_equal(json_string_value(json_object_get(grant, "folder")), "web.user/Inbox");
	assert_string_equal(json_string_value(json_object_get(grant, "privileges")), "read");
	json_decref(env);

	/* a compliance field left out keeps its value */
	call_ok("SetComplianceConfiguration", "config", "{\"legalHoldEnabled\":true}", NULL);
	call_ok("SetComplianceConfiguration", "config", "{\"logSuccessfulUserActivities\":[\"UserAdd\"]}", NULL);
	env = call("GetComplianceConfiguration", NULL);
	assert_true(json_is_true(json_object_get(result_of(env), "legalHoldEnabled")));
	json_decref(env);
	call_fails(call("SetComplianceConfiguration", "config", "{\"legalHold\":true}", NULL),
	           "SetComplianceConfiguration: config.legalHold: unknown field");
	call_ok("SetComplianceConfiguration", "config", "{\"legalHoldEnabled\":false,"
	        "\"logSuccessfulUserActivities\":[]}", NULL);

	/* every change was audited, without the password */
	call_ok("SetUserPassword", "userName", "web.user", "password", "pa55-Word-x", NULL);
	env = call("GetAuditLog", "since", "2000-01-01", "limit", "100000", NULL);
	json_t *entries = result_of(env);
	json_t *last = json_array_get(entries, json_array_size(entries) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "event")), "UserUpdate");
	assert_null(strstr(json_string_value(json_object_get(last, "details")), "pa55"));
	assert_true(g_str_has_suffix(json_string_value(json_object_get(last, "time")), "Z"));
	json_decref(env);
	call_fails(call("GetAuditLog", "since", "yesterday", NULL), "GetAuditLog: since: 'yesterday'");
	call_fails(call("GetAuditLog", "limit", "-1", NULL), "GetAuditLog: limit: must be 1 to 100000, or 0 for all");
	call_fails(call("GetAuditLog", "limit", "100001", NULL), "GetAuditLog: limit: must be 1 to 100000, or 0 for all");
	/* limit 0 is all of them, as for every function that takes a limit
	 * (a successful read adds no entry in between) */
	json_t *all = call("GetAuditLog", "limit", "0", NULL), *most = call("GetAuditLog", "limit", "100000", NULL);
	assert_true(json_array_size(result_of(all)) > 400);
	assert_true(json_equal(result_of(all), result_of(most)));
	json_decref(all);
	json_decref(most);

	env = call("VerifyAuditLog", NULL);
	json_t *v = result_of(env);
	assert_true(json_is_true(json_object_get(v, "intact")));
	assert_true(json_is_null(json_object_get(v, "firstBrokenEntry")));
	assert_true(json_is_null(json_object_get(v, "reason")));
	assert_true(json_integer_value(json_object_get(v, "entries")) > 400);
	json_decref(env);

	env = call("GetUsers", NULL);
	json_t *users = result_of(env);
	assert_true(json_array_size(users) > 5);
	json_t *first = json_array_get(users, 0);
	assert_int_equal(json_object_size(first), 4);
	assert_non_null(json_object_get(first, "distinguishedName"));
	json_decref(env);
}

static void test_parse_time(void **state)
{
	GError *err = NULL;
	int64_t ms = 0;
	ok(mv_audit_parse_time("since", "1700000000", &ms, &err), err);
	assert_int_equal(ms, INT64_C(1700000000000));
	ok(mv_audit_parse_time("since", "2024-05-01", &ms, &err), err);
	assert_int_equal(ms, INT64_C(1714521600000));
	ok(mv_audit_parse_time("since", "2024-05-01T12:00:00.250Z", &ms, &err), err);
	assert_int_equal(ms, INT64_C(1714564800250));
	ok(mv_audit_parse_time("since", "2024-05-01T14:00:00+02:00", &ms, &err), err);
	assert_int_equal(ms, INT64_C(1714564800000));
	fails(mv_audit_parse_time("since", "soon", &ms, &err), &err, MV_ERR_INVALID, "since: 'soon'");
	fails(mv_audit_parse_time("since", "", &ms, &err), &err, MV_ERR_INVALID, "since");
	char *t = mv_audit_format_time(INT64_C(1714564800250));
	assert_string_equal(t, "2024-05-01T12:00:00.250Z");
	g_free(t);
}

int main(void)
{
	mv_log_set_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_privileges),
		cmocka_unit_test(test_user_names),
		cmocka_unit_test(test_create_get_list),
		cmocka_unit_test(test_setters),
		cmocka_unit_test(test_last_admin),
		cmocka_unit_test(test_passwords),
		cmocka_unit_test(test_password_policy),
		cmocka_unit_test(test_folder_access),
		cmocka_unit_test(test_unicode_lookup),
		cmocka_unit_test(test_ascii_foldings),
		cmocka_unit_test(test_compliance),
		cmocka_unit_test(test_audit_append_read),
		cmocka_unit_test(test_audit_tampering),
		cmocka_unit_test(test_audit_anchor),
		cmocka_unit_test(test_audit_concurrent),
		cmocka_unit_test(test_audit_key_renewal),
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
