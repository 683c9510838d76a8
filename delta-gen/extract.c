/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen extract: rebuild an image from its index, taking each chunk from a
 * seed image when one has it (checked before use) and from the store otherwise.
 *
 * A regular output file is built under a temporary name in the same folder,
 * fsync'd and renamed into place, so that OUT never holds a partial image under
 * its final name.  A block device is written in place and fsync'd. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "gen.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "slotsync/seed.h"
#include "slotsync/store.h"
#include "clock.h"

static int open_output(const char *out, char *tmp, size_t tmp_len, int *is_tmp, struct slotsync_error *err)
{
	struct stat st;
	int fd;

	if (stat(out, &st) == 0 && S_ISBLK(st.st_mode)) {
		fd = open(out, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return slotsync_error_set_errno(err, -errno, "cannot open %s", out);
		*is_tmp = 0;
		return fd;
	}
	if (snprintf(tmp, tmp_len, "%s.tmp-XXXXXX", out) >= (int)tmp_len)
		return slotsync_error_set(err, -ENAMETOOLONG, "path too long: %s", out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
	*is_tmp = 1;
	return fd;
}

int gen_extract(const char *store_dir, const char *const *seeds, const char *const *seed_indexes, int n_seeds,
		const char *index_path, const char *out,
		struct gen_extract_stats *stats, struct slotsync_error *err)
{
	struct slotsync_index *idx = NULL;
	struct slotsync_store *store = NULL;
	struct slotsync_seed_set *seedset = NULL;
	struct slotsync_chunk_decoder *dec = NULL;
	struct slotsync_chunker_params params;
	char tmp[PATH_MAX];
	uint8_t *buf = NULL;
	int fd = -1, is_tmp = 0, r;
	double t0 = clock_now_s();

	memset(stats, 0, sizeof(*stats));
	r = slotsync_index_read_file(index_path, &idx, err);
	if (r < 0)
		goto out;
	r = slotsync_store_open(store_dir, &store, err);
	if (r < 0)
		goto out;
	/* A seed without an index is chunked as the target was. */
	params.min_bytes = (uint32_t)idx->chunk_size_min;
	params.avg_bytes = (uint32_t)idx->chunk_size_avg;
	params.max_bytes = (uint32_t)idx->chunk_size_max;
	seedset = slotsync_seed_set_new(idx->digest, &params);
	dec = slotsync_chunk_decoder_new();
	buf = malloc(idx->chunk_size_max);
	if (!seedset || !dec || !buf) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n_seeds; i++) {
		if (seed_indexes[i])
			r = slotsync_seed_set_add(seedset, seeds[i], seed_indexes[i], err);
		else
			r = slotsync_seed_set_add_spec(seedset, seeds[i], err);
		if (r < 0)
			goto out;
	}
	fd = open_output(out, tmp, sizeof(tmp), &is_tmp, err);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	for (size_t i = 0; i < idx->n_chunks; i++) {
		size_t size = (size_t)slotsync_index_chunk_size(idx, i);
		uint64_t offset = slotsync_index_chunk_start(idx, i);
		const uint8_t *id = idx->chunks[i].id;
		struct slotsync_error seed_err = { 0 };

		r = slotsync_seed_set_read(seedset, id, size, buf, &seed_err);
		if (r == 0) {
			stats->chunks_from_seed++;
			stats->bytes_from_seed += size;
		} else {
			if (r != -ENOENT) {
				slotsync_log_warning("%s; taking the chunk from the store", slotsync_error_message(&seed_err));
				stats->seed_chunks_rejected++;
			}
			r = slotsync_store_read_chunk(store, dec, id, size, idx->digest, buf, err);
			if (r < 0) {
				slotsync_error_prefix(err, "chunk %zu (offset %" PRIu64 ")", i, offset);
				goto out;
			}
			stats->chunks_from_store++;
			stats->bytes_from_store += size;
		}
		r = io_pwrite_full(fd, buf, size, offset);
		if (r < 0) {
			slotsync_error_set_errno(err, r, "cannot write %s at offset %" PRIu64, is_tmp ? tmp : out, offset);
			goto out;
		}
		stats->chunks++;
	}
	if (is_tmp && ftruncate(fd, (off_t)slotsync_index_image_size(idx)) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot size %s", tmp);
		goto out;
	}
	/* The image must be durable before it takes its final name. */
	if (fsync(fd) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot fsync %s", is_tmp ? tmp : out);
		goto out;
	}
	if (is_tmp) {
		if (fchmod(fd, 0644) < 0 || rename(tmp, out) < 0) {
			r = slotsync_error_set_errno(err, -errno, "cannot rename %s to %s", tmp, out);
			goto out;
		}
		is_tmp = 0;
		r = io_fsync_parent(out, err);
	}
out:
	stats->seconds = clock_now_s() - t0;
	if (fd >= 0)
		close(fd);
	if (is_tmp)
		unlink(tmp);
	free(buf);
	slotsync_chunk_decoder_free(dec);
	slotsync_seed_set_free(seedset);
	slotsync_store_free(store);
	slotsync_index_free(idx);
	return r;
}
