/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm-verity of a slot on plain files (no device-mapper: the userspace check):
 * the slot image slotsync-gen makes passes against its own root hash, also on
 * a slot larger than it; a wrong root hash, one flipped data byte or one
 * flipped tree byte fails with -EBADMSG and says so; a missing device is an
 * error, not a crash; a build without libcryptsetup names the option.  (The same image always gives the same slot image:
 * it_verity, against veritysetup.) */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fixtures.h"
#include "gen.h"
#include "slotsync/features.h"
#include "slotsync/verity.h"

struct slot_fx {
	char *dir;
	char img[PATH_MAX], slot[PATH_MAX];
	char root[SLOTSYNC_DIGEST_HEX_BYTES], salt[SLOTSYNC_DIGEST_HEX_BYTES];
	struct gen_verity gv;
	struct slotsync_manifest_verity v;
};

/* A slot image of 300 KiB + 100 bytes of deterministic data (so the data is
 * padded and the tree has two levels' worth of leaves). */
static void slot_fx_make(struct slot_fx *f)
{
	size_t len = 300 * 1024 + 100;
	uint8_t *data = malloc(len);
	struct slotsync_error err = { 0 };

	f->dir = test_mkdtemp();
	ck_assert_ptr_nonnull(f->dir);
	fx_path(f->img, f->dir, "rootfs.img");
	fx_path(f->slot, f->dir, "slot-b.img");
	test_fill_random(data, len, 19);
	ck_assert_int_eq(test_write_file(f->img, data, len), 0);
	free(data);
	ck_assert_msg(gen_verity(f->img, f->slot, &f->gv, &err) == 0, "%s", err.msg);
	f->v.root_hash = slotsync_digest_to_hex(f->gv.root_hash, f->root);
	f->v.salt = slotsync_digest_to_hex(f->gv.salt, f->salt);
	f->v.algorithm = "sha256";
	f->v.data_size = f->gv.data_size;
	f->v.hash_offset = f->gv.data_size;
	f->v.data_block_size = 4096;
	f->v.hash_block_size = 4096;
	ck_assert_uint_eq(f->gv.data_size, 304 * 1024);
	ck_assert_uint_gt(f->gv.slot_size, f->gv.data_size);
}

static void flip_byte(const char *path, uint64_t offset)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)offset), 1);
	b ^= 0x01;
	ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)offset), 1);
	close(fd);
}

START_TEST(test_slot_image_passes)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };

	slot_fx_make(&f);
	ck_assert_msg(slotsync_verity_verify(f.slot, &f.v, &err) == 0, "%s", err.msg);
	/* a slot is usually larger than what was written to it */
	ck_assert_int_eq(truncate(f.slot, 16 << 20), 0);
	ck_assert_msg(slotsync_verity_verify(f.slot, &f.v, &err) == 0, "%s", err.msg);
	test_rmdir(f.dir);
}
END_TEST

START_TEST(test_wrong_root_fails)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };

	slot_fx_make(&f);
	f.root[0] = f.root[0] == '0' ? '1' : '0';
	ck_assert_int_eq(slotsync_verity_verify(f.slot, &f.v, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "does not match the root hash") && strstr(err.msg, f.root), "%s", err.msg);
	test_rmdir(f.dir);
}
END_TEST

START_TEST(test_flipped_data_byte_fails)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };

	slot_fx_make(&f);
	flip_byte(f.slot, 200 * 1024 + 7);
	ck_assert_int_eq(slotsync_verity_verify(f.slot, &f.v, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "does not match"), "%s", err.msg);
	test_rmdir(f.dir);
}
END_TEST

START_TEST(test_flipped_padding_byte_fails)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };

	slot_fx_make(&f);
	/* past the image, inside its last block: the zeros are covered too */
	flip_byte(f.slot, 300 * 1024 + 200);
	ck_assert_int_eq(slotsync_verity_verify(f.slot, &f.v, &err), -EBADMSG);
	test_rmdir(f.dir);
}
END_TEST

START_TEST(test_flipped_tree_byte_fails)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };

	slot_fx_make(&f);
	flip_byte(f.slot, f.gv.data_size + 100);
	ck_assert_int_eq(slotsync_verity_verify(f.slot, &f.v, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "does not match"), "%s", err.msg);
	test_rmdir(f.dir);
}
END_TEST

START_TEST(test_missing_device_and_bad_params)
{
	struct slot_fx f;
	struct slotsync_error err = { 0 };
	char missing[PATH_MAX];

	slot_fx_make(&f);
	fx_path(missing, f.dir, "no-such-slot");
	ck_assert_int_lt(slotsync_verity_verify(missing, &f.v, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "no-such-slot"));
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_verity_verify(f.slot, NULL, &err), -EINVAL);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_verity_open(f.slot, &f.v, "../x", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "plain name"));
	test_rmdir(f.dir);
}
END_TEST

/* A build without libcryptsetup: both sides say which option is missing. */
START_TEST(test_not_built_names_the_option)
{
	struct slotsync_manifest_verity v = { 0 };
	struct slotsync_error err = { 0 };
	struct gen_verity gv;

	ck_assert_int_eq(slotsync_verity_verify("/dev/null", &v, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err.msg, "-DSLOTSYNC_VERITY=ON"));
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(gen_verity("/dev/null", "/dev/null", &gv, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err.msg, "-DSLOTSYNC_VERITY=ON"));
}
END_TEST

static Suite *verity_suite(void)
{
	Suite *s = suite_create("verity");
	TCase *tc = tcase_create("verity");

	tcase_set_timeout(tc, 30);
	if (SLOTSYNC_HAVE_VERITY) {
		tcase_add_test(tc, test_slot_image_passes);
		tcase_add_test(tc, test_wrong_root_fails);
		tcase_add_test(tc, test_flipped_data_byte_fails);
		tcase_add_test(tc, test_flipped_padding_byte_fails);
		tcase_add_test(tc, test_flipped_tree_byte_fails);
		tcase_add_test(tc, test_missing_device_and_bad_params);
	} else {
		tcase_add_test(tc, test_not_built_names_the_option);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(verity_suite());
}
