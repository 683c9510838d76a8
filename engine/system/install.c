/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The whole install as one resumable state machine: see
 * include/slotsync/install.h and docs/install.md.  This file runs the steps
 * (verify, the hooks, assemble, verify-slot, migrate-data, switch) and drops
 * or hands on an install (abort, reboot requested); the records it keeps are
 * in install_state.c, what happens after the reboot in install_status.c. */
#include "slotsync/digest.h"
#include "slotsync/install.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "internal.h"
#include "parse.h"
#include "run.h"
#include "install_run.h"
#include "slotsync/assemble.h"
#include "slotsync/boot.h"
#include "slotsync/envelope.h"
#include "slotsync/fetch.h"
#include "slotsync/log.h"
#include "slotsync/migrate.h"
#include "slotsync/policy.h"
#include "slotsync/root.h"
#include "slotsync/slot.h"
#include "slotsync/features.h"
#include "slotsync/verity.h"
#include "clock.h"

/* ---- helpers for the steps ------------------------------------------------ */

/* Downloads url (at most max bytes) to path, atomically. */
int system_download(const struct slotsync_config *cfg, const char *url, uint64_t max, const char *path,
		    struct slotsync_error *err)
{
	struct slotsync_fetch_options fo = { 0 };

	fo.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
	fo.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
	fo.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
	fo.concurrency = 1;
	fo.max_rate_bps = cfg->max_rate;
	fo.min_rate_bps = cfg->min_rate;
	fo.stall_timeout_s = (long)cfg->stall_timeout;
	fo.max_attempts = 3; /* a small file: the caller retries later, with backoff */
	return slotsync_fetch_file(&fo, url, (size_t)max, path, NULL, NULL, NULL, err);
}

/* Copies from to `to` atomically, a block at a time (a bundle that embeds its
 * chunks may be far larger than memory): written to "<to>.part", made durable,
 * renamed over to, the folder made durable. */
static int copy_file(const char *from, const char *to, struct slotsync_error *err)
{
	char tmp[PATH_MAX];
	uint8_t *buf = malloc(1u << 20);
	int in = -1, out = -1, r = 0;
	ssize_t n;

	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	if (snprintf(tmp, sizeof(tmp), "%s.part", to) >= (int)sizeof(tmp)) {
		r = slotsync_error_set(err, -ENAMETOOLONG, "path too long: %s", to);
		goto out;
	}
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open %s", from);
		goto out;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
		goto out;
	}
	while ((n = io_read_full(in, buf, 1u << 20)) > 0)
		if ((r = io_write_full(out, buf, (size_t)n)) < 0)
			break;
	if (n < 0 && r == 0)
		r = slotsync_error_set_errno(err, (int)n, "cannot read %s", from);
	else if (r < 0)
		slotsync_error_set_errno(err, r, "cannot write %s", tmp);
	/* the copy is on disk before its name replaces the old file */
	if (r == 0 && fdatasync(out) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot write %s", tmp);
	if (r == 0 && rename(tmp, to) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot rename %s", tmp);
	if (r == 0)
		r = io_fsync_parent(to, err);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (r < 0 && out >= 0)
		unlink(tmp);
	free(buf);
	return r;
}

static void report(struct run_ctx *c)
{
	struct slotsync_install_progress p;

	if (!c->o->progress)
		return;
	p.step = c->rec->step;
	p.bytes_total = c->rec->bytes_total;
	p.bytes_done = c->rec->bytes_done;
	p.bytes_fetched = c->rec->bytes_fetched;
	p.bytes_from_seed = c->rec->bytes_from_seed;
	p.rate = c->rate;
	p.seconds = clock_now_s() - c->t0;
	c->o->progress(c->o->progress_ud, &p);
}

void system_install_on_assemble(void *ud, const struct slotsync_assemble_stats *st)
{
	struct run_ctx *c = ud;
	double t = clock_now_s();
	/* what is in the slot: written in this run, plus what earlier runs left (by chunk count) */
	uint64_t done = st->bytes_written + (st->chunks_total ? st->bytes_total * (st->chunks_already_done + st->chunks_rechecked) /
									   st->chunks_total
								 : 0);
	struct slotsync_error ignored = { 0 };

	if (done > st->bytes_total)
		done = st->bytes_total;
	if (t - c->rate_t >= 1.0) {
		double inst = (double)(st->bytes_fetched - c->rate_bytes) / (t - c->rate_t);
		c->rate = c->rate > 0 ? 0.7 * c->rate + 0.3 * inst : inst;
		c->rate_t = t;
		c->rate_bytes = (double)st->bytes_fetched;
	}
	if (c->image) {
		c->image->bytes_done = done;
		c->image->bytes_fetched = st->bytes_fetched;
		c->image->bytes_from_seed = st->bytes_from_seed;
	} else {
		c->rec->bytes_total = st->bytes_total;
		c->rec->bytes_done = done;
		c->rec->bytes_fetched = st->bytes_fetched + c->rec->index_bytes_fetched;
		c->rec->bytes_from_seed = st->bytes_from_seed;
		c->rec->delta_objects_skipped = st->delta_objects_skipped;
		snprintf(c->rec->delta_note, sizeof(c->rec->delta_note), "%s", st->delta_note);
	}
	if (t - c->last_save >= 2.0) {
		c->last_save = t;
		(void)system_record_save(c->cfg, c->rec, &ignored);
	}
	report(c);
}

static int record_header_uuid(void *ud, const char *uuid, struct slotsync_error *err)
{
	struct run_ctx *c = ud;

	if (uuid != c->rec->header_uuid)
		system_copy_str(c->rec->header_uuid, sizeof(c->rec->header_uuid), uuid);
	return system_record_save(c->cfg, c->rec, err);
}

static int record_data_uuid(void *ud, const char *uuid, struct slotsync_error *err)
{
	struct run_ctx *c = ud;

	if (uuid != c->rec->data_header_uuid)
		system_copy_str(c->rec->data_header_uuid, sizeof(c->rec->data_header_uuid), uuid);
	return system_record_save(c->cfg, c->rec, err);
}

static int open_target(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_slot_config *s = &c->cfg->slot[c->rec->target];
	struct slotsync_volume v = slotsync_slot_volume(s, 0);
	char journal[PATH_MAX];
	int formatted = 0, r;

	if (c->target.path[0])
		return 0;
	r = slotsync_volume_open_write(&v, &c->tpm, c->rec->header_uuid, record_header_uuid, c, &formatted, &c->target,
				       err);
	if (r < 0) {
		slotsync_error_prefix(err, "slot %s", s->name);
		return r;
	}
	if (formatted) {
		/* nothing the assembly journal says of this slot holds any more */
		system_state_path(c->cfg, "install.journal", journal);
		unlink(journal);
	}
	return 0;
}

/* Environment of the bundle's hooks (docs/install.md). */
static int run_bundle_hook(struct run_ctx *c, const char *kind, const char *name, struct slotsync_error *err)
{
	const struct slotsync_bundle_hook *h = slotsync_bundle_hook(c->bundle, name);
	char dir[PATH_MAX], path[PATH_MAX], what[400];
	char e_hook[64], e_version[300], e_compat[300], e_target[32], e_dev[PATH_MAX + 32], e_booted[32], e_state[PATH_MAX + 32],
		e_bundle[PATH_MAX + 32];
	const char *env[9];
	const char *argv[3] = { path, kind, NULL };
	int fd, r;

	if (!h)
		return slotsync_error_set(err, -ENOENT, "the bundle lacks its %s hook %s", kind, name);
	system_state_path(c->cfg, "hooks", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return slotsync_error_set_errno(err, -errno, "cannot create %s", dir);
	system_pathf(path, "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot write %s", path);
	r = io_write_full(fd, h->data, h->len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot write %s", path);
	snprintf(e_hook, sizeof(e_hook), "SLOTSYNC_HOOK=%s", kind);
	snprintf(e_version, sizeof(e_version), "SLOTSYNC_VERSION=%s", c->rec->version);
	snprintf(e_compat, sizeof(e_compat), "SLOTSYNC_COMPATIBLE=%s", c->bundle->manifest->compatible);
	snprintf(e_target, sizeof(e_target), "SLOTSYNC_TARGET_SLOT=%c", 'A' + c->rec->target);
	snprintf(e_dev, sizeof(e_dev), "SLOTSYNC_TARGET_DEVICE=%s", c->target.path);
	snprintf(e_booted, sizeof(e_booted), "SLOTSYNC_BOOTED_SLOT=%c", 'A' + c->booted);
	snprintf(e_state, sizeof(e_state), "SLOTSYNC_STATE_DIR=%s", c->cfg->state_dir);
	snprintf(e_bundle, sizeof(e_bundle), "SLOTSYNC_BUNDLE_SHA256=%s", c->rec->bundle_sha256);
	env[0] = e_hook, env[1] = e_version, env[2] = e_compat, env[3] = e_target, env[4] = e_dev, env[5] = e_booted;
	env[6] = e_state, env[7] = e_bundle, env[8] = NULL;
	snprintf(what, sizeof(what), "%s hook %s", kind, name);
	return run_program(what, argv, 0, env, 0, err);
}

/* ---- the steps -------------------------------------------------------------- */

/* Refuses an image larger than the target slot, before anything is written:
 * resuming would not make it fit.  A block device must hold the image (a luks2
 * volume holds less than its device, by its header: the assembly checks the
 * mapping again); a regular file grows to the image's size. */
static int check_slot_size(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_slot_config *s = &c->cfg->slot[c->rec->target];
	uint64_t image = c->bundle->manifest->image_size, size = 0;

	/* not a block device, or not there: the assemble step says what is wrong with it */
	if (system_block_size(s->device, &size) && size < image)
		return slotsync_error_set(err, -ENOSPC,
					  "slot %s (%s) holds %" PRIu64 " bytes, the image of version %s needs %" PRIu64
					  ": it does not fit, and this bundle cannot be installed on this device",
					  s->name, s->device, size, c->rec->version, image);
	return 0;
}

static int step_verify(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	struct slotsync_install_record *rec = c->rec;
	struct slotsync_policy pol = { 0 };
	struct slotsync_state st;
	struct slotsync_slot_record slots[2];
	char path[PATH_MAX], state[PATH_MAX], reason[512];
	uint8_t d[32];
	int r;

	system_state_path(cfg, "install.bundle", path);
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, path, 0, d, NULL, err);
	if (r < 0)
		return r;
	slotsync_digest_to_hex(d, rec->bundle_sha256);
	if (c->o->bundle_sha256 && memcmp(d, c->o->bundle_sha256, 32) != 0)
		return slotsync_error_set(err, -EBADMSG, "the bundle is not the one the channel pointer names (SHA-256 differs)");
	r = slotsync_bundle_open(path, cfg->keyring, &c->bundle, err);
	if (r < 0)
		return r;
	system_copy_str(rec->version, sizeof(rec->version), c->bundle->manifest->version);
	rec->security_version = c->bundle->manifest->security_version;
	rec->bytes_total = c->bundle->manifest->image_size;
	if (slotsync_install_release_failed(cfg, rec->bundle_sha256, NULL, reason, sizeof(reason)))
		return slotsync_error_set(err, -EPERM, "release %s failed on this device before (%s); it is not installed again",
					  rec->version, reason);
	system_state_path(cfg, "state.json", state);
	r = slotsync_policy_state_load(state, &st, err);
	if (r < 0)
		return r;
	r = slotsync_install_slot_records_load(cfg, slots, err);
	if (r < 0)
		return r;
	pol.compatible = cfg->compatible[0] ? cfg->compatible : NULL;
	/* the running release is what the booted slot holds */
	pol.installed_version = slots[c->booted].version[0] ? slots[c->booted].version : st.installed_version;
	pol.security_floor = st.security_floor;
	pol.allow_downgrade = cfg->allow_downgrade;
	pol.now = c->o->now ? c->o->now : time(NULL);
	if (!pol.compatible)
		return slotsync_error_set(err, -EINVAL, "%s: [system] compatible = is not set", cfg->path);
	r = slotsync_policy_check(c->bundle->manifest, &pol, err);
	/* a release with dm-verity is checked through it before the switch: a
	 * build that cannot check it refuses it before anything is written */
	if (r == 0 && c->bundle->manifest->verity && !SLOTSYNC_HAVE_VERITY)
		r = slotsync_error_set(err, -ENOTSUP,
				       "version %s has a dm-verity hash tree, and this build of slotsync cannot check it (it lacks libcryptsetup: build it with -DSLOTSYNC_VERITY=ON)",
				       c->bundle->manifest->version);
	if (r == 0)
		r = check_slot_size(c, err);
	if (r == 0)
		r = system_install_check_group(c, err);
	if (r == 0) {
		/* a device that measures its root boots verified roots only */
		struct slotsync_luks_tpm data_tpm;
		r = slotsync_root_data_tpm(cfg, c->bundle->manifest, &data_tpm, err);
	}
	if (r < 0)
		return r;
	system_state_path(cfg, "install.caibx", path);
	r = system_install_mirrors(c, err);
	if (r == 0 && c->bundle->index_detached)
		r = system_install_index_fetch(cfg, c->mirrors, c->bundle->manifest, c->booted, c->rec, path,
					       &c->index_unavailable, err);
	else if (r == 0)
		r = io_write_file_atomic(path, c->bundle->index, c->bundle->index_len, err);
	system_install_mirrors_record(c);
	return r < 0 ? r : system_install_image_indexes(c, err);
}

static int step_assemble(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_slot_config *act = &cfg->slot[c->booted];
	struct slotsync_assemble_options ao = { 0 };
	struct slotsync_assemble_stats st;
	struct slotsync_slot_record slots[2];
	struct slotsync_volume av = slotsync_slot_volume(act, 0);
	char index[PATH_MAX], journal[PATH_MAX], seed_index[PATH_MAX], record[PATH_MAX];
	const char *seeds[1], *seed_indexes[1] = { NULL };
	int r;

	c->missing = 0;
	r = system_slot_record_set(cfg, c->rec->target, "writing", NULL, err);
	if (r < 0)
		return r;
	/* the slot is about to hold no release the initramfs could mount */
	slotsync_root_record_path(cfg, c->rec->target, record);
	if (unlink(record) < 0 && errno != ENOENT)
		return slotsync_error_set_errno(err, -errno, "cannot remove %s", record);
	r = open_target(c, err);
	if (r < 0)
		return r;
	/* the active slot is a seed, through its index when the device kept it */
	r = slotsync_volume_open_read(&av, &c->tpm, &c->active, err);
	if (r < 0) {
		slotsync_error_prefix(err, "active slot %s", act->name);
		return r;
	}
	r = slotsync_install_slot_records_load(cfg, slots, err);
	if (r < 0)
		return r;
	system_pathf(seed_index, "%s/slot-%c.caibx", cfg->state_dir, 'A' + c->booted);
	if ((!strcmp(slots[c->booted].status, "good") || !strcmp(slots[c->booted].status, "installed")) &&
	    access(seed_index, R_OK) == 0)
		seed_indexes[0] = seed_index;
	seeds[0] = c->active.path;
	system_state_path(cfg, "install.caibx", index);
	system_state_path(cfg, "install.journal", journal);
	ao.index_path = index;
	ao.target = c->target.path;
	ao.journal_path = journal;
	ao.seeds = seeds;
	ao.seed_indexes = seed_indexes;
	ao.n_seeds = 1;
	/* delta objects: only those the signed manifest names */
	ao.signed_deltas = 1;
	ao.deltas = c->bundle->manifest->deltas;
	ao.n_deltas = c->bundle->manifest->n_deltas;
	r = system_install_assemble_from_stores(c, &ao, &st, err);
	if (r < 0)
		return r;
	c->rec->bytes_done = st.bytes_total;
	c->rec->bytes_fetched = st.bytes_fetched + c->rec->index_bytes_fetched;
	c->rec->bytes_from_seed = st.bytes_from_seed;
	c->rec->delta_objects_skipped = st.delta_objects_skipped;
	snprintf(c->rec->delta_note, sizeof(c->rec->delta_note), "%s", st.delta_note);
	return 0;
}

static int step_verify_slot(struct run_ctx *c, struct slotsync_error *err)
{
	uint8_t d[32];
	int r = open_target(c, err);

	/* -EBADMSG from this step means only the dm-verity verdict (final) */
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, c->target.path, c->bundle->manifest->image_size, d, NULL, err);
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	if (memcmp(d, c->bundle->manifest->image_sha256, 32) != 0) {
		char journal[PATH_MAX];
		system_state_path(c->cfg, "install.journal", journal);
		unlink(journal); /* the next try writes it all again */
		return slotsync_error_set(err, -EIO, "slot %c does not hold the image the manifest names (SHA-256 differs)",
					  'A' + c->rec->target);
	}
	if (c->bundle->manifest->verity) {
		/* the bytes are the signed ones; the tree must also prove them, as
		 * the boot will check them against the signed root hash */
		r = slotsync_verity_verify(c->target.path, c->bundle->manifest->verity, err);
		if (r < 0) {
			/* the caller logs it and keeps it in the install record */
			slotsync_error_prefix(err, "slot %c fails dm-verity", 'A' + c->rec->target);
			return r;
		}
		slotsync_log_info("slot %c passes dm-verity (root hash %s)", 'A' + c->rec->target,
				  c->bundle->manifest->verity->root_hash);
	}
	return 0;
}

static int step_migrate(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_slot_config *act = &cfg->slot[c->booted], *tgt = &cfg->slot[c->rec->target];
	struct slotsync_volume av = slotsync_slot_volume(act, 1), tv = slotsync_slot_volume(tgt, 1);
	struct slotsync_migrate_options mo = { 0 };
	struct slotsync_luks_tpm data_tpm;
	int formatted, r;

	if (!tgt->data[0])
		return 0;
	/* the new data key unseals only after the new root is measured (a key
	 * that unseals now is bound to this very root: kept) */
	r = slotsync_root_data_tpm(cfg, c->bundle->manifest, &data_tpm, err);
	if (r == 0)
		r = open_target(c, err);
	if (r == 0) {
		struct slotsync_luks_tpm active_tpm = slotsync_config_tpm_data(cfg);
		r = slotsync_volume_open_read(&av, &active_tpm, &c->data_active, err);
	}
	if (r == 0)
		r = slotsync_volume_open_write(&tv, &data_tpm, c->rec->data_header_uuid, record_data_uuid, c, &formatted,
					       &c->data_target, err);
	if (r < 0)
		return r;
	mo.from = c->data_active.path;
	mo.to = c->data_target.path;
	mo.image = c->target.path;
	return slotsync_migrate_data(&mo, err);
}

static int step_switch(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	char from[PATH_MAX], to[PATH_MAX];
	int r;

	/* what the slot holds, and its index for the next install's seed */
	system_state_path(cfg, "install.caibx", from);
	system_pathf(to, "%s/slot-%c.caibx", cfg->state_dir, 'A' + c->rec->target);
	r = copy_file(from, to, err);
	/* the signed release the initramfs checks before it mounts the slot */
	if (r == 0) {
		slotsync_root_record_path(cfg, c->rec->target, to);
		r = io_write_file_atomic(to, c->bundle->env->buf, c->bundle->env->len, err);
	}
	if (r == 0)
		r = system_slot_record_set(cfg, c->rec->target, "installed", c->rec, err);
	if (r < 0)
		return r;
	/* a run cut after the switch and before its record finds it made: once is enough */
	{
		struct slotsync_boot_state bs;
		int t = c->rec->target;
		if (slotsync_boot_load(&cfg->boot, &bs, err) == 0 && bs.slot[t].priority > bs.slot[1 - t].priority &&
		    !bs.slot[t].good && bs.slot[t].tries == cfg->boot_tries)
			return 0;
		memset(err, 0, sizeof(*err));
	}
	return slotsync_boot_switch(&cfg->boot, c->rec->target, cfg->boot_tries, err);
}

static void close_all(struct run_ctx *c)
{
	struct slotsync_volume_handle *h[] = { &c->data_target, &c->data_active, &c->target, &c->active };
	struct slotsync_error e = { 0 };

	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (slotsync_volume_close(h[i], &e) < 0)
			slotsync_log_error("%s", slotsync_error_message(&e));
}

/* An error that resuming cannot mend: the install fails for good. */
static int final_error(int step, int r)
{
	if (step == SLOTSYNC_STEP_VERIFY || step == SLOTSYNC_STEP_PRE_INSTALL || step == SLOTSYNC_STEP_POST_INSTALL ||
	    step == SLOTSYNC_STEP_MIGRATE_DATA)
		return r != -ENOMEM && r != -ENOSPC;
	/* the slot holds the signed bytes and they fail the signed dm-verity root:
	 * the release itself is wrong, and writing it again will not mend it */
	if (step == SLOTSYNC_STEP_VERIFY_SLOT)
		return r == -EBADMSG;
	return 0;
}

static int prepare_bundle(const struct slotsync_install_options *o, struct slotsync_install_record *old, int have_old,
			  struct slotsync_error *err)
{
	const struct slotsync_config *cfg = o->cfg;
	char path[PATH_MAX];
	int is_url = !strncmp(o->bundle, "http://", 7) || !strncmp(o->bundle, "https://", 8);
	uint8_t d[32];
	char h[65];

	system_state_path(cfg, "install.bundle", path);
	if (is_url && parse_url(o->bundle, cfg->allow_plain_http) < 0)
		return slotsync_error_set(err, -EPERM, "%s: %s", o->bundle, parse_url_problem(-EPERM));
	if (is_url) {
		/* resuming the same download: keep the bundle already fetched */
		if (have_old && !strcmp(old->source, o->bundle) && slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, path, 0, d, NULL, err) == 0) {
			slotsync_digest_to_hex(d, h);
			if (!strcmp(h, old->bundle_sha256))
				return 0;
		}
		memset(err, 0, sizeof(*err));
		return system_download(cfg, o->bundle, o->bundle_max ? o->bundle_max : 64u << 20, path, err);
	}
	return copy_file(o->bundle, path, err);
}

/* A message about the bundle's copy in the state folder names the bundle as
 * the user gave it instead: the copy is an implementation detail. */
static void error_name_source(struct slotsync_error *err, const char *copy, const char *source)
{
	char msg[sizeof(err->msg)];
	const char *at = strstr(err->msg, copy);

	if (!at || !source[0])
		return;
	snprintf(msg, sizeof(msg), "%.*s%s%s", (int)(at - err->msg), err->msg, source, at + strlen(copy));
	memcpy(err->msg, msg, sizeof(msg));
}

int slotsync_install(const struct slotsync_install_options *o, struct slotsync_install_record *rec,
		     struct slotsync_error *err)
{
	const struct slotsync_config *cfg = o->cfg;
	struct run_ctx c = { 0 };
	struct slotsync_install_record old;
	int lock, have_old, transient = 0, r = 0;
	uint8_t d[32];
	char h[65] = "", bundle_path[PATH_MAX];

	memset(rec, 0, sizeof(*rec));
	r = io_mkdir_p(cfg->state_dir, err);
	if (r < 0)
		return r;
	lock = system_lock(cfg, "install.lock", "another install", err);
	if (lock < 0)
		return lock;
	if (o->abort) {
		r = slotsync_install_abort(cfg, err);
		if (r < 0 || !o->bundle)
			goto out_unlock;
	}
	if (!o->bundle) {
		r = slotsync_error_set(err, -EINVAL, "no bundle given");
		goto out_unlock;
	}
	c.o = o;
	c.cfg = cfg;
	c.rec = rec;
	c.tpm = slotsync_config_tpm(cfg);
	c.t0 = c.rate_t = c.last_save = clock_now_s();
	r = slotsync_boot_booted(&cfg->boot, err);
	if (r < 0)
		goto out_unlock;
	c.booted = r;
	r = slotsync_install_record_load(cfg, &old, err);
	if (r < 0 && r != -ENOENT)
		goto out_unlock;
	have_old = r == 0 && old.step > SLOTSYNC_STEP_NONE && old.step < SLOTSYNC_STEP_VALIDATE;
	memset(err, 0, sizeof(*err));
	/* the same bundle as an unfinished install resumes it; another is refused */
	if (have_old) {
		int is_url = !strncmp(o->bundle, "http://", 7) || !strncmp(o->bundle, "https://", 8);
		char want[65] = "";
		if (!is_url && slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, o->bundle, 0, d, NULL, err) == 0)
			slotsync_digest_to_hex(d, h);
		memset(err, 0, sizeof(*err));
		/* a bundle named by its digest (a channel pointer) resumes only an
		 * install of that digest, not one of whatever the URL served before */
		if (o->bundle_sha256)
			slotsync_digest_to_hex(o->bundle_sha256, want);
		if ((want[0] && old.bundle_sha256[0] && strcmp(want, old.bundle_sha256)) ||
		    (is_url && strcmp(old.source, o->bundle)) || (!is_url && (strcmp(h, old.bundle_sha256) || !h[0]))) {
			r = slotsync_error_set(err, -EBUSY,
					       "an install of %s (version %s) is unfinished at step %s; run it again to resume it, or --abort it",
					       old.source, old.version[0] ? old.version : "?",
					       slotsync_install_step_name(old.step));
			goto out_unlock;
		}
		if (old.target == c.booted) {
			/* it switched and the new slot booted: only validation is left */
			*rec = old;
			r = 0;
			goto out_unlock;
		}
		*rec = old;
	} else {
		rec->step = SLOTSYNC_STEP_VERIFY;
		rec->target = 1 - c.booted;
		rec->started = time(NULL);
		if (strncmp(o->bundle, "http://", 7) && strncmp(o->bundle, "https://", 8) && realpath(o->bundle, bundle_path))
			system_copy_str(rec->source, sizeof(rec->source), bundle_path);
		else
			system_copy_str(rec->source, sizeof(rec->source), o->bundle);
	}
	rec->error[0] = '\0';
	system_state_path(cfg, "install.bundle", bundle_path);
	if (rec->step == SLOTSYNC_STEP_VERIFY) {
		r = prepare_bundle(o, &old, have_old, err);
		if (r < 0) {
			transient = 1; /* the bundle could not be had: try again later */
			goto out;
		}
	}
	/* every run verifies the bundle it works from */
	if (rec->step == SLOTSYNC_STEP_VERIFY) {
		double t = clock_now_s();
		report(&c);
		r = step_verify(&c, err);
		rec->seconds[SLOTSYNC_STEP_VERIFY] += clock_now_s() - t;
		if (r < 0) {
			transient = c.index_unavailable; /* as a bundle that could not be had */
			goto out;
		}
		rec->step = SLOTSYNC_STEP_PRE_INSTALL;
		r = system_record_save(cfg, rec, err);
		if (r < 0)
			goto out;
	} else {
		r = slotsync_bundle_open(bundle_path, cfg->keyring, &c.bundle, err);
		if (r == 0 && slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, bundle_path, 0, d, NULL, err) == 0) {
			slotsync_digest_to_hex(d, h);
			if (strcmp(h, rec->bundle_sha256))
				r = slotsync_error_set(err, -EBADMSG, "%s changed during the install", bundle_path);
		}
		if (r < 0)
			goto out;
	}
	while (rec->step < SLOTSYNC_STEP_REBOOT) {
		enum slotsync_install_step s = rec->step;
		double t = clock_now_s();
		report(&c);
		switch (s) {
		case SLOTSYNC_STEP_PRE_INSTALL:
			r = c.bundle->manifest->hook_pre_install
				    ? (open_target(&c, err) ?: run_bundle_hook(&c, "pre-install", c.bundle->manifest->hook_pre_install, err))
				    : 0;
			break;
		case SLOTSYNC_STEP_ASSEMBLE:
			r = step_assemble(&c, err);
			break;
		case SLOTSYNC_STEP_VERIFY_SLOT:
			r = step_verify_slot(&c, err);
			break;
		case SLOTSYNC_STEP_IMAGES:
			r = system_install_step_images(&c, err);
			break;
		case SLOTSYNC_STEP_MIGRATE_DATA:
			r = step_migrate(&c, err);
			break;
		case SLOTSYNC_STEP_POST_INSTALL:
			r = c.bundle->manifest->hook_post_install
				    ? (open_target(&c, err) ?: run_bundle_hook(&c, "post-install", c.bundle->manifest->hook_post_install, err))
				    : 0;
			break;
		case SLOTSYNC_STEP_SWITCH:
			close_all(&c); /* the new slot is closed before it is booted */
			r = step_switch(&c, err);
			break;
		default:
			r = slotsync_error_set(err, -EINVAL, "install journal at an unknown step");
			break;
		}
		rec->seconds[s] += clock_now_s() - t;
		if (r < 0) {
			if (s == SLOTSYNC_STEP_VERIFY_SLOT && r != -EBADMSG)
				rec->step = SLOTSYNC_STEP_ASSEMBLE; /* written again on the next run */
			goto out;
		}
		if (s == SLOTSYNC_STEP_ASSEMBLE || s == SLOTSYNC_STEP_IMAGES)
			rec->missing_runs = 0;
		rec->step = (enum slotsync_install_step)(s + 1);
		r = system_record_save(cfg, rec, err);
		if (r < 0)
			goto out;
	}
	report(&c);
out:
	if (r < 0) {
		int step = rec->step;
		int writing = step == SLOTSYNC_STEP_ASSEMBLE || step == SLOTSYNC_STEP_IMAGES;
		if (writing)
			rec->missing_runs = c.missing ? rec->missing_runs + 1 : 0;
		if (writing && c.missing && rec->missing_runs >= SLOTSYNC_INSTALL_MISSING_RUNS_MAX)
			/* the store lost what the release needs: asking again will not bring it back */
			slotsync_error_prefix(err, "chunks missing from the store in %u runs in a row; version %s cannot be installed",
					      rec->missing_runs, rec->version);
		slotsync_error_prefix(err, "%s", slotsync_install_step_name(step));
		system_copy_str(rec->error, sizeof(rec->error), slotsync_error_message(err));
		if (step == SLOTSYNC_STEP_VERIFY) {
			/* nothing was written: nothing to resume; the next try starts afresh
			 * (and may succeed, if only the bundle could not be had) */
			rec->step = SLOTSYNC_STEP_FAILED;
			rec->error_final = !transient;
			error_name_source(err, bundle_path, o->bundle);
			system_copy_str(rec->error, sizeof(rec->error), slotsync_error_message(err));
			if (!transient)
				unlink(bundle_path); /* a refused bundle is not kept */
		} else if (!transient && (final_error(step, r) ||
					  (writing && c.missing &&
					   rec->missing_runs >= SLOTSYNC_INSTALL_MISSING_RUNS_MAX))) {
			struct slotsync_error e2 = { 0 };
			rec->step = SLOTSYNC_STEP_FAILED;
			rec->error_final = 1;
			if (step > SLOTSYNC_STEP_PRE_INSTALL)
				(void)system_slot_record_set(cfg, rec->target, "bad", NULL, &e2);
			/* a release whose hooks refuse this device is not tried again */
			if (step > SLOTSYNC_STEP_VERIFY && system_release_failed_add(cfg, rec, rec->error, &e2) < 0)
				slotsync_log_error("%s", slotsync_error_message(&e2));
		}
		if (rec->source[0]) {
			struct slotsync_error e2 = { 0 };
			if (system_record_save(cfg, rec, &e2) < 0)
				slotsync_log_error("%s", slotsync_error_message(&e2));
		}
	}
	close_all(&c);
	slotsync_mirrors_free(c.mirrors);
	slotsync_bundle_free(c.bundle);
out_unlock:
	close(lock);
	return r;
}

int slotsync_install_abort(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	const char *files[] = { "install.journal", "install.caibx", "install.bundle", "install.bundle.part" };
	char path[PATH_MAX];
	int r = slotsync_install_record_load(cfg, &rec, err);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (rec.step >= SLOTSYNC_STEP_DONE)
		return 0;
	if (rec.step >= SLOTSYNC_STEP_REBOOT) {
		/* switched already: the running slot stays */
		int booted = slotsync_boot_booted(&cfg->boot, err);
		if (booted == rec.target)
			return slotsync_error_set(err, -EBUSY,
						  "the install of %s has switched and its slot is running; mark it good or bad instead",
						  rec.version);
		memset(err, 0, sizeof(*err));
		r = slotsync_boot_mark_bad(&cfg->boot, rec.target, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		system_state_path(cfg, files[i], path);
		unlink(path);
	}
	for (size_t i = 0; i < rec.n_images; i++) {
		char name[64];
		snprintf(name, sizeof(name), "install.%s.caibx", rec.images[i].name);
		system_state_path(cfg, name, path);
		unlink(path);
		snprintf(name, sizeof(name), "install.%s.journal", rec.images[i].name);
		system_state_path(cfg, name, path);
		unlink(path);
	}
	if (rec.step > SLOTSYNC_STEP_PRE_INSTALL)
		(void)system_slot_record_set(cfg, rec.target, "", NULL, err);
	rec.step = SLOTSYNC_STEP_FAILED;
	rec.error_final = 1;
	snprintf(rec.error, sizeof(rec.error), "aborted");
	return system_record_save(cfg, &rec, err);
}

int slotsync_install_reboot_requested(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	int r = slotsync_install_record_load(cfg, &rec, err);

	if (r < 0)
		return r;
	if (rec.step != SLOTSYNC_STEP_REBOOT)
		return 0;
	rec.step = SLOTSYNC_STEP_VALIDATE;
	return system_record_save(cfg, &rec, err);
}
