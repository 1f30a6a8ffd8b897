/* cli/init: `mailvault init` — a new instance in the data directory.
 *
 * The one moment two secrets are shown: the recovery key and the first
 * administrator's password.  Neither can be read back afterwards (the key
 * is stored nowhere, the password only as a hash), so both are printed
 * here, with what they are for. */
#include "cli/cli.h"

#include <stdio.h>
#include <sys/stat.h>

/* Every file inside is created 0600 and every directory 0700, but a data
 * directory someone made beforehand keeps its own mode: say so when others
 * may list or enter it. */
static void warn_if_open_to_others(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0 || !(st.st_mode & 077))
		return;
	fprintf(stderr, "mailvault: warning: the data directory %s has mode %04o: group and others may list or enter it "
	        "(its files are private, 0600); 'chmod 700 %s' closes it\n", dir, (unsigned)(st.st_mode & 07777), dir);
}

int mv_cli_init(const mv_cli_globals *g, int argc, char **argv)
{
	GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
	if (!mv_cli_parse("init", "", "Create a mailvault instance in the data directory.", entries, &argc, &argv))
		return MV_EXIT_USAGE;
	char *dir = mv_data_dir_resolve(g->data_dir);
	char *recovery = NULL;
	GError *err = NULL;
	if (mv_instance_init(dir, &recovery, &err) < 0) {
		g_free(dir);
		return mv_cli_fail(err);
	}
	printf("Initialised mailvault instance in %s\n", dir);
	warn_if_open_to_others(dir);
	printf("Archive store: store1 (current)\n");
	printf("Recovery key: %s\n", recovery);
	printf("Write the recovery key down and keep it safe: it is shown only this once, and it is\n"
	       "what opens these stores on another instance if master.key is lost.\n");
	g_free(recovery);
	/* The first administrator, so that the Administration API can be used
	 * at once; the password is shown here and stored only as a hash. */
	char *password = NULL;
	mv_instance *inst = mv_instance_open(dir, &err);
	g_free(dir);
	int rc = inst ? mv_users_ensure_admin(inst, &password, &err) : -1;
	mv_instance_close(&inst);
	if (rc < 0)
		return mv_cli_fail(err);
	if (password)
		printf("first administrator: admin, password: %s (shown once; change it with SetUserPassword)\n",
		       password);
	g_free(password);
	return MV_EXIT_OK;
}
