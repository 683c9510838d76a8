/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install plan: see include/slotsync/plan.h. */
#include "slotsync/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

static int cmp_position(const void *a, const void *b, void *arg)
{
	const struct slotsync_index *idx = arg;
	uint32_t pa = *(const uint32_t *)a, pb = *(const uint32_t *)b;
	int c = memcmp(idx->chunks[pa].id, idx->chunks[pb].id, SLOTSYNC_DIGEST_BYTES);

	if (c)
		return c;
	return pa < pb ? -1 : pa > pb;
}

static uint64_t id_key(const uint8_t *id)
{
	uint64_t k;

	memcpy(&k, id, sizeof(k)); /* ids are digests: already uniform */
	return k;
}

static const uint8_t *group_id(const struct slotsync_plan *p, size_t g)
{
	return p->idx->chunks[p->positions[p->groups[g].first]].id;
}

static int lookup_build(struct slotsync_plan *p)
{
	size_t cap = 16;

	while (cap < p->n_groups * 2)
		cap *= 2;
	p->lookup = calloc(cap, sizeof(*p->lookup));
	if (!p->lookup)
		return -ENOMEM;
	p->lookup_cap = cap;
	for (size_t g = 0; g < p->n_groups; g++) {
		size_t i = id_key(group_id(p, g)) & (cap - 1);
		while (p->lookup[i])
			i = (i + 1) & (cap - 1);
		p->lookup[i] = (uint32_t)(g + 1);
	}
	return 0;
}

/* The group with this id and size, or SIZE_MAX. */
static size_t lookup_find(const struct slotsync_plan *p, const uint8_t *id, uint64_t size)
{
	for (size_t i = id_key(id) & (p->lookup_cap - 1); p->lookup[i]; i = (i + 1) & (p->lookup_cap - 1)) {
		size_t g = p->lookup[i] - 1;
		if (memcmp(group_id(p, g), id, SLOTSYNC_DIGEST_BYTES) == 0 &&
		    slotsync_index_chunk_size(p->idx, p->positions[p->groups[g].first]) == size)
			return g;
	}
	return SIZE_MAX;
}

int slotsync_plan_build(const struct slotsync_index *idx, const uint8_t *done, struct slotsync_plan **out,
			struct slotsync_error *err)
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
		} else {
			g->source = SLOTSYNC_SOURCE_FETCH;
			p->chunks_fetch++;
			p->bytes_fetch += size;
		}
		p->n_groups++;
		i = j;
	}
	if (lookup_build(p) < 0) {
		slotsync_plan_free(p);
		return slotsync_error_set(err, -ENOMEM, "out of memory planning %zu chunks", n);
	}
	*out = p;
	return 0;
}

struct seed_resolve {
	struct slotsync_plan *plan;
	uint16_t seed;
};

static int seed_chunk(void *userdata, const uint8_t *id, uint64_t offset, uint32_t size)
{
	struct seed_resolve *sr = userdata;
	struct slotsync_plan *p = sr->plan;
	size_t g = lookup_find(p, id, size);

	if (g == SIZE_MAX || p->groups[g].source != SLOTSYNC_SOURCE_FETCH)
		return 0; /* not needed, or a seed already offers it */
	p->groups[g].source = SLOTSYNC_SOURCE_SEED;
	p->groups[g].seed = sr->seed;
	p->groups[g].seed_offset = offset;
	p->chunks_fetch--;
	p->bytes_fetch -= size;
	p->chunks_seed++;
	p->bytes_seed += size;
	return 0;
}

int slotsync_plan_add_seed(struct slotsync_plan *plan, const char *image, const char *index, struct slotsync_error *err)
{
	struct slotsync_chunker_params params = {
		.min_bytes = (uint32_t)plan->idx->chunk_size_min,
		.avg_bytes = (uint32_t)plan->idx->chunk_size_avg,
		.max_bytes = (uint32_t)plan->idx->chunk_size_max,
	};
	struct slotsync_plan_seed *seed;
	struct seed_resolve sr = { plan, 0 };
	int r;

	if (!plan->lookup)
		return slotsync_error_set(err, -EINVAL, "seeds must be added before slotsync_plan_seeds_done()");
	if (plan->n_seeds >= SLOTSYNC_PLAN_SEEDS_MAX)
		return slotsync_error_set(err, -E2BIG, "too many seeds (at most %d)", SLOTSYNC_PLAN_SEEDS_MAX);
	seed = &plan->seeds[plan->n_seeds];
	seed->fd = open(image, O_RDONLY | O_CLOEXEC);
	if (seed->fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open seed %s", image);
	seed->path = strdup(image);
	if (!seed->path) {
		close(seed->fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	sr.seed = (uint16_t)plan->n_seeds;
	plan->n_seeds++;
	r = slotsync_seed_scan(seed->fd, seed->path, index, plan->idx->digest, &params, seed_chunk, &sr, err);
	return r;
}

void slotsync_plan_seeds_done(struct slotsync_plan *plan)
{
	free(plan->lookup);
	plan->lookup = NULL;
	plan->lookup_cap = 0;
}

int slotsync_plan_read_seed(struct slotsync_plan *plan, size_t group, void *buf, struct slotsync_error *err)
{
	const struct slotsync_plan_group *g = &plan->groups[group];
	uint32_t pos = plan->positions[g->first];
	const struct slotsync_plan_seed *seed = &plan->seeds[g->seed];

	return slotsync_seed_read_chunk(seed->fd, seed->path, g->seed_offset,
					(size_t)slotsync_index_chunk_size(plan->idx, pos), plan->idx->digest,
					plan->idx->chunks[pos].id, buf, err);
}

void slotsync_plan_demote_to_fetch(struct slotsync_plan *plan, size_t group)
{
	struct slotsync_plan_group *g = &plan->groups[group];
	uint64_t size = slotsync_index_chunk_size(plan->idx, plan->positions[g->first]);

	if (g->source == SLOTSYNC_SOURCE_SEED) {
		plan->chunks_seed--;
		plan->bytes_seed -= size;
	} else if (g->source == SLOTSYNC_SOURCE_DELTA) {
		plan->chunks_delta--;
		plan->bytes_delta -= size;
	} else {
		return;
	}
	g->source = SLOTSYNC_SOURCE_FETCH;
	plan->chunks_fetch++;
	plan->bytes_fetch += size;
}

/* The objects of d take the chunks still to fetch; packs: only an object
 * whose chunks to fetch make at least half the bytes it rebuilds. */
static int add_objects(struct slotsync_plan *plan, const struct slotsync_delta_index *d,
		       const struct slotsync_index *base, size_t seed, int packs, struct slotsync_error *err)
{
	size_t n = plan->idx->n_chunks;
	uint32_t *group_of;

	group_of = plan->group_of = malloc((n ? n : 1) * sizeof(*group_of));
	plan->object_used = calloc(d->n_objects + 1, 1);
	if (!group_of || !plan->object_used)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	for (size_t g = 0; g < plan->n_groups; g++)
		for (uint32_t k = 0; k < plan->groups[g].count; k++)
			group_of[plan->positions[plan->groups[g].first + k]] = (uint32_t)g;
	plan->delta = d;
	plan->delta_base = base;
	plan->delta_seed = (uint16_t)seed;
	for (uint32_t o = 0; o < d->n_objects; o++) {
		const struct slotsync_delta_object *obj = &d->objects[o];
		if (packs) {
			uint64_t want = 0, out = plan->idx->chunks[obj->first + obj->count - 1].end -
						 slotsync_index_chunk_start(plan->idx, obj->first);
			for (uint32_t k = 0; k < obj->count; k++)
				if (plan->groups[group_of[obj->first + k]].source == SLOTSYNC_SOURCE_FETCH)
					want += slotsync_index_chunk_size(plan->idx, obj->first + k);
			if (want * 2 < out)
				continue;
		}
		for (uint32_t k = 0; k < obj->count; k++) {
			struct slotsync_plan_group *g = &plan->groups[group_of[obj->first + k]];
			uint64_t size = slotsync_index_chunk_size(plan->idx, obj->first + k);
			if (g->source != SLOTSYNC_SOURCE_FETCH)
				continue; /* a seed has it, it is done, or another object makes it */
			g->source = SLOTSYNC_SOURCE_DELTA;
			g->seed_offset = o;
			plan->chunks_fetch--;
			plan->bytes_fetch -= size;
			plan->chunks_delta++;
			plan->bytes_delta += size;
			if (!plan->object_used[o]) {
				plan->object_used[o] = 1;
				plan->objects_delta++;
				plan->object_bytes += obj->size;
			}
		}
	}
	return 0;
}

int slotsync_plan_add_delta(struct slotsync_plan *plan, const struct slotsync_delta_index *d,
			    const struct slotsync_index *base, size_t seed, struct slotsync_error *err)
{
	if (seed >= plan->n_seeds)
		return slotsync_error_set(err, -EINVAL, "no seed %zu for the delta objects", seed);
	return add_objects(plan, d, base, seed, 0, err);
}

int slotsync_plan_add_packs(struct slotsync_plan *plan, const struct slotsync_delta_index *d,
			    struct slotsync_error *err)
{
	return add_objects(plan, d, NULL, 0, 1, err);
}

int64_t slotsync_plan_read_reference(struct slotsync_plan *plan, size_t object, int target_fd, const char *target,
				     uint8_t *buf, uint8_t *chunk_buf, struct slotsync_error *err)
{
	const struct slotsync_delta_index *d = plan->delta;
	const struct slotsync_delta_object *o = &d->objects[object];
	const struct slotsync_plan_seed *seed = &plan->seeds[plan->delta_seed];
	uint64_t at = 0;

	for (uint32_t k = 0; k < o->ref_count; k++) {
		const struct slotsync_delta_ref *r = &d->refs[o->ref_first + k];
		/* a base range from the seed, a new-image range from the target */
		const struct slotsync_index *idx = r->target ? plan->idx : plan->delta_base;
		size_t b = r->chunk, end = r->target ? o->first : idx->n_chunks;
		uint64_t off = r->offset, left = r->length;
		while (left > 0) {
			size_t size, take;
			int rc;
			if (b >= end)
				return slotsync_error_set(err, -EBADMSG, "delta object %zu: a reference past %s", object,
							  r->target ? "the chunks before its output" : "the base image");
			size = (size_t)slotsync_index_chunk_size(idx, b);
			rc = slotsync_seed_read_chunk(r->target ? target_fd : seed->fd, r->target ? target : seed->path,
						      slotsync_index_chunk_start(idx, b), size, idx->digest, idx->chunks[b].id,
						      chunk_buf, err);
			if (rc < 0) {
				slotsync_error_prefix(err, "delta object %zu: %s chunk %zu", object,
						      r->target ? "new" : "base", b);
				return rc;
			}
			take = size - off < left ? size - (size_t)off : (size_t)left;
			memcpy(buf + at, chunk_buf + off, take);
			at += take;
			left -= take;
			off = 0;
			b++;
		}
	}
	return (int64_t)at;
}

void slotsync_plan_free(struct slotsync_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n_seeds; i++) {
		close(plan->seeds[i].fd);
		free(plan->seeds[i].path);
	}
	free(plan->positions);
	free(plan->groups);
	free(plan->lookup);
	free(plan->object_used);
	free(plan->group_of);
	free(plan);
}
