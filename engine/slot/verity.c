/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm-verity of an installed slot: see include/slotsync/verity.h.
 *
 * The slot holds the slot image slotsync-gen made (delta-gen/verity.c): data
 * blocks from 0, the hash tree from the manifest's hash offset, no verity
 * superblock; the parameters all come from the signed manifest.  libcryptsetup
 * takes them as veritysetup does without a superblock (crypt_format with
 * CRYPT_VERITY_NO_HEADER and without CRYPT_VERITY_CREATE_HASH: nothing is
 * written; crypt_load reads only a superblock) and either checks every
 * block in userspace (activation without a name, CRYPT_VERITY_CHECK_HASH: what
 * `veritysetup verify` does) or maps the slot through the kernel.
 */
#include "slotsync/verity.h"

#include <errno.h>

#include "slotsync/features.h"

#if SLOTSYNC_HAVE_VERITY
#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "crypt_log.h"
#include "slotsync/log.h"

/* Loads v's layout over device (data and tree on the same device); flags:
 * CRYPT_VERITY_CHECK_HASH for a check of every block at activation.  *root
 * and *salt are OPENSSL_malloc'd: the caller frees them with OPENSSL_free. */
static int load(const char *device, const struct slotsync_manifest_verity *v, uint32_t flags,
		struct crypt_device **cd, unsigned char **root, long *root_len, unsigned char **salt,
		struct slotsync_error *err)
{
	struct crypt_params_verity params = { 0 };
	long salt_len = 0;
	int r;

	*cd = NULL;
	*root = NULL;
	*salt = NULL;
	if (!v || !v->root_hash || !v->salt || !v->algorithm || !v->data_block_size || !v->hash_block_size)
		return slotsync_error_set(err, -EINVAL, "no dm-verity parameters");
	*root = OPENSSL_hexstr2buf(v->root_hash, root_len);
	*salt = OPENSSL_hexstr2buf(v->salt, &salt_len);
	if (!*root || !*salt)
		return slotsync_error_set(err, -EINVAL, "the dm-verity root hash or salt is not hex");
	crypt_log_quiet();
	r = crypt_init_data_device(cd, device, device);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot open %s", device);
	crypt_set_log_callback(*cd, crypt_log_message, NULL);
	params.hash_name = v->algorithm;
	params.data_device = device;
	params.salt = (const char *)*salt;
	params.salt_size = (uint32_t)salt_len;
	params.hash_type = 1;
	params.data_block_size = v->data_block_size;
	params.hash_block_size = v->hash_block_size;
	params.data_size = v->data_size / v->data_block_size;
	params.hash_area_offset = v->hash_offset;
	params.flags = CRYPT_VERITY_NO_HEADER | flags;
	/* no CRYPT_VERITY_CREATE_HASH: the layout is only taken, nothing written */
	r = crypt_format(*cd, CRYPT_VERITY, NULL, NULL, NULL, NULL, 0, &params);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "libcryptsetup cannot load the dm-verity layout of %s%s%s", device,
						crypt_log_error[0] ? ": " : "", crypt_log_error);
	return 0;
}

int slotsync_verity_verify(const char *device, const struct slotsync_manifest_verity *v, struct slotsync_error *err)
{
	struct crypt_device *cd;
	unsigned char *root, *salt;
	long root_len;
	int r;

	r = load(device, v, CRYPT_VERITY_CHECK_HASH, &cd, &root, &root_len, &salt, err);
	if (r == 0) {
		/* no name: nothing is mapped; CRYPT_VERITY_CHECK_HASH: every data
		 * and hash block is read and checked against the root */
		r = crypt_activate_by_volume_key(cd, NULL, (const char *)root, (size_t)root_len, 0);
		/* libcryptsetup: -EPERM, a data or hash block differs; -EFAULT,
		 * the top of the tree does not give the root hash */
		if (r == -EPERM || r == -EFAULT)
			r = slotsync_error_set(err, -EBADMSG, "%s does not match the root hash %s%s%s", device, v->root_hash,
					       crypt_log_error[0] ? ": " : "", crypt_log_error);
		else if (r < 0)
			r = slotsync_error_set_errno(err, r, "cannot check %s against its dm-verity hash tree%s%s", device,
						     crypt_log_error[0] ? ": " : "", crypt_log_error);
	}
	crypt_free(cd);
	OPENSSL_free(root);
	OPENSSL_free(salt);
	return r;
}

int slotsync_verity_open(const char *device, const struct slotsync_manifest_verity *v, const char *name,
			 struct slotsync_error *err)
{
	struct crypt_device *cd;
	unsigned char *root, *salt;
	long root_len;
	int r;

	if (!name || !name[0] || strchr(name, '/'))
		return slotsync_error_set(err, -EINVAL, "a dm-verity mapping needs a plain name, not \"%s\"",
					  name ? name : "");
	r = load(device, v, 0, &cd, &root, &root_len, &salt, err);
	if (r == 0) {
		r = crypt_activate_by_volume_key(cd, name, (const char *)root, (size_t)root_len, CRYPT_ACTIVATE_READONLY);
		if (r == -EPERM)
			r = slotsync_error_set(err, -EBADMSG, "%s does not match the root hash %s%s%s", device, v->root_hash,
					       crypt_log_error[0] ? ": " : "", crypt_log_error);
		else if (r < 0)
			r = slotsync_error_set_errno(err, r, "cannot map %s through dm-verity as %s%s%s", device, name,
						     crypt_log_error[0] ? ": " : "", crypt_log_error);
	}
	crypt_free(cd);
	OPENSSL_free(root);
	OPENSSL_free(salt);
	return r;
}

int slotsync_verity_close(const char *name, struct slotsync_error *err)
{
	struct crypt_device *cd = NULL;
	int r;

	crypt_log_quiet();
	r = crypt_init_by_name(&cd, name);
	if (r == 0)
		r = crypt_deactivate(cd, name);
	crypt_free(cd);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot remove the dm-verity mapping %s%s%s", name,
						crypt_log_error[0] ? ": " : "", crypt_log_error);
	return 0;
}

#else

static int not_built(struct slotsync_error *err)
{
	return slotsync_error_set(err, -ENOTSUP,
				  "dm-verity needs libcryptsetup, which this build of slotsync lacks (build it with -DSLOTSYNC_VERITY=ON)");
}

int slotsync_verity_verify(const char *device, const struct slotsync_manifest_verity *v, struct slotsync_error *err)
{
	(void)device;
	(void)v;
	return not_built(err);
}

int slotsync_verity_open(const char *device, const struct slotsync_manifest_verity *v, const char *name,
			 struct slotsync_error *err)
{
	(void)device;
	(void)v;
	(void)name;
	return not_built(err);
}

int slotsync_verity_close(const char *name, struct slotsync_error *err)
{
	(void)name;
	return not_built(err);
}

#endif
