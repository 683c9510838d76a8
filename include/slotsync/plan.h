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
	enum slotsync_source source;
};

struct slotsync_plan {
	const struct slotsync_index *idx;
	uint32_t *positions;                   /* chunk positions, grouped by id */
	struct slotsync_plan_group *groups;
	size_t n_groups;
	/* totals */
	uint64_t chunks_done, bytes_done;      /* places already durable */
	uint64_t chunks_seed, bytes_seed;      /* unique chunks from seeds */
	uint64_t chunks_fetch, bytes_fetch;    /* unique chunks to fetch (uncompressed) */
};

/* Builds the plan for idx.  seeds may be NULL; done may be NULL (nothing done). */
int slotsync_plan_build(const struct slotsync_index *idx, const struct slotsync_seed_set *seeds, const uint8_t *done,
			struct slotsync_plan **out, struct slotsync_error *err);
void slotsync_plan_free(struct slotsync_plan *plan);

/* Moves a group from its source to the network (a seed copy failed its check). */
void slotsync_plan_demote_to_fetch(struct slotsync_plan *plan, size_t group);

#ifdef __cplusplus
}
#endif
#endif
