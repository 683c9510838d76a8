/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Delta objects: generation round trip, the delta index parser, the decoder's
 * refusals (bombs, short frames, bad residual headers). */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <zstd.h>

#include "gen.h"
#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/index.h"
#include "test_util.h"

#define IMG_LEN (1536u * 1024u)

struct pair {
	char *dir;
	char base_img[4200], base_idx[4200], new_img[4200], new_idx[4200], store[4200];
	uint8_t *base, *neu;
	size_t new_len;
	size_t novel;                    /* frames pair: compressed bytes of the new blocks */
	struct slotsync_index *bi, *ni;
};

/* base: random; new: a copy with what releases do to binaries: a region whose
 * bytes change every ~64 bytes by small amounts (moved code), an insertion,
 * a few overwritten runs, and a novel region that repeats itself */
static void pair_finish(struct pair *p, size_t base_len);

static void pair_paths(struct pair *p)
{
	p->dir = test_mkdtemp();
	snprintf(p->base_img, sizeof(p->base_img), "%s/base.img", p->dir);
	snprintf(p->base_idx, sizeof(p->base_idx), "%s/base.caibx", p->dir);
	snprintf(p->new_img, sizeof(p->new_img), "%s/new.img", p->dir);
	snprintf(p->new_idx, sizeof(p->new_idx), "%s/new.caibx", p->dir);
	snprintf(p->store, sizeof(p->store), "%s/store", p->dir);
}

static void pair_make(struct pair *p)
{
	size_t n = 0, novel;

	pair_paths(p);
	p->base = malloc(IMG_LEN);
	p->neu = malloc(IMG_LEN * 2);
	test_fill_random(p->base, IMG_LEN, 11);
	memcpy(p->neu, p->base, 300000);
	n = 300000;
	/* moved code: small differences every 64 bytes */
	for (size_t i = 300000; i < 500000; i++)
		p->neu[n++] = (uint8_t)(p->base[i] + (i % 64 == 0 ? 3 : 0));
	/* an insertion */
	test_fill_random(p->neu + n, 777, 12);
	n += 777;
	memcpy(p->neu + n, p->base + 500000, 400000);
	for (size_t k = 0; k < 20; k++)
		memset(p->neu + n + k * 20000, 0x5a, 40);
	n += 400000;
	/* novel content that repeats itself */
	novel = n;
	test_fill_random(p->neu + n, 4096, 13);
	for (size_t k = 1; k < 48; k++)
		memcpy(p->neu + n + k * 4096, p->neu + n, 4096);
	n += 48 * 4096;
	memcpy(p->neu + n, p->base + 900000, 300000);
	n += 300000;
	/* more novel content, like the novel content before it (a new file like
	 * another new file), nothing like the base */
	for (size_t k = 0; k < 24; k++, n += 4096) {
		memcpy(p->neu + n, p->neu + novel, 4096);
		p->neu[n + k * 97] ^= 0x55;
	}
	memcpy(p->neu + n, p->base + 1200000, IMG_LEN - 1200000);
	n += IMG_LEN - 1200000;
	p->new_len = n;
	pair_finish(p, IMG_LEN);
}

/* writes both images, chunks them into the store, reads their indexes */
static void pair_finish(struct pair *p, size_t base_len)
{
	struct gen_make_options opt = { 0 };
	struct gen_make_stats st;
	struct slotsync_error err = { 0 };

	ck_assert_int_eq(test_write_file(p->base_img, p->base, base_len), 0);
	ck_assert_int_eq(test_write_file(p->new_img, p->neu, p->new_len), 0);
	opt.params = slotsync_chunker_params_default();
	opt.digest = SLOTSYNC_DIGEST_SHA256;
	opt.level = 3;
	opt.threads = 2;
	opt.store = p->store;
	ck_assert_int_eq(gen_make(p->base_img, p->base_idx, &opt, &st, &err), 0);
	ck_assert_int_eq(gen_make(p->new_img, p->new_idx, &opt, &st, &err), 0);
	ck_assert_int_eq(slotsync_index_read_file(p->base_idx, &p->bi, &err), 0);
	ck_assert_int_eq(slotsync_index_read_file(p->new_idx, &p->ni, &err), 0);
}

/* Text-like bytes: words of a vocabulary of 2048 (compresses about 2:1, and
 * 8 bytes in a row are rare enough to align on). */
static void fill_text(uint8_t *buf, size_t len, uint64_t seed)
{
	static char words[2048][12];
	size_t n = 0;

	if (!words[0][0])
		for (int w = 0; w < 2048; w++) {
			uint64_t x = (uint64_t)w * 0x9e3779b97f4a7c15u + 7;
			int l = 3 + (int)(x >> 61);
			for (int k = 0; k < l; k++, x = x * 6364136223846793005u + 1)
				words[w][k] = (char)('a' + (x >> 40) % 26);
			words[w][l] = ' ';
		}
	while (n < len) {
		const char *w;
		size_t l;
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		w = words[(seed >> 33) % 2048];
		l = strlen(w);
		if (l > len - n)
			l = len - n;
		memcpy(buf + n, w, l);
		n += l;
	}
}

#define FBLOCK (128u * 1024u)
#define FBLOCKS 24

/* Appends block content c as squashfs does: one zstd frame, level 15. */
static size_t put_frame(ZSTD_CCtx *cc, uint8_t *dst, const uint8_t *c)
{
	size_t z = ZSTD_compressCCtx(cc, dst, ZSTD_compressBound(FBLOCK), c, FBLOCK, 15);

	ck_assert(!ZSTD_isError(z));
	return z;
}

/* The blocks of a zstd-compressed filesystem image: base, FBLOCKS blocks of
 * text; new, the same blocks with a few words changed in six of them (every
 * compressed byte of those blocks changes), bytes stored as they are in
 * between, and four new blocks. */
static void pair_make_frames(struct pair *p)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *blk = malloc(FBLOCK);
	size_t nb = 0, n = 0;

	pair_paths(p);
	p->novel = 0;
	p->base = malloc(FBLOCKS * ZSTD_compressBound(FBLOCK) + 65536);
	p->neu = malloc((FBLOCKS + 4) * ZSTD_compressBound(FBLOCK) + 65536);
	for (int b = 0; b < FBLOCKS; b++) {
		fill_text(blk, FBLOCK, 100 + (uint64_t)b);
		nb += put_frame(cc, p->base + nb, blk);
		fill_text(blk, FBLOCK, 100 + (uint64_t)b);
		if (b >= 6 && b < 12)
			for (int k = 0; k < 10; k++)
				memcpy(blk + 1000 + (size_t)k * 12000, "CHANGED", 7);
		n += put_frame(cc, p->neu + n, blk);
		if (b == 9) {
			/* stored as it is: compressing did not pay */
			test_fill_random(p->neu + n, 3000, 5);
			n += 3000;
		}
		if (b == 14)
			for (int k = 0; k < 4; k++) {
				size_t f;
				fill_text(blk, FBLOCK, 900 + (uint64_t)k);
				f = put_frame(cc, p->neu + n, blk);
				n += f;
				p->novel += f;
			}
	}
	p->new_len = n;
	pair_finish(p, nb);
	ZSTD_freeCCtx(cc);
	free(blk);
}

static void pair_free(struct pair *p)
{
	slotsync_index_free(p->bi);
	slotsync_index_free(p->ni);
	free(p->base);
	free(p->neu);
	test_rmdir(p->dir);
}

static struct slotsync_delta_index *generate(struct pair *p, struct gen_delta_stats *st, uint8_t **buf, size_t *len)
{
	struct gen_delta_options o = { .store = p->store, .new_index = p->new_idx, .new_image = p->new_img,
				       .threads = 2, .level = 19, .run_max = GEN_DELTA_RUN_MAX_DEFAULT };
	struct slotsync_error err = { 0 };
	struct slotsync_delta_index *d;
	char path[4400];

	ck_assert_msg(gen_delta_pair(&o, p->base_idx, p->base_img, st, &err) == 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/%s", p->store, st->index_path);
	ck_assert_int_eq(io_read_file(path, 1u << 24, buf, len, &err), 0);
	ck_assert_msg(slotsync_delta_index_load(*buf, *len, &d, &err) == 0, "%s", err.msg);
	return d;
}

/* Generating again with one thread gives the same delta index (idx, len). */
static void same_with_one_thread(struct pair *p, const uint8_t *idx, size_t len)
{
	struct gen_delta_options o = { .store = p->store, .new_index = p->new_idx, .new_image = p->new_img,
				       .threads = 1, .level = 19, .run_max = GEN_DELTA_RUN_MAX_DEFAULT };
	struct gen_delta_stats st;
	struct slotsync_error err = { 0 };
	uint8_t *b;
	size_t lb;
	char path[4400];

	ck_assert_msg(gen_delta_pair(&o, p->base_idx, p->base_img, &st, &err) == 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/%s", p->store, st.index_path);
	ck_assert_int_eq(io_read_file(path, 1u << 24, &b, &lb, &err), 0);
	ck_assert_uint_eq(len, lb);
	ck_assert_mem_eq(idx, b, len);
	free(b);
}

/* Every object of d decodes, from its reference as a device reads it, to its
 * chunks, and not to one byte fewer; counts codecs and new-image ranges. */
static void check_objects(struct pair *p, const struct slotsync_delta_index *d, const struct gen_delta_stats *st,
			  size_t codecs[4], size_t *targets)
{
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	uint8_t bd[32], nd[32], *ref = malloc(SLOTSYNC_DELTA_REF_MAX), *out = malloc(SLOTSYNC_DELTA_OUT_MAX);
	uint64_t covered = 0;

	ck_assert_int_eq(slotsync_index_digest(p->bi, bd, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(p->ni, nd, &err), 0);
	ck_assert_msg(slotsync_delta_index_check(d, p->bi, bd, p->ni, nd, &err) == 0, "%s", err.msg);
	ck_assert_uint_gt(d->n_objects, 0);
	ck_assert_uint_eq(d->n_objects, st->objects);
	for (uint32_t i = 0; i < d->n_objects; i++) {
		const struct slotsync_delta_object *o = &d->objects[i];
		uint64_t s = slotsync_index_chunk_start(p->ni, o->first), e = p->ni->chunks[o->first + o->count - 1].end;
		size_t rl = 0, ol;
		uint8_t *obj, id[32];
		char rel[100], path[4400];
		/* the reference, as a device reads it: base chunk + offset, on */
		for (uint32_t k = 0; k < o->ref_count; k++) {
			const struct slotsync_delta_ref *r = &d->refs[o->ref_first + k];
			const struct slotsync_index *ri = r->target ? p->ni : p->bi;
			uint64_t at = slotsync_index_chunk_start(ri, r->chunk) + r->offset;
			if (r->target) {
				/* a range of the new image before the output */
				ck_assert_uint_le(at + r->length, s);
				(*targets)++;
			}
			memcpy(ref + rl, (r->target ? p->neu : p->base) + at, r->length);
			rl += r->length;
		}
		slotsync_delta_object_path(o->id, rel, sizeof(rel));
		snprintf(path, sizeof(path), "%s/%s", p->store, rel);
		ck_assert_int_eq(io_read_file(path, 1u << 24, &obj, &ol, &err), 0);
		ck_assert_uint_eq(ol, o->size);
		ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, obj, ol, id), 0);
		ck_assert_mem_eq(id, o->id, 32);
		ck_assert_msg(slotsync_delta_decode(dec, o->codec, obj, ol, ref, rl, out, (size_t)(e - s), &err) == 0, "%s",
			      err.msg);
		ck_assert_mem_eq(out, p->neu + s, (size_t)(e - s));
		/* one byte short: refused, not cut */
		ck_assert_int_lt(slotsync_delta_decode(dec, o->codec, obj, ol, ref, rl, out, (size_t)(e - s) - 1, &err), 0);
		ck_assert_uint_lt(o->codec, 4);
		codecs[o->codec]++;
		covered += e - s;
		free(obj);
	}
	ck_assert_uint_eq(covered, st->covered_bytes);
	slotsync_delta_decoder_free(dec);
	free(ref);
	free(out);
}

START_TEST(test_round_trip)
{
	struct pair p;
	struct gen_delta_stats st;
	struct slotsync_delta_index *d;
	uint8_t *buf;
	size_t len, codecs[4] = { 0 }, targets = 0;

	pair_make(&p);
	d = generate(&p, &st, &buf, &len);
	check_objects(&p, d, &st, codecs, &targets);
	/* the objects beat the plain chunks they replace, by far */
	ck_assert_uint_lt(st.object_bytes * 3, st.replaced_plain);
	/* moved code makes residual objects, the rest zstd with a reference */
	ck_assert_uint_gt(codecs[SLOTSYNC_DELTA_RESIDUAL], 0);
	ck_assert_uint_gt(codecs[SLOTSYNC_DELTA_ZSTD_REF], 0);
	/* random bytes have no zstd frames */
	ck_assert_uint_eq(codecs[SLOTSYNC_DELTA_ZSTD_FRAMES], 0);
	/* new files like the new files before them: ranges of the new image */
	ck_assert_uint_gt(targets, 0);
	slotsync_delta_index_free(d);
	free(buf);
	pair_free(&p);
}
END_TEST

/* zstd-compressed blocks: changed blocks share no compressed bytes with the
 * old ones, but their content does; new blocks like each other */
START_TEST(test_frames_round_trip)
{
	struct pair p;
	struct gen_delta_stats st;
	struct slotsync_delta_index *d;
	uint8_t *buf;
	size_t len, codecs[4] = { 0 }, targets = 0;

	pair_make_frames(&p);
	d = generate(&p, &st, &buf, &len);
	check_objects(&p, d, &st, codecs, &targets);
	ck_assert_uint_gt(codecs[SLOTSYNC_DELTA_ZSTD_FRAMES], 0);
	/* the new blocks are text like nothing else and gain little; the changed
	 * ones cost a small fraction of their chunks */
	ck_assert_uint_gt(st.replaced_plain, p.novel + 200000);
	ck_assert_msg(st.object_bytes < p.novel + (st.replaced_plain - p.novel) / 10,
		      "%" PRIu64 " bytes of objects for %" PRIu64 " of chunks, %zu of them new blocks", st.object_bytes,
		      st.replaced_plain, p.novel);
	slotsync_delta_index_free(d);
	same_with_one_thread(&p, buf, len);
	free(buf);
	pair_free(&p);
}
END_TEST

/* the same objects whatever the number of threads */
START_TEST(test_deterministic)
{
	struct pair p;
	struct gen_delta_stats st;
	uint8_t *a;
	size_t la;
	struct slotsync_delta_index *d;

	pair_make(&p);
	d = generate(&p, &st, &a, &la);
	slotsync_delta_index_free(d);
	same_with_one_thread(&p, a, la);
	free(a);
	pair_free(&p);
}
END_TEST

static void expect_parse_error(const uint8_t *buf, size_t len, const char *what)
{
	struct slotsync_delta_index *d = NULL;
	struct slotsync_error err = { 0 };


	ck_assert_int_lt(slotsync_delta_index_parse(buf, len, &d, &err), 0);
	ck_assert_ptr_null(d);
	ck_assert_msg(strstr(err.msg, what) != NULL, "\"%s\" lacks \"%s\"", err.msg, what);
}

/* re-seals a modified index (its tail digest) */
static void reseal(uint8_t *buf, size_t len)
{
	ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len - 32, buf + len - 32), 0);
}

START_TEST(test_parse_refusals)
{
	struct slotsync_delta_index d = { 0 }, *back;
	struct slotsync_delta_object obj[2] = { 0 };
	struct slotsync_delta_ref refs[2] = { { 0, 10, 100, 0 }, { 1, 0, 50, 1 } };
	struct slotsync_error err = { 0 };
	uint8_t *buf, *m;
	size_t len;

	obj[0] = (struct slotsync_delta_object){ .size = 10, .codec = SLOTSYNC_DELTA_ZSTD_REF, .first = 0, .count = 2,
						 .ref_first = 0, .ref_count = 1 };
	obj[1] = (struct slotsync_delta_object){ .size = 20, .codec = SLOTSYNC_DELTA_RESIDUAL, .first = 5, .count = 1,
						 .ref_first = 1, .ref_count = 1 };
	d.n_objects = 2;
	d.n_refs = 2;
	d.objects = obj;
	d.refs = refs;
	d.base_size = 1000;
	d.new_size = 2000;
	ck_assert_int_eq(slotsync_delta_index_serialize(&d, &buf, &len, &err), 0);
	ck_assert_int_eq(slotsync_delta_index_parse(buf, len, &back, &err), 0);
	ck_assert_uint_eq(back->objects[1].first, 5);
	ck_assert_uint_eq(back->refs[1].length, 50);
	/* a range of the new image keeps its mark, a base range has none */
	ck_assert_uint_eq(back->refs[1].chunk, 1);
	ck_assert_uint_eq(back->refs[1].target, 1);
	ck_assert_uint_eq(back->refs[0].target, 0);
	ck_assert_int_eq(slotsync_delta_object_uses_target(back, &back->objects[1]), 1);
	ck_assert_int_eq(slotsync_delta_object_uses_target(back, &back->objects[0]), 0);
	slotsync_delta_index_free(back);

	/* the file is a zstd frame with its size: the raw bytes are refused */
	{
		struct slotsync_delta_index *x = NULL;
		uint8_t *packed;
		size_t plen;
		ck_assert_int_lt(slotsync_delta_index_load(buf, len, &x, &err), 0);
		ck_assert_msg(strstr(err.msg, "not a zstd frame") != NULL, "%s", err.msg);
		ck_assert_int_eq(slotsync_delta_index_pack(&d, &packed, &plen, &err), 0);
		ck_assert_int_eq(slotsync_delta_index_load(packed, plen, &x, &err), 0);
		ck_assert_uint_eq(x->n_objects, 2);
		slotsync_delta_index_free(x);
		free(packed);
	}
	m = malloc(len);
	expect_parse_error(buf, 50, "truncated");
	expect_parse_error(buf, len - 1, "need");
	memcpy(m, buf, len);
	m[0] = 'X';
	expect_parse_error(m, len, "magic");
	memcpy(m, buf, len);
	m[100] ^= 1; /* an object id bit: the tail no longer matches */
	expect_parse_error(m, len, "damaged");
	memcpy(m, buf, len);
	m[96 + 36] = 9;
	reseal(m, len);
	expect_parse_error(m, len, "unknown codec");
	memcpy(m, buf, len);
	io_put_le32(m + 96 + 60 + 40, 1); /* object 1 starts inside object 0 */
	reseal(m, len);
	expect_parse_error(m, len, "overlaps");
	memcpy(m, buf, len);
	io_put_le32(m + 96 + 60 + 48, 7); /* references out of the table */
	reseal(m, len);
	expect_parse_error(m, len, "out of the table");
	memcpy(m, buf, len);
	io_put_le32(m + 96 + 120 + 8, SLOTSYNC_DELTA_REF_MAX + 1);
	reseal(m, len);
	expect_parse_error(m, len, "a reference of");
	free(m);
	free(buf);
}
END_TEST

START_TEST(test_check_against_indexes)
{
	struct pair p;
	struct gen_delta_stats st;
	struct slotsync_error err = { 0 };
	struct slotsync_delta_index *d;
	uint8_t *buf, bd[32], nd[32];
	size_t len;

	pair_make(&p);
	d = generate(&p, &st, &buf, &len);
	ck_assert_int_eq(slotsync_index_digest(p.bi, bd, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(p.ni, nd, &err), 0);
	/* another base */
	ck_assert_int_lt(slotsync_delta_index_check(d, p.ni, nd, p.ni, nd, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "another base"));
	/* a reference past the base image */
	slotsync_error_clear(&err);
	d->refs[0].target = 0;
	d->refs[0].chunk = (uint32_t)p.bi->n_chunks;
	ck_assert_int_lt(slotsync_delta_index_check(d, p.bi, bd, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "outside the base image") != NULL, "%s", err.msg);
	/* a range of the new image that is the object's own output, or runs into it */
	slotsync_error_clear(&err);
	d->refs[0].target = 1;
	d->refs[0].chunk = d->objects[0].first;
	ck_assert_int_lt(slotsync_delta_index_check(d, p.bi, bd, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "not before its output") != NULL, "%s", err.msg);
	ck_assert_uint_gt(d->objects[0].first, 0);
	slotsync_error_clear(&err);
	d->refs[0].chunk = d->objects[0].first - 1;
	d->refs[0].offset = 0;
	d->refs[0].length = (uint32_t)slotsync_index_chunk_size(p.ni, d->objects[0].first - 1) + 1;
	ck_assert_int_lt(slotsync_delta_index_check(d, p.bi, bd, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "runs into its output") != NULL, "%s", err.msg);
	d->refs[0].target = 0;
	d->refs[0].chunk = (uint32_t)p.bi->n_chunks - 1;
	d->refs[0].offset = 0;
	d->refs[0].length = (uint32_t)slotsync_index_chunk_size(p.bi, p.bi->n_chunks - 1) + 1;
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_index_check(d, p.bi, bd, p.ni, nd, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "past the base image"));
	slotsync_delta_index_free(d);
	free(buf);
	pair_free(&p);
}
END_TEST

/* A pack index (no base): accepted only with no base, no ranges and plain
 * ZSTD_REF objects; a base's index is not taken for one, nor one for a base. */
START_TEST(test_pack_index_check)
{
	struct pair p;
	struct gen_delta_stats st;
	struct slotsync_error err = { 0 };
	struct slotsync_delta_index *d;
	static const uint8_t none[32];
	uint8_t *buf, bd[32], nd[32];
	size_t len;

	pair_make(&p);
	d = generate(&p, &st, &buf, &len);
	ck_assert_int_eq(slotsync_index_digest(p.bi, bd, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(p.ni, nd, &err), 0);
	ck_assert(!slotsync_delta_base_is_none(bd));
	/* a base's delta index is no pack index */
	ck_assert_int_lt(slotsync_delta_index_check(d, NULL, none, p.ni, nd, &err), 0);
	/* made one: no base, size 0, no ranges, ZSTD_REF only */
	memset(d->base_digest, 0, sizeof(d->base_digest));
	d->base_size = 0;
	d->n_refs = 0;
	for (uint32_t i = 0; i < d->n_objects; i++) {
		d->objects[i].codec = SLOTSYNC_DELTA_ZSTD_REF;
		d->objects[i].ref_first = d->objects[i].ref_count = 0;
	}
	slotsync_error_clear(&err);
	ck_assert_msg(slotsync_delta_index_check(d, NULL, none, p.ni, nd, &err) == 0, "%s", err.msg);
	/* ... which a device with a base does not take for its base's */
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_index_check(d, p.bi, none, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "pack index") != NULL, "%s", err.msg);
	/* a pack with a range, or another codec, or a base size: refused */
	slotsync_error_clear(&err);
	d->objects[0].ref_count = 1;
	ck_assert_int_lt(slotsync_delta_index_check(d, NULL, none, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "not a plain zstd frame") != NULL, "%s", err.msg);
	d->objects[0].ref_count = 0;
	d->objects[0].codec = SLOTSYNC_DELTA_RESIDUAL;
	ck_assert_int_lt(slotsync_delta_index_check(d, NULL, none, p.ni, nd, &err), 0);
	d->objects[0].codec = SLOTSYNC_DELTA_ZSTD_REF;
	d->base_size = 1;
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_index_check(d, NULL, none, p.ni, nd, &err), 0);
	ck_assert_msg(strstr(err.msg, "no base") != NULL, "%s", err.msg);
	slotsync_delta_index_free(d);
	free(buf);
	pair_free(&p);
}
END_TEST

START_TEST(test_decode_refusals)
{
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	uint8_t src[4096], ref[512], out[4096], z[8192], frame[6000];
	size_t zn;

	test_fill_random(ref, sizeof(ref), 3);
	memset(src, 0, sizeof(src));
	/* a bomb: declares more than the object may rebuild */
	zn = ZSTD_compress(z, sizeof(z), src, sizeof(src), 3);
	ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_REF, z, zn, ref, sizeof(ref), out, 1000, &err),
			 -EFBIG);
	/* not a frame */
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_REF, src, 100, ref, sizeof(ref), out, 100, &err),
			 0);
	/* a residual frame whose header is wrong: K = 0 (output: 50 bytes, one block) */
	ck_assert_uint_ge(SLOTSYNC_DELTA_BLOCK, 50);
	memset(frame, 0, sizeof(frame));
	zn = ZSTD_compress(z, sizeof(z), frame, 1 + 1 + 50, 3);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_RESIDUAL, z, zn, ref, sizeof(ref), out, 50, &err), 0);
	/* K = 1, a selector past K */
	slotsync_error_clear(&err);
	frame[0] = 1;
	frame[5] = 7;
	zn = ZSTD_compress(z, sizeof(z), frame, 1 + 4 + 1 + 50, 3);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_RESIDUAL, z, zn, ref, sizeof(ref), out, 50, &err), 0);
	ck_assert_msg(strstr(err.msg, "selects") != NULL, "%s", err.msg);
	/* the same with selector 0: prediction from the reference, plus residual */
	frame[5] = 0;
	for (int i = 0; i < 50; i++)
		frame[6 + i] = (uint8_t)i;
	io_put_le32((uint8_t *)frame + 1, 10);
	zn = ZSTD_compress(z, sizeof(z), frame, 1 + 4 + 1 + 50, 3);
	ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_RESIDUAL, z, zn, ref, sizeof(ref), out, 50, &err), 0);
	for (int i = 0; i < 50; i++)
		ck_assert_uint_eq(out[i], (uint8_t)(ref[10 + i] + i));
	/* an unknown codec */
	ck_assert_int_lt(slotsync_delta_decode(dec, 7, z, zn, ref, sizeof(ref), out, 100, &err), 0);
	slotsync_delta_decoder_free(dec);
}
END_TEST

/* ZSTD_FRAMES: the expansion of a reference, and records a device refuses */
START_TEST(test_frames_decode)
{
	struct slotsync_delta_decoder *dec = slotsync_delta_decoder_new();
	struct slotsync_error err = { 0 };
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	uint8_t *content = malloc(FBLOCK), *ref = malloc(2 * FBLOCK), *x = malloc(4 * FBLOCK), *rec = malloc(2 * FBLOCK),
		*z = malloc(ZSTD_compressBound(2 * FBLOCK)), *out = malloc(2 * FBLOCK), *frame = malloc(FBLOCK);
	size_t fz, rl, xl, n, zn;

	fill_text(content, FBLOCK, 77);
	fz = ZSTD_compress(frame, FBLOCK, content, FBLOCK, 15);
	ck_assert(!ZSTD_isError(fz));
	/* a reference: 100 bytes, a frame, 50 bytes */
	test_fill_random(ref, 100, 1);
	memcpy(ref + 100, frame, fz);
	test_fill_random(ref + 100 + fz, 50, 2);
	rl = 150 + fz;
	xl = slotsync_delta_expand(dc, ref, rl, x, 4 * FBLOCK);
	ck_assert_uint_eq(xl, 150 + FBLOCK);
	ck_assert_mem_eq(x, ref, 100);
	ck_assert_mem_eq(x + 100, content, FBLOCK);
	ck_assert_mem_eq(x + 100 + FBLOCK, ref + 100 + fz, 50);
	/* no room for the content: the frame stays as it is; a frame cut short too */
	ck_assert_uint_eq(slotsync_delta_expand(dc, ref, rl, x, FBLOCK), rl);
	ck_assert_mem_eq(x, ref, rl);
	ck_assert_uint_eq(slotsync_delta_expand(dc, ref, 100 + fz - 1, x, 4 * FBLOCK), 100 + fz - 1);

	/* records: 10 bytes, then the frame compressed again, all but its last 5 bytes */
#define RECORDS(level, csize, skip, take)                                   \
	do {                                                                 \
		rec[0] = 0;                                                  \
		io_put_le32(rec + 1, 10);                                    \
		memcpy(rec + 5, "0123456789", 10);                            \
		rec[15] = 1;                                                 \
		rec[16] = (uint8_t)(level);                                  \
		io_put_le32(rec + 17, (uint32_t)(csize));                    \
		io_put_le32(rec + 21, (uint32_t)(skip));                     \
		io_put_le32(rec + 25, (uint32_t)(take));                     \
		io_put_le32(rec + 29, FBLOCK);                               \
		memcpy(rec + 33, content, FBLOCK);                           \
		zn = ZSTD_compress(z, ZSTD_compressBound(2 * FBLOCK), rec, 33 + FBLOCK, 3); \
	} while (0)
	n = 10 + fz - 5;
	RECORDS(15, fz, 0, fz - 5);
	ck_assert_msg(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err) == 0, "%s",
		      err.msg);
	ck_assert_mem_eq(out, "0123456789", 10);
	ck_assert_mem_eq(out + 10, frame, fz - 5);
	/* bounded work: a frame whose head is skipped must start the output... */
	RECORDS(15, fz, 5, fz - 5);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "does not start the output") != NULL, "%s", err.msg);
	/* ...and one whose tail is left off must end it */
	RECORDS(15, fz, 0, fz - 5);
	rec[33 + FBLOCK] = 0;
	io_put_le32(rec + 34 + FBLOCK, 1);
	rec[38 + FBLOCK] = 'X';
	zn = ZSTD_compress(z, ZSTD_compressBound(2 * FBLOCK), rec, 39 + FBLOCK, 3);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n + 1, &err),
			 -EBADMSG);
	ck_assert_msg(strstr(err.msg, "does not end the output") != NULL, "%s", err.msg);
	/* one byte more or less than the records give */
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n - 1, &err), 0);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n + 1, &err), 0);
	/* another level: the frame does not come out the same */
	RECORDS(3, fz, 0, fz - 5);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err), 0);
	ck_assert_msg(strstr(err.msg, "compressed again") != NULL, "%s", err.msg);
	/* a level a device does not compress at, a take past the frame */
	RECORDS(22, fz, 0, fz - 5);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err), 0);
	ck_assert_msg(strstr(err.msg, "out of bounds") != NULL, "%s", err.msg);
	RECORDS(15, fz, 5, fz);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n + 5, &err), 0);
	ck_assert_msg(strstr(err.msg, "out of bounds") != NULL, "%s", err.msg);
	/* an unknown record */
	RECORDS(15, fz, 0, fz - 5);
	rec[15] = 9;
	zn = ZSTD_compress(z, ZSTD_compressBound(2 * FBLOCK), rec, 33 + FBLOCK, 3);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err), 0);
	ck_assert_msg(strstr(err.msg, "unknown record") != NULL, "%s", err.msg);
	/* a bytes record longer than the output */
	io_put_le32(rec + 1, 1u << 30);
	zn = ZSTD_compress(z, ZSTD_compressBound(2 * FBLOCK), rec, 33 + FBLOCK, 3);
	ck_assert_int_lt(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, z, zn, ref, rl, out, n, &err), 0);
	/* a bomb: records declared over the limit */
	{
		uint8_t *big = calloc(1, SLOTSYNC_DELTA_XOUT_MAX + 1);
		uint8_t *bz = malloc(ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX + 1));
		size_t bn = ZSTD_compress(bz, ZSTD_compressBound(SLOTSYNC_DELTA_XOUT_MAX + 1), big,
					  SLOTSYNC_DELTA_XOUT_MAX + 1, 3);
		ck_assert_int_eq(slotsync_delta_decode(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, bz, bn, ref, rl, out, n, &err),
				 -EFBIG);
		free(big);
		free(bz);
	}
#undef RECORDS
	ZSTD_freeDCtx(dc);
	slotsync_delta_decoder_free(dec);
	free(content);
	free(ref);
	free(x);
	free(rec);
	free(z);
	free(out);
	free(frame);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("delta");
	TCase *tc = tcase_create("delta");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_frames_round_trip);
	tcase_add_test(tc, test_deterministic);
	tcase_add_test(tc, test_parse_refusals);
	tcase_add_test(tc, test_check_against_indexes);
	tcase_add_test(tc, test_pack_index_check);
	tcase_add_test(tc, test_decode_refusals);
	tcase_add_test(tc, test_frames_decode);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
