/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent: see include/slotsync/agent.h, docs/install.md and docs/dbus.md.
 *
 * Threads: the main thread runs an sd-event loop (D-Bus, the watchdog, the
 * poll timer, signals); a poll and the install it leads to run on a worker
 * thread, which hands progress and its result back through an eventfd.  This
 * file holds the validation at start, the poll, the worker and the loop; the
 * D-Bus interface is in agent_dbus.c.
 */
#include "slotsync/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <math.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "internal.h"
#include "run.h"
#include "slotsync/boot.h"
#include "slotsync/envelope.h"
#include "slotsync/install.h"
#include "slotsync/log.h"
#include "slotsync/policy.h"
#include "clock.h"

#define BACKOFF_MIN_S 5.0

static double jitter(double max_s)
{
	return max_s > 0 ? (double)arc4random_uniform((uint32_t)(max_s * 1000.0) + 1) / 1000.0 : 0;
}

/* agent.json: what the last poll found, for slotsync status. */
static void save_agent_state(const struct slotsync_config *cfg, const char *result, const char *error, double next_in)
{
	struct json_object *o = json_object_new_object();
	struct slotsync_error err = { 0 };
	char path[PATH_MAX];

	json_object_object_add(o, "last_poll", json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(o, "result", json_object_new_string(result ? result : ""));
	json_object_object_add(o, "error", json_object_new_string(error ? error : ""));
	if (next_in >= 0)
		json_object_object_add(o, "next_poll", json_object_new_int64((int64_t)time(NULL) + (int64_t)next_in));
	system_state_path(cfg, "agent.json", path);
	if (system_json_save(path, o, &err) < 0)
		slotsync_log_error("%s", slotsync_error_message(&err));
	json_object_put(o);
}

/* ---- health checks and validation ------------------------------------------ */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every executable of health-dir; 0 if all pass, else err names the first that failed. */
static int health_checks(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	DIR *d = opendir(cfg->health_dir);
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	int r = 0;

	if (!d) {
		if (errno == ENOENT) {
			slotsync_log_info("no health checks (%s does not exist)", cfg->health_dir);
			return 0;
		}
		return slotsync_error_set_errno(err, -errno, "cannot read %s", cfg->health_dir);
	}
	while ((e = readdir(d)) && n < 256) {
		char p[PATH_MAX];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", cfg->health_dir, e->d_name) >= (int)sizeof(p))
			continue;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char p[PATH_MAX], what[PATH_MAX + 32];
		const char *argv[2] = { p, NULL };
		if (r == 0 && snprintf(p, sizeof(p), "%s/%s", cfg->health_dir, names[i]) < (int)sizeof(p)) {
			snprintf(what, sizeof(what), "health check %s", names[i]);
			r = run_program(what, argv, 0, NULL, (unsigned)cfg->health_timeout, err);
			if (r == 0)
				slotsync_log_info("health check %s passed", names[i]);
		}
		free(names[i]);
	}
	return r;
}

/* Nothing to validate: a good slot runs. A bootloader that takes one of a
 * slot's boots at every boot, good or not (U-Boot's script counting RAUC's
 * way, Barebox's bootchooser), took one: give them back, as RAUC's mark-good
 * does at every boot, or after default-tries reboots the good slot has none
 * left and the bootloader falls back to the other. GRUB's script and the file
 * backend count only slots on trial: nothing to give back. */
static int give_back_boots(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct slotsync_boot_state bs;
	struct slotsync_error lerr = { 0 };
	int def = cfg->boot.default_tries > 0 ? cfg->boot.default_tries : SLOTSYNC_BOOT_TRIES_DEFAULT, booted;

	if (cfg->boot.backend != SLOTSYNC_BOOT_UBOOT && cfg->boot.backend != SLOTSYNC_BOOT_BAREBOX)
		return 0;
	/* no booted slot named, no boot state: nothing of ours to give back */
	booted = slotsync_boot_booted(&cfg->boot, &lerr);
	if (booted < 0 || slotsync_boot_load(&cfg->boot, &bs, &lerr) < 0)
		return 0;
	if (!bs.slot[booted].good || bs.slot[booted].priority <= 0 || bs.slot[booted].tries >= def)
		return 0;
	slotsync_log_info("slot %c is good and booted: its boots back (%d of %d were left)", 'A' + booted,
			  bs.slot[booted].tries, def);
	return slotsync_boot_mark_good(&cfg->boot, booted, err);
}

int slotsync_agent_validate(const struct slotsync_config *cfg, int *reboot, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	struct slotsync_error herr = { 0 };
	int booted, settled = 0, r;

	*reboot = 0;
	r = system_awaiting_validation(cfg, &rec, &booted, err);
	if (r == 0)
		return give_back_boots(cfg, err);
	if (r < 0)
		return r;
	if (booted != rec.target) {
		/* the old slot runs: settles a fallback if the new slot ran out of
		 * tries; the boots the fallback took from the good slot go back */
		r = slotsync_install_validate(cfg, 0, NULL, &settled, err);
		return r < 0 ? r : give_back_boots(cfg, err);
	}
	r = health_checks(cfg, &herr);
	if (r == 0) {
		r = slotsync_install_validate(cfg, 1, NULL, &settled, err);
		if (r == 0)
			slotsync_log_info("version %s in slot %c passed its health checks: marked good", rec.version,
					  'A' + rec.target);
		return r;
	}
	slotsync_log_error("version %s in slot %c failed its health checks: %s; marked bad", rec.version, 'A' + rec.target,
			   slotsync_error_message(&herr));
	r = slotsync_install_validate(cfg, 0, slotsync_error_message(&herr), &settled, err);
	if (r == 0)
		*reboot = 1;
	return r;
}

static int request_reboot(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	const char *argv[2] = { cfg->reboot_command, NULL };

	if (!strcmp(cfg->reboot_command, "never")) {
		slotsync_log_info("a reboot is due; reboot-command is \"never\": the operator reboots");
		return 0;
	}
	slotsync_log_info("rebooting: %s", cfg->reboot_command);
	return run_program("reboot-command", argv, 1, NULL, 120, err);
}

/* ---- one poll ----------------------------------------------------------- */

/* An absolute URL for ref, relative to base (the channel's URL). */
static void resolve_url(const char *base, const char *ref, char *out, size_t n)
{
	const char *slash;

	if (strstr(ref, "://")) {
		snprintf(out, n, "%s", ref);
		return;
	}
	if (ref[0] == '/') {
		const char *host = strstr(base, "://");
		const char *path = host ? strchr(host + 3, '/') : NULL;
		snprintf(out, n, "%.*s%s", path ? (int)(path - base) : (int)strlen(base), base, ref);
		return;
	}
	slash = strrchr(base, '/');
	snprintf(out, n, "%.*s/%s", slash ? (int)(slash - base) : (int)strlen(base), base, ref);
}

struct cycle_out {
	int installed;       /* a new slot was switched to: a reboot is due */
	int final;           /* a failure for good: running the cycle again fails the same way */
	char result[1024];   /* what happened, for status */
};

static void progress_cb(void *ud, const struct slotsync_install_progress *p);

/* Installs source (resuming an unfinished install of it). */
static int do_install(struct agent *a, const char *source, const uint8_t *sha, uint64_t max, struct cycle_out *co,
		      struct slotsync_error *err)
{
	struct slotsync_install_options io = { 0 };
	struct slotsync_install_record rec, old;
	struct slotsync_error e = { 0 };
	int r;

	io.cfg = a->cfg;
	io.bundle = source;
	io.bundle_sha256 = sha;
	io.bundle_max = max;
	io.progress = progress_cb;
	io.progress_ud = a;
	/* the channel moved on while an install of another release was unfinished */
	if (slotsync_install_record_load(a->cfg, &old, &e) == 0 && old.step > SLOTSYNC_STEP_NONE &&
	    old.step < SLOTSYNC_STEP_REBOOT && strcmp(old.source, source) != 0) {
		slotsync_log_info("dropping the unfinished install of %s for %s", old.source, source);
		io.abort = 1;
	}
	r = slotsync_install(&io, &rec, err);
	if (r < 0) {
		co->final = rec.error_final;
		return r;
	}
	if (rec.step == SLOTSYNC_STEP_REBOOT) {
		co->installed = 1;
		snprintf(co->result, sizeof(co->result), "installed %s into slot %c; reboot due", rec.version, 'A' + rec.target);
	} else {
		snprintf(co->result, sizeof(co->result), "install of %s at step %s", rec.version,
			 slotsync_install_step_name(rec.step));
	}
	return 0;
}

/* Drops an unfinished install (as slotsync install --abort does). */
static int drop_unfinished(struct agent *a, const struct slotsync_install_record *rec, const char *why,
			   struct slotsync_error *err)
{
	struct slotsync_install_options io = { 0 };
	struct slotsync_install_record out;

	slotsync_log_info("dropping the unfinished install of %s (at step %s): %s", rec->version[0] ? rec->version : rec->source,
			  slotsync_install_step_name(rec->step), why);
	io.cfg = a->cfg;
	io.abort = 1;
	return slotsync_install(&io, &out, err);
}

/* An install cut short, still to finish (before its switch). */
static int unfinished_install(const struct slotsync_config *cfg, struct slotsync_install_record *rec)
{
	struct slotsync_error e = { 0 };

	return slotsync_install_record_load(cfg, rec, &e) == 0 && rec->step > SLOTSYNC_STEP_NONE &&
	       rec->step < SLOTSYNC_STEP_REBOOT;
}

/* Polls the channel and does what its pointer says.  *reached: a valid, signed
 * pointer was had (else the caller may resume what is unfinished). */
static int poll_channel(struct agent *a, struct cycle_out *co, int *reached, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = a->cfg;
	struct slotsync_pointer *ptr = NULL;
	struct slotsync_signer_info signer;
	struct slotsync_slot_record slots[2];
	struct slotsync_install_record rec;
	struct slotsync_state st;
	struct slotsync_error e = { 0 };
	char path[PATH_MAX], state[PATH_MAX], url[2048], sha[65], reason[512];
	int booted, have_rec, r;

	*reached = 0;
	co->final = 1; /* a refused pointer is refused again; an unreachable channel is not */
	if (!cfg->channel[0])
		return slotsync_error_set(err, -EINVAL, "%s: [update] channel = is not set", cfg->path);
	system_state_path(cfg, "channel.pointer", path);
	r = system_download(cfg, cfg->channel, SLOTSYNC_POINTER_MAX_BYTES, path, err);
	if (r < 0) {
		co->final = 0;
		return r;
	}
	r = slotsync_pointer_open(path, cfg->keyring, &ptr, &signer, err);
	if (r < 0) {
		slotsync_error_prefix(err, "channel pointer");
		return r;
	}
	system_state_path(cfg, "state.json", state);
	r = slotsync_policy_state_load(state, &st, err);
	if (r == 0)
		r = slotsync_policy_check_pointer(ptr, st.pointer_version, time(NULL), cfg->compatible[0] ? cfg->compatible : NULL,
						  err);
	if (r < 0) {
		slotsync_error_prefix(err, "channel pointer refused");
		goto out;
	}
	if (ptr->version > st.pointer_version) {
		st.pointer_version = ptr->version; /* never accept an older one again */
		r = slotsync_policy_state_save(state, &st, err);
		if (r < 0)
			goto out;
	}
	slotsync_digest_to_hex(ptr->bundle_sha256, sha);
	*reached = 1;
	co->final = 0;
	/* the channel decides: an unfinished install of what it names resumes,
	 * one of anything else (a withdrawn release) is dropped */
	if (unfinished_install(cfg, &rec)) {
		if (!strcmp(rec.bundle_sha256, sha)) {
			slotsync_log_info("resuming the install of %s at step %s (channel pointer %" PRIu64 " still names it)",
					  rec.version[0] ? rec.version : rec.source, slotsync_install_step_name(rec.step), ptr->version);
			r = do_install(a, rec.source, ptr->bundle_sha256, ptr->bundle_size, co, err);
			goto out;
		}
		snprintf(reason, sizeof(reason), "channel pointer %" PRIu64 " names another bundle", ptr->version);
		r = drop_unfinished(a, &rec, reason, err);
		if (r < 0)
			goto out;
	}
	booted = slotsync_boot_booted(&cfg->boot, err);
	if (booted < 0) {
		r = booted;
		goto out;
	}
	r = slotsync_install_slot_records_load(cfg, slots, err);
	if (r < 0)
		goto out;
	if (!strcmp(slots[booted].bundle_sha256, sha)) {
		snprintf(co->result, sizeof(co->result), "up to date (pointer %" PRIu64 ": version %s runs)", ptr->version,
			 slots[booted].version);
		goto out;
	}
	if (slotsync_install_release_failed(cfg, sha, NULL, reason, sizeof(reason))) {
		snprintf(co->result, sizeof(co->result), "pointer %" PRIu64 " names a release that failed here before (%s); not installed again",
			 ptr->version, reason);
		goto out;
	}
	have_rec = slotsync_install_record_load(cfg, &rec, &e) == 0;
	if (have_rec && !strcmp(rec.bundle_sha256, sha) && rec.step == SLOTSYNC_STEP_FAILED && rec.error_final &&
	    strcmp(rec.error, "aborted") != 0) {
		/* failed for good before its switch (the bundle refused, the slot too small) */
		snprintf(co->result, sizeof(co->result), "pointer %" PRIu64 " names a bundle whose install failed for good (%.700s); not installed again",
			 ptr->version, rec.error);
		goto out;
	}
	/* an install that waits for its reboot (the channel's, or one made by hand
	 * with slotsync install) is left for the reboot: the next poll after it
	 * decides what comes next */
	if (have_rec && (rec.step == SLOTSYNC_STEP_REBOOT ||
			 (rec.step == SLOTSYNC_STEP_VALIDATE && !strcmp(rec.bundle_sha256, sha)))) {
		snprintf(co->result, sizeof(co->result), "version %s is installed in slot %c and waits for a reboot", rec.version,
			 'A' + rec.target);
		/* the channel's own release reboots as configured; another, installed
		 * by hand, waits for the reboot its operator chooses */
		co->installed = rec.step == SLOTSYNC_STEP_REBOOT && !strcmp(rec.bundle_sha256, sha);
		goto out;
	}
	resolve_url(cfg->channel, ptr->bundle_url, url, sizeof(url));
	slotsync_log_info("channel pointer %" PRIu64 ": installing %s", ptr->version, url);
	r = do_install(a, url, ptr->bundle_sha256, ptr->bundle_size, co, err);
out:
	slotsync_pointer_free(ptr);
	return r;
}

/* One cycle of the worker: poll the channel, which decides whether an
 * install cut short resumes; without a valid pointer (the network down, no
 * channel) such an install resumes all the same. */
static int cycle(struct agent *a, struct cycle_out *co, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	int reached, r;

	memset(co, 0, sizeof(*co));
	if (a->job == AGENT_JOB_INSTALL)
		return do_install(a, a->job_source, NULL, 0, co, err);
	r = poll_channel(a, co, &reached, err);
	if (r < 0 && !reached && unfinished_install(a->cfg, &rec)) {
		slotsync_log_info("no channel pointer (%s); resuming the install of %s at step %s", slotsync_error_message(err),
				  rec.version[0] ? rec.version : rec.source, slotsync_install_step_name(rec.step));
		memset(err, 0, sizeof(*err));
		memset(co, 0, sizeof(*co));
		return do_install(a, rec.source, NULL, 0, co, err);
	}
	return r;
}

/* ---- the worker ----------------------------------------------------------- */

static void wake(struct agent *a)
{
	uint64_t one = 1;

	if (a->efd >= 0)
		(void)!write(a->efd, &one, sizeof(one));
}

static void progress_cb(void *ud, const struct slotsync_install_progress *p)
{
	struct agent *a = ud;

	pthread_mutex_lock(&a->mu);
	a->prog = *p;
	pthread_mutex_unlock(&a->mu);
	if (a->o->progress)
		a->o->progress(a->o->progress_ud, p);
	wake(a);
}

static void *worker_main(void *arg)
{
	struct agent *a = arg;
	struct slotsync_error err = { 0 };
	struct cycle_out co;
	int r = cycle(a, &co, &err);

	pthread_mutex_lock(&a->mu);
	a->have_result = 1;
	a->result_rc = r;
	a->result_installed = co.installed;
	a->result_final = co.final;
	snprintf(a->result_msg, sizeof(a->result_msg), "%s", r < 0 ? slotsync_error_message(&err) : co.result);
	pthread_mutex_unlock(&a->mu);
	wake(a);
	return NULL;
}

/* ---- the loop ------------------------------------------------------------- */

static void set_operation(struct agent *a, const char *op)
{
	char status[32];

	snprintf(a->operation, sizeof(a->operation), "%s", op);
	agent_dbus_emit(a, "Operation");
	snprintf(status, sizeof(status), "STATUS=%s", op);
	agent_notify(status);
}

static void schedule_poll(struct agent *a, double in_s)
{
	const struct slotsync_config *cfg = a->cfg;
	time_t now = time(NULL), then;
	struct tm tm;

	if (cfg->window_start >= 0) {
		/* the poll lands in the window: if not, at its next opening (plus jitter) */
		then = now + (time_t)in_s;
		localtime_r(&then, &tm);
		if (!slotsync_config_in_window(cfg, tm.tm_hour * 60 + tm.tm_min)) {
			int m = tm.tm_hour * 60 + tm.tm_min;
			int wait_min = (cfg->window_start - m + 1440) % 1440;
			in_s += (double)wait_min * 60.0 - tm.tm_sec + jitter((double)cfg->poll_jitter);
		}
	}
	a->poll_at = clock_now_s() + in_s;
	slotsync_log_debug("next poll in %.1f s", in_s);
}

static double backoff(struct agent *a)
{
	double d = BACKOFF_MIN_S;

	for (int i = 1; i < a->failures && d < (double)a->cfg->poll_interval; i++)
		d *= 2;
	if (d > (double)a->cfg->poll_interval)
		d = (double)a->cfg->poll_interval;
	return d * 0.5 + jitter(d); /* 0.5 to 1.5 times: retries of a fleet spread out */
}

int agent_start_job(struct agent *a, enum agent_job_kind kind, const char *source)
{
	int r;

	a->job = kind;
	snprintf(a->job_source, sizeof(a->job_source), "%s", source ? source : "");
	memset(&a->prog, 0, sizeof(a->prog));
	r = pthread_create(&a->worker, NULL, worker_main, a);
	if (r != 0)
		return -r;
	a->busy = 1;
	set_operation(a, kind == AGENT_JOB_INSTALL ? "installing" : "polling");
	return 0;
}

static void on_poll_timer(struct agent *a)
{
	time_t now = time(NULL);
	struct tm tm;

	if (a->busy)
		return;
	localtime_r(&now, &tm);
	if (!slotsync_config_in_window(a->cfg, tm.tm_hour * 60 + tm.tm_min)) {
		schedule_poll(a, 0);
		return;
	}
	if (agent_start_job(a, AGENT_JOB_POLL, NULL) < 0)
		schedule_poll(a, backoff(a));
}

static void job_finished(struct agent *a)
{
	struct slotsync_error err = { 0 };
	int rc, installed, final;
	char msg[1024];

	pthread_join(a->worker, NULL);
	a->busy = 0;
	pthread_mutex_lock(&a->mu);
	a->have_result = 0;
	rc = a->result_rc;
	installed = a->result_installed;
	final = a->result_final;
	snprintf(msg, sizeof(msg), "%s", a->result_msg);
	pthread_mutex_unlock(&a->mu);
	if (rc < 0) {
		a->failures++;
		snprintf(a->last_error, sizeof(a->last_error), "%s", msg);
		slotsync_log_error("%s", msg);
	} else {
		a->failures = 0;
		a->last_error[0] = '\0';
		slotsync_log_info("%s", msg);
	}
	agent_dbus_emit(a, "LastError");
	agent_dbus_completed(a, rc, msg);
	set_operation(a, "idle");
	if (installed) {
		if (slotsync_install_reboot_requested(a->cfg, &err) < 0 || request_reboot(a->cfg, &err) < 0) {
			slotsync_log_error("%s", slotsync_error_message(&err));
			rc = -1;
		}
	}
	{
		double next = rc < 0 ? backoff(a) : (double)a->cfg->poll_interval + jitter((double)a->cfg->poll_jitter);
		save_agent_state(a->cfg, rc < 0 ? "error" : msg, rc < 0 ? msg : "", a->o->once ? -1 : next);
		if (a->o->once) {
			a->exit_code = rc >= 0 ? SLOTSYNC_EXIT_DONE : final ? SLOTSYNC_EXIT_FAILED : SLOTSYNC_EXIT_RESUMABLE;
			a->stop = 1;
		} else {
			schedule_poll(a, next);
		}
	}
}

static void on_wake(struct agent *a)
{
	uint64_t v;
	int done;
	enum slotsync_install_step step;
	double t = clock_now_s();

	(void)!read(a->efd, &v, sizeof(v));
	pthread_mutex_lock(&a->mu);
	done = a->have_result;
	step = a->prog.step;
	pthread_mutex_unlock(&a->mu);
	/* a poll that found something to install is an install now */
	if (!done && step != SLOTSYNC_STEP_NONE && !strcmp(a->operation, "polling"))
		set_operation(a, "installing");
	if (t - a->last_emit >= 0.5 || done) {
		a->last_emit = t;
		agent_dbus_emit(a, "Progress");
	}
	if (done)
		job_finished(a);
}

/* The main thread's loop: waits for the worker, a signal, the bus, the next
 * poll or the watchdog's next ping, whichever comes first, until a signal or
 * the end of a --once job stops it. */
static int run_loop(struct agent *a, struct slotsync_error *err)
{
	while (!a->stop) {
		struct pollfd p[3] = { { a->efd, POLLIN, 0 }, { a->sigfd, POLLIN, 0 }, { -1, 0, 0 } };
		double now = clock_now_s(), next = a->poll_at;
		int timeout_ms = -1, bus_ms = -1;
		short bus_events = 0;

		if (a->wd_every > 0 && a->wd_at < next)
			next = a->wd_at;
		if (next != INFINITY)
			timeout_ms = next <= now ? 0 : next - now > 3600.0 ? 3600000 : (int)((next - now) * 1000.0) + 1;
		p[2].fd = agent_dbus_poll_fd(a, &bus_events, &bus_ms);
		p[2].events = bus_events;
		if (bus_ms >= 0 && (timeout_ms < 0 || bus_ms < timeout_ms))
			timeout_ms = bus_ms;
		if (poll(p, p[2].fd >= 0 ? 3 : 2, timeout_ms) < 0 && errno != EINTR)
			return slotsync_error_set_errno(err, -errno, "the agent's loop failed");
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				slotsync_log_info("signal %u: stopping", si.ssi_signo);
			break;
		}
		if (p[0].revents & POLLIN)
			on_wake(a);
		if (p[2].fd >= 0)
			agent_dbus_process(a);
		now = clock_now_s();
		if (a->wd_every > 0 && now >= a->wd_at) {
			agent_notify("WATCHDOG=1");
			a->wd_at = now + a->wd_every;
		}
		if (!a->stop && now >= a->poll_at) {
			a->poll_at = INFINITY;
			on_poll_timer(a);
		}
	}
	return 0;
}

int slotsync_agent_run(const struct slotsync_agent_options *o, struct slotsync_error *err)
{
	struct agent a = { 0 };
	sigset_t ss;
	uint64_t wd;
	int lock, reboot = 0, r;

	a.o = o;
	a.cfg = o->cfg;
	a.efd = a.sigfd = -1;
	a.poll_at = INFINITY;
	pthread_mutex_init(&a.mu, NULL);
	snprintf(a.operation, sizeof(a.operation), "idle");
	r = io_mkdir_p(o->cfg->state_dir, err);
	if (r < 0)
		return r;
	lock = system_lock(o->cfg, "agent.lock", "another slotsync agent", err);
	if (lock < 0)
		return lock;
	slotsync_log_info("agent started (state in %s)", o->cfg->state_dir);
	/* what the last boot left */
	r = slotsync_agent_validate(o->cfg, &reboot, err);
	if (r < 0) {
		slotsync_log_error("validation: %s", slotsync_error_message(err));
		memset(err, 0, sizeof(*err));
	}
	if (reboot) {
		save_agent_state(o->cfg, "the booted slot failed its health checks: rebooting to the other", "", -1);
		r = request_reboot(o->cfg, err);
		close(lock);
		return r;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	a.sigfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	a.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a.efd < 0 || a.sigfd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot set up the agent's loop");
		goto out;
	}
	if (o->dbus) {
		/* D-Bus is an interface to the agent, not a part of updating: without
		 * a bus the device still updates itself */
		r = agent_dbus_open(&a, err);
		if (r < 0) {
			slotsync_log_warning("%s; going on without D-Bus", slotsync_error_message(err));
			memset(err, 0, sizeof(*err));
			agent_dbus_close(&a);
		}
	}
	wd = agent_watchdog_usec();
	if (wd > 0) {
		/* ping at half the period, as systemd recommends */
		a.wd_every = (double)wd / 2e6;
		a.wd_at = clock_now_s() + a.wd_every;
	}
	/* the first poll: at once when asked for one, or with an install to finish; else after a random delay */
	{
		struct slotsync_install_record rec;
		struct slotsync_error e = { 0 };
		int unfinished = slotsync_install_record_load(o->cfg, &rec, &e) == 0 && rec.step > SLOTSYNC_STEP_NONE &&
				 rec.step < SLOTSYNC_STEP_REBOOT;
		schedule_poll(&a, o->once || unfinished ? 0 : jitter((double)o->cfg->poll_jitter));
	}
	agent_notify("READY=1\nSTATUS=idle");
	r = run_loop(&a, err);
	if (r < 0)
		goto out;
	agent_notify("STOPPING=1");
	if (a.busy) {
		/* stopped during an install: it resumes at the next start */
		slotsync_log_info("stopping; the install resumes at the next start");
		close(lock);
		_exit(0);
	}
	r = o->once && a.exit_code ? slotsync_error_set(err, a.exit_code == SLOTSYNC_EXIT_RESUMABLE ? -EAGAIN : -EIO, "%s",
							 a.last_error)
				   : 0;
out:
	agent_dbus_close(&a);
	if (a.efd >= 0)
		close(a.efd);
	if (a.sigfd >= 0)
		close(a.sigfd);
	close(lock);
	return r;
}
