/* reader_eml: the source that is one message file (EML, or an Outlook .msg
 * that reader.c converts): one item, its size as the progress total. */
#include "mime/reader_internal.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- EML file ----------------------------------------------------------------- */

static uint64_t eml_total(mv_reader *r);

static mv_read_result eml_next(mv_reader *r, GError **error)
{
	if (r->eml_done)
		return MV_READ_END;
	r->eml_done = true;
	GByteArray *data = NULL;
	int rc = mv_reader_read_message_file(r->path, &data, error);
	r->done = eml_total(r);
	if (rc < 0) {
		r->origin = g_strdup(r->path);
		return MV_READ_SKIPPED;
	}
	return mv_reader_offer(r, data, g_strdup(r->path), "", "", error);
}

static void eml_free(mv_reader *r)
{
	(void)r;
}

static uint64_t eml_total(mv_reader *r)
{
	struct stat st;
	return stat(r->path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static const reader_ops eml_ops = { eml_next, eml_free, eml_total };

int mv_reader_open_eml(mv_reader *r, GError **error)
{
	if (access(r->path, R_OK) < 0) {
		mv_set_errno_error(error, errno, "open", r->path);
		return -1;
	}
	r->ops = &eml_ops;
	return 0;
}
