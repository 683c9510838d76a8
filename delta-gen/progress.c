/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Progress bar: see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "gen.h"
#include "clock.h"

void progress_start(struct progress *p, int enabled, const char *label, uint64_t total_bytes)
{
	p->enabled = enabled && isatty(STDERR_FILENO);
	p->label = label;
	p->total = total_bytes;
	p->t0 = p->last = clock_now_s();
}

void progress_update(struct progress *p, uint64_t done_bytes)
{
	char bar[31];
	double now, rate, pct;
	int fill;

	if (!p->enabled)
		return;
	now = clock_now_s();
	if (now - p->last < 0.1 && done_bytes < p->total)
		return;
	p->last = now;
	pct = p->total ? (double)done_bytes * 100.0 / (double)p->total : 100.0;
	if (pct > 100.0)
		pct = 100.0;
	fill = (int)(pct * 30 / 100);
	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	rate = now > p->t0 ? (double)done_bytes / (now - p->t0) / 1e6 : 0;
	fprintf(stderr, "\r%s [%s] %5.1f%%  %8.1f / %.1f MB  %7.1f MB/s", p->label, bar, pct, (double)done_bytes / 1e6,
		(double)p->total / 1e6, rate);
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (!p->enabled)
		return;
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
}
