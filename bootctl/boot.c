/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The A/B state machine and its configuration: see include/slotsync/boot.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slotsync/features.h"
#include "slotsync/log.h"
#include "io.h"
#include "parse.h"
#include "backend.h"

static const struct boot_backend *const backends[] = {
	[SLOTSYNC_BOOT_FILE] = &boot_backend_file,
	[SLOTSYNC_BOOT_GRUB] = &boot_backend_grub,
	[SLOTSYNC_BOOT_UBOOT] = &boot_backend_uboot,
	[SLOTSYNC_BOOT_BAREBOX] = &boot_backend_barebox,
};

const char *slotsync_boot_backend_name(enum slotsync_boot_backend_type t)
{
	return backends[t]->name;
}

int slotsync_boot_tries_max(enum slotsync_boot_backend_type t)
{
	switch (t) {
	case SLOTSYNC_BOOT_GRUB:  /* docs/boot/grub.cfg: no arithmetic, a table of 9 */
	case SLOTSYNC_BOOT_UBOOT: /* docs/boot/uboot-boot.cmd: setexpr counts in hex, one digit */
		return 9;
	default:
		return SLOTSYNC_BOOT_TRIES_MAX;
	}
}

int slotsync_boot_backend_parse(const char *name, enum slotsync_boot_backend_type *out)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(name, backends[i]->name)) {
			*out = (enum slotsync_boot_backend_type)i;
			return 0;
		}
	return -EINVAL;
}

int slotsync_boot_slot_parse(const char *s)
{
	if (!strcmp(s, "A") || !strcmp(s, "a"))
		return 0;
	if (!strcmp(s, "B") || !strcmp(s, "b"))
		return 1;
	return -EINVAL;
}

void boot_order_format(const struct slotsync_boot_state *st, char out[8])
{
	int a = st->slot[0].priority, b = st->slot[1].priority;

	out[0] = '\0';
	if (a > 0 && b > 0)
		snprintf(out, 8, "%s", b > a ? "B A" : "A B");
	else if (a > 0)
		snprintf(out, 8, "A");
	else if (b > 0)
		snprintf(out, 8, "B");
}

int boot_order_parse(const char *s, struct slotsync_boot_state *st)
{
	int seen[2] = { 0, 0 }, n = 0;

	st->slot[0].priority = st->slot[1].priority = 0;
	for (const char *p = s; *p; p++) {
		int slot;
		if (*p == ' ')
			continue;
		if ((*p != 'A' && *p != 'B') || (p[1] && p[1] != ' '))
			return -EINVAL;
		slot = *p == 'A' ? 0 : 1;
		if (seen[slot]++)
			return -EINVAL;
		st->slot[slot].priority = 2 - n++;
	}
	return 0;
}

static void first_boot_state(struct slotsync_boot_state *st)
{
	memset(st, 0, sizeof(*st));
	st->slot[0].priority = 2;
	st->slot[0].good = 1;
	st->slot[0].tries = 0;
}

void slotsync_boot_config_defaults(struct slotsync_boot_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->backend = SLOTSYNC_BOOT_FILE;
	cfg->default_tries = SLOTSYNC_BOOT_TRIES_DEFAULT;
	cfg->barebox_stride = 64;
}

int slotsync_boot_config_set(struct slotsync_boot_config *cfg, const char *k, const char *v)
{
	char *end;
	int iv;

	if (!strcmp(k, "backend")) {
		if (slotsync_boot_backend_parse(v, &cfg->backend) < 0)
			return -EINVAL;
		return cfg->backend == SLOTSYNC_BOOT_UBOOT && !SLOTSYNC_HAVE_UBOOT ? -ENOTSUP : 0;
	}
	if (!strcmp(k, "env")) {
		if (!*v || strlen(v) >= sizeof(cfg->env))
			return -EINVAL;
		snprintf(cfg->env, sizeof(cfg->env), "%s", v);
		return 0;
	}
	if (!strcmp(k, "booted")) {
		if (slotsync_boot_slot_parse(v) < 0)
			return -EINVAL;
		snprintf(cfg->booted, sizeof(cfg->booted), "%c", (char)toupper((unsigned char)v[0]));
		return 0;
	}
	if (!strcmp(k, "cmdline")) {
		if (v[0] != '/' || strlen(v) >= sizeof(cfg->cmdline))
			return -EINVAL;
		snprintf(cfg->cmdline, sizeof(cfg->cmdline), "%s", v);
		return 0;
	}
	if (!strcmp(k, "default-tries"))
		return parse_int(v, 1, SLOTSYNC_BOOT_TRIES_MAX, &cfg->default_tries) < 0 ? -EINVAL : 0;
	if (!strcmp(k, "barebox-offset")) {
		errno = 0;
		cfg->barebox_offset = strtoull(v, &end, 0);
		return errno || *end || !*v || *v == '-' ? -EINVAL : 0;
	}
	if (!strcmp(k, "barebox-stride")) {
		if (parse_int(v, 32, 1 << 20, &iv) < 0)
			return -EINVAL;
		cfg->barebox_stride = (unsigned int)iv;
		return 0;
	}
	if (!strcmp(k, "barebox-magic")) {
		unsigned long m;
		errno = 0;
		m = strtoul(v, &end, 0);
		if (errno || *end || !*v || *v == '-' || m > 0xffffffffUL)
			return -EINVAL;
		cfg->barebox_magic = (unsigned int)m;
		return 0;
	}
	return -ENOENT;
}

int slotsync_boot_config_load(const char *path, struct slotsync_boot_config *cfg, struct slotsync_error *err)
{
	char line[1200];
	FILE *f;
	int n = 0;

	slotsync_boot_config_defaults(cfg);
	if (!path)
		return 0;
	f = fopen(path, "r");
	if (!f)
		return slotsync_error_set_errno(err, -errno, "cannot open config %s", path);
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *e;
		int r;
		n++;
		while (isspace((unsigned char)*k))
			k++;
		if (!*k || *k == '#')
			continue;
		v = strchr(k, '=');
		if (!v) {
			fclose(f);
			return slotsync_error_set(err, -EINVAL, "%s:%d: expected key = value", path, n);
		}
		*v++ = '\0';
		for (e = v + strlen(v); e > v && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		while (isspace((unsigned char)*v))
			v++;
		for (e = k + strlen(k); e > k && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		r = slotsync_boot_config_set(cfg, k, v);
		if (r == -ENOENT) {
			fclose(f);
			return slotsync_error_set(err, -EINVAL, "%s:%d: unknown key \"%s\"", path, n, k);
		}
		if (r == -ENOTSUP) {
			fclose(f);
			return slotsync_error_set(err, -ENOTSUP,
						  "%s:%d: backend %s is not in this build of slotsync (build it with "
						  "-DSLOTSYNC_UBOOT=ON and libubootenv)", path, n, v);
		}
		if (r < 0) {
			fclose(f);
			return slotsync_error_set(err, -EINVAL, "%s:%d: bad value \"%s\" for %s", path, n, v, k);
		}
	}
	fclose(f);
	return 0;
}

/* The backend's state; -ENOENT with err unset when the storage holds none. */
static int load_raw(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		    struct slotsync_error *err)
{
	int r;

	if (!cfg->env[0])
		return slotsync_error_set(err, -EINVAL, "no boot state storage given (--env or env = in the config)");
	memset(st, 0, sizeof(*st));
	r = backends[cfg->backend]->load(cfg, st, err);
	if (r < 0 && !(r == -ENOENT && !(err && err->code)))
		slotsync_error_prefix(err, "%s boot state %s", backends[cfg->backend]->name, cfg->env);
	return r;
}

int slotsync_boot_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		       struct slotsync_error *err)
{
	int r = load_raw(cfg, st, err);

	if (r == -ENOENT && !(err && err->code))
		return slotsync_error_set(err, -ENOENT,
					  "%s boot state %s: %s (slotsync-bootctl init writes the first-boot state)",
					  backends[cfg->backend]->name, cfg->env,
					  access(cfg->env, F_OK) < 0 ? "no such file" : "it holds no slotsync boot state yet");
	return r;
}

int slotsync_boot_init(const struct slotsync_boot_config *cfg, int force, struct slotsync_error *err)
{
	struct slotsync_boot_state st;
	struct slotsync_error lerr = { 0 };
	int r;

	if (!cfg->env[0])
		return load_raw(cfg, &st, err);
	r = load_raw(cfg, &st, &lerr);
	if (!force && r == 0)
		return slotsync_error_set(err, -EEXIST,
					  "%s boot state %s already holds a state (next: slot %c); --force writes the first-boot state over it",
					  backends[cfg->backend]->name, cfg->env, st.slot[1].priority > st.slot[0].priority ? 'B' : 'A');
	if (!force && r < 0 && lerr.code && r != -ENOENT)
		return slotsync_error_set(err, r, "%s; not overwritten (--force writes the first-boot state over it)",
					  slotsync_error_message(&lerr));
	first_boot_state(&st);
	return slotsync_boot_store(cfg, &st, err);
}

int slotsync_boot_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
			struct slotsync_error *err)
{
	int r = backends[cfg->backend]->store(cfg, st, err);

	if (r < 0) {
		slotsync_error_prefix(err, "%s boot state %s", backends[cfg->backend]->name, cfg->env);
		return r;
	}
	slotsync_log_info("%s boot state %s written: A priority %d, tries %d, %s; B priority %d, tries %d, %s",
			  backends[cfg->backend]->name, cfg->env, st->slot[0].priority, st->slot[0].tries,
			  st->slot[0].good ? "good" : "not good", st->slot[1].priority, st->slot[1].tries,
			  st->slot[1].good ? "good" : "not good");
	return 0;
}

int slotsync_boot_booted(const struct slotsync_boot_config *cfg, struct slotsync_error *err)
{
	char cmdline[4096];
	ssize_t n;
	int fd;

	if (cfg->booted[0])
		return slotsync_boot_slot_parse(cfg->booted);
	fd = open(cfg->cmdline[0] ? cfg->cmdline : "/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		close(fd);
		if (n > 0) {
			static const char *const keys[] = { "slotsync.slot=", "rauc.slot=" };
			cmdline[n] = '\0';
			for (size_t k = 0; k < 2; k++) {
				for (char *p = strstr(cmdline, keys[k]); p; p = strstr(p + 1, keys[k])) {
					char v[2] = { p[strlen(keys[k])], '\0' };
					if ((p == cmdline || p[-1] == ' ') && slotsync_boot_slot_parse(v) >= 0)
						return slotsync_boot_slot_parse(v);
				}
			}
		}
	}
	return slotsync_error_set(err, -ENOENT,
				  "cannot tell which slot is booted: the kernel command line (%s) has no slotsync.slot= (or rauc.slot=); give --booted A|B",
				  cfg->cmdline[0] ? cfg->cmdline : "/proc/cmdline");
}

int slotsync_boot_choose(const struct slotsync_boot_state *st, int *takes_try)
{
	int order[2] = { 0, 1 };

	if (st->slot[1].priority > st->slot[0].priority) {
		order[0] = 1;
		order[1] = 0;
	}
	*takes_try = 0;
	for (int i = 0; i < 2; i++) {
		const struct slotsync_boot_slot *s = &st->slot[order[i]];
		if (s->priority <= 0)
			continue;
		if (s->good)
			return order[i];
		if (s->tries > 0) {
			*takes_try = 1;
			return order[i];
		}
	}
	return -1;
}

static int change(const struct slotsync_boot_config *cfg, int slot, int op, int tries, struct slotsync_error *err)
{
	struct slotsync_boot_state st;
	int r, other = !slot;

	if (slot < 0 || slot > 1)
		return slotsync_error_set(err, -EINVAL, "no such slot");
	r = slotsync_boot_load(cfg, &st, err);
	if (r < 0)
		return r;
	switch (op) {
	case 's': /* switch: try slot next, tries times; the other stays as the fallback */
		st.slot[slot].priority = 2;
		st.slot[slot].tries = tries;
		st.slot[slot].good = 0;
		st.slot[other].priority = st.slot[other].priority > 0 ? 1 : 0;
		break;
	case 'g':
		st.slot[slot].good = 1;
		st.slot[slot].tries = cfg->default_tries > 0 ? cfg->default_tries : SLOTSYNC_BOOT_TRIES_DEFAULT;
		if (st.slot[slot].priority == 0)
			st.slot[slot].priority = st.slot[other].priority > 0 ? 1 : 2;
		break;
	case 'b':
		st.slot[slot].good = 0;
		st.slot[slot].tries = 0;
		st.slot[slot].priority = 0;
		if (st.slot[other].priority > 0)
			st.slot[other].priority = 2;
		break;
	}
	return slotsync_boot_store(cfg, &st, err);
}

int slotsync_boot_switch(const struct slotsync_boot_config *cfg, int slot, int tries, struct slotsync_error *err)
{
	if (tries < 1 || tries > SLOTSYNC_BOOT_TRIES_MAX)
		return slotsync_error_set(err, -EINVAL, "tries must be 1 to %d", SLOTSYNC_BOOT_TRIES_MAX);
	return change(cfg, slot, 's', tries, err);
}

int slotsync_boot_mark_good(const struct slotsync_boot_config *cfg, int slot, struct slotsync_error *err)
{
	return change(cfg, slot, 'g', 0, err);
}

int slotsync_boot_mark_bad(const struct slotsync_boot_config *cfg, int slot, struct slotsync_error *err)
{
	return change(cfg, slot, 'b', 0, err);
}

int slotsync_boot_simulate_boot(const struct slotsync_boot_config *cfg, int *booted, struct slotsync_error *err)
{
	struct slotsync_boot_state st;
	int takes_try, slot, r;

	r = slotsync_boot_load(cfg, &st, err);
	if (r < 0)
		return r;
	slot = slotsync_boot_choose(&st, &takes_try);
	if (slot < 0) {
		/* last resort, as the scripts do: the first slot by priority, or A */
		*booted = st.slot[1].priority > st.slot[0].priority ? 1 : 0;
		return 0;
	}
	*booted = slot;
	if (!takes_try)
		return 0;
	st.slot[slot].tries--;
	return slotsync_boot_store(cfg, &st, err);
}
