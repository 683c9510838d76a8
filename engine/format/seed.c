/* Seeds: an open-addressing hash table from chunk id to (seed, offset, size).
 * Ids are digests, so their first eight bytes are already a uniform hash. */
#include "slotsync/seed.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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
	uint64_t size;
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

static int seed_add_indexed(struct slotsync_seed_set *set, uint16_t s, const char *index_path, struct slotsync_error *err)
{
	struct slotsync_index *idx = NULL;
	int r;

	r = slotsync_index_read_file(index_path, &idx, err);
	if (r < 0)
		return r;
	if (idx->digest != set->digest) {
		r = slotsync_error_set(err, -EINVAL, "seed index %s uses %s, the target index %s", index_path,
				       slotsync_digest_name(idx->digest), slotsync_digest_name(set->digest));
		goto out;
	}
	if (slotsync_index_image_size(idx) > set->seeds[s].size) {
		r = slotsync_error_set(err, -EINVAL, "seed index %s describes %" PRIu64 " bytes but %s has only %" PRIu64,
				       index_path, slotsync_index_image_size(idx), set->seeds[s].path,
				       set->seeds[s].size);
		goto out;
	}
	for (size_t i = 0; i < idx->n_chunks; i++) {
		r = table_add(set, idx->chunks[i].id, slotsync_index_chunk_start(idx, i),
			      (uint32_t)slotsync_index_chunk_size(idx, i), s);
		if (r < 0) {
			slotsync_error_set(err, r, "out of memory indexing seed %s", set->seeds[s].path);
			goto out;
		}
	}
out:
	slotsync_index_free(idx);
	return r;
}

struct seed_chunking {
	struct slotsync_seed_set *set;
	uint16_t seed;
};

static int seed_chunk_cb(const uint8_t *data, size_t len, uint64_t offset, void *userdata)
{
	struct seed_chunking *sc = userdata;
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	int r;

	r = slotsync_digest(sc->set->digest, data, len, id);
	if (r < 0)
		return r;
	return table_add(sc->set, id, offset, (uint32_t)len, sc->seed);
}

/* A seed without an index is chunked now, as the target was. */
static int seed_add_chunked(struct slotsync_seed_set *set, uint16_t s, struct slotsync_error *err)
{
	struct seed_chunking sc = { set, s };
	int r;

	r = slotsync_chunker_stream_fd(&set->params, set->seeds[s].fd, set->seeds[s].path, seed_chunk_cb, &sc, err);
	if (r < 0)
		slotsync_error_set(err, r, "cannot index seed %s", set->seeds[s].path);
	return r;
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
	r = io_fd_size(seed->fd, &seed->size);
	if (r < 0) {
		close(seed->fd);
		return slotsync_error_set_errno(err, r, "cannot use seed %s", image_path);
	}
	seed->path = strdup(image_path);
	if (!seed->path) {
		close(seed->fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	set->n_seeds++;
	r = index_path ? seed_add_indexed(set, (uint16_t)(set->n_seeds - 1), index_path, err)
		       : seed_add_chunked(set, (uint16_t)(set->n_seeds - 1), err);
	return r;
}

int slotsync_seed_set_add_spec(struct slotsync_seed_set *set, const char *spec, struct slotsync_error *err)
{
	const char *colon = strrchr(spec, ':');
	char *image;
	int r;

	if (!colon)
		return slotsync_seed_set_add(set, spec, NULL, err);
	image = strndup(spec, (size_t)(colon - spec));
	if (!image)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	if (!*image || !colon[1]) {
		free(image);
		return slotsync_error_set(err, -EINVAL, "seed \"%s\" is not IMAGE or IMAGE:INDEX", spec);
	}
	r = slotsync_seed_set_add(set, image, colon + 1, err);
	free(image);
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
	ssize_t n;
	int r;

	if (!e || e->bad)
		return -ENOENT;
	seed = &set->seeds[e->seed];
	n = io_pread_full(seed->fd, dst, size, e->offset);
	if (n < 0)
		return slotsync_error_set_errno(err, (int)n, "cannot read seed %s", seed->path);
	if ((size_t)n != size) {
		e->bad = 1;
		return slotsync_error_set(err, -EBADMSG, "seed %s ends before offset %" PRIu64, seed->path,
					  e->offset + size);
	}
	r = slotsync_chunk_verify(dst, size, set->digest, id, err);
	if (r < 0) {
		e->bad = 1;
		slotsync_error_prefix(err, "seed %s at offset %" PRIu64, seed->path, e->offset);
	}
	return r;
}
