/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slot backends on plain files: a raw slot opens as its own file for writing
 * and reading (no mapping, nothing formatted, closing it is nothing), bytes
 * written through the handle are the slot's; a slot with no device is
 * refused; a luks2 slot on a file that holds no LUKS header is refused for
 * reading and left untouched.  (Encrypted slots with a TPM: it_tpm_luks and
 * vm_luks_slots.) */
#include <check.h>
#include <errno.h>

#include "fixtures.h"
#include "slotsync/slot.h"

START_TEST(test_backend_names)
{
	enum slotsync_slot_backend b;

	ck_assert_int_eq(slotsync_slot_backend_parse("raw", &b), 0);
	ck_assert_int_eq(b, SLOTSYNC_SLOT_RAW);
	ck_assert_str_eq(slotsync_slot_backend_name(b), "raw");
	ck_assert_int_eq(slotsync_slot_backend_parse("luks2", &b), 0);
	ck_assert_int_eq(b, SLOTSYNC_SLOT_LUKS2);
	ck_assert_str_eq(slotsync_slot_backend_name(b), "luks2");
	ck_assert_int_eq(slotsync_slot_backend_parse("ext4", &b), -EINVAL);
}
END_TEST

START_TEST(test_raw_slot_is_its_file)
{
	char *dir = test_mkdtemp(), uuid[SLOTSYNC_LUKS_UUID_BYTES] = "";
	struct slotsync_slot_config s = { .name = "B", .backend = SLOTSYNC_SLOT_RAW };
	struct slotsync_volume v;
	struct slotsync_volume_handle h;
	struct slotsync_error err = { 0 };
	uint8_t data[8192];
	int formatted = -1;
	FILE *f;

	fx_path(s.device, dir, "slot-b.img");
	ck_assert_int_eq(test_write_file(s.device, "", 0), 0);
	v = slotsync_slot_volume(&s, 0);
	ck_assert_int_eq(slotsync_volume_open_write(&v, NULL, uuid, NULL, NULL, &formatted, &h, &err), 0);
	ck_assert_str_eq(h.path, s.device);
	ck_assert_str_eq(h.mapping, "");
	ck_assert_int_eq(formatted, 0);
	/* what is written through the handle is the slot's content */
	test_fill_random(data, sizeof(data), 3);
	f = fopen(h.path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, sizeof(data), f), sizeof(data));
	fclose(f);
	ck_assert_int_eq(slotsync_volume_close(&h, &err), 0);
	ck_assert(fx_file_equals(s.device, data, sizeof(data)));
	ck_assert_int_eq(slotsync_volume_open_read(&v, NULL, &h, &err), 0);
	ck_assert_str_eq(h.path, s.device);
	ck_assert_int_eq(slotsync_volume_close(&h, &err), 0);
	ck_assert(fx_file_equals(s.device, data, sizeof(data)));
	/* no data partition configured: refused */
	v = slotsync_slot_volume(&s, 1);
	ck_assert_int_eq(slotsync_volume_open_read(&v, NULL, &h, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "no device"), "%s", err.msg);
	test_rmdir(dir);
}
END_TEST

START_TEST(test_luks2_without_header_refused)
{
	char *dir = test_mkdtemp();
	struct slotsync_slot_config s = { .name = "A", .backend = SLOTSYNC_SLOT_LUKS2, .mapping = "slotsync-test-none" };
	struct slotsync_volume v;
	struct slotsync_volume_handle h;
	struct slotsync_luks_tpm tpm = { 0 };
	struct slotsync_error err = { 0 };
	uint8_t data[1 << 16];

	fx_path(s.device, dir, "slot-a.img");
	test_fill_random(data, sizeof(data), 4);
	ck_assert_int_eq(test_write_file(s.device, data, sizeof(data)), 0);
	v = slotsync_slot_volume(&s, 0);
	ck_assert_int_lt(slotsync_volume_open_read(&v, &tpm, &h, &err), 0);
	ck_assert_str_ne(err.msg, "");
	ck_assert(fx_file_equals(s.device, data, sizeof(data)));
	test_rmdir(dir);
}
END_TEST

static Suite *slot_suite(void)
{
	Suite *s = suite_create("slot");
	TCase *tc = tcase_create("slot");

	tcase_add_test(tc, test_backend_names);
	tcase_add_test(tc, test_raw_slot_is_its_file);
	tcase_add_test(tc, test_luks2_without_header_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(slot_suite());
}
