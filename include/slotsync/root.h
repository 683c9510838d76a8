/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the root a device boots: only a signed one, and measured.
 *
 * Every install keeps, beside the slot's index in the state folder, the
 * signed envelope of the release it wrote into the slot ("slot-A.bundle":
 * manifest, index and signature; embedded chunks left out).  Before the
 * initramfs mounts a slot it calls slotsync_root_open(), which
 *   1. checks that envelope's signature against the keyring built into the
 *      initramfs and that the release is for this device (compatible),
 *   2. unlocks the slot (luks2: the TPM unseals its key under the policy of
 *      the device's configuration, never the one a header carries),
 *   3. checks every block of the slot against the release's dm-verity root
 *      hash (unless told to leave that to the kernel's reads), and opens the
 *      slot through dm-verity with that root hash,
 *   4. extends the configured root PCR ([tpm] root-pcr) with the root's
 *      measurement, so that the data partition's key, sealed for exactly that
 *      measurement, unseals after a genuine root and after no other.
 * A root opened without verity (a debug boot) is measured as "unverified":
 * no data key sealed for a release unseals after it.
 */
#ifndef SLOTSYNC_ROOT_H
#define SLOTSYNC_ROOT_H

#include <limits.h>
#include <stdint.h>

#include "slotsync/config.h"
#include "slotsync/error.h"
#include "slotsync/export.h"
#include "slotsync/luks.h"
#include "slotsync/manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The event a root PCR is extended with: SHA-256 of "slotsync-root:" and the
 * lower-case hex root hash, or of "slotsync-root:unverified" (root_hash NULL). */
SLOTSYNC_EXPORT void slotsync_root_measurement(const char *root_hash, uint8_t out[32]);

/* The TPM policy a slot's data partition is sealed under when it is to hold
 * the data of the release m: the configured PCRs, and (with [tpm] root-pcr)
 * the root PCR as it reads once m's root is measured on a fresh boot (all
 * zeros, extended once).  A device that measures its root refuses a release
 * without dm-verity here. */
SLOTSYNC_EXPORT int slotsync_root_data_tpm(const struct slotsync_config *cfg, const struct slotsync_manifest *m,
					   struct slotsync_luks_tpm *out, struct slotsync_error *err);

/* The same for an explicit root hash (root_pcr < 0: none). */
SLOTSYNC_EXPORT void slotsync_root_tpm_for(struct slotsync_luks_tpm *t, int root_pcr, const char *root_hash);

struct slotsync_root_options {
	const char *record;     /* the slot's signed envelope; NULL: <state-dir>/slot-X.bundle */
	const char *name;       /* the dm-verity mapping; NULL: slotsync-root-X */
	int unverified;         /* debug: no verity, measured as "unverified" */
	int no_full_check;      /* leave the check of each block to the kernel's reads */
};

/* Opens slot (0: A, 1: B) as the root to mount; path receives the device to
 * mount (/dev/mapper/NAME), version the release's version. */
SLOTSYNC_EXPORT int slotsync_root_open(const struct slotsync_config *cfg, int slot, const struct slotsync_root_options *o,
				       char path[PATH_MAX], char version[128], struct slotsync_error *err);

/* Where the install keeps slot's signed envelope. */
SLOTSYNC_EXPORT void slotsync_root_record_path(const struct slotsync_config *cfg, int slot, char out[PATH_MAX]);

#ifdef __cplusplus
}
#endif
#endif
