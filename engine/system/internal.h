/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared inside engine/system/ (install.c, agent.c, dbus.c). */
#ifndef SLOTSYNC_SYSTEM_INTERNAL_H
#define SLOTSYNC_SYSTEM_INTERNAL_H

#include <stdint.h>

#include "slotsync/config.h"
#include "slotsync/error.h"

/* Lower-case hex of a SHA-256. */
void system_hex(const uint8_t *d, char out[65]);

/* SHA-256 of the first len bytes of path (len 0: all of it). */
int system_sha256_path(const char *path, uint64_t len, uint8_t out[32], struct slotsync_error *err);

/* Downloads url (at most max bytes) to path, atomically, with the
 * configuration's TLS settings and rate cap (slotsync_fetch_file; a few
 * attempts only: the caller tries again later, with backoff). */
int system_download(const struct slotsync_config *cfg, const char *url, uint64_t max, const char *path,
		    struct slotsync_error *err);

/* Takes the lock file name in the state folder (flock, with our pid in it):
 * its fd, or -EBUSY naming the holder ("another install is running (process N)"). */
int system_lock(const struct slotsync_config *cfg, const char *name, const char *holder, struct slotsync_error *err);

/* Whether an install waits for validation (step reboot or validate): 1, with
 * its record and the booted slot; 0 if none does; < 0 on an error. */
struct slotsync_install_record;
int system_awaiting_validation(const struct slotsync_config *cfg, struct slotsync_install_record *rec, int *booted,
			       struct slotsync_error *err);

/* A JSON object from a file (at most 1 MiB), or written atomically. */
struct json_object;
int system_json_load(const char *path, struct json_object **out, struct slotsync_error *err);
int system_json_save(const char *path, struct json_object *o, struct slotsync_error *err);

#endif
