/* A pool task that used OpenSSL hands its thread back without OpenSSL's
 * per-thread state (base/pool_task.c): otherwise a pool thread that exits
 * while the process exits loses that state, and LeakSanitizer fails the
 * server's stop at random.  Observed here through the error queue, which is
 * per thread: one task leaves an error in it, the next task on the same
 * thread looks.  The control pool (no mv_pool_task_done) proves the look
 * sees a queue that was kept. */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/err.h>

typedef struct {
	bool release;          /* the task ends as production tasks do */
	unsigned long seen;    /* what the second task found in the queue */
} round_state;

static void task(gpointer data, gpointer user)
{
	round_state *r = user;
	if (GPOINTER_TO_INT(data) == 1) {
		ERR_put_error(ERR_LIB_SYS, 0, ERR_R_INTERNAL_ERROR, __FILE__, __LINE__);
		if (r->release)
			mv_pool_task_done();
		return;
	}
	r->seen = ERR_peek_error();
	/* Always, as every pool task of ours ends: the control round's thread
	 * would otherwise exit holding the queue while the test exits — the
	 * very leak (LeakSanitizer saw it here in CI). */
	mv_pool_task_done();
}

/* Two tasks in order on one exclusive thread, so both run on the same thread. */
static unsigned long second_task_sees(bool release)
{
	round_state r = { .release = release };
	GThreadPool *pool = g_thread_pool_new(task, &r, 1, TRUE, NULL);
	assert_non_null(pool);
	assert_true(g_thread_pool_push(pool, GINT_TO_POINTER(1), NULL));
	assert_true(g_thread_pool_push(pool, GINT_TO_POINTER(2), NULL));
	g_thread_pool_free(pool, FALSE, TRUE);
	return r.seen;
}

static void test_task_leaves_no_openssl_state(void **state)
{
	(void)state;
	assert_int_not_equal(second_task_sees(false), 0);
	assert_int_equal(second_task_sees(true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_task_leaves_no_openssl_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
