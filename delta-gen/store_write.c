/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chunk store writer: see store_write.h. */
#include "store_write.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "slotsync/store.h"

#define BATCH_MAX_FILES 2048
#define FLUSH_BYTES (8u << 20)  /* written since the last syncfs began: begin another */

/* Durability runs beside the writers: a flusher thread calls syncfs() whenever
 * FLUSH_BYTES were written since the last one began, or a batch waits for one.
 * A temp file closed before a syncfs began is durable once that syncfs ended;
 * a batch renames its files as that happens, so the writers seldom wait and the
 * disk works while they compress.  syncfs() calls are numbered: `began` counts
 * those begun, `ended` the number of the last one ended (one flusher: they end
 * in order). */
struct store_writer {
	char *path;
	int dirfd;
	int pid;               /* in temp file names */
	/* which of the 65536 "<4 hex>" folders are known to exist */
	_Atomic uint64_t made[65536 / 64];

	pthread_mutex_t lock;
	pthread_cond_t wake;        /* to the flusher: a batch waits, enough written, or stop */
	pthread_cond_t synced;      /* from the flusher: a syncfs ended */
	uint64_t began, ended;
	uint64_t wanted;            /* the highest syncfs number a batch waits for */
	uint64_t unsynced;          /* bytes written since the last syncfs began */
	int sync_errno;             /* the first failure of a syncfs: every wait fails after it */
	int stop;
	int flusher_running;
	pthread_t flusher;
};

struct pending {
	char tmp[SLOTSYNC_CHUNK_RELPATH_BYTES + 32];
	char final[SLOTSYNC_CHUNK_RELPATH_BYTES];
	uint64_t need;              /* durable once syncfs number `need` ended */
};

/* Pending temp files are files[head, n), oldest first. */
struct store_batch {
	struct store_writer *sw;
	struct pending files[BATCH_MAX_FILES];
	size_t head, n;
	unsigned seq;
};

static void *flusher_main(void *arg)
{
	struct store_writer *sw = arg;

	pthread_mutex_lock(&sw->lock);
	for (;;) {
		uint64_t no;
		int e;

		while (!sw->stop && sw->wanted <= sw->began && sw->unsynced < FLUSH_BYTES)
			pthread_cond_wait(&sw->wake, &sw->lock);
		if (sw->stop)
			break;
		no = ++sw->began;
		sw->unsynced = 0;
		pthread_mutex_unlock(&sw->lock);
		e = syncfs(sw->dirfd) < 0 ? errno : 0;
		pthread_mutex_lock(&sw->lock);
		if (e && !sw->sync_errno)
			sw->sync_errno = e;
		sw->ended = no;
		pthread_cond_broadcast(&sw->synced);
	}
	pthread_mutex_unlock(&sw->lock);
	return NULL;
}

/* Waits until syncfs number `need` ended.  Returns 0, or the negative errno of
 * a failed syncfs. */
static int wait_synced(struct store_writer *sw, uint64_t need)
{
	int r;

	pthread_mutex_lock(&sw->lock);
	if (sw->wanted < need) {
		sw->wanted = need;
		pthread_cond_signal(&sw->wake);
	}
	while (sw->ended < need && !sw->sync_errno)
		pthread_cond_wait(&sw->synced, &sw->lock);
	r = -sw->sync_errno;
	pthread_mutex_unlock(&sw->lock);
	return r;
}

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

int store_dir_is_local(const char *dir, struct slotsync_error *err)
{
	/* a URL's scheme (RFC 3986): a letter, then letters, digits, + - . */
	size_t n = strspn(dir, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

	if (n == 0 || !((dir[0] | 0x20) >= 'a' && (dir[0] | 0x20) <= 'z') || strncmp(dir + n, "://", 3) != 0)
		return 0;
	return slotsync_error_set(err, -EINVAL,
				  "store %s is a URL, not a folder: slotsync-gen makes a store in a local folder, and "
				  "`slotsync-gen publish --store DIR --to DEST` uploads it (DEST a folder or "
				  "s3://BUCKET/PREFIX); a local folder of that name is ./%s",
				  dir, dir);
}

int store_writer_open(const char *dir, struct store_writer **out, struct slotsync_error *err)
{
	struct store_writer *sw;
	int fd = store_dir_is_local(dir, err);

	if (fd < 0)
		return fd;
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
	pthread_mutex_init(&sw->lock, NULL);
	pthread_cond_init(&sw->wake, NULL);
	pthread_cond_init(&sw->synced, NULL);
	int pr = pthread_create(&sw->flusher, NULL, flusher_main, sw);
	if (pr != 0) {
		store_writer_free(sw);
		return slotsync_error_set_errno(err, -pr, "cannot start the store's flusher thread");
	}
	sw->flusher_running = 1;
	*out = sw;
	return 0;
}

void store_writer_free(struct store_writer *sw)
{
	if (!sw)
		return;
	if (sw->flusher_running) {
		pthread_mutex_lock(&sw->lock);
		sw->stop = 1;
		pthread_cond_signal(&sw->wake);
		pthread_mutex_unlock(&sw->lock);
		pthread_join(sw->flusher, NULL);
	}
	pthread_mutex_destroy(&sw->lock);
	pthread_cond_destroy(&sw->wake);
	pthread_cond_destroy(&sw->synced);
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

/* Renames the pending files whose syncfs ended, oldest first; with wait, first
 * waits for every pending file's.  On failure every pending temp file is
 * removed. */
static int batch_rename(struct store_batch *b, int wait, struct slotsync_error *err)
{
	struct store_writer *sw = b->sw;
	uint64_t ended;
	int r = 0;

	if (b->head == b->n)
		return 0;
	if (wait) {
		r = wait_synced(sw, b->files[b->n - 1].need);
		if (r < 0)
			slotsync_error_set_errno(err, r, "cannot sync store %s", sw->path);
	}
	pthread_mutex_lock(&sw->lock);
	ended = sw->ended;
	if (r == 0 && sw->sync_errno)
		r = slotsync_error_set_errno(err, -sw->sync_errno, "cannot sync store %s", sw->path);
	pthread_mutex_unlock(&sw->lock);
	for (; b->head < b->n && (r < 0 || b->files[b->head].need <= ended); b->head++) {
		struct pending *p = &b->files[b->head];
		if (r == 0 && renameat(sw->dirfd, p->tmp, sw->dirfd, p->final) < 0)
			r = slotsync_error_set_errno(err, -errno, "cannot rename %s in store %s", p->tmp, sw->path);
		if (r < 0)
			unlinkat(sw->dirfd, p->tmp, 0);
	}
	if (b->head == b->n)
		b->head = b->n = 0;
	return r;
}

int store_batch_commit(struct store_batch *b, struct slotsync_error *err)
{
	return batch_rename(b, 1, err);
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
	struct pending *p;
	char final[SLOTSYNC_CHUNK_RELPATH_BYTES];
	int fd, r;

	if (b->n == BATCH_MAX_FILES) {
		/* full: make room, waiting for the oldest files' syncfs if need be */
		if (b->head == 0)
			(void)wait_synced(sw, b->files[0].need); /* a failure: batch_rename says */
		r = batch_rename(b, 0, err);
		if (r < 0)
			return r;
		memmove(b->files, b->files + b->head, (b->n - b->head) * sizeof(b->files[0]));
		b->n -= b->head;
		b->head = 0;
	}
	p = &b->files[b->n];
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
	/* durable after the next syncfs to begin */
	pthread_mutex_lock(&sw->lock);
	p->need = sw->began + 1;
	sw->unsynced += len;
	if (sw->unsynced >= FLUSH_BYTES)
		pthread_cond_signal(&sw->wake);
	pthread_mutex_unlock(&sw->lock);
	b->n++;
	return batch_rename(b, 0, err);
}
