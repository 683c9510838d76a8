/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: what a squashfs image is made of, for the BLOCKS codec.
 * squashfs_scan() reads the superblock and the compressor options and lists
 * every compressed block of the image: the data blocks of regular files (from
 * the inode table), the fragment blocks (from the fragment table) and the
 * metadata blocks of every table.  It trusts nothing in the image: anything
 * out of bounds or inconsistent ends that part of the listing, and an image
 * that is not squashfs 4.0 is refused.  Not installed. */
#ifndef SLOTSYNC_GEN_SQUASHFS_H
#define SLOTSYNC_GEN_SQUASHFS_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"

#define SQFS_GZIP 1
#define SQFS_LZO 3
#define SQFS_XZ 4
#define SQFS_LZ4 5
#define SQFS_ZSTD 6
/* Not a squashfs compressor: the raw deflate streams of gzip files in an
 * image whose blocks are not compressed (members.c), listed as blocks. */
#define SQFS_DEFLATE 16
#define SQFS_META_MAX 8192u              /* content of a metadata block */
#define SQFS_FLAG_COMP_OPT 0x0400u

struct sqfs_block {
	uint64_t off;        /* its compressed (or stored) bytes in the image */
	uint32_t csize;      /* their count */
	uint32_t usize;      /* its content's size; 0: not known before it is decompressed */
	uint8_t stored;      /* kept uncompressed by mksquashfs */
	uint8_t meta;        /* a metadata block (2-byte header before off) */
};

struct sqfs_info {
	uint8_t comp;        /* squashfs compressor id */
	uint32_t block_size;
	uint16_t flags;
	int has_opts;        /* compressor options stored in the image */
	uint32_t opt[2];     /* their two first fields (gzip: level, window | strategy << 16;
			        xz: dictionary size, filters; lz4: version, flags; zstd: level) */
	struct sqfs_block *blocks;   /* by offset, not overlapping */
	size_t n_blocks;
};

/* Lists the blocks of image p (size bytes).  Returns 0, -EINVAL if it is not
 * a squashfs 4.0 image (err says why), -ENOMEM. */
int squashfs_scan(const uint8_t *p, uint64_t size, struct sqfs_info *out, struct slotsync_error *err);
void squashfs_info_free(struct sqfs_info *s);
/* Decompresses a block of compressor comp into out (cap bytes): returns its
 * content's size, or -1 (an error, too large, or a compressor not built in). */
int64_t squashfs_decompress(uint8_t comp, const uint8_t *in, size_t len, uint8_t *out, size_t cap);
/* The raw deflate streams of the gzip files (members) in p[0..size), each
 * whole and checked (its CRC-32 and size), whose content is at most
 * usize_max bytes, as blocks of SQFS_DEFLATE (off and csize: the deflate
 * stream; usize: its content); block_size is the largest content.  Returns 0
 * or -ENOMEM (members.c). */
int members_scan(const uint8_t *p, uint64_t size, uint32_t usize_max, struct sqfs_info *out);
/* The same, inflating into the caller's buf (usize_max bytes; its content is
 * lost) instead of a buffer of its own: for scans in a hot path. */
int members_scan_buf(const uint8_t *p, uint64_t size, uint32_t usize_max, uint8_t *buf, struct sqfs_info *out);
/* Inflates a raw deflate stream into out (cap bytes), its block lengths into
 * bounds (the lengths of every block but the last; at most nb_max): returns
 * the content's size, or -1 (an error, too large, too many blocks). */
int64_t members_expand(const uint8_t *in, size_t len, uint8_t *out, size_t cap, uint32_t *bounds, size_t *nb,
		       size_t nb_max);
/* Compressor name ("gzip", "xz", ...) for messages. */
const char *squashfs_comp_name(uint8_t comp);

#endif
