/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The assembler's delta objects (slotsync/delta.h; the rest of the assembler:
 * assemble_internal.h).  Once the plan is built, assemble_find_delta() loads
 * the delta index for the first seed given with its index and lets the plan
 * take the objects that rebuild what that base lacks.  assemble_fetch_deltas()
 * then fetches the objects, checks each download, reads its reference (from the
 * base, or for the ordered pass from the target too), decodes, checks every
 * chunk it rebuilt against the new index and only then writes it through
 * assemble_write_group(), journaled like fetched chunks.  An object that fails
 * any of this is reported and its chunks go back to the chunk fetch: no fault of
 * a delta object fails the run, only a fault of the target, the journal or of
 * memory does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assemble_internal.h"
#include "io.h"
#include "slotsync/features.h"
#include "slotsync/log.h"
#include "slotsync/seed.h"

struct body {
	uint8_t *data;
	size_t len;
};

/* Objects whose blocks this device compresses again (ZSTD_FRAMES, BLOCKS)
 * need its compressor to compress as the generator's did: the profile's
 * sample tells before anything is downloaded, and the inner profile's for
 * objects that deflate gzip files inside the blocks again.  Where it does not
 * (another library or version, a compressor not built in, more memory than
 * allowed), those objects are left out of the index and their chunks fetched
 * as chunks; the others are used.  So are objects with xz records on a device
 * built without liblzma. */
static void delta_probe(struct asm_ctx *a)
{
	struct slotsync_delta_index *d = a->delta;
	struct slotsync_error e = { 0 };
	uint32_t nblocks = 0, ninner = 0, nxz = 0, kept = 0;
	int outer_bad = 0, inner_bad = 0, xz_bad = 0;

	for (uint32_t o = 0; o < d->n_objects; o++) {
		nblocks += d->objects[o].codec == SLOTSYNC_DELTA_ZSTD_FRAMES ||
			   d->objects[o].codec == SLOTSYNC_DELTA_BLOCKS;
		ninner += (d->objects[o].flags & SLOTSYNC_DELTA_OBJ_INNER) != 0;
		nxz += (d->objects[o].flags & SLOTSYNC_DELTA_OBJ_XZ) != 0;
	}
	if ((nblocks && d->profile.comp != SLOTSYNC_DELTA_COMP_NONE) ||
	    (ninner && d->inner.comp != SLOTSYNC_DELTA_COMP_NONE)) {
		struct slotsync_delta_block_coder *bc = slotsync_delta_block_coder_new();
		if (!bc) {
			slotsync_error_set(&e, -ENOMEM, "out of memory");
			outer_bad = inner_bad = 1;
		}
		if (bc && nblocks && d->profile.comp != SLOTSYNC_DELTA_COMP_NONE)
			outer_bad = slotsync_delta_profile_probe(bc, &d->profile, &e) < 0;
		if (bc && !outer_bad && ninner && d->inner.comp != SLOTSYNC_DELTA_COMP_NONE)
			inner_bad = slotsync_delta_profile_probe(bc, &d->inner, &e) < 0;
		slotsync_delta_block_coder_free(bc);
	}
	if (nxz && !SLOTSYNC_HAVE_XZ) {
		xz_bad = 1;
		if (!outer_bad && !inner_bad)
			slotsync_error_set(&e, -ENOTSUP, "objects with xz records need liblzma, not built in");
	}
	if (!outer_bad && !inner_bad && !xz_bad)
		return;
	for (uint32_t o = 0; o < d->n_objects; o++) {
		const struct slotsync_delta_object *ob = &d->objects[o];
		if ((outer_bad && (ob->codec == SLOTSYNC_DELTA_ZSTD_FRAMES || ob->codec == SLOTSYNC_DELTA_BLOCKS)) ||
		    (inner_bad && (ob->flags & SLOTSYNC_DELTA_OBJ_INNER)) || (xz_bad && (ob->flags & SLOTSYNC_DELTA_OBJ_XZ)))
			continue;
		d->objects[kept++] = *ob;
	}
	a->st->delta_objects_skipped = d->n_objects - kept;
	snprintf(a->st->delta_note, sizeof(a->st->delta_note), "%s: %u objects replaced by their chunks",
		 slotsync_error_message(&e), d->n_objects - kept);
	d->n_objects = kept;
	slotsync_log_warning("%s", a->st->delta_note);
}

/* Reads a delta index: opt->delta_index_path (a file, or an http(s):// URL
 * fetched with the store's options) if given, else rel from the store.
 * want: the SHA-256 the signed manifest names, checked.  -ENOENT: the store
 * has none. */
static int delta_index_get(struct asm_ctx *a, const char *rel, const uint8_t *want, struct slotsync_delta_index **out,
			   struct slotsync_error *e)
{
	const struct slotsync_assemble_options *opt = a->opt;
	const char *url = opt->delta_index_path ? opt->delta_index_path : rel;
	uint8_t got[SLOTSYNC_DIGEST_BYTES];
	struct body b = { 0 };
	int r;

	if (opt->delta_index_path && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		r = io_read_file(url, SLOTSYNC_DELTA_INDEX_MAX, &b.data, &b.len, e);
		if (r == 0 && want &&
		    (slotsync_digest(SLOTSYNC_DIGEST_SHA256, b.data, b.len, got) < 0 ||
		     memcmp(got, want, SLOTSYNC_DIGEST_BYTES) != 0))
			r = slotsync_error_set(e, -EBADMSG, "its SHA-256 is not the one the signed bundle names");
	} else if (opt->delta_index_path || opt->fetch.base_url || slotsync_mirrors_count(opt->fetch.mirrors)) {
		struct slotsync_fetch_stats fs = { 0 };
		/* with want, checked by the fetch: a mirror that serves a wrong
		 * one is dropped, the index asked of the next */
		r = want ? slotsync_fetch_file_sha256(&opt->fetch, url, SLOTSYNC_DELTA_INDEX_MAX, 0, want, &b.data, &b.len,
						      &fs, e)
			 : slotsync_fetch_file(&opt->fetch, url, SLOTSYNC_DELTA_INDEX_MAX, NULL, &b.data, &b.len, &fs, e);
		a->st->delta_bytes_fetched += fs.bytes_received;
	} else {
		return slotsync_error_set(e, -ENOENT, "no store to fetch it from");
	}
	if (r == 0)
		r = slotsync_delta_index_load(b.data, b.len, out, e);
	free(b.data);
	return r;
}

/* Uses d (loaded from rel) if it fits: the delta objects of the base in seed
 * (seed SIZE_MAX: d is a pack index).  Not fitting is not an error. */
static int delta_use(struct asm_ctx *a, struct slotsync_delta_index *d, const char *rel, size_t seed,
		     const uint8_t *base_digest, const uint8_t *new_digest)
{
	struct slotsync_error e = { 0 };
	int packs = seed == SIZE_MAX;
	int r = slotsync_delta_index_check(d, packs ? NULL : a->base_idx, base_digest, a->idx, new_digest, &e);

	a->delta = d;
	if (r == 0)
		delta_probe(a);
	if (r == 0)
		r = packs ? slotsync_plan_add_packs(a->plan, a->delta, &e)
			  : slotsync_plan_add_delta(a->plan, a->delta, a->base_idx, seed, &e);
	if (r < 0) {
		slotsync_log_warning("delta index %s not used: %s; chunks only", rel, slotsync_error_message(&e));
		slotsync_delta_index_free(a->delta);
		a->delta = NULL;
		return 0;
	}
	snprintf(a->st->delta_index, sizeof(a->st->delta_index), "%s", rel);
	if (packs)
		slotsync_log_info("pack objects: %" PRIu64 " of %u rebuild %" PRIu64 " chunks", a->plan->objects_delta,
				  d->n_objects, a->plan->chunks_delta);
	return 0;
}

/* Finds and loads the delta index for the first seed that names its index,
 * only one named: opt->delta_index_path, or the signed manifest's
 * (opt->signed_deltas), fetched from the store.  Where none fits the base
 * (no seed, none named for it, or one that does not fit), the release's pack
 * objects, if named: a delta index with no base.  The store is never probed
 * for one nobody named.  Not finding one, or finding one that does not fit,
 * is not an error: the chunks are fetched as chunks. */
int assemble_find_delta(struct asm_ctx *a, struct slotsync_error *err)
{
	const struct slotsync_assemble_options *opt = a->opt;
	static const uint8_t none[SLOTSYNC_DIGEST_BYTES];
	uint8_t base_digest[SLOTSYNC_DIGEST_BYTES], new_digest[SLOTSYNC_DIGEST_BYTES];
	struct slotsync_delta_index *d = NULL;
	struct slotsync_error e = { 0 };
	char rel[200];
	size_t seed = SIZE_MAX;
	const uint8_t *want = NULL, *want_packs = NULL;
	int r = 0;

	if (opt->no_delta || a->plan->chunks_fetch == 0)
		return 0;
	if (!opt->delta_index_path && !opt->signed_deltas) {
		slotsync_log_debug("no delta index named (--delta-index): chunks only");
		return 0;
	}
	if (slotsync_index_digest(a->idx, new_digest, err) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < opt->n_seeds && seed == SIZE_MAX && opt->seed_indexes; i++) {
		if (opt->seed_indexes[i] && slotsync_index_read_file(opt->seed_indexes[i], &a->base_idx, &e) == 0)
			seed = i;
		slotsync_error_clear(&e);
	}
	if (seed != SIZE_MAX && slotsync_index_digest(a->base_idx, base_digest, err) < 0)
		return -ENOMEM;
	for (size_t i = 0; opt->signed_deltas && i < opt->n_deltas; i++) {
		if (seed != SIZE_MAX && !want && !memcmp(opt->deltas[i].base, base_digest, SLOTSYNC_DIGEST_BYTES))
			want = opt->deltas[i].sha256;
		if (!want_packs && slotsync_delta_base_is_none(opt->deltas[i].base))
			want_packs = opt->deltas[i].sha256;
	}
	if (opt->delta_index_path) {
		/* the one named: the base's delta objects, or packs */
		r = delta_index_get(a, NULL, NULL, &d, &e);
		if (r == 0 && slotsync_delta_base_is_none(d->base_digest))
			return delta_use(a, d, opt->delta_index_path, SIZE_MAX, none, new_digest);
		if (r == 0 && seed != SIZE_MAX)
			return delta_use(a, d, opt->delta_index_path, seed, base_digest, new_digest);
		if (r == 0)
			slotsync_error_set(&e, -EINVAL, "it is for a base, and no seed was given with its index");
		slotsync_log_warning("delta index %s not used: %s; chunks only", opt->delta_index_path,
				     slotsync_error_message(&e));
		slotsync_delta_index_free(d);
		return 0;
	}
	if (want) {
		slotsync_delta_index_path(base_digest, new_digest, rel, sizeof(rel));
		r = delta_index_get(a, rel, want, &d, &e);
		if (r == 0) {
			r = delta_use(a, d, rel, seed, base_digest, new_digest);
			if (r < 0 || a->delta)
				return r;
		} else {
			slotsync_log_warning("delta index %s not used: %s; chunks only", rel, slotsync_error_message(&e));
		}
		slotsync_error_clear(&e);
	} else if (seed != SIZE_MAX) {
		slotsync_log_info("the release has no delta objects for this base%s",
				  want_packs ? ": its pack objects" : ": chunks only");
	}
	if (!want_packs)
		return 0;
	slotsync_delta_index_path(none, new_digest, rel, sizeof(rel));
	r = delta_index_get(a, rel, want_packs, &d, &e);
	if (r < 0) {
		slotsync_log_warning("pack index %s not used: %s; chunks only", rel, slotsync_error_message(&e));
		return 0;
	}
	return delta_use(a, d, rel, SIZE_MAX, none, new_digest);
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
		r = assemble_write_group(a, g, a->out + (slotsync_index_chunk_start(a->idx, pos) - start), err);
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
		r = assemble_record_written(a, err);
	if (r == 0 && a->pending_bytes >= SEED_BATCH_BYTES)
		r = assemble_bg_commit_start(a, err);
	if (r < 0)
		return r;
	assemble_report_progress(a, 0);
	return 0;
}

static int delta_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct asm_ctx *a = userdata;
	int r;

	a->st->delta_bytes_fetched += len;
	if (slotsync_mirrors_count(a->opt->fetch.mirrors) > 1) {
		/* among mirrors, an object that is not the one named drops the mirror
		 * that served it, and is asked of the next (slotsync/mirrors.h) */
		const struct slotsync_delta_object *obj = &a->delta->objects[a->job_object[job]];
		uint8_t id[SLOTSYNC_DIGEST_BYTES];
		if (len != obj->size || slotsync_digest(SLOTSYNC_DIGEST_SHA256, data, len, id) < 0 ||
		    memcmp(id, obj->id, SLOTSYNC_DIGEST_BYTES) != 0)
			return slotsync_error_set(err, -EAGAIN, "delta object %u does not match its id", a->job_object[job]);
	}
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
	if (!a->base_idx || a->base_idx->chunk_size_max < a->idx->chunk_size_max)
		return (size_t)a->idx->chunk_size_max;
	return (size_t)a->base_idx->chunk_size_max;
}

/* Fetches and applies the delta objects the plan uses: pass 0 those whose
 * reference lies in the base image alone, all at once; pass 1, after every
 * other source, those that read chunks of the new image before their output,
 * applied in order (each may need the ones before it).  A run that fails as a
 * whole (the network, an object the store lacks) leaves the objects not yet
 * applied to the chunk fetch that follows. */
int assemble_fetch_deltas(struct asm_ctx *a, int pass, struct slotsync_error *err)
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
	if (a->ddec) {
		slotsync_delta_decoder_set_profile(a->ddec, &d->profile);
		slotsync_delta_decoder_set_inner_profile(a->ddec, &d->inner);
	}
	a->ref = malloc(max_ref);
	a->out = malloc(max_out);
	a->chunk = malloc(chunk_max(a));
	if (!a->ddec || !a->ref || !a->out || !a->chunk)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	before = a->st->delta_bytes_fetched;
	r = slotsync_fetch_run(&fo, n, max_obj, delta_describe, delta_done, assemble_fetch_tick, a, &fs, &e);
	assemble_add_fetch_stats(a, &fs);
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
	return assemble_commit_all(a, err);
}

void assemble_delta_free(struct asm_ctx *a)
{
	free(a->job_object);
	free(a->object_done);
	held_free(a);
	free(a->ref);
	free(a->out);
	free(a->chunk);
	slotsync_delta_decoder_free(a->ddec);
	slotsync_delta_index_free(a->delta);
	slotsync_index_free(a->base_idx);
}
