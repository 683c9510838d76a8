/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — content-defined chunker.
 *
 * FastCDC-style normalized chunking (Xia et al., "FastCDC: a Fast and Efficient
 * Content-Defined Chunking Approach for Data Deduplication", USENIX ATC 2016): a
 * gear hash rolls over the data; a boundary falls where the hash's top bits are all
 * zero.  Below the average size a mask with one more bit makes a cut less likely,
 * above it a mask with one bit fewer makes it more likely, which narrows the spread
 * of chunk sizes around the average.  No cut before min bytes, a forced cut at max.
 *
 * The hash is reset at each boundary and only the last 64 bytes influence it, so a
 * boundary depends only on content and distance from the previous boundary, never
 * on how the input is split into buffers.  Both sides (build server and device,
 * which chunks seed images that have no index) run this same code.
 */
#ifndef SLOTSYNC_CHUNKER_H
#define SLOTSYNC_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults, chosen by benchmark on a real Debian security update (docs/benchmarks.md). */
#define SLOTSYNC_CHUNK_MIN_DEFAULT (2u * 1024u)
#define SLOTSYNC_CHUNK_AVG_DEFAULT (16u * 1024u)
#define SLOTSYNC_CHUNK_MAX_DEFAULT (64u * 1024u)

/* Hard limits on what slotsync accepts (casync's are 1 byte .. 128 MiB). */
#define SLOTSYNC_CHUNK_SIZE_LIMIT_MIN 64u
#define SLOTSYNC_CHUNK_SIZE_LIMIT_MAX (16u * 1024u * 1024u)

struct slotsync_chunker_params {
	uint32_t min_bytes;
	uint32_t avg_bytes;
	uint32_t max_bytes;
};

/* The default parameters. */
SLOTSYNC_EXPORT struct slotsync_chunker_params slotsync_chunker_params_default(void);

/* Checks min <= avg <= max within the limits above; fills err with the reason. */
SLOTSYNC_EXPORT int slotsync_chunker_params_check(const struct slotsync_chunker_params *p, struct slotsync_error *err);

/* Parses "MIN:AVG:MAX" with optional K/M suffixes ("4K:16K:64K"), then checks. */
SLOTSYNC_EXPORT int slotsync_chunker_params_parse(const char *text, struct slotsync_chunker_params *p, struct slotsync_error *err);

struct slotsync_chunker;

/* Returns NULL on bad parameters (err says why) or out of memory. */
SLOTSYNC_EXPORT struct slotsync_chunker *slotsync_chunker_new(const struct slotsync_chunker_params *p, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_chunker_free(struct slotsync_chunker *c);

/* Forgets the current partial chunk (start of a new stream). */
SLOTSYNC_EXPORT void slotsync_chunker_reset(struct slotsync_chunker *c);

/* Scans buf.  Returns n <= len if a chunk ends after buf[n-1] (the chunker is then
 * positioned at the start of the next chunk), or SIZE_MAX if all of buf belongs to
 * the current chunk.  At the end of the stream, whatever remains is the last chunk. */
SLOTSYNC_EXPORT size_t slotsync_chunker_scan(struct slotsync_chunker *c, const uint8_t *buf, size_t len);

/* Bytes of the current, unfinished chunk seen so far. */
SLOTSYNC_EXPORT size_t slotsync_chunker_pending(const struct slotsync_chunker *c);

/* Called for each chunk of a stream, in order; a negative return stops the stream
 * and is passed on.  data is valid only during the call. */
typedef int (*slotsync_chunk_cb)(const uint8_t *data, size_t len, uint64_t offset, void *userdata);

/* Reads fd sequentially to its end and calls cb for every chunk.  Memory: one
 * buffer of max + 4 MiB.  `what` names the input in error messages. */
SLOTSYNC_EXPORT int slotsync_chunker_stream_fd(const struct slotsync_chunker_params *p, int fd, const char *what, slotsync_chunk_cb cb,
			       void *userdata, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
