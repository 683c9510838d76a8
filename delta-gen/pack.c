/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pack objects (docs/format.md, "Pack objects"): for a device with no usable
 * base (a factory slot, a slot far behind), a release's chunks in runs of
 * about a MiB, each run one zstd frame: a full install fetches one object per
 * run instead of one file per chunk.  They are delta objects with no
 * reference (codec ZSTD_REF, no ranges), listed in a delta index whose base is
 * "none" (all-zero digest), so the device finds, checks, journals and resumes
 * them as it does delta objects, chunk by chunk.
 *
 * A run holds each chunk's first place only (cut_runs), and is kept only
 * when its frame is no larger than the store's own files of its chunks: so a
 * full install through packs never downloads more than one through chunk
 * files.  Runs are cut where the content says, so that the packs of the next
 * release are the same files where its content is unchanged: the store
 * grows by the packs of what changed.  Runs are compressed on all cores; the result does not
 * depend on the number of threads.
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
#include <zstd.h>

#include "clock.h"
#include "gen.h"
#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "store_write.h"

#define PACK_WINDOW 256u  /* runs compressed before they are written */
#define PACK_LEVEL_RETRY 12 /* for a run larger than its chunk files */

struct run {
	uint32_t first, count;
	uint64_t plain;        /* bytes of the store's files of its chunks */
	uint8_t *payload;
	size_t len;
};

struct pack_ctx {
	const struct slotsync_index *idx;
	const uint8_t *image;
	int level;
	struct run *runs;
	size_t n_runs;
	size_t end;            /* the window being compressed: next .. end */
	atomic_size_t next;
	atomic_int failed;
};

static void *pack_work(void *arg)
{
	struct pack_ctx *c = arg;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t i;

	if (!cc) {
		atomic_store(&c->failed, -ENOMEM);
		return NULL;
	}
	while ((i = atomic_fetch_add(&c->next, 1)) < c->end && !atomic_load(&c->failed)) {
		struct run *r = &c->runs[i];
		uint64_t start = slotsync_index_chunk_start(c->idx, r->first);
		size_t len = (size_t)(c->idx->chunks[r->first + r->count - 1].end - start), n;
		r->payload = malloc(ZSTD_compressBound(len));
		if (!r->payload) {
			atomic_store(&c->failed, -ENOMEM);
			break;
		}
		n = ZSTD_compressCCtx(cc, r->payload, ZSTD_compressBound(len), c->image + start, len, c->level);
		/* zstd tunes a level to the input's size: on content that gains
		 * nothing across chunks, one frame can come out larger than the
		 * chunks' own small frames at the same level; a stronger level then */
		if (!ZSTD_isError(n) && n > r->plain && c->level < PACK_LEVEL_RETRY)
			n = ZSTD_compressCCtx(cc, r->payload, ZSTD_compressBound(len), c->image + start, len,
					      PACK_LEVEL_RETRY);
		if (ZSTD_isError(n)) {
			atomic_store(&c->failed, -EIO);
			break;
		}
		r->len = n;
	}
	ZSTD_freeCCtx(cc);
	return NULL;
}

/* Size of the store's file of chunk id, or -errno. */
static int64_t chunk_file_size(int storefd, const uint8_t *id)
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES], rel[80];
	struct stat st;

	slotsync_digest_to_hex(id, hex);
	snprintf(rel, sizeof(rel), "%.4s/%s.cacnk", hex, hex);
	if (fstatat(storefd, rel, &st, 0) < 0)
		return -errno;
	return (int64_t)st.st_size;
}

/* chunk positions by id, then by position */
static int cmp_pos(const void *a, const void *b, void *arg)
{
	const struct slotsync_index *idx = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = memcmp(idx->chunks[x].id, idx->chunks[y].id, SLOTSYNC_DIGEST_BYTES);

	return c ? c : (x > y) - (x < y);
}

/* Marks first[i] = 1 for each chunk that is the first of its id. */
static int first_of_id(const struct slotsync_index *idx, uint8_t *first)
{
	uint32_t *pos = malloc((idx->n_chunks ? idx->n_chunks : 1) * sizeof(*pos));

	if (!pos)
		return -ENOMEM;
	for (size_t i = 0; i < idx->n_chunks; i++)
		pos[i] = (uint32_t)i;
	qsort_r(pos, idx->n_chunks, sizeof(*pos), cmp_pos, (void *)idx);
	for (size_t i = 0; i < idx->n_chunks; i++)
		first[pos[i]] = i == 0 || memcmp(idx->chunks[pos[i]].id, idx->chunks[pos[i - 1]].id, SLOTSYNC_DIGEST_BYTES);
	free(pos);
	return 0;
}

/* Cuts the index into runs: consecutive chunks, each the first of its id (a
 * chunk seen before ends a run and is in none: the zeros of free space, a
 * file twice), at most run_max bytes, and cut where the content says (a chunk
 * whose id is 0 modulo `cut` ends a run, about run_max * 3/4 on average): so
 * the next release's runs over unchanged content are the same runs, and its
 * packs the same files.  Notes, per run, the bytes of the store's files of its
 * chunks. */
static int cut_runs(struct pack_ctx *c, int storefd, uint32_t run_max, struct slotsync_error *err)
{
	const struct slotsync_index *idx = c->idx;
	uint32_t cut = (uint32_t)((uint64_t)run_max / 4 * 3 / (idx->chunk_size_avg ? idx->chunk_size_avg : 1));
	uint8_t *first = calloc(idx->n_chunks ? idx->n_chunks : 1, 1);
	struct run *run = NULL;
	uint64_t start = 0;

	c->runs = calloc(idx->n_chunks ? idx->n_chunks : 1, sizeof(*c->runs));
	if (!c->runs || !first || first_of_id(idx, first) < 0) {
		free(first);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	if (cut < 1)
		cut = 1;
	for (size_t i = 0; i < idx->n_chunks; i++) {
		const uint8_t *id = idx->chunks[i].id;
		uint32_t h;
		int64_t fs;
		if (!first[i]) {
			run = NULL;
			continue;
		}
		if (run && idx->chunks[i].end - start > run_max)
			run = NULL;
		if (!run) {
			run = &c->runs[c->n_runs++];
			run->first = (uint32_t)i;
			start = slotsync_index_chunk_start(idx, i);
		}
		fs = chunk_file_size(storefd, id);
		if (fs < 0) {
			char hex[SLOTSYNC_DIGEST_HEX_BYTES];
			free(first);
			return slotsync_error_set_errno(err, (int)fs, "chunk %zu (%s) is not in the store", i,
							slotsync_digest_to_hex(id, hex));
		}
		run->plain += (uint64_t)fs;
		run->count++;
		memcpy(&h, id + 8, sizeof(h));
		if (h % cut == 0)
			run = NULL;
	}
	free(first);
	return 0;
}

int gen_packs(const struct gen_pack_options *opt, struct gen_pack_stats *st, struct slotsync_error *err)
{
	struct pack_ctx c = { .level = opt->level ? opt->level : GEN_ZSTD_LEVEL_DEFAULT };
	struct slotsync_index *idx = NULL;
	struct slotsync_delta_index d = { 0 };
	struct store_writer *sw = NULL;
	struct store_batch *b = NULL;
	uint8_t *ser = NULL;
	size_t ser_len = 0;
	uint64_t image_size = 0;
	int threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), storefd = -1, fd = -1, r;
	uint32_t run_max = opt->run_max ? (uint32_t)opt->run_max : SLOTSYNC_DELTA_OUT_MAX;
	pthread_t tid[64];
	double t0 = clock_now_s();
	char rel[200];

	memset(st, 0, sizeof(*st));
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	if (run_max > SLOTSYNC_DELTA_OUT_MAX)
		return slotsync_error_set(err, -EINVAL, "a pack rebuilds at most %u bytes", SLOTSYNC_DELTA_OUT_MAX);
	r = slotsync_index_read_file(opt->index, &idx, err);
	if (r < 0)
		return r;
	c.idx = idx;
	storefd = open(opt->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (storefd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open the store %s", opt->store);
		goto out;
	}
	fd = open(opt->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || io_fd_size(fd, &image_size) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open %s", opt->image);
		goto out;
	}
	if (image_size != slotsync_index_image_size(idx)) {
		r = slotsync_error_set(err, -EINVAL, "%s has %" PRIu64 " bytes, its index %s names %" PRIu64, opt->image,
				       image_size, opt->index, slotsync_index_image_size(idx));
		goto out;
	}
	if (image_size) {
		c.image = mmap(NULL, image_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (c.image == MAP_FAILED) {
			c.image = NULL;
			r = slotsync_error_set_errno(err, -errno, "cannot map %s", opt->image);
			goto out;
		}
	}
	r = cut_runs(&c, storefd, run_max, err);
	if (r < 0)
		goto out;
	/* the index, the objects that are no larger than the chunks' own files */
	if (slotsync_index_digest(idx, d.new_digest, err) < 0) {
		r = -ENOMEM;
		goto out;
	}
	d.new_size = image_size;
	d.objects = calloc(c.n_runs ? c.n_runs : 1, sizeof(*d.objects));
	if (!d.objects) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = store_writer_open(opt->store, &sw, err);
	if (r == 0 && !(b = store_batch_new(sw)))
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
	/* a window of runs at a time on all cores, written, then freed: memory
	 * stays bounded whatever the image's size */
	for (size_t w = 0; w < c.n_runs && r == 0; w = c.end) {
		int started = 0;
		c.end = w + PACK_WINDOW < c.n_runs ? w + PACK_WINDOW : c.n_runs;
		atomic_store(&c.next, w);
		for (int t = 0; t < threads; t++)
			if (pthread_create(&tid[t], NULL, pack_work, &c) == 0)
				started++;
			else
				break;
		if (started == 0)
			pack_work(&c);
		for (int t = 0; t < started; t++)
			pthread_join(tid[t], NULL);
		if (atomic_load(&c.failed)) {
			r = slotsync_error_set(err, atomic_load(&c.failed), "compressing the packs failed");
			break;
		}
		for (size_t i = w; i < c.end && r == 0; i++) {
			struct run *run = &c.runs[i];
			struct slotsync_delta_object *o;
			uint64_t out = idx->chunks[run->first + run->count - 1].end - slotsync_index_chunk_start(idx, run->first);
			st->chunk_file_bytes += run->plain;
			if (run->len > run->plain || out > SLOTSYNC_DELTA_OUT_MAX) {
				st->runs_left_out++;
				st->left_out_bytes += run->plain;
				continue;
			}
			o = &d.objects[d.n_objects++];
			slotsync_digest(SLOTSYNC_DIGEST_SHA256, run->payload, run->len, o->id);
			o->size = (uint32_t)run->len;
			o->codec = SLOTSYNC_DELTA_ZSTD_REF;
			o->first = run->first;
			o->count = run->count;
			st->packs++;
			st->pack_bytes += run->len;
			st->covered_bytes += run->plain;
			r = store_batch_put_ext(b, o->id, ".sdob", run->payload, run->len, err);
		}
		for (size_t i = w; i < c.end; i++) {
			free(c.runs[i].payload);
			c.runs[i].payload = NULL;
		}
	}
	if (b) {
		int r2 = store_batch_free(b, err);
		if (r == 0)
			r = r2;
	}
	if (r == 0)
		r = store_writer_sync(sw, err);
	if (r == 0)
		r = slotsync_delta_index_pack(&d, &ser, &ser_len, err);
	if (r == 0) {
		st->index_bytes = ser_len;
		slotsync_digest(SLOTSYNC_DIGEST_SHA256, ser, ser_len, st->index_sha256);
		slotsync_delta_index_path(d.base_digest, d.new_digest, rel, sizeof(rel));
		r = store_write_named(opt->store, rel, ser, ser_len, err);
		if (r == 0)
			snprintf(st->index_path, sizeof(st->index_path), "%s", rel);
	}
out:
	store_writer_free(sw);
	for (size_t i = 0; i < c.n_runs; i++)
		free(c.runs[i].payload);
	free(c.runs);
	free(d.objects);
	free(ser);
	if (c.image)
		munmap((void *)c.image, image_size);
	if (fd >= 0)
		close(fd);
	if (storefd >= 0)
		close(storefd);
	slotsync_index_free(idx);
	st->seconds = clock_now_s() - t0;
	return r;
}

void gen_packs_print(const char *store, const struct gen_pack_stats *st, FILE *f)
{
	fprintf(f,
		"packs: %" PRIu64 " objects of %" PRIu64 " bytes replace %" PRIu64 " bytes of chunk files"
		" (%" PRIu64 " runs left to their chunks, %" PRIu64 " bytes); index %" PRIu64 " bytes; %.1f s\n",
		st->packs, st->pack_bytes, st->covered_bytes, st->runs_left_out, st->left_out_bytes, st->index_bytes,
		st->seconds);
	if (st->index_path[0])
		fprintf(f, "packs: index %s/%s\n", store, st->index_path);
}
