/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install's detached index (slotsync-gen bundle --detach-index): the
 * bundle names the release's index by digest and size and the store holds it.
 * A device that kept the index of its booted slot fetches the index diff from
 * it (slotsync/index.h) when the signed manifest names one, rebuilds the index
 * and checks it against the signed digest; otherwise, or if anything about the
 * diff fails (a warning), it fetches the full index, which must have the
 * signed size and digest.  The bytes fetched are counted in the install's. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "io.h"
#include "parse.h"
#include "slotsync/digest.h"
#include "slotsync/envelope.h"
#include "slotsync/fetch.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "slotsync/store.h"

/* The fetch options of the install's stores, as mirrors: 0, or -ENOENT when
 * there is no store. */
static int store_fetch_options(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			       struct slotsync_fetch_options *fo)
{
	if (!slotsync_mirrors_count(mirrors))
		return -ENOENT;
	memset(fo, 0, sizeof(*fo));
	fo->mirrors = mirrors;
	fo->ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
	fo->client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
	fo->client_key = cfg->client_key[0] ? cfg->client_key : NULL;
	fo->max_rate_bps = cfg->max_rate;
	fo->min_rate_bps = cfg->min_rate;
	fo->stall_timeout_s = (long)cfg->stall_timeout;
	return 0;
}

/* The index diff from the booted slot's index, when the signed manifest names
 * one for it: the rebuilt index, checked against the signed digest, into
 * *out.  Any fault is a warning: the caller then fetches the full index. */
static int fetch_index_diff(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			    const struct slotsync_manifest *m, int booted, struct slotsync_install_record *rec, size_t max,
			    uint8_t **out, size_t *out_len)
{
	struct slotsync_error e = { 0 };
	struct slotsync_index *base = NULL;
	struct slotsync_fetch_options fo;
	char base_path[PATH_MAX], rel[200];
	uint8_t bd[SLOTSYNC_DIGEST_BYTES] = { 0 }, *diff = NULL;
	const struct slotsync_manifest_delta *want = NULL;
	size_t len = 0;
	int r;

	system_pathf(base_path, "%s/slot-%c.caibx", cfg->state_dir, 'A' + booted);
	if (access(base_path, R_OK) != 0)
		return -ENOENT;
	r = slotsync_index_read_file(base_path, &base, &e);
	if (r == 0)
		r = slotsync_index_digest(base, bd, &e);
	for (size_t i = 0; r == 0 && i < m->n_deltas && !want; i++)
		if (m->deltas[i].has_index && !memcmp(m->deltas[i].base, bd, SLOTSYNC_DIGEST_BYTES))
			want = &m->deltas[i];
	if (r == 0 && !want) {
		slotsync_index_free(base);
		slotsync_log_info("the release names no index diff for this device's base index: fetching the full index");
		return -ENOENT;
	}
	if (r == 0 && want->index_size > max)
		r = slotsync_error_set(&e, -EFBIG, "it is %" PRIu64 " bytes, over the limit of %zu", want->index_size, max);
	slotsync_index_diff_path(bd, m->index_sha256, rel, sizeof(rel));
	/* the stores are mirrors: what one lacks is asked of the next */
	if (r == 0 && store_fetch_options(cfg, mirrors, &fo) < 0)
		r = slotsync_error_set(&e, -ENOENT, "there is no store to fetch it from");
	if (r == 0) {
		struct slotsync_fetch_stats fs = { 0 };
		/* a mirror that serves a wrong one is dropped, the diff asked of the next */
		r = slotsync_fetch_file_sha256(&fo, rel, max, want->index_size, want->index_sha256, &diff, &len, &fs, &e);
		rec->index_bytes_fetched += fs.bytes_received;
	}
	if (r == 0)
		r = slotsync_index_diff_apply(base, bd, m->index_sha256, diff, len, max, out, out_len, &e);
	if (r < 0)
		slotsync_log_warning("index diff %s not used: %s; fetching the full index", rel, slotsync_error_message(&e));
	free(diff);
	slotsync_index_free(base);
	return r;
}

int system_install_index_fetch(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			       const struct slotsync_manifest *m, int booted, struct slotsync_install_record *rec,
			       const char *path, int *unavailable, struct slotsync_error *err)
{
	struct slotsync_fetch_options fo;
	size_t max = m->index_size < SLOTSYNC_BUNDLE_MAX_BYTES ? (size_t)m->index_size : SLOTSYNC_BUNDLE_MAX_BYTES;
	char rel[200], hex[SLOTSYNC_DIGEST_HEX_BYTES];
	uint8_t *idx = NULL;
	size_t len = 0;
	int r;

	rec->index_bytes_fetched = 0;
	if (fetch_index_diff(cfg, mirrors, m, booted, rec, max, &idx, &len) == 0) {
		snprintf(rec->index_from, sizeof(rec->index_from), "diff");
	} else {
		snprintf(rel, sizeof(rel), "indexes/%s.caibx", slotsync_digest_to_hex(m->index_sha256, hex));
		struct slotsync_fetch_stats fs = { 0 };
		if (store_fetch_options(cfg, mirrors, &fo) < 0)
			return slotsync_error_set(err, -EINVAL, "the bundle's index is detached, and there is no store to fetch it from");
		/* a mirror that serves a wrong one is dropped, the index asked of the next */
		r = slotsync_fetch_file_sha256(&fo, rel, max, m->index_size, m->index_sha256, &idx, &len, &fs, err);
		rec->index_bytes_fetched += fs.bytes_received;
		if (r < 0) {
			/* the store could not be reached: try again later; a wrong
			 * index from every mirror is not waited for */
			*unavailable = r != -EINVAL && r != -EFBIG && r != -EBADMSG;
			slotsync_error_prefix(err, "the release's index");
			return r;
		}
		snprintf(rec->index_from, sizeof(rec->index_from), "full");
	}
	rec->bytes_fetched = rec->index_bytes_fetched;
	slotsync_log_info("the release's index: %s, %" PRIu64 " bytes fetched",
			  !strcmp(rec->index_from, "diff") ? "rebuilt from the index diff" : "fetched whole",
			  rec->index_bytes_fetched);
	r = io_write_file_atomic(path, idx, len, err);
	free(idx);
	return r;
}

/* A further image's index (docs/format.md, "Slot groups"): from the bundle
 * when it embeds it (a chunk frame named by the index's SHA-256), else from
 * the store's indexes/<hex>.caibx; either must have the signed size and
 * SHA-256 and describe the image's signed size. */
int system_install_image_index(const struct slotsync_config *cfg, struct slotsync_mirrors *mirrors,
			       const struct slotsync_manifest *m,
			       const struct slotsync_manifest_image *im, const char *embedded_bundle,
			       uint64_t *fetched, const char *path, int *unavailable, struct slotsync_error *err)
{
	struct slotsync_fetch_options fo;
	struct slotsync_index *idx = NULL;
	char rel[200], hex[SLOTSYNC_DIGEST_HEX_BYTES];
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = -ENOENT;

	if (im->index_size > SLOTSYNC_BUNDLE_MAX_BYTES)
		return slotsync_error_set(err, -EFBIG, "the index of image %s is %" PRIu64 " bytes, over the limit of %u",
					  im->name, im->index_size, SLOTSYNC_BUNDLE_MAX_BYTES);
	if (embedded_bundle) {
		struct slotsync_embedded *emb = NULL;
		struct slotsync_chunk_decoder *dec = NULL;
		size_t cap = slotsync_chunk_compressed_bound((size_t)im->index_size), flen = 0;
		uint8_t *frame = malloc(cap);
		struct slotsync_error e = { 0 };

		buf = malloc((size_t)im->index_size);
		dec = slotsync_chunk_decoder_new();
		if (!frame || !buf || !dec)
			r = slotsync_error_set(&e, -ENOMEM, "out of memory");
		else if ((r = slotsync_embedded_open(embedded_bundle, &emb, &e)) == 0 &&
			 (r = emb ? slotsync_embedded_read(emb, im->index_sha256, frame, cap, &flen, &e) : -ENOENT) == 0)
			r = slotsync_chunk_decode(dec, frame, flen, buf, (size_t)im->index_size, SLOTSYNC_DIGEST_SHA256,
						  im->index_sha256, &e);
		if (r == 0)
			len = (size_t)im->index_size;
		else if (r != -ENOENT && e.msg[0])
			slotsync_log_warning("the bundle's index of image %s not used: %s", im->name, slotsync_error_message(&e));
		free(frame);
		slotsync_chunk_decoder_free(dec);
		slotsync_embedded_free(emb);
		if (r == -ENOMEM) {
			free(buf);
			*err = e;
			return r;
		}
		if (r < 0) {
			free(buf);
			buf = NULL;
		}
	}
	snprintf(rel, sizeof(rel), "indexes/%s.caibx", slotsync_digest_to_hex(im->index_sha256, hex));
	if (!buf) {
		struct slotsync_fetch_stats fs = { 0 };
		if (store_fetch_options(cfg, mirrors, &fo) < 0)
			return slotsync_error_set(err, -EINVAL,
						  "the index of image %s is in the store, and there is no store to fetch it from",
						  im->name);
		r = slotsync_fetch_file_sha256(&fo, rel, SLOTSYNC_BUNDLE_MAX_BYTES, im->index_size, im->index_sha256, &buf,
					       &len, &fs, err);
		*fetched += fs.bytes_received;
	}
	if (r < 0) {
		*unavailable = r != -EINVAL && r != -EFBIG && r != -EBADMSG;
		slotsync_error_prefix(err, "the index of image %s", im->name);
		free(buf);
		return r;
	}
	/* its size and SHA-256 were checked where it came from: by the
	 * decoder for the bundle's frame, by the fetch for the store's file */
	if ((r = slotsync_index_parse(buf, len, &idx, err)) < 0)
		slotsync_error_prefix(err, "the index of image %s", im->name);
	else if (slotsync_index_image_size(idx) != im->size)
		r = slotsync_error_set(err, -EBADMSG, "the index of image %s describes %" PRIu64 " bytes, the manifest %" PRIu64,
				       im->name, slotsync_index_image_size(idx), im->size);
	if (r == 0)
		r = io_write_file_atomic(path, buf, len, err);
	slotsync_index_free(idx);
	free(buf);
	return r;
}
