/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — chunk store layout and chunk codec (read side).
 *
 * A store is casync's layout: <store>/<first 4 hex digits>/<64 hex digits>.cacnk,
 * each file one zstd frame holding one chunk.  It is a folder of static files, so
 * any HTTP server or CDN serves it as is.  This module knows the layout and decodes
 * chunks; writing a store is the build server's business (slotsync-gen) and lives
 * outside the device library.
 *
 * A chunk is only ever used after its decompressed size and digest have been
 * checked against what the index says: a file whose content does not match its
 * name is reported, never used.
 */
#ifndef SLOTSYNC_STORE_H
#define SLOTSYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_CHUNK_SUFFIX ".cacnk"
/* "abcd/" + 64 hex + ".cacnk" + NUL */
#define SLOTSYNC_CHUNK_RELPATH_BYTES (5 + 64 + 6 + 1)

/* Writes "<4 hex>/<64 hex>.cacnk" into buf (SLOTSYNC_CHUNK_RELPATH_BYTES). */
SLOTSYNC_EXPORT void slotsync_store_chunk_relpath(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char buf[SLOTSYNC_CHUNK_RELPATH_BYTES]);

/* Decodes compressed chunks; holds a zstd context for reuse.  One per thread. */
struct slotsync_chunk_decoder;
SLOTSYNC_EXPORT struct slotsync_chunk_decoder *slotsync_chunk_decoder_new(void);
SLOTSYNC_EXPORT void slotsync_chunk_decoder_free(struct slotsync_chunk_decoder *dec);

/* Decompresses src into dst, which holds exactly expected_size bytes, and checks
 * that the result is exactly expected_size bytes with digest id.  Decompression
 * never writes past dst: a frame that would grow larger (a decompression bomb) is
 * cut off and rejected.  Returns 0, or -EBADMSG with err naming the problem. */
SLOTSYNC_EXPORT int slotsync_chunk_decode(struct slotsync_chunk_decoder *dec, const void *src, size_t src_len, void *dst,
			  size_t expected_size, enum slotsync_digest_type digest,
			  const uint8_t id[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err);

/* The largest compressed file a chunk of `size` bytes can have: anything larger
 * is refused before it is read or downloaded. */
SLOTSYNC_EXPORT size_t slotsync_chunk_compressed_bound(size_t size);

/* Checks that buf (len bytes) has digest id; -EBADMSG otherwise. */
SLOTSYNC_EXPORT int slotsync_chunk_verify(const void *buf, size_t len, enum slotsync_digest_type digest,
			  const uint8_t id[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err);

/* A local store, opened once: reads chunks by id. */
struct slotsync_store;
SLOTSYNC_EXPORT int slotsync_store_open(const char *dir, struct slotsync_store **out, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_store_free(struct slotsync_store *store);
SLOTSYNC_EXPORT const char *slotsync_store_path(const struct slotsync_store *store);

/* Reads chunk `id` of expected_size bytes into dst and checks it (see decode).
 * -ENOENT if the store does not have it. */
SLOTSYNC_EXPORT int slotsync_store_read_chunk(struct slotsync_store *store, struct slotsync_chunk_decoder *dec,
			      const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t expected_size,
			      enum slotsync_digest_type digest, void *dst, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
