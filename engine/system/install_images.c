/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install's work on the slot group and the stores (install_run.h): the
 * further images checked against the target group, their indexes fetched,
 * each written and proven byte-exact in the step "images"; and the assembly
 * from the stores as mirrors, which the main image's step uses too. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install_run.h"
#include "internal.h"
#include "io.h"
#include "parse.h"
#include "slotsync/digest.h"
#include "slotsync/fetch.h"
#include "slotsync/log.h"
#include "slotsync/manifest.h"

int system_block_size(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return 0;
	r = fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && io_fd_size(fd, size) == 0;
	close(fd);
	return r;
}

/* The slot group: the bundle must bring exactly the further images the
 * target slot's group has (a release made for another board layout is
 * refused), each fitting its volume; checked before anything is written. */
int system_install_check_group(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_slot_config *s = &c->cfg->slot[c->rec->target];
	const struct slotsync_manifest *m = c->bundle->manifest;

	for (size_t i = 0; i < s->n_images; i++)
		if (!slotsync_manifest_image(m, s->images[i].name))
			return slotsync_error_set(err, -EINVAL, "bundle %s has no image '%s', which slot %s's group needs",
						  m->version, s->images[i].name, s->name);
	for (size_t i = 0; i < m->n_images; i++) {
		const struct slotsync_slot_image *si = NULL;
		uint64_t size = 0;
		for (size_t k = 0; k < s->n_images && !si; k++)
			if (!strcmp(s->images[k].name, m->images[i].name))
				si = &s->images[k];
		if (!si)
			return slotsync_error_set(err, -EINVAL,
						  "bundle %s has an image '%s', which slot %s's group does not have (a release for another board layout?)",
						  m->version, m->images[i].name, s->name);
		if (system_block_size(si->device, &size) && size < m->images[i].size)
			return slotsync_error_set(err, -ENOSPC,
						  "image '%s' of version %s needs %" PRIu64 " bytes, and slot %s's volume %s holds %" PRIu64
						  ": it does not fit, and this bundle cannot be installed on this device",
						  m->images[i].name, m->version, m->images[i].size, s->name, si->device, size);
	}
	return 0;
}

/* The further images' indexes into the state folder (install.NAME.caibx),
 * and their entries in the install record. */
int system_install_image_indexes(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_manifest *m = c->bundle->manifest;
	char path[PATH_MAX], name[64], bundle[PATH_MAX];
	int r;

	system_state_path(c->cfg, "install.bundle", bundle);
	c->rec->n_images = 0;
	for (size_t i = 0; i < m->n_images; i++) {
		struct slotsync_install_image *im = &c->rec->images[c->rec->n_images++];
		memset(im, 0, sizeof(*im));
		system_copy_str(im->name, sizeof(im->name), m->images[i].name);
		im->bytes_total = m->images[i].size;
		snprintf(name, sizeof(name), "install.%s.caibx", m->images[i].name);
		system_state_path(c->cfg, name, path);
		r = system_install_mirrors(c, err);
		if (r == 0)
			r = system_install_image_index(c->cfg, c->mirrors, m, &m->images[i], c->bundle->n_embedded ? bundle : NULL,
					       &im->bytes_fetched, path, &c->index_unavailable, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int system_install_mirrors(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_manifest *m = c->bundle->manifest;
	int r;

	if (c->mirrors)
		return 0;
	r = slotsync_mirrors_new(&c->mirrors, err);
	for (int i = 0; r == 0 && i < cfg->n_stores; i++)
		r = slotsync_mirrors_add(c->mirrors, cfg->store[i], err);
	/* the config's stores were checked at load; the bundle's only now: one
	 * this device refuses is an error only when it has no store of its own */
	for (size_t i = 0; r == 0 && i < m->n_stores; i++) {
		int u = parse_url(m->stores[i], cfg->allow_plain_http);
		if (u < 0 && cfg->n_stores)
			slotsync_log_warning("the bundle's store %s is not used: %s", m->stores[i], parse_url_problem(u));
		else if (u < 0)
			r = slotsync_error_set(err, -EINVAL, "the bundle's store %s: %s", m->stores[i], parse_url_problem(u));
		else
			r = slotsync_mirrors_add(c->mirrors, m->stores[i], err);
	}
	if (r < 0) {
		slotsync_mirrors_free(c->mirrors);
		c->mirrors = NULL;
	}
	return r;
}

void system_install_mirrors_record(struct run_ctx *c)
{
	size_t n = slotsync_mirrors_count(c->mirrors);

	c->rec->n_mirrors = 0;
	for (size_t i = 0; i < n && i < SLOTSYNC_INSTALL_MIRRORS_MAX; i++) {
		const struct slotsync_mirror_stats *st = slotsync_mirrors_stats(c->mirrors, i);
		struct slotsync_install_mirror *im = &c->rec->mirrors[c->rec->n_mirrors++];
		system_copy_str(im->url, sizeof(im->url), st->url);
		im->bytes = st->bytes_received;
		im->objects = st->objects;
		im->objects_moved = st->objects_moved;
		im->connections = st->connections;
		system_copy_str(im->dropped, sizeof(im->dropped), st->dropped ? st->why : "");
	}
}

/* Runs the assembly ao describes (index, target, journal, seeds, deltas) from
 * the bundle's embedded chunks and the stores as mirrors (c->mirrors); each
 * object what one store lacks is asked of the next; c->missing when an object
 * was missing from every store. */
int system_install_assemble_from_stores(struct run_ctx *c, struct slotsync_assemble_options *ao,
					struct slotsync_assemble_stats *stp, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	struct slotsync_assemble_stats st;
	char bundle[PATH_MAX];
	size_t n_stores;
	int r;

	r = system_install_mirrors(c, err);
	if (r < 0)
		return r;
	n_stores = slotsync_mirrors_count(c->mirrors);
	/* a bundle with embedded chunks needs no store for them */
	if (c->bundle->n_embedded) {
		system_state_path(cfg, "install.bundle", bundle);
		ao->embedded_bundle = bundle;
	}
	if (!n_stores && !ao->embedded_bundle)
		return slotsync_error_set(err, -EINVAL, "no chunk store: neither %s ([update] store =) nor the bundle names one",
					  cfg->path);
	ao->fetch.mirrors = c->mirrors;
	ao->fetch.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
	ao->fetch.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
	ao->fetch.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
	ao->fetch.concurrency = cfg->concurrency;
	ao->fetch.max_rate_bps = cfg->max_rate;
	ao->fetch.min_rate_bps = cfg->min_rate;
	ao->fetch.stall_timeout_s = (long)cfg->stall_timeout;
	ao->progress = system_install_on_assemble;
	ao->progress_userdata = c;
	memset(&st, 0, sizeof(st));
	r = slotsync_assemble(ao, &st, err);
	if (r == -EEXIST) {
		/* a journal of another index or target: an earlier install's */
		slotsync_log_info("the assembly journal belongs to something else; starting it anew");
		memset(err, 0, sizeof(*err));
		ao->reset_journal = 1;
		r = slotsync_assemble(ao, &st, err);
		ao->reset_journal = 0;
	}
	system_install_mirrors_record(c);
	/* fetch.h: -ENOENT for an object no store has (HTTP 404 or 410, or 403
	 * among mirrors); a missing seed or target says "cannot open" instead */
	if (r == -ENOENT && strstr(slotsync_error_message(err), "(HTTP 4")) {
		c->missing = 1;
		if (n_stores > 1)
			slotsync_error_prefix(err, "missing from all %zu stores", n_stores);
	}
	*stp = st;
	return r;
}

/* One further image of the slot group into its volume of the target slot
 * (always raw), seeded from the active slot's volume of the same name when it
 * can be read, then checked byte-exact against the signed digest. */
static int write_image(struct run_ctx *c, struct slotsync_install_image *im, const struct slotsync_manifest_image *mi,
		       struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_slot_config *tgt = &cfg->slot[c->rec->target], *act = &cfg->slot[c->booted];
	const char *to = NULL, *seeds[1] = { NULL }, *seed_indexes[1] = { NULL };
	struct slotsync_assemble_options ao = { 0 };
	struct slotsync_assemble_stats st;
	char index[PATH_MAX], journal[PATH_MAX], name[64];
	uint8_t d[SLOTSYNC_DIGEST_BYTES];
	int r;

	for (size_t k = 0; k < tgt->n_images; k++)
		if (!strcmp(tgt->images[k].name, im->name))
			to = tgt->images[k].device;
	for (size_t k = 0; k < act->n_images; k++)
		if (!strcmp(act->images[k].name, im->name) && access(act->images[k].device, R_OK) == 0)
			seeds[0] = act->images[k].device;
	if (!to)
		return slotsync_error_set(err, -EINVAL, "slot %s's group has no image '%s'", tgt->name, im->name);
	snprintf(name, sizeof(name), "install.%s.caibx", im->name);
	system_state_path(cfg, name, index);
	snprintf(name, sizeof(name), "install.%s.journal", im->name);
	system_state_path(cfg, name, journal);
	ao.index_path = index;
	ao.target = to;
	ao.journal_path = journal;
	ao.seeds = seeds;
	ao.seed_indexes = seed_indexes;
	ao.n_seeds = seeds[0] ? 1 : 0;
	ao.signed_deltas = 1; /* and none named: a further image is small */
	c->image = im;
	r = system_install_assemble_from_stores(c, &ao, &st, err);
	c->image = NULL;
	if (r < 0) {
		slotsync_error_prefix(err, "image %s of slot %s (%s)", im->name, tgt->name, to);
		return r;
	}
	im->bytes_done = st.bytes_total;
	im->bytes_fetched = st.bytes_fetched;
	im->bytes_from_seed = st.bytes_from_seed;
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, to, mi->size, d, NULL, err);
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	if (memcmp(d, mi->sha256, SLOTSYNC_DIGEST_BYTES) != 0) {
		unlink(journal); /* the next try writes it all again */
		return slotsync_error_set(err, -EIO, "image %s of slot %s (%s) does not hold the image the manifest names (SHA-256 differs)",
					  im->name, tgt->name, to);
	}
	slotsync_log_info("image %s of slot %s: %" PRIu64 " bytes, %" PRIu64 " fetched, %" PRIu64 " from the seed",
			  im->name, tgt->name, mi->size, im->bytes_fetched, im->bytes_from_seed);
	return 0;
}

/* Every further image of the slot group, in name order; each one done is
 * recorded before the next begins, so that a resumed install starts with the
 * first not done. */
int system_install_step_images(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_manifest *m = c->bundle->manifest;
	int r;

	c->missing = 0;
	for (size_t i = 0; i < c->rec->n_images; i++) {
		struct slotsync_install_image *im = &c->rec->images[i];
		const struct slotsync_manifest_image *mi = slotsync_manifest_image(m, im->name);
		if (im->done)
			continue;
		if (!mi)
			return slotsync_error_set(err, -EINVAL, "the install record names image '%s', which bundle %s lacks",
						  im->name, m->version);
		r = write_image(c, im, mi, err);
		if (r < 0)
			return r;
		im->done = 1;
		r = system_record_save(c->cfg, c->rec, err);
		if (r < 0)
			return r;
	}
	return 0;
}