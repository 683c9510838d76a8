/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen check: prove that a store holds only whole, correct chunks.
 *
 * Every file named <64 hex>.cacnk is decompressed (bounded by the chunk size
 * limit) and its digest compared with its name; chunks of casync stores may be
 * SHA-512/256, so without an index both digests are tried.  Leftover temp files of
 * a killed writer are counted.  --repair deletes bad chunks (the next make writes
 * them again) and temp files; run it when no make is writing to the store.
 *
 * Delta files too: an object (<4 hex>/<64 hex>.sdob) must have the SHA-256 of
 * its name, and a delta index (deltas/<base hex>/<new hex>.sdix) must load
 * through the library's parser (the one devices use) and name the base and new
 * index its path names.  --repair deletes bad ones: a device then falls back
 * to chunks, where a bad one would make it fail. */
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
#include "slotsync/delta.h"
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

static int is_object_name(const char *name, const char *dir)
{
	return strlen(name) == 64 + 5 && strcmp(name + 64, ".sdob") == 0 && strspn(name, "0123456789abcdef") == 64 &&
	       strncmp(name, dir, 4) == 0;
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

/* 1 if the delta object dir/name has the SHA-256 of its name, 0 if not
 * (logged), <0 on I/O error. */
static int check_object(const char *store, const char *dir, const char *name)
{
	uint8_t id[SLOTSYNC_DIGEST_BYTES], got[SLOTSYNC_DIGEST_BYTES];
	char path[4300];
	int r;

	snprintf(path, sizeof(path), "%s/%s/%.64s", store, dir, name);
	slotsync_digest_from_hex(path + strlen(path) - 64, id);
	snprintf(path, sizeof(path), "%s/%s/%s", store, dir, name);
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, path, 0, got, NULL, NULL);
	if (r < 0)
		return r;
	if (memcmp(got, id, sizeof(id)) == 0)
		return 1;
	slotsync_log_error("delta object %s/%s: content does not match its name", dir, name);
	return 0;
}

int gen_check_delta_index(int topfd, const char *rel, struct slotsync_delta_index **out, struct slotsync_error *err)
{
	uint8_t base[SLOTSYNC_DIGEST_BYTES], nw[SLOTSYNC_DIGEST_BYTES], *buf = NULL;
	const char *slash = strrchr(rel, '/');
	uint64_t size;
	ssize_t n;
	char bh[SLOTSYNC_DIGEST_HEX_BYTES] = "", nh[SLOTSYNC_DIGEST_HEX_BYTES] = "";
	int fd, r;

	*out = NULL;
	if (slash && slash - rel >= 64 && strlen(slash + 1) == 64 + 5) {
		memcpy(bh, slash - 64, 64);
		memcpy(nh, slash + 1, 64);
		bh[64] = nh[64] = '\0';
	}
	if (slotsync_digest_from_hex(bh, base) < 0 || slotsync_digest_from_hex(nh, nw) < 0)
		return slotsync_error_set(err, -EINVAL, "%s is not deltas/<base hex>/<new hex>.sdix", rel);
	fd = openat(topfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s", rel);
	r = io_fd_size(fd, &size);
	if (r == 0 && size > SLOTSYNC_DELTA_INDEX_MAX)
		r = slotsync_error_set(err, -EFBIG, "%s: %" PRIu64 " bytes, more than a delta index may be", rel, size);
	else if (r < 0)
		r = slotsync_error_set_errno(err, r, "cannot read %s", rel);
	if (r == 0 && !(buf = malloc(size ? size : 1)))
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
	if (r == 0 && (n = io_read_full(fd, buf, size)) != (ssize_t)size)
		r = slotsync_error_set_errno(err, n < 0 ? (int)n : -EIO, "cannot read %s", rel);
	close(fd);
	if (r == 0) {
		r = slotsync_delta_index_load(buf, size, out, err);
		if (r < 0)
			slotsync_error_prefix(err, "%s", rel);
	}
	free(buf);
	if (r == 0 && (memcmp((*out)->base_digest, base, sizeof(base)) != 0 ||
		       memcmp((*out)->new_digest, nw, sizeof(nw)) != 0)) {
		slotsync_delta_index_free(*out);
		*out = NULL;
		r = slotsync_error_set(err, -EBADMSG, "%s names other indexes than its path", rel);
	}
	return r;
}

/* Every deltas/<hex>/<hex>.sdix of the store, loaded and checked; one that
 * cannot be read (permissions, I/O) stops the check and is not removed. */
static int check_delta_indexes(int topfd, int repair, struct gen_check_stats *stats)
{
	DIR *top, *sub;
	struct dirent *de, *fe;
	int r, fd = openat(topfd, "deltas", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	top = fdopendir(fd);
	if (!top) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(top))) {
		int subfd;
		if (strlen(de->d_name) != 64 || strspn(de->d_name, "0123456789abcdef") != 64)
			continue;
		subfd = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (subfd < 0 || !(sub = fdopendir(subfd))) {
			if (subfd >= 0)
				close(subfd);
			continue;
		}
		while ((fe = readdir(sub))) {
			struct slotsync_error e = { 0 };
			struct slotsync_delta_index *d = NULL;
			char rel[200];
			size_t len = strlen(fe->d_name);
			if (len < 5 || strcmp(fe->d_name + len - 5, ".sdix") != 0)
				continue;
			snprintf(rel, sizeof(rel), "deltas/%s/%s", de->d_name, fe->d_name);
			stats->delta_indexes++;
			r = gen_check_delta_index(topfd, rel, &d, &e);
			slotsync_delta_index_free(d);
			if (r == -ENOENT || r == 0)
				continue;
			slotsync_log_error("delta index %s", slotsync_error_message(&e));
			if (r == -EACCES || r == -EPERM || r == -EIO || r == -ENOMEM) {
				/* not known to be bad: never removed */
				closedir(sub);
				closedir(top);
				return r;
			}
			stats->bad_delta_indexes++;
			if (repair)
				unlinkat(subfd, fe->d_name, 0);
		}
		closedir(sub);
	}
	closedir(top);
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
	r = store_dir_is_local(store, err);
	if (r < 0)
		goto out;
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
			if (is_object_name(fe->d_name, de->d_name)) {
				stats->objects++;
				r = check_object(store, de->d_name, fe->d_name);
				if (r < 0) {
					slotsync_error_set_errno(err, r, "cannot read delta object %s/%s", de->d_name,
								 fe->d_name);
					closedir(sub);
					goto out;
				}
				if (r == 0) {
					stats->bad_objects++;
					if (repair)
						unlinkat(subfd, fe->d_name, 0);
				}
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
	r = check_delta_indexes(topfd, repair, stats);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot read the delta indexes of store %s", store);
		goto out;
	}
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
	if (stats->bad || stats->missing || stats->bad_objects || stats->bad_delta_indexes)
		r = slotsync_error_set(err, -EBADMSG,
				       "store %s: %" PRIu64 " bad chunks, %" PRIu64 " bad delta objects, %" PRIu64
				       " bad delta indexes%s, %" PRIu64 " missing chunks",
				       store, stats->bad, stats->bad_objects, stats->bad_delta_indexes,
				       repair && (stats->bad || stats->bad_objects || stats->bad_delta_indexes) ? " (deleted)" : "",
				       stats->missing);
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

void gen_check_print(const struct gen_check_stats *st, int repair, FILE *f)
{
	fprintf(f,
		"check: %" PRIu64 " chunks, %" PRIu64 " bad, %" PRIu64 " missing, %" PRIu64 " temp files%s; %" PRIu64
		" delta objects, %" PRIu64 " bad; %" PRIu64 " delta indexes, %" PRIu64 " bad\n",
		st->chunks, st->bad, st->missing, st->temp_files, repair && st->temp_files ? " (removed)" : "", st->objects,
		st->bad_objects, st->delta_indexes, st->bad_delta_indexes);
}
