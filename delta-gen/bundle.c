/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Signed bundles and channel pointers, as CI makes them: see gen.h and
 * docs/format.md.  Keys come from a PEM file or, through OpenSSL's pkcs11
 * engine (Debian's libengine-pkcs11-openssl), from a PKCS#11 token, so that a
 * release key can live in an HSM. */
#define OPENSSL_SUPPRESS_DEPRECATED /* the ENGINE interface: Debian's pkcs11 module is an engine */
#include <errno.h>
#include <inttypes.h>
#include <openssl/cms.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "gen.h"
#include "slotsync/bundle.h"
#include "slotsync/index.h"
#include "slotsync/log.h"

static const char *ossl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return "no further detail";
	ERR_error_string_n(e, buf, cap);
	return buf;
}

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
					  ossl_reason(why, sizeof(why)));
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
						  ossl_reason(why, sizeof(why)));
		if (g->pkcs11_module && ENGINE_ctrl_cmd_string(s->engine, "MODULE_PATH", g->pkcs11_module, 0) != 1)
			return slotsync_error_set(err, -EINVAL, "pkcs11 engine refuses module %s: %s", g->pkcs11_module,
						  ossl_reason(why, sizeof(why)));
		if (ENGINE_init(s->engine) != 1) {
			ENGINE_free(s->engine);
			s->engine = NULL;
			return slotsync_error_set(err, -EIO, "cannot start the pkcs11 engine: %s", ossl_reason(why, sizeof(why)));
		}
		s->key = ENGINE_load_private_key(s->engine, g->key, NULL, NULL);
		if (!s->key)
			return slotsync_error_set(err, -ENOENT, "no private key at %s: %s", g->key,
						  ossl_reason(why, sizeof(why)));
	} else {
		f = fopen(g->key, "r");
		if (!f)
			return slotsync_error_set_errno(err, -errno, "cannot open signer key %s", g->key);
		s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!s->key)
			return slotsync_error_set(err, -EINVAL, "%s holds no PEM private key: %s", g->key,
						  ossl_reason(why, sizeof(why)));
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
		r = slotsync_error_set(err, -EIO, "cannot set up the signature: %s", ossl_reason(why, sizeof(why)));
		goto out;
	}
	for (int i = 0; i < sk_X509_num(s->chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(s->chain, i))) {
			r = slotsync_error_set(err, -EIO, "cannot add the chain: %s", ossl_reason(why, sizeof(why)));
			goto out;
		}
	if (CMS_final(cms, in, NULL, flags) != 1 || (n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
		r = slotsync_error_set(err, -EIO, "signing failed: %s", ossl_reason(why, sizeof(why)));
		goto out;
	}
	*sig = der;
	*sig_len = (size_t)n;
out:
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	return r;
}

/* Signs an envelope of kind with parts and writes it to out atomically. */
static int write_signed(const struct gen_signer *g, enum slotsync_envelope_kind kind, const uint8_t *const *parts,
			const size_t *lens, size_t n_parts, const char *out, struct slotsync_error *err)
{
	struct loaded_signer s;
	uint8_t *unsigned_buf = NULL, *full = NULL, *sig = NULL;
	size_t unsigned_len, full_len, sig_len = 0;
	int r;

	r = signer_load(g, &s, err);
	if (r == 0)
		r = slotsync_envelope_build(kind, parts, lens, n_parts, &unsigned_buf, &unsigned_len, err);
	if (r == 0)
		r = sign(&s, unsigned_buf, unsigned_len, &sig, &sig_len, err);
	if (r == 0)
		r = slotsync_envelope_finish(unsigned_buf, unsigned_len, sig, sig_len, &full, &full_len, err);
	if (r == 0)
		r = io_write_file_atomic(out, full, full_len, err);
	OPENSSL_free(sig);
	free(unsigned_buf);
	free(full);
	signer_free(&s);
	return r;
}

static int sha256_file(const char *path, uint8_t out[SLOTSYNC_DIGEST_BYTES], uint64_t *size,
		       struct slotsync_error *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = malloc(1u << 20);
	FILE *f = fopen(path, "rb");
	size_t n;
	int r = 0;

	*size = 0;
	if (!f) {
		r = slotsync_error_set_errno(err, -errno, "cannot open image %s", path);
		goto out;
	}
	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while ((n = fread(buf, 1, 1u << 20, f)) > 0) {
		EVP_DigestUpdate(ctx, buf, n);
		*size += n;
	}
	if (ferror(f)) {
		r = slotsync_error_set(err, -EIO, "cannot read image %s", path);
		goto out;
	}
	EVP_DigestFinal_ex(ctx, out, NULL);
out:
	if (f)
		fclose(f);
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* The bundle's hooks part (docs/format.md): each hook program given, as
 * u16 name length, name (the file's base name), u32 size, bytes.  NULL if none. */
static int hooks_part(const struct gen_bundle_options *o, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	const char *files[2] = { o->hook_pre_install, o->hook_post_install };
	uint8_t *buf = NULL;
	size_t len = 0;

	*out = NULL;
	*out_len = 0;
	for (int i = 0; i < 2; i++) {
		uint8_t *data = NULL, *nb;
		size_t dl = 0, nl;
		const char *name;
		int r;
		if (!files[i] || (i == 1 && files[0] && !strcmp(basename((char *)files[0]), basename((char *)files[1]))))
			continue;
		name = basename((char *)files[i]);
		nl = strlen(name);
		r = io_read_file(files[i], 16u << 20, &data, &dl, err);
		if (r < 0) {
			free(buf);
			slotsync_error_prefix(err, "hook");
			return r;
		}
		nb = realloc(buf, len + 2 + nl + 4 + dl);
		if (!nb) {
			free(data);
			free(buf);
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		}
		buf = nb;
		io_put_le16(buf + len, (uint16_t)nl);
		memcpy(buf + len + 2, name, nl);
		io_put_le32(buf + len + 2 + nl, (uint32_t)dl);
		if (dl)
			memcpy(buf + len + 2 + nl + 4, data, dl);
		len += 2 + nl + 4 + dl;
		free(data);
	}
	*out = buf;
	*out_len = len;
	return 0;
}

int gen_bundle(const struct gen_bundle_options *o, const char *out, struct slotsync_error *err)
{
	struct slotsync_manifest m = { 0 };
	char tmp_index[4200];
	uint8_t *index = NULL;
	size_t index_len, manifest_len;
	char *manifest = NULL;
	uint8_t *hooks = NULL;
	size_t hooks_len = 0;
	struct gen_make_stats ms;
	struct slotsync_index *idx = NULL;
	int r;

	if (!o->version || !o->compatible || !o->image || !o->store)
		return slotsync_error_set(err, -EINVAL, "bundle needs --store, --image, --version and --compatible");
	if (o->allow_downgrade_to && strcmp(o->allow_downgrade_to, o->version) != 0)
		return slotsync_error_set(err, -EINVAL,
					  "--allow-downgrade-to %s must name this release's version (%s): a release can only allow going back to itself",
					  o->allow_downgrade_to, o->version);
	if (o->n_store_urls > SLOTSYNC_MANIFEST_MAX_STORES)
		return slotsync_error_set(err, -EINVAL, "at most %d --store-url", SLOTSYNC_MANIFEST_MAX_STORES);
	/* the key first: a bad key must not cost a whole chunking run */
	{
		struct loaded_signer s;
		r = signer_load(&o->signer, &s, err);
		signer_free(&s);
		if (r < 0)
			return r;
	}
	if (o->n_deltas > SLOTSYNC_MANIFEST_MAX_DELTAS)
		return slotsync_error_set(err, -EINVAL, "at most %d --delta-from", SLOTSYNC_MANIFEST_MAX_DELTAS);
	snprintf(tmp_index, sizeof(tmp_index), "%s.index-tmp.%d", out, (int)getpid());
	r = gen_make(o->image, tmp_index, &o->make, &ms, err);
	if (r == 0)
		r = io_read_file(tmp_index, SLOTSYNC_BUNDLE_MAX_BYTES, &index, &index_len, err);
	/* delta objects from each base into the store; the manifest names their
	 * indexes by digest, so the signature covers them */
	for (int i = 0; r == 0 && i < o->n_deltas; i++) {
		struct gen_delta_options d = o->delta;
		struct gen_delta_stats st;
		d.store = o->store;
		d.new_index = tmp_index;
		d.new_image = o->image;
		r = gen_delta_pair(&d, o->delta_bases[i], o->delta_base_images[i], &st, err);
		if (r < 0) {
			slotsync_error_prefix(err, "delta objects from %s", o->delta_bases[i]);
			break;
		}
		memcpy(m.deltas[m.n_deltas].base, st.base_digest, SLOTSYNC_DIGEST_BYTES);
		memcpy(m.deltas[m.n_deltas].sha256, st.index_sha256, SLOTSYNC_DIGEST_BYTES);
		m.deltas[m.n_deltas].size = st.index_bytes;
		m.n_deltas++;
		slotsync_log_info("delta objects from %s: %" PRIu64 " objects, %" PRIu64 " bytes, replace %" PRIu64
				  " bytes of chunks",
				  o->delta_bases[i], st.objects, st.object_bytes + st.index_bytes, st.replaced_plain);
	}
	unlink(tmp_index);
	if (r < 0)
		goto out;
	r = slotsync_index_parse(index, index_len, &idx, err);
	if (r < 0)
		goto out;
	m.version = (char *)o->version;
	m.compatible = (char *)o->compatible;
	m.security_version = o->security_version;
	m.created = o->created;
	m.expires = o->expires;
	r = sha256_file(o->image, m.image_sha256, &m.image_size, err);
	if (r < 0)
		goto out;
	if (m.image_size != slotsync_index_image_size(idx)) {
		r = slotsync_error_set(err, -EIO, "image %s changed while it was chunked", o->image);
		goto out;
	}
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, index, index_len, m.index_sha256);
	for (int i = 0; i < o->n_store_urls; i++)
		m.stores[m.n_stores++] = (char *)o->store_urls[i];
	m.verity_root_hash = (char *)o->verity_root_hash;
	m.hook_pre_install = o->hook_pre_install ? basename((char *)o->hook_pre_install) : NULL;
	m.hook_post_install = o->hook_post_install ? basename((char *)o->hook_post_install) : NULL;
	m.downgrade_allowed_to = (char *)o->allow_downgrade_to;
	r = slotsync_manifest_serialize(&m, &manifest, &manifest_len, err);
	if (r < 0)
		goto out;
	{
		/* what the device will parse must parse here too */
		struct slotsync_manifest *check = NULL;
		r = slotsync_manifest_parse((const uint8_t *)manifest, manifest_len, &check, err);
		slotsync_manifest_free(check);
		if (r < 0) {
			slotsync_error_prefix(err, "the manifest would be refused");
			goto out;
		}
	}
	r = hooks_part(o, &hooks, &hooks_len, err);
	if (r < 0)
		goto out;
	{
		const uint8_t *parts[3] = { (const uint8_t *)manifest, index, hooks };
		size_t lens[3] = { manifest_len, index_len, hooks_len };
		r = write_signed(&o->signer, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, hooks ? 3 : 2, out, err);
	}
out:
	free(hooks);
	slotsync_index_free(idx);
	free(index);
	free(manifest);
	return r;
}

int gen_channel(const struct gen_channel_options *o, const char *out, struct slotsync_error *err)
{
	struct slotsync_pointer p = { 0 };
	uint8_t *bundle = NULL;
	size_t bundle_len, json_len;
	char *json = NULL;
	struct slotsync_envelope *env = NULL;
	int r;

	if (!o->bundle_url || !o->bundle || !o->expires)
		return slotsync_error_set(err, -EINVAL, "channel needs --bundle-url, --bundle, --version and --expires");
	r = io_read_file(o->bundle, SLOTSYNC_BUNDLE_MAX_BYTES, &bundle, &bundle_len, err);
	if (r < 0)
		return r;
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, bundle, bundle_len, p.bundle_sha256);
	/* a pointer to something that is not a bundle helps no one */
	r = slotsync_envelope_parse(bundle, bundle_len, SLOTSYNC_ENVELOPE_BUNDLE, &env, err);
	bundle = NULL; /* owned by the envelope (or freed) now */
	if (r < 0) {
		slotsync_error_prefix(err, "%s", o->bundle);
		goto out;
	}
	p.version = o->version;
	p.expires = o->expires;
	p.bundle_url = (char *)o->bundle_url;
	p.bundle_size = bundle_len;
	p.compatible = (char *)o->compatible;
	r = slotsync_pointer_serialize(&p, &json, &json_len, err);
	if (r == 0) {
		const uint8_t *parts[1] = { (const uint8_t *)json };
		size_t lens[1] = { json_len };
		r = write_signed(&o->signer, SLOTSYNC_ENVELOPE_POINTER, parts, lens, 1, out, err);
	}
out:
	slotsync_envelope_free(env);
	free(json);
	return r;
}
