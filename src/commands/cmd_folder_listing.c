/* commands/cmd_folder_listing: GetMessages — one folder's messages,
 * newest first, merged over every store the archive has mail in.
 *
 * One answer is bounded (MV_MAX_ANSWER_MESSAGES); a folder of any size is
 * read in pages with `after`, a cursor that costs one page in each store
 * however deep it lies. */
#include "commands/folder_args.h"
#include "commands/stores_in_use.h"

#include <string.h>

/* The order of a listing, newest first, total and the same on every call:
 * date, then store (higher first), then message number (higher first).
 * `after` continues it from a message, so a page costs one page in each
 * store however deep it lies, and mail archived or deleted meanwhile moves
 * no other message from its page. */
typedef struct listed {
	int store_id;
	bool has_attachment;
	int64_t num, date, archived_at, size;
	char *subject, *from, *to, *message_id;
} listed;

typedef struct list_cursor {
	bool set;
	int store_id;
	int64_t date, num;
} list_cursor;

static void listed_clear(gpointer p)
{
	listed *l = p;
	g_free(l->subject);
	g_free(l->from);
	g_free(l->to);
	g_free(l->message_id);
}


/* Decimal digits of v appended (by hand: printf's machinery cost more than
 * the rest of a row). */
static void append_int(GString *out, int64_t v)
{
	char digits[24];
	int n = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		digits[n++] = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		g_string_append_c(out, '-');
	while (n > 0)
		g_string_append_c(out, digits[--n]);
}

/* A row as GetMessages answers it, written straight from the columns:
 * {id, date, archivedAt, size, subject, from, to, messageId, hasAttachment}. */
static void append_listed(GString *out, const listed *l)
{
	char date[MV_TIME_TEXT_BYTES], archived[MV_TIME_TEXT_BYTES];
	mv_format_time_utc_into(l->date, date);
	mv_format_time_utc_into(l->archived_at, archived);
	g_string_append(out, "{\"id\":\"");
	append_int(out, l->store_id);
	g_string_append_c(out, ':');
	append_int(out, l->num);
	g_string_append(out, "\",\"date\":\"");
	g_string_append(out, date);
	g_string_append(out, "\",\"archivedAt\":\"");
	g_string_append(out, archived);
	g_string_append(out, "\",\"size\":");
	append_int(out, l->size);
	g_string_append(out, ",\"subject\":");
	mv_json_append_string(out, l->subject);
	g_string_append(out, ",\"from\":");
	mv_json_append_string(out, l->from);
	g_string_append(out, ",\"to\":");
	mv_json_append_string(out, l->to);
	g_string_append(out, ",\"messageId\":");
	mv_json_append_string(out, l->message_id);
	g_string_append(out, l->has_attachment ? ",\"hasAttachment\":true}" : ",\"hasAttachment\":false}");
}

static gint by_listing_order(gconstpointer a, gconstpointer b)
{
	const listed *x = a, *y = b;
	if (x->date != y->date)
		return x->date > y->date ? -1 : 1;
	if (x->store_id != y->store_id)
		return x->store_id > y->store_id ? -1 : 1;
	return x->num > y->num ? -1 : (x->num < y->num);
}

/* The rows of one store that follow the cursor in the listing order: in
 * the cursor's own store those after it, in a higher store (listed first
 * among equal dates) the older dates only, in a lower one its date too. */
static void cursor_bounds(const list_cursor *c, int store_id, int64_t *date_r, int64_t *num_r)
{
	*date_r = c->set ? c->date : INT64_MAX;
	*num_r = !c->set || store_id < c->store_id ? INT64_MAX : store_id == c->store_id ? c->num : 0;
}

/* Where list_store's rows go: the listing and the store they come from. */
typedef struct list_sink {
	GArray *out;
	int store_id;
} list_sink;

static int add_listed(const mv_store_message *m, void *opaque)
{
	list_sink *sink = opaque;
	listed l = { .store_id = sink->store_id, .num = m->number, .date = m->date, .archived_at = m->archived_at,
		     .size = m->size, .subject = g_strdup(m->subject), .from = g_strdup(m->sender),
		     .to = g_strdup(m->recipients), .message_id = g_strdup(m->message_id),
		     .has_attachment = m->has_attachment };
	g_array_append_val(sink->out, l);
	return 0;
}

/* One store's messages of a folder after the cursor, in order, at most want. */
static int list_store(mv_store *s, const char *archive, const char *path, const list_cursor *c, int64_t want,
                      GArray *out, GError **error)
{
	int64_t date, num;
	cursor_bounds(c, mv_store_id(s), &date, &num);
	list_sink sink = { .out = out, .store_id = mv_store_id(s) };
	return mv_store_folder_messages(s, archive, path, date, num, want, add_listed, &sink, error) < 0 ? -1 : 0;
}

/* Where `after` stands: the message must be of this folder (deleted since
 * is fine — its row keeps its date), else the answer would not continue
 * the listing the caller was reading. */
static int cursor_of(mv_command_ctx *ctx, const char *after, const char *archive, const char *path,
                     const char *folder, list_cursor *c, GError **error)
{
	memset(c, 0, sizeof *c);
	if (!after || !*after)
		return 0;
	int64_t num = 0;
	GError *err = NULL;
	mv_store *s = NULL;
	if (mv_message_id_parse(after, &c->store_id, &num) &&
	    (s = mv_instance_open_store(ctx->inst, c->store_id, MV_STORE_READ, &err)) &&
	    mv_store_folder_message_date(s, num, archive, path, &c->date, &err) == 1) {
		c->set = true;
		c->num = num;
	}
	mv_store_close(&s);
	g_clear_error(&err);
	if (!c->set)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "GetMessages: after: '%.64s' is not a message of folder "
		            "'%.200s' (list it again from the start)", after, folder);
	return c->set ? 0 : -1;
}

/* A listing read in pages must not lose a store between two pages: one
 * disabled, detached or gone unreadable since the listing began would end
 * it short with nothing said, so the listing fails instead, naming it. */
static int stores_still_in_use(mv_command_ctx *ctx, GArray *ids, GError **error)
{
	GPtrArray *infos = mv_instance_stores(ctx->inst, error);
	if (!infos)
		return -1;
	int rc = 0;
	for (guint i = 0; i < ids->len && rc == 0; i++) {
		int id = g_array_index(ids, int, i);
		const mv_archive_store *info = NULL;
		for (guint j = 0; j < infos->len && !info; j++)
			if (((const mv_archive_store *)infos->pdata[j])->id == id)
				info = infos->pdata[j];
		const char *why = !info ? "it was detached" : strcmp(info->state, "disabled") == 0 ? "it was disabled"
		                  : info->error;
		if (why) {
			g_set_error(error, MV_ERROR, MV_ERR_IO, "GetMessages: store %d can no longer be read in the middle of "
			            "the listing (%s); list again", id, why);
			rc = -1;
		}
	}
	g_ptr_array_free(infos, TRUE);
	return rc;
}

/* The listing after the cursor, the stores merged, at most `want`. */
static GArray *list_folder(mv_command_ctx *ctx, GArray *ids, const char *archive, const char *path,
                           const list_cursor *c, int64_t want, GError **error)
{
	GArray *rows = g_array_new(FALSE, FALSE, sizeof(listed));
	g_array_set_clear_func(rows, listed_clear);
	for (guint i = 0; i < ids->len && rows; i++) {
		mv_store *s = mv_instance_open_store(ctx->inst, g_array_index(ids, int, i), MV_STORE_READ, error);
		if (!s || list_store(s, archive, path, c, want, rows, error) < 0)
			g_array_free(rows, TRUE), rows = NULL;
		mv_store_close(&s);
		/* Each store gave at most `want`: sorting and cutting as we go
		 * keeps at most twice that, however many stores there are. */
		if (rows && (int64_t)rows->len > want) {
			g_array_sort(rows, by_listing_order);
			g_array_remove_range(rows, (guint)want, rows->len - (guint)want);
		}
	}
	if (rows)
		g_array_sort(rows, by_listing_order);
	return rows;
}


/* Rows at most a listing reads from each store at once: the stream holds
 * one page (~0.5 MB), so memory stays bounded by it whatever the folder's
 * size, and no read transaction stays open between pages (a slow reader
 * holds up no checkpoint); each page costs a look at the store registry
 * and a statement per store, small against 2,048 rows. */
#define LISTING_PAGE 2048

/* How many messages follow the cursor over all stores, counted no
 * further than at_most. */
static int count_after(mv_command_ctx *ctx, GArray *ids, const char *archive, const char *path,
                       const list_cursor *c, int64_t at_most, int64_t *count_r, GError **error)
{
	int rc = 0;
	*count_r = 0;
	for (guint i = 0; i < ids->len && rc == 0 && *count_r < at_most; i++) {
		int id = g_array_index(ids, int, i);
		int64_t date, num, n = 0;
		cursor_bounds(c, id, &date, &num);
		mv_store *s = mv_instance_open_store(ctx->inst, id, MV_STORE_READ, error);
		rc = s ? mv_store_folder_count(s, archive, path, date, num, at_most - *count_r, &n, error) : -1;
		mv_store_close(&s);
		*count_r += n;
	}
	return rc;
}

/* A GetMessages listing being read: pages of the merged listing, each
 * continuing from the last row of the one before, as `after` does. */
typedef struct listing {
	mv_command_ctx *ctx;
	char *archive, *path;
	GArray *stores;              /* ids of the stores read, fixed when it began */
	list_cursor cursor;
	int64_t skip;                /* offset: rows still to pass over */
	int64_t left;                /* rows still to hand out */
	GArray *page;                /* of listed */
	guint next;                  /* index into page */
	bool last_page;              /* the stores had no more than the page */
} listing;

static void listing_free(gpointer p)
{
	listing *l = p;
	if (l->page)
		g_array_free(l->page, TRUE);
	if (l->stores)
		g_array_free(l->stores, TRUE);
	g_free(l->archive);
	g_free(l->path);
	g_free(l);
}

/* The next page: no more rows than the answer still takes (a 50-row page
 * of Web Access reads 50, not LISTING_PAGE, from each store).  The stores
 * are checked again from the second page on: the first follows their
 * look-up at once. */
static int read_page(listing *l, bool check_stores, GError **error)
{
	g_clear_pointer(&l->page, g_array_unref);
	l->next = 0;
	int64_t want = MIN((int64_t)LISTING_PAGE, l->skip + l->left);
	if ((check_stores && stores_still_in_use(l->ctx, l->stores, error) < 0) ||
	    !(l->page = list_folder(l->ctx, l->stores, l->archive, l->path, &l->cursor, want, error)))
		return -1;
	l->last_page = (int64_t)l->page->len < want;
	if (l->page->len > 0) {
		const listed *last = &g_array_index(l->page, listed, l->page->len - 1);
		l->cursor = (list_cursor){ .set = true, .store_id = last->store_id, .date = last->date, .num = last->num };
	}
	return 0;
}

static int listing_next(void *state, GString *out, GError **error)
{
	listing *l = state;
	while (l->left > 0) {
		if (l->next >= l->page->len) {
			if (l->last_page)
				return 0;
			if (read_page(l, true, error) < 0)
				return -1;
			continue;
		}
		const listed *row = &g_array_index(l->page, listed, l->next++);
		if (l->skip > 0) {
			l->skip--;
			continue;
		}
		l->left--;
		append_listed(out, row);
		return 1;
	}
	return 0;
}

static mv_rows *get_messages(mv_command_ctx *ctx, json_t *args, GError **error)
{
	const char *folder = mv_arg_string(args, "folder");
	int64_t offset = mv_arg_number(args, "offset", 0), limit = mv_arg_number(args, "limit", 0);
	if (!mv_answer_paging_check("GetMessages", offset, limit, error))
		return NULL;
	listing *l = g_new0(listing, 1);
	l->ctx = ctx;
	l->skip = offset;
	l->left = limit ? limit : MV_MAX_ANSWER_MESSAGES;
	int64_t more = 0;
	if (!mv_folder_split(folder, "folder", &l->archive, &l->path, error) ||
	    !mv_folder_readable(ctx, "GetMessages", l->archive, l->path, folder, error) ||
	    cursor_of(ctx, mv_arg_string(args, "after"), l->archive, l->path, folder, &l->cursor, error) < 0 ||
	    !(l->stores = mv_store_ids_in_use(ctx, false, error)))
		goto fail;
	/* "All" is refused up front when it is more than an answer holds:
	 * counting one past the bound says so without reading the rows. */
	if (!limit && count_after(ctx, l->stores, l->archive, l->path, &l->cursor, offset + MV_MAX_ANSWER_MESSAGES + 1,
	                          &more, error) < 0)
		goto fail;
	if (!limit && more > offset + MV_MAX_ANSWER_MESSAGES) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "GetMessages: folder '%.200s' holds more than %d messages, more "
		            "than one answer holds: page through it with limit and after", folder, MV_MAX_ANSWER_MESSAGES);
		goto fail;
	}
	if (read_page(l, false, error) < 0)
		goto fail;
	return mv_rows_new(listing_next, l, listing_free);
fail:
	listing_free(l);
	return NULL;
}

static const mv_command_arg args_list[] = {
	{ "folder", MV_ARG_STRING, false, NULL }, { "limit", MV_ARG_NUMBER, true, NULL },
	{ "after", MV_ARG_STRING, true, NULL }, { "offset", MV_ARG_NUMBER, true, NULL }, { .name = NULL } };

const mv_command mv_commands_folder_listing[] = {
	{ .name = "GetMessages", .args = args_list, .privilege = "login", .rows = get_messages,
	  .summary = "the messages of one folder, newest first (limit and after page them)" },
	{ .name = NULL },
};
