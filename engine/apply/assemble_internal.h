/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the assembler's files share, and nothing else may use: the state of one
 * run (struct asm_ctx) and the calls each file offers the others.
 *
 *   assemble.c        the driver (slotsync_assemble), the seed copy, the fetch
 *                     of missing chunks, the final read-back and verification
 *   assemble_write.c  every write to the target and every durability point:
 *                     batches, commits (target first, journal second) and the
 *                     power-cut test hook
 *   assemble_delta.c  delta objects: the delta index, the objects' fetch,
 *                     decoding and checks, and the fall back to chunks
 */
#ifndef SLOTSYNC_ASSEMBLE_INTERNAL_H
#define SLOTSYNC_ASSEMBLE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "slotsync/assemble.h"
#include "slotsync/delta.h"
#include "slotsync/fetch.h"
#include "slotsync/index.h"
#include "slotsync/journal.h"
#include "slotsync/plan.h"
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

/* ---- assemble.c ---- */

/* Calls the caller's progress callback, at most every 0.2 s unless force. */
void assemble_report_progress(struct asm_ctx *a, int force);
/* The fetcher's tick: progress, and a commit of what is pending if none runs. */
int assemble_fetch_tick(void *userdata, struct slotsync_error *err);
/* Adds one fetch run's figures (retries, connections, ...) to the stats. */
void assemble_add_fetch_stats(struct asm_ctx *a, const struct slotsync_fetch_stats *fs);

/* ---- assemble_write.c ---- */

int assemble_target_write(struct asm_ctx *a, const void *buf, size_t len, uint64_t offset,
			  struct slotsync_error *err);
/* Forgets the old bytes the test hook kept for the writes since the last fdatasync. */
void assemble_lost_forget(struct asm_ctx *a);
int assemble_commit(struct asm_ctx *a, struct slotsync_error *err);
int assemble_bg_commit_wait(struct bg_commit *c, struct slotsync_error *err);
int assemble_bg_commit_start(struct asm_ctx *a, struct slotsync_error *err);
int assemble_commit_all(struct asm_ctx *a, struct slotsync_error *err);
int assemble_write_group(struct asm_ctx *a, size_t g, const uint8_t *buf, struct slotsync_error *err);
int assemble_record_written(struct asm_ctx *a, struct slotsync_error *err);

/* ---- assemble_delta.c ---- */

int assemble_find_delta(struct asm_ctx *a, struct slotsync_error *err);
int assemble_fetch_deltas(struct asm_ctx *a, int pass, struct slotsync_error *err);
/* Frees what the delta objects held in a (the delta index, the base index, buffers). */
void assemble_delta_free(struct asm_ctx *a);

#endif
