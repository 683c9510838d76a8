/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen: the build server's operations, behind its thin CLI. */
#ifndef SLOTSYNC_GEN_H
#define SLOTSYNC_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "slotsync/chunker.h"
#include "slotsync/digest.h"
#include "slotsync/error.h"

struct slotsync_delta_index;

/* zstd level of chunk files, chosen by benchmark (docs/benchmarks.md). */
#define GEN_ZSTD_LEVEL_DEFAULT 3
/* Delta objects: zstd level and run length, chosen by benchmark. */
#define GEN_DELTA_LEVEL_DEFAULT 22
#define GEN_DELTA_RUN_MAX_DEFAULT (256 * 1024)
/* zstd level of the records of blocks and zstd-frames objects (the new
 * blocks' content, larger than the chunks, against prefixes up to 4 MiB):
 * level 19 makes them about 1-5 % smaller in twice the time
 * (docs/benchmarks.md), which breaks the 10 s a pair may take. */
#define GEN_DELTA_RECORDS_LEVEL_DEFAULT 12

struct gen_make_options {
	const char *store;                       /* NULL: index only */
	struct slotsync_chunker_params params;
	enum slotsync_digest_type digest;
	int threads;                             /* workers; <= 0: one per core */
	int level;
	int progress;                            /* draw a progress bar on stderr */
};

struct gen_make_stats {
	uint64_t chunks;
	uint64_t new_chunks;
	uint64_t bytes_in;
	uint64_t bytes_stored;  /* compressed bytes of new chunks */
	double seconds;
};

/* Chunks IMAGE, puts new chunks into the store, writes INDEX atomically. */
int gen_make(const char *image, const char *index_path, const struct gen_make_options *opt,
	     struct gen_make_stats *stats, struct slotsync_error *err);

struct gen_extract_stats {
	uint64_t chunks;
	uint64_t chunks_from_seed;
	uint64_t bytes_from_seed;
	uint64_t chunks_from_store;
	uint64_t bytes_from_store;
	uint64_t seed_chunks_rejected;  /* seed copies that failed their check */
	double seconds;
};

/* Rebuilds the image of INDEX into OUT from seeds first, then the store.
 * seeds[i]: "IMAGE[:INDEX]" (slotsync_seed_spec_parse), or, when seed_indexes[i]
 * is set, the image alone and that its index. */
int gen_extract(const char *store, const char *const *seeds, const char *const *seed_indexes, int n_seeds,
		const char *index_path, const char *out,
		struct gen_extract_stats *stats, struct slotsync_error *err);

struct gen_check_stats {
	uint64_t chunks;
	uint64_t bad;
	uint64_t temp_files;
	uint64_t missing;       /* chunks an index names that the store lacks */
	uint64_t objects, bad_objects;              /* delta objects (.sdob) */
	uint64_t delta_indexes, bad_delta_indexes;  /* delta indexes (.sdix) */
};

/* Checks every chunk of a store (content matches name), every delta object
 * (its SHA-256 is its name) and every delta index (loads, and names the base
 * and new index its path names); with index_path, also that the store holds
 * every chunk the index names.  repair: delete bad chunks, objects and delta
 * indexes, and leftover temp files. */
int gen_check(const char *store, const char *index_path, int repair, struct gen_check_stats *stats,
	      struct slotsync_error *err);

/* Who signs: a certificate with the codeSigning extended key usage, its key (a
 * PEM file or a pkcs11: URI, read through OpenSSL's pkcs11 engine, module
 * given or p11-kit's proxy), and intermediate certificates to include. */
/* The summary line slotsync-gen check prints. */
void gen_check_print(const struct gen_check_stats *st, int repair, FILE *f);

/* The delta index at rel in the store topfd, loaded by the library's parser
 * and checked against its path (deltas/<base hex>/<new hex>.sdix): *out. */
int gen_check_delta_index(int topfd, const char *rel, struct slotsync_delta_index **out, struct slotsync_error *err);

/* slotsync-gen prune (prune.c): keep what the kept releases need (bundles, or
 * .caibx indexes), remove the rest of the store, but nothing younger than
 * grace_minutes.  Kinds, in the order they are removed: */
enum {
	GEN_PRUNE_DELTA_INDEX, GEN_PRUNE_INDEX_DIFF, GEN_PRUNE_INDEX, GEN_PRUNE_OBJECT, GEN_PRUNE_CHUNK, GEN_PRUNE_TEMP,
	GEN_PRUNE_KINDS
};
#define GEN_PRUNE_GRACE_DEFAULT 60
extern const char *const gen_prune_kind_names[GEN_PRUNE_KINDS];

struct gen_prune_options {
	const char *store;
	const char *const *keep;   /* the kept releases */
	int n_keep;
	const char *keyring;       /* NULL: bundles' digests are checked, not their signatures */
	int dry_run;               /* count only */
	unsigned grace_minutes;
};

struct gen_prune_kind {
	uint64_t kept, kept_bytes, removed, removed_bytes;
	uint64_t young;            /* kept, unmarked, for the grace period */
};

struct gen_prune_stats {
	struct gen_prune_kind kind[GEN_PRUNE_KINDS];
	uint64_t dirs_removed;     /* a dry run: folders it would leave empty */
	double seconds;
};

/* Refuses (nothing removed) when a kept release, or a delta index between two
 * kept releases, cannot be read; the error names it. */
int gen_prune(const struct gen_prune_options *o, struct gen_prune_stats *st, struct slotsync_error *err);

/* slotsync-gen's prune verb (gen_prune_cli.c): argv[1] is "prune". */
int gen_cli_prune(int argc, char **argv);

struct gen_signer {
	const char *cert, *key, *chain, *pkcs11_module;
};

struct gen_delta_options {
	const char *store;          /* NULL: measure only, write nothing */
	const char *new_index, *new_image;
	int threads;                /* <= 0: one per core */
	int level;                  /* zstd level of the objects */
	int records_level;          /* of blocks and zstd-frames records (at most level); 0: the default */
	int run_max;                /* bytes of new chunks one object may rebuild */
	int index_format;           /* 2: an SSDELTA2 index (no gzip files taken apart inside
	                               compressed blocks); 0 or 3: SSDELTA3 where it helps */
};

/* The zstd level of blocks and zstd-frames records that opt asks for. */
static inline int gen_records_level(const struct gen_delta_options *opt)
{
	int r = opt->records_level ? opt->records_level : GEN_DELTA_RECORDS_LEVEL_DEFAULT;
	return r < opt->level ? r : opt->level;
}

struct gen_bundle_options {
	const char *store, *image, *version, *compatible, *allow_downgrade_to;
	uint64_t security_version;
	const char **store_urls;
	int n_store_urls;
	const char *verity_root_hash, *hook_pre_install, *hook_post_install;
	int verity;                    /* --verity: chunk the slot image (gen_verity) instead */
	time_t created, expires;       /* expires 0: never */
	struct gen_signer signer;
	struct gen_make_options make;  /* how the image is chunked into the store */
	const char **delta_bases, **delta_base_images;  /* --delta-from INDEX:IMAGE */
	int n_deltas;
	struct gen_delta_options delta;
	int embed;                     /* --embed: chunks inside the bundle */
	int detach_index;              /* --detach-index: the index in the store, not the bundle */
	int packs;                     /* --packs: pack objects for devices with no base */
	const char **embed_for;        /* --embed-for BASE.caibx: only what these lack */
	int n_embed_for;
	/* --image NAME=FILE: the further images of the slot group (any order;
	 * names valid, each once), chunked like the main image */
	const char **image_names, **image_files;
	int n_images;
};

/* One --image argument: IMG or rootfs=IMG (the main image, once), or NAME=FILE
 * (a further image; arg is cut at the '=').  -EINVAL, said on stderr: the main
 * image twice. */
int gen_bundle_image_arg(struct gen_bundle_options *b, char *arg);

/* Chunks the image into the store and writes the signed bundle to out. */
int gen_bundle(const struct gen_bundle_options *o, const char *out, struct slotsync_error *err);

struct gen_channel_options {
	const char *bundle_url, *bundle, *compatible;
	uint64_t version;
	time_t expires;
	struct gen_signer signer;
};

/* Writes a signed channel pointer to the bundle. */
int gen_channel(const struct gen_channel_options *o, const char *out, struct slotsync_error *err);


struct gen_delta_stats {
	uint64_t missing_chunks, missing_bytes;  /* new chunks the base lacks */
	uint64_t objects, object_bytes;          /* delta objects made */
	uint64_t covered_bytes;                  /* new bytes they rebuild */
	uint64_t replaced_plain;                 /* compressed chunks they replace */
	uint64_t remaining_plain;                /* compressed chunks still needed */
	uint64_t codec_count[8];
	uint64_t blocks_residual;                /* BLOCKS objects with residual records */
	uint64_t records_xz;                     /* BLOCKS and ZSTD_FRAMES objects with xz records */
	uint64_t records_inner;                  /* BLOCKS objects with gzip files inside their blocks */
	char blocks_comp[8];                     /* BLOCKS objects' compressor ("gzip", "xz", "lz4") */
	uint64_t objects_reading_new;            /* objects with ranges of the new image */
	uint64_t index_bytes;
	char index_path[200];                    /* relative to the store */
	uint8_t base_digest[SLOTSYNC_DIGEST_BYTES];  /* SHA-256 of the base index */
	uint8_t index_sha256[SLOTSYNC_DIGEST_BYTES]; /* SHA-256 of the delta index */
	/* the new index coded against the base's (.sdid, beside the .sdix) */
	uint64_t index_diff_bytes;
	uint8_t index_diff_sha256[SLOTSYNC_DIGEST_BYTES];
	char index_diff_path[200];               /* relative to the store */
	double seconds;
};

/* Delta objects for NEW against one base (its index and image); with a store,
 * writes the objects and the delta index into it. */
int gen_delta_pair(const struct gen_delta_options *opt, const char *base_index, const char *base_image,
		   struct gen_delta_stats *st, struct slotsync_error *err);

/* What gen_delta_pair did against base (the "delta:" lines of slotsync-gen delta). */
void gen_delta_print(const char *base, const char *store, const struct gen_delta_stats *st, FILE *f);

struct gen_pack_options {
	const char *store;          /* holds the release's chunks; the packs are written into it */
	const char *index, *image;  /* the release */
	int threads;                /* <= 0: one per core */
	int level;                  /* zstd level; 0: GEN_ZSTD_LEVEL_DEFAULT */
	int run_max;                /* bytes a pack rebuilds at most; 0: SLOTSYNC_DELTA_OUT_MAX */
};

struct gen_pack_stats {
	uint64_t packs, pack_bytes;          /* pack objects written */
	uint64_t covered_bytes;              /* bytes of the chunk files they replace */
	uint64_t chunk_file_bytes;           /* bytes of all the release's distinct chunk files */
	uint64_t runs_left_out, left_out_bytes; /* runs whose pack was larger than their chunk files */
	uint64_t index_bytes;
	uint8_t index_sha256[SLOTSYNC_DIGEST_BYTES];
	char index_path[200];                /* relative to the store */
	double seconds;
};

/* Pack objects for a release whose chunks are in the store (pack.c): runs of
 * its chunks, each one zstd frame, and their delta index with no base
 * (deltas/<64 zeros>/<index SHA-256>.sdix). */
int gen_packs(const struct gen_pack_options *opt, struct gen_pack_stats *st, struct slotsync_error *err);
/* The "packs:" lines of what gen_packs did. */
void gen_packs_print(const char *store, const struct gen_pack_stats *st, FILE *f);

/* dm-verity (docs/format.md, "Slot images"): the slot image is the image,
 * zero-padded to whole 4096-byte blocks (data_size, the hash offset), then
 * its hash tree as `veritysetup format --no-superblock --hash-offset=data_size`
 * writes it (sha256, 4096-byte blocks, format 1).  The salt comes from the
 * image's SHA-256, so the same image always gives the same slot image. */
#define GEN_VERITY_BLOCK_BYTES 4096
#define GEN_VERITY_SALT_BYTES 32
#define GEN_VERITY_ROOT_BYTES 32
struct gen_verity {
	uint8_t root_hash[GEN_VERITY_ROOT_BYTES];
	uint8_t salt[GEN_VERITY_SALT_BYTES];
	uint64_t data_size;     /* the padded image: the hash offset */
	uint64_t slot_size;     /* data_size + the hash tree */
};

/* Writes the slot image of IMAGE to slot_image atomically (libcryptsetup
 * computes the tree).  -ENOTSUP, naming the option, in a build without
 * SLOTSYNC_VERITY. */
int gen_verity(const char *image, const char *slot_image, struct gen_verity *v, struct slotsync_error *err);

/* What slotsync-gen verity prints of v: lines, or (json) one JSON object with
 * the fields of the manifest's verity object and the slot image's size. */
void gen_verity_print(const struct gen_verity *v, int json, FILE *f);

/* slotsync-gen's verity verb (gen_verity_cli.c): argv[1] is "verity". */
int gen_cli_verity(int argc, char **argv);

#endif
