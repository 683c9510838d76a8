/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the device's configuration, /etc/slotsync/system.conf.
 *
 * An INI file (read with libinih), documented key by key in
 * docs/system.conf.example:
 *
 *   [system]   compatible, state-dir, keyring, allow-downgrade, boot-tries
 *   [boot]     backend (file|grub|uboot|barebox), env, barebox-offset,
 *              barebox-stride, barebox-magic
 *   [tpm]      tcti, pcrs, root-pcr
 *   [update]   channel, store (repeatable), allow-plain-http, ca-file, client-cert, client-key,
 *              concurrency, max-rate, min-rate, stall-timeout, poll-interval, poll-jitter, window,
 *              reboot-command, health-dir, health-timeout, hooks-dir
 *   [slot.A], [slot.B]
 *              device (or rootfs), backend (raw|luks2), data, mapping, data-mapping,
 *              and NAME = volume for each further image of the slot group (boot = ...)
 *
 * Sizes take k, M, G (powers of 1024); durations s, m, h, d; a window is
 * HH:MM-HH:MM in local time (it may wrap midnight).  An unknown section or
 * key, a key given twice, or a bad value is an error naming the file, the line
 * and the key; nothing is guessed.
 */
#ifndef SLOTSYNC_CONFIG_H
#define SLOTSYNC_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "slotsync/boot.h"
#include "slotsync/error.h"
#include "slotsync/slot.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_CONFIG_DEFAULT "/etc/slotsync/system.conf"
#define SLOTSYNC_CONFIG_STORES_MAX 8

struct slotsync_config {
	char path[PATH_MAX];
	/* [system] */
	char compatible[256];
	char state_dir[PATH_MAX];       /* default /var/lib/slotsync */
	char keyring[PATH_MAX];         /* CA certificates that sign releases */
	int allow_downgrade;            /* signed downgrades may install */
	int boot_tries;                 /* tries a new slot gets */
	/* [boot] */
	struct slotsync_boot_config boot;
	/* [tpm] */
	char tcti[256];                 /* "" : tpm2-tss's default */
	uint32_t pcr_mask;              /* PCRs the slots' keys are bound to */
	int root_pcr;                   /* PCR the initramfs measures the root's verity hash into (data keys are
					 * bound to pcr_mask and it); -1: none (default) */
	/* [update] */
	char channel[1024];             /* URL of the signed channel pointer */
	int allow_plain_http;           /* [update] allow-plain-http: http:// channel, stores, bundles */
	char store[SLOTSYNC_CONFIG_STORES_MAX][1024];
	int n_stores;
	char ca_file[PATH_MAX], client_cert[PATH_MAX], client_key[PATH_MAX];
	int concurrency;                /* 0: the engine's default */
	uint64_t max_rate;              /* bytes/s; 0: no cap */
	uint64_t min_rate;              /* bytes/s a transfer must keep; 0: the engine's default; UINT64_MAX: none */
	uint64_t stall_timeout;         /* seconds without a byte before a transfer is cut and retried */
	uint64_t poll_interval;         /* seconds */
	uint64_t poll_jitter;           /* seconds, added at random to each interval */
	int window_start, window_end;   /* minutes after local midnight; -1: always */
	char reboot_command[1024];      /* "never": leave the reboot to the operator */
	char health_dir[PATH_MAX];
	uint64_t health_timeout;        /* seconds, per check */
	/* [slot.A], [slot.B] */
	struct slotsync_slot_config slot[2];
};

/* Defaults, then the file (path NULL: SLOTSYNC_CONFIG_DEFAULT).  Both slots
 * must be configured. */
SLOTSYNC_EXPORT int slotsync_config_load(const char *path, struct slotsync_config *cfg, struct slotsync_error *err);
/* The same from a string (name is used in messages). */
SLOTSYNC_EXPORT int slotsync_config_load_string(const char *text, const char *name, struct slotsync_config *cfg,
				struct slotsync_error *err);

/* The slot of this name ("A", "B"; case ignored), or NULL. */
SLOTSYNC_EXPORT const struct slotsync_slot_config *slotsync_config_slot(const struct slotsync_config *cfg, const char *name);

/* The TPM options as the slot functions take them (tcti NULL when unset). */
SLOTSYNC_EXPORT struct slotsync_luks_tpm slotsync_config_tpm(const struct slotsync_config *cfg);
/* The same for the data partitions: pcrs and root-pcr (their keys unseal only
 * after a genuine root was measured). */
SLOTSYNC_EXPORT struct slotsync_luks_tpm slotsync_config_tpm_data(const struct slotsync_config *cfg);

/* Whether minute-of-day m lies in the window (always, if none is set). */
SLOTSYNC_EXPORT int slotsync_config_in_window(const struct slotsync_config *cfg, int minute_of_day);

#ifdef __cplusplus
}
#endif
#endif
