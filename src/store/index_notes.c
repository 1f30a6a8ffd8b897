/* store/index_notes: the index kept right across a crash between a change
 * of the db and the index's follow-up to it.
 *
 * DeleteMessage and a MoveFolder into another archive commit the db first
 * (the change's commit point) and then remove or re-file documents in the
 * index, a second database no transaction spans.  So before the db
 * changes, the documents it will make stale are noted in the index db with
 * the exact text of their columns; the index transaction that follows the
 * db's commit removes (and re-files) them and drops their notes at once.
 * A writer taking the lock settles notes a crash left behind: a note whose
 * message is still where it says belongs to a db change that never
 * committed and is dropped; any other note's document is deleted by the
 * noted text — contentless deletes need exactly what was inserted, and the
 * message's content may since have been compacted away — and a message
 * that moved is filed again where it is now. */
#include "store/internal.h"

#include <string.h>

int mv_index_notes_add(mv_store *s, GPtrArray *docs, GError **error)
{
	if (mv_store_flush_index(s, error) < 0 || mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (mv_sql_prepare(s->index_db, "INSERT OR REPLACE INTO index_notes(docid, num, archive, folder_id, columns)"
	                   " VALUES(?, ?, ?, ?, ?)", &st, error) < 0)
		goto out;
	for (guint i = 0; i < docs->len; i++) {
		const mv_store_doc *h = docs->pdata[i];
		json_t *cols = mv_index_doc_columns(&h->doc);
		char *text = json_dumps(cols, JSON_COMPACT);
		json_decref(cols);
		sqlite3_bind_int64(st, 1, mv_index_docid(h->doc.date, h->doc.number));
		sqlite3_bind_int64(st, 2, h->doc.number);
		sqlite3_bind_text(st, 3, h->archive, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, h->folder_id);
		sqlite3_bind_text(st, 5, text ? text : "[]", -1, SQLITE_TRANSIENT);
		free(text);
		int step = sqlite3_step(st);
		sqlite3_reset(st);
		if (step != SQLITE_DONE) {
			mv_sql_set_error(error, s->index_db, "note index documents");
			goto out;
		}
	}
	rc = mv_sql_exec(s->index_db, "COMMIT", error);
out:
	sqlite3_finalize(st);
	if (rc < 0)
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mv_index_notes_drop(mv_store *s, GPtrArray *docs, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->index_db, "DELETE FROM index_notes WHERE docid = ?", &st, error) < 0)
		return -1;
	int rc = 0;
	for (guint i = 0; i < docs->len && rc == 0; i++) {
		const mv_store_doc *h = docs->pdata[i];
		sqlite3_bind_int64(st, 1, mv_index_docid(h->doc.date, h->doc.number));
		if (sqlite3_step(st) != SQLITE_DONE) {
			mv_sql_set_error(error, s->index_db, "drop index notes");
			rc = -1;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Where message num is now: 0 with *live_r false when deleted or gone. */
typedef struct place_now {
	bool live;
	char *archive, *path;
	int64_t folder_id, date;
} place_now;

static int place_of(mv_store *s, int64_t num, place_now *p, GError **error)
{
	sqlite3_stmt *st;
	memset(p, 0, sizeof *p);
	if (mv_sql_prepare(s->db, "SELECT f.archive, f.path, m.folder_id, m.date FROM messages m"
	                   " JOIN folders f ON f.id = m.folder_id WHERE m.num = ? AND m.deleted = 0", &st, error) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, num);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		p->live = true;
		p->archive = mv_sql_column_text(st, 0);
		p->path = mv_sql_column_text(st, 1);
		p->folder_id = sqlite3_column_int64(st, 2);
		p->date = sqlite3_column_int64(st, 3);
	} else if (step != SQLITE_DONE) {
		mv_sql_set_error(error, s->db, "find a noted message");
	}
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -1;
}

static void place_clear(place_now *p)
{
	g_free(p->archive);
	g_free(p->path);
}

/* One note: dropped when its message is where it says, else its document
 * deleted by the noted text and, for a message now elsewhere, filed again. */
static int settle_one(mv_store *s, sqlite3_stmt *note, GError **error)
{
	int64_t docid = sqlite3_column_int64(note, 0), num = sqlite3_column_int64(note, 1);
	const char *archive = (const char *)sqlite3_column_text(note, 2);
	int64_t folder_id = sqlite3_column_int64(note, 3);
	place_now p;
	if (place_of(s, num, &p, error) < 0)
		return -1;
	int rc = 0;
	bool in_place = p.live && g_strcmp0(p.archive, archive) == 0 && p.folder_id == folder_id;
	if (!in_place) {
		json_t *cols = json_loads((const char *)sqlite3_column_text(note, 4), 0, NULL);
		rc = mv_index_delete_columns(s->index_db, docid, cols, error);
		json_decref(cols);
	}
	if (rc == 0 && !in_place && p.live) {
		mv_store_doc h;
		rc = mv_store_doc_for(s, num, p.archive, p.path, p.folder_id, p.date, &h, error);
		if (rc == 0)
			rc = mv_index_insert(s->index_db, &s->index_insert, &h.doc, error);
		mv_store_doc_clear(&h);
	}
	mv_log_info("store %d: message %lld: %s", s->id, (long long)num,
	            in_place ? "a change that did not complete left nothing in the index to undo" :
	            p.live ? "re-filed in the index where it moved" : "removed from the index after its deletion");
	place_clear(&p);
	return rc;
}

static int settle_all(mv_store *s, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(s->index_db, "SELECT docid, num, archive, folder_id, columns FROM index_notes", &st, error) < 0)
		return -1;
	int rc = 0, step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
		rc = settle_one(s, st, error);
	if (rc == 0 && step != SQLITE_DONE) {
		mv_sql_set_error(error, s->index_db, "read index notes");
		rc = -1;
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : mv_sql_exec(s->index_db, "DELETE FROM index_notes", error);
}

int mv_index_notes_settle(mv_store *s, GError **error)
{
	int64_t n = 0;
	if (mv_store_int_query(s->index_db, "SELECT count(*) FROM index_notes", "count index notes", &n, error) < 0)
		return -1;
	if (n == 0)
		return 0;
	if (mv_store_flush_index(s, error) < 0 || mv_sql_exec(s->index_db, "BEGIN", error) < 0)
		return -1;
	if (settle_all(s, error) < 0 || mv_sql_exec(s->index_db, "COMMIT", error) < 0) {
		sqlite3_exec(s->index_db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}
