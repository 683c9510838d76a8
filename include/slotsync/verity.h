/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — dm-verity of an installed slot (docs/format.md, "Slot images"):
 * the slot holds the release's slot image, its data from 0 and its hash tree
 * from the manifest's hash offset, and the signed manifest gives the root
 * hash.  libcryptsetup does all of it.  In a build without libcryptsetup
 * (SLOTSYNC_HAVE_VERITY 0) every call fails with -ENOTSUP and a message
 * naming the build option. */
#ifndef SLOTSYNC_VERITY_H
#define SLOTSYNC_VERITY_H

#include "slotsync/error.h"
#include "slotsync/export.h"
#include "slotsync/manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks the whole hash tree and every data block of device (a block device
 * or a regular file) against v's root hash, in userspace (no device-mapper).
 * -EBADMSG when it does not match ("slot B fails dm-verity: ..."; the caller
 * adds which slot). */
SLOTSYNC_EXPORT int slotsync_verity_verify(const char *device, const struct slotsync_manifest_verity *v,
					   struct slotsync_error *err);

/* Maps device read-only through dm-verity as /dev/mapper/NAME: every block read
 * is checked against v's root hash by the kernel. */
SLOTSYNC_EXPORT int slotsync_verity_open(const char *device, const struct slotsync_manifest_verity *v,
					 const char *name, struct slotsync_error *err);

/* Removes the mapping NAME. */
SLOTSYNC_EXPORT int slotsync_verity_close(const char *name, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
