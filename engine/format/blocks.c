/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — squashfs blocks compressed as mksquashfs compresses them
 * (slotsync/delta.h, "BLOCKS").
 *
 * A BLOCKS object carries a block's content, and the device compresses it
 * again: the bytes must come out as mksquashfs 4.5.1 wrote them.  So each
 * compressor here is called exactly as squashfs-tools' *_wrapper.c calls it:
 *   gzip  deflateInit2(level, Z_DEFLATED, window, 8, ...), then per block
 *         deflateReset, deflateParams(level, strategy), deflate(Z_FINISH);
 *   xz    lzma_stream_buffer_encode({BCJ if any, LZMA2 preset with
 *         dict_size = window}, LZMA_CHECK_CRC32);
 *   lz4   LZ4_compress_default, or LZ4_compress_HC at the level (-Xhc: 12);
 *   zstd  ZSTD_compressCCtx at the level.
 * mksquashfs tries every selected strategy or filter and keeps the smallest;
 * the variant says which one a block was made with, so the device compresses
 * once.  Whether this build's libraries compress as the generator's did is
 * told by the profile's sample digest (slotsync_delta_profile_probe()).
 *
 * DEFLATE is not a squashfs compressor: its "blocks" are the raw deflate
 * streams of gzip files in an image whose own blocks are not compressed, made
 * again with zlib at the level and memLevel of the variant, a deflate block
 * ended wherever the file's own blocks end (gzip -9 ends its blocks by a rule
 * of its own; zlib makes the same bytes between those ends).
 */
#include "slotsync/delta.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "io.h"
#include "slotsync/features.h"

#if SLOTSYNC_HAVE_ZLIB
#include <zlib.h>
#endif
#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif
#if SLOTSYNC_HAVE_LZ4
#include <lz4.h>
#include <lz4hc.h>
#endif

#define LZ4_LEVEL_MAX 12
#define ZSTD_LEVEL_MAX 19

struct slotsync_delta_block_coder {
#if SLOTSYNC_HAVE_ZLIB
	z_stream zs;
	int zs_ready, zs_level, zs_window;
	z_stream ds;                     /* DEFLATE: raw, for one memLevel */
	int ds_ready, ds_mem;
#endif
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
};

struct slotsync_delta_block_coder *slotsync_delta_block_coder_new(void)
{
	return calloc(1, sizeof(struct slotsync_delta_block_coder));
}

void slotsync_delta_block_coder_free(struct slotsync_delta_block_coder *bc)
{
	if (!bc)
		return;
#if SLOTSYNC_HAVE_ZLIB
	if (bc->zs_ready)
		deflateEnd(&bc->zs);
	if (bc->ds_ready)
		deflateEnd(&bc->ds);
#endif
	ZSTD_freeCCtx(bc->zc);
	ZSTD_freeDCtx(bc->zd);
	free(bc);
}

static const char *comp_name(unsigned comp)
{
	switch (comp) {
	case SLOTSYNC_DELTA_COMP_GZIP:
		return "gzip";
	case SLOTSYNC_DELTA_COMP_LZO:
		return "lzo";
	case SLOTSYNC_DELTA_COMP_XZ:
		return "xz";
	case SLOTSYNC_DELTA_COMP_LZ4:
		return "lz4";
	case SLOTSYNC_DELTA_COMP_ZSTD:
		return "zstd";
	case SLOTSYNC_DELTA_COMP_DEFLATE:
		return "deflate";
	default:
		return "an unknown compressor";
	}
}

int slotsync_delta_profile_check(const struct slotsync_delta_profile *p, struct slotsync_error *err)
{
	uint32_t allowed = 0;
	int ok = 1;

	if (!memchr(p->library, 0, sizeof(p->library)))
		return slotsync_error_set(err, -EBADMSG, "compression profile: its library name is not NUL-terminated");
	if (p->comp == SLOTSYNC_DELTA_COMP_NONE) {
		if (p->level || p->window || p->variants)
			return slotsync_error_set(err, -EBADMSG, "compression profile without a compressor has parameters");
		return 0;
	}
	if (p->block_max < 4096 || p->block_max > SLOTSYNC_DELTA_PROFILE_BLOCK_MAX)
		return slotsync_error_set(err, -EBADMSG, "compression profile: block size %" PRIu32 " not in 4 KiB..1 MiB",
					  p->block_max);
	switch (p->comp) {
	case SLOTSYNC_DELTA_COMP_GZIP:
		ok = p->level >= 1 && p->level <= 9 && p->window >= 8 && p->window <= 15;
		allowed = 0x1f;
		break;
	case SLOTSYNC_DELTA_COMP_XZ:
		ok = (p->level & ~SLOTSYNC_DELTA_XZ_EXTREME) <= 9 && p->window >= 4096 &&
		     p->window <= SLOTSYNC_DELTA_PROFILE_BLOCK_MAX;
		allowed = 0x7f;
		break;
	case SLOTSYNC_DELTA_COMP_LZ4:
		ok = p->level <= LZ4_LEVEL_MAX && p->window == 0;
		allowed = 0x1;
		break;
	case SLOTSYNC_DELTA_COMP_ZSTD:
		ok = p->level == 0 && p->window == 0;
		allowed = ((UINT32_C(1) << (ZSTD_LEVEL_MAX + 1)) - 1) & ~UINT32_C(1);
		break;
	case SLOTSYNC_DELTA_COMP_DEFLATE:
		ok = p->level == 0 && p->window == 15;
		allowed = (UINT32_C(1) << SLOTSYNC_DELTA_DEFLATE_VARIANTS) - 1;
		break;
	default:
		return slotsync_error_set(err, -EBADMSG, "compression profile: unknown compressor %u", p->comp);
	}
	if (!ok)
		return slotsync_error_set(err, -EBADMSG,
					  "%s compression profile: level %#" PRIx32 " or window %" PRIu32 " out of range",
					  comp_name(p->comp), p->level, p->window);
	if (p->variants == 0 || (p->variants & ~allowed))
		return slotsync_error_set(err, -EBADMSG, "%s compression profile: variants %#" PRIx32 " out of range",
					  comp_name(p->comp), p->variants);
	return 0;
}

/* The version of the library this build compresses with, as a profile
 * names it. */
static void library_name(unsigned comp, char *buf, size_t cap)
{
	buf[0] = '\0';
	switch (comp) {
#if SLOTSYNC_HAVE_ZLIB
	case SLOTSYNC_DELTA_COMP_GZIP:
	case SLOTSYNC_DELTA_COMP_DEFLATE:
		snprintf(buf, cap, "zlib %s", zlibVersion());
		break;
#endif
#if SLOTSYNC_HAVE_XZ
	case SLOTSYNC_DELTA_COMP_XZ:
		snprintf(buf, cap, "liblzma %s", lzma_version_string());
		break;
#endif
#if SLOTSYNC_HAVE_LZ4
	case SLOTSYNC_DELTA_COMP_LZ4:
		snprintf(buf, cap, "liblz4 %s", LZ4_versionString());
		break;
#endif
	case SLOTSYNC_DELTA_COMP_ZSTD:
		snprintf(buf, cap, "libzstd %s", ZSTD_versionString());
		break;
	default:
		break;
	}
}

static int not_built(unsigned comp, struct slotsync_error *err)
{
	const char *opt = comp == SLOTSYNC_DELTA_COMP_GZIP || comp == SLOTSYNC_DELTA_COMP_DEFLATE ? "SLOTSYNC_ZLIB" :
			  comp == SLOTSYNC_DELTA_COMP_XZ   ? "SLOTSYNC_XZ" :
			  comp == SLOTSYNC_DELTA_COMP_LZ4  ? "SLOTSYNC_LZ4" :
							     NULL;

	if (opt)
		return slotsync_error_set(err, -ENOTSUP, "%s blocks: this build has no %s compressor (built with %s=OFF)",
					  comp_name(comp), comp_name(comp), opt);
	return slotsync_error_set(err, -ENOTSUP, "%s blocks are not supported", comp_name(comp));
}

#if SLOTSYNC_HAVE_ZLIB
static int64_t gzip_compress(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
			     unsigned variant, const void *in, size_t len, void *out, size_t cap,
			     struct slotsync_error *err)
{
	int r;

	if (bc->zs_ready && (bc->zs_level != (int)p->level || bc->zs_window != (int)p->window)) {
		deflateEnd(&bc->zs);
		bc->zs_ready = 0;
	}
	if (!bc->zs_ready) {
		memset(&bc->zs, 0, sizeof(bc->zs));
		if (deflateInit2(&bc->zs, (int)p->level, Z_DEFLATED, (int)p->window, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return slotsync_error_set(err, -ENOMEM, "zlib: deflateInit2 failed");
		bc->zs_ready = 1;
		bc->zs_level = (int)p->level;
		bc->zs_window = (int)p->window;
	}
	if (len > UINT32_MAX || cap > UINT32_MAX)
		return slotsync_error_set(err, -EINVAL, "gzip block of %zu bytes", len);
	/* as mksquashfs: a reset stream, then the strategy (no data is pending,
	 * so deflateParams changes the strategy only) */
	if (deflateReset(&bc->zs) != Z_OK || deflateParams(&bc->zs, (int)p->level, (int)variant) != Z_OK)
		return slotsync_error_set(err, -EIO, "zlib: cannot set strategy %u", variant);
	bc->zs.next_in = (Bytef *)(uintptr_t)in;
	bc->zs.avail_in = (uInt)len;
	bc->zs.next_out = out;
	bc->zs.avail_out = (uInt)cap;
	bc->zs.total_out = 0;
	r = deflate(&bc->zs, Z_FINISH);
	if (r == Z_STREAM_END)
		return (int64_t)bc->zs.total_out;
	if (r == Z_OK || r == Z_BUF_ERROR)
		return 0;
	return slotsync_error_set(err, -EIO, "zlib: deflate failed (%d)", r);
}

/* DEFLATE: raw deflate, a block ended after each of bounds[0..nb) */
static int64_t deflate_compress(struct slotsync_delta_block_coder *bc, unsigned variant, const uint32_t *bounds,
				size_t nb, const uint8_t *in, size_t len, void *out, size_t cap, struct slotsync_error *err)
{
	int level = 9 - (int)(variant / 2), mem = 8 + (int)(variant % 2), r = Z_OK;
	size_t left = len;

	if (len > UINT32_MAX || cap > UINT32_MAX)
		return slotsync_error_set(err, -EINVAL, "deflate stream of %zu bytes", len);
	for (size_t i = 0; i < nb; i++) {
		if (bounds[i] == 0 || bounds[i] >= left)
			return slotsync_error_set(err, -EINVAL,
						  "deflate stream of %zu bytes: block %zu of %" PRIu32
						  " bytes does not fit what is left (%zu)",
						  len, i, bounds[i], left);
		left -= bounds[i];
	}
	if (bc->ds_ready && bc->ds_mem != mem) {
		deflateEnd(&bc->ds);
		bc->ds_ready = 0;
	}
	if (!bc->ds_ready) {
		memset(&bc->ds, 0, sizeof(bc->ds));
		if (deflateInit2(&bc->ds, level, Z_DEFLATED, -15, mem, Z_DEFAULT_STRATEGY) != Z_OK)
			return slotsync_error_set(err, -ENOMEM, "zlib: deflateInit2 failed");
		bc->ds_ready = 1;
		bc->ds_mem = mem;
	}
	/* a reset stream takes another level without flushing anything */
	if (deflateReset(&bc->ds) != Z_OK || deflateParams(&bc->ds, level, Z_DEFAULT_STRATEGY) != Z_OK)
		return slotsync_error_set(err, -EIO, "zlib: cannot set level %d", level);
	bc->ds.next_in = (Bytef *)(uintptr_t)in;
	bc->ds.next_out = out;
	bc->ds.avail_out = (uInt)cap;
	for (size_t i = 0; i <= nb; i++) {
		bc->ds.avail_in = i < nb ? bounds[i] : (uInt)left;
		r = deflate(&bc->ds, i < nb ? Z_BLOCK : Z_FINISH);
		if (r == Z_STREAM_END)
			break;
		if (r != Z_OK && r != Z_BUF_ERROR)
			return slotsync_error_set(err, -EIO, "zlib: deflate failed (%d)", r);
		if (bc->ds.avail_out == 0 || bc->ds.avail_in != 0)
			return 0;  /* it does not fit */
	}
	return r == Z_STREAM_END ? (int64_t)bc->ds.total_out : 0;
}

static int deflate_decompress(const void *in, size_t len, void *out, size_t usize, struct slotsync_error *err)
{
	z_stream s;
	int r, ok;

	if (len > UINT32_MAX || usize > UINT32_MAX)
		return slotsync_error_set(err, -EBADMSG, "deflate stream of %zu bytes", len);
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, -15) != Z_OK)
		return slotsync_error_set(err, -ENOMEM, "zlib: inflateInit2 failed");
	s.next_in = (Bytef *)(uintptr_t)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)usize;
	r = inflate(&s, Z_FINISH);
	ok = r == Z_STREAM_END && s.avail_in == 0 && s.total_out == usize;
	inflateEnd(&s);
	if (!ok)
		return slotsync_error_set(err, -EBADMSG,
					  "deflate stream of %zu bytes does not decompress to %zu bytes (zlib %d, %lu bytes)",
					  len, usize, r, (unsigned long)s.total_out);
	return 0;
}

static int gzip_decompress(const void *in, size_t len, void *out, size_t usize, struct slotsync_error *err)
{
	uLongf n = usize;
	uLong used = len;
	int r = uncompress2(out, &n, in, &used);

	if (r != Z_OK || n != usize || used != len)
		return slotsync_error_set(err, -EBADMSG,
					  "gzip block of %zu bytes does not decompress to %zu bytes (zlib %d, %lu bytes)", len,
					  usize, r, (unsigned long)n);
	return 0;
}
#endif

#if SLOTSYNC_HAVE_XZ
/* mksquashfs's order of the BCJ filters (variant bits 1..6) */
static const lzma_vli xz_bcj[] = { LZMA_FILTER_X86, LZMA_FILTER_POWERPC, LZMA_FILTER_IA64,
				   LZMA_FILTER_ARM, LZMA_FILTER_ARMTHUMB, LZMA_FILTER_SPARC };

/* The filter chain of variant v; opt is filled. */
static int xz_filters(const struct slotsync_delta_profile *p, unsigned variant, lzma_options_lzma *opt,
		      lzma_filter f[3], struct slotsync_error *err)
{
	int k = 0;
	uint64_t mem;

	if (lzma_lzma_preset(opt, p->level))
		return slotsync_error_set(err, -EINVAL, "xz: preset %#" PRIx32 " unknown to liblzma", p->level);
	opt->dict_size = p->window;
	if (variant > 0)
		f[k++] = (lzma_filter){ .id = xz_bcj[variant - 1], .options = NULL };
	f[k++] = (lzma_filter){ .id = LZMA_FILTER_LZMA2, .options = opt };
	f[k] = (lzma_filter){ .id = LZMA_VLI_UNKNOWN, .options = NULL };
	mem = lzma_raw_encoder_memusage(f);
	if (mem == UINT64_MAX || mem > SLOTSYNC_DELTA_CODER_MEM_MAX)
		return slotsync_error_set(err, -E2BIG,
					  "xz preset %u%s with a %" PRIu32 " byte dictionary needs %" PRIu64
					  " KiB to compress, over the device's %u KiB",
					  p->level & ~SLOTSYNC_DELTA_XZ_EXTREME,
					  (p->level & SLOTSYNC_DELTA_XZ_EXTREME) ? "e" : "", p->window, mem >> 10,
					  SLOTSYNC_DELTA_CODER_MEM_MAX >> 10);
	return 0;
}

static int64_t xz_compress(const struct slotsync_delta_profile *p, unsigned variant, const void *in, size_t len,
			   void *out, size_t cap, struct slotsync_error *err)
{
	lzma_options_lzma opt;
	lzma_filter f[3];
	size_t n = 0;
	lzma_ret r;
	int rc = xz_filters(p, variant, &opt, f, err);

	if (rc < 0)
		return rc;
	r = lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL, in, len, out, &n, cap);
	if (r == LZMA_OK)
		return (int64_t)n;
	if (r == LZMA_BUF_ERROR)
		return 0;
	return slotsync_error_set(err, r == LZMA_MEM_ERROR ? -ENOMEM : -EIO, "liblzma: encoding failed (%d)", (int)r);
}

static int xz_decompress(const void *in, size_t len, void *out, size_t usize, struct slotsync_error *err)
{
	uint64_t memlimit = SLOTSYNC_DELTA_CODER_MEM_MAX;
	size_t ip = 0, op = 0;
	lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &ip, len, out, &op, usize);

	if (r != LZMA_OK || ip != len || op != usize)
		return slotsync_error_set(err, -EBADMSG,
					  "xz block of %zu bytes does not decompress to %zu bytes (liblzma %d%s)", len, usize,
					  (int)r, r == LZMA_MEMLIMIT_ERROR ? ": needs more memory than allowed" : "");
	return 0;
}
#endif

#if SLOTSYNC_HAVE_LZ4
static int64_t lz4_compress(const struct slotsync_delta_profile *p, const void *in, size_t len, void *out,
			    size_t cap, struct slotsync_error *err)
{
	int n;

	if (len > LZ4_MAX_INPUT_SIZE || cap > INT32_MAX)
		return slotsync_error_set(err, -EINVAL, "lz4 block of %zu bytes", len);
	if (p->level == 0)
		n = LZ4_compress_default(in, out, (int)len, (int)cap);
	else
		n = LZ4_compress_HC(in, out, (int)len, (int)cap, (int)p->level);
	return n < 0 ? 0 : n;
}

static int lz4_decompress(const void *in, size_t len, void *out, size_t usize, struct slotsync_error *err)
{
	int n = len <= INT32_MAX && usize <= INT32_MAX ? LZ4_decompress_safe(in, out, (int)len, (int)usize) : -1;

	if (n < 0 || (size_t)n != usize)
		return slotsync_error_set(err, -EBADMSG, "lz4 block of %zu bytes does not decompress to %zu bytes", len,
					  usize);
	return 0;
}
#endif

static int64_t zstd_compress(struct slotsync_delta_block_coder *bc, unsigned level, const void *in, size_t len,
			     void *out, size_t cap, struct slotsync_error *err)
{
	size_t n;

	if (!bc->zc && !(bc->zc = ZSTD_createCCtx()))
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = ZSTD_compressCCtx(bc->zc, out, cap, in, len, (int)level);
	if (ZSTD_isError(n))
		return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ?
			       0 :
			       slotsync_error_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
	return (int64_t)n;
}

static int zstd_decompress(struct slotsync_delta_block_coder *bc, const void *in, size_t len, void *out,
			   size_t usize, struct slotsync_error *err)
{
	size_t n;

	if (!bc->zd) {
		bc->zd = ZSTD_createDCtx();
		if (!bc->zd)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		ZSTD_DCtx_setParameter(bc->zd, ZSTD_d_windowLogMax, SLOTSYNC_DELTA_FRAME_WINDOW_LOG);
	}
	n = ZSTD_findFrameCompressedSize(in, len);
	if (!ZSTD_isError(n) && n == len)
		n = ZSTD_decompressDCtx(bc->zd, out, usize, in, len);
	else if (!ZSTD_isError(n))
		n = (size_t)-1;
	if (ZSTD_isError(n) || n != usize)
		return slotsync_error_set(err, -EBADMSG, "zstd block of %zu bytes does not decompress to %zu bytes", len,
					  usize);
	return 0;
}

int64_t slotsync_delta_block_compress(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
				      unsigned variant, const void *in, size_t len, void *out, size_t cap,
				      struct slotsync_error *err)
{
	return slotsync_delta_deflate_compress(bc, p, variant, NULL, 0, in, len, out, cap, err);
}

int64_t slotsync_delta_deflate_compress(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
					unsigned variant, const uint32_t *bounds, size_t nb, const void *in, size_t len,
					void *out, size_t cap, struct slotsync_error *err)
{
	int r = slotsync_delta_profile_check(p, err);

	if (r < 0)
		return r == -EBADMSG ? -EINVAL : r;
	if (p->comp == SLOTSYNC_DELTA_COMP_NONE)
		return slotsync_error_set(err, -EINVAL, "no compressor in the profile");
	if (variant >= 32 || !(p->variants & (UINT32_C(1) << variant)))
		return slotsync_error_set(err, -EINVAL, "%s block: variant %u is not one of the profile's (%#" PRIx32 ")",
					  comp_name(p->comp), variant, p->variants);
	if (len > p->block_max)
		return slotsync_error_set(err, -EINVAL, "%s block of %zu bytes, over the profile's %" PRIu32,
					  comp_name(p->comp), len, p->block_max);
	if (nb && p->comp != SLOTSYNC_DELTA_COMP_DEFLATE)
		return slotsync_error_set(err, -EINVAL, "%s blocks have no block lengths", comp_name(p->comp));
	switch (p->comp) {
#if SLOTSYNC_HAVE_ZLIB
	case SLOTSYNC_DELTA_COMP_GZIP:
		return gzip_compress(bc, p, variant, in, len, out, cap, err);
	case SLOTSYNC_DELTA_COMP_DEFLATE:
		return deflate_compress(bc, variant, bounds, nb, in, len, out, cap, err);
#endif
#if SLOTSYNC_HAVE_XZ
	case SLOTSYNC_DELTA_COMP_XZ:
		return xz_compress(p, variant, in, len, out, cap, err);
#endif
#if SLOTSYNC_HAVE_LZ4
	case SLOTSYNC_DELTA_COMP_LZ4:
		return lz4_compress(p, in, len, out, cap, err);
#endif
	case SLOTSYNC_DELTA_COMP_ZSTD:
		return zstd_compress(bc, variant, in, len, out, cap, err);
	default:
		return not_built(p->comp, err);
	}
}

int slotsync_delta_block_decompress(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
				    const void *in, size_t len, void *out, size_t usize, struct slotsync_error *err)
{
	int r = slotsync_delta_profile_check(p, err);

	if (r < 0)
		return r == -EBADMSG ? -EINVAL : r;
	if (usize > p->block_max)
		return slotsync_error_set(err, -EBADMSG, "%s block of %zu bytes, over the profile's %" PRIu32,
					  comp_name(p->comp), usize, p->block_max);
	switch (p->comp) {
#if SLOTSYNC_HAVE_ZLIB
	case SLOTSYNC_DELTA_COMP_GZIP:
		return gzip_decompress(in, len, out, usize, err);
	case SLOTSYNC_DELTA_COMP_DEFLATE:
		return deflate_decompress(in, len, out, usize, err);
#endif
#if SLOTSYNC_HAVE_XZ
	case SLOTSYNC_DELTA_COMP_XZ:
		return xz_decompress(in, len, out, usize, err);
#endif
#if SLOTSYNC_HAVE_LZ4
	case SLOTSYNC_DELTA_COMP_LZ4:
		return lz4_decompress(in, len, out, usize, err);
#endif
	case SLOTSYNC_DELTA_COMP_ZSTD:
		return zstd_decompress(bc, in, len, out, usize, err);
	case SLOTSYNC_DELTA_COMP_NONE:
		return slotsync_error_set(err, -EINVAL, "no compressor in the profile");
	default:
		return not_built(p->comp, err);
	}
}

/* The sample: a splitmix64 stream drives runs of four kinds until the buffer
 * is full (docs/format.md, "The compression sample"; changing it changes the
 * format). */
static uint64_t sample_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void slotsync_delta_sample(uint8_t *out)
{
	static const char *const words[16] = { "the ",   "slot ",  "block ",   "device ", "update ", "image ",
					       "root ",  "chunk ", "index ",   "boot ",   "kernel ", "module ",
					       "file\n", "usr/",   "lib/",     "=1\n" };
	static const uint8_t ops[16] = { 0x48, 0x89, 0x8b, 0x83, 0xc3, 0x55, 0x5d, 0x0f,
					 0x85, 0x84, 0x31, 0xc0, 0x74, 0x75, 0xff, 0x90 };
	const size_t n = SLOTSYNC_DELTA_SAMPLE_BYTES;
	uint64_t s = UINT64_C(0x736c6f7473796e63); /* "slotsync" */
	size_t at = 0;

	while (at < n) {
		uint64_t r = sample_next(&s);
		size_t len, i;
		switch (r & 3) {
		case 0: /* words */
			len = 16 + (size_t)((r >> 8) % 240);
			for (i = 0; i < len && at < n;) {
				const char *w = words[sample_next(&s) & 15];
				for (; *w && at < n; w++, i++)
					out[at++] = (uint8_t)*w;
			}
			break;
		case 1: /* a repeat of earlier bytes */
			len = 4 + (size_t)((r >> 8) % 124);
			if (at == 0) {
				out[at++] = 0;
				break;
			}
			{
				size_t dist = 1 + (size_t)((r >> 16) % (at < 32768 ? at : 32768));
				for (i = 0; i < len && at < n; i++, at++)
					out[at] = out[at - dist];
			}
			break;
		case 2: /* x86-like code: calls and jumps among common opcodes */
			len = 16 + (size_t)((r >> 8) % 256);
			for (i = 0; i < len && at < n; i++) {
				uint64_t q = sample_next(&s);
				if ((q & 7) == 0 || (q & 7) == 1) {
					uint32_t rel = (uint32_t)((q >> 8) % 65536) - 32768;
					out[at++] = (q & 7) == 0 ? 0xe8 : 0xe9;
					for (int b = 0; b < 4 && at < n; b++)
						out[at++] = (uint8_t)(rel >> (8 * b));
				} else
					out[at++] = ops[(q >> 8) & 15];
			}
			break;
		default: /* random bytes */
			len = 1 + (size_t)((r >> 8) % 64);
			for (i = 0; i < len && at < n; i++)
				out[at++] = (uint8_t)(sample_next(&s) >> 56);
			break;
		}
	}
}

/* SHA-256 of the sample compressed with every variant of p, in bit order:
 * the sample is cut in pieces of block_max bytes (the last may be shorter),
 * each compressed into block_max bytes; each gives u32 size (0: it did not
 * fit) then its bytes. */
#define SAMPLE_DEFLATE_BLOCK 4096u

static int sample_digest(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
			 uint8_t digest[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	uint8_t *sample = malloc(SLOTSYNC_DELTA_SAMPLE_BYTES), *buf = malloc(p->block_max), le[4];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r = 0;

	if (!sample || !buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	slotsync_delta_sample(sample);
	for (unsigned v = 0; v < 32; v++) {
		if (!(p->variants & (UINT32_C(1) << v)))
			continue;
		for (size_t at = 0; at < SLOTSYNC_DELTA_SAMPLE_BYTES; at += p->block_max) {
			size_t len = SLOTSYNC_DELTA_SAMPLE_BYTES - at < p->block_max ? SLOTSYNC_DELTA_SAMPLE_BYTES - at :
										       p->block_max;
			/* DEFLATE: a deflate block ended every 4 KiB, as gzip's rule may */
			uint32_t bounds[SLOTSYNC_DELTA_PROFILE_BLOCK_MAX / SAMPLE_DEFLATE_BLOCK];
			size_t nb = 0;
			int64_t n;
			while (p->comp == SLOTSYNC_DELTA_COMP_DEFLATE && (nb + 1) * SAMPLE_DEFLATE_BLOCK < len)
				bounds[nb++] = SAMPLE_DEFLATE_BLOCK;
			n = slotsync_delta_deflate_compress(bc, p, v, bounds, nb, sample + at, len, buf, p->block_max, err);
			if (n < 0) {
				r = (int)n;
				goto out;
			}
			io_put_le32(le, (uint32_t)n);
			if (!EVP_DigestUpdate(md, le, 4) || !EVP_DigestUpdate(md, buf, (size_t)n)) {
				r = slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
				goto out;
			}
		}
	}
	if (!EVP_DigestFinal_ex(md, digest, NULL))
		r = slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
out:
	EVP_MD_CTX_free(md);
	free(sample);
	free(buf);
	return r;
}

int slotsync_delta_profile_seal(struct slotsync_delta_block_coder *bc, struct slotsync_delta_profile *p,
				struct slotsync_error *err)
{
	int r;

	if (p->comp == SLOTSYNC_DELTA_COMP_NONE) {
		memset(p->sample, 0, sizeof(p->sample));
		memset(p->library, 0, sizeof(p->library));
		return 0;
	}
	memset(p->library, 0, sizeof(p->library));
	library_name(p->comp, p->library, sizeof(p->library));
	r = sample_digest(bc, p, p->sample, err);
	return r;
}

int slotsync_delta_profile_probe(struct slotsync_delta_block_coder *bc, const struct slotsync_delta_profile *p,
				 struct slotsync_error *err)
{
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	char here[32];
	int r;

	if (p->comp == SLOTSYNC_DELTA_COMP_NONE)
		return 0;
	r = sample_digest(bc, p, digest, err);
	if (r < 0)
		return r;
	if (memcmp(digest, p->sample, sizeof(digest)) == 0)
		return 0;
	library_name(p->comp, here, sizeof(here));
	return slotsync_error_set(err, -EPROTO, "this device's %s compresses otherwise than the generator's %s", here,
				  p->library[0] ? p->library : "library");
}
