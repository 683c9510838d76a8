/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging for libslotsync: one level, one sink, stderr by default. */
#include "slotsync/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum slotsync_log_level log_level = SLOTSYNC_LOG_WARNING;
static slotsync_log_sink log_sink;
static void *log_userdata;

void slotsync_log_set_level(enum slotsync_log_level level)
{
	log_level = level;
}

enum slotsync_log_level slotsync_log_get_level(void)
{
	return log_level;
}

void slotsync_log_set_sink(slotsync_log_sink sink, void *userdata)
{
	log_sink = sink;
	log_userdata = userdata;
}

void slotsync_log(enum slotsync_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char msg[2048];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink(level, msg, log_userdata);
		return;
	}
	fprintf(stderr, "slotsync: %s: %s\n", names[level], msg);
}
