/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — preparing the new slot's data partition before the switch.
 *
 * Install step 5: the active data partition is copied, block for block, onto
 * the inactive one (both through their open mappings), then the new release's
 * migration hooks run on the copy: every executable in the new image's hook
 * folder (default usr/lib/slotsync/migrate.d), in name order, with the new
 * image mounted read-only and the new data partition mounted read-write.  The
 * old data partition is only ever read: a failed hook stops the install with
 * the old slot and its data as they were.
 *
 * Hooks get: SLOTSYNC_IMAGE (the new image's mount point), SLOTSYNC_DATA (the
 * new data partition's mount point; also their working folder) and
 * SLOTSYNC_HOOK (their own name).
 */
#ifndef SLOTSYNC_MIGRATE_H
#define SLOTSYNC_MIGRATE_H

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_MIGRATE_HOOKS_DIR "usr/lib/slotsync/migrate.d"

struct slotsync_migrate_options {
	const char *from;        /* the active data partition (read only) */
	const char *to;          /* the new slot's data partition */
	const char *image;       /* the new slot (squashfs) */
	const char *hooks_dir;   /* inside the image; NULL: SLOTSYNC_MIGRATE_HOOKS_DIR */
	const char *fs_type;     /* of the data partition; NULL: ext4 */
	const char *workdir;     /* where to mount; NULL: /run/slotsync */
};

SLOTSYNC_EXPORT int slotsync_migrate_data(const struct slotsync_migrate_options *o, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
