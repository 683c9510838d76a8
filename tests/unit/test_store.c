/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Store read side and writer: layout, bounded decoding, content checks, dedup. */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "store_write.h"
#include "slotsync/store.h"
#include "test_util.h"
#include <errno.h>

static char *path_in(const char *dir, const char *rel)
{
	char *p = malloc(strlen(dir) + strlen(rel) + 2);

	sprintf(p, "%s/%s", dir, rel);
	return p;
}

/* Writes chunk data into the store through the writer; returns its id. */
static void put_chunk(struct store_writer *sw, const uint8_t *data, size_t len, uint8_t id[32])
{
	struct slotsync_error err = { 0 };
	struct store_batch *b = store_batch_new(sw);
	size_t cap = ZSTD_compressBound(len);
	uint8_t *z = malloc(cap);
	size_t zn = ZSTD_compress(z, cap, data, len, 3);

	ck_assert(!ZSTD_isError(zn));
	ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, data, len, id), 0);
	ck_assert_int_eq(store_batch_put(b, id, z, zn, &err), 0);
	ck_assert_int_eq(store_batch_free(b, &err), 0);
	free(z);
}

START_TEST(test_relpath)
{
	uint8_t id[32];
	char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];

	for (int i = 0; i < 32; i++)
		id[i] = (uint8_t)(0xa0 + i);
	slotsync_store_chunk_relpath(id, rel);
	ck_assert_str_eq(rel, "a0a1/a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf.cacnk");
}
END_TEST

START_TEST(test_write_then_read)
{
	char *dir = test_mkdtemp(), *sdir = path_in(dir, "store");
	struct slotsync_error err = { 0 };
	struct store_writer *sw;
	struct slotsync_store *st;
	struct slotsync_chunk_decoder *dec = slotsync_chunk_decoder_new();
	uint8_t data[20000], out[20000], id[32];

	test_fill_random(data, sizeof(data), 5);
	memset(data, 'x', 5000);
	ck_assert_int_eq(store_writer_open(sdir, &sw, &err), 0);
	ck_assert(!store_writer_has(sw, id));
	put_chunk(sw, data, sizeof(data), id);
	ck_assert(store_writer_has(sw, id));
	ck_assert_int_eq(slotsync_store_open(sdir, &st, &err), 0);
	ck_assert_int_eq(slotsync_store_read_chunk(st, dec, id, sizeof(data), SLOTSYNC_DIGEST_SHA256, out, &err), 0);
	ck_assert_mem_eq(out, data, sizeof(data));

	/* asking for the wrong size is refused, never silently accepted */
	ck_assert_int_eq(slotsync_store_read_chunk(st, dec, id, sizeof(data) - 1, SLOTSYNC_DIGEST_SHA256, out, &err),
			 -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "more than"));
	slotsync_error_clear(&err);
	/* a chunk the store lacks */
	id[5] ^= 1;
	ck_assert_int_eq(slotsync_store_read_chunk(st, dec, id, sizeof(data), SLOTSYNC_DIGEST_SHA256, out, &err),
			 -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
	store_writer_free(sw);
	slotsync_store_free(st);
	slotsync_chunk_decoder_free(dec);
	free(sdir);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_content_not_matching_name)
{
	char *dir = test_mkdtemp(), *sdir = path_in(dir, "store");
	struct slotsync_error err = { 0 };
	struct store_writer *sw;
	struct slotsync_store *st;
	struct slotsync_chunk_decoder *dec = slotsync_chunk_decoder_new();
	uint8_t a[8000], b[8000], out[8000], ida[32], idb[32];
	char rel_a[SLOTSYNC_CHUNK_RELPATH_BYTES], rel_b[SLOTSYNC_CHUNK_RELPATH_BYTES];
	char *pa, *pb;

	test_fill_random(a, sizeof(a), 1);
	test_fill_random(b, sizeof(b), 2);
	ck_assert_int_eq(store_writer_open(sdir, &sw, &err), 0);
	put_chunk(sw, a, sizeof(a), ida);
	put_chunk(sw, b, sizeof(b), idb);
	/* put b's file under a's name */
	slotsync_store_chunk_relpath(ida, rel_a);
	slotsync_store_chunk_relpath(idb, rel_b);
	pa = path_in(sdir, rel_a);
	pb = path_in(sdir, rel_b);
	ck_assert_int_eq(rename(pb, pa), 0);
	ck_assert_int_eq(slotsync_store_open(sdir, &st, &err), 0);
	ck_assert_int_eq(slotsync_store_read_chunk(st, dec, ida, sizeof(a), SLOTSYNC_DIGEST_SHA256, out, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "failed its SHA-256 check"));
	store_writer_free(sw);
	slotsync_store_free(st);
	slotsync_chunk_decoder_free(dec);
	free(pa);
	free(pb);
	free(sdir);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_decompression_bomb_cut_off)
{
	struct slotsync_error err = { 0 };
	struct slotsync_chunk_decoder *dec = slotsync_chunk_decoder_new();
	size_t big = 64u << 20, cap = ZSTD_compressBound(big);
	uint8_t *zeros = calloc(1, big), *z = malloc(cap), out[65536], id[32] = { 0 };
	size_t zn = ZSTD_compress(z, cap, zeros, big, 19);

	ck_assert(!ZSTD_isError(zn));
	ck_assert_uint_lt(zn, 100000); /* a small file ... */
	/* ... that would grow to 64 MiB: decoding stops at the chunk's size */
	ck_assert_int_eq(slotsync_chunk_decode(dec, z, zn, out, sizeof(out), SLOTSYNC_DIGEST_SHA256, id, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "cut off"));
	slotsync_error_clear(&err);
	/* garbage is not a frame */
	memset(z, 0x55, 100);
	ck_assert_int_eq(slotsync_chunk_decode(dec, z, 100, out, sizeof(out), SLOTSYNC_DIGEST_SHA256, id, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a valid zstd frame"));
	/* a truncated frame */
	slotsync_error_clear(&err);
	zn = ZSTD_compress(z, cap, out, sizeof(out), 1);
	ck_assert_int_eq(slotsync_chunk_decode(dec, z, zn / 2, out, sizeof(out), SLOTSYNC_DIGEST_SHA256, id, &err),
			 -EBADMSG);
	free(zeros);
	free(z);
	slotsync_chunk_decoder_free(dec);
}
END_TEST

START_TEST(test_store_not_writable)
{
	struct slotsync_error err = { 0 };
	struct store_writer *sw = NULL;

	/* a path under a regular file cannot become a store */
	ck_assert_int_lt(store_writer_open("/etc/hostname/store", &sw, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "/etc/hostname/store"));
	ck_assert_ptr_null(sw);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_relpath);
	tcase_add_test(tc, test_write_then_read);
	tcase_add_test(tc, test_content_not_matching_name);
	tcase_add_test(tc, test_decompression_bomb_cut_off);
	tcase_add_test(tc, test_store_not_writable);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
