/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the blocks of a squashfs 4.0 image (squashfs.h).  The
 * layout (squashfs_fs.h of squashfs-tools, the kernel's
 * Documentation/filesystems/squashfs.rst): a 96-byte superblock, the
 * compressor options (a metadata block) if flagged, data and fragment blocks,
 * then the inode, directory, fragment, export, id and xattr tables made of
 * metadata blocks (a 2-byte header: size, bit 15 = stored; at most 8 KiB of
 * content), the last four reached through arrays of 64-bit pointers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io.h"
#include "slotsync/features.h"
#include "squashfs.h"

#if defined(SLOTSYNC_HAVE_ZLIB) && SLOTSYNC_HAVE_ZLIB
#include <zlib.h>
#endif
#if defined(SLOTSYNC_HAVE_XZ) && SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif
#if defined(SLOTSYNC_HAVE_LZ4) && SLOTSYNC_HAVE_LZ4
#include <lz4.h>
#endif

#define SB_BYTES 96u
#define DATA_STORED (1u << 24)
#define META_STORED 0x8000u
#define NONE UINT64_MAX
#define INODE_TABLE_MAX (256u << 20)     /* inode table content decompressed */

const char *squashfs_comp_name(uint8_t comp)
{
	switch (comp) {
	case 1: return "gzip";
	case 2: return "lzma";
	case 3: return "lzo";
	case 4: return "xz";
	case 5: return "lz4";
	case 6: return "zstd";
	case SQFS_DEFLATE: return "deflate";
	default: return "unknown";
	}
}

int64_t squashfs_decompress(uint8_t comp, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	switch (comp) {
#if defined(SLOTSYNC_HAVE_ZLIB) && SLOTSYNC_HAVE_ZLIB
	case SQFS_GZIP: {
		uLongf n = (uLongf)cap;
		if (len > UINT32_MAX || uncompress(out, &n, in, (uLong)len) != Z_OK)
			return -1;
		return (int64_t)n;
	}
	case SQFS_DEFLATE: {
		size_t nb = 0;
		return members_expand(in, len, out, cap, NULL, &nb, 0);
	}
#endif
#if defined(SLOTSYNC_HAVE_XZ) && SLOTSYNC_HAVE_XZ
	case SQFS_XZ: {
		uint64_t memlimit = 64u << 20;
		size_t ip = 0, op = 0;
		if (lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &ip, len, out, &op, cap) != LZMA_OK || ip != len)
			return -1;
		return (int64_t)op;
	}
#endif
#if defined(SLOTSYNC_HAVE_LZ4) && SLOTSYNC_HAVE_LZ4
	case SQFS_LZ4: {
		int n;
		if (len > INT32_MAX || cap > INT32_MAX)
			return -1;
		n = LZ4_decompress_safe((const char *)in, (char *)out, (int)len, (int)cap);
		return n < 0 ? -1 : n;
	}
#endif
	case SQFS_ZSTD: {
		size_t n = ZSTD_decompress(out, cap, in, len);
		return ZSTD_isError(n) ? -1 : (int64_t)n;
	}
	default:
		return -1;
	}
}

struct scan {
	const uint8_t *p;
	uint64_t size;
	struct sqfs_info *s;
	size_t cap;
	int oom;
};

static void add_block(struct scan *sc, uint64_t off, uint32_t csize, uint32_t usize, int stored, int meta)
{
	struct sqfs_info *s = sc->s;

	if (!csize || off > sc->size || csize > sc->size - off)
		return;
	if (s->n_blocks == sc->cap) {
		size_t nc = sc->cap ? sc->cap * 2 : 1024;
		struct sqfs_block *g = realloc(s->blocks, nc * sizeof(*g));
		if (!g) {
			sc->oom = 1;
			return;
		}
		s->blocks = g;
		sc->cap = nc;
	}
	s->blocks[s->n_blocks++] = (struct sqfs_block){ off, csize, usize, (uint8_t)!!stored, (uint8_t)!!meta };
}

/* The metadata block at off (before end): lists it and, if buf, appends its
 * content to buf (*len of cap bytes).  Returns where the next one starts, or
 * NONE if there is no valid block there. */
static uint64_t meta_block(struct scan *sc, uint64_t off, uint64_t end, uint8_t *buf, size_t *len, size_t cap)
{
	uint16_t h;
	uint32_t n;

	if (end > sc->size)
		end = sc->size;
	if (off >= end || end - off < 3)
		return NONE;
	h = io_get_le16(sc->p + off);
	n = h & 0x7fffu;
	if (n == 0 || n > SQFS_META_MAX || n > end - off - 2)
		return NONE;
	add_block(sc, off + 2, n, 0, h & META_STORED, 1);
	if (buf) {
		int64_t got;
		if (cap - *len < SQFS_META_MAX)
			return NONE;
		if (h & META_STORED) {
			memcpy(buf + *len, sc->p + off + 2, n);
			got = n;
		} else
			got = squashfs_decompress(sc->s->comp, sc->p + off + 2, n, buf + *len, SQFS_META_MAX);
		if (got <= 0)
			return NONE;
		*len += (size_t)got;
	}
	return off + 2 + n;
}

/* A table reached through an array of `count` pointers at `start`: lists its
 * blocks and, if buf, gathers their content. */
static void indexed_table(struct scan *sc, uint64_t start, uint64_t count, uint8_t *buf, size_t *len, size_t cap)
{
	if (start == NONE || start > sc->size || count > (sc->size - start) / 8)
		return;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t at = io_get_le64(sc->p + start + 8 * i);
		if (meta_block(sc, at, sc->size, buf, len, cap) == NONE)
			return;
	}
}

static int cmp_block(const void *a, const void *b)
{
	const struct sqfs_block *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->csize < y->csize ? -1 : x->csize > y->csize;
}

/* The data blocks of the regular files in the inode table's content. */
static void file_blocks(struct scan *sc, const uint8_t *t, size_t len, uint32_t inodes, uint32_t bs)
{
	size_t at = 0;

	for (uint32_t i = 0; i < inodes && at + 16 <= len; i++) {
		uint16_t type = io_get_le16(t + at);
		uint64_t start, fsize, nb;
		uint32_t frag;
		size_t q = at + 16;
		switch (type) {
		case 1: /* directory */
			at += 32;
			continue;
		case 2: /* regular file */
			if (q + 16 > len)
				return;
			start = io_get_le32(t + q);
			frag = io_get_le32(t + q + 4);
			fsize = io_get_le32(t + q + 12);
			q += 16;
			break;
		case 3: case 10: { /* symlink */
			uint32_t n;
			if (q + 8 > len)
				return;
			n = io_get_le32(t + q + 4);
			if (n > len - q - 8)
				return;
			at = q + 8 + n + (type == 10 ? 4 : 0);
			continue;
		}
		case 4: case 5: at = q + 8; continue;
		case 6: case 7: at = q + 4; continue;
		case 8: { /* extended directory */
			uint16_t nidx;
			if (q + 24 > len)
				return;
			nidx = io_get_le16(t + q + 16);
			q += 24;
			for (uint16_t k = 0; k < nidx; k++) {
				uint32_t nl;
				if (q + 12 > len)
					return;
				nl = io_get_le32(t + q + 8);
				if (nl >= len - q - 12)
					return;
				q += 12 + nl + 1;
			}
			at = q;
			continue;
		}
		case 9: /* extended regular file */
			if (q + 40 > len)
				return;
			start = io_get_le64(t + q);
			fsize = io_get_le64(t + q + 8);
			frag = io_get_le32(t + q + 28);
			q += 40;
			break;
		case 11: case 12: at = q + 12; continue;
		case 13: case 14: at = q + 8; continue;
		default:
			return;  /* not an inode: the rest cannot be read */
		}
		nb = frag == UINT32_MAX ? (fsize + bs - 1) / bs : fsize / bs;
		if (nb > (len - q) / 4)
			return;
		for (uint64_t k = 0; k < nb; k++) {
			uint32_t e = io_get_le32(t + q + 4 * k), c = e & ~DATA_STORED;
			uint64_t u = fsize - k * bs < bs ? fsize - k * bs : bs;
			if (e == 0)
				continue;  /* sparse */
			if (c > bs || start > sc->size)
				break;
			add_block(sc, start, c, (uint32_t)u, e & DATA_STORED, 0);
			start += c;
		}
		at = q + 4 * nb;
	}
}

int squashfs_scan(const uint8_t *p, uint64_t size, struct sqfs_info *out, struct slotsync_error *err)
{
	struct scan sc = { .p = p, .size = size, .s = out };
	uint64_t inode_start, dir_start, frag_start, lookup_start, id_start, xattr_start, used, dir_end, e;
	uint32_t inodes, fragments, bs;
	uint16_t ids, block_log, major;
	uint8_t *buf = NULL;
	size_t cap;

	memset(out, 0, sizeof(*out));
	if (size < SB_BYTES || memcmp(p, "hsqs", 4) != 0)
		return slotsync_error_set(err, -EINVAL, "not a squashfs image (no hsqs magic)");
	inodes = io_get_le32(p + 4);
	bs = io_get_le32(p + 12);
	fragments = io_get_le32(p + 16);
	out->comp = (uint8_t)io_get_le16(p + 20);
	block_log = io_get_le16(p + 22);
	out->flags = io_get_le16(p + 24);
	ids = io_get_le16(p + 26);
	major = io_get_le16(p + 28);
	used = io_get_le64(p + 40);
	id_start = io_get_le64(p + 48);
	xattr_start = io_get_le64(p + 56);
	inode_start = io_get_le64(p + 64);
	dir_start = io_get_le64(p + 72);
	frag_start = io_get_le64(p + 80);
	lookup_start = io_get_le64(p + 88);
	if (major != 4 || io_get_le16(p + 20) > 6 || io_get_le16(p + 20) == 0)
		return slotsync_error_set(err, -EINVAL, "not a squashfs 4.0 image with a known compressor");
	if (block_log < 12 || block_log > 20 || bs != 1u << block_log)
		return slotsync_error_set(err, -EINVAL, "squashfs block size %u is not valid", bs);
	if (used > size || inode_start > dir_start || dir_start > used)
		return slotsync_error_set(err, -EINVAL, "squashfs tables lie outside the image");
	out->block_size = bs;
	if (out->flags & SQFS_FLAG_COMP_OPT) {
		uint16_t h;
		if (size < SB_BYTES + 2 + 4)
			return slotsync_error_set(err, -EINVAL, "squashfs compressor options are cut short");
		h = io_get_le16(p + SB_BYTES);
		/* mksquashfs stores them uncompressed */
		if ((h & META_STORED) && (h & 0x7fffu) >= 4 && (h & 0x7fffu) <= 64 &&
		    SB_BYTES + 2 + (h & 0x7fffu) <= size) {
			size_t n = h & 0x7fffu;
			out->has_opts = 1;
			out->opt[0] = io_get_le32(p + SB_BYTES + 2);
			out->opt[1] = n >= 8 ? io_get_le32(p + SB_BYTES + 6) : 0;
			add_block(&sc, SB_BYTES + 2, (uint32_t)n, (uint32_t)n, 1, 1);
		}
	}
	cap = INODE_TABLE_MAX;
	buf = malloc(SQFS_META_MAX * 2);
	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	/* the inode table, gathered (grown as it is read) */
	{
		uint8_t *t = NULL;
		size_t tcap = 0, tl = 0;
		for (uint64_t off = inode_start; off < dir_start && off != NONE;) {
			if (tcap - tl < SQFS_META_MAX) {
				size_t nc = tcap ? tcap * 2 : (1u << 20);
				uint8_t *g = nc <= cap ? realloc(t, nc) : NULL;
				if (!g) {
					sc.oom = nc <= cap;
					break;
				}
				t = g;
				tcap = nc;
			}
			off = meta_block(&sc, off, dir_start, t, &tl, tcap);
		}
		if (t)
			file_blocks(&sc, t, tl, inodes, bs);
		free(t);
	}
	/* the directory table ends where the next table begins */
	dir_end = used;
	{
		uint64_t cands[] = { frag_start, lookup_start, id_start, xattr_start, NONE, NONE, NONE, NONE };
		if (frag_start != NONE && frag_start + 8 <= size && fragments)
			cands[4] = io_get_le64(p + frag_start);
		if (lookup_start != NONE && lookup_start + 8 <= size)
			cands[5] = io_get_le64(p + lookup_start);
		if (id_start != NONE && id_start + 8 <= size)
			cands[6] = io_get_le64(p + id_start);
		if (xattr_start != NONE && xattr_start + 8 <= size)
			cands[7] = io_get_le64(p + xattr_start);
		for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
			if (cands[i] > dir_start && cands[i] < dir_end)
				dir_end = cands[i];
	}
	for (uint64_t off = dir_start; off < dir_end && off != NONE;)
		off = meta_block(&sc, off, dir_end, NULL, NULL, 0);
	/* the fragment table: its blocks and the fragment blocks it lists */
	if (frag_start != NONE && fragments) {
		uint64_t nblk = ((uint64_t)fragments * 16 + SQFS_META_MAX - 1) / SQFS_META_MAX;
		if (frag_start <= size && nblk <= (size - frag_start) / 8)
			for (uint64_t i = 0; i < nblk; i++) {
				size_t bl = 0;
				uint64_t at = io_get_le64(p + frag_start + 8 * i);
				if (meta_block(&sc, at, size, buf, &bl, SQFS_META_MAX * 2) == NONE)
					break;
				for (size_t k = 0; k + 16 <= bl && i * 512 + k / 16 < fragments; k += 16) {
					uint32_t sz = io_get_le32(buf + k + 8);
					add_block(&sc, io_get_le64(buf + k), sz & ~DATA_STORED, 0, sz & DATA_STORED, 0);
				}
			}
	}
	/* export, id and xattr tables */
	if (lookup_start != NONE)
		indexed_table(&sc, lookup_start, ((uint64_t)inodes * 8 + SQFS_META_MAX - 1) / SQFS_META_MAX, NULL, NULL, 0);
	indexed_table(&sc, id_start, ((uint64_t)ids * 4 + SQFS_META_MAX - 1) / SQFS_META_MAX, NULL, NULL, 0);
	if (xattr_start != NONE && xattr_start <= size && size - xattr_start >= 16) {
		uint64_t kv = io_get_le64(p + xattr_start), n = io_get_le32(p + xattr_start + 8);
		uint64_t nblk = (n * 16 + SQFS_META_MAX - 1) / SQFS_META_MAX;
		e = n && size - xattr_start >= 24 ? io_get_le64(p + xattr_start + 16) : xattr_start;
		for (uint64_t off = kv; off < e && off != NONE;)
			off = meta_block(&sc, off, e, NULL, NULL, 0);
		indexed_table(&sc, xattr_start + 16, nblk, NULL, NULL, 0);
	}
	free(buf);
	if (sc.oom) {
		squashfs_info_free(out);
		return slotsync_error_set(err, -ENOMEM, "out of memory listing the squashfs blocks");
	}
	/* by offset; duplicates (files sharing blocks) and overlaps dropped */
	if (out->n_blocks) {
		size_t k = 0;
		qsort(out->blocks, out->n_blocks, sizeof(*out->blocks), cmp_block);
		for (size_t i = 0; i < out->n_blocks; i++) {
			const struct sqfs_block *b = &out->blocks[i];
			if (k && b->off < out->blocks[k - 1].off + out->blocks[k - 1].csize)
				continue;
			out->blocks[k++] = *b;
		}
		out->n_blocks = k;
	}
	return 0;
}

void squashfs_info_free(struct sqfs_info *s)
{
	free(s->blocks);
	s->blocks = NULL;
	s->n_blocks = 0;
}
