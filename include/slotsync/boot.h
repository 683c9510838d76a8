/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — A/B boot state: which slot boots next, boot counting, mark-good
 * and fallback, on GRUB, U-Boot, Barebox or a file of our own.
 *
 * The model, the same on every bootloader: each slot has a priority (the
 * order in which the bootloader considers slots; 0: never), tries left, and a
 * good flag.  At each boot the bootloader takes the slots by priority: the
 * first that is good boots as it is; the first that is not good but has tries
 * left has one try taken away (saved before it boots) and boots; a slot with
 * neither is passed over, which is the fallback.  The booted system proves
 * itself healthy and marks its slot good; one that never does runs out of
 * tries and is left behind.
 *
 * Every change is one atomic write of the backend's storage: a power cut at any
 * instant leaves the old state or the new one, never a broken one (docs/boot.md
 * tells how each backend does it).
 */
#ifndef SLOTSYNC_BOOT_H
#define SLOTSYNC_BOOT_H

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_BOOT_SLOTS 2   /* A and B */
#define SLOTSYNC_BOOT_TRIES_DEFAULT 3
#define SLOTSYNC_BOOT_TRIES_MAX 100

struct slotsync_boot_slot {
	int priority;   /* 0: not to be booted; higher first */
	int tries;      /* boots left while not good */
	int good;       /* proven healthy */
};

struct slotsync_boot_state {
	struct slotsync_boot_slot slot[SLOTSYNC_BOOT_SLOTS];  /* [0] = A, [1] = B */
};

enum slotsync_boot_backend_type {
	SLOTSYNC_BOOT_FILE = 0,
	SLOTSYNC_BOOT_GRUB,
	SLOTSYNC_BOOT_UBOOT,
	SLOTSYNC_BOOT_BAREBOX,
};

struct slotsync_boot_config {
	enum slotsync_boot_backend_type backend;
	char env[1024];          /* file: state file; grub: grubenv; uboot: fw_env.config; barebox: storage */
	char booted[4];          /* "A"/"B", or "" : read from the kernel command line (slotsync.slot= or rauc.slot=) */
	char cmdline[256];       /* where the kernel command line is read; "" : /proc/cmdline */
	int default_tries;       /* 0: SLOTSYNC_BOOT_TRIES_DEFAULT */
	/* barebox */
	unsigned long long barebox_offset;
	unsigned int barebox_stride;   /* 0: 64 */
	unsigned int barebox_magic;    /* the state's magic from its devicetree node; required */
};

/* Defaults, then `key = value` lines from path (backend, env, booted, cmdline,
 * default-tries, barebox-offset, barebox-stride, barebox-magic); path may be
 * NULL.  Unknown keys and bad values are errors. */
SLOTSYNC_EXPORT int slotsync_boot_config_load(const char *path, struct slotsync_boot_config *cfg, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_boot_config_defaults(struct slotsync_boot_config *cfg);
/* Sets one key as the file above does: -ENOENT unknown key, -EINVAL bad value. */
SLOTSYNC_EXPORT int slotsync_boot_config_set(struct slotsync_boot_config *cfg, const char *key, const char *value);
SLOTSYNC_EXPORT int slotsync_boot_backend_parse(const char *name, enum slotsync_boot_backend_type *out);
SLOTSYNC_EXPORT const char *slotsync_boot_backend_name(enum slotsync_boot_backend_type t);
/* The most tries a slot can be given on this backend: what its bootloader's
 * script can count (GRUB and U-Boot: 9, one decimal digit; file and Barebox:
 * SLOTSYNC_BOOT_TRIES_MAX). */
SLOTSYNC_EXPORT int slotsync_boot_tries_max(enum slotsync_boot_backend_type t);

/* Reads the state from the backend.  A storage that is missing or holds no
 * state yet is -ENOENT, with a message naming the storage and saying that
 * slotsync_boot_init (slotsync-bootctl init) writes the first state: a wrong
 * path must never pass for a device on its first boot.  A corrupt one is an
 * error naming what is wrong (every backend keeps redundant copies, so this
 * means all of them are damaged). */
SLOTSYNC_EXPORT int slotsync_boot_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		       struct slotsync_error *err);
/* Writes the first-boot state (A good and first, B not bootable) where the
 * storage holds none yet (a missing grubenv or state file is created; U-Boot's
 * and Barebox's storage must exist).  A storage that already holds a state,
 * valid or not, is left alone and -EEXIST (valid) or its error returned,
 * unless force. */
SLOTSYNC_EXPORT int slotsync_boot_init(const struct slotsync_boot_config *cfg, int force, struct slotsync_error *err);
/* Writes the whole state in one atomic step. */
SLOTSYNC_EXPORT int slotsync_boot_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
			struct slotsync_error *err);

/* The slot (0 or 1) the system runs from, from cfg->booted or the kernel
 * command line; -ENOENT if neither says. */
SLOTSYNC_EXPORT int slotsync_boot_booted(const struct slotsync_boot_config *cfg, struct slotsync_error *err);

/* The operations; each loads, changes and stores in one step. */
SLOTSYNC_EXPORT int slotsync_boot_switch(const struct slotsync_boot_config *cfg, int slot, int tries, struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_boot_mark_good(const struct slotsync_boot_config *cfg, int slot, struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_boot_mark_bad(const struct slotsync_boot_config *cfg, int slot, struct slotsync_error *err);

/* The bootloader's choice on the given state (pure: st is not changed): the
 * slot it would boot, and whether it takes a try to do so.  -1 if no slot is
 * bootable (the scripts then boot the highest-priority slot as a last resort). */
SLOTSYNC_EXPORT int slotsync_boot_choose(const struct slotsync_boot_state *st, int *takes_try);

/* Applies one boot as the bootloader does (choose, take a try, store). */
SLOTSYNC_EXPORT int slotsync_boot_simulate_boot(const struct slotsync_boot_config *cfg, int *booted, struct slotsync_error *err);

static inline char slotsync_boot_slot_name(int slot)
{
	return slot == 0 ? 'A' : 'B';
}

/* "A"/"a" -> 0, "B"/"b" -> 1, else -EINVAL. */
SLOTSYNC_EXPORT int slotsync_boot_slot_parse(const char *s);

#ifdef __cplusplus
}
#endif
#endif
