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
