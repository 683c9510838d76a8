/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the encoding of one object, a run of missing chunks.  It
 * is encoded with every codec, the reference as zstd's raw-content prefix:
 *   ZSTD_REF   the output itself;
 *   RESIDUAL   per 64-byte block, the best of the chunk's diagonals as a
 *              prediction (or none), and output - prediction (bsdiff's insight:
 *              code that moved changes by small differences);
 *   ZSTD_FRAMES (frames.c) in an image of zstd frames (not squashfs, or an
 *   SSDELTA2 index);
 *   BLOCKS (blocks_gen.c) in a squashfs image of gzip, xz, lz4 or zstd blocks, or
 *   on the gzip files inside an image whose blocks are not compressed.
 * A ZSTD_REF object may also have, in front of its base ranges, the missing
 * chunks just before it as ranges of the new image (the device reads them back
 * from the slot it writes): new packages resemble each other.  They stay when
 * the trial says they pay for their index entries.
 * Codecs are tried at a quicker zstd level; the smallest is encoded again at
 * the full level and kept only if it beats the plain chunks it replaces.  New
 * content, which the reference does not help, is also coded as one .xz stream
 * without it (LZMA2 and the BCJ filter of the base's machine code), kept where
 * that is smaller.  Every object is decoded again and compared before it is
 * kept. */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "delta_internal.h"
#include "slotsync/features.h"

#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif

/* Level for objects with the context across objects (TARGET_CONTEXT): at 22,
 * with the larger prefix to index, it took as long and saved nothing on the
 * realistic pairs. */
#define TARGET_LEVEL 19

size_t encode_zstd_ref(ZSTD_CCtx *cc, int level, const uint8_t *ref, size_t ref_len, const void *src, size_t len,
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
	if (ref_len) {
		/* A level's tables are sized for the input, not for a reference
		 * several times as long: at the trial level a 3.3 MB reference of
		 * which the output uses the start found almost nothing (405 KB
		 * against 69 KB with tables as large as the window), and the trial
		 * then picked the wrong codec.  Tables up to 4M entries. */
		ZSTD_compressionParameters p = ZSTD_getCParams(level, len, ref_len);
		unsigned want = wlog < 22 ? wlog : 22;
		if (p.hashLog < want)
			ZSTD_CCtx_setParameter(cc, ZSTD_c_hashLog, (int)want);
		if (p.chainLog < want && p.strategy != ZSTD_fast)
			ZSTD_CCtx_setParameter(cc, ZSTD_c_chainLog, (int)want);
		ZSTD_CCtx_refPrefix(cc, ref, ref_len);
	}
	r = ZSTD_compress2(cc, dst, cap, src, len);
	return ZSTD_isError(r) ? 0 : r;
}

/* The xz preset of records coded without the reference: at 6 the new files of
 * the realistic feature pair in pieces as large as objects came to 2,615,232
 * bytes (x86 BCJ) against 2,773,360 at 1 and 3,277,530 as zstd at level 12. */
#define XZ_RECORDS_PRESET 6

int encode_bcj_vote(const uint8_t *p, size_t n)
{
	/* ELF e_machine -> BCJ filter: 386, x86-64; ARM (Thumb-2, as Debian's
	 * armhf); AArch64; PowerPC (big-endian only) */
	static const struct {
		uint16_t machine;
		int bcj;
	} map[] = { { 3, ENCODE_BCJ_X86 },  { 62, ENCODE_BCJ_X86 }, { 40, ENCODE_BCJ_ARMTHUMB },
		    { 183, ENCODE_BCJ_ARM64 }, { 20, ENCODE_BCJ_POWERPC } };
	size_t votes[ENCODE_BCJ_N] = { 0 }, at = 0;
	int best = ENCODE_BCJ_NONE;

	while (at + 20 <= n) {
		const uint8_t *e = memchr(p + at, 0x7f, n - 20 - at + 1);
		uint16_t m;
		if (!e)
			break;
		at = (size_t)(e - p) + 1;
		if (memcmp(e + 1, "ELF", 3) != 0 || (e[4] != 1 && e[4] != 2) || (e[5] != 1 && e[5] != 2) || e[6] != 1)
			continue;
		m = e[5] == 1 ? (uint16_t)(e[18] | e[19] << 8) : (uint16_t)(e[19] | e[18] << 8);
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (map[i].machine == m && (m != 20 || e[5] == 2))
				votes[map[i].bcj]++;
	}
	for (int b = 1; b < ENCODE_BCJ_N; b++)
		if (votes[b] > votes[best])
			best = b;
	return best;
}

size_t encode_xz_records(int bcj, const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
#if SLOTSYNC_HAVE_XZ
	static const lzma_vli ids[ENCODE_BCJ_N] = {
		[ENCODE_BCJ_X86] = LZMA_FILTER_X86,
		[ENCODE_BCJ_ARMTHUMB] = LZMA_FILTER_ARMTHUMB,
#ifdef LZMA_FILTER_ARM64
		[ENCODE_BCJ_ARM64] = LZMA_FILTER_ARM64,
#endif
		[ENCODE_BCJ_POWERPC] = LZMA_FILTER_POWERPC,
	};
	lzma_options_lzma opt;
	lzma_filter f[3];
	size_t pos = 0, k = 0;

	if (!len || lzma_lzma_preset(&opt, XZ_RECORDS_PRESET))
		return 0;
	/* a dictionary as large as the records, within what a device allows */
	opt.dict_size = LZMA_DICT_SIZE_MIN;
	while (opt.dict_size < len && opt.dict_size < SLOTSYNC_DELTA_XZ_DICT_MAX)
		opt.dict_size *= 2;
	if (bcj > ENCODE_BCJ_NONE && bcj < ENCODE_BCJ_N && ids[bcj])
		f[k++] = (lzma_filter){ .id = ids[bcj], .options = NULL };
	f[k++] = (lzma_filter){ .id = LZMA_FILTER_LZMA2, .options = &opt };
	f[k] = (lzma_filter){ .id = LZMA_VLI_UNKNOWN, .options = NULL };
	if (lzma_stream_buffer_encode(f, LZMA_CHECK_NONE, NULL, src, len, dst, &pos, cap) != LZMA_OK)
		return 0;
	return pos;
#else
	(void)bcj;
	(void)src;
	(void)len;
	(void)dst;
	(void)cap;
	return 0;
#endif
}

/* w->xzb: src[0..len) as xz, made now or by the trial of the same job
 * (w->xz_src, w->xz_len: of what; NULL: nothing) */
static size_t xz_of(struct worker *w, const uint8_t *src, size_t len)
{
	if (w->xz_src != src || w->xz_len != len) {
		if (!w->xzb && !(w->xzb = malloc(SLOTSYNC_DELTA_XOUT_MAX)))
			return 0;
		w->xz_n = encode_xz_records(w->c->bcj, src, len, w->xzb, SLOTSYNC_DELTA_XOUT_MAX);
		w->xz_src = src;
		w->xz_len = len;
	}
	return w->xz_n;
}

/* Content that the reference makes 8 times smaller is not new: xz, without
 * the reference, is not tried on it. */
static int xz_worth(size_t len, size_t zstd_len)
{
	return SLOTSYNC_HAVE_XZ && len && zstd_len * 8 >= len;
}

size_t encode_trial_xz(struct worker *w, const uint8_t *src, size_t len, size_t zf, size_t other)
{
	size_t n;

	w->xz_src = NULL;
	if (!zf || !xz_worth(len, zf))
		return zf;
	n = xz_of(w, src, len);
	return n && n + other < zf ? n + other : zf;
}

size_t encode_xz_known(const struct worker *w, const uint8_t *src, size_t len)
{
	return w->xz_src == src && w->xz_len == len ? w->xz_n : 0;
}

int encode_xz_settles(size_t xz, size_t trial)
{
	return xz && xz < trial - trial / 10;
}

size_t encode_try_xz(struct worker *w, const uint8_t *src, size_t len, size_t than)
{
	size_t n;

	if (!xz_worth(len, than))
		return 0;
	n = xz_of(w, src, len);
	w->xz_src = NULL;
	return n < than ? n : 0;
}

void encode_job_fail(struct ctx *c, const char *what, size_t job)
{
	pthread_mutex_lock(&c->lock);
	if (!c->failed) {
		c->failed = 1;
		slotsync_error_set(&c->err, -EIO, "delta object %zu: %s", job, what);
	}
	pthread_mutex_unlock(&c->lock);
}

void encode_job(struct worker *w, struct job *j)
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
	j->flags = 0;
	w->xz_src = NULL;
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
	niv = resemble_merge_intervals(iv, niv);
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
		bc = resemble_base_chunk_at(c->base, s);
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
	size_zstd = encode_zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref, ref_len, src, len, w->out_a, cap);
	if (n_tr) {
		size_t z = encode_zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref - t_len, t_len + ref_len, src, len, w->out_b, cap);
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
		size_residual = encode_zstd_ref(w->cc, TRIAL_LEVEL(c), w->ref, ref_len, hdr, total, w->out_b, cap);
	}

	/* ZSTD_FRAMES, if the image has zstd frames, when it beats both */
	if (c->n_levels) {
		size_t za = size_zstd ? size_zstd : SIZE_MAX, zb = size_residual ? size_residual : SIZE_MAX,
		       zf = frames_job(w, rs, re, w->ft);
		zf = encode_trial_xz(w, w->xout, w->ft->el, zf, 0);
		if (zf && zf < za && zf < zb && zf < j->plain && frames_keep(w, j, w->ft, src, len) == 0)
			return;
		if (c->failed)
			return;
	}
	/* BLOCKS, in a squashfs image of gzip, xz, lz4 or zstd blocks */
	if (c->blocks_on) {
		size_t za = size_zstd ? size_zstd : SIZE_MAX, zb = size_residual ? size_residual : SIZE_MAX,
		       zf = blocks_job(w, rs, re, w->ft);
		/* an empty map and the records as xz, if smaller */
		zf = encode_trial_xz(w, w->xout, w->ft->el, zf, 16);
		if (zf && zf < za && zf < zb && zf < j->plain && blocks_keep(w, j, w->ft, src, len) == 0)
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
		int xz_first = 0;
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
		if (j->codec == SLOTSYNC_DELTA_ZSTD_REF && TRIAL_LEVEL(c) != c->opt->level && xz_worth(len, pl)) {
			/* new content whose xz (without the reference) is a tenth
			 * smaller than the trial level's encoding: the full level,
			 * whose match finder goes through the whole reference (up
			 * to 4 MiB) for each object, does not catch up (on the
			 * realistic feature pair: 25 such objects, none) and is not
			 * spent on it; xz is taken below */
			xz_first = encode_xz_settles(xz_of(w, src, len), pl);
		}
		if (TRIAL_LEVEL(c) != c->opt->level && !xz_first) {
			/* the winner, encoded again at the full level */
			uint8_t *dst = za <= zb ? w->out_a : w->out_b;
			int lv = use_t && c->opt->level > TARGET_LEVEL ? TARGET_LEVEL : c->opt->level;
			size_t n = za <= zb ? encode_zstd_ref(w->cc, lv, kref, kref_len, src, len, dst, cap)
					    : encode_zstd_ref(w->cc, c->opt->level, w->ref, ref_len, w->resid,
						       1 + 4 * (nal ? nal : 1) + blocks + len, dst, cap);
			/* dst now holds the new encoding (or nothing usable) */
			pl = n ? n : SIZE_MAX;
			if (pl >= j->plain) {
				j->codec = 0;
				return;
			}
		}
		if (j->codec == SLOTSYNC_DELTA_ZSTD_REF) {
			/* new content: the chunks as xz, without the reference, if smaller */
			size_t xn = encode_try_xz(w, src, len, pl);
			if (xn) {
				pick = w->xzb;
				pl = xn;
				kref_len = 0;
				j->n_refs = 0;
				j->reads_new = 0;
				j->flags = SLOTSYNC_DELTA_OBJ_XZ;
			}
		}
		if (slotsync_delta_decode(w->dec, j->codec, pick, pl, kref, kref_len, w->check, len, &e2) < 0 ||
		    memcmp(w->check, src, len) != 0) {
			encode_job_fail(c, "does not decode to its chunks (an encoder fault)", (size_t)(j - c->jobs));
			j->codec = 0;
			return;
		}
		j->payload = malloc(pl);
		if (!j->payload) {
			encode_job_fail(c, "out of memory", (size_t)(j - c->jobs));
			j->codec = 0;
			return;
		}
		memcpy(j->payload, pick, pl);
		j->payload_len = pl;
	}
}
