/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Signed envelopes, bundles and pointers: see include/slotsync/envelope.h.
 *
 * Layout (little-endian):
 *   magic "SLOTSYNC" (8), kind "BNDL" or "PNTR" (4), format u32 = 1,
 *   part count u32, reserved u32 = 0, part lengths u64 x count, the parts,
 *   then the signature (DER CMS SignedData, detached, over every byte before
 *   it).  The signature ends the file, except in a bundle that embeds chunks
 *   (slotsync-gen bundle --embed): its fourth part is a signed directory of
 *   chunk frames that follow the signature, up to the end of the file.  The
 *   envelope's end is found from the signature's own DER length, so that the
 *   frames are never read into memory with the rest.
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
static const size_t kind_parts_max[] = { 4, 1 };

#define EMBED_MAGIC "SSEMBED1"
#define EMBED_HEADER 24u
#define EMBED_ENTRY 48u

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

/* The length of the envelope at the start of fd (size bytes): its header,
 * parts and the DER signature after them.  The whole file when the layout
 * cannot be followed (the parser then says what is wrong). */
static uint64_t envelope_extent(int fd, uint64_t size)
{
	uint8_t h[FIXED_HEADER + 8 * SLOTSYNC_ENVELOPE_MAX_PARTS], d[5];
	uint64_t off, n, der;

	if (size < FIXED_HEADER || io_pread_full(fd, h, FIXED_HEADER, 0) != FIXED_HEADER)
		return size;
	n = io_get_le32(h + 16);
	if (n == 0 || n > SLOTSYNC_ENVELOPE_MAX_PARTS || size < FIXED_HEADER + 8 * n ||
	    io_pread_full(fd, h + FIXED_HEADER, 8 * n, FIXED_HEADER) != (ssize_t)(8 * n))
		return size;
	off = FIXED_HEADER + 8 * n;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t pl = io_get_le64(h + FIXED_HEADER + 8 * i);
		if (pl > size - off)
			return size;
		off += pl;
	}
	/* a DER SEQUENCE: tag 0x30, then its length in short or long form */
	if (size - off < sizeof(d) || io_pread_full(fd, d, sizeof(d), off) != (ssize_t)sizeof(d) || d[0] != 0x30)
		return size;
	if (d[1] < 0x80)
		der = 2 + (uint64_t)d[1];
	else if (d[1] == 0x81)
		der = 3 + (uint64_t)d[2];
	else if (d[1] == 0x82)
		der = 4 + ((uint64_t)d[2] << 8 | d[3]);
	else if (d[1] == 0x83)
		der = 5 + ((uint64_t)d[2] << 16 | (uint64_t)d[3] << 8 | d[4]);
	else
		return size;
	return der < size - off ? off + der : size;
}

int slotsync_envelope_read(const char *path, enum slotsync_envelope_kind kind, size_t max_bytes,
			   struct slotsync_envelope **out, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	uint64_t size, len;
	struct stat st;
	ssize_t got;
	int fd, r;

	*out = NULL;
	/* the size first: endless or huge data is refused before it is read */
	if (stat(path, &st) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s %s", kind_name[kind], path);
	if (!S_ISREG(st.st_mode) || kind != SLOTSYNC_ENVELOPE_BUNDLE) {
		if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
			return slotsync_error_set(err, -EFBIG, "%s %s is %lld bytes, more than the limit of %zu",
						  kind_name[kind], path, (long long)st.st_size, max_bytes);
		size_t n;
		r = io_read_file(path, max_bytes, &buf, &n, err);
		if (r < 0) {
			slotsync_error_prefix(err, "%s", kind_name[kind]);
			return r;
		}
		r = slotsync_envelope_parse(buf, n, kind, out, err);
		if (r < 0)
			slotsync_error_prefix(err, "%s", path);
		return r;
	}
	/* a bundle: only the envelope is read; chunks embedded after it stay on disk */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s %s", kind_name[kind], path);
	size = (uint64_t)st.st_size;
	len = envelope_extent(fd, size);
	if (len > max_bytes) {
		close(fd);
		return slotsync_error_set(err, -EFBIG, "%s %s is %" PRIu64 " bytes, more than the limit of %zu%s",
					  kind_name[kind], path, len, max_bytes, len < size ? " (embedded chunks aside)" : "");
	}
	buf = malloc(len ? (size_t)len : 1);
	if (!buf) {
		close(fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	got = io_pread_full(fd, buf, (size_t)len, 0);
	close(fd);
	if (got != (ssize_t)len) {
		free(buf);
		return slotsync_error_set_errno(err, got < 0 ? (int)got : -EIO, "cannot read %s %s", kind_name[kind], path);
	}
	r = slotsync_envelope_parse(buf, (size_t)len, kind, out, err);
	if (r < 0) {
		slotsync_error_prefix(err, "%s", path);
		return r;
	}
	(*out)->data_offset = len;
	(*out)->data_len = size - len;
	return 0;
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

/* Part 4, the directory of embedded chunk frames (docs/format.md, "Embedded
 * chunks"): header, then entries sorted by id, each inside the data_len bytes
 * that follow the signature.  Returns the entry count. */
static int embed_table_check(const uint8_t *p, size_t len, uint64_t data_len, size_t *n_out,
			     struct slotsync_error *err)
{
	uint64_t n;

	if (len < EMBED_HEADER || memcmp(p, EMBED_MAGIC, 8) != 0 || io_get_le32(p + 12) != 0)
		return slotsync_error_set(err, -EBADMSG, "bundle's embedded chunk directory is malformed");
	n = io_get_le32(p + 8);
	if (len != EMBED_HEADER + EMBED_ENTRY * n)
		return slotsync_error_set(err, -EBADMSG, "bundle's embedded chunk directory has the wrong size");
	if (io_get_le64(p + 16) != data_len)
		return slotsync_error_set(err, -EBADMSG,
					  "bundle embeds %" PRIu64 " bytes of chunks, but %" PRIu64
					  " follow its signature (truncated or appended to?)",
					  io_get_le64(p + 16), data_len);
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = p + EMBED_HEADER + EMBED_ENTRY * i;
		uint64_t off = io_get_le64(e + 32), l = io_get_le32(e + 40);
		if (e[44] != 0 || e[45] || e[46] || e[47] || l == 0 || off > data_len || l > data_len - off ||
		    (i > 0 && memcmp(e - EMBED_ENTRY, e, SLOTSYNC_DIGEST_BYTES) >= 0))
			return slotsync_error_set(err, -EBADMSG, "bundle's embedded chunk directory: entry %" PRIu64
						  " is malformed, out of bounds or out of order", i);
	}
	*n_out = (size_t)n;
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
	if (b->index_len == 0) {
		if (!b->manifest->index_size) {
			r = slotsync_error_set(err, -EBADMSG, "bundle has no index, and its manifest gives no index size");
			goto fail;
		}
		b->index = NULL;
		b->index_detached = 1;
		goto index_done;
	}
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, b->index, b->index_len, digest);
	if (memcmp(digest, b->manifest->index_sha256, SLOTSYNC_DIGEST_BYTES) != 0) {
		r = slotsync_error_set(err, -EBADMSG, "bundle index does not have the digest its manifest names");
		goto fail;
	}
	if (b->manifest->index_size && b->manifest->index_size != b->index_len) {
		r = slotsync_error_set(err, -EBADMSG, "bundle index is %zu bytes, its manifest says %" PRIu64, b->index_len,
				       b->manifest->index_size);
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
index_done:
	r = parse_hooks(b, err);
	if (r < 0)
		goto fail;
	if (b->env->n_parts == 4) {
		r = embed_table_check(b->env->part[3], b->env->part_len[3], b->env->data_len, &b->n_embedded, err);
		if (r < 0)
			goto fail;
	} else if (b->env->data_len) {
		r = slotsync_error_set(err, -EBADMSG, "bundle has %" PRIu64 " bytes after its signature that it does not describe",
				       b->env->data_len);
		goto fail;
	}
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

/* ---- embedded chunks ---------------------------------------------------------- */

struct slotsync_embedded {
	int fd;
	uint8_t *table;          /* part 4 */
	size_t n;
	uint64_t data_offset;    /* where the frames start in the file */
};

int slotsync_embedded_open(const char *bundle_path, struct slotsync_embedded **out, struct slotsync_error *err)
{
	struct slotsync_embedded *e;
	uint8_t h[FIXED_HEADER + 8 * SLOTSYNC_ENVELOPE_MAX_PARTS];
	uint64_t size, env_len, off, n;
	struct stat st;
	int r = 0;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	e->fd = open(bundle_path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0 || fstat(e->fd, &st) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open bundle %s", bundle_path);
		goto out;
	}
	size = (uint64_t)st.st_size;
	env_len = envelope_extent(e->fd, size);
	if (io_pread_full(e->fd, h, FIXED_HEADER, 0) != FIXED_HEADER || memcmp(h, ENVELOPE_MAGIC, 8) ||
	    (n = io_get_le32(h + 16)) == 0 || n > SLOTSYNC_ENVELOPE_MAX_PARTS ||
	    io_pread_full(e->fd, h + FIXED_HEADER, 8 * n, FIXED_HEADER) != (ssize_t)(8 * n)) {
		r = slotsync_error_set(err, -EBADMSG, "%s is not a slotsync bundle", bundle_path);
		goto out;
	}
	if (n < 4)
		goto out; /* embeds nothing */
	off = FIXED_HEADER + 8 * n;
	for (int i = 0; i < 3; i++)
		off += io_get_le64(h + FIXED_HEADER + 8 * i);
	{
		uint64_t tl = io_get_le64(h + FIXED_HEADER + 24);
		if (off > env_len || tl > env_len - off || tl > SLOTSYNC_BUNDLE_MAX_BYTES) {
			r = slotsync_error_set(err, -EBADMSG, "%s: embedded chunk directory out of bounds", bundle_path);
			goto out;
		}
		e->table = malloc(tl ? (size_t)tl : 1);
		if (!e->table) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (io_pread_full(e->fd, e->table, (size_t)tl, off) != (ssize_t)tl) {
			r = slotsync_error_set(err, -EIO, "cannot read %s", bundle_path);
			goto out;
		}
		r = embed_table_check(e->table, (size_t)tl, size - env_len, &e->n, err);
		if (r < 0) {
			slotsync_error_prefix(err, "%s", bundle_path);
			goto out;
		}
	}
	e->data_offset = env_len;
	*out = e;
	e = NULL;
out:
	slotsync_embedded_free(e);
	return r;
}

size_t slotsync_embedded_count(const struct slotsync_embedded *e)
{
	return e ? e->n : 0;
}

int slotsync_embedded_read(const struct slotsync_embedded *e, const uint8_t *id, uint8_t *buf, size_t cap,
			   size_t *len, struct slotsync_error *err)
{
	size_t lo = 0, hi = e ? e->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const uint8_t *ent = e->table + EMBED_HEADER + EMBED_ENTRY * mid;
		int c = memcmp(ent, id, SLOTSYNC_DIGEST_BYTES);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			uint64_t off = io_get_le64(ent + 32);
			size_t l = io_get_le32(ent + 40);
			ssize_t got;
			if (l > cap)
				return slotsync_error_set(err, -EFBIG, "embedded frame of %zu bytes, larger than the chunk can be", l);
			got = io_pread_full(e->fd, buf, l, e->data_offset + off);
			if (got != (ssize_t)l)
				return slotsync_error_set_errno(err, got < 0 ? (int)got : -EIO, "cannot read an embedded chunk");
			*len = l;
			return 0;
		}
	}
	return -ENOENT;
}

void slotsync_embedded_free(struct slotsync_embedded *e)
{
	if (!e)
		return;
	if (e->fd >= 0)
		close(e->fd);
	free(e->table);
	free(e);
}

/* The layout of part 4, for slotsync-gen. */
int slotsync_embedded_directory(const uint8_t (*ids)[SLOTSYNC_DIGEST_BYTES], const uint64_t *offsets,
				const uint32_t *lens, size_t n, uint64_t data_len, uint8_t **out, size_t *out_len,
				struct slotsync_error *err)
{
	size_t total = EMBED_HEADER + EMBED_ENTRY * n;
	uint8_t *b;

	if (n > UINT32_MAX)
		return slotsync_error_set(err, -E2BIG, "too many chunks to embed");
	b = calloc(1, total);
	if (!b)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(b, EMBED_MAGIC, 8);
	io_put_le32(b + 8, (uint32_t)n);
	io_put_le64(b + 16, data_len);
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = b + EMBED_HEADER + EMBED_ENTRY * i;
		memcpy(e, ids[i], SLOTSYNC_DIGEST_BYTES);
		io_put_le64(e + 32, offsets[i]);
		io_put_le32(e + 40, lens[i]);
	}
	*out = b;
	*out_len = total;
	return 0;
}
