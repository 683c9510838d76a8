/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The file backend: slotsync's own boot state for tests and for systems whose
 * bootloader reads none of the others.
 *
 * Two copies of 64 bytes at offsets 0 and 512 (separate sectors), each:
 *   magic "SLOTSYNCBOOT" (12), format u32 = 1, sequence u64,
 *   per slot A, B: priority u32, tries u32, good u32, reserved u32,
 *   CRC-32 (zlib) of the preceding 56 bytes u32, zero pad to 64.
 * A change overwrites the older copy in place with the next sequence number
 * and fdatasyncs: a cut at any point leaves the newer copy whole, and a torn
 * copy fails its CRC.  Reading takes the valid copy with the higher sequence.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "backend.h"

#define MAGIC "SLOTSYNCBOOT"
#define COPY_BYTES 64
#define COPY_STRIDE 512
#define BODY_BYTES 56

/* 0 and the copy's sequence if valid, -1 if not. */
static int decode(const uint8_t *c, uint64_t *seq, struct slotsync_boot_state *st)
{
	if (memcmp(c, MAGIC, 12) != 0 || io_get_le32(c + 12) != 1 ||
	    io_get_le32(c + BODY_BYTES) != (uint32_t)crc32(0, c, BODY_BYTES))
		return -1;
	*seq = (uint64_t)io_get_le32(c + 16) | (uint64_t)io_get_le32(c + 20) << 32;
	for (int s = 0; s < 2; s++) {
		const uint8_t *p = c + 24 + 16 * s;
		uint32_t prio = io_get_le32(p), tries = io_get_le32(p + 4), good = io_get_le32(p + 8);
		if (prio > 2 || tries > SLOTSYNC_BOOT_TRIES_MAX || good > 1)
			return -1;
		st->slot[s].priority = (int)prio;
		st->slot[s].tries = (int)tries;
		st->slot[s].good = (int)good;
	}
	return 0;
}

static int file_read(const char *path, uint8_t copies[2][COPY_BYTES], int valid[2], uint64_t seq[2],
		     struct slotsync_boot_state st[2], struct slotsync_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	valid[0] = valid[1] = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return slotsync_error_set_errno(err, -errno, "cannot open");
	}
	for (int i = 0; i < 2; i++) {
		n = io_pread_full(fd, copies[i], COPY_BYTES, (uint64_t)i * COPY_STRIDE);
		if (n < 0) {
			close(fd);
			return slotsync_error_set_errno(err, (int)n, "cannot read");
		}
		valid[i] = n == COPY_BYTES && decode(copies[i], &seq[i], &st[i]) == 0;
	}
	{
		struct stat s;
		int empty = fstat(fd, &s) == 0 && s.st_size == 0;
		close(fd);
		if (empty)
			return -ENOENT;
	}
	return 0;
}

static int file_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *out,
		     struct slotsync_error *err)
{
	uint8_t copies[2][COPY_BYTES];
	struct slotsync_boot_state st[2];
	uint64_t seq[2];
	int valid[2], r;

	r = file_read(cfg->env, copies, valid, seq, st, err);
	if (r < 0)
		return r;
	if (!valid[0] && !valid[1])
		return slotsync_error_set(err, -EBADMSG, "neither copy is valid (bad magic, CRC or values)");
	*out = valid[0] && (!valid[1] || seq[0] > seq[1]) ? st[0] : st[1];
	return 0;
}

static int file_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
		      struct slotsync_error *err)
{
	uint8_t copies[2][COPY_BYTES], c[COPY_BYTES];
	struct slotsync_boot_state old[2];
	uint64_t seq[2] = { 0, 0 }, next;
	int valid[2], target, fd, r;

	r = file_read(cfg->env, copies, valid, seq, old, err);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == -ENOENT)
		valid[0] = valid[1] = 0;
	/* overwrite the older (or invalid) copy, keep the newer one intact */
	if (valid[0] && valid[1])
		target = seq[0] < seq[1] ? 0 : 1;
	else
		target = valid[0] ? 1 : 0;
	next = (valid[0] && valid[1] ? (seq[0] > seq[1] ? seq[0] : seq[1]) : valid[0] ? seq[0] : valid[1] ? seq[1] : 0) + 1;
	memset(c, 0, sizeof(c));
	memcpy(c, MAGIC, 12);
	io_put_le32(c + 12, 1);
	io_put_le32(c + 16, (uint32_t)next);
	io_put_le32(c + 20, (uint32_t)(next >> 32));
	for (int s = 0; s < 2; s++) {
		io_put_le32(c + 24 + 16 * s, (uint32_t)st->slot[s].priority);
		io_put_le32(c + 28 + 16 * s, (uint32_t)st->slot[s].tries);
		io_put_le32(c + 32 + 16 * s, (uint32_t)st->slot[s].good);
	}
	io_put_le32(c + BODY_BYTES, (uint32_t)crc32(0, c, BODY_BYTES));
	fd = open(cfg->env, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open for writing");
	r = io_pwrite_full(fd, c, COPY_BYTES, (uint64_t)target * COPY_STRIDE);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot write");
	if (r == 0 && !valid[0] && !valid[1])
		return io_fsync_parent(cfg->env, err); /* a new file: its name must last too */
	return 0;
}

const struct boot_backend boot_backend_file = { "file", file_load, file_store };
