/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caibx index: parser and writer.  See include/slotsync/index.h for the layout
 * and docs/format.md for the specification.
 *
 * The parser reads the whole file into memory first (an index is small: 40 bytes
 * per chunk, ~160 KB for a 64 MB image) and checks every field before it trusts
 * it; the in-memory table has the file's own item layout, so a little-endian host
 * copies it as is. */
#include "slotsync/index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "io.h"

/* An index for a 16 TiB image of minimum-size chunks stays far below this. */
#define INDEX_FILE_MAX ((size_t)2 << 30)

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct slotsync_index *slotsync_index_new(uint64_t min, uint64_t avg, uint64_t max, enum slotsync_digest_type digest)
{
	struct slotsync_index *idx = calloc(1, sizeof(*idx));

	if (!idx)
		return NULL;
	idx->digest = digest;
	idx->feature_flags = digest == SLOTSYNC_DIGEST_SHA512_256 ? SLOTSYNC_CAIBX_FLAG_SHA512_256 : 0;
	idx->chunk_size_min = min;
	idx->chunk_size_avg = avg;
	idx->chunk_size_max = max;
	return idx;
}

void slotsync_index_free(struct slotsync_index *idx)
{
	if (!idx)
		return;
	free(idx->chunks);
	free(idx);
}

static int index_reserve(struct slotsync_index *idx, size_t n)
{
	struct slotsync_index_chunk *c;
	size_t cap;

	if (n <= idx->capacity)
		return 0;
	cap = idx->capacity ? idx->capacity : 1024;
	while (cap < n) {
		if (cap > SIZE_MAX / 2 / sizeof(*c))
			return -ENOMEM;
		cap *= 2;
	}
	c = realloc(idx->chunks, cap * sizeof(*c));
	if (!c)
		return -ENOMEM;
	idx->chunks = c;
	idx->capacity = cap;
	return 0;
}

int slotsync_index_append(struct slotsync_index *idx, uint64_t size, const uint8_t id[SLOTSYNC_DIGEST_BYTES],
			  struct slotsync_error *err)
{
	uint64_t start = slotsync_index_image_size(idx);

	if (size == 0 || size > idx->chunk_size_max)
		return slotsync_error_set(err, -EINVAL, "chunk %zu has size %" PRIu64 ", outside 1..%" PRIu64,
					  idx->n_chunks, size, idx->chunk_size_max);
	if (start + size < start || start + size > INT64_MAX)
		return slotsync_error_set(err, -EOVERFLOW, "image size overflows at chunk %zu", idx->n_chunks);
	if (index_reserve(idx, idx->n_chunks + 1) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory for %zu index entries", idx->n_chunks + 1);
	idx->chunks[idx->n_chunks].end = start + size;
	memcpy(idx->chunks[idx->n_chunks].id, id, SLOTSYNC_DIGEST_BYTES);
	idx->n_chunks++;
	return 0;
}

static int check_size_field(const char *name, uint64_t v, struct slotsync_error *err)
{
	if (v == 0 || v > SLOTSYNC_CAIBX_CHUNK_LIMIT)
		return slotsync_error_set(err, -EBADMSG, "chunk_size_%s %" PRIu64 " is outside 1..%u", name, v,
					  SLOTSYNC_CAIBX_CHUNK_LIMIT);
	return 0;
}

/* Does the 40 bytes at p form a valid tail for a table of n items? */
static int is_tail(const uint8_t *p, size_t n)
{
	return get_le64(p + 32) == SLOTSYNC_CAIBX_TAIL_MARKER && get_le64(p) == 0 && get_le64(p + 8) == 0 &&
	       get_le64(p + 16) == 48 &&
	       get_le64(p + 24) == 16 + (uint64_t)n * SLOTSYNC_CAIBX_ITEM_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES;
}

/* Checks the 64-byte header (INDEX object and TABLE header). */
static int check_header(const uint8_t *buf, uint64_t *flags, uint64_t *min, uint64_t *avg, uint64_t *max,
			struct slotsync_error *err)
{
	int r;

	if (get_le64(buf) != 48 || get_le64(buf + 8) != SLOTSYNC_CAIBX_INDEX_MAGIC)
		return slotsync_error_set(err, -EBADMSG, "not a caibx index: wrong magic in the header");
	*flags = get_le64(buf + 16);
	if (*flags & ~SLOTSYNC_CAIBX_FLAGS_KNOWN)
		return slotsync_error_set(err, -EBADMSG, "unknown feature flags 0x%016" PRIx64,
					  *flags & ~SLOTSYNC_CAIBX_FLAGS_KNOWN);
	*min = get_le64(buf + 24);
	*avg = get_le64(buf + 32);
	*max = get_le64(buf + 40);
	if ((r = check_size_field("min", *min, err)) < 0 || (r = check_size_field("avg", *avg, err)) < 0 ||
	    (r = check_size_field("max", *max, err)) < 0)
		return r;
	if (!(*min <= *avg && *avg <= *max))
		return slotsync_error_set(err, -EBADMSG,
					  "chunk sizes %" PRIu64 ":%" PRIu64 ":%" PRIu64 " are not min <= avg <= max",
					  *min, *avg, *max);
	if (get_le64(buf + 48) != UINT64_MAX || get_le64(buf + 56) != SLOTSYNC_CAIBX_TABLE_MAGIC)
		return slotsync_error_set(err, -EBADMSG, "wrong magic in the table header");
	return 0;
}

/* Checks item i, which ends at `end`, after a chunk that ended at `prev`. */
static int check_item(size_t i, uint64_t end, uint64_t prev, uint64_t max, struct slotsync_error *err)
{
	if (end <= prev)
		return slotsync_error_set(err, -EBADMSG, "chunk %zu ends at %" PRIu64 ", not after the previous end %" PRIu64,
					  i, end, prev);
	if (end - prev > max)
		return slotsync_error_set(err, -EBADMSG, "chunk %zu is %" PRIu64 " bytes, over the maximum %" PRIu64, i,
					  end - prev, max);
	if (end > INT64_MAX)
		return slotsync_error_set(err, -EOVERFLOW, "chunk %zu ends at %" PRIu64 ": image size overflows", i, end);
	return 0;
}

int slotsync_index_parse(const uint8_t *buf, size_t len, struct slotsync_index **out, struct slotsync_error *err)
{
	struct slotsync_index *idx = NULL;
	uint64_t flags, min, avg, max, prev = 0;
	size_t n, body;
	int r;

	if (len < SLOTSYNC_CAIBX_HEADER_BYTES)
		return slotsync_error_set(err, -EBADMSG, "truncated: %zu bytes, less than the %u-byte header", len,
					  SLOTSYNC_CAIBX_HEADER_BYTES);
	r = check_header(buf, &flags, &min, &avg, &max, err);
	if (r < 0)
		return r;

	body = len - SLOTSYNC_CAIBX_HEADER_BYTES;
	if (body < SLOTSYNC_CAIBX_TAIL_BYTES)
		return slotsync_error_set(err, -EBADMSG, "truncated: the table has no tail");
	if (body % SLOTSYNC_CAIBX_ITEM_BYTES != 0 ||
	    !is_tail(buf + len - SLOTSYNC_CAIBX_TAIL_BYTES, body / SLOTSYNC_CAIBX_ITEM_BYTES - 1)) {
		/* Find out whether a good tail stands earlier (garbage after it) or nowhere. */
		for (size_t i = 0; (i + 1) * SLOTSYNC_CAIBX_ITEM_BYTES <= body; i++) {
			if (is_tail(buf + SLOTSYNC_CAIBX_HEADER_BYTES + i * SLOTSYNC_CAIBX_ITEM_BYTES, i))
				return slotsync_error_set(err, -EBADMSG,
							  "trailing garbage: %zu bytes after the table tail",
							  body - (i + 1) * SLOTSYNC_CAIBX_ITEM_BYTES);
		}
		return slotsync_error_set(err, -EBADMSG, "truncated or corrupt: no valid table tail at the end");
	}
	n = body / SLOTSYNC_CAIBX_ITEM_BYTES - 1;

	idx = slotsync_index_new(min, avg, max,
				 (flags & SLOTSYNC_CAIBX_FLAG_SHA512_256) ? SLOTSYNC_DIGEST_SHA512_256 : SLOTSYNC_DIGEST_SHA256);
	if (!idx || index_reserve(idx, n) < 0) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory for %zu index entries", n);
		goto fail;
	}
	idx->feature_flags = flags;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *item = buf + SLOTSYNC_CAIBX_HEADER_BYTES + i * SLOTSYNC_CAIBX_ITEM_BYTES;
		uint64_t end = get_le64(item);

		r = check_item(i, end, prev, max, err);
		if (r < 0)
			goto fail;
		idx->chunks[i].end = end;
		memcpy(idx->chunks[i].id, item + 8, SLOTSYNC_DIGEST_BYTES);
		prev = end;
	}
	idx->n_chunks = n;
	*out = idx;
	return 0;
fail:
	slotsync_index_free(idx);
	return r;
}

int slotsync_index_read_file(const char *path, struct slotsync_index **out, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	r = io_read_file(path, INDEX_FILE_MAX, &buf, &len, err);
	if (r < 0)
		return r;
	r = slotsync_index_parse(buf, len, out, err);
	if (r < 0)
		slotsync_error_prefix(err, "index %s", path);
	free(buf);
	return r;
}

int slotsync_index_scan_file(const char *path, struct slotsync_index **header, slotsync_index_item_cb cb, void *userdata,
			     struct slotsync_error *err)
{
	uint8_t head[SLOTSYNC_CAIBX_HEADER_BYTES], tail[SLOTSYNC_CAIBX_TAIL_BYTES];
	uint8_t *blk = NULL;
	uint64_t size, flags, min, avg, max, prev = 0, n;
	struct slotsync_index *idx = NULL;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open index %s", path);
	r = io_fd_size(fd, &size);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot read index %s", path);
		goto out;
	}
	/* A file whose frame is not intact is parsed whole, for the exact reason. */
	if (size < SLOTSYNC_CAIBX_HEADER_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES ||
	    (size - SLOTSYNC_CAIBX_HEADER_BYTES) % SLOTSYNC_CAIBX_ITEM_BYTES != 0 ||
	    io_pread_full(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    io_pread_full(fd, tail, sizeof(tail), size - sizeof(tail)) != (ssize_t)sizeof(tail) ||
	    !is_tail(tail, (size - SLOTSYNC_CAIBX_HEADER_BYTES) / SLOTSYNC_CAIBX_ITEM_BYTES - 1)) {
		r = slotsync_index_read_file(path, &idx, err);
		if (r == 0)
			r = slotsync_error_set(err, -EIO, "index %s changed while being read", path);
		goto out;
	}
	r = check_header(head, &flags, &min, &avg, &max, err);
	if (r < 0) {
		slotsync_error_prefix(err, "index %s", path);
		goto out;
	}
	idx = slotsync_index_new(min, avg, max,
				 (flags & SLOTSYNC_CAIBX_FLAG_SHA512_256) ? SLOTSYNC_DIGEST_SHA512_256 : SLOTSYNC_DIGEST_SHA256);
	blk = malloc(1024 * SLOTSYNC_CAIBX_ITEM_BYTES);
	if (!idx || !blk) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	idx->feature_flags = flags;
	n = (size - SLOTSYNC_CAIBX_HEADER_BYTES) / SLOTSYNC_CAIBX_ITEM_BYTES - 1;
	if (!cb)
		n = 0; /* the header is all the caller wants */
	for (uint64_t i = 0; i < n;) {
		uint64_t k = n - i < 1024 ? n - i : 1024;
		ssize_t got = io_pread_full(fd, blk, k * SLOTSYNC_CAIBX_ITEM_BYTES,
					    SLOTSYNC_CAIBX_HEADER_BYTES + i * SLOTSYNC_CAIBX_ITEM_BYTES);
		if (got != (ssize_t)(k * SLOTSYNC_CAIBX_ITEM_BYTES)) {
			r = slotsync_error_set(err, -EIO, "cannot read index %s", path);
			goto out;
		}
		for (uint64_t q = 0; q < k; q++, i++) {
			const uint8_t *item = blk + q * SLOTSYNC_CAIBX_ITEM_BYTES;
			uint64_t end = get_le64(item);
			r = check_item((size_t)i, end, prev, max, err);
			if (r < 0) {
				slotsync_error_prefix(err, "index %s", path);
				goto out;
			}
			r = cb(userdata, (size_t)i, prev, end - prev, item + 8);
			if (r < 0)
				goto out;
			prev = end;
		}
	}
	if (header) {
		*header = idx;
		idx = NULL;
	}
out:
	free(blk);
	slotsync_index_free(idx);
	close(fd);
	return r;
}

int slotsync_index_serialize(const struct slotsync_index *idx, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	size_t len, n = idx->n_chunks;
	uint8_t *buf, *p;

	if (n > (SIZE_MAX - SLOTSYNC_CAIBX_HEADER_BYTES - SLOTSYNC_CAIBX_TAIL_BYTES) / SLOTSYNC_CAIBX_ITEM_BYTES)
		return slotsync_error_set(err, -EOVERFLOW, "index too large");
	len = SLOTSYNC_CAIBX_HEADER_BYTES + n * SLOTSYNC_CAIBX_ITEM_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES;
	buf = malloc(len);
	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory serializing an index of %zu chunks", n);
	put_le64(buf, 48);
	put_le64(buf + 8, SLOTSYNC_CAIBX_INDEX_MAGIC);
	put_le64(buf + 16, idx->feature_flags);
	put_le64(buf + 24, idx->chunk_size_min);
	put_le64(buf + 32, idx->chunk_size_avg);
	put_le64(buf + 40, idx->chunk_size_max);
	put_le64(buf + 48, UINT64_MAX);
	put_le64(buf + 56, SLOTSYNC_CAIBX_TABLE_MAGIC);
	p = buf + SLOTSYNC_CAIBX_HEADER_BYTES;
	for (size_t i = 0; i < n; i++, p += SLOTSYNC_CAIBX_ITEM_BYTES) {
		put_le64(p, idx->chunks[i].end);
		memcpy(p + 8, idx->chunks[i].id, SLOTSYNC_DIGEST_BYTES);
	}
	put_le64(p, 0);
	put_le64(p + 8, 0);
	put_le64(p + 16, 48);
	put_le64(p + 24, 16 + (uint64_t)n * SLOTSYNC_CAIBX_ITEM_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES);
	put_le64(p + 32, SLOTSYNC_CAIBX_TAIL_MARKER);
	*out = buf;
	*out_len = len;
	return 0;
}

int slotsync_index_write_file(const struct slotsync_index *idx, const char *path, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len;
	int r;

	r = slotsync_index_serialize(idx, &buf, &len, err);
	if (r < 0)
		return r;
	r = io_write_file_atomic(path, buf, len, err);
	free(buf);
	return r;
}

int slotsync_index_digest(const struct slotsync_index *idx, uint8_t out[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len;
	int r;

	r = slotsync_index_serialize(idx, &buf, &len, err);
	if (r < 0)
		return r;
	r = slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len, out);
	if (r < 0)
		slotsync_error_set(err, r, "cannot compute the index digest");
	free(buf);
	return r;
}
