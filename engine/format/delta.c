/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Delta index parsing and writing, and the object decoder (slotsync/delta.h). */
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

#if SLOTSYNC_HAVE_XZ
#include <lzma.h>
#endif

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

int slotsync_delta_index_parse(const uint8_t *buf, size_t len, struct slotsync_delta_index **out,
			       struct slotsync_error *err)
{
	struct slotsync_delta_index *d;
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	uint64_t n_obj, n_ref, need;
	const uint8_t *p;
	int v2;

	*out = NULL;
	if (len < SLOTSYNC_DELTA_HEADER_BYTES + TAIL_BYTES)
		return slotsync_error_set(err, -EBADMSG, "delta index truncated (%zu bytes)", len);
	v2 = memcmp(buf, SLOTSYNC_DELTA_MAGIC, 8) == 0;
	if (!v2 && memcmp(buf, SLOTSYNC_DELTA_MAGIC_V1, 8) != 0)
		return slotsync_error_set(err, -EBADMSG, "not a delta index (wrong magic)");
	n_obj = io_get_le32(buf + 88);
	n_ref = io_get_le32(buf + 92);
	need = SLOTSYNC_DELTA_HEADER_BYTES + n_obj * SLOTSYNC_DELTA_OBJECT_BYTES + n_ref * SLOTSYNC_DELTA_REF_BYTES +
	       (v2 ? SLOTSYNC_DELTA_PROFILE_BYTES : 0) + TAIL_BYTES;
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
	if (v2) {
		struct slotsync_delta_profile *pr = &d->profile;
		int rc;
		pr->comp = p[0];
		pr->level = io_get_le32(p + 4);
		pr->window = io_get_le32(p + 8);
		pr->variants = io_get_le32(p + 12);
		pr->block_max = io_get_le32(p + 16);
		memcpy(pr->library, p + 20, sizeof(pr->library));
		memcpy(pr->sample, p + 52, sizeof(pr->sample));
		rc = slotsync_delta_profile_check(pr, err);
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
		if (o->codec == SLOTSYNC_DELTA_BLOCKS && d->profile.comp != SLOTSYNC_DELTA_COMP_GZIP &&
		    d->profile.comp != SLOTSYNC_DELTA_COMP_XZ && d->profile.comp != SLOTSYNC_DELTA_COMP_LZ4 &&
		    d->profile.comp != SLOTSYNC_DELTA_COMP_DEFLATE)
			why = "a blocks object, but the profile is not gzip, xz, lz4 or deflate";
		else if (o->codec == SLOTSYNC_DELTA_ZSTD_FRAMES && d->profile.comp != SLOTSYNC_DELTA_COMP_ZSTD &&
			 d->profile.comp != SLOTSYNC_DELTA_COMP_NONE)
			why = "a zstd-frames object, but the profile is of another compressor";
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

int slotsync_delta_index_serialize(const struct slotsync_delta_index *d, uint8_t **out, size_t *out_len,
				   struct slotsync_error *err)
{
	size_t len = SLOTSYNC_DELTA_HEADER_BYTES + (size_t)d->n_objects * SLOTSYNC_DELTA_OBJECT_BYTES +
		     (size_t)d->n_refs * SLOTSYNC_DELTA_REF_BYTES + SLOTSYNC_DELTA_PROFILE_BYTES + TAIL_BYTES;
	uint8_t *b = calloc(1, len), *p;

	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b, SLOTSYNC_DELTA_MAGIC, 8);
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
	p[0] = d->profile.comp;
	io_put_le32(p + 4, d->profile.level);
	io_put_le32(p + 8, d->profile.window);
	io_put_le32(p + 12, d->profile.variants);
	io_put_le32(p + 16, d->profile.block_max);
	memcpy(p + 20, d->profile.library, sizeof(d->profile.library));
	p[20 + sizeof(d->profile.library) - 1] = 0;
	memcpy(p + 52, d->profile.sample, sizeof(d->profile.sample));
	p += SLOTSYNC_DELTA_PROFILE_BYTES;
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

struct slotsync_delta_decoder {
	ZSTD_DCtx *dctx;
	uint8_t *scratch;   /* RESIDUAL: the decoded frame; ZSTD_FRAMES: the records */
	size_t scratch_cap;
	/* ZSTD_FRAMES, made on first use */
	ZSTD_DCtx *fdctx;   /* frames of the reference */
	ZSTD_CCtx *cctx;    /* frames of the output, compressed again */
	uint8_t *xref;      /* the expanded reference (XREF_MAX) */
	uint8_t *frame;     /* one frame rebuilt */
	/* BLOCKS, made on first use */
	struct slotsync_delta_profile profile;
	struct slotsync_delta_block_coder *bc;
	uint8_t *map;       /* the decoded map (MAP_MAX entries) */
	uint8_t *block;     /* one block rebuilt (DEFLATE_CAP(PROFILE_BLOCK_MAX)) */
	uint32_t *bounds;   /* DEFLATE: a record's block lengths (DEFLATE_BOUNDS_MAX) */
};

static const uint8_t zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

size_t slotsync_delta_frame_at(const uint8_t *p, size_t len, size_t *content)
{
	unsigned long long n;
	size_t c;

	if (len < 9 || memcmp(p, zstd_magic, 4) != 0)
		return 0;
	n = ZSTD_getFrameContentSize(p, len);
	if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > SLOTSYNC_DELTA_FRAME_MAX)
		return 0;
	c = ZSTD_findFrameCompressedSize(p, len);
	if (ZSTD_isError(c) || c > len)
		return 0;
	*content = (size_t)n;
	return c;
}

size_t slotsync_delta_expand(void *dctx, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t i = 0, o = 0;

	/* the same frames expand on every side, whatever the context was set to */
	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, SLOTSYNC_DELTA_FRAME_WINDOW_LOG);

	while (i < len && o < cap) {
		const uint8_t *m = memchr(in + i, zstd_magic[0], len - i);
		size_t lit = m ? (size_t)(m - (in + i)) : len - i, fc, content = 0;
		if (lit > cap - o)
			lit = cap - o;
		memcpy(out + o, in + i, lit);
		o += lit;
		i += lit;
		if (!m || o == cap)
			break;
		fc = slotsync_delta_frame_at(in + i, len - i, &content);
		if (fc && content <= cap - o) {
			size_t n = ZSTD_decompressDCtx(dctx, out + o, content, in + i, fc);
			if (!ZSTD_isError(n) && n == content) {
				o += n;
				i += fc;
				continue;
			}
		}
		out[o++] = in[i++];
	}
	return o;
}

struct slotsync_delta_decoder *slotsync_delta_decoder_new(void)
{
	struct slotsync_delta_decoder *dec = calloc(1, sizeof(*dec));

	if (!dec)
		return NULL;
	dec->dctx = ZSTD_createDCtx();
	if (!dec->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(dec->dctx, ZSTD_d_windowLogMax,
							      SLOTSYNC_DELTA_WINDOW_LOG + 1))) {
		slotsync_delta_decoder_free(dec);
		return NULL;
	}
	return dec;
}

void slotsync_delta_decoder_free(struct slotsync_delta_decoder *dec)
{
	if (!dec)
		return;
	ZSTD_freeDCtx(dec->dctx);
	ZSTD_freeDCtx(dec->fdctx);
	ZSTD_freeCCtx(dec->cctx);
	free(dec->scratch);
	free(dec->xref);
	free(dec->frame);
	slotsync_delta_block_coder_free(dec->bc);
	free(dec->map);
	free(dec->block);
	free(dec->bounds);
	free(dec);
}

void slotsync_delta_decoder_set_profile(struct slotsync_delta_decoder *dec, const struct slotsync_delta_profile *p)
{
	if (p)
		dec->profile = *p;
	else
		memset(&dec->profile, 0, sizeof(dec->profile));
}

/* One frame against the reference, into exactly `want` bytes (or at most cap
 * when want is 0); returns the size or an error. */
static int64_t frame_decode(struct slotsync_delta_decoder *dec, const void *payload, size_t len, const void *ref,
			    size_t ref_len, void *out, size_t cap, struct slotsync_error *err)
{
	unsigned long long declared = ZSTD_getFrameContentSize(payload, len);
	size_t n;

	if (declared == ZSTD_CONTENTSIZE_ERROR)
		return slotsync_error_set(err, -EBADMSG, "not a zstd frame");
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap)
		return slotsync_error_set(err, -EFBIG, "frame declares %llu bytes where at most %zu may come", declared,
					  cap);
	ZSTD_DCtx_reset(dec->dctx, ZSTD_reset_session_only);
	n = ZSTD_DCtx_refPrefix(dec->dctx, ref, ref_len);
	if (!ZSTD_isError(n))
		n = ZSTD_decompressDCtx(dec->dctx, out, cap, payload, len);
	if (ZSTD_isError(n))
		return slotsync_error_set(err, -EBADMSG, "zstd: %s", ZSTD_getErrorName(n));
	return (int64_t)n;
}

static const uint8_t xz_magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };

/* What an object's zstd frame gives (a ZSTD_REF object's output, the records
 * of a BLOCKS or ZSTD_FRAMES object): the frame decoded against the (expanded)
 * reference, or one .xz stream without it (the whole payload, within
 * SLOTSYNC_DELTA_XZ_MEM_MAX of liblzma memory); returns its size or an
 * error. */
static int64_t records_decode(struct slotsync_delta_decoder *dec, const uint8_t *payload, size_t len,
			      const void *xref, size_t xref_len, uint8_t *out, size_t cap, struct slotsync_error *err)
{
	if (len < sizeof(xz_magic) || memcmp(payload, xz_magic, sizeof(xz_magic)) != 0)
		return frame_decode(dec, payload, len, xref, xref_len, out, cap, err);
#if SLOTSYNC_HAVE_XZ
	{
		lzma_stream st = LZMA_STREAM_INIT;
		uint64_t need;
		size_t got, left;
		lzma_ret r = lzma_stream_decoder(&st, SLOTSYNC_DELTA_XZ_MEM_MAX, 0);

		if (r != LZMA_OK)
			return slotsync_error_set(err, -ENOMEM, "out of memory for xz records");
		st.next_in = payload;
		st.avail_in = len;
		st.next_out = out;
		st.avail_out = cap;
		r = lzma_code(&st, LZMA_FINISH);
		got = cap - st.avail_out;
		left = st.avail_in;
		need = lzma_memusage(&st);
		lzma_end(&st);
		if (r == LZMA_STREAM_END && left)
			return slotsync_error_set(err, -EBADMSG, "xz records followed by %zu other bytes", left);
		if (r == LZMA_STREAM_END)
			return (int64_t)got;
		if (r == LZMA_MEMLIMIT_ERROR)
			return slotsync_error_set(err, -EFBIG, "xz records need %" PRIu64 " bytes of memory, over %u", need,
						  SLOTSYNC_DELTA_XZ_MEM_MAX);
		if ((r == LZMA_OK || r == LZMA_BUF_ERROR) && got == cap)
			return slotsync_error_set(err, -EFBIG, "xz records of over %zu bytes", cap);
		if (r == LZMA_OK || r == LZMA_BUF_ERROR)
			return slotsync_error_set(err, -EBADMSG, "xz records cut short");
		return slotsync_error_set(err, -EBADMSG, "xz records do not decode (liblzma %d)", (int)r);
	}
#else
	(void)dec;
	(void)xref;
	(void)xref_len;
	(void)out;
	(void)cap;
	return slotsync_error_set(err, -ENOTSUP, "xz records, and this slotsync was built without liblzma");
#endif
}

/* dec->scratch of at least cap bytes; -1 if out of memory */
static int scratch_reserve(struct slotsync_delta_decoder *dec, size_t cap)
{
	uint8_t *s;

	if (dec->scratch_cap >= cap)
		return 0;
	s = realloc(dec->scratch, cap);
	if (!s)
		return -1;
	dec->scratch = s;
	dec->scratch_cap = cap;
	return 0;
}

static int frames_setup(struct slotsync_delta_decoder *dec, struct slotsync_error *err)
{
	if (dec->xref)
		return 0;
	if (!dec->fdctx)
		dec->fdctx = ZSTD_createDCtx();
	if (!dec->cctx)
		dec->cctx = ZSTD_createCCtx();
	if (!dec->frame)
		dec->frame = malloc(ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX));
	(void)scratch_reserve(dec, SLOTSYNC_DELTA_XOUT_MAX); /* checked below */
	dec->xref = malloc(SLOTSYNC_DELTA_XREF_MAX);
	if (!dec->fdctx || !dec->cctx || !dec->frame || !dec->xref || dec->scratch_cap < SLOTSYNC_DELTA_XOUT_MAX) {
		free(dec->xref);
		dec->xref = NULL;
		return slotsync_error_set(err, -ENOMEM, "out of memory for a zstd-frames object");
	}
	return 0;
}

#define MAP_ENTRY_BYTES 12u

/* The records (ZSTD_FRAMES or BLOCKS) into exactly out_len bytes.  A frame or
 * block record is compressed again and must give csize bytes; only the
 * record that starts the output may skip bytes of its block and only the one
 * that ends it may leave bytes off (bounded work: the blocks compressed tile
 * the output). */
static int records_apply(struct slotsync_delta_decoder *dec, int codec, const uint8_t *x, size_t n, uint8_t *out,
			 size_t out_len, struct slotsync_error *err)
{
	const struct slotsync_delta_profile *pr = &dec->profile;
	const char *what = codec == SLOTSYNC_DELTA_BLOCKS ? "blocks object" : "zstd-frames object";
	/* 1 frame, 2 block, 3 deflate stream (with its block lengths) */
	const uint8_t kind = codec != SLOTSYNC_DELTA_BLOCKS ? 1 : pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE ? 3 : 2;
	size_t at = 0, o = 0;

	while (at < n) {
		size_t left = n - at;
		if (x[at] == 0) {
			uint32_t len = left >= 5 ? io_get_le32(x + at + 1) : 0;
			if (left < 5 || len == 0 || len > left - 5 || len > out_len - o)
				return slotsync_error_set(err, -EBADMSG, "%s: bytes record at %zu out of bounds", what, at);
			memcpy(out + o, x + at + 5, len);
			o += len;
			at += 5 + len;
		} else if (x[at] == kind) {
			uint32_t variant, csize, skip, take, len, content_max, cap, nb = 0;
			size_t hdr = 18;
			const uint8_t *content;
			uint8_t *rebuilt;
			int64_t z;
			if (left < 18)
				return slotsync_error_set(err, -EBADMSG, "%s: block record at %zu cut short", what, at);
			variant = x[at + 1];
			csize = io_get_le32(x + at + 2);
			skip = io_get_le32(x + at + 6);
			take = io_get_le32(x + at + 10);
			len = io_get_le32(x + at + 14);
			if (kind == 3) {
				nb = left >= 22 ? io_get_le32(x + at + 18) : UINT32_MAX;
				if (nb > SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX || (left - 22) / 4 < nb)
					return slotsync_error_set(err, -EBADMSG, "%s: deflate record at %zu cut short", what,
								  at);
				for (uint32_t i = 0; i < nb; i++)
					dec->bounds[i] = io_get_le32(x + at + 22 + 4 * (size_t)i);
				hdr = 22 + 4 * (size_t)nb;
			}
			content = x + at + hdr;
			if (codec == SLOTSYNC_DELTA_BLOCKS) {
				content_max = pr->block_max;
				cap = kind == 3 ? SLOTSYNC_DELTA_DEFLATE_CAP(pr->block_max) : pr->block_max;
			} else {
				content_max = SLOTSYNC_DELTA_FRAME_MAX;
				cap = ZSTD_COMPRESSBOUND(SLOTSYNC_DELTA_FRAME_MAX);
			}
			if (len > content_max || len > left - hdr || csize > cap || take == 0 || skip > csize ||
			    take > csize - skip || take > out_len - o ||
			    (codec != SLOTSYNC_DELTA_BLOCKS &&
			     (variant < 1 || variant > SLOTSYNC_DELTA_FRAME_LEVEL_MAX)) ||
			    (pr->comp != SLOTSYNC_DELTA_COMP_NONE &&
			     (variant >= 32 || !(pr->variants & (UINT32_C(1) << variant)))))
				return slotsync_error_set(err, -EBADMSG,
							  "%s: block record at %zu out of bounds "
							  "(variant %u, %u bytes, %u compressed, %u+%u taken)",
							  what, at, variant, len, csize, skip, take);
			if (skip > 0 && o != 0)
				return slotsync_error_set(err, -EBADMSG,
							  "%s: block record at %zu skips %u bytes of its block but does not "
							  "start the output",
							  what, at, skip);
			if (skip + take < csize && o + take != out_len)
				return slotsync_error_set(err, -EBADMSG,
							  "%s: block record at %zu leaves bytes of its block off but does "
							  "not end the output",
							  what, at);
			if (codec == SLOTSYNC_DELTA_BLOCKS) {
				rebuilt = dec->block;
				z = slotsync_delta_deflate_compress(dec->bc, pr, variant, dec->bounds, nb, content, len,
								    rebuilt, cap, err);
				if (z < 0)
					return z == -EINVAL ? -EBADMSG : (int)z;
				if (z != csize)
					return slotsync_error_set(err, -EBADMSG,
								  "blocks object: a block compressed again gives %" PRId64
								  " bytes, not %u (this device compresses otherwise than the "
								  "generator's %s)",
								  z, csize, pr->library[0] ? pr->library : "compressor");
			} else {
				size_t zz = ZSTD_compressCCtx(dec->cctx, dec->frame, cap, content, len, (int)variant);
				rebuilt = dec->frame;
				if (ZSTD_isError(zz) || zz != csize)
					return slotsync_error_set(err, -EBADMSG,
								  "zstd-frames object: a frame compressed again at level %u "
								  "gives %zu bytes, not %u (this libzstd %s compresses "
								  "otherwise)",
								  variant, ZSTD_isError(zz) ? (size_t)0 : zz, csize,
								  ZSTD_versionString());
			}
			memcpy(out + o, rebuilt + skip, take);
			o += take;
			at += hdr + len;
		} else
			return slotsync_error_set(err, -EBADMSG, "%s: unknown record %u at %zu", what, x[at], at);
	}
	if (o != out_len)
		return slotsync_error_set(err, -EBADMSG, "%s gives %zu bytes, %zu expected", what, o, out_len);
	return 0;
}

/* RESIDUAL's layout: k alignments (i32) at al, one selector per 64-byte block
 * of the output at sel, then the residual; output = prediction + residual,
 * byte by byte.  out may be the residual itself: each byte is rebuilt from its
 * own residual byte and the reference. */
static int residual_rebuild(const uint8_t *al, size_t k, const uint8_t *sel, const uint8_t *ref, size_t ref_len,
			    uint8_t *out, size_t out_len, const char *what, struct slotsync_error *err)
{
	int32_t align[SLOTSYNC_DELTA_ALIGN_MAX];
	size_t blocks = (out_len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK;
	const uint8_t *res = sel + blocks;

	for (size_t i = 0; i < k; i++)
		align[i] = (int32_t)io_get_le32(al + 4 * i);
	for (size_t b = 0; b < blocks; b++) {
		size_t at = b * SLOTSYNC_DELTA_BLOCK,
		       end = at + SLOTSYNC_DELTA_BLOCK < out_len ? at + SLOTSYNC_DELTA_BLOCK : out_len;
		if (sel[b] == 0xff) {
			memmove(out + at, res + at, end - at);
			continue;
		}
		if (sel[b] >= k)
			return slotsync_error_set(err, -EBADMSG, "%s block %zu selects alignment %u of %zu", what, b, sel[b],
						  k);
		for (size_t i = at; i < end; i++) {
			int64_t src = (int64_t)align[sel[b]] + (int64_t)i;
			uint8_t pred = src >= 0 && (uint64_t)src < ref_len ? ref[src] : 0;
			out[i] = (uint8_t)(res[i] + pred);
		}
	}
	return 0;
}

/* ZSTD_FRAMES: the records against the expanded reference, then the output. */
static int frames_decode(struct slotsync_delta_decoder *dec, const void *payload, size_t payload_len, const void *ref,
			 size_t ref_len, uint8_t *out, size_t out_len, struct slotsync_error *err)
{
	size_t xref_len;
	int64_t n;
	int r = frames_setup(dec, err);

	if (r < 0)
		return r;
	xref_len = slotsync_delta_expand(dec->fdctx, ref, ref_len, dec->xref, SLOTSYNC_DELTA_XREF_MAX);
	n = records_decode(dec, payload, payload_len, dec->xref, xref_len, dec->scratch, SLOTSYNC_DELTA_XOUT_MAX, err);
	if (n < 0)
		return (int)n;
	return records_apply(dec, SLOTSYNC_DELTA_ZSTD_FRAMES, dec->scratch, (size_t)n, out, out_len, err);
}

/* BLOCKS: the map, the reference expanded by it, the records against that. */
static int blocks_decode(struct slotsync_delta_decoder *dec, const uint8_t *payload, size_t payload_len,
			 const uint8_t *ref, size_t ref_len, uint8_t *out, size_t out_len, struct slotsync_error *err)
{
	const struct slotsync_delta_profile *pr = &dec->profile;
	const size_t map_cap = 4 + (size_t)SLOTSYNC_DELTA_MAP_MAX * MAP_ENTRY_BYTES;
	unsigned long long declared;
	size_t m, rest, nmap, map_len, o = 0, at = 0;
	int64_t n;
	int r, resid;

	if (pr->comp != SLOTSYNC_DELTA_COMP_GZIP && pr->comp != SLOTSYNC_DELTA_COMP_XZ &&
	    pr->comp != SLOTSYNC_DELTA_COMP_LZ4 && pr->comp != SLOTSYNC_DELTA_COMP_DEFLATE)
		return slotsync_error_set(err, -EINVAL,
					  "blocks object without a gzip, xz, lz4 or deflate compression profile");
	r = frames_setup(dec, err);
	if (r < 0)
		return r;
	if (!dec->bc)
		dec->bc = slotsync_delta_block_coder_new();
	if (!dec->map)
		dec->map = malloc(map_cap);
	if (!dec->block)
		dec->block = malloc(SLOTSYNC_DELTA_DEFLATE_CAP(SLOTSYNC_DELTA_PROFILE_BLOCK_MAX));
	if (!dec->bounds && pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE)
		dec->bounds = malloc(SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX * sizeof(*dec->bounds));
	if (!dec->bc || !dec->map || !dec->block || (pr->comp == SLOTSYNC_DELTA_COMP_DEFLATE && !dec->bounds))
		return slotsync_error_set(err, -ENOMEM, "out of memory for a blocks object");
	/* 1. the map */
	m = ZSTD_findFrameCompressedSize(payload, payload_len);
	declared = ZSTD_getFrameContentSize(payload, payload_len);
	if (ZSTD_isError(m) || declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
	    declared > map_cap || declared < 4)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its map is not a zstd frame of at most %zu bytes",
					  map_cap);
	ZSTD_DCtx_reset(dec->dctx, ZSTD_reset_session_only);
	map_len = ZSTD_decompressDCtx(dec->dctx, dec->map, map_cap, payload, m);
	if (ZSTD_isError(map_len) || map_len != declared)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its map does not decode");
	nmap = io_get_le32(dec->map);
	resid = (nmap & SLOTSYNC_DELTA_MAP_RESIDUAL) != 0;
	nmap &= ~(size_t)SLOTSYNC_DELTA_MAP_RESIDUAL;
	if (nmap > SLOTSYNC_DELTA_MAP_MAX || map_len != 4 + nmap * MAP_ENTRY_BYTES)
		return slotsync_error_set(err, -EBADMSG, "blocks object: a map of %zu bytes for %zu blocks", map_len, nmap);
	/* every entry checked before any block is decompressed */
	for (size_t i = 0; i < nmap; i++) {
		const uint8_t *e = dec->map + 4 + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		if (off < at || csize == 0 || (uint64_t)off + csize > ref_len || usize == 0 || usize > pr->block_max)
			return slotsync_error_set(err, -EBADMSG,
						  "blocks object: map entry %zu (%u bytes at %u, %u expanded) out of order or "
						  "out of the reference",
						  i, csize, off, usize);
		o += (off - at) + usize;
		at = (size_t)off + csize;
	}
	if (o + (ref_len - at) > SLOTSYNC_DELTA_XREF_MAX)
		return slotsync_error_set(err, -EFBIG, "blocks object: its expanded reference is over %u bytes",
					  SLOTSYNC_DELTA_XREF_MAX);
	/* 2. the expanded reference */
	o = 0;
	at = 0;
	for (size_t i = 0; i < nmap; i++) {
		const uint8_t *e = dec->map + 4 + i * MAP_ENTRY_BYTES;
		uint32_t off = io_get_le32(e), csize = io_get_le32(e + 4), usize = io_get_le32(e + 8);
		struct slotsync_error e2 = { 0 };
		memcpy(dec->xref + o, ref + at, off - at);
		o += off - at;
		r = slotsync_delta_block_decompress(dec->bc, pr, ref + off, csize, dec->xref + o, usize, &e2);
		if (r < 0)
			return slotsync_error_set(err, r == -ENOTSUP ? r : -EBADMSG, "blocks object: map entry %zu: %s", i,
						  slotsync_error_message(&e2));
		o += usize;
		at = (size_t)off + csize;
	}
	memcpy(dec->xref + o, ref + at, ref_len - at);
	o += ref_len - at;
	/* 3. the records: one zstd frame or one xz stream, the rest of the object */
	rest = payload_len - m >= sizeof(xz_magic) && memcmp(payload + m, xz_magic, sizeof(xz_magic)) == 0
		       ? payload_len - m
		       : ZSTD_findFrameCompressedSize(payload + m, payload_len - m);
	if (ZSTD_isError(rest) || rest != payload_len - m)
		return slotsync_error_set(err, -EBADMSG, "blocks object: its records are not one zstd frame or xz stream");
	if (!resid) {
		n = records_decode(dec, payload + m, payload_len - m, dec->xref, o, dec->scratch, SLOTSYNC_DELTA_XOUT_MAX,
				 err);
		if (n < 0)
			return (int)n;
		return records_apply(dec, SLOTSYNC_DELTA_BLOCKS, dec->scratch, (size_t)n, out, out_len, err);
	}
	/* residual records: k, k alignments, the records' length, selectors, residual */
	if (scratch_reserve(dec, SLOTSYNC_DELTA_RESID_RECORDS_MAX) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory for a blocks object");
	n = records_decode(dec, payload + m, payload_len - m, dec->xref, o, dec->scratch, SLOTSYNC_DELTA_RESID_RECORDS_MAX,
			   err);
	if (n < 0)
		return (int)n;
	{
		const uint8_t *x = dec->scratch;
		size_t k = n > 0 ? x[0] : 0, head = 1 + 4 * k, len, blocks;
		if (k == 0 || k > SLOTSYNC_DELTA_ALIGN_MAX || (size_t)n < head + 4)
			return slotsync_error_set(err, -EBADMSG, "blocks object: residual records without their alignments");
		len = io_get_le32(x + head);
		blocks = (len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK;
		if (len == 0 || len > SLOTSYNC_DELTA_XOUT_MAX || (size_t)n != head + 4 + blocks + len)
			return slotsync_error_set(err, -EBADMSG,
						  "blocks object: residual records of %" PRId64 " bytes do not fit %zu "
						  "bytes of records",
						  n, len);
		r = residual_rebuild(x + 1, k, x + head + 4, dec->xref, o, dec->scratch + head + 4 + blocks, len,
				     "blocks object: residual", err);
		if (r < 0)
			return r;
		return records_apply(dec, SLOTSYNC_DELTA_BLOCKS, x + head + 4 + blocks, len, out, out_len, err);
	}
}

int slotsync_delta_decode(struct slotsync_delta_decoder *dec, int codec, const void *payload, size_t payload_len,
			  const void *ref, size_t ref_len, void *out, size_t out_len, struct slotsync_error *err)
{
	size_t blocks = (out_len + SLOTSYNC_DELTA_BLOCK - 1) / SLOTSYNC_DELTA_BLOCK, cap, k, head;
	const uint8_t *r = ref;
	uint8_t *o = out;
	int64_t n;

	if (out_len > SLOTSYNC_DELTA_OUT_MAX || ref_len > SLOTSYNC_DELTA_REF_MAX)
		return slotsync_error_set(err, -EFBIG, "delta object over the limits");
	if (codec == SLOTSYNC_DELTA_ZSTD_REF) {
		n = records_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
		if (n < 0)
			return (int)n;
		if ((size_t)n != out_len)
			return slotsync_error_set(err, -EBADMSG, "object decodes to %" PRId64 " bytes, %zu expected", n,
						  out_len);
		return 0;
	}
	if (codec == SLOTSYNC_DELTA_ZSTD_FRAMES)
		return frames_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
	if (codec == SLOTSYNC_DELTA_BLOCKS)
		return blocks_decode(dec, payload, payload_len, ref, ref_len, out, out_len, err);
	if (codec != SLOTSYNC_DELTA_RESIDUAL)
		return slotsync_error_set(err, -EBADMSG, "unknown delta codec %d", codec);
	cap = 1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + blocks + out_len;
	if (scratch_reserve(dec, cap) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	n = frame_decode(dec, payload, payload_len, ref, ref_len, dec->scratch, cap, err);
	if (n < 0)
		return (int)n;
	k = n > 0 ? dec->scratch[0] : 0;
	head = 1 + 4 * k;
	if (k == 0 || k > SLOTSYNC_DELTA_ALIGN_MAX || (size_t)n != head + blocks + out_len)
		return slotsync_error_set(err, -EBADMSG, "residual object of %" PRId64 " bytes does not fit %zu output bytes",
					  n, out_len);
	return residual_rebuild(dec->scratch + 1, k, dec->scratch + head, r, ref_len, o, out_len, "residual", err);
}
