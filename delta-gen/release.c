/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Signed bundles and channel pointers, as CI makes them: see gen.h and
 * docs/format.md.  A bundle is the release's manifest, its index and its
 * hooks; making one chunks the image into the store (and delta objects from
 * each base) first.  The signing itself is signer.c's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "io.h"
#include "gen.h"
#include "signer.h"
#include "slotsync/delta.h"
#include "slotsync/envelope.h"
#include "slotsync/features.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "slotsync/store.h"
#include "store_write.h"

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

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SLOTSYNC_DIGEST_BYTES);
}

/* The chunks to embed (--embed, --embed-for): the index's, sorted and unique,
 * less those of every base; with each its frame's size in the store. */
struct embed_set {
	uint8_t (*ids)[SLOTSYNC_DIGEST_BYTES];
	uint64_t *offsets;
	uint32_t *lens;
	size_t n;
	uint64_t data_len;
};

static void embed_set_free(struct embed_set *e)
{
	free(e->ids);
	free(e->offsets);
	free(e->lens);
}

static int embed_set_build(const struct gen_bundle_options *o, const struct slotsync_index *const *idxs, size_t n_idxs,
			   const uint8_t (*extra)[SLOTSYNC_DIGEST_BYTES], size_t n_extra, struct embed_set *e,
			   struct slotsync_error *err)
{
	uint8_t (*base)[SLOTSYNC_DIGEST_BYTES] = NULL;
	size_t n_base = 0, n = 0, total = n_extra;
	int r = 0;

	for (size_t k = 0; k < n_idxs; k++)
		total += idxs[k]->n_chunks;
	e->ids = malloc((total ? total : 1) * sizeof(*e->ids));
	e->offsets = malloc((total ? total : 1) * sizeof(*e->offsets));
	e->lens = malloc((total ? total : 1) * sizeof(*e->lens));
	if (!e->ids || !e->offsets || !e->lens)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	/* the chunks of every image of the group, and the further images'
	 * indexes, which travel as chunks named by their SHA-256 */
	for (size_t k = 0; k < n_idxs; k++)
		for (size_t i = 0; i < idxs[k]->n_chunks; i++)
			memcpy(e->ids[n++], idxs[k]->chunks[i].id, SLOTSYNC_DIGEST_BYTES);
	if (n_extra)
		memcpy(e->ids + n, extra, n_extra * sizeof(*e->ids));
	n = 0;
	qsort(e->ids, total, sizeof(*e->ids), id_cmp);
	for (int b = 0; b < o->n_embed_for; b++) {
		struct slotsync_index *bi = NULL;
		void *nb;
		r = slotsync_index_read_file(o->embed_for[b], &bi, err);
		if (r < 0) {
			slotsync_error_prefix(err, "--embed-for");
			goto out;
		}
		nb = realloc(base, (n_base + bi->n_chunks + 1) * sizeof(*base));
		if (!nb) {
			slotsync_index_free(bi);
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		base = nb;
		for (size_t i = 0; i < bi->n_chunks; i++)
			memcpy(base[n_base++], bi->chunks[i].id, SLOTSYNC_DIGEST_BYTES);
		slotsync_index_free(bi);
	}
	if (n_base)
		qsort(base, n_base, sizeof(*base), id_cmp);
	for (size_t i = 0; i < total; i++) {
		char rel[SLOTSYNC_CHUNK_RELPATH_BYTES], path[4200];
		struct stat st;
		if (n && !memcmp(e->ids[n - 1], e->ids[i], SLOTSYNC_DIGEST_BYTES))
			continue; /* once per chunk */
		if (n_base && bsearch(e->ids[i], base, n_base, sizeof(*base), id_cmp))
			continue; /* the base has it */
		slotsync_store_chunk_relpath(e->ids[i], rel);
		snprintf(path, sizeof(path), "%s/%s", o->store, rel);
		if (stat(path, &st) < 0) {
			r = slotsync_error_set_errno(err, -errno, "cannot embed chunk %s", path);
			goto out;
		}
		if (st.st_size <= 0 || st.st_size > UINT32_MAX) {
			r = slotsync_error_set(err, -EBADMSG, "chunk %s has an impossible size", path);
			goto out;
		}
		memmove(e->ids[n], e->ids[i], SLOTSYNC_DIGEST_BYTES);
		e->offsets[n] = e->data_len;
		e->lens[n] = (uint32_t)st.st_size;
		e->data_len += (uint64_t)st.st_size;
		n++;
	}
	e->n = n;
out:
	free(base);
	return r;
}

/* Writes the signed envelope, then the embedded frames after it, to out
 * atomically (a temp file made durable, renamed, its folder made durable). */
static int write_embedded(const char *out, const uint8_t *env, size_t env_len, const struct gen_bundle_options *o,
			  const struct embed_set *e, struct slotsync_error *err)
{
	char tmp[4200];
	size_t max_len = 1;
	uint8_t *buf;
	int fd = -1, r = 0;

	for (size_t i = 0; i < e->n; i++)
		if (e->lens[i] > max_len)
			max_len = e->lens[i];
	buf = malloc(max_len);

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid());
	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
		goto out;
	}
	r = io_write_full(fd, env, env_len);
	for (size_t i = 0; r == 0 && i < e->n; i++) {
		char rel[SLOTSYNC_CHUNK_RELPATH_BYTES], path[4200];
		int in;
		ssize_t got;
		slotsync_store_chunk_relpath(e->ids[i], rel);
		snprintf(path, sizeof(path), "%s/%s", o->store, rel);
		in = open(path, O_RDONLY | O_CLOEXEC);
		if (in < 0) {
			r = slotsync_error_set_errno(err, -errno, "cannot embed chunk %s", path);
			break;
		}
		got = io_read_full(in, buf, e->lens[i]);
		close(in);
		/* the directory is signed already: the frame must be what it says */
		if (got != (ssize_t)e->lens[i]) {
			r = slotsync_error_set(err, -EIO, "chunk %s changed while the bundle was written", path);
			break;
		}
		r = io_write_full(fd, buf, e->lens[i]);
	}
	if (r < 0 && !slotsync_error_message(err)[0])
		slotsync_error_set_errno(err, r, "cannot write %s", tmp);
	/* the bundle is whole on disk before its name appears */
	if (r == 0 && fsync(fd) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot write %s", tmp);
	if (r == 0 && rename(tmp, out) < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot rename %s", tmp);
	if (r == 0)
		r = io_fsync_parent(out, err);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(buf);
	return r;
}

/* store/indexes/<hex>.caibx, written atomically like the store's chunks. */
static int write_detached_index(const char *store, const uint8_t *index, size_t len,
				const uint8_t digest[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	char path[4200], hex[SLOTSYNC_DIGEST_HEX_BYTES];
	int r;

	snprintf(path, sizeof(path), "%s/indexes", store);
	r = io_mkdir_p(path, err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/indexes/%s.caibx", store, slotsync_digest_to_hex(digest, hex));
	return io_write_file_atomic(path, index, len, err);
}

/* The index of a further image as a chunk of the store (one zstd frame, named
 * by the index's SHA-256), so that --embed carries it with the chunks. */
static int put_index_frame(const struct gen_bundle_options *o, const uint8_t *index, size_t len,
			   const uint8_t id[SLOTSYNC_DIGEST_BYTES], struct slotsync_error *err)
{
	struct store_writer *sw = NULL;
	struct store_batch *b = NULL;
	size_t cap = ZSTD_compressBound(len), n;
	uint8_t *z = malloc(cap ? cap : 1);
	int r;

	if (!z)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	/* a frame of the store, within what a store's reader takes for one */
	if (len > SLOTSYNC_CHUNK_SIZE_LIMIT_MAX) {
		free(z);
		return slotsync_error_set(err, -EFBIG, "its index is %zu bytes, more than a bundle embeds (%u)", len,
					  SLOTSYNC_CHUNK_SIZE_LIMIT_MAX);
	}
	n = ZSTD_compress(z, cap, index, len, o->make.level);
	if (ZSTD_isError(n)) {
		free(z);
		return slotsync_error_set(err, -EIO, "cannot compress an index: %s", ZSTD_getErrorName(n));
	}
	r = store_writer_open(o->store, &sw, err);
	if (r == 0 && !(b = store_batch_new(sw)))
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = store_batch_put(b, id, z, n, err);
	if (b) {
		int r2 = store_batch_free(b, err);
		r = r ? r : r2;
	}
	/* the frame's name is durable before the bundle that embeds it is written */
	if (r == 0)
		r = store_writer_sync(sw, err);
	store_writer_free(sw);
	free(z);
	return r;
}

/* A further image of the slot group: chunked into the store like the main
 * image, its index published as indexes/<hex>.caibx (and, with --embed, as a
 * chunk frame), described in *mi; *idx_out its parsed index. */
static int further_image(const struct gen_bundle_options *o, const char *name, const char *file, const char *out,
			 struct slotsync_manifest_image *mi, struct slotsync_index **idx_out, struct slotsync_error *err)
{
	char tmp[4200];
	uint8_t *index = NULL;
	size_t len = 0;
	struct gen_make_stats ms;
	int r;

	snprintf(tmp, sizeof(tmp), "%s.index-tmp-%s.%d", out, name, (int)getpid());
	r = gen_make(file, tmp, &o->make, &ms, err);
	if (r == 0)
		r = io_read_file(tmp, SLOTSYNC_BUNDLE_MAX_BYTES, &index, &len, err);
	unlink(tmp);
	if (r == 0)
		r = slotsync_index_parse(index, len, idx_out, err);
	if (r == 0)
		r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, file, 0, mi->sha256, &mi->size, err);
	if (r == 0 && mi->size == 0)
		r = slotsync_error_set(err, -EINVAL, "it is empty");
	else if (r == 0 && mi->size != slotsync_index_image_size(*idx_out))
		r = slotsync_error_set(err, -EIO, "it changed while it was chunked");
	if (r == 0) {
		snprintf(mi->name, sizeof(mi->name), "%s", name);
		slotsync_digest(SLOTSYNC_DIGEST_SHA256, index, len, mi->index_sha256);
		mi->index_size = len;
		r = write_detached_index(o->store, index, len, mi->index_sha256, err);
	}
	if (r == 0 && o->embed)
		r = put_index_frame(o, index, len, mi->index_sha256, err);
	if (r < 0)
		slotsync_error_prefix(err, "image %s (%s)", name, file);
	else
		slotsync_log_info("image %s: %" PRIu64 " bytes, %" PRIu64 " chunks (%" PRIu64 " new)", name, mi->size,
				  ms.chunks, ms.new_chunks);
	free(index);
	return r;
}

/* The further images' order in the manifest (by name), each name checked. */
static int further_images_order(const struct gen_bundle_options *o, int order[SLOTSYNC_MANIFEST_MAX_IMAGES],
				struct slotsync_error *err)
{
	if (o->n_images > SLOTSYNC_MANIFEST_MAX_IMAGES)
		return slotsync_error_set(err, -EINVAL, "at most %d further images (--image NAME=FILE)",
					  SLOTSYNC_MANIFEST_MAX_IMAGES);
	for (int i = 0; i < o->n_images; i++) {
		int j;
		if (!slotsync_image_name_valid(o->image_names[i]))
			return slotsync_error_set(err, -EINVAL,
						  "--image %s=: not a valid image name (1 to %d of a-z, 0-9, _ and -, starting with a letter or digit; rootfs= is the main image)",
						  o->image_names[i], SLOTSYNC_IMAGE_NAME_MAX);
		for (j = i; j > 0 && strcmp(o->image_names[order[j - 1]], o->image_names[i]) > 0; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (int i = 1; i < o->n_images; i++)
		if (!strcmp(o->image_names[order[i - 1]], o->image_names[order[i]]))
			return slotsync_error_set(err, -EINVAL, "--image %s= is given twice", o->image_names[order[i]]);
	return 0;
}

int gen_bundle_image_arg(struct gen_bundle_options *b, char *arg)
{
	/* NAME=FILE: a further image of the slot group (rootfs=FILE: the main one) */
	size_t nl = strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	if (nl > 0 && arg[nl] == '=' && strncmp(arg, "rootfs=", 7)) {
		arg[nl] = '\0';
		b->image_names[b->n_images] = arg;
		b->image_files[b->n_images++] = arg + nl + 1;
		return 0;
	}
	if (nl > 0 && arg[nl] == '=')
		arg += nl + 1;
	if (b->image) {
		fprintf(stderr, "slotsync-gen bundle: the main image is given twice (--image %s and --image %s)\n", b->image,
			arg);
		return -EINVAL;
	}
	b->image = arg;
	return 0;
}

/* The delta objects of (base, new) that the store holds already, made by
 * `slotsync-gen delta` before the bundle: used as they are, not made a second
 * time, when the delta index loads, names these two indexes and fits them,
 * and the index diff and every object it names are there (objects are named
 * by their digest, as chunks are: `check` proves their bytes).  Returns 1 and
 * fills *st, or 0: make them. */
static int delta_reuse(const char *store, const char *base_index, const char *new_index, struct gen_delta_stats *st)
{
	struct slotsync_index *bi = NULL, *ni = NULL;
	struct slotsync_delta_index *d = NULL;
	struct slotsync_error e = { 0 };
	uint8_t bd[SLOTSYNC_DIGEST_BYTES], nd[SLOTSYNC_DIGEST_BYTES], *buf = NULL, *diff = NULL;
	size_t len = 0, diff_len = 0;
	char rel[200], drel[200], path[4200];
	struct stat sb;
	int topfd = -1, ok = 0;
	uint64_t bytes = 0;

	if (slotsync_index_read_file(base_index, &bi, &e) < 0 || slotsync_index_read_file(new_index, &ni, &e) < 0 ||
	    slotsync_index_digest(bi, bd, &e) < 0 || slotsync_index_digest(ni, nd, &e) < 0)
		goto out;
	slotsync_delta_index_path(bd, nd, rel, sizeof(rel));
	slotsync_index_diff_path(bd, nd, drel, sizeof(drel));
	/* read once: loaded, checked against both indexes (so against its path), hashed */
	snprintf(path, sizeof(path), "%s/%s", store, rel);
	topfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (topfd < 0 || io_read_file(path, SLOTSYNC_DELTA_INDEX_MAX, &buf, &len, &e) < 0 ||
	    slotsync_delta_index_load(buf, len, &d, &e) < 0 || slotsync_delta_index_check(d, bi, bd, ni, nd, &e) < 0)
		goto out;
	for (uint32_t i = 0; i < d->n_objects; i++) {
		char orel[80];
		slotsync_delta_object_path(d->objects[i].id, orel, sizeof(orel));
		if (fstatat(topfd, orel, &sb, 0) < 0 || (uint64_t)sb.st_size != d->objects[i].size)
			goto out;
		bytes += d->objects[i].size;
	}
	snprintf(path, sizeof(path), "%s/%s", store, drel);
	if (io_read_file(path, SLOTSYNC_DELTA_INDEX_MAX, &diff, &diff_len, &e) < 0)
		goto out;
	memset(st, 0, sizeof(*st));
	memcpy(st->base_digest, bd, SLOTSYNC_DIGEST_BYTES);
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len, st->index_sha256);
	st->index_bytes = len;
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, diff, diff_len, st->index_diff_sha256);
	st->index_diff_bytes = diff_len;
	st->objects = d->n_objects;
	st->object_bytes = bytes;
	snprintf(st->index_path, sizeof(st->index_path), "%s", rel);
	snprintf(st->index_diff_path, sizeof(st->index_diff_path), "%s", drel);
	ok = 1;
out:
	free(buf);
	free(diff);
	slotsync_delta_index_free(d);
	slotsync_index_free(bi);
	slotsync_index_free(ni);
	if (topfd >= 0)
		close(topfd);
	return ok;
}

int gen_bundle(const struct gen_bundle_options *o, const char *out, struct slotsync_error *err)
{
	struct slotsync_index *img_idx[1 + SLOTSYNC_MANIFEST_MAX_IMAGES] = { NULL };
	uint8_t img_index_ids[SLOTSYNC_MANIFEST_MAX_IMAGES][SLOTSYNC_DIGEST_BYTES];
	int img_order[SLOTSYNC_MANIFEST_MAX_IMAGES];
	struct embed_set emb = { 0 };
	uint8_t *dir = NULL, *env = NULL;
	size_t dir_len = 0, env_len = 0;
	struct slotsync_manifest m = { 0 };
	char tmp_index[4200];
	uint8_t *index = NULL;
	size_t index_len, manifest_len;
	char *manifest = NULL;
	uint8_t *hooks = NULL;
	size_t hooks_len = 0;
	struct gen_make_stats ms;
	struct slotsync_index *idx = NULL;
	struct slotsync_manifest_verity mv = { 0 };
	struct gen_verity gv;
	char slot_image[4200], root_hex[SLOTSYNC_DIGEST_HEX_BYTES], salt_hex[SLOTSYNC_DIGEST_HEX_BYTES];
	const char *image = o->image;
	int r;

	slot_image[0] = '\0';
	if (!o->version || !o->compatible || !o->image || !o->store)
		return slotsync_error_set(err, -EINVAL, "bundle needs --store, --image, --version and --compatible");
	r = store_dir_is_local(o->store, err);
	if (r < 0)
		return r;
	if (o->allow_downgrade_to && strcmp(o->allow_downgrade_to, o->version) != 0)
		return slotsync_error_set(err, -EINVAL,
					  "--allow-downgrade-to %s must name this release's version (%s): a release can only allow going back to itself",
					  o->allow_downgrade_to, o->version);
	if (o->n_store_urls > SLOTSYNC_MANIFEST_MAX_STORES)
		return slotsync_error_set(err, -EINVAL, "at most %d --store-url", SLOTSYNC_MANIFEST_MAX_STORES);
	if (o->verity && !SLOTSYNC_HAVE_VERITY)
		return gen_verity(o->image, out, NULL, err); /* says which build option is missing */
	/* the key first: a bad key must not cost a whole chunking run */
	r = signer_check(&o->signer, err);
	if (r < 0)
		return r;
	if (o->detach_index && o->embed)
		return slotsync_error_set(err, -EINVAL, "--detach-index and --embed exclude each other: a bundle that installs with no network carries its index");
	if (o->n_deltas > SLOTSYNC_MANIFEST_MAX_DELTAS)
		return slotsync_error_set(err, -EINVAL, "at most %d --delta-from", SLOTSYNC_MANIFEST_MAX_DELTAS);
	r = further_images_order(o, img_order, err);
	if (r < 0)
		return r;
	if (o->verity && o->verity_root_hash)
		return slotsync_error_set(err, -EINVAL, "--verity computes the root hash: leave out --verity-root-hash");
	if (o->verity) {
		/* what is chunked, written to the slot and signed is the slot image:
		 * the image, its padding and its hash tree */
		snprintf(slot_image, sizeof(slot_image), "%s.slot-tmp.%d", out, (int)getpid());
		r = gen_verity(o->image, slot_image, &gv, err);
		if (r < 0) {
			slot_image[0] = '\0';
			return r;
		}
		image = slot_image;
		mv.root_hash = slotsync_digest_to_hex(gv.root_hash, root_hex);
		mv.salt = slotsync_digest_to_hex(gv.salt, salt_hex);
		mv.algorithm = "sha256";
		mv.data_size = gv.data_size;
		mv.hash_offset = gv.data_size;
		mv.data_block_size = GEN_VERITY_BLOCK_BYTES;
		mv.hash_block_size = GEN_VERITY_BLOCK_BYTES;
		m.verity = &mv;
		m.verity_root_hash = mv.root_hash;
		slotsync_log_info("dm-verity: root hash %s, %" PRIu64 " bytes of data, %" PRIu64 " of hash tree", root_hex,
				  gv.data_size, gv.slot_size - gv.data_size);
	}
	snprintf(tmp_index, sizeof(tmp_index), "%s.index-tmp.%d", out, (int)getpid());
	r = gen_make(image, tmp_index, &o->make, &ms, err);
	if (r == 0)
		r = io_read_file(tmp_index, SLOTSYNC_BUNDLE_MAX_BYTES, &index, &index_len, err);
	/* delta objects from each base into the store; the manifest names their
	 * indexes by digest, so the signature covers them */
	for (int i = 0; r == 0 && i < o->n_deltas; i++) {
		struct gen_delta_options d = o->delta;
		struct gen_delta_stats st;
		d.store = o->store;
		d.new_index = tmp_index;
		d.new_image = image;
		if (delta_reuse(o->store, o->delta_bases[i], tmp_index, &st)) {
			slotsync_log_info("delta objects from %s: the store's, made before (%s)", o->delta_bases[i],
					  st.index_path);
		} else {
			r = gen_delta_pair(&d, o->delta_bases[i], o->delta_base_images[i], &st, err);
			if (r < 0) {
				slotsync_error_prefix(err, "delta objects from %s", o->delta_bases[i]);
				break;
			}
		}
		memcpy(m.deltas[m.n_deltas].base, st.base_digest, SLOTSYNC_DIGEST_BYTES);
		memcpy(m.deltas[m.n_deltas].sha256, st.index_sha256, SLOTSYNC_DIGEST_BYTES);
		m.deltas[m.n_deltas].size = st.index_bytes;
		m.deltas[m.n_deltas].has_index = 1;
		memcpy(m.deltas[m.n_deltas].index_sha256, st.index_diff_sha256, SLOTSYNC_DIGEST_BYTES);
		m.deltas[m.n_deltas].index_size = st.index_diff_bytes;
		m.n_deltas++;
		slotsync_log_info("delta objects from %s: %" PRIu64 " objects, %" PRIu64 " bytes, replace %" PRIu64
				  " bytes of chunks",
				  o->delta_bases[i], st.objects, st.object_bytes + st.index_bytes, st.replaced_plain);
	}
	if (r == 0 && o->packs && m.n_deltas >= SLOTSYNC_MANIFEST_MAX_DELTAS)
		r = slotsync_error_set(err, -EINVAL, "--packs takes a place among the %d delta indexes a manifest names",
				       SLOTSYNC_MANIFEST_MAX_DELTAS);
	if (r == 0 && o->packs) {
		/* pack objects: their index has no base (all-zero digest) */
		struct gen_pack_options po = { .store = o->store, .index = tmp_index, .image = image,
					       .threads = o->make.threads, .level = o->make.level };
		struct gen_pack_stats ps;
		r = gen_packs(&po, &ps, err);
		if (r == 0) {
			memset(m.deltas[m.n_deltas].base, 0, SLOTSYNC_DIGEST_BYTES);
			memcpy(m.deltas[m.n_deltas].sha256, ps.index_sha256, SLOTSYNC_DIGEST_BYTES);
			m.deltas[m.n_deltas].size = ps.index_bytes;
			m.n_deltas++;
			gen_packs_print(o->store, &ps, stderr);
		} else {
			slotsync_error_prefix(err, "pack objects");
		}
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
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, image, 0, m.image_sha256, &m.image_size, err);
	if (r < 0) {
		slotsync_error_prefix(err, "image: ");
		goto out;
	}
	if (m.image_size != slotsync_index_image_size(idx)) {
		r = slotsync_error_set(err, -EIO, "image %s changed while it was chunked", image);
		goto out;
	}
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, index, index_len, m.index_sha256);
	if (o->detach_index) {
		/* the index goes to the store; the manifest names it by digest and size */
		r = write_detached_index(o->store, index, index_len, m.index_sha256, err);
		if (r < 0)
			goto out;
		m.index_size = index_len;
	}
	for (int i = 0; i < o->n_images; i++) {
		int k = img_order[i];
		r = further_image(o, o->image_names[k], o->image_files[k], out, &m.images[i], &img_idx[1 + i], err);
		if (r < 0)
			goto out;
		memcpy(img_index_ids[i], m.images[i].index_sha256, SLOTSYNC_DIGEST_BYTES);
		m.n_images++;
	}
	for (int i = 0; i < o->n_store_urls; i++)
		m.stores[m.n_stores++] = (char *)o->store_urls[i];
	if (!o->verity)
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
	if (o->embed) {
		img_idx[0] = idx;
		r = embed_set_build(o, (const struct slotsync_index *const *)img_idx, 1 + m.n_images,
				    (const uint8_t(*)[SLOTSYNC_DIGEST_BYTES])img_index_ids, m.n_images, &emb, err);
		if (r == 0)
			r = slotsync_embedded_directory((const uint8_t(*)[SLOTSYNC_DIGEST_BYTES])emb.ids, emb.offsets,
							emb.lens, emb.n, emb.data_len, &dir, &dir_len, err);
		if (r < 0)
			goto out;
		slotsync_log_info("embedding %zu chunks, %" PRIu64 " bytes", emb.n, emb.data_len);
	}
	{
		/* with embedded chunks, part 4 is their directory (part 3, the hooks,
		 * then may be empty) */
		const uint8_t *parts[4] = { (const uint8_t *)manifest, index, hooks ? hooks : (const uint8_t *)"", dir };
		size_t lens[4] = { manifest_len, o->detach_index ? 0 : index_len, hooks_len, dir_len };
		if (!o->embed)
			r = signer_write_envelope(&o->signer, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, hooks ? 3 : 2, out, err);
		else if ((r = signer_sign_envelope(&o->signer, SLOTSYNC_ENVELOPE_BUNDLE, parts, lens, 4, &env, &env_len,
						   err)) == 0)
			r = write_embedded(out, env, env_len, o, &emb, err);
	}
out:
	if (slot_image[0])
		unlink(slot_image);
	embed_set_free(&emb);
	free(dir);
	free(env);
	free(hooks);
	for (size_t i = 1; i <= SLOTSYNC_MANIFEST_MAX_IMAGES; i++)
		slotsync_index_free(img_idx[i]);
	slotsync_index_free(idx);
	free(index);
	free(manifest);
	return r;
}

int gen_channel(const struct gen_channel_options *o, const char *out, struct slotsync_error *err)
{
	struct slotsync_pointer p = { 0 };
	uint64_t bundle_len;
	size_t json_len;
	char *json = NULL;
	struct slotsync_envelope *env = NULL;
	int r;

	if (!o->bundle_url || !o->bundle || !o->expires)
		return slotsync_error_set(err, -EINVAL, "channel needs --bundle-url, --bundle, --version and --expires");
	/* the whole file's digest, embedded chunks included, read as a stream */
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, o->bundle, 0, p.bundle_sha256, &bundle_len, err);
	if (r < 0)
		return r;
	/* a pointer to something that is not a bundle helps no one */
	r = slotsync_envelope_read(o->bundle, SLOTSYNC_ENVELOPE_BUNDLE, SLOTSYNC_BUNDLE_MAX_BYTES, &env, err);
	if (r < 0)
		goto out;
	p.version = o->version;
	p.expires = o->expires;
	p.bundle_url = (char *)o->bundle_url;
	p.bundle_size = bundle_len;
	p.compatible = (char *)o->compatible;
	r = slotsync_pointer_serialize(&p, &json, &json_len, err);
	if (r == 0) {
		const uint8_t *parts[1] = { (const uint8_t *)json };
		size_t lens[1] = { json_len };
		r = signer_write_envelope(&o->signer, SLOTSYNC_ENVELOPE_POINTER, parts, lens, 1, out, err);
	}
out:
	slotsync_envelope_free(env);
	free(json);
	return r;
}
