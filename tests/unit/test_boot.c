/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The boot backends, one suite each (file, grub, uboot, barebox), on their
 * real storage formats in plain files: the same A/B story on each (no state
 * is an error until init writes the first-boot state, switch to B with tries, a boot takes a try, mark good, mark bad falls
 * back to A), and what each promises of its storage (GRUB's other variables
 * kept and readable by grub-editenv; U-Boot's redundant copy used when the
 * newest is damaged; Barebox's and the file's second copy likewise). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "slotsync/boot.h"
#include "slotsync/features.h"

struct ctx {
	char *dir;
	char env[PATH_MAX];
	struct slotsync_boot_config cfg;
};

static void sh(const char *cmd)
{
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

static void ctx_make(struct ctx *c, enum slotsync_boot_backend_type backend)
{
	char cmd[4 * PATH_MAX];

	memset(c, 0, sizeof(*c));
	c->dir = test_mkdtemp();
	slotsync_boot_config_defaults(&c->cfg);
	c->cfg.backend = backend;
	snprintf(c->cfg.booted, sizeof(c->cfg.booted), "A");
	switch (backend) {
	case SLOTSYNC_BOOT_FILE:
		fx_path(c->env, c->dir, "boot.state");
		break;
	case SLOTSYNC_BOOT_GRUB:
		fx_path(c->env, c->dir, "grubenv");
		snprintf(cmd, sizeof(cmd), "grub-editenv '%s' create && grub-editenv '%s' set kernel_opts=quiet", c->env,
			 c->env);
		sh(cmd);
		break;
	case SLOTSYNC_BOOT_UBOOT:
		/* a redundant environment in two files, as a board's two flash sectors */
		fx_path(c->env, c->dir, "fw_env.config");
		snprintf(cmd, sizeof(cmd),
			 "cd '%s' && printf 'bootdelay=2\\n' >env.txt && mkenvimage -r -s 0x4000 -o env0.bin env.txt && "
			 "cp env0.bin env1.bin && printf '%%s 0x0 0x4000\\n%%s 0x0 0x4000\\n' \"$PWD/env0.bin\" \"$PWD/env1.bin\" >fw_env.config",
			 c->dir);
		sh(cmd);
		break;
	case SLOTSYNC_BOOT_BAREBOX:
		fx_path(c->env, c->dir, "state.raw");
		snprintf(cmd, sizeof(cmd), "head -c 4096 /dev/zero >'%s'", c->env);
		sh(cmd);
		c->cfg.barebox_magic = 0x4d433230;
		c->cfg.barebox_stride = 64;
		break;
	}
	ck_assert_uint_lt(strlen(c->env), sizeof(c->cfg.env));
	memcpy(c->cfg.env, c->env, strlen(c->env) + 1);
}

static void ctx_free(struct ctx *c)
{
	test_rmdir(c->dir);
}

static void load(struct ctx *c, struct slotsync_boot_state *st)
{
	struct slotsync_error err = { 0 };

	ck_assert_msg(slotsync_boot_load(&c->cfg, st, &err) == 0, "%s", err.msg);
}

/* The A/B story every backend must tell the same way. */
static void ab_story(struct ctx *c)
{
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };
	int booted = -1, takes_try = 0;

	/* nothing stored yet: an error naming the storage, never a made-up state */
	ck_assert_int_eq(slotsync_boot_load(&c->cfg, &st, &err), -ENOENT);
	ck_assert_msg(strstr(err.msg, c->env) && strstr(err.msg, "slotsync-bootctl init"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_boot_switch(&c->cfg, 1, 3, &err), 0);
	memset(&err, 0, sizeof(err));
	/* provisioned: A good and first, B not bootable */
	ck_assert_msg(slotsync_boot_init(&c->cfg, 0, &err) == 0, "%s", err.msg);
	load(c, &st);
	ck_assert_int_eq(slotsync_boot_choose(&st, &takes_try), 0);
	ck_assert_int_eq(st.slot[0].good, 1);
	ck_assert_int_eq(st.slot[1].priority, 0);
	/* a second init leaves the state alone */
	ck_assert_int_eq(slotsync_boot_init(&c->cfg, 0, &err), -EEXIST);
	ck_assert_msg(strstr(err.msg, "--force"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	/* an install switches to B with 3 tries */
	ck_assert_msg(slotsync_boot_switch(&c->cfg, 1, 3, &err) == 0, "%s", err.msg);
	load(c, &st);
	ck_assert_int_gt(st.slot[1].priority, st.slot[0].priority);
	ck_assert_int_eq(st.slot[1].tries, 3);
	ck_assert_int_eq(st.slot[1].good, 0);
	ck_assert_int_eq(st.slot[0].good, 1);
	/* the bootloader boots B and takes a try */
	ck_assert_int_eq(slotsync_boot_simulate_boot(&c->cfg, &booted, &err), 0);
	ck_assert_int_eq(booted, 1);
	load(c, &st);
	ck_assert_int_eq(st.slot[1].tries, 2);
	/* B proves itself */
	ck_assert_int_eq(slotsync_boot_mark_good(&c->cfg, 1, &err), 0);
	load(c, &st);
	ck_assert_int_eq(st.slot[1].good, 1);
	ck_assert_int_eq(slotsync_boot_choose(&st, &takes_try), 1);
	ck_assert_int_eq(takes_try, 0);
	/* marked bad later: the bootloader goes back to A */
	ck_assert_int_eq(slotsync_boot_mark_bad(&c->cfg, 1, &err), 0);
	load(c, &st);
	ck_assert_int_eq(st.slot[1].good, 0);
	ck_assert_int_eq(slotsync_boot_choose(&st, &takes_try), 0);
	ck_assert_int_eq(slotsync_boot_simulate_boot(&c->cfg, &booted, &err), 0);
	ck_assert_int_eq(booted, 0);
}

/* B never proves itself: its tries run out and A boots again. */
static void tries_run_out(struct ctx *c)
{
	struct slotsync_error err = { 0 };
	int booted = -1;

	ck_assert_int_eq(slotsync_boot_init(&c->cfg, 0, &err), 0);
	ck_assert_int_eq(slotsync_boot_switch(&c->cfg, 1, 2, &err), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(slotsync_boot_simulate_boot(&c->cfg, &booted, &err), 0);
		ck_assert_int_eq(booted, 1);
	}
	ck_assert_int_eq(slotsync_boot_simulate_boot(&c->cfg, &booted, &err), 0);
	ck_assert_int_eq(booted, 0);
}

#define STORY_TESTS(name, backend)                                                                                 \
	START_TEST(test_##name##_story)                                                                            \
	{                                                                                                          \
		struct ctx c;                                                                                      \
		ctx_make(&c, backend);                                                                             \
		ab_story(&c);                                                                                      \
		ctx_free(&c);                                                                                      \
	}                                                                                                          \
	END_TEST                                                                                                   \
	START_TEST(test_##name##_tries_run_out)                                                                    \
	{                                                                                                          \
		struct ctx c;                                                                                      \
		ctx_make(&c, backend);                                                                             \
		tries_run_out(&c);                                                                                 \
		ctx_free(&c);                                                                                      \
	}                                                                                                          \
	END_TEST

STORY_TESTS(file, SLOTSYNC_BOOT_FILE)
STORY_TESTS(grub, SLOTSYNC_BOOT_GRUB)
#if SLOTSYNC_HAVE_UBOOT
STORY_TESTS(uboot, SLOTSYNC_BOOT_UBOOT)
#endif
STORY_TESTS(barebox, SLOTSYNC_BOOT_BAREBOX)

static void flip_byte(const char *path, long at)
{
	FILE *f = fopen(path, "r+b");
	int ch;

	ck_assert_ptr_nonnull(f);
	fseek(f, at, SEEK_SET);
	ch = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(ch ^ 0x40, f);
	fclose(f);
}

START_TEST(test_file_torn_copy)
{
	struct ctx c;
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };

	ctx_make(&c, SLOTSYNC_BOOT_FILE);
	ck_assert_int_eq(slotsync_boot_init(&c.cfg, 0, &err), 0);       /* copy 0, sequence 1 */
	ck_assert_int_eq(slotsync_boot_switch(&c.cfg, 1, 3, &err), 0);  /* copy 1, sequence 2 */
	ck_assert_int_eq(slotsync_boot_mark_good(&c.cfg, 1, &err), 0);  /* copy 0, sequence 3 */
	/* the newest copy torn: the one before it is read */
	flip_byte(c.env, 30);
	load(&c, &st);
	ck_assert_int_eq(st.slot[1].good, 0);
	ck_assert_int_eq(st.slot[1].tries, 3);
	/* both torn: an error, never a guess */
	flip_byte(c.env, 512 + 30);
	ck_assert_int_eq(slotsync_boot_load(&c.cfg, &st, &err), -EBADMSG);
	/* init does not write over it, unless forced */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_boot_init(&c.cfg, 0, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "neither copy is valid") && strstr(err.msg, "--force"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_msg(slotsync_boot_init(&c.cfg, 1, &err) == 0, "%s", err.msg);
	load(&c, &st);
	ck_assert_int_eq(st.slot[0].good, 1);
	ck_assert_int_eq(st.slot[1].priority, 0);
	ctx_free(&c);
}
END_TEST

START_TEST(test_grub_keeps_other_variables)
{
	struct ctx c;
	struct slotsync_error err = { 0 };
	char cmd[3 * PATH_MAX], out[PATH_MAX];
	uint8_t *list;
	size_t len;
	struct stat sb;

	ctx_make(&c, SLOTSYNC_BOOT_GRUB);
	ck_assert_int_eq(slotsync_boot_init(&c.cfg, 0, &err), 0);
	ck_assert_int_eq(slotsync_boot_switch(&c.cfg, 1, 3, &err), 0);
	fx_path(out, c.dir, "list.txt");
	snprintf(cmd, sizeof(cmd), "grub-editenv '%s' list >'%s'", c.env, out);
	sh(cmd);
	list = fx_read_file(out, &len);
	ck_assert_ptr_nonnull(list);
	list[len] = '\0';
	ck_assert_ptr_nonnull(strstr((char *)list, "kernel_opts=quiet\n"));
	ck_assert_ptr_nonnull(strstr((char *)list, "ORDER=B A\n"));
	ck_assert_ptr_nonnull(strstr((char *)list, "B_TRY=3\n"));
	free(list);
	ck_assert_int_eq(stat(c.env, &sb), 0);
	ck_assert_int_eq(sb.st_size, 1024);
	/* what grub-editenv writes, we read */
	snprintf(cmd, sizeof(cmd), "grub-editenv '%s' set B_OK=1", c.env);
	sh(cmd);
	{
		struct slotsync_boot_state st;
		load(&c, &st);
		ck_assert_int_eq(st.slot[1].good, 1);
	}
	/* a garbage block is refused */
	ck_assert_int_eq(test_write_file(c.env, "garbage", 7), 0);
	{
		struct slotsync_boot_state st;
		ck_assert_int_lt(slotsync_boot_load(&c.cfg, &st, &err), 0);
	}
	ctx_free(&c);
}
END_TEST

#if SLOTSYNC_HAVE_UBOOT
START_TEST(test_uboot_redundant_copy)
{
	struct ctx c;
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };
	char e0[PATH_MAX], e1[PATH_MAX], cmd[2 * PATH_MAX];
	uint8_t *a, *b;
	size_t la, lb;

	ctx_make(&c, SLOTSYNC_BOOT_UBOOT);
	ck_assert_int_eq(slotsync_boot_init(&c.cfg, 0, &err), 0);
	ck_assert_int_eq(slotsync_boot_switch(&c.cfg, 1, 3, &err), 0);
	ck_assert_int_eq(slotsync_boot_mark_good(&c.cfg, 1, &err), 0);
	/* fw_printenv sees what we wrote, and the board's own variables */
	snprintf(cmd, sizeof(cmd), "fw_printenv -c '%s' BOOT_B_OK bootdelay | tr '\\n' ' ' | grep -q 'BOOT_B_OK=1 bootdelay=2'",
		 c.env);
	sh(cmd);
	/* the newer copy (the higher flag byte) damaged: the older one is read */
	fx_path(e0, c.dir, "env0.bin");
	fx_path(e1, c.dir, "env1.bin");
	a = fx_read_file(e0, &la);
	b = fx_read_file(e1, &lb);
	ck_assert(la > 4 && lb > 4);
	flip_byte((unsigned char)a[4] > (unsigned char)b[4] ? e0 : e1, 100);
	free(a);
	free(b);
	load(&c, &st);
	ck_assert_int_gt(st.slot[1].priority, st.slot[0].priority);
	ck_assert_int_eq(st.slot[1].good, 0);
	ck_assert_int_eq(st.slot[1].tries, 3);
	ctx_free(&c);
}
END_TEST
#endif

START_TEST(test_barebox_copies)
{
	struct ctx c;
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };

	ctx_make(&c, SLOTSYNC_BOOT_BAREBOX);
	ck_assert_int_eq(slotsync_boot_init(&c.cfg, 0, &err), 0);
	ck_assert_int_eq(slotsync_boot_switch(&c.cfg, 1, 3, &err), 0);
	/* copy 0 damaged: copy 1 holds the same state */
	flip_byte(c.env, 8 + 16 + 4);
	load(&c, &st);
	ck_assert_int_gt(st.slot[1].priority, st.slot[0].priority);
	ck_assert_int_eq(st.slot[1].tries, 3);
	/* another state's magic: no valid copy, an error */
	c.cfg.barebox_magic = 0x12345678;
	ck_assert_int_eq(slotsync_boot_load(&c.cfg, &st, &err), -EBADMSG);
	ctx_free(&c);
}
END_TEST

#if !SLOTSYNC_HAVE_UBOOT
/* A build without libubootenv knows the backend by name and refuses it,
 * naming the build option; the state is never touched. */
START_TEST(test_uboot_not_built)
{
	struct ctx c;
	struct slotsync_boot_state st;
	struct slotsync_error err = { 0 };

	ctx_make(&c, SLOTSYNC_BOOT_UBOOT);
	ck_assert_int_eq(slotsync_boot_switch(&c.cfg, 1, 2, &err), -ENOTSUP);
	ck_assert_msg(strstr(err.msg, "-DSLOTSYNC_UBOOT=ON"), "%s", err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_boot_load(&c.cfg, &st, &err), -ENOTSUP);
	ck_assert_int_eq(slotsync_boot_config_set(&c.cfg, "backend", "uboot"), -ENOTSUP);
	ctx_free(&c);
}
END_TEST
#endif

static Suite *boot_suite(void)
{
	Suite *s = suite_create("boot");
	struct {
		const char *name;
		const TTest *story, *run_out, *storage;
	} b[] = {
		{ "file", test_file_story, test_file_tries_run_out, test_file_torn_copy },
		{ "grub", test_grub_story, test_grub_tries_run_out, test_grub_keeps_other_variables },
#if SLOTSYNC_HAVE_UBOOT
		{ "uboot", test_uboot_story, test_uboot_tries_run_out, test_uboot_redundant_copy },
#else
		{ "uboot", test_uboot_not_built, NULL, NULL },
#endif
		{ "barebox", test_barebox_story, test_barebox_tries_run_out, test_barebox_copies },
	};

	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		TCase *tc = tcase_create(b[i].name);
		tcase_set_timeout(tc, 30);
		tcase_add_test(tc, b[i].story);
		if (b[i].run_out)
			tcase_add_test(tc, b[i].run_out);
		if (b[i].storage)
			tcase_add_test(tc, b[i].storage);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	return test_run_suite(boot_suite());
}
