/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One install run (install.c), shared with the steps of the slot group and
 * the stores (install_images.c).  Private to engine/system. */
#ifndef SLOTSYNC_SYSTEM_INSTALL_RUN_H
#define SLOTSYNC_SYSTEM_INSTALL_RUN_H

#include "slotsync/assemble.h"
#include "slotsync/envelope.h"
#include "slotsync/install.h"
#include "slotsync/mirrors.h"
#include "slotsync/root.h"
#include "slotsync/slot.h"

struct run_ctx {
	const struct slotsync_install_options *o;
	const struct slotsync_config *cfg;
	struct slotsync_install_record *rec;
	struct slotsync_bundle *bundle;
	struct slotsync_luks_tpm tpm;
	int booted;
	double t0, last_save, rate_t, rate_bytes;
	double rate;
	struct slotsync_volume_handle target, active, data_target, data_active;
	int missing;             /* the assemble step found an object missing from every store */
	int index_unavailable;   /* a detached index could not be fetched (not: was wrong) */
	struct slotsync_install_image *image;  /* the further image being written; NULL: the main one */
	struct slotsync_mirrors *mirrors;      /* the stores, for every fetch of this run (system_install_mirrors) */
};

/* The assembly's progress into the record (the main image's, or c->image's). */
void system_install_on_assemble(void *ud, const struct slotsync_assemble_stats *st);

/* 1 and the size of the block device at path in *size; 0 when path is no
 * block device that opens (a file grows as it is written; what is wrong with
 * a path, the step that writes it says). */
int system_block_size(const char *path, uint64_t *size);

/* The bundle brings exactly the images the target slot group names, each
 * fitting its volume: checked before anything is written. */
int system_install_check_group(struct run_ctx *c, struct slotsync_error *err);

/* The further images' indexes into the state folder (install.NAME.caibx),
 * and their entries in the install record. */
int system_install_image_indexes(struct run_ctx *c, struct slotsync_error *err);

/* c->mirrors, once: every store = of the configuration, then the bundle's
 * stores, in order, each a mirror of the others (slotsync/mirrors.h), sharing
 * one connection each for the whole run. */
int system_install_mirrors(struct run_ctx *c, struct slotsync_error *err);

/* What each mirror served so far in this run, into the install record. */
void system_install_mirrors_record(struct run_ctx *c);

/* slotsync_assemble() from the configured stores (or the bundle's), tried in
 * order as mirrors, and from the bundle's embedded chunks. */
int system_install_assemble_from_stores(struct run_ctx *c, struct slotsync_assemble_options *ao,
					struct slotsync_assemble_stats *stp, struct slotsync_error *err);

/* The step "images": every further image of the slot group, written, checked
 * and recorded done in turn. */
int system_install_step_images(struct run_ctx *c, struct slotsync_error *err);

#endif
