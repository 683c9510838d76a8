/* Full reads and writes that handle EINTR and short counts, positioned I/O, and the
 * atomic-file pattern (temp file in the same folder, fsync, rename, fsync folder).
 * Private to libslotsync and its programs. */
#ifndef SLOTSYNC_IO_H
#define SLOTSYNC_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "slotsync/error.h"

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

/* mkdir -p: creates path and its missing parents; existing ones are fine. */
int io_mkdir_p(const char *path, struct slotsync_error *err);

#endif
