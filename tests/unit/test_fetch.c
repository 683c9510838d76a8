/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fetcher against a tiny HTTP/1.1 server on 127.0.0.1 (fixtures.c): every
 * body delivered exactly; a 503 retried until it passes, or given up after
 * max-attempts; a body the caller finds wrong fetched again; a body larger
 * than its bound cut off and refused; a 404 ends the run at once; an error
 * page that never ends cut off after a few KiB, and counted; a server that
 * drips bytes cut after the stall time, the next attempt resuming; a transfer
 * that the rate cap holds below the minimum rate not cut; with mirrors, each
 * object a mirror does not serve (404, 403, 503) asked of the next at once,
 * a mirror that serves wrong bytes dropped, an object no mirror has an error
 * naming what each answered. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "slotsync/digest.h"
#include "slotsync/fetch.h"

#define N_FILES 8
/* libcurl hands a body over in pieces of at most this (CURL_MAX_WRITE_SIZE) */
#define CURL_MAX_WRITE_SIZE_GUESS 16384

struct ctx {
	char *dir, root[PATH_MAX], log[PATH_MAX];
	uint8_t *data[N_FILES];
	size_t len[N_FILES];
	size_t max_bytes;          /* the bound every job is described with */
	int accepted[N_FILES];
	int refused[N_FILES];      /* bodies the done callback found wrong */
	struct fx_http http;
	struct slotsync_fetch_options opt;
	struct slotsync_fetch_stats st;
	struct slotsync_error err;
};

static void ctx_make(struct ctx *c, const struct fx_http_rule *rules, size_t n_rules)
{
	char path[PATH_MAX + 16];

	memset(c, 0, sizeof(*c));
	c->dir = test_mkdtemp();
	fx_path(c->root, c->dir, "www");
	fx_path(c->log, c->dir, "requests.log");
	ck_assert_int_eq(mkdir(c->root, 0755), 0);
	for (int i = 0; i < N_FILES; i++) {
		c->len[i] = 1000 + 7000 * (size_t)i;
		c->data[i] = malloc(c->len[i]);
		test_fill_random(c->data[i], c->len[i], (uint64_t)i + 1);
		snprintf(path, sizeof(path), "%s/f%d", c->root, i);
		ck_assert_int_eq(test_write_file(path, c->data[i], c->len[i]), 0);
	}
	c->max_bytes = 64 << 10;
	fx_http_start(&c->http, c->root, rules, n_rules, c->log);
	c->opt.base_url = c->http.url;
	c->opt.concurrency = 4;
	c->opt.max_attempts = 4;
	c->opt.backoff_initial_ms = 10;
	c->opt.backoff_max_ms = 50;
	c->opt.stall_timeout_s = 10;
}

static void ctx_free(struct ctx *c)
{
	fx_http_stop(&c->http);
	for (int i = 0; i < N_FILES; i++)
		free(c->data[i]);
	test_rmdir(c->dir);
}

static void describe(void *ud, size_t job, char *path, size_t cap, size_t *max_bytes)
{
	struct ctx *c = ud;

	snprintf(path, cap, "f%zu", job);
	*max_bytes = c->max_bytes;
}

/* Accepts a body only if it is the file's content, as a chunk's check would. */
static int done(void *ud, size_t job, const uint8_t *data, size_t len, struct slotsync_error *err)
{
	struct ctx *c = ud;

	if (len != c->len[job] || memcmp(data, c->data[job], len) != 0) {
		c->refused[job]++;
		return slotsync_error_set(err, -EAGAIN, "f%zu: wrong content", job);
	}
	c->accepted[job]++;
	return 0;
}

static int run(struct ctx *c)
{
	return slotsync_fetch_run(&c->opt, N_FILES, c->max_bytes, describe, done, NULL, c, &c->st, &c->err);
}

START_TEST(test_all_bodies_exact)
{
	struct ctx c;

	ctx_make(&c, NULL, 0);
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	for (int i = 0; i < N_FILES; i++) {
		ck_assert_int_eq(c.accepted[i], 1);
		ck_assert_int_eq(c.refused[i], 0);
	}
	ck_assert_uint_eq(c.st.requests, N_FILES);
	ck_assert_uint_eq(c.st.retries, 0);
	ck_assert_int_eq(c.st.http_version, 1);
	ck_assert_int_eq(fx_http_count(&c.http, NULL, 200), N_FILES);
	ctx_free(&c);
}
END_TEST

/* A symlink planted as the download's .part is refused: the file it points at
 * is neither truncated nor written. */
START_TEST(test_planted_part_symlink_refused)
{
	struct ctx c;
	char out[PATH_MAX], part[PATH_MAX + 8], victim[PATH_MAX];
	uint8_t *got;
	size_t len;

	ctx_make(&c, NULL, 0);
	fx_path(out, c.dir, "f1.copy");
	fx_path(victim, c.dir, "victim");
	snprintf(part, sizeof(part), "%s.part", out);
	ck_assert_int_eq(test_write_file(victim, "precious\n", 9), 0);
	ck_assert_int_eq(symlink(victim, part), 0);
	ck_assert_int_lt(slotsync_fetch_file(&c.opt, "f1", 64 << 10, out, NULL, NULL, NULL, &c.err), 0);
	ck_assert_msg(strstr(c.err.msg, "symbolic link"), "%s", c.err.msg);
	got = fx_read_file(victim, &len);
	ck_assert(len == 9 && !memcmp(got, "precious\n", 9));
	free(got);
	ck_assert_int_ne(access(out, F_OK), 0);
	/* without it, the same download works */
	ck_assert_int_eq(unlink(part), 0);
	ck_assert_msg(slotsync_fetch_file(&c.opt, "f1", 64 << 10, out, NULL, NULL, NULL, &c.err) == 0, "%s", c.err.msg);
	ck_assert(fx_file_equals(out, c.data[1], c.len[1]));
	ctx_free(&c);
}
END_TEST

START_TEST(test_503_retried)
{
	const struct fx_http_rule rules[] = { { "f3", 2, 503, NULL } };
	struct ctx c;

	ctx_make(&c, rules, 1);
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	ck_assert_int_eq(c.accepted[3], 1);
	ck_assert_uint_eq(c.st.retries, 2);
	ck_assert_int_eq(fx_http_count(&c.http, "f3", 503), 2);
	ck_assert_int_eq(fx_http_count(&c.http, "f3", 200), 1);
	ctx_free(&c);
}
END_TEST

START_TEST(test_503_gives_up)
{
	const struct fx_http_rule rules[] = { { "f5", 1000, 503, NULL } };
	struct ctx c;
	int r;

	ctx_make(&c, rules, 1);
	c.opt.max_attempts = 3;
	r = run(&c);
	ck_assert_int_lt(r, 0);
	ck_assert_int_eq(c.accepted[5], 0);
	ck_assert_msg(strstr(c.err.msg, "/f5") && strstr(c.err.msg, "HTTP 503") && strstr(c.err.msg, "3 attempts"),
		      "the error names the URL, the status and the attempts: %s", c.err.msg);
	/* exactly max-attempts requests: no busy loop */
	ck_assert_int_eq(fx_http_count(&c.http, "f5", 0), 3);
	ctx_free(&c);
}
END_TEST

START_TEST(test_wrong_content_fetched_again)
{
	char other[PATH_MAX];
	struct fx_http_rule rules[] = { { "f2", 1, 0, other } };
	struct ctx c;

	ctx_make(&c, NULL, 0);
	fx_http_stop(&c.http);
	/* the first answer for f2 is f1's bytes */
	fx_path(other, c.root, "f1");
	fx_http_start(&c.http, c.root, rules, 1, c.log);
	c.opt.base_url = c.http.url;
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	ck_assert_int_eq(c.refused[2], 1);
	ck_assert_int_eq(c.accepted[2], 1);
	ck_assert_int_eq(fx_http_count(&c.http, "f2", 200), 2);
	ck_assert_uint_eq(c.st.retries, 1);
	ctx_free(&c);
}
END_TEST

START_TEST(test_body_larger_than_bound_refused)
{
	struct ctx c;
	int r;

	ctx_make(&c, NULL, 0);
	/* f7 is 50000 bytes; f6 is 43000 */
	c.max_bytes = 45000;
	c.opt.max_attempts = 2;
	r = run(&c);
	ck_assert_int_lt(r, 0);
	ck_assert_msg(strstr(c.err.msg, "/f7") && strstr(c.err.msg, "larger"), "%s", c.err.msg);
	ck_assert_int_eq(c.accepted[7], 0);
	ck_assert_int_eq(c.refused[7], 0); /* never handed to the caller */
	ctx_free(&c);

	/* a body of exactly the bound passes */
	ctx_make(&c, NULL, 0);
	c.max_bytes = c.len[N_FILES - 1];
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	ck_assert_int_eq(c.accepted[N_FILES - 1], 1);
	ctx_free(&c);
}
END_TEST

START_TEST(test_404_ends_the_run)
{
	struct ctx c;
	char path[PATH_MAX + 16];

	ctx_make(&c, NULL, 0);
	snprintf(path, sizeof(path), "%s/f4", c.root);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(run(&c), -ENOENT);
	ck_assert_msg(strstr(c.err.msg, "/f4") && strstr(c.err.msg, "404"), "%s", c.err.msg);
	/* not asked again: the store does not have it */
	ck_assert_int_eq(fx_http_count(&c.http, "f4", 0), 1);
	ctx_free(&c);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_endless_error_page_cut_and_counted)
{
	/* f5 always answers 503 with a body that never ends */
	const struct fx_http_rule rules[] = { { "f5", 1000, 503 | FX_HTTP_ENDLESS, NULL } };
	struct ctx c;
	uint64_t cut_max = 3 * (SLOTSYNC_FETCH_ERROR_BODY_MAX + CURL_MAX_WRITE_SIZE_GUESS);
	uint8_t *out = NULL;
	size_t out_len = 0;
	double t0;

	/* within a run of many jobs: the run ends, in seconds, naming the job */
	ctx_make(&c, rules, 1);
	c.opt.max_attempts = 3;
	t0 = now_s();
	ck_assert_int_lt(run(&c), 0);
	ck_assert_msg(now_s() - t0 < 10, "the run ended in %.1f s", now_s() - t0);
	ck_assert_msg(strstr(c.err.msg, "/f5") && strstr(c.err.msg, "HTTP 503") && strstr(c.err.msg, "cut off") &&
			      strstr(c.err.msg, "3 attempts"),
		      "the error names the URL, the status, the cut and the attempts: %s", c.err.msg);
	ck_assert_int_eq(fx_http_count(&c.http, "f5", 503), 3);

	/* alone (one file, as a channel pointer is fetched): what was received is
	 * the error pages only, counted, at least the cap each time and not much
	 * more */
	memset(&c.st, 0, sizeof(c.st));
	ck_assert_int_lt(slotsync_fetch_file(&c.opt, "f5", c.max_bytes, NULL, &out, &out_len, &c.st, &c.err), 0);
	ck_assert_ptr_null(out);
	ck_assert_msg(c.st.bytes_received > 3 * SLOTSYNC_FETCH_ERROR_BODY_MAX && c.st.bytes_received <= cut_max,
		      "%" PRIu64 " bytes counted for 3 error pages", c.st.bytes_received);
	ck_assert_int_eq(fx_http_count(&c.http, "f5", 503), 6);
	ctx_free(&c);
}
END_TEST

START_TEST(test_drip_cut_then_resumed)
{
	/* the first answer for f1 comes at 2 bytes/s: cut after the stall time
	 * (below the default minimum of 256 bytes/s); the next attempt asks for
	 * the rest and gets it at full speed */
	const struct fx_http_rule rules[] = { { "f1", 1, FX_HTTP_DRIP, NULL } };
	struct ctx c;
	double t0, took;

	ctx_make(&c, rules, 1);
	c.opt.concurrency = 1; /* the tiny server answers one request at a time */
	c.opt.stall_timeout_s = 2;
	t0 = now_s();
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	took = now_s() - t0;
	ck_assert_int_eq(c.accepted[1], 1);
	ck_assert_msg(took < 8, "cut after the 2 s stall time, not after the %zu s the drip takes (%.1f s)",
		      c.len[1] / 2, took);
	ck_assert_uint_eq(c.st.retries, 1);
	ck_assert_uint_eq(c.st.resumed, 1); /* what the drip gave was kept */
	ck_assert_int_eq(fx_http_count(&c.http, "f1", 0), 2);
	ck_assert_int_eq(fx_http_count(&c.http, "f1", 206), 1);
	ctx_free(&c);
}
END_TEST

START_TEST(test_rate_cap_lowers_min_rate)
{
	/* a --max-rate of 1 MB/s paces this transfer of 4 MB below a --min-rate of
	 * 2 MB/s for longer than the stall time: the cap, not the server, makes it
	 * slow, so the minimum is lowered with it and the one attempt completes.
	 * (libcurl reads up to about 1.6 MB at a time before its cap bites: on a
	 * loopback, smaller transfers are not slowed by it at all.) */
	struct ctx c;
	char path[PATH_MAX + 16];
	size_t len = 4000000;
	uint8_t *data = malloc(len), *out = NULL;
	size_t out_len = 0;
	double t0, took;

	ctx_make(&c, NULL, 0);
	test_fill_random(data, len, 99);
	snprintf(path, sizeof(path), "%s/big", c.root);
	ck_assert_int_eq(test_write_file(path, data, len), 0);
	c.opt.max_attempts = 1;
	c.opt.stall_timeout_s = 1;
	c.opt.max_rate_bps = 1000000;
	c.opt.min_rate_bps = 2000000;
	t0 = now_s();
	ck_assert_msg(slotsync_fetch_file(&c.opt, "big", len, NULL, &out, &out_len, &c.st, &c.err) == 0, "%s",
		      slotsync_error_message(&c.err));
	took = now_s() - t0;
	ck_assert_msg(took > 2, "paced by the cap: %.1f s", took);
	ck_assert_uint_eq(out_len, len);
	ck_assert(memcmp(out, data, len) == 0);
	free(out);
	free(data);
	ctx_free(&c);
}
END_TEST

/* A second store beside c's: the same files, in its own folder, served by
 * its own server with its own rules; its folder in root. */
static void second_store(struct ctx *c, struct fx_http *h, char *root, const struct fx_http_rule *rules, size_t n,
			 const char *log)
{
	char path[PATH_MAX + 16];

	fx_path(root, c->dir, "www2");
	ck_assert_int_eq(mkdir(root, 0755), 0);
	for (int i = 0; i < N_FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", root, i);
		ck_assert_int_eq(test_write_file(path, c->data[i], c->len[i]), 0);
	}
	fx_http_start(h, root, rules, n, log);
}

/* Two mirrors: c's server again, now with rules (which may name other: it
 * becomes the path of f1), then a second store of the same files; c->opt
 * asks them in that order.  Returns the set (slotsync_mirrors_free). */
static struct slotsync_mirrors *two_mirrors(struct ctx *c, const struct fx_http_rule *rules, size_t n, char *other,
					    struct fx_http *h2, char *root2, char *log2)
{
	struct slotsync_mirrors *m;

	fx_http_stop(&c->http);
	fx_path(other, c->root, "f1");
	fx_path(log2, c->dir, "requests2.log");
	second_store(c, h2, root2, NULL, 0, log2);
	fx_http_start(&c->http, c->root, rules, n, c->log);
	ck_assert_int_eq(slotsync_mirrors_new(&m, &c->err), 0);
	ck_assert_int_eq(slotsync_mirrors_add(m, c->http.url, &c->err), 0);
	ck_assert_int_eq(slotsync_mirrors_add(m, h2->url, &c->err), 0);
	c->opt.base_url = NULL;
	c->opt.mirrors = m;
	return m;
}

/* Mirror 1 lacks f4 (404), refuses f5 (403), answers 503 for f3 and serves
 * f1's bytes for f6; mirror 2 has all: every body exact, each of those asked
 * of mirror 1 once (no backoff there), mirror 1 dropped for its wrong bytes. */
START_TEST(test_mirrors_per_object)
{
	char other[PATH_MAX], root2[PATH_MAX], log2[PATH_MAX], path[PATH_MAX + 16];
	struct fx_http_rule rules[] = { { "f3", 1000, 503, NULL }, { "f5", 1000, 403, NULL }, { "f6", 1000, 0, other } };
	const struct slotsync_mirror_stats *m1, *m2;
	struct slotsync_mirrors *m;
	uint8_t *out;
	size_t len;
	struct fx_http h2;
	struct ctx c;

	ctx_make(&c, NULL, 0);
	m = two_mirrors(&c, rules, 3, other, &h2, root2, log2);
	snprintf(path, sizeof(path), "%s/f4", c.root);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(slotsync_mirrors_add(m, c.http.url, &c.err), 0); /* the same: not twice */
	ck_assert_uint_eq(slotsync_mirrors_count(m), 2);
	c.opt.concurrency = 1;
	ck_assert_msg(run(&c) == 0, "%s", slotsync_error_message(&c.err));
	for (int i = 0; i < N_FILES; i++)
		ck_assert_int_eq(c.accepted[i], 1);
	ck_assert_int_eq(c.refused[6], 1);
	ck_assert_int_eq(fx_http_count(&c.http, "f3", 0), 1);
	ck_assert_int_eq(fx_http_count(&c.http, "f4", 0), 1);
	ck_assert_int_eq(fx_http_count(&c.http, "f5", 0), 1);
	m1 = slotsync_mirrors_stats(m, 0);
	m2 = slotsync_mirrors_stats(m, 1);
	/* f0 f1 f2 (and f7, if it started there before f6 was refused) from
	 * mirror 1; f3 f4 f5 f6 from mirror 2 */
	ck_assert_uint_eq(m1->objects + m2->objects, N_FILES);
	ck_assert_uint_ge(m1->objects, 3);
	ck_assert_uint_ge(m2->objects, 4);
	ck_assert_uint_eq(m1->objects_moved, 4);
	ck_assert_uint_eq(m1->bytes_received + m2->bytes_received, c.st.bytes_received);
	ck_assert_msg(m1->dropped && strstr(m1->why, "wrong bytes") && strstr(m1->why, "f6"), "%s", m1->why);
	ck_assert(!m2->dropped);
	/* dropped for as long as the set lives: the next fetch asks mirror 2 */
	ck_assert_msg(slotsync_fetch_file(&c.opt, "f0", 64 << 10, NULL, &out, &len, &c.st, &c.err) == 0, "%s", c.err.msg);
	ck_assert(len == c.len[0] && !memcmp(out, c.data[0], len));
	free(out);
	ck_assert_int_eq(fx_http_count(&c.http, "f0", 0), 1);
	ck_assert_int_eq(fx_http_count(&h2, "f0", 200), 1);
	slotsync_mirrors_free(m);
	fx_http_stop(&h2);
	ctx_free(&c);
}
END_TEST

/* An object no mirror has: the error names it and what each mirror answered;
 * the set serves the next run all the same. */
START_TEST(test_mirrors_none_has_it)
{
	char root2[PATH_MAX], log2[PATH_MAX], path[PATH_MAX + 16];
	const struct fx_http_rule rules[] = { { "f4", 1000, 403, NULL } };
	struct slotsync_mirrors *m;
	uint8_t *out;
	size_t len;
	struct fx_http h2;
	struct ctx c;

	ctx_make(&c, rules, 1);
	fx_path(log2, c.dir, "requests2.log");
	second_store(&c, &h2, root2, NULL, 0, log2);
	snprintf(path, sizeof(path), "%s/f4", root2);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(slotsync_mirrors_new(&m, &c.err), 0);
	ck_assert_int_eq(slotsync_mirrors_add(m, c.http.url, &c.err), 0);
	ck_assert_int_eq(slotsync_mirrors_add(m, h2.url, &c.err), 0);
	c.opt.mirrors = m;
	c.opt.concurrency = 1;
	ck_assert_int_eq(run(&c), -ENOENT);
	ck_assert_msg(strstr(c.err.msg, "f4: no mirror served it") && strstr(c.err.msg, "HTTP 403") &&
			      strstr(c.err.msg, h2.url) && strstr(c.err.msg, "not found (HTTP 404)"),
		      "%s", c.err.msg);
	ck_assert_int_eq(fx_http_count(&c.http, "f4", 0), 1);
	ck_assert_int_eq(fx_http_count(&h2, "f4", 0), 1);
	/* a file through the same set, relative to its mirrors */
	ck_assert_msg(slotsync_fetch_file(&c.opt, "f2", 64 << 10, NULL, &out, &len, &c.st, &c.err) == 0, "%s", c.err.msg);
	ck_assert(len == c.len[2] && !memcmp(out, c.data[2], len));
	free(out);
	slotsync_mirrors_free(m);
	fx_http_stop(&h2);
	ctx_free(&c);
}
END_TEST

/* A file named by its SHA-256 (an index, a delta index): mirror 1 serves f1's
 * bytes for f6; mirror 1 is dropped and f6 comes from mirror 2, asked of
 * mirror 1 once, not retried there.  When the last mirror serves it wrong too
 * the fetch fails at once with -EBADMSG, naming what each served; a wrong
 * size is wrong bytes as well. */
START_TEST(test_file_sha256_wrong_bytes_next_mirror)
{
	char other[PATH_MAX], root2[PATH_MAX], log2[PATH_MAX], path[PATH_MAX + 16];
	struct fx_http_rule rules[] = { { "f6", 1000, 0, other } };
	uint8_t want[SLOTSYNC_DIGEST_BYTES], *out = NULL;
	const struct slotsync_mirror_stats *m1;
	struct slotsync_mirrors *m;
	size_t len = 0;
	struct fx_http h2;
	struct ctx c;

	ctx_make(&c, NULL, 0);
	m = two_mirrors(&c, rules, 1, other, &h2, root2, log2);
	ck_assert_int_eq(slotsync_digest(SLOTSYNC_DIGEST_SHA256, c.data[6], c.len[6], want), 0);
	ck_assert_msg(slotsync_fetch_file_sha256(&c.opt, "f6", 64 << 10, c.len[6], want, &out, &len, &c.st, &c.err) == 0,
		      "%s", c.err.msg);
	ck_assert(len == c.len[6] && !memcmp(out, c.data[6], len));
	free(out);
	ck_assert_int_eq(fx_http_count(&c.http, "f6", 0), 1);
	ck_assert_int_eq(fx_http_count(&h2, "f6", 200), 1);
	m1 = slotsync_mirrors_stats(m, 0);
	ck_assert_msg(m1->dropped && strstr(m1->why, "signed manifest"), "%s", m1->why);
	/* the last mirror serves it wrong too: -EBADMSG at once, one request */
	snprintf(path, sizeof(path), "%s/f6", root2);
	ck_assert_int_eq(test_write_file(path, c.data[1], c.len[1]), 0);
	out = NULL;
	ck_assert_int_eq(slotsync_fetch_file_sha256(&c.opt, "f6", 64 << 10, c.len[6], want, &out, &len, &c.st, &c.err),
			 -EBADMSG);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(c.err.msg, "f6: no mirror served it") && strstr(c.err.msg, h2.url) &&
			      strstr(c.err.msg, "wrong bytes") && strstr(c.err.msg, "signed manifest"),
		      "%s", c.err.msg);
	ck_assert_int_eq(fx_http_count(&h2, "f6", 0), 2);
	/* the right bytes of another size: refused as well */
	ck_assert_int_eq(slotsync_fetch_file_sha256(&c.opt, "f6", 64 << 10, c.len[6] + 1, want, &out, &len, &c.st,
						    &c.err),
			 -EBADMSG);
	/* over the bound: refused before any request */
	ck_assert_int_eq(slotsync_fetch_file_sha256(&c.opt, "f6", 100, c.len[6], want, &out, &len, &c.st, &c.err),
			 -EFBIG);
	ck_assert_int_eq(fx_http_count(&h2, "f6", 0), 3);
	slotsync_mirrors_free(m);
	fx_http_stop(&h2);
	/* no mirrors, a base URL: the error names the file */
	c.opt.mirrors = NULL;
	c.opt.base_url = c.http.url;
	ck_assert_int_eq(slotsync_fetch_file_sha256(&c.opt, "f6", 64 << 10, c.len[6], want, &out, &len, &c.st, &c.err),
			 -EBADMSG);
	ck_assert_msg(strstr(c.err.msg, "f6: its size or SHA-256"), "%s", c.err.msg);
	ctx_free(&c);
}
END_TEST

static Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("http");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_all_bodies_exact);
	tcase_add_test(tc, test_planted_part_symlink_refused);
	tcase_add_test(tc, test_503_retried);
	tcase_add_test(tc, test_503_gives_up);
	tcase_add_test(tc, test_wrong_content_fetched_again);
	tcase_add_test(tc, test_body_larger_than_bound_refused);
	tcase_add_test(tc, test_404_ends_the_run);
	tcase_add_test(tc, test_endless_error_page_cut_and_counted);
	tcase_add_test(tc, test_drip_cut_then_resumed);
	tcase_add_test(tc, test_rate_cap_lowers_min_rate);
	tcase_add_test(tc, test_mirrors_per_object);
	tcase_add_test(tc, test_mirrors_none_has_it);
	tcase_add_test(tc, test_file_sha256_wrong_bytes_next_mirror);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(fetch_suite());
}
