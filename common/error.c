/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one error object of libslotsync: see include/slotsync/error.h. */
#include "slotsync/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 4, 0))) static int error_vset(struct slotsync_error *err, int code, int with_errno,
							   const char *fmt, va_list ap)
{
	size_t len;

	if (!err || err->code != 0)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (with_errno) {
		len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(code < 0 ? -code : code));
	}
	return code;
}

int slotsync_error_set(struct slotsync_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = error_vset(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int slotsync_error_set_errno(struct slotsync_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = error_vset(err, code, 1, fmt, ap);
	va_end(ap);
	return code;
}

void slotsync_error_prefix(struct slotsync_error *err, const char *fmt, ...)
{
	char joined[SLOTSYNC_ERROR_MSG_MAX];
	size_t len;
	va_list ap;

	if (!err || err->code == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(joined, sizeof(joined), fmt, ap);
	va_end(ap);
	len = strlen(joined);
	if (len + 2 < sizeof(joined)) {
		memcpy(joined + len, ": ", 3);
		len += 2;
		/* the original message goes after the context, cut if it must be */
		size_t rest = strlen(err->msg);
		if (rest > sizeof(joined) - len - 1)
			rest = sizeof(joined) - len - 1;
		memcpy(joined + len, err->msg, rest);
		joined[len + rest] = '\0';
	}
	memcpy(err->msg, joined, sizeof(err->msg));
}

void slotsync_error_clear(struct slotsync_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *slotsync_error_message(const struct slotsync_error *err)
{
	if (!err || err->code == 0)
		return "no error";
	if (err->msg[0] == '\0')
		return strerror(err->code < 0 ? -err->code : err->code);
	return err->msg;
}
