/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Barebox backend: bootchooser's variables in barebox's state framework,
 * "raw" backend type on "direct" storage, read and written as barebox's
 * documentation lays them out (docs/boot.md has the devicetree description):
 *
 *   three copies at offset, offset + stride, offset + 2 x stride; each:
 *     direct meta: magic 0x2354fdf3 u32, written length u32
 *     raw header:  state magic u32, reserved u16 = 0, data length u16,
 *                  CRC-32 of the data u32, CRC-32 of the 12 header bytes u32
 *     data: bootstate.system0.remaining_attempts @0x00, .priority @0x04,
 *           bootstate.system1.remaining_attempts @0x08, .priority @0x0c,
 *           bootstate.last_chosen @0x10, bootstate.system0.ok @0x14,
 *           bootstate.system1.ok @0x18 (uint32 each)
 *   integers in the CPU's byte order (little-endian here), CRC-32 as zlib's.
 *
 * Like barebox, reading takes the first valid copy and writing rewrites the
 * copies in order, each flushed: a cut while copy k is written leaves copy 0
 * new (k > 0) or copy 1 old (k = 0), both whole.  system0 is slot A, system1 B.
 * Bootchooser decrements remaining_attempts at every boot and knows no "ok":
 * marking a slot good also refills its attempts (the ok variable is ours).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "backend.h"

#define DIRECT_MAGIC 0x2354fdf3u
#define META_BYTES 8
#define HEADER_BYTES 16
#define DATA_BYTES 0x1c
#define COPIES 3

static uint32_t stride_of(const struct slotsync_boot_config *cfg)
{
	return cfg->barebox_stride ? cfg->barebox_stride : 64;
}

/* The data of a copy if it is valid, else NULL. */
static const uint8_t *copy_data(const struct slotsync_boot_config *cfg, const uint8_t *c, size_t len)
{
	const uint8_t *raw = c;
	size_t avail = len, data_len;

	if (len >= META_BYTES && io_get_le32(c) == DIRECT_MAGIC) {
		raw = c + META_BYTES;
		avail = io_get_le32(c + 4) < len - META_BYTES ? io_get_le32(c + 4) : len - META_BYTES;
	}
	if (avail < HEADER_BYTES || io_get_le32(raw) != cfg->barebox_magic || (raw[4] | raw[5]) != 0 ||
	    io_get_le32(raw + 12) != (uint32_t)crc32(0, raw, 12))
		return NULL;
	data_len = (size_t)raw[6] | (size_t)raw[7] << 8;
	if (data_len < DATA_BYTES || data_len > avail - HEADER_BYTES ||
	    io_get_le32(raw + 8) != (uint32_t)crc32(0, raw + HEADER_BYTES, (uInt)data_len))
		return NULL;
	return raw + HEADER_BYTES;
}

static int check_config(const struct slotsync_boot_config *cfg, struct slotsync_error *err)
{
	if (!cfg->barebox_magic)
		return slotsync_error_set(err, -EINVAL,
					  "the barebox backend needs the state's magic (barebox-magic = in the config, from its devicetree node)");
	if (stride_of(cfg) < META_BYTES + HEADER_BYTES + DATA_BYTES)
		return slotsync_error_set(err, -EINVAL, "barebox-stride %u is below the %d bytes a copy needs",
					  stride_of(cfg), META_BYTES + HEADER_BYTES + DATA_BYTES);
	return 0;
}

static int barebox_load(const struct slotsync_boot_config *cfg, struct slotsync_boot_state *st,
			struct slotsync_error *err)
{
	uint32_t stride = stride_of(cfg);
	uint8_t c[1u << 12];
	const uint8_t *d = NULL;
	int fd, r, blank = 1;

	r = check_config(cfg, err);
	if (r < 0)
		return r;
	if (stride > sizeof(c))
		stride = sizeof(c); /* our data sits at the start of a copy */
	fd = open(cfg->env, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open");
	for (int i = 0; i < COPIES && !d; i++) {
		ssize_t n = io_pread_full(fd, c, stride, cfg->barebox_offset + (uint64_t)i * stride_of(cfg));
		if (n < 0) {
			close(fd);
			return slotsync_error_set_errno(err, (int)n, "cannot read");
		}
		for (ssize_t k = 0; k < n && blank; k++)
			blank = c[k] == 0 || c[k] == 0xff;
		d = copy_data(cfg, c, (size_t)n);
	}
	close(fd);
	if (!d)
		return blank ? -ENOENT : slotsync_error_set(err, -EBADMSG,
							    "no valid copy (wrong magic, bad CRC or truncated) in any of the %d copies",
							    COPIES);
	{
		uint32_t att[2] = { io_get_le32(d), io_get_le32(d + 8) }, prio[2] = { io_get_le32(d + 4), io_get_le32(d + 12) },
			 ok[2] = { io_get_le32(d + 0x14), io_get_le32(d + 0x18) };
		for (int s = 0; s < 2; s++) {
			if (ok[s] > 1)
				return slotsync_error_set(err, -EBADMSG, "bootstate.system%d.ok is %u, not 0 or 1", s, ok[s]);
			st->slot[s].good = (int)ok[s];
			st->slot[s].tries = att[s] > SLOTSYNC_BOOT_TRIES_MAX ? SLOTSYNC_BOOT_TRIES_MAX : (int)att[s];
		}
		/* numeric priorities to our order: the higher first */
		st->slot[0].priority = prio[0] == 0 ? 0 : (prio[1] == 0 || prio[0] >= prio[1]) ? 2 : 1;
		st->slot[1].priority = prio[1] == 0 ? 0 : (prio[0] == 0 || prio[1] > prio[0]) ? 2 : 1;
	}
	return 0;
}

static int barebox_store(const struct slotsync_boot_config *cfg, const struct slotsync_boot_state *st,
			 struct slotsync_error *err)
{
	static const uint32_t prio_value[3] = { 0, 10, 20 };
	uint32_t stride = stride_of(cfg), last_chosen = 0;
	uint8_t c[META_BYTES + HEADER_BYTES + DATA_BYTES], *raw = c + META_BYTES, *d = raw + HEADER_BYTES;
	int fd, r;

	r = check_config(cfg, err);
	if (r < 0)
		return r;
	fd = open(cfg->env, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return slotsync_error_set_errno(err, -errno, "cannot open for writing");
	/* keep last_chosen as barebox left it */
	{
		uint8_t old[1u << 12];
		uint32_t rd = stride < sizeof(old) ? stride : sizeof(old);
		for (int i = 0; i < COPIES; i++) {
			ssize_t n = io_pread_full(fd, old, rd, cfg->barebox_offset + (uint64_t)i * stride);
			const uint8_t *od = n > 0 ? copy_data(cfg, old, (size_t)n) : NULL;
			if (od) {
				last_chosen = io_get_le32(od + 0x10);
				break;
			}
		}
	}
	memset(c, 0, sizeof(c));
	for (int s = 0; s < 2; s++) {
		/* bootchooser boots only targets with attempts left: a good slot keeps some */
		int att = st->slot[s].good && st->slot[s].tries == 0
				  ? (cfg->default_tries > 0 ? cfg->default_tries : SLOTSYNC_BOOT_TRIES_DEFAULT)
				  : st->slot[s].tries;
		io_put_le32(d + 8 * s, (uint32_t)att);
		io_put_le32(d + 8 * s + 4, prio_value[st->slot[s].priority > 2 ? 2 : st->slot[s].priority]);
		io_put_le32(d + 0x14 + 4 * s, (uint32_t)st->slot[s].good);
	}
	io_put_le32(d + 0x10, last_chosen);
	io_put_le32(raw, cfg->barebox_magic);
	raw[6] = DATA_BYTES & 0xff;
	raw[7] = DATA_BYTES >> 8;
	io_put_le32(raw + 8, (uint32_t)crc32(0, d, DATA_BYTES));
	io_put_le32(raw + 12, (uint32_t)crc32(0, raw, 12));
	io_put_le32(c, DIRECT_MAGIC);
	io_put_le32(c + 4, HEADER_BYTES + DATA_BYTES);
	for (int i = 0; i < COPIES && r == 0; i++) {
		r = io_pwrite_full(fd, c, sizeof(c), cfg->barebox_offset + (uint64_t)i * stride);
		if (r == 0 && fdatasync(fd) < 0)
			r = -errno;
	}
	close(fd);
	return r < 0 ? slotsync_error_set_errno(err, r, "cannot write") : 0;
}

const struct boot_backend boot_backend_barebox = { "barebox", barebox_load, barebox_store };
