/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HTTP/2 fetcher on libcurl's multi interface: see include/slotsync/fetch.h.
 *
 * State: stream slots (one easy handle each, reused so that the one connection
 * is reused), a cursor over jobs not yet started (they start in order), and a
 * short list of jobs waiting to be retried, each with the earliest time it may
 * start again and the bytes an earlier attempt received (the next attempt asks
 * only for the rest).  Per job only its attempt count is kept.
 *
 * Bodies are consumed on a thread of their own: a finished transfer hands its
 * buffer to a short queue and its stream takes a free buffer from a pool (one
 * per stream plus QUEUE_EXTRA), so that the caller's work on a body (decode,
 * check, write) overlaps the network instead of stalling it.  The consumer
 * calls the done and tick callbacks, always on that one thread, and posts each
 * verdict back; the transfer loop, woken by curl_multi_wakeup(), counts the
 * body accepted or schedules it again.  A full queue makes the transfer loop
 * wait for a buffer: a slow disk slows the downloads down, never memory up.
 *
 * With mirrors (mirrors_internal.h) each job carries the mirror it is asked
 * of: what one mirror does not serve moves the job to the next (job_move), a
 * body refused as wrong drops its mirror (job_refused), and the run borrows
 * the set's multi handle, so that its connections outlive the run.
 */
#include "slotsync/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mirrors_internal.h"
#include "slotsync/log.h"

#define MAX_CONCURRENCY 256
#define PATH_MAX_BYTES 512
#define QUEUE_EXTRA 4           /* bodies waiting for the consumer, beyond one per stream */

struct job_state {
	uint16_t attempts;     /* on its mirror */
	uint8_t mirror;        /* with mirrors: the one it is asked of */
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
	size_t error_len;      /* bytes of an error page received */
	int error_cut;         /* the error page outgrew SLOTSYNC_FETCH_ERROR_BODY_MAX */
	int is_file;           /* a file:// URL: no status code (0), reads always resume */
	int mirror;            /* with mirrors: the one this transfer asks */
	char url[PATH_MAX_BYTES + 2048];
	char error[CURL_ERROR_SIZE];
	struct fetcher *f;
};

struct body {
	size_t job;
	uint8_t *buf;
	size_t len;
	int mirror;
};

struct verdict {
	size_t job;            /* SIZE_MAX: the tick failed */
	int r;
	struct slotsync_error err;
};

/* The consumer thread and what it shares with the transfer loop (under lock). */
struct consumer {
	pthread_mutex_t lock;
	pthread_cond_t work;           /* a body was queued, or stop was set */
	pthread_cond_t freed;          /* a buffer came back to the pool */
	struct body *queue;            /* ring of n_bufs */
	size_t q_head, q_len;
	uint8_t **free_bufs;
	size_t n_free;
	size_t n_accepted;             /* bodies accepted so far */
	uint8_t *accepted_map;         /* with a window: which jobs were accepted */
	size_t low;                    /* with a window: the first job not accepted */
	struct verdict *verdicts;      /* refusals posted, not yet read by the loop */
	size_t n_verdicts, cap_verdicts;
	int stop;                      /* no more bodies will come */
	int loop_idle;                 /* the transfer loop waits for verdicts only */
	int failed;                    /* a callback failed the run: post nothing more */
	pthread_t th;
	int running;
};

struct fetcher {
	const struct slotsync_fetch_options *opt;
	size_t n_jobs, next_job;
	slotsync_fetch_describe_cb describe;
	slotsync_fetch_done_cb done;
	slotsync_fetch_tick_cb tick;
	void *userdata;
	struct consumer c;
	uint8_t **bufs;                /* every body buffer, to free them */
	size_t n_bufs;
	struct job_state *state;
	struct retry *retries;
	size_t n_retries, cap_retries;
	struct stream *streams;
	int n_streams;
	CURLM *multi;
	struct slotsync_fetch_stats *stats;
	struct slotsync_mirrors *mirrors;  /* NULL: opt->base_url alone */
	struct mirror_answers answers;     /* what mirrors answered for objects they did not serve */
	unsigned int seed;
	double min_rate;               /* bytes/s below which a transfer is cut (see effective_min_rate) */
	/* --max-rate: a token bucket in bytes; a request starts only while it is
	 * not in debt, and takes its largest possible size from it (the rest is
	 * given back when the body is in).  libcurl's own per-transfer cap paces
	 * long transfers, but small chunks finish before it bites. */
	double tokens, refilled_at;
};

static size_t body_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct stream *s = userdata;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	s->f->stats->bytes_received += n;
	if (s->f->mirrors)
		s->f->mirrors->m[s->mirror].st.bytes_received += n;
	if (!s->is_file && code != 200 && code != 206) {
		/* an error page: counted, not kept, and cut past a few KiB, so that
		 * a server answering 503 with an endless body is not read to its end */
		s->error_len += n;
		if (s->error_len > SLOTSYNC_FETCH_ERROR_BODY_MAX) {
			s->error_cut = 1;
			return 0; /* abort the transfer */
		}
		return n;
	}
	if (!s->is_file && code == 200 && s->start_len > 0 && s->len == s->start_len)
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
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)f->min_rate);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s > 0 ? o->stall_timeout_s : 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
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

/* The rate below which a transfer is cut after the stall time: the configured
 * minimum, but at most half of a stream's share of the rate cap (libcurl paces
 * each stream to that share), so that --max-rate on its own never makes an
 * honest transfer look like a drip. */
static double effective_min_rate(const struct slotsync_fetch_options *o, int n_streams)
{
	double min = (double)o->min_rate_bps;

	if (o->min_rate_bps == 0)
		min = SLOTSYNC_FETCH_MIN_RATE_DEFAULT;
	else if (o->min_rate_bps == SLOTSYNC_FETCH_MIN_RATE_NONE)
		min = 1.0;
	if (o->max_rate_bps > 0) {
		double share = (double)(o->max_rate_bps / (uint64_t)n_streams) / 2;
		if (min > share)
			min = share;
	}
	return min < 1.0 ? 1.0 : min;
}

/* The deadline of a transfer of at most max_bytes, in seconds: the stall time
 * (connection setup, first byte) plus the time the body takes at the minimum
 * rate.  A transfer that keeps above the minimum rate always ends before it;
 * one that keeps just above it on purpose is still bounded by its size. */
static long transfer_deadline_s(const struct fetcher *f, size_t max_bytes)
{
	double stall = (double)(f->opt->stall_timeout_s > 0 ? f->opt->stall_timeout_s : 30L);
	double t = stall + (double)max_bytes / f->min_rate + 1;

	return t < 1e9 ? (long)t : 1000000000L; /* fits a 32-bit long */
}

/* The store job is asked of: its mirror's, or the one base URL. */
static const char *job_base(const struct fetcher *f, size_t job)
{
	return f->mirrors ? f->mirrors->m[f->state[job].mirror].url : f->opt->base_url;
}

/* Starts job on stream s, continuing from `partial` if an attempt left some. */
static int stream_start(struct fetcher *f, struct stream *s, size_t job, const uint8_t *partial, size_t len,
			struct slotsync_error *err)
{
	char path[PATH_MAX_BYTES];
	size_t max_bytes = 0;
	const char *base;
	CURLMcode mc;

	f->describe(f->userdata, job, path, sizeof(path), &max_bytes);
	if (f->mirrors && f->mirrors->m[f->state[job].mirror].st.dropped) {
		/* its mirror was dropped since: the next one left (never none) */
		int next = mirrors_next(f->mirrors, f->state[job].mirror);
		f->state[job].mirror = (uint8_t)(next >= 0 ? next : mirrors_next(f->mirrors, -1));
		len = 0;
	}
	base = job_base(f, job);
	s->mirror = f->state[job].mirror;
	/* a local store (file://) is read by libcurl too, with the same bounds,
	 * retries and checks; only a store given as file:// may read files */
	s->is_file = !strncmp(base, "file://", 7);
	curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, s->is_file ? "file" : "https,http");
	s->job = job;
	s->max_bytes = max_bytes;
	s->overflow = 0;
	s->error_len = 0;
	s->error_cut = 0;
	s->error[0] = '\0';
	if (len > max_bytes)
		len = 0;
	if (len)
		memcpy(s->buf, partial, len);
	s->len = s->start_len = len;
	snprintf(s->url, sizeof(s->url), "%s/%s", base, path);
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	/* Continue a body cut in an earlier attempt where it stopped. */
	curl_easy_setopt(s->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)len);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, transfer_deadline_s(f, max_bytes));
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

/* Schedules job to start again in delay seconds, from partial[0..partial_len). */
static int retry_push(struct fetcher *f, size_t job, double delay, const uint8_t *partial, size_t partial_len,
		      struct slotsync_error *err)
{
	struct retry *rt;

	if (f->n_retries == f->cap_retries) {
		size_t c = f->cap_retries ? f->cap_retries * 2 : 16;
		struct retry *n = realloc(f->retries, c * sizeof(*n));
		if (!n)
			return slotsync_error_set(err, -ENOMEM, "out of memory");
		f->retries = n;
		f->cap_retries = c;
	}
	rt = &f->retries[f->n_retries++];
	rt->job = job;
	rt->not_before = clock_now_s() + delay;
	rt->partial = NULL;
	rt->len = 0;
	if (partial_len && (rt->partial = malloc(partial_len))) {
		memcpy(rt->partial, partial, partial_len);
		rt->len = partial_len;
	}
	f->stats->retries++;
	return 0;
}

/* Schedules job for another attempt, keeping partial[0..partial_len) of what
 * it received, or fails the run if the job has had all its attempts. */
static int job_retry(struct fetcher *f, size_t job, const uint8_t *partial, size_t partial_len, const char *why,
		     struct slotsync_error *err)
{
	const struct slotsync_fetch_options *o = f->opt;
	int attempts = f->state[job].attempts, max = o->max_attempts > 0 ? o->max_attempts : 8;
	double base = (double)(o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 500) / 1000.0;
	double cap = (double)(o->backoff_max_ms > 0 ? o->backoff_max_ms : 60000) / 1000.0;
	double delay;

	if (attempts >= max) {
		char path[PATH_MAX_BYTES];
		size_t max_bytes;
		f->describe(f->userdata, job, path, sizeof(path), &max_bytes);
		return slotsync_error_set(err, -EIO, "%s/%s: %s (gave up after %d attempts)", job_base(f, job), path, why,
					  attempts);
	}
	/* exponential backoff with jitter: a random point in [delay/2, delay) */
	delay = base * (double)(1u << (attempts - 1 < 16 ? attempts - 1 : 16));
	if (delay > cap)
		delay = cap;
	delay = delay / 2 + delay / 2 * ((double)rand_r(&f->seed) / ((double)RAND_MAX + 1));
	return retry_push(f, job, delay, partial, partial_len, err);
}

/* With mirrors: 1 when job has a mirror left after its own. */
static int job_can_move(const struct fetcher *f, size_t job)
{
	return f->mirrors && mirrors_next(f->mirrors, f->state[job].mirror) >= 0;
}

/* Moves job to the next mirror left (job_can_move), noting what its mirror
 * answered, and starts it there at once with fresh attempts. */
static int job_move(struct fetcher *f, size_t job, long answer, struct slotsync_error *err)
{
	struct job_state *st = &f->state[job];

	if (mirror_answers_add(&f->answers, job, st->mirror, answer) < 0)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	f->mirrors->m[st->mirror].st.objects_moved++;
	st->mirror = (uint8_t)mirrors_next(f->mirrors, st->mirror);
	st->attempts = 0;
	slotsync_error_clear(err);
	return retry_push(f, job, 0, NULL, 0, err);
}

/* job failed for good (r, err): with mirrors, what each one answered before
 * the last is named too. */
static int job_failed(struct fetcher *f, size_t job, int r, struct slotsync_error *err)
{
	char answers[1536], path[PATH_MAX_BYTES];
	size_t max_bytes;

	if (!f->mirrors || r == -ENOMEM)
		return r;
	mirror_answers_describe(&f->answers, f->mirrors, job, answers, sizeof(answers));
	f->describe(f->userdata, job, path, sizeof(path), &max_bytes);
	if (answers[0])
		slotsync_error_prefix(err, "%s: no mirror served it (%s)", path, answers);
	return r;
}

/* job's body was wrong (the caller refused it, or it outgrew its bound):
 * with another mirror left, the mirror that served it is dropped and job asked
 * of the next; else it is tried again. */
static int job_refused(struct fetcher *f, size_t job, const char *why, struct slotsync_error *err)
{
	if (job_can_move(f, job)) {
		struct mirror *m = &f->mirrors->m[f->state[job].mirror];
		char note[sizeof(m->st.why)];
		snprintf(note, sizeof(note), "it served wrong bytes: %s", why);
		if (!m->st.dropped && mirrors_drop(f->mirrors, f->state[job].mirror, note))
			slotsync_log_warning("mirror %s dropped: %s; its objects are asked of the next mirror", m->url, note);
		return job_move(f, job, MIRROR_ANSWER_REFUSED, err);
	}
	return job_retry(f, job, NULL, 0, why, err);
}

static double deadline_in(struct timespec *ts, double seconds)
{
	double t = clock_now_s() + seconds;

	ts->tv_sec = (time_t)t;
	ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
	return t;
}

/* The consumer: runs done() on each queued body and tick() about once a
 * second, and posts the verdicts. */
static void *consumer_run(void *arg)
{
	struct fetcher *f = arg;
	struct consumer *c = &f->c;
	double next_tick = clock_now_s() + 1.0;

	pthread_setname_np(pthread_self(), "slotsync-write"); /* as top -H shows it */
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct verdict v = { 0 };
		int post = 0, mirror = -1;

		while (c->q_len == 0 && !c->stop && clock_now_s() < next_tick) {
			struct timespec ts;
			deadline_in(&ts, next_tick - clock_now_s());
			pthread_cond_timedwait(&c->work, &c->lock, &ts);
		}
		if (c->q_len > 0) {
			struct body b = c->queue[c->q_head];
			c->q_head = (c->q_head + 1) % f->n_bufs;
			c->q_len--;
			pthread_mutex_unlock(&c->lock);
			v.job = b.job;
			mirror = b.mirror;
			v.r = c->failed ? 0 : f->done(f->userdata, b.job, b.buf, b.len, &v.err);
			pthread_mutex_lock(&c->lock);
			c->free_bufs[c->n_free++] = b.buf;
			pthread_cond_signal(&c->freed);
			post = !c->failed;
		} else if (c->stop) {
			break;
		} else {
			pthread_mutex_unlock(&c->lock);
			v.job = SIZE_MAX;
			v.r = f->tick && !c->failed ? f->tick(f->userdata, &v.err) : 0;
			pthread_mutex_lock(&c->lock);
			next_tick = clock_now_s() + 1.0;
			post = v.r < 0 && !c->failed;
		}
		if (post && v.r == 0) {
			c->n_accepted++;
			if (f->mirrors && mirror >= 0)
				f->mirrors->m[mirror].st.objects++;
			if (c->accepted_map) {
				c->accepted_map[v.job] = 1;
				while (c->low < f->n_jobs && c->accepted_map[c->low])
					c->low++;
			}
		} else if (post) {
			if (c->n_verdicts == c->cap_verdicts) {
				size_t cap = c->cap_verdicts ? c->cap_verdicts * 2 : 16;
				struct verdict *nv = realloc(c->verdicts, cap * sizeof(*nv));
				if (!nv) {
					v.r = slotsync_error_set(&v.err, -ENOMEM, "out of memory");
					c->n_verdicts = 0; /* room for this one: the run ends on it */
				} else {
					c->verdicts = nv;
					c->cap_verdicts = cap;
				}
			}
			if (v.r != -EAGAIN && v.r != SLOTSYNC_FETCH_WRONG)
				c->failed = 1;
			c->verdicts[c->n_verdicts++] = v;
		}
		/* the transfer loop looks at verdicts whenever the network wakes it;
		 * it needs waking only when it waits for nothing else, or to retry */
		if (post && (c->loop_idle || v.r != 0))
			curl_multi_wakeup(f->multi);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int consumer_start(struct fetcher *f, struct slotsync_error *err)
{
	struct consumer *c = &f->c;
	pthread_condattr_t attr;

	c->queue = calloc(f->n_bufs, sizeof(*c->queue));
	if (f->opt->window && !(c->accepted_map = calloc(f->n_jobs, 1)))
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	c->free_bufs = calloc(f->n_bufs, sizeof(*c->free_bufs));
	c->cap_verdicts = 16;
	c->verdicts = calloc(c->cap_verdicts, sizeof(*c->verdicts));
	if (!c->queue || !c->free_bufs || !c->verdicts)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->work, &attr);
	pthread_cond_init(&c->freed, NULL);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&c->th, NULL, consumer_run, f) != 0)
		return slotsync_error_set(err, -EAGAIN, "cannot start the thread that consumes downloads");
	c->running = 1;
	return 0;
}

/* Lets the consumer finish what is queued, then joins it. */
static void consumer_stop(struct fetcher *f)
{
	struct consumer *c = &f->c;

	if (!c->running)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->th, NULL);
	c->running = 0;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->freed);
}

/* Hands the body of stream s to the consumer and gives s a free buffer.  The
 * consumer is woken by consumer_kick(), once for all the bodies that one turn
 * of the transfer loop finished, or here when the pool is empty. */
static void consumer_give(struct fetcher *f, struct stream *s)
{
	struct consumer *c = &f->c;

	pthread_mutex_lock(&c->lock);
	while (c->n_free == 0) {
		pthread_cond_signal(&c->work);
		pthread_cond_wait(&c->freed, &c->lock);
	}
	c->queue[(c->q_head + c->q_len) % f->n_bufs] = (struct body){ s->job, s->buf, s->len, s->mirror };
	c->q_len++;
	s->buf = c->free_bufs[--c->n_free];
	pthread_mutex_unlock(&c->lock);
}

static void consumer_kick(struct fetcher *f)
{
	pthread_mutex_lock(&f->c.lock);
	if (f->c.q_len)
		pthread_cond_signal(&f->c.work);
	pthread_mutex_unlock(&f->c.lock);
}

static void consumer_set_idle(struct fetcher *f, int idle)
{
	pthread_mutex_lock(&f->c.lock);
	f->c.loop_idle = idle;
	pthread_mutex_unlock(&f->c.lock);
}

/* Reads the consumer's verdicts: accepted bodies are counted, refused ones
 * scheduled again; a failure ends the run. */
static int consumer_verdicts(struct fetcher *f, size_t *accepted, struct slotsync_error *err)
{
	struct consumer *c = &f->c;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	*accepted = c->n_accepted;
	while (r == 0 && c->n_verdicts > 0) {
		struct verdict v = c->verdicts[--c->n_verdicts];
		pthread_mutex_unlock(&c->lock);
		if (v.r == -EAGAIN) {
			r = job_refused(f, v.job, slotsync_error_message(&v.err), err);
			if (r < 0)
				r = job_failed(f, v.job, r, err);
		} else if (v.r == SLOTSYNC_FETCH_WRONG) {
			/* wrong for good where it came from: the next mirror, or the end */
			if (job_can_move(f, v.job)) {
				r = job_refused(f, v.job, slotsync_error_message(&v.err), err);
			} else {
				if (f->mirrors && mirror_answers_add(&f->answers, v.job, f->state[v.job].mirror,
								     MIRROR_ANSWER_REFUSED) < 0)
					v.r = slotsync_error_set(&v.err, -ENOMEM, "out of memory");
				else
					v.r = -EBADMSG;
				*err = v.err;
				r = job_failed(f, v.job, v.r, err);
			}
		} else {
			*err = v.err;
			r = v.r;
		}
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* A transfer ended: hand the body to the caller or schedule a retry. */
static int stream_finished(struct fetcher *f, struct stream *s, CURLcode res, struct slotsync_error *err)
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
	if (f->mirrors)
		f->mirrors->m[s->mirror].st.connections += conns;
	if (version == CURL_HTTP_VERSION_2_0)
		f->stats->http_version = 2;
	else if (version)
		f->stats->http_version = 1;

	if (s->error_cut)
		res = CURLE_OK; /* we cut it: judged by its status below */
	if (s->overflow) {
		r = job_refused(f, job, "response larger than the chunk can be (cut off)", err);
	} else if (res == CURLE_FILE_COULDNT_READ_FILE) {
		/* a local store without the file: as a 404 */
		r = slotsync_error_set(err, -ENOENT, "%s: not found (or not readable)", s->url);
	} else if (res != CURLE_OK) {
		if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
		    res == CURLE_SSL_CERTPROBLEM || res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT) {
			r = slotsync_error_set(err, -EPERM, "%s: %s", s->url, s->error[0] ? s->error : curl_easy_strerror(res));
		} else if ((res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST) && job_can_move(f, job)) {
			r = job_move(f, job, -(long)res, err); /* a mirror that is down */
		} else if (res == CURLE_RANGE_ERROR) {
			/* the server does not do ranges: the next attempt starts over */
			r = job_retry(f, job, NULL, 0, "the server ignores Range requests; fetching the whole chunk again",
				      err);
		} else {
			snprintf(why, sizeof(why), "%s", s->error[0] ? s->error : curl_easy_strerror(res));
			/* keep what arrived: the next attempt asks for the rest */
			r = job_retry(f, job, s->buf, code == 200 || code == 206 ? s->len : 0, why, err);
		}
	} else if (s->is_file) {
		consumer_give(f, s);
		r = 0;
	} else if (code == 404 || code == 410 || (code == 403 && f->mirrors && f->mirrors->n > 1)) {
		/* among mirrors a 403 is what S3 answers for a key it does not have */
		r = slotsync_error_set(err, -ENOENT, "%s: not found (HTTP %ld)", s->url, code);
	} else if (code >= 400 && code < 500 && code != 408 && code != 429) {
		/* the server refuses this request as such: asking again will not help */
		r = slotsync_error_set(err, -EACCES, "%s: refused by the server (HTTP %ld)%s", s->url, code,
				       (code == 400 || code == 401 || code == 403) && !f->opt->client_cert
					       ? "; does the server require a client certificate (--client-cert)?"
					       : "");
	} else if (code != 200 && code != 206) {
		if (s->error_cut)
			snprintf(why, sizeof(why), "HTTP %ld (its body cut off after %zu bytes)", code, s->error_len);
		else
			snprintf(why, sizeof(why), "HTTP %ld", code);
		r = job_can_move(f, job) ? job_move(f, job, code, err) : job_retry(f, job, NULL, 0, why, err);
	} else {
		/* the consumer's verdict comes back through consumer_verdicts() */
		consumer_give(f, s);
		r = 0;
	}
	/* what this mirror could not serve, the next one may */
	if (r < 0 && r != -ENOMEM && job_can_move(f, job))
		r = job_move(f, job, s->is_file || res != CURLE_OK ? -(long)res : code, err);
	else if (r < 0)
		r = job_failed(f, job, r, err);
	s->job = SIZE_MAX;
	return r;
}

/* Starts what may start on idle streams: retries whose time has come first,
 * then new jobs in order.  Lowers *wait_ms to the time until the next retry. */
static int start_ready(struct fetcher *f, int *active, long *wait_ms, struct slotsync_error *err)
{
	double t = clock_now_s(), rate = (double)f->opt->max_rate_bps;
	size_t limit = f->n_jobs;

	if (f->opt->window) {
		pthread_mutex_lock(&f->c.lock);
		if (f->c.low + f->opt->window < limit)
			limit = f->c.low + f->opt->window;
		pthread_mutex_unlock(&f->c.lock);
	}

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
		if (r == 1 && f->next_job < limit)
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
	int r = 0, active = 0;

	memset(stats, 0, sizeof(*stats));
	if (n_jobs == 0)
		return tick ? tick(userdata, err) : 0;
	if (!opt->base_url && !slotsync_mirrors_count(opt->mirrors))
		return slotsync_error_set(err, -EINVAL, "%zu chunks must be fetched but no store URL was given", n_jobs);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return slotsync_error_set(err, -EIO, "cannot initialize libcurl");
	f.opt = opt;
	f.n_jobs = n_jobs;
	f.describe = describe;
	f.done = done;
	f.tick = tick;
	f.userdata = userdata;
	f.stats = stats;
	f.mirrors = slotsync_mirrors_count(opt->mirrors) ? opt->mirrors : NULL;
	f.seed = (unsigned int)(clock_now_s() * 1e6);
	f.refilled_at = clock_now_s();
	f.n_streams = opt->concurrency > 0 ? opt->concurrency : SLOTSYNC_FETCH_CONCURRENCY_DEFAULT;
	if (f.n_streams > MAX_CONCURRENCY)
		f.n_streams = MAX_CONCURRENCY;
	if ((size_t)f.n_streams > n_jobs)
		f.n_streams = (int)n_jobs;
	f.min_rate = effective_min_rate(opt, f.n_streams);
	f.n_bufs = (size_t)f.n_streams + QUEUE_EXTRA;
	f.state = calloc(n_jobs, sizeof(*f.state));
	f.streams = calloc((size_t)f.n_streams, sizeof(*f.streams));
	f.bufs = calloc(f.n_bufs, sizeof(*f.bufs));
	/* a mirror set's multi handle outlives the run, and so do its connections */
	f.multi = f.mirrors ? f.mirrors->multi : curl_multi_init();
	if (!f.state || !f.streams || !f.bufs || !f.multi) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	curl_multi_setopt(f.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* one connection: all streams share it */
	curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(f.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)f.n_streams);
	for (size_t i = 0; i < f.n_bufs; i++) {
		f.bufs[i] = malloc(max_body ? max_body : 1);
		if (!f.bufs[i]) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	r = consumer_start(&f, err);
	if (r < 0)
		goto out;
	/* one buffer per stream, the rest free for the consumer's queue */
	for (size_t i = (size_t)f.n_streams; i < f.n_bufs; i++)
		f.c.free_bufs[f.c.n_free++] = f.bufs[i];
	for (int i = 0; i < f.n_streams; i++) {
		f.streams[i].job = SIZE_MAX;
		f.streams[i].buf = f.bufs[i];
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
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			r = stream_finished(&f, s, msg->data.result, err);
			active--;
			if (r < 0)
				goto out;
		}
		consumer_kick(&f);
		r = consumer_verdicts(&f, &accepted, err);
		if (r < 0)
			goto out;
		/* streams that just finished take the next jobs before we wait */
		r = start_ready(&f, &active, &wait_ms, err);
		if (r < 0)
			goto out;
		if (accepted < n_jobs) {
			CURLMcode mc;
			if (active == 0) {
				/* nothing on the wire: wait for the consumer, but first see
				 * whether it spoke since we last looked */
				consumer_set_idle(&f, 1);
				r = consumer_verdicts(&f, &accepted, err);
				if (r < 0 || accepted == n_jobs) {
					consumer_set_idle(&f, 0);
					if (r < 0)
						goto out;
					continue;
				}
			}
			mc = curl_multi_poll(f.multi, NULL, 0, (int)(wait_ms < 100 ? wait_ms : 100), NULL);
			if (active == 0)
				consumer_set_idle(&f, 0);
			if (mc != CURLM_OK) {
				r = slotsync_error_set(err, -EIO, "transfer engine failed");
				goto out;
			}
		}
	}
out:
	/* bodies already received are still worth keeping: the consumer finishes
	 * its queue before the run ends, whatever ended it */
	consumer_stop(&f);
	if (r == 0 && tick)
		r = tick(userdata, err);
	for (int i = 0; f.streams && i < f.n_streams; i++) {
		if (f.streams[i].easy) {
			if (f.streams[i].job != SIZE_MAX)
				curl_multi_remove_handle(f.multi, f.streams[i].easy);
			curl_easy_cleanup(f.streams[i].easy);
		}
	}
	for (size_t i = 0; f.bufs && i < f.n_bufs; i++)
		free(f.bufs[i]);
	for (size_t k = 0; k < f.n_retries; k++)
		free(f.retries[k].partial);
	if (f.multi && !f.mirrors)
		curl_multi_cleanup(f.multi);
	mirror_answers_free(&f.answers);
	free(f.c.queue);
	free(f.c.accepted_map);
	free(f.c.free_bufs);
	free(f.c.verdicts);
	free(f.bufs);
	free(f.retries);
	free(f.streams);
	free(f.state);
	return r;
}
