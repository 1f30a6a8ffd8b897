/* reader_pst: the PST/OST source — items as pst.c yields them, each
 * converted to a MIME message as reader.c converts a .msg file, in the
 * folder pst.c names. */
#include "mime/reader_internal.h"

#include <sys/stat.h>

/* ---- PST / OST ------------------------------------------------------------------------ */

static mv_read_result pst_next(mv_reader *r, GError **error)
{
	mv_mapi_message *m = NULL;
	char *origin = NULL;
	mv_read_result res = mv_pst_next(r->pst, &m, &origin, error);
	if (res != MV_READ_MESSAGE) {
		r->origin = origin;
		return res;
	}
	GByteArray *data = NULL;
	res = mv_reader_convert_item(r, m, origin, &data, error);
	mv_mapi_message_free(m);
	if (res != MV_READ_MESSAGE) {
		r->origin = origin;
		return res;
	}
	r->data = data;
	r->origin = origin;
	r->folder = g_strdup(mv_pst_folder(r->pst));
	r->flags = g_strdup("");
	return MV_READ_MESSAGE;
}

static void pst_free(mv_reader *r)
{
	mv_pst_close(&r->pst);
}

static uint64_t pst_total(mv_reader *r)
{
	struct stat st;
	return stat(r->path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops pst_ops = { pst_next, pst_free, pst_total };

int mv_reader_open_pst(mv_reader *r, GError **error)
{
	if (mv_pst_open(r->path, &r->pst, error) < 0)
		return -1;
	r->ops = &pst_ops;
	return 0;
}
