/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: the gzip files inside an image whose own blocks are not
 * compressed (squashfs.h, members_scan()).  A changed man page or changelog
 * differs from its old one in a few bytes of its content, but its deflate
 * stream differs from the first changed byte on: to the bytes, a whole new
 * file.  Listed as blocks of SQFS_DEFLATE, they go through the BLOCKS codec
 * (blocks_gen.c): the base's streams expanded in the reference, the new ones
 * recorded as their content, which the device compresses again block by block
 * (slotsync_delta_deflate_compress()).
 *
 * A member (RFC 1952): 1f 8b 08, flags, mtime, xfl, os, the optional fields
 * the flags name, a raw deflate stream, CRC-32 and size of the content. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "slotsync/features.h"
#include "squashfs.h"

#if defined(SLOTSYNC_HAVE_ZLIB) && SLOTSYNC_HAVE_ZLIB
#include <zlib.h>

#define FHCRC 0x02u
#define FEXTRA 0x04u
#define FNAME 0x08u
#define FCOMMENT 0x10u

int64_t members_expand(const uint8_t *in, size_t len, uint8_t *out, size_t cap, uint32_t *bounds, size_t *nb,
		       size_t nb_max)
{
	z_stream s;
	uint64_t last = 0;
	int r;

	*nb = 0;
	if (len > UINT32_MAX || cap > UINT32_MAX)
		return -1;
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, -15) != Z_OK)
		return -1;
	s.next_in = (Bytef *)(uintptr_t)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)cap;
	for (;;) {
		/* Z_BLOCK stops after each end-of-block code (data_type bit 7;
		 * bit 6: that of the last block, the stream's end) */
		r = inflate(&s, bounds ? Z_BLOCK : Z_FINISH);
		if (r != Z_OK)
			break;
		if (!bounds)
			break;  /* a full output makes the next call fail: Z_BUF_ERROR */
		if ((s.data_type & 128) && !(s.data_type & 64) && s.total_out > last) {
			if (*nb == nb_max)
				break;
			bounds[(*nb)++] = (uint32_t)(s.total_out - last);
			last = s.total_out;
		} else if (!(s.data_type & 128) && s.avail_in == 0)
			break;
	}
	if (r != Z_STREAM_END || s.avail_in != 0) {
		inflateEnd(&s);
		return -1;
	}
	inflateEnd(&s);
	return (int64_t)s.total_out;
}

/* The length of the member's header at p (n bytes on), or 0. */
static size_t header_len(const uint8_t *p, uint64_t n)
{
	size_t h = 10;

	if (n < 18 || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || (p[3] & 0xe0))
		return 0;
	if (p[3] & FEXTRA) {
		if (n < h + 2)
			return 0;
		h += 2 + (size_t)(p[h] | p[h + 1] << 8);
	}
	for (uint8_t f = FNAME; f <= FCOMMENT; f <<= 1) {
		if (!(p[3] & f))
			continue;
		while (h < n && p[h])
			h++;
		h++;
	}
	if (p[3] & FHCRC)
		h += 2;
	return h < n ? h : 0;
}

/* the list being made, and its capacity */
struct scan_job {
	struct sqfs_info *out;
	size_t cap;
};

static int add(struct scan_job *j, uint64_t off, uint32_t csize, uint32_t usize)
{
	struct sqfs_info *s = j->out;

	if (s->n_blocks == j->cap) {
		size_t nc = j->cap ? j->cap * 2 : 1024;
		struct sqfs_block *b = realloc(s->blocks, nc * sizeof(*b));
		if (!b)
			return -ENOMEM;
		s->blocks = b;
		j->cap = nc;
	}
	s->blocks[s->n_blocks++] = (struct sqfs_block){ .off = off, .csize = csize, .usize = usize };
	if (usize > s->block_size)
		s->block_size = usize;
	return 0;
}

int members_scan(const uint8_t *p, uint64_t size, uint32_t usize_max, struct sqfs_info *out)
{
	uint8_t *buf = malloc(usize_max);
	int r;

	if (!buf) {
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	r = members_scan_buf(p, size, usize_max, buf, out);
	free(buf);
	return r;
}

int members_scan_buf(const uint8_t *p, uint64_t size, uint32_t usize_max, uint8_t *buf, struct sqfs_info *out)
{
	struct scan_job j = { out, 0 };
	uint64_t at = 0;
	int r = 0;

	memset(out, 0, sizeof(*out));
	out->comp = SQFS_DEFLATE;
	while (at + 18 <= size) {
		const uint8_t *q = memchr(p + at, 0x1f, size - at - 17);
		uint64_t off;
		size_t h;
		int64_t n = -1;
		z_stream s;
		if (!q)
			break;
		off = (uint64_t)(q - p);
		h = header_len(q, size - off);
		at = off + 1;
		if (!h)
			continue;
		/* the stream's end: inflate until it ends or does not fit */
		memset(&s, 0, sizeof(s));
		if (inflateInit2(&s, -15) != Z_OK) {
			r = -ENOMEM;
			break;
		}
		s.next_in = (Bytef *)(uintptr_t)(q + h);
		s.avail_in = (uInt)(size - off - h < UINT32_MAX ? size - off - h : UINT32_MAX);
		s.next_out = buf;
		s.avail_out = usize_max;
		if (inflate(&s, Z_FINISH) == Z_STREAM_END && s.total_in + 8 <= size - off - h) {
			const uint8_t *tr = q + h + s.total_in;
			if (io_get_le32(tr) == (uint32_t)crc32(0L, buf, (uInt)s.total_out) &&
			    io_get_le32(tr + 4) == (uint32_t)s.total_out && s.total_out > 0)
				n = (int64_t)s.total_out;
		}
		if (n > 0) {
			r = add(&j, off + h, (uint32_t)s.total_in, (uint32_t)n);
			at = off + h + s.total_in + 8;
		}
		inflateEnd(&s);
		if (r < 0)
			break;
	}
	if (out->block_size < 4096)
		out->block_size = 4096;
	return r;
}
#else
int members_scan_buf(const uint8_t *p, uint64_t size, uint32_t usize_max, uint8_t *buf, struct sqfs_info *out)
{
	(void)p;
	(void)size;
	(void)usize_max;
	(void)buf;
	memset(out, 0, sizeof(*out));
	out->comp = SQFS_DEFLATE;
	out->block_size = 4096;
	return 0;
}

int members_scan(const uint8_t *p, uint64_t size, uint32_t usize_max, struct sqfs_info *out)
{
	return members_scan_buf(p, size, usize_max, NULL, out);
}

int64_t members_expand(const uint8_t *in, size_t len, uint8_t *out, size_t cap, uint32_t *bounds, size_t *nb,
		       size_t nb_max)
{
	(void)in;
	(void)len;
	(void)out;
	(void)cap;
	(void)bounds;
	(void)nb_max;
	*nb = 0;
	return -1;
}
#endif
