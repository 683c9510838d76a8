/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen prune: remove from a store what no kept release needs.
 *
 * Mark, then sweep.  Marking reads every kept release (a bundle, or an index)
 * and refuses to go on if one cannot be read: a release that is not understood
 * would lose its chunks.  What is marked:
 *   - every chunk of every kept index: the main image's and, for a bundle, each
 *     further image's (indexes/<hex>.caibx), and the further indexes' own
 *     frames (a bundle made with --embed stores them as chunks);
 *   - the detached indexes of the kept releases (indexes/<hex>.caibx);
 *   - every delta index and index diff (deltas/<base>/<new>.sdix, .sdid) whose
 *     base AND new index are both kept, every pack index (base all zero) of a
 *     kept release, and every object (.sdob) such a delta index names.  A kept delta index that does not load stops the prune too.
 * The sweep removes the rest, except what is younger than the grace period: a
 * make or delta writing into the store at the same time puts its new files
 * there before the index that names them, so a young unmarked file may be
 * needed by a release not yet written.  (make refreshes the time of a chunk
 * it reuses, for the same reason; each file's time is read again just before
 * it is removed.)
 *
 * Crash safety: every removal is one unlink, and they go in an order where an
 * interrupted prune never leaves a file that names a missing one: delta
 * indexes and index diffs first, then detached indexes, then delta objects,
 * chunks, temp files, and last the folders left empty.  Running prune again
 * finishes the work. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "gen.h"
#include "io.h"
#include "slotsync/delta.h"
#include "slotsync/envelope.h"
#include "slotsync/index.h"
#include "slotsync/log.h"
#include "slotsync/store.h"
#include "store_write.h"

const char *const gen_prune_kind_names[GEN_PRUNE_KINDS] = {
	"delta indexes", "index diffs", "indexes", "delta objects", "chunks", "temp files",
};

/* Digests: added, then sorted once and searched. */
struct id_list {
	uint8_t (*ids)[SLOTSYNC_DIGEST_BYTES];
	size_t n, cap;
};

static int id_list_add(struct id_list *s, const uint8_t id[SLOTSYNC_DIGEST_BYTES])
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4096;
		void *p = realloc(s->ids, cap * sizeof(*s->ids));
		if (!p)
			return -ENOMEM;
		s->ids = p;
		s->cap = cap;
	}
	memcpy(s->ids[s->n++], id, SLOTSYNC_DIGEST_BYTES);
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SLOTSYNC_DIGEST_BYTES);
}

static void id_list_sort(struct id_list *s)
{
	size_t k = 0;

	if (s->n == 0)
		return;
	qsort(s->ids, s->n, sizeof(*s->ids), id_cmp);
	for (size_t i = 0; i < s->n; i++)
		if (k == 0 || memcmp(s->ids[i], s->ids[k - 1], SLOTSYNC_DIGEST_BYTES) != 0)
			memcpy(s->ids[k++], s->ids[i], SLOTSYNC_DIGEST_BYTES);
	s->n = k;
}

static int id_list_has(const struct id_list *s, const uint8_t id[SLOTSYNC_DIGEST_BYTES])
{
	return s->n && bsearch(id, s->ids, s->n, sizeof(*s->ids), id_cmp) != NULL;
}

/* What the sweep removes, in the order it does. */
struct doomed {
	char rel[200];
	int kind;
};

struct prune {
	const struct gen_prune_options *o;
	struct gen_prune_stats *st;
	int topfd;
	time_t cutoff;                /* files modified after it are young */
	struct id_list indexes;         /* digests of the kept indexes */
	struct id_list chunks, objects; /* marked */
	struct doomed *doomed;
	size_t n_doomed, cap_doomed;
	char (*dirs)[80];             /* folders the sweep leaves empty */
	size_t n_dirs, cap_dirs;
	size_t entries;               /* of the folder each_entry read last */
};

static int mark_index(struct prune *p, const struct slotsync_index *idx)
{
	uint8_t d[SLOTSYNC_DIGEST_BYTES];
	int r = slotsync_index_digest(idx, d, NULL);

	if (r == 0)
		r = id_list_add(&p->indexes, d);
	for (size_t i = 0; r == 0 && i < idx->n_chunks; i++)
		r = id_list_add(&p->chunks, idx->chunks[i].id);
	return r;
}

/* The store's indexes/<hex>.caibx that must have digest id and size: parsed
 * into *out. */
static int read_store_index(struct prune *p, const uint8_t id[SLOTSYNC_DIGEST_BYTES], uint64_t size,
			    struct slotsync_index **out, struct slotsync_error *err)
{
	char path[4300], hex[SLOTSYNC_DIGEST_HEX_BYTES];
	uint8_t *buf = NULL, got[SLOTSYNC_DIGEST_BYTES];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/indexes/%s.caibx", p->o->store, slotsync_digest_to_hex(id, hex));
	r = io_read_file(path, SLOTSYNC_BUNDLE_MAX_BYTES, &buf, &len, err);
	if (r < 0)
		return r;
	slotsync_digest(SLOTSYNC_DIGEST_SHA256, buf, len, got);
	if (memcmp(got, id, sizeof(got)) != 0 || (size && size != len))
		r = slotsync_error_set(err, -EBADMSG, "%s does not have the digest and size its manifest names", path);
	else
		r = slotsync_index_parse(buf, len, out, err);
	free(buf);
	return r;
}

/* A bundle: its manifest, its index (in it or detached) and its further
 * images' indexes.  With a keyring, its signature is checked first. */
static int mark_bundle(struct prune *p, const char *path, struct slotsync_error *err)
{
	struct slotsync_envelope *env = NULL;
	struct slotsync_manifest *m = NULL;
	struct slotsync_index *idx = NULL;
	uint8_t got[SLOTSYNC_DIGEST_BYTES];
	int r;

	if (p->o->keyring) {
		struct slotsync_bundle *b = NULL;
		r = slotsync_bundle_open(path, p->o->keyring, &b, err);
		slotsync_bundle_free(b);
		if (r < 0)
			return r;
	}
	r = slotsync_envelope_read(path, SLOTSYNC_ENVELOPE_BUNDLE, SLOTSYNC_BUNDLE_MAX_BYTES, &env, err);
	if (r == 0)
		r = slotsync_manifest_parse(env->part[0], env->part_len[0], &m, err);
	if (r < 0)
		goto out;
	if (env->part_len[1] == 0) {
		r = read_store_index(p, m->index_sha256, m->index_size, &idx, err);
	} else {
		slotsync_digest(SLOTSYNC_DIGEST_SHA256, env->part[1], env->part_len[1], got);
		if (memcmp(got, m->index_sha256, sizeof(got)) != 0)
			r = slotsync_error_set(err, -EBADMSG, "its index does not have the digest its manifest names");
		else
			r = slotsync_index_parse(env->part[1], env->part_len[1], &idx, err);
	}
	if (r == 0 && slotsync_index_image_size(idx) != m->image_size)
		r = slotsync_error_set(err, -EBADMSG, "its index describes another image size than its manifest");
	if (r == 0)
		r = id_list_add(&p->indexes, m->index_sha256);
	if (r == 0)
		r = mark_index(p, idx);
	for (size_t i = 0; r == 0 && i < m->n_images; i++) {
		struct slotsync_index *fi = NULL;
		r = read_store_index(p, m->images[i].index_sha256, m->images[i].index_size, &fi, err);
		if (r < 0)
			slotsync_error_prefix(err, "image %s", m->images[i].name);
		if (r == 0)
			r = id_list_add(&p->indexes, m->images[i].index_sha256);
		/* the index's own frame, stored as a chunk by bundle --embed */
		if (r == 0)
			r = id_list_add(&p->chunks, m->images[i].index_sha256);
		if (r == 0)
			r = mark_index(p, fi);
		slotsync_index_free(fi);
	}
out:
	slotsync_index_free(idx);
	slotsync_manifest_free(m);
	slotsync_envelope_free(env);
	return r;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int mark_release(struct prune *p, const char *path, struct slotsync_error *err)
{
	struct slotsync_index *idx = NULL;
	int r;

	if (ends_with(path, ".caibx")) {
		r = slotsync_index_read_file(path, &idx, err);
		if (r == 0)
			r = mark_index(p, idx);
		slotsync_index_free(idx);
	} else {
		r = mark_bundle(p, path, err);
	}
	if (r == -ENOMEM && err && !err->code)
		slotsync_error_set(err, r, "out of memory");
	if (r < 0)
		slotsync_error_prefix(err, "kept release %s cannot be read, nothing removed", path);
	return r;
}

static int doom(struct prune *p, const char *rel, int kind)
{
	if (p->n_doomed == p->cap_doomed) {
		size_t cap = p->cap_doomed ? 2 * p->cap_doomed : 1024;
		void *n = realloc(p->doomed, cap * sizeof(*p->doomed));
		if (!n)
			return -ENOMEM;
		p->doomed = n;
		p->cap_doomed = cap;
	}
	snprintf(p->doomed[p->n_doomed].rel, sizeof(p->doomed[0].rel), "%s", rel);
	p->doomed[p->n_doomed++].kind = kind;
	return 0;
}

/* Counts one file (rel, in the store) as kept or to remove; marked: needed
 * by a kept release.  Unmarked files younger than the grace are kept. */
static int sort_file(struct prune *p, const char *rel, int kind, int marked, struct slotsync_error *err)
{
	struct gen_prune_kind *k = &p->st->kind[kind];
	struct stat st;

	if (fstatat(p->topfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : slotsync_error_set_errno(err, -errno, "cannot stat %s in the store", rel);
	if (!S_ISREG(st.st_mode))
		return 0;
	if (!marked && st.st_mtime > p->cutoff) {
		k->young++;
		marked = 1;
	}
	if (marked) {
		k->kept++;
		k->kept_bytes += (uint64_t)st.st_size;
		return 0;
	}
	k->removed++;
	k->removed_bytes += (uint64_t)st.st_size;
	return doom(p, rel, kind) < 0 ? slotsync_error_set(err, -ENOMEM, "out of memory") : 0;
}

/* The digest of the 64 hex digits that start name. */
static void name_id(const char *name, uint8_t id[SLOTSYNC_DIGEST_BYTES])
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];

	memcpy(hex, name, 64);
	hex[64] = '\0';
	slotsync_digest_from_hex(hex, id);
}

static int is_hex(const char *s, size_t n)
{
	return strlen(s) >= n && strspn(s, "0123456789abcdef") >= n;
}

static int is_temp(const char *name)
{
	return strncmp(name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) == 0 || strstr(name, ".tmp-") != NULL;
}

static int note_dir(struct prune *p, const char *rel)
{
	if (p->n_dirs == p->cap_dirs) {
		size_t cap = p->cap_dirs ? 2 * p->cap_dirs : 256;
		void *n = realloc(p->dirs, cap * sizeof(*p->dirs));
		if (!n)
			return -ENOMEM;
		p->dirs = n;
		p->cap_dirs = cap;
	}
	snprintf(p->dirs[p->n_dirs++], sizeof(p->dirs[0]), "%s", rel);
	return 0;
}

/* Calls fn for each entry of the store's folder rel (missing: none). */
static int each_entry(struct prune *p, const char *rel,
		      int (*fn)(struct prune *p, const char *dir, const char *name, struct slotsync_error *err),
		      struct slotsync_error *err)
{
	int fd = openat(p->topfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int r = 0;

	p->entries = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : slotsync_error_set_errno(err, -errno, "cannot open %s in the store", rel);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	while (r == 0 && (de = readdir(d)))
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))) {
			r = fn(p, rel, de->d_name, err);
			n++;
		}
	closedir(d);
	p->entries = n;
	return r;
}

/* Reads the folder rel with fn; notes it for removal when the sweep is to
 * remove everything in it (an rmdir costs about as much as an unlink: only
 * those that will succeed are tried). */
static int each_entry_then_folder(struct prune *p, const char *rel,
				  int (*fn)(struct prune *p, const char *dir, const char *name, struct slotsync_error *err),
				  struct slotsync_error *err)
{
	size_t before = p->n_doomed;
	int r = each_entry(p, rel, fn, err);

	if (r < 0 || p->n_doomed - before != p->entries)
		return r;
	return note_dir(p, rel) < 0 ? slotsync_error_set(err, -ENOMEM, "out of memory") : 0;
}

/* deltas/<base>/: a delta index or index diff stays when both its indexes are
 * kept, a pack index when its release is; a kept delta index names the
 * objects to keep. */
static int delta_file(struct prune *p, const char *dir, const char *name, struct slotsync_error *err)
{
	uint8_t base[SLOTSYNC_DIGEST_BYTES], nw[SLOTSYNC_DIGEST_BYTES];
	char rel[200];
	int sdix = ends_with(name, ".sdix"), keep, r;

	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	if (is_temp(name))
		return sort_file(p, rel, GEN_PRUNE_TEMP, 0, err);
	if ((!sdix && !ends_with(name, ".sdid")) || strlen(name) != 64 + 5 || !is_hex(name, 64))
		return 0;
	name_id(dir + strlen("deltas/"), base);
	name_id(name, nw);
	/* a pack index (no base: all zero) stays with its release */
	keep = (slotsync_delta_base_is_none(base) || id_list_has(&p->indexes, base)) && id_list_has(&p->indexes, nw);
	if (keep && sdix) {
		struct slotsync_delta_index *d = NULL;
		r = gen_check_delta_index(p->topfd, rel, &d, err);
		for (uint32_t i = 0; r == 0 && i < d->n_objects; i++)
			if (id_list_add(&p->objects, d->objects[i].id) < 0)
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
		slotsync_delta_index_free(d);
		if (r < 0) {
			slotsync_error_prefix(err, "delta index %s between kept releases, nothing removed "
					      "(slotsync-gen check --repair removes a damaged one)", rel);
			return r;
		}
	}
	return sort_file(p, rel, sdix ? GEN_PRUNE_DELTA_INDEX : GEN_PRUNE_INDEX_DIFF, keep, err);
}

static int deltas_entry(struct prune *p, const char *dir, const char *name, struct slotsync_error *err)
{
	char rel[80];

	if (strlen(name) != 64 || !is_hex(name, 64))
		return 0;
	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	return each_entry_then_folder(p, rel, delta_file, err);
}

static int index_file(struct prune *p, const char *dir, const char *name, struct slotsync_error *err)
{
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	char rel[200];

	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	if (is_temp(name))
		return sort_file(p, rel, GEN_PRUNE_TEMP, 0, err);
	if (strlen(name) != 64 + 6 || !ends_with(name, ".caibx") || !is_hex(name, 64))
		return 0;
	name_id(name, id);
	return sort_file(p, rel, GEN_PRUNE_INDEX, id_list_has(&p->indexes, id), err);
}

/* <4 hex>/: chunks and delta objects. */
static int store_file(struct prune *p, const char *dir, const char *name, struct slotsync_error *err)
{
	uint8_t id[SLOTSYNC_DIGEST_BYTES];
	char rel[200];
	int chunk;

	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	if (is_temp(name))
		return sort_file(p, rel, GEN_PRUNE_TEMP, 0, err);
	chunk = ends_with(name, SLOTSYNC_CHUNK_SUFFIX);
	if (strlen(name) != 64 + (chunk ? strlen(SLOTSYNC_CHUNK_SUFFIX) : strlen(".sdob")) ||
	    (!chunk && !ends_with(name, ".sdob")) || !is_hex(name, 64) ||
	    strncmp(name, dir, 4) != 0)
		return 0;
	name_id(name, id);
	if (chunk)
		return sort_file(p, rel, GEN_PRUNE_CHUNK, id_list_has(&p->chunks, id), err);
	return sort_file(p, rel, GEN_PRUNE_OBJECT, id_list_has(&p->objects, id), err);
}

static int top_entry(struct prune *p, const char *dir, const char *name, struct slotsync_error *err)
{
	(void)dir;
	if (strlen(name) != 4 || !is_hex(name, 4))
		return 0;
	return each_entry_then_folder(p, name, store_file, err);
}

static int doomed_cmp(const void *a, const void *b)
{
	const struct doomed *x = a, *y = b;

	return x->kind != y->kind ? x->kind - y->kind : strcmp(x->rel, y->rel);
}

/* Removes what was found unmarked, in the order of the kinds.  A file whose
 * time changed since it was counted (a make reused it) stays. */
static int sweep(struct prune *p, struct slotsync_error *err)
{
	if (p->n_doomed)
		qsort(p->doomed, p->n_doomed, sizeof(*p->doomed), doomed_cmp);
	for (size_t i = 0; i < p->n_doomed; i++) {
		struct stat st;
		if (fstatat(p->topfd, p->doomed[i].rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (st.st_mtime > p->cutoff) {
			slotsync_log_info("%s: written or reused during the prune, kept", p->doomed[i].rel);
			continue;
		}
		if (unlinkat(p->topfd, p->doomed[i].rel, 0) < 0 && errno != ENOENT)
			return slotsync_error_set_errno(err, -errno, "cannot remove %s from the store", p->doomed[i].rel);
	}
	/* folders left empty; one a writer has just filled again stays (ENOTEMPTY) */
	for (size_t i = p->n_dirs; i-- > 0;)
		if (unlinkat(p->topfd, p->dirs[i], AT_REMOVEDIR) == 0)
			p->st->dirs_removed++;
	if (unlinkat(p->topfd, "deltas", AT_REMOVEDIR) == 0)
		p->st->dirs_removed++;
	return 0;
}

int gen_prune(const struct gen_prune_options *o, struct gen_prune_stats *st, struct slotsync_error *err)
{
	struct prune p = { .o = o, .st = st, .topfd = -1 };
	double t0 = clock_now_s();
	int r = 0;

	memset(st, 0, sizeof(*st));
	if (!o->store || o->n_keep < 1)
		return slotsync_error_set(err, -EINVAL, "prune needs --store DIR and at least one --keep RELEASE");
	r = store_dir_is_local(o->store, err);
	if (r < 0)
		return r;
	p.topfd = open(o->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p.topfd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open store %s", o->store);
	p.cutoff = time(NULL) - (time_t)o->grace_minutes * 60;
	for (int i = 0; r == 0 && i < o->n_keep; i++)
		r = mark_release(&p, o->keep[i], err);
	if (r < 0)
		goto out;
	id_list_sort(&p.indexes);
	id_list_sort(&p.chunks);
	/* the delta files first: kept delta indexes mark their objects */
	r = each_entry(&p, "deltas", deltas_entry, err);
	if (r == 0) {
		id_list_sort(&p.objects);
		r = each_entry(&p, "indexes", index_file, err);
	}
	if (r == 0)
		r = each_entry(&p, ".", top_entry, err);
	if (r == 0 && !o->dry_run)
		r = sweep(&p, err);
	else if (r == 0)
		st->dirs_removed = p.n_dirs;
	if (r < 0)
		slotsync_error_prefix(err, "store %s", o->store);
out:
	st->seconds = clock_now_s() - t0;
	close(p.topfd);
	free(p.indexes.ids);
	free(p.chunks.ids);
	free(p.objects.ids);
	free(p.doomed);
	free(p.dirs);
	return r;
}
