/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the install remembers in the state folder: the install journal
 * (install.json), what each slot holds (slots.json), the releases that failed
 * here (failed.json) and the device state a good release leaves (state.json,
 * policy.h's), the lock that keeps installs one at a time, and the JSON file
 * helpers all of them use.  Every file is replaced atomically
 * (io_write_file_atomic): a cut leaves the old record or the new, never half.
 * The steps that write these records are in install.c. */
#include "slotsync/install.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "internal.h"
#include "slotsync/policy.h"

static const char *const step_names[SLOTSYNC_STEP_COUNT] = {
	"none",	  "verify", "pre-install", "assemble", "verify-slot", "images", "migrate-data",
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
void system_pathf(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		out[0] = '\0';
}

void system_state_path(const struct slotsync_config *cfg, const char *name, char out[PATH_MAX])
{
	system_pathf(out, "%s/%s", cfg->state_dir, name);
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

void system_copy_str(char *dst, size_t size, const char *src)
{
	if (snprintf(dst, size, "%s", src ? src : "") >= (int)size)
		dst[size - 1] = '\0'; /* cut: only ever messages */
}

/* ---- the install journal --------------------------------------------------- */

int slotsync_install_record_load(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
				 struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o, *secs, *imgs, *dv;
	int step;

	memset(rec, 0, sizeof(*rec));
	system_state_path(cfg, "install.json", path);
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
	system_copy_str(rec->source, sizeof(rec->source), jstr(o, "source"));
	system_copy_str(rec->bundle_sha256, sizeof(rec->bundle_sha256), jstr(o, "bundle_sha256"));
	system_copy_str(rec->version, sizeof(rec->version), jstr(o, "version"));
	system_copy_str(rec->header_uuid, sizeof(rec->header_uuid), jstr(o, "header_uuid"));
	system_copy_str(rec->data_header_uuid, sizeof(rec->data_header_uuid), jstr(o, "data_header_uuid"));
	system_copy_str(rec->error, sizeof(rec->error), jstr(o, "error"));
	rec->security_version = ju64(o, "security_version");
	rec->started = (time_t)ju64(o, "started");
	rec->updated = (time_t)ju64(o, "updated");
	rec->bytes_total = ju64(o, "bytes_total");
	rec->bytes_done = ju64(o, "bytes_done");
	rec->bytes_fetched = ju64(o, "bytes_fetched");
	rec->bytes_from_seed = ju64(o, "bytes_from_seed");
	rec->error_final = rec->step == SLOTSYNC_STEP_FAILED;
	rec->missing_runs = (unsigned)ju64(o, "missing_runs");
	system_copy_str(rec->index_from, sizeof(rec->index_from), jstr(o, "index_from"));
	rec->index_bytes_fetched = ju64(o, "index_bytes_fetched");
	rec->delta_objects_skipped = ju64(o, "delta_objects_skipped");
	system_copy_str(rec->delta_note, sizeof(rec->delta_note), jstr(o, "delta_note"));
	if (json_object_object_get_ex(o, "images", &imgs) && json_object_is_type(imgs, json_type_array))
		for (size_t i = 0; i < json_object_array_length(imgs) && rec->n_images < 8; i++) {
			struct json_object *v = json_object_array_get_idx(imgs, i);
			struct slotsync_install_image *im = &rec->images[rec->n_images];
			if (!json_object_is_type(v, json_type_object) || !jstr(v, "name")[0])
				continue;
			system_copy_str(im->name, sizeof(im->name), jstr(v, "name"));
			im->done = json_object_object_get_ex(v, "done", &dv) && json_object_get_boolean(dv);
			im->bytes_total = ju64(v, "bytes_total");
			im->bytes_done = ju64(v, "bytes_done");
			im->bytes_fetched = ju64(v, "bytes_fetched");
			im->bytes_from_seed = ju64(v, "bytes_from_seed");
			rec->n_images++;
		}
	if (json_object_object_get_ex(o, "mirrors", &imgs) && json_object_is_type(imgs, json_type_array))
		for (size_t i = 0; i < json_object_array_length(imgs) && rec->n_mirrors < SLOTSYNC_INSTALL_MIRRORS_MAX; i++) {
			struct json_object *v = json_object_array_get_idx(imgs, i);
			struct slotsync_install_mirror *mi = &rec->mirrors[rec->n_mirrors];
			if (!json_object_is_type(v, json_type_object))
				continue;
			system_copy_str(mi->url, sizeof(mi->url), jstr(v, "url"));
			mi->bytes = ju64(v, "bytes");
			mi->objects = ju64(v, "objects");
			mi->objects_moved = ju64(v, "objects_moved");
			mi->connections = (long)ju64(v, "connections");
			system_copy_str(mi->dropped, sizeof(mi->dropped), jstr(v, "dropped"));
			rec->n_mirrors++;
		}
	if (json_object_object_get_ex(o, "seconds", &secs) && json_object_is_type(secs, json_type_object))
		for (int i = 0; i < SLOTSYNC_STEP_COUNT; i++) {
			struct json_object *v;
			if (json_object_object_get_ex(secs, step_names[i], &v))
				rec->seconds[i] = json_object_get_double(v);
		}
	json_object_put(o);
	return 0;
}

struct json_object *system_record_json(const struct slotsync_install_record *rec)
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
	if (rec->missing_runs)
		json_object_object_add(o, "missing_runs", json_object_new_int64((int64_t)rec->missing_runs));
	if (rec->index_from[0]) {
		json_object_object_add(o, "index_from", json_object_new_string(rec->index_from));
		json_object_object_add(o, "index_bytes_fetched", json_object_new_int64((int64_t)rec->index_bytes_fetched));
	}
	if (rec->delta_objects_skipped || rec->delta_note[0]) {
		json_object_object_add(o, "delta_objects_skipped", json_object_new_int64((int64_t)rec->delta_objects_skipped));
		json_object_object_add(o, "delta_note", json_object_new_string(rec->delta_note));
	}
	if (rec->n_images) {
		struct json_object *imgs = json_object_new_array();
		for (size_t i = 0; i < rec->n_images; i++) {
			const struct slotsync_install_image *im = &rec->images[i];
			struct json_object *v = json_object_new_object();
			json_object_object_add(v, "name", json_object_new_string(im->name));
			json_object_object_add(v, "done", json_object_new_boolean(im->done));
			json_object_object_add(v, "bytes_total", json_object_new_int64((int64_t)im->bytes_total));
			json_object_object_add(v, "bytes_done", json_object_new_int64((int64_t)im->bytes_done));
			json_object_object_add(v, "bytes_fetched", json_object_new_int64((int64_t)im->bytes_fetched));
			json_object_object_add(v, "bytes_from_seed", json_object_new_int64((int64_t)im->bytes_from_seed));
			json_object_array_add(imgs, v);
		}
		json_object_object_add(o, "images", imgs);
	}
	if (rec->n_mirrors) {
		struct json_object *ms = json_object_new_array();
		for (size_t i = 0; i < rec->n_mirrors; i++) {
			const struct slotsync_install_mirror *mi = &rec->mirrors[i];
			struct json_object *v = json_object_new_object();
			json_object_object_add(v, "url", json_object_new_string(mi->url));
			json_object_object_add(v, "bytes", json_object_new_int64((int64_t)mi->bytes));
			json_object_object_add(v, "objects", json_object_new_int64((int64_t)mi->objects));
			json_object_object_add(v, "objects_moved", json_object_new_int64((int64_t)mi->objects_moved));
			json_object_object_add(v, "connections", json_object_new_int64((int64_t)mi->connections));
			if (mi->dropped[0])
				json_object_object_add(v, "dropped", json_object_new_string(mi->dropped));
			json_object_array_add(ms, v);
		}
		json_object_object_add(o, "mirrors", ms);
	}
	for (int i = SLOTSYNC_STEP_VERIFY; i < SLOTSYNC_STEP_DONE; i++)
		if (rec->seconds[i] > 0)
			json_object_object_add(secs, step_names[i], json_object_new_double(rec->seconds[i]));
	json_object_object_add(o, "seconds", secs);
	return o;
}

static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

int system_record_save(const struct slotsync_config *cfg, struct slotsync_install_record *rec,
		       struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o;
	int r;

	pthread_mutex_lock(&record_lock);
	rec->updated = time(NULL);
	o = system_record_json(rec);
	system_state_path(cfg, "install.json", path);
	r = system_json_save(path, o, err);
	json_object_put(o);
	pthread_mutex_unlock(&record_lock);
	return r;
}

/* ---- slots.json, failed.json, state.json ---------------------------------- */

int slotsync_install_slot_records_load(const struct slotsync_config *cfg, struct slotsync_slot_record rec[2],
				       struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o, *s;

	memset(rec, 0, 2 * sizeof(*rec));
	system_state_path(cfg, "slots.json", path);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (system_json_load(path, &o, err) < 0)
		return -EBADMSG;
	for (int i = 0; i < 2; i++) {
		const char name[2] = { (char)('A' + i), '\0' };
		if (!json_object_object_get_ex(o, name, &s) || !json_object_is_type(s, json_type_object))
			continue;
		system_copy_str(rec[i].status, sizeof(rec[i].status), jstr(s, "status"));
		system_copy_str(rec[i].version, sizeof(rec[i].version), jstr(s, "version"));
		system_copy_str(rec[i].bundle_sha256, sizeof(rec[i].bundle_sha256), jstr(s, "bundle_sha256"));
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
	system_state_path(cfg, "slots.json", path);
	r = system_json_save(path, o, err);
	json_object_put(o);
	return r;
}

int system_slot_record_set(const struct slotsync_config *cfg, int slot, const char *status,
			   const struct slotsync_install_record *rec, struct slotsync_error *err)
{
	struct slotsync_slot_record s[2];
	int r = slotsync_install_slot_records_load(cfg, s, err);

	if (r < 0)
		return r;
	system_copy_str(s[slot].status, sizeof(s[slot].status), status);
	if (rec) {
		system_copy_str(s[slot].version, sizeof(s[slot].version), rec->version);
		system_copy_str(s[slot].bundle_sha256, sizeof(s[slot].bundle_sha256), rec->bundle_sha256);
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

	system_state_path(cfg, "failed.json", path);
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

int system_release_failed_add(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			      const char *reason, struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *list, *e;
	int r;

	system_state_path(cfg, "failed.json", path);
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

/* Device state after a good boot: the version that runs, the floor raised. */
int system_release_good(const struct slotsync_config *cfg, const struct slotsync_install_record *rec,
			struct slotsync_error *err)
{
	char path[PATH_MAX];
	struct slotsync_state st;
	int r;

	system_state_path(cfg, "state.json", path);
	r = slotsync_policy_state_load(path, &st, err);
	if (r < 0)
		return r;
	system_copy_str(st.installed_version, sizeof(st.installed_version), rec->version);
	if (rec->security_version > st.security_floor)
		st.security_floor = rec->security_version;
	return slotsync_policy_state_save(path, &st, err);
}

/* ---- the lock --------------------------------------------------------------- */

int system_lock(const struct slotsync_config *cfg, const char *name, const char *holder, struct slotsync_error *err)
{
	char path[PATH_MAX], pid[32] = "";
	int fd, n;

	/* the agent and every install start here: the state folder must be theirs */
	if (io_check_private_dir(cfg->state_dir, err) < 0)
		return -EPERM;
	system_state_path(cfg, name, path);
	/* O_NOFOLLOW: a symlink planted as the lock is refused, never followed */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ELOOP)
		return slotsync_error_set(err, -ELOOP, "%s is a symbolic link: refused", path);
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
