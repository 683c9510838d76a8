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

/* Where chunks, bundles or a channel pointer come from.  Accepted: https://,
 * file:// and an absolute local path; http:// only with allow_plain_http
 * (content is checked all the same, but what the device fetches, and when, is
 * seen by anyone on the path, and a downgrade of transport should be a
 * decision).  A URL with no scheme ("cdn.example.com/store") is refused: curl
 * would guess http.  0, -EINVAL (no scheme, or nothing after it),
 * -EPROTONOSUPPORT (another scheme) or -EPERM (plain http not allowed);
 * parse_url_problem() says each in words. */
int parse_url(const char *url, int allow_plain_http);

/* A URL as a channel pointer names its bundle: an absolute one (parse_url with
 * plain http allowed: the device checks again once it has resolved it), or a
 * reference relative to the channel's URL ("v2.bundle", "releases/v2.bundle",
 * "/pub/v2.bundle") whose first segment does not look like a host name (a dot
 * and a slash after it: "cdn.example.com/v2.bundle" is refused; write
 * "./cdn.example.com/v2.bundle" if that is a folder). */
int parse_url_ref(const char *ref);

/* What parse_url() or parse_url_ref() refused, in words, for r < 0. */
const char *parse_url_problem(int r);

#endif
