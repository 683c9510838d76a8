/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* I/O helpers: see io.h. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t io_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (uint8_t *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t io_pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int io_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int io_fd_size(int fd, uint64_t *out)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*out = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t size;
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return -errno;
		*out = size;
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	return -EINVAL;
}

int io_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	uint64_t size;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s", path);
	r = io_fd_size(fd, &size);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot read %s", path);
		goto out;
	}
	if (size > max_bytes) {
		r = slotsync_error_set(err, -EFBIG, "%s is %llu bytes, more than the limit of %zu", path,
				       (unsigned long long)size, max_bytes);
		goto out;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory reading %s", path);
		goto out;
	}
	n = io_read_full(fd, buf, size);
	if (n < 0) {
		r = slotsync_error_set_errno(err, (int)n, "cannot read %s", path);
		goto out;
	}
	if ((uint64_t)n != size) {
		r = slotsync_error_set(err, -EIO, "%s changed size while being read", path);
		goto out;
	}
	*out = buf;
	*out_len = (size_t)size;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int io_fsync_parent(const char *path, struct slotsync_error *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return slotsync_error_set(err, -ENAMETOOLONG, "path too long: %s", path);
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open folder %s", dir);
	if (fsync(fd) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot fsync folder %s", dir);
	close(fd);
	return r;
}

/* The process umask, read without changing it (umask() would set it for
 * every thread for a moment); 077 (the narrowest) if it cannot be read. */
static mode_t process_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned mask = 077;

	if (!f)
		return 077;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &mask) == 1)
			break;
	fclose(f);
	return (mode_t)(mask & 0777);
}

int io_write_file_atomic(const char *path, const void *buf, size_t len, struct slotsync_error *err)
{
	char tmp[PATH_MAX];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
		return slotsync_error_set(err, -ENAMETOOLONG, "path too long: %s", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
	r = io_write_full(fd, buf, len);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot write %s", tmp);
		goto fail;
	}
	/* The data must be on disk before the rename makes it visible under `path`. */
	if (fsync(fd) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot fsync %s", tmp);
		goto fail;
	}
	/* mkostemp made it 0600: widen it only as far as the umask allows (a
	 * device's UMask=0077 keeps state files 0600, a build server's 022 lets
	 * its web server read what it publishes) */
	if (fchmod(fd, 0666 & ~process_umask()) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot chmod %s", tmp);
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot rename %s to %s", tmp, path);
		goto fail;
	}
	/* The rename itself is durable only once the folder is. */
	return io_fsync_parent(path, err);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int io_check_private_dir(const char *path, struct slotsync_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot use folder %s", path);
	if (!S_ISDIR(st.st_mode))
		return slotsync_error_set(err, -ENOTDIR, "%s is not a folder", path);
	if (st.st_uid != geteuid())
		return slotsync_error_set(err, -EPERM, "folder %s belongs to uid %u, not to uid %u that runs this: refused",
					  path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 022)
		return slotsync_error_set(err, -EPERM,
					  "folder %s has mode %04o: others may write into it, so it is refused "
					  "(chmod go-w %s)",
					  path, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

int io_mkdir_p(const char *path, struct slotsync_error *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return slotsync_error_set(err, -ENAMETOOLONG, "bad folder name \"%s\"", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return slotsync_error_set_errno(err, -errno, "cannot create folder %s", buf);
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return slotsync_error_set_errno(err, -errno, "cannot create folder %s", buf);
	return 0;
}
