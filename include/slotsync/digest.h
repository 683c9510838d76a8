/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — chunk digests.
 *
 * A chunk's id is a 32-byte digest of its uncompressed content.  slotsync writes
 * SHA-256 by default (hardware-accelerated on most CPUs) and reads both digests
 * that casync knows: SHA-256 and SHA-512/256 (casync's default, flagged in the
 * index header).  Computed with OpenSSL.
 */
#ifndef SLOTSYNC_DIGEST_H
#define SLOTSYNC_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_DIGEST_BYTES 32
#define SLOTSYNC_DIGEST_HEX_BYTES (2 * SLOTSYNC_DIGEST_BYTES + 1)

enum slotsync_digest_type {
	SLOTSYNC_DIGEST_SHA256 = 0,
	SLOTSYNC_DIGEST_SHA512_256 = 1,
};

/* "SHA-256" or "SHA-512/256". */
SLOTSYNC_EXPORT const char *slotsync_digest_name(enum slotsync_digest_type type);

/* out receives SLOTSYNC_DIGEST_BYTES bytes.  Returns 0, or -ENOMEM/-EIO if OpenSSL fails. */
SLOTSYNC_EXPORT int slotsync_digest(enum slotsync_digest_type type, const void *buf, size_t len, uint8_t out[SLOTSYNC_DIGEST_BYTES]);

/* The digest of the first len bytes of the file or block device at path (len
 * 0: all of it, and *size, if not NULL, gets how many bytes that was).  A file
 * shorter than len is an error.  Reads 1 MiB at a time. */
SLOTSYNC_EXPORT int slotsync_digest_file(enum slotsync_digest_type type, const char *path, uint64_t len,
			 uint8_t out[SLOTSYNC_DIGEST_BYTES], uint64_t *size, struct slotsync_error *err);

/* Lower-case hex, NUL-terminated; returns hex. */
SLOTSYNC_EXPORT char *slotsync_digest_to_hex(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char hex[SLOTSYNC_DIGEST_HEX_BYTES]);

/* Parses 64 hex digits (either case); returns 0 or -EINVAL. */
SLOTSYNC_EXPORT int slotsync_digest_from_hex(const char *hex, uint8_t id[SLOTSYNC_DIGEST_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
