/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A store's mirrors: see include/slotsync/mirrors.h.  The set holds the
 * mirrors' URLs and figures and the libcurl multi handle whose connection
 * cache outlives each run; the fetcher (fetch.c) moves objects between the
 * mirrors and fills the figures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirrors_internal.h"
#include "slotsync/fetch.h"

int slotsync_mirrors_new(struct slotsync_mirrors **out, struct slotsync_error *err)
{
	struct slotsync_mirrors *m;

	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return slotsync_error_set(err, -EIO, "cannot initialize libcurl");
	m = calloc(1, sizeof(*m));
	if (!m || !(m->multi = curl_multi_init())) {
		free(m);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	*out = m;
	return 0;
}

int slotsync_mirrors_add(struct slotsync_mirrors *m, const char *location, struct slotsync_error *err)
{
	char url[sizeof(m->m[0].url)];
	int r = slotsync_fetch_store_url(location, url, sizeof(url), err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->m[i].url, url))
			return 0;
	if (m->n == SLOTSYNC_MIRRORS_MAX)
		return slotsync_error_set(err, -E2BIG, "%s: more than %d mirrors", location, SLOTSYNC_MIRRORS_MAX);
	memcpy(m->m[m->n].url, url, sizeof(url));
	m->m[m->n].st.url = m->m[m->n].url;
	m->n++;
	return 0;
}

void slotsync_mirrors_free(struct slotsync_mirrors *m)
{
	if (!m)
		return;
	if (m->multi)
		curl_multi_cleanup(m->multi);
	free(m);
}

size_t slotsync_mirrors_count(const struct slotsync_mirrors *m)
{
	return m ? m->n : 0;
}

const struct slotsync_mirror_stats *slotsync_mirrors_stats(const struct slotsync_mirrors *m, size_t i)
{
	return i < m->n ? &m->m[i].st : NULL;
}

int mirrors_next(const struct slotsync_mirrors *m, int from)
{
	for (size_t i = (size_t)(from + 1); i < m->n; i++)
		if (!m->m[i].st.dropped)
			return (int)i;
	return -1;
}

int mirrors_drop(struct slotsync_mirrors *m, int i, const char *why)
{
	int left = 0;

	if (m->m[i].st.dropped)
		return 1;
	for (size_t k = 0; k < m->n; k++)
		left += !m->m[k].st.dropped;
	if (left < 2)
		return 0;
	m->m[i].st.dropped = 1;
	snprintf(m->m[i].st.why, sizeof(m->m[i].st.why), "%s", why);
	return 1;
}

int mirror_answers_add(struct mirror_answers *l, size_t job, int mirror, long code)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct mirror_answer *a = realloc(l->a, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n++] = (struct mirror_answer){ job, mirror, code };
	return 0;
}

void mirror_answers_describe(const struct mirror_answers *l, const struct slotsync_mirrors *m, size_t job, char *out,
			     size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < l->n && n < cap; i++) {
		const struct mirror_answer *a = &l->a[i];
		char what[128];
		if (a->job != job)
			continue;
		if (a->code == MIRROR_ANSWER_REFUSED)
			snprintf(what, sizeof(what), "wrong bytes");
		else if (a->code < 0)
			snprintf(what, sizeof(what), "%s", curl_easy_strerror((CURLcode)-a->code));
		else
			snprintf(what, sizeof(what), "HTTP %ld", a->code);
		n += (size_t)snprintf(out + n, cap - n, "%s%s: %s", n ? "; " : "", m->m[a->mirror].url, what);
	}
}

void mirror_answers_free(struct mirror_answers *l)
{
	free(l->a);
	l->a = NULL;
	l->n = l->cap = 0;
}
