/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: what a device takes apart of delta objects.  The first
 * byte selects:
 *   0  the rest is a delta index file (.sdix): load it, or refuse it;
 *   1  the rest is a reference: expand it (zstd frames in it replaced by their
 *      content), within the limit;
 *   2  the rest is the records of a ZSTD_FRAMES object (wrapped in a zstd
 *      frame here, as the object file holds them), decoded against a
 *      reference that holds one zstd frame, into an output of the size the
 *      second byte picks;
 *   3  a BLOCKS object: the second byte picks the output size and the
 *      compressor (gzip, xz, lz4, deflate, zstd: deflate's block records carry
 *      their deflate block lengths), the next two the length L of the map; L
 *      bytes of map and the records follow, each wrapped in a zstd frame
 *      here; the reference holds one block of that compressor;
 *   4  the rest is a delta index as serialized (SSDELTA1, 2 or 3),
 *      parsed without the zstd frame around it;
 *   5  a BLOCKS object with residual records: the second byte picks the
 *      output size and the compressor; the map (made here, flagged residual)
 *      names the reference's block; the rest is the residual records (count,
 *      alignments, length, selectors, residual), wrapped in a zstd frame;
 *   6  records as an xz stream: the second byte picks the output size and
 *      the object (even: ZSTD_FRAMES; odd: BLOCKS of the five compressors,
 *      its map naming the reference's block); the rest is the records,
 *      coded here as one .xz stream (x86 BCJ, LZMA2), as the generator codes
 *      new content;
 *   7  the rest is the records of a ZSTD_FRAMES object as sent: any bytes
 *      after the .xz magic, which liblzma takes apart within the memory
 *      limit;
 *   8  a BLOCKS object with an inner deflate profile: the second byte picks
 *      the output size and the compressor (gzip, xz, lz4, zstd), the third the
 *      inflated size the map gives the gzip file's deflate stream inside the
 *      reference's block (128: the right one); the map (made here, flagged
 *      with inner streams) names the block and that stream; the rest is the
 *      records (nested block records among them), wrapped in a zstd frame.
 * Every input must give a result or a clean error, never a crash, a read or
 * write out of bounds, or more memory than the limits allow. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "slotsync/delta.h"
#include "slotsync/features.h"

#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The map of a BLOCKS object naming the one block of a reference of ref_len
 * bytes ("head", the block, "tail"), n's flags set, as a zstd frame into z;
 * returns its size. */
static size_t block_map(uint8_t *z, uint32_t flags, size_t ref_len)
{
	uint8_t map[16];
	size_t a;

	put_le32(map, 1u | flags);
	put_le32(map + 4, 4);
	put_le32(map + 8, (uint32_t)(ref_len - 8));
	put_le32(map + 12, 8192);
	a = ZSTD_compress(z, ZSTD_compressBound(1u << 16), map, sizeof(map), 1);
	if (ZSTD_isError(a))
		abort();
	return a;
}

/* n bytes at p as a zstd frame at z + a; returns where it ends. */
static size_t frame_at(uint8_t *z, size_t a, const uint8_t *p, size_t n)
{
	size_t b = ZSTD_compress(z + a, ZSTD_compressBound(1u << 16) - a, p, n, 1);

	if (ZSTD_isError(b))
		abort();
	return a + b;
}

/* The first variant of a profile (zstd's is a level) */
#define VARIANT0(p) ((unsigned)__builtin_ctz((p)->variants))
#define NPROF 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct slotsync_delta_decoder *dec;
	static ZSTD_DCtx *dc;
	static uint8_t *xref, *out, *z, ref[4096], bref[NPROF][4096];
	static size_t ref_len, bref_len[NPROF], nref_len[NPROF], nstream;
	static uint8_t nref[NPROF][8192];
	static struct slotsync_delta_profile iprof = { .comp = SLOTSYNC_DELTA_COMP_DEFLATE, .level = 0, .window = 15,
						       .variants = 0x3, .block_max = 8192 };
	static struct slotsync_delta_profile prof[NPROF] = {
		{ .comp = SLOTSYNC_DELTA_COMP_GZIP, .level = 1, .window = 15, .variants = 0x1f, .block_max = 8192 },
		{ .comp = SLOTSYNC_DELTA_COMP_XZ, .level = 0, .window = 8192, .variants = 0x7f, .block_max = 8192 },
		{ .comp = SLOTSYNC_DELTA_COMP_LZ4, .level = 0, .window = 0, .variants = 1, .block_max = 8192 },
		{ .comp = SLOTSYNC_DELTA_COMP_DEFLATE, .level = 0, .window = 15, .variants = 0xc3, .block_max = 8192 },
		{ .comp = SLOTSYNC_DELTA_COMP_ZSTD, .level = 0, .window = 0, .variants = 1u << 3, .block_max = 8192 },
	};
	struct slotsync_error err = { 0 };

	if (!dec) {
		uint8_t content[8192];
		dec = slotsync_delta_decoder_new();
		dc = ZSTD_createDCtx();
		xref = malloc(SLOTSYNC_DELTA_XREF_MAX);
		out = malloc(SLOTSYNC_DELTA_OUT_MAX);
		z = malloc(ZSTD_compressBound(1u << 16));
		for (size_t i = 0; i < sizeof(content); i++)
			content[i] = (uint8_t)("slotsync "[i % 9] + i / 997);
		memcpy(ref, "head", 4);
		ref_len = 4 + ZSTD_compress(ref + 4, sizeof(ref) - 8, content, sizeof(content), 15);
		memcpy(ref + ref_len, "tail", 4);
		ref_len += 4;
		for (int k = 0; k < NPROF; k++) {
			struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
			int64_t n;
			memcpy(bref[k], "head", 4);
			n = bc ? slotsync_delta_block_compress(bc, &prof[k], VARIANT0(&prof[k]), content, sizeof(content), bref[k] + 4,
							       sizeof(bref[k]) - 8, &err) : -1;
			if (n <= 0)
				abort();
			memcpy(bref[k] + 4 + n, "tail", 4);
			bref_len[k] = 8 + (size_t)n;
			slotsync_delta_block_coder_free(bc);
		}
		if (!dec || !dc || !xref || !out || !z)
			abort();
#if SLOTSYNC_HAVE_ZLIB
		/* blocks holding a gzip file: 100 bytes, its deflate stream, more */
		{
			struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
			uint8_t c2[8192];
			int64_t n = bc ? slotsync_delta_deflate_compress(bc, &iprof, 1, NULL, 0, content, 6000, c2 + 100,
									 sizeof(c2) - 100, &err)
				       : -1;
			if (n <= 0 || n > 4000)
				abort();
			nstream = (size_t)n;
			memcpy(c2, content + 6000, 100);
			memcpy(c2 + 100 + nstream, content, sizeof(c2) - 100 - nstream);
			for (int k = 0; k < NPROF; k++) {
				if (k == 3) /* not inside deflate streams */
					continue;
				memcpy(nref[k], "head", 4);
				n = slotsync_delta_block_compress(bc, &prof[k], VARIANT0(&prof[k]), c2, sizeof(c2), nref[k] + 4,
								  sizeof(nref[k]) - 8, &err);
				if (n <= 0)
					abort();
				memcpy(nref[k] + 4 + n, "tail", 4);
				nref_len[k] = 8 + (size_t)n;
			}
			slotsync_delta_block_coder_free(bc);
		}
#endif
	}
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0: {
		struct slotsync_delta_index *d = NULL;
		if (slotsync_delta_index_load(data + 1, size - 1, &d, &err) == 0)
			slotsync_delta_index_free(d);
		break;
	}
	case 1:
		if (slotsync_delta_expand(dc, data + 1, size - 1, xref, SLOTSYNC_DELTA_XREF_MAX) > SLOTSYNC_DELTA_XREF_MAX)
			abort();
		break;
	case 2: {
		size_t n, out_len;
		if (size < 2 || size - 2 > (1u << 16))
			return 0;
		out_len = (size_t)data[1] * 997 + 1;
		n = ZSTD_compress(z, ZSTD_compressBound(1u << 16), data + 2, size - 2, 1);
		if (ZSTD_isError(n))
			abort();
		slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, n, ref, ref_len, out, out_len, &err);
		break;
	}
	case 3: {
		size_t out_len, l, a, b;
		unsigned k;
		if (size < 4 || size - 4 > (1u << 16))
			return 0;
		k = data[1] % NPROF;
		out_len = (size_t)data[1] * 997 + 1;
		l = (size_t)data[2] | (size_t)data[3] << 8;
		if (l > size - 4)
			return 0;
		a = frame_at(z, 0, data + 4, l);
		b = frame_at(z, a, data + 4 + l, size - 4 - l);
		slotsync_delta_decoder_set_profile(dec, &prof[k]);
		slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, z, b, bref[k], bref_len[k], out, out_len, &err);
		break;
	}
	case 5: {
		size_t out_len, a, b;
		unsigned k;
		if (size < 2 || size - 2 > (1u << 16))
			return 0;
		k = data[1] % NPROF;
		out_len = (size_t)data[1] * 997 + 1;
		a = block_map(z, SLOTSYNC_DELTA_MAP_RESIDUAL, bref_len[k]);
		b = frame_at(z, a, data + 2, size - 2);
		slotsync_delta_decoder_set_profile(dec, &prof[k]);
		slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, z, b, bref[k], bref_len[k], out, out_len, &err);
		break;
	}
	case 6: {
#if SLOTSYNC_HAVE_XZ
		lzma_options_lzma o;
		lzma_filter f[3] = { { .id = LZMA_FILTER_X86 }, { .id = LZMA_FILTER_LZMA2, .options = &o },
				     { .id = LZMA_VLI_UNKNOWN } };
		size_t out_len, a = 0, pos = 0;
		unsigned k;
		if (size < 2 || size - 2 > (1u << 16) || lzma_lzma_preset(&o, 0))
			return 0;
		k = (data[1] >> 1) % NPROF;
		out_len = (size_t)data[1] * 997 + 1;
		if (data[1] & 1)
			a = block_map(z, 0, bref_len[k]);
		o.dict_size = 1u << 16;
		if (lzma_stream_buffer_encode(f, LZMA_CHECK_NONE, NULL, data + 2, size - 2, z + a,
					      &pos, ZSTD_compressBound(1u << 16) - a) != LZMA_OK)
			abort();
		if (data[1] & 1) {
			slotsync_delta_decoder_set_profile(dec, &prof[k]);
			slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, z, a + pos, bref[k], bref_len[k], out, out_len,
					      &err);
		} else
			slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, pos, ref, ref_len, out, out_len, &err);
#endif
		break;
	}
	case 7: {
		static const uint8_t magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };
		if (size - 1 > (1u << 16))
			return 0;
		memcpy(z, magic, sizeof(magic));
		memcpy(z + sizeof(magic), data + 1, size - 1);
		slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, sizeof(magic) + size - 1, ref, ref_len, out,
				      SLOTSYNC_DELTA_OUT_MAX, &err);
		break;
	}
	case 8: {
#if SLOTSYNC_HAVE_ZLIB
		uint8_t map[32];
		size_t out_len, a, b;
		unsigned k;
		if (size < 3 || size - 3 > (1u << 16))
			return 0;
		k = data[1] % 4;
		k = k == 3 ? 4 : k; /* gzip, xz, lz4, zstd */
		out_len = (size_t)data[1] * 997 + 1;
		put_le32(map, 1u | SLOTSYNC_DELTA_MAP_INNER);
		put_le32(map + 4, 4);
		put_le32(map + 8, (uint32_t)(nref_len[k] - 8));
		put_le32(map + 12, 8192);
		put_le32(map + 16, 1);
		put_le32(map + 20, 4 + 100);
		put_le32(map + 24, (uint32_t)nstream);
		put_le32(map + 28, 6000u + data[2] - 128u);
		a = frame_at(z, 0, map, sizeof(map));
		b = frame_at(z, a, data + 3, size - 3);
		slotsync_delta_decoder_set_profile(dec, &prof[k]);
		slotsync_delta_decoder_set_inner_profile(dec, &iprof);
		slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, z, b, nref[k], nref_len[k], out, out_len, &err);
		slotsync_delta_decoder_set_inner_profile(dec, NULL);
#endif
		break;
	}
	case 4: {
		struct slotsync_delta_index *d = NULL;
		if (slotsync_delta_index_parse(data + 1, size - 1, &d, &err) == 0)
			slotsync_delta_index_free(d);
		break;
	}
	default:
		break;
	}
	return 0;
}
