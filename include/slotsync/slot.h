/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — slot backends: how a slot's (or a data partition's) block device
 * is opened to be written by an install, or read as the active slot.
 *
 *  - raw: the device itself.
 *  - luks2: a LUKS2 volume whose key the TPM seals (luks.h).  An install
 *    formats the inactive volume with a fresh key and writes through its
 *    mapping; the active volume is read through its mapping (the one already
 *    open, or one opened for the occasion).
 *
 * Formatting and resuming: the UUID of the header an install formats is chosen
 * before the format and handed to the caller's record() callback, which must
 * make it durable (the install journal keeps it) before the device is touched.
 * A resumed install passes that UUID back: a header that has it and whose key
 * unseals is reopened, never formatted again; a header without it (the format
 * was cut short) is formatted then, with the same UUID.  A header that has the
 * UUID but cannot be opened any more (its token damaged, say) is formatted
 * with a new UUID, recorded first, and *formatted tells the caller that what
 * it wrote there before is gone.
 */
#ifndef SLOTSYNC_SLOT_H
#define SLOTSYNC_SLOT_H

#include <limits.h>

#include "slotsync/error.h"
#include "slotsync/luks.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_slot_backend {
	SLOTSYNC_SLOT_RAW = 0,
	SLOTSYNC_SLOT_LUKS2,
};

#define SLOTSYNC_SLOT_MAPPING_MAX 64
#define SLOTSYNC_SLOT_IMAGES_MAX 8      /* further images of a slot group */

struct slotsync_slot_config {
	char name[8];                     /* "A", "B" */
	enum slotsync_slot_backend backend;
	char device[PATH_MAX];            /* the slot's block device (or file, raw) */
	char data[PATH_MAX];              /* its data partition; "" : none */
	char mapping[SLOTSYNC_SLOT_MAPPING_MAX];       /* luks2; default slotsync-<name> */
	char data_mapping[SLOTSYNC_SLOT_MAPPING_MAX];  /* luks2; default slotsync-data-<name> */
	/* the further images of the slot group, sorted by name (e.g. "boot" =
	 * the volume of this slot's kernel, initramfs and device tree): always
	 * written raw, whatever the backend of device */
	struct slotsync_slot_image {
		char name[33];                    /* an image name (slotsync_image_name_valid) */
		char device[PATH_MAX];
	} images[SLOTSYNC_SLOT_IMAGES_MAX];
	size_t n_images;
};

/* One volume: a slot or a data partition. */
struct slotsync_volume {
	enum slotsync_slot_backend backend;
	const char *device;
	const char *mapping;
};

static inline struct slotsync_volume slotsync_slot_volume(const struct slotsync_slot_config *s, int data)
{
	struct slotsync_volume v = { s->backend, data ? s->data : s->device, data ? s->data_mapping : s->mapping };
	return v;
}

/* An opened volume: path is what to read or write. */
struct slotsync_volume_handle {
	char path[PATH_MAX];
	char mapping[SLOTSYNC_SLOT_MAPPING_MAX];   /* "" unless this handle opened a mapping */
	char uuid[SLOTSYNC_LUKS_UUID_BYTES];       /* luks2: the header's UUID */
};

SLOTSYNC_EXPORT const char *slotsync_slot_backend_name(enum slotsync_slot_backend b);
SLOTSYNC_EXPORT int slotsync_slot_backend_parse(const char *s, enum slotsync_slot_backend *out);

/* Opens the volume to be written (see above).  uuid: in, the header UUID an
 * earlier run recorded ("" : none); out, the header's UUID now.  record() is
 * called (luks2 only) with a UUID before any format; a failure of it stops
 * everything with the device untouched. */
SLOTSYNC_EXPORT int slotsync_volume_open_write(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			       char uuid[SLOTSYNC_LUKS_UUID_BYTES], int (*record)(void *ud, const char *uuid,
										  struct slotsync_error *err),
			       void *ud, int *formatted, struct slotsync_volume_handle *h, struct slotsync_error *err);

/* Opens the volume to be read: raw, the device; luks2, its mapping when it is
 * open already (the running system's), else a mapping opened now. */
SLOTSYNC_EXPORT int slotsync_volume_open_read(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			      struct slotsync_volume_handle *h, struct slotsync_error *err);

/* Opens the mapping (luks2) for the system that boots from it, as an
 * initramfs does; raw: nothing to do.  An open mapping of the same header is
 * left as it is. */
SLOTSYNC_EXPORT int slotsync_volume_unlock(const struct slotsync_volume *v, const struct slotsync_luks_tpm *tpm,
			   struct slotsync_volume_handle *h, struct slotsync_error *err);

/* Closes the mapping the handle opened, if any. */
SLOTSYNC_EXPORT int slotsync_volume_close(struct slotsync_volume_handle *h, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
