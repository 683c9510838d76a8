/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The assembler's writes to the target and its durability points (the rest of
 * the assembler: assemble_internal.h).  Every write goes through
 * assemble_target_write() and every durability point through assemble_commit()
 * or a background commit, which is where the journal's promise is kept: target
 * fdatasync first, journal record second.  Written places wait in a batch
 * (a->pending) until a commit makes them durable.
 *
 * Test hook: with SLOTSYNC_TEST_CRASH_AFTER_WRITES=N in the environment, the
 * N-th target write simulates a power cut: every write since the last
 * fdatasync is undone (its old bytes put back), then the process exits at once.
 * That is what a crash that loses the page cache leaves on disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "assemble_internal.h"
#include "io.h"

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

void assemble_lost_forget(struct asm_ctx *a)
{
	for (size_t i = 0; i < a->n_lost; i++)
		free(a->lost[i].old);
	a->n_lost = 0;
}

int assemble_target_write(struct asm_ctx *a, const void *buf, size_t len, uint64_t offset, struct slotsync_error *err)
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
int assemble_commit(struct asm_ctx *a, struct slotsync_error *err)
{
	int r;

	if (a->n_pending == 0)
		return 0;
	/* The target's data first: a journal record must never name a chunk that
	 * could still be lost. */
	if (fdatasync(a->fd) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot fdatasync %s", a->target);
	assemble_lost_forget(a);
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
int assemble_bg_commit_wait(struct bg_commit *c, struct slotsync_error *err)
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
int assemble_bg_commit_start(struct asm_ctx *a, struct slotsync_error *err)
{
	struct bg_commit *bg = &a->bg;
	uint32_t *tmp;
	int r;

	if (a->crash_after > 0)
		return assemble_commit(a, err); /* the test hook wants commits in line */
	r = assemble_bg_commit_wait(bg, err);
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
int assemble_commit_all(struct asm_ctx *a, struct slotsync_error *err)
{
	int r = assemble_bg_commit_wait(&a->bg, err);

	return r < 0 ? r : assemble_commit(a, err);
}

/* Writes buf (the chunk of group g) to every place of g not yet durable. */
int assemble_write_group(struct asm_ctx *a, size_t g, const uint8_t *buf, struct slotsync_error *err)
{
	const struct slotsync_plan_group *grp = &a->plan->groups[g];

	for (uint32_t k = 0; k < grp->count; k++) {
		uint32_t pos = a->plan->positions[grp->first + k];
		uint64_t size = slotsync_index_chunk_size(a->idx, pos);
		int r;

		if (a->done[pos])
			continue;
		if (a->n_pending == PENDING_MAX) {
			r = assemble_bg_commit_start(a, err);
			if (r < 0)
				return r;
		}
		r = assemble_target_write(a, buf, size, slotsync_index_chunk_start(a->idx, pos), err);
		if (r < 0)
			return r;
		a->pending[a->n_pending++] = pos;
		a->pending_bytes += size;
	}
	return 0;
}

/* Appends a WRITTEN record for the pending places not yet in one. */
int assemble_record_written(struct asm_ctx *a, struct slotsync_error *err)
{
	int r;

	r = slotsync_journal_append_written(a->journal, a->pending + a->n_recorded, a->n_pending - a->n_recorded, err);
	if (r == 0) {
		a->n_recorded = a->n_pending;
		a->unrecorded_fetched_bytes = 0;
	}
	return r;
}
