/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: resemblance, by content only.  Every position of the base
 * image whose 8 bytes hash into a sampled class (1 in 2^ANCHOR_BITS) is an
 * anchor, kept in a table sorted by hash.  For a new chunk, the anchors sampled
 * the same way in it are looked up; each hit votes for a diagonal (base offset -
 * new offset).  The most-voted diagonals, widened by a margin, are the chunk's
 * reference ranges, merged into disjoint intervals of the base and named by the
 * base chunks that hold them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "delta_internal.h"

#define ANCHOR_BITS 5                /* 1 anchor in 32 positions */
#define OCC_MAX 8                    /* hash classes seen more often say nothing */
#define MIN_VOTES 2

static inline uint64_t mix8(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v * UINT64_C(0x9e3779b97f4a7c15);
}

/* A sampled position: the top ANCHOR_BITS bits of its hash are zero.  The key
 * is the next 24 bits.  Runs of one byte value (zeros, padding) are skipped. */
static inline int anchor_key(const uint8_t *p, uint32_t *key)
{
	uint64_t h = mix8(p);

	if (h >> (64 - ANCHOR_BITS))
		return 0;
	if (p[0] == p[7] && !memcmp(p, p + 1, 7))
		return 0;
	*key = (uint32_t)(h >> (64 - ANCHOR_BITS - 24)) & 0xffffff;
	return 1;
}

/* Sorts the anchors a[0..n), made in increasing position, by key and then
 * position: a stable radix sort on the key's 24 bits (three passes of 8) keeps
 * each key's positions in the order they were made.  Returns the sorted array
 * (a or the other buffer; the one not returned is freed), NULL without memory. */
static uint64_t *sort_anchors(uint64_t *a, size_t n)
{
	uint64_t *b = malloc((n ? n : 1) * sizeof(*b));

	if (!b) {
		free(a);
		return NULL;
	}
	for (unsigned shift = ANCHOR_POS_BITS; shift < 64; shift += 8) {
		size_t count[256] = { 0 }, at = 0;
		uint64_t *t;
		for (size_t i = 0; i < n; i++)
			count[(a[i] >> shift) & 0xff]++;
		for (unsigned k = 0; k < 256; k++) {
			size_t c = count[k];
			count[k] = at;
			at += c;
		}
		for (size_t i = 0; i < n; i++)
			b[count[(a[i] >> shift) & 0xff]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	free(b);
	return a;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int resemble_build_anchors(struct space *sp, struct slotsync_error *err)
{
	size_t cap = sp->size / (1u << ANCHOR_BITS) + 1024, n = 0;
	uint64_t *a = malloc(cap * sizeof(*a));

	if (!a)
		return slotsync_error_set(err, -ENOMEM, "out of memory for the anchor table");
	for (uint64_t p = 0; p + 8 <= sp->size; p++) {
		uint32_t key;
		if (!anchor_key(sp->p + p, &key))
			continue;
		if (n == cap) {
			uint64_t *g = realloc(a, (cap *= 2) * sizeof(*a));
			if (!g) {
				free(a);
				return slotsync_error_set(err, -ENOMEM, "out of memory for the anchor table");
			}
			a = g;
		}
		a[n++] = (uint64_t)key << ANCHOR_POS_BITS | p;
	}
	a = sort_anchors(a, n);
	if (!a)
		return slotsync_error_set(err, -ENOMEM, "out of memory for the anchor table");
	sp->anchors = a;
	sp->n_anchors = n;
	return 0;
}

/* Anchors of key: [*lo, *hi). */
static void anchor_range(const struct space *sp, uint32_t key, size_t *lo, size_t *hi)
{
	uint64_t k0 = (uint64_t)key << ANCHOR_POS_BITS, k1 = (uint64_t)(key + 1) << ANCHOR_POS_BITS;
	size_t l = 0, h = sp->n_anchors;

	while (l < h) {
		size_t m = (l + h) / 2;
		if (sp->anchors[m] < k0)
			l = m + 1;
		else
			h = m;
	}
	*lo = l;
	h = sp->n_anchors;
	while (l < h) {
		size_t m = (l + h) / 2;
		if (sp->anchors[m] < k1)
			l = m + 1;
		else
			h = m;
	}
	*hi = l;
}

static int cmp_diag_votes(const void *a, const void *b)
{
	const struct diag *x = a, *y = b;

	if (x->votes != y->votes)
		return x->votes > y->votes ? -1 : 1;
	return x->d < y->d ? -1 : x->d > y->d;
}

/* The most-voted diagonals (offset in sp - offset in src) of src[s, e): up to
 * DIAG_PER_CHUNK into out. */
size_t resemble_vote(const struct space *sp, const uint8_t *src, uint64_t s, uint64_t e, int64_t **buf,
		     size_t *cap, struct diag *out)
{
	size_t n = 0, nd = 0, m = 0;
	int64_t *v = *buf;
	struct diag cand[256];

	for (uint64_t q = s; q + 8 <= e; q++) {
		uint32_t key;
		size_t lo, hi;
		if (!anchor_key(src + q, &key))
			continue;
		anchor_range(sp, key, &lo, &hi);
		if (hi == lo || hi - lo > OCC_MAX)
			continue;
		for (size_t i = lo; i < hi; i++) {
			uint64_t p = sp->anchors[i] & ANCHOR_POS_MASK;
			/* a true match, not a hash collision */
			if (memcmp(sp->p + p, src + q, 8) != 0)
				continue;
			if (n == *cap) {
				size_t nc = *cap ? *cap * 2 : 4096;
				int64_t *g = realloc(v, nc * sizeof(*v));
				if (!g)
					return 0;
				*buf = v = g;
				*cap = nc;
			}
			v[n++] = (int64_t)p - (int64_t)q;
		}
	}
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_i64);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && v[j] == v[i])
			j++;
		if (m < 256) {
			cand[m].d = v[i];
			cand[m].votes = (uint32_t)(j - i);
			m++;
		} else {
			/* keep the best 256: replace the weakest */
			size_t w = 0;
			for (size_t k = 1; k < m; k++)
				if (cand[k].votes < cand[w].votes)
					w = k;
			if (cand[w].votes < j - i) {
				cand[w].d = v[i];
				cand[w].votes = (uint32_t)(j - i);
			}
		}
		i = j;
	}
	qsort(cand, m, sizeof(*cand), cmp_diag_votes);
	for (size_t i = 0; i < m && nd < DIAG_PER_CHUNK; i++)
		if (cand[i].votes >= MIN_VOTES || nd == 0)
			out[nd++] = cand[i];
	return nd;
}

static int cmp_interval(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

/* Sorts iv[0..n) and merges overlapping intervals; returns how many are left. */
size_t resemble_merge_intervals(struct interval *iv, size_t n)
{
	size_t m = 0;

	qsort(iv, n, sizeof(*iv), cmp_interval);
	for (size_t i = 0; i < n; i++) {
		if (m && iv[i].s <= iv[m - 1].e) {
			if (iv[i].e > iv[m - 1].e)
				iv[m - 1].e = iv[i].e;
		} else
			iv[m++] = iv[i];
	}
	return m;
}

/* Base chunk holding offset off (binary search). */
uint32_t resemble_base_chunk_at(const struct slotsync_index *idx, uint64_t off)
{
	size_t l = 0, h = idx->n_chunks;

	while (l < h) {
		size_t m = (l + h) / 2;
		if (idx->chunks[m].end <= off)
			l = m + 1;
		else
			h = m;
	}
	return (uint32_t)l;
}
