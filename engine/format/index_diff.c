/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The release index coded against the base index (layout: include/slotsync/index.h
 * and docs/format.md, "Index diff").
 *
 * Two releases share most chunks, usually in runs: the diff names runs of the
 * base's entries by position (a copy takes their sizes and ids) and gives the
 * others whole.  The maker looks each new chunk up in the base by id and
 * extends the current run while the next base entry matches.  The applier
 * checks the frame's declared size, the header's counts and every run against
 * its limits before it allocates, rebuilds the caibx bytes directly and
 * accepts them only if they hash to the digest the signed manifest names: a
 * diff can make a device do no more than reading the full index would.
 */
#include "slotsync/index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "io.h"

#define OP_COPY 0u
#define OP_NEW 1u
#define NEW_ENTRY_BYTES (4u + SLOTSYNC_DIGEST_BYTES)

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static int buf_grow(struct buf *b, size_t more)
{
	uint8_t *p;
	size_t cap;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* a base entry, sorted by id for the lookup */
struct ent {
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	uint32_t pos;
};

static int cmp_ent(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c = memcmp(x->id, y->id, SLOTSYNC_DIGEST_BYTES);

	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The first base position holding id with that size, or UINT32_MAX. */
static uint32_t base_find(const struct slotsync_index *base, const struct ent *sorted, const uint8_t *id, uint64_t size)
{
	size_t lo = 0, hi = base->n_chunks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(sorted[mid].id, id, SLOTSYNC_DIGEST_BYTES) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < base->n_chunks && !memcmp(sorted[lo].id, id, SLOTSYNC_DIGEST_BYTES); lo++)
		if (slotsync_index_chunk_size(base, sorted[lo].pos) == size)
			return sorted[lo].pos;
	return UINT32_MAX;
}

static int same_entry(const struct slotsync_index *a, size_t i, const struct slotsync_index *b, size_t j)
{
	return slotsync_index_chunk_size(a, i) == slotsync_index_chunk_size(b, j) &&
	       !memcmp(a->chunks[i].id, b->chunks[j].id, SLOTSYNC_DIGEST_BYTES);
}

void slotsync_index_diff_path(const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
			      const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap)
{
	char b[SLOTSYNC_DIGEST_HEX_BYTES], n[SLOTSYNC_DIGEST_HEX_BYTES];

	snprintf(buf, cap, "deltas/%s/%s.sdid", slotsync_digest_to_hex(base_digest, b),
		 slotsync_digest_to_hex(new_digest, n));
}

int slotsync_index_diff_make(const struct slotsync_index *base, const struct slotsync_index *new_idx,
			     uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	struct buf b = { 0 };
	struct ent *sorted = NULL;
	uint32_t n_ops = 0;
	size_t op = SIZE_MAX; /* offset of the open op's kind byte */
	uint8_t *z = NULL;
	size_t zcap, zn;
	int r = -ENOMEM;

	*out = NULL;
	*out_len = 0;
	if (base->n_chunks >= UINT32_MAX || new_idx->n_chunks >= UINT32_MAX)
		return slotsync_error_set(err, -EFBIG, "an index of %zu chunks is too large for an index diff",
					  base->n_chunks > new_idx->n_chunks ? base->n_chunks : new_idx->n_chunks);
	if (base->n_chunks && !(sorted = malloc(base->n_chunks * sizeof(*sorted))))
		goto nomem;
	for (size_t i = 0; i < base->n_chunks; i++) {
		memcpy(sorted[i].id, base->chunks[i].id, SLOTSYNC_DIGEST_BYTES);
		sorted[i].pos = (uint32_t)i;
	}
	if (base->n_chunks)
		qsort(sorted, base->n_chunks, sizeof(*sorted), cmp_ent);
	if (buf_grow(&b, SLOTSYNC_INDEX_DIFF_HEADER_BYTES) < 0)
		goto nomem;
	memset(b.p, 0, SLOTSYNC_INDEX_DIFF_HEADER_BYTES);
	memcpy(b.p, SLOTSYNC_INDEX_DIFF_MAGIC, 8);
	if ((r = slotsync_index_digest(base, b.p + 8, err)) < 0 || (r = slotsync_index_digest(new_idx, b.p + 40, err)) < 0)
		goto out;
	io_put_le64(b.p + 72, new_idx->feature_flags);
	io_put_le64(b.p + 80, new_idx->chunk_size_min);
	io_put_le64(b.p + 88, new_idx->chunk_size_avg);
	io_put_le64(b.p + 96, new_idx->chunk_size_max);
	io_put_le64(b.p + 104, new_idx->n_chunks);
	b.len = SLOTSYNC_INDEX_DIFF_HEADER_BYTES;

	r = -ENOMEM;
	for (size_t j = 0; j < new_idx->n_chunks; j++) {
		uint64_t size = slotsync_index_chunk_size(new_idx, j);
		uint32_t pos;

		/* the open copy run goes on while the base's next entry matches */
		if (op != SIZE_MAX && b.p[op] == OP_COPY) {
			uint32_t first = io_get_le32(b.p + op + 1), count = io_get_le32(b.p + op + 5);
			if (first + count < base->n_chunks && same_entry(base, first + count, new_idx, j)) {
				io_put_le32(b.p + op + 5, count + 1);
				continue;
			}
		}
		pos = base_find(base, sorted, new_idx->chunks[j].id, size);
		if (pos != UINT32_MAX) {
			if (buf_grow(&b, 9) < 0)
				goto nomem;
			op = b.len;
			b.p[op] = OP_COPY;
			io_put_le32(b.p + op + 1, pos);
			io_put_le32(b.p + op + 5, 1);
			b.len += 9;
			n_ops++;
			continue;
		}
		if (size > UINT32_MAX) {
			r = slotsync_error_set(err, -EFBIG, "chunk %zu is too large for an index diff", j);
			goto out;
		}
		if (op == SIZE_MAX || b.p[op] != OP_NEW) {
			if (buf_grow(&b, 5) < 0)
				goto nomem;
			op = b.len;
			b.p[op] = OP_NEW;
			io_put_le32(b.p + op + 1, 0);
			b.len += 5;
			n_ops++;
		}
		if (buf_grow(&b, NEW_ENTRY_BYTES) < 0)
			goto nomem;
		io_put_le32(b.p + op + 1, io_get_le32(b.p + op + 1) + 1);
		io_put_le32(b.p + b.len, (uint32_t)size);
		memcpy(b.p + b.len + 4, new_idx->chunks[j].id, SLOTSYNC_DIGEST_BYTES);
		b.len += NEW_ENTRY_BYTES;
	}
	io_put_le32(b.p + 112, n_ops);

	zcap = ZSTD_compressBound(b.len);
	if (!(z = malloc(zcap)))
		goto nomem;
	/* ZSTD_compress writes the content size into the frame header */
	zn = ZSTD_compress(z, zcap, b.p, b.len, 19);
	if (ZSTD_isError(zn)) {
		r = slotsync_error_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(zn));
		goto out;
	}
	*out = z;
	*out_len = zn;
	z = NULL;
	r = 0;
	goto out;
nomem:
	r = slotsync_error_set(err, -ENOMEM, "out of memory for an index diff");
out:
	free(z);
	free(b.p);
	free(sorted);
	return r;
}

/* Appends one caibx item to the index being rebuilt. */
static void put_item(uint8_t *p, uint64_t *end, uint64_t size, const uint8_t *id)
{
	*end += size;
	io_put_le64(p, *end);
	memcpy(p + 8, id, SLOTSYNC_DIGEST_BYTES);
}

/* Rebuilds the caibx bytes from the decoded diff raw[0..len) into idx (sized
 * for exactly n items), checking every count and position as it goes. */
static int diff_rebuild(const struct slotsync_index *base, const uint8_t *raw, size_t len, uint64_t n, uint8_t *idx,
			struct slotsync_error *err)
{
	uint8_t *item = idx + SLOTSYNC_CAIBX_HEADER_BYTES;
	uint32_t n_ops = io_get_le32(raw + 112);
	size_t at = SLOTSYNC_INDEX_DIFF_HEADER_BYTES;
	uint64_t done = 0, end = 0;

	for (uint32_t k = 0; k < n_ops; k++) {
		uint32_t count;

		if (len - at < 5)
			return slotsync_error_set(err, -EBADMSG, "index diff: op %" PRIu32 " is cut short", k);
		count = io_get_le32(raw + at + 1);
		if (raw[at] == OP_NEW && (count == 0 || count > n - done))
			return slotsync_error_set(err, -EBADMSG,
						  "index diff: op %" PRIu32 " gives %" PRIu32 " entries, %" PRIu64 " are left",
						  k, count, n - done);
		if (raw[at] == OP_COPY) {
			uint32_t first;
			if (len - at < 9)
				return slotsync_error_set(err, -EBADMSG, "index diff: op %" PRIu32 " is cut short", k);
			first = io_get_le32(raw + at + 1);
			count = io_get_le32(raw + at + 5);
			if (count == 0 || count > n - done || first > base->n_chunks || count > base->n_chunks - first)
				return slotsync_error_set(err, -EBADMSG,
							  "index diff: op %" PRIu32 " copies base entries %" PRIu32
							  "+%" PRIu32 ", the base has %zu (%" PRIu64 " entries left)",
							  k, first, count, base->n_chunks, n - done);
			for (uint32_t i = 0; i < count; i++, item += SLOTSYNC_CAIBX_ITEM_BYTES)
				put_item(item, &end, slotsync_index_chunk_size(base, first + i), base->chunks[first + i].id);
			at += 9;
		} else if (raw[at] == OP_NEW) {
			at += 5;
			if ((len - at) / NEW_ENTRY_BYTES < count)
				return slotsync_error_set(err, -EBADMSG, "index diff: op %" PRIu32 " is cut short", k);
			for (uint32_t i = 0; i < count; i++, item += SLOTSYNC_CAIBX_ITEM_BYTES, at += NEW_ENTRY_BYTES)
				put_item(item, &end, io_get_le32(raw + at), raw + at + 4);
		} else {
			return slotsync_error_set(err, -EBADMSG, "index diff: op %" PRIu32 " has unknown kind %u", k, raw[at]);
		}
		done += count;
	}
	if (done != n)
		return slotsync_error_set(err, -EBADMSG, "index diff: its ops give %" PRIu64 " entries, its header %" PRIu64,
					  done, n);
	if (at != len)
		return slotsync_error_set(err, -EBADMSG, "index diff: %zu bytes after its last op", len - at);
	return 0;
}

int slotsync_index_diff_apply(const struct slotsync_index *base, const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
			      const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], const uint8_t *diff, size_t diff_len,
			      size_t max_index_bytes, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	char h1[SLOTSYNC_DIGEST_HEX_BYTES], h2[SLOTSYNC_DIGEST_HEX_BYTES];
	uint8_t *raw = NULL, *idx = NULL, got[SLOTSYNC_DIGEST_BYTES];
	unsigned long long size = ZSTD_getFrameContentSize(diff, diff_len);
	uint64_t n, idx_len;
	size_t zn;
	int r;

	*out = NULL;
	*out_len = 0;
	if (size == ZSTD_CONTENTSIZE_ERROR || ZSTD_findFrameCompressedSize(diff, diff_len) != diff_len)
		return slotsync_error_set(err, -EBADMSG, "index diff is not one zstd frame");
	/* the largest honest diff gives each entry whole: 41 bytes an entry
	 * against the index's 40, and a header of about the index's */
	if (size == ZSTD_CONTENTSIZE_UNKNOWN || size < SLOTSYNC_INDEX_DIFF_HEADER_BYTES ||
	    size > (unsigned long long)max_index_bytes + max_index_bytes / 32 + SLOTSYNC_INDEX_DIFF_HEADER_BYTES)
		return slotsync_error_set(err, -EBADMSG, "index diff declares %s content size for an index of at most %zu bytes",
					  size == ZSTD_CONTENTSIZE_UNKNOWN ? "no" : "an impossible", max_index_bytes);
	if (!(raw = malloc((size_t)size)))
		return slotsync_error_set(err, -ENOMEM, "out of memory for an index diff of %llu bytes", size);
	zn = ZSTD_decompress(raw, (size_t)size, diff, diff_len);
	if (ZSTD_isError(zn) || zn != size) {
		r = slotsync_error_set(err, -EBADMSG, "index diff does not decompress: %s",
				       ZSTD_isError(zn) ? ZSTD_getErrorName(zn) : "shorter than it declares");
		goto out;
	}
	if (memcmp(raw, SLOTSYNC_INDEX_DIFF_MAGIC, 8) != 0) {
		r = slotsync_error_set(err, -EBADMSG, "not an index diff (wrong magic)");
		goto out;
	}
	if (memcmp(raw + 8, base_digest, SLOTSYNC_DIGEST_BYTES) != 0) {
		r = slotsync_error_set(err, -EINVAL, "index diff is for base index %s, not this one (%s)",
				       slotsync_digest_to_hex(raw + 8, h1), slotsync_digest_to_hex(base_digest, h2));
		goto out;
	}
	if (memcmp(raw + 40, new_digest, SLOTSYNC_DIGEST_BYTES) != 0) {
		r = slotsync_error_set(err, -EINVAL, "index diff makes index %s, not the signed %s",
				       slotsync_digest_to_hex(raw + 40, h1), slotsync_digest_to_hex(new_digest, h2));
		goto out;
	}
	n = io_get_le64(raw + 104);
	if (max_index_bytes < SLOTSYNC_CAIBX_HEADER_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES ||
	    n > (max_index_bytes - SLOTSYNC_CAIBX_HEADER_BYTES - SLOTSYNC_CAIBX_TAIL_BYTES) / SLOTSYNC_CAIBX_ITEM_BYTES) {
		r = slotsync_error_set(err, -EFBIG, "index diff makes an index of %" PRIu64 " entries, over the limit of %zu bytes",
				       n, max_index_bytes);
		goto out;
	}
	idx_len = SLOTSYNC_CAIBX_HEADER_BYTES + n * SLOTSYNC_CAIBX_ITEM_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES;
	if (!(idx = malloc((size_t)idx_len))) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory for an index of %" PRIu64 " bytes", idx_len);
		goto out;
	}
	/* the header, TABLE header and tail as index.c writes them */
	io_put_le64(idx, 48);
	io_put_le64(idx + 8, SLOTSYNC_CAIBX_INDEX_MAGIC);
	memcpy(idx + 16, raw + 72, 32); /* feature flags, chunk_size_min/avg/max */
	io_put_le64(idx + 48, UINT64_MAX);
	io_put_le64(idx + 56, SLOTSYNC_CAIBX_TABLE_MAGIC);
	r = diff_rebuild(base, raw, (size_t)size, n, idx, err);
	if (r < 0)
		goto out;
	{
		uint8_t *tail = idx + idx_len - SLOTSYNC_CAIBX_TAIL_BYTES;
		io_put_le64(tail, 0);
		io_put_le64(tail + 8, 0);
		io_put_le64(tail + 16, 48);
		io_put_le64(tail + 24, 16 + n * SLOTSYNC_CAIBX_ITEM_BYTES + SLOTSYNC_CAIBX_TAIL_BYTES);
		io_put_le64(tail + 32, SLOTSYNC_CAIBX_TAIL_MARKER);
	}
	r = slotsync_digest(SLOTSYNC_DIGEST_SHA256, idx, (size_t)idx_len, got);
	if (r == 0 && memcmp(got, new_digest, SLOTSYNC_DIGEST_BYTES) != 0)
		r = slotsync_error_set(err, -EBADMSG, "the index rebuilt from the index diff does not have the signed SHA-256 %s",
				       slotsync_digest_to_hex(new_digest, h1));
	else if (r < 0)
		r = slotsync_error_set(err, r, "cannot hash the rebuilt index");
	if (r < 0)
		goto out;
	/* What comes out is an index the device can read, or nothing: a digest
	 * matches whatever the diff named, the header's new digest is not part
	 * of the bytes it covers. */
	{
		struct slotsync_index *check = NULL;
		struct slotsync_error e2 = { 0 };
		r = slotsync_index_parse(idx, (size_t)idx_len, &check, &e2);
		slotsync_index_free(check);
		if (r < 0) {
			r = slotsync_error_set(err, r, "the index rebuilt from the index diff is not an index: %s",
					       slotsync_error_message(&e2));
			goto out;
		}
	}
	*out = idx;
	*out_len = (size_t)idx_len;
	idx = NULL;
out:
	free(idx);
	free(raw);
	return r;
}
