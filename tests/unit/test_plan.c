/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install plan: which chunk of the new image comes from a seed, which
 * from the network, which the journal already holds; repeated chunks fetched
 * once; a seed chunk that fails its check goes back to the network; and the
 * figures a dry run reports. */
#include <check.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"
#include "slotsync/assemble.h"
#include "slotsync/plan.h"

#define IMG_LEN (1u << 20)

static void fake_id(uint8_t id[SLOTSYNC_DIGEST_BYTES], int n)
{
	memset(id, 0, SLOTSYNC_DIGEST_BYTES);
	test_fill_random(id, SLOTSYNC_DIGEST_BYTES, (uint64_t)n + 1000);
}

/* An index of five places: ids 1 2 1 3 1, sizes 100 200 100 300 100. */
static struct slotsync_index *repeated_index(void)
{
	static const int ids[5] = { 1, 2, 1, 3, 1 }, sizes[5] = { 100, 200, 100, 300, 100 };
	struct slotsync_index *idx = slotsync_index_new(64, 128, 512, SLOTSYNC_DIGEST_SHA256);
	struct slotsync_error err = { 0 };
	uint8_t id[SLOTSYNC_DIGEST_BYTES];

	for (int i = 0; i < 5; i++) {
		fake_id(id, ids[i]);
		ck_assert_int_eq(slotsync_index_append(idx, (uint64_t)sizes[i], id, &err), 0);
	}
	return idx;
}

static size_t group_of_place(const struct slotsync_plan *p, uint32_t place)
{
	for (size_t g = 0; g < p->n_groups; g++)
		for (uint32_t k = 0; k < p->groups[g].count; k++)
			if (p->positions[p->groups[g].first + k] == place)
				return g;
	ck_abort_msg("place %u is in no group", place);
	return 0;
}

START_TEST(test_repeated_chunks_fetched_once)
{
	struct slotsync_index *idx = repeated_index();
	struct slotsync_plan *p;
	struct slotsync_error err = { 0 };
	size_t g;

	ck_assert_int_eq(slotsync_plan_build(idx, NULL, &p, &err), 0);
	/* three different chunks: three downloads, 600 bytes, for an 800-byte image */
	ck_assert_uint_eq(p->n_groups, 3);
	ck_assert_uint_eq(p->chunks_fetch, 3);
	ck_assert_uint_eq(p->bytes_fetch, 600);
	ck_assert_uint_eq(p->chunks_seed + p->chunks_done, 0);
	/* the chunk at places 0, 2 and 4 is one group written to all three */
	g = group_of_place(p, 0);
	ck_assert_uint_eq(p->groups[g].count, 3);
	ck_assert_uint_eq(p->groups[g].todo, 3);
	ck_assert_int_eq(p->groups[g].source, SLOTSYNC_SOURCE_FETCH);
	ck_assert_uint_eq(group_of_place(p, 2), g);
	ck_assert_uint_eq(group_of_place(p, 4), g);
	slotsync_plan_free(p);
	slotsync_index_free(idx);
}
END_TEST

START_TEST(test_journal_done_places_skipped)
{
	struct slotsync_index *idx = repeated_index();
	/* places 1 (id 2) and 0, 2 (two of the three of id 1) are durable */
	uint8_t done[5] = { 1, 1, 1, 0, 0 };
	struct slotsync_plan *p;
	struct slotsync_error err = { 0 };
	size_t g;

	ck_assert_int_eq(slotsync_plan_build(idx, done, &p, &err), 0);
	ck_assert_uint_eq(p->chunks_done, 3);
	ck_assert_uint_eq(p->bytes_done, 400);
	/* id 2 is wholly done: nothing to do for it */
	ck_assert_int_eq(p->groups[group_of_place(p, 1)].source, SLOTSYNC_SOURCE_DONE);
	/* id 1 still has one place to write: fetched once, for that place */
	g = group_of_place(p, 4);
	ck_assert_int_eq(p->groups[g].source, SLOTSYNC_SOURCE_FETCH);
	ck_assert_uint_eq(p->groups[g].todo, 1);
	ck_assert_uint_eq(p->chunks_fetch, 2);
	ck_assert_uint_eq(p->bytes_fetch, 100 + 300);
	slotsync_plan_free(p);

	/* every place durable: nothing at all to fetch */
	memset(done, 1, sizeof(done));
	ck_assert_int_eq(slotsync_plan_build(idx, done, &p, &err), 0);
	ck_assert_uint_eq(p->chunks_fetch, 0);
	ck_assert_uint_eq(p->bytes_fetch, 0);
	ck_assert_uint_eq(p->chunks_done, 5);
	slotsync_plan_free(p);
	slotsync_index_free(idx);
}
END_TEST

/* Two releases: v2 is v1 with 64 KiB rewritten in the middle. */
struct releases {
	char *dir;
	struct fx_image v1, v2;
	uint64_t new_chunks, new_bytes;    /* unique chunks of v2 that v1 lacks */
	uint64_t unique_chunks, unique_bytes;
};

static int index_has(const struct slotsync_index *idx, const uint8_t *id)
{
	for (size_t i = 0; i < idx->n_chunks; i++)
		if (!memcmp(idx->chunks[i].id, id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	return 0;
}

static void releases_make(struct releases *r)
{
	uint8_t *data = malloc(IMG_LEN);

	memset(r, 0, sizeof(*r));
	r->dir = test_mkdtemp();
	fx_image_make(&r->v1, r->dir, "v1", IMG_LEN, 11, NULL);
	memcpy(data, r->v1.data, IMG_LEN);
	test_fill_random(data + IMG_LEN / 2, 64 << 10, 12);
	fx_image_make_from(&r->v2, r->dir, "v2", data, IMG_LEN, NULL);
	free(data);
	/* what a correct plan must find, counted the slow way */
	for (size_t i = 0; i < r->v2.index->n_chunks; i++) {
		const uint8_t *id = r->v2.index->chunks[i].id;
		uint64_t size = slotsync_index_chunk_size(r->v2.index, i);
		int first = 1;
		for (size_t j = 0; j < i && first; j++)
			first = memcmp(r->v2.index->chunks[j].id, id, SLOTSYNC_DIGEST_BYTES) != 0;
		if (!first)
			continue;
		r->unique_chunks++;
		r->unique_bytes += size;
		if (!index_has(r->v1.index, id)) {
			r->new_chunks++;
			r->new_bytes += size;
		}
	}
	ck_assert_uint_gt(r->new_chunks, 0);
	ck_assert_uint_lt(r->new_chunks, r->unique_chunks / 2);
}

static void releases_free(struct releases *r)
{
	fx_image_free(&r->v1);
	fx_image_free(&r->v2);
	test_rmdir(r->dir);
}

static void check_seed_plan(struct releases *r, const char *image, const char *index)
{
	struct slotsync_plan *p;
	struct slotsync_error err = { 0 };
	uint8_t *buf = malloc(r->v2.index->chunk_size_max);

	ck_assert_int_eq(slotsync_plan_build(r->v2.index, NULL, &p, &err), 0);
	ck_assert_msg(slotsync_plan_add_seed(p, image, index, &err) == 0, "%s", slotsync_error_message(&err));
	slotsync_plan_seeds_done(p);
	/* only what v1 lacks goes to the network */
	ck_assert_uint_eq(p->chunks_fetch, r->new_chunks);
	ck_assert_uint_eq(p->bytes_fetch, r->new_bytes);
	ck_assert_uint_eq(p->chunks_seed, r->unique_chunks - r->new_chunks);
	ck_assert_uint_eq(p->bytes_seed, r->unique_bytes - r->new_bytes);
	for (size_t g = 0; g < p->n_groups; g++) {
		uint32_t pos = p->positions[p->groups[g].first];
		int in_v1 = index_has(r->v1.index, r->v2.index->chunks[pos].id);
		ck_assert_int_eq(p->groups[g].source, in_v1 ? SLOTSYNC_SOURCE_SEED : SLOTSYNC_SOURCE_FETCH);
		if (in_v1) {
			/* a seed copy is the new image's bytes at that place */
			ck_assert_int_eq(slotsync_plan_read_seed(p, g, buf, &err), 0);
			ck_assert_mem_eq(buf, r->v2.data + slotsync_index_chunk_start(r->v2.index, pos),
					 slotsync_index_chunk_size(r->v2.index, pos));
		}
	}
	slotsync_plan_free(p);
	free(buf);
}

START_TEST(test_seed_with_index)
{
	struct releases r;

	releases_make(&r);
	check_seed_plan(&r, r.v1.img, r.v1.idx);
	releases_free(&r);
}
END_TEST

START_TEST(test_seed_without_index)
{
	struct releases r;

	releases_make(&r);
	/* the seed is chunked on the spot: the same plan */
	check_seed_plan(&r, r.v1.img, NULL);
	releases_free(&r);
}
END_TEST

START_TEST(test_damaged_seed_chunk_refused)
{
	struct releases r;
	struct slotsync_plan *p;
	struct slotsync_error err = { 0 };
	uint8_t *buf;
	size_t g;
	uint64_t size, fetch_before;
	FILE *f;

	releases_make(&r);
	ck_assert_int_eq(slotsync_plan_build(r.v2.index, NULL, &p, &err), 0);
	ck_assert_int_eq(slotsync_plan_add_seed(p, r.v1.img, r.v1.idx, &err), 0);
	slotsync_plan_seeds_done(p);
	/* the seed changes after it was indexed: one byte of its first chunk */
	f = fopen(r.v1.img, "r+b");
	ck_assert_ptr_nonnull(f);
	fseek(f, 10, SEEK_SET);
	fputc(r.v1.data[10] ^ 0x5a, f);
	fclose(f);
	g = group_of_place(p, 0);
	ck_assert_int_eq(p->groups[g].source, SLOTSYNC_SOURCE_SEED);
	buf = malloc(r.v2.index->chunk_size_max);
	ck_assert_int_ne(slotsync_plan_read_seed(p, g, buf, &err), 0);
	ck_assert_msg(strstr(slotsync_error_message(&err), r.v1.img), "the error names the seed: %s",
		      slotsync_error_message(&err));
	/* ... and the chunk goes to the network instead */
	size = slotsync_index_chunk_size(r.v2.index, 0);
	fetch_before = p->bytes_fetch;
	slotsync_plan_demote_to_fetch(p, g);
	ck_assert_int_eq(p->groups[g].source, SLOTSYNC_SOURCE_FETCH);
	ck_assert_uint_eq(p->bytes_fetch, fetch_before + size);
	ck_assert_uint_eq(p->chunks_fetch, r.new_chunks + 1);
	ck_assert_uint_eq(p->bytes_seed, r.unique_bytes - r.new_bytes - size);
	free(buf);
	slotsync_plan_free(p);
	releases_free(&r);
}
END_TEST

START_TEST(test_dry_run_figures)
{
	struct releases r;
	struct slotsync_assemble_options o = { 0 };
	struct slotsync_assemble_stats st;
	struct slotsync_error err = { 0 };
	char target[PATH_MAX], journal[PATH_MAX + 16];
	const char *seeds[1] = { r.v1.img }, *seed_indexes[1] = { r.v1.idx };
	struct stat sb;

	releases_make(&r);
	fx_path(target, r.dir, "target.img");
	snprintf(journal, sizeof(journal), "%s.journal", target);
	o.index_path = r.v2.idx;
	o.target = target;
	o.seeds = seeds;
	o.seed_indexes = seed_indexes;
	o.n_seeds = 1;
	o.dry_run = 1;
	o.fetch.base_url = "http://127.0.0.1:9/store"; /* never asked: a dry run fetches nothing */
	o.no_delta = 1;
	ck_assert_msg(slotsync_assemble(&o, &st, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_uint_eq(st.chunks_total, r.v2.index->n_chunks);
	ck_assert_uint_eq(st.bytes_total, IMG_LEN);
	ck_assert_uint_eq(st.chunks_to_fetch, r.new_chunks);
	ck_assert_uint_eq(st.bytes_to_fetch, r.new_bytes);
	ck_assert_uint_eq(st.bytes_fetched, 0);
	ck_assert_uint_eq(st.bytes_written, 0);
	ck_assert_int_eq(st.verified, 0);
	/* nothing written: no target, no journal */
	ck_assert_int_ne(stat(target, &sb), 0);
	ck_assert_int_ne(stat(journal, &sb), 0);
	releases_free(&r);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("plan");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_repeated_chunks_fetched_once);
	tcase_add_test(tc, test_journal_done_places_skipped);
	tcase_add_test(tc, test_seed_with_index);
	tcase_add_test(tc, test_seed_without_index);
	tcase_add_test(tc, test_damaged_seed_chunk_refused);
	tcase_add_test(tc, test_dry_run_figures);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(plan_suite());
}
