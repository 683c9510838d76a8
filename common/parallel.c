/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Work split in parts, run on threads: see parallel.h. */
#include "parallel.h"

#include <pthread.h>

void parallel_each(void *(*fn)(void *), void *parts, size_t stride, int n)
{
	pthread_t th[PARALLEL_MAX];
	int started[PARALLEL_MAX] = { 0 };
	char *p = parts;

	for (int k = 1; k < n && k < PARALLEL_MAX; k++)
		started[k] = pthread_create(&th[k], NULL, fn, p + (size_t)k * stride) == 0;
	if (n > 0)
		fn(p);
	for (int k = 1; k < n; k++) {
		if (k < PARALLEL_MAX && started[k])
			pthread_join(th[k], NULL);
		else
			fn(p + (size_t)k * stride);
	}
}
