/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — what a release and a channel say: the manifest of a release
 * bundle (JSON: version, compatible, security version, image size and digest,
 * index digest, store URLs, hooks, downgrade policy, expiry, delta indexes,
 * the further images of a slot group)
 * and the channel pointer (JSON: version, expiry, bundle URL, digest and
 * size), parsed strictly and written canonically; and the times they carry.
 * Both travel inside signed envelopes (envelope.h). */
#ifndef SLOTSYNC_MANIFEST_H
#define SLOTSYNC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_BUNDLE_MAX_BYTES (256u << 20)   /* a whole bundle */
#define SLOTSYNC_POINTER_MAX_BYTES (64u << 10)   /* a whole pointer */
#define SLOTSYNC_MANIFEST_MAX_BYTES (1u << 20)

/* ---- manifest ---------------------------------------------------------- */

#define SLOTSYNC_MANIFEST_FORMAT 1
#define SLOTSYNC_MANIFEST_MAX_STORES 16
#define SLOTSYNC_MANIFEST_MAX_DELTAS 16
#define SLOTSYNC_MANIFEST_MAX_IMAGES 8   /* further images of a slot group */
#define SLOTSYNC_IMAGE_NAME_MAX 32       /* characters of an image name */

/* dm-verity of the slot image (docs/format.md, "Slot images"): the image
 * covered by the manifest's image size and digest is the filesystem padded to
 * data_size, then its hash tree from hash_offset, as veritysetup writes it
 * with --no-superblock. */
struct slotsync_manifest_verity {
	char *root_hash;             /* lower-case hex, the algorithm's digest length */
	char *salt;                  /* lower-case hex, 1 to 256 bytes */
	char *algorithm;             /* "sha256" */
	uint64_t data_size;          /* bytes of data blocks, a multiple of data_block_size */
	uint64_t hash_offset;        /* where the tree starts in the slot image */
	uint32_t data_block_size, hash_block_size;  /* powers of two, 512 to 65536 */
};

struct slotsync_manifest {
	char *version;               /* release version, compared with strverscmp() */
	char *compatible;            /* the hardware/product line it is for */
	uint64_t security_version;   /* anti-rollback: devices never go below their floor */
	time_t created;
	time_t expires;              /* 0: never */
	uint64_t image_size;
	uint8_t image_sha256[SLOTSYNC_DIGEST_BYTES];
	uint8_t index_sha256[SLOTSYNC_DIGEST_BYTES];   /* of the index (the bundle's part 2, or the store's) */
	uint64_t index_size;         /* its size in bytes; 0: not given (a detached index gives it) */
	char *stores[SLOTSYNC_MANIFEST_MAX_STORES];    /* chunk store URLs */
	size_t n_stores;
	char *verity_root_hash;      /* hex, or NULL (older readers' copy of verity->root_hash) */
	struct slotsync_manifest_verity *verity;   /* NULL: the release has no dm-verity */
	char *hook_pre_install;      /* executable names in the bundle's hook folder, or NULL */
	char *hook_post_install;
	char *downgrade_allowed_to;  /* NULL, or the version itself: devices may go back to it */
	/* delta indexes in the store (docs/format.md, "Delta objects"): the signature
	 * covers them through their digests */
	struct slotsync_manifest_delta {
		uint8_t base[SLOTSYNC_DIGEST_BYTES];    /* SHA-256 of the base's index */
		uint8_t sha256[SLOTSYNC_DIGEST_BYTES];  /* SHA-256 of the delta index */
		uint64_t size;
		/* the release index coded against the base's (slotsync/index.h,
		 * "index diff"): has_index 0 when the entry names none */
		int has_index;
		uint8_t index_sha256[SLOTSYNC_DIGEST_BYTES];
		uint64_t index_size;
	} deltas[SLOTSYNC_MANIFEST_MAX_DELTAS];
	size_t n_deltas;
	/* the further images of the slot group (docs/format.md, "Slot groups"):
	 * the fields above are the main image, "rootfs"; these are the others
	 * (e.g. "boot": kernel, initramfs, device tree), sorted by name, each
	 * with its own index in the store (indexes/<hex>.caibx) */
	struct slotsync_manifest_image {
		char name[SLOTSYNC_IMAGE_NAME_MAX + 1];
		uint64_t size;                          /* bytes of the image */
		uint8_t sha256[SLOTSYNC_DIGEST_BYTES];  /* of the image */
		uint8_t index_sha256[SLOTSYNC_DIGEST_BYTES];
		uint64_t index_size;                    /* bytes of its index (not 0) */
	} images[SLOTSYNC_MANIFEST_MAX_IMAGES];
	size_t n_images;
};

/* Whether name is a valid name of a further image: 1 to 32 characters of
 * [a-z0-9_-], the first a letter or digit, and not "rootfs" (the main
 * image's).  1 if it is, 0 if not. */
SLOTSYNC_EXPORT int slotsync_image_name_valid(const char *name);

/* The further image of that name in m, or NULL. */
SLOTSYNC_EXPORT const struct slotsync_manifest_image *slotsync_manifest_image(const struct slotsync_manifest *m,
									       const char *name);

/* Parses manifest JSON (at most SLOTSYNC_MANIFEST_MAX_BYTES): every field is
 * type-checked, unknown fields are refused (a signer's intent is never half-read). */
SLOTSYNC_EXPORT int slotsync_manifest_parse(const uint8_t *json, size_t len, struct slotsync_manifest **out,
			    struct slotsync_error *err);

/* Canonical JSON (fixed field order, pretty-printed, a final newline): the same
 * manifest always gives the same bytes.  *out is malloc'd. */
SLOTSYNC_EXPORT int slotsync_manifest_serialize(const struct slotsync_manifest *m, char **out, size_t *out_len,
				struct slotsync_error *err);

SLOTSYNC_EXPORT void slotsync_manifest_free(struct slotsync_manifest *m);

/* ---- channel pointer -------------------------------------------------- */

struct slotsync_pointer {
	uint64_t version;            /* only goes up */
	time_t expires;              /* required: a pointer that is not renewed goes stale */
	char *bundle_url;
	uint8_t bundle_sha256[SLOTSYNC_DIGEST_BYTES];
	uint64_t bundle_size;        /* the device fetches no more than this */
	char *compatible;            /* or NULL */
};

SLOTSYNC_EXPORT int slotsync_pointer_parse(const uint8_t *json, size_t len, struct slotsync_pointer **out,
			   struct slotsync_error *err);
SLOTSYNC_EXPORT int slotsync_pointer_serialize(const struct slotsync_pointer *p, char **out, size_t *out_len,
			       struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_pointer_free(struct slotsync_pointer *p);

/* ---- times ------------------------------------------------------------ */

/* "2026-11-28T12:00:00Z" (UTC, RFC 3339) <-> seconds since the epoch.  Parsing
 * also takes "@SECONDS".  buf holds at least 21 bytes. */
SLOTSYNC_EXPORT int slotsync_time_parse(const char *s, time_t *out);
SLOTSYNC_EXPORT void slotsync_time_format(time_t t, char buf[32]);

#ifdef __cplusplus
}
#endif
#endif
