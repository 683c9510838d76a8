/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* delta-gen/squashfs.c: the blocks of real mksquashfs images are listed
 * (data, fragment and metadata blocks, each decompressing to its size), and
 * images that are not squashfs, cut short or damaged anywhere are refused or
 * listed within bounds, never read out of bounds; delta-gen/members.c: the
 * gzip files inside an image are found whole (optional header fields, CRC-32
 * and size checked), and a stream's deflate block ends are read back. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io.h"
#include "slotsync/features.h"
#include "squashfs.h"
#include "test_util.h"

#if SLOTSYNC_HAVE_ZLIB
#include <zlib.h>
#endif

#define BS 131072u

/* A squashfs image of a 3-block file, a small file (a fragment), a symlink
 * and a folder, made by mksquashfs with `opts`. */
static uint8_t *make_image(const char *dir, const char *opts, size_t *len)
{
	char path[4200], cmd[8800];
	uint8_t *big = malloc(3 * BS), *img;
	FILE *f;
	struct stat st;

	/* compressible, but not too much: words from a small alphabet */
	test_fill_random(big, 3 * BS, 11);
	for (size_t i = 0; i < 3 * BS; i++)
		big[i] = (uint8_t)('a' + big[i] % 7);
	snprintf(path, sizeof(path), "%s/root/sub", dir);
	ck_assert_int_eq(system((snprintf(cmd, sizeof(cmd), "mkdir -p %s && ln -sf ../big %s/link", path, path), cmd)), 0);
	snprintf(path, sizeof(path), "%s/root/big", dir);
	f = fopen(path, "wb");
	ck_assert_uint_eq(fwrite(big, 1, 3 * BS, f), 3 * BS);
	fclose(f);
	snprintf(path, sizeof(path), "%s/root/sub/small", dir);
	f = fopen(path, "wb");
	fputs("a small file, kept in a fragment block\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "mksquashfs %s/root %s/img -noappend -no-xattrs -no-progress -quiet -processors 1 -all-root "
		 "-b %u -comp %s >/dev/null",
		 dir, dir, BS, opts);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
	snprintf(path, sizeof(path), "%s/img", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	img = malloc((size_t)st.st_size);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(img, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	free(big);
	*len = (size_t)st.st_size;
	return img;
}

/* What holds for any listing: blocks by offset, disjoint, inside the image. */
static void check_listing(const struct sqfs_info *s, size_t len)
{
	for (size_t i = 0; i < s->n_blocks; i++) {
		const struct sqfs_block *b = &s->blocks[i];
		ck_assert_uint_gt(b->csize, 0);
		ck_assert_uint_le(b->off + b->csize, len);
		if (i)
			ck_assert_uint_le(s->blocks[i - 1].off + s->blocks[i - 1].csize, b->off);
	}
}

START_TEST(test_lists_blocks)
{
	static const struct {
		const char *opts;
		uint8_t comp;
		int has_opts;
		uint32_t opt0, opt1;
	} cases[] = {
		{ "gzip", SQFS_GZIP, 0, 0, 0 },
		{ "xz -Xbcj x86 -Xdict-size 32K", SQFS_XZ, 1, 32768, 1 },
		{ "lz4 -Xhc", SQFS_LZ4, 1, 1, 1 },
		{ "zstd", SQFS_ZSTD, 0, 0, 0 },
	};
	char *dir = test_mkdtemp();
	uint8_t *buf = malloc(BS);

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct slotsync_error err = { 0 };
		struct sqfs_info s;
		size_t len, data = 0, full = 0, meta = 0, frag = 0;
		uint8_t *img;
		/* a compressor this build lacks (SLOTSYNC_ZLIB/XZ/LZ4=OFF): its blocks
		 * cannot be read, and the generator does not try the codec */
		if ((cases[k].comp == SQFS_GZIP && !SLOTSYNC_HAVE_ZLIB) || (cases[k].comp == SQFS_XZ && !SLOTSYNC_HAVE_XZ) ||
		    (cases[k].comp == SQFS_LZ4 && !SLOTSYNC_HAVE_LZ4))
			continue;
		img = make_image(dir, cases[k].opts, &len);
		ck_assert_int_eq(squashfs_scan(img, len, &s, &err), 0);
		ck_assert_uint_eq(s.comp, cases[k].comp);
		ck_assert_uint_eq(s.block_size, BS);
		ck_assert_int_eq(s.has_opts, cases[k].has_opts);
		if (cases[k].has_opts) {
			ck_assert_uint_eq(s.opt[0], cases[k].opt0);
			ck_assert_uint_eq(s.opt[1], cases[k].opt1);
		}
		check_listing(&s, len);
		for (size_t i = 0; i < s.n_blocks; i++) {
			const struct sqfs_block *b = &s.blocks[i];
			int64_t n = b->stored ? (int64_t)b->csize : squashfs_decompress(s.comp, img + b->off, b->csize, buf, BS);
			ck_assert_msg(n > 0, "%s: block %zu at %llu does not decompress", cases[k].opts, i,
				      (unsigned long long)b->off);
			if (b->usize)
				ck_assert_uint_eq((uint64_t)n, b->usize);
			if (b->meta)
				meta++;
			else if (b->usize == BS)
				full++;
			else if (!b->usize)
				frag++;
			data += !b->meta;
		}
		/* the 3 blocks of the big file, its first right after the superblock
		 * (and the options); the fragment; the inode, directory, fragment and
		 * id tables at least */
		ck_assert_msg(full == 3, "%s: %zu full data blocks", cases[k].opts, full);
		ck_assert_uint_eq(frag, 1);
		ck_assert_uint_ge(meta, 4);
		for (size_t i = 0; i < s.n_blocks; i++)
			if (!s.blocks[i].meta) {
				ck_assert_uint_eq(s.blocks[i].off,
						  96 + (s.has_opts ? 2 + (io_get_le16(img + 96) & 0x7fffu) : 0));
				break;
			}
		squashfs_info_free(&s);
		free(img);
	}
	free(buf);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_refuses_and_survives_damage)
{
	char *dir = test_mkdtemp();
	struct slotsync_error err = { 0 };
	struct sqfs_info s;
	size_t len;
	uint8_t *img = make_image(dir, "gzip", &len), *bad = malloc(len), junk[4096];
	uint64_t x = 88172645463325252ull;

	/* not squashfs, cut short, another version, an unknown compressor, a
	 * block size that is not one */
	test_fill_random(junk, sizeof(junk), 3);
	ck_assert_int_eq(squashfs_scan(junk, sizeof(junk), &s, &err), -EINVAL);
	ck_assert_int_eq(squashfs_scan(img, 50, &s, &err), -EINVAL);
	memcpy(bad, img, len);
	bad[28] = 3;
	ck_assert_int_eq(squashfs_scan(bad, len, &s, &err), -EINVAL);
	memcpy(bad, img, len);
	bad[20] = 9;
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(squashfs_scan(bad, len, &s, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "compressor"), "%s", err.msg);
	memcpy(bad, img, len);
	io_put_le32(bad + 12, 12345);
	ck_assert_int_eq(squashfs_scan(bad, len, &s, &err), -EINVAL);
	/* damage anywhere (the superblock's pointers most often): refused, or a
	 * listing inside the image */
	for (int t = 0; t < 3000; t++) {
		int r;
		memcpy(bad, img, len);
		for (int k = 0; k < 1 + t % 4; k++) {
			size_t at;
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			at = (x >> 8) % 3 == 0 ? (size_t)(x >> 20) % 96 : (size_t)(x >> 20) % len;
			bad[at] = (uint8_t)(x >> 40);
		}
		r = squashfs_scan(bad, len, &s, &err);
		ck_assert_msg(r == 0 || r == -EINVAL, "trial %d: %d", t, r);
		if (r == 0) {
			check_listing(&s, len);
			squashfs_info_free(&s);
		}
	}
	free(bad);
	free(img);
	test_rmdir(dir);
}
END_TEST

#if SLOTSYNC_HAVE_ZLIB
/* A gzip member of content c (n bytes) at out, with a file name if name;
 * a deflate block ended after each of bounds[0..nb); returns its size. */
static size_t gzip_member(const uint8_t *c, size_t n, const char *name, const uint32_t *bounds, size_t nb,
			  uint8_t *out, size_t cap)
{
	z_stream s;
	gz_header h;
	size_t at = 0;

	memset(&s, 0, sizeof(s));
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(deflateInit2(&s, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	h.name = (Bytef *)(uintptr_t)name;
	h.os = 3;
	ck_assert_int_eq(deflateSetHeader(&s, &h), Z_OK);
	s.next_out = out;
	s.avail_out = (uInt)cap;
	for (size_t i = 0; i <= nb; i++) {
		size_t k = i < nb ? bounds[i] : n - at;
		s.next_in = (Bytef *)(uintptr_t)(c + at);
		s.avail_in = (uInt)k;
		ck_assert_int_eq(deflate(&s, i < nb ? Z_BLOCK : Z_FINISH), i < nb ? Z_OK : Z_STREAM_END);
		at += k;
	}
	deflateEnd(&s);
	return s.total_out;
}

START_TEST(test_members)
{
	const size_t cap = 1u << 20, n = 200000;
	uint8_t *img = calloc(1, cap), *c = malloc(n), *out = malloc(n);
	const uint32_t bounds[] = { 30000, 70000, 5 };
	uint32_t got[8];
	struct sqfs_info info;
	size_t at = 1000, m1, m2, m3, nb;
	int64_t x;

	for (size_t i = 0; i < n; i++)
		c[i] = (uint8_t)("man page text "[i % 14] ^ (i / 4096));
	test_fill_random(img, cap, 9);
	/* a member with block ends, one with a file name, one whose CRC-32 is
	 * wrong, and a header with nothing valid after it */
	m1 = gzip_member(c, n, NULL, bounds, 3, img + at, cap - at);
	m2 = gzip_member(c, 5000, "changelog", NULL, 0, img + at + m1 + 64, cap - at - m1 - 64);
	m3 = gzip_member(c, 7000, NULL, NULL, 0, img + at + m1 + m2 + 128, cap - at - m1 - m2 - 128);
	img[at + m1 + m2 + 128 + m3 - 8] ^= 1;
	memcpy(img + at + m1 + m2 + m3 + 256, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xff\xff\xff\xff", 14);
	ck_assert_int_eq(members_scan(img, cap, 1u << 20, &info), 0);
	ck_assert_uint_eq(info.comp, SQFS_DEFLATE);
	ck_assert_uint_eq(info.n_blocks, 2);
	ck_assert_uint_eq(info.blocks[0].off, at + 10);
	ck_assert_uint_eq(info.blocks[0].csize, m1 - 18);
	ck_assert_uint_eq(info.blocks[0].usize, n);
	ck_assert_uint_eq(info.blocks[1].off, at + m1 + 64 + 10 + sizeof("changelog"));
	ck_assert_uint_eq(info.blocks[1].usize, 5000);
	ck_assert_uint_eq(info.block_size, n);
	/* the block ends read back; the content as it was */
	x = members_expand(img + info.blocks[0].off, info.blocks[0].csize, out, n, got, &nb, 8);
	ck_assert_int_eq(x, (int64_t)n);
	ck_assert_mem_eq(out, c, n);
	ck_assert_uint_eq(nb, 3);
	ck_assert_uint_eq(got[0], 30000);
	ck_assert_uint_eq(got[1], 70000);
	ck_assert_uint_eq(got[2], 5);
	/* too many blocks for the room, too small an output, a stream cut short */
	ck_assert_int_eq(members_expand(img + info.blocks[0].off, info.blocks[0].csize, out, n, got, &nb, 2), -1);
	ck_assert_int_eq(members_expand(img + info.blocks[0].off, info.blocks[0].csize, out, n - 1, NULL, &nb, 0), -1);
	ck_assert_int_eq(members_expand(img + info.blocks[0].off, info.blocks[0].csize - 1, out, n, NULL, &nb, 0), -1);
	/* content over the limit: not listed */
	squashfs_info_free(&info);
	ck_assert_int_eq(members_scan(img, cap, 100000, &info), 0);
	ck_assert_uint_eq(info.n_blocks, 1);
	ck_assert_uint_eq(info.blocks[0].usize, 5000);
	squashfs_info_free(&info);
	free(img);
	free(c);
	free(out);
}
END_TEST
#endif

int main(void)
{
	Suite *s = suite_create("squashfs");
	TCase *tc = tcase_create("squashfs");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_lists_blocks);
	tcase_add_test(tc, test_refuses_and_survives_damage);
#if SLOTSYNC_HAVE_ZLIB
	tcase_add_test(tc, test_members);
#endif
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
