/* smtpd: the SMTP and LMTP endpoint that archives what mail servers send
 * it — Postfix always_bcc or a transport, Exchange journal rules, a
 * gateway's journal copy.  A message is answered 250 only once it is
 * fsync'd in every archive it belongs in. */
#ifndef MV_SMTPD_H
#define MV_SMTPD_H

#include "base/base.h"
#include "net/https.h"

typedef struct mv_smtpd mv_smtpd;

/* Starts the listeners of c's [smtp] section (listen: SMTP with STARTTLS
 * on the service certificate; lmtp_listen: LMTP on addresses or Unix
 * sockets) and the delivery thread.  Logons go through the process's
 * logon guard.  Errors name the setting or the address at fault. */
mv_smtpd *mv_smtpd_start(const mv_service_config *c, mv_logon *logon, GError **error);
/* New configuration: listeners, certificate, networks, limits, routing.
 * Open connections keep the settings they started with. */
int mv_smtpd_reload(mv_smtpd *d, const mv_service_config *c, GError **error);
/* Stops listening, answers what is being delivered, says 421 to the rest. */
void mv_smtpd_stop(mv_smtpd **d);

#endif
