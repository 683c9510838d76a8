/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — logging.
 *
 * The library never writes to stdout.  It reports through this one module, which by
 * default writes to stderr at level WARNING and above; programs raise or lower the
 * level, or install their own sink (the device daemon sends lines to the journal).
 */
#ifndef SLOTSYNC_LOG_H
#define SLOTSYNC_LOG_H

#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_log_level {
	SLOTSYNC_LOG_ERROR = 0,
	SLOTSYNC_LOG_WARNING = 1,
	SLOTSYNC_LOG_INFO = 2,
	SLOTSYNC_LOG_DEBUG = 3,
};

typedef void (*slotsync_log_sink)(enum slotsync_log_level level, const char *msg, void *userdata);

SLOTSYNC_EXPORT void slotsync_log_set_level(enum slotsync_log_level level);
SLOTSYNC_EXPORT enum slotsync_log_level slotsync_log_get_level(void);

/* Replaces the sink; NULL restores the default (stderr). */
SLOTSYNC_EXPORT void slotsync_log_set_sink(slotsync_log_sink sink, void *userdata);

SLOTSYNC_EXPORT void slotsync_log(enum slotsync_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define slotsync_log_error(...) slotsync_log(SLOTSYNC_LOG_ERROR, __VA_ARGS__)
#define slotsync_log_warning(...) slotsync_log(SLOTSYNC_LOG_WARNING, __VA_ARGS__)
#define slotsync_log_info(...) slotsync_log(SLOTSYNC_LOG_INFO, __VA_ARGS__)
#define slotsync_log_debug(...) slotsync_log(SLOTSYNC_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
