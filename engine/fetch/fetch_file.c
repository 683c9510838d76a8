/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One file through the fetcher (slotsync_fetch_file: a bundle, a channel
 * pointer, a delta index), and store locations as URLs: see
 * include/slotsync/fetch.h.  Both stand on slotsync_fetch_run (fetch.c). */
#include "slotsync/fetch.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "slotsync/digest.h"

#define PATH_MAX_BYTES 512

/* ---- one file --------------------------------------------------------------- */

/* slotsync_fetch_file's one job: its body goes to fd, or to a copy in mem. */
struct one_file {
	char path[PATH_MAX_BYTES];     /* relative to the base URL */
	size_t max_bytes;
	int fd;                        /* >= 0: write the body here */
	const char *fd_name;           /* for messages */
	uint8_t *mem;
	size_t len;
	uint64_t want_size;            /* != 0: the body's size */
	const uint8_t *want_sha256;    /* != NULL: the body's SHA-256 */
};

static void one_file_describe(void *userdata, size_t job, char *path, size_t path_cap, size_t *max_bytes)
{
	struct one_file *o = userdata;

	(void)job;
	snprintf(path, path_cap, "%s", o->path);
	*max_bytes = o->max_bytes;
}

static int one_file_done(void *userdata, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct one_file *o = userdata;
	int r;

	(void)job;
	if (o->want_sha256) {
		uint8_t got[SLOTSYNC_DIGEST_BYTES];
		if ((o->want_size && len != o->want_size) || slotsync_digest(SLOTSYNC_DIGEST_SHA256, data, len, got) < 0 ||
		    memcmp(got, o->want_sha256, SLOTSYNC_DIGEST_BYTES) != 0)
			return slotsync_error_set(err, SLOTSYNC_FETCH_WRONG,
						  "its size or SHA-256 is not the one the signed manifest names");
	}
	if (o->fd >= 0) {
		r = io_write_full(o->fd, data, len);
		if (r < 0)
			return slotsync_error_set_errno(err, r, "cannot write %s", o->fd_name);
	} else {
		o->mem = malloc(len ? len : 1);
		if (!o->mem)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		memcpy(o->mem, data, len);
	}
	o->len = len;
	return 0;
}

static int fetch_file(const struct slotsync_fetch_options *opt, const char *url, size_t max_bytes, uint64_t want_size,
		      const uint8_t *want_sha256, const char *path, uint8_t **out, size_t *out_len,
		      struct slotsync_fetch_stats *stats, struct slotsync_error *err)
{
	struct slotsync_fetch_options o = *opt;
	struct slotsync_fetch_stats ignored;
	struct one_file f = { .max_bytes = max_bytes, .fd = -1, .want_size = want_size, .want_sha256 = want_sha256 };
	char base[2048], tmp[PATH_MAX];
	const char *rel = url, *slash;
	int r;

	assert(path || (out && out_len));
	if (!path) {
		*out = NULL;
		*out_len = 0;
	}
	if (strstr(url, "://")) {
		/* the fetcher asks for base/path: split the URL at its last slash */
		slash = strrchr(url, '/');
		if (!slash || slash[1] == '\0' || (size_t)(slash - url) >= sizeof(base))
			return slotsync_error_set(err, -EINVAL, "bad URL %s", url);
		snprintf(base, sizeof(base), "%.*s", (int)(slash - url), url);
		o.base_url = base;
		o.mirrors = NULL; /* a URL of its own, not the store's */
		rel = slash + 1;
	} else if (!o.base_url && !slotsync_mirrors_count(o.mirrors)) {
		return slotsync_error_set(err, -EINVAL, "%s: a relative URL, and no base URL to resolve it", url);
	}
	if (strlen(rel) >= sizeof(f.path))
		return slotsync_error_set(err, -ENAMETOOLONG, "URL too long: %s", url);
	snprintf(f.path, sizeof(f.path), "%s", rel);
	if (path) {
		if (snprintf(tmp, sizeof(tmp), "%s.part", path) >= (int)sizeof(tmp))
			return slotsync_error_set(err, -ENAMETOOLONG, "path too long: %s", path);
		/* O_NOFOLLOW: a symlink planted as the .part is refused, never truncated through */
		f.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (f.fd < 0 && errno == ELOOP)
			return slotsync_error_set(err, -ELOOP, "%s is a symbolic link: refused", tmp);
		if (f.fd < 0)
			return slotsync_error_set_errno(err, -errno, "cannot create %s", tmp);
		f.fd_name = tmp;
	}
	r = slotsync_fetch_run(&o, 1, max_bytes, one_file_describe, one_file_done, NULL, &f, stats ? stats : &ignored,
			       err);
	if (path) {
		/* the body is on disk before its name replaces the old file, and the
		 * rename is durable before we return */
		if (r == 0 && fdatasync(f.fd) < 0)
			r = slotsync_error_set_errno(err, -errno, "cannot write %s", tmp);
		close(f.fd);
		if (r == 0 && rename(tmp, path) < 0)
			r = slotsync_error_set_errno(err, -errno, "cannot rename %s", tmp);
		if (r == 0)
			r = io_fsync_parent(path, err);
		if (r < 0)
			unlink(tmp);
	} else if (r == 0) {
		*out = f.mem;
		*out_len = f.len;
	} else {
		free(f.mem);
	}
	return r;
}

int slotsync_fetch_file(const struct slotsync_fetch_options *opt, const char *url, size_t max_bytes, const char *path,
			uint8_t **out, size_t *out_len, struct slotsync_fetch_stats *stats, struct slotsync_error *err)
{
	return fetch_file(opt, url, max_bytes, 0, NULL, path, out, out_len, stats, err);
}

int slotsync_fetch_file_sha256(const struct slotsync_fetch_options *opt, const char *url, size_t max_bytes,
			       uint64_t size, const uint8_t *sha256, uint8_t **out, size_t *out_len,
			       struct slotsync_fetch_stats *stats, struct slotsync_error *err)
{
	int r;

	if (size > max_bytes)
		return slotsync_error_set(err, -EFBIG, "%s: it is %" PRIu64 " bytes, over the limit of %zu", url, size,
					  max_bytes);
	r = fetch_file(opt, url, size ? (size_t)size : max_bytes, size, sha256, NULL, out, out_len, stats, err);
	/* with mirrors the fetcher names the file and what each served */
	if (r == -EBADMSG && (strstr(url, "://") || !slotsync_mirrors_count(opt->mirrors)))
		slotsync_error_prefix(err, "%s", url);
	return r;
}

/* ---- store locations ---------------------------------------------------------- */

int slotsync_fetch_store_url(const char *location, char *out, size_t cap, struct slotsync_error *err)
{
	static const char keep[] = "-._~/!$&'()*+,;=:@";
	size_t n = 0;
	char *slash;

	if (location[0] != '/') {
		if (strlen(location) >= cap)
			return slotsync_error_set(err, -ENAMETOOLONG, "store URL too long: %s", location);
		snprintf(out, cap, "%s", location);
		return 0;
	}
	/* an absolute path: a file:// URL, every byte that a URL cannot carry as
	 * it is percent-encoded */
	n = (size_t)snprintf(out, cap, "file://");
	for (const unsigned char *p = (const unsigned char *)location; *p; p++) {
		int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			    strchr(keep, *p);
		if (n + (plain ? 1 : 3) >= cap)
			return slotsync_error_set(err, -ENAMETOOLONG, "store path too long: %s", location);
		if (plain)
			out[n++] = (char)*p;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
	}
	out[n] = '\0';
	/* a trailing slash would make the chunk URLs "store//xxxx/..." */
	while (n > 8 && (slash = strrchr(out, '/')) && slash[1] == '\0' && slash > out + 7)
		*slash = '\0', n--;
	return 0;
}
