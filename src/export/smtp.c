/* export/smtp: forwarding each message to one recipient, the way to
 * restore into systems that take mail only by SMTP (Microsoft 365 and
 * the like).  libcurl does the protocol: smtp:// with STARTTLS (required
 * unless the caller says otherwise) or smtps://, SASL authentication, the
 * envelope (the configured sender, the one recipient) and the DATA
 * dot-stuffing.  SMTP lines end in CRLF, and curl (like the servers)
 * stuffs dots only after one: a message archived with bare LF line ends is
 * sent with CRLF instead — otherwise a line starting with "." would lose
 * its dot at a server that takes LF as a line end.  Every other byte, and
 * a message that already uses CRLF, goes out unchanged.
 * One easy handle for the whole export, so curl keeps the connection open
 * from one message to the next. */
#include "export/internal.h"

#include <curl/curl.h>
#include <string.h>

typedef struct smtp_target {
	export_target base;
	CURL *curl;
	struct curl_slist *rcpt;
	char *url;
	int64_t sent;
	/* the message being sent, in SMTP's CRLF form */
	GByteArray *wire;
	size_t off;
} smtp_target;

static size_t read_message(char *buf, size_t size, size_t nitems, void *opaque)
{
	smtp_target *t = opaque;
	size_t n = MIN(size * nitems, t->wire->len - t->off);
	memcpy(buf, t->wire->data + t->off, n);
	t->off += n;
	return n;
}

/* Bare LF becomes CRLF; CRLF and everything else stay as they are. */
static void to_wire(GByteArray *out, const uint8_t *raw, size_t len)
{
	g_byte_array_set_size(out, 0);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (raw[i] != '\n' || (i > 0 && raw[i - 1] == '\r'))
			continue;
		g_byte_array_append(out, raw + start, (guint)(i - start));
		g_byte_array_append(out, (const guint8 *)"\r", 1);
		start = i;
	}
	g_byte_array_append(out, raw + start, (guint)(len - start));
}

static int smtp_put(export_target *base, const export_item *it, GError **error)
{
	smtp_target *t = (smtp_target *)base;
	to_wire(t->wire, it->raw, it->len);
	t->off = 0;
	CURLcode rc = curl_easy_setopt(t->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->wire->len);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(t->curl);
	if (rc == CURLE_OK) {
		t->sent++;
		return 0;
	}
	long code = 0;
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
	g_set_error(error, MV_ERROR, rc == CURLE_LOGIN_DENIED ? MV_ERR_AUTH : MV_ERR_IO, "SMTP %s: %s (reply %ld)", t->url,
	            curl_easy_strerror(rc), code);
	return -1;
}

static int smtp_finish(export_target *base, json_t **summary_r, GError **error)
{
	smtp_target *t = (smtp_target *)base;
	(void)error;
	*summary_r = json_pack("{s:s, s:I}", "server", t->url, "messagesSent", (json_int_t)t->sent);
	return 0;
}

static void smtp_free(export_target *base)
{
	smtp_target *t = (smtp_target *)base;
	if (t->curl)
		curl_easy_cleanup(t->curl);
	curl_slist_free_all(t->rcpt);
	g_byte_array_unref(t->wire);
	g_free(t->url);
	g_free(t);
}

static const export_target_ops smtp_ops = { smtp_put, smtp_finish, smtp_free };

export_target *export_smtp_open(const export_server *srv, GError **error)
{
	if (!g_str_has_prefix(srv->url, "smtp://") && !g_str_has_prefix(srv->url, "smtps://")) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: '%s' is not an smtp:// or smtps:// URL", srv->url);
		return NULL;
	}
	if (!srv->from || !srv->recipient || !*srv->recipient) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "ExportMessages: the smtp target needs 'from' and 'recipient'");
		return NULL;
	}
	smtp_target *t = g_new0(smtp_target, 1);
	t->base.ops = &smtp_ops;
	t->url = g_strdup(srv->url);
	t->wire = g_byte_array_new();
	t->curl = curl_easy_init();
	t->rcpt = curl_slist_append(NULL, srv->recipient);
	if (!t->curl || !t->rcpt || export_curl_common(t->curl, srv, error) < 0)
		goto fail;
	if (curl_easy_setopt(t->curl, CURLOPT_MAIL_FROM, srv->from) != CURLE_OK ||
	    curl_easy_setopt(t->curl, CURLOPT_MAIL_RCPT, t->rcpt) != CURLE_OK ||
	    curl_easy_setopt(t->curl, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(t->curl, CURLOPT_READFUNCTION, read_message) != CURLE_OK ||
	    curl_easy_setopt(t->curl, CURLOPT_READDATA, t) != CURLE_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "SMTP %s: cannot set up the client", srv->url);
		goto fail;
	}
	return &t->base;
fail:
	smtp_free(&t->base);
	return NULL;
}
