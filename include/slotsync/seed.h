/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — seeds: local images whose chunks can stand in for downloads.
 *
 * A seed is an image already on the machine (on a device: the active slot) and,
 * optionally, its index.  With an index, each chunk is found at the offset the
 * index gives; without one, the seed is chunked on the fly with the chunk sizes
 * of the target index (this finds chunks only if both were cut by slotsync's
 * chunker).  Every chunk read from a seed is checked against its digest before it
 * is used, so a seed that changed since it was indexed costs a download, never a
 * corrupt image.
 */
#ifndef SLOTSYNC_SEED_H
#define SLOTSYNC_SEED_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/chunker.h"
#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called for each chunk a seed offers; a negative return stops the scan. */
typedef int (*slotsync_seed_chunk_cb)(void *userdata, const uint8_t id[SLOTSYNC_DIGEST_BYTES], uint64_t offset,
				      uint32_t size);

/* Lists the chunks of a seed image open on fd: from its index (streamed, never
 * held in memory; it must use `digest` and fit in the image), or, without one, by
 * chunking the image now with params. */
SLOTSYNC_EXPORT int slotsync_seed_scan(int fd, const char *image_path, const char *index_path, enum slotsync_digest_type digest,
		       const struct slotsync_chunker_params *params, slotsync_seed_chunk_cb cb, void *userdata,
		       struct slotsync_error *err);

/* Reads size bytes at offset of a seed into dst and checks them against id:
 * -EBADMSG (err says where) if the seed changed since it was indexed. */
SLOTSYNC_EXPORT int slotsync_seed_read_chunk(int fd, const char *image_path, uint64_t offset, size_t size,
			     enum slotsync_digest_type digest, const uint8_t id[SLOTSYNC_DIGEST_BYTES], void *dst,
			     struct slotsync_error *err);

/* Splits "IMAGE[:INDEX]" as given on a command line into new strings (*index
 * NULL if none).  Device names hold colons (/dev/disk/by-path/pci-0000:00:...),
 * so the spec is split at its last colon only when what follows is an existing
 * file whose name ends in ".caibx"; else the whole spec is the image.  Tools
 * also take the index apart (--seed IMAGE --seed-index INDEX), and the library
 * itself takes image and index separately everywhere. */
SLOTSYNC_EXPORT int slotsync_seed_spec_parse(const char *spec, char **image, char **index, struct slotsync_error *err);

/* A set of seeds with a table of every chunk they offer (build server side:
 * memory grows with the seeds; the device resolves seeds into its plan instead). */
struct slotsync_seed_set;

/* digest: the target index's digest (seed chunks are named the same way);
 * params: how to chunk a seed that comes without an index. */
SLOTSYNC_EXPORT struct slotsync_seed_set *slotsync_seed_set_new(enum slotsync_digest_type digest,
						const struct slotsync_chunker_params *params);
SLOTSYNC_EXPORT void slotsync_seed_set_free(struct slotsync_seed_set *set);

/* Adds a seed image; index_path may be NULL (then the image is chunked now).
 * The image is opened read-only and never written. */
SLOTSYNC_EXPORT int slotsync_seed_set_add(struct slotsync_seed_set *set, const char *image_path, const char *index_path,
			  struct slotsync_error *err);

/* Parses "IMAGE[:INDEX]" as given on a command line (slotsync_seed_spec_parse)
 * and adds it. */
SLOTSYNC_EXPORT int slotsync_seed_set_add_spec(struct slotsync_seed_set *set, const char *spec, struct slotsync_error *err);

/* Number of distinct chunks the seeds offer. */
SLOTSYNC_EXPORT size_t slotsync_seed_set_count(const struct slotsync_seed_set *set);

/* Does a seed offer chunk id of this size? */
SLOTSYNC_EXPORT int slotsync_seed_set_has(const struct slotsync_seed_set *set, const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t size);

/* Reads chunk id (size bytes) from a seed into dst and checks its digest.
 * Returns 0; -ENOENT if no seed offers it; -EBADMSG if every seed copy failed its
 * check (those copies are then forgotten, err says which). */
SLOTSYNC_EXPORT int slotsync_seed_set_read(struct slotsync_seed_set *set, const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t size,
			   void *dst, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
