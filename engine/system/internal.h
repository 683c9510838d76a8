/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared inside engine/system/: the install (install.c, install_state.c,
 * install_status.c) and the agent (agent.c, agent_dbus.c). */
#ifndef SLOTSYNC_SYSTEM_INTERNAL_H
#define SLOTSYNC_SYSTEM_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "slotsync/agent.h"
#include "slotsync/config.h"
#include "slotsync/error.h"
#include "slotsync/install.h"

/* ---- helpers (install.c) ---------------------------------------------------- */

/* Downloads url (at most max bytes) to path, atomically, with the
 * configuration's TLS settings and rate cap (slotsync_fetch_file; a few
 * attempts only: the caller tries again later, with backoff). */
int system_download(const struct slotsync_config *cfg, const char *url, uint64_t max, const char *path,
		    struct slotsync_error *err);

/* ---- the detached index (install_index.c) ----------------------------------- */

/* A bundle made with --detach-index: the release's index, from the store, as
 * the index diff from the booted slot's index (STATE_DIR/slot-X.caibx) when
 * the manifest names one, else whole; either must hash to the signed digest.
 * Written to path atomically; rec gets index_from and index_bytes_fetched
 * (and bytes_fetched).  The stores are mirrors, each asked in turn.
 * *unavailable is set when the store could not give the
 * full index (a later run may succeed); a wrong index is not that. */
struct slotsync_manifest;
struct slotsync_mirrors;
int system_install_index_fetch(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			       const struct slotsync_manifest *m, int booted, struct slotsync_install_record *rec,
			       const char *path, int *unavailable, struct slotsync_error *err);

/* A further image's index (m's image im), from the bundle when it embeds it
 * (embedded_bundle: its path, or NULL), else from the stores: checked
 * against the signed size and digest and the image's size, written to path
 * atomically.  Bytes over the network are added to *fetched; *unavailable as
 * above. */
struct slotsync_manifest_image;
int system_install_image_index(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			       const struct slotsync_manifest *m,
			       const struct slotsync_manifest_image *im, const char *embedded_bundle,
			       uint64_t *fetched, const char *path, int *unavailable, struct slotsync_error *err);

/* ---- the state folder (install_state.c) ------------------------------------- */

/* A path made with fmt, or "" when it does not fit in PATH_MAX (the
 * configuration keeps the state folder's name short enough). */
__attribute__((format(printf, 2, 3))) void system_pathf(char out[PATH_MAX], const char *fmt, ...);

/* The file name in the state folder. */
void system_state_path(const struct slotsync_config *cfg, const char *name, char out[PATH_MAX]);

/* src (NULL: "") into dst[size], cut if it does not fit: only ever messages and
 * names that the records bound. */
void system_copy_str(char *dst, size_t size, const char *src);

/* A JSON object from a file (at most 1 MiB), or written atomically. */
struct json_object;
int system_json_load(const char *path, struct json_object **out, struct slotsync_error *err);
int system_json_save(const char *path, struct json_object *o, struct slotsync_error *err);

/* The install journal as JSON (install.json, and the install in status). */
struct json_object *system_record_json(const struct slotsync_install_record *rec);

/* Replaces install.json with rec (rec->updated set to now); safe to call from
 * the assembly's progress callback while the install thread saves too. */
int system_record_save(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
		       struct slotsync_error *err);

/* Sets slot's status in slots.json; with rec, also the release it now holds
 * (version, bundle digest, security version, when). */
int system_slot_record_set(const struct slotsync_config *cfg, int slot, const char *status,
			   const struct slotsync_install_record *rec, struct slotsync_error *err);

/* Remembers rec's release as failed here (failed.json), with the reason. */
int system_release_failed_add(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			      const char *reason, struct slotsync_error *err);

/* Device state after a good boot (state.json): the version that runs, the
 * security floor raised to rec's. */
int system_release_good(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			struct slotsync_error *err);

/* Takes the lock file name in the state folder (flock, with our pid in it):
 * its fd, or -EBUSY naming the holder ("another install is running (process N)"). */
int system_lock(const struct slotsync_config *cfg, const char *name, const char *holder, struct slotsync_error *err);

/* ---- after the reboot (install_status.c) ------------------------------------ */

/* Whether an install waits for validation (step reboot or validate): 1, with
 * its record and the booted slot; 0 if none does; < 0 on an error. */
int system_awaiting_validation(const struct slotsync_config *cfg, struct slotsync_install_record *rec, int *booted,
			       struct slotsync_error *err);

/* ---- the agent (agent.c, agent_dbus.c) -------------------------------------- */

struct sd_bus;

enum agent_job_kind { AGENT_JOB_POLL, AGENT_JOB_INSTALL };

/* The running agent.  The main thread runs the loop (agent.c: poll() on the
 * worker's eventfd, a signalfd for SIGTERM/SIGINT and the D-Bus connection,
 * with the next poll and the watchdog as timeouts); a poll and the install it
 * leads to run on a worker thread, which hands progress and its result back
 * through the eventfd. */
struct agent {
	const struct slotsync_agent_options *o;
	const struct slotsync_config *cfg;
	struct sd_bus *bus;                       /* NULL: not on D-Bus */
	int efd, sigfd;
	double poll_at;                           /* clock_now_s() of the next poll; INFINITY: none */
	double wd_at, wd_every;                   /* the watchdog's next ping and period; 0: none */
	int stop;                                 /* leave the loop */
	/* the worker */
	pthread_t worker;
	int busy;
	enum agent_job_kind job;
	char job_source[1024];
	pthread_mutex_t mu;
	struct slotsync_install_progress prog;   /* under mu */
	int have_result;                          /* under mu */
	int result_rc, result_reboot, result_installed;
	int result_final;                         /* the failure is for good: not resumable */
	char result_msg[1024];
	/* main thread */
	int failures;
	char operation[16];
	char last_error[1024];
	char last_result[1024];
	double last_emit;
	int exit_code;
};

/* Starts a poll, or an install of source, on the worker thread (the agent
 * must not be busy): 0, or a negative errno. */
int agent_start_job(struct agent *a, enum agent_job_kind kind, const char *source);

/* Connects to the bus the options name, offers the installer interface there
 * and attaches it to a->ev.  On an error the caller closes it again. */
int agent_dbus_open(struct agent *a, struct slotsync_error *err);
/* Flushes and drops the connection, if there is one. */
void agent_dbus_close(struct agent *a);
/* Tells the bus that the property prop changed (nothing without a bus). */
void agent_dbus_emit(struct agent *a, const char *prop);
/* Sends the Completed signal: the job's result (a positive errno, 0) and its message. */
void agent_dbus_completed(struct agent *a, int rc, const char *msg);
/* The connection's fd and the events and timeout (ms, -1: none) the loop
 * waits for; -1 without a bus. */
int agent_dbus_poll_fd(struct agent *a, short *events, int *timeout_ms);
/* Handles whatever the bus has ready (method calls, replies). */
void agent_dbus_process(struct agent *a);
/* sd_notify(state) under systemd; nothing elsewhere. */
void agent_notify(const char *state);
/* The service's watchdog period (WatchdogSec=) in µs; 0: none. */
uint64_t agent_watchdog_usec(void);

#endif
