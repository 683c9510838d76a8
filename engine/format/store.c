/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunk store, read side: layout, bounded zstd decoding, digest checks. */
#include "slotsync/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "io.h"

struct slotsync_chunk_decoder {
	ZSTD_DCtx *dctx;
	uint8_t *buf;  /* compressed bytes read from a store file */
	size_t cap;
};

struct slotsync_store {
	char *path;
	int dirfd;
};

void slotsync_store_chunk_relpath(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char buf[SLOTSYNC_CHUNK_RELPATH_BYTES])
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];

	slotsync_digest_to_hex(id, hex);
	memcpy(buf, hex, 4);
	buf[4] = '/';
	memcpy(buf + 5, hex, 64);
	memcpy(buf + 69, SLOTSYNC_CHUNK_SUFFIX, sizeof(SLOTSYNC_CHUNK_SUFFIX));
}

struct slotsync_chunk_decoder *slotsync_chunk_decoder_new(void)
{
	struct slotsync_chunk_decoder *dec = calloc(1, sizeof(*dec));

	if (!dec)
		return NULL;
	dec->dctx = ZSTD_createDCtx();
	if (!dec->dctx) {
		free(dec);
		return NULL;
	}
	return dec;
}

void slotsync_chunk_decoder_free(struct slotsync_chunk_decoder *dec)
{
	if (!dec)
		return;
	ZSTD_freeDCtx(dec->dctx);
	free(dec->buf);
	free(dec);
}

size_t slotsync_chunk_compressed_bound(size_t size)
{
	return ZSTD_compressBound(size) + 64;
}

int slotsync_chunk_verify(const void *buf, size_t len, enum slotsync_digest_type digest,
			  const uint8_t id[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	uint8_t got[SLOTSYNC_DIGEST_BYTES];
	char want_hex[SLOTSYNC_DIGEST_HEX_BYTES], got_hex[SLOTSYNC_DIGEST_HEX_BYTES];
	int r;

	r = slotsync_digest(digest, buf, len, got);
	if (r < 0)
		return slotsync_error_set(err, r, "cannot compute %s", slotsync_digest_name(digest));
	if (memcmp(got, id, SLOTSYNC_DIGEST_BYTES) != 0)
		return slotsync_error_set(err, -EBADMSG, "chunk %s failed its %s check (content hashes to %s)",
					  slotsync_digest_to_hex(id, want_hex), slotsync_digest_name(digest),
					  slotsync_digest_to_hex(got, got_hex));
	return 0;
}

int slotsync_chunk_decode(struct slotsync_chunk_decoder *dec, const void *src, size_t src_len, void *dst,
			  size_t expected_size, enum slotsync_digest_type digest,
			  const uint8_t id[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];
	size_t n;

	/* ZSTD_decompressDCtx never writes more than dst's capacity: a frame that
	 * decodes to more than the chunk's size stops with dstSize_tooSmall. */
	n = ZSTD_decompressDCtx(dec->dctx, dst, expected_size, src, src_len);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			return slotsync_error_set(err, -EBADMSG,
						  "chunk %s decompresses to more than its %zu bytes (cut off)",
						  slotsync_digest_to_hex(id, hex), expected_size);
		return slotsync_error_set(err, -EBADMSG, "chunk %s is not a valid zstd frame: %s",
					  slotsync_digest_to_hex(id, hex), ZSTD_getErrorName(n));
	}
	if (n != expected_size)
		return slotsync_error_set(err, -EBADMSG, "chunk %s decompresses to %zu bytes, expected %zu",
					  slotsync_digest_to_hex(id, hex), n, expected_size);
	return slotsync_chunk_verify(dst, n, digest, id, err);
}

int slotsync_store_open(const char *dir, struct slotsync_store **out, struct slotsync_error *err)
{
	struct slotsync_store *s;
	int fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open store %s", dir);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(dir))) {
		free(s);
		close(fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	s->dirfd = fd;
	*out = s;
	return 0;
}

void slotsync_store_free(struct slotsync_store *store)
{
	if (!store)
		return;
	close(store->dirfd);
	free(store->path);
	free(store);
}

const char *slotsync_store_path(const struct slotsync_store *store)
{
	return store->path;
}

int slotsync_store_read_chunk(struct slotsync_store *store, struct slotsync_chunk_decoder *dec,
			      const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t expected_size,
			      enum slotsync_digest_type digest, void *dst, struct slotsync_error *err)
{
	char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];
	/* A compressed chunk is never larger than zstd's bound for its size; a file
	 * that is, is rejected before it is read. */
	size_t limit = slotsync_chunk_compressed_bound(expected_size);
	uint64_t size;
	ssize_t n;
	int fd, r;

	slotsync_store_chunk_relpath(id, rel);
	fd = openat(store->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return slotsync_error_set(err, -ENOENT, "chunk %s is missing from store %s", rel, store->path);
		return slotsync_error_set_errno(err, -errno, "cannot open chunk %s in store %s", rel, store->path);
	}
	r = io_fd_size(fd, &size);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot read chunk %s in store %s", rel, store->path);
		goto out;
	}
	if (size > limit) {
		r = slotsync_error_set(err, -EBADMSG, "chunk %s in store %s is %llu bytes, too large for a %zu-byte chunk",
				       rel, store->path, (unsigned long long)size, expected_size);
		goto out;
	}
	if (dec->cap < size) {
		uint8_t *b = realloc(dec->buf, size ? size : 1);
		if (!b) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		dec->buf = b;
		dec->cap = size;
	}
	n = io_read_full(fd, dec->buf, size);
	if (n < 0) {
		r = slotsync_error_set_errno(err, (int)n, "cannot read chunk %s in store %s", rel, store->path);
		goto out;
	}
	r = slotsync_chunk_decode(dec, dec->buf, (size_t)n, dst, expected_size, digest, id, err);
	if (r < 0)
		slotsync_error_prefix(err, "store %s", store->path);
out:
	close(fd);
	return r;
}
