/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Data-partition migration: see include/slotsync/migrate.h. */
#include "slotsync/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"

#define COPY_BLOCK (1u << 20)

static int copy_device(const char *from, const char *to, struct slotsync_error *err)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	uint64_t size = 0, to_size = 0;
	uint8_t *buf = malloc(COPY_BLOCK);

	if (in < 0 || !buf) {
		r = in < 0 ? slotsync_error_set_errno(err, -errno, "cannot open the active data partition %s", from)
			   : slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	out = open(to, O_WRONLY | O_CLOEXEC);
	if (out < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open the new data partition %s", to);
		goto out;
	}
	if (io_fd_size(in, &size) < 0 || io_fd_size(out, &to_size) < 0 || to_size < size) {
		r = slotsync_error_set(err, -ENOSPC, "the new data partition %s (%llu bytes) cannot hold %s (%llu bytes)", to,
				       (unsigned long long)to_size, from, (unsigned long long)size);
		goto out;
	}
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < COPY_BLOCK ? (size_t)(size - off) : COPY_BLOCK;
		ssize_t got = io_pread_full(in, buf, n, off);
		if (got != (ssize_t)n) {
			r = slotsync_error_set_errno(err, got < 0 ? (int)got : -EIO, "cannot read %s at %llu", from,
						     (unsigned long long)off);
			goto out;
		}
		r = io_pwrite_full(out, buf, n, off);
		if (r < 0) {
			slotsync_error_set_errno(err, r, "cannot write %s at %llu", to, (unsigned long long)off);
			goto out;
		}
		off += n;
	}
	if (fsync(out) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot flush %s", to);
out:
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_hooks(const char *image, const char *data, const char *dir_rel, struct slotsync_error *err)
{
	char dir[4200];
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	int r = 0;

	if (snprintf(dir, sizeof(dir), "%s/%s", image, dir_rel) >= (int)sizeof(dir))
		return slotsync_error_set(err, -ENAMETOOLONG, "hook folder path too long");
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : slotsync_error_set_errno(err, -errno, "cannot read the hook folder %s", dir_rel);
	while ((de = readdir(d))) {
		char p[4500];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= (int)sizeof(p))
			continue;
		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*nn));
			if (!nn) {
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
				break;
			}
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (r == 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char p[4500];
		pid_t pid;
		int status;
		if (snprintf(p, sizeof(p), "%s/%s", dir, names[i]) >= (int)sizeof(p)) {
			r = slotsync_error_set(err, -ENAMETOOLONG, "hook path too long");
			break;
		}
		pid = fork();
		if (pid < 0) {
			r = slotsync_error_set_errno(err, -errno, "cannot start hook %s", names[i]);
			break;
		}
		if (pid == 0) {
			setenv("SLOTSYNC_IMAGE", image, 1);
			setenv("SLOTSYNC_DATA", data, 1);
			setenv("SLOTSYNC_HOOK", names[i], 1);
			if (chdir(data) < 0)
				_exit(126);
			execl(p, p, (char *)NULL);
			_exit(127);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			r = slotsync_error_set(err, -ECANCELED, "migration hook %s failed (%s %d): the install stops, the old slot and data are untouched",
					       names[i], WIFEXITED(status) ? "exit" : "signal",
					       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int slotsync_migrate_data(const struct slotsync_migrate_options *o, struct slotsync_error *err)
{
	const char *work = o->workdir ? o->workdir : "/run/slotsync";
	char image[4200], data[4200];
	int r, image_mounted = 0, data_mounted = 0;

	r = copy_device(o->from, o->to, err);
	if (r < 0)
		return r;
	if (snprintf(image, sizeof(image), "%s/new-image", work) >= (int)sizeof(image) ||
	    snprintf(data, sizeof(data), "%s/new-data", work) >= (int)sizeof(data))
		return slotsync_error_set(err, -ENAMETOOLONG, "work folder path too long");
	if (io_mkdir_p(image, err) < 0 || io_mkdir_p(data, err) < 0)
		return err->code;
	if (mount(o->image, image, "squashfs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot mount the new image %s read-only", o->image);
		goto out;
	}
	image_mounted = 1;
	if (mount(o->to, data, o->fs_type ? o->fs_type : "ext4", MS_NODEV | MS_NOSUID, NULL) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot mount the new data partition %s", o->to);
		goto out;
	}
	data_mounted = 1;
	r = run_hooks(image, data, o->hooks_dir ? o->hooks_dir : SLOTSYNC_MIGRATE_HOOKS_DIR, err);
	sync();
out:
	if (data_mounted && umount(data) < 0 && r == 0)
		r = slotsync_error_set_errno(err, -errno, "cannot unmount %s", data);
	if (image_mounted)
		umount(image);
	return r;
}
