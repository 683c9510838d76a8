/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Delta index parsing and writing (slotsync/delta.h); the object decoder is
 * delta_decode.c. */
#define ZSTD_STATIC_LINKING_ONLY
#include "slotsync/delta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "io.h"
#include "slotsync/features.h"
#include "slotsync/index.h"

#define TAIL_BYTES SLOTSYNC_DIGEST_BYTES

void slotsync_delta_index_free(struct slotsync_delta_index *d)
{
	if (!d)
		return;
	free(d->objects);
	free(d->refs);
	free(d);
}

int slotsync_delta_object_uses_target(const struct slotsync_delta_index *d, const struct slotsync_delta_object *o)
{
	for (uint32_t i = 0; i < o->ref_count; i++)
		if (d->refs[o->ref_first + i].target)
			return 1;
	return 0;
}

uint64_t slotsync_delta_ref_bytes(const struct slotsync_delta_index *d, const struct slotsync_delta_object *o)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < o->ref_count; i++)
		n += d->refs[o->ref_first + i].length;
	return n;
}

static void profile_get(const uint8_t *p, struct slotsync_delta_profile *pr)
{
	pr->comp = p[0];
	pr->level = io_get_le32(p + 4);
	pr->window = io_get_le32(p + 8);
	pr->variants = io_get_le32(p + 12);
	pr->block_max = io_get_le32(p + 16);
	memcpy(pr->library, p + 20, sizeof(pr->library));
	memcpy(pr->sample, p + 52, sizeof(pr->sample));
}

static void profile_put(const struct slotsync_delta_profile *pr, uint8_t *p)
{
	p[0] = pr->comp;
	io_put_le32(p + 4, pr->level);
	io_put_le32(p + 8, pr->window);
	io_put_le32(p + 12, pr->variants);
	io_put_le32(p + 16, pr->block_max);
	memcpy(p + 20, pr->library, sizeof(pr->library));
	p[20 + sizeof(pr->library) - 1] = 0;
	memcpy(p + 52, pr->sample, sizeof(pr->sample));
}

int slotsync_delta_index_parse(const uint8_t *buf, size_t len, struct slotsync_delta_index **out,
			       struct slotsync_error *err)
{
	struct slotsync_delta_index *d;
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	uint64_t n_obj, n_ref, need;
	const uint8_t *p;
	int v2, v3, profiles;

	*out = NULL;
	if (len < SLOTSYNC_DELTA_HEADER_BYTES + TAIL_BYTES)
		return slotsync_error_set(err, -EBADMSG, "delta index truncated (%zu bytes)", len);
	v3 = memcmp(buf, SLOTSYNC_DELTA_MAGIC_V3, 8) == 0;
	v2 = v3 || memcmp(buf, SLOTSYNC_DELTA_MAGIC, 8) == 0;
	if (!v2 && memcmp(buf, SLOTSYNC_DELTA_MAGIC_V1, 8) != 0)
		return slotsync_error_set(err, -EBADMSG, "not a delta index (wrong magic)");
	profiles = v3 ? 2 : v2 ? 1 : 0;
	n_obj = io_get_le32(buf + 88);
	n_ref = io_get_le32(buf + 92);
	need = SLOTSYNC_DELTA_HEADER_BYTES + n_obj * SLOTSYNC_DELTA_OBJECT_BYTES + n_ref * SLOTSYNC_DELTA_REF_BYTES +
	       profiles * SLOTSYNC_DELTA_PROFILE_BYTES + TAIL_BYTES;
	if (need != len)
		return slotsync_error_set(err, -EBADMSG,
					  "delta index of %zu bytes, but its %" PRIu64 " objects and %" PRIu64
					  " references need %" PRIu64,
					  len, n_obj, n_ref, need);
	if (slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len - TAIL_BYTES, digest) < 0)
		return slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
	if (memcmp(digest, buf + len - TAIL_BYTES, TAIL_BYTES) != 0)
		return slotsync_error_set(err, -EBADMSG, "delta index damaged (its tail digest does not match)");
	d = calloc(1, sizeof(*d));
	if (!d)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(d->base_digest, buf + 8, SLOTSYNC_DIGEST_BYTES);
	memcpy(d->new_digest, buf + 40, SLOTSYNC_DIGEST_BYTES);
	d->base_size = io_get_le64(buf + 72);
	d->new_size = io_get_le64(buf + 80);
	d->n_objects = (uint32_t)n_obj;
	d->n_refs = (uint32_t)n_ref;
	d->objects = calloc(n_obj ? n_obj : 1, sizeof(*d->objects));
	d->refs = calloc(n_ref ? n_ref : 1, sizeof(*d->refs));
	if (!d->objects || !d->refs) {
		int rc = slotsync_error_set(err, -ENOMEM, "out of memory");
		slotsync_delta_index_free(d);
		return rc;
	}
	p = buf + SLOTSYNC_DELTA_HEADER_BYTES;
	for (uint32_t i = 0; i < d->n_objects; i++, p += SLOTSYNC_DELTA_OBJECT_BYTES) {
		struct slotsync_delta_object *o = &d->objects[i];
		memcpy(o->id, p, SLOTSYNC_DIGEST_BYTES);
		o->size = io_get_le32(p + 32);
		o->codec = p[36];
		o->flags = p[37];
		o->first = io_get_le32(p + 40);
		o->count = io_get_le32(p + 44);
		o->ref_first = io_get_le32(p + 48);
		o->ref_count = io_get_le32(p + 52);
		if (o->codec != SLOTSYNC_DELTA_ZSTD_REF && o->codec != SLOTSYNC_DELTA_RESIDUAL &&
		    o->codec != SLOTSYNC_DELTA_ZSTD_FRAMES && (o->codec != SLOTSYNC_DELTA_BLOCKS || !v2)) {
			int rc = slotsync_error_set(err, -EBADMSG, "delta object %u: unknown codec %u", i, o->codec);
			slotsync_delta_index_free(d);
			return rc;
		}
		if (o->count == 0 || o->size == 0 || o->ref_count > SLOTSYNC_DELTA_REFS_MAX ||
		    (uint64_t)o->ref_first + o->ref_count > n_ref) {
			int rc = slotsync_error_set(err, -EBADMSG,
						  "delta object %u: empty, or its references are out of the table", i);
			slotsync_delta_index_free(d);
			return rc;
		}
		if (i > 0 && o->first < (uint64_t)d->objects[i - 1].first + d->objects[i - 1].count) {
			int rc = slotsync_error_set(err, -EBADMSG, "delta object %u overlaps the one before it", i);
			slotsync_delta_index_free(d);
			return rc;
		}
		if (o->size > SLOTSYNC_DELTA_OUT_MAX + SLOTSYNC_DELTA_OUT_MAX / 8) {
			int rc = slotsync_error_set(err, -EBADMSG, "delta object %u: %u bytes, over the limit", i, o->size);
			slotsync_delta_index_free(d);
			return rc;
		}
	}
	for (uint32_t i = 0; i < d->n_refs; i++, p += SLOTSYNC_DELTA_REF_BYTES) {
		uint32_t v = io_get_le32(p);
		d->refs[i].chunk = v & ~SLOTSYNC_DELTA_REF_NEW;
		d->refs[i].target = (v & SLOTSYNC_DELTA_REF_NEW) != 0;
		d->refs[i].offset = io_get_le32(p + 4);
		d->refs[i].length = io_get_le32(p + 8);
	}
	for (int k = 0; k < profiles; k++, p += SLOTSYNC_DELTA_PROFILE_BYTES) {
		struct slotsync_delta_profile *pr = k ? &d->inner : &d->profile;
		int rc;
		profile_get(p, pr);
		rc = slotsync_delta_profile_check(pr, err);
		/* deflate streams inside the blocks of a squashfs compressor */
		if (rc == 0 && k && pr->comp != SLOTSYNC_DELTA_COMP_NONE &&
		    (pr->comp != SLOTSYNC_DELTA_COMP_DEFLATE || d->profile.comp == SLOTSYNC_DELTA_COMP_DEFLATE ||
		     !slotsync_delta_blocks_comp(d->profile.comp, 1)))
			rc = slotsync_error_set(err, -EBADMSG,
						"inner compression profile: deflate inside gzip, xz, lz4 or zstd blocks "
						"only (inner %u, blocks %u)",
						pr->comp, d->profile.comp);
		if (rc < 0) {
			slotsync_error_prefix(err, "delta index");
			slotsync_delta_index_free(d);
			return rc;
		}
	}
	for (uint32_t i = 0; i < d->n_objects; i++) {
		const struct slotsync_delta_object *o = &d->objects[i];
		uint64_t rb = slotsync_delta_ref_bytes(d, o);
		const char *why = NULL;
		if (rb > SLOTSYNC_DELTA_REF_MAX) {
			int rc = slotsync_error_set(err, -EBADMSG, "delta object %u: a reference of %" PRIu64 " bytes", i, rb);
			slotsync_delta_index_free(d);
			return rc;
		}
		if (o->codec == SLOTSYNC_DELTA_BLOCKS && !slotsync_delta_blocks_comp(d->profile.comp, v3))
			why = "a blocks object, but the profile is not gzip, xz, lz4, deflate or (SSDELTA3) zstd";
		else if (o->codec == SLOTSYNC_DELTA_ZSTD_FRAMES && d->profile.comp != SLOTSYNC_DELTA_COMP_ZSTD &&
			 d->profile.comp != SLOTSYNC_DELTA_COMP_NONE)
			why = "a zstd-frames object, but the profile is of another compressor";
		else if ((o->flags & SLOTSYNC_DELTA_OBJ_INNER) &&
			 (o->codec != SLOTSYNC_DELTA_BLOCKS || d->inner.comp != SLOTSYNC_DELTA_COMP_DEFLATE))
			why = "it needs an inner profile, but is no blocks object or the index has none";
		if (why) {
			int rc = slotsync_error_set(err, -EBADMSG, "delta object %u: %s", i, why);
			slotsync_delta_index_free(d);
			return rc;
		}
	}
	*out = d;
	return 0;
}

int slotsync_delta_index_check(const struct slotsync_delta_index *d, const struct slotsync_index *base,
			       const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES], const struct slotsync_index *new_idx,
			       const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	if (memcmp(d->base_digest, base_digest, SLOTSYNC_DIGEST_BYTES) != 0)
		return slotsync_error_set(err, -EBADMSG, "delta index is for another base index");
	if (!base) {
		/* pack objects: no base, no ranges, each object its chunks' content */
		if (!slotsync_delta_base_is_none(d->base_digest) || d->base_size != 0 || d->n_refs != 0)
			return slotsync_error_set(err, -EBADMSG, "a pack index must name no base and no ranges");
		for (uint32_t i = 0; i < d->n_objects; i++)
			if (d->objects[i].codec != SLOTSYNC_DELTA_ZSTD_REF || d->objects[i].ref_count != 0)
				return slotsync_error_set(err, -EBADMSG, "pack object %u is not a plain zstd frame", i);
	} else if (slotsync_delta_base_is_none(d->base_digest)) {
		return slotsync_error_set(err, -EBADMSG, "delta index names no base: it is a pack index");
	}
	if (memcmp(d->new_digest, new_digest, SLOTSYNC_DIGEST_BYTES) != 0)
		return slotsync_error_set(err, -EBADMSG, "delta index is for another new index");
	if (d->base_size != (base ? slotsync_index_image_size(base) : 0) ||
	    d->new_size != slotsync_index_image_size(new_idx))
		return slotsync_error_set(err, -EBADMSG, "delta index names other image sizes than the indexes");
	for (uint32_t i = 0; i < d->n_objects; i++) {
		const struct slotsync_delta_object *o = &d->objects[i];
		uint64_t out;
		if ((uint64_t)o->first + o->count > new_idx->n_chunks)
			return slotsync_error_set(err, -EBADMSG, "delta object %u rebuilds chunks past the new image", i);
		out = new_idx->chunks[o->first + o->count - 1].end - slotsync_index_chunk_start(new_idx, o->first);
		if (out > SLOTSYNC_DELTA_OUT_MAX)
			return slotsync_error_set(err, -EBADMSG, "delta object %u rebuilds %" PRIu64 " bytes, over the limit",
						  i, out);
		for (uint32_t k = 0; k < o->ref_count; k++) {
			const struct slotsync_delta_ref *r = &d->refs[o->ref_first + k];
			uint64_t start;
			if (r->target) {
				/* a range of the new image that ends before the output starts */
				if (r->chunk >= o->first || r->offset >= slotsync_index_chunk_size(new_idx, r->chunk))
					return slotsync_error_set(err, -EBADMSG,
								  "delta object %u: a reference into the new image that is "
								  "not before its output",
								  i);
				start = slotsync_index_chunk_start(new_idx, r->chunk) + r->offset;
				if (start + r->length > slotsync_index_chunk_start(new_idx, o->first))
					return slotsync_error_set(err, -EBADMSG,
								  "delta object %u: a reference into the new image that "
								  "runs into its output",
								  i);
				continue;
			}
			if (r->chunk >= base->n_chunks || r->offset >= slotsync_index_chunk_size(base, r->chunk))
				return slotsync_error_set(err, -EBADMSG, "delta object %u: a reference outside the base image",
							  i);
			start = slotsync_index_chunk_start(base, r->chunk) + r->offset;
			if (start + r->length > slotsync_index_image_size(base))
				return slotsync_error_set(err, -EBADMSG, "delta object %u: a reference past the base image",
							  i);
		}
	}
	return 0;
}

/* Blocks objects of zstd blocks: an SSDELTA3 index (a reader of SSDELTA2
 * only knows zstd blocks as ZSTD_FRAMES objects). */
static int zstd_blocks(const struct slotsync_delta_index *d)
{
	if (d->profile.comp != SLOTSYNC_DELTA_COMP_ZSTD)
		return 0;
	for (uint32_t i = 0; i < d->n_objects; i++)
		if (d->objects[i].codec == SLOTSYNC_DELTA_BLOCKS)
			return 1;
	return 0;
}

int slotsync_delta_index_serialize(const struct slotsync_delta_index *d, uint8_t **out, size_t *out_len,
				   struct slotsync_error *err)
{
	int profiles = d->inner.comp != SLOTSYNC_DELTA_COMP_NONE || zstd_blocks(d) ? 2 : 1;
	size_t len = SLOTSYNC_DELTA_HEADER_BYTES + (size_t)d->n_objects * SLOTSYNC_DELTA_OBJECT_BYTES +
		     (size_t)d->n_refs * SLOTSYNC_DELTA_REF_BYTES + profiles * SLOTSYNC_DELTA_PROFILE_BYTES + TAIL_BYTES;
	uint8_t *b = calloc(1, len), *p;

	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b, profiles == 2 ? SLOTSYNC_DELTA_MAGIC_V3 : SLOTSYNC_DELTA_MAGIC, 8);
	memcpy(b + 8, d->base_digest, SLOTSYNC_DIGEST_BYTES);
	memcpy(b + 40, d->new_digest, SLOTSYNC_DIGEST_BYTES);
	io_put_le64(b + 72, d->base_size);
	io_put_le64(b + 80, d->new_size);
	io_put_le32(b + 88, d->n_objects);
	io_put_le32(b + 92, d->n_refs);
	p = b + SLOTSYNC_DELTA_HEADER_BYTES;
	for (uint32_t i = 0; i < d->n_objects; i++, p += SLOTSYNC_DELTA_OBJECT_BYTES) {
		const struct slotsync_delta_object *o = &d->objects[i];
		memcpy(p, o->id, SLOTSYNC_DIGEST_BYTES);
		io_put_le32(p + 32, o->size);
		p[36] = o->codec;
		p[37] = o->flags;
		io_put_le32(p + 40, o->first);
		io_put_le32(p + 44, o->count);
		io_put_le32(p + 48, o->ref_first);
		io_put_le32(p + 52, o->ref_count);
	}
	for (uint32_t i = 0; i < d->n_refs; i++, p += SLOTSYNC_DELTA_REF_BYTES) {
		io_put_le32(p, d->refs[i].chunk | (d->refs[i].target ? SLOTSYNC_DELTA_REF_NEW : 0));
		io_put_le32(p + 4, d->refs[i].offset);
		io_put_le32(p + 8, d->refs[i].length);
	}
	for (int k = 0; k < profiles; k++, p += SLOTSYNC_DELTA_PROFILE_BYTES)
		profile_put(k ? &d->inner : &d->profile, p);
	if (slotsync_digest(SLOTSYNC_DIGEST_SHA256, b, len - TAIL_BYTES, p) < 0) {
		free(b);
		return slotsync_error_set(err, -ENOMEM, "SHA-256 failed");
	}
	*out = b;
	*out_len = len;
	return 0;
}

int slotsync_delta_index_pack(const struct slotsync_delta_index *d, uint8_t **out, size_t *out_len,
			      struct slotsync_error *err)
{
	uint8_t *raw, *z;
	size_t len, cap, n;
	int r = slotsync_delta_index_serialize(d, &raw, &len, err);

	if (r < 0)
		return r;
	cap = ZSTD_compressBound(len);
	z = malloc(cap);
	if (!z) {
		free(raw);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	n = ZSTD_compress(z, cap, raw, len, 19);
	free(raw);
	if (ZSTD_isError(n)) {
		free(z);
		return slotsync_error_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
	}
	*out = z;
	*out_len = n;
	return 0;
}

int slotsync_delta_index_load(const uint8_t *file, size_t len, struct slotsync_delta_index **out,
			      struct slotsync_error *err)
{
	unsigned long long size = ZSTD_getFrameContentSize(file, len);
	uint8_t *raw;
	size_t n;
	int r;

	*out = NULL;
	if (size == ZSTD_CONTENTSIZE_ERROR)
		return slotsync_error_set(err, -EBADMSG, "delta index is not a zstd frame");
	if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > SLOTSYNC_DELTA_INDEX_MAX)
		return slotsync_error_set(err, -EFBIG, "delta index declares no size, or more than %u bytes",
					  SLOTSYNC_DELTA_INDEX_MAX);
	raw = malloc(size ? size : 1);
	if (!raw)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = ZSTD_decompress(raw, size, file, len);
	if (ZSTD_isError(n) || n != size) {
		free(raw);
		return slotsync_error_set(err, -EBADMSG, "delta index: %s",
					  ZSTD_isError(n) ? ZSTD_getErrorName(n) : "shorter than it declares");
	}
	r = slotsync_delta_index_parse(raw, n, out, err);
	free(raw);
	return r;
}

void slotsync_delta_index_path(const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
			       const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap)
{
	char b[SLOTSYNC_DIGEST_HEX_BYTES], n[SLOTSYNC_DIGEST_HEX_BYTES];

	snprintf(buf, cap, "deltas/%s/%s.sdix", slotsync_digest_to_hex(base_digest, b),
		 slotsync_digest_to_hex(new_digest, n));
}

void slotsync_delta_object_path(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap)
{
	char h[SLOTSYNC_DIGEST_HEX_BYTES];

	slotsync_digest_to_hex(id, h);
	snprintf(buf, cap, "%.4s/%s.sdob", h, h);
}
