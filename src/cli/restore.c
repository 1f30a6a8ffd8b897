/* cli/restore: `mailvault restore` — brings a CreateBackup copy back into
 * an empty data directory.
 *
 * A subcommand of its own, not a registry function like CreateBackup: every
 * registry function runs on an open instance, and there is none to open
 * until the backup has been copied in (archive/backup.c does the copy). */
#include "cli/cli.h"

#include <stdio.h>

int mv_cli_restore(const mv_cli_globals *g, int argc, char **argv)
{
	GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
	if (!mv_cli_parse("restore", "BACKUP", "Restore a CreateBackup copy into the data directory, which must not "
	                  "hold an instance yet.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	if (argc != 2) {
		fprintf(stderr, "usage: mailvault restore BACKUP [--data-dir DIR]\n");
		return MV_EXIT_USAGE;
	}
	char *dir = mv_data_dir_resolve(g->data_dir);
	GError *err = NULL;
	int rc = mv_instance_restore(argv[1], dir, &err);
	if (rc == 0)
		printf("restored %s into %s\n", argv[1], dir);
	g_free(dir);
	return rc == 0 ? MV_EXIT_OK : mv_cli_fail(err);
}
