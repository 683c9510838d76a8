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

/* A PCR policy (SHA-256 bank).  pcr_mask: the PCRs the secret is bound to
 * (bit n: PCR n; 0: none).  expect_mask, a subset of pcr_mask: the PCRs whose
 * value at unsealing is given in expect[n] rather than read from the TPM at
 * sealing, to seal for a state the next boot will reach (PCR 15 once the next
 * root has been measured into it, say). */
struct slotsync_tpm_policy {
	uint32_t pcr_mask;
	uint32_t expect_mask;
	uint8_t expect[24][32];
};

/* Seals secret[0..len) (at most SLOTSYNC_TPM_SECRET_MAX bytes) under policy p:
 * the TPM will unseal it only while each PCR of p->pcr_mask holds the value it
 * holds now, or expect[n] for those of p->expect_mask.  *blob is malloc'd. */
SLOTSYNC_EXPORT int slotsync_tpm_seal_policy(const char *tcti, const uint8_t *secret, size_t len,
					     const struct slotsync_tpm_policy *p, uint8_t **blob, size_t *blob_len,
					     struct slotsync_error *err);

/* slotsync_tpm_seal_policy() bound to the current values of the PCRs in
 * pcr_mask (0: no PCR policy). */
SLOTSYNC_EXPORT int slotsync_tpm_seal(const char *tcti, const uint8_t *secret, size_t len, uint32_t pcr_mask, uint8_t **blob,
		      size_t *blob_len, struct slotsync_error *err);

/* Unseals a blob from slotsync_tpm_seal(); secret holds at least
 * SLOTSYNC_TPM_SECRET_MAX bytes.  require_mask is the policy the device is
 * configured with ([tpm] pcrs), and the only one used: a PCR policy session
 * over require_mask (or, when it is 0, an empty password).  A blob sealed under
 * another policy (none where PCRs are required, other PCRs) is refused by name
 * (-EPERM) before the TPM is asked: whoever wrote the blob does not choose how
 * it is opened.  -EACCES when the PCRs no longer hold the sealed values. */
SLOTSYNC_EXPORT int slotsync_tpm_unseal(const char *tcti, uint32_t require_mask, const uint8_t *blob, size_t blob_len,
					uint8_t *secret, size_t *len, struct slotsync_error *err);

/* The SHA-256 bank's PCR pcr (0 to 23) as it is now. */
SLOTSYNC_EXPORT int slotsync_tpm_pcr_read(const char *tcti, unsigned pcr, uint8_t value[32], struct slotsync_error *err);

/* Extends the SHA-256 bank's PCR pcr with digest (TPM2_PCR_Extend). */
SLOTSYNC_EXPORT int slotsync_tpm_pcr_extend(const char *tcti, unsigned pcr, const uint8_t digest[32],
					    struct slotsync_error *err);

/* What a SHA-256 PCR holding before holds after an extend with digest:
 * SHA-256(before || digest).  No TPM needed. */
SLOTSYNC_EXPORT void slotsync_tpm_pcr_extended(const uint8_t before[32], const uint8_t digest[32], uint8_t after[32]);

#ifdef __cplusplus
}
#endif
#endif
