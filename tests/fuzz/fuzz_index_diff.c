/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the index diff applier.  The first byte selects the input:
 * 0, a zstd frame as a device downloads it; 1, the frame's content (compressed
 * here), so that the fuzzer reaches the ops.  The base is a fixed index of 64
 * entries; in mode 1 the diff is made to name it, and the new digest it names
 * is taken as the expected one, so only
 * the rebuilt index's own digest can refuse a well-formed diff.  Any input must
 * be refused with a message or give an index that parses; never crash, never
 * allocate past the limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "slotsync/index.h"

#define LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct slotsync_index *base_index(void)
{
	struct slotsync_error err = { 0 };
	struct slotsync_index *b = slotsync_index_new(64, 256, 1024, SLOTSYNC_DIGEST_SHA256);
	uint8_t id[SLOTSYNC_DIGEST_BYTES];

	for (unsigned i = 0; b && i < 64; i++) {
		memset(id, (int)i, sizeof(id));
		if (slotsync_index_append(b, 64 + (i * 37) % 900, id, &err) < 0)
			abort();
	}
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct slotsync_index *base;
	static uint8_t base_digest[SLOTSYNC_DIGEST_BYTES];
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx = NULL;
	uint8_t *frame = NULL, *out = NULL, new_digest[SLOTSYNC_DIGEST_BYTES] = { 0 };
	size_t frame_len, out_len = 0;
	int r;

	if (!base) {
		base = base_index();
		if (!base || slotsync_index_digest(base, base_digest, &err) < 0)
			abort();
	}
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		size_t cap = ZSTD_compressBound(size - 1);
		uint8_t *raw = malloc(size);
		if (!raw || !(frame = malloc(cap))) {
			free(raw);
			return 0;
		}
		memcpy(raw, data + 1, size - 1);
		if (size - 1 >= 40)
			memcpy(raw + 8, base_digest, SLOTSYNC_DIGEST_BYTES);
		frame_len = ZSTD_compress(frame, cap, raw, size - 1, 1);
		free(raw);
		if (ZSTD_isError(frame_len))
			abort();
		/* its new digest, so that the checks reach the ops */
		if (size - 1 >= 72)
			memcpy(new_digest, data + 1 + 40, SLOTSYNC_DIGEST_BYTES);
	} else {
		frame = malloc(size);
		if (!frame)
			return 0;
		memcpy(frame, data + 1, size - 1);
		frame_len = size - 1;
	}
	r = slotsync_index_diff_apply(base, base_digest, new_digest, frame, frame_len, LIMIT, &out, &out_len, &err);
	if (r < 0) {
		if (err.msg[0] == '\0' || out)
			abort(); /* every refusal says why, and gives nothing */
	} else if (out_len > LIMIT || slotsync_index_parse(out, out_len, &idx, &err) < 0) {
		abort();
	}
	slotsync_index_free(idx);
	free(out);
	free(frame);
	return 0;
}
