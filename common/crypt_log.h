/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcryptsetup's messages through our log (private, for the files that call
 * libcryptsetup: engine/slot/luks.c, verity.c; delta-gen/slot_image.c).
 *
 * Its errors become the reason behind an errno in our own message
 * (crypt_log_error, this thread's last one, "" for none); the rest is noise on
 * a device's console, logged at debug level.  Each file that includes this
 * keeps its own buffer. */
#ifndef SLOTSYNC_CRYPT_LOG_H
#define SLOTSYNC_CRYPT_LOG_H

#include <errno.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "slotsync/log.h"

static __thread char crypt_log_error[256];

static inline void crypt_log_message(int level, const char *msg, void *usrptr)
{
	(void)usrptr;
	if (level == CRYPT_LOG_ERROR)
		snprintf(crypt_log_error, sizeof(crypt_log_error), "%.*s", (int)strcspn(msg, "\n"), msg);
	slotsync_log_debug("libcryptsetup%s: %.*s", level == CRYPT_LOG_ERROR ? " error" : "", (int)strcspn(msg, "\n"),
			   msg);
}

/* Forgets the last error and routes libcryptsetup's default log to ours (a
 * context made later takes crypt_log_message too); makes libcryptsetup's locking folder, which on a
 * system without cryptsetup's tmpfiles.d entry nobody else makes (a format
 * then fails). */
static inline void crypt_log_quiet_with(void (*set_log_callback)(struct crypt_device *cd,
								   void (*log)(int level, const char *msg, void *usrptr),
								   void *usrptr))
{
	crypt_log_error[0] = '\0';
	set_log_callback(NULL, crypt_log_message, NULL);
	if (mkdir("/run/cryptsetup", 0700) < 0 && errno != EEXIST)
		slotsync_log_debug("cannot create /run/cryptsetup: %s", strerror(errno));
}

/* The same, with libcryptsetup linked (slotsync-gen loads it when needed, and
 * passes the function it found) */
static inline void crypt_log_quiet(void)
{
	crypt_log_quiet_with(crypt_set_log_callback);
}

#endif
