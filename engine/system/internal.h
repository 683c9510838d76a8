/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared inside engine/system/: the install (install.c, install_state.c,
 * install_status.c) and the agent (agent.c, agent_dbus.c). */
#ifndef SLOTSYNC_SYSTEM_INTERNAL_H
#define SLOTSYNC_SYSTEM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/config.h"
#include "slotsync/error.h"
#include "slotsync/install.h"

/* ---- helpers (install.c) ---------------------------------------------------- */

/* Lower-case hex of a SHA-256. */
void system_hex(const uint8_t *d, char out[65]);

/* SHA-256 of the first len bytes of path (len 0: all of it). */
int system_sha256_path(const char *path, uint64_t len, uint8_t out[32], struct slotsync_error *err);

/* Downloads url (at most max bytes) to path, atomically, with the
 * configuration's TLS settings and rate cap (slotsync_fetch_file; a few
 * attempts only: the caller tries again later, with backoff). */
int system_download(const struct slotsync_config *cfg, const char *url, uint64_t max, const char *path,
		    struct slotsync_error *err);

/* ---- the state folder (install_state.c) ------------------------------------- */

/* A path made with fmt, or "" when it does not fit in PATH_MAX (the
 * configuration keeps the state folder's name short enough). */
__attribute__((format(printf, 2, 3))) void system_pathf(char out[PATH_MAX], const char *fmt, ...);

/* The file name in the state folder. */
void system_state_path(const struct slotsync_config *cfg, const char *name, char out[PATH_MAX]);

/* src (NULL: "") into dst[size], cut if it does not fit: only ever messages and
 * names that the records bound. */
void system_copy_str(char *dst, size_t size, const char *src);

/* A JSON object from a file (at most 1 MiB), or written atomically. */
struct json_object;
int system_json_load(const char *path, struct json_object **out, struct slotsync_error *err);
int system_json_save(const char *path, struct json_object *o, struct slotsync_error *err);

/* The install journal as JSON (install.json, and the install in status). */
struct json_object *system_record_json(const struct slotsync_install_record *rec);

/* Replaces install.json with rec (rec->updated set to now); safe to call from
 * the assembly's progress callback while the install thread saves too. */
int system_record_save(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
		       struct slotsync_error *err);

/* Sets slot's status in slots.json; with rec, also the release it now holds
 * (version, bundle digest, security version, when). */
int system_slot_record_set(const struct slotsync_config *cfg, int slot, const char *status,
			   const struct slotsync_install_record *rec, struct slotsync_error *err);

/* Remembers rec's release as failed here (failed.json), with the reason. */
int system_release_failed_add(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			      const char *reason, struct slotsync_error *err);

/* Device state after a good boot (state.json): the version that runs, the
 * security floor raised to rec's. */
int system_release_good(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			struct slotsync_error *err);

/* Takes the lock file name in the state folder (flock, with our pid in it):
 * its fd, or -EBUSY naming the holder ("another install is running (process N)"). */
int system_lock(const struct slotsync_config *cfg, const char *name, const char *holder, struct slotsync_error *err);

/* ---- after the reboot (install_status.c) ------------------------------------ */

/* Whether an install waits for validation (step reboot or validate): 1, with
 * its record and the booted slot; 0 if none does; < 0 on an error. */
int system_awaiting_validation(const struct slotsync_config *cfg, struct slotsync_install_record *rec, int *booted,
			       struct slotsync_error *err);

#endif
