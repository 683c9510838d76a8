/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Work split in parts (common/parallel.c): every part runs exactly once, the
 * first on the caller, each other on a thread of its own (past PARALLEL_MAX,
 * on the caller), and all are done on return. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "parallel.h"
#include "test_util.h"

struct part {
	_Atomic int *done;       /* parts done, all runs */
	int runs;
	pthread_t by;
	uint64_t pad;            /* a stride that is not a power of two */
};

static void *run_part(void *arg)
{
	struct part *p = arg;

	p->runs++;
	p->by = pthread_self();
	atomic_fetch_add(p->done, 1);
	return NULL;
}

static void run(int n, struct part *parts)
{
	static _Atomic int done;

	atomic_store(&done, 0);
	for (int k = 0; k < n; k++)
		parts[k] = (struct part){ .done = &done };
	parallel_each(run_part, parts, sizeof(parts[0]), n);
	ck_assert_int_eq(atomic_load(&done), n); /* all done on return */
	for (int k = 0; k < n; k++)
		ck_assert_int_eq(parts[k].runs, 1);
	if (n > 0)
		ck_assert(pthread_equal(parts[0].by, pthread_self()));
	for (int k = 1; k < n; k++) {
		if (k < PARALLEL_MAX)
			ck_assert(!pthread_equal(parts[k].by, pthread_self()));
		else
			ck_assert(pthread_equal(parts[k].by, pthread_self()));
	}
}

START_TEST(test_each_part_once)
{
	struct part parts[PARALLEL_MAX + 6];

	run(0, parts);
	run(1, parts);
	run(2, parts);
	run(5, parts);
	run(PARALLEL_MAX + 6, parts);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("parallel");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_each_part_once);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
