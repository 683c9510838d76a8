/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A power cut at a chosen I/O call, for the boot-state tests (LD_PRELOAD).
 *
 * Counts the calls that change files under $POWERCUT_DIR (write, pwrite,
 * fsync, fdatasync, rename), and at call number $POWERCUT_AT stops the process
 * (exit 137) the way a power cut would, per $POWERCUT_MODE:
 *   lose  the call is made, then every write and rename not yet made durable is
 *         undone: writes since the file's last fsync/fdatasync get their old
 *         bytes (and size) back, renames since the folder's last fsync are
 *         reverted, the file they replaced restored;
 *   keep  the call is made and everything written stays (the page cache
 *         reached the disk after all);
 *   torn  a write call writes only the first half of its bytes (a block torn
 *         by the cut), then stops; other calls as keep.
 * Works on any program, libraries included (libubootenv does its own I/O).
 * With $POWERCUT_COUNT set to a file, a run that is not cut writes there how
 * many calls it made (the range a test draws its cuts from).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* paths in tests are short: a truncated one would only go untracked */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 1024
#define PATH_BUF (PATH_MAX + 256)
#define MAX_UNDO 4096

struct undo_write {
	char path[PATH_MAX];
	off_t off, old_size;
	size_t len;
	unsigned char *old;
};

struct undo_rename {
	char from[PATH_MAX], to[PATH_MAX], backup[PATH_MAX];
	int had_target;
};

static char *fd_path[MAX_FDS];
static struct undo_write writes[MAX_UNDO];
static int n_writes;
static struct undo_rename renames[64];
static int n_renames;
static long calls, cut_at = -1;
static int mode; /* 0 lose, 1 keep, 2 torn */
static char dir[PATH_MAX];

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);

__attribute__((destructor)) static void report_count(void)
{
	const char *f = getenv("POWERCUT_COUNT");
	FILE *out;

	if (f && (out = fopen(f, "w"))) {
		fprintf(out, "%ld\n", calls);
		fclose(out);
	}
}

__attribute__((constructor)) static void init(void)
{
	const char *at = getenv("POWERCUT_AT"), *m = getenv("POWERCUT_MODE"), *d = getenv("POWERCUT_DIR");

	real_write = dlsym(RTLD_NEXT, "write");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_rename = dlsym(RTLD_NEXT, "rename");
	real_open = dlsym(RTLD_NEXT, "open64");
	real_openat = dlsym(RTLD_NEXT, "openat64");
	real_close = dlsym(RTLD_NEXT, "close");
	if (at)
		cut_at = atol(at);
	mode = m && !strcmp(m, "keep") ? 1 : m && !strcmp(m, "torn") ? 2 : 0;
	if (d && !realpath(d, dir))
		dir[0] = '\0';
}

static int tracked(const char *path)
{
	size_t n = strlen(dir);

	return n && path && !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static void remember_fd(int fd, const char *path, int dirfd)
{
	char full[PATH_BUF], link[64], base[PATH_MAX];

	if (fd < 0 || fd >= MAX_FDS)
		return;
	free(fd_path[fd]);
	fd_path[fd] = NULL;
	if (path[0] == '/') {
		snprintf(full, sizeof(full), "%s", path);
	} else {
		ssize_t n;
		if (dirfd == AT_FDCWD) {
			if (!getcwd(base, sizeof(base)))
				return;
		} else {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			n = readlink(link, base, sizeof(base) - 1);
			if (n < 0)
				return;
			base[n] = '\0';
		}
		snprintf(full, sizeof(full), "%s/%s", base, path);
	}
	{
		char resolved[PATH_MAX];
		/* the folder part resolved, the name kept (it may not exist yet) */
		char *slash = strrchr(full, '/');
		if (slash && slash != full) {
			*slash = '\0';
			if (realpath(full, resolved)) {
				char tmp[PATH_MAX];
				snprintf(tmp, sizeof(tmp), "%s/%s", resolved, slash + 1);
				snprintf(full, sizeof(full), "%s", tmp);
			} else {
				*slash = '/';
			}
		}
	}
	if (tracked(full))
		fd_path[fd] = strdup(full);
}

static void revert_and_die(void)
{
	if (mode == 0) {
		for (int i = n_writes - 1; i >= 0; i--) {
			struct undo_write *u = &writes[i];
			int fd = real_open(u->path, O_WRONLY);
			if (fd < 0)
				continue;
			if (u->len)
				real_pwrite(fd, u->old, u->len, u->off);
			if (ftruncate(fd, u->old_size) < 0) {
			}
			real_close(fd);
		}
		for (int i = n_renames - 1; i >= 0; i--) {
			struct undo_rename *r = &renames[i];
			real_rename(r->to, r->from);
			if (r->had_target)
				real_rename(r->backup, r->to);
		}
	}
	_exit(137);
}

/* Counts a call on a tracked file; returns 1 if this is the cut. */
static int count(void)
{
	return ++calls == cut_at;
}

static void save_old(int fd, const char *path, off_t off, size_t len)
{
	struct undo_write *u;
	struct stat st;

	if (n_writes == MAX_UNDO || fstat(fd, &st) < 0)
		return;
	u = &writes[n_writes++];
	snprintf(u->path, sizeof(u->path), "%s", path);
	u->off = off;
	u->old_size = st.st_size;
	u->len = off < st.st_size ? ((size_t)(st.st_size - off) < len ? (size_t)(st.st_size - off) : len) : 0;
	u->old = malloc(u->len ? u->len : 1);
	if (u->len && pread(fd, u->old, u->len, off) != (ssize_t)u->len)
		u->len = 0;
}

static ssize_t do_write(int fd, const void *buf, size_t len, off_t off, int positioned)
{
	const char *path = fd >= 0 && fd < MAX_FDS ? fd_path[fd] : NULL;
	ssize_t n;
	int cut;

	if (!path)
		return positioned ? real_pwrite(fd, buf, len, off) : real_write(fd, buf, len);
	if (!positioned)
		off = lseek(fd, 0, SEEK_CUR);
	cut = count();
	if (cut && mode == 2 && len > 1) {
		if (positioned)
			real_pwrite(fd, buf, len / 2, off);
		else
			real_write(fd, buf, len / 2);
		_exit(137);
	}
	save_old(fd, path, off, len);
	n = positioned ? real_pwrite(fd, buf, len, off) : real_write(fd, buf, len);
	if (cut)
		revert_and_die();
	return n;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	return do_write(fd, buf, len, 0, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return do_write(fd, buf, len, off, 1);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return do_write(fd, buf, len, off, 1);
}

static int do_sync(int fd, int data_only)
{
	const char *path = fd >= 0 && fd < MAX_FDS ? fd_path[fd] : NULL;
	int r = data_only ? real_fdatasync(fd) : real_fsync(fd), cut;
	struct stat st;

	if (!path)
		return r;
	cut = count();
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* the folder's renames are durable now */
		int k = 0;
		for (int i = 0; i < n_renames; i++) {
			char parent[PATH_MAX], *slash;
			snprintf(parent, sizeof(parent), "%s", renames[i].to);
			slash = strrchr(parent, '/');
			if (slash)
				*slash = '\0';
			if (!strcmp(parent, path)) {
				if (renames[i].had_target)
					unlink(renames[i].backup);
			} else {
				renames[k++] = renames[i];
			}
		}
		n_renames = k;
	} else {
		int k = 0;
		for (int i = 0; i < n_writes; i++) {
			if (!strcmp(writes[i].path, path))
				free(writes[i].old);
			else
				writes[k++] = writes[i];
		}
		n_writes = k;
	}
	if (cut)
		revert_and_die();
	return r;
}

int fsync(int fd)
{
	return do_sync(fd, 0);
}

int fdatasync(int fd)
{
	return do_sync(fd, 1);
}

int rename(const char *from, const char *to)
{
	char f[PATH_MAX], t[PATH_MAX];
	struct undo_rename *u;
	int cut, r;

	if (!realpath(from, f) || !tracked(f))
		return real_rename(from, to);
	{
		/* resolve the target's folder */
		char tmp[PATH_MAX], res[PATH_MAX], *slash;
		snprintf(tmp, sizeof(tmp), "%s", to);
		slash = strrchr(tmp, '/');
		if (slash) {
			*slash = '\0';
			if (!realpath(tmp[0] ? tmp : "/", res))
				return real_rename(from, to);
			snprintf(t, sizeof(t), "%s/%s", res, slash + 1);
		} else {
			if (!getcwd(res, sizeof(res)))
				return real_rename(from, to);
			snprintf(t, sizeof(t), "%s/%s", res, to);
		}
	}
	cut = count();
	if (n_renames < 64) {
		u = &renames[n_renames++];
		snprintf(u->from, sizeof(u->from), "%s", f);
		snprintf(u->to, sizeof(u->to), "%s", t);
		snprintf(u->backup, sizeof(u->backup), "%s.powercut-old", t);
		unlink(u->backup);
		u->had_target = link(t, u->backup) == 0;
	}
	r = real_rename(from, to);
	if (cut)
		revert_and_die();
	return r;
}

int open(const char *path, int flags, ...)
{
	mode_t m = 0;
	int fd;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		m = va_arg(ap, mode_t);
		va_end(ap);
	}
	fd = real_open(path, flags, m);
	if (fd >= 0)
		remember_fd(fd, path, AT_FDCWD);
	return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t m = 0;
	int fd;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		m = va_arg(ap, mode_t);
		va_end(ap);
	}
	fd = real_openat(dirfd, path, flags, m);
	if (fd >= 0)
		remember_fd(fd, path, dirfd);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int mkostemp(char *template, int flags)
{
	static int (*real_mkostemp)(char *, int);
	int fd;

	if (!real_mkostemp)
		real_mkostemp = dlsym(RTLD_NEXT, "mkostemp");
	fd = real_mkostemp(template, flags);
	if (fd >= 0)
		remember_fd(fd, template, AT_FDCWD);
	return fd;
}

int mkostemp64(char *template, int flags) __attribute__((alias("mkostemp")));

int close(int fd)
{
	if (fd >= 0 && fd < MAX_FDS) {
		free(fd_path[fd]);
		fd_path[fd] = NULL;
	}
	return real_close(fd);
}
