/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen publish: finds what a store and a release's files hold,
 * decides the order and the headers, and copies what a folder DEST lacks;
 * an S3 DEST is s3.c's.  See publish.h for the layout and the phases. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "io.h"
#include "publish.h"
#include "slotsync/log.h"

/* Content-addressed files never change under their name: caches may keep them
 * for good.  A bundle or a delta index is named by its release (a rebuilt one
 * may take the same name), and the device checks each against a signed
 * digest, so a stale copy costs a failed check, never a wrong install: an
 * hour, longer than a fleet's wave takes to pass an edge, so that the edge
 * asks the origin for each once per wave.  The pointer is what announces a
 * release: a minute. */
const char *publish_cache_control(const struct publish_file *f)
{
	if (f->content_addressed)
		return "public, max-age=31536000, immutable";
	if (f->phase == PUBLISH_POINTERS)
		return "public, max-age=60";
	return "public, max-age=3600";
}

const char *publish_content_type(const struct publish_file *f)
{
	size_t n = strlen(f->key);

	/* chunks, objects, delta indexes and index diffs are each one zstd frame */
	if (f->phase == PUBLISH_CHUNKS && n > 6 && !strcmp(f->key + n - 6, ".caibx"))
		return "application/octet-stream";
	if (f->phase <= PUBLISH_DELTA_INDEXES)
		return "application/zstd";
	return "application/octet-stream";
}

struct file_list {
	struct publish_file *v;
	size_t n, cap;
};

static int list_add(struct file_list *l, const char *path, const char *key, enum publish_phase phase,
		    int content_addressed, struct slotsync_error *err)
{
	struct stat s;
	struct publish_file *f;

	if (stat(path, &s) < 0)
		return slotsync_error_set_errno(err, -errno, "%s", path);
	if (!S_ISREG(s.st_mode))
		return slotsync_error_set(err, -EINVAL, "%s is not a regular file", path);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct publish_file *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	f = &l->v[l->n];
	f->path = strdup(path);
	f->key = strdup(key);
	if (!f->path || !f->key) {
		free(f->path);
		free(f->key);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	f->size = (uint64_t)s.st_size;
	f->phase = phase;
	f->content_addressed = content_addressed;
	l->n++;
	return 0;
}

static void list_free(struct file_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].key);
	}
	free(l->v);
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* "<64 hex><suffix>" */
static int digest_name(const char *name, const char *suffix)
{
	return strlen(name) == 64 + strlen(suffix) && is_hex(name, 64) && !strcmp(name + 64, suffix);
}

/* The files of one folder of the store (rel: its path in the store) that match
 * one of the suffixes, each into its phase. */
static int scan_dir(struct file_list *l, const char *store, const char *rel, struct slotsync_error *err)
{
	static const struct {
		const char *suffix;
		enum publish_phase phase;
		int content_addressed;
	} kinds[] = {
		{ ".cacnk", PUBLISH_CHUNKS, 1 },         { ".caibx", PUBLISH_CHUNKS, 1 },
		{ ".sdob", PUBLISH_OBJECTS, 1 },         { ".sdix", PUBLISH_DELTA_INDEXES, 0 },
		{ ".sdid", PUBLISH_DELTA_INDEXES, 0 },
	};
	char dir[4096], path[4096 + 300], key[600];
	struct dirent *e;
	DIR *d;
	int r = 0;

	snprintf(dir, sizeof(dir), "%s/%s", store, rel);
	d = opendir(dir);
	if (!d)
		return slotsync_error_set_errno(err, -errno, "store folder %s", dir);
	while (r == 0 && (e = readdir(d))) {
		size_t k;
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (digest_name(e->d_name, kinds[k].suffix))
				break;
		if (k == sizeof(kinds) / sizeof(kinds[0])) {
			if (e->d_name[0] != '.')
				slotsync_log_debug("publish: %s/%s is no store file, left out", dir, e->d_name);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		snprintf(key, sizeof(key), "store/%s/%s", rel, e->d_name);
		r = list_add(l, path, key, kinds[k].phase, kinds[k].content_addressed, err);
	}
	closedir(d);
	return r;
}

/* Every file of the store: <4 hex>/ (chunks, objects), indexes/, deltas/<64 hex>/. */
static int scan_store(struct file_list *l, const char *store, struct slotsync_error *err)
{
	struct dirent *e;
	DIR *d = opendir(store);
	int r = 0;

	if (!d)
		return slotsync_error_set_errno(err, -errno, "store %s", store);
	while (r == 0 && (e = readdir(d))) {
		if ((strlen(e->d_name) == 4 && is_hex(e->d_name, 4)) || !strcmp(e->d_name, "indexes")) {
			r = scan_dir(l, store, e->d_name, err);
		} else if (!strcmp(e->d_name, "deltas")) {
			char rel[4096];
			struct dirent *b;
			DIR *dd;
			snprintf(rel, sizeof(rel), "%s/deltas", store);
			dd = opendir(rel);
			if (!dd) {
				r = slotsync_error_set_errno(err, -errno, "store folder %s", rel);
				break;
			}
			while (r == 0 && (b = readdir(dd)))
				if (strlen(b->d_name) == 64 && is_hex(b->d_name, 64)) {
					snprintf(rel, sizeof(rel), "deltas/%s", b->d_name);
					r = scan_dir(l, store, rel, err);
				}
			closedir(dd);
		}
	}
	closedir(d);
	return r;
}

/* A bundle's or pointer's name at the top of DEST: its file name, which must
 * be one a URL and an S3 key take as it is. */
static int add_top(struct file_list *l, const char *path, enum publish_phase phase, struct slotsync_error *err)
{
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	if (!name[0] || name[0] == '.' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
						   strlen(name))
		return slotsync_error_set(err, -EINVAL,
					  "%s: its name must be letters, digits, '.', '_' or '-' (not first '.'), as it "
					  "becomes the file's name in the URL devices fetch",
					  path);
	if (!strcmp(name, "store"))
		return slotsync_error_set(err, -EINVAL, "%s: \"store\" is the store's folder in DEST", path);
	return list_add(l, path, name, phase, 0, err);
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(((const struct publish_file *)a)->key, ((const struct publish_file *)b)->key);
}

/* ---- a folder DEST ---------------------------------------------------------- */

/* 1 when the file at dst has f's bytes (content-addressed: exists). */
static int folder_has(const char *dst, const struct publish_file *f)
{
	struct stat s;
	int a, b, same = 0;

	if (stat(dst, &s) < 0 || !S_ISREG(s.st_mode))
		return 0;
	if (f->content_addressed)
		return 1;
	if ((uint64_t)s.st_size != f->size)
		return 0;
	a = open(f->path, O_RDONLY | O_CLOEXEC);
	b = open(dst, O_RDONLY | O_CLOEXEC);
	if (a >= 0 && b >= 0) {
		static char x[65536], y[65536];
		ssize_t n, m;
		same = 1;
		do {
			n = io_read_full(a, x, sizeof(x));
			m = io_read_full(b, y, sizeof(y));
			if (n != m || n < 0 || memcmp(x, y, (size_t)n))
				same = 0;
		} while (same && n > 0);
	}
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return same;
}

/* Copies f to tmp (not yet durable). */
static int folder_copy(const struct publish_file *f, const char *tmp, struct slotsync_error *err)
{
	static char buf[1 << 20];
	int in = open(f->path, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	ssize_t n;

	if (in < 0)
		return slotsync_error_set_errno(err, -errno, "%s", f->path);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		r = slotsync_error_set_errno(err, -errno, "%s", tmp);
		goto out;
	}
	while ((n = io_read_full(in, buf, sizeof(buf))) > 0)
		if ((r = io_write_full(out, buf, (size_t)n)) < 0) {
			slotsync_error_set_errno(err, r, "writing %s", tmp);
			goto out;
		}
	if (n < 0)
		r = slotsync_error_set_errno(err, (int)n, "reading %s", f->path);
out:
	if (out >= 0 && close(out) < 0 && r == 0)
		r = slotsync_error_set_errno(err, -errno, "writing %s", tmp);
	close(in);
	return r;
}

/* One phase into a folder: every file copied to a temp file beside its name,
 * one syncfs makes them durable, then each is renamed to its name, and one
 * more syncfs makes the renames durable before the next phase begins (so a
 * pointer is never on disk before what it names, even after a power cut).  A
 * kill leaves only .tmp-publish-* files, which nothing serves as a store file. */
static int folder_put(const char *to, struct publish_file *const *files, size_t n, struct gen_publish_stats *st,
		      struct slotsync_error *err)
{
	char dst[8192], tmp[8192 + 64], *slash;
	int dfd, r = 0;
	size_t i;

	if (!n)
		return 0;
	dfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return slotsync_error_set_errno(err, -errno, "%s", to);
	for (i = 0; i < n && r == 0; i++) {
		snprintf(dst, sizeof(dst), "%s/%s", to, files[i]->key);
		slash = strrchr(dst, '/');
		snprintf(tmp, sizeof(tmp), "%.*s/.tmp-publish-%s.%ld", (int)(slash - dst), dst, slash + 1, (long)getpid());
		*slash = '\0';
		r = io_mkdir_p(dst, err);
		if (r == 0)
			r = folder_copy(files[i], tmp, err);
		if (r < 0)
			slotsync_error_prefix(err, "publish %s to %s", files[i]->key, to);
	}
	if (r == 0 && syncfs(dfd) < 0) /* the copies, before any takes its name */
		r = slotsync_error_set_errno(err, -errno, "syncfs %s", to);
	for (size_t j = 0; j < i; j++) {
		snprintf(dst, sizeof(dst), "%s/%s", to, files[j]->key);
		slash = strrchr(dst, '/');
		snprintf(tmp, sizeof(tmp), "%.*s/.tmp-publish-%s.%ld", (int)(slash - dst), dst, slash + 1, (long)getpid());
		if (r < 0) {
			unlink(tmp);
		} else if (rename(tmp, dst) < 0) {
			r = slotsync_error_set_errno(err, -errno, "publish %s: rename to %s", files[j]->key, dst);
			unlink(tmp);
		} else {
			slotsync_log_info("publish: sent %s (%llu bytes)", files[j]->key, (unsigned long long)files[j]->size);
			st->uploaded[files[j]->phase]++;
			st->uploaded_bytes[files[j]->phase] += files[j]->size;
		}
	}
	if (r == 0 && syncfs(dfd) < 0) /* the renames, before the next phase's files */
		r = slotsync_error_set_errno(err, -errno, "syncfs %s", to);
	close(dfd);
	return r;
}

/* ---- the phases ---------------------------------------------------------------- */

int gen_publish(const struct gen_publish_options *o, struct gen_publish_stats *st, struct slotsync_error *err)
{
	struct file_list l = { 0 };
	struct publish_file **todo = NULL;
	struct s3_dest *s3 = NULL;
	double t0 = clock_now_s();
	int r = 0, is_s3 = !strncmp(o->to, "s3://", 5);

	memset(st, 0, sizeof(*st));
	if (!is_s3 && strstr(o->to, "://"))
		return slotsync_error_set(err, -EINVAL, "--to %s: a folder or s3://BUCKET/PREFIX (no other URL)", o->to);
	if (o->store)
		r = scan_store(&l, o->store, err);
	for (int i = 0; r == 0 && i < o->n_bundles; i++)
		r = add_top(&l, o->bundles[i], PUBLISH_BUNDLES, err);
	for (int i = 0; r == 0 && i < o->n_pointers; i++)
		r = add_top(&l, o->pointers[i], PUBLISH_POINTERS, err);
	if (r < 0)
		goto out;
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_key);
	for (size_t i = 1; i < l.n; i++)
		if (!strcmp(l.v[i - 1].key, l.v[i].key)) {
			r = slotsync_error_set(err, -EINVAL, "%s and %s would both be published as %s", l.v[i - 1].path,
					       l.v[i].path, l.v[i].key);
			goto out;
		}
	todo = calloc(l.n + 1, sizeof(*todo));
	if (!todo) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (is_s3)
		r = s3_dest_open(o->to, o->jobs, &s3, err);
	else
		r = io_mkdir_p(o->to, err);
	for (int phase = 0; r == 0 && phase < PUBLISH_PHASES; phase++) {
		size_t n = 0;
		for (size_t i = 0; r == 0 && i < l.n; i++) {
			char dst[8192];
			int has;
			if (l.v[i].phase != (enum publish_phase)phase)
				continue;
			snprintf(dst, sizeof(dst), "%s/%s", o->to, l.v[i].key);
			has = is_s3 ? s3_dest_has(s3, &l.v[i], err) : folder_has(dst, &l.v[i]);
			if (has < 0)
				r = has;
			else if (has)
				st->present[phase]++;
			else
				todo[n++] = &l.v[i];
		}
		if (r == 0)
			r = is_s3 ? s3_dest_put(s3, todo, n, st, err) : folder_put(o->to, todo, n, st, err);
	}
out:
	st->seconds = clock_now_s() - t0;
	s3_dest_free(s3);
	free(todo);
	list_free(&l);
	return r;
}
