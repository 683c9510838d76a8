/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the parsers a device runs on what it downloads before it
 * trusts it — the envelope layout, and the manifest and pointer JSON (which it
 * parses only after the signature, but a signer's bug must not crash it).  The
 * first input byte picks the parser.  Whatever parses must serialize, and
 * parse again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slotsync/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slotsync_error err = { 0 };

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		struct slotsync_manifest *m = NULL, *m2 = NULL;
		char *out = NULL, *out2 = NULL;
		size_t len, len2;
		if (slotsync_manifest_parse(data + 1, size - 1, &m, &err) < 0) {
			if (!err.msg[0])
				abort(); /* a refusal always says why */
			return 0;
		}
		if (slotsync_manifest_serialize(m, &out, &len, &err) < 0 ||
		    slotsync_manifest_parse((const uint8_t *)out, len, &m2, &err) < 0 ||
		    slotsync_manifest_serialize(m2, &out2, &len2, &err) < 0 || len != len2 || memcmp(out, out2, len))
			abort();
		free(out);
		free(out2);
		slotsync_manifest_free(m);
		slotsync_manifest_free(m2);
		break;
	}
	case 1: {
		struct slotsync_pointer *p = NULL, *p2 = NULL;
		char *out = NULL;
		size_t len;
		if (slotsync_pointer_parse(data + 1, size - 1, &p, &err) < 0) {
			if (!err.msg[0])
				abort();
			return 0;
		}
		if (slotsync_pointer_serialize(p, &out, &len, &err) < 0 ||
		    slotsync_pointer_parse((const uint8_t *)out, len, &p2, &err) < 0 || p2->version != p->version ||
		    memcmp(p2->bundle_sha256, p->bundle_sha256, sizeof(p->bundle_sha256)) != 0)
			abort();
		free(out);
		slotsync_pointer_free(p);
		slotsync_pointer_free(p2);
		break;
	}
	default: {
		struct slotsync_envelope *e = NULL;
		uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
		size_t total = 0;
		if (!copy)
			return 0;
		memcpy(copy, data + 1, size - 1);
		if (slotsync_envelope_parse(copy, size - 1, (data[0] >> 2) & 1 ? SLOTSYNC_ENVELOPE_POINTER
										: SLOTSYNC_ENVELOPE_BUNDLE,
					    &e, &err) < 0) {
			if (!err.msg[0])
				abort();
			return 0;
		}
		/* the parts and the signature tile the file exactly */
		for (size_t i = 0; i < e->n_parts; i++)
			total += e->part_len[i];
		if (e->signed_len + e->sig_len != e->len || e->sig + e->sig_len != e->buf + e->len ||
		    e->signed_len != 24 + 8 * e->n_parts + total)
			abort();
		slotsync_envelope_free(e);
		break;
	}
	}
	return 0;
}
