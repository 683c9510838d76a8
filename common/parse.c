/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See parse.h. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Leading digits of s as an unsigned number; *end after them.  No sign, no
 * space. */
static int leading_u64(const char *s, char **end, uint64_t *out)
{
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || *end == s)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	uint64_t v;
	int r = leading_u64(s, &end, &v);

	if (r < 0)
		return r;
	if (*end)
		return -EINVAL;
	if (v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_int(const char *s, int lo, int hi, int *out)
{
	uint64_t v;
	int neg = s && *s == '-';
	int r = parse_u64(neg ? s + 1 : s, 0, (uint64_t)1 << 31, &v);

	if (r < 0)
		return r;
	if (neg ? -(int64_t)v < lo : (int64_t)v > hi)
		return -ERANGE;
	if (neg ? -(int64_t)v > hi : (int64_t)v < lo)
		return -ERANGE;
	*out = (int)(neg ? -(int64_t)v : (int64_t)v);
	return 0;
}

/* A whole number with an optional one-letter unit from units (multipliers in
 * muls). */
static int parse_unit(const char *s, const char *units, const uint64_t *muls, uint64_t *out)
{
	const char *u;
	char *end;
	uint64_t v, mul = 1;
	int r = leading_u64(s, &end, &v);

	if (r < 0)
		return r;
	if (*end) {
		if (end[1] || !(u = strchr(units, *end)))
			return -EINVAL;
		mul = muls[u - units];
	}
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const uint64_t muls[] = { 1ull << 10, 1ull << 10, 1ull << 20, 1ull << 20, 1ull << 30, 1ull << 30 };
	return parse_unit(s, "kKmMgG", muls, out);
}

int parse_duration_s(const char *s, uint64_t *out)
{
	static const uint64_t muls[] = { 1, 60, 3600, 86400 };
	return parse_unit(s, "smhd", muls, out);
}

int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1"))
		*out = 1;
	else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

int parse_url(const char *url, int allow_plain_http)
{
	const char *sep = strstr(url, "://");

	if (url[0] == '/')
		return 0; /* a local path */
	if (!sep || sep == url)
		return -EINVAL;
	for (const char *p = url; p < sep; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
			return -EINVAL;
	if (!strncmp(url, "file://", 7))
		return 0;
	if (!sep[3])
		return -EINVAL;
	if (!strncmp(url, "https://", 8))
		return 0;
	if (!strncmp(url, "http://", 7))
		return allow_plain_http ? 0 : -EPERM;
	return -EPROTONOSUPPORT;
}

int parse_url_ref(const char *ref)
{
	const char *slash = strchr(ref, '/');
	const char *dot = strchr(ref, '.');

	if (strstr(ref, "://"))
		return parse_url(ref, 1);
	if (!ref[0])
		return -EINVAL;
	/* "cdn.example.com/x": a host name without its scheme, not a folder */
	if (slash && dot && dot < slash && ref[0] != '.')
		return -EINVAL;
	return 0;
}

const char *parse_url_problem(int r)
{
	switch (r) {
	case -EPERM:
		return "plain http:// is refused (content stays checked, but what is fetched is visible to anyone on the "
		       "path): use https://, or allow it on purpose (allow-plain-http = yes in [update]; "
		       "--allow-plain-http for assemble)";
	case -EPROTONOSUPPORT:
		return "an unsupported scheme (https://, http://, file:// or a local path)";
	default:
		return "no scheme: write https://HOST/... (curl would otherwise guess plain http)";
	}
}
