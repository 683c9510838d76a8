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

#include "slotsync/error.h"
#include "slotsync/index.h"
#include "slotsync/seed.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_source {
	SLOTSYNC_SOURCE_DONE = 0,  /* every place already durable (journal) */
	SLOTSYNC_SOURCE_SEED = 1,  /* a local seed holds it */
	SLOTSYNC_SOURCE_FETCH = 2, /* from the store, over the network */
};

struct slotsync_plan_group {
	uint32_t first;        /* into positions[] */
	uint32_t count;        /* places in the image */
	uint32_t todo;         /* places not yet durable */
	uint8_t source;        /* enum slotsync_source */
	uint8_t pad;
	uint16_t seed;         /* SEED: which seed */
	uint64_t seed_offset;  /* SEED: where in it */
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
	/* totals */
	uint64_t chunks_done, bytes_done;      /* places already durable */
	uint64_t chunks_seed, bytes_seed;      /* unique chunks from seeds */
	uint64_t chunks_fetch, bytes_fetch;    /* unique chunks to fetch (uncompressed) */
};

/* Builds the plan for idx: every group to fetch, but for places done[] says are
 * durable (done may be NULL). */
int slotsync_plan_build(const struct slotsync_index *idx, const uint8_t *done, struct slotsync_plan **out,
			struct slotsync_error *err);

/* Adds a seed ("IMAGE[:INDEX]"): every group still to fetch that the seed holds
 * will be copied from it.  The seed's index is streamed, and the plan keeps one
 * location per group, so memory does not grow with the seed. */
int slotsync_plan_add_seed(struct slotsync_plan *plan, const char *spec, struct slotsync_error *err);

/* Frees what only seed resolution needs (the id lookup): call after the last
 * slotsync_plan_add_seed(). */
void slotsync_plan_seeds_done(struct slotsync_plan *plan);

/* Reads the chunk of a SEED group into buf and checks it. */
int slotsync_plan_read_seed(struct slotsync_plan *plan, size_t group, void *buf, struct slotsync_error *err);
void slotsync_plan_free(struct slotsync_plan *plan);

/* Moves a group from its source to the network (a seed copy failed its check). */
void slotsync_plan_demote_to_fetch(struct slotsync_plan *plan, size_t group);

#ifdef __cplusplus
}
#endif
#endif
