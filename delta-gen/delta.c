/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: delta objects for the chunks of a new release that a base
 * release lacks (slotsync/delta.h, docs/format.md).
 *
 * Resemblance, by content only: every position of the base image whose 8 bytes
 * hash into a sampled class (1 in ANCHOR_RATE) is an anchor, kept in a table
 * sorted by hash.  For a new chunk, the anchors sampled the same way in it are
 * looked up; each hit votes for a diagonal (base offset - new offset).  The
 * most-voted diagonals, widened by a margin, are the chunk's reference ranges.
 *
 * Objects: runs of consecutive missing chunks (up to run_max bytes; novel
 * chunks, which nothing in the base resembles, up to 1 MiB) become one
 * object each, so that zstd sees across chunk boundaries (new files resemble
 * each other more than anything in the base).  Each object is encoded with
 * every codec, the reference as zstd's raw-content prefix:
 *   ZSTD_REF   the output itself;
 *   RESIDUAL   per 64-byte block, the best of the chunk's diagonals as a
 *              prediction (or none), and output - prediction (bsdiff's insight:
 *              code that moved changes by small differences).
 * A ZSTD_REF object may also have, in front of its base ranges, the missing
 * chunks just before it as ranges of the new image (the device reads them back
 * from the slot it writes): new packages resemble each other.  They stay when
 * the trial says they pay for their index entries.
 * Codecs are tried at a quicker zstd level; the smallest is encoded again at
 * the full level and kept only if it beats the plain chunks it replaces.  Every
 * object is decoded again and compared before it is kept.  Objects are made on
 * all cores; the result does not depend on the number of threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "io.h"
#include "clock.h"
#include "gen.h"
#include "slotsync/delta.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "store_write.h"

#define ANCHOR_BITS 5                /* 1 anchor in 32 positions */
#define POS_BITS 40
#define POS_MASK ((UINT64_C(1) << POS_BITS) - 1)
#define OCC_MAX 8                    /* hash classes seen more often say nothing */
#define DIAG_PER_CHUNK 8
#define MARGIN 2048                  /* reference bytes around an alignment */
#define MIN_VOTES 2
/* Codecs are tried at a quicker level; the winner is encoded at the full one.
 * Level 6 picks as well as 12 on the realistic pairs (raw feature pair +0.05 %,
 * the others the same or smaller) in three quarters of the time; 5 and below
 * pick worse (+0.9 %). */
#define TRIAL_LEVEL(c) ((c)->opt->level > 6 ? 6 : (c)->opt->level)

struct image {
	const uint8_t *p;
	uint64_t size;
	int fd;
};

struct job {
	uint32_t first, count;           /* new chunks */
	uint64_t bytes;                  /* their size */
	/* result */
	uint8_t codec;
	uint8_t *payload;
	size_t payload_len;
	uint64_t plain;                  /* bytes of the plain chunks it replaces */
	struct slotsync_delta_ref refs[SLOTSYNC_DELTA_REFS_MAX];
	uint32_t n_refs;
	int reads_new;                   /* refs start with ranges of the new image */
};

#define RUN_CHUNKS_MAX 128
#define NOVEL_VOTES 4                /* fewer votes: the base has nothing like the chunk */
/* Context across objects: the missing chunks just before a run, read by the
 * device from the slot it writes (new files resemble each other). */
#define TARGET_CONTEXT (512u << 10)
/* Level for objects with that context: at 22, with the larger prefix to
 * index, it took as long and saved nothing on the realistic pairs. */
#define TARGET_LEVEL 19

/* What the first pass learns of a missing chunk. */
struct chunk_info {
	struct diag {
		int64_t d;
		uint32_t votes;
	} dg[DIAG_PER_CHUNK];
	uint32_t nd;
	uint32_t plain;                  /* bytes as a plain (compressed) chunk */
};

/* Where resemblance is looked for: bytes and their anchors. */
struct space {
	const uint8_t *p;
	uint64_t size;
	uint64_t *anchors;               /* hash (24 bits) << 40 | offset, sorted */
	size_t n_anchors;
};

/* The base image expanded (ZSTD_FRAMES): a segment is a zstd frame of the
 * image (rl compressed bytes at r, its xl bytes of content at x) or bytes as
 * they are (frame 0, xl == rl). */
struct xseg {
	uint64_t x, r;
	uint64_t xl, rl;                 /* merged runs of bytes may be long */
	int frame;
};

/* A zstd frame of the new image. */
struct nframe {
	uint64_t off;
	uint32_t csize, content;
};

struct ctx {
	const struct gen_delta_options *opt;
	struct chunk_info *info;         /* per new chunk (missing ones filled) */
	uint32_t *todo;                  /* missing chunk positions */
	size_t n_todo;
	int phase;                       /* 0: analyse chunks, 1: make objects */
	const struct slotsync_index *base, *new_idx;
	const uint8_t *missing;          /* per new chunk: the base lacks it (first occurrence) */
	struct image bi, ni;
	struct space base_sp;            /* the base image */
	/* ZSTD_FRAMES: the expanded base, its segments, the new image's frames and
	 * the levels they were made with (none: the codec is not tried) */
	struct space x_sp;
	uint8_t *xb;
	struct xseg *xseg;
	size_t n_xseg;
	struct nframe *nf;
	size_t n_nf;
	int levels[4], n_levels;
	struct job *jobs;
	size_t n_jobs;
	struct job **order;              /* the jobs, largest first (threads end together) */
	atomic_size_t next;
	pthread_mutex_t lock;
	int failed;
	struct slotsync_error err;
};

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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int build_anchors(struct space *sp, struct slotsync_error *err)
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
		a[n++] = (uint64_t)key << POS_BITS | p;
	}
	qsort(a, n, sizeof(*a), cmp_u64);
	sp->anchors = a;
	sp->n_anchors = n;
	return 0;
}

/* Anchors of key: [*lo, *hi). */
static void anchor_range(const struct space *sp, uint32_t key, size_t *lo, size_t *hi)
{
	uint64_t k0 = (uint64_t)key << POS_BITS, k1 = (uint64_t)(key + 1) << POS_BITS;
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

static int cmp_job_bytes(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
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
static size_t vote(const struct space *sp, const uint8_t *src, uint64_t s, uint64_t e, int64_t **buf, size_t *cap,
		   struct diag *out)
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
			uint64_t p = sp->anchors[i] & POS_MASK;
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

struct interval {
	uint64_t s, e;      /* base bytes */
	uint64_t r;         /* where it starts in the reference */
};

static int cmp_interval(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

/* Sorts iv[0..n) and merges overlapping intervals; returns how many are left. */
static size_t merge_intervals(struct interval *iv, size_t n)
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
static uint32_t base_chunk_at(const struct slotsync_index *idx, uint64_t off)
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

static size_t zstd_ref(ZSTD_CCtx *cc, int level, const uint8_t *ref, size_t ref_len, const void *src, size_t len,
		       uint8_t *dst, size_t cap)
{
	unsigned wlog = 10;
	size_t r;

	while (wlog < SLOTSYNC_DELTA_WINDOW_LOG && ((size_t)1 << wlog) < ref_len + len)
		wlog++;
	ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, (int)wlog);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0);
	if (ref_len)
		ZSTD_CCtx_refPrefix(cc, ref, ref_len);
	r = ZSTD_compress2(cc, dst, cap, src, len);
	return ZSTD_isError(r) ? 0 : r;
}

struct frames_try {
	struct slotsync_delta_ref refs[SLOTSYNC_DELTA_REFS_MAX];
	uint32_t n_refs;
	size_t raw_len, el;   /* reference bytes (in w->xraw), record bytes (in w->xout) */
	size_t xl;            /* the reference expanded (in w->xref) */
	int reads_new;
};

struct worker {
	struct ctx *c;
	ZSTD_CCtx *cc;
	/* ZSTD_FRAMES: frames decoded and compressed again; the raw reference,
	 * it expanded, the records, the object */
	ZSTD_CCtx *fcc;
	ZSTD_DCtx *fdc;
	uint8_t *fbuf, *xraw, *xref, *xout, *out_c;
	struct frames_try *ft;
	struct slotsync_delta_decoder *dec;
	int64_t *votes;
	size_t votes_cap;
	uint8_t *ref_buf;                /* the context across objects, then ref */
	uint8_t *ref, *resid, *out_a, *out_b, *check, *plain;
};

static void job_fail(struct ctx *c, const char *what, size_t job)
{
	pthread_mutex_lock(&c->lock);
	if (!c->failed) {
		c->failed = 1;
		slotsync_error_set(&c->err, -EIO, "delta object %zu: %s", job, what);
	}
	pthread_mutex_unlock(&c->lock);
}


/* ---- ZSTD_FRAMES ---------------------------------------------------------- */

#define FBUF_CAP ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX)
#define XPIECE (64u << 10)                /* record bytes voted on together */
#define TARGET_XCONTEXT (1u << 20)        /* expanded bytes of the new image before an object */
#define TARGET_RAW_MAX (2u << 20)
#define LEVEL_PROBE_FRAMES 8
/* Level of ZSTD_FRAMES objects: their records are larger than the chunks and
 * their prefixes up to 4 MiB; on the realistic zstd pairs level 19 took twice
 * as long (feature pair 12.9 s against 6.0) for 1.5 % fewer bytes. */
#define FRAMES_LEVEL 12
/* Runs in an image of zstd frames: the frames a run cuts at its ends are
 * recorded whole, a cost that long runs spread (feature zstd pair: runs split
 * by resemblance 3,237,515 bytes, runs of 512 KiB 3,111,657, of 1 MiB the
 * same). */
#define FRAMES_RUN_MAX (512u << 10)

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
static int frames_prepare(struct ctx *c, struct slotsync_error *err)
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
	r = build_anchors(&c->x_sp, err);
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
static int put_raw(struct worker *w, size_t *el, size_t *last_raw, uint64_t s, uint64_t e)
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



struct cand {
	uint64_t s, e;        /* expanded base bytes */
	uint32_t votes;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->votes != y->votes)
		return x->votes > y->votes ? -1 : 1;
	return x->s < y->s ? -1 : x->s > y->s;
}

/* Segment of the expanded base holding expanded offset x. */
static size_t xseg_at(const struct ctx *c, uint64_t x)
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

/* The ZSTD_FRAMES encoding of new image [rs, re) at the trial level, in
 * w->out_c; returns its size, or 0 if the codec does not apply. */
static size_t frames_job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t)
{
	struct ctx *c = w->c;
	const struct slotsync_index *ni = c->new_idx;
	size_t el = 0, last_raw = SIZE_MAX, nframes = 0, lo = 0, hi = c->n_nf, nc = 0, nr = 0, xl, z0, z1 = 0,
	       cap = ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX);
	uint64_t cur = rs, raw_budget = SLOTSYNC_DELTA_REF_MAX, x_budget = SLOTSYNC_DELTA_XREF_MAX, ts = rs, t_raw = 0,
		 t_x = 0;
	struct cand cand[64 * DIAG_PER_CHUNK];
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
		if (a > cur && put_raw(w, &el, &last_raw, cur, a) < 0)
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
			if (put_raw(w, &el, &last_raw, a, b) < 0)
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
	if (cur < re && put_raw(w, &el, &last_raw, cur, re) < 0)
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

	/* what the records resemble in the expanded base */
	for (size_t s = 0; s < el; s += XPIECE) {
		size_t e = s + XPIECE < el ? s + XPIECE : el;
		struct diag dg[DIAG_PER_CHUNK];
		size_t nd = vote(&c->x_sp, w->xout, s, e, &w->votes, &w->votes_cap, dg);
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
	qsort(cand, nc, sizeof(*cand), cmp_cand);
	raw_budget -= t_raw;
	x_budget -= t_x < x_budget ? t_x : x_budget;
	/* as base ranges: whole frames, most-voted first, within the limits */
	for (size_t i = 0; i < nc; i++) {
		for (size_t g = xseg_at(c, cand[i].s); g < c->n_xseg && c->xseg[g].x < cand[i].e; g++) {
			const struct xseg *sg = &c->xseg[g];
			uint64_t a = sg->r, b = sg->r + sg->rl, xn = sg->xl;
			if (!sg->frame) {
				uint64_t xa = cand[i].s > sg->x ? cand[i].s : sg->x,
					 xb = cand[i].e < sg->x + sg->xl ? cand[i].e : sg->x + sg->xl;
				a = sg->r + (xa - sg->x);
				b = sg->r + (xb - sg->x);
				xn = b - a;
			}
			if (b - a > raw_budget || xn > x_budget || nr == sizeof(rv) / sizeof(rv[0]) - 1)
				continue;
			raw_budget -= b - a;
			x_budget -= xn;
			rv[nr++] = (struct interval){ a, b, 0 };
		}
	}
	nr = merge_intervals(rv, nr);
	/* references: the context (one range) and the base ranges, in this order */
	t->n_refs = 0;
	t->raw_len = 0;
	if (t_raw) {
		uint32_t p = base_chunk_at(ni, ts);
		t->refs[t->n_refs++] = (struct slotsync_delta_ref){ p, (uint32_t)(ts - slotsync_index_chunk_start(ni, p)),
								    (uint32_t)t_raw, 1 };
		memcpy(w->xraw, c->ni.p + ts, t_raw);
		t->raw_len = t_raw;
	}
	for (size_t i = 0; i < nr && t->n_refs < SLOTSYNC_DELTA_REFS_MAX; i++) {
		uint32_t bc = base_chunk_at(c->base, rv[i].s);
		t->refs[t->n_refs++] = (struct slotsync_delta_ref){
			bc, (uint32_t)(rv[i].s - slotsync_index_chunk_start(c->base, bc)), (uint32_t)(rv[i].e - rv[i].s), 0
		};
		memcpy(w->xraw + t->raw_len, c->bi.p + rv[i].s, rv[i].e - rv[i].s);
		t->raw_len += rv[i].e - rv[i].s;
	}
	/* with the context and without it; w->xref is left as the kept one */
	t->xl = slotsync_delta_expand(w->fdc, w->xraw + t_raw, t->raw_len - t_raw, w->xref, SLOTSYNC_DELTA_XREF_MAX);
	z0 = zstd_ref(w->cc, TRIAL_LEVEL(c), w->xref, t->xl, w->xout, el, w->out_c, cap);
	if (t_raw) {
		xl = slotsync_delta_expand(w->fdc, w->xraw, t->raw_len, w->xref, SLOTSYNC_DELTA_XREF_MAX);
		z1 = zstd_ref(w->cc, TRIAL_LEVEL(c), w->xref, xl, w->xout, el, w->out_c, cap);
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
static int frames_keep(struct worker *w, struct job *j, const struct frames_try *t, const uint8_t *src, size_t len)
{
	struct ctx *c = w->c;
	struct slotsync_error e2 = { 0 };
	int lv = c->opt->level > FRAMES_LEVEL ? FRAMES_LEVEL : c->opt->level;
	size_t pl = zstd_ref(w->cc, lv, w->xref, t->xl, w->xout, t->el, w->out_c,
			     ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX));

	if (!pl || pl >= j->plain)
		return -1;
	if (slotsync_delta_decode(w->dec, SLOTSYNC_DELTA_ZSTD_FRAMES, w->out_c, pl, w->xraw, t->raw_len, w->check, len,
				  &e2) < 0 ||
	    memcmp(w->check, src, len) != 0) {
		char what[SLOTSYNC_ERROR_MSG_MAX + 128];
		snprintf(what, sizeof(what), "zstd-frames object does not decode to its chunks (an encoder fault): %s",
			 e2.msg[0] ? e2.msg : "other bytes");
		job_fail(c, what, (size_t)(j - c->jobs));
		return -1;
	}
	j->payload = malloc(pl);
	if (!j->payload) {
		job_fail(c, "out of memory", (size_t)(j - c->jobs));
		return -1;
	}
	memcpy(j->payload, w->out_c, pl);
	j->payload_len = pl;
	j->codec = SLOTSYNC_DELTA_ZSTD_FRAMES;
	memcpy(j->refs, t->refs, t->n_refs * sizeof(*t->refs));
	j->n_refs = t->n_refs;
	j->reads_new = t->reads_new;
	return 0;
}

static void do_job(struct worker *w, struct job *j)
{
	struct ctx *c = w->c;
	const struct slotsync_index *ni = c->new_idx;
	uint64_t rs = slotsync_index_chunk_start(ni, j->first), re = ni->chunks[j->first + j->count - 1].end;
	size_t len = (size_t)(re - rs), blocks = (len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK;
	struct interval iv[64 * DIAG_PER_CHUNK];
	size_t niv = 0, nal = 0;
	/* per chunk of the run: its diagonals, then their alignments (indexes into ra[]) */
	int64_t chunk_d[RUN_CHUNKS_MAX][DIAG_PER_CHUNK];
	uint8_t chunk_al[RUN_CHUNKS_MAX][DIAG_PER_CHUNK];
	size_t chunk_nd[RUN_CHUNKS_MAX], chunk_nal[RUN_CHUNKS_MAX], ref_len = 0,
		cap = ZSTD_compressBound(len + 1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + blocks);
	int32_t ra[SLOTSYNC_DELTA_ALIGN_MAX];
	struct slotsync_delta_ref tr[SLOTSYNC_DELTA_REFS_MAX];
	size_t size_zstd, size_residual, n_tr = 0, t_len = 0;
	int use_t = 0;
	const uint8_t *src = c->ni.p + rs;

	j->plain = 0;
	for (uint32_t k = 0; k < j->count; k++) {
		uint64_t cs = slotsync_index_chunk_start(ni, j->first + k), ce = ni->chunks[j->first + k].end;
		const struct chunk_info *ci = &c->info[j->first + k];
		size_t nd = ci->nd;
		const struct diag *dg = ci->dg;
		j->plain += ci->plain;
		chunk_nd[k] = 0;
		for (size_t i = 0; i < nd; i++) {
			int64_t s = (int64_t)cs + dg[i].d - MARGIN, e = (int64_t)ce + dg[i].d + MARGIN;
			if (s < 0)
				s = 0;
			if (e > (int64_t)c->bi.size)
				e = (int64_t)c->bi.size;
			if (e <= s || niv == sizeof(iv) / sizeof(iv[0]))
				continue;
			iv[niv].s = (uint64_t)s;
			iv[niv].e = (uint64_t)e;
			niv++;
			chunk_d[k][chunk_nd[k]++] = dg[i].d;
		}
	}
	j->codec = 0;
	/* merge into disjoint intervals, in base order, within the limits */
	niv = merge_intervals(iv, niv);
	j->n_refs = 0;
	for (size_t i = 0; i < niv && j->n_refs < SLOTSYNC_DELTA_REFS_MAX; i++) {
		uint64_t s = iv[i].s, e = iv[i].e;
		uint32_t bc;
		if (ref_len + (e - s) > SLOTSYNC_DELTA_REF_MAX)
			e = s + (SLOTSYNC_DELTA_REF_MAX - ref_len);
		if (e <= s)
			break;
		iv[i].e = e;
		iv[i].r = ref_len;
		memcpy(w->ref + ref_len, c->bi.p + s, e - s);
		ref_len += e - s;
		/* one range may span base chunks: it names the first */
		bc = base_chunk_at(c->base, s);
		j->refs[j->n_refs].chunk = bc;
		j->refs[j->n_refs].offset = (uint32_t)(s - slotsync_index_chunk_start(c->base, bc));
		j->refs[j->n_refs].length = (uint32_t)(e - s);
		j->refs[j->n_refs].target = 0;
		j->n_refs++;
	}
	niv = j->n_refs;

	/* the missing chunks just before the run, nearest last: ranges of the new
	 * image, laid down backwards in front of the base ranges (w->ref has room
	 * for them before it) */
	{
		uint64_t budget = SLOTSYNC_DELTA_REF_MAX - ref_len;
		if (budget > TARGET_CONTEXT)
			budget = TARGET_CONTEXT;
		for (uint32_t p = j->first; p-- > 0 && t_len < budget;) {
			uint64_t size, take;
			if (!c->missing[p])
				continue;
			size = slotsync_index_chunk_size(ni, p);
			take = size < budget - t_len ? size : budget - t_len;
			if (n_tr && tr[n_tr - 1].chunk == p + 1 && tr[n_tr - 1].offset == 0) {
				tr[n_tr - 1].chunk = p;
				tr[n_tr - 1].offset = (uint32_t)(size - take);
				tr[n_tr - 1].length += (uint32_t)take;
			} else {
				if (n_tr + j->n_refs == SLOTSYNC_DELTA_REFS_MAX)
					break;
				tr[n_tr++] = (struct slotsync_delta_ref){ p, (uint32_t)(size - take), (uint32_t)take, 1 };
			}
			t_len += take;
			memcpy(w->ref - t_len, c->ni.p + slotsync_index_chunk_start(ni, p) + (size - take), take);
		}
		/* the index lists them in the order of their bytes */
		for (size_t a = 0; a < n_tr / 2; a++) {
			struct slotsync_delta_ref x = tr[a];
			tr[a] = tr[n_tr - 1 - a];
			tr[n_tr - 1 - a] = x;
		}
	}

	/* ZSTD_REF, with the context across objects if it pays for its ranges */
	size_zstd = zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref, ref_len, src, len, w->out_a, cap);
	if (n_tr) {
		size_t z = zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref - t_len, t_len + ref_len, src, len, w->out_b, cap);
		if (z && (!size_zstd || z + SLOTSYNC_DELTA_REF_BYTES * n_tr + 16 < size_zstd)) {
			memcpy(w->out_a, w->out_b, z);
			size_zstd = z;
			use_t = 1;
		}
	}

	/* RESIDUAL: each chunk's diagonals as alignments in reference coordinates:
	 * output byte i (from the run's start) is predicted by ref[align + i] */
	for (uint32_t k = 0; k < j->count; k++) {
		int64_t cs = (int64_t)slotsync_index_chunk_start(ni, j->first + k);
		chunk_nal[k] = 0;
		for (size_t t = 0; t < chunk_nd[k]; t++) {
			int64_t bpos = cs + chunk_d[k][t], al = 0;
			size_t i, a;
			for (i = 0; i < niv; i++)
				if (bpos >= (int64_t)iv[i].s && bpos < (int64_t)iv[i].e)
					break;
			if (i == niv)
				continue;
			al = (int64_t)iv[i].r + (bpos - (int64_t)iv[i].s) - (cs - (int64_t)rs);
			for (a = 0; a < nal && ra[a] != al; a++)
				;
			if (a == nal) {
				if (nal == SLOTSYNC_DELTA_ALIGN_MAX)
					continue;
				ra[nal++] = (int32_t)al;
			}
			chunk_al[k][chunk_nal[k]++] = (uint8_t)a;
		}
	}
	{
		uint8_t *sel, *res, *hdr = w->resid;
		size_t head = 1 + 4 * (nal ? nal : 1), total;
		hdr[0] = (uint8_t)(nal ? nal : 1);
		for (size_t a = 0; a < (nal ? nal : 1); a++)
			io_put_le32(hdr + 1 + 4 * a, (uint32_t)(nal ? ra[a] : 0));
		sel = hdr + head;
		res = sel + blocks;
		for (size_t b = 0; b < blocks; b++) {
			size_t at = b * SLOTSYNC_DELTA_BLOCK, end = at + SLOTSYNC_DELTA_BLOCK < len ? at + SLOTSYNC_DELTA_BLOCK : len;
			/* which chunk of the run holds this block (its start) */
			uint64_t off = rs + at;
			uint32_t k = 0;
			size_t best_n = (end - at) / 2 + 1;
			int best = 0xff;
			while (k + 1 < j->count && ni->chunks[j->first + k].end <= off)
				k++;
			for (size_t t = 0; t < chunk_nal[k]; t++) {
				size_t a = chunk_al[k][t], nz = 0;
				for (size_t i = at; i < end; i++) {
					int64_t sp = (int64_t)ra[a] + (int64_t)i;
					uint8_t pred = sp >= 0 && (uint64_t)sp < ref_len ? w->ref[sp] : 0;
					nz += src[i] != pred;
				}
				if (nz < best_n) {
					best_n = nz;
					best = (int)a;
				}
			}
			sel[b] = (uint8_t)best;
			for (size_t i = at; i < end; i++) {
				uint8_t pred = 0;
				if (best != 0xff) {
					int64_t sp = (int64_t)ra[best] + (int64_t)i;
					pred = sp >= 0 && (uint64_t)sp < ref_len ? w->ref[sp] : 0;
				}
				res[i] = (uint8_t)(src[i] - pred);
			}
		}
		total = head + blocks + len;
		size_residual = zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref, ref_len, hdr, total, w->out_b, cap);
	}

	/* ZSTD_FRAMES, if the image has zstd frames, when it beats both */
	if (c->n_levels) {
		size_t za = size_zstd ? size_zstd : SIZE_MAX, zb = size_residual ? size_residual : SIZE_MAX,
		       zf = frames_job(w, rs, re, w->ft);
		if (zf && zf < za && zf < zb && zf < j->plain && frames_keep(w, j, w->ft, src, len) == 0)
			return;
		if (c->failed)
			return;
	}
	{
		size_t za = size_zstd ? size_zstd : SIZE_MAX, zb = size_residual ? size_residual : SIZE_MAX;
		const uint8_t *pick = za <= zb ? w->out_a : w->out_b;
		const uint8_t *kref = w->ref;
		size_t kref_len = ref_len;
		size_t pl = za <= zb ? za : zb;
		struct slotsync_error e2 = { 0 };
		if (pl == SIZE_MAX || pl >= j->plain)
			return;
		j->codec = za <= zb ? SLOTSYNC_DELTA_ZSTD_REF : SLOTSYNC_DELTA_RESIDUAL;
		if (j->codec == SLOTSYNC_DELTA_ZSTD_REF && use_t) {
			/* the context goes in front of the base ranges */
			memmove(j->refs + n_tr, j->refs, j->n_refs * sizeof(*j->refs));
			memcpy(j->refs, tr, n_tr * sizeof(*tr));
			j->n_refs += (uint32_t)n_tr;
			j->reads_new = 1;
			kref = w->ref - t_len;
			kref_len = t_len + ref_len;
		}
		if (TRIAL_LEVEL(c) != c->opt->level) {
			/* the winner, encoded again at the full level */
			uint8_t *dst = za <= zb ? w->out_a : w->out_b;
			int lv = use_t && c->opt->level > TARGET_LEVEL ? TARGET_LEVEL : c->opt->level;
			size_t n = za <= zb ? zstd_ref(w->cc, lv, kref, kref_len, src, len, dst, cap)
					    : zstd_ref(w->cc, c->opt->level, w->ref, ref_len, w->resid,
						       1 + 4 * (nal ? nal : 1) + blocks + len, dst, cap);
			/* dst now holds the new encoding (or nothing usable) */
			pl = n ? n : SIZE_MAX;
			if (pl >= j->plain) {
				j->codec = 0;
				return;
			}
		}
		if (slotsync_delta_decode(w->dec, j->codec, pick, pl, kref, kref_len, w->check, len, &e2) < 0 ||
		    memcmp(w->check, src, len) != 0) {
			job_fail(c, "does not decode to its chunks (an encoder fault)", (size_t)(j - c->jobs));
			j->codec = 0;
			return;
		}
		j->payload = malloc(pl);
		if (!j->payload) {
			job_fail(c, "out of memory", (size_t)(j - c->jobs));
			j->codec = 0;
			return;
		}
		memcpy(j->payload, pick, pl);
		j->payload_len = pl;
	}
}

/* First pass: a missing chunk's diagonals and its size as a plain chunk. */
static void analyse(struct worker *w, uint32_t pos)
{
	struct ctx *c = w->c;
	struct chunk_info *ci = &c->info[pos];
	uint64_t cs = slotsync_index_chunk_start(c->new_idx, pos), ce = c->new_idx->chunks[pos].end;
	size_t pl = ZSTD_compress(w->plain, ZSTD_compressBound(ce - cs), c->ni.p + cs, ce - cs, GEN_ZSTD_LEVEL_DEFAULT);

	ci->nd = (uint32_t)vote(&c->base_sp, c->ni.p, cs, ce, &w->votes, &w->votes_cap, ci->dg);
	ci->plain = (uint32_t)(ZSTD_isError(pl) ? ce - cs : pl);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct ctx *c = w->c;
	size_t i;

	if (c->phase == 0) {
		while ((i = atomic_fetch_add(&c->next, 1)) < c->n_todo)
			analyse(w, c->todo[i]);
		return NULL;
	}
	while ((i = atomic_fetch_add(&c->next, 1)) < c->n_jobs && !c->failed)
		do_job(w, c->order[i]);
	return NULL;
}

static void run_workers(struct ctx *c, struct worker *w, int threads, int phase)
{
	pthread_t tid[64];
	int started = 0;

	c->phase = phase;
	atomic_store(&c->next, 0);
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tid[t], NULL, work, &w[t]) == 0)
			started++;
		else
			break;
	if (started == 0)
		work(&w[0]);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
}

static int map_image(const char *path, struct image *im, struct slotsync_error *err)
{
	struct stat st;

	im->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s", path);
	if (fstat(im->fd, &st) < 0 || io_fd_size(im->fd, &im->size) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot stat %s", path);
	im->p = im->size ? mmap(NULL, im->size, PROT_READ, MAP_PRIVATE, im->fd, 0) : NULL;
	if (im->size && im->p == MAP_FAILED) {
		im->p = NULL;
		return slotsync_error_set_errno(err, -errno, "cannot map %s", path);
	}
	return 0;
}

static void unmap_image(struct image *im)
{
	if (im->p)
		munmap((void *)im->p, im->size);
	if (im->fd >= 0)
		close(im->fd);
}

/* id set: open addressing on the first 8 bytes of each id */
struct idset {
	const uint8_t **slot;
	size_t mask;
};

static int idset_init(struct idset *s, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap *= 2;
	s->slot = calloc(cap, sizeof(*s->slot));
	s->mask = cap - 1;
	return s->slot ? 0 : -ENOMEM;
}

/* Adds id; returns 1 if it was there already. */
static int idset_add(struct idset *s, const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, 8);
	for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
		if (!s->slot[i]) {
			s->slot[i] = id;
			return 0;
		}
		if (!memcmp(s->slot[i], id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	}
}

static int idset_has(const struct idset *s, const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, 8);
	for (size_t i = h & s->mask; s->slot[i]; i = (i + 1) & s->mask)
		if (!memcmp(s->slot[i], id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	return 0;
}

static int write_objects(struct ctx *c, struct slotsync_delta_index *d, struct slotsync_error *err)
{
	struct store_writer *sw = NULL;
	struct store_batch *b = NULL;
	uint32_t no = 0, nr = 0;
	int r = 0;

	if (c->opt->store) {
		r = store_writer_open(c->opt->store, &sw, err);
		if (r < 0)
			return r;
		b = store_batch_new(sw);
		if (!b) {
			store_writer_free(sw);
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		}
	}
	for (size_t i = 0; i < c->n_jobs && r == 0; i++) {
		struct job *j = &c->jobs[i];
		struct slotsync_delta_object *o;
		if (!j->codec)
			continue;
		o = &d->objects[no++];
		if (slotsync_digest(SLOTSYNC_DIGEST_SHA256, j->payload, j->payload_len, o->id) < 0) {
			r = slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
			break;
		}
		o->size = (uint32_t)j->payload_len;
		o->codec = j->codec;
		o->first = j->first;
		o->count = j->count;
		o->ref_first = nr;
		o->ref_count = j->n_refs;
		memcpy(&d->refs[nr], j->refs, j->n_refs * sizeof(*j->refs));
		nr += j->n_refs;
		if (b)
			r = store_batch_put_ext(b, o->id, ".sdob", j->payload, j->payload_len, err);
	}
	d->n_objects = no;
	d->n_refs = nr;
	if (b) {
		int r2 = store_batch_free(b, err);
		if (r == 0)
			r = r2;
		if (r == 0)
			r = store_writer_sync(sw, err);
		store_writer_free(sw);
	}
	return r;
}

int gen_delta_pair(const struct gen_delta_options *opt, const char *base_index, const char *base_image,
		   struct gen_delta_stats *st, struct slotsync_error *err)
{
	struct ctx c = { .opt = opt, .bi = { .fd = -1 }, .ni = { .fd = -1 } };
	struct slotsync_index *base = NULL, *ni = NULL;
	struct slotsync_delta_index d = { 0 };
	struct idset have = { 0 }, seen = { 0 };
	uint8_t *missing = NULL, *ser = NULL;
	size_t ser_len = 0;
	int threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), r;
	struct worker w[64];
	double t0 = clock_now_s();

	memset(st, 0, sizeof(*st));
	memset(w, 0, sizeof(w));
	pthread_mutex_init(&c.lock, NULL);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	r = slotsync_index_read_file(base_index, &base, err);
	if (r == 0)
		r = slotsync_index_read_file(opt->new_index, &ni, err);
	if (r == 0)
		r = slotsync_index_digest(base, d.base_digest, err);
	if (r == 0)
		r = slotsync_index_digest(ni, d.new_digest, err);
	if (r == 0)
		r = map_image(base_image, &c.bi, err);
	if (r == 0)
		r = map_image(opt->new_image, &c.ni, err);
	if (r < 0)
		goto out;
	if (c.bi.size != slotsync_index_image_size(base)) {
		r = slotsync_error_set(err, -EINVAL, "%s is %" PRIu64 " bytes, but %s describes %" PRIu64, base_image,
				       c.bi.size, base_index, slotsync_index_image_size(base));
		goto out;
	}
	if (c.ni.size != slotsync_index_image_size(ni)) {
		r = slotsync_error_set(err, -EINVAL, "%s is %" PRIu64 " bytes, but %s describes %" PRIu64, opt->new_image,
				       c.ni.size, opt->new_index, slotsync_index_image_size(ni));
		goto out;
	}
	c.base = base;
	c.new_idx = ni;
	d.base_size = c.bi.size;
	d.new_size = c.ni.size;
	/* which new chunks the base lacks (first occurrence of each id) */
	missing = calloc(ni->n_chunks + 1, 1);
	if (!missing || idset_init(&have, base->n_chunks) < 0 || idset_init(&seen, ni->n_chunks) < 0) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < base->n_chunks; i++)
		idset_add(&have, base->chunks[i].id);
	for (size_t i = 0; i < ni->n_chunks; i++)
		if (!idset_has(&have, ni->chunks[i].id) && !idset_add(&seen, ni->chunks[i].id)) {
			missing[i] = 1;
			st->missing_chunks++;
			st->missing_bytes += slotsync_index_chunk_size(ni, i);
		}
	c.missing = missing;
	c.base_sp = (struct space){ .p = c.bi.p, .size = c.bi.size };
	r = build_anchors(&c.base_sp, err);
	if (r == 0)
		r = frames_prepare(&c, err);
	if (r < 0)
		goto out;
	for (int t = 0; t < threads; t++) {
		size_t big = SLOTSYNC_DELTA_OUT_MAX + 1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + SLOTSYNC_DELTA_OUT_MAX / SLOTSYNC_DELTA_BLOCK + 1024;
		w[t].c = &c;
		w[t].cc = ZSTD_createCCtx();
		w[t].dec = slotsync_delta_decoder_new();
		w[t].ref_buf = malloc(TARGET_CONTEXT + SLOTSYNC_DELTA_REF_MAX);
		w[t].ref = w[t].ref_buf ? w[t].ref_buf + TARGET_CONTEXT : NULL;
		w[t].resid = malloc(big);
		w[t].out_a = malloc(ZSTD_compressBound(big));
		w[t].out_b = malloc(ZSTD_compressBound(big));
		w[t].check = malloc(SLOTSYNC_DELTA_OUT_MAX);
		w[t].plain = malloc(ZSTD_compressBound(base->chunk_size_max > ni->chunk_size_max ? base->chunk_size_max
												     : ni->chunk_size_max));
		if (c.n_levels) {
			w[t].fcc = ZSTD_createCCtx();
			w[t].fdc = ZSTD_createDCtx();
			w[t].fbuf = malloc(FBUF_CAP);
			w[t].xraw = malloc(SLOTSYNC_DELTA_REF_MAX);
			w[t].xref = malloc(SLOTSYNC_DELTA_XREF_MAX);
			w[t].xout = malloc(SLOTSYNC_DELTA_XOUT_MAX);
			w[t].out_c = malloc(ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX));
			w[t].ft = malloc(sizeof(*w[t].ft));
			if (!w[t].fcc || !w[t].fdc || !w[t].fbuf || !w[t].xraw || !w[t].xref || !w[t].xout || !w[t].out_c ||
			    !w[t].ft) {
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
				threads = t + 1;
				goto workers_out;
			}
		}
		if (!w[t].cc || !w[t].dec || !w[t].ref || !w[t].resid || !w[t].out_a || !w[t].out_b || !w[t].check ||
		    !w[t].plain) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			threads = t + 1;
			goto workers_out;
		}
	}
	/* pass 1: what each missing chunk resembles */
	c.info = calloc(ni->n_chunks + 1, sizeof(*c.info));
	c.todo = calloc(st->missing_chunks + 1, sizeof(*c.todo));
	c.jobs = calloc(st->missing_chunks + 1, sizeof(*c.jobs));
	if (!c.info || !c.todo || !c.jobs) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	for (size_t i = 0; i < ni->n_chunks; i++)
		if (missing[i])
			c.todo[c.n_todo++] = (uint32_t)i;
	run_workers(&c, w, threads, 0);
	/* runs of missing chunks: chunks like something in the base in short runs
	 * (their references are what matters), novel chunks in long ones (the run
	 * is its own context); in an image of zstd frames, where compressed bytes
	 * resemble nothing, runs of up to FRAMES_RUN_MAX whatever they resemble */
	for (size_t i = 0; i < ni->n_chunks;) {
		size_t k = i;
		uint64_t bytes = 0;
		int novel;
		if (!missing[i]) {
			i++;
			continue;
		}
		novel = c.info[i].nd == 0 || c.info[i].dg[0].votes < NOVEL_VOTES;
		while (k < ni->n_chunks && missing[k] && k - i < RUN_CHUNKS_MAX &&
		       (c.n_levels || (c.info[k].nd == 0 || c.info[k].dg[0].votes < NOVEL_VOTES) == novel) &&
		       (k == i || bytes + slotsync_index_chunk_size(ni, k) <=
					  (c.n_levels ? (uint64_t)FRAMES_RUN_MAX
					   : novel    ? (uint64_t)SLOTSYNC_DELTA_OUT_MAX
						      : (uint64_t)opt->run_max)))
			bytes += slotsync_index_chunk_size(ni, k++);
		c.jobs[c.n_jobs].first = (uint32_t)i;
		c.jobs[c.n_jobs].count = (uint32_t)(k - i);
		c.jobs[c.n_jobs].bytes = bytes;
		c.n_jobs++;
		i = k;
	}
	/* pass 2: the objects, largest first */
	c.order = malloc((c.n_jobs + 1) * sizeof(*c.order));
	if (!c.order) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	for (size_t i = 0; i < c.n_jobs; i++)
		c.order[i] = &c.jobs[i];
	qsort(c.order, c.n_jobs, sizeof(*c.order), cmp_job_bytes);
	run_workers(&c, w, threads, 1);
	if (c.failed) {
		*err = c.err;
		r = -EIO;
		goto workers_out;
	}
	for (size_t i = 0; i < c.n_jobs; i++) {
		struct job *j = &c.jobs[i];
		if (j->codec) {
			st->objects++;
			st->object_bytes += j->payload_len;
			st->replaced_plain += j->plain;
			for (uint32_t k = 0; k < j->count; k++)
				st->covered_bytes += slotsync_index_chunk_size(ni, j->first + k);
			st->codec_count[j->codec]++;
			st->objects_reading_new += (uint64_t)j->reads_new;
			d.n_refs += j->n_refs;
		} else
			st->remaining_plain += j->plain;
	}
	d.objects = calloc(st->objects + 1, sizeof(*d.objects));
	d.refs = calloc(d.n_refs + 1, sizeof(*d.refs));
	if (!d.objects || !d.refs) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	r = write_objects(&c, &d, err);
	if (r == 0)
		r = slotsync_delta_index_pack(&d, &ser, &ser_len, err);
	if (r == 0) {
		st->index_bytes = ser_len;
		memcpy(st->base_digest, d.base_digest, SLOTSYNC_DIGEST_BYTES);
		slotsync_digest(SLOTSYNC_DIGEST_SHA256, ser, ser_len, st->index_sha256);
		if (opt->store) {
			char rel[200], path[4096];
			slotsync_delta_index_path(d.base_digest, d.new_digest, rel, sizeof(rel));
			snprintf(path, sizeof(path), "%s/%s", opt->store, rel);
			*strrchr(path, '/') = '\0';
			r = io_mkdir_p(path, err);
			snprintf(path, sizeof(path), "%s/%s", opt->store, rel);
			if (r == 0)
				r = io_write_file_atomic(path, ser, ser_len, err);
			if (r == 0)
				snprintf(st->index_path, sizeof(st->index_path), "%s", rel);
		}
	}
workers_out:
	for (int t = 0; t < threads; t++) {
		ZSTD_freeCCtx(w[t].cc);
		slotsync_delta_decoder_free(w[t].dec);
		free(w[t].ref_buf);
		free(w[t].resid);
		free(w[t].out_a);
		free(w[t].out_b);
		free(w[t].check);
		free(w[t].plain);
		free(w[t].votes);
		ZSTD_freeCCtx(w[t].fcc);
		ZSTD_freeDCtx(w[t].fdc);
		free(w[t].fbuf);
		free(w[t].xraw);
		free(w[t].xref);
		free(w[t].xout);
		free(w[t].out_c);
		free(w[t].ft);
	}
out:
	for (size_t i = 0; i < c.n_jobs; i++)
		free(c.jobs[i].payload);
	free(c.jobs);
	free(c.order);
	free(c.info);
	free(c.todo);
	free(c.base_sp.anchors);
	free(c.x_sp.anchors);
	free(c.xb);
	free(c.xseg);
	free(c.nf);
	free(missing);
	free(have.slot);
	free(seen.slot);
	free(ser);
	free(d.objects);
	free(d.refs);
	unmap_image(&c.bi);
	unmap_image(&c.ni);
	slotsync_index_free(base);
	slotsync_index_free(ni);
	pthread_mutex_destroy(&c.lock);
	st->seconds = clock_now_s() - t0;
	return r;
}
