/* store/compact: CompactStore — content/ rewritten without what nothing
 * live needs.
 *
 * content/ is the store's journal (see journal.c), and its order gives
 * replay its meaning: message numbers follow from batch markers and record
 * order, tombstones and folder moves apply to what came before them.  So
 * compaction never edits in place: from the first segment holding anything
 * to drop, every segment is rewritten, in order, into new segments whose
 * ids follow all old ones (a fresh batch marker wherever the kept records'
 * numbers stop being consecutive), and one db transaction then points the
 * contents rows at the new places and swaps the segments rows.  Segments
 * before the first rewritten one are not touched.  A crash before that
 * commit leaves new files no db row names, a crash after it the old ones:
 * either way debris, removed when the next compaction starts. */
#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct moved_content {
	int64_t content_id, segment, offset, length;
} moved_content;

typedef struct compact_ctx {
	mv_store *s;
	sqlite3_stmt *live_content;  /* id of a content with a live message, by place */
	sqlite3_stmt *number_live;   /* is message N live */
	GArray *kept_numbers;        /* uint8 by number: its record was kept */
	GArray *moved;               /* moved_content */
	int64_t first_rewritten;     /* segments before it are kept as they are */
	int64_t out_seg, out_len;    /* the segment being written */
	int out_fd;
	int64_t next_number;         /* the number the next kept message record gets without a marker */
	GArray *new_segments;        /* mv_journal_segment {id, end} */
	int64_t kept, dropped, bytes_before, bytes_after;
} compact_ctx;

static int out_segment_open(compact_ctx *c, GError **error)
{
	if (c->out_fd >= 0) {
		char *path = mv_store_segment_file(c->s, c->out_seg);
		int rc = mv_fsync_fd(c->out_fd, path, error);
		g_free(path);
		close(c->out_fd);
		c->out_fd = -1;
		mv_journal_segment sg = { .id = c->out_seg, .end = c->out_len };
		g_array_append_val(c->new_segments, sg);
		if (rc < 0)
			return -1;
	}
	c->out_seg++;
	c->out_len = SEGMENT_HEADER_BYTES;
	char *path = mv_store_segment_file(c->s, c->out_seg);
	unlink(path);
	int rc = -1;
	c->out_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (c->out_fd < 0) {
		mv_set_errno_error(error, errno, "create segment", path);
		goto out;
	}
	rc = mv_store_segment_write_header(c->out_fd, path, error);
out:
	g_free(path);
	return rc;
}

static int out_write(compact_ctx *c, const uint8_t *bytes, size_t len, int64_t *off_r, GError **error)
{
	if (c->out_fd < 0 || (c->out_len > SEGMENT_HEADER_BYTES && (uint64_t)c->out_len + len > MV_SEGMENT_MAX_BYTES))
		if (out_segment_open(c, error) < 0)
			return -1;
	char *path = mv_store_segment_file(c->s, c->out_seg);
	int rc = mv_pwrite_all(c->out_fd, bytes, len, c->out_len, path, error);
	g_free(path);
	if (rc < 0)
		return -1;
	*off_r = c->out_len;
	c->out_len += (int64_t)len;
	return 0;
}

static bool number_is_live(compact_ctx *c, int64_t num)
{
	sqlite3_reset(c->number_live);
	sqlite3_bind_int64(c->number_live, 1, num);
	bool live = sqlite3_step(c->number_live) == SQLITE_ROW;
	sqlite3_reset(c->number_live);
	return live;
}

/* The live content (if any) whose record starts at r. */
static int64_t live_content_at(compact_ctx *c, const mv_journal_rec *r)
{
	sqlite3_reset(c->live_content);
	sqlite3_bind_int64(c->live_content, 1, r->segment);
	sqlite3_bind_int64(c->live_content, 2, r->offset);
	int64_t id = sqlite3_step(c->live_content) == SQLITE_ROW ? sqlite3_column_int64(c->live_content, 0) : 0;
	sqlite3_reset(c->live_content);
	return id;
}

/* A fresh batch marker: the next kept numbered record is message `number`. */
static int write_batch_marker(compact_ctx *c, int64_t number, GError **error)
{
	GByteArray *m = g_byte_array_new();
	char *meta = g_strdup_printf("{\"v\":1,\"first\":%lld}", (long long)number);
	int64_t off = 0;
	int rc = -1;
	if (mv_record_encode(c->s->key, MV_RECORD_BATCH, (const uint8_t *)meta, strlen(meta), NULL, 0, 1, m, error) < 0)
		goto out;
	rc = out_write(c, m->data, m->len, &off, error);
out:
	g_free(meta);
	g_byte_array_unref(m);
	return rc;
}

static int compact_record(void *opaque, mv_journal_rec *r, GError **error)
{
	compact_ctx *c = opaque;
	if (r->segment < c->first_rewritten)
		return 0;
	int64_t content = 0;
	bool keep = false;
	if (!r->ok) {
		keep = r->type != 0;   /* damaged records stay for the admin to see; unreadable bytes do not */
	} else if (r->type == MV_RECORD_MESSAGE) {
		content = live_content_at(c, r);
		keep = content > 0 || (r->number > 0 && number_is_live(c, r->number));
	} else if (r->type == MV_RECORD_REFERENCE) {
		keep = r->number > 0 && number_is_live(c, r->number);
	} else if (r->type == MV_RECORD_TOMBSTONE) {
		keep = r->number > 0 && (guint)r->number < c->kept_numbers->len &&
		       g_array_index(c->kept_numbers, uint8_t, r->number);
	} else if (r->type == MV_RECORD_FOLDER_MOVE || r->type == MV_RECORD_RESTORE) {
		keep = true;
	} else if (r->type == MV_RECORD_DICTIONARY) {
		/* Every one, small as they are: the walk must meet it before any
		 * record compressed with it, and the order is kept. */
		keep = true;
	}
	/* Batch markers are not copied: a fresh one is written wherever the
	 * kept records' numbers stop being consecutive. */
	if (!keep || r->type == MV_RECORD_BATCH) {
		if (r->type != MV_RECORD_BATCH)
			c->dropped++;
		return 0;
	}
	bool numbered = r->type == MV_RECORD_MESSAGE || r->type == MV_RECORD_REFERENCE;
	if (numbered && r->number > 0 && r->number != c->next_number) {
		if (write_batch_marker(c, r->number, error) < 0)
			return -1;
		c->next_number = r->number;
	}
	GByteArray *rec = NULL;
	if (mv_store_read_record(c->s, r->segment, r->offset, r->length, &rec, error) < 0)
		return -1;
	int64_t off = 0;
	int rc = out_write(c, rec->data, rec->len, &off, error);
	g_byte_array_unref(rec);
	if (rc < 0)
		return -1;
	c->kept++;
	if (numbered) {
		c->next_number++;
		if (r->number > 0) {
			if ((guint)r->number >= c->kept_numbers->len)
				g_array_set_size(c->kept_numbers, (guint)r->number + 1 + c->kept_numbers->len / 2);
			g_array_index(c->kept_numbers, uint8_t, r->number) = 1;
		}
	}
	if (content > 0) {
		moved_content mc = { content, c->out_seg, off, r->length };
		g_array_append_val(c->moved, mc);
	}
	return 0;
}

/* The first segment holding something to drop: from there on everything is
 * rewritten (order carries meaning), before it nothing is touched. */
static int first_segment_to_rewrite(mv_store *s, int64_t *seg_r, GError **error)
{
	return mv_store_int_query(s->db, "SELECT coalesce(min(seg), 0) FROM ("
	                       " SELECT c.segment AS seg FROM contents c WHERE NOT EXISTS"
	                       "  (SELECT 1 FROM messages m WHERE m.content_id = c.id AND m.deleted = 0)"
	                       " UNION ALL SELECT c.segment FROM messages m JOIN contents c ON c.id = m.content_id"
	                       "  WHERE m.deleted = 1)", "plan compaction", seg_r, error);
}

/* The contents rows pointed at their records' new places. */
static int move_contents(compact_ctx *c, GError **error)
{
	sqlite3_stmt *up;
	if (mv_sql_prepare(c->s->db, "UPDATE contents SET segment=?, offset=?, length=? WHERE id=?", &up, error) < 0)
		return -1;
	int rc = -1;
	for (guint i = 0; i < c->moved->len; i++) {
		moved_content *m = &g_array_index(c->moved, moved_content, i);
		sqlite3_reset(up);
		sqlite3_bind_int64(up, 1, m->segment);
		sqlite3_bind_int64(up, 2, m->offset);
		sqlite3_bind_int64(up, 3, m->length);
		sqlite3_bind_int64(up, 4, m->content_id);
		if (sqlite3_step(up) != SQLITE_DONE) {
			mv_sql_set_error(error, c->s->db, "move content");
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(up);
	return rc;
}

/* The segments rows of the rewritten segments dropped. */
static int drop_old_segments(compact_ctx *c, GArray *old_segs, GError **error)
{
	sqlite3_stmt *del;
	if (mv_sql_prepare(c->s->db, "DELETE FROM segments WHERE id=?", &del, error) < 0)
		return -1;
	int rc = -1;
	for (guint i = 0; i < old_segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(old_segs, mv_journal_segment, i);
		if (sg->id < c->first_rewritten)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, sg->id);
		if (sqlite3_step(del) != SQLITE_DONE) {
			mv_sql_set_error(error, c->s->db, "drop compacted segment");
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(del);
	return rc;
}

static int add_new_segments(compact_ctx *c, GError **error)
{
	sqlite3_stmt *seg;
	if (mv_sql_prepare(c->s->db, "INSERT INTO segments(id, committed_len) VALUES(?, ?)", &seg, error) < 0)
		return -1;
	int rc = -1;
	for (guint i = 0; i < c->new_segments->len; i++) {
		const mv_journal_segment *sg = &g_array_index(c->new_segments, mv_journal_segment, i);
		sqlite3_reset(seg);
		sqlite3_bind_int64(seg, 1, sg->id);
		sqlite3_bind_int64(seg, 2, sg->end);
		if (sqlite3_step(seg) != SQLITE_DONE) {
			mv_sql_set_error(error, c->s->db, "record compacted segment");
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(seg);
	return rc;
}

typedef struct switch_txn {
	compact_ctx *c;
	GArray *old_segs;
} switch_txn;

/* The one transaction that switches the store to the new segments. */
static int switch_segments(void *opaque, GError **error)
{
	switch_txn *t = opaque;
	if (move_contents(t->c, error) < 0)
		return -1;
	if (mv_sql_exec(t->c->s->db, "DELETE FROM contents WHERE NOT EXISTS (SELECT 1 FROM messages m"
	                " WHERE m.content_id = contents.id AND m.deleted = 0)", error) < 0)
		return -1;
	if (drop_old_segments(t->c, t->old_segs, error) < 0)
		return -1;
	return add_new_segments(t->c, error);
}

static int compact_commit(compact_ctx *c, GArray *old_segs, GError **error)
{
	switch_txn t = { c, old_segs };
	return mv_sql_in_transaction(c->s->db, switch_segments, &t, error);
}

/* Removes the segment files no db row names and returns how many.  The db
 * decides, not what this compaction meant to write: after a failed COMMIT
 * it may name either set.  Only at the start of a compaction are such files
 * debris, of one that was interrupted (before its commit: its new files;
 * after it: the old ones), and named in the log as such; after this
 * compaction's own commit they are the segments it has just replaced,
 * after its failure (normally) the ones it had begun: its own work. */
static guint remove_unnamed_segments(mv_store *s, bool debris)
{
	GArray *files = mv_journal_segments_from_dir(s->paths.content_dir, NULL);
	if (!files)
		return 0;
	guint removed = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM segments WHERE id=?", -1, &st, NULL) == SQLITE_OK) {
		for (guint i = 0; i < files->len; i++) {
			int64_t id = g_array_index(files, mv_journal_segment, i).id;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) != SQLITE_DONE)
				continue;   /* named, or the db cannot say: the file stays */
			char *path = mv_store_segment_file(s, id);
			g_hash_table_remove(s->segment_fds, &id);
			if (unlink(path) == 0) {
				removed++;
				if (debris)
					mv_log_info("store %d: removed %s, left by an interrupted compaction", s->id, path);
			} else if (errno != ENOENT) {
				mv_log_warn("store %d: cannot remove %s, which no db row names (%s); the next compaction"
				            " tries again", s->id, path, g_strerror(errno));
			}
			g_free(path);
		}
		sqlite3_finalize(st);
	}
	g_array_free(files, TRUE);
	return removed;
}

/* Closes and removes the spare segment the last out_segment_open made (or
 * the one a failure left open). */
static void drop_spare_segment(compact_ctx *c)
{
	if (c->out_fd < 0)
		return;
	char *path = mv_store_segment_file(c->s, c->out_seg);
	close(c->out_fd);
	unlink(path);
	g_free(path);
	c->out_fd = -1;
}

/* Every record from first_rewritten on that something live needs, copied
 * into new segments, and the db switched to them. */
static int rewrite_segments(compact_ctx *c, GArray *segs, const mv_task *task, GError **error)
{
	mv_store *s = c->s;
	int rc = -1;
	/* The numbering must be known from the first segment on, so the scan
	 * starts there; records before first_rewritten are only counted. */
	c->next_number = -1;
	if (mv_sql_prepare(s->db, "SELECT c.id FROM contents c WHERE c.segment = ? AND c.offset = ? AND EXISTS"
	                   " (SELECT 1 FROM messages m WHERE m.content_id = c.id AND m.deleted = 0)",
	                   &c->live_content, error) < 0 ||
	    mv_sql_prepare(s->db, "SELECT 1 FROM messages WHERE num = ? AND deleted = 0", &c->number_live, error) < 0)
		goto out;
	mv_store_task_progress(task, 0, "store %d: rewriting segments from %lld on", s->id, (long long)c->first_rewritten);
	if (mv_journal_scan(s, segs, task, compact_record, c, error) < 0)
		goto out;
	if (c->out_fd < 0 && out_segment_open(c, error) < 0)   /* everything dropped: one empty segment */
		goto out;
	if (out_segment_open(c, error) < 0)   /* closes (fsyncs) the last one */
		goto out;
	drop_spare_segment(c);   /* before the directory's fsync, which makes its removal durable */
	if (mv_fsync_dir(s->paths.content_dir, error) < 0)
		goto out;
	rc = compact_commit(c, segs, error);
out:
	drop_spare_segment(c);
	sqlite3_finalize(c->live_content);
	sqlite3_finalize(c->number_live);
	guint removed = remove_unnamed_segments(s, false);
	if (rc == 0)
		mv_log_debug("store %d: compaction removed %u replaced segment%s", s->id, removed, removed == 1 ? "" : "s");
	else
		mv_log_debug("store %d: compaction failed; removed %u segment file%s the db does not name", s->id,
		             removed, removed == 1 ? "" : "s");
	return rc;
}

static json_t *compact_report(compact_ctx *c, GArray *segs, bool nothing)
{
	for (guint i = 0; i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		if (sg->id < c->first_rewritten || nothing)
			c->bytes_after += sg->end;
	}
	for (guint i = 0; i < c->new_segments->len; i++)
		c->bytes_after += g_array_index(c->new_segments, mv_journal_segment, i).end;
	return json_pack("{s:i, s:I, s:I, s:I, s:I}", "storeId", c->s->id, "recordsKept", (json_int_t)c->kept,
	                 "recordsDropped", (json_int_t)c->dropped, "bytesBefore", (json_int_t)c->bytes_before,
	                 "bytesAfter", (json_int_t)c->bytes_after);
}

int mv_store_compact(mv_store *s, const mv_task *task, json_t **report_r, GError **error)
{
	mv_store_assert_writer(s);
	if (mv_store_write_lock_for(s, task, error) < 0)
		return -1;
	remove_unnamed_segments(s, true);
	compact_ctx c = { .s = s, .out_fd = -1, .kept_numbers = g_array_new(FALSE, TRUE, 1),
	                  .moved = g_array_new(FALSE, FALSE, sizeof(moved_content)),
	                  .new_segments = g_array_new(FALSE, TRUE, sizeof(mv_journal_segment)) };
	int rc = -1;
	GArray *segs = mv_journal_segments_from_db(s->db, error);
	if (!segs || first_segment_to_rewrite(s, &c.first_rewritten, error) < 0)
		goto out;
	bool nothing = c.first_rewritten == 0;
	for (guint i = 0; i < segs->len; i++) {
		const mv_journal_segment *sg = &g_array_index(segs, mv_journal_segment, i);
		c.bytes_before += sg->end;
		c.out_seg = MAX(c.out_seg, sg->id);
	}
	if (!nothing && rewrite_segments(&c, segs, task, error) < 0)
		goto out;
	*report_r = compact_report(&c, segs, nothing);
	rc = 0;
out:
	if (segs)
		g_array_free(segs, TRUE);
	g_array_free(c.kept_numbers, TRUE);
	g_array_free(c.moved, TRUE);
	g_array_free(c.new_segments, TRUE);
	return mv_store_finish_locked(s, rc, error);
}
