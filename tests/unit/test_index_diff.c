/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The index diff: the new index rebuilt byte for byte from the base and the
 * diff for real pairs of images, and every hostile diff refused by name
 * without allocating more than the full index would need. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "fixtures.h"
#include "io.h"
#include "slotsync/index.h"
#include "test_util.h"

#define IMG_LEN (2u << 20)
#define LIMIT (64u << 20)

struct pair {
	char *dir;
	struct fx_image a, b;
	uint8_t da[32], db[32];
};

static void pair_make(struct pair *p, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct slotsync_error err = { 0 };

	p->dir = test_mkdtemp();
	fx_image_make_from(&p->a, p->dir, "a", a, alen, NULL);
	fx_image_make_from(&p->b, p->dir, "b", b, blen, NULL);
	ck_assert_int_eq(slotsync_index_digest(p->a.index, p->da, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(p->b.index, p->db, &err), 0);
}

static void pair_free(struct pair *p)
{
	fx_image_free(&p->a);
	fx_image_free(&p->b);
	test_rmdir(p->dir);
}

/* Makes the diff of b against a, applies it, and checks the rebuilt index is
 * b's file byte for byte; returns the diff's size. */
static size_t round_trip(struct pair *p)
{
	struct slotsync_error err = { 0 };
	uint8_t *diff, *out, *want;
	size_t diff_len, out_len, want_len;

	ck_assert_msg(slotsync_index_diff_make(p->a.index, p->b.index, &diff, &diff_len, &err) == 0, "%s", err.msg);
	ck_assert_msg(slotsync_index_diff_apply(p->a.index, p->da, p->db, diff, diff_len, LIMIT, &out, &out_len, &err) == 0,
		      "%s", err.msg);
	want = fx_read_file(p->b.idx, &want_len);
	ck_assert_uint_eq(out_len, want_len);
	ck_assert(memcmp(out, want, out_len) == 0);
	free(want);
	free(out);
	free(diff);
	return diff_len;
}

static uint8_t *random_image(size_t len, uint64_t seed)
{
	uint8_t *d = malloc(len);
	test_fill_random(d, len, seed);
	return d;
}

START_TEST(test_identical)
{
	uint8_t *a = random_image(IMG_LEN, 1);
	struct pair p;
	size_t n;

	pair_make(&p, a, IMG_LEN, a, IMG_LEN);
	n = round_trip(&p);
	/* one copy op: the diff is the header, whatever the index's size */
	ck_assert_uint_lt(n, 200);
	pair_free(&p);
	free(a);
}
END_TEST

START_TEST(test_disjoint)
{
	uint8_t *a = random_image(IMG_LEN, 1), *b = random_image(IMG_LEN, 2);
	struct pair p;

	pair_make(&p, a, IMG_LEN, b, IMG_LEN);
	round_trip(&p);
	pair_free(&p);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_small_change_is_small)
{
	uint8_t *a = random_image(IMG_LEN, 1), *b = malloc(IMG_LEN);
	struct pair p;
	size_t n, full;

	memcpy(b, a, IMG_LEN);
	memset(b + IMG_LEN / 2, 0x5a, 5000);
	pair_make(&p, a, IMG_LEN, b, IMG_LEN);
	n = round_trip(&p);
	full = SLOTSYNC_CAIBX_HEADER_BYTES + p.b.index->n_chunks * 40u;
	ck_assert_msg(n * 10 < full, "diff of %zu bytes for an index of %zu", n, full);
	pair_free(&p);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_reordered)
{
	uint8_t *a = random_image(IMG_LEN, 3), *b = malloc(IMG_LEN);
	struct pair p;

	/* the halves swapped: both runs are copies, from other positions */
	memcpy(b, a + IMG_LEN / 2, IMG_LEN / 2);
	memcpy(b + IMG_LEN / 2, a, IMG_LEN / 2);
	pair_make(&p, a, IMG_LEN, b, IMG_LEN);
	round_trip(&p);
	pair_free(&p);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_shrunk_and_grown)
{
	uint8_t *a = random_image(IMG_LEN, 4), *b = random_image(IMG_LEN * 2, 5);
	struct pair p;

	memcpy(b + 100000, a, IMG_LEN);
	pair_make(&p, a, IMG_LEN, b, IMG_LEN * 2); /* grown */
	round_trip(&p);
	pair_free(&p);
	pair_make(&p, b, IMG_LEN * 2, a, IMG_LEN / 3); /* shrunk */
	round_trip(&p);
	pair_free(&p);
	pair_make(&p, a, IMG_LEN, a, 0); /* to nothing */
	round_trip(&p);
	pair_free(&p);
	free(a);
	free(b);
}
END_TEST

/* ---- hostile diffs ---- */

static uint8_t *zpack(const uint8_t *raw, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *z = malloc(cap);
	*out_len = ZSTD_compress(z, cap, raw, len, 1);
	ck_assert(!ZSTD_isError(*out_len));
	return z;
}

/* The decoded diff of b against a, for tampering. */
static uint8_t *raw_diff(struct pair *p, size_t *len)
{
	struct slotsync_error err = { 0 };
	uint8_t *diff, *raw;
	size_t diff_len;
	unsigned long long n;

	ck_assert_int_eq(slotsync_index_diff_make(p->a.index, p->b.index, &diff, &diff_len, &err), 0);
	n = ZSTD_getFrameContentSize(diff, diff_len);
	raw = malloc(n + 64);
	ck_assert_uint_eq(ZSTD_decompress(raw, n, diff, diff_len), n);
	*len = n;
	free(diff);
	return raw;
}

static void expect_refused(struct pair *p, const uint8_t *raw, size_t len, size_t limit, const char *words)
{
	struct slotsync_error err = { 0 };
	uint8_t *z, *out = NULL;
	size_t zlen, out_len;

	z = zpack(raw, len, &zlen);
	ck_assert_int_lt(slotsync_index_diff_apply(p->a.index, p->da, p->db, z, zlen, limit, &out, &out_len, &err), 0);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err.msg, words), "\"%s\" lacks \"%s\"", err.msg, words);
	free(z);
}

START_TEST(test_hostile)
{
	uint8_t *a = random_image(IMG_LEN, 6), *b = malloc(IMG_LEN);
	struct slotsync_error err = { 0 };
	uint8_t *raw, *t, *diff, *out = NULL, other[32] = { 1 };
	size_t len, diff_len, out_len, first_op = SLOTSYNC_INDEX_DIFF_HEADER_BYTES;
	struct pair p;

	memcpy(b, a, IMG_LEN);
	memset(b + IMG_LEN / 2, 0x33, 300000); /* copy, new, copy */
	pair_make(&p, a, IMG_LEN, b, IMG_LEN);
	raw = raw_diff(&p, &len);
	t = malloc(len + 64);
	ck_assert_uint_eq(raw[first_op], 0); /* the first op copies */

	/* another base, another new index: refused by name */
	ck_assert_int_eq(slotsync_index_diff_make(p.a.index, p.b.index, &diff, &diff_len, &err), 0);
	ck_assert_int_eq(slotsync_index_diff_apply(p.a.index, other, p.db, diff, diff_len, LIMIT, &out, &out_len, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "is for base index"), "%s", err.msg);
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_index_diff_apply(p.a.index, p.da, other, diff, diff_len, LIMIT, &out, &out_len, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "not the signed"), "%s", err.msg);
	slotsync_error_clear(&err);
	/* truncated frame, trailing bytes, not zstd */
	ck_assert_int_lt(slotsync_index_diff_apply(p.a.index, p.da, p.db, diff, diff_len - 3, LIMIT, &out, &out_len, &err), 0);
	ck_assert_int_lt(slotsync_index_diff_apply(p.a.index, p.da, p.db, raw, len, LIMIT, &out, &out_len, &err), 0);
	ck_assert_ptr_null(out);
	/* the right frame, but the index it would rebuild is over the caller's limit */
	ck_assert_int_lt(slotsync_index_diff_apply(p.a.index, p.da, p.db, diff, diff_len, 1000, &out, &out_len, &err), 0);
	free(diff);

	/* a changed id in the payload: rebuilt, but not the signed index */
	memcpy(t, raw, len);
	ck_assert_uint_eq(t[first_op + 9], 1); /* then a new op */
	t[first_op + 9 + 5 + 4] ^= 1;
	expect_refused(&p, t, len, LIMIT, "does not have the signed SHA-256");
	/* a copy out of the base's range */
	memcpy(t, raw, len);
	io_put_le32(t + first_op + 1, (uint32_t)p.a.index->n_chunks);
	expect_refused(&p, t, len, LIMIT, "the base has");
	io_put_le32(t + first_op + 1, UINT32_MAX - 1);
	expect_refused(&p, t, len, LIMIT, "the base has");
	/* counts that lie: the header's, an op's */
	memcpy(t, raw, len);
	io_put_le64(t + 104, io_get_le64(t + 104) + 1);
	expect_refused(&p, t, len, LIMIT, "its ops give");
	memcpy(t, raw, len);
	io_put_le64(t + 104, UINT64_MAX / 2);
	expect_refused(&p, t, len, LIMIT, "over the limit");
	memcpy(t, raw, len);
	io_put_le32(t + first_op + 5, 0);
	expect_refused(&p, t, len, LIMIT, "entries");
	memcpy(t, raw, len);
	io_put_le32(t + 112, io_get_le32(t + 112) + 1);
	expect_refused(&p, t, len, LIMIT, "cut short");
	memcpy(t, raw, len);
	t[first_op] = 7;
	expect_refused(&p, t, len, LIMIT, "unknown kind");
	/* truncated content, trailing content, wrong magic */
	expect_refused(&p, raw, len - 10, LIMIT, "cut short");
	memcpy(t, raw, len);
	memset(t + len, 0, 8);
	expect_refused(&p, t, len + 8, LIMIT, "after its last op");
	memcpy(t, raw, len);
	t[0] = 'X';
	expect_refused(&p, t, len, LIMIT, "wrong magic");
	expect_refused(&p, raw, 50, LIMIT, "content size");
	/* a diff whose header names, as its new digest, the digest of the bytes
	 * it rebuilds, but those bytes are no index (chunk_size_max 1): refused,
	 * nothing given */
	{
		uint8_t *full, d2[32];
		size_t full_len, zlen;
		uint8_t *z;
		ck_assert_int_eq(slotsync_index_serialize(p.b.index, &full, &full_len, &err), 0);
		io_put_le64(full + 40, 1);
		ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, full, full_len, d2), 0);
		memcpy(t, raw, len);
		memcpy(t + 40, d2, 32);
		io_put_le64(t + 96, 1);
		z = zpack(t, len, &zlen);
		slotsync_error_clear(&err);
		ck_assert_int_eq(slotsync_index_diff_apply(p.a.index, p.da, d2, z, zlen, LIMIT, &out, &out_len, &err),
				 -EBADMSG);
		ck_assert_ptr_null(out);
		ck_assert_msg(strstr(err.msg, "is not an index"), "%s", err.msg);
		free(z);
		free(full);
	}
	free(t);
	free(raw);
	pair_free(&p);
	free(a);
	free(b);
}
END_TEST

/* A small frame that declares more than the caller's limit on an index:
 * refused before its content is allocated. */
START_TEST(test_bomb)
{
	uint8_t *a = random_image(IMG_LEN, 7);
	size_t big = (size_t)16 << 20, zlen;
	uint8_t *zeros = calloc(1, big), *z, *out = NULL;
	struct slotsync_error err = { 0 };
	struct pair p;

	pair_make(&p, a, IMG_LEN, a, IMG_LEN);
	memcpy(zeros, SLOTSYNC_INDEX_DIFF_MAGIC, 8);
	z = zpack(zeros, big, &zlen);
	free(zeros);
	ck_assert_uint_lt(zlen, 10000);
	ck_assert_int_eq(slotsync_index_diff_apply(p.a.index, p.da, p.db, z, zlen, 1u << 20, &out, &zlen, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "impossible content size"), "%s", err.msg);
	free(z);
	pair_free(&p);
	free(a);
}
END_TEST

START_TEST(test_path)
{
	uint8_t b[32], n[32];
	char path[200];

	memset(b, 0xab, 32);
	memset(n, 0x01, 32);
	slotsync_index_diff_path(b, n, path, sizeof(path));
	ck_assert_str_eq(path, "deltas/abababababababababababababababababababababababababababababababab/"
			       "0101010101010101010101010101010101010101010101010101010101010101.sdid");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("index_diff");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_identical);
	tcase_add_test(tc, test_disjoint);
	tcase_add_test(tc, test_small_change_is_small);
	tcase_add_test(tc, test_reordered);
	tcase_add_test(tc, test_shrunk_and_grown);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_bomb);
	tcase_add_test(tc, test_path);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
