/* pst: Outlook PST and OST files read item by item with libpff, into the
 * property model of mapi.h (the converter then makes each item a message).
 *
 * The reader streams: it holds the open file, a stack of the folders being
 * walked (their path and the index of the next item and subfolder) and one
 * item at a time, so memory does not grow with the size of the file or of
 * a folder.  The walk starts at the IPM subtree (what Outlook shows), so the
 * archive's folders carry the names users know, not the store's technical
 * root folders.  libpff reads damaged files as far as it can; an item or
 * folder it cannot read is reported with its folder and the walk goes on. */
#include "mime/mapi.h"

#include <libpff.h>
#include <string.h>

#define MAX_FOLDER_DEPTH 64
#define PID_IPM_SUBTREE_ENTRYID 0x35E0u

typedef struct pst_frame {
	libpff_item_t *folder;
	char *path;            /* "" for the IPM subtree itself, else "Inbox/Sub" */
	int n_messages, next_message;
	int n_folders, next_folder;
} pst_frame;

struct mv_pst {
	libpff_file_t *file;
	char *name;            /* the file's base name, for origins */
	uint32_t codepage;     /* the file's code page for 8-bit strings */
	GPtrArray *stack;      /* pst_frame * */
	uint64_t items_total, items_done;
	char *folder;          /* the folder of the item last returned */
	uint64_t item_bytes;   /* attachment bytes read for the current item (embedded ones included) */
};

/* libpff's errors are chains of messages; the last line says most. */
static void set_pff_error(GError **error, int code, libpff_error_t **perr, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void set_pff_error(GError **error, int code, libpff_error_t **perr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	char buf[512] = "";
	if (perr && *perr) {
		if (libpff_error_sprint(*perr, buf, sizeof buf) < 0)
			buf[0] = '\0';
		libpff_error_free(perr);
	}
	char *last = strrchr(g_strstrip(buf), '\n');
	g_set_error(error, MV_ERROR, code, "%s%s%s", what, buf[0] ? ": " : "", last ? last + 1 : buf);
	g_free(what);
}

static void frame_free(gpointer p)
{
	pst_frame *f = p;
	libpff_item_free(&f->folder, NULL);
	g_free(f->path);
	g_free(f);
}

/* ---- properties ------------------------------------------------------------------ */

/* One record set (a message's, a recipient's or an attachment's
 * properties) into a bag.  Named properties (ids from 0x8000) are left
 * out: the converter reads none, and their ids mean something only with
 * the file's name-to-id map. */
static void read_record_set(libpff_record_set_t *set, mv_mapi_props *props, GPtrArray *damage, const char *what)
{
	int n = 0;
	if (libpff_record_set_get_number_of_entries(set, &n, NULL) != 1)
		return;
	for (int i = 0; i < n; i++) {
		libpff_record_entry_t *entry = NULL;
		uint32_t id = 0, type = 0;
		size_t size = 0;
		if (libpff_record_set_get_entry_by_index(set, i, &entry, NULL) != 1)
			continue;
		if (libpff_record_entry_get_entry_type(entry, &id, NULL) == 1 &&
		    libpff_record_entry_get_value_type(entry, &type, NULL) == 1 && id < 0x8000 &&
		    libpff_record_entry_get_data_size(entry, &size, NULL) == 1) {
			if (size > MV_MAX_MESSAGE_SIZE) {
				g_ptr_array_add(damage, g_strdup_printf("%s: property %04X larger than the message limit", what, id));
			} else {
				uint8_t *buf = g_malloc(size ? size : 1);
				if (size == 0 || libpff_record_entry_get_data(entry, buf, size, NULL) == 1)
					mv_mapi_props_set(props, MV_TAG(id, type), buf, size);
				else
					g_ptr_array_add(damage, g_strdup_printf("%s: property %04X unreadable", what, id));
				g_free(buf);
			}
		}
		libpff_record_entry_free(&entry, NULL);
	}
}

static void read_item_props(libpff_item_t *item, mv_mapi_props *props, GPtrArray *damage, const char *what)
{
	libpff_record_set_t *set = NULL;
	if (libpff_item_get_record_set_by_index(item, 0, &set, NULL) != 1) {
		g_ptr_array_add(damage, g_strdup_printf("%s: properties unreadable", what));
		return;
	}
	read_record_set(set, props, damage, what);
	libpff_record_set_free(&set, NULL);
}

static void read_recipients(libpff_item_t *message, mv_mapi_message *m)
{
	libpff_item_t *recipients = NULL;
	libpff_error_t *err = NULL;
	int rc = libpff_message_get_recipients(message, &recipients, &err);
	libpff_error_free(&err);
	if (rc != 1)
		return; /* no recipient table: the converter falls back to PR_DISPLAY_TO */
	int n = 0;
	if (libpff_item_get_number_of_record_sets(recipients, &n, NULL) == 1) {
		for (int i = 0; i < n && i < MV_MAPI_MAX_RECIPIENTS; i++) {
			libpff_record_set_t *set = NULL;
			if (libpff_item_get_record_set_by_index(recipients, i, &set, NULL) != 1) {
				g_ptr_array_add(m->damage, g_strdup_printf("recipient %d unreadable", i + 1));
				continue;
			}
			mv_mapi_props *props = mv_mapi_props_new();
			read_record_set(set, props, m->damage, "recipient");
			g_ptr_array_add(m->recipients, props);
			libpff_record_set_free(&set, NULL);
		}
	}
	libpff_item_free(&recipients, NULL);
}

static int read_message(mv_pst *p, libpff_item_t *item, int depth, mv_mapi_message **m_r);

/* An item's attachments together stay within the message limit: the
 * converted message could not be archived beyond it anyway, and memory
 * stays bounded whatever an item claims to hold. */
static void read_attachment_data(mv_pst *p, libpff_item_t *att, mv_mapi_attachment *a, GPtrArray *damage, int index)
{
	size64_t size = 0;
	if (libpff_attachment_get_data_size(att, &size, NULL) != 1)
		return;
	if (size > MV_MAX_MESSAGE_SIZE - p->item_bytes) {
		g_ptr_array_add(damage, g_strdup_printf("attachment %d: %llu bytes, beyond the message limit", index,
		                                        (unsigned long long)size));
		return;
	}
	p->item_bytes += size;
	uint8_t *buf = g_malloc(size ? (size_t)size : 1);
	size_t got = 0;
	if (libpff_attachment_data_seek_offset(att, 0, SEEK_SET, NULL) < 0)
		size = 0;
	while (got < size) {
		ssize_t r = libpff_attachment_data_read_buffer(att, buf + got, (size_t)size - got, NULL);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < size)
		g_ptr_array_add(damage, g_strdup_printf("attachment %d: only %zu of %llu bytes readable", index, got,
		                                        (unsigned long long)size));
	mv_mapi_props_set(a->props, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), buf, got);
	g_free(buf);
}

static void read_attachments(mv_pst *p, libpff_item_t *message, mv_mapi_message *m, int depth)
{
	int n = 0;
	if (libpff_message_get_number_of_attachments(message, &n, NULL) != 1)
		return;
	if (n > MV_MAPI_MAX_ATTACHMENTS) {
		g_ptr_array_add(m->damage, g_strdup_printf("%d attachments, only the first %d read", n, MV_MAPI_MAX_ATTACHMENTS));
		n = MV_MAPI_MAX_ATTACHMENTS;
	}
	for (int i = 0; i < n; i++) {
		libpff_item_t *att = NULL;
		if (libpff_message_get_attachment(message, i, &att, NULL) != 1) {
			g_ptr_array_add(m->damage, g_strdup_printf("attachment %d unreadable", i + 1));
			continue;
		}
		mv_mapi_attachment *a = mv_mapi_attachment_new();
		read_item_props(att, a->props, m->damage, "attachment");
		int type = 0;
		if (libpff_attachment_get_type(att, &type, NULL) == 1 && type == LIBPFF_ATTACHMENT_TYPE_ITEM) {
			libpff_item_t *sub = NULL;
			if (depth + 1 >= MV_MAPI_MAX_DEPTH)
				g_ptr_array_add(m->damage, g_strdup_printf("attachment %d: embedded messages nest too deep", i + 1));
			else if (libpff_attachment_get_item(att, &sub, NULL) == 1 && read_message(p, sub, depth + 1, &a->embedded) < 0)
				g_ptr_array_add(m->damage, g_strdup_printf("attachment %d: embedded message unreadable", i + 1));
			libpff_item_free(&sub, NULL);
		} else if (type == LIBPFF_ATTACHMENT_TYPE_DATA) {
			read_attachment_data(p, att, a, m->damage, i + 1);
		}
		g_ptr_array_add(m->attachments, a);
		libpff_item_free(&att, NULL);
	}
}

static int read_message(mv_pst *p, libpff_item_t *item, int depth, mv_mapi_message **m_r)
{
	libpff_record_set_t *set = NULL;
	if (libpff_item_get_record_set_by_index(item, 0, &set, NULL) != 1)
		return -1;
	mv_mapi_message *m = mv_mapi_message_new();
	read_record_set(set, m->props, m->damage, "message");
	libpff_record_set_free(&set, NULL);
	int32_t cp = 0;
	m->codepage = mv_mapi_props_int32(m->props, MV_PID_MESSAGE_CODEPAGE, &cp) && cp > 0 ? (uint32_t)cp : p->codepage;
	read_recipients(item, m);
	read_attachments(p, item, m, depth);
	*m_r = m;
	return 0;
}

/* ---- the folder walk ----------------------------------------------------------------- */

static char *folder_name(libpff_item_t *folder)
{
	size_t size = 0;
	if (libpff_folder_get_utf8_name_size(folder, &size, NULL) != 1 || size == 0 || size > 65536)
		return g_strdup("(unnamed)");
	uint8_t *buf = g_malloc(size);
	char *name;
	if (libpff_folder_get_utf8_name(folder, buf, size, NULL) == 1) {
		buf[size - 1] = '\0';
		name = mv_utf8_sanitize((const char *)buf, -1);
	} else {
		name = g_strdup("(unnamed)");
	}
	g_free(buf);
	/* "/" separates archive folders: a name containing one is one folder. */
	g_strdelimit(name, "/", '_');
	g_strstrip(name);
	if (!*name) {
		g_free(name);
		name = g_strdup("(unnamed)");
	}
	return name;
}

static pst_frame *frame_new(libpff_item_t *folder, char *path)
{
	pst_frame *f = g_new0(pst_frame, 1);
	f->folder = folder;
	f->path = path;
	if (libpff_folder_get_number_of_sub_messages(folder, &f->n_messages, NULL) != 1)
		f->n_messages = 0;
	if (libpff_folder_get_number_of_sub_folders(folder, &f->n_folders, NULL) != 1)
		f->n_folders = 0;
	return f;
}

/* The IPM subtree: named by the message store's PR_IPM_SUBTREE_ENTRYID,
 * whose last four bytes are the folder's identifier. */
static libpff_item_t *ipm_subtree(libpff_file_t *file)
{
	libpff_item_t *store = NULL, *subtree = NULL;
	if (libpff_file_get_message_store(file, &store, NULL) != 1)
		return NULL;
	mv_mapi_props *props = mv_mapi_props_new();
	GPtrArray *ignored = g_ptr_array_new_with_free_func(g_free);
	read_item_props(store, props, ignored, "message store");
	size_t len = 0;
	const uint8_t *eid = mv_mapi_props_get(props, MV_TAG(PID_IPM_SUBTREE_ENTRYID, MV_PT_BINARY), &len);
	if (eid && len >= 24) {
		uint32_t nid = (uint32_t)eid[20] | (uint32_t)eid[21] << 8 | (uint32_t)eid[22] << 16 | (uint32_t)eid[23] << 24;
		if (libpff_file_get_item_by_identifier(file, nid, &subtree, NULL) != 1)
			subtree = NULL;
	}
	g_ptr_array_unref(ignored);
	mv_mapi_props_free(props);
	libpff_item_free(&store, NULL);
	return subtree;
}

/* Items in every folder below the start, counted before reading: the
 * progress line's "of total".  Iterative, depth-bounded. */
static uint64_t count_items(libpff_item_t *start)
{
	uint64_t total = 0;
	GPtrArray *todo = g_ptr_array_new();
	GArray *depths = g_array_new(FALSE, FALSE, sizeof(int));
	libpff_item_t *first = NULL;
	if (libpff_item_clone(&first, start, NULL) != 1)
		goto out;
	g_ptr_array_add(todo, first);
	int zero = 0;
	g_array_append_val(depths, zero);
	while (todo->len) {
		libpff_item_t *f = g_ptr_array_steal_index(todo, todo->len - 1);
		int depth = g_array_index(depths, int, depths->len - 1);
		g_array_set_size(depths, depths->len - 1);
		int n = 0;
		if (libpff_folder_get_number_of_sub_messages(f, &n, NULL) == 1 && n > 0)
			total += (uint64_t)n;
		if (depth < MAX_FOLDER_DEPTH && libpff_folder_get_number_of_sub_folders(f, &n, NULL) == 1) {
			for (int i = 0; i < n; i++) {
				libpff_item_t *sub = NULL;
				if (libpff_folder_get_sub_folder(f, i, &sub, NULL) == 1) {
					g_ptr_array_add(todo, sub);
					int d = depth + 1;
					g_array_append_val(depths, d);
				}
			}
		}
		libpff_item_free(&f, NULL);
	}
out:
	g_ptr_array_unref(todo);
	g_array_free(depths, TRUE);
	return total;
}

int mv_pst_open(const char *path, mv_pst **p_r, GError **error)
{
	libpff_file_t *file = NULL;
	libpff_error_t *err = NULL;
	if (libpff_file_initialize(&file, &err) != 1) {
		set_pff_error(error, MV_ERR_IO, &err, "%s: cannot start the PST reader", path);
		return -1;
	}
	if (libpff_file_open(file, path, LIBPFF_OPEN_READ, &err) != 1) {
		set_pff_error(error, MV_ERR_INVALID, &err, "%s: not a readable PST/OST file", path);
		libpff_file_free(&file, NULL);
		return -1;
	}
	libpff_item_t *start = ipm_subtree(file);
	if (!start && libpff_file_get_root_folder(file, &start, &err) != 1) {
		set_pff_error(error, MV_ERR_INVALID, &err, "%s: the PST has no readable folder tree", path);
		libpff_file_close(file, NULL);
		libpff_file_free(&file, NULL);
		return -1;
	}
	mv_pst *p = g_new0(mv_pst, 1);
	p->file = file;
	p->name = g_path_get_basename(path);
	int cp = 0;
	p->codepage = libpff_file_get_ascii_codepage(file, &cp, NULL) == 1 && cp > 0 ? (uint32_t)cp : 1252;
	p->items_total = count_items(start);
	p->stack = g_ptr_array_new_with_free_func(frame_free);
	g_ptr_array_add(p->stack, frame_new(start, g_strdup("")));
	*p_r = p;
	return 0;
}

void mv_pst_close(mv_pst **pp)
{
	if (!pp || !*pp)
		return;
	mv_pst *p = *pp;
	g_ptr_array_unref(p->stack);
	libpff_file_close(p->file, NULL);
	libpff_file_free(&p->file, NULL);
	g_free(p->name);
	g_free(p->folder);
	g_free(p);
	*pp = NULL;
}

void mv_pst_progress(const mv_pst *p, uint64_t *done_r, uint64_t *total_r, const char **folder_r)
{
	*done_r = p->items_done;
	*total_r = p->items_total > p->items_done ? p->items_total : p->items_done;
	*folder_r = p->folder ? p->folder : "";
}

static char *origin_of(const mv_pst *p, const pst_frame *f, int index)
{
	return g_strdup_printf("%s:%s#%d", p->name, *f->path ? f->path : "(top)", index + 1);
}

/* Descends into the next subfolder of the top frame, or pops it when it
 * has none left.  Returns false when the walk is over. */
static bool advance_folder(mv_pst *p, GError **error, bool *skipped_r)
{
	pst_frame *f = p->stack->pdata[p->stack->len - 1];
	if (f->next_folder >= f->n_folders || p->stack->len > MAX_FOLDER_DEPTH) {
		g_ptr_array_remove_index(p->stack, p->stack->len - 1);
		return p->stack->len > 0;
	}
	int i = f->next_folder++;
	libpff_item_t *sub = NULL;
	libpff_error_t *err = NULL;
	if (libpff_folder_get_sub_folder(f->folder, i, &sub, &err) != 1) {
		set_pff_error(error, MV_ERR_CORRUPT, &err, "%s:%s: subfolder %d unreadable (its mail is lost)", p->name,
		              *f->path ? f->path : "(top)", i + 1);
		*skipped_r = true;
		return true;
	}
	char *name = folder_name(sub);
	char *path = *f->path ? g_strconcat(f->path, "/", name, NULL) : g_strdup(name);
	g_free(name);
	g_ptr_array_add(p->stack, frame_new(sub, path));
	return true;
}

mv_read_result mv_pst_next(mv_pst *p, mv_mapi_message **m_r, char **origin_r, GError **error)
{
	*m_r = NULL;
	*origin_r = NULL;
	while (p->stack->len) {
		pst_frame *f = p->stack->pdata[p->stack->len - 1];
		if (f->next_message < f->n_messages) {
			int i = f->next_message++;
			p->items_done++;
			g_free(p->folder);
			p->folder = g_strdup(f->path);
			*origin_r = origin_of(p, f, i);
			libpff_item_t *item = NULL;
			libpff_error_t *err = NULL;
			if (libpff_folder_get_sub_message(f->folder, i, &item, &err) != 1) {
				set_pff_error(error, MV_ERR_CORRUPT, &err, "%s: item unreadable", *origin_r);
				return MV_READ_SKIPPED;
			}
			p->item_bytes = 0;
			int rc = read_message(p, item, 0, m_r);
			libpff_item_free(&item, NULL);
			if (rc < 0) {
				g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "%s: item properties unreadable", *origin_r);
				return MV_READ_SKIPPED;
			}
			return MV_READ_MESSAGE;
		}
		bool skipped = false;
		if (!advance_folder(p, error, &skipped))
			break;
		if (skipped) {
			*origin_r = g_strdup_printf("%s:%s", p->name, *f->path ? f->path : "(top)");
			return MV_READ_SKIPPED;
		}
	}
	return MV_READ_END;
}

const char *mv_pst_folder(const mv_pst *p)
{
	return p->folder ? p->folder : "";
}

bool mv_pst_is_pst(const uint8_t *data, size_t len)
{
	return len >= 4 && memcmp(data, "!BDN", 4) == 0;
}
