/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device's configuration: see include/slotsync/config.h. */
#include "slotsync/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "slotsync/features.h"
#include "slotsync/fetch.h"
#include "slotsync/manifest.h"

#define SEEN_MAX 96

struct parse_ctx {
	struct slotsync_config *cfg;
	const char *name;
	const char *text;             /* the configuration given as a string, or NULL: read from name */
	char error[512];              /* the first error; inih gives its line */
	char seen[SEEN_MAX][80];      /* "section\nkey" of every key given once */
	int n_seen;
	int slot_seen[2];
};

static int parse_hhmm(const char *s, const char **end, int *minutes)
{
	int h, m;

	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -EINVAL;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59)
		return -EINVAL;
	*minutes = h * 60 + m;
	*end = s + 5;
	return 0;
}

static int parse_window(const char *s, int *start, int *stop)
{
	const char *e;

	if (!strcmp(s, "always")) {
		*start = *stop = -1;
		return 0;
	}
	if (parse_hhmm(s, &e, start) < 0 || *e != '-' || parse_hhmm(e + 1, &e, stop) < 0 || *e || *start == *stop)
		return -EINVAL;
	return 0;
}

/* "/abs/path" of at most size-1 bytes */
static int set_path(char *dst, size_t size, const char *v)
{
	if (v[0] != '/' || strlen(v) >= size)
		return -EINVAL;
	snprintf(dst, size, "%s", v);
	return 0;
}

static int set_string(char *dst, size_t size, const char *v)
{
	if (!*v || strlen(v) >= size)
		return -EINVAL;
	snprintf(dst, size, "%s", v);
	return 0;
}

/* https://, http:// (refused at the end unless allow-plain-http = yes, which
 * may come later in the file) or file://; never a URL without its scheme. */
static int set_url(char *dst, size_t size, const char *v)
{
	if (parse_url(v, 1) < 0 || v[0] == '/')
		return -EINVAL;
	return set_string(dst, size, v);
}

static int set_mapping(char *dst, size_t size, const char *v)
{
	if (!*v || strlen(v) >= size || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, ".."))
		return -EINVAL;
	snprintf(dst, size, "%s", v);
	return 0;
}

static int key_system(struct slotsync_config *c, const char *k, const char *v)
{
	if (!strcmp(k, "compatible"))
		return set_string(c->compatible, sizeof(c->compatible), v);
	if (!strcmp(k, "state-dir"))
		return set_path(c->state_dir, sizeof(c->state_dir), v);
	if (!strcmp(k, "keyring"))
		return set_path(c->keyring, sizeof(c->keyring), v);
	if (!strcmp(k, "allow-downgrade"))
		return parse_bool(v, &c->allow_downgrade);
	if (!strcmp(k, "boot-tries")) {
		int r = parse_int(v, 1, SLOTSYNC_BOOT_TRIES_MAX, &c->boot_tries);
		if (r == 0)
			c->boot.default_tries = c->boot_tries;
		return r;
	}
	return -ENOENT;
}

static int key_tpm(struct slotsync_config *c, const char *k, const char *v)
{
	if (!SLOTSYNC_HAVE_TPM)
		return -ENOTSUP;
	if (!strcmp(k, "tcti"))
		return set_string(c->tcti, sizeof(c->tcti), v);
	if (!strcmp(k, "pcrs")) {
		char buf[128], *save = NULL;
		uint32_t mask = 0;
		if (strlen(v) >= sizeof(buf))
			return -EINVAL;
		if (!strcmp(v, "none")) {
			c->pcr_mask = 0;
			return 0;
		}
		snprintf(buf, sizeof(buf), "%s", v);
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			int n;
			if (parse_int(t, 0, 23, &n) < 0)
				return -EINVAL;
			mask |= 1u << n;
		}
		if (!mask)
			return -EINVAL;
		c->pcr_mask = mask;
		return 0;
	}
	if (!strcmp(k, "root-pcr")) {
		if (!strcmp(v, "none")) {
			c->root_pcr = -1;
			return 0;
		}
		return parse_int(v, 0, 23, &c->root_pcr);
	}
	return -ENOENT;
}

static int key_update(struct slotsync_config *c, const char *k, const char *v)
{
	if (!strcmp(k, "channel"))
		return set_url(c->channel, sizeof(c->channel), v);
	if (!strcmp(k, "store")) {
		if (c->n_stores >= SLOTSYNC_CONFIG_STORES_MAX)
			return -E2BIG;
		/* a local folder too: an absolute path or a file:// URL */
		if (v[0] == '/' || !strncmp(v, "file://", 7)) {
			struct slotsync_error e = { 0 };
			if (slotsync_fetch_store_url(v, c->store[c->n_stores], sizeof(c->store[0]), &e) < 0)
				return -EINVAL;
		} else if (set_url(c->store[c->n_stores], sizeof(c->store[0]), v) < 0) {
			return -EINVAL;
		}
		c->n_stores++;
		return 0;
	}
	if (!strcmp(k, "allow-plain-http"))
		return parse_bool(v, &c->allow_plain_http);
	if (!strcmp(k, "ca-file"))
		return set_path(c->ca_file, sizeof(c->ca_file), v);
	if (!strcmp(k, "client-cert"))
		return set_path(c->client_cert, sizeof(c->client_cert), v);
	if (!strcmp(k, "client-key"))
		return set_path(c->client_key, sizeof(c->client_key), v);
	if (!strcmp(k, "concurrency"))
		return parse_int(v, 1, 256, &c->concurrency);
	if (!strcmp(k, "max-rate"))
		return !strcmp(v, "none") ? (c->max_rate = 0, 0) : parse_size(v, &c->max_rate);
	if (!strcmp(k, "min-rate")) {
		int r = !strcmp(v, "none") ? (c->min_rate = UINT64_MAX, 0) : parse_size(v, &c->min_rate);
		return r < 0 ? r : c->min_rate < 1 ? -EINVAL : 0;
	}
	if (!strcmp(k, "poll-interval")) {
		int r = parse_duration_s(v, &c->poll_interval);
		return r < 0 ? r : c->poll_interval < 1 ? -EINVAL : 0;
	}
	if (!strcmp(k, "stall-timeout")) {
		int r = parse_duration_s(v, &c->stall_timeout);
		return r < 0 ? r : c->stall_timeout < 1 || c->stall_timeout > 86400 ? -EINVAL : 0;
	}
	if (!strcmp(k, "poll-jitter"))
		return parse_duration_s(v, &c->poll_jitter);
	if (!strcmp(k, "window"))
		return parse_window(v, &c->window_start, &c->window_end);
	if (!strcmp(k, "reboot-command"))
		return set_string(c->reboot_command, sizeof(c->reboot_command), v);
	if (!strcmp(k, "health-dir"))
		return set_path(c->health_dir, sizeof(c->health_dir), v);
	if (!strcmp(k, "health-timeout")) {
		int r = parse_duration_s(v, &c->health_timeout);
		return r < 0 ? r : c->health_timeout < 1 ? -EINVAL : 0;
	}
	return -ENOENT;
}

/* A further image of the slot group: its volume, kept sorted by name. */
static int add_slot_image(struct slotsync_slot_config *s, const char *k, const char *v)
{
	struct slotsync_slot_image im;
	size_t i;
	int r;

	if (s->n_images == SLOTSYNC_SLOT_IMAGES_MAX)
		return -E2BIG;
	memset(&im, 0, sizeof(im));
	snprintf(im.name, sizeof(im.name), "%s", k);
	r = set_path(im.device, sizeof(im.device), v);
	if (r < 0)
		return r;
	for (i = s->n_images; i > 0 && strcmp(s->images[i - 1].name, k) > 0; i--)
		s->images[i] = s->images[i - 1];
	s->images[i] = im;
	s->n_images++;
	return 0;
}

static int key_slot(struct slotsync_slot_config *s, const char *k, const char *v)
{
	/* rootfs = is the main image's volume, the same as device = */
	if (!strcmp(k, "device") || !strcmp(k, "rootfs"))
		return s->device[0] ? -EEXIST : set_path(s->device, sizeof(s->device), v);
	if (!strcmp(k, "backend")) {
		int r = slotsync_slot_backend_parse(v, &s->backend);
		if (r == 0 && s->backend == SLOTSYNC_SLOT_LUKS2 && !SLOTSYNC_HAVE_LUKS2)
			return -ENOTSUP;
		return r;
	}
	if (!strcmp(k, "data"))
		return set_path(s->data, sizeof(s->data), v);
	if (!strcmp(k, "mapping"))
		return set_mapping(s->mapping, sizeof(s->mapping), v);
	if (!strcmp(k, "data-mapping"))
		return set_mapping(s->data_mapping, sizeof(s->data_mapping), v);
	/* any other key that is an image name names a further image */
	if (slotsync_image_name_valid(k))
		return add_slot_image(s, k, v);
	return -ENOENT;
}

/* What a key refused for want of a feature needs: its name and build option. */
static const char *const *feature_needed(const char *section, const char *value)
{
	static const char *const tpm[] = { "TPM support", "-DSLOTSYNC_TPM=ON" };
	static const char *const luks[] = { "LUKS2 support", "-DSLOTSYNC_LUKS2=ON" };
	static const char *const uboot[] = { "the U-Boot backend", "-DSLOTSYNC_UBOOT=ON" };

	if (!strcmp(section, "tpm"))
		return tpm;
	if (!strcmp(section, "boot") && !strcmp(value, "uboot"))
		return uboot;
	return luks;
}

__attribute__((format(printf, 2, 3))) static int fail(struct parse_ctx *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->error[0]) {
		va_start(ap, fmt);
		vsnprintf(p->error, sizeof(p->error), fmt, ap);
		va_end(ap);
	}
	return 0; /* inih: an error on this line */
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *p = user;
	struct slotsync_config *c = p->cfg;
	char seen[80];
	int r, repeatable = !strcmp(section, "update") && !strcmp(key, "store");

	snprintf(seen, sizeof(seen), "%s\n%s", section, key);
	if (!repeatable) {
		for (int i = 0; i < p->n_seen; i++)
			if (!strcmp(p->seen[i], seen))
				return fail(p, "key \"%s\" in [%s] is given twice", key, section);
		if (p->n_seen < SEEN_MAX)
			snprintf(p->seen[p->n_seen++], sizeof(p->seen[0]), "%s", seen);
	}
	if (!strcmp(section, "system"))
		r = key_system(c, key, value);
	else if (!strcmp(section, "boot"))
		r = slotsync_boot_config_set(&c->boot, key, value);
	else if (!strcmp(section, "tpm"))
		r = key_tpm(c, key, value);
	else if (!strcmp(section, "update"))
		r = key_update(c, key, value);
	else if (!strcasecmp(section, "slot.A") || !strcasecmp(section, "slot.B")) {
		int i = toupper((unsigned char)section[5]) - 'A';
		p->slot_seen[i] = 1;
		r = key_slot(&c->slot[i], key, value);
	} else
		return fail(p, "unknown section [%s] (key \"%s\")", section, key);
	if (!strcmp(section, "boot") && !strcmp(key, "booted"))
		r = -ENOENT; /* the booted slot comes from the kernel command line */
	if (r == -ENOENT)
		return fail(p, "unknown key \"%s\" in [%s]", key, section);
	if (r == -E2BIG)
		return fail(p, "too many \"%s\" keys in [%s]", key, section);
	if (r == -EEXIST)
		return fail(p, "rootfs = and device = in [%s] both name the main image's volume: give one of them", section);
	if (r == -ENOTSUP)
		return fail(p, "\"%s = %s\" in [%s] needs %s, which this build of slotsync lacks (build it with %s)",
			    key, value, section, feature_needed(section, value)[0], feature_needed(section, value)[1]);
	if (r < 0)
		return fail(p, "bad value \"%s\" for key \"%s\" in [%s]", value, key, section);
	return 1;
}

static void defaults(struct slotsync_config *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", name);
	snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/slotsync");
	snprintf(c->keyring, sizeof(c->keyring), "/etc/slotsync/keyring.pem");
	slotsync_boot_config_defaults(&c->boot);
	c->boot_tries = c->boot.default_tries;
	c->poll_interval = 6 * 3600;
	c->stall_timeout = 30;
	c->poll_jitter = 30 * 60;
	c->window_start = c->window_end = -1;
	snprintf(c->reboot_command, sizeof(c->reboot_command), "systemctl reboot");
	snprintf(c->health_dir, sizeof(c->health_dir), "/usr/lib/slotsync/health.d");
	c->health_timeout = 120;
	c->root_pcr = -1; /* measuring the root needs an initramfs that does it */
	for (int i = 0; i < 2; i++) {
		snprintf(c->slot[i].name, sizeof(c->slot[i].name), "%c", 'A' + i);
		snprintf(c->slot[i].mapping, sizeof(c->slot[i].mapping), "slotsync-%c", 'A' + i);
		snprintf(c->slot[i].data_mapping, sizeof(c->slot[i].data_mapping), "slotsync-data-%c", 'A' + i);
	}
}

/* Whether line number `line` of the configuration opens a section it does not
 * close ("[system"): inih reports that line, and the keys after it land in a
 * section named "", whose error must not be the one told. */
static int open_section_header(const struct parse_ctx *p, int line)
{
	char buf[512];
	const char *t = p->text, *s;
	FILE *f = NULL;
	int n = 0, found = 0;

	if (!t && !(f = fopen(p->name, "r")))
		return 0;
	while (!found) {
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				break;
		} else {
			size_t len = strcspn(t, "\n");
			if (!*t)
				break;
			snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), t);
			t += len + (t[len] == '\n');
		}
		if (++n < line)
			continue;
		s = buf + strspn(buf, " \t");
		found = *s == '[' && !strchr(s, ']') ? 1 : -1;
	}
	if (f)
		fclose(f);
	return found == 1;
}

/* Both slots name the same further images, each on a volume of its own. */
static int check_slot_images(const struct slotsync_config *c, const char *name, struct slotsync_error *err)
{
	for (int i = 0; i < 2; i++) {
		const struct slotsync_slot_config *s = &c->slot[i], *o = &c->slot[1 - i];
		for (size_t k = 0; k < s->n_images; k++) {
			const struct slotsync_slot_image *im = &s->images[k];
			size_t j;
			for (j = 0; j < o->n_images && strcmp(o->images[j].name, im->name); j++)
				;
			if (j == o->n_images)
				return slotsync_error_set(err, -EINVAL,
							  "%s: [slot.%s] names image \"%s\" and [slot.%s] does not: both slots name the same images",
							  name, s->name, im->name, o->name);
			if (!strcmp(im->device, o->images[j].device) || !strcmp(im->device, s->device) ||
			    !strcmp(im->device, o->device) || (s->data[0] && !strcmp(im->device, s->data)) ||
			    (o->data[0] && !strcmp(im->device, o->data)))
				return slotsync_error_set(err, -EINVAL,
							  "%s: image \"%s\" of [slot.%s] is on %s, which another volume uses too",
							  name, im->name, s->name, im->device);
			for (size_t l = 0; l < s->n_images; l++)
				if (l != k && !strcmp(im->device, s->images[l].device))
					return slotsync_error_set(err, -EINVAL,
								  "%s: images \"%s\" and \"%s\" of [slot.%s] are on the same volume %s",
								  name, im->name, s->images[l].name, s->name, im->device);
		}
	}
	return 0;
}

static int finish(struct parse_ctx *p, int line, struct slotsync_error *err)
{
	struct slotsync_config *c = p->cfg;
	int r;

	if (line == -1)
		return slotsync_error_set_errno(err, errno ? -errno : -ENOENT, "cannot read config %s", p->name);
	if (line == -2)
		return slotsync_error_set(err, -ENOMEM, "out of memory reading %s", p->name);
	if (line > 0 && open_section_header(p, line))
		return slotsync_error_set(err, -EINVAL, "%s: line %d: section header without ]", p->name, line);
	if (line > 0)
		return slotsync_error_set(err, -EINVAL, "%s:%d: %s", p->name, line,
					  p->error[0] ? p->error : "not \"key = value\" nor \"[section]\"");
	for (int i = 0; i < 2; i++) {
		if (!p->slot_seen[i] || !c->slot[i].device[0])
			return slotsync_error_set(err, -EINVAL, "%s: [slot.%c] with its device = is missing", p->name,
						  'A' + i);
	}
	if (!strcmp(c->slot[0].device, c->slot[1].device) ||
	    (c->slot[0].data[0] && !strcmp(c->slot[0].data, c->slot[1].data)))
		return slotsync_error_set(err, -EINVAL, "%s: slots A and B name the same device", p->name);
	r = check_slot_images(c, p->name, err);
	if (r < 0)
		return r;
	if (!c->slot[0].data[0] != !c->slot[1].data[0])
		return slotsync_error_set(err, -EINVAL, "%s: a data partition for one slot only (data = in [slot.A] and [slot.B], or neither)",
					  p->name);
	if (!strcmp(c->slot[0].mapping, c->slot[1].mapping) || !strcmp(c->slot[0].data_mapping, c->slot[1].data_mapping) ||
	    !strcmp(c->slot[0].mapping, c->slot[1].data_mapping) || !strcmp(c->slot[1].mapping, c->slot[0].data_mapping) ||
	    !strcmp(c->slot[0].mapping, c->slot[0].data_mapping) || !strcmp(c->slot[1].mapping, c->slot[1].data_mapping))
		return slotsync_error_set(err, -EINVAL, "%s: two volumes share a mapping name", p->name);
	/* slot keys are unsealed before the root is measured into root-pcr */
	if (c->root_pcr >= 0 && (c->pcr_mask & (1u << c->root_pcr)))
		return slotsync_error_set(err, -EINVAL,
					  "%s: [tpm] root-pcr = %d is also in pcrs: pcrs bind the slots' keys, which are "
					  "unsealed before the root is measured into PCR %d (choose another root-pcr, or none)",
					  p->name, c->root_pcr, c->root_pcr);
	if (!c->client_cert[0] != !c->client_key[0])
		return slotsync_error_set(err, -EINVAL, "%s: client-cert and client-key go together", p->name);
	/* a new slot gets boot-tries tries: the bootloader must be able to count them */
	if (c->boot_tries > slotsync_boot_tries_max(c->boot.backend))
		return slotsync_error_set(err, -EINVAL, "%s: boot-tries = %d in [system] is more than the %s backend counts (at most %d)",
					  p->name, c->boot_tries, slotsync_boot_backend_name(c->boot.backend),
					  slotsync_boot_tries_max(c->boot.backend));
	if (c->boot.default_tries > slotsync_boot_tries_max(c->boot.backend))
		return slotsync_error_set(err, -EINVAL, "%s: default-tries = %d in [boot] is more than the %s backend counts (at most %d)",
					  p->name, c->boot.default_tries, slotsync_boot_backend_name(c->boot.backend),
					  slotsync_boot_tries_max(c->boot.backend));
	if (c->channel[0] && parse_url(c->channel, c->allow_plain_http) < 0)
		return slotsync_error_set(err, -EINVAL, "%s: [update] channel = %s: %s", p->name, c->channel,
					  parse_url_problem(parse_url(c->channel, c->allow_plain_http)));
	for (int i = 0; i < c->n_stores; i++)
		if (parse_url(c->store[i], c->allow_plain_http) < 0)
			return slotsync_error_set(err, -EINVAL, "%s: [update] store = %s: %s", p->name, c->store[i],
						  parse_url_problem(parse_url(c->store[i], c->allow_plain_http)));
	return 0;
}

int slotsync_config_load(const char *path, struct slotsync_config *cfg, struct slotsync_error *err)
{
	struct parse_ctx *p;
	int line, r;

	if (!path)
		path = SLOTSYNC_CONFIG_DEFAULT;
	p = calloc(1, sizeof(*p));
	if (!p)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	defaults(cfg, path);
	p->cfg = cfg;
	p->name = path;
	errno = 0;
	line = ini_parse(path, handler, p);
	r = finish(p, line, err);
	free(p);
	return r;
}

int slotsync_config_load_string(const char *text, const char *name, struct slotsync_config *cfg,
				struct slotsync_error *err)
{
	struct parse_ctx *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return slotsync_error_set(err, -ENOMEM, "out of memory");
	defaults(cfg, name);
	p->cfg = cfg;
	p->name = name;
	p->text = text;
	r = finish(p, ini_parse_string(text, handler, p), err);
	free(p);
	return r;
}

const struct slotsync_slot_config *slotsync_config_slot(const struct slotsync_config *cfg, const char *name)
{
	if (!name || !name[0] || name[1])
		return NULL;
	if (toupper((unsigned char)name[0]) == 'A')
		return &cfg->slot[0];
	if (toupper((unsigned char)name[0]) == 'B')
		return &cfg->slot[1];
	return NULL;
}

struct slotsync_luks_tpm slotsync_config_tpm(const struct slotsync_config *cfg)
{
	struct slotsync_luks_tpm t = { .tcti = cfg->tcti[0] ? cfg->tcti : NULL, .pcr_mask = cfg->pcr_mask };
	return t;
}

struct slotsync_luks_tpm slotsync_config_tpm_data(const struct slotsync_config *cfg)
{
	struct slotsync_luks_tpm t = slotsync_config_tpm(cfg);

	if (cfg->root_pcr >= 0)
		t.pcr_mask |= 1u << cfg->root_pcr;
	return t;
}

int slotsync_config_in_window(const struct slotsync_config *cfg, int m)
{
	if (cfg->window_start < 0)
		return 1;
	if (cfg->window_start < cfg->window_end)
		return m >= cfg->window_start && m < cfg->window_end;
	return m >= cfg->window_start || m < cfg->window_end; /* wraps midnight */
}
