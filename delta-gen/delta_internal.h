/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta, inside: what its parts share.  delta_gen.c drives a run
 * (a context, workers, jobs); resemble.c finds what new bytes resemble in the
 * base; encode.c encodes one object with the plain codecs, frames.c with
 * ZSTD_FRAMES.  Not installed, not used outside delta-gen/. */
#ifndef SLOTSYNC_GEN_DELTA_INTERNAL_H
#define SLOTSYNC_GEN_DELTA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "gen.h"
#include "squashfs.h"
#include "slotsync/delta.h"
#include "slotsync/error.h"
#include "slotsync/index.h"

#define DIAG_PER_CHUNK 8
#define MARGIN 2048                  /* reference bytes around an alignment */
/* Codecs are tried at a quicker level; the winner is encoded at the full one.
 * Level 6 picks as well as 12 on the realistic pairs (raw feature pair +0.05 %,
 * the others the same or smaller) in three quarters of the time; 5 and below
 * pick worse (+0.9 %). */
#define TRIAL_LEVEL(c) ((c)->opt->level > 6 ? 6 : (c)->opt->level)

#define RUN_CHUNKS_MAX 128
/* Context across objects: the missing chunks just before a run, read by the
 * device from the slot it writes (new files resemble each other). */
#define TARGET_CONTEXT (512u << 10)

#define FBUF_CAP ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX)
/* Runs in an image of zstd frames: the frames a run cuts at its ends are
 * recorded whole, a cost that long runs spread (feature zstd pair: runs split
 * by resemblance 3,237,515 bytes, runs of 512 KiB 3,111,657, of 1 MiB the
 * same). */
#define FRAMES_RUN_MAX (512u << 10)
/* BLOCKS: blocks listed in one object's map */
#define BLOCKS_MAP_MAX SLOTSYNC_DELTA_MAP_MAX
/* a map with its inner streams */
#define BLOCKS_MAP_BYTES (4 + 12 * (size_t)BLOCKS_MAP_MAX + 4 + 12 * (size_t)SLOTSYNC_DELTA_INNER_MAX)

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
	int resid;                       /* BLOCKS: its records as their residual */
	uint8_t flags;                   /* SLOTSYNC_DELTA_OBJ_XZ */
};

/* What the first pass learns of a missing chunk. */
struct chunk_info {
	struct diag {
		int64_t d;
		uint32_t votes;
	} dg[DIAG_PER_CHUNK];
	uint32_t nd;
	uint32_t plain;                  /* bytes as a plain (compressed) chunk */
};

/* Where resemblance is looked for: bytes and their anchors.  An anchor is
 * its hash (24 bits) << ANCHOR_POS_BITS | its offset. */
#define ANCHOR_POS_BITS 40
#define ANCHOR_POS_MASK ((UINT64_C(1) << ANCHOR_POS_BITS) - 1)
struct space {
	const uint8_t *p;
	uint64_t size;
	uint64_t *anchors;               /* sorted by hash, then offset */
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
	int threads;                     /* workers (--threads, or one per core) */
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
	/* BLOCKS: both images' blocks and the profile that compresses the new
	 * one's back (blocks_on 0: the codec is not tried); the expanded base is
	 * x_sp/xb/xseg, a segment's `frame` then meaning a block */
	struct sqfs_info nsq, bsq;
	struct slotsync_delta_profile prof;
	int blocks_on;
	int members;                     /* BLOCKS on the gzip files of an uncompressed image (DEFLATE) */
	/* BLOCKS of gzip, xz, lz4 or zstd images: the gzip files inside their blocks
	 * (the index's inner profile; inner_on 0: not tried) */
	struct slotsync_delta_profile inner;
	int inner_on;
	/* the gzip files of the expanded base (offset in xb, csize, usize), their
	 * content one after the other in g_sp (gat: where each starts), with
	 * anchors: which old file a new one's content resembles */
	struct sqfs_info gsq;
	uint64_t *gat;
	uint8_t *gb;
	struct space g_sp;
	int bcj;                         /* the BCJ filter of xz objects (ENCODE_BCJ_*), by the (expanded) base */
	struct job *jobs;
	size_t n_jobs;
	struct job **order;              /* the jobs, largest first (threads end together) */
	atomic_size_t next;
	pthread_mutex_t lock;
	int failed;
	struct slotsync_error err;
};

struct interval {
	uint64_t s, e;      /* base bytes */
	uint64_t r;         /* where it starts in the reference */
};

struct frames_try {
	struct slotsync_delta_ref refs[SLOTSYNC_DELTA_REFS_MAX];
	uint32_t n_refs;
	size_t raw_len, el;   /* reference bytes (in w->xraw), record bytes (in w->xout) */
	size_t xl;            /* the reference expanded (in w->xref) */
	int reads_new;
	uint32_t n_map;       /* BLOCKS: entries in w->map */
	size_t xoff;          /* BLOCKS: where the expanded reference starts in w->xref */
	size_t trial;         /* BLOCKS: the object's size at the trial level */
	uint32_t n_inner;     /* BLOCKS: deflate streams of the base inflated (w->imap) */
	uint32_t nested;      /* BLOCKS: nested block records */
	size_t inflated;      /* BLOCKS: content of the gzip files they deflate again */
	uint32_t n_mem;       /* BLOCKS: the first of those contents (in w->xout) */
	size_t mem_at[32], mem_len[32];
	uint32_t n_gk;        /* BLOCKS: the old files they resemble (into ctx.gsq) */
	size_t gk[32];
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
	/* BLOCKS: the block coder, a block compressed, the map (two: with and
	 * without the context) */
	struct slotsync_delta_block_coder *bc;
	uint8_t *bbuf, *map, *map2;
	uint8_t *xres;                   /* BLOCKS: the records' residual (made on first use) */
	uint8_t *xzb;                    /* records as an xz stream (made on first use) */
	const uint8_t *xz_src;           /* of what (NULL: nothing) */
	size_t xz_len, xz_n;             /* how many bytes of it; its size (0: none smaller) */
	uint32_t *bounds;                /* DEFLATE: a stream's block lengths */
	uint8_t *mcontent;               /* DEFLATE: a stream's content */
	/* BLOCKS with gzip files inside (ctx.inner_on): the inner streams
	 * (absolute offset in xref, csize, usize), a block's content, a stream's
	 * content and it compressed again */
	uint8_t *imap, *ncontent, *icontent, *ibuf;
	int64_t *votes;
	size_t votes_cap;
	uint8_t *ref_buf;                /* the context across objects, then ref */
	uint8_t *ref, *resid, *out_a, *out_b, *check, *plain;
};

/* resemble.c */

/* Fills sp->anchors (sorted) from sp->p and sp->size. */
int resemble_build_anchors(struct space *sp, struct slotsync_error *err);
/* The most-voted diagonals (offset in sp - offset in src) of src[s, e): up to
 * DIAG_PER_CHUNK into out; *buf (of *cap entries) is the caller's scratch. */
size_t resemble_vote(const struct space *sp, const uint8_t *src, uint64_t s, uint64_t e, int64_t **buf,
		     size_t *cap, struct diag *out);
/* Sorts iv[0..n) and merges overlapping intervals; returns how many are left. */
size_t resemble_merge_intervals(struct interval *iv, size_t n);
/* Base chunk holding offset off (binary search). */
uint32_t resemble_base_chunk_at(const struct slotsync_index *idx, uint64_t off);

/* encode.c */

/* src compressed at level with ref as zstd's raw-content prefix into dst (cap
 * bytes); returns its size, or 0 if it does not fit or zstd fails. */
size_t encode_zstd_ref(ZSTD_CCtx *cc, int level, const uint8_t *ref, size_t ref_len, const void *src, size_t len,
		       uint8_t *dst, size_t cap);
/* The BCJ filter of the machine code most ELF headers in p[0..n) name. */
enum { ENCODE_BCJ_NONE, ENCODE_BCJ_X86, ENCODE_BCJ_ARMTHUMB, ENCODE_BCJ_ARM64, ENCODE_BCJ_POWERPC, ENCODE_BCJ_N };
int encode_bcj_vote(const uint8_t *p, size_t n);
/* src as one .xz stream (that BCJ filter, LZMA2, no check) into dst (cap
 * bytes), the records of an object without its reference; returns its size,
 * or 0 (no liblzma, or it does not fit). */
size_t encode_xz_records(int bcj, const uint8_t *src, size_t len, uint8_t *dst, size_t cap);
/* The trial's size zf of an object, or `other` bytes and src[0..len) as xz
 * if that is smaller (the xz stream is kept for encode_try_xz of the same
 * bytes). */
size_t encode_trial_xz(struct worker *w, const uint8_t *src, size_t len, size_t zf, size_t other);
/* The size of src[0..len) as an xz stream, in w->xzb, if it is new content
 * and that is less than `than` bytes (its zstd coding); else 0. */
size_t encode_try_xz(struct worker *w, const uint8_t *src, size_t len, size_t than);
/* The size of src[0..len) as xz if the trial made it already, else 0. */
size_t encode_xz_known(const struct worker *w, const uint8_t *src, size_t len);
/* Whether new content whose xz (without a reference) is xz bytes, against
 * trial bytes by the trial level, takes the xz stream without the full
 * level's encoding: xz a tenth smaller (on the realistic feature pair, no
 * such object was ever won back by the full level). */
int encode_xz_settles(size_t xz, size_t trial);
/* Records the run's first failure (job is the index of the object). */
void encode_job_fail(struct ctx *c, const char *what, size_t job);
/* Encodes job j with every codec and keeps the smallest that beats its plain
 * chunks (j->codec 0: none did). */
void encode_job(struct worker *w, struct job *j);

/* frames.c */

/* BLOCKS (blocks_prep.c): the variant of p that compresses content back to
 * want, or -1 (DEFLATE: with a deflate block ended after each of
 * bounds[0..nb)). */
int blocks_find_variant(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
			const uint32_t *bounds, size_t nb, const uint8_t *content, size_t n, const uint8_t *want,
			size_t csize, uint8_t *buf, size_t cap);

/* Gzip files inside the blocks (inner_gen.c). */
/* Where the base's part of the expanded reference comes from: w->xref[x, x +
 * n) is c->xb[b, b + n). */
struct xpiece {
	size_t x, n;
	uint64_t b;
};
#define XPIECES_MAX 2048
/* The inner profile and the base's gzip files (c->inner_on 1), where zlib is
 * built in. */
void inner_prepare(struct ctx *c);
/* A block record's content (n bytes at h + 18) made a nested record of its
 * gzip files; returns the record's length, or 0 (left as it was). */
size_t inner_nested_record(struct worker *w, struct frames_try *t, uint8_t *h, size_t n, size_t room);
/* The base ranges holding the old gzip files t's new ones resemble, into rv
 * (at most max), out of the budgets; returns how many. */
size_t inner_ranges(struct worker *w, struct frames_try *t, struct interval *rv, size_t max, uint64_t *raw_budget,
		    uint64_t *x_budget);
/* The base's gzip files in the reference's pieces, inflated after it from xl;
 * returns the new end of the expanded reference. */
size_t inner_streams(struct worker *w, struct frames_try *t, const struct xpiece *pc, size_t npc, size_t xl);
/* Gzip files in bytes [a, b) of the new image a block stores as they are, as
 * deflate records after bytes records; returns where the bytes recorded end. */
uint64_t inner_stored(struct worker *w, struct frames_try *t, size_t *el, size_t *last_raw, uint64_t a, uint64_t b);

/* The zstd frames of the new image (those that decode), the levels the first
 * of them compress again to themselves with, and, if there are such levels,
 * the base expanded (segment by segment) with its anchors. */
int frames_prepare(struct ctx *c, struct slotsync_error *err);
/* The ZSTD_FRAMES encoding of new image [rs, re) at the trial level, in
 * w->out_c; returns its size, or 0 if the codec does not apply. */
size_t frames_job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t);
/* Appends a bytes record of new image [s, e) to the records in w->xout (one
 * with the record before it if that is one too); -1 if over XOUT_MAX. */
int frames_put_raw(struct worker *w, size_t *el, size_t *last_raw, uint64_t s, uint64_t e);
/* A stretch of the expanded base that records resemble, with its votes. */
struct cand {
	uint64_t s, e;        /* expanded base bytes */
	uint32_t votes;
};
/* qsort order of candidates: most votes first, then by offset. */
int frames_cmp_cand(const void *a, const void *b);
/* Segment of the expanded base holding expanded offset x. */
size_t frames_xseg_at(const struct ctx *c, uint64_t x);
/* The base ranges the records w->xout[0, el) resemble, within the budgets,
 * merged into rv[0, rv_max - 1); returns how many. */
size_t frames_pick_ranges(struct worker *w, size_t el, uint64_t raw_budget, uint64_t x_budget, struct interval *rv,
			  size_t nr0, size_t rv_max);
/* The ZSTD_FRAMES object of t, encoded at the full level and checked, as job
 * j's result.  Returns 0, or -1 if it does not beat the plain chunks. */
int frames_keep(struct worker *w, struct job *j, const struct frames_try *t, const uint8_t *src, size_t len);

/* blocks_prep.c */

/* If both images are squashfs of one compressor the BLOCKS codec handles
 * (gzip, xz, lz4; zstd unless the index is to be SSDELTA2) and the profile
 * found compresses the new image's blocks back to themselves: c->prof
 * (sealed), the base expanded block by block with its anchors, c->blocks_on;
 * and the inner profile for gzip files inside the blocks. */
int blocks_prepare(struct ctx *c, struct slotsync_error *err);
/* Else, in images whose blocks are not compressed: their gzip files as
 * blocks (the DEFLATE profile), if it makes some of them again. */
int blocks_prepare_members(struct ctx *c, struct slotsync_error *err);

/* blocks_gen.c */

/* The BLOCKS encoding of new image [rs, re) at the trial level, in w->out_c;
 * returns its size, or 0 if the codec does not apply. */
size_t blocks_job(struct worker *w, uint64_t rs, uint64_t re, struct frames_try *t);
/* The first block of the new image (c->nsq) that ends after off. */
size_t blocks_new_at(const struct ctx *c, uint64_t off);
/* The BLOCKS object of t at the full level, decoded again and compared, as
 * job j's result.  Returns 0, or -1 if it does not beat the plain chunks. */
int blocks_keep(struct worker *w, struct job *j, struct frames_try *t, const uint8_t *src, size_t len);

#endif
