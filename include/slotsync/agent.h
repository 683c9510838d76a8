/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the agent: a device that updates itself with nobody there.
 *
 * At start it settles what the last boot left: an install that waits for
 * validation on the slot now booted runs the health checks (every executable
 * in health-dir, each with health-timeout) and is marked good, or bad and the
 * device rebooted so that the bootloader falls back; an install cut short (a
 * power cut, a reboot) resumes.  Then it polls the signed channel pointer every
 * poll-interval plus a random delay of up to poll-jitter (a fleet must not
 * poll in lockstep), inside the maintenance window only; a pointer older than
 * the last one accepted, expired, or for another device is refused and
 * reported; a pointer to a release that runs already, or that failed here
 * before, installs nothing.  A failed poll or install is retried with
 * exponential backoff and jitter, never sooner than a few seconds.  After an
 * install it asks for the reboot with reboot-command ("never": the operator
 * reboots).
 *
 * Under systemd (Type=notify) it reports readiness and keeps the watchdog fed
 * (sd_notify) while an install runs on a thread of its own; on D-Bus it offers
 * the installer interface of docs/dbus.md.  One agent at a time: a second one
 * refuses to start.
 */
#ifndef SLOTSYNC_AGENT_H
#define SLOTSYNC_AGENT_H

#include "slotsync/config.h"
#include "slotsync/error.h"
#include "slotsync/install.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct slotsync_agent_options {
	const struct slotsync_config *cfg;
	int once;                  /* settle, one poll (and install), then return */
	int dbus;                  /* 0: none; 1: the system bus; 2: the address below */
	const char *dbus_address;  /* "unix:path=..." (tests: a private bus) */
	/* an install's progress (may be NULL); called on the agent's worker thread */
	void (*progress)(void *ud, const struct slotsync_install_progress *p);
	void *progress_ud;
};

/* Runs until SIGTERM/SIGINT (or, with once, one cycle).  0: clean exit.
 * With once, a cycle that failed returns -EAGAIN when running it again may
 * finish it (an interrupted install, an unreachable channel), another negative
 * code when it failed for good (a refused pointer, a bundle that cannot be
 * installed here). */
SLOTSYNC_EXPORT int slotsync_agent_run(const struct slotsync_agent_options *o, struct slotsync_error *err);

/* The health checks and the validation they decide (what the agent does at
 * start; slotsync validate runs it alone).  *reboot is set when the booted
 * slot was marked bad and a reboot is due. */
SLOTSYNC_EXPORT int slotsync_agent_validate(const struct slotsync_config *cfg, int *reboot, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
