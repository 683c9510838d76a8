/* HTTP/2 fetcher on libcurl's multi interface: see include/slotsync/fetch.h.
 *
 * State: stream slots (one easy handle each, reused so that the one connection
 * is reused), a cursor over jobs not yet started (they start in order), and a
 * short list of jobs waiting to be retried, each with the earliest time it may
 * start again and the bytes an earlier attempt received (the next attempt asks
 * only for the rest).  Per job only its attempt count and whether it was
 * accepted are kept.
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
#define PATH_MAX_BYTES 512

struct job_state {
	uint16_t attempts;
	uint8_t accepted;
};

struct retry {
	size_t job;
	double not_before;     /* monotonic seconds */
	uint8_t *partial;      /* bytes an earlier attempt received */
	size_t len;
};

struct stream {
	CURL *easy;
	size_t job;            /* SIZE_MAX: idle */
	size_t max_bytes;
	uint8_t *buf;          /* the body being received */
	size_t len;
	size_t start_len;      /* bytes held when this attempt began (Range start) */
	int overflow;          /* the body outgrew its bound */
	char url[PATH_MAX_BYTES + 2048];
	char error[CURL_ERROR_SIZE];
	struct fetcher *f;
};

struct fetcher {
	const struct slotsync_fetch_options *opt;
	size_t n_jobs, next_job;
	slotsync_fetch_describe_cb describe;
	void *userdata;
	struct job_state *state;
	struct retry *retries;
	size_t n_retries, cap_retries;
	struct stream *streams;
	int n_streams;
	CURLM *multi;
	struct slotsync_fetch_stats *stats;
	unsigned int seed;
	/* --max-rate: a token bucket in bytes; a request starts only while it is
	 * not in debt, and takes its largest possible size from it (the rest is
	 * given back when the body is in).  libcurl's own per-transfer cap paces
	 * long transfers, but small chunks finish before it bites. */
	double tokens, refilled_at;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t body_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct stream *s = userdata;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 && code != 206)
		return n; /* an error page: drained, not kept */
	s->f->stats->bytes_received += n;
	if (code == 200 && s->start_len > 0 && s->len == s->start_len)
		s->len = 0; /* asked for the rest, got the whole body again: start over */
	if (s->len + n > s->max_bytes) {
		s->overflow = 1;
		return 0; /* abort the transfer */
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

static int stream_setup(struct fetcher *f, struct stream *s, struct slotsync_error *err)
{
	const struct slotsync_fetch_options *o = f->opt;
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
	/* a connection that does not come up is a stall too */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, o->stall_timeout_s > 0 ? o->stall_timeout_s : 30L);
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
		curl_off_t per = (curl_off_t)(o->max_rate_bps / (uint64_t)f->n_streams);
		curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE, per > 0 ? per : (curl_off_t)1);
	}
	return 0;
}

/* Starts job on stream s, continuing from `partial` if an attempt left some. */
static int stream_start(struct fetcher *f, struct stream *s, size_t job, const uint8_t *partial, size_t len,
			struct slotsync_error *err)
{
	char path[PATH_MAX_BYTES];
	size_t max_bytes = 0;
	CURLMcode mc;

	f->describe(f->userdata, job, path, sizeof(path), &max_bytes);
	s->job = job;
	s->max_bytes = max_bytes;
	s->overflow = 0;
	s->error[0] = '\0';
	if (len > max_bytes)
		len = 0;
	if (len)
		memcpy(s->buf, partial, len);
	s->len = s->start_len = len;
	snprintf(s->url, sizeof(s->url), "%s/%s", f->opt->base_url, path);
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	/* Continue a body cut in an earlier attempt where it stopped. */
	curl_easy_setopt(s->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)len);
	if (len > 0)
		f->stats->resumed++;
	f->state[job].attempts++;
	f->stats->requests++;
	f->tokens -= (double)max_bytes;
	mc = curl_multi_add_handle(f->multi, s->easy);
	if (mc != CURLM_OK)
		return slotsync_error_set(err, -EIO, "cannot start a transfer: %s", curl_multi_strerror(mc));
	return 0;
}

/* Schedules the job of stream s for another attempt, keeping partial_len bytes
 * of what it received, or fails the run if the job has had all its attempts. */
static int job_retry(struct fetcher *f, struct stream *s, size_t partial_len, const char *why,
		     struct slotsync_error *err)
{
	const struct slotsync_fetch_options *o = f->opt;
	size_t job = s->job;
	int attempts = f->state[job].attempts, max = o->max_attempts > 0 ? o->max_attempts : 8;
	double base = (double)(o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 500) / 1000.0;
	double cap = (double)(o->backoff_max_ms > 0 ? o->backoff_max_ms : 60000) / 1000.0;
	double delay;
	struct retry *rt;

	if (attempts >= max)
		return slotsync_error_set(err, -EIO, "%s: %s (gave up after %d attempts)", s->url, why, attempts);
	if (f->n_retries == f->cap_retries) {
		size_t c = f->cap_retries ? f->cap_retries * 2 : 16;
		struct retry *n = realloc(f->retries, c * sizeof(*n));
		if (!n)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		f->retries = n;
		f->cap_retries = c;
	}
	/* exponential backoff with jitter: a random point in [delay/2, delay) */
	delay = base * (double)(1u << (attempts - 1 < 16 ? attempts - 1 : 16));
	if (delay > cap)
		delay = cap;
	delay = delay / 2 + delay / 2 * ((double)rand_r(&f->seed) / ((double)RAND_MAX + 1));
	rt = &f->retries[f->n_retries++];
	rt->job = job;
	rt->not_before = now_s() + delay;
	rt->partial = NULL;
	rt->len = 0;
	if (partial_len && (rt->partial = malloc(partial_len))) {
		memcpy(rt->partial, s->buf, partial_len);
		rt->len = partial_len;
	}
	f->stats->retries++;
	return 0;
}

/* A transfer ended: hand the body to the caller or schedule a retry. */
static int stream_finished(struct fetcher *f, struct stream *s, CURLcode res, slotsync_fetch_done_cb done,
			   struct slotsync_error *err)
{
	size_t job = s->job;
	char why[CURL_ERROR_SIZE + 64];
	long code = 0, version = 0, conns = 0;
	int r;

	curl_multi_remove_handle(f->multi, s->easy);
	/* give back what the request was charged beyond what it received */
	f->tokens += (double)s->max_bytes - (double)(s->len - s->start_len);
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &conns);
	f->stats->connections += conns;
	if (version == CURL_HTTP_VERSION_2_0)
		f->stats->http_version = 2;
	else if (version)
		f->stats->http_version = 1;

	if (s->overflow) {
		r = job_retry(f, s, 0, "response larger than the chunk can be (cut off)", err);
	} else if (res != CURLE_OK) {
		if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
		    res == CURLE_SSL_CERTPROBLEM || res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT) {
			r = slotsync_error_set(err, -EPERM, "%s: %s", s->url, s->error[0] ? s->error : curl_easy_strerror(res));
		} else if (res == CURLE_RANGE_ERROR) {
			/* the server does not do ranges: the next attempt starts over */
			r = job_retry(f, s, 0, "the server ignores Range requests; fetching the whole chunk again", err);
		} else {
			snprintf(why, sizeof(why), "%s", s->error[0] ? s->error : curl_easy_strerror(res));
			/* keep what arrived: the next attempt asks for the rest */
			r = job_retry(f, s, code == 200 || code == 206 ? s->len : 0, why, err);
		}
	} else if (code == 404 || code == 410) {
		r = slotsync_error_set(err, -ENOENT, "%s: not found (HTTP %ld)", s->url, code);
	} else if (code >= 400 && code < 500 && code != 408 && code != 429) {
		/* the server refuses this request as such: asking again will not help */
		r = slotsync_error_set(err, -EACCES, "%s: refused by the server (HTTP %ld)%s", s->url, code,
				       (code == 400 || code == 401 || code == 403) && !f->opt->client_cert
					       ? "; does the server require a client certificate (--client-cert)?"
					       : "");
	} else if (code != 200 && code != 206) {
		snprintf(why, sizeof(why), "HTTP %ld", code);
		r = job_retry(f, s, 0, why, err);
	} else {
		struct slotsync_error cb_err = { 0 };
		r = done(f->userdata, job, s->buf, s->len, &cb_err);
		if (r == -EAGAIN) {
			r = job_retry(f, s, 0, slotsync_error_message(&cb_err), err);
		} else if (r < 0) {
			*err = cb_err;
		} else {
			f->state[job].accepted = 1;
		}
	}
	s->job = SIZE_MAX;
	return r;
}

/* Starts what may start on idle streams: retries whose time has come first,
 * then new jobs in order.  Lowers *wait_ms to the time until the next retry. */
static int start_ready(struct fetcher *f, int *active, long *wait_ms, struct slotsync_error *err)
{
	double t = now_s(), rate = (double)f->opt->max_rate_bps;

	if (rate > 0) {
		f->tokens += (t - f->refilled_at) * rate;
		if (f->tokens > rate / 4)
			f->tokens = rate / 4; /* bursts of a quarter second at most */
		f->refilled_at = t;
	}
	for (int i = 0; i < f->n_streams && *active < f->n_streams; i++) {
		struct stream *s = &f->streams[i];
		int r = 1;

		if (s->job != SIZE_MAX)
			continue;
		if (rate > 0 && f->tokens < 0) {
			long w = (long)(-f->tokens / rate * 1000) + 1;
			if (w < *wait_ms)
				*wait_ms = w;
			break;
		}
		for (size_t k = 0; k < f->n_retries; k++) {
			struct retry rt = f->retries[k];
			if (rt.not_before > t) {
				double w = (rt.not_before - t) * 1000;
				if (w < *wait_ms)
					*wait_ms = (long)w + 1;
				continue;
			}
			f->retries[k] = f->retries[--f->n_retries];
			r = stream_start(f, s, rt.job, rt.partial, rt.len, err);
			free(rt.partial);
			break;
		}
		if (r == 1 && f->next_job < f->n_jobs)
			r = stream_start(f, s, f->next_job++, NULL, 0, err);
		if (r < 0)
			return r;
		if (r == 0)
			(*active)++;
	}
	return 0;
}

int slotsync_fetch_run(const struct slotsync_fetch_options *opt, size_t n_jobs, size_t max_body,
		       slotsync_fetch_describe_cb describe, slotsync_fetch_done_cb done, slotsync_fetch_tick_cb tick,
		       void *userdata, struct slotsync_fetch_stats *stats, struct slotsync_error *err)
{
	struct fetcher f = { 0 };
	size_t accepted = 0;
	double last_tick = now_s();
	int r = 0, active = 0;

	memset(stats, 0, sizeof(*stats));
	if (n_jobs == 0)
		return tick ? tick(userdata, err) : 0;
	if (!opt->base_url)
		return slotsync_error_set(err, -EINVAL, "%zu chunks must be fetched but no store URL was given", n_jobs);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return slotsync_error_set(err, -EIO, "cannot initialize libcurl");
	f.opt = opt;
	f.n_jobs = n_jobs;
	f.describe = describe;
	f.userdata = userdata;
	f.stats = stats;
	f.seed = (unsigned int)(now_s() * 1e6);
	f.refilled_at = now_s();
	f.n_streams = opt->concurrency > 0 ? opt->concurrency : SLOTSYNC_FETCH_CONCURRENCY_DEFAULT;
	if (f.n_streams > MAX_CONCURRENCY)
		f.n_streams = MAX_CONCURRENCY;
	if ((size_t)f.n_streams > n_jobs)
		f.n_streams = (int)n_jobs;
	f.state = calloc(n_jobs, sizeof(*f.state));
	f.streams = calloc((size_t)f.n_streams, sizeof(*f.streams));
	f.multi = curl_multi_init();
	if (!f.state || !f.streams || !f.multi) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	curl_multi_setopt(f.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* one connection: all streams share it */
	curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(f.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)f.n_streams);
	for (int i = 0; i < f.n_streams; i++) {
		f.streams[i].job = SIZE_MAX;
		f.streams[i].buf = malloc(max_body ? max_body : 1);
		if (!f.streams[i].buf) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		r = stream_setup(&f, &f.streams[i], err);
		if (r < 0)
			goto out;
	}

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
			size_t job;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			job = s->job;
			r = stream_finished(&f, s, msg->data.result, done, err);
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
		if (accepted < n_jobs &&
		    curl_multi_poll(f.multi, NULL, 0, (int)(wait_ms < 100 ? wait_ms : 100), NULL) !=
			    CURLM_OK) {
			r = slotsync_error_set(err, -EIO, "transfer engine failed");
			goto out;
		}
	}
	if (tick)
		r = tick(userdata, err);
out:
	for (int i = 0; f.streams && i < f.n_streams; i++) {
		if (f.streams[i].easy) {
			if (f.streams[i].job != SIZE_MAX)
				curl_multi_remove_handle(f.multi, f.streams[i].easy);
			curl_easy_cleanup(f.streams[i].easy);
		}
		free(f.streams[i].buf);
	}
	for (size_t k = 0; k < f.n_retries; k++)
		free(f.retries[k].partial);
	if (f.multi)
		curl_multi_cleanup(f.multi);
	free(f.retries);
	free(f.streams);
	free(f.state);
	return r;
}
