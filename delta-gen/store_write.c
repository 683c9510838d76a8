/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunk store writer: see store_write.h. */
#include "store_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "slotsync/store.h"

#define BATCH_MAX_FILES 2048
#define BATCH_MAX_BYTES (64u << 20)

struct store_writer {
	char *path;
	int dirfd;
	int pid;               /* in temp file names */
	/* which of the 65536 "<4 hex>" folders are known to exist */
	_Atomic uint64_t made[65536 / 64];
};

struct pending {
	char tmp[SLOTSYNC_CHUNK_RELPATH_BYTES + 32];
	char final[SLOTSYNC_CHUNK_RELPATH_BYTES];
};

struct store_batch {
	struct store_writer *sw;
	struct pending files[BATCH_MAX_FILES];
	size_t n;
	size_t bytes;
	unsigned seq;
};

int store_write_named(const char *store, const char *rel, const void *data, size_t len, struct slotsync_error *err)
{
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/%s", store, rel);
	*strrchr(path, '/') = '\0';
	r = io_mkdir_p(path, err);
	snprintf(path, sizeof(path), "%s/%s", store, rel);
	return r < 0 ? r : io_write_file_atomic(path, data, len, err);
}

int store_writer_open(const char *dir, struct store_writer **out, struct slotsync_error *err)
{
	struct store_writer *sw;
	int fd;

	if (io_mkdir_p(dir, err) < 0) {
		slotsync_error_prefix(err, "cannot create store %s", dir);
		return err ? err->code : -EIO;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open store %s", dir);
	if (faccessat(fd, ".", W_OK, AT_EACCESS) < 0) {
		int e = -errno;
		close(fd);
		return slotsync_error_set_errno(err, e, "store %s is not writable", dir);
	}
	sw = calloc(1, sizeof(*sw));
	if (!sw || !(sw->path = strdup(dir))) {
		free(sw);
		close(fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	sw->dirfd = fd;
	sw->pid = (int)getpid();
	*out = sw;
	return 0;
}

void store_writer_free(struct store_writer *sw)
{
	if (!sw)
		return;
	close(sw->dirfd);
	free(sw->path);
	free(sw);
}

/* Makes the "<4 hex>" folder of id unless it is known to exist.  Returns 1 if
 * it was made now (so it holds no chunk yet), 0 if it existed. */
static int ensure_folder(struct store_writer *sw, const uint8_t id[SLOTSYNC_DIGEST_BYTES], const char *rel,
			 struct slotsync_error *err)
{
	unsigned n = (unsigned)id[0] << 8 | id[1];
	uint64_t bit = UINT64_C(1) << (n & 63);
	char folder[5];
	int made = 1;

	if (atomic_load(&sw->made[n >> 6]) & bit)
		return 0;
	memcpy(folder, rel, 4);
	folder[4] = '\0';
	if (mkdirat(sw->dirfd, folder, 0755) < 0) {
		if (errno != EEXIST)
			return slotsync_error_set_errno(err, -errno, "cannot create folder %s in store %s", folder,
							sw->path);
		made = 0;
	}
	atomic_fetch_or(&sw->made[n >> 6], bit);
	return made;
}

int store_writer_has(struct store_writer *sw, const uint8_t id[SLOTSYNC_DIGEST_BYTES])
{
	char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];
	struct stat st;

	slotsync_store_chunk_relpath(id, rel);
	/* The folder is made here rather than at the put that would follow: a
	 * folder that did not exist until now holds no chunk, and the stat is
	 * saved (on a new store, nearly every chunk is the first of its folder).
	 * Where it cannot be made, the stat below answers. */
	if (ensure_folder(sw, id, rel, NULL) == 1)
		return 0;
	if (fstatat(sw->dirfd, rel, &st, 0) < 0 || !S_ISREG(st.st_mode))
		return 0;
	/* reused: its time becomes now, so that a prune running at the same time
	 * keeps it for the grace period (a store of files this user may not touch
	 * is only read) */
	(void)utimensat(sw->dirfd, rel, NULL, 0);
	return 1;
}

struct store_batch *store_batch_new(struct store_writer *sw)
{
	struct store_batch *b = calloc(1, sizeof(*b));

	if (b)
		b->sw = sw;
	return b;
}

int store_writer_sync(struct store_writer *sw, struct slotsync_error *err)
{
	if (syncfs(sw->dirfd) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot sync store %s", sw->path);
	return 0;
}

int store_batch_commit(struct store_batch *b, struct slotsync_error *err)
{
	int r = 0;

	if (b->n == 0)
		return 0;
	/* The temp files' data must be durable before any of them takes its final
	 * name: a chunk file under its name is then whole even after a power cut.
	 * One syncfs() costs one journal commit for the whole batch, where an
	 * fdatasync() per file costs one each (measured: several times slower). */
	r = store_writer_sync(b->sw, err);
	for (size_t i = 0; i < b->n; i++) {
		if (r == 0 && renameat(b->sw->dirfd, b->files[i].tmp, b->sw->dirfd, b->files[i].final) < 0)
			r = slotsync_error_set_errno(err, -errno, "cannot rename %s in store %s", b->files[i].tmp,
						     b->sw->path);
		if (r < 0)
			unlinkat(b->sw->dirfd, b->files[i].tmp, 0);
	}
	b->n = 0;
	b->bytes = 0;
	return r;
}

int store_batch_free(struct store_batch *b, struct slotsync_error *err)
{
	int r;

	if (!b)
		return 0;
	r = store_batch_commit(b, err);
	free(b);
	return r;
}

int store_batch_put(struct store_batch *b, const uint8_t id[SLOTSYNC_DIGEST_BYTES], const void *data, size_t len,
		    struct slotsync_error *err)
{
	return store_batch_put_ext(b, id, NULL, data, len, err);
}

int store_batch_put_ext(struct store_batch *b, const uint8_t id[SLOTSYNC_DIGEST_BYTES], const char *suffix,
			const void *data, size_t len, struct slotsync_error *err)
{
	struct store_writer *sw = b->sw;
	struct pending *p = &b->files[b->n];
	char final[SLOTSYNC_CHUNK_RELPATH_BYTES];
	int fd, r;

	slotsync_store_chunk_relpath(id, p->final);
	if (suffix) {
		char *dot = strrchr(p->final, '.');
		snprintf(dot, sizeof(p->final) - (size_t)(dot - p->final), "%s", suffix);
	}
	r = ensure_folder(sw, id, p->final, err);
	if (r < 0)
		return r;
	memcpy(final, p->final, sizeof(final));
	snprintf(p->tmp, sizeof(p->tmp), "%.4s/" STORE_TMP_PREFIX "%.64s.%d.%u", final, final + 5, sw->pid, b->seq++);
	fd = openat(sw->dirfd, p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 && errno == ENOENT) {
		/* a prune removed the folder since it was made: make it again */
		unsigned n = (unsigned)id[0] << 8 | id[1];
		atomic_fetch_and(&sw->made[n >> 6], ~(UINT64_C(1) << (n & 63)));
		r = ensure_folder(sw, id, p->final, err);
		if (r < 0)
			return r;
		fd = openat(sw->dirfd, p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot create %s in store %s", p->tmp, sw->path);
	r = io_write_full(fd, data, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		unlinkat(sw->dirfd, p->tmp, 0);
		return slotsync_error_set_errno(err, r, "cannot write chunk %s in store %s", p->final, sw->path);
	}
	b->n++;
	b->bytes += len;
	if (b->n == BATCH_MAX_FILES || b->bytes >= BATCH_MAX_BYTES)
		return store_batch_commit(b, err);
	return 0;
}
