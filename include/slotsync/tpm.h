/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — sealing secrets with a TPM 2.0 (tpm2-tss ESAPI).
 *
 * A secret (a slot's volume key) is sealed under a primary key of the owner
 * hierarchy that the TPM re-creates from its seed whenever it is needed (an
 * ECC P-256 storage key of a fixed template, as systemd-cryptenroll uses), so
 * nothing persistent is kept in the TPM.  An optional PCR policy binds the
 * secret to the measured boot state (SHA-256 bank): the TPM unseals it only
 * while those PCRs hold the values they held at sealing.  The blob that comes
 * out (format in docs/format.md) is safe to store anywhere: only this TPM can
 * open it.
 *
 * Room is left for a signed policy (TPM2_PolicyAuthorize, as
 * systemd-cryptenroll --tpm2-public-key does): the blob's header carries a
 * policy kind, so that a later kind can let a new release's kernel unseal
 * without a reseal.
 *
 * tcti: a TCTI configuration string ("device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=2321", ...); NULL: tpm2-tss's default.
 */
#ifndef SLOTSYNC_TPM_H
#define SLOTSYNC_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_TPM_SECRET_MAX 128

/* Seals secret[0..len) (at most SLOTSYNC_TPM_SECRET_MAX bytes), bound to the
 * SHA-256 PCRs in pcr_mask (bit n: PCR n; 0: no PCR policy).  *blob is
 * malloc'd. */
SLOTSYNC_EXPORT int slotsync_tpm_seal(const char *tcti, const uint8_t *secret, size_t len, uint32_t pcr_mask, uint8_t **blob,
		      size_t *blob_len, struct slotsync_error *err);

/* Unseals a blob from slotsync_tpm_seal(); secret holds at least
 * SLOTSYNC_TPM_SECRET_MAX bytes.  -EACCES when the PCRs no longer match. */
SLOTSYNC_EXPORT int slotsync_tpm_unseal(const char *tcti, const uint8_t *blob, size_t blob_len, uint8_t *secret, size_t *len,
			struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
