/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the BLOCKS codec (codec 4) on the generator's side, for
 * squashfs images compressed with gzip, xz, lz4 or zstd (zstd unless the
 * index is to be SSDELTA2: ZSTD_FRAMES then; the set-up, profile and
 * expanded base, is blocks_prep.c's).  Like ZSTD_FRAMES
 * (frames.c): a changed block shares no compressed bytes with the old one, so
 * the object is made of the blocks' content.  The image's blocks are listed
 * from its tables (squashfs.c); the compression profile (level, window, the
 * variants mksquashfs picks the smallest of) comes from the compressor options
 * or mksquashfs's defaults and is confirmed by compressing the first blocks
 * again.  A block is recorded as content only if the profile compresses it
 * back to the very bytes of the image; anything else is recorded as bytes.
 * The reference is whole base blocks (and blocks of the new image just before
 * the output), listed in the object's map so that the device expands them.
 * Where the image's blocks are not compressed, its gzip files are the blocks
 * (members.c; the DEFLATE profile).  Where they are, the gzip files inside
 * them are taken apart one level down (the index's inner profile): a changed
 * file's content is recorded in a nested block record, and the old file's
 * block goes into the reference, its content inflated after it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "delta_internal.h"

#define TARGET_XCONTEXT (1u << 20)
#define TARGET_RAW_MAX (2u << 20)

/* The variant of p a block was most likely made with, without compressing
 * it: xz names its BCJ filter in its block header; a profile of one variant
 * has no choice.  -1: it takes compressing (gzip's strategies). */
static int guess_variant(const struct slotsync_delta_profile *p, const uint8_t *b, size_t n)
{
	static const uint8_t bcj_ids[] = { 0, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09 };
	size_t at = 14;
	int v = 0;

	if (p->comp != SQFS_XZ)
		return (p->variants & (p->variants - 1)) ? -1 : __builtin_ctz(p->variants);
	/* stream header (12 bytes), block header: size, flags, sizes, filters */
	if (n < 16 || memcmp(b, "\xfd" "7zXZ", 6) != 0)
		return -1;
	for (int k = 6; k <= 7; k++)
		if (b[13] >> k & 1)
			while (at < n && (b[at++] & 0x80))
				;
	if ((b[13] & 3) != 0) {
		if (at >= n)
			return -1;
		for (v = 1; v < (int)sizeof(bcj_ids) && bcj_ids[v] != b[at]; v++)
			;
		if (v == (int)sizeof(bcj_ids))
			return -1;
	}
	return (p->variants >> v & 1) ? v : -1;
}

size_t blocks_new_at(const struct ctx *c, uint64_t off)
{
	size_t lo = 0, hi = c->nsq.n_blocks;

	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c->nsq.blocks[m].off + c->nsq.blocks[m].csize <= off)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

static int map_add(struct worker *w, struct frames_try *t, uint64_t roff, uint32_t csize, uint32_t usize)
{
	if (t->n_map >= BLOCKS_MAP_MAX)
		return -1;
	io_put_le32(w->map + 4 + 12 * t->n_map, (uint32_t)roff);
	io_put_le32(w->map + 8 + 12 * t->n_map, csize);
	io_put_le32(w->map + 12 + 12 * t->n_map, usize);
	t->n_map++;
	return 0;
}

/* A 64-byte block of the records is predicted by the alignment that gets the
 * most of it right, if that leaves at most RESID_MISS bytes wrong; else by
 * nothing (its residual is its bytes, which zstd still finds in the
 * reference). */
#define RESID_MISS 24
#define RESID_PIECE (64u << 10)            /* record bytes voted on together */

/* The records of t as their residual against the expanded reference (the
 * layout of SLOTSYNC_DELTA_MAP_RESIDUAL), in w->xres; returns its length, or
 * 0.  The alignments are the most-voted diagonals of the records' 64 KiB
 * pieces in the expanded reference, as RESIDUAL's are in the image. */
static size_t resid_records(struct worker *w, const struct frames_try *t)
{
	const uint8_t *x = w->xref + t->xoff, *rec = w->xout;
	size_t xl = t->xl, el = t->el, nal = 0, blocks = (el + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK, head;
	struct space sp = { .p = x, .size = xl };
	struct slotsync_error e = { 0 };
	int64_t ra[SLOTSYNC_DELTA_ALIGN_MAX];
	uint64_t rv[SLOTSYNC_DELTA_ALIGN_MAX];
	uint8_t *sel, *res;

	if (!w->xres && !(w->xres = malloc(SLOTSYNC_DELTA_RESID_RECORDS_MAX)))
		return 0;
	if (!xl || resemble_build_anchors(&sp, &e) < 0)
		return 0;
	for (size_t s = 0; s < el; s += RESID_PIECE) {
		size_t en = s + RESID_PIECE < el ? s + RESID_PIECE : el;
		struct diag dg[DIAG_PER_CHUNK];
		size_t nd = resemble_vote(&sp, rec, s, en, &w->votes, &w->votes_cap, dg);
		for (size_t i = 0; i < nd; i++) {
			size_t a = 0, wk = 0;
			while (a < nal && ra[a] != dg[i].d)
				a++;
			if (a < nal) {
				rv[a] += dg[i].votes;
				continue;
			}
			if (nal < SLOTSYNC_DELTA_ALIGN_MAX) {
				rv[nal] = dg[i].votes;
				ra[nal++] = dg[i].d;
				continue;
			}
			/* full: the diagonal replaces the weakest if it is stronger */
			for (size_t k = 1; k < nal; k++)
				if (rv[k] < rv[wk])
					wk = k;
			if (rv[wk] < dg[i].votes) {
				rv[wk] = dg[i].votes;
				ra[wk] = dg[i].d;
			}
		}
	}
	free(sp.anchors);
	if (!nal)
		return 0;
	head = 1 + 4 * nal + 4;
	w->xres[0] = (uint8_t)nal;
	for (size_t a = 0; a < nal; a++)
		io_put_le32(w->xres + 1 + 4 * a, (uint32_t)(int32_t)ra[a]);
	io_put_le32(w->xres + 1 + 4 * nal, (uint32_t)el);
	sel = w->xres + head;
	res = sel + blocks;
	for (size_t b = 0; b < blocks; b++) {
		size_t at = b * SLOTSYNC_DELTA_BLOCK, end = at + SLOTSYNC_DELTA_BLOCK < el ? at + SLOTSYNC_DELTA_BLOCK : el,
		       best_n = RESID_MISS + 1;
		int best = 0xff;
		for (size_t a = 0; a < nal && best_n; a++) {
			size_t miss = 0;
			for (size_t i = at; i < end && miss < best_n; i++) {
				int64_t p = ra[a] + (int64_t)i;
				miss += rec[i] != (p >= 0 && (uint64_t)p < xl ? x[p] : 0);
			}
			if (miss < best_n) {
				best_n = miss;
				best = (int)a;
			}
		}
		sel[b] = (uint8_t)best;
		for (size_t i = at; i < end; i++) {
			int64_t p = best == 0xff ? -1 : ra[best] + (int64_t)i;
			res[i] = (uint8_t)(rec[i] - (p >= 0 && (uint64_t)p < xl ? x[p] : 0));
		}
	}
	return head + blocks + el;
}

/* The object: map frame + records frame with the expanded prefix, in w->out_c;
 * the records as their residual if rl (its length in w->xres). */
static size_t emit(struct worker *w, struct frames_try *t, int level, size_t xoff, size_t rl)
{
	size_t cap = ZSTD_compressBound(SLOTSYNC_DELTA_RESID_RECORDS_MAX) + ZSTD_compressBound(BLOCKS_MAP_BYTES), m, z,
	       ml = 4 + 12 * (size_t)t->n_map;

	io_put_le32(w->map, t->n_map | (rl ? SLOTSYNC_DELTA_MAP_RESIDUAL : 0) | (t->n_inner ? SLOTSYNC_DELTA_MAP_INNER : 0));
	if (t->n_inner) {
		/* the inner streams, their offsets from where this reference starts */
		io_put_le32(w->map + ml, t->n_inner);
		for (uint32_t k = 0; k < t->n_inner; k++) {
			const uint8_t *e = w->imap + 12 * (size_t)k;
			io_put_le32(w->map + ml + 4 + 12 * k, io_get_le32(e) - (uint32_t)xoff);
			memcpy(w->map + ml + 8 + 12 * k, e + 4, 8);
		}
		ml += 4 + 12 * (size_t)t->n_inner;
	}
	m = encode_zstd_ref(w->cc, level, NULL, 0, w->map, ml, w->out_c, cap);
	if (!m)
		return 0;
	z = encode_zstd_ref(w->cc, level, w->xref + xoff, t->xl, rl ? w->xres : w->xout, rl ? rl : t->el, w->out_c + m,
			    cap - m);
	return z ? m + z : 0;
}

static void map_swap(struct worker *w)
{
	uint8_t *sw = w->map;

	w->map = w->map2;
	w->map2 = sw;
}

static size_t job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t, int verify)
{
	struct ctx *c = w->c;
	const struct slotsync_index *ni = c->new_idx;
	size_t el = 0, last_raw = SIZE_MAX, nblocks = 0, nr = 0, first = blocks_new_at(c, rs), z0, z1 = 0,
	       bcap = (size_t)c->nsq.block_size * 2 + 65536;
	uint64_t cur = rs, raw_budget = SLOTSYNC_DELTA_REF_MAX, ts = rs, t_raw = 0, t_x = 0, x_used = 0;
	struct interval rv[SLOTSYNC_DELTA_REFS_MAX];
	uint32_t ctx_map = 0;

	struct xpiece pcs[XPIECES_MAX];
	size_t npc = 0;

	t->nested = 0;
	t->n_inner = 0;
	t->inflated = 0;
	t->n_mem = 0;
	t->n_gk = 0;
	/* the records: blocks that compress back to themselves, the rest as bytes */
	for (size_t f = first; f < c->nsq.n_blocks && c->nsq.blocks[f].off < re; f++) {
		const struct sqfs_block *F = &c->nsq.blocks[f];
		uint64_t a = F->off > rs ? F->off : rs, b = F->off + F->csize < re ? F->off + F->csize : re;
		uint8_t *h;
		int64_t n = -1;
		int v = -1;
		size_t hdr, nb;
		if (F->stored) {
			if (!c->inner_on)
				continue;
			/* its bytes up to here as they are, then its gzip files */
			if (a > cur && frames_put_raw(w, &el, &last_raw, cur, a) < 0)
				return 0;
			cur = inner_stored(w, t, &el, &last_raw, a, b);
			t->nested += cur > a;
			continue;
		}
		if (a > cur && frames_put_raw(w, &el, &last_raw, cur, a) < 0)
			return 0;
		h = w->xout + el;
		hdr = 18;
		nb = 0;
		if (c->members) {
			/* DEFLATE: the content and where its deflate blocks end */
			if (F->csize <= SLOTSYNC_DELTA_DEFLATE_CAP(c->prof.block_max))
				n = members_expand(c->ni.p + F->off, F->csize, w->mcontent, c->nsq.block_size, w->bounds, &nb,
						   SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX);
			hdr = 22 + 4 * nb;
			if (n > 0 && el + hdr + (size_t)n <= SLOTSYNC_DELTA_XOUT_MAX)
				memcpy(h + hdr, w->mcontent, (size_t)n);
			else
				n = -1;
		} else if (el + 18 + c->nsq.block_size <= SLOTSYNC_DELTA_XOUT_MAX)
			n = squashfs_decompress(c->nsq.comp, c->ni.p + F->off, F->csize, h + 18, c->nsq.block_size);
		if (n > 0 && (uint64_t)n <= c->prof.block_max) {
			/* trusted in a trial: blocks_keep() checks every one */
			v = verify ? -1 : guess_variant(&c->prof, c->ni.p + F->off, F->csize);
			if (v < 0)
				v = blocks_find_variant(w->bc, &c->prof, w->bounds, nb, h + hdr, (size_t)n, c->ni.p + F->off, F->csize,
						 w->bbuf, bcap);
		}
		if (v < 0) {
			if (frames_put_raw(w, &el, &last_raw, a, b) < 0)
				return 0;
		} else {
			/* gzip files inside: a nested record */
			size_t nl = c->inner_on ? inner_nested_record(w, t, h, (size_t)n, SLOTSYNC_DELTA_XOUT_MAX - el) : 0;
			h[0] = nl ? 4 : c->members ? 3 : 2;
			h[1] = (uint8_t)v;
			io_put_le32(h + 2, F->csize);
			io_put_le32(h + 6, (uint32_t)(a - F->off));
			io_put_le32(h + 10, (uint32_t)(b - a));
			io_put_le32(h + 14, (uint32_t)n);
			if (c->members) {
				io_put_le32(h + 18, (uint32_t)nb);
				for (size_t k = 0; k < nb; k++)
					io_put_le32(h + 22 + 4 * k, w->bounds[k]);
			}
			el += nl ? nl : hdr + (size_t)n;
			t->nested += nl != 0;
			last_raw = SIZE_MAX;
			nblocks++;
		}
		cur = b;
	}
	if (cur < re && frames_put_raw(w, &el, &last_raw, cur, re) < 0)
		return 0;
	if (!nblocks && !t->nested)
		return 0;
	t->el = el;
	t->n_map = 0;

	/* the context: whole compressed blocks of the new image before the output */
	{
		size_t k = first;
		while (k > 0 && c->nsq.blocks[k - 1].off + c->nsq.blocks[k - 1].csize > rs)
			k--;
		while (k-- > 0 && t_x < TARGET_XCONTEXT) {
			const struct sqfs_block *B = &c->nsq.blocks[k];
			if (rs - B->off > TARGET_RAW_MAX)
				break;
			ts = B->off;
			t_x += B->stored ? B->csize : B->usize ? B->usize : c->nsq.block_size;
		}
	}
	t_raw = rs - ts;
	t->raw_len = 0;
	t->n_refs = 0;
	if (t_raw) {
		/* expanded into w->xref from 0, its blocks in the map */
		uint64_t at = ts;
		size_t xl = 0;
		for (size_t k = blocks_new_at(c, ts); k < c->nsq.n_blocks && c->nsq.blocks[k].off + c->nsq.blocks[k].csize <= rs;
		     k++) {
			const struct sqfs_block *B = &c->nsq.blocks[k];
			int64_t n = -1;
			memcpy(w->xref + xl, c->ni.p + at, B->off - at);
			xl += B->off - at;
			if (!B->stored && xl + c->nsq.block_size <= SLOTSYNC_DELTA_XREF_MAX)
				n = squashfs_decompress(c->nsq.comp, c->ni.p + B->off, B->csize, w->xref + xl, c->nsq.block_size);
			if (n > 0 && map_add(w, t, B->off - ts, B->csize, (uint32_t)n) == 0)
				xl += (size_t)n;
			else {
				memcpy(w->xref + xl, c->ni.p + B->off, B->csize);
				xl += B->csize;
			}
			at = B->off + B->csize;
		}
		memcpy(w->xref + xl, c->ni.p + at, rs - at);
		xl += rs - at;
		x_used = xl;
		ctx_map = t->n_map;
		uint32_t p = resemble_base_chunk_at(ni, ts);
		t->refs[t->n_refs++] = (struct slotsync_delta_ref){ p, (uint32_t)(ts - slotsync_index_chunk_start(ni, p)),
								    (uint32_t)t_raw, 1 };
		memcpy(w->xraw, c->ni.p + ts, t_raw);
		t->raw_len = t_raw;
		raw_budget -= t_raw;
	}

	/* what the records resemble in the expanded base */
	{
		/* room kept for the old gzip files inflated after the base ranges:
		 * about what the new ones inflate to, twice, at most half */
		size_t room = SLOTSYNC_DELTA_XREF_MAX - x_used, keep = 2 * t->inflated + (64u << 10), n0 = 0;
		uint64_t xroom;
		if (t->nested)
			room -= keep < room / 2 ? keep : room / 2;
		xroom = room;
		/* first the blocks of the old gzip files the new ones resemble */
		if (t->nested)
			n0 = inner_ranges(w, t, rv, SLOTSYNC_DELTA_REFS_MAX / 4, &raw_budget, &xroom);
		nr = frames_pick_ranges(w, el, raw_budget, xroom, rv, n0, sizeof(rv) / sizeof(rv[0]));
	}
	/* the base ranges: raw into w->xraw, expanded after the context in w->xref */
	{
		size_t xl = x_used;
		for (size_t i = 0; i < nr && t->n_refs < SLOTSYNC_DELTA_REFS_MAX; i++) {
			uint32_t bcn = resemble_base_chunk_at(c->base, rv[i].s);
			uint64_t rpos = t->raw_len;
			t->refs[t->n_refs++] = (struct slotsync_delta_ref){
				bcn, (uint32_t)(rv[i].s - slotsync_index_chunk_start(c->base, bcn)), (uint32_t)(rv[i].e - rv[i].s), 0
			};
			memcpy(w->xraw + t->raw_len, c->bi.p + rv[i].s, rv[i].e - rv[i].s);
			t->raw_len += rv[i].e - rv[i].s;
			/* its segments: whole blocks expanded and mapped, the rest as bytes */
			for (uint64_t at = rv[i].s; at < rv[i].e;) {
				size_t g;
				/* the segment holding raw offset at */
				size_t lo = 0, hi = c->n_xseg;
				while (lo < hi) {
					size_t m = (lo + hi) / 2;
					if (c->xseg[m].r + c->xseg[m].rl <= at)
						lo = m + 1;
					else
						hi = m;
				}
				g = lo;
				if (g == c->n_xseg)
					return 0;
				{
					const struct xseg *sg = &c->xseg[g];
					uint64_t end = sg->r + sg->rl < rv[i].e ? sg->r + sg->rl : rv[i].e;
					/* what it adds: a block expanded, or the bytes of the
					 * range in a segment of bytes (which may be long) */
					if (xl + (sg->frame ? (sg->xl > end - at ? sg->xl : end - at) : end - at) >
					    SLOTSYNC_DELTA_XREF_MAX)
						return 0;
					if (sg->frame && at == sg->r && end == sg->r + sg->rl &&
					    map_add(w, t, rpos + (at - rv[i].s), (uint32_t)sg->rl, (uint32_t)sg->xl) == 0) {
						memcpy(w->xref + xl, c->xb + sg->x, sg->xl);
						if (npc < XPIECES_MAX)
							pcs[npc++] = (struct xpiece){ xl, sg->xl, sg->x };
						xl += sg->xl;
					} else {
						memcpy(w->xref + xl, c->bi.p + at, end - at);
						/* bytes as they are: the same in the expanded base */
						if (!sg->frame && npc < XPIECES_MAX)
							pcs[npc++] = (struct xpiece){ xl, end - at, sg->x + (at - sg->r) };
						xl += end - at;
					}
					at = end;
				}
			}
		}
		/* the old gzip files in them, where new ones are nested */
		if (t->nested)
			xl = inner_streams(w, t, pcs, npc, xl);
		t->xl = xl;
	}
	/* without the context and with it */
	{
		/* without: the map lists only the base blocks, shifted */
		uint32_t n_all = t->n_map;
		for (uint32_t k = ctx_map; k < n_all; k++) {
			uint8_t *e = w->map + 4 + 12 * k;
			io_put_le32(w->map2 + 4 + 12 * (k - ctx_map), io_get_le32(e) - (uint32_t)t_raw);
			memcpy(w->map2 + 8 + 12 * (k - ctx_map), e + 4, 8);
		}
		map_swap(w);
		t->n_map = n_all - ctx_map;
		t->xl -= x_used;
		z0 = emit(w, t, TRIAL_LEVEL(c), x_used, 0);
		/* with: not where the base alone makes the records 32 times
		 * smaller (on the realistic pairs the context never won there by
		 * more than a few bytes, and its trial, whose reference is the
		 * context too, costs more than the other) */
		if (t_raw && (!z0 || z0 >= el / 32)) {
			map_swap(w);
			t->n_map = n_all;
			t->xl += x_used;
			z1 = emit(w, t, TRIAL_LEVEL(c), 0, 0);
			if (z1 && (!z0 || z1 + SLOTSYNC_DELTA_REF_BYTES < z0)) {
				t->reads_new = 1;
				t->xoff = 0;
				return t->trial = z1;
			}
			map_swap(w);
			t->n_map = n_all - ctx_map;
			t->xl -= x_used;
		}
	}
	t->reads_new = 0;
	t->xoff = x_used;
	if (t_raw) {
		memmove(w->xraw, w->xraw + t_raw, t->raw_len - t_raw);
		t->raw_len -= t_raw;
		memmove(t->refs, t->refs + 1, (t->n_refs - 1) * sizeof(*t->refs));
		t->n_refs--;
	}
	return t->trial = z0;
}

size_t blocks_job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t)
{
	return job(w, rs, re, t, 0);
}

/* The object as an empty map frame and its records as xz, without the
 * reference, in w->out_c, if the xz is smaller than xz_than and the whole
 * smaller than than: its size, or 0 with w->out_c as it was. */
static size_t xz_object(struct worker *w, const struct frames_try *t, int lv, size_t xz_than, size_t than)
{
	uint8_t none[4] = { 0 }, map[64];
	size_t xn = encode_try_xz(w, w->xout, t->el, xz_than), m0;

	if (!xn || !(m0 = encode_zstd_ref(w->cc, lv, NULL, 0, none, sizeof(none), map, sizeof(map))) || m0 + xn >= than)
		return 0;
	memcpy(w->out_c, map, m0);
	memcpy(w->out_c + m0, w->xzb, xn);
	return m0 + xn;
}

int blocks_keep(struct worker *w, struct job *j, struct frames_try *t, const uint8_t *src, size_t len)
{
	struct ctx *c = w->c;
	struct slotsync_error e2 = { 0 };
	int lv = gen_records_level(c->opt), r, xz = 0;
	/* new content whose xz (the trial's) is a tenth smaller than the trial
	 * level's records: as in encode_job(), the records level is not spent */
	size_t xk = encode_xz_known(w, w->xout, t->el), rl = 0, pl = 0;

	if (xk && encode_xz_settles(xk + 16, t->trial) && (pl = xz_object(w, t, lv, t->trial, SIZE_MAX)) != 0)
		xz = 1;
	/* the records as they are or as their residual, whichever the trial level
	 * makes smaller (the records as they are: what job() found) */
	if (!xz && (rl = resid_records(w, t)) != 0) {
		size_t zr = emit(w, t, TRIAL_LEVEL(c), t->xoff, rl);
		if (!zr || zr >= t->trial)
			rl = 0;
	}
	if (!xz)
		pl = emit(w, t, lv, t->xoff, rl);
	if (pl && !rl && !xz) {
		/* new content: an empty map and its records as xz, without the
		 * reference, if smaller */
		size_t m = ZSTD_findFrameCompressedSize(w->out_c, pl), xo;
		if (!ZSTD_isError(m) && m < pl && (xo = xz_object(w, t, lv, pl - m, pl)) != 0) {
			pl = xo;
			xz = 1;
		}
	}
	if (!pl || pl >= j->plain)
		return -1;
	slotsync_delta_decoder_set_profile(w->dec, &c->prof);
	slotsync_delta_decoder_set_inner_profile(w->dec, c->inner_on ? &c->inner : NULL);
	/* the device's decoder compresses every block again: a block the trial
	 * trusted that does not come back the same fails it, and the object is
	 * made again with every block compressed first */
	r = slotsync_delta_decode(w->dec, SLOTSYNC_DELTA_BLOCKS, w->out_c, pl, w->xraw, xz ? 0 : t->raw_len, w->check,
				  len, &e2);
	if (r < 0 || memcmp(w->check, src, len) != 0) {
		uint64_t rs = (uint64_t)(src - c->ni.p);
		memset(&e2, 0, sizeof(e2));
		rl = 0;
		xz = 0;
		pl = job(w, rs, rs + len, t, 1) ? emit(w, t, lv, t->xoff, 0) : 0;
		if (!pl || pl >= j->plain)
			return -1;
		r = slotsync_delta_decode(w->dec, SLOTSYNC_DELTA_BLOCKS, w->out_c, pl, w->xraw, t->raw_len, w->check, len,
					  &e2);
	}
	if (r < 0 || memcmp(w->check, src, len) != 0) {
		char what[SLOTSYNC_ERROR_MSG_MAX + 128];
		snprintf(what, sizeof(what), "blocks object does not decode to its chunks (an encoder fault): %s",
			 e2.msg[0] ? e2.msg : "other bytes");
		encode_job_fail(c, what, (size_t)(j - c->jobs));
		return -1;
	}
	j->payload = malloc(pl);
	if (!j->payload) {
		encode_job_fail(c, "out of memory", (size_t)(j - c->jobs));
		return -1;
	}
	memcpy(j->payload, w->out_c, pl);
	j->payload_len = pl;
	j->codec = SLOTSYNC_DELTA_BLOCKS;
	j->flags = (xz ? SLOTSYNC_DELTA_OBJ_XZ : 0) |
		   (t->nested || (t->n_inner && !xz) ? SLOTSYNC_DELTA_OBJ_INNER : 0);
	j->resid = rl != 0;
	/* xz records use no reference */
	memcpy(j->refs, t->refs, t->n_refs * sizeof(*t->refs));
	j->n_refs = xz ? 0 : t->n_refs;
	j->reads_new = xz ? 0 : t->reads_new;
	return 0;
}
