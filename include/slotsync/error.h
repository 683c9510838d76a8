/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — error reporting.
 *
 * Every function that can fail returns int: 0 on success, a negative errno-style
 * code on failure.  The human-readable reason travels in a struct slotsync_error
 * that the caller passes down.  It is filled once, by the code that knows what went
 * wrong ("chunk 3fa2… failed its SHA-256 check"); callers may add context in front
 * of it with slotsync_error_prefix(), but never overwrite it.
 */
#ifndef SLOTSYNC_ERROR_H
#define SLOTSYNC_ERROR_H

#include <stddef.h>

#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_ERROR_MSG_MAX 1024

struct slotsync_error {
	int code;                          /* negative errno, 0 when unset */
	char msg[SLOTSYNC_ERROR_MSG_MAX];  /* NUL-terminated, empty when unset */
};

/* Sets the error unless one is already set, and returns `code` (negative), so that
 * a failure can be reported as `return slotsync_error_set(err, -EIO, "...")`.
 * `err` may be NULL, then only the code is returned. */
SLOTSYNC_EXPORT int slotsync_error_set(struct slotsync_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like slotsync_error_set(), with ": strerror(-code)" appended to the message. */
SLOTSYNC_EXPORT int slotsync_error_set_errno(struct slotsync_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Puts context in front of an error already set ("reading index x.caibx: ...").
 * Does nothing if err is NULL or unset. */
SLOTSYNC_EXPORT void slotsync_error_prefix(struct slotsync_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears the error so that the object can be reused. */
SLOTSYNC_EXPORT void slotsync_error_clear(struct slotsync_error *err);

/* The message, or a generic text for the code if no message was set. */
SLOTSYNC_EXPORT const char *slotsync_error_message(const struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
