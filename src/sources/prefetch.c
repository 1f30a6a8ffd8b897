/* sources/prefetch: see prefetch.h.
 *
 * One producer thread, one consumer, a queue bounded both in items and in
 * bytes (at least one item always fits, however large: a 100 MB message
 * must pass).  The reader's message is borrowed until its next call, so
 * the producer copies each one before reading on; the copy is what the
 * consumer borrows in turn, marked shared so that ingest keeps a reference
 * to it instead of copying it a second time. */
#include "sources/prefetch.h"

#include <string.h>

#define MAX_AHEAD_ITEMS 256
#define MAX_AHEAD_BYTES (16u * 1024u * 1024u)

typedef struct fetched {
	mv_read_result res;
	mv_source_message msg;     /* owned copies */
	GError *err;
	int percent;
} fetched;

struct mv_prefetch {
	mv_reader *reader;
	mv_prefetch_percent_fn percent;
	GThread *thread;
	GMutex lock;
	GCond changed;
	GQueue ahead;              /* fetched *, oldest first */
	size_t ahead_bytes;
	bool stop;                 /* the consumer wants no more */
	bool done;                 /* the producer has pushed its last item */
	fetched *current;          /* what the consumer borrows now */
};

static void message_copy(mv_source_message *to, const mv_source_message *from)
{
	to->data = from->data ? g_byte_array_new_take(g_memdup2(from->data->data, from->data->len), from->data->len)
	                      : NULL;
	to->folder = g_strdup(from->folder);
	to->origin = g_strdup(from->origin);
	to->mail_flags = g_strdup(from->mail_flags);
	to->origin_sha256 = g_strdup(from->origin_sha256);
	to->damage = g_strdup(from->damage);
	to->mailstore = from->mailstore;
	to->archive = g_strdup(from->archive);
	to->archived_at = from->archived_at;
	to->shared = to->data != NULL;
}

static void fetched_free(fetched *f)
{
	if (!f)
		return;
	if (f->msg.data)
		g_byte_array_unref(f->msg.data);
	g_free(f->msg.folder);
	g_free(f->msg.origin);
	g_free(f->msg.mail_flags);
	g_free(f->msg.origin_sha256);
	g_free(f->msg.damage);
	g_free(f->msg.archive);
	g_clear_error(&f->err);
	g_free(f);
}

static size_t fetched_bytes(const fetched *f)
{
	return f->msg.data ? f->msg.data->len : 0;
}

/* Waits for room, then queues f; false when the consumer stopped. */
static bool push(mv_prefetch *p, fetched *f)
{
	g_mutex_lock(&p->lock);
	while (!p->stop && p->ahead.length > 0 &&
	       (p->ahead.length >= MAX_AHEAD_ITEMS || p->ahead_bytes + fetched_bytes(f) > MAX_AHEAD_BYTES))
		g_cond_wait(&p->changed, &p->lock);
	bool taken = !p->stop;
	if (taken) {
		g_queue_push_tail(&p->ahead, f);
		p->ahead_bytes += fetched_bytes(f);
		g_cond_broadcast(&p->changed);
	}
	g_mutex_unlock(&p->lock);
	if (!taken)
		fetched_free(f);
	return taken;
}

static gpointer produce(gpointer opaque)
{
	mv_prefetch *p = opaque;
	bool more = true;
	while (more) {
		fetched *f = g_new0(fetched, 1);
		mv_source_message msg = { 0 };
		f->res = mv_reader_next(p->reader, &msg, &f->err);
		message_copy(&f->msg, &msg);
		f->percent = p->percent ? p->percent(p->reader) : -1;
		more = f->res != MV_READ_END && f->res != MV_READ_FATAL;
		more = push(p, f) && more;
	}
	g_mutex_lock(&p->lock);
	p->done = true;
	g_cond_broadcast(&p->changed);
	g_mutex_unlock(&p->lock);
	return NULL;
}

mv_prefetch *mv_prefetch_start(mv_reader *r, mv_prefetch_percent_fn percent, GError **error)
{
	mv_prefetch *p = g_new0(mv_prefetch, 1);
	p->reader = r;
	p->percent = percent;
	g_mutex_init(&p->lock);
	g_cond_init(&p->changed);
	g_queue_init(&p->ahead);
	p->thread = g_thread_try_new("mv-read-ahead", produce, p, error);
	if (!p->thread) {
		g_mutex_clear(&p->lock);
		g_cond_clear(&p->changed);
		g_free(p);
		return NULL;
	}
	return p;
}

mv_read_result mv_prefetch_next(mv_prefetch *p, mv_source_message *msg, int *percent_r, GError **error)
{
	fetched_free(p->current);
	p->current = NULL;
	g_mutex_lock(&p->lock);
	while (p->ahead.length == 0 && !p->done)
		g_cond_wait(&p->changed, &p->lock);
	fetched *f = g_queue_pop_head(&p->ahead);
	if (f) {
		p->ahead_bytes -= fetched_bytes(f);
		g_cond_broadcast(&p->changed);
	}
	g_mutex_unlock(&p->lock);
	if (!f)   /* the producer ended without an END: it was stopped */
		return MV_READ_END;
	p->current = f;
	*msg = f->msg;
	*percent_r = f->percent;
	if (f->err)
		g_propagate_error(error, g_steal_pointer(&f->err));
	return f->res;
}

void mv_prefetch_stop(mv_prefetch **pp)
{
	mv_prefetch *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	g_mutex_lock(&p->lock);
	p->stop = true;
	g_cond_broadcast(&p->changed);
	g_mutex_unlock(&p->lock);
	g_thread_join(p->thread);
	fetched *f;
	while ((f = g_queue_pop_head(&p->ahead)) != NULL)
		fetched_free(f);
	fetched_free(p->current);
	g_mutex_clear(&p->lock);
	g_cond_clear(&p->changed);
	g_free(p);
}
