/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slot image of a release with dm-verity (gen.h, docs/format.md): the
 * image, zero-padded to whole 4096-byte blocks, then the hash tree that
 * libcryptsetup computes over it, in the same file at the hash offset, as
 * `veritysetup format --no-superblock --hash-offset=N` writes it.  Nothing of
 * the tree is computed here: libcryptsetup does it.
 *
 * The salt is SHA-256 over a fixed label and the image's SHA-256: the same
 * image always gives the same slot image, so a release's slot image can be made
 * again later as the base of a delta. */
#include "gen.h"

#include <errno.h>
#include <inttypes.h>

#include "slotsync/features.h"

#if SLOTSYNC_HAVE_VERITY
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt_log.h"
#include "gen_dl.h"
#include "io.h"
#include "slotsync/log.h"

#define SALT_LABEL "slotsync dm-verity salt v1\n"

/* Copies image into fd and pads it with zeros to data_size. */
static int copy_padded(const char *image, int fd, uint64_t size, uint64_t data_size, struct slotsync_error *err)
{
	uint8_t *buf = malloc(1u << 20);
	uint64_t done = 0;
	int in = -1, r = 0;

	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot open %s", image);
		goto out;
	}
	while (done < size) {
		size_t want = size - done < (1u << 20) ? (size_t)(size - done) : (1u << 20);
		ssize_t got = io_read_full(in, buf, want);
		if (got != (ssize_t)want) {
			r = slotsync_error_set(err, -EIO, "image %s changed while it was read", image);
			goto out;
		}
		r = io_write_full(fd, buf, want);
		if (r < 0) {
			slotsync_error_set_errno(err, r, "cannot write the slot image");
			goto out;
		}
		done += want;
	}
	memset(buf, 0, GEN_VERITY_BLOCK_BYTES);
	if (data_size > size) {
		r = io_write_full(fd, buf, (size_t)(data_size - size));
		if (r < 0)
			slotsync_error_set_errno(err, r, "cannot write the slot image");
	}
out:
	if (in >= 0)
		close(in);
	free(buf);
	return r;
}

int gen_verity(const char *image, const char *slot_image, struct gen_verity *v, struct slotsync_error *err)
{
	uint8_t image_sha[SLOTSYNC_DIGEST_BYTES], salt_in[sizeof(SALT_LABEL) - 1 + SLOTSYNC_DIGEST_BYTES];
	struct crypt_params_verity params = { 0 };
	const struct gen_cryptsetup *cs;
	struct crypt_device *cd = NULL;
	char tmp[4200];
	size_t root_len = sizeof(v->root_hash);
	uint64_t size = 0;
	struct stat st;
	int fd = -1, r;

	memset(v, 0, sizeof(*v));
	cs = gen_cryptsetup(err);
	if (!cs)
		return -ENOENT;
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, image, 0, image_sha, &size, err);
	if (r < 0)
		return r;
	if (size == 0)
		return slotsync_error_set(err, -EINVAL, "image %s is empty", image);
	memcpy(salt_in, SALT_LABEL, sizeof(SALT_LABEL) - 1);
	memcpy(salt_in + sizeof(SALT_LABEL) - 1, image_sha, SLOTSYNC_DIGEST_BYTES);
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, salt_in, sizeof(salt_in), v->salt);
	v->data_size = (size + GEN_VERITY_BLOCK_BYTES - 1) / GEN_VERITY_BLOCK_BYTES * GEN_VERITY_BLOCK_BYTES;
	/* one block has an empty tree (its root hash is the block's own hash),
	 * and a slot carries its tree after the data: two blocks have one */
	if (v->data_size < 2 * GEN_VERITY_BLOCK_BYTES)
		v->data_size = 2 * GEN_VERITY_BLOCK_BYTES;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", slot_image, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
	r = copy_padded(image, fd, size, v->data_size, err);
	if (r < 0)
		goto out;

	/* the data and the tree in one file: the tree from data_size on */
	crypt_log_quiet_with(cs->set_log_callback);
	r = cs->init(&cd, tmp);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "libcryptsetup cannot open %s", tmp);
		goto out;
	}
	cs->set_log_callback(cd, crypt_log_message, NULL);
	params.hash_name = "sha256";
	params.data_device = tmp;
	params.salt = (const char *)v->salt;
	params.salt_size = sizeof(v->salt);
	params.hash_type = 1;
	params.data_block_size = GEN_VERITY_BLOCK_BYTES;
	params.hash_block_size = GEN_VERITY_BLOCK_BYTES;
	params.data_size = v->data_size / GEN_VERITY_BLOCK_BYTES;
	params.hash_area_offset = v->data_size;
	params.flags = CRYPT_VERITY_CREATE_HASH | CRYPT_VERITY_NO_HEADER;
	r = cs->format(cd, CRYPT_VERITY, NULL, NULL, NULL, NULL, 0, &params);
	if (r < 0) {
		slotsync_error_set_errno(err, r, "libcryptsetup cannot compute the dm-verity hash tree of %s%s%s", image,
					 crypt_log_error[0] ? ": " : "", crypt_log_error);
		goto out;
	}
	r = cs->volume_key_get(cd, CRYPT_ANY_SLOT, (char *)v->root_hash, &root_len, NULL, 0);
	if (r < 0 || root_len != sizeof(v->root_hash)) {
		r = slotsync_error_set(err, r < 0 ? r : -EIO, "libcryptsetup gives no root hash for %s", image);
		goto out;
	}
	r = 0;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= v->data_size) {
		r = slotsync_error_set(err, -EIO, "libcryptsetup wrote no hash tree into %s", tmp);
		goto out;
	}
	v->slot_size = (uint64_t)st.st_size;
	/* the slot image is whole on disk before its name appears */
	if (fsync(fd) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot write %s", tmp);
		goto out;
	}
	if (rename(tmp, slot_image) < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot rename %s", tmp);
		goto out;
	}
	r = io_fsync_parent(slot_image, err);
out:
	cs->free(cd);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	return r;
}

void gen_verity_print(const struct gen_verity *v, int json, FILE *f)
{
	char root[SLOTSYNC_DIGEST_HEX_BYTES], salt[SLOTSYNC_DIGEST_HEX_BYTES];

	slotsync_digest_to_hex(v->root_hash, root);
	slotsync_digest_to_hex(v->salt, salt);
	if (json)
		fprintf(f,
			"{\"root_hash\": \"%s\", \"salt\": \"%s\", \"algorithm\": \"sha256\", \"data_size\": %" PRIu64
			", \"hash_offset\": %" PRIu64 ", \"data_block_size\": %d, \"hash_block_size\": %d, \"size\": %" PRIu64
			"}\n",
			root, salt, v->data_size, v->data_size, GEN_VERITY_BLOCK_BYTES, GEN_VERITY_BLOCK_BYTES, v->slot_size);
	else
		fprintf(f,
			"root hash:   %s\nsalt:        %s\ndata size:   %" PRIu64 "\nhash offset: %" PRIu64 "\nsize:        %" PRIu64
			"\n",
			root, salt, v->data_size, v->data_size, v->slot_size);
}

#else

#include <string.h>

void gen_verity_print(const struct gen_verity *v, int json, FILE *f)
{
	(void)v;
	(void)json;
	(void)f;
}

int gen_verity(const char *image, const char *slot_image, struct gen_verity *v, struct slotsync_error *err)
{
	(void)image;
	(void)slot_image;
	if (v)
		memset(v, 0, sizeof(*v));
	return slotsync_error_set(err, -ENOTSUP,
				  "dm-verity needs libcryptsetup, which this build of slotsync-gen lacks (build it with -DSLOTSYNC_VERITY=ON)");
}

#endif
