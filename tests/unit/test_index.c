/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* caibx index: round trip, exact layout, and every malformed input refused with a
 * message that names the problem. */
#include <check.h>
#include <stdlib.h>

#include "slotsync/index.h"
#include "test_util.h"
#include <errno.h>

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static struct slotsync_index *sample_index(size_t n)
{
	struct slotsync_index *idx = slotsync_index_new(4096, 16384, 65536, SLOTSYNC_DIGEST_SHA256);
	struct slotsync_error err = { 0 };

	for (size_t i = 0; i < n; i++) {
		uint8_t id[32];
		test_fill_random(id, sizeof(id), i + 1);
		ck_assert_int_eq(slotsync_index_append(idx, 4096 + (i * 997) % 60000, id, &err), 0);
	}
	return idx;
}

static uint8_t *sample_bytes(size_t n, size_t *len)
{
	struct slotsync_index *idx = sample_index(n);
	struct slotsync_error err = { 0 };
	uint8_t *buf;

	ck_assert_int_eq(slotsync_index_serialize(idx, &buf, len, &err), 0);
	slotsync_index_free(idx);
	return buf;
}

/* Parses buf and expects failure with `needle` in the message. */
static void expect_refused(const uint8_t *buf, size_t len, const char *needle)
{
	struct slotsync_index *idx = NULL;
	struct slotsync_error err = { 0 };

	ck_assert_int_lt(slotsync_index_parse(buf, len, &idx, &err), 0);
	ck_assert_ptr_null(idx);
	ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
}

START_TEST(test_round_trip)
{
	struct slotsync_index *a = sample_index(1000), *b = NULL;
	struct slotsync_error err = { 0 };
	uint8_t *buf;
	size_t len;

	ck_assert_int_eq(slotsync_index_serialize(a, &buf, &len, &err), 0);
	ck_assert_uint_eq(len, 64 + 1000 * 40 + 40);
	ck_assert_int_eq(slotsync_index_parse(buf, len, &b, &err), 0);
	ck_assert_uint_eq(b->n_chunks, 1000);
	ck_assert_int_eq(b->digest, SLOTSYNC_DIGEST_SHA256);
	ck_assert_mem_eq(a->chunks, b->chunks, 1000 * sizeof(a->chunks[0]));
	ck_assert_uint_eq(slotsync_index_image_size(a), slotsync_index_image_size(b));
	free(buf);
	slotsync_index_free(a);
	slotsync_index_free(b);
}
END_TEST

START_TEST(test_layout_is_casync)
{
	size_t len;
	uint8_t *buf = sample_bytes(2, &len);
	uint8_t expect[64];

	put64(expect, 48);
	put64(expect + 8, 0x96824d9c7b129ff9ULL);
	put64(expect + 16, 0);
	put64(expect + 24, 4096);
	put64(expect + 32, 16384);
	put64(expect + 40, 65536);
	put64(expect + 48, UINT64_MAX);
	put64(expect + 56, 0xe75b9e112f17417dULL);
	ck_assert_mem_eq(buf, expect, 64);
	/* tail: two zero words, index offset 48, table size, marker */
	put64(expect, 0);
	put64(expect + 8, 0);
	put64(expect + 16, 48);
	put64(expect + 24, 16 + 2 * 40 + 40);
	put64(expect + 32, 0x4b4f050e5549ecd1ULL);
	ck_assert_mem_eq(buf + len - 40, expect, 40);
	free(buf);
}
END_TEST

START_TEST(test_sha512_256_flag)
{
	size_t len;
	uint8_t *buf = sample_bytes(3, &len);
	struct slotsync_index *idx = NULL;
	struct slotsync_error err = { 0 };

	put64(buf + 16, 0x2000000000000000ULL);
	ck_assert_int_eq(slotsync_index_parse(buf, len, &idx, &err), 0);
	ck_assert_int_eq(idx->digest, SLOTSYNC_DIGEST_SHA512_256);
	slotsync_index_free(idx);
	free(buf);
}
END_TEST

START_TEST(test_empty_index)
{
	size_t len;
	uint8_t *buf = sample_bytes(0, &len);
	struct slotsync_index *idx = NULL;
	struct slotsync_error err = { 0 };

	ck_assert_uint_eq(len, 104);
	ck_assert_int_eq(slotsync_index_parse(buf, len, &idx, &err), 0);
	ck_assert_uint_eq(idx->n_chunks, 0);
	ck_assert_uint_eq(slotsync_index_image_size(idx), 0);
	slotsync_index_free(idx);
	free(buf);
}
END_TEST

START_TEST(test_malformed)
{
	size_t len;
	uint8_t *good = sample_bytes(10, &len);
	uint8_t *b = malloc(len + 100);

	expect_refused(good, 0, "truncated");
	expect_refused(good, 63, "truncated");
	expect_refused(good, 64, "no tail");
	expect_refused(good, len - 1, "truncated");
	expect_refused(good, len - 40, "truncated");
	expect_refused(good, len - 17, "truncated");

	memcpy(b, good, len);
	b[8] ^= 1;
	expect_refused(b, len, "wrong magic");

	memcpy(b, good, len);
	put64(b, 49);
	expect_refused(b, len, "wrong magic");

	memcpy(b, good, len);
	put64(b + 16, 1ULL << 40);
	expect_refused(b, len, "unknown feature flags");

	memcpy(b, good, len);
	put64(b + 24, 100000);
	expect_refused(b, len, "min <= avg <= max");

	memcpy(b, good, len);
	put64(b + 24, 0);
	expect_refused(b, len, "chunk_size_min");

	memcpy(b, good, len);
	put64(b + 40, 1ULL << 40);
	expect_refused(b, len, "chunk_size_max");

	memcpy(b, good, len);
	b[56] ^= 0xff;
	expect_refused(b, len, "table header");

	/* offsets not increasing: chunk 3 ends where chunk 2 did */
	memcpy(b, good, len);
	memcpy(b + 64 + 3 * 40, b + 64 + 2 * 40, 8);
	expect_refused(b, len, "not after the previous end");

	/* a chunk over the maximum */
	memcpy(b, good, len);
	put64(b + 40, 5000);
	put64(b + 32, 5000);
	expect_refused(b, len, "chunk 1 is 5093 bytes, over the maximum 5000");

	/* size overflow: offsets near 2^64, where start + size would wrap; since the
	 * first chunk is measured from 0 too, no chunk can reach there unnoticed */
	memcpy(b, good, len);
	for (int i = 0; i < 10; i++)
		put64(b + 64 + i * 40, UINT64_MAX - 1000 + (uint64_t)i * 100);
	expect_refused(b, len, "chunk 0 is");
	put64(b + 64, 1000);
	expect_refused(b, len, "chunk 1 is");

	/* trailing garbage */
	memcpy(b, good, len);
	memset(b + len, 0xaa, 100);
	expect_refused(b, len + 100, "trailing garbage");
	memset(b + len, 0, 40);
	expect_refused(b, len + 40, "trailing garbage");

	/* a tail whose size field lies */
	memcpy(b, good, len);
	put64(b + len - 16, 16);
	expect_refused(b, len, "truncated");

	free(b);
	free(good);
}
END_TEST

START_TEST(test_file_round_trip_and_errors)
{
	char *dir = test_mkdtemp();
	char path[4096];
	struct slotsync_index *a = sample_index(50), *b = NULL;
	struct slotsync_error err = { 0 };
	uint8_t d1[32], d2[32];

	snprintf(path, sizeof(path), "%s/x.caibx", dir);
	ck_assert_int_eq(slotsync_index_write_file(a, path, &err), 0);
	ck_assert_int_eq(slotsync_index_read_file(path, &b, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(a, d1, &err), 0);
	ck_assert_int_eq(slotsync_index_digest(b, d2, &err), 0);
	ck_assert_mem_eq(d1, d2, 32);
	slotsync_index_free(b);
	b = NULL;

	snprintf(path, sizeof(path), "%s/missing.caibx", dir);
	ck_assert_int_eq(slotsync_index_read_file(path, &b, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "missing.caibx"));
	slotsync_error_clear(&err);

	ck_assert_int_eq(slotsync_index_read_file(dir, &b, &err), -EISDIR);
	slotsync_index_free(a);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_append_limits)
{
	struct slotsync_index *idx = slotsync_index_new(64, 256, 1024, SLOTSYNC_DIGEST_SHA256);
	struct slotsync_error err = { 0 };
	uint8_t id[32] = { 0 };

	ck_assert_int_lt(slotsync_index_append(idx, 0, id, &err), 0);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_index_append(idx, 1025, id, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "outside"));
	ck_assert_int_eq(slotsync_index_append(idx, 1024, id, &err), 0);
	slotsync_index_free(idx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_layout_is_casync);
	tcase_add_test(tc, test_sha512_256_flag);
	tcase_add_test(tc, test_empty_index);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_file_round_trip_and_errors);
	tcase_add_test(tc, test_append_limits);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
