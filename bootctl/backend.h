/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The boot-state backends behind include/slotsync/boot.h: one file each. */
#ifndef SLOTSYNC_BOOT_BACKEND_H
#define SLOTSYNC_BOOT_BACKEND_H

#include "slotsync/boot.h"

struct boot_backend {
	const char *name;
	/* -ENOENT (err unset) when the storage holds no state yet */
	int (*load)(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st, struct slotsync_error *err);
	int (*store)(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
		     struct slotsync_error *err);
};

extern const struct boot_backend boot_backend_file;
extern const struct boot_backend boot_backend_grub;
extern const struct boot_backend boot_backend_uboot;
extern const struct boot_backend boot_backend_barebox;

/* Priorities as an order string ("A B", "B", ...) and back (first = 2, second
 * = 1, absent = 0). */
void boot_order_format(const struct slotsync_boot_state *st, char out[8]);
int boot_order_parse(const char *s, struct slotsync_boot_state *st);


#endif
