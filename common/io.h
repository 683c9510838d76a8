/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Full reads and writes that handle EINTR and short counts, positioned I/O, and the
 * atomic-file pattern (temp file in the same folder, fsync, rename, fsync folder).
 * Private to libslotsync and its programs. */
#ifndef SLOTSYNC_IO_H
#define SLOTSYNC_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "slotsync/error.h"

/* Little-endian integers in byte buffers (on-disk formats). */
static inline void io_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t io_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline void io_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void io_put_le64(uint8_t *p, uint64_t v)
{
	io_put_le32(p, (uint32_t)v);
	io_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t io_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t io_get_le64(const uint8_t *p)
{
	return (uint64_t)io_get_le32(p) | (uint64_t)io_get_le32(p + 4) << 32;
}

/* Reads up to len bytes; fewer only at end of file.  Returns bytes read or -errno. */
ssize_t io_read_full(int fd, void *buf, size_t len);
ssize_t io_pread_full(int fd, void *buf, size_t len, uint64_t offset);
/* Writes all len bytes or returns -errno. */
int io_write_full(int fd, const void *buf, size_t len);
int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset);

/* Reads a whole regular file of at most max_bytes into a new buffer (free()). */
int io_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* Replaces `path` atomically with `len` bytes: a temp file in the same folder is
 * written and fsync'd, renamed over path, and the folder fsync'd, so that after a
 * crash path holds either its old content or all of the new. */
int io_write_file_atomic(const char *path, const void *buf, size_t len, struct slotsync_error *err);

/* fsync()s the folder that holds `path` (makes a rename or create in it durable). */
int io_fsync_parent(const char *path, struct slotsync_error *err);

/* Size in bytes of a regular file or block device open on fd. */
int io_fd_size(int fd, uint64_t *out);

/* A folder that holds private state (the device's state folder) must belong to
 * the user that runs this and be writable by no one else: else -EPERM with a
 * message naming the folder, its owner or its mode. */
int io_check_private_dir(const char *path, struct slotsync_error *err);

/* mkdir -p: creates path and its missing parents; existing ones are fine. */
int io_mkdir_p(const char *path, struct slotsync_error *err);

#endif
