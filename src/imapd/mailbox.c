/* imapd/mailbox: the mailboxes a user sees and the messages in one.
 *
 * The tree: the user's own archive at the top (its Inbox — or its root,
 * where imports without a folder put mail — is INBOX), every other archive
 * the user may read under "Other Users/<archive>/".  Folders the user may
 * not read are not there; parents that are no folder show as \Noselect.
 * Names are built from the folders table of every store, which is small,
 * never from the messages.
 *
 * A mailbox's messages are the live rows of its folders in every readable
 * store; a message's UID is (its store's rank in the mailbox << 25) | its
 * number, the ranks and UIDVALIDITY kept by archive/mailbox_uids.c, so
 * UIDs survive restarts, RecoverStore and CompactStore (which keep
 * numbers) and grow for new mail. */
#include "imapd/internal.h"
#include "store/store.h"
#include <string.h>

#define NUMBER_BITS 25

void imap_mailbox_free(imap_mailbox *m)
{
	if (!m)
		return;
	g_free(m->name);
	if (m->sources)
		g_ptr_array_free(m->sources, TRUE);
	g_free(m);
}

static void source_free(gpointer p)
{
	imap_source *s = p;
	g_free(s->archive);
	g_free(s->path);
	g_free(s);
}

/* ---- the tree ------------------------------------------------------------- */

static bool same_name(const char *a, const char *b)
{
	char *x = g_utf8_casefold(a, -1), *y = g_utf8_casefold(b, -1);
	bool same = strcmp(x, y) == 0;
	g_free(x);
	g_free(y);
	return same;
}

static unsigned special_use(const char *name)
{
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
		{ "Sent", IMAP_MBOX_SENT },         { "Sent Items", IMAP_MBOX_SENT },    { "Sent Messages", IMAP_MBOX_SENT },
		{ "Sent Mail", IMAP_MBOX_SENT },    { "Gesendete Elemente", IMAP_MBOX_SENT }, { "Gesendet", IMAP_MBOX_SENT },
		{ "Trash", IMAP_MBOX_TRASH },       { "Deleted Items", IMAP_MBOX_TRASH }, { "Deleted Messages", IMAP_MBOX_TRASH },
		{ "Gelöschte Elemente", IMAP_MBOX_TRASH }, { "Papierkorb", IMAP_MBOX_TRASH },
		{ "Drafts", IMAP_MBOX_DRAFTS },     { "Entwürfe", IMAP_MBOX_DRAFTS },
		{ "Junk", IMAP_MBOX_JUNK },         { "Junk E-Mail", IMAP_MBOX_JUNK },   { "Junk-E-Mail", IMAP_MBOX_JUNK },
		{ "Spam", IMAP_MBOX_JUNK },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
		if (same_name(name, known[i].name))
			return known[i].flag;
	return 0;
}

/* The mailbox name of a folder, or NULL when it has none (unsafe path). */
static char *name_of(const char *archive, const char *path, bool own)
{
	if (strstr(path, "//") || path[0] == '/')
		return NULL;
	if (own) {
		if (!*path)
			return g_strdup("INBOX");
		const char *slash = strchr(path, '/');
		size_t first = slash ? (size_t)(slash - path) : strlen(path);
		if (first == 5 && g_ascii_strncasecmp(path, "inbox", 5) == 0)
			return g_strconcat("INBOX", path + 5, NULL);
		return g_strdup(path);
	}
	if (strchr(archive, '/'))
		return NULL;
	return *path ? g_strconcat(IMAP_OTHER_USERS "/", archive, "/", path, NULL)
	             : g_strconcat(IMAP_OTHER_USERS "/", archive, NULL);
}

static imap_mailbox *tree_node(GHashTable *byname, const char *name)
{
	imap_mailbox *m = g_hash_table_lookup(byname, name);
	if (m)
		return m;
	m = g_new0(imap_mailbox, 1);
	m->name = g_strdup(name);
	m->flags = IMAP_MBOX_NOSELECT;
	m->sources = g_ptr_array_new_with_free_func(source_free);
	g_hash_table_insert(byname, m->name, m);
	return m;
}

static void add_folder(GHashTable *byname, const mv_access *access, const char *user, const char *archive,
                       const char *path)
{
	if (!(mv_access_folder(access, archive, path) & MV_FOLDER_READ))
		return;
	bool own = user && same_name(archive, user);
	char *name = name_of(archive, path, own);
	if (!name)
		return;
	imap_mailbox *m = tree_node(byname, name);
	for (guint i = 0; i < m->sources->len; i++) {
		imap_source *s = m->sources->pdata[i];
		if (strcmp(s->archive, archive) == 0 && strcmp(s->path, path) == 0) {
			g_free(name);
			return;
		}
	}
	imap_source *s = g_new0(imap_source, 1);
	s->archive = g_strdup(archive);
	s->path = g_strdup(path);
	g_ptr_array_add(m->sources, s);
	m->flags &= ~(unsigned)IMAP_MBOX_NOSELECT;
	if (own && !strchr(path, '/'))
		m->flags |= special_use(path);
	/* Parents that are no folder are there as \Noselect. */
	for (char *slash = strrchr(name, '/'); slash; slash = strrchr(name, '/')) {
		*slash = 0;
		tree_node(byname, name);
	}
	g_free(name);
}

static int add_store_folders(mv_store *s, GHashTable *byname, const mv_access *access, const char *user,
                             GError **error)
{
	sqlite3 *db = mv_store_db(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT archive, path FROM folders", -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "listing folders");
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		add_folder(byname, access, user, (const char *)sqlite3_column_text(st, 0),
		           (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return 0;
}

static int by_name(gconstpointer a, gconstpointer b)
{
	const imap_mailbox *x = *(imap_mailbox *const *)a, *y = *(imap_mailbox *const *)b;
	return strcmp(x->name, y->name);
}

/* The readable stores, opened for reading (mv_store*). */
static GPtrArray *open_stores(mv_instance *inst, GError **error)
{
	GPtrArray *infos = mv_instance_stores(inst, error);
	if (!infos)
		return NULL;
	GPtrArray *stores = g_ptr_array_new();
	for (guint i = 0; i < infos->len; i++) {
		const mv_archive_store *info = infos->pdata[i];
		if (strcmp(info->state, "disabled") == 0 || info->error || info->locked)
			continue;
		GError *err = NULL;
		mv_store *s = mv_instance_open_store(inst, info->id, MV_STORE_READ, &err);
		if (!s) {
			mv_log_warn("IMAP: store %d (%s) not shown: %s", info->id, info->name, err->message);
			g_error_free(err);
			continue;
		}
		g_ptr_array_add(stores, s);
	}
	g_ptr_array_free(infos, TRUE);
	return stores;
}

static void close_stores(GPtrArray *stores)
{
	for (guint i = 0; stores && i < stores->len; i++) {
		mv_store *s = stores->pdata[i];
		mv_store_close(&s);
	}
	if (stores)
		g_ptr_array_free(stores, TRUE);
}

GPtrArray *imap_mailbox_tree(mv_instance *inst, const mv_access *access, const char *user, GError **error)
{
	GPtrArray *stores = open_stores(inst, error);
	if (!stores)
		return NULL;
	GHashTable *byname = g_hash_table_new(g_str_hash, g_str_equal);
	/* INBOX always exists (RFC 3501 6.3.1), if empty. */
	imap_mailbox *inbox = tree_node(byname, "INBOX");
	inbox->flags = 0;
	int rc = 0;
	for (guint i = 0; rc == 0 && i < stores->len; i++)
		rc = add_store_folders(stores->pdata[i], byname, access, user, error);
	close_stores(stores);
	GPtrArray *tree = g_ptr_array_new_with_free_func((GDestroyNotify)imap_mailbox_free);
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, byname);
	while (g_hash_table_iter_next(&it, NULL, &v))
		g_ptr_array_add(tree, v);
	g_hash_table_destroy(byname);
	g_ptr_array_sort(tree, by_name);
	for (guint i = 0; i + 1 < tree->len; i++) {
		imap_mailbox *m = tree->pdata[i], *next = tree->pdata[i + 1];
		size_t n = strlen(m->name);
		if (strncmp(next->name, m->name, n) == 0 && next->name[n] == '/')
			m->flags |= IMAP_MBOX_CHILDREN;
	}
	if (rc < 0) {
		g_ptr_array_free(tree, TRUE);
		return NULL;
	}
	return tree;
}

imap_mailbox *imap_mailbox_find(GPtrArray *tree, const char *name)
{
	bool inbox = g_ascii_strncasecmp(name, "INBOX", 5) == 0 && (name[5] == 0 || name[5] == '/');
	for (guint i = 0; i < tree->len; i++) {
		imap_mailbox *m = tree->pdata[i];
		if (inbox ? strncmp(m->name, "INBOX", 5) == 0 && strcmp(m->name + 5, name + 5) == 0
		          : strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

/* ---- a mailbox's messages ------------------------------------------------------ */

void imap_view_free(imap_view *v)
{
	if (!v)
		return;
	if (v->msgs)
		g_array_free(v->msgs, TRUE);
	if (v->ranks)
		g_array_free(v->ranks, TRUE);
	g_free(v);
}

static char *layout_key(const imap_mailbox *mb)
{
	GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < mb->sources->len; i++) {
		const imap_source *s = mb->sources->pdata[i];
		g_ptr_array_add(parts, g_strdup_printf("%s\x1f%s", s->archive, s->path));
	}
	g_ptr_array_sort(parts, (GCompareFunc)(void *)g_strcmp0);
	g_ptr_array_add(parts, NULL);
	char *key = g_strjoinv("\x1e", (char **)parts->pdata);
	g_ptr_array_free(parts, TRUE);
	return key;
}

typedef struct store_part {
	int store_id;
	int64_t max_number;
	GArray *msgs;       /* imap_msg with uid still 0 */
} store_part;

static int read_folder(mv_store *s, const imap_source *src, store_part *part, GError **error)
{
	sqlite3 *db = mv_store_db(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
	                       "SELECT m.num, m.size, m.date, m.mail_flags, m.deleted FROM folders f JOIN messages m ON"
	                       " m.folder_id = f.id WHERE f.archive = ? AND f.path = ? ORDER BY m.num",
	                       -1, &st, NULL) != SQLITE_OK) {
		mv_sql_set_error(error, db, "listing a folder's messages");
		return -1;
	}
	sqlite3_bind_text(st, 1, src->archive, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, src->path, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t num = sqlite3_column_int64(st, 0);
		part->max_number = MAX(part->max_number, num);
		if (sqlite3_column_int(st, 4))
			continue;
		imap_msg m = { .store_id = part->store_id, .number = (uint32_t)num,
		               .size = (uint32_t)MIN(sqlite3_column_int64(st, 1), UINT32_MAX),
		               .date = sqlite3_column_int64(st, 2),
		               .flags = mv_mail_flags_parse((const char *)sqlite3_column_text(st, 3)) };
		g_array_append_val(part->msgs, m);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		mv_sql_set_error(error, db, "listing a folder's messages");
		return -1;
	}
	return 0;
}

static int by_uid(gconstpointer a, gconstpointer b)
{
	const imap_msg *x = a, *y = b;
	return (x->uid > y->uid) - (x->uid < y->uid);
}

/* Numbers beyond 25 bits cannot be in a UID; the store format keeps them below. */
static void assign_uids(imap_view *v, GArray *parts, const int *ranks)
{
	uint64_t next = 1;
	v->ranks = g_array_new(FALSE, FALSE, sizeof(int));
	for (guint i = 0; i < parts->len; i++) {
		store_part *p = &g_array_index(parts, store_part, i);
		g_array_append_val(v->ranks, p->store_id);
		g_array_append_val(v->ranks, ranks[i]);
		if (ranks[i] < 0 || p->max_number >= (1 << NUMBER_BITS))
			continue;
		for (guint k = 0; k < p->msgs->len; k++) {
			imap_msg m = g_array_index(p->msgs, imap_msg, k);
			m.uid = ((uint32_t)ranks[i] << NUMBER_BITS) | (uint32_t)m.number;
			if (m.uid == 0)
				continue;
			g_array_append_val(v->msgs, m);
		}
		uint64_t top = ((uint64_t)ranks[i] << NUMBER_BITS) + (uint64_t)p->max_number + 1;
		next = MAX(next, top);
	}
	g_array_sort(v->msgs, by_uid);
	v->uidnext = (uint32_t)MIN(next, UINT32_MAX);
}

int imap_view_load(mv_instance *inst, const imap_mailbox *mb, imap_view **view_r, GError **error)
{
	GPtrArray *stores = open_stores(inst, error);
	if (!stores)
		return -1;
	GArray *parts = g_array_new(FALSE, TRUE, sizeof(store_part));
	int rc = 0;
	for (guint i = 0; rc == 0 && i < stores->len; i++) {
		store_part part = { .store_id = mv_store_id(stores->pdata[i]),
		                    .msgs = g_array_new(FALSE, FALSE, sizeof(imap_msg)) };
		for (guint k = 0; rc == 0 && k < mb->sources->len; k++)
			rc = read_folder(stores->pdata[i], mb->sources->pdata[k], &part, error);
		if (part.max_number > 0)
			g_array_append_val(parts, part);
		else
			g_array_free(part.msgs, TRUE);
	}
	close_stores(stores);
	imap_view *v = g_new0(imap_view, 1);
	v->msgs = g_array_new(FALSE, FALSE, sizeof(imap_msg));
	v->uidnext = 1;
	if (rc == 0 && parts->len) {
		mv_mailbox_store *now = g_new0(mv_mailbox_store, parts->len);
		int *ranks = g_new0(int, parts->len);
		for (guint i = 0; i < parts->len; i++) {
			now[i].store_id = g_array_index(parts, store_part, i).store_id;
			now[i].max_number = g_array_index(parts, store_part, i).max_number;
		}
		char *key = layout_key(mb);
		rc = mv_mailbox_uid_layout(inst, key, now, parts->len, &v->uidvalidity, ranks, error);
		if (rc == 0)
			assign_uids(v, parts, ranks);
		g_free(key);
		g_free(now);
		g_free(ranks);
	} else if (rc == 0) {
		/* An empty mailbox still needs a UIDVALIDITY that stays. */
		char *key = layout_key(mb);
		int rank;
		mv_mailbox_store none = { 0, 0 };
		rc = mv_mailbox_uid_layout(inst, key, &none, 0, &v->uidvalidity, &rank, error);
		g_free(key);
	}
	for (guint i = 0; i < parts->len; i++)
		g_array_free(g_array_index(parts, store_part, i).msgs, TRUE);
	g_array_free(parts, TRUE);
	if (rc < 0) {
		imap_view_free(v);
		return -1;
	}
	*view_r = v;
	return 0;
}

gssize imap_view_find(const imap_view *v, int store_id, int64_t number)
{
	for (guint i = 0; v->ranks && i + 1 < v->ranks->len; i += 2) {
		if (g_array_index(v->ranks, int, i) != store_id)
			continue;
		int rank = g_array_index(v->ranks, int, i + 1);
		if (rank < 0 || number <= 0 || number >= (1 << NUMBER_BITS))
			return -1;
		return imap_view_find_uid(v, ((uint32_t)rank << NUMBER_BITS) | (uint32_t)number);
	}
	return -1;
}

gssize imap_view_find_uid(const imap_view *v, uint32_t uid)
{
	guint lo = 0, hi = v->msgs->len;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		uint32_t u = g_array_index(v->msgs, imap_msg, mid).uid;
		if (u == uid)
			return mid;
		if (u < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int imap_mailbox_status(mv_instance *inst, const imap_mailbox *mb, uint32_t *messages_r, uint32_t *unseen_r,
                        uint32_t *uidnext_r, uint32_t *uidvalidity_r, GError **error)
{
	imap_view *v = NULL;
	if (imap_view_load(inst, mb, &v, error) < 0)
		return -1;
	uint32_t unseen = 0;
	for (guint i = 0; i < v->msgs->len; i++)
		if (!(g_array_index(v->msgs, imap_msg, i).flags & MV_MAIL_FLAG_SEEN))
			unseen++;
	*messages_r = v->msgs->len;
	*unseen_r = unseen;
	*uidnext_r = v->uidnext;
	*uidvalidity_r = v->uidvalidity;
	imap_view_free(v);
	return 0;
}

int imap_msg_read(mv_instance *inst, const imap_msg *m, GByteArray **raw_r, GError **error)
{
	mv_store *s = mv_instance_open_store(inst, m->store_id, MV_STORE_READ, error);
	if (!s)
		return -1;
	int rc = mv_store_read_message(s, m->number, raw_r, error);
	mv_store_close(&s);
	return rc;
}
