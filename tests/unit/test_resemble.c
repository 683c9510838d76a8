/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* delta-gen/resemble.c: the anchor table of a base is sorted by key and then
 * position, holds each sampled position once, and a new piece cut from the
 * base at some offset votes for that offset's diagonal first. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "delta_internal.h"
#include "test_util.h"

START_TEST(test_anchors_sorted_and_found)
{
	const size_t size = 8u << 20;
	uint8_t *base = malloc(size), *piece;
	struct space sp = { 0 };
	struct slotsync_error err = { 0 };
	struct diag dg[DIAG_PER_CHUNK];
	int64_t *buf = NULL;
	size_t cap = 0, nd;

	ck_assert_ptr_nonnull(base);
	test_fill_random(base, size, 7);
	/* a run of one byte value holds no anchor */
	memset(base + (1u << 20), 0, 65536);
	sp.p = base;
	sp.size = size;
	ck_assert_int_eq(resemble_build_anchors(&sp, &err), 0);
	/* about one position in 32 */
	ck_assert_uint_gt(sp.n_anchors, size / 64);
	ck_assert_uint_lt(sp.n_anchors, size / 16);
	for (size_t i = 1; i < sp.n_anchors; i++)
		ck_assert_msg(sp.anchors[i - 1] < sp.anchors[i], "anchors %zu and %zu out of order", i - 1, i);
	for (size_t i = 0; i < sp.n_anchors; i++) {
		uint64_t p = sp.anchors[i] & ANCHOR_POS_MASK;
		ck_assert_uint_le(p + 8, size);
		ck_assert_msg(p < (1u << 20) || p >= (1u << 20) + 65536 - 7, "an anchor in the zero run at %llu",
			      (unsigned long long)p);
	}

	/* 64 KiB of the base at 5,000,001, with every 1000th byte changed */
	piece = malloc(65536);
	memcpy(piece, base + 5000001, 65536);
	for (size_t i = 0; i < 65536; i += 1000)
		piece[i] ^= 0x5a;
	nd = resemble_vote(&sp, piece, 0, 65536, &buf, &cap, dg);
	ck_assert_uint_ge(nd, 1);
	ck_assert_int_eq(dg[0].d, 5000001);
	ck_assert_uint_gt(dg[0].votes, 65536 / 64);
	/* at an offset into the piece, the same diagonal */
	nd = resemble_vote(&sp, piece, 30000, 65536, &buf, &cap, dg);
	ck_assert_uint_ge(nd, 1);
	ck_assert_int_eq(dg[0].d, 5000001);

	free(buf);
	free(piece);
	free(sp.anchors);
	free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resemble");
	TCase *tc = tcase_create("resemble");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_anchors_sorted_and_found);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
