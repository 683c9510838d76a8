/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Assembling an image onto a target: see include/slotsync/assemble.h.
 *
 * Steps: read index -> open target and journal -> seeds -> plan -> copy seed
 * chunks -> fetch the rest -> verify.  Every write goes through target_write()
 * and every durability point through commit(), which is where the journal's
 * promise is kept: target fdatasync first, journal record second.
 *
 * Test hook: with SLOTSYNC_TEST_CRASH_AFTER_WRITES=N in the environment, the
 * N-th target write simulates a power cut: every write since the last
 * fdatasync is undone (its old bytes put back), then the process exits at once.
 * That is what a crash that loses the page cache leaves on disk.
 */
#include "slotsync/assemble.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xxhash.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/index.h"
#include "slotsync/journal.h"
#include "slotsync/log.h"
#include "slotsync/plan.h"
#include "slotsync/seed.h"
#include "slotsync/store.h"

#define SEED_BATCH_BYTES (32u << 20)
#define PENDING_MAX 65536u       /* places in one batch at most */
#define VERIFY_BLOCK (512u << 10)  /* per verifier thread */
#define VERIFY_THREADS 2
#define SEED_THREADS 2
#define ORDERED_WINDOW 4         /* objects fetched ahead of their turn at most */

struct lost_write {
	uint64_t offset;
	size_t len;
	uint8_t *old;
};

struct asm_ctx;
struct bg_commit {
	struct asm_ctx *a;
	uint32_t *positions;
	size_t n;
	int r;
	struct slotsync_error err;
	pthread_t th;
	int running;
};

struct asm_ctx {
	const struct slotsync_assemble_options *opt;
	struct bg_commit bg;        /* the commit in flight, if any */
	struct slotsync_assemble_stats *st;
	struct slotsync_index *idx;
	struct slotsync_plan *plan;
	struct slotsync_chunk_decoder *dec;
	struct slotsync_journal *journal;
	int fd;
	const char *target;
	uint8_t *done;
	uint8_t *buf;               /* one chunk */
	/* the batch not yet durable */
	uint32_t *pending;
	size_t n_pending;
	size_t n_recorded;          /* pending[0..n_recorded) are in WRITTEN records */
	uint64_t pending_bytes;
	uint64_t unrecorded_fetched_bytes, fetched_record_bytes;
	/* fetch */
	uint32_t *job_group;       /* fetch job -> plan group */
	/* delta objects */
	struct slotsync_index *base_idx;
	struct slotsync_delta_index *delta;
	struct slotsync_delta_decoder *ddec;
	uint32_t *job_object;      /* delta fetch job -> object */
	uint8_t *object_done;
	/* the ordered pass: objects whose reference reads the target */
	int ordered;
	size_t next_apply;         /* the next job to apply */
	size_t n_jobs;             /* jobs of the pass */
	struct held {
		uint8_t *data;
		size_t len;
	} *held;                   /* bodies that came before their turn */
	uint8_t *ref, *out, *chunk;
	int delta_hard;            /* a delta callback failed on the target or journal: stop */
	double t0, last_progress;
	/* test hook */
	long crash_after;
	long writes;
	struct lost_write *lost;
	size_t n_lost, cap_lost;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void simulate_power_cut(struct asm_ctx *a)
{
	for (size_t i = a->n_lost; i > 0; i--) {
		struct lost_write *w = &a->lost[i - 1];
		if (io_pwrite_full(a->fd, w->old, w->len, w->offset) < 0)
			break;
	}
	fsync(a->fd);
	_exit(137);
}

static void lost_forget(struct asm_ctx *a)
{
	for (size_t i = 0; i < a->n_lost; i++)
		free(a->lost[i].old);
	a->n_lost = 0;
}

static int target_write(struct asm_ctx *a, const void *buf, size_t len, uint64_t offset, struct slotsync_error *err)
{
	int r;

	if (a->crash_after > 0) {
		if (++a->writes >= a->crash_after)
			simulate_power_cut(a);
		if (a->n_lost == a->cap_lost) {
			size_t cap = a->cap_lost ? a->cap_lost * 2 : 64;
			struct lost_write *l = realloc(a->lost, cap * sizeof(*l));
			if (!l)
				return slotsync_error_set(err, -ENOMEM, "out of memory");
			a->lost = l;
			a->cap_lost = cap;
		}
		a->lost[a->n_lost].offset = offset;
		a->lost[a->n_lost].len = len;
		a->lost[a->n_lost].old = malloc(len);
		if (!a->lost[a->n_lost].old || io_pread_full(a->fd, a->lost[a->n_lost].old, len, offset) < 0)
			return slotsync_error_set(err, -EIO, "test hook: cannot save old bytes");
		a->n_lost++;
	}
	r = io_pwrite_full(a->fd, buf, len, offset);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot write %s at offset %" PRIu64, a->target, offset);
	a->st->bytes_written += len;
	return 0;
}

/* Makes the pending batch durable, then journals it. */
static int commit(struct asm_ctx *a, struct slotsync_error *err)
{
	int r;

	if (a->n_pending == 0)
		return 0;
	/* The target's data first: a journal record must never name a chunk that
	 * could still be lost. */
	if (fdatasync(a->fd) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot fdatasync %s", a->target);
	lost_forget(a);
	r = slotsync_journal_append_done(a->journal, a->pending, a->n_pending, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_pending; i++)
		a->done[a->pending[i]] = 1;
	a->n_pending = 0;
	a->n_recorded = 0;
	a->pending_bytes = 0;
	a->unrecorded_fetched_bytes = 0;
	return 0;
}

/* A commit on a thread of its own, so that the next batch's work overlaps the
 * disk's: fdatasync covers every write made so far (this batch's and maybe some
 * of the next), then the batch's places are journaled.  At most one runs at a
 * time; a batch that fills up while one runs waits for it, which bounds the work
 * a cut can lose to two batches. */

static void *bg_commit_run(void *arg)
{
	struct bg_commit *c = arg;

	if (fdatasync(c->a->fd) < 0) {
		c->r = slotsync_error_set_errno(&c->err, -errno, "cannot fdatasync %s", c->a->target);
		return NULL;
	}
	c->r = slotsync_journal_append_done(c->a->journal, c->positions, c->n, &c->err);
	if (c->r == 0)
		for (size_t i = 0; i < c->n; i++)
			c->a->done[c->positions[i]] = 1;
	return NULL;
}

/* Waits for the commit in flight, if any; returns its result. */
static int bg_commit_wait(struct bg_commit *c, struct slotsync_error *err)
{
	if (!c->running)
		return 0;
	pthread_join(c->th, NULL);
	c->running = 0;
	if (c->r < 0 && err)
		*err = c->err;
	return c->r;
}

/* Hands the pending batch to a background commit (after the one in flight). */
static int bg_commit_start(struct asm_ctx *a, struct slotsync_error *err)
{
	struct bg_commit *bg = &a->bg;
	uint32_t *tmp;
	int r;

	if (a->crash_after > 0)
		return commit(a, err); /* the test hook wants commits in line */
	r = bg_commit_wait(bg, err);
	if (r < 0 || a->n_pending == 0)
		return r;
	tmp = bg->positions ? bg->positions : malloc(PENDING_MAX * sizeof(*a->pending));
	if (!tmp)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	bg->a = a;
	bg->positions = a->pending;
	bg->n = a->n_pending;
	a->pending = tmp;
	a->n_pending = 0;
	a->n_recorded = 0;
	a->pending_bytes = 0;
	a->unrecorded_fetched_bytes = 0;
	if (pthread_create(&bg->th, NULL, bg_commit_run, bg) == 0) {
		bg->running = 1;
		return 0;
	}
	bg_commit_run(bg);
	if (bg->r < 0)
		*err = bg->err;
	return bg->r;
}

/* Waits for the background commit, then commits what is pending, in line. */
static int commit_all(struct asm_ctx *a, struct slotsync_error *err)
{
	int r = bg_commit_wait(&a->bg, err);

	return r < 0 ? r : commit(a, err);
}

static void report_progress(struct asm_ctx *a, int force)
{
	double t = now_s();

	if (!a->opt->progress || (!force && t - a->last_progress < 0.2))
		return;
	a->last_progress = t;
	a->st->seconds = t - a->t0;
	a->opt->progress(a->opt->progress_userdata, a->st);
}

/* Writes buf (the chunk of group g) to every place of g not yet durable. */
static int write_group(struct asm_ctx *a, size_t g, const uint8_t *buf, struct slotsync_error *err)
{
	const struct slotsync_plan_group *grp = &a->plan->groups[g];

	for (uint32_t k = 0; k < grp->count; k++) {
		uint32_t pos = a->plan->positions[grp->first + k];
		uint64_t size = slotsync_index_chunk_size(a->idx, pos);
		int r;

		if (a->done[pos])
			continue;
		if (a->n_pending == PENDING_MAX) {
			r = bg_commit_start(a, err);
			if (r < 0)
				return r;
		}
		r = target_write(a, buf, size, slotsync_index_chunk_start(a->idx, pos), err);
		if (r < 0)
			return r;
		a->pending[a->n_pending++] = pos;
		a->pending_bytes += size;
	}
	return 0;
}

/* Seed copies run on SEED_THREADS threads in rounds of about SEED_BATCH_BYTES:
 * each thread reads, checks and writes its share of the round's groups into its
 * own list; after the round the lists are merged and committed.  Threads share
 * nothing but the target fd (positioned writes to distinct places). */
struct seed_worker {
	struct asm_ctx *a;
	size_t *groups;          /* this round's groups for this worker */
	size_t n_groups;
	uint8_t *buf;
	uint32_t *done;          /* places written */
	size_t n_done;
	size_t *demoted;         /* groups whose seed copy failed its check */
	size_t n_demoted;
	uint64_t chunks, bytes, written;
	int r;
	struct slotsync_error err;
};

static void *seed_work(void *arg)
{
	struct seed_worker *w = arg;
	struct asm_ctx *a = w->a;

	for (size_t k = 0; k < w->n_groups && w->r == 0; k++) {
		size_t g = w->groups[k];
		const struct slotsync_plan_group *grp = &a->plan->groups[g];
		size_t size = (size_t)slotsync_index_chunk_size(a->idx, a->plan->positions[grp->first]);
		struct slotsync_error seed_err = { 0 };

		if (slotsync_plan_read_seed(a->plan, g, w->buf, &seed_err) < 0) {
			slotsync_log_warning("%s; fetching it instead", slotsync_error_message(&seed_err));
			w->demoted[w->n_demoted++] = g;
			continue;
		}
		for (uint32_t q = 0; q < grp->count; q++) {
			uint32_t pos = a->plan->positions[grp->first + q];
			if (a->done[pos])
				continue;
			if (a->crash_after > 0) {
				/* single-threaded under the test hook: every write goes through it */
				w->r = target_write(a, w->buf, size, slotsync_index_chunk_start(a->idx, pos), &w->err);
				if (w->r < 0)
					break;
			} else {
				w->r = io_pwrite_full(a->fd, w->buf, size, slotsync_index_chunk_start(a->idx, pos));
				if (w->r < 0) {
					slotsync_error_set_errno(&w->err, w->r, "cannot write %s at offset %" PRIu64,
								 a->target, slotsync_index_chunk_start(a->idx, pos));
					break;
				}
				w->written += size;
			}
			w->done[w->n_done++] = pos;
			w->chunks++;
			w->bytes += size;
		}
	}
	return NULL;
}

static int copy_from_seeds(struct asm_ctx *a, struct slotsync_error *err)
{
	/* one thread when the power-cut test hook must see every write */
	int n_workers = a->crash_after > 0 ? 1 : SEED_THREADS;
	struct seed_worker w[SEED_THREADS];
	size_t g = 0, cap = PENDING_MAX / SEED_THREADS;
	int r = 0;

	memset(w, 0, sizeof(w));
	for (int t = 0; t < n_workers; t++) {
		w[t].a = a;
		w[t].groups = malloc(cap * sizeof(*w[t].groups));
		w[t].done = malloc(cap * sizeof(*w[t].done));
		w[t].demoted = malloc(cap * sizeof(*w[t].demoted));
		w[t].buf = malloc(a->idx->chunk_size_max);
		if (!w[t].groups || !w[t].done || !w[t].demoted || !w[t].buf) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	while (r == 0) {
		uint64_t round_bytes = 0;
		size_t places = 0;
		pthread_t th[SEED_THREADS];
		int started[SEED_THREADS] = { 0 };

		/* deal the next round's groups to the workers in turn */
		for (int t = 0; t < n_workers; t++) {
			w[t].n_groups = w[t].n_done = w[t].n_demoted = 0;
			w[t].chunks = w[t].bytes = w[t].written = 0; /* per round: added to the totals after it */
		}
		for (int t = 0; g < a->plan->n_groups && round_bytes < SEED_BATCH_BYTES; g++) {
			const struct slotsync_plan_group *grp = &a->plan->groups[g];
			if (grp->source != SLOTSYNC_SOURCE_SEED)
				continue;
			if (places + grp->count > cap || w[t].n_groups == cap)
				break;
			w[t].groups[w[t].n_groups++] = g;
			places += grp->count;
			round_bytes += slotsync_index_chunk_size(a->idx, a->plan->positions[grp->first]) * grp->todo;
			t = (t + 1) % n_workers;
		}
		if (round_bytes == 0 && w[0].n_groups == 0)
			break;
		for (int t = 1; t < n_workers; t++)
			started[t] = pthread_create(&th[t], NULL, seed_work, &w[t]) == 0;
		seed_work(&w[0]);
		for (int t = 1; t < n_workers; t++) {
			if (started[t])
				pthread_join(th[t], NULL);
			else
				seed_work(&w[t]);
		}
		for (int t = 0; t < n_workers; t++) {
			if (w[t].r < 0 && r == 0) {
				r = w[t].r;
				*err = w[t].err;
			}
			for (size_t k = 0; k < w[t].n_demoted; k++) {
				a->st->seed_chunks_rejected++;
				slotsync_plan_demote_to_fetch(a->plan, w[t].demoted[k]);
			}
			memcpy(a->pending + a->n_pending, w[t].done, w[t].n_done * sizeof(*w[t].done));
			a->n_pending += w[t].n_done;
			a->pending_bytes += w[t].bytes;
			a->st->bytes_written += w[t].written;
			a->st->chunks_from_seed += w[t].chunks;
			a->st->bytes_from_seed += w[t].bytes;
		}
		if (r == 0)
			r = bg_commit_start(a, err);
		report_progress(a, 0);
	}
out:
	for (int t = 0; t < n_workers; t++) {
		free(w[t].groups);
		free(w[t].done);
		free(w[t].demoted);
		free(w[t].buf);
	}
	return r;
}

/* Appends a WRITTEN record for the pending places not yet in one. */
static int record_written(struct asm_ctx *a, struct slotsync_error *err)
{
	int r;

	r = slotsync_journal_append_written(a->journal, a->pending + a->n_recorded, a->n_pending - a->n_recorded, err);
	if (r == 0) {
		a->n_recorded = a->n_pending;
		a->unrecorded_fetched_bytes = 0;
	}
	return r;
}

static int fetch_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;
	size_t g = a->job_group[job];
	uint32_t pos = a->plan->positions[a->plan->groups[g].first];
	size_t size = (size_t)slotsync_index_chunk_size(a->idx, pos);
	int r;

	a->st->bytes_fetched += len; /* a running figure; the fetcher's own total (retries too) replaces it at the end */
	r = slotsync_chunk_decode(a->dec, data, len, a->buf, size, a->idx->digest, a->idx->chunks[pos].id, err);
	if (r < 0) {
		slotsync_error_prefix(err, "chunk %zu (offset %" PRIu64 ")", (size_t)pos,
				      slotsync_index_chunk_start(a->idx, pos));
		return -EAGAIN; /* a damaged copy: fetch it again, give up after the attempts */
	}
	r = write_group(a, g, a->buf, err);
	if (r < 0)
		return r;
	a->plan->groups[g].source = SLOTSYNC_SOURCE_DONE; /* written: a later fetch pass skips it */
	a->st->chunks_fetched++;
	a->unrecorded_fetched_bytes += len;
	/* A kill loses what was fetched but is in no record: note the places
	 * written often enough that this stays a fraction of concurrency x max
	 * chunk size.  Such a note costs one write(); making the batch durable
	 * (fdatasync) waits for SEED_BATCH_BYTES, so a fast link is not held to
	 * the disk's flush latency. */
	if (a->unrecorded_fetched_bytes >= a->fetched_record_bytes) {
		r = record_written(a, err);
		if (r < 0)
			return r;
	}
	if (a->pending_bytes >= SEED_BATCH_BYTES) {
		r = bg_commit_start(a, err);
		if (r < 0)
			return r;
	}
	report_progress(a, 0);
	return 0;
}

static int fetch_tick(void *userdata, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;

	report_progress(a, 0);
	/* once a second at least: start a commit if none runs */
	if (a->bg.running || a->n_pending == 0)
		return 0;
	return bg_commit_start(a, err);
}

static void fetch_describe(void *userdata, size_t job, char *path, size_t path_cap, size_t *max_bytes)
{
	struct asm_ctx *a = userdata;
	uint32_t pos = a->plan->positions[a->plan->groups[a->job_group[job]].first];

	if (path_cap >= SLOTSYNC_CHUNK_RELPATH_BYTES)
		slotsync_store_chunk_relpath(a->idx->chunks[pos].id, path);
	/* a compressed chunk is never larger than zstd's bound for its size */
	*max_bytes = slotsync_chunk_compressed_bound((size_t)slotsync_index_chunk_size(a->idx, pos));
}

static void add_fetch_stats(struct asm_ctx *a, const struct slotsync_fetch_stats *fs)
{
	a->st->fetch_retries += fs->retries;
	a->st->fetch_resumed += fs->resumed;
	a->st->connections += fs->connections;
	a->st->http_version = fs->http_version;
}

static int fetch_missing(struct asm_ctx *a, struct slotsync_error *err)
{
	struct slotsync_fetch_stats fs;
	size_t n = 0;
	uint64_t before = a->st->bytes_fetched;
	int r;

	for (size_t g = 0; g < a->plan->n_groups; g++)
		if (a->plan->groups[g].source == SLOTSYNC_SOURCE_FETCH)
			n++;
	if (n == 0)
		return 0;
	free(a->job_group);
	a->job_group = malloc(n * sizeof(*a->job_group));
	if (!a->job_group)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = 0;
	for (size_t g = 0; g < a->plan->n_groups; g++)
		if (a->plan->groups[g].source == SLOTSYNC_SOURCE_FETCH)
			a->job_group[n++] = (uint32_t)g;
	r = slotsync_fetch_run(&a->opt->fetch, n, slotsync_chunk_compressed_bound((size_t)a->idx->chunk_size_max),
			       fetch_describe, fetch_done, fetch_tick, a, &fs, err);
	a->st->bytes_fetched = before + fs.bytes_received;
	add_fetch_stats(a, &fs);
	if (r == 0)
		r = commit_all(a, err);
	return r;
}

/* ---- delta objects ---------------------------------------------------------- */

struct body {
	uint8_t *data;
	size_t len;
	const char *path;
};

static void one_describe(void *userdata, size_t job, char *path, size_t path_cap, size_t *max_bytes)
{
	struct body *b = userdata;

	(void)job;
	snprintf(path, path_cap, "%s", b->path);
	*max_bytes = SLOTSYNC_DELTA_INDEX_MAX;
}

static int one_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct body *b = userdata;

	(void)job;
	b->data = malloc(len ? len : 1);
	if (!b->data)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b->data, data, len);
	b->len = len;
	return 0;
}

/* Finds and loads the delta index for the first seed that names its index:
 * from opt->delta_index_path, or from the store.  Not finding one, or finding
 * one that does not fit, is not an error: the chunks are fetched as chunks. */
static int find_delta(struct asm_ctx *a, struct slotsync_error *err)
{
	const struct slotsync_assemble_options *opt = a->opt;
	uint8_t base_digest[SLOTSYNC_DIGEST_BYTES], new_digest[SLOTSYNC_DIGEST_BYTES], got[SLOTSYNC_DIGEST_BYTES];
	struct slotsync_error e = { 0 };
	struct body b = { 0 };
	char rel[200];
	size_t seed = SIZE_MAX;
	const uint8_t *want = NULL;
	int r = 0;

	if (opt->no_delta || a->plan->chunks_fetch == 0)
		return 0;
	for (size_t i = 0; i < opt->n_seeds && seed == SIZE_MAX; i++) {
		char *image = NULL, *index = NULL;
		if (slotsync_seed_spec_parse(opt->seeds[i], &image, &index, &e) == 0 && index) {
			r = slotsync_index_read_file(index, &a->base_idx, &e);
			if (r == 0)
				seed = i;
		}
		free(image);
		free(index);
		slotsync_error_clear(&e);
	}
	if (seed == SIZE_MAX)
		return 0;
	if (slotsync_index_digest(a->base_idx, base_digest, err) < 0 || slotsync_index_digest(a->idx, new_digest, err) < 0)
		return -ENOMEM;
	slotsync_delta_index_path(base_digest, new_digest, rel, sizeof(rel));
	if (opt->signed_deltas) {
		for (size_t i = 0; i < opt->n_deltas && !want; i++)
			if (!memcmp(opt->deltas[i].base, base_digest, SLOTSYNC_DIGEST_BYTES))
				want = opt->deltas[i].sha256;
		if (!want) {
			slotsync_log_info("the release has no delta objects for this base: chunks only");
			return 0;
		}
	}
	if (opt->delta_index_path) {
		r = io_read_file(opt->delta_index_path, SLOTSYNC_DELTA_INDEX_MAX, &b.data, &b.len, &e);
	} else if (opt->fetch.base_url) {
		struct slotsync_fetch_stats fs;
		b.path = rel;
		r = slotsync_fetch_run(&opt->fetch, 1, SLOTSYNC_DELTA_INDEX_MAX, one_describe, one_done, NULL, &b, &fs, &e);
		a->st->delta_bytes_fetched += fs.bytes_received;
		if (r == -ENOENT) {
			slotsync_log_info("no delta objects for this base in the store: chunks only");
			return 0;
		}
	} else {
		return 0;
	}
	if (r == 0 && want &&
	    (slotsync_digest(SLOTSYNC_DIGEST_SHA256, b.data, b.len, got) < 0 ||
	     memcmp(got, want, SLOTSYNC_DIGEST_BYTES) != 0))
		r = slotsync_error_set(&e, -EBADMSG, "its SHA-256 is not the one the signed bundle names");
	if (r == 0)
		r = slotsync_delta_index_load(b.data, b.len, &a->delta, &e);
	if (r == 0)
		r = slotsync_delta_index_check(a->delta, a->base_idx, base_digest, a->idx, new_digest, &e);
	free(b.data);
	if (r == 0)
		r = slotsync_plan_add_delta(a->plan, a->delta, a->base_idx, seed, &e);
	if (r < 0) {
		slotsync_log_warning("delta index %s not used: %s; chunks only", rel, slotsync_error_message(&e));
		slotsync_delta_index_free(a->delta);
		a->delta = NULL;
		return 0;
	}
	snprintf(a->st->delta_index, sizeof(a->st->delta_index), "%s", rel);
	return 0;
}

/* An object that cannot be used: its chunks are fetched as chunks. */
static void delta_fail(struct asm_ctx *a, size_t o, const char *why)
{
	const struct slotsync_delta_object *obj = &a->delta->objects[o];
	uint64_t n = 0;

	for (uint32_t k = 0; k < obj->count; k++) {
		size_t g = a->plan->group_of[obj->first + k];
		struct slotsync_plan_group *grp = &a->plan->groups[g];
		if (grp->source == SLOTSYNC_SOURCE_DELTA && grp->seed_offset == o) {
			slotsync_plan_demote_to_fetch(a->plan, g);
			n++;
		}
	}
	a->object_done[o] = 1;
	a->st->delta_objects_failed++;
	a->st->delta_chunks_refetched += n;
	slotsync_log_warning("delta object %zu (chunks %u to %u): %s; fetching its %" PRIu64 " chunks instead", o,
			     obj->first, obj->first + obj->count - 1, why, n);
}

static void delta_describe(void *userdata, size_t job, char *path, size_t path_cap, size_t *max_bytes)
{
	struct asm_ctx *a = userdata;
	const struct slotsync_delta_object *o = &a->delta->objects[a->job_object[job]];

	slotsync_delta_object_path(o->id, path, path_cap);
	*max_bytes = o->size;
}

/* Checks, decodes and writes object o from its downloaded body.  A fault of
 * the object falls back to its chunks (0); a fault of the target or journal
 * stops the run (< 0). */
static int apply_object(struct asm_ctx *a, size_t o, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	const struct slotsync_delta_object *obj = &a->delta->objects[o];
	uint64_t start = slotsync_index_chunk_start(a->idx, obj->first);
	size_t out_len = (size_t)(a->idx->chunks[obj->first + obj->count - 1].end - start);
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	struct slotsync_error e = { 0 };
	int64_t ref_len;
	int r;

	if (len != obj->size || slotsync_digest(SLOTSYNC_DIGEST_SHA256, data, len, id) < 0 ||
	    memcmp(id, obj->id, SLOTSYNC_DIGEST_BYTES) != 0) {
		delta_fail(a, o, "its download does not match its id");
		return 0;
	}
	ref_len = slotsync_plan_read_reference(a->plan, o, a->fd, a->target, a->ref, a->chunk, &e);
	if (ref_len < 0) {
		delta_fail(a, o, slotsync_error_message(&e));
		return 0;
	}
	if (slotsync_delta_decode(a->ddec, obj->codec, data, len, a->ref, (size_t)ref_len, a->out, out_len, &e) < 0) {
		delta_fail(a, o, slotsync_error_message(&e));
		return 0;
	}
	/* every chunk it rebuilt must be the one the index names */
	for (uint32_t k = 0; k < obj->count; k++) {
		uint32_t pos = obj->first + k;
		uint64_t at = slotsync_index_chunk_start(a->idx, pos) - start;
		if (slotsync_digest(a->idx->digest, a->out + at, (size_t)slotsync_index_chunk_size(a->idx, pos), id) < 0 ||
		    memcmp(id, a->idx->chunks[pos].id, SLOTSYNC_DIGEST_BYTES) != 0) {
			char why[96];
			snprintf(why, sizeof(why), "it rebuilt chunk %u wrong (SHA-256 check)", pos);
			delta_fail(a, o, why);
			return 0;
		}
	}
	for (uint32_t k = 0; k < obj->count; k++) {
		uint32_t pos = obj->first + k;
		size_t g = a->plan->group_of[pos];
		struct slotsync_plan_group *grp = &a->plan->groups[g];
		if (grp->source != SLOTSYNC_SOURCE_DELTA || grp->seed_offset != o)
			continue;
		r = write_group(a, g, a->out + (slotsync_index_chunk_start(a->idx, pos) - start), err);
		if (r < 0)
			return r;
		a->st->chunks_from_delta++;
		a->st->bytes_from_delta += slotsync_index_chunk_size(a->idx, pos);
	}
	a->object_done[o] = 1;
	a->st->delta_objects++;
	a->unrecorded_fetched_bytes += len;
	r = 0;
	if (a->unrecorded_fetched_bytes >= a->fetched_record_bytes)
		r = record_written(a, err);
	if (r == 0 && a->pending_bytes >= SEED_BATCH_BYTES)
		r = bg_commit_start(a, err);
	if (r < 0)
		return r;
	report_progress(a, 0);
	return 0;
}

static int delta_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;
	int r;

	a->st->delta_bytes_fetched += len;
	if (a->ordered && job != a->next_apply) {
		/* its reference may need an object before it: keep it for its turn
		 * (the fetcher's window bounds how many wait) */
		uint8_t *copy = malloc(len ? len : 1);
		if (!copy) {
			a->delta_hard = 1;
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		}
		memcpy(copy, data, len);
		a->held[job].data = copy;
		a->held[job].len = len;
		return 0;
	}
	r = apply_object(a, a->job_object[job], data, len, err);
	if (a->ordered) {
		a->next_apply++;
		while (r == 0 && a->next_apply < a->n_jobs && a->held[a->next_apply].data) {
			struct held h = a->held[a->next_apply];
			a->held[a->next_apply].data = NULL;
			r = apply_object(a, a->job_object[a->next_apply], h.data, h.len, err);
			free(h.data);
			a->next_apply++;
		}
	}
	if (r < 0)
		a->delta_hard = 1;
	return r;
}

/* Drops the bodies kept for their turn (those a failed run never applied). */
static void held_free(struct asm_ctx *a)
{
	if (!a->held)
		return;
	for (size_t j = 0; j < a->n_jobs; j++)
		free(a->held[j].data);
	free(a->held);
	a->held = NULL;
}

/* The largest chunk of the base and new indexes. */
static size_t chunk_max(const struct asm_ctx *a)
{
	return (size_t)(a->base_idx->chunk_size_max > a->idx->chunk_size_max ? a->base_idx->chunk_size_max
									      : a->idx->chunk_size_max);
}

/* Fetches and applies the delta objects the plan uses: pass 0 those whose
 * reference lies in the base image alone, all at once; pass 1, after every
 * other source, those that read chunks of the new image before their output,
 * applied in order (each may need the ones before it).  A run that fails as a
 * whole (the network, an object the store lacks) leaves the objects not yet
 * applied to the chunk fetch that follows. */
static int fetch_deltas(struct asm_ctx *a, int pass, struct slotsync_error *err)
{
	const struct slotsync_delta_index *d = a->delta;
	struct slotsync_fetch_options fo;
	struct slotsync_fetch_stats fs;
	struct slotsync_error e = { 0 };
	size_t n = 0, max_obj = 1, max_ref = 1, max_out = 1;
	uint64_t before;
	int r;

	if (!d || a->plan->objects_delta == 0)
		return 0;
	if (!a->job_object) {
		a->job_object = malloc(d->n_objects * sizeof(*a->job_object));
		a->object_done = calloc(d->n_objects, 1);
		if (!a->job_object || !a->object_done)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t o = 0; o < d->n_objects; o++) {
		const struct slotsync_delta_object *obj = &d->objects[o];
		uint64_t rb, ob;
		if (!a->plan->object_used[o] || a->object_done[o] || slotsync_delta_object_uses_target(d, obj) != pass)
			continue;
		a->job_object[n++] = o;
		rb = slotsync_delta_ref_bytes(d, obj);
		ob = a->idx->chunks[obj->first + obj->count - 1].end - slotsync_index_chunk_start(a->idx, obj->first);
		if (obj->size > max_obj)
			max_obj = obj->size;
		if (rb > max_ref)
			max_ref = (size_t)rb;
		if (ob > max_out)
			max_out = (size_t)ob;
	}
	if (n == 0)
		return 0;
	fo = a->opt->fetch;
	a->ordered = pass;
	a->next_apply = 0;
	a->n_jobs = n;
	if (pass) {
		int streams = fo.concurrency > 0 ? fo.concurrency : SLOTSYNC_FETCH_CONCURRENCY_DEFAULT;
		fo.window = streams < ORDERED_WINDOW ? (size_t)streams : ORDERED_WINDOW;
		a->held = calloc(n, sizeof(*a->held));
		if (!a->held)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	if (!a->ddec)
		a->ddec = slotsync_delta_decoder_new();
	a->ref = malloc(max_ref);
	a->out = malloc(max_out);
	a->chunk = malloc(chunk_max(a));
	if (!a->ddec || !a->ref || !a->out || !a->chunk)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	before = a->st->delta_bytes_fetched;
	r = slotsync_fetch_run(&fo, n, max_obj, delta_describe, delta_done, fetch_tick, a, &fs, &e);
	add_fetch_stats(a, &fs);
	/* a running figure during the run; then the fetcher's own total, retries included */
	a->st->delta_bytes_fetched = before + fs.bytes_received;
	if (r < 0 && (a->delta_hard || r == -ENOMEM)) {
		*err = e;
		return r;
	}
	if (r < 0) {
		/* the network or the store failed the objects: chunks instead */
		for (size_t j = 0; j < n; j++)
			if (!a->object_done[a->job_object[j]])
				delta_fail(a, a->job_object[j], slotsync_error_message(&e));
	}
	held_free(a);
	a->ordered = 0;
	free(a->ref);
	free(a->out);
	free(a->chunk);
	a->ref = a->out = a->chunk = NULL;
	return commit_all(a, err);
}

/* One verifier: reads chunks [from, to) of the target in blocks and hashes each. */
struct verify_part {
	struct asm_ctx *a;
	size_t from, to;
	uint32_t *bad;          /* chunks that differ (malloc'd on the first) */
	size_t n_bad;
	int r;
	struct slotsync_error err;
};

static void *verify_range(void *arg)
{
	struct verify_part *vp = arg;
	const struct slotsync_index *idx = vp->a->idx;
	uint64_t blk_start = 0, blk_len = 0, image = slotsync_index_image_size(idx);
	uint8_t *blk = malloc(VERIFY_BLOCK + idx->chunk_size_max);

	if (!blk) {
		vp->r = slotsync_error_set(&vp->err, -ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = vp->from; i < vp->to; i++) {
		uint64_t start = slotsync_index_chunk_start(idx, i), size = slotsync_index_chunk_size(idx, i);
		uint8_t got[SLOTSYNC_DIGEST_BYTES];

		if (start + size > blk_start + blk_len) {
			/* read the next block, starting at this chunk */
			uint64_t want = VERIFY_BLOCK > size ? VERIFY_BLOCK : size;
			ssize_t n;
			if (want > image - start)
				want = image - start;
			n = io_pread_full(vp->a->fd, blk, want, start);
			if (n < 0) {
				vp->r = slotsync_error_set_errno(&vp->err, (int)n, "cannot read %s back", vp->a->target);
				break;
			}
			blk_start = start;
			blk_len = (uint64_t)n;
			if (blk_len < size) {
				vp->r = slotsync_error_set(&vp->err, -EIO, "%s ends at %" PRIu64 ", before the image does",
							   vp->a->target, start + blk_len);
				break;
			}
		}
		vp->r = slotsync_digest(idx->digest, blk + (start - blk_start), size, got);
		if (vp->r < 0) {
			slotsync_error_set(&vp->err, vp->r, "cannot compute a digest");
			break;
		}
		if (memcmp(got, idx->chunks[i].id, SLOTSYNC_DIGEST_BYTES) != 0) {
			if (!vp->bad && !(vp->bad = malloc((vp->to - vp->from) * sizeof(*vp->bad)))) {
				vp->r = slotsync_error_set(&vp->err, -ENOMEM, "out of memory");
				break;
			}
			vp->bad[vp->n_bad++] = (uint32_t)i;
		}
	}
	free(blk);
	return NULL;
}

/* Reads the whole target back and checks every chunk, on two threads (halves of
 * the image).  Chunks that differ are journaled as INVALID, so that the next run
 * writes them again. */
static int verify_target(struct asm_ctx *a, struct slotsync_error *err)
{
	struct verify_part parts[VERIFY_THREADS];
	pthread_t th[VERIFY_THREADS];
	int started[VERIFY_THREADS] = { 0 };
	size_t n = a->idx->n_chunks, n_bad = 0;
	uint32_t first = 0;
	int r = 0;

	(void)posix_fadvise(a->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	memset(parts, 0, sizeof(parts));
	for (int t = 0; t < VERIFY_THREADS; t++) {
		parts[t].a = a;
		parts[t].from = n * (size_t)t / VERIFY_THREADS;
		parts[t].to = n * (size_t)(t + 1) / VERIFY_THREADS;
		started[t] = t > 0 && pthread_create(&th[t], NULL, verify_range, &parts[t]) == 0;
		if (t > 0 && !started[t])
			verify_range(&parts[t]); /* no thread: do it here */
	}
	verify_range(&parts[0]);
	for (int t = 0; t < VERIFY_THREADS; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		if (parts[t].r < 0 && r == 0) {
			r = parts[t].r;
			*err = parts[t].err;
		}
		if (parts[t].n_bad && n_bad == 0)
			first = parts[t].bad[0];
		n_bad += parts[t].n_bad;
	}
	for (int t = 0; r == 0 && t < VERIFY_THREADS; t++)
		r = slotsync_journal_append_invalid(a->journal, parts[t].bad, parts[t].n_bad, err);
	if (r == 0 && n_bad)
		r = slotsync_error_set(err, -EBADMSG,
				       "%s does not match the index: %zu chunks differ, the first at offset %" PRIu64
				       " (chunk %u); they are marked to be written again on the next run",
				       a->target, n_bad, slotsync_index_chunk_start(a->idx, first), first);
	if (r == 0) {
		r = slotsync_journal_append_verified(a->journal, err);
		if (r == 0)
			a->st->verified = 1;
	}
	for (int t = 0; t < VERIFY_THREADS; t++)
		free(parts[t].bad);
	return r;
}

/* Places the journal says were written but not known durable: each is read
 * back and checked.  One that matches counts as done (the next commit makes it
 * durable and journals it DONE); one that does not is written again. */
static int recheck_written(struct asm_ctx *a, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	int r = 0;

	for (size_t i = 0; i < a->idx->n_chunks && r == 0; i++) {
		uint64_t start = slotsync_index_chunk_start(a->idx, i), size = slotsync_index_chunk_size(a->idx, i);
		uint8_t got[SLOTSYNC_DIGEST_BYTES];
		ssize_t n;

		if (a->done[i] != SLOTSYNC_JOURNAL_WRITTEN)
			continue;
		a->done[i] = SLOTSYNC_JOURNAL_TODO;
		if (!buf && !(buf = malloc(a->idx->chunk_size_max))) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		n = io_pread_full(a->fd, buf, size, start);
		if (n < 0) {
			r = slotsync_error_set_errno(err, (int)n, "cannot read %s back", a->target);
			break;
		}
		if ((uint64_t)n != size || slotsync_digest(a->idx->digest, buf, size, got) < 0 ||
		    memcmp(got, a->idx->chunks[i].id, SLOTSYNC_DIGEST_BYTES) != 0) {
			a->st->chunks_recheck_failed++;
			continue;
		}
		a->st->chunks_rechecked++;
		if (a->n_pending == PENDING_MAX && (r = commit(a, err)) < 0)
			break;
		a->pending[a->n_pending++] = (uint32_t)i;
		a->pending_bytes += size;
		a->done[i] = SLOTSYNC_JOURNAL_DURABLE;
	}
	a->n_recorded = a->n_pending;
	free(buf);
	return r;
}

/* A block device's identity for the journal.  A dm-crypt mapping's device
 * number depends on the order mappings were opened in, which changes from boot
 * to boot: it is known by the LUKS UUID of its header instead (from its dm
 * UUID, "CRYPT-LUKS2-<32 hex>-<name>", the name left out), so that a resumed
 * install finds its journal whatever the mapping's number, and a header
 * formatted again (a new UUID) never matches an old journal.  Other block
 * devices (partitions, loop devices) by their device number. */
static void block_identity(dev_t rdev, struct slotsync_journal_identity *id)
{
	char path[96], uuid[160] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm/uuid", major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (f) {
		if (!fgets(uuid, sizeof(uuid), f))
			uuid[0] = '\0';
		fclose(f);
	}
	if (!strncmp(uuid, "CRYPT-", 6) && strlen(uuid) >= 44) {
		id->target_dev = 0xd7c7u; /* "a dm-crypt mapping": no real device number */
		id->target_ino = XXH64(uuid, 44, 0);
	} else {
		id->target_dev = rdev;
		id->target_ino = 0;
	}
}

static int open_target(struct asm_ctx *a, struct slotsync_journal_identity *id, struct slotsync_error *err)
{
	uint64_t image = slotsync_index_image_size(a->idx), size;
	struct stat st;
	int r;

	a->fd = open(a->target, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (a->fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open target %s", a->target);
	if (fstat(a->fd, &st) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot stat target %s", a->target);
	r = io_fd_size(a->fd, &size);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "target %s is neither a regular file nor a block device", a->target);
	if (S_ISBLK(st.st_mode)) {
		if (size < image)
			return slotsync_error_set(err, -ENOSPC, "target %s holds %" PRIu64 " bytes, the image needs %" PRIu64,
						  a->target, size, image);
		block_identity(st.st_rdev, id);
	} else {
		if (size != image && ftruncate(a->fd, (off_t)image) < 0)
			return slotsync_error_set_errno(err, -errno, "cannot size target %s to %" PRIu64 " bytes", a->target,
							image);
		/* Reserve the blocks now: a full disk is found before the download,
		 * and writes need not allocate as they go.  (Blocks already there
		 * stay as they are; a file system without fallocate just goes on.) */
		if (fallocate(a->fd, 0, 0, (off_t)image) < 0 && errno != EOPNOTSUPP && errno != ENOSYS)
			return slotsync_error_set_errno(err, -errno, "cannot reserve %" PRIu64 " bytes for target %s", image,
							a->target);
		id->target_dev = st.st_dev;
		id->target_ino = st.st_ino;
	}
	return 0;
}

int slotsync_assemble(const struct slotsync_assemble_options *opt, struct slotsync_assemble_stats *stats,
		      struct slotsync_error *err)
{
	struct asm_ctx a = { 0 };
	struct slotsync_journal_identity id = { 0 };
	char journal_default[4096];
	const char *journal_path = opt->journal_path;
	const char *hook = getenv("SLOTSYNC_TEST_CRASH_AFTER_WRITES");
	int verified = 0, r;

	memset(stats, 0, sizeof(*stats));
	a.opt = opt;
	a.st = stats;
	a.fd = -1;
	a.target = opt->target;
	a.t0 = now_s();
	a.crash_after = hook ? atol(hook) : 0;

	r = slotsync_index_read_file(opt->index_path, &a.idx, err);
	if (r < 0)
		goto out;
	stats->chunks_total = a.idx->n_chunks;
	stats->bytes_total = slotsync_index_image_size(a.idx);
	a.dec = slotsync_chunk_decoder_new();
	a.buf = malloc(a.idx->chunk_size_max);
	a.done = calloc(a.idx->n_chunks + 1, 1);
	a.pending = malloc(PENDING_MAX * sizeof(*a.pending));
	if (!a.dec || !a.buf || !a.done || !a.pending) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}

	if (!opt->dry_run) {
		r = open_target(&a, &id, err);
		if (r < 0)
			goto out;
		if (!journal_path) {
			struct stat st;
			if (fstat(a.fd, &st) == 0 && S_ISBLK(st.st_mode)) {
				r = slotsync_error_set(err, -EINVAL, "target %s is a block device: give --journal FILE",
						       a.target);
				goto out;
			}
			snprintf(journal_default, sizeof(journal_default), "%s.journal", a.target);
			journal_path = journal_default;
		}
		r = slotsync_index_digest(a.idx, id.index_digest, err);
		if (r < 0)
			goto out;
		id.image_size = stats->bytes_total;
		id.n_chunks = a.idx->n_chunks;
		r = slotsync_journal_open(journal_path, &id, opt->reset_journal, a.done, &verified, &a.journal, err);
		if (r == 0)
			r = recheck_written(&a, err);
		if (r < 0)
			goto out;
	}

	r = slotsync_plan_build(a.idx, a.done, &a.plan, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < opt->n_seeds; i++) {
		r = slotsync_plan_add_seed(a.plan, opt->seeds[i], err);
		if (r < 0)
			goto out;
	}
	slotsync_plan_seeds_done(a.plan);
	r = find_delta(&a, err);
	if (r < 0)
		goto out;
	stats->chunks_already_done = a.plan->chunks_done;
	stats->chunks_to_fetch = a.plan->chunks_fetch;
	stats->bytes_to_fetch = a.plan->bytes_fetch;
	stats->delta_objects_planned = a.plan->objects_delta;
	stats->delta_bytes_to_fetch = a.plan->object_bytes;
	stats->delta_chunks_planned = a.plan->chunks_delta;
	stats->delta_bytes_planned = a.plan->bytes_delta;
	if (opt->dry_run)
		goto out;

	/* A kill loses what was fetched but is in no record: the fetch phases note
	 * the places written once this much came in since the last note. */
	a.fetched_record_bytes = (uint64_t)(opt->fetch.concurrency > 0 ? opt->fetch.concurrency
									: SLOTSYNC_FETCH_CONCURRENCY_DEFAULT) *
				 a.idx->chunk_size_max / 8;
	r = copy_from_seeds(&a, err);
	if (r == 0)
		r = fetch_deltas(&a, 0, err);
	if (r < 0)
		goto out;
	/* seeds that failed their check moved chunks to the network */
	stats->chunks_to_fetch = a.plan->chunks_fetch;
	stats->bytes_to_fetch = a.plan->bytes_fetch;
	r = fetch_missing(&a, err);
	/* objects that read the new image, now that all else is written; the
	 * chunks of any that fail are fetched after them */
	if (r == 0)
		r = fetch_deltas(&a, 1, err);
	if (r == 0)
		r = fetch_missing(&a, err);
	if (r == 0)
		r = commit_all(&a, err);
	if (r < 0)
		goto out;
	r = verify_target(&a, err);
out:
	/* bytes over the wire: chunks, delta objects and their index */
	stats->bytes_fetched += stats->delta_bytes_fetched;
	if (a.journal) {
		/* keep what is already on disk: a later run need not redo it */
		struct slotsync_error ignored = { 0 };
		bg_commit_wait(&a.bg, NULL);
		if (r < 0 && a.n_pending)
			commit(&a, &ignored);
	}
	free(a.bg.positions);
	report_progress(&a, 1);
	stats->seconds = now_s() - a.t0;
	if (a.fd >= 0)
		close(a.fd);
	lost_forget(&a);
	free(a.lost);
	slotsync_journal_free(a.journal);
	slotsync_plan_free(a.plan);
	slotsync_chunk_decoder_free(a.dec);
	slotsync_index_free(a.idx);
	free(a.buf);
	free(a.done);
	free(a.pending);
	free(a.job_group);
	free(a.job_object);
	free(a.object_done);
	held_free(&a);
	free(a.ref);
	free(a.out);
	free(a.chunk);
	slotsync_delta_decoder_free(a.ddec);
	slotsync_delta_index_free(a.delta);
	slotsync_index_free(a.base_idx);
	return r;
}
