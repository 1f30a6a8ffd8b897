/* search/message: one message read on behalf of a user — the id resolved to
 * its store, the caller's folder privileges checked, the bytes read with
 * their hash checked.  GetMessage, Web Access's message view and downloads
 * (and IMAP later) all come through here, so there is one permission check
 * for a single message, as mv_searcher_run is the one for many.
 *
 * Every way a message can be out of reach — a malformed id, an unknown
 * store or number, a deleted message, a disabled store, a folder the caller
 * may not read — gives the same MV_ERR_NOT_FOUND, so ids cannot be probed
 * for what exists. */
#include "search/search.h"

#include <string.h>

static void not_found(const char *id, GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_NOT_FOUND, "message %.64s does not exist", id ? id : "");
}

/* The store if it is one that readers may use, else NULL and not found. */
static mv_store *open_readable(mv_instance *inst, int store_id, const char *id, GError **error)
{
	GError *err = NULL;
	mv_archive_store *info = mv_instance_store_info(inst, store_id, &err);
	bool usable = info && strcmp(info->state, "disabled") != 0 && !info->error && !info->locked;
	mv_archive_store_free(info);
	if (!usable) {
		g_clear_error(&err);
		not_found(id, error);
		return NULL;
	}
	return mv_instance_open_store(inst, store_id, MV_STORE_READ, error);
}

int mv_message_fetch(mv_instance *inst, const mv_access *access, const char *id, mv_store_message *m_r,
                     GByteArray **raw_r, GError **error)
{
	int store_id;
	int64_t num;
	if (!mv_message_id_parse(id, &store_id, &num)) {
		not_found(id, error);
		return -1;
	}
	mv_store *s = open_readable(inst, store_id, id, error);
	if (!s)
		return -1;
	mv_store_message m;
	GError *err = NULL;
	int rc = mv_store_message_get(s, num, &m, &err);
	if (rc < 0 && err->code == MV_ERR_NOT_FOUND) {
		g_clear_error(&err);
		not_found(id, error);
	} else if (rc < 0) {
		g_propagate_error(error, err);
	} else if (!(mv_access_folder(access, m.archive, m.path) & MV_FOLDER_READ)) {
		mv_store_message_clear(&m);
		not_found(id, error);
		rc = -1;
	}
	if (rc == 0 && raw_r && mv_store_read_message(s, num, raw_r, error) < 0) {
		mv_store_message_clear(&m);
		rc = -1;
	}
	if (rc == 0 && m_r)
		*m_r = m;
	else if (rc == 0)
		mv_store_message_clear(&m);
	mv_store_close(&s);
	return rc;
}
