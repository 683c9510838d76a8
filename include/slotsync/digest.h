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
const char *slotsync_digest_name(enum slotsync_digest_type type);

/* out receives SLOTSYNC_DIGEST_BYTES bytes.  Returns 0, or -ENOMEM/-EIO if OpenSSL fails. */
int slotsync_digest(enum slotsync_digest_type type, const void *buf, size_t len, uint8_t out[SLOTSYNC_DIGEST_BYTES]);

/* Lower-case hex, NUL-terminated; returns hex. */
char *slotsync_digest_to_hex(const uint8_t id[SLOTSYNC_DIGEST_BYTES], char hex[SLOTSYNC_DIGEST_HEX_BYTES]);

/* Parses 64 hex digits (either case); returns 0 or -EINVAL. */
int slotsync_digest_from_hex(const char *hex, uint8_t id[SLOTSYNC_DIGEST_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
