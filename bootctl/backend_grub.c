/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The GRUB backend: the grubenv file that grub-editenv and GRUB's load_env /
 * save_env read and write.  A 1024-byte block: the line "# GRUB Environment
 * Block", then NAME=VALUE lines, then '#' up to 1024 bytes.
 *
 * Variables (RAUC's names where they fit): ORDER ("A B": the slots by
 * priority), A_OK / B_OK (1: good), A_TRY / B_TRY (tries left while not good).
 * Other variables are kept as they are.
 *
 * A change rewrites the block in place (as GRUB's own save_env does) and
 * fdatasyncs it: the file keeps its inode and its data block, so GRUB, which
 * reads the file system without replaying its journal, finds the new block
 * where the old one was.  Writing a new file and renaming it over grubenv
 * would be atomic for Linux but not for GRUB: after a power cut the rename
 * may sit in the ext4 journal, unseen by GRUB, which then boots by the old
 * block and counts its tries down in blocks the file no longer owns.
 *
 * A power cut can tear that 1024-byte write between its two 512-byte sectors
 * (first new and second old, or the other way round).  So our variables come
 * first, right after the header line, all inside the first sector, and always
 * take the same number of bytes (ORDER is padded with spaces to three
 * characters, the counts are single digits): a torn write leaves our variables
 * wholly old or wholly new, and the other variables (a distro's own, after
 * ours) where they were, whatever the tear.  A state whose variables would end
 * past byte 512 is refused.  Only a missing file is created anew (temp file,
 * fsync, rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "backend.h"
#include "parse.h"

#define ENV_BYTES 1024
#define SECTOR_BYTES 512
#define HEADER "# GRUB Environment Block\n"

static const char *const our_keys[] = { "ORDER", "A_OK", "A_TRY", "B_OK", "B_TRY" };

static int is_ours(const char *line, size_t len)
{
	for (size_t k = 0; k < sizeof(our_keys) / sizeof(our_keys[0]); k++) {
		size_t kl = strlen(our_keys[k]);
		if (len > kl && !strncmp(line, our_keys[k], kl) && line[kl] == '=')
			return 1;
	}
	return 0;
}

static int read_block(const char *path, char block[ENV_BYTES + 1], struct slotsync_error *err)
{
	uint8_t *buf = NULL;
	size_t len;
	int r = io_read_file(path, ENV_BYTES + 1, &buf, &len, err);

	if (r < 0) {
		if (err && err->code == -ENOENT) {
			slotsync_error_clear(err);
			return -ENOENT;
		}
		return r;
	}
	if (len != ENV_BYTES || memcmp(buf, HEADER, strlen(HEADER)) != 0) {
		free(buf);
		return slotsync_error_set(err, -EBADMSG, "invalid environment block (%zu bytes%s)", len,
					  len == ENV_BYTES ? ", no GRUB header" : "; it must be 1024");
	}
	memcpy(block, buf, ENV_BYTES);
	block[ENV_BYTES] = '\0';
	free(buf);
	return 0;
}

/* Calls fn for each line after the header that ends with a newline: NAME=VALUE
 * lines and comments ("# WARNING: ..." as Debian's grub-editenv writes).  The
 * '#' padding that fills the block has no newline and is left out; GRUB itself
 * skips every line that starts with '#'. */
static void each_line(const char *block, void (*fn)(const char *line, size_t len, void *ud), void *ud)
{
	const char *p = block + strlen(HEADER), *end = block + ENV_BYTES;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len;
		if (!nl)
			break;
		len = (size_t)(nl - p);
		if (len > 0 && (p[0] == '#' || memchr(p, '=', len)))
			fn(p, len, ud);
		p = nl + 1;
	}
}

struct vars {
	char v[5][64];
	int have[5];
};

static void collect(const char *line, size_t len, void *ud)
{
	struct vars *vs = ud;

	if (line[0] == '#')
		return;
	for (size_t k = 0; k < 5; k++) {
		size_t kl = strlen(our_keys[k]);
		if (len > kl && !strncmp(line, our_keys[k], kl) && line[kl] == '=') {
			size_t vl = len - kl - 1;
			if (vl >= sizeof(vs->v[k]))
				vl = sizeof(vs->v[k]) - 1;
			memcpy(vs->v[k], line + kl + 1, vl);
			vs->v[k][vl] = '\0';
			vs->have[k] = 1;
		}
	}
}

static int grub_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
		     struct slotsync_error *err)
{
	char block[ENV_BYTES + 1];
	struct vars vs = { 0 };
	int r = read_block(cfg->env, block, err), any = 0;

	if (r < 0)
		return r;
	each_line(block, collect, &vs);
	for (int k = 0; k < 5; k++)
		any |= vs.have[k];
	if (!any)
		return -ENOENT; /* a fresh grubenv: first boot */
	if (boot_order_parse(vs.have[0] ? vs.v[0] : "A B", st) < 0)
		return slotsync_error_set(err, -EBADMSG, "ORDER=\"%s\" is not a list of the slots A and B", vs.v[0]);
	for (int s = 0; s < 2; s++) {
		const char *ok = vs.have[1 + 2 * s] ? vs.v[1 + 2 * s] : "0";
		const char *try = vs.have[2 + 2 * s] ? vs.v[2 + 2 * s] : "0";
		if (parse_int(ok, 0, 1, &st->slot[s].good) < 0)
			return slotsync_error_set(err, -EBADMSG, "%s=\"%s\" is not 0 or 1", our_keys[1 + 2 * s], ok);
		if (parse_int(try, 0, SLOTSYNC_BOOT_TRIES_MAX, &st->slot[s].tries) < 0)
			return slotsync_error_set(err, -EBADMSG, "%s=\"%s\" is not a number of tries (0 to %d)",
						  our_keys[2 + 2 * s], try, SLOTSYNC_BOOT_TRIES_MAX);
	}
	return 0;
}

struct builder {
	char *out;
	size_t len;
	int overflow;
};

static void keep_other(const char *line, size_t len, void *ud)
{
	struct builder *b = ud;

	if (is_ours(line, len))
		return;
	if (b->len + len + 1 > ENV_BYTES) {
		b->overflow = 1;
		return;
	}
	memcpy(b->out + b->len, line, len);
	b->out[b->len + len] = '\n';
	b->len += len + 1;
}

/* Overwrites the 1024 bytes of an existing grubenv where they are. */
static int rewrite_in_place(const char *path, const char *block, struct slotsync_error *err)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open %s for writing", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != ENV_BYTES) {
		close(fd);
		return slotsync_error_set(err, -EINVAL, "%s is not a 1024-byte file (grub-editenv %s create makes one)",
					  path, path);
	}
	r = io_pwrite_full(fd, block, ENV_BYTES, 0);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot write %s", path);
	return 0;
}

static int grub_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
		      struct slotsync_error *err)
{
	char old[ENV_BYTES + 1], out[ENV_BYTES + 1], order[8], ours[160];
	struct builder b = { out, 0, 0 };
	int r = read_block(cfg->env, old, err), n;

	if (r < 0 && r != -ENOENT)
		return r;
	for (int i = 0; i < 2; i++)
		if (st->slot[i].tries > 9)
			return slotsync_error_set(err, -EINVAL,
						  "GRUB counts at most 9 tries (its script has no arithmetic): %d asked for slot %c",
						  st->slot[i].tries, slotsync_boot_slot_name(i));
	/* ours first, in the first sector, at a fixed length: see the top of this file */
	boot_order_format(st, order);
	n = snprintf(ours, sizeof(ours), "ORDER=%-3s\nA_OK=%d\nA_TRY=%d\nB_OK=%d\nB_TRY=%d\n", order,
		     st->slot[0].good, st->slot[0].tries, st->slot[1].good, st->slot[1].tries);
	if (n < 0 || strlen(HEADER) + (size_t)n > SECTOR_BYTES)
		return slotsync_error_set(err, -EINVAL,
					  "slotsync's variables would end past byte %d of the block, where a torn write could mix two states",
					  SECTOR_BYTES);
	memcpy(out, HEADER, strlen(HEADER));
	memcpy(out + strlen(HEADER), ours, (size_t)n);
	b.len = strlen(HEADER) + (size_t)n;
	if (r == 0)
		each_line(old, keep_other, &b);
	if (b.overflow)
		return slotsync_error_set(err, -ENOSPC, "the variables do not fit in 1024 bytes");
	memset(out + b.len, '#', ENV_BYTES - b.len);
	if (r == -ENOENT)
		return io_write_file_atomic(cfg->env, out, ENV_BYTES, err);
	return rewrite_in_place(cfg->env, out, err);
}

const struct boot_backend boot_backend_grub = { "grub", grub_load, grub_store };
