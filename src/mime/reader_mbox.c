/* reader_mbox: the mbox source (mboxrd or mboxo).  The file is streamed in
 * fixed-size chunks through the push splitter (mbox.c), and what each
 * chunk completes is queued, so memory is one chunk and the messages it
 * ends rather than the whole file. */
#include "mime/reader_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MBOX_CHUNK (1024u * 1024u)

/* ---- mbox ------------------------------------------------------------------------------ */

typedef struct mbox_item {
	GByteArray *data;
	uint64_t offset;
} mbox_item;

static bool mbox_collect(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	mv_reader *r = ctx;
	mbox_item *item = g_new(mbox_item, 1);
	item->data = g_byte_array_sized_new((guint)len);
	g_byte_array_append(item->data, msg, (guint)len);
	item->offset = offset;
	g_queue_push_tail(&r->queue, item);
	return true;
}

static void mbox_item_free(gpointer p)
{
	mbox_item *item = p;
	g_byte_array_unref(item->data);
	g_free(item);
}

/* Reads and splits the next chunk; 0 at end of file. */
static int mbox_fill(mv_reader *r, GError **error)
{
	ssize_t n;
	do {
		n = read(r->fd, r->chunk, MBOX_CHUNK);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		mv_set_errno_error(error, errno, "read", r->path);
		return -1;
	}
	if (n == 0) {
		r->eof = true;
		return 0;
	}
	r->done += (uint64_t)n;
	return mv_mbox_splitter_feed(r->splitter, r->chunk, (size_t)n, error) < 0 ? 1 : 0;
}

static mv_read_result mbox_next(mv_reader *r, GError **error)
{
	for (;;) {
		mbox_item *item = g_queue_pop_head(&r->queue);
		if (item) {
			char *origin = g_strdup_printf("%s@%" G_GUINT64_FORMAT, r->path, item->offset);
			GByteArray *data = item->data;
			g_free(item);
			return mv_reader_offer(r, data, origin, "", "", error);
		}
		if (r->finished)
			return MV_READ_END;
		if (r->eof) {
			r->finished = true;
			if (mv_mbox_splitter_finish(r->splitter, error) < 0)
				return MV_READ_SKIPPED;
			continue;
		}
		int rc = mbox_fill(r, error);
		if (rc < 0)
			return MV_READ_FATAL;
		if (rc > 0) {
			g_prefix_error(error, "%s: ", r->path);
			return MV_READ_SKIPPED;
		}
	}
}

static void mbox_free(mv_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	g_free(r->chunk);
	mv_mbox_splitter_free(&r->splitter);
	g_queue_clear_full(&r->queue, mbox_item_free);
}

static uint64_t mbox_total(mv_reader *r)
{
	struct stat st;
	return fstat(r->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops mbox_ops = { mbox_next, mbox_free, mbox_total };

int mv_reader_open_mbox(mv_reader *r, GError **error)
{
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (r->fd < 0) {
		mv_set_errno_error(error, errno, "open", r->path);
		return -1;
	}
	r->chunk = g_malloc(MBOX_CHUNK);
	r->splitter = mv_mbox_splitter_new(r->format != MV_FORMAT_MBOXO, mbox_collect, r);
	r->ops = &mbox_ops;
	return 0;
}
