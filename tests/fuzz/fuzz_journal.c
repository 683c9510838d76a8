/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: journal replay.  The input is what follows a valid header
 * (the records a torn or hostile file may hold); the journal must open, take
 * only well-formed records, and cut the rest, never crash. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slotsync/journal.h"

#define N 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct slotsync_journal_identity id = { .image_size = 1u << 30, .n_chunks = N, .target_dev = 1, .target_ino = 2 };
	struct slotsync_journal *j = NULL;
	struct slotsync_error err = { 0 };
	static uint8_t done[N];
	int verified, fd;
	off_t header_end;

	if (!path[0])
		snprintf(path, sizeof(path), "/dev/shm/fuzz-journal-%d", (int)getpid());
	/* a fresh journal gives a valid header ... */
	unlink(path);
	if (slotsync_journal_open(path, &id, 0, done, &verified, &j, &err) < 0)
		abort();
	slotsync_journal_free(j);
	j = NULL;
	/* ... followed by the input */
	fd = open(path, O_WRONLY | O_APPEND);
	header_end = lseek(fd, 0, SEEK_END);
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (slotsync_journal_open(path, &id, 0, done, &verified, &j, &err) < 0) {
		if (!err.msg[0])
			abort();
		return 0;
	}
	/* every place is in one of the three states */
	for (size_t i = 0; i < N; i++)
		if (done[i] > SLOTSYNC_JOURNAL_WRITTEN)
			abort();
	/* what was accepted can be appended to and reopened */
	{
		uint32_t pos = 7;
		if (slotsync_journal_append_done(j, &pos, 1, &err) < 0)
			abort();
	}
	slotsync_journal_free(j);
	j = NULL;
	if (slotsync_journal_open(path, &id, 0, done, &verified, &j, &err) < 0 || done[7] != SLOTSYNC_JOURNAL_DURABLE)
		abort();
	slotsync_journal_free(j);
	(void)header_end;
	return 0;
}
