/* imapd: the integrated read-only IMAP server.  Users read the archive
 * they may read with any mail client: their own archive's folders, the
 * archives they hold folder privileges on under "Other Users/".  Nothing
 * a client sends changes the archive. */
#ifndef MV_IMAPD_H
#define MV_IMAPD_H

#include "base/base.h"
#include "net/https.h"

typedef struct mv_imapd mv_imapd;

/* Starts the listeners of c's [imap] section (c->imap_listen: plain, STARTTLS
 * before logon; c->imap_listen_tls: implicit TLS) with the certificate of
 * [tls].  Logons go through the process's logon guard. */
mv_imapd *mv_imapd_start(const mv_service_config *c, mv_logon *logon, GError **error);
/* New configuration: listeners, certificate, limits.  Open connections
 * keep the TLS context they started with. */
int mv_imapd_reload(mv_imapd *d, const mv_service_config *c, GError **error);
/* Stops listening, says BYE to every connection and waits for commands
 * in flight. */
void mv_imapd_stop(mv_imapd **d);

#endif
