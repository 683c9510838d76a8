/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writing a chunk store (build server only).
 *
 * A chunk reaches its final name only whole: it is written to a temp file in its
 * folder, made durable, then renamed.  To keep fsync from dominating, durability is
 * shared: a flusher thread of the writer makes everything written so far durable
 * with one syncfs() of the store's filesystem every few megabytes, while the
 * writers go on; each writer's batch renames its temp files once a syncfs begun
 * after they were written has ended; store_writer_sync() makes the renames
 * durable (one syncfs) before an index that names those chunks is written.  A chunk
 * already in the store is not written again (dedup across releases); two writers
 * in one store at once are safe, since a rename over an identical chunk is a no-op
 * for readers.  A killed writer leaves only temp files, which never carry the
 * .cacnk suffix and which `slotsync-gen check --repair` removes.
 */
#ifndef SLOTSYNC_GEN_STORE_WRITE_H
#define SLOTSYNC_GEN_STORE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"

#define STORE_TMP_PREFIX ".tmp-"

struct store_writer;

/* Writes a file of the store that is named by what it is, not by its
 * digest (a delta index, an index diff): store/rel, its folders made,
 * replaced atomically. */
int store_write_named(const char *store, const char *rel, const void *data, size_t len, struct slotsync_error *err);

/* Fails with a clear error when dir is a URL ("s3://bucket/store"): a store
 * is written and read here as a local folder (uploaded by `publish`), and
 * such a name would otherwise become a folder "s3:" in the working
 * directory.  A local folder of that name is reached as "./s3://...". */
int store_dir_is_local(const char *dir, struct slotsync_error *err);

/* Opens (creating if needed) the store folder for writing; not a URL. */
int store_writer_open(const char *dir, struct store_writer **out, struct slotsync_error *err);
void store_writer_free(struct store_writer *sw);

/* Is chunk id already in the store? */
int store_writer_has(struct store_writer *sw, const uint8_t id[SLOTSYNC_DIGEST_BYTES]);

/* One per thread: a batch of temp files waiting to be made durable and renamed. */
struct store_batch;
struct store_batch *store_batch_new(struct store_writer *sw);
/* Commits what is pending, then frees. */
int store_batch_free(struct store_batch *b, struct slotsync_error *err);

/* Adds one compressed chunk.  It becomes visible under its name once it is
 * durable (seen to at a later put, or by store_batch_commit). */
int store_batch_put(struct store_batch *b, const uint8_t id[SLOTSYNC_DIGEST_BYTES], const void *data, size_t len,
		    struct slotsync_error *err);

/* The same for a file with another suffix than .cacnk (".sdob": a delta object). */
int store_batch_put_ext(struct store_batch *b, const uint8_t id[SLOTSYNC_DIGEST_BYTES], const char *suffix,
			const void *data, size_t len, struct slotsync_error *err);

/* Waits until every pending temp file is durable, then renames it to its final
 * name. */
int store_batch_commit(struct store_batch *b, struct slotsync_error *err);

/* Makes every rename done so far durable (one syncfs). */
int store_writer_sync(struct store_writer *sw, struct slotsync_error *err);

#endif
