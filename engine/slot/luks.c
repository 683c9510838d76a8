/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS2 with TPM-sealed volume keys: see include/slotsync/luks.h.
 *
 * Token JSON: {"type": "slotsync-tpm2", "keyslots": [], "tpm2-blob": base64 of
 * the sealed object (tpm.h), "tpm2-pcrs": [PCR numbers]}.
 */
#include "slotsync/luks.h"

#include <errno.h>

#include "slotsync/features.h"

#if SLOTSYNC_HAVE_LUKS2
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypt_log.h"
#include "slotsync/log.h"
#include "slotsync/tpm.h"

#define TOKENS_MAX 32

static int load(struct crypt_device **cd, const char *device, struct slotsync_error *err)
{
	int r;

	crypt_log_quiet();
	r = crypt_init(cd, device);

	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot open %s", device);
	r = crypt_load(*cd, CRYPT_LUKS2, NULL);
	if (r < 0) {
		crypt_free(*cd);
		*cd = NULL;
		return slotsync_error_set_errno(err, r, "%s has no LUKS2 header", device);
	}
	return 0;
}

int slotsync_luks_format(const char *device, const struct slotsync_luks_tpm *tpm, const char *want_uuid,
			 char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return slotsync_luks_format_open(device, tpm, want_uuid, NULL, uuid, err);
}

int slotsync_luks_format_open(const char *device, const struct slotsync_luks_tpm *tpm, const char *want_uuid,
			      const char *name, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	struct crypt_params_luks2 params = { .sector_size = 4096 };
	struct crypt_device *cd = NULL;
	struct json_object *tok = NULL, *pcrs;
	unsigned char vk[SLOTSYNC_LUKS_KEY_BYTES];
	struct slotsync_tpm_policy policy = { .pcr_mask = tpm->pcr_mask, .expect_mask = tpm->expect_mask };
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	char *b64 = NULL;
	int r;

	crypt_log_quiet();
	memcpy(policy.expect, tpm->expect, sizeof(policy.expect));
	if (RAND_bytes(vk, sizeof(vk)) != 1)
		return slotsync_error_set(err, -EIO, "no random bytes for a volume key");
	/* seal first: a TPM that cannot seal must not leave a header behind */
	r = slotsync_tpm_seal_policy(tpm->tcti, vk, sizeof(vk), &policy, &blob, &blob_len, err);
	if (r < 0)
		goto out;
	r = crypt_init(&cd, device);
	if (r < 0) {
		r = slotsync_error_set_errno(err, r, "cannot open %s", device);
		goto out;
	}
	r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", want_uuid, (const char *)vk, sizeof(vk), &params);
	if (r < 0) {
		r = slotsync_error_set_errno(err, r, "cannot format %s as LUKS2%s%s%s", device, crypt_log_error[0] ? " (" : "",
					     crypt_log_error, crypt_log_error[0] ? ")" : "");
		goto out;
	}
	b64 = malloc(4 * ((blob_len + 2) / 3) + 1);
	tok = json_object_new_object();
	pcrs = json_object_new_array();
	if (!b64 || !tok || !pcrs) {
		json_object_put(pcrs);
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, blob, (int)blob_len);
	for (int i = 0; i < 24; i++)
		if (tpm->pcr_mask & (1u << i))
			json_object_array_add(pcrs, json_object_new_int(i));
	json_object_object_add(tok, "type", json_object_new_string(SLOTSYNC_LUKS_TOKEN_TYPE));
	json_object_object_add(tok, "keyslots", json_object_new_array());
	json_object_object_add(tok, "tpm2-blob", json_object_new_string(b64));
	json_object_object_add(tok, "tpm2-pcrs", pcrs);
	r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json_object_to_json_string_ext(tok, JSON_C_TO_STRING_PLAIN));
	if (r < 0) {
		r = slotsync_error_set_errno(err, r, "cannot store the sealed key in %s's LUKS2 header", device);
		goto out;
	}
	snprintf(uuid, SLOTSYNC_LUKS_UUID_BYTES, "%s", crypt_get_uuid(cd));
	r = 0;
	/* opened with the key in hand: a key sealed for a later PCR state (a
	 * data key for the next root) cannot be unsealed now */
	if (name) {
		r = crypt_activate_by_volume_key(cd, name, (const char *)vk, sizeof(vk), 0);
		if (r < 0)
			r = slotsync_error_set_errno(err, r, "cannot activate %s as /dev/mapper/%s", device, name);
	}
out:
	explicit_bzero(vk, sizeof(vk));
	json_object_put(tok);
	free(b64);
	free(blob);
	crypt_free(cd);
	return r;
}

/* The sealed blob of the first slotsync-tpm2 token. */
static int token_blob(struct crypt_device *cd, const char *device, uint8_t **blob, size_t *len,
		      struct slotsync_error *err)
{
	for (int t = 0; t < TOKENS_MAX; t++) {
		const char *json;
		struct json_object *o, *type, *b;
		size_t l;
		if (crypt_token_json_get(cd, t, &json) < 0)
			continue;
		o = json_tokener_parse(json);
		if (!o)
			continue;
		if (json_object_object_get_ex(o, "type", &type) &&
		    !strcmp(json_object_get_string(type), SLOTSYNC_LUKS_TOKEN_TYPE) &&
		    json_object_object_get_ex(o, "tpm2-blob", &b) && json_object_is_type(b, json_type_string)) {
			const char *s = json_object_get_string(b);
			int n;
			size_t pad;
			l = strlen(s);
			/* EVP_DecodeBlock counts the padding as zero bytes */
			pad = (size_t)(l >= 1 && s[l - 1] == '=') + (size_t)(l >= 2 && s[l - 2] == '=');
			*blob = malloc(l / 4 * 3 + 3);
			n = *blob ? EVP_DecodeBlock(*blob, (const unsigned char *)s, (int)l) : -1;
			json_object_put(o);
			if (n < 0 || l % 4) {
				free(*blob);
				*blob = NULL;
				return slotsync_error_set(err, -EBADMSG, "%s: the slotsync-tpm2 token %d is damaged", device, t);
			}
			*len = (size_t)n - pad;
			return 0;
		}
		json_object_put(o);
	}
	return slotsync_error_set(err, -ENOKEY, "%s: its LUKS2 header has no slotsync-tpm2 token (not formatted by slotsync?)",
				  device);
}

int slotsync_luks_open(const char *device, const struct slotsync_luks_tpm *tpm, const char *name,
		       const char *expect_uuid, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	struct crypt_device *cd = NULL;
	uint8_t *blob = NULL, vk[SLOTSYNC_TPM_SECRET_MAX];
	size_t blob_len = 0, vk_len = 0;
	int r;

	r = load(&cd, device, err);
	if (r < 0)
		return r;
	if (expect_uuid && strcmp(expect_uuid, crypt_get_uuid(cd)) != 0) {
		r = slotsync_error_set(err, -ESTALE, "%s holds LUKS2 header %s, not %s (formatted again by someone else?)",
				       device, crypt_get_uuid(cd), expect_uuid);
		goto out;
	}
	if (uuid)
		snprintf(uuid, SLOTSYNC_LUKS_UUID_BYTES, "%s", crypt_get_uuid(cd));
	r = token_blob(cd, device, &blob, &blob_len, err);
	if (r == 0)
		/* the device's policy, never the one the token or blob names */
		r = slotsync_tpm_unseal(tpm->tcti, tpm->pcr_mask, blob, blob_len, vk, &vk_len, err);
	if (r < 0) {
		slotsync_error_prefix(err, "%s", device);
		goto out;
	}
	r = crypt_activate_by_volume_key(cd, name, (const char *)vk, vk_len, 0);
	if (r < 0)
		r = name ? slotsync_error_set_errno(err, r, "cannot activate %s as /dev/mapper/%s", device, name)
			 : slotsync_error_set_errno(err, r, "%s: the unsealed key does not open its header", device);
out:
	explicit_bzero(vk, sizeof(vk));
	free(blob);
	crypt_free(cd);
	return r;
}

int slotsync_luks_close(const char *name, struct slotsync_error *err)
{
	struct crypt_device *cd = NULL;
	int r;

	crypt_log_quiet();
	r = crypt_init_by_name(&cd, name);

	if (r < 0)
		return slotsync_error_set_errno(err, r, "no mapping %s", name);
	r = crypt_deactivate(cd, name);
	crypt_free(cd);
	return r < 0 ? slotsync_error_set_errno(err, r, "cannot close %s", name) : 0;
}

int slotsync_luks_header_uuid(const char *device, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	struct crypt_device *cd = NULL;
	int r = load(&cd, device, err);

	if (r < 0)
		return r == -ENOENT || r == -ENOTBLK ? r : -EINVAL;
	snprintf(uuid, SLOTSYNC_LUKS_UUID_BYTES, "%s", crypt_get_uuid(cd));
	crypt_free(cd);
	return 0;
}

int slotsync_luks_mapping_uuid(const char *name, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	struct crypt_device *cd = NULL;
	const char *u;
	int r;

	crypt_log_quiet();
	if (crypt_status(NULL, name) != CRYPT_ACTIVE && crypt_status(NULL, name) != CRYPT_BUSY)
		return slotsync_error_set(err, -ENODEV, "no mapping %s", name);
	r = crypt_init_by_name(&cd, name);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot look at mapping %s", name);
	u = crypt_get_uuid(cd);
	if (!u) {
		crypt_free(cd);
		return slotsync_error_set(err, -EINVAL, "mapping %s is not a LUKS2 volume", name);
	}
	snprintf(uuid, SLOTSYNC_LUKS_UUID_BYTES, "%s", u);
	crypt_free(cd);
	return 0;
}

int slotsync_luks_new_uuid(char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return slotsync_error_set(err, -EIO, "no random bytes for a UUID");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(uuid, SLOTSYNC_LUKS_UUID_BYTES,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
		 b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

#else /* built without libcryptsetup */

static int luks_disabled(struct slotsync_error *err)
{
	return slotsync_error_set(err, -ENOTSUP,
				  "LUKS2 slots are not in this build of slotsync (build it with -DSLOTSYNC_LUKS2=ON and "
				  "libcryptsetup)");
}

int slotsync_luks_format(const char *device, const struct slotsync_luks_tpm *tpm, const char *want_uuid,
			 char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_format_open(const char *device, const struct slotsync_luks_tpm *tpm, const char *want_uuid,
			      const char *name, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_header_uuid(const char *device, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_mapping_uuid(const char *name, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_new_uuid(char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_open(const char *device, const struct slotsync_luks_tpm *tpm, const char *name,
		       const char *expect_uuid, char uuid[SLOTSYNC_LUKS_UUID_BYTES], struct slotsync_error *err)
{
	return luks_disabled(err);
}

int slotsync_luks_close(const char *name, struct slotsync_error *err)
{
	return luks_disabled(err);
}
#endif
