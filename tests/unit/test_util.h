/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the unit tests: deterministic data and temp folders. */
#ifndef SLOTSYNC_TEST_UTIL_H
#define SLOTSYNC_TEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64: the same bytes on every run. */
static inline void test_fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed ? seed : 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
}

/* A fresh folder under $TMPDIR (or /tmp); the caller removes it with test_rmdir. */
static inline char *test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path = malloc(strlen(base) + 32);

	sprintf(path, "%s/slotsync-test-XXXXXX", base);
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static inline void test_rmdir(char *path)
{
	char cmd[4200];

	if (!path)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
	free(path);
}

static inline int test_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(buf, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Runs a Check suite; the exit status of a test program. */
static inline int test_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
