/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The whole install as one resumable state machine: see
 * include/slotsync/install.h and docs/install.md. */
#include "slotsync/install.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "internal.h"
#include "run.h"
#include "slotsync/assemble.h"
#include "slotsync/boot.h"
#include "slotsync/bundle.h"
#include "slotsync/fetch.h"
#include "slotsync/log.h"
#include "slotsync/migrate.h"
#include "slotsync/policy.h"
#include "slotsync/slot.h"

static const char *const step_names[SLOTSYNC_STEP_COUNT] = {
	"none",	  "verify", "pre-install", "assemble", "verify-slot", "migrate-data",
	"post-install", "switch", "reboot",	"validate", "done",	   "failed",
};

const char *slotsync_install_step_name(enum slotsync_install_step s)
{
	return (unsigned)s < SLOTSYNC_STEP_COUNT ? step_names[s] : "?";
}

static int step_parse(const char *s)
{
	for (int i = 0; i < SLOTSYNC_STEP_COUNT; i++)
		if (!strcmp(s, step_names[i]))
			return i;
	return -1;
}

/* Paths in the state folder (the configuration keeps its name short enough). */
__attribute__((format(printf, 2, 3))) static void pathf(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		out[0] = '\0';
}

static void state_path(const struct slotsync_config *cfg, const char *name, char out[PATH_MAX])
{
	pathf(out, "%s/%s", cfg->state_dir, name);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- JSON files ----------------------------------------------------------- */

int system_json_load(const char *path, struct json_object **out, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct json_tokener *tok;
	int r = io_read_file(path, 1u << 20, &buf, &len, err);

	*out = NULL;
	if (r < 0)
		return r;
	tok = json_tokener_new();
	*out = tok ? json_tokener_parse_ex(tok, (const char *)buf, (int)len) : NULL;
	if (*out && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(*out);
		*out = NULL;
	}
	json_tokener_free(tok);
	free(buf);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return slotsync_error_set(err, -EBADMSG, "%s is not a JSON object (damaged?)", path);
	}
	return 0;
}

int system_json_save(const char *path, struct json_object *o, struct slotsync_error *err)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(s);
	char *buf = malloc(n + 2);
	int r;

	if (!buf)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	memcpy(buf, s, n);
	buf[n] = '\n';
	r = io_write_file_atomic(path, buf, n + 1, err);
	free(buf);
	return r;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
												 : "";
}

static uint64_t ju64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	if (snprintf(dst, size, "%s", src ? src : "") >= (int)size)
		dst[size - 1] = '\0'; /* cut: only ever messages */
}

/* ---- the install journal --------------------------------------------------- */

int slotsync_install_record_load(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
				 struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o, *secs;
	int step;

	memset(rec, 0, sizeof(*rec));
	state_path(cfg, "install.json", path);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return -ENOENT;
	if (system_json_load(path, &o, err) < 0)
		return -EBADMSG;
	step = step_parse(jstr(o, "step"));
	if (step < 0 || (strcmp(jstr(o, "target"), "A") && strcmp(jstr(o, "target"), "B"))) {
		json_object_put(o);
		return slotsync_error_set(err, -EBADMSG, "%s: no valid step or target (damaged?)", path);
	}
	rec->step = (enum slotsync_install_step)step;
	rec->target = jstr(o, "target")[0] - 'A';
	copy_str(rec->source, sizeof(rec->source), jstr(o, "source"));
	copy_str(rec->bundle_sha256, sizeof(rec->bundle_sha256), jstr(o, "bundle_sha256"));
	copy_str(rec->version, sizeof(rec->version), jstr(o, "version"));
	copy_str(rec->header_uuid, sizeof(rec->header_uuid), jstr(o, "header_uuid"));
	copy_str(rec->data_header_uuid, sizeof(rec->data_header_uuid), jstr(o, "data_header_uuid"));
	copy_str(rec->error, sizeof(rec->error), jstr(o, "error"));
	rec->security_version = ju64(o, "security_version");
	rec->started = (time_t)ju64(o, "started");
	rec->updated = (time_t)ju64(o, "updated");
	rec->bytes_total = ju64(o, "bytes_total");
	rec->bytes_done = ju64(o, "bytes_done");
	rec->bytes_fetched = ju64(o, "bytes_fetched");
	rec->bytes_from_seed = ju64(o, "bytes_from_seed");
	rec->error_final = rec->step == SLOTSYNC_STEP_FAILED;
	if (json_object_object_get_ex(o, "seconds", &secs) && json_object_is_type(secs, json_type_object))
		for (int i = 0; i < SLOTSYNC_STEP_COUNT; i++) {
			struct json_object *v;
			if (json_object_object_get_ex(secs, step_names[i], &v))
				rec->seconds[i] = json_object_get_double(v);
		}
	json_object_put(o);
	return 0;
}

static struct json_object *record_json(const struct slotsync_install_record *rec)
{
	struct json_object *o = json_object_new_object(), *secs = json_object_new_object();
	char t[2] = { (char)('A' + rec->target), '\0' };

	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "step", json_object_new_string(step_names[rec->step]));
	json_object_object_add(o, "source", json_object_new_string(rec->source));
	json_object_object_add(o, "bundle_sha256", json_object_new_string(rec->bundle_sha256));
	json_object_object_add(o, "version", json_object_new_string(rec->version));
	json_object_object_add(o, "security_version", json_object_new_int64((int64_t)rec->security_version));
	json_object_object_add(o, "target", json_object_new_string(t));
	json_object_object_add(o, "header_uuid", json_object_new_string(rec->header_uuid));
	json_object_object_add(o, "data_header_uuid", json_object_new_string(rec->data_header_uuid));
	json_object_object_add(o, "started", json_object_new_int64((int64_t)rec->started));
	json_object_object_add(o, "updated", json_object_new_int64((int64_t)rec->updated));
	json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)rec->bytes_total));
	json_object_object_add(o, "bytes_done", json_object_new_int64((int64_t)rec->bytes_done));
	json_object_object_add(o, "bytes_fetched", json_object_new_int64((int64_t)rec->bytes_fetched));
	json_object_object_add(o, "bytes_from_seed", json_object_new_int64((int64_t)rec->bytes_from_seed));
	json_object_object_add(o, "error", json_object_new_string(rec->error));
	for (int i = SLOTSYNC_STEP_VERIFY; i < SLOTSYNC_STEP_DONE; i++)
		if (rec->seconds[i] > 0)
			json_object_object_add(secs, step_names[i], json_object_new_double(rec->seconds[i]));
	json_object_object_add(o, "seconds", secs);
	return o;
}

static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

static int record_save(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
		       struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o;
	int r;

	pthread_mutex_lock(&record_lock);
	rec->updated = time(NULL);
	o = record_json(rec);
	state_path(cfg, "install.json", path);
	r = system_json_save(path, o, err);
	json_object_put(o);
	pthread_mutex_unlock(&record_lock);
	return r;
}

/* ---- slots.json, failed.json --------------------------------------------- */

int slotsync_install_slot_records_load(const struct slotsync_config *cfg, struct slotsync_slot_record rec[2],
				       struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o, *s;

	memset(rec, 0, 2 * sizeof(*rec));
	state_path(cfg, "slots.json", path);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (system_json_load(path, &o, err) < 0)
		return -EBADMSG;
	for (int i = 0; i < 2; i++) {
		const char name[2] = { (char)('A' + i), '\0' };
		if (!json_object_object_get_ex(o, name, &s) || !json_object_is_type(s, json_type_object))
			continue;
		copy_str(rec[i].status, sizeof(rec[i].status), jstr(s, "status"));
		copy_str(rec[i].version, sizeof(rec[i].version), jstr(s, "version"));
		copy_str(rec[i].bundle_sha256, sizeof(rec[i].bundle_sha256), jstr(s, "bundle_sha256"));
		rec[i].security_version = ju64(s, "security_version");
		rec[i].installed = (time_t)ju64(s, "installed");
	}
	json_object_put(o);
	return 0;
}

static int slot_records_save(const struct slotsync_config *cfg, const struct slotsync_slot_record rec[2],
			     struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o = json_object_new_object();
	int r;

	for (int i = 0; i < 2; i++) {
		const char name[2] = { (char)('A' + i), '\0' };
		struct json_object *s = json_object_new_object();
		json_object_object_add(s, "status", json_object_new_string(rec[i].status));
		json_object_object_add(s, "version", json_object_new_string(rec[i].version));
		json_object_object_add(s, "bundle_sha256", json_object_new_string(rec[i].bundle_sha256));
		json_object_object_add(s, "security_version", json_object_new_int64((int64_t)rec[i].security_version));
		json_object_object_add(s, "installed", json_object_new_int64((int64_t)rec[i].installed));
		json_object_object_add(o, name, s);
	}
	state_path(cfg, "slots.json", path);
	r = system_json_save(path, o, err);
	json_object_put(o);
	return r;
}

static int slot_record_set(const struct slotsync_config *cfg, int slot, const char *status,
			   const struct slotsync_install_record *rec, struct slotsync_error *err)
{
	struct slotsync_slot_record s[2];
	int r = slotsync_install_slot_records_load(cfg, s, err);

	if (r < 0)
		return r;
	copy_str(s[slot].status, sizeof(s[slot].status), status);
	if (rec) {
		copy_str(s[slot].version, sizeof(s[slot].version), rec->version);
		copy_str(s[slot].bundle_sha256, sizeof(s[slot].bundle_sha256), rec->bundle_sha256);
		s[slot].security_version = rec->security_version;
		s[slot].installed = time(NULL);
	}
	return slot_records_save(cfg, s, err);
}

int slotsync_install_release_failed(const struct slotsync_config *cfg, const char *bundle_sha256, const char *version,
				    char *reason, size_t reason_len)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *list, *e;
	struct slotsync_error err = { 0 };
	int found = 0;

	state_path(cfg, "failed.json", path);
	if (access(path, F_OK) < 0 || system_json_load(path, &o, &err) < 0)
		return 0;
	if (json_object_object_get_ex(o, "releases", &list) && json_object_is_type(list, json_type_array))
		for (size_t i = 0; !found && i < json_object_array_length(list); i++) {
			e = json_object_array_get_idx(list, i);
			if ((bundle_sha256 && *bundle_sha256 && !strcmp(jstr(e, "bundle_sha256"), bundle_sha256)) ||
			    (version && *version && !strcmp(jstr(e, "version"), version))) {
				found = 1;
				if (reason)
					snprintf(reason, reason_len, "%s", jstr(e, "reason"));
			}
		}
	json_object_put(o);
	return found;
}

static int release_failed_add(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			      const char *reason, struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *list, *e;
	int r;

	state_path(cfg, "failed.json", path);
	if (access(path, F_OK) < 0 || system_json_load(path, &o, err) < 0) {
		o = json_object_new_object();
		if (err)
			memset(err, 0, sizeof(*err));
	}
	if (!json_object_object_get_ex(o, "releases", &list) || !json_object_is_type(list, json_type_array)) {
		list = json_object_new_array();
		json_object_object_add(o, "releases", list);
	}
	e = json_object_new_object();
	json_object_object_add(e, "version", json_object_new_string(rec->version));
	json_object_object_add(e, "bundle_sha256", json_object_new_string(rec->bundle_sha256));
	json_object_object_add(e, "reason", json_object_new_string(reason));
	json_object_object_add(e, "when", json_object_new_int64((int64_t)time(NULL)));
	json_object_array_add(list, e);
	r = system_json_save(path, o, err);
	json_object_put(o);
	return r;
}

/* ---- the lock --------------------------------------------------------------- */

int system_lock(const struct slotsync_config *cfg, const char *name, const char *holder, struct slotsync_error *err)
{
	char path[PATH_MAX], pid[32] = "";
	int fd, n;

	state_path(cfg, name, path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		return slotsync_error_set(err, -EBUSY, "%s is running (process %s); it holds %s", holder, pid[0] ? pid : "?",
					  path);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, pid, (size_t)n, 0);
	return fd;
}

/* ---- helpers for the steps ------------------------------------------------ */

void system_hex(const uint8_t *d, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* SHA-256 of the first len bytes of path (len 0: all of it). */
int system_sha256_path(const char *path, uint64_t len, uint8_t out[32], struct slotsync_error *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = malloc(1 << 20);
	uint64_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		r = slotsync_error_set_errno(err, -errno, "cannot open %s", path);
	else if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		r = slotsync_error_set(err, -ENOMEM, "out of memory");
	while (r == 0 && (!len || done < len)) {
		size_t want = 1 << 20;
		ssize_t n;
		if (len && len - done < want)
			want = (size_t)(len - done);
		n = io_read_full(fd, buf, want);
		if (n < 0) {
			r = slotsync_error_set_errno(err, (int)n, "cannot read %s", path);
			break;
		}
		if (n == 0) {
			if (len)
				r = slotsync_error_set(err, -EIO, "%s ends after %" PRIu64 " bytes, not %" PRIu64, path, done, len);
			break;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		done += (uint64_t)n;
	}
	if (r == 0)
		EVP_DigestFinal_ex(ctx, out, NULL);
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Downloads url (at most max bytes) to path, atomically. */
int system_download(const struct slotsync_config *cfg, const char *url, uint64_t max, const char *path,
		    struct slotsync_error *err)
{
	struct slotsync_fetch_options fo = { 0 };

	fo.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
	fo.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
	fo.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
	fo.concurrency = 1;
	fo.max_rate_bps = cfg->max_rate;
	fo.stall_timeout_s = (long)cfg->stall_timeout;
	fo.max_attempts = 3; /* a small file: the caller retries later, with backoff */
	return slotsync_fetch_file(&fo, url, (size_t)max, path, NULL, NULL, NULL, err);
}

static int copy_file(const char *from, const char *to, struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = io_read_file(from, SLOTSYNC_BUNDLE_MAX_BYTES, &buf, &len, err);

	if (r == 0)
		r = io_write_file_atomic(to, buf, len, err);
	free(buf);
	return r;
}

struct run_ctx {
	const struct slotsync_install_options *o;
	const struct slotsync_config *cfg;
	struct slotsync_install_record *rec;
	struct slotsync_bundle *bundle;
	struct slotsync_luks_tpm tpm;
	int booted;
	double t0, last_save, rate_t, rate_bytes;
	double rate;
	struct slotsync_volume_handle target, active, data_target, data_active;
};

static void report(struct run_ctx *c)
{
	struct slotsync_install_progress p;

	if (!c->o->progress)
		return;
	p.step = c->rec->step;
	p.bytes_total = c->rec->bytes_total;
	p.bytes_done = c->rec->bytes_done;
	p.bytes_fetched = c->rec->bytes_fetched;
	p.bytes_from_seed = c->rec->bytes_from_seed;
	p.rate = c->rate;
	p.seconds = mono() - c->t0;
	c->o->progress(c->o->progress_ud, &p);
}

static void on_assemble(void *ud, const struct slotsync_assemble_stats *st)
{
	struct run_ctx *c = ud;
	double t = mono();
	/* what is in the slot: written in this run, plus what earlier runs left (by chunk count) */
	uint64_t done = st->bytes_written + (st->chunks_total ? st->bytes_total * (st->chunks_already_done + st->chunks_rechecked) /
									   st->chunks_total
								 : 0);
	struct slotsync_error ignored = { 0 };

	if (done > st->bytes_total)
		done = st->bytes_total;
	if (t - c->rate_t >= 1.0) {
		double inst = (double)(st->bytes_fetched - c->rate_bytes) / (t - c->rate_t);
		c->rate = c->rate > 0 ? 0.7 * c->rate + 0.3 * inst : inst;
		c->rate_t = t;
		c->rate_bytes = (double)st->bytes_fetched;
	}
	c->rec->bytes_total = st->bytes_total;
	c->rec->bytes_done = done;
	c->rec->bytes_fetched = st->bytes_fetched;
	c->rec->bytes_from_seed = st->bytes_from_seed;
	if (t - c->last_save >= 2.0) {
		c->last_save = t;
		(void)record_save(c->cfg, c->rec, &ignored);
	}
	report(c);
}

static int record_header_uuid(void *ud, const char *uuid, struct slotsync_error *err)
{
	struct run_ctx *c = ud;

	if (uuid != c->rec->header_uuid)
		copy_str(c->rec->header_uuid, sizeof(c->rec->header_uuid), uuid);
	return record_save(c->cfg, c->rec, err);
}

static int record_data_uuid(void *ud, const char *uuid, struct slotsync_error *err)
{
	struct run_ctx *c = ud;

	if (uuid != c->rec->data_header_uuid)
		copy_str(c->rec->data_header_uuid, sizeof(c->rec->data_header_uuid), uuid);
	return record_save(c->cfg, c->rec, err);
}

static int open_target(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_slot_config *s = &c->cfg->slot[c->rec->target];
	struct slotsync_volume v = slotsync_slot_volume(s, 0);
	char journal[PATH_MAX];
	int formatted = 0, r;

	if (c->target.path[0])
		return 0;
	r = slotsync_volume_open_write(&v, &c->tpm, c->rec->header_uuid, record_header_uuid, c, &formatted, &c->target,
				       err);
	if (r < 0) {
		slotsync_error_prefix(err, "slot %s", s->name);
		return r;
	}
	if (formatted) {
		/* nothing the assembly journal says of this slot holds any more */
		state_path(c->cfg, "install.journal", journal);
		unlink(journal);
	}
	return 0;
}

/* Environment of the bundle's hooks (docs/install.md). */
static int run_bundle_hook(struct run_ctx *c, const char *kind, const char *name, struct slotsync_error *err)
{
	const struct slotsync_bundle_hook *h = slotsync_bundle_hook(c->bundle, name);
	char dir[PATH_MAX], path[PATH_MAX], what[400];
	char e_hook[64], e_version[300], e_compat[300], e_target[32], e_dev[PATH_MAX + 32], e_booted[32], e_state[PATH_MAX + 32],
		e_bundle[PATH_MAX + 32];
	const char *env[9];
	const char *argv[3] = { path, kind, NULL };
	int fd, r;

	if (!h)
		return slotsync_error_set(err, -ENOENT, "the bundle lacks its %s hook %s", kind, name);
	state_path(c->cfg, "hooks", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return slotsync_error_set_errno(err, -errno, "cannot create %s", dir);
	pathf(path, "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot write %s", path);
	r = io_write_full(fd, h->data, h->len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot write %s", path);
	snprintf(e_hook, sizeof(e_hook), "SLOTSYNC_HOOK=%s", kind);
	snprintf(e_version, sizeof(e_version), "SLOTSYNC_VERSION=%s", c->rec->version);
	snprintf(e_compat, sizeof(e_compat), "SLOTSYNC_COMPATIBLE=%s", c->bundle->manifest->compatible);
	snprintf(e_target, sizeof(e_target), "SLOTSYNC_TARGET_SLOT=%c", 'A' + c->rec->target);
	snprintf(e_dev, sizeof(e_dev), "SLOTSYNC_TARGET_DEVICE=%s", c->target.path);
	snprintf(e_booted, sizeof(e_booted), "SLOTSYNC_BOOTED_SLOT=%c", 'A' + c->booted);
	snprintf(e_state, sizeof(e_state), "SLOTSYNC_STATE_DIR=%s", c->cfg->state_dir);
	snprintf(e_bundle, sizeof(e_bundle), "SLOTSYNC_BUNDLE_SHA256=%s", c->rec->bundle_sha256);
	env[0] = e_hook, env[1] = e_version, env[2] = e_compat, env[3] = e_target, env[4] = e_dev, env[5] = e_booted;
	env[6] = e_state, env[7] = e_bundle, env[8] = NULL;
	snprintf(what, sizeof(what), "%s hook %s", kind, name);
	return run_program(what, argv, 0, env, 0, err);
}

/* ---- the steps -------------------------------------------------------------- */

static int step_verify(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	struct slotsync_install_record *rec = c->rec;
	struct slotsync_policy pol = { 0 };
	struct slotsync_state st;
	struct slotsync_slot_record slots[2];
	char path[PATH_MAX], state[PATH_MAX], reason[512];
	uint8_t d[32];
	int r;

	state_path(cfg, "install.bundle", path);
	r = system_sha256_path(path, 0, d, err);
	if (r < 0)
		return r;
	system_hex(d, rec->bundle_sha256);
	if (c->o->bundle_sha256 && memcmp(d, c->o->bundle_sha256, 32) != 0)
		return slotsync_error_set(err, -EBADMSG, "the bundle is not the one the channel pointer names (SHA-256 differs)");
	r = slotsync_bundle_open(path, cfg->keyring, &c->bundle, err);
	if (r < 0)
		return r;
	copy_str(rec->version, sizeof(rec->version), c->bundle->manifest->version);
	rec->security_version = c->bundle->manifest->security_version;
	rec->bytes_total = c->bundle->manifest->image_size;
	if (slotsync_install_release_failed(cfg, rec->bundle_sha256, NULL, reason, sizeof(reason)))
		return slotsync_error_set(err, -EPERM, "release %s failed on this device before (%s); it is not installed again",
					  rec->version, reason);
	state_path(cfg, "state.json", state);
	r = slotsync_policy_state_load(state, &st, err);
	if (r < 0)
		return r;
	r = slotsync_install_slot_records_load(cfg, slots, err);
	if (r < 0)
		return r;
	pol.compatible = cfg->compatible[0] ? cfg->compatible : NULL;
	/* the running release is what the booted slot holds */
	pol.installed_version = slots[c->booted].version[0] ? slots[c->booted].version : st.installed_version;
	pol.security_floor = st.security_floor;
	pol.allow_downgrade = cfg->allow_downgrade;
	pol.now = c->o->now ? c->o->now : time(NULL);
	if (!pol.compatible)
		return slotsync_error_set(err, -EINVAL, "%s: [system] compatible = is not set", cfg->path);
	r = slotsync_policy_check(c->bundle->manifest, &pol, err);
	if (r < 0)
		return r;
	state_path(cfg, "install.caibx", path);
	return io_write_file_atomic(path, c->bundle->index, c->bundle->index_len, err);
}

static int step_assemble(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_slot_config *act = &cfg->slot[c->booted];
	struct slotsync_assemble_options ao = { 0 };
	struct slotsync_assemble_stats st;
	struct slotsync_slot_record slots[2];
	struct slotsync_volume av = slotsync_slot_volume(act, 0);
	char index[PATH_MAX], journal[PATH_MAX], seed_index[PATH_MAX], seed[PATH_MAX * 2 + 2];
	const char *seeds[1];
	int r;

	r = slot_record_set(cfg, c->rec->target, "writing", NULL, err);
	if (r < 0)
		return r;
	r = open_target(c, err);
	if (r < 0)
		return r;
	/* the active slot is a seed, through its index when the device kept it */
	r = slotsync_volume_open_read(&av, &c->tpm, &c->active, err);
	if (r < 0) {
		slotsync_error_prefix(err, "active slot %s", act->name);
		return r;
	}
	r = slotsync_install_slot_records_load(cfg, slots, err);
	if (r < 0)
		return r;
	pathf(seed_index, "%s/slot-%c.caibx", cfg->state_dir, 'A' + c->booted);
	if ((!strcmp(slots[c->booted].status, "good") || !strcmp(slots[c->booted].status, "installed")) &&
	    access(seed_index, R_OK) == 0)
		snprintf(seed, sizeof(seed), "%s:%s", c->active.path, seed_index);
	else
		snprintf(seed, sizeof(seed), "%s", c->active.path);
	seeds[0] = seed;
	state_path(cfg, "install.caibx", index);
	state_path(cfg, "install.journal", journal);
	ao.index_path = index;
	ao.target = c->target.path;
	ao.journal_path = journal;
	ao.seeds = seeds;
	ao.n_seeds = 1;
	ao.fetch.base_url = cfg->n_stores ? cfg->store[0] : c->bundle->manifest->n_stores ? c->bundle->manifest->stores[0] : NULL;
	if (!ao.fetch.base_url)
		return slotsync_error_set(err, -EINVAL, "no chunk store: neither %s ([update] store =) nor the bundle names one",
					  cfg->path);
	ao.fetch.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
	ao.fetch.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
	ao.fetch.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
	ao.fetch.concurrency = cfg->concurrency;
	ao.fetch.max_rate_bps = cfg->max_rate;
	ao.fetch.stall_timeout_s = (long)cfg->stall_timeout;
	ao.progress = on_assemble;
	ao.progress_userdata = c;
	/* delta objects: only those the signed manifest names */
	ao.signed_deltas = 1;
	ao.deltas = c->bundle->manifest->deltas;
	ao.n_deltas = c->bundle->manifest->n_deltas;
	memset(&st, 0, sizeof(st));
	r = slotsync_assemble(&ao, &st, err);
	if (r == -EEXIST) {
		/* a journal of another index or target: an earlier install's */
		slotsync_log_info("the assembly journal belongs to something else; starting it anew");
		memset(err, 0, sizeof(*err));
		ao.reset_journal = 1;
		r = slotsync_assemble(&ao, &st, err);
	}
	if (r < 0)
		return r;
	c->rec->bytes_done = st.bytes_total;
	c->rec->bytes_fetched = st.bytes_fetched;
	c->rec->bytes_from_seed = st.bytes_from_seed;
	return 0;
}

static int step_verify_slot(struct run_ctx *c, struct slotsync_error *err)
{
	uint8_t d[32];
	int r = open_target(c, err);

	if (r < 0)
		return r;
	r = system_sha256_path(c->target.path, c->bundle->manifest->image_size, d, err);
	if (r < 0)
		return r;
	if (memcmp(d, c->bundle->manifest->image_sha256, 32) != 0) {
		char journal[PATH_MAX];
		state_path(c->cfg, "install.journal", journal);
		unlink(journal); /* the next try writes it all again */
		return slotsync_error_set(err, -EIO, "slot %c does not hold the image the manifest names (SHA-256 differs)",
					  'A' + c->rec->target);
	}
	return 0;
}

static int step_migrate(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	const struct slotsync_slot_config *act = &cfg->slot[c->booted], *tgt = &cfg->slot[c->rec->target];
	struct slotsync_volume av = slotsync_slot_volume(act, 1), tv = slotsync_slot_volume(tgt, 1);
	struct slotsync_migrate_options mo = { 0 };
	int formatted, r;

	if (!tgt->data[0])
		return 0;
	r = open_target(c, err);
	if (r == 0)
		r = slotsync_volume_open_read(&av, &c->tpm, &c->data_active, err);
	if (r == 0)
		r = slotsync_volume_open_write(&tv, &c->tpm, c->rec->data_header_uuid, record_data_uuid, c, &formatted,
					       &c->data_target, err);
	if (r < 0)
		return r;
	mo.from = c->data_active.path;
	mo.to = c->data_target.path;
	mo.image = c->target.path;
	return slotsync_migrate_data(&mo, err);
}

static int step_switch(struct run_ctx *c, struct slotsync_error *err)
{
	const struct slotsync_config *cfg = c->cfg;
	char from[PATH_MAX], to[PATH_MAX];
	int r;

	/* what the slot holds, and its index for the next install's seed */
	state_path(cfg, "install.caibx", from);
	pathf(to, "%s/slot-%c.caibx", cfg->state_dir, 'A' + c->rec->target);
	r = copy_file(from, to, err);
	if (r == 0)
		r = slot_record_set(cfg, c->rec->target, "installed", c->rec, err);
	if (r < 0)
		return r;
	/* a run cut after the switch and before its record finds it made: once is enough */
	{
		struct slotsync_boot_state bs;
		int t = c->rec->target;
		if (slotsync_boot_load(&cfg->boot, &bs, err) == 0 && bs.slot[t].priority > bs.slot[1 - t].priority &&
		    !bs.slot[t].good && bs.slot[t].tries == cfg->boot_tries)
			return 0;
		memset(err, 0, sizeof(*err));
	}
	return slotsync_boot_switch(&cfg->boot, c->rec->target, cfg->boot_tries, err);
}

static void close_all(struct run_ctx *c)
{
	struct slotsync_volume_handle *h[] = { &c->data_target, &c->data_active, &c->target, &c->active };
	struct slotsync_error e = { 0 };

	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (slotsync_volume_close(h[i], &e) < 0)
			slotsync_log_error("%s", slotsync_error_message(&e));
}

/* An error that resuming cannot mend: the install fails for good. */
static int final_error(int step, int r)
{
	if (step == SLOTSYNC_STEP_VERIFY || step == SLOTSYNC_STEP_PRE_INSTALL || step == SLOTSYNC_STEP_POST_INSTALL ||
	    step == SLOTSYNC_STEP_MIGRATE_DATA)
		return r != -ENOMEM && r != -ENOSPC;
	return 0;
}

static int prepare_bundle(const struct slotsync_install_options *o, struct slotsync_install_record *old, int have_old,
			  struct slotsync_error *err)
{
	const struct slotsync_config *cfg = o->cfg;
	char path[PATH_MAX];
	int is_url = !strncmp(o->bundle, "http://", 7) || !strncmp(o->bundle, "https://", 8);
	uint8_t d[32];
	char h[65];

	state_path(cfg, "install.bundle", path);
	if (is_url) {
		/* resuming the same download: keep the bundle already fetched */
		if (have_old && !strcmp(old->source, o->bundle) && system_sha256_path(path, 0, d, err) == 0) {
			system_hex(d, h);
			if (!strcmp(h, old->bundle_sha256))
				return 0;
		}
		memset(err, 0, sizeof(*err));
		return system_download(cfg, o->bundle, o->bundle_max ? o->bundle_max : 64u << 20, path, err);
	}
	return copy_file(o->bundle, path, err);
}

int slotsync_install(const struct slotsync_install_options *o, struct slotsync_install_record *rec,
		     struct slotsync_error *err)
{
	const struct slotsync_config *cfg = o->cfg;
	struct run_ctx c = { 0 };
	struct slotsync_install_record old;
	int lock, have_old, transient = 0, r = 0;
	uint8_t d[32];
	char h[65] = "", bundle_path[PATH_MAX];

	memset(rec, 0, sizeof(*rec));
	r = io_mkdir_p(cfg->state_dir, err);
	if (r < 0)
		return r;
	lock = system_lock(cfg, "install.lock", "another install", err);
	if (lock < 0)
		return lock;
	if (o->abort) {
		r = slotsync_install_abort(cfg, err);
		if (r < 0 || !o->bundle)
			goto out_unlock;
	}
	if (!o->bundle) {
		r = slotsync_error_set(err, -EINVAL, "no bundle given");
		goto out_unlock;
	}
	c.o = o;
	c.cfg = cfg;
	c.rec = rec;
	c.tpm = slotsync_config_tpm(cfg);
	c.t0 = c.rate_t = c.last_save = mono();
	r = slotsync_boot_booted(&cfg->boot, err);
	if (r < 0)
		goto out_unlock;
	c.booted = r;
	r = slotsync_install_record_load(cfg, &old, err);
	if (r < 0 && r != -ENOENT)
		goto out_unlock;
	have_old = r == 0 && old.step > SLOTSYNC_STEP_NONE && old.step < SLOTSYNC_STEP_VALIDATE;
	memset(err, 0, sizeof(*err));
	/* the same bundle as an unfinished install resumes it; another is refused */
	if (have_old) {
		int is_url = !strncmp(o->bundle, "http://", 7) || !strncmp(o->bundle, "https://", 8);
		if (!is_url && system_sha256_path(o->bundle, 0, d, err) == 0)
			system_hex(d, h);
		memset(err, 0, sizeof(*err));
		if ((is_url && strcmp(old.source, o->bundle)) || (!is_url && (strcmp(h, old.bundle_sha256) || !h[0]))) {
			r = slotsync_error_set(err, -EBUSY,
					       "an install of %s (version %s) is unfinished at step %s; run it again to resume it, or --abort it",
					       old.source, old.version[0] ? old.version : "?", step_names[old.step]);
			goto out_unlock;
		}
		if (old.target == c.booted) {
			/* it switched and the new slot booted: only validation is left */
			*rec = old;
			r = 0;
			goto out_unlock;
		}
		*rec = old;
	} else {
		rec->step = SLOTSYNC_STEP_VERIFY;
		rec->target = 1 - c.booted;
		rec->started = time(NULL);
		if (strncmp(o->bundle, "http://", 7) && strncmp(o->bundle, "https://", 8) && realpath(o->bundle, bundle_path))
			copy_str(rec->source, sizeof(rec->source), bundle_path);
		else
			copy_str(rec->source, sizeof(rec->source), o->bundle);
	}
	rec->error[0] = '\0';
	state_path(cfg, "install.bundle", bundle_path);
	if (rec->step == SLOTSYNC_STEP_VERIFY) {
		r = prepare_bundle(o, &old, have_old, err);
		if (r < 0) {
			transient = 1; /* the bundle could not be had: try again later */
			goto out;
		}
	}
	/* every run verifies the bundle it works from */
	if (rec->step == SLOTSYNC_STEP_VERIFY) {
		double t = mono();
		report(&c);
		r = step_verify(&c, err);
		rec->seconds[SLOTSYNC_STEP_VERIFY] += mono() - t;
		if (r < 0)
			goto out;
		rec->step = SLOTSYNC_STEP_PRE_INSTALL;
		r = record_save(cfg, rec, err);
		if (r < 0)
			goto out;
	} else {
		r = slotsync_bundle_open(bundle_path, cfg->keyring, &c.bundle, err);
		if (r == 0 && system_sha256_path(bundle_path, 0, d, err) == 0) {
			system_hex(d, h);
			if (strcmp(h, rec->bundle_sha256))
				r = slotsync_error_set(err, -EBADMSG, "%s changed during the install", bundle_path);
		}
		if (r < 0)
			goto out;
	}
	while (rec->step < SLOTSYNC_STEP_REBOOT) {
		enum slotsync_install_step s = rec->step;
		double t = mono();
		report(&c);
		switch (s) {
		case SLOTSYNC_STEP_PRE_INSTALL:
			r = c.bundle->manifest->hook_pre_install
				    ? (open_target(&c, err) ?: run_bundle_hook(&c, "pre-install", c.bundle->manifest->hook_pre_install, err))
				    : 0;
			break;
		case SLOTSYNC_STEP_ASSEMBLE:
			r = step_assemble(&c, err);
			break;
		case SLOTSYNC_STEP_VERIFY_SLOT:
			r = step_verify_slot(&c, err);
			break;
		case SLOTSYNC_STEP_MIGRATE_DATA:
			r = step_migrate(&c, err);
			break;
		case SLOTSYNC_STEP_POST_INSTALL:
			r = c.bundle->manifest->hook_post_install
				    ? (open_target(&c, err) ?: run_bundle_hook(&c, "post-install", c.bundle->manifest->hook_post_install, err))
				    : 0;
			break;
		case SLOTSYNC_STEP_SWITCH:
			close_all(&c); /* the new slot is closed before it is booted */
			r = step_switch(&c, err);
			break;
		default:
			r = slotsync_error_set(err, -EINVAL, "install journal at an unknown step");
			break;
		}
		rec->seconds[s] += mono() - t;
		if (r < 0) {
			if (s == SLOTSYNC_STEP_VERIFY_SLOT)
				rec->step = SLOTSYNC_STEP_ASSEMBLE; /* written again on the next run */
			goto out;
		}
		rec->step = (enum slotsync_install_step)(s + 1);
		r = record_save(cfg, rec, err);
		if (r < 0)
			goto out;
	}
	report(&c);
out:
	if (r < 0) {
		int step = rec->step;
		slotsync_error_prefix(err, "%s", step_names[step]);
		copy_str(rec->error, sizeof(rec->error), slotsync_error_message(err));
		if (step == SLOTSYNC_STEP_VERIFY) {
			/* nothing was written: nothing to resume; the next try starts afresh */
			rec->step = SLOTSYNC_STEP_FAILED;
			rec->error_final = 1;
		} else if (!transient && final_error(step, r)) {
			struct slotsync_error e2 = { 0 };
			rec->step = SLOTSYNC_STEP_FAILED;
			rec->error_final = 1;
			if (step > SLOTSYNC_STEP_PRE_INSTALL)
				(void)slot_record_set(cfg, rec->target, "bad", NULL, &e2);
			/* a release whose hooks refuse this device is not tried again */
			if (step > SLOTSYNC_STEP_VERIFY && release_failed_add(cfg, rec, rec->error, &e2) < 0)
				slotsync_log_error("%s", slotsync_error_message(&e2));
		}
		if (rec->source[0]) {
			struct slotsync_error e2 = { 0 };
			if (record_save(cfg, rec, &e2) < 0)
				slotsync_log_error("%s", slotsync_error_message(&e2));
		}
	}
	close_all(&c);
	slotsync_bundle_free(c.bundle);
out_unlock:
	close(lock);
	return r;
}

int slotsync_install_abort(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	const char *files[] = { "install.journal", "install.caibx", "install.bundle", "install.bundle.part" };
	char path[PATH_MAX];
	int r = slotsync_install_record_load(cfg, &rec, err);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (rec.step >= SLOTSYNC_STEP_DONE)
		return 0;
	if (rec.step >= SLOTSYNC_STEP_REBOOT) {
		/* switched already: the running slot stays */
		int booted = slotsync_boot_booted(&cfg->boot, err);
		if (booted == rec.target)
			return slotsync_error_set(err, -EBUSY,
						  "the install of %s has switched and its slot is running; mark it good or bad instead",
						  rec.version);
		memset(err, 0, sizeof(*err));
		r = slotsync_boot_mark_bad(&cfg->boot, rec.target, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		state_path(cfg, files[i], path);
		unlink(path);
	}
	if (rec.step > SLOTSYNC_STEP_PRE_INSTALL)
		(void)slot_record_set(cfg, rec.target, "", NULL, err);
	rec.step = SLOTSYNC_STEP_FAILED;
	rec.error_final = 1;
	snprintf(rec.error, sizeof(rec.error), "aborted");
	return record_save(cfg, &rec, err);
}

int slotsync_install_reboot_requested(const struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	int r = slotsync_install_record_load(cfg, &rec, err);

	if (r < 0)
		return r;
	if (rec.step != SLOTSYNC_STEP_REBOOT)
		return 0;
	rec.step = SLOTSYNC_STEP_VALIDATE;
	return record_save(cfg, &rec, err);
}

/* Device state after a good boot: the version that runs, the floor raised. */
static int release_good(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct slotsync_state st;
	int r;

	state_path(cfg, "state.json", path);
	r = slotsync_policy_state_load(path, &st, err);
	if (r < 0)
		return r;
	copy_str(st.installed_version, sizeof(st.installed_version), rec->version);
	if (rec->security_version > st.security_floor)
		st.security_floor = rec->security_version;
	return slotsync_policy_state_save(path, &st, err);
}

int system_awaiting_validation(const struct slotsync_config *cfg, struct slotsync_install_record *rec, int *booted,
			       struct slotsync_error *err)
{
	int r = slotsync_install_record_load(cfg, rec, err);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (rec->step != SLOTSYNC_STEP_REBOOT && rec->step != SLOTSYNC_STEP_VALIDATE)
		return 0;
	*booted = slotsync_boot_booted(&cfg->boot, err);
	return *booted < 0 ? *booted : 1;
}

int slotsync_install_validate(const struct slotsync_config *cfg, int good, const char *reason, int *settled,
			      struct slotsync_error *err)
{
	struct slotsync_install_record rec;
	struct slotsync_boot_state bs;
	int booted, r;

	*settled = 0;
	r = system_awaiting_validation(cfg, &rec, &booted, err);
	if (r <= 0)
		return r;
	if (booted == rec.target) {
		if (good) {
			r = slotsync_boot_mark_good(&cfg->boot, rec.target, err);
			if (r == 0)
				r = slot_record_set(cfg, rec.target, "good", &rec, err);
			if (r == 0)
				r = release_good(cfg, &rec, err);
			if (r < 0)
				return r;
			rec.step = SLOTSYNC_STEP_DONE;
		} else {
			r = slotsync_boot_mark_bad(&cfg->boot, rec.target, err);
			if (r == 0)
				r = slot_record_set(cfg, rec.target, "bad", NULL, err);
			if (r == 0)
				r = release_failed_add(cfg, &rec, reason ? reason : "marked bad", err);
			if (r < 0)
				return r;
			rec.step = SLOTSYNC_STEP_FAILED;
			snprintf(rec.error, sizeof(rec.error), "slot %c failed its health checks: %s", 'A' + rec.target,
				 reason ? reason : "marked bad");
		}
		*settled = 1;
		return record_save(cfg, &rec, err);
	}
	/* the old slot runs: did the new one run out of tries, or is the reboot still to come? */
	r = slotsync_boot_load(&cfg->boot, &bs, err);
	if (r < 0)
		return r;
	if (rec.step == SLOTSYNC_STEP_VALIDATE && !bs.slot[rec.target].good &&
	    (bs.slot[rec.target].tries == 0 || bs.slot[rec.target].priority == 0)) {
		r = slot_record_set(cfg, rec.target, "bad", NULL, err);
		if (r == 0)
			r = release_failed_add(cfg, &rec, "never proved good: the bootloader fell back", err);
		if (r < 0)
			return r;
		rec.step = SLOTSYNC_STEP_FAILED;
		snprintf(rec.error, sizeof(rec.error), "slot %c never proved good; the bootloader fell back to slot %c",
			 'A' + rec.target, 'A' + booted);
		*settled = 1;
		return record_save(cfg, &rec, err);
	}
	return 0;
}

int slotsync_install_mark(const struct slotsync_config *cfg, int good, struct slotsync_error *err)
{
	int settled = 0, booted, r;

	r = slotsync_install_validate(cfg, good, good ? NULL : "marked bad by the operator", &settled, err);
	if (r < 0 || settled)
		return r;
	booted = slotsync_boot_booted(&cfg->boot, err);
	if (booted < 0)
		return booted;
	r = good ? slotsync_boot_mark_good(&cfg->boot, booted, err) : slotsync_boot_mark_bad(&cfg->boot, booted, err);
	if (r == 0) {
		struct slotsync_slot_record s[2];
		if (slotsync_install_slot_records_load(cfg, s, err) == 0 && s[booted].status[0])
			r = slot_record_set(cfg, booted, good ? "good" : "bad", NULL, err);
	}
	return r;
}

/* ---- status --------------------------------------------------------------- */

int slotsync_install_status_json(const struct slotsync_config *cfg, char **out, struct slotsync_error *err)
{
	struct json_object *o = json_object_new_object(), *slots = json_object_new_object(), *inst, *f = NULL, *list;
	struct slotsync_slot_record sr[2];
	struct slotsync_boot_state bs;
	struct slotsync_install_record rec;
	struct slotsync_error e = { 0 };
	char path[PATH_MAX];
	int booted = slotsync_boot_booted(&cfg->boot, &e), have_boot, r;

	*out = NULL;
	json_object_object_add(o, "compatible", json_object_new_string(cfg->compatible));
	json_object_object_add(o, "booted", booted >= 0 ? json_object_new_string(booted ? "B" : "A") : NULL);
	memset(&e, 0, sizeof(e));
	have_boot = slotsync_boot_load(&cfg->boot, &bs, &e) == 0;
	json_object_object_add(o, "boot_backend", json_object_new_string(slotsync_boot_backend_name(cfg->boot.backend)));
	if (!have_boot)
		json_object_object_add(o, "boot_error", json_object_new_string(slotsync_error_message(&e)));
	r = slotsync_install_slot_records_load(cfg, sr, err);
	if (r < 0) {
		json_object_put(o);
		json_object_put(slots);
		return r;
	}
	for (int i = 0; i < 2; i++) {
		const char name[2] = { (char)('A' + i), '\0' };
		struct json_object *s = json_object_new_object();
		json_object_object_add(s, "device", json_object_new_string(cfg->slot[i].device));
		json_object_object_add(s, "backend", json_object_new_string(slotsync_slot_backend_name(cfg->slot[i].backend)));
		json_object_object_add(s, "status", json_object_new_string(sr[i].status[0] ? sr[i].status : "unknown"));
		json_object_object_add(s, "version", sr[i].version[0] ? json_object_new_string(sr[i].version) : NULL);
		json_object_object_add(s, "booted", json_object_new_boolean(booted == i));
		if (have_boot) {
			json_object_object_add(s, "priority", json_object_new_int(bs.slot[i].priority));
			json_object_object_add(s, "tries", json_object_new_int(bs.slot[i].tries));
			json_object_object_add(s, "good", json_object_new_boolean(bs.slot[i].good));
		}
		json_object_object_add(slots, name, s);
	}
	json_object_object_add(o, "slots", slots);
	memset(&e, 0, sizeof(e));
	r = slotsync_install_record_load(cfg, &rec, &e);
	if (r == 0) {
		inst = record_json(&rec);
		json_object_object_add(o, "install", inst);
	} else {
		json_object_object_add(o, "install", NULL);
		if (r != -ENOENT)
			json_object_object_add(o, "install_error", json_object_new_string(slotsync_error_message(&e)));
	}
	state_path(cfg, "agent.json", path);
	memset(&e, 0, sizeof(e));
	if (access(path, F_OK) == 0 && system_json_load(path, &f, &e) == 0)
		json_object_object_add(o, "agent", f);
	f = NULL;
	state_path(cfg, "failed.json", path);
	memset(&e, 0, sizeof(e));
	if (access(path, F_OK) == 0 && system_json_load(path, &f, &e) == 0 && json_object_object_get_ex(f, "releases", &list))
		json_object_object_add(o, "failed_releases", json_object_get(list));
	else
		json_object_object_add(o, "failed_releases", json_object_new_array());
	json_object_put(f);
	*out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return *out ? 0 : slotsync_error_set(err, -ENOMEM, "out of memory");
}
