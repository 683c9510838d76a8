/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The assembly journal: see include/slotsync/journal.h.
 *
 * Layout (little-endian):
 *   header (96 bytes): magic "SLOTSYNC-JOURNAL" (16), version u32 = 1, pad u32,
 *     index digest (32), image size u64, chunk count u64, target dev u64, target
 *     ino u64, xxh3-64 of the preceding 88 bytes u64
 *   record: kind u32 ('D', 'W', 'I' or 'V'), count u32, count x position u32,
 *     xxh3-64 of kind, count and positions u64
 */
#include "slotsync/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "io.h"

#define JOURNAL_MAGIC "SLOTSYNC-JOURNAL"
#define JOURNAL_VERSION 1u
#define HEADER_BYTES 96u
#define RECORD_MAX_POSITIONS (1u << 20)
#define KIND_DONE 0x44u     /* 'D' */
#define KIND_WRITTEN 0x57u  /* 'W' */
#define KIND_INVALID 0x49u  /* 'I' */
#define KIND_VERIFIED 0x56u /* 'V' */

struct slotsync_journal {
	char *path;
	int fd;
	uint64_t n_chunks;
	uint8_t *buf;  /* record being built */
	size_t cap;
	pthread_mutex_t lock; /* one append at a time */
};

static void header_build(uint8_t h[HEADER_BYTES], const struct slotsync_journal_identity *id)
{
	memset(h, 0, HEADER_BYTES);
	memcpy(h, JOURNAL_MAGIC, 16);
	io_put_le32(h + 16, JOURNAL_VERSION);
	memcpy(h + 24, id->index_digest, SLOTSYNC_DIGEST_BYTES);
	io_put_le64(h + 56, id->image_size);
	io_put_le64(h + 64, id->n_chunks);
	io_put_le64(h + 72, id->target_dev);
	io_put_le64(h + 80, id->target_ino);
	io_put_le64(h + 88, XXH3_64bits(h, 88));
}

/* Why does header h not match id?  NULL if it does. */
static const char *header_mismatch(const uint8_t *h, const struct slotsync_journal_identity *id)
{
	if (memcmp(h, JOURNAL_MAGIC, 16) != 0)
		return "it is not a slotsync journal";
	if (io_get_le64(h + 88) != XXH3_64bits(h, 88))
		return "its header is corrupt";
	if (io_get_le32(h + 16) != JOURNAL_VERSION)
		return "it has an unknown version";
	if (memcmp(h + 24, id->index_digest, SLOTSYNC_DIGEST_BYTES) != 0 || io_get_le64(h + 56) != id->image_size ||
	    io_get_le64(h + 64) != id->n_chunks)
		return "it belongs to another index";
	if (io_get_le64(h + 72) != id->target_dev || io_get_le64(h + 80) != id->target_ino)
		return "it belongs to another target";
	return NULL;
}

static int journal_start(struct slotsync_journal *j, const struct slotsync_journal_identity *id,
			 struct slotsync_error *err)
{
	uint8_t h[HEADER_BYTES];

	header_build(h, id);
	if (ftruncate(j->fd, 0) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot reset journal %s", j->path);
	if (io_pwrite_full(j->fd, h, HEADER_BYTES, 0) < 0 || fdatasync(j->fd) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot write journal %s", j->path);
	/* a new journal file must also be durable in its folder */
	return io_fsync_parent(j->path, err);
}

/* Replays the records after the header; stops at the first torn or corrupt one
 * and cuts the file there, so that later appends follow good records. */
static int journal_replay(struct slotsync_journal *j, uint8_t *done, int *verified, struct slotsync_error *err)
{
	uint64_t size, off = HEADER_BYTES;
	uint8_t *buf = NULL;
	ssize_t n;
	int r = 0;

	r = io_fd_size(j->fd, &size);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot read journal %s", j->path);
	if (size > HEADER_BYTES + (uint64_t)16 * 1024 * 1024 * 1024)
		return slotsync_error_set(err, -EFBIG, "journal %s is implausibly large", j->path);
	buf = malloc(size - HEADER_BYTES + 1);
	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory reading journal %s", j->path);
	n = io_pread_full(j->fd, buf, size - HEADER_BYTES, HEADER_BYTES);
	if (n < 0) {
		r = slotsync_error_set_errno(err, (int)n, "cannot read journal %s", j->path);
		goto out;
	}
	for (uint64_t p = 0;;) {
		uint32_t kind, count;
		uint64_t len;

		if ((uint64_t)n - p < 8)
			break;
		kind = io_get_le32(buf + p);
		count = io_get_le32(buf + p + 4);
		if (count > RECORD_MAX_POSITIONS)
			break;
		len = 8 + 4 * (uint64_t)count + 8;
		if ((uint64_t)n - p < len || io_get_le64(buf + p + len - 8) != XXH3_64bits(buf + p, len - 8))
			break;
		if (kind != KIND_DONE && kind != KIND_WRITTEN && kind != KIND_INVALID && kind != KIND_VERIFIED)
			break;
		for (uint32_t i = 0; i < count; i++) {
			uint32_t pos = io_get_le32(buf + p + 8 + 4 * (uint64_t)i);
			if (pos < j->n_chunks)
				done[pos] = kind == KIND_DONE	 ? SLOTSYNC_JOURNAL_DURABLE
					    : kind == KIND_WRITTEN ? SLOTSYNC_JOURNAL_WRITTEN
								   : SLOTSYNC_JOURNAL_TODO;
		}
		if (kind == KIND_VERIFIED)
			*verified = 1;
		else if (kind == KIND_INVALID)
			*verified = 0;
		p += len;
		off = HEADER_BYTES + p;
	}
	if (off < size && ftruncate(j->fd, (off_t)off) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot cut the torn tail of journal %s", j->path);
		goto out;
	}
out:
	free(buf);
	return r;
}

int slotsync_journal_open(const char *path, const struct slotsync_journal_identity *id, int reset,
			  uint8_t *done, int *verified, struct slotsync_journal **out, struct slotsync_error *err)
{
	struct slotsync_journal *j;
	uint8_t h[HEADER_BYTES];
	ssize_t n;
	int r;

	*verified = 0;
	memset(done, 0, id->n_chunks);
	j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	j->n_chunks = id->n_chunks;
	pthread_mutex_init(&j->lock, NULL);
	/* O_NOFOLLOW: a symlink planted as the journal is refused, never written through */
	j->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (j->fd < 0 && errno == ELOOP) {
		r = slotsync_error_set(err, -ELOOP, "journal %s is a symbolic link: refused", path);
		goto fail;
	}
	if (j->fd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open journal %s", path);
		goto fail;
	}
	n = io_pread_full(j->fd, h, HEADER_BYTES, 0);
	if (n < 0) {
		r = slotsync_error_set_errno(err, (int)n, "cannot read journal %s", path);
		goto fail;
	}
	if (n == 0 || reset) {
		r = journal_start(j, id, err);
	} else if (n < (ssize_t)HEADER_BYTES) {
		/* a header torn while it was first written: nothing was journaled yet */
		r = memcmp(h, JOURNAL_MAGIC, (size_t)n < 16 ? (size_t)n : 16) == 0
			    ? journal_start(j, id, err)
			    : slotsync_error_set(err, -EEXIST,
						 "journal %s is not a slotsync journal (use --reset-journal to start anew)",
						 path);
	} else {
		const char *why = header_mismatch(h, id);
		if (why)
			r = slotsync_error_set(err, -EEXIST, "journal %s cannot be used: %s (use --reset-journal to start anew)",
					       path, why);
		else
			r = journal_replay(j, done, verified, err);
	}
	if (r < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	slotsync_journal_free(j);
	return r;
}

void slotsync_journal_free(struct slotsync_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->buf);
	free(j->path);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

static int journal_append_locked(struct slotsync_journal *j, uint32_t kind, const uint32_t *positions, size_t n,
				 struct slotsync_error *err)
{
	size_t done = 0;

	do {
		size_t count = n - done > RECORD_MAX_POSITIONS ? RECORD_MAX_POSITIONS : n - done;
		size_t len = 8 + 4 * count + 8;
		off_t end;
		int r;

		if (j->cap < len) {
			uint8_t *b = realloc(j->buf, len);
			if (!b)
				return slotsync_error_set(err, -ENOMEM, "out of memory");
			j->buf = b;
			j->cap = len;
		}
		io_put_le32(j->buf, kind);
		io_put_le32(j->buf + 4, (uint32_t)count);
		for (size_t i = 0; i < count; i++)
			io_put_le32(j->buf + 8 + 4 * i, positions[done + i]);
		io_put_le64(j->buf + len - 8, XXH3_64bits(j->buf, len - 8));
		end = lseek(j->fd, 0, SEEK_END);
		if (end < 0)
			return slotsync_error_set_errno(err, -errno, "cannot append to journal %s", j->path);
		r = io_pwrite_full(j->fd, j->buf, len, (uint64_t)end);
		if (r < 0)
			return slotsync_error_set_errno(err, r, "cannot append to journal %s", j->path);
		/* A DONE record is a promise about the target: it counts only once
		 * durable.  A WRITTEN record promises nothing. */
		if (kind != KIND_WRITTEN && fdatasync(j->fd) < 0)
			return slotsync_error_set_errno(err, -errno, "cannot fdatasync journal %s", j->path);
		done += count;
	} while (done < n);
	return 0;
}

static int journal_append(struct slotsync_journal *j, uint32_t kind, const uint32_t *positions, size_t n,
			  struct slotsync_error *err)
{
	int r;

	pthread_mutex_lock(&j->lock);
	r = journal_append_locked(j, kind, positions, n, err);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int slotsync_journal_append_done(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				 struct slotsync_error *err)
{
	return n ? journal_append(j, KIND_DONE, positions, n, err) : 0;
}

int slotsync_journal_append_written(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				    struct slotsync_error *err)
{
	return n ? journal_append(j, KIND_WRITTEN, positions, n, err) : 0;
}

int slotsync_journal_append_invalid(struct slotsync_journal *j, const uint32_t *positions, size_t n,
				    struct slotsync_error *err)
{
	return n ? journal_append(j, KIND_INVALID, positions, n, err) : 0;
}

int slotsync_journal_append_verified(struct slotsync_journal *j, struct slotsync_error *err)
{
	return journal_append(j, KIND_VERIFIED, NULL, 0, err);
}

