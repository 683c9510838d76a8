/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen make: image -> chunks -> store + index, on all cores.
 *
 * The pipeline: the main thread reads the image sequentially straight into the
 * buffer of a slot of a ring and cuts it into chunks there (the chunker is
 * sequential by nature and fast); only the unfinished chunk at the end of a
 * slot is copied, to the head of the next one.  Worker threads take slots in
 * order, hash each chunk, and when the store lacks it compress it with zstd and
 * write it.  The main thread collects finished slots strictly in order and
 * appends them to the index, so the index is the same whatever the number of
 * threads.  The ring bounds memory: at most RING_SLOTS slots of SLOT_BYTES plus
 * one chunk each are in flight.
 *
 * The index is written only after every chunk it names is durable in the store
 * (batches committed, then one syncfs), so a store and index that a crash leaves
 * behind are never an index naming chunks that are not there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "io.h"
#include "gen.h"
#include "progress.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "store_write.h"
#include "clock.h"

#define RING_SLOTS 8
#define SLOT_BYTES (1u << 18)   /* read into a slot at a time, besides the carried chunk */
#define SLOT_CHUNKS_MAX 1024
#define MAX_THREADS 64

/* A slot carries a run of consecutive chunks, so that threads meet once per
 * slot (SLOT_BYTES of image) rather than once per chunk. */
struct slot {
	uint8_t *data;               /* SLOT_BYTES + max chunk */
	size_t n;                    /* chunks, from the start of data */
	uint32_t sizes[SLOT_CHUNKS_MAX];
	uint8_t ids[SLOT_CHUNKS_MAX][SLOTSYNC_DIGEST_BYTES];
	int done;
};

struct make_ctx {
	const struct gen_make_options *opt;
	struct store_writer *sw;
	struct slotsync_index *idx;
	struct slot slots[RING_SLOTS];

	pthread_mutex_t lock;
	pthread_cond_t work;    /* a slot became ready, or the end */
	pthread_cond_t done;    /* a slot was finished */
	uint64_t produced, taken, collected;
	int finished;
	int failed;
	struct slotsync_error err;  /* first worker error, under lock */

	/* ids written by this run, so that a chunk repeated in the image is written
	 * and counted once (under lock) */
	uint8_t (*written)[SLOTSYNC_DIGEST_BYTES];
	size_t written_cap, written_count;

	struct gen_make_stats *stats;
	struct progress progress;
	uint64_t image_size;
};

/* Returns 1 if id was not yet written by this run (and records it). Under lock. */
static int written_claim(struct make_ctx *m, const uint8_t *id)
{
	size_t i;
	uint64_t h;

	if ((m->written_count + 1) * 2 > m->written_cap) {
		size_t cap = m->written_cap ? m->written_cap * 2 : 8192;
		uint8_t(*t)[SLOTSYNC_DIGEST_BYTES] = calloc(cap, SLOTSYNC_DIGEST_BYTES);
		static const uint8_t zero[SLOTSYNC_DIGEST_BYTES];
		if (!t)
			return -ENOMEM;
		for (size_t j = 0; j < m->written_cap; j++) {
			if (memcmp(m->written[j], zero, SLOTSYNC_DIGEST_BYTES) == 0)
				continue;
			memcpy(&h, m->written[j], sizeof(h));
			for (i = h & (cap - 1); memcmp(t[i], zero, SLOTSYNC_DIGEST_BYTES) != 0; i = (i + 1) & (cap - 1))
				;
			memcpy(t[i], m->written[j], SLOTSYNC_DIGEST_BYTES);
		}
		free(m->written);
		m->written = t;
		m->written_cap = cap;
	}
	memcpy(&h, id, sizeof(h));
	for (i = h & (m->written_cap - 1);; i = (i + 1) & (m->written_cap - 1)) {
		static const uint8_t zero[SLOTSYNC_DIGEST_BYTES];
		if (memcmp(m->written[i], id, SLOTSYNC_DIGEST_BYTES) == 0)
			return 0;
		if (memcmp(m->written[i], zero, SLOTSYNC_DIGEST_BYTES) == 0)
			break;
	}
	memcpy(m->written[i], id, SLOTSYNC_DIGEST_BYTES);
	m->written_count++;
	return 1;
}

static void fail_locked(struct make_ctx *m, const struct slotsync_error *e)
{
	if (!m->failed) {
		m->failed = 1;
		m->err = *e;
	}
	pthread_cond_broadcast(&m->work);
	pthread_cond_broadcast(&m->done);
}

static void *make_worker(void *arg)
{
	struct make_ctx *m = arg;
	struct slotsync_error err = { 0 };
	struct store_batch *batch = NULL;
	struct slot *done = NULL;    /* finished, not yet handed back */
	ZSTD_CCtx *cctx = NULL;
	uint8_t *cbuf = NULL;
	size_t ccap = ZSTD_compressBound(m->opt->params.max_bytes);
	uint64_t new_chunks = 0, stored = 0;
	int r = 0;

	if (m->sw) {
		batch = store_batch_new(m->sw);
		cctx = ZSTD_createCCtx();
		cbuf = malloc(ccap);
		if (!batch || !cctx || !cbuf) {
			r = slotsync_error_set(&err, -ENOMEM, "out of memory");
			goto out;
		}
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, m->opt->level);
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	}
	for (;;) {
		uint8_t claim[SLOT_CHUNKS_MAX];
		struct slot *s;
		uint64_t seq;

		/* one lock to hand back the slot done and take the next */
		pthread_mutex_lock(&m->lock);
		if (done) {
			done->done = 1;
			pthread_cond_broadcast(&m->done);
			done = NULL;
		}
		while (m->taken == m->produced && !m->finished && !m->failed)
			pthread_cond_wait(&m->work, &m->lock);
		if (m->failed || m->taken == m->produced) {
			pthread_mutex_unlock(&m->lock);
			break;
		}
		seq = m->taken++;
		pthread_mutex_unlock(&m->lock);

		/* the ids, and which of them the store lacks, outside the lock */
		s = &m->slots[seq % RING_SLOTS];
		for (size_t k = 0, off = 0; k < s->n; off += s->sizes[k], k++) {
			r = slotsync_digest(m->opt->digest, s->data + off, s->sizes[k], s->ids[k]);
			if (r < 0) {
				slotsync_error_set(&err, r, "cannot compute a chunk digest");
				goto out;
			}
			claim[k] = m->sw && !store_writer_has(m->sw, s->ids[k]);
		}
		/* which of those this thread writes: one lock for the slot */
		if (m->sw) {
			pthread_mutex_lock(&m->lock);
			for (size_t k = 0; k < s->n && r == 0; k++)
				if (claim[k]) {
					r = written_claim(m, s->ids[k]);
					claim[k] = r > 0;
					r = r < 0 ? r : 0;
				}
			pthread_mutex_unlock(&m->lock);
			if (r < 0) {
				slotsync_error_set(&err, r, "out of memory");
				goto out;
			}
		}
		for (size_t k = 0, off = 0; k < s->n; off += s->sizes[k], k++) {
			size_t n;

			if (!claim[k])
				continue;
			n = ZSTD_compress2(cctx, cbuf, ccap, s->data + off, s->sizes[k]);
			if (ZSTD_isError(n)) {
				r = slotsync_error_set(&err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
				goto out;
			}
			r = store_batch_put(batch, s->ids[k], cbuf, n, &err);
			if (r < 0)
				goto out;
			new_chunks++;
			stored += n;
		}
		done = s;
	}
out:
	if (store_batch_free(batch, &err) < 0 && r == 0)
		r = -EIO;
	ZSTD_freeCCtx(cctx);
	free(cbuf);
	pthread_mutex_lock(&m->lock);
	m->stats->new_chunks += new_chunks;
	m->stats->bytes_stored += stored;
	if (r < 0)
		fail_locked(m, &err);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Appends finished slots to the index in order.  Under lock. */
static int collect_locked(struct make_ctx *m, struct slotsync_error *err)
{
	while (m->collected < m->produced && m->slots[m->collected % RING_SLOTS].done) {
		struct slot *s = &m->slots[m->collected % RING_SLOTS];
		for (size_t k = 0; k < s->n; k++) {
			int r = slotsync_index_append(m->idx, s->sizes[k], s->ids[k], err);
			if (r < 0)
				return r;
		}
		s->done = 0;
		s->n = 0;
		m->collected++;
	}
	return 0;
}

/* Hands the slot being filled to the workers. */
static void publish_slot(struct make_ctx *m)
{
	pthread_mutex_lock(&m->lock);
	m->produced++;
	pthread_cond_signal(&m->work);
	pthread_mutex_unlock(&m->lock);
}

/* Waits until the slot at `produced` is free (its previous run collected). */
static int wait_free_slot(struct make_ctx *m)
{
	struct slotsync_error err = { 0 };
	int r = 0;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (m->failed) {
			r = -ECANCELED;
			break;
		}
		r = collect_locked(m, &err);
		if (r < 0) {
			fail_locked(m, &err);
			break;
		}
		if (m->produced - m->collected < RING_SLOTS)
			break;
		pthread_cond_wait(&m->done, &m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* Reads the image into the slots and cuts it into chunks there.  A slot's
 * buffer holds [0, have): its chunks, then the unfinished chunk [start, have),
 * of which the chunker has seen [start, scanned).  The slot at `produced` is
 * free while it is being filled: no worker looks at it until `produced` moves
 * past it.  Returns -ECANCELED when a worker failed (its error is reported
 * by the caller). */
static int make_read(struct make_ctx *m, int fd, const char *image, struct slotsync_error *err)
{
	size_t cap = SLOT_BYTES + m->opt->params.max_bytes;
	size_t have = 0, start = 0, scanned = 0;
	struct slotsync_chunker *ch;
	uint64_t offset = 0;   /* of the slot's first byte in the image */
	int eof = 0, r;

	ch = slotsync_chunker_new(&m->opt->params, err);
	if (!ch)
		return -EINVAL;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = wait_free_slot(m);
	for (; r == 0;) {
		struct slot *s = &m->slots[m->produced % RING_SLOTS];
		struct slot *next;
		size_t n;

		if (!eof && have < cap) {
			ssize_t got = io_read_full(fd, s->data + have, cap - have);
			if (got < 0) {
				r = slotsync_error_set_errno(err, (int)got, "cannot read image %s", image);
				break;
			}
			eof = (size_t)got < cap - have;
			have += (size_t)got;
		}
		n = slotsync_chunker_scan(ch, s->data + scanned, have - scanned);
		if (n == SIZE_MAX && eof) {
			n = have - scanned; /* the last chunk: whatever remains */
			slotsync_chunker_reset(ch);
		}
		if (n == SIZE_MAX) {
			/* the buffer is full and ends inside a chunk; it holds more
			 * than the longest chunk, so one ended in it */
			if (s->n == 0) {
				r = slotsync_error_set(err, -EIO, "internal error: no chunk ends in %zu bytes", have);
				break;
			}
			scanned = have;
		} else if (scanned + n == start) {
			/* the end of the image, nothing left */
			if (s->n > 0)
				publish_slot(m);
			break;
		} else {
			size_t len = scanned + n - start;

			scanned += n;
			s->sizes[s->n++] = (uint32_t)len;
			m->stats->chunks++;
			m->stats->bytes_in += len;
			progress_update(&m->progress, offset + scanned);
			start = scanned;
			if (s->n < SLOT_CHUNKS_MAX && !(eof && start == have))
				continue;
		}
		/* The slot is full (or the image ends): hand it over, and carry the
		 * unfinished chunk to the head of the next one. */
		publish_slot(m);
		if (eof && start == have)
			break;
		r = wait_free_slot(m);
		if (r < 0)
			break;
		next = &m->slots[m->produced % RING_SLOTS];
		memcpy(next->data, s->data + start, have - start);
		offset += start;
		have -= start;
		scanned -= start;
		start = 0;
	}
	slotsync_chunker_free(ch);
	return r;
}

int gen_make(const char *image, const char *index_path, const struct gen_make_options *opt,
	     struct gen_make_stats *stats, struct slotsync_error *err)
{
	struct make_ctx *m;
	pthread_t threads[MAX_THREADS];
	int n_threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	int started = 0, fd = -1, r;
	double t0 = clock_now_s();

	if (n_threads < 1)
		n_threads = 1;
	if (n_threads > MAX_THREADS)
		n_threads = MAX_THREADS;
	memset(stats, 0, sizeof(*stats));
	if (slotsync_chunker_params_check(&opt->params, err) < 0)
		return -EINVAL;
	if (opt->level < ZSTD_minCLevel() || opt->level > ZSTD_maxCLevel())
		return slotsync_error_set(err, -EINVAL, "zstd level %d is outside %d..%d", opt->level, ZSTD_minCLevel(),
					  ZSTD_maxCLevel());

	m = calloc(1, sizeof(*m));
	if (!m)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	m->opt = opt;
	m->stats = stats;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->work, NULL);
	pthread_cond_init(&m->done, NULL);

	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open image %s", image);
		goto out;
	}
	r = io_fd_size(fd, &m->image_size);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "cannot read image %s", image);
		goto out;
	}
	if (opt->store) {
		r = store_writer_open(opt->store, &m->sw, err);
		if (r < 0)
			goto out;
	}
	m->idx = slotsync_index_new(opt->params.min_bytes, opt->params.avg_bytes, opt->params.max_bytes, opt->digest);
	if (!m->idx) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < RING_SLOTS; i++) {
		m->slots[i].data = malloc(SLOT_BYTES + opt->params.max_bytes);
		if (!m->slots[i].data) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	progress_start(&m->progress, opt->progress, "make", m->image_size);
	for (; started < n_threads; started++) {
		r = -pthread_create(&threads[started], NULL, make_worker, m);
		if (r < 0) {
			slotsync_error_set_errno(err, r, "cannot start a worker thread");
			break;
		}
	}
	if (r == 0) {
		r = make_read(m, fd, image, err);
		if (r == -ECANCELED)
			r = 0; /* a worker failed; its error is reported below */
	}
	pthread_mutex_lock(&m->lock);
	m->finished = 1;
	if (r < 0)
		m->failed = 1;
	pthread_cond_broadcast(&m->work);
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	progress_end(&m->progress);
	if (r < 0)
		goto out;
	if (m->failed) {
		r = slotsync_error_set(err, m->err.code ? m->err.code : -EIO, "%s", slotsync_error_message(&m->err));
		goto out;
	}
	r = collect_locked(m, err);
	if (r < 0)
		goto out;
	if (m->collected != m->produced) {
		r = slotsync_error_set(err, -EIO, "internal error: %" PRIu64 " chunks not collected",
				       m->produced - m->collected);
		goto out;
	}
	if (stats->bytes_in != m->image_size && m->image_size != 0) {
		r = slotsync_error_set(err, -EIO, "image %s changed size while being read (%" PRIu64 " of %" PRIu64 " bytes)",
				       image, stats->bytes_in, m->image_size);
		goto out;
	}
	/* Every chunk the index names must be durable before the index exists. */
	if (m->sw) {
		r = store_writer_sync(m->sw, err);
		if (r < 0)
			goto out;
	}
	r = slotsync_index_write_file(m->idx, index_path, err);
	if (r < 0)
		slotsync_error_prefix(err, "writing index");
out:
	stats->seconds = clock_now_s() - t0;
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < RING_SLOTS; i++)
		free(m->slots[i].data);
	slotsync_index_free(m->idx);
	store_writer_free(m->sw);
	free(m->written);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->work);
	pthread_cond_destroy(&m->done);
	free(m);
	return r;
}
