/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the ZSTD_FRAMES codec on the generator's side.  In an
 * image of zstd frames (a zstd squashfs) a changed block shares no compressed
 * bytes with the old one, so the object is made of the frames' content: the
 * new range becomes records (a frame the device can compress again to the same
 * bytes, as its content and level; anything else as bytes), and its reference
 * is whole frames of the base (and of the new image just before the range),
 * which the device expands before it decodes.  The base is expanded once,
 * segment by segment, and its anchors voted on like the plain image's. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "delta_internal.h"

#define XPIECE (64u << 10)                /* record bytes voted on together */
#define TARGET_XCONTEXT (1u << 20)        /* expanded bytes of the new image before an object */
#define TARGET_RAW_MAX (2u << 20)
#define LEVEL_PROBE_FRAMES 8
static int xseg_add(struct ctx *c, size_t *cap, uint64_t x, uint64_t r, uint64_t xl, uint64_t rl, int frame)
{
	if (c->n_xseg && !frame && !c->xseg[c->n_xseg - 1].frame) {
		c->xseg[c->n_xseg - 1].xl += xl;
		c->xseg[c->n_xseg - 1].rl += rl;
		return 0;
	}
	if (c->n_xseg == *cap) {
		size_t nc = *cap ? *cap * 2 : 4096;
		struct xseg *g = realloc(c->xseg, nc * sizeof(*g));
		if (!g)
			return -ENOMEM;
		c->xseg = g;
		*cap = nc;
	}
	c->xseg[c->n_xseg++] = (struct xseg){ x, r, xl, rl, frame };
	return 0;
}

/* The zstd frames of the new image (those that decode), the levels the first
 * of them compress again to themselves with, and, if there are such levels,
 * the base expanded (segment by segment) with its anchors. */
int frames_prepare(struct ctx *c, struct slotsync_error *err)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *buf = malloc(SLOTSYNC_DELTA_FRAME_MAX), *z = malloc(FBUF_CAP);
	size_t cap = 0, probed = 0, xcap = 0, seg_cap = 0;
	uint64_t x = 0;
	int r = 0;

	if (!dc || !cc || !buf || !z) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the frames a device expands (slotsync_delta_expand()) */
	ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, SLOTSYNC_DELTA_FRAME_WINDOW_LOG);
	for (uint64_t i = 0; i < c->ni.size;) {
		const uint8_t *m = memchr(c->ni.p + i, 0x28, c->ni.size - i);
		size_t content = 0, fc, n;
		if (!m)
			break;
		i = (uint64_t)(m - c->ni.p);
		fc = slotsync_delta_frame_at(m, c->ni.size - i, &content);
		n = fc ? ZSTD_decompressDCtx(dc, buf, SLOTSYNC_DELTA_FRAME_MAX, m, fc) : 0;
		if (!fc || ZSTD_isError(n) || n != content) {
			i++;
			continue;
		}
		if (c->n_nf == cap) {
			size_t nc = cap ? cap * 2 : 1024;
			struct nframe *g = realloc(c->nf, nc * sizeof(*g));
			if (!g) {
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			c->nf = g;
			cap = nc;
		}
		c->nf[c->n_nf++] = (struct nframe){ i, (uint32_t)fc, (uint32_t)content };
		if (probed < LEVEL_PROBE_FRAMES) {
			probed++;
			for (int li = 0; li < SLOTSYNC_DELTA_FRAME_LEVEL_MAX + 2; li++) {
				/* mksquashfs's default first, then zstd's, then all */
				int l = li == 0 ? 15 : li == 1 ? 3 : li - 1;
				size_t zn = ZSTD_compressCCtx(cc, z, FBUF_CAP, buf, n, l);
				int k;
				if (ZSTD_isError(zn) || zn != fc || memcmp(z, m, fc) != 0)
					continue;
				for (k = 0; k < c->n_levels && c->levels[k] != l; k++)
					;
				if (k == c->n_levels && c->n_levels < (int)(sizeof(c->levels) / sizeof(c->levels[0])))
					c->levels[c->n_levels++] = l;
				break;
			}
		}
		i += fc;
	}
	if (c->n_levels == 0)
		goto out;
	/* the base expanded: bytes as they are, frames as their content */
	for (uint64_t i = 0; i < c->bi.size;) {
		const uint8_t *m = memchr(c->bi.p + i, 0x28, c->bi.size - i);
		uint64_t lit = m ? (uint64_t)(m - (c->bi.p + i)) : c->bi.size - i;
		size_t content = 0, fc = 0, n = 0;
		int frame;
		if (m)
			fc = slotsync_delta_frame_at(m, c->bi.size - (i + lit), &content);
		if (!fc && m)
			lit++;  /* the 0x28 byte itself */
		if (x + lit + content > xcap) {
			size_t nc = xcap ? xcap : 64u << 20;
			uint8_t *g;
			while (nc < x + lit + content)
				nc *= 2;
			g = realloc(c->xb, nc);
			if (!g)
				goto oom;
			c->xb = g;
			xcap = nc;
		}
		if (lit) {
			memcpy(c->xb + x, c->bi.p + i, lit);
			if (xseg_add(c, &seg_cap, x, i, lit, lit, 0) < 0)
				goto oom;
			x += lit;
			i += lit;
		}
		if (!fc)
			continue;
		n = ZSTD_decompressDCtx(dc, c->xb + x, content, c->bi.p + i, fc);
		frame = !ZSTD_isError(n) && n == content;
		if (!frame) {
			/* not a frame after all: its first byte as it is */
			n = fc = 1;
			c->xb[x] = c->bi.p[i];
		}
		if (xseg_add(c, &seg_cap, x, i, n, fc, frame) < 0)
			goto oom;
		x += n;
		i += fc;
	}
	c->x_sp = (struct space){ .p = c->xb, .size = x };
	r = resemble_build_anchors(&c->x_sp, err);
	goto out;
oom:
	r = slotsync_error_set(err, -ENOMEM, "out of memory for the expanded base image");
out:
	ZSTD_freeDCtx(dc);
	ZSTD_freeCCtx(cc);
	free(buf);
	free(z);
	return r;
}

/* Appends a bytes record of new image [s, e) to the records (one with the
 * record before it if that is one too). */
int frames_put_raw(struct worker *w, size_t *el, size_t *last_raw, uint64_t s, uint64_t e)
{
	size_t n = (size_t)(e - s);

	if (*last_raw != SIZE_MAX) {
		if (*el + n > SLOTSYNC_DELTA_XOUT_MAX)
			return -1;
		io_put_le32(w->xout + *last_raw + 1, io_get_le32(w->xout + *last_raw + 1) + (uint32_t)n);
	} else {
		if (*el + 5 + n > SLOTSYNC_DELTA_XOUT_MAX)
			return -1;
		*last_raw = *el;
		w->xout[*el] = 0;
		io_put_le32(w->xout + *el + 1, (uint32_t)n);
		*el += 5;
	}
	memcpy(w->xout + *el, w->c->ni.p + s, n);
	*el += n;
	return 0;
}

int frames_cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->votes != y->votes)
		return x->votes > y->votes ? -1 : 1;
	return x->s < y->s ? -1 : x->s > y->s;
}

/* Segment of the expanded base holding expanded offset x. */
size_t frames_xseg_at(const struct ctx *c, uint64_t x)
{
	size_t l = 0, h = c->n_xseg;

	while (l < h) {
		size_t m = (l + h) / 2;
		if (c->xseg[m].x + c->xseg[m].xl <= x)
			l = m + 1;
		else
			h = m;
	}
	return l;
}

/* The base ranges the records w->xout[0, el) resemble, voted on XPIECE bytes at
 * a time: most-voted first, whole frames where the base has them, within the
 * limits, each base stretch paid for once (the diagonals of one piece mostly
 * fall in the same frames), merged into rv; returns how many.  One place of rv
 * is left for the context.  rv[0, nr0) are ranges taken already (their bytes
 * out of the budgets), kept. */
size_t frames_pick_ranges(struct worker *w, size_t el, uint64_t raw_budget, uint64_t x_budget, struct interval *rv,
			  size_t nr0, size_t rv_max)
{
	const struct ctx *c = w->c;
	struct cand cand[64 * DIAG_PER_CHUNK];
	size_t nc = 0, nr = nr0;

	for (size_t s = 0; s < el; s += XPIECE) {
		size_t e = s + XPIECE < el ? s + XPIECE : el;
		struct diag dg[DIAG_PER_CHUNK];
		size_t nd = resemble_vote(&c->x_sp, w->xout, s, e, &w->votes, &w->votes_cap, dg);
		for (size_t i = 0; i < nd && nc < sizeof(cand) / sizeof(cand[0]); i++) {
			int64_t a = (int64_t)s + dg[i].d - MARGIN, b = (int64_t)e + dg[i].d + MARGIN;
			if (a < 0)
				a = 0;
			if (b > (int64_t)c->x_sp.size)
				b = (int64_t)c->x_sp.size;
			if (b > a)
				cand[nc++] = (struct cand){ (uint64_t)a, (uint64_t)b, dg[i].votes };
		}
	}
	qsort(cand, nc, sizeof(*cand), frames_cmp_cand);
	for (size_t i = 0; i < nc; i++) {
		for (size_t g = frames_xseg_at(c, cand[i].s); g < c->n_xseg && c->xseg[g].x < cand[i].e; g++) {
			const struct xseg *sg = &c->xseg[g];
			uint64_t a = sg->r, b = sg->r + sg->rl, xn = sg->xl;
			size_t k = 0;
			if (!sg->frame) {
				uint64_t xa = cand[i].s > sg->x ? cand[i].s : sg->x,
					 xb = cand[i].e < sg->x + sg->xl ? cand[i].e : sg->x + sg->xl;
				a = sg->r + (xa - sg->x);
				b = sg->r + (xb - sg->x);
				xn = b - a;
			}
			while (k < nr && !(rv[k].s <= a && b <= rv[k].e))
				k++;
			if (k < nr || b - a > raw_budget || xn > x_budget || nr + 1 >= rv_max)
				continue;
			raw_budget -= b - a;
			x_budget -= xn;
			rv[nr++] = (struct interval){ a, b, 0 };
		}
	}
	return resemble_merge_intervals(rv, nr);
}

/* The ZSTD_FRAMES encoding of new image [rs, re) at the trial level, in
 * w->out_c; returns its size, or 0 if the codec does not apply. */
size_t frames_job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t)
{
	struct ctx *c = w->c;
	const struct slotsync_index *ni = c->new_idx;
	size_t el = 0, last_raw = SIZE_MAX, nframes = 0, lo = 0, hi = c->n_nf, nr = 0, xl, z0, z1 = 0,
	       cap = ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX);
	uint64_t cur = rs, raw_budget = SLOTSYNC_DELTA_REF_MAX, x_budget = SLOTSYNC_DELTA_XREF_MAX, ts = rs, t_raw = 0,
		 t_x = 0;
	struct interval rv[SLOTSYNC_DELTA_REFS_MAX];

	/* the records */
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c->nf[m].off + c->nf[m].csize <= rs)
			lo = m + 1;
		else
			hi = m;
	}
	for (size_t f = lo; f < c->n_nf && c->nf[f].off < re; f++) {
		const struct nframe *F = &c->nf[f];
		uint64_t a = F->off > rs ? F->off : rs, b = F->off + F->csize < re ? F->off + F->csize : re;
		uint8_t *h;
		size_t n;
		int lv = 0;
		if (a > cur && frames_put_raw(w, &el, &last_raw, cur, a) < 0)
			return 0;
		if (el + 18 + F->content > SLOTSYNC_DELTA_XOUT_MAX)
			return 0;
		h = w->xout + el;
		n = ZSTD_decompressDCtx(w->fdc, h + 18, F->content, c->ni.p + F->off, F->csize);
		if (!ZSTD_isError(n) && n == F->content)
			for (int k = 0; k < c->n_levels && !lv; k++) {
				size_t zn = ZSTD_compressCCtx(w->fcc, w->fbuf, FBUF_CAP, h + 18, n, c->levels[k]);
				if (!ZSTD_isError(zn) && zn == F->csize && !memcmp(w->fbuf, c->ni.p + F->off, zn))
					lv = c->levels[k];
			}
		if (!lv) {
			if (frames_put_raw(w, &el, &last_raw, a, b) < 0)
				return 0;
		} else {
			h[0] = 1;
			h[1] = (uint8_t)lv;
			io_put_le32(h + 2, F->csize);
			io_put_le32(h + 6, (uint32_t)(a - F->off));
			io_put_le32(h + 10, (uint32_t)(b - a));
			io_put_le32(h + 14, (uint32_t)n);
			el += 18 + n;
			last_raw = SIZE_MAX;
			nframes++;
		}
		cur = b;
	}
	if (cur < re && frames_put_raw(w, &el, &last_raw, cur, re) < 0)
		return 0;
	if (!nframes)
		return 0;
	t->el = el;

	/* the context: whole frames of the new image just before the output */
	for (size_t k = lo; k-- > 0 && t_x < TARGET_XCONTEXT;) {
		if (rs - c->nf[k].off > TARGET_RAW_MAX)
			break;
		ts = c->nf[k].off;
		t_x += c->nf[k].content;
	}
	t_raw = rs - ts;

	raw_budget -= t_raw;
	x_budget -= t_x < x_budget ? t_x : x_budget;
	nr = frames_pick_ranges(w, el, raw_budget, x_budget, rv, 0, sizeof(rv) / sizeof(rv[0]));
	/* references: the context (one range) and the base ranges, in this order */
	t->n_refs = 0;
	t->raw_len = 0;
	if (t_raw) {
		uint32_t p = resemble_base_chunk_at(ni, ts);
		t->refs[t->n_refs++] = (struct slotsync_delta_ref){ p, (uint32_t)(ts - slotsync_index_chunk_start(ni, p)),
								    (uint32_t)t_raw, 1 };
		memcpy(w->xraw, c->ni.p + ts, t_raw);
		t->raw_len = t_raw;
	}
	for (size_t i = 0; i < nr && t->n_refs < SLOTSYNC_DELTA_REFS_MAX; i++) {
		uint32_t bc = resemble_base_chunk_at(c->base, rv[i].s);
		t->refs[t->n_refs++] = (struct slotsync_delta_ref){
			bc, (uint32_t)(rv[i].s - slotsync_index_chunk_start(c->base, bc)), (uint32_t)(rv[i].e - rv[i].s), 0
		};
		memcpy(w->xraw + t->raw_len, c->bi.p + rv[i].s, rv[i].e - rv[i].s);
		t->raw_len += rv[i].e - rv[i].s;
	}
	/* with the context and without it; w->xref is left as the kept one */
	t->xl = slotsync_delta_expand(w->fdc, w->xraw + t_raw, t->raw_len - t_raw, w->xref, SLOTSYNC_DELTA_XREF_MAX);
	z0 = encode_zstd_ref(w->cc, TRIAL_LEVEL(c), w->xref, t->xl, w->xout, el, w->out_c, cap);
	if (t_raw) {
		xl = slotsync_delta_expand(w->fdc, w->xraw, t->raw_len, w->xref, SLOTSYNC_DELTA_XREF_MAX);
		z1 = encode_zstd_ref(w->cc, TRIAL_LEVEL(c), w->xref, xl, w->xout, el, w->out_c, cap);
	}
	if (z1 && (!z0 || z1 + SLOTSYNC_DELTA_REF_BYTES < z0)) {
		t->reads_new = 1;
		t->xl = xl;
		return z1;
	}
	t->reads_new = 0;
	if (t_raw) {
		memmove(w->xraw, w->xraw + t_raw, t->raw_len - t_raw);
		t->raw_len -= t_raw;
		memmove(t->refs, t->refs + 1, (t->n_refs - 1) * sizeof(*t->refs));
		t->n_refs--;
		t->xl = slotsync_delta_expand(w->fdc, w->xraw, t->raw_len, w->xref, SLOTSYNC_DELTA_XREF_MAX);
	}
	return z0;
}

/* The ZSTD_FRAMES object of t, encoded at the full level and checked, as job
 * j's result.  Returns 0, or -1 if it does not beat the plain chunks. */
int frames_keep(struct worker *w, struct job *j, const struct frames_try *t, const uint8_t *src, size_t len)
{
	struct ctx *c = w->c;
	struct slotsync_error e2 = { 0 };
	int lv = gen_records_level(c->opt);
	size_t pl = encode_zstd_ref(w->cc, lv, w->xref, t->xl, w->xout, t->el, w->out_c,
			     ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX)),
	       xn = pl ? encode_try_xz(w, w->xout, t->el, pl) : 0;

	/* new content: its records as xz, without the reference, if smaller */
	if (xn) {
		memcpy(w->out_c, w->xzb, xn);
		pl = xn;
	}
	if (!pl || pl >= j->plain)
		return -1;
	if (slotsync_delta_decode(w->dec, SLOTSYNC_DELTA_ZSTD_FRAMES, w->out_c, pl, w->xraw, xn ? 0 : t->raw_len, w->check, len,
				  &e2) < 0 ||
	    memcmp(w->check, src, len) != 0) {
		char what[SLOTSYNC_ERROR_MSG_MAX + 128];
		snprintf(what, sizeof(what), "zstd-frames object does not decode to its chunks (an encoder fault): %s",
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
	j->codec = SLOTSYNC_DELTA_ZSTD_FRAMES;
	j->flags = xn ? SLOTSYNC_DELTA_OBJ_XZ : 0;
	/* xz records use no reference */
	memcpy(j->refs, t->refs, t->n_refs * sizeof(*t->refs));
	j->n_refs = xn ? 0 : t->n_refs;
	j->reads_new = xn ? 0 : t->reads_new;
	return 0;
}
