/* cli/main: the `mailvault` command — global options and subcommand dispatch.
 *
 * Each subcommand is a function mv_cli_<name> with the signature of
 * mv_cli_subcommand, in a file named after it (cli/<name>.c); this file
 * only finds the data directory and the subcommand.  Global
 * options may stand before or after the subcommand name, so both
 * `mailvault --data-dir D import ...` and `mailvault import ... --data-dir D`
 * work. */
#include "cli/cli.h"
#include "export/export.h"
#include "sources/profiles.h"
#include "jobs/cmd_jobs.h"
#include "extract/extract.h"

#include <locale.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
	const char *name;
	mv_cli_subcommand fn;
	const char *summary;
} commands[] = {
	{ "init", mv_cli_init, "create an instance in the data directory" },
	{ "serve", mv_cli_serve, "run the server: the Administration API over HTTPS (port 8463)" },
	{ "import", mv_cli_import, "archive messages from an EML file or directory, an mbox or a Maildir" },
	{ "search", mv_cli_search, "find messages" },
	{ "show", mv_cli_show, "print a message exactly as archived" },
	{ "stats", mv_cli_stats, "counts and disk use per store" },
	{ "folders", mv_cli_folders, "archives and folders with message counts" },
	{ "cmd", mv_cli_cmd, "run one Administration API function (--list lists them)" },
	{ "shell", mv_cli_shell, "the interactive management shell" },
	{ "restore", mv_cli_restore, "restore a CreateBackup copy into an empty data directory" },
	{ "audit", mv_cli_audit, "print the audit log, or verify its hash chain (--verify)" },
	{ "export", mv_cli_export, "export messages to EML or mbox files, an IMAP mailbox or an SMTP recipient" },
	{ "verify-export", mv_cli_verify_export, "check a signed export (needs no data directory)" },
	{ "search-bench", mv_cli_search_bench, "time a list of queries in one process (for bench/)" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: mailvault [--data-dir DIR] [--debug] COMMAND [ARGS]\n"
	             "       mailvault --version\n\ncommands:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nThe data directory is --data-dir, else $MAILVAULT_DATA_DIR, else ./var.\n"
	        "'mailvault COMMAND --help' describes a command.\n");
}

/* Removes global options from argv wherever they stand; returns new argc. */
static int take_globals(int argc, char **argv, mv_cli_globals *g, GError **error)
{
	int out = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--debug") == 0) {
			g->debug = true;
			continue;
		}
		if (strcmp(a, "--data-dir") == 0) {
			if (i + 1 >= argc) {
				g_set_error(error, MV_ERROR, MV_ERR_INVALID, "--data-dir needs a directory");
				return -1;
			}
			g->data_dir = argv[++i];
			continue;
		}
		if (g_str_has_prefix(a, "--data-dir=")) {
			g->data_dir = a + strlen("--data-dir=");
			continue;
		}
		if (strcmp(a, "--") == 0) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

/* What an admin compares before moving a store between machines: the
 * release, the store format it writes (and the oldest it reads), and the
 * SQLite (SQLCipher) it runs on. */
static int print_version(void)
{
	printf("mailvault %s\nstore format %d (reads formats 1 to %d)\nSQLite %s (SQLCipher)\n", MV_VERSION,
	       MV_STORE_FORMAT_VERSION, MV_STORE_FORMAT_VERSION, sqlite3_libversion());
	return MV_EXIT_OK;
}

/* The binary the document workers run: this one as it was when started —
 * posix_spawn resolves /proc/self/exe in this process's own image, so a
 * package upgrade replacing the file cannot mix versions. */
static void start_extraction(void)
{
	mv_extract_init("/proc/self/exe");
	atexit(mv_extract_shutdown);
}

int main(int argc, char **argv)
{
	/* A document worker: started by this binary, never by a user; it takes
	 * no options and must not touch the data directory. */
	if (argc == 2 && strcmp(argv[1], "extract-worker") == 0)
		return mv_extract_worker_main();
	setlocale(LC_ALL, "");
	/* Everything this process creates — databases, segments, keys,
	 * certificates, exports — holds mail or secrets: private to the
	 * service's user, whatever umask it was started with. */
	umask(077);
	/* Messages are allocated and freed by the thousand: keep freed memory
	 * for reuse instead of returning it to the kernel and faulting it back
	 * in (a quarter of the import's kernel time otherwise). */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
	/* SQLite's allocation statistics take one process-wide mutex on every
	 * malloc and free: the server's request threads queued on it. Nothing
	 * reads those statistics. */
	if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
		fprintf(stderr, "mailvault: warning: SQLite memory statistics stay on\n");
	mv_cli_globals g = { 0 };
	GError *err = NULL;
	argc = take_globals(argc, argv, &g, &err);
	if (argc < 0) {
		fprintf(stderr, "mailvault: %s\n", err->message);
		g_error_free(err);
		return MV_EXIT_USAGE;
	}
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? MV_EXIT_USAGE : MV_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
		return print_version();
	mv_log_set_debug(g.debug);
	/* Functions of modules above commands/ join the registry before any lookup. */
	mv_commands_register(mv_commands_export);
	mv_commands_register(mv_commands_profiles);
	mv_commands_register(mv_commands_jobs);
	start_extraction();
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(&g, argc - 1, argv + 1);
	fprintf(stderr, "mailvault: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return MV_EXIT_USAGE;
}
