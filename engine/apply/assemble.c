/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Assembling an image onto a target: see include/slotsync/assemble.h.
 *
 * Steps: read index -> open target and journal -> seeds -> plan -> copy seed
 * chunks -> delta objects -> fetch the rest -> verify.  This file holds the
 * driver (slotsync_assemble), the seed copy, the chunk fetch and the final
 * read-back; the writes to the target and the commits that make them durable
 * are in assemble_write.c, delta objects in assemble_delta.c, and what they
 * share in assemble_internal.h.
 */
#include "slotsync/assemble.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xxhash.h>
#include <time.h>
#include <unistd.h>

#include "assemble_internal.h"
#include "io.h"
#include "slotsync/index.h"
#include "slotsync/journal.h"
#include "slotsync/log.h"
#include "slotsync/plan.h"
#include "slotsync/store.h"
#include "clock.h"
#include "parallel.h"

void assemble_report_progress(struct asm_ctx *a, int force)
{
	double t = clock_now_s();

	if (!a->opt->progress || (!force && t - a->last_progress < 0.2))
		return;
	a->last_progress = t;
	a->st->seconds = t - a->t0;
	a->opt->progress(a->opt->progress_userdata, a->st);
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
				w->r = assemble_target_write(a, w->buf, size, slotsync_index_chunk_start(a->idx, pos), &w->err);
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
		parallel_each(seed_work, w, sizeof(w[0]), n_workers);
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
			r = assemble_bg_commit_start(a, err);
		assemble_report_progress(a, 0);
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

/* A compressed chunk in hand (fetched, or embedded in the bundle): decoded,
 * checked against its id and written to every place of group g.  -EAGAIN when
 * it is not the chunk (a damaged copy); err says why. */
static int take_frame(struct asm_ctx *a, size_t g, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	uint32_t pos = a->plan->positions[a->plan->groups[g].first];
	size_t size = (size_t)slotsync_index_chunk_size(a->idx, pos);
	int r;

	r = slotsync_chunk_decode(a->dec, data, len, a->buf, size, a->idx->digest, a->idx->chunks[pos].id, err);
	if (r < 0) {
		slotsync_error_prefix(err, "chunk %zu (offset %" PRIu64 ")", (size_t)pos,
				      slotsync_index_chunk_start(a->idx, pos));
		return -EAGAIN;
	}
	r = assemble_write_group(a, g, a->buf, err);
	if (r < 0)
		return r;
	a->plan->groups[g].source = SLOTSYNC_SOURCE_DONE; /* written: a later fetch pass skips it */
	a->unrecorded_fetched_bytes += len;
	/* A kill loses what was fetched but is in no record: note the places
	 * written often enough that this stays a fraction of concurrency x max
	 * chunk size.  Such a note costs one write(); making the batch durable
	 * (fdatasync) waits for SEED_BATCH_BYTES, so a fast link is not held to
	 * the disk's flush latency. */
	if (a->unrecorded_fetched_bytes >= a->fetched_record_bytes) {
		r = assemble_record_written(a, err);
		if (r < 0)
			return r;
	}
	if (a->pending_bytes >= SEED_BATCH_BYTES) {
		r = assemble_bg_commit_start(a, err);
		if (r < 0)
			return r;
	}
	assemble_report_progress(a, 0);
	return 0;
}

static int fetch_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;
	int r;

	a->st->bytes_fetched += len; /* a running figure; the fetcher's own total (retries too) replaces it at the end */
	/* a damaged copy (-EAGAIN): fetch it again, give up after the attempts */
	r = take_frame(a, a->job_group[job], data, len, err);
	if (r == 0)
		a->st->chunks_fetched++;
	return r;
}

/* Chunks embedded in the bundle (slotsync-gen bundle --embed), before the
 * network: each frame is read from the bundle file, decoded and checked like a
 * fetched one.  One that is not there, cannot be read or fails its check is
 * left to the network (and reported). */
static int copy_from_embedded(struct asm_ctx *a, struct slotsync_error *err)
{
	struct slotsync_embedded *emb = NULL;
	size_t cap = slotsync_chunk_compressed_bound((size_t)a->idx->chunk_size_max), len;
	uint8_t *frame = NULL;
	int r;

	if (!a->opt->embedded_bundle)
		return 0;
	r = slotsync_embedded_open(a->opt->embedded_bundle, &emb, err);
	if (r < 0 || !emb)
		return r;
	frame = malloc(cap);
	if (!frame) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t g = 0; g < a->plan->n_groups && r == 0; g++) {
		uint32_t pos = a->plan->positions[a->plan->groups[g].first];
		struct slotsync_error e = { 0 };
		char hex[SLOTSYNC_DIGEST_BYTES * 2 + 1];

		if (a->plan->groups[g].source != SLOTSYNC_SOURCE_FETCH)
			continue;
		r = slotsync_embedded_read(emb, a->idx->chunks[pos].id, frame, cap, &len, &e);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r == 0)
			r = take_frame(a, g, frame, len, &e);
		if (r == 0) {
			/* no longer to fetch: delta objects are not looked for it */
			a->plan->chunks_fetch--;
			a->plan->bytes_fetch -= slotsync_index_chunk_size(a->idx, pos);
			a->st->chunks_from_bundle++;
			a->st->bytes_from_bundle += len;
			continue;
		}
		if (r != -EAGAIN && r != -EFBIG && r != -EIO) {
			*err = e;
			break;
		}
		slotsync_digest_to_hex(a->idx->chunks[pos].id, hex);
		slotsync_log_warning("embedded chunk %s of bundle %s refused: %s; it must come from the store", hex,
				     a->opt->embedded_bundle, slotsync_error_message(&e));
		a->st->bundle_chunks_rejected++;
		r = 0;
	}
	if (r == 0)
		r = assemble_commit_all(a, err);
out:
	free(frame);
	slotsync_embedded_free(emb);
	return r;
}

int assemble_fetch_tick(void *userdata, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;

	assemble_report_progress(a, 0);
	/* once a second at least: start a commit if none runs */
	if (a->bg.running || a->n_pending == 0)
		return 0;
	return assemble_bg_commit_start(a, err);
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

void assemble_add_fetch_stats(struct asm_ctx *a, const struct slotsync_fetch_stats *fs)
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
	if (!a->opt->fetch.base_url && !slotsync_mirrors_count(a->opt->fetch.mirrors))
		return slotsync_error_set(err, -ENOENT, "%zu chunks are in no seed%s and no store URL was given to fetch them from",
					  n, a->opt->embedded_bundle ? " nor in the bundle" : "");
	free(a->job_group);
	a->job_group = malloc(n * sizeof(*a->job_group));
	if (!a->job_group)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = 0;
	for (size_t g = 0; g < a->plan->n_groups; g++)
		if (a->plan->groups[g].source == SLOTSYNC_SOURCE_FETCH)
			a->job_group[n++] = (uint32_t)g;
	r = slotsync_fetch_run(&a->opt->fetch, n, slotsync_chunk_compressed_bound((size_t)a->idx->chunk_size_max),
			       fetch_describe, fetch_done, assemble_fetch_tick, a, &fs, err);
	a->st->bytes_fetched = before + fs.bytes_received;
	assemble_add_fetch_stats(a, &fs);
	if (r == 0)
		r = assemble_commit_all(a, err);
	return r;
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
	size_t n = a->idx->n_chunks, n_bad = 0;
	uint32_t first = 0;
	int r = 0;

	(void)posix_fadvise(a->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	memset(parts, 0, sizeof(parts));
	for (int t = 0; t < VERIFY_THREADS; t++) {
		parts[t].a = a;
		parts[t].from = n * (size_t)t / VERIFY_THREADS;
		parts[t].to = n * (size_t)(t + 1) / VERIFY_THREADS;
	}
	parallel_each(verify_range, parts, sizeof(parts[0]), VERIFY_THREADS);
	for (int t = 0; t < VERIFY_THREADS; t++) {
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
		if (a->n_pending == PENDING_MAX && (r = assemble_commit(a, err)) < 0)
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
	a.t0 = clock_now_s();
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
		r = slotsync_plan_add_seed(a.plan, opt->seeds[i], opt->seed_indexes ? opt->seed_indexes[i] : NULL, err);
		if (r < 0)
			goto out;
	}
	slotsync_plan_seeds_done(a.plan);
	/* A kill loses what was fetched but is in no record: the fetch phases note
	 * the places written once this much came in since the last note. */
	a.fetched_record_bytes = (uint64_t)(opt->fetch.concurrency > 0 ? opt->fetch.concurrency
									: SLOTSYNC_FETCH_CONCURRENCY_DEFAULT) *
				 a.idx->chunk_size_max / 8;
	/* chunks the bundle carries first: the store (and its delta objects) is
	 * asked only for the rest, and not at all when nothing is left */
	if (!opt->dry_run) {
		r = copy_from_embedded(&a, err);
		if (r < 0)
			goto out;
	}
	r = assemble_find_delta(&a, err);
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

	r = copy_from_seeds(&a, err);
	if (r == 0)
		r = assemble_fetch_deltas(&a, 0, err);
	if (r < 0)
		goto out;
	/* seeds that failed their check moved chunks to the network */
	stats->chunks_to_fetch = a.plan->chunks_fetch;
	stats->bytes_to_fetch = a.plan->bytes_fetch;
	r = fetch_missing(&a, err);
	/* objects that read the new image, now that all else is written; the
	 * chunks of any that fail are fetched after them */
	if (r == 0)
		r = assemble_fetch_deltas(&a, 1, err);
	if (r == 0)
		r = fetch_missing(&a, err);
	if (r == 0)
		r = assemble_commit_all(&a, err);
	if (r < 0)
		goto out;
	r = verify_target(&a, err);
out:
	/* bytes over the wire: chunks, delta objects and their index */
	stats->bytes_fetched += stats->delta_bytes_fetched;
	if (a.journal) {
		/* keep what is already on disk: a later run need not redo it */
		struct slotsync_error ignored = { 0 };
		assemble_bg_commit_wait(&a.bg, NULL);
		if (r < 0 && a.n_pending)
			assemble_commit(&a, &ignored);
	}
	free(a.bg.positions);
	assemble_report_progress(&a, 1);
	stats->seconds = clock_now_s() - a.t0;
	if (a.fd >= 0)
		close(a.fd);
	assemble_lost_forget(&a);
	free(a.lost);
	slotsync_journal_free(a.journal);
	slotsync_plan_free(a.plan);
	slotsync_chunk_decoder_free(a.dec);
	slotsync_index_free(a.idx);
	free(a.buf);
	free(a.done);
	free(a.pending);
	free(a.job_group);
	assemble_delta_free(&a);
	return r;
}
