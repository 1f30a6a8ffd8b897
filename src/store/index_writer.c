/* index_writer: a store writer's index inserts on a thread of their own.
 *
 * FTS5 insertion is the largest single cost of ingest and of every index
 * rebuild, and it ran on the committer thread, so parsing stopped while it
 * worked (bench/RESULTS.md, issue 17).  A writer now hands its queue of
 * documents to this thread and goes on committing batches; the thread
 * inserts them on a connection of its own, in one transaction with the
 * indexed_upto mark.
 *
 * Shaped by the invariants the synchronous flush kept:
 * - One hand-off in flight at most: the next one waits for it, so documents
 *   reach the index in the order they were handed over and indexed_upto only
 *   moves past what is inserted.
 * - Everyone else who touches the index waits first (mv_store_index_wait,
 *   called by mv_store_flush_index, the reset and the lock), so the two
 *   connections never write at once and nothing reads a half-done state it
 *   would act on.
 * - A failed insert leaves a gap past indexed_upto; it is reported to the
 *   writer at its next hand-off or wait, which drops what it queued since
 *   (a later flush would move indexed_upto past the gap); the writer then
 *   takes the lock anew, whose catch-up indexes the gap from content
 *   (mv_store_write_lock, mv_store_sync).
 * - The write lock is never released while a hand-off is in flight: another
 *   writer's catch-up would insert the same documents. */
#include "store/internal.h"

struct mv_index_writer {
	GThread *thread;
	GMutex lock;
	GCond changed;
	GPtrArray *docs;     /* handed over and not yet inserted, or NULL */
	bool stop;
	GError *error;       /* the last insert's failure, until a writer takes it */
	sqlite3 *db;         /* the thread's own connection on index.sqlite */
	sqlite3_stmt *insert;
	int hand_offs;       /* inserted so far, for the fault point */
};

static void insert_handed_over(mv_index_writer *w, GPtrArray *docs)
{
	GError *err = NULL;
	if (mv_fault_fails("index-writer", ++w->hand_offs))
		g_set_error(&err, MV_ERROR, MV_ERR_IO, "injected fault index-writer:%d", w->hand_offs);
	else
		mv_index_insert_queued(w->db, &w->insert, docs, &err);
	if (err)
		g_prefix_error(&err, "index update failed (the catch-up re-indexes what is missing): ");
	g_mutex_lock(&w->lock);
	w->docs = NULL;
	if (err) {
		g_clear_error(&w->error);
		w->error = err;
	}
	g_cond_broadcast(&w->changed);
	g_mutex_unlock(&w->lock);
	g_ptr_array_free(docs, TRUE);
}

static gpointer writer_main(gpointer data)
{
	mv_index_writer *w = data;
	g_mutex_lock(&w->lock);
	for (;;) {
		while (!w->docs && !w->stop)
			g_cond_wait(&w->changed, &w->lock);
		if (!w->docs)
			break;
		GPtrArray *docs = w->docs;
		g_mutex_unlock(&w->lock);
		insert_handed_over(w, docs);
		g_mutex_lock(&w->lock);
	}
	g_mutex_unlock(&w->lock);
	return NULL;
}

static mv_index_writer *writer_start(mv_store *s, GError **error)
{
	sqlite3 *db = NULL;
	if (mv_store_index_writer_conn(s, &db, error) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	mv_index_writer *w = g_new0(mv_index_writer, 1);
	g_mutex_init(&w->lock);
	g_cond_init(&w->changed);
	w->db = db;
	w->thread = g_thread_try_new("mv-index", writer_main, w, error);
	if (!w->thread) {
		sqlite3_close(db);
		g_mutex_clear(&w->lock);
		g_cond_clear(&w->changed);
		g_free(w);
		return NULL;
	}
	return w;
}

/* Waits for the hand-off in flight; its failure, if any, moves to *error. */
static int wait_idle(mv_index_writer *w, GError **error)
{
	g_mutex_lock(&w->lock);
	while (w->docs)
		g_cond_wait(&w->changed, &w->lock);
	GError *err = w->error;
	w->error = NULL;
	g_mutex_unlock(&w->lock);
	if (!err)
		return 0;
	g_propagate_error(error, err);
	return -1;
}

int mv_store_index_wait(mv_store *s, GError **error)
{
	if (!s->index_writer || wait_idle(s->index_writer, error) == 0)
		return 0;
	/* What was queued since the failure lies past the gap it left. */
	g_ptr_array_set_size(s->index_queue, 0);
	return -1;
}

int mv_store_index_hand_off(mv_store *s, GError **error)
{
	if (s->index_queue->len == 0)
		return 0;
	if (mv_store_index_wait(s, error) < 0)
		return -1;
	if (!s->index_writer) {
		GError *err = NULL;
		if (!(s->index_writer = writer_start(s, &err))) {
			/* No thread: the documents go in here, as they always could. */
			mv_log_warn("store %d: indexing on the writer's thread: %s", s->id, err->message);
			g_error_free(err);
			return mv_store_flush_index(s, error);
		}
	}
	mv_index_writer *w = s->index_writer;
	mv_log_debug("store %d: %u documents handed to the index writer", s->id, s->index_queue->len);
	g_mutex_lock(&w->lock);
	w->docs = s->index_queue;
	g_cond_broadcast(&w->changed);
	g_mutex_unlock(&w->lock);
	s->index_queue = g_ptr_array_new_with_free_func(mv_store_queued_doc_free);
	return 0;
}

void mv_store_index_writer_stop(mv_store *s)
{
	mv_index_writer *w = s->index_writer;
	if (!w)
		return;
	GError *err = NULL;
	if (mv_store_index_wait(s, &err) < 0) {
		mv_log_warn("store %d: %s", s->id, err->message);
		g_error_free(err);
	}
	g_mutex_lock(&w->lock);
	w->stop = true;
	g_cond_broadcast(&w->changed);
	g_mutex_unlock(&w->lock);
	g_thread_join(w->thread);
	sqlite3_finalize(w->insert);
	sqlite3_close(w->db);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->changed);
	g_free(w);
	s->index_writer = NULL;
}
