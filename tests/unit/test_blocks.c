/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Squashfs block compressors (engine/format/blocks.c) and BLOCKS objects:
 * every compressor round-trips; blocks of real mksquashfs images come out of
 * slotsync_delta_block_compress() byte for byte; the sample and its digest;
 * the probe; codec-4 objects made by hand decode, and malformed ones are
 * refused; SSDELTA1 and SSDELTA2 indexes; DEFLATE streams made again with
 * their block ends, and objects of them; records as an xz stream. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <zstd.h>

#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/features.h"
#include "test_util.h"

#if SLOTSYNC_HAVE_ZLIB
#include <zlib.h>
#endif
#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif

#define BS 32768u
#define SAMPLE_SHA256 "14a78263573d100c2b94847ee455e5fc672a1eb7166f6040686ba83eee749c98"

static struct slotsync_delta_profile profile(uint8_t comp, uint32_t level, uint32_t window, uint32_t variants)
{
	struct slotsync_delta_profile p;

	memset(&p, 0, sizeof(p));
	p.comp = comp;
	p.level = level;
	p.window = window;
	p.variants = variants;
	p.block_max = BS;
	return p;
}

/* the profiles the tests run through: what mksquashfs's options make */
static struct slotsync_delta_profile profiles[] = {
	{ .comp = SLOTSYNC_DELTA_COMP_GZIP, .level = 9, .window = 15, .variants = 0x1f, .block_max = BS },
	{ .comp = SLOTSYNC_DELTA_COMP_XZ, .level = 6, .window = BS, .variants = 0x7f, .block_max = BS },
	{ .comp = SLOTSYNC_DELTA_COMP_LZ4, .level = 0, .window = 0, .variants = 1, .block_max = BS },
	{ .comp = SLOTSYNC_DELTA_COMP_LZ4, .level = 12, .window = 0, .variants = 1, .block_max = BS },
	{ .comp = SLOTSYNC_DELTA_COMP_ZSTD, .level = 0, .window = 0, .variants = (1u << 3) | (1u << 15), .block_max = BS },
};
#define N_PROFILES (sizeof(profiles) / sizeof(profiles[0]))

/* Content a squashfs block could hold: the sample, shifted and edited. */
static void content(uint8_t *buf, size_t len, unsigned seed)
{
	uint8_t *s = malloc(SLOTSYNC_DELTA_SAMPLE_BYTES);

	slotsync_delta_sample(s);
	for (size_t i = 0; i < len; i++)
		buf[i] = s[(i + seed * 977u) % SLOTSYNC_DELTA_SAMPLE_BYTES];
	for (size_t i = seed % 61; i < len; i += 4093)
		buf[i] ^= (uint8_t)(seed + 1);
	free(s);
}

START_TEST(test_round_trip)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	uint8_t *in = malloc(BS), *z = malloc(BS), *back = malloc(BS);

	content(in, BS, 1);
	for (size_t k = 0; k < N_PROFILES; k++) {
		const struct slotsync_delta_profile *p = &profiles[k];
		for (unsigned v = 0; v < 32; v++) {
			int64_t n;
			if (!(p->variants & (1u << v)))
				continue;
			n = slotsync_delta_block_compress(bc, p, v, in, BS, z, BS, &err);
			ck_assert_msg(n > 0 && n < BS, "comp %u variant %u: %" PRId64 " %s", p->comp, v, n, err.msg);
			memset(back, 0, BS);
			ck_assert_msg(slotsync_delta_block_decompress(bc, p, z, (size_t)n, back, BS, &err) == 0, "%s",
				      err.msg);
			ck_assert_mem_eq(back, in, BS);
			/* another size than the block's content, or a damaged block */
			ck_assert_int_eq(slotsync_delta_block_decompress(bc, p, z, (size_t)n, back, BS - 1, &err), -EBADMSG);
			ck_assert_int_eq(slotsync_delta_block_decompress(bc, p, z, (size_t)n - 1, back, BS, &err), -EBADMSG);
			/* no room: 0, not an error */
			ck_assert_int_eq(slotsync_delta_block_compress(bc, p, v, in, BS, z, 16, &err), 0);
		}
		/* a variant the profile does not have; more than a block */
		ck_assert_int_eq(slotsync_delta_block_compress(bc, p, 31, in, BS, z, BS, &err), -EINVAL);
		ck_assert_int_eq(slotsync_delta_block_compress(bc, p, (unsigned)__builtin_ctz(p->variants), in, BS + 1, z, BS,
								 &err),
				 -EINVAL);
	}
	slotsync_delta_block_coder_free(bc);
	free(in);
	free(z);
	free(back);
}
END_TEST

/* A squashfs image of one file of 3 blocks made by mksquashfs with `opts`:
 * its data blocks follow the superblock (96 bytes) and the compressor
 * options' metadata block, if any. */
static uint8_t *mksquashfs(const char *dir, const uint8_t *file, size_t len, const char *opts, size_t *data_at,
			   size_t *img_len)
{
	char path[4200], cmd[8600];
	uint8_t *img;
	FILE *f;
	struct stat st;

	snprintf(path, sizeof(path), "%s/root", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/file", dir);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(file, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "mksquashfs %s/root %s/img -noappend -no-fragments -no-xattrs -no-progress -quiet -processors 1 "
		 "-b %u -comp %s >/dev/null",
		 dir, dir, BS, opts);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
	snprintf(path, sizeof(path), "%s/img", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	img = malloc((size_t)st.st_size);
	f = fopen(path, "rb");
	ck_assert_uint_eq(fread(img, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	ck_assert_mem_eq(img, "hsqs", 4);
	ck_assert_uint_eq(io_get_le32(img + 12), BS);
	*data_at = 96;
	if (io_get_le16(img + 24) & 0x0400) /* SQUASHFS_COMP_OPT: an options metadata block */
		*data_at += 2 + (io_get_le16(img + 96) & 0x7fff);
	*img_len = (size_t)st.st_size;
	return img;
}

START_TEST(test_matches_mksquashfs)
{
	static const struct {
		const char *opts;
		struct slotsync_delta_profile p;
	} cases[] = {
		{ "gzip", { .comp = 1, .level = 9, .window = 15, .variants = 1 } },
		{ "gzip -Xcompression-level 6 -Xwindow-size 12 -Xstrategy default,filtered,run_length_encoded",
		  { .comp = 1, .level = 6, .window = 12, .variants = 0x0b } },
		{ "xz", { .comp = 4, .level = 6, .window = BS, .variants = 1 } },
		{ "xz -Xbcj x86,arm -Xdict-size 16K", { .comp = 4, .level = 6, .window = 16384, .variants = 0x13 } },
		{ "lz4", { .comp = 5, .level = 0, .variants = 1 } },
		{ "lz4 -Xhc", { .comp = 5, .level = 12, .variants = 1 } },
		{ "zstd -Xcompression-level 15", { .comp = 6, .variants = 1u << 15 } },
	};
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	char *dir = test_mkdtemp();
	uint8_t *file = malloc(3 * BS), *z = malloc(BS), *best = malloc(BS);

	/* text and x86-like code, so that the filters and strategies choose */
	content(file, 3 * BS, 5);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct slotsync_delta_profile p = cases[k].p;
		size_t at, img_len;
		uint8_t *img;
		p.block_max = BS;
		img = mksquashfs(dir, file, 3 * BS, cases[k].opts, &at, &img_len);
		for (unsigned b = 0; b < 3; b++) {
			int64_t nb = 0;
			/* mksquashfs keeps the smallest of the variants, the first of equals */
			for (unsigned v = 0; v < 32; v++) {
				int64_t n;
				if (!(p.variants & (1u << v)))
					continue;
				n = slotsync_delta_block_compress(bc, &p, v, file + b * BS, BS, z, BS, &err);
				ck_assert_msg(n > 0, "%s: %s", cases[k].opts, err.msg);
				if (nb == 0 || n < nb) {
					nb = n;
					memcpy(best, z, (size_t)n);
				}
			}
			ck_assert_msg(at + (size_t)nb <= img_len, "%s", cases[k].opts);
			ck_assert_msg(memcmp(img + at, best, (size_t)nb) == 0, "%s: block %u differs from mksquashfs's",
				      cases[k].opts, b);
			at += (size_t)nb;
		}
		free(img);
	}
	slotsync_delta_block_coder_free(bc);
	test_rmdir(dir);
	free(file);
	free(z);
	free(best);
}
END_TEST

START_TEST(test_sample)
{
	uint8_t *s = malloc(SLOTSYNC_DELTA_SAMPLE_BYTES), d[SLOTSYNC_DIGEST_BYTES];
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];
	size_t e8 = 0;

	slotsync_delta_sample(s);
	/* the sample is part of the format: its digest never changes */
	ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, s, SLOTSYNC_DELTA_SAMPLE_BYTES, d), 0);
	ck_assert_str_eq(slotsync_digest_to_hex(d, hex), SAMPLE_SHA256);
	/* and it has what the BCJ filters look for */
	for (size_t i = 0; i < SLOTSYNC_DELTA_SAMPLE_BYTES; i++)
		e8 += s[i] == 0xe8;
	ck_assert_uint_gt(e8, 500);
	free(s);
}
END_TEST

START_TEST(test_probe)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };

	for (size_t k = 0; k < N_PROFILES; k++) {
		struct slotsync_delta_profile p = profiles[k];
		ck_assert_msg(slotsync_delta_profile_seal(bc, &p, &err) == 0, "%s", err.msg);
		ck_assert_ptr_nonnull(memchr(p.library, 0, sizeof(p.library)));
		ck_assert_uint_gt(strlen(p.library), 5);
		ck_assert_msg(slotsync_delta_profile_probe(bc, &p, &err) == 0, "%s", err.msg);
		/* a generator that compressed otherwise: another level (zstd: another level set) */
		if (p.comp == SLOTSYNC_DELTA_COMP_ZSTD)
			p.variants = (1u << 3) | (1u << 16);
		else if (p.comp == SLOTSYNC_DELTA_COMP_LZ4)
			p.level = p.level ? 9 : 1;
		else
			p.level = p.comp == SLOTSYNC_DELTA_COMP_XZ ? 5 : 6;
		slotsync_error_clear(&err);
		ck_assert_msg(slotsync_delta_profile_probe(bc, &p, &err) == -EPROTO, "comp %u level %u", p.comp, p.level);
		ck_assert_msg(strstr(err.msg, "compresses otherwise") && strstr(err.msg, p.library), "%s", err.msg);
	}
	slotsync_delta_block_coder_free(bc);
}
END_TEST

START_TEST(test_xz_memory_bounded)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_profile p = profile(SLOTSYNC_DELTA_COMP_XZ, 9 | SLOTSYNC_DELTA_XZ_EXTREME, 1u << 20, 3);
	uint8_t in[100] = { 0 }, out[400];

	/* a 1 MiB dictionary (mksquashfs -b 1M -comp xz) needs 12.6 MiB to
	 * compress with the BT4 match finder: more than a device allows */
	p.block_max = 1u << 20;
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_block_compress(bc, &p, 0, in, sizeof(in), out, sizeof(out), &err), -E2BIG);
	ck_assert_msg(strstr(err.msg, "KiB") != NULL, "%s", err.msg);
	ck_assert_int_eq(slotsync_delta_profile_probe(bc, &p, &err), -E2BIG);
	p.level = 6;
	ck_assert_int_eq(slotsync_delta_block_compress(bc, &p, 1, in, sizeof(in), out, sizeof(out), &err), -E2BIG);
	/* half of it fits */
	p.window = 512u << 10;
	ck_assert_int_gt(slotsync_delta_block_compress(bc, &p, 1, in, sizeof(in), out, sizeof(out), &err), 0);
	slotsync_delta_block_coder_free(bc);
}
END_TEST

START_TEST(test_profile_check)
{
	struct slotsync_error err = { 0 };
	struct slotsync_delta_profile p;

	for (size_t k = 0; k < N_PROFILES; k++)
		ck_assert_int_eq(slotsync_delta_profile_check(&profiles[k], &err), 0);
#define BAD(field, value)                                                             \
	do {                                                                          \
		p = profiles[0];                                                      \
		p.field = value;                                                      \
		ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG); \
	} while (0)
	BAD(comp, 2);
	BAD(comp, 3);
	BAD(comp, 7);
	BAD(level, 0);
	BAD(level, 10);
	BAD(window, 7);
	BAD(window, 16);
	BAD(variants, 0);
	BAD(variants, 0x20);
	BAD(block_max, 2u << 20);
	BAD(block_max, 1024);
	p = profiles[0];
	memset(p.library, 'a', sizeof(p.library));
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "NUL") != NULL, "%s", err.msg);
	p = profile(SLOTSYNC_DELTA_COMP_XZ, 10, BS, 1);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_XZ, 6, 2048, 1);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_XZ, 6, BS, 0x80);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_LZ4, 13, 0, 1);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_LZ4, 0, 0, 2);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_ZSTD, 0, 0, 1);     /* level 0 */
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_ZSTD, 0, 0, 1u << 20); /* level 20 */
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
	p = profile(SLOTSYNC_DELTA_COMP_NONE, 0, 0, 1);
	ck_assert_int_eq(slotsync_delta_profile_check(&p, &err), -EBADMSG);
#undef BAD
}
END_TEST

/* A BLOCKS object by hand.  Reference: 100 bytes, block A compressed, 50
 * bytes.  Records: 10 bytes, then block B (A edited) compressed, of which
 * [skip, skip+take) is output. */
struct hand {
	struct slotsync_delta_profile p;
	uint8_t ref[100 + BS + 50], xref[100 + BS + 50], a[BS], b[BS], cb[BS];
	size_t ref_len, xref_len, ca, ncb;
	uint8_t rec[64 + BS], obj[2 * BS + 1024], out[BS + 64];
	size_t rec_len, obj_len;
};

static void hand_reference(struct hand *h, struct slotsync_delta_block_coder *bc)
{
	struct slotsync_error err = { 0 };
	int64_t n;

	content(h->a, BS, 7);
	memcpy(h->b, h->a, BS);
	memcpy(h->b + 1000, "a change in the new release", 27);
	test_fill_random(h->ref, 100, 3);
	n = slotsync_delta_block_compress(bc, &h->p, 0, h->a, BS, h->ref + 100, BS, &err);
	ck_assert_msg(n > 0, "%s", err.msg);
	h->ca = (size_t)n;
	test_fill_random(h->ref + 100 + h->ca, 50, 4);
	h->ref_len = 150 + h->ca;
	memcpy(h->xref, h->ref, 100);
	memcpy(h->xref + 100, h->a, BS);
	memcpy(h->xref + 100 + BS, h->ref + 100 + h->ca, 50);
	h->xref_len = 150 + BS;
	n = slotsync_delta_block_compress(bc, &h->p, 0, h->b, BS, h->cb, BS, &err);
	ck_assert_msg(n > 0, "%s", err.msg);
	h->ncb = (size_t)n;
}

/* map entries (offset, csize, usize) and records (rec: h->rec, or their
 * residual with SLOTSYNC_DELTA_MAP_RESIDUAL in flags), into h->obj */
/* the map frame alone, into h->obj; returns its size */
static size_t hand_map(struct hand *h, const uint32_t *map, uint32_t n_map, uint32_t flags)
{
	uint8_t m[4 + 12 * 4];
	size_t a;

	io_put_le32(m, n_map | flags);
	for (uint32_t i = 0; i < n_map * 3; i++)
		io_put_le32(m + 4 + 4 * i, map[i]);
	a = ZSTD_compress(h->obj, sizeof(h->obj), m, 4 + 12 * n_map, 3);
	ck_assert(!ZSTD_isError(a));
	return a;
}

static void hand_object_of(struct hand *h, const uint32_t *map, uint32_t n_map, uint32_t flags, const uint8_t *rec,
			   size_t rec_len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t a = hand_map(h, map, n_map, flags), b;

	ZSTD_CCtx_refPrefix(c, h->xref, h->xref_len);
	b = ZSTD_compress2(c, h->obj + a, sizeof(h->obj) - a, rec, rec_len);
	ck_assert(!ZSTD_isError(b));
	h->obj_len = a + b;
	ZSTD_freeCCtx(c);
}

static void hand_object(struct hand *h, const uint32_t *map, uint32_t n_map)
{
	hand_object_of(h, map, n_map, 0, h->rec, h->rec_len);
}

static size_t put_bytes(uint8_t *r, const void *bytes, uint32_t n)
{
	r[0] = 0;
	io_put_le32(r + 1, n);
	memcpy(r + 5, bytes, n);
	return 5 + n;
}

static size_t put_block(uint8_t *r, unsigned variant, uint32_t csize, uint32_t skip, uint32_t take, const uint8_t *c,
			uint32_t n)
{
	r[0] = 2;
	r[1] = (uint8_t)variant;
	io_put_le32(r + 2, csize);
	io_put_le32(r + 6, skip);
	io_put_le32(r + 10, take);
	io_put_le32(r + 14, n);
	memcpy(r + 18, c, n);
	return 18 + n;
}

START_TEST(test_blocks_decode)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	struct hand *h = calloc(1, sizeof(*h));
	/* gzip, xz, lz4 */
	const size_t which[] = { 0, 1, 3 };

	for (size_t w = 0; w < 3; w++) {
		uint32_t map[3], bad[6];
		size_t n;
		h->p = profiles[which[w]];
		ck_assert_int_eq(slotsync_delta_profile_seal(bc, &h->p, &err), 0);
		hand_reference(h, bc);
		map[0] = 100, map[1] = (uint32_t)h->ca, map[2] = BS;
		/* without the profile: refused */
		slotsync_delta_decoder_set_profile(dec, NULL);
		h->rec_len = put_bytes(h->rec, "0123456789", 10);
		h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 0, (uint32_t)h->ncb, h->b, BS);
		hand_object(h, map, 1);
		n = 10 + h->ncb;
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,
						       h->ref_len, h->out, n, &err),
				 -EINVAL);
		slotsync_delta_decoder_set_profile(dec, &h->p);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						    h->out, n, &err) == 0,
			      "comp %u: %s", h->p.comp, err.msg);
		ck_assert_mem_eq(h->out, "0123456789", 10);
		ck_assert_mem_eq(h->out + 10, h->cb, h->ncb);
		/* one byte more or less */
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,
						       h->ref_len, h->out, n - 1, &err),
				 -EBADMSG);
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,
						       h->ref_len, h->out, n + 1, &err),
				 -EBADMSG);

#define REFUSED(out_len, text)                                                                                   \
	do {                                                                                                     \
		slotsync_error_clear(&err);                                                                      \
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,  \
						       h->ref_len, h->out, (out_len), &err),                   \
				 0);                                                                             \
		ck_assert_msg(strstr(err.msg, text) != NULL, "comp %u: wanted \"%s\": %s", h->p.comp, text,     \
			      err.msg);                                                                          \
	} while (0)
		/* the map: a block past the reference, out of order, another usize, not a block */
		bad[0] = 100, bad[1] = (uint32_t)h->ref_len, bad[2] = BS;
		hand_object(h, bad, 1);
		REFUSED(n, "out of the reference");
		bad[0] = 100, bad[1] = 10, bad[2] = 100, bad[3] = 90, bad[4] = 5, bad[5] = 100;
		hand_object(h, bad, 2);
		REFUSED(n, "out of order");
		bad[0] = 100, bad[1] = (uint32_t)h->ca, bad[2] = BS - 1;
		hand_object(h, bad, 1);
		REFUSED(n, "does not decompress");
		bad[0] = 0, bad[1] = 100, bad[2] = BS;
		hand_object(h, bad, 1);
		REFUSED(n, "does not decompress");
		bad[0] = 100, bad[1] = (uint32_t)h->ca, bad[2] = BS + 1;
		hand_object(h, bad, 1);
		REFUSED(n, "out of the reference");

		/* records: a take past the block, an unknown record, a zstd-frames record */
		h->rec_len = put_bytes(h->rec, "0123456789", 10);
		h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 0, (uint32_t)h->ncb + 1, h->b, BS);
		hand_object(h, map, 1);
		REFUSED(n + 1, "out of bounds");
		h->rec[0] = 7;
		hand_object(h, map, 1);
		REFUSED(n, "unknown record 7");
		h->rec[0] = 0;
		h->rec[15] = 1;
		hand_object(h, map, 1);
		REFUSED(n, "unknown record 1");
		/* a variant the profile lacks */
		h->rec_len = put_block(h->rec, 9, (uint32_t)h->ncb, 0, (uint32_t)h->ncb, h->b, BS);
		hand_object(h, map, 1);
		REFUSED(h->ncb, "out of bounds");
		/* a block that compresses to another size */
		h->rec_len = put_block(h->rec, 0, (uint32_t)h->ncb + 1, 0, (uint32_t)h->ncb, h->b, BS);
		hand_object(h, map, 1);
		REFUSED(h->ncb, "compressed again");
		/* more content than a block */
		{
			uint8_t *big = calloc(1, BS + 1);
			h->rec_len = put_block(h->rec, 0, 100, 0, 10, big, BS + 1);
			hand_object(h, map, 1);
			REFUSED(10, "out of bounds");
			free(big);
		}
		/* bounded work: skipping must start the output, leaving off must end it */
		h->rec_len = put_block(h->rec, 0, (uint32_t)h->ncb, 5, (uint32_t)h->ncb - 5, h->b, BS);
		h->rec_len += put_bytes(h->rec + h->rec_len, "ab", 2);
		hand_object(h, map, 1);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						    h->out, h->ncb - 5 + 2, &err) == 0,
			      "%s", err.msg);
		ck_assert_mem_eq(h->out, h->cb + 5, h->ncb - 5);
		h->rec_len = put_bytes(h->rec, "ab", 2);
		h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 5, (uint32_t)h->ncb - 5, h->b, BS);
		hand_object(h, map, 1);
		REFUSED(h->ncb - 5 + 2, "does not start the output");
		h->rec_len = put_block(h->rec, 0, (uint32_t)h->ncb, 0, 7, h->b, BS);
		h->rec_len += put_bytes(h->rec + h->rec_len, "ab", 2);
		hand_object(h, map, 1);
		REFUSED(9, "does not end the output");
		h->rec_len = put_bytes(h->rec, "ab", 2);
		h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 0, 7, h->b, BS);
		hand_object(h, map, 1);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						    h->out, 9, &err) == 0,
			      "%s", err.msg);
		ck_assert_mem_eq(h->out + 2, h->cb, 7);
		/* records that are not one frame after the map */
		h->rec_len = put_bytes(h->rec, "ab", 2);
		hand_object(h, map, 1);
		h->obj[h->obj_len++] = 0;
		REFUSED(2, "not one zstd frame");
#undef REFUSED
	}
	slotsync_delta_decoder_free(dec);
	slotsync_delta_block_coder_free(bc);
	free(h);
}
END_TEST

#if SLOTSYNC_HAVE_XZ
/* in[0..len) as one .xz stream, LZMA2 with that dictionary (x86 BCJ first if
 * x86), no check, as slotsync-gen codes new content */
static size_t xz_stream(const void *in, size_t len, uint32_t dict, int x86, uint8_t *out, size_t cap)
{
	lzma_options_lzma o;
	lzma_filter f[3];
	size_t pos = 0, k = 0;

	ck_assert(!lzma_lzma_preset(&o, 1));
	o.dict_size = dict;
	if (x86)
		f[k++] = (lzma_filter){ .id = LZMA_FILTER_X86, .options = NULL };
	f[k++] = (lzma_filter){ .id = LZMA_FILTER_LZMA2, .options = &o };
	f[k] = (lzma_filter){ .id = LZMA_VLI_UNKNOWN, .options = NULL };
	ck_assert_int_eq(lzma_stream_buffer_encode(f, LZMA_CHECK_NONE, NULL, in, len, out, &pos, cap), LZMA_OK);
	return pos;
}

/* h->obj: the map frame, then the records h->rec as xz */
static void hand_object_xz(struct hand *h, const uint32_t *map, uint32_t n_map, uint32_t dict, int x86)
{
	size_t a = hand_map(h, map, n_map, 0);

	h->obj_len = a + xz_stream(h->rec, h->rec_len, dict, x86, h->obj + a, sizeof(h->obj) - a);
}

/* The records of BLOCKS and ZSTD_FRAMES objects as one .xz stream (new
 * content, coded without the reference): they decode to the same output as
 * the zstd frame; a stream with other bytes after it, cut short, needing more
 * than SLOTSYNC_DELTA_XZ_MEM_MAX of memory, or decoding to more records than
 * an object may have, is refused by what is wrong; the index keeps the
 * object's flag. */
START_TEST(test_xz_records)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	struct hand *h = calloc(1, sizeof(*h));
	struct slotsync_delta_profile zp = profiles[4];
	struct slotsync_delta_index *d;
	uint32_t map[3];
	size_t n, len;
	uint8_t *b;

#define DECODES(codec, out_len)                                                                                   \
	ck_assert_msg(slotsync_delta_decode(dec, (codec), h->obj, h->obj_len, h->ref, h->ref_len, h->out, (out_len),   \
					    &err) == 0,                                                                \
		      "%s", err.msg)
#define REFUSED(codec, out_len, rc, text)                                                                         \
	do {                                                                                                     \
		slotsync_error_clear(&err);                                                                      \
		ck_assert_int_eq(slotsync_delta_decode(dec, (codec), h->obj, h->obj_len, h->ref, h->ref_len, h->out, \
						       (out_len), &err),                                        \
				 (rc));                                                                          \
		ck_assert_msg(strstr(err.msg, text) != NULL, "wanted \"%s\": %s", text, err.msg);              \
	} while (0)
	h->p = profiles[0];
	ck_assert_int_eq(slotsync_delta_profile_seal(bc, &h->p, &err), 0);
	hand_reference(h, bc);
	slotsync_delta_decoder_set_profile(dec, &h->p);
	map[0] = 100, map[1] = (uint32_t)h->ca, map[2] = BS;
	h->rec_len = put_bytes(h->rec, "0123456789", 10);
	h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 0, (uint32_t)h->ncb, h->b, BS);
	n = 10 + h->ncb;
	for (int x86 = 0; x86 < 2; x86++) {
		hand_object_xz(h, map, 1, 64u << 10, x86);
		memset(h->out, 0, sizeof(h->out));
		DECODES(SLOTSYNC_DELTA_BLOCKS, n);
		ck_assert_mem_eq(h->out, "0123456789", 10);
		ck_assert_mem_eq(h->out + 10, h->cb, h->ncb);
	}
	/* other bytes after the stream; the stream cut short */
	h->obj[h->obj_len++] = 0;
	REFUSED(SLOTSYNC_DELTA_BLOCKS, n, -EBADMSG, "followed by 1 other bytes");
	h->obj_len -= 6;
	REFUSED(SLOTSYNC_DELTA_BLOCKS, n, -EBADMSG, "cut short");
	/* a dictionary of 8 MiB: over the memory a device allows */
	hand_object_xz(h, map, 1, 8u << 20, 1);
	REFUSED(SLOTSYNC_DELTA_BLOCKS, n, -EFBIG, "bytes of memory");
	hand_object_xz(h, map, 1, SLOTSYNC_DELTA_XZ_DICT_MAX, 1);
	DECODES(SLOTSYNC_DELTA_BLOCKS, n);
	/* ZSTD_FRAMES: the object is the stream alone */
	h->rec_len = put_bytes(h->rec, "records of a zstd image", 23);
	h->obj_len = xz_stream(h->rec, h->rec_len, 4096, 0, h->obj, sizeof(h->obj));
	DECODES(SLOTSYNC_DELTA_ZSTD_FRAMES, 23);
	ck_assert_mem_eq(h->out, "records of a zstd image", 23);
	REFUSED(SLOTSYNC_DELTA_ZSTD_FRAMES, 22, -EBADMSG, "");
	/* more records than an object may have (XOUT_MAX) */
	{
		uint8_t *big = calloc(1, SLOTSYNC_DELTA_XOUT_MAX + 1);
		uint8_t *z = malloc(1u << 20);
		size_t zn = xz_stream(big, SLOTSYNC_DELTA_XOUT_MAX + 1, 1u << 20, 0, z, 1u << 20);
		ck_assert_uint_le(zn, sizeof(h->obj));
		memcpy(h->obj, z, zn);
		h->obj_len = zn;
		REFUSED(SLOTSYNC_DELTA_ZSTD_FRAMES, 23, -EFBIG, "xz records of over");
		free(big);
		free(z);
	}
#undef DECODES
#undef REFUSED
	/* the flag in the index */
	ck_assert_int_eq(slotsync_delta_profile_seal(bc, &zp, &err), 0);
	{
		struct slotsync_delta_object o = { .size = 100, .codec = SLOTSYNC_DELTA_ZSTD_FRAMES, .flags = SLOTSYNC_DELTA_OBJ_XZ,
						   .count = 1, .ref_count = 1 };
		struct slotsync_delta_ref r = { .length = 10 };
		struct slotsync_delta_index di = { .base_size = 1000, .new_size = 2000, .n_objects = 1, .n_refs = 1,
						   .objects = &o, .refs = &r, .profile = zp };
		ck_assert_int_eq(slotsync_delta_index_serialize(&di, &b, &len, &err), 0);
	}
	ck_assert_uint_eq(b[96 + 37], SLOTSYNC_DELTA_OBJ_XZ);
	ck_assert_msg(slotsync_delta_index_parse(b, len, &d, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(d->objects[0].flags, SLOTSYNC_DELTA_OBJ_XZ);
	slotsync_delta_index_free(d);
	free(b);
	slotsync_delta_decoder_free(dec);
	slotsync_delta_block_coder_free(bc);
	free(h);
}
END_TEST
#endif

/* BLOCKS with residual records (bit 31 of the map's n): the records are
 * rebuilt from their residual against the expanded reference, then applied;
 * a selector, alignment count or length that does not fit is refused. */
#if SLOTSYNC_HAVE_ZLIB
/* A raw deflate stream as a gzip file holds one: zlib at level 9 - v / 2,
 * memLevel 8 + v % 2, a block ended after each of the lengths. */
static size_t zlib_stream(unsigned v, const uint32_t *bounds, size_t nb, const uint8_t *in, size_t len, uint8_t *out,
			  size_t cap)
{
	z_stream s;
	size_t at = 0;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(deflateInit2(&s, 9 - (int)(v / 2), Z_DEFLATED, -15, 8 + (int)(v % 2), Z_DEFAULT_STRATEGY),
			 Z_OK);
	s.next_out = out;
	s.avail_out = (uInt)cap;
	for (size_t i = 0; i <= nb; i++) {
		size_t n = i < nb ? bounds[i] : len - at;
		s.next_in = (Bytef *)(uintptr_t)(in + at);
		s.avail_in = (uInt)n;
		ck_assert_int_eq(deflate(&s, i < nb ? Z_BLOCK : Z_FINISH), i < nb ? Z_OK : Z_STREAM_END);
		at += n;
	}
	deflateEnd(&s);
	return s.total_out;
}

static size_t put_deflate(uint8_t *r, unsigned variant, uint32_t csize, const uint32_t *bounds, uint32_t nb,
			  const uint8_t *c, uint32_t n)
{
	r[0] = 3;
	r[1] = (uint8_t)variant;
	io_put_le32(r + 2, csize);
	io_put_le32(r + 6, 0);
	io_put_le32(r + 10, csize);
	io_put_le32(r + 14, n);
	io_put_le32(r + 18, nb);
	for (uint32_t i = 0; i < nb; i++)
		io_put_le32(r + 22 + 4 * i, bounds[i]);
	memcpy(r + 22 + 4 * nb, c, n);
	return 22 + 4 * nb + n;
}

START_TEST(test_deflate)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_profile p = profile(SLOTSYNC_DELTA_COMP_DEFLATE, 0, 15, 0xc3), q;
	struct hand *h = calloc(1, sizeof(*h));
	const uint32_t bounds[] = { 5000, 12000, 1 }, bad0[] = { 0 }, bad_all[] = { BS };
	uint8_t *z = malloc(2 * BS), *y = malloc(2 * BS);
	size_t nz, n;
	int64_t got;

	/* the profile: level 0, window 15, 18 variants */
	ck_assert_msg(slotsync_delta_profile_check(&p, &err) == 0, "%s", err.msg);
	q = p, q.level = 9;
	ck_assert_int_eq(slotsync_delta_profile_check(&q, &err), -EBADMSG);
	q = p, q.window = 14;
	ck_assert_int_eq(slotsync_delta_profile_check(&q, &err), -EBADMSG);
	q = p, q.variants = 1u << 18;
	ck_assert_int_eq(slotsync_delta_profile_check(&q, &err), -EBADMSG);
	ck_assert_msg(slotsync_delta_profile_seal(bc, &p, &err) == 0, "%s", err.msg);
	ck_assert_msg(slotsync_delta_profile_probe(bc, &p, &err) == 0, "%s", err.msg);

	/* made again as zlib made it, its blocks ended where they were, for
	 * each variant; without the block ends, other bytes */
	content(h->a, BS, 11);
	for (unsigned v = 0; v < 8; v++) {
		if (!(p.variants >> v & 1))
			continue;
		nz = zlib_stream(v, bounds, 3, h->a, BS, z, 2 * BS);
		got = slotsync_delta_deflate_compress(bc, &p, v, bounds, 3, h->a, BS, y, 2 * BS, &err);
		ck_assert_msg(got == (int64_t)nz, "variant %u: %" PRId64 " bytes, zlib %zu: %s", v, got, nz, err.msg);
		ck_assert_mem_eq(y, z, nz);
		got = slotsync_delta_block_compress(bc, &p, v, h->a, BS, y, 2 * BS, &err);
		ck_assert_int_gt(got, 0);
		ck_assert(got != (int64_t)nz || memcmp(y, z, nz) != 0);
		ck_assert_int_eq(slotsync_delta_block_decompress(bc, &p, z, nz, y, BS, &err), 0);
		ck_assert_mem_eq(y, h->a, BS);
	}
	/* block lengths that do not fit, a stream that does not fit its buffer,
	 * a stream that is not the size it says */
	ck_assert_int_eq(slotsync_delta_deflate_compress(bc, &p, 0, bad0, 1, h->a, BS, y, 2 * BS, &err), -EINVAL);
	ck_assert_int_eq(slotsync_delta_deflate_compress(bc, &p, 0, bad_all, 1, h->a, BS, y, 2 * BS, &err), -EINVAL);
	ck_assert_int_eq(slotsync_delta_deflate_compress(bc, &p, 0, bounds, 3, h->a, BS, y, 100, &err), 0);
	ck_assert_int_eq(slotsync_delta_deflate_compress(bc, &profiles[0], 0, bounds, 3, h->a, BS, y, 2 * BS, &err),
			 -EINVAL);
	nz = zlib_stream(0, bounds, 3, h->a, BS, z, 2 * BS);
	ck_assert_int_eq(slotsync_delta_block_decompress(bc, &p, z, nz, y, BS - 1, &err), -EBADMSG);
	ck_assert_int_eq(slotsync_delta_block_decompress(bc, &p, z, nz - 1, y, BS, &err), -EBADMSG);

#define D_REFUSED(out_len, text)                                                                                 \
	do {                                                                                                     \
		slotsync_error_clear(&err);                                                                      \
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,  \
						       h->ref_len, h->out, (out_len), &err),                   \
				 0);                                                                             \
		ck_assert_msg(strstr(err.msg, text) != NULL, "wanted \"%s\": %s", text, err.msg);             \
	} while (0)
	/* an object: the old stream in the reference, the new one's content and
	 * block ends in a deflate record */
	h->p = p;
	test_fill_random(h->ref, 100, 5);
	memcpy(h->ref + 100, z, nz);
	h->ca = nz;
	test_fill_random(h->ref + 100 + nz, 50, 6);
	h->ref_len = 150 + nz;
	memcpy(h->xref, h->ref, 100);
	memcpy(h->xref + 100, h->a, BS);
	memcpy(h->xref + 100 + BS, h->ref + 100 + nz, 50);
	h->xref_len = 150 + BS;
	memcpy(h->b, h->a, BS);
	memcpy(h->b + 9000, "a changed version string", 24);
	h->ncb = zlib_stream(1, bounds, 3, h->b, BS, h->cb, BS);
	{
		uint32_t map[3] = { 100, (uint32_t)nz, BS };
		h->rec_len = put_bytes(h->rec, "0123456789", 10);
		h->rec_len += put_deflate(h->rec + h->rec_len, 1, (uint32_t)h->ncb, bounds, 3, h->b, BS);
		hand_object(h, map, 1);
		n = 10 + h->ncb;
		slotsync_delta_decoder_set_profile(dec, &h->p);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						    h->out, n, &err) == 0,
			      "%s", err.msg);
		ck_assert_mem_eq(h->out + 10, h->cb, h->ncb);
		ck_assert_uint_lt(h->obj_len, 400);  /* the content costs what changed */
		/* refused: a block record (squashfs's) under this profile, block
		 * ends that do not fit, a count of them past the record, another
		 * variant than the stream's */
		h->rec_len = put_bytes(h->rec, "0123456789", 10);
		h->rec_len += put_block(h->rec + h->rec_len, 1, (uint32_t)h->ncb, 0, (uint32_t)h->ncb, h->b, BS);
		hand_object(h, map, 1);
		D_REFUSED(n, "unknown record 2");
		h->rec_len = put_deflate(h->rec, 1, (uint32_t)h->ncb, bad_all, 1, h->b, BS);
		hand_object(h, map, 1);
		D_REFUSED(h->ncb, "does not fit");
		h->rec_len = put_deflate(h->rec, 1, (uint32_t)h->ncb, bounds, 3, h->b, BS);
		io_put_le32(h->rec + 18, 1u << 20);
		hand_object(h, map, 1);
		D_REFUSED(h->ncb, "cut short");
		h->rec_len = put_deflate(h->rec, 6, (uint32_t)h->ncb, bounds, 3, h->b, BS);
		hand_object(h, map, 1);
		D_REFUSED(h->ncb, "compresses otherwise");
	}
#undef D_REFUSED
	free(z);
	free(y);
	free(h);
	slotsync_delta_decoder_free(dec);
	slotsync_delta_block_coder_free(bc);
}
END_TEST

/* A nested block: a gzip file inside a block of a gzip, xz or lz4 image.
 * The map lists the old file's deflate stream inside the expanded reference
 * (inflated after it), and a nested record gives the new block's content as
 * bytes around a deflate record of the inner profile: the object costs what
 * changed in the file, not its new compressed bytes. */
#define NB_OLD 100u
#define NB_TAIL 200u
#define NB_FILE 12000u
struct nested {
	uint8_t g_old[NB_FILE], g_new[NB_FILE], zold[2 * NB_FILE], znew[2 * NB_FILE];
	uint8_t A[BS], B[BS], cA[BS], cB[BS], ref[BS + 100], xref[2 * BS + NB_FILE];
	uint8_t map[4 + 12 + 4 + 12], rec[BS + 1024], obj[2 * BS], out[BS];
	size_t nzold, nznew, LA, LB, ncA, ncB, ref_len, xref_len, map_len, rec_len, obj_len;
};

static void nested_object(struct nested *t)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t a = ZSTD_compress(t->obj, sizeof(t->obj), t->map, t->map_len, 3), b;

	ck_assert(!ZSTD_isError(a));
	ZSTD_CCtx_refPrefix(c, t->xref, t->xref_len);
	b = ZSTD_compress2(c, t->obj + a, sizeof(t->obj) - a, t->rec, t->rec_len);
	ck_assert(!ZSTD_isError(b));
	t->obj_len = a + b;
	ZSTD_freeCCtx(c);
}

/* records: a nested block of content B (csize ncB + csize_delta), the file's
 * stream given as a deflate record of variant v */
static void nested_records(struct nested *t, unsigned v, uint32_t csize_delta, uint32_t n_delta)
{
	const uint32_t bounds[] = { 3000, 4000 };
	uint8_t *r = t->rec;
	size_t at;

	r[0] = 4;
	r[1] = 0;
	io_put_le32(r + 2, (uint32_t)t->ncB);
	io_put_le32(r + 6, 0);
	io_put_le32(r + 10, (uint32_t)t->ncB);
	io_put_le32(r + 14, (uint32_t)t->LB + n_delta);
	at = 18 + put_bytes(r + 18, t->B, NB_OLD);
	at += put_deflate(r + at, v, (uint32_t)t->nznew + csize_delta, bounds, 2, t->g_new, NB_FILE);
	at += put_bytes(r + at, t->B + NB_OLD + t->nznew, NB_TAIL);
	t->rec_len = at;
}

START_TEST(test_nested_deflate)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_profile ip = profile(SLOTSYNC_DELTA_COMP_DEFLATE, 0, 15, 0x3);
	struct nested *t = calloc(1, sizeof(*t));
	const uint32_t bounds[] = { 3000, 4000 };
	const size_t which[] = { 0, 1, 3 };

	ip.block_max = 16384;
	ck_assert_msg(slotsync_delta_profile_seal(bc, &ip, &err) == 0, "%s", err.msg);
	/* the gzip file, old and new (a few lines changed) */
	content(t->g_old, NB_FILE, 25);
	memcpy(t->g_new, t->g_old, NB_FILE);
	memcpy(t->g_new + 5000, "a new entry of the changelog", 28);
	t->nzold = zlib_stream(1, bounds, 2, t->g_old, NB_FILE, t->zold, sizeof(t->zold));
	t->nznew = zlib_stream(1, bounds, 2, t->g_new, NB_FILE, t->znew, sizeof(t->znew));
	/* the blocks: other files' bytes around the gzip file */
	test_fill_random(t->A, NB_OLD, 21);
	memcpy(t->A + NB_OLD, t->zold, t->nzold);
	content(t->A + NB_OLD + t->nzold, NB_TAIL, 22);
	t->LA = NB_OLD + t->nzold + NB_TAIL;
	memcpy(t->B, t->A, NB_OLD);
	memcpy(t->B + NB_OLD, t->znew, t->nznew);
	memcpy(t->B + NB_OLD + t->nznew, t->A + NB_OLD + t->nzold, NB_TAIL);
	t->LB = NB_OLD + t->nznew + NB_TAIL;

	for (size_t w = 0; w < 3; w++) {
		struct slotsync_delta_profile p = profiles[which[w]];
		int64_t k;
		ck_assert_int_eq(slotsync_delta_profile_seal(bc, &p, &err), 0);
		k = slotsync_delta_block_compress(bc, &p, 0, t->A, t->LA, t->cA, BS, &err);
		ck_assert_msg(k > 0, "%s", err.msg);
		t->ncA = (size_t)k;
		k = slotsync_delta_block_compress(bc, &p, 0, t->B, t->LB, t->cB, BS, &err);
		ck_assert_msg(k > 0, "%s", err.msg);
		t->ncB = (size_t)k;
		/* the reference: 50 bytes, the old block, 30 bytes */
		test_fill_random(t->ref, 50, 23);
		memcpy(t->ref + 50, t->cA, t->ncA);
		test_fill_random(t->ref + 50 + t->ncA, 30, 24);
		t->ref_len = 80 + t->ncA;
		/* expanded: 50, A, 30, then the old file inflated */
		memcpy(t->xref, t->ref, 50);
		memcpy(t->xref + 50, t->A, t->LA);
		memcpy(t->xref + 50 + t->LA, t->ref + 50 + t->ncA, 30);
		memcpy(t->xref + 80 + t->LA, t->g_old, NB_FILE);
		t->xref_len = 80 + t->LA + NB_FILE;
		io_put_le32(t->map, 1 | SLOTSYNC_DELTA_MAP_INNER);
		io_put_le32(t->map + 4, 50);
		io_put_le32(t->map + 8, (uint32_t)t->ncA);
		io_put_le32(t->map + 12, (uint32_t)t->LA);
		io_put_le32(t->map + 16, 1);
		io_put_le32(t->map + 20, 50 + NB_OLD);
		io_put_le32(t->map + 24, (uint32_t)t->nzold);
		io_put_le32(t->map + 28, NB_FILE);
		t->map_len = 32;
		nested_records(t, 1, 0, 0);
		nested_object(t);

		slotsync_delta_decoder_set_profile(dec, &p);
		slotsync_delta_decoder_set_inner_profile(dec, &ip);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, t->obj, t->obj_len, t->ref, t->ref_len,
						    t->out, t->ncB, &err) == 0,
			      "%s: %s", p.library, err.msg);
		ck_assert_mem_eq(t->out, t->cB, t->ncB);
		/* the file's content is found in the old one's: a few hundred bytes
		 * against its new stream's thousands */
		ck_assert_uint_lt(t->obj_len, 600);
		ck_assert_uint_gt(t->nznew, 1000);

#define N_REFUSED(text)                                                                                          \
	do {                                                                                                     \
		slotsync_error_clear(&err);                                                                      \
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, t->obj, t->obj_len, t->ref,  \
						       t->ref_len, t->out, t->ncB, &err),                      \
				 0);                                                                             \
		ck_assert_msg(strstr(err.msg, text) != NULL, "wanted \"%s\": %s", text, err.msg);             \
	} while (0)
		/* without the inner profile: the map's streams and the nested
		 * record are refused by name */
		slotsync_delta_decoder_set_inner_profile(dec, NULL);
		N_REFUSED("no inner deflate profile");
		io_put_le32(t->map, 1);
		t->map_len = 16;
		t->xref_len -= NB_FILE;
		nested_object(t);
		t->xref_len += NB_FILE;
		N_REFUSED("unknown record 4");
		slotsync_delta_decoder_set_inner_profile(dec, &ip);
		/* a stream past the expanded reference, or inflating to another size */
		io_put_le32(t->map, 1 | SLOTSYNC_DELTA_MAP_INNER);
		t->map_len = 32;
		io_put_le32(t->map + 20, (uint32_t)(80 + t->LA));
		nested_object(t);
		N_REFUSED("out of the expanded reference");
		io_put_le32(t->map + 20, 50 + NB_OLD);
		io_put_le32(t->map + 28, NB_FILE + 1);
		nested_object(t);
		N_REFUSED("deflate stream 0");
		io_put_le32(t->map + 28, NB_FILE);
		/* a map whose stream count runs past it */
		io_put_le32(t->map + 16, 2);
		nested_object(t);
		N_REFUSED("a map of 32 bytes");
		io_put_le32(t->map + 16, 1);
		/* a variant the inner profile has not, a stream of another size,
		 * a content its records do not fill */
		nested_records(t, 5, 0, 0);
		nested_object(t);
		N_REFUSED("nested block: deflate record at");
		nested_records(t, 1, 1, 0);
		nested_object(t);
		N_REFUSED("compressed again gives");
		nested_records(t, 1, 0, 7);
		nested_object(t);
		N_REFUSED("cut short");
		/* a deflate record of its own (a gzip file in bytes the image
		 * stores as they are): with the inner profile only */
		t->rec_len = put_deflate(t->rec, 1, (uint32_t)t->nznew, bounds, 2, t->g_new, NB_FILE);
		io_put_le32(t->map, 1);
		t->map_len = 16;
		t->xref_len -= NB_FILE;
		nested_object(t);
		t->xref_len += NB_FILE;
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, t->obj, t->obj_len, t->ref, t->ref_len,
						    t->out, t->nznew, &err) == 0,
			      "%s", err.msg);
		ck_assert_mem_eq(t->out, t->znew, t->nznew);
		slotsync_error_clear(&err);
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, t->obj, t->obj_len, t->ref, t->ref_len,
						       t->out, t->nznew + 1, &err),
				 0);
		slotsync_delta_decoder_set_inner_profile(dec, NULL);
		slotsync_error_clear(&err);
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, t->obj, t->obj_len, t->ref, t->ref_len,
						       t->out, t->nznew, &err),
				 0);
		ck_assert_msg(strstr(err.msg, "unknown record 3") != NULL, "%s", err.msg);
#undef N_REFUSED
	}
	free(t);
	slotsync_delta_decoder_free(dec);
	slotsync_delta_block_coder_free(bc);
}
END_TEST

/* SSDELTA3: the inner profile after the first, only with a deflate inner
 * profile inside gzip, xz or lz4 blocks; objects that need it are flagged. */
START_TEST(test_index_inner)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_object o = { .size = 100, .codec = SLOTSYNC_DELTA_BLOCKS, .flags = SLOTSYNC_DELTA_OBJ_INNER,
					   .count = 1, .ref_count = 1 };
	struct slotsync_delta_ref r = { .chunk = 0, .offset = 0, .length = 10 };
	struct slotsync_delta_index di = { .base_size = 1000, .new_size = 2000, .n_objects = 1, .n_refs = 1,
					   .objects = &o, .refs = &r }, *d;
	size_t len;
	uint8_t *b;

	di.profile = profiles[3];
	di.inner = profile(SLOTSYNC_DELTA_COMP_DEFLATE, 0, 15, 0x3);
	ck_assert_int_eq(slotsync_delta_profile_seal(bc, &di.profile, &err), 0);
	ck_assert_int_eq(slotsync_delta_profile_seal(bc, &di.inner, &err), 0);
	ck_assert_int_eq(slotsync_delta_index_serialize(&di, &b, &len, &err), 0);
	ck_assert_mem_eq(b, "SSDELTA3", 8);
	ck_assert_uint_eq(len, 96 + 60 + 12 + 2 * 84 + 32);
	ck_assert_msg(slotsync_delta_index_parse(b, len, &d, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(d->inner.comp, SLOTSYNC_DELTA_COMP_DEFLATE);
	ck_assert_uint_eq(d->inner.variants, 0x3);
	ck_assert_mem_eq(d->inner.sample, di.inner.sample, 32);
	ck_assert_uint_eq(d->objects[0].flags, SLOTSYNC_DELTA_OBJ_INNER);
	slotsync_delta_index_free(d);
	free(b);
	/* refused: an inner profile of another compressor, or inside zstd
	 * frames; a flagged object without an inner profile */
	di.inner.comp = SLOTSYNC_DELTA_COMP_GZIP;
	di.inner.level = 9;
	di.inner.variants = 1;
	ck_assert_int_eq(slotsync_delta_index_serialize(&di, &b, &len, &err), 0);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "inner compression profile") != NULL, "%s", err.msg);
	free(b);
	di.inner = profile(SLOTSYNC_DELTA_COMP_DEFLATE, 0, 15, 0x3);
	di.profile = profiles[4];
	o.codec = SLOTSYNC_DELTA_ZSTD_FRAMES;
	ck_assert_int_eq(slotsync_delta_index_serialize(&di, &b, &len, &err), 0);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	free(b);
	memset(&di.inner, 0, sizeof(di.inner));
	di.profile = profiles[3];
	o.codec = SLOTSYNC_DELTA_BLOCKS;
	ck_assert_int_eq(slotsync_delta_index_serialize(&di, &b, &len, &err), 0);
	ck_assert_mem_eq(b, "SSDELTA2", 8);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "inner profile") != NULL, "%s", err.msg);
	free(b);
	slotsync_delta_block_coder_free(bc);
}
END_TEST
#endif

START_TEST(test_blocks_residual)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	struct hand *h = calloc(1, sizeof(*h));
	const size_t which[] = { 0, 1, 3 };
	uint8_t *x = malloc(1 + 4 * 2 + 4 + sizeof(h->rec) / 64 + 1 + sizeof(h->rec));

	for (size_t w = 0; w < 3; w++) {
		uint32_t map[3];
		/* the block's content starts at record offset 10 + 5 + 18 = 33; the
		 * old content it resembles at 100 in the expanded reference */
		const int32_t al[2] = { 100 - 33, -7 };
		size_t n, blocks, head = 1 + 4 * 2 + 4, xl, unpredicted = 0;
		h->p = profiles[which[w]];
		ck_assert_int_eq(slotsync_delta_profile_seal(bc, &h->p, &err), 0);
		hand_reference(h, bc);
		map[0] = 100, map[1] = (uint32_t)h->ca, map[2] = BS;
		slotsync_delta_decoder_set_profile(dec, &h->p);
		h->rec_len = put_bytes(h->rec, "0123456789", 10);
		h->rec_len += put_block(h->rec + h->rec_len, 0, (uint32_t)h->ncb, 0, (uint32_t)h->ncb, h->b, BS);
		n = 10 + h->ncb;
		blocks = (h->rec_len + 63) / 64;
		x[0] = 2;
		io_put_le32(x + 1, (uint32_t)al[0]);
		io_put_le32(x + 5, (uint32_t)al[1]);
		io_put_le32(x + 9, (uint32_t)h->rec_len);
		/* block 0 (the bytes record and the block's header) predicted by
		 * nothing, the last by the second alignment, the rest by the first */
		for (size_t b = 0; b < blocks; b++) {
			uint8_t sel = b == 0 ? 0xff : b == blocks - 1 ? 1 : 0;
			x[head + b] = sel;
			for (size_t i = b * 64; i < (b + 1) * 64 && i < h->rec_len; i++) {
				int64_t p = sel == 0xff ? -1 : (int64_t)al[sel] + (int64_t)i;
				uint8_t pred = p >= 0 && (uint64_t)p < h->xref_len ? h->xref[p] : 0;
				x[head + blocks + i] = (uint8_t)(h->rec[i] - pred);
				unpredicted += h->rec[i] != pred;
			}
		}
		/* b resembles a: most bytes are predicted */
		ck_assert_uint_lt(unpredicted, h->rec_len / 2);
		xl = head + blocks + h->rec_len;
		hand_object_of(h, map, 1, SLOTSYNC_DELTA_MAP_RESIDUAL, x, xl);
		ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						    h->out, n, &err) == 0,
			      "comp %u: %s", h->p.comp, err.msg);
		ck_assert_mem_eq(h->out, "0123456789", 10);
		ck_assert_mem_eq(h->out + 10, h->cb, h->ncb);
		/* the same residual read as plain records: refused */
		hand_object_of(h, map, 1, 0, x, xl);
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,
						       h->ref_len, h->out, n, &err),
				 0);

#define REFUSED(text)                                                                                            \
	do {                                                                                                     \
		hand_object_of(h, map, 1, SLOTSYNC_DELTA_MAP_RESIDUAL, x, xl);                                  \
		slotsync_error_clear(&err);                                                                      \
		ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref,  \
						       h->ref_len, h->out, n, &err),                           \
				 0);                                                                             \
		ck_assert_msg(strstr(err.msg, text) != NULL, "comp %u: wanted \"%s\": %s", h->p.comp, text,     \
			      err.msg);                                                                          \
	} while (0)
		/* a selector past the alignments */
		x[head + 1] = 2;
		REFUSED("selects alignment 2 of 2");
		x[head + 1] = 0;
		/* no alignments, too many */
		x[0] = 0;
		REFUSED("without their alignments");
		x[0] = SLOTSYNC_DELTA_ALIGN_MAX + 1;
		REFUSED("without their alignments");
		x[0] = 2;
		/* a length the residual does not have */
		io_put_le32(x + 9, (uint32_t)h->rec_len + 1);
		REFUSED("do not fit");
		io_put_le32(x + 9, 0);
		REFUSED("do not fit");
		io_put_le32(x + 9, (uint32_t)h->rec_len);
		/* a wrong residual byte: records that do not apply */
		x[head + blocks + 20] ^= 0x40;
		REFUSED("blocks object");
		x[head + blocks + 20] ^= 0x40;
		/* and whole again */
		hand_object_of(h, map, 1, SLOTSYNC_DELTA_MAP_RESIDUAL, x, xl);
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_BLOCKS, h->obj, h->obj_len, h->ref, h->ref_len,
						       h->out, n, &err),
				 0);
#undef REFUSED
	}
	free(x);
	slotsync_delta_decoder_free(dec);
	slotsync_delta_block_coder_free(bc);
	free(h);
}
END_TEST

/* An index of one object of `codec` with profile p, serialized. */
static uint8_t *one_object_index(uint8_t codec, const struct slotsync_delta_profile *p, size_t *len)
{
	struct slotsync_delta_object o = { .size = 100, .codec = codec, .first = 0, .count = 1, .ref_first = 0,
					   .ref_count = 1 };
	struct slotsync_delta_ref r = { .chunk = 0, .offset = 0, .length = 10 };
	struct slotsync_delta_index d = { .base_size = 1000, .new_size = 2000, .n_objects = 1, .n_refs = 1,
					  .objects = &o, .refs = &r };
	struct slotsync_error err = { 0 };
	uint8_t *b;

	d.profile = *p;
	ck_assert_int_eq(slotsync_delta_index_serialize(&d, &b, len, &err), 0);
	return b;
}

static void retail(uint8_t *b, size_t len)
{
	ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, b, len - 32, b + len - 32), 0);
}

START_TEST(test_index_versions)
{
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_index *d;
	struct slotsync_delta_profile p = profiles[1], none;
	size_t len;
	uint8_t *b;

	ck_assert_int_eq(slotsync_delta_profile_seal(bc, &p, &err), 0);
	/* SSDELTA2 round trip */
	b = one_object_index(SLOTSYNC_DELTA_BLOCKS, &p, &len);
	ck_assert_mem_eq(b, "SSDELTA2", 8);
	ck_assert_uint_eq(len, 96 + 60 + 12 + 84 + 32);
	ck_assert_msg(slotsync_delta_index_parse(b, len, &d, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(d->objects[0].codec, SLOTSYNC_DELTA_BLOCKS);
	ck_assert_uint_eq(d->profile.comp, p.comp);
	ck_assert_uint_eq(d->profile.level, p.level);
	ck_assert_uint_eq(d->profile.window, p.window);
	ck_assert_uint_eq(d->profile.variants, p.variants);
	ck_assert_uint_eq(d->profile.block_max, p.block_max);
	ck_assert_str_eq(d->profile.library, p.library);
	ck_assert_mem_eq(d->profile.sample, p.sample, 32);
	slotsync_delta_index_free(d);
	/* a damaged profile: an unknown compressor, a library without its NUL */
	b[96 + 60 + 12] = 2;
	retail(b, len);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "unknown compressor") != NULL, "%s", err.msg);
	b[96 + 60 + 12] = 4;
	memset(b + 96 + 60 + 12 + 20, 'x', 32);
	retail(b, len);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	io_put_le32(b + 96 + 60 + 12 + 16, 2u << 20); /* block_max 2 MiB */
	memset(b + 96 + 60 + 12 + 20, 0, 32);
	retail(b, len);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	/* SSDELTA1: the same without the profile, read as no compressor */
	free(b);
	memset(&none, 0, sizeof(none));
	b = one_object_index(SLOTSYNC_DELTA_ZSTD_FRAMES, &none, &len);
	memcpy(b, "SSDELTA1", 8);
	memmove(b + len - 32 - 84, b + len - 32, 32);
	len -= 84;
	retail(b, len);
	ck_assert_msg(slotsync_delta_index_parse(b, len, &d, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(d->profile.comp, 0);
	ck_assert_uint_eq(d->objects[0].codec, SLOTSYNC_DELTA_ZSTD_FRAMES);
	slotsync_delta_index_free(d);
	/* ...which cannot have BLOCKS objects */
	b[96 + 36] = SLOTSYNC_DELTA_BLOCKS;
	retail(b, len);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	free(b);
	/* BLOCKS objects need a gzip, xz, lz4 (or deflate) profile, or a zstd
	 * one in an SSDELTA3 index (which the writer makes of them); ZSTD_FRAMES
	 * a zstd one (or none) */
	b = one_object_index(SLOTSYNC_DELTA_BLOCKS, &profiles[4], &len);
	ck_assert_int_eq(memcmp(b, "SSDELTA3", 8), 0);
	ck_assert_msg(slotsync_delta_index_parse(b, len, &d, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(d->profile.comp, SLOTSYNC_DELTA_COMP_ZSTD);
	ck_assert_uint_eq(d->inner.comp, SLOTSYNC_DELTA_COMP_NONE);
	slotsync_delta_index_free(d);
	memcpy(b, "SSDELTA2", 8); /* the same without the inner profile */
	memmove(b + len - 32 - 84, b + len - 32, 32);
	len -= 84;
	retail(b, len);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "(SSDELTA3) zstd") != NULL, "%s", err.msg);
	free(b);
	b = one_object_index(SLOTSYNC_DELTA_ZSTD_FRAMES, &profiles[0], &len);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), -EBADMSG);
	free(b);
	b = one_object_index(SLOTSYNC_DELTA_ZSTD_FRAMES, &profiles[4], &len);
	ck_assert_int_eq(slotsync_delta_index_parse(b, len, &d, &err), 0);
	slotsync_delta_index_free(d);
	free(b);
	slotsync_delta_block_coder_free(bc);
}
END_TEST

/* A build without a compressor (SLOTSYNC_ZLIB, SLOTSYNC_XZ, SLOTSYNC_LZ4 OFF)
 * refuses its blocks by name, and zstd's still work. */
START_TEST(test_not_built_in)
{
	static const struct {
		uint8_t comp;
		int have;
		const char *option;
	} comps[] = {
		{ SLOTSYNC_DELTA_COMP_GZIP, SLOTSYNC_HAVE_ZLIB, "SLOTSYNC_ZLIB=OFF" },
		{ SLOTSYNC_DELTA_COMP_XZ, SLOTSYNC_HAVE_XZ, "SLOTSYNC_XZ=OFF" },
		{ SLOTSYNC_DELTA_COMP_LZ4, SLOTSYNC_HAVE_LZ4, "SLOTSYNC_LZ4=OFF" },
	};
	struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
	struct slotsync_error err = { 0 };
	struct slotsync_delta_profile z = profiles[4];
	uint8_t in[4096], out[8192];
	size_t missing = 0;

	content(in, sizeof(in), 3);
	for (size_t k = 0; k < sizeof(comps) / sizeof(comps[0]); k++) {
		struct slotsync_delta_profile p = profile(comps[k].comp, comps[k].comp == SLOTSYNC_DELTA_COMP_GZIP ? 9 : 6,
							  comps[k].comp == SLOTSYNC_DELTA_COMP_GZIP ? 15
							  : comps[k].comp == SLOTSYNC_DELTA_COMP_XZ ? BS
												     : 0,
							  1);
		if (comps[k].have)
			continue;
		missing++;
		slotsync_error_clear(&err);
		ck_assert_int_eq(slotsync_delta_block_compress(bc, &p, 0, in, sizeof(in), out, sizeof(out), &err), -ENOTSUP);
		ck_assert_msg(strstr(err.msg, comps[k].option) != NULL, "%s", err.msg);
		ck_assert_int_eq(slotsync_delta_block_decompress(bc, &p, out, 16, in, sizeof(in), &err), -ENOTSUP);
		ck_assert_int_eq(slotsync_delta_profile_seal(bc, &p, &err), -ENOTSUP);
		ck_assert_int_eq(slotsync_delta_profile_probe(bc, &p, &err), -ENOTSUP);
	}
	ck_assert_uint_gt(missing, 0);
	if (!SLOTSYNC_HAVE_XZ) {
		/* records as an xz stream: refused by name */
		static const uint8_t xz[16] = { 0xfd, '7', 'z', 'X', 'Z', 0 };
		struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
		slotsync_error_clear(&err);
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, xz, sizeof(xz), in, 100, out, 10, &err),
				 -ENOTSUP);
		ck_assert_msg(strstr(err.msg, "without liblzma") != NULL, "%s", err.msg);
		slotsync_delta_decoder_free(dec);
	}
	ck_assert_msg(slotsync_delta_profile_seal(bc, &z, &err) == 0, "%s", err.msg);
	ck_assert_msg(slotsync_delta_profile_probe(bc, &z, &err) == 0, "%s", err.msg);
	slotsync_delta_block_coder_free(bc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("blocks");
	TCase *tc = tcase_create("blocks");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sample);
	tcase_add_test(tc, test_profile_check);
	if (SLOTSYNC_HAVE_ZLIB && SLOTSYNC_HAVE_XZ && SLOTSYNC_HAVE_LZ4) {
		/* these go through every compressor */
		tcase_add_test(tc, test_round_trip);
		tcase_add_test(tc, test_matches_mksquashfs);
		tcase_add_test(tc, test_probe);
		tcase_add_test(tc, test_xz_memory_bounded);
		tcase_add_test(tc, test_blocks_decode);
		tcase_add_test(tc, test_blocks_residual);
#if SLOTSYNC_HAVE_XZ
		tcase_add_test(tc, test_xz_records);
#endif
#if SLOTSYNC_HAVE_ZLIB
		tcase_add_test(tc, test_deflate);
		tcase_add_test(tc, test_nested_deflate);
		tcase_add_test(tc, test_index_inner);
#endif
		tcase_add_test(tc, test_index_versions);
	} else {
		tcase_add_test(tc, test_not_built_in);
	}
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
