/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the device's trust policy for releases, and the state it keeps.
 *
 * A verified bundle (see envelope.h) is installed only if it is for this device
 * (compatible), newer than what runs unless it carries a signed permission to
 * go back to it and the device allows downgrades, never below the device's
 * security floor, and not expired.  A channel pointer is accepted only if its
 * version is at least the last one accepted, it has not expired, and the bundle
 * fetched through it has exactly the digest and at most the size it names.
 *
 * The device state is a small JSON file, replaced atomically: the last pointer
 * version accepted, the security floor (raised when a release is marked good)
 * and the version installed.
 */
#ifndef SLOTSYNC_POLICY_H
#define SLOTSYNC_POLICY_H

#include <stdint.h>
#include <time.h>

#include "slotsync/envelope.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct slotsync_state {
	uint64_t pointer_version;     /* last channel pointer accepted (0: none) */
	uint64_t security_floor;      /* no release below this security_version */
	char installed_version[256];  /* "" : none known */
};

/* A missing file is an empty state; a corrupt one is an error (never guessed). */
SLOTSYNC_EXPORT int slotsync_policy_state_load(const char *path, struct slotsync_state *st, struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_policy_state_save(const char *path, const struct slotsync_state *st, struct slotsync_error *err);

struct slotsync_policy {
	const char *compatible;       /* the device's; NULL: not checked */
	const char *installed_version; /* NULL or "": any version is an upgrade */
	uint64_t security_floor;
	int allow_downgrade;          /* the device's configuration */
	time_t now;
};

/* 0 if the manifest may be installed, else -EPERM and why. */
SLOTSYNC_EXPORT int slotsync_policy_check(const struct slotsync_manifest *m, const struct slotsync_policy *p,
			  struct slotsync_error *err);

/* 0 if the pointer may be followed: not older than last_version, not expired
 * at now, and for this device when it names a compatible. */
SLOTSYNC_EXPORT int slotsync_policy_check_pointer(const struct slotsync_pointer *ptr, uint64_t last_version, time_t now,
			   const char *compatible, struct slotsync_error *err);

/* 0 if the bundle file at path is the one the pointer names (size, SHA-256). */
SLOTSYNC_EXPORT int slotsync_policy_check_pointer_bundle(const struct slotsync_pointer *ptr, const char *bundle_path,
				  struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
