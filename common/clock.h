/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one clock every part measures durations with: monotonic, so a step of
 * the wall clock (NTP, a device whose RTC starts in 1970) never makes a
 * duration negative or a timeout fire early.  Private to slotsync. */
#ifndef SLOTSYNC_CLOCK_H
#define SLOTSYNC_CLOCK_H

#include <stdint.h>

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double clock_now_s(void);

/* The same in milliseconds. */
uint64_t clock_now_ms(void);

#endif
