/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An S3-compatible bucket as publish's DEST (AWS S3, Ceph's radosgw, MinIO...).
 *
 * Configuration comes as the AWS tools take it: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the profile AWS_PROFILE
 * (or "default") of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
 * else ~/.aws/credentials); the region from AWS_REGION, AWS_DEFAULT_REGION,
 * else us-east-1; a custom endpoint from AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL, addressed path-style (ENDPOINT/BUCKET/KEY), else AWS's own
 * (https://BUCKET.s3.REGION.amazonaws.com/KEY); AWS_CA_BUNDLE, a CA file.
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4).
 *
 * What the bucket holds is learnt once, from a ListObjectsV2 listing of the
 * prefix: a thousand keys per request, where a HEAD per file would cost a
 * request for each of a store's thousands of chunks.  Each PUT carries the
 * SHA-256 of its body (x-amz-content-sha256), which the server checks, and
 * the file's Content-Type and Cache-Control.  A PUT is atomic: an upload cut
 * short leaves no object, so a rerun sends what is missing and nothing else.
 * Uploads run through one curl multi handle, up to jobs at once, over one
 * HTTP/2 connection or a few reused HTTP/1.1 ones. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "gen_dl.h"
#include "parse.h"
#include "publish.h"
#include "slotsync/digest.h"
#include "slotsync/log.h"

/* libcurl, loaded by s3_dest_open before any other use */
static const struct gen_curl *curl;

#define S3_BODY_MAX (64u << 20)  /* a listing page or an error document */
#define S3_ATTEMPTS 3            /* a 5xx or a broken connection is tried again */

struct s3_object {
	char *key;        /* relative to the prefix */
	uint64_t size;
	char etag[64];    /* without its quotes */
};

struct s3_dest {
	char bucket[64], prefix[1024];
	char bucket_url[2048];  /* the bucket's URL, ending in '/' */
	char base[4096];        /* the prefix's URL, ending in '/' */
	char sigv4[128], *access_key, *secret_key, *token, *ca_file;
	struct s3_object *objects;
	size_t n_objects, cap_objects;
	int jobs;
	const char *url;
};

struct buf {
	char *p;
	size_t n;
};

static size_t buf_write(char *data, size_t size, size_t nmemb, void *user)
{
	struct buf *b = user;
	size_t len = size * nmemb;
	char *p;

	if (b->n + len + 1 > S3_BODY_MAX)
		return 0;
	p = realloc(b->p, b->n + len + 1);
	if (!p)
		return 0;
	memcpy(p + b->n, data, len);
	b->p = p;
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

/* The text of the first <tag>...</tag> in [s, end), entities decoded, into out. */
static const char *xml_text(const char *s, const char *end, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	const char *a, *b;
	size_t n = 0;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = strstr(s, open);
	if (!a || a >= end)
		return NULL;
	a += strlen(open);
	b = strstr(a, close);
	if (!b || b > end)
		return NULL;
	while (a < b && n + 1 < cap) {
		static const struct { const char *ent; char c; } ents[] = {
			{ "&quot;", '"' }, { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&apos;", '\'' },
		};
		size_t k;
		for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
			if (!strncmp(a, ents[k].ent, strlen(ents[k].ent)))
				break;
		if (k < sizeof(ents) / sizeof(ents[0])) {
			out[n++] = ents[k].c;
			a += strlen(ents[k].ent);
		} else {
			out[n++] = *a++;
		}
	}
	out[n] = '\0';
	return b + strlen(close);
}

/* "HTTP 403 SignatureDoesNotMatch: <message>", from an S3 error document. */
static void s3_error_text(long status, const struct buf *body, char *out, size_t cap)
{
	char code[128] = "", msg[512] = "";
	const char *end = body->p ? body->p + body->n : NULL;

	if (body->p) {
		xml_text(body->p, end, "Code", code, sizeof(code));
		xml_text(body->p, end, "Message", msg, sizeof(msg));
	}
	snprintf(out, cap, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
}

/* RFC 3986 percent-encoding as SigV4 wants it (only A-Z a-z 0-9 - . _ ~ kept). */
static void uri_encode(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 4 < cap; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s))
			out[n++] = *s;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*s);
	}
	out[n] = '\0';
}

static int file_value(const char *path, const char *section, const char *name, char **out)
{
	char line[1024], want[160];
	int in = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "[%s]", section);
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *e, *eq;
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*s == '[') {
			in = !strcmp(s, want);
			continue;
		}
		eq = strchr(s, '=');
		if (!in || !eq)
			continue;
		e = eq;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if ((size_t)(e - s) == strlen(name) && !strncmp(s, name, strlen(name))) {
			for (eq++; isspace((unsigned char)*eq); eq++)
				;
			free(*out);
			*out = strdup(eq);
		}
	}
	fclose(f);
	return 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

/* Credentials: the environment, else the shared credentials file's profile. */
static int s3_credentials(struct s3_dest *d, struct slotsync_error *err)
{
	const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	char path[4096];

	if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
		if (!env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY"))
			return slotsync_error_set(err, -EINVAL, "%s is set but %s is not: give both", env("AWS_ACCESS_KEY_ID") ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY", env("AWS_ACCESS_KEY_ID") ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		d->access_key = strdup(env("AWS_ACCESS_KEY_ID"));
		d->secret_key = strdup(env("AWS_SECRET_ACCESS_KEY"));
		d->token = env("AWS_SESSION_TOKEN") ? strdup(env("AWS_SESSION_TOKEN")) : NULL;
		return 0;
	}
	if (env("AWS_SHARED_CREDENTIALS_FILE"))
		snprintf(path, sizeof(path), "%s", env("AWS_SHARED_CREDENTIALS_FILE"));
	else
		snprintf(path, sizeof(path), "%s/.aws/credentials", env("HOME") ? env("HOME") : "");
	file_value(path, profile, "aws_access_key_id", &d->access_key);
	file_value(path, profile, "aws_secret_access_key", &d->secret_key);
	file_value(path, profile, "aws_session_token", &d->token);
	if (!d->access_key || !d->secret_key)
		return slotsync_error_set(err, -EINVAL,
					  "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
					  "aws_access_key_id and aws_secret_access_key in profile [%s] of %s "
					  "(AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)",
					  profile, path);
	return 0;
}

/* An easy handle for one signed request to url. */
static CURL *s3_easy(struct s3_dest *d, const char *url, struct curl_slist *headers, struct buf *body)
{
	CURL *c = curl->easy_init();

	if (!c)
		return NULL;
	curl->easy_setopt(c, CURLOPT_URL, url);
	curl->easy_setopt(c, CURLOPT_AWS_SIGV4, d->sigv4);
	curl->easy_setopt(c, CURLOPT_USERNAME, d->access_key);
	curl->easy_setopt(c, CURLOPT_PASSWORD, d->secret_key);
	curl->easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl->easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
	curl->easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);   /* a stalled transfer fails after a minute */
	curl->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	curl->easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
	if (d->ca_file)
		curl->easy_setopt(c, CURLOPT_CAINFO, d->ca_file);
	return c;
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value, int *ok)
{
	char line[2048];
	struct curl_slist *n;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	n = curl->slist_append(h, line);
	if (!n)
		*ok = 0;
	return n ? n : h;
}

static int s3_add_object(struct s3_dest *d, const char *key, uint64_t size, const char *etag)
{
	struct s3_object *o;
	size_t n;

	if (d->n_objects == d->cap_objects) {
		size_t cap = d->cap_objects ? d->cap_objects * 2 : 1024;
		o = realloc(d->objects, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		d->objects = o;
		d->cap_objects = cap;
	}
	o = &d->objects[d->n_objects];
	o->key = strdup(key);
	if (!o->key)
		return -ENOMEM;
	o->size = size;
	n = strlen(etag);
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
		snprintf(o->etag, sizeof(o->etag), "%.*s", (int)(n - 2), etag + 1);
	else
		snprintf(o->etag, sizeof(o->etag), "%s", etag);
	d->n_objects++;
	return 0;
}

static int cmp_object(const void *a, const void *b)
{
	return strcmp(((const struct s3_object *)a)->key, ((const struct s3_object *)b)->key);
}

/* ListObjectsV2 of the prefix, page by page, into d->objects (sorted). */
static int s3_list(struct s3_dest *d, struct slotsync_error *err)
{
	char token[1024] = "", enc_token[3200], enc_prefix[3200], url[12288], prefix[1100];
	int r = 0, ok = 1;
	struct curl_slist *h = add_header(NULL, "x-amz-content-sha256",
					  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &ok);

	if (d->token)
		h = add_header(h, "x-amz-security-token", d->token, &ok);
	if (!ok) {
		curl->slist_free_all(h);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	snprintf(prefix, sizeof(prefix), "%s%s", d->prefix, d->prefix[0] ? "/" : "");
	uri_encode(prefix, enc_prefix, sizeof(enc_prefix));
	do {
		struct buf body = { 0 };
		long status = 0;
		char more[16] = "", *end;
		const char *s;
		CURL *c;
		CURLcode cr;

		/* the query in SigV4's canonical order (sorted), each value encoded */
		uri_encode(token, enc_token, sizeof(enc_token));
		snprintf(url, sizeof(url), "%s?%s%s%slist-type=2&prefix=%s", d->bucket_url,
			 token[0] ? "continuation-token=" : "", enc_token, token[0] ? "&" : "", enc_prefix);
		c = s3_easy(d, url, h, &body);
		if (!c) {
			r = slotsync_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		cr = curl->easy_perform(c);
		curl->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl->easy_cleanup(c);
		if (cr != CURLE_OK) {
			r = slotsync_error_set(err, -EIO, "listing %s: %s", d->url, curl->easy_strerror(cr));
		} else if (status != 200) {
			char why[800];
			s3_error_text(status, &body, why, sizeof(why));
			r = slotsync_error_set(err, status == 403 ? -EACCES : status == 404 ? -ENOENT : -EIO,
					       "listing %s: the server said %s", d->url, why);
		}
		end = body.p ? body.p + body.n : NULL;
		for (s = body.p; r == 0 && s && (s = strstr(s, "<Contents>"));) {
			const char *stop = strstr(s, "</Contents>");
			char key[2048], size[32] = "", etag[64] = "";
			uint64_t sz = 0;
			if (!stop || !xml_text(s, stop, "Key", key, sizeof(key))) {
				r = slotsync_error_set(err, -EIO, "listing %s: the server's answer is no listing", d->url);
				break;
			}
			xml_text(s, stop, "Size", size, sizeof(size));
			xml_text(s, stop, "ETag", etag, sizeof(etag));
			parse_u64(size, 0, UINT64_MAX, &sz);
			if (!strncmp(key, prefix, strlen(prefix)) && s3_add_object(d, key + strlen(prefix), sz, etag) < 0)
				r = slotsync_error_set(err, -ENOMEM, "out of memory");
			s = stop;
		}
		token[0] = '\0';
		if (r == 0 && body.p && xml_text(body.p, end, "IsTruncated", more, sizeof(more)) && !strcmp(more, "true") &&
		    !xml_text(body.p, end, "NextContinuationToken", token, sizeof(token)))
			r = slotsync_error_set(err, -EIO, "listing %s: truncated, with no continuation token", d->url);
		free(body.p);
	} while (r == 0 && token[0]);
	curl->slist_free_all(h);
	if (r == 0 && d->n_objects)
		qsort(d->objects, d->n_objects, sizeof(*d->objects), cmp_object);
	return r;
}

int s3_dest_open(const char *url, int jobs, struct s3_dest **out, struct slotsync_error *err)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	const char *endpoint = env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3") : env("AWS_ENDPOINT_URL");
	const char *region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
	size_t blen = slash ? (size_t)(slash - b) : strlen(b);
	struct s3_dest *d;
	char *p;
	int r;

	*out = NULL;
	if (blen < 3 || blen > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") < blen)
		return slotsync_error_set(err, -EINVAL,
					  "--to %s: the bucket name must be 3 to 63 of a-z, 0-9, '.' and '-' "
					  "(s3://BUCKET/PREFIX)",
					  url);
	if (slash && strspn(slash + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") !=
			     strlen(slash + 1))
		return slotsync_error_set(err, -EINVAL,
					  "--to %s: the prefix may hold letters, digits, '.', '_', '-' and '/' only", url);
	if (endpoint && parse_url(endpoint, 1) < 0)
		return slotsync_error_set(err, -EINVAL, "the S3 endpoint %s (AWS_ENDPOINT_URL%s): %s", endpoint,
					  env("AWS_ENDPOINT_URL_S3") ? "_S3" : "", parse_url_problem(parse_url(endpoint, 1)));
	if (region && strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
		return slotsync_error_set(err, -EINVAL, "the region \"%s\" (AWS_REGION) is not a region's name", region);
	d = calloc(1, sizeof(*d));
	if (!d)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	d->url = url;
	d->jobs = jobs > 0 ? jobs : 8;
	snprintf(d->bucket, sizeof(d->bucket), "%.*s", (int)blen, b);
	snprintf(d->prefix, sizeof(d->prefix), "%s", slash ? slash + 1 : "");
	while ((p = strstr(d->prefix, "//")))
		memmove(p, p + 1, strlen(p));
	for (p = d->prefix + strlen(d->prefix); p > d->prefix && p[-1] == '/';)
		*--p = '\0';
	if (d->prefix[0] == '/')
		memmove(d->prefix, d->prefix + 1, strlen(d->prefix));
	snprintf(d->sigv4, sizeof(d->sigv4), "aws:amz:%s:s3", region ? region : "us-east-1");
	/* a custom endpoint path-style (what radosgw and MinIO take without DNS
	 * for each bucket), AWS itself virtual-hosted */
	if (endpoint)
		snprintf(d->bucket_url, sizeof(d->bucket_url), "%.*s/%s/",
			 (int)(strlen(endpoint) - (endpoint[strlen(endpoint) - 1] == '/')), endpoint, d->bucket);
	else
		snprintf(d->bucket_url, sizeof(d->bucket_url), "https://%s.s3.%s.amazonaws.com/", d->bucket,
			 region ? region : "us-east-1");
	snprintf(d->base, sizeof(d->base), "%s%s%s", d->bucket_url, d->prefix, d->prefix[0] ? "/" : "");
	curl = gen_curl(err);
	if (!curl) {
		s3_dest_free(d);
		return -ENOENT;
	}
	if (env("AWS_CA_BUNDLE"))
		d->ca_file = strdup(env("AWS_CA_BUNDLE"));
	r = s3_credentials(d, err);
	if (r == 0)
		r = s3_list(d, err);
	if (r < 0) {
		s3_dest_free(d);
		return r;
	}
	slotsync_log_info("publish: %s holds %zu objects under the prefix", url, d->n_objects);
	*out = d;
	return 0;
}

void s3_dest_free(struct s3_dest *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_objects; i++)
		free(d->objects[i].key);
	free(d->objects);
	free(d->access_key);
	free(d->secret_key);
	free(d->token);
	free(d->ca_file);
	free(d);
}

/* The MD5 of a file in hex: the ETag S3 gives an object sent in one PUT. */
static int file_md5_hex(const char *path, char hex[33])
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rbe");
	size_t n;
	int r = -EIO;

	if (ctx && f && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			EVP_DigestUpdate(ctx, buf, n);
		if (!ferror(f) && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 16) {
			for (unsigned int i = 0; i < 16; i++)
				snprintf(hex + 2 * i, 3, "%02x", md[i]);
			r = 0;
		}
	}
	if (f)
		fclose(f);
	EVP_MD_CTX_free(ctx);
	return r;
}

int s3_dest_has(struct s3_dest *d, const struct publish_file *f, struct slotsync_error *err)
{
	struct s3_object want = { .key = f->key }, *o;
	char md5[33];

	o = d->n_objects ? bsearch(&want, d->objects, d->n_objects, sizeof(*d->objects), cmp_object) : NULL;
	if (!o)
		return 0;
	if (f->content_addressed)
		return 1;
	if (o->size != f->size)
		return 0;
	if (file_md5_hex(f->path, md5) < 0)
		return slotsync_error_set(err, -EIO, "reading %s", f->path);
	return !strcmp(md5, o->etag);
}

struct upload {
	struct publish_file *file;
	CURL *easy;
	FILE *in;
	struct curl_slist *headers;
	struct buf body;
	int attempt;
};

static void upload_end(struct upload *u)
{
	curl->easy_cleanup(u->easy);
	if (u->in)
		fclose(u->in);
	curl->slist_free_all(u->headers);
	free(u->body.p);
	memset(u, 0, sizeof(*u));
}

static int upload_start(struct s3_dest *d, CURLM *m, struct upload *u, struct publish_file *f, int attempt,
			struct slotsync_error *err)
{
	uint8_t sha[SLOTSYNC_DIGEST_BYTES];
	char hex[SLOTSYNC_DIGEST_HEX_BYTES], url[8192];
	int ok = 1, r;

	memset(u, 0, sizeof(*u));
	u->file = f;
	u->attempt = attempt;
	r = slotsync_digest_file(SLOTSYNC_DIGEST_SHA256, f->path, 0, sha, NULL, err);
	if (r < 0)
		return r;
	u->in = fopen(f->path, "rbe");
	if (!u->in)
		return slotsync_error_set_errno(err, -errno, "%s", f->path);
	u->headers = add_header(u->headers, "Content-Type", publish_content_type(f), &ok);
	u->headers = add_header(u->headers, "Cache-Control", publish_cache_control(f), &ok);
	u->headers = add_header(u->headers, "x-amz-content-sha256", slotsync_digest_to_hex(sha, hex), &ok);
	if (d->token)
		u->headers = add_header(u->headers, "x-amz-security-token", d->token, &ok);
	snprintf(url, sizeof(url), "%s%s", d->base, f->key);
	u->easy = ok ? s3_easy(d, url, u->headers, &u->body) : NULL;
	if (!u->easy) {
		upload_end(u);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	curl->easy_setopt(u->easy, CURLOPT_UPLOAD, 1L);
	curl->easy_setopt(u->easy, CURLOPT_READDATA, u->in);
	curl->easy_setopt(u->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)f->size);
	curl->easy_setopt(u->easy, CURLOPT_PRIVATE, u);
	if (curl->multi_add_handle(m, u->easy) != CURLM_OK) {
		upload_end(u);
		return slotsync_error_set(err, -EIO, "cannot start the upload of %s", f->key);
	}
	return 0;
}

int s3_dest_put(struct s3_dest *d, struct publish_file *const *files, size_t n, struct gen_publish_stats *st,
		struct slotsync_error *err)
{
	struct upload *ups = calloc((size_t)d->jobs, sizeof(*ups));
	struct publish_file **again = calloc(n + 1, sizeof(*again));
	int *again_attempt = calloc(n + 1, sizeof(*again_attempt));
	size_t next = 0, n_again = 0;
	int running = 0, in_flight = 0, r = 0;
	CURLM *m = curl->multi_init();

	if (!ups || !again || !again_attempt || !m) {
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	curl->multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl->multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)d->jobs);
	while (r == 0 && (next < n || n_again || in_flight)) {
		struct CURLMsg *msg;
		int left;
		for (int i = 0; r == 0 && i < d->jobs && (next < n || n_again); i++) {
			if (ups[i].easy)
				continue;
			if (n_again) {
				n_again--;
				r = upload_start(d, m, &ups[i], again[n_again], again_attempt[n_again], err);
			} else {
				r = upload_start(d, m, &ups[i], files[next++], 1, err);
			}
			in_flight += r == 0;
		}
		if (r < 0)
			break;
		curl->multi_perform(m, &running);
		while ((msg = curl->multi_info_read(m, &left))) {
			struct upload *u = NULL;
			long status = 0;
			char why[800];
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&u);
			curl->easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &status);
			curl->multi_remove_handle(m, u->easy);
			in_flight--;
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300) {
				slotsync_log_info("publish: sent %s (%llu bytes)", u->file->key, (unsigned long long)u->file->size);
				st->uploaded[u->file->phase]++;
				st->uploaded_bytes[u->file->phase] += u->file->size;
			} else {
				if (msg->data.result != CURLE_OK)
					snprintf(why, sizeof(why), "%s", curl->easy_strerror(msg->data.result));
				else
					s3_error_text(status, &u->body, why, sizeof(why));
				if (u->attempt < S3_ATTEMPTS && (msg->data.result != CURLE_OK || status >= 500)) {
					slotsync_log_warning("publish: %s: %s; trying again", u->file->key, why);
					again[n_again] = u->file;
					again_attempt[n_again++] = u->attempt + 1;
				} else if (r == 0) {
					r = slotsync_error_set(err, status == 403 ? -EACCES : -EIO,
							       "uploading %s to %s%s: the server said %s", u->file->path,
							       d->base, u->file->key, why);
				}
			}
			upload_end(u);
		}
		if (r == 0 && in_flight)
			curl->multi_poll(m, NULL, 0, 1000, NULL);
	}
out:
	/* after a failure: the uploads in flight are dropped (a PUT cut short leaves no object) */
	for (int i = 0; ups && i < d->jobs; i++)
		if (ups[i].easy) {
			curl->multi_remove_handle(m, ups[i].easy);
			upload_end(&ups[i]);
		}
	if (m)
		curl->multi_cleanup(m);
	free(ups);
	free(again);
	free(again_attempt);
	return r;
}
