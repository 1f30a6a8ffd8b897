/* sources/mailbox_reconnect: when a mailbox source connects again.
 *
 * Both sources archive a mailbox in sessions: a lost connection ends one,
 * after what it handed in is flushed and its state saved as far as it
 * goes, and the run goes on from there in a new one.  What may be tried
 * again is what the network or the server did (MV_ERR_IO); a refused
 * logon, a server's refusal or the archive's failure would fail the same
 * way again.  The waits double, so a server restarting is met and a server
 * gone costs a run 7 s before it fails. */
#include "sources/mailbox_source.h"

#define MAX_RECONNECTS 3

static bool cancelled(const mv_task *task)
{
	return task && task->cancel && g_atomic_int_get(task->cancel);
}

static void backoff(const mv_task *task, int attempt)
{
	for (int i = 0; i < (1 << attempt) * 10 && !cancelled(task); i++)
		g_usleep(100000);
}

bool mv_mailbox_reconnect(const char *scheme, const char *mailbox, mv_ingest *ing, mv_task *task,
                          mv_mailbox_counts *counts, int attempt, const GError *e)
{
	if (!e || e->domain != MV_ERROR || e->code != MV_ERR_IO || attempt >= MAX_RECONNECTS || cancelled(task))
		return false;
	char *what = g_strdup_printf("%s://%s", scheme, mailbox);
	char *why = g_strdup_printf("%s; connecting again (attempt %d of %d)", e->message, attempt + 1, MAX_RECONNECTS);
	mv_ingest_warn(ing, what, why);
	g_free(what);
	g_free(why);
	counts->reconnects++;
	backoff(task, attempt);
	return true;
}
