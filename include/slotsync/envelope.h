/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — signed envelopes: release bundles and channel pointers.
 *
 * Both are signed envelopes (docs/format.md, "Signed envelope"): a header that
 * names the kind and the length of each part, the parts, and a CMS (PKCS#7)
 * detached signature, DER, over every byte before it, so that nothing in the
 * file, its kind and lengths included, can change without breaking it.
 *   - a bundle has two parts: the manifest (JSON) and the caibx index, and a
 *     third when the manifest names install hooks: their programs;
 *     A fourth (slotsync-gen bundle --embed) is a directory of chunk frames
 *     that follow the signature, to the end of the file: a bundle that installs
 *     with no network.  Only the envelope is read into memory, never the frames;
 *   - a channel pointer has one: a small JSON naming the bundle to install.
 *
 * Verification checks the signature, the signer's chain up to a keyring of
 * trusted CAs at the time the signature was made (a device whose clock runs
 * wrong during a long update must not refuse a release for an expiry alone),
 * and that the signer is allowed to sign code (extended key usage codeSigning).
 * Limits on every size are enforced before anything is parsed.
 */
#ifndef SLOTSYNC_ENVELOPE_H
#define SLOTSYNC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "slotsync/digest.h"
#include "slotsync/error.h"
#include "slotsync/export.h"
#include "slotsync/manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

enum slotsync_envelope_kind {
	SLOTSYNC_ENVELOPE_BUNDLE = 0,   /* "BNDL": manifest, index[, hooks] */
	SLOTSYNC_ENVELOPE_POINTER = 1,  /* "PNTR": pointer */
};

#define SLOTSYNC_SIGNATURE_MAX_BYTES (64u << 10)
#define SLOTSYNC_ENVELOPE_MAX_PARTS 4

/* A parsed envelope: views into buf (owned). */
struct slotsync_envelope {
	enum slotsync_envelope_kind kind;
	uint8_t *buf;                 /* the whole file */
	size_t len;
	size_t signed_len;            /* bytes covered by the signature */
	const uint8_t *part[SLOTSYNC_ENVELOPE_MAX_PARTS];
	size_t part_len[SLOTSYNC_ENVELOPE_MAX_PARTS];
	size_t n_parts;
	const uint8_t *sig;
	size_t sig_len;
	/* a bundle with embedded chunks: the frames after the signature, not
	 * read (data_len 0: none) */
	uint64_t data_offset, data_len;
};

/* Parses buf[0..len) (taking ownership of buf, malloc'd) as an envelope of the
 * given kind.  Checks the layout only, not the signature. */
SLOTSYNC_EXPORT int slotsync_envelope_parse(uint8_t *buf, size_t len, enum slotsync_envelope_kind kind,
			    struct slotsync_envelope **out, struct slotsync_error *err);

/* Reads a file of at most max_bytes (its size is checked before it is read) and
 * parses it. */
SLOTSYNC_EXPORT int slotsync_envelope_read(const char *path, enum slotsync_envelope_kind kind, size_t max_bytes,
			   struct slotsync_envelope **out, struct slotsync_error *err);

SLOTSYNC_EXPORT void slotsync_envelope_free(struct slotsync_envelope *e);

/* Lays out an envelope of kind with the given parts, signature not yet there:
 * returns the bytes to sign (*out, malloc'd).  The signature follows them, to
 * the end of the file (slotsync_envelope_finish()). */
SLOTSYNC_EXPORT int slotsync_envelope_build(enum slotsync_envelope_kind kind, const uint8_t *const *parts, const size_t *lens,
			    size_t n_parts, uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* Returns the complete envelope: the bytes from build followed by sig. */
SLOTSYNC_EXPORT int slotsync_envelope_finish(const uint8_t *unsigned_buf, size_t unsigned_len, const uint8_t *sig, size_t sig_len,
			     uint8_t **out, size_t *out_len, struct slotsync_error *err);

/* What verification learnt of the signer. */
struct slotsync_signer_info {
	time_t signing_time;
	char subject[256];
};

/* Verifies the envelope's signature against the CAs in keyring_pem (a PEM file
 * of one or more certificates: the fleet's trust anchors). */
SLOTSYNC_EXPORT int slotsync_envelope_verify(const struct slotsync_envelope *e, const char *keyring_pem,
			     struct slotsync_signer_info *info, struct slotsync_error *err);

/* ---- a verified bundle ------------------------------------------------- */

#define SLOTSYNC_BUNDLE_MAX_HOOKS 2

/* A hook program the bundle carries (part 3), signed with the rest. */
struct slotsync_bundle_hook {
	char name[256];
	const uint8_t *data;         /* inside env */
	size_t len;
};

struct slotsync_bundle {
	struct slotsync_envelope *env;
	struct slotsync_manifest *manifest;
	const uint8_t *index;        /* the caibx bytes, inside env; NULL when detached */
	size_t index_len;
	/* a bundle of slotsync-gen bundle --detach-index: its part 2 is empty and
	 * the index, named by the manifest's index sha256 and size, is in the
	 * store at indexes/<hex>.caibx (or rebuilt from an index diff) */
	int index_detached;
	struct slotsync_bundle_hook hooks[SLOTSYNC_BUNDLE_MAX_HOOKS];
	size_t n_hooks;
	struct slotsync_signer_info signer;
	size_t n_embedded;           /* chunks embedded (part 4; slotsync_embedded_open reads them) */
};

/* The hook of that name, or NULL. */
SLOTSYNC_EXPORT const struct slotsync_bundle_hook *slotsync_bundle_hook(const struct slotsync_bundle *b, const char *name);

/* Reads the bundle at path, verifies its signature against keyring_pem, parses
 * its manifest and checks that the index part has the digest the manifest names
 * and parses as an index of the manifest's image size.  An empty index part is
 * a detached index (index_detached), if the manifest gives its size. */
SLOTSYNC_EXPORT int slotsync_bundle_open(const char *path, const char *keyring_pem, struct slotsync_bundle **out,
			 struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_bundle_free(struct slotsync_bundle *b);

/* ---- chunks embedded in a bundle ---------------------------------------- */

/* The embedded chunks of a bundle file, read one frame at a time.  The
 * directory is read without checking the signature: every frame read must be
 * decoded and checked against the chunk id it is read for (a signed index
 * names the ids), so a wrong frame can only be refused, never used. */
struct slotsync_embedded;

/* Opens bundle_path's embedded chunks; *out NULL (and 0) if it embeds none. */
SLOTSYNC_EXPORT int slotsync_embedded_open(const char *bundle_path, struct slotsync_embedded **out,
					   struct slotsync_error *err);
SLOTSYNC_EXPORT size_t slotsync_embedded_count(const struct slotsync_embedded *e);
/* Reads the frame of chunk id (SLOTSYNC_DIGEST_BYTES) into buf[cap]: 0 and
 * *len, -ENOENT when the bundle lacks it (err untouched), -EFBIG when the frame
 * is larger than cap, another negative code on a read error. */
SLOTSYNC_EXPORT int slotsync_embedded_read(const struct slotsync_embedded *e, const uint8_t *id, uint8_t *buf,
					   size_t cap, size_t *len, struct slotsync_error *err);
SLOTSYNC_EXPORT void slotsync_embedded_free(struct slotsync_embedded *e);

/* The bundle's fourth part for n frames (ids sorted ascending, each at
 * offsets[i] with lens[i] bytes in the data_len bytes after the signature).
 * *out is malloc'd. */
SLOTSYNC_EXPORT int slotsync_embedded_directory(const uint8_t (*ids)[SLOTSYNC_DIGEST_BYTES], const uint64_t *offsets,
						const uint32_t *lens, size_t n, uint64_t data_len, uint8_t **out,
						size_t *out_len, struct slotsync_error *err);

/* Reads and verifies a channel pointer. */
SLOTSYNC_EXPORT int slotsync_pointer_open(const char *path, const char *keyring_pem, struct slotsync_pointer **out,
			  struct slotsync_signer_info *signer, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
