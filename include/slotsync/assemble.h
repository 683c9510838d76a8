/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — assembling an image onto a target (the inactive slot).
 *
 * The device's core step: read the new index, plan every chunk (seed or
 * network), copy seed chunks (each checked before use), fetch the rest over one
 * HTTP/2 connection (each decompressed with a hard bound and checked), write
 * each to every place it occurs, and finally read the whole target back and
 * check it against the index.  Success means the target is byte-exact.
 *
 * Durability: writes are positioned; after each batch the target is
 * fdatasync'd, then a journal record naming the batch's chunks is appended and
 * fdatasync'd.  A run that is cut at any instant resumes from the journal and
 * redoes only what the journal does not prove durable: at most one batch, which
 * for fetched chunks is bounded by concurrency x max chunk size.
 *
 * Delta objects (slotsync/delta.h): when a seed comes with its index (the
 * active slot and the index of the release it runs) and the store holds a
 * delta index for that base and the new index, the chunks the seed lacks come
 * from delta objects where the delta index has one, the rest as chunks.  An
 * object that cannot be used (its download, its reference, its decoding or a
 * chunk it rebuilds fails its check) is reported and its chunks are fetched
 * plain instead.
 */
#ifndef SLOTSYNC_ASSEMBLE_H
#define SLOTSYNC_ASSEMBLE_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/envelope.h"
#include "slotsync/error.h"
#include "slotsync/fetch.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct slotsync_assemble_stats {
	uint64_t chunks_total, bytes_total;          /* the image */
	uint64_t chunks_already_done;                /* places the journal proved durable */
	uint64_t chunks_rechecked;                   /* journaled as written only: read back and found good */
	uint64_t chunks_recheck_failed;              /* ... and found wrong (lost in a power cut): redone */
	uint64_t chunks_from_seed, bytes_from_seed;  /* places written from seeds */
	uint64_t chunks_fetched, bytes_fetched;      /* unique chunks fetched; bytes over the wire */
	uint64_t chunks_to_fetch, bytes_to_fetch;    /* plan: unique chunks and their uncompressed bytes */
	uint64_t bytes_written;                      /* to the target */
	uint64_t seed_chunks_rejected;               /* seed copies that failed their check */
	uint64_t chunks_from_delta, bytes_from_delta;  /* unique chunks rebuilt by delta objects, their bytes */
	uint64_t delta_objects, delta_bytes_fetched;  /* objects used, their bytes over the wire */
	uint64_t delta_objects_planned, delta_bytes_to_fetch; /* plan: objects and their compressed bytes */
	uint64_t delta_chunks_planned, delta_bytes_planned;   /* plan: unique chunks they rebuild, uncompressed */
	uint64_t delta_objects_failed;                /* objects that could not be used ... */
	uint64_t delta_chunks_refetched;              /* ... whose chunks were fetched plain */
	char delta_index[200];                        /* the delta index used (store path), or "" */
	uint64_t delta_objects_skipped;               /* objects left out before the plan: this device
	                                                 compresses otherwise (their chunks are fetched) */
	char delta_note[256];                         /* why, or "" */
	uint64_t fetch_retries, fetch_resumed;
	long connections;
	int http_version;
	uint64_t chunks_from_bundle, bytes_from_bundle; /* unique chunks embedded in the bundle, their frames' bytes */
	uint64_t bundle_chunks_rejected;             /* embedded frames refused (wrong, unreadable): from the store */
	int verified;                                /* the target was read back and matched */
	double seconds;
};

struct slotsync_assemble_options {
	const char *index_path;
	const char *target;          /* regular file (created if missing) or block device */
	const char *journal_path;    /* required for a block device; default TARGET.journal */
	const char *const *seeds;    /* seed images (file or block device) */
	const char *const *seed_indexes; /* per seed: its index file, or NULL; may be NULL (none has one) */
	size_t n_seeds;
	struct slotsync_fetch_options fetch;  /* base_url: the store */
	int dry_run;                 /* plan only: write and fetch nothing (the delta index is fetched) */
	int no_delta;                /* never use delta objects */
	const char *delta_index_path;  /* a delta index file to use rather than the store's */
	/* A signed manifest's delta indexes (base index SHA-256 -> delta index
	 * SHA-256): with signed_deltas set, only a listed delta index is used, and
	 * only if its SHA-256 matches; without, any the store has (every chunk an
	 * object rebuilds is still checked against the index) */
	int signed_deltas;
	const struct slotsync_manifest_delta *deltas;
	size_t n_deltas;
	/* a bundle with embedded chunks (slotsync-gen bundle --embed): its
	 * frames are used before the network, each checked against the index;
	 * NULL: none */
	const char *embedded_bundle;
	int reset_journal;           /* start anew when the journal belongs to something else */
	/* called now and then with the running totals (may be NULL); not always on
	 * the caller's thread, but never twice at once */
	void (*progress)(void *userdata, const struct slotsync_assemble_stats *st);
	void *progress_userdata;
};

SLOTSYNC_EXPORT int slotsync_assemble(const struct slotsync_assemble_options *opt, struct slotsync_assemble_stats *stats,
		      struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
