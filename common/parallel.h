/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Work split in parts, run on threads: the caller takes the first part, a
 * thread each of the others (a part whose thread cannot be started runs on
 * the caller too), and all are done when it returns.  Private to slotsync. */
#ifndef SLOTSYNC_PARALLEL_H
#define SLOTSYNC_PARALLEL_H

#include <stddef.h>

#define PARALLEL_MAX 64

/* Runs fn(parts + k * stride) for k in [0, n), n at most PARALLEL_MAX (the
 * parts past it run on the caller, after the others). */
void parallel_each(void *(*fn)(void *), void *parts, size_t stride, int n);

#endif
