/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mirror set's insides, for the fetcher (fetch.c): the mirrors, their
 * figures and the multi handle they share, and the log of what each mirror
 * answered for the objects it did not serve.  Private to engine/fetch. */
#ifndef SLOTSYNC_FETCH_MIRRORS_INTERNAL_H
#define SLOTSYNC_FETCH_MIRRORS_INTERNAL_H

#include <curl/curl.h>
#include <stddef.h>

#include "slotsync/mirrors.h"

struct mirror {
	char url[2048];         /* fetch.c asks for url/path */
	struct slotsync_mirror_stats st;
};

struct slotsync_mirrors {
	struct mirror m[SLOTSYNC_MIRRORS_MAX];
	size_t n;
	CURLM *multi;           /* kept for the set's life: its connections are reused */
};

/* The first mirror after `from` (-1: from the start) that is not dropped;
 * -1 when there is none. */
int mirrors_next(const struct slotsync_mirrors *m, int from);

/* Drops mirror i, unless it is the last one left; 1 when it was dropped
 * (now or before). */
int mirrors_drop(struct slotsync_mirrors *m, int i, const char *why);

/* What a mirror answered for an object it did not serve. */
#define MIRROR_ANSWER_REFUSED 0L   /* a body the caller refused (wrong bytes) */
struct mirror_answer {
	size_t job;
	int mirror;
	long code;              /* HTTP status; < 0: -CURLcode; MIRROR_ANSWER_REFUSED */
};

struct mirror_answers {
	struct mirror_answer *a;
	size_t n, cap;
};

/* Logs an answer: 0 or -ENOMEM. */
int mirror_answers_add(struct mirror_answers *l, size_t job, int mirror, long code);

/* "URL: HTTP 404; URL: HTTP 503" for job's answers, into out[cap]; "" if none. */
void mirror_answers_describe(const struct mirror_answers *l, const struct slotsync_mirrors *m, size_t job, char *out,
			     size_t cap);

void mirror_answers_free(struct mirror_answers *l);

#endif
