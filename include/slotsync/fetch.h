/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — fetching chunks over HTTP/2.
 *
 * One libcurl multi handle, one connection per store (HTTP/2 over TLS, many
 * concurrent streams on it; HTTP/1.1 servers work too, one request at a time), the server's
 * certificate verified against a CA file, an optional client certificate.  A
 * transfer that fails is retried with exponential backoff and jitter; a transfer
 * cut in the middle resumes with a Range request for the bytes still missing, so
 * a link that drops every few minutes wastes nothing already received.
 *
 * A hostile or broken server cannot hold a transfer, or make it read without
 * end: a transfer slower than a minimum rate for the stall time is cut; every
 * transfer has a deadline scaled from its largest size (stall time + size /
 * minimum rate); a response larger than the bound the caller gives is cut off
 * as it arrives, and so is an error page (any status but 200/206) past
 * SLOTSYNC_FETCH_ERROR_BODY_MAX bytes.  Every byte received, error pages
 * included, is counted.  Under a rate cap the minimum rate is lowered to half a
 * stream's share of the cap, so the cap itself never cuts an honest transfer.
 *
 * The fetcher knows nothing of chunks: the caller gives it jobs (a path under the
 * base URL and a size bound) and gets each body through a callback, which may
 * accept it, ask for a retry (bad content), or fail the whole run.  A single
 * file (a bundle, a channel pointer, a delta index) is one call of
 * slotsync_fetch_file, into memory or into a file replaced atomically.
 *
 * A store may have mirrors (slotsync/mirrors.h): what one does not serve is
 * asked of the next, object by object.
 *
 * A store may also be a local folder (a file:// URL, see
 * slotsync_fetch_store_url): libcurl reads it, and everything above holds
 * but the HTTP parts (no status codes; a missing file is a 404).
 */
#ifndef SLOTSYNC_FETCH_H
#define SLOTSYNC_FETCH_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "slotsync/error.h"
#include "slotsync/export.h"
#include "slotsync/mirrors.h"

#ifdef __cplusplus
extern "C" {
#endif

struct slotsync_fetch_options {
	const char *base_url;           /* e.g. https://updates.example.com/store */
	/* the store's mirrors (slotsync/mirrors.h), each object asked of them in
	 * turn, and their connections kept between runs; when it holds any,
	 * base_url is not used.  NULL: base_url alone */
	struct slotsync_mirrors *mirrors;
	const char *ca_file;            /* NULL: the system's CAs */
	const char *client_cert;        /* PEM, with client_key: mutual TLS */
	const char *client_key;
	int concurrency;                /* streams at once; <= 0: default */
	uint64_t max_rate_bps;          /* bytes per second over all streams; 0: no cap */
	long stall_timeout_s;           /* cut a transfer below min_rate_bps for this long; 0: 30 */
	/* bytes per second per transfer; 0: SLOTSYNC_FETCH_MIN_RATE_DEFAULT;
	 * SLOTSYNC_FETCH_MIN_RATE_NONE: 1 byte/s (only a transfer that stops) */
	uint64_t min_rate_bps;
	int max_attempts;               /* per job; 0: 8 */
	long backoff_initial_ms;        /* first retry delay; 0: 500 */
	long backoff_max_ms;            /* 0: 60000 */
	/* > 0: job j starts only when every job before j - window was accepted,
	 * so a caller that must apply bodies in order holds at most window - 1
	 * of them; 0: no such bound */
	size_t window;
};

#define SLOTSYNC_FETCH_CONCURRENCY_DEFAULT 16
#define SLOTSYNC_FETCH_MIN_RATE_DEFAULT 256
#define SLOTSYNC_FETCH_MIN_RATE_NONE UINT64_MAX
/* the most of an error page (HTTP 503 ...) that is read before the transfer is cut */
#define SLOTSYNC_FETCH_ERROR_BODY_MAX 4096

/* Describes job number `job`: its path relative to base_url, written into
 * path[path_cap], and the largest body it may have (a larger one is cut off and
 * refused).  Jobs are described when they start, so that a run over millions of
 * chunks holds no table of URLs. */
typedef void (*slotsync_fetch_describe_cb)(void *userdata, size_t job, char *path, size_t path_cap,
					   size_t *max_bytes);

/* Called for each body received whole.  Return 0 to accept it, -EAGAIN to have
 * it fetched again (counts as an attempt; err explains; with mirrors, from the
 * next one, the one that served it dropped), SLOTSYNC_FETCH_WRONG for a body
 * that asking the same server again will not make right (a file whose signed
 * digest differs: with mirrors, from the next one, the one that served it
 * dropped; on the last, the run stops with -EBADMSG), or another negative code
 * to stop the run (err says why).  done and tick run on a thread of the
 * fetcher's own, one call at a time, never on the caller's thread during the
 * run; describe runs on the caller's thread. */
#define SLOTSYNC_FETCH_WRONG (-EBADE)
typedef int (*slotsync_fetch_done_cb)(void *userdata, size_t job, const uint8_t *data, size_t len,
				      struct slotsync_error *err);

/* Called about once a second and at the end: a chance to commit work done. */
typedef int (*slotsync_fetch_tick_cb)(void *userdata, struct slotsync_error *err);

struct slotsync_fetch_stats {
	uint64_t bytes_received;   /* body bytes over the wire, retries and error pages included */
	uint64_t requests;
	uint64_t retries;
	uint64_t resumed;          /* transfers continued with a Range request */
	long connections;          /* connections opened */
	int http_version;          /* 2 or 1 (of the last response) */
};

/* Fetches jobs 0..n_jobs-1 (max_body: the largest bound of any job); returns 0
 * when all were accepted.  A job that fails max_attempts times, or a 404 (the
 * store does not have it), ends the run with an error naming the job's URL;
 * with mirrors, only on the last mirror (an error then names what each one
 * answered; a 403 is a 404 there).
 * Memory: a few bytes per job, plus one body buffer per stream and a few more
 * for bodies waiting for done. */
SLOTSYNC_EXPORT int slotsync_fetch_run(const struct slotsync_fetch_options *opt, size_t n_jobs, size_t max_body,
		       slotsync_fetch_describe_cb describe, slotsync_fetch_done_cb done, slotsync_fetch_tick_cb tick,
		       void *userdata, struct slotsync_fetch_stats *stats, struct slotsync_error *err);

/* Fetches one URL whole, for a file that is not a chunk (a bundle, a channel
 * pointer, a delta index): one GET with slotsync_fetch_run's retries (a body
 * cut in the middle resumes with a Range request), TLS settings, stall timeout,
 * minimum rate, deadline and rate cap, all taken from opt.  url is absolute (http://, https://) or
 * relative to opt->base_url (or to each of opt->mirrors in turn).  A body larger than max_bytes is cut off and
 * refused.
 *
 * path set: the body replaces the file at path atomically (written to
 * "<path>.part", made durable, renamed over path, the folder made durable), so
 * that after a crash path holds its old content or all of the new; out and
 * out_len are not used.  path NULL: *out receives the body in a new buffer
 * (free() it) and *out_len its length.
 *
 * stats (may be NULL) counts what went over the wire, retries included.
 * Returns 0, -ENOENT when the server does not have the file (HTTP 404), or
 * another negative code; err names the URL.  Memory: the fetcher's few body
 * buffers of max_bytes (see slotsync_fetch_run), plus the copy in out. */
SLOTSYNC_EXPORT int slotsync_fetch_file(const struct slotsync_fetch_options *opt, const char *url, size_t max_bytes,
					const char *path, uint8_t **out, size_t *out_len,
					struct slotsync_fetch_stats *stats, struct slotsync_error *err);

/* slotsync_fetch_file for a file the signed manifest names by digest (an
 * index, an index diff, a delta index), into *out: a body whose size (when
 * size is not 0) or SHA-256 differs is wrong bytes, and with mirrors the
 * mirror that served it is dropped and the file asked of the next.  Returns
 * 0, -ENOENT (no mirror has it), -EBADMSG (what the last mirror served is
 * wrong; err says what each served), or another negative code. */
SLOTSYNC_EXPORT int slotsync_fetch_file_sha256(const struct slotsync_fetch_options *opt, const char *url,
					       size_t max_bytes, uint64_t size, const uint8_t *sha256, uint8_t **out,
					       size_t *out_len, struct slotsync_fetch_stats *stats,
					       struct slotsync_error *err);

/* A store location as a URL the fetcher takes: an absolute path (a local
 * folder, e.g. on a USB stick) becomes a file:// URL, percent-encoded; a URL
 * (https://, http://, file://) is copied as it is.  A local store is read
 * with the same bounds, retries and checks as a remote one (a missing file is
 * -ENOENT, as a 404).  Returns 0, or -ENAMETOOLONG when out[cap] is too
 * small. */
SLOTSYNC_EXPORT int slotsync_fetch_store_url(const char *location, char *out, size_t cap,
					     struct slotsync_error *err);

#ifdef __cplusplus
}
#endif
#endif
