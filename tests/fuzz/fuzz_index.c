/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the caibx index parser.  Any input must either parse into an
 * index whose invariants hold, or be refused with a message; never crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slotsync/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slotsync_error err = { 0 };
	struct slotsync_index *idx = NULL;
	uint8_t *out = NULL;
	size_t out_len = 0;

	if (slotsync_index_parse(data, size, &idx, &err) < 0) {
		if (err.msg[0] == '\0')
			abort(); /* every refusal must say why */
		return 0;
	}
	/* invariants of an accepted index */
	for (size_t i = 0; i < idx->n_chunks; i++) {
		uint64_t sz = slotsync_index_chunk_size(idx, i);
		if (sz == 0 || sz > idx->chunk_size_max)
			abort();
	}
	/* what we accept, we write back byte for byte */
	if (slotsync_index_serialize(idx, &out, &out_len, &err) < 0 || out_len != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	slotsync_index_free(idx);
	return 0;
}
