/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — LUKS2 slots and data partitions, their keys sealed by the TPM.
 *
 * A format gives the device a LUKS2 header (aes-xts-plain64, 512-bit key,
 * 4096-byte sectors) with a fresh random volume key, which is sealed by the
 * TPM (tpm.h) and kept in a LUKS2 token of type "slotsync-tpm2" in the same
 * header; no passphrase keyslot is needed, and no key ever sits on disk in
 * clear.  Opening unseals the key from the token and activates the mapping
 * (libcryptsetup, device-mapper), or with no name only checks the key.
 */
#ifndef SLOTSYNC_LUKS_H
#define SLOTSYNC_LUKS_H

#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_LUKS_KEY_BYTES 64
#define SLOTSYNC_LUKS_UUID_BYTES 40
#define SLOTSYNC_LUKS_TOKEN_TYPE "slotsync-tpm2"

/* The device's TPM policy for a volume.  A format seals the new key under it
 * (expect_mask/expect as in struct slotsync_tpm_policy, tpm.h: PCRs whose
 * value at unlocking is given rather than read now); an open unseals with
 * pcr_mask, the device's, and refuses a header sealed under another policy
 * (expect_mask and expect are not used there).  { tcti, mask } leaves the
 * rest zero. */
struct slotsync_luks_tpm {
	const char *tcti;     /* NULL: tpm2-tss's default */
	uint32_t pcr_mask;    /* SHA-256 PCRs the key is bound to; 0: none */
	uint32_t expect_mask; /* a subset of pcr_mask */
	uint8_t expect[24][32];
};

/* Formats device with a header of UUID want_uuid (NULL: a random one); uuid
 * receives the new header's UUID. */
SLOTSYNC_EXPORT int slotsync_luks_format(const char *device, const struct slotsync_luks_tpm *tpm, const char *want_uuid,
			 char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* The same, then opened as /dev/mapper/name with the volume key in hand (name
 * NULL: not opened): what a format for a later PCR state needs. */
SLOTSYNC_EXPORT int slotsync_luks_format_open(const char *device, const struct slotsync_luks_tpm *tpm,
					      const char *want_uuid, const char *name,
					      char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* The UUID of device's LUKS2 header, without unsealing anything; -EINVAL when
 * it has none. */
SLOTSYNC_EXPORT int slotsync_luks_header_uuid(const char *device, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* The header UUID of the open mapping name; -ENODEV if it is not open. */
SLOTSYNC_EXPORT int slotsync_luks_mapping_uuid(const char *name, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* A fresh random (version 4) UUID for a header to be formatted. */
SLOTSYNC_EXPORT int slotsync_luks_new_uuid(char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* Unseals the key and activates /dev/mapper/<name>; name NULL: checks the key
 * only.  uuid (may be NULL) receives the header's UUID; expect_uuid (may be
 * NULL) refuses a header that is not the one expected (a resumed install must
 * find the header it formatted). */
SLOTSYNC_EXPORT int slotsync_luks_open(const char *device, const struct slotsync_luks_tpm *tpm, const char *name,
		       const char *expect_uuid, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err);

/* Removes the mapping. */
SLOTSYNC_EXPORT int slotsync_luks_close(const char *name, struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
