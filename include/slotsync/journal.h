/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the assembly journal.
 *
 * An append-only file that says which chunks of a target are durable.  It starts
 * with a header naming the index (its SHA-256) and the target (device and inode,
 * or the block device number, and the image size), so that a journal is never
 * applied to another image or another target.  Each record lists chunk positions
 * (indexes into the index's chunk table) and ends with an xxh3-64 checksum of
 * itself.  A torn last record (power cut during an append) fails its checksum
 * and is dropped, with everything after it.
 *
 * Record kinds:
 *  - DONE: positions now durable.  Appended only after the target has been
 *    fdatasync'd, and the journal is fdatasync'd after it: a DONE position is a
 *    chunk that is on disk, and a resumed run skips it without looking.
 *  - WRITTEN: positions written to the target but not yet known durable.
 *    Appended without any fdatasync, so that a killed process loses little
 *    work without paying for a flush per chunk.  A resumed run reads each such
 *    chunk back and checks it against the index before it counts it: after a
 *    kill the page cache still holds it, after a power cut it may be gone.
 *  - INVALID: positions found wrong by verification: to be written again.
 *  - VERIFIED: the whole target was read back and matched the index.
 * A later record about a position overrides an earlier one.
 */
#ifndef SLOTSYNC_JOURNAL_H
#define SLOTSYNC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct slotsync_journal_identity {
	uint8_t index_digest[SLOTSYNC_DIGEST_BYTES];
	uint64_t image_size;
	uint64_t n_chunks;
	uint64_t target_dev;   /* st_dev of a file, st_rdev of a block device */
	uint64_t target_ino;   /* st_ino of a file, 0 for a block device */
};

struct slotsync_journal;

/* What slotsync_journal_open() says of each position in done[]. */
enum {
	SLOTSYNC_JOURNAL_TODO = 0,
	SLOTSYNC_JOURNAL_DURABLE = 1, /* DONE: on disk */
	SLOTSYNC_JOURNAL_WRITTEN = 2, /* WRITTEN: check it before counting it */
};

/* Opens or creates the journal at path for a target with this identity.  An
 * existing journal of another index or target is refused (-EEXIST, err says
 * which) unless reset is set, in which case it is started anew.  done[] (n_chunks
 * bytes, caller-owned) receives SLOTSYNC_JOURNAL_DURABLE for every position the
 * journal proves durable, SLOTSYNC_JOURNAL_WRITTEN for every position only
 * written, and SLOTSYNC_JOURNAL_TODO for the rest; *verified is set if the
 * journal holds a VERIFIED record.  Appends may come from several threads. */
SLOTSYNC_EXPORT int slotsync_journal_open(const char *path, const struct slotsync_journal_identity *id, int reset,
			  uint8_t *done, int *verified, struct slotsync_journal **out, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_journal_free(struct slotsync_journal *j);

/* Appends a DONE record for positions[0..n) and fdatasyncs the journal.  The
 * caller must have made those chunks durable on the target first. */
SLOTSYNC_EXPORT int slotsync_journal_append_done(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				 struct slotsync_error *err);

/* Appends a WRITTEN record for positions[0..n), without fdatasync: it survives
 * a killed process, maybe not a power cut, and promises nothing either way. */
SLOTSYNC_EXPORT int slotsync_journal_append_written(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				    struct slotsync_error *err);

/* Appends an INVALID record (positions to be written again). */
SLOTSYNC_EXPORT int slotsync_journal_append_invalid(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				    struct slotsync_error *err);

/* Appends a VERIFIED record: the target was read back and matched. */
SLOTSYNC_EXPORT int slotsync_journal_append_verified(struct slotsync_journal *j, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
