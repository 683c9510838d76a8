/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: every boot-state parser on arbitrary storage — the file
 * backend's copies, a grubenv block, barebox's raw/direct copies, a U-Boot
 * environment (through libubootenv) and the bootctl config.  The first byte
 * picks the parser; the rest is the storage.  A load must succeed or say why,
 * and what loads must store and load again to the same state. */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slotsync/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_file(const char *path, const uint8_t *d, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (n && write(fd, d, n) != (ssize_t)n))
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[64];
	struct slotsync_boot_config cfg;
	struct slotsync_boot_state st, st2;
	struct slotsync_error err = { 0 };
	char path[128];

	if (size < 1)
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/dev/shm/fuzz-boot-%d", (int)getpid());
		mkdir(dir, 0700);
	}
	slotsync_boot_config_load(NULL, &cfg, &err);
	switch (data[0] % 5) {
	case 0:
		cfg.backend = SLOTSYNC_BOOT_FILE;
		snprintf(cfg.env, sizeof(cfg.env), "%s/state", dir);
		put_file(cfg.env, data + 1, size - 1);
		break;
	case 1:
		cfg.backend = SLOTSYNC_BOOT_GRUB;
		snprintf(cfg.env, sizeof(cfg.env), "%s/grubenv", dir);
		put_file(cfg.env, data + 1, size - 1);
		break;
	case 2:
		cfg.backend = SLOTSYNC_BOOT_BAREBOX;
		cfg.barebox_magic = 0x4d433230;
		cfg.barebox_stride = 64;
		snprintf(cfg.env, sizeof(cfg.env), "%s/state.raw", dir);
		put_file(cfg.env, data + 1, size - 1);
		break;
	case 3: {
		char conf[512];
		int n;
		cfg.backend = SLOTSYNC_BOOT_UBOOT;
		snprintf(path, sizeof(path), "%s/uenv", dir);
		put_file(path, data + 1, size - 1);
		n = snprintf(conf, sizeof(conf), "%s 0x0 0x400\n%s 0x400 0x400\n", path, path);
		snprintf(cfg.env, sizeof(cfg.env), "%s/fw_env.config", dir);
		put_file(cfg.env, (const uint8_t *)conf, (size_t)n);
		if (size - 1 < 0x800)
			return 0; /* libubootenv needs both copies there */
		break;
	}
	default:
		snprintf(path, sizeof(path), "%s/boot.conf", dir);
		put_file(path, data + 1, size - 1);
		if (slotsync_boot_config_load(path, &cfg, &err) < 0 && !err.msg[0])
			abort();
		return 0;
	}
	if (slotsync_boot_load(&cfg, &st, &err) < 0) {
		if (!err.msg[0])
			abort();
		return 0;
	}
	for (int s = 0; s < 2; s++)
		if (st.slot[s].priority < 0 || st.slot[s].priority > 2 || st.slot[s].tries < 0 ||
		    st.slot[s].tries > SLOTSYNC_BOOT_TRIES_MAX || (st.slot[s].good != 0 && st.slot[s].good != 1))
			abort();
	if (cfg.backend == SLOTSYNC_BOOT_GRUB && (st.slot[0].tries > 9 || st.slot[1].tries > 9))
		return 0; /* the grub backend refuses to write those */
	if (slotsync_boot_store(&cfg, &st, &err) < 0)
		return 0; /* e.g. a grubenv too full for our variables: refused, said why */
	if (slotsync_boot_load(&cfg, &st2, &err) < 0)
		abort();
	if (cfg.backend == SLOTSYNC_BOOT_BAREBOX)
		return 0; /* barebox refills a good slot's attempts: not an identity */
	if (cfg.backend == SLOTSYNC_BOOT_UBOOT)
		for (int s = 0; s < 2; s++) {
			/* RAUC's counting: a good slot in the boot order is written
			 * with boots left (backend_uboot.c), at most 9; the rest is
			 * an identity */
			if (!st.slot[s].good || st.slot[s].priority <= 0 || st.slot[s].tries >= 1)
				continue;
			if (st2.slot[s].tries < 1 || st2.slot[s].tries > 9)
				abort();
			st.slot[s].tries = st2.slot[s].tries;
		}
	if (memcmp(&st, &st2, sizeof(st)) != 0)
		abort();
	return 0;
}
