/* cli/export: `mailvault export` and `mailvault verify-export`.
 *
 * export is a front end to the registry function ExportMessages (the same
 * call the shell and the HTTP API make): it turns options into the
 * function's arguments, reads a mail server's password from a file or the
 * environment (never from the command line, where `ps` shows it), shows
 * progress and lets Ctrl-C cancel at a safe point.  verify-export needs no
 * data directory: it checks a signed export with the export's own
 * publickey.pem, the same check `openssl dgst -verify` makes file by file. */
#include "cli/cli.h"
#include "export/export.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct export_opts {
	char *archive, *folder, *query, *since, *before, *as_user;
	char *user, *password_file, *tls, *ca_file, *target_folder, *from, *to;
	gboolean sign, no_headers, insecure, json;
} export_opts;

static void opts_clear(export_opts *o)
{
	char **strs[] = { &o->archive, &o->folder, &o->query, &o->since, &o->before, &o->as_user, &o->user,
		          &o->password_file, &o->tls, &o->ca_file, &o->target_folder, &o->from, &o->to };
	for (size_t i = 0; i < G_N_ELEMENTS(strs); i++)
		g_clear_pointer(strs[i], g_free);
}

static void set_string(json_t *args, const char *name, const char *value)
{
	if (value)
		json_object_set_new(args, name, json_string(value));
}

/* The mail server's password: the first line of --password-file, else
 * $MAILVAULT_EXPORT_PASSWORD; NULL when neither is given. */
static char *read_password(const export_opts *o, GError **error)
{
	if (!o->password_file) {
		const char *env = g_getenv("MAILVAULT_EXPORT_PASSWORD");
		return env ? g_strdup(env) : NULL;
	}
	GByteArray *data = NULL;
	if (mv_read_file(o->password_file, 64 * 1024, &data, error) < 0)
		return NULL;
	char *text = g_strndup((const char *)data->data, data->len);
	g_byte_array_unref(data);
	text[strcspn(text, "\r\n")] = '\0';
	return text;
}

static json_t *build_args(const char *kind, const char *where, const export_opts *o, GError **error)
{
	json_t *args = json_object();
	set_string(args, "target", kind);
	bool dir = strcmp(kind, "eml") == 0 || strcmp(kind, "mbox") == 0;
	set_string(args, dir ? "directory" : "url", where);
	set_string(args, "archive", o->archive);
	set_string(args, "folder", o->folder);
	set_string(args, "query", o->query);
	set_string(args, "since", o->since);
	set_string(args, "before", o->before);
	set_string(args, "user", o->user);
	set_string(args, "tls", o->tls);
	set_string(args, "caFile", o->ca_file);
	set_string(args, "targetFolder", o->target_folder);
	set_string(args, "from", o->from);
	set_string(args, "recipient", o->to);
	if (o->sign)
		json_object_set_new(args, "sign", json_true());
	if (o->no_headers)
		json_object_set_new(args, "mailStoreHeaders", json_false());
	if (o->insecure)
		json_object_set_new(args, "verifyCertificate", json_false());
	if (!dir) {
		char *pw = read_password(o, error);
		if (!pw && error && *error) {
			json_decref(args);
			return NULL;
		}
		set_string(args, "password", pw);
		g_free(pw);
	}
	return args;
}

static void print_result(json_t *res, bool json)
{
	if (json) {
		mv_cli_print_json(json_incref(res));
		return;
	}
	const char *where = json_string_value(json_object_get(res, "directory"));
	printf("exported %lld messages (%lld failed, %lld in scope)%s%s\n",
	       (long long)json_integer_value(json_object_get(res, "messagesExported")),
	       (long long)json_integer_value(json_object_get(res, "messagesFailed")),
	       (long long)json_integer_value(json_object_get(res, "messagesInScope")), where ? " to " : "",
	       where ? where : "");
	const char *fp = json_string_value(json_object_get(res, "publicKeySha256"));
	if (fp)
		printf("signed; public key SHA-256 %s (recorded in the audit log)\n", fp);
}

static int run_export(mv_instance *inst, const char *kind, const char *where, const export_opts *o)
{
	GError *err = NULL;
	mv_access *access = NULL;
	if (o->as_user && !(access = mv_access_load(inst, o->as_user, &err)))
		return mv_cli_fail(err);
	json_t *args = build_args(kind, where, o, &err);
	if (!args) {
		mv_access_free(&access);
		return mv_cli_fail(err);
	}
	mv_cli_progress ps = MV_CLI_PROGRESS_INIT(isatty(STDERR_FILENO) != 0);
	struct sigaction old;
	volatile gint *cancel = mv_cli_sigint_catch("\nmailvault: cancelling the export (Ctrl-C again to kill)\n",
	                                            "cancel the export", &old);
	mv_command_ctx ctx = { .inst = inst, .user = o->as_user ? o->as_user : "admin", .remote = "local",
		               .access = access, .progress = mv_cli_print_progress, .progress_opaque = &ps,
		               .cancel = cancel, .log = g_string_new(NULL) };
	json_t *res = mv_command_call(mv_command_find("ExportMessages"), &ctx, args, &err);
	mv_cli_sigint_release(&old);
	if (ps.tty && ps.last > 0)
		fprintf(stderr, "\n");
	/* What the function reports on the way (messages it could not read,
	 * stores left out) goes to stderr, the result to stdout. */
	fputs(ctx.log->str, stderr);
	g_string_free(ctx.log, TRUE);
	json_decref(args);
	mv_access_free(&access);
	if (!res)
		return mv_cli_fail(err);
	print_result(res, o->json);
	int rc = json_integer_value(json_object_get(res, "messagesFailed")) > 0 ? MV_EXIT_FAIL : MV_EXIT_OK;
	json_decref(res);
	return rc;
}

int mv_cli_export(const mv_cli_globals *g, int argc, char **argv)
{
	export_opts o = { 0 };
	GOptionEntry entries[] = {
		{ "archive", 0, 0, G_OPTION_ARG_STRING, &o.archive, "only this archive", "NAME" },
		{ "folder", 0, 0, G_OPTION_ARG_STRING, &o.folder, "only this folder and its subfolders", "F" },
		{ "query", 0, 0, G_OPTION_ARG_STRING, &o.query, "only messages matching the query", "Q" },
		{ "since", 0, 0, G_OPTION_ARG_STRING, &o.since, "messages dated at or after (ISO 8601 or Unix seconds)", "DATE" },
		{ "before", 0, 0, G_OPTION_ARG_STRING, &o.before, "messages dated before", "DATE" },
		{ "as-user", 0, 0, G_OPTION_ARG_STRING, &o.as_user, "export as this user (export privilege, readable folders)", "USER" },
		{ "sign", 0, 0, G_OPTION_ARG_NONE, &o.sign, "eml/mbox: sign every file (X.sig, MANIFEST.sig, publickey.pem)", NULL },
		{ "no-mailstore-headers", 0, 0, G_OPTION_ARG_NONE, &o.no_headers, "eml: write the messages without MailStore headers", NULL },
		{ "user", 0, 0, G_OPTION_ARG_STRING, &o.user, "imap/smtp: log on as", "NAME" },
		{ "password-file", 0, 0, G_OPTION_ARG_FILENAME, &o.password_file, "imap/smtp: the password is this file's first line (else $MAILVAULT_EXPORT_PASSWORD)", "FILE" },
		{ "tls", 0, 0, G_OPTION_ARG_STRING, &o.tls, "imap/smtp on a plain URL: STARTTLS required (default), try or none", "MODE" },
		{ "ca-file", 0, 0, G_OPTION_ARG_FILENAME, &o.ca_file, "imap/smtp: trust this certificate (PEM)", "FILE" },
		{ "insecure", 0, 0, G_OPTION_ARG_NONE, &o.insecure, "imap/smtp: do not verify the server's certificate", NULL },
		{ "target-folder", 0, 0, G_OPTION_ARG_STRING, &o.target_folder, "imap: put the folders below this one", "F" },
		{ "from", 0, 0, G_OPTION_ARG_STRING, &o.from, "smtp: envelope sender", "ADDR" },
		{ "to", 0, 0, G_OPTION_ARG_STRING, &o.to, "smtp: the recipient", "ADDR" },
		{ "json", 0, 0, G_OPTION_ARG_NONE, &o.json, "print the result as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("export", "eml|mbox DIR | imap|smtp URL",
	                  "Export messages to EML files, mbox files, an IMAP mailbox or an SMTP recipient.", entries, &argc,
	                  &argv)) {
		opts_clear(&o);
		return MV_EXIT_USAGE;
	}
	const char *kinds[] = { "eml", "mbox", "imap", "smtp" };
	bool known = false;
	for (size_t i = 0; argc == 3 && i < G_N_ELEMENTS(kinds); i++)
		known = known || strcmp(argv[1], kinds[i]) == 0;
	if (!known) {
		fprintf(stderr, "mailvault: export needs a target and where: eml DIR, mbox DIR, imap URL or smtp URL\n");
		opts_clear(&o);
		return MV_EXIT_USAGE;
	}
	mv_instance *inst = mv_cli_open_instance(g);
	int rc = inst ? run_export(inst, argv[1], argv[2], &o) : MV_EXIT_FAIL;
	mv_instance_close(&inst);
	opts_clear(&o);
	return rc;
}

/* ---- verify-export -------------------------------------------------------------------- */

static void print_list(json_t *report, const char *key)
{
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(report, key), i, v) {
		if (json_is_string(v))
			printf("%s: %s\n", key, json_string_value(v));
		else
			printf("%s: %s: %s\n", key, json_string_value(json_object_get(v, "file")),
			       json_string_value(json_object_get(v, "reason")));
	}
}

int mv_cli_verify_export(const mv_cli_globals *g, int argc, char **argv)
{
	(void)g;
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "print the report as JSON", NULL },
		G_OPTION_ENTRY_NULL,
	};
	if (!mv_cli_parse("verify-export", "DIR", "Check a signed export: every file, its signature, nothing missing or added.",
	                  entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc != 2) {
		fprintf(stderr, "mailvault: verify-export needs exactly one DIR\n");
		return MV_EXIT_USAGE;
	}
	json_t *report = NULL;
	GError *err = NULL;
	if (mv_export_verify_dir(argv[1], &report, &err) < 0)
		return mv_cli_fail(err);
	bool ok = json_is_true(json_object_get(report, "ok"));
	if (json) {
		mv_cli_print_json(report);
		return ok ? MV_EXIT_OK : MV_EXIT_FAIL;
	}
	print_list(report, "missing");
	print_list(report, "extra");
	print_list(report, "altered");
	printf("%s: %lld of %lld files verified; public key SHA-256 %s\n", ok ? "ok" : "NOT OK",
	       (long long)json_integer_value(json_object_get(report, "verified")),
	       (long long)json_integer_value(json_object_get(report, "files")),
	       json_string_value(json_object_get(report, "publicKeySha256")));
	json_decref(report);
	return ok ? MV_EXIT_OK : MV_EXIT_FAIL;
}
