/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Signed envelopes and manifests: a bundle signed by the fleet's signer opens
 * with its manifest and index; one byte changed anywhere, a keyring of another
 * fleet, a truncated file are each refused; an envelope laid out here and
 * signed by the openssl CLI verifies; a manifest with a field it does not know
 * is refused, and serialization is canonical. */
#include <check.h>
#include <errno.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "signer.h"
#include "slotsync/envelope.h"

struct ctx {
	char *dir, store[PATH_MAX], bundle[PATH_MAX];
	struct fx_ca ca;
	struct fx_image im;
};

static void ctx_make(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->dir = test_mkdtemp();
	fx_path(c->store, c->dir, "store");
	fx_path(c->bundle, c->dir, "v2.bundle");
	fx_ca_make(&c->ca, c->dir);
	fx_image_make(&c->im, c->dir, "v2", 300 << 10, 31, NULL);
	fx_bundle_make(&c->ca, c->im.img, c->store, "2.0", "radio-x86", c->bundle);
}

static void ctx_free(struct ctx *c)
{
	fx_image_free(&c->im);
	test_rmdir(c->dir);
}

/* Signs the bundle orig (its bytes) again with its manifest's index size set
 * to index_size and its index part, or none (detach), then opens it. */
static int resign_open(struct ctx *c, const uint8_t *orig, size_t orig_len, uint64_t index_size, int detach,
		       struct slotsync_bundle **out, struct slotsync_error *err)
{
	struct gen_signer g = { .cert = c->ca.signer, .key = c->ca.signer_key };
	struct slotsync_bundle *b = NULL;
	const uint8_t *parts[2];
	size_t lens[2], json_len;
	char *json = NULL;

	ck_assert_int_eq(test_write_file(c->bundle, orig, orig_len), 0);
	ck_assert_int_eq(slotsync_bundle_open(c->bundle, c->ca.ca, &b, err), 0);
	b->manifest->index_size = index_size;
	ck_assert_int_eq(slotsync_manifest_serialize(b->manifest, &json, &json_len, err), 0);
	parts[0] = (const uint8_t *)json, lens[0] = json_len;
	parts[1] = b->index, lens[1] = detach ? 0 : b->index_len;
	ck_assert_msg(signer_write_envelope(&g, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, 2, c->bundle, err) == 0, "%s",
		      err->msg);
	free(json);
	slotsync_bundle_free(b);
	memset(err, 0, sizeof(*err));
	return slotsync_bundle_open(c->bundle, c->ca.ca, out, err);
}

/* A detached index: an empty part 2 opens when the signed manifest gives the
 * index's size; without it, or with a size another than the part's, refused. */
START_TEST(test_bundle_detached_index)
{
	struct slotsync_error err = { 0 };
	struct slotsync_bundle *b = NULL;
	struct ctx c;
	size_t index_len, orig_len;
	uint8_t *orig;

	ctx_make(&c);
	orig = fx_read_file(c.bundle, &orig_len);
	ck_assert_int_eq(slotsync_bundle_open(c.bundle, c.ca.ca, &b, &err), 0);
	index_len = b->index_len;
	ck_assert_int_eq(b->index_detached, 0);
	slotsync_bundle_free(b);

	ck_assert_msg(resign_open(&c, orig, orig_len, index_len, 1, &b, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(b->index_detached, 1);
	ck_assert_ptr_null(b->index);
	ck_assert_uint_eq(b->manifest->index_size, index_len);
	slotsync_bundle_free(b);
	b = NULL;
	ck_assert_int_eq(resign_open(&c, orig, orig_len, 0, 1, &b, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "gives no index size"), "%s", err.msg);
	ck_assert_int_eq(resign_open(&c, orig, orig_len, index_len + 1, 0, &b, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "its manifest says"), "%s", err.msg);
	ck_assert_msg(resign_open(&c, orig, orig_len, index_len, 0, &b, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(b->index_detached, 0);
	slotsync_bundle_free(b);
	free(orig);
	ctx_free(&c);
}
END_TEST

START_TEST(test_bundle_opens)
{
	struct ctx c;
	struct slotsync_bundle *b;
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx;

	ctx_make(&c);
	ck_assert_msg(slotsync_bundle_open(c.bundle, c.ca.ca, &b, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(b->manifest->version, "2.0");
	ck_assert_str_eq(b->manifest->compatible, "radio-x86");
	ck_assert_uint_eq(b->manifest->image_size, c.im.len);
	ck_assert_ptr_nonnull(strstr(b->signer.subject, "release-signer"));
	/* the index inside is the image's */
	ck_assert_int_eq(slotsync_index_parse(b->index, b->index_len, &idx, &err), 0);
	ck_assert_uint_eq(idx->n_chunks, c.im.index->n_chunks);
	ck_assert_mem_eq(idx->chunks[0].id, c.im.index->chunks[0].id, SLOTSYNC_DIGEST_BYTES);
	slotsync_index_free(idx);
	slotsync_bundle_free(b);
	ctx_free(&c);
}
END_TEST

START_TEST(test_tampered_bundle_refused)
{
	struct ctx c;
	struct slotsync_bundle *b = NULL;
	struct slotsync_error err;
	struct slotsync_envelope *e;
	uint8_t *orig;
	size_t len;
	char bad[PATH_MAX];

	ctx_make(&c);
	orig = fx_read_file(c.bundle, &len);
	ck_assert_ptr_nonnull(orig);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_envelope_read(c.bundle, SLOTSYNC_ENVELOPE_BUNDLE, SLOTSYNC_BUNDLE_MAX_BYTES, &e, &err), 0);
	fx_path(bad, c.dir, "bad.bundle");
	{
		/* one byte in the header, the manifest, the index, the signature */
		size_t at[4] = { 10, (size_t)(e->part[0] - e->buf) + 20, (size_t)(e->part[1] - e->buf) + 60,
				 (size_t)(e->sig - e->buf) + e->sig_len / 2 };
		for (int i = 0; i < 4; i++) {
			orig[at[i]] ^= 0x01;
			ck_assert_int_eq(test_write_file(bad, orig, len), 0);
			orig[at[i]] ^= 0x01;
			memset(&err, 0, sizeof(err));
			ck_assert_msg(slotsync_bundle_open(bad, c.ca.ca, &b, &err) < 0, "byte %zu changed, yet it opened",
				      at[i]);
			ck_assert_ptr_null(b);
			ck_assert_str_ne(err.msg, "");
		}
	}
	slotsync_envelope_free(e);
	/* cut short */
	ck_assert_int_eq(test_write_file(bad, orig, len - 1), 0);
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_bundle_open(bad, c.ca.ca, &b, &err), 0);
	/* the untouched bytes still open: the refusals were for the changes */
	ck_assert_int_eq(test_write_file(bad, orig, len), 0);
	memset(&err, 0, sizeof(err));
	ck_assert_msg(slotsync_bundle_open(bad, c.ca.ca, &b, &err) == 0, "%s", err.msg);
	slotsync_bundle_free(b);
	free(orig);
	ctx_free(&c);
}
END_TEST

START_TEST(test_other_fleet_refused)
{
	struct ctx c;
	struct slotsync_bundle *b = NULL;
	struct slotsync_error err = { 0 };

	ctx_make(&c);
	ck_assert_int_lt(slotsync_bundle_open(c.bundle, c.ca.other_ca, &b, &err), 0);
	ck_assert_ptr_null(b);
	ck_assert_msg(strstr(err.msg, "not trusted by keyring"), "%s", err.msg);
	ctx_free(&c);
}
END_TEST

START_TEST(test_envelope_signed_by_openssl)
{
	struct ctx c;
	static const char part[] = "{\"hello\":\"device\"}";
	const uint8_t *parts[1] = { (const uint8_t *)part };
	size_t lens[1] = { sizeof(part) - 1 }, ulen, slen, flen;
	uint8_t *unsigned_buf, *sig, *full;
	char u[PATH_MAX], s[PATH_MAX], env[PATH_MAX], cmd[6 * PATH_MAX];
	struct slotsync_envelope *e;
	struct slotsync_signer_info info;
	struct slotsync_error err = { 0 };

	ctx_make(&c);
	ck_assert_int_eq(slotsync_envelope_build(SLOTSYNC_ENVELOPE_POINTER, parts, lens, 1, &unsigned_buf, &ulen, &err), 0);
	fx_path(u, c.dir, "unsigned");
	fx_path(s, c.dir, "sig.der");
	fx_path(env, c.dir, "p.pointer");
	ck_assert_int_eq(test_write_file(u, unsigned_buf, ulen), 0);
	snprintf(cmd, sizeof(cmd), "openssl cms -sign -binary -in '%s' -signer '%s' -inkey '%s' -outform DER -out '%s'", u,
		 c.ca.signer, c.ca.signer_key, s);
	ck_assert_int_eq(system(cmd), 0);
	sig = fx_read_file(s, &slen);
	ck_assert_int_eq(slotsync_envelope_finish(unsigned_buf, ulen, sig, slen, &full, &flen, &err), 0);
	ck_assert_int_eq(test_write_file(env, full, flen), 0);
	ck_assert_int_eq(slotsync_envelope_read(env, SLOTSYNC_ENVELOPE_POINTER, SLOTSYNC_POINTER_MAX_BYTES, &e, &err), 0);
	ck_assert_uint_eq(e->n_parts, 1);
	ck_assert_uint_eq(e->part_len[0], lens[0]);
	ck_assert_mem_eq(e->part[0], part, lens[0]);
	ck_assert_msg(slotsync_envelope_verify(e, c.ca.ca, &info, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(info.subject, "release-signer"));
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_envelope_verify(e, c.ca.other_ca, &info, &err), 0);
	slotsync_envelope_free(e);
	/* a pointer is not a bundle */
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_envelope_read(env, SLOTSYNC_ENVELOPE_BUNDLE, SLOTSYNC_BUNDLE_MAX_BYTES, &e, &err), 0);
	free(unsigned_buf);
	free(sig);
	free(full);
	ctx_free(&c);
}
END_TEST

START_TEST(test_manifest_strict_and_canonical)
{
	struct ctx c;
	struct slotsync_bundle *b;
	struct slotsync_manifest *m;
	struct slotsync_error err = { 0 };
	char *json, *again, *extra;
	size_t len, len2;

	ctx_make(&c);
	ck_assert_int_eq(slotsync_bundle_open(c.bundle, c.ca.ca, &b, &err), 0);
	ck_assert_int_eq(slotsync_manifest_serialize(b->manifest, &json, &len, &err), 0);
	ck_assert_int_eq(slotsync_manifest_parse((const uint8_t *)json, len, &m, &err), 0);
	ck_assert_int_eq(slotsync_manifest_serialize(m, &again, &len2, &err), 0);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(json, again, len);
	ck_assert_mem_eq(m->image_sha256, b->manifest->image_sha256, SLOTSYNC_DIGEST_BYTES);
	slotsync_manifest_free(m);
	/* a field the device does not know: refused, not half-read */
	extra = malloc(len + 64);
	ck_assert_ptr_nonnull(strchr(json, '{'));
	snprintf(extra, len + 64, "{\"colour\": \"blue\",%s", strchr(json, '{') + 1);
	memset(&err, 0, sizeof(err));
	m = NULL;
	ck_assert_int_lt(slotsync_manifest_parse((const uint8_t *)extra, strlen(extra), &m, &err), 0);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err.msg, "colour"), "%s", err.msg);
	free(extra);
	free(json);
	free(again);
	slotsync_bundle_free(b);
	ctx_free(&c);
}
END_TEST

static Suite *envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc = tcase_create("envelope");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bundle_opens);
	tcase_add_test(tc, test_bundle_detached_index);
	tcase_add_test(tc, test_tampered_bundle_refused);
	tcase_add_test(tc, test_other_fleet_refused);
	tcase_add_test(tc, test_envelope_signed_by_openssl);
	tcase_add_test(tc, test_manifest_strict_and_canonical);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(envelope_suite());
}
