/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A one-line progress bar on stderr, drawn only when stderr is a terminal and at
 * most ten times a second. */
#ifndef SLOTSYNC_GEN_PROGRESS_H
#define SLOTSYNC_GEN_PROGRESS_H

#include <stdint.h>

struct progress {
	int enabled;
	const char *label;
	uint64_t total;
	double t0, last;
};

/* enabled: the caller's wish; the bar is drawn only if stderr is also a TTY. */
void progress_start(struct progress *p, int enabled, const char *label, uint64_t total_bytes);
void progress_update(struct progress *p, uint64_t done_bytes);
void progress_end(struct progress *p);

#endif
