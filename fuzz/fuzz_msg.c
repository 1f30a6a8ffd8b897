/* fuzz_msg: libFuzzer target for the .msg reader (mime/msg.c).
 *
 * Besides crashes, hangs and leaks, two findings of its own:
 *  - a GLib warning or critical: msg.c checks a Compound File before
 *    libgsf sees it, exactly so that libgsf never meets input it complains
 *    about (libgsf logs, then goes on with what it has); a log line means
 *    the check let something through;
 *  - property values adding up to more than twice the input: no two
 *    streams share a sector and the bytes copied out (OLE objects written
 *    anew among them) are budgeted to the input's size; fixed-size values
 *    add at most 8 bytes per 16-byte entry of a property stream.
 * A message read is walked the way the converter will: its kind, the
 * strings it reads, recipients, attachments, embedded messages. */
#include "mime/mapi.h"

#include <stdio.h>
#include <stdlib.h>

static void abort_on_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)data;
	if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)))
		return;
	fprintf(stderr, "log message [%s]: %s\n", domain ? domain : "", message);
	abort();
}

static void add_len(void *ctx, uint32_t tag, const uint8_t *value, size_t len)
{
	(void)tag;
	if (!value)
		abort();
	*(size_t *)ctx += len;
}

static void read_strings(const mv_mapi_props *props, uint32_t cp, const uint16_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g_free(mv_mapi_props_string(props, ids[i], cp));
}

static size_t walk(const mv_mapi_message *m, unsigned depth)
{
	static const uint16_t msg_ids[] = {
		MV_PID_SUBJECT, MV_PID_MESSAGE_CLASS, MV_PID_SENDER_NAME, MV_PID_SENDER_EMAIL,
		MV_PID_TRANSPORT_HEADERS, MV_PID_BODY, MV_PID_DISPLAY_TO, MV_PID_INTERNET_MESSAGE_ID,
	};
	static const uint16_t rcpt_ids[] = { MV_PID_DISPLAY_NAME, MV_PID_EMAIL_ADDRESS, MV_PID_SMTP_ADDRESS };
	static const uint16_t att_ids[] = { MV_PID_ATTACH_LONG_FILENAME, MV_PID_ATTACH_FILENAME, MV_PID_ATTACH_MIME_TAG };
	if (depth > MV_MAPI_MAX_DEPTH)
		abort();
	size_t total = 0;
	(void)mv_mapi_kind_name(mv_mapi_message_kind(m));
	read_strings(m->props, m->codepage, msg_ids, G_N_ELEMENTS(msg_ids));
	int64_t t;
	(void)mv_mapi_props_time(m->props, MV_PID_MESSAGE_DELIVERY_TIME, &t);
	mv_mapi_props_each(m->props, add_len, &total);
	if (m->recipients->len > MV_MAPI_MAX_RECIPIENTS || m->attachments->len > MV_MAPI_MAX_ATTACHMENTS)
		abort();
	for (guint i = 0; i < m->recipients->len; i++) {
		read_strings(m->recipients->pdata[i], m->codepage, rcpt_ids, G_N_ELEMENTS(rcpt_ids));
		mv_mapi_props_each(m->recipients->pdata[i], add_len, &total);
	}
	for (guint i = 0; i < m->attachments->len; i++) {
		const mv_mapi_attachment *a = m->attachments->pdata[i];
		int32_t method;
		(void)mv_mapi_props_int32(a->props, MV_PID_ATTACH_METHOD, &method);
		read_strings(a->props, m->codepage, att_ids, G_N_ELEMENTS(att_ids));
		mv_mapi_props_each(a->props, add_len, &total);
		if (a->embedded)
			total += walk(a->embedded, depth + 1);
	}
	for (guint i = 0; i < m->damage->len; i++)
		if (!m->damage->pdata[i])
			abort();
	return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		g_log_set_default_handler(abort_on_log, NULL);
		mv_mime_init(); /* mv_mapi_props_string converts with GMime's charset tables */
		ready = true;
	}
	mv_mapi_message *m = NULL;
	GError *err = NULL;
	if (mv_msg_read(data, size, &m, &err) < 0) {
		if (!err || m)
			abort();
		g_error_free(err);
		return 0;
	}
	if (!m || walk(m, 0) > 2 * size)
		abort();
	mv_mapi_message_free(m);
	return 0;
}
