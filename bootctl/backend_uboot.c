/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The U-Boot backend, through libubootenv (the library behind fw_printenv and
 * fw_setenv): cfg->env is an fw_env.config naming the environment's storage.
 * With a redundant environment (two lines in fw_env.config) libubootenv writes
 * the copy not in use, then flags it current: a cut leaves the old copy valid.
 *
 * Variables (RAUC's names and counting, docs/boot/uboot-boot.cmd): BOOT_ORDER
 * ("A B"), BOOT_A_LEFT / BOOT_B_LEFT (boots left: U-Boot takes one at every
 * boot of the slot, a good boot gives them back), BOOT_A_OK / BOOT_B_OK (1:
 * good; slotsync's own, U-Boot does not read them).
 * Other variables are kept.
 */
#include <errno.h>
#include <stddef.h> /* libuboot.h needs size_t */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slotsync/features.h"
#include "backend.h"
#include "parse.h"

#if SLOTSYNC_HAVE_UBOOT
#include <libuboot.h>

/* blank_ok: storage where neither copy is valid (a blank partition at the
 * factory, both copies destroyed) opens as an empty environment, which a store
 * then writes whole: init --force provisions it */
static int open_env(const struct slotsync_boot_config *cfg, struct uboot_ctx **ctx, int blank_ok,
		    struct slotsync_error *err)
{
	int r;

	*ctx = NULL;
	if (libuboot_initialize(ctx, NULL) < 0)
		return slotsync_error_set(err, -ENOMEM, "cannot start libubootenv");
	r = libuboot_read_config(*ctx, cfg->env);
	if (r < 0) {
		libuboot_exit(*ctx);
		*ctx = NULL;
		return slotsync_error_set(err, -EINVAL, "libubootenv cannot use config %s (error %d)", cfg->env, r);
	}
	r = libuboot_open(*ctx);
	if (r == -ENODATA && blank_ok)
		return 0;
	if (r < 0) {
		/* libuboot_open took its lock before it failed: give it back, or the
		 * next open in this process waits for ever */
		libuboot_close(*ctx);
		libuboot_exit(*ctx);
		*ctx = NULL;
		return slotsync_error_set(err, -EBADMSG,
					  "no valid U-Boot environment in the storage %s names (error %d: both copies fail their CRC, or it cannot be read)",
					  cfg->env, r);
	}
	return 0;
}

static void close_env(struct uboot_ctx *ctx)
{
	if (ctx) {
		libuboot_close(ctx);
		libuboot_exit(ctx);
	}
}

static int uboot_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		      struct slotsync_error *err)
{
	static const char *const names[] = { "BOOT_ORDER", "BOOT_A_OK", "BOOT_A_LEFT", "BOOT_B_OK", "BOOT_B_LEFT" };
	struct uboot_ctx *ctx;
	char *v[5];
	int r = open_env(cfg, &ctx, 0, err), any = 0;

	if (r < 0)
		return r;
	for (int k = 0; k < 5; k++) {
		v[k] = libuboot_get_env(ctx, names[k]);
		any |= v[k] != NULL;
	}
	if (!any) {
		r = -ENOENT; /* no boot state yet: first boot */
		goto out;
	}
	if (boot_order_parse(v[0] ? v[0] : "A B", st) < 0) {
		r = slotsync_error_set(err, -EBADMSG, "BOOT_ORDER=\"%s\" is not a list of the slots A and B", v[0]);
		goto out;
	}
	for (int s = 0; s < 2; s++) {
		const char *ok = v[1 + 2 * s] ? v[1 + 2 * s] : "0", *left = v[2 + 2 * s] ? v[2 + 2 * s] : "0";
		if (parse_int(ok, 0, 1, &st->slot[s].good) < 0) {
			r = slotsync_error_set(err, -EBADMSG, "%s=\"%s\" is not 0 or 1", names[1 + 2 * s], ok);
			goto out;
		}
		if (parse_int(left, 0, SLOTSYNC_BOOT_TRIES_MAX, &st->slot[s].tries) < 0) {
			r = slotsync_error_set(err, -EBADMSG, "%s=\"%s\" is not a number of tries (0 to %d)",
					       names[2 + 2 * s], left, SLOTSYNC_BOOT_TRIES_MAX);
			goto out;
		}
	}
out:
	for (int k = 0; k < 5; k++)
		free(v[k]);
	close_env(ctx);
	return r;
}

/* BOOT_x_LEFT as the boot script counts it, RAUC's way: a slot boots only
 * with boots left, a good one too (U-Boot takes one at every boot and a good
 * boot gives them back), so a good slot never goes out with none */
static int uboot_left(const struct slotsync_boot_config *cfg, const struct slotsync_boot_slot *s)
{
	int def = cfg->default_tries > 0 ? cfg->default_tries : SLOTSYNC_BOOT_TRIES_DEFAULT;

	if (def > 9)
		def = 9;
	return s->good && s->priority > 0 && s->tries < 1 ? def : s->tries;
}

static int uboot_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
		       struct slotsync_error *err)
{
	struct uboot_ctx *ctx;
	char order[8], n[4][16];
	int r = open_env(cfg, &ctx, 1, err);

	if (r < 0)
		return r;
	boot_order_format(st, order);
	snprintf(n[0], sizeof(n[0]), "%d", st->slot[0].good);
	snprintf(n[1], sizeof(n[1]), "%d", uboot_left(cfg, &st->slot[0]));
	snprintf(n[2], sizeof(n[2]), "%d", st->slot[1].good);
	snprintf(n[3], sizeof(n[3]), "%d", uboot_left(cfg, &st->slot[1]));
	if (libuboot_set_env(ctx, "BOOT_ORDER", order) < 0 || libuboot_set_env(ctx, "BOOT_A_OK", n[0]) < 0 ||
	    libuboot_set_env(ctx, "BOOT_A_LEFT", n[1]) < 0 || libuboot_set_env(ctx, "BOOT_B_OK", n[2]) < 0 ||
	    libuboot_set_env(ctx, "BOOT_B_LEFT", n[3]) < 0)
		r = slotsync_error_set(err, -EINVAL, "libubootenv refuses a variable");
	else if ((r = libuboot_env_store(ctx)) < 0)
		r = slotsync_error_set(err, -EIO, "cannot write the U-Boot environment (libubootenv error %d)", r);
	close_env(ctx);
	return r;
}

#else /* built without libubootenv */

static int uboot_disabled(struct slotsync_error *err)
{
	return slotsync_error_set(err, -ENOTSUP,
				  "the U-Boot backend is not in this build of slotsync (build it with -DSLOTSYNC_UBOOT=ON "
				  "and libubootenv)");
}

static int uboot_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		      struct slotsync_error *err)
{
	return uboot_disabled(err);
}

static int uboot_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
		       struct slotsync_error *err)
{
	return uboot_disabled(err);
}
#endif

const struct boot_backend boot_backend_uboot = { "uboot", uboot_load, uboot_store };
