/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the chunk index (casync's .caibx format, byte for byte).
 *
 * An index lists the chunks of one image in order: for each chunk the offset where
 * it ends and its 32-byte id (digest of the uncompressed content).  Layout, all
 * integers little-endian (docs/format.md has the full specification):
 *
 *   INDEX  size=48, type=0x96824d9c7b129ff9, feature_flags, chunk_size_min/avg/max
 *   TABLE  size=UINT64_MAX, type=0xe75b9e112f17417d
 *          items: { end_offset u64, id[32] } ...
 *   TAIL   0, 0, index_offset=48, table_size=16+40*n+40, marker=0x4b4f050e5549ecd1
 *
 * The digest is SHA-512/256 when the header's feature flags carry casync's
 * CA_FORMAT_SHA512_256 bit, SHA-256 otherwise.  Every parser check fails with a
 * message that names what is wrong.
 */
#ifndef SLOTSYNC_INDEX_H
#define SLOTSYNC_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_CAIBX_INDEX_MAGIC UINT64_C(0x96824d9c7b129ff9)
#define SLOTSYNC_CAIBX_TABLE_MAGIC UINT64_C(0xe75b9e112f17417d)
#define SLOTSYNC_CAIBX_TAIL_MARKER UINT64_C(0x4b4f050e5549ecd1)
#define SLOTSYNC_CAIBX_FLAG_SHA512_256 UINT64_C(0x2000000000000000)
/* Every feature flag casync defines (its CA_FORMAT_FEATURE_FLAGS_MAX). */
#define SLOTSYNC_CAIBX_FLAGS_KNOWN (UINT64_C(0x1ffffffff) | UINT64_C(0xf000000000000000))
#define SLOTSYNC_CAIBX_HEADER_BYTES 64u /* INDEX object + TABLE header */
#define SLOTSYNC_CAIBX_ITEM_BYTES 40u
#define SLOTSYNC_CAIBX_TAIL_BYTES 40u
/* casync's own limit on any chunk size field. */
#define SLOTSYNC_CAIBX_CHUNK_LIMIT (128u * 1024u * 1024u)

struct slotsync_index_chunk {
	uint64_t end;                        /* offset just past the chunk */
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
};

struct slotsync_index {
	enum slotsync_digest_type digest;
	uint64_t feature_flags;              /* as in the header */
	uint64_t chunk_size_min, chunk_size_avg, chunk_size_max;
	size_t n_chunks;
	size_t capacity;
	struct slotsync_index_chunk *chunks; /* n_chunks entries, end offsets increasing */
};

/* A new empty index with the given chunk size limits and digest. */
SLOTSYNC_EXPORT struct slotsync_index *slotsync_index_new(uint64_t min, uint64_t avg, uint64_t max, enum slotsync_digest_type digest);
SLOTSYNC_EXPORT void slotsync_index_free(struct slotsync_index *idx);

/* Appends a chunk of `size` bytes; checks size against the limits in the header. */
SLOTSYNC_EXPORT int slotsync_index_append(struct slotsync_index *idx, uint64_t size, const uint8_t id[SLOTSYNC_DIGEST_BYTES],
			  struct slotsync_error *err);

/* Start offset and size of chunk i. */
static inline uint64_t slotsync_index_chunk_start(const struct slotsync_index *idx, size_t i)
{
	return i == 0 ? 0 : idx->chunks[i - 1].end;
}
static inline uint64_t slotsync_index_chunk_size(const struct slotsync_index *idx, size_t i)
{
	return idx->chunks[i].end - slotsync_index_chunk_start(idx, i);
}
/* Size of the whole image the index describes. */
static inline uint64_t slotsync_index_image_size(const struct slotsync_index *idx)
{
	return idx->n_chunks ? idx->chunks[idx->n_chunks - 1].end : 0;
}

/* Parses an index held in memory. */
SLOTSYNC_EXPORT int slotsync_index_parse(const uint8_t *buf, size_t len, struct slotsync_index **out, struct slotsync_error *err);

/* Reads an index file; errors are prefixed with the path. */
SLOTSYNC_EXPORT int slotsync_index_read_file(const char *path, struct slotsync_index **out, struct slotsync_error *err);

/* Called for each item of an index streamed from a file; a negative return stops. */
typedef int (*slotsync_index_item_cb)(void *userdata, size_t i, uint64_t start, uint64_t size,
				      const uint8_t id[SLOTSYNC_DIGEST_BYTES]);

/* Streams an index file item by item, checking everything read_file checks,
 * without holding the table in memory (a device reads the index of its active
 * slot this way).  *header, if not NULL, receives the index with no chunks. */
SLOTSYNC_EXPORT int slotsync_index_scan_file(const char *path, struct slotsync_index **header, slotsync_index_item_cb cb, void *userdata,
			     struct slotsync_error *err);

/* Serializes to a new buffer (free()). */
SLOTSYNC_EXPORT int slotsync_index_serialize(const struct slotsync_index *idx, uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* Writes atomically (temp file, fsync, rename, fsync folder). */
SLOTSYNC_EXPORT int slotsync_index_write_file(const struct slotsync_index *idx, const char *path, struct slotsync_error *err);

/* SHA-256 of the serialized index: what bundles and delta indexes name it by. */
SLOTSYNC_EXPORT int slotsync_index_digest(const struct slotsync_index *idx, uint8_t out[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err);

/* ---- the index coded against another (docs/format.md, "Index diff") ----
 *
 * A device that holds the index of the release it runs downloads the next
 * release's index as a difference from it: one zstd frame, with its content
 * size, of
 *
 *   magic "SSIDXD1\0", base digest[32], new digest[32], feature_flags u64,
 *   chunk_size_min/avg/max u64, n_chunks u64, n_ops u32,
 *   ops: u8 kind; kind 0 (copy): u32 base_first, u32 count (base entries: their
 *        chunk sizes and ids); kind 1 (new): u32 count, count x {u32 size, id[32]}
 *
 * The digests are SHA-256 of the serialized indexes (slotsync_index_digest()).
 * The store keeps it at deltas/<base hex>/<new hex>.sdid. */
#define SLOTSYNC_INDEX_DIFF_MAGIC "SSIDXD1"
#define SLOTSYNC_INDEX_DIFF_HEADER_BYTES 116u

/* The diff of new_idx against base, zstd-compressed: *out is malloc'd. */
SLOTSYNC_EXPORT int slotsync_index_diff_make(const struct slotsync_index *base, const struct slotsync_index *new_idx,
					     uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* Rebuilds the new index from base (whose digest is base_digest) and a diff:
 * the diff must be for that base and for new_digest (the signed digest of the
 * new index), and the index it rebuilds, byte for byte, must hash to
 * new_digest.  Nothing larger than max_index_bytes (the largest full index the
 * caller would accept) is allocated: the frame's content size and the index's
 * size are checked before.  *out (malloc'd) receives the serialized index. */
SLOTSYNC_EXPORT int slotsync_index_diff_apply(const struct slotsync_index *base,
					      const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
					      const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], const uint8_t *diff,
					      size_t diff_len, size_t max_index_bytes, uint8_t **out, size_t *out_len,
					      struct slotsync_error *err);

/* "deltas/<base hex>/<new hex>.sdid" into buf[cap]. */
SLOTSYNC_EXPORT void slotsync_index_diff_path(const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
					      const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
