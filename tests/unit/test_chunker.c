/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunker: limits, independence from buffer sizes, locality of edits. */
#include <check.h>
#include <stdlib.h>

#include "slotsync/chunker.h"
#include "test_util.h"
#include <errno.h>

#define DATA_LEN (8u << 20)

/* Cuts data feeding it in pieces of `step` bytes; returns the number of chunks
 * and fills ends[] with end offsets. */
static size_t cut_all(const struct slotsync_chunker_params *p, const uint8_t *data, size_t len, size_t step,
		      size_t *ends, size_t max_ends)
{
	struct slotsync_error err = { 0 };
	struct slotsync_chunker *c = slotsync_chunker_new(p, &err);
	size_t n = 0, off = 0, fed = 0;

	ck_assert_ptr_nonnull(c);
	while (fed < len) {
		size_t piece = len - fed < step ? len - fed : step;
		size_t at = 0;
		while (at < piece) {
			size_t r = slotsync_chunker_scan(c, data + fed + at, piece - at);
			if (r == SIZE_MAX)
				break;
			at += r;
			off = fed + at;
			ck_assert_uint_lt(n, max_ends);
			ends[n++] = off;
		}
		fed += piece;
	}
	if (off < len)
		ends[n++] = len;
	slotsync_chunker_free(c);
	return n;
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
	uint8_t *d = malloc(len);

	test_fill_random(d, len, seed);
	/* some long runs of zeros and repeated text, as real images have */
	memset(d + len / 3, 0, 300000);
	for (size_t i = 0; i < 200000; i++)
		d[len / 2 + i] = "the quick brown fox "[i % 20];
	return d;
}

START_TEST(test_limits_respected)
{
	const struct slotsync_chunker_params ps[] = {
		{ 4096, 16384, 65536 }, { 16384, 65536, 262144 }, { 1024, 4096, 8192 }, { 8192, 8192, 8192 },
	};
	uint8_t *d = make_data(DATA_LEN, 7);
	size_t *ends = malloc(sizeof(size_t) * DATA_LEN / 64);

	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		size_t n = cut_all(&ps[k], d, DATA_LEN, DATA_LEN, ends, DATA_LEN / 64);
		size_t prev = 0;
		double avg = (double)DATA_LEN / (double)n;
		for (size_t i = 0; i < n; i++) {
			size_t sz = ends[i] - prev;
			ck_assert_uint_le(sz, ps[k].max_bytes);
			if (i + 1 < n)
				ck_assert_uint_ge(sz, ps[k].min_bytes);
			prev = ends[i];
		}
		ck_assert_uint_eq(prev, DATA_LEN);
		/* normalized chunking keeps the mean near the target */
		ck_assert(avg > ps[k].avg_bytes * 0.5 && avg < ps[k].avg_bytes * 2.0);
	}
	free(ends);
	free(d);
}
END_TEST

START_TEST(test_same_cuts_for_every_buffer_size)
{
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	const size_t steps[] = { 1, 7, 63, 64, 65, 4095, 4096, 65537, 1u << 20, DATA_LEN };
	uint8_t *d = make_data(DATA_LEN / 4, 11);
	size_t *ref = malloc(sizeof(size_t) * DATA_LEN / 64), *got = malloc(sizeof(size_t) * DATA_LEN / 64);
	size_t nref = cut_all(&p, d, DATA_LEN / 4, DATA_LEN, ref, DATA_LEN / 64);

	ck_assert_uint_gt(nref, 10);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		size_t n = cut_all(&p, d, DATA_LEN / 4, steps[k], got, DATA_LEN / 64);
		ck_assert_uint_eq(n, nref);
		ck_assert_mem_eq(got, ref, n * sizeof(size_t));
	}
	free(ref);
	free(got);
	free(d);
}
END_TEST

START_TEST(test_insertion_changes_only_nearby_chunks)
{
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	size_t len = DATA_LEN, ins = 100, at = 50000;
	uint8_t *a = make_data(len, 3), *b = malloc(len + ins);
	size_t *ea = malloc(sizeof(size_t) * len / 64), *eb = malloc(sizeof(size_t) * len / 64);
	size_t na, nb, common = 0;

	memcpy(b, a, at);
	test_fill_random(b + at, ins, 99);
	memcpy(b + at + ins, a + at, len - at);
	na = cut_all(&p, a, len, len, ea, len / 64);
	nb = cut_all(&p, b, len + ins, len, eb, len / 64);
	/* boundaries after the insertion, shifted by ins, must mostly coincide */
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (ea[i] + ins == eb[j] && ea[i] > at) {
			common++;
			i++;
			j++;
		} else if (ea[i] + ins < eb[j]) {
			i++;
		} else {
			j++;
		}
	}
	/* all but the few chunks around the insertion survive */
	ck_assert_uint_ge(common + 4, na - 3);
	/* and every chunk that ends before the insertion is unchanged */
	for (size_t i = 0; i < na && ea[i] <= at; i++)
		ck_assert_uint_eq(ea[i], eb[i]);
	free(ea);
	free(eb);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_params_parse_and_check)
{
	struct slotsync_chunker_params p;
	struct slotsync_error err = { 0 };

	ck_assert_int_eq(slotsync_chunker_params_parse("4K:16K:64K", &p, &err), 0);
	ck_assert_uint_eq(p.min_bytes, 4096);
	ck_assert_uint_eq(p.avg_bytes, 16384);
	ck_assert_uint_eq(p.max_bytes, 65536);
	ck_assert_int_eq(slotsync_chunker_params_parse("1M:2M:4M", &p, &err), 0);
	ck_assert_uint_eq(p.max_bytes, 4u << 20);
	ck_assert_int_lt(slotsync_chunker_params_parse("64K:16K:4K", &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "min <= avg <= max"));
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_chunker_params_parse("4K:16K", &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "MIN:AVG:MAX"));
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_chunker_params_parse("4K:16X:64K", &p, &err), 0);
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_chunker_params_parse("16:32:64", &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "outside the limits"));
	slotsync_error_clear(&err);
	ck_assert_int_lt(slotsync_chunker_params_parse("4K:16K:1024M", &p, &err), 0);
}
END_TEST

START_TEST(test_empty_and_tiny_input)
{
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	size_t ends[4];
	uint8_t one = 42;

	ck_assert_uint_eq(cut_all(&p, &one, 0, 16, ends, 4), 0);
	ck_assert_uint_eq(cut_all(&p, &one, 1, 16, ends, 4), 1);
	ck_assert_uint_eq(ends[0], 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("chunker");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_limits_respected);
	tcase_add_test(tc, test_same_cuts_for_every_buffer_size);
	tcase_add_test(tc, test_insertion_changes_only_nearby_chunks);
	tcase_add_test(tc, test_params_parse_and_check);
	tcase_add_test(tc, test_empty_and_tiny_input);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
