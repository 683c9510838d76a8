/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A device whose compressor compresses otherwise (LD_PRELOAD), for the delta
 * codec tests: zlib's deflateInit2_ (and
 * deflateParams) another level, liblzma's
 * lzma_stream_buffer_encode another preset for its LZMA2 filter, liblz4's
 * LZ4_compress_HC another level, libzstd's ZSTD_compressCCtx another level.
 * Data stays valid (it decompresses the same); only the compressed bytes
 * differ, as with zlib-ng or another liblzma.
 * SLOTSYNC_COMPSHIM_ONLY=zlib (or xz, lz4, zstd) changes that library alone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* whether library `lib` compresses otherwise */
static int shimmed(const char *lib)
{
	const char *only = getenv("SLOTSYNC_COMPSHIM_ONLY");

	return !only || !*only || strcmp(only, lib) == 0;
}

#if __has_include(<zlib.h>)
#include <zlib.h>
int deflateInit2_(z_streamp strm, int level, int method, int window_bits, int mem_level, int strategy,
		  const char *version, int stream_size)
{
	int (*real)(z_streamp, int, int, int, int, int, const char *, int) =
		(int (*)(z_streamp, int, int, int, int, int, const char *, int))dlsym(RTLD_NEXT, "deflateInit2_");

	if (!shimmed("zlib"))
		return real(strm, level, method, window_bits, mem_level, strategy, version, stream_size);
	return real(strm, level == 1 ? 2 : 1, method, window_bits, mem_level, strategy, version, stream_size);
}

/* a stream kept for the next block gets its level here */
int deflateParams(z_streamp strm, int level, int strategy)
{
	int (*real)(z_streamp, int, int) = (int (*)(z_streamp, int, int))dlsym(RTLD_NEXT, "deflateParams");

	return real(strm, shimmed("zlib") ? (level == 1 ? 2 : 1) : level, strategy);
}
#endif

#if __has_include(<lzma.h>)
#include <lzma.h>
lzma_ret lzma_stream_buffer_encode(lzma_filter *filters, lzma_check check, const lzma_allocator *allocator,
				   const uint8_t *in, size_t in_size, uint8_t *out, size_t *out_pos, size_t out_size)
{
	lzma_ret (*real)(lzma_filter *, lzma_check, const lzma_allocator *, const uint8_t *, size_t, uint8_t *, size_t *,
			 size_t) = (lzma_ret(*)(lzma_filter *, lzma_check, const lzma_allocator *, const uint8_t *, size_t,
						 uint8_t *, size_t *, size_t))dlsym(RTLD_NEXT, "lzma_stream_buffer_encode");
	lzma_filter f[LZMA_FILTERS_MAX + 1];
	lzma_options_lzma o;

	if (!shimmed("xz"))
		return real(filters, check, allocator, in, in_size, out, out_pos, out_size);
	for (size_t i = 0; i <= LZMA_FILTERS_MAX; i++) {
		f[i] = filters[i];
		if (filters[i].id == LZMA_FILTER_LZMA2 && filters[i].options) {
			uint32_t dict = ((const lzma_options_lzma *)filters[i].options)->dict_size;
			lzma_lzma_preset(&o, 1);
			o.dict_size = dict;
			f[i].options = &o;
		}
		if (filters[i].id == LZMA_VLI_UNKNOWN)
			break;
	}
	return real(f, check, allocator, in, in_size, out, out_pos, out_size);
}
#endif

#if __has_include(<lz4hc.h>)
#include <lz4hc.h>
int LZ4_compress_HC(const char *src, char *dst, int src_size, int dst_capacity, int level)
{
	int (*real)(const char *, char *, int, int, int) =
		(int (*)(const char *, char *, int, int, int))dlsym(RTLD_NEXT, "LZ4_compress_HC");

	return real(src, dst, src_size, dst_capacity, shimmed("lz4") ? (level == 3 ? 4 : 3) : level);
}
#endif

#if __has_include(<zstd.h>)
#include <zstd.h>
size_t ZSTD_compressCCtx(ZSTD_CCtx *cctx, void *dst, size_t cap, const void *src, size_t size, int level)
{
	size_t (*real)(ZSTD_CCtx *, void *, size_t, const void *, size_t, int) =
		(size_t(*)(ZSTD_CCtx *, void *, size_t, const void *, size_t, int))dlsym(RTLD_NEXT, "ZSTD_compressCCtx");

	return real(cctx, dst, cap, src, size, shimmed("zstd") ? (level == 1 ? 3 : 1) : level);
}
#endif
