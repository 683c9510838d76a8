/* The install plan: see include/slotsync/plan.h. */
#include "slotsync/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cmp_position(const void *a, const void *b, void *arg)
{
	const struct slotsync_index *idx = arg;
	uint32_t pa = *(const uint32_t *)a, pb = *(const uint32_t *)b;
	int c = memcmp(idx->chunks[pa].id, idx->chunks[pb].id, SLOTSYNC_DIGEST_BYTES);

	if (c)
		return c;
	return pa < pb ? -1 : pa > pb;
}

int slotsync_plan_build(const struct slotsync_index *idx, const struct slotsync_seed_set *seeds, const uint8_t *done,
			struct slotsync_plan **out, struct slotsync_error *err)
{
	struct slotsync_plan *p;
	size_t n = idx->n_chunks;

	if (n > UINT32_MAX)
		return slotsync_error_set(err, -E2BIG, "index has too many chunks (%zu)", n);
	p = calloc(1, sizeof(*p));
	if (!p)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	p->idx = idx;
	p->positions = malloc((n ? n : 1) * sizeof(*p->positions));
	p->groups = malloc((n ? n : 1) * sizeof(*p->groups));
	if (!p->positions || !p->groups) {
		slotsync_plan_free(p);
		return slotsync_error_set(err, -ENOMEM, "out of memory planning %zu chunks", n);
	}
	for (size_t i = 0; i < n; i++)
		p->positions[i] = (uint32_t)i;
	qsort_r(p->positions, n, sizeof(*p->positions), cmp_position, (void *)idx);

	for (size_t i = 0; i < n;) {
		struct slotsync_plan_group *g = &p->groups[p->n_groups];
		const uint8_t *id = idx->chunks[p->positions[i]].id;
		uint64_t size = slotsync_index_chunk_size(idx, p->positions[i]);
		size_t j = i;

		g->first = (uint32_t)i;
		g->todo = 0;
		/* group places with this id; sizes could differ only in a forged index */
		while (j < n && memcmp(idx->chunks[p->positions[j]].id, id, SLOTSYNC_DIGEST_BYTES) == 0 &&
		       slotsync_index_chunk_size(idx, p->positions[j]) == size) {
			if (done && done[p->positions[j]]) {
				p->chunks_done++;
				p->bytes_done += size;
			} else {
				g->todo++;
			}
			j++;
		}
		g->count = (uint32_t)(j - i);
		if (g->todo == 0) {
			g->source = SLOTSYNC_SOURCE_DONE;
		} else if (seeds && slotsync_seed_set_has(seeds, id, size)) {
			g->source = SLOTSYNC_SOURCE_SEED;
			p->chunks_seed++;
			p->bytes_seed += size;
		} else {
			g->source = SLOTSYNC_SOURCE_FETCH;
			p->chunks_fetch++;
			p->bytes_fetch += size;
		}
		p->n_groups++;
		i = j;
	}
	*out = p;
	return 0;
}

void slotsync_plan_demote_to_fetch(struct slotsync_plan *plan, size_t group)
{
	struct slotsync_plan_group *g = &plan->groups[group];
	uint64_t size = slotsync_index_chunk_size(plan->idx, plan->positions[g->first]);

	if (g->source != SLOTSYNC_SOURCE_SEED)
		return;
	g->source = SLOTSYNC_SOURCE_FETCH;
	plan->chunks_seed--;
	plan->bytes_seed -= size;
	plan->chunks_fetch++;
	plan->bytes_fetch += size;
}

void slotsync_plan_free(struct slotsync_plan *plan)
{
	if (!plan)
		return;
	free(plan->positions);
	free(plan->groups);
	free(plan);
}
