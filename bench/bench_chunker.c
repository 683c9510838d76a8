/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunker throughput on one core: MB/s of slotsync_chunker_scan over an in-memory
 * buffer (no I/O, no hashing of chunks), best of several passes.
 * Usage: bench_chunker [FILE|--random MB] [MIN:AVG:MAX] */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "slotsync/chunker.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct slotsync_chunker_params p = slotsync_chunker_params_default();
	struct slotsync_error err = { 0 };
	struct slotsync_chunker *ch;
	size_t len = 256u << 20, chunks = 0;
	uint8_t *buf;
	double best = 1e9;

	if (argc > 3 && slotsync_chunker_params_parse(argv[3], &p, &err) < 0) {
		fprintf(stderr, "%s\n", slotsync_error_message(&err));
		return 2;
	}
	if (argc > 2 && !strcmp(argv[1], "--random"))
		len = (size_t)atol(argv[2]) << 20;
	if (argc > 1 && strcmp(argv[1], "--random") != 0) {
		/* the whole image, as make reads it */
		int fd = open(argv[1], O_RDONLY);
		struct stat st;
		size_t got = 0;

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0) {
			perror(argv[1]);
			return 1;
		}
		len = (size_t)st.st_size;
		buf = malloc(len);
		if (!buf)
			return 1;
		while (got < len) {
			ssize_t n = read(fd, buf + got, len - got);
			if (n <= 0) {
				perror(argv[1]);
				return 1;
			}
			got += (size_t)n;
		}
		close(fd);
	} else {
		uint64_t x = 0x1234567;

		buf = malloc(len);
		if (!buf)
			return 1;
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
	}
	ch = slotsync_chunker_new(&p, &err);
	if (!ch)
		return 1;
	for (int pass = 0; pass < 5; pass++) {
		double t = now();
		size_t off = 0;
		chunks = 0;
		slotsync_chunker_reset(ch);
		while (off < len) {
			size_t n = slotsync_chunker_scan(ch, buf + off, len - off);
			if (n == SIZE_MAX)
				break;
			off += n;
			chunks++;
		}
		t = now() - t;
		if (t < best)
			best = t;
	}
	printf("chunker: %zu bytes, %zu chunks (avg %.0f bytes), %.0f MB/s on one core\n", len, chunks,
	       chunks ? (double)len / (double)chunks : 0.0, (double)len / best / 1e6);
	slotsync_chunker_free(ch);
	free(buf);
	return 0;
}
