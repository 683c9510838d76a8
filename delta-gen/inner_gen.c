/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the gzip files inside the blocks of a gzip, xz, lz4 or zstd
 * image (blocks_gen.c's BLOCKS codec, one level down).  A security update
 * changes the changelogs and man pages of the packages it upgrades, gzipped:
 * a changed file is a new deflate stream inside a block's content, sharing
 * no bytes with the old one, though its content does.  So a recorded block's
 * gzip files that the inner profile (zlib -9 or -6, memLevel 8 or 9) makes
 * again are given by their content (a nested record); the base block holding
 * the old file that content resembles most goes into the reference, and the
 * old file's content is inflated after it (the map lists it).  The base's
 * gzip files are found and inflated once (c->g_sp, with anchors). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "delta_internal.h"

/* The gzip files of the expanded base, their content one after the other in
 * c->g_sp with anchors, so that a new file's content finds its old one (and
 * so the block to put in the reference) however the rest of its block
 * changed.  Without memory, or with no gzip file, g_sp stays empty. */
static void inner_base(struct ctx *c)
{
	struct slotsync_error e = { 0 };
	uint64_t total = 0;

	if (members_scan(c->xb, c->x_sp.size, c->inner.block_max, &c->gsq) < 0 || !c->gsq.n_blocks)
		return;
	for (size_t i = 0; i < c->gsq.n_blocks; i++)
		total += c->gsq.blocks[i].usize;
	c->gat = malloc(c->gsq.n_blocks * sizeof(*c->gat));
	c->gb = malloc(total ? total : 1);
	if (!c->gat || !c->gb)
		goto fail;
	total = 0;
	for (size_t i = 0; i < c->gsq.n_blocks; i++) {
		const struct sqfs_block *m = &c->gsq.blocks[i];
		size_t nb;
		c->gat[i] = total;
		if (members_expand(c->xb + m->off, m->csize, c->gb + total, m->usize, NULL, &nb, 0) != (int64_t)m->usize)
			goto fail;
		total += m->usize;
	}
	c->g_sp = (struct space){ .p = c->gb, .size = total };
	if (resemble_build_anchors(&c->g_sp, &e) == 0)
		return;
fail:
	free(c->gat);
	free(c->gb);
	c->gat = NULL;
	c->gb = NULL;
	memset(&c->g_sp, 0, sizeof(c->g_sp));
	squashfs_info_free(&c->gsq);
}

/* Gzip files inside the blocks of a gzip, xz, lz4 or zstd image: the inner
 * profile, what blocks_prepare_members() tries on an uncompressed image (zlib -9 and
 * -6, memLevel 8 and 9), for streams of up to 1 MiB of content.  Each file is
 * checked as it is met (inner_nested_record()); a build without zlib goes without. */
void inner_prepare(struct ctx *c)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_profile p = { .comp = SLOTSYNC_DELTA_COMP_DEFLATE, .window = 15, .variants = 0xc3,
					    .block_max = SLOTSYNC_DELTA_PROFILE_BLOCK_MAX };
	struct slotsync_error e = { 0 };

	if (bc && slotsync_delta_profile_seal(bc, &p, &e) == 0) {
		c->inner = p;
		c->inner_on = 1;
		inner_base(c);
	}
	slotsync_delta_block_coder_free(bc);
}

/* Whether the gzip file's compressed bytes p[0..len) are in the expanded
 * base as they are: an unchanged file, which the reference gives as it is
 * and which is not worth deflating again. */
static int member_in_base(struct worker *w, const uint8_t *p, size_t len)
{
	const struct space *sp = &w->c->x_sp;
	struct diag dg[DIAG_PER_CHUNK];
	size_t nd = resemble_vote(sp, p, 0, len, &w->votes, &w->votes_cap, dg);

	for (size_t i = 0; i < nd; i++)
		if (dg[i].d >= 0 && (uint64_t)dg[i].d + len <= sp->size && memcmp(sp->p + dg[i].d, p, len) == 0)
			return 1;
	return 0;
}

/* Whether the gzip file p[0..csize) of the new image is worth taking apart:
 * its bytes are not in the base as they are, and the inner profile makes it
 * again (the variant in *v, where its deflate blocks end in w->bounds, *nb
 * of them).  A file new to the release is taken apart too: its content costs
 * less than its deflate stream.  Returns its content's length (in
 * w->icontent), or -1. */
static int64_t member_take(struct worker *w, const uint8_t *p, size_t csize, size_t *nb, int *v)
{
	const struct ctx *c = w->c;
	int64_t u;

	if (member_in_base(w, p, csize))
		return -1;
	u = members_expand(p, csize, w->icontent, c->inner.block_max, w->bounds, nb, SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX);
	if (u <= 0)
		return -1;
	*v = blocks_find_variant(w->bc, &c->inner, w->bounds, *nb, w->icontent, (size_t)u, p, csize, w->ibuf,
				 SLOTSYNC_DELTA_DEFLATE_CAP(c->inner.block_max));
	return *v < 0 ? -1 : u;
}

/* A block record (its content: n bytes at h + 18) made nested where gzip
 * files inside the content deflate back to their bytes with the inner
 * profile: bytes records around a deflate record of each, whose content the
 * reference's old files then code well.  Returns the record's length (its
 * head, h[0..18), is the caller's), or 0: it stays a block record, its
 * content untouched. */
size_t inner_nested_record(struct worker *w, struct frames_try *t, uint8_t *h, size_t n, size_t room)
{
	const struct ctx *c = w->c;
	struct sqfs_info sq;
	size_t at = 18, prev = 0, used = 0, inflated = 0;

	/* w->icontent is free until member_take() fills it */
	if (members_scan_buf(h + 18, n, c->inner.block_max, w->icontent, &sq) < 0 || !sq.n_blocks) {
		squashfs_info_free(&sq);
		return 0;
	}
	memcpy(w->ncontent, h + 18, n);
	for (size_t i = 0; i < sq.n_blocks; i++) {
		const struct sqfs_block *m = &sq.blocks[i];
		size_t nb, rl;
		int v;
		int64_t u = member_take(w, w->ncontent + m->off, m->csize, &nb, &v);
		if (u < 0)
			continue;
		rl = (m->off > prev ? 5 + (m->off - prev) : 0) + 22 + 4 * nb + (size_t)u;
		if (at + rl > room)
			break;
		if (m->off > prev) {
			h[at] = 0;
			io_put_le32(h + at + 1, (uint32_t)(m->off - prev));
			memcpy(h + at + 5, w->ncontent + prev, m->off - prev);
			at += 5 + (m->off - prev);
		}
		h[at] = 3;
		h[at + 1] = (uint8_t)v;
		io_put_le32(h + at + 2, m->csize);
		io_put_le32(h + at + 6, 0);
		io_put_le32(h + at + 10, m->csize);
		io_put_le32(h + at + 14, (uint32_t)u);
		io_put_le32(h + at + 18, (uint32_t)nb);
		for (size_t k = 0; k < nb; k++)
			io_put_le32(h + at + 22 + 4 * k, w->bounds[k]);
		memcpy(h + at + 22 + 4 * nb, w->icontent, (size_t)u);
		if (t->n_mem < sizeof(t->mem_at) / sizeof(t->mem_at[0])) {
			t->mem_at[t->n_mem] = (size_t)(h + at + 22 + 4 * nb - w->xout);
			t->mem_len[t->n_mem++] = (size_t)u;
		}
		at += 22 + 4 * nb + (size_t)u;
		prev = m->off + m->csize;
		used++;
		inflated += (size_t)u;
	}
	squashfs_info_free(&sq);
	if (used && n > prev) {
		if (at + 5 + (n - prev) > room)
			used = 0;
		else {
			h[at] = 0;
			io_put_le32(h + at + 1, (uint32_t)(n - prev));
			memcpy(h + at + 5, w->ncontent + prev, n - prev);
			at += 5 + (n - prev);
		}
	}
	if (!used) {
		memcpy(h + 18, w->ncontent, n);
		return 0;
	}
	t->inflated += inflated;
	return at;
}

/* The base ranges holding the old gzip files that the new ones recorded
 * (t->mem_at) resemble most, found by their content in c->g_sp: the whole
 * block of each (or its bytes, where the base stores them as they are), into
 * rv (at most max), their bytes out of the budgets; the files in t->gk.
 * Returns how many. */
size_t inner_ranges(struct worker *w, struct frames_try *t, struct interval *rv, size_t max,
			   uint64_t *raw_budget, uint64_t *x_budget)
{
	const struct ctx *c = w->c;
	size_t nr = 0;

	if (!c->g_sp.anchors)
		return 0;
	for (uint32_t k = 0; k < t->n_mem && nr < max; k++) {
		struct diag dg[DIAG_PER_CHUNK];
		size_t s = t->mem_at[k], e = s + t->mem_len[k], lo = 0, hi = c->gsq.n_blocks, g, i;
		size_t nd = resemble_vote(&c->g_sp, w->xout, s, e, &w->votes, &w->votes_cap, dg);
		int64_t at;
		const struct sqfs_block *m;
		const struct xseg *sg;
		uint64_t a, b, xn;
		if (!nd)
			continue;
		at = (int64_t)(s + (e - s) / 2) + dg[0].d;
		if (at < 0 || (uint64_t)at >= c->g_sp.size)
			continue;
		/* the old file holding that place */
		while (hi - lo > 1) {
			size_t mid = (lo + hi) / 2;
			if (c->gat[mid] <= (uint64_t)at)
				lo = mid;
			else
				hi = mid;
		}
		m = &c->gsq.blocks[lo];
		g = frames_xseg_at(c, m->off);
		if (g >= c->n_xseg)
			continue;
		sg = &c->xseg[g];
		if (sg->frame) {
			a = sg->r;
			b = sg->r + sg->rl;
			xn = sg->xl;
		} else {
			a = sg->r + (m->off - sg->x);
			b = a + m->csize;
			xn = m->csize;
		}
		if (t->n_gk < sizeof(t->gk) / sizeof(t->gk[0]))
			t->gk[t->n_gk++] = lo;
		for (i = 0; i < nr && !(rv[i].s <= a && b <= rv[i].e); i++)
			;
		if (i < nr || b - a > *raw_budget || xn > *x_budget)
			continue;
		*raw_budget -= b - a;
		*x_budget -= xn;
		rv[nr++] = (struct interval){ a, b, 0 };
	}
	return nr;
}

/* The old gzip files t's new ones resemble (t->gk) that lie wholly in the
 * pieces of the expanded reference, their content (inflated once, in
 * c->g_sp) appended from xl on while there is room, and listed in w->imap in
 * the order of their place.  Other old files are left out: content nothing
 * resembles costs encoding time and only adds to the reference.  Returns the
 * new end of the expanded reference. */
size_t inner_streams(struct worker *w, struct frames_try *t, const struct xpiece *pc, size_t npc, size_t xl)
{
	const struct ctx *c = w->c;
	size_t room = SLOTSYNC_DELTA_XREF_MAX - xl, cand[SLOTSYNC_DELTA_INNER_MAX][2], nc = 0;
	uint8_t take[SLOTSYNC_DELTA_INNER_MAX];

	if (!c->g_sp.anchors)
		return xl;
	/* the files in each piece: (index in c->gsq, place in w->xref) */
	for (size_t p = 0; p < npc && nc < SLOTSYNC_DELTA_INNER_MAX; p++) {
		size_t lo = 0, hi = c->gsq.n_blocks;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (c->gsq.blocks[mid].off < pc[p].b)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < c->gsq.n_blocks && nc < SLOTSYNC_DELTA_INNER_MAX; lo++) {
			const struct sqfs_block *m = &c->gsq.blocks[lo];
			if (m->off + m->csize > pc[p].b + pc[p].n)
				break;
			cand[nc][0] = lo;
			cand[nc++][1] = pc[p].x + (size_t)(m->off - pc[p].b);
		}
	}
	memset(take, 0, nc);
	for (size_t i = 0; i < nc; i++) {
		const struct sqfs_block *m = &c->gsq.blocks[cand[i][0]];
		uint32_t k = 0;
		while (k < t->n_gk && t->gk[k] != cand[i][0])
			k++;
		if (k == t->n_gk || m->usize > room)
			continue;
		take[i] = 1;
		room -= m->usize;
	}
	for (size_t i = 0; i < nc; i++) {
		const struct sqfs_block *m = &c->gsq.blocks[cand[i][0]];
		uint8_t *e = w->imap + 12 * (size_t)t->n_inner;
		if (!take[i])
			continue;
		memcpy(w->xref + xl, c->gb + c->gat[cand[i][0]], m->usize);
		io_put_le32(e, (uint32_t)cand[i][1]);
		io_put_le32(e + 4, m->csize);
		io_put_le32(e + 8, m->usize);
		xl += m->usize;
		t->n_inner++;
	}
	return xl;
}

/* A gzip file in bytes [a, b) of the new image that a block of it stores as
 * they are (an lz4 or gzip image stores a block that does not shrink so):
 * the bytes before the first file the inner profile makes again, then a
 * deflate record of it, appended to the records.  Returns where the bytes
 * recorded end (a: none). */
uint64_t inner_stored(struct worker *w, struct frames_try *t, size_t *el, size_t *last_raw, uint64_t a,
			       uint64_t b)
{
	const struct ctx *c = w->c;
	struct sqfs_info sq;
	uint64_t cur = a;

	if (members_scan_buf(c->ni.p + a, b - a, c->inner.block_max, w->icontent, &sq) == 0)
		for (size_t i = 0; i < sq.n_blocks; i++) {
			const struct sqfs_block *m = &sq.blocks[i];
			uint8_t *h;
			size_t nb;
			int v;
			int64_t u = member_take(w, c->ni.p + a + m->off, m->csize, &nb, &v);
			if (u < 0)
				continue;
			if (*el + 5 + (a + m->off - cur) + 22 + 4 * nb + (size_t)u > SLOTSYNC_DELTA_XOUT_MAX)
				break;
			if (a + m->off > cur && frames_put_raw(w, el, last_raw, cur, a + m->off) < 0)
				break;
			h = w->xout + *el;
			h[0] = 3;
			h[1] = (uint8_t)v;
			io_put_le32(h + 2, m->csize);
			io_put_le32(h + 6, 0);
			io_put_le32(h + 10, m->csize);
			io_put_le32(h + 14, (uint32_t)u);
			io_put_le32(h + 18, (uint32_t)nb);
			for (size_t k = 0; k < nb; k++)
				io_put_le32(h + 22 + 4 * k, w->bounds[k]);
			memcpy(h + 22 + 4 * nb, w->icontent, (size_t)u);
			if (t->n_mem < sizeof(t->mem_at) / sizeof(t->mem_at[0])) {
				t->mem_at[t->n_mem] = *el + 22 + 4 * nb;
				t->mem_len[t->n_mem++] = (size_t)u;
			}
			*el += 22 + 4 * nb + (size_t)u;
			*last_raw = SIZE_MAX;
			t->inflated += (size_t)u;
			cur = a + m->off + m->csize;
		}
	squashfs_info_free(&sq);
	return cur;
}

