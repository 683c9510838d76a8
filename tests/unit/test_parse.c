/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one parser for numbers, sizes and durations (common/parse.c): what it
 * takes, and everything it refuses instead of guessing. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"
#include "test_util.h"

START_TEST(test_u64)
{
	uint64_t v;

	ck_assert_int_eq(parse_u64("0", 0, 10, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	ck_assert_int_eq(parse_u64("11", 0, 10, &v), -ERANGE);
	ck_assert_int_eq(parse_u64("4", 5, 10, &v), -ERANGE);
	/* no sign, no space, no trailing text, not empty */
	ck_assert_int_eq(parse_u64("-1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("+1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64(" 1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("1 ", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("1x", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64(NULL, 0, 10, &v), -EINVAL);
}
END_TEST

START_TEST(test_int)
{
	int v = 7;

	ck_assert_int_eq(parse_int("-3", -5, 5, &v), 0);
	ck_assert_int_eq(v, -3);
	ck_assert_int_eq(parse_int("5", -5, 5, &v), 0);
	ck_assert_int_eq(v, 5);
	ck_assert_int_eq(parse_int("-6", -5, 5, &v), -ERANGE);
	ck_assert_int_eq(parse_int("6", -5, 5, &v), -ERANGE);
	ck_assert_int_eq(parse_int("-2147483648", INT32_MIN, INT32_MAX, &v), 0);
	ck_assert_int_eq(v, INT32_MIN);
	ck_assert_int_eq(parse_int("2147483648", INT32_MIN, INT32_MAX, &v), -ERANGE);
	ck_assert_int_eq(parse_int("99999999999999999999", 0, 9, &v), -ERANGE);
	ck_assert_int_eq(parse_int("--1", -5, 5, &v), -EINVAL);
	ck_assert_int_eq(parse_int("-", -5, 5, &v), -EINVAL);
	ck_assert_int_eq(parse_int("1.5", 0, 5, &v), -EINVAL);
	ck_assert_int_eq(v, INT32_MIN); /* untouched by a refusal */
}
END_TEST

START_TEST(test_size)
{
	uint64_t v;

	ck_assert_int_eq(parse_size("512", &v), 0);
	ck_assert_uint_eq(v, 512);
	ck_assert_int_eq(parse_size("16K", &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(parse_size("16k", &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(parse_size("1M", &v), 0);
	ck_assert_uint_eq(v, 1048576);
	ck_assert_int_eq(parse_size("3G", &v), 0);
	ck_assert_uint_eq(v, 3ull << 30);
	ck_assert_int_lt(parse_size("-1", &v), 0);
	ck_assert_int_lt(parse_size("1MB", &v), 0);
	ck_assert_int_lt(parse_size("1T", &v), 0);
	ck_assert_int_lt(parse_size("K", &v), 0);
	ck_assert_int_eq(parse_size("99999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(parse_size("17179869184G", &v), -ERANGE);
}
END_TEST

START_TEST(test_duration)
{
	uint64_t v;

	ck_assert_int_eq(parse_duration_s("90", &v), 0);
	ck_assert_uint_eq(v, 90);
	ck_assert_int_eq(parse_duration_s("90s", &v), 0);
	ck_assert_uint_eq(v, 90);
	ck_assert_int_eq(parse_duration_s("90m", &v), 0);
	ck_assert_uint_eq(v, 5400);
	ck_assert_int_eq(parse_duration_s("6h", &v), 0);
	ck_assert_uint_eq(v, 21600);
	ck_assert_int_eq(parse_duration_s("2d", &v), 0);
	ck_assert_uint_eq(v, 172800);
	ck_assert_int_lt(parse_duration_s("1w", &v), 0);
	ck_assert_int_lt(parse_duration_s("1ms", &v), 0);
	ck_assert_int_lt(parse_duration_s("", &v), 0);
}
END_TEST

START_TEST(test_bool)
{
	int v = -1;

	ck_assert_int_eq(parse_bool("yes", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(parse_bool("false", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(parse_bool("1", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(parse_bool("maybe", &v), -EINVAL);
	ck_assert_int_eq(parse_bool("YES ", &v), -EINVAL);
}
END_TEST

START_TEST(test_url)
{
	ck_assert_int_eq(parse_url("https://cdn.example.com/store", 0), 0);
	ck_assert_int_eq(parse_url("file:///media/usb/store", 0), 0);
	ck_assert_int_eq(parse_url("/media/usb/store", 0), 0);
	ck_assert_int_eq(parse_url("http://cdn.example.com/store", 0), -EPERM);
	ck_assert_int_eq(parse_url("http://cdn.example.com/store", 1), 0);
	ck_assert_int_eq(parse_url("cdn.example.com/store", 1), -EINVAL);
	ck_assert_int_eq(parse_url("127.0.0.1:8080/store", 1), -EINVAL);
	ck_assert_int_eq(parse_url("https://", 1), -EINVAL);
	ck_assert_int_eq(parse_url("://x", 1), -EINVAL);
	ck_assert_int_eq(parse_url("ftp://x/store", 1), -EPROTONOSUPPORT);
	ck_assert_int_eq(parse_url("", 1), -EINVAL);
	ck_assert_int_eq(parse_url_ref("v2.bundle"), 0);
	ck_assert_int_eq(parse_url_ref("releases/v2.bundle"), 0);
	ck_assert_int_eq(parse_url_ref("/pub/v2.bundle"), 0);
	ck_assert_int_eq(parse_url_ref("./cdn.example.com/v2.bundle"), 0);
	ck_assert_int_eq(parse_url_ref("https://cdn.example.com/v2.bundle"), 0);
	ck_assert_int_eq(parse_url_ref("cdn.example.com/v2.bundle"), -EINVAL);
	ck_assert_int_eq(parse_url_ref(""), -EINVAL);
	ck_assert_ptr_nonnull(strstr(parse_url_problem(-EINVAL), "no scheme"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("parse");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_u64);
	tcase_add_test(tc, test_int);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_bool);
	tcase_add_test(tc, test_url);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
