/* archive/access: what one caller may see and do in which folder — the
 * user's folder privileges loaded once into an immutable mv_access that any
 * thread may ask.  Kept apart from users.c because every reader (search,
 * IMAP, Web Access, export) asks it on every folder, while users.c only
 * changes the grants. */
#include "archive/internal.h"

#include <string.h>

/* ---- a caller's access ------------------------------------------------------------------- */

typedef struct access_grant {
	char *folded;                   /* mv_name_fold of the folder */
	size_t len;
	unsigned privileges;
} access_grant;

/* Immutable once loaded, so any number of threads may ask it at once. */
struct mv_access {
	char *user;
	bool unrestricted;
	access_grant *grants;           /* longest folder first */
	size_t n_grants;
};

static gint longest_first(gconstpointer a, gconstpointer b)
{
	const access_grant *x = a, *y = b;
	return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

mv_access *mv_access_load(mv_instance *inst, const char *user_name, GError **error)
{
	mv_user *u = mv_user_get(inst, user_name, error);
	if (!u)
		return NULL;
	mv_access *a = mv_access_for_user(inst, u, error);
	mv_user_free(u);
	return a;
}

mv_access *mv_access_for_user(mv_instance *inst, const mv_user *u, GError **error)
{
	mv_access *a = g_new0(mv_access, 1);
	a->user = g_strdup(u->name);
	a->unrestricted = (u->privileges & MV_PRIV_ADMIN) != 0;
	GPtrArray *grants = a->unrestricted ? NULL : mv_archive_folder_grants(inst, u->name, error);
	if (a->unrestricted)
		return a;
	if (!grants) {
		mv_access_free(&a);
		return NULL;
	}
	a->n_grants = grants->len;
	a->grants = g_new0(access_grant, grants->len ? grants->len : 1);
	for (guint i = 0; i < grants->len; i++) {
		const mv_folder_grant *g = grants->pdata[i];
		a->grants[i].folded = mv_name_fold(g->folder);
		a->grants[i].len = strlen(a->grants[i].folded);
		a->grants[i].privileges = g->privileges;
	}
	g_ptr_array_free(grants, TRUE);
	qsort(a->grants, a->n_grants, sizeof *a->grants, (int (*)(const void *, const void *))longest_first);
	return a;
}

void mv_access_free(mv_access **ap)
{
	mv_access *a = *ap;
	if (!a)
		return;
	*ap = NULL;
	for (size_t i = 0; i < a->n_grants; i++)
		g_free(a->grants[i].folded);
	g_free(a->grants);
	g_free(a->user);
	g_free(a);
}

bool mv_access_unrestricted(const mv_access *a)
{
	return !a || a->unrestricted;
}

const char *mv_access_user(const mv_access *a)
{
	return a ? a->user : NULL;
}

/* Whether the grant's folded folder "archive[/path...]" covers the folded
 * archive and path: the archive is the grant's whole first component, and
 * the rest matches path on whole components ("john" covers "john/x", not
 * "johnny", and never an archive named "john/x"). */
static bool grant_covers(const access_grant *g, const char *archive, const char *path)
{
	const char *slash = strchr(g->folded, '/');
	size_t arch_len = slash ? (size_t)(slash - g->folded) : g->len;
	if (strlen(archive) != arch_len || strncmp(archive, g->folded, arch_len) != 0)
		return false;
	if (!slash)
		return true;
	const char *rest = slash + 1;
	size_t rest_len = g->len - arch_len - 1;
	return strncmp(path, rest, rest_len) == 0 && (path[rest_len] == '\0' || path[rest_len] == '/');
}

unsigned mv_access_folder(const mv_access *a, const char *archive, const char *path)
{
	if (mv_access_unrestricted(a))
		return MV_FOLDER_ALL;
	char *folded_archive = mv_name_fold(archive);
	char *folded_path = mv_name_fold(path ? path : "");
	unsigned bits = 0;
	for (size_t i = 0; i < a->n_grants; i++) {
		if (grant_covers(&a->grants[i], folded_archive, folded_path)) {
			bits = a->grants[i].privileges;
			break;
		}
	}
	g_free(folded_archive);
	g_free(folded_path);
	return bits;
}
