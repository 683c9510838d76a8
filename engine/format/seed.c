/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seeds: an open-addressing hash table from chunk id to (seed, offset, size).
 * Ids are digests, so their first eight bytes are already a uniform hash. */
#include "slotsync/seed.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "slotsync/index.h"
#include "slotsync/store.h"

#define SEED_MAX 64

struct seed_entry {
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	uint64_t offset;
	uint32_t size;
	uint16_t seed;   /* index into seeds[] */
	uint8_t used;
	uint8_t bad;     /* failed its check once: never offered again */
};

struct seed_image {
	char *path;
	int fd;
};

struct slotsync_seed_set {
	enum slotsync_digest_type digest;
	struct slotsync_chunker_params params;
	struct seed_image seeds[SEED_MAX];
	size_t n_seeds;
	struct seed_entry *table;
	size_t cap;      /* power of two */
	size_t count;
};

struct slotsync_seed_set *slotsync_seed_set_new(enum slotsync_digest_type digest,
						const struct slotsync_chunker_params *params)
{
	struct slotsync_seed_set *set = calloc(1, sizeof(*set));

	if (!set)
		return NULL;
	set->digest = digest;
	set->params = *params;
	return set;
}

void slotsync_seed_set_free(struct slotsync_seed_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n_seeds; i++) {
		close(set->seeds[i].fd);
		free(set->seeds[i].path);
	}
	free(set->table);
	free(set);
}

static uint64_t id_hash(const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	return h;
}

static struct seed_entry *table_find(const struct slotsync_seed_set *set, const uint8_t *id, size_t size)
{
	if (!set->cap)
		return NULL;
	for (size_t i = id_hash(id) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		struct seed_entry *e = &set->table[i];
		if (!e->used)
			return NULL;
		if (e->size == size && memcmp(e->id, id, SLOTSYNC_DIGEST_BYTES) == 0)
			return e;
	}
}

static int table_grow(struct slotsync_seed_set *set)
{
	size_t cap = set->cap ? set->cap * 2 : 4096;
	struct seed_entry *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++) {
		struct seed_entry *e = &set->table[i];
		size_t j;
		if (!e->used)
			continue;
		for (j = id_hash(e->id) & (cap - 1); t[j].used; j = (j + 1) & (cap - 1))
			;
		t[j] = *e;
	}
	free(set->table);
	set->table = t;
	set->cap = cap;
	return 0;
}

static int table_add(struct slotsync_seed_set *set, const uint8_t *id, uint64_t offset, uint32_t size, uint16_t seed)
{
	size_t i;

	if ((set->count + 1) * 4 > set->cap * 3 && table_grow(set) < 0)
		return -ENOMEM;
	if (table_find(set, id, size))
		return 0; /* the first seed to offer a chunk keeps it */
	for (i = id_hash(id) & (set->cap - 1); set->table[i].used; i = (i + 1) & (set->cap - 1))
		;
	memcpy(set->table[i].id, id, SLOTSYNC_DIGEST_BYTES);
	set->table[i].offset = offset;
	set->table[i].size = size;
	set->table[i].seed = seed;
	set->table[i].used = 1;
	set->count++;
	return 0;
}

struct scan_ctx {
	slotsync_seed_chunk_cb cb;
	void *userdata;
	enum slotsync_digest_type digest;
	uint64_t image_size;
	const char *image_path;
	const char *index_path;
	struct slotsync_error *err;
};

/* A seed's index must describe chunks that lie inside the seed image. */
static int scan_index_item(void *userdata, size_t i, uint64_t start, uint64_t size, const uint8_t *id)
{
	struct scan_ctx *sc = userdata;

	(void)i;
	if (start + size > sc->image_size)
		return slotsync_error_set(sc->err, -EINVAL,
					  "seed index %s describes %" PRIu64 " bytes but seed %s has only %" PRIu64,
					  sc->index_path, start + size, sc->image_path, sc->image_size);
	return sc->cb(sc->userdata, id, start, (uint32_t)size);
}

static int scan_chunk(const uint8_t *data, size_t len, uint64_t offset, void *userdata)
{
	struct scan_ctx *sc = userdata;
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	int r = slotsync_digest(sc->digest, data, len, id);

	if (r < 0)
		return r;
	return sc->cb(sc->userdata, id, offset, (uint32_t)len);
}

int slotsync_seed_scan(int fd, const char *image_path, const char *index_path, enum slotsync_digest_type digest,
		       const struct slotsync_chunker_params *params, slotsync_seed_chunk_cb cb, void *userdata,
		       struct slotsync_error *err)
{
	struct scan_ctx sc = { cb, userdata, digest, 0, image_path, index_path, err };
	struct slotsync_index *hdr = NULL;
	int r;

	if (!index_path) {
		r = slotsync_chunker_stream_fd(params, fd, image_path, scan_chunk, &sc, err);
		if (r < 0)
			slotsync_error_set(err, r, "cannot index seed %s", image_path);
		return r;
	}
	r = io_fd_size(fd, &sc.image_size);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot use seed %s", image_path);
	/* Check the header before streaming: the digest must match. */
	r = slotsync_index_scan_file(index_path, &hdr, NULL, NULL, err);
	if (r < 0)
		return r;
	if (hdr->digest != digest) {
		r = slotsync_error_set(err, -EINVAL, "seed index %s uses %s, the target index %s", index_path,
				       slotsync_digest_name(hdr->digest), slotsync_digest_name(digest));
		goto out;
	}
	r = slotsync_index_scan_file(index_path, NULL, scan_index_item, &sc, err);
out:
	slotsync_index_free(hdr);
	return r;
}

int slotsync_seed_read_chunk(int fd, const char *image_path, uint64_t offset, size_t size,
			     enum slotsync_digest_type digest, const uint8_t id[SLOTSYNC_DIGEST_BYTES], void *dst,
			     struct slotsync_error *err)
{
	ssize_t n = io_pread_full(fd, dst, size, offset);
	int r;

	if (n < 0)
		return slotsync_error_set_errno(err, (int)n, "cannot read seed %s", image_path);
	if ((size_t)n != size)
		return slotsync_error_set(err, -EBADMSG, "seed %s ends before offset %" PRIu64, image_path, offset + size);
	r = slotsync_chunk_verify(dst, size, digest, id, err);
	if (r < 0)
		slotsync_error_prefix(err, "seed %s at offset %" PRIu64, image_path, offset);
	return r;
}

/* The part after the last colon names an index only if it is an existing
 * file ending in ".caibx": a colon anywhere else belongs to the image's path. */
static int spec_names_index(const char *spec, const char *colon)
{
	size_t n = strlen(colon + 1);
	struct stat st;

	return colon != spec && n > 6 && !strcmp(colon + 1 + n - 6, ".caibx") && stat(colon + 1, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

int slotsync_seed_spec_parse(const char *spec, char **image, char **index, struct slotsync_error *err)
{
	const char *colon = strrchr(spec, ':');

	*image = *index = NULL;
	if (!*spec)
		return slotsync_error_set(err, -EINVAL, "empty seed name");
	if (!colon || !spec_names_index(spec, colon)) {
		*image = strdup(spec);
		return *image ? 0 : slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	*image = strndup(spec, (size_t)(colon - spec));
	*index = strdup(colon + 1);
	if (!*image || !*index) {
		free(*image);
		free(*index);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

struct set_add {
	struct slotsync_seed_set *set;
	uint16_t seed;
	const char *image_path;
	struct slotsync_error *err;
};

static int set_add_chunk(void *userdata, const uint8_t *id, uint64_t offset, uint32_t size)
{
	struct set_add *sa = userdata;

	if (table_add(sa->set, id, offset, size, sa->seed) < 0)
		return slotsync_error_set(sa->err, -ENOMEM, "out of memory indexing seed %s", sa->image_path);
	return 0;
}

int slotsync_seed_set_add(struct slotsync_seed_set *set, const char *image_path, const char *index_path,
			  struct slotsync_error *err)
{
	struct seed_image *seed;
	int r;

	if (set->n_seeds >= SEED_MAX)
		return slotsync_error_set(err, -E2BIG, "too many seeds (at most %d)", SEED_MAX);
	seed = &set->seeds[set->n_seeds];
	seed->fd = open(image_path, O_RDONLY | O_CLOEXEC);
	if (seed->fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open seed %s", image_path);
	seed->path = strdup(image_path);
	if (!seed->path) {
		close(seed->fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	set->n_seeds++;
	{
		struct set_add sa = { set, (uint16_t)(set->n_seeds - 1), seed->path, err };
		r = slotsync_seed_scan(seed->fd, seed->path, index_path, set->digest, &set->params, set_add_chunk, &sa, err);
	}
	return r;
}

int slotsync_seed_set_add_spec(struct slotsync_seed_set *set, const char *spec, struct slotsync_error *err)
{
	char *image, *index;
	int r = slotsync_seed_spec_parse(spec, &image, &index, err);

	if (r < 0)
		return r;
	r = slotsync_seed_set_add(set, image, index, err);
	free(image);
	free(index);
	return r;
}

size_t slotsync_seed_set_count(const struct slotsync_seed_set *set)
{
	return set->count;
}

int slotsync_seed_set_has(const struct slotsync_seed_set *set, const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t size)
{
	const struct seed_entry *e = table_find(set, id, size);

	return e && !e->bad;
}

int slotsync_seed_set_read(struct slotsync_seed_set *set, const uint8_t id[SLOTSYNC_DIGEST_BYTES], size_t size,
			   void *dst, struct slotsync_error *err)
{
	struct seed_entry *e = table_find(set, id, size);
	struct seed_image *seed;
	int r;

	if (!e || e->bad)
		return -ENOENT;
	seed = &set->seeds[e->seed];
	r = slotsync_seed_read_chunk(seed->fd, seed->path, e->offset, size, set->digest, id, dst, err);
	if (r == -EBADMSG)
		e->bad = 1;
	return r;
}
