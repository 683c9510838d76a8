/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The delta object decoder (slotsync/delta.h): ZSTD_REF, RESIDUAL,
 * ZSTD_FRAMES and BLOCKS objects, against their reference. */
#define ZSTD_STATIC_LINKING_ONLY
#include "slotsync/delta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io.h"
#include "slotsync/features.h"

#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif

struct slotsync_delta_decoder {
	ZSTD_DCtx *dctx;
	uint8_t *scratch;   /* RESIDUAL: the decoded frame; ZSTD_FRAMES: the records */
	size_t scratch_cap;
	/* ZSTD_FRAMES, made on first use */
	ZSTD_DCtx *fdctx;   /* frames of the reference */
	ZSTD_CCtx *cctx;    /* frames of the output, compressed again */
	uint8_t *xref;      /* the expanded reference (XREF_MAX) */
	uint8_t *frame;     /* one frame rebuilt */
	/* BLOCKS, made on first use */
	struct slotsync_delta_profile profile;
	struct slotsync_delta_block_coder *bc;
	uint8_t *map;       /* the decoded map (MAP_MAX entries) */
	uint8_t *block;     /* one block rebuilt (DEFLATE_CAP(PROFILE_BLOCK_MAX)) */
	uint32_t *bounds;   /* DEFLATE: a record's block lengths (DEFLATE_BOUNDS_MAX) */
	/* inner deflate streams, made on first use */
	struct slotsync_delta_profile inner;
	uint8_t *content;   /* a nested block's content (PROFILE_BLOCK_MAX) */
	uint8_t *iblock;    /* one inner deflate stream rebuilt (DEFLATE_CAP(PROFILE_BLOCK_MAX)) */
};

static const uint8_t zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

size_t slotsync_delta_frame_at(const uint8_t *p, size_t len, size_t *content)
{
	unsigned long long n;
	size_t c;

	if (len < 9 || memcmp(p, zstd_magic, 4) != 0)
		return 0;
	n = ZSTD_getFrameContentSize(p, len);
	if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > SLOTSYNC_DELTA_FRAME_MAX)
		return 0;
	c = ZSTD_findFrameCompressedSize(p, len);
	if (ZSTD_isError(c) || c > len)
		return 0;
	*content = (size_t)n;
	return c;
}

size_t slotsync_delta_expand(void *dctx, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t i = 0, o = 0;

	/* the same frames expand on every side, whatever the context was set to */
	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, SLOTSYNC_DELTA_FRAME_WINDOW_LOG);

	while (i < len && o < cap) {
		const uint8_t *m = memchr(in + i, zstd_magic[0], len - i);
		size_t lit = m ? (size_t)(m - (in + i)) : len - i, fc, content = 0;
		if (lit > cap - o)
			lit = cap - o;
		memcpy(out + o, in + i, lit);
		o += lit;
		i += lit;
		if (!m || o == cap)
			break;
		fc = slotsync_delta_frame_at(in + i, len - i, &content);
		if (fc && content <= cap - o) {
			size_t n = ZSTD_decompressDCtx(dctx, out + o, content, in + i, fc);
			if (!ZSTD_isError(n) && n == content) {
				o += n;
				i += fc;
				continue;
			}
		}
		out[o++] = in[i++];
	}
	return o;
}

struct slotsync_delta_decoder *slotsync_delta_decoder_new(void)
{
	struct slotsync_delta_decoder *dec = calloc(1, sizeof(*dec));

	if (!dec)
		return NULL;
	dec->dctx = ZSTD_createDCtx();
	if (!dec->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(dec->dctx, ZSTD_d_windowLogMax,
							      SLOTSYNC_DELTA_WINDOW_LOG + 1))) {
		slotsync_delta_decoder_free(dec);
		return NULL;
	}
	return dec;
}

void slotsync_delta_decoder_free(struct slotsync_delta_decoder *dec)
{
	if (!dec)
		return;
	ZSTD_freeDCtx(dec->dctx);
	ZSTD_freeDCtx(dec->fdctx);
	ZSTD_freeCCtx(dec->cctx);
	free(dec->scratch);
	free(dec->xref);
	free(dec->frame);
	slotsync_delta_block_coder_free(dec->bc);
	free(dec->map);
	free(dec->block);
	free(dec->bounds);
	free(dec->content);
	free(dec->iblock);
	free(dec);
}

void slotsync_delta_decoder_set_profile(struct slotsync_delta_decoder *dec, const struct slotsync_delta_profile *p)
{
	if (p)
		dec->profile = *p;
	else
		memset(&dec->profile, 0, sizeof(dec->profile));
}

void slotsync_delta_decoder_set_inner_profile(struct slotsync_delta_decoder *dec, const struct slotsync_delta_profile *p)
{
	if (p)
		dec->inner = *p;
	else
		memset(&dec->inner, 0, sizeof(dec->inner));
}

/* One frame against the reference, into exactly `want` bytes (or at most cap
 * when want is 0); returns the size or an error. */
static int64_t frame_decode(struct slotsync_delta_decoder *dec, const void *payload, size_t len, const void *ref,
			    size_t ref_len, void *out, size_t cap, struct slotsync_error *err)
{
	unsigned long long declared = ZSTD_getFrameContentSize(payload, len);
	size_t n;

	if (declared == ZSTD_CONTENTSIZE_ERROR)
		return slotsync_error_set(err, -EBADMSG, "not a zstd frame");
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap)
		return slotsync_error_set(err, -EFBIG, "frame declares %llu bytes where at most %zu may come", declared,
					  cap);
	ZSTD_DCtx_reset(dec->dctx, ZSTD_reset_session_only);
	n = ZSTD_DCtx_refPrefix(dec->dctx, ref, ref_len);
	if (!ZSTD_isError(n))
		n = ZSTD_decompressDCtx(dec->dctx, out, cap, payload, len);
	if (ZSTD_isError(n))
		return slotsync_error_set(err, -EBADMSG, "zstd: %s", ZSTD_getErrorName(n));
	return (int64_t)n;
}

static const uint8_t xz_magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };

/* What an object's zstd frame gives (a ZSTD_REF object's output, the records
 * of a BLOCKS or ZSTD_FRAMES object): the frame decoded against the (expanded)
 * reference, or one .xz stream without it (the whole payload, within
 * SLOTSYNC_DELTA_XZ_MEM_MAX of liblzma memory); returns its size or an
 * error. */
static int64_t records_decode(struct slotsync_delta_decoder *dec, const uint8_t *payload, size_t len,
			      const void *xref, size_t xref_len, uint8_t *out, size_t cap, struct slotsync_error *err)
{
	if (len < sizeof(xz_magic) || memcmp(payload, xz_magic, sizeof(xz_magic)) != 0)
		return frame_decode(dec, payload, len, xref, xref_len, out, cap, err);
#if SLOTSYNC_HAVE_XZ
	{
		lzma_stream st = LZMA_STREAM_INIT;
		uint64_t need;
		size_t got, left;
		lzma_ret r = lzma_stream_decoder(&st, SLOTSYNC_DELTA_XZ_MEM_MAX, 0);

		if (r != LZMA_OK)
			return slotsync_error_set(err, -ENOMEM, "out of memory for xz records");
		st.next_in = payload;
		st.avail_in = len;
		st.next_out = out;
		st.avail_out = cap;
		r = lzma_code(&st, LZMA_FINISH);
		got = cap - st.avail_out;
		left = st.avail_in;
		need = lzma_memusage(&st);
		lzma_end(&st);
		if (r == LZMA_STREAM_END && left)
			return slotsync_error_set(err, -EBADMSG, "xz records followed by %zu other bytes", left);
		if (r == LZMA_STREAM_END)
			return (int64_t)got;
		if (r == LZMA_MEMLIMIT_ERROR)
			return slotsync_error_set(err, -EFBIG, "xz records need %" PRIu64 " bytes of memory, over %u", need,
						  SLOTSYNC_DELTA_XZ_MEM_MAX);
		if ((r == LZMA_OK || r == LZMA_BUF_ERROR) && got == cap)
			return slotsync_error_set(err, -EFBIG, "xz records of over %zu bytes", cap);
		if (r == LZMA_OK || r == LZMA_BUF_ERROR)
			return slotsync_error_set(err, -EBADMSG, "xz records cut short");
		return slotsync_error_set(err, -EBADMSG, "xz records do not decode (liblzma %d)", (int)r);
	}
#else
	(void)dec;
	(void)xref;
	(void)xref_len;
	(void)out;
	(void)cap;
	return slotsync_error_set(err, -ENOTSUP, "xz records, and this slotsync was built without liblzma");
#endif
}

/* dec->scratch of at least cap bytes; -1 if out of memory */
static int scratch_reserve(struct slotsync_delta_decoder *dec, size_t cap)
{
	uint8_t *s;

	if (dec->scratch_cap >= cap)
		return 0;
	s = realloc(dec->scratch, cap);
	if (!s)
		return -1;
	dec->scratch = s;
	dec->scratch_cap = cap;
	return 0;
}

static int frames_setup(struct slotsync_delta_decoder *dec, struct slotsync_error *err)
{
	if (dec->xref)
		return 0;
	if (!dec->fdctx)
		dec->fdctx = ZSTD_createDCtx();
	if (!dec->cctx)
		dec->cctx = ZSTD_createCCtx();
	if (!dec->frame)
		dec->frame = malloc(ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX));
	(void)scratch_reserve(dec, SLOTSYNC_DELTA_XOUT_MAX); /* checked below */
	dec->xref = malloc(SLOTSYNC_DELTA_XREF_MAX);
	if (!dec->fdctx || !dec->cctx || !dec->frame || !dec->xref || dec->scratch_cap < SLOTSYNC_DELTA_XOUT_MAX) {
		free(dec->xref);
		dec->xref = NULL;
		return slotsync_error_set(err, -ENOMEM, "out of memory for a zstd-frames object");
	}
	return 0;
}

#define MAP_ENTRY_BYTES 12u

/* The records (ZSTD_FRAMES or BLOCKS) into exactly out_len bytes.  A frame or
 * block record is compressed again and must give csize bytes; only the
 * record that starts the output may skip bytes of its block and only the one
 * that ends it may leave bytes off (bounded work: the blocks compressed tile
 * the output). */
/* The head of a frame, block or deflate record at x (left bytes): variant,
 * csize, skip, take, n, and for a deflate record nb and its block lengths
 * (into bounds).  Returns the head's size, or 0 if it is cut short. */
struct rec {
	uint32_t variant, csize, skip, take, len, nb;
};

static size_t rec_head(const uint8_t *x, size_t left, int deflate, uint32_t *bounds, struct rec *r)
{
	if (left < 18)
		return 0;
	r->variant = x[1];
	r->csize = io_get_le32(x + 2);
	r->skip = io_get_le32(x + 6);
	r->take = io_get_le32(x + 10);
	r->len = io_get_le32(x + 14);
	r->nb = 0;
	if (!deflate)
		return 18;
	r->nb = left >= 22 ? io_get_le32(x + 18) : UINT32_MAX;
	if (r->nb > SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX || (left - 22) / 4 < r->nb)
		return 0;
	for (uint32_t i = 0; i < r->nb; i++)
		bounds[i] = io_get_le32(x + 22 + 4 * (size_t)i);
	return 22 + 4 * (size_t)r->nb;
}

/* Whether record r's sizes fit: content at most len_max and within the len_left
 * bytes after its head, compressed at most cap, and its bytes taken within
 * them and the room left in its output. */
static int rec_fits(const struct rec *r, size_t len_max, size_t len_left, size_t cap, size_t room)
{
	return r->len <= len_max && r->len <= len_left && r->csize <= cap && r->take > 0 && r->skip <= r->csize &&
	       r->take <= r->csize - r->skip && r->take <= room;
}

static const char *rec_tiles(const struct rec *r, size_t o, size_t out_len);

/* 0 if record r (of `kind`, at pos of the records) fits (fits: what
 * rec_fits() and the variant checks said) and keeps the tiling rule at
 * output position o of out_len; else the error, by name. */
static int rec_refused(const struct rec *r, int fits, size_t o, size_t out_len, const char *what, const char *kind,
		       size_t pos, struct slotsync_error *err)
{
	const char *why;

	if (!fits)
		return slotsync_error_set(err, -EBADMSG,
					  "%s: %s record at %zu out of bounds (variant %u, %u bytes, %u compressed, "
					  "%u+%u taken)",
					  what, kind, pos, r->variant, r->len, r->csize, r->skip, r->take);
	why = rec_tiles(r, o, out_len);
	if (why)
		return slotsync_error_set(err, -EBADMSG, "%s: %s record at %zu %s", what, kind, pos, why);
	return 0;
}

/* Whether record r, at output position o of out_len, keeps the tiling rule:
 * skip > 0 only where the output starts, bytes left off only where it ends. */
static const char *rec_tiles(const struct rec *r, size_t o, size_t out_len)
{
	if (r->skip > 0 && o != 0)
		return "skips bytes of its block but does not start the output";
	if (r->skip + r->take < r->csize && o + r->take != out_len)
		return "leaves bytes of its block off but does not end the output";
	return NULL;
}

/* An inner deflate record at x (left bytes): a gzip file's deflate stream,
 * compressed again with the inner profile, bytes skip .. skip+take-1 of it
 * written at dst[*dp] of dst_len, *dp advanced past them.  Returns the
 * record's size, or an error. */
static int64_t inner_deflate(struct slotsync_delta_decoder *dec, const uint8_t *x, size_t left, uint8_t *dst,
			     size_t *dp, size_t dst_len, const char *where, size_t pos, struct slotsync_error *err)
{
	const size_t d = *dp;
	const struct slotsync_delta_profile *in = &dec->inner;
	const uint32_t cap = SLOTSYNC_DELTA_DEFLATE_CAP(in->block_max);
	struct rec r;
	size_t hdr = rec_head(x, left, 1, dec->bounds, &r);
	int64_t z;
	int rr;

	if (hdr == 0)
		return slotsync_error_set(err, -EBADMSG, "%s: deflate record at %zu cut short", where, pos);
	rr = rec_refused(&r,
			 rec_fits(&r, in->block_max, left - hdr, cap, dst_len - d) && r.variant < 32 &&
				 (in->variants & (UINT32_C(1) << r.variant)),
			 d, dst_len, where, "deflate", pos, err);
	if (rr < 0)
		return rr;
	z = slotsync_delta_deflate_compress(dec->bc, in, r.variant, dec->bounds, r.nb, x + hdr, r.len, dec->iblock, cap,
					    err);
	if (z < 0)
		return z == -EINVAL ? -EBADMSG : z;
	if (z != r.csize)
		return slotsync_error_set(err, -EBADMSG,
					  "blocks object: a gzip file's deflate stream compressed again gives %" PRId64
					  " bytes, not %u (this device compresses otherwise than the generator's %s)",
					  z, r.csize, in->library[0] ? in->library : "zlib");
	memcpy(dst + d, dec->iblock + r.skip, r.take);
	*dp = d + r.take;
	return (int64_t)(hdr + r.len);
}

/* A nested block's content: the records at x (left bytes: bytes records and
 * deflate records of the inner profile) make dec->content[0..n).  Returns the
 * bytes of records used, or an error. */
static int64_t nested_content(struct slotsync_delta_decoder *dec, const uint8_t *x, size_t left, size_t n,
			      size_t where, struct slotsync_error *err)
{
	size_t at = 0, c = 0;

	while (c < n) {
		int64_t u;

		if (at >= left)
			return slotsync_error_set(err, -EBADMSG, "blocks object: nested block at %zu cut short", where);
		if (x[at] == 0) {
			uint32_t len = left - at >= 5 ? io_get_le32(x + at + 1) : 0;
			if (left - at < 5 || len == 0 || len > left - at - 5 || len > n - c)
				return slotsync_error_set(err, -EBADMSG,
							  "blocks object: nested block at %zu: bytes record out of bounds",
							  where);
			memcpy(dec->content + c, x + at + 5, len);
			c += len;
			at += 5 + len;
			continue;
		}
		if (x[at] != 3)
			return slotsync_error_set(err, -EBADMSG, "blocks object: nested block at %zu: record %u inside it",
						  where, x[at]);
		u = inner_deflate(dec, x + at, left - at, dec->content, &c, n, "blocks object: nested block", where, err);
		if (u < 0)
			return u;
		at += (size_t)u;
	}
	return (int64_t)at;
}

static int records_apply(struct slotsync_delta_decoder *dec, int codec, const uint8_t *x, size_t n, uint8_t *out,
			 size_t out_len, struct slotsync_error *err)
{
	const struct slotsync_delta_profile *pr = &dec->profile;
	const char *what = codec == SLOTSYNC_DELTA_BLOCKS ? "blocks object" : "zstd-frames object";
	/* 1 frame, 2 block, 3 deflate stream (with its block lengths) */
	const uint8_t kind = codec != SLOTSYNC_DELTA_BLOCKS ? 1 : pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE ? 3 : 2;
	/* 4 nested block: a block (2) whose content is given by records */
	const int nested = kind == 2 && dec->inner.comp == SLOTSYNC_DELTA_COMP_DEFLATE;
	size_t at = 0, o = 0;

	while (at < n) {
		size_t left = n - at;
		if (x[at] == 0) {
			uint32_t len = left >= 5 ? io_get_le32(x + at + 1) : 0;
			if (left < 5 || len == 0 || len > left - 5 || len > out_len - o)
				return slotsync_error_set(err, -EBADMSG, "%s: bytes record at %zu out of bounds", what, at);
			memcpy(out + o, x + at + 5, len);
			o += len;
			at += 5 + len;
		} else if (nested && x[at] == 3) {
			/* a gzip file in bytes the image stores as they are */
			int64_t u = inner_deflate(dec, x + at, left, out, &o, out_len, "blocks object", at, err);
			if (u < 0)
				return (int)u;
			at += (size_t)u;
		} else if (x[at] == kind || (nested && x[at] == 4)) {
			uint32_t content_max, cap;
			struct rec r;
			size_t hdr, used;
			const uint8_t *content;
			uint8_t *rebuilt;
			int64_t z;

			hdr = rec_head(x + at, left, kind == 3, dec->bounds, &r);
			if (hdr == 0)
				return slotsync_error_set(err, -EBADMSG, "%s: %s record at %zu cut short", what,
							  kind == 3 ? "deflate" : "block", at);
			if (codec == SLOTSYNC_DELTA_BLOCKS) {
				content_max = pr->block_max;
				cap = kind == 3 ? SLOTSYNC_DELTA_DEFLATE_CAP(pr->block_max) : pr->block_max;
			} else {
				content_max = SLOTSYNC_DELTA_FRAME_MAX;
				cap = ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX);
			}
			int rr = rec_refused(
				&r,
				rec_fits(&r, content_max, x[at] != 4 ? left - hdr : SIZE_MAX, cap, out_len - o) &&
					(codec == SLOTSYNC_DELTA_BLOCKS ||
					 (r.variant >= 1 && r.variant <= SLOTSYNC_DELTA_FRAME_LEVEL_MAX)) &&
					(pr->comp == SLOTSYNC_DELTA_COMP_NONE ||
					 (r.variant < 32 && (pr->variants & (UINT32_C(1) << r.variant)))),
				o, out_len, what, "block", at, err);
			if (rr < 0)
				return rr;
			if (x[at] == 4) {
				int64_t u = nested_content(dec, x + at + hdr, left - hdr, r.len, at, err);
				if (u < 0)
					return (int)u;
				content = dec->content;
				used = hdr + (size_t)u;
			} else {
				content = x + at + hdr;
				used = hdr + r.len;
			}
			if (codec == SLOTSYNC_DELTA_BLOCKS) {
				rebuilt = dec->block;
				z = slotsync_delta_deflate_compress(dec->bc, pr, r.variant, dec->bounds, r.nb, content, r.len,
								    rebuilt, cap, err);
				if (z < 0)
					return z == -EINVAL ? -EBADMSG : (int)z;
				if (z != r.csize)
					return slotsync_error_set(err, -EBADMSG,
								  "blocks object: a block compressed again gives %" PRId64
								  " bytes, not %u (this device compresses otherwise than the "
								  "generator's %s)",
								  z, r.csize, pr->library[0] ? pr->library : "compressor");
			} else {
				size_t zz = ZSTD_compressCCtx(dec->cctx, dec->frame, cap, content, r.len, (int)r.variant);
				rebuilt = dec->frame;
				if (ZSTD_isError(zz) || zz != r.csize)
					return slotsync_error_set(err, -EBADMSG,
								  "zstd-frames object: a frame compressed again at level %u "
								  "gives %zu bytes, not %u (this libzstd %s compresses "
								  "otherwise)",
								  r.variant, ZSTD_isError(zz) ? (size_t)0 : zz, r.csize,
								  ZSTD_versionString());
			}
			memcpy(out + o, rebuilt + r.skip, r.take);
			o += r.take;
			at += used;
		} else
			return slotsync_error_set(err, -EBADMSG, "%s: unknown record %u at %zu", what, x[at], at);
	}
	if (o != out_len)
		return slotsync_error_set(err, -EBADMSG, "%s gives %zu bytes, %zu expected", what, o, out_len);
	return 0;
}

/* RESIDUAL's layout: k alignments (i32) at al, one selector per 64-byte block
 * of the output at sel, then the residual; output = prediction + residual,
 * byte by byte.  out may be the residual itself: each byte is rebuilt from its
 * own residual byte and the reference. */
static int residual_rebuild(const uint8_t *al, size_t k, const uint8_t *sel, const uint8_t *ref, size_t ref_len,
			    uint8_t *out, size_t out_len, const char *what, struct slotsync_error *err)
{
	int32_t align[SLOTSYNC_DELTA_ALIGN_MAX];
	size_t blocks = (out_len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK;
	const uint8_t *res = sel + blocks;

	for (size_t i = 0; i < k; i++)
		align[i] = (int32_t)io_get_le32(al + 4 * i);
	for (size_t b = 0; b < blocks; b++) {
		size_t at = b * SLOTSYNC_DELTA_BLOCK,
		       end = at + SLOTSYNC_DELTA_BLOCK < out_len ? at + SLOTSYNC_DELTA_BLOCK : out_len;
		if (sel[b] == 0xff) {
			memmove(out + at, res + at, end - at);
			continue;
		}
		if (sel[b] >= k)
			return slotsync_error_set(err, -EBADMSG, "%s block %zu selects alignment %u of %zu", what, b, sel[b],
						  k);
		for (size_t i = at; i < end; i++) {
			int64_t src = (int64_t)align[sel[b]] + (int64_t)i;
			uint8_t pred = src >= 0 && (uint64_t)src < ref_len ? ref[src] : 0;
			out[i] = (uint8_t)(res[i] + pred);
		}
	}
	return 0;
}

/* ZSTD_FRAMES: the records against the expanded reference, then the output. */
static int frames_decode(struct slotsync_delta_decoder *dec, const void *payload, size_t payload_len, const void *ref,
			 size_t ref_len, uint8_t *out, size_t out_len, struct slotsync_error *err)
{
	size_t xref_len;
	int64_t n;
	int r = frames_setup(dec, err);

	if (r < 0)
		return r;
	xref_len = slotsync_delta_expand(dec->fdctx, ref, ref_len, dec->xref, SLOTSYNC_DELTA_XREF_MAX);
	n = records_decode(dec, payload, payload_len, dec->xref, xref_len, dec->scratch, SLOTSYNC_DELTA_XOUT_MAX, err);
	if (n < 0)
		return (int)n;
	return records_apply(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, dec->scratch, (size_t)n, out, out_len, err);
}

/* BLOCKS: the map, the reference expanded by it, the records against that. */
static int blocks_decode(struct slotsync_delta_decoder *dec, const uint8_t *payload, size_t payload_len,
			 const uint8_t *ref, size_t ref_len, uint8_t *out, size_t out_len, struct slotsync_error *err)
{
	const struct slotsync_delta_profile *pr = &dec->profile;
	const size_t map_cap = 4 + (size_t)SLOTSYNC_DELTA_MAP_MAX * MAP_ENTRY_BYTES + 4 +
			       (size_t)SLOTSYNC_DELTA_INNER_MAX * MAP_ENTRY_BYTES;
	const int inner = dec->inner.comp == SLOTSYNC_DELTA_COMP_DEFLATE && pr->comp != SLOTSYNC_DELTA_COMP_DEFLATE;
	unsigned long long declared;
	size_t m, rest, nmap, ninner = 0, map_len, map_need, o = 0, at = 0;
	const uint8_t *ilist = NULL;
	int64_t n;
	int r, resid, has_inner;

	/* the parser has refused zstd blocks in an SSDELTA2 index */
	if (!slotsync_delta_blocks_comp(pr->comp, 1))
		return slotsync_error_set(err, -EINVAL,
					  "blocks object without a gzip, xz, lz4, zstd or deflate compression profile");
	r = frames_setup(dec, err);
	if (r < 0)
		return r;
	if (!dec->bc)
		dec->bc = slotsync_delta_block_coder_new();
	if (!dec->map)
		dec->map = malloc(map_cap);
	if (!dec->block)
		dec->block = malloc(SLOTSYNC_DELTA_DEFLATE_CAP(SLOTSYNC_DELTA_PROFILE_BLOCK_MAX));
	if (!dec->bounds && (pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE || inner))
		dec->bounds = malloc(SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX * sizeof(*dec->bounds));
	if (inner && !dec->content)
		dec->content = malloc(SLOTSYNC_DELTA_PROFILE_BLOCK_MAX);
	if (inner && !dec->iblock)
		dec->iblock = malloc(SLOTSYNC_DELTA_DEFLATE_CAP(SLOTSYNC_DELTA_PROFILE_BLOCK_MAX));
	if (!dec->bc || !dec->map || !dec->block || ((pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE || inner) && !dec->bounds) ||
	    (inner && (!dec->content || !dec->iblock)))
		return slotsync_error_set(err, -ENOMEM, "out of memory for a blocks object");
	/* 1. the map */
	m = ZSTD_findFrameCompressedSize(payload, payload_len);
	declared = ZSTD_getFrameContentSize(payload, payload_len);
	if (ZSTD_isError(m) || declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
	    declared > map_cap || declared < 4)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its map is not a zstd frame of at most %zu bytes",
					  map_cap);
	ZSTD_DCtx_reset(dec->dctx, ZSTD_reset_session_only);
	map_len = ZSTD_decompressDCtx(dec->dctx, dec->map, map_cap, payload, m);
	if (ZSTD_isError(map_len) || map_len != declared)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its map does not decode");
	nmap = io_get_le32(dec->map);
	resid = (nmap & SLOTSYNC_DELTA_MAP_RESIDUAL) != 0;
	has_inner = (nmap & SLOTSYNC_DELTA_MAP_INNER) != 0;
	nmap &= ~(size_t)(SLOTSYNC_DELTA_MAP_RESIDUAL | SLOTSYNC_DELTA_MAP_INNER);
	if (has_inner && !inner)
		return slotsync_error_set(err, -EBADMSG,
					  "blocks object: its map lists gzip files' deflate streams, but the index has "
					  "no inner deflate profile");
	map_need = 4 + nmap * MAP_ENTRY_BYTES;
	if (has_inner && nmap <= SLOTSYNC_DELTA_MAP_MAX && map_len >= map_need + 4) {
		ninner = io_get_le32(dec->map + map_need);
		ilist = dec->map + map_need + 4;
		map_need += 4 + (ninner <= SLOTSYNC_DELTA_INNER_MAX ? ninner * MAP_ENTRY_BYTES : 0);
	} else if (has_inner)
		map_need += 4;
	if (nmap > SLOTSYNC_DELTA_MAP_MAX || ninner > SLOTSYNC_DELTA_INNER_MAX || map_len != map_need)
		return slotsync_error_set(err, -EBADMSG, "blocks object: a map of %zu bytes for %zu blocks and %zu streams",
					  map_len, nmap, ninner);
	/* every entry checked before any block is decompressed */
	for (size_t i = 0; i < nmap; i++) {
		const uint8_t *e = dec->map + 4 + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		if (off < at || csize == 0 || (uint64_t)off + csize > ref_len || usize == 0 || usize > pr->block_max)
			return slotsync_error_set(err, -EBADMSG,
						  "blocks object: map entry %zu (%u bytes at %u, %u expanded) out of order or "
						  "out of the reference",
						  i, csize, off, usize);
		o += (off - at) + usize;
		at = (size_t)off + csize;
	}
	o += ref_len - at;
	/* the inner streams lie in the expanded reference (o bytes) and add to it */
	at = 0;
	for (size_t i = 0, end = o; i < ninner; i++) {
		const uint8_t *e = ilist + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		if (off < at || csize == 0 || (uint64_t)off + csize > end || usize == 0 || usize > dec->inner.block_max)
			return slotsync_error_set(err, -EBADMSG,
						  "blocks object: deflate stream %zu (%u bytes at %u, %u inflated) out of "
						  "order or out of the expanded reference",
						  i, csize, off, usize);
		at = (size_t)off + csize;
		o += usize;
		if (o > SLOTSYNC_DELTA_XREF_MAX)
			break;
	}
	if (o > SLOTSYNC_DELTA_XREF_MAX)
		return slotsync_error_set(err, -EFBIG, "blocks object: its expanded reference is over %u bytes",
					  SLOTSYNC_DELTA_XREF_MAX);
	/* 2. the expanded reference */
	o = 0;
	at = 0;
	for (size_t i = 0; i < nmap; i++) {
		const uint8_t *e = dec->map + 4 + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		struct slotsync_error e2 = { 0 };
		memcpy(dec->xref + o, ref + at, off - at);
		o += off - at;
		r = slotsync_delta_block_decompress(dec->bc, pr, ref + off, csize, dec->xref + o, usize, &e2);
		if (r < 0)
			return slotsync_error_set(err, r == -ENOTSUP ? r : -EBADMSG, "blocks object: map entry %zu: %s", i,
						  slotsync_error_message(&e2));
		o += usize;
		at = (size_t)off + csize;
	}
	memcpy(dec->xref + o, ref + at, ref_len - at);
	o += ref_len - at;
	/* then the inner streams, inflated after it */
	for (size_t i = 0; i < ninner; i++) {
		const uint8_t *e = ilist + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		struct slotsync_error e2 = { 0 };
		r = slotsync_delta_block_decompress(dec->bc, &dec->inner, dec->xref + off, csize, dec->xref + o, usize,
						    &e2);
		if (r < 0)
			return slotsync_error_set(err, r == -ENOTSUP ? r : -EBADMSG, "blocks object: deflate stream %zu: %s",
						  i, slotsync_error_message(&e2));
		o += usize;
	}
	/* 3. the records: one zstd frame or one xz stream, the rest of the object */
	rest = payload_len - m >= sizeof(xz_magic) && memcmp(payload + m, xz_magic, sizeof(xz_magic)) == 0
		       ? payload_len - m
		       : ZSTD_findFrameCompressedSize(payload + m, payload_len - m);
	if (ZSTD_isError(rest) || rest != payload_len - m)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its records are not one zstd frame or xz stream");
	if (!resid) {
		n = records_decode(dec, payload + m, payload_len - m, dec->xref, o, dec->scratch, SLOTSYNC_DELTA_XOUT_MAX,
				 err);
		if (n < 0)
			return (int)n;
		return records_apply(dec, SLOTSYNC_DELTA_BLOCKS, dec->scratch, (size_t)n, out, out_len, err);
	}
	/* residual records: k, k alignments, the records' length, selectors, residual */
	if (scratch_reserve(dec, SLOTSYNC_DELTA_RESID_RECORDS_MAX) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory for a blocks object");
	n = records_decode(dec, payload + m, payload_len - m, dec->xref, o, dec->scratch, SLOTSYNC_DELTA_RESID_RECORDS_MAX,
			   err);
	if (n < 0)
		return (int)n;
	{
		const uint8_t *x = dec->scratch;
		size_t k = n > 0 ? x[0] : 0, head = 1 + 4 * k, len, blocks;
		if (k == 0 || k > SLOTSYNC_DELTA_ALIGN_MAX || (size_t)n < head + 4)
			return slotsync_error_set(err, -EBADMSG, "blocks object: residual records without their alignments");
		len = io_get_le32(x + head);
		blocks = (len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK;
		if (len == 0 || len > SLOTSYNC_DELTA_XOUT_MAX || (size_t)n != head + 4 + blocks + len)
			return slotsync_error_set(err, -EBADMSG,
						  "blocks object: residual records of %" PRId64 " bytes do not fit %zu "
						  "bytes of records",
						  n, len);
		r = residual_rebuild(x + 1, k, x + head + 4, dec->xref, o, dec->scratch + head + 4 + blocks, len,
				     "blocks object: residual", err);
		if (r < 0)
			return r;
		return records_apply(dec, SLOTSYNC_DELTA_BLOCKS, x + head + 4 + blocks, len, out, out_len, err);
	}
}

int slotsync_delta_decode(struct slotsync_delta_decoder *dec, int codec, const void *payload, size_t payload_len,
			  const void *ref, size_t ref_len, void *out, size_t out_len, struct slotsync_error *err)
{
	size_t blocks = (out_len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK, cap, k, head;
	const uint8_t *r = ref;
	uint8_t *o = out;
	int64_t n;

	if (out_len > SLOTSYNC_DELTA_OUT_MAX || ref_len > SLOTSYNC_DELTA_REF_MAX)
		return slotsync_error_set(err, -EFBIG, "delta object over the limits");
	if (codec == SLOTSYNC_DELTA_ZSTD_REF) {
		n = records_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
		if (n < 0)
			return (int)n;
		if ((size_t)n != out_len)
			return slotsync_error_set(err, -EBADMSG, "object decodes to %" PRId64 " bytes, %zu expected", n,
						  out_len);
		return 0;
	}
	if (codec == SLOTSYNC_DELTA_ZSTD_FRAMES)
		return frames_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
	if (codec == SLOTSYNC_DELTA_BLOCKS)
		return blocks_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
	if (codec != SLOTSYNC_DELTA_RESIDUAL)
		return slotsync_error_set(err, -EBADMSG, "unknown delta codec %d", codec);
	cap = 1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + blocks + out_len;
	if (scratch_reserve(dec, cap) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = frame_decode(dec, payload, payload_len, ref, ref_len, dec->scratch, cap, err);
	if (n < 0)
		return (int)n;
	k = n > 0 ? dec->scratch[0] : 0;
	head = 1 + 4 * k;
	if (k == 0 || k > SLOTSYNC_DELTA_ALIGN_MAX || (size_t)n != head + blocks + out_len)
		return slotsync_error_set(err, -EBADMSG, "residual object of %" PRId64 " bytes does not fit %zu output bytes",
					  n, out_len);
	return residual_rebuild(dec->scratch + 1, k, dec->scratch + head, r, ref_len, o, out_len, "residual", err);
}
