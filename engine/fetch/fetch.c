/* HTTP/2 fetcher on libcurl's multi interface: see include/slotsync/fetch.h.
 *
 * State: a ring of stream slots (one easy handle each, reused so that the one
 * connection is reused), a queue of job numbers waiting to start, and per job the
 * bytes received so far (kept across a failed attempt, so the next attempt asks
 * only for the rest) and the earliest time it may start again.
 */
#include "slotsync/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONCURRENCY 256

struct job_state {
	uint8_t *buf;          /* bytes received so far (NULL until the first byte) */
	size_t len, cap;
	int attempts;
	double not_before;     /* monotonic seconds */
	int accepted;
};

struct stream {
	CURL *easy;
	size_t job;            /* SIZE_MAX: idle */
	int overflow;          /* the body outgrew its bound */
	size_t start_len;      /* bytes the job had when this attempt began */
	char url[4096];
	char error[CURL_ERROR_SIZE];
	struct fetcher *f;
};

struct fetcher {
	const struct slotsync_fetch_options *opt;
	const struct slotsync_fetch_job *jobs;
	size_t n_jobs;
	struct job_state *state;
	size_t *queue;         /* jobs waiting to (re)start, FIFO ring */
	size_t q_head, q_len;
	struct stream *streams;
	int n_streams;
	CURLM *multi;
	struct slotsync_fetch_stats *stats;
	unsigned int seed;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void queue_push(struct fetcher *f, size_t job)
{
	f->queue[(f->q_head + f->q_len) % f->n_jobs] = job;
	f->q_len++;
}

static size_t body_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct stream *s = userdata;
	struct job_state *js = &s->f->state[s->job];
	size_t n = size * nmemb, bound = s->f->jobs[s->job].max_bytes;
	long code = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 && code != 206)
		return n; /* an error page: drained, not kept */
	s->f->stats->bytes_received += n;
	if (js->len + n > bound) {
		s->overflow = 1;
		return 0; /* abort the transfer */
	}
	if (js->cap < js->len + n) {
		size_t cap = js->cap ? js->cap * 2 : 16384;
		uint8_t *b;
		while (cap < js->len + n)
			cap *= 2;
		if (cap > bound)
			cap = bound;
		b = realloc(js->buf, cap);
		if (!b)
			return 0;
		js->buf = b;
		js->cap = cap;
	}
	memcpy(js->buf + js->len, data, n);
	js->len += n;
	return n;
}

static int stream_setup(struct fetcher *f, struct stream *s, struct slotsync_error *err)
{
	const struct slotsync_fetch_options *o = f->opt;
	int n_streams = f->n_streams;
	CURL *e = curl_easy_init();

	if (!e)
		return slotsync_error_set(err, -ENOMEM, "cannot create a transfer");
	s->easy = e;
	s->f = f;
	s->job = SIZE_MAX;
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->error);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* wait for the connection, then multiplex on it */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s > 0 ? o->stall_timeout_s : 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	if (o->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
	if (o->client_cert) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, o->client_cert);
		curl_easy_setopt(e, CURLOPT_SSLKEY, o->client_key ? o->client_key : o->client_cert);
	}
	if (o->max_rate_bps > 0) {
		/* The cap is shared by the streams: each gets its part. */
		curl_off_t per = (curl_off_t)(o->max_rate_bps / (uint64_t)n_streams);
		curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE, per > 0 ? per : (curl_off_t)1);
	}
	return 0;
}

static int stream_start(struct fetcher *f, struct stream *s, size_t job, struct slotsync_error *err)
{
	struct job_state *js = &f->state[job];
	CURLMcode mc;

	s->job = job;
	s->overflow = 0;
	s->error[0] = '\0';
	s->start_len = js->len;
	snprintf(s->url, sizeof(s->url), "%s/%s", f->opt->base_url, f->jobs[job].path);
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	/* Continue a body cut in an earlier attempt where it stopped. */
	curl_easy_setopt(s->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)js->len);
	if (js->len > 0)
		f->stats->resumed++;
	js->attempts++;
	f->stats->requests++;
	mc = curl_multi_add_handle(f->multi, s->easy);
	if (mc != CURLM_OK)
		return slotsync_error_set(err, -EIO, "cannot start a transfer: %s", curl_multi_strerror(mc));
	return 0;
}

/* Schedules job for another attempt, or fails the run if it has had them all. */
static int job_retry(struct fetcher *f, size_t job, const char *why, int keep_partial, struct slotsync_error *err)
{
	struct job_state *js = &f->state[job];
	const struct slotsync_fetch_options *o = f->opt;
	int max = o->max_attempts > 0 ? o->max_attempts : 8;
	double base = (double)(o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 500) / 1000.0;
	double cap = (double)(o->backoff_max_ms > 0 ? o->backoff_max_ms : 60000) / 1000.0;
	double delay;

	if (!keep_partial)
		js->len = 0;
	if (js->attempts >= max)
		return slotsync_error_set(err, -EIO, "%s/%s: %s (gave up after %d attempts)", o->base_url,
					  f->jobs[job].path, why, js->attempts);
	/* exponential backoff with full jitter in [delay/2, delay) */
	delay = base * (double)(1u << (js->attempts - 1 < 16 ? js->attempts - 1 : 16));
	if (delay > cap)
		delay = cap;
	delay = delay / 2 + delay / 2 * ((double)rand_r(&f->seed) / ((double)RAND_MAX + 1));
	js->not_before = now_s() + delay;
	f->stats->retries++;
	queue_push(f, job);
	return 0;
}

/* A transfer ended: hand the body to the caller or schedule a retry. */
static int stream_finished(struct fetcher *f, struct stream *s, CURLcode res, slotsync_fetch_done_cb done,
			   void *userdata, struct slotsync_error *err)
{
	size_t job = s->job;
	struct job_state *js = &f->state[job];
	char why[CURL_ERROR_SIZE + 64];
	long code = 0, version = 0;
	int r;

	curl_multi_remove_handle(f->multi, s->easy);
	s->job = SIZE_MAX;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &version);
	if (version == CURL_HTTP_VERSION_2_0)
		f->stats->http_version = 2;
	else if (version)
		f->stats->http_version = 1;

	if (s->overflow)
		return job_retry(f, job, "response larger than the chunk can be (cut off)", 0, err);
	if (res != CURLE_OK) {
		if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
		    res == CURLE_SSL_CERTPROBLEM || res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT)
			return slotsync_error_set(err, -EPERM, "%s: %s", s->url, s->error[0] ? s->error : curl_easy_strerror(res));
		snprintf(why, sizeof(why), "%s", s->error[0] ? s->error : curl_easy_strerror(res));
		/* keep what arrived: the next attempt asks for the rest */
		return job_retry(f, job, why, code == 200 || code == 206, err);
	}
	if (code == 404 || code == 410)
		return slotsync_error_set(err, -ENOENT, "%s: not found (HTTP %ld)", s->url, code);
	if (code == 416) {
		/* the range we asked for is past the end: what we hold is wrong */
		return job_retry(f, job, "HTTP 416 for a resumed transfer", 0, err);
	}
	if (code != 200 && code != 206) {
		snprintf(why, sizeof(why), "HTTP %ld", code);
		return job_retry(f, job, why, 0, err);
	}
	if (code == 200 && s->start_len > 0) {
		/* the server ignored the Range header and sent the whole body again,
		 * which body_cb appended behind the partial one: keep the new copy */
		size_t whole = js->len - s->start_len;
		memmove(js->buf, js->buf + s->start_len, whole);
		js->len = whole;
	}
	{
		struct slotsync_error cb_err = { 0 };
		r = done(userdata, job, js->buf, js->len, &cb_err);
		if (r == -EAGAIN)
			return job_retry(f, job, slotsync_error_message(&cb_err), 0, err);
		if (r < 0) {
			*err = cb_err;
			return r;
		}
	}
	js->accepted = 1;
	free(js->buf);
	js->buf = NULL;
	js->len = js->cap = 0;
	return 0;
}

/* Starts queued jobs whose time has come on idle streams; lowers *wait_ms to the
 * time until the next waiting job may start. */
static int start_ready(struct fetcher *f, int *active, long *wait_ms, struct slotsync_error *err)
{
	double t = now_s();

	for (size_t k = f->q_len; k > 0 && *active < f->n_streams; k--) {
		size_t job = f->queue[f->q_head];
		f->q_head = (f->q_head + 1) % f->n_jobs;
		f->q_len--;
		if (f->state[job].not_before > t) {
			double w = (f->state[job].not_before - t) * 1000;
			if (w < *wait_ms)
				*wait_ms = (long)w + 1;
			queue_push(f, job);
			continue;
		}
		for (int i = 0; i < f->n_streams; i++) {
			if (f->streams[i].job == SIZE_MAX) {
				int r = stream_start(f, &f->streams[i], job, err);
				if (r < 0)
					return r;
				(*active)++;
				break;
			}
		}
	}
	return 0;
}

int slotsync_fetch_run(const struct slotsync_fetch_options *opt, const struct slotsync_fetch_job *jobs, size_t n_jobs,
		       slotsync_fetch_done_cb done, slotsync_fetch_tick_cb tick, void *userdata,
		       struct slotsync_fetch_stats *stats, struct slotsync_error *err)
{
	struct fetcher f = { 0 };
	size_t accepted = 0;
	double last_tick = now_s();
	int r = 0, active = 0;

	memset(stats, 0, sizeof(*stats));
	if (n_jobs == 0)
		return tick ? tick(userdata, err) : 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return slotsync_error_set(err, -EIO, "cannot initialize libcurl");
	f.opt = opt;
	f.jobs = jobs;
	f.n_jobs = n_jobs;
	f.stats = stats;
	f.seed = (unsigned int)(now_s() * 1e6);
	f.n_streams = opt->concurrency > 0 ? opt->concurrency : SLOTSYNC_FETCH_CONCURRENCY_DEFAULT;
	if (f.n_streams > MAX_CONCURRENCY)
		f.n_streams = MAX_CONCURRENCY;
	if ((size_t)f.n_streams > n_jobs)
		f.n_streams = (int)n_jobs;
	f.state = calloc(n_jobs, sizeof(*f.state));
	f.queue = calloc(n_jobs, sizeof(*f.queue));
	f.streams = calloc((size_t)f.n_streams, sizeof(*f.streams));
	f.multi = curl_multi_init();
	if (!f.state || !f.queue || !f.streams || !f.multi) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	curl_multi_setopt(f.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* one connection: all streams share it */
	curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(f.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)f.n_streams);
	for (int i = 0; i < f.n_streams; i++) {
		r = stream_setup(&f, &f.streams[i], err);
		if (r < 0)
			goto out;
	}
	for (size_t j = 0; j < n_jobs; j++)
		queue_push(&f, j);

	while (accepted < n_jobs) {
		CURLMsg *msg;
		int left, still = 0;
		long wait_ms = 1000;

		r = start_ready(&f, &active, &wait_ms, err);
		if (r < 0)
			goto out;
		if (curl_multi_perform(f.multi, &still) != CURLM_OK) {
			r = slotsync_error_set(err, -EIO, "transfer engine failed");
			goto out;
		}
		while ((msg = curl_multi_info_read(f.multi, &left))) {
			struct stream *s;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			{
				long conns = 0;
				curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &conns);
				stats->connections += conns;
			}
			size_t job = s->job;
			r = stream_finished(&f, s, msg->data.result, done, userdata, err);
			active--;
			if (r < 0)
				goto out;
			if (f.state[job].accepted)
				accepted++;
		}
		/* streams that just finished take the next jobs before we wait */
		r = start_ready(&f, &active, &wait_ms, err);
		if (r < 0)
			goto out;
		if (tick && now_s() - last_tick >= 1.0) {
			last_tick = now_s();
			r = tick(userdata, err);
			if (r < 0)
				goto out;
		}
		if (accepted < n_jobs && curl_multi_poll(f.multi, NULL, 0, (int)(active ? (wait_ms < 100 ? wait_ms : 100) : wait_ms), NULL) != CURLM_OK) {
			r = slotsync_error_set(err, -EIO, "transfer engine failed");
			goto out;
		}
	}
	if (tick)
		r = tick(userdata, err);
out:
	if (f.streams) {
		for (int i = 0; i < f.n_streams; i++) {
			if (!f.streams[i].easy)
				continue;
			if (f.streams[i].job != SIZE_MAX)
				curl_multi_remove_handle(f.multi, f.streams[i].easy);
			curl_easy_cleanup(f.streams[i].easy);
		}
	}
	if (f.state)
		for (size_t j = 0; j < n_jobs; j++)
			free(f.state[j].buf);
	if (f.multi)
		curl_multi_cleanup(f.multi);
	free(f.streams);
	free(f.state);
	free(f.queue);
	return r;
}
