/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen: the signer of bundles and channel pointers (signer.h).  Keys
 * come from a PEM file or, through OpenSSL's pkcs11 engine (Debian's
 * libengine-pkcs11-openssl), from a PKCS#11 token, so that a release key can
 * live in an HSM; signatures are CMS SignedData (docs/format.md). */
#define OPENSSL_SUPPRESS_DEPRECATED /* the ENGINE interface: Debian's pkcs11 module is an engine */
#include <errno.h>
#include <openssl/cms.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "signer.h"
#include "ossl.h"

struct loaded_signer {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	ENGINE *engine;
};

static void signer_free(struct loaded_signer *s)
{
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
	sk_X509_pop_free(s->chain, X509_free);
	if (s->engine) {
		ENGINE_finish(s->engine);
		ENGINE_free(s->engine);
	}
}

static int signer_load(const struct gen_signer *g, struct loaded_signer *s, struct slotsync_error *err)
{
	char why[256];
	FILE *f;

	memset(s, 0, sizeof(*s));
	ERR_clear_error();
	if (!g->cert || !g->key)
		return slotsync_error_set(err, -EINVAL, "signing needs --signer-cert and --signer-key");
	f = fopen(g->cert, "r");
	if (!f)
		return slotsync_error_set_errno(err, -errno, "cannot open signer certificate %s", g->cert);
	s->cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!s->cert)
		return slotsync_error_set(err, -EINVAL, "%s holds no PEM certificate: %s", g->cert,
					  ossl_error_text(why, sizeof(why)));
	if (!(X509_get_extension_flags(s->cert) & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(s->cert) & XKU_CODE_SIGN))
		return slotsync_error_set(err, -EINVAL,
					  "signer certificate %s lacks the codeSigning extended key usage: devices would refuse what it signs",
					  g->cert);
	if (!strncmp(g->key, "pkcs11:", 7)) {
		ENGINE_load_builtin_engines();
		s->engine = ENGINE_by_id("pkcs11");
		if (!s->engine)
			return slotsync_error_set(err, -ENOENT,
						  "cannot load OpenSSL's pkcs11 engine (Debian package libengine-pkcs11-openssl): %s",
						  ossl_error_text(why, sizeof(why)));
		if (g->pkcs11_module && ENGINE_ctrl_cmd_string(s->engine, "MODULE_PATH", g->pkcs11_module, 0) != 1)
			return slotsync_error_set(err, -EINVAL, "pkcs11 engine refuses module %s: %s", g->pkcs11_module,
						  ossl_error_text(why, sizeof(why)));
		if (ENGINE_init(s->engine) != 1) {
			ENGINE_free(s->engine);
			s->engine = NULL;
			return slotsync_error_set(err, -EIO, "cannot start the pkcs11 engine: %s", ossl_error_text(why, sizeof(why)));
		}
		s->key = ENGINE_load_private_key(s->engine, g->key, NULL, NULL);
		if (!s->key)
			return slotsync_error_set(err, -ENOENT, "no private key at %s: %s", g->key,
						  ossl_error_text(why, sizeof(why)));
	} else {
		f = fopen(g->key, "r");
		if (!f)
			return slotsync_error_set_errno(err, -errno, "cannot open signer key %s", g->key);
		s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!s->key)
			return slotsync_error_set(err, -EINVAL, "%s holds no PEM private key: %s", g->key,
						  ossl_error_text(why, sizeof(why)));
	}
	if (X509_check_private_key(s->cert, s->key) != 1)
		return slotsync_error_set(err, -EINVAL, "signer key %s does not belong to certificate %s", g->key, g->cert);
	s->chain = sk_X509_new_null();
	if (!s->chain)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	if (g->chain) {
		X509 *c;
		f = fopen(g->chain, "r");
		if (!f)
			return slotsync_error_set_errno(err, -errno, "cannot open chain %s", g->chain);
		while ((c = PEM_read_X509(f, NULL, NULL, NULL)))
			sk_X509_push(s->chain, c);
		fclose(f);
		ERR_clear_error(); /* the end of the file */
		if (sk_X509_num(s->chain) == 0)
			return slotsync_error_set(err, -EINVAL, "chain %s holds no PEM certificate", g->chain);
	}
	return 0;
}

/* CMS SignedData over data, detached, SHA-256, signer certificate and chain
 * included; DER into *sig (OPENSSL_malloc'd: OPENSSL_free). */
static int sign(const struct loaded_signer *s, const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len,
		struct slotsync_error *err)
{
	const unsigned int flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	BIO *in = BIO_new_mem_buf(data, (int)len);
	unsigned char *der = NULL;
	char why[256];
	int n, r = 0;

	if (!cms || !in || !CMS_add1_signer(cms, s->cert, s->key, EVP_sha256(), flags)) {
		r = slotsync_error_set(err, -EIO, "cannot set up the signature: %s", ossl_error_text(why, sizeof(why)));
		goto out;
	}
	for (int i = 0; i < sk_X509_num(s->chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(s->chain, i))) {
			r = slotsync_error_set(err, -EIO, "cannot add the chain: %s", ossl_error_text(why, sizeof(why)));
			goto out;
		}
	if (CMS_final(cms, in, NULL, flags) != 1 || (n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
		r = slotsync_error_set(err, -EIO, "signing failed: %s", ossl_error_text(why, sizeof(why)));
		goto out;
	}
	*sig = der;
	*sig_len = (size_t)n;
out:
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	return r;
}

int signer_sign_envelope(const struct gen_signer *g, enum slotsync_envelope_kind kind, const uint8_t *const *parts,
			 const size_t *lens, size_t n_parts, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	struct loaded_signer s;
	uint8_t *unsigned_buf = NULL, *sig = NULL;
	size_t unsigned_len, sig_len = 0;
	int r;

	*out = NULL;
	r = signer_load(g, &s, err);
	if (r == 0)
		r = slotsync_envelope_build(kind, parts, lens, n_parts, &unsigned_buf, &unsigned_len, err);
	if (r == 0)
		r = sign(&s, unsigned_buf, unsigned_len, &sig, &sig_len, err);
	if (r == 0)
		r = slotsync_envelope_finish(unsigned_buf, unsigned_len, sig, sig_len, out, out_len, err);
	OPENSSL_free(sig);
	free(unsigned_buf);
	signer_free(&s);
	return r;
}

int signer_write_envelope(const struct gen_signer *g, enum slotsync_envelope_kind kind, const uint8_t *const *parts,
			  const size_t *lens, size_t n_parts, const char *out, struct slotsync_error *err)
{
	uint8_t *full = NULL;
	size_t full_len = 0;
	int r;

	r = signer_sign_envelope(g, kind, parts, lens, n_parts, &full, &full_len, err);
	if (r == 0)
		r = io_write_file_atomic(out, full, full_len, err);
	free(full);
	return r;
}

int signer_check(const struct gen_signer *g, struct slotsync_error *err)
{
	struct loaded_signer s;
	int r = signer_load(g, &s, err);

	signer_free(&s);
	return r;
}
