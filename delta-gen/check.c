/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen check: prove that a store holds only whole, correct chunks.
 *
 * Every file named <64 hex>.cacnk is decompressed (bounded by the chunk size
 * limit) and its digest compared with its name; chunks of casync stores may be
 * SHA-512/256, so without an index both digests are tried.  Leftover temp files of
 * a killed writer are counted.  --repair deletes bad chunks (the next make writes
 * them again) and temp files; run it when no make is writing to the store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "io.h"
#include "gen.h"
#include "slotsync/chunker.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "slotsync/store.h"
#include "store_write.h"

static int is_hex_name(const char *name, const char *dir)
{
	size_t len = strlen(name);

	if (len != 64 + strlen(SLOTSYNC_CHUNK_SUFFIX) || strcmp(name + 64, SLOTSYNC_CHUNK_SUFFIX) != 0)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return strncmp(name, dir, 4) == 0;
}

/* 1 if the chunk file is good, 0 if bad (reason logged), <0 on I/O error. */
static int check_chunk(int dirfd, const char *rel, const char *hex, const struct slotsync_index *idx, uint8_t *out,
		       uint8_t **in, size_t *in_cap, ZSTD_DCtx *dctx)
{
	uint8_t id[SLOTSYNC_DIGEST_BYTES], got[SLOTSYNC_DIGEST_BYTES];
	uint64_t size;
	ssize_t n;
	size_t dn;
	int fd, r;

	slotsync_digest_from_hex(hex, id);
	fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = io_fd_size(fd, &size);
	if (r < 0 || size > ZSTD_compressBound(SLOTSYNC_CHUNK_SIZE_LIMIT_MAX)) {
		close(fd);
		if (r < 0)
			return r;
		slotsync_log_error("chunk %s: file of %" PRIu64 " bytes is too large", rel, size);
		return 0;
	}
	if (*in_cap < size) {
		uint8_t *b = realloc(*in, size);
		if (!b) {
			close(fd);
			return -ENOMEM;
		}
		*in = b;
		*in_cap = size;
	}
	n = io_read_full(fd, *in, size);
	close(fd);
	if (n < 0)
		return (int)n;
	dn = ZSTD_decompressDCtx(dctx, out, SLOTSYNC_CHUNK_SIZE_LIMIT_MAX, *in, (size_t)n);
	if (ZSTD_isError(dn)) {
		slotsync_log_error("chunk %s: not a valid zstd frame of at most %u bytes: %s", rel,
				   SLOTSYNC_CHUNK_SIZE_LIMIT_MAX, ZSTD_getErrorName(dn));
		return 0;
	}
	for (int t = 0; t < 2; t++) {
		enum slotsync_digest_type type = t == 0 ? SLOTSYNC_DIGEST_SHA256 : SLOTSYNC_DIGEST_SHA512_256;
		if (idx && idx->digest != type)
			continue;
		if (slotsync_digest(type, out, dn, got) == 0 && memcmp(got, id, sizeof(id)) == 0)
			return 1;
	}
	slotsync_log_error("chunk %s: content does not match its name", rel);
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SLOTSYNC_DIGEST_BYTES);
}

int gen_check(const char *store, const char *index_path, int repair, struct gen_check_stats *stats,
	      struct slotsync_error *err)
{
	struct slotsync_index *idx = NULL;
	ZSTD_DCtx *dctx = NULL;
	uint8_t *out = NULL, *in = NULL;
	size_t in_cap = 0;
	DIR *top = NULL;
	struct dirent *de;
	int topfd = -1, r = 0;

	memset(stats, 0, sizeof(*stats));
	if (index_path) {
		r = slotsync_index_read_file(index_path, &idx, err);
		if (r < 0)
			return r;
	}
	topfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (topfd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open store %s", store);
		goto out;
	}
	top = fdopendir(dup(topfd));
	dctx = ZSTD_createDCtx();
	out = malloc(SLOTSYNC_CHUNK_SIZE_LIMIT_MAX);
	if (!top || !dctx || !out) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while ((de = readdir(top))) {
		DIR *sub;
		struct dirent *fe;
		int subfd;

		if (strlen(de->d_name) != 4 || strspn(de->d_name, "0123456789abcdef") != 4)
			continue;
		subfd = openat(topfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (subfd < 0)
			continue;
		sub = fdopendir(subfd);
		if (!sub) {
			close(subfd);
			continue;
		}
		while ((fe = readdir(sub))) {
			if (strncmp(fe->d_name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) == 0) {
				stats->temp_files++;
				if (repair)
					unlinkat(subfd, fe->d_name, 0);
				continue;
			}
			if (!is_hex_name(fe->d_name, de->d_name))
				continue;
			stats->chunks++;
			r = check_chunk(subfd, fe->d_name, fe->d_name, idx, out, &in, &in_cap, dctx);
			if (r < 0) {
				slotsync_error_set_errno(err, r, "cannot read chunk %s/%s", de->d_name, fe->d_name);
				closedir(sub);
				goto out;
			}
			if (r == 0) {
				stats->bad++;
				if (repair)
					unlinkat(subfd, fe->d_name, 0);
			}
		}
		closedir(sub);
	}
	r = 0;
	if (idx) {
		/* Every chunk the index names must be present (and was checked above). */
		uint8_t(*ids)[SLOTSYNC_DIGEST_BYTES] = malloc(idx->n_chunks * SLOTSYNC_DIGEST_BYTES + 1);
		if (!ids) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < idx->n_chunks; i++)
			memcpy(ids[i], idx->chunks[i].id, SLOTSYNC_DIGEST_BYTES);
		qsort(ids, idx->n_chunks, SLOTSYNC_DIGEST_BYTES, id_cmp);
		for (size_t i = 0; i < idx->n_chunks; i++) {
			char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];
			struct stat st;
			if (i > 0 && memcmp(ids[i], ids[i - 1], SLOTSYNC_DIGEST_BYTES) == 0)
				continue;
			slotsync_store_chunk_relpath(ids[i], rel);
			if (fstatat(topfd, rel, &st, 0) < 0) {
				stats->missing++;
				slotsync_log_error("chunk %s named by %s is missing", rel, index_path);
			}
		}
		free(ids);
	}
	if (stats->bad || stats->missing)
		r = slotsync_error_set(err, -EBADMSG, "store %s: %" PRIu64 " bad chunks%s, %" PRIu64 " missing chunks", store,
				       stats->bad, repair && stats->bad ? " (deleted)" : "", stats->missing);
out:
	if (top)
		closedir(top);
	if (topfd >= 0)
		close(topfd);
	ZSTD_freeDCtx(dctx);
	free(out);
	free(in);
	slotsync_index_free(idx);
	return r;
}
