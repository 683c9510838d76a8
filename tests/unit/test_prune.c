/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* delta-gen/prune.c: a prune keeps every chunk of the kept releases and what
 * is younger than the grace, removes the rest (delta files of removed
 * releases, their folders); a dry run removes nothing; a kept release or a
 * kept delta index that cannot be read stops it before anything is removed;
 * a store writer makes a folder a prune removed again. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"
#include "gen.h"
#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/digest.h"
#include "slotsync/store.h"
#include "store_write.h"

struct world {
	char *dir;
	char store[PATH_MAX], sdix[PATH_MAX + 300], sdob[PATH_MAX + 300], young[PATH_MAX + 300];
	struct fx_image a, b;   /* b: a's first half, then new bytes */
};

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void world_make(struct world *w)
{
	uint8_t da[SLOTSYNC_DIGEST_BYTES], db[SLOTSYNC_DIGEST_BYTES], *bytes = malloc(1 << 20);
	char rel[200], cmd[PATH_MAX + 64], hex[SLOTSYNC_DIGEST_HEX_BYTES];

	w->dir = test_mkdtemp();
	fx_path(w->store, w->dir, "store");
	fx_image_make(&w->a, w->dir, "a", 1 << 20, 1, w->store);
	memcpy(bytes, w->a.data, 1 << 19);
	test_fill_random(bytes + (1 << 19), 1 << 19, 2);
	fx_image_make_from(&w->b, w->dir, "b", bytes, 1 << 20, w->store);
	free(bytes);
	/* a delta index from a to b (its content does not matter to a prune that
	 * keeps only one of them), and an object no kept delta index names */
	ck_assert_int_eq(slotsync_index_digest(w->a.index, da, NULL), 0);
	ck_assert_int_eq(slotsync_index_digest(w->b.index, db, NULL), 0);
	slotsync_delta_index_path(da, db, rel, sizeof(rel));
	snprintf(w->sdix, sizeof(w->sdix), "%s/%s", w->store, rel);
	*strrchr(w->sdix, '/') = '\0';
	ck_assert_int_eq(io_mkdir_p(w->sdix, NULL), 0);
	snprintf(w->sdix, sizeof(w->sdix), "%s/%s", w->store, rel);
	put_file(w->sdix, "not a delta index");
	slotsync_delta_object_path(db, rel, sizeof(rel));
	snprintf(w->sdob, sizeof(w->sdob), "%s/%s", w->store, rel);
	*strrchr(w->sdob, '/') = '\0';
	ck_assert_int_eq(io_mkdir_p(w->sdob, NULL), 0);
	snprintf(w->sdob, sizeof(w->sdob), "%s/%s", w->store, rel);
	put_file(w->sdob, "an object");
	/* everything two hours old, but for one unmarked chunk just written */
	snprintf(cmd, sizeof(cmd), "find '%s' -type f -exec touch -d '-2 hours' {} +", w->store);
	ck_assert_int_eq(system(cmd), 0);
	slotsync_digest_to_hex(da, hex);
	memset(hex + 4, 'e', 60);
	snprintf(w->young, sizeof(w->young), "%s/%.4s", w->store, hex);
	ck_assert_int_eq(io_mkdir_p(w->young, NULL), 0);
	snprintf(w->young, sizeof(w->young), "%s/%.4s/%s.cacnk", w->store, hex, hex);
	put_file(w->young, "fresh");
}

static void world_free(struct world *w)
{
	fx_image_free(&w->a);
	fx_image_free(&w->b);
	test_rmdir(w->dir);
}

/* How many chunks of im the store holds. */
static size_t chunks_present(const struct world *w, const struct fx_image *im)
{
	size_t n = 0;

	for (size_t i = 0; i < im->index->n_chunks; i++) {
		char p[PATH_MAX];
		fx_chunk_path(p, w->store, im->index, i);
		n += exists(p);
	}
	return n;
}

START_TEST(test_keeps_what_kept_releases_need)
{
	struct world w;
	struct slotsync_error err = { 0 };
	struct gen_prune_stats st;
	const char *keep[1];
	struct gen_prune_options o = { .keep = keep, .n_keep = 1, .grace_minutes = 60 };
	size_t b_before;

	world_make(&w);
	o.store = w.store;
	keep[0] = w.a.idx;
	b_before = chunks_present(&w, &w.b);
	ck_assert_uint_eq(chunks_present(&w, &w.a), w.a.index->n_chunks);

	/* a dry run counts, removes nothing */
	o.dry_run = 1;
	ck_assert_int_eq(gen_prune(&o, &st, &err), 0);
	ck_assert_uint_eq(st.kind[GEN_PRUNE_DELTA_INDEX].removed, 1);
	ck_assert_uint_eq(st.kind[GEN_PRUNE_OBJECT].removed, 1);
	ck_assert_uint_gt(st.kind[GEN_PRUNE_CHUNK].removed, 0);
	ck_assert_uint_eq(st.kind[GEN_PRUNE_CHUNK].young, 1);
	ck_assert(exists(w.sdix) && exists(w.sdob));
	ck_assert_uint_eq(chunks_present(&w, &w.b), b_before);

	o.dry_run = 0;
	ck_assert_int_eq(gen_prune(&o, &st, &err), 0);
	ck_assert_uint_eq(chunks_present(&w, &w.a), w.a.index->n_chunks);
	/* b's chunks that a lacks are gone: b keeps only those it shares */
	ck_assert_uint_lt(chunks_present(&w, &w.b), b_before);
	ck_assert_uint_eq(chunks_present(&w, &w.b), b_before - st.kind[GEN_PRUNE_CHUNK].removed);
	ck_assert(!exists(w.sdix) && !exists(w.sdob));
	*strrchr(w.sdix, '/') = '\0';
	ck_assert_msg(!exists(w.sdix), "the delta folder left empty is removed");
	ck_assert_msg(exists(w.young), "an unmarked chunk younger than the grace is kept");

	/* with no grace, it goes too */
	o.grace_minutes = 0;
	ck_assert_int_eq(gen_prune(&o, &st, &err), 0);
	ck_assert(!exists(w.young));
	ck_assert_uint_eq(chunks_present(&w, &w.a), w.a.index->n_chunks);
	world_free(&w);
}
END_TEST

START_TEST(test_refuses_before_removing_anything)
{
	struct world w;
	struct slotsync_error err = { 0 };
	struct gen_prune_stats st;
	char missing[PATH_MAX];
	const char *keep[2];
	struct gen_prune_options o = { .keep = keep, .n_keep = 2, .grace_minutes = 0 };
	struct slotsync_delta_index *d = NULL;
	size_t b_before;
	int fd;

	world_make(&w);
	o.store = w.store;
	b_before = chunks_present(&w, &w.b);

	/* a kept release that is not there */
	fx_path(missing, w.dir, "gone.caibx");
	keep[0] = w.a.idx;
	keep[1] = missing;
	ck_assert_int_lt(gen_prune(&o, &st, &err), 0);
	ck_assert_ptr_nonnull(strstr(slotsync_error_message(&err), missing));
	ck_assert(exists(w.sdix) && exists(w.sdob) && exists(w.young));
	ck_assert_uint_eq(chunks_present(&w, &w.b), b_before);

	/* both kept: the damaged delta index between them stops the prune */
	slotsync_error_clear(&err);
	keep[1] = w.b.idx;
	ck_assert_int_lt(gen_prune(&o, &st, &err), 0);
	ck_assert_ptr_nonnull(strstr(slotsync_error_message(&err), "between kept releases"));
	ck_assert(exists(w.sdix) && exists(w.sdob) && exists(w.young));

	/* the same refusal as check gives: the library's parser said no */
	slotsync_error_clear(&err);
	fd = open(w.store, O_RDONLY | O_DIRECTORY);
	ck_assert_int_lt(gen_check_delta_index(fd, w.sdix + strlen(w.store) + 1, &d, &err), 0);
	ck_assert_ptr_null(d);
	close(fd);
	world_free(&w);
}
END_TEST

/* A make that runs while a prune removes a chunk folder it made earlier
 * makes the folder again (its writer remembers which folders exist). */
START_TEST(test_writer_makes_a_pruned_folder_again)
{
	char *dir = test_mkdtemp();
	char store[PATH_MAX], folder[PATH_MAX + 80], rel[SLOTSYNC_CHUNK_RELPATH_BYTES];
	struct slotsync_error err = { 0 };
	struct store_writer *sw = NULL;
	struct store_batch *b;
	uint8_t id[SLOTSYNC_DIGEST_BYTES] = { 0xab, 0xcd, 1 };

	fx_path(store, dir, "store");
	ck_assert_int_eq(store_writer_open(store, &sw, &err), 0);
	b = store_batch_new(sw);
	ck_assert_int_eq(store_batch_put(b, id, "one", 3, &err), 0);
	ck_assert_int_eq(store_batch_commit(b, &err), 0);
	/* the prune: the chunk goes, then its folder, left empty */
	slotsync_store_chunk_relpath(id, rel);
	snprintf(folder, sizeof(folder), "%s/%s", store, rel);
	ck_assert_int_eq(unlink(folder), 0);
	*strrchr(folder, '/') = '\0';
	ck_assert_int_eq(rmdir(folder), 0);
	id[2] = 2;
	ck_assert_msg(store_batch_put(b, id, "two", 3, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_int_eq(store_batch_free(b, &err), 0);
	ck_assert(store_writer_has(sw, id));
	store_writer_free(sw);
	test_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prune");
	TCase *tc = tcase_create("prune");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_keeps_what_kept_releases_need);
	tcase_add_test(tc, test_refuses_before_removing_anything);
	tcase_add_test(tc, test_writer_makes_a_pruned_folder_again);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
