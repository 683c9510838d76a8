/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* FastCDC-style normalized chunking: see include/slotsync/chunker.h.
 *
 * The gear hash is h = (h << 1) + G[byte].  After 64 steps a byte's contribution
 * has been shifted out, so h depends on the last 64 bytes only; its top k bits
 * depend on all of them.  A cut is tested with the top k bits: k = log2(avg) + 1
 * before avg bytes, log2(avg) - 1 after (normalization level 1 of the paper).
 * Level 1 was chosen by measurement: on a real Debian security update it
 * downloads 3-4% less than level 2 and less than casync's chunker
 * (docs/benchmarks.md).
 *
 * Hashing starts WINDOW bytes before min, so that at every position where a cut
 * may fall the hash covers a full window: the cut depends on window content and
 * on the distance from the previous cut only.  The bytes before that are skipped
 * without being read ("cut-point skipping"), which is where much of FastCDC's
 * speed comes from.  The gear table is generated from a fixed seed: it is part of
 * the format, since it decides where chunks end.
 */
#include "slotsync/chunker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include "io.h"

#define WINDOW 64u
#define NORMALIZATION 1u  /* mask bits added below avg, removed above */

struct slotsync_chunker {
	struct slotsync_chunker_params p;
	uint64_t mask_small;  /* before avg: harder to cut */
	uint64_t mask_large;  /* from avg on: easier to cut */
	uint32_t hash_start;  /* position at which hashing begins */
	uint32_t pos;         /* bytes of the current chunk seen */
	uint64_t hash;
};

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void gear_init(void)
{
	/* splitmix64 from a fixed seed: the table is fixed forever. */
	uint64_t x = UINT64_C(0x736c6f7473796e63);

	for (int i = 0; i < 256; i++) {
		uint64_t z = (x += UINT64_C(0x9e3779b97f4a7c15));
		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		gear[i] = z ^ (z >> 31);
	}
}

struct slotsync_chunker_params slotsync_chunker_params_default(void)
{
	struct slotsync_chunker_params p = {
		.min_bytes = SLOTSYNC_CHUNK_MIN_DEFAULT,
		.avg_bytes = SLOTSYNC_CHUNK_AVG_DEFAULT,
		.max_bytes = SLOTSYNC_CHUNK_MAX_DEFAULT,
	};
	return p;
}

int slotsync_chunker_params_check(const struct slotsync_chunker_params *p, struct slotsync_error *err)
{
	if (p->min_bytes < SLOTSYNC_CHUNK_SIZE_LIMIT_MIN || p->max_bytes > SLOTSYNC_CHUNK_SIZE_LIMIT_MAX)
		return slotsync_error_set(err, -EINVAL,
					  "chunk sizes %u:%u:%u outside the limits %u..%u bytes", p->min_bytes,
					  p->avg_bytes, p->max_bytes, SLOTSYNC_CHUNK_SIZE_LIMIT_MIN,
					  SLOTSYNC_CHUNK_SIZE_LIMIT_MAX);
	if (!(p->min_bytes <= p->avg_bytes && p->avg_bytes <= p->max_bytes))
		return slotsync_error_set(err, -EINVAL, "chunk sizes %u:%u:%u must satisfy min <= avg <= max",
					  p->min_bytes, p->avg_bytes, p->max_bytes);
	if (p->avg_bytes < 4 * WINDOW)
		return slotsync_error_set(err, -EINVAL, "average chunk size %u is below %u bytes", p->avg_bytes,
					  4 * WINDOW);
	return 0;
}

static int parse_size(const char *s, const char *end, uint32_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *q = s;

	if (q == end)
		return -EINVAL;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		v = v * 10 + (uint64_t)(*q - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	if (q == s)
		return -EINVAL;
	if (q < end) {
		if (*q == 'k' || *q == 'K')
			mult = 1024;
		else if (*q == 'm' || *q == 'M')
			mult = 1024 * 1024;
		else
			return -EINVAL;
		q++;
	}
	if (q != end || v * mult > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)(v * mult);
	return 0;
}

int slotsync_chunker_params_parse(const char *text, struct slotsync_chunker_params *p, struct slotsync_error *err)
{
	const char *a = strchr(text, ':');
	const char *b = a ? strchr(a + 1, ':') : NULL;
	struct slotsync_chunker_params q;

	if (!a || !b || strchr(b + 1, ':') || parse_size(text, a, &q.min_bytes) < 0 ||
	    parse_size(a + 1, b, &q.avg_bytes) < 0 || parse_size(b + 1, b + 1 + strlen(b + 1), &q.max_bytes) < 0)
		return slotsync_error_set(err, -EINVAL, "chunk sizes \"%s\" are not MIN:AVG:MAX (e.g. 4K:16K:64K)", text);
	if (slotsync_chunker_params_check(&q, err) < 0)
		return -EINVAL;
	*p = q;
	return 0;
}

static unsigned log2_round(uint32_t v)
{
	unsigned bits = 0;

	while ((UINT64_C(1) << (bits + 1)) <= v)
		bits++;
	/* round to nearest: v >= 1.5 * 2^bits rounds up */
	if ((uint64_t)v * 2 >= (UINT64_C(3) << bits))
		bits++;
	return bits;
}

static uint64_t top_bits(unsigned k)
{
	if (k == 0)
		return 0;
	if (k >= 64)
		return UINT64_MAX;
	return ~UINT64_C(0) << (64 - k);
}

struct slotsync_chunker *slotsync_chunker_new(const struct slotsync_chunker_params *p, struct slotsync_error *err)
{
	struct slotsync_chunker *c;
	unsigned bits;

	if (slotsync_chunker_params_check(p, err) < 0)
		return NULL;
	pthread_once(&gear_once, gear_init);
	c = calloc(1, sizeof(*c));
	if (!c) {
		slotsync_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	c->p = *p;
	bits = log2_round(p->avg_bytes);
	c->mask_small = top_bits(bits + NORMALIZATION);
	c->mask_large = top_bits(bits - NORMALIZATION);
	c->hash_start = p->min_bytes > WINDOW ? p->min_bytes - WINDOW : 0;
	return c;
}

void slotsync_chunker_free(struct slotsync_chunker *c)
{
	free(c);
}

void slotsync_chunker_reset(struct slotsync_chunker *c)
{
	c->pos = 0;
	c->hash = 0;
}

size_t slotsync_chunker_pending(const struct slotsync_chunker *c)
{
	return c->pos;
}

/* Positions are counted as "chunk length after this byte" (pos + 1). */
size_t slotsync_chunker_scan(struct slotsync_chunker *c, const uint8_t *buf, size_t len)
{
	const uint32_t min = c->p.min_bytes, avg = c->p.avg_bytes, max = c->p.max_bytes;
	uint64_t h = c->hash;
	uint32_t pos = c->pos;
	size_t i = 0, n;

	/* 1. skip to where hashing starts */
	if (pos < c->hash_start) {
		n = c->hash_start - pos;
		if (n >= len) {
			c->pos = pos + (uint32_t)len;
			return SIZE_MAX;
		}
		i = n;
		pos = c->hash_start;
	}
	/* 2. fill the window: no cut may fall before min */
	if (pos + 1 < min) {
		n = min - 1 - pos;
		if (n > len - i)
			n = len - i;
		for (size_t end = i + n; i < end; i++)
			h = (h << 1) + gear[buf[i]];
		pos += (uint32_t)n;
		if (i == len)
			goto no_cut;
	}
	/* 3. between min and avg: the harder mask */
	if (pos + 1 < avg) {
		const uint64_t m = c->mask_small;
		n = avg - 1 - pos;
		if (n > len - i)
			n = len - i;
		for (size_t end = i + n; i < end; i++) {
			h = (h << 1) + gear[buf[i]];
			if (!(h & m))
				goto cut;
		}
		pos += (uint32_t)n;
		if (i == len)
			goto no_cut;
	}
	/* 4. from avg to max: the easier mask; forced cut at max */
	{
		const uint64_t m = c->mask_large;
		n = max - pos;
		if (n > len - i) {
			n = len - i;
			for (size_t end = i + n; i < end; i++) {
				h = (h << 1) + gear[buf[i]];
				if (!(h & m))
					goto cut;
			}
			pos += (uint32_t)n;
			goto no_cut;
		}
		for (size_t end = i + n - 1; i < end; i++) {
			h = (h << 1) + gear[buf[i]];
			if (!(h & m))
				goto cut;
		}
		i++; /* the max-th byte ends the chunk whatever its hash */
		c->pos = 0;
		c->hash = 0;
		return i;
	}
cut:
	c->pos = 0;
	c->hash = 0;
	return i + 1;
no_cut:
	c->pos = pos;
	c->hash = h;
	return SIZE_MAX;
}

#define STREAM_READ_BLOCK (4u << 20)

/* The buffer holds [base, base + have) of the stream; [start, scanned) is the
 * unfinished chunk.  A chunk is at most max bytes, so after moving it to the front
 * there is always room for a whole read block behind it. */
int slotsync_chunker_stream_fd(const struct slotsync_chunker_params *p, int fd, const char *what, slotsync_chunk_cb cb,
			       void *userdata, struct slotsync_error *err)
{
	struct slotsync_chunker *ch;
	size_t cap = p->max_bytes + STREAM_READ_BLOCK;
	size_t have = 0, start = 0, scanned = 0;
	uint64_t base = 0;
	uint8_t *buf = NULL;
	int eof = 0, r = 0;

	ch = slotsync_chunker_new(p, err);
	if (!ch)
		return -EINVAL;
	buf = malloc(cap);
	if (!buf) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		size_t n;

		if (!eof && have < cap) {
			ssize_t got = io_read_full(fd, buf + have, cap - have);
			if (got < 0) {
				r = slotsync_error_set_errno(err, (int)got, "cannot read %s", what);
				goto out;
			}
			eof = (size_t)got < cap - have;
			have += (size_t)got;
		}
		n = slotsync_chunker_scan(ch, buf + scanned, have - scanned);
		if (n == SIZE_MAX) {
			if (!eof) {
				memmove(buf, buf + start, have - start);
				base += start;
				have -= start;
				start = 0;
				scanned = have;
				continue;
			}
			n = have - scanned; /* the last chunk: whatever remains */
			slotsync_chunker_reset(ch);
		}
		scanned += n;
		if (scanned == start)
			break; /* end of stream */
		r = cb(buf + start, scanned - start, base + start, userdata);
		if (r < 0)
			goto out;
		start = scanned;
	}
out:
	slotsync_chunker_free(ch);
	free(buf);
	return r;
}
