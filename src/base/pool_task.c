/* base/pool_task: what a GLib pool thread does at the end of each task.
 *
 * A pool thread that used OpenSSL (SQLCipher decrypting pages, TLS, a
 * signature) holds OpenSSL's per-thread state — its error queue, its DRBGs —
 * which OpenSSL frees from a thread-exit destructor.  GLib lets an idle pool
 * thread exit whenever it likes: at once when more than two are idle, or
 * after 15 s.  One that exits while the process is exiting, after OpenSSL's
 * atexit cleanup has deleted that destructor's key, loses its state: a leak
 * that LeakSanitizer reports at the stop of a server, at random (904 bytes,
 * the error queue).  So a task hands its thread back without OpenSSL state;
 * the next task that needs it makes it anew, which costs microseconds. */
#include "base/base.h"

#include <openssl/crypto.h>

void mv_pool_task_done(void)
{
	OPENSSL_thread_stop();
}
