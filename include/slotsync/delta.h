/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — delta objects and the delta index (docs/format.md, "Delta objects").
 *
 * For a new release and a base release a device may run, the build server
 * publishes delta objects: each rebuilds a run of consecutive chunks of the new
 * image (chunks the base lacks) from a small payload and a reference: a few
 * ranges of the base image that resemble those chunks.  The device reads the
 * reference from its active slot, each base chunk checked against the base
 * index as it is read, decodes, and checks every output chunk against the new
 * index before it writes it.
 *
 * The delta index of a (base, new) pair lists the objects; its file is one
 * zstd frame of this layout, integers little-endian:
 *
 *   HEADER   magic "SSDELTA2", base index digest[32], new index digest[32],
 *            base image size u64, new image size u64, n_objects u32, n_refs u32
 *   OBJECTS  n_objects x { id[32], size u32, codec u8, flags u8, pad[2],
 *            first u32, count u32, ref_first u32, ref_count u32 }  (60 bytes)
 *   REFS     n_refs x { chunk u32, offset u32, length u32 }
 *   PROFILE  comp u8, pad[3], level u32, window u32, variants u32,
 *            block_max u32, library[32] (NUL-padded), sample[32] (84 bytes)
 *   TAIL     SHA-256 of everything before it
 *
 * "SSDELTA1" is the same without PROFILE (read as comp 0).  "SSDELTA3" has
 * a second PROFILE after the first, the inner profile (below); a writer
 * writes SSDELTA3 when its inner profile has a compressor, else SSDELTA2.
 * flags: bit 0 (SLOTSYNC_DELTA_OBJ_XZ), the object's records are an xz
 * stream (below), which a device without liblzma cannot decode: it fetches
 * that object's chunks instead; bit 1 (SLOTSYNC_DELTA_OBJ_INNER), the object
 * needs the inner profile.  Readers ignore the other bits.
 *
 * An object's reference is the concatenation of its ranges in order; a range
 * starts `offset` bytes into a chunk and may run on into the chunks after it.
 * The chunk is one of the base image (bit 31 of `chunk` clear), or, bit 31
 * set, one of the new image that lies wholly before the object's output: a
 * range of the slot being written, already rebuilt (context across objects:
 * new files resemble each other more than anything in the base).  A device
 * applies objects with such ranges after every other source, in order.
 * Objects are sorted by `first`, their outputs do not overlap.
 *
 * Codecs (the object file is one zstd frame; the reference is its raw-content
 * prefix dictionary, ZSTD_DCtx_refPrefix):
 *   ZSTD_REF   the frame decodes to the output.
 *   RESIDUAL   the frame decodes to: K u8 (1..SLOTSYNC_DELTA_ALIGN_MAX), K x
 *              i32 alignments, one selector u8 per 64-byte block of the
 *              output, then the residual (as long as the output).  A block
 *              with selector s < K is predicted by the reference bytes from
 *              alignment[s] on (bytes outside the reference predict 0);
 *              selector 0xff predicts zeros.  Output = prediction + residual,
 *              byte by byte, mod 256.
 *   ZSTD_FRAMES for images whose blocks are zstd frames (squashfs -comp zstd):
 *              the prefix is the reference expanded (every zstd frame in it
 *              replaced by its content, slotsync_delta_expand()), and the
 *              frame decodes to records, each
 *                0, u32 n, n bytes                    bytes of the output, or
 *                1, u8 level, u32 csize, u32 skip, u32 take, u32 n, n bytes
 *              a zstd frame: the n bytes compressed again in one call
 *              (ZSTD_compressCCtx) at `level` must give csize bytes, of
 *              which bytes skip .. skip+take-1 are output.  The records
 *              give the output exactly.  What differs in the old and new
 *              files is found in their content, not in compressed bytes that
 *              share nothing; it works where the device's libzstd compresses
 *              as the one that made the image did (the output's SHA-256
 *              checks tell, and the plain chunks are fetched if not).
 */
#ifndef SLOTSYNC_DELTA_H
#define SLOTSYNC_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_DELTA_MAGIC "SSDELTA2"
#define SLOTSYNC_DELTA_MAGIC_V1 "SSDELTA1"  /* read, never written */
#define SLOTSYNC_DELTA_MAGIC_V3 "SSDELTA3"  /* with an inner profile */
#define SLOTSYNC_DELTA_PROFILE_BYTES 84u
#define SLOTSYNC_DELTA_HEADER_BYTES 96u
#define SLOTSYNC_DELTA_OBJECT_BYTES 60u
#define SLOTSYNC_DELTA_REF_BYTES 12u
/* Limits a device relies on to bound its memory (checked on parse). */
#define SLOTSYNC_DELTA_OUT_MAX (1u << 20)   /* bytes an object rebuilds */
#define SLOTSYNC_DELTA_REF_MAX (4u << 20)   /* bytes of its reference */
#define SLOTSYNC_DELTA_REFS_MAX 256u         /* ranges per object */
#define SLOTSYNC_DELTA_ALIGN_MAX 64u        /* RESIDUAL alignments */
#define SLOTSYNC_DELTA_BLOCK 64u            /* RESIDUAL block */
/* Window a decoder must allow: reference + output. */
#define SLOTSYNC_DELTA_WINDOW_LOG 23
/* ZSTD_FRAMES: a zstd frame is expanded (reference) or rebuilt (output) only
 * if its content is at most FRAME_MAX bytes (squashfs blocks are 128 KiB by
 * default) and level <= FRAME_LEVEL_MAX: so the compressor a device needs
 * stays under 3 MiB.  The expanded reference is cut at XREF_MAX, the decoded
 * records may not exceed XOUT_MAX. */
#define SLOTSYNC_DELTA_FRAME_MAX (256u << 10)
#define SLOTSYNC_DELTA_FRAME_WINDOW_LOG 20   /* a frame needing more is not expanded */
#define SLOTSYNC_DELTA_FRAME_LEVEL_MAX 19
#define SLOTSYNC_DELTA_XREF_MAX (4u << 20)
#define SLOTSYNC_DELTA_XOUT_MAX (4u << 20)

enum slotsync_delta_codec {
	SLOTSYNC_DELTA_ZSTD_REF = 1,
	SLOTSYNC_DELTA_RESIDUAL = 2,
	SLOTSYNC_DELTA_ZSTD_FRAMES = 3,
	SLOTSYNC_DELTA_BLOCKS = 4,
};

/* BLOCKS (codec 4), for images whose blocks are gzip, xz, lz4 or zstd (squashfs
 * -comp gzip|xz|lz4|zstd; zstd only in an SSDELTA3 index, which a writer
 * makes of an index with such objects).  The object file is two zstd frames:
 *   1. the map (no dictionary): u32 n, n x { u32 offset, u32 csize, u32 usize }:
 *      compressed blocks of the reference, offset ascending, disjoint, inside
 *      it, usize <= the profile's block_max.  The expanded reference is the
 *      reference with each mapped block replaced by its content (decompressed
 *      into exactly usize bytes, or the object is refused), at most
 *      SLOTSYNC_DELTA_XREF_MAX bytes.
 *   2. the records, with the expanded reference as raw-content prefix, at most
 *      SLOTSYNC_DELTA_XOUT_MAX bytes:
 *        0, u32 n, n bytes                                   bytes of the output
 *        2, u8 variant, u32 csize, u32 skip, u32 take, u32 n, n bytes
 *      a block: the n content bytes compressed with the profile and that
 *      variant (into a buffer of block_max bytes, as mksquashfs does) must give
 *      csize bytes; bytes skip .. skip+take-1 of them are output.
 *        3, u8 variant, u32 csize, u32 skip, u32 take, u32 n, u32 nb,
 *           nb x u32 block length, n bytes
 *      a deflate stream (profile SLOTSYNC_DELTA_COMP_DEFLATE only, where 2 is
 *      refused): the n content bytes compressed by
 *      slotsync_delta_deflate_compress() with those block lengths must give
 *      csize bytes (at most SLOTSYNC_DELTA_DEFLATE_CAP(block_max)).
 * The records of a BLOCKS or ZSTD_FRAMES object, and the output of a ZSTD_REF
 * one, may instead be one .xz stream (magic FD 37 7A 58 5A 00; the object's
 * flag SLOTSYNC_DELTA_OBJ_XZ says so in the index) without the reference:
 * new content that resembles nothing in the base (a new library) is a sixth
 * smaller so than as zstd, more with the BCJ filter of its machine code (the
 * generator gives such objects no ranges, and a BLOCKS one an empty map).  A
 * device decodes it with at most SLOTSYNC_DELTA_XZ_MEM_MAX bytes of liblzma
 * memory, or refuses it.
 * With bit 31 of the map's n set, the records frame decodes instead to their
 * residual, as RESIDUAL codes an output: K u8 (1..ALIGN_MAX), K x i32
 * alignments into the expanded reference, u32 r (the records' length, 1..
 * XOUT_MAX), one selector per 64-byte block of the records, then r residual
 * bytes; records = prediction + residual.  Code that moved and changed only
 * in its addresses costs little so (RESIDUAL's case, inside the blocks).
 * Bounded work, for the block records of BLOCKS and the frame records of
 * ZSTD_FRAMES: a record with skip > 0 must start the output, one with
 * skip + take < csize must end it; so the blocks compressed tile the output,
 * and at most one block at each end is compressed for bytes not output.
 *
 * Gzip files inside the blocks (an index with an inner deflate profile, a
 * gzip, xz, lz4 or zstd outer one; objects flagged SLOTSYNC_DELTA_OBJ_INNER):
 *   - with bit 30 of the map's n set (SLOTSYNC_DELTA_MAP_INNER), the map's
 *     entries are followed by u32 m (at most SLOTSYNC_DELTA_INNER_MAX), m x
 *     { u32 offset, u32 csize, u32 usize }: raw deflate streams inside the
 *     expanded reference, offset ascending, disjoint, each inflated into
 *     exactly usize bytes (<= the inner profile's block_max, all its csize
 *     bytes used) and appended to it, in order (the whole within XREF_MAX);
 *   - a nested block record gives a block whose content holds deflate
 *     streams:
 *        4, u8 variant, u32 csize, u32 skip, u32 take, u32 n, then records
 *     0 (bytes) and 3 (deflate, with the inner profile: its variants, its
 *     block_max) whose outputs make the n content bytes, as records make an
 *     output (a deflate record with skip > 0 starts the content, one with
 *     skip + take < csize ends it); the content is then compressed as a
 *     record 2's, and bytes skip .. skip+take-1 are output;
 *   - a deflate record (3, with the inner profile) may also stand among the
 *     records themselves: a gzip file in bytes the image stores as they are
 *     (a block that did not shrink), output as a bytes record would be. */
#define SLOTSYNC_DELTA_MAP_MAX 16384u        /* blocks in a map */
#define SLOTSYNC_DELTA_OBJ_XZ 1u             /* an object's flags: its records are an xz stream */
#define SLOTSYNC_DELTA_XZ_DICT_MAX (1u << 20) /* the xz dictionary a generator uses at most */
#define SLOTSYNC_DELTA_XZ_MEM_MAX (SLOTSYNC_DELTA_XZ_DICT_MAX + (256u << 10)) /* liblzma's memory, decoding */
#define SLOTSYNC_DELTA_MAP_RESIDUAL (1u << 31) /* in the map's n: the records are residual-coded */
#define SLOTSYNC_DELTA_MAP_INNER (1u << 30)    /* in the map's n: inner deflate streams follow the entries */
#define SLOTSYNC_DELTA_INNER_MAX 4096u         /* inner deflate streams in a map */
#define SLOTSYNC_DELTA_OBJ_INNER 2u            /* an object's flags: it needs the inner profile */
/* The most residual records may decode to: K, alignments, length, selectors, residual */
#define SLOTSYNC_DELTA_RESID_RECORDS_MAX                                                                           \
	(1 + 4 * SLOTSYNC_DELTA_ALIGN_MAX + 4 + SLOTSYNC_DELTA_XOUT_MAX / SLOTSYNC_DELTA_BLOCK + SLOTSYNC_DELTA_XOUT_MAX)

/* Compressors, by squashfs's ids (2, lzma, never; 3, lzo, not built). */
enum slotsync_delta_comp {
	SLOTSYNC_DELTA_COMP_NONE = 0,
	SLOTSYNC_DELTA_COMP_GZIP = 1,
	SLOTSYNC_DELTA_COMP_LZO = 3,
	SLOTSYNC_DELTA_COMP_XZ = 4,
	SLOTSYNC_DELTA_COMP_LZ4 = 5,
	SLOTSYNC_DELTA_COMP_ZSTD = 6,
	/* not squashfs's: raw deflate streams (the content of gzip files) in
	 * the bytes of an image whose blocks are not compressed */
	SLOTSYNC_DELTA_COMP_DEFLATE = 16,
};
#define SLOTSYNC_DELTA_XZ_EXTREME (UINT32_C(1) << 31)  /* in an xz profile's level */
#define SLOTSYNC_DELTA_PROFILE_BLOCK_MAX (1u << 20)   /* squashfs's largest block */
/* DEFLATE: variant v is zlib level 9 - v / 2 with memLevel 8 + v % 2 (v < 18);
 * a record ends at most DEFLATE_BOUNDS_MAX deflate blocks before its last and
 * compresses into at most DEFLATE_CAP(block_max) bytes. */
#define SLOTSYNC_DELTA_DEFLATE_VARIANTS 18u
#define SLOTSYNC_DELTA_DEFLATE_BOUNDS_MAX 4096u
#define SLOTSYNC_DELTA_DEFLATE_CAP(n) ((n) + (n) / 8 + 1024u)
/* A device refuses a profile whose compressor would need more memory. */
#define SLOTSYNC_DELTA_CODER_MEM_MAX (12u << 20)

/* How the objects' blocks are compressed (the image's compressor and its
 * options), and a digest of the sample compressed so. */
struct slotsync_delta_profile {
	uint8_t comp;          /* enum slotsync_delta_comp; 0: none */
	uint32_t level;        /* gzip 1-9; xz preset 0-9, | SLOTSYNC_DELTA_XZ_EXTREME;
	                          lz4: 0 = LZ4_compress_default, else the LZ4HC level (1-12);
	                          zstd, deflate: 0 (their levels are in variants) */
	uint32_t window;       /* gzip: windowBits 8-15; xz: dictionary size (4 KiB..1 MiB);
	                          deflate: 15; else 0 */
	uint32_t variants;     /* bitmask of what a block may be compressed with:
	                          gzip: bit s = deflate strategy s (0 default .. 4 Z_FIXED);
	                          xz: bit 0 no filter, bits 1..6 the BCJ filters x86, powerpc,
	                              ia64, arm, armthumb, sparc (mksquashfs's order);
	                          lz4: bit 0 only; zstd: bit l = level l (1..19);
	                          deflate: bit v = level 9 - v / 2, memLevel 8 + v % 2 */
	uint32_t block_max;    /* largest content of a block (the squashfs block size, <= 1 MiB) */
	char library[32];      /* "zlib 1.2.13", "liblzma 5.4.1", ...: for reports, NUL-terminated */
	uint8_t sample[SLOTSYNC_DIGEST_BYTES]; /* SHA-256 of the sample compressed with every variant */
};

/* The sample a profile's digest is made of: SLOTSYNC_DELTA_SAMPLE_BYTES bytes,
 * always the same (docs/format.md, "The compression sample"). */
#define SLOTSYNC_DELTA_SAMPLE_BYTES 65536u
SLOTSYNC_EXPORT void slotsync_delta_sample(uint8_t *out);

/* The block compressors (engine/format/blocks.c), made on first use and kept
 * for the next block. */
struct slotsync_delta_block_coder;
SLOTSYNC_EXPORT struct slotsync_delta_block_coder *slotsync_delta_block_coder_new(void);
SLOTSYNC_EXPORT void slotsync_delta_block_coder_free(struct slotsync_delta_block_coder *bc);

/* Compresses in[0..len) as a squashfs block with profile p and variant v into
 * out (cap bytes), exactly as mksquashfs 4.5.1 does with the same options:
 * returns the size, 0 if it does not fit, or -errno (an unsupported
 * compressor: -ENOTSUP, with err naming it; a variant not in p->variants or a
 * profile out of range: -EINVAL). */
SLOTSYNC_EXPORT int64_t slotsync_delta_block_compress(struct slotsync_delta_block_coder *bc,
						      const struct slotsync_delta_profile *p, unsigned variant,
						      const void *in, size_t len, void *out, size_t cap,
						      struct slotsync_error *err);
/* DEFLATE: in[0..len) as one raw deflate stream (windowBits 15, the default
 * strategy) with variant v, a deflate block ended (zlib's Z_BLOCK) after each
 * of the nb lengths in bounds and the last at the end: so a gzip file whose
 * blocks gzip ended by its own rule is made again block by block.  The
 * lengths must each be at least 1 and leave at least 1 byte for the last
 * block (else -EINVAL).  Returns as slotsync_delta_block_compress(). */
SLOTSYNC_EXPORT int64_t slotsync_delta_deflate_compress(struct slotsync_delta_block_coder *bc,
							const struct slotsync_delta_profile *p, unsigned variant,
							const uint32_t *bounds, size_t nb, const void *in,
							size_t len, void *out, size_t cap, struct slotsync_error *err);
/* Decompresses a block into exactly usize bytes (another size, or any error:
 * -EBADMSG). */
SLOTSYNC_EXPORT int slotsync_delta_block_decompress(struct slotsync_delta_block_coder *bc,
						    const struct slotsync_delta_profile *p, const void *in, size_t len,
						    void *out, size_t usize, struct slotsync_error *err);
/* Whether this build compresses like the generator did: compresses the sample
 * with every variant; 0 yes, -EPROTO no (err says which library and version
 * here and there), -ENOTSUP compressor not built in. */
SLOTSYNC_EXPORT int slotsync_delta_profile_probe(struct slotsync_delta_block_coder *bc,
						 const struct slotsync_delta_profile *p, struct slotsync_error *err);
/* Fills p->sample and p->library (the generator). */
SLOTSYNC_EXPORT int slotsync_delta_profile_seal(struct slotsync_delta_block_coder *bc,
						struct slotsync_delta_profile *p, struct slotsync_error *err);
/* Checks a profile's fields (as the parser does): 0 or -EBADMSG. */
SLOTSYNC_EXPORT int slotsync_delta_profile_check(const struct slotsync_delta_profile *p, struct slotsync_error *err);
/* Whether blocks objects may have a profile of compressor comp: gzip, xz,
 * lz4 and deflate in any index, zstd in an SSDELTA3 index (v3) only. */
static inline int slotsync_delta_blocks_comp(uint32_t comp, int v3)
{
	return comp == SLOTSYNC_DELTA_COMP_GZIP || comp == SLOTSYNC_DELTA_COMP_XZ || comp == SLOTSYNC_DELTA_COMP_LZ4 ||
	       comp == SLOTSYNC_DELTA_COMP_DEFLATE || (comp == SLOTSYNC_DELTA_COMP_ZSTD && v3);
}

/* Pack objects (docs/format.md, "Pack objects"): a release's chunks in runs,
 * each run one ZSTD_REF object with no reference, for a device with no usable
 * base.  Their delta index names no base: its base digest is all zero, its
 * base size 0, it has no ranges and only ZSTD_REF objects; its path is
 * deltas/<64 zeros>/<new index hex>.sdix. */
static inline int slotsync_delta_base_is_none(const uint8_t digest[SLOTSYNC_DIGEST_BYTES])
{
	uint8_t any = 0;

	for (size_t i = 0; i < SLOTSYNC_DIGEST_BYTES; i++)
		any |= digest[i];
	return any == 0;
}

#define SLOTSYNC_DELTA_REF_NEW (UINT32_C(1) << 31)

struct slotsync_delta_ref {
	uint32_t chunk;                      /* of the base image, or of the new one (target) */
	uint32_t offset;
	uint32_t length;
	uint8_t target;                      /* 1: a range of the new image, before the output */
};

struct slotsync_delta_object {
	uint8_t id[SLOTSYNC_DIGEST_BYTES];  /* SHA-256 of the object file */
	uint32_t size;                       /* bytes of the object file */
	uint8_t codec;
	uint8_t flags;                       /* SLOTSYNC_DELTA_OBJ_XZ, SLOTSYNC_DELTA_OBJ_INNER */
	uint32_t first, count;               /* output: chunks first .. first+count-1 of the new index */
	uint32_t ref_first, ref_count;       /* into refs[] */
};

struct slotsync_delta_index {
	uint8_t base_digest[SLOTSYNC_DIGEST_BYTES];
	uint8_t new_digest[SLOTSYNC_DIGEST_BYTES];
	uint64_t base_size, new_size;
	uint32_t n_objects, n_refs;
	struct slotsync_delta_object *objects;
	struct slotsync_delta_ref *refs;
	struct slotsync_delta_profile profile; /* SSDELTA1: all zero */
	/* SSDELTA3: how the deflate streams of gzip files inside the blocks are
	 * compressed (comp SLOTSYNC_DELTA_COMP_DEFLATE); else all zero */
	struct slotsync_delta_profile inner;
};

/* Parses a delta index; checks its tail digest, the limits above, and that
 * objects are sorted and disjoint.  Checks against the two indexes (chunk
 * numbers, sizes) are the caller's: slotsync_delta_index_check(). */
SLOTSYNC_EXPORT int slotsync_delta_index_parse(const uint8_t *buf, size_t len, struct slotsync_delta_index **out,
			       struct slotsync_error *err);
struct slotsync_index;
/* Checks a parsed delta index against the base and new indexes: digests,
 * sizes, every output and reference inside its image, output and reference
 * sizes within the limits.  base NULL (and base_digest all zero): a pack
 * index, which must name no base and hold only ZSTD_REF objects with no
 * ranges. */
SLOTSYNC_EXPORT int slotsync_delta_index_check(const struct slotsync_delta_index *d, const struct slotsync_index *base,
			       const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES], const struct slotsync_index *new_idx,
			       const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_delta_index_serialize(const struct slotsync_delta_index *d, uint8_t **out, size_t *out_len,
				   struct slotsync_error *err);

/* The .sdix file: the serialized index as one zstd frame with its content
 * size.  load() decompresses (at most SLOTSYNC_DELTA_INDEX_MAX bytes, a frame
 * that declares more or no size is refused) and parses. */
#define SLOTSYNC_DELTA_INDEX_MAX (64u << 20)
SLOTSYNC_EXPORT int slotsync_delta_index_pack(const struct slotsync_delta_index *d, uint8_t **out, size_t *out_len,
			      struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_delta_index_load(const uint8_t *file, size_t len, struct slotsync_delta_index **out,
			      struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_delta_index_free(struct slotsync_delta_index *d);

/* Whether object o has a range of the new image in its reference. */
SLOTSYNC_EXPORT int slotsync_delta_object_uses_target(const struct slotsync_delta_index *d, const struct slotsync_delta_object *o);

/* Bytes the reference of object o spans. */
SLOTSYNC_EXPORT uint64_t slotsync_delta_ref_bytes(const struct slotsync_delta_index *d, const struct slotsync_delta_object *o);

/* Store path of the delta index of (base, new), relative to the store:
 * "deltas/<base digest hex>/<new digest hex>.sdix" (buf >= 160 bytes). */
SLOTSYNC_EXPORT void slotsync_delta_index_path(const uint8_t base_digest[SLOTSYNC_DIGEST_BYTES],
			       const uint8_t new_digest[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap);
/* Store path of an object: "<4 hex>/<64 hex>.sdob" (buf >= 80 bytes). */
SLOTSYNC_EXPORT void slotsync_delta_object_path(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char *buf, size_t cap);

struct slotsync_delta_decoder;
SLOTSYNC_EXPORT struct slotsync_delta_decoder *slotsync_delta_decoder_new(void);
SLOTSYNC_EXPORT void slotsync_delta_decoder_free(struct slotsync_delta_decoder *dec);
/* The profile the index's objects are decoded with (copied): BLOCKS objects
 * need one; ZSTD_FRAMES objects, given a zstd profile, may use only its
 * levels. */
SLOTSYNC_EXPORT void slotsync_delta_decoder_set_profile(struct slotsync_delta_decoder *dec,
							const struct slotsync_delta_profile *p);
/* The index's inner profile (copied; NULL: none): BLOCKS objects with inner
 * deflate streams or nested block records need a deflate one. */
SLOTSYNC_EXPORT void slotsync_delta_decoder_set_inner_profile(struct slotsync_delta_decoder *dec,
							      const struct slotsync_delta_profile *p);

/* The zstd frame that starts at p, if expansion would take it: its magic, a
 * declared content size of at most SLOTSYNC_DELTA_FRAME_MAX, and all of it
 * within len.  Returns its compressed size (and *content its content size),
 * or 0.  Whether it decodes is for the caller to see. */
SLOTSYNC_EXPORT size_t slotsync_delta_frame_at(const uint8_t *p, size_t len, size_t *content);

/* Expands in[0..len) into out (at most cap bytes): bytes are copied, except
 * that each zstd frame (slotsync_delta_frame_at(), scanning on from its end)
 * that decodes to its declared size is replaced by its content.  A frame
 * whose content no longer fits, or whose window is over
 * 2^SLOTSYNC_DELTA_FRAME_WINDOW_LOG, is copied as it is; copying stops when
 * out is full.  Returns the bytes written.  dctx: a ZSTD_DCtx, reset and set
 * up here, so that every side expands alike. */
SLOTSYNC_EXPORT size_t slotsync_delta_expand(void *dctx, const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Decodes one object: exactly out_len bytes into out, or an error (a frame
 * that would produce more or less, a malformed residual header or record, a
 * frame that does not compress again as recorded, a zstd error).  ref is the
 * reference as read from the slot.  Memory is bounded by out_len,
 * SLOTSYNC_DELTA_WINDOW_LOG and, for ZSTD_FRAMES, XREF_MAX + XOUT_MAX +
 * a compressor for FRAME_MAX bytes; for BLOCKS (which needs the profile,
 * slotsync_delta_decoder_set_profile(): -EINVAL without), also the map
 * (MAP_MAX entries), a block of PROFILE_BLOCK_MAX and the profile's
 * compressor (at most CODER_MEM_MAX). */
SLOTSYNC_EXPORT int slotsync_delta_decode(struct slotsync_delta_decoder *dec, int codec, const void *payload, size_t payload_len,
			  const void *ref, size_t ref_len, void *out, size_t out_len, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
