/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bundle manifests and channel pointers as JSON (json-c), and times as RFC 3339:
 * see include/slotsync/manifest.h and docs/format.md.
 *
 * Parsing is strict: the document must be one JSON object, every known field
 * must have its type, required fields must be there, and an unknown field is
 * refused, so that no part of what a signer wrote is silently ignored.
 */
#include "slotsync/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRING_MAX 4096

int slotsync_time_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;
	char *e;

	if (s[0] == '@') {
		long long v;
		errno = 0;
		v = strtoll(s + 1, &e, 10);
		if (errno || e == s + 1 || *e || v < 0)
			return -EINVAL;
		*out = (time_t)v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

void slotsync_time_format(time_t t, char buf[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- strict field readers ---- */

struct reader {
	struct json_object *obj;
	const char *what;              /* "manifest", "pointer" */
	struct slotsync_error *err;
	int r;
};

static struct json_object *field(struct reader *rd, const char *key, enum json_type type, const char *type_name,
				 int required)
{
	struct json_object *v;

	if (rd->r < 0)
		return NULL;
	if (!json_object_object_get_ex(rd->obj, key, &v) || json_object_get_type(v) == json_type_null) {
		if (required)
			rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s lacks the field \"%s\"", rd->what, key);
		return NULL;
	}
	if (json_object_get_type(v) != type) {
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s field \"%s\" must be %s", rd->what, key, type_name);
		return NULL;
	}
	return v;
}

static char *get_string(struct reader *rd, const char *key, int required)
{
	struct json_object *v = field(rd, key, json_type_string, "a string", required);
	const char *s;
	char *copy;

	if (!v)
		return NULL;
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s) || strlen(s) == 0 || strlen(s) > STRING_MAX) {
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s field \"%s\" must be 1 to %d characters, without NUL",
					   rd->what, key, STRING_MAX);
		return NULL;
	}
	copy = strdup(s);
	if (!copy)
		rd->r = slotsync_error_set(rd->err, -ENOMEM, "out of memory");
	return copy;
}

static uint64_t get_u64(struct reader *rd, const char *key, int required)
{
	struct json_object *v = field(rd, key, json_type_int, "a whole number", required);
	int64_t n;

	if (!v)
		return 0;
	n = json_object_get_int64(v);
	if (n < 0 || (n == INT64_MAX && errno == ERANGE)) {
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s field \"%s\" must be between 0 and 2^63-1", rd->what,
					   key);
		return 0;
	}
	return (uint64_t)n;
}

static void get_digest(struct reader *rd, struct json_object *obj, const char *key, uint8_t out[SLOTSYNC_DIGEST_BYTES])
{
	struct json_object *saved = rd->obj;
	char *hex;

	rd->obj = obj;
	hex = get_string(rd, key, 1);
	rd->obj = saved;
	if (hex && (strlen(hex) != 64 || slotsync_digest_from_hex(hex, out) < 0))
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s field \"%s\" must be 64 hex digits", rd->what, key);
	free(hex);
}

static time_t get_time(struct reader *rd, const char *key, int required)
{
	char *s = get_string(rd, key, required);
	time_t t = 0;

	if (s && slotsync_time_parse(s, &t) < 0)
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s field \"%s\" must be a UTC time like 2026-01-31T12:00:00Z",
					   rd->what, key);
	free(s);
	return t;
}

/* Refuses any key of obj not in known (NULL-terminated). */
static void only_known(struct reader *rd, struct json_object *obj, const char *const *known)
{
	if (rd->r < 0)
		return;
	json_object_object_foreach(obj, key, val)
	{
		int ok = 0;
		(void)val;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = strcmp(key, known[i]) == 0;
		if (!ok) {
			rd->r = slotsync_error_set(rd->err, -EBADMSG, "%s has an unknown field \"%s\"", rd->what, key);
			return;
		}
	}
}

static struct json_object *parse_object(const uint8_t *json, size_t len, size_t max, const char *what,
					struct slotsync_error *err)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (len > max) {
		slotsync_error_set(err, -EFBIG, "%s is %zu bytes, more than the limit of %zu", what, len, max);
		return NULL;
	}
	if (memchr(json, '\0', len)) {
		slotsync_error_set(err, -EBADMSG, "%s is not JSON text (it holds a NUL byte)", what);
		return NULL;
	}
	tok = json_tokener_new_ex(32);
	if (!tok) {
		slotsync_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, (const char *)json, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		/* trailing white space after the object is fine */
		size_t end = obj ? json_tokener_get_parse_end(tok) : 0;
		int trailing_ok = obj && json_tokener_get_error(tok) == json_tokener_success;
		for (size_t i = end; trailing_ok && i < len; i++)
			trailing_ok = json[i] == ' ' || json[i] == '\n' || json[i] == '\t' || json[i] == '\r';
		if (!trailing_ok) {
			slotsync_error_set(err, -EBADMSG, "%s is not valid JSON: %s", what,
					   obj ? "trailing data" : json_tokener_error_desc(json_tokener_get_error(tok)));
			json_object_put(obj);
			obj = NULL;
		}
	}
	json_tokener_free(tok);
	if (obj && json_object_get_type(obj) != json_type_object) {
		slotsync_error_set(err, -EBADMSG, "%s must be a JSON object", what);
		json_object_put(obj);
		obj = NULL;
	}
	return obj;
}

/* ---- manifest ---- */

static const char *const manifest_keys[] = { "format",	 "version", "compatible", "security_version",
					     "created",	 "expires", "image",	  "index",
					     "stores",	 "verity_root_hash",	  "hooks",
					     "downgrade_allowed_to", "deltas", "verity", "images", NULL };

int slotsync_image_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SLOTSYNC_IMAGE_NAME_MAX || !strcmp(name, "rootfs"))
		return 0;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

const struct slotsync_manifest_image *slotsync_manifest_image(const struct slotsync_manifest *m, const char *name)
{
	for (size_t i = 0; m && name && i < m->n_images; i++)
		if (!strcmp(m->images[i].name, name))
			return &m->images[i];
	return NULL;
}

static int is_lower_hex(const char *s)
{
	return strspn(s, "0123456789abcdef") == strlen(s);
}

static int block_size_ok(uint64_t n)
{
	return n >= 512 && n <= 65536 && (n & (n - 1)) == 0;
}

/* The "verity" object: every field required, each checked against the others
 * and the image's size, so the device never hands libcryptsetup a layout the
 * signer did not mean. */
static struct slotsync_manifest_verity *get_verity(struct reader *rd, struct json_object *obj, uint64_t image_size)
{
	static const char *const keys[] = { "root_hash",   "salt",		"algorithm",	   "data_size",
					    "hash_offset", "data_block_size", "hash_block_size", NULL };
	struct json_object *saved = rd->obj;
	struct slotsync_manifest_verity *v = calloc(1, sizeof(*v));
	uint64_t dbs, hbs;

	if (!v) {
		rd->r = slotsync_error_set(rd->err, -ENOMEM, "out of memory");
		return NULL;
	}
	only_known(rd, obj, keys);
	rd->obj = obj;
	v->root_hash = get_string(rd, "root_hash", 1);
	v->salt = get_string(rd, "salt", 1);
	v->algorithm = get_string(rd, "algorithm", 1);
	v->data_size = get_u64(rd, "data_size", 1);
	v->hash_offset = get_u64(rd, "hash_offset", 1);
	dbs = get_u64(rd, "data_block_size", 1);
	hbs = get_u64(rd, "hash_block_size", 1);
	rd->obj = saved;
	if (rd->r < 0)
		return v;
	if (strcmp(v->algorithm, "sha256") != 0)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.algorithm\" is \"%s\": only \"sha256\" is supported",
					   v->algorithm);
	else if (!is_lower_hex(v->root_hash) || strlen(v->root_hash) != 2 * SLOTSYNC_DIGEST_BYTES)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.root_hash\" must be %d lower-case hex digits (a sha256 digest)",
					   2 * SLOTSYNC_DIGEST_BYTES);
	else if (!is_lower_hex(v->salt) || strlen(v->salt) % 2 || strlen(v->salt) > 512)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.salt\" must be lower-case hex, 1 to 256 bytes");
	else if (!block_size_ok(dbs))
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.data_block_size\" must be a power of two from 512 to 65536");
	else if (!block_size_ok(hbs))
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.hash_block_size\" must be a power of two from 512 to 65536");
	else if (v->data_size == 0 || v->data_size % dbs)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.data_size\" must be a non-zero multiple of data_block_size (%" PRIu64 ")",
					   dbs);
	else if (v->hash_offset < v->data_size)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.hash_offset\" must not be below data_size (the tree would overwrite the data)");
	else if (v->hash_offset >= image_size)
		rd->r = slotsync_error_set(rd->err, -EBADMSG,
					   "manifest field \"verity.hash_offset\" must be inside the image (below image.size, %" PRIu64 ")",
					   image_size);
	v->data_block_size = (uint32_t)dbs;
	v->hash_block_size = (uint32_t)hbs;
	return v;
}

static void manifest_verity_free(struct slotsync_manifest_verity *v)
{
	if (!v)
		return;
	free(v->root_hash);
	free(v->salt);
	free(v->algorithm);
	free(v);
}

/* The "images" array: the further images of the slot group, each an object of
 * name, size, sha256, index_sha256 and index_size (all required), sorted by
 * name, each name once, valid and not the main image's. */
static void get_images(struct reader *rd, struct json_object *arr, struct slotsync_manifest *m)
{
	static const char *const keys[] = { "name", "size", "sha256", "index_sha256", "index_size", NULL };
	size_t n = json_object_array_length(arr);

	if (n > SLOTSYNC_MANIFEST_MAX_IMAGES) {
		rd->r = slotsync_error_set(rd->err, -EBADMSG, "manifest names more than %d further images",
					   SLOTSYNC_MANIFEST_MAX_IMAGES);
		return;
	}
	for (size_t i = 0; rd->r == 0 && i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i), *saved = rd->obj;
		struct slotsync_manifest_image *im = &m->images[i];
		char *name;
		if (json_object_get_type(v) != json_type_object) {
			rd->r = slotsync_error_set(rd->err, -EBADMSG, "manifest image %zu must be an object", i + 1);
			return;
		}
		only_known(rd, v, keys);
		rd->obj = v;
		name = get_string(rd, "name", 1);
		im->size = get_u64(rd, "size", 1);
		im->index_size = get_u64(rd, "index_size", 1);
		rd->obj = saved;
		get_digest(rd, v, "sha256", im->sha256);
		get_digest(rd, v, "index_sha256", im->index_sha256);
		if (rd->r == 0 && !slotsync_image_name_valid(name))
			rd->r = slotsync_error_set(rd->err, -EBADMSG,
						   "manifest image %zu: name \"%s\" is not valid (1 to %d of a-z, 0-9, _ and -, starting with a letter or digit; \"rootfs\" is the main image's)",
						   i + 1, name, SLOTSYNC_IMAGE_NAME_MAX);
		else if (rd->r == 0 && i > 0 && strcmp(m->images[i - 1].name, name) >= 0)
			rd->r = slotsync_error_set(rd->err, -EBADMSG,
						   "manifest image \"%s\" is %s: the images must be sorted by name, each once", name,
						   strcmp(m->images[i - 1].name, name) ? "out of order" : "named twice");
		else if (rd->r == 0 && (im->size == 0 || im->index_size == 0))
			rd->r = slotsync_error_set(rd->err, -EBADMSG, "manifest image \"%s\": size and index_size must not be 0",
						   name);
		if (name && strlen(name) <= SLOTSYNC_IMAGE_NAME_MAX)
			memcpy(im->name, name, strlen(name) + 1);
		free(name);
		if (rd->r == 0)
			m->n_images++;
	}
}

int slotsync_manifest_parse(const uint8_t *json, size_t len, struct slotsync_manifest **out,
			    struct slotsync_error *err)
{
	struct slotsync_manifest *m;
	struct json_object *root, *image, *index, *stores, *hooks, *deltas, *verity, *images;
	struct reader rd = { .what = "manifest", .err = err };
	static const char *const image_keys[] = { "size", "sha256", NULL };
	static const char *const index_keys[] = { "sha256", "size", NULL };
	static const char *const hook_keys[] = { "pre-install", "post-install", NULL };

	*out = NULL;
	root = parse_object(json, len, SLOTSYNC_MANIFEST_MAX_BYTES, "manifest", err);
	if (!root)
		return err ? err->code : -EBADMSG;
	m = calloc(1, sizeof(*m));
	if (!m) {
		json_object_put(root);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	rd.obj = root;
	only_known(&rd, root, manifest_keys);
	if (rd.r == 0 && get_u64(&rd, "format", 1) != SLOTSYNC_MANIFEST_FORMAT && rd.r == 0)
		rd.r = slotsync_error_set(err, -EBADMSG, "manifest has an unknown format (this slotsync reads format %d)",
					  SLOTSYNC_MANIFEST_FORMAT);
	m->version = get_string(&rd, "version", 1);
	m->compatible = get_string(&rd, "compatible", 1);
	m->security_version = get_u64(&rd, "security_version", 1);
	m->created = get_time(&rd, "created", 1);
	m->expires = get_time(&rd, "expires", 0);
	image = field(&rd, "image", json_type_object, "an object", 1);
	if (image) {
		struct json_object *saved = rd.obj;
		only_known(&rd, image, image_keys);
		rd.obj = image;
		m->image_size = get_u64(&rd, "size", 1);
		rd.obj = saved;
		get_digest(&rd, image, "sha256", m->image_sha256);
	}
	index = field(&rd, "index", json_type_object, "an object", 1);
	if (index) {
		only_known(&rd, index, index_keys);
		get_digest(&rd, index, "sha256", m->index_sha256);
		rd.obj = index;
		m->index_size = get_u64(&rd, "size", 0);
		rd.obj = root;
		if (rd.r == 0 && json_object_object_get_ex(index, "size", NULL) && m->index_size == 0)
			rd.r = slotsync_error_set(err, -EBADMSG, "manifest field \"index.size\" must not be 0");
	}
	stores = field(&rd, "stores", json_type_array, "an array of URLs", 0);
	if (stores) {
		size_t n = json_object_array_length(stores);
		if (n > SLOTSYNC_MANIFEST_MAX_STORES) {
			rd.r = slotsync_error_set(err, -EBADMSG, "manifest names more than %d stores",
						  SLOTSYNC_MANIFEST_MAX_STORES);
		}
		for (size_t i = 0; rd.r == 0 && i < n; i++) {
			struct json_object *v = json_object_array_get_idx(stores, i);
			const char *s = json_object_get_string(v);
			if (json_object_get_type(v) != json_type_string || strlen(s) == 0 || strlen(s) > STRING_MAX) {
				rd.r = slotsync_error_set(err, -EBADMSG, "manifest store %zu must be a URL string", i + 1);
				break;
			}
			if (!(m->stores[m->n_stores++] = strdup(s)))
				rd.r = slotsync_error_set(err, -ENOMEM, "out of memory");
		}
	}
	m->verity_root_hash = get_string(&rd, "verity_root_hash", 0);
	if (m->verity_root_hash && strspn(m->verity_root_hash, "0123456789abcdef") != strlen(m->verity_root_hash))
		rd.r = slotsync_error_set(err, -EBADMSG, "manifest field \"verity_root_hash\" must be lower-case hex");
	verity = field(&rd, "verity", json_type_object, "an object", 0);
	if (verity) {
		m->verity = get_verity(&rd, verity, m->image_size);
		/* older readers see verity_root_hash: it must say the same */
		if (rd.r == 0 && m->verity_root_hash && strcmp(m->verity_root_hash, m->verity->root_hash) != 0)
			rd.r = slotsync_error_set(err, -EBADMSG,
						  "manifest fields \"verity_root_hash\" and \"verity.root_hash\" differ");
	}
	hooks = field(&rd, "hooks", json_type_object, "an object", 0);
	if (hooks) {
		struct json_object *saved = rd.obj;
		only_known(&rd, hooks, hook_keys);
		rd.obj = hooks;
		m->hook_pre_install = get_string(&rd, "pre-install", 0);
		m->hook_post_install = get_string(&rd, "post-install", 0);
		rd.obj = saved;
		for (int h = 0; h < 2 && rd.r == 0; h++) {
			const char *name = h ? m->hook_post_install : m->hook_pre_install;
			if (name && (strchr(name, '/') || name[0] == '.'))
				rd.r = slotsync_error_set(err, -EBADMSG, "manifest hook \"%s\" must be a plain file name", name);
		}
	}
	deltas = field(&rd, "deltas", json_type_array, "an array of delta indexes", 0);
	if (deltas) {
		static const char *const delta_keys[] = { "base", "sha256", "size", "index_sha256", "index_size", NULL };
		size_t n = json_object_array_length(deltas);
		if (n > SLOTSYNC_MANIFEST_MAX_DELTAS)
			rd.r = slotsync_error_set(err, -EBADMSG, "manifest names more than %d delta indexes",
						  SLOTSYNC_MANIFEST_MAX_DELTAS);
		for (size_t i = 0; rd.r == 0 && i < n; i++) {
			struct json_object *v = json_object_array_get_idx(deltas, i), *saved = rd.obj;
			if (json_object_get_type(v) != json_type_object) {
				rd.r = slotsync_error_set(err, -EBADMSG, "manifest delta %zu must be an object", i + 1);
				break;
			}
			only_known(&rd, v, delta_keys);
			get_digest(&rd, v, "base", m->deltas[i].base);
			get_digest(&rd, v, "sha256", m->deltas[i].sha256);
			rd.obj = v;
			m->deltas[i].size = get_u64(&rd, "size", 1);
			/* the index diff: both fields or neither */
			m->deltas[i].has_index = json_object_object_get_ex(v, "index_sha256", NULL);
			if (rd.r == 0 && m->deltas[i].has_index != json_object_object_get_ex(v, "index_size", NULL))
				rd.r = slotsync_error_set(err, -EBADMSG,
							  "manifest delta %zu must give \"index_sha256\" and \"index_size\" together", i + 1);
			if (m->deltas[i].has_index) {
				get_digest(&rd, v, "index_sha256", m->deltas[i].index_sha256);
				m->deltas[i].index_size = get_u64(&rd, "index_size", 1);
			}
			rd.obj = saved;
			m->n_deltas++;
		}
	}
	images = field(&rd, "images", json_type_array, "an array of images", 0);
	if (images)
		get_images(&rd, images, m);
	m->downgrade_allowed_to = get_string(&rd, "downgrade_allowed_to", 0);
	if (rd.r == 0 && m->downgrade_allowed_to && strcmp(m->downgrade_allowed_to, m->version) != 0)
		rd.r = slotsync_error_set(err, -EBADMSG,
					  "manifest allows a downgrade to \"%s\" but is version \"%s\": a permission is for its own release only",
					  m->downgrade_allowed_to, m->version);
	json_object_put(root);
	if (rd.r < 0) {
		slotsync_manifest_free(m);
		return rd.r;
	}
	*out = m;
	return 0;
}

static int emit(struct json_object *root, char **out, size_t *out_len, struct slotsync_error *err)
{
	const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								    JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = s ? strlen(s) : 0;

	*out = s ? malloc(n + 2) : NULL;
	if (!*out) {
		json_object_put(root);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	memcpy(*out, s, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*out_len = n + 1;
	json_object_put(root);
	return 0;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static void add_time(struct json_object *o, const char *k, time_t t)
{
	char buf[32];

	slotsync_time_format(t, buf);
	json_object_object_add(o, k, json_object_new_string(buf));
}

static void add_hex(struct json_object *o, const char *k, const uint8_t d[SLOTSYNC_DIGEST_BYTES])
{
	char hex[SLOTSYNC_DIGEST_HEX_BYTES];

	json_object_object_add(o, k, json_object_new_string(slotsync_digest_to_hex(d, hex)));
}

int slotsync_manifest_serialize(const struct slotsync_manifest *m, char **out, size_t *out_len,
				struct slotsync_error *err)
{
	struct json_object *root = json_object_new_object(), *image, *index, *stores, *hooks;

	if (!root)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	json_object_object_add(root, "format", json_object_new_int64(SLOTSYNC_MANIFEST_FORMAT));
	add_str(root, "version", m->version);
	add_str(root, "compatible", m->compatible);
	json_object_object_add(root, "security_version", json_object_new_int64((int64_t)m->security_version));
	add_time(root, "created", m->created);
	if (m->expires)
		add_time(root, "expires", m->expires);
	image = json_object_new_object();
	json_object_object_add(image, "size", json_object_new_int64((int64_t)m->image_size));
	add_hex(image, "sha256", m->image_sha256);
	json_object_object_add(root, "image", image);
	index = json_object_new_object();
	add_hex(index, "sha256", m->index_sha256);
	if (m->index_size)
		json_object_object_add(index, "size", json_object_new_int64((int64_t)m->index_size));
	json_object_object_add(root, "index", index);
	stores = json_object_new_array();
	for (size_t i = 0; i < m->n_stores; i++)
		json_object_array_add(stores, json_object_new_string(m->stores[i]));
	json_object_object_add(root, "stores", stores);
	add_str(root, "verity_root_hash", m->verity_root_hash);
	if (m->verity) {
		const struct slotsync_manifest_verity *v = m->verity;
		struct json_object *vo = json_object_new_object();
		add_str(vo, "root_hash", v->root_hash);
		add_str(vo, "salt", v->salt);
		add_str(vo, "algorithm", v->algorithm);
		json_object_object_add(vo, "data_size", json_object_new_int64((int64_t)v->data_size));
		json_object_object_add(vo, "hash_offset", json_object_new_int64((int64_t)v->hash_offset));
		json_object_object_add(vo, "data_block_size", json_object_new_int64(v->data_block_size));
		json_object_object_add(vo, "hash_block_size", json_object_new_int64(v->hash_block_size));
		json_object_object_add(root, "verity", vo);
	}
	if (m->hook_pre_install || m->hook_post_install) {
		hooks = json_object_new_object();
		add_str(hooks, "pre-install", m->hook_pre_install);
		add_str(hooks, "post-install", m->hook_post_install);
		json_object_object_add(root, "hooks", hooks);
	}
	add_str(root, "downgrade_allowed_to", m->downgrade_allowed_to);
	if (m->n_deltas) {
		struct json_object *deltas = json_object_new_array();
		for (size_t i = 0; i < m->n_deltas; i++) {
			struct json_object *e = json_object_new_object();
			add_hex(e, "base", m->deltas[i].base);
			add_hex(e, "sha256", m->deltas[i].sha256);
			json_object_object_add(e, "size", json_object_new_int64((int64_t)m->deltas[i].size));
			if (m->deltas[i].has_index) {
				add_hex(e, "index_sha256", m->deltas[i].index_sha256);
				json_object_object_add(e, "index_size", json_object_new_int64((int64_t)m->deltas[i].index_size));
			}
			json_object_array_add(deltas, e);
		}
		json_object_object_add(root, "deltas", deltas);
	}
	if (m->n_images) {
		struct json_object *images = json_object_new_array();
		for (size_t i = 0; i < m->n_images; i++) {
			struct json_object *e = json_object_new_object();
			add_str(e, "name", m->images[i].name);
			json_object_object_add(e, "size", json_object_new_int64((int64_t)m->images[i].size));
			add_hex(e, "sha256", m->images[i].sha256);
			add_hex(e, "index_sha256", m->images[i].index_sha256);
			json_object_object_add(e, "index_size", json_object_new_int64((int64_t)m->images[i].index_size));
			json_object_array_add(images, e);
		}
		json_object_object_add(root, "images", images);
	}
	return emit(root, out, out_len, err);
}

void slotsync_manifest_free(struct slotsync_manifest *m)
{
	if (!m)
		return;
	free(m->version);
	free(m->compatible);
	for (size_t i = 0; i < m->n_stores; i++)
		free(m->stores[i]);
	free(m->verity_root_hash);
	manifest_verity_free(m->verity);
	free(m->hook_pre_install);
	free(m->hook_post_install);
	free(m->downgrade_allowed_to);
	free(m);
}

/* ---- pointer ---- */

static const char *const pointer_keys[] = { "format", "version", "expires", "bundle_url", "bundle_sha256",
					    "bundle_size", "compatible", NULL };

int slotsync_pointer_parse(const uint8_t *json, size_t len, struct slotsync_pointer **out,
			   struct slotsync_error *err)
{
	struct slotsync_pointer *p;
	struct json_object *root;
	struct reader rd = { .what = "pointer", .err = err };

	*out = NULL;
	root = parse_object(json, len, SLOTSYNC_POINTER_MAX_BYTES, "pointer", err);
	if (!root)
		return err ? err->code : -EBADMSG;
	p = calloc(1, sizeof(*p));
	if (!p) {
		json_object_put(root);
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	}
	rd.obj = root;
	only_known(&rd, root, pointer_keys);
	if (rd.r == 0 && get_u64(&rd, "format", 1) != SLOTSYNC_MANIFEST_FORMAT && rd.r == 0)
		rd.r = slotsync_error_set(err, -EBADMSG, "pointer has an unknown format");
	p->version = get_u64(&rd, "version", 1);
	p->expires = get_time(&rd, "expires", 1);
	p->bundle_url = get_string(&rd, "bundle_url", 1);
	get_digest(&rd, root, "bundle_sha256", p->bundle_sha256);
	p->bundle_size = get_u64(&rd, "bundle_size", 1);
	p->compatible = get_string(&rd, "compatible", 0);
	if (rd.r == 0 && (p->bundle_size == 0 || p->bundle_size > SLOTSYNC_BUNDLE_MAX_BYTES))
		rd.r = slotsync_error_set(err, -EBADMSG, "pointer names a bundle of %" PRIu64 " bytes (limit %u)",
					  p->bundle_size, SLOTSYNC_BUNDLE_MAX_BYTES);
	json_object_put(root);
	if (rd.r < 0) {
		slotsync_pointer_free(p);
		return rd.r;
	}
	*out = p;
	return 0;
}

int slotsync_pointer_serialize(const struct slotsync_pointer *p, char **out, size_t *out_len,
			       struct slotsync_error *err)
{
	struct json_object *root = json_object_new_object();

	if (!root)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	json_object_object_add(root, "format", json_object_new_int64(SLOTSYNC_MANIFEST_FORMAT));
	json_object_object_add(root, "version", json_object_new_int64((int64_t)p->version));
	add_time(root, "expires", p->expires);
	add_str(root, "bundle_url", p->bundle_url);
	add_hex(root, "bundle_sha256", p->bundle_sha256);
	json_object_object_add(root, "bundle_size", json_object_new_int64((int64_t)p->bundle_size));
	add_str(root, "compatible", p->compatible);
	return emit(root, out, out_len, err);
}

void slotsync_pointer_free(struct slotsync_pointer *p)
{
	if (!p)
		return;
	free(p->bundle_url);
	free(p->compatible);
	free(p);
}
