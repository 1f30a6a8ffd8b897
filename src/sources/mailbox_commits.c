/* sources/mailbox_commits: ingest's committed callback counted per message
 * of a mailbox source (see mailbox_commits.h).  The callback runs on the
 * committer thread while the source hands in more: a mutex, and slots that
 * are replaced only after a flush, when no callback is outstanding. */
#include "sources/mailbox_commits.h"

struct mv_mailbox_commits {
	GMutex lock;
	unsigned *slots;
	size_t n;
};

static void on_committed(void *opaque, uint64_t token)
{
	mv_mailbox_commits *mc = opaque;
	g_mutex_lock(&mc->lock);
	if (token >= 1 && token <= mc->n)
		mc->slots[token - 1]++;
	g_mutex_unlock(&mc->lock);
}

mv_mailbox_commits *mv_mailbox_commits_attach(mv_ingest *ing)
{
	mv_mailbox_commits *mc = g_new0(mv_mailbox_commits, 1);
	g_mutex_init(&mc->lock);
	mv_ingest_on_committed(ing, on_committed, mc);
	return mc;
}

void mv_mailbox_commits_free(mv_mailbox_commits *mc)
{
	if (!mc)
		return;
	g_mutex_clear(&mc->lock);
	g_free(mc->slots);
	g_free(mc);
}

void mv_mailbox_commits_reset(mv_mailbox_commits *mc, size_t n)
{
	g_mutex_lock(&mc->lock);
	g_free(mc->slots);
	mc->slots = g_new0(unsigned, n ? n : 1);
	mc->n = n;
	g_mutex_unlock(&mc->lock);
}

unsigned mv_mailbox_commits_of(mv_mailbox_commits *mc, size_t i)
{
	g_mutex_lock(&mc->lock);
	unsigned n = i < mc->n ? mc->slots[i] : 0;
	g_mutex_unlock(&mc->lock);
	return n;
}
