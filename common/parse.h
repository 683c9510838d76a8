/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one parser for the numbers people type: on command lines, in system.conf,
 * in boot environments.  Every function is strict: the whole string must be
 * the number (no spaces, no trailing text, no sign where none is allowed), and
 * a value out of range is an error, never a silent clamp.  They return 0, or
 * -EINVAL (not a number of that form) or -ERANGE (a number, but too large or
 * out of [lo, hi]).  Private to slotsync. */
#ifndef SLOTSYNC_PARSE_H
#define SLOTSYNC_PARSE_H

#include <stdint.h>

/* Decimal without a sign, in [lo, hi]. */
int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Decimal with an optional leading '-', in [lo, hi]. */
int parse_int(const char *s, int lo, int hi, int *out);

/* A size in bytes: a whole number with an optional binary unit, K (or k) =
 * 1024, M (or m) = 1024^2, G (or g) = 1024^3: "512", "16K", "4M". */
int parse_size(const char *s, uint64_t *out);

/* A duration in seconds: a whole number with an optional unit s, m, h or d
 * ("90", "90s", "15m", "6h", "2d"). */
int parse_duration_s(const char *s, uint64_t *out);

/* yes/true/1 or no/false/0. */
int parse_bool(const char *s, int *out);

#endif
