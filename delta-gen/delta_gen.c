/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen delta: delta objects for the chunks of a new release that a base
 * release lacks (slotsync/delta.h, docs/format.md).  This is the driver: it
 * maps both images, finds the new chunks the base lacks, learns what each
 * resembles (resemble.c), cuts runs of them into objects, encodes the objects
 * (encode.c, frames.c) and writes them and the delta index into the store.
 *
 * Objects: runs of consecutive missing chunks (up to run_max bytes; novel
 * chunks, which nothing in the base resembles, up to 1 MiB) become one
 * object each, so that zstd sees across chunk boundaries (new files resemble
 * each other more than anything in the base).  Objects are made on all cores;
 * the result does not depend on the number of threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "delta_internal.h"
#include "slotsync/log.h"
#include "store_write.h"
#include "clock.h"

#define NOVEL_VOTES 4                /* fewer votes: the base has nothing like the chunk */

static int cmp_job_bytes(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* First pass: a missing chunk's diagonals and its size as a plain chunk. */
#define RUN_RESEMBLES 0
#define RUN_NOVEL 1
#define RUN_GZIP 2

/* What new chunk k is, for cutting runs: like something in the base, novel,
 * or (DEFLATE) holding bytes of a gzip file the device may make again. */
static int run_kind(const struct ctx *c, size_t k)
{
	if (c->members) {
		size_t f = blocks_new_at(c, slotsync_index_chunk_start(c->new_idx, k));
		if (f < c->nsq.n_blocks && c->nsq.blocks[f].off < c->new_idx->chunks[k].end)
			return RUN_GZIP;
	}
	return c->info[k].nd == 0 || c->info[k].dg[0].votes < NOVEL_VOTES ? RUN_NOVEL : RUN_RESEMBLES;
}

static void analyse(struct worker *w, uint32_t pos)
{
	struct ctx *c = w->c;
	struct chunk_info *ci = &c->info[pos];
	uint64_t cs = slotsync_index_chunk_start(c->new_idx, pos), ce = c->new_idx->chunks[pos].end;
	size_t pl = ZSTD_compress(w->plain, ZSTD_compressBound(ce - cs), c->ni.p + cs, ce - cs, GEN_ZSTD_LEVEL_DEFAULT);

	ci->nd = (uint32_t)resemble_vote(&c->base_sp, c->ni.p, cs, ce, &w->votes, &w->votes_cap, ci->dg);
	ci->plain = (uint32_t)(ZSTD_isError(pl) ? ce - cs : pl);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct ctx *c = w->c;
	size_t i;

	if (c->phase == 0) {
		while ((i = atomic_fetch_add(&c->next, 1)) < c->n_todo)
			analyse(w, c->todo[i]);
		return NULL;
	}
	while ((i = atomic_fetch_add(&c->next, 1)) < c->n_jobs && !c->failed)
		encode_job(w, c->order[i]);
	return NULL;
}

static void run_workers(struct ctx *c, struct worker *w, int threads, int phase)
{
	pthread_t tid[64];
	int started = 0;

	c->phase = phase;
	atomic_store(&c->next, 0);
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tid[t], NULL, work, &w[t]) == 0)
			started++;
		else
			break;
	if (started == 0)
		work(&w[0]);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
}

static int map_image(const char *path, struct image *im, struct slotsync_error *err)
{
	struct stat st;

	im->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s", path);
	if (fstat(im->fd, &st) < 0 || io_fd_size(im->fd, &im->size) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot stat %s", path);
	im->p = im->size ? mmap(NULL, im->size, PROT_READ, MAP_PRIVATE, im->fd, 0) : NULL;
	if (im->size && im->p == MAP_FAILED) {
		im->p = NULL;
		return slotsync_error_set_errno(err, -errno, "cannot map %s", path);
	}
	return 0;
}

static void unmap_image(struct image *im)
{
	if (im->p)
		munmap((void *)im->p, im->size);
	if (im->fd >= 0)
		close(im->fd);
}

/* id set: open addressing on the first 8 bytes of each id */
struct idset {
	const uint8_t **slot;
	size_t mask;
};

static int idset_init(struct idset *s, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap *= 2;
	s->slot = calloc(cap, sizeof(*s->slot));
	s->mask = cap - 1;
	return s->slot ? 0 : -ENOMEM;
}

/* Adds id; returns 1 if it was there already. */
static int idset_add(struct idset *s, const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, 8);
	for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
		if (!s->slot[i]) {
			s->slot[i] = id;
			return 0;
		}
		if (!memcmp(s->slot[i], id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	}
}

static int idset_has(const struct idset *s, const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, 8);
	for (size_t i = h & s->mask; s->slot[i]; i = (i + 1) & s->mask)
		if (!memcmp(s->slot[i], id, SLOTSYNC_DIGEST_BYTES))
			return 1;
	return 0;
}

static int write_objects(struct ctx *c, struct slotsync_delta_index *d, struct slotsync_error *err)
{
	struct store_writer *sw = NULL;
	struct store_batch *b = NULL;
	uint32_t no = 0, nr = 0;
	int r = 0;

	if (c->opt->store) {
		r = store_writer_open(c->opt->store, &sw, err);
		if (r < 0)
			return r;
		b = store_batch_new(sw);
		if (!b) {
			store_writer_free(sw);
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		}
	}
	for (size_t i = 0; i < c->n_jobs && r == 0; i++) {
		struct job *j = &c->jobs[i];
		struct slotsync_delta_object *o;
		if (!j->codec)
			continue;
		o = &d->objects[no++];
		if (slotsync_digest(SLOTSYNC_DIGEST_SHA256, j->payload, j->payload_len, o->id) < 0) {
			r = slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
			break;
		}
		o->size = (uint32_t)j->payload_len;
		o->codec = j->codec;
		o->flags = j->flags;
		o->first = j->first;
		o->count = j->count;
		o->ref_first = nr;
		o->ref_count = j->n_refs;
		memcpy(&d->refs[nr], j->refs, j->n_refs * sizeof(*j->refs));
		nr += j->n_refs;
		if (b)
			r = store_batch_put_ext(b, o->id, ".sdob", j->payload, j->payload_len, err);
	}
	d->n_objects = no;
	d->n_refs = nr;
	if (b) {
		int r2 = store_batch_free(b, err);
		if (r == 0)
			r = r2;
		if (r == 0)
			r = store_writer_sync(sw, err);
		store_writer_free(sw);
	}
	return r;
}

/* The new index coded against the base's, beside the delta index: what a
 * device that has the base index downloads instead of the full index. */
static int write_index_diff(const struct gen_delta_options *opt, const struct slotsync_index *base,
			    const struct slotsync_index *ni, const uint8_t *base_digest, const uint8_t *new_digest,
			    struct gen_delta_stats *st, struct slotsync_error *err)
{
	char rel[200];
	uint8_t *diff = NULL;
	size_t len;
	int r = slotsync_index_diff_make(base, ni, &diff, &len, err);

	if (r < 0)
		return r;
	st->index_diff_bytes = len;
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, diff, len, st->index_diff_sha256);
	if (opt->store) {
		slotsync_index_diff_path(base_digest, new_digest, rel, sizeof(rel));
		r = store_write_named(opt->store, rel, diff, len, err);
		if (r == 0)
			snprintf(st->index_diff_path, sizeof(st->index_diff_path), "%s", rel);
	}
	free(diff);
	return r;
}

int gen_delta_pair(const struct gen_delta_options *opt, const char *base_index, const char *base_image,
		   struct gen_delta_stats *st, struct slotsync_error *err)
{
	struct ctx c = { .opt = opt, .bi = { .fd = -1 }, .ni = { .fd = -1 } };
	struct slotsync_index *base = NULL, *ni = NULL;
	struct slotsync_delta_index d = { 0 };
	struct idset have = { 0 }, seen = { 0 };
	uint8_t *missing = NULL, *ser = NULL;
	size_t ser_len = 0;
	int threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), r;
	struct worker w[64];
	double t0 = clock_now_s();

	memset(st, 0, sizeof(*st));
	memset(w, 0, sizeof(w));
	pthread_mutex_init(&c.lock, NULL);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	c.threads = threads;
	/* a store that cannot be written is refused before the work */
	r = opt->store ? store_dir_is_local(opt->store, err) : 0;
	if (r == 0)
		r = slotsync_index_read_file(base_index, &base, err);
	if (r == 0)
		r = slotsync_index_read_file(opt->new_index, &ni, err);
	if (r == 0)
		r = slotsync_index_digest(base, d.base_digest, err);
	if (r == 0)
		r = slotsync_index_digest(ni, d.new_digest, err);
	if (r == 0)
		r = map_image(base_image, &c.bi, err);
	if (r == 0)
		r = map_image(opt->new_image, &c.ni, err);
	if (r < 0)
		goto out;
	if (c.bi.size != slotsync_index_image_size(base)) {
		r = slotsync_error_set(err, -EINVAL, "%s is %" PRIu64 " bytes, but %s describes %" PRIu64, base_image,
				       c.bi.size, base_index, slotsync_index_image_size(base));
		goto out;
	}
	if (c.ni.size != slotsync_index_image_size(ni)) {
		r = slotsync_error_set(err, -EINVAL, "%s is %" PRIu64 " bytes, but %s describes %" PRIu64, opt->new_image,
				       c.ni.size, opt->new_index, slotsync_index_image_size(ni));
		goto out;
	}
	c.base = base;
	c.new_idx = ni;
	d.base_size = c.bi.size;
	d.new_size = c.ni.size;
	/* which new chunks the base lacks (first occurrence of each id) */
	missing = calloc(ni->n_chunks + 1, 1);
	if (!missing || idset_init(&have, base->n_chunks) < 0 || idset_init(&seen, ni->n_chunks) < 0) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < base->n_chunks; i++)
		idset_add(&have, base->chunks[i].id);
	for (size_t i = 0; i < ni->n_chunks; i++)
		if (!idset_has(&have, ni->chunks[i].id) && !idset_add(&seen, ni->chunks[i].id)) {
			missing[i] = 1;
			st->missing_chunks++;
			st->missing_bytes += slotsync_index_chunk_size(ni, i);
		}
	c.missing = missing;
	c.base_sp = (struct space){ .p = c.bi.p, .size = c.bi.size };
	r = resemble_build_anchors(&c.base_sp, err);
	/* a squashfs image's blocks (zstd ones too, but for an SSDELTA2 index);
	 * else zstd frames; else, the blocks not compressed, its gzip files */
	if (r == 0)
		r = blocks_prepare(&c, err);
	if (r == 0 && !c.blocks_on)
		r = frames_prepare(&c, err);
	if (r == 0 && !c.blocks_on && !c.n_levels)
		r = blocks_prepare_members(&c, err);
	if (r < 0)
		goto out;
	/* the machine code of the base: of its content where it was expanded */
	c.bcj = c.x_sp.size ? encode_bcj_vote(c.x_sp.p, c.x_sp.size) : encode_bcj_vote(c.bi.p, c.bi.size);
	for (int t = 0; t < threads; t++) {
		size_t big = SLOTSYNC_DELTA_OUT_MAX + 1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + SLOTSYNC_DELTA_OUT_MAX / SLOTSYNC_DELTA_BLOCK + 1024;
		w[t].c = &c;
		w[t].cc = ZSTD_createCCtx();
		w[t].dec = slotsync_delta_decoder_new();
		w[t].ref_buf = malloc(TARGET_CONTEXT + SLOTSYNC_DELTA_REF_MAX);
		w[t].ref = w[t].ref_buf ? w[t].ref_buf + TARGET_CONTEXT : NULL;
		w[t].resid = malloc(big);
		w[t].out_a = malloc(ZSTD_compressBound(big));
		w[t].out_b = malloc(ZSTD_compressBound(big));
		w[t].check = malloc(SLOTSYNC_DELTA_OUT_MAX);
		w[t].plain = malloc(ZSTD_compressBound(base->chunk_size_max > ni->chunk_size_max ? base->chunk_size_max
												     : ni->chunk_size_max));
		if (c.blocks_on) {
			size_t mc = BLOCKS_MAP_BYTES;
			w[t].bc = slotsync_delta_block_coder_new();
			w[t].bbuf = malloc((size_t)c.nsq.block_size * 2 + 65536);
			w[t].map = malloc(mc);
			w[t].map2 = malloc(mc);
			if (c.members || c.inner_on)
				w[t].bounds = malloc(SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX * sizeof(*w[t].bounds));
			if (c.members)
				w[t].mcontent = malloc(c.nsq.block_size);
			if (c.inner_on) {
				w[t].imap = malloc(12 * (size_t)SLOTSYNC_DELTA_INNER_MAX);
				w[t].ncontent = malloc(c.nsq.block_size);
				w[t].icontent = malloc(c.inner.block_max);
				w[t].ibuf = malloc(SLOTSYNC_DELTA_DEFLATE_CAP(c.inner.block_max));
			}
			if (!w[t].bc || !w[t].bbuf || !w[t].map || !w[t].map2 ||
			    ((c.members || c.inner_on) && !w[t].bounds) || (c.members && !w[t].mcontent) ||
			    (c.inner_on && (!w[t].imap || !w[t].ncontent || !w[t].icontent || !w[t].ibuf))) {
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
				threads = t + 1;
				goto workers_out;
			}
		}
		if (c.n_levels || c.blocks_on) {
			w[t].fcc = ZSTD_createCCtx();
			w[t].fdc = ZSTD_createDCtx();
			w[t].fbuf = malloc(FBUF_CAP);
			w[t].xraw = malloc(SLOTSYNC_DELTA_REF_MAX);
			w[t].xref = malloc(SLOTSYNC_DELTA_XREF_MAX);
			w[t].xout = malloc(SLOTSYNC_DELTA_XOUT_MAX);
			w[t].out_c = malloc(ZSTD_compressBound(SLOTSYNC_DELTA_RESID_RECORDS_MAX) +
					    ZSTD_compressBound(4 + 12 * (size_t)BLOCKS_MAP_MAX));
			w[t].ft = malloc(sizeof(*w[t].ft));
			if (!w[t].fcc || !w[t].fdc || !w[t].fbuf || !w[t].xraw || !w[t].xref || !w[t].xout || !w[t].out_c ||
			    !w[t].ft) {
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
				threads = t + 1;
				goto workers_out;
			}
		}
		if (!w[t].cc || !w[t].dec || !w[t].ref || !w[t].resid || !w[t].out_a || !w[t].out_b || !w[t].check ||
		    !w[t].plain) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			threads = t + 1;
			goto workers_out;
		}
	}
	/* pass 1: what each missing chunk resembles */
	c.info = calloc(ni->n_chunks + 1, sizeof(*c.info));
	c.todo = calloc(st->missing_chunks + 1, sizeof(*c.todo));
	c.jobs = calloc(st->missing_chunks + 1, sizeof(*c.jobs));
	if (!c.info || !c.todo || !c.jobs) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	for (size_t i = 0; i < ni->n_chunks; i++)
		if (missing[i])
			c.todo[c.n_todo++] = (uint32_t)i;
	run_workers(&c, w, threads, 0);
	/* runs of missing chunks: chunks like something in the base in short runs
	 * (their references are what matters), novel chunks in long ones (the run
	 * is its own context); in an image of zstd frames, where compressed bytes
	 * resemble nothing, runs of up to FRAMES_RUN_MAX whatever they resemble
	 * (not so where only the gzip files inside are compressed) */
	const int whole = c.n_levels || (c.blocks_on && !c.members);
	for (size_t i = 0; i < ni->n_chunks;) {
		size_t k = i;
		uint64_t bytes = 0;
		int kind;
		if (!missing[i]) {
			i++;
			continue;
		}
		kind = run_kind(&c, i);
		while (k < ni->n_chunks && missing[k] && k - i < RUN_CHUNKS_MAX && (whole || run_kind(&c, k) == kind) &&
		       (k == i || bytes + slotsync_index_chunk_size(ni, k) <=
					  (whole ? (uint64_t)FRAMES_RUN_MAX
					   : kind == RUN_RESEMBLES ? (uint64_t)opt->run_max
								   : (uint64_t)SLOTSYNC_DELTA_OUT_MAX)))
			bytes += slotsync_index_chunk_size(ni, k++);
		c.jobs[c.n_jobs].first = (uint32_t)i;
		c.jobs[c.n_jobs].count = (uint32_t)(k - i);
		c.jobs[c.n_jobs].bytes = bytes;
		c.n_jobs++;
		i = k;
	}
	/* pass 2: the objects, largest first */
	c.order = malloc((c.n_jobs + 1) * sizeof(*c.order));
	if (!c.order) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	for (size_t i = 0; i < c.n_jobs; i++)
		c.order[i] = &c.jobs[i];
	qsort(c.order, c.n_jobs, sizeof(*c.order), cmp_job_bytes);
	run_workers(&c, w, threads, 1);
	if (c.failed) {
		*err = c.err;
		r = -EIO;
		goto workers_out;
	}
	for (size_t i = 0; i < c.n_jobs; i++) {
		struct job *j = &c.jobs[i];
		if (j->codec) {
			st->objects++;
			st->object_bytes += j->payload_len;
			st->replaced_plain += j->plain;
			for (uint32_t k = 0; k < j->count; k++)
				st->covered_bytes += slotsync_index_chunk_size(ni, j->first + k);
			st->codec_count[j->codec]++;
			st->objects_reading_new += (uint64_t)j->reads_new;
			st->blocks_residual += (uint64_t)j->resid;
			st->records_xz += (uint64_t)((j->flags & SLOTSYNC_DELTA_OBJ_XZ) != 0);
			st->records_inner += (uint64_t)((j->flags & SLOTSYNC_DELTA_OBJ_INNER) != 0);
			d.n_refs += j->n_refs;
		} else
			st->remaining_plain += j->plain;
	}
	d.objects = calloc(st->objects + 1, sizeof(*d.objects));
	d.refs = calloc(d.n_refs + 1, sizeof(*d.refs));
	if (!d.objects || !d.refs) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto workers_out;
	}
	/* the profile the objects need (the device probes its compressor with it) */
	if (c.blocks_on) {
		d.profile = c.prof;
		if (st->records_inner)
			d.inner = c.inner;
		snprintf(st->blocks_comp, sizeof(st->blocks_comp), "%s", squashfs_comp_name(c.prof.comp));
	} else if (c.n_levels) {
		struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
		d.profile.comp = SQFS_ZSTD;
		d.profile.block_max = SLOTSYNC_DELTA_FRAME_MAX;
		for (int k = 0; k < c.n_levels; k++)
			d.profile.variants |= 1u << c.levels[k];
		r = bc ? slotsync_delta_profile_seal(bc, &d.profile, err) : slotsync_error_set(err, -ENOMEM, "out of memory");
		slotsync_delta_block_coder_free(bc);
		if (r < 0)
			goto workers_out;
	}
	r = write_objects(&c, &d, err);
	if (r == 0)
		r = slotsync_delta_index_pack(&d, &ser, &ser_len, err);
	if (r == 0) {
		st->index_bytes = ser_len;
		memcpy(st->base_digest, d.base_digest, SLOTSYNC_DIGEST_BYTES);
		slotsync_digest(SLOTSYNC_DIGEST_SHA256, ser, ser_len, st->index_sha256);
		if (opt->store) {
			char rel[200];
			slotsync_delta_index_path(d.base_digest, d.new_digest, rel, sizeof(rel));
			r = store_write_named(opt->store, rel, ser, ser_len, err);
			if (r == 0)
				snprintf(st->index_path, sizeof(st->index_path), "%s", rel);
		}
	}
	if (r == 0)
		r = write_index_diff(opt, base, ni, d.base_digest, d.new_digest, st, err);
workers_out:
	for (int t = 0; t < threads; t++) {
		ZSTD_freeCCtx(w[t].cc);
		slotsync_delta_decoder_free(w[t].dec);
		free(w[t].ref_buf);
		free(w[t].resid);
		free(w[t].out_a);
		free(w[t].out_b);
		free(w[t].check);
		free(w[t].plain);
		free(w[t].votes);
		ZSTD_freeCCtx(w[t].fcc);
		ZSTD_freeDCtx(w[t].fdc);
		free(w[t].fbuf);
		free(w[t].xraw);
		free(w[t].xref);
		free(w[t].xout);
		free(w[t].out_c);
		free(w[t].ft);
		slotsync_delta_block_coder_free(w[t].bc);
		free(w[t].bbuf);
		free(w[t].map);
		free(w[t].map2);
		free(w[t].xres);
		free(w[t].xzb);
		free(w[t].bounds);
		free(w[t].mcontent);
		free(w[t].imap);
		free(w[t].ncontent);
		free(w[t].icontent);
		free(w[t].ibuf);
	}
out:
	for (size_t i = 0; i < c.n_jobs; i++)
		free(c.jobs[i].payload);
	free(c.jobs);
	free(c.order);
	free(c.info);
	free(c.todo);
	free(c.base_sp.anchors);
	free(c.x_sp.anchors);
	free(c.g_sp.anchors);
	free(c.gb);
	free(c.gat);
	squashfs_info_free(&c.gsq);
	free(c.xb);
	free(c.xseg);
	free(c.nf);
	squashfs_info_free(&c.nsq);
	squashfs_info_free(&c.bsq);
	free(missing);
	free(have.slot);
	free(seen.slot);
	free(ser);
	free(d.objects);
	free(d.refs);
	unmap_image(&c.bi);
	unmap_image(&c.ni);
	slotsync_index_free(base);
	slotsync_index_free(ni);
	pthread_mutex_destroy(&c.lock);
	st->seconds = clock_now_s() - t0;
	return r;
}

void gen_delta_print(const char *base, const char *store, const struct gen_delta_stats *st, FILE *f)
{
	uint64_t total = st->index_bytes + st->object_bytes + st->remaining_plain;

	fprintf(f, "delta: base %s: %" PRIu64 " chunks (%" PRIu64 " bytes) missing, %" PRIu64
	       " bytes as plain chunks; %" PRIu64 " objects (%" PRIu64 " zstd-ref, %" PRIu64 " residual, %" PRIu64
	       " zstd-frames, %" PRIu64 " blocks%s%s%s; %" PRIu64 " also read new content before them, %" PRIu64
	       " blocks with residual records, %" PRIu64 " with xz records, %" PRIu64
	       " with gzip files inside) of %" PRIu64 " bytes replace %" PRIu64
	       " bytes of chunks; download %" PRIu64 " bytes (index %" PRIu64 ", objects %" PRIu64 ", chunks %" PRIu64
	       "); %.1f s\n",
	       base, st->missing_chunks, st->missing_bytes, st->replaced_plain + st->remaining_plain, st->objects,
	       st->codec_count[SLOTSYNC_DELTA_ZSTD_REF], st->codec_count[SLOTSYNC_DELTA_RESIDUAL],
	       st->codec_count[SLOTSYNC_DELTA_ZSTD_FRAMES], st->codec_count[SLOTSYNC_DELTA_BLOCKS],
	       st->blocks_comp[0] ? " (" : "", st->blocks_comp, st->blocks_comp[0] ? ")" : "", st->objects_reading_new, st->blocks_residual,
	       st->records_xz, st->records_inner, st->object_bytes,
	       st->replaced_plain, total, st->index_bytes, st->object_bytes, st->remaining_plain, st->seconds);
	if (st->index_path[0])
		fprintf(f, "delta: index %s/%s\n", store, st->index_path);
	if (st->index_diff_path[0])
		fprintf(f, "delta: index diff %s/%s (%" PRIu64 " bytes)\n", store, st->index_diff_path, st->index_diff_bytes);
}
