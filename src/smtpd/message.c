/* smtpd/message: freeing a handed-in message.  Its own file so the
 * session library (session.c + this) links without delivery's ingest. */
#include "smtpd/message.h"

void smtpd_message_free(smtpd_message *m)
{
	if (!m)
		return;
	if (m->data)
		g_byte_array_unref(m->data);
	g_free(m->sender);
	if (m->recipients)
		g_ptr_array_unref(m->recipients);
	g_free(m->remote);
	g_free(m->text);
	g_free(m->origin);
	g_free(m);
}
