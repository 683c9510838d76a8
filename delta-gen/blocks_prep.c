/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the BLOCKS codec's set-up (blocks_gen.c codes the
 * objects).  The compression profile of a squashfs image's blocks, from its
 * compressor options or mksquashfs's defaults, confirmed by compressing the
 * first blocks again (other levels tried if they do not come back the same);
 * the base expanded block by block, in parts on every core, with its
 * anchors; or, where the blocks are not compressed, the DEFLATE profile of
 * the gzip files in the image (members.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "delta_internal.h"

#define PROBE_BLOCKS 8
#define LZ4HC_MAX 12

/* delta_internal.h */
int blocks_find_variant(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
			const uint32_t *bounds, size_t nb, const uint8_t *content, size_t n, const uint8_t *want,
			size_t csize, uint8_t *buf, size_t cap)
{
	for (unsigned v = 0; v < 32; v++) {
		struct slotsync_error e = { 0 };
		int64_t z;
		if (!(p->variants >> v & 1))
			continue;
		z = slotsync_delta_deflate_compress(bc, p, v, bounds, nb, content, n, buf, cap, &e);
		if (z > 0 && (size_t)z == csize && memcmp(buf, want, csize) == 0)
			return (int)v;
	}
	return -1;
}

/* How many of the first compressed data blocks of the new image p
 * reproduces (of *tried). */
static int probe_profile(struct ctx *c, struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
			 uint8_t *content, uint8_t *buf, size_t cap, int *tried)
{
	int ok = 0;

	*tried = 0;
	for (size_t i = 0; i < c->nsq.n_blocks && *tried < PROBE_BLOCKS; i++) {
		const struct sqfs_block *b = &c->nsq.blocks[i];
		int64_t n;
		if (b->stored || b->meta)
			continue;
		n = squashfs_decompress(c->nsq.comp, c->ni.p + b->off, b->csize, content, c->nsq.block_size);
		if (n <= 0)
			continue;
		(*tried)++;
		ok += blocks_find_variant(bc, p, NULL, 0, content, (size_t)n, c->ni.p + b->off, b->csize, buf, cap) >= 0;
	}
	return ok;
}

/* A part of the base, expanded by one thread: blocks [i0, i1) and the bytes
 * before each (the last part also those after the last block). */
struct xpart {
	const struct ctx *c;
	size_t i0, i1;
	uint64_t at;                     /* where the bytes before block i0 begin */
	int last;                        /* the last part: the bytes after the last block too */
	uint8_t *xb;
	size_t xcap;
	uint64_t x;                      /* bytes of xb filled */
	struct xseg *seg;
	size_t n_seg, seg_cap;
	int r;
};

static int xseg_push(struct xpart *pt, uint64_t x, uint64_t r, uint64_t xl, uint64_t rl, int block)
{
	if (pt->n_seg && !block && !pt->seg[pt->n_seg - 1].frame) {
		pt->seg[pt->n_seg - 1].xl += xl;
		pt->seg[pt->n_seg - 1].rl += rl;
		return 0;
	}
	if (pt->n_seg == pt->seg_cap) {
		size_t nc = pt->seg_cap ? pt->seg_cap * 2 : 4096;
		struct xseg *g = realloc(pt->seg, nc * sizeof(*g));
		if (!g)
			return -ENOMEM;
		pt->seg = g;
		pt->seg_cap = nc;
	}
	pt->seg[pt->n_seg++] = (struct xseg){ x, r, xl, rl, block };
	return 0;
}

/* Expands a part: bytes as they are, blocks as their content. */
static void *expand_part(void *arg)
{
	struct xpart *pt = arg;
	const struct ctx *c = pt->c;
	uint64_t at = pt->at;
	int last = pt->last;

	for (size_t i = pt->i0; i < pt->i1 || (last && i == pt->i1); i++) {
		const struct sqfs_block *b = i < c->bsq.n_blocks ? &c->bsq.blocks[i] : NULL;
		uint64_t end = b ? b->off : c->bi.size, lit = end - at;
		int64_t n = -1;
		if (pt->x + lit + c->bsq.block_size > pt->xcap) {
			size_t nc = pt->xcap ? pt->xcap : 16u << 20;
			uint8_t *g;
			while (nc < pt->x + lit + c->bsq.block_size)
				nc *= 2;
			g = realloc(pt->xb, nc);
			if (!g)
				goto oom;
			pt->xb = g;
			pt->xcap = nc;
		}
		if (lit) {
			memcpy(pt->xb + pt->x, c->bi.p + at, lit);
			if (xseg_push(pt, pt->x, at, lit, lit, 0) < 0)
				goto oom;
			pt->x += lit;
		}
		if (!b)
			break;
		if (!b->stored)
			n = squashfs_decompress(c->bsq.comp, c->bi.p + b->off, b->csize, pt->xb + pt->x, c->bsq.block_size);
		if (n <= 0 || (b->usize && n != b->usize)) {
			/* stored, or not a block after all: its bytes */
			memcpy(pt->xb + pt->x, c->bi.p + b->off, b->csize);
			if (xseg_push(pt, pt->x, b->off, b->csize, b->csize, 0) < 0)
				goto oom;
			pt->x += b->csize;
		} else {
			if (xseg_push(pt, pt->x, b->off, (uint64_t)n, b->csize, 1) < 0)
				goto oom;
			pt->x += (uint64_t)n;
		}
		at = b->off + b->csize;
	}
	return NULL;
oom:
	pt->r = -ENOMEM;
	return NULL;
}

/* The base expanded into c->xb and c->xseg, in parts on up to `threads`
 * threads (decompressing xz blocks takes seconds), joined in order: the same
 * bytes and segments as one thread makes. */
static int expand_base(struct ctx *c, int threads)
{
	struct xpart pt[16];
	int np = threads < 1 ? 1 : threads > 16 ? 16 : threads, r = 0;
	size_t nb = c->bsq.n_blocks, nseg = 0;
	uint64_t total = 0;

	if ((size_t)np > nb / 64 + 1)
		np = (int)(nb / 64 + 1);
	memset(pt, 0, sizeof(pt));
	/* parts of about equal compressed bytes */
	for (int k = 0, i = 0; k < np; k++) {
		uint64_t want = c->bi.size / (uint64_t)np * (uint64_t)(k + 1);
		pt[k].c = c;
		pt[k].i0 = (size_t)i;
		pt[k].at = i ? c->bsq.blocks[i - 1].off + c->bsq.blocks[i - 1].csize : 0;
		while ((size_t)i < nb && (k == np - 1 || c->bsq.blocks[i].off < want))
			i++;
		pt[k].i1 = (size_t)i;
		pt[k].last = k == np - 1;
	}
	parallel_each(expand_part, pt, sizeof(pt[0]), np);
	for (int k = 0; k < np; k++) {
		if (pt[k].r < 0)
			r = pt[k].r;
		total += pt[k].x;
		nseg += pt[k].n_seg;
	}
	if (r == 0) {
		/* part 0's buffers grow to hold the others */
		uint8_t *g = realloc(pt[0].xb, total ? total : 1);
		struct xseg *sg = g ? realloc(pt[0].seg, (nseg ? nseg : 1) * sizeof(*sg)) : NULL;
		if (g)
			pt[0].xb = g;
		if (sg)
			pt[0].seg = sg;
		if (!g || !sg)
			r = -ENOMEM;
	}
	if (r == 0) {
		uint64_t x = pt[0].x;
		size_t n = pt[0].n_seg;
		for (int k = 1; k < np; k++) {
			memcpy(pt[0].xb + x, pt[k].xb, pt[k].x);
			for (size_t i = 0; i < pt[k].n_seg; i++) {
				struct xseg s = pt[k].seg[i];
				s.x += x;
				if (n && !s.frame && !pt[0].seg[n - 1].frame) {
					/* bytes as they are on both sides of the seam: one segment */
					pt[0].seg[n - 1].xl += s.xl;
					pt[0].seg[n - 1].rl += s.rl;
				} else
					pt[0].seg[n++] = s;
			}
			x += pt[k].x;
		}
		c->xb = pt[0].xb;
		c->xseg = pt[0].seg;
		c->n_xseg = n;
		c->x_sp = (struct space){ .p = c->xb, .size = x };
		pt[0].xb = NULL;
		pt[0].seg = NULL;
	}
	for (int k = 0; k < np; k++) {
		free(pt[k].xb);
		free(pt[k].seg);
	}
	return r;
}

/* The codec with profile p: sealed, the base expanded (bytes as they are,
 * blocks as their content) with its anchors.  A build without p's compressor
 * leaves the codec off. */
static int start(struct ctx *c, struct slotsync_delta_block_coder *bc, struct slotsync_delta_profile *p,
		 struct slotsync_error *err)
{
	struct slotsync_error e2 = { 0 };
	int r = slotsync_delta_profile_seal(bc, p, &e2);

	if (r == -ENOTSUP)
		return 0;
	if (r < 0) {
		*err = e2;
		return r;
	}
	c->prof = *p;
	if (expand_base(c, c->threads) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory for the expanded base image");
	r = resemble_build_anchors(&c->x_sp, err);
	if (r == 0)
		c->blocks_on = 1;
	return r;
}

static int squashfs_prepare(struct ctx *c, struct slotsync_error *err)
{
	struct slotsync_error e2 = { 0 };
	struct slotsync_delta_block_coder *bc = NULL;
	struct slotsync_delta_profile p = { 0 };
	uint8_t *content = NULL, *buf = NULL;
	size_t cap;
	uint32_t lvl;
	int r = 0, tried = 0, ok;

	if (squashfs_scan(c->ni.p, c->ni.size, &c->nsq, &e2) < 0 || squashfs_scan(c->bi.p, c->bi.size, &c->bsq, &e2) < 0)
		return 0;  /* not squashfs: the codec is not tried */
	/* zstd blocks as blocks objects need an SSDELTA3 index (else ZSTD_FRAMES) */
	if (c->nsq.comp != c->bsq.comp || c->nsq.block_size != c->bsq.block_size ||
	    (c->nsq.comp != SQFS_GZIP && c->nsq.comp != SQFS_XZ && c->nsq.comp != SQFS_LZ4 &&
	     (c->nsq.comp != SQFS_ZSTD || c->opt->index_format == 2)))
		return 0;
	p.comp = c->nsq.comp;
	p.block_max = c->nsq.block_size;
	switch (p.comp) {
	case SQFS_GZIP:
		/* gzip_wrapper.c: level 9, window 15, the default strategy */
		p.level = 9;
		p.window = 15;
		p.variants = 1;
		if (c->nsq.has_opts) {
			p.level = c->nsq.opt[0];
			p.window = c->nsq.opt[1] & 0xffffu;
			p.variants = (c->nsq.opt[1] >> 16) & 0x1fu;
			if (!p.variants)
				p.variants = 1;
		}
		break;
	case SQFS_XZ:
		/* xz_wrapper.c: preset 6 (LZMA_PRESET_DEFAULT), a dictionary of the
		 * block size, no filter and each -Xbcj filter in turn */
		p.level = 6;
		p.window = c->nsq.has_opts ? c->nsq.opt[0] : c->nsq.block_size;
		p.variants = 1u | (c->nsq.has_opts ? (c->nsq.opt[1] & 0x3fu) << 1 : 0);
		break;
	case SQFS_LZ4:
		/* lz4_wrapper.c: LZ4_compress_default, or with -Xhc (flag 1)
		 * LZ4_compress_HC at its highest level */
		p.level = c->nsq.has_opts && (c->nsq.opt[1] & 1) ? LZ4HC_MAX : 0;
		p.variants = 1;
		break;
	case SQFS_ZSTD:
		/* zstd_wrapper.c: ZSTD_compressCCtx at -Xcompression-level (15
		 * if the image stores no options); the level is the variant */
		lvl = c->nsq.has_opts ? c->nsq.opt[0] : 15;
		if (lvl < 1 || lvl > SLOTSYNC_DELTA_FRAME_LEVEL_MAX)
			return 0;
		p.variants = 1u << lvl;
		break;
	}
	bc = slotsync_delta_block_coder_new();
	cap = (size_t)c->nsq.block_size * 2 + 65536;
	content = malloc(c->nsq.block_size);
	buf = malloc(cap);
	if (!bc || !content || !buf) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ok = probe_profile(c, bc, &p, content, buf, cap, &tried);
	if (tried && ok < tried) {
		/* other levels, the one that reproduces most blocks */
		struct slotsync_delta_profile best = p, q = p;
		int best_ok = ok, lo = p.comp == SQFS_LZ4 ? 0 : p.comp == SQFS_XZ ? 0 : 1,
		    hi = p.comp == SQFS_LZ4 ? LZ4HC_MAX : p.comp == SQFS_ZSTD ? SLOTSYNC_DELTA_FRAME_LEVEL_MAX : 9;
		for (int l = lo; l <= hi && best_ok < tried; l++) {
			int t2;
			if (p.comp == SQFS_ZSTD)  /* zstd's level is its variant */
				q.variants = 1u << l;
			else
				q.level = (uint32_t)l;
			if (q.level == p.level && q.variants == p.variants)
				continue;
			t2 = probe_profile(c, bc, &q, content, buf, cap, &tried);
			if (t2 > best_ok) {
				best_ok = t2;
				best = q;
			}
		}
		p = best;
		ok = best_ok;
	}
	if (tried && ok)  /* else nothing compresses back: the codec is not tried */
		r = start(c, bc, &p, err);
out:
	slotsync_delta_block_coder_free(bc);
	free(content);
	free(buf);
	return r;
}

/* The new image's first gzip files that DEFLATE tries to make again */
#define PROBE_MEMBERS 16

/* DEFLATE, where the image's blocks are not compressed: its gzip files as
 * blocks, if the profile (zlib -9 and -6, memLevel 8 and 9: gzip's and
 * zlib's defaults) makes some of the first of them again. */
int blocks_prepare_members(struct ctx *c, struct slotsync_error *err)
{
	struct slotsync_delta_block_coder *bc = NULL;
	struct slotsync_delta_profile p = { .comp = SLOTSYNC_DELTA_COMP_DEFLATE, .window = 15, .variants = 0xc3 };
	uint32_t *bounds = malloc(SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX * sizeof(*bounds));
	uint8_t *content = NULL, *buf = NULL;
	size_t cap, tried = 0, ok = 0;
	int r = 0;

	squashfs_info_free(&c->nsq);
	squashfs_info_free(&c->bsq);
	if (!bounds || members_scan(c->ni.p, c->ni.size, SLOTSYNC_DELTA_PROFILE_BLOCK_MAX, &c->nsq) < 0 ||
	    members_scan(c->bi.p, c->bi.size, SLOTSYNC_DELTA_PROFILE_BLOCK_MAX, &c->bsq) < 0)
		goto oom;
	if (!c->nsq.n_blocks)
		goto out;
	if (c->bsq.block_size > c->nsq.block_size)
		c->nsq.block_size = c->bsq.block_size;
	c->bsq.block_size = c->nsq.block_size;
	p.block_max = c->nsq.block_size;
	cap = SLOTSYNC_DELTA_DEFLATE_CAP(p.block_max);
	bc = slotsync_delta_block_coder_new();
	content = malloc(p.block_max);
	buf = malloc(cap);
	if (!bc || !content || !buf)
		goto oom;
	for (size_t i = 0; i < c->nsq.n_blocks && tried < PROBE_MEMBERS; i++) {
		const struct sqfs_block *b = &c->nsq.blocks[i];
		size_t nb;
		int64_t n = members_expand(c->ni.p + b->off, b->csize, content, p.block_max, bounds, &nb,
					   SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX);
		if (n <= 0)
			continue;
		tried++;
		ok += blocks_find_variant(bc, &p, bounds, nb, content, (size_t)n, c->ni.p + b->off, b->csize, buf, cap) >= 0;
	}
	if (ok) {  /* else made otherwise: the codec is not tried */
		c->members = 1;
		r = start(c, bc, &p, err);
	}
	goto out;
oom:
	r = slotsync_error_set(err, -ENOMEM, "out of memory for the gzip files of the images");
out:
	slotsync_delta_block_coder_free(bc);
	free(bounds);
	free(content);
	free(buf);
	return r;
}

int blocks_prepare(struct ctx *c, struct slotsync_error *err)
{
	int r = squashfs_prepare(c, err);

	if (r == 0 && c->blocks_on && c->opt->index_format != 2)
		inner_prepare(c);
	return r;
}
