/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Manifests, pointers and the device policy: strict parsing (every malformed
 * case refused with a reason), canonical serialization, and each policy rule. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "slotsync/envelope.h"
#include "slotsync/policy.h"
#include "test_util.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define GOOD                                                                                                 \
	"{\"format\": 1, \"version\": \"2.0\", \"compatible\": \"radio-x86\", \"security_version\": 3, "     \
	"\"created\": \"2027-01-15T08:00:00Z\", \"image\": {\"size\": 4096, \"sha256\": \"" H1 "\"}, "      \
	"\"index\": {\"sha256\": \"" H2 "\"}, \"stores\": [\"https://u/store\"]"

/* GOOD with a detached index (its size) and a delta entry naming an index diff */
#define DETACHED                                                                                             \
	"{\"format\": 1, \"version\": \"2.0\", \"compatible\": \"radio-x86\", \"security_version\": 3, "     \
	"\"created\": \"2027-01-15T08:00:00Z\", \"image\": {\"size\": 4096, \"sha256\": \"" H1 "\"}, "      \
	"\"stores\": [\"https://u/store\"], "

static int parse(const char *json, struct slotsync_manifest **m, struct slotsync_error *err)
{
	memset(err, 0, sizeof(*err));
	return slotsync_manifest_parse((const uint8_t *)json, strlen(json), m, err);
}

START_TEST(test_manifest_round_trip)
{
	struct slotsync_manifest *m = NULL, *m2 = NULL;
	struct slotsync_error err;
	char *a = NULL, *b = NULL;
	size_t la, lb;

	ck_assert_int_eq(parse(GOOD ", \"hooks\": {\"pre-install\": \"check\"}, \"downgrade_allowed_to\": \"2.0\"}", &m, &err), 0);
	ck_assert_str_eq(m->version, "2.0");
	ck_assert_int_eq(m->security_version, 3);
	ck_assert_int_eq(m->image_size, 4096);
	ck_assert_int_eq(m->image_sha256[0], 0x11);
	ck_assert_int_eq(m->index_sha256[31], 0x22);
	ck_assert_int_eq((long)m->created, 1800000000L);
	ck_assert_str_eq(m->hook_pre_install, "check");
	ck_assert_ptr_null(m->hook_post_install);
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_int_eq(slotsync_manifest_parse((const uint8_t *)a, la, &m2, &err), 0);
	ck_assert_int_eq(slotsync_manifest_serialize(m2, &b, &lb, &err), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
	slotsync_manifest_free(m);
	slotsync_manifest_free(m2);
}
END_TEST

START_TEST(test_manifest_index_diff)
{
	struct slotsync_manifest *m = NULL, *m2 = NULL;
	struct slotsync_error err;
	char *a = NULL, *b = NULL;
	size_t la, lb;

	ck_assert_msg(parse(DETACHED "\"index\": {\"sha256\": \"" H2 "\", \"size\": 20384}, \"deltas\": ["
			    "{\"base\": \"" H1 "\", \"sha256\": \"" H2 "\", \"size\": 900},"
			    "{\"base\": \"" H2 "\", \"sha256\": \"" H1 "\", \"size\": 800, \"index_sha256\": \"" H1
			    "\", \"index_size\": 4662}]}",
			    &m, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(m->index_size, 20384);
	ck_assert_int_eq(m->deltas[0].has_index, 0);
	ck_assert_int_eq(m->deltas[1].has_index, 1);
	ck_assert_uint_eq(m->deltas[1].index_size, 4662);
	ck_assert_int_eq(m->deltas[1].index_sha256[0], 0x11);
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_int_eq(slotsync_manifest_parse((const uint8_t *)a, la, &m2, &err), 0);
	ck_assert_int_eq(slotsync_manifest_serialize(m2, &b, &lb, &err), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	ck_assert_uint_eq(m2->index_size, 20384);
	ck_assert_uint_eq(m2->deltas[1].index_size, 4662);
	free(a);
	free(b);
	slotsync_manifest_free(m);
	slotsync_manifest_free(m2);
	/* a manifest without the new fields reads as before: no size, no diff */
	ck_assert_int_eq(parse(GOOD "}", &m, &err), 0);
	ck_assert_uint_eq(m->index_size, 0);
	slotsync_manifest_free(m);
}
END_TEST

START_TEST(test_manifest_refusals)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{ GOOD ", \"surprise\": 1}", "unknown field \"surprise\"" },
		{ GOOD ", \"image2\": {}}", "unknown field" },
		{ "{\"format\": 1}", "lacks the field \"version\"" },
		{ GOOD ", \"expires\": \"tomorrow\"}", "UTC time" },
		{ GOOD "}x", "not valid JSON" },
		{ "[1, 2]", "must be a JSON object" },
		{ GOOD ", \"downgrade_allowed_to\": \"1.0\"}", "for its own release only" },
		{ GOOD ", \"hooks\": {\"pre-install\": \"../bin/sh\"}}", "plain file name" },
		{ GOOD ", \"verity_root_hash\": \"XYZ\"}", "lower-case hex" },
		{ "{\"format\": 2, \"version\": \"1\"}", "unknown format" },
		{ "{\"format\": 1, \"version\": 7}", "must be a string" },
		{ "{\"format\": 1, \"version\": \"\"}", "1 to 4096 characters" },
		{ GOOD ", \"deltas\": [{\"base\": \"" H1 "\", \"sha256\": \"" H2 "\", \"size\": 5, \"index_sha256\": \"" H1 "\"}]}",
		  "\"index_sha256\" and \"index_size\" together" },
		{ GOOD ", \"deltas\": [{\"base\": \"" H1 "\", \"sha256\": \"" H2 "\", \"size\": 5, \"index_size\": 9}]}",
		  "together" },
		{ GOOD ", \"deltas\": [{\"base\": \"" H1 "\", \"sha256\": \"" H2 "\", \"size\": 5, \"index_sha256\": \"ab\", \"index_size\": 9}]}",
		  "\"index_sha256\" must be 64 hex digits" },
		{ GOOD ", \"deltas\": [{\"base\": \"" H1 "\", \"sha256\": \"" H2 "\", \"size\": 5, \"index_sha256\": \"" H1 "\", \"index_size\": -1}]}",
		  "\"index_size\" must be between" },
		{ DETACHED "\"index\": {\"sha256\": \"" H2 "\", \"size\": 0}}", "\"index.size\" must not be 0" },
		{ DETACHED "\"index\": {\"sha256\": \"" H2 "\", \"size\": \"big\"}}", "\"size\" must be a whole number" },
	};
	struct slotsync_manifest *m = NULL;
	struct slotsync_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].json, &m, &err);
		ck_assert_msg(r < 0, "accepted: %s", cases[i].json);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err.msg, cases[i].needle), "case %zu: \"%s\" does not say \"%s\"", i, err.msg,
			      cases[i].needle);
	}
	/* NUL inside, and over the size limit */
	ck_assert_int_lt(slotsync_manifest_parse((const uint8_t *)"{\0}", 3, &m, &err), 0);
	{
		size_t big = SLOTSYNC_MANIFEST_MAX_BYTES + 1;
		uint8_t *buf = calloc(1, big);
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(slotsync_manifest_parse(buf, big, &m, &err), -EFBIG);
		free(buf);
	}
}
END_TEST

/* A further image "boot" as GOOD's "images" (name and one field replaceable). */
#define IMG(name, extra) "{\"name\": \"" name "\", \"size\": 8192, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 120" extra "}"

START_TEST(test_manifest_images)
{
	struct slotsync_manifest *m = NULL, *m2 = NULL;
	struct slotsync_error err;
	char *a = NULL, *b = NULL;
	size_t la, lb;

	ck_assert_msg(parse(GOOD ", \"images\": [" IMG("boot", "") ", " IMG("dtb-extra_2", "") "]}", &m, &err) == 0, "%s",
		      err.msg);
	ck_assert_uint_eq(m->n_images, 2);
	ck_assert_str_eq(m->images[0].name, "boot");
	ck_assert_str_eq(m->images[1].name, "dtb-extra_2");
	ck_assert_uint_eq(m->images[0].size, 8192);
	ck_assert_uint_eq(m->images[0].index_size, 120);
	ck_assert_int_eq(m->images[0].sha256[0], 0x11);
	ck_assert_int_eq(m->images[0].index_sha256[31], 0x22);
	ck_assert_ptr_eq(slotsync_manifest_image(m, "boot"), &m->images[0]);
	ck_assert_ptr_null(slotsync_manifest_image(m, "rootfs"));
	ck_assert_ptr_null(slotsync_manifest_image(m, "kernel"));
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_ptr_nonnull(strstr(a, "\"images\""));
	ck_assert_int_eq(slotsync_manifest_parse((const uint8_t *)a, la, &m2, &err), 0);
	ck_assert_int_eq(slotsync_manifest_serialize(m2, &b, &lb, &err), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	ck_assert_uint_eq(m2->n_images, 2);
	ck_assert_str_eq(m2->images[1].name, "dtb-extra_2");
	free(a);
	free(b);
	slotsync_manifest_free(m);
	slotsync_manifest_free(m2);
	/* a manifest without images writes no "images": single-image bundles are
	 * byte for byte what they were */
	ck_assert_int_eq(parse(GOOD "}", &m, &err), 0);
	ck_assert_uint_eq(m->n_images, 0);
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_ptr_null(strstr(a, "images"));
	free(a);
	slotsync_manifest_free(m);
	/* an empty array is no images */
	ck_assert_int_eq(parse(GOOD ", \"images\": []}", &m, &err), 0);
	ck_assert_uint_eq(m->n_images, 0);
	slotsync_manifest_free(m);
}
END_TEST

START_TEST(test_manifest_images_refusals)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{ GOOD ", \"images\": {}}", "\"images\" must be an array" },
		{ GOOD ", \"images\": [7]}", "image 1 must be an object" },
		{ GOOD ", \"images\": [" IMG("boot", ", \"mode\": 1") "]}", "unknown field \"mode\"" },
		{ GOOD ", \"images\": [" IMG("rootfs", "") "]}", "name \"rootfs\" is not valid" },
		{ GOOD ", \"images\": [" IMG("Boot", "") "]}", "name \"Boot\" is not valid" },
		{ GOOD ", \"images\": [" IMG("-boot", "") "]}", "is not valid" },
		{ GOOD ", \"images\": [" IMG("bo/ot", "") "]}", "is not valid" },
		{ GOOD ", \"images\": [" IMG("a23456789012345678901234567890123", "") "]}", "is not valid" },
		{ GOOD ", \"images\": [" IMG("boot", "") ", " IMG("boot", "") "]}", "named twice" },
		{ GOOD ", \"images\": [" IMG("dtb", "") ", " IMG("boot", "") "]}", "out of order" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": 8192, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\"}]}",
		  "lacks the field \"index_size\"" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": 8192, \"sha256\": \"" H1 "\", \"index_size\": 5}]}",
		  "lacks the field \"index_sha256\"" },
		{ GOOD ", \"images\": [{\"size\": 8192, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 5}]}",
		  "lacks the field \"name\"" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": 0, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 5}]}",
		  "must not be 0" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": 9, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 0}]}",
		  "must not be 0" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": -9, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 3}]}",
		  "\"size\" must be between" },
		{ GOOD ", \"images\": [{\"name\": \"boot\", \"size\": 9, \"sha256\": \"xy\", \"index_sha256\": \"" H2 "\", \"index_size\": 3}]}",
		  "\"sha256\" must be 64 hex digits" },
		{ GOOD ", \"images\": [{\"name\": 5, \"size\": 9, \"sha256\": \"" H1 "\", \"index_sha256\": \"" H2 "\", \"index_size\": 3}]}",
		  "\"name\" must be a string" },
		{ GOOD ", \"images\": [" IMG("a", "") "," IMG("b", "") "," IMG("c", "") "," IMG("d", "") "," IMG("e", "") ","
		  IMG("f", "") "," IMG("g", "") "," IMG("h", "") "," IMG("i", "") "]}", "more than 8 further images" },
	};
	struct slotsync_manifest *m = NULL;
	struct slotsync_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].json, &m, &err);
		ck_assert_msg(r < 0, "accepted: %s", cases[i].json);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err.msg, cases[i].needle), "case %zu: \"%s\" does not say \"%s\"", i, err.msg,
			      cases[i].needle);
	}
	ck_assert_int_eq(slotsync_image_name_valid("boot"), 1);
	ck_assert_int_eq(slotsync_image_name_valid("0dtb_x-1"), 1);
	ck_assert_int_eq(slotsync_image_name_valid("a2345678901234567890123456789012"), 1);
	ck_assert_int_eq(slotsync_image_name_valid("a23456789012345678901234567890123"), 0);
	ck_assert_int_eq(slotsync_image_name_valid("rootfs"), 0);
	ck_assert_int_eq(slotsync_image_name_valid(""), 0);
	ck_assert_int_eq(slotsync_image_name_valid("_boot"), 0);
	ck_assert_int_eq(slotsync_image_name_valid("bo ot"), 0);
	ck_assert_int_eq(slotsync_image_name_valid(NULL), 0);
}
END_TEST

/* A manifest with a verity object: an image of 3 blocks, data in the first,
 * the tree from 4096 on; fields given as the replacement for one of them. */
#define VGOOD_HEAD                                                                                             \
	"{\"format\": 1, \"version\": \"2.0\", \"compatible\": \"radio-x86\", \"security_version\": 3, "     \
	"\"created\": \"2027-01-15T08:00:00Z\", \"image\": {\"size\": 12288, \"sha256\": \"" H1 "\"}, "     \
	"\"index\": {\"sha256\": \"" H2 "\"}, \"stores\": [\"https://u/store\"], \"verity\": {"
#define V_ROOT "\"root_hash\": \"" H1 "\""
#define V_SALT "\"salt\": \"00ff\""
#define V_ALG "\"algorithm\": \"sha256\""
#define V_DATA "\"data_size\": 4096"
#define V_OFF "\"hash_offset\": 4096"
#define V_DBS "\"data_block_size\": 4096"
#define V_HBS "\"hash_block_size\": 4096"
#define VGOOD_WITH(root, salt, alg, data, off, dbs, hbs) \
	VGOOD_HEAD root ", " salt ", " alg ", " data ", " off ", " dbs ", " hbs "}"

START_TEST(test_manifest_verity)
{
	struct slotsync_manifest *m = NULL, *m2 = NULL;
	struct slotsync_error err;
	char *a = NULL, *b = NULL;
	size_t la, lb;

	ck_assert_int_eq(parse(VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, V_DBS, V_HBS) ", \"verity_root_hash\": \"" H1 "\"}",
			       &m, &err), 0);
	ck_assert_ptr_nonnull(m->verity);
	ck_assert_str_eq(m->verity->root_hash, H1);
	ck_assert_str_eq(m->verity->salt, "00ff");
	ck_assert_str_eq(m->verity->algorithm, "sha256");
	ck_assert_uint_eq(m->verity->data_size, 4096);
	ck_assert_uint_eq(m->verity->hash_offset, 4096);
	ck_assert_uint_eq(m->verity->data_block_size, 4096);
	ck_assert_uint_eq(m->verity->hash_block_size, 4096);
	/* written canonically, read back the same */
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_ptr_nonnull(strstr(a, "\"verity\": {"));
	ck_assert_int_eq(slotsync_manifest_parse((const uint8_t *)a, la, &m2, &err), 0);
	ck_assert_ptr_nonnull(m2->verity);
	ck_assert_int_eq(slotsync_manifest_serialize(m2, &b, &lb, &err), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
	slotsync_manifest_free(m);
	slotsync_manifest_free(m2);
	/* without one, none */
	ck_assert_int_eq(parse(GOOD "}", &m, &err), 0);
	ck_assert_ptr_null(m->verity);
	ck_assert_int_eq(slotsync_manifest_serialize(m, &a, &la, &err), 0);
	ck_assert_ptr_null(strstr(a, "verity"));
	free(a);
	slotsync_manifest_free(m);
}
END_TEST

START_TEST(test_manifest_verity_refusals)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{ VGOOD_WITH(V_ROOT, V_SALT, "\"algorithm\": \"sha1\"", V_DATA, V_OFF, V_DBS, V_HBS) "}",
		  "\"verity.algorithm\" is \"sha1\"" },
		{ VGOOD_WITH("\"root_hash\": \"" H1 "11\"", V_SALT, V_ALG, V_DATA, V_OFF, V_DBS, V_HBS) "}",
		  "\"verity.root_hash\" must be 64" },
		{ VGOOD_WITH("\"root_hash\": \"ABCDEF1111111111111111111111111111111111111111111111111111111111\"", V_SALT, V_ALG,
			     V_DATA, V_OFF, V_DBS, V_HBS) "}",
		  "\"verity.root_hash\" must be 64 lower-case hex" },
		{ VGOOD_WITH(V_ROOT, "\"salt\": \"abc\"", V_ALG, V_DATA, V_OFF, V_DBS, V_HBS) "}", "\"verity.salt\"" },
		{ VGOOD_WITH(V_ROOT, "\"salt\": \"zz\"", V_ALG, V_DATA, V_OFF, V_DBS, V_HBS) "}", "\"verity.salt\"" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, "\"data_block_size\": 3000", V_HBS) "}",
		  "\"verity.data_block_size\" must be a power of two" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, "\"data_block_size\": 256", V_HBS) "}",
		  "\"verity.data_block_size\"" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, V_DBS, "\"hash_block_size\": 131072") "}",
		  "\"verity.hash_block_size\"" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, "\"data_size\": 5000", "\"hash_offset\": 8192", V_DBS, V_HBS) "}",
		  "\"verity.data_size\" must be a non-zero multiple" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, "\"data_size\": 8192", V_OFF, V_DBS, V_HBS) "}",
		  "\"verity.hash_offset\" must not be below data_size" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, "\"hash_offset\": 12288", V_DBS, V_HBS) "}",
		  "\"verity.hash_offset\" must be inside the image" },
		{ VGOOD_HEAD V_ROOT ", " V_SALT ", " V_ALG ", " V_DATA ", " V_OFF ", " V_DBS "}}", "lacks the field \"hash_block_size\"" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, V_DBS, V_HBS ", \"fec\": 1") "}", "unknown field \"fec\"" },
		{ VGOOD_WITH(V_ROOT, V_SALT, V_ALG, V_DATA, V_OFF, V_DBS, V_HBS) ", \"verity_root_hash\": \"" H2 "\"}",
		  "\"verity_root_hash\" and \"verity.root_hash\" differ" },
		{ GOOD ", \"verity\": \"yes\"}", "\"verity\" must be an object" },
	};
	struct slotsync_manifest *m = NULL;
	struct slotsync_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].json, &m, &err);
		ck_assert_msg(r == -EBADMSG, "case %zu accepted (%d): %s", i, r, cases[i].json);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err.msg, cases[i].needle), "case %zu: \"%s\" does not say \"%s\"", i, err.msg,
			      cases[i].needle);
	}
}
END_TEST

START_TEST(test_policy_rules)
{
	struct slotsync_manifest *m = NULL;
	struct slotsync_error err;
	struct slotsync_policy p = { .compatible = "radio-x86", .installed_version = "1.9", .now = 1800000000 };

	ck_assert_int_eq(parse(GOOD "}", &m, &err), 0);
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), 0);      /* 2.0 > 1.9 */
	p.installed_version = "1.10";
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), 0);      /* 2.0 > 1.10 */
	p.installed_version = "2.0.1";                                /* 2.0 < 2.0.1: a downgrade */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not allow a downgrade"));
	m->downgrade_allowed_to = strdup("2.0");
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), -EPERM); /* device does not allow */
	p.allow_downgrade = 1;
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), 0);
	p.security_floor = 4;                                         /* 3 < 4 */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "floor"));
	p.security_floor = 3;
	p.compatible = "radio-arm";
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), -EPERM);
	p.compatible = NULL;
	m->expires = p.now - 1;
	ck_assert_int_eq(slotsync_policy_check(m, &p, &err), -EPERM);
	slotsync_manifest_free(m);
}
END_TEST

START_TEST(test_pointer_rules)
{
	const char *json = "{\"format\": 1, \"version\": 5, \"expires\": \"2027-01-15T08:00:00Z\", \"bundle_url\": "
			   "\"https://u/b\", \"bundle_sha256\": \"" H1 "\", \"bundle_size\": 100}";
	struct slotsync_pointer *p = NULL;
	struct slotsync_error err = { 0 };

	ck_assert_int_eq(slotsync_pointer_parse((const uint8_t *)json, strlen(json), &p, &err), 0);
	ck_assert_int_eq(slotsync_policy_check_pointer(p, 5, 1800000000 - 1, NULL, &err), 0);
	ck_assert_int_eq(slotsync_policy_check_pointer(p, 6, 1800000000 - 1, NULL, &err), -EPERM); /* rollback */
	ck_assert_int_eq(slotsync_policy_check_pointer(p, 0, 1800000000 + 1, NULL, &err), -EPERM); /* freeze */
	slotsync_pointer_free(p);
	json = "{\"format\": 1, \"version\": 5, \"bundle_url\": \"https://u/b\", \"bundle_sha256\": \"" H1
	       "\", \"bundle_size\": 100}";
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_pointer_parse((const uint8_t *)json, strlen(json), &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "expires"));
}
END_TEST

START_TEST(test_times)
{
	time_t t;
	char buf[32];

	ck_assert_int_eq(slotsync_time_parse("2027-01-15T08:00:00Z", &t), 0);
	ck_assert_int_eq((long)t, 1800000000L);
	slotsync_time_format(t, buf);
	ck_assert_str_eq(buf, "2027-01-15T08:00:00Z");
	ck_assert_int_eq(slotsync_time_parse("@1800000000", &t), 0);
	ck_assert_int_eq((long)t, 1800000000L);
	ck_assert_int_lt(slotsync_time_parse("2027-01-15 08:00:00", &t), 0);
	ck_assert_int_lt(slotsync_time_parse("@-5", &t), 0);
	ck_assert_int_lt(slotsync_time_parse("2027-01-15T08:00:00Zjunk", &t), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_manifest_round_trip);
	tcase_add_test(tc, test_manifest_refusals);
	tcase_add_test(tc, test_manifest_index_diff);
	tcase_add_test(tc, test_manifest_images);
	tcase_add_test(tc, test_manifest_images_refusals);
	tcase_add_test(tc, test_manifest_verity);
	tcase_add_test(tc, test_manifest_verity_refusals);
	tcase_add_test(tc, test_policy_rules);
	tcase_add_test(tc, test_pointer_rules);
	tcase_add_test(tc, test_times);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
