/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the install plan: where each chunk of the new image comes from.
 *
 * Chunks with the same id are grouped: a chunk that occurs several times in the
 * new image is read or fetched once and written to every place it occurs.  Each
 * group gets one source.  Sources are an open set (seed copy, fetched chunk, and
 * later delta objects): a new source is one more enum value and one more case in
 * the assembler, nothing else.
 */
#ifndef SLOTSYNC_PLAN_H
#define SLOTSYNC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/delta.h"
#include "slotsync/error.h"
#include "slotsync/index.h"
#include "slotsync/seed.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_source {
	SLOTSYNC_SOURCE_DONE = 0,  /* every place already durable (journal) */
	SLOTSYNC_SOURCE_SEED = 1,  /* a local seed holds it */
	SLOTSYNC_SOURCE_FETCH = 2, /* from the store, over the network */
	SLOTSYNC_SOURCE_DELTA = 3, /* rebuilt by a delta object against a seed */
};

struct slotsync_plan_group {
	uint32_t first;        /* into positions[] */
	uint32_t count;        /* places in the image */
	uint32_t todo;         /* places not yet durable */
	uint8_t source;        /* enum slotsync_source */
	uint8_t pad;
	uint16_t seed;         /* SEED: which seed */
	uint64_t seed_offset;  /* SEED: where in it; DELTA: the object */
};

#define SLOTSYNC_PLAN_SEEDS_MAX 16

struct slotsync_plan_seed {
	char *path;
	int fd;                                /* opened read-only: a seed is never written */
};

struct slotsync_plan {
	const struct slotsync_index *idx;
	uint32_t *positions;                   /* chunk positions, grouped by id */
	struct slotsync_plan_group *groups;
	size_t n_groups;
	uint32_t *lookup;                      /* id -> group + 1 (0: empty), open addressing */
	size_t lookup_cap;
	struct slotsync_plan_seed seeds[SLOTSYNC_PLAN_SEEDS_MAX];
	size_t n_seeds;
	/* delta objects (slotsync_plan_add_delta) */
	const struct slotsync_delta_index *delta;
	const struct slotsync_index *delta_base; /* the base index, its image in seed delta_seed */
	uint16_t delta_seed;
	uint8_t *object_used;                  /* per object: rebuilds something still to do */
	uint32_t *group_of;                    /* per position of the index: its group */
	uint64_t objects_delta, object_bytes;  /* objects to fetch, their compressed bytes */
	uint64_t chunks_delta, bytes_delta;    /* unique chunks they rebuild (uncompressed) */
	/* totals */
	uint64_t chunks_done, bytes_done;      /* places already durable */
	uint64_t chunks_seed, bytes_seed;      /* unique chunks from seeds */
	uint64_t chunks_fetch, bytes_fetch;    /* unique chunks to fetch (uncompressed) */
};

/* Builds the plan for idx: every group to fetch, but for places done[] says are
 * durable (done may be NULL). */
SLOTSYNC_EXPORT int slotsync_plan_build(const struct slotsync_index *idx, const uint8_t *done, struct slotsync_plan **out,
			struct slotsync_error *err);

/* Adds a seed (an image, and its index or NULL): every group still to fetch
 * that the seed holds will be copied from it.  The seed's index is streamed, and the plan keeps one
 * location per group, so memory does not grow with the seed. */
SLOTSYNC_EXPORT int slotsync_plan_add_seed(struct slotsync_plan *plan, const char *image, const char *index,
				   struct slotsync_error *err);

/* Frees what only seed resolution needs (the id lookup): call after the last
 * slotsync_plan_add_seed(). */
SLOTSYNC_EXPORT void slotsync_plan_seeds_done(struct slotsync_plan *plan);

/* Reads the chunk of a SEED group into buf and checks it. */
SLOTSYNC_EXPORT int slotsync_plan_read_seed(struct slotsync_plan *plan, size_t group, void *buf, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_plan_free(struct slotsync_plan *plan);

/* Moves a group from its source to the network (a seed copy failed its check,
 * a delta object could not be used). */
SLOTSYNC_EXPORT void slotsync_plan_demote_to_fetch(struct slotsync_plan *plan, size_t group);

/* Delta objects: every group still to fetch that an object of d rebuilds comes
 * from that object instead.  d and base (the base index, checked against d by
 * the caller) must outlive the plan; seed is the seed that holds the base
 * image, read through base.  Call after slotsync_plan_seeds_done(). */
SLOTSYNC_EXPORT int slotsync_plan_add_delta(struct slotsync_plan *plan, const struct slotsync_delta_index *d,
			    const struct slotsync_index *base, size_t seed, struct slotsync_error *err);

/* Pack objects (a delta index with no base, slotsync/delta.h): an object is
 * used for the chunks still to fetch when those make at least half the bytes
 * it rebuilds (a resumed install, or a seed that has the rest, fetches the few
 * missing chunks as chunks instead).  d must outlive the plan.  Call after
 * slotsync_plan_seeds_done(), instead of slotsync_plan_add_delta(). */
SLOTSYNC_EXPORT int slotsync_plan_add_packs(struct slotsync_plan *plan, const struct slotsync_delta_index *d,
					    struct slotsync_error *err);

/* Reads the reference of object o into buf (at least its size): each base
 * chunk it touches is read whole from the seed and checked against the base
 * index first; each chunk of the new image (ranges before the object's
 * output) is read from target_fd and checked against the new index.
 * chunk_buf holds the largest chunk of either.  Returns the reference's size
 * or an error. */
SLOTSYNC_EXPORT int64_t slotsync_plan_read_reference(struct slotsync_plan *plan, size_t object, int target_fd, const char *target,
				     uint8_t *buf, uint8_t *chunk_buf, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
