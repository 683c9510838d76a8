/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TPM 2.0 sealing through tpm2-tss ESAPI: see include/slotsync/tpm.h.
 *
 * Blob (little-endian): magic "SSTPM\0" (6), format u8 = 1, policy kind u8
 * (0: none, 1: PCR), PCR mask u32 (SHA-256 bank), then the sealed object's
 * TPM2B_PUBLIC and TPM2B_PRIVATE as the TPM marshals them.
 *
 * The header's policy is never what unsealing applies: the caller passes the
 * policy the device is configured with, the header is only compared with it
 * (to refuse a mismatch by name), and the TPM enforces the object's own
 * authPolicy against the session built from the device's policy.
 *
 * Every transient object and session is flushed before returning: a TPM
 * without a resource manager (swtpm, /dev/tpm0) has few object slots.
 */
#include "slotsync/tpm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "slotsync/features.h"

void slotsync_tpm_pcr_extended(const uint8_t before[32], const uint8_t digest[32], uint8_t after[32])
{
	uint8_t buf[64];
	unsigned int n = 32;

	memcpy(buf, before, 32);
	memcpy(buf + 32, digest, 32);
	if (EVP_Digest(buf, sizeof(buf), after, &n, EVP_sha256(), NULL) != 1)
		memset(after, 0, 32); /* OpenSSL without SHA-256: no PCR value matches zeros */
}

#if SLOTSYNC_HAVE_TPM
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#define MAGIC "SSTPM\0"
#define HEADER_BYTES 12
#define POLICY_NONE 0
#define POLICY_PCR 1

struct tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR primary, object, session;
};

static int tpm_fail(struct slotsync_error *err, int code, const char *what, TSS2_RC rc)
{
	return slotsync_error_set(err, code, "TPM: %s failed: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
}

static int tpm_open(struct tpm *t, const char *tcti, struct slotsync_error *err)
{
	TSS2_RC rc;

	memset(t, 0, sizeof(*t));
	t->primary = t->object = t->session = ESYS_TR_NONE;
	/* tpm2-tss logs its own view of every failure on stderr; ours says it
	 * better, once (TSS2_LOG set by the user wins) */
	setenv("TSS2_LOG", "all+none", 0);
	rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
	if (rc != TSS2_RC_SUCCESS)
		return slotsync_error_set(err, -ENODEV, "TPM not reachable through \"%s\": %s (0x%x)",
					  tcti ? tcti : "the default TCTI", Tss2_RC_Decode(rc), rc);
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		Tss2_TctiLdr_Finalize(&t->tcti);
		return slotsync_error_set(err, -ENODEV, "TPM not reachable through \"%s\": %s (0x%x)",
					  tcti ? tcti : "the default TCTI", Tss2_RC_Decode(rc), rc);
	}
	return 0;
}

static void tpm_close(struct tpm *t)
{
	if (t->esys) {
		if (t->session != ESYS_TR_NONE)
			Esys_FlushContext(t->esys, t->session);
		if (t->object != ESYS_TR_NONE)
			Esys_FlushContext(t->esys, t->object);
		if (t->primary != ESYS_TR_NONE)
			Esys_FlushContext(t->esys, t->primary);
		Esys_Finalize(&t->esys);
	}
	if (t->tcti)
		Tss2_TctiLdr_Finalize(&t->tcti);
}

/* The storage primary key: ECC P-256, AES-128-CFB, the TCG's SRK template. */
static int create_primary(struct tpm *t, struct slotsync_error *err)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_PUBLIC pub = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation = { 0 };
	TSS2_RC rc;

	pub.publicArea.type = TPM2_ALG_ECC;
	pub.publicArea.nameAlg = TPM2_ALG_SHA256;
	pub.publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
					  TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
					  TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA;
	pub.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	pub.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	pub.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	pub.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	pub.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	pub.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &pub,
				&outside, &creation, &t->primary, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(err, -EIO, "creating the storage primary key", rc);
	return 0;
}

static void pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < 24; i++)
		if (mask & (1u << i))
			sel->pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* "0,2,7" for a PCR mask */
static const char *mask_list(uint32_t mask, char buf[80])
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < 24; i++)
		if (mask & (1u << i))
			n += (size_t)snprintf(buf + n, 80 - n, "%s%d", n ? "," : "", i);
	return buf;
}

/* A policy session (or a trial one) with PolicyPCR over mask applied.
 * pcr_digest NULL: the TPM takes the PCRs' current values; otherwise the
 * digest of the values to bind to (trial sessions only). */
static int pcr_policy_session(struct tpm *t, uint32_t mask, int trial, const TPM2B_DIGEST *pcr_digest,
			      struct slotsync_error *err)
{
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	TPML_PCR_SELECTION sel;
	TPM2B_DIGEST empty = { 0 };
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
				   trial ? TPM2_SE_TRIAL : TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &t->session);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(err, -EIO, "starting a policy session", rc);
	pcr_selection(mask, &sel);
	rc = Esys_PolicyPCR(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
			    pcr_digest ? pcr_digest : &empty, &sel);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_fail(err, -EIO, "applying the PCR policy", rc);
	return 0;
}

static int read_pcr(struct tpm *t, unsigned pcr, uint8_t value[32], struct slotsync_error *err)
{
	TPML_PCR_SELECTION sel, *out_sel = NULL;
	TPML_DIGEST *values = NULL;
	TSS2_RC rc;
	int r = 0;

	pcr_selection(1u << pcr, &sel);
	rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &out_sel, &values);
	if (rc != TSS2_RC_SUCCESS)
		r = tpm_fail(err, -EIO, "reading a PCR", rc);
	else if (values->count != 1 || values->digests[0].size != 32)
		r = slotsync_error_set(err, -ENOTSUP, "TPM: PCR %u has no SHA-256 bank", pcr);
	else
		memcpy(value, values->digests[0].buffer, 32);
	Esys_Free(out_sel);
	Esys_Free(values);
	return r;
}

/* PolicyPCR's pcrDigest for p: SHA-256 over the selected PCRs' values in
 * selection order, expect[n] for the PCRs of expect_mask and the current value
 * for the others. */
static int expected_pcr_digest(struct tpm *t, const struct slotsync_tpm_policy *p, TPM2B_DIGEST *d,
			       struct slotsync_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 32;
	int r = 0;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < 24 && r == 0; i++) {
		uint8_t v[32];
		if (!(p->pcr_mask & (1u << i)))
			continue;
		if (p->expect_mask & (1u << i))
			memcpy(v, p->expect[i], 32);
		else
			r = read_pcr(t, i, v, err);
		if (r == 0 && EVP_DigestUpdate(md, v, 32) != 1)
			r = slotsync_error_set(err, -EIO, "SHA-256 failed");
	}
	if (r == 0 && EVP_DigestFinal_ex(md, d->buffer, &n) != 1)
		r = slotsync_error_set(err, -EIO, "SHA-256 failed");
	d->size = 32;
	EVP_MD_CTX_free(md);
	return r;
}

int slotsync_tpm_seal_policy(const char *tcti, const uint8_t *secret, size_t len, const struct slotsync_tpm_policy *p,
			     uint8_t **blob, size_t *blob_len, struct slotsync_error *err)
{
	uint32_t pcr_mask = p->pcr_mask;
	struct tpm t;
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_PUBLIC pub = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation = { 0 };
	TPM2B_PRIVATE *out_priv = NULL;
	TPM2B_PUBLIC *out_pub = NULL;
	TPM2B_DIGEST *policy = NULL;
	uint8_t buf[HEADER_BYTES + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE)];
	size_t off = HEADER_BYTES;
	TSS2_RC rc;
	int r;

	*blob = NULL;
	if (len == 0 || len > SLOTSYNC_TPM_SECRET_MAX)
		return slotsync_error_set(err, -EINVAL, "TPM: a secret of %zu bytes cannot be sealed (1 to %d)", len,
					  SLOTSYNC_TPM_SECRET_MAX);
	if (pcr_mask >> 24)
		return slotsync_error_set(err, -EINVAL, "TPM: PCRs are 0 to 23");
	if (p->expect_mask & ~pcr_mask)
		return slotsync_error_set(err, -EINVAL, "TPM: expected values given for PCRs the policy does not select");
	r = tpm_open(&t, tcti, err);
	if (r < 0)
		return r;
	r = create_primary(&t, err);
	if (r < 0)
		goto out;
	pub.publicArea.type = TPM2_ALG_KEYEDHASH;
	pub.publicArea.nameAlg = TPM2_ALG_SHA256;
	pub.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
	pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	if (pcr_mask) {
		TPM2B_DIGEST pcr_digest = { 0 };
		if (p->expect_mask) {
			r = expected_pcr_digest(&t, p, &pcr_digest, err);
			if (r < 0)
				goto out;
		}
		r = pcr_policy_session(&t, pcr_mask, 1, p->expect_mask ? &pcr_digest : NULL, err);
		if (r < 0)
			goto out;
		rc = Esys_PolicyGetDigest(t.esys, t.session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &policy);
		if (rc != TSS2_RC_SUCCESS) {
			r = tpm_fail(err, -EIO, "computing the PCR policy", rc);
			goto out;
		}
		pub.publicArea.authPolicy = *policy;
		Esys_FlushContext(t.esys, t.session);
		t.session = ESYS_TR_NONE;
	} else {
		pub.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	}
	sens.sensitive.data.size = (UINT16)len;
	memcpy(sens.sensitive.data.buffer, secret, len);
	rc = Esys_Create(t.esys, t.primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &pub, &outside,
			 &creation, &out_priv, &out_pub, NULL, NULL, NULL);
	explicit_bzero(&sens, sizeof(sens));
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_fail(err, -EIO, "sealing", rc);
		goto out;
	}
	memcpy(buf, MAGIC, 6);
	buf[6] = 1;
	buf[7] = pcr_mask ? POLICY_PCR : POLICY_NONE;
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(pcr_mask >> (8 * i));
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(out_pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(out_priv, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
		r = slotsync_error_set(err, -EIO, "TPM: cannot encode the sealed object");
		goto out;
	}
	*blob = malloc(off);
	if (!*blob) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*blob, buf, off);
	*blob_len = off;
out:
	Esys_Free(out_priv);
	Esys_Free(out_pub);
	Esys_Free(policy);
	tpm_close(&t);
	return r;
}

int slotsync_tpm_unseal(const char *tcti, uint32_t require_mask, const uint8_t *blob, size_t blob_len, uint8_t *secret,
			size_t *len, struct slotsync_error *err)
{
	char have[80], want[80];
	struct tpm t;
	TPM2B_PUBLIC pub = { 0 };
	TPM2B_PRIVATE priv = { 0 };
	TPM2B_SENSITIVE_DATA *out = NULL;
	uint32_t mask = 0;
	size_t off = HEADER_BYTES;
	TSS2_RC rc;
	int r;

	if (blob_len < HEADER_BYTES || memcmp(blob, MAGIC, 6) != 0 || blob[6] != 1 || blob[7] > POLICY_PCR)
		return slotsync_error_set(err, -EBADMSG, "TPM: not a sealed object of this format");
	for (int i = 0; i < 4; i++)
		mask |= (uint32_t)blob[8 + i] << (8 * i);
	if ((blob[7] == POLICY_NONE) != (mask == 0) || mask >> 24)
		return slotsync_error_set(err, -EBADMSG, "TPM: the sealed object's header is damaged");
	if (require_mask >> 24)
		return slotsync_error_set(err, -EINVAL, "TPM: PCRs are 0 to 23");
	/* the device's policy decides; a blob made for another one is refused */
	if (mask != require_mask) {
		if (!mask)
			return slotsync_error_set(err, -EACCES,
						  "the sealed key carries no PCR policy, but this device requires PCRs %s "
						  "([tpm] pcrs in system.conf)",
						  mask_list(require_mask, want));
		if (!require_mask)
			return slotsync_error_set(err, -EACCES,
						  "the sealed key is bound to PCRs %s, but this device requires none "
						  "([tpm] pcrs in system.conf)",
						  mask_list(mask, have));
		return slotsync_error_set(err, -EACCES,
					  "the sealed key is bound to PCRs %s, but this device requires PCRs %s "
					  "([tpm] pcrs in system.conf)",
					  mask_list(mask, have), mask_list(require_mask, want));
	}
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, blob_len, &off, &pub) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, blob_len, &off, &priv) != TSS2_RC_SUCCESS || off != blob_len)
		return slotsync_error_set(err, -EBADMSG, "TPM: the sealed object is damaged");
	r = tpm_open(&t, tcti, err);
	if (r < 0)
		return r;
	r = create_primary(&t, err);
	if (r < 0)
		goto out;
	rc = Esys_Load(t.esys, t.primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &t.object);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_fail(err, -EACCES, "loading the sealed object (sealed by another TPM?)", rc);
		goto out;
	}
	if (require_mask) {
		r = pcr_policy_session(&t, require_mask, 0, NULL, err);
		if (r < 0)
			goto out;
		rc = Esys_Unseal(t.esys, t.object, t.session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	} else {
		rc = Esys_Unseal(t.esys, t.object, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	}
	if (rc != TSS2_RC_SUCCESS) {
		if ((rc & 0xfff) == TPM2_RC_POLICY_FAIL || (rc & 0x9f) == (TPM2_RC_POLICY_FAIL & 0x9f))
			r = slotsync_error_set(err, -EACCES,
					       "TPM refuses to unseal: PCRs %s no longer hold the values they held at sealing (%s)",
					       mask_list(require_mask, want), Tss2_RC_Decode(rc));
		else
			r = tpm_fail(err, -EACCES, "unsealing", rc);
		goto out;
	}
	if (out->size > SLOTSYNC_TPM_SECRET_MAX) {
		r = slotsync_error_set(err, -EBADMSG, "TPM: unsealed secret too large");
		goto out;
	}
	memcpy(secret, out->buffer, out->size);
	*len = out->size;
out:
	if (out) {
		explicit_bzero(out, sizeof(*out));
		Esys_Free(out);
	}
	tpm_close(&t);
	return r;
}

int slotsync_tpm_seal(const char *tcti, const uint8_t *secret, size_t len, uint32_t pcr_mask, uint8_t **blob,
		      size_t *blob_len, struct slotsync_error *err)
{
	struct slotsync_tpm_policy p = { .pcr_mask = pcr_mask };

	return slotsync_tpm_seal_policy(tcti, secret, len, &p, blob, blob_len, err);
}

int slotsync_tpm_pcr_read(const char *tcti, unsigned pcr, uint8_t value[32], struct slotsync_error *err)
{
	struct tpm t;
	int r;

	if (pcr > 23)
		return slotsync_error_set(err, -EINVAL, "TPM: PCRs are 0 to 23, not %u", pcr);
	r = tpm_open(&t, tcti, err);
	if (r < 0)
		return r;
	r = read_pcr(&t, pcr, value, err);
	tpm_close(&t);
	return r;
}

int slotsync_tpm_pcr_extend(const char *tcti, unsigned pcr, const uint8_t digest[32], struct slotsync_error *err)
{
	TPML_DIGEST_VALUES v = { .count = 1 };
	struct tpm t;
	TSS2_RC rc;
	int r;

	if (pcr > 23)
		return slotsync_error_set(err, -EINVAL, "TPM: PCRs are 0 to 23, not %u", pcr);
	r = tpm_open(&t, tcti, err);
	if (r < 0)
		return r;
	v.digests[0].hashAlg = TPM2_ALG_SHA256;
	memcpy(v.digests[0].digest.sha256, digest, 32);
	rc = Esys_PCR_Extend(t.esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
	if (rc != TSS2_RC_SUCCESS)
		r = slotsync_error_set(err, -EIO, "TPM: extending PCR %u failed: %s (0x%x)", pcr, Tss2_RC_Decode(rc), rc);
	tpm_close(&t);
	return r;
}

#else /* built without tpm2-tss */

static int tpm_disabled(struct slotsync_error *err)
{
	return slotsync_error_set(err, -ENOTSUP,
				  "TPM sealing is not in this build of slotsync (build it with -DSLOTSYNC_TPM=ON and tpm2-tss)");
}

int slotsync_tpm_seal_policy(const char *tcti, const uint8_t *secret, size_t len, const struct slotsync_tpm_policy *p,
			     uint8_t **blob, size_t *blob_len, struct slotsync_error *err)
{
	return tpm_disabled(err);
}

int slotsync_tpm_seal(const char *tcti, const uint8_t *secret, size_t len, uint32_t pcr_mask, uint8_t **blob,
		      size_t *blob_len, struct slotsync_error *err)
{
	return tpm_disabled(err);
}

int slotsync_tpm_unseal(const char *tcti, uint32_t require_mask, const uint8_t *blob, size_t blob_len, uint8_t *secret,
			size_t *len, struct slotsync_error *err)
{
	return tpm_disabled(err);
}

int slotsync_tpm_pcr_read(const char *tcti, unsigned pcr, uint8_t value[32], struct slotsync_error *err)
{
	return tpm_disabled(err);
}

int slotsync_tpm_pcr_extend(const char *tcti, unsigned pcr, const uint8_t digest[32], struct slotsync_error *err)
{
	return tpm_disabled(err);
}
#endif
