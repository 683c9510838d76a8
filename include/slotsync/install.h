/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the whole install, one state machine, and what the device
 * remembers of it.
 *
 * An install runs these steps, each idempotent, each recorded in the install
 * journal (STATE_DIR/install.json, replaced atomically and made durable) before
 * the next begins, so that a cut at any instant resumes at the step reached:
 *
 *   verify        the bundle: signature, chain, manifest, index, device policy
 *   pre-install   the bundle's pre-install hook, if it has one
 *   assemble      the inactive slot (slot backend, seeds, store, journal)
 *   verify-slot   SHA-256 of the whole slot against the manifest's image digest
 *   images        the further images of the slot group (e.g. "boot"), by name,
 *                 each written to its volume and checked byte-exact in turn
 *   migrate-data  the active data partition copied, the release's hooks run
 *   post-install  the bundle's post-install hook, if it has one
 *   switch        the boot state: the new slot first, with its tries
 *   reboot        a reboot is due (the agent asks for it)
 *   validate      after the reboot: health checks, then good (done) or bad
 *   done | failed
 *
 * Nothing switches to a slot whose verify-slot step has not passed.  One
 * install at a time: a lock (STATE_DIR/install.lock) refuses a second process,
 * and an unfinished install of another bundle is refused until it is resumed or
 * dropped with abort.
 *
 * Files in STATE_DIR: install.json (the journal), install.bundle (the bundle
 * being installed), install.caibx (its index), install.journal (the
 * assembly's), install.NAME.caibx and install.NAME.journal (a further image's), slots.json (what each slot holds), slot-A.caibx / slot-B.caibx
 * (their indexes, to seed the next install), failed.json (releases that failed
 * on this device), state.json (policy.h's device state).
 */
#ifndef SLOTSYNC_INSTALL_H
#define SLOTSYNC_INSTALL_H

#include <stdint.h>
#include <time.h>

#include "slotsync/config.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_install_step {
	SLOTSYNC_STEP_NONE = 0,
	SLOTSYNC_STEP_VERIFY,
	SLOTSYNC_STEP_PRE_INSTALL,
	SLOTSYNC_STEP_ASSEMBLE,
	SLOTSYNC_STEP_VERIFY_SLOT,
	SLOTSYNC_STEP_IMAGES,
	SLOTSYNC_STEP_MIGRATE_DATA,
	SLOTSYNC_STEP_POST_INSTALL,
	SLOTSYNC_STEP_SWITCH,
	SLOTSYNC_STEP_REBOOT,
	SLOTSYNC_STEP_VALIDATE,
	SLOTSYNC_STEP_DONE,
	SLOTSYNC_STEP_FAILED,
	SLOTSYNC_STEP_COUNT
};

SLOTSYNC_EXPORT const char *slotsync_install_step_name(enum slotsync_install_step s);

/* The install journal. */
#define SLOTSYNC_INSTALL_MIRRORS_MAX 24

struct slotsync_install_record {
	enum slotsync_install_step step;     /* the step reached: the next to run */
	char source[1024];                   /* the bundle's path or URL as given */
	char bundle_sha256[65];
	char version[256];
	uint64_t security_version;
	int target;                          /* 0: A, 1: B */
	char header_uuid[40];                /* luks2: the slot's header formatted for this install */
	char data_header_uuid[40];           /* luks2: the data partition's */
	time_t started, updated;
	uint64_t bytes_total;                /* the image */
	uint64_t bytes_done;                 /* of it, in the slot */
	uint64_t bytes_fetched;              /* over the network, this install */
	uint64_t bytes_from_seed;
	double seconds[SLOTSYNC_STEP_COUNT]; /* time spent in each step, over every run */
	char error[1024];                    /* the last error ("" : none) */
	int error_final;                     /* the install failed for good (step FAILED) */
	unsigned missing_runs;               /* runs in a row that found an object missing from every store (HTTP 404) */
	/* a detached index (slotsync-gen bundle --detach-index): how it came,
	 * "diff" (rebuilt from the index diff) or "full" (indexes/<hex>.caibx),
	 * and its bytes over the network (in bytes_fetched too) */
	char index_from[8];
	uint64_t index_bytes_fetched;
	uint64_t delta_objects_skipped;      /* delta objects left out: this device compresses otherwise */
	char delta_note[256];                /* why ("" : none) */
	/* the further images of the slot group, sorted by name (the bytes_*
	 * above are the main image's, and the indexes') */
	struct slotsync_install_image {
		char name[33];
		int done;                    /* written and checked byte-exact */
		uint64_t bytes_total, bytes_done, bytes_fetched, bytes_from_seed;
	} images[8];
	size_t n_images;
	/* the stores as mirrors, in the order they are asked (every store = of
	 * the configuration, then the bundle's), and what each served in the
	 * last run: bytes received, objects accepted, objects it did not serve
	 * (asked of the next), connections opened, and why it was dropped ("":
	 * it was not; a mirror that serves wrong bytes is) */
	struct slotsync_install_mirror {
		char url[512];
		uint64_t bytes, objects, objects_moved;
		long connections;
		char dropped[512];
	} mirrors[SLOTSYNC_INSTALL_MIRRORS_MAX];
	size_t n_mirrors;
};

/* Exit codes of the slotsync command (install, assemble, agent --once and the
 * others), in its --help and docs/install.md. */
#define SLOTSYNC_EXIT_DONE 0       /* done */
#define SLOTSYNC_EXIT_FAILED 1     /* failed for good: the same command fails again; do not retry this bundle */
#define SLOTSYNC_EXIT_USAGE 2      /* bad arguments */
#define SLOTSYNC_EXIT_RESUMABLE 3  /* interrupted (network, signal, power): run the same command again to resume */
#define SLOTSYNC_EXIT_BUSY 4       /* another install runs, or one of another bundle is unfinished */

/* Runs in a row that find a chunk or delta object missing from every store
 * (HTTP 404 from each) before the install fails for good: as many as the
 * fetcher's attempts for one object (fetch.h, max_attempts). */
#define SLOTSYNC_INSTALL_MISSING_RUNS_MAX 8

/* -ENOENT when there is none. */
SLOTSYNC_EXPORT int slotsync_install_record_load(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
				 struct slotsync_error *err);

/* What the device remembers of a slot (slots.json). */
struct slotsync_slot_record {
	char status[16];         /* "" unknown, "writing", "installed", "good", "bad" */
	char version[256];
	char bundle_sha256[65];
	uint64_t security_version;
	time_t installed;
};

SLOTSYNC_EXPORT int slotsync_install_slot_records_load(const struct slotsync_config *cfg, struct slotsync_slot_record rec[2],
			       struct slotsync_error *err);

/* Releases that failed here (failed.json): never installed again. */
SLOTSYNC_EXPORT int slotsync_install_release_failed(const struct slotsync_config *cfg, const char *bundle_sha256, const char *version,
			    char *reason, size_t reason_len);

struct slotsync_install_progress {
	enum slotsync_install_step step;
	uint64_t bytes_total, bytes_done, bytes_fetched, bytes_from_seed;
	double rate;             /* bytes per second written, recent */
	double seconds;          /* in this run */
};

struct slotsync_install_options {
	const struct slotsync_config *cfg;
	const char *bundle;      /* a path or an http(s) URL; NULL with abort: only drop */
	uint64_t bundle_max;     /* largest bundle to download; 0: 64 MiB */
	const uint8_t *bundle_sha256;  /* when a channel pointer names it: the bundle must be this */
	int abort;               /* drop an unfinished install first */
	time_t now;              /* 0: time(NULL) */
	void (*progress)(void *ud, const struct slotsync_install_progress *p);
	void *progress_ud;
	volatile int *cancel;    /* set (e.g. by a signal) to stop after the current step or batch */
};

/* Runs (or resumes) the install up to the reboot step.  0: the new slot is
 * switched to and a reboot is due (rec->step == REBOOT); < 0: err says why,
 * and the journal says whether it can resume (rec->error_final == 0). */
SLOTSYNC_EXPORT int slotsync_install(const struct slotsync_install_options *o, struct slotsync_install_record *rec,
		     struct slotsync_error *err);

/* Drops an unfinished install: mappings closed, journals removed, and if it
 * had already switched, the new slot marked bad so the running one stays. */
SLOTSYNC_EXPORT int slotsync_install_abort(const struct slotsync_config *cfg, struct slotsync_error *err);

/* Records that the reboot was asked for (REBOOT -> VALIDATE). */
SLOTSYNC_EXPORT int slotsync_install_reboot_requested(const struct slotsync_config *cfg, struct slotsync_error *err);

/* After a boot: settles an install that waits for validation.  good: the
 * booted new slot passed its health checks (marked good, device state updated:
 * installed version, security floor); !good: it failed them (marked bad, the
 * release remembered as failed; the caller reboots so the bootloader falls
 * back).  A boot that came up on the old slot (the new one ran out of tries)
 * fails the install too.  *settled: 1 if an install was settled. */
SLOTSYNC_EXPORT int slotsync_install_validate(const struct slotsync_config *cfg, int good, const char *reason, int *settled,
			      struct slotsync_error *err);

/* Marks the booted slot good or bad (and settles an install waiting for it). */
SLOTSYNC_EXPORT int slotsync_install_mark(const struct slotsync_config *cfg, int good, struct slotsync_error *err);

/* Marks a slot as the operator says (RAUC's mark-good, mark-bad, mark-active).
 * state: "good", "bad", or "active" (the slot boots next: first by priority,
 * its tries renewed if it is not good; the other stays as the fallback).
 * slot: "booted" (or NULL), "other", "A" or "B".  Marking the booted slot good
 * or bad settles an install that waits for it, as slotsync_install_mark(). */
SLOTSYNC_EXPORT int slotsync_install_mark_slot(const struct slotsync_config *cfg, const char *state, const char *slot,
					       struct slotsync_error *err);

/* A bundle checked against the configuration's keyring (signature, chain,
 * manifest, index) and described as one JSON object (malloc'd string):
 * version, compatible, image size and digest, stores, deltas, signer, ...
 * An error (the reason) if the bundle is not valid. */
SLOTSYNC_EXPORT int slotsync_install_bundle_info_json(const struct slotsync_config *cfg, const char *bundle, char **out,
						      struct slotsync_error *err);

/* The device's status as one JSON object (malloc'd string). */
SLOTSYNC_EXPORT int slotsync_install_status_json(const struct slotsync_config *cfg, char **out, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
