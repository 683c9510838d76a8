/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seeds: with and without an index, and a seed that changed since it was indexed. */
#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "gen.h"
#include "slotsync/index.h"
#include "slotsync/seed.h"
#include "test_util.h"
#include <errno.h>

#define IMG_LEN (3u << 20)

struct fixture {
	char *dir;
	char img[4096], idx[4096];
	uint8_t *data;
	struct slotsync_index *index;
};

static void fixture_make(struct fixture *f)
{
	struct gen_make_options opt = { 0 };
	struct gen_make_stats st;
	struct slotsync_error err = { 0 };

	f->dir = test_mkdtemp();
	snprintf(f->img, sizeof(f->img), "%s/a.img", f->dir);
	snprintf(f->idx, sizeof(f->idx), "%s/a.caibx", f->dir);
	f->data = malloc(IMG_LEN);
	test_fill_random(f->data, IMG_LEN, 77);
	ck_assert_int_eq(test_write_file(f->img, f->data, IMG_LEN), 0);
	opt.params = slotsync_chunker_params_default();
	opt.digest = SLOTSYNC_DIGEST_SHA256;
	opt.level = 3;
	opt.threads = 2;
	ck_assert_int_eq(gen_make(f->img, f->idx, &opt, &st, &err), 0);
	ck_assert_uint_eq(st.bytes_in, IMG_LEN);
	ck_assert_int_eq(slotsync_index_read_file(f->idx, &f->index, &err), 0);
}

static void fixture_free(struct fixture *f)
{
	slotsync_index_free(f->index);
	free(f->data);
	test_rmdir(f->dir);
}

static void check_all_chunks(struct slotsync_seed_set *set, struct fixture *f)
{
	struct slotsync_error err = { 0 };
	uint8_t *buf = malloc(65536);

	for (size_t i = 0; i < f->index->n_chunks; i++) {
		size_t size = slotsync_index_chunk_size(f->index, i);
		ck_assert(slotsync_seed_set_has(set, f->index->chunks[i].id, size));
		ck_assert_int_eq(slotsync_seed_set_read(set, f->index->chunks[i].id, size, buf, &err), 0);
		ck_assert_mem_eq(buf, f->data + slotsync_index_chunk_start(f->index, i), size);
	}
	free(buf);
}

START_TEST(test_seed_with_index)
{
	struct fixture f;
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set;
	char spec[8300];

	fixture_make(&f);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	snprintf(spec, sizeof(spec), "%s:%s", f.img, f.idx);
	ck_assert_int_eq(slotsync_seed_set_add_spec(set, spec, &err), 0);
	ck_assert_uint_eq(slotsync_seed_set_count(set), f.index->n_chunks);
	check_all_chunks(set, &f);
	slotsync_seed_set_free(set);
	fixture_free(&f);
}
END_TEST

START_TEST(test_seed_chunked_on_the_fly)
{
	struct fixture f;
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set;

	fixture_make(&f);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_int_eq(slotsync_seed_set_add_spec(set, f.img, &err), 0);
	check_all_chunks(set, &f);
	slotsync_seed_set_free(set);
	fixture_free(&f);
}
END_TEST

START_TEST(test_changed_seed_is_refused)
{
	struct fixture f;
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set;
	uint8_t *buf = malloc(65536);
	size_t size;
	FILE *fp;

	fixture_make(&f);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_int_eq(slotsync_seed_set_add(set, f.img, f.idx, &err), 0);
	/* the seed changes after it was indexed: one byte in chunk 2 */
	fp = fopen(f.img, "r+");
	fseek(fp, (long)slotsync_index_chunk_start(f.index, 2) + 10, SEEK_SET);
	fputc(f.data[slotsync_index_chunk_start(f.index, 2) + 10] ^ 0xff, fp);
	fclose(fp);
	size = slotsync_index_chunk_size(f.index, 2);
	ck_assert_int_eq(slotsync_seed_set_read(set, f.index->chunks[2].id, size, buf, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "failed its SHA-256 check"));
	ck_assert_ptr_nonnull(strstr(err.msg, f.img));
	/* once refused, never offered again */
	ck_assert(!slotsync_seed_set_has(set, f.index->chunks[2].id, size));
	ck_assert_int_eq(slotsync_seed_set_read(set, f.index->chunks[2].id, size, buf, &err), -ENOENT);
	/* its neighbours are still good */
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_seed_set_read(set, f.index->chunks[3].id, slotsync_index_chunk_size(f.index, 3), buf, &err),
			 0);
	free(buf);
	slotsync_seed_set_free(set);
	fixture_free(&f);
}
END_TEST

START_TEST(test_index_larger_than_seed_refused)
{
	struct fixture f;
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set;

	fixture_make(&f);
	/* the seed image is shorter than what its index describes */
	ck_assert_int_eq(truncate(f.img, IMG_LEN / 2), 0);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_int_eq(slotsync_seed_set_add(set, f.img, f.idx, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "describes"));
	ck_assert_ptr_nonnull(strstr(err.msg, f.img));
	slotsync_seed_set_free(set);
	fixture_free(&f);
}
END_TEST

START_TEST(test_bad_specs)
{
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);

	ck_assert_int_eq(slotsync_seed_set_add_spec(set, "/nonexistent/seed.img", &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/seed.img"));
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_seed_set_add_spec(set, "", &err), -EINVAL);
	slotsync_error_clear(&err);
	/* not an index after the colon: all of it is the image, which is not there */
	ck_assert_int_eq(slotsync_seed_set_add_spec(set, "/etc/hostname:", &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "/etc/hostname:"));
	slotsync_error_clear(&err);
	ck_assert_int_eq(slotsync_seed_set_add_spec(set, "/etc/hostname:/etc/hostname", &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "/etc/hostname:/etc/hostname"));
	slotsync_seed_set_free(set);
}
END_TEST

/* Stable device names hold colons (/dev/disk/by-path/pci-0000:00:1f.2-ata-1):
 * such a seed is used whole, with or without its index. */
START_TEST(test_colon_paths)
{
	struct fixture f;
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_seed_set *set;
	char img[4200], idx[4200], idx2[4200], spec[8500];
	char *image, *index;

	fixture_make(&f);
	snprintf(img, sizeof(img), "%s/pci-0000:00:1f.2-ata-1", f.dir);
	snprintf(idx, sizeof(idx), "%s/slot:a.caibx", f.dir);
	ck_assert_int_eq(rename(f.img, img), 0);
	ck_assert_int_eq(rename(f.idx, idx), 0);
	/* the image alone, chunked on the spot */
	ck_assert_int_eq(slotsync_seed_spec_parse(img, &image, &index, &err), 0);
	ck_assert_str_eq(image, img);
	ck_assert_ptr_null(index);
	free(image);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_msg(slotsync_seed_set_add_spec(set, img, &err) == 0, "%s", slotsync_error_message(&err));
	check_all_chunks(set, &f);
	slotsync_seed_set_free(set);
	/* IMAGE:INDEX: split at the last colon, as what follows is an existing .caibx */
	snprintf(idx2, sizeof(idx2), "%s/a.caibx", f.dir);
	ck_assert_int_eq(link(idx, idx2), 0);
	snprintf(spec, sizeof(spec), "%s:%s", img, idx2);
	ck_assert_int_eq(slotsync_seed_spec_parse(spec, &image, &index, &err), 0);
	ck_assert_str_eq(image, img);
	ck_assert_str_eq(index, idx2);
	free(image);
	free(index);
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_msg(slotsync_seed_set_add_spec(set, spec, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_uint_eq(slotsync_seed_set_count(set), f.index->n_chunks);
	check_all_chunks(set, &f);
	slotsync_seed_set_free(set);
	/* image and index apart (--seed IMAGE --seed-index INDEX), both with colons */
	set = slotsync_seed_set_new(SLOTSYNC_DIGEST_SHA256, &p);
	ck_assert_msg(slotsync_seed_set_add(set, img, idx, &err) == 0, "%s", slotsync_error_message(&err));
	check_all_chunks(set, &f);
	slotsync_seed_set_free(set);
	fixture_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("seed");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_seed_with_index);
	tcase_add_test(tc, test_seed_chunked_on_the_fly);
	tcase_add_test(tc, test_changed_seed_is_refused);
	tcase_add_test(tc, test_index_larger_than_seed_refused);
	tcase_add_test(tc, test_bad_specs);
	tcase_add_test(tc, test_colon_paths);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
