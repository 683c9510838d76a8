/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — a store's mirrors, tried in order for each object.
 *
 * A set of mirrors is a list of store locations (URLs, or absolute paths of
 * local folders) that hold the same content-addressed files.  Given to the
 * fetcher (slotsync_fetch_options.mirrors), it asks each object (a chunk, a
 * delta object, an index) of the first mirror; an object that mirror does not
 * serve moves to the next mirror, on its own:
 *
 *  - HTTP 404, 410 and 403 (what S3 answers for a key it does not have), any
 *    other 4xx, a local file that is missing: at once;
 *  - HTTP 5xx, a connection refused: at once;
 *  - a transfer cut or stalled: after the fetcher's attempts on that mirror
 *    (each resuming where the last stopped).
 *
 * Only an object every mirror failed is an error, which names the object and
 * what each mirror answered.  On the last mirror an object is retried as on a
 * single store (fetch.h).
 *
 * A mirror that serves wrong bytes (a body the caller refuses: a digest that
 * does not match, a frame that does not decode) is dropped for as long as the
 * set lives, and its objects are asked of the next mirror; the last mirror
 * left is never dropped: an object is retried there, a file named by its
 * SHA-256 (slotsync_fetch_file_sha256) refused at once.
 *
 * The set keeps one libcurl multi handle for as long as it lives: every run
 * and every file fetched through it (an index, a delta index, the delta objects
 * and the chunks of an install) shares one connection per mirror.  It counts
 * what each mirror served, for the install's report.
 *
 * A set is used by one thread at a time, by one run at a time.
 */
#ifndef SLOTSYNC_MIRRORS_H
#define SLOTSYNC_MIRRORS_H

#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLOTSYNC_MIRRORS_MAX 24

struct slotsync_mirrors;

struct slotsync_mirror_stats {
	const char *url;            /* as the fetcher asks it (a local folder as file://) */
	uint64_t bytes_received;    /* every byte it sent, error pages and refused bodies included */
	uint64_t objects;           /* objects it served that were accepted */
	uint64_t objects_moved;     /* objects it did not serve, asked of the next mirror */
	long connections;           /* connections opened to it */
	int dropped;                /* it served wrong bytes: no longer asked */
	char why[512];              /* why it was dropped, or "" */
};

/* An empty set: 0, or -ENOMEM / -EIO (libcurl cannot start). */
SLOTSYNC_EXPORT int slotsync_mirrors_new(struct slotsync_mirrors **out, struct slotsync_error *err);

/* Appends a mirror (a URL or an absolute path, as slotsync_fetch_store_url
 * takes it).  A location already in the set is not added twice.  -E2BIG past
 * SLOTSYNC_MIRRORS_MAX, -ENAMETOOLONG for a location too long. */
SLOTSYNC_EXPORT int slotsync_mirrors_add(struct slotsync_mirrors *m, const char *location, struct slotsync_error *err);

/* Frees the set and closes its connections; NULL is a no-op. */
SLOTSYNC_EXPORT void slotsync_mirrors_free(struct slotsync_mirrors *m);

SLOTSYNC_EXPORT size_t slotsync_mirrors_count(const struct slotsync_mirrors *m);

/* Mirror i's figures (i < slotsync_mirrors_count), valid while the set lives. */
SLOTSYNC_EXPORT const struct slotsync_mirror_stats *slotsync_mirrors_stats(const struct slotsync_mirrors *m, size_t i);

#ifdef __cplusplus
}
#endif
#endif
