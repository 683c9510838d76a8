/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device's trust policy and state: see include/slotsync/policy.h. */
#include "slotsync/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

#define STATE_MAX_BYTES 65536

int slotsync_policy_state_load(const char *path, struct slotsync_state *st, struct slotsync_error *err)
{
	struct json_object *root = NULL, *v;
	uint8_t *buf = NULL;
	size_t len;
	int r;

	memset(st, 0, sizeof(*st));
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	r = io_read_file(path, STATE_MAX_BYTES, &buf, &len, err);
	if (r < 0) {
		slotsync_error_prefix(err, "device state");
		return r;
	}
	{
		struct json_tokener *tok = json_tokener_new();
		if (!tok) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		root = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
		json_tokener_free(tok);
	}
	if (!root || json_object_get_type(root) != json_type_object || memchr(buf, 0, len)) {
		r = slotsync_error_set(err, -EBADMSG, "device state %s is not a JSON object: refusing to guess it", path);
		goto out;
	}
	if (json_object_object_get_ex(root, "pointer_version", &v)) {
		if (json_object_get_type(v) != json_type_int || json_object_get_int64(v) < 0) {
			r = slotsync_error_set(err, -EBADMSG, "device state %s: pointer_version is not a whole number", path);
			goto out;
		}
		st->pointer_version = (uint64_t)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(root, "security_floor", &v)) {
		if (json_object_get_type(v) != json_type_int || json_object_get_int64(v) < 0) {
			r = slotsync_error_set(err, -EBADMSG, "device state %s: security_floor is not a whole number", path);
			goto out;
		}
		st->security_floor = (uint64_t)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(root, "installed_version", &v)) {
		if (json_object_get_type(v) != json_type_string ||
		    strlen(json_object_get_string(v)) >= sizeof(st->installed_version)) {
			r = slotsync_error_set(err, -EBADMSG, "device state %s: installed_version is not a short string", path);
			goto out;
		}
		snprintf(st->installed_version, sizeof(st->installed_version), "%s", json_object_get_string(v));
	}
out:
	json_object_put(root);
	free(buf);
	return r;
}

int slotsync_policy_state_save(const char *path, const struct slotsync_state *st, struct slotsync_error *err)
{
	struct json_object *root = json_object_new_object();
	const char *s;
	int r;

	if (!root)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	json_object_object_add(root, "pointer_version", json_object_new_int64((int64_t)st->pointer_version));
	json_object_object_add(root, "security_floor", json_object_new_int64((int64_t)st->security_floor));
	json_object_object_add(root, "installed_version", json_object_new_string(st->installed_version));
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
	r = io_write_file_atomic(path, s, strlen(s), err);
	if (r < 0)
		slotsync_error_prefix(err, "device state");
	json_object_put(root);
	return r;
}

int slotsync_policy_check(const struct slotsync_manifest *m, const struct slotsync_policy *p,
			  struct slotsync_error *err)
{
	char when[32];

	if (p->compatible && strcmp(p->compatible, m->compatible) != 0)
		return slotsync_error_set(err, -EPERM, "bundle is for \"%s\", this device is \"%s\"", m->compatible,
					  p->compatible);
	if (m->expires && p->now > m->expires) {
		slotsync_time_format(m->expires, when);
		return slotsync_error_set(err, -EPERM, "bundle %s expired at %s", m->version, when);
	}
	if (m->security_version < p->security_floor)
		return slotsync_error_set(err, -EPERM,
					  "bundle %s has security version %" PRIu64
					  ", below this device's floor of %" PRIu64 " (anti-rollback)",
					  m->version, m->security_version, p->security_floor);
	if (p->installed_version && p->installed_version[0]) {
		int c = strverscmp(m->version, p->installed_version);
		if (c == 0)
			return slotsync_error_set(err, -EPERM, "version %s is already installed", m->version);
		if (c < 0) {
			if (!m->downgrade_allowed_to)
				return slotsync_error_set(err, -EPERM,
							  "bundle %s is older than the installed %s and does not allow a downgrade to it",
							  m->version, p->installed_version);
			if (!p->allow_downgrade)
				return slotsync_error_set(err, -EPERM,
							  "bundle %s allows a downgrade from %s, but this device does not allow downgrades",
							  m->version, p->installed_version);
		}
	}
	return 0;
}

int slotsync_policy_check_pointer(const struct slotsync_pointer *ptr, uint64_t last_version, time_t now,
				  const char *compatible, struct slotsync_error *err)
{
	char when[32];

	if (ptr->version < last_version)
		return slotsync_error_set(err, -EPERM,
					  "channel pointer version %" PRIu64 " is older than the last one accepted (%" PRIu64
					  "): a replayed pointer (rollback)",
					  ptr->version, last_version);
	if (now > ptr->expires) {
		slotsync_time_format(ptr->expires, when);
		return slotsync_error_set(err, -EPERM,
					  "channel pointer version %" PRIu64 " expired at %s: a stale channel (freeze)",
					  ptr->version, when);
	}
	if (compatible && ptr->compatible && strcmp(compatible, ptr->compatible) != 0)
		return slotsync_error_set(err, -EPERM, "channel pointer is for \"%s\", this device is \"%s\"",
					  ptr->compatible, compatible);
	return 0;
}

int slotsync_policy_check_pointer_bundle(const struct slotsync_pointer *ptr, const char *bundle_path,
					 struct slotsync_error *err)
{
	uint8_t *buf = NULL, digest[SLOTSYNC_DIGEST_BYTES];
	struct stat st;
	size_t len;
	int r;

	if (stat(bundle_path, &st) < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open bundle %s", bundle_path);
	if ((uint64_t)st.st_size != ptr->bundle_size)
		return slotsync_error_set(err, -EPERM,
					  "bundle %s is %lld bytes, the channel pointer names one of %" PRIu64
					  " (another bundle: mix-and-match)",
					  bundle_path, (long long)st.st_size, ptr->bundle_size);
	r = io_read_file(bundle_path, (size_t)ptr->bundle_size, &buf, &len, err);
	if (r < 0)
		return r;
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len, digest);
	free(buf);
	if (memcmp(digest, ptr->bundle_sha256, SLOTSYNC_DIGEST_BYTES) != 0)
		return slotsync_error_set(err, -EPERM,
					  "bundle %s does not have the SHA-256 the channel pointer names (another bundle: mix-and-match)",
					  bundle_path);
	return 0;
}
