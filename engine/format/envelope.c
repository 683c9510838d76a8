/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Signed envelopes, bundles and pointers: see include/slotsync/envelope.h.
 *
 * Layout (little-endian):
 *   magic "SLOTSYNC" (8), kind "BNDL" or "PNTR" (4), format u32 = 1,
 *   part count u32, reserved u32 = 0, part lengths u64 x count, the parts,
 *   then the signature to the end of the file (DER CMS SignedData, detached,
 *   over every byte before it).
 */
#include "slotsync/envelope.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "ossl.h"
#include "slotsync/index.h"

#define ENVELOPE_MAGIC "SLOTSYNC"
#define ENVELOPE_FORMAT 1u
#define FIXED_HEADER 24u

static const char *const kind_tag[] = { "BNDL", "PNTR" };
static const char *const kind_name[] = { "bundle", "channel pointer" };
/* a bundle: manifest, index, and hooks when its manifest names any */
static const size_t kind_parts_min[] = { 2, 1 };
static const size_t kind_parts_max[] = { 3, 1 };

int slotsync_envelope_parse(uint8_t *buf, size_t len, enum slotsync_envelope_kind kind,
			    struct slotsync_envelope **out, struct slotsync_error *err)
{
	struct slotsync_envelope *e;
	uint64_t off, n = 0, sig_len;

	int r = 0;

	*out = NULL;
	if (len < FIXED_HEADER || memcmp(buf, ENVELOPE_MAGIC, 8) != 0)
		r = slotsync_error_set(err, -EBADMSG, "not a slotsync %s (no SLOTSYNC header)", kind_name[kind]);
	else if (memcmp(buf + 8, kind_tag[kind], 4) != 0)
		r = slotsync_error_set(err, -EBADMSG, "not a slotsync %s (its kind is \"%.4s\")", kind_name[kind],
				       (const char *)buf + 8);
	else if (io_get_le32(buf + 12) != ENVELOPE_FORMAT)
		r = slotsync_error_set(err, -EBADMSG, "%s has format %u; this slotsync reads format %u", kind_name[kind],
				       io_get_le32(buf + 12), ENVELOPE_FORMAT);
	else if ((n = io_get_le32(buf + 16)) < kind_parts_min[kind] || n > kind_parts_max[kind] || io_get_le32(buf + 20) != 0 ||
		 len < FIXED_HEADER + 8 * n)
		r = slotsync_error_set(err, -EBADMSG, "%s header is malformed", kind_name[kind]);
	if (r < 0) {
		free(buf);
		return r;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		free(buf);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	e->kind = kind;
	e->buf = buf;
	e->len = len;
	e->n_parts = (size_t)n;
	off = FIXED_HEADER + 8 * n;
	for (size_t i = 0; i < e->n_parts; i++) {
		uint64_t pl = io_get_le64(buf + FIXED_HEADER + 8 * i);
		if (pl > len - off) {
			slotsync_envelope_free(e);
			return slotsync_error_set(err, -EBADMSG, "%s is truncated: part %zu needs %" PRIu64 " bytes",
						  kind_name[kind], i + 1, pl);
		}
		e->part[i] = buf + off;
		e->part_len[i] = (size_t)pl;
		off += pl;
	}
	sig_len = len - off;
	if (sig_len == 0 || sig_len > SLOTSYNC_SIGNATURE_MAX_BYTES) {
		slotsync_envelope_free(e);
		return slotsync_error_set(err, -EBADMSG, "%s signature is %" PRIu64 " bytes, out of bounds (1..%u)%s",
					  kind_name[kind], sig_len, SLOTSYNC_SIGNATURE_MAX_BYTES,
					  sig_len ? "" : ": unsigned or truncated");
	}
	e->signed_len = (size_t)off;
	e->sig = buf + off;
	e->sig_len = (size_t)sig_len;
	*out = e;
	return 0;
}

int slotsync_envelope_read(const char *path, enum slotsync_envelope_kind kind, size_t max_bytes,
			   struct slotsync_envelope **out, struct slotsync_error *err)
{
	uint8_t *buf;
	size_t len;
	struct stat st;
	int r;

	*out = NULL;
	/* the size first: endless or huge data is refused before it is read */
	if (stat(path, &st) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s %s", kind_name[kind], path);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
		return slotsync_error_set(err, -EFBIG, "%s %s is %lld bytes, more than the limit of %zu",
					  kind_name[kind], path, (long long)st.st_size, max_bytes);
	r = io_read_file(path, max_bytes, &buf, &len, err);
	if (r < 0) {
		slotsync_error_prefix(err, "%s", kind_name[kind]);
		return r;
	}
	r = slotsync_envelope_parse(buf, len, kind, out, err);
	if (r < 0)
		slotsync_error_prefix(err, "%s", path);
	return r;
}

void slotsync_envelope_free(struct slotsync_envelope *e)
{
	if (!e)
		return;
	free(e->buf);
	free(e);
}

int slotsync_envelope_build(enum slotsync_envelope_kind kind, const uint8_t *const *parts, const size_t *lens,
			    size_t n_parts, uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	size_t total = FIXED_HEADER + 8 * n_parts, off;
	uint8_t *b;

	if (n_parts < kind_parts_min[kind] || n_parts > kind_parts_max[kind])
		return slotsync_error_set(err, -EINVAL, "a %s has %zu to %zu parts", kind_name[kind], kind_parts_min[kind],
					  kind_parts_max[kind]);
	for (size_t i = 0; i < n_parts; i++)
		total += lens[i];
	b = malloc(total);
	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b, ENVELOPE_MAGIC, 8);
	memcpy(b + 8, kind_tag[kind], 4);
	io_put_le32(b + 12, ENVELOPE_FORMAT);
	io_put_le32(b + 16, (uint32_t)n_parts);
	io_put_le32(b + 20, 0);
	off = FIXED_HEADER + 8 * n_parts;
	for (size_t i = 0; i < n_parts; i++) {
		io_put_le32(b + FIXED_HEADER + 8 * i, (uint32_t)lens[i]);
		io_put_le32(b + FIXED_HEADER + 8 * i + 4, (uint32_t)((uint64_t)lens[i] >> 32));
		memcpy(b + off, parts[i], lens[i]);
		off += lens[i];
	}
	*out = b;
	*out_len = total;
	return 0;
}

int slotsync_envelope_finish(const uint8_t *unsigned_buf, size_t unsigned_len, const uint8_t *sig, size_t sig_len,
			     uint8_t **out, size_t *out_len, struct slotsync_error *err)
{
	uint8_t *b;

	if (sig_len == 0 || sig_len > SLOTSYNC_SIGNATURE_MAX_BYTES)
		return slotsync_error_set(err, -EINVAL, "signature of %zu bytes is out of bounds", sig_len);
	b = malloc(unsigned_len + sig_len);
	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b, unsigned_buf, unsigned_len);
	memcpy(b + unsigned_len, sig, sig_len);
	*out = b;
	*out_len = unsigned_len + sig_len;
	return 0;
}

static int signing_time_of(CMS_SignerInfo *si, time_t *out)
{
	int loc = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	struct tm tm;

	if (loc < 0 || !(attr = CMS_signed_get_attr(si, loc)) || !(t = X509_ATTRIBUTE_get0_type(attr, 0)))
		return -1;
	if (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME)
		return -1;
	if (!ASN1_TIME_to_tm((const ASN1_TIME *)t->value.asn1_string, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

int slotsync_envelope_verify(const struct slotsync_envelope *e, const char *keyring_pem,
			     struct slotsync_signer_info *info, struct slotsync_error *err)
{
	const unsigned char *p = e->sig;
	CMS_ContentInfo *cms = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *signers = NULL, *certs = NULL;
	STACK_OF(CMS_SignerInfo) *infos;
	BIO *content = NULL;
	X509 *signer;
	char why[256];
	int r = 0;

	memset(info, 0, sizeof(*info));
	ERR_clear_error();
	store = X509_STORE_new();
	if (!store || X509_STORE_load_file(store, keyring_pem) != 1) {
		r = slotsync_error_set(err, -ENOENT, "cannot load keyring %s: %s", keyring_pem,
				       ossl_error_text(why, sizeof(why)));
		goto out;
	}
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)e->sig_len);
	if (!cms || p != e->sig + e->sig_len || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		r = slotsync_error_set(err, -EBADMSG, "%s signature is not a CMS SignedData structure",
				       kind_name[e->kind]);
		goto out;
	}
	infos = CMS_get0_SignerInfos(cms);
	if (!infos || sk_CMS_SignerInfo_num(infos) != 1) {
		r = slotsync_error_set(err, -EBADMSG, "%s signature must have exactly one signer", kind_name[e->kind]);
		goto out;
	}
	content = BIO_new_mem_buf(e->buf, (int)e->signed_len);
	/* The signature itself (the signer's certificate is in the CMS).  The chain
	 * is checked below, at the signing time and for code signing, which
	 * CMS_verify's own check (now, S/MIME purpose) would not do. */
	if (!content ||
	    CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		r = slotsync_error_set(err, -EBADMSG, "%s signature does not match its content (tampered?): %s",
				       kind_name[e->kind], ossl_error_text(why, sizeof(why)));
		goto out;
	}
	signers = CMS_get0_signers(cms);
	if (!signers || sk_X509_num(signers) != 1) {
		r = slotsync_error_set(err, -EBADMSG, "%s signature does not carry its signer's certificate",
				       kind_name[e->kind]);
		goto out;
	}
	signer = sk_X509_value(signers, 0);
	X509_NAME_oneline(X509_get_subject_name(signer), info->subject, sizeof(info->subject));
	if (signing_time_of(sk_CMS_SignerInfo_value(infos, 0), &info->signing_time) < 0) {
		r = slotsync_error_set(err, -EBADMSG, "%s signature has no signing time", kind_name[e->kind]);
		goto out;
	}
	/* the chain, to the keyring, as it stood when the signature was made */
	certs = CMS_get1_certs(cms);
	ctx = X509_STORE_CTX_new();
	if (!ctx || X509_STORE_CTX_init(ctx, store, signer, certs) != 1) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, info->signing_time);
	if (X509_verify_cert(ctx) != 1) {
		int code = X509_STORE_CTX_get_error(ctx);
		char when[32];
		slotsync_time_format(info->signing_time, when);
		r = slotsync_error_set(err, -EPERM, "%s signer \"%s\" is not trusted by keyring %s: %s (checked at the signing time, %s)",
				       kind_name[e->kind], info->subject, keyring_pem, X509_verify_cert_error_string(code),
				       when);
		goto out;
	}
	if (!(X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(signer) & XKU_CODE_SIGN)) {
		r = slotsync_error_set(err, -EPERM,
				       "%s signer \"%s\" is not allowed to sign releases (its certificate lacks the codeSigning extended key usage)",
				       kind_name[e->kind], info->subject);
		goto out;
	}
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_free(signers);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

/* Part 3: the hook programs the manifest names, each as u16 name length, the
 * name, u32 size, the bytes; exactly the names the manifest gives. */
static int parse_hooks(struct slotsync_bundle *b, struct slotsync_error *err)
{
	const char *want[2] = { b->manifest->hook_pre_install, b->manifest->hook_post_install };
	size_t n_want = (size_t)!!want[0] + (size_t)(want[1] && (!want[0] || strcmp(want[0], want[1])));
	const uint8_t *p, *end;

	if (b->env->n_parts < 3) {
		if (n_want)
			return slotsync_error_set(err, -EBADMSG, "bundle manifest names hooks, but the bundle carries none");
		return 0;
	}
	p = b->env->part[2];
	end = p + b->env->part_len[2];
	while (p < end) {
		struct slotsync_bundle_hook *h;
		size_t nl, bl;
		if (end - p < 2 || (nl = io_get_le16(p)) == 0 || nl >= sizeof(h->name) || (size_t)(end - p) < 2 + nl + 4)
			return slotsync_error_set(err, -EBADMSG, "bundle hooks part is malformed");
		if (b->n_hooks == SLOTSYNC_BUNDLE_MAX_HOOKS)
			return slotsync_error_set(err, -EBADMSG, "bundle carries more than %d hooks", SLOTSYNC_BUNDLE_MAX_HOOKS);
		h = &b->hooks[b->n_hooks];
		memcpy(h->name, p + 2, nl);
		h->name[nl] = '\0';
		bl = io_get_le32(p + 2 + nl);
		if (strlen(h->name) != nl || (size_t)(end - p) - 2 - nl - 4 < bl)
			return slotsync_error_set(err, -EBADMSG, "bundle hook \"%s\" is malformed", h->name);
		if ((!want[0] || strcmp(h->name, want[0])) && (!want[1] || strcmp(h->name, want[1])))
			return slotsync_error_set(err, -EBADMSG, "bundle carries hook \"%s\" that its manifest does not name",
						  h->name);
		if (slotsync_bundle_hook(b, h->name))
			return slotsync_error_set(err, -EBADMSG, "bundle carries hook \"%s\" twice", h->name);
		h->data = p + 2 + nl + 4;
		h->len = bl;
		b->n_hooks++;
		p += 2 + nl + 4 + bl;
	}
	for (int i = 0; i < 2; i++)
		if (want[i] && !slotsync_bundle_hook(b, want[i]))
			return slotsync_error_set(err, -EBADMSG, "bundle manifest names hook \"%s\", which the bundle lacks",
						  want[i]);
	(void)n_want;
	return 0;
}

int slotsync_bundle_open(const char *path, const char *keyring_pem, struct slotsync_bundle **out,
			 struct slotsync_error *err)
{
	struct slotsync_bundle *b = calloc(1, sizeof(*b));
	struct slotsync_index *idx = NULL;
	uint8_t digest[SLOTSYNC_DIGEST_BYTES];
	int r;

	*out = NULL;
	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	r = slotsync_envelope_read(path, SLOTSYNC_ENVELOPE_BUNDLE, SLOTSYNC_BUNDLE_MAX_BYTES, &b->env, err);
	if (r < 0)
		goto fail;
	r = slotsync_envelope_verify(b->env, keyring_pem, &b->signer, err);
	if (r < 0)
		goto fail;
	r = slotsync_manifest_parse(b->env->part[0], b->env->part_len[0], &b->manifest, err);
	if (r < 0) {
		slotsync_error_prefix(err, "bundle manifest");
		goto fail;
	}
	b->index = b->env->part[1];
	b->index_len = b->env->part_len[1];
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, b->index, b->index_len, digest);
	if (memcmp(digest, b->manifest->index_sha256, SLOTSYNC_DIGEST_BYTES) != 0) {
		r = slotsync_error_set(err, -EBADMSG, "bundle index does not have the digest its manifest names");
		goto fail;
	}
	r = slotsync_index_parse(b->index, b->index_len, &idx, err);
	if (r < 0) {
		slotsync_error_prefix(err, "bundle index");
		goto fail;
	}
	if (slotsync_index_image_size(idx) != b->manifest->image_size) {
		r = slotsync_error_set(err, -EBADMSG, "bundle index describes %" PRIu64 " bytes, the manifest %" PRIu64,
				       slotsync_index_image_size(idx), b->manifest->image_size);
		goto fail;
	}
	slotsync_index_free(idx);
	idx = NULL;
	r = parse_hooks(b, err);
	if (r < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	slotsync_index_free(idx);
	slotsync_bundle_free(b);
	return r;
}

const struct slotsync_bundle_hook *slotsync_bundle_hook(const struct slotsync_bundle *b, const char *name)
{
	for (size_t i = 0; name && i < b->n_hooks; i++)
		if (!strcmp(b->hooks[i].name, name))
			return &b->hooks[i];
	return NULL;
}

void slotsync_bundle_free(struct slotsync_bundle *b)
{
	if (!b)
		return;
	slotsync_manifest_free(b->manifest);
	slotsync_envelope_free(b->env);
	free(b);
}

int slotsync_pointer_open(const char *path, const char *keyring_pem, struct slotsync_pointer **out,
			  struct slotsync_signer_info *signer, struct slotsync_error *err)
{
	struct slotsync_envelope *e = NULL;
	int r;

	*out = NULL;
	r = slotsync_envelope_read(path, SLOTSYNC_ENVELOPE_POINTER, SLOTSYNC_POINTER_MAX_BYTES, &e, err);
	if (r == 0)
		r = slotsync_envelope_verify(e, keyring_pem, signer, err);
	if (r == 0) {
		r = slotsync_pointer_parse(e->part[0], e->part_len[0], out, err);
		if (r < 0)
			slotsync_error_prefix(err, "channel pointer");
	}
	slotsync_envelope_free(e);
	return r;
}
